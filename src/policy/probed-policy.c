/*
 * probed-policy — Postfix policy delegation adapter: Postfix asks (policy
 * protocol on stdin/stdout), probed answers (VERIFY on its control socket),
 * an access(5) action goes back.
 *
 *   probed-policy [-f | -L FILE] [-c FILE] [-s SOCKET] [-v recipient|sender]
 *                 [-w SECONDS]
 *   probed-policy -t [-c FILE] [options]     check and show the settings
 *
 * Runs where Postfix's spawn(8) or a systemd Accept=yes socket puts it:
 * one Postfix connection on stdin/stdout, many requests in turn, exit at
 * end of input.  Owns: the command line, the connection to probed (one,
 * kept across requests, made again after a failure), the deadline of each
 * question, the answer line and the one log line per decision.  The
 * protocol parser (policy_proto.c), the rules (policy_rules.c) and the
 * action templates (policy_action.c) live beside it.
 *
 * Fail-open: every request is answered.  probed not running, refusing,
 * failing or silent past the deadline, a malformed request, even a
 * configuration that does not load: the answer is policy.on_error (the
 * built-in DUNNO when the file is broken), so mail keeps flowing, and the
 * log says why.  A request is answered within policy.wait + GRACE_MS: the
 * VERIFY carries timeout=<wait>, so probed answers `pending` by then, and
 * our own deadline covers a probed that does not.
 *
 * Limits: requests are answered one at a time, in order (Postfix sends
 * one and waits); a request is at most POLICY_REQUEST_MAX octets; probed's
 * answer line at most RESPONSE_MAX.  Memory is fixed after start-up.
 *
 * Security: the SMTP client controls the addresses; they reach probed only
 * as one quoted token without control octets (policy_rules.c), and reach
 * Postfix only through policy_action_expand(), which lets nothing but
 * printable ASCII into the action line.  Under spawn(8) standard error is
 * the Postfix connection too, so unless -f is given it is pointed at
 * /dev/null (or the -L file): nothing can write stray text into the
 * protocol.  probed-policy needs no privileges; it runs as the account
 * spawn(8) or the unit names, which must be able to read probed.conf and
 * connect to probed's socket.
 */
#include "autoconfig.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "linebuf.h"
#include "log.h"
#include "policy_action.h"
#include "policy_proto.h"
#include "policy_rules.h"

#define EXIT_USAGE 64            /* sysexits.h EX_USAGE */

#define GRACE_MS 500             /* past policy.wait, for probed's answer to arrive */
#define RESPONSE_MAX 16384       /* one answer line from probed, LF included */
#define WRITE_TIMEOUT_MS 100000  /* Postfix's smtpd_policy_service_timeout */
#define WAIT_MIN 0.1             /* policy.wait's range (config.c) */
#define WAIT_MAX 3600.0

/* Why probed could not answer: the %r of on_error. */
enum ask_status {
	ASK_OK,
	ASK_UNAVAILABLE,         /* cannot connect */
	ASK_TIMEOUT,             /* no answer by the deadline */
	ASK_LOST,                /* the connection broke or closed */
	ASK_BAD_RESPONSE,        /* not an answer to our VERIFY */
	ASK_NOT_AUTHORIZED,      /* probed's allow-list refused our user */
};

static const char *const ask_words[] = {
	[ASK_OK] = "ok",
	[ASK_UNAVAILABLE] = "unavailable",
	[ASK_TIMEOUT] = "timeout",
	[ASK_LOST] = "lost",
	[ASK_BAD_RESPONSE] = "bad_response",
	[ASK_NOT_AUTHORIZED] = "not_authorized",
};

/* The connection to probed. */
struct upstream {
	const char *path;
	int fd;                  /* -1: not connected */
	bool answered;           /* it has answered before: a failure may just
	                          * mean probed restarted since */
	bool down;               /* the last attempt failed (log once) */
	struct linebuf lb;
	char why[256];           /* detail of the last failure, for the log */
};

/* The answer to one VERIFY, parsed. */
struct answer {
	struct ctl_response resp;
	char line[RESPONSE_MAX];
	char scratch[RESPONSE_MAX + CTL_RESP_MAX_KV];
};

struct adapter {
	struct config *cfg;
	bool failopen;           /* the configuration did not load */
	struct policy_rules rules;
	char wait_text[48];      /* policy.wait for timeout=, "8" or "0.25" */
	long wait_ms;
	struct upstream up;
	struct linebuf in;
	struct policy_request req;
	struct policy_choice choice;
	struct answer ans;
	unsigned long seq;       /* requests answered */
};

struct options {
	const char *config_path;
	const char *socket;
	const char *verify;
	const char *wait;
	const char *log_file;
	bool foreground;
	bool test;
};

static void usage(FILE *f);
static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static long now_ms(void);
static double now_us(void);
static void format_wait(double wait, char *out, size_t cap);
static bool parse_wait(const char *s, double *out);
static void setup_logging(const struct options *o);
static int load(struct adapter *a, const struct options *o);
static void show_settings(const struct adapter *a);
static void upstream_close(struct upstream *up);
static bool upstream_connect(struct upstream *up, long deadline);
static bool send_all(struct upstream *up, const char *buf, size_t len, long deadline,
    bool *stale);
static enum ask_status read_answer(struct upstream *up, struct answer *ans,
    long deadline, bool *stale);
static enum ask_status ask(struct adapter *a, const char *address, size_t len);
static bool write_answer(const char *action);
static void decide(struct adapter *a);
static int serve(struct adapter *a);

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: probed-policy [-f | -L FILE] [-c FILE] [-s SOCKET] [-v recipient|sender]\n"
	    "                     [-w SECONDS]\n"
	    "       probed-policy -t [-c FILE] [-s SOCKET] [-v recipient|sender] [-w SECONDS]\n"
	    "       probed-policy -h | -V\n"
	    "\n"
	    "Postfix policy delegation adapter for probed: reads policy requests on\n"
	    "standard input, answers access(5) actions on standard output.\n"
	    "\n"
	    "  -c, --config FILE    probed.conf to read (default %s)\n"
	    "  -s, --socket SOCKET  probed's control socket (default: `socket` of the file)\n"
	    "  -v, --verify WHAT    recipient or sender (default: policy.verify)\n"
	    "  -w, --wait SECONDS   longest wait for a verdict, %g to %g\n"
	    "                       (default: policy.wait)\n"
	    "  -f, --foreground     log to standard error instead of the journal\n"
	    "  -L, --log-file FILE  append the log to FILE instead of the journal\n"
	    "  -t, --test           check the configuration, print the settings, exit\n"
	    "  -h, --help           this text\n"
	    "  -V, --version        the version\n",
	    CONFIG_DEFAULT_PATH, WAIT_MIN, WAIT_MAX);
}

static void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("probed-policy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'probed-policy --help' for more information.\n", stderr);
	exit(EXIT_USAGE);
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* As the codec reads it: whole seconds, or up to three decimals. */
static void
format_wait(double wait, char *out, size_t cap)
{
	long ms = lround(wait * 1000.0);

	if (ms < 1)
		ms = 1;
	if (ms % 1000 == 0)
		snprintf(out, cap, "%ld", ms / 1000);
	else {
		int width = 3;
		long frac = ms % 1000;

		for (; frac % 10 == 0; frac /= 10)
			width--;
		snprintf(out, cap, "%ld.%0*ld", ms / 1000, width, frac);
	}
}

static bool
parse_wait(const char *s, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !(d >= WAIT_MIN && d <= WAIT_MAX))
		return false;
	*out = d;
	return true;
}

/*
 * Standard error is the Postfix connection under spawn(8): anything written
 * there would be read as the policy answer.  So it is the journal (default)
 * with stderr made harmless, a file (-L), or stderr itself (-f, by hand).
 */
static void
setup_logging(const struct options *o)
{
	struct stat e, i, out;
	int fd;

	if (o->foreground) {
		log_open("probed-policy", LOG_TARGET_STDERR);
		return;
	}
	if (o->log_file != NULL) {
		fd = open(o->log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
		    0640);
		if (fd < 0) {
			fprintf(stderr, "probed-policy: %s: %s\n", o->log_file, strerror(errno));
			exit(EXIT_USAGE);
		}
		if (fd != STDERR_FILENO) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		log_open("probed-policy", LOG_TARGET_STDERR);
		return;
	}
	log_open("probed-policy", LOG_TARGET_JOURNAL);
	if (fstat(STDERR_FILENO, &e) == 0 &&
	    ((fstat(STDIN_FILENO, &i) == 0 && i.st_dev == e.st_dev && i.st_ino == e.st_ino) ||
	    (fstat(STDOUT_FILENO, &out) == 0 && out.st_dev == e.st_dev &&
	    out.st_ino == e.st_ino))) {
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd >= 0 && fd != STDERR_FILENO) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
	}
}

/* 0, or EX_CONFIG_STATUS when the file does not load (a->failopen then). */
static int
load(struct adapter *a, const struct options *o)
{
	char err[512];
	double wait;
	int status = 0;

	a->cfg = config_load(o->config_path, err, sizeof(err));
	if (a->cfg == NULL) {
		if (o->test)
			fprintf(stderr, "probed-policy: %s\n", err);
		else
			log_crit("config error=\"%s\": answering every request with "
			    "DUNNO, unverified, until the file is fixed", err);
		a->failopen = true;
		status = EX_CONFIG_STATUS;
		a->cfg = config_defaults();
		if (a->cfg == NULL) {
			log_crit("out of memory");
			exit(1);
		}
	}
	if (o->socket != NULL) {
		free(a->cfg->socket);
		if ((a->cfg->socket = strdup(o->socket)) == NULL) {
			log_crit("out of memory");
			exit(1);
		}
	}
	if (o->verify != NULL)
		a->cfg->policy.verify = strcmp(o->verify, "sender") == 0 ?
		    POLICY_VERIFY_SENDER : POLICY_VERIFY_RECIPIENT;
	if (o->wait != NULL && parse_wait(o->wait, &wait))
		a->cfg->policy.wait = wait;
	if (policy_rules_init(&a->rules, a->cfg) < 0) {
		log_crit("cannot set up the policy rules (out of memory)");
		exit(1);
	}
	log_set_level(a->cfg->log_level);
	format_wait(a->cfg->policy.wait, a->wait_text, sizeof(a->wait_text));
	a->wait_ms = lround(a->cfg->policy.wait * 1000.0);
	a->up.path = a->cfg->socket;
	return status;
}

static void
show_settings(const struct adapter *a)
{
	const struct config *c = a->cfg;
	static const struct {
		const char *name;
		enum policy_outcome o;
	} actions[] = {
		{ "action_deliverable", POLICY_DELIVERABLE },
		{ "action_undeliverable", POLICY_UNDELIVERABLE },
		{ "action_risky", POLICY_RISKY },
		{ "action_unknown", POLICY_UNKNOWN },
		{ "action_pending", POLICY_PENDING },
		{ "on_error", POLICY_ERROR },
	};

	printf("config %s\n", c->path != NULL ? c->path : "(built-in defaults)");
	printf("socket %s\n", c->socket);
	printf("verify %s\n", c->policy.verify == POLICY_VERIFY_SENDER ? "sender" : "recipient");
	printf("wait %s\n", a->wait_text);
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		printf("%s %s\n", actions[i].name, a->rules.action[actions[i].o]);
	printf("skip_null_sender %s\n", c->policy.skip_null_sender ? "true" : "false");
	printf("skip_sasl %s\n", c->policy.skip_sasl ? "true" : "false");
	printf("skip_networks");
	for (size_t i = 0; i < c->policy.skip_networks.n; i++)
		printf(" %s", c->policy.skip_networks.v[i]);
	printf("\nskip_domains");
	for (size_t i = 0; i < c->policy.skip_domains.n; i++)
		printf(" %s", c->policy.skip_domains.v[i]);
	printf("\n");
}

/* ---- the connection to probed */

static void
upstream_close(struct upstream *up)
{
	if (up->fd >= 0)
		close(up->fd);
	up->fd = -1;
	up->answered = false;
	/* Whatever was buffered belonged to the old connection. */
	linebuf_free(&up->lb);
}

static bool
upstream_connect(struct upstream *up, long deadline)
{
	struct sockaddr_un sun;
	size_t len = strlen(up->path);
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (len >= sizeof(sun.sun_path)) {
		snprintf(up->why, sizeof(up->why), "socket path too long");
		return false;
	}
	memcpy(sun.sun_path, up->path, len);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(up->why, sizeof(up->why), "socket: %s", strerror(errno));
		return false;
	}
	/* Never 0, 1 or 2: those are Postfix's. */
	if (fd <= STDERR_FILENO) {
		int nfd = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);

		close(fd);
		if (nfd < 0) {
			snprintf(up->why, sizeof(up->why), "fcntl: %s", strerror(errno));
			return false;
		}
		fd = nfd;
	}
	/* A Unix socket connects at once; EAGAIN means probed's backlog is
	 * full (it is busy or restarting): try again until the deadline. */
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && now_ms() < deadline) {
			poll(NULL, 0, 10);
			continue;
		}
		if (errno == EACCES || errno == EPERM)
			snprintf(up->why, sizeof(up->why), "cannot connect to %s: "
			    "permission denied (is this user in the socket's group or "
			    "socket_allow_users?)", up->path);
		else
			snprintf(up->why, sizeof(up->why), "connect %s: %s", up->path,
			    strerror(errno));
		close(fd);
		return false;
	}
	if (linebuf_init(&up->lb, RESPONSE_MAX) != 0) {
		snprintf(up->why, sizeof(up->why), "out of memory");
		close(fd);
		return false;
	}
	up->fd = fd;
	up->answered = false;
	return true;
}

/* Wait for events on fd until the deadline; false when it passed. */
static bool
wait_fd(int fd, short events, long deadline)
{
	for (;;) {
		long left = deadline - now_ms();
		struct pollfd p = { .fd = fd, .events = events };

		if (left <= 0)
			return false;
		int n = poll(&p, 1, (int)(left > INT32_MAX ? INT32_MAX : left));
		if (n > 0)
			return true;
		if (n < 0 && errno != EINTR)
			return true;   /* let the caller's read or send say why */
	}
}

/* *stale: the failure looks like a connection probed closed while idle. */
static bool
send_all(struct upstream *up, const char *buf, size_t len, long deadline, bool *stale)
{
	size_t off = 0;

	*stale = false;
	while (off < len) {
		ssize_t n = send(up->fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (!wait_fd(up->fd, POLLOUT, deadline)) {
				snprintf(up->why, sizeof(up->why), "probed took no request "
				    "within the deadline");
				return false;
			}
			continue;
		}
		*stale = off == 0 && (errno == EPIPE || errno == ECONNRESET ||
		    errno == ENOTCONN);
		snprintf(up->why, sizeof(up->why), "send: %s", strerror(errno));
		return false;
	}
	return true;
}

static enum ask_status
read_answer(struct upstream *up, struct answer *ans, long deadline, bool *stale)
{
	bool got_any = false;

	*stale = false;
	for (;;) {
		const char *line;
		size_t len, avail;
		enum linebuf_status st = linebuf_next(&up->lb, &line, &len);
		char *space;
		ssize_t n;

		if (st == LINEBUF_LINE) {
			/* Kept apart from the linebuf: the parsed fields point
			 * into it, and they are used after the next read. */
			memcpy(ans->line, line, len);
			ans->line[len] = '\0';
			if (!ctl_parse_response(ans->line, len, &ans->resp, ans->scratch,
			    sizeof(ans->scratch))) {
				snprintf(up->why, sizeof(up->why), "not a protocol "
				    "version 1 answer");
				return ASK_BAD_RESPONSE;
			}
			return ASK_OK;
		}
		if (st == LINEBUF_TOOLONG) {
			snprintf(up->why, sizeof(up->why), "answer over %d octets",
			    RESPONSE_MAX);
			return ASK_BAD_RESPONSE;
		}
		space = linebuf_space(&up->lb, &avail);
		n = recv(up->fd, space, avail, MSG_DONTWAIT);
		if (n > 0) {
			got_any = true;
			linebuf_commit(&up->lb, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!wait_fd(up->fd, POLLIN, deadline)) {
				snprintf(up->why, sizeof(up->why), "no answer within "
				    "policy.wait + %d ms", GRACE_MS);
				return ASK_TIMEOUT;
			}
			continue;
		}
		*stale = !got_any && (n == 0 || errno == ECONNRESET);
		snprintf(up->why, sizeof(up->why), "%s", n == 0 ?
		    "probed closed the connection" : strerror(errno));
		return ASK_LOST;
	}
}

/*
 * VERIFY one address; on ASK_OK a->ans holds the answer.  A connection
 * that has answered before and fails before any answer octet is made
 * again once: probed may simply have restarted while we were idle.
 */
static enum ask_status
ask(struct adapter *a, const char *address, size_t len)
{
	struct upstream *up = &a->up;
	long deadline = now_ms() + a->wait_ms + GRACE_MS;
	char req[CTL_LINE_MAX + 1];
	int n;
	enum ask_status st = ASK_UNAVAILABLE;
	bool stale;

	n = snprintf(req, sizeof(req), "VERIFY %.*s timeout=%s\n", (int)len, address,
	    a->wait_text);
	if (n < 0 || (size_t)n > CTL_LINE_MAX) {
		/* policy_choose() keeps addresses short enough: a bug. */
		snprintf(up->why, sizeof(up->why), "request line too long");
		return ASK_BAD_RESPONSE;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		bool reused;

		if (up->fd < 0 && !upstream_connect(up, deadline))
			return ASK_UNAVAILABLE;
		reused = up->answered;
		if (!send_all(up, req, (size_t)n, deadline, &stale)) {
			/* probed may have said why before it closed (error busy,
			 * error not_authorized come unasked): read what is here
			 * already, without waiting. */
			char why[sizeof(up->why)];
			bool ignored;

			memcpy(why, up->why, sizeof(why));
			if (read_answer(up, &a->ans, now_ms(), &ignored) == ASK_OK &&
			    a->ans.resp.kind == CTL_RESP_ERROR) {
				st = ASK_OK;
				break;
			}
			memcpy(up->why, why, sizeof(why));
			upstream_close(up);
			st = ASK_LOST;
			if (stale && reused)
				continue;
			return st;
		}
		st = read_answer(up, &a->ans, deadline, &stale);
		if (st == ASK_LOST && stale && reused) {
			upstream_close(up);
			continue;
		}
		break;
	}
	if (st != ASK_OK) {
		/* A late answer would be read as the next one's. */
		upstream_close(up);
		return st;
	}
	up->answered = true;
	if (a->ans.resp.kind == CTL_RESP_ERROR && a->ans.resp.subject_len == 14 &&
	    memcmp(a->ans.resp.subject, "not_authorized", 14) == 0) {
		/* Not this request's fault: we may not use probed at all.  The
		 * next request connects again (once, as every request does), so
		 * a reload that lets us in is noticed. */
		snprintf(up->why, sizeof(up->why), "probed refused this user (uid %lu): "
		    "not in socket_allow_users/socket_allow_groups",
		    (unsigned long)geteuid());
		upstream_close(up);
		return ASK_NOT_AUTHORIZED;
	}
	if (a->ans.resp.kind == CTL_RESP_ERROR) {
		/* `error busy` comes with a close; others leave the
		 * connection usable, but it costs little to start afresh. */
		snprintf(up->why, sizeof(up->why), "probed answered error %.*s",
		    (int)a->ans.resp.subject_len, a->ans.resp.subject);
		upstream_close(up);
		return ASK_OK;
	}
	if (a->ans.resp.kind != CTL_RESP_RESULT || a->ans.resp.subject_len != len ||
	    memcmp(a->ans.resp.subject, address, len) != 0) {
		snprintf(up->why, sizeof(up->why), "answer for another request");
		upstream_close(up);
		return ASK_BAD_RESPONSE;
	}
	return ASK_OK;
}

/* ---- Postfix's side */

static bool
write_answer(const char *action)
{
	char out[POLICY_ACTION_MAX + 16];
	int n = snprintf(out, sizeof(out), "action=%s\n\n", action);
	size_t off = 0;

	if (n < 0 || (size_t)n >= sizeof(out))
		return false;   /* cannot happen: actions are bounded */
	while (off < (size_t)n) {
		ssize_t w;

		/* Blocking or not, never wait on a client that stopped
		 * reading for longer than Postfix itself would wait. */
		if (!wait_fd(STDOUT_FILENO, POLLOUT, now_ms() + WRITE_TIMEOUT_MS)) {
			log_warning("answer not taken within %d s: giving up",
			    WRITE_TIMEOUT_MS / 1000);
			return false;
		}
		w = write(STDOUT_FILENO, out + off, (size_t)n - off);

		if (w >= 0) {
			off += (size_t)w;
			continue;
		}
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			continue;
		if (errno == EPIPE || errno == ECONNRESET)
			log_debug("Postfix closed the connection before the answer");
		else
			log_warning("writing the answer: %s", strerror(errno));
		return false;
	}
	return true;
}

/* Wire text for a log line: printable and bounded; "-" when absent. */
static const char *
shown(char *buf, size_t cap, const char *s, size_t len)
{
	if (s == NULL)
		return "-";
	log_printable(buf, cap, s, len);
	return buf;
}

/* Decide the current (complete) request, answer it, log it. */
static void
decide(struct adapter *a)
{
	struct policy_choice *c = &a->choice;
	struct policy_vars vars = { 0 };
	enum policy_outcome outcome;
	enum ask_status st = ASK_OK;
	const char *reason = NULL, *verdict;
	const struct ctl_kv *kv;
	char action[POLICY_ACTION_MAX], b_addr[128], b_client[64], b_id[64], b_text[160];
	const char *raw, *client, *id;
	size_t raw_len;
	double t0 = now_us(), ms = -1;
	char b_ms[32] = "";
	bool cached = false;
	int level = LOG_INFO;

	a->seq++;
	if (a->failopen) {
		c->kind = POLICY_CHOOSE_ERROR;
		c->why = "config_error";
		c->address[0] = '\0';
		c->address_len = 0;
	} else
		policy_choose(&a->rules, &a->req, c);

	switch (c->kind) {
	case POLICY_CHOOSE_SKIP:
		outcome = POLICY_SKIP;
		reason = c->why;
		break;
	case POLICY_CHOOSE_ERROR:
		outcome = POLICY_ERROR;
		reason = c->why;
		break;
	case POLICY_CHOOSE_VERIFY:
	default:
		st = ask(a, c->address, c->address_len);
		ms = (now_us() - t0) / 1000.0;
		snprintf(b_ms, sizeof(b_ms), " ms=%.1f", ms);
		if (st != ASK_OK) {
			outcome = POLICY_ERROR;
			reason = ask_words[st];
			if (!a->up.down)
				log_warning("probed %s: %s (answering on_error until it is "
				    "back)", reason, a->up.why);
			a->up.down = true;
			break;
		}
		if (a->up.down)
			log_notice("probed answers again");
		a->up.down = false;
		outcome = policy_outcome_of(&a->ans.resp);
		if (a->ans.resp.kind == CTL_RESP_ERROR) {
			/* The error word: busy, bad_argument, ... */
			static char word[64];

			snprintf(word, sizeof(word), "%.*s", (int)a->ans.resp.subject_len,
			    a->ans.resp.subject);
			reason = word;
		} else {
			reason = a->ans.resp.kv[0].value;
			if ((kv = ctl_response_get(&a->ans.resp, "text")) != NULL) {
				vars.text = kv->value;
				vars.text_len = kv->value_len;
			}
			kv = ctl_response_get(&a->ans.resp, "cached");
			cached = kv != NULL && strcmp(kv->value, "yes") == 0;
		}
		break;
	}
	verdict = policy_outcome_name(outcome);
	vars.address = c->address;
	vars.address_len = c->address_len;
	vars.reason = reason;
	vars.verdict = verdict;
	policy_action_expand(action, sizeof(action), a->rules.action[outcome], &vars);

	/* The one line per decision.  The address as Postfix gave it. */
	raw = a->rules.verify == POLICY_VERIFY_SENDER ?
	    policy_request_get(&a->req, POLICY_ATTR_SENDER, &raw_len) :
	    policy_request_get(&a->req, POLICY_ATTR_RECIPIENT, &raw_len);
	client = policy_request_get(&a->req, POLICY_ATTR_CLIENT_ADDRESS, NULL);
	id = policy_request_get(&a->req, POLICY_ATTR_QUEUE_ID, NULL);
	if (id == NULL || id[0] == '\0')
		id = policy_request_get(&a->req, POLICY_ATTR_INSTANCE, NULL);
	if (outcome == POLICY_ERROR)
		level = LOG_WARNING;
	if (a->req.error != NULL)
		log_msg(level, "r%lu malformed request: %s (%u lines, %zu octets)", a->seq,
		    a->req.error, a->req.lines, a->req.size);
	log_msg(level, "r%lu decision %s=<%s> outcome=%s reason=%s%s%s client=%s "
	    "id=%s action=\"%s\"%s%s%s", a->seq,
	    a->rules.verify == POLICY_VERIFY_SENDER ? "sender" : "recipient",
	    shown(b_addr, sizeof(b_addr), raw, raw_len), verdict,
	    reason != NULL ? reason : "-", cached ? " cached=yes" : "", b_ms,
	    client != NULL ? shown(b_client, sizeof(b_client), client, strlen(client)) : "-",
	    id != NULL ? shown(b_id, sizeof(b_id), id, strlen(id)) : "-", action,
	    vars.text != NULL ? " text=\"" : "",
	    vars.text != NULL ? shown(b_text, sizeof(b_text), vars.text, vars.text_len) : "",
	    vars.text != NULL ? "\"" : "");

	if (!write_answer(action))
		exit(0);
}

/* Requests in, answers out, until Postfix closes. */
static int
serve(struct adapter *a)
{
	policy_request_reset(&a->req);
	for (;;) {
		const char *line;
		size_t len, avail;
		enum linebuf_status st = linebuf_next(&a->in, &line, &len);
		char *space;
		ssize_t n;

		if (st == LINEBUF_LINE) {
			if (policy_request_line(&a->req, line, len)) {
				decide(a);
				policy_request_reset(&a->req);
			}
			continue;
		}
		if (st == LINEBUF_TOOLONG) {
			policy_request_toolong(&a->req);
			continue;
		}
		space = linebuf_space(&a->in, &avail);
		n = read(STDIN_FILENO, space, avail);
		if (n > 0) {
			linebuf_commit(&a->in, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };

			(void)poll(&p, 1, -1);
			continue;
		}
		if (n < 0) {
			log_warning("reading requests: %s", strerror(errno));
			return 0;
		}
		if (!policy_request_empty(&a->req) || linebuf_pending(&a->in) > 0)
			log_notice("input ended inside a request (%u lines): not answered",
			    a->req.lines);
		log_debug("end of input after %lu requests", a->seq);
		return 0;
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "verify", required_argument, NULL, 'v' },
		{ "wait", required_argument, NULL, 'w' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "log-file", required_argument, NULL, 'L' },
		{ "test", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static struct adapter a;
	struct options o = { .config_path = CONFIG_DEFAULT_PATH };
	double wait;
	int ch, status;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:s:v:w:fL:thV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o.config_path = optarg;
			break;
		case 's':
			if (optarg[0] == '\0')
				usage_error("-s needs a socket path");
			if (strlen(optarg) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
				usage_error("socket path too long: %s", optarg);
			o.socket = optarg;
			break;
		case 'v':
			if (strcmp(optarg, "recipient") != 0 && strcmp(optarg, "sender") != 0)
				usage_error("-v takes recipient or sender, not '%s'", optarg);
			o.verify = optarg;
			break;
		case 'w':
			if (!parse_wait(optarg, &wait))
				usage_error("-w takes seconds from %g to %g, not '%s'",
				    WAIT_MIN, WAIT_MAX, optarg);
			o.wait = optarg;
			break;
		case 'f':
			o.foreground = true;
			break;
		case 'L':
			o.log_file = optarg;
			break;
		case 't':
			o.test = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("probed-policy %s\n", PACKAGE_VERSION);
			return 0;
		case ':':
			usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (o.foreground && o.log_file != NULL)
		usage_error("-f and -L exclude each other");

	if (o.test) {
		log_open("probed-policy", LOG_TARGET_STDERR);
		status = load(&a, &o);
		if (status == 0)
			show_settings(&a);
		return status;
	}

	setup_logging(&o);
	/* Postfix closing on us must be an error from write(), not death. */
	signal(SIGPIPE, SIG_IGN);
	(void)load(&a, &o);
	a.up.fd = -1;
	if (linebuf_init(&a.in, POLICY_LINE_MAX) != 0) {
		log_crit("out of memory");
		return 1;
	}
	log_debug("serving socket=%s verify=%s wait=%s", a.cfg->socket,
	    a.rules.verify == POLICY_VERIFY_SENDER ? "sender" : "recipient", a.wait_text);
	status = serve(&a);
	upstream_close(&a.up);
	linebuf_free(&a.in);
	policy_rules_free(&a.rules);
	config_free(a.cfg);
	return status;
}
