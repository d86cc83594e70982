/*
 * cache — the verdict cache: what probed last concluded about an address,
 * kept in memory (a hash table with LRU order, bounded by
 * cache.max_entries) and mirrored to the persistent store by its owner.
 *
 * An entry has three moments: made (the probe ended), refresh (past it the
 * entry is still answered but a background probe should renew it, as
 * Postfix's verify(8) does) and expires (past it the entry is not
 * answered).  The caller decides those moments from the configuration; the
 * cache enforces one rule of its own: a failed or temporary verdict never
 * replaces a positive one that has not expired (cache_store).
 *
 * Keys are addresses with the domain lowercased (cache_key); the local
 * part is kept as written, since RFC 5321 lets servers tell case apart.
 * Every entry is also linked into its domain's list, so FORGET of a domain
 * costs the size of that domain, not of the cache.
 */
#ifndef PROBED_CACHE_H
#define PROBED_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "vocab.h"

#define CACHE_KEY_MAX 256     /* an address (<= 254 octets) and a NUL */

struct verdict_entry {
	enum reason reason;         /* the verdict follows from it (vocab.h) */
	int code;                   /* 0: no reply */
	char enhanced[16];
	char mx[256];
	enum tristate catch_all;
	enum tristate tls;
	char text[512];
	int64_t made;               /* unix seconds */
	int64_t refresh;            /* answered, but renew in the background */
	int64_t expires;            /* not answered any more */
};

enum cache_kind {
	CACHE_POSITIVE,             /* deliverable, and risky answers about the domain */
	CACHE_NEGATIVE,             /* undeliverable */
	CACHE_TEMPORARY,            /* unknown: what failed may work next time */
};
/* Which TTL applies to a reason. */
enum cache_kind cache_kind_of(enum reason r);

enum cache_state {
	CACHE_MISS,                 /* absent, or expired (and then dropped) */
	CACHE_FRESH,
	CACHE_REFRESH,              /* answer it, and renew it */
};

enum cache_store_result {
	CACHE_STORED,
	CACHE_KEPT,                 /* the old positive entry stays (rule above) */
	CACHE_NOMEM,
};

struct cache;

/* Called when an entry leaves the cache by eviction, expiry or FORGET, so
 * the owner can drop it from the persistent store too.  It must not call
 * back into the cache. */
typedef void (*cache_drop_cb)(const char *key, size_t key_len, void *arg);

struct cache *cache_new(size_t max_entries, cache_drop_cb on_drop, void *arg)
    __attribute__((warn_unused_result));
void cache_free(struct cache *c);
/* A smaller max_entries evicts the least recently used at once. */
void cache_set_max(struct cache *c, size_t max_entries);

/* Normalise an address into a key: returns its length, 0 if it does not fit
 * or has no '@' outside a quoted local part. */
size_t cache_key(const char *address, size_t len, char *key, size_t cap);

/* Look up a key; a hit moves it to the front of the LRU order.  Expired
 * entries are dropped (on_drop runs) and reported as a miss.  The entry
 * returned is a copy valid until the next call into the cache. */
const struct verdict_entry *cache_lookup(struct cache *c, const char *key, size_t key_len,
    int64_t now, enum cache_state *state);
/* Insert or replace, subject to the positive-entry rule.  CACHE_NOMEM
 * also covers "not stored" for a bad key or entry and a disabled cache
 * (max_entries 0): the owner mirrors to disk only on CACHE_STORED. */
enum cache_store_result cache_store(struct cache *c, const char *key, size_t key_len,
    const struct verdict_entry *e, int64_t now);
/* Start-up: make room for n entries at once, and insert one whose key is
 * known not to be in the cache yet (the store's keys are unique), which
 * spares the lookup.  Otherwise as cache_store. */
void cache_reserve(struct cache *c, size_t n);
enum cache_store_result cache_load(struct cache *c, const char *key, size_t key_len,
    const struct verdict_entry *e, int64_t now);

/* Drop one address, or every address of a domain; returns how many. */
size_t cache_forget_address(struct cache *c, const char *key, size_t key_len);
size_t cache_forget_domain(struct cache *c, const char *domain, size_t len);

size_t cache_entries(const struct cache *c);
uint64_t cache_evictions(const struct cache *c);

/* Persistent form: a versioned, length-checked byte record.  pack returns
 * the length written (0 if cap is too small); unpack refuses anything that
 * is not exactly a record of this version. */
size_t verdict_entry_pack(const struct verdict_entry *e, unsigned char *out, size_t cap);
bool verdict_entry_unpack(const unsigned char *in, size_t len, struct verdict_entry *e);

#endif
