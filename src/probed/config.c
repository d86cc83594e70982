/*
 * config — probed.conf loader.  See config.h.
 *
 * Owns: the one table of keys (keys[] below).  Loading, defaults, validation,
 * unknown-key detection, config_each_key() and config_restart_keys() are all
 * driven by it; adding a key means adding one row (and documenting it in
 * etc/probed.conf and doc/configuration.md, which a unit test enforces).
 *
 * Limits: the file is read whole and must be a regular file of at most
 * CONFIG_MAX_FILE octets; @include is refused (one file, one error story,
 * and no reading of other files on the daemon's behalf).
 *
 * libconfig 1.5 quirk handled here: an integer literal without the L suffix
 * that does not fit an int is silently truncated by its scanner
 * (4294967321 reads as 25).  lex_integers() scans the raw text first and
 * remembers such literals, so a key given one reports it as out of range
 * instead of taking the wrapped value.
 *
 * Security: values are validated before they reach the struct; every message
 * quotes values through show(), which makes them printable and bounded, so
 * the error stays one line whatever the file contains.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <libconfig.h>

#include "config.h"

#define CONFIG_MAX_FILE (1024 * 1024)
#define CONFIG_MAX_NAME 128      /* dotted key path, for messages */
#define DNS_MAX_SERVERS 6        /* udns DNS_MAXSERV */
#define MAX_NETWORKS 1024
#define MAX_DOMAINS 1024

enum key_type {
	KT_STRING,
	KT_MODE,
	KT_ENUM,
	KT_INT,
	KT_FLOAT,
	KT_STRLIST,
	KT_LEVEL,
	KT_BOOL,
};

static const char *const type_words[] = {
	[KT_STRING] = "string",
	[KT_MODE] = "octal",
	[KT_ENUM] = "enum",
	[KT_INT] = "integer",
	[KT_FLOAT] = "float",
	[KT_STRLIST] = "list",
	[KT_LEVEL] = "level",
	[KT_BOOL] = "boolean",
};

struct word {
	const char *name;
	int value;
};

/*
 * A string check: returns false and a reason ("is not an IP address") that
 * follows the quoted value in the message.  It may write a canonical form
 * into canon (which starts empty); the stored value is then canon.
 */
typedef bool check_fn(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap);

struct key {
	const char *name;
	enum key_type type;
	bool reloadable;
	size_t off;
	const char *def_s;              /* string, mode, enum, level; list:
	                                 * its elements, space-separated */
	long long def_i;                /* int, bool */
	double def_f;                   /* float */
	long long min, max;             /* int, mode; list: max entries */
	double fmin, fmax;              /* float */
	const struct word *words;       /* enum, level; NULL-terminated */
	check_fn *check;                /* string, list element */
};

/* Enum and level targets are written through an int. */
_Static_assert(sizeof(enum starttls_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum policy_verify) == sizeof(int), "enum size");

static check_fn check_socket_path, check_abs_path, check_group, check_user, check_helo,
    check_mailbox, check_ip, check_ip_or_empty, check_cidr, check_dns_server,
    check_action, check_action_or_builtin, check_domain_pattern;

static const struct word starttls_words[] = {
	{ "never", STARTTLS_NEVER },
	{ "opportunistic", STARTTLS_OPPORTUNISTIC },
	{ "required", STARTTLS_REQUIRED },
	{ NULL, 0 },
};

static const struct word verify_words[] = {
	{ "recipient", POLICY_VERIFY_RECIPIENT },
	{ "sender", POLICY_VERIFY_SENDER },
	{ NULL, 0 },
};

static const struct word level_words[] = {
	{ "debug", LOG_DEBUG },
	{ "info", LOG_INFO },
	{ "notice", LOG_NOTICE },
	{ "warning", LOG_WARNING },
	{ "err", LOG_ERR },
	{ NULL, 0 },
};

#define OFF(field) offsetof(struct config, field)
#define STR(n, f, d, r, c) \
	{ .name = n, .type = KT_STRING, .off = OFF(f), .def_s = d, \
	  .reloadable = r, .check = c }
#define INT(n, f, d, lo, hi) \
	{ .name = n, .type = KT_INT, .off = OFF(f), .def_i = d, \
	  .min = lo, .max = hi, .reloadable = true }
#define FLT(n, f, d, lo, hi) \
	{ .name = n, .type = KT_FLOAT, .off = OFF(f), .def_f = d, \
	  .fmin = lo, .fmax = hi, .reloadable = true }
#define BOOL(n, f, d) \
	{ .name = n, .type = KT_BOOL, .off = OFF(f), .def_i = d, .reloadable = true }

static const struct key keys[] = {
	STR("socket", socket, "/run/probed/probed.sock", false, check_socket_path),
	{ .name = "socket_mode", .type = KT_MODE, .off = OFF(socket_mode),
	  .def_s = "0660", .min = 0, .max = 0777 },
	STR("socket_group", socket_group, "", false, check_group),
	/* Privileges are dropped once, at start-up: restart-only. */
	STR("user", user, "", false, check_user),
	STR("group", group, "", false, check_group),
	STR("state_dir", state_dir, "/var/lib/probed", false, check_abs_path),
	STR("helo_name", helo_name, "", true, check_helo),
	STR("mail_from", mail_from, "", true, check_mailbox),
	STR("fallback_mail_from", fallback_mail_from, "", true, check_mailbox),
	{ .name = "log_level", .type = KT_LEVEL, .off = OFF(log_level),
	  .def_s = "info", .words = level_words, .reloadable = true },

	{ .name = "dns.servers", .type = KT_STRLIST, .off = OFF(dns.servers),
	  .max = DNS_MAX_SERVERS, .check = check_dns_server },
	/* udns takes its options only while no query runs: restart-only. */
	{ .name = "dns.timeout", .type = KT_FLOAT, .off = OFF(dns.timeout), .def_f = 3.0,
	  .fmin = 0.1, .fmax = 60, .reloadable = false },
	INT("dns.min_ttl", dns.min_ttl, 60, 0, 86400),
	INT("dns.max_ttl", dns.max_ttl, 86400, 1, 604800),
	INT("dns.negative_ttl", dns.negative_ttl, 900, 0, 86400),
	INT("dns.stale_ttl", dns.stale_ttl, 3600, 0, 604800),
	INT("dns.max_entries", dns.max_entries, 100000, 0, 10000000),

	INT("smtp.port", smtp.port, 25, 1, 65535),
	FLT("smtp.connect_timeout", smtp.connect_timeout, 10.0, 0.1, 300),
	FLT("smtp.greeting_timeout", smtp.greeting_timeout, 30.0, 0.1, 600),
	FLT("smtp.command_timeout", smtp.command_timeout, 30.0, 0.1, 600),
	{ .name = "smtp.starttls", .type = KT_ENUM, .off = OFF(smtp.starttls),
	  .def_s = "opportunistic", .words = starttls_words, .reloadable = true },
	{ .name = "smtp.allow_networks", .type = KT_STRLIST,
	  .off = OFF(smtp.allow_networks), .max = MAX_NETWORKS,
	  .check = check_cidr, .reloadable = true },
	STR("smtp.source_address", smtp.source_address, "", true, check_ip_or_empty),
	INT("smtp.max_mx", smtp.max_mx, 5, 1, 20),
	INT("smtp.max_rcpt_per_session", smtp.max_rcpt_per_session, 20, 1, 100),
	FLT("smtp.greylist_delay", smtp.greylist_delay, 330.0, 1, 86400),
	INT("smtp.greylist_retries", smtp.greylist_retries, 3, 0, 10),

	INT("limits.max_inflight", limits.max_inflight, 10000, 1, 1000000),
	INT("limits.per_host", limits.per_host, 4, 1, 100),
	INT("limits.max_clients", limits.max_clients, 1024, 1, 65536),
	FLT("limits.domain_rate", limits.domain_rate, 2.0, 0.01, 1000),
	INT("limits.domain_burst", limits.domain_burst, 5, 1, 1000),
	FLT("limits.backoff_base", limits.backoff_base, 60.0, 1, 86400),
	FLT("limits.backoff_max", limits.backoff_max, 3600.0, 1, 604800),
	FLT("limits.blocked_backoff", limits.blocked_backoff, 3600.0, 0, 604800),

	INT("cache.positive_ttl", cache.positive_ttl, 604800, 0, 31536000),
	INT("cache.negative_ttl", cache.negative_ttl, 86400, 0, 31536000),
	INT("cache.tempfail_ttl", cache.tempfail_ttl, 300, 0, 86400),
	INT("cache.catch_all_ttl", cache.catch_all_ttl, 86400, 0, 31536000),
	INT("cache.max_entries", cache.max_entries, 1000000, 0, 100000000),
	INT("cache.positive_refresh", cache.positive_refresh, 86400, 0, 31536000),
	INT("cache.negative_refresh", cache.negative_refresh, 10800, 0, 31536000),

	{ .name = "policy.verify", .type = KT_ENUM, .off = OFF(policy.verify),
	  .def_s = "recipient", .words = verify_words, .reloadable = true },
	FLT("policy.wait", policy.wait, 8.0, 0.1, 3600),
	STR("policy.action_deliverable", policy.action_deliverable, "DUNNO", true,
	    check_action),
	/* "": the built-in action for the address verified (policy_rules.c). */
	STR("policy.action_undeliverable", policy.action_undeliverable, "", true,
	    check_action_or_builtin),
	STR("policy.action_risky", policy.action_risky, "DUNNO", true, check_action),
	STR("policy.action_unknown", policy.action_unknown, "DUNNO", true, check_action),
	STR("policy.action_pending", policy.action_pending, "DUNNO", true, check_action),
	STR("policy.on_error", policy.on_error, "DUNNO", true, check_action),
	BOOL("policy.skip_null_sender", policy.skip_null_sender, 1),
	BOOL("policy.skip_sasl", policy.skip_sasl, 1),
	{ .name = "policy.skip_networks", .type = KT_STRLIST,
	  .off = OFF(policy.skip_networks), .def_s = "127.0.0.0/8 ::1/128",
	  .max = MAX_NETWORKS, .check = check_cidr, .reloadable = true },
	{ .name = "policy.skip_domains", .type = KT_STRLIST,
	  .off = OFF(policy.skip_domains), .max = MAX_DOMAINS,
	  .check = check_domain_pattern, .reloadable = true },
};

#undef STR
#undef INT
#undef FLT
#undef BOOL
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* ---- small helpers */

#define TARGET(cfg, k, T) ((T *)(void *)((char *)(cfg) + (k)->off))
#define CTARGET(cfg, k, T) ((const T *)(const void *)((const char *)(cfg) + (k)->off))

/* A value made printable and bounded for a one-line message (cap >= 8). */
static const char *
show(const char *s, char *buf, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		bool esc = c < 0x20 || c >= 0x7f || c == '\'' || c == '\\';

		/* Room for this octet escaped, and for "..." and the NUL. */
		if (o + 4 + 4 > cap) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (esc) {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		} else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
	return buf;
}

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

static bool
check_socket_path(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	return path_ok(v, sizeof(((struct sockaddr_un *)NULL)->sun_path),
	    why, whycap);
}

static bool
check_abs_path(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	return path_ok(v, PATH_MAX, why, whycap);
}

static bool
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
static bool
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

static bool
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
static bool
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

static bool
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
static bool
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

static bool
check_ip_or_empty(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	return v[0] == '\0' || check_ip(v, canon, canoncap, why, whycap);
}

/*
 * address[/prefix]; a bare address is a host (/32, /128).  Stored in the
 * canonical form "address/prefix" so users of the list parse one shape.
 */
static bool
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

static bool
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
static bool
check_action_or_builtin(const char *v, char *canon, size_t canoncap,
    char *why, size_t whycap)
{
	return v[0] == '\0' || check_action(v, canon, canoncap, why, whycap);
}

/* A domain, or ".domain" for every name below it. */
static bool
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

/* ---- raw-text scan for integers libconfig 1.5 would truncate */

struct wide_int {
	unsigned line;          /* line of the setting's name */
	char name[64];          /* the name before the literal */
	char lit[32];           /* the literal as written */
};

struct lexed {
	struct wide_int *v;
	size_t n, cap;
	unsigned include_line;  /* nonzero: an @include was found there */
	unsigned nul_line;      /* nonzero: a NUL octet was found there */
};

static bool
name_start(int c)
{
	return c < 0x80 && (isalpha(c) || c == '*');
}

static bool
name_char(int c)
{
	return c < 0x80 && (isalnum(c) || c == '*' || c == '-' || c == '_');
}

/* Does the integer literal s[0..len) survive libconfig 1.5's scanner? */
static bool
int_literal_fits(const char *s, size_t len, bool *is_int)
{
	char buf[64];
	size_t suffix = 0, i = 0, ndig;
	bool neg = false, sign = false, hex = false;
	unsigned long long u;

	*is_int = false;
	while (suffix < 2 && suffix < len && s[len - 1 - suffix] == 'L')
		suffix++;
	len -= suffix;
	if (i < len && (s[i] == '+' || s[i] == '-')) {
		neg = s[i] == '-';
		sign = true;
		i++;
	}
	if (len - i > 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
		if (sign)
			return true;    /* signed hex: a libconfig syntax error */
		hex = true;
		i += 2;
		ndig = strspn(s + i, "0123456789abcdefABCDEF");
	} else
		ndig = strspn(s + i, "0123456789");
	if (ndig == 0 || i + ndig != len)
		return true;            /* a float or garbage: not ours */
	*is_int = true;
	while (ndig > 1 && s[i] == '0') {
		i++;
		ndig--;
	}
	if (ndig >= sizeof(buf))
		return false;
	memcpy(buf, s + i, ndig);
	buf[ndig] = '\0';
	errno = 0;
	u = strtoull(buf, NULL, hex ? 16 : 10);
	if (errno == ERANGE)
		return false;
	if (suffix > 0)
		return neg ? u <= (unsigned long long)LLONG_MAX + 1 :
		    u <= (unsigned long long)LLONG_MAX;
	if (hex)
		return u <= INT_MAX;
	return neg ? u <= (unsigned long long)INT_MAX + 1 : u <= INT_MAX;
}

static int
lex_record(struct lexed *lx, unsigned line, const char *name, size_t namelen,
    const char *lit, size_t litlen)
{
	struct wide_int *w;

	if (lx->n == lx->cap) {
		size_t ncap = lx->cap ? lx->cap * 2 : 8;
		void *nv = realloc(lx->v, ncap * sizeof(*lx->v));
		if (nv == NULL)
			return -1;
		lx->v = nv;
		lx->cap = ncap;
	}
	w = &lx->v[lx->n++];
	w->line = line;
	snprintf(w->name, sizeof(w->name), "%.*s", (int)namelen, name);
	if (litlen >= sizeof(w->lit))
		snprintf(w->lit, sizeof(w->lit), "%.*s...",
		    (int)sizeof(w->lit) - 4, lit);
	else
		snprintf(w->lit, sizeof(w->lit), "%.*s", (int)litlen, lit);
	return 0;
}

/*
 * A lexer just good enough to tell strings, comments, names and numbers
 * apart the way libconfig's does.  It never rejects anything libconfig
 * would accept; what it does not understand it leaves to libconfig.
 */
static int
lex_integers(const char *s, size_t len, struct lexed *lx)
{
	unsigned line = 1, name_line = 0;
	const char *name = NULL;
	size_t namelen = 0, i = 0;

	while (i < len) {
		char c = s[i];

		if (c == '\0') {
			if (lx->nul_line == 0)
				lx->nul_line = line;
			i++;
		} else if (c == '\n') {
			line++;
			i++;
		} else if (c == '#' || (c == '/' && i + 1 < len && s[i + 1] == '/')) {
			while (i < len && s[i] != '\n')
				i++;
		} else if (c == '/' && i + 1 < len && s[i + 1] == '*') {
			for (i += 2; i < len; i++) {
				if (s[i] == '\n')
					line++;
				else if (s[i] == '*' && i + 1 < len && s[i + 1] == '/') {
					i += 2;
					break;
				}
			}
		} else if (c == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\n')
					line++;
				else if (s[i] == '\\' && i + 1 < len && s[i + 1] != '\n')
					i++;
			}
			i++;
		} else if (c == '@') {
			if (len - i >= 8 && memcmp(s + i, "@include", 8) == 0 &&
			    lx->include_line == 0)
				lx->include_line = line;
			i++;
		} else if (name_start((unsigned char)c)) {
			size_t b = i;
			while (i < len && name_char((unsigned char)s[i]))
				i++;
			name = s + b;
			namelen = i - b;
			name_line = line;
		} else if (isdigit((unsigned char)c) || c == '.' ||
		    ((c == '-' || c == '+') && i + 1 < len &&
		    (isdigit((unsigned char)s[i + 1]) || s[i + 1] == '.'))) {
			size_t b = i++;
			bool is_int;
			while (i < len && (isalnum((unsigned char)s[i]) ||
			    s[i] == '.' || ((s[i] == '-' || s[i] == '+') &&
			    (s[i - 1] == 'e' || s[i - 1] == 'E'))))
				i++;
			if (!int_literal_fits(s + b, i - b, &is_int) && is_int &&
			    lex_record(lx, name != NULL ? name_line : line,
			    name != NULL ? name : "", namelen, s + b, i - b) < 0)
				return -1;
		} else
			i++;
	}
	return 0;
}

static const struct wide_int *
lex_find(const struct lexed *lx, unsigned line, const char *name)
{
	for (size_t i = 0; i < lx->n; i++)
		if (lx->v[i].line == line && strcmp(lx->v[i].name, name) == 0)
			return &lx->v[i];
	return NULL;
}

/* ---- loading */

struct load {
	const char *path;
	char *err;
	size_t errlen;
	struct config *cfg;
	const struct lexed *lx;
};

static void
fail(struct load *ld, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(struct load *ld, unsigned line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (ld->err == NULL || ld->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(ld->err, ld->errlen, "%s:%u: %s", ld->path, line, msg);
	else
		snprintf(ld->err, ld->errlen, "%s: %s", ld->path, msg);
}

static const char *
type_phrase(int t)
{
	switch (t) {
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	default: return "nothing";
	}
}

static const char *
expected_phrase(enum key_type t)
{
	switch (t) {
	case KT_INT: return "an integer";
	case KT_FLOAT: return "a number";
	case KT_STRLIST: return "an array of strings";
	case KT_BOOL: return "a boolean (true or false)";
	default: return "a string";
	}
}

static const struct key *
key_find(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* Is name a group some key lives in ("smtp" for "smtp.port")? */
static bool
group_known(const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < NKEYS; i++)
		if (strncmp(keys[i].name, name, len) == 0 && keys[i].name[len] == '.')
			return true;
	return false;
}

static char *
xstrdup_into(char **slot, const char *v)
{
	char *d = strdup(v);

	if (d == NULL)
		return NULL;
	free(*slot);
	*slot = d;
	return d;
}

static void
strlist_free(struct strlist *l)
{
	if (l->v != NULL)
		for (size_t i = 0; i < l->n; i++)
			free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Always a NULL-terminated vector, even when empty. */
static int
strlist_init(struct strlist *l, size_t n)
{
	l->v = calloc(n + 1, sizeof(*l->v));
	l->n = 0;
	return l->v == NULL ? -1 : 0;
}

static int
words_lookup(const struct word *w, const char *v, int *out)
{
	for (; w->name != NULL; w++)
		if (strcmp(w->name, v) == 0) {
			*out = w->value;
			return 0;
		}
	return -1;
}

static void
words_list(const struct word *w, char *buf, size_t cap)
{
	size_t o = 0;

	buf[0] = '\0';
	for (const struct word *p = w; p->name != NULL && o < cap; p++) {
		int n = snprintf(buf + o, cap - o, "%s%s", p == w ? "" : ", ",
		    p->name);
		if (n < 0)
			break;
		o += (size_t)n;
	}
}

/* Octal digits only ("0660", "660"), value within min..max. */
static int
parse_mode(const char *v, unsigned long *out)
{
	size_t nd = strspn(v, "01234567");

	if (nd == 0 || v[nd] != '\0' || nd > 12)
		return -1;
	*out = strtoul(v, NULL, 8);
	return 0;
}

static int
apply_number(struct load *ld, const struct key *k, const config_setting_t *s,
    const char *name)
{
	unsigned line = config_setting_source_line(s);
	int t = config_setting_type(s);
	const struct wide_int *w;
	long long iv;

	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64 &&
	    !(k->type == KT_FLOAT && t == CONFIG_TYPE_FLOAT)) {
		fail(ld, line, "key '%s': expected %s, got %s", name,
		    expected_phrase(k->type), type_phrase(t));
		return -1;
	}
	/* The scanner truncated this literal; report what the user wrote. */
	if (t != CONFIG_TYPE_FLOAT &&
	    (w = lex_find(ld->lx, line, config_setting_name(s))) != NULL) {
		if (k->type == KT_INT)
			fail(ld, line, "key '%s': %s is out of range %lld..%lld",
			    name, w->lit, k->min, k->max);
		else
			fail(ld, line, "key '%s': %s is out of range %g..%g",
			    name, w->lit, k->fmin, k->fmax);
		return -1;
	}
	iv = t == CONFIG_TYPE_FLOAT ? 0 : config_setting_get_int64(s);
	if (k->type == KT_INT) {
		if (iv < k->min || iv > k->max) {
			fail(ld, line, "key '%s': %lld is out of range %lld..%lld",
			    name, iv, k->min, k->max);
			return -1;
		}
		*TARGET(ld->cfg, k, unsigned) = (unsigned)iv;
	} else {
		double d = t == CONFIG_TYPE_FLOAT ? config_setting_get_float(s) :
		    (double)iv;
		/* Written so that NaN fails too. */
		if (!(d >= k->fmin && d <= k->fmax)) {
			fail(ld, line, "key '%s': %g is out of range %g..%g",
			    name, d, k->fmin, k->fmax);
			return -1;
		}
		*TARGET(ld->cfg, k, double) = d;
	}
	return 0;
}

static int
apply_strlist(struct load *ld, const struct key *k, const config_setting_t *s,
    const char *name)
{
	unsigned line = config_setting_source_line(s);
	int t = config_setting_type(s);
	struct strlist *l = TARGET(ld->cfg, k, struct strlist);
	char shown[80], why[160], canon[128];
	int n;

	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
		fail(ld, line, "key '%s': expected %s, got %s", name,
		    expected_phrase(k->type), type_phrase(t));
		return -1;
	}
	n = config_setting_length(s);
	if (n > k->max) {
		fail(ld, line, "key '%s': %d entries, at most %lld allowed",
		    name, n, k->max);
		return -1;
	}
	strlist_free(l);
	if (strlist_init(l, (size_t)n) < 0) {
		fail(ld, 0, "out of memory");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		unsigned eline = config_setting_source_line(e);
		const char *v;

		if (eline == 0)
			eline = line;
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			fail(ld, eline, "key '%s': element %d: expected a string, "
			    "got %s", name, i + 1, type_phrase(config_setting_type(e)));
			return -1;
		}
		v = config_setting_get_string(e);
		canon[0] = '\0';
		if (k->check != NULL &&
		    !k->check(v, canon, sizeof(canon), why, sizeof(why))) {
			fail(ld, eline, "key '%s': '%s' %s", name,
			    show(v, shown, sizeof(shown)), why);
			return -1;
		}
		if ((l->v[i] = strdup(canon[0] != '\0' ? canon : v)) == NULL) {
			fail(ld, 0, "out of memory");
			return -1;
		}
		l->n++;
	}
	return 0;
}

static int
apply(struct load *ld, const struct key *k, const config_setting_t *s,
    const char *name)
{
	unsigned line = config_setting_source_line(s);
	char shown[80], why[160], canon[128], words[128];
	unsigned long mode;
	const char *v;
	int iv;

	switch (k->type) {
	case KT_INT:
	case KT_FLOAT:
		return apply_number(ld, k, s, name);
	case KT_STRLIST:
		return apply_strlist(ld, k, s, name);
	case KT_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
			fail(ld, line, "key '%s': expected %s, got %s", name,
			    expected_phrase(k->type), type_phrase(config_setting_type(s)));
			return -1;
		}
		*TARGET(ld->cfg, k, bool) = config_setting_get_bool(s) != 0;
		return 0;
	case KT_STRING:
	case KT_MODE:
	case KT_ENUM:
	case KT_LEVEL:
		break;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		fail(ld, line, "key '%s': expected %s, got %s", name,
		    expected_phrase(k->type), type_phrase(config_setting_type(s)));
		return -1;
	}
	v = config_setting_get_string(s);
	show(v, shown, sizeof(shown));
	switch (k->type) {
	case KT_STRING:
		canon[0] = '\0';
		if (k->check != NULL &&
		    !k->check(v, canon, sizeof(canon), why, sizeof(why))) {
			fail(ld, line, "key '%s': '%s' %s", name, shown, why);
			return -1;
		}
		if (xstrdup_into(TARGET(ld->cfg, k, char *),
		    canon[0] != '\0' ? canon : v) == NULL) {
			fail(ld, 0, "out of memory");
			return -1;
		}
		return 0;
	case KT_MODE:
		if (parse_mode(v, &mode) < 0) {
			fail(ld, line, "key '%s': '%s' is not an octal mode",
			    name, shown);
			return -1;
		}
		if ((long long)mode < k->min || (long long)mode > k->max) {
			fail(ld, line, "key '%s': '%s' is out of range %#llo..%#llo",
			    name, shown, (unsigned long long)k->min,
			    (unsigned long long)k->max);
			return -1;
		}
		*TARGET(ld->cfg, k, unsigned) = (unsigned)mode;
		return 0;
	default:
		if (words_lookup(k->words, v, &iv) < 0) {
			words_list(k->words, words, sizeof(words));
			fail(ld, line, "key '%s': '%s' is not one of %s", name,
			    shown, words);
			return -1;
		}
		*TARGET(ld->cfg, k, int) = iv;
		return 0;
	}
}

static int
walk(struct load *ld, const config_setting_t *group, const char *prefix)
{
	int n = config_setting_length(group);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group,
		    (unsigned)i);
		const char *leaf = config_setting_name(s);
		unsigned line = config_setting_source_line(s);
		char name[CONFIG_MAX_NAME], shown[CONFIG_MAX_NAME];
		const struct key *k;
		int len;

		if (leaf == NULL)
			leaf = "";
		len = prefix != NULL ?
		    snprintf(name, sizeof(name), "%s.%s", prefix, leaf) :
		    snprintf(name, sizeof(name), "%s", leaf);
		if (len < 0 || (size_t)len >= sizeof(name)) {
			fail(ld, line, "unknown key '%s'",
			    show(name, shown, sizeof(shown)));
			return -1;
		}
		if ((k = key_find(name)) != NULL) {
			if (apply(ld, k, s, name) < 0)
				return -1;
		} else if (group_known(name)) {
			if (!config_setting_is_group(s)) {
				fail(ld, line, "key '%s': expected a group, got %s",
				    name, type_phrase(config_setting_type(s)));
				return -1;
			}
			if (walk(ld, s, name) < 0)
				return -1;
		} else {
			fail(ld, line, "unknown key '%s'",
			    show(name, shown, sizeof(shown)));
			return -1;
		}
	}
	return 0;
}

/* Read the whole file, bounded; NULL with *why saying what went wrong. */
static char *
read_file(const char *path, size_t *lenp, const char **why)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		*why = strerror(errno);
		return NULL;
	}
	if (fstat(fd, &st) < 0)
		goto fail;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		*why = "not a regular file";
		return NULL;
	}
	if ((buf = malloc(CONFIG_MAX_FILE + 1)) == NULL)
		goto fail;
	for (;;) {
		ssize_t r = read(fd, buf + len, CONFIG_MAX_FILE + 1 - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > CONFIG_MAX_FILE) {
			errno = EFBIG;
			goto fail;
		}
	}
	buf[len] = '\0';
	close(fd);
	*lenp = len;
	return buf;
fail:
	saved = errno;
	free(buf);
	close(fd);
	*why = strerror(saved);
	return NULL;
}

/* A list's default: def_s split at spaces, each element stored as its
 * check writes it (the table's defaults are canonical already). */
static int
default_strlist(struct strlist *l, const struct key *k)
{
	const char *p = k->def_s != NULL ? k->def_s : "";
	size_t n = 0;

	for (const char *q = p; *q != '\0'; q += strspn(q, " "))
		if (*q != ' ') {
			n++;
			q += strcspn(q, " ");
		}
	if (strlist_init(l, n) < 0)
		return -1;
	while (*(p += strspn(p, " ")) != '\0') {
		size_t len = strcspn(p, " ");

		if ((l->v[l->n] = strndup(p, len)) == NULL)
			return -1;
		l->n++;
		p += len;
	}
	return 0;
}

static int
set_default(struct config *cfg, const struct key *k)
{
	switch (k->type) {
	case KT_STRING:
		return xstrdup_into(TARGET(cfg, k, char *), k->def_s) ? 0 : -1;
	case KT_MODE: {
		unsigned long mode = 0;
		(void)parse_mode(k->def_s, &mode);
		*TARGET(cfg, k, unsigned) = (unsigned)mode;
		return 0;
	}
	case KT_ENUM:
	case KT_LEVEL: {
		int v = 0;
		(void)words_lookup(k->words, k->def_s, &v);
		*TARGET(cfg, k, int) = v;
		return 0;
	}
	case KT_INT:
		*TARGET(cfg, k, unsigned) = (unsigned)k->def_i;
		return 0;
	case KT_FLOAT:
		*TARGET(cfg, k, double) = k->def_f;
		return 0;
	case KT_BOOL:
		*TARGET(cfg, k, bool) = k->def_i != 0;
		return 0;
	case KT_STRLIST:
		return default_strlist(TARGET(cfg, k, struct strlist), k);
	}
	return -1;
}

struct config *
config_defaults(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));

	if (cfg == NULL)
		return NULL;
	for (size_t i = 0; i < NKEYS; i++)
		if (set_default(cfg, &keys[i]) < 0) {
			config_free(cfg);
			return NULL;
		}
	return cfg;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct load ld = { .path = path, .err = err, .errlen = errlen };
	struct lexed lx = { 0 };
	struct config *cfg = NULL;
	const char *why = "";
	config_t lc;
	size_t len;
	char *text;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((text = read_file(path, &len, &why)) == NULL) {
		fail(&ld, 0, "cannot read: %s", why);
		return NULL;
	}
	if (lex_integers(text, len, &lx) < 0) {
		fail(&ld, 0, "out of memory");
		goto out_text;
	}
	if (lx.nul_line != 0) {
		fail(&ld, lx.nul_line, "syntax error: NUL octet in file");
		goto out_text;
	}
	if (lx.include_line != 0) {
		fail(&ld, lx.include_line, "syntax error: @include is not supported");
		goto out_text;
	}
	ld.lx = &lx;

	config_init(&lc);
	if (config_read_string(&lc, text) != CONFIG_TRUE) {
		fail(&ld, (unsigned)config_error_line(&lc), "syntax error: %s",
		    config_error_text(&lc) != NULL ? config_error_text(&lc) :
		    "unknown error");
		goto out_lc;
	}
	if ((cfg = config_defaults()) == NULL ||
	    (cfg->path = strdup(path)) == NULL) {
		fail(&ld, 0, "out of memory");
		config_free(cfg);
		cfg = NULL;
		goto out_lc;
	}
	ld.cfg = cfg;
	if (walk(&ld, config_root_setting(&lc), NULL) < 0) {
		config_free(cfg);
		cfg = NULL;
	}
out_lc:
	config_destroy(&lc);
out_text:
	free(lx.v);
	free(text);
	return cfg;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		if (k->type == KT_STRING)
			free(*TARGET(cfg, k, char *));
		else if (k->type == KT_STRLIST)
			strlist_free(TARGET(cfg, k, struct strlist));
	}
	free(cfg->path);
	free(cfg);
}

static bool
key_equal(const struct key *k, const struct config *a, const struct config *b)
{
	switch (k->type) {
	case KT_STRING: {
		const char *x = *CTARGET(a, k, char *), *y = *CTARGET(b, k, char *);
		return strcmp(x != NULL ? x : "", y != NULL ? y : "") == 0;
	}
	case KT_MODE:
	case KT_INT:
		return *CTARGET(a, k, unsigned) == *CTARGET(b, k, unsigned);
	case KT_ENUM:
	case KT_LEVEL:
		return *CTARGET(a, k, int) == *CTARGET(b, k, int);
	case KT_FLOAT:
		return *CTARGET(a, k, double) == *CTARGET(b, k, double);
	case KT_BOOL:
		return *CTARGET(a, k, bool) == *CTARGET(b, k, bool);
	case KT_STRLIST: {
		const struct strlist *x = CTARGET(a, k, struct strlist);
		const struct strlist *y = CTARGET(b, k, struct strlist);
		if (x->n != y->n)
			return false;
		for (size_t i = 0; i < x->n; i++)
			if (strcmp(x->v[i], y->v[i]) != 0)
				return false;
		return true;
	}
	}
	return false;
}

size_t
config_restart_keys(const struct config *old, const struct config *new_cfg,
    char *names, size_t cap)
{
	size_t count = 0, o = 0;

	if (names != NULL && cap > 0)
		names[0] = '\0';
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		size_t need;

		if (k->reloadable || key_equal(k, old, new_cfg))
			continue;
		count++;
		if (names == NULL)
			continue;
		/* Whole names only: a cut name would name a different key. */
		need = strlen(k->name) + (o > 0 ? 1 : 0);
		if (o + need < cap) {
			snprintf(names + o, cap - o, "%s%s", o > 0 ? "," : "",
			    k->name);
			o += need;
		}
	}
	return count;
}

/* A float default as a libconfig float literal: 3 -> "3.0", 0.1 -> "0.1". */
static void
float_text(double d, char *buf, size_t cap)
{
	snprintf(buf, cap, "%g", d);
	if (strpbrk(buf, ".en") == NULL && strlen(buf) + 2 < cap)
		strcat(buf, ".0");
}

/* A list default as written in a file: [ ], [ "a", "b" ]. */
static void
list_text(const char *def, char *buf, size_t cap)
{
	size_t o = 0;
	const char *p = def != NULL ? def : "";
	int n;

	buf[0] = '\0';
	while (*(p += strspn(p, " ")) != '\0') {
		size_t len = strcspn(p, " ");

		n = snprintf(buf + o, cap - o, "%s\"%.*s\"", o == 0 ? "[ " : ", ",
		    (int)len, p);
		if (n < 0 || (size_t)n >= cap - o)
			return;
		o += (size_t)n;
		p += len;
	}
	snprintf(buf + o, cap - o, "%s", o == 0 ? "[ ]" : " ]");
}

void
config_each_key(void (*fn)(const char *name, const char *type,
    const char *default_text, bool reloadable, void *ctx), void *ctx)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		char text[320];

		switch (k->type) {
		case KT_STRING:
		case KT_MODE:
		case KT_ENUM:
		case KT_LEVEL:
			snprintf(text, sizeof(text), "\"%s\"", k->def_s);
			break;
		case KT_INT:
			snprintf(text, sizeof(text), "%lld", k->def_i);
			break;
		case KT_FLOAT:
			float_text(k->def_f, text, sizeof(text));
			break;
		case KT_STRLIST:
			list_text(k->def_s, text, sizeof(text));
			break;
		case KT_BOOL:
			snprintf(text, sizeof(text), "%s", k->def_i ? "true" : "false");
			break;
		}
		fn(k->name, type_words[k->type], text, k->reloadable, ctx);
	}
}
