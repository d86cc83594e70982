/*
 * service — supervisor notifications and the watchdog.  See service.h.
 *
 * Owns: the one watchdog timer of the process (systemd watches the main
 * process, so there is exactly one).  The ping is sent from the event loop
 * on purpose: a thread or a signal would keep pinging while the loop is
 * stuck, and a stuck loop is what the watchdog is there to catch.
 *
 * Limits: the ping interval is half of WATCHDOG_USEC, never below
 * WATCHDOG_MIN_INTERVAL, so an absurdly small WatchdogSec= cannot turn the
 * loop into a busy wait (systemd then kills probed, which says the same).
 *
 * Security: NOTIFY_SOCKET and WATCHDOG_* come from the environment the
 * supervisor set; libsystemd parses them (bounded).  A STATUS= text may
 * quote a configuration error, so control characters in it are replaced:
 * a newline would start a new assignment (READY=1, MAINPID=...) of its own.
 * Nothing from a client ever reaches a notification.
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "service.h"

#define WATCHDOG_MIN_INTERVAL 0.001 /* seconds */

static ev_timer watchdog_timer;
static bool watchdog_running;

static void
notify(const char *state)
{
	int r = sd_notify(0, state);

	/* 0: no NOTIFY_SOCKET, nobody to tell.  An error is worth a line but
	 * never a failure: probed serves whether systemd hears it or not. */
	if (r < 0)
		log_warning("service sd_notify failed error=\"%s\"", strerror(-r));
}

/* Control characters (newline above all) become '?'. */
static void
one_line(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

void
service_ready(const char *status)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), "READY=1\nSTATUS=");

	snprintf(msg + n, sizeof(msg) - (size_t)n, "%s", status);
	one_line(msg + n);
	notify(msg);
}

void
service_reloading(void)
{
	struct timespec ts;
	char msg[128];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\n"
	    "STATUS=reloading configuration",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL);
	notify(msg);
}

void
service_stopping(void)
{
	notify("STOPPING=1");
}

void
service_status(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n;

	n = snprintf(msg, sizeof(msg), "STATUS=");
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	one_line(msg + n);
	notify(msg);
}

static void
on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
	notify("WATCHDOG=1");
}

int64_t
service_watchdog_start(struct ev_loop *loop, char *err, size_t errlen)
{
	uint64_t usec = 0;
	int r = sd_watchdog_enabled(0, &usec);

	if (r < 0) {
		snprintf(err, errlen, "WATCHDOG_USEC/WATCHDOG_PID: %s", strerror(-r));
		return -1;
	}
	if (r == 0 || usec == 0)
		return 0;
	double interval = (double)usec / 2e6;
	if (interval < WATCHDOG_MIN_INTERVAL)
		interval = WATCHDOG_MIN_INTERVAL;
	/* First ping on the loop's first turn, then every interval. */
	ev_timer_init(&watchdog_timer, on_watchdog, 0., interval);
	ev_timer_start(loop, &watchdog_timer);
	watchdog_running = true;
	return (int64_t)(interval * 1e6);
}

void
service_watchdog_stop(struct ev_loop *loop)
{
	if (!watchdog_running)
		return;
	ev_timer_stop(loop, &watchdog_timer);
	watchdog_running = false;
}
