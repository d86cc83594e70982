/*
 * config_lex — a scan of probed.conf's raw text before libconfig parses
 * it.  libconfig 1.5 silently truncates an integer literal too wide for 32
 * bits without an L suffix (4294967321 reads as 25); lex_integers() finds
 * such literals so the loader can report them as out of range, as the user
 * wrote them.  It also notes an @include (refused) and a NUL octet.
 */
#ifndef PROBED_CONFIG_LEX_H
#define PROBED_CONFIG_LEX_H

#include <stdbool.h>
#include <stddef.h>

struct wide_int {
	unsigned line;          /* line of the setting's name */
	char name[64];          /* the name before the literal */
	char lit[32];           /* the literal as written */
};

struct lexed {
	struct wide_int *v;
	size_t n, cap;
	unsigned include_line;  /* nonzero: an @include was found there */
	unsigned nul_line;      /* nonzero: a NUL octet was found there */
};

/* Scan len octets of s; 0, or -1 when out of memory.  The caller frees
 * lx->v. */
int lex_integers(const char *s, size_t len, struct lexed *lx);
/* The over-wide literal set on line for name, or NULL. */
const struct wide_int *lex_find(const struct lexed *lx, unsigned line, const char *name);

#endif
