/*
 * test_dnscache — the DNS cache over the real resolver
 * (src/probed/dnscache.c, src/probed/resolver.c).
 *
 * A private libev loop; the resolver is pointed at a scripted DNS server
 * living in this process on 127.0.0.1 (an ephemeral port, another ev_io
 * on the same loop; the same server as test_resolver's).  The server
 * answers from a per-test table of rules; a name with no rule is NXDOMAIN,
 * a name with rules for other types is NODATA.  Rules can answer SERVFAIL,
 * or hold a query until the test releases it.  Counting what the server
 * saw tells a cache hit from a miss.
 *
 * TTLs are 1-3 s, so the whole program runs in about 12 s of real time.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "config.h"
#include "dnsfake.h"
#include "dnscache.h"
#include "log.h"
#include "resolver.h"



/* ==== the harness ====================================================== */

struct got {
	int calls;
	struct mx_result res;
	ev_tstamp at;                          /* ev_now() of the delivery */
	struct dnscache_query *cancel_other;   /* cancel this from the callback */
	struct got *other;
	struct dnscache_query *self;           /* cancel own handle in the callback */
	bool free_cache;                       /* dnscache_free() from the callback */
};

struct harness {
	struct ev_loop *loop;
	struct fake fake;
	struct resolver *r;
	struct dnscache *dc;
	ev_timer guard;
	int pending;
	bool in_submit;
	bool guard_fired;
};

static struct harness H;

static const struct dnscache_params default_params = {
	.min_ttl = 1, .max_ttl = 3600, .negative_ttl = 60, .stale_ttl = 60,
	.max_entries = 1000,
};

static void
guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	H.guard_fired = true;
	ev_break(loop, EVBREAK_ALL);
}

static void
on_result(const struct mx_result *res, void *arg)
{
	struct got *g = arg;

	/* Never from inside dnscache_mx(). */
	assert_false(H.in_submit);
	g->calls++;
	g->res = *res;
	g->at = ev_now(H.loop);
	if (g->cancel_other != NULL && g->other != NULL && g->other->calls == 0) {
		dnscache_cancel(g->cancel_other);
		H.pending--;
	}
	/* Harmless: the handle dies when this callback returns. */
	if (g->self != NULL)
		dnscache_cancel(g->self);
	if (g->free_cache) {
		dnscache_free(H.dc);
		H.dc = NULL;
		H.pending = 1;        /* the others will never call back */
	}
	if (--H.pending <= 0)
		ev_break(H.loop, EVBREAK_ALL);
}

static struct dnscache_query *
ask(const char *domain, unsigned max_mx, struct got *g)
{
	memset(g, 0, sizeof(*g));
	H.in_submit = true;
	struct dnscache_query *q = dnscache_mx(H.dc, domain, max_mx, on_result, g);
	H.in_submit = false;
	assert_non_null(q);
	assert_int_equal(g->calls, 0);
	H.pending++;
	return q;
}

static void
cancel(struct dnscache_query *q)
{
	dnscache_cancel(q);
	H.pending--;
}

/* Run until every asked request has called back (or max seconds). */
static void
run(double max)
{
	H.guard_fired = false;
	ev_timer_set(&H.guard, max, 0.);
	ev_timer_start(H.loop, &H.guard);
	if (H.pending > 0)
		ev_run(H.loop, 0);
	ev_timer_stop(H.loop, &H.guard);
	assert_false(H.guard_fired);
}

/* Run for exactly this long, whatever happens. */
static void
run_for(double secs)
{
	int saved = H.pending;
	H.pending = 1 << 20;      /* callbacks must not end the run */
	H.guard_fired = false;
	ev_timer_set(&H.guard, secs > 0 ? secs : 0.001, 0.);
	ev_timer_start(H.loop, &H.guard);
	ev_run(H.loop, 0);
	ev_timer_stop(H.loop, &H.guard);
	H.pending -= (1 << 20) - saved;
}

/* Run until the loop's clock reads t. */
static void
run_until(ev_tstamp t)
{
	run_for(t - ev_now(H.loop));
}

/* Run until the server holds n queries. */
static void
wait_held(size_t n)
{
	if (H.fake.n_held < n) {
		H.fake.wait_held = n;
		H.guard_fired = false;
		ev_timer_set(&H.guard, 5., 0.);
		ev_timer_start(H.loop, &H.guard);
		ev_run(H.loop, 0);
		ev_timer_stop(H.loop, &H.guard);
		H.fake.wait_held = 0;
		assert_false(H.guard_fired);
	}
	assert_true(H.fake.n_held >= n);
}

static void
use_rules(struct frule *rules, size_t n)
{
	for (size_t i = 0; i < n; i++)
		rules[i].hits = 0;
	H.fake.rules = rules;
	H.fake.n_rules = n;
	H.fake.queries = 0;
}
#define USE_RULES(r) use_rules((r), sizeof(r) / sizeof((r)[0]))

static void
set_params(unsigned min_ttl, unsigned max_ttl, unsigned negative_ttl, unsigned stale_ttl,
    size_t max_entries)
{
	struct dnscache_params p = {
		.min_ttl = min_ttl, .max_ttl = max_ttl, .negative_ttl = negative_ttl,
		.stale_ttl = stale_ttl, .max_entries = max_entries,
	};
	dnscache_set_params(H.dc, &p);
}

static struct dnscache_stats
stats(void)
{
	struct dnscache_stats st;
	dnscache_stats(H.dc, &st);
	return st;
}

static int
setup(void **state)
{
	memset(&H, 0, sizeof(H));
	log_set_level(LOG_WARNING);
	H.loop = ev_loop_new(EVFLAG_AUTO);
	if (H.loop == NULL)
		return -1;

	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sin);
	H.fake.fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (H.fake.fd < 0 || bind(H.fake.fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(H.fake.fd, (struct sockaddr *)&sin, &sl) < 0)
		return -1;
	H.fake.port = ntohs(sin.sin_port);
	ev_io_init(&H.fake.io, fake_io_cb, H.fake.fd, EV_READ);
	H.fake.io.data = &H.fake;
	ev_io_start(H.loop, &H.fake.io);
	ev_timer_init(&H.guard, guard_cb, 1., 0.);

	char server[64];
	char *v[1] = { server };
	struct strlist servers = { .v = v, .n = 1 };
	char err[256];
	snprintf(server, sizeof(server), "127.0.0.1:%u", H.fake.port);
	H.r = resolver_new(H.loop, &servers, 1.0, err, sizeof(err));
	if (H.r == NULL) {
		print_error("resolver_new: %s\n", err);
		return -1;
	}
	H.dc = dnscache_new(H.loop, H.r, &default_params);
	if (H.dc == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	dnscache_free(H.dc);      /* before its resolver */
	resolver_free(H.r);
	ev_io_stop(H.loop, &H.fake.io);
	close(H.fake.fd);
	ev_loop_destroy(H.loop);
	return 0;
}

static void
addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		assert_int_equal(sin->sin_port, 0);
		inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)cap);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		assert_int_equal(sin6->sin6_port, 0);
		inet_ntop(AF_INET6, &sin6->sin6_addr, out, (socklen_t)cap);
	} else
		snprintf(out, cap, "family-%d", ss->ss_family);
}

/* The host's addresses, comma-joined, in order. */
static const char *
addrs(const struct mx_host *h)
{
	static char buf[1024];
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < h->n_addrs; i++) {
		char a[INET6_ADDRSTRLEN];
		addr_text(&h->addrs[i], a, sizeof(a));
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s", i ? "," : "", a);
	}
	return buf;
}

/* ==== hits and misses ================================================== */

static struct frule rules_hit[] = {
	{ .name = "hit.test", .qtype = T_MX, .rr = {
		{ T_MX, 300, 20, "mx3.hit.test", NULL },
		{ T_MX, 300, 10, "mx1.hit.test", NULL },
		{ T_MX, 300, 10, "mx2.hit.test", NULL },
	} },
	{ .name = "mx1.hit.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.1", NULL } } },
	{ .name = "mx1.hit.test", .qtype = T_AAAA, .rr = {
		{ T_AAAA, 300, 0, "2001:db8::1", NULL },
		{ T_AAAA, 300, 0, "2001:db8::11", NULL },
	} },
	{ .name = "mx2.hit.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.2", NULL } } },
	{ .name = "mx3.hit.test", .qtype = T_A, .rr = {
		{ T_A, 300, 0, "192.0.2.3", NULL },
		{ T_A, 300, 0, "192.0.2.33", NULL },
	} },
	{ .name = "implicit.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.7", NULL } } },
	{ .name = "implicit.test", .qtype = T_AAAA, .rr = {
		{ T_AAAA, 300, 0, "2001:db8::7", NULL } } },
};

static void
test_second_lookup_is_a_hit(void **state)
{
	struct got a, b, c;

	log_set_level(LOG_DEBUG);     /* the debug lines run under the sanitizers */
	USE_RULES(rules_hit);
	/* The first caller wants one host; the cache keeps them all. */
	ask("hit.test", 1, &a);
	run(5);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.res.status, MX_OK);
	assert_int_equal(a.res.n_hosts, 1);
	assert_int_equal(a.res.hosts[0].preference, 10);
	assert_int_equal(a.res.ttl, 300);
	unsigned seen = H.fake.queries;
	assert_int_equal(seen, 7);            /* MX, then A and AAAA of three hosts */
	unsigned long sent = resolver_queries(H.r);

	/* Another spelling of the same domain: answered from the cache, in
	 * full, from the loop, without a packet. */
	ev_tstamp t0 = ev_time();
	ask("HIT.Test.", 5, &b);
	run(5);
	assert_true(ev_time() - t0 < 0.2);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.res.status, MX_OK);
	assert_int_equal(b.res.n_hosts, 3);
	assert_string_equal(b.res.hosts[2].name, "mx3.hit.test");
	assert_int_equal(b.res.hosts[2].preference, 20);
	assert_string_equal(addrs(&b.res.hosts[2]), "192.0.2.3,192.0.2.33");
	for (size_t i = 0; i < 2; i++) {
		const struct mx_host *h = &b.res.hosts[i];
		assert_int_equal(h->preference, 10);
		assert_false(h->implicit);
		if (strcmp(h->name, "mx1.hit.test") == 0)
			assert_string_equal(addrs(h), "2001:db8::1,192.0.2.1,2001:db8::11");
		else {
			assert_string_equal(h->name, "mx2.hit.test");
			assert_string_equal(addrs(h), "192.0.2.2");
		}
	}
	assert_true(b.res.ttl >= 299 && b.res.ttl <= 300);
	assert_string_equal(b.res.detail, "");
	assert_int_equal(H.fake.queries, seen);
	assert_int_equal(resolver_queries(H.r), sent);

	/* The implicit MX survives the cache with its flag. */
	ask("implicit.test", 0, &c);
	run(5);
	ask("implicit.test", 0, &c);
	run(5);
	assert_int_equal(c.res.status, MX_OK);
	assert_int_equal(c.res.n_hosts, 1);
	assert_true(c.res.hosts[0].implicit);
	assert_string_equal(c.res.hosts[0].name, "implicit.test");
	assert_string_equal(addrs(&c.res.hosts[0]), "2001:db8::7,192.0.2.7");

	struct dnscache_stats st = stats();
	assert_int_equal(st.hits, 2);
	assert_int_equal(st.misses, 2);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.prefetches, 0);
	assert_int_equal(st.stale_served, 0);

	long age = -1, left = -1;
	const struct mx_result *pk = dnscache_peek(H.dc, "hit.TEST", &age, &left);
	assert_non_null(pk);
	assert_int_equal(pk->status, MX_OK);
	assert_int_equal(pk->n_hosts, 3);
	assert_int_equal(age, 0);
	assert_true(left >= 299 && left <= 300);
	assert_null(dnscache_peek(H.dc, "other.test", NULL, NULL));
	/* Peeking is no lookup. */
	assert_int_equal(stats().hits, 2);
}

/* ==== TTLs ============================================================= */

static struct frule rules_ttl[] = {
	{ .name = "short.test", .qtype = T_MX, .rr = { { T_MX, 1, 10, "mx.short.test", NULL } } },
	{ .name = "mx.short.test", .qtype = T_A, .rr = { { T_A, 1, 0, "192.0.2.10", NULL } } },
	{ .name = "long.test", .qtype = T_MX, .rr = { { T_MX, 86400, 10, "mx.long.test", NULL } } },
	{ .name = "mx.long.test", .qtype = T_A, .rr = { { T_A, 86400, 0, "192.0.2.11", NULL } } },
};

static void
test_ttl_clamped_and_expiry(void **state)
{
	struct got s, l;
	long left;

	USE_RULES(rules_ttl);
	set_params(2, 3, 60, 0, 1000);
	ask("short.test", 5, &s);
	ask("long.test", 5, &l);
	run(5);
	ev_tstamp t0 = s.at;
	assert_int_equal(s.res.status, MX_OK);
	assert_int_equal(l.res.status, MX_OK);
	/* 1 s raised to min_ttl, a day cut to max_ttl. */
	assert_int_equal(s.res.ttl, 2);
	assert_int_equal(l.res.ttl, 3);
	assert_non_null(dnscache_peek(H.dc, "short.test", NULL, &left));
	assert_int_equal(left, 2);
	assert_non_null(dnscache_peek(H.dc, "long.test", NULL, &left));
	assert_int_equal(left, 3);

	/* Past the record's own 1 s: still answered from the cache. */
	run_until(t0 + 1.3);
	ask("short.test", 5, &s);
	ask("long.test", 5, &l);
	run(5);
	assert_int_equal(s.res.status, MX_OK);
	assert_int_equal(fake_hits(&H.fake, "short.test", T_MX), 1);
	assert_int_equal(fake_hits(&H.fake, "long.test", T_MX), 1);

	/* Past min_ttl the short one is asked again; the long one is not. */
	run_until(t0 + 2.3);
	ask("short.test", 5, &s);
	ask("long.test", 5, &l);
	run(5);
	assert_int_equal(s.res.status, MX_OK);
	assert_string_equal(addrs(&s.res.hosts[0]), "192.0.2.10");
	assert_int_equal(s.res.ttl, 2);
	assert_int_equal(fake_hits(&H.fake, "short.test", T_MX), 2);
	assert_int_equal(fake_hits(&H.fake, "long.test", T_MX), 1);

	/* Past max_ttl the day-long record is asked again too. */
	run_until(t0 + 3.3);
	ask("long.test", 5, &l);
	run(5);
	assert_int_equal(l.res.status, MX_OK);
	assert_int_equal(fake_hits(&H.fake, "long.test", T_MX), 2);

	struct dnscache_stats st = stats();
	assert_int_equal(st.misses, 4);
	assert_int_equal(st.hits, 3);
	assert_int_equal(st.entries, 2);
}

/* ==== negative answers ================================================= */

static struct frule rules_neg[] = {
	{ .name = "null.test", .qtype = T_MX, .rr = { { T_MX, 3600, 0, ".", NULL } } },
	{ .name = "nomx.test", .qtype = T_MX, .rr = { { T_MX, 300, 10, "mx.nomx.test", NULL } } },
	{ .name = "mx.nomx.test", .qtype = T_A, .rcode = 0 },
	{ .name = "mx.nomx.test", .qtype = T_AAAA, .rcode = 0 },
	{ .name = "nx.test", .qtype = T_MX, .rcode = 3 },
};

static void
test_negative_caching(void **state)
{
	struct got nx, nul, nomx;
	long left;

	USE_RULES(rules_neg);
	rules_neg[4].rcode = 3;
	set_params(1, 3600, 1, 60, 1000);
	ask("nx.test", 5, &nx);
	ask("null.test", 5, &nul);
	ask("nomx.test", 5, &nomx);
	run(5);
	ev_tstamp t0 = nx.at;
	assert_int_equal(nx.res.status, MX_NXDOMAIN);
	assert_int_equal(nul.res.status, MX_NULL_MX);
	assert_int_equal(nomx.res.status, MX_NO_MX);
	unsigned seen = H.fake.queries;

	/* negative_ttl, not the null MX record's hour. */
	assert_non_null(dnscache_peek(H.dc, "null.test", NULL, &left));
	assert_int_equal(left, 1);
	const struct mx_result *pk = dnscache_peek(H.dc, "nx.test", NULL, &left);
	assert_non_null(pk);
	assert_int_equal(pk->status, MX_NXDOMAIN);
	assert_string_equal(pk->detail, "MX: NXDOMAIN");

	ask("nx.test", 5, &nx);
	ask("null.test", 5, &nul);
	ask("nomx.test", 5, &nomx);
	run(5);
	assert_int_equal(nx.res.status, MX_NXDOMAIN);
	assert_string_equal(nx.res.detail, "MX: NXDOMAIN");
	assert_int_equal(nul.res.status, MX_NULL_MX);
	assert_int_equal(nomx.res.status, MX_NO_MX);
	assert_int_equal(nomx.res.n_hosts, 0);
	assert_int_equal(H.fake.queries, seen);
	assert_int_equal(stats().hits, 3);

	/* Expired, and now the server fails: an old NXDOMAIN is not served
	 * stale (that would turn a DNS failure into "no such domain"). */
	rules_neg[4].rcode = 2;
	run_until(t0 + 1.2);
	ask("nx.test", 5, &nx);
	run(5);
	assert_int_equal(nx.res.status, MX_DNS_ERROR);
	assert_non_null(strstr(nx.res.detail, "SERVFAIL"));
	assert_int_equal(fake_hits(&H.fake, "nx.test", T_MX), 2);
	assert_int_equal(stats().stale_served, 0);
	/* Errors are not cached: the next lookup asks again. */
	ask("nx.test", 5, &nx);
	run(5);
	assert_int_equal(nx.res.status, MX_DNS_ERROR);
	assert_int_equal(fake_hits(&H.fake, "nx.test", T_MX), 3);
	rules_neg[4].rcode = 3;

	/* negative_ttl 0: negative answers are not kept at all. */
	set_params(1, 3600, 0, 60, 1000);
	ask("null.test", 5, &nul);      /* expired: asked again, dropped */
	run(5);
	ask("null.test", 5, &nul);
	run(5);
	assert_int_equal(nul.res.status, MX_NULL_MX);
	assert_int_equal(nul.res.ttl, 0);
	assert_int_equal(fake_hits(&H.fake, "null.test", T_MX), 3);
	assert_null(dnscache_peek(H.dc, "null.test", NULL, NULL));
}

/* A partial answer (one host's lookup failed) is used, never kept. */
static struct frule rules_partial[] = {
	{ .name = "partial.test", .qtype = T_MX, .rr = {
		{ T_MX, 300, 10, "bad.partial.test", NULL },
		{ T_MX, 300, 20, "good.partial.test", NULL } } },
	{ .name = "bad.partial.test", .qtype = T_A, .rcode = 2 },
	{ .name = "bad.partial.test", .qtype = T_AAAA, .rcode = 0 },
	{ .name = "good.partial.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.20", NULL } } },
};

static void
test_partial_answer_not_cached(void **state)
{
	struct got g;

	USE_RULES(rules_partial);
	ask("partial.test", 5, &g);
	run(5);
	assert_int_equal(g.res.status, MX_OK);
	assert_int_equal(g.res.ttl, 0);
	assert_int_equal(g.res.n_hosts, 2);
	assert_null(dnscache_peek(H.dc, "partial.test", NULL, NULL));
	ask("partial.test", 5, &g);
	run(5);
	assert_int_equal(g.res.status, MX_OK);
	assert_int_equal(fake_hits(&H.fake, "partial.test", T_MX), 2);
	assert_int_equal(stats().entries, 0);
}

/* ==== prefetch ========================================================= */

static struct frule rules_pre[] = {
	{ .name = "pre.test", .qtype = T_MX, .rr = { { T_MX, 300, 10, "mx.pre.test", NULL } } },
	{ .name = "mx.pre.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.30", NULL } } },
};

static void
test_prefetch_near_expiry(void **state)
{
	struct got a, b, c, d;
	long age, left;

	USE_RULES(rules_pre);
	rules_pre[0].hold = false;
	set_params(3, 3, 60, 60, 1000);
	ask("pre.test", 5, &a);
	run(5);
	ev_tstamp t0 = a.at;
	assert_int_equal(fake_hits(&H.fake, "pre.test", T_MX), 1);

	/* Early in its life a hit starts nothing. */
	ask("pre.test", 5, &b);
	run(5);
	run_for(0.1);
	assert_int_equal(fake_hits(&H.fake, "pre.test", T_MX), 1);
	assert_int_equal(stats().prefetches, 0);

	/* In the last tenth (0.3 s of 3): the caller is served from the cache
	 * at once while the server holds the background query. */
	rules_pre[0].hold = true;
	run_until(t0 + 2.85);
	ev_tstamp asked = ev_now(H.loop);
	ask("pre.test", 5, &b);
	run(1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.res.status, MX_OK);
	assert_true(b.at - asked < 0.1);
	wait_held(1);
	assert_int_equal(fake_hits(&H.fake, "pre.test", T_MX), 2);
	assert_int_equal(stats().prefetches, 1);

	/* One refresh at a time: another hit adds no query. */
	ask("pre.test", 5, &c);
	run(1);
	run_for(0.05);
	assert_int_equal(c.res.status, MX_OK);
	assert_int_equal(fake_hits(&H.fake, "pre.test", T_MX), 2);
	assert_int_equal(H.fake.n_held, 1);
	assert_int_equal(stats().prefetches, 1);

	/* The refresh lands: a new life for the entry. */
	fake_release(&H.fake);
	rules_pre[0].hold = false;
	run_for(0.2);
	assert_non_null(dnscache_peek(H.dc, "pre.test", &age, &left));
	assert_int_equal(age, 0);
	assert_int_equal(left, 3);
	ask("pre.test", 5, &d);
	run(1);
	assert_int_equal(d.res.status, MX_OK);
	assert_int_equal(fake_hits(&H.fake, "pre.test", T_MX), 2);
	struct dnscache_stats st = stats();
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, 4);
}

/* ==== serve stale ====================================================== */

static struct frule rules_stale[] = {
	{ .name = "st.test", .qtype = T_MX, .rr = { { T_MX, 300, 10, "mx.st.test", NULL } } },
	{ .name = "mx.st.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.50", NULL } } },
};

static void
test_serve_stale_bounded(void **state)
{
	struct got a, b, c, d;
	long left;

	log_set_level(LOG_DEBUG);     /* the debug lines run under the sanitizers */
	USE_RULES(rules_stale);
	rules_stale[0].rcode = 0;
	set_params(1, 1, 60, 1, 1000);
	ask("st.test", 5, &a);
	run(5);
	ev_tstamp t0 = a.at;
	assert_int_equal(a.res.status, MX_OK);

	/* Expired, and the server now fails: the old answer, marked. */
	rules_stale[0].rcode = 2;
	run_until(t0 + 1.2);
	ask("st.test", 5, &b);
	run(5);
	assert_int_equal(b.res.status, MX_OK);
	assert_int_equal(b.res.n_hosts, 1);
	assert_string_equal(b.res.hosts[0].name, "mx.st.test");
	assert_string_equal(addrs(&b.res.hosts[0]), "192.0.2.50");
	assert_int_equal(b.res.ttl, 0);
	assert_non_null(strstr(b.res.detail, "stale answer; MX: SERVFAIL"));
	assert_int_equal(fake_hits(&H.fake, "st.test", T_MX), 2);
	assert_int_equal(stats().stale_served, 1);

	/* Right after a failed refresh: stale at once, no new query. */
	ask("st.test", 5, &c);
	run(5);
	assert_int_equal(c.res.status, MX_OK);
	assert_non_null(strstr(c.res.detail, "stale answer"));
	assert_int_equal(fake_hits(&H.fake, "st.test", T_MX), 2);
	assert_int_equal(stats().stale_served, 2);
	assert_non_null(dnscache_peek(H.dc, "st.test", NULL, &left));
	assert_true(left < 0);

	/* Past stale_ttl the failure shows. */
	run_until(t0 + 2.2);
	ask("st.test", 5, &d);
	run(5);
	assert_int_equal(d.res.status, MX_DNS_ERROR);
	assert_non_null(strstr(d.res.detail, "SERVFAIL"));
	assert_null(strstr(d.res.detail, "stale"));
	assert_int_equal(fake_hits(&H.fake, "st.test", T_MX), 3);
	assert_int_equal(stats().stale_served, 2);
	assert_null(dnscache_peek(H.dc, "st.test", NULL, NULL));
	rules_stale[0].rcode = 0;
}

/* ==== single flight and cancelling ===================================== */

static struct frule rules_hold[] = {
	{ .name = "*.hold.test", .qtype = T_MX, .hold = true, .rr = {
		{ T_MX, 300, 10, "mx1.pool.test", NULL },
		{ T_MX, 300, 20, "mx2.pool.test", NULL } } },
	{ .name = "mx1.pool.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.41", NULL } } },
	{ .name = "mx2.pool.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.42", NULL } } },
};

static void
test_single_flight(void **state)
{
	enum { N = 10 };
	static struct got g[N];

	USE_RULES(rules_hold);
	for (int i = 0; i < N; i++)
		ask(i % 2 ? "sf.hold.test" : "SF.hold.test", i % 2 ? 1 : 2, &g[i]);
	wait_held(1);
	run_for(0.2);
	assert_int_equal(H.fake.n_held, 1);
	assert_int_equal(H.fake.queries, 1);
	for (int i = 0; i < N; i++)
		assert_int_equal(g[i].calls, 0);

	fake_release(&H.fake);
	run(5);
	for (int i = 0; i < N; i++) {
		assert_int_equal(g[i].calls, 1);
		assert_int_equal(g[i].res.status, MX_OK);
		/* Each caller's own cut. */
		assert_int_equal(g[i].res.n_hosts, i % 2 ? 1 : 2);
		assert_string_equal(g[i].res.hosts[0].name, "mx1.pool.test");
	}
	/* One MX query, then A and AAAA of the two hosts. */
	assert_int_equal(resolver_queries(H.r), 5);
	struct dnscache_stats st = stats();
	assert_int_equal(st.misses, N);
	assert_int_equal(st.hits, 0);
	assert_int_equal(st.entries, 1);
}

static void
test_cancel(void **state)
{
	struct got a, b, c, d, e, f, h;

	USE_RULES(rules_hold);
	/* One waiter of three cancels: the others are answered, it is not. */
	ask("c1.hold.test", 5, &a);
	struct dnscache_query *qb = ask("c1.hold.test", 5, &b);
	ask("c1.hold.test", 5, &c);
	wait_held(1);
	cancel(qb);
	fake_release(&H.fake);
	run(5);
	run_for(0.1);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 0);
	assert_int_equal(c.calls, 1);

	/* Every waiter cancels: the query goes on and fills the cache. */
	struct dnscache_query *qd = ask("c2.hold.test", 5, &d);
	wait_held(1);
	cancel(qd);
	fake_release(&H.fake);
	run_for(0.3);
	assert_int_equal(d.calls, 0);
	const struct mx_result *pk = dnscache_peek(H.dc, "c2.hold.test", NULL, NULL);
	assert_non_null(pk);
	assert_int_equal(pk->status, MX_OK);

	/* A hit cancelled before the loop runs is never delivered; one asked
	 * after it still is. */
	unsigned seen = H.fake.queries;
	struct dnscache_query *qe = ask("c2.hold.test", 5, &e);
	cancel(qe);
	ask("c2.hold.test", 5, &f);
	run(5);
	run_for(0.1);
	assert_int_equal(e.calls, 0);
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.res.status, MX_OK);
	assert_int_equal(H.fake.queries, seen);

	/* A callback cancels the other waiter of the same query, and its own
	 * (running) handle: one call in all. */
	struct dnscache_query *qa = ask("c3.hold.test", 5, &a);
	qb = ask("c3.hold.test", 5, &b);
	a.cancel_other = qb;
	a.other = &b;
	a.self = qa;
	b.cancel_other = qa;
	b.other = &a;
	b.self = qb;
	wait_held(1);
	fake_release(&H.fake);
	run(5);
	run_for(0.1);
	assert_int_equal(a.calls + b.calls, 1);

	/* FORGET while the query runs: its waiter is answered, the cache
	 * keeps nothing. */
	ask("c4.hold.test", 5, &h);
	wait_held(1);
	assert_false(dnscache_forget(H.dc, "c4.hold.test"));
	fake_release(&H.fake);
	run(5);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.res.status, MX_OK);
	assert_null(dnscache_peek(H.dc, "c4.hold.test", NULL, NULL));

	/* Forgotten with no waiter left: the query is taken back. */
	struct dnscache_query *qh = ask("c5.hold.test", 5, &h);
	wait_held(1);
	cancel(qh);
	assert_false(dnscache_forget(H.dc, "c5.hold.test"));
	unsigned long sent = resolver_queries(H.r);
	fake_release(&H.fake);
	run_for(0.3);
	assert_int_equal(h.calls, 0);
	assert_int_equal(resolver_queries(H.r), sent);   /* no A/AAAA stage */
	assert_null(dnscache_peek(H.dc, "c5.hold.test", NULL, NULL));
}

static void
test_free_with_queries_outstanding(void **state)
{
	struct got a, b, c, x, y;

	USE_RULES(rules_hold);
	/* A cached domain for hits. */
	ask("f1.hold.test", 5, &a);
	wait_held(1);
	fake_release(&H.fake);
	run(5);
	assert_int_equal(a.res.status, MX_OK);

	ask("f2.hold.test", 5, &c);       /* waits on the server */
	wait_held(1);
	ask("f1.hold.test", 5, &b);       /* a hit, not yet delivered */
	dnscache_free(H.dc);
	H.dc = NULL;
	H.pending = 0;
	fake_release(&H.fake);
	run_for(0.3);
	assert_int_equal(b.calls, 0);
	assert_int_equal(c.calls, 0);

	/* dnscache_free() from inside a callback: the others never call. */
	H.dc = dnscache_new(H.loop, H.r, &default_params);
	assert_non_null(H.dc);
	ask("f1.hold.test", 5, &a);
	wait_held(1);
	fake_release(&H.fake);
	run(5);
	ask("f3.hold.test", 5, &y);       /* held */
	wait_held(1);
	ask("f1.hold.test", 5, &x);       /* hit */
	x.free_cache = true;
	ask("f1.hold.test", 5, &b);       /* hit, queued behind it */
	run(5);
	assert_int_equal(x.calls, 1);
	assert_null(H.dc);
	H.pending = 0;
	fake_release(&H.fake);
	run_for(0.3);
	assert_int_equal(b.calls, 0);
	assert_int_equal(y.calls, 0);

	/* And from a waiter's callback, with another waiter behind it. */
	H.dc = dnscache_new(H.loop, H.r, &default_params);
	assert_non_null(H.dc);
	ask("f4.hold.test", 5, &x);
	x.free_cache = true;
	ask("f4.hold.test", 5, &y);
	wait_held(1);
	fake_release(&H.fake);
	run(5);
	run_for(0.1);
	assert_int_equal(x.calls, 1);
	assert_int_equal(y.calls, 0);
	assert_null(H.dc);
}

/* ==== order ============================================================ */

static struct frule rules_shuffle[] = {
	{ .name = "sh.test", .qtype = T_MX, .rr = {
		{ T_MX, 300, 10, "a.sh.test", NULL },
		{ T_MX, 300, 10, "b.sh.test", NULL },
		{ T_MX, 300, 20, "c.sh.test", NULL } } },
	{ .name = "a.sh.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.61", NULL } } },
	{ .name = "b.sh.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.62", NULL } } },
	{ .name = "c.sh.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.63", NULL } } },
};

static void
test_equal_preferences_reshuffled(void **state)
{
	enum { N = 40 };
	static struct got g[N];
	unsigned a_first = 0, b_first = 0;

	USE_RULES(rules_shuffle);
	ask("sh.test", 5, &g[0]);
	run(5);
	/* Every delivery from the one cached entry is ordered anew. */
	for (int i = 0; i < N; i++)
		ask("sh.test", 3, &g[i]);
	run(5);
	for (int i = 0; i < N; i++) {
		assert_int_equal(g[i].res.n_hosts, 3);
		assert_string_equal(g[i].res.hosts[2].name, "c.sh.test");
		assert_string_equal(addrs(&g[i].res.hosts[2]), "192.0.2.63");
		if (strcmp(g[i].res.hosts[0].name, "a.sh.test") == 0) {
			assert_string_equal(g[i].res.hosts[1].name, "b.sh.test");
			assert_string_equal(addrs(&g[i].res.hosts[0]), "192.0.2.61");
			a_first++;
		} else {
			assert_string_equal(g[i].res.hosts[0].name, "b.sh.test");
			assert_string_equal(g[i].res.hosts[1].name, "a.sh.test");
			assert_string_equal(addrs(&g[i].res.hosts[0]), "192.0.2.62");
			b_first++;
		}
	}
	/* Both orders (each missing from 40 fair draws: 2^-39). */
	assert_true(a_first > 0 && b_first > 0);

	/* Cut to one host: the shuffle comes first, so both are offered. */
	a_first = b_first = 0;
	for (int i = 0; i < N; i++)
		ask("sh.test", 1, &g[i]);
	run(5);
	for (int i = 0; i < N; i++) {
		assert_int_equal(g[i].res.n_hosts, 1);
		if (strcmp(g[i].res.hosts[0].name, "a.sh.test") == 0)
			a_first++;
		else if (strcmp(g[i].res.hosts[0].name, "b.sh.test") == 0)
			b_first++;
	}
	assert_int_equal(a_first + b_first, N);
	assert_true(a_first > 0 && b_first > 0);
	assert_int_equal(fake_hits(&H.fake, "sh.test", T_MX), 1);
}

/* ==== bounds and FORGET ================================================ */

static struct frule rules_many[] = {
	{ .name = "*.lru.test", .qtype = T_MX, .rr = { { T_MX, 300, 10, "mx.pool.test", NULL } } },
	{ .name = "mx.pool.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.40", NULL } } },
};

static void
lookup(const char *domain)
{
	struct got g;
	ask(domain, 5, &g);
	run(5);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.res.status, MX_OK);
}

static unsigned
mx_asked(void)
{
	return fake_hits(&H.fake, "*.lru.test", T_MX);
}

static void
test_lru_eviction(void **state)
{
	USE_RULES(rules_many);
	set_params(1, 3600, 60, 60, 3);
	lookup("d1.lru.test");
	lookup("d2.lru.test");
	lookup("d3.lru.test");
	assert_int_equal(mx_asked(), 3);
	lookup("d1.lru.test");                  /* a hit makes d1 recent */
	assert_int_equal(mx_asked(), 3);
	lookup("d4.lru.test");                  /* evicts d2, the least recent */
	assert_int_equal(mx_asked(), 4);
	assert_int_equal(stats().entries, 3);
	assert_null(dnscache_peek(H.dc, "d2.lru.test", NULL, NULL));
	assert_non_null(dnscache_peek(H.dc, "d1.lru.test", NULL, NULL));
	assert_non_null(dnscache_peek(H.dc, "d3.lru.test", NULL, NULL));
	assert_non_null(dnscache_peek(H.dc, "d4.lru.test", NULL, NULL));
	lookup("d2.lru.test");                  /* asked again; evicts d3 */
	assert_int_equal(mx_asked(), 5);
	assert_null(dnscache_peek(H.dc, "d3.lru.test", NULL, NULL));
	lookup("d1.lru.test");
	lookup("d4.lru.test");
	assert_int_equal(mx_asked(), 5);

	/* A smaller bound evicts at once, least recent first. */
	set_params(1, 3600, 60, 60, 1);
	assert_int_equal(stats().entries, 1);
	assert_non_null(dnscache_peek(H.dc, "d4.lru.test", NULL, NULL));
	assert_null(dnscache_peek(H.dc, "d1.lru.test", NULL, NULL));

	/* No room at all: still one query per lookup, nothing kept. */
	set_params(1, 3600, 60, 60, 0);
	assert_int_equal(stats().entries, 0);
	lookup("d5.lru.test");
	lookup("d5.lru.test");
	assert_int_equal(mx_asked(), 7);
	assert_int_equal(stats().entries, 0);

	/* Many domains: the table grows and keeps finding them. */
	set_params(1, 3600, 60, 60, 5000);
	enum { M = 150 };
	static struct got g[M];
	char name[64];
	/* In batches: a burst of hundreds of queries overflows the scripted
	 * server's socket buffer, and retries cost a second each. */
	for (int i = 0; i < M; i++) {
		snprintf(name, sizeof(name), "m%03d.lru.test", i);
		ask(name, 5, &g[i]);
		if (i % 50 == 49)
			run(10);
	}
	for (int i = 0; i < M; i++)
		assert_int_equal(g[i].res.status, MX_OK);
	assert_int_equal(stats().entries, M);
	for (int i = 0; i < M; i++) {
		snprintf(name, sizeof(name), "M%03d.LRU.test", i);
		assert_non_null(dnscache_peek(H.dc, name, NULL, NULL));
	}
}

static void
test_forget(void **state)
{
	USE_RULES(rules_many);
	lookup("fo.lru.test");
	lookup("fo.lru.test");
	assert_int_equal(mx_asked(), 1);
	assert_true(dnscache_forget(H.dc, "FO.lru.test."));
	assert_null(dnscache_peek(H.dc, "fo.lru.test", NULL, NULL));
	assert_int_equal(stats().entries, 0);
	lookup("fo.lru.test");
	assert_int_equal(mx_asked(), 2);
	assert_false(dnscache_forget(H.dc, "never.lru.test"));
	assert_true(dnscache_forget(H.dc, "fo.lru.test"));
	assert_false(dnscache_forget(H.dc, "fo.lru.test"));
}

/* Names the cache cannot key go to the resolver, uncached, unharmed. */
static void
test_odd_names(void **state)
{
	static char big[1500];
	struct got g;

	USE_RULES(rules_many);
	memset(big, 'a', sizeof(big) - 1);
	ask(big, 5, &g);
	run(5);
	assert_int_equal(g.res.status, MX_NXDOMAIN);
	ask(big, 5, &g);
	run(5);
	assert_int_equal(g.res.status, MX_NXDOMAIN);
	assert_int_equal(H.fake.queries, 0);
	assert_false(dnscache_forget(H.dc, big));
	assert_null(dnscache_peek(H.dc, big, NULL, NULL));

	/* Cancelled before the resolver's deferred answer. */
	struct dnscache_query *q = ask(big, 5, &g);
	cancel(q);
	run_for(0.1);
	assert_int_equal(g.calls, 0);

	/* The resolver's verdict on a bad name is cached like any other. */
	ask("a..lru.test", 5, &g);
	run(5);
	assert_int_equal(g.res.status, MX_NXDOMAIN);
	ask("a..lru.test", 5, &g);
	run(5);
	assert_int_equal(g.res.status, MX_NXDOMAIN);
	assert_int_equal(stats().hits, 1);
	assert_int_equal(H.fake.queries, 0);
}

int
main(void)
{
	log_open("test_dnscache", LOG_TARGET_STDERR);
	log_set_level(LOG_WARNING);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_second_lookup_is_a_hit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ttl_clamped_and_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_negative_caching, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_answer_not_cached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefetch_near_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_serve_stale_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_single_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_with_queries_outstanding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_equal_preferences_reshuffled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lru_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_names, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
