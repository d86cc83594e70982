/*
 * engine — what stands between the control verbs and the network: the
 * verdict cache (and its persistence), single-flight of identical
 * requests, batches per domain, per-domain knowledge, greylisting retries
 * and background refreshes.  commands.c asks; verify.c probes.
 */
#ifndef PROBED_ENGINE_H
#define PROBED_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "codec.h"
#include "config.h"

struct engine;
struct engine_waiter;

typedef void (*engine_cb)(const struct ctl_result *result, void *arg);

enum engine_answer {
	ENGINE_NOW,     /* *now holds the answer (cache, busy) */
	ENGINE_LATER,   /* cb will run once with it */
};

struct engine_counters {
	uint64_t cache_hits, cache_misses, cache_entries, cache_evictions;
	uint64_t coalesced, busy, refreshes, greylist_retries;
	uint64_t flights, batches, sessions, rcpts, dns_queries, dns_cache_hits;
	uint64_t domains, store_errors, backoffs, commits;
};

/* Opens state_dir's store and loads it; NULL with err on failure. */
struct engine *engine_new(struct ev_loop *loop, const struct config *cfg, char *err,
    size_t errlen) __attribute__((warn_unused_result));
int engine_reconfigure(struct engine *e, const struct config *cfg, char *err,
    size_t errlen) __attribute__((warn_unused_result));
/* Cancels every probe (no callbacks) and flushes the store. */
void engine_free(struct engine *e);

/*
 * VERIFY an address whose syntax was checked.  fresh: ignore the cache.
 * A fresh cached verdict, a busy refusal or an out-of-memory answer comes
 * back at once in *now; otherwise cb runs later (never inside this call)
 * and *w lets the caller withdraw.
 */
enum engine_answer engine_verify(struct engine *e, const char *address, size_t len,
    bool fresh, struct ctl_result *now, engine_cb cb, void *arg, struct engine_waiter **w);
/* Withdraw interest: cb will not run; the probe goes on into the cache. */
void engine_waiter_cancel(struct engine_waiter *w);
/* CHECK: the cache alone. */
void engine_check(struct engine *e, const char *address, size_t len, struct ctl_result *out);
/* DOMAIN: one response line into out; returns its length (0: did not fit). */
size_t engine_domain(struct engine *e, const char *domain, size_t len, char *out, size_t cap);
/* FORGET an address or (when it has no '@') a domain: how much was dropped. */
size_t engine_forget(struct engine *e, const char *arg, size_t len);
void engine_counters(struct engine *e, struct engine_counters *out);
size_t engine_inflight(const struct engine *e);

#endif
