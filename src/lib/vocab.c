/*
 * vocab — spelling of verdicts and reasons.  See include/vocab.h.
 */
#include "autoconfig.h"

#include <string.h>

#include "vocab.h"

static const char *const verdict_names[VERDICT__COUNT] = {
	[VERDICT_DELIVERABLE] = "deliverable",
	[VERDICT_UNDELIVERABLE] = "undeliverable",
	[VERDICT_RISKY] = "risky",
	[VERDICT_UNKNOWN] = "unknown",
};

static const struct {
	const char *word;
	enum verdict verdict;
} reasons[REASON__COUNT] = {
#define X(name, w, v) [REASON_##name] = { w, v },
	REASON_LIST(X)
#undef X
};

const char *
verdict_name(enum verdict v)
{
	return (unsigned)v < VERDICT__COUNT ? verdict_names[v] : "unknown";
}

const char *
reason_name(enum reason r)
{
	return (unsigned)r < REASON__COUNT ? reasons[r].word : "tempfail";
}

enum verdict
reason_verdict(enum reason r)
{
	return (unsigned)r < REASON__COUNT ? reasons[r].verdict : VERDICT_UNKNOWN;
}

static bool
word_eq(const char *word, const char *s, size_t len)
{
	return strlen(word) == len && memcmp(word, s, len) == 0;
}

bool
verdict_from_name(const char *s, size_t len, enum verdict *out)
{
	for (unsigned i = 0; i < VERDICT__COUNT; i++)
		if (word_eq(verdict_names[i], s, len)) {
			*out = (enum verdict)i;
			return true;
		}
	return false;
}

bool
reason_from_name(const char *s, size_t len, enum reason *out)
{
	for (unsigned i = 0; i < REASON__COUNT; i++)
		if (word_eq(reasons[i].word, s, len)) {
			*out = (enum reason)i;
			return true;
		}
	return false;
}
