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

/* Backpressure: past either limit a client is not read until it drains. */
#define CONTROL_MAX_OUTSTANDING 128      /* requests read but not yet answered */
#define CONTROL_OUTPUT_HIGH_WATER 65536  /* unsent answer octets */
/* SIGTERM: how long clients get to take their last answers. */
#define CONTROL_SHUTDOWN_DRAIN_TIMEOUT 10.0

struct control;
struct ctl_slot;

struct control_params {
	const char *path;        /* socket path to bind, unless fd >= 0 */
	unsigned mode;           /* file mode of a bound socket */
	const char *group;       /* group of a bound socket; "" keeps ours */
	int fd;                  /* an already listening socket (systemd), or -1 */
	unsigned max_clients;
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
