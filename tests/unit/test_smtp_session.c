/*
 * test_smtp_session — the SMTP state machine against a scripted server and
 * a fake clock: no sockets, no real time.  Each test plays the server's
 * side line by line and checks what the session sends, which timer it
 * arms, and the outcome it reports.
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

#include "smtp_session.h"

struct fake {
	char sent[16384];
	size_t sent_len;
	size_t sends;            /* number of send() calls */
	double timer;            /* seconds of the armed timer, 0 = none */
	const char *timer_name;
	bool tls_started;
	bool finished;
	unsigned finish_calls;
	struct smtp_outcome out;
	struct smtp_session *s;
};

static void
f_send(void *io, const char *data, size_t len)
{
	struct fake *f = io;

	assert_true(f->sent_len + len < sizeof(f->sent));
	memcpy(f->sent + f->sent_len, data, len);
	f->sent_len += len;
	f->sent[f->sent_len] = '\0';
	f->sends++;
}

static void
f_set_timer(void *io, double seconds, const char *name)
{
	struct fake *f = io;

	f->timer = seconds;
	f->timer_name = name;
}

static void
f_start_tls(void *io)
{
	((struct fake *)io)->tls_started = true;
}

static void
f_finish(void *io, const struct smtp_outcome *o)
{
	struct fake *f = io;

	f->finished = true;
	f->finish_calls++;
	f->out = *o;
}

static const struct smtp_session_ops ops = {
	.send = f_send,
	.set_timer = f_set_timer,
	.start_tls = f_start_tls,
	.finish = f_finish,
};

static const char *const two_rcpts[] = { "alice@x.test", "zz9q@x.test" };
static struct smtp_rcpt_result results[SMTP_MAX_RCPTS];

static struct smtp_session_params
params(void)
{
	return (struct smtp_session_params){
		.helo_name = "probe.test",
		.mail_from = "",
		.fallback_mail_from = "",
		.rcpts = two_rcpts,
		.n_rcpts = 2,
		.results = results,
		.starttls = STARTTLS_OPPORTUNISTIC,
		.tls_available = true,
		.connect_timeout = 10.,
		.greeting_timeout = 30.,
		.command_timeout = 20.,
	};
}

static struct fake *
start(const struct smtp_session_params *p)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->s = smtp_session_new(p, &ops, f);
	assert_non_null(f->s);
	assert_int_equal(f->timer, p->connect_timeout);
	smtp_session_connected(f->s);
	assert_int_equal(smtp_session_state(f->s), SMTP_BANNER);
	assert_true(f->timer == p->greeting_timeout);
	assert_string_equal(f->timer_name, "greeting_timeout");
	return f;
}

static void
done(struct fake *f)
{
	smtp_session_free(f->s);
	free(f);
}

/* The server says something; the session must then have sent exactly want
 * (since the last expect) — or nothing, for want == "". */
static void
server(struct fake *f, const char *says, const char *want)
{
	f->sent_len = 0;
	f->sent[0] = '\0';
	smtp_session_input(f->s, says, strlen(says));
	assert_string_equal(f->sent, want);
}

static void
test_plain_conversation(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx.x.test ESMTP\r\n", "EHLO probe.test\r\n");
	assert_int_equal(smtp_session_state(f->s), SMTP_EHLO);
	assert_string_equal(f->timer_name, "command_timeout");
	server(f, "250-mx.x.test\r\n250-SIZE 1000\r\n250 8BITMIME\r\n", "MAIL FROM:<>\r\n");
	server(f, "250 2.1.0 Ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "250 2.1.5 Ok\r\n", "RCPT TO:<zz9q@x.test>\r\n");
	server(f, "550 5.1.1 <zz9q@x.test>: Recipient address rejected: User unknown\r\n",
	    "QUIT\r\n");
	assert_false(f->finished);
	server(f, "221 2.0.0 Bye\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->finish_calls, 1);
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_true(results[0].answered);
	assert_int_equal(results[0].cls.reason, REASON_ACCEPTED);
	assert_int_equal(results[0].reply.code, 250);
	assert_string_equal(results[0].reply.enhanced, "2.1.5");
	assert_true(results[1].answered);
	assert_int_equal(results[1].cls.reason, REASON_NO_SUCH_USER);
	assert_false(f->out.tls);
	assert_true(f->timer == 0.);
	done(f);
}

static void
test_pipelining_one_write(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx ESMTP\r\n", "EHLO probe.test\r\n");
	size_t before = f->sends;
	/* No fallback sender: QUIT is the last command of the group. */
	server(f, "250-mx\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n",
	    "MAIL FROM:<>\r\nRCPT TO:<alice@x.test>\r\nRCPT TO:<zz9q@x.test>\r\nQUIT\r\n");
	assert_int_equal(f->sends, before + 1); /* one write */
	assert_int_equal(smtp_session_state(f->s), SMTP_MAIL);
	assert_string_equal(f->timer_name, "command_timeout");
	/* All four replies in one segment, as a pipelining server sends them. */
	server(f, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n221 Bye\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->finish_calls, 1);
	assert_int_equal(f->sends, before + 1); /* no second QUIT */
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_int_equal(f->out.answered, 2);
	assert_int_equal(results[0].cls.reason, REASON_ACCEPTED);
	assert_true(results[1].answered);
	assert_int_equal(results[1].cls.reason, REASON_ACCEPTED); /* catch-all */
	done(f);
}

static void
test_pipelined_every_rcpt_answered(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx ESMTP\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 PIPELINING\r\n",
	    "MAIL FROM:<>\r\nRCPT TO:<alice@x.test>\r\nRCPT TO:<zz9q@x.test>\r\nQUIT\r\n");
	server(f, "250 Ok\r\n550 5.1.1 User unknown\r\n", "");
	/* The last RCPT's reply: QUIT's is owed, nothing more is sent. */
	server(f, "550 5.1.1 User unknown\r\n", "");
	assert_false(f->finished);
	assert_int_equal(smtp_session_state(f->s), SMTP_QUIT);
	assert_string_equal(f->timer_name, "quit_timeout");
	server(f, "221 Bye\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_int_equal(results[0].cls.reason, REASON_NO_SUCH_USER);
	assert_true(results[1].answered);
	assert_int_equal(results[1].cls.reason, REASON_NO_SUCH_USER);
	assert_int_equal(f->out.answered, 2);
	done(f);
}

static void
test_banner_timeout(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	/* "220-" and then silence: 30 s pass. */
	server(f, "220-mx.x.test slow greeting\r\n", "");
	assert_false(f->finished);
	assert_string_equal(f->timer_name, "greeting_timeout");
	smtp_session_timeout(f->s);
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_TIMEOUT);
	assert_int_equal(f->out.state, SMTP_BANNER);
	assert_string_equal(f->out.detail, "greeting_timeout");
	done(f);
}

static void
test_connect_timeout_and_failure(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = calloc(1, sizeof(*f));

	f->s = smtp_session_new(&p, &ops, f);
	assert_string_equal(f->timer_name, "connect_timeout");
	smtp_session_timeout(f->s);
	assert_int_equal(f->out.failure, SMTP_FAIL_TIMEOUT);
	assert_int_equal(f->out.state, SMTP_CONNECT);
	assert_int_equal(f->sent_len, 0); /* no QUIT on a connection that never was */
	done(f);

	f = calloc(1, sizeof(*f));
	f->s = smtp_session_new(&p, &ops, f);
	smtp_session_connect_failed(f->s, "Connection refused");
	assert_int_equal(f->out.failure, SMTP_FAIL_CONNECT);
	assert_string_equal(f->out.detail, "Connection refused");
	done(f);
}

static void
test_ehlo_refused_helo(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 old server\r\n", "EHLO probe.test\r\n");
	server(f, "502 5.5.2 Error: command not recognized\r\n", "HELO probe.test\r\n");
	assert_int_equal(smtp_session_state(f->s), SMTP_HELO);
	server(f, "250 old server\r\n", "MAIL FROM:<>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<zz9q@x.test>\r\n");
	server(f, "550 no such user\r\n", "QUIT\r\n");
	smtp_session_closed(f->s, "connection closed");
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_int_equal(results[0].cls.reason, REASON_ACCEPTED);
	done(f);
}

static void
test_banner_554_is_not_about_the_mailbox(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org\r\n",
	    "QUIT\r\n");
	server(f, "221 bye\r\n", "");
	assert_int_equal(f->out.failure, SMTP_FAIL_REPLY);
	assert_int_equal(f->out.state, SMTP_BANNER);
	assert_false(results[0].answered);
	assert_int_equal(f->out.failure_class.reason, REASON_BLOCKED);
	assert_int_equal(f->out.failure_reply.code, 554);
	assert_int_not_equal(reason_verdict(f->out.failure_class.reason), VERDICT_UNDELIVERABLE);
	done(f);
}

static void
test_421_banner_no_quit(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "421 4.7.0 Try again later, closing connection.\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_REPLY);
	assert_int_equal(f->out.failure_class.reason, REASON_RATE_LIMITED);
	done(f);
}

static void
test_null_sender_fallback(void **state)
{
	struct smtp_session_params p = params();
	p.fallback_mail_from = "postmaster@probe.test";
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250 mx\r\n", "MAIL FROM:<>\r\n");
	server(f, "553 5.1.7 The sender address <> is not accepted\r\n",
	    "MAIL FROM:<postmaster@probe.test>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "550 5.1.1 unknown\r\n", "RCPT TO:<zz9q@x.test>\r\n");
	server(f, "550 5.1.1 unknown\r\n", "QUIT\r\n");
	server(f, "221 bye\r\n", "");
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_true(f->out.fallback_sender);
	assert_int_equal(results[0].cls.reason, REASON_NO_SUCH_USER);
	done(f);
}

static void
test_pipelined_null_sender_fallback(void **state)
{
	struct smtp_session_params p = params();
	p.fallback_mail_from = "postmaster@probe.test";
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 PIPELINING\r\n",
	    "MAIL FROM:<>\r\nRCPT TO:<alice@x.test>\r\nRCPT TO:<zz9q@x.test>\r\n");
	/* The RCPTs that rode along are refused for want of a MAIL. */
	server(f, "550 5.7.1 null sender refused\r\n503 5.5.1 need MAIL\r\n", "");
	/* The fallback is in use now: nothing can follow, QUIT rides along. */
	server(f, "503 5.5.1 need MAIL\r\n",
	    "MAIL FROM:<postmaster@probe.test>\r\nRCPT TO:<alice@x.test>\r\n"
	    "RCPT TO:<zz9q@x.test>\r\nQUIT\r\n");
	server(f, "250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n", "");
	server(f, "221 bye\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_true(f->out.fallback_sender);
	assert_int_equal(results[0].cls.reason, REASON_ACCEPTED);
	assert_int_equal(results[1].cls.reason, REASON_NO_SUCH_USER);
	done(f);
}

static void
test_quit_waits_for_pipelined_leftovers(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 PIPELINING\r\n",
	    "MAIL FROM:<>\r\nRCPT TO:<alice@x.test>\r\nRCPT TO:<zz9q@x.test>\r\nQUIT\r\n");
	/* QUIT is already out: a refused MAIL sends nothing more. */
	server(f, "550 5.7.1 sender rejected\r\n", "");
	assert_int_equal(smtp_session_state(f->s), SMTP_QUIT);
	/* The RCPTs' replies are still owed: they are not QUIT's answer. */
	server(f, "503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n", "");
	assert_false(f->finished);
	server(f, "221 2.0.0 Bye\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_REPLY);
	assert_int_equal(f->out.state, SMTP_MAIL);
	done(f);
}

static void
test_sender_refused_without_fallback(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250 mx\r\n", "MAIL FROM:<>\r\n");
	server(f, "550 5.7.1 sender rejected\r\n", "QUIT\r\n");
	server(f, "221 bye\r\n", "");
	assert_int_equal(f->out.failure, SMTP_FAIL_REPLY);
	assert_int_equal(f->out.state, SMTP_MAIL);
	assert_false(results[0].answered);
	assert_int_not_equal(reason_verdict(f->out.failure_class.reason), VERDICT_UNDELIVERABLE);
	done(f);
}

static void
test_starttls(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250-STARTTLS\r\n250 PIPELINING\r\n", "STARTTLS\r\n");
	server(f, "220 2.0.0 Ready to start TLS\r\n", "");
	assert_true(f->tls_started);
	assert_int_equal(smtp_session_state(f->s), SMTP_TLS);
	f->sent_len = 0;
	f->sent[0] = '\0';
	smtp_session_tls_done(f->s, true, NULL);
	assert_string_equal(f->sent, "EHLO probe.test\r\n");
	/* Extensions are relearned: this time no PIPELINING. */
	server(f, "250-mx\r\n250 SIZE 100\r\n", "MAIL FROM:<>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<zz9q@x.test>\r\n");
	server(f, "250 ok\r\n", "QUIT\r\n");
	server(f, "221 bye\r\n", "");
	assert_true(f->out.tls);
	assert_int_equal(f->out.failure, SMTP_OK);
	done(f);
}

static void
test_starttls_injection_refused(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 STARTTLS\r\n", "STARTTLS\r\n");
	/* Plaintext smuggled behind the 220 (CVE-2011-0411). */
	server(f, "220 go ahead\r\n250 injected\r\n", "");
	assert_false(f->tls_started);
	assert_int_equal(f->out.failure, SMTP_FAIL_PROTOCOL);
	done(f);
}

static void
test_starttls_required_not_offered(void **state)
{
	struct smtp_session_params p = params();
	p.starttls = STARTTLS_REQUIRED;
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 PIPELINING\r\n", "QUIT\r\n");
	assert_false(f->finished); /* polite: QUIT is answered first */
	server(f, "221 bye\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_TLS);
	assert_string_equal(f->out.detail, "STARTTLS not offered");
	done(f);
}

static void
test_tls_handshake_failure(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 STARTTLS\r\n", "STARTTLS\r\n");
	server(f, "220 ready\r\n", "");
	smtp_session_tls_done(f->s, false, "wrong version number");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_TLS);
	assert_int_equal(f->out.state, SMTP_TLS);
	done(f);
}

static void
test_out_of_turn_reply(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	/* A reply to a command not yet sent: must not answer the EHLO. */
	server(f, "220 mx\r\n250 too early\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_PROTOCOL);
	done(f);
}

/* A pipelined MAIL answered twice: every later reply is read one off, so
 * the 250 meant for MAIL would answer the first RCPT.  The extra reply is
 * seen before QUIT; no RCPT answer of the session may survive. */
static void
test_two_replies_to_pipelined_mail(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 PIPELINING\r\n",
	    "MAIL FROM:<>\r\nRCPT TO:<alice@x.test>\r\nRCPT TO:<zz9q@x.test>\r\nQUIT\r\n");
	/* QUIT went with the group, so the reply after the last RCPT's may
	 * be QUIT's own: the shift is caught by its code (550, not 221). */
	server(f, "250 2.1.0 Ok\r\n250 2.1.0 Ok\r\n550 5.1.1 User unknown\r\n"
	    "550 5.1.1 User unknown\r\n221 Bye\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_PROTOCOL);
	assert_string_equal(f->out.detail, "QUIT answered with another command's reply");
	assert_int_equal(f->out.answered, 0);
	assert_false(results[0].answered);
	assert_false(results[1].answered);
	done(f);
}

/* The same in lock step: a second reply to the first RCPT arrives with the
 * first; the first RCPT's answer is no longer trusted either. */
static void
test_two_replies_to_rcpt(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250 mx\r\n", "MAIL FROM:<>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "250 2.1.5 ok\r\n550 5.1.1 unknown\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_PROTOCOL);
	assert_int_equal(f->out.answered, 0);
	assert_false(results[0].answered);
	done(f);
}

/* The extra reply comes in a segment of its own, after the next command
 * went out: it is taken as that command's reply and the rest shift by one,
 * until the last RCPT's reply arrives where QUIT's 221 belongs. */
static void
test_extra_reply_alone_caught_at_quit(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250 mx\r\n", "MAIL FROM:<>\r\n");
	server(f, "250 2.1.0 Ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "250 2.1.0 Ok again\r\n", "RCPT TO:<zz9q@x.test>\r\n");
	server(f, "550 5.1.1 alice unknown\r\n", "QUIT\r\n");
	assert_false(f->finished);
	server(f, "550 5.1.1 zz9q unknown\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_PROTOCOL);
	assert_int_equal(f->out.answered, 0);
	assert_false(results[0].answered);
	assert_false(results[1].answered);
	done(f);
}

/* Postfix past smtpd_hard_error_limit answers QUIT (like everything) with
 * 421: a server closing, not a shifted reply.  The answers stand. */
static void
test_quit_answered_421_keeps_answers(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 PIPELINING\r\n",
	    "MAIL FROM:<>\r\nRCPT TO:<alice@x.test>\r\nRCPT TO:<zz9q@x.test>\r\nQUIT\r\n");
	server(f, "250 2.1.0 Ok\r\n550 5.1.1 unknown\r\n550 5.1.1 unknown\r\n", "");
	server(f, "421 4.7.0 mx Error: too many errors\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_int_equal(f->out.answered, 2);
	assert_int_equal(results[0].cls.reason, REASON_NO_SUCH_USER);
	done(f);
}

/* A QUIT answered other than 221 by a session that never asked a mailbox
 * changes nothing: the failure that ended it stands. */
static void
test_odd_quit_reply_without_answers(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250 mx\r\n", "MAIL FROM:<>\r\n");
	server(f, "550 5.7.1 sender rejected\r\n", "QUIT\r\n");
	server(f, "250 whatever\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_REPLY);
	assert_int_equal(f->out.state, SMTP_MAIL);
	done(f);
}

static void
test_malformed_reply(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "hello there\r\n", "");
	assert_int_equal(f->out.failure, SMTP_FAIL_PROTOCOL);
	done(f);

	f = start(&p);
	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n251 changed code\r\n", "");
	assert_int_equal(f->out.failure, SMTP_FAIL_PROTOCOL);
	done(f);
}

static void
test_endless_multiline_reply(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	for (int i = 0; i < 100 && !f->finished; i++)
		smtp_session_input(f->s, "250-EXTENSION\r\n", 15);
	assert_false(f->finished);
	smtp_session_input(f->s, "250-EXTENSION\r\n", 15); /* line 101 */
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_PROTOCOL);
	done(f);
}

static void
test_huge_line(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);
	char chunk[1000];

	memset(chunk, 'x', sizeof(chunk));
	smtp_session_input(f->s, "220 ", 4);
	for (int i = 0; i < 10000 && !f->finished; i++) /* 10 MB, no CRLF */
		smtp_session_input(f->s, chunk, sizeof(chunk));
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_PROTOCOL);
	done(f);
}

static void
test_drop_after_target(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250 mx\r\n", "MAIL FROM:<>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<zz9q@x.test>\r\n");
	smtp_session_closed(f->s, "connection closed");
	assert_int_equal(f->out.failure, SMTP_FAIL_DROPPED);
	assert_true(results[0].answered); /* what was heard stays heard */
	assert_false(results[1].answered);
	assert_int_equal(f->out.answered, 1);
	assert_string_equal(f->out.detail, "connection closed");
	done(f);
}

static void
test_drop_before_rcpt(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250 mx\r\n", "MAIL FROM:<>\r\n");
	smtp_session_closed(f->s, "connection reset");
	assert_int_equal(f->out.failure, SMTP_FAIL_DROPPED);
	assert_int_equal(f->out.state, SMTP_MAIL);
	done(f);
}

static void
test_421_at_rcpt(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250 mx\r\n", "MAIL FROM:<>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "421 4.4.2 mx Error: timeout exceeded\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_REPLY);
	assert_false(results[0].answered);
	done(f);
}

static void
test_one_recipient_per_transaction(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250 mx\r\n", "MAIL FROM:<>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<zz9q@x.test>\r\n");
	server(f, "452 4.5.3 Too many recipients\r\n", "RSET\r\n");
	server(f, "250 ok\r\n", "MAIL FROM:<>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<zz9q@x.test>\r\n");
	server(f, "550 5.1.1 no such user\r\n", "QUIT\r\n");
	server(f, "221 bye\r\n", "");
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_true(results[1].answered);
	assert_int_equal(results[1].cls.reason, REASON_NO_SUCH_USER);
	done(f);
}

static void
test_batch_with_too_many_recipients(void **state)
{
	static const char *const five[] = { "a@x.test", "b@x.test", "c@x.test", "d@x.test",
		"r@x.test" };
	struct smtp_session_params p = params();
	p.rcpts = five;
	p.n_rcpts = 5;
	/* A fallback sender keeps QUIT out of the group: deferred RCPTs get
	 * further transactions on this connection. */
	p.fallback_mail_from = "postmaster@probe.test";
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 PIPELINING\r\n",
	    "MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
	    "RCPT TO:<c@x.test>\r\nRCPT TO:<d@x.test>\r\nRCPT TO:<r@x.test>\r\n");
	/* The server takes two recipients per transaction. */
	server(f, "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n452 4.5.3 Too many recipients\r\n"
	    "452 4.5.3 Too many recipients\r\n", "");
	server(f, "452 4.5.3 Too many recipients\r\n", "RSET\r\n");
	server(f, "250 ok\r\n", "MAIL FROM:<>\r\nRCPT TO:<c@x.test>\r\n"
	    "RCPT TO:<d@x.test>\r\nRCPT TO:<r@x.test>\r\n");
	server(f, "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n", "");
	server(f, "452 4.5.3 Too many recipients\r\n", "RSET\r\n");
	server(f, "250 ok\r\n", "MAIL FROM:<>\r\nRCPT TO:<r@x.test>\r\n");
	server(f, "250 ok\r\n550 5.1.1 no\r\n", "QUIT\r\n");
	server(f, "221 bye\r\n", "");
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_false(f->out.quit_pipelined); /* it had its RSETs */
	assert_int_equal(f->out.answered, 5);
	assert_int_equal(results[0].cls.reason, REASON_ACCEPTED);
	assert_int_equal(results[1].cls.reason, REASON_NO_SUCH_USER);
	assert_int_equal(results[2].cls.reason, REASON_ACCEPTED);
	assert_int_equal(results[3].cls.reason, REASON_NO_SUCH_USER);
	assert_int_equal(results[4].cls.reason, REASON_NO_SUCH_USER);
	done(f);
}

static void
test_no_progress_stops(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250 mx\r\n", "MAIL FROM:<>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "452 4.5.3 Too many recipients\r\n", "RCPT TO:<zz9q@x.test>\r\n");
	/* Nothing in this transaction was taken: no second one. */
	server(f, "452 4.5.3 Too many recipients\r\n", "QUIT\r\n");
	server(f, "221 bye\r\n", "");
	assert_int_equal(f->out.answered, 0);
	assert_false(results[0].answered);
	done(f);
}

static void
test_smtputf8(void **state)
{
	static const char *const utf8[] = { "pel\xc3\xa9@x.test" };
	struct smtp_session_params p = params();
	p.rcpts = utf8;
	p.n_rcpts = 1;
	p.rcpt_utf8 = true;
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 SMTPUTF8\r\n", "MAIL FROM:<> SMTPUTF8\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<pel\xc3\xa9@x.test>\r\n");
	server(f, "250 ok\r\n", "QUIT\r\n");
	done(f);

	f = start(&p);
	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 8BITMIME\r\n", "QUIT\r\n");
	smtp_session_closed(f->s, "connection closed");
	assert_int_equal(f->out.failure, SMTP_FAIL_UTF8);
	done(f);
}

static void
test_unsafe_parameters_refused(void **state)
{
	struct fake f;
	struct smtp_session_params p = params();

	static const char *const inject[] = { "a@x.test>\r\nDATA" };
	static const char *const second[] = { "a@x.test", "r@x\rtest" };
	memset(&f, 0, sizeof(f));
	p.rcpts = inject;
	p.n_rcpts = 1;
	assert_null(smtp_session_new(&p, &ops, &f));
	p = params();
	p.helo_name = "probe\ntest";
	assert_null(smtp_session_new(&p, &ops, &f));
	p = params();
	p.rcpts = second;
	assert_null(smtp_session_new(&p, &ops, &f));
	p = params();
	p.n_rcpts = 0;
	assert_null(smtp_session_new(&p, &ops, &f));
}

static void
test_timeout_after_target_keeps_answer(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250 mx\r\n", "MAIL FROM:<>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<zz9q@x.test>\r\n");
	smtp_session_timeout(f->s);
	assert_int_equal(f->out.failure, SMTP_FAIL_TIMEOUT);
	assert_true(results[0].answered);
	assert_false(results[1].answered);
	done(f);
}

/* A reload frees the verifier's helo_name and senders while sessions wait
 * for their greeting: the session must use the names it was started with. */
static void
test_names_outlive_the_caller(void **state)
{
	struct smtp_session_params p = params();
	char *helo = strdup("first.test");
	char *from = strdup("probe@first.test");
	char *fallback = strdup("postmaster@first.test");

	assert_non_null(helo);
	assert_non_null(from);
	assert_non_null(fallback);
	p.helo_name = helo;
	p.mail_from = from;
	p.fallback_mail_from = fallback;
	struct fake *f = start(&p);
	/* What a reload does to the old strings: overwrite, then free. */
	memset(helo, 'X', strlen(helo));
	memset(from, 'X', strlen(from));
	memset(fallback, 'X', strlen(fallback));
	free(helo);
	free(from);
	free(fallback);

	server(f, "220 mx\r\n", "EHLO first.test\r\n");
	server(f, "250 mx\r\n", "MAIL FROM:<probe@first.test>\r\n");
	server(f, "553 5.1.7 sender refused\r\n", "MAIL FROM:<postmaster@first.test>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "550 5.1.1 unknown\r\n", "RCPT TO:<zz9q@x.test>\r\n");
	server(f, "550 5.1.1 unknown\r\n", "QUIT\r\n");
	server(f, "221 bye\r\n", "");
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_true(f->out.fallback_sender);
	done(f);
}

/* ---- QUIT in the pipelined group ---------------------------------------- */

/* Plays one conversation — greeting, the given EHLO reply, then each reply
 * in `replies` as a segment of its own, QUIT answered 221 if asked — and
 * keeps the outcome and results. */
struct played {
	struct smtp_outcome out;
	struct smtp_rcpt_result res[2];
	size_t sends_after_ehlo;
	char sent[2048];
};

static void
play(const char *ehlo, const char *const *replies, struct played *pl)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	size_t before = f->sends;
	char sent[2048] = "";
	f->sent_len = 0;
	f->sent[0] = '\0';
	smtp_session_input(f->s, ehlo, strlen(ehlo));
	assert_true(f->sent_len < sizeof(sent));
	memcpy(sent, f->sent, f->sent_len + 1);
	for (size_t i = 0; replies[i] != NULL && !f->finished; i++) {
		f->sent_len = 0;
		f->sent[0] = '\0';
		smtp_session_input(f->s, replies[i], strlen(replies[i]));
		strncat(sent, f->sent, sizeof(sent) - strlen(sent) - 1);
	}
	if (!f->finished) {
		assert_non_null(strstr(sent, "QUIT\r\n"));
		smtp_session_input(f->s, "221 2.0.0 Bye\r\n", 15);
	}
	assert_true(f->finished);
	assert_int_equal(f->finish_calls, 1);
	/* QUIT once, whichever way it went. */
	const char *q = strstr(sent, "QUIT\r\n");
	assert_non_null(q);
	assert_null(strstr(q + 1, "QUIT\r\n"));
	pl->out = f->out;
	memcpy(pl->res, results, sizeof(pl->res));
	pl->sends_after_ehlo = f->sends - before;
	snprintf(pl->sent, sizeof(pl->sent), "%s", sent);
	done(f);
}

static void
assert_same_outcome(const struct played *a, const struct played *b)
{
	assert_int_equal(a->out.failure, b->out.failure);
	assert_int_equal(a->out.state, b->out.state);
	assert_string_equal(a->out.detail, b->out.detail);
	assert_int_equal(a->out.answered, b->out.answered);
	assert_int_equal(a->out.failure_class.reason, b->out.failure_class.reason);
	assert_int_equal(a->out.failure_reply.code, b->out.failure_reply.code);
	assert_string_equal(a->out.failure_reply.text, b->out.failure_reply.text);
	assert_int_equal(a->out.fallback_sender, b->out.fallback_sender);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(a->res[i].answered, b->res[i].answered);
		assert_int_equal(a->res[i].cls.reason, b->res[i].cls.reason);
		assert_int_equal(a->res[i].cls.action, b->res[i].cls.action);
		assert_int_equal(a->res[i].reply.code, b->res[i].reply.code);
		assert_string_equal(a->res[i].reply.enhanced, b->res[i].reply.enhanced);
		assert_string_equal(a->res[i].reply.text, b->res[i].reply.text);
	}
}

/* The same server answers, in lock step and with QUIT in the pipelined
 * group: one write instead of three after EHLO, the same outcome. */
static void
test_pipelined_quit_same_outcome(void **state)
{
	static const char *const replies[] = { "250 2.1.0 Ok\r\n", "250 2.1.5 Ok\r\n",
		"550 5.1.1 <zz9q@x.test>: Recipient address rejected: User unknown\r\n", NULL };
	struct played lock, piped;

	play("250-mx\r\n250 ENHANCEDSTATUSCODES\r\n", replies, &lock);
	play("250-mx\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n", replies, &piped);
	assert_int_equal(lock.sends_after_ehlo, 4); /* MAIL, RCPT, RCPT, QUIT */
	assert_int_equal(piped.sends_after_ehlo, 1);
	assert_string_equal(piped.sent, "MAIL FROM:<>\r\nRCPT TO:<alice@x.test>\r\n"
	    "RCPT TO:<zz9q@x.test>\r\nQUIT\r\n");
	assert_int_equal(piped.out.failure, SMTP_OK);
	assert_int_equal(piped.res[0].cls.reason, REASON_ACCEPTED);
	assert_int_equal(piped.res[1].cls.reason, REASON_NO_SUCH_USER);
	assert_same_outcome(&lock, &piped);
}

/* A refused null sender and no fallback: the RCPTs that rode along get
 * 503 and QUIT 221; the outcome is the refused MAIL's, as in lock step. */
static void
test_pipelined_quit_mail_refused_same_outcome(void **state)
{
	static const char *const lock_replies[] = {
		"550 5.7.1 <>: Sender address rejected: Access denied\r\n", NULL };
	static const char *const piped_replies[] = {
		"550 5.7.1 <>: Sender address rejected: Access denied\r\n",
		"503 5.5.1 Error: need MAIL command\r\n",
		"503 5.5.1 Error: need MAIL command\r\n", NULL };
	struct played lock, piped;

	play("250 mx\r\n", lock_replies, &lock);
	play("250-mx\r\n250 PIPELINING\r\n", piped_replies, &piped);
	assert_int_equal(piped.sends_after_ehlo, 1);
	assert_int_equal(piped.out.failure, SMTP_FAIL_REPLY);
	assert_int_equal(piped.out.state, SMTP_MAIL);
	assert_int_equal(piped.out.failure_class.reason, REASON_SENDER_REJECTED);
	assert_int_equal(piped.out.answered, 0);
	assert_same_outcome(&lock, &piped);
}

/* The lock-step shift with QUIT in the group: a second reply to MAIL in a
 * segment of its own is read as the first RCPT's, the last RCPT's lands
 * where QUIT's 221 belongs, and every RCPT answer is forgotten. */
static void
test_pipelined_quit_shift_caught(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 PIPELINING\r\n",
	    "MAIL FROM:<>\r\nRCPT TO:<alice@x.test>\r\nRCPT TO:<zz9q@x.test>\r\nQUIT\r\n");
	server(f, "250 2.1.0 Ok\r\n", "");
	server(f, "250 2.1.0 Ok again\r\n", "");
	server(f, "250 2.1.5 alice Ok\r\n", "");
	assert_false(f->finished);
	/* Both read one off, and kept for now. */
	assert_true(results[0].answered);
	assert_true(results[1].answered);
	server(f, "550 5.1.1 zz9q unknown\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_PROTOCOL);
	assert_string_equal(f->out.detail, "QUIT answered with another command's reply");
	assert_int_equal(f->out.answered, 0);
	assert_false(results[0].answered);
	assert_false(results[1].answered);
	/* QUIT's real 221, late: ignored, nothing sent, no second finish. */
	server(f, "221 Bye\r\n", "");
	assert_int_equal(f->finish_calls, 1);
	done(f);
}

/* "Too many recipients" with QUIT in the group: no RSET can follow, the
 * deferred address stays unanswered for the caller to ask again. */
static void
test_pipelined_quit_too_many_recipients(void **state)
{
	static const char *const three[] = { "a@x.test", "b@x.test", "r@x.test" };
	struct smtp_session_params p = params();
	p.rcpts = three;
	p.n_rcpts = 3;
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	size_t before = f->sends;
	server(f, "250-mx\r\n250 PIPELINING\r\n",
	    "MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\n"
	    "RCPT TO:<r@x.test>\r\nQUIT\r\n");
	server(f, "250 ok\r\n250 ok\r\n550 5.1.1 no\r\n452 4.5.3 Too many recipients\r\n",
	    "");
	assert_false(f->finished);
	assert_int_equal(smtp_session_state(f->s), SMTP_QUIT);
	server(f, "221 bye\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->sends, before + 1); /* no RSET, no second QUIT */
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_true(f->out.quit_pipelined); /* the caller asks r@ again */
	assert_int_equal(f->out.answered, 2);
	assert_int_equal(results[0].cls.reason, REASON_ACCEPTED);
	assert_int_equal(results[1].cls.reason, REASON_NO_SUCH_USER);
	assert_false(results[2].answered);
	done(f);
}

/* A fallback sender configured: the first group must leave room for
 * MAIL with the fallback, so QUIT stays out of it; the fallback's group,
 * with nothing left to fall back to, carries QUIT — sent once even when
 * the fallback is refused too. */
static void
test_pipelined_fallback_keeps_quit_back(void **state)
{
	struct smtp_session_params p = params();
	p.fallback_mail_from = "postmaster@probe.test";
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 PIPELINING\r\n",
	    "MAIL FROM:<>\r\nRCPT TO:<alice@x.test>\r\nRCPT TO:<zz9q@x.test>\r\n");
	server(f, "553 5.1.7 null sender refused\r\n503 5.5.1 need MAIL\r\n"
	    "503 5.5.1 need MAIL\r\n",
	    "MAIL FROM:<postmaster@probe.test>\r\nRCPT TO:<alice@x.test>\r\n"
	    "RCPT TO:<zz9q@x.test>\r\nQUIT\r\n");
	server(f, "550 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
	    "221 bye\r\n", "");
	assert_true(f->finished);
	assert_int_equal(f->finish_calls, 1);
	assert_int_equal(f->out.failure, SMTP_FAIL_REPLY);
	assert_int_equal(f->out.state, SMTP_MAIL);
	assert_true(f->out.fallback_sender);
	assert_int_equal(f->out.failure_class.reason, REASON_SENDER_REJECTED);
	assert_int_equal(f->out.answered, 0);
	done(f);
}

/* Without PIPELINING nothing changes: QUIT only after the last reply. */
static void
test_no_pipelining_quit_alone(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 8BITMIME\r\n", "MAIL FROM:<>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<alice@x.test>\r\n");
	server(f, "250 ok\r\n", "RCPT TO:<zz9q@x.test>\r\n");
	assert_int_equal(smtp_session_state(f->s), SMTP_RCPT);
	server(f, "550 5.1.1 unknown\r\n", "QUIT\r\n");
	server(f, "221 bye\r\n", "");
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_false(f->out.quit_pipelined);
	assert_int_equal(f->out.answered, 2);
	done(f);
}

/* A server that hangs up without answering QUIT: after every RCPT reply
 * that is a goodbye, as when QUIT is sent alone; before, it is a drop. */
static void
test_pipelined_quit_close(void **state)
{
	struct smtp_session_params p = params();
	struct fake *f = start(&p);

	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 PIPELINING\r\n",
	    "MAIL FROM:<>\r\nRCPT TO:<alice@x.test>\r\nRCPT TO:<zz9q@x.test>\r\nQUIT\r\n");
	server(f, "250 ok\r\n250 ok\r\n550 5.1.1 unknown\r\n", "");
	smtp_session_closed(f->s, "connection closed");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_OK);
	assert_int_equal(f->out.answered, 2);
	done(f);

	f = start(&p);
	server(f, "220 mx\r\n", "EHLO probe.test\r\n");
	server(f, "250-mx\r\n250 PIPELINING\r\n",
	    "MAIL FROM:<>\r\nRCPT TO:<alice@x.test>\r\nRCPT TO:<zz9q@x.test>\r\nQUIT\r\n");
	server(f, "250 ok\r\n250 ok\r\n", "");
	smtp_session_closed(f->s, "connection closed");
	assert_true(f->finished);
	assert_int_equal(f->out.failure, SMTP_FAIL_DROPPED);
	assert_int_equal(f->out.state, SMTP_RCPT);
	assert_true(results[0].answered);
	assert_false(results[1].answered);
	assert_int_equal(f->out.answered, 1);
	done(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_conversation),
		cmocka_unit_test(test_pipelining_one_write),
		cmocka_unit_test(test_pipelined_every_rcpt_answered),
		cmocka_unit_test(test_banner_timeout),
		cmocka_unit_test(test_connect_timeout_and_failure),
		cmocka_unit_test(test_ehlo_refused_helo),
		cmocka_unit_test(test_banner_554_is_not_about_the_mailbox),
		cmocka_unit_test(test_421_banner_no_quit),
		cmocka_unit_test(test_null_sender_fallback),
		cmocka_unit_test(test_pipelined_null_sender_fallback),
		cmocka_unit_test(test_sender_refused_without_fallback),
		cmocka_unit_test(test_quit_waits_for_pipelined_leftovers),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_starttls_injection_refused),
		cmocka_unit_test(test_starttls_required_not_offered),
		cmocka_unit_test(test_tls_handshake_failure),
		cmocka_unit_test(test_out_of_turn_reply),
		cmocka_unit_test(test_two_replies_to_pipelined_mail),
		cmocka_unit_test(test_two_replies_to_rcpt),
		cmocka_unit_test(test_extra_reply_alone_caught_at_quit),
		cmocka_unit_test(test_odd_quit_reply_without_answers),
		cmocka_unit_test(test_quit_answered_421_keeps_answers),
		cmocka_unit_test(test_malformed_reply),
		cmocka_unit_test(test_endless_multiline_reply),
		cmocka_unit_test(test_huge_line),
		cmocka_unit_test(test_drop_after_target),
		cmocka_unit_test(test_drop_before_rcpt),
		cmocka_unit_test(test_421_at_rcpt),
		cmocka_unit_test(test_one_recipient_per_transaction),
		cmocka_unit_test(test_batch_with_too_many_recipients),
		cmocka_unit_test(test_no_progress_stops),
		cmocka_unit_test(test_smtputf8),
		cmocka_unit_test(test_unsafe_parameters_refused),
		cmocka_unit_test(test_timeout_after_target_keeps_answer),
		cmocka_unit_test(test_names_outlive_the_caller),
		cmocka_unit_test(test_pipelined_quit_same_outcome),
		cmocka_unit_test(test_pipelined_quit_mail_refused_same_outcome),
		cmocka_unit_test(test_pipelined_quit_shift_caught),
		cmocka_unit_test(test_pipelined_quit_too_many_recipients),
		cmocka_unit_test(test_pipelined_fallback_keeps_quit_back),
		cmocka_unit_test(test_no_pipelining_quit_alone),
		cmocka_unit_test(test_pipelined_quit_close),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
