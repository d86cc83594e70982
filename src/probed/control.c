/*
 * control — the control socket server.  See control.h.
 *
 * One client object per connection, with three states:
 *
 *   OPEN      reading the socket and answering request lines;
 *   DRAINING  no more reading (the peer shut its side, or probed is
 *             shutting down): lines already received are still answered;
 *   QUIT      QUIT was answered: nothing more is read or answered.
 *
 * A client leaves DRAINING or QUIT by being closed once every answer it is
 * owed has been written.  After every event client_pump() derives what the
 * client wants from its state (read interest, write interest, close) instead
 * of toggling watchers ad hoc.
 *
 * LIMITS: a request line is at most CTL_LINE_MAX octets; a client is not read
 * while it has limits.client_inflight unanswered requests or
 * CONTROL_OUTPUT_HIGH_WATER unsent octets, so a client that pipelines without
 * reading costs bounded memory.  That is backpressure, never refusal: the
 * protocol promises one answer per request line, in order, so a request
 * once sent is never dropped or refused; the client's writes just block
 * until it reads.  Past limits.max_clients a new connection is told
 * "error busy" and closed.
 *
 * Idle clients: one lazily re-armed timer per client (client_on_idle).
 * Activity only stamps last_active; the timer, when it fires, re-arms
 * itself for what is left.  A client is idle when probed is working on
 * nothing for it (no unanswered request) and it has sent no octet and
 * taken no octet of its answers for limits.client_idle_timeout seconds;
 * a client waiting on its own slow VERIFY is never idle.  An idle client
 * holding half a request line gets "error timeout" for it; any other idle
 * client is just closed (an unasked line would be read as the answer to
 * its next request).
 *
 * SECURITY: who may connect is decided first by the socket file's mode,
 * owner and group, then by the allow-list (access.c, socket_allow_users
 * and socket_allow_groups) from the kernel's credentials of the peer: a
 * refused peer gets exactly one line, "error not_authorized", and is
 * closed without a request being read.  Every request is parsed by the
 * bounded codec and answered, never trusted.
 */
#include "autoconfig.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "codec.h"
#include "commands.h"
#include "control.h"
#include "linebuf.h"
#include "log.h"
#include "stats.h"

#define ACCEPT_RETRY_DELAY 0.5 /* after EMFILE/ENFILE: let descriptors free up */
/* Unread input a refused peer's close discards, so that it reads "error
 * not_authorized" and then EOF: Linux reports ECONNRESET to a peer whose
 * data was never read.  Bounded: a peer that keeps writing gets its reset.
 * Other closes keep the reset: it tells a client that requests it wrote
 * were never read. */
#define CLOSE_DRAIN_MAX (256 * 1024)

enum client_state {
	CLIENT_OPEN,
	CLIENT_DRAINING,
	CLIENT_QUIT,
};

static const char *const client_state_names[] = {
	[CLIENT_OPEN] = "open",
	[CLIENT_DRAINING] = "draining",
	[CLIENT_QUIT] = "quit",
};

struct ctl_slot {
	struct ctl_slot *next;
	struct client *client; /* NULL once the client has gone */
	bool done;
	size_t len;
	char *line;            /* an answer that arrived ahead of its turn */
};

struct client {
	struct control *ctl;
	struct client *prev, *next;
	unsigned id;
	int fd;
	enum client_state state;
	bool pumping;           /* inside client_pump: replies only queue */
	ev_io rio, wio;
	ev_timer kick;          /* an answer came later: pump from the loop */
	ev_timer idle;          /* named timeout: limits.client_idle_timeout */
	ev_tstamp last_active;  /* last octet in or out, or last moment probed
	                         * was working for the client */
	const char *quit_reason; /* why state QUIT: for the close's log line */
	bool drain_on_close;    /* refused: discard its unread input at close */
	struct linebuf in;
	struct ctl_slot *head, *tail;
	unsigned outstanding;
	char *out;
	size_t out_off, out_len, out_cap;
};

struct control {
	struct ev_loop *loop;
	int fd;
	bool bound;             /* we created the socket file: remove it at exit */
	char *path;
	dev_t dev;
	ino_t ino;
	ev_io accept_io;
	ev_timer accept_retry;  /* named timeout: resume accepting after EMFILE */
	ev_timer drain_timer;   /* named timeout: CONTROL_SHUTDOWN_DRAIN_TIMEOUT */
	unsigned max_clients;
	struct control_limits limits;
	struct access_list access;
	unsigned n_clients;
	unsigned next_id;
	struct client *clients;
	bool shutting_down;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
};

static void client_pump(struct client *c);
static void client_close(struct client *c, const char *reason);
static void control_check_shutdown_done(struct control *ctl);

/* ---- slots ---------------------------------------------------------- */

static struct ctl_slot *
slot_new(struct client *c)
{
	struct ctl_slot *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->client = c;
	if (c->tail != NULL)
		c->tail->next = s;
	else
		c->head = s;
	c->tail = s;
	c->outstanding++;
	return s;
}

static void
slot_free(struct ctl_slot *s)
{
	free(s->line);
	free(s);
}

/* ---- output --------------------------------------------------------- */

static size_t
client_unsent(const struct client *c)
{
	return c->out_len - c->out_off;
}

static bool
client_append(struct client *c, const char *p, size_t n)
{
	if (c->out_off > 0 && c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len + n > c->out_cap) {
		if (c->out_off > 0) {
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		if (c->out_len + n > c->out_cap) {
			size_t cap = c->out_cap ? c->out_cap : 4096;
			while (cap < c->out_len + n)
				cap *= 2;
			char *p2 = realloc(c->out, cap);
			if (p2 == NULL)
				return false;
			c->out = p2;
			c->out_cap = cap;
		}
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return true;
}

/* Move answered slots from the head of the queue into the output buffer. */
static void
client_collect(struct client *c)
{
	while (c->head != NULL && c->head->done) {
		struct ctl_slot *s = c->head;
		if (!client_append(c, s->line, s->len))
			log_err("c%u out of memory queueing an answer", c->id);
		c->head = s->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->outstanding--;
		slot_free(s);
	}
}

void
ctl_slot_reply(struct ctl_slot *s, const char *line, size_t len)
{
	struct client *c = s->client;

	assert(!s->done);
	if (c == NULL) {
		slot_free(s); /* its client left before the answer was ready */
		return;
	}
	c->last_active = ev_now(c->ctl->loop); /* probed worked for it until now */
	if (s == c->head) {
		/* The common case: answered in turn, no copy kept. */
		if (!client_append(c, line, len))
			log_err("c%u out of memory queueing an answer", c->id);
		c->head = s->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->outstanding--;
		slot_free(s);
		client_collect(c);
	} else {
		s->line = malloc(len);
		if (s->line != NULL) {
			memcpy(s->line, line, len);
			s->len = len;
		} else {
			log_err("c%u out of memory holding an answer", c->id);
		}
		s->done = true;
	}
	/* Never pump from here: the caller may be deep inside the engine, and
	 * pumping reads new requests that may reach back into it. */
	if (!c->pumping && !ev_is_active(&c->kick))
		ev_timer_start(c->ctl->loop, &c->kick);
}

/* Returns false when the client had to be closed. */
static bool
client_flush(struct client *c)
{
	while (client_unsent(c) > 0) {
		ssize_t n = send(c->fd, c->out + c->out_off, client_unsent(c),
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->out_off += (size_t)n;
			c->last_active = ev_now(c->ctl->loop);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		log_info("c%u write failed: %s", c->id, n < 0 ? strerror(errno) : "no progress");
		client_close(c, "write error");
		return false;
	}
	c->out_off = c->out_len = 0;
	return true;
}

/* ---- input ---------------------------------------------------------- */

static bool
client_has_room(const struct client *c)
{
	return c->outstanding < c->ctl->limits.client_inflight &&
	    client_unsent(c) < CONTROL_OUTPUT_HIGH_WATER;
}

/* Answer buffered lines while the client has room.  Returns false when a
 * slot could not be allocated (the client is then closed by the caller). */
static bool
client_process(struct client *c)
{
	while (c->state != CLIENT_QUIT && client_has_room(c)) {
		const char *line;
		size_t len;
		enum linebuf_status st = linebuf_next(&c->in, &line, &len);

		if (st == LINEBUF_MORE)
			break;
		struct ctl_slot *s = slot_new(c);
		if (s == NULL)
			return false;
		stats.requests++;
		if (st == LINEBUF_TOOLONG) {
			commands_line_too_long(s);
			continue;
		}
		if (commands_run(s, line, len) == COMMANDS_CLOSE) {
			c->state = CLIENT_QUIT;
			c->quit_reason = "quit";
			log_debug("c%u state=quit", c->id);
		}
	}
	return true;
}

/* Returns false when the client had to be closed. */
static bool
client_read(struct client *c)
{
	size_t avail;
	char *p = linebuf_space(&c->in, &avail);

	if (avail == 0)
		return true; /* a full line is waiting for room to be answered */
	ssize_t n = recv(c->fd, p, avail, MSG_DONTWAIT);
	if (n > 0) {
		linebuf_commit(&c->in, (size_t)n);
		c->last_active = ev_now(c->ctl->loop);
		return true;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return true;
	if (n == 0) {
		/* Half-close: the peer may still be reading its answers. */
		log_debug("c%u state=%s->draining reason=eof", c->id,
		    client_state_names[c->state]);
		if (c->state == CLIENT_OPEN)
			c->state = CLIENT_DRAINING;
		return true;
	}
	log_info("c%u read failed: %s", c->id, strerror(errno));
	client_close(c, "read error");
	return false;
}

/* ---- the pump: after every event ------------------------------------- */

static void
client_pump(struct client *c)
{
	c->pumping = true;
	if (!client_process(c)) {
		client_close(c, "out of memory");
		return;
	}
	c->pumping = false;
	if (c->outstanding > 0)
		c->last_active = ev_now(c->ctl->loop); /* probed is working for it */
	client_collect(c);
	if (!client_flush(c))
		return;

	bool unanswered = c->outstanding > 0;
	bool unsent = client_unsent(c) > 0;
	bool lines_left = c->state == CLIENT_DRAINING && linebuf_pending(&c->in) > 0 &&
	    !client_has_room(c);

	if (c->state != CLIENT_OPEN && !unanswered && !unsent && !lines_left) {
		client_close(c, c->state == CLIENT_QUIT ? c->quit_reason : "drained");
		return;
	}

	bool want_read = c->state == CLIENT_OPEN && client_has_room(c);
	if (want_read && !ev_is_active(&c->rio))
		ev_io_start(c->ctl->loop, &c->rio);
	else if (!want_read && ev_is_active(&c->rio))
		ev_io_stop(c->ctl->loop, &c->rio);

	if (unsent && !ev_is_active(&c->wio))
		ev_io_start(c->ctl->loop, &c->wio);
	else if (!unsent && ev_is_active(&c->wio))
		ev_io_stop(c->ctl->loop, &c->wio);
}

static void
client_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;

	if (client_read(c))
		client_pump(c);
}

static void
client_on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	client_pump(w->data);
}

static void
client_on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
	client_pump(w->data);
}

/* Answer with one last line (an error) and close once it is written. */
static void
client_last_word(struct client *c, const char *reason, const char *text,
    const char *quit_reason)
{
	char line[256];
	size_t n = ctl_fmt_error(line, sizeof(line), reason, text);

	if (n == 0 || !client_append(c, line, n))
		log_err("c%u cannot queue error %s", c->id, reason);
	c->state = CLIENT_QUIT;
	c->quit_reason = quit_reason;
	client_pump(c); /* writes it and closes, or waits to write */
}

static void
client_idle_timeout(struct client *c, unsigned timeout)
{
	size_t unsent = client_unsent(c);
	bool partial = c->state == CLIENT_OPEN && linebuf_pending(&c->in) > 0 &&
	    !c->in.skipping;
	char text[96];

	stats.idle_timeouts++;
	log_info("c%u idle timeout after %us state=%s partial_line=%s unsent=%zu",
	    c->id, timeout, client_state_names[c->state], partial ? "yes" : "no",
	    unsent);
	if (!partial || unsent > 0) {
		/* Nothing asked, or answers it does not read: nothing to say
		 * that it would read. */
		client_close(c, unsent > 0 ? "idle, answers not read" : "idle");
		return;
	}
	/* Half a request, never finished: that request gets its answer. */
	snprintf(text, sizeof(text), "no complete request line in %u s", timeout);
	client_last_word(c, "timeout", text, "idle, partial line");
}

static void
client_on_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct client *c = w->data;
	unsigned timeout = c->ctl->limits.client_idle_timeout;
	ev_tstamp now = ev_now(loop);

	if (timeout == 0)
		return; /* switched off by a reload: stays stopped */
	if (c->outstanding > 0)
		c->last_active = now;
	ev_tstamp left = c->last_active + timeout - now;
	if (left > 0) {
		ev_timer_set(w, left, 0.);
		ev_timer_start(loop, w);
		return;
	}
	client_idle_timeout(c, timeout);
}

/* ---- connection life -------------------------------------------------- */

static void
client_close(struct client *c, const char *reason)
{
	struct control *ctl = c->ctl;

	log_debug("c%u close reason=%s outstanding=%u unsent=%zu", c->id, reason,
	    c->outstanding, client_unsent(c));
	ev_io_stop(ctl->loop, &c->rio);
	ev_io_stop(ctl->loop, &c->wio);
	ev_timer_stop(ctl->loop, &c->kick);
	ev_timer_stop(ctl->loop, &c->idle);
	/* A refused peer's requests were never to be read: drop them, so
	 * that it reads our one line and EOF, not ECONNRESET. */
	for (size_t drained = 0; c->drain_on_close && drained < CLOSE_DRAIN_MAX;) {
		char sink[4096];
		ssize_t n = recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n <= 0)
			break;
		drained += (size_t)n;
	}
	close(c->fd);

	for (struct ctl_slot *s = c->head, *next; s != NULL; s = next) {
		next = s->next;
		if (s->done)
			slot_free(s);
		else
			s->client = NULL; /* still being answered: freed by its reply */
	}
	linebuf_free(&c->in);
	free(c->out);

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		ctl->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	ctl->n_clients--;
	stats.clients--;
	free(c);

	if (ctl->shutting_down)
		control_check_shutdown_done(ctl);
}

static void
refuse_busy(int fd)
{
	static const char busy[] = "error busy text=\"too many clients\"\n";

	/* Best effort: a full socket buffer on a brand-new connection is not
	 * worth waiting for. */
	ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
	close(fd);
}

static void
control_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct control *ctl = w->data;

	for (;;) {
		int fd = accept4(ctl->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				log_warning("control accept paused: %s", strerror(errno));
				ev_io_stop(loop, &ctl->accept_io);
				ev_timer_set(&ctl->accept_retry, ACCEPT_RETRY_DELAY, 0.);
				ev_timer_start(loop, &ctl->accept_retry);
				return;
			}
			log_err("control accept failed: %s", strerror(errno));
			return;
		}

		/* Who it is comes first: a peer that may not use probed is
		 * told so, whatever the load (and learns nothing of it). */
		struct access_peer peer;
		char why[128] = "";
		enum access_verdict verdict = access_check(&ctl->access, fd, &peer, why,
		    sizeof(why));

		if (verdict == ACCESS_ALLOWED && ctl->n_clients >= ctl->max_clients) {
			stats.clients_refused++;
			log_notice("control refused connection reason=busy clients=%u max_clients=%u",
			    ctl->n_clients, ctl->max_clients);
			refuse_busy(fd);
			continue;
		}

		struct client *c = calloc(1, sizeof(*c));
		if (c == NULL || linebuf_init(&c->in, CTL_LINE_MAX) != 0) {
			log_err("control out of memory accepting a client");
			free(c);
			refuse_busy(fd);
			continue;
		}
		c->ctl = ctl;
		c->fd = fd;
		c->id = ++ctl->next_id;
		c->state = CLIENT_OPEN;
		c->quit_reason = "quit";
		c->last_active = ev_now(loop);
		ev_io_init(&c->rio, client_on_read, fd, EV_READ);
		ev_io_init(&c->wio, client_on_write, fd, EV_WRITE);
		ev_timer_init(&c->kick, client_on_kick, 0., 0.);
		ev_timer_init(&c->idle, client_on_idle,
		    (ev_tstamp)ctl->limits.client_idle_timeout, 0.);
		c->rio.data = c->wio.data = c->kick.data = c->idle.data = c;
		c->next = ctl->clients;
		if (ctl->clients != NULL)
			ctl->clients->prev = c;
		ctl->clients = c;
		ctl->n_clients++;
		stats.clients++;
		stats.clients_total++;
		if (ctl->limits.client_idle_timeout > 0)
			ev_timer_start(loop, &c->idle);
		if (verdict != ACCESS_ALLOWED) {
			char text[128];

			stats.refused_unauthorized++;
			if (verdict == ACCESS_ERROR) {
				log_err("c%u refused reason=not_authorized: cannot tell who "
				    "connected: %s", c->id, why);
				snprintf(text, sizeof(text), "probed cannot read this "
				    "connection's credentials");
			} else {
				log_warning("c%u refused reason=not_authorized uid=%lu gid=%lu "
				    "pid=%ld supplementary_groups=%s", c->id,
				    (unsigned long)peer.uid, (unsigned long)peer.gid,
				    (long)peer.pid, peer.groups_known ? "checked" :
				    "unchecked");
				snprintf(text, sizeof(text), "uid %lu is not in "
				    "socket_allow_users/socket_allow_groups",
				    (unsigned long)peer.uid);
			}
			c->drain_on_close = true;
			client_last_word(c, "not_authorized", text, "not_authorized");
			continue;
		}
		log_debug("c%u accept clients=%u uid=%lu pid=%ld", c->id, ctl->n_clients,
		    (unsigned long)peer.uid, (long)peer.pid);
		ev_io_start(loop, &c->rio);
	}
}

static void
control_on_accept_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct control *ctl = w->data;

	if (!ctl->shutting_down)
		ev_io_start(loop, &ctl->accept_io);
}

/* ---- the listening socket --------------------------------------------- */

/* Is something accepting on path?  1 yes, 0 no (stale), -1 cannot tell. */
static int
socket_is_live(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	int e = errno;
	close(fd);
	if (r == 0 || e == EAGAIN || e == EINPROGRESS)
		return 1; /* EAGAIN: a live listener with a full backlog */
	if (e == ECONNREFUSED)
		return 0;
	snprintf(err, errlen, "cannot check existing socket %s: %s", path, strerror(e));
	return -1;
}

static int
control_bind(struct control *ctl, const struct control_params *p, char *err, size_t errlen)
{
	/* The copy control_open kept: "" when the caller gave no path, never NULL. */
	const char *path = ctl->path;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t plen = strlen(path);
	struct stat st;

	if (plen == 0) {
		snprintf(err, errlen, "no socket path and no socket passed by systemd");
		return -1;
	}
	if (plen >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path %s is longer than %zu octets", path,
		    sizeof(sun.sun_path) - 1);
		return -1;
	}
	memcpy(sun.sun_path, path, plen + 1);

	/* The runtime directory may be ours to create (no systemd). */
	char dir[sizeof(sun.sun_path)];
	memcpy(dir, path, plen + 1);
	const char *parent = dirname(dir);
	if (stat(parent, &st) != 0 && errno == ENOENT && mkdir(parent, 0755) != 0 &&
	    errno != EEXIST) {
		snprintf(err, errlen, "cannot create directory %s: %s", parent, strerror(errno));
		return -1;
	}

	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s exists and is not a socket; not replacing it",
			    path);
			return -1;
		}
		int live = socket_is_live(path, err, errlen);
		if (live < 0)
			return -1;
		if (live > 0) {
			snprintf(err, errlen, "another instance is listening on %s", path);
			return -1;
		}
		log_notice("control replacing stale socket %s", path);
		if (unlink(path) != 0 && errno != ENOENT) {
			snprintf(err, errlen, "cannot remove stale socket %s: %s", path,
			    strerror(errno));
			return -1;
		}
	}

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* The umask closes the window between bind() and chmod(). */
	mode_t old = umask((mode_t)(~p->mode & 0777));
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	int e = errno;
	umask(old);
	if (r != 0) {
		snprintf(err, errlen, "cannot bind %s: %s", path, strerror(e));
		close(fd);
		return -1;
	}
	ctl->bound = true;
	if (chmod(path, (mode_t)p->mode) != 0) {
		snprintf(err, errlen, "cannot set mode %04o on %s: %s", p->mode, path,
		    strerror(errno));
		goto fail;
	}
	if (p->owner != NULL && p->owner[0] != '\0') {
		struct passwd *pw = getpwnam(p->owner);
		if (pw == NULL) {
			snprintf(err, errlen, "socket_owner '%s': no such user", p->owner);
			goto fail;
		}
		if (chown(path, pw->pw_uid, (gid_t)-1) != 0) {
			snprintf(err, errlen, "cannot give %s to user %s (socket_owner): %s",
			    path, p->owner, strerror(errno));
			goto fail;
		}
	}
	if (p->group != NULL && p->group[0] != '\0') {
		struct group *gr = getgrnam(p->group);
		if (gr == NULL) {
			snprintf(err, errlen, "socket_group '%s': no such group", p->group);
			goto fail;
		}
		if (chown(path, (uid_t)-1, gr->gr_gid) != 0) {
			snprintf(err, errlen, "cannot give %s to group %s: %s", path, p->group,
			    strerror(errno));
			goto fail;
		}
	}
	if (listen(fd, SOMAXCONN) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(errno));
		goto fail;
	}
	if (lstat(path, &st) == 0) {
		ctl->dev = st.st_dev;
		ctl->ino = st.st_ino;
	}
	return fd;
fail:
	unlink(path);
	ctl->bound = false;
	close(fd);
	return -1;
}

struct control *
control_open(struct ev_loop *loop, const struct control_params *p, char *err, size_t errlen)
{
	struct control *ctl = calloc(1, sizeof(*ctl));

	if (ctl == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctl->loop = loop;
	ctl->max_clients = p->max_clients;
	ctl->limits = p->limits;
	if (access_list_set(&ctl->access, p->allow_uids, p->n_allow_uids, p->allow_gids,
	    p->n_allow_gids) != 0) {
		snprintf(err, errlen, "out of memory");
		free(ctl);
		return NULL;
	}
	ctl->path = strdup(p->path != NULL ? p->path : "");
	if (ctl->path == NULL) {
		snprintf(err, errlen, "out of memory");
		access_list_free(&ctl->access);
		free(ctl);
		return NULL;
	}
	if (p->fd >= 0) {
		ctl->fd = p->fd;
		int fl = fcntl(ctl->fd, F_GETFL);
		if (fl < 0 || fcntl(ctl->fd, F_SETFL, fl | O_NONBLOCK) != 0) {
			snprintf(err, errlen, "passed socket: %s", strerror(errno));
			access_list_free(&ctl->access);
			free(ctl->path);
			free(ctl);
			return NULL;
		}
	} else {
		ctl->fd = control_bind(ctl, p, err, errlen);
		if (ctl->fd < 0) {
			access_list_free(&ctl->access);
			free(ctl->path);
			free(ctl);
			return NULL;
		}
	}
	ev_io_init(&ctl->accept_io, control_on_accept, ctl->fd, EV_READ);
	ctl->accept_io.data = ctl;
	ev_timer_init(&ctl->accept_retry, control_on_accept_retry, ACCEPT_RETRY_DELAY, 0.);
	ctl->accept_retry.data = ctl;
	return ctl;
}

void
control_start(struct control *ctl)
{
	ev_io_start(ctl->loop, &ctl->accept_io);
}

void
control_set_max_clients(struct control *ctl, unsigned max_clients)
{
	ctl->max_clients = max_clients;
}

void
control_set_limits(struct control *ctl, const struct control_limits *lim)
{
	bool idle_changed = lim->client_idle_timeout != ctl->limits.client_idle_timeout;

	ctl->limits = *lim;
	for (struct client *c = ctl->clients; c != NULL; c = c->next) {
		/* Each idle timer works out its new deadline at once. */
		if (idle_changed && lim->client_idle_timeout > 0) {
			ev_timer_stop(ctl->loop, &c->idle);
			ev_timer_set(&c->idle, 0., 0.);
			ev_timer_start(ctl->loop, &c->idle);
		}
		/* A higher cap may let a paused client be read again. */
		if (!ev_is_active(&c->kick))
			ev_timer_start(ctl->loop, &c->kick);
	}
}

int
control_set_access(struct control *ctl, const uid_t *uids, size_t n_uids,
    const gid_t *gids, size_t n_gids)
{
	return access_list_set(&ctl->access, uids, n_uids, gids, n_gids);
}

/* ---- shutdown ------------------------------------------------------- */

static void
control_check_shutdown_done(struct control *ctl)
{
	if (ctl->clients != NULL || ctl->shutdown_done == NULL)
		return;
	ev_timer_stop(ctl->loop, &ctl->drain_timer);
	void (*done)(void *) = ctl->shutdown_done;
	ctl->shutdown_done = NULL;
	done(ctl->shutdown_arg);
}

static void
control_on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct control *ctl = w->data;

	log_warning("control shutdown drain timeout after %.0fs: closing %u clients",
	    CONTROL_SHUTDOWN_DRAIN_TIMEOUT, ctl->n_clients);
	while (ctl->clients != NULL)
		client_close(ctl->clients, "shutdown timeout");
}

static void
control_close_listener(struct control *ctl)
{
	struct stat st;

	if (ctl->fd < 0)
		return;
	ev_io_stop(ctl->loop, &ctl->accept_io);
	ev_timer_stop(ctl->loop, &ctl->accept_retry);
	close(ctl->fd);
	ctl->fd = -1;
	/* Remove the file only if it is still the one we made: a newer
	 * instance may already have replaced it. */
	if (ctl->bound && lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev &&
	    st.st_ino == ctl->ino)
		unlink(ctl->path);
	ctl->bound = false;
}

void
control_shutdown(struct control *ctl, void (*done)(void *), void *arg)
{
	ctl->shutting_down = true;
	ctl->shutdown_done = done;
	ctl->shutdown_arg = arg;
	control_close_listener(ctl);

	ev_timer_init(&ctl->drain_timer, control_on_drain_timeout,
	    CONTROL_SHUTDOWN_DRAIN_TIMEOUT, 0.);
	ctl->drain_timer.data = ctl;
	ev_timer_start(ctl->loop, &ctl->drain_timer);

	for (struct client *c = ctl->clients, *next; c != NULL; c = next) {
		next = c->next;
		if (c->state == CLIENT_OPEN)
			c->state = CLIENT_DRAINING;
		client_pump(c); /* may close and free c */
	}
	control_check_shutdown_done(ctl);
}

void
control_free(struct control *ctl)
{
	if (ctl == NULL)
		return;
	ctl->shutdown_done = NULL;
	/* client_close frees c and nothing else (shutdown_done is off), so
	 * the next client is taken before, not re-read from ctl->clients:
	 * the static analyzer cannot see that client_close unlinked c. */
	for (struct client *c = ctl->clients, *next; c != NULL; c = next) {
		next = c->next;
		client_close(c, "exit");
	}
	control_close_listener(ctl);
	ev_timer_stop(ctl->loop, &ctl->drain_timer);
	access_list_free(&ctl->access);
	free(ctl->path);
	free(ctl);
}
