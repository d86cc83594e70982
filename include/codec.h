/*
 * codec — the control protocol, version 1 (design.md, doc/protocol.md):
 * request lines parsed into struct ctl_request, results formatted into
 * response lines, and response lines parsed back for the clients.
 *
 * Pure functions over caller memory: no allocation, no I/O.  Everything
 * written is bounded by the output buffer; nothing a request or a server
 * reply holds can put CR, LF or NUL into a response line.
 */
#ifndef PROBED_CODEC_H
#define PROBED_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vocab.h"

#define CTL_LINE_MAX 1024          /* a request line, terminator included */
/* Where the daemon listens and the clients knock unless told otherwise
 * (design.md fixes it; it does not follow the install prefix). */
#define CTL_DEFAULT_SOCKET "/run/probed/probed.sock"
#define CTL_TIMEOUT_MAX_MS 3600000 /* timeout= accepts (0, 3600] seconds */

/* X(enum name, wire word, argument: 0 none, 1 address, 2 domain, 3 either) */
#define CTL_VERB_LIST(X) \
	X(VERIFY, "VERIFY", 1, "<address> [timeout=<seconds>] [fresh]", "probe (or answer from cache)") \
	X(CHECK,  "CHECK",  1, "<address>", "cache only, never probes") \
	X(DOMAIN, "DOMAIN", 2, "<domain>", "what probed knows of a domain") \
	X(FORGET, "FORGET", 3, "<address>|<domain>", "drop cached knowledge") \
	X(STATS,  "STATS",  0, "", "counters, one line") \
	X(PING,   "PING",   0, "", "liveness") \
	X(QUIT,   "QUIT",   0, "", "close after \"bye\"")

enum ctl_verb {
#define X(name, word, arg, usage, help) CTL_##name,
	CTL_VERB_LIST(X)
#undef X
	CTL__VERB_COUNT
};

const char *ctl_verb_name(enum ctl_verb v);
const char *ctl_verb_usage(enum ctl_verb v);
const char *ctl_verb_help(enum ctl_verb v);

struct ctl_request {
	enum ctl_verb verb;
	const char *arg;     /* points into the parsed line; NULL when none */
	size_t arg_len;
	bool has_timeout;
	uint32_t timeout_ms; /* VERIFY timeout=, in (0, CTL_TIMEOUT_MAX_MS] */
	bool fresh;          /* VERIFY fresh */
};

/* Why a request line was refused: `reason` is the word after "error",
 * `text` a human explanation (static string). */
struct ctl_error {
	const char *reason;
	const char *text;
};

/*
 * Parse one request line (terminator already removed).  Verbs are
 * case-insensitive, separated from arguments by one or more SP or HTAB.
 * The argument is one token; a '"' starts an RFC 5321 quoted string in which
 * SP is kept and backslash escapes the next octet, so `"john doe"@example.org`
 * is one token.  Returns true and fills *req, or false and fills *err with:
 *   empty_request    blank line
 *   unknown_verb     verb not in CTL_VERB_LIST
 *   bad_request      NUL or another control octet in the line
 *   missing_argument verb needs an argument
 *   bad_argument     unexpected extra argument, unknown option, bad timeout=
 * Address syntax is NOT judged here: VERIFY of a bad address is a verdict,
 * not a protocol error.
 *
 * The daemon sends these error words besides (doc/protocol.md, "Errors"):
 *   line_too_long    a request line over CTL_LINE_MAX octets
 *   busy             limits.max_clients reached; then closed
 *   not_authorized   the peer is not in socket_allow_users/_groups; then
 *                    closed, nothing read
 *   timeout          half a request line past limits.client_idle_timeout;
 *                    then closed
 */
bool ctl_parse_request(const char *line, size_t len, struct ctl_request *req,
    struct ctl_error *err) __attribute__((warn_unused_result));

enum tristate { TRI_UNKNOWN = 0, TRI_NO, TRI_YES };

/* What a VERIFY/CHECK answer says.  Optional fields are omitted from the
 * line when unset (code 0, empty strings, age/ms < 0, TRI_UNKNOWN tls). */
struct ctl_result {
	enum verdict verdict;
	enum reason reason;
	int code;              /* SMTP reply code, 0 when none */
	char enhanced[16];     /* "5.1.1", "" when none */
	char mx[256];          /* MX host that answered, "" when none */
	enum tristate catch_all; /* always written: yes|no|unknown */
	bool write_catch_all;  /* false: omit catch_all (syntax, dns errors) */
	enum tristate cached;  /* TRI_UNKNOWN: omit */
	long age;              /* seconds since the verdict was made, -1: omit */
	long ms;               /* probe duration, -1: omit */
	enum tristate tls;     /* TRI_UNKNOWN: omit */
	char text[512];        /* server reply text, "" when none */
};

void ctl_result_init(struct ctl_result *r, enum reason reason);

/*
 * Output into a fixed buffer.  Every formatter writes one complete line
 * ending in LF and returns its length, or 0 when it does not fit (then
 * out[0..cap) holds no line and the caller appends nothing).  Values are written as tokens when they hold only
 * printable ASCII other than SP, '"', '\\'; otherwise quoted, with '"' and
 * '\\' escaped and control octets (and DEL) replaced by '?'.  Octets >= 0x80
 * are passed through.
 */
size_t ctl_fmt_result(char *out, size_t cap, const char *address, size_t address_len,
    const struct ctl_result *r);
size_t ctl_fmt_error(char *out, size_t cap, const char *reason, const char *text);
/* Free-form lines: "pong", "bye", "stats k=v ...", "domain d k=v ...",
 * "forgotten n=3".  kv holds alternating keys and values, NULL-terminated;
 * values are quoted as above when needed. */
size_t ctl_fmt_line(char *out, size_t cap, const char *head, const char *subject,
    const char *const *kv);
/* Append one value, token or quoted, as described above; returns octets
 * written or 0 when it does not fit.  For formatters elsewhere. */
size_t ctl_fmt_value(char *out, size_t cap, const char *v, size_t vlen);

/* A response line taken apart, for probectl and probed-policy. */
#define CTL_RESP_MAX_KV 128
enum ctl_resp_kind {
	CTL_RESP_RESULT,    /* verdict address reason=... */
	CTL_RESP_PONG,
	CTL_RESP_BYE,
	CTL_RESP_STATS,
	CTL_RESP_DOMAIN,
	CTL_RESP_FORGOTTEN,
	CTL_RESP_ERROR,     /* "error <reason> [text=...]" : error word in subject */
};

struct ctl_kv {
	const char *key;
	size_t key_len;
	const char *value;  /* unescaped, NUL-terminated, inside the scratch buffer */
	size_t value_len;
};

struct ctl_response {
	enum ctl_resp_kind kind;
	enum verdict verdict;      /* RESULT only */
	const char *subject;       /* address (RESULT), domain (DOMAIN), reason (ERROR) */
	size_t subject_len;        /* subject points into the line, not unescaped */
	size_t n_kv;
	struct ctl_kv kv[CTL_RESP_MAX_KV];
};

/*
 * Parse a response line (terminator removed).  Unescaped values are stored
 * in scratch (at least len + CTL_RESP_MAX_KV octets suffice).  Returns false
 * for a line that is not protocol version 1.  Unknown keys are kept: newer
 * daemons may add keys and old clients must still read them.
 */
bool ctl_parse_response(const char *line, size_t len, struct ctl_response *resp,
    char *scratch, size_t scratch_cap) __attribute__((warn_unused_result));
/* The value for key, or NULL. */
const struct ctl_kv *ctl_response_get(const struct ctl_response *resp, const char *key);

#endif
