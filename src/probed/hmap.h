/*
 * hmap — a small intrusive hash map with string keys, shared by the
 * daemon's tables (in-flight probes, domains, hosts).  The caller embeds a
 * struct hmap_node in its object and owns the key's memory; the map never
 * allocates per entry.  Hashing is keyed with a per-process random seed,
 * since the keys (addresses, domains, host names) come from strangers.
 */
#ifndef PROBED_HMAP_H
#define PROBED_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hmap_node {
	struct hmap_node *next;
	uint64_t hash;
	const char *key;
	size_t key_len;
};

struct hmap {
	struct hmap_node **buckets;
	size_t n_buckets;   /* a power of two */
	size_t n;
};

int hmap_init(struct hmap *m) __attribute__((warn_unused_result));
void hmap_destroy(struct hmap *m);  /* the nodes stay the caller's */
struct hmap_node *hmap_get(const struct hmap *m, const char *key, size_t len);
/* Insert a node whose key is not in the map yet; grows the table. */
void hmap_put(struct hmap *m, struct hmap_node *node, const char *key, size_t len);
void hmap_del(struct hmap *m, struct hmap_node *node);
/* Visit every node; fn may delete the node it is given. */
void hmap_each(struct hmap *m, void (*fn)(struct hmap_node *node, void *arg), void *arg);

#define hmap_entry(node, type, member) \
	((type *)(void *)((char *)(node) - offsetof(type, member)))

#endif
