/*
 * test_store — the LMDB store (src/probed/store.c), each test in a fresh
 * mkdtemp directory: what is flushed comes back after close and reopen (and
 * after kill -9 of the writer), the queue's replacement and bounds, records
 * refused at load are deleted, a foreign, corrupt or truncated file is moved
 * aside (never overwriting an earlier one) and an empty store made, a state
 * directory that cannot be used is an error and touches nothing, the map
 * grows, and a failed flush keeps its queue.
 *
 * Built with a tiny initial map and a small queue bound, so that growth and
 * the synchronous flush run here on every test (see the #error below).
 * Some tests damage LMDB pages by hand: they know LMDB 0.9's page header
 * (flags at offset 10, node offsets from 16) and branch node (child page
 * number in its first four octets).
 */
#include "autoconfig.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <lmdb.h>

#include "log.h"
#include "store.h"

#if !defined(STORE_MAP_SIZE) || !defined(STORE_QUEUE_MAX)
#error "build test_store and its store.c with -DSTORE_MAP_SIZE=65536 -DSTORE_QUEUE_MAX=1000"
#endif

#define PAGE 4096

struct fx {
	char dir[PATH_MAX];
	char path[PATH_MAX + 16];
};

/* ---- helpers ---------------------------------------------------------- */

static int
rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(p);
	return unlink(p);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/test_store.XXXXXX", tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/probed.mdb", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	chmod(f->dir, 0700);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static struct store *
open_ok(const struct fx *f)
{
	char err[512] = "";
	struct store *s = store_open(f->dir, err, sizeof(err));

	if (s == NULL)
		fail_msg("store_open(%s): %s", f->dir, err);
	return s;
}

static size_t
make_key(char *out, size_t cap, unsigned int a, unsigned int b)
{
	return (size_t)snprintf(out, cap, "u%05u.%03u@d%u.example", a, b, (a * 7919u + b) % 97u);
}

/* A value that only this key has, 150..249 octets. */
static size_t
make_val(unsigned char *out, const void *key, size_t klen, unsigned int salt)
{
	uint32_t h = 2166136261u ^ salt;
	size_t n;

	for (size_t i = 0; i < klen; i++)
		h = (h ^ ((const unsigned char *)key)[i]) * 16777619u;
	n = 150 + h % 100;
	for (size_t i = 0; i < n; i++) {
		h = h * 1103515245u + 12345u;
		out[i] = (unsigned char)(h >> 16);
	}
	return n;
}

static void
put_rec(struct store *s, unsigned int a, unsigned int b, unsigned int salt)
{
	char k[64];
	unsigned char v[256];
	size_t kl = make_key(k, sizeof(k), a, b);
	size_t vl = make_val(v, k, kl, salt);

	assert_int_equal(store_put(s, STORE_VERDICTS, k, kl, v, vl), 0);
}

/* What a load saw: every record checked against make_val(salt), keys in
 * strictly increasing order, a copy of each key kept. */
struct seen {
	unsigned int salt;
	size_t n, cap;
	char **keys;
	unsigned char last[512];
	size_t last_len;
	bool bad_value, bad_order;
};

static bool
seen_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct seen *w = arg;
	unsigned char want[256];
	size_t wl = make_val(want, key, klen, w->salt);
	size_t m = klen < w->last_len ? klen : w->last_len;
	int c = memcmp(key, w->last, m);

	if (w->n > 0 && (c < 0 || (c == 0 && klen <= w->last_len)))
		w->bad_order = true;
	if (vlen != wl || memcmp(val, want, wl) != 0)
		w->bad_value = true;
	if (klen < sizeof(w->last)) {
		memcpy(w->last, key, klen);
		w->last_len = klen;
	}
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 64;
		w->keys = realloc(w->keys, w->cap * sizeof(*w->keys));
		assert_non_null(w->keys);
	}
	w->keys[w->n] = strndup(key, klen);
	assert_non_null(w->keys[w->n]);
	w->n++;
	return true;
}

static bool
seen_has(const struct seen *w, const char *key)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->keys[i], key) == 0)
			return true;
	return false;
}

static void
seen_free(struct seen *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->keys[i]);
	free(w->keys);
	memset(w, 0, sizeof(*w));
}

static long
load_seen(struct store *s, enum store_table t, struct seen *w, unsigned int salt)
{
	long n;

	seen_free(w);
	w->salt = salt;
	n = store_load(s, t, seen_cb, w);
	assert_false(w->bad_order);
	return n;
}

static bool
count_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	(*(long *)arg)++;
	return true;
}

static long
count_table(struct store *s, enum store_table t)
{
	long calls = 0, kept = store_load(s, t, count_cb, &calls);

	assert_int_equal(kept, calls);
	return kept;
}

/* Names in dir that begin with prefix. */
static int
count_prefixed(const char *dir, const char *prefix, char *first, size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if (n++ == 0 && first != NULL)
			snprintf(first, cap, "%s/%s", dir, e->d_name);
	}
	closedir(d);
	return n;
}

/* The one moved-aside data file (not its -lock), or fail. */
static void
find_bad(const struct fx *f, char *out, size_t cap)
{
	DIR *d = opendir(f->dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (strncmp(e->d_name, "probed.mdb.bad-", 15) != 0 ||
		    (l > 5 && strcmp(e->d_name + l - 5, "-lock") == 0))
			continue;
		snprintf(out, cap, "%s/%s", f->dir, e->d_name);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 1);
}

static void
write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static unsigned char *
read_file(const char *path, size_t *len)
{
	struct stat st;
	unsigned char *b;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

/* stderr into a file while the code under test logs. */
static int saved_stderr = -1;
static FILE *captured;

static void
capture_start(void)
{
	fflush(stderr);
	captured = tmpfile();
	assert_non_null(captured);
	saved_stderr = dup(2);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fileno(captured), 2) >= 0);
}

static char *
capture_end(void)
{
	long n;
	char *s;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	n = ftell(captured);
	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	rewind(captured);
	assert_int_equal(fread(s, 1, (size_t)n, captured), (size_t)n);
	fclose(captured);
	fputs(s, stderr);       /* still shown, for whoever reads the test log */
	return s;
}

/* A store that is moved aside: the log names both paths and a reason, the
 * file under the .bad name is the one we had, a -lock went with it, and
 * the new store is empty and works. */
static void
expect_moved_aside(const struct fx *f, const unsigned char *old, size_t old_len,
    const char *reason_part)
{
	char bad[PATH_MAX + 256], lock[PATH_MAX + 512], want[PATH_MAX + 256];
	struct store *s;
	unsigned char *now;
	size_t now_len;
	char *log;
	struct seen w = { 0 };

	capture_start();
	s = open_ok(f);
	log = capture_end();
	find_bad(f, bad, sizeof(bad));
	snprintf(want, sizeof(want), "store %s unusable reason=", f->path);
	assert_non_null(strstr(log, want));
	assert_non_null(strstr(log, bad));
	assert_non_null(strstr(log, reason_part));
	free(log);
	if (old != NULL) {
		now = read_file(bad, &now_len);
		assert_int_equal(now_len, old_len);
		assert_memory_equal(now, old, old_len);
		free(now);
	}
	snprintf(lock, sizeof(lock), "%s-lock", bad);
	assert_int_equal(access(lock, F_OK), 0);

	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 1), 0);
	assert_int_equal(count_table(s, STORE_DOMAINS), 0);
	put_rec(s, 1, 1, 1);
	assert_int_equal(store_flush(s), 0);
	store_close(s);
	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 1), 1);
	assert_false(w.bad_value);
	store_close(s);
	seen_free(&w);
}

/* An LMDB environment at f->path, opened directly. */
static MDB_env *
raw_open(const struct fx *f, unsigned int flags)
{
	MDB_env *env;

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, f->path, MDB_NOSUBDIR | flags, 0600), 0);
	return env;
}

static void
raw_put(MDB_env *env, const char *db, unsigned int dbflags, const void *key, size_t klen,
    const void *val, size_t vlen)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, MDB_CREATE | dbflags, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
}

/* A store of ours with n records in verdicts, closed. */
static void
make_store(const struct fx *f, unsigned int n, unsigned int salt)
{
	struct store *s = open_ok(f);

	for (unsigned int i = 0; i < n; i++)
		put_rec(s, i, 0, salt);
	assert_int_equal(store_flush(s), 0);
	store_close(s);
}

static uint16_t
page_flags(const unsigned char *pg)
{
	uint16_t fl;

	memcpy(&fl, pg + 10, sizeof(fl));
	return fl;
}

/* ---- round trips -------------------------------------------------------- */

static void
test_round_trip(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct seen w = { 0 };
	char k[64];

	assert_string_equal(store_path(s), f->path);
	for (unsigned int i = 0; i < 500; i++)
		put_rec(s, i, i % 3, 7);
	for (unsigned int i = 0; i < 10; i++) {
		size_t kl = (size_t)snprintf(k, sizeof(k), "d%u.example", i);

		assert_int_equal(store_put(s, STORE_DOMAINS, k, kl, "catch_all=yes", 13), 0);
	}
	assert_int_equal(store_pending(s), 510);
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(store_pending(s), 0);
	assert_int_equal(store_flush(s), 0);       /* nothing queued: still fine */
	store_close(s);

	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 7), 500);
	assert_false(w.bad_value);
	for (unsigned int i = 0; i < 500; i++) {
		make_key(k, sizeof(k), i, i % 3);
		assert_true(seen_has(&w, k));
	}
	assert_int_equal(count_table(s, STORE_DOMAINS), 10);
	store_close(s);
	seen_free(&w);
}

/* ---- the writer thread ------------------------------------------------- */

struct commits {
	unsigned done, ok;
	size_t pending_at_done;     /* store_pending() inside the callback */
	struct store *s;
	struct ev_loop *loop;
};

static void
on_done(void *arg, bool ok)
{
	struct commits *c = arg;

	c->done++;
	c->ok += ok;
	c->pending_at_done = store_pending(c->s);
	ev_break(c->loop, EVBREAK_ONE);
}

static void
on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ONE);
}

/* Run the loop until the commit out reports back.  The store's ev_async
 * keeps no loop alive, so a guard timer does, and bounds the wait: a test
 * that never hears fails instead of hanging. */
static void
await_done(struct commits *c, unsigned want)
{
	ev_timer guard;

	ev_timer_init(&guard, on_guard, 10., 0.);
	ev_timer_start(c->loop, &guard);
	while (c->done < want && ev_is_active(&guard))
		ev_run(c->loop, 0);
	ev_timer_stop(c->loop, &guard);
	assert_int_equal(c->done, want);
}

static void
test_writer_commits_off_loop(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct commits c = { .s = s, .loop = loop };
	struct seen w = { 0 };

	assert_non_null(loop);
	assert_int_equal(store_writer_start(s, loop, on_done, &c), 0);
	assert_false(store_commit_start(s)); /* nothing queued */
	assert_false(store_committing(s));

	for (unsigned int i = 0; i < 300; i++)
		put_rec(s, i, 0, 11);
	assert_true(store_commit_start(s));
	assert_int_equal(store_pending(s), 0); /* the batch left the queue */
	assert_true(store_committing(s));
	assert_false(store_commit_start(s)); /* one commit at a time */
	/* The queue keeps filling while the thread writes: a newer value for
	 * a key of the batch out, and new keys. */
	put_rec(s, 0, 0, 12);
	for (unsigned int i = 300; i < 310; i++)
		put_rec(s, i, 0, 11);
	assert_int_equal(store_pending(s), 11);
	await_done(&c, 1);
	assert_int_equal(c.ok, 1);
	assert_int_equal(c.pending_at_done, 11);
	assert_false(store_committing(s));

	/* The second batch is written after the first, so the newer value of
	 * key 0 wins. */
	assert_true(store_commit_start(s));
	await_done(&c, 2);
	assert_int_equal(c.ok, 2);
	store_close(s);
	ev_loop_destroy(loop);

	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 11), 310);
	assert_true(w.bad_value); /* key 0 carries salt 12's value ... */
	store_close(s);
	seen_free(&w);

	/* ... and only key 0: check it directly. */
	s = open_ok(f);
	struct seen w12 = { 0 };
	(void)load_seen(s, STORE_VERDICTS, &w12, 12);
	char k[64];
	make_key(k, sizeof(k), 0, 0);
	assert_true(seen_has(&w12, k));
	store_close(s);
	seen_free(&w12);
}

/* store_close with a batch out: the thread finishes it, the rest is
 * flushed, nothing is lost and done() is not called from close. */
static void
test_writer_close_with_batch_out(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct commits c = { .s = s, .loop = loop };
	struct seen w = { 0 };

	assert_non_null(loop);
	assert_int_equal(store_writer_start(s, loop, on_done, &c), 0);
	for (unsigned int i = 0; i < 200; i++)
		put_rec(s, i, 2, 5);
	assert_true(store_commit_start(s));
	for (unsigned int i = 200; i < 250; i++)
		put_rec(s, i, 2, 5);
	store_close(s);
	assert_int_equal(c.done, 0);
	ev_loop_destroy(loop);

	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 5), 250);
	assert_false(w.bad_value);
	store_close(s);
	seen_free(&w);
}

/* A synchronous flush (here: store_flush) while a batch is out waits for
 * it, so the older batch can never overwrite newer values. */
static void
test_writer_flush_waits(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct commits c = { .s = s, .loop = loop };
	struct seen w = { 0 };

	assert_non_null(loop);
	assert_int_equal(store_writer_start(s, loop, on_done, &c), 0);
	for (unsigned int i = 0; i < 100; i++)
		put_rec(s, i, 4, 21);
	assert_true(store_commit_start(s));
	for (unsigned int i = 0; i < 100; i++)
		put_rec(s, i, 4, 22); /* every key again, newer */
	assert_int_equal(store_flush(s), 0);
	assert_true(store_committing(s)); /* reaped, its done() still owed */
	await_done(&c, 1);
	store_close(s);
	ev_loop_destroy(loop);

	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 22), 100);
	assert_false(w.bad_value);
	store_close(s);
	seen_free(&w);
}

static void
test_close_flushes(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct seen w = { 0 };

	for (unsigned int i = 0; i < 20; i++)
		put_rec(s, i, 1, 3);
	store_close(s);                 /* no store_flush */
	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 3), 20);
	assert_false(w.bad_value);
	store_close(s);
	seen_free(&w);
}

static void
test_delete(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct seen w = { 0 };
	char k[64];
	size_t kl;

	for (unsigned int i = 0; i < 3; i++)
		put_rec(s, i, 0, 5);
	assert_int_equal(store_flush(s), 0);
	kl = make_key(k, sizeof(k), 1, 0);
	assert_int_equal(store_del(s, STORE_VERDICTS, k, kl), 0);
	assert_int_equal(store_del(s, STORE_VERDICTS, "absent@x.example", 16), 0);
	/* The same key in the other table is another record. */
	assert_int_equal(store_del(s, STORE_DOMAINS, k, kl), 0);
	assert_int_equal(store_pending(s), 3);
	assert_int_equal(store_flush(s), 0);
	store_close(s);

	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 5), 2);
	assert_false(seen_has(&w, k));
	make_key(k, sizeof(k), 0, 0);
	assert_true(seen_has(&w, k));
	make_key(k, sizeof(k), 2, 0);
	assert_true(seen_has(&w, k));
	store_close(s);
	seen_free(&w);
}

static void
test_replacement(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct seen w = { 0 };
	char k[64];
	size_t kl;

	/* put, put again: one op, the second value */
	put_rec(s, 1, 0, 100);
	put_rec(s, 1, 0, 9);
	assert_int_equal(store_pending(s), 1);
	/* put, then del: one op, and nothing written */
	put_rec(s, 2, 0, 9);
	kl = make_key(k, sizeof(k), 2, 0);
	assert_int_equal(store_del(s, STORE_VERDICTS, k, kl), 0);
	assert_int_equal(store_pending(s), 2);
	/* a short value replaced by a long one and back */
	assert_int_equal(store_put(s, STORE_DOMAINS, "d.example", 9, "x", 1), 0);
	assert_int_equal(store_put(s, STORE_DOMAINS, "d.example", 9, k, sizeof(k)), 0);
	assert_int_equal(store_put(s, STORE_DOMAINS, "d.example", 9, "yes", 3), 0);
	/* the same key in two tables: two ops */
	kl = make_key(k, sizeof(k), 1, 0);
	assert_int_equal(store_put(s, STORE_DOMAINS, k, kl, "", 0), 0);
	assert_int_equal(store_pending(s), 4);
	assert_int_equal(store_flush(s), 0);

	/* an existing record: del then put keeps it, with the new value */
	kl = make_key(k, sizeof(k), 1, 0);
	assert_int_equal(store_del(s, STORE_VERDICTS, k, kl), 0);
	put_rec(s, 1, 0, 9);
	assert_int_equal(store_pending(s), 1);
	store_close(s);

	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 9), 1);
	assert_false(w.bad_value);
	assert_true(seen_has(&w, k));
	assert_int_equal(count_table(s, STORE_DOMAINS), 2);
	store_close(s);
	seen_free(&w);
}

/* The queue never holds more than STORE_QUEUE_MAX ops: reaching it flushes. */
static void
test_queue_bound(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	size_t most = 0;
	bool dropped = false;

	for (unsigned int i = 0; i < 2 * STORE_QUEUE_MAX + 500; i++) {
		size_t before = store_pending(s);

		put_rec(s, i, 2, 4);
		if (store_pending(s) > most)
			most = store_pending(s);
		if (store_pending(s) < before)
			dropped = true;
	}
	assert_true(dropped);
	assert_true(most <= STORE_QUEUE_MAX);
	assert_int_equal(store_pending(s), 500);
	store_close(s);
	s = open_ok(f);
	assert_int_equal(count_table(s, STORE_VERDICTS), 2 * STORE_QUEUE_MAX + 500);
	store_close(s);
}

/* ... and never more than 64 MiB of keys and values, whatever their count. */
struct big {
	long n;
	bool bad;
};

static bool
big_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct big *b = arg;
	char k[16] = "";
	unsigned int i;

	memcpy(k, key, klen < sizeof(k) - 1 ? klen : sizeof(k) - 1);
	i = (unsigned int)strtoul(k + 3, NULL, 10);

	b->n++;
	if (vlen != (size_t)1 << 20 || ((const unsigned char *)val)[0] != (unsigned char)i ||
	    ((const unsigned char *)val)[vlen - 1] != (unsigned char)i)
		b->bad = true;
	return true;
}

static void
test_queue_byte_bound(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	size_t len = (size_t)1 << 20, most = 0;
	unsigned char *v = malloc(len);
	struct big b = { 0 };
	char k[32];

	assert_non_null(v);
	for (unsigned int i = 0; i < 100; i++) {
		size_t kl = (size_t)snprintf(k, sizeof(k), "big%03u", i);

		memset(v, (int)i, len);
		assert_int_equal(store_put(s, STORE_DOMAINS, k, kl, v, len), 0);
		if (store_pending(s) > most)
			most = store_pending(s);
	}
	assert_true(most <= 64);
	assert_true(store_pending(s) < 100);
	store_close(s);
	free(v);
	s = open_ok(f);
	assert_int_equal(store_load(s, STORE_DOMAINS, big_cb, &b), 100);
	assert_int_equal(b.n, 100);
	assert_false(b.bad);
	store_close(s);
}

static void
test_bad_arguments(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	char big[600];

	memset(big, 'k', sizeof(big));
	assert_int_equal(store_put(s, STORE_VERDICTS, "", 0, "v", 1), -1);
	assert_int_equal(store_put(s, STORE_VERDICTS, big, 512, "v", 1), -1);
	assert_int_equal(store_put(s, STORE_VERDICTS, big, 511, "v", 1), 0);
	assert_int_equal(store_put(s, STORE__TABLE_COUNT, "k", 1, "v", 1), -1);
	assert_int_equal(store_put(s, STORE_VERDICTS, "k", 1, NULL, 5), -1);
	assert_int_equal(store_put(s, STORE_VERDICTS, "k", 1, big, (size_t)2 << 20), -1);
	assert_int_equal(store_del(s, STORE_VERDICTS, "", 0), -1);
	assert_int_equal(store_del(s, STORE_DOMAINS, big, 512), -1);
	assert_int_equal(store_pending(s), 1);
	/* what was refused cannot poison the flush */
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(store_load(s, STORE__TABLE_COUNT, count_cb, NULL), -1);
	store_close(s);
}

/* ---- store_load ----------------------------------------------------------- */

/* Refuse every key whose first number is not a multiple of 3. */
static bool
refuse_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	unsigned int a = (unsigned int)strtoul((const char *)key + 1, NULL, 10);

	(*(long *)arg)++;
	return a % 3 == 0;
}

static void
test_load_deletes_refused(void **state)
{
	struct fx *f = *state;
	const unsigned int n = 3 * STORE_QUEUE_MAX + 10;    /* > 2 * STORE_QUEUE_MAX refused */
	unsigned int want = 0;
	struct store *s = open_ok(f);
	struct seen w = { 0 };
	long calls = 0;
	char k[64];

	for (unsigned int i = 0; i < n; i++) {
		put_rec(s, i, 0, 2);
		want += i % 3 == 0;
	}
	store_close(s);

	s = open_ok(f);
	assert_int_equal(store_load(s, STORE_VERDICTS, refuse_cb, &calls), (long)want);
	/* every record offered once, even across the walk's pauses */
	assert_int_equal(calls, (long)n);
	assert_int_equal(store_pending(s), 0);
	store_close(s);

	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 2), (long)want);
	assert_false(w.bad_value);
	make_key(k, sizeof(k), 3, 0);
	assert_true(seen_has(&w, k));
	make_key(k, sizeof(k), 4, 0);
	assert_false(seen_has(&w, k));
	store_close(s);
	seen_free(&w);
}

/* A callback may rewrite the record it is given (say, into a newer form). */
struct rewrite {
	struct store *s;
	long calls;
};

static bool
rewrite_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
	struct rewrite *r = arg;
	unsigned char v[256];
	size_t vl = make_val(v, key, klen, 77);

	r->calls++;
	assert_int_equal(store_put(r->s, STORE_VERDICTS, key, klen, v, vl), 0);
	assert_int_equal(store_flush(r->s), -1);    /* not inside the walk */
	return true;
}

static void
test_load_rewrites(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct rewrite r = { 0 };
	struct seen w = { 0 };

	for (unsigned int i = 0; i < STORE_QUEUE_MAX + 200; i++)
		put_rec(s, i, 4, 1);
	store_close(s);

	s = open_ok(f);
	r.s = s;
	assert_int_equal(store_load(s, STORE_VERDICTS, rewrite_cb, &r), STORE_QUEUE_MAX + 200);
	assert_int_equal(r.calls, STORE_QUEUE_MAX + 200);
	store_close(s);
	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 77), STORE_QUEUE_MAX + 200);
	assert_false(w.bad_value);
	store_close(s);
	seen_free(&w);
}

/* ---- kill -9 ---------------------------------------------------------------- */

#define KILL_BATCH 50

static void
kill9_round(const struct fx *f, uint32_t wait_for, unsigned int salt)
{
	int p[2];
	pid_t pid;
	uint32_t b, top = 0;
	bool any = false;
	int status;
	struct store *s;
	struct seen w = { 0 };
	char k[64];

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[512];
		struct store *c;

		close(p[0]);
		c = store_open(f->dir, err, sizeof(err));
		if (c == NULL)
			_exit(2);
		for (b = 0; b < 1000000; b++) {
			for (unsigned int i = 0; i < KILL_BATCH; i++) {
				char ck[64];
				unsigned char cv[256];
				size_t kl = make_key(ck, sizeof(ck), b, i);
				size_t vl = make_val(cv, ck, kl, salt);

				if (store_put(c, STORE_VERDICTS, ck, kl, cv, vl) != 0)
					_exit(3);
			}
			if (store_flush(c) != 0)
				_exit(4);
			/* Only now is batch b promised. */
			if (write(p[1], &b, sizeof(b)) != (ssize_t)sizeof(b))
				_exit(5);
		}
		_exit(6);
	}
	close(p[1]);
	while (read(p[0], &b, sizeof(b)) == (ssize_t)sizeof(b)) {
		top = b;
		any = true;
		if (b >= wait_for)
			break;
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	/* Reports written before the kill landed are promises too. */
	while (read(p[0], &b, sizeof(b)) == (ssize_t)sizeof(b))
		top = b;
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status))
		fail_msg("writer exited with %d before the kill", WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_true(any);

	s = open_ok(f);
	assert_true(load_seen(s, STORE_VERDICTS, &w, salt) >= (long)(top + 1) * KILL_BATCH);
	assert_false(w.bad_value);
	for (b = 0; b <= top; b++)
		for (unsigned int i = 0; i < KILL_BATCH; i++) {
			make_key(k, sizeof(k), b, i);
			if (!seen_has(&w, k))
				fail_msg("flushed record %s lost (batches 0..%u promised)", k, top);
		}
	store_close(s);
	seen_free(&w);
	assert_int_equal(count_prefixed(f->dir, "probed.mdb.bad", NULL, 0), 0);
}

static void
test_kill9(void **state)
{
	struct fx *f = *state;
	static const uint32_t waits[] = { 0, 7, 40 };

	for (size_t r = 0; r < sizeof(waits) / sizeof(waits[0]); r++) {
		char lock[PATH_MAX + 512];

		/* Each round starts from an empty directory. */
		unlink(f->path);
		snprintf(lock, sizeof(lock), "%s-lock", f->path);
		unlink(lock);
		kill9_round(f, waits[r], 11 + (unsigned int)r);
	}
}

/* ---- foreign and damaged files --------------------------------------------- */

static void
test_foreign_random(void **state)
{
	struct fx *f = *state;
	unsigned char *junk = malloc(64 * 1024);
	uint32_t x = 12345;

	assert_non_null(junk);
	for (size_t i = 0; i < 64 * 1024; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		junk[i] = (unsigned char)x;
	}
	write_file(f->path, junk, 64 * 1024);
	expect_moved_aside(f, junk, 64 * 1024, "MDB_INVALID");
	free(junk);
}

static void
test_foreign_text(void **state)
{
	struct fx *f = *state;
	static const char shorttext[] = "state_dir = \"/var/lib/probed\";\n";
	char *longtext = malloc(3 * PAGE);

	assert_non_null(longtext);
	/* Shorter than LMDB's meta page. */
	write_file(f->path, shorttext, strlen(shorttext));
	expect_moved_aside(f, (const unsigned char *)shorttext, strlen(shorttext), "MDB_INVALID");

	teardown(state);
	assert_int_equal(setup(state), 0);
	f = *state;
	for (size_t i = 0; i < 3 * PAGE; i++)
		longtext[i] = "lorem ipsum dolor sit amet\n"[i % 27];
	write_file(f->path, longtext, 3 * PAGE);
	expect_moved_aside(f, (const unsigned char *)longtext, 3 * PAGE, "MDB_INVALID");
	free(longtext);
}

/* An empty file holds nothing to lose: LMDB starts a new environment in it,
 * and nothing is moved aside. */
static void
test_empty_file(void **state)
{
	struct fx *f = *state;
	struct store *s;

	write_file(f->path, "", 0);
	s = open_ok(f);
	assert_int_equal(count_prefixed(f->dir, "probed.mdb.bad", NULL, 0), 0);
	assert_int_equal(count_table(s, STORE_VERDICTS), 0);
	put_rec(s, 3, 3, 3);
	store_close(s);
	s = open_ok(f);
	assert_int_equal(count_table(s, STORE_VERDICTS), 1);
	store_close(s);
}

static void
test_foreign_lmdb_no_meta(void **state)
{
	struct fx *f = *state;
	MDB_env *env = raw_open(f, 0);

	raw_put(env, NULL, 0, "hello", 5, "world", 5);
	mdb_env_close(env);
	expect_moved_aside(f, NULL, 0, "no meta table");
}

static void
test_foreign_lmdb_tables_no_meta(void **state)
{
	struct fx *f = *state;
	MDB_env *env = raw_open(f, 0);

	/* Our table names, but not our meta: still someone else's. */
	raw_put(env, "verdicts", 0, "a@b.example", 11, "x", 1);
	mdb_env_close(env);
	expect_moved_aside(f, NULL, 0, "no meta table");
}

static void
test_foreign_lmdb_version(void **state)
{
	struct fx *f = *state;
	static const unsigned char v2[4] = { 0, 0, 0, 2 };
	MDB_env *env;

	make_store(f, 5, 1);
	env = raw_open(f, 0);
	raw_put(env, "meta", 0, "version", 7, v2, sizeof(v2));
	mdb_env_close(env);
	expect_moved_aside(f, NULL, 0, "format version 2, this probed reads 1");
}

static void
test_foreign_lmdb_magic(void **state)
{
	struct fx *f = *state;
	MDB_env *env;

	make_store(f, 5, 1);
	env = raw_open(f, 0);
	raw_put(env, "meta", 0, "magic", 5, "other-store", 11);
	mdb_env_close(env);
	expect_moved_aside(f, NULL, 0, "without our magic");
}

static void
test_foreign_lmdb_meta_is_a_record(void **state)
{
	struct fx *f = *state;
	MDB_env *env = raw_open(f, 0);

	/* "meta" as a plain record of the main table, not a table. */
	raw_put(env, NULL, 0, "meta", 4, "x", 1);
	mdb_env_close(env);
	expect_moved_aside(f, NULL, 0, "MDB_INCOMPATIBLE");
}

static void
test_foreign_lmdb_dupsort(void **state)
{
	struct fx *f = *state;
	static const unsigned char v1[4] = { 0, 0, 0, 1 };
	MDB_env *env = raw_open(f, 0);

	/* Our meta, but a table with other flags than ours. */
	raw_put(env, "meta", 0, "magic", 5, "probed-store", 12);
	raw_put(env, "meta", 0, "version", 7, v1, sizeof(v1));
	raw_put(env, "domains", MDB_DUPSORT, "d.example", 9, "x", 1);
	mdb_env_close(env);
	expect_moved_aside(f, NULL, 0, "reason=");
}

/* An environment with nothing in it is adopted, not moved aside. */
static void
test_empty_lmdb_adopted(void **state)
{
	struct fx *f = *state;
	MDB_env *env = raw_open(f, 0);
	struct store *s;

	mdb_env_close(env);
	s = open_ok(f);
	assert_int_equal(count_prefixed(f->dir, "probed.mdb.bad", NULL, 0), 0);
	put_rec(s, 1, 2, 3);
	store_close(s);
	s = open_ok(f);
	assert_int_equal(count_table(s, STORE_VERDICTS), 1);
	store_close(s);
}

/* Cut short, the file would SIGBUS on the first read past its end. */
static void
test_truncated(void **state)
{
	struct fx *f = *state;
	struct stat st;

	make_store(f, 2000, 1);
	assert_int_equal(stat(f->path, &st), 0);
	assert_true(st.st_size > 20 * PAGE);
	assert_int_equal(truncate(f->path, st.st_size / 2 / PAGE * PAGE), 0);
	expect_moved_aside(f, NULL, 0, "truncated");
}

/* Apply damage to every page that matches; returns how many. */
enum damage { BRANCH_CHILD, MAIN_ROOT_TYPE, LEAF_AS_BRANCH };

static int
damage_pages(const struct fx *f, enum damage how)
{
	unsigned char pg[PAGE];
	struct stat st;
	int fd = open(f->path, O_RDWR), n = 0;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	for (off_t off = 2 * PAGE; off < st.st_size; off += PAGE) {
		uint16_t fl, ptr1;

		assert_int_equal(pread(fd, pg, PAGE, off), PAGE);
		fl = page_flags(pg);
		if (how == BRANCH_CHILD && (fl & 0x01)) {
			/* The second child's page number beyond the file:
			 * MDB_PAGE_NOTFOUND when the walk gets there. */
			memcpy(&ptr1, pg + 18, sizeof(ptr1));
			assert_true(ptr1 + 4 <= PAGE);
			memset(pg + ptr1, 0xff, 4);
		} else if (how == MAIN_ROOT_TYPE && (fl & 0x02) &&
		    memmem(pg, PAGE, "verdicts", 8) != NULL && memmem(pg, PAGE, "meta", 4) != NULL) {
			/* The main table's leaf, typed as nothing:
			 * MDB_CORRUPTED on opening a table. */
			fl = 0;
			memcpy(pg + 10, &fl, sizeof(fl));
		} else if (how == LEAF_AS_BRANCH && (fl & 0x02) &&
		    memmem(pg, PAGE, "u01", 3) != NULL) {
			/* Leaves of keys u01000.. (never the first leaf),
			 * typed as branches: LMDB asserts IS_LEAF when the
			 * walk steps onto one. */
			fl = 0x01;
			memcpy(pg + 10, &fl, sizeof(fl));
		} else {
			continue;
		}
		assert_int_equal(pwrite(fd, pg, PAGE, off), PAGE);
		n++;
	}
	close(fd);
	return n;
}

static void
test_corrupt_at_open(void **state)
{
	struct fx *f = *state;

	make_store(f, 300, 1);
	assert_true(damage_pages(f, MAIN_ROOT_TYPE) > 0);
	expect_moved_aside(f, NULL, 0, "MDB_CORRUPTED");
}

static void
test_corrupt_during_load(void **state)
{
	struct fx *f = *state;
	struct store *s;
	struct seen w = { 0 };
	char bad[PATH_MAX + 256];
	char *log;

	make_store(f, 2000, 1);
	assert_true(damage_pages(f, BRANCH_CHILD) > 0);
	s = open_ok(f);                 /* the damage is deeper than opening reads */
	assert_int_equal(count_prefixed(f->dir, "probed.mdb.bad", NULL, 0), 0);
	capture_start();
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 1), -1);
	log = capture_end();
	assert_true(w.n > 0 && w.n < 2000);
	find_bad(f, bad, sizeof(bad));
	assert_non_null(strstr(log, bad));
	assert_non_null(strstr(log, "MDB_PAGE_NOTFOUND"));
	free(log);
	/* Moved aside; the store is empty, usable and loads again. */
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 1), 0);
	put_rec(s, 5, 5, 1);
	assert_int_equal(store_flush(s), 0);
	store_close(s);
	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 1), 1);
	assert_false(w.bad_value);
	store_close(s);
	seen_free(&w);
}

/* Damage LMDB asserts on: the process aborts, but the file is moved aside
 * first, so the next start is not the same abort again. */
static void
test_assert_moves_aside(void **state)
{
	struct fx *f = *state;
	char bad[PATH_MAX + 256];
	pid_t pid;
	int status;
	struct store *s;

	make_store(f, 2000, 1);
	assert_true(damage_pages(f, LEAF_AS_BRANCH) > 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[512];
		long calls = 0;
		struct store *c = store_open(f->dir, err, sizeof(err));

		if (c == NULL)
			_exit(2);
		(void)store_load(c, STORE_VERDICTS, count_cb, &calls);
		_exit(3);               /* not reached if LMDB asserted */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status))
		fail_msg("the loader exited %d instead of aborting", WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGABRT);
	find_bad(f, bad, sizeof(bad));
	assert_int_equal(access(f->path, F_OK), -1);
	s = open_ok(f);
	assert_int_equal(count_table(s, STORE_VERDICTS), 0);
	store_close(s);
}

/* An earlier .bad file is never overwritten, even within the same second. */
static void
test_bad_name_kept(void **state)
{
	struct fx *f = *state;
	long long now = (long long)time(NULL);
	char name[PATH_MAX + 256];
	struct store *s;
	unsigned char *b;
	size_t len;

	for (long long t = now - 2; t <= now + 20; t++) {
		snprintf(name, sizeof(name), "%s.bad-%lld", f->path, t);
		write_file(name, "old", 3);
	}
	write_file(f->path, "garbage, not lmdb", 17);
	s = open_ok(f);
	assert_int_equal(count_table(s, STORE_VERDICTS), 0);
	store_close(s);
	for (long long t = now - 2; t <= now + 20; t++) {
		snprintf(name, sizeof(name), "%s.bad-%lld", f->path, t);
		b = read_file(name, &len);
		assert_int_equal(len, 3);
		assert_memory_equal(b, "old", 3);
		free(b);
	}
	/* the new one is .bad-<time>.1 beside them (time may have ticked) */
	snprintf(name, sizeof(name), "%s.bad-%lld.1", f->path, now);
	if (access(name, F_OK) != 0)
		snprintf(name, sizeof(name), "%s.bad-%lld.1", f->path, now + 1);
	b = read_file(name, &len);
	assert_int_equal(len, 17);
	assert_memory_equal(b, "garbage, not lmdb", 17);
	free(b);
}

/* ---- state directories that cannot be used --------------------------------- */

static void
test_state_dir_missing(void **state)
{
	struct fx *f = *state;
	char dir[PATH_MAX + 16], err[512] = "";

	snprintf(dir, sizeof(dir), "%s/nonexistent", f->dir);
	assert_null(store_open(dir, err, sizeof(err)));
	assert_non_null(strstr(err, dir));
	assert_non_null(strstr(err, "No such file or directory"));
	assert_null(store_open("", err, sizeof(err)));
}

static void
test_state_dir_is_a_file(void **state)
{
	struct fx *f = *state;
	char dir[PATH_MAX + 16], err[512] = "";

	snprintf(dir, sizeof(dir), "%s/file", f->dir);
	write_file(dir, "x", 1);
	assert_null(store_open(dir, err, sizeof(err)));
	assert_non_null(strstr(err, "Not a directory"));
}

static void
test_store_path_is_a_directory(void **state)
{
	struct fx *f = *state;
	char err[512] = "";

	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_null(store_open(f->dir, err, sizeof(err)));
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(count_prefixed(f->dir, "probed.mdb.bad", NULL, 0), 0);
}

/* Run store_open on dir as a user without the rights (root passes every
 * permission check, so as root the child becomes nobody); the child exits
 * 0 if it got NULL with "Permission denied" and the path in the message. */
static int
open_unprivileged(const char *dir)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		char err[512] = "";

		if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(10);
		if (store_open(dir, err, sizeof(err)) != NULL)
			_exit(11);
		fprintf(stderr, "store_open(%s) refused: %s\n", dir, err);
		if (strstr(err, "Permission denied") == NULL || strstr(err, dir) == NULL)
			_exit(12);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_state_dir_unwritable(void **state)
{
	struct fx *f = *state;
	char ro[PATH_MAX + 256], rw[PATH_MAX + 256], file[PATH_MAX + 512];

	assert_int_equal(chmod(f->dir, 0755), 0);
	snprintf(ro, sizeof(ro), "%s/ro", f->dir);
	assert_int_equal(mkdir(ro, 0555), 0);
	assert_int_equal(chmod(ro, 0555), 0);
	assert_int_equal(open_unprivileged(ro), 0);
	assert_int_equal(count_prefixed(ro, "probed", NULL, 0), 0);

	/* A store the user may not open is an error, not moved aside. */
	snprintf(rw, sizeof(rw), "%s/rw", f->dir);
	assert_int_equal(mkdir(rw, 0777), 0);
	assert_int_equal(chmod(rw, 0777), 0);
	snprintf(file, sizeof(file), "%s/probed.mdb", rw);
	write_file(file, "not readable by the daemon's user", 33);
	assert_int_equal(chmod(file, 0000), 0);
	assert_int_equal(open_unprivileged(rw), 0);
	assert_int_equal(access(file, F_OK), 0);
	assert_int_equal(count_prefixed(rw, "probed.mdb.bad", NULL, 0), 0);
}

/* ---- map growth and failed flushes ------------------------------------------- */

static void
test_map_growth(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct seen w = { 0 };
	MDB_env *env;
	MDB_envinfo info;
	struct stat st;

	/* About 1.5 MB through a 64 KiB initial map, in flushes of
	 * growing size, the last one as large as the queue allows. */
	for (unsigned int i = 0; i < 6000; i++) {
		put_rec(s, i, 9, 6);
		if (i == 10 || i == 200 || i == 1000)
			assert_int_equal(store_flush(s), 0);
	}
	assert_int_equal(store_flush(s), 0);
	store_close(s);

	assert_int_equal(stat(f->path, &st), 0);
	assert_true(st.st_size > 1000 * 1000);
	/* The grown size is what the file now records. */
	env = raw_open(f, MDB_RDONLY);
	assert_int_equal(mdb_env_info(env, &info), 0);
	assert_true(info.me_mapsize > STORE_MAP_SIZE);
	assert_true(info.me_mapsize >= (size_t)st.st_size);
	mdb_env_close(env);

	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 6), 6000);
	assert_false(w.bad_value);
	store_close(s);
	seen_free(&w);
}

/* Writes past RLIMIT_FSIZE fail with EFBIG (SIGXFSZ ignored): a commit
 * that has to extend the file fails, as on a full disk. */
static void
test_flush_failure_keeps_queue(void **state)
{
	struct fx *f = *state;
	struct store *s = open_ok(f);
	struct rlimit saved, lim;
	struct stat st;
	struct seen w = { 0 };
	void (*old)(int);
	char *log;

	put_rec(s, 0, 0, 8);
	assert_int_equal(store_flush(s), 0);
	for (unsigned int i = 1; i < STORE_QUEUE_MAX; i++)
		put_rec(s, i, 0, 8);
	assert_int_equal(store_pending(s), STORE_QUEUE_MAX - 1);

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	old = signal(SIGXFSZ, SIG_IGN);
	lim = saved;
	lim.rlim_cur = (rlim_t)st.st_size;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);

	capture_start();
	assert_int_equal(store_flush(s), -1);
	log = capture_end();
	assert_non_null(strstr(log, "flush failed"));
	free(log);
	assert_int_equal(store_pending(s), STORE_QUEUE_MAX - 1);
	/* Full, and the synchronous flush fails: a new key is refused, a
	 * queued key may still be replaced. */
	put_rec(s, STORE_QUEUE_MAX, 0, 8);
	assert_int_equal(store_pending(s), STORE_QUEUE_MAX);
	{
		char k[64];
		unsigned char v[256];
		size_t kl = make_key(k, sizeof(k), STORE_QUEUE_MAX + 1, 0);
		size_t vl = make_val(v, k, kl, 8);

		assert_int_equal(store_put(s, STORE_VERDICTS, k, kl, v, vl), -1);
	}
	put_rec(s, 5, 0, 8);
	assert_int_equal(store_pending(s), STORE_QUEUE_MAX);
	assert_int_equal(store_flush(s), -1);

	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
	signal(SIGXFSZ, old);
	assert_int_equal(store_flush(s), 0);
	assert_int_equal(store_pending(s), 0);
	store_close(s);

	s = open_ok(f);
	assert_int_equal(load_seen(s, STORE_VERDICTS, &w, 8), STORE_QUEUE_MAX + 1);
	assert_false(w.bad_value);
	store_close(s);
	seen_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_commits_off_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_close_with_batch_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_flush_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_flushes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replacement, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_byte_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_deletes_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_rewrites, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_random, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_lmdb_no_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_lmdb_tables_no_meta, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_lmdb_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_lmdb_magic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_lmdb_meta_is_a_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_lmdb_dupsort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_lmdb_adopted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_at_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_during_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_assert_moves_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_name_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_dir_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_dir_is_a_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_path_is_a_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_dir_unwritable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_failure_keeps_queue, setup, teardown),
	};

	log_open("test_store", LOG_TARGET_STDERR);
	log_set_level(LOG_NOTICE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
