/*
 * log — one event per line: an object id, then key=value pairs.
 *
 *   log_info("c%u request verb=%s", id, verb)
 *
 * To stderr (probed -f) or to the journal, filtered by level.  Text that came
 * from the wire goes through log_printable() first.
 */
#ifndef PROBED_LOG_H
#define PROBED_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

enum log_target { LOG_TARGET_STDERR, LOG_TARGET_JOURNAL };

void log_open(const char *ident, enum log_target target);
void log_set_level(int level);          /* LOG_ERR .. LOG_DEBUG */
int log_get_level(void);
bool log_enabled(int level);
/* "debug", "info", "notice", "warning", "err"/"error", "crit" -> level; -1 unknown */
int log_level_from_name(const char *name);
const char *log_level_name(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define log_debug(...)   do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)    log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_err(...)     log_msg(LOG_ERR, __VA_ARGS__)
#define log_crit(...)    log_msg(LOG_CRIT, __VA_ARGS__)

/* Copy at most len octets of wire text into out (cap > 0), replacing
 * non-printable octets with '?' and cutting with "..." past cap-1. */
const char *log_printable(char *out, size_t cap, const char *s, size_t len);

#endif
