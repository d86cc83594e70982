/*
 * verify — one address from syntax to verdict.  See verify.h.
 *
 *   resolver_mx() → hosts in preference order (or the address literal)
 *   → for each host, each address: guard_allows() → smtp_io_start()
 *   → the first session that hears the target's RCPT answer decides;
 *     anything else is remembered and the next MX is tried.
 *
 * What a failed attempt says is ranked (failure_rank[]): when every MX
 * fails, the verdict carries the most telling reason seen — a block of the
 * prober says more than a timeout, a timeout more than a refused connect.
 * Nothing before the RCPT answer is ever taken as a statement about the
 * mailbox.
 *
 * Catch-all: the target accepted and the random address accepted too →
 * risky catch_all; the random address refused as unknown → deliverable,
 * catch_all=no; the random answer missing or inconclusive → deliverable,
 * catch_all=unknown.  Never a guess.
 *
 * BUGS: every probe asks the random address (the catch-all cache comes with
 * the caches); one probe is one session (batching comes with them too).
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "address.h"
#include "guard.h"
#include "log.h"
#include "resolver.h"
#include "smtp_io.h"
#include "verify.h"

#define RANDOM_LOCAL_LEN 16

struct verifier {
	struct ev_loop *loop;
	struct resolver *resolver;
	struct guard *guard;
	SSL_CTX *tls;
	char *helo_name;
	char *mail_from;
	char *fallback_mail_from;
	enum starttls_mode starttls;
	unsigned port;
	unsigned max_mx;
	double connect_timeout, greeting_timeout, command_timeout;
	bool has_source;
	struct sockaddr_storage source;
	struct verify_counters counters;
	struct verify_probe *probes;
};

/* What one failed attempt said. */
struct attempt {
	enum reason reason;
	char mx[256];
	struct smtp_reply_copy reply;
	char detail[96];
	bool tls;
};

struct verify_probe {
	struct verifier *v;
	struct verify_probe *prev, *next;
	char address[ADDRESS_MAX + 1];
	char domain[ADDRESS_DOMAIN_MAX + 1];
	char random_rcpt[ADDRESS_MAX + 1];
	bool utf8;
	struct resolver_query *dnsq;
	struct mx_result *mx;
	size_t host_i, addr_i;
	struct smtp_io *io;
	ev_timer kick;             /* answers known without I/O leave from the loop */
	ev_tstamp started;
	bool no_tls;               /* retrying a host in the clear after a TLS failure */
	bool tls_retry_done;
	bool random_only;          /* reconnected to ask only the random address */
	bool reconnected;
	struct smtp_outcome first; /* the target's answer, kept across the reconnect */
	bool have_failure;
	struct attempt best;
	struct ctl_result result;
	verify_done_cb done;
	void *arg;
};

/* Higher is more telling. */
static int
failure_rank(enum reason r)
{
	switch (r) {
	case REASON_BLOCKED: return 10;
	case REASON_SENDER_REJECTED: return 9;
	case REASON_RATE_LIMITED: return 8;
	case REASON_GREYLISTED: return 7;
	case REASON_TLS_FAILED: return 6;
	case REASON_UNVERIFIABLE: return 5;
	case REASON_PROTOCOL_ERROR: return 4;
	case REASON_TEMPFAIL: return 3;
	case REASON_TIMEOUT: return 2;
	case REASON_CONNECT_FAILED: return 1;
	default: return 0;
	}
}

static void next_attempt(struct verify_probe *p);
static void on_session(const struct smtp_outcome *o, void *arg);

/* ---- the end of a probe ------------------------------------------------ */

static void
probe_unlink(struct verify_probe *p)
{
	struct verifier *v = p->v;

	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		v->probes = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	v->counters.inflight--;
}

static void
probe_free(struct verify_probe *p)
{
	if (p->dnsq != NULL)
		resolver_cancel(p->dnsq);
	if (p->io != NULL)
		smtp_io_cancel(p->io);
	ev_timer_stop(p->v->loop, &p->kick);
	free(p->mx);
	free(p);
}

static void
probe_finish(struct verify_probe *p)
{
	struct verifier *v = p->v;

	p->result.ms = (long)((ev_now(v->loop) - p->started) * 1000.);
	p->result.cached = TRI_NO;
	if (log_enabled(LOG_INFO)) {
		char text[128];
		log_info("verify address=%s verdict=%s reason=%s mx=%s code=%d ms=%ld text=\"%s\"",
		    p->address, verdict_name(p->result.verdict), reason_name(p->result.reason),
		    p->result.mx[0] ? p->result.mx : "-", p->result.code, p->result.ms,
		    log_printable(text, sizeof(text), p->result.text, strlen(p->result.text)));
	}
	verify_done_cb done = p->done;
	void *arg = p->arg;
	struct ctl_result result = p->result;
	probe_unlink(p);
	probe_free(p);
	done(&result, arg);
}

static void
set_result(struct verify_probe *p, enum reason reason)
{
	ctl_result_init(&p->result, reason);
}

static void
copy_reply_to_result(struct ctl_result *r, const struct smtp_reply_copy *reply,
    const char *detail)
{
	if (reply->code != 0) {
		r->code = reply->code;
		snprintf(r->enhanced, sizeof(r->enhanced), "%s", reply->enhanced);
		snprintf(r->text, sizeof(r->text), "%s", reply->text);
	} else if (detail != NULL && detail[0] != '\0') {
		/* No reply to quote: say what probed saw instead. */
		snprintf(r->text, sizeof(r->text), "%s", detail);
	}
}

static void
finish_with_best_failure(struct verify_probe *p)
{
	if (!p->have_failure) {
		/* No host could even be tried: there was nothing to connect to. */
		set_result(p, REASON_NO_MX);
		probe_finish(p);
		return;
	}
	set_result(p, p->best.reason);
	snprintf(p->result.mx, sizeof(p->result.mx), "%s", p->best.mx);
	copy_reply_to_result(&p->result, &p->best.reply, p->best.detail);
	p->result.catch_all = TRI_UNKNOWN;
	p->result.write_catch_all = true;
	p->result.tls = p->best.tls ? TRI_YES : TRI_NO;
	probe_finish(p);
}

static void
record_failure(struct verify_probe *p, enum reason reason, const char *mx,
    const struct smtp_reply_copy *reply, const char *detail, bool tls)
{
	if (p->have_failure && failure_rank(reason) <= failure_rank(p->best.reason))
		return;
	p->have_failure = true;
	p->best.reason = reason;
	snprintf(p->best.mx, sizeof(p->best.mx), "%s", mx);
	if (reply != NULL)
		p->best.reply = *reply;
	else
		memset(&p->best.reply, 0, sizeof(p->best.reply));
	snprintf(p->best.detail, sizeof(p->best.detail), "%s", detail ? detail : "");
	p->best.tls = tls;
}

/* The target's RCPT was answered: that decides. */
static void
decide(struct verify_probe *p, const struct smtp_outcome *target,
    const struct smtp_outcome *random_source, const char *mx)
{
	enum reason r = target->target.reason;
	struct ctl_result *res = &p->result;

	set_result(p, r);
	res->write_catch_all = true;
	res->catch_all = TRI_UNKNOWN;
	if (r == REASON_ACCEPTED && random_source != NULL && random_source->random_answered) {
		enum reason rr = random_source->random.reason;
		if (rr == REASON_ACCEPTED) {
			set_result(p, REASON_CATCH_ALL);
			res->write_catch_all = true;
			res->catch_all = TRI_YES;
		} else if (reason_verdict(rr) == VERDICT_UNDELIVERABLE) {
			res->catch_all = TRI_NO;
		}
	} else if (r == REASON_NO_SUCH_USER || r == REASON_DISABLED) {
		/* A refused mailbox proves the domain does not take everything. */
		res->catch_all = TRI_NO;
	}
	snprintf(res->mx, sizeof(res->mx), "%s", mx);
	copy_reply_to_result(res, &target->target_reply, NULL);
	res->tls = target->tls ? TRI_YES : TRI_NO;
	probe_finish(p);
}

/* ---- sessions ---------------------------------------------------------- */

static const struct mx_host *
current_host(const struct verify_probe *p)
{
	return &p->mx->hosts[p->host_i];
}

static bool
dropped(const struct smtp_outcome *o)
{
	return strcmp(o->detail, "connection closed") == 0 ||
	    strcmp(o->detail, "connection reset") == 0;
}

static void
start_session(struct verify_probe *p, const struct sockaddr_storage *addr)
{
	struct verifier *v = p->v;
	const struct mx_host *h = current_host(p);
	struct smtp_io_params ip;

	memset(&ip, 0, sizeof(ip));
	ip.addr = *addr;
	if (addr->ss_family == AF_INET6) {
		((struct sockaddr_in6 *)&ip.addr)->sin6_port = htons((uint16_t)v->port);
		ip.addrlen = sizeof(struct sockaddr_in6);
	} else {
		((struct sockaddr_in *)&ip.addr)->sin_port = htons((uint16_t)v->port);
		ip.addrlen = sizeof(struct sockaddr_in);
	}
	ip.source = v->has_source && v->source.ss_family == addr->ss_family ? &v->source : NULL;
	ip.server_name = h->name;
	ip.tls = p->no_tls ? NULL : v->tls;
	ip.session = (struct smtp_session_params){
		.helo_name = v->helo_name,
		.mail_from = v->mail_from,
		.fallback_mail_from = v->fallback_mail_from,
		.rcpt = p->random_only ? p->random_rcpt : p->address,
		.rcpt_utf8 = p->utf8,
		.random_rcpt = p->random_only ? NULL : p->random_rcpt,
		.starttls = p->no_tls ? STARTTLS_NEVER : v->starttls,
		.connect_timeout = v->connect_timeout,
		.greeting_timeout = v->greeting_timeout,
		.command_timeout = v->command_timeout,
	};
	v->counters.sessions++;
	p->io = smtp_io_start(v->loop, &ip, on_session, p);
	if (p->io == NULL) {
		record_failure(p, REASON_TEMPFAIL, h->name, NULL, "out of memory", false);
		finish_with_best_failure(p);
	}
}

static void
on_session(const struct smtp_outcome *o, void *arg)
{
	struct verify_probe *p = arg;
	struct verifier *v = p->v;
	const struct mx_host *h = current_host(p);

	p->io = NULL;
	log_debug("verify address=%s mx=%s session=%s state=%s detail=\"%s\" target=%s random=%s",
	    p->address, h->name, smtp_failure_name(o->failure), smtp_state_name(o->state),
	    o->detail, o->target_answered ? reason_name(o->target.reason) : "-",
	    o->random_answered ? reason_name(o->random.reason) : "-");
	if (o->target_answered)
		v->counters.rcpts++;
	if (o->random_answered)
		v->counters.rcpts++;

	if (p->random_only) {
		/* The reconnect asked only the random address. */
		struct smtp_outcome r = { 0 };
		if (o->failure == SMTP_OK && o->target_answered) {
			r.random_answered = true;
			r.random = o->target;
			r.random_reply = o->target_reply;
		}
		decide(p, &p->first, &r, h->name);
		return;
	}

	switch (o->failure) {
	case SMTP_OK:
		if (o->target.reason == REASON_ACCEPTED && !o->random_answered && dropped(o) &&
		    !p->reconnected) {
			/* Dropped after the target's answer: ask the rest once more. */
			p->reconnected = true;
			p->random_only = true;
			p->first = *o;
			p->addr_i--; /* the same address again */
			next_attempt(p);
			return;
		}
		decide(p, o, o, h->name);
		return;
	case SMTP_FAIL_REPLY:
		if (o->failure_class.action == CLASSIFY_STOP) {
			set_result(p, o->failure_class.reason);
			snprintf(p->result.mx, sizeof(p->result.mx), "%s", h->name);
			copy_reply_to_result(&p->result, &o->failure_reply, NULL);
			p->result.write_catch_all = true;
			p->result.tls = o->tls ? TRI_YES : TRI_NO;
			probe_finish(p);
			return;
		}
		record_failure(p, o->failure_class.reason, h->name, &o->failure_reply, o->detail,
		    o->tls);
		p->addr_i = h->n_addrs; /* the server answered: its other addresses would too */
		break;
	case SMTP_FAIL_CONNECT:
		record_failure(p, REASON_CONNECT_FAILED, h->name, NULL, o->detail, false);
		break;
	case SMTP_FAIL_TIMEOUT:
		record_failure(p, REASON_TIMEOUT, h->name, NULL, o->detail, o->tls);
		if (o->state != SMTP_CONNECT)
			p->addr_i = h->n_addrs;
		break;
	case SMTP_FAIL_DROPPED:
		record_failure(p, REASON_TEMPFAIL, h->name, NULL, o->detail, o->tls);
		p->addr_i = h->n_addrs;
		break;
	case SMTP_FAIL_PROTOCOL:
		record_failure(p, REASON_PROTOCOL_ERROR, h->name, NULL, o->detail, o->tls);
		p->addr_i = h->n_addrs;
		break;
	case SMTP_FAIL_TLS:
		if (v->starttls == STARTTLS_OPPORTUNISTIC && o->state == SMTP_TLS &&
		    !p->tls_retry_done) {
			/* A broken handshake under opportunistic TLS: the same
			 * server, once more, in the clear (as Postfix does). */
			p->tls_retry_done = true;
			p->no_tls = true;
			p->addr_i--;
			next_attempt(p);
			return;
		}
		record_failure(p, REASON_TLS_FAILED, h->name, &o->failure_reply, o->detail, o->tls);
		p->addr_i = h->n_addrs;
		break;
	case SMTP_FAIL_UTF8:
		record_failure(p, REASON_UNVERIFIABLE, h->name, NULL, o->detail, o->tls);
		p->addr_i = h->n_addrs;
		break;
	}
	p->no_tls = false;
	next_attempt(p);
}

/* Walk hosts and addresses from where we are; start the next session or
 * finish with what was seen. */
static void
next_attempt(struct verify_probe *p)
{
	struct verifier *v = p->v;

	while (p->host_i < p->mx->n_hosts) {
		const struct mx_host *h = current_host(p);
		while (p->addr_i < h->n_addrs) {
			const struct sockaddr_storage *a = &h->addrs[p->addr_i++];
			const char *why;
			if (guard_allows(v->guard, (const struct sockaddr *)a, &why)) {
				start_session(p, a);
				return;
			}
			char ip[INET6_ADDRSTRLEN], detail[96];
			const void *raw = a->ss_family == AF_INET6 ?
			    (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr :
			    (const void *)&((const struct sockaddr_in *)a)->sin_addr;
			inet_ntop(a->ss_family, raw, ip, sizeof(ip));
			snprintf(detail, sizeof(detail), "destination %s is %s", ip, why);
			log_info("verify address=%s mx=%s refused by guard: %s", p->address, h->name,
			    detail);
			if (!p->have_failure) {
				/* Lowest rank: any real answer from another MX wins. */
				p->have_failure = true;
				p->best.reason = REASON_NOT_ALLOWED;
				snprintf(p->best.mx, sizeof(p->best.mx), "%s", h->name);
				memset(&p->best.reply, 0, sizeof(p->best.reply));
				snprintf(p->best.detail, sizeof(p->best.detail), "%s", detail);
				p->best.tls = false;
			}
		}
		p->host_i++;
		p->addr_i = 0;
		p->tls_retry_done = false;
	}
	finish_with_best_failure(p);
}

/* ---- DNS --------------------------------------------------------------- */

static void
on_mx(const struct mx_result *r, void *arg)
{
	struct verify_probe *p = arg;

	p->dnsq = NULL;
	switch (r->status) {
	case MX_NXDOMAIN:
		set_result(p, REASON_NO_DOMAIN);
		break;
	case MX_NULL_MX:
		set_result(p, REASON_NULL_MX);
		break;
	case MX_NO_MX:
		set_result(p, REASON_NO_MX);
		break;
	case MX_DNS_ERROR:
		set_result(p, REASON_DNS_ERROR);
		snprintf(p->result.text, sizeof(p->result.text), "%s", r->detail);
		break;
	case MX_OK:
		p->mx = malloc(sizeof(*p->mx));
		if (p->mx == NULL) {
			set_result(p, REASON_TEMPFAIL);
			break;
		}
		*p->mx = *r;
		next_attempt(p);
		return;
	}
	probe_finish(p);
}

/* An address literal names its one destination: no DNS. */
static void
on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct verify_probe *p = w->data;

	if (p->mx == NULL) {
		probe_finish(p); /* the result was set before the kick */
		return;
	}
	next_attempt(p);
}

static bool
literal_host(struct verify_probe *p, const struct address *a)
{
	struct mx_host *h;
	char ip[INET6_ADDRSTRLEN + 1];
	size_t skip = a->domain_kind == ADDRESS_LITERAL_IPV6 ? 6 : 1; /* "[IPv6:" or "[" */
	size_t n = a->domain_len - skip - 1;

	if (n >= sizeof(ip))
		return false;
	memcpy(ip, a->domain + skip, n);
	ip[n] = '\0';
	p->mx = calloc(1, sizeof(*p->mx));
	if (p->mx == NULL)
		return false;
	p->mx->status = MX_OK;
	p->mx->n_hosts = 1;
	h = &p->mx->hosts[0];
	snprintf(h->name, sizeof(h->name), "%.*s", (int)a->domain_len, a->domain);
	h->n_addrs = 1;
	if (a->domain_kind == ADDRESS_LITERAL_IPV6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->addrs[0];
		s6->sin6_family = AF_INET6;
		return inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)&h->addrs[0];
	s4->sin_family = AF_INET;
	return inet_pton(AF_INET, ip, &s4->sin_addr) == 1;
}

static void
make_random_rcpt(struct verify_probe *p)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char raw[RANDOM_LOCAL_LEN];
	char local[RANDOM_LOCAL_LEN + 1];

	/* A local part nobody has: unpredictable, so no server can learn to
	 * treat probed's catch-all check differently. */
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		for (size_t i = 0; i < sizeof(raw); i++)
			raw[i] = (unsigned char)random();
	}
	/* The whole address must stay within ADDRESS_MAX, so a long domain
	 * gets a shorter random part (the target's proves there is room). */
	size_t domain_len = strlen(p->domain);
	size_t n = RANDOM_LOCAL_LEN;
	if (domain_len + 1 + n > ADDRESS_MAX)
		n = ADDRESS_MAX - 1 - domain_len;
	for (size_t i = 0; i < n; i++)
		local[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
	local[n] = '\0';
	memcpy(p->random_rcpt, local, n);
	p->random_rcpt[n] = '@';
	memcpy(p->random_rcpt + n + 1, p->domain, domain_len + 1);
}

struct verify_probe *
verify_start(struct verifier *v, const char *address, size_t len, verify_done_cb done,
    void *arg)
{
	struct address a;
	struct verify_probe *p;

	if (len > ADDRESS_MAX || address_parse(address, len, &a) != ADDRESS_OK)
		return NULL; /* callers check syntax first */
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->v = v;
	p->done = done;
	p->arg = arg;
	p->started = ev_now(v->loop);
	memcpy(p->address, address, len);
	p->address[len] = '\0';
	memcpy(p->domain, a.domain, a.domain_len);
	p->domain[a.domain_len] = '\0';
	p->utf8 = a.local_utf8 || a.domain_utf8;
	make_random_rcpt(p);
	ev_timer_init(&p->kick, on_kick, 0., 0.);
	p->kick.data = p;

	p->next = v->probes;
	if (v->probes != NULL)
		v->probes->prev = p;
	v->probes = p;
	v->counters.inflight++;
	v->counters.probes++;

	if (a.domain_kind != ADDRESS_DOMAIN_NAME) {
		if (!literal_host(p, &a)) {
			free(p->mx);
			p->mx = NULL;
			set_result(p, REASON_SYNTAX);
		}
		ev_timer_start(v->loop, &p->kick);
		return p;
	}
	p->dnsq = resolver_mx(v->resolver, p->domain, v->max_mx, on_mx, p);
	if (p->dnsq == NULL) {
		set_result(p, REASON_DNS_ERROR);
		snprintf(p->result.text, sizeof(p->result.text), "out of memory");
		ev_timer_start(v->loop, &p->kick);
	}
	return p;
}

void
verify_cancel(struct verify_probe *p)
{
	if (p == NULL)
		return;
	probe_unlink(p);
	probe_free(p);
}

/* ---- the verifier ------------------------------------------------------- */

static int
apply_settings(struct verifier *v, const struct config *cfg, char *err, size_t errlen)
{
	char host[256];
	const char *helo = cfg->helo_name;
	struct guard *g = guard_new(&cfg->smtp.allow_networks, err, errlen);

	if (g == NULL)
		return -1;
	if (helo[0] == '\0') {
		if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		helo = host;
	}
	char *h = strdup(helo), *m = strdup(cfg->mail_from),
	     *f = strdup(cfg->fallback_mail_from);
	if (h == NULL || m == NULL || f == NULL) {
		free(h), free(m), free(f);
		guard_free(g);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	struct sockaddr_storage src;
	bool has_src = false;
	memset(&src, 0, sizeof(src));
	if (cfg->smtp.source_address[0] != '\0') {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&src;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&src;
		if (inet_pton(AF_INET, cfg->smtp.source_address, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			has_src = true;
		} else if (inet_pton(AF_INET6, cfg->smtp.source_address, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			has_src = true;
		}
	}
	guard_free(v->guard);
	free(v->helo_name), free(v->mail_from), free(v->fallback_mail_from);
	v->guard = g;
	v->helo_name = h;
	v->mail_from = m;
	v->fallback_mail_from = f;
	v->starttls = cfg->smtp.starttls;
	v->port = cfg->smtp.port;
	v->max_mx = cfg->smtp.max_mx;
	v->connect_timeout = cfg->smtp.connect_timeout;
	v->greeting_timeout = cfg->smtp.greeting_timeout;
	v->command_timeout = cfg->smtp.command_timeout;
	v->source = src;
	v->has_source = has_src;
	return 0;
}

struct verifier *
verifier_new(struct ev_loop *loop, const struct config *cfg, char *err, size_t errlen)
{
	struct verifier *v = calloc(1, sizeof(*v));

	if (v == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	v->loop = loop;
	v->tls = smtp_io_tls_context(err, errlen);
	if (v->tls == NULL)
		goto fail;
	v->resolver = resolver_new(loop, &cfg->dns.servers, cfg->dns.timeout, err, errlen);
	if (v->resolver == NULL)
		goto fail;
	if (apply_settings(v, cfg, err, errlen) != 0)
		goto fail;
	return v;
fail:
	verifier_free(v);
	return NULL;
}

int
verifier_reconfigure(struct verifier *v, const struct config *cfg, char *err, size_t errlen)
{
	return apply_settings(v, cfg, err, errlen);
}

void
verifier_free(struct verifier *v)
{
	if (v == NULL)
		return;
	while (v->probes != NULL)
		verify_cancel(v->probes);
	resolver_free(v->resolver);
	guard_free(v->guard);
	if (v->tls != NULL)
		SSL_CTX_free(v->tls);
	free(v->helo_name);
	free(v->mail_from);
	free(v->fallback_mail_from);
	free(v);
}

void
verifier_counters(const struct verifier *v, struct verify_counters *out)
{
	*out = v->counters;
	out->dns_queries = v->resolver != NULL ? resolver_queries(v->resolver) : 0;
}
