/*
 * policy_proto — one request of Postfix's policy delegation protocol
 * (SMTPD_POLICY_README), taken line by line.
 *
 *   request=smtpd_access_policy
 *   protocol_state=RCPT
 *   sender=alice@example.org
 *   recipient=bob@example.net
 *   ...
 *   <empty line>
 *
 * The caller reads lines with a linebuf of POLICY_LINE_MAX and hands each
 * to policy_request_line() (an over-long one to policy_request_toolong());
 * the empty line ends the request.  Only the attributes probed-policy acts
 * on are kept, copied into the request's own arena; the rest are counted
 * and ignored.  A request that is malformed still runs to its empty line
 * (answering earlier would put the answer against the wrong request) and
 * then carries the reason in ->error: the caller answers it with the
 * fail-open action.
 */
#ifndef PROBED_POLICY_PROTO_H
#define PROBED_POLICY_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#define POLICY_LINE_MAX 4096       /* one attribute line, LF included */
#define POLICY_REQUEST_MAX 16384   /* a whole request, every line and LF */

/* X(enum name, attribute name) */
#define POLICY_ATTR_LIST(X) \
	X(REQUEST,        "request") \
	X(PROTOCOL_STATE, "protocol_state") \
	X(PROTOCOL_NAME,  "protocol_name") \
	X(SENDER,         "sender") \
	X(RECIPIENT,      "recipient") \
	X(CLIENT_ADDRESS, "client_address") \
	X(CLIENT_NAME,    "client_name") \
	X(SASL_USERNAME,  "sasl_username") \
	X(INSTANCE,       "instance") \
	X(QUEUE_ID,       "queue_id")

enum policy_attr {
#define X(name, word) POLICY_ATTR_##name,
	POLICY_ATTR_LIST(X)
#undef X
	POLICY_ATTR__COUNT
};

struct policy_request {
	const char *value[POLICY_ATTR__COUNT]; /* NUL-terminated, in arena; NULL: absent */
	size_t value_len[POLICY_ATTR__COUNT];
	size_t size;        /* octets of the request so far, each LF counted */
	unsigned lines;     /* attribute lines so far */
	unsigned ignored;   /* of which attributes not in POLICY_ATTR_LIST */
	const char *error;  /* first reason it is malformed (static text), or NULL */
	size_t used;        /* of arena */
	char arena[POLICY_REQUEST_MAX];
};

void policy_request_reset(struct policy_request *r);
/*
 * One line, without its LF (a CR before the LF already removed).  Returns
 * true when the line was the empty line that ends the request; the request
 * is then complete, and ->error says whether it is usable.
 */
bool policy_request_line(struct policy_request *r, const char *line, size_t len);
/* A line longer than POLICY_LINE_MAX went by (the linebuf skipped it). */
void policy_request_toolong(struct policy_request *r);
/* Nothing of a request received yet (between requests). */
bool policy_request_empty(const struct policy_request *r);
/* The value of an attribute, or NULL (and *len 0) when absent. */
const char *policy_request_get(const struct policy_request *r, enum policy_attr a,
    size_t *len);
const char *policy_attr_name(enum policy_attr a);

#endif
