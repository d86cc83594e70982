/*
 * smtp_session — the SMTP probe conversation as an explicit state machine,
 * free of sockets and clocks: bytes in, bytes out, one named timer, and an
 * outcome at the end.  smtp_io.c drives it over TCP (and TLS) on libev; the
 * tests drive it with a scripted server and a fake clock.
 *
 *   CONNECT -> BANNER -> EHLO [-> HELO] [-> STARTTLS -> TLS -> EHLO]
 *           -> MAIL [-> MAIL fallback sender] -> RCPT x n
 *           [-> RSET -> MAIL -> RCPT x deferred] -> QUIT -> DONE
 *
 * With PIPELINING, MAIL and its RCPTs leave in one write, and QUIT with
 * them when no fallback sender can be needed: a RCPT deferred there stays
 * unanswered (no RSET after QUIT) for the caller to ask again.
 *
 * The session carries up to SMTP_MAX_RCPTS addresses and treats them
 * alike: which is the catch-all check is the caller's business.  An RCPT
 * answered "too many recipients" (452, x.5.3) is deferred to a further
 * transaction on the same connection.
 *
 * The session knows nothing of its caller: what to say comes in
 * smtp_session_params, what happened leaves in smtp_outcome through the
 * finish callback, exactly once.
 */
#ifndef PROBED_SMTP_SESSION_H
#define PROBED_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "classify.h"
#include "config.h"
#include "smtp_reply.h"

struct smtp_session;

enum smtp_state {
	SMTP_CONNECT,       /* waiting for the TCP connection */
	SMTP_BANNER,        /* waiting for the greeting */
	SMTP_EHLO,
	SMTP_HELO,          /* EHLO was refused */
	SMTP_STARTTLS,
	SMTP_TLS,           /* TLS handshake in the driver */
	SMTP_MAIL,
	SMTP_RCPT,          /* the transaction's RCPTs, one reply each */
	SMTP_RSET,          /* before a further transaction for deferred RCPTs */
	SMTP_QUIT,
	SMTP_DONE,
	SMTP__STATE_COUNT
};

/* How the session ended. */
enum smtp_failure {
	SMTP_OK,             /* every RCPT that could be asked was answered */
	SMTP_FAIL_CONNECT,   /* TCP connect refused, unreachable, ... */
	SMTP_FAIL_TIMEOUT,   /* a stage's timer ran out */
	SMTP_FAIL_DROPPED,   /* the server closed or reset the connection */
	SMTP_FAIL_PROTOCOL,  /* a malformed or unexpected reply */
	SMTP_FAIL_TLS,       /* STARTTLS refused (required) or handshake failed */
	SMTP_FAIL_REPLY,     /* a reply ended the session (before or at RCPT: 421) */
	SMTP_FAIL_UTF8,      /* the addresses need SMTPUTF8; the server lacks it */
};

#define SMTP_KEPT_TEXT_MAX 512 /* reply text kept for the answer (as ctl_result) */
#define SMTP_MAX_RCPTS 128     /* RCPTs one session may carry */
#define SMTP_MAX_TRANSACTIONS 4 /* MAIL transactions per session (452 deferrals) */

struct smtp_reply_copy {
	int code;              /* 0: no reply */
	char enhanced[16];
	char text[SMTP_KEPT_TEXT_MAX];
};

/* One RCPT's fate, in the caller's array (smtp_session_params.results). */
struct smtp_rcpt_result {
	bool answered;               /* the server said something about it */
	struct classification cls;
	struct smtp_reply_copy reply;
};

struct smtp_outcome {
	enum smtp_failure failure;
	enum smtp_state state;       /* where it ended (failure) */
	char detail[96];             /* "connection refused", "greeting_timeout", ... */
	struct classification failure_class; /* for SMTP_FAIL_REPLY */
	struct smtp_reply_copy failure_reply;
	size_t answered;             /* RCPTs answered (see results[]) */
	bool tls;                    /* the conversation ran over TLS */
	bool fallback_sender;        /* the null sender was refused */
	bool quit_pipelined;         /* QUIT went with MAIL: RCPTs deferred by
	                              * "too many recipients" got no second
	                              * transaction on this connection */
	unsigned extensions;         /* from the last EHLO */
};

/* The three sender/greeting strings are copied by smtp_session_new() (a
 * reload may replace the caller's); rcpts and results are borrowed and must
 * outlive the session. */
struct smtp_session_params {
	const char *helo_name;
	const char *mail_from;          /* "" = null sender */
	const char *fallback_mail_from; /* "" = none */
	const char *const *rcpts;       /* syntax already checked */
	size_t n_rcpts;                 /* 1 .. SMTP_MAX_RCPTS */
	struct smtp_rcpt_result *results; /* n_rcpts entries, owned by the caller */
	bool rcpt_utf8;                 /* the addresses need SMTPUTF8 */
	enum starttls_mode starttls;
	bool tls_available;             /* the driver can do TLS */
	double connect_timeout;
	double greeting_timeout;
	double command_timeout;
};

/* What the session asks of its driver.  Every call may happen from inside
 * any smtp_session_* entry point. */
struct smtp_session_ops {
	void (*send)(void *io, const char *data, size_t len);
	void (*set_timer)(void *io, double seconds, const char *name);
	void (*start_tls)(void *io);
	void (*finish)(void *io, const struct smtp_outcome *outcome);
};

/* Starts in SMTP_CONNECT with the connect timer armed. */
struct smtp_session *smtp_session_new(const struct smtp_session_params *p,
    const struct smtp_session_ops *ops, void *io) __attribute__((warn_unused_result));
void smtp_session_free(struct smtp_session *s);

/* Events from the driver. */
void smtp_session_connected(struct smtp_session *s);
void smtp_session_connect_failed(struct smtp_session *s, const char *detail);
void smtp_session_input(struct smtp_session *s, const char *data, size_t len);
void smtp_session_closed(struct smtp_session *s, const char *detail);
void smtp_session_timeout(struct smtp_session *s);
void smtp_session_tls_done(struct smtp_session *s, bool ok, const char *detail);

enum smtp_state smtp_session_state(const struct smtp_session *s);
const char *smtp_state_name(enum smtp_state st);
const char *smtp_failure_name(enum smtp_failure f);

#endif
