/*
 * smtp_reply — one SMTP reply from its lines.  See smtp_reply.h.
 *
 * Strict where strictness protects the verdict: every line must carry the
 * same three-digit code, the separator must be SP, '-' or nothing, and a
 * reply may not grow past SMTP_REPLY_LINES_MAX lines (an endless "250-"
 * stream is a protocol error, not a memory leak).  Lenient where servers
 * differ harmlessly: the enhanced status code is taken from the first line
 * (classify_split_line() knows the forms), and text past SMTP_TEXT_MAX is
 * dropped.
 *
 * SECURITY: the text is server-controlled; it is stored as received (minus
 * CR/LF, which cannot be in a line) and made printable by whoever writes it
 * out (codec quoting, log_printable).
 */
#include "autoconfig.h"

#include <string.h>
#include <strings.h>

#include "classify.h"
#include "smtp_reply.h"

static const struct {
	const char *keyword;
	unsigned flag;
} extensions[] = {
	{ "PIPELINING", SMTP_EXT_PIPELINING },
	{ "STARTTLS", SMTP_EXT_STARTTLS },
	{ "SMTPUTF8", SMTP_EXT_SMTPUTF8 },
	{ "ENHANCEDSTATUSCODES", SMTP_EXT_ENHANCEDSTATUSCODES },
	{ "8BITMIME", SMTP_EXT_8BITMIME },
};

void
smtp_reply_reset(struct smtp_reply *r)
{
	r->code = 0;
	r->enhanced[0] = '\0';
	r->text[0] = '\0';
	r->text_len = 0;
	r->n_lines = 0;
	r->extensions = 0;
}

static void
append_text(struct smtp_reply *r, const char *s, size_t n)
{
	size_t room = sizeof(r->text) - 1 - r->text_len;

	if (r->text_len > 0 && room > 0 && n > 0) {
		r->text[r->text_len++] = ' ';
		room--;
	}
	if (n > room)
		n = room;
	memcpy(r->text + r->text_len, s, n);
	r->text_len += n;
	r->text[r->text_len] = '\0';
}

/* An EHLO line's first word is its keyword ("SIZE 10240000"). */
static unsigned
extension_of(const char *s, size_t n)
{
	size_t w = 0;

	while (w < n && s[w] != ' ')
		w++;
	for (size_t i = 0; i < sizeof(extensions) / sizeof(extensions[0]); i++)
		if (strlen(extensions[i].keyword) == w &&
		    strncasecmp(s, extensions[i].keyword, w) == 0)
			return extensions[i].flag;
	return 0;
}

enum smtp_reply_status
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len, const char **why)
{
	int code;
	char enhanced[16];
	const char *text;
	size_t text_len;

	if (r->n_lines >= SMTP_REPLY_LINES_MAX) {
		*why = "reply longer than 100 lines";
		return SMTP_REPLY_ERROR;
	}
	if (len < 3 || !classify_split_line(line, len, &code, enhanced, &text, &text_len)) {
		*why = "reply line without a reply code";
		return SMTP_REPLY_ERROR;
	}
	if (len > 3 && line[3] != ' ' && line[3] != '-') {
		*why = "reply code not followed by SP or '-'";
		return SMTP_REPLY_ERROR;
	}
	if (r->n_lines > 0 && code != r->code) {
		*why = "reply code changed inside a multi-line reply";
		return SMTP_REPLY_ERROR;
	}
	if (r->n_lines == 0) {
		r->code = code;
		memcpy(r->enhanced, enhanced, sizeof(r->enhanced));
	} else {
		r->extensions |= extension_of(text, text_len);
	}
	r->n_lines++;
	append_text(r, text, text_len);
	return len > 3 && line[3] == '-' ? SMTP_REPLY_MORE : SMTP_REPLY_DONE;
}
