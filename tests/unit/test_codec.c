/*
 * test_codec — the control protocol codec (src/lib/codec.c): request
 * parsing, response formatting (quoting, sanitising, bounded output),
 * response parsing, and format -> parse round trips with hostile values.
 *
 * Inputs are copied into heap buffers of their exact length so that ASan
 * catches any read past the end of a line.
 */
#include "autoconfig.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "vocab.h"

#define LEN_STR ((size_t)-1)

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		print_error("check failed: %s\n", #cond); \
		fail_msg(__VA_ARGS__); \
	} \
} while (0)

/* A copy of exactly n octets on the heap: reading past it is an ASan error. */
static char *
dup_exact(const char *s, size_t n)
{
	char *p = malloc(n > 0 ? n : 1);

	assert_non_null(p);
	if (n > 0)
		memcpy(p, s, n);
	return p;
}

/* Printable rendering of a line for failure messages. */
static const char *
show(const char *s, size_t n)
{
	static char buf[4096];
	size_t o = 0;

	for (size_t i = 0; i < n && o + 5 < sizeof(buf); i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02x", c);
	}
	buf[o] = '\0';
	return buf;
}

/* memmem without depending on _GNU_SOURCE. */
static const char *
find(const char *hay, size_t n, const char *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return hay + i;
	return NULL;
}

/* How many octets c start at p, not looking at or past end. */
static size_t
run_of(const char *p, const char *end, char c)
{
	size_t n = 0;

	while (p + n < end && p[n] == c)
		n++;
	return n;
}

/* ------------------------------------------------------------------ */
/* requests                                                            */
/* ------------------------------------------------------------------ */

struct req_case {
	const char *line;
	size_t len;         /* LEN_STR: strlen(line) */
	const char *reason; /* NULL: must parse */
	enum ctl_verb verb;
	const char *arg;    /* expected raw token, NULL for none */
	uint32_t timeout_ms; /* 0: no timeout= */
	bool fresh;
};

#define OK(l, v, a) { l, LEN_STR, NULL, CTL_##v, a, 0, false }
#define OKT(l, a, ms, f) { l, LEN_STR, NULL, CTL_VERIFY, a, ms, f }
#define BAD(l, why) { l, LEN_STR, why, 0, NULL, 0, false }
#define BADN(l, why) { l, sizeof(l) - 1, why, 0, NULL, 0, false }

static const struct req_case req_cases[] = {
	/* verbs, case-insensitive, every one of them */
	OK("VERIFY alice@example.org", VERIFY, "alice@example.org"),
	OK("verify alice@example.org", VERIFY, "alice@example.org"),
	OK("VeRiFy alice@example.org", VERIFY, "alice@example.org"),
	OK("CHECK carol@example.org", CHECK, "carol@example.org"),
	OK("check carol@example.org", CHECK, "carol@example.org"),
	OK("DOMAIN example.org", DOMAIN, "example.org"),
	OK("domain example.org", DOMAIN, "example.org"),
	OK("FORGET example.org", FORGET, "example.org"),
	OK("Forget bob@example.org", FORGET, "bob@example.org"),
	OK("STATS", STATS, NULL),
	OK("stats", STATS, NULL),
	OK("PING", PING, NULL),
	OK("ping", PING, NULL),
	OK("QUIT", QUIT, NULL),
	OK("qUiT", QUIT, NULL),

	/* separators: SP and HTAB, several; whitespace around the line */
	OK("  VERIFY\t \talice@example.org \t ", VERIFY, "alice@example.org"),
	OK("\tPING\t", PING, NULL),
	OK("   STATS   ", STATS, NULL),
	OK("CHECK\t\tx@y.example", CHECK, "x@y.example"),

	/* quoted strings keep SP/HTAB inside one token, raw as written */
	OK("VERIFY \"john doe\"@example.org", VERIFY, "\"john doe\"@example.org"),
	OK("VERIFY \"john\tdoe\"@example.org", VERIFY, "\"john\tdoe\"@example.org"),
	OK("CHECK \"a  b\"@x.example", CHECK, "\"a  b\"@x.example"),
	OK("VERIFY \"john\\\" doe\"@example.org", VERIFY, "\"john\\\" doe\"@example.org"),
	OK("VERIFY a\"b c\"d@x.example", VERIFY, "a\"b c\"d@x.example"),
	OK("VERIFY \"\"@x.example", VERIFY, "\"\"@x.example"),
	/* unterminated: the token runs to the end (a verdict, not an error) */
	OK("VERIFY \"unterminated fresh timeout=3", VERIFY,
	    "\"unterminated fresh timeout=3"),
	OK("VERIFY \"trailing backslash\\", VERIFY, "\"trailing backslash\\"),
	/* trailing whitespace belongs to the line, not to an open quote */
	OK("VERIFY \"unterminated \t ", VERIFY, "\"unterminated"),
	OK("VERIFY \"esc\\\"aped fresh", VERIFY, "\"esc\\\"aped fresh"),
	/* bad addresses are not protocol errors */
	OK("VERIFY bob@@example.org", VERIFY, "bob@@example.org"),
	OK("VERIFY @", VERIFY, "@"),
	/* the first token is the address even when it looks like an option */
	OK("VERIFY fresh", VERIFY, "fresh"),
	OK("VERIFY timeout=5", VERIFY, "timeout=5"),
	/* DOMAIN/FORGET accept quoted tokens too */
	OK("FORGET \"a b\"@example.org", FORGET, "\"a b\"@example.org"),

	/* VERIFY options, any order, case-insensitive names */
	OKT("VERIFY a@b.example fresh", "a@b.example", 0, true),
	OKT("VERIFY a@b.example FRESH", "a@b.example", 0, true),
	OKT("VERIFY a@b.example timeout=2.5", "a@b.example", 2500, false),
	OKT("VERIFY a@b.example TIMEOUT=2.5", "a@b.example", 2500, false),
	OKT("VERIFY a@b.example Timeout=10 Fresh", "a@b.example", 10000, true),
	OKT("VERIFY a@b.example fresh timeout=10", "a@b.example", 10000, true),
	OKT("verify a@b.example\tfresh\t\ttimeout=1 ", "a@b.example", 1000, true),
	OKT("VERIFY \"x y\"@b.example timeout=1 fresh", "\"x y\"@b.example", 1000, true),
	/* timeout values at and inside the bounds */
	OKT("VERIFY a@b.example timeout=3600", "a@b.example", 3600000, false),
	OKT("VERIFY a@b.example timeout=3600.0", "a@b.example", 3600000, false),
	OKT("VERIFY a@b.example timeout=3600.000000", "a@b.example", 3600000, false),
	OKT("VERIFY a@b.example timeout=0.001", "a@b.example", 1, false),
	OKT("VERIFY a@b.example timeout=0.0001", "a@b.example", 1, false),
	OKT("VERIFY a@b.example timeout=1.2345", "a@b.example", 1235, false),
	OKT("VERIFY a@b.example timeout=007", "a@b.example", 7000, false),
	OKT("VERIFY a@b.example timeout=0000000000000000000003", "a@b.example", 3000, false),
	OKT("VERIFY a@b.example timeout=3599.999", "a@b.example", 3599999, false),
	OKT("VERIFY a@b.example timeout=1", "a@b.example", 1000, false),

	/* empty_request */
	BAD("", "empty_request"),
	BAD(" ", "empty_request"),
	BAD(" \t \t", "empty_request"),

	/* unknown_verb */
	BAD("FROB", "unknown_verb"),
	BAD("FROB alice@example.org", "unknown_verb"),
	BAD("VERIFYalice@example.org", "unknown_verb"),
	BAD("VERIF alice@example.org", "unknown_verb"),
	BAD("VERIFYY a@b", "unknown_verb"),
	BAD("\"VERIFY\" a@b", "unknown_verb"),
	BAD("P ING", "unknown_verb"),
	BAD("HELO example.org", "unknown_verb"),
	BAD("V\xc3\x89RIFY a@b", "unknown_verb"),

	/* bad_request: control octets anywhere, before anything else */
	BADN("VERIFY a\0b@example.org", "bad_request"),
	BADN("\0", "bad_request"),
	BADN("PING\0", "bad_request"),
	BAD("PING\r", "bad_request"),
	BAD("VERIFY a@b\rQUIT", "bad_request"),
	BAD("VERIFY a@b\nQUIT", "bad_request"),
	BAD("VERIFY \"a\x01\"@b", "bad_request"),
	BAD("VERIFY a@b\x7f", "bad_request"),
	BAD("\x1b[31mPING", "bad_request"),
	BAD("FROB \x1f", "bad_request"),
	BAD("VERIFY\x0b" "a@b", "bad_request"),
	BAD("VERIFY\x0c" "a@b", "bad_request"),

	/* missing_argument */
	BAD("VERIFY", "missing_argument"),
	BAD("verify   \t", "missing_argument"),
	BAD("CHECK", "missing_argument"),
	BAD("DOMAIN", "missing_argument"),
	BAD("FORGET ", "missing_argument"),

	/* bad_argument: surplus tokens */
	BAD("CHECK a@b.example c@d.example", "bad_argument"),
	BAD("CHECK a@b.example fresh", "bad_argument"),
	BAD("DOMAIN a.example b.example", "bad_argument"),
	BAD("FORGET a.example b", "bad_argument"),
	BAD("STATS now", "bad_argument"),
	BAD("PING x", "bad_argument"),
	BAD("QUIT please", "bad_argument"),
	BAD("PING \"\"", "bad_argument"),
	/* outside quotes a backslash does not escape the separator */
	BAD("CHECK a\\ b", "bad_argument"),

	/* bad_argument: options */
	BAD("VERIFY a@b.example frsh", "bad_argument"),
	BAD("VERIFY a@b.example fresh fresh", "bad_argument"),
	BAD("VERIFY a@b.example fresh FRESH", "bad_argument"),
	BAD("VERIFY a@b.example fresh=1", "bad_argument"),
	BAD("VERIFY a@b.example freshly", "bad_argument"),
	BAD("VERIFY a@b.example \"fresh\"", "bad_argument"),
	BAD("VERIFY a@b.example timeout", "bad_argument"),
	BAD("VERIFY a@b.example timeout=1 timeout=2", "bad_argument"),
	BAD("VERIFY a@b.example timeout=1 fresh timeout=1", "bad_argument"),
	BAD("VERIFY a@b.example time=1", "bad_argument"),
	BAD("VERIFY a@b.example c@d.example", "bad_argument"),

	/* bad_argument: timeout values */
	BAD("VERIFY a@b.example timeout=", "bad_argument"),
	BAD("VERIFY a@b.example timeout=0", "bad_argument"),
	BAD("VERIFY a@b.example timeout=0.0", "bad_argument"),
	BAD("VERIFY a@b.example timeout=0.0000", "bad_argument"),
	BAD("VERIFY a@b.example timeout=000", "bad_argument"),
	BAD("VERIFY a@b.example timeout=-1", "bad_argument"),
	BAD("VERIFY a@b.example timeout=+5", "bad_argument"),
	BAD("VERIFY a@b.example timeout=1e3", "bad_argument"),
	BAD("VERIFY a@b.example timeout=3601", "bad_argument"),
	BAD("VERIFY a@b.example timeout=3600.5", "bad_argument"),
	BAD("VERIFY a@b.example timeout=3600.0001", "bad_argument"),
	BAD("VERIFY a@b.example timeout=3600.0000000001", "bad_argument"),
	BAD("VERIFY a@b.example timeout=36000", "bad_argument"),
	BAD("VERIFY a@b.example timeout=4294967296", "bad_argument"),
	BAD("VERIFY a@b.example timeout=99999999999999999999999999", "bad_argument"),
	BAD("VERIFY a@b.example timeout=abc", "bad_argument"),
	BAD("VERIFY a@b.example timeout=5s", "bad_argument"),
	BAD("VERIFY a@b.example timeout=1.", "bad_argument"),
	BAD("VERIFY a@b.example timeout=.5", "bad_argument"),
	BAD("VERIFY a@b.example timeout=1.2.3", "bad_argument"),
	BAD("VERIFY a@b.example timeout=2,5", "bad_argument"),
	BAD("VERIFY a@b.example timeout=0x10", "bad_argument"),
	BAD("VERIFY a@b.example timeout=inf", "bad_argument"),
	BAD("VERIFY a@b.example timeout=nan", "bad_argument"),
	BAD("VERIFY a@b.example timeout=\"5\"", "bad_argument"),
	BAD("VERIFY a@b.example timeout==5", "bad_argument"),
	BAD("VERIFY a@b.example timeout=\xd9\xa5", "bad_argument"), /* Arabic-Indic 5 */
};

static void
test_request_table(void **state)
{
	for (size_t i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
		const struct req_case *c = &req_cases[i];
		size_t len = c->len == LEN_STR ? strlen(c->line) : c->len;
		char *line = dup_exact(c->line, len);
		struct ctl_request req;
		struct ctl_error err = { "sentinel", "sentinel" };
		bool ok = ctl_parse_request(line, len, &req, &err);

		if (c->reason != NULL) {
			CHECK(!ok, "case %zu '%s': accepted, expected %s", i,
			    show(c->line, len), c->reason);
			CHECK(err.reason != NULL && strcmp(err.reason, c->reason) == 0,
			    "case %zu '%s': reason %s, expected %s", i,
			    show(c->line, len), err.reason ? err.reason : "(null)", c->reason);
			CHECK(err.text != NULL && err.text[0] != '\0',
			    "case %zu: no error text", i);
			/* The text is echoed in an error line: it must be printable. */
			for (const char *t = err.text; *t != '\0'; t++)
				CHECK(*t >= 0x20 && *t < 0x7f, "case %zu: unprintable text", i);
			free(line);
			continue;
		}
		CHECK(ok, "case %zu '%s': refused with %s (%s)", i, show(c->line, len),
		    err.reason, err.text);
		CHECK(req.verb == c->verb, "case %zu '%s': verb %d, expected %d", i,
		    show(c->line, len), req.verb, c->verb);
		if (c->arg == NULL) {
			CHECK(req.arg == NULL && req.arg_len == 0, "case %zu: unexpected arg", i);
		} else {
			CHECK(req.arg != NULL, "case %zu: no arg", i);
			/* The argument points into the line, not at a copy. */
			CHECK(req.arg >= line && req.arg + req.arg_len <= line + len,
			    "case %zu: arg outside the line", i);
			CHECK(req.arg_len == strlen(c->arg) &&
			    memcmp(req.arg, c->arg, req.arg_len) == 0,
			    "case %zu: arg '%s', expected '%s'", i,
			    show(req.arg, req.arg_len), c->arg);
		}
		CHECK(req.has_timeout == (c->timeout_ms != 0),
		    "case %zu: has_timeout %d", i, req.has_timeout);
		CHECK(req.timeout_ms == c->timeout_ms, "case %zu: timeout_ms %u, expected %u",
		    i, (unsigned)req.timeout_ms, (unsigned)c->timeout_ms);
		CHECK(req.fresh == c->fresh, "case %zu: fresh %d", i, req.fresh);
		free(line);
	}
}

static void
expect_error_text(const char *line, const char *reason, const char *text)
{
	struct ctl_request req;
	struct ctl_error err;

	assert_false(ctl_parse_request(line, strlen(line), &req, &err));
	assert_string_equal(err.reason, reason);
	assert_string_equal(err.text, text);
}

static void
test_request_error_texts(void **state)
{
	expect_error_text("VERIFY", "missing_argument", "VERIFY needs an address");
	expect_error_text("CHECK", "missing_argument", "CHECK needs an address");
	expect_error_text("DOMAIN", "missing_argument", "DOMAIN needs a domain");
	expect_error_text("FORGET", "missing_argument",
	    "FORGET needs an address or a domain");
	expect_error_text("PING pong", "bad_argument", "PING takes no argument");
	expect_error_text("CHECK a b", "bad_argument", "CHECK takes exactly one address");
	expect_error_text("VERIFY a@b timeout=0", "bad_argument",
	    "timeout must be a number of seconds in (0, 3600]");
	expect_error_text("VERIFY a@b fresh fresh", "bad_argument", "fresh given twice");
}

/* A line as long as the protocol allows still parses; the parser does not
 * impose a shorter limit of its own. */
static void
test_request_long_line(void **state)
{
	size_t len = CTL_LINE_MAX - 2; /* CRLF removed */
	char *line = malloc(len);
	struct ctl_request req;
	struct ctl_error err;

	assert_non_null(line);
	memcpy(line, "VERIFY ", 7);
	memset(line + 7, 'a', len - 7);
	assert_true(ctl_parse_request(line, len, &req, &err));
	assert_int_equal(req.verb, CTL_VERIFY);
	assert_int_equal(req.arg_len, len - 7);
	assert_ptr_equal(req.arg, line + 7);
	free(line);
}

/* The usage table and the parser share CTL_VERB_LIST: every name parses
 * back to its verb, and every verb has usage help for probectl. */
static void
test_verb_names(void **state)
{
	for (int v = 0; v < CTL__VERB_COUNT; v++) {
		const char *name = ctl_verb_name((enum ctl_verb)v);
		char line[64];
		struct ctl_request req;
		struct ctl_error err;

		assert_non_null(name);
		assert_true(name[0] != '\0');
		assert_non_null(ctl_verb_help((enum ctl_verb)v));
		assert_true(ctl_verb_help((enum ctl_verb)v)[0] != '\0');
		assert_non_null(ctl_verb_usage((enum ctl_verb)v));
		int n = snprintf(line, sizeof(line), "%s x@y.example", name);
		assert_true(n > 0);
		bool ok = ctl_parse_request(line, (size_t)n, &req, &err);
		if (ctl_verb_usage((enum ctl_verb)v)[0] == '\0') {
			assert_false(ok);
			assert_string_equal(err.reason, "bad_argument");
			assert_true(ctl_parse_request(name, strlen(name), &req, &err));
		} else
			assert_true(ok);
		assert_int_equal(req.verb, v);
	}
	assert_string_equal(ctl_verb_name(CTL_VERIFY), "VERIFY");
	assert_string_equal(ctl_verb_name(CTL_QUIT), "QUIT");
	assert_non_null(ctl_verb_name(CTL__VERB_COUNT));
	assert_non_null(ctl_verb_usage((enum ctl_verb)99));
	assert_non_null(ctl_verb_help((enum ctl_verb)-1));
}

/* ------------------------------------------------------------------ */
/* formatting                                                          */
/* ------------------------------------------------------------------ */

static void
expect_out(const char *out, size_t n, const char *want)
{
	if (n != strlen(want) || memcmp(out, want, n) != 0) {
		char got[4096];

		snprintf(got, sizeof(got), "%s", show(out, n));
		fail_msg("got  '%s'\nwant '%s'", got, show(want, strlen(want)));
	}
}

static size_t
fmt_addr(char *out, size_t cap, const char *addr, const struct ctl_result *r)
{
	return ctl_fmt_result(out, cap, addr, strlen(addr), r);
}

static void
test_fmt_result_minimal(void **state)
{
	struct ctl_result r;
	char out[1024];
	size_t n;

	ctl_result_init(&r, REASON_SYNTAX);
	assert_int_equal(r.verdict, VERDICT_UNDELIVERABLE);
	n = fmt_addr(out, sizeof(out), "bob@@example.org", &r);
	expect_out(out, n, "undeliverable bob@@example.org reason=syntax\n");

	ctl_result_init(&r, REASON_NOT_CACHED);
	n = fmt_addr(out, sizeof(out), "carol@example.org", &r);
	expect_out(out, n, "unknown carol@example.org reason=not_cached\n");

	/* The quoted local part is echoed as written. */
	ctl_result_init(&r, REASON_PENDING);
	n = fmt_addr(out, sizeof(out), "\"john doe\"@example.org", &r);
	expect_out(out, n, "unknown \"john doe\"@example.org reason=pending\n");
}

static void
test_fmt_result_full(void **state)
{
	struct ctl_result r;
	char out[1024];
	size_t n;

	ctl_result_init(&r, REASON_ACCEPTED);
	r.code = 250;
	strcpy(r.enhanced, "2.1.5");
	strcpy(r.mx, "mx1.example.org");
	r.write_catch_all = true;
	r.catch_all = TRI_NO;
	r.cached = TRI_NO;
	r.ms = 412;
	r.tls = TRI_YES;
	strcpy(r.text, "Ok");
	n = fmt_addr(out, sizeof(out), "alice@example.org", &r);
	expect_out(out, n, "deliverable alice@example.org reason=accepted code=250 "
	    "enhanced=2.1.5 mx=mx1.example.org catch_all=no cached=no ms=412 tls=yes "
	    "text=\"Ok\"\n");

	/* Every key, in the documented order; 0 is a value, not "unset". */
	ctl_result_init(&r, REASON_NO_SUCH_USER);
	r.code = 550;
	strcpy(r.enhanced, "5.1.1");
	strcpy(r.mx, "mx2.example.org");
	r.write_catch_all = true;
	r.catch_all = TRI_UNKNOWN;
	r.cached = TRI_YES;
	r.age = 0;
	r.ms = 0;
	r.tls = TRI_NO;
	strcpy(r.text, "5.1.1 <bob@example.org>: Recipient address rejected");
	n = fmt_addr(out, sizeof(out), "bob@example.org", &r);
	expect_out(out, n, "undeliverable bob@example.org reason=no_such_user code=550 "
	    "enhanced=5.1.1 mx=mx2.example.org catch_all=unknown cached=yes age=0 ms=0 "
	    "tls=no text=\"5.1.1 <bob@example.org>: Recipient address rejected\"\n");

	/* The verdict field is written as given. */
	ctl_result_init(&r, REASON_CATCH_ALL);
	r.write_catch_all = true;
	r.catch_all = TRI_YES;
	r.age = 86399;
	n = fmt_addr(out, sizeof(out), "x@example.org", &r);
	expect_out(out, n, "risky x@example.org reason=catch_all catch_all=yes age=86399\n");

	/* Numbers at their edges (the decimal writer is the codec's own). */
	ctl_result_init(&r, REASON_ACCEPTED);
	r.code = 999;
	r.age = LONG_MAX;
	r.ms = 1000000;
	n = fmt_addr(out, sizeof(out), "x@example.org", &r);
	char want[256];
	snprintf(want, sizeof(want), "deliverable x@example.org reason=accepted code=999 "
	    "age=%ld ms=1000000\n", LONG_MAX);
	expect_out(out, n, want);
	r.age = 10;
	r.ms = 9;
	n = fmt_addr(out, sizeof(out), "x@example.org", &r);
	expect_out(out, n, "deliverable x@example.org reason=accepted code=999 age=10 ms=9\n");
}

static void
test_fmt_result_omitted(void **state)
{
	struct ctl_result r;
	char out[1024];
	size_t n;

	ctl_result_init(&r, REASON_TEMPFAIL);
	assert_int_equal(r.code, 0);
	assert_int_equal(r.age, -1);
	assert_int_equal(r.ms, -1);
	assert_int_equal(r.cached, TRI_UNKNOWN);
	assert_int_equal(r.tls, TRI_UNKNOWN);
	assert_false(r.write_catch_all);
	r.catch_all = TRI_YES; /* not written: write_catch_all is false */
	r.code = -4;           /* not a reply code */
	r.age = -1;
	r.ms = -7;
	n = fmt_addr(out, sizeof(out), "a@b.example", &r);
	expect_out(out, n, "unknown a@b.example reason=tempfail\n");

	/* Only the set ones appear, still in order. */
	r.code = 451;
	r.tls = TRI_YES;
	n = fmt_addr(out, sizeof(out), "a@b.example", &r);
	expect_out(out, n, "unknown a@b.example reason=tempfail code=451 tls=yes\n");
}

static void
test_fmt_result_hostile_fields(void **state)
{
	struct ctl_result r;
	char out[2048];
	size_t n;

	/* Server text with CR LF cannot start a second response line. */
	ctl_result_init(&r, REASON_NO_SUCH_USER);
	strcpy(r.text, "no\r\ndeliverable evil@x reason=accepted");
	n = fmt_addr(out, sizeof(out), "a@b.example", &r);
	expect_out(out, n, "undeliverable a@b.example reason=no_such_user "
	    "text=\"no??deliverable evil@x reason=accepted\"\n");

	/* Quotes and backslashes escaped; controls, HTAB and DEL to '?';
	 * 8-bit passed through. */
	ctl_result_init(&r, REASON_BLOCKED);
	strcpy(r.text, "say \"hi\" \\ bye\t\x1b[2J\x7f caf\xc3\xa9");
	strcpy(r.mx, "mx \"1\"");
	strcpy(r.enhanced, "5.7.\xff");
	n = fmt_addr(out, sizeof(out), "a@b.example", &r);
	expect_out(out, n, "unknown a@b.example reason=blocked enhanced=\"5.7.\xff\" "
	    "mx=\"mx \\\"1\\\"\" text=\"say \\\"hi\\\" \\\\ bye??[2J? caf\xc3\xa9\"\n");

	/* Fields filled to the brim without a NUL are bounded by their size. */
	ctl_result_init(&r, REASON_ACCEPTED);
	memset(r.enhanced, 'e', sizeof(r.enhanced));
	memset(r.mx, 'm', sizeof(r.mx));
	memset(r.text, 't', sizeof(r.text));
	n = fmt_addr(out, sizeof(out), "a@b.example", &r);
	assert_int_not_equal(n, 0);
	const char *p = find(out, n, " enhanced=", 10);
	assert_non_null(p);
	assert_int_equal(run_of(p + 10, out + n, 'e'), sizeof(r.enhanced));
	assert_memory_equal(p + 10 + sizeof(r.enhanced), " mx=", 4);
	p = find(out, n, " text=\"", 7);
	assert_non_null(p);
	assert_int_equal(run_of(p + 7, out + n, 't'), sizeof(r.text));
	assert_memory_equal(p + 7 + sizeof(r.text), "\"\n", 2);
	assert_int_equal(p + 7 + sizeof(r.text) + 2 - out, n);
}

static void
test_fmt_result_address(void **state)
{
	struct ctl_result r;
	char out[1024];
	size_t n;

	ctl_result_init(&r, REASON_SYNTAX);

	/* CR, LF, NUL (and other controls) never leave as themselves. */
	n = ctl_fmt_result(out, sizeof(out), "a\r\nb\0c\x1b@x", 9, &r);
	expect_out(out, n, "undeliverable a??b?c?@x reason=syntax\n");
	assert_null(memchr(out, '\r', n));
	assert_null(memchr(out, '\0', n));
	assert_ptr_equal(memchr(out, '\n', n), out + n - 1);

	/* An unterminated quoted string is closed so the line stays parseable. */
	n = fmt_addr(out, sizeof(out), "\"abc def", &r);
	expect_out(out, n, "undeliverable \"abc def\" reason=syntax\n");
	n = fmt_addr(out, sizeof(out), "\"abc\\", &r);
	expect_out(out, n, "undeliverable \"abc\\?\" reason=syntax\n");

	/* Separators outside quotes would split the token. */
	n = fmt_addr(out, sizeof(out), "a b@x", &r);
	expect_out(out, n, "undeliverable a?b@x reason=syntax\n");

	/* An empty address still leaves a token in its place. */
	n = ctl_fmt_result(out, sizeof(out), "", 0, &r);
	expect_out(out, n, "undeliverable \"\" reason=syntax\n");

	/* address_len bounds the read: no NUL needed. */
	n = ctl_fmt_result(out, sizeof(out), "a@b.exampleGARBAGE", 11, &r);
	expect_out(out, n, "undeliverable a@b.example reason=syntax\n");
}

static void
test_fmt_value(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
	} cases[] = {
		{ "2.1.5", 5, "2.1.5" },
		{ "mx1.example.org", 15, "mx1.example.org" },
		{ "a=b", 3, "a=b" },
		{ "", 0, "\"\"" },
		{ "a b", 3, "\"a b\"" },
		{ "a\"b", 3, "\"a\\\"b\"" },
		{ "a\\b", 3, "\"a\\\\b\"" },
		{ "\\", 1, "\"\\\\\"" },
		{ "\"", 1, "\"\\\"\"" },
		{ "a\tb", 3, "\"a?b\"" },
		{ "a\rb\nc", 5, "\"a?b?c\"" },
		{ "a\0b", 3, "\"a?b\"" },
		{ "\x7f", 1, "\"?\"" },
		{ "\x01\x1f", 2, "\"??\"" },
		{ "caf\xc3\xa9", 5, "\"caf\xc3\xa9\"" },
		{ "\xff", 1, "\"\xff\"" },
		{ "abcdef", 3, "abc" },
	};
	char out[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(out, 'Z', sizeof(out));
		size_t n = ctl_fmt_value(out, sizeof(out), cases[i].in, cases[i].len);
		expect_out(out, n, cases[i].want);
		/* A value is not a line: nothing after it. */
		assert_int_equal(out[n], 'Z');
	}
}

static void
test_fmt_error(void **state)
{
	char out[512];
	size_t n;

	n = ctl_fmt_error(out, sizeof(out), "unknown_verb", NULL);
	expect_out(out, n, "error unknown_verb\n");
	n = ctl_fmt_error(out, sizeof(out), "unknown_verb", "");
	expect_out(out, n, "error unknown_verb\n");
	/* The grammar says text= is always quoted, even a single word. */
	n = ctl_fmt_error(out, sizeof(out), "busy", "overloaded");
	expect_out(out, n, "error busy text=\"overloaded\"\n");
	n = ctl_fmt_error(out, sizeof(out), "bad_argument",
	    "timeout must be a number of seconds in (0, 3600]");
	expect_out(out, n, "error bad_argument text=\"timeout must be a number of "
	    "seconds in (0, 3600]\"\n");
	n = ctl_fmt_error(out, sizeof(out), "x", "a \"q\" \\ \r\n");
	expect_out(out, n, "error x text=\"a \\\"q\\\" \\\\ ??\"\n");
	/* A reason word with junk in it cannot break the line either. */
	n = ctl_fmt_error(out, sizeof(out), "bad reason\n", NULL);
	expect_out(out, n, "error bad?reason?\n");
}

static void
test_fmt_line(void **state)
{
	char out[512];
	size_t n;

	n = ctl_fmt_line(out, sizeof(out), "pong", NULL, NULL);
	expect_out(out, n, "pong\n");
	n = ctl_fmt_line(out, sizeof(out), "bye", NULL, NULL);
	expect_out(out, n, "bye\n");
	const char *forgot[] = { "n", "3", NULL };
	n = ctl_fmt_line(out, sizeof(out), "forgotten", NULL, forgot);
	expect_out(out, n, "forgotten n=3\n");
	const char *stats[] = { "inflight", "2", "clients", "1", "uptime", "3600", NULL };
	n = ctl_fmt_line(out, sizeof(out), "stats", NULL, stats);
	expect_out(out, n, "stats inflight=2 clients=1 uptime=3600\n");
	const char *dom[] = { "mx", "mx1.example.org mx2.example.org", "catch_all", "yes",
		"note", "", "why", "a\"\\\n", NULL };
	n = ctl_fmt_line(out, sizeof(out), "domain", "example.org", dom);
	expect_out(out, n, "domain example.org mx=\"mx1.example.org mx2.example.org\" "
	    "catch_all=yes note=\"\" why=\"a\\\"\\\\?\"\n");
	/* An empty kv list is no kv at all. */
	const char *none[] = { NULL };
	n = ctl_fmt_line(out, sizeof(out), "stats", NULL, none);
	expect_out(out, n, "stats\n");
	/* The subject gets the same treatment as an address. */
	n = ctl_fmt_line(out, sizeof(out), "domain", "ex\r\nample.org", NULL);
	expect_out(out, n, "domain ex??ample.org\n");
}

/* Lines append: a caller can fill one output buffer in sequence. */
static void
test_fmt_append(void **state)
{
	char out[64];
	size_t used = 0, n;
	struct ctl_result r;

	ctl_result_init(&r, REASON_NOT_CACHED);
	n = ctl_fmt_line(out + used, sizeof(out) - used, "pong", NULL, NULL);
	used += n;
	n = fmt_addr(out + used, sizeof(out) - used, "a@b.example", &r);
	used += n;
	n = ctl_fmt_error(out + used, sizeof(out) - used, "unknown_verb", NULL);
	used += n;
	expect_out(out, used, "pong\nunknown a@b.example reason=not_cached\nerror unknown_verb\n");
	/* No room for another: 0, and the buffer tail is not touched. */
	memset(out + used, 'Z', sizeof(out) - used);
	n = ctl_fmt_error(out + used, sizeof(out) - used, "bad_argument",
	    "a text that cannot fit in what is left");
	assert_int_equal(n, 0);
	for (size_t i = used; i < sizeof(out); i++)
		assert_int_equal(out[i], 'Z');
}

/*
 * Truncation: for every capacity below the line's length the formatter
 * returns 0 and leaves the buffer untouched; at exactly the length it
 * writes the whole line.
 */
enum fmt_kind { F_RESULT, F_ERROR, F_LINE, F_VALUE };

static size_t
fmt_any(enum fmt_kind k, char *out, size_t cap)
{
	static const char *const kv[] = { "n", "12", "text", "a \"b\" c", NULL };
	struct ctl_result r;

	switch (k) {
	case F_RESULT:
		ctl_result_init(&r, REASON_NO_SUCH_USER);
		r.code = 550;
		strcpy(r.enhanced, "5.1.1");
		strcpy(r.mx, "mx.example.org");
		r.write_catch_all = true;
		r.cached = TRI_NO;
		r.age = 5;
		r.ms = 120;
		r.tls = TRI_YES;
		strcpy(r.text, "No \"such\" user \\ here");
		return ctl_fmt_result(out, cap, "\"x y\"@example.org", 17, &r);
	case F_ERROR:
		return ctl_fmt_error(out, cap, "bad_argument", "unknown \"option\"");
	case F_LINE:
		return ctl_fmt_line(out, cap, "domain", "example.org", kv);
	case F_VALUE:
		return ctl_fmt_value(out, cap, "q\"\\ \x01", 5);
	}
	return 0;
}

static void
test_fmt_truncation(void **state)
{
	for (int k = F_RESULT; k <= F_VALUE; k++) {
		char full[1024], buf[1024];
		size_t len = fmt_any((enum fmt_kind)k, full, sizeof(full));

		assert_true(len > 0);
		if (k != F_VALUE)
			assert_int_equal(full[len - 1], '\n');
		for (size_t cap = 0; cap < len; cap++) {
			memset(buf, 'Z', sizeof(buf));
			CHECK(fmt_any((enum fmt_kind)k, buf, cap) == 0,
			    "kind %d cap %zu: wrote into a too small buffer", k, cap);
			/* Scratch within cap may be written (one pass); never
			 * an octet past it. */
			for (size_t i = cap; i < sizeof(buf); i++)
				CHECK(buf[i] == 'Z', "kind %d cap %zu: octet %zu past cap touched",
				    k, cap, i);
		}
		/* Exact fit, and no write past it. */
		char *exact = malloc(len);
		assert_non_null(exact);
		assert_int_equal(fmt_any((enum fmt_kind)k, exact, len), len);
		assert_memory_equal(exact, full, len);
		free(exact);
	}
	char c = 0;
	assert_int_equal(ctl_fmt_line(&c, 0, "pong", NULL, NULL), 0);
	assert_int_equal(ctl_fmt_line(NULL, 0, "pong", NULL, NULL), 0);
}

/* ------------------------------------------------------------------ */
/* response parsing                                                    */
/* ------------------------------------------------------------------ */

struct parsed {
	struct ctl_response resp;
	char *line;
	size_t len;
	char *scratch;
};

static bool
parse_n(struct parsed *p, const char *line, size_t len)
{
	size_t cap = len + CTL_RESP_MAX_KV;

	p->line = dup_exact(line, len);
	p->len = len;
	p->scratch = malloc(cap);
	assert_non_null(p->scratch);
	return ctl_parse_response(p->line, len, &p->resp, p->scratch, cap);
}

static bool
parse_s(struct parsed *p, const char *line)
{
	return parse_n(p, line, strlen(line));
}

static void
parsed_free(struct parsed *p)
{
	free(p->line);
	free(p->scratch);
}

static void
expect_kv(const struct ctl_response *resp, const char *key, const char *value)
{
	const struct ctl_kv *kv = ctl_response_get(resp, key);

	if (kv == NULL)
		fail_msg("no key %s", key);
	/* NUL-terminated and length-tracked alike. */
	if (kv->value_len != strlen(value) || memcmp(kv->value, value, kv->value_len) != 0 ||
	    kv->value[kv->value_len] != '\0')
		fail_msg("%s: got '%s', want '%s'", key, show(kv->value, kv->value_len), value);
}

static void
expect_subject(const struct ctl_response *resp, const char *want)
{
	if (resp->subject == NULL || resp->subject_len != strlen(want) ||
	    memcmp(resp->subject, want, resp->subject_len) != 0)
		fail_msg("subject '%s', want '%s'",
		    resp->subject ? show(resp->subject, resp->subject_len) : "(null)", want);
}

static void
test_parse_response_kinds(void **state)
{
	struct parsed p;

	assert_true(parse_s(&p, "pong"));
	assert_int_equal(p.resp.kind, CTL_RESP_PONG);
	assert_int_equal(p.resp.n_kv, 0);
	assert_null(p.resp.subject);
	parsed_free(&p);

	assert_true(parse_s(&p, "bye"));
	assert_int_equal(p.resp.kind, CTL_RESP_BYE);
	parsed_free(&p);

	assert_true(parse_s(&p, "stats inflight=2 clients=1 note=\"a b\""));
	assert_int_equal(p.resp.kind, CTL_RESP_STATS);
	assert_int_equal(p.resp.n_kv, 3);
	expect_kv(&p.resp, "inflight", "2");
	expect_kv(&p.resp, "clients", "1");
	expect_kv(&p.resp, "note", "a b");
	assert_null(ctl_response_get(&p.resp, "uptime"));
	assert_null(ctl_response_get(&p.resp, "inflight2"));
	assert_null(ctl_response_get(&p.resp, "inflig"));
	parsed_free(&p);

	assert_true(parse_s(&p, "stats"));
	assert_int_equal(p.resp.kind, CTL_RESP_STATS);
	assert_int_equal(p.resp.n_kv, 0);
	parsed_free(&p);

	assert_true(parse_s(&p, "domain example.org mx=mx1.example.org catch_all=yes"));
	assert_int_equal(p.resp.kind, CTL_RESP_DOMAIN);
	expect_subject(&p.resp, "example.org");
	expect_kv(&p.resp, "mx", "mx1.example.org");
	expect_kv(&p.resp, "catch_all", "yes");
	parsed_free(&p);

	assert_true(parse_s(&p, "domain example.org"));
	assert_int_equal(p.resp.n_kv, 0);
	parsed_free(&p);

	assert_true(parse_s(&p, "forgotten n=3"));
	assert_int_equal(p.resp.kind, CTL_RESP_FORGOTTEN);
	expect_kv(&p.resp, "n", "3");
	parsed_free(&p);

	assert_true(parse_s(&p, "error unknown_verb"));
	assert_int_equal(p.resp.kind, CTL_RESP_ERROR);
	expect_subject(&p.resp, "unknown_verb");
	assert_int_equal(p.resp.n_kv, 0);
	parsed_free(&p);

	assert_true(parse_s(&p, "error bad_argument text=\"timeout must be \\\"x\\\" \\\\ y\""));
	assert_int_equal(p.resp.kind, CTL_RESP_ERROR);
	expect_subject(&p.resp, "bad_argument");
	expect_kv(&p.resp, "text", "timeout must be \"x\" \\ y");
	parsed_free(&p);

	assert_true(parse_s(&p, "deliverable alice@example.org reason=accepted code=250 "
	    "enhanced=2.1.5 mx=mx1.example.org catch_all=no cached=no ms=412 tls=yes "
	    "text=\"Ok\""));
	assert_int_equal(p.resp.kind, CTL_RESP_RESULT);
	assert_int_equal(p.resp.verdict, VERDICT_DELIVERABLE);
	expect_subject(&p.resp, "alice@example.org");
	assert_int_equal(p.resp.n_kv, 9);
	assert_memory_equal(p.resp.kv[0].key, "reason", 6);
	expect_kv(&p.resp, "reason", "accepted");
	expect_kv(&p.resp, "code", "250");
	expect_kv(&p.resp, "enhanced", "2.1.5");
	expect_kv(&p.resp, "mx", "mx1.example.org");
	expect_kv(&p.resp, "catch_all", "no");
	expect_kv(&p.resp, "cached", "no");
	expect_kv(&p.resp, "ms", "412");
	expect_kv(&p.resp, "tls", "yes");
	expect_kv(&p.resp, "text", "Ok");
	/* Keys point into the line. */
	assert_true(p.resp.kv[1].key > p.line && p.resp.kv[1].key < p.line + p.len);
	parsed_free(&p);

	static const struct {
		const char *line;
		enum verdict v;
	} verdicts[] = {
		{ "undeliverable bob@@example.org reason=syntax", VERDICT_UNDELIVERABLE },
		{ "risky x@example.org reason=catch_all catch_all=yes", VERDICT_RISKY },
		{ "unknown carol@example.org reason=not_cached", VERDICT_UNKNOWN },
	};
	for (size_t i = 0; i < 3; i++) {
		assert_true(parse_s(&p, verdicts[i].line));
		assert_int_equal(p.resp.kind, CTL_RESP_RESULT);
		assert_int_equal(p.resp.verdict, verdicts[i].v);
		parsed_free(&p);
	}

	/* A quoted local part with spaces is one subject token, kept raw. */
	assert_true(parse_s(&p, "unknown \"john \\\" doe\"@example.org reason=pending"));
	expect_subject(&p.resp, "\"john \\\" doe\"@example.org");
	expect_kv(&p.resp, "reason", "pending");
	parsed_free(&p);

	/* A reason a newer daemon added is read, not refused: the verdict
	 * still tells the client what to do. */
	assert_true(parse_s(&p, "unknown a@b.example reason=quantum_flux code=451"));
	assert_int_equal(p.resp.verdict, VERDICT_UNKNOWN);
	expect_kv(&p.resp, "reason", "quantum_flux");
	parsed_free(&p);
}

static void
test_parse_response_lenient(void **state)
{
	struct parsed p;

	/* Keys a newer daemon adds are kept, wherever they are. */
	assert_true(parse_s(&p, "deliverable a@b.example reason=accepted x-new.key_2=42 "
	    "zz=\"q\""));
	expect_kv(&p.resp, "x-new.key_2", "42");
	expect_kv(&p.resp, "zz", "q");
	parsed_free(&p);
	assert_true(parse_s(&p, "pong version=1"));
	assert_int_equal(p.resp.kind, CTL_RESP_PONG);
	expect_kv(&p.resp, "version", "1");
	parsed_free(&p);

	/* Unknown backslash sequences keep the octet after the backslash. */
	assert_true(parse_s(&p, "error x text=\"a\\qb\\nc\""));
	expect_kv(&p.resp, "text", "aqbnc");
	parsed_free(&p);

	/* Empty quoted values and 8-bit octets. */
	assert_true(parse_s(&p, "stats a=\"\" b=caf\xc3\xa9 c=\"\xff\""));
	expect_kv(&p.resp, "a", "");
	expect_kv(&p.resp, "b", "caf\xc3\xa9");
	expect_kv(&p.resp, "c", "\xff");
	parsed_free(&p);

	/* Extra blanks between fields and at the end. */
	assert_true(parse_s(&p, "forgotten  n=0 \t"));
	expect_kv(&p.resp, "n", "0");
	parsed_free(&p);

	/* Exactly CTL_RESP_MAX_KV pairs fit; the scratch size promised suffices. */
	char line[1024];
	size_t o = (size_t)snprintf(line, sizeof(line), "stats");
	for (int i = 0; i < CTL_RESP_MAX_KV; i++)
		o += (size_t)snprintf(line + o, sizeof(line) - o, " k%d=\"\"", i);
	assert_true(parse_n(&p, line, o));
	assert_int_equal(p.resp.n_kv, CTL_RESP_MAX_KV);
	expect_kv(&p.resp, "k31", "");
	parsed_free(&p);
	/* One more is refused rather than silently dropped. */
	o += (size_t)snprintf(line + o, sizeof(line) - o, " k32=1");
	assert_false(parse_n(&p, line, o));
	parsed_free(&p);
}

static void
test_parse_response_garbage(void **state)
{
	static const struct {
		const char *line;
		size_t len;
	} bad[] = {
#define G(s) { s, LEN_STR }
#define GN(s) { s, sizeof(s) - 1 }
		G(""),
		G("   "),
		G("PONG"),
		G("Deliverable a@b reason=accepted"),
		G("hello world"),
		G("pong!"),
		G("ok"),
		G("deliverable"),
		G("deliverable a@b.example"),
		G("deliverable a@b.example code=250 reason=accepted"),
		G("deliverable a@b.example reason=Frobbed"),
		G("deliverable a@b.example reason=\"no such\""),
		G("deliverable a@b.example reason="),
		G("deliverable a@b.example reason=\"\""),
		G("deliverable a@b.example reason=Accepted"),
		G("deliverable a@b.example reason=accepted junk"),
		G("deliverable a@b.example reason=accepted =x"),
		G("deliverable a@b.example reason=accepted k@y=1"),
		G("deliverable a@b.example reason=accepted k=\"x\"="),
		G("deliverable a@b.example reason=accepted text=\"unterminated"),
		G("deliverable a@b.example reason=accepted text=\"ends in backslash\\"),
		G("deliverable a@b.example reason=accepted text=\"abc\"def"),
		G("deliverable a@b.example reason=accepted text=a\"b"),
		G("deliverable a@b.example reason=accepted text="),
		G("deliverable a@b.example reason=accepted text=\"a\"\"b\""),
		/* an unterminated address swallows the rest: no reason= left */
		G("deliverable \"a b@c.example reason=accepted"),
		G("error"),
		G("error "),
		G("error \"quoted reason\""),
		G("error bad/reason"),
		G("error unknown_verb text"),
		G("domain"),
		G("forgotten"),
		G("forgotten n="),
		G("forgotten n=x"),
		G("forgotten n=-1"),
		G("forgotten n=\"\""),
		G("forgotten m=3"),
		G("stats a"),
		G("stats =1"),
		G("stats a= b=1"),
		G("pong\r"),
		G("pong\x1b[2J"),
		G("pong x=\x7f"),
		G("error x text=\"\x1b]0;owned\x07\""),
		GN("stats a=b\0c"),
		GN("\0pong"),
		G("pong\nbye"),
#undef G
#undef GN
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = bad[i].len == LEN_STR ? strlen(bad[i].line) : bad[i].len;
		struct parsed p;

		CHECK(!parse_n(&p, bad[i].line, len), "garbage %zu accepted: '%s'", i,
		    show(bad[i].line, len));
		parsed_free(&p);
	}
}

static void
test_parse_response_scratch(void **state)
{
	const char *line = "error bad_argument text=\"abc\"";
	struct ctl_response resp;
	char scratch[8];

	/* Too small: refused, no write past the given size. */
	char *small = malloc(3);
	assert_non_null(small);
	assert_false(ctl_parse_response(line, strlen(line), &resp, small, 3));
	free(small);
	/* "abc" plus its NUL. */
	assert_true(ctl_parse_response(line, strlen(line), &resp, scratch, 4));
	assert_string_equal(ctl_response_get(&resp, "text")->value, "abc");
	assert_false(ctl_parse_response(line, strlen(line), &resp, scratch, 0));
}

/* ------------------------------------------------------------------ */
/* round trips                                                         */
/* ------------------------------------------------------------------ */

/* What a value becomes after format and parse: controls turn into '?'. */
static void
sanitised(const char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];

		out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	out[n] = '\0';
}

static void
round_trip(const char *address, const struct ctl_result *r)
{
	char out[2048], want[600];
	size_t n = fmt_addr(out, sizeof(out), address, r);
	struct parsed p;

	assert_true(n > 0);
	assert_int_equal(out[n - 1], '\n');
	assert_null(memchr(out, '\n', n - 1));
	assert_null(memchr(out, '\r', n));
	assert_null(memchr(out, '\0', n));
	CHECK(parse_n(&p, out, n - 1), "did not parse back: '%s'", show(out, n));
	assert_int_equal(p.resp.kind, CTL_RESP_RESULT);
	assert_int_equal(p.resp.verdict, r->verdict);
	expect_subject(&p.resp, address);
	expect_kv(&p.resp, "reason", reason_name(r->reason));
	if (r->text[0] != '\0') {
		sanitised(r->text, strlen(r->text), want);
		expect_kv(&p.resp, "text", want);
	} else
		assert_null(ctl_response_get(&p.resp, "text"));
	if (r->mx[0] != '\0') {
		sanitised(r->mx, strlen(r->mx), want);
		expect_kv(&p.resp, "mx", want);
	}
	if (r->enhanced[0] != '\0') {
		sanitised(r->enhanced, strlen(r->enhanced), want);
		expect_kv(&p.resp, "enhanced", want);
	}
	if (r->code > 0) {
		snprintf(want, sizeof(want), "%d", r->code);
		expect_kv(&p.resp, "code", want);
	}
	parsed_free(&p);
}

static void
test_round_trip_hostile(void **state)
{
	static const char *const texts[] = {
		"",
		"Ok",
		"\"",
		"\"\"\"",
		"\\",
		"\\\\\\",
		"ends with backslash \\",
		"\\\" mixed \"\\",
		"reason=accepted code=250",
		" leading and trailing ",
		"tab\there",
		"CR\rLF\nCRLF\r\n",
		"\x1b[31mred\x1b[0m",
		"\x7f\x01\x02\x1f",
		"caf\xc3\xa9 \xe2\x80\x9cquoted\xe2\x80\x9d",
		"\xff\xfe\x80\x81",
		"= = =",
		"text=\"fake\"",
		"\"unbalanced",
	};
	static const char *const addrs[] = {
		"alice@example.org",
		"\"john doe\"@example.org",
		"\"john\\\" doe\"@example.org",
		"\"a\\\\\"@example.org",
		"\"\"@example.org",
		"a\"b c\"d@example.org",
		"\"tab\there\"@example.org",
		"caf\xc3\xa9@example.org",
		"bob@@example.org",
		"reason=accepted",
	};
	struct ctl_result r;

	for (size_t a = 0; a < sizeof(addrs) / sizeof(addrs[0]); a++)
		for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
			ctl_result_init(&r, (enum reason)((a + t) % REASON__COUNT));
			r.code = 421 + (int)t;
			snprintf(r.text, sizeof(r.text), "%s", texts[t]);
			snprintf(r.mx, sizeof(r.mx), "%s", texts[(t + 3) %
			    (sizeof(texts) / sizeof(texts[0]))]);
			snprintf(r.enhanced, sizeof(r.enhanced), "%.15s", texts[(t + 5) %
			    (sizeof(texts) / sizeof(texts[0]))]);
			r.write_catch_all = t % 2;
			r.tls = (enum tristate)(t % 3);
			round_trip(addrs[a], &r);
		}

	/* The longest text the struct holds. */
	ctl_result_init(&r, REASON_NO_SUCH_USER);
	memset(r.text, '"', sizeof(r.text) - 1);
	r.text[sizeof(r.text) - 1] = '\0';
	round_trip("a@b.example", &r);
}

static uint32_t
rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Random octets in every text field survive format -> parse. */
static void
test_round_trip_random(void **state)
{
	uint32_t seed = 0x9e3779b9;
	struct ctl_result r;

	for (int iter = 0; iter < 3000; iter++) {
		ctl_result_init(&r, (enum reason)(rnd(&seed) % REASON__COUNT));
		size_t tl = rnd(&seed) % sizeof(r.text);
		for (size_t i = 0; i < tl; i++) {
			char c;
			do
				c = (char)rnd(&seed);
			while (c == '\0');
			r.text[i] = c;
		}
		r.text[tl] = '\0';
		size_t ml = rnd(&seed) % 40;
		for (size_t i = 0; i < ml; i++)
			r.mx[i] = (char)(1 + rnd(&seed) % 255);
		r.mx[ml] = '\0';
		r.code = (int)(rnd(&seed) % 700);
		round_trip("\"r a n d\"@example.org", &r);
	}
}

/* Random lines into both parsers: no crash, no read past the line. */
static void
test_parsers_random_input(void **state)
{
	static const char alphabet[] = "VERIFY verify fresh timeout=\"\\ \t=.0123456789"
	    "deliverable error domain stats pong reason=accepted text=\r\n\x01\x7f\xff";
	uint32_t seed = 12345;

	for (int iter = 0; iter < 20000; iter++) {
		size_t len = rnd(&seed) % 80;
		char *line = malloc(len > 0 ? len : 1);
		char scratch[80 + CTL_RESP_MAX_KV];
		struct ctl_request req;
		struct ctl_error err;
		struct ctl_response resp;

		assert_non_null(line);
		for (size_t i = 0; i < len; i++)
			line[i] = alphabet[rnd(&seed) % (sizeof(alphabet) - 1)];
		if (ctl_parse_request(line, len, &req, &err)) {
			assert_true((unsigned)req.verb < CTL__VERB_COUNT);
			if (req.arg != NULL)
				assert_true(req.arg >= line && req.arg + req.arg_len <= line + len);
			if (req.has_timeout)
				assert_true(req.timeout_ms > 0 && req.timeout_ms <= CTL_TIMEOUT_MAX_MS);
		} else
			assert_non_null(err.reason);
		if (ctl_parse_response(line, len, &resp, scratch, len + CTL_RESP_MAX_KV)) {
			assert_true(resp.n_kv <= CTL_RESP_MAX_KV);
			for (size_t k = 0; k < resp.n_kv; k++)
				assert_true(resp.kv[k].value >= scratch &&
				    resp.kv[k].value + resp.kv[k].value_len < scratch + sizeof(scratch));
		}
		free(line);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_table),
		cmocka_unit_test(test_request_error_texts),
		cmocka_unit_test(test_request_long_line),
		cmocka_unit_test(test_verb_names),
		cmocka_unit_test(test_fmt_result_minimal),
		cmocka_unit_test(test_fmt_result_full),
		cmocka_unit_test(test_fmt_result_omitted),
		cmocka_unit_test(test_fmt_result_hostile_fields),
		cmocka_unit_test(test_fmt_result_address),
		cmocka_unit_test(test_fmt_value),
		cmocka_unit_test(test_fmt_error),
		cmocka_unit_test(test_fmt_line),
		cmocka_unit_test(test_fmt_append),
		cmocka_unit_test(test_fmt_truncation),
		cmocka_unit_test(test_parse_response_kinds),
		cmocka_unit_test(test_parse_response_lenient),
		cmocka_unit_test(test_parse_response_garbage),
		cmocka_unit_test(test_parse_response_scratch),
		cmocka_unit_test(test_round_trip_hostile),
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_parsers_random_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
