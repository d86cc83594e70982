/*
 * test_policy — probed-policy's pure parts (src/policy): the policy
 * delegation protocol parser (policy_proto.c), the rules that pick the
 * address or a skip and map probed's answer to an outcome
 * (policy_rules.c), and the action templates (policy_action.c), with
 * hostile attribute values, oversized and malformed requests, missing
 * attributes.  The configuration comes from real probed.conf text through
 * config_load(), so the checks also hold the loader and the expander to
 * the same set of escapes.
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
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "config.h"
#include "linebuf.h"
#include "policy_action.h"
#include "policy_proto.h"
#include "policy_rules.h"

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		print_error("check failed: %s\n", #cond); \
		fail_msg(__VA_ARGS__); \
	} \
} while (0)

/* A request as Postfix 3.7 sends it at RCPT time (SMTPD_POLICY_README). */
static const char typical[] =
    "request=smtpd_access_policy\n"
    "protocol_state=RCPT\n"
    "protocol_name=ESMTP\n"
    "helo_name=client.example.com\n"
    "queue_id=\n"
    "sender=alice@example.com\n"
    "recipient=bob@example.org\n"
    "recipient_count=0\n"
    "client_address=192.0.2.10\n"
    "client_name=client.example.com\n"
    "reverse_client_name=client.example.com\n"
    "instance=12b4.6769a0b2.7c1a3.0\n"
    "sasl_method=\n"
    "sasl_username=\n"
    "sasl_sender=\n"
    "size=0\n"
    "ccert_subject=\n"
    "ccert_issuer=\n"
    "ccert_fingerprint=\n"
    "ccert_pubkey_fingerprint=\n"
    "encryption_protocol=TLSv1.3\n"
    "encryption_cipher=TLS_AES_256_GCM_SHA384\n"
    "encryption_keysize=256\n"
    "etrn_domain=\n"
    "stress=\n"
    "server_address=192.0.2.1\n"
    "server_port=25\n"
    "compatibility_level=3.6\n"
    "mail_version=3.7.11\n"
    "\n";

/* ---- helpers */

/*
 * Feed text through a linebuf of POLICY_LINE_MAX, as probed-policy reads
 * stdin, into r; stops after the first complete request.  Returns the
 * octets consumed, or 0 when no request completed.
 */
static size_t
feed(struct policy_request *r, const char *text, size_t len)
{
	struct linebuf lb;
	size_t off = 0;
	bool done = false;

	assert_int_equal(linebuf_init(&lb, POLICY_LINE_MAX), 0);
	policy_request_reset(r);
	while (!done) {
		const char *line;
		size_t n, avail;
		enum linebuf_status st = linebuf_next(&lb, &line, &n);

		if (st == LINEBUF_LINE) {
			done = policy_request_line(r, line, n);
			continue;
		}
		if (st == LINEBUF_TOOLONG) {
			policy_request_toolong(r);
			continue;
		}
		if (off == len)
			break;
		char *space = linebuf_space(&lb, &avail);
		size_t k = len - off < avail ? len - off : avail;
		memcpy(space, text + off, k);
		linebuf_commit(&lb, k);
		off += k;
	}
	size_t left = linebuf_pending(&lb);
	linebuf_free(&lb);
	return done ? off - left : 0;
}

static void
feed_str(struct policy_request *r, const char *text)
{
	CHECK(feed(r, text, strlen(text)) == strlen(text),
	    "request did not end where expected: <<%s>>", text);
}

static const char *
get(const struct policy_request *r, enum policy_attr a)
{
	return policy_request_get(r, a, NULL);
}

static char cfgpath[PATH_MAX];

/* A configuration from probed.conf text (must load). */
static struct config *
config_text(const char *text)
{
	char err[512] = "";
	const char *base = getenv("TMPDIR");
	int fd;
	struct config *c;

	snprintf(cfgpath, sizeof(cfgpath), "%s/test_policy.XXXXXX",
	    base != NULL && base[0] != '\0' ? base : "/tmp");
	fd = mkstemp(cfgpath);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	c = config_load(cfgpath, err, sizeof(err));
	unlink(cfgpath);
	CHECK(c != NULL, "config <<%s>>: %s", text, err);
	return c;
}

static bool
config_accepts(const char *text)
{
	char err[512];
	const char *base = getenv("TMPDIR");
	int fd;
	struct config *c;

	snprintf(cfgpath, sizeof(cfgpath), "%s/test_policy.XXXXXX",
	    base != NULL && base[0] != '\0' ? base : "/tmp");
	fd = mkstemp(cfgpath);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	c = config_load(cfgpath, err, sizeof(err));
	unlink(cfgpath);
	config_free(c);
	return c != NULL;
}

struct fixture {
	struct config *cfg;
	struct policy_rules rules;
	struct policy_request req;
	struct policy_choice choice;
};

static struct fixture *
fixture(const char *conf)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->cfg = config_text(conf);
	assert_int_equal(policy_rules_init(&f->rules, f->cfg), 0);
	return f;
}

static void
fixture_free(struct fixture *f)
{
	policy_rules_free(&f->rules);
	config_free(f->cfg);
	free(f);
}

/* Choose for a request made of the given attribute lines (+ request=). */
static const struct policy_choice *
choose(struct fixture *f, const char *attrs)
{
	char text[8192];
	int n = snprintf(text, sizeof(text), "request=smtpd_access_policy\n%s\n", attrs);

	assert_true(n > 0 && (size_t)n < sizeof(text));
	feed_str(&f->req, text);
	policy_choose(&f->rules, &f->req, &f->choice);
	return &f->choice;
}

static void
expect_verify(struct fixture *f, const char *attrs, const char *address)
{
	const struct policy_choice *c = choose(f, attrs);

	CHECK(c->kind == POLICY_CHOOSE_VERIFY, "<<%s>>: not verified (why %s)",
	    attrs, c->why != NULL ? c->why : "-");
	assert_string_equal(c->address, address);
	assert_int_equal(c->address_len, strlen(address));
}

static void
expect_skip(struct fixture *f, const char *attrs, enum policy_choice_kind kind,
    const char *why)
{
	const struct policy_choice *c = choose(f, attrs);

	CHECK(c->kind == kind && c->why != NULL && strcmp(c->why, why) == 0,
	    "<<%s>>: kind %d why %s, want kind %d why %s", attrs, c->kind,
	    c->why != NULL ? c->why : "-", kind, why);
}

/* ---- the protocol */

static void
test_typical_request(void **state)
{
	struct policy_request *r = malloc(sizeof(*r));

	assert_non_null(r);
	feed_str(r, typical);
	assert_null(r->error);
	assert_string_equal(get(r, POLICY_ATTR_REQUEST), "smtpd_access_policy");
	assert_string_equal(get(r, POLICY_ATTR_PROTOCOL_STATE), "RCPT");
	assert_string_equal(get(r, POLICY_ATTR_SENDER), "alice@example.com");
	assert_string_equal(get(r, POLICY_ATTR_RECIPIENT), "bob@example.org");
	assert_string_equal(get(r, POLICY_ATTR_CLIENT_ADDRESS), "192.0.2.10");
	assert_string_equal(get(r, POLICY_ATTR_INSTANCE), "12b4.6769a0b2.7c1a3.0");
	/* Present but empty is not absent. */
	assert_string_equal(get(r, POLICY_ATTR_SASL_USERNAME), "");
	assert_string_equal(get(r, POLICY_ATTR_QUEUE_ID), "");
	assert_int_equal(r->lines, 29);
	assert_int_equal(r->ignored, 19);
	assert_int_equal(r->size, strlen(typical));
	free(r);
}

/* Many requests on one connection; CRLF line ends are read like LF. */
static void
test_many_requests(void **state)
{
	struct policy_request *r = malloc(sizeof(*r));
	char text[4096];
	size_t off = 0, len, n;

	assert_non_null(r);
	len = (size_t)snprintf(text, sizeof(text),
	    "request=smtpd_access_policy\nrecipient=a@example.org\n\n"
	    "request=smtpd_access_policy\r\nrecipient=b@example.org\r\n\r\n"
	    "request=smtpd_access_policy\nrecipient=c@example.org\nsender=\n\n");
	const char *want[] = { "a@example.org", "b@example.org", "c@example.org" };
	for (size_t i = 0; i < 3; i++) {
		n = feed(r, text + off, len - off);
		CHECK(n > 0, "request %zu did not complete", i);
		assert_null(r->error);
		assert_string_equal(get(r, POLICY_ATTR_RECIPIENT), want[i]);
		off += n;
	}
	assert_int_equal(off, len);
	/* The sender of the first two is absent, of the third empty. */
	assert_string_equal(get(r, POLICY_ATTR_SENDER), "");
	/* A request cut short at end of input is not a request. */
	assert_int_equal(feed(r, "request=smtpd_access_policy\nrecipient=x@y\n", 42), 0);
	assert_false(policy_request_empty(r));
	free(r);
}

static void
test_values(void **state)
{
	struct policy_request *r = malloc(sizeof(*r));

	assert_non_null(r);
	/* Everything after the first '=' is the value, '=' included;
	 * unknown names of any form are ignored. */
	feed_str(r, "request=smtpd_access_policy\nrecipient=a=b@example.org\n"
	    "sender==\nx-future.attr=1\nccert_subject=CN=x, O=y\n\n");
	assert_null(r->error);
	assert_string_equal(get(r, POLICY_ATTR_RECIPIENT), "a=b@example.org");
	assert_string_equal(get(r, POLICY_ATTR_SENDER), "=");
	assert_int_equal(r->ignored, 2);
	/* Absent: NULL, length 0. */
	size_t len = 99;
	assert_null(policy_request_get(r, POLICY_ATTR_SASL_USERNAME, &len));
	assert_int_equal(len, 0);
	assert_null(policy_request_get(r, POLICY_ATTR__COUNT, &len));
	assert_string_equal(policy_attr_name(POLICY_ATTR_CLIENT_ADDRESS), "client_address");
	/* Hostile octets are kept as they are (the rules judge them). */
	feed_str(r, "request=smtpd_access_policy\nrecipient=a\rb\x01\xff@x\n\n");
	assert_null(r->error);
	assert_memory_equal(get(r, POLICY_ATTR_RECIPIENT), "a\rb\x01\xff@x", 7);
	free(r);
}

static void
test_malformed(void **state)
{
	static const struct {
		const char *text;
		const char *error;
	} cases[] = {
		{ "request=smtpd_access_policy\nrecipient\n\n", "attribute line without '='" },
		{ "request=smtpd_access_policy\n=x\n\n", "attribute with an empty name" },
		{ "request=smtpd_access_policy\nrecipient x=y\n\n",
		  "attribute name with an octet outside [A-Za-z0-9_.-]" },
		{ "request=smtpd_access_policy\nrecipient=a@x\nrecipient=b@x\n\n",
		  "the same attribute twice" },
		{ "recipient=a@x\n\n", "no request attribute" },
		{ "request=junk\nrecipient=a@x\n\n", "request is not smtpd_access_policy" },
		{ "request=smtpd_access_policy \nrecipient=a@x\n\n",
		  "request is not smtpd_access_policy" },
		{ "\n", "empty request (an empty line with no attribute)" },
		/* The first problem is the one kept. */
		{ "garbage\nrequest=junk\n\n", "attribute line without '='" },
	};
	struct policy_request *r = malloc(sizeof(*r));

	assert_non_null(r);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		feed_str(r, cases[i].text);
		CHECK(r->error != NULL && strcmp(r->error, cases[i].error) == 0,
		    "<<%s>>: error %s, want %s", cases[i].text,
		    r->error != NULL ? r->error : "(none)", cases[i].error);
	}
	/* A NUL octet, which a C string would hide. */
	static const char nul[] = "request=smtpd_access_policy\nrecipient=a\0b@x\n\n";
	assert_int_equal(feed(r, nul, sizeof(nul) - 1), sizeof(nul) - 1);
	assert_string_equal(r->error, "NUL octet in an attribute");
	free(r);
}

static void
test_oversized(void **state)
{
	struct policy_request *r = malloc(sizeof(*r));
	size_t big = 3 * POLICY_REQUEST_MAX;
	char *text = malloc(big + 64);
	size_t n = 0;

	assert_non_null(r);
	assert_non_null(text);
	/* One line over POLICY_LINE_MAX: skipped, and the request is bad. */
	n = (size_t)sprintf(text, "request=smtpd_access_policy\nrecipient=");
	memset(text + n, 'a', POLICY_LINE_MAX);
	n += POLICY_LINE_MAX;
	n += (size_t)sprintf(text + n, "@x\nsender=s@x\n\n");
	assert_int_equal(feed(r, text, n), n);
	assert_string_equal(r->error, "attribute line over 4096 octets");
	assert_null(get(r, POLICY_ATTR_RECIPIENT));
	assert_string_equal(get(r, POLICY_ATTR_SENDER), "s@x");

	/* Many short lines past POLICY_REQUEST_MAX: bounded, and bad. */
	n = (size_t)sprintf(text, "request=smtpd_access_policy\n");
	while (n < big - 64)
		n += (size_t)sprintf(text + n, "filler=%0100d\n", 7);
	n += (size_t)sprintf(text + n, "recipient=late@x\n\n");
	assert_int_equal(feed(r, text, n), n);
	assert_string_equal(r->error, "request over 16384 octets");
	assert_true(r->size <= POLICY_REQUEST_MAX);
	assert_true(r->used <= sizeof(r->arena));
	/* Past the limit nothing more was stored. */
	assert_null(get(r, POLICY_ATTR_RECIPIENT));

	/* Known attributes filling nearly all of the limit: all kept. */
	n = (size_t)sprintf(text, "request=smtpd_access_policy\n");
	for (int a = 1; a < POLICY_ATTR__COUNT; a++) {
		size_t name = strlen(policy_attr_name((enum policy_attr)a));
		size_t vlen = (POLICY_REQUEST_MAX - 40) / (POLICY_ATTR__COUNT - 1) - name - 2;

		n += (size_t)sprintf(text + n, "%s=", policy_attr_name((enum policy_attr)a));
		memset(text + n, 'v', vlen);
		n += vlen;
		text[n++] = '\n';
	}
	text[n++] = '\n';
	assert_int_equal(feed(r, text, n), n);
	assert_null(r->error);
	assert_true(n <= POLICY_REQUEST_MAX);
	free(text);
	free(r);
}

/* ---- the rules */

static void
test_choose_address(void **state)
{
	struct fixture *f = fixture("policy: { skip_networks = [ ]; };\n");

	expect_verify(f, "sender=a@example.com\nrecipient=bob@example.org\n"
	    "client_address=192.0.2.1\n", "bob@example.org");
	/* Postfix's internal form is quoted again for probed. */
	expect_verify(f, "sender=x@y\nrecipient=john doe@example.org\n",
	    "\"john doe\"@example.org");
	expect_verify(f, "sender=x@y\nrecipient=a\"b\\c@example.org\n",
	    "\"a\\\"b\\\\c\"@example.org");
	expect_verify(f, "sender=x@y\nrecipient=a..b@example.org\n", "\"a..b\"@example.org");
	expect_verify(f, "sender=x@y\nrecipient=.a@example.org\n", "\".a\"@example.org");
	expect_verify(f, "sender=x@y\nrecipient=a@b@example.org\n", "\"a@b\"@example.org");
	expect_verify(f, "sender=x@y\nrecipient=@example.org\n", "\"\"@example.org");
	/* What needs no quotes keeps its form: atext, UTF-8, literals. */
	expect_verify(f, "sender=x@y\nrecipient=a.b+c!#$%&'*/=?^_`{|}~-@example.org\n",
	    "a.b+c!#$%&'*/=?^_`{|}~-@example.org");
	expect_verify(f, "sender=x@y\nrecipient=j\xc3\xb6rg@example.org\n",
	    "j\xc3\xb6rg@example.org");
	expect_verify(f, "sender=x@y\nrecipient=a@[192.0.2.1]\n", "a@[192.0.2.1]");
	/* A space cannot smuggle an option onto the VERIFY line. */
	expect_skip(f, "sender=x@y\nrecipient=a@example.org fresh\n",
	    POLICY_CHOOSE_ERROR, "bad_address");
	expect_skip(f, "sender=x@y\nrecipient=a@example.org\tfresh\n",
	    POLICY_CHOOSE_ERROR, "bad_address");
	expect_skip(f, "sender=x@y\nrecipient=a@\"example.org fresh\"\n",
	    POLICY_CHOOSE_ERROR, "bad_address");
	expect_verify(f, "sender=x@y\nrecipient=a fresh@example.org\n",
	    "\"a fresh\"@example.org");

	/* Nothing to verify. */
	expect_skip(f, "sender=x@y\n", POLICY_CHOOSE_SKIP, "no_address");
	expect_skip(f, "sender=x@y\nrecipient=\n", POLICY_CHOOSE_SKIP, "no_address");
	expect_skip(f, "sender=x@y\nrecipient=postmaster\n", POLICY_CHOOSE_SKIP,
	    "unqualified");
	expect_skip(f, "sender=x@y\nrecipient=user@\n", POLICY_CHOOSE_SKIP, "unqualified");
	/* Control octets never go to probed. */
	expect_skip(f, "sender=x@y\nrecipient=a\rb@example.org\n", POLICY_CHOOSE_ERROR,
	    "bad_address");
	expect_skip(f, "sender=x@y\nrecipient=a\x7f@example.org\n", POLICY_CHOOSE_ERROR,
	    "bad_address");
	assert_string_equal(f->choice.address, "");
	/* Too long for a request line once quoted; unquoted it fits. */
	{
		char attrs[2048], want[2048];
		size_t local = POLICY_ADDRESS_MAX - strlen("@example.org") - 1;
		int n = snprintf(attrs, sizeof(attrs), "sender=x@y\nrecipient=");

		memset(attrs + n, ' ', local);
		snprintf(attrs + n + local, sizeof(attrs) - (size_t)n - local,
		    "@example.org\n");
		expect_skip(f, attrs, POLICY_CHOOSE_ERROR, "bad_address");
		memset(attrs + n, 'a', local);
		snprintf(want, sizeof(want), "%.*s", (int)(local + 12), attrs + n);
		expect_verify(f, attrs, want);
		assert_int_equal(strlen(want), POLICY_ADDRESS_MAX - 1);
	}
	/* A malformed request is an error, whatever it holds. */
	feed_str(&f->req, "request=smtpd_access_policy\nrecipient=a@x\nrecipient=b@x\n\n");
	policy_choose(&f->rules, &f->req, &f->choice);
	assert_int_equal(f->choice.kind, POLICY_CHOOSE_ERROR);
	assert_string_equal(f->choice.why, "malformed");
	fixture_free(f);

	f = fixture("policy: { verify = \"sender\"; skip_networks = [ ]; };\n");
	expect_verify(f, "sender=a@example.com\nrecipient=bob@example.org\n", "a@example.com");
	expect_skip(f, "sender=\nrecipient=bob@example.org\n", POLICY_CHOOSE_SKIP,
	    "null_sender");
	fixture_free(f);
}

static void
test_skips(void **state)
{
	struct fixture *f = fixture("policy: { skip_domains = [ \"Skip.Example\", "
	    "\".lists.example.net\" ]; };\n");
	const char *rcpt = "sender=a@example.com\nrecipient=b@example.org\n";
	char attrs[512];

	/* Defaults: the null sender, SASL clients and loopback are skipped. */
	expect_skip(f, "sender=\nrecipient=b@example.org\n", POLICY_CHOOSE_SKIP,
	    "null_sender");
	expect_skip(f, "recipient=b@example.org\n", POLICY_CHOOSE_SKIP, "null_sender");
	snprintf(attrs, sizeof(attrs), "%ssasl_username=alice\n", rcpt);
	expect_skip(f, attrs, POLICY_CHOOSE_SKIP, "sasl");
	snprintf(attrs, sizeof(attrs), "%ssasl_username=\n", rcpt);
	expect_verify(f, attrs, "b@example.org");
	static const char *const local[] = {
		"127.0.0.1", "127.255.255.254", "::1", "::ffff:127.0.0.5",
	};
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		snprintf(attrs, sizeof(attrs), "%sclient_address=%s\n", rcpt, local[i]);
		expect_skip(f, attrs, POLICY_CHOOSE_SKIP, "network");
	}
	static const char *const remote[] = {
		"128.0.0.1", "192.0.2.1", "::2", "2001:db8::1", "unknown", "",
		"127.0.0.1 ", "::ffff:128.0.0.1",
	};
	for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
		snprintf(attrs, sizeof(attrs), "%sclient_address=%s\n", rcpt, remote[i]);
		expect_verify(f, attrs, "b@example.org");
	}
	/* Domains: exact (any case, trailing dot), or below a ".domain". */
	expect_skip(f, "sender=a@x.example\nrecipient=b@skip.example\n",
	    POLICY_CHOOSE_SKIP, "domain");
	expect_skip(f, "sender=a@x.example\nrecipient=b@SKIP.EXAMPLE.\n",
	    POLICY_CHOOSE_SKIP, "domain");
	expect_verify(f, "sender=a@x.example\nrecipient=b@a.skip.example\n",
	    "b@a.skip.example");
	expect_verify(f, "sender=a@x.example\nrecipient=b@noskip.example\n",
	    "b@noskip.example");
	expect_skip(f, "sender=a@x.example\nrecipient=b@x.lists.example.net\n",
	    POLICY_CHOOSE_SKIP, "domain");
	expect_skip(f, "sender=a@x.example\nrecipient=b@y.x.Lists.Example.Net\n",
	    POLICY_CHOOSE_SKIP, "domain");
	expect_verify(f, "sender=a@x.example\nrecipient=b@lists.example.net\n",
	    "b@lists.example.net");
	expect_verify(f, "sender=a@x.example\nrecipient=b@xlists.example.net\n",
	    "b@xlists.example.net");
	fixture_free(f);

	/* Every skip turned off. */
	f = fixture("policy: { skip_null_sender = false; skip_sasl = false; "
	    "skip_networks = [ \"10.0.0.0/12\", \"2001:db8::/33\" ]; };\n");
	expect_verify(f, "sender=\nrecipient=b@example.org\nclient_address=127.0.0.1\n"
	    "sasl_username=alice\n", "b@example.org");
	expect_skip(f, "sender=a@x\nrecipient=b@example.org\nclient_address=10.15.255.255\n",
	    POLICY_CHOOSE_SKIP, "network");
	expect_verify(f, "sender=a@x\nrecipient=b@example.org\nclient_address=10.16.0.0\n",
	    "b@example.org");
	expect_skip(f, "sender=a@x\nrecipient=b@example.org\nclient_address=2001:db8:7fff::1\n",
	    POLICY_CHOOSE_SKIP, "network");
	expect_verify(f, "sender=a@x\nrecipient=b@example.org\nclient_address=2001:db8:8000::\n",
	    "b@example.org");
	fixture_free(f);

	/* Sender verification, null sender not skipped: nothing to verify. */
	f = fixture("policy: { verify = \"sender\"; skip_null_sender = false; };\n");
	expect_skip(f, "sender=\nrecipient=b@example.org\nclient_address=192.0.2.1\n",
	    POLICY_CHOOSE_SKIP, "no_address");
	fixture_free(f);
}

/* probed's answer lines, as the codec parses them, to outcomes. */
static void
test_outcomes(void **state)
{
	static const struct {
		const char *line;
		enum policy_outcome want;
	} cases[] = {
		{ "deliverable a@x reason=accepted code=250 cached=yes", POLICY_DELIVERABLE },
		{ "undeliverable a@x reason=no_such_user code=550 enhanced=5.1.1 "
		  "text=\"User unknown\"", POLICY_UNDELIVERABLE },
		{ "undeliverable a@x reason=syntax", POLICY_UNDELIVERABLE },
		{ "risky a@x reason=catch_all catch_all=yes", POLICY_RISKY },
		{ "unknown a@x reason=timeout", POLICY_UNKNOWN },
		{ "unknown a@x reason=greylisted", POLICY_UNKNOWN },
		{ "unknown a@x reason=pending", POLICY_PENDING },
		/* A reason this client does not know yet: the verdict rules. */
		{ "unknown a@x reason=pending_more", POLICY_UNKNOWN },
		{ "risky a@x reason=brand_new", POLICY_RISKY },
		{ "error busy text=\"too many clients\"", POLICY_ERROR },
		{ "error bad_argument", POLICY_ERROR },
		{ "pong", POLICY_ERROR },
		{ "stats uptime=1", POLICY_ERROR },
	};
	char scratch[1024];
	struct ctl_response resp;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK(ctl_parse_response(cases[i].line, strlen(cases[i].line), &resp,
		    scratch, sizeof(scratch)), "codec refused <<%s>>", cases[i].line);
		CHECK(policy_outcome_of(&resp) == cases[i].want, "<<%s>>: outcome %s, want %s",
		    cases[i].line, policy_outcome_name(policy_outcome_of(&resp)),
		    policy_outcome_name(cases[i].want));
	}
	assert_string_equal(policy_outcome_name(POLICY_SKIP), "skip");
	assert_string_equal(policy_outcome_name(POLICY__OUTCOME_COUNT), "?");
}

static void
test_actions_from_config(void **state)
{
	struct fixture *f = fixture("");

	assert_string_equal(f->rules.action[POLICY_DELIVERABLE], "DUNNO");
	assert_string_equal(f->rules.action[POLICY_UNDELIVERABLE],
	    "550 5.1.1 undeliverable address (%r)");
	assert_string_equal(f->rules.action[POLICY_RISKY], "DUNNO");
	assert_string_equal(f->rules.action[POLICY_UNKNOWN], "DUNNO");
	assert_string_equal(f->rules.action[POLICY_PENDING], "DUNNO");
	assert_string_equal(f->rules.action[POLICY_ERROR], "DUNNO");
	assert_string_equal(f->rules.action[POLICY_SKIP], "DUNNO");
	fixture_free(f);

	/* Sender verification says so in its built-in rejection. */
	f = fixture("policy: { verify = \"sender\"; };\n");
	assert_string_equal(f->rules.action[POLICY_UNDELIVERABLE],
	    "550 5.1.7 undeliverable sender address (%r)");
	fixture_free(f);

	f = fixture("policy: { verify = \"sender\"; action_undeliverable = \"REJECT no\"; "
	    "action_pending = \"DEFER_IF_PERMIT wait\"; on_error = \"451 4.3.0 later\"; };\n");
	assert_string_equal(f->rules.action[POLICY_UNDELIVERABLE], "REJECT no");
	assert_string_equal(f->rules.action[POLICY_PENDING], "DEFER_IF_PERMIT wait");
	assert_string_equal(f->rules.action[POLICY_ERROR], "451 4.3.0 later");
	fixture_free(f);
}

/* ---- action templates */

static size_t
expand(char *out, size_t cap, const char *tmpl, const char *addr, const char *reason,
    const char *text, const char *verdict)
{
	struct policy_vars v = {
		.address = addr, .address_len = addr != NULL ? strlen(addr) : 0,
		.reason = reason,
		.text = text, .text_len = text != NULL ? strlen(text) : 0,
		.verdict = verdict,
	};
	size_t n = policy_action_expand(out, cap, tmpl, &v);

	assert_int_equal(n, strlen(out));
	return n;
}

static void
test_expand(void **state)
{
	char out[POLICY_ACTION_MAX];

	expand(out, sizeof(out), "550 5.1.1 <%a>: no (%r) %v: %t 100%%", "b@example.org",
	    "no_such_user", "User unknown", "undeliverable");
	assert_string_equal(out,
	    "550 5.1.1 <b@example.org>: no (no_such_user) undeliverable: User unknown 100%");
	/* Missing values are empty. */
	expand(out, sizeof(out), "REJECT <%a> %r%t%v.", NULL, NULL, NULL, NULL);
	assert_string_equal(out, "REJECT <> .");
	/* What validation keeps out is still harmless. */
	expand(out, sizeof(out), "REJECT %x %", "a", "r", "t", "v");
	assert_string_equal(out, "REJECT %x %");

	/* Hostile values: nothing ends the line or leaves ASCII. */
	expand(out, sizeof(out), "REJECT %a %t", "a\r\nb@x",
	    "r", "evil\n\naction=OK\n\x01\x7f\xc3\xa9", "v");
	assert_string_equal(out, "REJECT a??b@x evil??action=OK?????");
	assert_null(strpbrk(out, "\r\n"));
	expand(out, sizeof(out), "REJECT\r\n%a", "x", "r", "t", "v");
	assert_string_equal(out, "REJECT??x");
	/* A value with a NUL inside (lengths, not C strings). */
	{
		struct policy_vars v = { .text = "a\0b", .text_len = 3 };

		policy_action_expand(out, sizeof(out), "REJECT %t", &v);
		assert_string_equal(out, "REJECT a?b");
	}

	/* One value is cut at POLICY_VALUE_SHOWN, with "...". */
	char long_text[1000];
	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	size_t n = expand(out, sizeof(out), "REJECT (%t)", "a", "r", long_text, "v");
	assert_int_equal(n, strlen("REJECT ()") + POLICY_VALUE_SHOWN);
	assert_memory_equal(out + strlen("REJECT (") + POLICY_VALUE_SHOWN - 3, "...)", 4);
	/* The whole is cut at the buffer. */
	n = expand(out, sizeof(out), "REJECT %t %t %t %t", "a", "r", long_text, "v");
	assert_int_equal(n, sizeof(out) - 1);
	assert_int_equal(expand(out, 8, "REJECT %a", "abc", "r", "t", "v"), 7);
	assert_string_equal(out, "REJECT ");
	assert_int_equal(expand(out, 1, "REJECT", NULL, NULL, NULL, NULL), 0);
	assert_string_equal(out, "");
	assert_int_equal(policy_action_expand(out, 0, "REJECT", &(struct policy_vars){ 0 }), 0);
}

/* The loader accepts exactly the escapes the expander fills in. */
static void
test_escapes_agree(void **state)
{
	char text[128], out[POLICY_ACTION_MAX];

	for (int ch = 0x21; ch < 0x7f; ch++) {
		bool known = strchr("artv%", ch) != NULL;

		if (ch == '"' || ch == '\\')
			continue;   /* would need escaping in the file */
		snprintf(text, sizeof(text), "policy: { on_error = \"REJECT x%%%c\"; };\n", ch);
		CHECK(config_accepts(text) == known, "escape %%%c: loader %s it", ch,
		    known ? "refuses" : "accepts");
		if (!known)
			continue;
		snprintf(text, sizeof(text), "REJECT x%%%c", ch);
		expand(out, sizeof(out), text, "A", "R", "T", "V");
		CHECK(strchr(out, '%') == NULL || (ch == '%' && strcmp(out, "REJECT x%") == 0),
		    "escape %%%c expands to <<%s>>", ch, out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_typical_request),
		cmocka_unit_test(test_many_requests),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_choose_address),
		cmocka_unit_test(test_skips),
		cmocka_unit_test(test_outcomes),
		cmocka_unit_test(test_actions_from_config),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_escapes_agree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
