/*
 * test_linebuf — the bounded line reader (src/lib/linebuf.c): lines split
 * across commits, CRLF and LF, the capacity boundary, over-long lines
 * (reported once, skipped to their LF, the next line intact), and a
 * randomised comparison against a trivially correct model.
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

#include "linebuf.h"

/*
 * What the reader reported, as one string: each line as "L<len>:<octets>\n",
 * each over-long line as "T\n".  Comparing whole transcripts shows order
 * and count at once (a TOOLONG reported twice is a failure).
 */
struct transcript {
	char *s;
	size_t len, cap;
};

static void
ts_add(struct transcript *t, const char *p, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		t->cap = (t->len + n + 1) * 2;
		t->s = realloc(t->s, t->cap);
		assert_non_null(t->s);
	}
	memcpy(t->s + t->len, p, n);
	t->len += n;
	t->s[t->len] = '\0';
}

static void
ts_line(struct transcript *t, const char *line, size_t n)
{
	char head[32];
	int h = snprintf(head, sizeof(head), "L%zu:", n);

	ts_add(t, head, (size_t)h);
	ts_add(t, line, n);
	ts_add(t, "\n", 1);
}

static void
ts_toolong(struct transcript *t)
{
	ts_add(t, "T\n", 2);
}

static void
ts_free(struct transcript *t)
{
	free(t->s);
	memset(t, 0, sizeof(*t));
}

/* Take every line the buffer holds. */
static void
drain(struct linebuf *lb, struct transcript *t)
{
	for (;;) {
		const char *line = NULL;
		size_t len = 0;
		enum linebuf_status st = linebuf_next(lb, &line, &len);

		if (st == LINEBUF_MORE)
			return;
		if (st == LINEBUF_TOOLONG)
			ts_toolong(t);
		else {
			assert_int_equal(st, LINEBUF_LINE);
			assert_true(len < lb->cap);
			/* A line handed out never carries its terminator. */
			assert_null(memchr(line, '\n', len));
			ts_line(t, line, len);
		}
	}
}

/* Feed data the way a reader would: commits of at most `chunk` octets into
 * whatever room linebuf_space() offers, draining after each commit. */
static void
feed(struct linebuf *lb, const char *data, size_t n, size_t chunk,
    struct transcript *t)
{
	while (n > 0) {
		size_t avail;
		char *room = linebuf_space(lb, &avail);

		/* After a drain there is always room (the header's promise). */
		assert_true(avail > 0);
		size_t k = n < chunk ? n : chunk;
		if (k > avail)
			k = avail;
		memcpy(room, data, k);
		linebuf_commit(lb, k);
		data += k;
		n -= k;
		drain(lb, t);
	}
}

/* The reader's whole output for one input, fed in `chunk`-sized commits. */
static void
run(size_t cap, const char *data, size_t n, size_t chunk, struct transcript *t)
{
	struct linebuf lb;

	assert_int_equal(linebuf_init(&lb, cap), 0);
	feed(&lb, data, n, chunk, t);
	linebuf_free(&lb);
}

/* Same transcript for every chunk size from 1 to the whole input. */
static void
expect_all_chunkings(size_t cap, const char *data, size_t n, const char *want)
{
	for (size_t chunk = 1; chunk <= n + 1; chunk++) {
		struct transcript t = { 0 };

		run(cap, data, n, chunk, &t);
		if (t.len != strlen(want) || memcmp(t.s, want, t.len) != 0)
			fail_msg("cap %zu chunk %zu:\ngot:\n%s\nwant:\n%s", cap, chunk,
			    t.s ? t.s : "", want);
		ts_free(&t);
	}
}

static void
test_split_commits(void **state)
{
	const char *in = "hello world\nsecond line\nthird\n";

	expect_all_chunkings(64, in, strlen(in),
	    "L11:hello world\nL11:second line\nL5:third\n");
}

static void
test_crlf_and_lf(void **state)
{
	const char *in = "a\r\nb\nc\r\nd\n";

	expect_all_chunkings(16, in, strlen(in), "L1:a\nL1:b\nL1:c\nL1:d\n");

	/* Only a CR right before the LF is a terminator. */
	in = "x\ry\nz\r\r\n\rw\n";
	expect_all_chunkings(16, in, strlen(in), "L3:x\ry\nL2:z\r\nL2:\rw\n");
}

static void
test_empty_lines(void **state)
{
	const char *in = "\n\r\n\nx\n\n";

	expect_all_chunkings(4, in, strlen(in), "L0:\nL0:\nL0:\nL1:x\nL0:\n");
}

static void
test_exact_capacity(void **state)
{
	char in[64];
	char want[128];

	/* 15 octets + LF = 16 = cap: accepted. */
	memset(in, 'a', 15);
	memcpy(in + 15, "\nok\n", 4);
	snprintf(want, sizeof(want), "L15:%.15s\nL2:ok\n", in);
	expect_all_chunkings(16, in, 19, want);

	/* 14 octets + CRLF = 16 = cap: accepted, CR removed. */
	memset(in, 'b', 14);
	memcpy(in + 14, "\r\nok\r\n", 6);
	snprintf(want, sizeof(want), "L14:%.14s\nL2:ok\n", in);
	expect_all_chunkings(16, in, 20, want);

	/* The smallest buffer: a one-octet line, or an empty one with CRLF. */
	expect_all_chunkings(2, "\nx\n\r\nab\nz\n", 11, "L0:\nL1:x\nL0:\nT\nL1:z\n");
}

static void
test_one_over(void **state)
{
	char in[64];

	/* 16 octets + LF = 17 > cap: reported once, then the next line is whole. */
	memset(in, 'a', 16);
	memcpy(in + 16, "\nnext\n", 6);
	expect_all_chunkings(16, in, 22, "T\nL4:next\n");

	/* 15 octets + CRLF = 17 > cap: the CR counts. */
	memset(in, 'b', 15);
	memcpy(in + 15, "\r\nnext\r\n", 8);
	expect_all_chunkings(16, in, 23, "T\nL4:next\n");

	/* An over-long line right after a good one in the same commit, and a
	 * good one right after it. */
	const char *mixed = "ok\n0123456789abcdefXYZ\nnext\n";
	expect_all_chunkings(8, mixed, strlen(mixed), "L2:ok\nT\nL4:next\n");

	/* Two over-long lines in a row are two reports. */
	const char *two = "0123456789\n0123456789\nz\n";
	expect_all_chunkings(8, two, strlen(two), "T\nT\nL1:z\n");

	/* After an over-long line, a line of exactly the capacity still fits. */
	const char *after = "0123456789\n1234567\n";
	expect_all_chunkings(8, after, strlen(after), "T\nL7:1234567\n");
}

static void
test_several_lines_one_commit(void **state)
{
	struct linebuf lb;
	const char *line;
	size_t len, avail;
	const char *in = "a\nbb\nccc\npartial";
	char *room;

	assert_int_equal(linebuf_init(&lb, 64), 0);
	room = linebuf_space(&lb, &avail);
	assert_int_equal(avail, 64);
	memcpy(room, in, strlen(in));
	linebuf_commit(&lb, strlen(in));

	assert_int_equal(linebuf_next(&lb, &line, &len), LINEBUF_LINE);
	assert_int_equal(len, 1);
	assert_memory_equal(line, "a", 1);
	assert_int_equal(linebuf_next(&lb, &line, &len), LINEBUF_LINE);
	assert_int_equal(len, 2);
	assert_memory_equal(line, "bb", 2);
	assert_int_equal(linebuf_next(&lb, &line, &len), LINEBUF_LINE);
	assert_int_equal(len, 3);
	assert_memory_equal(line, "ccc", 3);
	assert_int_equal(linebuf_next(&lb, &line, &len), LINEBUF_MORE);
	assert_int_equal(linebuf_pending(&lb), 7);
	/* Asking again changes nothing. */
	assert_int_equal(linebuf_next(&lb, &line, &len), LINEBUF_MORE);
	assert_int_equal(linebuf_pending(&lb), 7);

	/* The partial line moves to the front and completes. */
	room = linebuf_space(&lb, &avail);
	assert_int_equal(avail, 64 - 7);
	memcpy(room, "!\n", 2);
	linebuf_commit(&lb, 2);
	assert_int_equal(linebuf_next(&lb, &line, &len), LINEBUF_LINE);
	assert_int_equal(len, 8);
	assert_memory_equal(line, "partial!", 8);
	assert_int_equal(linebuf_pending(&lb), 0);
	linebuf_free(&lb);
}

/* A line waiting in a full buffer: avail may be 0 until it is taken. */
static void
test_full_buffer_with_line(void **state)
{
	struct linebuf lb;
	const char *line;
	size_t len, avail;
	char *room;

	assert_int_equal(linebuf_init(&lb, 8), 0);
	room = linebuf_space(&lb, &avail);
	memcpy(room, "abc\ndefg", 8);
	linebuf_commit(&lb, 8);
	(void)linebuf_space(&lb, &avail); /* only the room left is of interest */
	assert_int_equal(avail, 0);
	assert_int_equal(linebuf_next(&lb, &line, &len), LINEBUF_LINE);
	assert_memory_equal(line, "abc", 3);
	assert_int_equal(linebuf_next(&lb, &line, &len), LINEBUF_MORE);
	room = linebuf_space(&lb, &avail);
	assert_int_equal(avail, 4);
	memcpy(room, "h\n", 2);
	linebuf_commit(&lb, 2);
	assert_int_equal(linebuf_next(&lb, &line, &len), LINEBUF_LINE);
	assert_int_equal(len, 5);
	assert_memory_equal(line, "defgh", 5);
	linebuf_free(&lb);
}

static void
test_huge_line_trickled(void **state)
{
	const size_t huge = 1000000;
	struct linebuf lb;
	struct transcript t = { 0 };

	assert_int_equal(linebuf_init(&lb, 1024), 0);
	for (size_t i = 0; i < huge; i++) {
		feed(&lb, "x", 1, 1, &t);
		/* Nothing of a skipped line piles up. */
		assert_true(linebuf_pending(&lb) < 1024);
	}
	feed(&lb, "\nafter\n", 7, 1, &t);
	assert_string_equal(t.s, "T\nL5:after\n");
	ts_free(&t);
	linebuf_free(&lb);
}

static void
test_skipping_across_commits(void **state)
{
	struct linebuf lb;
	struct transcript t = { 0 };
	char junk[300];

	memset(junk, 'j', sizeof(junk));
	assert_int_equal(linebuf_init(&lb, 32), 0);
	feed(&lb, junk, 40, 40, &t);
	assert_string_equal(t.s, "T\n");
	/* More of the same line, in several commits, without LF: still skipped,
	 * not reported again, and never mistaken for a line. */
	for (int i = 0; i < 10; i++)
		feed(&lb, junk, sizeof(junk), 7 + (size_t)i, &t);
	feed(&lb, "\r", 1, 1, &t);
	assert_string_equal(t.s, "T\n");
	/* The rest of the long line up to LF goes too; what follows is kept. */
	feed(&lb, "tail\nok\n", 8, 3, &t);
	assert_string_equal(t.s, "T\nL2:ok\n");
	ts_free(&t);
	linebuf_free(&lb);
}

static void
test_pending_and_partial(void **state)
{
	struct linebuf lb;
	struct transcript t = { 0 };

	assert_int_equal(linebuf_init(&lb, 16), 0);
	assert_int_equal(linebuf_pending(&lb), 0);
	feed(&lb, "abc", 3, 3, &t);
	assert_null(t.s);
	assert_int_equal(linebuf_pending(&lb), 3);
	feed(&lb, "\r", 1, 1, &t);
	assert_int_equal(linebuf_pending(&lb), 4);
	feed(&lb, "\n", 1, 1, &t);
	assert_string_equal(t.s, "L3:abc\n");
	assert_int_equal(linebuf_pending(&lb), 0);
	ts_free(&t);
	linebuf_free(&lb);
}

static void
test_init_limits(void **state)
{
	struct linebuf lb;

	assert_int_not_equal(linebuf_init(&lb, 0), 0);
	assert_int_not_equal(linebuf_init(&lb, 1), 0);
	assert_int_equal(linebuf_init(&lb, 2), 0);
	linebuf_free(&lb);
	/* Freeing twice is harmless (error paths free unconditionally). */
	linebuf_free(&lb);
}

/*
 * The model: split on LF; a line whose length with its LF exceeds cap is
 * one TOOLONG, otherwise a LINE without its LF and one trailing CR.
 */
static void
model(size_t cap, const char *in, size_t n, struct transcript *t)
{
	size_t s = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] != '\n')
			continue;
		size_t len = i - s;
		if (len + 1 > cap)
			ts_toolong(t);
		else {
			if (len > 0 && in[i - 1] == '\r')
				len--;
			ts_line(t, in + s, len);
		}
		s = i + 1;
	}
}

static uint32_t
rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void
test_random_against_model(void **state)
{
	uint32_t seed = 2463534242u;
	char in[4096];

	for (int iter = 0; iter < 2000; iter++) {
		size_t cap = 2 + rnd(&seed) % 40;
		size_t n = 0;

		/* Line lengths cluster around the capacity, where bugs live. */
		while (n < sizeof(in) - 128) {
			size_t len = rnd(&seed) % 4 == 0 ? rnd(&seed) % (3 * cap) :
			    cap - 3 + rnd(&seed) % 5;
			if (len > 100)
				len = 100;
			for (size_t i = 0; i < len; i++)
				in[n++] = "ab\r \x00\xff"[rnd(&seed) % 6];
			if (rnd(&seed) % 2)
				in[n++] = '\r';
			in[n++] = '\n';
		}
		size_t chunk = 1 + rnd(&seed) % (2 * cap);
		struct transcript want = { 0 }, got = { 0 };

		model(cap, in, n, &want);
		run(cap, in, n, chunk, &got);
		if (got.len != want.len || memcmp(got.s, want.s, got.len) != 0)
			fail_msg("iter %d cap %zu chunk %zu: transcripts differ", iter, cap, chunk);
		ts_free(&want);
		ts_free(&got);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_commits),
		cmocka_unit_test(test_crlf_and_lf),
		cmocka_unit_test(test_empty_lines),
		cmocka_unit_test(test_exact_capacity),
		cmocka_unit_test(test_one_over),
		cmocka_unit_test(test_several_lines_one_commit),
		cmocka_unit_test(test_full_buffer_with_line),
		cmocka_unit_test(test_huge_line_trickled),
		cmocka_unit_test(test_skipping_across_commits),
		cmocka_unit_test(test_pending_and_partial),
		cmocka_unit_test(test_init_limits),
		cmocka_unit_test(test_random_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
