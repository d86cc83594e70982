/*
 * verify — one batch of addresses at one domain, from DNS to verdicts.
 * See verify.h.
 *
 *   dnscache_mx() → hosts in preference order (or the address literal)
 *   → for each host: politeness backoff? skip it; for each address:
 *     guard_allows()? → politeness slot → smtp_io_start() with every
 *     address still unanswered (and the catch-all check)
 *   → an address whose RCPT was answered is decided; the rest go on.
 *
 * What failed attempts said is ranked (failure_rank[]): an address no MX
 * answered gets the most telling reason seen — a block of the prober says
 * more than a timeout, a timeout more than a refused connect.  Nothing
 * before an RCPT answer is ever taken as a statement about a mailbox.
 *
 * A session that made progress and then lost the connection (a server
 * that drops after rejecting an RCPT, a 421 mid-batch) or left addresses
 * deferred by "too many recipients" (a session that sent QUIT with its
 * transaction cannot RSET) is followed by another session to the same
 * address for what is still unanswered, as long as each one answers
 * something; then the next MX.  An opportunistic STARTTLS whose handshake failed is
 * retried once in the clear, as Postfix does.
 *
 * Catch-all: the target accepted and the random address accepted too →
 * risky catch_all; the random address refused as unknown → deliverable,
 * catch_all=no; neither asked nor known → catch_all=unknown.  Never a guess.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "address.h"
#include "dnscache.h"
#include "guard.h"
#include "log.h"
#include "politeness.h"
#include "resolver.h"
#include "smtp_io.h"
#include "verify.h"

#define RANDOM_LOCAL_LEN 16
#define NO_TARGET SIZE_MAX

struct verifier {
	struct ev_loop *loop;
	struct dnscache *dns;
	struct politeness *polite;
	struct guard *guard;
	SSL_CTX *tls;
	char *helo_name;
	char *mail_from;
	char *fallback_mail_from;
	enum starttls_mode starttls;
	unsigned port;
	unsigned max_mx;
	unsigned max_rcpt;
	double connect_timeout, greeting_timeout, command_timeout;
	bool has_source;
	struct sockaddr_storage source;
	struct verify_counters counters;
	struct verify_batch *batches;
};

/* What one failed attempt said. */
struct attempt {
	enum reason reason;
	char mx[256];
	struct smtp_reply_copy reply;
	char detail[96];
	bool tls;
};

struct target {
	char address[ADDRESS_MAX + 1];
	void *arg;
	bool answered;
	struct smtp_rcpt_result rr;
	char mx[256];
	bool tls;
};

struct verify_batch {
	struct verifier *v;
	struct verify_batch *prev, *next;
	char domain[ADDRESS_DOMAIN_MAX + 1];
	bool utf8;
	const struct verify_batch_ops *ops;
	void *arg;
	struct target *targets;
	size_t n, cap;
	size_t unanswered;
	bool started, sealed;
	struct verify_domain_hint hint;
	char random[ADDRESS_MAX + 1];
	bool ask_random;
	bool random_answered;
	struct smtp_rcpt_result random_rr;
	struct dnscache_query *dnsq;
	struct mx_result *mx;
	size_t host_i, addr_i;
	const struct sockaddr_storage *addr; /* the address being tried */
	struct polite_wait *wait;
	bool holding_slot;
	struct smtp_io *io;
	/* Sized to cap + 1 (the catch-all check): a batch costs what it holds. */
	const char **rcpts;
	size_t *rcpt_target;    /* rcpt index -> target index, or NO_TARGET */
	struct smtp_rcpt_result *results;
	size_t n_rcpts;
	unsigned reconnects;    /* to this host, after sessions that made progress */
	size_t host_i_limit;    /* hosts past this are not tried (0: no limit) */
	bool tls_retry_done;    /* for this host */
	bool no_tls;
	ev_timer kick;          /* answers known without I/O leave from the loop */
	enum reason early;      /* set with kick: the whole batch's answer */
	char early_text[128];
	bool have_failure;
	struct attempt best;
	struct verify_domain_news news;
};

static void next_attempt(struct verify_batch *b);
static void on_session(const struct smtp_outcome *o, void *arg);

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

static void
record_failure(struct verify_batch *b, enum reason reason, const char *mx,
    const struct smtp_reply_copy *reply, const char *detail, bool tls)
{
	if (b->have_failure && failure_rank(reason) <= failure_rank(b->best.reason))
		return;
	b->have_failure = true;
	b->best.reason = reason;
	snprintf(b->best.mx, sizeof(b->best.mx), "%s", mx);
	if (reply != NULL)
		b->best.reply = *reply;
	else
		memset(&b->best.reply, 0, sizeof(b->best.reply));
	snprintf(b->best.detail, sizeof(b->best.detail), "%s", detail ? detail : "");
	b->best.tls = tls;
}

/* ---- the end of a batch ------------------------------------------------- */

static const struct mx_host *
current_host(const struct verify_batch *b)
{
	return &b->mx->hosts[b->host_i];
}

static const char *
current_host_name(const struct verify_batch *b)
{
	return b->mx != NULL && b->host_i < b->mx->n_hosts ? current_host(b)->name : "";
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

/* A refused mailbox proves the domain does not take everything. */
static bool
refused_some(const struct verify_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->targets[i].answered && (b->targets[i].rr.cls.reason == REASON_NO_SUCH_USER ||
		    b->targets[i].rr.cls.reason == REASON_DISABLED))
			return true;
	return false;
}

static bool
accepted_some(const struct verify_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->targets[i].answered && b->targets[i].rr.cls.reason == REASON_ACCEPTED)
			return true;
	return false;
}

/* The catch-all check still matters: someone was accepted, and nothing yet
 * says whether anyone would have been. */
static bool
random_wanted(const struct verify_batch *b)
{
	return b->ask_random && !b->random_answered && accepted_some(b) && !refused_some(b);
}

/* The verdict for an address whose RCPT was answered. */
static void
decide(const struct verify_batch *b, const struct target *t, struct ctl_result *res)
{
	enum reason r = t->rr.cls.reason;
	enum tristate known = b->hint.catch_all;

	ctl_result_init(res, r);
	res->write_catch_all = true;
	res->catch_all = known;
	if (r == REASON_ACCEPTED) {
		enum tristate ca = known;
		if (b->random_answered) {
			enum reason rr = b->random_rr.cls.reason;
			if (rr == REASON_ACCEPTED)
				ca = TRI_YES;
			else if (reason_verdict(rr) == VERDICT_UNDELIVERABLE)
				ca = TRI_NO;
			else
				ca = TRI_UNKNOWN; /* inconclusive: never a guess */
		} else if (refused_some(b)) {
			ca = TRI_NO;
		}
		res->catch_all = ca;
		if (ca == TRI_YES) {
			ctl_result_init(res, REASON_CATCH_ALL);
			res->write_catch_all = true;
			res->catch_all = TRI_YES;
		}
	} else if (r == REASON_NO_SUCH_USER || r == REASON_DISABLED) {
		/* A refused mailbox proves the domain does not take everything. */
		res->catch_all = TRI_NO;
	}
	snprintf(res->mx, sizeof(res->mx), "%s", t->mx);
	copy_reply_to_result(res, &t->rr.reply, NULL);
	res->tls = t->tls ? TRI_YES : TRI_NO;
}

static void
batch_unlink(struct verify_batch *b)
{
	struct verifier *v = b->v;

	if (b->prev != NULL)
		b->prev->next = b->next;
	else
		v->batches = b->next;
	if (b->next != NULL)
		b->next->prev = b->prev;
	v->counters.inflight -= b->n;
}

static void
batch_free(struct verify_batch *b)
{
	struct verifier *v = b->v;

	if (b->dnsq != NULL)
		dnscache_cancel(b->dnsq);
	if (b->wait != NULL)
		politeness_cancel(b->wait);
	if (b->io != NULL)
		smtp_io_cancel(b->io);
	if (b->holding_slot)
		politeness_release(v->polite, current_host_name(b), REASON_PENDING);
	ev_timer_stop(v->loop, &b->kick);
	free(b->mx);
	free(b->targets);
	free(b->rcpts);
	free(b->rcpt_target);
	free(b->results);
	free(b);
}

static void
batch_finish(struct verify_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		struct target *t = &b->targets[i];
		struct ctl_result res;

		if (t->answered) {
			decide(b, t, &res);
		} else if (b->early != REASON__COUNT) {
			ctl_result_init(&res, b->early);
			snprintf(res.text, sizeof(res.text), "%s", b->early_text);
		} else if (!b->have_failure) {
			ctl_result_init(&res, REASON_NO_MX); /* nothing could be tried */
		} else {
			ctl_result_init(&res, b->best.reason);
			snprintf(res.mx, sizeof(res.mx), "%s", b->best.mx);
			copy_reply_to_result(&res, &b->best.reply, b->best.detail);
			res.write_catch_all = true;
			res.catch_all = b->hint.catch_all;
			res.tls = b->best.tls ? TRI_YES : TRI_NO;
		}
		b->ops->result(&res, t->arg, b->arg);
	}
	if (b->random_answered) {
		enum reason rr = b->random_rr.cls.reason;
		if (rr == REASON_ACCEPTED || reason_verdict(rr) == VERDICT_UNDELIVERABLE) {
			b->news.catch_all_learned = true;
			b->news.catch_all = rr == REASON_ACCEPTED ? TRI_YES : TRI_NO;
		}
	}
	if (!b->news.catch_all_learned && refused_some(b)) {
		b->news.catch_all_learned = true;
		b->news.catch_all = TRI_NO;
	}
	if (b->sealed && b->ask_random)
		snprintf(b->news.random_rcpt, sizeof(b->news.random_rcpt), "%s", b->random);
	/* Told before it goes, so the owner can drop its references. */
	b->ops->done(b, &b->news, b->arg);
	batch_unlink(b);
	batch_free(b);
}

/* ---- sessions ---------------------------------------------------------- */

static void
make_random_rcpt(struct verify_batch *b)
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
	 * gets a shorter random part (the targets prove there is room). */
	size_t domain_len = strlen(b->domain);
	size_t n = RANDOM_LOCAL_LEN;
	if (domain_len + 1 + n > ADDRESS_MAX)
		n = ADDRESS_MAX - 1 - domain_len;
	for (size_t i = 0; i < n; i++)
		local[i] = alphabet[raw[i] % (sizeof(alphabet) - 1)];
	local[n] = '\0';
	memcpy(b->random, local, n);
	b->random[n] = '@';
	memcpy(b->random + n + 1, b->domain, domain_len + 1);
}

static void
seal(struct verify_batch *b)
{
	if (b->sealed)
		return;
	b->sealed = true;
	b->hint = (struct verify_domain_hint){ .catch_all = TRI_UNKNOWN };
	b->ops->seal(b, &b->hint, b->arg);
	b->ask_random = b->hint.catch_all == TRI_UNKNOWN;
	/* Only a batch that asks the catch-all question needs the random
	 * address (and the CSPRNG call that makes it). */
	if (!b->ask_random)
		b->random[0] = '\0';
	else if (b->hint.random_rcpt != NULL && b->hint.random_rcpt[0] != '\0')
		snprintf(b->random, sizeof(b->random), "%s", b->hint.random_rcpt);
	else
		make_random_rcpt(b);
	b->hint.random_rcpt = NULL; /* not ours to keep */
}

static void
start_session(struct verify_batch *b)
{
	struct verifier *v = b->v;
	const struct mx_host *h = current_host(b);
	const struct sockaddr_storage *addr = b->addr;
	struct smtp_io_params ip;

	b->n_rcpts = 0;
	for (size_t i = 0; i < b->n; i++)
		if (!b->targets[i].answered) {
			b->rcpt_target[b->n_rcpts] = i;
			b->rcpts[b->n_rcpts++] = b->targets[i].address;
		}
	if (b->ask_random && !b->random_answered && (b->unanswered > 0 || random_wanted(b))) {
		b->rcpt_target[b->n_rcpts] = NO_TARGET;
		b->rcpts[b->n_rcpts++] = b->random;
	}

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
	ip.tls = b->no_tls ? NULL : v->tls;
	bool fallback_first = b->hint.null_sender_refused && v->fallback_mail_from[0] != '\0';
	ip.session = (struct smtp_session_params){
		.helo_name = v->helo_name,
		.mail_from = fallback_first ? v->fallback_mail_from : v->mail_from,
		.fallback_mail_from = fallback_first ? "" : v->fallback_mail_from,
		.rcpts = b->rcpts,
		.n_rcpts = b->n_rcpts,
		.results = b->results,
		.rcpt_utf8 = b->utf8,
		.starttls = b->no_tls ? STARTTLS_NEVER : v->starttls,
		.connect_timeout = v->connect_timeout,
		.greeting_timeout = v->greeting_timeout,
		.command_timeout = v->command_timeout,
	};
	if (fallback_first)
		b->news.null_sender_refused = true;
	v->counters.sessions++;
	b->io = smtp_io_start(v->loop, &ip, on_session, b);
	if (b->io == NULL) {
		politeness_release(v->polite, h->name, REASON_PENDING);
		b->holding_slot = false;
		record_failure(b, REASON_TEMPFAIL, h->name, NULL, "out of memory", false);
		b->addr_i = h->n_addrs;
		next_attempt(b);
	}
}

static void
on_slot(void *arg)
{
	struct verify_batch *b = arg;

	b->wait = NULL;
	b->holding_slot = true;
	seal(b);
	start_session(b);
}

/* The reason a session's end gives the politeness layer. */
static enum reason
session_reason(const struct verify_batch *b, const struct smtp_outcome *o)
{
	for (size_t i = 0; i < b->n_rcpts; i++) {
		enum reason r = b->results[i].cls.reason;
		if (b->results[i].answered && (r == REASON_RATE_LIMITED || r == REASON_BLOCKED))
			return r;
	}
	switch (o->failure) {
	case SMTP_OK: return REASON_ACCEPTED;
	case SMTP_FAIL_REPLY: return o->failure_class.reason;
	case SMTP_FAIL_CONNECT: return REASON_CONNECT_FAILED;
	case SMTP_FAIL_TIMEOUT: return REASON_TIMEOUT;
	case SMTP_FAIL_DROPPED: return REASON_TEMPFAIL;
	case SMTP_FAIL_PROTOCOL: return REASON_PROTOCOL_ERROR;
	case SMTP_FAIL_TLS: return REASON_TLS_FAILED;
	case SMTP_FAIL_UTF8: return REASON_UNVERIFIABLE;
	}
	return REASON_TEMPFAIL;
}

/*
 * Addresses deferred by "too many recipients" in a session that made
 * progress but could not RSET for them (QUIT went with MAIL): the same
 * server again, while each session answers something and within the
 * transactions one session could have opened for them with RSET
 * (SMTP_MAX_TRANSACTIONS, the first included) — a server with a small
 * recipient limit gets no more transactions from probed than before QUIT
 * was pipelined, only on new connections.  A session that could RSET
 * has used its transactions: the next MX, as before.
 */
static bool
deferred_again(const struct verify_batch *b, const struct smtp_outcome *o)
{
	return o->quit_pipelined && o->answered > 0 && b->reconnects < b->n &&
	    b->reconnects + 1 < SMTP_MAX_TRANSACTIONS;
}

static void
on_session(const struct smtp_outcome *o, void *arg)
{
	struct verify_batch *b = arg;
	struct verifier *v = b->v;
	const struct mx_host *h = current_host(b);

	b->io = NULL;
	b->holding_slot = false;
	politeness_release(v->polite, h->name, session_reason(b, o));
	log_debug("verify domain=%s mx=%s session=%s state=%s detail=\"%s\" answered=%zu/%zu",
	    b->domain, h->name, smtp_failure_name(o->failure), smtp_state_name(o->state),
	    o->detail, o->answered, b->n_rcpts);
	v->counters.rcpts += o->answered;
	if (o->fallback_sender)
		b->news.null_sender_refused = true;

	for (size_t k = 0; k < b->n_rcpts; k++) {
		if (!b->results[k].answered)
			continue;
		if (b->results[k].cls.reason == REASON_GREYLISTED)
			b->news.greylisted = true;
		if (b->rcpt_target[k] == NO_TARGET) {
			b->random_answered = true;
			b->random_rr = b->results[k];
			continue;
		}
		struct target *t = &b->targets[b->rcpt_target[k]];
		t->answered = true;
		t->rr = b->results[k];
		snprintf(t->mx, sizeof(t->mx), "%s", h->name);
		t->tls = o->tls;
		b->unanswered--;
	}
	bool progress = o->answered > 0;
	if (b->unanswered == 0) {
		/* Every address is answered.  Only a catch-all check lost to a
		 * dropped connection is worth one more session, to the same
		 * server; not a walk through the other MXes.  One deferred by
		 * "too many recipients" is asked under the same budget as the
		 * targets deferred before it (a session that sent QUIT with
		 * its transaction cannot RSET): it would have had its own
		 * transaction on that connection. */
		bool again = o->failure == SMTP_OK ? deferred_again(b, o) :
		    b->reconnects == 0 && (o->failure == SMTP_FAIL_DROPPED ||
		    o->failure == SMTP_FAIL_TIMEOUT || o->failure == SMTP_FAIL_REPLY);
		if (random_wanted(b) && progress && again) {
			b->reconnects++;
			b->addr_i--;
			b->host_i_limit = b->host_i + 1;
			next_attempt(b);
			return;
		}
		batch_finish(b);
		return;
	}

	switch (o->failure) {
	case SMTP_OK:
		/* Asked and not answered ("too many recipients"): a session
		 * that sent QUIT with its one transaction could not ask again
		 * (smtp_session.c), so the same server once more for the rest
		 * (deferred_again()); else the next MX may take them. */
		record_failure(b, REASON_TEMPFAIL, h->name, NULL, "recipients deferred", o->tls);
		if (deferred_again(b, o)) {
			b->reconnects++;
			b->addr_i--;
		} else {
			b->addr_i = h->n_addrs;
		}
		break;
	case SMTP_FAIL_REPLY:
		if (o->failure_class.action == CLASSIFY_STOP) {
			record_failure(b, o->failure_class.reason, h->name, &o->failure_reply,
			    o->detail, o->tls);
			/* Another MX would say the same: stop here. */
			b->host_i = b->mx->n_hosts;
			break;
		}
		record_failure(b, o->failure_class.reason, h->name, &o->failure_reply, o->detail,
		    o->tls);
		if (progress && b->reconnects < b->n) {
			b->reconnects++;
			b->addr_i--;
		} else {
			b->addr_i = h->n_addrs; /* it answered: its other addresses would too */
		}
		break;
	case SMTP_FAIL_CONNECT:
		record_failure(b, REASON_CONNECT_FAILED, h->name, NULL, o->detail, false);
		break;
	case SMTP_FAIL_TIMEOUT:
	case SMTP_FAIL_DROPPED:
		record_failure(b, o->failure == SMTP_FAIL_TIMEOUT ? REASON_TIMEOUT : REASON_TEMPFAIL,
		    h->name, NULL, o->detail, o->tls);
		if (progress && b->reconnects < b->n) {
			/* Dropped mid-batch (a server that hangs up after a
			 * rejection): again for the rest, as long as each session
			 * gets somewhere — every one answers at least one. */
			b->reconnects++;
			b->addr_i--;
		} else if (o->state != SMTP_CONNECT) {
			b->addr_i = h->n_addrs;
		}
		break;
	case SMTP_FAIL_PROTOCOL:
		record_failure(b, REASON_PROTOCOL_ERROR, h->name, NULL, o->detail, o->tls);
		b->addr_i = h->n_addrs;
		break;
	case SMTP_FAIL_TLS:
		if (v->starttls == STARTTLS_OPPORTUNISTIC && o->state == SMTP_TLS &&
		    !b->tls_retry_done) {
			/* A broken handshake under opportunistic TLS: the same
			 * server, once more, in the clear (as Postfix does). */
			b->tls_retry_done = true;
			b->no_tls = true;
			b->addr_i--;
			next_attempt(b);
			return;
		}
		record_failure(b, REASON_TLS_FAILED, h->name, &o->failure_reply, o->detail, o->tls);
		b->addr_i = h->n_addrs;
		break;
	case SMTP_FAIL_UTF8:
		record_failure(b, REASON_UNVERIFIABLE, h->name, NULL, o->detail, o->tls);
		b->addr_i = h->n_addrs;
		break;
	}
	b->no_tls = false;
	next_attempt(b);
}

static void
refuse_by_guard(struct verify_batch *b, const struct mx_host *h,
    const struct sockaddr_storage *a, const char *why)
{
	char ip[INET6_ADDRSTRLEN], detail[96];
	const void *raw = a->ss_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)a)->sin_addr;

	inet_ntop(a->ss_family, raw, ip, sizeof(ip));
	snprintf(detail, sizeof(detail), "destination %s is %s", ip, why);
	log_info("verify domain=%s mx=%s refused by guard: %s", b->domain, h->name, detail);
	if (!b->have_failure) {
		/* Lowest rank: any real answer from another MX wins. */
		b->have_failure = true;
		b->best.reason = REASON_NOT_ALLOWED;
		snprintf(b->best.mx, sizeof(b->best.mx), "%s", h->name);
		memset(&b->best.reply, 0, sizeof(b->best.reply));
		snprintf(b->best.detail, sizeof(b->best.detail), "%s", detail);
		b->best.tls = false;
	}
}

/* Walk hosts and addresses from where we are; wait for the next session's
 * slot or finish with what was seen. */
static void
next_attempt(struct verify_batch *b)
{
	struct verifier *v = b->v;

	size_t last = b->host_i_limit > 0 && b->host_i_limit < b->mx->n_hosts ?
	    b->host_i_limit : b->mx->n_hosts;

	while (b->host_i < last) {
		const struct mx_host *h = current_host(b);
		enum reason why;
		double left;

		if (b->addr_i == 0 && politeness_backoff(v->polite, h->name, &why, &left)) {
			char detail[96];
			snprintf(detail, sizeof(detail), "probed leaves %s alone for %.0fs more",
			    h->name, left);
			record_failure(b, why, h->name, NULL, detail, false);
			b->addr_i = h->n_addrs;
		}
		while (b->addr_i < h->n_addrs) {
			const struct sockaddr_storage *a = &h->addrs[b->addr_i++];
			const char *gwhy;
			if (!guard_allows(v->guard, (const struct sockaddr *)a, &gwhy)) {
				refuse_by_guard(b, h, a, gwhy);
				continue;
			}
			b->addr = a;
			b->wait = politeness_acquire(v->polite, h->name, b->domain, on_slot, b);
			if (b->wait == NULL) {
				record_failure(b, REASON_TEMPFAIL, h->name, NULL, "out of memory", false);
				continue;
			}
			return;
		}
		b->host_i++;
		b->addr_i = 0;
		b->tls_retry_done = false;
		b->reconnects = 0;
	}
	batch_finish(b);
}

/* ---- DNS --------------------------------------------------------------- */

static void
finish_early(struct verify_batch *b, enum reason reason, const char *text)
{
	b->early = reason;
	if (text != b->early_text)
		snprintf(b->early_text, sizeof(b->early_text), "%s", text ? text : "");
	batch_finish(b);
}

static void
on_mx(const struct mx_result *r, void *arg)
{
	struct verify_batch *b = arg;

	b->dnsq = NULL;
	switch (r->status) {
	case MX_NXDOMAIN:
		finish_early(b, REASON_NO_DOMAIN, NULL);
		return;
	case MX_NULL_MX:
		finish_early(b, REASON_NULL_MX, NULL);
		return;
	case MX_NO_MX:
		finish_early(b, REASON_NO_MX, NULL);
		return;
	case MX_DNS_ERROR:
		finish_early(b, REASON_DNS_ERROR, r->detail);
		return;
	case MX_OK:
		break;
	}
	/* Only the hosts there are: a whole mx_result is ~20 KB. */
	size_t size = offsetof(struct mx_result, hosts) + r->n_hosts * sizeof(r->hosts[0]);
	b->mx = malloc(size);
	if (b->mx == NULL) {
		finish_early(b, REASON_TEMPFAIL, "out of memory");
		return;
	}
	memcpy(b->mx, r, size);
	next_attempt(b);
}

static void
on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct verify_batch *b = w->data;

	if (b->mx == NULL)
		finish_early(b, b->early, b->early_text);
	else
		next_attempt(b);
}

/* An address literal names its one destination: no DNS. */
static bool
literal_host(struct verify_batch *b)
{
	struct address a;
	char probe[ADDRESS_MAX + 2];
	char ip[INET6_ADDRSTRLEN + 1];

	/* Parse "x@<literal>" to reuse the one literal grammar. */
	int n = snprintf(probe, sizeof(probe), "x@%s", b->domain);
	if (n < 0 || (size_t)n >= sizeof(probe) ||
	    address_parse(probe, (size_t)n, &a) != ADDRESS_OK ||
	    a.domain_kind == ADDRESS_DOMAIN_NAME)
		return false;
	size_t skip = a.domain_kind == ADDRESS_LITERAL_IPV6 ? 6 : 1; /* "[IPv6:" or "[" */
	size_t len = a.domain_len - skip - 1;
	if (len >= sizeof(ip))
		return false;
	memcpy(ip, a.domain + skip, len);
	ip[len] = '\0';
	b->mx = calloc(1, sizeof(*b->mx));
	if (b->mx == NULL)
		return false;
	b->mx->status = MX_OK;
	b->mx->n_hosts = 1;
	struct mx_host *h = &b->mx->hosts[0];
	snprintf(h->name, sizeof(h->name), "%s", b->domain);
	h->n_addrs = 1;
	if (a.domain_kind == ADDRESS_LITERAL_IPV6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->addrs[0];
		s6->sin6_family = AF_INET6;
		return inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)&h->addrs[0];
	s4->sin_family = AF_INET;
	return inet_pton(AF_INET, ip, &s4->sin_addr) == 1;
}

/* ---- batches ------------------------------------------------------------ */

struct verify_batch *
verify_batch_new(struct verifier *v, const char *domain, bool utf8,
    const struct verify_batch_ops *ops, void *batch_arg)
{
	struct verify_batch *b = calloc(1, sizeof(*b));

	if (b == NULL)
		return NULL;
	b->cap = v->max_rcpt > 1 ? v->max_rcpt - 1 : 1; /* one RCPT for the catch-all check */
	b->targets = calloc(b->cap, sizeof(*b->targets));
	b->rcpts = calloc(b->cap + 1, sizeof(*b->rcpts));
	b->rcpt_target = calloc(b->cap + 1, sizeof(*b->rcpt_target));
	b->results = calloc(b->cap + 1, sizeof(*b->results));
	if (b->targets == NULL || b->rcpts == NULL || b->rcpt_target == NULL ||
	    b->results == NULL) {
		free(b->targets);
		free(b->rcpts);
		free(b->rcpt_target);
		free(b->results);
		free(b);
		return NULL;
	}
	b->v = v;
	snprintf(b->domain, sizeof(b->domain), "%s", domain);
	b->utf8 = utf8;
	b->ops = ops;
	b->arg = batch_arg;
	b->early = REASON__COUNT;
	ev_timer_init(&b->kick, on_kick, 0., 0.);
	b->kick.data = b;
	b->next = v->batches;
	if (v->batches != NULL)
		v->batches->prev = b;
	v->batches = b;
	v->counters.batches++;
	return b;
}

bool
verify_batch_add(struct verify_batch *b, const char *address, void *target_arg)
{
	size_t len = strlen(address);

	if (b->sealed || b->n >= b->cap || len > ADDRESS_MAX)
		return false;
	struct target *t = &b->targets[b->n++];
	memcpy(t->address, address, len + 1);
	t->arg = target_arg;
	b->unanswered++;
	b->v->counters.inflight++;
	return true;
}

void
verify_batch_start(struct verify_batch *b)
{
	struct verifier *v = b->v;

	if (b->started)
		return;
	b->started = true;
	if (b->domain[0] == '[') {
		if (!literal_host(b)) {
			free(b->mx);
			b->mx = NULL;
			b->early = REASON_SYNTAX;
		}
		ev_timer_start(v->loop, &b->kick);
		return;
	}
	b->dnsq = dnscache_mx(v->dns, b->domain, v->max_mx, on_mx, b);
	if (b->dnsq == NULL) {
		b->early = REASON_DNS_ERROR;
		snprintf(b->early_text, sizeof(b->early_text), "out of memory");
		ev_timer_start(v->loop, &b->kick);
	}
}

bool
verify_batch_sealed(const struct verify_batch *b)
{
	return b->sealed;
}

size_t
verify_batch_size(const struct verify_batch *b)
{
	return b->n;
}

void
verify_batch_cancel(struct verify_batch *b)
{
	if (b == NULL)
		return;
	batch_unlink(b);
	batch_free(b);
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
	v->max_rcpt = cfg->smtp.max_rcpt_per_session;
	if (v->max_rcpt > SMTP_MAX_RCPTS)
		v->max_rcpt = SMTP_MAX_RCPTS;
	v->connect_timeout = cfg->smtp.connect_timeout;
	v->greeting_timeout = cfg->smtp.greeting_timeout;
	v->command_timeout = cfg->smtp.command_timeout;
	v->source = src;
	v->has_source = has_src;
	return 0;
}

struct verifier *
verifier_new(struct ev_loop *loop, const struct config *cfg, struct dnscache *dns,
    struct politeness *polite, char *err, size_t errlen)
{
	struct verifier *v = calloc(1, sizeof(*v));

	if (v == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	v->loop = loop;
	v->dns = dns;
	v->polite = polite;
	v->tls = smtp_io_tls_context(err, errlen);
	if (v->tls == NULL || apply_settings(v, cfg, err, errlen) != 0) {
		verifier_free(v);
		return NULL;
	}
	return v;
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
	while (v->batches != NULL)
		verify_batch_cancel(v->batches);
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
}
