/*
 * store — probed's persistent state in LMDB (state_dir/probed.mdb): named
 * tables of opaque records, written behind the in-memory caches in batched
 * transactions and read back whole at start-up.
 *
 * Durability: MDB_NOMETASYNC — one fdatasync per commit, the meta page
 * left to the next one.  A committed transaction survives `kill -9`; an OS
 * crash or power loss may lose the last commit but never corrupts the file
 * (MDB_NOSYNC could, on file systems that reorder writes).  A commit costs
 * a disk flush, so the owner commits in batches, and the flush itself
 * happens on a writer thread (store_commit_start) so the loop never
 * waits for the disk.  One owner, the event loop; the writer thread only
 * ever holds a batch handed to it.
 *
 * A file that is not an LMDB environment of ours (corrupt, foreign, another
 * format version) is moved aside as probed.mdb.bad-<unix time>, an error is
 * logged, and an empty store is created: never a silent loss, never a crash.
 */
#ifndef PROBED_STORE_H
#define PROBED_STORE_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum store_table {
	STORE_VERDICTS,
	STORE_DOMAINS,
	STORE__TABLE_COUNT
};

struct store;

/* Open (create) state_dir/probed.mdb.  NULL with err filled only when even
 * a fresh store cannot be made (e.g. state_dir not writable). */
struct store *store_open(const char *state_dir, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Stops the writer thread (its batch is written first), flushes what is
 * queued, then closes. */
void store_close(struct store *s);

/* Queue a write or a delete; nothing touches the disk until store_flush().
 * A later operation on the same key replaces an earlier queued one.  -1
 * for a key of 0 or over 511 octets, a value over 1 MiB, a bad table, out
 * of memory, or a full queue (100,000 operations or 64 MiB) whose flush
 * failed. */
int store_put(struct store *s, enum store_table t, const void *key, size_t klen,
    const void *val, size_t vlen) __attribute__((warn_unused_result));
int store_del(struct store *s, enum store_table t, const void *key, size_t klen)
    __attribute__((warn_unused_result));
/* Commit everything queued in one write transaction, on the calling
 * thread (after any batch the writer thread holds).  Returns 0, or -1
 * with the queue kept for the next try (the error is logged). */
int store_flush(struct store *s);
size_t store_pending(const struct store *s);

/*
 * Group commit off the event loop.  store_writer_start() starts the one
 * writer thread (after store_load: the thread must be the only one in a
 * transaction) and names the callback; -1 (logged) leaves commits
 * synchronous, with the same callbacks.  store_commit_start() hands
 * everything queued to the thread and returns true, or returns false when
 * nothing is queued or a commit is still out (store_committing()).
 * done(arg, ok) then runs on the loop once that batch is on disk (ok) or
 * failed (its operations are queued again, under any newer ones).  One
 * commit at a time, in order.
 */
int store_writer_start(struct store *s, struct ev_loop *loop,
    void (*done)(void *arg, bool ok), void *arg);
bool store_commit_start(struct store *s);
bool store_committing(const struct store *s);

/* Call fn for every record of a table, in key order; fn returns false to
 * have that record deleted (e.g. it does not unpack).  The queue is flushed
 * first; fn may put and delete but not flush.  Returns the number of
 * records kept, or -1 when the file turned out damaged: it is then moved
 * aside and the store is left empty and usable. */
long store_load(struct store *s, enum store_table t,
    bool (*fn)(const void *key, size_t klen, const void *val, size_t vlen, void *arg),
    void *arg);

/* Records in a table (committed ones), or -1. */
long store_count(struct store *s, enum store_table t);

/* Where the file lives (for logs and tests). */
const char *store_path(const struct store *s);

#endif
