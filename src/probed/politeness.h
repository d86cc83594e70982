/*
 * politeness — how gently probed treats the servers it asks, so that its
 * address keeps a good name:
 *   - at most per_host SMTP sessions open at once to one MX host;
 *   - a token bucket of session starts per domain (domain_rate per second,
 *     domain_burst at once);
 *   - a host that rate-limits (421, 4.7.0 "try again later", "too many
 *     connections") is backed off exponentially: backoff_base, doubled at
 *     each repeat, at most backoff_max seconds;
 *   - a host that blocked the prober (5.7.x at banner or MAIL, blocklist
 *     text) is left alone for blocked_time seconds.
 * Hosts are keyed by MX name; an idle host without backoff is forgotten.
 */
#ifndef PROBED_POLITENESS_H
#define PROBED_POLITENESS_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "vocab.h"

struct politeness;
struct polite_wait;

struct polite_params {
	unsigned per_host;
	double domain_rate;      /* session starts per second per domain */
	unsigned domain_burst;
	double backoff_base;     /* seconds */
	double backoff_max;
	double blocked_time;
};

typedef void (*polite_grant_cb)(void *arg);

struct politeness *politeness_new(struct ev_loop *loop, const struct polite_params *p)
    __attribute__((warn_unused_result));
void politeness_free(struct politeness *pl);
void politeness_set_params(struct politeness *pl, const struct polite_params *p);

/* Is the host being left alone?  Then *why is REASON_RATE_LIMITED or
 * REASON_BLOCKED and *left the seconds to go. */
bool politeness_backoff(struct politeness *pl, const char *host, enum reason *why,
    double *left);
/*
 * Ask for one session slot at host, counted against domain's bucket.  cb
 * runs once, from the loop (never inside this call), when it is granted;
 * the holder then owes one politeness_release().  NULL when out of memory.
 */
struct polite_wait *politeness_acquire(struct politeness *pl, const char *host,
    const char *domain, polite_grant_cb cb, void *arg);
/* Withdraw a request not granted yet. */
void politeness_cancel(struct polite_wait *w);
/* Give the slot back, saying how the session went: a rate limit or a block
 * starts or grows the host's backoff, anything else ends it. */
void politeness_release(struct politeness *pl, const char *host, enum reason outcome);

struct polite_stats {
	uint64_t waits, backoffs, hosts;
};
void politeness_stats(const struct politeness *pl, struct polite_stats *out);

#endif
