/*
 * smtp_session — the SMTP probe state machine.  See smtp_session.h.
 *
 * One table, state_info[], sized to the state enum, gives each state its
 * name and its timer (each reply handler names the stage its replies are
 * classified under); one function, transition(), moves between states,
 * logs "old -> new", re-arms the timer and sends the command.  Every path ends in finish(), which
 * calls the driver back exactly once.
 *
 * Replies are counted against the commands sent (`awaiting`): a reply
 * nobody asked for, or bytes already waiting when a command is about to be
 * sent (a server talking out of turn), is a protocol error rather than
 * being mistaken for the answer to the next command; and since an extra
 * reply shifts every later one, the session's RCPT answers are forgotten
 * when that happens (out_of_step()).  After STARTTLS's 220,
 * any byte already buffered is refused too: plaintext injected before the
 * handshake (CVE-2011-0411 and kin) must never be read as a TLS reply.
 *
 * SECURITY: every command is built from parameters checked at creation to
 * hold no CR, LF or NUL; server text is only copied, bounded, never
 * interpreted beyond its code, enhanced code and a few keywords.
 *
 * An extra reply is seen at once when it is already buffered as the
 * session is about to speak (or nothing is owed).  One that arrives in a
 * segment of its own, after its command's real reply was read and the next
 * command sent, is taken as that command's reply and every later reply is
 * read one off (SMTP has no sequence numbers); the last one then arrives
 * as QUIT's answer, which must be 221 (or 421, closing), codes no answered
 * RCPT gets.
 *
 * BLIND SPOT: a server that answers QUIT with anything but 221 or 421
 * (RFC 5321 leaves it no other answer) loses the session's RCPT answers:
 * protocol_error.  A shift that ends before QUIT (a connection dropped or
 * timed out after it) is not seen, nor one whose last shifted reply is a
 * 421 (a server closing at the last RCPT) where QUIT's answer belongs.
 *
 * A transaction is the MAIL and the RCPTs that go with it (`txn`, indices
 * into the caller's list).  With PIPELINING they leave in one write
 * (RFC 2920) and the replies are matched in order.  RCPTs answered "too
 * many recipients" are deferred; after the transaction, if it made
 * progress, RSET opens another for them (at most SMTP_MAX_TRANSACTIONS).
 *
 * QUIT joins that write, last (RFC 2920 §3.1), when nothing can follow
 * the transaction (quit_with_mail()): it is the first, it carries every
 * address, and no fallback sender is left to retry a refused MAIL with.
 * Its reply is counted like the others and checked like a QUIT sent alone
 * (221 or 421, or the RCPT answers are forgotten); the session ends a
 * round trip earlier.  RCPTs deferred there stay unanswered: no RSET after
 * QUIT, the caller asks again on a new connection.  A QUIT sent with MAIL
 * loses one thing a QUIT sent alone has: a reply already buffered when the
 * last RCPT's is read may be QUIT's own, so it is not "out of turn" — an
 * extra reply that shifted the rest is caught only by the 221/421 check.
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
} state_info[SMTP__STATE_COUNT] = {
	[SMTP_CONNECT] = { "connect", TIMER_CONNECT },
	[SMTP_BANNER] = { "banner", TIMER_GREETING },
	[SMTP_EHLO] = { "ehlo", TIMER_COMMAND },
	[SMTP_HELO] = { "helo", TIMER_COMMAND },
	[SMTP_STARTTLS] = { "starttls", TIMER_COMMAND },
	[SMTP_TLS] = { "tls", TIMER_COMMAND },
	[SMTP_MAIL] = { "mail", TIMER_COMMAND },
	[SMTP_RCPT] = { "rcpt", TIMER_COMMAND },
	[SMTP_RSET] = { "rset", TIMER_COMMAND },
	[SMTP_QUIT] = { "quit", TIMER_QUIT },
	[SMTP_DONE] = { "done", TIMER_NONE },
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
	bool pipelined;         /* the transaction's RCPTs went out with MAIL */
	bool quit_sent;         /* QUIT is out (alone, or last in the MAIL group) */
	bool tried_helo;
	bool finished;
	char *names;            /* our copies of helo_name, mail_from, fallback_mail_from */
	const char *sender;
	size_t txn[SMTP_MAX_RCPTS];      /* this transaction's RCPTs */
	size_t txn_n;
	size_t txn_sent;        /* RCPTs of txn sent (without pipelining) */
	size_t txn_replied;     /* RCPTs of txn answered or deferred */
	size_t deferred[SMTP_MAX_RCPTS]; /* "too many recipients": next transaction */
	size_t deferred_n;
	unsigned transactions;
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

/*
 * The server said more than it was asked (two replies to one command, a
 * reply to a command not yet sent): which reply answered which command is
 * no longer known, and any RCPT answer of this session may be another
 * command's reply read one off — a 250 meant for MAIL taken as "mailbox
 * exists".  Forget every RCPT answer of the session and end it at once;
 * the addresses stay unanswered (protocol_error), never misjudged.
 */
static void
out_of_step(struct smtp_session *s, const char *why)
{
	memset(s->p.results, 0, s->p.n_rcpts * sizeof(*s->p.results));
	s->out.answered = 0;
	s->out.failure = SMTP_FAIL_PROTOCOL;
	s->out.state = s->state;
	memset(&s->out.failure_reply, 0, sizeof(s->out.failure_reply));
	snprintf(s->out.detail, sizeof(s->out.detail), "%s", why);
	finish(s);
}

/* End the conversation: politely with QUIT when the connection is still in
 * step, at once when it is not. */
static void
end_session(struct smtp_session *s, enum smtp_failure f, const char *detail, bool usable)
{
	/* Nothing is owed, yet the server has more to say: QUIT's reply would
	 * be one of those lines, and the conversation was out of step. */
	if (usable && s->awaiting == 0 && s->state != SMTP_QUIT && s->state != SMTP_CONNECT &&
	    linebuf_pending(&s->in) > 0) {
		out_of_step(s, "server sent data out of turn");
		return;
	}
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
		/* Replies still owed for pipelined commands come before QUIT's:
		 * read them all, so the server sees an orderly goodbye rather
		 * than a reset from a socket closed on unread data. */
		s->skip = 0;
		if (s->quit_sent) {
			/* QUIT went out with MAIL: its reply is already counted
			 * in `awaiting`, after the RCPTs' still owed. */
			transition(s, SMTP_QUIT, NULL, 0, 0);
			return;
		}
		s->quit_sent = true;
		send_command(s, SMTP_QUIT, "QUIT\r\n");
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
	    !wire_safe(p->fallback_mail_from) || p->n_rcpts == 0 ||
	    p->n_rcpts > SMTP_MAX_RCPTS || p->results == NULL)
		return NULL;
	for (size_t i = 0; i < p->n_rcpts; i++)
		if (!wire_safe(p->rcpts[i]))
			return NULL;

	struct smtp_session *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	if (linebuf_init(&s->in, SMTP_LINE_MAX) != 0) {
		free(s);
		return NULL;
	}
	/* Own copies: the caller's strings may be replaced by a reload (SIGHUP)
	 * while this session is still waiting for a greeting. */
	size_t lh = strlen(p->helo_name) + 1, lm = strlen(p->mail_from) + 1,
	       lf = strlen(p->fallback_mail_from) + 1;
	if ((s->names = malloc(lh + lm + lf)) == NULL) {
		linebuf_free(&s->in);
		free(s);
		return NULL;
	}
	s->p = *p;
	s->p.helo_name = memcpy(s->names, p->helo_name, lh);
	s->p.mail_from = memcpy(s->names + lh, p->mail_from, lm);
	s->p.fallback_mail_from = memcpy(s->names + lh + lm, p->fallback_mail_from, lf);
	s->ops = ops;
	s->io = io;
	s->sender = s->p.mail_from;
	s->state = SMTP_CONNECT;
	s->out.failure = SMTP_OK;
	memset(p->results, 0, p->n_rcpts * sizeof(*p->results));
	for (size_t i = 0; i < p->n_rcpts; i++)
		s->txn[i] = i;
	s->txn_n = p->n_rcpts;
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
	free(s->names);
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
	/* Answers already read stay valid in results[]: a slow last RCPT
	 * does not throw away the others. */
	end_session(s, SMTP_FAIL_TIMEOUT, timer_names[state_info[s->state].timer], false);
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
	end_session(s, SMTP_FAIL_DROPPED, detail, false);
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
				out_of_step(s, "reply nobody asked for");
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
			/* Pipelined replies still owed: the timer bounds the wait for
			 * each reply, not for the whole group (a server that slows
			 * down after errors, like Postfix past its soft error
			 * limit, is slow, not dead). */
			if (!s->finished && s->awaiting > 0) {
				enum timer_kind tk = state_info[s->state].timer;
				s->ops->set_timer(s->io, timer_seconds(s, tk), timer_names[tk]);
			}
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
	out_of_step(s, "server sent data out of turn");
	return false;
}

static bool
is_2xx(const struct smtp_reply *r)
{
	return r->code >= 200 && r->code < 300;
}

/* A refused MAIL is retried with the fallback sender (on_mail()). */
static bool
fallback_left(const struct smtp_session *s)
{
	return s->p.fallback_mail_from[0] != '\0' && s->sender != s->p.fallback_mail_from;
}

/*
 * QUIT may be the last command of the pipelined group (RFC 2920 §3.1)
 * only when nothing can follow this transaction on this connection: no
 * fallback sender to retry a refused MAIL with, and no RCPT left for a
 * later one — this is the session's first transaction, which carries
 * every address.  A RCPT deferred by "too many recipients" then stays
 * unanswered here (no RSET after QUIT); the caller asks again on a new
 * connection.  The session saves a round trip: QUIT's reply comes with
 * the RCPTs'.
 */
static bool
quit_with_mail(const struct smtp_session *s)
{
	return s->transactions == 1 && s->txn_n == s->p.n_rcpts && !fallback_left(s);
}

/* Open a transaction for txn[]: MAIL, and the RCPTs with it when the
 * server pipelines. */
static void
start_mail(struct smtp_session *s)
{
	if (s->p.rcpt_utf8 && !(s->out.extensions & SMTP_EXT_SMTPUTF8)) {
		end_session(s, SMTP_FAIL_UTF8, "server does not offer SMTPUTF8", true);
		return;
	}
	const char *utf8 = s->p.rcpt_utf8 ? " SMTPUTF8" : "";

	s->transactions++;
	s->txn_sent = s->txn_replied = 0;
	s->deferred_n = 0;
	if (!(s->out.extensions & SMTP_EXT_PIPELINING)) {
		s->pipelined = false;
		send_command(s, SMTP_MAIL, "MAIL FROM:<%s>%s\r\n", s->sender, utf8);
		return;
	}
	/* RFC 2920: MAIL and the RCPTs leave in one write, and QUIT with them
	 * when nothing can follow this transaction (quit_with_mail()). */
	bool quit = quit_with_mail(s);
	size_t cap = SMTP_COMMAND_MAX * (s->txn_n + 2), n;
	char *cmd = malloc(cap);
	if (cmd == NULL) {
		end_session(s, SMTP_FAIL_PROTOCOL, "out of memory", true);
		return;
	}
	int w = snprintf(cmd, cap, "MAIL FROM:<%s>%s\r\n", s->sender, utf8);
	n = w > 0 ? (size_t)w : 0;
	for (size_t k = 0; k < s->txn_n && n < cap; k++) {
		w = snprintf(cmd + n, cap - n, "RCPT TO:<%s>\r\n", s->p.rcpts[s->txn[k]]);
		n += w > 0 ? (size_t)w : 0;
	}
	if (quit && n < cap) {
		w = snprintf(cmd + n, cap - n, "QUIT\r\n");
		n += w > 0 ? (size_t)w : 0;
	}
	s->pipelined = true;
	s->quit_sent = s->out.quit_pipelined = quit;
	s->txn_sent = s->txn_n;
	transition(s, SMTP_MAIL, cmd, n < cap ? n : 0, (unsigned)(s->txn_n + 1 + quit));
	free(cmd);
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
	if (s->reply.code >= 500 && !s->tried_helo) {
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
send_next_rcpt(struct smtp_session *s)
{
	size_t k = s->txn[s->txn_sent++];

	send_command(s, SMTP_RCPT, "RCPT TO:<%s>\r\n", s->p.rcpts[k]);
}

static void
on_mail(struct smtp_session *s)
{
	if (is_2xx(&s->reply)) {
		if (s->pipelined)
			transition(s, SMTP_RCPT, NULL, 0, 0);
		else if (in_step(s))
			send_next_rcpt(s);
		return;
	}
	struct classification c = classify_reply(STAGE_MAIL, s->reply.code, s->reply.enhanced,
	    s->reply.text, s->reply.text_len);
	bool fallback = s->reply.code >= 500 && c.reason == REASON_SENDER_REJECTED &&
	    fallback_left(s);
	if (fallback) {
		s->sender = s->p.fallback_mail_from;
		s->out.fallback_sender = true;
		s->transactions--; /* the refused MAIL opened nothing */
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

static bool
too_many_recipients(const struct smtp_reply *r)
{
	/* RFC 5321 §4.5.3.1.10: 452 (or 552) "too many recipients"; RFC 3463 x.5.3. */
	return r->code == 452 || strcmp(r->enhanced, "4.5.3") == 0 ||
	    strcmp(r->enhanced, "5.5.3") == 0;
}

/* The transaction's replies are all in: another transaction for what was
 * deferred, or QUIT. */
static void
end_transaction(struct smtp_session *s)
{
	bool progress = s->deferred_n < s->txn_n;

	if (s->deferred_n > 0 && progress && s->transactions < SMTP_MAX_TRANSACTIONS &&
	    !s->quit_sent) {
		memcpy(s->txn, s->deferred, s->deferred_n * sizeof(s->txn[0]));
		s->txn_n = s->deferred_n;
		if (in_step(s))
			send_command(s, SMTP_RSET, "RSET\r\n");
		return;
	}
	end_session(s, SMTP_OK, NULL, true);
}

static void
on_rcpt(struct smtp_session *s)
{
	size_t k = s->txn[s->txn_replied++];

	if (s->reply.code == 421) {
		/* The server is closing: this RCPT and the rest stay unanswered. */
		fail_reply(s, STAGE_RCPT, false);
		return;
	}
	if (too_many_recipients(&s->reply)) {
		s->deferred[s->deferred_n++] = k;
	} else {
		struct smtp_rcpt_result *r = &s->p.results[k];
		r->answered = true;
		r->cls = classify_reply(STAGE_RCPT, s->reply.code, s->reply.enhanced,
		    s->reply.text, s->reply.text_len);
		copy_reply(&r->reply, &s->reply);
		s->out.answered++;
	}
	if (s->txn_replied == s->txn_n) {
		end_transaction(s);
		return;
	}
	if (!s->pipelined && in_step(s))
		send_next_rcpt(s);
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
	case SMTP_RSET:
		if (is_2xx(&s->reply)) {
			if (in_step(s))
				start_mail(s);
		} else {
			end_session(s, SMTP_OK, NULL, true);
		}
		break;
	case SMTP_QUIT:
		if (s->awaiting > 0)
			break; /* a pipelined reply still owed, not QUIT's */
		/* QUIT's answer is 221 (RFC 5321 §4.1.1.10), or 421 from a
		 * server closing anyway (Postfix past smtpd_hard_error_limit
		 * answers every command so, QUIT included); no RCPT reply the
		 * session kept is either.  Anything else here is another
		 * command's reply read one off: an extra reply came in a
		 * segment of its own and shifted the RCPT answers too. */
		if (s->reply.code != 221 && s->reply.code != 421 && s->out.answered > 0) {
			out_of_step(s, "QUIT answered with another command's reply");
			return;
		}
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
