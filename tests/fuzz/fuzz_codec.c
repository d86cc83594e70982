/*
 * fuzz_codec — libFuzzer harness for the control protocol codec
 * (include/codec.h): request parsing, result formatting and response
 * parsing, with the formatter's output fed back to the response parser.
 *
 * The input is one request line (terminator removed, as the control
 * server hands it over).  When it parses, its argument becomes the address
 * of a result whose fields are drawn from the input, the result is
 * formatted, and the line must read back with the same verdict, reason,
 * mx and text (control octets shown as '?').  The raw input is also given
 * to ctl_parse_response(), which the clients run on what a daemon sends.
 *
 * Invariants checked (abort() on violation, so libFuzzer keeps the input):
 * a parsed request's argument lies inside the line; a formatted line ends
 * in exactly one LF and holds no CR, NUL or other LF; response key/value
 * views lie inside the line and the scratch buffer.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "vocab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static void
check_response(const char *line, size_t len, const struct ctl_response *resp,
    const char *scratch, size_t scratch_cap)
{
	CHECK(resp->n_kv <= CTL_RESP_MAX_KV);
	if (resp->subject != NULL)
		CHECK(resp->subject >= line && resp->subject_len <= len &&
		    (size_t)(resp->subject - line) <= len - resp->subject_len);
	for (size_t i = 0; i < resp->n_kv; i++) {
		const struct ctl_kv *kv = &resp->kv[i];

		CHECK(kv->key >= line && kv->key_len <= len &&
		    (size_t)(kv->key - line) <= len - kv->key_len);
		CHECK(kv->value >= scratch && kv->value_len < scratch_cap &&
		    (size_t)(kv->value - scratch) < scratch_cap - kv->value_len);
		CHECK(kv->value[kv->value_len] == '\0');
	}
}

/* What put_value() turns a value into once unquoted again. */
static void
shown(const char *v, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char u = (unsigned char)v[i];

		out[i] = u < 0x20 || u == 0x7f ? '?' : v[i];
	}
	out[n] = '\0';
}

static void
round_trip(const uint8_t *data, size_t size, const struct ctl_request *req)
{
	static char out[8192], scratch[8192 + CTL_RESP_MAX_KV], want[512];
	static struct ctl_response resp;
	struct ctl_result r;
	const struct ctl_kv *kv;
	size_t n, half = size / 2;

	ctl_result_init(&r, (enum reason)(data[0] % REASON__COUNT));
	r.verdict = reason_verdict(r.reason);
	r.code = size > 1 ? 200 + data[1] % 400 : 0;
	r.write_catch_all = size > 2 && (data[2] & 1);
	r.catch_all = size > 2 ? (enum tristate)(data[2] % 3) : TRI_UNKNOWN;
	r.cached = size > 3 ? (enum tristate)(data[3] % 3) : TRI_UNKNOWN;
	r.tls = size > 4 ? (enum tristate)(data[4] % 3) : TRI_UNKNOWN;
	r.age = size > 5 ? (long)data[5] - 1 : -1;
	r.ms = size > 6 ? (long)data[6] * 1000 - 1 : -1;
	/* Server-controlled fields take arbitrary octets, as a hostile MX
	 * would send them; strnlen() in the formatter cuts at a NUL. */
	n = half < sizeof(r.mx) - 1 ? half : sizeof(r.mx) - 1;
	memcpy(r.mx, data, n);
	r.mx[n] = '\0';
	n = size - half < sizeof(r.text) - 1 ? size - half : sizeof(r.text) - 1;
	memcpy(r.text, data + half, n);
	r.text[n] = '\0';

	n = ctl_fmt_result(out, sizeof(out), req->arg, req->arg_len, &r);
	CHECK(n > 0); /* a request line and a 512-octet text always fit 8 KiB */
	CHECK(out[n - 1] == '\n');
	for (size_t i = 0; i + 1 < n; i++)
		CHECK(out[i] != '\n' && out[i] != '\r' && out[i] != '\0');

	CHECK(ctl_parse_response(out, n - 1, &resp, scratch, sizeof(scratch)));
	check_response(out, n - 1, &resp, scratch, sizeof(scratch));
	CHECK(resp.kind == CTL_RESP_RESULT);
	CHECK(resp.verdict == r.verdict);
	kv = ctl_response_get(&resp, "reason");
	CHECK(kv != NULL && strcmp(kv->value, reason_name(r.reason)) == 0);
	n = strlen(r.mx);
	kv = ctl_response_get(&resp, "mx");
	if (n == 0)
		CHECK(kv == NULL);
	else {
		shown(r.mx, n, want);
		CHECK(kv != NULL && strcmp(kv->value, want) == 0);
	}
	n = strlen(r.text);
	kv = ctl_response_get(&resp, "text");
	if (n == 0)
		CHECK(kv == NULL);
	else {
		shown(r.text, n, want);
		CHECK(kv != NULL && strcmp(kv->value, want) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char scratch[CTL_LINE_MAX * 8 + CTL_RESP_MAX_KV];
	static struct ctl_response resp;
	const char *line = (const char *)data;
	struct ctl_request req;
	struct ctl_error err;

	if (size > CTL_LINE_MAX * 8)
		return 0;
	memset(&req, 0, sizeof(req));
	memset(&err, 0, sizeof(err));
	if (ctl_parse_request(line, size, &req, &err)) {
		CHECK((unsigned)req.verb < CTL__VERB_COUNT);
		if (req.arg != NULL) {
			CHECK(req.arg_len > 0);
			CHECK(req.arg >= line && req.arg_len <= size &&
			    (size_t)(req.arg - line) <= size - req.arg_len);
		}
		if (req.has_timeout)
			CHECK(req.timeout_ms > 0 && req.timeout_ms <= CTL_TIMEOUT_MAX_MS);
		if (req.verb == CTL_STATS || req.verb == CTL_PING || req.verb == CTL_QUIT)
			CHECK(req.arg == NULL);
		if (req.arg != NULL)
			round_trip(data, size, &req);
	} else {
		CHECK(err.reason != NULL && err.text != NULL);
	}

	if (ctl_parse_response(line, size, &resp, scratch, sizeof(scratch)))
		check_response(line, size, &resp, scratch, sizeof(scratch));
	return 0;
}
