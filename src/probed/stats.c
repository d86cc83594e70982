/*
 * stats — counters for the STATS verb.  See stats.h.
 *
 * Plain integers in one struct: probed is single-threaded, so there is
 * nothing to lock, and a STATS answer is a consistent snapshot of one
 * moment of the event loop.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "stats.h"

struct stats stats;

void
stats_init(void)
{
	memset(&stats, 0, sizeof(stats));
	stats.started = time(NULL);
}

size_t
stats_format(char *out, size_t cap, const struct engine_counters *engine, size_t inflight)
{
	/* Keys are static names, values decimal numbers: no quoting needed. */
	enum { MAX_KEYS = 80, NUM = 24 };
	const char *kv[2 * MAX_KEYS + 1];
	char nums[MAX_KEYS][NUM];
	char verb_keys[CTL__VERB_COUNT][16];
	static char reason_keys[REASON__COUNT][32];
	size_t k = 0, n = 0;

#define ADD(key, value) do { \
	snprintf(nums[n], NUM, "%" PRIu64, (uint64_t)(value)); \
	kv[k++] = (key); kv[k++] = nums[n++]; \
} while (0)

	if (reason_keys[0][0] == '\0')
		for (unsigned r = 0; r < REASON__COUNT; r++)
			snprintf(reason_keys[r], sizeof(reason_keys[r]), "reason_%s",
			    reason_name((enum reason)r));
	time_t now = time(NULL);
	ADD("uptime", now > stats.started ? now - stats.started : 0);
#define X(f) ADD(#f, stats.f);
	STATS_COUNTERS(X)
#undef X
	for (unsigned v = 0; v < CTL__VERB_COUNT; v++) {
		const char *name = ctl_verb_name((enum ctl_verb)v);
		size_t i;
		for (i = 0; name[i] != '\0' && i + 1 < sizeof(verb_keys[v]); i++)
			verb_keys[v][i] = (char)tolower((unsigned char)name[i]);
		verb_keys[v][i] = '\0';
		ADD(verb_keys[v], stats.verbs[v]);
	}
	if (engine != NULL) {
		ADD("inflight", inflight);
		ADD("cache_hits", engine->cache_hits);
		ADD("cache_misses", engine->cache_misses);
		ADD("cache_entries", engine->cache_entries);
		ADD("cache_evictions", engine->cache_evictions);
		ADD("coalesced", engine->coalesced);
		ADD("busy", engine->busy);
		ADD("refreshes", engine->refreshes);
		ADD("greylist_retries", engine->greylist_retries);
		ADD("probes", engine->flights);
		ADD("batches", engine->batches);
		ADD("sessions", engine->sessions);
		ADD("rcpts", engine->rcpts);
		ADD("dns_queries", engine->dns_queries);
		ADD("dns_cache_hits", engine->dns_cache_hits);
		ADD("domains", engine->domains);
		ADD("backoffs", engine->backoffs);
		ADD("store_errors", engine->store_errors);
		ADD("commits", engine->commits);
	}
	for (unsigned r = 0; r < REASON__COUNT; r++)
		if (stats.reasons[r] > 0)
			ADD(reason_keys[r], stats.reasons[r]);
#undef ADD
	kv[k] = NULL;
	return ctl_fmt_line(out, cap, "stats", NULL, kv);
}
