/*
 * address — RFC 5321 Mailbox syntax with the RFC 6531 (SMTPUTF8) extension.
 * See include/address.h.
 *
 * Owns: deciding whether an octet string may be written into
 * "RCPT TO:<...>", and splitting it into local part and domain (views into
 * the caller's buffer, nothing copied, nothing allocated).
 *
 * Limits: RFC 5321 §4.5.3.1: local part <= 64 octets as written (quotes
 * and backslashes included), domain <= 255, label <= 63, whole mailbox
 * <= 254.  The input is (pointer, length); it need not be NUL-terminated
 * and every octet of it, NUL included, is examined.  Each check is a
 * bounded linear scan, so a hostile megabyte costs a few passes over it.
 *
 * Security: the whole input is scanned for control octets (C0, DEL, and
 * the UTF-8-encoded C1 controls U+0080..U+009F, which some terminals obey
 * as escapes) before anything else, so a string carrying CR, LF or NUL is
 * reported as ADDRESS_CONTROL whatever else is wrong with it and can never
 * reach an SMTP command line or a log line.  Non-ASCII must be well-formed
 * UTF-8 (no overlongs, surrogates, values over U+10FFFF, truncations).
 * An accepted address has no SP outside a quoted local part.
 *
 * Policy beyond the RFC grammar: an all-numeric top-level label is refused
 * (RFC 3696 §2), so "user@1.2.3.4" is not taken for a host name; IPv4
 * literal parts may not have leading zeros; the only literal tag accepted
 * is "IPv6" (a General-address-literal with another tag cannot be probed).
 *
 * Blind spots: U-labels are checked only as well-formed UTF-8 octets in an
 * LDH-shaped label; IDNA2008 validity (disallowed code points, bidi rules,
 * NFC) is left to the IDNA conversion that precedes DNS.  Non-ASCII local
 * parts are not checked for normalisation or confusables.  A domain of 254
 * or 255 octets is accepted as RFC 5321 says, though DNS can carry only 253.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "address.h"

/* Longest IPv6 text RFC 5321 allows: six groups of four hex digits and a
 * dotted quad ("ffff:...:ffff:255.255.255.255"). */
#define IPV6_TEXT_MAX 45

static enum address_error scan_octets(const unsigned char *p, size_t len);
static size_t utf8_seq(const unsigned char *p, size_t len, uint32_t *cp);
static bool is_atext(unsigned char c);
static bool is_qtext(unsigned char c);
static bool is_alnum(unsigned char c);
static bool is_digit(unsigned char c);
static int hex_value(unsigned char c);
static bool find_at(const char *s, size_t len, size_t *at, bool *unclosed);
static enum address_error check_local(const unsigned char *p, size_t len);
static bool dot_string_ok(const unsigned char *p, size_t len);
static bool quoted_string_ok(const unsigned char *p, size_t len);
static enum address_error check_domain_name(const unsigned char *p,
    size_t len);
static bool label_ok(const unsigned char *p, size_t len);
static enum address_error check_literal(const unsigned char *p, size_t len,
    enum address_domain_kind *kind);
static bool ipv4_ok(const unsigned char *p, size_t len);
static bool ipv6_ok(const unsigned char *p, size_t len);
static int hex_groups(const unsigned char *p, size_t len);
static bool has_any_8bit(const unsigned char *p, size_t len);

static const char *const error_text[ADDRESS__ERROR_COUNT] = {
	[ADDRESS_OK] = "valid address",
	[ADDRESS_EMPTY] = "empty address",
	[ADDRESS_TOO_LONG] = "address over 254 octets",
	[ADDRESS_NO_AT] = "no @ outside a quoted string",
	[ADDRESS_LOCAL_EMPTY] = "empty local part",
	[ADDRESS_LOCAL_TOO_LONG] = "local part over 64 octets",
	[ADDRESS_LOCAL_SYNTAX] = "bad local part syntax",
	[ADDRESS_DOMAIN_EMPTY] = "empty domain",
	[ADDRESS_DOMAIN_TOO_LONG] = "domain over 255 octets",
	[ADDRESS_LABEL_TOO_LONG] = "domain label over 63 octets",
	[ADDRESS_DOMAIN_SYNTAX] = "bad domain syntax",
	[ADDRESS_LITERAL_SYNTAX] = "bad address literal",
	[ADDRESS_CONTROL] = "control character",
	[ADDRESS_UTF8] = "malformed UTF-8",
};

const char *
address_strerror(enum address_error e)
{
	if ((unsigned)e < ADDRESS__ERROR_COUNT && error_text[e] != NULL)
		return error_text[e];
	return "unknown address error";
}

/*
 * Length of the well-formed UTF-8 sequence at p (1 for ASCII), storing its
 * code point, or 0 if the octets there are not one (Unicode 15 table 3-7).
 */
static size_t
utf8_seq(const unsigned char *p, size_t len, uint32_t *cp)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		*cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		*cp = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;      /* shorter form exists: overlong */
		else if (c == 0xed)
			hi = 0x9f;      /* U+D800..U+DFFF: surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		*cp = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;      /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;      /* beyond U+10FFFF */
	} else
		return 0;       /* continuation, 0xc0/0xc1 overlongs, 0xf5.. */
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		unsigned char cc = p[i];

		if (cc < lo || cc > hi)
			return 0;
		lo = 0x80;
		hi = 0xbf;
		*cp = (*cp << 6) | (cc & 0x3f);
	}
	return n;
}

/*
 * The whole input, before any grammar: control octets first so that they
 * win over every other complaint, then UTF-8 well-formedness.  A malformed
 * sequence does not stop the scan, since a later CR must still be seen.
 */
static enum address_error
scan_octets(const unsigned char *p, size_t len)
{
	bool bad_utf8 = false;
	size_t i = 0;

	for (size_t j = 0; j < len; j++)
		if (p[j] < 0x20 || p[j] == 0x7f)
			return ADDRESS_CONTROL;
	while (i < len) {
		uint32_t cp;
		size_t n = utf8_seq(p + i, len - i, &cp);

		if (n == 0) {
			bad_utf8 = true;
			i++;
			continue;
		}
		if (cp >= 0x80 && cp <= 0x9f)
			return ADDRESS_CONTROL;
		i += n;
	}
	return bad_utf8 ? ADDRESS_UTF8 : ADDRESS_OK;
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
hex_value(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 5322 atext, widened by RFC 6531 to the octets of UTF8-non-ascii
 * (whose well-formedness scan_octets() has already established). */
static bool
is_atext(unsigned char c)
{
	return is_alnum(c) || c >= 0x80 ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* RFC 5321 qtextSMTP (%d32-33 / %d35-91 / %d93-126), widened likewise. */
static bool
is_qtext(unsigned char c)
{
	return (c >= 32 && c <= 126 && c != '"' && c != '\\') || c >= 0x80;
}

static bool
has_any_8bit(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] >= 0x80)
			return true;
	return false;
}

/*
 * The separating '@' is the last one outside a quoted string: a quoted
 * local part may hold '@' ("a@b"@example.org) and no domain may.  Quote
 * state follows RFC 5321: '"' opens and closes, and inside quotes a
 * backslash takes the next octet literally.  *unclosed tells whether the
 * string ended inside an unclosed quote that swallowed an '@'.
 */
static bool
find_at(const char *s, size_t len, size_t *at, bool *unclosed)
{
	bool quoted = false, found = false, hidden = false;

	for (size_t i = 0; i < len; i++) {
		if (quoted) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == '"')
				quoted = false;
			else if (s[i] == '@')
				hidden = true;
		} else if (s[i] == '"') {
			quoted = true;
			hidden = false;
		} else if (s[i] == '@') {
			*at = i;
			found = true;
		}
	}
	*unclosed = quoted && hidden;
	return found;
}

/* Dot-string = Atom *("." Atom): no empty atom, so no leading, trailing
 * or doubled dot. */
static bool
dot_string_ok(const unsigned char *p, size_t len)
{
	size_t atom = 0;

	for (size_t i = 0; i < len; i++) {
		if (p[i] == '.') {
			if (atom == 0)
				return false;
			atom = 0;
		} else if (is_atext(p[i]))
			atom++;
		else
			return false;
	}
	return atom > 0;
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE, the closing quote being the
 * last octet: the local part is a single quoted string or none. */
static bool
quoted_string_ok(const unsigned char *p, size_t len)
{
	size_t i;

	if (len < 2 || p[0] != '"')
		return false;
	for (i = 1; i < len; i++) {
		if (p[i] == '"')
			break;
		if (p[i] == '\\') {
			/* quoted-pairSMTP = "\" %d32-126 */
			if (i + 1 >= len || p[i + 1] < 32 || p[i + 1] > 126)
				return false;
			i++;
		} else if (!is_qtext(p[i]))
			return false;
	}
	return i == len - 1;
}

static enum address_error
check_local(const unsigned char *p, size_t len)
{
	if (len == 0)
		return ADDRESS_LOCAL_EMPTY;
	if (len > ADDRESS_LOCAL_MAX)
		return ADDRESS_LOCAL_TOO_LONG;
	if (p[0] == '"')
		return quoted_string_ok(p, len) ? ADDRESS_OK : ADDRESS_LOCAL_SYNTAX;
	return dot_string_ok(p, len) ? ADDRESS_OK : ADDRESS_LOCAL_SYNTAX;
}

/* sub-domain = Let-dig [Ldh-str]: LDH octets (a U-label's octets count as
 * letters), neither first nor last a hyphen.  The caller bounds len. */
static bool
label_ok(const unsigned char *p, size_t len)
{
	if (len == 0 || p[0] == '-' || p[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_alnum(p[i]) && p[i] != '-' && p[i] < 0x80)
			return false;
	return true;
}

/*
 * Lengths are judged before shape, over the whole name, so that an
 * over-long label is reported as such even when a later label is also bad.
 */
static enum address_error
check_domain_name(const unsigned char *p, size_t len)
{
	size_t start, i;
	bool numeric = true;

	if (len > ADDRESS_DOMAIN_MAX)
		return ADDRESS_DOMAIN_TOO_LONG;
	for (start = 0, i = 0; i <= len; i++)
		if (i == len || p[i] == '.') {
			if (i - start > ADDRESS_LABEL_MAX)
				return ADDRESS_LABEL_TOO_LONG;
			start = i + 1;
		}
	for (start = 0, i = 0; i <= len; i++)
		if (i == len || p[i] == '.') {
			if (!label_ok(p + start, i - start))
				return ADDRESS_DOMAIN_SYNTAX;
			start = i + 1;
		}
	/* RFC 3696 §2: a top-level label is never all-numeric; this also keeps
	 * an unbracketed dotted quad from passing as a host name. */
	for (i = len; i > 0 && p[i - 1] != '.'; i--)
		if (!is_digit(p[i - 1]))
			numeric = false;
	return numeric ? ADDRESS_DOMAIN_SYNTAX : ADDRESS_OK;
}

/* IPv4-address-literal = Snum 3("." Snum), each 0..255, written without
 * leading zeros so that no reader can take it for octal. */
static bool
ipv4_ok(const unsigned char *p, size_t len)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t digits = 0;
		unsigned value = 0;

		if (part > 0) {
			if (i >= len || p[i] != '.')
				return false;
			i++;
		}
		while (i < len && is_digit(p[i]) && digits < 4) {
			value = value * 10 + (unsigned)(p[i] - '0');
			digits++;
			i++;
		}
		if (digits == 0 || digits > 3 || value > 255)
			return false;
		if (digits > 1 && p[i - digits] == '0')
			return false;
	}
	return i == len;
}

/*
 * Counts the groups of "IPv6-hex *(":" IPv6-hex)" filling p..p+len, an
 * empty span being zero groups; -1 if the span is not of that shape.
 */
static int
hex_groups(const unsigned char *p, size_t len)
{
	int groups = 0;
	size_t digits = 0;

	if (len == 0)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || p[i] == ':') {
			if (digits == 0)
				return -1;
			groups++;
			digits = 0;
		} else if (hex_value(p[i]) >= 0 && digits < 4)
			digits++;
		else
			return -1;
	}
	return groups;
}

/*
 * RFC 5321 §4.1.3 IPv6-addr: IPv6-full (8 groups), IPv6-comp (at most 6
 * groups around a "::" that stands for at least two), IPv6v4-full (6
 * groups and a dotted quad), IPv6v4-comp (at most 4 groups around "::" and
 * a dotted quad).  inet_pton() then confirms; it alone would also take
 * forms the RFC excludes, such as "::" standing for a single group.
 */
static bool
ipv6_ok(const unsigned char *p, size_t len)
{
	const unsigned char *dcolon = NULL;
	size_t hex_len = len;
	int groups;
	bool v4 = false;
	char text[IPV6_TEXT_MAX + 1];
	struct in6_addr addr;

	if (len == 0 || len > IPV6_TEXT_MAX)
		return false;
	for (size_t i = 0; i + 1 < len; i++)
		if (p[i] == ':' && p[i + 1] == ':') {
			/* A second "::", or ":::", which no form allows and
			 * which would let "1:::1.2.3.4" pass as "1::" ":" quad. */
			if (dcolon != NULL || (i + 2 < len && p[i + 2] == ':'))
				return false;
			dcolon = p + i;
			i++;
		}
	if (memchr(p, '.', len) != NULL) {
		/* The dotted quad is the last field: after the last ':'. */
		size_t q = len;

		while (q > 0 && p[q - 1] != ':')
			q--;
		if (q == 0 || !ipv4_ok(p + q, len - q))
			return false;
		v4 = true;
		/* Drop the quad and the ':' before it, unless that ':' is the
		 * tail of "::" ("1::1.2.3.4"). */
		hex_len = (dcolon != NULL && p + q == dcolon + 2) ? q : q - 1;
	}
	if (dcolon != NULL) {
		size_t off = (size_t)(dcolon - p);
		int left, right;

		/* The last ':' is at or after the "::"; kept explicit so the
		 * subtraction below can never wrap. */
		if (hex_len < off + 2)
			return false;
		left = hex_groups(p, off);
		right = hex_groups(dcolon + 2, hex_len - off - 2);
		if (left < 0 || right < 0)
			return false;
		groups = left + right;
		if (groups > (v4 ? 4 : 6))
			return false;
	} else {
		groups = hex_groups(p, hex_len);
		if (groups != (v4 ? 6 : 8))
			return false;
	}
	memcpy(text, p, len);
	text[len] = '\0';
	return inet_pton(AF_INET6, text, &addr) == 1;
}

/* address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
 * General-address-literal ) "]"; p spans the brackets. */
static enum address_error
check_literal(const unsigned char *p, size_t len,
    enum address_domain_kind *kind)
{
	static const char tag[] = "IPv6:";
	const size_t tag_len = sizeof(tag) - 1;

	if (len < 2 || p[len - 1] != ']')
		return ADDRESS_LITERAL_SYNTAX;
	p++;
	len -= 2;
	if (len > 0 && is_digit(p[0])) {
		*kind = ADDRESS_LITERAL_IPV4;
		return ipv4_ok(p, len) ? ADDRESS_OK : ADDRESS_LITERAL_SYNTAX;
	}
	if (len > tag_len && strncasecmp((const char *)p, tag, tag_len) == 0) {
		*kind = ADDRESS_LITERAL_IPV6;
		return ipv6_ok(p + tag_len, len - tag_len) ?
		    ADDRESS_OK : ADDRESS_LITERAL_SYNTAX;
	}
	return ADDRESS_LITERAL_SYNTAX;
}

enum address_error
address_parse(const char *s, size_t len, struct address *out)
{
	const unsigned char *u = (const unsigned char *)s;
	enum address_domain_kind kind = ADDRESS_DOMAIN_NAME;
	enum address_error e;
	size_t at = 0, dlen;
	bool unclosed;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (s == NULL || len == 0)
		return ADDRESS_EMPTY;
	if ((e = scan_octets(u, len)) != ADDRESS_OK)
		return e;
	if (len > ADDRESS_MAX)
		return ADDRESS_TOO_LONG;
	if (!find_at(s, len, &at, &unclosed))
		/* An unclosed quote hiding the '@' ("abc@example.org) is a
		 * broken local part rather than a missing separator. */
		return unclosed ? ADDRESS_LOCAL_SYNTAX : ADDRESS_NO_AT;
	if ((e = check_local(u, at)) != ADDRESS_OK)
		return e;
	dlen = len - at - 1;
	if (dlen == 0)
		return ADDRESS_DOMAIN_EMPTY;
	if (u[at + 1] == '[')
		e = check_literal(u + at + 1, dlen, &kind);
	else
		e = check_domain_name(u + at + 1, dlen);
	if (e != ADDRESS_OK)
		return e;
	if (out != NULL) {
		out->local = s;
		out->local_len = at;
		out->domain = s + at + 1;
		out->domain_len = dlen;
		out->domain_kind = kind;
		out->local_quoted = s[0] == '"';
		out->local_utf8 = has_any_8bit(u, at);
		out->domain_utf8 = has_any_8bit(u + at + 1, dlen);
	}
	return ADDRESS_OK;
}

enum address_error
address_parse_domain(const char *s, size_t len, bool *utf8)
{
	const unsigned char *u = (const unsigned char *)s;
	enum address_error e;

	if (utf8 != NULL)
		*utf8 = false;
	if (s == NULL || len == 0)
		return ADDRESS_DOMAIN_EMPTY;
	if ((e = scan_octets(u, len)) != ADDRESS_OK)
		return e;
	/* Literals carry no per-domain knowledge; '[' fails as a label. */
	if ((e = check_domain_name(u, len)) != ADDRESS_OK)
		return e;
	if (utf8 != NULL)
		*utf8 = has_any_8bit(u, len);
	return ADDRESS_OK;
}
