/*
 * commands — one handler per control verb, dispatched from a table indexed
 * by codec.h's verb enum, so the protocol, the client's usage text and this
 * table cannot drift apart.
 *
 * Every handler answers its slot exactly once.  Address syntax is judged
 * here, before anything else: bad syntax is a verdict (undeliverable,
 * reason=syntax) and never reaches the cache or the network.
 *
 * VERIFY asks the engine: a cached verdict answers at once; otherwise the
 * answer comes when the probe ends, or at the request's timeout= with
 * reason=pending while the probe runs on into the cache.  Once probed is
 * stopping, VERIFY starts no probe: the cache answers, or pending.  CHECK, DOMAIN
 * and FORGET read or drop the engine's knowledge and never probe.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "address.h"
#include "codec.h"
#include "commands.h"
#include "engine.h"
#include "log.h"
#include "stats.h"

typedef enum commands_next (*verb_handler)(struct ctl_slot *, const struct ctl_request *);

static enum commands_next cmd_verify(struct ctl_slot *, const struct ctl_request *);
static enum commands_next cmd_check(struct ctl_slot *, const struct ctl_request *);
static enum commands_next cmd_domain(struct ctl_slot *, const struct ctl_request *);
static enum commands_next cmd_forget(struct ctl_slot *, const struct ctl_request *);
static enum commands_next cmd_stats(struct ctl_slot *, const struct ctl_request *);
static enum commands_next cmd_ping(struct ctl_slot *, const struct ctl_request *);
static enum commands_next cmd_quit(struct ctl_slot *, const struct ctl_request *);

/* One VERIFY waiting for its probe. */
struct pending_verify {
	struct pending_verify *prev, *next;
	struct ctl_slot *slot;    /* NULL once answered (timeout= passed) */
	struct engine_waiter *waiter;
	ev_timer timeout;         /* the request's timeout= */
	size_t address_len;
	char address[];
};

static struct {
	struct ev_loop *loop;
	struct engine *engine;
	struct pending_verify *pending;
	bool stopping;            /* commands_shutdown() ran: start no probe */
} cmds;

static const verb_handler handlers[CTL__VERB_COUNT] = {
	[CTL_VERIFY] = cmd_verify,
	[CTL_CHECK] = cmd_check,
	[CTL_DOMAIN] = cmd_domain,
	[CTL_FORGET] = cmd_forget,
	[CTL_STATS] = cmd_stats,
	[CTL_PING] = cmd_ping,
	[CTL_QUIT] = cmd_quit,
};

/* A formatter that returned 0 means the answer did not fit: say so rather
 * than leave the request unanswered. */
static void
reply(struct ctl_slot *slot, const char *buf, size_t len)
{
	static const char overflow[] = "error internal text=\"answer too long\"\n";

	if (len == 0) {
		log_err("commands answer did not fit in %d octets", COMMANDS_REPLY_MAX);
		ctl_slot_reply(slot, overflow, sizeof(overflow) - 1);
		return;
	}
	ctl_slot_reply(slot, buf, len);
}

static void
reply_error(struct ctl_slot *slot, const char *reason, const char *text)
{
	char buf[COMMANDS_REPLY_MAX];

	stats.errors++;
	reply(slot, buf, ctl_fmt_error(buf, sizeof(buf), reason, text));
}

static void
reply_result(struct ctl_slot *slot, const char *address, size_t len,
    const struct ctl_result *r)
{
	char buf[COMMANDS_REPLY_MAX];

	stats.reasons[r->reason]++;
	reply(slot, buf, ctl_fmt_result(buf, sizeof(buf), address, len, r));
}

static void
reply_reason(struct ctl_slot *slot, const struct ctl_request *req, enum reason reason,
    const char *text)
{
	struct ctl_result r;

	ctl_result_init(&r, reason);
	if (text != NULL)
		snprintf(r.text, sizeof(r.text), "%s", text);
	reply_result(slot, req->arg, req->arg_len, &r);
}

/* Syntax first, for VERIFY and CHECK alike: bad syntax goes no further. */
static bool
syntax_ok(struct ctl_slot *slot, const struct ctl_request *req)
{
	struct address a;
	enum address_error e = address_parse(req->arg, req->arg_len, &a);

	if (e == ADDRESS_OK)
		return true;
	if (log_enabled(LOG_DEBUG)) {
		char shown[128];
		log_debug("request %s syntax address=\"%s\" error=\"%s\"",
		    ctl_verb_name(req->verb),
		    log_printable(shown, sizeof(shown), req->arg, req->arg_len),
		    address_strerror(e));
	}
	reply_reason(slot, req, REASON_SYNTAX, NULL);
	return false;
}

static void
pending_free(struct pending_verify *pv)
{
	ev_timer_stop(cmds.loop, &pv->timeout);
	if (pv->prev != NULL)
		pv->prev->next = pv->next;
	else
		cmds.pending = pv->next;
	if (pv->next != NULL)
		pv->next->prev = pv->prev;
	free(pv);
}

static void
on_probe_done(const struct ctl_result *r, void *arg)
{
	struct pending_verify *pv = arg;

	pv->waiter = NULL;
	if (pv->slot != NULL)
		reply_result(pv->slot, pv->address, pv->address_len, r);
	pending_free(pv);
}

static void
answer_pending(struct pending_verify *pv, const char *text)
{
	struct ctl_result r;

	ctl_result_init(&r, REASON_PENDING);
	if (text != NULL)
		snprintf(r.text, sizeof(r.text), "%s", text);
	reply_result(pv->slot, pv->address, pv->address_len, &r);
	pv->slot = NULL;
}

static void
on_verify_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pending_verify *pv = w->data;

	/* The client stops waiting; the probe runs on into the cache. */
	answer_pending(pv, NULL);
	engine_waiter_cancel(pv->waiter);
	pending_free(pv);
}

static enum commands_next
cmd_verify(struct ctl_slot *slot, const struct ctl_request *req)
{
	struct ctl_result now;

	if (!syntax_ok(slot, req))
		return COMMANDS_CONTINUE;
	if (cmds.stopping) {
		/* Lines read before SIGTERM are still being answered; a probe
		 * started now would hold the client until the drain timeout
		 * closes it unanswered.  Answer like the VERIFYs that were
		 * waiting: from the cache, or pending. */
		if (!req->fresh) {
			engine_check(cmds.engine, req->arg, req->arg_len, &now);
			if (now.reason != REASON_NOT_CACHED) {
				reply_result(slot, req->arg, req->arg_len, &now);
				return COMMANDS_CONTINUE;
			}
		}
		reply_reason(slot, req, REASON_PENDING, "probed is stopping");
		return COMMANDS_CONTINUE;
	}
	struct pending_verify *pv = malloc(sizeof(*pv) + req->arg_len + 1);
	if (pv == NULL) {
		reply_reason(slot, req, REASON_BUSY, "out of memory");
		return COMMANDS_CONTINUE;
	}
	memset(pv, 0, sizeof(*pv));
	pv->slot = slot;
	pv->address_len = req->arg_len;
	memcpy(pv->address, req->arg, req->arg_len);
	pv->address[req->arg_len] = '\0';
	ev_timer_init(&pv->timeout, on_verify_timeout, req->timeout_ms / 1000., 0.);
	pv->timeout.data = pv;

	if (engine_verify(cmds.engine, pv->address, pv->address_len, req->fresh, &now,
	        on_probe_done, pv, &pv->waiter) == ENGINE_NOW) {
		reply_result(slot, pv->address, pv->address_len, &now);
		free(pv);
		return COMMANDS_CONTINUE;
	}
	pv->next = cmds.pending;
	if (cmds.pending != NULL)
		cmds.pending->prev = pv;
	cmds.pending = pv;
	if (req->has_timeout)
		ev_timer_start(cmds.loop, &pv->timeout);
	return COMMANDS_CONTINUE;
}

static enum commands_next
cmd_check(struct ctl_slot *slot, const struct ctl_request *req)
{
	struct ctl_result r;

	if (!syntax_ok(slot, req))
		return COMMANDS_CONTINUE;
	engine_check(cmds.engine, req->arg, req->arg_len, &r);
	reply_result(slot, req->arg, req->arg_len, &r);
	return COMMANDS_CONTINUE;
}

static enum commands_next
cmd_domain(struct ctl_slot *slot, const struct ctl_request *req)
{
	char buf[COMMANDS_REPLY_MAX];
	bool utf8;
	enum address_error e = address_parse_domain(req->arg, req->arg_len, &utf8);

	if (e != ADDRESS_OK) {
		reply_error(slot, "bad_argument", address_strerror(e));
		return COMMANDS_CONTINUE;
	}
	reply(slot, buf, engine_domain(cmds.engine, req->arg, req->arg_len, buf, sizeof(buf)));
	return COMMANDS_CONTINUE;
}

static enum commands_next
cmd_forget(struct ctl_slot *slot, const struct ctl_request *req)
{
	char buf[COMMANDS_REPLY_MAX], n[24];
	struct address a;
	bool utf8;
	enum address_error e = address_parse(req->arg, req->arg_len, &a);

	if (e == ADDRESS_NO_AT)
		e = address_parse_domain(req->arg, req->arg_len, &utf8);
	if (e != ADDRESS_OK) {
		reply_error(slot, "bad_argument", address_strerror(e));
		return COMMANDS_CONTINUE;
	}
	snprintf(n, sizeof(n), "%zu", engine_forget(cmds.engine, req->arg, req->arg_len));
	const char *kv[] = { "n", n, NULL };
	reply(slot, buf, ctl_fmt_line(buf, sizeof(buf), "forgotten", NULL, kv));
	return COMMANDS_CONTINUE;
}

static enum commands_next
cmd_stats(struct ctl_slot *slot, const struct ctl_request *req)
{
	char buf[COMMANDS_REPLY_MAX];
	struct engine_counters ec;

	engine_counters(cmds.engine, &ec);
	reply(slot, buf, stats_format(buf, sizeof(buf), &ec, engine_inflight(cmds.engine)));
	return COMMANDS_CONTINUE;
}

static enum commands_next
cmd_ping(struct ctl_slot *slot, const struct ctl_request *req)
{
	ctl_slot_reply(slot, "pong\n", 5);
	return COMMANDS_CONTINUE;
}

static enum commands_next
cmd_quit(struct ctl_slot *slot, const struct ctl_request *req)
{
	ctl_slot_reply(slot, "bye\n", 4);
	return COMMANDS_CLOSE;
}

void
commands_configure(struct ev_loop *loop, struct engine *e)
{
	cmds.loop = loop;
	cmds.engine = e;
}

void
commands_shutdown(void)
{
	cmds.stopping = true;
	while (cmds.pending != NULL) {
		struct pending_verify *pv = cmds.pending;
		engine_waiter_cancel(pv->waiter);
		if (pv->slot != NULL)
			answer_pending(pv, "probed is stopping");
		pending_free(pv);
	}
}

enum commands_next
commands_run(struct ctl_slot *slot, const char *line, size_t len)
{
	struct ctl_request req;
	struct ctl_error err;

	if (!ctl_parse_request(line, len, &req, &err)) {
		reply_error(slot, err.reason, err.text);
		return COMMANDS_CONTINUE;
	}
	stats.verbs[req.verb]++;
	return handlers[req.verb](slot, &req);
}

void
commands_line_too_long(struct ctl_slot *slot)
{
	stats.lines_too_long++;
	reply_error(slot, "line_too_long", NULL);
}
