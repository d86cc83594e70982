/*
 * politeness — per-host session slots, per-domain token buckets, backoff.
 * See politeness.h.
 *
 * Each host has a FIFO of waiting requests.  host_pump() grants from the
 * head while the host has a free slot and the head's domain has a token;
 * when the head waits for a token, one timer is armed for the moment the
 * token appears (first in, first served: a later request of another domain
 * does not overtake it — simple and fair, at the price of a little idle
 * capacity).  Grants are delivered from a 0-second timer so that callers
 * never see their callback run inside politeness_acquire().
 *
 * A full bucket is the same as no bucket: buckets are freed when they fill
 * up again, hosts when idle and out of backoff, so the tables hold only
 * what is in use.
 */
#include "autoconfig.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "log.h"
#include "politeness.h"

struct bucket {
	struct hmap_node node;
	double tokens;
	ev_tstamp at;          /* when tokens was computed */
	char name[];
};

struct host {
	struct hmap_node node;
	struct politeness *pl;
	unsigned active;
	unsigned level;        /* consecutive rate limits */
	ev_tstamp backoff_until;
	enum reason backoff_why;
	struct polite_wait *head, *tail;
	ev_timer token_timer;  /* the head waits for its domain's next token */
	char name[];
};

struct polite_wait {
	struct polite_wait *next, *prev;
	struct politeness *pl;
	struct host *host;      /* waiting in, or granted a slot of, this host */
	polite_grant_cb cb;
	void *arg;
	ev_timer deliver;      /* granted: call back from the loop */
	bool granted;
	char domain[256];
};

struct politeness {
	struct ev_loop *loop;
	struct polite_params p;
	struct hmap hosts;
	struct hmap buckets;
	struct polite_stats stats;
};

static void host_pump(struct host *h);

static void
lower(char *dst, const char *src, size_t cap)
{
	size_t i;

	for (i = 0; src[i] != '\0' && i + 1 < cap; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] + 32) : src[i];
	dst[i] = '\0';
}

/* ---- buckets ---------------------------------------------------------- */

static struct bucket *
bucket_get(struct politeness *pl, const char *domain, bool create)
{
	struct hmap_node *n = hmap_get(&pl->buckets, domain, strlen(domain));
	size_t len = strlen(domain);

	if (n != NULL)
		return hmap_entry(n, struct bucket, node);
	if (!create)
		return NULL;
	struct bucket *b = calloc(1, sizeof(*b) + len + 1);
	if (b == NULL)
		return NULL;
	memcpy(b->name, domain, len + 1);
	b->tokens = pl->p.domain_burst;
	b->at = ev_now(pl->loop);
	hmap_put(&pl->buckets, &b->node, b->name, len);
#ifdef __clang_analyzer__
	/* The map owns b now.  clang 14's analyzer (scan-build) lets the const
	 * key b->name, which points into b, cancel the escape of &b->node into
	 * the map and reports b leaked at the end of token_take.  Only the
	 * analyzer compiles this: b escapes to a global it can see. */
	static void *analyzer_owner;
	analyzer_owner = b;
#endif
	return b;
}

static void
bucket_refill(struct politeness *pl, struct bucket *b)
{
	ev_tstamp now = ev_now(pl->loop);

	b->tokens = fmin((double)pl->p.domain_burst, b->tokens + (now - b->at) * pl->p.domain_rate);
	b->at = now;
}

/* Seconds until domain has a token (0: now). */
static double
token_wait(struct politeness *pl, const char *domain)
{
	struct bucket *b = bucket_get(pl, domain, false);

	if (b == NULL)
		return 0.;
	bucket_refill(pl, b);
	if (b->tokens >= 1.)
		return 0.;
	return (1. - b->tokens) / pl->p.domain_rate;
}

static void
token_take(struct politeness *pl, const char *domain)
{
	struct bucket *b = bucket_get(pl, domain, true);

	if (b == NULL)
		return; /* out of memory: be generous rather than stall */
	bucket_refill(pl, b);
	b->tokens -= 1.;
}

static void
bucket_free_full(struct hmap_node *n, void *arg)
{
	struct politeness *pl = arg;
	struct bucket *b = hmap_entry(n, struct bucket, node);

	bucket_refill(pl, b);
	if (b->tokens >= pl->p.domain_burst) {
		hmap_del(&pl->buckets, n);
		free(b);
	}
}

/* ---- hosts ------------------------------------------------------------ */

static void on_token_timer(struct ev_loop *loop, ev_timer *w, int revents);

static struct host *
host_get(struct politeness *pl, const char *name, bool create)
{
	char key[256];

	lower(key, name, sizeof(key));
	size_t len = strlen(key);
	struct hmap_node *n = hmap_get(&pl->hosts, key, len);
	if (n != NULL)
		return hmap_entry(n, struct host, node);
	if (!create)
		return NULL;
	struct host *h = calloc(1, sizeof(*h) + len + 1);
	if (h == NULL)
		return NULL;
	memcpy(h->name, key, len + 1);
	h->pl = pl;
	ev_timer_init(&h->token_timer, on_token_timer, 0., 0.);
	h->token_timer.data = h;
	hmap_put(&pl->hosts, &h->node, h->name, len);
	pl->stats.hosts = pl->hosts.n;
	return h;
}

/* An idle host with nothing to remember is forgotten. */
static void
host_maybe_free(struct host *h)
{
	struct politeness *pl = h->pl;

	if (h->active > 0 || h->head != NULL || h->backoff_until > ev_now(pl->loop) ||
	    h->level > 0)
		return;
	ev_timer_stop(pl->loop, &h->token_timer);
	hmap_del(&pl->hosts, &h->node);
	pl->stats.hosts = pl->hosts.n;
	free(h);
}

static void
on_deliver(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct polite_wait *pw = w->data;
	polite_grant_cb cb = pw->cb;
	void *arg = pw->arg;

	free(pw);
	cb(arg);
}

static void
unlink_wait(struct host *h, struct polite_wait *w)
{
	/* w waits on h: first exactly when it has no predecessor, last exactly
	 * when it has no successor (also for the static analyzer, which would
	 * otherwise see free_host's drain loop reach a freed head again). */
	assert((w->prev == NULL) == (h->head == w));
	assert((w->next == NULL) == (h->tail == w));
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		h->head = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	else
		h->tail = w->prev;
	w->next = w->prev = NULL;
}

static void
host_pump(struct host *h)
{
	struct politeness *pl = h->pl;

	ev_timer_stop(pl->loop, &h->token_timer);
	while (h->head != NULL && h->active < pl->p.per_host) {
		struct polite_wait *w = h->head;
		double wait = token_wait(pl, w->domain);
		if (wait > 0.) {
			ev_timer_set(&h->token_timer, wait, 0.);
			ev_timer_start(pl->loop, &h->token_timer);
			return;
		}
		unlink_wait(h, w);
		token_take(pl, w->domain);
		h->active++;
		w->granted = true;
		ev_timer_start(pl->loop, &w->deliver);
	}
}

static void
on_token_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	host_pump(w->data);
}

/* ---- the interface ----------------------------------------------------- */

struct politeness *
politeness_new(struct ev_loop *loop, const struct polite_params *p)
{
	struct politeness *pl = calloc(1, sizeof(*pl));

	if (pl == NULL)
		return NULL;
	pl->loop = loop;
	pl->p = *p;
	if (hmap_init(&pl->hosts) != 0 || hmap_init(&pl->buckets) != 0) {
		hmap_destroy(&pl->hosts);
		free(pl);
		return NULL;
	}
	return pl;
}

static void
free_host(struct hmap_node *n, void *arg)
{
	struct politeness *pl = arg;
	struct host *h = hmap_entry(n, struct host, node);

	ev_timer_stop(pl->loop, &h->token_timer);
	while (h->head != NULL) {
		struct polite_wait *w = h->head;
		unlink_wait(h, w);
		free(w);
	}
	free(h);
}

static void
free_bucket(struct hmap_node *n, void *arg)
{
	free(hmap_entry(n, struct bucket, node));
}

void
politeness_free(struct politeness *pl)
{
	if (pl == NULL)
		return;
	hmap_each(&pl->hosts, free_host, pl);
	hmap_each(&pl->buckets, free_bucket, pl);
	hmap_destroy(&pl->hosts);
	hmap_destroy(&pl->buckets);
	free(pl);
}

static void
pump_each(struct hmap_node *n, void *arg)
{
	host_pump(hmap_entry(n, struct host, node));
}

void
politeness_set_params(struct politeness *pl, const struct polite_params *p)
{
	pl->p = *p;
	hmap_each(&pl->hosts, pump_each, NULL); /* a higher per_host frees waiters */
}

bool
politeness_backoff(struct politeness *pl, const char *host, enum reason *why, double *left)
{
	struct host *h = host_get(pl, host, false);
	ev_tstamp now = ev_now(pl->loop);

	if (h == NULL || h->backoff_until <= now)
		return false;
	*why = h->backoff_why;
	*left = h->backoff_until - now;
	return true;
}

struct polite_wait *
politeness_acquire(struct politeness *pl, const char *host, const char *domain,
    polite_grant_cb cb, void *arg)
{
	struct host *h = host_get(pl, host, true);
	struct polite_wait *w = calloc(1, sizeof(*w));

	if (h == NULL || w == NULL) {
		free(w);
		return NULL;
	}
	w->cb = cb;
	w->arg = arg;
	w->pl = pl;
	w->host = h;
	lower(w->domain, domain, sizeof(w->domain));
	ev_timer_init(&w->deliver, on_deliver, 0., 0.);
	w->deliver.data = w;
	w->prev = h->tail;
	if (h->tail != NULL)
		h->tail->next = w;
	else
		h->head = w;
	h->tail = w;
	if (h->head != w || h->active >= pl->p.per_host)
		pl->stats.waits++;
	host_pump(h);
	return w;
}

void
politeness_cancel(struct polite_wait *w)
{
	if (w == NULL)
		return;
	struct host *h = w->host;

	if (w->granted) {
		/* Granted but not delivered yet: the slot goes back. */
		ev_timer_stop(w->pl->loop, &w->deliver);
		if (h->active > 0)
			h->active--;
	} else {
		unlink_wait(h, w);
	}
	free(w);
	host_pump(h);
	host_maybe_free(h);
}

void
politeness_release(struct politeness *pl, const char *host, enum reason outcome)
{
	struct host *h = host_get(pl, host, false);
	ev_tstamp now = ev_now(pl->loop);

	if (h == NULL)
		return;
	if (h->active > 0)
		h->active--;
	if (outcome == REASON_RATE_LIMITED) {
		double d = pl->p.backoff_base * pow(2., h->level);
		h->level++;
		h->backoff_until = now + fmin(d, pl->p.backoff_max);
		h->backoff_why = REASON_RATE_LIMITED;
		pl->stats.backoffs++;
		log_notice("politeness host=%s backoff=%.0fs reason=rate_limited level=%u",
		    h->name, fmin(d, pl->p.backoff_max), h->level);
	} else if (outcome == REASON_BLOCKED) {
		h->backoff_until = now + pl->p.blocked_time;
		h->backoff_why = REASON_BLOCKED;
		pl->stats.backoffs++;
		log_notice("politeness host=%s backoff=%.0fs reason=blocked", h->name,
		    pl->p.blocked_time);
	} else if (outcome != REASON_TIMEOUT && outcome != REASON_CONNECT_FAILED) {
		h->level = 0; /* the server talked normally again */
	}
	host_pump(h);
	host_maybe_free(h);
	if (pl->buckets.n > 1024)
		hmap_each(&pl->buckets, bucket_free_full, pl);
}

void
politeness_stats(const struct politeness *pl, struct polite_stats *out)
{
	*out = pl->stats;
}
