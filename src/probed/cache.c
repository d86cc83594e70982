/*
 * cache — the verdict cache.  See cache.h.
 *
 * Owns every entry it holds and nothing else: cache_store() copies the
 * caller's struct verdict_entry, cache_lookup() hands back a copy in the
 * cache's own scratch entry, on_drop() borrows the key for the length of the
 * call.
 *
 * Layout.  An entry is one malloc'd struct node: the links (hash chain,
 * LRU, its domain's list), the fixed-width fields, then the key, the
 * enhanced code, the MX name and the text packed back to back in exactly
 * their lengths.  The header is 88 octets on LP64.  bench/cache_bench
 * (27-octet keys, 20-octet MX names, texts of 8 or 80 octets) measures 196
 * octets per entry all told: node, malloc's overhead, bucket array and
 * domain records; struct verdict_entry alone is 824.  Both tables chain
 * and keep the load factor at most 1 (doubled when passed; shrunk to twice
 * the count when below 1/8, so memory follows cache_set_max() and FORGET).
 * Domains are a second table of struct dom (name, list head, count), made
 * with the first entry of a domain and freed with its last.
 *
 * Kinds (cache_kind_of):
 *   deliverable    accepted                        POSITIVE
 *   risky          catch_all, unverifiable         POSITIVE  (a property of
 *                                                  the domain or its server
 *                                                  that does not change
 *                                                  from one day to the next)
 *   risky          mailbox_full (and any risky     NEGATIVE  (a full mailbox
 *                  reason added later)                       may empty in a day)
 *   undeliverable  every reason                    NEGATIVE
 *   unknown        every reason                    TEMPORARY
 * A reason outside the vocabulary is TEMPORARY.
 *
 * Decisions the header leaves open:
 * - cache_store() of a TEMPORARY verdict over a POSITIVE entry with
 *   now < expires answers CACHE_KEPT and leaves the entry unchanged, but
 *   moves it to the front of the LRU order (the address was just asked
 *   about).  Everything else replaces the entry, which does not call
 *   on_drop (the owner overwrites its stored copy instead).
 * - CACHE_NOMEM means "not stored, the cache is unchanged", for any reason:
 *   no memory, max_entries 0 (a disabled cache holds nothing, and the owner
 *   must not mirror an entry the cache will never report dropping), a key
 *   cache_key() would not have made, or an entry whose reason or tristates
 *   are out of range.
 * - An entry that is already expired when stored is stored all the same,
 *   so that what the owner mirrors is always something on_drop will report
 *   leaving.
 * - Only LRU evictions (at store time and by cache_set_max()) count in
 *   cache_evictions(); expiry at lookup and FORGET call on_drop but are
 *   not evictions.  cache_free() does not call on_drop.
 * - The pointer cache_lookup() returns is the cache's scratch entry: valid
 *   until the next call into the cache.  Strings in it are NUL-terminated;
 *   stored strings are cut at their first NUL or at their field's size - 1.
 * - cache_key() also refuses an empty local part or domain, a NUL, and a
 *   quoted string left open; address and key may be the same buffer.
 * - verdict_entry_pack() also returns 0 for an entry unpack would refuse
 *   (reason or tristate out of range), so it never writes such a record.
 * - Domains are matched ignoring ASCII case, so FORGET of "Example.ORG"
 *   finds the entries of "example.org" even for keys not made by
 *   cache_key().
 *
 * on_drop runs after the entry has left every list; it must not call back
 * into the cache.  Not thread-safe: one loop owns a cache.
 *
 * SECURITY: keys come from whoever can send VERIFY, so the tables are keyed
 * with SipHash-1-3 (siphash.c) under a 128-bit per-cache secret; an
 * attacker cannot aim many addresses at one bucket.  If the kernel's pool
 * is not ready (GRND_NONBLOCK fails) the secret falls back to clocks, pid
 * and addresses: weaker, documented, never fatal.  Records read back from
 * disk are checked field by field and by a CRC-32C before anything in them
 * is used; they are never trusted for lengths.
 *
 * LIMITS: keys are 1..255 octets; expired entries leave only when looked
 * up, evicted or forgotten (there is no sweep), so an unused expired entry
 * holds its slot until LRU reaches it.
 */
#include "autoconfig.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "siphash.h"

_Static_assert(REASON__COUNT <= UINT8_MAX, "a reason is stored in one octet");
_Static_assert(CACHE_KEY_MAX - 1 <= UINT8_MAX, "a key length is stored in one octet");
_Static_assert(sizeof(((struct verdict_entry *)0)->text) - 1 <= UINT16_MAX,
    "a text length is stored in two octets");
/* Both sides are equal on every target we build for: the assert is there for
 * the one where they are not. */
_Static_assert(INT_MAX == INT32_MAX && INT_MIN == INT32_MIN, /* NOLINT(misc-redundant-expression) */
    "code is packed as int32");

#define ENH_MAX  (sizeof(((struct verdict_entry *)0)->enhanced) - 1)
#define MX_MAX   (sizeof(((struct verdict_entry *)0)->mx) - 1)
#define TEXT_MAX (sizeof(((struct verdict_entry *)0)->text) - 1)
#define KEY_MAX  (CACHE_KEY_MAX - 1)

#define HTAB_MIN 64             /* buckets; a power of two */

/* ---- hash tables ------------------------------------------------------ */

/* First member of every element, so an element and its link share an
 * address. */
struct hlink {
	struct hlink *next;
};

struct htab {
	struct hlink **slot;
	size_t mask;                /* buckets - 1 */
	size_t n;
	uint32_t (*hash_of)(const struct hlink *);
};

struct dom {
	struct hlink link;
	struct node *head;
	size_t count;
	uint32_t hash;
	uint8_t len;
	char name[];                /* lowercased, not NUL-terminated */
};

struct node {
	struct hlink link;
	struct node *lru_prev, *lru_next;   /* prev: more recently used */
	struct node *dom_prev, *dom_next;
	struct dom *dom;
	int64_t made, refresh, expires;
	int code;
	uint32_t hash;
	uint8_t reason, catch_all, tls;
	uint8_t key_len, enh_len, mx_len;
	uint16_t text_len;
	char data[];                /* key, NUL, enhanced, mx, text */
};

struct cache {
	struct htab keys;           /* n is the entry count */
	struct htab doms;
	struct node *lru_head, *lru_tail;
	size_t max;
	uint64_t evictions;
	cache_drop_cb on_drop;
	void *arg;
	uint64_t k0, k1;            /* SipHash secret */
	struct verdict_entry out;   /* what cache_lookup() returns */
};

static uint32_t node_hash_of(const struct hlink *l);
static uint32_t dom_hash_of(const struct hlink *l);

static int
htab_init(struct htab *t, uint32_t (*hash_of)(const struct hlink *))
{
	t->slot = calloc(HTAB_MIN, sizeof(*t->slot));
	if (t->slot == NULL)
		return -1;
	t->mask = HTAB_MIN - 1;
	t->n = 0;
	t->hash_of = hash_of;
	return 0;
}

/* A failed allocation keeps the old array: longer chains, nothing lost. */
static void
htab_resize(struct htab *t, size_t buckets)
{
	if (buckets < HTAB_MIN || buckets > SIZE_MAX / sizeof(*t->slot) ||
	    buckets == t->mask + 1)
		return;
	struct hlink **slot = calloc(buckets, sizeof(*slot));
	if (slot == NULL)
		return;
	for (size_t i = 0; i <= t->mask; i++) {
		struct hlink *l = t->slot[i];
		while (l != NULL) {
			struct hlink *next = l->next;
			size_t b = t->hash_of(l) & (buckets - 1);
			l->next = slot[b];
			slot[b] = l;
			l = next;
		}
	}
	free(t->slot);
	t->slot = slot;
	t->mask = buckets - 1;
}

static struct hlink *
htab_first(const struct htab *t, uint32_t h)
{
	return t->slot[h & t->mask];
}

static void
htab_insert(struct htab *t, struct hlink *l, uint32_t h)
{
	struct hlink **b = &t->slot[h & t->mask];

	l->next = *b;
	*b = l;
	t->n++;
	if (t->n > t->mask + 1 && t->mask + 1 <= SIZE_MAX / 2)
		htab_resize(t, (t->mask + 1) * 2);
}

static void
htab_remove(struct htab *t, struct hlink *l, uint32_t h)
{
	struct hlink **pp = &t->slot[h & t->mask];

	while (*pp != l)
		pp = &(*pp)->next;
	*pp = l->next;
	l->next = NULL;
	t->n--;
	if (t->mask + 1 > HTAB_MIN && t->n < (t->mask + 1) / 8) {
		size_t want = HTAB_MIN;
		while (want < t->n * 2)
			want *= 2;
		htab_resize(t, want);
	}
}

/* ---- SipHash-1-3 ------------------------------------------------------ */

static uint32_t
fold(uint64_t h)
{
	return (uint32_t)(h ^ (h >> 32));
}

static void
seed(struct cache *c)
{
	uint64_t k[2];

	siphash_random_key(k);
	c->k0 = k[0];
	c->k1 = k[1];
}

/* ---- keys and domains ------------------------------------------------- */

static char
ascii_lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/*
 * Where an address splits: the last '@' outside a quoted string, in which
 * a backslash escapes the next octet.  False when there is none, when a
 * quoted string is left open, or when either side would be empty.
 */
static bool
split_at(const char *s, size_t len, size_t *at)
{
	bool quoted = false, found = false;

	for (size_t i = 0; i < len; i++) {
		if (quoted) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				quoted = false;
		} else if (s[i] == '"')
			quoted = true;
		else if (s[i] == '@') {
			*at = i;
			found = true;
		}
	}
	return found && !quoted && *at > 0 && *at + 1 < len;
}

size_t
cache_key(const char *address, size_t len, char *key, size_t cap)
{
	size_t at = 0;

	if (address == NULL || key == NULL || len == 0 || len > KEY_MAX || len >= cap)
		return 0;
	if (memchr(address, '\0', len) != NULL || !split_at(address, len, &at))
		return 0;
	memmove(key, address, len);   /* address and key may be one buffer */
	for (size_t i = at + 1; i < len; i++)
		key[i] = ascii_lower(key[i]);
	key[len] = '\0';
	return len;
}

static uint32_t
node_hash_of(const struct hlink *l)
{
	return ((const struct node *)(const void *)l)->hash;
}

static uint32_t
dom_hash_of(const struct hlink *l)
{
	return ((const struct dom *)(const void *)l)->hash;
}

static uint32_t
key_hash(const struct cache *c, const char *key, size_t len)
{
	return fold(siphash13(c->k0, c->k1, (const unsigned char *)key, len));
}

static struct node *
node_find(const struct cache *c, const char *key, size_t len, uint32_t h)
{
	for (struct hlink *l = htab_first(&c->keys, h); l != NULL; l = l->next) {
		struct node *n = (struct node *)(void *)l;
		if (n->hash == h && n->key_len == len && memcmp(n->data, key, len) == 0)
			return n;
	}
	return NULL;
}

/* low: the domain already lowercased, 1..KEY_MAX octets. */
static struct dom *
dom_find(const struct cache *c, const char *low, size_t len, uint32_t h)
{
	for (struct hlink *l = htab_first(&c->doms, h); l != NULL; l = l->next) {
		struct dom *d = (struct dom *)(void *)l;
		if (d->hash == h && d->len == len && memcmp(d->name, low, len) == 0)
			return d;
	}
	return NULL;
}

static uint32_t
dom_lower(const struct cache *c, const char *domain, size_t len, char *low)
{
	for (size_t i = 0; i < len; i++)
		low[i] = ascii_lower(domain[i]);
	return fold(siphash13(c->k0, c->k1, (const unsigned char *)low, len));
}

/* The domain's record, made when absent (count 0 until an entry links). */
static struct dom *
dom_get(struct cache *c, const char *domain, size_t len)
{
	char low[KEY_MAX] = { 0 };  /* zeroed for gcc -fanalyzer, which cannot
	                             * see that dom_lower() fills what it hashes */
	uint32_t h = dom_lower(c, domain, len, low);
	struct dom *d = dom_find(c, low, len, h);

	if (d != NULL)
		return d;
	d = malloc(sizeof(*d) + len);
	if (d == NULL)
		return NULL;
	d->head = NULL;
	d->count = 0;
	d->hash = h;
	d->len = (uint8_t)len;
	memcpy(d->name, low, len);
	htab_insert(&c->doms, &d->link, h);
	return d;
}

static void
dom_link(struct dom *d, struct node *n)
{
	n->dom = d;
	n->dom_prev = NULL;
	n->dom_next = d->head;
	if (d->head != NULL)
		d->head->dom_prev = n;
	d->head = n;
	d->count++;
}

/* ---- entries ---------------------------------------------------------- */

static bool
entry_valid(const struct verdict_entry *e)
{
	return e != NULL && (unsigned)e->reason < REASON__COUNT &&
	    (unsigned)e->catch_all <= TRI_YES && (unsigned)e->tls <= TRI_YES;
}

static struct node *
node_make(const char *key, size_t key_len, uint32_t h, const struct verdict_entry *e)
{
	size_t enh = strnlen(e->enhanced, ENH_MAX);
	size_t mx = strnlen(e->mx, MX_MAX);
	size_t text = strnlen(e->text, TEXT_MAX);
	struct node *n = malloc(sizeof(*n) + key_len + 1 + enh + mx + text);

	if (n == NULL)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->made = e->made;
	n->refresh = e->refresh;
	n->expires = e->expires;
	n->code = e->code;
	n->hash = h;
	n->reason = (uint8_t)e->reason;
	n->catch_all = (uint8_t)e->catch_all;
	n->tls = (uint8_t)e->tls;
	n->key_len = (uint8_t)key_len;
	n->enh_len = (uint8_t)enh;
	n->mx_len = (uint8_t)mx;
	n->text_len = (uint16_t)text;
	char *p = n->data;
	memcpy(p, key, key_len);
	p += key_len;
	*p++ = '\0';
	memcpy(p, e->enhanced, enh);
	p += enh;
	memcpy(p, e->mx, mx);
	p += mx;
	memcpy(p, e->text, text);
	return n;
}

static const struct verdict_entry *
node_entry(struct cache *c, const struct node *n)
{
	struct verdict_entry *e = &c->out;
	const char *p = n->data + n->key_len + 1;

	/* No memset of the ~830 octets: every field is set, each string
	 * terminated after its copy.  This runs on every cache hit. */
	e->reason = (enum reason)n->reason;
	e->code = n->code;
	e->catch_all = (enum tristate)n->catch_all;
	e->tls = (enum tristate)n->tls;
	e->made = n->made;
	e->refresh = n->refresh;
	e->expires = n->expires;
	memcpy(e->enhanced, p, n->enh_len);
	e->enhanced[n->enh_len] = '\0';
	p += n->enh_len;
	memcpy(e->mx, p, n->mx_len);
	e->mx[n->mx_len] = '\0';
	p += n->mx_len;
	memcpy(e->text, p, n->text_len);
	e->text[n->text_len] = '\0';
	return e;
}

static void
lru_push_front(struct cache *c, struct node *n)
{
	n->lru_prev = NULL;
	n->lru_next = c->lru_head;
	if (c->lru_head != NULL)
		c->lru_head->lru_prev = n;
	else
		c->lru_tail = n;
	c->lru_head = n;
}

static void
lru_unlink(struct cache *c, struct node *n)
{
	if (n->lru_prev != NULL)
		n->lru_prev->lru_next = n->lru_next;
	else
		c->lru_head = n->lru_next;
	if (n->lru_next != NULL)
		n->lru_next->lru_prev = n->lru_prev;
	else
		c->lru_tail = n->lru_prev;
	n->lru_prev = n->lru_next = NULL;
}

static void
lru_touch(struct cache *c, struct node *n)
{
	if (c->lru_head != n) {
		lru_unlink(c, n);
		lru_push_front(c, n);
	}
}

/* Out of every list; the domain goes with its last entry.  dom is NULL
 * when cache_forget_domain() has already taken the domain's list. */
static void
node_unlink(struct cache *c, struct node *n)
{
	struct dom *d = n->dom;

	htab_remove(&c->keys, &n->link, n->hash);
	lru_unlink(c, n);
	if (d == NULL)
		return;
	if (n->dom_prev != NULL)
		n->dom_prev->dom_next = n->dom_next;
	else
		d->head = n->dom_next;
	if (n->dom_next != NULL)
		n->dom_next->dom_prev = n->dom_prev;
	n->dom = NULL;
	if (--d->count == 0) {
		htab_remove(&c->doms, &d->link, d->hash);
		free(d);
	}
}

static void
node_drop(struct cache *c, struct node *n, bool evicted)
{
	node_unlink(c, n);
	if (evicted)
		c->evictions++;
	if (c->on_drop != NULL)
		c->on_drop(n->data, n->key_len, c->arg);
	free(n);
}

/* ---- the interface ---------------------------------------------------- */

enum cache_kind
cache_kind_of(enum reason r)
{
	if ((unsigned)r >= REASON__COUNT)
		return CACHE_TEMPORARY;
	switch (reason_verdict(r)) {
	case VERDICT_DELIVERABLE:
		return CACHE_POSITIVE;
	case VERDICT_RISKY:
		/* Only what describes the domain or its server earns the long
		 * TTL; a new risky reason gets the short one until judged. */
		return r == REASON_CATCH_ALL || r == REASON_UNVERIFIABLE ?
		    CACHE_POSITIVE : CACHE_NEGATIVE;
	case VERDICT_UNDELIVERABLE:
		return CACHE_NEGATIVE;
	case VERDICT_UNKNOWN:
	case VERDICT__COUNT:
		break;
	}
	return CACHE_TEMPORARY;
}

struct cache *
cache_new(size_t max_entries, cache_drop_cb on_drop, void *arg)
{
	struct cache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if (htab_init(&c->keys, node_hash_of) < 0) {
		free(c);
		return NULL;
	}
	if (htab_init(&c->doms, dom_hash_of) < 0) {
		free(c->keys.slot);
		free(c);
		return NULL;
	}
	c->max = max_entries;
	c->on_drop = on_drop;
	c->arg = arg;
	seed(c);
	return c;
}

void
cache_free(struct cache *c)
{
	if (c == NULL)
		return;
	struct node *n = c->lru_head;
	while (n != NULL) {
		struct node *next = n->lru_next;
		free(n);
		n = next;
	}
	for (size_t i = 0; i <= c->doms.mask; i++) {
		struct hlink *l = c->doms.slot[i];
		while (l != NULL) {
			struct hlink *next = l->next;
			free(l);
			l = next;
		}
	}
	free(c->keys.slot);
	free(c->doms.slot);
	free(c);
}

void
cache_set_max(struct cache *c, size_t max_entries)
{
	c->max = max_entries;
	while (c->keys.n > c->max)
		node_drop(c, c->lru_tail, true);
}

const struct verdict_entry *
cache_lookup(struct cache *c, const char *key, size_t key_len, int64_t now,
    enum cache_state *state)
{
	if (state != NULL)
		*state = CACHE_MISS;
	if (key == NULL || key_len == 0 || key_len > KEY_MAX)
		return NULL;
	struct node *n = node_find(c, key, key_len, key_hash(c, key, key_len));
	if (n == NULL)
		return NULL;
	if (now >= n->expires) {
		node_drop(c, n, false);
		return NULL;
	}
	lru_touch(c, n);
	if (state != NULL)
		*state = now >= n->refresh ? CACHE_REFRESH : CACHE_FRESH;
	return node_entry(c, n);
}

/* absent: the caller knows the key is not in the cache (start-up load
 * from the store, whose keys are unique), so the lookup is skipped. */
static enum cache_store_result
store_entry(struct cache *c, const char *key, size_t key_len,
    const struct verdict_entry *e, int64_t now, bool absent)
{
	size_t at = 0;

	if (key == NULL || key_len == 0 || key_len > KEY_MAX || !entry_valid(e) ||
	    !split_at(key, key_len, &at))
		return CACHE_NOMEM;
	uint32_t h = key_hash(c, key, key_len);
	struct node *old = absent ? NULL : node_find(c, key, key_len, h);
	if (old != NULL && cache_kind_of((enum reason)old->reason) == CACHE_POSITIVE &&
	    now < old->expires && cache_kind_of(e->reason) == CACHE_TEMPORARY) {
		lru_touch(c, old);
		return CACHE_KEPT;
	}
	if (old == NULL && c->max == 0)
		return CACHE_NOMEM;

	/* Everything that can fail comes first: on failure nothing changed. */
	struct node *n = node_make(key, key_len, h, e);
	if (n == NULL)
		return CACHE_NOMEM;
	struct dom *d = old != NULL ? old->dom : dom_get(c, key + at + 1, key_len - at - 1);
	if (d == NULL) {
		free(n);
		return CACHE_NOMEM;
	}
	/* Linked into the domain first, so that evicting the domain's last
	 * other entry cannot free the record under it. */
	dom_link(d, n);
	if (old != NULL) {
		node_unlink(c, old);
		free(old);
	} else
		while (c->keys.n >= c->max)
			node_drop(c, c->lru_tail, true);
	htab_insert(&c->keys, &n->link, h);
	lru_push_front(c, n);
	return CACHE_STORED;
}

enum cache_store_result
cache_store(struct cache *c, const char *key, size_t key_len,
    const struct verdict_entry *e, int64_t now)
{
	return store_entry(c, key, key_len, e, now, false);
}

enum cache_store_result
cache_load(struct cache *c, const char *key, size_t key_len, const struct verdict_entry *e,
    int64_t now)
{
	return store_entry(c, key, key_len, e, now, true);
}

void
cache_reserve(struct cache *c, size_t n)
{
	size_t want = HTAB_MIN;

	if (n > c->max)
		n = c->max;
	while (want < n && want <= SIZE_MAX / 4)
		want *= 2;
	htab_resize(&c->keys, want);
	/* Domains: fewer than addresses, how many fewer nobody knows. */
	htab_resize(&c->doms, want / 4 > HTAB_MIN ? want / 4 : HTAB_MIN);
}

size_t
cache_forget_address(struct cache *c, const char *key, size_t key_len)
{
	if (key == NULL || key_len == 0 || key_len > KEY_MAX)
		return 0;
	struct node *n = node_find(c, key, key_len, key_hash(c, key, key_len));
	if (n == NULL)
		return 0;
	node_drop(c, n, false);
	return 1;
}

size_t
cache_forget_domain(struct cache *c, const char *domain, size_t len)
{
	char low[KEY_MAX] = { 0 };  /* as in dom_get() */

	if (domain == NULL || len == 0 || len > KEY_MAX)
		return 0;
	uint32_t h = dom_lower(c, domain, len, low);
	struct dom *d = dom_find(c, low, len, h);
	if (d == NULL)
		return 0;
	/* Take the list and retire the record first: the drops below then
	 * never reach it, whatever its count says. */
	struct node *n = d->head;
	htab_remove(&c->doms, &d->link, d->hash);
	free(d);
	size_t count = 0;
	while (n != NULL) {
		struct node *next = n->dom_next;
		n->dom = NULL;
		node_drop(c, n, false);
		count++;
		n = next;
	}
	return count;
}

size_t
cache_entries(const struct cache *c)
{
	return c->keys.n;
}

uint64_t
cache_evictions(const struct cache *c)
{
	return c->evictions;
}

/* ---- the persistent record -------------------------------------------- */

/*
 * Version 1, every integer little-endian:
 *   0  4  "pve" 0x01         magic and version
 *   4  1  reason             < REASON__COUNT
 *   5  1  catch_all          0..2 (enum tristate)
 *   6  1  tls                0..2
 *   7  1  enhanced length    0..15
 *   8  1  mx length          0..255
 *   9  2  text length        0..511
 *  11  4  code               int32
 *  15  8  made               int64
 *  23  8  refresh            int64
 *  31  8  expires            int64
 *  39  .  enhanced, mx, text without NULs
 *   .  4  CRC-32C of every octet before it
 * The length must be exactly 43 plus the three string lengths.  The CRC
 * catches what LMDB does not check: a flipped bit on disk would otherwise
 * turn into a different verdict or time that still parses.
 */
#define REC_MAGIC   "pve\001"
#define REC_FIXED   39
#define REC_CRC     4
#define REC_MIN     (REC_FIXED + REC_CRC)

/* CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), one table lookup
 * per octet: tab[i] is the CRC register after shifting i through 8 times. */
static uint32_t
crc32c(const unsigned char *p, size_t len)
{
	static const uint32_t tab[256] = {
		0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4,
		0xc79a971f, 0x35f1141c, 0x26a1e7e8, 0xd4ca64eb,
		0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b,
		0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24,
		0x105ec76f, 0xe235446c, 0xf165b798, 0x030e349b,
		0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
		0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54,
		0x5d1d08bf, 0xaf768bbc, 0xbc267848, 0x4e4dfb4b,
		0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a,
		0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35,
		0xaa64d611, 0x580f5512, 0x4b5fa6e6, 0xb93425e5,
		0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
		0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45,
		0xf779deae, 0x05125dad, 0x1642ae59, 0xe4292d5a,
		0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a,
		0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595,
		0x417b1dbc, 0xb3109ebf, 0xa0406d4b, 0x522bee48,
		0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
		0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687,
		0x0c38d26c, 0xfe53516f, 0xed03a29b, 0x1f682198,
		0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
		0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38,
		0xdbfc821c, 0x2997011f, 0x3ac7f2eb, 0xc8ac71e8,
		0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
		0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096,
		0xa65c047d, 0x5437877e, 0x4767748a, 0xb50cf789,
		0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859,
		0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46,
		0x7198540d, 0x83f3d70e, 0x90a324fa, 0x62c8a7f9,
		0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
		0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36,
		0x3cdb9bdd, 0xceb018de, 0xdde0eb2a, 0x2f8b6829,
		0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c,
		0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93,
		0x082f63b7, 0xfa44e0b4, 0xe9141340, 0x1b7f9043,
		0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
		0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3,
		0x55326b08, 0xa759e80b, 0xb4091bff, 0x466298fc,
		0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c,
		0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033,
		0xa24bb5a6, 0x502036a5, 0x4370c551, 0xb11b4652,
		0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
		0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d,
		0xef087a76, 0x1d63f975, 0x0e330a81, 0xfc588982,
		0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d,
		0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622,
		0x38cc2a06, 0xcaa7a905, 0xd9f75af1, 0x2b9cd9f2,
		0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
		0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530,
		0x0417b1db, 0xf67c32d8, 0xe52cc12c, 0x1747422f,
		0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff,
		0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0,
		0xd3d3e1ab, 0x21b862a8, 0x32e8915c, 0xc083125f,
		0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
		0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90,
		0x9e902e7b, 0x6cfbad78, 0x7fab5e8c, 0x8dc0dd8f,
		0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee,
		0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1,
		0x69e9f0d5, 0x9b8273d6, 0x88d28022, 0x7ab90321,
		0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
		0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81,
		0x34f4f86a, 0xc69f7b69, 0xd5cf889d, 0x27a40b9e,
		0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
		0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
	};
	uint32_t crc = 0xffffffffU;

	for (size_t i = 0; i < len; i++)
		crc = (crc >> 8) ^ tab[(crc ^ p[i]) & 0xff];
	return ~crc;
}

static void
put_le(unsigned char *p, uint64_t v, int octets)
{
	for (int i = 0; i < octets; i++, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

static uint64_t
get_le(const unsigned char *p, int octets)
{
	uint64_t v = 0;

	for (int i = octets - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

size_t
verdict_entry_pack(const struct verdict_entry *e, unsigned char *out, size_t cap)
{
	if (!entry_valid(e) || out == NULL)
		return 0;
	size_t enh = strnlen(e->enhanced, ENH_MAX);
	size_t mx = strnlen(e->mx, MX_MAX);
	size_t text = strnlen(e->text, TEXT_MAX);
	size_t need = REC_MIN + enh + mx + text;
	if (cap < need)
		return 0;
	memcpy(out, REC_MAGIC, 4);
	out[4] = (unsigned char)e->reason;
	out[5] = (unsigned char)e->catch_all;
	out[6] = (unsigned char)e->tls;
	out[7] = (unsigned char)enh;
	out[8] = (unsigned char)mx;
	put_le(out + 9, text, 2);
	put_le(out + 11, (uint32_t)e->code, 4);
	put_le(out + 15, (uint64_t)e->made, 8);
	put_le(out + 23, (uint64_t)e->refresh, 8);
	put_le(out + 31, (uint64_t)e->expires, 8);
	unsigned char *p = out + REC_FIXED;
	memcpy(p, e->enhanced, enh);
	p += enh;
	memcpy(p, e->mx, mx);
	p += mx;
	memcpy(p, e->text, text);
	p += text;
	put_le(p, crc32c(out, (size_t)(p - out)), 4);
	return need;
}

bool
verdict_entry_unpack(const unsigned char *in, size_t len, struct verdict_entry *e)
{
	if (in == NULL || e == NULL || len < REC_MIN || memcmp(in, REC_MAGIC, 4) != 0)
		return false;
	size_t enh = in[7], mx = in[8], text = (size_t)get_le(in + 9, 2);
	if (in[4] >= REASON__COUNT || in[5] > TRI_YES || in[6] > TRI_YES ||
	    enh > ENH_MAX || mx > MX_MAX || text > TEXT_MAX ||
	    len != REC_MIN + enh + mx + text)
		return false;
	if (crc32c(in, len - REC_CRC) != (uint32_t)get_le(in + len - REC_CRC, 4))
		return false;
	const unsigned char *s = in + REC_FIXED;
	if (memchr(s, '\0', enh + mx + text) != NULL)
		return false;

	struct verdict_entry v;
	memset(&v, 0, sizeof(v));
	v.reason = (enum reason)in[4];
	v.catch_all = (enum tristate)in[5];
	v.tls = (enum tristate)in[6];
	v.code = (int)(int32_t)(uint32_t)get_le(in + 11, 4);
	v.made = (int64_t)get_le(in + 15, 8);
	v.refresh = (int64_t)get_le(in + 23, 8);
	v.expires = (int64_t)get_le(in + 31, 8);
	memcpy(v.enhanced, s, enh);
	memcpy(v.mx, s + enh, mx);
	memcpy(v.text, s + enh + mx, text);
	*e = v;
	return true;
}
