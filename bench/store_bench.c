/*
 * store_bench — what probed's persistent store costs at start-up and in
 * steady state, on a store the size of a full verdict cache.
 *
 *   store_bench [-n RECORDS] [-d DIR] [-r RUNS] [-k]
 *
 * Builds RECORDS (default 1,000,000) verdict-like records (keys of 25
 * octets, values of 150..250 octets, written in random key order, 1,000 per
 * flush) in a fresh directory under DIR (default $TMPDIR or /tmp), then
 * measures, as the median of RUNS (default 5):
 *   - open + store_load() with a callback that only counts (warm cache),
 *   - the same with a callback that copies every record into a malloc'd
 *     table, as probed's start-up does when it fills its cache,
 *   - the copying load again after the file's pages were dropped from the
 *     page cache (posix_fadvise DONTNEED: only this file, not the machine's);
 * and put+flush throughput (new records while building, then updates of
 * existing ones), and one flush of a full queue (100,000 ops): how long the
 * event loop stalls in the worst case.  Removes its directory unless -k.
 */
#include "autoconfig.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

#define BATCH 1000
#define FULL_QUEUE 100000
#define MAX_RUNS 25

struct copy {
	unsigned char **rec;
	size_t n, cap;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A bijection of 32-bit integers: distinct records get distinct keys, in an
 * order unrelated to their number. */
static uint32_t
mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352dU;
	x ^= x >> 15;
	x *= 0x846ca68bU;
	x ^= x >> 16;
	return x;
}

static size_t
rec_key(char *out, size_t cap, uint32_t i)
{
	return (size_t)snprintf(out, cap, "%08x@dom%05u.example", mix32(i),
	    mix32(i ^ 0x5bd1e995U) % 100000U);
}

static size_t
rec_val(unsigned char *out, uint32_t i, uint32_t gen)
{
	uint32_t h = mix32(i * 2654435761U + gen);
	size_t n = 150 + h % 101;

	for (size_t j = 0; j < n; j++) {
		h = h * 1103515245U + 12345U;
		out[j] = (unsigned char)(h >> 16);
	}
	return n;
}

static bool
count_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	(*(size_t *)arg)++;
	return true;
}

static bool
copy_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct copy *c = arg;
	unsigned char *r;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		unsigned char **nr = realloc(c->rec, cap * sizeof(*nr));

		if (nr == NULL)
			return true;
		c->rec = nr;
		c->cap = cap;
	}
	r = malloc(sizeof(uint32_t) * 2 + klen + vlen);
	if (r == NULL)
		return true;
	memcpy(r, &(uint32_t){ (uint32_t)klen }, sizeof(uint32_t));
	memcpy(r + 4, &(uint32_t){ (uint32_t)vlen }, sizeof(uint32_t));
	memcpy(r + 8, key, klen);
	memcpy(r + 8 + klen, val, vlen);
	c->rec[c->n++] = r;
	return true;
}

static void
copy_free(struct copy *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->rec[i]);
	free(c->rec);
	memset(c, 0, sizeof(*c));
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static struct store *
must_open(const char *dir)
{
	char err[512];
	struct store *s = store_open(dir, err, sizeof(err));

	if (s == NULL) {
		fprintf(stderr, "store_bench: %s\n", err);
		exit(1);
	}
	return s;
}

static void
drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return;
	(void)fdatasync(fd);
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

enum load_kind { LOAD_COUNT, LOAD_COPY, LOAD_COPY_COLD };

static double
timed_load(const char *dir, enum load_kind kind, size_t want)
{
	struct copy c = { 0 };
	size_t n = 0;
	struct store *s;
	double t0, t1;
	long kept;

	if (kind == LOAD_COPY_COLD) {
		char path[4200];

		snprintf(path, sizeof(path), "%s/probed.mdb", dir);
		drop_cache(path);
	}
	t0 = now_s();
	s = must_open(dir);
	if (kind == LOAD_COUNT)
		kept = store_load(s, STORE_VERDICTS, count_cb, &n);
	else
		kept = store_load(s, STORE_VERDICTS, copy_cb, &c);
	t1 = now_s();
	store_close(s);
	if (kept < 0 || (size_t)kept != want) {
		fprintf(stderr, "store_bench: load kept %ld records, expected %zu\n", kept, want);
		exit(1);
	}
	copy_free(&c);
	return t1 - t0;
}

static int
rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

int
main(int argc, char **argv)
{
	size_t records = 1000000;
	int runs = 5, opt;
	bool keep = false;
	const char *base = getenv("TMPDIR");
	char dir[4096], path[4200], key[64];
	unsigned char val[256];
	double t0, t, build, times[MAX_RUNS], flush_max = 0;
	struct store *s;
	struct stat st;
	struct rusage ru;

	while ((opt = getopt(argc, argv, "n:d:r:k")) != -1) {
		switch (opt) {
		case 'n':
			records = strtoul(optarg, NULL, 10);
			break;
		case 'd':
			base = optarg;
			break;
		case 'r':
			runs = atoi(optarg);
			break;
		case 'k':
			keep = true;
			break;
		default:
			fprintf(stderr, "usage: store_bench [-n RECORDS] [-d DIR] [-r RUNS] [-k]\n");
			return 64;
		}
	}
	if (runs < 1 || runs > MAX_RUNS || records == 0 || records > UINT32_MAX) {
		fprintf(stderr, "store_bench: runs 1..%d, records 1..%u\n", MAX_RUNS, UINT32_MAX);
		return 64;
	}
	log_open("store_bench", LOG_TARGET_STDERR);
	log_set_level(LOG_WARNING);
	snprintf(dir, sizeof(dir), "%s/store_bench.XXXXXX", base != NULL ? base : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("store_bench: mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/probed.mdb", dir);
	printf("store_bench: %zu records in %s, median of %d runs\n", records, dir, runs);

	/* Build: new records in random key order, BATCH per flush. */
	s = must_open(dir);
	t0 = now_s();
	for (size_t i = 0; i < records; i++) {
		size_t kl = rec_key(key, sizeof(key), (uint32_t)i);
		size_t vl = rec_val(val, (uint32_t)i, 0);

		if (store_put(s, STORE_VERDICTS, key, kl, val, vl) != 0) {
			fprintf(stderr, "store_bench: store_put failed at %zu\n", i);
			return 1;
		}
		if ((i + 1) % BATCH == 0 || i + 1 == records) {
			double f0 = now_s();

			if (store_flush(s) != 0) {
				fprintf(stderr, "store_bench: store_flush failed at %zu\n", i);
				return 1;
			}
			if (now_s() - f0 > flush_max)
				flush_max = now_s() - f0;
		}
	}
	build = now_s() - t0;
	store_close(s);
	stat(path, &st);
	printf("build:        %9.0f puts/s  (%.2f s; flush of %d: max %.1f ms)\n",
	    (double)records / build, build, BATCH, flush_max * 1e3);
	printf("file:         %9.1f MiB  (%.0f octets per record)\n",
	    (double)st.st_size / (1 << 20), (double)st.st_size / (double)records);

	for (int r = 0; r < runs; r++)
		times[r] = timed_load(dir, LOAD_COUNT, records);
	printf("open+load, counting callback, warm:  median %.3f s\n", median(times, runs));
	for (int r = 0; r < runs; r++)
		times[r] = timed_load(dir, LOAD_COPY, records);
	printf("open+load, copying callback, warm:   median %.3f s\n", median(times, runs));
	for (int r = 0; r < runs; r++)
		times[r] = timed_load(dir, LOAD_COPY_COLD, records);
	printf("open+load, copying callback, cold:   median %.3f s\n", median(times, runs));

	/* Updates of existing records, BATCH per flush. */
	{
		size_t n = records < 200000 ? records : 200000;

		s = must_open(dir);
		flush_max = 0;
		t0 = now_s();
		for (size_t j = 0; j < n; j++) {
			uint32_t i = mix32((uint32_t)j * 7U) % (uint32_t)records;
			size_t kl = rec_key(key, sizeof(key), i);
			size_t vl = rec_val(val, i, 1);

			if (store_put(s, STORE_VERDICTS, key, kl, val, vl) != 0)
				return 1;
			if ((j + 1) % BATCH == 0) {
				double f0 = now_s();

				if (store_flush(s) != 0)
					return 1;
				if (now_s() - f0 > flush_max)
					flush_max = now_s() - f0;
			}
		}
		if (store_flush(s) != 0)
			return 1;
		t = now_s() - t0;
		printf("update:       %9.0f puts/s  (%zu updates, flush of %d: max %.1f ms)\n",
		    (double)n / t, n, BATCH, flush_max * 1e3);

		/* The worst stall: a full queue flushed at once. */
		for (size_t j = 0; j < FULL_QUEUE && j < records; j++) {
			uint32_t i = mix32((uint32_t)j * 13U + 1U) % (uint32_t)records;
			size_t kl = rec_key(key, sizeof(key), i);
			size_t vl = rec_val(val, i, 2);

			if (store_put(s, STORE_VERDICTS, key, kl, val, vl) != 0)
				return 1;
		}
		printf("full queue:   %zu ops pending, ", store_pending(s));
		t0 = now_s();
		if (store_flush(s) != 0)
			return 1;
		printf("one flush %.3f s\n", now_s() - t0);
		store_close(s);
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("peak RSS:     %9.1f MiB\n", (double)ru.ru_maxrss / 1024);
	if (!keep)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	else
		printf("kept %s\n", dir);
	return 0;
}
