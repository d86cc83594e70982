/*
 * classify — what an SMTP reply means for the address being verified.
 * Pure and table-driven: (stage, code, enhanced status code, text) ->
 * reason (and so verdict, via vocab.h), plus what the session should do
 * next.  No I/O, no state: the same reply always gets the same answer.
 *
 * The rule the table encodes: only a reply to RCPT TO can say anything
 * about the mailbox.  A rejection at the banner, EHLO, STARTTLS or MAIL
 * stage is about the prober (blocked, sender_rejected, ...), never
 * "undeliverable".  A 5xx at RCPT that is really a block of the prober
 * (5.7.x policy, blocklists, reputation, spam words) is "blocked", not
 * "no_such_user".
 */
#ifndef PROBED_CLASSIFY_H
#define PROBED_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "vocab.h"

enum smtp_stage {
	STAGE_BANNER,
	STAGE_EHLO,      /* EHLO or its HELO fallback */
	STAGE_STARTTLS,
	STAGE_MAIL,
	STAGE_RCPT,
	STAGE__COUNT
};

/* "banner", "ehlo", "starttls", "mail", "rcpt" */
const char *smtp_stage_name(enum smtp_stage s);
bool smtp_stage_from_name(const char *s, size_t len, enum smtp_stage *out);

/* What the session does after this reply. */
enum classify_action {
	CLASSIFY_CONTINUE,   /* success: go on to the next command */
	CLASSIFY_DECIDED,    /* the reply decides the address's verdict */
	CLASSIFY_NEXT_MX,    /* says nothing about the mailbox: try the next MX */
	CLASSIFY_STOP,       /* a verdict about the prober; other MXes of the
	                        same domain would say the same (e.g. 5.7.1 policy
	                        at RCPT): stop, report the reason */
};

struct classification {
	enum reason reason;   /* meaningful unless action == CLASSIFY_CONTINUE */
	enum classify_action action;
	const char *rule;     /* name of the table row that matched, for logs */
};

/*
 * Classify one complete reply.  code is the 3-digit reply code (200..599;
 * anything else, 1xx included, is a protocol error); enhanced is "x.y.z" or NULL/"" when
 * the reply had none; text is the reply text (all lines joined by SP, the
 * enhanced code removed), not NUL-terminated, may be empty.
 */
struct classification classify_reply(enum smtp_stage stage, int code,
    const char *enhanced, const char *text, size_t text_len);

/*
 * Split one raw reply line as a server sends it ("550 5.1.1 <a@b>: User
 * unknown", "550-5.7.1 ...", "250 OK") into code, enhanced code and text.
 * Returns false when the line does not start with a 3-digit code.
 * enhanced receives "" when there is none (buffer of >= 16 octets).
 */
bool classify_split_line(const char *line, size_t len, int *code, char *enhanced,
    const char **text, size_t *text_len);

/*
 * probed --classify: read "<stage> <reply>" lines from in, print
 * "<verdict> <reason>" per line to out (or "error <why>" for a line that
 * cannot be read).  Returns the process exit status.
 */
int classify_main(FILE *in, FILE *out);

#endif
