/*
 * classify — what an SMTP reply means for the address being verified.
 * See classify.h and doc/verdicts.md (the evidence behind every rule).
 *
 * Owns: the rule table, the reply-line splitter and `probed --classify`.
 * One ordered, static const table; the first row that matches wins.  A row
 * names the stages it applies to, a reply-code range, an enhanced status
 * code pattern (RFC 3463) and, optionally, a list of keywords of which any
 * one must occur in the reply text.  Keyword lists are data: to teach the
 * classifier a new vendor phrase, add it to a list, add the real reply to
 * tests/unit/data/replies.tsv, run the tests.
 *
 * The order encodes the rules that matter most, and reads top to bottom:
 *   - Only a reply to RCPT can say anything about the mailbox; a rejection
 *     at the banner, EHLO, STARTTLS or MAIL stage is about the prober and
 *     never "undeliverable" (rows with address verdicts name S_RCPT alone).
 *   - A block of the prober (blocklists, reputation, policy, 5.7.x) is
 *     checked before any "no such user" wording, so "550 5.1.1 ... blocked
 *     using Spamhaus" is `blocked`, not `no_such_user`.
 *   - When nothing recognisable is said, the verdict is never a guess in
 *     the damaging direction: a bare 5xx at RCPT is `unverifiable`.
 *
 * Limits: the text is read up to CLASSIFY_SCAN_MAX octets; anything after
 * that is not looked at.  Keyword matching is case-insensitive (ASCII),
 * treats runs of white space, control octets, '-' and '_' as one space, and
 * anchors each keyword at the start of a word (so "rbl" does not match
 * "garble"; keywords may be prefixes: "throttl" matches "throttled").
 * classify_reply() and classify_split_line() work on the stack and never
 * allocate; classify_main() allocates its one line buffer.
 *
 * Security: the text is server-controlled and only ever read, within the
 * length given.  Nothing here prints it.
 *
 * Blind spots: a server that answers "no such user" to a prober it really
 * blocks cannot be told apart from an honest one.  Keyword lists know
 * English and a few vendor phrases; a rejection worded otherwise falls
 * through to the reply-code rules, which err towards `unknown` and
 * `unverifiable`, never `undeliverable` without evidence.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "classify.h"
#include "linebuf.h"
#include "vocab.h"

#define CLASSIFY_SCAN_MAX 4096 /* octets of reply text looked at */
#define CLASSIFY_LINE_MAX 4096 /* probed --classify: longest input line */

#define EX_DATAERR 65
#define EX_IOERR 74

/* ------------------------------------------------------------------ */
/* stages                                                              */
/* ------------------------------------------------------------------ */

static const char *const stage_names[STAGE__COUNT] = {
	[STAGE_BANNER] = "banner",
	[STAGE_EHLO] = "ehlo",
	[STAGE_STARTTLS] = "starttls",
	[STAGE_MAIL] = "mail",
	[STAGE_RCPT] = "rcpt",
};

const char *
smtp_stage_name(enum smtp_stage s)
{
	return (unsigned)s < STAGE__COUNT ? stage_names[s] : "unknown";
}

static bool
word_eq_nocase(const char *word, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char a = (unsigned char)word[i];
		unsigned char b = (unsigned char)s[i];

		if (a == '\0')
			return false;
		if (b >= 'A' && b <= 'Z')
			b = (unsigned char)(b - 'A' + 'a');
		if (a != b)
			return false;
	}
	return word[i] == '\0';
}

/* Case-insensitive; "helo" is accepted for the EHLO stage (its fallback). */
bool
smtp_stage_from_name(const char *s, size_t len, enum smtp_stage *out)
{
	for (unsigned i = 0; i < STAGE__COUNT; i++)
		if (word_eq_nocase(stage_names[i], s, len)) {
			*out = (enum smtp_stage)i;
			return true;
		}
	if (word_eq_nocase("helo", s, len)) {
		*out = STAGE_EHLO;
		return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* keyword lists (normalised: lower case, single spaces, no '-' or '_') */
/* ------------------------------------------------------------------ */

/* Greylisting, said in so many words (postgrey, sqlgrey, Barracuda,
 * ZeroSpam), and Mimecast's greylisting reply. */
static const char *const w_greylist[] = {
	"greylist", "graylist", "grey list", "gray list", "postgrey",
	"internal resource", NULL
};

/* Weak greylisting hint, trusted only on 450/451 with 4.7.1, 4.2.0 or no
 * enhanced code: rspamd's and Barracuda's "451 4.7.1 Try again later". */
static const char *const w_try_later[] = {
	"try again later", "try later", "retry later", "come back later", NULL
};

/* The server wants TLS the prober did not (or could not) use. */
static const char *const w_tls[] = {
	"tls required", "must issue a starttls", "starttls first",
	"encryption is required", "encryption required", "session encryption",
	"requires encryption", "requires tls", NULL
};

/* The complaint is about the envelope sender (MAIL FROM), even when the
 * server says it at RCPT (Postfix delays rejections to RCPT by default;
 * Exim runs sender verification there). */
static const char *const w_sender[] = {
	"sender address rejected", "sender rejected", "sender verify failed",
	"sender verification failed", "verification failed for",
	"domain of sender", "sender domain", "null sender", "<> not allowed",
	"bad sender", "sender address invalid", "invalid sender",
	"unknown sender", "sender not allowed", NULL
};

/* Any mention of the sender: trusted only at MAIL, under 5.7.x. */
static const char *const w_sender_any[] = { "sender", NULL };

/* A block of the prober: blocklists by name, reputation, spam and policy
 * words, the client's DNS, HELO and IP.  Checked before mailbox words. */
static const char *const w_block[] = {
	"blocklist", "block list", "blacklist", "black list", "denylist",
	"deny list", "blocked", "banned", "dnsbl", "rbl", "spamhaus", "spamcop",
	"barracudacentral", "barracuda reputation", "sorbs", "uceprotect",
	"mailspike", "abuseat", "psbl", "spameatingmonkey", "senderscore",
	"sender score", "invaluement", "ivmsip", "cloudmark", "abusix",
	"reputation", "spam", "junkmail", "junk mail", "listed", "abuse",
	"policy", "client host rejected", "client host [", "helo command rejected",
	"helo/ehlo argument", "bad helo", "invalid helo", "not allowed to send",
	"not allowed to connect", "rejected due to spam", "denied by policy",
	"ptr record", "ptr resource record", "dns ptr", "reverse dns",
	"reverse hostname", "rdns", "whitelist", "allowlist", "your ip",
	"refused by", "not accepting connections", "no smtp service",
	"you are not allowed", NULL
};

/* Policy words that are weaker than the list above: they are checked after
 * the relay phrases (Postfix says "Relay access denied") but before any
 * mailbox words (Postfix's access(5) REJECT says "...: Access denied"). */
static const char *const w_block_weak[] = {
	"access denied", "administrative prohibition", "administratively denied",
	"not authorized", "not authorised", "unauthorized", "prohibited",
	"permission denied", "refused", NULL
};

/* This host does not accept mail for the recipient's domain. */
static const char *const w_relay[] = {
	"relay access denied", "relaying denied", "relay denied",
	"relaying not allowed", "relay not allowed", "relaying disallowed",
	"relay not permitted", "relaying not permitted", "not permitted to relay",
	"unable to relay", "cannot relay", "can't relay", "we do not relay",
	"no relaying", "relaying prohibited", "relay prohibited", "as a relay",
	"rcpthosts", NULL
};

/* The mailbox does not exist, said plainly enough to be believed even under
 * a 5.7.x code (Yandex: "550 5.7.1 No such user!"). */
static const char *const w_user_strong[] = {
	"user unknown", "unknown user", "no such user", "no such mailbox",
	"no such recipient", "no such person", "unknown recipient",
	"recipient unknown", "addressee unknown", "user not found",
	"recipient not found", "mailbox not found", "mail box not found",
	"no mailbox", "no mail box", "does not exist", "doesn't exist",
	"not a known user", "invalid recipient", "recipient invalid",
	"invalid mailbox", "marked as invalid", "not in recipient list",
	"this user doesn", "not our customer", NULL
};

/* The mailbox does not exist: believed unless a policy code or word says
 * otherwise. */
static const char *const w_user[] = {
	"unknown address", "unknown mailbox", "mailbox unknown",
	"address not found", "account not found", "not exist", "dosn't exist",
	"not a valid mailbox", "invalid address", "invalid email address",
	"not a valid email address", "user not local", "unknown local part",
	"no longer on server", "mailbox unallocated", "unrouteable",
	"unroutable", "bad destination mailbox", "bad recipient",
	"unknown or illegal alias", "could not be found", "not handled by",
	"no such address", "no such account", "not an active address", NULL
};

/* The weakest mailbox words: RFC 5321's own 550 text and the generic
 * "Recipient address rejected:" prefix Postfix puts on every recipient
 * restriction.  Trusted only when nothing before said policy. */
static const char *const w_user_weak[] = {
	"address rejected", "recipient rejected", "mailbox unavailable",
	"mailbox is unavailable", "undeliverable", NULL
};

static const char *const w_full[] = {
	"mailbox full", "mailbox is full", "mailbox for user is full",
	"inbox is full", "over quota", "overquota", "quota exceeded",
	"exceeded storage", "exceeds storage", "storage allocation",
	"out of storage", "storage space", "quota violation",
	"mailbox size limit", "too many messages", NULL
};

static const char *const w_disabled[] = {
	"disabled", "deactivated", "inactive", "suspended", "discontinued",
	"no longer valid", "no longer active", NULL
};

/* Mailbox-state words believed even under 5.7.x (Rambler "540 5.7.1 ...:
 * recipient address rejected: Inactive"). */
static const char *const w_disabled_strong[] = {
	"inactive", "mailbox is disabled", "account is disabled",
	"account disabled", "mailbox disabled", NULL
};

static const char *const w_rate[] = {
	"rate limit", "ratelimit", "throttl", "slow down", "too quickly",
	"too fast", "receiving mail at a rate", "message rate", "sending rate",
	"too many connections", "too many concurrent", "concurrent connections",
	"too many sessions", "too many recipients from", "too much mail",
	"too many errors", "unexpected volume", "excessive volume",
	"unusual rate", "temporarily deferred due to", "connection limit",
	"relay limit exceeded", "exceeded a limit", "exceeded their limit",
	"per connection", "per hour", "per minute", "message threshold",
	"threshold exceeded", NULL
};

/* Exchange Online throttles unknown IPs with 451 4.7.500-699 "Server busy". */
static const char *const w_busy[] = { "server busy", NULL };

static const char *const w_too_many_rcpts[] = {
	"too many recipients", "recipient limit", "recipients limit", NULL
};

static const char *const w_null_mx[] = {
	"does not accept mail", "nullmx", "null mx", NULL
};

static const char *const w_domain[] = {
	"domain", "host unknown", "host not found", NULL
};

static const char *const w_protocol[] = {
	"protocol error", "protocol violation", NULL
};

/* Office 365 directory-based edge blocking: "550 5.4.1 Recipient address
 * rejected: Access denied" means the tenant has no such recipient. */
static const char *const w_o365_dbeb[] = {
	"recipient address rejected: access denied", NULL
};

/* ------------------------------------------------------------------ */
/* the table                                                           */
/* ------------------------------------------------------------------ */

#define S_BANNER (1u << STAGE_BANNER)
#define S_EHLO (1u << STAGE_EHLO)
#define S_TLS (1u << STAGE_STARTTLS)
#define S_MAIL (1u << STAGE_MAIL)
#define S_RCPT (1u << STAGE_RCPT)
#define S_EARLY (S_BANNER | S_EHLO | S_TLS | S_MAIL) /* before RCPT */
#define S_ALL (S_EARLY | S_RCPT)

/* Enhanced-code patterns: NULL any, ENH_NONE "the reply had none". */
#define ENH_ANY NULL
#define ENH_NONE ""

struct rule {
	const char *name;
	unsigned stages;
	short lo, hi;              /* reply code range, inclusive */
	const char *enh;           /* "5.1.1", "5.7.*", "4.*.*", ENH_ANY, ENH_NONE */
	const char *const *words;  /* any-of; NULL: no text condition */
	enum reason reason;
	enum classify_action action;
};

#define RULE(n, st, lo, hi, enh, w, r, a) \
	{ n, st, lo, hi, enh, w, REASON_##r, CLASSIFY_##a }
/* The same test, acted on differently at RCPT (stop, or decide) and before
 * it (a complaint about the prober: the next MX may think otherwise). */
#define RCPT_OR_EARLY(n, lo, hi, enh, w, r, a) \
	RULE(n, S_RCPT, lo, hi, enh, w, r, a), \
	RULE(n, S_EARLY, lo, hi, enh, w, r, NEXT_MX)
/* About the sender: at RCPT other MXes would say the same (stop); at MAIL
 * the session may retry with its fallback sender, else the next MX. */
#define RCPT_OR_MAIL(n, lo, hi, enh, w, r) \
	RULE(n, S_RCPT, lo, hi, enh, w, r, STOP), \
	RULE(n, S_MAIL, lo, hi, enh, w, r, NEXT_MX)
/* CONTINUE rows carry `pending`: should anyone ignore the action, the
 * reason still reads "no verdict yet" and never "accepted". */
#define OK(n, st, lo, hi) RULE(n, st, lo, hi, ENH_ANY, NULL, PENDING, CONTINUE)

static const struct rule rules[] = {
	/* ---- replies that are not what the stage can answer */
	RULE("3xx-unexpected", S_ALL, 300, 399, ENH_ANY, NULL, PROTOCOL_ERROR, NEXT_MX),
	RULE("221-closing", S_ALL, 221, 221, ENH_ANY, NULL, PROTOCOL_ERROR, NEXT_MX),

	/* ---- success */
	OK("banner-ok", S_BANNER, 200, 299),
	OK("ehlo-ok", S_EHLO, 200, 299),
	OK("starttls-ok", S_TLS, 220, 220),
	RULE("starttls-odd-2xx", S_TLS, 200, 299, ENH_ANY, NULL, TLS_FAILED, NEXT_MX),
	OK("mail-ok", S_MAIL, 200, 299),
	RULE("rcpt-accepted", S_RCPT, 250, 251, ENH_ANY, NULL, ACCEPTED, DECIDED),
	/* RFC 5321 §3.5.3: "cannot verify the user, but will accept" */
	RULE("rcpt-cannot-verify", S_RCPT, 252, 252, ENH_ANY, NULL, UNVERIFIABLE, DECIDED),
	RULE("rcpt-odd-2xx", S_RCPT, 200, 299, ENH_ANY, NULL, PROTOCOL_ERROR, NEXT_MX),

	/* ---- 421: the server is closing the channel, at any stage.  Nothing
	 * was said about the mailbox; another MX may serve. */
	RULE("421-tls", S_ALL, 421, 421, ENH_ANY, w_tls, TLS_FAILED, NEXT_MX),
	RULE("421-rate-4.7.28", S_ALL, 421, 421, "4.7.28", NULL, RATE_LIMITED, NEXT_MX),
	RULE("421-greylist", S_ALL, 421, 421, ENH_ANY, w_greylist, GREYLISTED, NEXT_MX),
	RULE("421-blocked", S_ALL, 421, 421, ENH_ANY, w_block, BLOCKED, NEXT_MX),
	RULE("421-rate", S_ALL, 421, 421, ENH_ANY, w_rate, RATE_LIMITED, NEXT_MX),
	RULE("421-rate-4.7.0", S_ALL, 421, 421, "4.7.0", NULL, RATE_LIMITED, NEXT_MX),
	RULE("421-closing", S_ALL, 421, 421, ENH_ANY, NULL, TEMPFAIL, NEXT_MX),

	/* ---- STARTTLS refused: blocked if it says so, else TLS failed (the
	 * session decides whether to carry on in the clear). */
	RULE("starttls-blocked", S_TLS, 400, 599, ENH_ANY, w_block, BLOCKED, NEXT_MX),
	RULE("starttls-refused", S_TLS, 400, 599, ENH_ANY, NULL, TLS_FAILED, NEXT_MX),

	/* ---- 4xx: temporary.  At RCPT the recipient is deferred (STOP: a
	 * backup MX would only say "accepted" for anything); earlier, try the
	 * next MX. */
	/* RFC 5321 §4.5.3.1.10: the batch is too big; the session retries. */
	RULE("rcpt-too-many-4.5.3", S_RCPT, 400, 499, "4.5.3", NULL, TEMPFAIL, STOP),
	RULE("rcpt-too-many-452", S_RCPT, 452, 452, ENH_ANY, w_too_many_rcpts, TEMPFAIL, STOP),
	RCPT_OR_MAIL("sender-4.1.7", 400, 499, "4.1.7", NULL, SENDER_REJECTED),
	RCPT_OR_MAIL("sender-4.1.8", 400, 499, "4.1.8", NULL, SENDER_REJECTED),
	RCPT_OR_MAIL("sender-4xx-words", 400, 499, ENH_ANY, w_sender, SENDER_REJECTED),
	RCPT_OR_EARLY("greylisted", 400, 499, ENH_ANY, w_greylist, GREYLISTED, STOP),
	RULE("tls-required-4xx", S_ALL, 400, 499, ENH_ANY, w_tls, TLS_FAILED, NEXT_MX),
	RCPT_OR_EARLY("rate-4.7.28", 400, 499, "4.7.28", NULL, RATE_LIMITED, STOP),
	RCPT_OR_EARLY("rate-server-busy", 400, 499, "4.7.*", w_busy, RATE_LIMITED, STOP),
	RCPT_OR_EARLY("blocked-4xx", 400, 499, ENH_ANY, w_block, BLOCKED, STOP),
	RULE("full-4.2.2", S_RCPT, 400, 499, "4.2.2", NULL, MAILBOX_FULL, DECIDED),
	RULE("full-4xx-words", S_RCPT, 400, 499, "4.2.*", w_full, MAILBOX_FULL, DECIDED),
	RULE("full-4xx-words", S_RCPT, 400, 499, ENH_NONE, w_full, MAILBOX_FULL, DECIDED),
	RCPT_OR_EARLY("rate-4xx", 400, 499, ENH_ANY, w_rate, RATE_LIMITED, STOP),
	/* Gmail: "450 4.2.1 The user you are trying to contact is receiving
	 * mail too quickly"; RFC 3463 calls x.2.1 "mailbox disabled" but no
	 * mailbox is disabled for a while. */
	RCPT_OR_EARLY("rate-450-4.2.1", 450, 450, "4.2.1", NULL, RATE_LIMITED, STOP),
	RCPT_OR_EARLY("greylist-weak", 450, 451, "4.7.1", w_try_later, GREYLISTED, STOP),
	RCPT_OR_EARLY("greylist-weak", 450, 451, "4.2.0", w_try_later, GREYLISTED, STOP),
	RCPT_OR_EARLY("greylist-weak", 450, 451, ENH_NONE, w_try_later, GREYLISTED, STOP),
	RCPT_OR_EARLY("tempfail", 400, 499, ENH_ANY, NULL, TEMPFAIL, STOP),

	/* ---- 5xx, in order of how much the words can be trusted */
	/* Office 365 DBEB: its 5.4.1 "Access denied" means "no such recipient"
	 * (Microsoft's NDR reference); checked before the policy words. */
	RULE("o365-dbeb", S_RCPT, 500, 599, "5.4.1", w_o365_dbeb, NO_SUCH_USER, DECIDED),
	/* RFC 5321 §4.5.3.1.10: treat "552 too many recipients" as 452. */
	RULE("rcpt-too-many-5.5.3", S_RCPT, 500, 599, "5.5.3", NULL, TEMPFAIL, STOP),
	RULE("rcpt-too-many-552", S_RCPT, 552, 552, ENH_ANY, w_too_many_rcpts, TEMPFAIL, STOP),
	/* The sender: MAIL's own business, and Postfix/Exim say it at RCPT. */
	RCPT_OR_MAIL("sender-5.1.7", 500, 599, "5.1.7", NULL, SENDER_REJECTED),
	RCPT_OR_MAIL("sender-5.1.8", 500, 599, "5.1.8", NULL, SENDER_REJECTED),
	RCPT_OR_MAIL("sender-5.7.27", 500, 599, "5.7.27", NULL, SENDER_REJECTED),
	RCPT_OR_MAIL("sender-words", 500, 599, ENH_ANY, w_sender, SENDER_REJECTED),
	RULE("tls-required", S_ALL, 500, 599, ENH_ANY, w_tls, TLS_FAILED, NEXT_MX),
	/* Blocks of the prober beat every mailbox word. */
	RCPT_OR_EARLY("blocked", 500, 599, ENH_ANY, w_block, BLOCKED, STOP),
	/* The MX does not take mail for the domain: mail from anyone would
	 * bounce here, and an MTA does not try another MX after a 5xx. */
	RULE("relay-denied", S_RCPT, 500, 599, ENH_ANY, w_relay, RELAY_DENIED, DECIDED),
	/* 5.7.x is policy, unless the words plainly describe the mailbox. */
	RULE("policy-but-no-user", S_RCPT, 500, 599, "5.7.*", w_user_strong, NO_SUCH_USER, DECIDED),
	RULE("policy-but-disabled", S_RCPT, 500, 599, "5.7.*", w_disabled_strong, DISABLED, DECIDED),
	/* At MAIL a 5.7.x that talks about the sender is about the sender:
	 * "550 5.7.1 Client does not have permissions to send as this sender". */
	RULE("mail-5.7-sender", S_MAIL, 500, 599, "5.7.*", w_sender_any, SENDER_REJECTED, NEXT_MX),
	RCPT_OR_EARLY("policy-5.7", 500, 599, "5.7.*", NULL, BLOCKED, STOP),
	RCPT_OR_EARLY("rate-5xx", 500, 599, ENH_ANY, w_rate, RATE_LIMITED, STOP),
	RCPT_OR_EARLY("policy-words", 500, 599, ENH_ANY, w_block_weak, BLOCKED, STOP),
	RULE("protocol-words", S_ALL, 500, 599, ENH_ANY, w_protocol, PROTOCOL_ERROR, NEXT_MX),

	/* ---- 5xx before RCPT: never about the mailbox */
	/* Syntax and sequence codes: the prober's command, not its identity
	 * (an EHLO refused this way is retried as HELO by the session). */
	RULE("command-syntax", S_EHLO | S_MAIL, 500, 504, ENH_NONE, NULL, PROTOCOL_ERROR, NEXT_MX),
	RULE("command-syntax", S_EHLO | S_MAIL, 500, 504, "5.5.*", NULL, PROTOCOL_ERROR, NEXT_MX),
	/* RFC 5321 §3.1: 554 instead of 220 declines service to this client. */
	RULE("banner-refused", S_BANNER, 500, 599, ENH_ANY, NULL, BLOCKED, NEXT_MX),
	RULE("ehlo-refused", S_EHLO, 500, 599, ENH_ANY, NULL, BLOCKED, NEXT_MX),
	/* MAIL has one argument: the sender (the session then tries the
	 * configured fallback sender). */
	RULE("mail-refused", S_MAIL, 500, 599, ENH_ANY, NULL, SENDER_REJECTED, NEXT_MX),

	/* ---- 5xx at RCPT: the mailbox */
	RULE("full-5.2.2", S_RCPT, 500, 599, "5.2.2", NULL, MAILBOX_FULL, DECIDED),
	RULE("full-words", S_RCPT, 500, 599, ENH_ANY, w_full, MAILBOX_FULL, DECIDED),
	RULE("disabled-words", S_RCPT, 500, 599, ENH_ANY, w_disabled, DISABLED, DECIDED),
	RULE("null-mx-556", S_RCPT, 556, 556, ENH_ANY, NULL, NULL_MX, DECIDED),
	RULE("null-mx-words", S_RCPT, 500, 599, ENH_ANY, w_null_mx, NULL_MX, DECIDED),
	RULE("no-such-user-words", S_RCPT, 500, 599, ENH_ANY, w_user_strong, NO_SUCH_USER, DECIDED),
	RULE("no-such-user-words", S_RCPT, 500, 599, ENH_ANY, w_user, NO_SUCH_USER, DECIDED),
	/* At RCPT, 500..504 without a mailbox word is about the command
	 * (Mimecast's "501 Invalid Address" was taken just above). */
	RULE("command-syntax", S_RCPT, 500, 504, ENH_NONE, NULL, PROTOCOL_ERROR, NEXT_MX),
	RULE("command-syntax", S_RCPT, 500, 504, "5.5.*", NULL, PROTOCOL_ERROR, NEXT_MX),
	RULE("disabled-5.2.1", S_RCPT, 500, 599, "5.2.1", NULL, DISABLED, DECIDED),
	RULE("no-domain-5.1.2", S_RCPT, 500, 599, "5.1.2", w_domain, NO_DOMAIN, DECIDED),
	/* 5.1.0 other address status, 5.1.1 bad mailbox, 5.1.6 moved,
	 * 5.1.10 (Exchange Online: recipient not found), ...; 5.1.7/5.1.8 are
	 * the sender's and were taken above. */
	RULE("no-such-user-5.1", S_RCPT, 500, 599, "5.1.*", NULL, NO_SUCH_USER, DECIDED),
	RULE("no-such-user-weak", S_RCPT, 500, 599, ENH_ANY, w_user_weak, NO_SUCH_USER, DECIDED),
	/* RFC 5321 §4.2.2: 552 "exceeded storage allocation". */
	RULE("full-552", S_RCPT, 552, 552, ENH_ANY, NULL, MAILBOX_FULL, DECIDED),
	/*
	 * Nothing recognisable: a bare "550 Requested action not taken".  RFC
	 * 5321 §4.2.2 defines 550 as "mailbox unavailable (e.g., mailbox not
	 * found, no access, or command rejected for policy reasons)": the code
	 * alone cannot tell a missing mailbox from a refusal of the prober,
	 * and a prober meets refusals (null sender, unknown IP, no history)
	 * that a real mailer would not.  Calling it "undeliverable" would turn
	 * a block into a deleted customer; calling it temporary would re-probe
	 * a server that said no for good.  The server answered and would not
	 * let us verify: risky, unverifiable, decided (a lower-priority MX
	 * would only accept anything).  doc/verdicts.md has the evidence.
	 */
	RULE("rcpt-5xx-unexplained", S_RCPT, 500, 599, ENH_ANY, NULL, UNVERIFIABLE, DECIDED),

	/* ---- nothing above can miss, but a table is safer with a floor */
	RULE("unexpected", S_ALL, 100, 599, ENH_ANY, NULL, PROTOCOL_ERROR, NEXT_MX),
};

/* ------------------------------------------------------------------ */
/* matching                                                            */
/* ------------------------------------------------------------------ */

struct enhanced {
	bool present;
	int part[3]; /* class, subject, detail */
};

/* RFC 3463: class "." subject "." detail; class 2, 4 or 5; subject and
 * detail 1-3 digits.  Writes nothing unless the whole of s[0..n) is one. */
static bool
enhanced_parse(const char *s, size_t n, struct enhanced *e)
{
	int part[3] = { 0, 0, 0 };
	size_t i = 0;

	for (int k = 0; k < 3; k++) {
		size_t digits = 0;

		while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 4) {
			part[k] = part[k] * 10 + (s[i] - '0');
			i++;
			digits++;
		}
		if (digits == 0 || digits > (k == 0 ? 1u : 3u))
			return false;
		if (k < 2) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
	}
	if (i != n || (part[0] != 2 && part[0] != 4 && part[0] != 5))
		return false;
	e->present = true;
	memcpy(e->part, part, sizeof(part));
	return true;
}

/* Pattern components are digits or '*'; patterns are table constants. */
static bool
enhanced_matches(const char *pat, const struct enhanced *e)
{
	if (pat == ENH_ANY)
		return true;
	if (pat[0] == '\0')
		return !e->present;
	if (!e->present)
		return false;
	for (int k = 0; k < 3; k++) {
		if (*pat == '*') {
			pat++;
		} else {
			int v = 0;

			while (*pat >= '0' && *pat <= '9')
				v = v * 10 + (*pat++ - '0');
			if (v != e->part[k])
				return false;
		}
		if (k < 2 && *pat++ != '.')
			return false;
	}
	return true;
}

struct text {
	char buf[CLASSIFY_SCAN_MAX + 2]; /* buf[0] is a space: a word boundary */
	size_t len;
};

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Lower case, '-' and '_' as spaces, every run of white space or control
 * octets as one space; at most CLASSIFY_SCAN_MAX octets of input. */
static void
text_normalise(struct text *t, const char *s, size_t n)
{
	size_t o = 0;

	if (s == NULL)
		n = 0;
	if (n > CLASSIFY_SCAN_MAX)
		n = CLASSIFY_SCAN_MAX;
	t->buf[o++] = ' ';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		else if (c < 0x20 || c == 0x7f || c == '-' || c == '_')
			c = ' ';
		if (c == ' ' && t->buf[o - 1] == ' ')
			continue;
		t->buf[o++] = (char)c;
	}
	t->buf[o] = '\0';
	t->len = o;
}

/* Does the keyword start a word somewhere in the text? */
static bool
text_has(const struct text *t, const char *kw)
{
	size_t m = strlen(kw);

	if (m == 0 || m > t->len)
		return false;
	for (size_t i = 1; i + m <= t->len; i++) {
		if (t->buf[i] != kw[0] || memcmp(t->buf + i, kw, m) != 0)
			continue;
		if (!is_alnum((unsigned char)t->buf[i - 1]))
			return true;
	}
	return false;
}

static bool
text_has_any(const struct text *t, const char *const *words)
{
	for (; *words != NULL; words++)
		if (text_has(t, *words))
			return true;
	return false;
}

struct classification
classify_reply(enum smtp_stage stage, int code, const char *enhanced,
    const char *text, size_t text_len)
{
	struct classification c = { REASON_PROTOCOL_ERROR, CLASSIFY_NEXT_MX, "bad-code" };
	struct enhanced e = { false, { 0, 0, 0 } };
	struct text t;

	if ((unsigned)stage >= STAGE__COUNT) {
		c.rule = "bad-stage";
		return c;
	}
	/* RFC 5321 §4.2: 2yz..5yz; 1yz is never a reply to these commands. */
	if (code < 200 || code > 599)
		return c;
	/* RFC 3463 §2 gives the class the reply code's meaning (2 success,
	 * 4 transient, 5 permanent).  When they disagree one is wrong, and
	 * SMTP acts on the reply code: the enhanced code is not believed
	 * (the text still is). */
	if (enhanced != NULL && enhanced_parse(enhanced, strnlen(enhanced, 16), &e) &&
	    e.part[0] != code / 100)
		e.present = false;
	text_normalise(&t, text, text_len);

	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		const struct rule *r = &rules[i];

		if (!(r->stages & (1u << stage)) || code < r->lo || code > r->hi)
			continue;
		if (!enhanced_matches(r->enh, &e))
			continue;
		if (r->words != NULL && !text_has_any(&t, r->words))
			continue;
		c.reason = r->reason;
		c.action = r->action;
		c.rule = r->name;
		return c;
	}
	c.rule = "no-rule"; /* unreachable: the table has a floor */
	return c;
}

/* ------------------------------------------------------------------ */
/* reply lines                                                         */
/* ------------------------------------------------------------------ */

static bool
is_space(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * "550 5.1.1 text", "550-5.1.1 text", "250 OK", "250", "550 #5.1.0 text"
 * (Exchange, IronPort).  The enhanced code is taken only when it is a whole
 * token and its class agrees with the reply code's first digit; otherwise
 * it stays in the text, where it is only words.
 */
bool
classify_split_line(const char *line, size_t len, int *code, char *enhanced,
    const char **text, size_t *text_len)
{
	size_t i, end;

	enhanced[0] = '\0';
	if (line == NULL || len < 3)
		return false;
	for (i = 0; i < 3; i++)
		if (line[i] < '0' || line[i] > '9')
			return false;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return false;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');

	end = len;
	while (end > 3 && (is_space(line[end - 1]) || line[end - 1] == '\r' ||
	    line[end - 1] == '\n'))
		end--;
	i = len > 3 ? 4 : 3;
	while (i < end && is_space(line[i]))
		i++;

	size_t tok = i + (i < end && line[i] == '#');
	size_t tok_end = tok;

	while (tok_end < end && !is_space(line[tok_end]))
		tok_end++;
	struct enhanced e = { false, { 0, 0, 0 } };

	if (tok_end - tok < 16 && enhanced_parse(line + tok, tok_end - tok, &e) &&
	    e.part[0] == line[0] - '0') {
		memcpy(enhanced, line + tok, tok_end - tok);
		enhanced[tok_end - tok] = '\0';
		i = tok_end;
		while (i < end && is_space(line[i]))
			i++;
	}
	if (i > end)
		i = end;
	*text = line + i;
	*text_len = end - i;
	return true;
}

/* ------------------------------------------------------------------ */
/* probed --classify                                                   */
/* ------------------------------------------------------------------ */

/*
 * A multi-line reply pasted on one line ("550-5.1.1 The email account ...
 * 550-5.1.1 double-checking ... 550 5.1.1 unnecessary spaces.") carries a
 * continuation marker for every line: the same code followed by '-' or SP,
 * then possibly the enhanced code again.  Drop them, as the session drops
 * them when it joins a reply's lines.
 */
static size_t
join_continuations(const char *s, size_t n, int code, const char *enhanced,
    char *out, size_t cap)
{
	char digits[4];
	size_t elen = strlen(enhanced), o = 0, i = 0;

	snprintf(digits, sizeof(digits), "%03d", code);
	while (i < n && o + 1 < cap) {
		bool at_word = i == 0 || is_space(s[i - 1]);

		if (at_word && i + 3 < n && memcmp(s + i, digits, 3) == 0 &&
		    (s[i + 3] == '-' || s[i + 3] == ' ')) {
			size_t j = i + 4;

			while (j < n && is_space(s[j]))
				j++;
			size_t k = j + (j < n && s[j] == '#');

			if (elen > 0 && k + elen <= n && memcmp(s + k, enhanced, elen) == 0 &&
			    (k + elen == n || is_space(s[k + elen]))) {
				j = k + elen;
				while (j < n && is_space(s[j]))
					j++;
			}
			i = j;
			continue;
		}
		out[o++] = s[i++];
	}
	while (o > 0 && is_space(out[o - 1]))
		o--;
	return o;
}

static void
classify_one(const char *line, size_t len, FILE *out, bool *bad)
{
	size_t i = 0, w;
	enum smtp_stage stage;

	if (memchr(line, '\0', len) != NULL) {
		fputs("error bad_octet\n", out);
		*bad = true;
		return;
	}
	while (i < len && is_space(line[i]))
		i++;
	if (i == len || line[i] == '#')
		return; /* blank or comment */
	w = i;
	while (i < len && !is_space(line[i]))
		i++;
	if (!smtp_stage_from_name(line + w, i - w, &stage)) {
		fputs("error unknown_stage\n", out);
		*bad = true;
		return;
	}
	while (i < len && is_space(line[i]))
		i++;
	if (i == len) {
		fputs("error missing_reply\n", out);
		*bad = true;
		return;
	}

	int code;
	char enhanced[16];
	const char *text;
	size_t text_len;
	struct classification c;

	if (!classify_split_line(line + i, len - i, &code, enhanced, &text, &text_len)) {
		/* What the server sent has no reply code: that is an answer too. */
		c = classify_reply(stage, 0, NULL, NULL, 0);
	} else {
		char joined[CLASSIFY_LINE_MAX];
		size_t n = join_continuations(text, text_len, code, enhanced,
		    joined, sizeof(joined));

		c = classify_reply(stage, code, enhanced, joined, n);
	}
	if (c.action == CLASSIFY_CONTINUE)
		fputs("continue -\n", out);
	else
		fprintf(out, "%s %s\n", verdict_name(reason_verdict(c.reason)),
		    reason_name(c.reason));
}

int
classify_main(FILE *in, FILE *out)
{
	struct linebuf lb;
	bool bad = false, eof = false;

	/* Room for the longest line plus CR LF; longer lines are refused. */
	if (linebuf_init(&lb, CLASSIFY_LINE_MAX + 2) != 0)
		return EX_IOERR;
	while (!eof) {
		size_t avail, got = 0;
		char *space = linebuf_space(&lb, &avail);
		int ch;

		/* Up to one LF at a time: typed lines are answered as they come
		 * (fread would wait for a whole buffer). */
		while (got < avail && (ch = getc(in)) != EOF) {
			space[got++] = (char)ch;
			if (ch == '\n')
				break;
		}
		if (got > 0) {
			linebuf_commit(&lb, got);
		} else if (avail > 0) {
			/* End of input: a last line without LF still counts. */
			eof = true;
			if (linebuf_pending(&lb) > 0) {
				space[0] = '\n';
				linebuf_commit(&lb, 1);
			}
		}
		for (;;) {
			const char *line;
			size_t len;
			enum linebuf_status st = linebuf_next(&lb, &line, &len);

			if (st == LINEBUF_MORE)
				break;
			if (st == LINEBUF_TOOLONG || len > CLASSIFY_LINE_MAX) {
				fputs("error line_too_long\n", out);
				bad = true;
				continue;
			}
			classify_one(line, len, out, &bad);
		}
	}
	linebuf_free(&lb);
	if (ferror(in) || fflush(out) != 0 || ferror(out))
		return EX_IOERR;
	return bad ? EX_DATAERR : 0;
}
