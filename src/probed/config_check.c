/*
 * config_check — value checks for probed.conf.  See config_check.h.
 *
 * Pure functions over strings (and the system's account and group
 * databases for user, group and socket_group): no configuration state.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config.h"
#include "config_check.h"

static void
reason(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reason(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

static bool
has_ctl_or_space(const char *v)
{
	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;
		if (c <= 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

/* ---- string checks */

static bool
path_ok(const char *v, size_t limit, char *why, size_t whycap)
{
	size_t len = strlen(v);

	if (v[0] != '/') {
		reason(why, whycap, "is not an absolute path");
		return false;
	}
	for (const char *p = v; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			reason(why, whycap, "contains a control character");
			return false;
		}
	if (len >= limit) {
		reason(why, whycap, "is too long (%zu octets, at most %zu)",
		    len, limit - 1);
		return false;
	}
	return true;
}

bool
check_socket_path(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	return path_ok(v, sizeof(((struct sockaddr_un *)NULL)->sun_path),
	    why, whycap);
}

bool
check_abs_path(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	return path_ok(v, PATH_MAX, why, whycap);
}

bool
check_group(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	if (strlen(v) > 255 || has_ctl_or_space(v) || strchr(v, ':') != NULL) {
		reason(why, whycap, "is not a group name");
		return false;
	}
	return true;
}

/* Same rule as a group name: passwd(5) fields hold no colon, and a name
 * that is a number would be ambiguous with a UID. */
bool
check_user(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	if (strlen(v) > 255 || has_ctl_or_space(v) || strchr(v, ':') != NULL ||
	    (v[0] != '\0' && strspn(v, "0123456789") == strlen(v))) {
		reason(why, whycap, "is not a user name");
		return false;
	}
	return true;
}

/* RFC 1123 host name: LDH labels of 1..63, at most 253 octets, and a last
 * label that is not all digits (so an IPv4 address is not a host name). */
static bool
hostname_ok(const char *v, size_t len)
{
	size_t label = 0;
	bool digits = true;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '.') {
			if (label == 0 || v[i - 1] == '-')
				return false;
			label = 0;
			digits = true;
			continue;
		}
		if (c >= 0x80 || !(isalnum(c) || c == '-'))
			return false;
		if (c == '-' && label == 0)
			return false;
		if (!isdigit(c))
			digits = false;
		if (++label > 63)
			return false;
	}
	return label > 0 && v[len - 1] != '-' && !digits;
}

bool
check_helo(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	if (v[0] == '\0' || hostname_ok(v, strlen(v)))
		return true;
	reason(why, whycap, "is not a valid host name");
	return false;
}

/* RFC 5321 address literal: [192.0.2.1] or [IPv6:2001:db8::1]. */
static bool
literal_ok(const char *v, size_t len)
{
	char buf[INET6_ADDRSTRLEN + 8];
	unsigned char bin[16];

	if (len < 3 || v[0] != '[' || v[len - 1] != ']' || len - 2 >= sizeof(buf))
		return false;
	memcpy(buf, v + 1, len - 2);
	buf[len - 2] = '\0';
	if (strncasecmp(buf, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, buf + 5, bin) == 1;
	return inet_pton(AF_INET, buf, bin) == 1;
}

/*
 * A sender for MAIL FROM: local@domain, printable ASCII (probed does not
 * speak SMTPUTF8), no spaces or angle brackets, local part at most 64
 * octets, the whole at most 254 (RFC 5321 path limits).
 */
bool
check_mailbox(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	size_t len = strlen(v);
	const char *at;

	if (len == 0)
		return true;
	for (const char *p = v; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>') {
			reason(why, whycap, "is not an address: control characters, "
			    "spaces, angle brackets and non-ASCII are not allowed");
			return false;
		}
	}
	at = strrchr(v, '@');
	if (at == NULL || at == v || at[1] == '\0' || len > 254 || at - v > 64) {
		reason(why, whycap, "is not an address of the form local@domain");
		return false;
	}
	if (!hostname_ok(at + 1, strlen(at + 1)) &&
	    !literal_ok(at + 1, strlen(at + 1))) {
		reason(why, whycap, "does not have a valid domain");
		return false;
	}
	return true;
}

static int
parse_ip(const char *v, unsigned char bin[16])
{
	if (inet_pton(AF_INET, v, bin) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, v, bin) == 1)
		return AF_INET6;
	return -1;
}

bool
check_ip(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	unsigned char bin[16];

	if (parse_ip(v, bin) < 0) {
		reason(why, whycap, "is not an IP address");
		return false;
	}
	return true;
}

/* "IP", "IPv4:port" or "[IPv6]:port": a resolver may listen off port 53. */
bool
check_dns_server(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	unsigned char bin[16];
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL;
	size_t n;

	if (parse_ip(v, bin) >= 0)
		return true;
	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		if (close == NULL || close[1] != ':')
			goto bad;
		n = (size_t)(close - v - 1);
		port = close + 2;
		if (n >= sizeof(host))
			goto bad;
		memcpy(host, v + 1, n);
		host[n] = '\0';
		if (inet_pton(AF_INET6, host, bin) != 1)
			goto bad;
	} else {
		const char *colon = strchr(v, ':');
		if (colon == NULL || strchr(colon + 1, ':') != NULL)
			goto bad;
		n = (size_t)(colon - v);
		port = colon + 1;
		if (n >= sizeof(host))
			goto bad;
		memcpy(host, v, n);
		host[n] = '\0';
		if (inet_pton(AF_INET, host, bin) != 1)
			goto bad;
	}
	char *end;
	unsigned long p = strtoul(port, &end, 10);
	if (port[0] >= '0' && port[0] <= '9' && *end == '\0' && p >= 1 && p <= 65535)
		return true;
bad:
	reason(why, whycap, "is not an IP address, IPv4:port or [IPv6]:port");
	return false;
}

bool
check_ip_or_empty(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	return v[0] == '\0' || check_ip(v, canon, canoncap, why, whycap);
}

/*
 * address[/prefix]; a bare address is a host (/32, /128).  Stored in the
 * canonical form "address/prefix" so users of the list parse one shape.
 */
bool
check_cidr(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	char addr[INET6_ADDRSTRLEN + 1], net[INET6_ADDRSTRLEN];
	unsigned char bin[16];
	const char *slash = strchr(v, '/');
	size_t alen = slash != NULL ? (size_t)(slash - v) : strlen(v);
	unsigned bits, prefix;
	int af;
	bool hostbits = false;

	if (alen == 0 || alen >= sizeof(addr))
		goto bad;
	memcpy(addr, v, alen);
	addr[alen] = '\0';
	if ((af = parse_ip(addr, bin)) < 0)
		goto bad;
	bits = af == AF_INET ? 32 : 128;
	prefix = bits;
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t nd = strspn(p, "0123456789");
		if (nd == 0 || nd > 3 || p[nd] != '\0')
			goto bad;
		prefix = (unsigned)strtoul(p, NULL, 10);
		if (prefix > bits) {
			reason(why, whycap, "has a prefix length out of range 0..%u",
			    bits);
			return false;
		}
	}
	for (unsigned i = 0; i < bits / 8; i++) {
		unsigned keep = prefix >= (i + 1) * 8 ? 8 :
		    prefix > i * 8 ? prefix - i * 8 : 0;
		unsigned char mask = (unsigned char)(0xff00u >> keep);
		if (bin[i] & ~mask)
			hostbits = true;
		bin[i] &= mask;
	}
	if (inet_ntop(af, bin, net, sizeof(net)) == NULL)
		goto bad;
	if (hostbits) {
		reason(why, whycap, "has host bits set (did you mean %s/%u?)",
		    net, prefix);
		return false;
	}
	snprintf(canon, canoncap, "%s/%u", net, prefix);
	return true;
bad:
	reason(why, whycap, "is not a network (address or address/prefix)");
	return false;
}

/*
 * An access(5) action that probed-policy answers Postfix with
 * (`action=<this>`): one line of printable ASCII, at most CONFIG_ACTION_MAX
 * octets, an action word first, and no %-escape but the ones
 * src/policy/policy_action.c expands (%a %r %t %v %%).  Checked here so
 * that a typo is refused when the file loads, not discovered by Postfix
 * while it answers a client.
 */
static const char *const action_words[] = {
	"OK", "DUNNO", "REJECT", "DEFER", "DEFER_IF_REJECT", "DEFER_IF_PERMIT",
	"DISCARD", "HOLD", "WARN", "INFO", "PREPEND", "REDIRECT", "FILTER", "BCC",
	NULL,
};

bool
check_action(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	size_t len = strlen(v), wlen = strcspn(v, " ");
	bool known;

	if (len == 0) {
		reason(why, whycap, "is empty: give an access(5) action such as DUNNO");
		return false;
	}
	if (len > CONFIG_ACTION_MAX) {
		reason(why, whycap, "is too long (%zu octets, at most %d)", len,
		    CONFIG_ACTION_MAX);
		return false;
	}
	for (const char *p = v; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\r' || c == '\n') {
			reason(why, whycap, "contains CR or LF: an action is one line");
			return false;
		}
		if (c < 0x20 || c >= 0x7f) {
			reason(why, whycap, "contains a control character or a non-ASCII "
			    "octet (SMTP replies are ASCII)");
			return false;
		}
	}
	/* 4NN and 5NN: a reply code of Postfix's choosing to reject with. */
	known = wlen == 3 && (v[0] == '4' || v[0] == '5') &&
	    isdigit((unsigned char)v[1]) && isdigit((unsigned char)v[2]);
	for (const char *const *w = action_words; !known && *w != NULL; w++)
		known = strlen(*w) == wlen && strncasecmp(v, *w, wlen) == 0;
	if (!known) {
		reason(why, whycap, "does not start with an access(5) action: OK, DUNNO, "
		    "REJECT, DEFER, DEFER_IF_REJECT, DEFER_IF_PERMIT, DISCARD, HOLD, "
		    "WARN, INFO, PREPEND, REDIRECT, FILTER, BCC, or a 4NN/5NN code");
		return false;
	}
	for (const char *p = v; *p != '\0'; p++) {
		if (*p != '%')
			continue;
		if (p[1] == '\0') {
			reason(why, whycap, "ends in a lone %% (write %%%% for a percent sign)");
			return false;
		}
		if (strchr("artv%", p[1]) == NULL) {
			reason(why, whycap, "has an unknown escape %%%c (known: %%a address, "
			    "%%r reason, %%t server text, %%v verdict, %%%% percent)", p[1]);
			return false;
		}
		p++;
	}
	return true;
}

/* "" stands for the built-in action (policy_rules.c). */
bool
check_action_or_builtin(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	return v[0] == '\0' || check_action(v, canon, canoncap, why, whycap);
}

/* A domain, or ".domain" for every name below it. */
bool
check_domain_pattern(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	const char *d = v[0] == '.' ? v + 1 : v;

	if (!hostname_ok(d, strlen(d))) {
		reason(why, whycap, "is not a domain (example.org, or .example.org "
		    "for the names below it)");
		return false;
	}
	return true;
}

