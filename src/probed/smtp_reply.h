/*
 * smtp_reply — assembles one SMTP reply (RFC 5321 §4.2) from the lines a
 * server sends: strict about form, bounded in size, and it remembers the
 * EHLO extensions a reply announced.
 *
 *   Reply-line = *( Reply-code "-" [ textstring ] CRLF )
 *                   Reply-code [ SP textstring ] CRLF
 *
 * LIMITS: a line is at most SMTP_LINE_MAX octets with its CRLF (longer is a
 * protocol error, decided by the caller's line reader); a reply at most
 * SMTP_REPLY_LINES_MAX lines; the joined text keeps the first
 * SMTP_TEXT_MAX - 1 octets, the rest is counted, not stored.
 */
#ifndef PROBED_SMTP_REPLY_H
#define PROBED_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_LINE_MAX 2048
#define SMTP_REPLY_LINES_MAX 100
#define SMTP_TEXT_MAX 4096   /* what the classifier reads of a reply */

/* EHLO keywords probed cares about. */
enum {
	SMTP_EXT_PIPELINING = 1u << 0,
	SMTP_EXT_STARTTLS = 1u << 1,
	SMTP_EXT_SMTPUTF8 = 1u << 2,
	SMTP_EXT_ENHANCEDSTATUSCODES = 1u << 3,
	SMTP_EXT_8BITMIME = 1u << 4,
};

struct smtp_reply {
	int code;                   /* 200..599 once the first line is read */
	char enhanced[16];          /* "5.1.1" from the first line, "" if none */
	char text[SMTP_TEXT_MAX];   /* every line's text joined by SP, NUL-terminated */
	size_t text_len;
	unsigned n_lines;
	unsigned extensions;        /* SMTP_EXT_* seen on lines after the first */
};

enum smtp_reply_status {
	SMTP_REPLY_MORE,   /* a continuation line ("250-"): more to come */
	SMTP_REPLY_DONE,   /* the last line arrived: the reply is complete */
	SMTP_REPLY_ERROR,  /* malformed: *why says how */
};

void smtp_reply_reset(struct smtp_reply *r);
/* Feed one line without its CRLF. */
enum smtp_reply_status smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
    const char **why);

#endif
