/*
 * policy_rules — what probed-policy does with a request: which address it
 * verifies (or why it verifies none), and which action answers each
 * outcome.  Pure functions of the `policy` section of probed.conf and the
 * request; no I/O, so the unit tests drive them directly.
 */
#ifndef PROBED_POLICY_RULES_H
#define PROBED_POLICY_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "codec.h"
#include "config.h"
#include "policy_proto.h"

/* What probed's answer (or its absence) comes to. */
enum policy_outcome {
	POLICY_DELIVERABLE,
	POLICY_UNDELIVERABLE,
	POLICY_RISKY,
	POLICY_UNKNOWN,
	POLICY_PENDING,      /* unknown, reason=pending: still probing at `wait` */
	POLICY_ERROR,        /* probed unreachable or failing, or the request
	                      * unusable: policy.on_error */
	POLICY_SKIP,         /* not verified (a skip rule, nothing to verify): DUNNO */
	POLICY__OUTCOME_COUNT
};

/* Longest address put on a VERIFY line: "VERIFY " addr " timeout=3600.000" LF
 * is then at most CTL_LINE_MAX octets. */
#define POLICY_ADDRESS_MAX (CTL_LINE_MAX - 32)

struct policy_net {
	int af;                  /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};

struct policy_rules {
	enum policy_verify verify;
	const char *action[POLICY__OUTCOME_COUNT]; /* templates (policy_action.h) */
	bool skip_null_sender;
	bool skip_sasl;
	struct policy_net *nets;
	size_t n_nets;
	char *const *domains;    /* the configuration's, lower case */
	size_t n_domains;
};

/* From a loaded configuration (which must outlive the rules).  Returns -1
 * when memory runs out or a network does not parse (config.c stores them
 * canonical, so that means a bug). */
int policy_rules_init(struct policy_rules *r, const struct config *cfg)
    __attribute__((warn_unused_result));
void policy_rules_free(struct policy_rules *r);

/* policy.action_undeliverable = "" means this, for the address verified. */
const char *policy_builtin_undeliverable(enum policy_verify v);

enum policy_choice_kind {
	POLICY_CHOOSE_VERIFY,    /* ask probed about ->address */
	POLICY_CHOOSE_SKIP,      /* answer DUNNO; ->why says which rule */
	POLICY_CHOOSE_ERROR,     /* answer on_error; ->why says what is wrong */
};

struct policy_choice {
	enum policy_choice_kind kind;
	/* A word for logs and %r: null_sender, sasl, network, domain,
	 * no_address, unqualified (skips); malformed, bad_address (errors). */
	const char *why;
	/* The address in RFC 5321 form (a local part that is not a
	 * dot-string quoted), NUL-terminated; "" when there is none. */
	char address[POLICY_ADDRESS_MAX + 1];
	size_t address_len;
};

/*
 * Decide for one complete request.  In this order: a malformed request is
 * an error; the null sender, a SASL login and a client in skip_networks
 * are skipped (as configured); then the address (policy.verify picks
 * `recipient` or `sender`) must exist and carry a domain, which must not
 * be in skip_domains; an address that cannot be written on a request line
 * (control octets, too long) is an error.
 */
void policy_choose(const struct policy_rules *r, const struct policy_request *req,
    struct policy_choice *c);

/* Is this client address (as Postfix writes it) in skip_networks? */
bool policy_client_skipped(const struct policy_rules *r, const char *client);

/* probed's answer to VERIFY, parsed: result lines by verdict (and reason
 * pending); anything else is POLICY_ERROR. */
enum policy_outcome policy_outcome_of(const struct ctl_response *resp);
/* "deliverable" .. "pending", "error", "skip". */
const char *policy_outcome_name(enum policy_outcome o);

#endif
