/*
 * log — leveled, one-line events to stderr or the journal.
 *
 * Messages are formatted into a fixed buffer first so that a line is written
 * with one call and never interleaves with another process's output; a
 * message longer than LOG_LINE_MAX is cut, never split.
 */
#include "autoconfig.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "log.h"

#define LOG_LINE_MAX 2048

static const char *log_ident = "probed";
static enum log_target log_target = LOG_TARGET_STDERR;
static int log_level = LOG_INFO;

static const struct {
	const char *name;
	int level;
} level_names[] = {
	{ "debug", LOG_DEBUG },
	{ "info", LOG_INFO },
	{ "notice", LOG_NOTICE },
	{ "warning", LOG_WARNING },
	{ "err", LOG_ERR },
	{ "error", LOG_ERR },
	{ "crit", LOG_CRIT },
};

void
log_open(const char *ident, enum log_target target)
{
	log_ident = ident;
	log_target = target;
}

void
log_set_level(int level)
{
	log_level = level;
}

int
log_get_level(void)
{
	return log_level;
}

bool
log_enabled(int level)
{
	return level <= log_level;
}

int
log_level_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(name, level_names[i].name) == 0)
			return level_names[i].level;
	return -1;
}

const char *
log_level_name(int level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (level_names[i].level == level)
			return level_names[i].name;
	return "info";
}

void
log_vmsg(int level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];

	if (!log_enabled(level))
		return;
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;

	if (log_target == LOG_TARGET_JOURNAL) {
		sd_journal_print(level, "%s", line);
		return;
	}

	struct timespec ts;
	struct tm tm;
	char stamp[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	/* One fprintf: stderr is unbuffered, so this is one write(2). */
	fprintf(stderr, "%s.%03ldZ %s[%ld] %s: %s\n", stamp, ts.tv_nsec / 1000000L,
	    log_ident, (long)getpid(), log_level_name(level), line);
}

void
log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

const char *
log_printable(char *out, size_t cap, const char *s, size_t len)
{
	size_t o = 0;

	if (cap == 0)
		return "";
	for (size_t i = 0; i < len; i++) {
		if (o + 1 >= cap) {
			if (cap >= 4)
				memcpy(out + cap - 4, "...", 3), o = cap - 1;
			break;
		}
		unsigned char c = (unsigned char)s[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[o] = '\0';
	return out;
}
