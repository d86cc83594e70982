/*
 * control — the control socket: listening (bound here or passed by systemd),
 * accepting within limits.max_clients, and one connection object per client
 * that reads request lines, hands each to commands_run() and writes the
 * answers back strictly in request order, however they complete.
 *
 * Ordering: every request line gets a ctl_slot, queued in arrival order; an
 * answer fills its slot and the queue is flushed from the head while the
 * head is answered.  A slot outlives its client when the client goes away
 * while the answer is still being worked out (the answer is then dropped).
 */
#ifndef PROBED_CONTROL_H
#define PROBED_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "access.h"

/* Backpressure: past either limit a client is not read until it drains.
 * The other limit, requests read but not yet answered, is
 * limits.client_inflight (control_params.client_inflight). */
#define CONTROL_OUTPUT_HIGH_WATER 65536  /* unsent answer octets */
/* SIGTERM: how long clients get to take their last answers. */
#define CONTROL_SHUTDOWN_DRAIN_TIMEOUT 10.0

struct control;
struct ctl_slot;

struct control_params {
	const char *path;        /* socket path to bind, unless fd >= 0 */
	unsigned mode;           /* file mode of a bound socket */
	const char *group;       /* group of a bound socket; "" keeps ours */
	const char *owner;       /* owner of a bound socket; "" keeps ours */
	int fd;                  /* an already listening socket (systemd), or -1 */
	unsigned max_clients;
	struct control_limits {
		unsigned client_inflight;   /* requests read, not yet answered */
		unsigned client_idle_timeout; /* seconds; 0 = never */
	} limits;
	/* socket_allow_users/groups as IDs; both empty: no check. */
	const uid_t *allow_uids;
	size_t n_allow_uids;
	const gid_t *allow_gids;
	size_t n_allow_gids;
};

/*
 * Bind or adopt the listening socket.  On failure returns NULL and writes
 * one line explaining it into err.  A stale socket file left by a dead
 * instance is replaced; a live instance makes this fail.
 */
struct control *control_open(struct ev_loop *loop, const struct control_params *p,
    char *err, size_t errlen) __attribute__((warn_unused_result));
void control_start(struct control *ctl);
void control_set_max_clients(struct control *ctl, unsigned max_clients);
/* Reload: the per-client limits apply at once to every client (a lower
 * client_inflight just stops reading sooner; nothing read is refused). */
void control_set_limits(struct control *ctl, const struct control_limits *lim);
/* Reload: the allow-list applies to connections accepted from now on.
 * Returns -1 (the old list stays) when out of memory. */
int control_set_access(struct control *ctl, const uid_t *uids, size_t n_uids,
    const gid_t *gids, size_t n_gids) __attribute__((warn_unused_result));
/*
 * Stop accepting, answer what was already read, close every client, remove
 * the socket file if we bound it; done() runs once every client is gone (or
 * the drain timeout ends the wait).
 */
void control_shutdown(struct control *ctl, void (*done)(void *arg), void *arg);
void control_free(struct control *ctl);

/* The answer to one request: exactly one call per slot.  line is one
 * complete response line with its LF.  Safe after the client has gone. */
void ctl_slot_reply(struct ctl_slot *slot, const char *line, size_t len);

#endif
