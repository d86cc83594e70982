/*
 * policy_rules — from a request to an address, from probed's answer to an
 * outcome.  See policy_rules.h.
 *
 * Owns: the skip rules (null sender, SASL clients, client networks,
 * domains), the built-in undeliverable actions, and the conversion of
 * Postfix's address to the form probed reads.  Postfix hands the policy
 * service its *internal* form (smtpd.c: tok822_internalize): a local part
 * that needed quotes on the wire arrives unquoted, `john doe@example.org`.
 * It is quoted again here, as RFC 5321 writes it, so that it stays one
 * token on the VERIFY line and means the mailbox the client named.
 *
 * Limits: domains in skip_domains are compared as ASCII, case-insensitive;
 * an internationalised domain matches only in the form Postfix passes.  An
 * address without a domain (RCPT TO:<postmaster>) is not verified: Postfix
 * qualifies it with its own domain, which probed cannot judge better.
 *
 * Security: an address with a control octet is never put on a request
 * line (that would let the SMTP client speak to probed); quoting makes
 * SP and TAB in the local part harmless, and a domain holding one is
 * refused, so a client cannot add options such as `fresh`.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "policy_rules.h"

/*
 * Postfix writes a policy service's rejection as "<address>: Recipient
 * address rejected: TEXT" (or "Sender address" in smtpd_sender_restrictions),
 * so TEXT says only why.  The sender's says "sender" too: placed among the
 * recipient restrictions, Postfix's prefix would name the recipient.
 */
static const char builtin_rcpt[] = "550 5.1.1 undeliverable address (%r)";
static const char builtin_sender[] = "550 5.1.7 undeliverable sender address (%r)";

static const char *const outcome_names[POLICY__OUTCOME_COUNT] = {
	[POLICY_DELIVERABLE] = "deliverable",
	[POLICY_UNDELIVERABLE] = "undeliverable",
	[POLICY_RISKY] = "risky",
	[POLICY_UNKNOWN] = "unknown",
	[POLICY_PENDING] = "pending",
	[POLICY_ERROR] = "error",
	[POLICY_SKIP] = "skip",
};

const char *
policy_outcome_name(enum policy_outcome o)
{
	return (unsigned)o < POLICY__OUTCOME_COUNT ? outcome_names[o] : "?";
}

const char *
policy_builtin_undeliverable(enum policy_verify v)
{
	return v == POLICY_VERIFY_SENDER ? builtin_sender : builtin_rcpt;
}

/* "192.0.2.0/24", "2001:db8::/32": the canonical form config.c stores. */
static int
parse_net(const char *s, struct policy_net *n)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	char *end;
	unsigned long p;

	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	memset(n->addr, 0, sizeof(n->addr));
	if (inet_pton(AF_INET, addr, n->addr) == 1)
		n->af = AF_INET;
	else if (inet_pton(AF_INET6, addr, n->addr) == 1)
		n->af = AF_INET6;
	else
		return -1;
	n->prefix = n->af == AF_INET ? 32 : 128;
	if (slash != NULL) {
		p = strtoul(slash + 1, &end, 10);
		if (end == slash + 1 || *end != '\0' || p > n->prefix)
			return -1;
		n->prefix = (unsigned)p;
	}
	return 0;
}

int
policy_rules_init(struct policy_rules *r, const struct config *cfg)
{
	const char *undeliverable = cfg->policy.action_undeliverable;

	memset(r, 0, sizeof(*r));
	r->verify = cfg->policy.verify;
	r->action[POLICY_DELIVERABLE] = cfg->policy.action_deliverable;
	r->action[POLICY_UNDELIVERABLE] = undeliverable != NULL && undeliverable[0] != '\0' ?
	    undeliverable : policy_builtin_undeliverable(r->verify);
	r->action[POLICY_RISKY] = cfg->policy.action_risky;
	r->action[POLICY_UNKNOWN] = cfg->policy.action_unknown;
	r->action[POLICY_PENDING] = cfg->policy.action_pending;
	r->action[POLICY_ERROR] = cfg->policy.on_error;
	r->action[POLICY_SKIP] = "DUNNO";
	r->skip_null_sender = cfg->policy.skip_null_sender;
	r->skip_sasl = cfg->policy.skip_sasl;
	r->domains = cfg->policy.skip_domains.v;
	r->n_domains = cfg->policy.skip_domains.n;
	if (cfg->policy.skip_networks.n > 0) {
		r->nets = calloc(cfg->policy.skip_networks.n, sizeof(*r->nets));
		if (r->nets == NULL)
			return -1;
		for (size_t i = 0; i < cfg->policy.skip_networks.n; i++) {
			if (parse_net(cfg->policy.skip_networks.v[i], &r->nets[i]) < 0) {
				policy_rules_free(r);
				return -1;
			}
			r->n_nets++;
		}
	}
	return 0;
}

void
policy_rules_free(struct policy_rules *r)
{
	free(r->nets);
	r->nets = NULL;
	r->n_nets = 0;
}

static bool
net_contains(const struct policy_net *n, int af, const unsigned char *a)
{
	unsigned full = n->prefix / 8, rest = n->prefix % 8;

	if (n->af != af)
		return false;
	if (memcmp(n->addr, a, full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff00u >> rest);
	return (n->addr[full] & mask) == (a[full] & mask);
}

bool
policy_client_skipped(const struct policy_rules *r, const char *client)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	unsigned char a[16];
	int af;

	if (client == NULL || r->n_nets == 0)
		return false;
	if (inet_pton(AF_INET, client, a) == 1)
		af = AF_INET;
	else if (inet_pton(AF_INET6, client, a) == 1)
		af = AF_INET6;
	else
		return false;   /* "unknown" and the like: not in any network */
	for (size_t i = 0; i < r->n_nets; i++) {
		if (net_contains(&r->nets[i], af, a))
			return true;
		/* ::ffff:192.0.2.1 is the IPv4 client it stands for. */
		if (af == AF_INET6 && memcmp(a, mapped, sizeof(mapped)) == 0 &&
		    net_contains(&r->nets[i], AF_INET, a + 12))
			return true;
	}
	return false;
}

static bool
domain_skipped(const struct policy_rules *r, const char *d, size_t len)
{
	if (len > 0 && d[len - 1] == '.')
		len--;
	for (size_t i = 0; i < r->n_domains; i++) {
		const char *p = r->domains[i];
		size_t plen = strlen(p);

		if (p[0] == '.') {
			/* ".example.org": any name below it, not itself */
			if (len > plen && strncasecmp(d + len - plen, p, plen) == 0)
				return true;
		} else if (len == plen && strncasecmp(d, p, len) == 0)
			return true;
	}
	return false;
}

static bool
atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80 ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5321 Dot-string (with RFC 6531's UTF-8). */
static bool
dot_string(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (s[i - 1] == '.')
				return false;
		} else if (!atext((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* local@domain in RFC 5321 form into c->address; false when it does not fit. */
static bool
external_form(struct policy_choice *c, const char *local, size_t llen,
    const char *domain, size_t dlen)
{
	char *o = c->address;
	size_t cap = sizeof(c->address), n = 0;

#define PUT(ch) do { if (n + 1 >= cap) return false; o[n++] = (ch); } while (0)
	if (dot_string(local, llen)) {
		for (size_t i = 0; i < llen; i++)
			PUT(local[i]);
	} else {
		PUT('"');
		for (size_t i = 0; i < llen; i++) {
			if (local[i] == '"' || local[i] == '\\')
				PUT('\\');
			PUT(local[i]);
		}
		PUT('"');
	}
	PUT('@');
	for (size_t i = 0; i < dlen; i++)
		PUT(domain[i]);
#undef PUT
	o[n] = '\0';
	c->address_len = n;
	return true;
}

static void
choose(struct policy_choice *c, enum policy_choice_kind kind, const char *why)
{
	c->kind = kind;
	c->why = why;
}

void
policy_choose(const struct policy_rules *r, const struct policy_request *req,
    struct policy_choice *c)
{
	size_t slen, alen;
	const char *sender = policy_request_get(req, POLICY_ATTR_SENDER, &slen);
	const char *sasl = policy_request_get(req, POLICY_ATTR_SASL_USERNAME, NULL);
	const char *client = policy_request_get(req, POLICY_ATTR_CLIENT_ADDRESS, NULL);
	const char *addr, *at;

	c->address[0] = '\0';
	c->address_len = 0;
	if (req->error != NULL) {
		choose(c, POLICY_CHOOSE_ERROR, "malformed");
		return;
	}
	/* Postfix always sends sender=, empty for MAIL FROM:<>. */
	if (r->skip_null_sender && slen == 0) {
		choose(c, POLICY_CHOOSE_SKIP, "null_sender");
		return;
	}
	if (r->skip_sasl && sasl != NULL && sasl[0] != '\0') {
		choose(c, POLICY_CHOOSE_SKIP, "sasl");
		return;
	}
	if (policy_client_skipped(r, client)) {
		choose(c, POLICY_CHOOSE_SKIP, "network");
		return;
	}
	addr = r->verify == POLICY_VERIFY_SENDER ? sender :
	    policy_request_get(req, POLICY_ATTR_RECIPIENT, NULL);
	alen = r->verify == POLICY_VERIFY_SENDER ? slen :
	    req->value_len[POLICY_ATTR_RECIPIENT];
	if (addr == NULL || alen == 0) {
		/* The null sender, or a recipient outside the RCPT stage. */
		choose(c, POLICY_CHOOSE_SKIP, "no_address");
		return;
	}
	for (size_t i = 0; i < alen; i++)
		if ((unsigned char)addr[i] < 0x20 || addr[i] == 0x7f) {
			choose(c, POLICY_CHOOSE_ERROR, "bad_address");
			return;
		}
	at = memrchr(addr, '@', alen);
	if (at == NULL || at + 1 == addr + alen) {
		choose(c, POLICY_CHOOSE_SKIP, "unqualified");
		return;
	}
	/* A domain is one token as it stands: no quotes to hide a space in. */
	for (const char *d = at + 1; d < addr + alen; d++)
		if (*d == ' ' || *d == '\t' || *d == '"' || *d == '\\') {
			choose(c, POLICY_CHOOSE_ERROR, "bad_address");
			return;
		}
	if (domain_skipped(r, at + 1, (size_t)(addr + alen - at - 1))) {
		choose(c, POLICY_CHOOSE_SKIP, "domain");
		return;
	}
	if (!external_form(c, addr, (size_t)(at - addr), at + 1,
	    (size_t)(addr + alen - at - 1))) {
		c->address[0] = '\0';
		c->address_len = 0;
		choose(c, POLICY_CHOOSE_ERROR, "bad_address");
		return;
	}
	choose(c, POLICY_CHOOSE_VERIFY, NULL);
}

enum policy_outcome
policy_outcome_of(const struct ctl_response *resp)
{
	if (resp->kind != CTL_RESP_RESULT)
		return POLICY_ERROR;
	switch (resp->verdict) {
	case VERDICT_DELIVERABLE:
		return POLICY_DELIVERABLE;
	case VERDICT_UNDELIVERABLE:
		return POLICY_UNDELIVERABLE;
	case VERDICT_RISKY:
		return POLICY_RISKY;
	case VERDICT_UNKNOWN:
		/* kv[0] is reason= (the codec insists). */
		if (resp->n_kv > 0 && resp->kv[0].value_len == 7 &&
		    memcmp(resp->kv[0].value, "pending", 7) == 0)
			return POLICY_PENDING;
		return POLICY_UNKNOWN;
	case VERDICT__COUNT:
		break;
	}
	return POLICY_ERROR;
}
