/*
 * siphash — the keyed hash every table of probed uses (SipHash-1-3,
 * Aumasson & Bernstein): the keys of those tables (addresses, domains,
 * host names) come from strangers, so their buckets must not be
 * predictable.  One implementation, one source of secret keys.
 */
#ifndef PROBED_SIPHASH_H
#define PROBED_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t siphash13(uint64_t k0, uint64_t k1, const void *in, size_t len);
/* A fresh secret from getrandom(); without entropy (early boot), a weaker
 * one mixed from clocks, the pid and addresses. */
void siphash_random_key(uint64_t key[2]);

#endif
