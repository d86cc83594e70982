/*
 * test_output — probectl's printing (src/probectl/output.c): the JSON
 * encoder must produce valid JSON for any octets, the human form must never
 * put a control octet on the terminal, and the layouts scripts and people
 * read must stay as documented in probectl(1).
 */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "output.h"

struct cap {
	char *buf;
	size_t len;
	FILE *f;
};

static void
cap_open(struct cap *c)
{
	c->buf = NULL;
	c->len = 0;
	c->f = open_memstream(&c->buf, &c->len);
	assert_non_null(c->f);
}

/* Closes the stream; the caller frees c->buf. */
static const char *
cap_close(struct cap *c)
{
	assert_int_equal(fclose(c->f), 0);
	return c->buf;
}

static char *
json(const char *s, size_t len)
{
	struct cap c;

	cap_open(&c);
	output_json_string(c.f, s, len);
	cap_close(&c);
	return c.buf;
}

#define JSON_EQ(in, want) do { \
	char *got_ = json((in), sizeof(in) - 1); \
	assert_string_equal(got_, (want)); \
	free(got_); \
} while (0)

static void
test_json_plain_and_escapes(void **state)
{
	JSON_EQ("", "\"\"");
	JSON_EQ("Ok", "\"Ok\"");
	JSON_EQ("say \"hi\" \\o/", "\"say \\\"hi\\\" \\\\o/\"");
	JSON_EQ("a\tb\nc\rd", "\"a\\u0009b\\u000ac\\u000dd\"");
	JSON_EQ("\x00\x01\x1f\x7f", "\"\\u0000\\u0001\\u001f\\u007f\"");
	/* '/' needs no escape; non-ASCII that is well-formed passes through */
	JSON_EQ("caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
	    "\"caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"");
}

static void
test_json_ill_formed_utf8(void **state)
{
	/* each octet of an ill-formed sequence becomes one U+FFFD */
	JSON_EQ("\xff", "\"\\ufffd\"");
	JSON_EQ("\xc3\x28", "\"\\ufffd(\"");
	JSON_EQ("\xc0\xaf", "\"\\ufffd\\ufffd\"");              /* overlong '/' */
	JSON_EQ("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");   /* overlong */
	JSON_EQ("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");   /* surrogate */
	JSON_EQ("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
	JSON_EQ("\xf8\x88\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\"");
	JSON_EQ("x\xe2\x82", "\"x\\ufffd\\ufffd\"");            /* truncated at end */
	JSON_EQ("\xf0\x9f\x98", "\"\\ufffd\\ufffd\\ufffd\"");
	JSON_EQ("\x80\xbf", "\"\\ufffd\\ufffd\"");              /* lone continuations */
	JSON_EQ("\xe2\x82" "a", "\"\\ufffd\\ufffda\"");
}

static void
test_json_numbers(void **state)
{
	assert_true(output_json_is_number("0", 1));
	assert_true(output_json_is_number("250", 3));
	assert_true(output_json_is_number("999999999999999", 15));
	assert_false(output_json_is_number("1000000000000000", 16));
	assert_false(output_json_is_number("", 0));
	assert_false(output_json_is_number("007", 3));
	assert_false(output_json_is_number("-1", 2));
	assert_false(output_json_is_number("1.5", 3));
	assert_false(output_json_is_number("12a", 3));
}

static void
test_printable(void **state)
{
	static const char in[] = "a\x01\x1b[31m\x7f\xc2\x85\xc3\xa9\xff\xc3(\"\\";
	struct cap c;

	cap_open(&c);
	output_printable(c.f, in, sizeof(in) - 1);
	cap_close(&c);
	assert_string_equal(c.buf, "a??[31m??\xc3\xa9?" "?(\"\\");
	free(c.buf);
}

struct rendered {
	char *out;
	char *err;
};

static struct rendered
render(enum output_mode mode, const char *line, const char *arg)
{
	static char scratch[4096];
	struct ctl_response r;
	struct cap o, e;
	struct output out;
	struct rendered res;

	assert_true(ctl_parse_response(line, strlen(line), &r, scratch, sizeof(scratch)));
	cap_open(&o);
	cap_open(&e);
	out.mode = mode;
	out.out = o.f;
	out.err = e.f;
	output_response(&out, &r, arg, arg != NULL ? strlen(arg) : 0);
	cap_close(&o);
	cap_close(&e);
	res.out = o.buf;
	res.err = e.buf;
	return res;
}

static void
expect(enum output_mode mode, const char *line, const char *arg,
    const char *want_out, const char *want_err)
{
	struct rendered r = render(mode, line, arg);

	assert_string_equal(r.out, want_out);
	assert_string_equal(r.err, want_err);
	free(r.out);
	free(r.err);
}

#define FULL "deliverable alice@example.org reason=accepted code=250 " \
	"enhanced=2.1.5 mx=mx1.example.org catch_all=no cached=no ms=412 tls=yes text=\"Ok\""

static void
test_human_result(void **state)
{
	expect(OUTPUT_HUMAN, FULL, "alice@example.org",
	    "deliverable   accepted        alice@example.org code=250 enhanced=2.1.5 "
	    "mx=mx1.example.org catch_all=no cached=no ms=412 tls=yes \"Ok\"\n", "");
	expect(OUTPUT_HUMAN, "undeliverable bob@@example.org reason=syntax", NULL,
	    "undeliverable syntax          bob@@example.org\n", "");
	/* fixed key order, unknown keys after, text last with quotes escaped */
	expect(OUTPUT_HUMAN, "risky \"john doe\"@example.org reason=catch_all "
	    "text=\"say \\\"hi\\\"\" future=\"a b\" age=5 code=250", NULL,
	    "risky         catch_all       \"john doe\"@example.org code=250 age=5 "
	    "future=\"a b\" \"say \\\"hi\\\"\"\n", "");
	/* high octets from the wire: kept when UTF-8, '?' when not */
	expect(OUTPUT_HUMAN, "unknown x@example.org reason=tempfail text=\"\xc3\xa9\xff\xc2\x9b\"",
	    NULL, "unknown       tempfail        x@example.org \"\xc3\xa9??\"\n", "");
}

static void
test_json_result(void **state)
{
	expect(OUTPUT_JSON, FULL, "alice@example.org",
	    "{\"address\":\"alice@example.org\",\"verdict\":\"deliverable\","
	    "\"reason\":\"accepted\",\"code\":250,\"enhanced\":\"2.1.5\","
	    "\"mx\":\"mx1.example.org\",\"catch_all\":\"no\",\"cached\":false,"
	    "\"ms\":412,\"tls\":true,\"text\":\"Ok\"}\n", "");
	/* repeated keys appear once; odd values stay strings */
	expect(OUTPUT_JSON, "risky \"john doe\"@example.org reason=catch_all "
	    "cached=maybe code=25x code=250 age=007 n=12", NULL,
	    "{\"address\":\"\\\"john doe\\\"@example.org\",\"verdict\":\"risky\","
	    "\"reason\":\"catch_all\",\"cached\":\"maybe\",\"code\":\"25x\","
	    "\"age\":\"007\",\"n\":12}\n", "");
}

static void
test_errors(void **state)
{
	expect(OUTPUT_HUMAN, "error unknown_verb text=\"unknown verb\"", NULL,
	    "", "error: unknown_verb: unknown verb\n");
	expect(OUTPUT_HUMAN, "error unknown_verb", NULL, "", "error: unknown_verb\n");
	expect(OUTPUT_JSON, "error bad_argument text=\"fresh given twice\"", NULL,
	    "{\"error\":\"bad_argument\",\"text\":\"fresh given twice\"}\n", "");
}

static void
test_blocks(void **state)
{
	expect(OUTPUT_HUMAN, "stats requests=10 uptime=5 version=0.1.0", NULL,
	    "requests  10\nuptime    5\nversion   0.1.0\n", "");
	expect(OUTPUT_JSON, "stats requests=10 uptime=5 version=0.1.0 big=12345678901234567", NULL,
	    "{\"requests\":10,\"uptime\":5,\"version\":\"0.1.0\",\"big\":\"12345678901234567\"}\n", "");
	expect(OUTPUT_HUMAN, "domain example.org mx=mx1.example.org catch_all=yes", "example.org",
	    "domain     example.org\nmx         mx1.example.org\ncatch_all  yes\n", "");
	expect(OUTPUT_JSON, "domain example.org mx=mx1.example.org cached=yes", "example.org",
	    "{\"domain\":\"example.org\",\"mx\":\"mx1.example.org\",\"cached\":true}\n", "");
	expect(OUTPUT_HUMAN, "forgotten n=3", "example.org",
	    "forget     example.org\nforgotten  3\n", "");
	expect(OUTPUT_JSON, "forgotten n=3", "example.org",
	    "{\"forget\":\"example.org\",\"forgotten\":3}\n", "");
	expect(OUTPUT_HUMAN, "pong", NULL, "pong\n", "");
	expect(OUTPUT_JSON, "pong", NULL, "{\"pong\":true}\n", "");
}

static void
test_malformed(void **state)
{
	static const char line[] = "junk \x1b[2J\xff";
	struct cap o, e;
	struct output out;

	cap_open(&o);
	cap_open(&e);
	out.mode = OUTPUT_JSON;
	out.out = o.f;
	out.err = e.f;
	output_malformed(&out, line, sizeof(line) - 1, "not a protocol version 1 response");
	output_malformed(&out, NULL, 0, "response line over 65536 octets");
	cap_close(&o);
	cap_close(&e);
	assert_string_equal(o.buf,
	    "{\"error\":\"malformed_response\",\"text\":\"not a protocol version 1 response\","
	    "\"line\":\"junk \\u001b[2J\\ufffd\"}\n"
	    "{\"error\":\"malformed_response\",\"text\":\"response line over 65536 octets\"}\n");
	assert_string_equal(e.buf, "");
	free(o.buf);
	free(e.buf);

	cap_open(&o);
	cap_open(&e);
	out.mode = OUTPUT_HUMAN;
	out.out = o.f;
	out.err = e.f;
	output_malformed(&out, line, sizeof(line) - 1, "not a protocol version 1 response");
	cap_close(&o);
	cap_close(&e);
	assert_string_equal(o.buf, "");
	assert_string_equal(e.buf,
	    "probectl: malformed response: not a protocol version 1 response: junk ?[2J?\n");
	free(o.buf);
	free(e.buf);
}

/* Every octet pair through the encoder: the output is one string of
 * printable ASCII or well-formed UTF-8, with nothing raw below 0x20. */
static void
test_json_all_octet_pairs(void **state)
{
	struct cap c;

	cap_open(&c);
	for (unsigned a = 0; a < 256; a++)
		for (unsigned b = 0; b < 256; b++) {
			char in[2] = { (char)a, (char)b };

			output_json_string(c.f, in, 2);
			putc('\n', c.f);
		}
	cap_close(&c);
	for (size_t i = 0; i < c.len; i++) {
		unsigned char u = (unsigned char)c.buf[i];

		if (u == '\n')
			continue;
		assert_true(u >= 0x20);
		assert_true(u != 0x7f);
		assert_true(u != 0xc0 && u != 0xc1 && u < 0xf5);
	}
	free(c.buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_plain_and_escapes),
		cmocka_unit_test(test_json_ill_formed_utf8),
		cmocka_unit_test(test_json_numbers),
		cmocka_unit_test(test_printable),
		cmocka_unit_test(test_human_result),
		cmocka_unit_test(test_json_result),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_blocks),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_json_all_octet_pairs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
