/*
 * config_lex — the raw-text scan of probed.conf.  See config_lex.h.
 *
 * LIMITS: names are cut at 63 octets and literals at 31 (longer ones are
 * not integers libconfig would keep anyway); memory grows with the number
 * of over-wide literals found, which is the number of mistakes in the file.
 */
#include "autoconfig.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_lex.h"

static bool
name_start(int c)
{
	return c < 0x80 && (isalpha(c) || c == '*');
}

static bool
name_char(int c)
{
	return c < 0x80 && (isalnum(c) || c == '*' || c == '-' || c == '_');
}

/* Does the integer literal s[0..len) survive libconfig 1.5's scanner? */
static bool
int_literal_fits(const char *s, size_t len, bool *is_int)
{
	char buf[64];
	size_t suffix = 0, i = 0, ndig;
	bool neg = false, sign = false, hex = false;
	unsigned long long u;

	*is_int = false;
	while (suffix < 2 && suffix < len && s[len - 1 - suffix] == 'L')
		suffix++;
	len -= suffix;
	if (i < len && (s[i] == '+' || s[i] == '-')) {
		neg = s[i] == '-';
		sign = true;
		i++;
	}
	if (len - i > 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
		if (sign)
			return true;    /* signed hex: a libconfig syntax error */
		hex = true;
		i += 2;
		ndig = strspn(s + i, "0123456789abcdefABCDEF");
	} else
		ndig = strspn(s + i, "0123456789");
	if (ndig == 0 || i + ndig != len)
		return true;            /* a float or garbage: not ours */
	*is_int = true;
	while (ndig > 1 && s[i] == '0') {
		i++;
		ndig--;
	}
	if (ndig >= sizeof(buf))
		return false;
	memcpy(buf, s + i, ndig);
	buf[ndig] = '\0';
	errno = 0;
	u = strtoull(buf, NULL, hex ? 16 : 10);
	if (errno == ERANGE)
		return false;
	if (suffix > 0)
		return neg ? u <= (unsigned long long)LLONG_MAX + 1 :
		    u <= (unsigned long long)LLONG_MAX;
	if (hex)
		return u <= INT_MAX;
	return neg ? u <= (unsigned long long)INT_MAX + 1 : u <= INT_MAX;
}

static int
lex_record(struct lexed *lx, unsigned line, const char *name, size_t namelen,
    const char *lit, size_t litlen)
{
	struct wide_int *w;

	if (lx->n == lx->cap) {
		size_t ncap = lx->cap ? lx->cap * 2 : 8;
		void *nv = realloc(lx->v, ncap * sizeof(*lx->v));
		if (nv == NULL)
			return -1;
		lx->v = nv;
		lx->cap = ncap;
	}
	w = &lx->v[lx->n++];
	w->line = line;
	snprintf(w->name, sizeof(w->name), "%.*s", (int)namelen, name);
	if (litlen >= sizeof(w->lit))
		snprintf(w->lit, sizeof(w->lit), "%.*s...",
		    (int)sizeof(w->lit) - 4, lit);
	else
		snprintf(w->lit, sizeof(w->lit), "%.*s", (int)litlen, lit);
	return 0;
}

/*
 * A lexer just good enough to tell strings, comments, names and numbers
 * apart the way libconfig's does.  It never rejects anything libconfig
 * would accept; what it does not understand it leaves to libconfig.
 */
int
lex_integers(const char *s, size_t len, struct lexed *lx)
{
	unsigned line = 1, name_line = 0;
	const char *name = NULL;
	size_t namelen = 0, i = 0;

	while (i < len) {
		char c = s[i];

		if (c == '\0') {
			if (lx->nul_line == 0)
				lx->nul_line = line;
			i++;
		} else if (c == '\n') {
			line++;
			i++;
		} else if (c == '#' || (c == '/' && i + 1 < len && s[i + 1] == '/')) {
			while (i < len && s[i] != '\n')
				i++;
		} else if (c == '/' && i + 1 < len && s[i + 1] == '*') {
			for (i += 2; i < len; i++) {
				if (s[i] == '\n')
					line++;
				else if (s[i] == '*' && i + 1 < len && s[i + 1] == '/') {
					i += 2;
					break;
				}
			}
		} else if (c == '"') {
			for (i++; i < len && s[i] != '"'; i++) {
				if (s[i] == '\n')
					line++;
				else if (s[i] == '\\' && i + 1 < len && s[i + 1] != '\n')
					i++;
			}
			i++;
		} else if (c == '@') {
			if (len - i >= 8 && memcmp(s + i, "@include", 8) == 0 &&
			    lx->include_line == 0)
				lx->include_line = line;
			i++;
		} else if (name_start((unsigned char)c)) {
			size_t b = i;
			while (i < len && name_char((unsigned char)s[i]))
				i++;
			name = s + b;
			namelen = i - b;
			name_line = line;
		} else if (isdigit((unsigned char)c) || c == '.' ||
		    ((c == '-' || c == '+') && i + 1 < len &&
		    (isdigit((unsigned char)s[i + 1]) || s[i + 1] == '.'))) {
			size_t b = i++;
			bool is_int;
			while (i < len && (isalnum((unsigned char)s[i]) ||
			    s[i] == '.' || ((s[i] == '-' || s[i] == '+') &&
			    (s[i - 1] == 'e' || s[i - 1] == 'E'))))
				i++;
			if (!int_literal_fits(s + b, i - b, &is_int) && is_int &&
			    lex_record(lx, name != NULL ? name_line : line,
			    name != NULL ? name : "", namelen, s + b, i - b) < 0)
				return -1;
		} else
			i++;
	}
	return 0;
}

const struct wide_int *
lex_find(const struct lexed *lx, unsigned line, const char *name)
{
	for (size_t i = 0; i < lx->n; i++)
		if (lx->v[i].line == line && strcmp(lx->v[i].name, name) == 0)
			return &lx->v[i];
	return NULL;
}

