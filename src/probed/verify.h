/*
 * verify — the verification orchestrator: for one address, DNS → MX order
 * → destination guard → SMTP sessions (falling back across MX hosts) →
 * one verdict.  It owns the engine's shared pieces (resolver, guard, TLS
 * context) and knows nothing of clients: the answer leaves through a
 * callback as a filled ctl_result.
 */
#ifndef PROBED_VERIFY_H
#define PROBED_VERIFY_H

#include <stddef.h>

#include <ev.h>

#include "codec.h"
#include "config.h"

struct verifier;
struct verify_probe;

typedef void (*verify_done_cb)(const struct ctl_result *result, void *arg);

struct verifier *verifier_new(struct ev_loop *loop, const struct config *cfg, char *err,
    size_t errlen) __attribute__((warn_unused_result));
/* Take the reloadable settings of a new configuration (timeouts, guard,
 * senders, STARTTLS policy); probes already running keep what they had. */
int verifier_reconfigure(struct verifier *v, const struct config *cfg, char *err,
    size_t errlen) __attribute__((warn_unused_result));
void verifier_free(struct verifier *v);

/*
 * Verify an address whose syntax has been checked.  done runs exactly once,
 * later (never inside this call), unless the probe is cancelled.  Returns
 * NULL when out of memory.
 */
struct verify_probe *verify_start(struct verifier *v, const char *address, size_t len,
    verify_done_cb done, void *arg);
void verify_cancel(struct verify_probe *p);

/* Counters for STATS. */
struct verify_counters {
	unsigned long probes, sessions, rcpts, dns_queries, inflight;
};
void verifier_counters(const struct verifier *v, struct verify_counters *out);

#endif
