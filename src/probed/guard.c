/*
 * guard — destination guard.  See guard.h.
 *
 * The forbidden ranges are the IANA special-purpose registries (RFC 6890
 * and its updates) minus the few that are globally reachable.  The allow
 * list is checked first, so a test lab can let 127.0.0.0/8 through while
 * everything else stays shut.
 *
 * SECURITY: this is the only thing between a hostile MX record and a
 * connection to the mail server's own LAN; every address probed connects to
 * passes here, after DNS, immediately before connect().
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "guard.h"

struct net {
	int family;           /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};

struct guard {
	struct net *allow;
	size_t n_allow;
};

struct special {
	const char *cidr;
	const char *why;
};

/* IPv4 special-purpose ranges that must never be probed. */
static const struct special special_v4[] = {
	{ "0.0.0.0/8", "this-network" },
	{ "10.0.0.0/8", "private" },
	{ "100.64.0.0/10", "shared-address-space" },
	{ "127.0.0.0/8", "loopback" },
	{ "169.254.0.0/16", "link-local" },
	{ "172.16.0.0/12", "private" },
	{ "192.0.0.0/24", "ietf-protocol-assignment" },
	{ "192.0.2.0/24", "documentation" },
	{ "192.88.99.0/24", "6to4-relay-anycast" },
	{ "192.168.0.0/16", "private" },
	{ "198.18.0.0/15", "benchmarking" },
	{ "198.51.100.0/24", "documentation" },
	{ "203.0.113.0/24", "documentation" },
	{ "224.0.0.0/4", "multicast" },
	{ "240.0.0.0/4", "reserved" },
};

static const struct special special_v6[] = {
	{ "::/128", "unspecified" },
	{ "::1/128", "loopback" },
	{ "::/96", "ipv4-compatible" },
	{ "100::/64", "discard-only" },
	{ "2001::/23", "ietf-protocol-assignment" },
	{ "2001:db8::/32", "documentation" },
	{ "2002::/16", "6to4" },
	{ "3fff::/20", "documentation" },
	{ "5f00::/16", "segment-routing" },
	{ "fc00::/7", "unique-local" },
	{ "fe80::/10", "link-local" },
	{ "fec0::/10", "site-local" },
	{ "ff00::/8", "multicast" },
};

static bool
parse_cidr(const char *s, struct net *n)
{
	char buf[INET6_ADDRSTRLEN + 8];
	size_t len = strlen(s);

	if (len >= sizeof(buf))
		return false;
	memcpy(buf, s, len + 1);
	char *slash = strchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, buf, n->addr) == 1) {
		n->family = AF_INET;
		n->prefix = 32;
	} else if (inet_pton(AF_INET6, buf, n->addr) == 1) {
		n->family = AF_INET6;
		n->prefix = 128;
	} else {
		return false;
	}
	if (slash != NULL) {
		char *end;
		unsigned long p = strtoul(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || p > n->prefix)
			return false;
		n->prefix = (unsigned)p;
	}
	return true;
}

static bool
prefix_match(const unsigned char *a, const unsigned char *net, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, net, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (net[full] & mask);
}

static bool
net_contains(const struct net *n, int family, const unsigned char *addr)
{
	return n->family == family && prefix_match(addr, n->addr, n->prefix);
}

/* The special-purpose range addr falls in, or NULL. */
static const char *
special_range(int family, const unsigned char *addr)
{
	const struct special *t = family == AF_INET ? special_v4 : special_v6;
	size_t n = family == AF_INET ? sizeof(special_v4) / sizeof(special_v4[0])
	                             : sizeof(special_v6) / sizeof(special_v6[0]);

	for (size_t i = 0; i < n; i++) {
		struct net net;
		if (parse_cidr(t[i].cidr, &net) && net_contains(&net, family, addr))
			return t[i].why;
	}
	if (family == AF_INET && memcmp(addr, "\xff\xff\xff\xff", 4) == 0)
		return "broadcast";
	return NULL;
}

struct guard *
guard_new(const struct strlist *allow, char *err, size_t errlen)
{
	struct guard *g = calloc(1, sizeof(*g));

	if (g == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (allow != NULL && allow->n > 0) {
		g->allow = calloc(allow->n, sizeof(*g->allow));
		if (g->allow == NULL) {
			snprintf(err, errlen, "out of memory");
			free(g);
			return NULL;
		}
		for (size_t i = 0; i < allow->n; i++) {
			if (!parse_cidr(allow->v[i], &g->allow[i])) {
				snprintf(err, errlen, "smtp.allow_networks: '%s' is not a network",
				    allow->v[i]);
				guard_free(g);
				return NULL;
			}
		}
		g->n_allow = allow->n;
	}
	return g;
}

void
guard_free(struct guard *g)
{
	if (g == NULL)
		return;
	free(g->allow);
	free(g);
}

static bool
allowed_by_config(const struct guard *g, int family, const unsigned char *addr)
{
	for (size_t i = 0; i < g->n_allow; i++)
		if (net_contains(&g->allow[i], family, addr))
			return true;
	return false;
}

bool
guard_allows(const struct guard *g, const struct sockaddr *sa, const char **why)
{
	unsigned char addr[16];
	int family = sa->sa_family;
	const char *w;

	*why = NULL;
	if (family == AF_INET) {
		memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (family == AF_INET6) {
		memcpy(addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	} else {
		*why = "not-an-internet-address";
		return false;
	}
	if (allowed_by_config(g, family, addr))
		return true;

	if (family == AF_INET6) {
		/* An IPv4 address wrapped in IPv6 is judged as that IPv4 address:
		 * ::ffff:127.0.0.1 is loopback, 64:ff9b::a00:1 is 10.0.0.1. */
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		static const unsigned char nat64[12] = { 0, 0x64, 0xff, 0x9b };
		if (memcmp(addr, mapped, 12) == 0 || memcmp(addr, nat64, 12) == 0) {
			if (allowed_by_config(g, AF_INET, addr + 12))
				return true;
			w = special_range(AF_INET, addr + 12);
			if (w != NULL) {
				*why = w;
				return false;
			}
			if (memcmp(addr, mapped, 12) == 0) {
				/* A socket never needs the mapped form to reach a
				 * public IPv4 host; refusing it keeps things simple. */
				*why = "ipv4-mapped";
				return false;
			}
			return true;
		}
	}
	w = special_range(family, addr);
	if (w != NULL) {
		*why = w;
		return false;
	}
	return true;
}
