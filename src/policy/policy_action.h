/*
 * policy_action — an access(5) action template with the verdict's details
 * filled in:
 *
 *   %a  the address verified      %r  the reason (no_such_user, ...)
 *   %t  the server's reply text   %v  the verdict (undeliverable, ...)
 *   %%  a percent sign
 *
 * Templates are validated when the configuration loads (config.c,
 * check_action: printable ASCII, an access(5) action word first, only the
 * escapes above); expansion makes the result safe whatever the values hold.
 */
#ifndef PROBED_POLICY_ACTION_H
#define PROBED_POLICY_ACTION_H

#include <stddef.h>

#define POLICY_ACTION_MAX 512    /* an expanded action, NUL included */
#define POLICY_VALUE_SHOWN 200   /* most octets one escape expands to */

struct policy_vars {
	const char *address;     /* not NUL-terminated; NULL: empty */
	size_t address_len;
	const char *reason;      /* NUL-terminated; NULL: empty */
	const char *text;        /* not NUL-terminated; NULL: empty */
	size_t text_len;
	const char *verdict;     /* NUL-terminated; NULL: empty */
};

/*
 * Expand tmpl into out (cap >= 1).  The result is NUL-terminated, at most
 * cap - 1 octets, and holds only printable ASCII (0x20..0x7e): CR, LF, other
 * controls and 8-bit octets of the template or a value become '?', so it
 * is always one safe `action=` line.  A value longer than
 * POLICY_VALUE_SHOWN is cut and ends in "...".  An unknown escape (which
 * validation keeps out) is copied as written.  Returns the length.
 */
size_t policy_action_expand(char *out, size_t cap, const char *tmpl,
    const struct policy_vars *v);

#endif
