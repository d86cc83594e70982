/*
 * fuzz_smtp_reply — libFuzzer harness for the SMTP reply path as the
 * session runs it: octets from a server go through a linebuf of
 * SMTP_LINE_MAX, each line into smtp_reply_feed() and classify_split_line(),
 * and every complete reply into classify_reply().
 *
 * Input: the first octet picks the stage (low bits) and the read size
 * (high bits), so short reads that split lines anywhere are covered; the
 * rest is what the server sends.
 *
 * Invariants: a reply never holds more than SMTP_REPLY_LINES_MAX lines, its
 * text is NUL-terminated within SMTP_TEXT_MAX and holds no CR or LF; the
 * enhanced code is NUL-terminated in its buffer; split text lies inside the
 * line; the classification names a known reason, action and rule.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "linebuf.h"
#include "smtp_reply.h"
#include "vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static void
check_split(const char *line, size_t len)
{
	char enhanced[16];
	const char *text = NULL;
	size_t text_len = 0;
	int code = -1;

	memset(enhanced, 'x', sizeof(enhanced));
	if (!classify_split_line(line, len, &code, enhanced, &text, &text_len)) {
		CHECK(enhanced[0] == '\0' || len < 3);
		return;
	}
	CHECK(code >= 0 && code <= 999);
	CHECK(memchr(enhanced, '\0', sizeof(enhanced)) != NULL);
	CHECK(text >= line && text_len <= len && (size_t)(text - line) <= len - text_len);
}

static void
check_reply(enum smtp_stage stage, const struct smtp_reply *r)
{
	struct classification c;

	CHECK(r->n_lines >= 1 && r->n_lines <= SMTP_REPLY_LINES_MAX);
	CHECK(r->text_len < SMTP_TEXT_MAX && r->text[r->text_len] == '\0');
	CHECK(memchr(r->text, '\n', r->text_len) == NULL);
	CHECK(memchr(r->enhanced, '\0', sizeof(r->enhanced)) != NULL);
	c = classify_reply(stage, r->code, r->enhanced, r->text, r->text_len);
	CHECK(c.rule != NULL);
	CHECK(c.action == CLASSIFY_CONTINUE || c.action == CLASSIFY_DECIDED ||
	    c.action == CLASSIFY_NEXT_MX || c.action == CLASSIFY_STOP);
	if (c.action != CLASSIFY_CONTINUE) {
		CHECK((unsigned)c.reason < REASON__COUNT);
		CHECK(reason_name(c.reason) != NULL);
	}
	/* A protocol-level code outside 200..599 never continues the session. */
	if (r->code < 200 || r->code > 599)
		CHECK(c.action != CLASSIFY_CONTINUE);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct smtp_reply reply;
	struct linebuf lb;
	enum smtp_stage stage;
	size_t chunk, off;
	const char *line, *why;
	size_t len, avail;
	char *space;

	if (size < 1)
		return 0;
	stage = (enum smtp_stage)(data[0] % STAGE__COUNT);
	chunk = (size_t)(data[0] >> 3) * 64 + 1;
	data++;
	size--;
	CHECK(smtp_stage_name(stage) != NULL);

	if (linebuf_init(&lb, SMTP_LINE_MAX) != 0)
		return 0;
	smtp_reply_reset(&reply);
	for (off = 0; off < size;) {
		space = linebuf_space(&lb, &avail);
		if (avail > 0) {
			size_t n = size - off < chunk ? size - off : chunk;

			if (n > avail)
				n = avail;
			memcpy(space, data + off, n);
			linebuf_commit(&lb, n);
			off += n;
		}
		for (;;) {
			enum linebuf_status st = linebuf_next(&lb, &line, &len);

			if (st == LINEBUF_MORE)
				break;
			if (st == LINEBUF_TOOLONG) {
				/* A protocol error for the session: it closes; here
				 * the next reply starts afresh. */
				smtp_reply_reset(&reply);
				continue;
			}
			CHECK(len < SMTP_LINE_MAX);
			check_split(line, len);
			why = NULL;
			switch (smtp_reply_feed(&reply, line, len, &why)) {
			case SMTP_REPLY_MORE:
				CHECK(reply.n_lines <= SMTP_REPLY_LINES_MAX);
				break;
			case SMTP_REPLY_DONE:
				check_reply(stage, &reply);
				smtp_reply_reset(&reply);
				break;
			case SMTP_REPLY_ERROR:
				CHECK(why != NULL);
				smtp_reply_reset(&reply);
				break;
			default:
				abort();
			}
		}
	}
	linebuf_free(&lb);
	return 0;
}
