/*
 * engine — cache, single-flight, batching, domain knowledge, greylisting
 * retries and persistence around the verifier.  See engine.h.
 *
 * A VERIFY meets, in order: the verdict cache (a fresh entry answers at
 * once; one past its refresh age answers and starts a background probe),
 * the table of flights (an address already being probed gets one more
 * waiter, not one more RCPT), the inflight cap (busy), and finally a batch
 * of its domain that is still forming (or a new one).  A batch is formed
 * until its first session starts, so addresses of one domain asked close
 * together share sessions.
 *
 * When a flight's answer is greylisting, the flight stays: the answer is
 * cached until the retry, a timer brings the address back after
 * smtp.greylist_delay (doubled at each further retry), and the domain
 * remembers the random address so the retry asks the same triplet.  The
 * result lands in the cache; nobody needs to ask again.
 *
 * Persistence: every stored or dropped verdict and every change of domain
 * facts is queued to the store.  A batch's verdicts are committed in one
 * transaction before its waiters hear them, so what a client was told
 * survives kill -9; other changes (evictions, FORGET, expiry) within
 * STORE_FLUSH_INTERVAL, and everything at exit.  Start-up reads it back.
 */
#include "autoconfig.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "address.h"
#include "cache.h"
#include "dnscache.h"
#include "domain.h"
#include "engine.h"
#include "hmap.h"
#include "log.h"
#include "politeness.h"
#include "resolver.h"
#include "store.h"
#include "verify.h"

#define STORE_FLUSH_INTERVAL 1.0 /* seconds a change may wait for the disk */
#define RECORD_MAX 1024

struct engine_waiter {
	struct engine_waiter *next, *prev;
	struct flight *flight;
	engine_cb cb;
	void *arg;
};

struct flight {
	struct hmap_node node;
	struct engine *e;
	char key[CACHE_KEY_MAX];
	size_t key_len;
	char address[ADDRESS_MAX + 1];
	char domain[ADDRESS_DOMAIN_MAX + 1];
	bool utf8;
	struct engine_waiter *waiters;
	bool in_batch;
	bool final;                /* settled, not coming back for a retry */
	struct flight *settled;    /* next in its batch's list of answers to give */
	struct ctl_result result;  /* settled, waiting for the store's commit */
	ev_tstamp started;         /* for ms= */
	unsigned grey_attempts;
	ev_timer retry;            /* named timeout: the greylisting retry */
};

/* A batch that is still taking addresses, findable by its domain. */
struct forming {
	struct hmap_node node;     /* in engine.forming while it takes addresses */
	struct forming *prev, *next; /* every batch alive, for engine_free */
	struct engine *e;
	struct verify_batch *batch;
	bool listed;
	struct flight *settled, **settled_tail; /* verdicts given when the batch ends */
	char key[ADDRESS_DOMAIN_MAX + 3];
	char domain[ADDRESS_DOMAIN_MAX + 1]; /* lowercased */
};

struct engine {
	struct ev_loop *loop;
	struct resolver *resolver;
	struct dnscache *dns;
	struct politeness *polite;
	struct verifier *verifier;
	struct cache *cache;
	struct domains *domains;
	struct store *store;
	struct hmap flights;
	struct hmap forming;
	struct forming *batches;
	ev_timer flush;
	/* Group commit: verdicts settled during one loop iteration wait here,
	 * and commit() writes them in one transaction just before the loop
	 * sleeps again (an ev_prepare), then answers them.  Under load one
	 * fdatasync (~4 ms here) then serves every batch that ended meanwhile,
	 * not one batch each. */
	struct flight *uncommitted, **uncommitted_tail;
	struct flight *committing; /* in the batch the store's writer holds */
	ev_prepare commit_w;
	struct {
		unsigned positive_ttl, negative_ttl, tempfail_ttl, catch_all_ttl;
		unsigned positive_refresh, negative_refresh;
		unsigned dns_negative_ttl;
		unsigned max_inflight;
		double greylist_delay;
		unsigned greylist_retries;
	} cfg;
	struct engine_counters n;
	int64_t load_now;          /* start-up: one clock reading for the whole load */
};

static const struct verify_batch_ops batch_ops;
static void enqueue(struct flight *f);
static void learn(struct engine *e, const char *domain, const struct verify_domain_news *news,
    int64_t now);

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

static void
lower_copy(char *dst, const char *src, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] + 32) : src[i];
	dst[len] = '\0';
}

/* ---- persistence --------------------------------------------------------- */

static void
schedule_flush(struct engine *e)
{
	if (e->store != NULL && !ev_is_active(&e->flush))
		ev_timer_start(e->loop, &e->flush);
}

/* Changes no client waits for (evictions, FORGET, domain facts) go to
 * disk within STORE_FLUSH_INTERVAL, through the same writer as verdicts. */
static void
on_flush(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct engine *e = w->data;

	if (store_committing(e->store)) {
		ev_timer_start(loop, &e->flush); /* after the commit that is out */
		return;
	}
	if (store_pending(e->store) > 0 && store_commit_start(e->store))
		e->n.commits++;
	else if (store_pending(e->store) > 0)
		ev_timer_start(loop, &e->flush);
}

static void
persist_verdict(struct engine *e, const char *key, size_t klen, const struct verdict_entry *v)
{
	unsigned char rec[RECORD_MAX];
	size_t n;

	if (e->store == NULL || (n = verdict_entry_pack(v, rec, sizeof(rec))) == 0)
		return;
	if (store_put(e->store, STORE_VERDICTS, key, klen, rec, n) != 0)
		e->n.store_errors++;
	schedule_flush(e);
}

static void
persist_domain(struct engine *e, const char *domain, const struct domain_facts *f)
{
	unsigned char rec[RECORD_MAX];
	char key[ADDRESS_DOMAIN_MAX + 1];
	size_t n, len = strlen(domain);

	if (e->store == NULL || len > ADDRESS_DOMAIN_MAX ||
	    (n = domain_facts_pack(f, rec, sizeof(rec))) == 0)
		return;
	lower_copy(key, domain, len);
	if (store_put(e->store, STORE_DOMAINS, key, len, rec, n) != 0)
		e->n.store_errors++;
	schedule_flush(e);
}

static void
on_cache_drop(const char *key, size_t key_len, void *arg)
{
	struct engine *e = arg;

	if (e->store != NULL) {
		if (store_del(e->store, STORE_VERDICTS, key, key_len) != 0)
			e->n.store_errors++;
		schedule_flush(e);
	}
}

static bool
load_verdict(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct engine *e = arg;
	struct verdict_entry v;

	if (klen == 0 || klen >= CACHE_KEY_MAX || !verdict_entry_unpack(val, vlen, &v))
		return false; /* damaged: dropped from the store */
	if (v.expires <= e->load_now)
		return false;
	return cache_load(e->cache, key, klen, &v, e->load_now) != CACHE_NOMEM;
}

static bool
load_domain(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct engine *e = arg;
	struct domain_facts f, *d;
	char name[ADDRESS_DOMAIN_MAX + 1];

	if (klen == 0 || klen > ADDRESS_DOMAIN_MAX || !domain_facts_unpack(val, vlen, &f))
		return false;
	memcpy(name, key, klen);
	name[klen] = '\0';
	d = domains_get(e->domains, name, true);
	if (d == NULL)
		return false;
	*d = f;
	return true;
}

/* ---- verdicts ------------------------------------------------------------- */

/* A NUL-terminated field into another, cut to fit: what snprintf("%s")
 * did, without the format interpreter on every cache hit. */
static void
copy_field(char *dst, size_t cap, const char *src, size_t src_cap)
{
	size_t n = strnlen(src, src_cap);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void
entry_to_result(const struct verdict_entry *v, int64_t now, struct ctl_result *r)
{
	ctl_result_init(r, v->reason);
	r->code = v->code;
	copy_field(r->enhanced, sizeof(r->enhanced), v->enhanced, sizeof(v->enhanced));
	copy_field(r->mx, sizeof(r->mx), v->mx, sizeof(v->mx));
	r->catch_all = v->catch_all;
	r->write_catch_all = v->mx[0] != '\0';
	r->tls = v->tls;
	copy_field(r->text, sizeof(r->text), v->text, sizeof(v->text));
	r->cached = TRI_YES;
	r->age = now > v->made ? (long)(now - v->made) : 0;
}

static bool
storable(enum reason r)
{
	return r != REASON_PENDING && r != REASON_BUSY && r != REASON_NOT_CACHED &&
	    r != REASON_SYNTAX;
}

static void
remember(struct engine *e, struct flight *f, const struct ctl_result *r, int64_t expires)
{
	struct verdict_entry v;
	int64_t now = now_s();

	memset(&v, 0, sizeof(v));
	v.reason = r->reason;
	v.code = r->code;
	snprintf(v.enhanced, sizeof(v.enhanced), "%s", r->enhanced);
	snprintf(v.mx, sizeof(v.mx), "%s", r->mx);
	v.catch_all = r->catch_all;
	v.tls = r->tls;
	snprintf(v.text, sizeof(v.text), "%s", r->text);
	v.made = now;
	switch (cache_kind_of(r->reason)) {
	case CACHE_POSITIVE:
		v.expires = now + e->cfg.positive_ttl;
		v.refresh = now + e->cfg.positive_refresh;
		break;
	case CACHE_NEGATIVE:
		v.expires = now + e->cfg.negative_ttl;
		v.refresh = now + e->cfg.negative_refresh;
		/* A verdict that rests on a DNS answer lives no longer than the
		 * answer: a domain set up meanwhile must not stay undeliverable. */
		if ((r->reason == REASON_NO_DOMAIN || r->reason == REASON_NULL_MX ||
		    r->reason == REASON_NO_MX) && e->cfg.dns_negative_ttl < e->cfg.negative_ttl)
			v.expires = v.refresh = now + e->cfg.dns_negative_ttl;
		break;
	case CACHE_TEMPORARY:
		v.expires = now + e->cfg.tempfail_ttl;
		v.refresh = v.expires;
		break;
	}
	if (expires > 0)
		v.expires = v.refresh = expires;
	if (v.refresh > v.expires)
		v.refresh = v.expires;
	if (v.expires <= now)
		return; /* a TTL of 0: this kind is not cached */
	if (cache_store(e->cache, f->key, f->key_len, &v, now) == CACHE_STORED)
		persist_verdict(e, f->key, f->key_len, &v);
}

/* ---- flights -------------------------------------------------------------- */

static void
flight_free(struct flight *f)
{
	struct engine *e = f->e;

	ev_timer_stop(e->loop, &f->retry);
	if (f->node.key != NULL)
		hmap_del(&e->flights, &f->node);
	while (f->waiters != NULL) {
		struct engine_waiter *w = f->waiters;
		f->waiters = w->next;
		free(w);
	}
	free(f);
}

/* Call back a detached list of waiters.  Detached first, so that a
 * request made from inside a callback joins afresh instead of hearing
 * this answer. */
static void
call_waiters(struct engine_waiter *w, const struct ctl_result *r)
{
	while (w != NULL) {
		struct engine_waiter *next = w->next;
		engine_cb cb = w->cb;
		void *arg = w->arg;
		free(w);
		cb(r, arg);
		w = next;
	}
}

static void
answer_waiters(struct flight *f, const struct ctl_result *r)
{
	struct engine_waiter *w = f->waiters;

	f->waiters = NULL;
	call_waiters(w, r);
}

static void
on_grey_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct flight *f = w->data;

	f->e->n.greylist_retries++;
	f->started = ev_now(loop);
	log_info("engine greylist retry address=%s attempt=%u", f->address, f->grey_attempts);
	enqueue(f);
}

/* A batch delivered this flight's verdict: remember it (or schedule the
 * greylisting retry).  The waiters hear it in flight_answer(), once the
 * batch's verdicts are committed to the store. */
static void
flight_settle(struct flight *f, const struct ctl_result *result)
{
	struct engine *e = f->e;
	struct ctl_result *r = &f->result;

	*r = *result;
	r->cached = TRI_NO;
	r->ms = (long)((ev_now(e->loop) - f->started) * 1000.);
	f->in_batch = false;
	if (r->reason == REASON_GREYLISTED && f->grey_attempts < e->cfg.greylist_retries) {
		double delay = e->cfg.greylist_delay;
		for (unsigned i = 0; i < f->grey_attempts; i++)
			delay *= 2.;
		f->grey_attempts++;
		/* Until the retry, a VERIFY hears "greylisted" from the cache. */
		remember(e, f, r, now_s() + (int64_t)delay + 1);
		ev_timer_set(&f->retry, delay, 0.);
		ev_timer_start(e->loop, &f->retry);
		log_info("engine greylisted address=%s retry_in=%.0fs attempt=%u", f->address,
		    delay, f->grey_attempts);
		f->final = false;
		return;
	}
	if (storable(r->reason))
		remember(e, f, r, 0);
	/* Out of the table before anyone hears the answer, so a request made
	 * from inside a callback starts afresh instead of joining the past. */
	hmap_del(&e->flights, &f->node);
	f->node.key = NULL;
	f->final = true;
}

static void
flight_answer(struct flight *f)
{
	struct ctl_result r = f->result;
	bool final = f->final;

	if (final) {
		/* Freed first: a waiter's callback may come back with a new
		 * request, which must not find this flight. */
		struct engine_waiter *w = f->waiters;
		f->waiters = NULL;
		flight_free(f);
		call_waiters(w, &r);
		return;
	}
	answer_waiters(f, &r); /* still waiting for its retry */
}

/* Put a flight into a batch of its domain: one still forming, or a new one. */
static void
enqueue(struct flight *f)
{
	struct engine *e = f->e;
	char key[ADDRESS_DOMAIN_MAX + 3];
	size_t dlen = strlen(f->domain);

	lower_copy(key, f->domain, dlen);
	key[dlen] = f->utf8 ? '\x01' : '\0'; /* SMTPUTF8 batches apart */
	key[dlen + 1] = '\0';
	size_t klen = dlen + (f->utf8 ? 1 : 0);

	struct hmap_node *n = hmap_get(&e->forming, key, klen);
	if (n != NULL) {
		struct forming *fm = hmap_entry(n, struct forming, node);
		if (verify_batch_add(fm->batch, f->address, f)) {
			f->in_batch = true;
			return;
		}
		/* Full or sealed: the next batch takes over the domain. */
		hmap_del(&e->forming, &fm->node);
		fm->listed = false;
	}

	struct forming *fm = calloc(1, sizeof(*fm));
	struct ctl_result r;
	if (fm == NULL)
		goto nomem;
	fm->e = e;
	fm->settled_tail = &fm->settled;
	memcpy(fm->key, key, klen + 1);
	lower_copy(fm->domain, f->domain, dlen);
	fm->batch = verify_batch_new(e->verifier, f->domain, f->utf8, &batch_ops, fm);
	if (fm->batch == NULL || !verify_batch_add(fm->batch, f->address, f)) {
		if (fm->batch != NULL)
			verify_batch_cancel(fm->batch);
		free(fm);
		goto nomem;
	}
	hmap_put(&e->forming, &fm->node, fm->key, klen);
	fm->listed = true;
	fm->next = e->batches;
	if (e->batches != NULL)
		e->batches->prev = fm;
	e->batches = fm;
	f->in_batch = true;
	e->n.batches++;
	verify_batch_start(fm->batch);
	return;
nomem:
	ctl_result_init(&r, REASON_BUSY);
	snprintf(r.text, sizeof(r.text), "out of memory");
	answer_waiters(f, &r);
	flight_free(f);
}

/* ---- batch callbacks ------------------------------------------------------ */

static void
forming_unlink(struct engine *e, struct forming *fm)
{
	/* fm is on e->batches: first exactly when it has no predecessor (also
	 * for the static analyzer, which would otherwise see engine_free's
	 * drain loop reach a freed head again). */
	assert((fm->prev == NULL) == (e->batches == fm));
	if (fm->prev != NULL)
		fm->prev->next = fm->next;
	else
		e->batches = fm->next;
	if (fm->next != NULL)
		fm->next->prev = fm->prev;
}

static void
on_seal(struct verify_batch *b, struct verify_domain_hint *hint, void *arg)
{
	struct forming *fm = arg;
	struct engine *e = fm->e;
	int64_t now = now_s();

	if (fm->listed) {
		hmap_del(&e->forming, &fm->node);
		fm->listed = false;
	}
	struct domain_facts *d = domains_get(e->domains, fm->domain, false);
	if (d == NULL)
		return;
	if (d->catch_all != TRI_UNKNOWN && now - d->catch_all_at < e->cfg.catch_all_ttl)
		hint->catch_all = d->catch_all;
	if (d->null_sender_refused && now - d->null_sender_at < e->cfg.catch_all_ttl)
		hint->null_sender_refused = true;
	if (d->grey_random[0] != '\0' && d->grey_until > now)
		hint->random_rcpt = d->grey_random;
}

static void
on_result(const struct ctl_result *r, void *target_arg, void *batch_arg)
{
	struct forming *fm = batch_arg;
	struct flight *f = target_arg;

	flight_settle(f, r);
	f->settled = NULL;
	*fm->settled_tail = f;
	fm->settled_tail = &f->settled;
}

static void
on_batch_done(struct verify_batch *b, const struct verify_domain_news *news, void *arg)
{
	struct forming *fm = arg;
	struct engine *e = fm->e;
	char domain[ADDRESS_DOMAIN_MAX + 1];
	int64_t now = now_s();

	if (fm->listed)
		hmap_del(&e->forming, &fm->node);
	snprintf(domain, sizeof(domain), "%s", fm->domain);
	forming_unlink(e, fm);
	struct flight *settled = fm->settled;
	free(fm);

	learn(e, domain, news, now);
	/* Commit before anyone hears a verdict: what a client was told
	 * survives kill -9.  Final verdicts wait for the group commit; a
	 * flight coming back for a greylisting retry is answered now (its
	 * "greylisted" is no verdict to lose, and it stays findable, so a
	 * new waiter must not join it between here and the commit). */
	while (settled != NULL) {
		struct flight *next = settled->settled;
		if (settled->final) {
			settled->settled = NULL;
			*e->uncommitted_tail = settled;
			e->uncommitted_tail = &settled->settled;
		} else {
			flight_answer(settled);
		}
		settled = next;
	}
	if (e->uncommitted != NULL && !ev_is_active(&e->commit_w))
		ev_prepare_start(e->loop, &e->commit_w);
}

static void
answer_list(struct flight *f)
{
	while (f != NULL) {
		struct flight *next = f->settled;
		flight_answer(f);
		f = next;
	}
}

/* The group commit (see struct engine): everything settled since the loop
 * last slept goes to the store's writer thread in one transaction, and
 * its waiters hear their verdicts when that is on disk (on_store_done).
 * While a commit is out, newly settled verdicts wait for the next one. */
static void
on_commit(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct engine *e = w->data;

	ev_prepare_stop(loop, w);
	if (e->store != NULL && store_committing(e->store))
		return; /* on_store_done starts the next one */
	/* Detached first: an answer's callback may settle more flights. */
	struct flight *f = e->uncommitted;
	e->uncommitted = NULL;
	e->uncommitted_tail = &e->uncommitted;
	if (e->store == NULL || store_pending(e->store) == 0) {
		answer_list(f); /* nothing of theirs to write */
		return;
	}
	ev_timer_stop(loop, &e->flush);
	e->committing = f;
	e->n.commits++;
	if (!store_commit_start(e->store)) {
		/* Out of memory handing it over: answer, keep the queue. */
		e->n.store_errors++;
		schedule_flush(e);
		f = e->committing;
		e->committing = NULL;
		answer_list(f);
	}
}

/* The store's writer finished a commit (on the loop, via ev_async; or at
 * once when there is no writer thread). */
static void
on_store_done(void *arg, bool ok)
{
	struct engine *e = arg;
	struct flight *f = e->committing;

	e->committing = NULL;
	if (!ok) {
		/* Its operations are queued again; the answers go out anyway,
		 * as they would with no store at all. */
		e->n.store_errors++;
		schedule_flush(e);
	}
	answer_list(f);
	if (e->uncommitted != NULL && !ev_is_active(&e->commit_w))
		ev_prepare_start(e->loop, &e->commit_w);
	else if (store_pending(e->store) > 0)
		schedule_flush(e);
}

/* What a batch found out about its domain. */
static void
learn(struct engine *e, const char *domain, const struct verify_domain_news *news, int64_t now)
{
	bool news_worth = news->catch_all_learned || news->null_sender_refused || news->greylisted;
	if (!news_worth)
		return;
	struct domain_facts *d = domains_get(e->domains, domain, true);
	if (d == NULL)
		return;
	if (news->catch_all_learned) {
		d->catch_all = news->catch_all;
		d->catch_all_at = now;
	}
	if (news->null_sender_refused) {
		d->null_sender_refused = true;
		d->null_sender_at = now;
	}
	if (news->greylisted && news->random_rcpt[0] != '\0' && d->grey_until <= now) {
		/* The retries must ask the same random address. */
		double window = e->cfg.greylist_delay;
		for (unsigned i = 1; i < e->cfg.greylist_retries; i++)
			window *= 2.;
		snprintf(d->grey_random, sizeof(d->grey_random), "%s", news->random_rcpt);
		d->grey_until = now + (int64_t)(window * 2.) + 60;
	}
	persist_domain(e, domain, d);
}

static const struct verify_batch_ops batch_ops = {
	.seal = on_seal,
	.result = on_result,
	.done = on_batch_done,
};

/* ---- requests ------------------------------------------------------------- */

static struct flight *
flight_new(struct engine *e, const char *address, size_t len, const char *key, size_t klen)
{
	struct address a;
	struct flight *f;

	if (len > ADDRESS_MAX || address_parse(address, len, &a) != ADDRESS_OK)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return NULL;
	f->e = e;
	memcpy(f->key, key, klen);
	f->key[klen] = '\0';
	f->key_len = klen;
	memcpy(f->address, address, len);
	f->address[len] = '\0';
	memcpy(f->domain, a.domain, a.domain_len);
	f->domain[a.domain_len] = '\0';
	f->utf8 = a.local_utf8 || a.domain_utf8;
	f->started = ev_now(e->loop);
	ev_timer_init(&f->retry, on_grey_retry, 0., 0.);
	f->retry.data = f;
	hmap_put(&e->flights, &f->node, f->key, f->key_len);
	e->n.flights++;
	return f;
}

enum engine_answer
engine_verify(struct engine *e, const char *address, size_t len, bool fresh,
    struct ctl_result *now, engine_cb cb, void *arg, struct engine_waiter **wp)
{
	char key[CACHE_KEY_MAX];
	size_t klen = cache_key(address, len, key, sizeof(key));
	int64_t t = now_s();

	*wp = NULL;
	if (klen == 0) {
		ctl_result_init(now, REASON_SYNTAX);
		return ENGINE_NOW;
	}
	/* The cache first: a hit, the common case, needs no flight. */
	if (!fresh) {
		enum cache_state st;
		const struct verdict_entry *v = cache_lookup(e->cache, key, klen, t, &st);
		if (v != NULL) {
			e->n.cache_hits++;
			entry_to_result(v, t, now);
			if (st == CACHE_REFRESH && e->flights.n < e->cfg.max_inflight &&
			    hmap_get(&e->flights, key, klen) == NULL) {
				/* Answer now, renew behind the scenes. */
				struct flight *bg = flight_new(e, address, len, key, klen);
				if (bg != NULL) {
					e->n.refreshes++;
					enqueue(bg);
				}
			}
			return ENGINE_NOW;
		}
		e->n.cache_misses++;
	}
	struct hmap_node *n = hmap_get(&e->flights, key, klen);
	struct flight *f = n != NULL ? hmap_entry(n, struct flight, node) : NULL;
	if (f != NULL && f->in_batch) {
		e->n.coalesced++; /* the same address is on the wire already */
	} else if (f == NULL) {
		if (e->flights.n >= e->cfg.max_inflight) {
			e->n.busy++;
			ctl_result_init(now, REASON_BUSY);
			snprintf(now->text, sizeof(now->text), "limits.max_inflight probes are running");
			return ENGINE_NOW;
		}
		f = flight_new(e, address, len, key, klen);
	}
	struct engine_waiter *w = f != NULL ? calloc(1, sizeof(*w)) : NULL;
	if (w == NULL) {
		ctl_result_init(now, REASON_BUSY);
		snprintf(now->text, sizeof(now->text), "out of memory");
		return ENGINE_NOW;
	}
	w->flight = f;
	w->cb = cb;
	w->arg = arg;
	w->next = f->waiters;
	if (f->waiters != NULL)
		f->waiters->prev = w;
	f->waiters = w;
	*wp = w;
	if (!f->in_batch) {
		/* New, or waiting for a greylisting retry: `fresh` asks now. */
		ev_timer_stop(e->loop, &f->retry);
		enqueue(f);
	}
	return ENGINE_LATER;
}

void
engine_waiter_cancel(struct engine_waiter *w)
{
	if (w == NULL)
		return;
	struct flight *f = w->flight;
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		f->waiters = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	free(w);
}

void
engine_check(struct engine *e, const char *address, size_t len, struct ctl_result *out)
{
	char key[CACHE_KEY_MAX];
	size_t klen = cache_key(address, len, key, sizeof(key));
	int64_t t = now_s();
	enum cache_state st;
	const struct verdict_entry *v = klen ? cache_lookup(e->cache, key, klen, t, &st) : NULL;

	if (v == NULL) {
		e->n.cache_misses++;
		ctl_result_init(out, REASON_NOT_CACHED);
		return;
	}
	e->n.cache_hits++;
	entry_to_result(v, t, out);
}

size_t
engine_domain(struct engine *e, const char *domain, size_t len, char *out, size_t cap)
{
	char name[ADDRESS_DOMAIN_MAX + 1], age[32], ttl[32], mx[1024], ca_age[32];
	const char *kv[24];
	size_t k = 0;
	int64_t now = now_s();

	if (len > ADDRESS_DOMAIN_MAX)
		return 0;
	lower_copy(name, domain, len);
	const struct domain_facts *d = domains_get(e->domains, name, false);
	long dns_age = 0, dns_left = 0;
	const struct mx_result *m = dnscache_peek(e->dns, name, &dns_age, &dns_left);

	kv[k++] = "cached";
	kv[k++] = (d != NULL || m != NULL) ? "yes" : "no";
	if (m != NULL) {
		size_t o = 0;
		mx[0] = '\0';
		for (size_t i = 0; i < m->n_hosts && o + 1 < sizeof(mx); i++) {
			int w = snprintf(mx + o, sizeof(mx) - o, "%s%s", i ? "," : "", m->hosts[i].name);
			if (w < 0 || (size_t)w >= sizeof(mx) - o)
				break;
			o += (size_t)w;
		}
		static const char *const st[] = {
			[MX_OK] = "ok", [MX_NXDOMAIN] = "nxdomain", [MX_NULL_MX] = "null_mx",
			[MX_NO_MX] = "no_mx", [MX_DNS_ERROR] = "dns_error",
		};
		kv[k++] = "dns";
		kv[k++] = st[m->status];
		if (mx[0] != '\0') {
			kv[k++] = "mx";
			kv[k++] = mx;
		}
		snprintf(age, sizeof(age), "%ld", dns_age);
		snprintf(ttl, sizeof(ttl), "%ld", dns_left);
		kv[k++] = "dns_age";
		kv[k++] = age;
		kv[k++] = "dns_ttl";
		kv[k++] = ttl;
	}
	if (d != NULL) {
		bool fresh = d->catch_all != TRI_UNKNOWN && now - d->catch_all_at < e->cfg.catch_all_ttl;
		kv[k++] = "catch_all";
		kv[k++] = !fresh ? "unknown" : d->catch_all == TRI_YES ? "yes" : "no";
		if (fresh) {
			snprintf(ca_age, sizeof(ca_age), "%lld", (long long)(now - d->catch_all_at));
			kv[k++] = "catch_all_age";
			kv[k++] = ca_age;
		}
		kv[k++] = "null_sender";
		kv[k++] = d->null_sender_refused ? "refused" : "unknown";
		if (d->grey_random[0] != '\0' && d->grey_until > now) {
			kv[k++] = "greylisting";
			kv[k++] = "retrying";
		}
	} else {
		kv[k++] = "catch_all";
		kv[k++] = "unknown";
	}
	char backoff[512];
	if (m != NULL) {
		size_t o = 0;
		backoff[0] = '\0';
		for (size_t i = 0; i < m->n_hosts; i++) {
			enum reason why;
			double left;
			if (!politeness_backoff(e->polite, m->hosts[i].name, &why, &left))
				continue;
			int w = snprintf(backoff + o, sizeof(backoff) - o, "%s%s:%s:%.0f", o ? "," : "",
			    m->hosts[i].name, reason_name(why), left);
			if (w < 0 || (size_t)w >= sizeof(backoff) - o)
				break;
			o += (size_t)w;
		}
		if (backoff[0] != '\0') {
			kv[k++] = "backoff";
			kv[k++] = backoff;
		}
	}
	kv[k] = NULL;
	return ctl_fmt_line(out, cap, "domain", name, kv);
}

size_t
engine_forget(struct engine *e, const char *arg, size_t len)
{
	char key[CACHE_KEY_MAX];
	size_t klen;

	if (memchr(arg, '@', len) != NULL) {
		klen = cache_key(arg, len, key, sizeof(key));
		return klen ? cache_forget_address(e->cache, key, klen) : 0;
	}
	if (len > ADDRESS_DOMAIN_MAX)
		return 0;
	lower_copy(key, arg, len);
	size_t n = cache_forget_domain(e->cache, key, len);
	if (domains_forget(e->domains, key)) {
		n++;
		if (e->store != NULL && store_del(e->store, STORE_DOMAINS, key, len) == 0)
			schedule_flush(e);
	}
	if (dnscache_forget(e->dns, key))
		n++;
	return n;
}

void
engine_counters(struct engine *e, struct engine_counters *out)
{
	struct verify_counters vc;
	struct dnscache_stats ds;
	struct polite_stats ps;

	*out = e->n;
	verifier_counters(e->verifier, &vc);
	dnscache_stats(e->dns, &ds);
	politeness_stats(e->polite, &ps);
	out->sessions = vc.sessions;
	out->rcpts = vc.rcpts;
	out->dns_queries = resolver_queries(e->resolver);
	out->dns_cache_hits = ds.hits;
	out->cache_entries = cache_entries(e->cache);
	out->cache_evictions = cache_evictions(e->cache);
	out->domains = domains_count(e->domains);
	out->backoffs = ps.backoffs;
}

size_t
engine_inflight(const struct engine *e)
{
	return e->flights.n;
}

/* ---- life ------------------------------------------------------------------ */

static void
params_from(const struct config *cfg, struct dnscache_params *dp, struct polite_params *pp)
{
	*dp = (struct dnscache_params){
		.min_ttl = cfg->dns.min_ttl,
		.max_ttl = cfg->dns.max_ttl,
		.negative_ttl = cfg->dns.negative_ttl,
		.stale_ttl = cfg->dns.stale_ttl,
		.max_entries = cfg->dns.max_entries,
	};
	*pp = (struct polite_params){
		.per_host = cfg->limits.per_host,
		.domain_rate = cfg->limits.domain_rate,
		.domain_burst = cfg->limits.domain_burst,
		.backoff_base = cfg->limits.backoff_base,
		.backoff_max = cfg->limits.backoff_max,
		.blocked_time = cfg->limits.blocked_backoff,
	};
}

static void
settings_from(struct engine *e, const struct config *cfg)
{
	e->cfg.positive_ttl = cfg->cache.positive_ttl;
	e->cfg.negative_ttl = cfg->cache.negative_ttl;
	e->cfg.tempfail_ttl = cfg->cache.tempfail_ttl;
	e->cfg.catch_all_ttl = cfg->cache.catch_all_ttl;
	e->cfg.positive_refresh = cfg->cache.positive_refresh;
	e->cfg.negative_refresh = cfg->cache.negative_refresh;
	e->cfg.dns_negative_ttl = cfg->dns.negative_ttl;
	e->cfg.max_inflight = cfg->limits.max_inflight;
	e->cfg.greylist_delay = cfg->smtp.greylist_delay;
	e->cfg.greylist_retries = cfg->smtp.greylist_retries;
}

struct engine *
engine_new(struct ev_loop *loop, const struct config *cfg, char *err, size_t errlen)
{
	struct engine *e = calloc(1, sizeof(*e));
	struct dnscache_params dp;
	struct polite_params pp;

	if (e == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->loop = loop;
	settings_from(e, cfg);
	params_from(cfg, &dp, &pp);
	ev_timer_init(&e->flush, on_flush, STORE_FLUSH_INTERVAL, 0.);
	e->flush.data = e;
	ev_prepare_init(&e->commit_w, on_commit);
	e->commit_w.data = e;
	/* After every other prepare watcher: the loop is about to sleep. */
	ev_set_priority(&e->commit_w, EV_MINPRI);
	e->uncommitted_tail = &e->uncommitted;
	if (hmap_init(&e->flights) != 0 || hmap_init(&e->forming) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	e->resolver = resolver_new(loop, &cfg->dns.servers, cfg->dns.timeout, err, errlen);
	if (e->resolver == NULL)
		goto fail;
	e->dns = dnscache_new(loop, e->resolver, &dp);
	e->polite = politeness_new(loop, &pp);
	e->cache = cache_new(cfg->cache.max_entries, on_cache_drop, e);
	e->domains = domains_new(cfg->cache.max_entries);
	if (e->dns == NULL || e->polite == NULL || e->cache == NULL || e->domains == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	e->verifier = verifier_new(loop, cfg, e->dns, e->polite, err, errlen);
	if (e->verifier == NULL)
		goto fail;

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	e->store = store_open(cfg->state_dir, err, errlen);
	if (e->store == NULL)
		goto fail;
	long count = store_count(e->store, STORE_VERDICTS);
	if (count > 0)
		cache_reserve(e->cache, (size_t)count);
	e->load_now = now_s();
	long nv = store_load(e->store, STORE_VERDICTS, load_verdict, e);
	long nd = store_load(e->store, STORE_DOMAINS, load_domain, e);
	store_flush(e->store); /* deletions of damaged or expired records */
	/* Only now: the writer must be the one thread in a transaction. */
	(void)store_writer_start(e->store, loop, on_store_done, e);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_notice("engine state=%s verdicts=%ld domains=%ld load_ms=%.0f", store_path(e->store),
	    nv, nd, (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	return e;
fail:
	engine_free(e);
	return NULL;
}

int
engine_reconfigure(struct engine *e, const struct config *cfg, char *err, size_t errlen)
{
	struct dnscache_params dp;
	struct polite_params pp;

	if (verifier_reconfigure(e->verifier, cfg, err, errlen) != 0)
		return -1;
	settings_from(e, cfg);
	params_from(cfg, &dp, &pp);
	dnscache_set_params(e->dns, &dp);
	politeness_set_params(e->polite, &pp);
	cache_set_max(e->cache, cfg->cache.max_entries);
	domains_set_max(e->domains, cfg->cache.max_entries);
	return 0;
}

static void
free_flight_node(struct hmap_node *n, void *arg)
{
	flight_free(hmap_entry(n, struct flight, node));
}


void
engine_free(struct engine *e)
{
	if (e == NULL)
		return;
	/* Batches first: their callbacks must not run into freed flights. */
	if (e->verifier != NULL)
		verifier_free(e->verifier);
	while (e->batches != NULL) {
		struct forming *fm = e->batches;
		forming_unlink(e, fm);
		free(fm);
	}
	if (e->flights.buckets != NULL)
		hmap_each(&e->flights, free_flight_node, e);
	/* Settled but not yet answered: out of the flights table already. */
	struct flight *lists[] = { e->uncommitted, e->committing };
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		while (lists[i] != NULL) {
			struct flight *f = lists[i];
			lists[i] = f->settled;
			flight_free(f);
		}
	}
	e->uncommitted = e->committing = NULL;
	ev_prepare_stop(e->loop, &e->commit_w);
	ev_timer_stop(e->loop, &e->flush);
	if (e->store != NULL)
		store_close(e->store);
	cache_free(e->cache);
	domains_free(e->domains);
	dnscache_free(e->dns);
	politeness_free(e->polite);
	resolver_free(e->resolver);
	hmap_destroy(&e->flights);
	hmap_destroy(&e->forming);
	free(e);
}
