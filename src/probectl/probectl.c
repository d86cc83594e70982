/*
 * probectl — the admin client of probed: one request per argument or per
 * stdin line, answers printed as aligned columns or as JSON (output.c).
 *
 *   probectl [-s SOCKET] [--json] COMMAND [ARG...]
 *
 * Owns: the command line (commands come from CTL_VERB_LIST), choosing the
 * socket (-s, then $PROBED_SOCKET, then CTL_DEFAULT_SOCKET),
 * the pipelined conversation, and the exit status (design.md):
 *   0 all deliverable (other commands: all succeeded), 1 any undeliverable,
 *   2 otherwise, 64 usage, 69 daemon unreachable (also: the socket's
 *   permissions or probed's allow-list refuse this user; one line says which).
 *
 * Pipelining: the daemon answers in request order and stops reading from a
 * client that leaves too many answers unread, so requests are written with
 * non-blocking sends while responses are read in the same poll() loop, with
 * at most PIPELINE_MAX requests unanswered.  Memory is bounded by that
 * window, whatever the length of the input list.
 *
 * Limits: a request line is at most CTL_LINE_MAX octets with its LF; a
 * longer argument is refused here.  A stdin line over STDIN_LINE_MAX octets,
 * or a response line over RESPONSE_MAX, is skipped and reported.
 *
 * Security: arguments are sent as written; the only octets refused are CR,
 * LF and NUL, which would split or cut a request line.  Judging address
 * syntax is the daemon's job.  Everything printed from a response goes
 * through output.c, which makes it safe for terminals and for JSON.
 * There is no client-side timeout: the daemon bounds every probe
 * (verify --timeout bounds the wait for one).
 */
#include "autoconfig.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "codec.h"
#include "linebuf.h"
#include "output.h"
#include "vocab.h"

#define DEFAULT_SOCKET CTL_DEFAULT_SOCKET

#define PIPELINE_MAX 512          /* requests sent and not yet answered */
#define RESPONSE_MAX (64 * 1024)  /* a response line, LF included */
#define STDIN_LINE_MAX 4096       /* a stdin line before trimming */

/* sysexits(3) */
#define EXIT_USAGE 64
#define EXIT_UNAVAILABLE 69

enum arg_kind { ARG_NONE, ARG_ADDRESS, ARG_DOMAIN, ARG_EITHER };

static const struct verb {
	const char *word;
	enum arg_kind arg;
	const char *help;
} verbs[CTL__VERB_COUNT] = {
#define X(name, word, arg, usage, help) [CTL_##name] = { word, arg, help },
	CTL_VERB_LIST(X)
#undef X
};

/*
 * The verbs probectl offers as commands, and the response that answers
 * each.  QUIT is left out: probectl ends its conversation by closing.
 */
static const struct command {
	bool offered;
	enum ctl_resp_kind expect;
	bool verify_options;   /* --timeout, --fresh */
	const char *help;      /* NULL: the verb table's */
} commands[CTL__VERB_COUNT] = {
	[CTL_VERIFY] = { true, CTL_RESP_RESULT, true, NULL },
	[CTL_CHECK] = { true, CTL_RESP_RESULT, false, NULL },
	[CTL_DOMAIN] = { true, CTL_RESP_DOMAIN, false, NULL },
	[CTL_FORGET] = { true, CTL_RESP_FORGOTTEN, false, NULL },
	[CTL_STATS] = { true, CTL_RESP_STATS, false, "the daemon's counters" },
	[CTL_PING] = { true, CTL_RESP_PONG, false, NULL },
};

static const char *const arg_usage[] = {
	[ARG_NONE] = "",
	[ARG_ADDRESS] = " ADDRESS...|-",
	[ARG_DOMAIN] = " DOMAIN...|-",
	[ARG_EITHER] = " ADDRESS|DOMAIN...|-",
};

static const char verify_options_usage[] = " [--timeout SECONDS] [--fresh]";

/* The argument of a request in flight, kept for printing its answer. */
struct pending {
	size_t len;
	char arg[CTL_LINE_MAX];
};

struct client {
	enum ctl_verb verb;
	const char *socket_opt;  /* -s, --socket */
	const char *socket_path;
	struct output out;
	char opts[48];           /* " timeout=N fresh", sent after the argument */
	size_t opts_len;

	/* where arguments come from */
	char **args;
	size_t n_args, next_arg;
	bool use_stdin;
	struct linebuf stdin_lb;
	unsigned long stdin_lineno;
	bool stdin_eof;          /* read() said so */
	bool inputs_done;        /* no request left to make */

	int fd;
	struct linebuf resp_lb;
	char *wbuf;              /* request octets not yet sent */
	size_t wbuf_off, wbuf_len, wbuf_cap;
	struct pending *pending; /* ring of PIPELINE_MAX */
	unsigned long sent_seq, answered_seq;

	bool any_undeliverable;
	bool any_other;          /* anything that is neither deliverable nor success */
};

static void usage_short(FILE *f);
static void usage_full(void);
static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fatal(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void print_command(FILE *f, enum ctl_verb v);
static bool find_command(const char *name, enum ctl_verb *out);
static bool parse_timeout(const char *s, char *out, size_t cap);
static const char *arg_problem(const struct client *c, const char *s, size_t len);
static void parse_command_args(struct client *c, int argc, char **argv);
static void connect_daemon(struct client *c);
static bool next_stdin_arg(struct client *c, const char **arg, size_t *len);
static bool next_arg(struct client *c, const char **arg, size_t *len);
static void enqueue(struct client *c, const char *arg, size_t len);
static void fill(struct client *c);
static void send_pending(struct client *c);
static void handle_response(struct client *c, const char *line, size_t len);
static int read_responses(struct client *c);
static void read_stdin(struct client *c);
static void flush_stdout(void);
static void daemon_gone(struct client *c, int err) __attribute__((noreturn));
static void run(struct client *c);

static void
usage_short(FILE *f)
{
	fputs("usage: probectl [-s SOCKET] [--json] COMMAND [ARG...]\n", f);
}

static void
print_command(FILE *f, enum ctl_verb v)
{
	const struct verb *vb = &verbs[v];
	const char *help = commands[v].help != NULL ? commands[v].help : vb->help;
	int n = 0;

	n += fprintf(f, "  ");
	for (const char *p = vb->word; *p != '\0'; p++, n++)
		putc(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p, f);
	if (commands[v].verify_options)
		n += fprintf(f, "%s", verify_options_usage);
	n += fprintf(f, "%s", arg_usage[vb->arg]);
	/* help in a column, or on its own line under a long synopsis */
	if (n > 30)
		fprintf(f, "\n%32s%s\n", "", help);
	else
		fprintf(f, "%*s%s\n", 32 - n, "", help);
}

static void
usage_full(void)
{
	usage_short(stdout);
	fputs("       probectl -h | --help\n"
	    "       probectl -V | --version\n"
	    "\ncommands:\n", stdout);
	for (unsigned v = 0; v < CTL__VERB_COUNT; v++)
		if (commands[v].offered)
			print_command(stdout, (enum ctl_verb)v);
	printf("\nAn ARG of \"-\" reads the arguments from standard input, one per line\n"
	    "(blank lines and lines starting with '#' are skipped).\n"
	    "\noptions:\n"
	    "  -s, --socket SOCKET   control socket (default: $PROBED_SOCKET, else\n"
	    "                        %s)\n"
	    "  --json                one JSON object per response line\n"
	    "  --timeout SECONDS     verify: answer \"pending\" after SECONDS (at most %d)\n"
	    "  --fresh               verify: probe even when a cached verdict is fresh\n"
	    "\nexit status: 0 all deliverable (or success), 1 any undeliverable,\n"
	    "2 otherwise, 64 usage error, 69 probed unreachable\n",
	    DEFAULT_SOCKET, CTL_TIMEOUT_MAX_MS / 1000);
}

static void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("probectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	putc('\n', stderr);
	usage_short(stderr);
	fputs("Try 'probectl --help' for more information.\n", stderr);
	exit(EXIT_USAGE);
}

static void
fatal(int status, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("probectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	putc('\n', stderr);
	exit(status);
}

static bool
find_command(const char *name, enum ctl_verb *out)
{
	for (unsigned v = 0; v < CTL__VERB_COUNT; v++)
		if (commands[v].offered && strcasecmp(name, verbs[v].word) == 0) {
			*out = (enum ctl_verb)v;
			return true;
		}
	return false;
}

/*
 * SECONDS, judged by the daemon's own parser (the codec) so probectl takes
 * exactly what probed takes: digits with an optional fraction, rounded up
 * to whole milliseconds, in (0, CTL_TIMEOUT_MAX_MS].  Written out again in
 * canonical form ("5", "0.25").
 */
static bool
parse_timeout(const char *s, char *out, size_t cap)
{
	char line[64];
	struct ctl_request req;
	struct ctl_error err;
	int n;

	for (const char *p = s; *p != '\0'; p++)
		if (*p == ' ' || *p == '\t')
			return false;   /* would read as a second option */
	n = snprintf(line, sizeof(line), "VERIFY x timeout=%s", s);
	if (n < 0 || (size_t)n >= sizeof(line) ||
	    !ctl_parse_request(line, (size_t)n, &req, &err) || !req.has_timeout)
		return false;
	if (req.timeout_ms % 1000 == 0)
		snprintf(out, cap, "%u", (unsigned)(req.timeout_ms / 1000));
	else {
		unsigned frac = req.timeout_ms % 1000;
		int width = 3;

		for (; frac % 10 == 0; frac /= 10)
			width--;
		snprintf(out, cap, "%u.%0*u", (unsigned)(req.timeout_ms / 1000), width, frac);
	}
	return true;
}

/* Why an argument cannot be sent, or NULL. */
static const char *
arg_problem(const struct client *c, const char *s, size_t len)
{
	if (len == 0)
		return "empty argument";
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return "contains CR, LF or NUL";
	/* VERB SP arg opts LF */
	if (strlen(verbs[c->verb].word) + 1 + len + c->opts_len + 1 > CTL_LINE_MAX)
		return "too long for a request line";
	return NULL;
}

/*
 * After the command: options anywhere before "--" (the command's own, and
 * --json and -s again, since people type them there), then the arguments.
 * Everything is checked here, before connecting, so a usage error never
 * leaves half the answers printed.
 */
static void
parse_command_args(struct client *c, int argc, char **argv)
{
	const char *cmd = argv[0];
	bool fresh = false, options_done = false;
	char timeout[16] = "";
	size_t n = 0;

	c->args = calloc((size_t)argc, sizeof(*c->args));
	if (c->args == NULL)
		fatal(2, "out of memory");
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
			c->args[n++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			options_done = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage_full();
			exit(0);
		} else if (strcmp(a, "--json") == 0) {
			c->out.mode = OUTPUT_JSON;
		} else if (strncmp(a, "-s", 2) == 0 || strcmp(a, "--socket") == 0 ||
		    strncmp(a, "--socket=", 9) == 0) {
			const char *v = a[1] == 's' ? (a[2] != '\0' ? a + 2 : argv[++i]) :
			    a[8] == '=' ? a + 9 : argv[++i];

			if (v == NULL || v[0] == '\0')
				usage_error("%s needs a socket path", a);
			c->socket_opt = v;
		} else if (commands[c->verb].verify_options && strcmp(a, "--fresh") == 0) {
			fresh = true;
		} else if (commands[c->verb].verify_options &&
		    (strcmp(a, "--timeout") == 0 || strncmp(a, "--timeout=", 10) == 0)) {
			const char *v = a[9] == '=' ? a + 10 : argv[++i];

			if (v == NULL)
				usage_error("%s: --timeout needs SECONDS", cmd);
			if (!parse_timeout(v, timeout, sizeof(timeout)))
				usage_error("%s: bad --timeout '%s': seconds in (0, %d]",
				    cmd, v, CTL_TIMEOUT_MAX_MS / 1000);
		} else
			usage_error("%s: unknown option '%s' (an argument starting "
			    "with '-' goes after '--')", cmd, a);
	}
	c->n_args = n;

	c->opts_len = (size_t)snprintf(c->opts, sizeof(c->opts), "%s%s%s",
	    timeout[0] != '\0' ? " timeout=" : "", timeout, fresh ? " fresh" : "");

	if (verbs[c->verb].arg == ARG_NONE) {
		if (n > 0)
			usage_error("%s takes no argument", cmd);
		return;
	}
	if (n == 0)
		usage_error("%s needs an argument (or - to read them from stdin)", cmd);
	for (size_t i = 0; i < n; i++) {
		const char *why;

		if (strcmp(c->args[i], "-") == 0) {
			if (n > 1)
				usage_error("%s: '-' (read stdin) must be the only argument", cmd);
			c->use_stdin = true;
			c->n_args = 0;
			return;
		}
		if ((why = arg_problem(c, c->args[i], strlen(c->args[i]))) != NULL)
			usage_error("%s: argument %zu: %s", cmd, i + 1, why);
	}
}

static void
connect_daemon(struct client *c)
{
	struct sockaddr_un sun;
	size_t len = strlen(c->socket_path);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (len >= sizeof(sun.sun_path))
		usage_error("socket path too long (at most %zu octets): %s",
		    sizeof(sun.sun_path) - 1, c->socket_path);
	memcpy(sun.sun_path, c->socket_path, len);

	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		fatal(EXIT_UNAVAILABLE, "socket: %s", strerror(errno));
	/* With stdin or stdout closed the socket would become fd 0 or 1:
	 * output would go to the daemon, stdin would read our answers. */
	if (c->fd <= STDERR_FILENO) {
		int fd = fcntl(c->fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);

		if (fd < 0)
			fatal(EXIT_UNAVAILABLE, "fcntl: %s", strerror(errno));
		close(c->fd);
		c->fd = fd;
	}
	/* Blocking connect: a Unix socket connects at once or not at all. */
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int err = errno;

		/* The socket file's mode, owner and group keep us out. */
		if (err == EACCES || err == EPERM)
			fatal(EXIT_UNAVAILABLE, "cannot connect to %s: permission denied "
			    "(is your user in the socket's group or socket_allow_users?)",
			    c->socket_path);
		fatal(EXIT_UNAVAILABLE, "cannot connect to %s: %s%s", c->socket_path,
		    strerror(err), err == ENOENT || err == ECONNREFUSED ?
		    " (is probed running?)" : "");
	}
	int fl = fcntl(c->fd, F_GETFL);
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		fatal(EXIT_UNAVAILABLE, "%s: fcntl: %s", c->socket_path, strerror(errno));
}

/*
 * The next usable stdin line: trimmed, not blank, not a comment.  Bad lines
 * are reported and skipped (status 2); false means no complete line yet.
 */
static bool
next_stdin_arg(struct client *c, const char **arg, size_t *len)
{
	for (;;) {
		const char *line, *why;
		size_t n;
		enum linebuf_status st = linebuf_next(&c->stdin_lb, &line, &n);

		if (st == LINEBUF_MORE) {
			size_t avail;
			char *space;

			if (!c->stdin_eof)
				return false;
			if (linebuf_pending(&c->stdin_lb) == 0) {
				c->inputs_done = true;
				return false;
			}
			/* A last line without LF still counts: end it. */
			space = linebuf_space(&c->stdin_lb, &avail);
			if (avail == 0) {   /* cannot happen after LINEBUF_MORE */
				c->inputs_done = true;
				return false;
			}
			*space = '\n';
			linebuf_commit(&c->stdin_lb, 1);
			continue;
		}
		c->stdin_lineno++;
		if (st == LINEBUF_TOOLONG) {
			fprintf(stderr, "probectl: stdin line %lu: longer than %d octets, skipped\n",
			    c->stdin_lineno, STDIN_LINE_MAX);
			c->any_other = true;
			continue;
		}
		while (n > 0 && (*line == ' ' || *line == '\t' || *line == '\r' ||
		    *line == '\f' || *line == '\v')) {
			line++;
			n--;
		}
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' ||
		    line[n - 1] == '\r' || line[n - 1] == '\f' || line[n - 1] == '\v'))
			n--;
		if (n == 0 || line[0] == '#')
			continue;
		if ((why = arg_problem(c, line, n)) != NULL) {
			fprintf(stderr, "probectl: stdin line %lu: %s, skipped\n",
			    c->stdin_lineno, why);
			c->any_other = true;
			continue;
		}
		*arg = line;
		*len = n;
		return true;
	}
}

static bool
next_arg(struct client *c, const char **arg, size_t *len)
{
	if (c->inputs_done)
		return false;
	if (c->use_stdin)
		return next_stdin_arg(c, arg, len);
	if (verbs[c->verb].arg == ARG_NONE) {
		/* ping, stats: one request without an argument */
		*arg = NULL;
		*len = 0;
		c->inputs_done = true;
		return true;
	}
	if (c->next_arg == c->n_args) {
		c->inputs_done = true;
		return false;
	}
	*arg = c->args[c->next_arg++];
	*len = strlen(*arg);
	return true;
}

static void
enqueue(struct client *c, const char *arg, size_t len)
{
	const char *word = verbs[c->verb].word;
	size_t wlen = strlen(word);
	size_t need = wlen + (arg != NULL ? 1 + len : 0) + c->opts_len + 1;
	struct pending *p = &c->pending[c->sent_seq % PIPELINE_MAX];
	char *w;

	/* Unsent octets belong to unanswered requests, fewer than
	 * PIPELINE_MAX of them, so compacting always makes room. */
	if (c->wbuf_cap - c->wbuf_off - c->wbuf_len < need) {
		memmove(c->wbuf, c->wbuf + c->wbuf_off, c->wbuf_len);
		c->wbuf_off = 0;
	}
	w = c->wbuf + c->wbuf_off + c->wbuf_len;
	memcpy(w, word, wlen);
	w += wlen;
	if (arg != NULL) {
		*w++ = ' ';
		memcpy(w, arg, len);
		w += len;
	}
	memcpy(w, c->opts, c->opts_len);
	w += c->opts_len;
	*w = '\n';
	c->wbuf_len += need;

	p->len = arg != NULL ? len : 0;
	if (arg != NULL)
		memcpy(p->arg, arg, len);
	c->sent_seq++;
}

static void
fill(struct client *c)
{
	const char *arg;
	size_t len;

	while (c->sent_seq - c->answered_seq < PIPELINE_MAX && next_arg(c, &arg, &len))
		enqueue(c, arg, len);
}

/* err: 0 for an orderly close, else the errno of the failed read or send. */
static void
daemon_gone(struct client *c, int err)
{
	if (err == 0 || err == EPIPE)
		fatal(EXIT_UNAVAILABLE, "connection to %s closed before all responses "
		    "arrived (is probed running?)", c->socket_path);
	fatal(EXIT_UNAVAILABLE, "connection to %s lost before all responses "
	    "arrived: %s", c->socket_path, strerror(err));
}

static void
send_pending(struct client *c)
{
	while (c->wbuf_len > 0) {
		ssize_t n = send(c->fd, c->wbuf + c->wbuf_off, c->wbuf_len,
		    MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			int saved = errno;

			if (saved == EINTR)
				continue;
			if (saved == EAGAIN || saved == EWOULDBLOCK)
				return;
			/* Print the answers that did arrive, then give up;
			 * waiting for more could wait forever. */
			while (read_responses(c) > 0)
				;
			daemon_gone(c, saved);
		}
		c->wbuf_off += (size_t)n;
		c->wbuf_len -= (size_t)n;
	}
	c->wbuf_off = 0;
}

static void
handle_response(struct client *c, const char *line, size_t len)
{
	static char scratch[RESPONSE_MAX + CTL_RESP_MAX_KV + 1];
	struct ctl_response r;
	const struct pending *p;
	bool parsed = line != NULL &&
	    ctl_parse_response(line, len, &r, scratch, sizeof(scratch));

	if (parsed && r.kind == CTL_RESP_ERROR && r.subject_len == 4 &&
	    memcmp(r.subject, "busy", 4) == 0) {
		/* Past max_clients probed says so, unasked, and closes. */
		const struct ctl_kv *text = ctl_response_get(&r, "text");

		fflush(stdout);
		fprintf(stderr, "probectl: %s: probed refused the connection: ",
		    c->socket_path);
		if (text != NULL)
			output_printable(stderr, text->value, text->value_len);
		else
			fputs("busy", stderr);
		fputs(" (error busy)\n", stderr);
		exit(EXIT_UNAVAILABLE);
	}
	if (parsed && r.kind == CTL_RESP_ERROR && r.subject_len == 14 &&
	    memcmp(r.subject, "not_authorized", 14) == 0) {
		/* The allow-list said no before reading anything; the
		 * connection is closed after this line. */
		fatal(EXIT_UNAVAILABLE, "probed refused this user (uid %lu): not in "
		    "socket_allow_users/socket_allow_groups", (unsigned long)geteuid());
	}
	if (c->answered_seq == c->sent_seq) {
		output_malformed(&c->out, line, len, "answer to no request");
		c->any_other = true;
		return;
	}
	p = &c->pending[c->answered_seq++ % PIPELINE_MAX];
	if (line == NULL) {
		char why[64];

		snprintf(why, sizeof(why), "response line over %d octets", RESPONSE_MAX);
		output_malformed(&c->out, NULL, 0, why);
		c->any_other = true;
		return;
	}
	if (!parsed) {
		output_malformed(&c->out, line, len, "not a protocol version 1 response");
		c->any_other = true;
		return;
	}
	if (r.kind != CTL_RESP_ERROR && r.kind != commands[c->verb].expect) {
		output_malformed(&c->out, line, len, "does not answer the request");
		c->any_other = true;
		return;
	}
	output_response(&c->out, &r, p->len > 0 ? p->arg : NULL, p->len);
	if (r.kind == CTL_RESP_ERROR)
		c->any_other = true;
	else if (r.kind == CTL_RESP_RESULT) {
		if (r.verdict == VERDICT_UNDELIVERABLE)
			c->any_undeliverable = true;
		else if (r.verdict != VERDICT_DELIVERABLE)
			c->any_other = true;
	}
}

/*
 * One read from the daemon, every complete line handled.  Returns 1 after
 * data, 0 when nothing was ready, -1 at end of stream or error (errno set,
 * 0 for end of stream).
 */
static int
read_responses(struct client *c)
{
	size_t avail;
	char *space = linebuf_space(&c->resp_lb, &avail);
	ssize_t n;

	/* Every complete line is taken below, so there is always room. */
	n = read(c->fd, space, avail);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -1;
	}
	if (n == 0) {
		errno = 0;
		return -1;
	}
	linebuf_commit(&c->resp_lb, (size_t)n);
	for (;;) {
		const char *line;
		size_t len;
		enum linebuf_status st = linebuf_next(&c->resp_lb, &line, &len);

		if (st == LINEBUF_MORE)
			break;
		handle_response(c, st == LINEBUF_LINE ? line : NULL, len);
	}
	return 1;
}

static void
read_stdin(struct client *c)
{
	size_t avail;
	char *space = linebuf_space(&c->stdin_lb, &avail);
	ssize_t n = read(STDIN_FILENO, space, avail);

	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		fprintf(stderr, "probectl: reading stdin: %s\n", strerror(errno));
		c->any_other = true;
		c->stdin_eof = true;
		return;
	}
	if (n == 0)
		c->stdin_eof = true;
	else
		linebuf_commit(&c->stdin_lb, (size_t)n);
}

static void
flush_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		fatal(2, "writing output: %s", strerror(errno));
}

static void
run(struct client *c)
{
	for (;;) {
		struct pollfd pfd[2];
		nfds_t nfds = 1;

		fill(c);
		if (c->inputs_done && c->wbuf_len == 0 && c->answered_seq == c->sent_seq)
			return;

		pfd[0].fd = c->fd;
		pfd[0].events = POLLIN | (c->wbuf_len > 0 ? POLLOUT : 0);
		pfd[0].revents = 0;
		/* fill() stopped short of the window only for want of a line. */
		if (c->use_stdin && !c->stdin_eof &&
		    c->sent_seq - c->answered_seq < PIPELINE_MAX) {
			pfd[1].fd = STDIN_FILENO;
			pfd[1].events = POLLIN;
			pfd[1].revents = 0;
			nfds = 2;
		}
		/* Show what is known before waiting for more. */
		flush_stdout();
		if (poll(pfd, nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			fatal(2, "poll: %s", strerror(errno));
		}
		if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    read_responses(c) < 0)
			daemon_gone(c, errno);
		if (pfd[0].revents & POLLOUT)
			send_pending(c);
		if (nfds == 2 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
			read_stdin(c);
		if (nfds == 2 && (pfd[1].revents & POLLNVAL)) {
			fprintf(stderr, "probectl: stdin is not open\n");
			c->any_other = true;
			c->stdin_eof = true;
		}
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct client c;
	const char *env;
	int ch;

	memset(&c, 0, sizeof(c));
	c.fd = -1;
	c.out.mode = OUTPUT_HUMAN;
	c.out.out = stdout;
	c.out.err = stderr;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+:s:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (optarg[0] == '\0')
				usage_error("-s needs a socket path");
			c.socket_opt = optarg;
			break;
		case 'J':
			c.out.mode = OUTPUT_JSON;
			break;
		case 'h':
			usage_full();
			return 0;
		case 'V':
			printf("probectl %s\n", PACKAGE_VERSION);
			return 0;
		case ':':
			usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		usage_error("missing COMMAND");
	if (!find_command(argv[optind], &c.verb))
		usage_error("unknown command '%s'", argv[optind]);
	parse_command_args(&c, argc - optind, argv + optind);

	if (c.socket_opt != NULL)
		c.socket_path = c.socket_opt;
	else if ((env = getenv("PROBED_SOCKET")) != NULL && env[0] != '\0')
		c.socket_path = env;
	else
		c.socket_path = DEFAULT_SOCKET;

	/* A closed socket must show up as EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);

	c.wbuf_cap = (size_t)PIPELINE_MAX * CTL_LINE_MAX;
	c.wbuf = malloc(c.wbuf_cap);
	c.pending = calloc(PIPELINE_MAX, sizeof(*c.pending));
	if (c.wbuf == NULL || c.pending == NULL ||
	    linebuf_init(&c.resp_lb, RESPONSE_MAX) != 0 ||
	    (c.use_stdin && linebuf_init(&c.stdin_lb, STDIN_LINE_MAX) != 0))
		fatal(2, "out of memory");

	connect_daemon(&c);
	run(&c);
	flush_stdout();
	close(c.fd);

	linebuf_free(&c.resp_lb);
	if (c.use_stdin)
		linebuf_free(&c.stdin_lb);
	free(c.pending);
	free(c.wbuf);
	free(c.args);

	if (c.any_undeliverable)
		return 1;
	return c.any_other ? 2 : 0;
}
