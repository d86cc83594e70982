/*
 * linebuf — bounded line reader.  See include/linebuf.h.
 *
 * Each octet is scanned for LF once (the `scanned` cursor), so a peer that
 * trickles a long line one byte at a time costs linear, not quadratic, time.
 */
#include "autoconfig.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "linebuf.h"

static void
linebuf_assert_sane(const struct linebuf *lb)
{
	assert(lb->start <= lb->end);
	assert(lb->end <= lb->cap);
	assert(lb->scanned <= lb->end - lb->start);
}

int
linebuf_init(struct linebuf *lb, size_t cap)
{
	memset(lb, 0, sizeof(*lb));
	if (cap < 2)
		return -1;
	lb->buf = malloc(cap);
	if (lb->buf == NULL)
		return -1;
	lb->cap = cap;
	return 0;
}

void
linebuf_free(struct linebuf *lb)
{
	free(lb->buf);
	lb->buf = NULL;
	lb->cap = lb->start = lb->end = lb->scanned = 0;
}

char *
linebuf_space(struct linebuf *lb, size_t *avail)
{
	linebuf_assert_sane(lb);
	if (lb->start > 0) {
		memmove(lb->buf, lb->buf + lb->start, lb->end - lb->start);
		lb->end -= lb->start;
		lb->start = 0;
	}
	*avail = lb->cap - lb->end;
	return lb->buf + lb->end;
}

void
linebuf_commit(struct linebuf *lb, size_t n)
{
	assert(n <= lb->cap - lb->end);
	lb->end += n;
}

size_t
linebuf_pending(const struct linebuf *lb)
{
	return lb->end - lb->start;
}

enum linebuf_status
linebuf_next(struct linebuf *lb, const char **line, size_t *len)
{
	for (;;) {
		linebuf_assert_sane(lb);
		char *from = lb->buf + lb->start + lb->scanned;
		size_t left = lb->end - lb->start - lb->scanned;
		char *lf = left > 0 ? memchr(from, '\n', left) : NULL;

		if (lb->skipping) {
			if (lf == NULL) {
				/* Nothing up to here can be kept. */
				lb->start = lb->end = lb->scanned = 0;
				return LINEBUF_MORE;
			}
			lb->start = (size_t)(lf - lb->buf) + 1;
			lb->scanned = 0;
			lb->skipping = false;
			continue;
		}
		if (lf == NULL) {
			lb->scanned = lb->end - lb->start;
			if (lb->scanned >= lb->cap) {
				/* Full and no LF: the terminator cannot fit any more. */
				lb->start = lb->end = lb->scanned = 0;
				lb->skipping = true;
				return LINEBUF_TOOLONG;
			}
			return LINEBUF_MORE;
		}

		size_t total = (size_t)(lf - (lb->buf + lb->start)) + 1;
		char *p = lb->buf + lb->start;
		lb->start += total;
		lb->scanned = 0;
		if (total > lb->cap)
			return LINEBUF_TOOLONG; /* cannot happen: buf is cap long */
		size_t n = total - 1;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		*line = p;
		*len = n;
		return LINEBUF_LINE;
	}
}
