/*
 * output — what probectl prints for a response line: aligned human
 * columns, or exactly one JSON object per response line (--json).
 *
 * Everything printed that came from the daemon (and through it from remote
 * SMTP servers) is made safe first: the JSON encoder escapes '"', '\\' and
 * control octets and replaces ill-formed UTF-8 octet by octet with U+FFFD, so
 * its output is valid JSON whatever the bytes; the human form replaces
 * control octets, DEL, C1 controls and ill-formed UTF-8 with '?', so server
 * text cannot drive the terminal.
 */
#ifndef PROBECTL_OUTPUT_H
#define PROBECTL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "codec.h"

enum output_mode { OUTPUT_HUMAN, OUTPUT_JSON };

struct output {
	enum output_mode mode;
	FILE *out;  /* results, blocks, JSON objects */
	FILE *err;  /* human form of error responses */
};

/* One JSON string, quotes included. */
void output_json_string(FILE *f, const char *s, size_t len);
/* True when s can be written as a JSON number: digits only, no leading
 * zero, short enough to stay exact in an IEEE double. */
bool output_json_is_number(const char *s, size_t len);
/* s with everything unsafe for a terminal replaced by '?'. */
void output_printable(FILE *f, const char *s, size_t len);

/*
 * One response.  arg/arg_len is the argument of the request it answers
 * (NULL when none): FORGET answers carry no subject of their own, so the
 * argument is printed with them.  The caller has checked that the kind of
 * response fits the request.
 */
void output_response(const struct output *o, const struct ctl_response *r,
    const char *arg, size_t arg_len);
/* A response line that is not protocol version 1 or does not answer the
 * request; line may be NULL (an over-long line), why says what was wrong. */
void output_malformed(const struct output *o, const char *line, size_t len,
    const char *why);

#endif
