/*
 * smtp_io — one SMTP connection on libev, plain or TLS.  See smtp_io.h.
 *
 * The transport has four phases: CONNECTING (waiting for the non-blocking
 * connect), PLAIN, HANDSHAKE (SSL_connect until done) and TLS.  After
 * every event, io_settle() flushes pending output, derives the watchers'
 * interest from the phase, and — once the session has finished — tears
 * everything down in one place and reports the outcome.  The session is
 * only ever called from here, never re-entered.
 *
 * LIMITS: reads are 4 KiB at a time; the session's line reader bounds what
 * is kept.  Output is only ever a few commands.
 *
 * SECURITY: certificates are not verified: probing needs an answer, not an
 * authenticated peer, and most MX certificates would fail verification.
 * TLS 1.2 is the floor.
 */
#include "autoconfig.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "log.h"
#include "smtp_io.h"

#define SMTP_IO_READ_CHUNK 4096

enum io_phase { IO_CONNECTING, IO_PLAIN, IO_HANDSHAKE, IO_TLS, IO_CLOSED };

struct smtp_io {
	struct ev_loop *loop;
	int fd;
	enum io_phase phase;
	ev_io rio, wio;
	ev_timer timer;          /* the session's stage timer */
	ev_timer kick;           /* reports a connect() that failed at once */
	const char *timer_name;
	struct smtp_session *session;
	SSL_CTX *ctx;
	SSL *ssl;
	bool hs_want_write;      /* the handshake waits for writability */
	char server_name[256];
	char *out;
	size_t out_len, out_off, out_cap;
	bool finished;
	struct smtp_outcome outcome;
	char connect_error[96];
	smtp_io_done_cb done;
	void *arg;
};

static void io_settle(struct smtp_io *io);

/* ---- what the session asks of us ------------------------------------ */

static void
op_send(void *v, const char *data, size_t len)
{
	struct smtp_io *io = v;

	if (io->out_len + len > io->out_cap) {
		size_t cap = io->out_cap ? io->out_cap : 1024;
		while (cap < io->out_len + len)
			cap *= 2;
		char *p = realloc(io->out, cap);
		if (p == NULL) {
			log_err("smtp %s out of memory queueing a command", io->server_name);
			return; /* the command timer will end the session */
		}
		io->out = p;
		io->out_cap = cap;
	}
	memcpy(io->out + io->out_len, data, len);
	io->out_len += len;
}

static void
op_set_timer(void *v, double seconds, const char *name)
{
	struct smtp_io *io = v;

	ev_timer_stop(io->loop, &io->timer);
	io->timer_name = name;
	if (seconds > 0.) {
		ev_timer_set(&io->timer, seconds, 0.);
		ev_timer_start(io->loop, &io->timer);
	}
}

static void
op_start_tls(void *v)
{
	struct smtp_io *io = v;

	io->phase = IO_HANDSHAKE;
	io->hs_want_write = true;
	io->ssl = SSL_new(io->ctx);
	if (io->ssl == NULL || SSL_set_fd(io->ssl, io->fd) != 1 ||
	    SSL_set_tlsext_host_name(io->ssl, io->server_name) != 1) {
		/* Reported by the handshake step, which sees ssl == NULL. */
		log_err("smtp %s cannot set up TLS", io->server_name);
	}
	if (io->ssl != NULL)
		SSL_set_connect_state(io->ssl);
}

static void
op_finish(void *v, const struct smtp_outcome *outcome)
{
	struct smtp_io *io = v;

	io->outcome = *outcome;
	io->finished = true;
}

static const struct smtp_session_ops session_ops = {
	.send = op_send,
	.set_timer = op_set_timer,
	.start_tls = op_start_tls,
	.finish = op_finish,
};

/* ---- transport ------------------------------------------------------- */

static const char *
tls_error_text(char *buf, size_t cap)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		return "TLS handshake failed";
	ERR_error_string_n(e, buf, cap);
	ERR_clear_error();
	return buf;
}

static void
do_handshake(struct smtp_io *io)
{
	char buf[128];

	if (io->ssl == NULL) {
		smtp_session_tls_done(io->session, false, "TLS set-up failed");
		return;
	}
	ERR_clear_error();
	int r = SSL_connect(io->ssl);
	if (r == 1) {
		io->phase = IO_TLS;
		log_debug("smtp %s tls version=%s cipher=%s", io->server_name,
		    SSL_get_version(io->ssl), SSL_get_cipher_name(io->ssl));
		smtp_session_tls_done(io->session, true, NULL);
		return;
	}
	int e = SSL_get_error(io->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		io->hs_want_write = false;
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		io->hs_want_write = true;
		return;
	}
	io->phase = IO_CLOSED;
	smtp_session_tls_done(io->session, false, tls_error_text(buf, sizeof(buf)));
}

static void
flush_output(struct smtp_io *io)
{
	while (io->out_off < io->out_len) {
		size_t n = io->out_len - io->out_off;
		ssize_t w;

		if (io->phase == IO_TLS) {
			ERR_clear_error();
			int r = SSL_write(io->ssl, io->out + io->out_off, (int)n);
			if (r <= 0) {
				int e = SSL_get_error(io->ssl, r);
				if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
					return;
				io->phase = IO_CLOSED;
				smtp_session_closed(io->session, "TLS write failed");
				return;
			}
			w = r;
		} else if (io->phase == IO_PLAIN) {
			w = send(io->fd, io->out + io->out_off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
					return;
				io->phase = IO_CLOSED;
				smtp_session_closed(io->session, errno == EPIPE ?
				    "connection closed" : "connection reset");
				return;
			}
		} else {
			return; /* not writable yet: connecting or handshaking */
		}
		io->out_off += (size_t)w;
	}
	io->out_off = io->out_len = 0;
}

static void
read_input(struct smtp_io *io)
{
	char buf[SMTP_IO_READ_CHUNK];

	if (io->phase == IO_PLAIN) {
		ssize_t n = recv(io->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			smtp_session_input(io->session, buf, (size_t)n);
			return;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		io->phase = IO_CLOSED;
		smtp_session_closed(io->session, n == 0 ? "connection closed" :
		    errno == ECONNRESET ? "connection reset" : "read error");
		return;
	}
	if (io->phase != IO_TLS)
		return;
	/* SSL may hold decrypted bytes beyond one read: drain them all. */
	for (;;) {
		ERR_clear_error();
		int r = SSL_read(io->ssl, buf, sizeof(buf));
		if (r > 0) {
			smtp_session_input(io->session, buf, (size_t)r);
			if (io->finished || io->phase != IO_TLS)
				return;
			continue;
		}
		int e = SSL_get_error(io->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return;
		io->phase = IO_CLOSED;
		smtp_session_closed(io->session, e == SSL_ERROR_ZERO_RETURN ?
		    "connection closed" : "TLS read failed");
		return;
	}
}

/* ---- events ---------------------------------------------------------- */

static void
on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct smtp_io *io = w->data;

	if (io->phase == IO_HANDSHAKE)
		do_handshake(io);
	else
		read_input(io);
	io_settle(io);
}

static void
on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct smtp_io *io = w->data;

	if (io->phase == IO_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			io->phase = IO_CLOSED;
			smtp_session_connect_failed(io->session, strerror(err));
		} else {
			io->phase = IO_PLAIN;
			smtp_session_connected(io->session);
		}
	} else if (io->phase == IO_HANDSHAKE) {
		do_handshake(io);
	}
	io_settle(io);
}

static void
on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct smtp_io *io = w->data;

	log_debug("smtp %s timeout=%s state=%s", io->server_name,
	    io->timer_name ? io->timer_name : "?", smtp_state_name(smtp_session_state(io->session)));
	smtp_session_timeout(io->session);
	io_settle(io);
}

static void
on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct smtp_io *io = w->data;

	smtp_session_connect_failed(io->session, io->connect_error);
	io_settle(io);
}

static void
io_teardown(struct smtp_io *io)
{
	ev_io_stop(io->loop, &io->rio);
	ev_io_stop(io->loop, &io->wio);
	ev_timer_stop(io->loop, &io->timer);
	ev_timer_stop(io->loop, &io->kick);
	if (io->ssl != NULL) {
		/* No close_notify round trip: QUIT already ended the talk. */
		SSL_free(io->ssl);
	}
	if (io->fd >= 0)
		close(io->fd);
	smtp_session_free(io->session);
	free(io->out);
}

static void
io_settle(struct smtp_io *io)
{
	if (!io->finished)
		flush_output(io);
	if (io->finished) {
		struct smtp_outcome outcome = io->outcome;
		smtp_io_done_cb done = io->done;
		void *arg = io->arg;

		io_teardown(io);
		free(io);
		done(&outcome, arg);
		return;
	}

	bool want_read = false, want_write = false;
	switch (io->phase) {
	case IO_CONNECTING:
		want_write = true;
		break;
	case IO_HANDSHAKE:
		want_write = io->hs_want_write;
		want_read = !io->hs_want_write;
		break;
	case IO_PLAIN:
	case IO_TLS:
		want_read = true;
		want_write = io->out_off < io->out_len;
		break;
	case IO_CLOSED:
		break;
	}
	if (want_read && !ev_is_active(&io->rio))
		ev_io_start(io->loop, &io->rio);
	else if (!want_read && ev_is_active(&io->rio))
		ev_io_stop(io->loop, &io->rio);
	if (want_write && !ev_is_active(&io->wio))
		ev_io_start(io->loop, &io->wio);
	else if (!want_write && ev_is_active(&io->wio))
		ev_io_stop(io->loop, &io->wio);
}

/* ---- life ------------------------------------------------------------ */

struct smtp_io *
smtp_io_start(struct ev_loop *loop, const struct smtp_io_params *p, smtp_io_done_cb done,
    void *arg)
{
	struct smtp_io *io = calloc(1, sizeof(*io));

	if (io == NULL)
		return NULL;
	io->loop = loop;
	io->fd = -1;
	io->done = done;
	io->arg = arg;
	io->ctx = p->tls;
	snprintf(io->server_name, sizeof(io->server_name), "%s", p->server_name);
	ev_io_init(&io->rio, on_readable, 0, EV_READ);
	ev_io_init(&io->wio, on_writable, 0, EV_WRITE);
	ev_timer_init(&io->timer, on_timer, 1., 0.);
	ev_timer_init(&io->kick, on_kick, 0., 0.);
	io->rio.data = io->wio.data = io->timer.data = io->kick.data = io;

	struct smtp_session_params sp = p->session;
	sp.tls_available = p->tls != NULL;
	io->session = smtp_session_new(&sp, &session_ops, io);
	if (io->session == NULL) {
		free(io);
		return NULL;
	}

	io->phase = IO_CONNECTING;
	io->fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int err = io->fd < 0 ? errno : 0;
	if (err == 0 && p->source != NULL &&
	    bind(io->fd, (const struct sockaddr *)p->source,
	        p->source->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                         : sizeof(struct sockaddr_in)) != 0)
		err = errno;
	if (err == 0 && connect(io->fd, (const struct sockaddr *)&p->addr, p->addrlen) != 0 &&
	    errno != EINPROGRESS)
		err = errno;
	if (err != 0) {
		/* Reported from the loop: done never runs inside this call. */
		snprintf(io->connect_error, sizeof(io->connect_error), "%s", strerror(err));
		io->phase = IO_CLOSED;
		ev_timer_start(loop, &io->kick);
		return io;
	}
	ev_io_set(&io->rio, io->fd, EV_READ);
	ev_io_set(&io->wio, io->fd, EV_WRITE);
	ev_io_start(loop, &io->wio);
	return io;
}

void
smtp_io_cancel(struct smtp_io *io)
{
	if (io == NULL)
		return;
	io_teardown(io);
	free(io);
}

SSL_CTX *
smtp_io_tls_context(char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		snprintf(err, errlen, "cannot require TLS 1.2");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}
