/*
 * resolver — which hosts receive mail for a domain, at which addresses, in
 * which order.  See resolver.h.
 *
 * One private udns context per resolver, driven by the libev loop: one
 * ev_io on the udns socket calls dns_ioevent(), one ev_timer that udns
 * re-arms through dns_set_tmcbck() calls dns_timeouts().  udns sends a new
 * query from that timer, so every query goes out from the loop, never from
 * inside resolver_mx().
 *
 * A request runs in two stages: the MX query, then A and AAAA of every kept
 * host, all in parallel.  Each udns query is a struct lookup owned by its
 * request; the request finishes when its last lookup answers, and its
 * callback runs from inside udns's dispatch (or from a 0-second timer when
 * the answer was known inside resolver_mx()).  resolver_cancel() takes every
 * outstanding query back from udns, so a cancelled request is never called.
 *
 * At most RESOLVER_MAX_ACTIVE queries are with udns at once, so that their
 * answers, should they all arrive together, fit the socket's receive
 * buffer; the kernel drops what does not fit and udns would wait out its
 * timeout before asking again.  Lookups beyond the cap wait in two FIFOs,
 * address lookups (a request already under way) before MX lookups, and
 * leave them from a 0-second timer armed whenever a query ends (answer,
 * failure, timeout or cancel), never from inside a caller's function.
 * udns's timeout runs from the moment a query leaves the FIFO.
 *
 * Address order within a host: IPv6 and IPv4 interleaved, IPv6 first (the
 * RFC 8305 §4 order).  IPv6 stays preferred, yet a host whose IPv6 path is
 * broken costs one failed connect before an IPv4 attempt, not one per IPv6
 * address.
 *
 * LIMITS: udns counts time in whole seconds and doubles the wait on each
 * retry, so with one server a query fails after about 3 x the configured
 * timeout (rounded up to whole seconds; DNS_OPT_NTRIES = 2), and the MX and
 * address stages run one after the other.  Time spent waiting for one of
 * the RESOLVER_MAX_ACTIVE slots comes on top (what a client waits for a
 * VERIFY is bounded by its timeout=, not here).  UDP only (EDNS0 4096): a
 * truncated answer counts as a failure of that server.  At most
 * RESOLVER_MAX_MX hosts and RESOLVER_MAX_ADDRS addresses per host are kept.
 * Sorting MX records is quadratic in their number, which one UDP answer
 * bounds to a few hundred.
 *
 * SECURITY: udns uses one source port and 16-bit query ids, so an off-path
 * attacker who can flood this host can forge answers; point dns.servers at
 * a validating resolver on loopback.  Everything from the wire is copied
 * with bounds.  MX names longer than 255 octets or holding anything but
 * letters, digits, '-', '_' and '.' are dropped, so every name handed on
 * is plain host-name text, safe in logs and protocol lines.  A domain that
 * does not convert to A-labels, or is no host name, never reaches the
 * network.
 *
 * BLIND SPOTS: negative answers carry no TTL (udns does not hand over the
 * SOA minimum), so results built on them report ttl 0.  udns 0.4's
 * dns_cancel() unlinks a query without freeing it; we free it ourselves.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <idn2.h>
#include <udns.h>

#include "config.h"
#include "log.h"
#include "resolver.h"

#define RESOLVER_NTRIES 2         /* udns sends twice per server */
#define RESOLVER_MAX_TIMEOUT 300  /* udns's own upper limit, seconds */

/* Asked for on the udns socket; the kernel caps it at rmem_max, silently. */
#define RESOLVER_RCVBUF (1024 * 1024)

enum lookup_kind { LOOKUP_MX, LOOKUP_A, LOOKUP_AAAA };

static const char *const lookup_type[] = {
	[LOOKUP_MX] = "MX",
	[LOOKUP_A] = "A",
	[LOOKUP_AAAA] = "AAAA",
};

#define LOOKUP_PENDING 1          /* status while queued or with udns */

/* Which FIFO a waiting lookup is in; the lower index leaves first. */
enum lookup_fifo { FIFO_ADDR, FIFO_MX, FIFO_COUNT };

/* One udns query. */
struct lookup {
	struct resolver_query *req;
	struct dns_query *dq;         /* non-NULL while udns holds the query */
	bool queued;                  /* waiting in a FIFO for a free slot */
	struct lookup *qprev, *qnext; /* the FIFO, while queued */
	enum lookup_kind kind;
	size_t host;                  /* index into req->hosts (A, AAAA) */
	int status;                   /* DNS_E_* once done, LOOKUP_PENDING before */
	int rcode;                    /* RCODE of the last reply seen, -1 none */
	bool truncated;               /* that reply had TC set */
	struct sockaddr_storage from; /* who sent it */
};

/* A host being resolved: both families kept in full, interleaved later. */
struct host_work {
	char name[256];
	unsigned preference;
	bool implicit;
	size_t n4, n6;
	struct in_addr v4[RESOLVER_MAX_ADDRS];
	struct in6_addr v6[RESOLVER_MAX_ADDRS];
	struct lookup a, aaaa;
};

enum req_state { REQ_RUNNING, REQ_DELIVERING };

struct resolver_query {
	struct resolver *r;
	struct resolver_query *prev, *next;
	unsigned id;                  /* log object id: "d<id>" */
	enum req_state state;
	resolver_mx_cb cb;
	void *arg;
	size_t max_mx;
	char domain[DNS_MAXDN + 1];   /* as asked: A-labels, no trailing dot */
	struct lookup mx;
	struct host_work *hosts;
	size_t n_hosts;
	unsigned outstanding;         /* lookups queued or with udns */
	unsigned ttl;                 /* min over positive answers; UINT_MAX none */
	enum mx_status status;        /* a result known before the address stage */
	char detail[128];
	ev_timer later;               /* delivers a result known inside resolver_mx() */
	ev_tstamp started;
};

struct resolver {
	struct ev_loop *loop;
	struct dns_ctx *ctx;
	ev_io io;
	ev_timer timer;
	struct resolver_query *reqs;  /* every live request */
	struct lookup *wait_head[FIFO_COUNT], *wait_tail[FIFO_COUNT];
	unsigned active;              /* queries udns holds: <= RESOLVER_MAX_ACTIVE */
	unsigned n_waiting;           /* lookups in the FIFOs */
	ev_timer pump;                /* moves waiting lookups to udns */
	unsigned long queries;
	unsigned next_id;
	unsigned depth;               /* nesting of our own callbacks */
	bool closing;                 /* resolver_free() ran inside a callback */
};

static void resolver_utm(struct dns_ctx *ctx, int timeout, void *data);
static void resolver_io_cb(struct ev_loop *loop, ev_io *w, int revents);
static void resolver_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void resolver_dbg(int code, const struct sockaddr *sa, unsigned salen,
    dnscc_t *pkt, int plen, const struct dns_query *q, void *data);
static void resolver_enter(struct resolver *r);
static void resolver_leave(struct resolver *r);
static void resolver_destroy(struct resolver *r);
static int parse_server(const char *s, struct sockaddr_storage *ss, char *err, size_t errlen);
static int domain_to_ascii(const char *in, char *out, size_t cap, char *why, size_t whylen);
static void resolver_pump_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void resolver_kick(struct resolver *r);
static const char *lookup_name(const struct lookup *lk);
static bool lookup_submit(struct resolver_query *req, struct lookup *lk);
static bool lookup_start(struct resolver *r, struct lookup *lk);
static void lookup_start_failed(struct lookup *lk);
static void lookup_answered(struct lookup *lk);
static void lookup_enqueue(struct resolver *r, struct lookup *lk);
static void lookup_dequeue(struct resolver *r, struct lookup *lk);
static void lookup_cancel(struct resolver *r, struct lookup *lk);
static bool lookup_tempfailed(const struct lookup *lk);
static void lookup_describe(const struct lookup *lk, const char *name, char *out, size_t cap);
static void mx_answer(struct dns_ctx *ctx, struct dns_rr_mx *rr, void *data);
static void a4_answer(struct dns_ctx *ctx, struct dns_rr_a4 *rr, void *data);
static void a6_answer(struct dns_ctx *ctx, struct dns_rr_a6 *rr, void *data);
static void req_start_addresses(struct resolver_query *req);
static void req_complete(struct resolver_query *req);
static void req_finish(struct resolver_query *req, enum mx_status status, const char *detail);
static void req_later_cb(struct ev_loop *loop, ev_timer *w, int revents);
static void req_deliver(struct resolver_query *req);
static void req_free(struct resolver_query *req);
static void req_note_ttl(struct resolver_query *req, unsigned ttl);
static unsigned prng_uniform(unsigned n);
static const char *dns_status_name(int status);
static bool mx_name_is_root(const char *name);
static bool hostname_text(const char *s, size_t len);
static const char *mx_status_name(enum mx_status s);

/* ---- random numbers: splitmix64, seeded once from the kernel --------- */

static uint64_t prng_state;
static bool prng_seeded;

static uint64_t
prng_next(void)
{
	if (!prng_seeded) {
		uint64_t seed = 0;
		if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			seed = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
			    ((uint64_t)getpid() << 16);
		}
		prng_state = seed;
		prng_seeded = true;
	}
	uint64_t z = (prng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n): rejection keeps the modulo unbiased. */
static unsigned
prng_uniform(unsigned n)
{
	if (n <= 1)
		return 0;
	uint64_t limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t x;
	do
		x = prng_next();
	while (x >= limit);
	return (unsigned)(x % n);
}

/* ---- pure helpers ----------------------------------------------------- */

static bool
mx_name_is_root(const char *name)
{
	return name[0] == '\0' || strcmp(name, ".") == 0;
}

/*
 * Letters, digits, hyphen, underscore and dot only: what a mail domain or an
 * MX host can be (RFC 5321 §2.3.5, plus the underscore seen in the wild).
 * Anything else never reaches udns (which reads backslash escapes) nor the
 * logs and protocol lines the name ends up in.
 */
static bool
hostname_text(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

void
resolver_order_mx(struct mx_record *recs, size_t n, unsigned (*rand_fn)(unsigned n))
{
	struct mx_record tmp;

	if (rand_fn == NULL)
		rand_fn = prng_uniform;
	/* Stable insertion sort: the result depends only on the input and
	 * rand_fn, which makes the shuffle testable. */
	for (size_t i = 1; i < n; i++) {
		size_t j = i;
		while (j > 0 && recs[j - 1].preference > recs[i].preference)
			j--;
		if (j == i)
			continue;
		tmp = recs[i];
		memmove(&recs[j + 1], &recs[j], (i - j) * sizeof(*recs));
		recs[j] = tmp;
	}
	/* Fisher-Yates within each run of equal preference (RFC 5321 §5.1). */
	for (size_t start = 0; start < n;) {
		size_t end = start + 1;
		while (end < n && recs[end].preference == recs[start].preference)
			end++;
		for (size_t k = end - start; k > 1; k--) {
			size_t j = rand_fn((unsigned)k);
			if (j >= k)
				j %= k;       /* a misbehaving rand_fn must not write out of bounds */
			if (j != k - 1) {
				tmp = recs[start + k - 1];
				recs[start + k - 1] = recs[start + j];
				recs[start + j] = tmp;
			}
		}
		start = end;
	}
}

bool
resolver_is_null_mx(const struct mx_record *recs, size_t n)
{
	/* RFC 7505 §3: exactly one record, preference 0, exchange ".". */
	return n == 1 && recs[0].preference == 0 && mx_name_is_root(recs[0].name);
}

static const char *
mx_status_name(enum mx_status s)
{
	switch (s) {
	case MX_OK: return "ok";
	case MX_NXDOMAIN: return "nxdomain";
	case MX_NULL_MX: return "null_mx";
	case MX_NO_MX: return "no_mx";
	case MX_DNS_ERROR: return "dns_error";
	}
	return "?";
}

/* A short word for a udns status, for key=value logs. */
static const char *
dns_status_name(int status)
{
	switch (status) {
	case DNS_E_NOERROR: return "ok";
	case DNS_E_TEMPFAIL: return "tempfail";
	case DNS_E_PROTOCOL: return "protocol";
	case DNS_E_NXDOMAIN: return "nxdomain";
	case DNS_E_NODATA: return "nodata";
	case DNS_E_NOMEM: return "nomem";
	case DNS_E_BADQUERY: return "badquery";
	}
	return "other";
}

/* ---- resolver lifetime ------------------------------------------------ */

/*
 * "IP", "IPv4:port", "[IPv6]" or "[IPv6]:port".  A port lets tests and
 * labs run their server unprivileged; the default is 53.
 */
static int
parse_server(const char *s, struct sockaddr_storage *ss, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL;
	size_t hlen;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL)
			goto bad;
		hlen = (size_t)(close - s - 1);
		if (hlen >= sizeof(host))
			goto bad;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			goto bad;
	} else {
		const char *colon = strchr(s, ':');
		/* One colon: IPv4 with a port; more: a bare IPv6 address. */
		if (colon != NULL && strchr(colon + 1, ':') == NULL) {
			hlen = (size_t)(colon - s);
			port = colon + 1;
		} else
			hlen = strlen(s);
		if (hlen >= sizeof(host))
			goto bad;
		memcpy(host, s, hlen);
		host[hlen] = '\0';
	}

	unsigned long pnum = 53;
	if (port != NULL) {
		char *end;
		if (*port < '0' || *port > '9')
			goto bad;
		errno = 0;
		pnum = strtoul(port, &end, 10);
		if (errno != 0 || *end != '\0' || pnum == 0 || pnum > 65535)
			goto bad;
	}

	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)pnum);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)pnum);
		return 0;
	}
bad:
	snprintf(err, errlen, "dns server '%.*s' is not an IP address with optional port",
	    64, s);
	return -1;
}

struct resolver *
resolver_new(struct ev_loop *loop, const struct strlist *servers, double timeout,
    char *err, size_t errlen)
{
	struct resolver *r;
	size_t nserv = servers != NULL ? servers->n : 0;

	if (errlen > 0)
		err[0] = '\0';
	if (nserv > DNS_MAXSERV) {
		snprintf(err, errlen, "too many dns servers: %zu (at most %d)", nserv, DNS_MAXSERV);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		snprintf(err, errlen, "resolver: out of memory");
		return NULL;
	}
	r->loop = loop;

	/* dns_new() copies the default context, which must be initialised. */
	if (dns_init(NULL, 0) < 0 || (r->ctx = dns_new(NULL)) == NULL) {
		snprintf(err, errlen, "resolver: cannot create udns context");
		free(r);
		return NULL;
	}
	dns_init(r->ctx, 0);
	/* Domains are absolute: no search list, ever. */
	dns_add_srch(r->ctx, NULL);
	if (nserv > 0) {
		dns_add_serv(r->ctx, NULL);
		for (size_t i = 0; i < nserv; i++) {
			struct sockaddr_storage ss;
			if (parse_server(servers->v[i], &ss, err, errlen) < 0 ||
			    dns_add_serv_s(r->ctx, (struct sockaddr *)&ss) < 0) {
				if (err[0] == '\0')
					snprintf(err, errlen, "dns server '%.64s' rejected by udns",
					    servers->v[i]);
				dns_free(r->ctx);
				free(r);
				return NULL;
			}
		}
	}

	/* udns counts whole seconds: round up, at least 1. */
	int secs = 1;
	if (timeout > 1.0 && isfinite(timeout)) {
		secs = timeout >= RESOLVER_MAX_TIMEOUT ? RESOLVER_MAX_TIMEOUT : (int)timeout;
		if (secs < timeout)
			secs++;
	}
	dns_set_opt(r->ctx, DNS_OPT_TIMEOUT, secs);
	dns_set_opt(r->ctx, DNS_OPT_NTRIES, RESOLVER_NTRIES);
	dns_set_opt(r->ctx, DNS_OPT_FLAGS, DNS_NOSRCH);

	ev_timer_init(&r->timer, resolver_timer_cb, 0., 0.);
	r->timer.data = r;
	ev_timer_init(&r->pump, resolver_pump_cb, 0., 0.);
	r->pump.data = r;
	dns_set_dbgfn(r->ctx, resolver_dbg);
	dns_set_tmcbck(r->ctx, resolver_utm, r);

	int fd = dns_open(r->ctx);
	if (fd < 0) {
		snprintf(err, errlen, "resolver: cannot open udns socket: %s", strerror(errno));
		dns_free(r->ctx);
		free(r);
		return NULL;
	}
	/* Room for a burst of answers beyond what RESOLVER_MAX_ACTIVE assumes,
	 * where rmem_max allows it; the default buffer still works. */
	int rcvbuf = RESOLVER_RCVBUF;
	socklen_t optlen = sizeof(rcvbuf);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0)
		log_debug("resolver setsockopt SO_RCVBUF %d: %s", rcvbuf, strerror(errno));
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &optlen) < 0)
		rcvbuf = -1;
	ev_io_init(&r->io, resolver_io_cb, fd, EV_READ);
	r->io.data = r;
	ev_io_start(loop, &r->io);
	/* The socket alone keeps no loop alive; pending queries do, via the
	 * timer udns keeps armed while it has work. */
	ev_unref(loop);

	/* Linux reports twice what it grants (the other half is its overhead). */
	log_debug("resolver new servers=%zu timeout=%d tries=%d max_active=%d rcvbuf=%d", nserv,
	    secs, RESOLVER_NTRIES, RESOLVER_MAX_ACTIVE, rcvbuf);
	return r;
}

static void
resolver_destroy(struct resolver *r)
{
	ev_ref(r->loop);
	ev_io_stop(r->loop, &r->io);
	dns_free(r->ctx);             /* its last resolver_utm(NULL, ...) stops the timer */
	ev_timer_stop(r->loop, &r->timer);
	ev_timer_stop(r->loop, &r->pump);
	free(r);
}

void
resolver_free(struct resolver *r)
{
	if (r == NULL)
		return;
	struct resolver_query *req = r->reqs;
	while (req != NULL) {
		struct resolver_query *next = req->next;
		/* A request whose callback is running frees itself after it. */
		if (req->state != REQ_DELIVERING)
			resolver_cancel(req);
		req = next;
	}
	if (r->depth > 0) {
		r->closing = true;
		return;
	}
	resolver_destroy(r);
}

unsigned long
resolver_queries(const struct resolver *r)
{
	return r->queries;
}

/* Our callbacks may run user code that frees the resolver: defer that. */
static void
resolver_enter(struct resolver *r)
{
	r->depth++;
}

static void
resolver_leave(struct resolver *r)
{
	if (--r->depth == 0 && r->closing)
		resolver_destroy(r);
}

/* ---- udns on libev ---------------------------------------------------- */

/* The signature is udns's dns_utm_fn: ctx cannot be const. */
static void
/* cppcheck-suppress constParameter */
resolver_utm(struct dns_ctx *ctx, int timeout, void *data)
{
	struct resolver *r = data;

	ev_timer_stop(r->loop, &r->timer);
	if (ctx == NULL || timeout < 0)
		return;
	/* 0 means "soon, not now": the next loop iteration. */
	ev_timer_set(&r->timer, (ev_tstamp)timeout, 0.);
	ev_timer_start(r->loop, &r->timer);
}

static void
resolver_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct resolver *r = w->data;

	resolver_enter(r);
	dns_ioevent(r->ctx, 0);
	resolver_leave(r);
}

static void
resolver_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolver *r = w->data;

	resolver_enter(r);
	int next = dns_timeouts(r->ctx, -1, 0);
	/*
	 * udns re-arms only when its next deadline changes.  If libev fired a
	 * little before time() reached that deadline (ev_now lags real time),
	 * nothing changed and nobody re-armed: do it here or the queries stall.
	 */
	if (!r->closing && !ev_is_active(&r->timer) && next >= 0) {
		ev_timer_set(&r->timer, (ev_tstamp)(next > 0 ? next : 1), 0.);
		ev_timer_start(loop, &r->timer);
	}
	resolver_leave(r);
}

/*
 * A slot is free and lookups wait: start them from the loop, where a
 * failed start may deliver a result (never from inside resolver_cancel()
 * or resolver_mx(), whose callers do not expect a callback).
 */
static void
resolver_kick(struct resolver *r)
{
	if (r->n_waiting > 0 && r->active < RESOLVER_MAX_ACTIVE && !r->closing &&
	    !ev_is_active(&r->pump))
		ev_timer_start(r->loop, &r->pump);
}

static void
resolver_pump_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolver *r = w->data;

	resolver_enter(r);
	/* A delivered result may cancel other requests or free the resolver:
	 * take the head afresh each time. */
	while (!r->closing && r->active < RESOLVER_MAX_ACTIVE) {
		struct lookup *lk = NULL;
		for (int i = 0; i < FIFO_COUNT && lk == NULL; i++)
			lk = r->wait_head[i];
		if (lk == NULL)
			break;
		lookup_dequeue(r, lk);
		if (!lookup_start(r, lk))
			lookup_start_failed(lk);
	}
	resolver_leave(r);
}

/*
 * udns's debug hook is the only place that sees the reply packet; keep its
 * RCODE, TC bit and sender so a failure can say "SERVFAIL from 192.0.2.53"
 * instead of udns's bare "temporary failure".
 */
static void
resolver_dbg(int code, const struct sockaddr *sa, unsigned salen, dnscc_t *pkt, int plen,
    const struct dns_query *q, void *data)
{
	struct lookup *lk = data;

	if (code != 0 || q == NULL || lk == NULL || pkt == NULL || plen < DNS_HSIZE)
		return;
	lk->rcode = dns_rcode(pkt);
	lk->truncated = dns_tc(pkt) != 0;
	memset(&lk->from, 0, sizeof(lk->from));
	if (sa != NULL && salen > 0)
		memcpy(&lk->from, sa, salen < sizeof(lk->from) ? salen : sizeof(lk->from));
}

/* ---- lookups ---------------------------------------------------------- */

/* What a lookup asks about; both names live as long as the request. */
static const char *
lookup_name(const struct lookup *lk)
{
	return lk->kind == LOOKUP_MX ? lk->req->domain : lk->req->hosts[lk->host].name;
}

/*
 * Ask udns now if a slot is free and nobody waits, else queue.  False only
 * when udns refused the query at once (lk->status says why); the request
 * does not count it as outstanding then.
 */
static bool
lookup_submit(struct resolver_query *req, struct lookup *lk)
{
	struct resolver *r = req->r;

	lk->req = req;
	lk->rcode = -1;
	lk->truncated = false;
	lk->status = LOOKUP_PENDING;
	if (r->active >= RESOLVER_MAX_ACTIVE || r->n_waiting > 0) {
		lookup_enqueue(r, lk);
		req->outstanding++;
		log_debug("d%u dns query type=%s name=%s queued=%u", req->id,
		    lookup_type[lk->kind], lookup_name(lk), r->n_waiting);
		return true;
	}
	if (!lookup_start(r, lk))
		return false;
	req->outstanding++;
	return true;
}

/* Hand the lookup to udns, which sends it from its timer. */
static bool
lookup_start(struct resolver *r, struct lookup *lk)
{
	const char *name = lookup_name(lk);

	switch (lk->kind) {
	case LOOKUP_MX:
		lk->dq = dns_submit_mx(r->ctx, name, DNS_NOSRCH, mx_answer, lk);
		break;
	case LOOKUP_A:
		lk->dq = dns_submit_a4(r->ctx, name, DNS_NOSRCH, a4_answer, lk);
		break;
	case LOOKUP_AAAA:
		lk->dq = dns_submit_a6(r->ctx, name, DNS_NOSRCH, a6_answer, lk);
		break;
	}
	if (lk->dq == NULL) {
		lk->status = dns_status(r->ctx);
		if (lk->status >= 0)
			lk->status = DNS_E_TEMPFAIL;
		log_debug("d%u dns query type=%s name=%s failed=%s", lk->req->id,
		    lookup_type[lk->kind], name, dns_status_name(lk->status));
		return false;
	}
	r->queries++;
	r->active++;
	log_debug("d%u dns query type=%s name=%s", lk->req->id, lookup_type[lk->kind], name);
	return true;
}

/* A queued lookup udns refused when its turn came: it ends here. */
static void
lookup_start_failed(struct lookup *lk)
{
	struct resolver_query *req = lk->req;
	char detail[128];

	req->outstanding--;
	if (lk->kind == LOOKUP_MX) {
		lookup_describe(lk, req->domain, detail, sizeof(detail));
		req_finish(req, lk->status == DNS_E_BADQUERY ? MX_NXDOMAIN : MX_DNS_ERROR, detail);
	} else if (req->outstanding == 0)
		req_complete(req);
}

/* udns let go of the query (answer, failure or timeout): free its slot. */
static void
lookup_answered(struct lookup *lk)
{
	struct resolver *r = lk->req->r;

	lk->dq = NULL;
	lk->req->outstanding--;
	r->active--;
	resolver_kick(r);
}

static void
lookup_enqueue(struct resolver *r, struct lookup *lk)
{
	enum lookup_fifo q = lk->kind == LOOKUP_MX ? FIFO_MX : FIFO_ADDR;

	lk->queued = true;
	lk->qnext = NULL;
	lk->qprev = r->wait_tail[q];
	if (r->wait_tail[q] != NULL)
		r->wait_tail[q]->qnext = lk;
	else
		r->wait_head[q] = lk;
	r->wait_tail[q] = lk;
	r->n_waiting++;
	resolver_kick(r);
}

static void
lookup_dequeue(struct resolver *r, struct lookup *lk)
{
	enum lookup_fifo q = lk->kind == LOOKUP_MX ? FIFO_MX : FIFO_ADDR;

	if (lk->qprev != NULL)
		lk->qprev->qnext = lk->qnext;
	else
		r->wait_head[q] = lk->qnext;
	if (lk->qnext != NULL)
		lk->qnext->qprev = lk->qprev;
	else
		r->wait_tail[q] = lk->qprev;
	lk->qprev = lk->qnext = NULL;
	lk->queued = false;
	r->n_waiting--;
}

static void
lookup_cancel(struct resolver *r, struct lookup *lk)
{
	if (lk->queued) {
		lookup_dequeue(r, lk);
		lk->req->outstanding--;
		return;
	}
	if (lk->dq == NULL)
		return;
	dns_cancel(r->ctx, lk->dq);
	/* udns 0.4 unlinks a cancelled query but leaves it allocated. */
	free(lk->dq);
	lk->dq = NULL;
	lk->req->outstanding--;
	r->active--;
	resolver_kick(r);
}

/* A failure that says nothing about the name: we cannot conclude. */
static bool
lookup_tempfailed(const struct lookup *lk)
{
	return lk->status == DNS_E_TEMPFAIL || lk->status == DNS_E_PROTOCOL ||
	    lk->status == DNS_E_NOMEM;
}

static void
lookup_describe(const struct lookup *lk, const char *name, char *out, size_t cap)
{
	char addr[INET6_ADDRSTRLEN] = "?";
	char from[INET6_ADDRSTRLEN + 8];
	const char *what;
	char rc[16];

	if (lk->from.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&lk->from;
		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		if (ntohs(sin->sin_port) != 53)
			snprintf(from, sizeof(from), "%s:%u", addr, ntohs(sin->sin_port));
		else
			snprintf(from, sizeof(from), "%s", addr);
	} else if (lk->from.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&lk->from;
		/* udns maps IPv4 servers into IPv6 when the list mixes both. */
		bool mapped = IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr);
		if (mapped)
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], addr, sizeof(addr));
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		if (ntohs(sin6->sin6_port) != 53)
			snprintf(from, sizeof(from), mapped ? "%s:%u" : "[%s]:%u", addr,
			    ntohs(sin6->sin6_port));
		else
			snprintf(from, sizeof(from), "%s", addr);
	} else
		snprintf(from, sizeof(from), "?");

	switch (lk->status) {
	case DNS_E_TEMPFAIL:
		if (lk->rcode < 0) {
			what = "timeout";
			from[0] = '\0';
		} else if (lk->truncated)
			what = "truncated reply";
		else {
			const char *n = dns_rcodename((enum dns_rcode)lk->rcode);
			if (n == NULL) {
				snprintf(rc, sizeof(rc), "RCODE %d", lk->rcode);
				n = rc;
			}
			what = n;
		}
		break;
	case DNS_E_PROTOCOL:
		what = "malformed reply";
		break;
	case DNS_E_NXDOMAIN:
		what = "NXDOMAIN";
		break;
	case DNS_E_NODATA:
		what = "no data";
		from[0] = '\0';
		break;
	case DNS_E_NOMEM:
		what = "out of memory";
		from[0] = '\0';
		break;
	case DNS_E_BADQUERY:
		what = "invalid name";
		from[0] = '\0';
		break;
	default:
		what = dns_strerror(lk->status);
		from[0] = '\0';
		break;
	}
	if (lk->kind == LOOKUP_MX)
		snprintf(out, cap, "MX: %s%s%s", what, from[0] ? " from " : "", from);
	else
		snprintf(out, cap, "%s %.80s: %s%s%s", lookup_type[lk->kind], name, what,
		    from[0] ? " from " : "", from);
}

/* ---- requests --------------------------------------------------------- */

/*
 * Lower-case A-label form of a domain, without a trailing dot.  0 on
 * success; -1 with a reason when the name cannot exist in the DNS.
 */
static int
domain_to_ascii(const char *in, char *out, size_t cap, char *why, size_t whylen)
{
	bool ascii = true;
	char *conv = NULL;
	const char *src = in;
	size_t len;

	for (const unsigned char *p = (const unsigned char *)in; *p; p++)
		if (*p >= 0x80)
			ascii = false;
	if (!ascii) {
		/* UTS #46 non-transitional mapping, then IDNA2008: what browsers
		 * and MTAs ask for "Bücher.example". */
		int rc = idn2_lookup_u8((const uint8_t *)in, (uint8_t **)&conv,
		    IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
		if (rc != IDN2_OK) {
			snprintf(why, whylen, "IDNA: %s", idn2_strerror_name(rc));
			return -1;
		}
		src = conv;
	}
	len = strlen(src);
	if (len > 0 && src[len - 1] == '.')
		len--;
	if (len == 0 || len >= cap || len > 253) {
		snprintf(why, whylen, len == 0 ? "empty domain" : "domain too long");
		idn2_free(conv);
		return -1;
	}
	if (!hostname_text(src, len)) {
		snprintf(why, whylen, "invalid character in domain");
		idn2_free(conv);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	out[len] = '\0';
	idn2_free(conv);

	/* Labels of 1..63 octets; a second trailing dot is an empty label. */
	dnsc_t dn[DNS_MAXDN];
	int isabs = 0;
	if (dns_ptodn(out, 0, dn, sizeof(dn), &isabs) <= 0 || isabs) {
		snprintf(why, whylen, "invalid domain name");
		return -1;
	}
	return 0;
}

struct resolver_query *
resolver_mx(struct resolver *r, const char *domain, unsigned max_mx, resolver_mx_cb cb,
    void *arg)
{
	struct resolver_query *req;
	char why[96];

	if (r->closing)
		return NULL;
	req = calloc(1, sizeof(*req));
	if (req == NULL)
		return NULL;
	req->r = r;
	req->id = ++r->next_id;
	req->state = REQ_RUNNING;
	req->cb = cb;
	req->arg = arg;
	req->max_mx = max_mx == 0 || max_mx > RESOLVER_MAX_MX ? RESOLVER_MAX_MX : max_mx;
	req->ttl = UINT_MAX;
	req->started = ev_now(r->loop);
	ev_timer_init(&req->later, req_later_cb, 0., 0.);
	req->later.data = req;
	req->next = r->reqs;
	if (r->reqs != NULL)
		r->reqs->prev = req;
	r->reqs = req;

	if (domain_to_ascii(domain, req->domain, sizeof(req->domain), why, sizeof(why)) < 0) {
		char shown[80];
		log_printable(shown, sizeof(shown), domain, strlen(domain));
		snprintf(req->domain, sizeof(req->domain), "%s", shown);
		req->status = MX_NXDOMAIN;
		snprintf(req->detail, sizeof(req->detail), "%s", why);
		ev_timer_start(r->loop, &req->later);
		return req;
	}
	req->mx.kind = LOOKUP_MX;
	if (!lookup_submit(req, &req->mx)) {
		if (req->mx.status == DNS_E_BADQUERY)
			req->status = MX_NXDOMAIN;
		else
			req->status = MX_DNS_ERROR;
		lookup_describe(&req->mx, req->domain, req->detail, sizeof(req->detail));
		ev_timer_start(r->loop, &req->later);
	}
	return req;
}

void
resolver_cancel(struct resolver_query *req)
{
	if (req == NULL)
		return;
	/* Its callback is running: the handle dies when that returns. */
	if (req->state == REQ_DELIVERING)
		return;
	struct resolver *r = req->r;
	lookup_cancel(r, &req->mx);
	for (size_t i = 0; i < req->n_hosts; i++) {
		lookup_cancel(r, &req->hosts[i].a);
		lookup_cancel(r, &req->hosts[i].aaaa);
	}
	log_debug("d%u dns mx domain=%s cancelled", req->id, req->domain);
	req_free(req);
}

static void
req_free(struct resolver_query *req)
{
	struct resolver *r = req->r;

	ev_timer_stop(r->loop, &req->later);
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		r->reqs = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	free(req->hosts);
	free(req);
}

static void
req_note_ttl(struct resolver_query *req, unsigned ttl)
{
	if (ttl < req->ttl)
		req->ttl = ttl;
}

/* A result known from inside a udns callback: deliver it now. */
static void
req_finish(struct resolver_query *req, enum mx_status status, const char *detail)
{
	req->status = status;
	snprintf(req->detail, sizeof(req->detail), "%s", detail);
	req_deliver(req);
}

static void
req_later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct resolver_query *req = w->data;
	struct resolver *r = req->r;

	resolver_enter(r);
	req_deliver(req);
	resolver_leave(r);
}

static void
req_deliver(struct resolver_query *req)
{
	struct mx_result res;

	memset(&res, 0, sizeof(res));
	res.status = req->status;
	snprintf(res.detail, sizeof(res.detail), "%s", req->detail);
	if (req->status == MX_OK) {
		for (size_t i = 0; i < req->n_hosts; i++) {
			const struct host_work *hw = &req->hosts[i];
			struct mx_host *h = &res.hosts[res.n_hosts];
			size_t i4 = 0, i6 = 0;

			/* A host that definitively has no address is no destination;
			 * one whose lookup failed stays, empty, to show it was there. */
			if (hw->n4 + hw->n6 == 0 && !lookup_tempfailed(&hw->a) &&
			    !lookup_tempfailed(&hw->aaaa))
				continue;
			snprintf(h->name, sizeof(h->name), "%s", hw->name);
			h->preference = hw->preference;
			h->implicit = hw->implicit;
			while (h->n_addrs < RESOLVER_MAX_ADDRS && (i4 < hw->n4 || i6 < hw->n6)) {
				bool six = i6 < hw->n6 && (i4 >= hw->n4 || i6 <= i4);
				struct sockaddr_storage *ss = &h->addrs[h->n_addrs++];
				if (six) {
					struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
					sin6->sin6_family = AF_INET6;
					sin6->sin6_addr = hw->v6[i6++];
				} else {
					struct sockaddr_in *sin = (struct sockaddr_in *)ss;
					sin->sin_family = AF_INET;
					sin->sin_addr = hw->v4[i4++];
				}
			}
			res.n_hosts++;
		}
	}
	res.ttl = req->ttl == UINT_MAX ? 0 : req->ttl;
	if (res.status != MX_OK && res.status != MX_NULL_MX)
		res.ttl = 0;

	if (log_enabled(LOG_DEBUG)) {
		char names[512];
		size_t off = 0;
		names[0] = '\0';
		for (size_t i = 0; i < res.n_hosts && off < sizeof(names); i++) {
			int w = snprintf(names + off, sizeof(names) - off, "%s%s/%zu",
			    i ? "," : "", res.hosts[i].name, res.hosts[i].n_addrs);
			if (w < 0)
				break;
			off += (size_t)w;
		}
		log_debug("d%u dns mx domain=%s status=%s hosts=%zu mx=%s ttl=%u ms=%.0f detail=\"%s\"",
		    req->id, req->domain, mx_status_name(res.status), res.n_hosts,
		    names[0] ? names : "-", res.ttl,
		    (ev_now(req->r->loop) - req->started) * 1000.0, res.detail);
	}

	req->state = REQ_DELIVERING;
	req->cb(&res, req->arg);
	req_free(req);
}

static void
mx_answer(struct dns_ctx *ctx, struct dns_rr_mx *rr, void *data)
{
	struct lookup *lk = data;
	struct resolver_query *req = lk->req;
	char detail[128];

	lookup_answered(lk);
	lk->status = rr != NULL ? 0 : dns_status(ctx);
	log_debug("d%u dns answer type=MX name=%s status=%s n=%d ttl=%u", req->id,
	    req->domain, dns_status_name(lk->status),
	    rr != NULL ? rr->dnsmx_nrr : 0, rr != NULL ? rr->dnsmx_ttl : 0);

	if (rr == NULL) {
		switch (lk->status) {
		case DNS_E_NXDOMAIN:
			req_finish(req, MX_NXDOMAIN, "MX: NXDOMAIN");
			return;
		case DNS_E_NODATA:
			/* RFC 5321 §5.1: the domain itself is the implicit MX. */
			req->hosts = calloc(1, sizeof(*req->hosts));
			if (req->hosts == NULL) {
				req_finish(req, MX_DNS_ERROR, "out of memory");
				return;
			}
			req->n_hosts = 1;
			snprintf(req->hosts[0].name, sizeof(req->hosts[0].name), "%s", req->domain);
			req->hosts[0].implicit = true;
			req_start_addresses(req);
			return;
		default:
			lookup_describe(lk, req->domain, detail, sizeof(detail));
			req_finish(req, MX_DNS_ERROR, detail);
			return;
		}
	}

	size_t n = rr->dnsmx_nrr > 0 ? (size_t)rr->dnsmx_nrr : 0;
	struct mx_record *recs = calloc(n > 0 ? n : 1, sizeof(*recs));
	if (recs == NULL) {
		free(rr);
		req_finish(req, MX_DNS_ERROR, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = rr->dnsmx_mx[i].name != NULL ? rr->dnsmx_mx[i].name : "\\";
		size_t len = strlen(name);
		if (len > 1 && name[len - 1] == '.')
			len--;
		/* Too long for mx_host: mark it unusable, keep the count for
		 * the null-MX test. */
		if (len >= sizeof(recs[i].name))
			snprintf(recs[i].name, sizeof(recs[i].name), "\\");
		else {
			memcpy(recs[i].name, name, len);
			recs[i].name[len] = '\0';
		}
		recs[i].preference = (unsigned)rr->dnsmx_mx[i].priority & 0xffffu;
	}
	req_note_ttl(req, rr->dnsmx_ttl);
	free(rr);

	if (resolver_is_null_mx(recs, n)) {
		free(recs);
		req_finish(req, MX_NULL_MX, "");
		return;
	}

	/* Drop what cannot be a destination: the root (a null MX mixed with
	 * real records, RFC 7505 §3, or "MX 10 ."), and what is no host name
	 * (udns escapes odd octets with a backslash, which fails this too). */
	size_t k = 0, dropped = 0;
	for (size_t i = 0; i < n; i++) {
		if (mx_name_is_root(recs[i].name) ||
		    !hostname_text(recs[i].name, strlen(recs[i].name))) {
			log_debug("d%u dns mx domain=%s ignored exchange=\"%s\" pref=%u", req->id,
			    req->domain, recs[i].name, recs[i].preference);
			dropped++;
			continue;
		}
		if (k != i)
			recs[k] = recs[i];
		k++;
	}
	resolver_order_mx(recs, k, prng_uniform);

	size_t cap = k < req->max_mx ? k : req->max_mx;
	req->hosts = calloc(cap > 0 ? cap : 1, sizeof(*req->hosts));
	if (req->hosts == NULL) {
		free(recs);
		req_finish(req, MX_DNS_ERROR, "out of memory");
		return;
	}
	for (size_t i = 0; i < k && req->n_hosts < cap; i++) {
		bool dup = false;
		for (size_t j = 0; j < req->n_hosts && !dup; j++)
			dup = strcasecmp(req->hosts[j].name, recs[i].name) == 0;
		if (dup)
			continue;
		struct host_work *hw = &req->hosts[req->n_hosts++];
		memcpy(hw->name, recs[i].name, sizeof(hw->name));
		hw->preference = recs[i].preference;
	}
	free(recs);

	if (req->n_hosts == 0) {
		req_finish(req, MX_NO_MX, dropped > 0 ? "MX: no usable exchange" : "MX: empty");
		return;
	}
	req_start_addresses(req);
}

static void
req_start_addresses(struct resolver_query *req)
{
	for (size_t i = 0; i < req->n_hosts; i++) {
		struct host_work *hw = &req->hosts[i];
		hw->a.kind = LOOKUP_A;
		hw->a.host = i;
		hw->aaaa.kind = LOOKUP_AAAA;
		hw->aaaa.host = i;
		lookup_submit(req, &hw->a);
		lookup_submit(req, &hw->aaaa);
	}
	/* Every submission failed: nothing will call back. */
	if (req->outstanding == 0)
		req_complete(req);
}

static void
a4_answer(struct dns_ctx *ctx, struct dns_rr_a4 *rr, void *data)
{
	struct lookup *lk = data;
	struct resolver_query *req = lk->req;
	struct host_work *hw = &req->hosts[lk->host];

	lookup_answered(lk);
	lk->status = rr != NULL ? 0 : dns_status(ctx);
	if (rr != NULL) {
		for (int i = 0; i < rr->dnsa4_nrr && hw->n4 < RESOLVER_MAX_ADDRS; i++) {
			bool dup = false;
			for (size_t j = 0; j < hw->n4 && !dup; j++)
				dup = hw->v4[j].s_addr == rr->dnsa4_addr[i].s_addr;
			if (!dup)
				hw->v4[hw->n4++] = rr->dnsa4_addr[i];
		}
		req_note_ttl(req, rr->dnsa4_ttl);
	}
	log_debug("d%u dns answer type=A name=%s status=%s n=%d ttl=%u", req->id, hw->name,
	    dns_status_name(lk->status), rr != NULL ? rr->dnsa4_nrr : 0,
	    rr != NULL ? rr->dnsa4_ttl : 0);
	free(rr);
	if (req->outstanding == 0)
		req_complete(req);
}

static void
a6_answer(struct dns_ctx *ctx, struct dns_rr_a6 *rr, void *data)
{
	struct lookup *lk = data;
	struct resolver_query *req = lk->req;
	struct host_work *hw = &req->hosts[lk->host];

	lookup_answered(lk);
	lk->status = rr != NULL ? 0 : dns_status(ctx);
	if (rr != NULL) {
		for (int i = 0; i < rr->dnsa6_nrr && hw->n6 < RESOLVER_MAX_ADDRS; i++) {
			bool dup = false;
			for (size_t j = 0; j < hw->n6 && !dup; j++)
				dup = memcmp(&hw->v6[j], &rr->dnsa6_addr[i], sizeof(hw->v6[j])) == 0;
			if (!dup)
				hw->v6[hw->n6++] = rr->dnsa6_addr[i];
		}
		req_note_ttl(req, rr->dnsa6_ttl);
	}
	log_debug("d%u dns answer type=AAAA name=%s status=%s n=%d ttl=%u", req->id,
	    hw->name, dns_status_name(lk->status),
	    rr != NULL ? rr->dnsa6_nrr : 0, rr != NULL ? rr->dnsa6_ttl : 0);
	free(rr);
	if (req->outstanding == 0)
		req_complete(req);
}

/* Every address lookup has answered: decide. */
static void
req_complete(struct resolver_query *req)
{
	const struct lookup *failed = NULL;
	bool any_addr = false;
	char detail[128] = "";

	for (size_t i = 0; i < req->n_hosts; i++) {
		const struct host_work *hw = &req->hosts[i];
		if (hw->n4 + hw->n6 > 0)
			any_addr = true;
		if (failed == NULL && lookup_tempfailed(&hw->a))
			failed = &hw->a;
		if (failed == NULL && lookup_tempfailed(&hw->aaaa))
			failed = &hw->aaaa;
	}
	if (failed != NULL)
		lookup_describe(failed, req->hosts[failed->host].name, detail, sizeof(detail));

	if (any_addr) {
		/* A degraded answer (some lookup failed) must not be cached. */
		if (failed != NULL)
			req->ttl = 0;
		req_finish(req, MX_OK, detail);
	} else if (failed != NULL)
		req_finish(req, MX_DNS_ERROR, detail);
	else
		req_finish(req, MX_NO_MX, req->hosts[0].implicit ?
		    "no address for the domain" : "no address for any MX host");
}
