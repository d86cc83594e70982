/*
 * commands — one handler per control verb, dispatched from a table indexed
 * by codec.h's verb enum, so the protocol, the client's usage text and this
 * table cannot drift apart.
 *
 * Every handler answers its slot exactly once.  Address syntax is judged
 * here, before anything else: bad syntax is a verdict (undeliverable,
 * reason=syntax) and never reaches the cache or the network.
 *
 * BUGS: the verification engine and the caches do not exist yet, so VERIFY
 * of a well-formed address answers as CHECK does (reason=not_cached),
 * DOMAIN knows nothing and FORGET has nothing to drop.
 */
#include "autoconfig.h"

#include <stdio.h>

#include "address.h"
#include "codec.h"
#include "commands.h"
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
reply_result(struct ctl_slot *slot, const struct ctl_request *req,
    const struct ctl_result *r)
{
	char buf[COMMANDS_REPLY_MAX];

	reply(slot, buf, ctl_fmt_result(buf, sizeof(buf), req->arg, req->arg_len, r));
}

/* VERIFY and CHECK share everything until the cache and engine exist. */
static void
answer_address(struct ctl_slot *slot, const struct ctl_request *req)
{
	struct address a;
	struct ctl_result r;
	enum address_error e = address_parse(req->arg, req->arg_len, &a);

	if (e != ADDRESS_OK) {
		if (log_enabled(LOG_DEBUG)) {
			char shown[128];
			log_debug("request %s syntax address=\"%s\" error=\"%s\"",
			    ctl_verb_name(req->verb),
			    log_printable(shown, sizeof(shown), req->arg, req->arg_len),
			    address_strerror(e));
		}
		ctl_result_init(&r, REASON_SYNTAX);
	} else {
		ctl_result_init(&r, REASON_NOT_CACHED);
	}
	reply_result(slot, req, &r);
}

static enum commands_next
cmd_verify(struct ctl_slot *slot, const struct ctl_request *req)
{
	answer_address(slot, req);
	return COMMANDS_CONTINUE;
}

static enum commands_next
cmd_check(struct ctl_slot *slot, const struct ctl_request *req)
{
	answer_address(slot, req);
	return COMMANDS_CONTINUE;
}

static enum commands_next
cmd_domain(struct ctl_slot *slot, const struct ctl_request *req)
{
	char buf[COMMANDS_REPLY_MAX], subject[ADDRESS_DOMAIN_MAX + 1];
	bool utf8;
	enum address_error e = address_parse_domain(req->arg, req->arg_len, &utf8);

	if (e != ADDRESS_OK) {
		reply_error(slot, "bad_argument", address_strerror(e));
		return COMMANDS_CONTINUE;
	}
	/* A valid domain holds no SP, quote or control octet. */
	snprintf(subject, sizeof(subject), "%.*s", (int)req->arg_len, req->arg);
	static const char *const kv[] = { "cached", "no", NULL };
	reply(slot, buf, ctl_fmt_line(buf, sizeof(buf), "domain", subject, kv));
	return COMMANDS_CONTINUE;
}

static enum commands_next
cmd_forget(struct ctl_slot *slot, const struct ctl_request *req)
{
	char buf[COMMANDS_REPLY_MAX];
	struct address a;
	bool utf8;
	enum address_error e = address_parse(req->arg, req->arg_len, &a);

	if (e == ADDRESS_NO_AT)
		e = address_parse_domain(req->arg, req->arg_len, &utf8);
	if (e != ADDRESS_OK) {
		reply_error(slot, "bad_argument", address_strerror(e));
		return COMMANDS_CONTINUE;
	}
	static const char *const kv[] = { "n", "0", NULL };
	reply(slot, buf, ctl_fmt_line(buf, sizeof(buf), "forgotten", NULL, kv));
	return COMMANDS_CONTINUE;
}

static enum commands_next
cmd_stats(struct ctl_slot *slot, const struct ctl_request *req)
{
	char buf[COMMANDS_REPLY_MAX];

	reply(slot, buf, stats_format(buf, sizeof(buf)));
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
