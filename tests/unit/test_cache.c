/*
 * test_cache — the verdict cache (src/probed/cache.c): key normalisation,
 * the kind of every reason, store and lookup with a fake clock through
 * FRESH, REFRESH and expiry, the rule that a temporary verdict never
 * replaces a live positive one (every pair of reasons, expired or not),
 * LRU eviction and cache_set_max(), FORGET of addresses and domains, the
 * persistent record (round trips, its exact layout, truncations, bit flips,
 * a seeded fuzz loop) and a million-entry run.
 */
#include "autoconfig.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache.h"

#define REC_MIN 43  /* the version 1 record without strings */

/* ---- helpers ---------------------------------------------------------- */

#define DROPS_KEPT 64

/* What on_drop reported: every key counted, the first DROPS_KEPT kept in
 * order, and every one checked against a domain suffix when one is set. */
struct drops {
	size_t n;
	char key[DROPS_KEPT][CACHE_KEY_MAX];
	size_t malformed;           /* not NUL-terminated at len, or len 0 */
	const char *suffix;
	size_t off_suffix;
};

static void
record_drop(const char *key, size_t len, void *arg)
{
	struct drops *d = arg;

	if (len == 0 || len >= CACHE_KEY_MAX || key[len] != '\0' || strlen(key) != len) {
		d->malformed++;
		d->n++;
		return;
	}
	if (d->n < DROPS_KEPT)
		memcpy(d->key[d->n], key, len + 1);
	if (d->suffix != NULL) {
		size_t sl = strlen(d->suffix);
		if (len < sl || strcmp(key + len - sl, d->suffix) != 0)
			d->off_suffix++;
	}
	d->n++;
}

static struct verdict_entry
mk(enum reason r, int64_t made, int64_t refresh, int64_t expires)
{
	struct verdict_entry e;

	memset(&e, 0, sizeof(e));
	e.reason = r;
	e.code = 250;
	strcpy(e.enhanced, "2.1.5");
	strcpy(e.mx, "mx1.example.org");
	e.catch_all = TRI_NO;
	e.tls = TRI_YES;
	strcpy(e.text, "Ok");
	e.made = made;
	e.refresh = refresh;
	e.expires = expires;
	return e;
}

static enum cache_store_result
put(struct cache *c, const char *key, enum reason r, int64_t now, int64_t expires)
{
	struct verdict_entry e = mk(r, now, expires, expires);

	return cache_store(c, key, strlen(key), &e, now);
}

static const struct verdict_entry *
get(struct cache *c, const char *key, int64_t now, enum cache_state *st)
{
	return cache_lookup(c, key, strlen(key), now, st);
}

static bool
has(struct cache *c, const char *key, int64_t now)
{
	enum cache_state st;
	return get(c, key, now, &st) != NULL && st != CACHE_MISS;
}

static void
assert_entry_eq(const struct verdict_entry *a, const struct verdict_entry *b)
{
	assert_int_equal(a->reason, b->reason);
	assert_int_equal(a->code, b->code);
	assert_string_equal(a->enhanced, b->enhanced);
	assert_string_equal(a->mx, b->mx);
	assert_int_equal(a->catch_all, b->catch_all);
	assert_int_equal(a->tls, b->tls);
	assert_memory_equal(a->text, b->text, strlen(b->text) + 1);
	assert_true(a->made == b->made);
	assert_true(a->refresh == b->refresh);
	assert_true(a->expires == b->expires);
}

/* xorshift64*: fixed seeds, so a failure repeats. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

/* ---- kinds ------------------------------------------------------------ */

static void
test_kind_of(void **state)
{
	static const struct {
		enum reason r;
		enum cache_kind k;
	} table[] = {
		{ REASON_ACCEPTED, CACHE_POSITIVE },
		{ REASON_CATCH_ALL, CACHE_POSITIVE },
		{ REASON_UNVERIFIABLE, CACHE_POSITIVE },
		{ REASON_MAILBOX_FULL, CACHE_NEGATIVE },
		{ REASON_SYNTAX, CACHE_NEGATIVE },
		{ REASON_NO_DOMAIN, CACHE_NEGATIVE },
		{ REASON_NULL_MX, CACHE_NEGATIVE },
		{ REASON_NO_MX, CACHE_NEGATIVE },
		{ REASON_NO_SUCH_USER, CACHE_NEGATIVE },
		{ REASON_DISABLED, CACHE_NEGATIVE },
		{ REASON_RELAY_DENIED, CACHE_NEGATIVE },
		{ REASON_DNS_ERROR, CACHE_TEMPORARY },
		{ REASON_CONNECT_FAILED, CACHE_TEMPORARY },
		{ REASON_TIMEOUT, CACHE_TEMPORARY },
		{ REASON_GREYLISTED, CACHE_TEMPORARY },
		{ REASON_RATE_LIMITED, CACHE_TEMPORARY },
		{ REASON_BLOCKED, CACHE_TEMPORARY },
		{ REASON_TLS_FAILED, CACHE_TEMPORARY },
		{ REASON_SENDER_REJECTED, CACHE_TEMPORARY },
		{ REASON_TEMPFAIL, CACHE_TEMPORARY },
		{ REASON_PROTOCOL_ERROR, CACHE_TEMPORARY },
		{ REASON_NOT_ALLOWED, CACHE_TEMPORARY },
		{ REASON_PENDING, CACHE_TEMPORARY },
		{ REASON_NOT_CACHED, CACHE_TEMPORARY },
		{ REASON_BUSY, CACHE_TEMPORARY },
	};
	bool seen[REASON__COUNT] = { false };

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (cache_kind_of(table[i].r) != table[i].k)
			fail_msg("%s: kind %d, want %d", reason_name(table[i].r),
			    cache_kind_of(table[i].r), table[i].k);
		seen[table[i].r] = true;
	}
	/* A reason added later falls under its verdict's default; risky
	 * ones take the shorter negative TTL. */
	for (unsigned r = 0; r < REASON__COUNT; r++) {
		if (seen[r])
			continue;
		enum cache_kind want = CACHE_TEMPORARY;
		switch (reason_verdict((enum reason)r)) {
		case VERDICT_DELIVERABLE: want = CACHE_POSITIVE; break;
		case VERDICT_UNDELIVERABLE:
		case VERDICT_RISKY: want = CACHE_NEGATIVE; break;
		default: break;
		}
		assert_int_equal(cache_kind_of((enum reason)r), want);
	}
	assert_int_equal(cache_kind_of(REASON__COUNT), CACHE_TEMPORARY);
	assert_int_equal(cache_kind_of((enum reason)-1), CACHE_TEMPORARY);
}

/* ---- keys ------------------------------------------------------------- */

static void
test_key_normalise(void **state)
{
	static const struct {
		const char *in;
		const char *want;        /* NULL: refused */
	} cases[] = {
		{ "Alice@Example.ORG", "Alice@example.org" },
		{ "USER@EXAMPLE.ORG", "USER@example.org" },
		{ "a@b", "a@b" },
		{ "\"a@B\"@EXAMPLE.org", "\"a@B\"@example.org" },
		{ "\"John Doe\"@Example.Org", "\"John Doe\"@example.org" },
		{ "\"a\\\"@B\"@X.Org", "\"a\\\"@B\"@x.org" },
		{ "\"a\\\\\"@X.Org", "\"a\\\\\"@x.org" },
		{ "a@b@X.ORG", "a@b@x.org" },
		{ "\"x@Y.ORG\"@Z.ORG", "\"x@Y.ORG\"@z.org" },
		{ "a@[IPv6:2001:DB8::1]", "a@[ipv6:2001:db8::1]" },
		{ "Jos\xc3\xa9@B\xc3\x9c" "CHER.Example", "Jos\xc3\xa9@b\xc3\x9c" "cher.example" },
		{ "x@\xc3\x84\xc3\x96.DE", "x@\xc3\x84\xc3\x96.de" },
		{ "nobody", NULL },
		{ "", NULL },
		{ "\"a@b\"", NULL },
		{ "\"a@b.org", NULL },
		{ "a@b\"c", NULL },
		{ "\"a\\\"@b.org", NULL },
		{ "\"abc\\", NULL },
		{ "@example.org", NULL },
		{ "a@", NULL },
		{ "\"a\"@", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char key[CACHE_KEY_MAX];
		size_t n = cache_key(cases[i].in, strlen(cases[i].in), key, sizeof(key));
		if (cases[i].want == NULL) {
			if (n != 0)
				fail_msg("\"%s\" gave a key \"%.*s\"", cases[i].in, (int)n, key);
			continue;
		}
		if (n != strlen(cases[i].want) || strcmp(key, cases[i].want) != 0)
			fail_msg("\"%s\": got %zu \"%s\", want \"%s\"", cases[i].in, n,
			    n ? key : "", cases[i].want);
	}

	/* A NUL inside the address is refused, not cut. */
	char key[CACHE_KEY_MAX];
	assert_int_equal(cache_key("a\0b@x.org", 9, key, sizeof(key)), 0);
	assert_int_equal(cache_key("a@x.org\0", 8, key, sizeof(key)), 0);

	/* Lengths: 255 octets fit CACHE_KEY_MAX with the NUL, 256 do not. */
	char addr[300];
	memset(addr, 'a', sizeof(addr));
	memcpy(addr + 200, "@EXAMPLE.ORG", 12);
	memset(addr + 212, 'B', sizeof(addr) - 212);
	assert_int_equal(cache_key(addr, 255, key, sizeof(key)), 255);
	assert_int_equal(key[255], '\0');
	assert_int_equal(key[201], 'e');
	assert_int_equal(key[254], 'b');
	assert_int_equal(key[199], 'a');
	assert_int_equal(cache_key(addr, 256, key, sizeof(key)), 0);
	char big[512];
	assert_int_equal(cache_key(addr, 256, big, sizeof(big)), 0);

	/* cap must hold the NUL too. */
	char small[8];
	assert_int_equal(cache_key("ab@X.org", 8, small, 8), 0);
	assert_int_equal(cache_key("ab@X.or", 7, small, 8), 7);
	assert_string_equal(small, "ab@x.or");
	assert_int_equal(cache_key("ab@X.or", 7, small, 0), 0);

	/* In place. */
	char inplace[CACHE_KEY_MAX] = "Bob@MAIL.Example.NET";
	assert_int_equal(cache_key(inplace, strlen(inplace), inplace, sizeof(inplace)), 20);
	assert_string_equal(inplace, "Bob@mail.example.net");
}

/* ---- store and lookup ------------------------------------------------- */

static void
test_store_lookup(void **state)
{
	struct drops d = { 0 };
	struct cache *c = cache_new(100, record_drop, &d);
	assert_non_null(c);

	struct verdict_entry e = mk(REASON_NO_SUCH_USER, 1000, 2000, 3000);
	e.code = 550;
	strcpy(e.enhanced, "5.1.1");
	strcpy(e.mx, "mx2.example.org");
	e.catch_all = TRI_UNKNOWN;
	e.tls = TRI_NO;
	strcpy(e.text, "5.1.1 <bob@example.org>: \"Recipient\\ address\" rejected\x01\xff");
	assert_int_equal(cache_store(c, "bob@example.org", 15, &e, 1000), CACHE_STORED);
	assert_int_equal(cache_entries(c), 1);

	enum cache_state st = CACHE_FRESH;
	assert_null(get(c, "alice@example.org", 1000, &st));
	assert_int_equal(st, CACHE_MISS);
	assert_null(get(c, "Bob@example.org", 1000, &st));  /* local part keeps case */
	assert_int_equal(st, CACHE_MISS);
	assert_null(get(c, "bob@example.or", 1000, &st));
	assert_null(get(c, "bob@example.org ", 1000, &st));

	const struct verdict_entry *got = get(c, "bob@example.org", 1000, &st);
	assert_non_null(got);
	assert_int_equal(st, CACHE_FRESH);
	assert_entry_eq(got, &e);
	/* state may be NULL. */
	assert_non_null(cache_lookup(c, "bob@example.org", 15, 1000, NULL));
	assert_null(cache_lookup(c, "nobody@example.org", 18, 1000, NULL));

	/* Fields without their NUL are cut at size - 1; an inner NUL ends a
	 * string. */
	struct verdict_entry f = mk(REASON_ACCEPTED, 0, 10, 20);
	memset(f.enhanced, 'x', sizeof(f.enhanced));
	memset(f.mx, 'm', sizeof(f.mx));
	memset(f.text, 't', sizeof(f.text));
	assert_int_equal(cache_store(c, "x@example.org", 13, &f, 0), CACHE_STORED);
	got = get(c, "x@example.org", 0, &st);
	assert_non_null(got);
	assert_int_equal(strlen(got->enhanced), sizeof(f.enhanced) - 1);
	assert_int_equal(strlen(got->mx), sizeof(f.mx) - 1);
	assert_int_equal(strlen(got->text), sizeof(f.text) - 1);
	assert_int_equal(got->text[0], 't');

	memcpy(f.text, "ab\0cd", 6);
	f.enhanced[0] = '\0';
	f.mx[0] = '\0';
	assert_int_equal(cache_store(c, "x@example.org", 13, &f, 0), CACHE_STORED);
	got = get(c, "x@example.org", 0, &st);
	assert_non_null(got);
	assert_string_equal(got->text, "ab");
	assert_string_equal(got->enhanced, "");
	assert_string_equal(got->mx, "");
	assert_int_equal(cache_entries(c), 2);
	assert_int_equal(d.n, 0);   /* replacing is not dropping */
	cache_free(c);
	assert_int_equal(d.n, 0);   /* nor is freeing */
}

static void
test_invalid_input(void **state)
{
	struct drops d = { 0 };
	struct cache *c = cache_new(10, record_drop, &d);
	assert_non_null(c);
	struct verdict_entry e = mk(REASON_ACCEPTED, 0, 10, 20);
	char longkey[CACHE_KEY_MAX + 1];

	memset(longkey, 'a', sizeof(longkey));
	memcpy(longkey + 100, "@example.org", 12);
	assert_int_equal(cache_store(c, "a@b", 0, &e, 0), CACHE_NOMEM);
	assert_int_equal(cache_store(c, longkey, CACHE_KEY_MAX, &e, 0), CACHE_NOMEM);
	assert_int_equal(cache_store(c, "nobody", 6, &e, 0), CACHE_NOMEM);
	assert_int_equal(cache_store(c, "@x.org", 6, &e, 0), CACHE_NOMEM);
	assert_int_equal(cache_store(c, "x@", 2, &e, 0), CACHE_NOMEM);
	assert_int_equal(cache_store(c, "\"x@y.org", 8, &e, 0), CACHE_NOMEM);
	assert_int_equal(cache_store(c, "a@b", 3, NULL, 0), CACHE_NOMEM);
	e.reason = REASON__COUNT;
	assert_int_equal(cache_store(c, "a@b", 3, &e, 0), CACHE_NOMEM);
	e = mk(REASON_ACCEPTED, 0, 10, 20);
	e.catch_all = (enum tristate)3;
	assert_int_equal(cache_store(c, "a@b", 3, &e, 0), CACHE_NOMEM);
	e = mk(REASON_ACCEPTED, 0, 10, 20);
	e.tls = (enum tristate)-1;
	assert_int_equal(cache_store(c, "a@b", 3, &e, 0), CACHE_NOMEM);
	assert_int_equal(cache_entries(c), 0);

	/* The longest key is fine. */
	e = mk(REASON_ACCEPTED, 0, 10, 20);
	assert_int_equal(cache_store(c, longkey, CACHE_KEY_MAX - 1, &e, 0), CACHE_STORED);
	assert_non_null(cache_lookup(c, longkey, CACHE_KEY_MAX - 1, 0, NULL));
	enum cache_state st = CACHE_FRESH;
	assert_null(cache_lookup(c, longkey, CACHE_KEY_MAX, 0, &st));
	assert_int_equal(st, CACHE_MISS);
	assert_null(cache_lookup(c, "", 0, 0, &st));
	assert_int_equal(cache_forget_address(c, longkey, CACHE_KEY_MAX), 0);
	assert_int_equal(cache_forget_domain(c, "", 0), 0);
	assert_int_equal(cache_forget_address(c, longkey, CACHE_KEY_MAX - 1), 1);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.malformed, 0);
	cache_free(c);
}

/* ---- moments ---------------------------------------------------------- */

static void
test_states(void **state)
{
	struct drops d = { 0 };
	struct cache *c = cache_new(10, record_drop, &d);
	enum cache_state st;
	assert_non_null(c);

	assert_int_equal(put(c, "a@example.org", REASON_ACCEPTED, 1000, 3000), CACHE_STORED);
	struct verdict_entry e = mk(REASON_ACCEPTED, 1000, 2000, 3000);
	assert_int_equal(cache_store(c, "a@example.org", 13, &e, 1000), CACHE_STORED);

	assert_non_null(get(c, "a@example.org", 999, &st));
	assert_int_equal(st, CACHE_FRESH);
	assert_non_null(get(c, "a@example.org", 1999, &st));
	assert_int_equal(st, CACHE_FRESH);
	assert_non_null(get(c, "a@example.org", 2000, &st));
	assert_int_equal(st, CACHE_REFRESH);
	assert_non_null(get(c, "a@example.org", 2999, &st));
	assert_int_equal(st, CACHE_REFRESH);
	/* The state follows the clock, not the history. */
	assert_non_null(get(c, "a@example.org", 1500, &st));
	assert_int_equal(st, CACHE_FRESH);
	assert_int_equal(d.n, 0);

	st = CACHE_FRESH;
	assert_null(get(c, "a@example.org", 3000, &st));
	assert_int_equal(st, CACHE_MISS);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.key[0], "a@example.org");
	assert_int_equal(cache_entries(c), 0);
	assert_int_equal(cache_evictions(c), 0);
	/* Gone: no second drop, even at an earlier time. */
	assert_null(get(c, "a@example.org", 1500, &st));
	assert_int_equal(st, CACHE_MISS);
	assert_int_equal(d.n, 1);

	/* refresh at or past expires: fresh until it expires. */
	e = mk(REASON_NO_SUCH_USER, 0, 5000, 3000);
	assert_int_equal(cache_store(c, "b@example.org", 13, &e, 0), CACHE_STORED);
	assert_non_null(get(c, "b@example.org", 2999, &st));
	assert_int_equal(st, CACHE_FRESH);
	assert_null(get(c, "b@example.org", 3000, &st));
	assert_int_equal(d.n, 2);

	/* Stored already expired: kept until looked up, then dropped. */
	e = mk(REASON_TIMEOUT, 100, 100, 100);
	assert_int_equal(cache_store(c, "c@example.org", 13, &e, 100), CACHE_STORED);
	assert_int_equal(cache_entries(c), 1);
	assert_null(get(c, "c@example.org", 100, &st));
	assert_int_equal(d.n, 3);
	assert_int_equal(cache_entries(c), 0);

	/* Extreme times. */
	e = mk(REASON_ACCEPTED, INT64_MIN, INT64_MAX, INT64_MAX);
	assert_int_equal(cache_store(c, "d@example.org", 13, &e, INT64_MIN), CACHE_STORED);
	assert_non_null(get(c, "d@example.org", INT64_MAX - 1, &st));
	assert_int_equal(st, CACHE_FRESH);
	assert_null(get(c, "d@example.org", INT64_MAX, &st));
	assert_int_equal(d.malformed, 0);
	cache_free(c);
}

/* ---- the positive-entry rule ------------------------------------------ */

static void
test_positive_rule_all_pairs(void **state)
{
	for (unsigned r1 = 0; r1 < REASON__COUNT; r1++)
		for (unsigned r2 = 0; r2 < REASON__COUNT; r2++)
			for (int expired = 0; expired <= 1; expired++) {
				struct drops d = { 0 };
				struct cache *c = cache_new(4, record_drop, &d);
				assert_non_null(c);
				struct verdict_entry old = mk((enum reason)r1, 100, 500, 1000);
				old.code = 1;
				assert_int_equal(cache_store(c, "k@example.org", 13, &old, 100),
				    CACHE_STORED);
				int64_t now = expired ? 1000 : 999;
				struct verdict_entry nw = mk((enum reason)r2, now, now + 10, now + 20);
				nw.code = 2;
				strcpy(nw.text, "new");
				bool keep = cache_kind_of((enum reason)r1) == CACHE_POSITIVE &&
				    !expired && cache_kind_of((enum reason)r2) == CACHE_TEMPORARY;
				enum cache_store_result res = cache_store(c, "k@example.org", 13,
				    &nw, now);
				if (res != (keep ? CACHE_KEPT : CACHE_STORED))
					fail_msg("%s then %s, %s: result %d", reason_name(r1),
					    reason_name(r2), expired ? "expired" : "live", res);
				enum cache_state st;
				const struct verdict_entry *got = get(c, "k@example.org", now, &st);
				assert_non_null(got);
				if (keep)
					assert_entry_eq(got, &old);
				else
					assert_entry_eq(got, &nw);
				assert_int_equal(cache_entries(c), 1);
				assert_int_equal(d.n, 0);
				cache_free(c);
			}
}

/* The same rule, spelled out for the cases an operator would name. */
static void
test_positive_rule_cases(void **state)
{
	static const struct {
		enum reason old, nw;
		bool expired;
		enum cache_store_result want;
	} cases[] = {
		{ REASON_ACCEPTED, REASON_TIMEOUT, false, CACHE_KEPT },
		{ REASON_ACCEPTED, REASON_GREYLISTED, false, CACHE_KEPT },
		{ REASON_CATCH_ALL, REASON_CONNECT_FAILED, false, CACHE_KEPT },
		{ REASON_UNVERIFIABLE, REASON_TEMPFAIL, false, CACHE_KEPT },
		{ REASON_ACCEPTED, REASON_TIMEOUT, true, CACHE_STORED },
		{ REASON_ACCEPTED, REASON_NO_SUCH_USER, false, CACHE_STORED },
		{ REASON_ACCEPTED, REASON_MAILBOX_FULL, false, CACHE_STORED },
		{ REASON_ACCEPTED, REASON_CATCH_ALL, false, CACHE_STORED },
		{ REASON_MAILBOX_FULL, REASON_TIMEOUT, false, CACHE_STORED },
		{ REASON_NO_SUCH_USER, REASON_TIMEOUT, false, CACHE_STORED },
		{ REASON_TIMEOUT, REASON_GREYLISTED, false, CACHE_STORED },
		{ REASON_TIMEOUT, REASON_ACCEPTED, false, CACHE_STORED },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cache *c = cache_new(4, NULL, NULL);
		assert_non_null(c);
		assert_int_equal(put(c, "k@x.org", cases[i].old, 0, 100), CACHE_STORED);
		int64_t now = cases[i].expired ? 100 : 50;
		if (put(c, "k@x.org", cases[i].nw, now, now + 100) != cases[i].want)
			fail_msg("case %zu: %s over %s", i, reason_name(cases[i].nw),
			    reason_name(cases[i].old));
		const struct verdict_entry *got = get(c, "k@x.org", now, NULL);
		assert_non_null(got);
		assert_int_equal(got->reason,
		    cases[i].want == CACHE_KEPT ? cases[i].old : cases[i].nw);
		cache_free(c);
	}
}

/* ---- LRU -------------------------------------------------------------- */

static void
test_lru_eviction(void **state)
{
	struct drops d = { 0 };
	struct cache *c = cache_new(3, record_drop, &d);
	assert_non_null(c);

	assert_int_equal(put(c, "a@x.org", REASON_ACCEPTED, 0, 100), CACHE_STORED);
	assert_int_equal(put(c, "b@x.org", REASON_ACCEPTED, 0, 100), CACHE_STORED);
	assert_int_equal(put(c, "c@y.org", REASON_ACCEPTED, 0, 100), CACHE_STORED);
	assert_true(has(c, "a@x.org", 1));           /* a c b */
	assert_false(has(c, "zz@x.org", 1));         /* a miss moves nothing */
	assert_int_equal(put(c, "zz@", REASON_ACCEPTED, 0, 100), CACHE_NOMEM);
	assert_int_equal(d.n, 0);

	assert_int_equal(put(c, "d@y.org", REASON_ACCEPTED, 1, 100), CACHE_STORED);  /* d a c */
	assert_int_equal(d.n, 1);
	assert_string_equal(d.key[0], "b@x.org");
	assert_int_equal(cache_evictions(c), 1);
	assert_int_equal(cache_entries(c), 3);

	/* Replacing at capacity evicts nothing and moves to the front. */
	assert_int_equal(put(c, "c@y.org", REASON_NO_SUCH_USER, 2, 100), CACHE_STORED); /* c d a */
	assert_int_equal(d.n, 1);
	assert_int_equal(put(c, "e@z.org", REASON_ACCEPTED, 3, 100), CACHE_STORED);     /* e c d */
	assert_int_equal(d.n, 2);
	assert_string_equal(d.key[1], "a@x.org");

	/* A kept store counts as use. */
	assert_int_equal(put(c, "d@y.org", REASON_TIMEOUT, 4, 100), CACHE_KEPT);        /* d e c */
	assert_int_equal(put(c, "f@z.org", REASON_ACCEPTED, 5, 100), CACHE_STORED);     /* f d e */
	assert_int_equal(d.n, 3);
	assert_string_equal(d.key[2], "c@y.org");
	assert_int_equal(cache_evictions(c), 3);

	assert_true(has(c, "d@y.org", 6));
	assert_true(has(c, "e@z.org", 6));
	assert_true(has(c, "f@z.org", 6));
	assert_false(has(c, "a@x.org", 6));
	assert_false(has(c, "b@x.org", 6));
	assert_false(has(c, "c@y.org", 6));
	assert_int_equal(d.n, 3);
	/* x.org left with its last entry; y.org holds d only. */
	assert_int_equal(cache_forget_domain(c, "x.org", 5), 0);
	assert_int_equal(cache_forget_domain(c, "y.org", 5), 1);
	assert_int_equal(cache_forget_domain(c, "z.org", 5), 2);
	assert_int_equal(cache_entries(c), 0);
	assert_int_equal(cache_evictions(c), 3);
	assert_int_equal(d.malformed, 0);
	cache_free(c);
}

/* Evicting the last other entry of the domain being stored into must not
 * free the domain under the new entry. */
static void
test_evict_same_domain(void **state)
{
	struct drops d = { 0 };
	struct cache *c = cache_new(1, record_drop, &d);
	assert_non_null(c);

	for (int i = 0; i < 50; i++) {
		char key[32];
		snprintf(key, sizeof(key), "u%d@%s.org", i, i % 3 ? "same" : "other");
		assert_int_equal(put(c, key, REASON_ACCEPTED, 0, 100), CACHE_STORED);
		assert_int_equal(cache_entries(c), 1);
	}
	assert_int_equal(d.n, 49);
	assert_int_equal(cache_forget_domain(c, "same.org", 8), 1);   /* u49 */
	assert_int_equal(cache_forget_domain(c, "other.org", 9), 0);
	cache_free(c);
}

static void
test_set_max(void **state)
{
	struct drops d = { 0 };
	struct cache *c = cache_new(10, record_drop, &d);
	char key[32];
	assert_non_null(c);

	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "k%d@x.org", i);
		assert_int_equal(put(c, key, REASON_ACCEPTED, 0, 100), CACHE_STORED);
	}
	assert_true(has(c, "k0@x.org", 1));  /* k0 k9 k8 ... k1 */
	cache_set_max(c, 4);
	assert_int_equal(cache_entries(c), 4);
	assert_int_equal(cache_evictions(c), 6);
	assert_int_equal(d.n, 6);
	for (int i = 0; i < 6; i++) {
		snprintf(key, sizeof(key), "k%d@x.org", i + 1);
		assert_string_equal(d.key[i], key);
	}
	cache_set_max(c, 4);
	cache_set_max(c, 100);
	assert_int_equal(d.n, 6);
	assert_true(has(c, "k0@x.org", 1));
	assert_true(has(c, "k7@x.org", 1));
	assert_true(has(c, "k8@x.org", 1));
	assert_true(has(c, "k9@x.org", 1));  /* k9 k8 k7 k0 */

	/* 0 disables the cache: everything goes, nothing is taken. */
	cache_set_max(c, 0);
	assert_int_equal(cache_entries(c), 0);
	assert_int_equal(d.n, 10);
	assert_string_equal(d.key[6], "k0@x.org");
	assert_string_equal(d.key[9], "k9@x.org");
	assert_int_equal(put(c, "k0@x.org", REASON_ACCEPTED, 0, 100), CACHE_NOMEM);
	assert_int_equal(cache_entries(c), 0);
	assert_false(has(c, "k0@x.org", 1));
	assert_int_equal(d.n, 10);
	assert_int_equal(cache_forget_domain(c, "x.org", 5), 0);

	cache_set_max(c, 2);
	assert_int_equal(put(c, "a@x.org", REASON_ACCEPTED, 0, 100), CACHE_STORED);
	assert_int_equal(put(c, "b@x.org", REASON_ACCEPTED, 0, 100), CACHE_STORED);
	assert_int_equal(put(c, "c@x.org", REASON_ACCEPTED, 0, 100), CACHE_STORED);
	assert_int_equal(cache_entries(c), 2);
	assert_int_equal(d.n, 11);
	assert_string_equal(d.key[10], "a@x.org");
	assert_int_equal(cache_evictions(c), 11);
	cache_free(c);
}

static void
test_max_zero(void **state)
{
	struct drops d = { 0 };
	struct cache *c = cache_new(0, record_drop, &d);
	assert_non_null(c);

	assert_int_equal(put(c, "a@x.org", REASON_ACCEPTED, 0, 100), CACHE_NOMEM);
	assert_int_equal(put(c, "a@x.org", REASON_TIMEOUT, 0, 100), CACHE_NOMEM);
	assert_false(has(c, "a@x.org", 0));
	assert_int_equal(cache_entries(c), 0);
	assert_int_equal(cache_evictions(c), 0);
	assert_int_equal(cache_forget_address(c, "a@x.org", 7), 0);
	assert_int_equal(d.n, 0);
	cache_free(c);
}

/* ---- FORGET ----------------------------------------------------------- */

static void
test_forget_address(void **state)
{
	struct drops d = { 0 };
	struct cache *c = cache_new(10, record_drop, &d);
	assert_non_null(c);

	assert_int_equal(put(c, "a@x.org", REASON_ACCEPTED, 0, 100), CACHE_STORED);
	assert_int_equal(put(c, "b@x.org", REASON_NO_SUCH_USER, 0, 100), CACHE_STORED);
	assert_int_equal(put(c, "a@y.org", REASON_ACCEPTED, 0, 100), CACHE_STORED);
	assert_int_equal(cache_forget_address(c, "a@x.org", 7), 1);
	assert_int_equal(d.n, 1);
	assert_string_equal(d.key[0], "a@x.org");
	assert_int_equal(cache_forget_address(c, "a@x.org", 7), 0);
	assert_int_equal(cache_forget_address(c, "A@x.org", 7), 0);
	assert_int_equal(d.n, 1);
	assert_false(has(c, "a@x.org", 0));
	assert_true(has(c, "b@x.org", 0));
	assert_true(has(c, "a@y.org", 0));
	assert_int_equal(cache_entries(c), 2);
	assert_int_equal(cache_evictions(c), 0);

	/* The domain's record goes with its last address, and comes back. */
	assert_int_equal(cache_forget_address(c, "b@x.org", 7), 1);
	assert_int_equal(cache_forget_domain(c, "x.org", 5), 0);
	assert_int_equal(put(c, "c@x.org", REASON_ACCEPTED, 0, 100), CACHE_STORED);
	assert_int_equal(cache_forget_domain(c, "x.org", 5), 1);
	assert_int_equal(cache_forget_domain(c, "y.org", 5), 1);
	assert_int_equal(cache_entries(c), 0);
	assert_int_equal(d.n, 4);
	cache_free(c);
}

static void
test_forget_domain(void **state)
{
	struct drops d = { 0 };
	struct cache *c = cache_new(5000, record_drop, &d);
	char key[64];
	assert_non_null(c);

	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "u%d@example.org", i);
		assert_int_equal(put(c, key, REASON_ACCEPTED, 0, 100), CACHE_STORED);
	}
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "u%d@example.net", i);
		assert_int_equal(put(c, key, REASON_ACCEPTED, 0, 100), CACHE_STORED);
		snprintf(key, sizeof(key), "u%d@sub.example.org", i);
		assert_int_equal(put(c, key, REASON_ACCEPTED, 0, 100), CACHE_STORED);
		snprintf(key, sizeof(key), "u%d@example.org.evil", i);
		assert_int_equal(put(c, key, REASON_ACCEPTED, 0, 100), CACHE_STORED);
	}
	/* Belongs to example.org: the '@' inside quotes does not split. */
	assert_int_equal(put(c, "\"x@example.net\"@example.org", REASON_ACCEPTED, 0, 100),
	    CACHE_STORED);
	/* Belongs to example.net: the last '@' splits. */
	assert_int_equal(put(c, "x@example.org@example.net", REASON_ACCEPTED, 0, 100),
	    CACHE_STORED);
	/* A key whose domain was not lowercased still files under it. */
	assert_int_equal(put(c, "z@Example.NET", REASON_ACCEPTED, 0, 100), CACHE_STORED);
	assert_int_equal(cache_entries(c), 1033);

	d.suffix = "@example.org";
	assert_int_equal(cache_forget_domain(c, "EXAMPLE.Org", 11), 1001);
	assert_int_equal(d.n, 1001);
	assert_int_equal(d.off_suffix, 0);
	assert_int_equal(d.malformed, 0);
	assert_int_equal(cache_entries(c), 32);
	assert_int_equal(cache_evictions(c), 0);
	assert_false(has(c, "u0@example.org", 0));
	assert_false(has(c, "u999@example.org", 0));
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "u%d@example.net", i);
		assert_true(has(c, key, 0));
		snprintf(key, sizeof(key), "u%d@sub.example.org", i);
		assert_true(has(c, key, 0));
		snprintf(key, sizeof(key), "u%d@example.org.evil", i);
		assert_true(has(c, key, 0));
	}
	assert_int_equal(cache_forget_domain(c, "example.org", 11), 0);
	assert_int_equal(cache_forget_domain(c, "example", 7), 0);
	assert_int_equal(cache_forget_domain(c, "org", 3), 0);
	assert_int_equal(cache_forget_domain(c, "@example.net", 12), 0);
	assert_int_equal(d.n, 1001);

	/* The "@example.org" set above was read by record_drop, called through
	 * the cache with &d, which cppcheck does not follow. */
	/* cppcheck-suppress redundantAssignment */
	d.suffix = NULL;
	assert_int_equal(cache_forget_domain(c, "example.net", 11), 12);
	assert_int_equal(cache_forget_domain(c, "Sub.Example.Org", 15), 10);
	assert_int_equal(cache_forget_domain(c, "example.org.evil", 16), 10);
	assert_int_equal(cache_entries(c), 0);
	assert_int_equal(d.n, 1033);

	/* UTF-8 octets are compared as they are. */
	assert_int_equal(put(c, "a@\xc3\xa4.de", REASON_ACCEPTED, 0, 100), CACHE_STORED);
	assert_int_equal(cache_forget_domain(c, "\xc3\x84.de", 5), 0);
	assert_int_equal(cache_forget_domain(c, "\xc3\xa4.DE", 5), 1);
	cache_free(c);
}

/* ---- the persistent record -------------------------------------------- */

/* CRC-32C, bit by bit: an independent statement of the record's check. */
static uint32_t
ref_crc32c(const unsigned char *p, size_t len)
{
	uint32_t crc = 0xffffffffU;

	for (size_t i = 0; i < len; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78U : crc >> 1;
	}
	return ~crc;
}

static void
put_le(unsigned char *p, uint64_t v, int octets)
{
	for (int i = 0; i < octets; i++, v >>= 8)
		p[i] = (unsigned char)v;
}

/* A record written from the layout in cache.c's comment, not by pack. */
static size_t
craft(unsigned char *out, unsigned version, unsigned reason, unsigned ca, unsigned tls,
    const char *enh, size_t enh_len, const char *mx, size_t mx_len,
    const char *text, size_t text_len, int32_t code, int64_t made, int64_t refresh,
    int64_t expires)
{
	memcpy(out, "pve", 3);
	out[3] = (unsigned char)version;
	out[4] = (unsigned char)reason;
	out[5] = (unsigned char)ca;
	out[6] = (unsigned char)tls;
	out[7] = (unsigned char)enh_len;
	out[8] = (unsigned char)mx_len;
	put_le(out + 9, text_len, 2);
	put_le(out + 11, (uint32_t)code, 4);
	put_le(out + 15, (uint64_t)made, 8);
	put_le(out + 23, (uint64_t)refresh, 8);
	put_le(out + 31, (uint64_t)expires, 8);
	size_t n = 39;
	memcpy(out + n, enh, enh_len);
	n += enh_len;
	memcpy(out + n, mx, mx_len);
	n += mx_len;
	memcpy(out + n, text, text_len);
	n += text_len;
	put_le(out + n, ref_crc32c(out, n), 4);
	return n + 4;
}

static bool
unpack_exact(const unsigned char *rec, size_t len, struct verdict_entry *e)
{
	/* A copy of exactly len octets, so ASan sees any read past it. */
	unsigned char *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, rec, len);
	bool ok = verdict_entry_unpack(copy, len, e);
	free(copy);
	return ok;
}

static struct verdict_entry
hostile_entry(void)
{
	struct verdict_entry e;

	memset(&e, 0, sizeof(e));
	e.reason = REASON_BLOCKED;
	e.code = INT_MIN;
	memcpy(e.enhanced, "\"\\\r\n\x7f\xff" "5.7.1ab", 13);
	for (size_t i = 0; i < sizeof(e.mx) - 1; i++)
		e.mx[i] = (char)(1 + i % 255);
	for (size_t i = 0; i < sizeof(e.text) - 1; i++)
		e.text[i] = (char)("\"\\\r\n\t \x01\xff" "abc=x y"[i % 15]);
	e.catch_all = TRI_YES;
	e.tls = TRI_UNKNOWN;
	e.made = INT64_MIN;
	e.refresh = -1;
	e.expires = INT64_MAX;
	return e;
}

static void
test_pack_round_trip(void **state)
{
	unsigned char buf[1024];
	struct verdict_entry in[6], out;

	memset(in, 0, sizeof(in));
	in[0] = mk(REASON_ACCEPTED, 1700000000, 1700300000, 1700600000);
	in[1].reason = REASON_SYNTAX;              /* every string empty */
	in[2] = hostile_entry();
	in[3] = mk(REASON_BUSY, 0, 0, 0);
	in[3].code = INT_MAX;
	in[3].catch_all = TRI_UNKNOWN;
	in[3].tls = TRI_NO;
	in[4] = mk((enum reason)(REASON__COUNT - 1), -5, -4, -3);
	in[4].code = -1;
	in[5] = mk(REASON_MAILBOX_FULL, 1, 2, 3);
	memset(in[5].enhanced, '9', sizeof(in[5].enhanced) - 1);
	memset(in[5].text, 'T', sizeof(in[5].text) - 1);

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		size_t want = REC_MIN + strlen(in[i].enhanced) + strlen(in[i].mx) +
		    strlen(in[i].text);
		size_t n = verdict_entry_pack(&in[i], buf, sizeof(buf));
		assert_int_equal(n, want);
		memset(&out, 0x5a, sizeof(out));
		assert_true(unpack_exact(buf, n, &out));
		assert_entry_eq(&out, &in[i]);
	}

	/* Every reason and tristate. */
	for (unsigned r = 0; r < REASON__COUNT; r++)
		for (unsigned t = 0; t < 9; t++) {
			struct verdict_entry e = mk((enum reason)r, r, r + 1, r + 2);
			e.catch_all = (enum tristate)(t % 3);
			e.tls = (enum tristate)(t / 3);
			size_t n = verdict_entry_pack(&e, buf, sizeof(buf));
			assert_true(n > 0);
			assert_true(unpack_exact(buf, n, &out));
			assert_entry_eq(&out, &e);
		}

	/* Unterminated fields pack as the cache stores them: size - 1. */
	struct verdict_entry e = mk(REASON_ACCEPTED, 0, 0, 0);
	memset(e.enhanced, 'x', sizeof(e.enhanced));
	memset(e.text, 'y', sizeof(e.text));
	size_t n = verdict_entry_pack(&e, buf, sizeof(buf));
	assert_int_equal(n, REC_MIN + 15 + strlen(e.mx) + 511);
	assert_true(unpack_exact(buf, n, &out));
	assert_int_equal(strlen(out.enhanced), 15);
	assert_int_equal(strlen(out.text), 511);
}

static void
test_pack_capacity(void **state)
{
	struct verdict_entry e = hostile_entry();
	unsigned char buf[1024], ref[1024];
	size_t need = verdict_entry_pack(&e, ref, sizeof(ref));

	assert_true(need > REC_MIN);
	for (size_t cap = 0; cap < need; cap++) {
		memset(buf, 0xaa, sizeof(buf));
		assert_int_equal(verdict_entry_pack(&e, buf, cap), 0);
		for (size_t i = 0; i < sizeof(buf); i++)
			assert_int_equal(buf[i], 0xaa);
	}
	assert_int_equal(verdict_entry_pack(&e, buf, need), need);
	assert_memory_equal(buf, ref, need);
	assert_int_equal(verdict_entry_pack(&e, NULL, 1024), 0);

	/* Nothing unpack would refuse is ever packed. */
	e.reason = REASON__COUNT;
	assert_int_equal(verdict_entry_pack(&e, buf, sizeof(buf)), 0);
	e = hostile_entry();
	e.tls = (enum tristate)3;
	assert_int_equal(verdict_entry_pack(&e, buf, sizeof(buf)), 0);
	e = hostile_entry();
	e.catch_all = (enum tristate)7;
	assert_int_equal(verdict_entry_pack(&e, buf, sizeof(buf)), 0);
}

static void
test_record_layout(void **state)
{
	unsigned char rec[1024], packed[1024];
	struct verdict_entry e;

	assert_int_equal(ref_crc32c((const unsigned char *)"123456789", 9), 0xe3069283U);

	/* The layout is a promise to the disk: pack writes exactly it. */
	size_t n = craft(rec, 1, REASON_NO_SUCH_USER, TRI_NO, TRI_YES, "5.1.1", 5,
	    "mx.example.org", 14, "No such user", 12, 550, 1700000000, 1700086400,
	    1700172800);
	assert_true(unpack_exact(rec, n, &e));
	assert_int_equal(e.reason, REASON_NO_SUCH_USER);
	assert_int_equal(e.code, 550);
	assert_string_equal(e.enhanced, "5.1.1");
	assert_string_equal(e.mx, "mx.example.org");
	assert_string_equal(e.text, "No such user");
	assert_int_equal(e.catch_all, TRI_NO);
	assert_int_equal(e.tls, TRI_YES);
	assert_true(e.made == 1700000000 && e.refresh == 1700086400 && e.expires == 1700172800);
	assert_int_equal(verdict_entry_pack(&e, packed, sizeof(packed)), n);
	assert_memory_equal(packed, rec, n);

	/* Well-formed but not acceptable, each with a correct CRC. */
	struct verdict_entry canary, before;
	memset(&canary, 0x77, sizeof(canary));
	before = canary;
#define REFUSED(...) do { \
	size_t len_ = craft(rec, __VA_ARGS__); \
	assert_false(unpack_exact(rec, len_, &canary)); \
	assert_memory_equal(&canary, &before, sizeof(canary)); \
} while (0)
	REFUSED(0, REASON_ACCEPTED, 0, 0, "", 0, "", 0, "", 0, 250, 0, 0, 0);
	REFUSED(2, REASON_ACCEPTED, 0, 0, "", 0, "", 0, "", 0, 250, 0, 0, 0);
	REFUSED(1, REASON__COUNT, 0, 0, "", 0, "", 0, "", 0, 250, 0, 0, 0);
	REFUSED(1, 255, 0, 0, "", 0, "", 0, "", 0, 250, 0, 0, 0);
	REFUSED(1, REASON_ACCEPTED, 3, 0, "", 0, "", 0, "", 0, 250, 0, 0, 0);
	REFUSED(1, REASON_ACCEPTED, 0, 3, "", 0, "", 0, "", 0, 250, 0, 0, 0);
	REFUSED(1, REASON_ACCEPTED, 0, 0, "0123456789abcdef", 16, "", 0, "", 0, 250, 0, 0, 0);
	static char text512[512];
	memset(text512, 'a', sizeof(text512));
	REFUSED(1, REASON_ACCEPTED, 0, 0, "", 0, "", 0, text512, 512, 250, 0, 0, 0);
	REFUSED(1, REASON_ACCEPTED, 0, 0, "2.1\0.5", 6, "", 0, "", 0, 250, 0, 0, 0);
	REFUSED(1, REASON_ACCEPTED, 0, 0, "", 0, "mx\0", 3, "", 0, 250, 0, 0, 0);
	REFUSED(1, REASON_ACCEPTED, 0, 0, "", 0, "", 0, "\0ok", 3, 250, 0, 0, 0);
#undef REFUSED
	/* Magic. */
	n = craft(rec, 1, REASON_ACCEPTED, 0, 0, "", 0, "", 0, "", 0, 250, 0, 0, 0);
	assert_true(unpack_exact(rec, n, &e));
	rec[0] = 'P';
	put_le(rec + n - 4, ref_crc32c(rec, n - 4), 4);
	assert_false(unpack_exact(rec, n, &e));
	/* Lengths that claim more, or less, than is there (CRC recomputed). */
	n = craft(rec, 1, REASON_ACCEPTED, 0, 0, "2.1.5", 5, "mx", 2, "ok", 2, 250, 0, 0, 0);
	for (int field = 7; field <= 9; field++)
		for (int delta = -1; delta <= 1; delta += 2) {
			unsigned char bad[1024];
			memcpy(bad, rec, n);
			bad[field] = (unsigned char)(bad[field] + delta);
			put_le(bad + n - 4, ref_crc32c(bad, n - 4), 4);
			assert_false(unpack_exact(bad, n, &e));
		}
	assert_false(verdict_entry_unpack(NULL, 0, &e));
	assert_false(verdict_entry_unpack(rec, n, NULL));
}

static void
test_unpack_truncations_and_flips(void **state)
{
	struct verdict_entry in[2], out;
	unsigned char rec[1024];

	in[0] = hostile_entry();
	in[1] = mk(REASON_ACCEPTED, 1, 2, 3);
	for (int k = 0; k < 2; k++) {
		size_t n = verdict_entry_pack(&in[k], rec, sizeof(rec) - 1);
		assert_true(n > 0);
		for (size_t len = 0; len < n; len++)
			if (unpack_exact(rec, len, &out))
				fail_msg("record %d cut to %zu of %zu accepted", k, len, n);
		rec[n] = 0;
		assert_false(unpack_exact(rec, n + 1, &out));
		/* Every single-bit error is caught. */
		for (size_t i = 0; i < n; i++)
			for (int b = 0; b < 8; b++) {
				rec[i] ^= (unsigned char)(1u << b);
				if (unpack_exact(rec, n, &out))
					fail_msg("record %d: bit %d of octet %zu flipped, accepted",
					    k, b, i);
				rec[i] ^= (unsigned char)(1u << b);
			}
		assert_true(unpack_exact(rec, n, &out));
		assert_entry_eq(&out, &in[k]);
	}
}

/* What unpack should say of a record whose CRC is right: the format's
 * rules, stated apart from cache.c. */
static bool
model_valid(const unsigned char *r, size_t len)
{
	if (len < REC_MIN || memcmp(r, "pve\001", 4) != 0)
		return false;
	size_t enh = r[7], mx = r[8], text = r[9] | (size_t)r[10] << 8;
	if (r[4] >= REASON__COUNT || r[5] > 2 || r[6] > 2 || enh > 15 || text > 511 ||
	    len != REC_MIN + enh + mx + text)
		return false;
	return memchr(r + 39, '\0', enh + mx + text) == NULL;
}

static void
test_unpack_fuzz(void **state)
{
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	unsigned char buf[1200], base[1024];
	struct verdict_entry e = hostile_entry(), out;
	size_t base_len = verdict_entry_pack(&e, base, sizeof(base));
	unsigned long accepted_structural = 0;

	assert_true(base_len > 0);
	for (int iter = 0; iter < 100000; iter++) {
		size_t len;
		bool want;
		switch (iter % 4) {
		case 0:
			/* Noise. */
			len = rnd(&s) % sizeof(buf);
			for (size_t i = 0; i < len; i++)
				buf[i] = (unsigned char)rnd(&s);
			want = false;
			break;
		case 1:
			/* Noise behind a valid magic. */
			len = REC_MIN + rnd(&s) % (sizeof(buf) - REC_MIN);
			for (size_t i = 0; i < len; i++)
				buf[i] = (unsigned char)rnd(&s);
			memcpy(buf, "pve\001", 4);
			want = false;
			break;
		case 2: {
			/* A valid record with a few octets changed. */
			len = base_len;
			memcpy(buf, base, len);
			int k = 1 + (int)(rnd(&s) % 4);
			for (int j = 0; j < k; j++)
				buf[rnd(&s) % len] ^= (unsigned char)(1 + rnd(&s) % 255);
			want = memcmp(buf, base, len) == 0;
			break;
		}
		default: {
			/* Header fields at random, lengths near the truth, CRC
			 * recomputed: only the field checks stand in the way. */
			size_t enh = rnd(&s) % 18, mx = rnd(&s) % 256, text = rnd(&s) % 514;
			len = REC_MIN + enh + mx + text;
			if (rnd(&s) % 4 == 0)
				len = len + (rnd(&s) % 5) - 2;
			if (len > sizeof(buf))
				len = sizeof(buf);
			if (len < REC_MIN)
				len = REC_MIN;
			for (size_t i = 0; i < len; i++)
				buf[i] = (unsigned char)(1 + rnd(&s) % 255);
			memcpy(buf, "pve\001", 4);
			buf[4] = (unsigned char)(rnd(&s) % (REASON__COUNT + 3));
			buf[5] = (unsigned char)(rnd(&s) % 4);
			buf[6] = (unsigned char)(rnd(&s) % 4);
			buf[7] = (unsigned char)enh;
			buf[8] = (unsigned char)mx;
			put_le(buf + 9, text, 2);
			if (rnd(&s) % 8 == 0 && len > REC_MIN)
				buf[39 + rnd(&s) % (len - REC_MIN)] = 0;
			put_le(buf + len - 4, ref_crc32c(buf, len - 4), 4);
			want = model_valid(buf, len);
			break;
		}
		}
		bool got = unpack_exact(buf, len, &out);
		if (got != want)
			fail_msg("iteration %d (kind %d, %zu octets): unpack %s", iter, iter % 4,
			    len, got ? "accepted" : "refused");
		if (got) {
			/* What it accepts is whole: strings end inside their fields
			 * and pack gives back the very same octets. */
			unsigned char again[1024];
			assert_true(memchr(out.enhanced, '\0', sizeof(out.enhanced)) != NULL);
			assert_true(memchr(out.mx, '\0', sizeof(out.mx)) != NULL);
			assert_true(memchr(out.text, '\0', sizeof(out.text)) != NULL);
			assert_int_equal(verdict_entry_pack(&out, again, sizeof(again)), len);
			assert_memory_equal(again, buf, len);
			if (iter % 4 == 3)
				accepted_structural++;
		}
	}
	/* The structural half must have reached the accepting path too, or
	 * the loop proved nothing about it. */
	assert_true(accepted_structural > 100);
}

/* ---- a million entries ------------------------------------------------ */

/* "<prefix><i>@<dp><dom>.example", without snprintf's cost. */
static size_t
mkey(char *out, const char *prefix, unsigned i, const char *dp, unsigned dom)
{
	char digits[16];
	size_t n = 0, k;

	for (const char *p = prefix; *p != '\0'; p++)
		out[n++] = *p;
	k = 0;
	do
		digits[k++] = (char)('0' + i % 10);
	while ((i /= 10) != 0);
	while (k > 0)
		out[n++] = digits[--k];
	out[n++] = '@';
	for (const char *p = dp; *p != '\0'; p++)
		out[n++] = *p;
	do
		digits[k++] = (char)('0' + dom % 10);
	while ((dom /= 10) != 0);
	while (k > 0)
		out[n++] = digits[--k];
	memcpy(out + n, ".example", 9);
	return n + 8;
}

static void
test_million(void **state)
{
	enum { N = 1000000, DOMAINS = 1000 };
	struct drops d = { 0 };
	struct cache *c = cache_new(N, record_drop, &d);
	struct verdict_entry pos = mk(REASON_ACCEPTED, 0, 50, 100);
	struct verdict_entry neg = mk(REASON_NO_SUCH_USER, 0, 50, 100);
	char key[64];
	size_t len;
	assert_non_null(c);

	for (unsigned i = 0; i < N; i++) {
		len = mkey(key, "user", i, "d", i % DOMAINS);
		if (cache_store(c, key, len, i % 2 ? &pos : &neg, 0) != CACHE_STORED)
			fail_msg("store %u failed", i);
	}
	assert_int_equal(cache_entries(c), N);
	assert_int_equal(cache_evictions(c), 0);
	assert_int_equal(d.n, 0);

	for (unsigned i = 0; i < N; i++) {
		len = mkey(key, "user", i, "d", i % DOMAINS);
		enum cache_state st;
		const struct verdict_entry *e = cache_lookup(c, key, len, 60, &st);
		if (e == NULL || st != CACHE_REFRESH ||
		    e->reason != (i % 2 ? REASON_ACCEPTED : REASON_NO_SUCH_USER))
			fail_msg("lookup %u", i);
	}

	/* A hundred domains of a thousand each. */
	size_t gone = 0;
	for (unsigned dom = 0; dom < 100; dom++) {
		len = (size_t)snprintf(key, sizeof(key), "D%u.Example", dom);
		gone += cache_forget_domain(c, key, len);
	}
	assert_int_equal(gone, 100000);
	assert_int_equal(cache_entries(c), N - 100000);
	/* Every address of domain 100 one by one: its record goes too. */
	for (unsigned i = 100; i < N; i += DOMAINS) {
		len = mkey(key, "user", i, "d", 100);
		assert_int_equal(cache_forget_address(c, key, len), 1);
	}
	assert_int_equal(cache_forget_domain(c, "d100.example", 12), 0);
	assert_int_equal(cache_entries(c), N - 101000);
	assert_int_equal(d.n, 101000);

	/* Refill past the limit: exactly the excess is evicted, oldest first
	 * (d101's addresses were the oldest left). */
	for (unsigned i = 0; i < 150000; i++) {
		len = mkey(key, "new", i, "n", i % 10);
		assert_int_equal(cache_store(c, key, len, &pos, 0), CACHE_STORED);
	}
	assert_int_equal(cache_entries(c), N);
	assert_int_equal(cache_evictions(c), 150000 - 101000);
	assert_false(has(c, "user101@d101.example", 60));
	assert_true(has(c, "user999999@d999.example", 60));

	cache_set_max(c, 10000);
	assert_int_equal(cache_entries(c), 10000);
	assert_int_equal(cache_evictions(c), 150000 - 101000 + N - 10000);
	assert_int_equal(d.n, 101000 + 150000 - 101000 + N - 10000);
	assert_int_equal(d.malformed, 0);
	/* The newest stayed. */
	assert_true(has(c, "new149999@n9.example", 60));
	assert_int_equal(cache_forget_domain(c, "n9.example", 10), 1000);
	/* Expiry drops on lookup. */
	assert_false(has(c, "new149998@n8.example", 100));
	assert_int_equal(cache_entries(c), 8999);
	cache_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kind_of),
		cmocka_unit_test(test_key_normalise),
		cmocka_unit_test(test_store_lookup),
		cmocka_unit_test(test_invalid_input),
		cmocka_unit_test(test_states),
		cmocka_unit_test(test_positive_rule_all_pairs),
		cmocka_unit_test(test_positive_rule_cases),
		cmocka_unit_test(test_lru_eviction),
		cmocka_unit_test(test_evict_same_domain),
		cmocka_unit_test(test_set_max),
		cmocka_unit_test(test_max_zero),
		cmocka_unit_test(test_forget_address),
		cmocka_unit_test(test_forget_domain),
		cmocka_unit_test(test_pack_round_trip),
		cmocka_unit_test(test_pack_capacity),
		cmocka_unit_test(test_record_layout),
		cmocka_unit_test(test_unpack_truncations_and_flips),
		cmocka_unit_test(test_unpack_fuzz),
		cmocka_unit_test(test_million),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
