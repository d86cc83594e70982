/*
 * smtp_io — runs one smtp_session over a real connection: non-blocking
 * TCP connect on libev, the session's single timer, and a transport that is
 * plain TCP until STARTTLS and OpenSSL after it.  It owns the socket and
 * the SSL object; the session owns the conversation.
 */
#ifndef PROBED_SMTP_IO_H
#define PROBED_SMTP_IO_H

#include <stdbool.h>
#include <sys/socket.h>

#include <ev.h>
#include <openssl/ssl.h>

#include "smtp_session.h"

struct smtp_io;

struct smtp_io_params {
	struct sockaddr_storage addr;   /* with the port set */
	socklen_t addrlen;
	const struct sockaddr_storage *source; /* bind first; NULL: any */
	const char *server_name;        /* the MX name: SNI and logs */
	SSL_CTX *tls;                   /* NULL: no TLS possible */
	struct smtp_session_params session;
};

typedef void (*smtp_io_done_cb)(const struct smtp_outcome *outcome, void *arg);

/* Starts connecting; done runs exactly once, later, unless cancelled. */
struct smtp_io *smtp_io_start(struct ev_loop *loop, const struct smtp_io_params *p,
    smtp_io_done_cb done, void *arg);
/* Drop the conversation at once (no QUIT): done will not run. */
void smtp_io_cancel(struct smtp_io *io);

/* A client context for opportunistic STARTTLS: TLS 1.2 or newer, no
 * certificate verification (as Postfix's "may" and "encrypt" levels). */
SSL_CTX *smtp_io_tls_context(char *err, size_t errlen);

#endif
