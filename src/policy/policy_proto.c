/*
 * policy_proto — Postfix policy delegation requests.  See policy_proto.h.
 *
 * Owns: the attribute grammar (name "=" value, one per line, an empty line
 * ends the request), the choice of attributes kept, and what makes a
 * request malformed:
 *   - a line with no '=', an empty name, or a name outside [A-Za-z0-9_.-];
 *   - a NUL octet anywhere (a C string would cut the value short);
 *   - the same kept attribute twice (which one would Postfix have meant?);
 *   - a line over POLICY_LINE_MAX, or a request over POLICY_REQUEST_MAX;
 *   - no `request` attribute, or one that is not smtpd_access_policy;
 *   - an empty line with no attribute before it.
 * The first reason found is kept; the request is still read to its end.
 *
 * Limits: a request costs at most POLICY_REQUEST_MAX octets of arena
 * whatever the peer sends; past that, lines are only counted.
 *
 * Security: values are stored as received; nothing here judges addresses.
 * Values may hold any octet but NUL and LF (CR, other controls, 8-bit), so
 * whoever puts one on another line (probed's request line, an access(5)
 * action, a log line) must check or sanitise it first.
 */
#include "autoconfig.h"

#include <string.h>

#include "policy_proto.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define TOO_BIG "request over " STR(POLICY_REQUEST_MAX) " octets"

static const char *const attr_names[POLICY_ATTR__COUNT] = {
#define X(name, word) [POLICY_ATTR_##name] = (word),
	POLICY_ATTR_LIST(X)
#undef X
};

static void
malformed(struct policy_request *r, const char *why)
{
	if (r->error == NULL)
		r->error = why;
}

static bool
name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static int
attr_find(const char *name, size_t len)
{
	for (int a = 0; a < POLICY_ATTR__COUNT; a++)
		if (strlen(attr_names[a]) == len && memcmp(attr_names[a], name, len) == 0)
			return a;
	return -1;
}

/* The checks that only the whole request can make. */
static void
request_end(struct policy_request *r)
{
	const char *req = r->value[POLICY_ATTR_REQUEST];

	if (r->lines == 0)
		malformed(r, "empty request (an empty line with no attribute)");
	else if (req == NULL)
		malformed(r, "no request attribute");
	else if (strcmp(req, "smtpd_access_policy") != 0)
		malformed(r, "request is not smtpd_access_policy");
}

void
policy_request_reset(struct policy_request *r)
{
	memset(r->value, 0, sizeof(r->value));
	memset(r->value_len, 0, sizeof(r->value_len));
	r->size = 0;
	r->lines = 0;
	r->ignored = 0;
	r->error = NULL;
	r->used = 0;
}

bool
policy_request_empty(const struct policy_request *r)
{
	return r->size == 0;
}

bool
policy_request_line(struct policy_request *r, const char *line, size_t len)
{
	const char *eq;
	size_t nlen, vlen;
	int a;

	if (len == 0) {
		if (r->size < POLICY_REQUEST_MAX)
			r->size++;
		request_end(r);
		return true;
	}
	r->lines++;
	/* Counted before anything else, so that a peer streaming lines can
	 * never make this request unbounded. */
	if (len + 1 > POLICY_REQUEST_MAX - r->size) {
		r->size = POLICY_REQUEST_MAX;
		malformed(r, TOO_BIG);
		return false;
	}
	r->size += len + 1;
	if (memchr(line, '\0', len) != NULL) {
		malformed(r, "NUL octet in an attribute");
		return false;
	}
	eq = memchr(line, '=', len);
	if (eq == NULL) {
		malformed(r, "attribute line without '='");
		return false;
	}
	nlen = (size_t)(eq - line);
	if (nlen == 0) {
		malformed(r, "attribute with an empty name");
		return false;
	}
	for (size_t i = 0; i < nlen; i++)
		if (!name_char((unsigned char)line[i])) {
			malformed(r, "attribute name with an octet outside [A-Za-z0-9_.-]");
			return false;
		}
	if ((a = attr_find(line, nlen)) < 0) {
		r->ignored++;
		return false;
	}
	if (r->value[a] != NULL) {
		malformed(r, "the same attribute twice");
		return false;
	}
	vlen = len - nlen - 1;
	/* Fits: the arena is as large as the largest request, and this line
	 * was counted into r->size, which is at least r->used. */
	if (vlen + 1 > sizeof(r->arena) - r->used) {
		malformed(r, TOO_BIG);
		return false;
	}
	memcpy(r->arena + r->used, eq + 1, vlen);
	r->arena[r->used + vlen] = '\0';
	r->value[a] = r->arena + r->used;
	r->value_len[a] = vlen;
	r->used += vlen + 1;
	return false;
}

void
policy_request_toolong(struct policy_request *r)
{
	r->lines++;
	/* At least a line's worth: the request is not empty any more. */
	if (POLICY_LINE_MAX > POLICY_REQUEST_MAX - r->size)
		r->size = POLICY_REQUEST_MAX;
	else
		r->size += POLICY_LINE_MAX;
	malformed(r, "attribute line over " STR(POLICY_LINE_MAX) " octets");
}

const char *
policy_request_get(const struct policy_request *r, enum policy_attr a, size_t *len)
{
	if ((unsigned)a >= POLICY_ATTR__COUNT || r->value[a] == NULL) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = r->value_len[a];
	return r->value[a];
}

const char *
policy_attr_name(enum policy_attr a)
{
	return (unsigned)a < POLICY_ATTR__COUNT ? attr_names[a] : "?";
}
