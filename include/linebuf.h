/*
 * linebuf — the one bounded line reader, shared by the control server,
 * the clients and the SMTP reply parser.
 *
 * The buffer never grows: a line (with its terminator) longer than the
 * capacity is reported once as LINEBUF_TOOLONG and the rest of it, up to and
 * including its LF, is skipped.  What an over-long line means is the caller's
 * business (an error reply on the control socket, a protocol error in SMTP).
 * Lines end in LF; a CR before the LF is removed.  The line handed out is
 * not NUL-terminated and stays valid until the next linebuf_space() call.
 */
#ifndef PROBED_LINEBUF_H
#define PROBED_LINEBUF_H

#include <stdbool.h>
#include <stddef.h>

struct linebuf {
	char *buf;
	size_t cap;     /* longest line accepted, terminator included */
	size_t start;   /* first unconsumed octet */
	size_t end;     /* one past the last octet held */
	size_t scanned; /* octets after start already known to hold no LF */
	bool skipping;  /* inside an over-long line: drop up to its LF */
};

enum linebuf_status {
	LINEBUF_MORE,    /* no complete line buffered */
	LINEBUF_LINE,    /* *line, *len hold one line without its terminator */
	LINEBUF_TOOLONG, /* a line exceeded the capacity; it is being skipped */
};

int linebuf_init(struct linebuf *lb, size_t cap) __attribute__((warn_unused_result));
void linebuf_free(struct linebuf *lb);
/* Room for reading: moves pending octets to the front.  *avail may be 0 only
 * while a complete line is still waiting to be taken with linebuf_next(). */
char *linebuf_space(struct linebuf *lb, size_t *avail);
void linebuf_commit(struct linebuf *lb, size_t n);
enum linebuf_status linebuf_next(struct linebuf *lb, const char **line, size_t *len);
/* Octets held that are not yet part of a returned line. */
size_t linebuf_pending(const struct linebuf *lb);

#endif
