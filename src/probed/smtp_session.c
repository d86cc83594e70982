/*
 * smtp_session — the SMTP probe state machine.  See smtp_session.h.
 *
 * One table, state_info[], sized to the state enum, gives each state its
 * name, its timer and the stage its replies are classified under; one
 * function, transition(), moves between states, logs "old -> new", re-arms
 * the timer and sends the command.  Every path ends in finish(), which
 * calls the driver back exactly once.
 *
 * Replies are counted against the commands sent (`awaiting`): a reply
 * nobody asked for, or bytes already waiting when a command is about to be
 * sent (a server talking out of turn), is a protocol error rather than
 * being mistaken for the answer to the next command.  After STARTTLS's 220,
 * any byte already buffered is refused too: plaintext injected before the
 * handshake (CVE-2011-0411 and kin) must never be read as a TLS reply.
 *
 * SECURITY: every command is built from parameters checked at creation to
 * hold no CR, LF or NUL; server text is only copied, bounded, never
 * interpreted beyond its code, enhanced code and a few keywords.
 *
 * BUGS: one target address per session; batching comes with the caches.
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linebuf.h"
#include "log.h"
#include "smtp_session.h"

#define SMTP_QUIT_TIMEOUT 5.0 /* nothing depends on QUIT's answer: don't linger */
#define SMTP_COMMAND_MAX 1024 /* "RCPT TO:<254-octet address> SMTPUTF8\r\n" fits */

enum timer_kind { TIMER_NONE, TIMER_CONNECT, TIMER_GREETING, TIMER_COMMAND, TIMER_QUIT };

static const struct {
	const char *name;
	enum timer_kind timer;
	enum smtp_stage stage;
} state_info[SMTP__STATE_COUNT] = {
	[SMTP_CONNECT] = { "connect", TIMER_CONNECT, STAGE_BANNER },
	[SMTP_BANNER] = { "banner", TIMER_GREETING, STAGE_BANNER },
	[SMTP_EHLO] = { "ehlo", TIMER_COMMAND, STAGE_EHLO },
	[SMTP_HELO] = { "helo", TIMER_COMMAND, STAGE_EHLO },
	[SMTP_STARTTLS] = { "starttls", TIMER_COMMAND, STAGE_STARTTLS },
	[SMTP_TLS] = { "tls", TIMER_COMMAND, STAGE_STARTTLS },
	[SMTP_MAIL] = { "mail", TIMER_COMMAND, STAGE_MAIL },
	[SMTP_RCPT] = { "rcpt", TIMER_COMMAND, STAGE_RCPT },
	[SMTP_RCPT_RANDOM] = { "rcpt_random", TIMER_COMMAND, STAGE_RCPT },
	[SMTP_RSET] = { "rset", TIMER_COMMAND, STAGE_MAIL },
	[SMTP_MAIL2] = { "mail2", TIMER_COMMAND, STAGE_MAIL },
	[SMTP_RCPT_RANDOM2] = { "rcpt_random2", TIMER_COMMAND, STAGE_RCPT },
	[SMTP_QUIT] = { "quit", TIMER_QUIT, STAGE_RCPT },
	[SMTP_DONE] = { "done", TIMER_NONE, STAGE_RCPT },
};

static const char *const failure_names[] = {
	[SMTP_OK] = "ok",
	[SMTP_FAIL_CONNECT] = "connect",
	[SMTP_FAIL_TIMEOUT] = "timeout",
	[SMTP_FAIL_DROPPED] = "dropped",
	[SMTP_FAIL_PROTOCOL] = "protocol",
	[SMTP_FAIL_TLS] = "tls",
	[SMTP_FAIL_REPLY] = "reply",
	[SMTP_FAIL_UTF8] = "smtputf8",
};

struct smtp_session {
	struct smtp_session_params p;
	const struct smtp_session_ops *ops;
	void *io;
	enum smtp_state state;
	struct linebuf in;
	struct smtp_reply reply;
	unsigned awaiting;      /* replies owed for commands sent */
	unsigned skip;          /* pipelined replies to drop after a MAIL refusal */
	bool pipelined;         /* RCPTs already went out with MAIL */
	bool random_sent;
	bool tried_helo;
	bool finished;
	const char *sender;
	struct smtp_outcome out;
};

static void handle_reply(struct smtp_session *s);

const char *
smtp_state_name(enum smtp_state st)
{
	return (unsigned)st < SMTP__STATE_COUNT ? state_info[st].name : "?";
}

const char *
smtp_failure_name(enum smtp_failure f)
{
	return (unsigned)f < sizeof(failure_names) / sizeof(failure_names[0]) ?
	    failure_names[f] : "?";
}

enum smtp_state
smtp_session_state(const struct smtp_session *s)
{
	return s->state;
}

static bool
wire_safe(const char *v)
{
	for (const char *c = v; *c != '\0'; c++)
		if (*c == '\r' || *c == '\n' || (unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	return strlen(v) < SMTP_COMMAND_MAX - 32;
}

static void
copy_reply(struct smtp_reply_copy *dst, const struct smtp_reply *r)
{
	size_t n = r->text_len < sizeof(dst->text) - 1 ? r->text_len : sizeof(dst->text) - 1;

	dst->code = r->code;
	memcpy(dst->enhanced, r->enhanced, sizeof(dst->enhanced));
	memcpy(dst->text, r->text, n);
	dst->text[n] = '\0';
}

static double
timer_seconds(const struct smtp_session *s, enum timer_kind k)
{
	switch (k) {
	case TIMER_CONNECT: return s->p.connect_timeout;
	case TIMER_GREETING: return s->p.greeting_timeout;
	case TIMER_COMMAND: return s->p.command_timeout;
	case TIMER_QUIT: return SMTP_QUIT_TIMEOUT;
	case TIMER_NONE: break;
	}
	return 0.;
}

static const char *const timer_names[] = {
	[TIMER_NONE] = "none",
	[TIMER_CONNECT] = "connect_timeout",
	[TIMER_GREETING] = "greeting_timeout",
	[TIMER_COMMAND] = "command_timeout",
	[TIMER_QUIT] = "quit_timeout",
};

static void
finish(struct smtp_session *s)
{
	if (s->finished)
		return;
	s->finished = true;
	s->state = SMTP_DONE;
	s->ops->set_timer(s->io, 0., timer_names[TIMER_NONE]);
	s->ops->finish(s->io, &s->out);
}

/*
 * The one way between states: log, re-arm the state's timer, send the
 * command (if any), count the reply it is owed.
 */
static void
transition(struct smtp_session *s, enum smtp_state to, const char *cmd, size_t len,
    unsigned replies)
{
	log_debug("smtp %p %s -> %s", (void *)s, state_info[s->state].name,
	    state_info[to].name);
	s->state = to;
	enum timer_kind tk = state_info[to].timer;
	s->ops->set_timer(s->io, timer_seconds(s, tk), timer_names[tk]);
	if (cmd != NULL && len > 0) {
		s->ops->send(s->io, cmd, len);
		s->awaiting += replies;
	}
}

static void
send_command(struct smtp_session *s, enum smtp_state to, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
send_command(struct smtp_session *s, enum smtp_state to, const char *fmt, ...)
{
	char cmd[SMTP_COMMAND_MAX];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	/* Parameters were length-checked at creation, so this cannot cut. */
	if (n < 0 || (size_t)n >= sizeof(cmd))
		n = 0;
	transition(s, to, cmd, (size_t)n, 1);
}

/* End the conversation: politely with QUIT when the connection is still in
 * step, at once when it is not. */
static void
end_session(struct smtp_session *s, enum smtp_failure f, const char *detail, bool usable)
{
	if (s->out.failure == SMTP_OK || f != SMTP_OK) {
		/* The first failure is the one that explains the outcome. */
		if (s->out.failure == SMTP_OK) {
			s->out.failure = f;
			s->out.state = s->state;
			snprintf(s->out.detail, sizeof(s->out.detail), "%s",
			    detail != NULL ? detail : "");
		}
	}
	if (usable && s->state != SMTP_QUIT && s->state != SMTP_CONNECT) {
		s->awaiting = 0; /* pipelined leftovers are answered before QUIT's */
		s->skip = 0;
		send_command(s, SMTP_QUIT, "QUIT\r\n");
		s->awaiting = 0; /* whatever comes next ends the session */
		return;
	}
	finish(s);
}

static void
fail_reply(struct smtp_session *s, enum smtp_stage stage, bool usable)
{
	s->out.failure_class = classify_reply(stage, s->reply.code, s->reply.enhanced,
	    s->reply.text, s->reply.text_len);
	copy_reply(&s->out.failure_reply, &s->reply);
	end_session(s, SMTP_FAIL_REPLY, "rejected", usable);
}

/* ---- creation ------------------------------------------------------- */

struct smtp_session *
smtp_session_new(const struct smtp_session_params *p, const struct smtp_session_ops *ops,
    void *io)
{
	if (!wire_safe(p->helo_name) || !wire_safe(p->mail_from) ||
	    !wire_safe(p->fallback_mail_from) || !wire_safe(p->rcpt) ||
	    (p->random_rcpt != NULL && !wire_safe(p->random_rcpt)))
		return NULL;

	struct smtp_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	if (linebuf_init(&s->in, SMTP_LINE_MAX) != 0) {
		free(s);
		return NULL;
	}
	s->p = *p;
	s->ops = ops;
	s->io = io;
	s->sender = p->mail_from;
	s->state = SMTP_CONNECT;
	s->out.failure = SMTP_OK;
	smtp_reply_reset(&s->reply);
	ops->set_timer(io, timer_seconds(s, TIMER_CONNECT), timer_names[TIMER_CONNECT]);
	return s;
}

void
smtp_session_free(struct smtp_session *s)
{
	if (s == NULL)
		return;
	linebuf_free(&s->in);
	free(s);
}

/* ---- driver events -------------------------------------------------- */

void
smtp_session_connected(struct smtp_session *s)
{
	if (s->state != SMTP_CONNECT)
		return;
	transition(s, SMTP_BANNER, NULL, 0, 0);
	s->awaiting = 1; /* the greeting */
}

void
smtp_session_connect_failed(struct smtp_session *s, const char *detail)
{
	if (s->finished)
		return;
	end_session(s, SMTP_FAIL_CONNECT, detail, false);
}

void
smtp_session_timeout(struct smtp_session *s)
{
	if (s->finished)
		return;
	if (s->state == SMTP_QUIT) {
		finish(s);
		return;
	}
	/* Answers already read stay valid: a slow catch-all check must not
	 * throw away the target's answer. */
	end_session(s, s->out.target_answered ? SMTP_OK : SMTP_FAIL_TIMEOUT,
	    timer_names[state_info[s->state].timer], false);
}

void
smtp_session_closed(struct smtp_session *s, const char *detail)
{
	if (s->finished)
		return;
	if (s->state == SMTP_QUIT) {
		finish(s);
		return;
	}
	end_session(s, s->out.target_answered ? SMTP_OK : SMTP_FAIL_DROPPED, detail, false);
}

void
smtp_session_tls_done(struct smtp_session *s, bool ok, const char *detail)
{
	if (s->finished || s->state != SMTP_TLS)
		return;
	if (!ok) {
		end_session(s, SMTP_FAIL_TLS, detail, false);
		return;
	}
	/* RFC 3207 §4.2: forget what was learned in the clear. */
	s->out.tls = true;
	s->out.extensions = 0;
	s->tried_helo = false;
	send_command(s, SMTP_EHLO, "EHLO %s\r\n", s->p.helo_name);
}

void
smtp_session_input(struct smtp_session *s, const char *data, size_t len)
{
	while (len > 0 && !s->finished) {
		size_t room;
		char *space = linebuf_space(&s->in, &room);
		size_t n = len < room ? len : room;

		memcpy(space, data, n);
		linebuf_commit(&s->in, n);
		data += n;
		len -= n;

		for (;;) {
			const char *line, *why;
			size_t llen;
			enum linebuf_status st = linebuf_next(&s->in, &line, &llen);

			if (s->finished || st == LINEBUF_MORE)
				break;
			if (st == LINEBUF_TOOLONG) {
				end_session(s, SMTP_FAIL_PROTOCOL, "reply line over 2048 octets", false);
				return;
			}
			if (s->awaiting == 0 && s->state != SMTP_QUIT) {
				end_session(s, SMTP_FAIL_PROTOCOL, "reply nobody asked for", false);
				return;
			}
			enum smtp_reply_status rs = smtp_reply_feed(&s->reply, line, llen, &why);
			if (rs == SMTP_REPLY_ERROR) {
				end_session(s, SMTP_FAIL_PROTOCOL, why, false);
				return;
			}
			if (rs == SMTP_REPLY_MORE)
				continue;
			if (s->awaiting > 0)
				s->awaiting--;
			handle_reply(s);
			smtp_reply_reset(&s->reply);
		}
	}
}

/* ---- replies, state by state ------------------------------------------ */

/* About to speak: the server must not have spoken out of turn. */
static bool
in_step(struct smtp_session *s)
{
	if (s->awaiting == 0 && linebuf_pending(&s->in) == 0)
		return true;
	end_session(s, SMTP_FAIL_PROTOCOL, "server sent data out of turn", false);
	return false;
}

static bool
is_2xx(const struct smtp_reply *r)
{
	return r->code >= 200 && r->code < 300;
}

static void
start_mail(struct smtp_session *s)
{
	if (s->p.rcpt_utf8 && !(s->out.extensions & SMTP_EXT_SMTPUTF8)) {
		end_session(s, SMTP_FAIL_UTF8, "server does not offer SMTPUTF8", true);
		return;
	}
	const char *utf8 = s->p.rcpt_utf8 ? " SMTPUTF8" : "";

	if (!(s->out.extensions & SMTP_EXT_PIPELINING)) {
		s->pipelined = false;
		send_command(s, SMTP_MAIL, "MAIL FROM:<%s>%s\r\n", s->sender, utf8);
		return;
	}
	/* RFC 2920: MAIL and the RCPTs leave in one write. */
	char cmd[3 * SMTP_COMMAND_MAX];
	int n;
	if (s->p.random_rcpt != NULL)
		n = snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>%s\r\nRCPT TO:<%s>\r\nRCPT TO:<%s>\r\n",
		    s->sender, utf8, s->p.rcpt, s->p.random_rcpt);
	else
		n = snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>%s\r\nRCPT TO:<%s>\r\n",
		    s->sender, utf8, s->p.rcpt);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		n = 0;
	s->pipelined = true;
	s->random_sent = s->p.random_rcpt != NULL;
	transition(s, SMTP_MAIL, cmd, (size_t)n, s->p.random_rcpt != NULL ? 3 : 2);
}

static void
after_ehlo(struct smtp_session *s)
{
	bool offered = (s->out.extensions & SMTP_EXT_STARTTLS) != 0;

	if (!s->out.tls && s->p.starttls != STARTTLS_NEVER && offered && s->p.tls_available) {
		send_command(s, SMTP_STARTTLS, "STARTTLS\r\n");
		return;
	}
	if (!s->out.tls && s->p.starttls == STARTTLS_REQUIRED) {
		end_session(s, SMTP_FAIL_TLS, offered ? "TLS unavailable" :
		    "STARTTLS not offered", true);
		return;
	}
	start_mail(s);
}

static void
on_banner(struct smtp_session *s)
{
	if (s->reply.code != 220 && !is_2xx(&s->reply)) {
		fail_reply(s, STAGE_BANNER, s->reply.code != 421);
		return;
	}
	if (in_step(s))
		send_command(s, SMTP_EHLO, "EHLO %s\r\n", s->p.helo_name);
}

static void
on_ehlo(struct smtp_session *s)
{
	if (is_2xx(&s->reply)) {
		s->out.extensions = s->reply.extensions;
		if (in_step(s))
			after_ehlo(s);
		return;
	}
	if (s->reply.code != 421 && s->reply.code >= 500 && !s->tried_helo) {
		s->tried_helo = true;
		if (in_step(s))
			send_command(s, SMTP_HELO, "HELO %s\r\n", s->p.helo_name);
		return;
	}
	fail_reply(s, STAGE_EHLO, s->reply.code != 421);
}

static void
on_helo(struct smtp_session *s)
{
	if (!is_2xx(&s->reply)) {
		fail_reply(s, STAGE_EHLO, s->reply.code != 421);
		return;
	}
	s->out.extensions = 0; /* HELO announces nothing */
	if (in_step(s))
		after_ehlo(s);
}

static void
on_starttls(struct smtp_session *s)
{
	if (s->reply.code == 220) {
		if (linebuf_pending(&s->in) > 0) {
			end_session(s, SMTP_FAIL_PROTOCOL, "data after STARTTLS 220", false);
			return;
		}
		transition(s, SMTP_TLS, NULL, 0, 0);
		s->ops->start_tls(s->io);
		return;
	}
	if (s->reply.code == 421) {
		fail_reply(s, STAGE_STARTTLS, false);
		return;
	}
	if (s->p.starttls == STARTTLS_REQUIRED) {
		copy_reply(&s->out.failure_reply, &s->reply);
		end_session(s, SMTP_FAIL_TLS, "STARTTLS refused", true);
		return;
	}
	if (in_step(s))
		start_mail(s); /* opportunistic: carry on in the clear */
}

static void
on_mail(struct smtp_session *s)
{
	if (s->skip > 0)
		return; /* unreachable: skipped replies are handled in handle_reply */
	if (is_2xx(&s->reply)) {
		if (s->pipelined)
			transition(s, SMTP_RCPT, NULL, 0, 0);
		else if (in_step(s))
			send_command(s, SMTP_RCPT, "RCPT TO:<%s>\r\n", s->p.rcpt);
		return;
	}
	struct classification c = classify_reply(STAGE_MAIL, s->reply.code, s->reply.enhanced,
	    s->reply.text, s->reply.text_len);
	bool fallback = s->reply.code >= 500 && c.reason == REASON_SENDER_REJECTED &&
	    s->p.fallback_mail_from[0] != '\0' && s->sender != s->p.fallback_mail_from;
	if (fallback) {
		s->sender = s->p.fallback_mail_from;
		s->out.fallback_sender = true;
		if (s->pipelined) {
			/* The RCPTs that went out with MAIL are refused (503) first. */
			s->skip = s->awaiting;
			if (s->skip == 0 && in_step(s))
				start_mail(s);
			return;
		}
		if (in_step(s))
			start_mail(s);
		return;
	}
	fail_reply(s, STAGE_MAIL, s->reply.code != 421);
}

static void
on_rcpt(struct smtp_session *s)
{
	struct classification c = classify_reply(STAGE_RCPT, s->reply.code, s->reply.enhanced,
	    s->reply.text, s->reply.text_len);

	if (s->reply.code == 421) {
		/* The server is closing: nothing was said about the mailbox. */
		fail_reply(s, STAGE_RCPT, false);
		return;
	}
	s->out.target_answered = true;
	s->out.target = c;
	copy_reply(&s->out.target_reply, &s->reply);

	bool want_random = s->p.random_rcpt != NULL && is_2xx(&s->reply);
	if (s->random_sent) {
		/* Pipelined: its answer is on the way whether we want it or not. */
		transition(s, SMTP_RCPT_RANDOM, NULL, 0, 0);
		return;
	}
	if (want_random && in_step(s)) {
		s->random_sent = true;
		send_command(s, SMTP_RCPT_RANDOM, "RCPT TO:<%s>\r\n", s->p.random_rcpt);
		return;
	}
	if (!s->finished)
		end_session(s, SMTP_OK, NULL, true);
}

static bool
too_many_recipients(const struct smtp_reply *r)
{
	/* RFC 5321 §4.5.3.1.10: 452 (or 552) "too many recipients"; RFC 3463 x.5.3. */
	return r->code == 452 || strcmp(r->enhanced, "4.5.3") == 0 ||
	    strcmp(r->enhanced, "5.5.3") == 0;
}

static void
on_rcpt_random(struct smtp_session *s, bool second)
{
	int target = s->out.target_reply.code;

	/* Only an accepted target makes the catch-all answer matter. */
	if (!s->out.target_answered || target < 200 || target >= 300) {
		end_session(s, SMTP_OK, NULL, true);
		return;
	}
	if (!second && too_many_recipients(&s->reply)) {
		/* One recipient per transaction: ask again in a second one. */
		if (in_step(s))
			send_command(s, SMTP_RSET, "RSET\r\n");
		return;
	}
	s->out.random_answered = true;
	s->out.random = classify_reply(STAGE_RCPT, s->reply.code, s->reply.enhanced,
	    s->reply.text, s->reply.text_len);
	copy_reply(&s->out.random_reply, &s->reply);
	end_session(s, SMTP_OK, NULL, true);
}

static void
handle_reply(struct smtp_session *s)
{
	if (s->skip > 0) {
		if (--s->skip == 0 && in_step(s))
			start_mail(s);
		return;
	}
	switch (s->state) {
	case SMTP_BANNER:
		on_banner(s);
		break;
	case SMTP_EHLO:
		on_ehlo(s);
		break;
	case SMTP_HELO:
		on_helo(s);
		break;
	case SMTP_STARTTLS:
		on_starttls(s);
		break;
	case SMTP_MAIL:
		on_mail(s);
		break;
	case SMTP_RCPT:
		on_rcpt(s);
		break;
	case SMTP_RCPT_RANDOM:
		on_rcpt_random(s, false);
		break;
	case SMTP_RSET:
		if (is_2xx(&s->reply) && in_step(s))
			send_command(s, SMTP_MAIL2, "MAIL FROM:<%s>%s\r\n", s->sender,
			    s->p.rcpt_utf8 ? " SMTPUTF8" : "");
		else if (!s->finished)
			end_session(s, SMTP_OK, NULL, true);
		break;
	case SMTP_MAIL2:
		if (is_2xx(&s->reply) && in_step(s))
			send_command(s, SMTP_RCPT_RANDOM2, "RCPT TO:<%s>\r\n", s->p.random_rcpt);
		else if (!s->finished)
			end_session(s, SMTP_OK, NULL, true);
		break;
	case SMTP_RCPT_RANDOM2:
		on_rcpt_random(s, true);
		break;
	case SMTP_QUIT:
		finish(s);
		break;
	case SMTP_CONNECT:
	case SMTP_TLS:
	case SMTP_DONE:
	case SMTP__STATE_COUNT:
		end_session(s, SMTP_FAIL_PROTOCOL, "reply in a state that expects none", false);
		break;
	}
}
