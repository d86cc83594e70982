/*
 * probed — command line, start-up, privileges, signals and the service
 * lifecycle.
 *
 * probed never forks: systemd (Type=notify) and every other supervisor want
 * the process they started.  Start-up is: load the configuration (exit 78 on
 * any error), decide who to run as, take the control socket (bound here, or
 * passed by systemd), drop privileges when started as root, build the
 * verification engine (resolver, TLS), tell the supervisor READY=1, run the
 * loop.  SIGHUP reloads into a fresh configuration that replaces the running
 * one only when it loaded whole; SIGTERM and SIGINT stop accepting, answer
 * what was already read, remove the socket and exit 0.
 *
 * SECURITY: probed never probes as root.  Started as root it binds its
 * socket, creates its runtime and state directories for `user`, then sets
 * its groups, GID and UID (real, effective and saved) to `user`/`group` and
 * checks that root cannot be regained -- all before the resolver opens its
 * socket or any SMTP session starts.  Started as root with no `user` (or
 * with user root) it refuses to start (exit 78).  Started as anyone else it
 * has nothing to drop: the supervisor chose the account (User= in the unit).
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>
#include <systemd/sd-daemon.h>

#include "classify.h"
#include "commands.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "service.h"
#include "stats.h"
#include "engine.h"

#define EXIT_USAGE 64 /* sysexits.h EX_USAGE */

/* Descriptors kept back from control clients: stdio, the journal, the
 * listener, the resolver and the store, plus a quarter of the limit for
 * SMTP sessions -- a crowd of clients must not make every probe fail with
 * EMFILE (and cache that as connect_failed). */
#define FD_RESERVE_FIXED 32
#define NOFILE_RAISE_MAX 1048576

/* Who probed runs as once start-up is over. */
struct identity {
	bool drop;               /* started as root: become uid/gid */
	bool user_ignored;       /* `user` set, but we were not root */
	uid_t uid;
	gid_t gid;
	char user[256];          /* for initgroups() and messages */
	char group[256];
};

struct daemon {
	struct ev_loop *loop;
	const char *config_path;
	struct config *cfg;
	struct control *ctl;
	struct engine *engine;
	ev_signal sigterm, sigint, sighup;
	bool stopping;
	rlim_t nofile;           /* RLIMIT_NOFILE once raised */
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: probed [-f] [-c FILE]     run the daemon (never forks)\n"
	    "       probed -t [-c FILE]       check the configuration and exit\n"
	    "       probed --classify         explain server replies read from stdin\n"
	    "       probed -h | -V\n"
	    "  -c FILE  configuration file (default " CONFIG_DEFAULT_PATH ")\n"
	    "  -f       log to stderr instead of the journal\n"
	    "  -t       test the configuration: exit 0 if valid, 78 if not\n");
}

/* READY=1 with a STATUS= line for `systemctl status`; refused is the
 * reason a reload was just refused, or NULL. */
static void
notify_ready(const char *refused)
{
	char status[480];

	/* The reason is cut to fit: the journal has the whole message. */
	snprintf(status, sizeof(status), "serving; %llu clients, %llu requests so far%s%.300s",
	    (unsigned long long)stats.clients, (unsigned long long)stats.requests,
	    refused != NULL ? "; reload refused: " : "", refused != NULL ? refused : "");
	service_ready(status);
}

static void
on_shutdown_done(void *arg)
{
	struct daemon *d = arg;

	log_info("probed stopped requests=%llu", (unsigned long long)stats.requests);
	ev_break(d->loop, EVBREAK_ALL);
}

static void
on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;

	if (d->stopping) {
		log_notice("probed signal=%s while stopping: still draining %llu clients",
		    strsignal(w->signum), (unsigned long long)stats.clients);
		return;
	}
	d->stopping = true;
	log_notice("probed stopping signal=%s clients=%llu", strsignal(w->signum),
	    (unsigned long long)stats.clients);
	service_stopping();
	service_status("stopping; draining %llu clients", (unsigned long long)stats.clients);
	ev_signal_stop(loop, &d->sighup);
	commands_shutdown();
	control_shutdown(d->ctl, on_shutdown_done, d);
}

/* The soft RLIMIT_NOFILE, raised to the hard one: systemd and most shells
 * leave it at 1024 for the sake of select(), which probed does not use. */
static rlim_t
nofile_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return RLIM_INFINITY;
	rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > NOFILE_RAISE_MAX ?
	    NOFILE_RAISE_MAX : rl.rlim_max;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		struct rlimit up = { .rlim_cur = want, .rlim_max = rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = want;
	}
	return rl.rlim_cur;
}

/* limits.max_clients, or fewer when the descriptor limit cannot hold that
 * many clients and the reserve: clients past it are told busy instead of
 * waiting in the backlog while accept() fails with EMFILE. */
static unsigned
clients_allowed(const struct daemon *d, const struct config *cfg)
{
	unsigned want = cfg->limits.max_clients;

	if (d->nofile == RLIM_INFINITY)
		return want;
	rlim_t reserve = FD_RESERVE_FIXED + d->nofile / 4;
	rlim_t room = d->nofile > reserve ? d->nofile - reserve : 1;
	if (room >= want)
		return want;
	log_warning("probed limits.max_clients=%u but RLIMIT_NOFILE=%llu leaves room for "
	    "%llu clients: more are told busy", want, (unsigned long long)d->nofile,
	    (unsigned long long)room);
	return (unsigned)room;
}

static void
client_limits(const struct config *cfg, struct control_limits *lim)
{
	lim->client_inflight = cfg->limits.client_inflight;
	lim->client_idle_timeout = cfg->limits.client_idle_timeout;
}

static void
apply_config(struct daemon *d, const struct config *cfg)
{
	struct control_limits lim;

	log_set_level(cfg->log_level);
	control_set_max_clients(d->ctl, clients_allowed(d, cfg));
	client_limits(cfg, &lim);
	control_set_limits(d->ctl, &lim);
}

static void
on_reload_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	char err[1024], restart[512];

	service_reloading();
	struct config *cfg = config_load(d->config_path, err, sizeof(err));
	if (cfg == NULL) {
		stats.reload_errors++;
		log_err("reload refused: %s", err);
		notify_ready(err);
		return;
	}
	/* The allow-list first: the one step left that can fail without
	 * having changed anything. */
	if (control_set_access(d->ctl, cfg->allow_uids, cfg->n_allow_uids,
	    cfg->allow_gids, cfg->n_allow_gids) != 0) {
		stats.reload_errors++;
		snprintf(err, sizeof(err), "out of memory for the socket allow-list");
		log_err("reload refused: %s", err);
		config_free(cfg);
		notify_ready(err);
		return;
	}
	if (engine_reconfigure(d->engine, cfg, err, sizeof(err)) != 0) {
		stats.reload_errors++;
		log_err("reload refused: %s", err);
		/* Put the running allow-list back (it was copied before). */
		if (control_set_access(d->ctl, d->cfg->allow_uids, d->cfg->n_allow_uids,
		    d->cfg->allow_gids, d->cfg->n_allow_gids) != 0)
			log_err("reload: out of memory restoring the socket allow-list");
		config_free(cfg);
		notify_ready(err);
		return;
	}
	if (config_restart_keys(d->cfg, cfg, restart, sizeof(restart)) > 0)
		log_warning("reload: changes to %s take effect only after a restart", restart);
	apply_config(d, cfg);
	config_free(d->cfg);
	d->cfg = cfg;
	stats.reloads++;
	log_notice("reload done config=%s", d->config_path);
	notify_ready(NULL);
}

/* systemd socket activation: exactly one listening AF_UNIX stream socket. */
static int
activation_socket(char *err, size_t errlen)
{
	int n = sd_listen_fds(1);

	if (n < 0) {
		snprintf(err, errlen, "sd_listen_fds: %s", strerror(-n));
		return -2;
	}
	if (n == 0)
		return -1;
	if (n > 1) {
		snprintf(err, errlen, "systemd passed %d sockets; probed takes exactly one", n);
		return -2;
	}
	if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0) {
		snprintf(err, errlen, "the socket systemd passed is not a listening "
		    "AF_UNIX stream socket");
		return -2;
	}
	return SD_LISTEN_FDS_START;
}

/* ---- privileges ----------------------------------------------------- */

/*
 * Decide who probed runs as.  Started as root it must become `user` (and
 * `group`, else the user's primary group); every way that cannot be --
 * no user set, a name that does not resolve, root itself -- is a
 * configuration error (-1, exit 78).  Not started as root there is nothing
 * to drop.
 */
static int
identity_resolve(const struct config *cfg, struct identity *id, char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;

	memset(id, 0, sizeof(*id));
	if (getuid() != 0 && geteuid() != 0) {
		/* The supervisor picked the account; a differing `user` is
		 * worth a line once the log is open, not a refusal. */
		if (cfg->user[0] != '\0') {
			pw = getpwnam(cfg->user);
			id->user_ignored = pw == NULL || pw->pw_uid != geteuid();
			snprintf(id->user, sizeof(id->user), "%s", cfg->user);
		}
		return 0;
	}
	if (cfg->user[0] == '\0') {
		snprintf(err, errlen, "will not run as root: set `user` in %s "
		    "(for example: user = \"probed\";)", cfg->path);
		return -1;
	}
	errno = 0;
	if ((pw = getpwnam(cfg->user)) == NULL) {
		snprintf(err, errlen, "%s: user '%s': %s", cfg->path, cfg->user,
		    errno != 0 ? strerror(errno) : "no such user");
		return -1;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "will not run as root: user '%s' in %s has "
		    "UID 0; name an unprivileged account", cfg->user, cfg->path);
		return -1;
	}
	id->drop = true;
	id->uid = pw->pw_uid;
	id->gid = pw->pw_gid;
	snprintf(id->user, sizeof(id->user), "%s", pw->pw_name);
	if (cfg->group[0] != '\0') {
		errno = 0;
		if ((gr = getgrnam(cfg->group)) == NULL) {
			snprintf(err, errlen, "%s: group '%s': %s", cfg->path, cfg->group,
			    errno != 0 ? strerror(errno) : "no such group");
			return -1;
		}
		id->gid = gr->gr_gid;
		snprintf(id->group, sizeof(id->group), "%s", gr->gr_name);
	} else {
		gr = getgrgid(id->gid);
		if (gr != NULL)
			snprintf(id->group, sizeof(id->group), "%s", gr->gr_name);
		else
			snprintf(id->group, sizeof(id->group), "%lu", (unsigned long)id->gid);
	}
	if (id->gid == 0) {
		snprintf(err, errlen, "will not run in group root (GID 0): set `group` "
		    "in %s to an unprivileged group", cfg->path);
		return -1;
	}
	return 0;
}

/*
 * Create a missing directory for the account probed is about to become:
 * mode, owner and group set on the directory just made (opened with
 * O_NOFOLLOW, so a symlink raced into its place is not followed).  An
 * existing directory is left as it is: it may be shared, and its owner
 * knows better.
 */
static int
dir_for(const char *path, mode_t mode, const struct identity *id, char *err,
    size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return 0;
		snprintf(err, errlen, "%s exists and is not a directory", path);
		return -1;
	}
	if (errno != ENOENT) {
		snprintf(err, errlen, "cannot check directory %s: %s", path, strerror(errno));
		return -1;
	}
	if (mkdir(path, 0700) != 0) {
		if (errno == EEXIST)
			return 0; /* made meanwhile by someone else: theirs */
		snprintf(err, errlen, "cannot create directory %s: %s", path, strerror(errno));
		return -1;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchown(fd, id->uid, id->gid) != 0 || fchmod(fd, mode) != 0) {
		snprintf(err, errlen, "cannot give directory %s to %s:%s: %s", path,
		    id->user, id->group, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	log_info("probed created directory %s owner=%s group=%s mode=%04o", path,
	    id->user, id->group, (unsigned)mode);
	return 0;
}

/* A missing socket directory is made the account's, so that the
 * unprivileged daemon can remove its socket at exit (under systemd,
 * RuntimeDirectory= does this).  Anything else that is wrong with the path
 * control_open() reports, naming the socket. */
static int
socket_dir_for(const char *sock, const struct identity *id, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)NULL)->sun_path)];
	struct stat st;

	if (strlen(sock) >= sizeof(dir))
		return 0;
	snprintf(dir, sizeof(dir), "%s", sock);
	const char *parent = dirname(dir);
	if (lstat(parent, &st) == 0 || errno != ENOENT)
		return 0;
	return dir_for(parent, 0755, id, err, errlen);
}

/*
 * The socket was bound as root: make it the daemon's, so that "" in
 * socket_owner and socket_group means the user and group probed runs as
 * (the group Postfix is added to), as it does when probed binds
 * unprivileged.  A named socket_owner or socket_group was applied by
 * control_open() already and is left as it is.
 */
static int
socket_give(const struct config *cfg, const struct identity *id, char *err, size_t errlen)
{
	uid_t uid = cfg->socket_owner[0] == '\0' ? id->uid : (uid_t)-1;
	gid_t gid = cfg->socket_group[0] == '\0' ? id->gid : (gid_t)-1;

	if (lchown(cfg->socket, uid, gid) != 0) {
		snprintf(err, errlen, "cannot give socket %s to %s: %s", cfg->socket,
		    id->user, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Become id for good: supplementary groups, then GID, then UID (real,
 * effective and saved), then prove it -- every ID is what was asked and
 * root cannot be had back.  Any failure is fatal: half-dropped privileges
 * are worse than none, because they look like a drop.
 */
static int
privileges_drop(const struct identity *id, char *err, size_t errlen)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (initgroups(id->user, id->gid) != 0) {
		snprintf(err, errlen, "initgroups(%s): %s", id->user, strerror(errno));
		return -1;
	}
	if (setresgid(id->gid, id->gid, id->gid) != 0) {
		snprintf(err, errlen, "setresgid(%lu): %s", (unsigned long)id->gid,
		    strerror(errno));
		return -1;
	}
	if (setresuid(id->uid, id->uid, id->uid) != 0) {
		snprintf(err, errlen, "setresuid(%lu): %s", (unsigned long)id->uid,
		    strerror(errno));
		return -1;
	}
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 ||
	    ru != id->uid || eu != id->uid || su != id->uid ||
	    rg != id->gid || eg != id->gid || sg != id->gid) {
		snprintf(err, errlen, "privileges not dropped: IDs are not %lu:%lu",
		    (unsigned long)id->uid, (unsigned long)id->gid);
		return -1;
	}
	if (setuid(0) != -1 || setgid(0) != -1) {
		snprintf(err, errlen, "privileges not dropped: root can be regained");
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "test", no_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "classify", no_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon d = { .config_path = CONFIG_DEFAULT_PATH };
	bool foreground = false, test_only = false, classify = false;
	char err[1024];
	int opt;

	while ((opt = getopt_long(argc, argv, "c:fthV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			d.config_path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 't':
			test_only = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("probed %s\n", PACKAGE_VERSION);
			return 0;
		case 'C':
			classify = true;
			break;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "probed: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}

	if (classify)
		return classify_main(stdin, stdout); /* no configuration needed */

	d.cfg = config_load(d.config_path, err, sizeof(err));
	if (d.cfg == NULL) {
		fprintf(stderr, "probed: %s\n", err);
		return EX_CONFIG_STATUS;
	}
	if (test_only) {
		printf("probed: %s: configuration ok\n", d.config_path);
		config_free(d.cfg);
		return 0;
	}
	struct identity id;
	if (identity_resolve(d.cfg, &id, err, sizeof(err)) != 0) {
		fprintf(stderr, "probed: %s\n", err);
		config_free(d.cfg);
		return EX_CONFIG_STATUS;
	}

	log_open("probed", foreground ? LOG_TARGET_STDERR : LOG_TARGET_JOURNAL);
	log_set_level(d.cfg->log_level);
	if (id.user_ignored)
		log_notice("probed user=%s ignored: not started as root, running as uid=%lu",
		    id.user, (unsigned long)geteuid());
	stats_init();
	d.nofile = nofile_raise();
	/* Writes to vanished clients must fail with EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);

	d.loop = ev_default_loop(EVFLAG_AUTO);
	if (d.loop == NULL) {
		log_crit("probed cannot start: libev found no usable backend");
		config_free(d.cfg);
		return 1;
	}

	int fd = activation_socket(err, sizeof(err));
	if (fd == -2) {
		log_crit("probed cannot start: %s", err);
		config_free(d.cfg);
		return 1;
	}
	if (id.drop && fd < 0 && socket_dir_for(d.cfg->socket, &id, err, sizeof(err)) != 0)
		goto fail_early;
	struct control_params cp = {
		.path = d.cfg->socket,
		.mode = d.cfg->socket_mode,
		.group = d.cfg->socket_group,
		.owner = d.cfg->socket_owner,
		.fd = fd,
		.max_clients = clients_allowed(&d, d.cfg),
		.allow_uids = d.cfg->allow_uids,
		.n_allow_uids = d.cfg->n_allow_uids,
		.allow_gids = d.cfg->allow_gids,
		.n_allow_gids = d.cfg->n_allow_gids,
	};
	client_limits(d.cfg, &cp.limits);
	/* systemd made the socket: probed.socket's SocketMode=, SocketUser=
	 * and SocketGroup= decide, not ours. */
	if (fd >= 0 && (d.cfg->socket_owner[0] != '\0' || d.cfg->socket_group[0] != '\0' ||
	    d.cfg->socket_mode != 0660))
		log_notice("probed socket_mode, socket_owner and socket_group ignored: "
		    "systemd passed the socket (set SocketMode=, SocketUser=, "
		    "SocketGroup= in probed.socket)");
	d.ctl = control_open(d.loop, &cp, err, sizeof(err));
	if (d.ctl == NULL)
		goto fail_early;
	if (id.drop) {
		if ((fd < 0 && socket_give(d.cfg, &id, err, sizeof(err)) != 0) ||
		    dir_for(d.cfg->state_dir, 0750, &id, err, sizeof(err)) != 0 ||
		    privileges_drop(&id, err, sizeof(err)) != 0)
			goto fail;
		log_info("probed running as user=%s uid=%lu group=%s gid=%lu", id.user,
		    (unsigned long)id.uid, id.group, (unsigned long)id.gid);
	}
	if (access(d.cfg->state_dir, W_OK | X_OK) != 0)
		log_warning("probed state_dir=%s is not writable: %s", d.cfg->state_dir,
		    strerror(errno));

	/* Only now, unprivileged: the resolver's socket, the TLS context, the
	 * store in state_dir (its files belong to the user). */
	d.engine = engine_new(d.loop, d.cfg, err, sizeof(err));
	if (d.engine == NULL)
		goto fail;
	commands_configure(d.loop, d.engine);

	ev_signal_init(&d.sigterm, on_stop_signal, SIGTERM);
	ev_signal_init(&d.sigint, on_stop_signal, SIGINT);
	ev_signal_init(&d.sighup, on_reload_signal, SIGHUP);
	d.sigterm.data = d.sigint.data = d.sighup.data = &d;
	ev_signal_start(d.loop, &d.sigterm);
	ev_signal_start(d.loop, &d.sigint);
	ev_signal_start(d.loop, &d.sighup);

	control_start(d.ctl);
	log_notice("probed %s started config=%s socket=%s%s", PACKAGE_VERSION, d.config_path,
	    d.cfg->socket, fd >= 0 ? " (socket activation)" : "");
	notify_ready(NULL);
	int64_t wd = service_watchdog_start(d.loop, err, sizeof(err));
	if (wd < 0)
		log_warning("probed watchdog not started: %s", err);
	else if (wd > 0)
		log_info("probed watchdog ping_interval_ms=%lld", (long long)(wd / 1000));

	ev_run(d.loop, 0);

	service_watchdog_stop(d.loop);
	control_free(d.ctl);
	engine_free(d.engine);
	config_free(d.cfg);
	ev_loop_destroy(d.loop);
	return 0;

fail:
	control_free(d.ctl);
fail_early:
	/* Also on stderr: this is what an admin starting by hand sees. */
	if (!foreground)
		fprintf(stderr, "probed: %s\n", err);
	log_crit("probed cannot start: %s", err);
	config_free(d.cfg);
	ev_loop_destroy(d.loop);
	return 1;
}
