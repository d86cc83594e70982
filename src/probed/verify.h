/*
 * verify — one batch of addresses at one domain, from DNS to verdicts:
 * MX hosts in order (dnscache) → politeness (backoff, slots, buckets) →
 * destination guard → SMTP sessions carrying every address of the batch
 * (and the catch-all check) → one ctl_result per address.
 *
 * A batch accepts addresses until its first session starts (it is then
 * sealed), so requests that arrive while DNS or a host slot is awaited ride
 * along.  It knows nothing of clients or caches: it is told what is known
 * of the domain (catch-all, null-sender refusal, a greylisting retry's
 * random address) and reports, besides the verdicts, what it learned.
 */
#ifndef PROBED_VERIFY_H
#define PROBED_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include <ev.h>

#include "address.h"
#include "codec.h"
#include "config.h"

struct verifier;
struct verify_batch;
struct dnscache;
struct politeness;

struct verify_counters {
	unsigned long batches, sessions, rcpts, inflight;
};

/* What the caller knows of the domain when the batch is sealed. */
struct verify_domain_hint {
	enum tristate catch_all;       /* TRI_UNKNOWN: ask a random address */
	bool null_sender_refused;      /* start with fallback_mail_from */
	const char *random_rcpt;       /* reuse this one (greylisting retry), or NULL */
};

/* What the batch learned about the domain. */
struct verify_domain_news {
	bool catch_all_learned;
	enum tristate catch_all;
	bool null_sender_refused;      /* the fallback sender had to be used */
	bool greylisted;               /* some answer was greylisting */
	char random_rcpt[ADDRESS_MAX + 1]; /* the random address asked ("" if none) */
};

/* Per address: arg is the caller's (given to verify_batch_add). */
typedef void (*verify_result_cb)(const struct ctl_result *result, void *target_arg,
    void *batch_arg);
/* The batch is over (every result has been delivered); it is freed right
 * after this returns, so b serves only to recognise it. */
typedef void (*verify_done_cb)(struct verify_batch *b, const struct verify_domain_news *news,
    void *batch_arg);
/* Called once, just before the first session starts: fill the hint. */
typedef void (*verify_seal_cb)(struct verify_batch *b, struct verify_domain_hint *hint,
    void *batch_arg);

struct verify_batch_ops {
	verify_seal_cb seal;
	verify_result_cb result;
	verify_done_cb done;
};

struct verifier *verifier_new(struct ev_loop *loop, const struct config *cfg,
    struct dnscache *dns, struct politeness *polite, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int verifier_reconfigure(struct verifier *v, const struct config *cfg, char *err,
    size_t errlen) __attribute__((warn_unused_result));
void verifier_free(struct verifier *v);

/* A new, empty batch for domain (the domain part as written). */
struct verify_batch *verify_batch_new(struct verifier *v, const char *domain, bool utf8,
    const struct verify_batch_ops *ops, void *batch_arg);
/* Add an address (syntax checked, at this batch's domain); false when the
 * batch is sealed or full (max_rcpt_per_session, less one for the
 * catch-all check). */
bool verify_batch_add(struct verify_batch *b, const char *address, void *target_arg);
/* Start it (DNS first); results come through ops. */
void verify_batch_start(struct verify_batch *b);
bool verify_batch_sealed(const struct verify_batch *b);
size_t verify_batch_size(const struct verify_batch *b);
/* Drop a batch: no callback runs afterwards. */
void verify_batch_cancel(struct verify_batch *b);

void verifier_counters(const struct verifier *v, struct verify_counters *out);

#endif
