/*
 * hmap — string-keyed intrusive hash map.  See hmap.h.
 *
 * Chained buckets, doubled when the load passes 1.  The hash is SipHash-1-3
 * style mixing of 64-bit words under a random 128-bit key, so a peer that
 * picks the keys cannot pick the collisions.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "hmap.h"

#define HMAP_MIN_BUCKETS 16

static uint64_t seed0, seed1;
static bool seeded;

static uint64_t
rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND do { \
	v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32); \
	v2 += v3; v3 = rotl(v3, 16); v3 ^= v2; \
	v0 += v3; v3 = rotl(v3, 21); v3 ^= v0; \
	v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32); \
} while (0)

static uint64_t
siphash13(const char *in, size_t len)
{
	uint64_t v0 = seed0 ^ 0x736f6d6570736575ULL, v1 = seed1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = seed0 ^ 0x6c7967656e657261ULL, v3 = seed1 ^ 0x7465646279746573ULL;
	uint64_t b = (uint64_t)len << 56, m;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&m, in + i, 8);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t k = 0; i + k < len; k++)
		b |= (uint64_t)(unsigned char)in[i + k] << (8 * k);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static void
seed(void)
{
	uint64_t s[2] = { 0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL };

	if (seeded)
		return;
	/* Without entropy the map still works; it is only less robust. */
	if (getrandom(s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
		s[0] ^= (uint64_t)(uintptr_t)&s;
	seed0 = s[0];
	seed1 = s[1];
	seeded = true;
}

int
hmap_init(struct hmap *m)
{
	seed();
	m->buckets = calloc(HMAP_MIN_BUCKETS, sizeof(*m->buckets));
	if (m->buckets == NULL)
		return -1;
	m->n_buckets = HMAP_MIN_BUCKETS;
	m->n = 0;
	return 0;
}

void
hmap_destroy(struct hmap *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->n_buckets = m->n = 0;
}

struct hmap_node *
hmap_get(const struct hmap *m, const char *key, size_t len)
{
	uint64_t h = siphash13(key, len);

	for (struct hmap_node *n = m->buckets[h & (m->n_buckets - 1)]; n != NULL; n = n->next)
		if (n->hash == h && n->key_len == len && memcmp(n->key, key, len) == 0)
			return n;
	return NULL;
}

static void
grow(struct hmap *m)
{
	size_t nb = m->n_buckets * 2;
	struct hmap_node **b = calloc(nb, sizeof(*b));

	if (b == NULL)
		return; /* stay at this size: slower, still correct */
	for (size_t i = 0; i < m->n_buckets; i++) {
		struct hmap_node *n = m->buckets[i], *next;
		for (; n != NULL; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->n_buckets = nb;
}

void
hmap_put(struct hmap *m, struct hmap_node *node, const char *key, size_t len)
{
	if (m->n >= m->n_buckets)
		grow(m);
	node->hash = siphash13(key, len);
	node->key = key;
	node->key_len = len;
	struct hmap_node **b = &m->buckets[node->hash & (m->n_buckets - 1)];
	node->next = *b;
	*b = node;
	m->n++;
}

void
hmap_del(struct hmap *m, struct hmap_node *node)
{
	struct hmap_node **p = &m->buckets[node->hash & (m->n_buckets - 1)];

	for (; *p != NULL; p = &(*p)->next)
		if (*p == node) {
			*p = node->next;
			m->n--;
			return;
		}
}

void
hmap_each(struct hmap *m, void (*fn)(struct hmap_node *node, void *arg), void *arg)
{
	for (size_t i = 0; i < m->n_buckets; i++) {
		struct hmap_node *n = m->buckets[i], *next;
		for (; n != NULL; n = next) {
			next = n->next;
			fn(n, arg);
		}
	}
}
