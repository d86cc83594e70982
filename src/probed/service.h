/*
 * service — what probed tells its supervisor (sd_notify(3)): READY=1,
 * RELOADING=1, STOPPING=1, a STATUS= line, and the watchdog's WATCHDOG=1.
 *
 * Every call is a no-op when NOTIFY_SOCKET is unset (probed started by hand
 * or by a supervisor that is not systemd), so callers never ask first.
 *
 * The watchdog pings from a libev timer at half the interval systemd asked
 * for (WatchdogSec= → WATCHDOG_USEC): a loop that hangs stops pinging and
 * systemd restarts the service, which is the point of it.
 */
#ifndef PROBED_SERVICE_H
#define PROBED_SERVICE_H

#include <stdint.h>

#include <ev.h>

/* READY=1 with status as the STATUS= line ("serving; ..."). */
void service_ready(const char *status);
/* RELOADING=1 (with MONOTONIC_USEC=, as systemd 253's notify-reload wants). */
void service_reloading(void);
/* STOPPING=1 (say why and how far with service_status()). */
void service_stopping(void);
/* STATUS= alone: what `systemctl status probed` shows. */
void service_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Start pinging WATCHDOG=1 from loop when the supervisor asked for it
 * (sd_watchdog_enabled: WATCHDOG_USEC set, WATCHDOG_PID unset or ours).
 * Returns the ping interval in microseconds, 0 when no watchdog was asked
 * for, or -1 when the variables are malformed (err says why; probed then
 * runs without a watchdog rather than not at all).
 */
int64_t service_watchdog_start(struct ev_loop *loop, char *err, size_t errlen);
void service_watchdog_stop(struct ev_loop *loop);

#endif
