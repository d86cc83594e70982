/*
 * test_classify — the SMTP reply classifier (src/probed/classify.c).
 *
 * The corpus tests/unit/data/replies.tsv holds real replies with the
 * verdict and reason each must get; every row goes through
 * classify_split_line() + classify_reply() and through classify_main(), and
 * a failing row is reported with its line number.  The targeted tests pin
 * each stage rule, the invariants no table edit may break (nothing before
 * RCPT is ever "undeliverable"; a 4xx never says the mailbox is gone), the
 * parser's edge cases and `probed --classify`'s input handling.
 *
 * Inputs are copied into heap buffers of their exact length so that ASan
 * catches any read past the end of a reply.
 */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "classify.h"
#include "vocab.h"

#ifndef TEST_SRCDIR
#define TEST_SRCDIR "."
#endif
#define CORPUS_PATH TEST_SRCDIR "/tests/unit/data/replies.tsv"
#define CORPUS_MIN_ROWS 150

#define LEN_STR ((size_t)-1)

static char *
dup_exact(const char *s, size_t n)
{
	char *p = malloc(n > 0 ? n : 1);

	assert_non_null(p);
	if (n > 0)
		memcpy(p, s, n);
	return p;
}

/* classify_split_line() + classify_reply() on an exact-length copy. */
static bool
classify_line(enum smtp_stage stage, const char *line, size_t len,
    struct classification *out)
{
	char *copy = dup_exact(line, len);
	char enhanced[16];
	const char *text;
	size_t text_len;
	int code;
	bool ok = classify_split_line(copy, len, &code, enhanced, &text, &text_len);

	if (ok)
		*out = classify_reply(stage, code, enhanced, text, text_len);
	free(copy);
	return ok;
}

static struct classification
classify_str(enum smtp_stage stage, const char *line)
{
	struct classification c;

	if (!classify_line(stage, line, strlen(line), &c))
		fail_msg("reply line not split: \"%s\"", line);
	return c;
}

/* Runs classify_main over a string; returns its exit status. */
static int
run_main(const char *input, size_t len, char *out, size_t out_cap)
{
	FILE *in = tmpfile();
	FILE *o;
	int status;

	/* A real file: any length, NULs included, as stdin would be. */
	assert_non_null(in);
	/* An empty corpus leaves input NULL: fwrite must not see it. */
	if (len > 0)
		assert_int_equal(fwrite(input, 1, len, in), len);
	rewind(in);
	memset(out, 0, out_cap);
	o = fmemopen(out, out_cap, "w");
	assert_non_null(o);
	status = classify_main(in, o);
	fclose(o);
	fclose(in);
	return status;
}

/* ------------------------------------------------------------------ */
/* the corpus                                                          */
/* ------------------------------------------------------------------ */

struct row {
	unsigned lineno;
	enum smtp_stage stage;
	char *reply;
	bool cont;              /* verdict "continue" */
	enum verdict verdict;
	enum reason reason;
};

struct corpus {
	struct row *rows;
	size_t n, cap;
};

static void
corpus_free(struct corpus *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->rows[i].reply);
	free(c->rows);
}

/* Splits s at tabs into exactly n fields (in place). */
static bool
split_tabs(char *s, char **f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		f[i] = s;
		char *tab = strchr(s, '\t');

		if (i + 1 < n) {
			if (tab == NULL)
				return false;
			*tab = '\0';
			s = tab + 1;
		} else if (tab != NULL) {
			return false;
		}
	}
	return true;
}

static void
corpus_load(struct corpus *c)
{
	const char *path = getenv("CLASSIFY_CORPUS") != NULL ?
	    getenv("CLASSIFY_CORPUS") : CORPUS_PATH;
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	unsigned lineno = 0;
	bool header = false;

	if (f == NULL)
		fail_msg("cannot open %s", path);
	memset(c, 0, sizeof(*c));
	while ((got = getline(&line, &cap, f)) >= 0) {
		char *fld[5] = { NULL, NULL, NULL, NULL, NULL };

		lineno++;
		while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
			line[--got] = '\0';
		if (got == 0 || line[0] == '#')
			continue;
		if (!split_tabs(line, fld, 5))
			fail_msg("%s:%u: not five tab-separated fields", path, lineno);
		if (!header) {
			/* The first non-comment line names the columns. */
			assert_string_equal(fld[0], "stage");
			assert_string_equal(fld[1], "reply");
			header = true;
			continue;
		}
		if (c->n == c->cap) {
			c->cap = c->cap ? c->cap * 2 : 256;
			c->rows = realloc(c->rows, c->cap * sizeof(*c->rows));
			assert_non_null(c->rows);
		}
		struct row *r = &c->rows[c->n];

		memset(r, 0, sizeof(*r));
		r->lineno = lineno;
		if (!smtp_stage_from_name(fld[0], strlen(fld[0]), &r->stage))
			fail_msg("%s:%u: unknown stage \"%s\"", path, lineno, fld[0]);
		if (strcmp(fld[2], "continue") == 0) {
			if (strcmp(fld[3], "-") != 0)
				fail_msg("%s:%u: continue rows have reason \"-\"", path, lineno);
			r->cont = true;
		} else {
			if (!verdict_from_name(fld[2], strlen(fld[2]), &r->verdict))
				fail_msg("%s:%u: unknown verdict \"%s\"", path, lineno, fld[2]);
			if (!reason_from_name(fld[3], strlen(fld[3]), &r->reason))
				fail_msg("%s:%u: unknown reason \"%s\"", path, lineno, fld[3]);
			if (reason_verdict(r->reason) != r->verdict)
				fail_msg("%s:%u: reason %s belongs to %s, not %s", path, lineno,
				    fld[3], verdict_name(reason_verdict(r->reason)), fld[2]);
		}
		if (fld[4][0] == '\0')
			fail_msg("%s:%u: no source", path, lineno);
		r->reply = strdup(fld[1]);
		assert_non_null(r->reply);
		c->n++;
	}
	free(line);
	fclose(f);
	if (!header)
		fail_msg("%s: no header line", path);
}

static bool
row_matches(const struct row *r, struct classification c)
{
	if (r->cont)
		return c.action == CLASSIFY_CONTINUE;
	return c.action != CLASSIFY_CONTINUE && c.reason == r->reason;
}

static void
test_corpus_split_and_classify(void **state)
{
	struct corpus c;
	unsigned failures = 0;

	(void)state;
	corpus_load(&c);
	if (c.n < CORPUS_MIN_ROWS)
		fail_msg("corpus has %zu rows, want at least %d", c.n, CORPUS_MIN_ROWS);
	for (size_t i = 0; i < c.n; i++) {
		const struct row *r = &c.rows[i];
		struct classification got;

		if (!classify_line(r->stage, r->reply, strlen(r->reply), &got)) {
			print_error("replies.tsv:%u: reply not split: %s\n", r->lineno, r->reply);
			failures++;
			continue;
		}
		if (!row_matches(r, got)) {
			print_error("replies.tsv:%u: %s %s\n  want %s %s, got %s %s (rule %s)\n",
			    r->lineno, smtp_stage_name(r->stage), r->reply,
			    r->cont ? "continue" : verdict_name(r->verdict),
			    r->cont ? "-" : reason_name(r->reason),
			    got.action == CLASSIFY_CONTINUE ? "continue" :
			    verdict_name(reason_verdict(got.reason)),
			    got.action == CLASSIFY_CONTINUE ? "-" : reason_name(got.reason),
			    got.rule);
			failures++;
		}
	}
	corpus_free(&c);
	if (failures > 0)
		fail_msg("%u corpus rows misclassified", failures);
}

/* The same rows through `probed --classify`: one output line per row. */
static void
test_corpus_classify_main(void **state)
{
	struct corpus c;
	size_t in_len = 0, in_cap = 0, out_cap;
	char *in = NULL, *out;
	unsigned failures = 0;

	(void)state;
	corpus_load(&c);
	for (size_t i = 0; i < c.n; i++) {
		const char *stage = smtp_stage_name(c.rows[i].stage);
		size_t need = strlen(stage) + 1 + strlen(c.rows[i].reply) + 1;

		if (in_len + need + 1 > in_cap) {
			in_cap = (in_len + need + 1) * 2;
			char *grown = realloc(in, in_cap);
			assert_non_null(grown);
			in = grown;
		}
		in_len += (size_t)snprintf(in + in_len, in_cap - in_len, "%s %s\n",
		    stage, c.rows[i].reply);
	}
	out_cap = c.n * 64 + 1;
	out = malloc(out_cap);
	assert_non_null(out);
	assert_int_equal(run_main(in, in_len, out, out_cap), 0);

	char *p = out;

	for (size_t i = 0; i < c.n; i++) {
		const struct row *r = &c.rows[i];
		char want[64];
		char *nl = strchr(p, '\n');

		if (nl == NULL)
			fail_msg("output ends before replies.tsv:%u", r->lineno);
		*nl = '\0';
		snprintf(want, sizeof(want), "%s %s",
		    r->cont ? "continue" : verdict_name(r->verdict),
		    r->cont ? "-" : reason_name(r->reason));
		if (strcmp(p, want) != 0) {
			print_error("replies.tsv:%u: classify_main says \"%s\", want \"%s\"\n",
			    r->lineno, p, want);
			failures++;
		}
		p = nl + 1;
	}
	assert_string_equal(p, "");
	free(in);
	free(out);
	corpus_free(&c);
	if (failures > 0)
		fail_msg("%u corpus rows misclassified by classify_main", failures);
}

/* The corpus keeps covering every answer the classifier can give. */
static void
test_corpus_covers_every_outcome(void **state)
{
	static const enum reason needed[] = {
		REASON_ACCEPTED, REASON_NO_SUCH_USER, REASON_DISABLED, REASON_RELAY_DENIED,
		REASON_NULL_MX, REASON_NO_DOMAIN, REASON_MAILBOX_FULL, REASON_UNVERIFIABLE,
		REASON_GREYLISTED, REASON_RATE_LIMITED, REASON_BLOCKED, REASON_TLS_FAILED,
		REASON_SENDER_REJECTED, REASON_TEMPFAIL, REASON_PROTOCOL_ERROR,
	};
	bool stage_seen[STAGE__COUNT] = { false };
	bool seen_continue = false;
	struct corpus c;

	(void)state;
	corpus_load(&c);
	for (size_t k = 0; k < sizeof(needed) / sizeof(needed[0]); k++) {
		bool found = false;

		for (size_t i = 0; i < c.n && !found; i++)
			found = !c.rows[i].cont && c.rows[i].reason == needed[k];
		if (!found)
			fail_msg("no corpus row for reason %s", reason_name(needed[k]));
	}
	for (size_t i = 0; i < c.n; i++) {
		stage_seen[c.rows[i].stage] = true;
		seen_continue |= c.rows[i].cont;
	}
	for (unsigned s = 0; s < STAGE__COUNT; s++)
		if (!stage_seen[s])
			fail_msg("no corpus row for stage %s", smtp_stage_name((enum smtp_stage)s));
	assert_true(seen_continue);
	corpus_free(&c);
}

/* ------------------------------------------------------------------ */
/* invariants                                                          */
/* ------------------------------------------------------------------ */

static void
check_invariants(enum smtp_stage stage, int code, const char *enh,
    const char *text, struct classification c)
{
	enum verdict v = reason_verdict(c.reason);

	assert_non_null(c.rule);
	if (c.action == CLASSIFY_CONTINUE) {
		if (code / 100 != 2 || stage == STAGE_RCPT)
			fail_msg("CONTINUE for %s %d %s %s", smtp_stage_name(stage), code, enh, text);
		return;
	}
	if (stage != STAGE_RCPT) {
		/* Before RCPT nothing is known about the mailbox. */
		if (v != VERDICT_UNKNOWN || c.action == CLASSIFY_DECIDED ||
		    c.action == CLASSIFY_STOP)
			fail_msg("%s %d %s \"%s\": %s/%s action %d (rule %s)",
			    smtp_stage_name(stage), code, enh, text, verdict_name(v),
			    reason_name(c.reason), c.action, c.rule);
		return;
	}
	/* RCPT: a verdict about the mailbox is decided, and only then. */
	if ((v != VERDICT_UNKNOWN) != (c.action == CLASSIFY_DECIDED))
		fail_msg("rcpt %d %s \"%s\": %s with action %d (rule %s)", code, enh, text,
		    reason_name(c.reason), c.action, c.rule);
	if (code / 100 == 4 && v != VERDICT_UNKNOWN && c.reason != REASON_MAILBOX_FULL)
		fail_msg("rcpt %d %s \"%s\": a 4xx said %s (rule %s)", code, enh, text,
		    reason_name(c.reason), c.rule);
	if (code / 100 == 5 && v == VERDICT_DELIVERABLE)
		fail_msg("rcpt %d: a 5xx said deliverable", code);
	if (code / 100 == 2 && v == VERDICT_UNDELIVERABLE)
		fail_msg("rcpt %d: a 2xx said undeliverable", code);
	if (code == 421 && c.action != CLASSIFY_NEXT_MX)
		fail_msg("rcpt 421 \"%s\": the server is closing, action %d", text, c.action);
}

static const char *const sweep_enh[] = {
	"", "2.0.0", "2.1.5", "4.2.2", "4.5.3", "4.7.1", "4.7.28", "5.0.0", "5.1.0",
	"5.1.1", "5.1.2", "5.1.6", "5.1.7", "5.1.10", "5.2.1", "5.2.2", "5.4.1",
	"5.5.1", "5.5.3", "5.7.1", "5.7.27", "5.7.606", "bogus",
};

static const char *const sweep_text[] = {
	"", "OK", "User unknown", "No such user here", "mailbox unavailable",
	"Recipient address rejected: Access denied", "Relay access denied",
	"mailbox full", "account disabled", "Greylisted", "try again later",
	"Client host blocked using zen.spamhaus.org", "rate limit exceeded",
	"Sender address rejected", "Must issue a STARTTLS command first",
	"Domain example.org does not accept mail (nullMX)",
	"Requested action not taken", "Protocol error",
};

/* Every stage x every code x a spread of enhanced codes and texts. */
static void
test_invariants_sweep(void **state)
{
	(void)state;
	for (unsigned s = 0; s < STAGE__COUNT; s++)
		for (int code = 100; code <= 699; code++)
			for (size_t e = 0; e < sizeof(sweep_enh) / sizeof(sweep_enh[0]); e++)
				for (size_t t = 0; t < sizeof(sweep_text) / sizeof(sweep_text[0]); t++) {
					const char *text = sweep_text[t];
					char *copy = dup_exact(text, strlen(text));
					struct classification c = classify_reply((enum smtp_stage)s,
					    code, sweep_enh[e], copy, strlen(text));

					free(copy);
					if (code < 200 || code > 599) {
						assert_int_equal(c.reason, REASON_PROTOCOL_ERROR);
						assert_int_equal(c.action, CLASSIFY_NEXT_MX);
					}
					check_invariants((enum smtp_stage)s, code, sweep_enh[e], text, c);
				}
}

/* Every real reply of the corpus, replayed at every stage before RCPT: a
 * 5xx at the banner, EHLO, STARTTLS or MAIL is never about the mailbox. */
static void
test_never_undeliverable_before_rcpt(void **state)
{
	struct corpus c;
	unsigned checked_5xx = 0;

	(void)state;
	corpus_load(&c);
	for (size_t i = 0; i < c.n; i++) {
		char enhanced[16];
		const char *text;
		size_t text_len;
		int code;

		if (!classify_split_line(c.rows[i].reply, strlen(c.rows[i].reply), &code,
		    enhanced, &text, &text_len))
			fail_msg("replies.tsv:%u: not split", c.rows[i].lineno);
		for (unsigned s = 0; s < STAGE__COUNT; s++) {
			struct classification got = classify_reply((enum smtp_stage)s, code,
			    enhanced, text, text_len);
			char *t = strndup(text, text_len);

			assert_non_null(t);
			check_invariants((enum smtp_stage)s, code, enhanced, t, got);
			free(t);
			if (s != STAGE_RCPT && code >= 500)
				checked_5xx++;
		}
	}
	corpus_free(&c);
	assert_true(checked_5xx >= 400);
}

/* ------------------------------------------------------------------ */
/* one test per rule family                                            */
/* ------------------------------------------------------------------ */

struct rule_case {
	enum smtp_stage stage;
	const char *line;
	enum reason reason;      /* ignored when action is CONTINUE */
	enum classify_action action;
};

#define C(st, l, r, a) { STAGE_##st, l, REASON_##r, CLASSIFY_##a }

static const struct rule_case rule_cases[] = {
	/* success, per stage */
	C(BANNER, "220 mx.example.org ESMTP", PENDING, CONTINUE),
	C(EHLO, "250-mx.example.org 250 PIPELINING", PENDING, CONTINUE),
	C(STARTTLS, "220 2.0.0 Ready to start TLS", PENDING, CONTINUE),
	C(STARTTLS, "250 OK", TLS_FAILED, NEXT_MX),
	C(MAIL, "250 2.1.0 Ok", PENDING, CONTINUE),
	C(RCPT, "250 2.1.5 Ok", ACCEPTED, DECIDED),
	C(RCPT, "251 User not local; will forward", ACCEPTED, DECIDED),
	C(RCPT, "252 2.1.5 Cannot VRFY user", UNVERIFIABLE, DECIDED),
	C(RCPT, "253 odd", PROTOCOL_ERROR, NEXT_MX),
	C(BANNER, "221 2.0.0 Bye", PROTOCOL_ERROR, NEXT_MX),
	C(RCPT, "354 End data with <CR><LF>.<CR><LF>", PROTOCOL_ERROR, NEXT_MX),
	C(EHLO, "334 VXNlcm5hbWU6", PROTOCOL_ERROR, NEXT_MX),
	/* 421 at every stage: next MX, reason from the words */
	C(BANNER, "421 4.3.2 Service not available", TEMPFAIL, NEXT_MX),
	C(EHLO, "421 4.7.0 Try again later, closing connection.", RATE_LIMITED, NEXT_MX),
	C(STARTTLS, "421 4.3.0 Temporary System Problem", TEMPFAIL, NEXT_MX),
	C(MAIL, "421 Too many concurrent SMTP connections", RATE_LIMITED, NEXT_MX),
	C(RCPT, "421 4.7.28 Gmail has detected an unusual rate of mail", RATE_LIMITED, NEXT_MX),
	C(RCPT, "421 4.7.0 IP not in whitelist for RCPT domain", BLOCKED, NEXT_MX),
	C(RCPT, "421 4.7.0 TLS required for RCPT domain", TLS_FAILED, NEXT_MX),
	C(RCPT, "421 4.7.0 greylisted, come back in 5 minutes", GREYLISTED, NEXT_MX),
	C(RCPT, "421 4.4.2 timeout", TEMPFAIL, NEXT_MX),
	/* STARTTLS refused */
	C(STARTTLS, "454 4.7.0 TLS not available due to local problem", TLS_FAILED, NEXT_MX),
	C(STARTTLS, "502 5.5.1 Unrecognized command", TLS_FAILED, NEXT_MX),
	C(STARTTLS, "554 5.7.1 blocked using zen.spamhaus.org", BLOCKED, NEXT_MX),
	/* greylisting */
	C(RCPT, "450 4.2.0 <a@b>: Recipient address rejected: Greylisted", GREYLISTED, STOP),
	C(MAIL, "451 4.7.1 Greylisting in action, please come back later", GREYLISTED, NEXT_MX),
	C(RCPT, "451 4.7.1 Try again later", GREYLISTED, STOP),
	C(RCPT, "450 Please try again later", GREYLISTED, STOP),
	C(RCPT, "451 4.7.0 Temporary server error. Please try again later.", TEMPFAIL, STOP),
	C(RCPT, "452 4.3.1 try again later", TEMPFAIL, STOP),
	/* rate limiting */
	C(RCPT, "450 4.2.1 The user you are trying to contact is receiving mail too quickly",
	    RATE_LIMITED, STOP),
	C(RCPT, "450 4.2.1 Please wait", RATE_LIMITED, STOP),
	C(RCPT, "451 4.7.500 Server busy. Please try again later", RATE_LIMITED, STOP),
	C(MAIL, "450 4.7.1 Error: too much mail from 192.0.2.1", RATE_LIMITED, NEXT_MX),
	C(RCPT, "550 5.2.1 The user is receiving mail at a rate that prevents delivery",
	    RATE_LIMITED, STOP),
	/* too many recipients: tempfail, the session retries */
	C(RCPT, "452 4.5.3 Error: too many recipients", TEMPFAIL, STOP),
	C(RCPT, "452 Too many recipients", TEMPFAIL, STOP),
	C(RCPT, "552 Too many recipients", TEMPFAIL, STOP),
	C(RCPT, "552 5.5.3 Too many recipients", TEMPFAIL, STOP),
	/* other 4xx */
	C(RCPT, "450 4.1.1 <a@b>: Recipient address rejected: User unknown", TEMPFAIL, STOP),
	C(RCPT, "451 4.3.0 Temporary lookup failure", TEMPFAIL, STOP),
	C(BANNER, "450 come back later", GREYLISTED, NEXT_MX),
	C(EHLO, "451 4.3.0 Server error", TEMPFAIL, NEXT_MX),
	C(RCPT, "452 4.2.2 Mailbox full", MAILBOX_FULL, DECIDED),
	C(RCPT, "450 4.2.0 mailbox is full", MAILBOX_FULL, DECIDED),
	C(MAIL, "452 4.2.2 Mailbox full", TEMPFAIL, NEXT_MX),
	C(RCPT, "450 4.7.1 Client host rejected: cannot find your hostname", BLOCKED, STOP),
	C(RCPT, "450 4.7.1 Session encryption is required", TLS_FAILED, NEXT_MX),
	/* sender */
	C(MAIL, "553 5.1.8 <x@y>: Domain of sender address x@y does not exist", SENDER_REJECTED,
	    NEXT_MX),
	C(MAIL, "550 5.1.7 <>: null sender not allowed", SENDER_REJECTED, NEXT_MX),
	C(MAIL, "550 5.7.1 <>: Sender address rejected: Access denied", SENDER_REJECTED, NEXT_MX),
	C(MAIL, "550 <> not allowed", SENDER_REJECTED, NEXT_MX),
	C(MAIL, "550 Requested action not taken", SENDER_REJECTED, NEXT_MX),
	C(MAIL, "553 5.7.27 sender domain has null MX", SENDER_REJECTED, NEXT_MX),
	C(RCPT, "450 4.1.8 <x@y>: Sender address rejected: Domain not found", SENDER_REJECTED,
	    STOP),
	C(RCPT, "550-Verification failed for <a@b> 550-No Such User Here 550 Sender verify failed",
	    SENDER_REJECTED, STOP),
	/* blocks of the prober, at every stage */
	C(BANNER, "554 No SMTP service here", BLOCKED, NEXT_MX),
	C(BANNER, "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked", BLOCKED,
	    NEXT_MX),
	C(EHLO, "550 5.7.1 Access denied", BLOCKED, NEXT_MX),
	C(EHLO, "504 5.5.2 <x>: Helo command rejected: need fully-qualified hostname", BLOCKED,
	    NEXT_MX),
	C(EHLO, "550 not welcome", BLOCKED, NEXT_MX),
	C(MAIL, "550 5.7.1 Mail from 192.0.2.1 refused, see spamcop", BLOCKED, NEXT_MX),
	C(RCPT, "550 5.1.1 <a@b>: blocked using zen.spamhaus.org", BLOCKED, STOP),
	C(RCPT, "550 5.1.1 User unknown; your IP is listed at bl.spamcop.net", BLOCKED, STOP),
	C(RCPT, "550 No such user - rejected due to spam", BLOCKED, STOP),
	C(RCPT, "554 5.7.1 Rejected: poor reputation", BLOCKED, STOP),
	C(RCPT, "550 5.7.1 Recipient address rejected: Access denied", BLOCKED, STOP),
	C(RCPT, "550 5.7.0 Delivery not authorized", BLOCKED, STOP),
	C(RCPT, "554 Access denied", BLOCKED, STOP),
	C(RCPT, "550 Administrative prohibition", BLOCKED, STOP),
	C(RCPT, "550 denied by policy", BLOCKED, STOP),
	C(RCPT, "550 client host rejected", BLOCKED, STOP),
	C(RCPT, "554 you are banned", BLOCKED, STOP),
	C(RCPT, "550 Sorry, not allowed to send from your network", BLOCKED, STOP),
	/* relay denied */
	C(RCPT, "554 5.7.1 <a@b>: Relay access denied", RELAY_DENIED, DECIDED),
	C(RCPT, "550 5.7.1 Unable to relay", RELAY_DENIED, DECIDED),
	C(RCPT, "550 5.4.1 Relay Access Denied", RELAY_DENIED, DECIDED),
	C(RCPT, "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
	    RELAY_DENIED, DECIDED),
	C(RCPT, "550 5.7.64 TenantAttribution; Relay Access Denied", RELAY_DENIED, DECIDED),
	C(MAIL, "550 5.7.1 Relaying denied", BLOCKED, NEXT_MX),
	C(RCPT, "451 4.7.1 relay not permitted", TEMPFAIL, STOP),
	/* no such user */
	C(RCPT, "550 5.1.1 <a@b>: Recipient address rejected: User unknown", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 5.1.0 Address rejected", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 5.1.6 Recipient addr has moved", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 5.1.10 RESOLVER.ADR.RecipientNotFound", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 5.1.1 ", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 #5.1.0 Address rejected", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", NO_SUCH_USER,
	    DECIDED),
	C(RCPT, "550 User unknown", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 no such user", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 unknown user", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 Requested action not taken: mailbox unavailable", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 Address does not exist", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 Recipient not found", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 invalid recipient", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 Address rejected", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 no mailbox here by that name", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 Unrouteable address", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 mailbox not found", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 5.7.1 No such user!", NO_SUCH_USER, DECIDED),
	C(RCPT, "550 5.0.0 <a@b>... User unknown", NO_SUCH_USER, DECIDED),
	C(RCPT, "501 Invalid Address", NO_SUCH_USER, DECIDED),
	/* null MX, no domain */
	C(RCPT, "556 5.1.10 Recipient address has null MX", NULL_MX, DECIDED),
	C(RCPT, "550 5.1.10 Domain example.org does not accept mail (nullMX)", NULL_MX, DECIDED),
	C(RCPT, "553 5.1.2 We weren't able to find the recipient domain", NO_DOMAIN, DECIDED),
	C(RCPT, "550 5.1.2 Host unknown", NO_DOMAIN, DECIDED),
	/* full, disabled */
	C(RCPT, "552 5.2.2 Mailbox full", MAILBOX_FULL, DECIDED),
	C(RCPT, "550 user is over quota", MAILBOX_FULL, DECIDED),
	C(RCPT, "552 Requested mail action aborted: exceeded storage allocation", MAILBOX_FULL,
	    DECIDED),
	C(RCPT, "552 5.0.0 quota exceeded", MAILBOX_FULL, DECIDED),
	C(RCPT, "552 Requested mail action aborted", MAILBOX_FULL, DECIDED),
	C(RCPT, "550 5.2.1 Mailbox disabled", DISABLED, DECIDED),
	C(RCPT, "550 5.2.1 Mailbox cannot be accessed", DISABLED, DECIDED),
	C(RCPT, "550 account disabled", DISABLED, DECIDED),
	C(RCPT, "550 This account is inactive", DISABLED, DECIDED),
	C(RCPT, "554 Account suspended", DISABLED, DECIDED),
	C(RCPT, "540 5.7.1 recipient address rejected: Inactive", DISABLED, DECIDED),
	/* command syntax at RCPT */
	C(RCPT, "500 5.5.2 Error: bad syntax", PROTOCOL_ERROR, NEXT_MX),
	C(RCPT, "503 Bad sequence of commands", PROTOCOL_ERROR, NEXT_MX),
	C(RCPT, "521 5.5.1 Protocol error", PROTOCOL_ERROR, NEXT_MX),
	C(EHLO, "500 5.5.1 Command unrecognized: \"EHLO x\"", PROTOCOL_ERROR, NEXT_MX),
	C(MAIL, "503 5.5.1 Error: nested MAIL command", PROTOCOL_ERROR, NEXT_MX),
	/* nothing recognisable at RCPT: unverifiable, never "gone" */
	C(RCPT, "550 Requested action not taken", UNVERIFIABLE, DECIDED),
	C(RCPT, "550", UNVERIFIABLE, DECIDED),
	C(RCPT, "554 5.0.0 Transaction failed", UNVERIFIABLE, DECIDED),
	C(RCPT, "553 5.3.0 Unknown error", UNVERIFIABLE, DECIDED),
	C(RCPT, "550 5.4.4 Unable to route", UNVERIFIABLE, DECIDED),
	C(RCPT, "551 5.3.0 Unknown error", UNVERIFIABLE, DECIDED),
	C(RCPT, "599 ???", UNVERIFIABLE, DECIDED),
};

static void
test_rule_cases(void **state)
{
	unsigned failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++) {
		const struct rule_case *t = &rule_cases[i];
		struct classification c = classify_str(t->stage, t->line);
		bool ok = c.action == t->action &&
		    (t->action == CLASSIFY_CONTINUE || c.reason == t->reason);

		if (!ok) {
			print_error("%s \"%s\": want %s/%d, got %s/%d (rule %s)\n",
			    smtp_stage_name(t->stage), t->line, reason_name(t->reason),
			    t->action, reason_name(c.reason), c.action, c.rule);
			failures++;
		}
	}
	if (failures > 0)
		fail_msg("%u rule cases failed", failures);
}

/* ------------------------------------------------------------------ */
/* enhanced codes                                                      */
/* ------------------------------------------------------------------ */

static void
test_enhanced_class_disagreement(void **state)
{
	struct classification c;
	char enhanced[16];
	const char *text;
	size_t len;
	int code;

	(void)state;
	/* A 5xx with a 4.x.x code: the code is not believed, the text is. */
	c = classify_reply(STAGE_RCPT, 550, "4.1.1", "", 0);
	assert_int_equal(c.reason, REASON_UNVERIFIABLE);
	c = classify_reply(STAGE_RCPT, 550, "4.1.1", "user unknown", 12);
	assert_int_equal(c.reason, REASON_NO_SUCH_USER);
	/* A 4xx with 5.1.1 is still temporary. */
	c = classify_reply(STAGE_RCPT, 450, "5.1.1", "", 0);
	assert_int_equal(c.reason, REASON_TEMPFAIL);
	assert_int_equal(c.action, CLASSIFY_STOP);
	/* 2.x.x on a 550 is ignored too. */
	c = classify_reply(STAGE_RCPT, 550, "2.1.5", "", 0);
	assert_int_equal(c.reason, REASON_UNVERIFIABLE);
	/* A 250 with a 5.x.x code is still success. */
	c = classify_reply(STAGE_RCPT, 250, "5.1.1", "", 0);
	assert_int_equal(c.reason, REASON_ACCEPTED);
	/* The splitter leaves a disagreeing code in the text. */
	assert_true(classify_split_line("550 4.1.1 gone", 14, &code, enhanced, &text, &len));
	assert_int_equal(code, 550);
	assert_string_equal(enhanced, "");
	assert_int_equal(len, 10);
	assert_memory_equal(text, "4.1.1 gone", 10);
	/* A disagreeing code counts as none: "no enhanced code" rows apply. */
	c = classify_reply(STAGE_RCPT, 501, "4.5.1", "", 0);
	assert_int_equal(c.reason, REASON_PROTOCOL_ERROR);
	c = classify_reply(STAGE_RCPT, 450, "5.7.1", "try again later", 15);
	assert_int_equal(c.reason, REASON_GREYLISTED);
	/* 5.7.x policy against a 5.1.x-looking text only when agreeing. */
	c = classify_reply(STAGE_RCPT, 550, "5.7.1", "", 0);
	assert_int_equal(c.reason, REASON_BLOCKED);
	c = classify_reply(STAGE_RCPT, 450, "5.7.1", "", 0);
	assert_int_equal(c.reason, REASON_TEMPFAIL);
}

static void
test_enhanced_malformed(void **state)
{
	static const char *const bad[] = {
		"5", "5.1", "5.1.", "5..1", ".1.1", "5.1.1.1", "6.1.1", "3.1.1", "1.1.1",
		"5.1234.1", "5.1.1234", "x.y.z", "5.1.1 ", " 5.1.1", "5.1.a", "55.1.1",
		"5.-1.1", "5.1.1x", "5.1.1.", "5.7.1/", "",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* As if absent: a bare 550 at RCPT stays unverifiable. */
		struct classification c = classify_reply(STAGE_RCPT, 550, bad[i], NULL, 0);

		if (c.reason != REASON_UNVERIFIABLE)
			fail_msg("enhanced \"%s\" was believed: %s (rule %s)", bad[i],
			    reason_name(c.reason), c.rule);
	}
	assert_int_equal(classify_reply(STAGE_RCPT, 550, NULL, NULL, 0).reason,
	    REASON_UNVERIFIABLE);
	/* Well-formed edges are believed. */
	assert_int_equal(classify_reply(STAGE_RCPT, 550, "5.1.999", NULL, 0).reason,
	    REASON_NO_SUCH_USER);
	assert_int_equal(classify_reply(STAGE_RCPT, 550, "5.001.001", NULL, 0).reason,
	    REASON_NO_SUCH_USER);
	assert_int_equal(classify_reply(STAGE_RCPT, 550, "5.7.999", NULL, 0).reason,
	    REASON_BLOCKED);
}

/* ------------------------------------------------------------------ */
/* codes, stages, texts                                                */
/* ------------------------------------------------------------------ */

static void
test_bad_codes_and_stages(void **state)
{
	static const int codes[] = { -1, 0, 1, 99, 100, 150, 199, 600, 999, 1000, 5500 };

	(void)state;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		for (unsigned s = 0; s < STAGE__COUNT; s++) {
			struct classification c = classify_reply((enum smtp_stage)s, codes[i],
			    "5.1.1", "user unknown", 12);

			assert_int_equal(c.reason, REASON_PROTOCOL_ERROR);
			assert_int_equal(c.action, CLASSIFY_NEXT_MX);
		}
	struct classification c = classify_reply(STAGE__COUNT, 550, "5.1.1", "x", 1);

	assert_int_equal(c.reason, REASON_PROTOCOL_ERROR);
	assert_int_equal(c.action, CLASSIFY_NEXT_MX);
	c = classify_reply((enum smtp_stage)-1, 250, NULL, NULL, 0);
	assert_int_equal(c.reason, REASON_PROTOCOL_ERROR);
}

static void
test_empty_text(void **state)
{
	(void)state;
	assert_int_equal(classify_reply(STAGE_RCPT, 250, "", NULL, 0).reason, REASON_ACCEPTED);
	assert_int_equal(classify_reply(STAGE_RCPT, 550, "", "", 0).reason, REASON_UNVERIFIABLE);
	assert_int_equal(classify_reply(STAGE_RCPT, 550, "5.1.1", NULL, 0).reason,
	    REASON_NO_SUCH_USER);
	assert_int_equal(classify_reply(STAGE_RCPT, 450, NULL, NULL, 0).reason, REASON_TEMPFAIL);
	assert_int_equal(classify_reply(STAGE_MAIL, 550, NULL, NULL, 0).reason,
	    REASON_SENDER_REJECTED);
	assert_int_equal(classify_reply(STAGE_BANNER, 554, NULL, NULL, 0).reason, REASON_BLOCKED);
	assert_int_equal(classify_reply(STAGE_EHLO, 220, NULL, NULL, 0).action, CLASSIFY_CONTINUE);
	/* A length of zero means no text even when the pointer has some. */
	assert_int_equal(classify_reply(STAGE_RCPT, 550, NULL, "user unknown", 0).reason,
	    REASON_UNVERIFIABLE);
}

/* Text past CLASSIFY_SCAN_MAX (4096) octets is not looked at; huge texts
 * cost no more than that, and nothing is read past the given length. */
static void
test_huge_text(void **state)
{
	const size_t n = 1u << 20;
	char *big = malloc(n);

	(void)state;
	assert_non_null(big);
	memset(big, 'a', n);
	for (size_t i = 79; i < n; i += 80)
		big[i] = ' ';
	memcpy(big + 8000, " user unknown ", 14);
	assert_int_equal(classify_reply(STAGE_RCPT, 550, NULL, big, n).reason,
	    REASON_UNVERIFIABLE);
	memcpy(big + 100, " user unknown ", 14);
	assert_int_equal(classify_reply(STAGE_RCPT, 550, NULL, big, n).reason,
	    REASON_NO_SUCH_USER);
	/* The keyword straddling the scan limit is not seen. */
	memset(big, 'a', 5000);
	memcpy(big + 4090, " user unknown", 13);
	assert_int_equal(classify_reply(STAGE_RCPT, 550, NULL, big, 4096 + 4).reason,
	    REASON_UNVERIFIABLE);
	memcpy(big + 4000, " user unknown", 13);
	assert_int_equal(classify_reply(STAGE_RCPT, 550, NULL, big, 4096).reason,
	    REASON_NO_SUCH_USER);
	/* The last octets of a text of exactly the given length. */
	assert_int_equal(classify_reply(STAGE_RCPT, 550, NULL, big + 4000, 13).reason,
	    REASON_NO_SUCH_USER);
	assert_int_equal(classify_reply(STAGE_RCPT, 550, NULL, big + 4000, 12).reason,
	    REASON_UNVERIFIABLE); /* " user unknow" */
	free(big);
}

/* Case, white space, control octets, NULs, hyphens, word starts. */
static void
test_text_matching(void **state)
{
	static const struct {
		const char *text;
		size_t len;
		enum reason reason;
	} cases[] = {
		{ "USER UNKNOWN", LEN_STR, REASON_NO_SUCH_USER },
		{ "User\t\tUnknown", LEN_STR, REASON_NO_SUCH_USER },
		{ "user\r\n unknown", LEN_STR, REASON_NO_SUCH_USER },
		{ "user\0unknown", 12, REASON_NO_SUCH_USER },
		{ "Invalid-Recipient", LEN_STR, REASON_NO_SUCH_USER },
		{ "no_such_user", LEN_STR, REASON_NO_SUCH_USER },
		{ "superuser unknown", LEN_STR, REASON_UNVERIFIABLE },
		{ "garble", LEN_STR, REASON_UNVERIFIABLE },         /* not "rbl" */
		{ "in an RBL", LEN_STR, REASON_BLOCKED },
		{ "greylisted", LEN_STR, REASON_UNVERIFIABLE },     /* a 5xx greylist */
		{ "unlisted", LEN_STR, REASON_UNVERIFIABLE },
		{ "is blacklisted", LEN_STR, REASON_BLOCKED },
		{ "\xc3\xa9t\xc3\xa9 user unknown", LEN_STR, REASON_NO_SUCH_USER },
		{ "\xff\xfe\x01", 3, REASON_UNVERIFIABLE },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len == LEN_STR ? strlen(cases[i].text) : cases[i].len;
		char *copy = dup_exact(cases[i].text, len);
		struct classification c = classify_reply(STAGE_RCPT, 550, NULL, copy, len);

		free(copy);
		if (c.reason != cases[i].reason)
			fail_msg("case %zu: want %s, got %s (rule %s)", i,
			    reason_name(cases[i].reason), reason_name(c.reason), c.rule);
	}
}

/* ------------------------------------------------------------------ */
/* classify_split_line                                                 */
/* ------------------------------------------------------------------ */

static void
test_split_line(void **state)
{
	static const struct {
		const char *line;
		size_t len;
		bool ok;
		int code;
		const char *enhanced;
		const char *text;
	} cases[] = {
		{ "550 5.1.1 <a@b>: User unknown", LEN_STR, true, 550, "5.1.1", "<a@b>: User unknown" },
		{ "550-5.1.1 The email account", LEN_STR, true, 550, "5.1.1", "The email account" },
		{ "250 OK", LEN_STR, true, 250, "", "OK" },
		{ "250", LEN_STR, true, 250, "", "" },
		{ "250 ", LEN_STR, true, 250, "", "" },
		{ "250-", LEN_STR, true, 250, "", "" },
		{ "550 #5.1.0 Address rejected", LEN_STR, true, 550, "5.1.0", "Address rejected" },
		{ "550 5.1.10 RESOLVER.ADR.RecipientNotFound", LEN_STR, true, 550, "5.1.10",
		    "RESOLVER.ADR.RecipientNotFound" },
		{ "421 4.7.28 rate", LEN_STR, true, 421, "4.7.28", "rate" },
		{ "550 5.7.606 banned", LEN_STR, true, 550, "5.7.606", "banned" },
		{ "550 5.1.1", LEN_STR, true, 550, "5.1.1", "" },
		{ "550 5.1.1\r\n", LEN_STR, true, 550, "5.1.1", "" },
		{ "550  5.1.1   spaced  \t", LEN_STR, true, 550, "5.1.1", "spaced" },
		{ "550 5.1.1: colon", LEN_STR, true, 550, "", "5.1.1: colon" },
		{ "550 5.1.1234 long", LEN_STR, true, 550, "", "5.1.1234 long" },
		{ "550 5.1 short", LEN_STR, true, 550, "", "5.1 short" },
		{ "550 #x gone", LEN_STR, true, 550, "", "#x gone" },
		{ "550 # 5.1.1", LEN_STR, true, 550, "", "# 5.1.1" },
		{ "550 cuda_nsu 5.1.1 <a@b>", LEN_STR, true, 550, "", "cuda_nsu 5.1.1 <a@b>" },
		{ "450 5.1.1 mismatch", LEN_STR, true, 450, "", "5.1.1 mismatch" },
		{ "250 2.1.5 Ok", LEN_STR, true, 250, "2.1.5", "Ok" },
		{ "050 weird", LEN_STR, true, 50, "", "weird" },
		{ "699 x", LEN_STR, true, 699, "", "x" },
		{ "550 5.1.1 x\0y", 13, true, 550, "5.1.1", "x\0y" },
		{ "", 0, false, 0, NULL, NULL },
		{ "55", LEN_STR, false, 0, NULL, NULL },
		{ "5a0 x", LEN_STR, false, 0, NULL, NULL },
		{ " 550 x", LEN_STR, false, 0, NULL, NULL },
		{ "5500 x", LEN_STR, false, 0, NULL, NULL },
		{ "550x", LEN_STR, false, 0, NULL, NULL },
		{ "550\tx", LEN_STR, false, 0, NULL, NULL },
		{ "hello", LEN_STR, false, 0, NULL, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len == LEN_STR ? strlen(cases[i].line) : cases[i].len;
		char *copy = dup_exact(cases[i].line, len);
		char enhanced[16];
		const char *text = NULL;
		size_t text_len = 0;
		int code = -1;
		bool ok = classify_split_line(copy, len, &code, enhanced, &text, &text_len);

		if (ok != cases[i].ok)
			fail_msg("\"%s\": split returned %d", cases[i].line, ok);
		if (ok) {
			size_t want = cases[i].len == LEN_STR ? strlen(cases[i].text) :
			    len - (size_t)(strchr(cases[i].line, 'x') - cases[i].line);

			assert_int_equal(code, cases[i].code);
			assert_string_equal(enhanced, cases[i].enhanced);
			if (text_len != want || memcmp(text, cases[i].text, want) != 0)
				fail_msg("\"%s\": text \"%.*s\"", cases[i].line, (int)text_len, text);
			assert_true(text >= copy && text + text_len <= copy + len);
		} else {
			assert_string_equal(enhanced, "");
		}
		free(copy);
	}
	assert_false(classify_split_line(NULL, 0, &(int){ 0 }, (char[16]){ 0 },
	    &(const char *){ NULL }, &(size_t){ 0 }));
}

/* ------------------------------------------------------------------ */
/* stage names                                                         */
/* ------------------------------------------------------------------ */

static void
test_stage_names(void **state)
{
	enum smtp_stage s;

	(void)state;
	for (unsigned i = 0; i < STAGE__COUNT; i++) {
		const char *n = smtp_stage_name((enum smtp_stage)i);

		assert_true(smtp_stage_from_name(n, strlen(n), &s));
		assert_int_equal(s, i);
	}
	assert_string_equal(smtp_stage_name(STAGE_BANNER), "banner");
	assert_string_equal(smtp_stage_name(STAGE_EHLO), "ehlo");
	assert_string_equal(smtp_stage_name(STAGE_STARTTLS), "starttls");
	assert_string_equal(smtp_stage_name(STAGE_MAIL), "mail");
	assert_string_equal(smtp_stage_name(STAGE_RCPT), "rcpt");
	assert_string_equal(smtp_stage_name(STAGE__COUNT), "unknown");
	assert_true(smtp_stage_from_name("RCPT", 4, &s));
	assert_int_equal(s, STAGE_RCPT);
	assert_true(smtp_stage_from_name("StartTLS", 8, &s));
	assert_int_equal(s, STAGE_STARTTLS);
	assert_true(smtp_stage_from_name("helo", 4, &s));
	assert_int_equal(s, STAGE_EHLO);
	assert_true(smtp_stage_from_name("rcpt to", 4, &s)); /* length bounds the word */
	assert_int_equal(s, STAGE_RCPT);
	assert_false(smtp_stage_from_name("rcp", 3, &s));
	assert_false(smtp_stage_from_name("rcptx", 5, &s));
	assert_false(smtp_stage_from_name("", 0, &s));
	assert_false(smtp_stage_from_name("data", 4, &s));
	assert_false(smtp_stage_from_name("rcpt\0", 5, &s));
}

/* ------------------------------------------------------------------ */
/* probed --classify                                                   */
/* ------------------------------------------------------------------ */

static void
test_main_basic(void **state)
{
	static const char input[] =
	    "# a comment\n"
	    "\n"
	    "   \t\n"
	    "  # indented comment\n"
	    "banner 220 mx.example.org ESMTP\n"
	    "rcpt 550 5.1.1 <a@b>: Recipient address rejected: User unknown\r\n"
	    "RCPT\t550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org\n"
	    "mail 550 5.1.1 user unknown\n"
	    "rcpt 252 2.1.5 Cannot VRFY user\n"
	    "rcpt 250 2.1.5 Ok";   /* no final LF */
	char out[1024];

	(void)state;
	assert_int_equal(run_main(input, sizeof(input) - 1, out, sizeof(out)), 0);
	assert_string_equal(out,
	    "continue -\n"
	    "undeliverable no_such_user\n"
	    "unknown blocked\n"
	    "unknown sender_rejected\n"
	    "risky unverifiable\n"
	    "deliverable accepted\n");
}

static void
test_main_errors(void **state)
{
	static const char input[] =
	    "rcpt 550 5.1.1 user unknown\n"
	    "frob 550 5.1.1 user unknown\n"
	    "rcpt\n"
	    "rcpt   \t \n"
	    "data 354 go ahead\n"
	    "rcpt 550 5.1.1 a\0b\n"
	    "rcpt hello\n"
	    "rcpt 55\n"
	    "rcpt 650 5.1.1 user unknown\n"
	    "ehlo 250 ok\n";
	char out[1024];

	(void)state;
	assert_int_equal(run_main(input, sizeof(input) - 1, out, sizeof(out)), 65);
	assert_string_equal(out,
	    "undeliverable no_such_user\n"
	    "error unknown_stage\n"
	    "error missing_reply\n"
	    "error missing_reply\n"
	    "error unknown_stage\n"
	    "error bad_octet\n"
	    "unknown protocol_error\n"
	    "unknown protocol_error\n"
	    "unknown protocol_error\n"
	    "continue -\n");
}

static void
test_main_long_lines(void **state)
{
	/* 4096 octets of reply line is fine; 4097 is an error; so is much
	 * more; processing goes on after each. */
	const size_t big = 100000;
	char *in = malloc(big + 20000);
	char out[256];
	size_t o = 0;

	(void)state;
	assert_non_null(in);
	/* exactly 4096 octets before CR LF */
	o += (size_t)sprintf(in + o, "rcpt 550 ");
	memset(in + o, 'a', 4096 - 9 - 13);
	o += 4096 - 9 - 13;
	memcpy(in + o, " user unknown", 13);
	o += 13;
	memcpy(in + o, "\r\n", 2);
	o += 2;
	/* 4097 octets */
	o += (size_t)sprintf(in + o, "rcpt 550 ");
	memset(in + o, 'a', 4097 - 9);
	o += 4097 - 9;
	in[o++] = '\n';
	o += (size_t)sprintf(in + o, "rcpt 250 ok\n");
	/* far too long, then a good line */
	o += (size_t)sprintf(in + o, "rcpt 550 ");
	memset(in + o, 'b', big);
	o += big;
	in[o++] = '\n';
	o += (size_t)sprintf(in + o, "rcpt 552 5.2.2 full\n");
	/* far too long and unterminated at the end of input */
	o += (size_t)sprintf(in + o, "rcpt 550 ");
	memset(in + o, 'c', 10000);
	o += 10000;

	assert_int_equal(run_main(in, o, out, sizeof(out)), 65);
	assert_string_equal(out,
	    "undeliverable no_such_user\n"
	    "error line_too_long\n"
	    "deliverable accepted\n"
	    "error line_too_long\n"
	    "risky mailbox_full\n"
	    "error line_too_long\n");
	free(in);
}

/* A multi-line reply on one line reads as the joined reply would. */
static void
test_main_multiline(void **state)
{
	static const char input[] =
	    "rcpt 550-5.1.1 The email account that you tried to reach does not exist. Please try "
	    "550-5.1.1 double-checking the recipient's email address for typos or "
	    "550 5.1.1 unnecessary spaces.\n"
	    "banner 554-gmx.net (mxgmx116) Nemesis ESMTP Service not available 554-No SMTP service "
	    "554-IP address is black listed. 554 For explanation visit https://postmaster.gmx.net/\n"
	    /* the marker split a keyword: joined, it is whole again */
	    "rcpt 554-Mailbox 554 full\n"
	    "rcpt 550-Recipient 550 not found\n"
	    "ehlo 250-mx.example.org Hello 250-PIPELINING 250 STARTTLS\n";
	char out[512];

	(void)state;
	assert_int_equal(run_main(input, sizeof(input) - 1, out, sizeof(out)), 0);
	assert_string_equal(out,
	    "undeliverable no_such_user\n"
	    "unknown blocked\n"
	    "risky mailbox_full\n"
	    "undeliverable no_such_user\n"
	    "continue -\n");
}

static void
test_main_empty_input(void **state)
{
	char out[16];

	(void)state;
	assert_int_equal(run_main("", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(run_main("\n\n# only comments\n", 18, out, sizeof(out)), 0);
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus_split_and_classify),
		cmocka_unit_test(test_corpus_classify_main),
		cmocka_unit_test(test_corpus_covers_every_outcome),
		cmocka_unit_test(test_invariants_sweep),
		cmocka_unit_test(test_never_undeliverable_before_rcpt),
		cmocka_unit_test(test_rule_cases),
		cmocka_unit_test(test_enhanced_class_disagreement),
		cmocka_unit_test(test_enhanced_malformed),
		cmocka_unit_test(test_bad_codes_and_stages),
		cmocka_unit_test(test_empty_text),
		cmocka_unit_test(test_huge_text),
		cmocka_unit_test(test_text_matching),
		cmocka_unit_test(test_split_line),
		cmocka_unit_test(test_stage_names),
		cmocka_unit_test(test_main_basic),
		cmocka_unit_test(test_main_errors),
		cmocka_unit_test(test_main_long_lines),
		cmocka_unit_test(test_main_multiline),
		cmocka_unit_test(test_main_empty_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
