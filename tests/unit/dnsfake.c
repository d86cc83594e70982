/*
 * dnsfake — the scripted DNS server of the unit tests.  See dnsfake.h.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "dnsfake.h"

static bool
name_matches(const char *pattern, const char *name)
{
	if (strncmp(pattern, "*.", 2) == 0) {
		size_t pl = strlen(pattern + 1), nl = strlen(name);
		return nl > pl && strcmp(name + nl - pl, pattern + 1) == 0;
	}
	return strcmp(pattern, name) == 0;
}

/* Dotted text to wire labels; "" and "." are the root. */
static size_t
put_name(unsigned char *p, size_t cap, const char *name)
{
	size_t o = 0;
	const char *s = name;

	while (*s && strcmp(s, ".") != 0) {
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);
		assert_true(l > 0 && l < 64 && o + l + 2 < cap);
		p[o++] = (unsigned char)l;
		memcpy(p + o, s, l);
		o += l;
		s += l;
		if (*s == '.')
			s++;
	}
	p[o++] = 0;
	return o;
}

static void
fake_answer(struct fake *f, const unsigned char *q, size_t qlen,
    const struct sockaddr *to, socklen_t tolen, bool releasing)
{
	unsigned char out[4096];
	char qname[300];
	size_t qn = 0, off = 12;

	if (qlen < 12)
		return;
	/* The question: labels up to the root, then type and class. */
	while (off < qlen && q[off] != 0) {
		size_t l = q[off];
		if (l >= 64 || off + 1 + l >= qlen || qn + l + 2 >= sizeof(qname))
			return;
		if (qn > 0)
			qname[qn++] = '.';
		for (size_t i = 0; i < l; i++)
			qname[qn++] = (char)tolower(q[off + 1 + i]);
		off += 1 + l;
	}
	qname[qn] = '\0';
	if (off + 5 > qlen)
		return;
	size_t qend = off + 5;
	uint16_t qtype = (uint16_t)(q[off + 1] << 8 | q[off + 2]);

	struct frule *rule = NULL;
	bool exists = false;
	for (size_t i = 0; i < f->n_rules; i++) {
		if (!name_matches(f->rules[i].name, qname))
			continue;
		exists = true;
		if (f->rules[i].qtype == qtype && rule == NULL)
			rule = &f->rules[i];
	}
	if (!releasing) {
		f->queries++;
		if (rule != NULL)
			rule->hits++;
	}
	if (rule != NULL && rule->drop)
		return;
	if (rule != NULL && rule->hold && !releasing) {
		assert_true(f->n_held < sizeof(f->held) / sizeof(f->held[0]));
		struct held *h = &f->held[f->n_held++];
		assert_true(qlen <= sizeof(h->pkt));
		memcpy(h->pkt, q, qlen);
		h->len = qlen;
		memcpy(&h->from, to, tolen);
		h->fromlen = tolen;
		return;
	}

	memset(out, 0, 12);
	out[0] = q[0];
	out[1] = q[1];
	out[2] = (unsigned char)(0x80 | 0x04 | (q[2] & 0x01));   /* QR AA RD */
	out[3] = 0x80;                                            /* RA */
	int rcode = rule != NULL ? rule->rcode : exists ? 0 : 3;
	out[3] |= (unsigned char)(rcode & 0x0f);
	out[5] = 1;
	memcpy(out + 12, q + 12, qend - 12);
	size_t o = qend;
	unsigned an = 0;
	if (rule != NULL && rule->tc)
		out[2] |= 0x02;
	else if (rule != NULL && rcode == 0) {
		for (size_t i = 0; i < sizeof(rule->rr) / sizeof(rule->rr[0]); i++) {
			const struct frr *rr = &rule->rr[i];
			if (rr->type == 0)
				break;
			if (rr->owner != NULL)
				o += put_name(out + o, sizeof(out) - o, rr->owner);
			else {
				out[o++] = 0xc0;      /* pointer to the question name */
				out[o++] = 12;
			}
			assert_true(o + 10 + 300 < sizeof(out));
			out[o++] = (unsigned char)(rr->type >> 8);
			out[o++] = (unsigned char)rr->type;
			out[o++] = 0;
			out[o++] = 1;                 /* IN */
			out[o++] = (unsigned char)(rr->ttl >> 24);
			out[o++] = (unsigned char)(rr->ttl >> 16);
			out[o++] = (unsigned char)(rr->ttl >> 8);
			out[o++] = (unsigned char)rr->ttl;
			size_t rdlen_at = o;
			o += 2;
			switch (rr->type) {
			case T_MX:
				out[o++] = (unsigned char)(rr->pref >> 8);
				out[o++] = (unsigned char)rr->pref;
				o += put_name(out + o, sizeof(out) - o, rr->data);
				break;
			case T_CNAME:
				o += put_name(out + o, sizeof(out) - o, rr->data);
				break;
			case T_A:
				assert_int_equal(inet_pton(AF_INET, rr->data, out + o), 1);
				o += 4;
				break;
			case T_AAAA:
				assert_int_equal(inet_pton(AF_INET6, rr->data, out + o), 1);
				o += 16;
				break;
			default:
				fail_msg("fake: rr type %u", rr->type);
			}
			size_t rdlen = o - rdlen_at - 2;
			out[rdlen_at] = (unsigned char)(rdlen >> 8);
			out[rdlen_at + 1] = (unsigned char)rdlen;
			an++;
		}
	}
	out[6] = (unsigned char)(an >> 8);
	out[7] = (unsigned char)an;
	assert_true(sendto(f->fd, out, o, 0, to, tolen) == (ssize_t)o);
}

void
fake_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fake *f = w->data;

	for (;;) {
		unsigned char q[1500];
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(f->fd, q, sizeof(q), MSG_DONTWAIT,
		    (struct sockaddr *)&from, &fromlen);
		if (n < 0)
			break;
		fake_answer(f, q, (size_t)n, (struct sockaddr *)&from, fromlen, false);
	}
	if (f->wait_held > 0 && f->n_held >= f->wait_held)
		ev_break(loop, EVBREAK_ALL);
}

/* Answer every held query now, in the order received. */
void
fake_release(struct fake *f)
{
	for (size_t i = 0; i < f->n_held; i++)
		fake_answer(f, f->held[i].pkt, f->held[i].len,
		    (struct sockaddr *)&f->held[i].from, f->held[i].fromlen, true);
	f->n_held = 0;
}

unsigned
fake_hits(const struct fake *f, const char *name, uint16_t type)
{
	for (size_t i = 0; i < f->n_rules; i++)
		if (strcmp(f->rules[i].name, name) == 0 && f->rules[i].qtype == type)
			return f->rules[i].hits;
	fail_msg("no rule %s/%u", name, type);
	return 0;
}
