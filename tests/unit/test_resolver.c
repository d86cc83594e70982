/*
 * test_resolver — the DNS resolver (src/probed/resolver.c).
 *
 * Pure helpers: MX ordering (preference order, stable, ties shuffled into
 * every possible order, a misbehaving rand_fn kept in bounds) and RFC 7505
 * null-MX detection.
 *
 * Real runs: a private libev loop, the resolver pointed at a scripted DNS
 * server living in this process on 127.0.0.1 (an ephemeral port, another
 * ev_io on the same loop).  The server answers from a per-test table of
 * rules; a name with no rule at all is NXDOMAIN, a name with rules for
 * other types is NODATA, like a real zone.  Rules can also answer SERVFAIL,
 * REFUSED or truncated, drop the query (timeout), or hold it until the test
 * releases it (to cancel while a query is in flight).
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
#include "log.h"
#include "resolver.h"


/* ==== pure helpers ===================================================== */

static void
set_rec(struct mx_record *r, const char *name, unsigned pref)
{
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->preference = pref;
}

static unsigned
rand_zero(unsigned n)
{
	(void)n;
	return 0;
}

static unsigned
rand_last(unsigned n)
{
	return n - 1;
}

static unsigned
rand_huge(unsigned n)
{
	(void)n;
	return 0xffffffffu;
}

/* A deterministic LCG: every run of the test sees the same sequence. */
static uint32_t lcg_state;

static unsigned
rand_lcg(unsigned n)
{
	lcg_state = lcg_state * 1664525u + 1013904223u;
	return (unsigned)(((uint64_t)(lcg_state >> 8) * n) >> 24);
}

static void
test_order_by_preference(void **state)
{
	struct mx_record r[6];

	set_rec(&r[0], "c", 30);
	set_rec(&r[1], "a", 10);
	set_rec(&r[2], "d", 40);
	set_rec(&r[3], "b", 20);
	set_rec(&r[4], "e", 5);
	set_rec(&r[5], "f", 65535);
	resolver_order_mx(r, 6, rand_lcg);
	const char *want[] = { "e", "a", "b", "c", "d", "f" };
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(r[i].name, want[i]);
	assert_int_equal(r[0].preference, 5);
	assert_int_equal(r[5].preference, 65535);

	/* Degenerate sizes are harmless. */
	resolver_order_mx(r, 0, rand_lcg);
	resolver_order_mx(r, 1, rand_lcg);
	assert_string_equal(r[0].name, "e");
}

static void
test_order_stable_and_deterministic(void **state)
{
	struct mx_record r[5];

	/* rand_fn(k) == k-1 swaps nothing: a stable sort shows through. */
	set_rec(&r[0], "b1", 20);
	set_rec(&r[1], "a1", 10);
	set_rec(&r[2], "b2", 20);
	set_rec(&r[3], "a2", 10);
	set_rec(&r[4], "a3", 10);
	resolver_order_mx(r, 5, rand_last);
	const char *stable[] = { "a1", "a2", "a3", "b1", "b2" };
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(r[i].name, stable[i]);

	/* rand_fn == 0 always: Fisher-Yates from the top swaps with the first
	 * of the run each time: [a1 a2 a3] -> [a2 a3 a1], [b1 b2] -> [b2 b1]. */
	resolver_order_mx(r, 5, rand_zero);
	const char *rot[] = { "a2", "a3", "a1", "b2", "b1" };
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(r[i].name, rot[i]);
}

static int
perm_index3(const struct mx_record *r)
{
	/* Index of the permutation of "x","y","z" in lexical order, 0..5. */
	static const char *const perms[6][3] = {
		{ "x", "y", "z" }, { "x", "z", "y" }, { "y", "x", "z" },
		{ "y", "z", "x" }, { "z", "x", "y" }, { "z", "y", "x" },
	};
	for (int p = 0; p < 6; p++)
		if (strcmp(r[0].name, perms[p][0]) == 0 && strcmp(r[1].name, perms[p][1]) == 0 &&
		    strcmp(r[2].name, perms[p][2]) == 0)
			return p;
	return -1;
}

static void
test_shuffle_ties_covers_all_orders(void **state)
{
	unsigned seen[6] = { 0 };
	const unsigned runs = 6000;

	lcg_state = 12345;
	for (unsigned i = 0; i < runs; i++) {
		struct mx_record r[5];
		set_rec(&r[0], "late", 50);
		set_rec(&r[1], "z", 10);
		set_rec(&r[2], "x", 10);
		set_rec(&r[3], "first", 1);
		set_rec(&r[4], "y", 10);
		resolver_order_mx(r, 5, rand_lcg);
		/* Ties never cross other preferences. */
		assert_string_equal(r[0].name, "first");
		assert_string_equal(r[4].name, "late");
		for (size_t k = 1; k <= 3; k++)
			assert_int_equal(r[k].preference, 10);
		int p = perm_index3(&r[1]);
		assert_true(p >= 0);   /* a permutation: nothing lost or doubled */
		seen[p]++;
	}
	/* Every order, each near 1/6 (expected 1000; a fair shuffle strays
	 * by a few dozen at most, a biased one by hundreds). */
	for (int p = 0; p < 6; p++) {
		if (seen[p] < 850 || seen[p] > 1150)
			fail_msg("order %d seen %u times of %u", p, seen[p], runs);
	}
}

static void
test_shuffle_bad_rand_stays_in_bounds(void **state)
{
	struct mx_record r[4];

	set_rec(&r[0], "b", 10);
	set_rec(&r[1], "a", 10);
	set_rec(&r[2], "c", 10);
	set_rec(&r[3], "d", 20);
	resolver_order_mx(r, 4, rand_huge);
	int have = 0;
	for (size_t i = 0; i < 3; i++)
		have |= 1 << (r[i].name[0] - 'a');
	assert_int_equal(have, 7);
	assert_string_equal(r[3].name, "d");

	/* NULL rand_fn: the built-in generator, still a permutation. */
	resolver_order_mx(r, 4, NULL);
	have = 0;
	for (size_t i = 0; i < 3; i++)
		have |= 1 << (r[i].name[0] - 'a');
	assert_int_equal(have, 7);
}

static void
test_null_mx(void **state)
{
	struct mx_record r[2];

	set_rec(&r[0], ".", 0);
	assert_true(resolver_is_null_mx(r, 1));
	set_rec(&r[0], "", 0);
	assert_true(resolver_is_null_mx(r, 1));
	/* Not a null MX: another preference, a real name, none at all, or
	 * the null record mixed with a real one (RFC 7505 §3 forbids it; the
	 * resolver then uses the real host). */
	set_rec(&r[0], ".", 10);
	assert_false(resolver_is_null_mx(r, 1));
	set_rec(&r[0], "mx.example.org", 0);
	assert_false(resolver_is_null_mx(r, 1));
	assert_false(resolver_is_null_mx(r, 0));
	set_rec(&r[0], ".", 0);
	set_rec(&r[1], "mx.example.org", 10);
	assert_false(resolver_is_null_mx(r, 2));
	set_rec(&r[1], ".", 0);
	assert_false(resolver_is_null_mx(r, 2));
}


/* ==== the harness ====================================================== */

struct got {
	int calls;
	struct mx_result res;
	ev_tstamp at;
	struct resolver_query *cancel_other;   /* cancel this from the callback */
	struct got *other;
	bool free_resolver;                    /* resolver_free() from the callback */
	struct resolver_query *self;           /* cancel own handle in the callback */
};

struct harness {
	struct ev_loop *loop;
	struct fake fake;
	struct resolver *r;
	ev_timer guard;
	int pending;
	bool in_submit;
	bool guard_fired;
};

static struct harness H;

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

	/* Never from inside resolver_mx(). */
	assert_false(H.in_submit);
	g->calls++;
	g->res = *res;
	g->at = ev_time();
	if (g->cancel_other != NULL && g->other != NULL && g->other->calls == 0) {
		resolver_cancel(g->cancel_other);
		H.pending--;
	}
	/* Harmless: the handle dies when this callback returns. */
	if (g->self != NULL)
		resolver_cancel(g->self);
	if (g->free_resolver) {
		resolver_free(H.r);
		H.r = NULL;
		H.pending = 1;        /* the others will never call back */
	}
	if (--H.pending <= 0)
		ev_break(H.loop, EVBREAK_ALL);
}

static struct resolver_query *
ask(const char *domain, unsigned max_mx, struct got *g)
{
	H.in_submit = true;
	struct resolver_query *q = resolver_mx(H.r, domain, max_mx, on_result, g);
	H.in_submit = false;
	assert_non_null(q);
	assert_int_equal(g->calls, 0);
	H.pending++;
	return q;
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
}

/* Run for exactly this long, whatever happens. */
static void
run_for(double secs)
{
	int saved = H.pending;
	H.pending = 1 << 20;      /* callbacks must not end the run */
	run(secs);
	H.pending -= (1 << 20) - saved;
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
	return 0;
}

static int
teardown(void **state)
{
	resolver_free(H.r);
	ev_io_stop(H.loop, &H.fake.io);
	close(H.fake.fd);
	ev_loop_destroy(H.loop);
	return 0;
}

static const struct mx_host *
find_host(const struct mx_result *res, const char *name)
{
	for (size_t i = 0; i < res->n_hosts; i++)
		if (strcmp(res->hosts[i].name, name) == 0)
			return &res->hosts[i];
	return NULL;
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

/* ==== real runs ======================================================== */

static struct frule rules_main[] = {
	{ .name = "example.test", .qtype = T_MX, .rr = {
		{ T_MX, 300, 20, "mx3.example.test", NULL },
		{ T_MX, 300, 10, "mx1.example.test", NULL },
		{ T_MX, 300, 10, "mx2.example.test", NULL },
		{ T_MX, 300, 30, "MX1.Example.Test", NULL },   /* duplicate host */
	} },
	{ .name = "mx1.example.test", .qtype = T_A, .rr = {
		{ T_A, 100, 0, "192.0.2.1", NULL },
		{ T_A, 100, 0, "192.0.2.11", NULL },
		{ T_A, 100, 0, "192.0.2.12", NULL },
	} },
	{ .name = "mx1.example.test", .qtype = T_AAAA, .rr = {
		{ T_AAAA, 200, 0, "2001:db8::1", NULL },
		{ T_AAAA, 200, 0, "2001:db8::11", NULL },
	} },
	{ .name = "mx2.example.test", .qtype = T_A, .rr = {
		{ T_A, 60, 0, "192.0.2.2", NULL },
	} },
	{ .name = "mx3.example.test", .qtype = T_A, .rr = {
		{ T_A, 100, 0, "192.0.2.3", NULL },
		{ T_A, 100, 0, "192.0.2.3", NULL },            /* duplicate address */
	} },
	{ .name = "mx3.example.test", .qtype = T_AAAA, .rcode = 0 },   /* NODATA */
};

static void
test_mx_order_and_addresses(void **state)
{
	enum { N = 40 };
	static struct got g[N];
	int first_mx1 = 0, first_mx2 = 0;

	USE_RULES(rules_main);
	memset(g, 0, sizeof(g));
	for (int i = 0; i < N; i++)
		ask(i % 2 ? "Example.TEST" : "example.test.", 5, &g[i]);
	run(5);
	assert_false(H.guard_fired);

	for (int i = 0; i < N; i++) {
		const struct mx_result *res = &g[i].res;
		assert_int_equal(g[i].calls, 1);
		assert_int_equal(res->status, MX_OK);
		assert_string_equal(res->detail, "");
		/* Duplicate MX1 collapsed: three hosts. */
		assert_int_equal(res->n_hosts, 3);
		assert_int_equal(res->hosts[0].preference, 10);
		assert_int_equal(res->hosts[1].preference, 10);
		assert_int_equal(res->hosts[2].preference, 20);
		assert_string_equal(res->hosts[2].name, "mx3.example.test");
		assert_false(res->hosts[0].implicit);
		if (strcmp(res->hosts[0].name, "mx1.example.test") == 0)
			first_mx1++;
		else if (strcmp(res->hosts[0].name, "mx2.example.test") == 0)
			first_mx2++;
		else
			fail_msg("host 0 is %s", res->hosts[0].name);

		const struct mx_host *h = find_host(res, "mx1.example.test");
		assert_non_null(h);
		/* Interleaved, IPv6 first; the longer family fills the rest. */
		assert_string_equal(addrs(h),
		    "2001:db8::1,192.0.2.1,2001:db8::11,192.0.2.11,192.0.2.12");
		h = find_host(res, "mx2.example.test");
		assert_non_null(h);
		assert_string_equal(addrs(h), "192.0.2.2");
		h = find_host(res, "mx3.example.test");
		assert_string_equal(addrs(h), "192.0.2.3");
		/* Smallest TTL among the answers used. */
		assert_int_equal(res->ttl, 60);
	}
	/* Equal preferences are shuffled per request (2^-39 to fail). */
	assert_true(first_mx1 > 0);
	assert_true(first_mx2 > 0);
	/* 1 MX + A and AAAA for each of three hosts, per request. */
	assert_int_equal(resolver_queries(H.r), N * 7);
	assert_int_equal(fake_hits(&H.fake, "example.test", T_MX), N);
}

static void
test_max_mx_cap(void **state)
{
	struct got g = { 0 };

	USE_RULES(rules_main);
	ask("example.test", 2, &g);
	run(5);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.res.status, MX_OK);
	assert_int_equal(g.res.n_hosts, 2);
	assert_int_equal(g.res.hosts[0].preference, 10);
	assert_int_equal(g.res.hosts[1].preference, 10);
	/* The host past the cap is never looked up. */
	assert_int_equal(fake_hits(&H.fake, "mx3.example.test", T_A), 0);
	assert_int_equal(resolver_queries(H.r), 5);
}

static struct frule rules_many_mx[] = {
	{ .name = "big.test", .qtype = T_MX, .rr = {
		{ T_MX, 300, 40, "h20.big.test", NULL }, { T_MX, 300, 1, "h01.big.test", NULL },
		{ T_MX, 300, 2, "h02.big.test", NULL }, { T_MX, 300, 3, "h03.big.test", NULL },
		{ T_MX, 300, 4, "h04.big.test", NULL }, { T_MX, 300, 5, "h05.big.test", NULL },
		{ T_MX, 300, 6, "h06.big.test", NULL }, { T_MX, 300, 7, "h07.big.test", NULL },
		{ T_MX, 300, 8, "h08.big.test", NULL }, { T_MX, 300, 9, "h09.big.test", NULL },
		{ T_MX, 300, 10, "h10.big.test", NULL }, { T_MX, 300, 11, "h11.big.test", NULL },
		{ T_MX, 300, 12, "h12.big.test", NULL }, { T_MX, 300, 13, "h13.big.test", NULL },
		{ T_MX, 300, 14, "h14.big.test", NULL }, { T_MX, 300, 15, "h15.big.test", NULL },
		{ T_MX, 300, 16, "h16.big.test", NULL }, { T_MX, 300, 17, "h17.big.test", NULL },
		{ T_MX, 300, 18, "h18.big.test", NULL }, { T_MX, 300, 19, "h19.big.test", NULL },
	} },
	{ .name = "*.big.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.50", NULL } } },
};

static void
test_hard_cap(void **state)
{
	struct got g = { 0 };

	USE_RULES(rules_many_mx);
	ask("big.test", 1000, &g);
	run(5);
	assert_int_equal(g.res.status, MX_OK);
	assert_int_equal(g.res.n_hosts, RESOLVER_MAX_MX);
	for (size_t i = 0; i < RESOLVER_MAX_MX; i++) {
		char want[32];
		snprintf(want, sizeof(want), "h%02zu.big.test", i + 1);
		assert_string_equal(g.res.hosts[i].name, want);
		assert_int_equal(g.res.hosts[i].n_addrs, 1);
	}
}

static struct frule rules_kinds[] = {
	/* No MX: the domain's own addresses (implicit MX). */
	{ .name = "implicit.test", .qtype = T_A, .rr = { { T_A, 120, 0, "192.0.2.7", NULL } } },
	{ .name = "implicit.test", .qtype = T_AAAA, .rr = { { T_AAAA, 90, 0, "2001:db8::7", NULL } } },
	/* No MX and no address at all. */
	{ .name = "bare.test", .qtype = 16 /* TXT */, .rcode = 0 },
	{ .name = "nullmx.test", .qtype = T_MX, .rr = { { T_MX, 3600, 0, "", NULL } } },
	{ .name = "nullmx.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.99", NULL } } },
	{ .name = "mixed.test", .qtype = T_MX, .rr = {
		{ T_MX, 3600, 0, ".", NULL },
		{ T_MX, 3600, 10, "mx.mixed.test", NULL },
	} },
	{ .name = "mx.mixed.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.8", NULL } } },
	{ .name = "rootten.test", .qtype = T_MX, .rr = { { T_MX, 3600, 10, ".", NULL } } },
	{ .name = "servfail.test", .qtype = T_MX, .rcode = 2 },
	{ .name = "refused.test", .qtype = T_MX, .rcode = 5 },
	{ .name = "trunc.test", .qtype = T_MX, .tc = true },
	{ .name = "nohost.test", .qtype = T_MX, .rr = {
		{ T_MX, 300, 10, "ghost.nohost.test", NULL },     /* NXDOMAIN */
		{ T_MX, 300, 20, "empty.nohost.test", NULL },     /* NODATA */
		{ T_MX, 300, 30, "192.0.2.9", NULL },             /* a literal */
	} },
	{ .name = "empty.nohost.test", .qtype = 16, .rcode = 0 },
	{ .name = "v6only.test", .qtype = T_MX, .rr = { { T_MX, 300, 10, "mx.v6only.test", NULL } } },
	{ .name = "mx.v6only.test", .qtype = T_AAAA, .rr = { { T_AAAA, 300, 0, "2001:db8::6", NULL } } },
	{ .name = "hostfail.test", .qtype = T_MX, .rr = { { T_MX, 300, 10, "mx.hostfail.test", NULL } } },
	{ .name = "mx.hostfail.test", .qtype = T_A, .rcode = 2 },
	{ .name = "partial.test", .qtype = T_MX, .rr = {
		{ T_MX, 300, 10, "bad.partial.test", NULL },
		{ T_MX, 300, 20, "good.partial.test", NULL },
	} },
	{ .name = "bad.partial.test", .qtype = T_A, .rcode = 2 },
	{ .name = "good.partial.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.10", NULL } } },
	{ .name = "cname.test", .qtype = T_MX, .rr = { { T_MX, 300, 10, "alias.cname.test", NULL } } },
	{ .name = "alias.cname.test", .qtype = T_A, .rr = {
		{ T_CNAME, 300, 0, "real.cname.test", NULL },
		{ T_A, 50, 0, "192.0.2.77", "real.cname.test" },
	} },
	{ .name = "odd.test", .qtype = T_MX, .rr = {
		{ T_MX, 300, 10, "we ird.odd.test", NULL },
		{ T_MX, 300, 20, "q\"uote.odd.test", NULL },
		{ T_MX, 300, 30, "ok.odd.test", NULL },
	} },
	{ .name = "ok.odd.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.60", NULL } } },
	{ .name = "xn--bcher-kva.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.20", NULL } } },
};

static void
test_implicit_mx(void **state)
{
	struct got g = { 0 }, bare = { 0 };

	USE_RULES(rules_kinds);
	ask("implicit.test", 5, &g);
	ask("bare.test", 5, &bare);
	run(5);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.res.status, MX_OK);
	assert_int_equal(g.res.n_hosts, 1);
	assert_string_equal(g.res.hosts[0].name, "implicit.test");
	assert_true(g.res.hosts[0].implicit);
	assert_int_equal(g.res.hosts[0].preference, 0);
	assert_string_equal(addrs(&g.res.hosts[0]), "2001:db8::7,192.0.2.7");
	assert_int_equal(g.res.ttl, 90);

	assert_int_equal(bare.res.status, MX_NO_MX);
	assert_int_equal(bare.res.n_hosts, 0);
	assert_int_equal(bare.res.ttl, 0);
}

static void
test_null_mx_run(void **state)
{
	struct got nul = { 0 }, mixed = { 0 }, root10 = { 0 };

	USE_RULES(rules_kinds);
	ask("nullmx.test", 5, &nul);
	ask("mixed.test", 5, &mixed);
	ask("rootten.test", 5, &root10);
	run(5);
	assert_int_equal(nul.res.status, MX_NULL_MX);
	assert_int_equal(nul.res.n_hosts, 0);
	assert_int_equal(nul.res.ttl, 3600);
	/* A null MX asks nothing more, not even the domain's addresses. */
	assert_int_equal(fake_hits(&H.fake, "nullmx.test", T_A), 0);

	assert_int_equal(mixed.res.status, MX_OK);
	assert_int_equal(mixed.res.n_hosts, 1);
	assert_string_equal(mixed.res.hosts[0].name, "mx.mixed.test");
	assert_string_equal(addrs(&mixed.res.hosts[0]), "192.0.2.8");

	/* "MX 10 ." is no null MX, and the root is no host. */
	assert_int_equal(root10.res.status, MX_NO_MX);
	/* The root was never asked for: 3 MX + A and AAAA of mx.mixed.test. */
	assert_int_equal(H.fake.queries, 5);
}

static void
test_odd_exchange_names(void **state)
{
	struct got g = { 0 };

	USE_RULES(rules_kinds);
	ask("odd.test", 5, &g);
	run(5);
	/* Names that are no host names are dropped, never asked for. */
	assert_int_equal(g.res.status, MX_OK);
	assert_int_equal(g.res.n_hosts, 1);
	assert_string_equal(g.res.hosts[0].name, "ok.odd.test");
	assert_int_equal(H.fake.queries, 3);
}

static void
test_negative_and_errors(void **state)
{
	struct got nx = { 0 }, sf = { 0 }, rf = { 0 }, tc = { 0 };
	char want[64];

	log_set_level(LOG_DEBUG);     /* the debug lines run under the sanitizers */
	USE_RULES(rules_kinds);
	ask("nx.test", 5, &nx);
	ask("servfail.test", 5, &sf);
	ask("refused.test", 5, &rf);
	ask("trunc.test", 5, &tc);
	ev_tstamp t0 = ev_time();
	run(5);
	/* Answers, not timeouts: well under the 1 s timeout. */
	assert_true(ev_time() - t0 < 0.9);

	assert_int_equal(nx.res.status, MX_NXDOMAIN);
	assert_int_equal(nx.res.n_hosts, 0);
	assert_int_equal(nx.res.ttl, 0);

	snprintf(want, sizeof(want), "MX: SERVFAIL from 127.0.0.1:%u", H.fake.port);
	assert_int_equal(sf.res.status, MX_DNS_ERROR);
	assert_string_equal(sf.res.detail, want);
	snprintf(want, sizeof(want), "MX: REFUSED from 127.0.0.1:%u", H.fake.port);
	assert_int_equal(rf.res.status, MX_DNS_ERROR);
	assert_string_equal(rf.res.detail, want);
	snprintf(want, sizeof(want), "MX: truncated reply from 127.0.0.1:%u", H.fake.port);
	assert_int_equal(tc.res.status, MX_DNS_ERROR);
	assert_string_equal(tc.res.detail, want);
}

static void
test_hosts_without_addresses(void **state)
{
	struct got none = { 0 }, v6 = { 0 }, fail = { 0 }, part = { 0 }, cn = { 0 };
	char want[96];

	log_set_level(LOG_DEBUG);     /* the debug lines run under the sanitizers */
	USE_RULES(rules_kinds);
	ask("nohost.test", 5, &none);
	ask("v6only.test", 5, &v6);
	ask("hostfail.test", 5, &fail);
	ask("partial.test", 5, &part);
	ask("cname.test", 5, &cn);
	run(5);

	/* NXDOMAIN, NODATA and an address literal as exchange: all answered,
	 * none has an address. */
	assert_int_equal(none.res.status, MX_NO_MX);
	assert_int_equal(none.res.n_hosts, 0);

	assert_int_equal(v6.res.status, MX_OK);
	assert_int_equal(v6.res.n_hosts, 1);
	assert_string_equal(addrs(&v6.res.hosts[0]), "2001:db8::6");

	/* A failed lookup and no other address: nothing can be concluded. */
	snprintf(want, sizeof(want), "A mx.hostfail.test: SERVFAIL from 127.0.0.1:%u",
	    H.fake.port);
	assert_int_equal(fail.res.status, MX_DNS_ERROR);
	assert_string_equal(fail.res.detail, want);

	/* A failed preferred host next to a good one: usable, but marked
	 * (the failed host stays, empty, in its place) and not cacheable. */
	assert_int_equal(part.res.status, MX_OK);
	assert_int_equal(part.res.n_hosts, 2);
	assert_string_equal(part.res.hosts[0].name, "bad.partial.test");
	assert_int_equal(part.res.hosts[0].n_addrs, 0);
	assert_string_equal(part.res.hosts[1].name, "good.partial.test");
	assert_string_equal(addrs(&part.res.hosts[1]), "192.0.2.10");
	assert_non_null(strstr(part.res.detail, "A bad.partial.test: SERVFAIL"));
	assert_int_equal(part.res.ttl, 0);

	/* An MX host that is a CNAME: followed as the server answers. */
	assert_int_equal(cn.res.status, MX_OK);
	assert_string_equal(cn.res.hosts[0].name, "alias.cname.test");
	assert_string_equal(addrs(&cn.res.hosts[0]), "192.0.2.77");
	assert_int_equal(cn.res.ttl, 50);
}

static void
test_immediate_errors_are_deferred(void **state)
{
	struct got bad_utf8 = { 0 }, dots = { 0 }, slash = { 0 }, quote = { 0 },
	    longlabel = { 0 }, empty = { 0 }, twodots = { 0 }, lead = { 0 }, idn = { 0 };
	char label[80];

	log_set_level(LOG_DEBUG);     /* the debug lines run under the sanitizers */
	USE_RULES(rules_kinds);
	memset(label, 'a', 70);
	snprintf(label + 70, sizeof(label) - 70, ".test");
	ask("\xff\xfe.test", 5, &bad_utf8);
	ask("a..test", 5, &dots);
	ask("a\\.test", 5, &slash);
	ask("a\"b.test", 5, &quote);
	ask(label, 5, &longlabel);
	ask("", 5, &empty);
	ask("implicit.test..", 5, &twodots);
	ask(".implicit.test", 5, &lead);
	/* A U-label domain is asked as its A-label. */
	ask("b\xc3\xbc" "cher.test", 5, &idn);
	/* ask() checked that nothing was called back yet. */
	unsigned long before = resolver_queries(H.r);
	run(5);
	assert_false(H.guard_fired);

	assert_int_equal(bad_utf8.calls, 1);
	assert_int_equal(bad_utf8.res.status, MX_NXDOMAIN);
	assert_non_null(strstr(bad_utf8.res.detail, "IDNA"));
	assert_int_equal(dots.res.status, MX_NXDOMAIN);
	assert_int_equal(slash.res.status, MX_NXDOMAIN);
	assert_int_equal(quote.res.status, MX_NXDOMAIN);
	assert_int_equal(longlabel.res.status, MX_NXDOMAIN);
	assert_int_equal(empty.res.status, MX_NXDOMAIN);
	assert_int_equal(twodots.res.status, MX_NXDOMAIN);
	assert_int_equal(lead.res.status, MX_NXDOMAIN);
	/* None of the bad names reached the server. */
	assert_int_equal(H.fake.queries, 3);   /* MX, A, AAAA of the IDN */
	assert_int_equal(before, 1);

	assert_int_equal(idn.res.status, MX_OK);
	assert_string_equal(idn.res.hosts[0].name, "xn--bcher-kva.test");
	assert_true(idn.res.hosts[0].implicit);
}

static struct frule rules_silent[] = {
	{ .name = "silent.test", .qtype = T_MX, .drop = true },
	{ .name = "slowhost.test", .qtype = T_MX, .rr = { { T_MX, 300, 10, "mx.slowhost.test", NULL } } },
	{ .name = "mx.slowhost.test", .qtype = T_A, .drop = true },
	{ .name = "mx.slowhost.test", .qtype = T_AAAA, .rcode = 0 },
};

static void
test_timeout(void **state)
{
	struct got g = { 0 }, h = { 0 };

	USE_RULES(rules_silent);
	ev_tstamp t0 = ev_time();
	ask("silent.test", 5, &g);
	run(10);
	assert_false(H.guard_fired);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.res.status, MX_DNS_ERROR);
	assert_string_equal(g.res.detail, "MX: timeout");
	/* dns.timeout 1 s, two tries, udns doubling the second wait: ~3 s. */
	double took = g.at - t0;
	if (took < 2.0 || took > 4.5)
		fail_msg("timeout after %.2f s", took);
	assert_int_equal(fake_hits(&H.fake, "silent.test", T_MX), 2);

	/* The host stage times out the same way. */
	ask("slowhost.test", 5, &h);
	run(10);
	assert_int_equal(h.res.status, MX_DNS_ERROR);
	assert_string_equal(h.res.detail, "A mx.slowhost.test: timeout");
}

static struct frule rules_hold[] = {
	{ .name = "hold.test", .qtype = T_MX, .hold = true, .rr = {
		{ T_MX, 300, 10, "mx.hold.test", NULL } } },
	{ .name = "held1.test", .qtype = T_MX, .hold = true, .rr = {
		{ T_MX, 300, 10, "mx.hold.test", NULL } } },
	{ .name = "held2.test", .qtype = T_MX, .hold = true, .rr = {
		{ T_MX, 300, 10, "mx.hold.test", NULL } } },
	{ .name = "mx.hold.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.30", NULL } } },
	{ .name = "stage2.test", .qtype = T_MX, .rr = { { T_MX, 300, 10, "mx.stage2.test", NULL } } },
	{ .name = "mx.stage2.test", .qtype = T_A, .hold = true, .rr = {
		{ T_A, 300, 0, "192.0.2.31", NULL } } },
	{ .name = "mx.stage2.test", .qtype = T_AAAA, .hold = true },
};

static void
test_cancel_before_answer(void **state)
{
	struct got g = { 0 }, control = { 0 };

	USE_RULES(rules_hold);
	struct resolver_query *q = ask("hold.test", 5, &g);
	wait_held(1);
	resolver_cancel(q);
	H.pending--;
	/* The answer arrives after the cancel: ignored, no callback. */
	fake_release(&H.fake);
	run_for(0.3);
	assert_int_equal(g.calls, 0);

	/* Cancel in the address stage: MX answered, A and AAAA in flight. */
	struct got s = { 0 };
	q = ask("stage2.test", 5, &s);
	wait_held(2);
	resolver_cancel(q);
	H.pending--;
	fake_release(&H.fake);
	run_for(0.3);
	assert_int_equal(s.calls, 0);

	/* The resolver still works afterwards, and a callback may cancel its
	 * own (finished) request without harm. */
	control.self = ask("hold.test", 5, &control);
	wait_held(1);
	fake_release(&H.fake);
	run(5);
	assert_int_equal(control.calls, 1);
	assert_int_equal(control.res.status, MX_OK);
	assert_string_equal(addrs(&control.res.hosts[0]), "192.0.2.30");
}

static void
test_cancel_from_callback_same_iteration(void **state)
{
	struct got a = { 0 }, b = { 0 };

	USE_RULES(rules_hold);
	struct resolver_query *qa = ask("held1.test", 1, &a);
	struct resolver_query *qb = ask("held2.test", 1, &b);
	a.cancel_other = qb;
	a.other = &b;
	b.cancel_other = qa;
	b.other = &a;
	wait_held(2);
	/* Both MX answers reach the socket before the loop looks at it; the
	 * first request to finish cancels the other, whose A/AAAA lookups
	 * are then in flight. */
	fake_release(&H.fake);
	run(5);
	run_for(0.3);
	assert_int_equal(a.calls + b.calls, 1);
}

static struct frule rules_many[] = {
	{ .name = "*.many.test", .qtype = T_MX, .rr = { { T_MX, 300, 10, "mx.pool.test", NULL } } },
	{ .name = "mx.pool.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.40", NULL } } },
	{ .name = "mx.pool.test", .qtype = T_AAAA, .rr = { { T_AAAA, 300, 0, "2001:db8::40", NULL } } },
};

static void
test_many_concurrent(void **state)
{
	enum { N = 200 };
	static struct got g[N];
	char name[64];

	USE_RULES(rules_many);
	memset(g, 0, sizeof(g));
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "d%03d.many.test", i);
		ask(name, 5, &g[i]);
	}
	run(10);
	assert_false(H.guard_fired);
	for (int i = 0; i < N; i++) {
		assert_int_equal(g[i].calls, 1);
		assert_int_equal(g[i].res.status, MX_OK);
		assert_string_equal(addrs(&g[i].res.hosts[0]), "2001:db8::40,192.0.2.40");
	}
	assert_int_equal(resolver_queries(H.r), N * 3);
}

/* A small record per request, for runs of thousands. */
struct brief {
	int calls;
	enum mx_status status;
	size_t n_addrs;
};

static void
on_brief(const struct mx_result *res, void *arg)
{
	struct brief *b = arg;

	assert_false(H.in_submit);
	b->calls++;
	b->status = res->status;
	b->n_addrs = res->n_hosts > 0 ? res->hosts[0].n_addrs : 0;
	if (--H.pending <= 0)
		ev_break(H.loop, EVBREAK_ALL);
}

static struct resolver_query *
ask_brief(const char *domain, struct brief *b)
{
	H.in_submit = true;
	struct resolver_query *q = resolver_mx(H.r, domain, 5, on_brief, b);
	H.in_submit = false;
	assert_non_null(q);
	H.pending++;
	return q;
}

/*
 * 2,000 domains nobody asked before, all at once (a burst of VERIFYs):
 * every one resolves, and no query had to be sent twice.  Before the
 * resolver bounded its queries, the burst overflowed a receive buffer (the
 * server's or its own), and udns's retries ended in "MX: timeout".
 */
static void
test_burst_of_new_domains(void **state)
{
	enum { N = 2000 };
	static struct brief b[N];
	char name[64];

	USE_RULES(rules_many);
	memset(b, 0, sizeof(b));
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "b%04d.many.test", i);
		ask_brief(name, &b[i]);
	}
	run(30);
	assert_false(H.guard_fired);
	unsigned errors = 0;
	for (int i = 0; i < N; i++) {
		assert_int_equal(b[i].calls, 1);
		if (b[i].status == MX_DNS_ERROR)
			errors++;
		assert_int_equal(b[i].status, MX_OK);
		assert_int_equal(b[i].n_addrs, 2);
	}
	assert_int_equal(errors, 0);
	/* MX, A, AAAA per domain, each sent once: nothing was lost. */
	assert_int_equal(H.fake.queries, N * 3);
	assert_int_equal(resolver_queries(H.r), N * 3);
}

static struct frule rules_cap[] = {
	{ .name = "*.cap.test", .qtype = T_MX, .hold = true, .rr = {
		{ T_MX, 300, 10, "mx.pool.test", NULL } } },
	{ .name = "mx.pool.test", .qtype = T_A, .hold = true, .rr = {
		{ T_A, 300, 0, "192.0.2.40", NULL } } },
	{ .name = "mx.pool.test", .qtype = T_AAAA, .hold = true, .rr = {
		{ T_AAAA, 300, 0, "2001:db8::40", NULL } } },
};

/*
 * The server holds every answer back until the resolver has sent all it
 * will: it never has more than RESOLVER_MAX_ACTIVE queries out, and uses
 * them all.
 */
static void
test_outstanding_capped(void **state)
{
	enum { N = 700 };
	static struct brief b[N];
	char name[64];
	size_t peak = 0;

	USE_RULES(rules_cap);
	memset(b, 0, sizeof(b));
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "c%04d.cap.test", i);
		ask_brief(name, &b[i]);
	}
	wait_held(RESOLVER_MAX_ACTIVE);
	/* Each round: let the resolver send what it may, then answer it all.
	 * A round is far shorter than the 1 s timeout: no retries. */
	for (int round = 0; round < 200 && H.pending > 0; round++) {
		run_for(0.05);
		if (H.fake.n_held > peak)
			peak = H.fake.n_held;
		assert_true(H.fake.n_held <= RESOLVER_MAX_ACTIVE);
		fake_release(&H.fake);
	}
	assert_int_equal(H.pending, 0);
	assert_int_equal(peak, RESOLVER_MAX_ACTIVE);
	for (int i = 0; i < N; i++) {
		assert_int_equal(b[i].calls, 1);
		assert_int_equal(b[i].status, MX_OK);
		assert_int_equal(b[i].n_addrs, 2);
	}
	assert_int_equal(H.fake.queries, N * 3);
}

static struct frule rules_queue[] = {
	{ .name = "*.cap.test", .qtype = T_MX, .hold = true, .rr = {
		{ T_MX, 300, 10, "mx.pool.test", NULL } } },
	{ .name = "queued1.test", .qtype = T_MX, .rr = { { T_MX, 300, 10, "mx.pool.test", NULL } } },
	{ .name = "queued2.test", .qtype = T_MX, .rr = { { T_MX, 300, 10, "mx.pool.test", NULL } } },
	{ .name = "mx.pool.test", .qtype = T_A, .rr = { { T_A, 300, 0, "192.0.2.40", NULL } } },
	{ .name = "mx.pool.test", .qtype = T_AAAA, .rr = {
		{ T_AAAA, 300, 0, "2001:db8::40", NULL } } },
};

/*
 * A request still waiting for a slot can be cancelled: it never reaches
 * the server and never calls back.  Cancelling a request whose query is
 * out frees its slot for the next waiting one, without any answer.
 */
static void
test_cancel_while_queued(void **state)
{
	enum { N = RESOLVER_MAX_ACTIVE };
	static struct brief b[N];
	struct resolver_query *q[N];
	struct brief one = { 0 }, two = { 0 };
	char name[64];

	USE_RULES(rules_queue);
	memset(b, 0, sizeof(b));
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "c%04d.cap.test", i);
		q[i] = ask_brief(name, &b[i]);
	}
	struct resolver_query *q1 = ask_brief("queued1.test", &one);
	ask_brief("queued2.test", &two);
	wait_held(N);
	run_for(0.1);
	/* Every slot is taken by a held query: the last two wait. */
	assert_int_equal(H.fake.n_held, N);
	assert_int_equal(fake_hits(&H.fake, "queued1.test", T_MX), 0);
	assert_int_equal(fake_hits(&H.fake, "queued2.test", T_MX), 0);

	resolver_cancel(q1);
	H.pending--;
	resolver_cancel(q[0]);
	H.pending--;
	run_for(0.1);
	/* q[0]'s slot went to queued2.test, the next in line. */
	assert_int_equal(fake_hits(&H.fake, "queued1.test", T_MX), 0);
	assert_int_equal(fake_hits(&H.fake, "queued2.test", T_MX), 1);

	fake_release(&H.fake);
	run(10);
	assert_false(H.guard_fired);
	assert_int_equal(H.pending, 0);
	assert_int_equal(one.calls, 0);
	assert_int_equal(b[0].calls, 0);
	assert_int_equal(two.calls, 1);
	assert_int_equal(two.status, MX_OK);
	for (int i = 1; i < N; i++) {
		assert_int_equal(b[i].calls, 1);
		assert_int_equal(b[i].status, MX_OK);
	}
	assert_int_equal(fake_hits(&H.fake, "queued1.test", T_MX), 0);
}

static void
test_free_with_requests_outstanding(void **state)
{
	struct got g = { 0 }, h = { 0 }, k = { 0 };

	USE_RULES(rules_hold);
	ask("hold.test", 5, &g);
	wait_held(1);
	ask("\xff.test", 5, &h);          /* a deferred immediate error, too */
	resolver_free(H.r);
	H.r = NULL;
	H.pending = 0;
	fake_release(&H.fake);
	run_for(0.3);
	assert_int_equal(g.calls, 0);
	assert_int_equal(h.calls, 0);

	/* resolver_free() from inside a callback, with another request still
	 * outstanding: that one never calls back, nothing leaks. */
	char server[64];
	char *v[1] = { server };
	struct strlist servers = { .v = v, .n = 1 };
	char err[128];
	snprintf(server, sizeof(server), "127.0.0.1:%u", H.fake.port);
	H.r = resolver_new(H.loop, &servers, 1.0, err, sizeof(err));
	assert_non_null(H.r);
	struct got first = { 0 };
	first.free_resolver = true;
	ask("mx.hold.test", 5, &first);   /* implicit MX, answered at once */
	ask("hold.test", 5, &k);          /* held */
	run(5);
	assert_int_equal(first.calls, 1);
	assert_null(H.r);
	H.pending = 0;
	fake_release(&H.fake);
	run_for(0.3);
	assert_int_equal(k.calls, 0);
}

/* A strlist of up to 8 server strings (config.h's lists are mutable). */
static char list_buf[8][64];
static char *list_ptr[8];

static struct strlist
mklist(size_t n, ...)
{
	va_list ap;

	assert_true(n <= 8);
	va_start(ap, n);
	for (size_t i = 0; i < n; i++) {
		snprintf(list_buf[i], sizeof(list_buf[i]), "%s", va_arg(ap, const char *));
		list_ptr[i] = list_buf[i];
	}
	va_end(ap);
	return (struct strlist){ .v = n ? list_ptr : NULL, .n = n };
}

static void
test_new_rejects_bad_servers(void **state)
{
	struct strlist s;
	char err[128];
	struct resolver *r;

	s = mklist(1, "not-an-ip");
	assert_null(resolver_new(H.loop, &s, 3.0, err, sizeof(err)));
	assert_non_null(strstr(err, "not-an-ip"));
	s = mklist(1, "127.0.0.1:0");
	assert_null(resolver_new(H.loop, &s, 3.0, err, sizeof(err)));
	s = mklist(1, "[::1");
	assert_null(resolver_new(H.loop, &s, 3.0, err, sizeof(err)));
	s = mklist(7, "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5",
	    "127.0.0.6", "127.0.0.7");
	assert_null(resolver_new(H.loop, &s, 3.0, err, sizeof(err)));
	assert_non_null(strstr(err, "too many"));

	int fd6 = socket(AF_INET6, SOCK_DGRAM, 0);
	if (fd6 >= 0) {           /* IPv6 servers need an IPv6 socket */
		close(fd6);
		s = mklist(3, "[::1]:5353", "::1", "192.0.2.1:53");
		r = resolver_new(H.loop, &s, 0.1, err, sizeof(err));
		if (r == NULL)
			fail_msg("resolver_new: %s", err);
		resolver_free(r);
	}
	s = mklist(2, "192.0.2.1:53", "192.0.2.2");
	r = resolver_new(H.loop, &s, 0.1, err, sizeof(err));
	assert_non_null(r);
	resolver_free(r);
	/* Empty list: /etc/resolv.conf (whatever it holds, it must open). */
	s = mklist(0);
	r = resolver_new(H.loop, &s, 3.0, err, sizeof(err));
	assert_non_null(r);
	assert_int_equal(resolver_queries(r), 0);
	resolver_free(r);
}

/*
 * An IPv4 and an IPv6 server: udns then speaks IPv4 through an IPv6 socket
 * (mapped addresses).  The IPv4 one is the scripted server; the IPv6 one is
 * a socket nobody reads.  A SERVFAIL makes udns try the other server; when
 * that stays silent the detail still names the server that refused, in
 * IPv4 form.
 */
static void
test_mixed_family_servers(void **state)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t sl = sizeof(sin6);
	int fd6 = socket(AF_INET6, SOCK_DGRAM, 0);
	if (fd6 < 0 || bind(fd6, (struct sockaddr *)&sin6, sizeof(sin6)) < 0 ||
	    getsockname(fd6, (struct sockaddr *)&sin6, &sl) < 0) {
		if (fd6 >= 0)
			close(fd6);
		skip();                   /* no IPv6 loopback here */
	}
	char v4[64], v6[64], err[128], want[96];
	snprintf(v4, sizeof(v4), "127.0.0.1:%u", H.fake.port);
	snprintf(v6, sizeof(v6), "[::1]:%u", ntohs(sin6.sin6_port));
	struct strlist sl2 = mklist(2, v4, v6);
	resolver_free(H.r);
	H.r = resolver_new(H.loop, &sl2, 1.0, err, sizeof(err));
	if (H.r == NULL)
		fail_msg("resolver_new: %s", err);

	struct got ok = { 0 }, sf = { 0 };
	USE_RULES(rules_kinds);
	ask("implicit.test", 5, &ok);
	ask("servfail.test", 5, &sf);
	run(10);
	close(fd6);
	assert_int_equal(ok.res.status, MX_OK);
	assert_string_equal(addrs(&ok.res.hosts[0]), "2001:db8::7,192.0.2.7");
	assert_int_equal(sf.res.status, MX_DNS_ERROR);
	snprintf(want, sizeof(want), "MX: SERVFAIL from 127.0.0.1:%u", H.fake.port);
	assert_string_equal(sf.res.detail, want);
	assert_int_equal(fake_hits(&H.fake, "servfail.test", T_MX), 1);
}

int
main(void)
{
	log_open("test_resolver", LOG_TARGET_STDERR);
	log_set_level(LOG_WARNING);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_by_preference),
		cmocka_unit_test(test_order_stable_and_deterministic),
		cmocka_unit_test(test_shuffle_ties_covers_all_orders),
		cmocka_unit_test(test_shuffle_bad_rand_stays_in_bounds),
		cmocka_unit_test(test_null_mx),
		cmocka_unit_test_setup_teardown(test_mx_order_and_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_mx_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hard_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_implicit_mx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_mx_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_odd_exchange_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_negative_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hosts_without_addresses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_immediate_errors_are_deferred, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_before_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_from_callback_same_iteration, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_burst_of_new_domains, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outstanding_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_while_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_with_requests_outstanding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_new_rejects_bad_servers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mixed_family_servers, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
