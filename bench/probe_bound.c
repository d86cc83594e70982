/*
 * probe_bound — the least an SMTP address probe can cost: an upper bound
 * for probed's fresh probes per second against the same servers.
 *
 *   probe_bound -a IP[,IP...] [-P PORT] [-c CONCURRENCY] [-n SESSIONS]
 *               [-D DOMAINS] [-p PREFIX] [-z SUFFIX] [-t SECONDS]
 *
 * Keeps CONCURRENCY (default 100) sessions open until SESSIONS (default
 * 100,000) have finished.  Session j goes to IP number j % (number of IPs)
 * — no DNS, no cache, no politeness, no TLS, no logging — and says
 *
 *   connect, read the banner, EHLO bench.invalid, read the EHLO reply;
 *   when it offers PIPELINING:  MAIL FROM:<> + RCPT TO:<a> + QUIT in one
 *   write, then the three replies; else one command per reply;
 *   close.
 *
 * with a = PREFIX<j>@d<j % DOMAINS + 1, five digits>SUFFIX: one RCPT per
 * session, the shape of one probe of an address whose domain's catch-all
 * status is already known.  A session counts as a probe when its RCPT got
 * a 2xx or 5xx reply; anything else (connect refused, 4xx, a timeout of
 * -t seconds for the whole run) counts as failed.
 *
 * Prints one line of key=value figures: sessions, probes, failed,
 * seconds, per_s.  Exit 0 when every session was a probe, 1 otherwise,
 * 64 on a usage error.  Single-threaded, epoll, non-blocking sockets: the
 * same shape as probed, without probed's work.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_IPS 64
#define BUF_CAP 4096

enum state { S_CONNECT, S_BANNER, S_EHLO, S_MAIL, S_RCPT, S_QUIT, S_DONE };

struct sess {
	int fd;
	enum state st;
	bool pipelining;
	bool rcpt_ok;
	char in[BUF_CAP];
	size_t in_len;
	char out[BUF_CAP];
	size_t out_off, out_len;
	uint64_t j;
};

static struct {
	struct sockaddr_in ip[MAX_IPS];
	unsigned n_ip;
	unsigned port, conc, domains;
	uint64_t total;
	const char *prefix, *suffix;
	double limit_s;
} opt = { .port = 25, .conc = 100, .domains = 10000, .total = 100000,
	  .prefix = "b", .suffix = ".bench" };

static uint64_t started, finished, probes, failed;
static int ep;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
usage(void)
{
	fprintf(stderr, "usage: probe_bound -a IP[,IP...] [-P PORT] [-c CONCURRENCY] "
	    "[-n SESSIONS] [-D DOMAINS] [-p PREFIX] [-z SUFFIX] [-t SECONDS]\n");
	exit(64);
}

static uint64_t
number(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0') {
		fprintf(stderr, "probe_bound: %s: not a number: %s\n", what, s);
		usage();
	}
	return v;
}

static void
parse_ips(char *list)
{
	for (char *tok = strtok(list, ","); tok != NULL; tok = strtok(NULL, ",")) {
		if (opt.n_ip == MAX_IPS) {
			fprintf(stderr, "probe_bound: at most %d addresses\n", MAX_IPS);
			usage();
		}
		opt.ip[opt.n_ip].sin_family = AF_INET;
		if (inet_pton(AF_INET, tok, &opt.ip[opt.n_ip].sin_addr) != 1) {
			fprintf(stderr, "probe_bound: not an IPv4 address: %s\n", tok);
			usage();
		}
		opt.n_ip++;
	}
}

static void
queue(struct sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
queue(struct sess *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s->out + s->out_len, BUF_CAP - s->out_len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= BUF_CAP - s->out_len) {
		fprintf(stderr, "probe_bound: command too long\n");
		exit(64);
	}
	s->out_len += (size_t)n;
}

static bool
flush(struct sess *s)
{
	while (s->out_off < s->out_len) {
		ssize_t n = write(s->fd, s->out + s->out_off, s->out_len - s->out_off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN;
		}
		s->out_off += (size_t)n;
	}
	s->out_off = s->out_len = 0;
	return true;
}

static void start(struct sess *s);

static void
finish(struct sess *s, bool ok)
{
	close(s->fd);
	s->fd = -1;
	finished++;
	if (ok)
		probes++;
	else
		failed++;
	if (started < opt.total)
		start(s);
}

static void
start(struct sess *s)
{
	struct sockaddr_in sin;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = s };

	memset(s, 0, sizeof(*s));
	s->j = started++;
	sin = opt.ip[s->j % opt.n_ip];
	sin.sin_port = htons((uint16_t)opt.port);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		fprintf(stderr, "probe_bound: socket: %s\n", strerror(errno));
		exit(1);
	}
	if (connect(s->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 && errno != EINPROGRESS) {
		finish(s, false);
		return;
	}
	s->st = S_CONNECT;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
		fprintf(stderr, "probe_bound: epoll_ctl: %s\n", strerror(errno));
		exit(1);
	}
}

/*
 * One complete reply from the buffer (the last line of a multi-line one):
 * its code, and whether any line says PIPELINING.  0: not complete yet.
 */
static int
take_reply(struct sess *s, bool *pipelining)
{
	char *p = s->in, *end = s->in + s->in_len;

	for (;;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL)
			return 0;
		if (nl - p >= 4 && memmem(p, (size_t)(nl - p), "PIPELINING", 10) != NULL)
			*pipelining = true;
		if (nl - p < 4 || p[3] != '-') {
			int code = nl - p >= 3 ? (p[0] - '0') * 100 + (p[1] - '0') * 10 +
			    (p[2] - '0') : -1;

			s->in_len = (size_t)(end - nl - 1);
			memmove(s->in, nl + 1, s->in_len);
			return code;
		}
		p = nl + 1;
	}
}

static void
on_event(struct sess *s)
{
	if (s->st == S_CONNECT) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
			finish(s, false);
			return;
		}
		s->st = S_BANNER;
	}
	bool eof = false;
	while (!eof) {
		ssize_t n = read(s->fd, s->in + s->in_len, BUF_CAP - s->in_len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			finish(s, false);
			return;
		}
		if (n == 0) {
			eof = true; /* the replies read with it still count */
			break;
		}
		s->in_len += (size_t)n;
		if (s->in_len == BUF_CAP) {
			finish(s, false);
			return;
		}
	}
	for (;;) {
		bool pl = false;
		int code = take_reply(s, &pl);

		if (code == 0)
			break;
		switch (s->st) {
		case S_BANNER:
			if (code / 100 != 2)
				goto bad;
			queue(s, "EHLO bench.invalid\r\n");
			s->st = S_EHLO;
			break;
		case S_EHLO:
			if (code / 100 != 2)
				goto bad;
			s->pipelining = pl;
			queue(s, "MAIL FROM:<>\r\n");
			if (s->pipelining)
				queue(s, "RCPT TO:<%s%" PRIu64 "@d%05u%s>\r\nQUIT\r\n", opt.prefix,
				    s->j, (unsigned)(s->j % opt.domains) + 1, opt.suffix);
			s->st = S_MAIL;
			break;
		case S_MAIL:
			if (code / 100 != 2)
				goto bad;
			if (!s->pipelining)
				queue(s, "RCPT TO:<%s%" PRIu64 "@d%05u%s>\r\n", opt.prefix, s->j,
				    (unsigned)(s->j % opt.domains) + 1, opt.suffix);
			s->st = S_RCPT;
			break;
		case S_RCPT:
			s->rcpt_ok = code / 100 == 2 || code / 100 == 5;
			if (!s->pipelining)
				queue(s, "QUIT\r\n");
			s->st = S_QUIT;
			break;
		case S_QUIT:
			finish(s, s->rcpt_ok);
			return;
		default:
			goto bad;
		}
	}
	if (eof) {
		finish(s, s->st == S_QUIT && s->rcpt_ok);
		return;
	}
	if (!flush(s))
		goto bad;
	return;
bad:
	finish(s, false);
}

int
main(int argc, char **argv)
{
	struct sess *sessions;
	int ch;
	double t0, t1;

	while ((ch = getopt(argc, argv, "a:P:c:n:D:p:z:t:")) != -1) {
		switch (ch) {
		case 'a': parse_ips(optarg); break;
		case 'P': opt.port = (unsigned)number(optarg, "-P"); break;
		case 'c': opt.conc = (unsigned)number(optarg, "-c"); break;
		case 'n': opt.total = number(optarg, "-n"); break;
		case 'D': opt.domains = (unsigned)number(optarg, "-D"); break;
		case 'p': opt.prefix = optarg; break;
		case 'z': opt.suffix = optarg; break;
		case 't': opt.limit_s = (double)number(optarg, "-t"); break;
		default: usage();
		}
	}
	if (opt.n_ip == 0 || optind != argc || opt.conc == 0 || opt.total == 0 ||
	    opt.domains == 0 || opt.domains > 99999 || opt.port == 0 || opt.port > 65535)
		usage();
	if (opt.conc > opt.total)
		opt.conc = (unsigned)opt.total;

	ep = epoll_create1(EPOLL_CLOEXEC);
	sessions = calloc(opt.conc, sizeof(*sessions));
	if (ep < 0 || sessions == NULL) {
		perror("probe_bound");
		return 1;
	}
	t0 = now_s();
	for (unsigned i = 0; i < opt.conc; i++)
		start(&sessions[i]);
	while (finished < opt.total) {
		struct epoll_event evs[512];
		int n = epoll_wait(ep, evs, 512, 1000);

		if (n < 0 && errno != EINTR) {
			perror("probe_bound: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct sess *s = evs[i].data.ptr;

			/* A session finished and restarted in this round has a new
			 * socket; an event for the old one is stale but harmless:
			 * reading the new one gives EAGAIN. */
			if (s->fd >= 0)
				on_event(s);
		}
		if (opt.limit_s > 0 && now_s() - t0 > opt.limit_s) {
			fprintf(stderr, "probe_bound: %.0f s passed with %" PRIu64 " of %" PRIu64
			    " sessions finished\n", opt.limit_s, finished, opt.total);
			failed += opt.total - finished;
			break;
		}
	}
	t1 = now_s();
	printf("sessions=%" PRIu64 " probes=%" PRIu64 " failed=%" PRIu64
	    " seconds=%.3f per_s=%.0f\n", finished, probes, failed, t1 - t0,
	    t1 > t0 ? (double)probes / (t1 - t0) : 0.0);
	free(sessions);
	close(ep);
	return failed == 0 ? 0 : 1;
}
