/*
 * vocab — the verdict and reason words every interface uses
 * (design.md, "Verdicts and reasons").  One table, so the daemon, the
 * clients, the docs test and the classifier can never disagree on a spelling.
 */
#ifndef PROBED_VOCAB_H
#define PROBED_VOCAB_H

#include <stdbool.h>
#include <stddef.h>

enum verdict {
	VERDICT_DELIVERABLE,
	VERDICT_UNDELIVERABLE,
	VERDICT_RISKY,
	VERDICT_UNKNOWN,
	VERDICT__COUNT
};

/* X(enum name, wire word, verdict it belongs to) */
#define REASON_LIST(X) \
	X(ACCEPTED,        "accepted",        VERDICT_DELIVERABLE) \
	X(SYNTAX,          "syntax",          VERDICT_UNDELIVERABLE) \
	X(NO_DOMAIN,       "no_domain",       VERDICT_UNDELIVERABLE) \
	X(NULL_MX,         "null_mx",         VERDICT_UNDELIVERABLE) \
	X(NO_MX,           "no_mx",           VERDICT_UNDELIVERABLE) \
	X(NO_SUCH_USER,    "no_such_user",    VERDICT_UNDELIVERABLE) \
	X(DISABLED,        "disabled",        VERDICT_UNDELIVERABLE) \
	X(RELAY_DENIED,    "relay_denied",    VERDICT_UNDELIVERABLE) \
	X(CATCH_ALL,       "catch_all",       VERDICT_RISKY) \
	X(MAILBOX_FULL,    "mailbox_full",    VERDICT_RISKY) \
	X(UNVERIFIABLE,    "unverifiable",    VERDICT_RISKY) \
	X(DNS_ERROR,       "dns_error",       VERDICT_UNKNOWN) \
	X(CONNECT_FAILED,  "connect_failed",  VERDICT_UNKNOWN) \
	X(TIMEOUT,         "timeout",         VERDICT_UNKNOWN) \
	X(GREYLISTED,      "greylisted",      VERDICT_UNKNOWN) \
	X(RATE_LIMITED,    "rate_limited",    VERDICT_UNKNOWN) \
	X(BLOCKED,         "blocked",         VERDICT_UNKNOWN) \
	X(TLS_FAILED,      "tls_failed",      VERDICT_UNKNOWN) \
	X(SENDER_REJECTED, "sender_rejected", VERDICT_UNKNOWN) \
	X(TEMPFAIL,        "tempfail",        VERDICT_UNKNOWN) \
	X(PROTOCOL_ERROR,  "protocol_error",  VERDICT_UNKNOWN) \
	X(NOT_ALLOWED,     "not_allowed",     VERDICT_UNKNOWN) \
	X(PENDING,         "pending",         VERDICT_UNKNOWN) \
	X(NOT_CACHED,      "not_cached",      VERDICT_UNKNOWN) \
	X(BUSY,            "busy",            VERDICT_UNKNOWN)

enum reason {
#define X(name, word, verdict) REASON_##name,
	REASON_LIST(X)
#undef X
	REASON__COUNT
};

const char *verdict_name(enum verdict v);
const char *reason_name(enum reason r);
/* The verdict a reason belongs to: every reason lives under exactly one. */
enum verdict reason_verdict(enum reason r);
/* Wire word -> enum; false when the word is not in the vocabulary. */
bool verdict_from_name(const char *s, size_t len, enum verdict *out);
bool reason_from_name(const char *s, size_t len, enum reason *out);

#endif
