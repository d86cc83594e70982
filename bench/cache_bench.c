/*
 * cache_bench — what the verdict cache costs at its default size.
 *
 *   cache_bench [-n ENTRIES]
 *
 * Fills a cache with ENTRIES (default 1,000,000) verdicts shaped like real
 * ones (keys of 20..30 octets over 10,000 domains, "2.1.5"/"5.1.1", an MX
 * name of about 20 octets; two thirds answer "2.1.5 Ok", one third carry an
 * 80-octet rejection text), then reports:
 *   - inserts/s (new keys, the table growing as it goes),
 *   - lookups/s (hits, in random order) and misses/s,
 *   - replacing stores/s (same keys, new verdicts),
 *   - evicting stores/s (new keys into the full cache),
 *   - pack and unpack records/s,
 *   - heap and RSS per entry (malloc's own count and the resident set, both
 *     measured against a baseline taken after the keys were made).
 * Keys are built before timing, so formatting them is not counted.
 */
#include "autoconfig.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"

struct keys {
	char *buf;
	size_t *off;
	uint8_t *len;
	size_t n;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static size_t
heap_used(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static int
keys_make(struct keys *k, size_t n, const char *prefix)
{
	k->buf = malloc(n * 40);
	k->off = malloc(n * sizeof(*k->off));
	k->len = malloc(n);
	k->n = n;
	if (k->buf == NULL || k->off == NULL || k->len == NULL)
		return -1;
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		int len = snprintf(k->buf + at, 40, "%s%zu@mail%zu.example", prefix,
		    i, i % 10000);
		k->off[i] = at;
		k->len[i] = (uint8_t)len;
		at += (size_t)len;
	}
	return 0;
}

static struct verdict_entry
entry_for(size_t i)
{
	struct verdict_entry e;

	memset(&e, 0, sizeof(e));
	e.made = 1700000000;
	e.refresh = e.made + 86400;
	e.expires = e.made + 604800;
	snprintf(e.mx, sizeof(e.mx), "mx%zu.mail%zu.example", i % 2, i % 10000);
	e.catch_all = TRI_NO;
	e.tls = TRI_YES;
	if (i % 3 == 0) {
		e.reason = REASON_NO_SUCH_USER;
		e.code = 550;
		strcpy(e.enhanced, "5.1.1");
		strcpy(e.text, "5.1.1 <user@example>: Recipient address rejected: "
		    "User unknown in virtual table");
	} else {
		e.reason = REASON_ACCEPTED;
		e.code = 250;
		strcpy(e.enhanced, "2.1.5");
		strcpy(e.text, "2.1.5 Ok");
	}
	return e;
}

static void
report(const char *what, size_t n, double secs)
{
	printf("%-26s %10.0f /s  (%.0f ns each)\n", what, (double)n / secs,
	    secs * 1e9 / (double)n);
}

int
main(int argc, char **argv)
{
	size_t n = 1000000;
	int opt;

	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt == 'n' && atol(optarg) > 0)
			n = (size_t)atol(optarg);
		else {
			fprintf(stderr, "usage: cache_bench [-n ENTRIES]\n");
			return 64;
		}
	}

	struct keys k, fresh;
	if (keys_make(&k, n, "user") < 0 || keys_make(&fresh, n, "other") < 0) {
		fprintf(stderr, "cache_bench: out of memory\n");
		return 1;
	}
	size_t *order = malloc(n * sizeof(*order));
	if (order == NULL)
		return 1;
	uint64_t s = 42;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = (size_t)(rnd(&s) % (i + 1));
		size_t t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	malloc_trim(0);
	size_t heap0 = heap_used();
	long rss0 = rss_kb();

	struct cache *c = cache_new(n, NULL, NULL);
	if (c == NULL)
		return 1;
	double t0 = now_s();
	for (size_t i = 0; i < n; i++) {
		struct verdict_entry e = entry_for(i);
		if (cache_store(c, k.buf + k.off[i], k.len[i], &e, e.made) != CACHE_STORED)
			return 1;
	}
	double t_insert = now_s() - t0;
	size_t heap1 = heap_used();
	long rss1 = rss_kb();

	/* entry_for() is part of the insert loop; time it alone to subtract. */
	t0 = now_s();
	volatile int sink = 0;
	for (size_t i = 0; i < n; i++) {
		struct verdict_entry e = entry_for(i);
		sink += e.code;
	}
	double t_make = now_s() - t0;

	t0 = now_s();
	size_t hits = 0;
	for (size_t i = 0; i < n; i++) {
		size_t j = order[i];
		enum cache_state st;
		if (cache_lookup(c, k.buf + k.off[j], k.len[j], 1700000001, &st) != NULL)
			hits++;
	}
	double t_lookup = now_s() - t0;

	t0 = now_s();
	for (size_t i = 0; i < n; i++) {
		size_t j = order[i];
		if (cache_lookup(c, fresh.buf + fresh.off[j], fresh.len[j], 1700000001,
		    NULL) != NULL)
			hits++;
	}
	double t_miss = now_s() - t0;

	t0 = now_s();
	for (size_t i = 0; i < n; i++) {
		size_t j = order[i];
		struct verdict_entry e = entry_for(j + 1);
		if (cache_store(c, k.buf + k.off[j], k.len[j], &e, e.made) == CACHE_NOMEM)
			return 1;
	}
	double t_replace = now_s() - t0;

	t0 = now_s();
	for (size_t i = 0; i < n; i++) {
		struct verdict_entry e = entry_for(i);
		if (cache_store(c, fresh.buf + fresh.off[i], fresh.len[i], &e, e.made) !=
		    CACHE_STORED)
			return 1;
	}
	double t_evict = now_s() - t0;

	unsigned char rec[1024];
	struct verdict_entry e = entry_for(0), back;
	size_t rlen = verdict_entry_pack(&e, rec, sizeof(rec));
	t0 = now_s();
	for (size_t i = 0; i < n; i++) {
		e.made = (int64_t)i;
		rlen = verdict_entry_pack(&e, rec, sizeof(rec));
	}
	double t_pack = now_s() - t0;
	t0 = now_s();
	for (size_t i = 0; i < n; i++)
		if (!verdict_entry_unpack(rec, rlen, &back))
			return 1;
	double t_unpack = now_s() - t0;

	printf("entries %zu, hits %zu of %zu, evictions %llu\n", cache_entries(c),
	    hits, n, (unsigned long long)cache_evictions(c));
	report("insert (new keys)", n, t_insert - t_make);
	report("lookup (hit, random)", n, t_lookup);
	report("lookup (miss)", n, t_miss);
	report("store (replace)", n, t_replace - t_make);
	report("store (new, evicting)", n, t_evict - t_make);
	report("verdict_entry_pack", n, t_pack);
	report("verdict_entry_unpack", n, t_unpack);
	printf("heap per entry             %10.1f octets (malloc'd, incl. overhead)\n",
	    (double)(heap1 - heap0) / (double)n);
	printf("RSS per entry              %10.1f octets\n",
	    (double)(rss1 - rss0) * 1024.0 / (double)n);
	struct verdict_entry ok = entry_for(1);
	printf("record size, rejection     %10zu octets\n", rlen);
	printf("record size, \"2.1.5 Ok\"    %10zu octets\n",
	    verdict_entry_pack(&ok, rec, sizeof(rec)));
	printf("sizeof(struct verdict_entry) %8zu octets (what inline storage would cost)\n",
	    sizeof(struct verdict_entry));
	cache_free(c);
	free(order);
	free(k.buf);
	free(k.off);
	free(k.len);
	free(fresh.buf);
	free(fresh.off);
	free(fresh.len);
	return 0;
}
