/*
 * resolver — DNS for probed: udns driven by the libev loop (one ev_io on
 * the resolver socket, one ev_timer from dns_set_tmcbck), never blocking.
 * Answers the one question the verifier asks: which hosts, at which
 * addresses, receive mail for a domain, in the order to try them.
 *
 *   MX records, preference order, equal preferences shuffled, at most
 *   max_mx hosts; each host's A and AAAA looked up in parallel.
 *   No MX records (NODATA)  -> implicit MX: the domain's own A/AAAA
 *                              (RFC 5321 §5.1).
 *   a single "MX 0 ."       -> null MX (RFC 7505).
 *   NXDOMAIN                -> no such domain.
 *   SERVFAIL, REFUSED, timeout -> DNS error (nothing is concluded).
 *   MX hosts (or the implicit MX) without any address -> no_mx, but only
 *   when every lookup answered; a lookup that failed makes it a DNS error.
 *
 * U-label domains are converted to A-labels (IDNA2008, libidn2) before
 * they are asked.
 */
#ifndef PROBED_RESOLVER_H
#define PROBED_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ev.h>

struct resolver;
struct resolver_query;
struct strlist;

#define RESOLVER_MAX_MX 16        /* hard cap on hosts kept per domain */
#define RESOLVER_MAX_ADDRS 8      /* addresses kept per host (A + AAAA) */

/*
 * Queries out at once; further lookups wait in the resolver, first come
 * first served (address lookups of requests under way before new MX
 * lookups), and the per-query timeout starts when a query goes out.  Their
 * answers can arrive together, and the kernel drops what does not fit the
 * socket's receive buffer.  The kernel charges each datagram waiting on
 * a socket its skb truesize, on loopback 768 octets up to about 170 octets
 * of payload and 1,280 up to about 1,700 (measured: 256 and 166 datagrams
 * fill the default buffer).  The default receive buffer is 212,992 octets
 * (net.core.rmem_default), and an unprivileged process cannot raise it past
 * net.core.rmem_max: 128 x 1,280 = 163,840 fits, with room for
 * retransmissions.  At 50 ms per answer that is still 2,560 queries/s.
 */
#define RESOLVER_MAX_ACTIVE 128

enum mx_status {
	MX_OK,          /* hosts[] holds at least one host with an address */
	MX_NXDOMAIN,
	MX_NULL_MX,
	MX_NO_MX,       /* no host has an address */
	MX_DNS_ERROR,
};

struct mx_host {
	char name[256];               /* as in the MX record, no trailing dot */
	unsigned preference;
	bool implicit;                /* the domain itself (no MX records) */
	size_t n_addrs;
	struct sockaddr_storage addrs[RESOLVER_MAX_ADDRS]; /* port 0 */
};

struct mx_result {
	enum mx_status status;
	char detail[128];             /* "SERVFAIL from 127.0.1.53", "timeout", ... */
	unsigned ttl;                 /* smallest TTL seen (for the caches) */
	size_t n_hosts;
	struct mx_host hosts[RESOLVER_MAX_MX];
};

typedef void (*resolver_mx_cb)(const struct mx_result *result, void *arg);

/* servers: IP addresses; empty means /etc/resolv.conf.  timeout: seconds
 * per query attempt.  Returns NULL with err filled on failure. */
struct resolver *resolver_new(struct ev_loop *loop, const struct strlist *servers,
    double timeout, char *err, size_t errlen) __attribute__((warn_unused_result));
void resolver_free(struct resolver *r);

/*
 * Start resolving domain's mail exchangers; cb runs exactly once, later
 * (never from inside this call), unless the query is cancelled first.
 * Returns NULL only when out of memory.
 */
struct resolver_query *resolver_mx(struct resolver *r, const char *domain,
    unsigned max_mx, resolver_mx_cb cb, void *arg);
/* Drop interest: cb will not run.  The query handle is invalid afterwards. */
void resolver_cancel(struct resolver_query *q);

/* Number of DNS queries sent so far (for STATS). */
unsigned long resolver_queries(const struct resolver *r);

/*
 * Pure helpers, exposed for unit tests: order MX records by preference
 * with equal preferences shuffled (rand_fn returns a uniform value in
 * [0, n)), and detect the RFC 7505 null MX.
 */
struct mx_record {
	char name[256];
	unsigned preference;
};
void resolver_order_mx(struct mx_record *recs, size_t n, unsigned (*rand_fn)(unsigned n));
bool resolver_is_null_mx(const struct mx_record *recs, size_t n);

#endif
