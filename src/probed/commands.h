/*
 * commands — the control verbs: one table entry per verb (codec.h's
 * CTL_VERB_LIST), each turning a parsed request into exactly one answer
 * through ctl_slot_reply(), now or later.
 */
#ifndef PROBED_COMMANDS_H
#define PROBED_COMMANDS_H

#include <stddef.h>

#include <ev.h>

#include "control.h"

struct engine;

/* Answer size bound: a result line with every key and a 512-octet text. */
#define COMMANDS_REPLY_MAX 4096

enum commands_next {
	COMMANDS_CONTINUE,  /* read the next request */
	COMMANDS_CLOSE,     /* QUIT: answer, then close; later lines are ignored */
};

/* The engine the verbs ask: set before the control socket accepts anyone. */
void commands_configure(struct ev_loop *loop, struct engine *e);
/* SIGTERM: every VERIFY still probing is answered now (reason=pending), and
 * every VERIFY read afterwards is answered from the cache or pending without
 * starting a probe, so clients drain without waiting for the network. */
void commands_shutdown(void);

/* Parse and answer one request line (terminator removed). */
enum commands_next commands_run(struct ctl_slot *slot, const char *line, size_t len);
/* The answer to a line that did not fit in CTL_LINE_MAX. */
void commands_line_too_long(struct ctl_slot *slot);

#endif
