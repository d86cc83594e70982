/*
 * dnsfake — a scripted DNS server for the resolver and DNS-cache unit
 * tests: a UDP socket on 127.0.0.1 on the tests' own libev loop, answering
 * from a table of rules (rcode, records, TTLs; "*.x.test" wildcards), able
 * to hold answers back (timeouts, cancellation) and counting the queries it
 * saw per name and type.
 */
#ifndef PROBED_TEST_DNSFAKE_H
#define PROBED_TEST_DNSFAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

#define T_MX 15
#define T_A 1
#define T_AAAA 28
#define T_CNAME 5

struct frr {
	uint16_t type;
	uint32_t ttl;
	uint16_t pref;        /* MX */
	const char *data;     /* MX/CNAME target, A/AAAA address text */
	const char *owner;    /* NULL: the question name */
};

struct frule {
	const char *name;     /* lower case; "*.x.test" matches below x.test */
	uint16_t qtype;
	int rcode;
	bool drop;            /* never answer */
	bool hold;            /* keep until fake_release() */
	bool tc;              /* answer with TC set and nothing else */
	struct frr rr[24];
	unsigned hits;
};

struct held {
	unsigned char pkt[512];
	size_t len;
	struct sockaddr_storage from;
	socklen_t fromlen;
};

struct fake {
	int fd;
	ev_io io;
	uint16_t port;
	struct frule *rules;
	size_t n_rules;
	unsigned queries;
	struct held held[1024]; /* more than RESOLVER_MAX_ACTIVE */
	size_t n_held;
	size_t wait_held;     /* end the loop once this many are held */
};

/* The socket's read callback (ev_io data: the struct fake). */
void fake_io_cb(struct ev_loop *loop, ev_io *w, int revents);
/* Answer every query held back so far. */
void fake_release(struct fake *f);
/* Queries seen for name and type (fails the test if no rule covers them). */
unsigned fake_hits(const struct fake *f, const char *name, uint16_t type);

#endif
