/*
 * fuzz_policy — libFuzzer harness for the Postfix policy request parser
 * (src/policy/policy_proto.h), fed as probed-policy feeds it: octets
 * through a linebuf of POLICY_LINE_MAX, each line to policy_request_line(),
 * an over-long one to policy_request_toolong(), the empty line ending a
 * request.  The input may hold any number of requests.
 *
 * Invariants: the request stays within POLICY_REQUEST_MAX and its arena;
 * every kept value lies in the arena, is NUL-terminated at its length and
 * holds no NUL or LF; a request completed without error has
 * request=smtpd_access_policy; a malformed one says why.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linebuf.h"
#include "policy_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static void
check_request(const struct policy_request *r)
{
	CHECK(r->size <= POLICY_REQUEST_MAX);
	CHECK(r->used <= sizeof(r->arena));
	CHECK(r->ignored <= r->lines);
	for (int a = 0; a < POLICY_ATTR__COUNT; a++) {
		size_t len = 99;
		const char *v = policy_request_get(r, (enum policy_attr)a, &len);

		CHECK(policy_attr_name((enum policy_attr)a) != NULL);
		if (v == NULL) {
			CHECK(len == 0);
			continue;
		}
		CHECK(v >= r->arena && len < sizeof(r->arena) &&
		    (size_t)(v - r->arena) + len < r->used + 1);
		CHECK(v[len] == '\0');
		CHECK(memchr(v, '\0', len) == NULL && memchr(v, '\n', len) == NULL);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct policy_request req;
	struct linebuf lb;
	const char *line;
	size_t len, avail, off, chunk;
	char *space;

	if (size < 1)
		return 0;
	/* First octet: the read size, so requests split across reads too. */
	chunk = (size_t)data[0] * 32 + 1;
	data++;
	size--;
	if (linebuf_init(&lb, POLICY_LINE_MAX) != 0)
		return 0;
	policy_request_reset(&req);
	CHECK(policy_request_empty(&req));
	for (off = 0; off < size;) {
		space = linebuf_space(&lb, &avail);
		if (avail > 0) {
			size_t n = size - off < chunk ? size - off : chunk;

			if (n > avail)
				n = avail;
			memcpy(space, data + off, n);
			linebuf_commit(&lb, n);
			off += n;
		}
		for (;;) {
			enum linebuf_status st = linebuf_next(&lb, &line, &len);

			if (st == LINEBUF_MORE)
				break;
			if (st == LINEBUF_TOOLONG) {
				policy_request_toolong(&req);
				CHECK(req.error != NULL);
				CHECK(!policy_request_empty(&req));
				check_request(&req);
				continue;
			}
			if (!policy_request_line(&req, line, len)) {
				CHECK(!policy_request_empty(&req));
				check_request(&req);
				continue;
			}
			check_request(&req);
			if (req.error == NULL) {
				size_t n;
				const char *v = policy_request_get(&req, POLICY_ATTR_REQUEST, &n);

				CHECK(v != NULL && strcmp(v, "smtpd_access_policy") == 0);
				CHECK(req.lines > 0);
			}
			policy_request_reset(&req);
		}
	}
	linebuf_free(&lb);
	return 0;
}
