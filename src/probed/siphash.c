/*
 * siphash — SipHash-1-3 and secret keys for it.  See siphash.h.
 *
 * 1-3 rather than 2-4: the tables need hash-flooding resistance, not a
 * MAC, and the reference authors recommend 1-3 for that use (as Rust's
 * and Python's standard hash tables do).
 */
#include "autoconfig.h"

#include <endian.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "siphash.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do { \
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
} while (0)

/* Eight octets, little-endian, from anywhere (memcpy: no alignment asked). */
static uint64_t
le64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

uint64_t
siphash13(uint64_t k0, uint64_t k1, const void *input, size_t len)
{
	const unsigned char *p = input;
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	uint64_t b = (uint64_t)len << 56;
	size_t whole = len & ~(size_t)7;

	for (size_t i = 0; i < whole; i += 8) {
		uint64_t m = le64(p + i);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t i = 0; i < (len & 7); i++)
		b |= (uint64_t)p[whole + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

void
siphash_random_key(uint64_t key[2])
{
	if (getrandom(key, 2 * sizeof(key[0]), GRND_NONBLOCK) == (ssize_t)(2 * sizeof(key[0])))
		return;
	/* Zeroed: a clock_gettime that fails leaves them as they were, and
	 * uninitialized bytes must not go into the key. */
	struct timespec rt = { 0 }, mt = { 0 };
	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_MONOTONIC, &mt);
	uint64_t mix[] = { (uint64_t)rt.tv_sec, (uint64_t)rt.tv_nsec, (uint64_t)mt.tv_sec,
		(uint64_t)mt.tv_nsec, (uint64_t)getpid(), (uint64_t)(uintptr_t)key,
		(uint64_t)(uintptr_t)&rt, (uint64_t)(uintptr_t)&siphash_random_key };
	key[0] = siphash13(0x0123456789abcdefULL, 0xfedcba9876543210ULL, mix, sizeof(mix));
	key[1] = siphash13(key[0], 0x9e3779b97f4a7c15ULL, mix, sizeof(mix));
}
