/*
 * dnscache — warm DNS for the verifier: mail-exchanger answers (the whole
 * resolver_mx() result for a domain) kept for their TTL, clamped to
 * [min_ttl, max_ttl]; negative answers (NXDOMAIN, null MX, no_mx) kept for
 * negative_ttl (RFC 2308; udns does not hand over the SOA minimum, so the
 * configured value stands in for it); a hit in the last tenth of an
 * entry's life starts a background refresh (prefetch); a DNS error while an
 * expired answer is still within stale_ttl serves that answer (RFC 8767)
 * instead of failing the probe.  Concurrent lookups of one domain share one
 * query.  Bounded by max_entries with LRU eviction.
 */
#ifndef PROBED_DNSCACHE_H
#define PROBED_DNSCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "resolver.h"

struct dnscache;
struct dnscache_query;

struct dnscache_params {
	unsigned min_ttl;       /* seconds; shorter TTLs are raised to this */
	unsigned max_ttl;       /* longer TTLs are cut to this */
	unsigned negative_ttl;  /* NXDOMAIN, null MX, no_mx */
	unsigned stale_ttl;     /* how long past expiry an answer may be served on error */
	size_t max_entries;
};

struct dnscache_stats {
	uint64_t hits, misses, prefetches, stale_served, entries;
};

struct dnscache *dnscache_new(struct ev_loop *loop, struct resolver *r,
    const struct dnscache_params *p) __attribute__((warn_unused_result));
void dnscache_free(struct dnscache *dc);
void dnscache_set_params(struct dnscache *dc, const struct dnscache_params *p);

/* As resolver_mx(): cb runs exactly once, never inside this call, unless
 * cancelled.  A fresh cached answer is delivered from the loop too. */
struct dnscache_query *dnscache_mx(struct dnscache *dc, const char *domain,
    unsigned max_mx, resolver_mx_cb cb, void *arg);
void dnscache_cancel(struct dnscache_query *q);
/* Drop what is known of a domain (FORGET); true when an answer was dropped. */
bool dnscache_forget(struct dnscache *dc, const char *domain);
/* The cached answer, if any, without a lookup (DOMAIN); *age and *ttl_left
 * in seconds.  The result is the cache's own buffer, valid until the next
 * dnscache call.  A delivered result's ttl is the seconds it has left in
 * the cache (0 when stale).  Free the dnscache before its resolver. */
const struct mx_result *dnscache_peek(struct dnscache *dc, const char *domain,
    long *age, long *ttl_left);
void dnscache_stats(const struct dnscache *dc, struct dnscache_stats *out);

#endif
