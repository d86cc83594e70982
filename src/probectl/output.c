/*
 * output — probectl's printing: human columns and the JSON encoder.
 * See output.h.
 *
 * Owns: the layout of a result line (verdict padded to 13, reason padded to
 * 15, address, detail keys, server text last in quotes), the aligned
 * "key  value" blocks of stats/domain/forget, and the JSON object written
 * for every response line.
 *
 * Limits: a response holds at most CTL_RESP_MAX_KV pairs (the codec's
 * bound); numbers longer than 15 digits are written as JSON strings so no
 * consumer silently rounds them.
 *
 * Security: response text is remote input relayed by the daemon.  The JSON
 * encoder never writes a raw control octet or an ill-formed UTF-8 sequence;
 * the human form never writes a control octet, DEL, a C1 control or
 * ill-formed UTF-8 to the terminal.  Nothing here allocates.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <string.h>

#include "output.h"
#include "vocab.h"

/* Longest excerpt of a malformed line shown in the human message. */
#define MALFORMED_EXCERPT 200
/* Digits that always fit a double's 53-bit mantissa exactly. */
#define JSON_NUMBER_DIGITS 15

/* Detail keys of a result, in the order the human form prints them. */
static const char *const result_keys[] = {
	"code", "enhanced", "mx", "catch_all", "cached", "age", "ms", "tls", NULL
};

static size_t utf8_sequence(const unsigned char *s, size_t len, uint32_t *cp);
static void printable(FILE *f, const char *s, size_t len, bool escape_quotes);
static bool key_is(const struct ctl_kv *kv, const char *key);
static bool in_list(const struct ctl_kv *kv, const char *const *list);
static bool earlier_key(const struct ctl_response *r, size_t i);
static void json_key(FILE *f, bool *first, const char *key, size_t len);
static void json_value(FILE *f, const struct ctl_kv *kv);
static void json_rest(FILE *f, bool *first, const struct ctl_response *r,
    const char *const *skip);
static void json_response(FILE *f, const struct ctl_response *r,
    const char *arg, size_t arg_len);
static void human_value(FILE *f, const char *v, size_t len);
static void human_result(FILE *f, const struct ctl_response *r);
static void human_block(FILE *f, const struct ctl_response *r,
    const char *arg, size_t arg_len);
static void pad(FILE *f, size_t have, size_t want);

/*
 * Length of the well-formed UTF-8 sequence at s (Unicode 15, table 3-7:
 * no overlong forms, no surrogates, nothing past U+10FFFF), or 0 when the
 * octet at s does not start one.
 */
static size_t
utf8_sequence(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t n;
	uint32_t v;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		v = c & 0x0f;
		if (c == 0xe0)
			lo = 0xa0;      /* overlong */
		else if (c == 0xed)
			hi = 0x9f;      /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		v = c & 0x07;
		if (c == 0xf0)
			lo = 0x90;      /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;      /* past U+10FFFF */
	} else
		return 0;
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if (s[i] < lo || s[i] > hi)
			return 0;
		lo = 0x80;
		hi = 0xbf;
		v = (v << 6) | (s[i] & 0x3f);
	}
	*cp = v;
	return n;
}

void
output_json_string(FILE *f, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	putc('"', f);
	while (i < len) {
		uint32_t cp;
		size_t n = utf8_sequence(u + i, len - i, &cp);

		if (n == 0) {
			/* Each octet of an ill-formed sequence on its own. */
			fputs("\\ufffd", f);
			i++;
			continue;
		}
		if (n > 1) {
			fwrite(u + i, 1, n, f);
		} else if (cp == '"' || cp == '\\') {
			putc('\\', f);
			putc((int)cp, f);
		} else if (cp < 0x20 || cp == 0x7f) {
			fprintf(f, "\\u%04x", (unsigned)cp);
		} else
			putc((int)cp, f);
		i += n;
	}
	putc('"', f);
}

bool
output_json_is_number(const char *s, size_t len)
{
	if (len == 0 || len > JSON_NUMBER_DIGITS)
		return false;
	if (s[0] == '0' && len > 1)
		return false;   /* JSON has no leading zeros */
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static void
printable(FILE *f, const char *s, size_t len, bool escape_quotes)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = utf8_sequence(u + i, len - i, &cp);

		if (n == 0) {
			putc('?', f);
			i++;
			continue;
		}
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			putc('?', f);
		else if (n > 1)
			fwrite(u + i, 1, n, f);
		else {
			if (escape_quotes && (cp == '"' || cp == '\\'))
				putc('\\', f);
			putc((int)cp, f);
		}
		i += n;
	}
}

void
output_printable(FILE *f, const char *s, size_t len)
{
	printable(f, s, len, false);
}

static bool
key_is(const struct ctl_kv *kv, const char *key)
{
	size_t n = strlen(key);

	return kv->key_len == n && memcmp(kv->key, key, n) == 0;
}

static bool
in_list(const struct ctl_kv *kv, const char *const *list)
{
	for (; list != NULL && *list != NULL; list++)
		if (key_is(kv, *list))
			return true;
	return false;
}

/* A key repeated on the line: JSON objects must not repeat names. */
static bool
earlier_key(const struct ctl_response *r, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (r->kv[j].key_len == r->kv[i].key_len &&
		    memcmp(r->kv[j].key, r->kv[i].key, r->kv[i].key_len) == 0)
			return true;
	return false;
}

static void
json_key(FILE *f, bool *first, const char *key, size_t len)
{
	if (!*first)
		putc(',', f);
	*first = false;
	output_json_string(f, key, len);
	putc(':', f);
}

static void
json_value(FILE *f, const struct ctl_kv *kv)
{
	if (key_is(kv, "cached") || key_is(kv, "tls")) {
		if (kv->value_len == 3 && memcmp(kv->value, "yes", 3) == 0) {
			fputs("true", f);
			return;
		}
		if (kv->value_len == 2 && memcmp(kv->value, "no", 2) == 0) {
			fputs("false", f);
			return;
		}
	}
	if (output_json_is_number(kv->value, kv->value_len))
		fwrite(kv->value, 1, kv->value_len, f);
	else
		output_json_string(f, kv->value, kv->value_len);
}

/* Every pair not named in skip, in wire order, first occurrence only. */
static void
json_rest(FILE *f, bool *first, const struct ctl_response *r,
    const char *const *skip)
{
	for (size_t i = 0; i < r->n_kv; i++) {
		if (in_list(&r->kv[i], skip) || earlier_key(r, i))
			continue;
		json_key(f, first, r->kv[i].key, r->kv[i].key_len);
		json_value(f, &r->kv[i]);
	}
}

static void
json_response(FILE *f, const struct ctl_response *r, const char *arg,
    size_t arg_len)
{
	static const char *const result_skip[] = { "address", "verdict", "reason", NULL };
	static const char *const domain_skip[] = { "domain", NULL };
	static const char *const forget_skip[] = { "forget", "forgotten", "n", NULL };
	static const char *const error_skip[] = { "error", NULL };
	const struct ctl_kv *kv;
	const char *word;
	bool first = true;

	putc('{', f);
	switch (r->kind) {
	case CTL_RESP_RESULT:
		json_key(f, &first, "address", 7);
		output_json_string(f, r->subject, r->subject_len);
		json_key(f, &first, "verdict", 7);
		word = verdict_name(r->verdict);
		output_json_string(f, word, strlen(word));
		if ((kv = ctl_response_get(r, "reason")) != NULL) {
			json_key(f, &first, "reason", 6);
			output_json_string(f, kv->value, kv->value_len);
		}
		json_rest(f, &first, r, result_skip);
		break;
	case CTL_RESP_PONG:
	case CTL_RESP_BYE:
		word = r->kind == CTL_RESP_PONG ? "pong" : "bye";
		json_key(f, &first, word, strlen(word));
		fputs("true", f);
		break;
	case CTL_RESP_STATS:
		json_rest(f, &first, r, NULL);
		break;
	case CTL_RESP_DOMAIN:
		json_key(f, &first, "domain", 6);
		output_json_string(f, r->subject, r->subject_len);
		json_rest(f, &first, r, domain_skip);
		break;
	case CTL_RESP_FORGOTTEN:
		if (arg != NULL) {
			json_key(f, &first, "forget", 6);
			output_json_string(f, arg, arg_len);
		}
		if ((kv = ctl_response_get(r, "n")) != NULL) {
			struct ctl_kv n = *kv;

			n.key = "forgotten";
			n.key_len = 9;
			json_key(f, &first, n.key, n.key_len);
			json_value(f, &n);
		}
		json_rest(f, &first, r, forget_skip);
		break;
	case CTL_RESP_ERROR:
		json_key(f, &first, "error", 5);
		output_json_string(f, r->subject, r->subject_len);
		json_rest(f, &first, r, error_skip);
		break;
	}
	fputs("}\n", f);
}

/* A value that would not read back as one token is quoted. */
static void
human_value(FILE *f, const char *v, size_t len)
{
	bool quote = len == 0;

	for (size_t i = 0; i < len && !quote; i++)
		quote = v[i] == ' ' || v[i] == '"' || v[i] == '\\';
	if (quote)
		putc('"', f);
	printable(f, v, len, quote);
	if (quote)
		putc('"', f);
}

static void
pad(FILE *f, size_t have, size_t want)
{
	for (; have < want; have++)
		putc(' ', f);
}

static void
human_result(FILE *f, const struct ctl_response *r)
{
	static const char *const not_details[] = { "reason", "text", NULL };
	const char *verdict = verdict_name(r->verdict);
	const struct ctl_kv *kv;

	fputs(verdict, f);
	pad(f, strlen(verdict), 13);
	putc(' ', f);
	if ((kv = ctl_response_get(r, "reason")) != NULL) {
		output_printable(f, kv->value, kv->value_len);
		pad(f, kv->value_len, 15);
	} else
		pad(f, 0, 15);
	putc(' ', f);
	output_printable(f, r->subject, r->subject_len);

	for (const char *const *k = result_keys; *k != NULL; k++) {
		if ((kv = ctl_response_get(r, *k)) == NULL)
			continue;
		fprintf(f, " %s=", *k);
		human_value(f, kv->value, kv->value_len);
	}
	/* Keys a newer daemon added: shown, after the ones we know. */
	for (size_t i = 0; i < r->n_kv; i++) {
		kv = &r->kv[i];
		if (in_list(kv, result_keys) || in_list(kv, not_details) ||
		    earlier_key(r, i))
			continue;
		putc(' ', f);
		output_printable(f, kv->key, kv->key_len);
		putc('=', f);
		human_value(f, kv->value, kv->value_len);
	}
	if ((kv = ctl_response_get(r, "text")) != NULL) {
		fputs(" \"", f);
		printable(f, kv->value, kv->value_len, true);
		putc('"', f);
	}
	putc('\n', f);
}

/* "key  value" rows, keys padded to the longest. */
static void
human_block(FILE *f, const struct ctl_response *r, const char *arg,
    size_t arg_len)
{
	struct {
		const char *key, *value;
		size_t key_len, value_len;
	} rows[CTL_RESP_MAX_KV + 2];
	size_t n = 0, width = 0;

	if (r->kind == CTL_RESP_DOMAIN) {
		rows[n].key = "domain";
		rows[n].key_len = 6;
		rows[n].value = r->subject;
		rows[n++].value_len = r->subject_len;
	}
	if (r->kind == CTL_RESP_FORGOTTEN && arg != NULL) {
		rows[n].key = "forget";
		rows[n].key_len = 6;
		rows[n].value = arg;
		rows[n++].value_len = arg_len;
	}
	for (size_t i = 0; i < r->n_kv && i < CTL_RESP_MAX_KV; i++) {
		bool is_n = r->kind == CTL_RESP_FORGOTTEN && key_is(&r->kv[i], "n");

		rows[n].key = is_n ? "forgotten" : r->kv[i].key;
		rows[n].key_len = is_n ? 9 : r->kv[i].key_len;
		rows[n].value = r->kv[i].value;
		rows[n++].value_len = r->kv[i].value_len;
	}
	for (size_t i = 0; i < n; i++)
		if (rows[i].key_len > width)
			width = rows[i].key_len;
	for (size_t i = 0; i < n; i++) {
		output_printable(f, rows[i].key, rows[i].key_len);
		pad(f, rows[i].key_len, width + 2);
		output_printable(f, rows[i].value, rows[i].value_len);
		putc('\n', f);
	}
}

void
output_response(const struct output *o, const struct ctl_response *r,
    const char *arg, size_t arg_len)
{
	const struct ctl_kv *text;

	if (o->mode == OUTPUT_JSON) {
		json_response(o->out, r, arg, arg_len);
		return;
	}
	switch (r->kind) {
	case CTL_RESP_RESULT:
		human_result(o->out, r);
		break;
	case CTL_RESP_PONG:
		fputs("pong\n", o->out);
		break;
	case CTL_RESP_BYE:
		fputs("bye\n", o->out);
		break;
	case CTL_RESP_STATS:
	case CTL_RESP_DOMAIN:
	case CTL_RESP_FORGOTTEN:
		human_block(o->out, r, arg, arg_len);
		break;
	case CTL_RESP_ERROR:
		fflush(o->out);     /* keep stdout and stderr in order */
		fputs("error: ", o->err);
		output_printable(o->err, r->subject, r->subject_len);
		if ((text = ctl_response_get(r, "text")) != NULL) {
			fputs(": ", o->err);
			output_printable(o->err, text->value, text->value_len);
		}
		putc('\n', o->err);
		break;
	}
}

void
output_malformed(const struct output *o, const char *line, size_t len,
    const char *why)
{
	if (o->mode == OUTPUT_JSON) {
		fputs("{\"error\":\"malformed_response\",\"text\":", o->out);
		output_json_string(o->out, why, strlen(why));
		if (line != NULL) {
			fputs(",\"line\":", o->out);
			output_json_string(o->out, line, len);
		}
		fputs("}\n", o->out);
		return;
	}
	fflush(o->out);
	fprintf(o->err, "probectl: malformed response: %s", why);
	if (line != NULL) {
		fputs(": ", o->err);
		output_printable(o->err, line, len < MALFORMED_EXCERPT ? len : MALFORMED_EXCERPT);
		if (len > MALFORMED_EXCERPT)
			fputs("...", o->err);
	}
	putc('\n', o->err);
}
