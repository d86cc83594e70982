/*
 * domain — what probed has learned about a domain, beyond single
 * addresses: whether it accepts every address (catch-all) and since when,
 * whether its servers refuse the null sender (then probes start with
 * fallback_mail_from), and the random address used while a greylisting
 * retry is pending (postgrey and friends key on the recipient, so a retry
 * must ask the same one).  Bounded; the oldest-touched domain goes first.
 */
#ifndef PROBED_DOMAIN_H
#define PROBED_DOMAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "address.h"
#include "codec.h"

struct domain_facts {
	enum tristate catch_all;
	int64_t catch_all_at;        /* unix seconds; 0: never learned */
	bool null_sender_refused;
	int64_t null_sender_at;
	char grey_random[ADDRESS_MAX + 1]; /* "" when no greylisting retry is pending */
	int64_t grey_until;
};

struct domains;

struct domains *domains_new(size_t max_entries) __attribute__((warn_unused_result));
void domains_free(struct domains *d);
void domains_set_max(struct domains *d, size_t max_entries);
/* The facts of a domain (lowercased), created empty when create is set;
 * NULL when absent (or out of memory). */
struct domain_facts *domains_get(struct domains *d, const char *domain, bool create);
bool domains_forget(struct domains *d, const char *domain);
size_t domains_count(const struct domains *d);

/* Persistent form, as verdict_entry_pack/unpack. */
size_t domain_facts_pack(const struct domain_facts *f, unsigned char *out, size_t cap);
bool domain_facts_unpack(const unsigned char *in, size_t len, struct domain_facts *f);

#endif
