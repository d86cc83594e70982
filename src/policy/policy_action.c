/*
 * policy_action — access(5) action templates.  See policy_action.h.
 *
 * Owns: %-escape expansion and the output rule "printable ASCII only".
 * What a template may say is decided once, at configuration load
 * (src/probed/config.c, check_action); the escapes accepted there are the
 * ones expanded here, which tests/unit/test_policy.c checks.
 *
 * Security: the values come from the SMTP client (the address) and from
 * remote mail servers through probed (the reply text), so each octet is
 * checked on the way out: nothing can end the `action=` line early, start
 * a second attribute, or put 8-bit octets into an SMTP reply.  Output is
 * bounded by the caller's buffer.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <string.h>

#include "policy_action.h"

struct out {
	char *buf;
	size_t cap, len;
};

static bool
printable(unsigned char c)
{
	return c >= 0x20 && c < 0x7f;
}

static void
put(struct out *o, char c)
{
	if (o->len + 1 < o->cap)
		o->buf[o->len++] = printable((unsigned char)c) ? c : '?';
}

static void
put_value(struct out *o, const char *s, size_t len)
{
	static const char more[] = "...";

	if (s == NULL)
		return;
	if (len > POLICY_VALUE_SHOWN) {
		for (size_t i = 0; i < POLICY_VALUE_SHOWN - (sizeof(more) - 1); i++)
			put(o, s[i]);
		for (size_t i = 0; i < sizeof(more) - 1; i++)
			put(o, more[i]);
		return;
	}
	for (size_t i = 0; i < len; i++)
		put(o, s[i]);
}

size_t
policy_action_expand(char *out, size_t cap, const char *tmpl,
    const struct policy_vars *v)
{
	struct out o = { out, cap, 0 };

	if (cap == 0)
		return 0;
	for (const char *p = tmpl; *p != '\0'; p++) {
		if (*p != '%' || p[1] == '\0') {
			put(&o, *p);
			continue;
		}
		switch (*++p) {
		case 'a':
			put_value(&o, v->address, v->address_len);
			break;
		case 'r':
			put_value(&o, v->reason, v->reason ? strlen(v->reason) : 0);
			break;
		case 't':
			put_value(&o, v->text, v->text_len);
			break;
		case 'v':
			put_value(&o, v->verdict, v->verdict ? strlen(v->verdict) : 0);
			break;
		case '%':
			put(&o, '%');
			break;
		default:
			put(&o, '%');
			put(&o, *p);
			break;
		}
	}
	out[o.len] = '\0';
	return o.len;
}
