/*
 * address — RFC 5321 Mailbox syntax, with the RFC 6531 (SMTPUTF8) extension
 * for UTF-8 local parts and U-label domains.
 *
 *   Mailbox      = Local-part "@" ( Domain / address-literal )
 *   Local-part   = Dot-string / Quoted-string      (<= 64 octets, as written)
 *   Domain       = sub-domain *("." sub-domain)    (<= 255 octets, labels <= 63)
 *   address-literal = "[" ( IPv4 / "IPv6:" IPv6 ) "]"
 *   whole mailbox <= 254 octets (a path is <= 256 with its angle brackets)
 *
 * The checker is strict because bad syntax must never reach the network, and
 * because what passes is later written into "RCPT TO:<...>": no control
 * octet, no CR, LF or NUL, no SP outside a quoted string can pass.
 */
#ifndef PROBED_ADDRESS_H
#define PROBED_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define ADDRESS_MAX 254
#define ADDRESS_LOCAL_MAX 64
#define ADDRESS_DOMAIN_MAX 255
#define ADDRESS_LABEL_MAX 63

enum address_error {
	ADDRESS_OK = 0,
	ADDRESS_EMPTY,          /* nothing at all */
	ADDRESS_TOO_LONG,       /* over ADDRESS_MAX */
	ADDRESS_NO_AT,          /* no '@' outside a quoted string */
	ADDRESS_LOCAL_EMPTY,    /* "@example.org" */
	ADDRESS_LOCAL_TOO_LONG, /* over 64 octets */
	ADDRESS_LOCAL_SYNTAX,   /* bad dot-string or quoted string */
	ADDRESS_DOMAIN_EMPTY,   /* "user@" */
	ADDRESS_DOMAIN_TOO_LONG,
	ADDRESS_LABEL_TOO_LONG,
	ADDRESS_DOMAIN_SYNTAX,  /* bad label, empty label, numeric TLD, ... */
	ADDRESS_LITERAL_SYNTAX, /* bad [IPv4] or [IPv6:...], unknown tag */
	ADDRESS_CONTROL,        /* a control octet (or DEL) anywhere */
	ADDRESS_UTF8,           /* 8-bit octets that are not well-formed UTF-8 */
	ADDRESS__ERROR_COUNT
};

enum address_domain_kind {
	ADDRESS_DOMAIN_NAME,    /* a host name, maybe with U-labels */
	ADDRESS_LITERAL_IPV4,
	ADDRESS_LITERAL_IPV6,
};

/* Views into the parsed string: nothing is copied. */
struct address {
	const char *local;      /* as written, quotes included if quoted */
	size_t local_len;
	const char *domain;     /* for literals: the whole "[...]" */
	size_t domain_len;
	enum address_domain_kind domain_kind;
	bool local_quoted;
	bool local_utf8;        /* local part holds non-ASCII: needs SMTPUTF8 */
	bool domain_utf8;       /* domain holds U-labels: needs IDNA to query DNS */
};

enum address_error address_parse(const char *s, size_t len, struct address *out)
    __attribute__((warn_unused_result));
/* A domain alone, as the DOMAIN and FORGET verbs take it (host names only:
 * literals have no per-domain knowledge). */
enum address_error address_parse_domain(const char *s, size_t len, bool *utf8)
    __attribute__((warn_unused_result));
/* Short English text for logs and error replies ("local part over 64 octets"). */
const char *address_strerror(enum address_error e);

#endif
