/*
 * hmap — string-keyed intrusive hash map.  See hmap.h.
 *
 * Chained buckets, doubled when the load passes 1.  The hash is SipHash-1-3
 * under a random 128-bit key (siphash.c), so a peer that picks the keys
 * cannot pick the collisions.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "siphash.h"

#define HMAP_MIN_BUCKETS 16

static uint64_t hkey[2];
static bool seeded;

static uint64_t
hash_of(const char *in, size_t len)
{
	return siphash13(hkey[0], hkey[1], in, len);
}

static void
seed(void)
{
	if (!seeded) {
		siphash_random_key(hkey);
		seeded = true;
	}
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
	uint64_t h = hash_of(key, len);

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
	node->hash = hash_of(key, len);
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
