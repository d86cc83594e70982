/*
 * codec — the control protocol, version 1.  See include/codec.h and
 * design.md, "The control protocol (version 1)".
 *
 * Owns: request parsing (verbs, the RFC 5321-aware token splitter, VERIFY
 * options), response formatting, response parsing for the clients.
 *
 * Limits: nothing allocates; every formatter measures a line before writing
 * it, so a line that does not fit leaves the output buffer untouched.  The
 * response parser copies unescaped values into the caller's scratch buffer
 * and refuses lines that would overflow it or hold more than CTL_RESP_MAX_KV
 * pairs.
 *
 * Security: request lines holding any control octet other than HTAB (or
 * DEL) are refused before anything else looks at them.  Output can never
 * carry CR, LF or NUL: values are quoted with control octets replaced by
 * '?', the echoed address has them replaced too, and heads, keys and reason
 * words are forced to printable ASCII.  Clients refuse response lines that
 * hold control octets, so a hostile daemon (or MX text relayed by a buggy
 * one) cannot drive a terminal through probectl.
 *
 * Known blind spots: an address with an unterminated quoted string (a
 * `syntax` verdict) is echoed with its quote closed, otherwise the rest of
 * the response line would read as part of the address.  Response words are
 * case-sensitive: the daemon writes them in lower case.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>

#include "codec.h"

/* Pieces of the refusal texts, pasted per argument kind of CTL_VERB_LIST. */
#define ARG_NOUN_0 "nothing"
#define ARG_NOUN_1 "an address"
#define ARG_NOUN_2 "a domain"
#define ARG_NOUN_3 "an address or a domain"
#define ARG_EXTRA_0 " takes no argument"
#define ARG_EXTRA_1 " takes exactly one address"
#define ARG_EXTRA_2 " takes exactly one domain"
#define ARG_EXTRA_3 " takes exactly one address or domain"

static const struct {
	const char *word;
	int arg;
	const char *usage;
	const char *help;
	const char *missing; /* text of missing_argument */
	const char *extra;   /* text of bad_argument for a surplus token */
} verbs[CTL__VERB_COUNT] = {
#define X(name, w, a, u, h) \
	[CTL_##name] = { w, a, u, h, w " needs " ARG_NOUN_##a, w ARG_EXTRA_##a },
	CTL_VERB_LIST(X)
#undef X
};

#define TEXT_TIMEOUT "timeout must be a number of seconds in (0, 3600]"

struct wr {
	char *out;  /* NULL: only measure */
	size_t cap;
	size_t len; /* octets the line needs so far */
};

static bool is_ws(char c);
static bool is_ctl(char c);
static bool is_digit(char c);
static bool is_key_char(char c);
static bool ascii_ieq(const char *a, const char *b, size_t n);
static size_t skip_ws(const char *p, size_t end, size_t i);
static size_t token_end(const char *p, size_t end, size_t i);
static bool parse_timeout(const char *s, size_t n, uint32_t *ms);
static bool refuse(struct ctl_error *err, const char *reason, const char *text);
static void put(struct wr *w, const char *s, size_t n);
static void put_char(struct wr *w, char c);
static void put_str(struct wr *w, const char *s);
static void put_long(struct wr *w, long v);
static void put_word(struct wr *w, const char *s);
static void put_value(struct wr *w, const char *v, size_t n, bool force_quote);
static void put_addr(struct wr *w, const char *a, size_t n);
static const char *tri_name(enum tristate t);
static void fmt_result(struct wr *w, const char *address, size_t address_len,
    const struct ctl_result *r);
static void fmt_error(struct wr *w, const char *reason, const char *text);
static void fmt_line(struct wr *w, const char *head, const char *subject,
    const char *const *kv);
static bool word_is(const char *s, size_t n, const char *word);

const char *
ctl_verb_name(enum ctl_verb v)
{
	return (unsigned)v < CTL__VERB_COUNT ? verbs[v].word : "";
}

const char *
ctl_verb_usage(enum ctl_verb v)
{
	return (unsigned)v < CTL__VERB_COUNT ? verbs[v].usage : "";
}

const char *
ctl_verb_help(enum ctl_verb v)
{
	return (unsigned)v < CTL__VERB_COUNT ? verbs[v].help : "";
}

/* ---- character classes and the token splitter ---- */

static bool
is_ws(char c)
{
	return c == ' ' || c == '\t';
}

static bool
is_ctl(char c)
{
	unsigned char u = (unsigned char)c;

	return (u < 0x20 && u != '\t') || u == 0x7f;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
	    c == '_' || c == '-' || c == '.';
}

/* ASCII only: strncasecmp follows the locale (Turkish dotless i). */
static bool
ascii_ieq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x - 'A' + 'a');
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y - 'A' + 'a');
		if (x != y)
			return false;
	}
	return true;
}

static size_t
skip_ws(const char *p, size_t end, size_t i)
{
	while (i < end && is_ws(p[i]))
		i++;
	return i;
}

/*
 * One past the token starting at p[i].  A '"' opens an RFC 5321 quoted
 * string that runs to the next unescaped '"', so `"john doe"@example.org` is
 * one token; an unterminated one runs to `end`.  Outside quotes a backslash
 * is an ordinary octet, as in a dot-string it is simply invalid.
 */
static size_t
token_end(const char *p, size_t end, size_t i)
{
	bool quoted = false;

	for (; i < end; i++) {
		char c = p[i];

		if (quoted) {
			if (c == '\\') {
				if (i + 1 < end)
					i++;
			} else if (c == '"')
				quoted = false;
		} else if (c == '"')
			quoted = true;
		else if (is_ws(c))
			break;
	}
	return i;
}

/* ---- requests ---- */

static bool
refuse(struct ctl_error *err, const char *reason, const char *text)
{
	err->reason = reason;
	err->text = text;
	return false;
}

/*
 * `1*DIGIT ["." 1*DIGIT]` seconds, rounded up to whole milliseconds so that
 * "> 0 and <= 3600 seconds" holds exactly: 0.0001 is 1 ms, 3600.0001 is out.
 */
static bool
parse_timeout(const char *s, size_t n, uint32_t *ms)
{
	size_t i = 0;
	uint32_t whole = 0, frac = 0, scale = 100;
	bool below_ms = false;

	while (i < n && is_digit(s[i])) {
		if (whole <= 3600) /* saturates above the limit, never wraps */
			whole = whole * 10 + (uint32_t)(s[i] - '0');
		i++;
	}
	if (i == 0)
		return false;
	if (i < n) {
		if (s[i] != '.')
			return false;
		size_t f0 = ++i;
		while (i < n && is_digit(s[i])) {
			if (scale > 0) {
				frac += (uint32_t)(s[i] - '0') * scale;
				scale /= 10;
			} else if (s[i] != '0')
				below_ms = true;
			i++;
		}
		if (i == f0 || i != n)
			return false;
	}
	if (whole > CTL_TIMEOUT_MAX_MS / 1000)
		return false;
	uint32_t v = whole * 1000 + frac + (below_ms ? 1 : 0);
	if (v == 0 || v > CTL_TIMEOUT_MAX_MS)
		return false;
	*ms = v;
	return true;
}

bool
ctl_parse_request(const char *line, size_t len, struct ctl_request *req,
    struct ctl_error *err)
{
	size_t end = len, i, t0;
	enum ctl_verb verb;

	memset(req, 0, sizeof(*req));
	err->reason = err->text = NULL;

	/* First, so nothing below ever sees NUL, CR, LF or an escape. */
	for (i = 0; i < len; i++)
		if (is_ctl(line[i]))
			return refuse(err, "bad_request", "control character in request");

	while (end > 0 && is_ws(line[end - 1]))
		end--;
	i = skip_ws(line, end, 0);
	if (i == end)
		return refuse(err, "empty_request", "empty request line");

	t0 = i;
	while (i < end && !is_ws(line[i]))
		i++;
	for (verb = 0; verb < CTL__VERB_COUNT; verb++)
		if (strlen(verbs[verb].word) == i - t0 &&
		    ascii_ieq(verbs[verb].word, line + t0, i - t0))
			break;
	if (verb == CTL__VERB_COUNT)
		return refuse(err, "unknown_verb",
		    "unknown verb; try VERIFY, CHECK, DOMAIN, FORGET, STATS, PING or QUIT");
	req->verb = verb;

	i = skip_ws(line, end, i);
	if (verbs[verb].arg != 0) {
		if (i == end)
			return refuse(err, "missing_argument", verbs[verb].missing);
		t0 = i;
		i = token_end(line, end, i);
		req->arg = line + t0;
		req->arg_len = i - t0;
		i = skip_ws(line, end, i);
	}
	if (verb != CTL_VERIFY) {
		if (i != end)
			return refuse(err, "bad_argument", verbs[verb].extra);
		return true;
	}

	while (i < end) {
		t0 = i;
		i = token_end(line, end, i);
		const char *tok = line + t0;
		size_t n = i - t0;

		if (n == 5 && ascii_ieq(tok, "fresh", 5)) {
			if (req->fresh)
				return refuse(err, "bad_argument", "fresh given twice");
			req->fresh = true;
		} else if (n >= 8 && ascii_ieq(tok, "timeout=", 8)) {
			if (req->has_timeout)
				return refuse(err, "bad_argument", "timeout= given twice");
			if (!parse_timeout(tok + 8, n - 8, &req->timeout_ms))
				return refuse(err, "bad_argument", TEXT_TIMEOUT);
			req->has_timeout = true;
		} else
			return refuse(err, "bad_argument",
			    "unknown option; VERIFY takes timeout=<seconds> and fresh");
		i = skip_ws(line, end, i);
	}
	return true;
}

/* ---- formatting ---- */

void
ctl_result_init(struct ctl_result *r, enum reason reason)
{
	/* Field by field, not memset: the struct is ~800 octets of buffers
	 * that only need their first octet cleared, and a cache hit pays for
	 * this on every answer. */
	r->code = 0;
	r->enhanced[0] = '\0';
	r->mx[0] = '\0';
	r->text[0] = '\0';
	r->reason = reason;
	r->verdict = reason_verdict(reason);
	r->catch_all = TRI_UNKNOWN;
	r->write_catch_all = false;
	r->cached = TRI_UNKNOWN;
	r->age = -1;
	r->ms = -1;
	r->tls = TRI_UNKNOWN;
}

/* Copies while it fits, measures always. */
static void
put(struct wr *w, const char *s, size_t n)
{
	if (w->out != NULL && w->len <= w->cap && n <= w->cap - w->len)
		memcpy(w->out + w->len, s, n);
	w->len += n;
}

static void
put_char(struct wr *w, char c)
{
	put(w, &c, 1);
}

static void
put_str(struct wr *w, const char *s)
{
	put(w, s, strlen(s));
}

/* Decimal by hand: snprintf's format interpreter was a tenth of the cost
 * of a cached answer, which writes up to three numbers. */
static void
put_long(struct wr *w, long v)
{
	char num[24];
	size_t i = sizeof(num);
	/* In unsigned arithmetic, so that LONG_MIN negates safely. */
	unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;

	do {
		num[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		num[--i] = '-';
	put(w, num + i, sizeof(num) - i);
}

/* Heads, keys and reason words come from our own code, but a slip there
 * must still not break the line. */
static void
put_word(struct wr *w, const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char u = (unsigned char)*s;

		put_char(w, u > 0x20 && u < 0x7f ? *s : '?');
	}
}

static bool
value_is_token(const char *v, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char u = (unsigned char)v[i];

		if (u <= 0x20 || u >= 0x7f || u == '"' || u == '\\')
			return false;
	}
	return true;
}

/* How many leading octets of a[0..n) go out as they are, whatever the
 * quoting state: not a control octet, not white space, not '"' or '\\'. */
static size_t
plain_run(const char *a, size_t n)
{
	size_t i = 0;

	while (i < n && !is_ctl(a[i]) && !is_ws(a[i]) && a[i] != '"' && a[i] != '\\')
		i++;
	return i;
}

static void
put_value(struct wr *w, const char *v, size_t n, bool force_quote)
{
	if (v == NULL)
		n = 0;
	if (!force_quote && value_is_token(v, n)) {
		put(w, v, n);
		return;
	}
	put_char(w, '"');
	for (size_t i = 0; i < n; i++) {
		size_t run = plain_run(v + i, n - i);
		if (run > 0) {
			put(w, v + i, run);
			i += run - 1;
			continue;
		}
		if (v[i] == '"' || v[i] == '\\') {
			put_char(w, '\\');
			put_char(w, v[i]);
		} else
			put_char(w, is_ctl(v[i]) || v[i] == '\t' ? '?' : v[i]);
	}
	put_char(w, '"');
}

/*
 * The address as the client wrote it, so it can match answers to questions.
 * It came through token_end() (or the syntax check), so the substitutions
 * below only fire for callers passing something else: they keep the line
 * one address token followed by key=value pairs.
 */
static void
put_addr(struct wr *w, const char *a, size_t n)
{
	bool quoted = false, escaped = false;

	if (n == 0) {
		put(w, "\"\"", 2);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		/* Plain runs change no state: copied whole (the common case is
		 * an address that is one run). */
		size_t run = escaped ? 0 : plain_run(a + i, n - i);
		if (run > 0) {
			put(w, a + i, run);
			i += run - 1;
			continue;
		}
		char c = a[i];

		if (is_ctl(c) || (!quoted && is_ws(c)))
			c = '?';
		put_char(w, c);
		if (escaped)
			escaped = false;
		else if (quoted && c == '\\')
			escaped = true;
		else if (c == '"')
			quoted = !quoted;
	}
	if (escaped)
		put_char(w, '?');
	if (quoted)
		put_char(w, '"');
}

static const char *
tri_name(enum tristate t)
{
	return t == TRI_YES ? "yes" : t == TRI_NO ? "no" : "unknown";
}

static void
fmt_result(struct wr *w, const char *address, size_t address_len,
    const struct ctl_result *r)
{
	size_t n;

	put_str(w, verdict_name(r->verdict));
	put_char(w, ' ');
	put_addr(w, address, address == NULL ? 0 : address_len);
	put_str(w, " reason=");
	put_str(w, reason_name(r->reason));
	if (r->code > 0) {
		put_str(w, " code=");
		put_long(w, r->code);
	}
	/* strnlen: a field filled to the brim without NUL must not be overrun. */
	if ((n = strnlen(r->enhanced, sizeof(r->enhanced))) > 0) {
		put_str(w, " enhanced=");
		put_value(w, r->enhanced, n, false);
	}
	if ((n = strnlen(r->mx, sizeof(r->mx))) > 0) {
		put_str(w, " mx=");
		put_value(w, r->mx, n, false);
	}
	if (r->write_catch_all) {
		put_str(w, " catch_all=");
		put_str(w, tri_name(r->catch_all));
	}
	if (r->cached == TRI_YES || r->cached == TRI_NO) {
		put_str(w, " cached=");
		put_str(w, tri_name(r->cached));
	}
	if (r->age >= 0) {
		put_str(w, " age=");
		put_long(w, r->age);
	}
	if (r->ms >= 0) {
		put_str(w, " ms=");
		put_long(w, r->ms);
	}
	if (r->tls == TRI_YES || r->tls == TRI_NO) {
		put_str(w, " tls=");
		put_str(w, tri_name(r->tls));
	}
	/* Always quoted, as design.md shows it: scripts can rely on text="...". */
	if ((n = strnlen(r->text, sizeof(r->text))) > 0) {
		put_str(w, " text=");
		put_value(w, r->text, n, true);
	}
	put_char(w, '\n');
}

static void
fmt_error(struct wr *w, const char *reason, const char *text)
{
	put_str(w, "error ");
	put_word(w, reason != NULL && *reason != '\0' ? reason : "internal_error");
	/* The grammar says `"text=" quoted`: never a bare token here. */
	if (text != NULL && *text != '\0') {
		put_str(w, " text=");
		put_value(w, text, strlen(text), true);
	}
	put_char(w, '\n');
}

static void
fmt_line(struct wr *w, const char *head, const char *subject,
    const char *const *kv)
{
	put_word(w, head != NULL ? head : "");
	if (subject != NULL) {
		put_char(w, ' ');
		put_addr(w, subject, strlen(subject));
	}
	for (size_t i = 0; kv != NULL && kv[i] != NULL; i += 2) {
		put_char(w, ' ');
		put_word(w, kv[i]);
		put_char(w, '=');
		put_value(w, kv[i + 1], kv[i + 1] != NULL ? strlen(kv[i + 1]) : 0, false);
		if (kv[i + 1] == NULL)
			break; /* odd list: the NULL ends it */
	}
	put_char(w, '\n');
}

/* One pass: put() writes while the line fits and keeps counting past the
 * end, so an answer costs one walk over its fields; a line that does not
 * fit returns 0, and the caller appends nothing.  out == NULL measures. */
#define FMT_ONE_PASS(out, cap, call) do { \
	struct wr w_ = { NULL, (cap), 0 }; \
	w_.out = (out); \
	call; \
	if (w_.len > (cap) || (out) == NULL) \
		return 0; \
	return w_.len; \
} while (0)

size_t
ctl_fmt_result(char *out, size_t cap, const char *address, size_t address_len,
    const struct ctl_result *r)
{
	FMT_ONE_PASS(out, cap, fmt_result(&w_, address, address_len, r));
}

size_t
ctl_fmt_error(char *out, size_t cap, const char *reason, const char *text)
{
	FMT_ONE_PASS(out, cap, fmt_error(&w_, reason, text));
}

size_t
ctl_fmt_line(char *out, size_t cap, const char *head, const char *subject,
    const char *const *kv)
{
	FMT_ONE_PASS(out, cap, fmt_line(&w_, head, subject, kv));
}

size_t
ctl_fmt_value(char *out, size_t cap, const char *v, size_t vlen)
{
	FMT_ONE_PASS(out, cap, put_value(&w_, v, vlen, false));
}

/* ---- responses ---- */

static bool
word_is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(s, word, n) == 0;
}

/* A reason word: lowercase letters, digits and '_', as in vocab.h. */
static bool
reason_word(const char *s, size_t len)
{
	if (len == 0 || len > 32)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

bool
ctl_parse_response(const char *line, size_t len, struct ctl_response *resp,
    char *scratch, size_t scratch_cap)
{
	size_t end = len, i, t0, sp = 0;
	bool has_subject = false;

	memset(resp, 0, sizeof(*resp));
	if (line == NULL || scratch == NULL)
		return false;
	for (i = 0; i < len; i++)
		if (is_ctl(line[i]))
			return false;
	while (end > 0 && is_ws(line[end - 1]))
		end--;
	i = skip_ws(line, end, 0);

	t0 = i;
	while (i < end && !is_ws(line[i]))
		i++;
	if (i == t0)
		return false;
	if (verdict_from_name(line + t0, i - t0, &resp->verdict)) {
		resp->kind = CTL_RESP_RESULT;
		has_subject = true;
	} else if (word_is(line + t0, i - t0, "pong"))
		resp->kind = CTL_RESP_PONG;
	else if (word_is(line + t0, i - t0, "bye"))
		resp->kind = CTL_RESP_BYE;
	else if (word_is(line + t0, i - t0, "stats"))
		resp->kind = CTL_RESP_STATS;
	else if (word_is(line + t0, i - t0, "domain")) {
		resp->kind = CTL_RESP_DOMAIN;
		has_subject = true;
	} else if (word_is(line + t0, i - t0, "forgotten"))
		resp->kind = CTL_RESP_FORGOTTEN;
	else if (word_is(line + t0, i - t0, "error")) {
		resp->kind = CTL_RESP_ERROR;
		has_subject = true;
	} else
		return false;
	if (resp->kind != CTL_RESP_RESULT)
		resp->verdict = VERDICT_UNKNOWN;

	if (has_subject) {
		i = skip_ws(line, end, i);
		if (i == end)
			return false;
		t0 = i;
		i = token_end(line, end, i);
		resp->subject = line + t0;
		resp->subject_len = i - t0;
		if (resp->kind == CTL_RESP_ERROR)
			for (size_t k = 0; k < resp->subject_len; k++)
				if (!is_key_char(resp->subject[k]))
					return false;
	}

	for (;;) {
		if (i < end && !is_ws(line[i]))
			return false; /* fields are separated by whitespace */
		i = skip_ws(line, end, i);
		if (i == end)
			break;
		if (resp->n_kv == CTL_RESP_MAX_KV)
			return false;
		struct ctl_kv *kv = &resp->kv[resp->n_kv];

		t0 = i;
		while (i < end && is_key_char(line[i]))
			i++;
		if (i == t0 || i == end || line[i] != '=')
			return false;
		kv->key = line + t0;
		kv->key_len = i - t0;
		i++;

		size_t v0 = sp;
		if (i < end && line[i] == '"') {
			i++;
			for (;;) {
				if (i == end)
					return false; /* unterminated */
				char c = line[i++];
				if (c == '"')
					break;
				if (c == '\\') {
					if (i == end)
						return false;
					c = line[i++];
				}
				if (sp + 1 >= scratch_cap)
					return false;
				scratch[sp++] = c;
			}
		} else {
			for (; i < end && !is_ws(line[i]); i++) {
				if (line[i] == '"' || sp + 1 >= scratch_cap)
					return false;
				scratch[sp++] = line[i];
			}
			if (sp == v0)
				return false; /* `key=` with no value */
		}
		if (sp >= scratch_cap)
			return false;
		scratch[sp++] = '\0';
		kv->value = scratch + v0;
		kv->value_len = sp - 1 - v0;
		resp->n_kv++;
	}

	if (resp->kind == CTL_RESP_RESULT) {
		/* design.md lets reasons be added: a client must read a reason
		 * it does not know yet and act on the verdict.  The word's form
		 * is still checked. */
		if (resp->n_kv == 0 ||
		    !word_is(resp->kv[0].key, resp->kv[0].key_len, "reason") ||
		    !reason_word(resp->kv[0].value, resp->kv[0].value_len))
			return false;
	} else if (resp->kind == CTL_RESP_FORGOTTEN) {
		const struct ctl_kv *n = ctl_response_get(resp, "n");

		if (n == NULL || n->value_len == 0)
			return false;
		for (size_t k = 0; k < n->value_len; k++)
			if (!is_digit(n->value[k]))
				return false;
	}
	return true;
}

const struct ctl_kv *
ctl_response_get(const struct ctl_response *resp, const char *key)
{
	size_t n = strlen(key);

	for (size_t i = 0; i < resp->n_kv; i++)
		if (resp->kv[i].key_len == n && memcmp(resp->kv[i].key, key, n) == 0)
			return &resp->kv[i];
	return NULL;
}
