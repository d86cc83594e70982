/*
 * config — probed.conf (libconfig syntax), loaded through one declarative
 * table of keys (config.c): name, type, default, range, reloadable.
 *
 * config_load() builds a fresh struct config and either returns it whole or
 * fails with a message naming the file, the line and the key; a running
 * daemon swaps configurations only on success (SIGHUP), so a broken file
 * never replaces a working one.
 */
#ifndef PROBED_CONFIG_H
#define PROBED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#define CONFIG_DEFAULT_PATH SYSCONFDIR "/probed/probed.conf"
#define EX_CONFIG_STATUS 78 /* sysexits.h EX_CONFIG */
#define CONFIG_ACTION_MAX 400 /* a policy action template, in octets */

enum starttls_mode { STARTTLS_NEVER, STARTTLS_OPPORTUNISTIC, STARTTLS_REQUIRED };
enum policy_verify { POLICY_VERIFY_RECIPIENT, POLICY_VERIFY_SENDER };

struct strlist {
	char **v;
	size_t n;
};

struct config {
	char *path;              /* file it came from; NULL for built-in defaults */

	char *socket;            /* control socket path */
	unsigned socket_mode;    /* parsed from an octal string, e.g. "0660" */
	char *socket_group;      /* "" = the daemon's own group */
	char *socket_owner;      /* "" = the daemon's own user */
	/* Who may use the socket beyond its file permissions (empty both: no
	 * check).  The names as written, and their IDs, resolved by
	 * config_load() (sorted, no duplicates). */
	struct strlist socket_allow_users;
	struct strlist socket_allow_groups;
	uid_t *allow_uids;
	size_t n_allow_uids;
	gid_t *allow_gids;
	size_t n_allow_gids;
	char *user;              /* account to run as when started as root */
	char *group;             /* "" = the user's primary group */
	char *state_dir;
	char *helo_name;         /* "" = the host's name */
	char *mail_from;         /* "" = null sender <> */
	char *fallback_mail_from;
	int log_level;           /* syslog level, from "debug" .. "err" */

	struct {
		struct strlist servers; /* empty = /etc/resolv.conf */
		double timeout;
		unsigned min_ttl;       /* answers kept at least this long */
		unsigned max_ttl;       /* and at most this long */
		unsigned negative_ttl;  /* NXDOMAIN, null MX, no MX */
		unsigned stale_ttl;     /* served past expiry while DNS fails */
		unsigned max_entries;
	} dns;

	struct {
		unsigned port;
		double connect_timeout;
		double greeting_timeout;
		double command_timeout;
		enum starttls_mode starttls;
		struct strlist allow_networks;
		char *source_address;
		unsigned max_mx;
		unsigned max_rcpt_per_session;
		double greylist_delay;  /* first retry after greylisting; doubles */
		unsigned greylist_retries;
	} smtp;

	struct {
		unsigned max_inflight;
		unsigned per_host;
		unsigned max_clients;
		unsigned client_inflight; /* requests read, not yet answered, per client */
		unsigned client_idle_timeout; /* seconds; 0 = never */
		double domain_rate;     /* SMTP sessions started per second per domain */
		unsigned domain_burst;
		double backoff_base;    /* first backoff after a rate limit; doubles */
		double backoff_max;
		double blocked_backoff; /* an MX that blocked the prober is left alone */
	} limits;

	struct {
		unsigned positive_ttl;
		unsigned negative_ttl;
		unsigned tempfail_ttl;
		unsigned catch_all_ttl;
		unsigned max_entries;
		unsigned positive_refresh; /* past this age a positive verdict is renewed */
		unsigned negative_refresh;
	} cache;

	/* Read by probed-policy only (src/policy): the daemon loads and
	 * checks them so that `probed -t` judges the whole file. */
	struct {
		enum policy_verify verify;
		double wait;
		char *action_deliverable;  /* access(5) action templates */
		char *action_undeliverable; /* "" = built in, by verify */
		char *action_risky;
		char *action_unknown;
		char *action_pending;
		char *on_error;
		bool skip_null_sender;
		bool skip_sasl;
		struct strlist skip_networks; /* canonical "address/prefix" */
		struct strlist skip_domains;  /* ".d" = the names below d */
	} policy;
};

/*
 * Load path into a new config.  On failure returns NULL and writes one line
 * into err: "FILE:LINE: key 'smtp.port': 70000 is out of range 1..65535".
 * The names in socket_allow_users and socket_allow_groups are looked up
 * here (getpwnam/getgrnam): a name that does not resolve is an error too.
 */
struct config *config_load(const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* The built-in defaults (what an empty file gives). */
struct config *config_defaults(void) __attribute__((warn_unused_result));
void config_free(struct config *cfg);

/* Keys whose new value needs a restart; fills names of those that differ
 * between old and new (comma-separated) and returns how many. */
size_t config_restart_keys(const struct config *old, const struct config *new_cfg,
    char *names, size_t cap);

/* Walk the key table: for docs and the sample-config test.  Calls fn once
 * per key with its dotted name, type word and default as written in a file. */
void config_each_key(void (*fn)(const char *name, const char *type,
    const char *default_text, bool reloadable, void *ctx), void *ctx);

#endif
