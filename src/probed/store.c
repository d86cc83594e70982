/*
 * store — probed's persistent state: named tables of opaque records in one
 * LMDB environment, state_dir/probed.mdb (see store.h).
 *
 * Owns the environment, the check that a file is ours (a "meta" table with
 * a magic and a format version), moving a damaged or foreign file aside,
 * and the write queue.  store_put/store_del only queue, one entry per table
 * and key (a later operation replaces an earlier one); store_flush commits
 * the queue in one write transaction, in key order.  The queue is bounded
 * (STORE_QUEUE_MAX ops, STORE_QUEUE_BYTES of keys and values): an op that
 * would pass a bound flushes synchronously first, and if that fails the op
 * is refused (-1), with no new attempt for a second.
 *
 * Durability: the environment is opened with MDB_NOMETASYNC, not
 * MDB_NOSYNC.  LMDB writes with pwrite() (no MDB_WRITEMAP), so a committed
 * transaction is in the kernel's page cache and survives kill -9 either
 * way.  Against an OS crash or power loss MDB_NOSYNC is not safe: without
 * any flush the new meta page may reach the disk before the pages it
 * points to, or after pages that the older meta still points to have been
 * reused, and LMDB documents that a system crash can then corrupt the
 * database unless the filesystem preserves write order (ext4 and xfs do not
 * promise that for overwrites).  MDB_NOMETASYNC keeps one fdatasync() per
 * commit, between the data pages and the meta page, and skips only the
 * meta page's own flush: a crash may undo the last commit, never corrupt.
 * The cost is one fdatasync per commit.  store_commit_start() moves it
 * off the event loop: the queue is handed whole to one writer thread,
 * which writes and flushes it while the loop goes on, and the loop hears
 * of it through an ev_async.  One batch at a time, in order; the queue
 * keeps filling meanwhile.  The thread touches nothing but its batch and
 * the environment (LMDB serialises writers; reads happen only at
 * start-up, before the thread exists).  A synchronous flush (the bounded
 * queue filling up, store_close) first waits for the thread's batch, so
 * newer operations are never written before older ones.
 *
 * Limits: keys of 1..511 octets (LMDB's compiled maximum), values up to
 * STORE_VAL_MAX; one owner thread plus the writer; the map starts at STORE_MAP_SIZE (virtual,
 * the file stays as large as its data) and grows on MDB_MAP_FULL.
 *
 * Security: the file is created 0600: it holds the addresses people asked
 * about.  Queue keys are hashed with SipHash-2-4 under a random key, so
 * addresses chosen by a client cannot pile into one hash chain.
 *
 * Blind spots: LMDB trusts its pages.  What it detects (bad magic, format
 * version, MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INCOMPATIBLE) and what we
 * check (a file shorter than its last page, which would be SIGBUS) moves
 * the file aside.  Other damage inside a page can make LMDB assert: the
 * assert hook moves the file aside before LMDB aborts, so the restart comes
 * up empty instead of crash-looping.  Damage LMDB does not notice returns
 * garbage records, which store_load's callback is there to refuse.  An I/O
 * error on a mapped page is SIGBUS.  If another process holds the
 * environment open with an incompatible liblmdb, its lock file yields
 * MDB_VERSION_MISMATCH and the (good) data file is moved aside too.
 */
#include "autoconfig.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "log.h"
#include "siphash.h"
#include "store.h"

/* Overridable so that the unit test can start from a tiny map and make the
 * growth path run; probed itself uses the defaults. */
#ifndef STORE_MAP_SIZE
#if SIZE_MAX > 0xffffffffu
#define STORE_MAP_SIZE ((size_t)8 << 30)
#else
#define STORE_MAP_SIZE ((size_t)512 << 20)
#endif
#endif
#ifndef STORE_QUEUE_MAX
#define STORE_QUEUE_MAX 100000
#endif
#define STORE_QUEUE_BYTES ((size_t)64 << 20)    /* keys and values queued */

#define STORE_FILE        "probed.mdb"
#define STORE_LOCK_SUFFIX "-lock"   /* LMDB's lock file name with MDB_NOSUBDIR */
#define STORE_MAGIC       "probed-store"
#define STORE_VERSION     1u
#define STORE_VAL_MAX     ((size_t)1 << 20)
#define STORE_MAXDBS      4         /* meta, verdicts, domains, one spare */
#define STORE_BUCKETS_MIN 256
#define STORE_WHY_MAX     256

static const char *const table_name[STORE__TABLE_COUNT] = {
	[STORE_VERDICTS] = "verdicts",
	[STORE_DOMAINS] = "domains",
};

enum op_kind { OP_PUT, OP_DEL };

struct op {
	struct op *next;            /* hash chain */
	uint64_t hash;
	size_t klen, vlen;
	unsigned char table;        /* enum store_table */
	unsigned char kind;         /* enum op_kind */
	unsigned char data[];       /* key, then value */
};

struct store {
	MDB_env *env;               /* NULL after a failed recovery */
	MDB_dbi dbi[STORE__TABLE_COUNT];
	char *path;
	char *lock_path;
	size_t max_key;
	struct op **bucket;
	size_t nbucket;             /* a power of two */
	size_t count;               /* queued operations */
	size_t bytes;               /* their keys and values */
	uint64_t seed[2];           /* the queue's hash key */
	time_t auto_flush_after;    /* no synchronous flush before, after a failure */
	bool loading;               /* inside store_load's read transaction */
	struct writer {
		bool started, stop;
		pthread_t thread;
		pthread_mutex_t mu;     /* guards the fields below it */
		pthread_cond_t work;    /* a batch for the thread, or stop */
		pthread_cond_t idle;    /* the thread is done with its batch */
		bool busy;              /* a batch is out (until reaped by the owner) */
		bool written;           /* the thread is done with it: rc is valid */
		int rc;
		struct op **v;          /* the batch: owned by the thread while busy */
		size_t n, bytes;
		/* Owner only: */
		bool undelivered;       /* reaped, done() not called yet */
		bool last_ok;
		struct ev_loop *loop;
		ev_async async;
		void (*done)(void *arg, bool ok);
		void *arg;
	} w;
};

enum open_result { OPEN_FAILED = -1, OPEN_OK = 0, OPEN_UNUSABLE = 1 };

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool lmdb_damaged(int rc);
static int rename_noreplace(const char *from, const char *to);
static int store_move_aside(struct store *s, const char *why, const char *then, char *err,
    size_t errlen);
static void store_lmdb_assert(MDB_env *env, const char *msg);
static enum open_result store_check_size(struct store *s, char *why, size_t whylen);
static void store_size_map(struct store *s);
static enum open_result store_tables(struct store *s, char *why, size_t whylen,
    char *err, size_t errlen);
static enum open_result store_env_open(struct store *s, char *why, size_t whylen,
    char *err, size_t errlen);
static int store_start(struct store *s, char *err, size_t errlen);
static int store_reopen(struct store *s, const char *why);
static int store_txn_begin(struct store *s, unsigned int flags, MDB_txn **txn);
static struct op **queue_slot(struct store *s, enum store_table t, const void *key,
    size_t klen, uint64_t h);
static void queue_grow(struct store *s);
static bool queue_full(const struct store *s, const struct op *old, size_t klen, size_t vlen);
static int queue_add(struct store *s, enum store_table t, enum op_kind kind,
    const void *key, size_t klen, const void *val, size_t vlen);
static void queue_clear(struct store *s, struct op **v);
static int op_cmp(const void *a, const void *b);
static int queue_write(struct store *s, struct op **v, size_t n);
static int store_grow_map(struct store *s, size_t count, size_t bytes);
static int queue_commit(struct store *s);
static void writer_reap(struct store *s);
static void writer_stop(struct store *s);

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The errors that say "this file is not (any more) a store of ours", as
 * opposed to errors of the system (EACCES, ENOSPC, ...). */
static bool
lmdb_damaged(int rc)
{
	return rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED ||
	    rc == MDB_PAGE_NOTFOUND || rc == MDB_INCOMPATIBLE;
}

static int
rename_noreplace(const char *from, const char *to)
{
	struct stat st;

	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* A filesystem without RENAME_NOREPLACE: state_dir is probed's own,
	 * so check-then-rename has no one to race with. */
	if (lstat(to, &st) == 0) {
		errno = EEXIST;
		return -1;
	}
	return rename(from, to);
}

/*
 * Rename probed.mdb to probed.mdb.bad-<unix time> (".1", ".2", ... when
 * that exists: an earlier one is never overwritten) and its lock file to
 * the same name plus "-lock".  The environment must be closed, except from
 * the assert hook, which runs just before LMDB aborts the process.
 */
static int
store_move_aside(struct store *s, const char *why, const char *then, char *err,
    size_t errlen)
{
	size_t cap = strlen(s->path) + 64;
	char *bad = malloc(cap);
	char *bad_lock = malloc(cap + sizeof(STORE_LOCK_SUFFIX));
	long long now = (long long)time(NULL);
	unsigned int n;
	int rc = -1;

	if (bad == NULL || bad_lock == NULL) {
		seterr(err, errlen, "out of memory moving %s aside", s->path);
		goto out;
	}
	for (n = 0; n < 1000; n++) {
		if (n == 0)
			snprintf(bad, cap, "%s.bad-%lld", s->path, now);
		else
			snprintf(bad, cap, "%s.bad-%lld.%u", s->path, now, n);
		if (rename_noreplace(s->path, bad) == 0)
			break;
		if (errno != EEXIST) {
			seterr(err, errlen, "cannot move %s aside to %s (%s): %s", s->path, bad,
			    why, strerror(errno));
			goto out;
		}
	}
	if (n == 1000) {
		seterr(err, errlen, "cannot move %s aside: %s.bad-%lld.* all taken", s->path,
		    s->path, now);
		goto out;
	}
	/* The lock file holds no data; if it cannot follow, it goes. */
	snprintf(bad_lock, cap + sizeof(STORE_LOCK_SUFFIX), "%s%s", bad, STORE_LOCK_SUFFIX);
	if (rename_noreplace(s->lock_path, bad_lock) < 0 && errno != ENOENT)
		(void)unlink(s->lock_path);
	log_err("store %s unusable reason=\"%s\": moved aside to %s, %s", s->path, why, bad,
	    then);
	rc = 0;
out:
	free(bad);
	free(bad_lock);
	return rc;
}

static void
store_lmdb_assert(MDB_env *env, const char *msg)
{
	struct store *s = mdb_env_get_userctx(env);
	char err[512];

	log_crit("store lmdb assertion failed, aborting: %s", msg);
	/* Almost always a damaged page: move the file aside so that the
	 * restart begins empty instead of aborting again on the same page. */
	if (s != NULL && store_move_aside(s, "LMDB assertion failed",
	    "the next start begins empty", err, sizeof(err)) < 0)
		log_crit("store %s", err);
}

/* A file cut short would fault (SIGBUS) on the first read of a missing page. */
static enum open_result
store_check_size(struct store *s, char *why, size_t whylen)
{
	mdb_filehandle_t fd;
	struct stat st;
	MDB_envinfo info;
	MDB_stat ms;
	unsigned long long need;

	if (mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &st) < 0 ||
	    mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &ms) != 0)
		return OPEN_OK;         /* nothing to judge by: LMDB will tell */
	need = ((unsigned long long)info.me_last_pgno + 1) * ms.ms_psize;
	if ((unsigned long long)st.st_size < need) {
		seterr(why, whylen, "truncated: %lld octets, its last page ends at %llu",
		    (long long)st.st_size, need);
		return OPEN_UNUSABLE;
	}
	return OPEN_OK;
}

/* Twice what is used, and at least STORE_MAP_SIZE: room to grow before the
 * first MDB_MAP_FULL.  Only address space; the file does not grow. */
static void
store_size_map(struct store *s)
{
	MDB_envinfo info;
	MDB_stat ms;
	size_t used, want;
	int rc;

	if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &ms) != 0)
		return;
	used = ((size_t)info.me_last_pgno + 1) * ms.ms_psize;
	want = STORE_MAP_SIZE;
	if (used <= SIZE_MAX / 4 && want < used * 2)
		want = used * 2;
	want = (want + ms.ms_psize - 1) / ms.ms_psize * ms.ms_psize;
	if (info.me_mapsize >= want)
		return;
	rc = mdb_env_set_mapsize(s->env, want);
	if (rc != 0)
		log_warning("store %s map size %zu not set: %s", s->path, want,
		    mdb_strerror(rc));
}

/*
 * Open the tables, or create them in an empty environment.  An environment
 * with anything in it but no meta table, or a meta table that is not ours
 * or of another version, is someone else's: OPEN_UNUSABLE.
 */
static enum open_result
store_tables(struct store *s, char *why, size_t whylen, char *err, size_t errlen)
{
	MDB_txn *txn = NULL;
	MDB_dbi meta, main_dbi;
	MDB_stat st;
	MDB_val k, v;
	unsigned char ver[4];
	unsigned int flags;
	uint32_t found;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
		if (lmdb_damaged(rc))
			goto damaged;
		seterr(err, errlen, "cannot begin a transaction on %s: %s", s->path,
		    mdb_strerror(rc));
		return OPEN_FAILED;
	}
	rc = mdb_dbi_open(txn, "meta", 0, &meta);
	if (rc == MDB_NOTFOUND) {
		if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0 ||
		    (rc = mdb_stat(txn, main_dbi, &st)) != 0)
			goto error;
		if (st.ms_entries != 0) {
			seterr(why, whylen, "no meta table: not a probed store");
			goto unusable;
		}
		ver[0] = STORE_VERSION >> 24;
		ver[1] = (STORE_VERSION >> 16) & 0xff;
		ver[2] = (STORE_VERSION >> 8) & 0xff;
		ver[3] = STORE_VERSION & 0xff;
		if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &meta)) != 0)
			goto error;
		k.mv_data = (void *)"magic";
		k.mv_size = 5;
		v.mv_data = (void *)STORE_MAGIC;
		v.mv_size = strlen(STORE_MAGIC);
		if ((rc = mdb_put(txn, meta, &k, &v, 0)) != 0)
			goto error;
		k.mv_data = (void *)"version";
		k.mv_size = 7;
		v.mv_data = ver;
		v.mv_size = sizeof(ver);
		if ((rc = mdb_put(txn, meta, &k, &v, 0)) != 0)
			goto error;
		log_info("store %s created format=%u", s->path, STORE_VERSION);
	} else if (rc != 0) {
		goto error;
	} else {
		k.mv_data = (void *)"magic";
		k.mv_size = 5;
		rc = mdb_get(txn, meta, &k, &v);
		if (rc == MDB_NOTFOUND || (rc == 0 && (v.mv_size != strlen(STORE_MAGIC) ||
		    memcmp(v.mv_data, STORE_MAGIC, v.mv_size) != 0))) {
			seterr(why, whylen, "meta table without our magic: not a probed store");
			goto unusable;
		}
		if (rc != 0)
			goto error;
		k.mv_data = (void *)"version";
		k.mv_size = 7;
		rc = mdb_get(txn, meta, &k, &v);
		if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size != 4)) {
			seterr(why, whylen, "meta table without a format version");
			goto unusable;
		}
		if (rc != 0)
			goto error;
		memcpy(ver, v.mv_data, sizeof(ver));
		found = (uint32_t)ver[0] << 24 | (uint32_t)ver[1] << 16 |
		    (uint32_t)ver[2] << 8 | ver[3];
		if (found != STORE_VERSION) {
			seterr(why, whylen, "format version %lu, this probed reads %u",
			    (unsigned long)found, STORE_VERSION);
			goto unusable;
		}
	}
	for (int t = 0; t < STORE__TABLE_COUNT; t++) {
		if ((rc = mdb_dbi_open(txn, table_name[t], MDB_CREATE, &s->dbi[t])) != 0)
			goto error;
		if ((rc = mdb_dbi_flags(txn, s->dbi[t], &flags)) != 0)
			goto error;
		if (flags != 0) {
			seterr(why, whylen, "table %s has flags 0x%x: not a probed store",
			    table_name[t], flags);
			goto unusable;
		}
	}
	/* Commits nothing (and writes nothing) when the tables existed. */
	if ((rc = mdb_txn_commit(txn)) != 0) {
		txn = NULL;
		goto error;
	}
	return OPEN_OK;
error:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (lmdb_damaged(rc))
		goto damaged;
	seterr(err, errlen, "cannot set up the tables of %s: %s", s->path, mdb_strerror(rc));
	return OPEN_FAILED;
damaged:
	seterr(why, whylen, "%s", mdb_strerror(rc));
	return OPEN_UNUSABLE;
unusable:
	mdb_txn_abort(txn);
	return OPEN_UNUSABLE;
}

static enum open_result
store_env_open(struct store *s, char *why, size_t whylen, char *err, size_t errlen)
{
	struct stat st;
	MDB_env *env = NULL;
	enum open_result r;
	int rc;

	if (stat(s->path, &st) == 0) {
		if (!S_ISREG(st.st_mode)) {
			seterr(err, errlen, "%s is not a regular file", s->path);
			return OPEN_FAILED;
		}
		/* LMDB starts a new environment in an empty file: nothing was
		 * there to lose (a crash right after creating it, or `: >`). */
		if (st.st_size == 0)
			log_notice("store %s is empty: initialising it", s->path);
	} else if (errno != ENOENT) {
		seterr(err, errlen, "cannot reach %s: %s", s->path, strerror(errno));
		return OPEN_FAILED;
	}
	if ((rc = mdb_env_create(&env)) != 0) {
		seterr(err, errlen, "cannot create an LMDB environment: %s", mdb_strerror(rc));
		return OPEN_FAILED;
	}
	(void)mdb_env_set_maxdbs(env, STORE_MAXDBS);
	(void)mdb_env_set_userctx(env, s);
	(void)mdb_env_set_assert(env, store_lmdb_assert);
	/* Set before opening so that a new file gets exactly this; an existing
	 * one gets at least its used size (LMDB raises it), and store_size_map
	 * adds headroom. */
	(void)mdb_env_set_mapsize(env, STORE_MAP_SIZE);
	rc = mdb_env_open(env, s->path, MDB_NOSUBDIR | MDB_NOMETASYNC, 0600);
	if (rc != 0) {
		mdb_env_close(env);
		if (lmdb_damaged(rc)) {
			seterr(why, whylen, "%s", mdb_strerror(rc));
			return OPEN_UNUSABLE;
		}
		seterr(err, errlen, "cannot open %s: %s", s->path, mdb_strerror(rc));
		return OPEN_FAILED;
	}
	s->env = env;
	s->max_key = (size_t)mdb_env_get_maxkeysize(env);
	r = store_check_size(s, why, whylen);
	if (r == OPEN_OK) {
		int dead = 0;

		store_size_map(s);
		/* Reader slots of processes killed inside a read transaction
		 * would pin old pages and make the file grow. */
		(void)mdb_reader_check(env, &dead);
		r = store_tables(s, why, whylen, err, errlen);
	}
	if (r != OPEN_OK) {
		mdb_env_close(env);
		s->env = NULL;
	}
	return r;
}

/* Open the environment; if it is damaged or foreign, move it aside and
 * make a fresh one. */
static int
store_start(struct store *s, char *err, size_t errlen)
{
	char why[STORE_WHY_MAX];
	enum open_result r;

	r = store_env_open(s, why, sizeof(why), err, errlen);
	if (r != OPEN_UNUSABLE)
		return r == OPEN_OK ? 0 : -1;
	if (store_move_aside(s, why, "starting empty", err, errlen) < 0)
		return -1;
	r = store_env_open(s, why, sizeof(why), err, errlen);
	if (r == OPEN_UNUSABLE)
		seterr(err, errlen, "a fresh %s is unusable too: %s", s->path, why);
	return r == OPEN_OK ? 0 : -1;
}

/* Close and open again: after MDB_PANIC, after a failed recovery, or
 * (with why) after damage found while reading, moving the file aside. */
static int
store_reopen(struct store *s, const char *why)
{
	char err[512];

	if (s->env != NULL) {
		mdb_env_close(s->env);
		s->env = NULL;
	}
	if (why != NULL && store_move_aside(s, why, "starting empty", err, sizeof(err)) < 0) {
		log_crit("store %s", err);
		return -1;
	}
	if (store_start(s, err, sizeof(err)) < 0) {
		log_crit("store cannot reopen %s: %s", s->path, err);
		return -1;
	}
	return 0;
}

static int
store_txn_begin(struct store *s, unsigned int flags, MDB_txn **txn)
{
	int rc;

	if (s->env == NULL && store_reopen(s, NULL) < 0)
		return MDB_PANIC;
	rc = mdb_txn_begin(s->env, NULL, flags, txn);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process (mdb_copy? a second probed?) grew the map. */
		rc = mdb_env_set_mapsize(s->env, 0);
		if (rc == 0)
			rc = mdb_txn_begin(s->env, NULL, flags, txn);
	}
	if (rc == MDB_PANIC) {
		log_err("store %s: LMDB reports a fatal error; reopening", s->path);
		if (store_reopen(s, NULL) < 0)
			return MDB_PANIC;
		rc = mdb_txn_begin(s->env, NULL, flags, txn);
	}
	return rc;
}

struct store *
store_open(const char *state_dir, char *err, size_t errlen)
{
	struct store *s;
	size_t dlen;

	if (state_dir == NULL || state_dir[0] == '\0') {
		seterr(err, errlen, "no state_dir");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	dlen = strlen(state_dir);
	while (dlen > 1 && state_dir[dlen - 1] == '/')
		dlen--;
	s->path = malloc(dlen + sizeof("/" STORE_FILE));
	s->lock_path = malloc(dlen + sizeof("/" STORE_FILE STORE_LOCK_SUFFIX));
	s->nbucket = STORE_BUCKETS_MIN;
	s->bucket = calloc(s->nbucket, sizeof(*s->bucket));
	if (s->path == NULL || s->lock_path == NULL || s->bucket == NULL) {
		seterr(err, errlen, "out of memory");
		goto fail;
	}
	snprintf(s->path, dlen + sizeof("/" STORE_FILE), "%.*s/%s", (int)dlen, state_dir,
	    STORE_FILE);
	snprintf(s->lock_path, dlen + sizeof("/" STORE_FILE STORE_LOCK_SUFFIX), "%s%s",
	    s->path, STORE_LOCK_SUFFIX);
	siphash_random_key(s->seed);
	if (store_start(s, err, errlen) < 0)
		goto fail;
	return s;
fail:
	free(s->bucket);
	free(s->path);
	free(s->lock_path);
	free(s);
	return NULL;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	s->loading = false;
	writer_stop(s);
	if (s->count > 0 && queue_commit(s) < 0)
		log_err("store %s closed with ops=%zu unwritten", s->path, s->count);
	queue_clear(s, NULL);
	if (s->env != NULL)
		mdb_env_close(s->env);
	free(s->bucket);
	free(s->path);
	free(s->lock_path);
	free(s);
}

const char *
store_path(const struct store *s)
{
	return s->path;
}

size_t
store_pending(const struct store *s)
{
	return s->count;
}

/* Where the op for (t, key) is, or the empty link where it would go. */
static struct op **
queue_slot(struct store *s, enum store_table t, const void *key, size_t klen, uint64_t h)
{
	struct op **pp = &s->bucket[h & (s->nbucket - 1)];

	for (; *pp != NULL; pp = &(*pp)->next) {
		const struct op *o = *pp;

		if (o->hash == h && o->table == t && o->klen == klen &&
		    memcmp(o->data, key, klen) == 0)
			break;
	}
	return pp;
}

static void
queue_grow(struct store *s)
{
	size_t n = s->nbucket * 2;
	struct op **nb = calloc(n, sizeof(*nb));

	if (nb == NULL)
		return;                 /* longer chains; still correct */
	for (size_t i = 0; i < s->nbucket; i++) {
		struct op *o = s->bucket[i], *next;

		for (; o != NULL; o = next) {
			next = o->next;
			o->next = nb[o->hash & (n - 1)];
			nb[o->hash & (n - 1)] = o;
		}
	}
	free(s->bucket);
	s->bucket = nb;
	s->nbucket = n;
}

/* Whether adding this op (replacing *pp, if any) would pass a bound. */
static bool
queue_full(const struct store *s, const struct op *old, size_t klen, size_t vlen)
{
	size_t old_bytes = old != NULL ? old->klen + old->vlen : 0;

	return (old == NULL && s->count >= STORE_QUEUE_MAX) ||
	    s->bytes - old_bytes + klen + vlen > STORE_QUEUE_BYTES;
}

static int
queue_add(struct store *s, enum store_table t, enum op_kind kind, const void *key,
    size_t klen, const void *val, size_t vlen)
{
	uint64_t h = siphash13(s->seed[0], s->seed[1], key, klen) + (uint64_t)t;
	struct op **pp = queue_slot(s, t, key, klen, h);
	struct op *o;

	if (queue_full(s, *pp, klen, vlen)) {
		time_t now = time(NULL);

		if (!s->loading && now >= s->auto_flush_after) {
			log_debug("store queue full ops=%zu octets=%zu: flushing now", s->count,
			    s->bytes);
			if (queue_commit(s) < 0)
				s->auto_flush_after = now + 1;
			pp = queue_slot(s, t, key, klen, h);
		}
		if (queue_full(s, *pp, klen, vlen))
			return -1;
	}
	if (*pp == NULL && s->count >= s->nbucket) {
		queue_grow(s);
		pp = queue_slot(s, t, key, klen, h);
	}
	o = malloc(sizeof(*o) + klen + vlen);
	if (o == NULL) {
		log_err("store out of memory queueing an operation");
		return -1;
	}
	o->hash = h;
	o->klen = klen;
	o->vlen = vlen;
	o->table = (unsigned char)t;
	o->kind = (unsigned char)kind;
	memcpy(o->data, key, klen);
	if (vlen > 0)
		memcpy(o->data + klen, val, vlen);
	if (*pp != NULL) {
		struct op *old = *pp;

		o->next = old->next;
		s->bytes -= old->klen + old->vlen;
		free(old);
	} else {
		o->next = NULL;
		s->count++;
	}
	*pp = o;
	s->bytes += klen + vlen;
	return 0;
}

int
store_put(struct store *s, enum store_table t, const void *key, size_t klen,
    const void *val, size_t vlen)
{
	if ((unsigned int)t >= STORE__TABLE_COUNT || key == NULL || klen == 0 ||
	    klen > s->max_key || vlen > STORE_VAL_MAX || (val == NULL && vlen > 0))
		return -1;
	return queue_add(s, t, OP_PUT, key, klen, val, vlen);
}

int
store_del(struct store *s, enum store_table t, const void *key, size_t klen)
{
	if ((unsigned int)t >= STORE__TABLE_COUNT || key == NULL || klen == 0 ||
	    klen > s->max_key)
		return -1;
	return queue_add(s, t, OP_DEL, key, klen, NULL, 0);
}

/* Free every queued op (v, when given, lists them all) and empty the table,
 * giving back a large bucket array. */
static void
queue_clear(struct store *s, struct op **v)
{
	if (v != NULL) {
		for (size_t i = 0; i < s->count; i++)
			free(v[i]);
	} else {
		for (size_t i = 0; i < s->nbucket; i++) {
			struct op *o = s->bucket[i], *next;

			for (; o != NULL; o = next) {
				next = o->next;
				free(o);
			}
		}
	}
	s->count = 0;
	s->bytes = 0;
	if (s->nbucket > 16 * STORE_BUCKETS_MIN) {
		struct op **nb = calloc(STORE_BUCKETS_MIN, sizeof(*nb));

		if (nb != NULL) {
			free(s->bucket);
			s->bucket = nb;
			s->nbucket = STORE_BUCKETS_MIN;
			return;
		}
	}
	memset(s->bucket, 0, s->nbucket * sizeof(*s->bucket));
}

/* LMDB's default order (memcmp, then the shorter first), per table: writing
 * in tree order keeps the transaction's dirty pages few and local. */
static int
op_cmp(const void *a, const void *b)
{
	const struct op *x = *(const struct op *const *)a;
	const struct op *y = *(const struct op *const *)b;
	int c;

	if (x->table != y->table)
		return x->table < y->table ? -1 : 1;
	c = memcmp(x->data, y->data, x->klen < y->klen ? x->klen : y->klen);
	if (c != 0)
		return c;
	return x->klen < y->klen ? -1 : x->klen > y->klen;
}

static int
queue_write(struct store *s, struct op **v, size_t n)
{
	MDB_txn *txn;
	MDB_val k, d;
	int rc;

	if ((rc = store_txn_begin(s, 0, &txn)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		const struct op *o = v[i];

		k.mv_data = (void *)o->data;
		k.mv_size = o->klen;
		if (o->kind == OP_PUT) {
			d.mv_data = (void *)(o->data + o->klen);
			d.mv_size = o->vlen;
			rc = mdb_put(txn, s->dbi[o->table], &k, &d, 0);
		} else {
			rc = mdb_del(txn, s->dbi[o->table], &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		}
		if (rc != 0) {
			mdb_txn_abort(txn);
			return rc;
		}
	}
	return mdb_txn_commit(txn);   /* aborts the transaction on failure */
}

/* Room for the queue even if every op dirtied a page of its own (copy on
 * write: freed pages are not reused within the transaction). */
static int
store_grow_map(struct store *s, size_t count, size_t bytes)
{
	MDB_envinfo info;
	MDB_stat ms;
	size_t need, want;
	int rc;

	if ((rc = mdb_env_info(s->env, &info)) != 0 || (rc = mdb_env_stat(s->env, &ms)) != 0)
		return rc;
	if (count > (SIZE_MAX / 4 - bytes) / (2 * (size_t)ms.ms_psize))
		return MDB_MAP_FULL;
	need = (count + 64) * 2 * (size_t)ms.ms_psize + 2 * bytes;
	want = info.me_mapsize;
	if (want > SIZE_MAX / 4)
		return MDB_MAP_FULL;
	want = want * 2 > want + need ? want * 2 : want + need;
	want = (want + ms.ms_psize - 1) / ms.ms_psize * ms.ms_psize;
	rc = mdb_env_set_mapsize(s->env, want);
	if (rc == 0)
		log_notice("store %s map grown from %zu to %zu KiB", s->path,
		    info.me_mapsize >> 10, want >> 10);
	return rc;
}

/* Write a batch in one transaction, in key order, growing the map once if
 * it is full.  Runs on the owner or on the writer thread: it reads only its
 * arguments and the environment. */
static int
batch_write(struct store *s, struct op **v, size_t n, size_t bytes)
{
	qsort(v, n, sizeof(*v), op_cmp);
	int rc = queue_write(s, v, n);

	if (rc == MDB_MAP_FULL) {
		/* No transaction is open here, as set_mapsize requires: the
		 * owner opens none while a batch is out. */
		int grc = store_grow_map(s, n, bytes);

		rc = grc == 0 ? queue_write(s, v, n) : grc;
	}
	return rc;
}

/* The queue as an array, and the queue emptied without freeing the ops
 * (they now belong to the array).  NULL when out of memory. */
static struct op **
queue_detach(struct store *s, size_t *n)
{
	struct op **v = malloc(s->count * sizeof(*v));
	size_t k = 0;

	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < s->nbucket; i++) {
		for (struct op *o = s->bucket[i]; o != NULL; o = o->next)
			v[k++] = o;
		s->bucket[i] = NULL;
	}
	*n = k;
	s->count = 0;
	s->bytes = 0;
	return v;
}

/* Put a failed batch's ops back in the queue, under any newer op on the
 * same key (which wins, as it would have in the file). */
static void
queue_requeue(struct store *s, struct op **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct op *o = v[i];
		struct op **pp = queue_slot(s, (enum store_table)o->table, o->data, o->klen,
		    o->hash);

		if (*pp != NULL) {
			free(o);
			continue;
		}
		if (s->count >= s->nbucket) {
			queue_grow(s);
			pp = queue_slot(s, (enum store_table)o->table, o->data, o->klen, o->hash);
		}
		o->next = NULL;
		*pp = o;
		s->count++;
		s->bytes += o->klen + o->vlen;
	}
}

/* After batch_write: free a written batch, or log the failure (`what`:
 * "flush" on the owner, "commit" from the writer) and queue its ops again
 * under any newer ones.  Frees the array either way. */
static void
batch_settle(struct store *s, struct op **v, size_t n, int rc, const char *what)
{
	if (rc != 0) {
		log_err("store %s %s failed ops=%zu error=\"%s\": kept for the next try",
		    s->path, what, n, mdb_strerror(rc));
		queue_requeue(s, v, n);
	} else {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
	}
	free(v);
}

static int
queue_commit(struct store *s)
{
	struct op **v;
	size_t n = 0, bytes = s->bytes;
	int rc;

	writer_reap(s); /* the thread's older batch goes first */
	if (s->count == 0)
		return 0;
	v = queue_detach(s, &n);
	if (v == NULL) {
		log_err("store flush failed ops=%zu: out of memory; kept for the next try",
		    s->count);
		return -1;
	}
	rc = batch_write(s, v, n, bytes);
	batch_settle(s, v, n, rc, "flush");
	if (rc != 0)
		return -1;
	queue_clear(s, NULL); /* gives back a large bucket array */
	return 0;
}

/* ---- the writer thread --------------------------------------------------- */

static void *
writer_main(void *arg)
{
	struct store *s = arg;
	struct writer *w = &s->w;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->stop && !(w->busy && !w->written))
			pthread_cond_wait(&w->work, &w->mu);
		if (w->busy && !w->written) {
			struct op **v = w->v;
			size_t n = w->n, bytes = w->bytes;

			pthread_mutex_unlock(&w->mu);
			int rc = batch_write(s, v, n, bytes);
			pthread_mutex_lock(&w->mu);
			w->rc = rc;
			w->written = true;
			pthread_cond_broadcast(&w->idle);
			/* ev_async_send is the one libev call safe from another
			 * thread. */
			ev_async_send(w->loop, &w->async);
			continue;
		}
		break; /* stop, and nothing left to write */
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Take the thread's batch back once it is written (waiting for that):
 * free it, or requeue it after a failure.  done() is owed afterwards. */
static void
writer_reap(struct store *s)
{
	struct writer *w = &s->w;

	if (!w->started || !w->busy)
		return;
	pthread_mutex_lock(&w->mu);
	while (!w->written)
		pthread_cond_wait(&w->idle, &w->mu);
	int rc = w->rc;
	struct op **v = w->v;
	size_t n = w->n;
	w->v = NULL;
	w->busy = w->written = false;
	pthread_mutex_unlock(&w->mu);

	batch_settle(s, v, n, rc, "commit");
	w->last_ok = rc == 0;
	w->undelivered = true;
}

static void
writer_on_async(struct ev_loop *loop, ev_async *a, int revents)
{
	struct store *s = a->data;
	struct writer *w = &s->w;

	pthread_mutex_lock(&w->mu);
	bool ready = w->busy && w->written;
	pthread_mutex_unlock(&w->mu);
	if (ready)
		writer_reap(s);
	if (w->undelivered) {
		w->undelivered = false;
		if (w->done != NULL)
			w->done(w->arg, w->last_ok);
	}
}

int
store_writer_start(struct store *s, struct ev_loop *loop, void (*done)(void *arg, bool ok),
    void *arg)
{
	struct writer *w = &s->w;
	int rc;

	if (w->started)
		return 0;
	w->loop = loop;
	w->done = done;
	w->arg = arg;
	ev_async_init(&w->async, writer_on_async);
	w->async.data = s;
	if ((rc = pthread_mutex_init(&w->mu, NULL)) != 0)
		goto fail;
	if ((rc = pthread_cond_init(&w->work, NULL)) != 0) {
		pthread_mutex_destroy(&w->mu);
		goto fail;
	}
	if ((rc = pthread_cond_init(&w->idle, NULL)) != 0) {
		pthread_cond_destroy(&w->work);
		pthread_mutex_destroy(&w->mu);
		goto fail;
	}
	if ((rc = pthread_create(&w->thread, NULL, writer_main, s)) != 0) {
		pthread_cond_destroy(&w->idle);
		pthread_cond_destroy(&w->work);
		pthread_mutex_destroy(&w->mu);
		goto fail;
	}
	ev_async_start(loop, &w->async);
	ev_unref(loop); /* a commit in progress keeps no loop alive */
	w->started = true;
	return 0;
fail:
	log_warning("store %s writer thread not started (%s): commits stay on the loop",
	    s->path, strerror(rc));
	return -1;
}

bool
store_commit_start(struct store *s)
{
	struct writer *w = &s->w;

	if (s->loading || s->count == 0 || store_committing(s))
		return false;
	if (!w->started) {
		/* No thread: the same contract, synchronously. */
		w->last_ok = queue_commit(s) == 0;
		if (w->done != NULL)
			w->done(w->arg, w->last_ok);
		return true;
	}
	size_t n, bytes = s->bytes;
	struct op **v = queue_detach(s, &n);
	if (v == NULL) {
		log_err("store %s commit: out of memory; ops=%zu kept for the next try",
		    s->path, s->count);
		return false;
	}
	pthread_mutex_lock(&w->mu);
	w->v = v;
	w->n = n;
	w->bytes = bytes;
	w->busy = true;
	w->written = false;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->mu);
	return true;
}

bool
store_committing(const struct store *s)
{
	return s->w.busy || s->w.undelivered;
}

static void
writer_stop(struct store *s)
{
	struct writer *w = &s->w;

	if (!w->started)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL); /* it writes its batch first */
	writer_reap(s);
	ev_ref(w->loop);
	ev_async_stop(w->loop, &w->async);
	pthread_cond_destroy(&w->idle);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->mu);
	w->started = false;
}

int
store_flush(struct store *s)
{
	if (s->loading) {
		log_err("store %s flush refused inside store_load", s->path);
		return -1;
	}
	return queue_commit(s);
}

/*
 * Walk a table in a read transaction.  Records fn refuses are queued as
 * deletions, never written during the walk; when the queue fills, the read
 * transaction ends, the queue is committed and the walk resumes after the
 * last key seen.  fn may itself store_put/store_del (say, to rewrite a
 * record in a newer form); a refusal replaces such an op on the same key.
 */
long
store_count(struct store *s, enum store_table t)
{
	MDB_txn *txn;
	MDB_stat st;

	if (s->env == NULL || (unsigned)t >= STORE__TABLE_COUNT ||
	    mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	int rc = mdb_stat(txn, s->dbi[t], &st);
	mdb_txn_abort(txn);
	return rc == 0 ? (long)st.ms_entries : -1;
}

long
store_load(struct store *s, enum store_table t,
    bool (*fn)(const void *key, size_t klen, const void *val, size_t vlen, void *arg),
    void *arg)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	unsigned char *last = NULL;
	size_t last_len = 0;
	bool resume = false, dels_blocked = false, pause;
	long kept = 0;
	int rc;

	if ((unsigned int)t >= STORE__TABLE_COUNT || fn == NULL || s->loading)
		return -1;
	if (s->count > 0 && queue_commit(s) < 0)
		return -1;
	last = malloc(s->max_key > 0 ? s->max_key : 1);
	if (last == NULL) {
		log_err("store out of memory loading table=%s", table_name[t]);
		return -1;
	}
	for (;;) {
		if ((rc = store_txn_begin(s, MDB_RDONLY, &txn)) != 0)
			break;
		if ((rc = mdb_cursor_open(txn, s->dbi[t], &cur)) != 0)
			break;
		if (resume) {
			k.mv_data = last;
			k.mv_size = last_len;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
			/* The last record seen is still there if it was kept. */
			if (rc == 0 && k.mv_size == last_len && memcmp(k.mv_data, last, last_len) == 0)
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		} else {
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		}
		s->loading = true;
		pause = false;
		while (rc == 0) {
			/* A node LMDB did not notice was damaged. */
			if (k.mv_size == 0 || k.mv_size > s->max_key) {
				rc = MDB_CORRUPTED;
				break;
			}
			if (fn(k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg)) {
				kept++;
			} else if (!dels_blocked &&
			    queue_add(s, t, OP_DEL, k.mv_data, k.mv_size, NULL, 0) < 0) {
				log_warning("store %s cannot queue more deletions while loading "
				    "table=%s; refused records stay until the next start", s->path,
				    table_name[t]);
				dels_blocked = true;
			}
			/* Pause before the queue could refuse an op: commit,
			 * then resume after this key. */
			if (!dels_blocked && queue_full(s, NULL, s->max_key, STORE_VAL_MAX)) {
				memcpy(last, k.mv_data, k.mv_size);
				last_len = k.mv_size;
				pause = true;
				break;
			}
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		s->loading = false;
		mdb_cursor_close(cur);
		cur = NULL;
		mdb_txn_abort(txn);
		txn = NULL;
		if (!pause)
			break;
		if (queue_commit(s) < 0)
			dels_blocked = true;
		resume = true;
	}
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		mdb_txn_abort(txn);
	free(last);
	if (rc == MDB_NOTFOUND) {
		if (s->count > 0)
			(void)queue_commit(s);  /* logged; retried by the next flush */
		log_info("store %s loaded table=%s kept=%ld", s->path, table_name[t], kept);
		return kept;
	}
	if (lmdb_damaged(rc)) {
		char why[STORE_WHY_MAX];

		snprintf(why, sizeof(why), "reading table %s: %s", table_name[t],
		    mdb_strerror(rc));
		(void)store_reopen(s, why);
		return -1;
	}
	log_err("store %s load table=%s failed: %s", s->path, table_name[t], mdb_strerror(rc));
	return -1;
}
