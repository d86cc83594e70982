/*
 * ctl_load — a minimal pipelining load client for probed's control socket.
 *
 *   ctl_load -s SOCKET [-c CONNS] [-w WINDOW] [-n TOTAL] [-k KEYS]
 *            [-D DOMAINS] [-p PREFIX] [-z SUFFIX] [-V VERB] [-t SECONDS]
 *
 * Opens CONNS connections (default 1) and keeps up to WINDOW requests
 * (default 1000) written and not yet answered on each, until TOTAL
 * requests (default 100,000) have been answered.  Request j is
 *
 *   VERB PREFIX<j % KEYS>@d<(j % KEYS) % DOMAINS + 1, five digits>SUFFIX
 *
 * so KEYS = TOTAL (the default) makes every address distinct (fresh
 * probes), a small KEYS cycles over addresses already cached.  VERB is
 * "VERIFY" by default; SUFFIX ".bench" (the bench bed's zone).
 *
 * Prints one line of key=value figures: requests, seconds, per_s and the
 * count of answers by their first word (deliverable, undeliverable, risky,
 * unknown, error, other), plus the count of "reason=busy" answers; the
 * first three answers that are unknown, error or other go to stderr.  Exit
 * status 0 when every request was answered, 1 when the daemon went away
 * or -t SECONDS passed first, 64 on a usage error.
 *
 * probed reads a client only while it has fewer than
 * limits.client_inflight (default 128) unanswered requests, so a WINDOW
 * above that is held back by the daemon, not by this program: past it the
 * figure is probed's own pace.
 * The program is written to cost little per request (one snprintf per
 * request into a large buffer, one write and one read per event, lines
 * counted with memchr) so that one core of it outruns probed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define OUT_CAP (256 * 1024)
#define IN_CAP (256 * 1024)
#define LINE_ROOM 600  /* one request line at most (the address is bounded) */

enum kind { K_DELIVERABLE, K_UNDELIVERABLE, K_RISKY, K_UNKNOWN, K_ERROR, K_OTHER, K__N };
static const char *const kind_name[K__N] = {
	"deliverable", "undeliverable", "risky", "unknown", "error", "other",
};

struct conn {
	int fd;
	char out[OUT_CAP];
	size_t out_off, out_len;
	char in[IN_CAP];
	size_t in_len;
	uint64_t sent, answered;   /* requests written into out, answers read */
	bool dead;
};

static struct {
	const char *socket;
	unsigned conns, window;
	uint64_t total, keys;
	unsigned domains;
	const char *prefix, *suffix, *verb;
	double limit_s;
} opt = {
	.conns = 1, .window = 1000, .total = 100000, .keys = 0, .domains = 10000,
	.prefix = "u", .suffix = ".bench", .verb = "VERIFY", .limit_s = 0,
};

static uint64_t next_request, answered_total;
static uint64_t counts[K__N], busy;
static unsigned shown;

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
	fprintf(stderr, "usage: ctl_load -s SOCKET [-c CONNS] [-w WINDOW] [-n TOTAL] "
	    "[-k KEYS] [-D DOMAINS] [-p PREFIX] [-z SUFFIX] [-V VERB] [-t SECONDS]\n");
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
		fprintf(stderr, "ctl_load: %s: not a number: %s\n", what, s);
		usage();
	}
	return v;
}

/* Queue requests while the window and the buffer have room. */
static void
fill(struct conn *c)
{
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	while (next_request < opt.total && c->sent - c->answered < opt.window &&
	    OUT_CAP - c->out_len >= LINE_ROOM) {
		uint64_t k = next_request % opt.keys;
		int n = snprintf(c->out + c->out_len, OUT_CAP - c->out_len,
		    "%s %s%" PRIu64 "@d%05u%s\n", opt.verb, opt.prefix, k,
		    (unsigned)(k % opt.domains) + 1, opt.suffix);

		if (n < 0 || (size_t)n >= OUT_CAP - c->out_len) {
			fprintf(stderr, "ctl_load: request line too long\n");
			exit(64);
		}
		c->out_len += (size_t)n;
		c->sent++;
		next_request++;
	}
}

static void
classify(const char *line, size_t len)
{
	static const size_t klen[K__N] = { 11, 13, 5, 7, 5, 0 };
	enum kind k = K_OTHER;

	for (int i = 0; i < K_OTHER; i++)
		if (len > klen[i] && memcmp(line, kind_name[i], klen[i]) == 0 &&
		    line[klen[i]] == ' ') {
			k = (enum kind)i;
			break;
		}
	counts[k]++;
	/* The first few answers that are neither verdicts of a probe nor
	 * cached ones say what went wrong: show them. */
	if ((k == K_UNKNOWN || k >= K_ERROR) && shown < 3) {
		shown++;
		fprintf(stderr, "ctl_load: answer: %.*s\n", (int)(len > 300 ? 300 : len), line);
	}
	if (k == K_UNKNOWN && memmem(line, len, " reason=busy", 12) != NULL)
		busy++;
}

/* Count the complete lines read; keep a partial one. */
static void
take_answers(struct conn *c)
{
	char *p = c->in, *end = c->in + c->in_len;

	for (;;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL)
			break;
		classify(p, (size_t)(nl - p));
		c->answered++;
		answered_total++;
		p = nl + 1;
	}
	c->in_len = (size_t)(end - p);
	memmove(c->in, p, c->in_len);
}

static bool
pump_write(struct conn *c)
{
	fill(c);
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return true;
			fprintf(stderr, "ctl_load: write to %s: %s\n", opt.socket, strerror(errno));
			return false;
		}
		c->out_off += (size_t)n;
		if (c->out_off == c->out_len)
			fill(c);
	}
	return true;
}

static bool
pump_read(struct conn *c)
{
	for (;;) {
		ssize_t n;

		if (c->in_len == IN_CAP) {
			fprintf(stderr, "ctl_load: an answer longer than %d octets\n", IN_CAP);
			return false;
		}
		n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return true;
			fprintf(stderr, "ctl_load: read from %s: %s\n", opt.socket, strerror(errno));
			return false;
		}
		if (n == 0) {
			fprintf(stderr, "ctl_load: %s closed the connection\n", opt.socket);
			return false;
		}
		c->in_len += (size_t)n;
		take_answers(c);
		if ((size_t)n < IN_CAP / 2)
			return true;
	}
}

static int
connect_unix(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "ctl_load: socket path too long: %s\n", path);
		exit(64);
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "ctl_load: connect %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

int
main(int argc, char **argv)
{
	struct conn *conns;
	int ep, ch, status = 0;
	double t0, t1;

	while ((ch = getopt(argc, argv, "s:c:w:n:k:D:p:z:V:t:")) != -1) {
		switch (ch) {
		case 's': opt.socket = optarg; break;
		case 'c': opt.conns = (unsigned)number(optarg, "-c"); break;
		case 'w': opt.window = (unsigned)number(optarg, "-w"); break;
		case 'n': opt.total = number(optarg, "-n"); break;
		case 'k': opt.keys = number(optarg, "-k"); break;
		case 'D': opt.domains = (unsigned)number(optarg, "-D"); break;
		case 'p': opt.prefix = optarg; break;
		case 'z': opt.suffix = optarg; break;
		case 'V': opt.verb = optarg; break;
		case 't': opt.limit_s = (double)number(optarg, "-t"); break;
		default: usage();
		}
	}
	if (opt.socket == NULL || optind != argc || opt.conns == 0 || opt.window == 0 ||
	    opt.domains == 0 || opt.domains > 99999 || opt.total == 0)
		usage();
	if (opt.keys == 0)
		opt.keys = opt.total;

	conns = calloc(opt.conns, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (conns == NULL || ep < 0) {
		perror("ctl_load");
		return 1;
	}
	for (unsigned i = 0; i < opt.conns; i++) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET,
			.data.ptr = &conns[i] };

		conns[i].fd = connect_unix(opt.socket);
		if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) < 0) {
			perror("ctl_load: epoll_ctl");
			return 1;
		}
	}

	t0 = now_s();
	while (answered_total < opt.total) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, 1000);

		if (n < 0 && errno != EINTR) {
			perror("ctl_load: epoll_wait");
			status = 1;
			break;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c->dead)
				continue;
			if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !pump_read(c))
				c->dead = true;
			/* Answers free window room: write whether or not EPOLLOUT came. */
			if (!c->dead && !pump_write(c))
				c->dead = true;
			if (c->dead) {
				status = 1;
				goto done;
			}
		}
		if (opt.limit_s > 0 && now_s() - t0 > opt.limit_s) {
			fprintf(stderr, "ctl_load: %.0f s passed with %" PRIu64 " of %" PRIu64
			    " answered\n", opt.limit_s, answered_total, opt.total);
			status = 1;
			break;
		}
	}
done:
	t1 = now_s();
	printf("requests=%" PRIu64 " seconds=%.3f per_s=%.0f", answered_total, t1 - t0,
	    t1 > t0 ? (double)answered_total / (t1 - t0) : 0.0);
	for (int k = 0; k < K__N; k++)
		printf(" %s=%" PRIu64, kind_name[k], counts[k]);
	printf(" busy=%" PRIu64 "\n", busy);
	for (unsigned i = 0; i < opt.conns; i++)
		close(conns[i].fd);
	free(conns);
	close(ep);
	return status;
}
