/*
 * dnscache — mail-exchanger answers kept warm over the resolver.  See
 * dnscache.h.
 *
 * One node per domain (ASCII-lowercased, one trailing dot dropped) in a
 * hash table keyed with SipHash-2-4 under a random key, since domains come
 * from whoever sends us addresses.  A node holds the cached answer, if
 * any, and the resolver query running for the domain, if any (the
 * "flight" every concurrent caller waits on: one query per domain).  Nodes
 * with an answer are on an LRU list bounded by max_entries; a node whose
 * answer is evicted stays only while its query runs.
 *
 * Answers are stored packed (name text, only the addresses there are: a
 * typical domain costs a few hundred octets, not the ~20 KB of a struct
 * mx_result) and reference-counted, so a hit queued for delivery holds
 * the answer it was given even if the entry is replaced or evicted before
 * the loop delivers it.  Every delivery unpacks a fresh struct mx_result:
 * hosts of equal preference reshuffled (resolver_order_mx(), so the
 * ordering rule has one home), then cut to the caller's max_mx.  The
 * resolver is always asked for RESOLVER_MAX_MX hosts.  A delivered
 * result's ttl is the seconds its answer stays fresh in this cache (0 for
 * a stale answer and for one that was not cached).
 *
 * What is kept, and for how long (seconds, ev_now() of the loop):
 *   MX_OK        clamp(result.ttl, min_ttl, max_ttl), max_ttl winning if
 *                min_ttl > max_ttl.  A result.ttl of 0 means some lookup
 *                failed (the resolver's degraded answer): delivered, never
 *                kept, and the previous answer stays as it was.  A record
 *                whose own TTL is 0 looks the same and is not kept either.
 *   MX_NXDOMAIN, MX_NULL_MX, MX_NO_MX   negative_ttl (RFC 2308; udns hands
 *                over no SOA minimum).  A definitive answer that may not be
 *                kept (a TTL of 0) drops the previous one.
 *   MX_DNS_ERROR never kept.  If the domain's answer is positive and at
 *                most stale_ttl past its expiry it is delivered instead,
 *                marked "stale answer; <why>" in detail (RFC 8767), and
 *                for DNSCACHE_STALE_RETRY (30) seconds after the failure
 *                lookups get that stale answer at once, without a query:
 *                one refresh attempt per domain per 30 s, the failure
 *                recheck interval RFC 8767 suggests.  The same pause
 *                follows a failed prefetch.
 * Negative answers are never served stale: a DNS failure must stay
 * "unknown", not turn an old NXDOMAIN into a hard "undeliverable".
 *
 * Prefetch: a hit with less than a tenth of the entry's TTL left is served
 * from the cache and starts one background query unless one runs already.
 *
 * Cancelling: dnscache_cancel() guarantees the callback never runs.  When
 * the last waiter of a query cancels, the query goes on and fills the
 * cache (the answer is usually asked for again soon); a query whose domain
 * was forgotten in the meantime is cancelled instead.  dnscache_free()
 * cancels every resolver query and drops every caller without a call.
 *
 * LIMITS: max_entries bounds the answers kept; nodes that only wait for a
 * query come on top (at most one per domain in flight).  Expired entries
 * leave by LRU or when looked up, not by a sweep, and count in the
 * "entries" statistic until then.  The resolver's own cap (RESOLVER_MAX_MX)
 * applies before caching, so a domain with more equal-preference exchanges
 * than that keeps one random subset for the life of the entry.  A
 * caller that joins the first query of a stale-but-servable domain waits
 * for that query to fail (up to the resolver's timeout) before it gets the
 * stale answer; later callers within 30 s do not wait.  dnscache_peek()'s
 * result lives in a buffer of the cache, valid until the next dnscache call.
 * A domain that does not fit DNSCACHE_KEY_MAX is passed to the resolver
 * uncached.  dnscache_set_params() applies to answers stored afterwards
 * (max_entries at once).  Free the dnscache before its resolver.
 *
 * SECURITY: keys are bounded, the hash is keyed, every packed answer is
 * parsed with bounds; domain text is made printable before it is logged.
 */
#include "autoconfig.h"

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "dnscache.h"
#include "siphash.h"
#include "log.h"
#include "resolver.h"

#define DNSCACHE_KEY_MAX 1024         /* octets of a domain key, with its NUL */
#define DNSCACHE_STALE_RETRY 30.0     /* seconds between refreshes of a stale entry */
#define DNSCACHE_PREFETCH_DIV 10.0    /* prefetch in the last 1/10 of the TTL */
#define DNSCACHE_MIN_BUCKETS 64

/* A packed answer: status, then
 *   detail_len(1) detail  n_hosts(1)
 *   per host: preference(4, big-endian) implicit(1) name_len(1) name
 *             n_addrs(1), per address: family(1: 4 or 6) and 4 or 16 octets */
struct answer {
	unsigned refs;
	enum mx_status status;
	size_t len;
	unsigned char data[];
};

struct flight;

struct node {
	struct node *hnext;           /* hash chain */
	struct node *lru_prev, *lru_next;
	struct flight *flight;        /* the query running for this domain */
	struct answer *ans;           /* NULL: nothing cached */
	ev_tstamp fetched, expires;
	ev_tstamp retry_at;           /* no refresh before this (after a failure) */
	unsigned ttl;                 /* effective TTL of ans, for the prefetch point */
	uint64_t hash;
	size_t key_len;
	char key[];
};

enum q_state { Q_READY, Q_WAITING, Q_DELIVERING };

struct dnscache_query {
	struct dnscache *dc;
	struct dnscache_query *prev, *next;   /* ready list or flight's waiters */
	enum q_state state;
	resolver_mx_cb cb;
	void *arg;
	unsigned max_mx;
	struct flight *flight;        /* Q_WAITING */
	struct answer *ans;           /* Q_READY: what to deliver */
	ev_tstamp expires;            /* Q_READY: of ans, for the delivered ttl */
	bool stale;                   /* Q_READY */
	uint64_t seq;                 /* Q_READY: order of arrival */
};

struct qlist {
	struct dnscache_query *head, *tail;
};

struct flight {
	struct dnscache *dc;
	struct flight *prev, *next;   /* dc->flights */
	struct node *node;            /* NULL: orphan, its answer is not kept */
	struct resolver_query *rq;    /* NULL once answered */
	struct qlist waiters;
	bool delivering;
};

struct dnscache {
	struct ev_loop *loop;
	struct resolver *r;
	struct dnscache_params p;
	struct node **buckets;
	size_t n_buckets;             /* a power of two */
	size_t n_nodes;
	struct node *lru_head, *lru_tail;
	size_t n_entries;             /* nodes with an answer */
	struct flight *flights;
	struct qlist ready;           /* hits waiting for the loop */
	uint64_t seq;
	ev_timer ready_timer;
	uint64_t hash_key[2];
	struct mx_result *peek;
	uint64_t hits, misses, prefetches, stale_served;
	unsigned depth;               /* nesting of our deliveries */
	bool closing;                 /* dnscache_free() ran inside a callback */
};

static void dc_enter(struct dnscache *dc);
static void dc_leave(struct dnscache *dc);
static void dc_destroy(struct dnscache *dc);
static bool make_key(const char *domain, char *key, size_t cap, size_t *len);
static struct node *node_find(struct dnscache *dc, const char *key, size_t len, uint64_t h);
static struct node *node_new(struct dnscache *dc, const char *key, size_t len, uint64_t h);
static void node_free(struct dnscache *dc, struct node *n);
static void node_drop_answer(struct dnscache *dc, struct node *n);
static void node_store(struct dnscache *dc, struct node *n, struct answer *a, unsigned ttl,
    ev_tstamp now);
static bool node_stale_ok(const struct dnscache *dc, const struct node *n, ev_tstamp now);
static void table_grow(struct dnscache *dc);
static void lru_unlink(struct dnscache *dc, struct node *n);
static void lru_push(struct dnscache *dc, struct node *n);
static void evict(struct dnscache *dc, size_t limit);
static unsigned effective_ttl(const struct dnscache *dc, const struct mx_result *res);
static struct answer *answer_pack(const struct mx_result *res);
static void answer_expand(const struct answer *a, unsigned max_mx, bool shuffle,
    struct mx_result *res);
static struct answer *answer_ref(struct answer *a);
static void answer_release(struct answer *a);
static void qlist_add(struct qlist *l, struct dnscache_query *q);
static void qlist_remove(struct qlist *l, struct dnscache_query *q);
static void ready_add(struct dnscache *dc, struct dnscache_query *q, struct answer *a,
    ev_tstamp expires, bool stale);
static void ready_cb(struct ev_loop *loop, ev_timer *w, int revents);
static struct flight *flight_start(struct dnscache *dc, struct node *n, const char *domain,
    const char *why);
static void flight_abort(struct dnscache *dc, struct flight *f);
static void flight_unlink(struct dnscache *dc, struct flight *f);
static void flight_done(const struct mx_result *res, void *arg);
static void deliver(struct dnscache_query *q, const struct answer *a, ev_tstamp expires,
    const char *stale_why);
static void deliver_raw(struct dnscache_query *q, const struct mx_result *res);
static unsigned secs_up(double d);
static long secs_down(double d);
static const char *status_name(enum mx_status s);
static const char *shown(const char *key, size_t len, char *buf, size_t cap);

/* ---- small helpers ---------------------------------------------------- */

/* Whole seconds, rounded up: a fresh entry never reports 0 s left. */
static unsigned
secs_up(double d)
{
	if (d <= 0)
		return 0;
	if (d >= (double)UINT32_MAX)
		return UINT32_MAX;
	unsigned t = (unsigned)d;
	return t < d ? t + 1 : t;
}

/* Whole seconds, rounded down (towards minus infinity). */
static long
secs_down(double d)
{
	long t = (long)d;
	return (double)t > d ? t - 1 : t;
}

static const char *
status_name(enum mx_status s)
{
	switch (s) {
	case MX_OK: return "ok";
	case MX_NXDOMAIN: return "nxdomain";
	case MX_NULL_MX: return "null_mx";
	case MX_NO_MX: return "no_mx";
	case MX_DNS_ERROR: return "dns_error";
	}
	return "?";
}

static const char *
shown(const char *key, size_t len, char *buf, size_t cap)
{
	return log_printable(buf, cap, key, len);
}

/*
 * The cache key: ASCII letters lowercased (the resolver asks the same
 * question for any case), one trailing dot dropped.  Octets >= 0x80 are
 * kept as they are; the resolver maps U-labels.  False if it does not fit.
 */
static bool
make_key(const char *domain, char *key, size_t cap, size_t *len)
{
	size_t n = strnlen(domain, cap);

	if (n >= cap)
		return false;
	if (n > 1 && domain[n - 1] == '.')
		n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)domain[i];
		key[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	key[n] = '\0';
	*len = n;
	return true;
}

/* ---- packed answers --------------------------------------------------- */

static struct answer *
answer_pack(const struct mx_result *res)
{
	size_t n_hosts = res->n_hosts < RESOLVER_MAX_MX ? res->n_hosts : RESOLVER_MAX_MX;
	size_t dlen = strnlen(res->detail, sizeof(res->detail) - 1);
	size_t len = 1 + dlen + 1;

	if (res->status != MX_OK)
		n_hosts = 0;
	for (size_t i = 0; i < n_hosts; i++) {
		const struct mx_host *h = &res->hosts[i];
		size_t na = h->n_addrs < RESOLVER_MAX_ADDRS ? h->n_addrs : RESOLVER_MAX_ADDRS;
		len += 4 + 1 + 1 + strnlen(h->name, 255) + 1;
		/* cppcheck 2.10 takes na, a min() of n_addrs, for 0 here. */
		/* cppcheck-suppress knownConditionTrueFalse */
		for (size_t j = 0; j < na; j++) {
			if (h->addrs[j].ss_family == AF_INET)
				len += 1 + 4;
			else if (h->addrs[j].ss_family == AF_INET6)
				len += 1 + 16;
		}
	}

	struct answer *a = malloc(sizeof(*a) + len);
	if (a == NULL)
		return NULL;
	a->refs = 1;
	a->status = res->status;
	a->len = len;

	unsigned char *p = a->data;
	*p++ = (unsigned char)dlen;
	memcpy(p, res->detail, dlen);
	p += dlen;
	*p++ = (unsigned char)n_hosts;
	for (size_t i = 0; i < n_hosts; i++) {
		const struct mx_host *h = &res->hosts[i];
		size_t na = h->n_addrs < RESOLVER_MAX_ADDRS ? h->n_addrs : RESOLVER_MAX_ADDRS;
		size_t nl = strnlen(h->name, 255);
		unsigned char *count;

		*p++ = (unsigned char)(h->preference >> 24);
		*p++ = (unsigned char)(h->preference >> 16);
		*p++ = (unsigned char)(h->preference >> 8);
		*p++ = (unsigned char)h->preference;
		*p++ = h->implicit ? 1 : 0;
		*p++ = (unsigned char)nl;
		memcpy(p, h->name, nl);
		p += nl;
		count = p++;
		*count = 0;
		/* cppcheck-suppress knownConditionTrueFalse ; as in answer_pack's sizing loop */
		for (size_t j = 0; j < na; j++) {
			const struct sockaddr_storage *ss = &h->addrs[j];
			if (ss->ss_family == AF_INET) {
				const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
				*p++ = 4;
				memcpy(p, &sin->sin_addr, 4);
				p += 4;
			} else if (ss->ss_family == AF_INET6) {
				const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
				*p++ = 6;
				memcpy(p, &sin6->sin6_addr, 16);
				p += 16;
			} else
				continue;
			(*count)++;
		}
	}
	if ((size_t)(p - a->data) != len) {   /* cannot happen: the two passes agree */
		free(a);
		return NULL;
	}
	return a;
}

/* Walk one packed host from *off; false if it overruns the answer. */
static bool
host_skip(const struct answer *a, size_t *off, unsigned *pref)
{
	const unsigned char *d = a->data;
	size_t p = *off;

	if (a->len - p < 6)
		return false;
	*pref = (unsigned)d[p] << 24 | (unsigned)d[p + 1] << 16 | (unsigned)d[p + 2] << 8 |
	    d[p + 3];
	size_t nl = d[p + 5];
	p += 6;
	if (a->len - p < nl + 1)
		return false;
	p += nl;
	size_t na = d[p++];
	if (na > RESOLVER_MAX_ADDRS)
		return false;
	for (size_t j = 0; j < na; j++) {
		if (p >= a->len)
			return false;
		size_t al = d[p] == 4 ? 4 : d[p] == 6 ? 16 : 0;
		if (al == 0 || a->len - p - 1 < al)
			return false;
		p += 1 + al;
	}
	*off = p;
	return true;
}

/* Decode a host host_skip() has already walked. */
static void
host_decode(const struct answer *a, size_t off, struct mx_host *h)
{
	const unsigned char *d = a->data + off;
	size_t nl = d[5];

	h->preference = (unsigned)d[0] << 24 | (unsigned)d[1] << 16 | (unsigned)d[2] << 8 | d[3];
	h->implicit = d[4] != 0;
	memcpy(h->name, d + 6, nl);
	h->name[nl] = '\0';
	d += 6 + nl;
	size_t na = *d++;
	h->n_addrs = 0;
	for (size_t j = 0; j < na; j++) {
		struct sockaddr_storage *ss = &h->addrs[h->n_addrs++];
		if (*d == 4) {
			struct sockaddr_in *sin = (struct sockaddr_in *)ss;
			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, d + 1, 4);
			d += 1 + 4;
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, d + 1, 16);
			d += 1 + 16;
		}
	}
}

/*
 * Unpack into a whole struct mx_result: hosts of equal preference
 * reshuffled when asked (every delivery spreads load anew), then at most
 * max_mx of them (0: RESOLVER_MAX_MX, as the resolver reads it).
 */
static void
answer_expand(const struct answer *a, unsigned max_mx, bool shuffle, struct mx_result *res)
{
	size_t off[RESOLVER_MAX_MX];
	struct mx_record recs[RESOLVER_MAX_MX];
	const unsigned char *d = a->data;
	size_t p = 0, n_hosts, cap;

	memset(res, 0, sizeof(*res));
	res->status = a->status;
	if (a->len < 1 || a->len - 1 < d[0] || d[0] >= sizeof(res->detail))
		goto corrupt;
	memcpy(res->detail, d + 1, d[0]);
	p = 1 + (size_t)d[0];
	if (p >= a->len)
		goto corrupt;
	n_hosts = d[p++];
	if (n_hosts > RESOLVER_MAX_MX)
		goto corrupt;
	for (size_t i = 0; i < n_hosts; i++) {
		off[i] = p;
		if (!host_skip(a, &p, &recs[i].preference))
			goto corrupt;
		/* The record's name carries the host's index through the shuffle. */
		snprintf(recs[i].name, sizeof(recs[i].name), "%zu", i);
	}
	if (p != a->len)
		goto corrupt;
	if (shuffle)
		resolver_order_mx(recs, n_hosts, NULL);
	cap = max_mx == 0 || max_mx > RESOLVER_MAX_MX ? RESOLVER_MAX_MX : max_mx;
	for (size_t i = 0; i < n_hosts && res->n_hosts < cap; i++) {
		size_t idx = strtoul(recs[i].name, NULL, 10);
		if (idx >= n_hosts)
			goto corrupt;
		host_decode(a, off[idx], &res->hosts[res->n_hosts++]);
	}
	return;
corrupt:
	memset(res, 0, sizeof(*res));
	res->status = MX_DNS_ERROR;
	snprintf(res->detail, sizeof(res->detail), "dnscache: corrupt entry");
}

static struct answer *
answer_ref(struct answer *a)
{
	a->refs++;
	return a;
}

static void
answer_release(struct answer *a)
{
	if (a != NULL && --a->refs == 0)
		free(a);
}

/* ---- the table and the LRU list --------------------------------------- */

static struct node *
node_find(struct dnscache *dc, const char *key, size_t len, uint64_t h)
{
	for (struct node *n = dc->buckets[h & (dc->n_buckets - 1)]; n != NULL; n = n->hnext)
		if (n->hash == h && n->key_len == len && memcmp(n->key, key, len) == 0)
			return n;
	return NULL;
}

static void
table_grow(struct dnscache *dc)
{
	size_t nb = dc->n_buckets * 2;
	struct node **b;

	if (nb < dc->n_buckets || nb > SIZE_MAX / sizeof(*b))
		return;
	/* Out of memory: longer chains, still correct. */
	if ((b = calloc(nb, sizeof(*b))) == NULL)
		return;
	for (size_t i = 0; i < dc->n_buckets; i++) {
		struct node *n = dc->buckets[i];
		while (n != NULL) {
			struct node *next = n->hnext;
			n->hnext = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
			n = next;
		}
	}
	free(dc->buckets);
	dc->buckets = b;
	dc->n_buckets = nb;
}

static struct node *
node_new(struct dnscache *dc, const char *key, size_t len, uint64_t h)
{
	struct node *n = calloc(1, sizeof(*n) + len + 1);

	if (n == NULL)
		return NULL;
	memcpy(n->key, key, len);
	n->key[len] = '\0';
	n->key_len = len;
	n->hash = h;
	n->hnext = dc->buckets[h & (dc->n_buckets - 1)];
	dc->buckets[h & (dc->n_buckets - 1)] = n;
	if (++dc->n_nodes > dc->n_buckets)
		table_grow(dc);
	return n;
}

/* The node must hold neither an answer nor a query. */
static void
node_free(struct dnscache *dc, struct node *n)
{
	struct node **pp = &dc->buckets[n->hash & (dc->n_buckets - 1)];

	while (*pp != NULL && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp == n)
		*pp = n->hnext;
	dc->n_nodes--;
	free(n);
}

static void
lru_unlink(struct dnscache *dc, struct node *n)
{
	if (n->lru_prev != NULL)
		n->lru_prev->lru_next = n->lru_next;
	else
		dc->lru_head = n->lru_next;
	if (n->lru_next != NULL)
		n->lru_next->lru_prev = n->lru_prev;
	else
		dc->lru_tail = n->lru_prev;
	n->lru_prev = n->lru_next = NULL;
}

static void
lru_push(struct dnscache *dc, struct node *n)
{
	n->lru_prev = NULL;
	n->lru_next = dc->lru_head;
	if (dc->lru_head != NULL)
		dc->lru_head->lru_prev = n;
	else
		dc->lru_tail = n;
	dc->lru_head = n;
}

static void
node_drop_answer(struct dnscache *dc, struct node *n)
{
	if (n->ans == NULL)
		return;
	lru_unlink(dc, n);
	answer_release(n->ans);
	n->ans = NULL;
	dc->n_entries--;
}

/* Takes over the caller's reference to a. */
static void
node_store(struct dnscache *dc, struct node *n, struct answer *a, unsigned ttl, ev_tstamp now)
{
	node_drop_answer(dc, n);
	n->ans = a;
	n->fetched = now;
	n->expires = now + ttl;
	n->ttl = ttl;
	n->retry_at = 0;
	lru_push(dc, n);
	dc->n_entries++;
	evict(dc, dc->p.max_entries);
}

static void
evict(struct dnscache *dc, size_t limit)
{
	while (dc->n_entries > limit && dc->lru_tail != NULL) {
		struct node *n = dc->lru_tail;
		node_drop_answer(dc, n);
		if (n->flight == NULL)
			node_free(dc, n);
	}
}

/* An expired answer that may still stand in for a failed refresh. */
static bool
node_stale_ok(const struct dnscache *dc, const struct node *n, ev_tstamp now)
{
	return n->ans != NULL && n->ans->status == MX_OK &&
	    now < n->expires + (ev_tstamp)dc->p.stale_ttl;
}

static unsigned
effective_ttl(const struct dnscache *dc, const struct mx_result *res)
{
	unsigned t;

	switch (res->status) {
	case MX_OK:
		/* 0: some lookup failed; a partial answer is not kept. */
		if (res->ttl == 0)
			return 0;
		t = res->ttl;
		if (t < dc->p.min_ttl)
			t = dc->p.min_ttl;
		if (t > dc->p.max_ttl)
			t = dc->p.max_ttl;
		return t;
	case MX_NXDOMAIN:
	case MX_NULL_MX:
	case MX_NO_MX:
		return dc->p.negative_ttl;
	case MX_DNS_ERROR:
		break;
	}
	return 0;
}

/* ---- callers ---------------------------------------------------------- */

static void
qlist_add(struct qlist *l, struct dnscache_query *q)
{
	q->next = NULL;
	q->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = q;
	else
		l->head = q;
	l->tail = q;
}

static void
qlist_remove(struct qlist *l, struct dnscache_query *q)
{
	/* q is on l: first exactly when it has no predecessor, last exactly
	 * when it has no successor.  Said here for the static analyzer too,
	 * which cannot know it and would see the loops that drain a list
	 * from its head reach a freed head again. */
	assert((q->prev == NULL) == (l->head == q));
	assert((q->next == NULL) == (l->tail == q));
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		l->head = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	else
		l->tail = q->prev;
	q->prev = q->next = NULL;
}

/* A cached answer for q, delivered from the loop, never from the caller. */
static void
ready_add(struct dnscache *dc, struct dnscache_query *q, struct answer *a, ev_tstamp expires,
    bool stale)
{
	q->state = Q_READY;
	q->ans = answer_ref(a);
	q->expires = expires;
	q->stale = stale;
	q->seq = ++dc->seq;
	qlist_add(&dc->ready, q);
	if (!ev_is_active(&dc->ready_timer)) {
		ev_timer_set(&dc->ready_timer, 0., 0.);
		ev_timer_start(dc->loop, &dc->ready_timer);
	}
}

static void
ready_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dnscache *dc = w->data;
	/* Hits queued by these callbacks wait for the next iteration. */
	uint64_t last = dc->seq;
	struct dnscache_query *q;

	dc_enter(dc);
	while (!dc->closing && (q = dc->ready.head) != NULL && q->seq <= last) {
		qlist_remove(&dc->ready, q);
		deliver(q, q->ans, q->expires, q->stale ? "last refresh failed" : NULL);
		answer_release(q->ans);
		free(q);
	}
	dc_leave(dc);
}

static void
deliver(struct dnscache_query *q, const struct answer *a, ev_tstamp expires,
    const char *stale_why)
{
	struct mx_result res;         /* ~20 KB, as in the resolver */
	ev_tstamp now = ev_now(q->dc->loop);

	answer_expand(a, q->max_mx, true, &res);
	res.ttl = stale_why == NULL ? secs_up(expires - now) : 0;
	if (stale_why != NULL)
		snprintf(res.detail, sizeof(res.detail), "stale answer; %.100s", stale_why);
	q->state = Q_DELIVERING;
	q->cb(&res, q->arg);
}

/* The resolver's result as it came, when it could not be packed. */
static void
deliver_raw(struct dnscache_query *q, const struct mx_result *res)
{
	struct mx_result copy = *res;
	size_t cap = q->max_mx == 0 || q->max_mx > RESOLVER_MAX_MX ? RESOLVER_MAX_MX : q->max_mx;

	if (copy.n_hosts > cap)
		copy.n_hosts = cap;
	copy.ttl = 0;
	q->state = Q_DELIVERING;
	q->cb(&copy, q->arg);
}

/* ---- queries to the resolver ------------------------------------------ */

static struct flight *
flight_start(struct dnscache *dc, struct node *n, const char *domain, const char *why)
{
	struct flight *f = calloc(1, sizeof(*f));
	char buf[80];

	if (f == NULL)
		return NULL;
	f->dc = dc;
	f->rq = resolver_mx(dc->r, domain, RESOLVER_MAX_MX, flight_done, f);
	if (f->rq == NULL) {
		free(f);
		return NULL;
	}
	f->next = dc->flights;
	if (dc->flights != NULL)
		dc->flights->prev = f;
	dc->flights = f;
	if (n != NULL) {
		n->flight = f;
		f->node = n;
	}
	log_debug("dnscache query domain=%s why=%s", shown(domain, strlen(domain), buf,
	    sizeof(buf)), why);
	return f;
}

static void
flight_unlink(struct dnscache *dc, struct flight *f)
{
	if (f->prev != NULL)
		f->prev->next = f->next;
	else
		dc->flights = f->next;
	if (f->next != NULL)
		f->next->prev = f->prev;
	f->prev = f->next = NULL;
}

/* Nobody wants the answer: take the query back from the resolver. */
static void
flight_abort(struct dnscache *dc, struct flight *f)
{
	if (f->rq != NULL)
		resolver_cancel(f->rq);
	f->rq = NULL;
	if (f->node != NULL)
		f->node->flight = NULL;
	f->node = NULL;
	flight_unlink(dc, f);
	free(f);
}

static void
flight_done(const struct mx_result *res, void *arg)
{
	struct flight *f = arg;
	struct dnscache *dc = f->dc;
	struct node *n = f->node;
	ev_tstamp now = ev_now(dc->loop);
	struct answer *a = NULL;
	ev_tstamp expires = 0;
	bool stale = false;
	char buf[80];
	struct dnscache_query *q;

	dc_enter(dc);
	f->rq = NULL;                 /* the resolver frees it after we return */
	f->node = NULL;
	if (n != NULL)
		n->flight = NULL;         /* a caller from now on starts a new query */

	if (res->status == MX_DNS_ERROR) {
		if (n != NULL && n->ans != NULL && (now < n->expires || node_stale_ok(dc, n, now))) {
			/* RFC 8767: the old answer, and a pause before the next try. */
			a = answer_ref(n->ans);
			expires = n->expires;
			stale = now >= n->expires;
			n->retry_at = now + DNSCACHE_STALE_RETRY;
			log_debug("dnscache stale domain=%s age=%ld detail=\"%s\"",
			    shown(n->key, n->key_len, buf, sizeof(buf)), secs_down(now - n->fetched),
			    res->detail);
		} else
			a = answer_pack(res);
	} else {
		unsigned ttl = effective_ttl(dc, res);
		bool partial = res->status == MX_OK && res->ttl == 0;

		a = answer_pack(res);
		if (n != NULL && a != NULL && ttl > 0 && dc->p.max_entries > 0) {
			node_store(dc, n, answer_ref(a), ttl, now);
			expires = n->expires;
			log_debug("dnscache store domain=%s status=%s ttl=%u hosts=%zu",
			    shown(n->key, n->key_len, buf, sizeof(buf)), status_name(res->status),
			    ttl, res->n_hosts);
		} else if (n != NULL && !partial)
			node_drop_answer(dc, n);   /* the answer changed and may not be kept */
	}
	if (n != NULL && n->ans == NULL)
		node_free(dc, n);

	/* Each waiter gets its own copy and shuffle; any of them may cancel
	 * the others, start lookups, forget, or free the cache. */
	f->delivering = true;
	while (!dc->closing && (q = f->waiters.head) != NULL) {
		qlist_remove(&f->waiters, q);
		if (a != NULL) {
			if (stale)
				dc->stale_served++;
			deliver(q, a, expires, stale ? res->detail : NULL);
		} else
			deliver_raw(q, res);
		free(q);
	}
	answer_release(a);
	flight_unlink(dc, f);
	free(f);
	dc_leave(dc);
}

/* ---- lifetime --------------------------------------------------------- */

struct dnscache *
dnscache_new(struct ev_loop *loop, struct resolver *r, const struct dnscache_params *p)
{
	struct dnscache *dc;

	if (loop == NULL || r == NULL || p == NULL)
		return NULL;
	dc = calloc(1, sizeof(*dc));
	if (dc == NULL)
		return NULL;
	dc->n_buckets = DNSCACHE_MIN_BUCKETS;
	dc->buckets = calloc(dc->n_buckets, sizeof(*dc->buckets));
	if (dc->buckets == NULL) {
		free(dc);
		return NULL;
	}
	dc->loop = loop;
	dc->r = r;
	dc->p = *p;
	siphash_random_key(dc->hash_key);
	ev_timer_init(&dc->ready_timer, ready_cb, 0., 0.);
	dc->ready_timer.data = dc;
	log_debug("dnscache new min_ttl=%u max_ttl=%u negative_ttl=%u stale_ttl=%u max_entries=%zu",
	    p->min_ttl, p->max_ttl, p->negative_ttl, p->stale_ttl, p->max_entries);
	return dc;
}

static void
dc_destroy(struct dnscache *dc)
{
	ev_timer_stop(dc->loop, &dc->ready_timer);
	free(dc->buckets);
	free(dc->peek);
	free(dc);
}

void
dnscache_free(struct dnscache *dc)
{
	struct dnscache_query *q;

	if (dc == NULL || dc->closing)
		return;
	dc->closing = true;
	ev_timer_stop(dc->loop, &dc->ready_timer);
	while ((q = dc->ready.head) != NULL) {
		qlist_remove(&dc->ready, q);
		answer_release(q->ans);
		free(q);
	}
	struct flight *f = dc->flights;
	while (f != NULL) {
		struct flight *next = f->next;
		while ((q = f->waiters.head) != NULL) {
			qlist_remove(&f->waiters, q);
			free(q);
		}
		/* The one being delivered is freed by its own loop. */
		if (!f->delivering)
			flight_abort(dc, f);
		f = next;
	}
	for (size_t i = 0; i < dc->n_buckets; i++) {
		struct node *n = dc->buckets[i];
		while (n != NULL) {
			struct node *next = n->hnext;
			answer_release(n->ans);
			free(n);
			n = next;
		}
		dc->buckets[i] = NULL;
	}
	dc->lru_head = dc->lru_tail = NULL;
	dc->n_nodes = dc->n_entries = 0;
	if (dc->depth == 0)
		dc_destroy(dc);
}

/* Our deliveries run user code that may free the cache: defer that. */
static void
dc_enter(struct dnscache *dc)
{
	dc->depth++;
}

static void
dc_leave(struct dnscache *dc)
{
	if (--dc->depth == 0 && dc->closing)
		dc_destroy(dc);
}

void
dnscache_set_params(struct dnscache *dc, const struct dnscache_params *p)
{
	dc->p = *p;
	evict(dc, dc->p.max_entries);
}

/* ---- the verbs -------------------------------------------------------- */

struct dnscache_query *
dnscache_mx(struct dnscache *dc, const char *domain, unsigned max_mx, resolver_mx_cb cb,
    void *arg)
{
	char key[DNSCACHE_KEY_MAX];
	size_t klen;
	struct dnscache_query *q;
	struct node *n;
	ev_tstamp now = ev_now(dc->loop);

	if (dc->closing)
		return NULL;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return NULL;
	q->dc = dc;
	q->cb = cb;
	q->arg = arg;
	q->max_mx = max_mx;

	if (!make_key(domain, key, sizeof(key), &klen)) {
		/* Far too long for any domain: the resolver says so, uncached. */
		struct flight *f = flight_start(dc, NULL, domain, "uncacheable");
		if (f == NULL) {
			free(q);
			return NULL;
		}
		dc->misses++;
		q->state = Q_WAITING;
		q->flight = f;
		qlist_add(&f->waiters, q);
		return q;
	}

	uint64_t h = siphash13(dc->hash_key[0], dc->hash_key[1], key, klen);
	n = node_find(dc, key, klen, h);
	if (n != NULL && n->ans != NULL) {
		if (now < n->expires) {
			dc->hits++;
			lru_unlink(dc, n);
			lru_push(dc, n);
			ready_add(dc, q, n->ans, n->expires, false);
			if (n->expires - now < n->ttl / DNSCACHE_PREFETCH_DIV && n->flight == NULL &&
			    now >= n->retry_at && flight_start(dc, n, n->key, "prefetch") != NULL)
				dc->prefetches++;
			return q;
		}
		if (node_stale_ok(dc, n, now)) {
			if (now < n->retry_at) {
				/* A refresh failed moments ago: do not hammer. */
				dc->stale_served++;
				lru_unlink(dc, n);
				lru_push(dc, n);
				ready_add(dc, q, n->ans, n->expires, true);
				return q;
			}
		} else {
			node_drop_answer(dc, n);
			if (n->flight == NULL) {
				node_free(dc, n);
				n = NULL;
			}
		}
	}

	if (n == NULL && (n = node_new(dc, key, klen, h)) == NULL) {
		free(q);
		return NULL;
	}
	struct flight *f = n->flight;
	if (f == NULL &&
	    (f = flight_start(dc, n, n->key, n->ans != NULL ? "expired" : "miss")) == NULL) {
		if (n->ans == NULL)
			node_free(dc, n);
		free(q);
		return NULL;
	}
	dc->misses++;
	q->state = Q_WAITING;
	q->flight = f;
	qlist_add(&f->waiters, q);
	return q;
}

void
dnscache_cancel(struct dnscache_query *q)
{
	if (q == NULL)
		return;
	struct dnscache *dc = q->dc;
	switch (q->state) {
	case Q_DELIVERING:
		/* Its callback is running: the handle dies when that returns. */
		return;
	case Q_READY:
		qlist_remove(&dc->ready, q);
		answer_release(q->ans);
		if (dc->ready.head == NULL)
			ev_timer_stop(dc->loop, &dc->ready_timer);
		break;
	case Q_WAITING: {
		struct flight *f = q->flight;
		qlist_remove(&f->waiters, q);
		/* A query for a cached domain goes on to fill the cache. */
		if (f->waiters.head == NULL && f->node == NULL && !f->delivering)
			flight_abort(dc, f);
		break;
	}
	}
	free(q);
}

/* True when a cached answer was dropped; a running query is disowned. */
bool
dnscache_forget(struct dnscache *dc, const char *domain)
{
	char key[DNSCACHE_KEY_MAX];
	size_t klen;
	struct node *n;
	bool had;

	if (!make_key(domain, key, sizeof(key), &klen))
		return false;
	n = node_find(dc, key, klen, siphash13(dc->hash_key[0], dc->hash_key[1], key, klen));
	if (n == NULL)
		return false;
	had = n->ans != NULL;
	node_drop_answer(dc, n);
	if (n->flight != NULL) {
		/* Its waiters get the answer, the cache does not keep it: it may
		 * predate whatever the FORGET was for. */
		struct flight *f = n->flight;
		f->node = NULL;
		n->flight = NULL;
		if (f->waiters.head == NULL)
			flight_abort(dc, f);
	}
	node_free(dc, n);
	return had;
}

const struct mx_result *
dnscache_peek(struct dnscache *dc, const char *domain, long *age, long *ttl_left)
{
	char key[DNSCACHE_KEY_MAX];
	size_t klen;
	struct node *n;
	ev_tstamp now = ev_now(dc->loop);

	if (!make_key(domain, key, sizeof(key), &klen))
		return NULL;
	n = node_find(dc, key, klen, siphash13(dc->hash_key[0], dc->hash_key[1], key, klen));
	if (n == NULL || n->ans == NULL || (now >= n->expires && !node_stale_ok(dc, n, now)))
		return NULL;
	if (dc->peek == NULL && (dc->peek = malloc(sizeof(*dc->peek))) == NULL)
		return NULL;
	answer_expand(n->ans, RESOLVER_MAX_MX, false, dc->peek);
	dc->peek->ttl = secs_up(n->expires - now);
	if (age != NULL)
		*age = secs_down(now - n->fetched);
	if (ttl_left != NULL)
		*ttl_left = now < n->expires ? (long)secs_up(n->expires - now) :
		    secs_down(n->expires - now);
	return dc->peek;
}

void
dnscache_stats(const struct dnscache *dc, struct dnscache_stats *out)
{
	out->hits = dc->hits;
	out->misses = dc->misses;
	out->prefetches = dc->prefetches;
	out->stale_served = dc->stale_served;
	out->entries = dc->n_entries;
}
