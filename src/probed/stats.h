/*
 * stats — the daemon's counters, one global struct (updated by whoever sees
 * the event) and one formatter for the STATS line.
 */
#ifndef PROBED_STATS_H
#define PROBED_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "codec.h"
#include "engine.h"

/* X(field): every counter appears in STATS under its field name. */
#define STATS_COUNTERS(X) \
	X(clients) \
	X(clients_total) \
	X(clients_refused) \
	X(refused_unauthorized) \
	X(idle_timeouts) \
	X(requests) \
	X(errors) \
	X(lines_too_long) \
	X(reloads) \
	X(reload_errors)

struct stats {
	time_t started;
#define X(f) uint64_t f;
	STATS_COUNTERS(X)
#undef X
	uint64_t verbs[CTL__VERB_COUNT];
	uint64_t reasons[REASON__COUNT];   /* verdicts answered, by reason */
};

extern struct stats stats;

void stats_init(void);
/* Format the whole STATS response line into out; returns its length or 0.
 * engine: the verifier's counters, NULL when there is no engine. */
size_t stats_format(char *out, size_t cap, const struct engine_counters *engine,
    size_t inflight);

#endif
