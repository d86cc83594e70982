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
 * (4294967321 reads as 25).  lex_integers() (config_lex.c) scans the raw
 * text first and remembers such literals, so a key given one reports it as
 * out of range instead of taking the wrapped value.  The checks of string
 * values live in config_check.c.
 *
 * Accounts: the names in socket_allow_users and socket_allow_groups are
 * looked up here, at every load (resolve_accounts()), so that `probed -t`,
 * start-up and SIGHUP refuse a name that is no account, and the daemon
 * never calls NSS while serving.  The other account keys (user, group,
 * socket_owner, socket_group) are looked up where they are used, at start.
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
#include <grp.h>
#include <limits.h>
#include <pwd.h>
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
#include "config_check.h"
#include "config_lex.h"

#define CONFIG_MAX_FILE (1024 * 1024)
#define CONFIG_MAX_NAME 128      /* dotted key path, for messages */
#define DNS_MAX_SERVERS 6        /* udns DNS_MAXSERV */
#define MAX_NETWORKS 1024
#define MAX_DOMAINS 1024
#define MAX_ACCOUNTS 1024        /* socket_allow_users, socket_allow_groups */

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
/* Bare arguments, not parenthesized: each is a whole initializer (a
 * literal, a constant, a function name), and tests/integration/docs.py
 * expands these macros as text to read every key's default. */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
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
/* NOLINTEND(bugprone-macro-parentheses) */

static const struct key keys[] = {
	STR("socket", socket, "/run/probed/probed.sock", false, check_socket_path),
	{ .name = "socket_mode", .type = KT_MODE, .off = OFF(socket_mode),
	  .def_s = "0660", .min = 0, .max = 0777 },
	STR("socket_group", socket_group, "", false, check_group),
	STR("socket_owner", socket_owner, "", false, check_user),
	/* Resolved to IDs at every load (resolve_accounts()); a reload applies
	 * them to connections accepted after it. */
	{ .name = "socket_allow_users", .type = KT_STRLIST,
	  .off = OFF(socket_allow_users), .max = MAX_ACCOUNTS,
	  .check = check_user, .reloadable = true },
	{ .name = "socket_allow_groups", .type = KT_STRLIST,
	  .off = OFF(socket_allow_groups), .max = MAX_ACCOUNTS,
	  .check = check_group, .reloadable = true },
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
	INT("limits.client_inflight", limits.client_inflight, 128, 1, 65536),
	INT("limits.client_idle_timeout", limits.client_idle_timeout, 300, 0, 86400),
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

/* ---- accounts */

static int
cmp_id(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

/* Sort and drop duplicates; returns the new count. */
static size_t
ids_unique(unsigned *v, size_t n)
{
	size_t o = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_id);
	for (size_t i = 1; i < n; i++)
		if (v[i] != v[o])
			v[++o] = v[i];
	return o + 1;
}

/* The ID the kernel shows for a user (or group) a user namespace does not
 * map: /proc/sys/kernel/overflowuid (overflowgid), 65534 unless changed. */
static unsigned
overflow_id(bool is_user)
{
	const char *path = is_user ? "/proc/sys/kernel/overflowuid" :
	    "/proc/sys/kernel/overflowgid";
	unsigned long v = 65534;
	char buf[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n > 0) {
			char *end;
			buf[n] = '\0';
			errno = 0;
			unsigned long x = strtoul(buf, &end, 10);
			if (errno == 0 && end != buf && x <= UINT_MAX)
				v = x;
		}
		close(fd);
	}
	return (unsigned)v;
}

/*
 * Look up every name of one allow list (users when is_user, else groups)
 * into a sorted array of IDs.  An unknown name is an error naming the key,
 * the name and its line: the list decides who may use probed, and a
 * misspelt name that silently matched nobody would lock out the very user
 * it was meant to let in.
 */
static int
resolve_list(struct load *ld, const config_t *lc, const char *key,
    const struct strlist *names, bool is_user, unsigned **out, size_t *nout)
{
	const config_setting_t *s = config_lookup(lc, key);
	char shown[80];
	unsigned *ids;

	*out = NULL;
	*nout = 0;
	if (names->n == 0)
		return 0;
	if ((ids = calloc(names->n, sizeof(*ids))) == NULL) {
		fail(ld, 0, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < names->n; i++) {
		const config_setting_t *e = s != NULL ?
		    config_setting_get_elem(s, (unsigned)i) : NULL;
		unsigned line = e != NULL ? config_setting_source_line(e) : 0;
		const char *name = names->v[i];
		bool found;

		if (line == 0 && s != NULL)
			line = config_setting_source_line(s);
		errno = 0;
		if (is_user) {
			struct passwd *pw = getpwnam(name);
			found = pw != NULL;
			if (found)
				ids[i] = (unsigned)pw->pw_uid;
		} else {
			struct group *gr = getgrnam(name);
			found = gr != NULL;
			if (found)
				ids[i] = (unsigned)gr->gr_gid;
		}
		if (!found) {
			/* getpwnam(3): ENOENT, ESRCH and friends also mean
			 * "no such name"; anything else is the lookup failing. */
			int e2 = errno;
			bool lookup_failed = e2 != 0 && e2 != ENOENT && e2 != ESRCH &&
			    e2 != EBADF && e2 != EPERM;

			if (lookup_failed)
				fail(ld, line, "key '%s': '%s': cannot look it up: %s",
				    key, show(name, shown, sizeof(shown)), strerror(e2));
			else
				fail(ld, line, "key '%s': '%s' is not a known %s", key,
				    show(name, shown, sizeof(shown)), is_user ? "user" : "group");
			free(ids);
			return -1;
		}
		/* Under a user namespace (systemd's PrivateUsers=yes) every
		 * unmapped peer shows as this ID: listing it would let them all
		 * in. */
		if (ids[i] == overflow_id(is_user)) {
			fail(ld, line, "key '%s': '%s' is the kernel's overflow %s %u, "
			    "which every unmapped %s shows as in a user namespace: "
			    "not allowed", key, show(name, shown, sizeof(shown)),
			    is_user ? "UID" : "GID", ids[i], is_user ? "user" : "group");
			free(ids);
			return -1;
		}
	}
	*out = ids;
	*nout = ids_unique(ids, names->n);
	return 0;
}

static int
resolve_accounts(struct load *ld, const config_t *lc)
{
	struct config *cfg = ld->cfg;
	unsigned *v;
	size_t n;

	_Static_assert(sizeof(uid_t) == sizeof(unsigned) && sizeof(gid_t) ==
	    sizeof(unsigned), "uid_t and gid_t are unsigned int");
	if (resolve_list(ld, lc, "socket_allow_users", &cfg->socket_allow_users,
	    true, &v, &n) < 0)
		return -1;
	cfg->allow_uids = (uid_t *)v;
	cfg->n_allow_uids = n;
	if (resolve_list(ld, lc, "socket_allow_groups", &cfg->socket_allow_groups,
	    false, &v, &n) < 0)
		return -1;
	cfg->allow_gids = (gid_t *)v;
	cfg->n_allow_gids = n;
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
	if (walk(&ld, config_root_setting(&lc), NULL) < 0 ||
	    resolve_accounts(&ld, &lc) < 0) {
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
	free(cfg->allow_uids);
	free(cfg->allow_gids);
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
