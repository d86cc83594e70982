/*
 * test_config — probed.conf loading (src/probed/config.c): defaults, the
 * shipped sample file and docs kept in step with the key table, every
 * error class with its exact "FILE:LINE: ..." message, range boundaries,
 * value syntax (octal modes, IP addresses, CIDR networks, host names,
 * senders), and restart-key detection.
 *
 * Files are written into a fresh mkdtemp() directory that the group
 * teardown removes.  TEST_SRCDIR is the source tree (etc/, doc/,
 * tests/unit/data/).
 */
#include "autoconfig.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "config.h"

#ifndef TEST_SRCDIR
#error "TEST_SRCDIR must name the source tree"
#endif

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		print_error("check failed: %s\n", #cond); \
		fail_msg(__VA_ARGS__); \
	} \
} while (0)

/* snprintf into an array, failing the test rather than truncating. */
#define FMT(buf, ...) do { \
	int fmt_n_ = snprintf((buf), sizeof(buf), __VA_ARGS__); \
	assert_true(fmt_n_ >= 0 && (size_t)fmt_n_ < sizeof(buf)); \
} while (0)

static char tmpdir[PATH_MAX];
static char last_path[PATH_MAX];   /* file written by the last load_text() */
static unsigned file_seq;

/* ---- fixtures */

static int
group_setup(void **state)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_config.XXXXXX",
	    base != NULL && base[0] != '\0' ? base : "/tmp");
	return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

/* The directory is flat: files and one FIFO. */
static int
group_teardown(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char path[PATH_MAX + 256];
	int rc = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		if (unlink(path) < 0)
			rc = -1;
	}
	closedir(d);
	return rmdir(tmpdir) < 0 ? -1 : rc;
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Write text into a new file in tmpdir; its path is left in last_path. */
static const char *
new_file_n(const char *text, size_t len)
{
	FMT(last_path, "%s/c%u.conf", tmpdir, ++file_seq);
	write_file(last_path, text, len);
	return last_path;
}

static const char *
new_file(const char *text)
{
	return new_file_n(text, strlen(text));
}

static struct config *
load_text(const char *text, char *err, size_t errlen)
{
	return config_load(new_file(text), err, errlen);
}

static struct config *
load_ok(const char *text)
{
	char err[512] = "";
	struct config *cfg = load_text(text, err, sizeof(err));

	CHECK(cfg != NULL, "unexpected error for <<%s>>: %s", text, err);
	return cfg;
}

/* Loading text fails with exactly "FILE:LINE: msg". */
static void
expect_error(const char *text, unsigned line, const char *msg)
{
	char err[512] = "", want[1024];
	struct config *cfg = load_text(text, err, sizeof(err));

	if (cfg != NULL) {
		config_free(cfg);
		fail_msg("<<%s>> loaded, expected error: %s", text, msg);
	}
	FMT(want, "%s:%u: %s", last_path, line, msg);
	CHECK(strcmp(err, want) == 0, "for <<%s>>\n  got  %s\n  want %s",
	    text, err, want);
}

/* Loading fails; the message (after FILE:LINE: ) starts with prefix. */
static void
expect_error_prefix(const char *text, const char *prefix)
{
	char err[512] = "";
	struct config *cfg = load_text(text, err, sizeof(err));
	size_t plen = strlen(last_path);

	if (cfg != NULL) {
		config_free(cfg);
		fail_msg("<<%s>> loaded, expected error: %s", text, prefix);
	}
	CHECK(strncmp(err, last_path, plen) == 0 && err[plen] == ':',
	    "error does not name the file: %s", err);
	const char *msg = strchr(err + plen + 1, ':');
	CHECK(msg != NULL && strncmp(msg + 2, prefix, strlen(prefix)) == 0,
	    "for <<%s>>\n  got  %s\n  want ...: %s...", text, err, prefix);
}

static char *
read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	CHECK(f != NULL, "cannot open %s: %s", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Every field of two configurations, so a new field cannot be missed by
 * one comparison and caught by another. */
static void
assert_config_equal(const struct config *a, const struct config *b)
{
	assert_string_equal(a->socket, b->socket);
	assert_int_equal(a->socket_mode, b->socket_mode);
	assert_string_equal(a->socket_group, b->socket_group);
	assert_string_equal(a->user, b->user);
	assert_string_equal(a->group, b->group);
	assert_string_equal(a->state_dir, b->state_dir);
	assert_string_equal(a->helo_name, b->helo_name);
	assert_string_equal(a->mail_from, b->mail_from);
	assert_string_equal(a->fallback_mail_from, b->fallback_mail_from);
	assert_int_equal(a->log_level, b->log_level);
	assert_int_equal(a->dns.servers.n, b->dns.servers.n);
	for (size_t i = 0; i < a->dns.servers.n; i++)
		assert_string_equal(a->dns.servers.v[i], b->dns.servers.v[i]);
	assert_true(a->dns.timeout == b->dns.timeout);
	assert_int_equal(a->smtp.port, b->smtp.port);
	assert_true(a->smtp.connect_timeout == b->smtp.connect_timeout);
	assert_true(a->smtp.greeting_timeout == b->smtp.greeting_timeout);
	assert_true(a->smtp.command_timeout == b->smtp.command_timeout);
	assert_int_equal(a->smtp.starttls, b->smtp.starttls);
	assert_int_equal(a->smtp.allow_networks.n, b->smtp.allow_networks.n);
	for (size_t i = 0; i < a->smtp.allow_networks.n; i++)
		assert_string_equal(a->smtp.allow_networks.v[i],
		    b->smtp.allow_networks.v[i]);
	assert_string_equal(a->smtp.source_address, b->smtp.source_address);
	assert_int_equal(a->smtp.max_mx, b->smtp.max_mx);
	assert_int_equal(a->smtp.max_rcpt_per_session, b->smtp.max_rcpt_per_session);
	assert_int_equal(a->limits.max_inflight, b->limits.max_inflight);
	assert_int_equal(a->limits.per_host, b->limits.per_host);
	assert_int_equal(a->limits.max_clients, b->limits.max_clients);
	assert_int_equal(a->cache.positive_ttl, b->cache.positive_ttl);
	assert_int_equal(a->cache.negative_ttl, b->cache.negative_ttl);
	assert_int_equal(a->cache.tempfail_ttl, b->cache.tempfail_ttl);
	assert_int_equal(a->cache.catch_all_ttl, b->cache.catch_all_ttl);
	assert_int_equal(a->cache.max_entries, b->cache.max_entries);
	assert_int_equal(a->policy.verify, b->policy.verify);
	assert_true(a->policy.wait == b->policy.wait);
	assert_string_equal(a->policy.action_deliverable, b->policy.action_deliverable);
	assert_string_equal(a->policy.action_undeliverable,
	    b->policy.action_undeliverable);
	assert_string_equal(a->policy.action_risky, b->policy.action_risky);
	assert_string_equal(a->policy.action_unknown, b->policy.action_unknown);
	assert_string_equal(a->policy.action_pending, b->policy.action_pending);
	assert_string_equal(a->policy.on_error, b->policy.on_error);
	assert_int_equal(a->policy.skip_null_sender, b->policy.skip_null_sender);
	assert_int_equal(a->policy.skip_sasl, b->policy.skip_sasl);
	assert_int_equal(a->policy.skip_networks.n, b->policy.skip_networks.n);
	for (size_t i = 0; i < a->policy.skip_networks.n; i++)
		assert_string_equal(a->policy.skip_networks.v[i],
		    b->policy.skip_networks.v[i]);
	assert_int_equal(a->policy.skip_domains.n, b->policy.skip_domains.n);
	for (size_t i = 0; i < a->policy.skip_domains.n; i++)
		assert_string_equal(a->policy.skip_domains.v[i],
		    b->policy.skip_domains.v[i]);
}

/* ---- defaults and the key table */

static void
test_defaults(void **state)
{
	struct config *c = config_defaults();

	assert_non_null(c);
	assert_null(c->path);
	assert_string_equal(c->socket, "/run/probed/probed.sock");
	assert_int_equal(c->socket_mode, 0660);
	assert_string_equal(c->socket_group, "");
	/* No account by default: started as root, probed refuses to run. */
	assert_string_equal(c->user, "");
	assert_string_equal(c->group, "");
	assert_string_equal(c->state_dir, "/var/lib/probed");
	assert_string_equal(c->helo_name, "");
	assert_string_equal(c->mail_from, "");
	assert_string_equal(c->fallback_mail_from, "");
	assert_int_equal(c->log_level, LOG_INFO);
	/* The clients knock where the daemon listens by default. */
	assert_string_equal(c->socket, CTL_DEFAULT_SOCKET);
	assert_int_equal(c->dns.servers.n, 0);
	assert_non_null(c->dns.servers.v);
	assert_null(c->dns.servers.v[0]);
	assert_true(c->dns.timeout == 3.0);
	assert_int_equal(c->smtp.port, 25);
	assert_true(c->smtp.connect_timeout == 10.0);
	assert_true(c->smtp.greeting_timeout == 30.0);
	assert_true(c->smtp.command_timeout == 30.0);
	assert_int_equal(c->smtp.starttls, STARTTLS_OPPORTUNISTIC);
	assert_int_equal(c->smtp.allow_networks.n, 0);
	assert_string_equal(c->smtp.source_address, "");
	assert_int_equal(c->smtp.max_mx, 5);
	assert_int_equal(c->smtp.max_rcpt_per_session, 20);
	assert_int_equal(c->limits.max_inflight, 10000);
	assert_int_equal(c->limits.per_host, 4);
	assert_int_equal(c->limits.max_clients, 1024);
	assert_int_equal(c->cache.positive_ttl, 604800);
	assert_int_equal(c->cache.negative_ttl, 86400);
	assert_int_equal(c->cache.tempfail_ttl, 300);
	assert_int_equal(c->cache.catch_all_ttl, 86400);
	assert_int_equal(c->cache.max_entries, 1000000);
	assert_int_equal(c->policy.verify, POLICY_VERIFY_RECIPIENT);
	assert_true(c->policy.wait == 8.0);
	/* Mail keeps flowing unless probed says a mailbox does not exist. */
	assert_string_equal(c->policy.action_deliverable, "DUNNO");
	assert_string_equal(c->policy.action_undeliverable, "");
	assert_string_equal(c->policy.action_risky, "DUNNO");
	assert_string_equal(c->policy.action_unknown, "DUNNO");
	assert_string_equal(c->policy.action_pending, "DUNNO");
	assert_string_equal(c->policy.on_error, "DUNNO");
	assert_true(c->policy.skip_null_sender);
	assert_true(c->policy.skip_sasl);
	assert_int_equal(c->policy.skip_networks.n, 2);
	assert_string_equal(c->policy.skip_networks.v[0], "127.0.0.0/8");
	assert_string_equal(c->policy.skip_networks.v[1], "::1/128");
	assert_null(c->policy.skip_networks.v[2]);
	assert_int_equal(c->policy.skip_domains.n, 0);
	assert_null(c->policy.skip_domains.v[0]);
	config_free(c);
	config_free(NULL);
}

static void
test_empty_file_is_defaults(void **state)
{
	struct config *d = config_defaults();
	struct config *c = load_ok("# nothing but a comment\n");

	assert_non_null(d);
	assert_config_equal(c, d);
	assert_string_equal(c->path, last_path);
	config_free(c);
	config_free(d);
}

struct keyinfo {
	char name[64], type[16], def[64];
	bool reloadable;
};

struct keylist {
	struct keyinfo k[64];
	size_t n;
};

static void
collect_key(const char *name, const char *type, const char *def,
    bool reloadable, void *ctx)
{
	struct keylist *l = ctx;

	assert_true(l->n < sizeof(l->k) / sizeof(l->k[0]));
	assert_true(strlen(name) < sizeof(l->k[0].name));
	assert_true(strlen(def) < sizeof(l->k[0].def));
	snprintf(l->k[l->n].name, sizeof(l->k[0].name), "%s", name);
	snprintf(l->k[l->n].type, sizeof(l->k[0].type), "%s", type);
	snprintf(l->k[l->n].def, sizeof(l->k[0].def), "%s", def);
	l->k[l->n].reloadable = reloadable;
	l->n++;
}

static const struct keyinfo *
keyinfo_find(const struct keylist *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->k[i].name, name) == 0)
			return &l->k[i];
	return NULL;
}

static void
test_each_key(void **state)
{
	static const char *const restart[] = {
		"socket", "socket_mode", "socket_group", "socket_owner", "user", "group",
		"state_dir", "dns.servers", "dns.timeout",
	};
	static const char *const types[] = {
		"string", "octal", "enum", "integer", "float", "list", "level",
		"boolean",
	};
	struct keylist l = { .n = 0 };
	size_t nrestart = 0;

	config_each_key(collect_key, &l);
	assert_int_equal(l.n, 60);
	for (size_t i = 0; i < l.n; i++) {
		bool known_type = false, want_restart = false;

		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(l.k[i].name, l.k[j].name) != 0,
			    "key %s listed twice", l.k[i].name);
		for (size_t j = 0; j < sizeof(types) / sizeof(types[0]); j++)
			known_type |= strcmp(l.k[i].type, types[j]) == 0;
		CHECK(known_type, "key %s has type %s", l.k[i].name, l.k[i].type);
		for (size_t j = 0; j < sizeof(restart) / sizeof(restart[0]); j++)
			want_restart |= strcmp(l.k[i].name, restart[j]) == 0;
		CHECK(l.k[i].reloadable == !want_restart, "key %s reloadable=%d",
		    l.k[i].name, l.k[i].reloadable);
		nrestart += !l.k[i].reloadable;
	}
	assert_int_equal(nrestart, sizeof(restart) / sizeof(restart[0]));

	/* Default texts as a user would write them. */
	assert_string_equal(keyinfo_find(&l, "socket_mode")->def, "\"0660\"");
	assert_string_equal(keyinfo_find(&l, "socket_mode")->type, "octal");
	assert_string_equal(keyinfo_find(&l, "dns.servers")->def, "[ ]");
	assert_string_equal(keyinfo_find(&l, "dns.servers")->type, "list");
	assert_string_equal(keyinfo_find(&l, "dns.timeout")->def, "3.0");
	assert_string_equal(keyinfo_find(&l, "dns.timeout")->type, "float");
	assert_string_equal(keyinfo_find(&l, "smtp.port")->def, "25");
	assert_string_equal(keyinfo_find(&l, "smtp.port")->type, "integer");
	assert_string_equal(keyinfo_find(&l, "smtp.starttls")->def,
	    "\"opportunistic\"");
	assert_string_equal(keyinfo_find(&l, "smtp.starttls")->type, "enum");
	assert_string_equal(keyinfo_find(&l, "log_level")->type, "level");
	assert_string_equal(keyinfo_find(&l, "helo_name")->def, "\"\"");
	assert_string_equal(keyinfo_find(&l, "policy.wait")->def, "8.0");
	assert_string_equal(keyinfo_find(&l, "policy.skip_sasl")->def, "true");
	assert_string_equal(keyinfo_find(&l, "policy.skip_sasl")->type, "boolean");
	assert_string_equal(keyinfo_find(&l, "policy.skip_networks")->def,
	    "[ \"127.0.0.0/8\", \"::1/128\" ]");
	assert_string_equal(keyinfo_find(&l, "policy.skip_domains")->def, "[ ]");
	assert_string_equal(keyinfo_find(&l, "policy.action_undeliverable")->def,
	    "\"\"");
}

/* Each default text, written into a file on its own, loads and gives the
 * built-in default: the table's two views of a default agree. */
static void
test_default_texts_load(void **state)
{
	struct keylist l = { .n = 0 };
	struct config *d = config_defaults();

	assert_non_null(d);
	config_each_key(collect_key, &l);
	for (size_t i = 0; i < l.n; i++) {
		char text[256];
		const char *dot = strchr(l.k[i].name, '.');

		if (dot != NULL)
			snprintf(text, sizeof(text), "%.*s: { %s = %s; };\n",
			    (int)(dot - l.k[i].name), l.k[i].name, dot + 1,
			    l.k[i].def);
		else
			snprintf(text, sizeof(text), "%s = %s;\n", l.k[i].name,
			    l.k[i].def);
		struct config *c = load_ok(text);
		assert_config_equal(c, d);
		config_free(c);
	}
	config_free(d);
}

/* ---- the sample configuration and the docs */

struct sample_entry {
	char name[64];
	char value[128];
	bool commented;
};

/*
 * Reads etc/probed.conf the way a person does: a `group:` line (with its
 * `{` on the same or the next line) opens a group, `};` closes it, and a
 * `key = value;` line is a key whose comment is the # line just above.
 */
static size_t
parse_sample(const char *text, struct sample_entry *out, size_t cap)
{
	char group[64] = "", prev[8] = "";
	size_t n = 0;
	const char *line = text;

	while (*line != '\0') {
		const char *eol = strchr(line, '\n');
		size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
		char buf[512], *p, *q;

		assert_true(len < sizeof(buf));
		memcpy(buf, line, len);
		buf[len] = '\0';
		line += len + (eol != NULL ? 1 : 0);

		for (p = buf; *p == ' ' || *p == '\t'; p++)
			;
		if (*p == '\0') {
			prev[0] = '\0';
			continue;
		}
		if (*p == '#') {
			snprintf(prev, sizeof(prev), "#");
			continue;
		}
		if (strncmp(p, "};", 2) == 0) {
			group[0] = '\0';
			prev[0] = '\0';
			continue;
		}
		if (strcmp(p, "{") == 0) {
			prev[0] = '\0';
			continue;
		}
		q = p + strcspn(p, " \t=:");
		size_t nlen = (size_t)(q - p);
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == ':') {
			CHECK(group[0] == '\0', "nested group in sample: %s", buf);
			snprintf(group, sizeof(group), "%.*s", (int)nlen, p);
			prev[0] = '\0';
			continue;
		}
		CHECK(*q == '=', "sample line not understood: %s", buf);
		for (q++; *q == ' ' || *q == '\t'; q++)
			;
		char *semi = strrchr(q, ';');
		CHECK(semi != NULL, "sample line without ';': %s", buf);
		assert_true(n < cap);
		FMT(out[n].name, "%s%s%.*s", group,
		    group[0] != '\0' ? "." : "", (int)nlen, p);
		snprintf(out[n].value, sizeof(out[n].value), "%.*s",
		    (int)(semi - q), q);
		out[n].commented = prev[0] == '#';
		prev[0] = '\0';
		n++;
	}
	return n;
}

struct sample_ctx {
	struct sample_entry e[64];
	size_t n;
	size_t seen;
};

/*
 * The keys the sample deliberately sets away from the built-in default,
 * with the value it must set: the installed file names the account the
 * package creates, so `probed` started as root by hand drops to it, while
 * a file without `user` keeps refusing to run as root.
 */
static const struct {
	const char *name, *value;
} sample_not_default[] = {
	{ "user", "\"probed\"" },
};

static const char *
sample_value(const char *name, const char *def)
{
	for (size_t i = 0; i < sizeof(sample_not_default) /
	    sizeof(sample_not_default[0]); i++)
		if (strcmp(sample_not_default[i].name, name) == 0)
			return sample_not_default[i].value;
	return def;
}

static void
check_sample_key(const char *name, const char *type, const char *def,
    bool reloadable, void *ctx)
{
	struct sample_ctx *s = ctx;

	s->seen++;
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->e[i].name, name) != 0)
			continue;
		CHECK(strcmp(s->e[i].value, sample_value(name, def)) == 0,
		    "etc/probed.conf sets %s = %s, it should set %s",
		    name, s->e[i].value, sample_value(name, def));
		CHECK(s->e[i].commented,
		    "etc/probed.conf: %s has no comment above it", name);
		return;
	}
	fail_msg("etc/probed.conf does not mention key %s", name);
}

static void
test_sample_documents_every_key(void **state)
{
	char *text = read_all(TEST_SRCDIR "/etc/probed.conf");
	struct sample_ctx s = { .n = 0, .seen = 0 };

	s.n = parse_sample(text, s.e, sizeof(s.e) / sizeof(s.e[0]));
	config_each_key(check_sample_key, &s);
	/* Nothing in the sample that is not a key, and nothing twice. */
	assert_int_equal(s.n, s.seen);
	free(text);
}

static void
test_sample_is_defaults(void **state)
{
	char err[512] = "", names[256];
	struct config *c = config_load(TEST_SRCDIR "/etc/probed.conf", err,
	    sizeof(err));
	struct config *d = config_defaults();

	CHECK(c != NULL, "etc/probed.conf: %s", err);
	assert_non_null(d);
	/* Only `user` differs (sample_not_default[]); the rest are defaults. */
	assert_string_equal(c->user, "probed");
	assert_int_equal(config_restart_keys(d, c, names, sizeof(names)), 1);
	assert_string_equal(names, "user");
	free(c->user);
	c->user = strdup(d->user);
	assert_non_null(c->user);
	assert_config_equal(c, d);
	assert_string_equal(c->path, TEST_SRCDIR "/etc/probed.conf");
	config_free(c);
	config_free(d);
}

static void
check_doc_key(const char *name, const char *type, const char *def,
    bool reloadable, void *ctx)
{
	const char *doc = ctx;
	char row[256];
	const char *p, *eol;
	char line[2048];

	snprintf(row, sizeof(row), "\n| `%s` | %s | `%s` |", name, type, def);
	p = strstr(doc, row);
	CHECK(p != NULL, "doc/configuration.md has no row starting %s", row + 1);
	p++;
	eol = strchr(p, '\n');
	assert_non_null(eol);
	assert_true((size_t)(eol - p) < sizeof(line));
	snprintf(line, sizeof(line), "%.*s", (int)(eol - p), p);
	CHECK(strstr(line, reloadable ? "| yes |" : "| restart |") != NULL,
	    "doc/configuration.md: %s should say reload %s", name,
	    reloadable ? "yes" : "restart");
}

static void
test_doc_mentions_every_key(void **state)
{
	char *doc = read_all(TEST_SRCDIR "/doc/configuration.md");

	config_each_key(check_doc_key, doc);
	assert_non_null(strstr(doc, "78"));
	free(doc);
}

/* A file with every key changed loads with every value as written. */
static void
test_custom_file(void **state)
{
	char err[512] = "", names[256];
	struct config *c = config_load(TEST_SRCDIR
	    "/tests/unit/data/config-custom.conf", err, sizeof(err));
	struct config *d = config_defaults();

	CHECK(c != NULL, "config-custom.conf: %s", err);
	assert_non_null(d);
	assert_string_equal(c->socket, "/run/probed-test/ctl.sock");
	assert_int_equal(c->socket_mode, 0660);
	assert_string_equal(c->socket_group, "mail");
	assert_string_equal(c->state_dir, "/srv/probed");
	assert_string_equal(c->helo_name, "probe.example.org");
	assert_string_equal(c->mail_from, "postmaster@example.org");
	assert_string_equal(c->fallback_mail_from, "verify@[192.0.2.25]");
	assert_int_equal(c->log_level, LOG_DEBUG);
	assert_int_equal(c->dns.servers.n, 2);
	assert_string_equal(c->dns.servers.v[0], "127.0.0.1");
	assert_string_equal(c->dns.servers.v[1], "::1");
	assert_null(c->dns.servers.v[2]);
	assert_true(c->dns.timeout == 1.0);
	assert_int_equal(c->smtp.port, 2500);
	assert_true(c->smtp.connect_timeout == 2.5);
	assert_true(c->smtp.greeting_timeout == 5.0);
	assert_true(c->smtp.command_timeout == 7.5);
	assert_int_equal(c->smtp.starttls, STARTTLS_REQUIRED);
	assert_int_equal(c->smtp.allow_networks.n, 3);
	assert_string_equal(c->smtp.allow_networks.v[0], "127.0.0.0/8");
	assert_string_equal(c->smtp.allow_networks.v[1], "::1/128");
	assert_string_equal(c->smtp.allow_networks.v[2], "192.0.2.0/24");
	assert_string_equal(c->smtp.source_address, "127.0.0.2");
	assert_int_equal(c->smtp.max_mx, 2);
	assert_int_equal(c->smtp.max_rcpt_per_session, 3);
	assert_int_equal(c->limits.max_inflight, 100);
	assert_int_equal(c->limits.per_host, 1);
	assert_int_equal(c->limits.max_clients, 16);
	assert_int_equal(c->cache.positive_ttl, 60);
	assert_int_equal(c->cache.negative_ttl, 30);
	assert_int_equal(c->cache.tempfail_ttl, 0);
	assert_int_equal(c->cache.catch_all_ttl, 120);
	assert_int_equal(c->cache.max_entries, 0);
	assert_int_equal(c->policy.verify, POLICY_VERIFY_SENDER);
	assert_true(c->policy.wait == 0.5);

	/* socket_mode "660" is the default 0660, so five restart keys differ. */
	assert_int_equal(config_restart_keys(d, c, names, sizeof(names)), 5);
	assert_string_equal(names, "socket,socket_group,state_dir,dns.servers,dns.timeout");
	config_free(c);
	config_free(d);
}

/* ---- errors */

static void
test_error_unreadable(void **state)
{
	char err[512], path[PATH_MAX + 32], want[PATH_MAX + 128];

	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	assert_null(config_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: cannot read: %s", path,
	    strerror(ENOENT));
	assert_string_equal(err, want);

	assert_null(config_load(tmpdir, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: cannot read: %s", tmpdir,
	    strerror(EISDIR));
	assert_string_equal(err, want);

	snprintf(path, sizeof(path), "%s/fifo.conf", tmpdir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_null(config_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: cannot read: not a regular file", path);
	assert_string_equal(err, want);

	/* Permission denied, unless root (who reads anyway). */
	if (geteuid() != 0) {
		const char *p = new_file("log_level = \"info\";\n");
		assert_int_equal(chmod(p, 0), 0);
		assert_null(config_load(p, err, sizeof(err)));
		snprintf(want, sizeof(want), "%s: cannot read: %s", p,
		    strerror(EACCES));
		assert_string_equal(err, want);
	}

	/* Over 1 MiB is refused rather than read without bound. */
	size_t big = 1024 * 1024 + 1;
	char *text = malloc(big);
	assert_non_null(text);
	memset(text, '#', big);
	text[big - 1] = '\n';
	new_file_n(text, big);
	free(text);
	assert_null(config_load(last_path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: cannot read: %s", last_path,
	    strerror(EFBIG));
	assert_string_equal(err, want);
}

static void
test_error_syntax(void **state)
{
	expect_error("log_level = \"info\";\n\nsmtp: { port = ; };\n", 3,
	    "syntax error: syntax error");
	expect_error("socket = \"/a\";\nsocket = \"/b\";\n", 2,
	    "syntax error: duplicate setting name");
	expect_error("dns: {\n  timeout = 1.0;\n  timeout = 2.0;\n};\n", 3,
	    "syntax error: duplicate setting name");
	expect_error("dns: { servers = [ \"127.0.0.1\", 1 ]; };\n", 1,
	    "syntax error: mismatched element type in array");
	expect_error("log_level = \"info\";\n}\n", 2, "syntax error: syntax error");
	expect_error("# local settings\n@include \"/etc/passwd\"\n", 2,
	    "syntax error: @include is not supported");
	static const char nul_text[] = "log_level = \"info\";\n\0x = 1;\n";
	char err[512], want[PATH_MAX + 64];

	new_file_n(nul_text, sizeof(nul_text) - 1);
	assert_null(config_load(last_path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: syntax error: NUL octet in file",
	    last_path);
	assert_string_equal(err, want);
}

static void
test_error_unknown_key(void **state)
{
	expect_error("smtp: {\n  port = 25;\n  prot = 26;\n};\n", 3,
	    "unknown key 'smtp.prot'");
	expect_error("log_level = \"info\";\nloglevel = \"info\";\n", 2,
	    "unknown key 'loglevel'");
	/* An unknown group is an unknown key, whatever it holds. */
	expect_error("\nsmpt: { port = 25; };\n", 2, "unknown key 'smpt'");
	expect_error("tls = { };\n", 1, "unknown key 'tls'");
	/* A group inside a known group is not a key either. */
	expect_error("smtp: {\n  tls: { verify = true; };\n};\n", 2,
	    "unknown key 'smtp.tls'");
	/* A key in the wrong group. */
	expect_error("dns: { port = 53; };\n", 1, "unknown key 'dns.port'");
	expect_error("port = 25;\n", 1, "unknown key 'port'");
	/* Key names are case-sensitive. */
	expect_error("SMTP: { port = 25; };\n", 1, "unknown key 'SMTP'");
}

static void
test_error_type(void **state)
{
	expect_error("smtp: {\n  port = \"25\";\n};\n", 2,
	    "key 'smtp.port': expected an integer, got a string");
	expect_error("smtp: { port = 25.0; };\n", 1,
	    "key 'smtp.port': expected an integer, got a float");
	expect_error("smtp: { port = true; };\n", 1,
	    "key 'smtp.port': expected an integer, got a boolean");
	expect_error("smtp: { port: { }; };\n", 1,
	    "key 'smtp.port': expected an integer, got a group");
	expect_error("dns: { timeout = \"3\"; };\n", 1,
	    "key 'dns.timeout': expected a number, got a string");
	expect_error("socket = 5;\n", 1,
	    "key 'socket': expected a string, got an integer");
	expect_error("socket_mode = 0660;\n", 1,
	    "key 'socket_mode': expected a string, got an integer");
	expect_error("log_level = 7;\n", 1,
	    "key 'log_level': expected a string, got an integer");
	expect_error("smtp: { starttls = [ \"never\" ]; };\n", 1,
	    "key 'smtp.starttls': expected a string, got an array");
	expect_error("dns: { servers = \"127.0.0.1\"; };\n", 1,
	    "key 'dns.servers': expected an array of strings, got a string");
	/* A known group given as a scalar. */
	expect_error("smtp = 25;\n", 1, "key 'smtp': expected a group, got an integer");
	expect_error("limits = [ ];\n", 1,
	    "key 'limits': expected a group, got an array");
	/* A scalar key given as a group. */
	expect_error("socket: { path = \"/x\"; };\n", 1,
	    "key 'socket': expected a string, got a group");
}

static void
test_error_value(void **state)
{
	expect_error("smtp: {\n\n  port = 70000;\n};\n", 3,
	    "key 'smtp.port': 70000 is out of range 1..65535");
	expect_error("smtp: { starttls = \"sometimes\"; };\n", 1,
	    "key 'smtp.starttls': 'sometimes' is not one of never, "
	    "opportunistic, required");
	expect_error("policy: { verify = \"Recipient\"; };\n", 1,
	    "key 'policy.verify': 'Recipient' is not one of recipient, sender");
	expect_error("log_level = \"verbose\";\n", 1,
	    "key 'log_level': 'verbose' is not one of debug, info, notice, "
	    "warning, err");
	expect_error("cache: { tempfail_ttl = -1; };\n", 1,
	    "key 'cache.tempfail_ttl': -1 is out of range 0..86400");
	/* Values are quoted printable and bounded: the message stays one line. */
	expect_error("helo_name = \"a\\nb\";\n", 1,
	    "key 'helo_name': 'a\\x0ab' is not a valid host name");
	/* The line is the one naming the key, wherever its value is. */
	expect_error("smtp:\n{\n  port\n    =\n    0;\n};\n", 3,
	    "key 'smtp.port': 0 is out of range 1..65535");
}

/* libconfig 1.5 truncates wide integer literals; they must not load as the
 * truncated value (4294967321 would otherwise read as 25). */
static void
test_error_integer_overflow(void **state)
{
	expect_error("smtp: { port = 4294967321; };\n", 1,
	    "key 'smtp.port': 4294967321 is out of range 1..65535");
	expect_error("smtp: { port = -4294967295; };\n", 1,
	    "key 'smtp.port': -4294967295 is out of range 1..65535");
	expect_error("smtp: { port = 0x100000019; };\n", 1,
	    "key 'smtp.port': 0x100000019 is out of range 1..65535");
	expect_error("cache: { max_entries = 2147483648; };\n", 1,
	    "key 'cache.max_entries': 2147483648 is out of range 0..100000000");
	expect_error("cache: { max_entries = 99999999999999999999; };\n", 1,
	    "key 'cache.max_entries': 99999999999999999999 is out of range "
	    "0..100000000");
	expect_error("cache: { max_entries = 99999999999999999999L; };\n", 1,
	    "key 'cache.max_entries': 99999999999999999999L is out of range "
	    "0..100000000");
	expect_error("cache: { max_entries = 4294967296L; };\n", 1,
	    "key 'cache.max_entries': 4294967296 is out of range 0..100000000");
	expect_error("dns: { timeout = 4294967299; };\n", 1,
	    "key 'dns.timeout': 4294967299 is out of range 0.1..60");
	/* A wide literal for another key on the same line does not confuse. */
	expect_error("smtp: { port = 25; max_mx = 4294967297; };\n", 1,
	    "key 'smtp.max_mx': 4294967297 is out of range 1..20");

	struct config *c = load_ok("smtp: { port = 25L; max_mx = 0x3;\n"
	    "  max_rcpt_per_session = 000000000000000000000000000000000000000"
	    "00000000000000000000000000000000000000000000000000000007; };\n"
	    "# port = 99999999999 in a comment\n"
	    "helo_name = \"x99999999999.example\";\n"
	    "dns: { timeout = 1e1; };\n");
	assert_int_equal(c->smtp.port, 25);
	assert_int_equal(c->smtp.max_mx, 3);
	assert_int_equal(c->smtp.max_rcpt_per_session, 7);
	assert_true(c->dns.timeout == 10.0);
	config_free(c);
}

static void
test_error_buffer(void **state)
{
	char small[16];

	/* No buffer, or a small one: still NULL, never an overrun. */
	assert_null(config_load(new_file("smtp: { port = 0; };\n"), NULL, 0));
	memset(small, 'x', sizeof(small));
	assert_null(config_load(last_path, small, sizeof(small)));
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_int_equal(strncmp(small, last_path, sizeof(small) - 1), 0);
	/* Success leaves an empty message, even in a small buffer. */
	struct config *c = config_load(new_file("socket_mode = \"0\";\n"),
	    small, sizeof(small));
	assert_non_null(c);
	assert_string_equal(small, "");
	assert_int_equal(c->socket_mode, 0);
	config_free(c);
}

/* ---- boundaries */

struct int_case {
	const char *group, *leaf;
	size_t off;
	long long min, max;
};

#define IC(g, l, f, lo, hi) { g, l, offsetof(struct config, f), lo, hi }

static const struct int_case int_cases[] = {
	IC("smtp", "port", smtp.port, 1, 65535),
	IC("smtp", "max_mx", smtp.max_mx, 1, 20),
	IC("smtp", "max_rcpt_per_session", smtp.max_rcpt_per_session, 1, 100),
	IC("limits", "max_inflight", limits.max_inflight, 1, 1000000),
	IC("limits", "per_host", limits.per_host, 1, 100),
	IC("limits", "max_clients", limits.max_clients, 1, 65536),
	IC("cache", "positive_ttl", cache.positive_ttl, 0, 31536000),
	IC("cache", "negative_ttl", cache.negative_ttl, 0, 31536000),
	IC("cache", "tempfail_ttl", cache.tempfail_ttl, 0, 86400),
	IC("cache", "catch_all_ttl", cache.catch_all_ttl, 0, 31536000),
	IC("cache", "max_entries", cache.max_entries, 0, 100000000),
};

static void
test_int_boundaries(void **state)
{
	for (size_t i = 0; i < sizeof(int_cases) / sizeof(int_cases[0]); i++) {
		const struct int_case *t = &int_cases[i];
		long long ok[] = { t->min, t->max };
		long long bad[] = { t->min - 1, t->max + 1 };
		char text[256], msg[256];

		for (size_t j = 0; j < 2; j++) {
			snprintf(text, sizeof(text), "%s:\n{\n  %s = %lld;\n};\n",
			    t->group, t->leaf, ok[j]);
			struct config *c = load_ok(text);
			unsigned got = *(const unsigned *)(const void *)
			    ((const char *)c + t->off);
			CHECK(got == (unsigned long long)ok[j], "%s.%s = %lld gave %u",
			    t->group, t->leaf, ok[j], got);
			config_free(c);
		}
		for (size_t j = 0; j < 2; j++) {
			snprintf(text, sizeof(text), "%s:\n{\n  %s = %lld;\n};\n",
			    t->group, t->leaf, bad[j]);
			snprintf(msg, sizeof(msg),
			    "key '%s.%s': %lld is out of range %lld..%lld",
			    t->group, t->leaf, bad[j], t->min, t->max);
			expect_error(text, 3, msg);
		}
	}
}

struct float_case {
	const char *group, *leaf;
	size_t off;
	double min, max;
	const char *below, *above;      /* as written in a file */
	const char *range;              /* as in the message */
};

#define FC(g, l, f, lo, hi, b, a, r) \
	{ g, l, offsetof(struct config, f), lo, hi, b, a, r }

static const struct float_case float_cases[] = {
	FC("dns", "timeout", dns.timeout, 0.1, 60, "0.09", "60.5", "0.1..60"),
	FC("smtp", "connect_timeout", smtp.connect_timeout, 0.1, 300,
	    "0.0", "301", "0.1..300"),
	FC("smtp", "greeting_timeout", smtp.greeting_timeout, 0.1, 600,
	    "-1.0", "600.001", "0.1..600"),
	FC("smtp", "command_timeout", smtp.command_timeout, 0.1, 600,
	    "0.05", "1e3", "0.1..600"),
	FC("policy", "wait", policy.wait, 0.1, 3600, "0", "3601", "0.1..3600"),
};

static void
test_float_boundaries(void **state)
{
	for (size_t i = 0; i < sizeof(float_cases) / sizeof(float_cases[0]); i++) {
		const struct float_case *t = &float_cases[i];
		double ok[] = { t->min, t->max };
		const char *bad[] = { t->below, t->above };
		char text[256], msg[256];

		for (size_t j = 0; j < 2; j++) {
			snprintf(text, sizeof(text), "%s: { %s = %.17g%s; };\n",
			    t->group, t->leaf, ok[j],
			    ok[j] == (long long)ok[j] ? ".0" : "");
			struct config *c = load_ok(text);
			double got = *(const double *)(const void *)
			    ((const char *)c + t->off);
			CHECK(got == ok[j], "%s", text);
			config_free(c);
		}
		for (size_t j = 0; j < 2; j++) {
			char shown[32];
			snprintf(text, sizeof(text), "%s: { %s = %s; };\n",
			    t->group, t->leaf, bad[j]);
			snprintf(shown, sizeof(shown), "%g", strtod(bad[j], NULL));
			snprintf(msg, sizeof(msg), "key '%s.%s': %s is out of range %s",
			    t->group, t->leaf, shown, t->range);
			expect_error(text, 1, msg);
		}
	}
}

static void
test_int_for_float(void **state)
{
	struct config *c = load_ok("dns: { timeout = 3; };\n"
	    "smtp: { connect_timeout = 300; greeting_timeout = 1L; };\n"
	    "policy: { wait = 0x10; };\n");

	assert_true(c->dns.timeout == 3.0);
	assert_true(c->smtp.connect_timeout == 300.0);
	assert_true(c->smtp.greeting_timeout == 1.0);
	assert_true(c->policy.wait == 16.0);
	config_free(c);
	expect_error("dns: { timeout = 0; };\n", 1,
	    "key 'dns.timeout': 0 is out of range 0.1..60");
	expect_error("policy: { wait = 3601; };\n", 1,
	    "key 'policy.wait': 3601 is out of range 0.1..3600");
}

/* ---- value syntax */

static void
test_octal_mode(void **state)
{
	static const struct {
		const char *text;
		unsigned mode;
	} ok[] = {
		{ "0660", 0660 }, { "660", 0660 }, { "0", 0 }, { "0777", 0777 },
		{ "0600", 0600 }, { "00000640", 0640 }, { "7", 07 },
	};
	static const char *const not_octal[] = {
		"0999", "", "-1", " 660", "660 ", "0x1ff", "0o660", "+660", "u+rw",
		"1111111111111111111111",
	};
	char text[256], msg[256];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), "socket_mode = \"%s\";\n", ok[i].text);
		struct config *c = load_ok(text);
		CHECK(c->socket_mode == ok[i].mode, "%s gave %o", ok[i].text,
		    c->socket_mode);
		config_free(c);
	}
	for (size_t i = 0; i < sizeof(not_octal) / sizeof(not_octal[0]); i++) {
		snprintf(text, sizeof(text), "socket_mode = \"%s\";\n",
		    not_octal[i]);
		snprintf(msg, sizeof(msg),
		    "key 'socket_mode': '%s' is not an octal mode", not_octal[i]);
		expect_error(text, 1, msg);
	}
	expect_error("socket_mode = \"01000\";\n", 1,
	    "key 'socket_mode': '01000' is out of range 0..0777");
	expect_error("socket_mode = \"4755\";\n", 1,
	    "key 'socket_mode': '4755' is out of range 0..0777");
}

static void
test_ip_addresses(void **state)
{
	static const char *const bad[] = {
		"1.2.3", "127.1", "256.0.0.1", "::g", "", "1.2.3.4 ", " ::1",
		"fe80::1%lo", "localhost", "1.2.3.4/32", "1.2.3.4:53",
	};
	char text[256], msg[256];
	struct config *c;

	c = load_ok("dns: { servers = [ \"192.0.2.53\", \"2001:db8::53\", "
	    "\"::ffff:192.0.2.1\" ]; };\nsmtp: { source_address = \"::1\"; };\n");
	assert_int_equal(c->dns.servers.n, 3);
	assert_string_equal(c->dns.servers.v[0], "192.0.2.53");
	assert_string_equal(c->dns.servers.v[1], "2001:db8::53");
	assert_string_equal(c->dns.servers.v[2], "::ffff:192.0.2.1");
	assert_null(c->dns.servers.v[3]);
	assert_string_equal(c->smtp.source_address, "::1");
	config_free(c);

	/* A resolver may listen off port 53; a source address has no port. */
	c = load_ok("dns: { servers = [ \"127.0.1.53:5353\", \"[::1]:53\" ]; };\n");
	assert_int_equal(c->dns.servers.n, 2);
	config_free(c);
	static const char *const bad_ports[] = {
		"1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:", "[::1]", "[::1]:", "[::1]:x",
		"[1.2.3.4]:53", "1.2.3.4:53:53", "[::1]:-1",
	};
	for (size_t i = 0; i < sizeof(bad_ports) / sizeof(bad_ports[0]); i++) {
		snprintf(text, sizeof(text), "dns: { servers = [ \"%s\" ]; };\n", bad_ports[i]);
		snprintf(msg, sizeof(msg), "key 'dns.servers': '%s' is not an IP address, "
		    "IPv4:port or [IPv6]:port", bad_ports[i]);
		expect_error(text, 1, msg);
	}

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (strcmp(bad[i], "1.2.3.4:53") == 0)
			goto source_only;
		snprintf(text, sizeof(text),
		    "dns:\n{\n  servers = ( \"127.0.0.1\",\n    \"%s\" );\n};\n",
		    bad[i]);
		snprintf(msg, sizeof(msg),
		    "key 'dns.servers': '%s' is not an IP address, IPv4:port or [IPv6]:port",
		    bad[i]);
		expect_error(text, 4, msg);
source_only:
		if (bad[i][0] == '\0')
			continue;       /* "" is a valid source_address */
		snprintf(text, sizeof(text), "smtp: { source_address = \"%s\"; };\n",
		    bad[i]);
		snprintf(msg, sizeof(msg),
		    "key 'smtp.source_address': '%s' is not an IP address", bad[i]);
		expect_error(text, 1, msg);
	}
	/* udns asks at most 6 servers; a seventh would be silently dropped. */
	expect_error("dns: { servers = [ \"127.0.0.1\", \"127.0.0.2\", "
	    "\"127.0.0.3\", \"127.0.0.4\", \"127.0.0.5\", \"127.0.0.6\", "
	    "\"127.0.0.7\" ]; };\n", 1,
	    "key 'dns.servers': 7 entries, at most 6 allowed");
}

static void
test_cidr(void **state)
{
	static const struct {
		const char *in, *stored;
	} ok[] = {
		{ "127.0.0.0/8", "127.0.0.0/8" },
		{ "::1/128", "::1/128" },
		{ "192.0.2.1", "192.0.2.1/32" },
		{ "2001:db8::", "2001:db8::/128" },
		{ "0.0.0.0/0", "0.0.0.0/0" },
		{ "::/0", "::/0" },
		{ "10.1.2.3/32", "10.1.2.3/32" },
		{ "192.0.2.128/25", "192.0.2.128/25" },
		{ "2001:DB8:0:0::/64", "2001:db8::/64" },
		{ "fd00::/8", "fd00::/8" },
	};
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "10.0.0.1/8", "has host bits set (did you mean 10.0.0.0/8?)" },
		{ "192.0.2.1/24", "has host bits set (did you mean 192.0.2.0/24?)" },
		{ "192.0.2.129/25", "has host bits set (did you mean 192.0.2.128/25?)" },
		{ "::1/64", "has host bits set (did you mean ::/64?)" },
		{ "1.0.0.0/0", "has host bits set (did you mean 0.0.0.0/0?)" },
		{ "10.0.0.0/33", "has a prefix length out of range 0..32" },
		{ "::/129", "has a prefix length out of range 0..128" },
		{ "10.0.0.0/", "is not a network (address or address/prefix)" },
		{ "/8", "is not a network (address or address/prefix)" },
		{ "10.0.0.0/-1", "is not a network (address or address/prefix)" },
		{ "10.0.0.0/8/8", "is not a network (address or address/prefix)" },
		{ "10.0.0.0/ 8", "is not a network (address or address/prefix)" },
		{ "10.0.0.0/1000", "is not a network (address or address/prefix)" },
		{ "10.0.0/8", "is not a network (address or address/prefix)" },
		{ "example.org/24", "is not a network (address or address/prefix)" },
		{ "", "is not a network (address or address/prefix)" },
	};
	char text[256], msg[256];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text),
		    "smtp: { allow_networks = [ \"%s\" ]; };\n", ok[i].in);
		struct config *c = load_ok(text);
		assert_int_equal(c->smtp.allow_networks.n, 1);
		assert_string_equal(c->smtp.allow_networks.v[0], ok[i].stored);
		config_free(c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
		    "smtp: {\n  allow_networks = [ \"127.0.0.0/8\",\n"
		    "    \"%s\" ];\n};\n", bad[i].in);
		snprintf(msg, sizeof(msg), "key 'smtp.allow_networks': '%s' %s",
		    bad[i].in, bad[i].why);
		expect_error(text, 3, msg);
	}
}

static void
test_list_elements(void **state)
{
	expect_error("dns: { servers = [ 1, 2 ]; };\n", 1,
	    "key 'dns.servers': element 1: expected a string, got an integer");
	expect_error("smtp: {\n  allow_networks = ( \"127.0.0.0/8\",\n"
	    "    ( \"::1\" ) );\n};\n", 3,
	    "key 'smtp.allow_networks': element 2: expected a string, got a list");
	expect_error("smtp: { allow_networks = ( \"127.0.0.0/8\", { } ); };\n", 1,
	    "key 'smtp.allow_networks': element 2: expected a string, got a group");
	expect_error("smtp: { allow_networks = [ true ]; };\n", 1,
	    "key 'smtp.allow_networks': element 1: expected a string, "
	    "got a boolean");

	/* An empty list in either spelling is empty. */
	struct config *c = load_ok("dns: { servers = ( ); };\n"
	    "smtp: { allow_networks = [ ]; };\n");
	assert_int_equal(c->dns.servers.n, 0);
	assert_int_equal(c->smtp.allow_networks.n, 0);
	config_free(c);
}

static void
test_host_names_and_senders(void **state)
{
	static const char *const helo_ok[] = {
		"probe.example.org", "localhost", "a-b.c0", "xn--bcher-kva.example",
		"1host.example", "a.b.c.d.e.f.g",
	};
	static const char *const helo_bad[] = {
		"-probe.example.org", "probe-.example.org", "probe..example.org",
		".example.org", "example.org.", "probe_1.example.org",
		"192.0.2.1", "probe example", "pr\303\266be.example", "[192.0.2.1]",
	};
	static const char *const from_ok[] = {
		"postmaster@example.org", "a@b", "first.last+tag@mail.example.org",
		"x@[192.0.2.1]", "x@[IPv6:2001:db8::1]", "\\\"q\\\"@example.org",
	};
	static const char *const from_bad[] = {
		"postmaster", "@example.org", "postmaster@", "<a@example.org>",
		"a b@example.org", "a@exa mple.org", "a@-example.org",
		"a@[192.0.2.300]", "a@example..org", "a\\tb@example.org",
	};
	char text[512];
	struct config *c;

	for (size_t i = 0; i < sizeof(helo_ok) / sizeof(helo_ok[0]); i++) {
		snprintf(text, sizeof(text), "helo_name = \"%s\";\n", helo_ok[i]);
		c = load_ok(text);
		assert_string_equal(c->helo_name, helo_ok[i]);
		config_free(c);
	}
	for (size_t i = 0; i < sizeof(helo_bad) / sizeof(helo_bad[0]); i++) {
		snprintf(text, sizeof(text), "helo_name = \"%s\";\n", helo_bad[i]);
		expect_error_prefix(text, "key 'helo_name': '");
	}
	/* A label of 64 octets, a name of 254. */
	char label[80], name[300];
	memset(label, 'a', 64);
	label[64] = '\0';
	snprintf(text, sizeof(text), "helo_name = \"%s.example\";\n", label);
	expect_error_prefix(text, "key 'helo_name': '");
	label[63] = '\0';
	snprintf(text, sizeof(text), "helo_name = \"%s.example\";\n", label);
	c = load_ok(text);
	config_free(c);
	FMT(name, "%s.%s.%s.%s", label, label, label, label);
	name[253] = '\0';               /* 4 x 63 + 3 dots = 255; cut to 253 */
	snprintf(text, sizeof(text), "helo_name = \"%s\";\n", name);
	c = load_ok(text);
	config_free(c);
	FMT(name, "%s.%s.%s.%s", label, label, label, label);
	name[254] = '\0';
	name[253] = 'x';
	snprintf(text, sizeof(text), "helo_name = \"%s\";\n", name);
	expect_error_prefix(text, "key 'helo_name': '");

	for (size_t i = 0; i < sizeof(from_ok) / sizeof(from_ok[0]); i++) {
		snprintf(text, sizeof(text),
		    "mail_from = \"%s\";\nfallback_mail_from = \"%s\";\n",
		    from_ok[i], from_ok[i]);
		c = load_ok(text);
		config_free(c);
	}
	for (size_t i = 0; i < sizeof(from_bad) / sizeof(from_bad[0]); i++) {
		snprintf(text, sizeof(text), "mail_from = \"%s\";\n", from_bad[i]);
		expect_error_prefix(text, "key 'mail_from': '");
		snprintf(text, sizeof(text), "\nfallback_mail_from = \"%s\";\n",
		    from_bad[i]);
		expect_error_prefix(text, "key 'fallback_mail_from': '");
	}
	expect_error("mail_from = \"<>\";\n", 1,
	    "key 'mail_from': '<>' is not an address: control characters, "
	    "spaces, angle brackets and non-ASCII are not allowed");
	expect_error("mail_from = \"postmaster\";\n", 1,
	    "key 'mail_from': 'postmaster' is not an address of the form "
	    "local@domain");
	c = load_ok("mail_from = \"\";\nhelo_name = \"\";\n");
	assert_string_equal(c->mail_from, "");
	config_free(c);
}

static void
test_paths(void **state)
{
	char path[200], text[300], msg[400];
	struct config *c;

	/* sun_path holds 108 octets with the NUL: 107 fit, 108 do not. */
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[107] = '\0';
	snprintf(text, sizeof(text), "socket = \"%s\";\n", path);
	c = load_ok(text);
	assert_int_equal(strlen(c->socket), 107);
	config_free(c);
	path[107] = 'a';
	path[108] = '\0';
	snprintf(text, sizeof(text), "socket = \"%s\";\n", path);
	expect_error_prefix(text, "key 'socket': '/aaaa");

	expect_error("socket = \"run/probed.sock\";\n", 1,
	    "key 'socket': 'run/probed.sock' is not an absolute path");
	expect_error("socket = \"\";\n", 1,
	    "key 'socket': '' is not an absolute path");
	expect_error("state_dir = \"var/lib/probed\";\n", 1,
	    "key 'state_dir': 'var/lib/probed' is not an absolute path");
	snprintf(msg, sizeof(msg),
	    "key 'state_dir': '/var/\\x1b[31m' contains a control character");
	expect_error("state_dir = \"/var/\\x1b[31m\";\n", 1, msg);
	expect_error("socket_group = \"mail users\";\n", 1,
	    "key 'socket_group': 'mail users' is not a group name");

	c = load_ok("socket = \"/tmp/p.sock\";\nstate_dir = \"/\";\n"
	    "socket_group = \"_probed\";\n");
	assert_string_equal(c->socket, "/tmp/p.sock");
	assert_string_equal(c->state_dir, "/");
	assert_string_equal(c->socket_group, "_probed");
	config_free(c);
}

/*
 * Who may use the socket: socket_owner and the allow lists take account
 * names; the lists are looked up at load (root exists everywhere), and a
 * name that is not an account is an error naming the key, the name and
 * the line of that element.
 */
static void
test_socket_access(void **state)
{
	struct config *c = load_ok("");

	assert_string_equal(c->socket_owner, "");
	assert_int_equal(c->socket_allow_users.n, 0);
	assert_int_equal(c->socket_allow_groups.n, 0);
	assert_int_equal(c->n_allow_uids, 0);
	assert_int_equal(c->n_allow_gids, 0);
	assert_int_equal(c->limits.client_inflight, 128);
	assert_int_equal(c->limits.client_idle_timeout, 300);
	config_free(c);

	c = load_ok("socket_owner = \"root\";\n"
	    "socket_allow_users = [ \"root\", \"root\" ];\n"
	    "socket_allow_groups = [ \"root\" ];\n"
	    "limits: { client_inflight = 4; client_idle_timeout = 0; };\n");
	assert_string_equal(c->socket_owner, "root");
	assert_int_equal(c->socket_allow_users.n, 2);
	assert_string_equal(c->socket_allow_users.v[1], "root");
	assert_int_equal(c->n_allow_uids, 1);       /* duplicates merged */
	assert_int_equal(c->allow_uids[0], 0);
	assert_int_equal(c->n_allow_gids, 1);
	assert_int_equal(c->allow_gids[0], 0);
	assert_int_equal(c->limits.client_inflight, 4);
	assert_int_equal(c->limits.client_idle_timeout, 0);
	config_free(c);

	expect_error("socket_allow_users = [ \"root\", \"no-such-user-probed-test\" ];\n",
	    1, "key 'socket_allow_users': 'no-such-user-probed-test' is not a known user");
	expect_error("log_level = \"info\";\nsocket_allow_groups = [\n\t\"root\",\n"
	    "\t\"no-such-group-probed-test\",\n\t\"root\"\n];\n", 4,
	    "key 'socket_allow_groups': 'no-such-group-probed-test' is not a known group");
	expect_error("socket_allow_users = [ \"mail users\" ];\n", 1,
	    "key 'socket_allow_users': 'mail users' is not a user name");
	expect_error("socket_allow_groups = [ \"a:b\" ];\n", 1,
	    "key 'socket_allow_groups': 'a:b' is not a group name");
	expect_error("socket_allow_users = \"root\";\n", 1,
	    "key 'socket_allow_users': expected an array of strings, got a string");
	expect_error("socket_owner = \"1000\";\n", 1,
	    "key 'socket_owner': '1000' is not a user name");
	expect_error("limits: { client_inflight = 0; };\n", 1,
	    "key 'limits.client_inflight': 0 is out of range 1..65536");
	expect_error("limits: { client_inflight = 65537; };\n", 1,
	    "key 'limits.client_inflight': 65537 is out of range 1..65536");
	expect_error("limits: { client_idle_timeout = 86401; };\n", 1,
	    "key 'limits.client_idle_timeout': 86401 is out of range 0..86400");

	/* The overflow IDs: in a user namespace every unmapped peer shows as
	 * them, so listing them would let everyone in. */
	struct passwd *pw = getpwuid(65534);
	struct group *gr = getgrgid(65534);
	char text[160], msg[256];
	if (pw != NULL) {
		snprintf(text, sizeof(text), "socket_allow_users = [ \"%s\" ];\n",
		    pw->pw_name);
		snprintf(msg, sizeof(msg), "key 'socket_allow_users': '%s' is the "
		    "kernel's overflow UID 65534, which every unmapped user shows as "
		    "in a user namespace: not allowed", pw->pw_name);
		expect_error(text, 1, msg);
	}
	if (gr != NULL) {
		snprintf(text, sizeof(text), "socket_allow_groups = [ \"%s\" ];\n",
		    gr->gr_name);
		snprintf(msg, sizeof(msg), "key 'socket_allow_groups': '%s' is the "
		    "kernel's overflow GID 65534, which every unmapped group shows as "
		    "in a user namespace: not allowed", gr->gr_name);
		expect_error(text, 1, msg);
	}
}

/* user and group: names as passwd(5) and group(5) can hold them. */
static void
test_user_and_group(void **state)
{
	struct config *c;

	c = load_ok("user = \"probed\";\ngroup = \"mail\";\n");
	assert_string_equal(c->user, "probed");
	assert_string_equal(c->group, "mail");
	config_free(c);
	c = load_ok("user = \"_probed-1\";\n");
	assert_string_equal(c->user, "_probed-1");
	assert_string_equal(c->group, "");
	config_free(c);

	expect_error("user = \"pro bed\";\n", 1,
	    "key 'user': 'pro bed' is not a user name");
	expect_error("user = \"a:b\";\n", 1,
	    "key 'user': 'a:b' is not a user name");
	/* A number would read as a UID to some tools and a name to others. */
	expect_error("user = \"65534\";\n", 1,
	    "key 'user': '65534' is not a user name");
	expect_error("user = \"\\x01x\";\n", 1,
	    "key 'user': '\\x01x' is not a user name");
	expect_error("group = \"mail users\";\n", 1,
	    "key 'group': 'mail users' is not a group name");
	expect_error("user = 0;\n", 1,
	    "key 'user': expected a string, got an integer");
}

static void
test_levels_and_enums(void **state)
{
	static const struct {
		const char *word;
		int level;
	} levels[] = {
		{ "debug", LOG_DEBUG }, { "info", LOG_INFO }, { "notice", LOG_NOTICE },
		{ "warning", LOG_WARNING }, { "err", LOG_ERR },
	};
	static const struct {
		const char *word;
		enum starttls_mode mode;
	} tls[] = {
		{ "never", STARTTLS_NEVER },
		{ "opportunistic", STARTTLS_OPPORTUNISTIC },
		{ "required", STARTTLS_REQUIRED },
	};
	char text[128];
	struct config *c;

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		snprintf(text, sizeof(text), "log_level = \"%s\";\n", levels[i].word);
		c = load_ok(text);
		assert_int_equal(c->log_level, levels[i].level);
		config_free(c);
	}
	for (size_t i = 0; i < sizeof(tls) / sizeof(tls[0]); i++) {
		snprintf(text, sizeof(text), "smtp: { starttls = \"%s\"; };\n",
		    tls[i].word);
		c = load_ok(text);
		assert_int_equal(c->smtp.starttls, tls[i].mode);
		config_free(c);
	}
	c = load_ok("policy: { verify = \"sender\"; };\n");
	assert_int_equal(c->policy.verify, POLICY_VERIFY_SENDER);
	config_free(c);
	expect_error("smtp: { starttls = \"\"; };\n", 1,
	    "key 'smtp.starttls': '' is not one of never, opportunistic, required");
}

/* ---- the policy section (probed-policy's keys) */

static void
test_policy_keys(void **state)
{
	struct config *c;

	c = load_ok("policy: {\n"
	    "  action_undeliverable = \"REJECT 5.1.1 <%a>: no (%r: %t) 100%% sure %v\";\n"
	    "  action_pending = \"defer_if_permit 4.1.1 verification in progress\";\n"
	    "  action_risky = \"450 4.7.1 try later\";\n"
	    "  action_unknown = \"WARN unknown %r\";\n"
	    "  on_error = \"DUNNO\";\n"
	    "  skip_null_sender = false;\n"
	    "  skip_sasl = false;\n"
	    "  skip_networks = [ ];\n"
	    "  skip_domains = [ \"Example.ORG\", \".lists.example.net\" ];\n"
	    "};\n");
	assert_string_equal(c->policy.action_undeliverable,
	    "REJECT 5.1.1 <%a>: no (%r: %t) 100%% sure %v");
	assert_string_equal(c->policy.action_pending,
	    "defer_if_permit 4.1.1 verification in progress");
	assert_string_equal(c->policy.action_risky, "450 4.7.1 try later");
	assert_false(c->policy.skip_null_sender);
	assert_false(c->policy.skip_sasl);
	assert_int_equal(c->policy.skip_networks.n, 0);
	assert_int_equal(c->policy.skip_domains.n, 2);
	assert_string_equal(c->policy.skip_domains.v[0], "Example.ORG");
	assert_string_equal(c->policy.skip_domains.v[1], ".lists.example.net");
	config_free(c);
	c = load_ok("policy: { skip_networks = [ \"10.0.0.1\" ]; };\n");
	assert_string_equal(c->policy.skip_networks.v[0], "10.0.0.1/32");
	config_free(c);

	/* What would break the `action=` line or Postfix's reading of it. */
	expect_error("policy: { action_risky = \"DUNNO\\r\\nREJECT\"; };\n", 1,
	    "key 'policy.action_risky': 'DUNNO\\x0d\\x0aREJECT' contains CR or LF: "
	    "an action is one line");
	expect_error("policy: { on_error = \"REJECT \\x01\"; };\n", 1,
	    "key 'policy.on_error': 'REJECT \\x01' contains a control character "
	    "or a non-ASCII octet (SMTP replies are ASCII)");
	expect_error("policy: { on_error = \"REJECT caf\\xc3\\xa9\"; };\n", 1,
	    "key 'policy.on_error': 'REJECT caf\\xc3\\xa9' contains a control "
	    "character or a non-ASCII octet (SMTP replies are ASCII)");
	expect_error("policy: { action_deliverable = \"\"; };\n", 1,
	    "key 'policy.action_deliverable': '' is empty: give an access(5) "
	    "action such as DUNNO");
	expect_error_prefix("policy: { action_unknown = \"NOPE 5.1.1 x\"; };\n",
	    "key 'policy.action_unknown': 'NOPE 5.1.1 x' does not start with an "
	    "access(5) action");
	expect_error_prefix("policy: { action_unknown = \" DUNNO\"; };\n",
	    "key 'policy.action_unknown': ' DUNNO' does not start with");
	expect_error_prefix("policy: { action_unknown = \"250 ok\"; };\n",
	    "key 'policy.action_unknown': '250 ok' does not start with");
	expect_error_prefix("policy: { action_unknown = \"5501 x\"; };\n",
	    "key 'policy.action_unknown': '5501 x' does not start with");
	expect_error("policy: { action_undeliverable = \"REJECT %s\"; };\n", 1,
	    "key 'policy.action_undeliverable': 'REJECT %s' has an unknown escape "
	    "%s (known: %a address, %r reason, %t server text, %v verdict, "
	    "%% percent)");
	expect_error("policy: { action_undeliverable = \"REJECT 100%\"; };\n", 1,
	    "key 'policy.action_undeliverable': 'REJECT 100%' ends in a lone % "
	    "(write %% for a percent sign)");
	/* 400 octets are fine, 401 are not. */
	{
		char text[600], action[402];

		memset(action, 'x', sizeof(action) - 1);
		memcpy(action, "REJECT ", 7);
		action[400] = '\0';
		FMT(text, "policy: { on_error = \"%s\"; };\n", action);
		c = load_ok(text);
		assert_int_equal(strlen(c->policy.on_error), 400);
		config_free(c);
		action[400] = 'x';
		action[401] = '\0';
		FMT(text, "policy: { on_error = \"%s\"; };\n", action);
		{
			char err[512] = "";

			assert_null(load_text(text, err, sizeof(err)));
			CHECK(strstr(err, "key 'policy.on_error': 'REJECT xxx") != NULL &&
			    strstr(err, "' is too long (401 octets, at most 400)") != NULL,
			    "got %s", err);
		}
	}

	expect_error("policy: { skip_sasl = \"yes\"; };\n", 1,
	    "key 'policy.skip_sasl': expected a boolean (true or false), got a string");
	expect_error("policy: { skip_null_sender = 1; };\n", 1,
	    "key 'policy.skip_null_sender': expected a boolean (true or false), "
	    "got an integer");
	expect_error("policy: { skip_networks = [ \"10.0.0.1/8\" ]; };\n", 1,
	    "key 'policy.skip_networks': '10.0.0.1/8' has host bits set (did you "
	    "mean 10.0.0.0/8?)");
	expect_error("policy: { skip_domains = [ \"example..org\" ]; };\n", 1,
	    "key 'policy.skip_domains': 'example..org' is not a domain "
	    "(example.org, or .example.org for the names below it)");
	expect_error("policy: { skip_domains = [ \"..example.org\" ]; };\n", 1,
	    "key 'policy.skip_domains': '..example.org' is not a domain "
	    "(example.org, or .example.org for the names below it)");
	expect_error("policy: { skip_domains = [ \"a b\" ]; };\n", 1,
	    "key 'policy.skip_domains': 'a b' is not a domain "
	    "(example.org, or .example.org for the names below it)");
}

/* ---- restart keys */

static void
test_restart_keys(void **state)
{
	struct config *d = config_defaults(), *c;
	char names[256];

	assert_non_null(d);
	/* Reloadable keys never ask for a restart. */
	c = load_ok("helo_name = \"probe.example.org\";\nlog_level = \"debug\";\n"
	    "smtp: { port = 2525; allow_networks = [ \"127.0.0.0/8\" ]; };\n");
	assert_int_equal(config_restart_keys(d, c, names, sizeof(names)), 0);
	assert_string_equal(names, "");
	config_free(c);

	c = load_ok("socket = \"/tmp/other.sock\";\n"
	    "dns: { servers = [ \"127.0.0.1\" ]; };\nsmtp: { port = 2525; };\n");
	assert_int_equal(config_restart_keys(d, c, names, sizeof(names)), 2);
	assert_string_equal(names, "socket,dns.servers");
	/* Direction does not matter. */
	assert_int_equal(config_restart_keys(c, d, names, sizeof(names)), 2);
	/* Too small a buffer: whole names only, count still complete. */
	assert_int_equal(config_restart_keys(d, c, names, 10), 2);
	assert_string_equal(names, "socket");
	assert_int_equal(config_restart_keys(d, c, names, 7), 2);
	assert_string_equal(names, "socket");
	assert_int_equal(config_restart_keys(d, c, names, 6), 2);
	assert_string_equal(names, "");
	assert_int_equal(config_restart_keys(d, c, NULL, 0), 2);
	config_free(c);

	c = load_ok("socket_mode = \"0600\";\n");
	assert_int_equal(config_restart_keys(d, c, names, sizeof(names)), 1);
	assert_string_equal(names, "socket_mode");
	config_free(c);
	c = load_ok("socket_group = \"mail\";\nstate_dir = \"/srv/probed\";\n");
	assert_int_equal(config_restart_keys(d, c, names, sizeof(names)), 2);
	assert_string_equal(names, "socket_group,state_dir");
	config_free(c);
	/* Privileges are dropped once: a reload cannot change the account. */
	c = load_ok("user = \"probed\";\ngroup = \"probed\";\n");
	assert_int_equal(config_restart_keys(d, c, names, sizeof(names)), 2);
	assert_string_equal(names, "user,group");
	config_free(c);

	/* Same servers, different order: a different list. */
	struct config *a = load_ok("dns: { servers = [ \"127.0.0.1\", \"::1\" ]; };\n");
	struct config *b = load_ok("dns: { servers = [ \"::1\", \"127.0.0.1\" ]; };\n");
	assert_int_equal(config_restart_keys(a, b, names, sizeof(names)), 1);
	assert_string_equal(names, "dns.servers");
	assert_int_equal(config_restart_keys(a, a, names, sizeof(names)), 0);
	config_free(a);
	config_free(b);
	config_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_file_is_defaults),
		cmocka_unit_test(test_each_key),
		cmocka_unit_test(test_default_texts_load),
		cmocka_unit_test(test_sample_documents_every_key),
		cmocka_unit_test(test_sample_is_defaults),
		cmocka_unit_test(test_doc_mentions_every_key),
		cmocka_unit_test(test_custom_file),
		cmocka_unit_test(test_error_unreadable),
		cmocka_unit_test(test_error_syntax),
		cmocka_unit_test(test_error_unknown_key),
		cmocka_unit_test(test_error_type),
		cmocka_unit_test(test_error_value),
		cmocka_unit_test(test_policy_keys),
		cmocka_unit_test(test_error_integer_overflow),
		cmocka_unit_test(test_error_buffer),
		cmocka_unit_test(test_int_boundaries),
		cmocka_unit_test(test_float_boundaries),
		cmocka_unit_test(test_int_for_float),
		cmocka_unit_test(test_octal_mode),
		cmocka_unit_test(test_ip_addresses),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_list_elements),
		cmocka_unit_test(test_host_names_and_senders),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_user_and_group),
		cmocka_unit_test(test_socket_access),
		cmocka_unit_test(test_levels_and_enums),
		cmocka_unit_test(test_restart_keys),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
