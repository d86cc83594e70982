/*
 * probed — command line, start-up, signals and the service lifecycle.
 *
 * probed never forks: systemd (Type=notify) and every other supervisor want
 * the process they started.  Start-up is: load the configuration (exit 78 on
 * any error), take the control socket (bound here, or passed by systemd),
 * tell the supervisor READY=1, run the loop.  SIGHUP reloads into a fresh
 * configuration that replaces the running one only when it loaded whole;
 * SIGTERM and SIGINT stop accepting, answer what was already read, remove
 * the socket and exit 0.
 */
#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <systemd/sd-daemon.h>

#include "classify.h"
#include "commands.h"
#include "config.h"
#include "control.h"
#include "log.h"
#include "stats.h"
#include "verify.h"

#define EXIT_USAGE 64 /* sysexits.h EX_USAGE */

struct daemon {
	struct ev_loop *loop;
	const char *config_path;
	struct config *cfg;
	struct control *ctl;
	struct verifier *verifier;
	ev_signal sigterm, sigint, sighup;
	bool stopping;
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

/* READY=1 with a STATUS= line for `systemctl status`. */
static void
notify_ready(void)
{
	sd_notifyf(0, "READY=1\nSTATUS=serving; %llu clients, %llu requests so far",
	    (unsigned long long)stats.clients, (unsigned long long)stats.requests);
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
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
	ev_signal_stop(loop, &d->sighup);
	commands_shutdown();
	control_shutdown(d->ctl, on_shutdown_done, d);
}

static void
apply_config(struct daemon *d, const struct config *cfg)
{
	log_set_level(cfg->log_level);
	control_set_max_clients(d->ctl, cfg->limits.max_clients);
	commands_configure(d->verifier, cfg);
}

static void
on_reload_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct daemon *d = w->data;
	char err[1024], restart[512];

	sd_notify(0, "RELOADING=1\nSTATUS=reloading configuration");
	struct config *cfg = config_load(d->config_path, err, sizeof(err));
	if (cfg == NULL) {
		stats.reload_errors++;
		log_err("reload refused: %s", err);
		notify_ready();
		return;
	}
	if (verifier_reconfigure(d->verifier, cfg, err, sizeof(err)) != 0) {
		stats.reload_errors++;
		log_err("reload refused: %s", err);
		config_free(cfg);
		notify_ready();
		return;
	}
	if (config_restart_keys(d->cfg, cfg, restart, sizeof(restart)) > 0)
		log_warning("reload: changes to %s take effect only after a restart", restart);
	apply_config(d, cfg);
	config_free(d->cfg);
	d->cfg = cfg;
	stats.reloads++;
	log_notice("reload done config=%s", d->config_path);
	notify_ready();
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

	log_open("probed", foreground ? LOG_TARGET_STDERR : LOG_TARGET_JOURNAL);
	log_set_level(d.cfg->log_level);
	stats_init();
	/* Writes to vanished clients must fail with EPIPE, not kill us. */
	signal(SIGPIPE, SIG_IGN);

	d.loop = ev_default_loop(EVFLAG_AUTO);
	if (d.loop == NULL) {
		log_crit("probed cannot start: libev found no usable backend");
		config_free(d.cfg);
		return 1;
	}

	d.verifier = verifier_new(d.loop, d.cfg, err, sizeof(err));
	if (d.verifier == NULL) {
		if (!foreground)
			fprintf(stderr, "probed: %s\n", err);
		log_crit("probed cannot start: %s", err);
		config_free(d.cfg);
		return 1;
	}
	commands_configure(d.verifier, d.cfg);

	int fd = activation_socket(err, sizeof(err));
	if (fd == -2) {
		log_crit("probed cannot start: %s", err);
		verifier_free(d.verifier);
		config_free(d.cfg);
		return 1;
	}
	struct control_params cp = {
		.path = d.cfg->socket,
		.mode = d.cfg->socket_mode,
		.group = d.cfg->socket_group,
		.fd = fd,
		.max_clients = d.cfg->limits.max_clients,
	};
	d.ctl = control_open(d.loop, &cp, err, sizeof(err));
	if (d.ctl == NULL) {
		/* Also on stderr: this is what an admin starting by hand sees. */
		if (!foreground)
			fprintf(stderr, "probed: %s\n", err);
		log_crit("probed cannot start: %s", err);
		verifier_free(d.verifier);
		config_free(d.cfg);
		return 1;
	}

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
	notify_ready();

	ev_run(d.loop, 0);

	control_free(d.ctl);
	verifier_free(d.verifier);
	config_free(d.cfg);
	ev_loop_destroy(d.loop);
	return 0;
}
