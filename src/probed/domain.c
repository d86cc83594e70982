/*
 * domain — per-domain facts.  See domain.h.
 *
 * A hash map for lookup and a doubly-linked list in order of last touch for
 * eviction past max_entries.  The persistent record is versioned and
 * length-checked: a record from another version, or damaged, is refused
 * and the domain simply starts unknown.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "hmap.h"

#define FACTS_RECORD_VERSION 1

struct domain {
	struct hmap_node node;
	struct domain *prev, *next;   /* most recently touched first */
	struct domain_facts facts;
	char name[];
};

struct domains {
	struct hmap map;
	struct domain *head, *tail;
	size_t max;
};

static void
list_unlink(struct domains *d, struct domain *x)
{
	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		d->head = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	else
		d->tail = x->prev;
	x->prev = x->next = NULL;
}

static void
list_push(struct domains *d, struct domain *x)
{
	x->next = d->head;
	x->prev = NULL;
	if (d->head != NULL)
		d->head->prev = x;
	else
		d->tail = x;
	d->head = x;
}

static void
drop(struct domains *d, struct domain *x)
{
	list_unlink(d, x);
	hmap_del(&d->map, &x->node);
	free(x);
}

struct domains *
domains_new(size_t max_entries)
{
	struct domains *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	if (hmap_init(&d->map) != 0) {
		free(d);
		return NULL;
	}
	d->max = max_entries;
	return d;
}

void
domains_free(struct domains *d)
{
	if (d == NULL)
		return;
	while (d->head != NULL)
		drop(d, d->head);
	hmap_destroy(&d->map);
	free(d);
}

void
domains_set_max(struct domains *d, size_t max_entries)
{
	d->max = max_entries;
	while (d->map.n > d->max && d->tail != NULL)
		drop(d, d->tail);
}

struct domain_facts *
domains_get(struct domains *d, const char *domain, bool create)
{
	char key[ADDRESS_DOMAIN_MAX + 1];
	size_t len = strlen(domain);

	if (len > ADDRESS_DOMAIN_MAX)
		return NULL;
	for (size_t i = 0; i <= len; i++)
		key[i] = (domain[i] >= 'A' && domain[i] <= 'Z') ? (char)(domain[i] + 32) : domain[i];
	struct hmap_node *n = hmap_get(&d->map, key, len);
	if (n != NULL) {
		struct domain *x = hmap_entry(n, struct domain, node);
		list_unlink(d, x);
		list_push(d, x);
		return &x->facts;
	}
	if (!create || d->max == 0)
		return NULL;
	struct domain *x = calloc(1, sizeof(*x) + len + 1);
	if (x == NULL)
		return NULL;
	memcpy(x->name, key, len + 1);
	x->facts.catch_all = TRI_UNKNOWN;
	hmap_put(&d->map, &x->node, x->name, len);
	list_push(d, x);
	while (d->map.n > d->max && d->tail != NULL && d->tail != x)
		drop(d, d->tail);
	return &x->facts;
}

bool
domains_forget(struct domains *d, const char *domain)
{
	char key[ADDRESS_DOMAIN_MAX + 1];
	size_t len = strlen(domain);

	if (len > ADDRESS_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i <= len; i++)
		key[i] = (domain[i] >= 'A' && domain[i] <= 'Z') ? (char)(domain[i] + 32) : domain[i];
	struct hmap_node *n = hmap_get(&d->map, key, len);
	if (n == NULL)
		return false;
	drop(d, hmap_entry(n, struct domain, node));
	return true;
}

size_t
domains_count(const struct domains *d)
{
	return d->map.n;
}

/* ---- persistent form ---------------------------------------------------- */

static void
put64(unsigned char *p, int64_t v)
{
	uint64_t u = (uint64_t)v;

	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(u >> (8 * i));
}

static int64_t
get64(const unsigned char *p)
{
	uint64_t u = 0;

	for (int i = 0; i < 8; i++)
		u |= (uint64_t)p[i] << (8 * i);
	return (int64_t)u;
}

/* version(1) catch_all(1) null_sender(1) catch_all_at(8) null_sender_at(8)
 * grey_until(8) grey_len(1) grey(grey_len) */
size_t
domain_facts_pack(const struct domain_facts *f, unsigned char *out, size_t cap)
{
	size_t glen = strnlen(f->grey_random, sizeof(f->grey_random) - 1);
	size_t n = 3 + 24 + 1 + glen;

	if (cap < n)
		return 0;
	out[0] = FACTS_RECORD_VERSION;
	out[1] = (unsigned char)f->catch_all;
	out[2] = f->null_sender_refused ? 1 : 0;
	put64(out + 3, f->catch_all_at);
	put64(out + 11, f->null_sender_at);
	put64(out + 19, f->grey_until);
	out[27] = (unsigned char)glen;
	memcpy(out + 28, f->grey_random, glen);
	return n;
}

bool
domain_facts_unpack(const unsigned char *in, size_t len, struct domain_facts *f)
{
	if (len < 28 || in[0] != FACTS_RECORD_VERSION || in[1] > TRI_YES || in[2] > 1)
		return false;
	size_t glen = in[27];
	if (glen > ADDRESS_MAX || len != 28 + glen || memchr(in + 28, '\0', glen) != NULL)
		return false;
	memset(f, 0, sizeof(*f));
	f->catch_all = (enum tristate)in[1];
	f->null_sender_refused = in[2] == 1;
	f->catch_all_at = get64(in + 3);
	f->null_sender_at = get64(in + 11);
	f->grey_until = get64(in + 19);
	memcpy(f->grey_random, in + 28, glen);
	f->grey_random[glen] = '\0';
	return true;
}
