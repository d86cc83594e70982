/*
 * test_address — table-driven tests of the RFC 5321 / RFC 6531 mailbox
 * checker (src/lib/address.c).
 *
 * Each row of `rows` is its own cmocka test, named by index and source.
 * Every input is copied into a heap buffer of exactly its length with no
 * terminator, so under ASan an over-read of (s, len) is caught.  Rows are
 * followed by invariant checks over every truncation and a set of
 * single-octet mutations of the valid rows, and a seeded random walk over
 * an alphabet of troublesome octets: whatever passes must be safe to write
 * into "RCPT TO:<...>".
 *
 * Sources named in the comments: RFC 5321, RFC 5322 appendix A, RFC 6531,
 * RFC 3696 §3 with errata 246/3563 (its unquoted examples are invalid),
 * Wikipedia's "Email address" examples, and corner cases.
 */
#include "autoconfig.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "address.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* A literal and its length, embedded NULs included. */
#define S(x) x, sizeof(x) - 1

struct row {
	const char *in;
	size_t len;
	enum address_error want;
	const char *local;      /* expected split, OK rows only */
	const char *domain;
	enum address_domain_kind kind;
	bool quoted;
	bool local_utf8;
	bool domain_utf8;
	const char *why;
};

#define ROW_OK(in, l, d, k, q, lu, du, why) \
	{ S(in), ADDRESS_OK, l, d, k, q, lu, du, why }
#define OK(in, l, d, why) \
	ROW_OK(in, l, d, ADDRESS_DOMAIN_NAME, false, false, false, why)
#define OKQ(in, l, d, why) \
	ROW_OK(in, l, d, ADDRESS_DOMAIN_NAME, true, false, false, why)
#define OKU(in, l, d, q, lu, du, why) \
	ROW_OK(in, l, d, ADDRESS_DOMAIN_NAME, q, lu, du, why)
#define OK4(in, l, d, why) \
	ROW_OK(in, l, d, ADDRESS_LITERAL_IPV4, false, false, false, why)
#define OK6(in, l, d, why) \
	ROW_OK(in, l, d, ADDRESS_LITERAL_IPV6, false, false, false, why)
#define BAD(in, e, why) \
	{ S(in), e, NULL, NULL, ADDRESS_DOMAIN_NAME, false, false, false, why }

/* Length building blocks; the _Static_asserts below pin their sizes. */
#define X10 "xxxxxxxxxx"
#define LOCAL64 X10 X10 X10 X10 X10 X10 "xxxx"
#define LOCAL65 LOCAL64 "x"
#define QUOTED64 "\"" X10 X10 X10 X10 X10 X10 "xx\""
#define QUOTED65 "\"" X10 X10 X10 X10 X10 X10 "xxx\""
#define D10 "dddddddddd"
#define LABEL61 D10 D10 D10 D10 D10 D10 "d"
#define LABEL62 LABEL61 "d"
#define LABEL63 LABEL62 "d"
#define LABEL64 LABEL63 "d"
/* 64 + 1 + 189 = 254 and 64 + 1 + 190 = 255 */
#define DOM189 LABEL63 "." LABEL63 "." LABEL61
#define DOM190 LABEL63 "." LABEL63 "." LABEL62
#define ADDR254 LOCAL64 "@" DOM189
#define ADDR255 LOCAL64 "@" DOM190
/* 1 + 1 + 252 = 254: the same limit reached through the domain */
#define DOM252 LABEL63 "." LABEL63 "." LABEL63 "." LABEL60X
#define LABEL60X D10 D10 D10 D10 D10 D10
#define ADDR254B "a@" DOM252
/* Domains alone: 255 is the RFC 5321 limit, 256 is over it. */
#define DOM255 LABEL63 "." LABEL63 "." LABEL63 "." LABEL63
#define DOM256 "b." LABEL63 "." LABEL63 "." LABEL63 "." LABEL62
/* 300 octets, no '@' */
#define NOAT300 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 \
	X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 \
	X10 X10 X10 X10 X10 X10 X10 X10 X10 X10

_Static_assert(sizeof(LOCAL64) - 1 == 64, "LOCAL64");
_Static_assert(sizeof(LOCAL65) - 1 == 65, "LOCAL65");
_Static_assert(sizeof(QUOTED64) - 1 == 64, "QUOTED64");
_Static_assert(sizeof(QUOTED65) - 1 == 65, "QUOTED65");
_Static_assert(sizeof(LABEL63) - 1 == 63, "LABEL63");
_Static_assert(sizeof(LABEL64) - 1 == 64, "LABEL64");
_Static_assert(sizeof(ADDR254) - 1 == 254, "ADDR254");
_Static_assert(sizeof(ADDR255) - 1 == 255, "ADDR255");
_Static_assert(sizeof(ADDR254B) - 1 == 254, "ADDR254B");
_Static_assert(sizeof(DOM255) - 1 == 255, "DOM255");
_Static_assert(sizeof(DOM256) - 1 == 256, "DOM256");
_Static_assert(sizeof(NOAT300) - 1 == 300, "NOAT300");

static const struct row rows[] = {
	/* ---- Wikipedia "Email address", valid examples */
	OK("simple@example.com", "simple", "example.com", "wikipedia"),
	OK("very.common@example.com", "very.common", "example.com",
	    "wikipedia"),
	OK("FirstName.LastName@EasierReading.org", "FirstName.LastName",
	    "EasierReading.org", "wikipedia: case kept"),
	OK("x@example.com", "x", "example.com", "wikipedia: one-octet local"),
	OK("long.email-address-with-hyphens@and.subdomains.example.com",
	    "long.email-address-with-hyphens", "and.subdomains.example.com",
	    "wikipedia"),
	OK("user.name+tag+sorting@example.com", "user.name+tag+sorting",
	    "example.com", "wikipedia: plus tags"),
	OK("name/surname@example.com", "name/surname", "example.com",
	    "wikipedia: slash is atext"),
	OK("admin@example", "admin", "example",
	    "wikipedia: dotless domain"),
	OK("example@s.example", "example", "s.example", "wikipedia"),
	OKQ("\" \"@example.org", "\" \"", "example.org",
	    "wikipedia: quoted space"),
	OKQ("\"john..doe\"@example.org", "\"john..doe\"", "example.org",
	    "wikipedia: quoted double dot"),
	OK("mailhost!username@example.org", "mailhost!username",
	    "example.org", "wikipedia: bang path"),
	OKQ("\"very.(),:;<>[]\\\".VERY.\\\"very@\\\\ \\\"very\\\".unusual\""
	    "@strange.example.com",
	    "\"very.(),:;<>[]\\\".VERY.\\\"very@\\\\ \\\"very\\\".unusual\"",
	    "strange.example.com", "wikipedia: quoted specials and @"),
	OK("user%example.com@example.org", "user%example.com", "example.org",
	    "wikipedia: percent route"),
	OK("user-@example.org", "user-", "example.org",
	    "wikipedia: local ends in hyphen"),
	OK4("postmaster@[123.123.123.123]", "postmaster",
	    "[123.123.123.123]", "wikipedia: IPv4 literal"),
	OK6("postmaster@[IPv6:2001:0db8:85a3:0000:0000:8a2e:0370:7334]",
	    "postmaster", "[IPv6:2001:0db8:85a3:0000:0000:8a2e:0370:7334]",
	    "wikipedia: IPv6 literal"),
	OK6("_test@[IPv6:2001:0db8:85a3:0000:0000:8a2e:0370:7334]", "_test",
	    "[IPv6:2001:0db8:85a3:0000:0000:8a2e:0370:7334]",
	    "wikipedia: underscore local"),
	OKQ("\"very.unusual.@.unusual.com\"@example.com",
	    "\"very.unusual.@.unusual.com\"", "example.com",
	    "wikipedia (older list)"),
	OKQ("\"()<>[]:,;@\\\\\\\"!#$%&'-/=?^_`{}| ~.a\"@example.org",
	    "\"()<>[]:,;@\\\\\\\"!#$%&'-/=?^_`{}| ~.a\"", "example.org",
	    "wikipedia (older list): every special quoted"),
	OK("example-indeed@strange-example.com", "example-indeed",
	    "strange-example.com", "wikipedia (older list)"),
	OK("test/test@test.com", "test/test", "test.com",
	    "wikipedia (older list)"),
	OKQ("\"much.more unusual\"@example.com", "\"much.more unusual\"",
	    "example.com", "wikipedia (older list)"),
	OK("disposable.style.email.with+symbol@example.com",
	    "disposable.style.email.with+symbol", "example.com",
	    "wikipedia (older list)"),
	OK("other.email-with-hyphen@example.com", "other.email-with-hyphen",
	    "example.com", "wikipedia (older list)"),
	OK("fully-qualified-domain@example.com", "fully-qualified-domain",
	    "example.com", "wikipedia (older list)"),

	/* ---- Wikipedia "Email address", invalid examples */
	BAD("abc.example.com", ADDRESS_NO_AT, "wikipedia: no @"),
	BAD("a@b@c@example.com", ADDRESS_LOCAL_SYNTAX,
	    "wikipedia: several unquoted @"),
	BAD("a\"b(c)d,e:f;g<h>i[j\\k]l@example.com", ADDRESS_LOCAL_SYNTAX,
	    "wikipedia: specials outside quotes"),
	BAD("just\"not\"right@example.com", ADDRESS_LOCAL_SYNTAX,
	    "wikipedia: quoted part not the whole local"),
	BAD("this is\"not\\allowed@example.com", ADDRESS_LOCAL_SYNTAX,
	    "wikipedia: space, quote, backslash unquoted"),
	BAD("this\\ still\\\"not\\\\allowed@example.com", ADDRESS_LOCAL_SYNTAX,
	    "wikipedia: escapes outside quotes"),
	BAD("1234567890123456789012345678901234567890123456789012345678901234"
	    "+x@example.com", ADDRESS_LOCAL_TOO_LONG,
	    "wikipedia: local over 64"),
	BAD("i.like.underscores@but_they_are_not_allowed_in_this_part",
	    ADDRESS_DOMAIN_SYNTAX, "wikipedia: underscore in domain"),
	BAD("i_like_underscore@but_its_not_allowed_in_this_part.example.com",
	    ADDRESS_DOMAIN_SYNTAX, "wikipedia (older list)"),

	/* ---- RFC 3696 §3 as corrected by errata 246 and 3563 */
	OKQ("\"Abc@def\"@example.com", "\"Abc@def\"", "example.com",
	    "RFC 3696 §3"),
	OKQ("\"Fred Bloggs\"@example.com", "\"Fred Bloggs\"", "example.com",
	    "RFC 3696 §3"),
	OKQ("\"Joe.\\\\Blow\"@example.com", "\"Joe.\\\\Blow\"", "example.com",
	    "RFC 3696 errata 3563"),
	OKQ("\"Abc\\@def\"@example.com", "\"Abc\\@def\"", "example.com",
	    "RFC 3696 errata 246"),
	OK("customer/department=shipping@example.com",
	    "customer/department=shipping", "example.com", "RFC 3696 §3"),
	OK("$A12345@example.com", "$A12345", "example.com", "RFC 3696 §3"),
	OK("!def!xyz%abc@example.com", "!def!xyz%abc", "example.com",
	    "RFC 3696 §3"),
	OK("_somename@example.com", "_somename", "example.com", "RFC 3696 §3"),
	BAD("Abc\\@def@example.com", ADDRESS_LOCAL_SYNTAX,
	    "RFC 3696 original, wrong per errata 246"),
	BAD("Fred\\ Bloggs@example.com", ADDRESS_LOCAL_SYNTAX,
	    "RFC 3696 original, wrong per errata 246"),
	BAD("Joe.\\\\Blow@example.com", ADDRESS_LOCAL_SYNTAX,
	    "RFC 3696 original, wrong per errata 3563"),

	/* ---- RFC 5322 appendix A: addr-spec yes, its other forms no */
	OK("jdoe@one.test", "jdoe", "one.test", "RFC 5322 A.1.1"),
	OK("mary@x.test", "mary", "x.test", "RFC 5322 A.1.2"),
	OK("boss@nil.test", "boss", "nil.test", "RFC 5322 A.1.3"),
	OK("sysservices@example.net", "sysservices", "example.net",
	    "RFC 5322 A.1.3"),
	BAD("pete(his account)@silly.test(his host)", ADDRESS_LOCAL_SYNTAX,
	    "RFC 5322 A.5: comments are not in RFC 5321"),
	BAD("c@(Chris's host.)public.example", ADDRESS_DOMAIN_SYNTAX,
	    "RFC 5322 A.5: comment in domain"),
	BAD("\"Joe Q. Public\" <john.q.public@example.com>",
	    ADDRESS_LOCAL_SYNTAX, "RFC 5322 A.1.2: name-addr is no mailbox"),
	BAD("\"a\".\"b\"@example.com", ADDRESS_LOCAL_SYNTAX,
	    "RFC 5322 obs-local-part, not RFC 5321"),
	BAD("<jdoe@one.test>", ADDRESS_LOCAL_SYNTAX,
	    "RFC 5321 path brackets are not part of the mailbox"),

	/* ---- RFC 5321 §4.1.2 and §4.1.3 */
	BAD("Postmaster", ADDRESS_NO_AT, "RFC 5321 §4.1.1.3: bare Postmaster"),
	BAD("@ONE,@TWO:JOE@THREE", ADDRESS_LOCAL_SYNTAX,
	    "RFC 5321 §4.1.2: source route is no mailbox"),
	OKQ("\"\"@example.org", "\"\"", "example.org",
	    "RFC 5321 §4.1.2: empty Quoted-string"),
	OKQ("\"\\\"\"@example.org", "\"\\\"\"", "example.org",
	    "RFC 5321: quoted-pair of DQUOTE"),
	OKQ("\"\\\\\"@example.org", "\"\\\\\"", "example.org",
	    "RFC 5321: quoted-pair of backslash"),
	OKQ("\"a\\\"b\"@x", "\"a\\\"b\"", "x", "corner: escaped quote inside"),
	OKQ("\"a\"@example.org", "\"a\"", "example.org",
	    "RFC 5321: quoting a dot-string is legal"),
	OKQ("\"a b\"@example.org", "\"a b\"", "example.org",
	    "RFC 5321: qtextSMTP space"),
	OKQ("\"@\"@example.org", "\"@\"", "example.org",
	    "corner: quoted @ alone"),
	OKQ("\"a@b\"@example.org", "\"a@b\"", "example.org",
	    "corner: last @ outside quotes splits"),
	OKQ("\"\\ \"@example.org", "\"\\ \"", "example.org",
	    "RFC 5321: quoted-pair of SP"),
	OKQ("\"~\\~\"@example.org", "\"~\\~\"", "example.org",
	    "RFC 5321: quoted-pair %d126 upper bound"),
	BAD("\"a\"b\"@x", ADDRESS_LOCAL_SYNTAX, "corner: stray quote"),
	BAD("\"abc@example.org", ADDRESS_LOCAL_SYNTAX,
	    "corner: unclosed quote hides @"),
	BAD("\"a\\\"@x", ADDRESS_LOCAL_SYNTAX,
	    "corner: closing quote escaped"),
	BAD("\"a\\\\\"b\"@x", ADDRESS_LOCAL_SYNTAX,
	    "corner: escaped backslash then stray text"),
	BAD("\"a\".b@example.org", ADDRESS_LOCAL_SYNTAX,
	    "RFC 5321: quoted string must be the whole local part"),
	BAD("a.\"b\"@example.org", ADDRESS_LOCAL_SYNTAX,
	    "RFC 5321: quoted string must be the whole local part"),
	BAD("\"a@b\"", ADDRESS_NO_AT, "corner: only @ is quoted"),
	BAD("\"\"", ADDRESS_NO_AT, "corner: empty quotes, no @"),
	BAD("\\\"a\\\"@example.org", ADDRESS_LOCAL_SYNTAX,
	    "corner: backslash outside quotes"),
	BAD("\"abc\"@", ADDRESS_DOMAIN_EMPTY, "corner: quoted, no domain"),
	BAD("\"\\\xc3\xa9\"@example.org", ADDRESS_LOCAL_SYNTAX,
	    "RFC 6531: quoted-pairSMTP is ASCII only"),

	/* ---- dot-string corners */
	BAD(".a@example.org", ADDRESS_LOCAL_SYNTAX, "corner: leading dot"),
	BAD("a.@example.org", ADDRESS_LOCAL_SYNTAX, "corner: trailing dot"),
	BAD("a..b@example.org", ADDRESS_LOCAL_SYNTAX,
	    "corner: consecutive dots"),
	BAD(".@example.org", ADDRESS_LOCAL_SYNTAX, "corner: local is a dot"),
	BAD("..@example.org", ADDRESS_LOCAL_SYNTAX, "corner: local is dots"),
	OK("a.b.c.d@example.org", "a.b.c.d", "example.org",
	    "corner: many atoms"),
	BAD("@example.org", ADDRESS_LOCAL_EMPTY, "corner: no local part"),
	BAD("@", ADDRESS_LOCAL_EMPTY, "corner: lone @"),
	BAD("@@", ADDRESS_LOCAL_SYNTAX, "corner: two @"),
	BAD("a@", ADDRESS_DOMAIN_EMPTY, "corner: no domain"),
	BAD("a@b@c", ADDRESS_LOCAL_SYNTAX, "corner: unquoted @ in local"),
	BAD("a@@example.org", ADDRESS_LOCAL_SYNTAX, "corner: doubled @"),
	BAD("a b@example.org", ADDRESS_LOCAL_SYNTAX,
	    "corner: space outside quotes"),
	BAD(" jdoe@one.test", ADDRESS_LOCAL_SYNTAX, "corner: leading space"),
	BAD("jdoe@one.test ", ADDRESS_DOMAIN_SYNTAX, "corner: trailing space"),
	BAD(" ", ADDRESS_NO_AT, "corner: a lone space"),
	BAD("a,b@example.org", ADDRESS_LOCAL_SYNTAX,
	    "RFC 5322: comma is a special"),
	BAD("a:b@example.org", ADDRESS_LOCAL_SYNTAX,
	    "RFC 5322: colon is a special"),
	BAD("a;b@example.org", ADDRESS_LOCAL_SYNTAX,
	    "RFC 5322: semicolon is a special"),
	BAD("a[b]@example.org", ADDRESS_LOCAL_SYNTAX,
	    "RFC 5322: brackets are specials"),
	OK("{a}|b~c^d`e@example.org", "{a}|b~c^d`e", "example.org",
	    "RFC 5322 atext: braces, bar, tilde, caret, backtick"),
	OK("'@example.org", "'", "example.org", "RFC 5322 atext: apostrophe"),
	OK("o'hare@example.org", "o'hare", "example.org",
	    "RFC 3696: apostrophes are real"),
	OK("a@b", "a", "b", "corner: shortest valid"),

	/* ---- domain names */
	OK("user@localhost", "user", "localhost",
	    "corner: single-label domain"),
	OK("a@x", "a", "x", "corner: single-letter domain"),
	OK("a@EXAMPLE.ORG", "a", "EXAMPLE.ORG", "RFC 5321 §2.4: case"),
	OK("a@ex-ample.org", "a", "ex-ample.org", "RFC 5321 Ldh-str"),
	OK("a@ex--ample.org", "a", "ex--ample.org",
	    "RFC 5321 Ldh-str: doubled hyphen"),
	OK("a@xn--bcher-kva.example", "a", "xn--bcher-kva.example",
	    "RFC 5890: A-label"),
	OK("a@123.example", "a", "123.example",
	    "RFC 1123: numeric non-top label"),
	OK("a@3com.com", "a", "3com.com", "RFC 1123: leading digit"),
	OK("a@example.c0m", "a", "example.c0m",
	    "RFC 3696: alphanumeric TLD is fine"),
	OK("a@example.1a", "a", "example.1a",
	    "RFC 3696: TLD not all-numeric"),
	BAD("a@example.123", ADDRESS_DOMAIN_SYNTAX, "RFC 3696 §2: numeric TLD"),
	BAD("a@1.2.3.4", ADDRESS_DOMAIN_SYNTAX,
	    "RFC 3696 §2: bare dotted quad"),
	BAD("a@123", ADDRESS_DOMAIN_SYNTAX,
	    "RFC 3696 §2: numeric single label"),
	BAD("a@example.org.", ADDRESS_DOMAIN_SYNTAX, "corner: trailing dot"),
	BAD("a@.example.org", ADDRESS_DOMAIN_SYNTAX, "corner: leading dot"),
	BAD("a@example..org", ADDRESS_DOMAIN_SYNTAX, "corner: empty label"),
	BAD("a@.", ADDRESS_DOMAIN_SYNTAX, "corner: domain is a dot"),
	BAD("a@-example.org", ADDRESS_DOMAIN_SYNTAX,
	    "RFC 5321: leading hyphen"),
	BAD("a@example-.org", ADDRESS_DOMAIN_SYNTAX,
	    "RFC 5321: trailing hyphen"),
	BAD("a@example.-org", ADDRESS_DOMAIN_SYNTAX,
	    "RFC 5321: TLD leading hyphen"),
	BAD("a@example.org-", ADDRESS_DOMAIN_SYNTAX,
	    "RFC 5321: TLD trailing hyphen"),
	BAD("a@-", ADDRESS_DOMAIN_SYNTAX, "RFC 5321: hyphen alone"),
	BAD("a@exam_ple.org", ADDRESS_DOMAIN_SYNTAX,
	    "RFC 5321: underscore in label"),
	BAD("a@exa!mple.org", ADDRESS_DOMAIN_SYNTAX,
	    "RFC 5321: atext is not ldh"),
	BAD("a@exa mple.org", ADDRESS_DOMAIN_SYNTAX, "corner: space in domain"),
	BAD("a@\"example.org\"", ADDRESS_DOMAIN_SYNTAX,
	    "corner: quoted domain"),
	BAD("a@example.org]", ADDRESS_DOMAIN_SYNTAX,
	    "corner: stray bracket"),
	BAD("a@x[1.2.3.4]", ADDRESS_DOMAIN_SYNTAX,
	    "corner: literal not at start"),
	BAD("a@1.2.3.4]", ADDRESS_DOMAIN_SYNTAX,
	    "corner: literal missing ["),

	/* ---- lengths (RFC 5321 §4.5.3.1) */
	OK(LOCAL64 "@example.org", LOCAL64, "example.org",
	    "RFC 5321 §4.5.3.1.1: 64-octet local"),
	BAD(LOCAL65 "@example.org", ADDRESS_LOCAL_TOO_LONG,
	    "RFC 5321 §4.5.3.1.1: 65-octet local"),
	OKQ(QUOTED64 "@example.org", QUOTED64, "example.org",
	    "RFC 5321: 64 octets counting the quotes"),
	BAD(QUOTED65 "@example.org", ADDRESS_LOCAL_TOO_LONG,
	    "RFC 5321: 65 octets counting the quotes"),
	BAD(LOCAL65 "@-bad-", ADDRESS_LOCAL_TOO_LONG,
	    "precedence: local before domain"),
	OK("a@" LABEL63 ".example", "a", LABEL63 ".example",
	    "RFC 1035: 63-octet label"),
	BAD("a@" LABEL64 ".example", ADDRESS_LABEL_TOO_LONG,
	    "RFC 1035: 64-octet label"),
	OK("a@example." LABEL63, "a", "example." LABEL63,
	    "RFC 1035: 63-octet TLD"),
	BAD("a@example." LABEL64, ADDRESS_LABEL_TOO_LONG,
	    "RFC 1035: 64-octet TLD"),
	BAD("a@" LABEL64 ".-bad", ADDRESS_LABEL_TOO_LONG,
	    "precedence: label length before label shape"),
	OK(ADDR254, LOCAL64, DOM189, "RFC 5321 errata 1690: 254 octets"),
	BAD(ADDR255, ADDRESS_TOO_LONG, "RFC 5321 errata 1690: 255 octets"),
	OK(ADDR254B, "a", DOM252, "254 octets reached through the domain"),
	BAD(NOAT300, ADDRESS_TOO_LONG, "precedence: too long before no @"),

	/* ---- IPv4 address literals (RFC 5321 §4.1.3) */
	OK4("a@[1.2.3.4]", "a", "[1.2.3.4]", "RFC 5321 §4.1.3"),
	OK4("postmaster@[123.255.37.2]", "postmaster", "[123.255.37.2]",
	    "RFC 821 example literal"),
	OK4("a@[0.0.0.0]", "a", "[0.0.0.0]", "RFC 5321 Snum: 0"),
	OK4("a@[255.255.255.255]", "a", "[255.255.255.255]",
	    "RFC 5321 Snum: 255"),
	OK4("a@[127.0.0.1]", "a", "[127.0.0.1]",
	    "syntax only: loopback is policy's business"),
	OK4("a@[1.2.3.0]", "a", "[1.2.3.0]", "corner: lone zero part"),
	BAD("a@[256.1.1.1]", ADDRESS_LITERAL_SYNTAX, "RFC 5321 Snum: 256"),
	BAD("a@[1.2.3.256]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321 Snum: 256 last"),
	BAD("a@[1000.2.3.4]", ADDRESS_LITERAL_SYNTAX, "RFC 5321: 1*3DIGIT"),
	BAD("a@[1.2.3.0004]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321: four digits"),
	BAD("a@[01.2.3.4]", ADDRESS_LITERAL_SYNTAX,
	    "policy: leading zero (octal?)"),
	BAD("a@[1.2.3.00]", ADDRESS_LITERAL_SYNTAX, "policy: double zero"),
	BAD("a@[1.2.3]", ADDRESS_LITERAL_SYNTAX, "RFC 5321: three parts"),
	BAD("a@[1.2.3.4.5]", ADDRESS_LITERAL_SYNTAX, "RFC 5321: five parts"),
	BAD("a@[1.2.3.]", ADDRESS_LITERAL_SYNTAX, "corner: empty last part"),
	BAD("a@[1..2.3]", ADDRESS_LITERAL_SYNTAX, "corner: empty part"),
	BAD("a@[.1.2.3.4]", ADDRESS_LITERAL_SYNTAX, "corner: leading dot"),
	BAD("a@[1.2.3.-4]", ADDRESS_LITERAL_SYNTAX, "corner: sign"),
	BAD("a@[0x7f.0.0.1]", ADDRESS_LITERAL_SYNTAX, "corner: hex part"),
	BAD("a@[1.2.3.4a]", ADDRESS_LITERAL_SYNTAX, "corner: trailing letter"),
	BAD("a@[1.2.3.4 ]", ADDRESS_LITERAL_SYNTAX, "corner: space inside"),
	BAD("a@[1.2.3.4", ADDRESS_LITERAL_SYNTAX, "corner: unclosed"),
	BAD("a@[1.2.3.4]x", ADDRESS_LITERAL_SYNTAX,
	    "corner: text after literal"),
	BAD("a@[[1.2.3.4]]", ADDRESS_LITERAL_SYNTAX,
	    "corner: doubled brackets"),
	BAD("a@[]", ADDRESS_LITERAL_SYNTAX, "corner: empty literal"),
	BAD("a@[", ADDRESS_LITERAL_SYNTAX, "corner: lone bracket"),

	/* ---- IPv6 address literals (RFC 5321 §4.1.3) */
	OK6("a@[IPv6:::1]", "a", "[IPv6:::1]", "RFC 5321 IPv6-comp"),
	OK6("a@[IPv6:2001:db8::1]", "a", "[IPv6:2001:db8::1]",
	    "RFC 5321 IPv6-comp"),
	OK6("a@[IPv6:::ffff:1.2.3.4]", "a", "[IPv6:::ffff:1.2.3.4]",
	    "RFC 5321 IPv6v4-comp"),
	OK6("a@[ipv6:::1]", "a", "[ipv6:::1]",
	    "RFC 5321 §2.4: tag case-insensitive"),
	OK6("a@[IPV6:::1]", "a", "[IPV6:::1]",
	    "RFC 5321 §2.4: tag case-insensitive"),
	OK6("a@[IPv6:::]", "a", "[IPv6:::]",
	    "RFC 5321 IPv6-comp: both sides empty"),
	OK6("a@[IPv6:1::]", "a", "[IPv6:1::]", "RFC 5321 IPv6-comp: trailing"),
	OK6("a@[IPv6:1:2:3:4:5:6:7:8]", "a", "[IPv6:1:2:3:4:5:6:7:8]",
	    "RFC 5321 IPv6-full"),
	OK6("a@[IPv6:2001:0DB8:0000:0000:0000:0000:1428:57AB]", "a",
	    "[IPv6:2001:0DB8:0000:0000:0000:0000:1428:57AB]",
	    "RFC 5234: HEXDIG upper case"),
	OK6("a@[IPv6:1:2:3::4:5:6]", "a", "[IPv6:1:2:3::4:5:6]",
	    "RFC 5321 IPv6-comp: six groups"),
	OK6("a@[IPv6:fe80::1:2:3:4:5]", "a", "[IPv6:fe80::1:2:3:4:5]",
	    "RFC 5321 IPv6-comp: 1 + 5 groups"),
	OK6("a@[IPv6:1:2:3:4:5:6:1.2.3.4]", "a",
	    "[IPv6:1:2:3:4:5:6:1.2.3.4]", "RFC 5321 IPv6v4-full"),
	OK6("a@[IPv6:0:0:0:0:0:ffff:1.2.3.4]", "a",
	    "[IPv6:0:0:0:0:0:ffff:1.2.3.4]", "RFC 5321 IPv6v4-full mapped"),
	OK6("a@[IPv6:1:2:3:4::1.2.3.4]", "a", "[IPv6:1:2:3:4::1.2.3.4]",
	    "RFC 5321 IPv6v4-comp: four groups"),
	OK6("a@[IPv6:::1.2.3.4]", "a", "[IPv6:::1.2.3.4]",
	    "RFC 5321 IPv6v4-comp: no groups"),
	BAD("a@[IPv6:1:2:3:4:5:6:7:8:9]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321: nine groups"),
	BAD("a@[IPv6:1:2:3:4:5:6:7]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321: seven groups without ::"),
	BAD("a@[IPv6:1::2::3]", ADDRESS_LITERAL_SYNTAX, "RFC 4291: two ::"),
	BAD("a@[IPv6:1:::2]", ADDRESS_LITERAL_SYNTAX, "corner: :::"),
	BAD("a@[IPv6:1:::1.2.3.4]", ADDRESS_LITERAL_SYNTAX,
	    "corner: ::: before a quad"),
	BAD("a@[IPv6::::1.2.3.4]", ADDRESS_LITERAL_SYNTAX,
	    "corner: leading ::: before a quad"),
	BAD("a@[IPv6:::ffff::1.2.3.4]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 4291: two :: with a quad"),
	BAD("a@[IPv6:1:2:3:4:5:6::7]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321: :: must stand for two groups (inet_pton takes it)"),
	BAD("a@[IPv6:1:2:3:4:5:6:7::]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321: seven groups and ::"),
	BAD("a@[IPv6:::1:2:3:4:5:6:7]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321: :: and seven groups"),
	BAD("a@[IPv6:1:2:3:4:5:1.2.3.4]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321 IPv6v4-full: five groups"),
	BAD("a@[IPv6:1:2:3:4:5:6:7:1.2.3.4]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321 IPv6v4-full: seven groups"),
	BAD("a@[IPv6:1:2:3:4:5::1.2.3.4]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321 IPv6v4-comp: five groups"),
	BAD("a@[IPv6:::ffff:256.1.2.3]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321: embedded quad over 255"),
	BAD("a@[IPv6:::ffff:01.2.3.4]", ADDRESS_LITERAL_SYNTAX,
	    "policy: embedded quad leading zero"),
	BAD("a@[IPv6:::ffff:1.2.3]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321: embedded quad of three"),
	BAD("a@[IPv6:::ffff:1.2.3.4.5]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321: embedded quad of five"),
	BAD("a@[IPv6:1.2.3.4::]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321: quad must come last"),
	BAD("a@[IPv6:12345::1]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321: five hex digits"),
	BAD("a@[IPv6:g::1]", ADDRESS_LITERAL_SYNTAX, "RFC 5321: not hex"),
	BAD("a@[IPv6:::1%eth0]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 6874 zone id not in RFC 5321"),
	BAD("a@[IPv6:]", ADDRESS_LITERAL_SYNTAX, "corner: empty after tag"),
	BAD("a@[IPv6::1]", ADDRESS_LITERAL_SYNTAX, "corner: single colon"),
	BAD("a@[IPv6:1:]", ADDRESS_LITERAL_SYNTAX, "corner: trailing colon"),
	BAD("a@[IPv6: ::1]", ADDRESS_LITERAL_SYNTAX, "corner: space after tag"),
	BAD("a@[IPv6:::1 ]", ADDRESS_LITERAL_SYNTAX, "corner: trailing space"),
	BAD("a@[IPv6:::1]x", ADDRESS_LITERAL_SYNTAX, "corner: text after"),
	BAD("a@[IPv6:0000:0000:0000:0000:0000:0000:0000:00000]",
	    ADDRESS_LITERAL_SYNTAX, "corner: over-long text"),
	BAD("a@[IPv6:::\xc3\xa9]", ADDRESS_LITERAL_SYNTAX,
	    "corner: UTF-8 in literal"),
	BAD("a@[::1]", ADDRESS_LITERAL_SYNTAX, "RFC 5321: IPv6 needs its tag"),
	BAD("a@[IPv4:1.2.3.4]", ADDRESS_LITERAL_SYNTAX,
	    "RFC 5321: IPv4 takes no tag"),
	BAD("a@[x-tag:foo]", ADDRESS_LITERAL_SYNTAX,
	    "policy: General-address-literal unsupported"),
	BAD("a@[IPv6]", ADDRESS_LITERAL_SYNTAX, "corner: tag without colon"),

	/* ---- RFC 6531 SMTPUTF8: UTF-8 local parts and U-labels */
	OKU("用户@例子.广告", "用户", "例子.广告", false, true, true,
	    "wikipedia: Chinese"),
	OKU("Pelé@example.com", "Pelé", "example.com", false, true, false,
	    "RFC 6531: Latin-1 letter in local"),
	OKU("δοκιμή@παράδειγμα.δοκιμή", "δοκιμή", "παράδειγμα.δοκιμή", false,
	    true, true, "wikipedia: Greek"),
	OKU("我買@屋企.香港", "我買", "屋企.香港", false, true, true,
	    "wikipedia: Chinese, traditional"),
	OKU("二ノ宮@黒川.日本", "二ノ宮", "黒川.日本", false, true, true,
	    "wikipedia: Japanese"),
	OKU("медведь@с-балалайкой.рф", "медведь", "с-балалайкой.рф", false,
	    true, true, "wikipedia: Cyrillic"),
	OKU("संपर्क@डाटामेल.भारत", "संपर्क", "डाटामेल.भारत", false, true, true,
	    "wikipedia: Devanagari"),
	OKU("user@bücher.example", "user", "bücher.example", false, false,
	    true, "RFC 5890: U-label only"),
	OKU("\"jøran d\"@example.org", "\"jøran d\"", "example.org", true,
	    true, false, "RFC 6531: UTF-8 in qtextSMTP"),
	OKU("\xf0\x9f\x98\x80@example.org", "\xf0\x9f\x98\x80", "example.org",
	    false, true, false, "RFC 6531: four-octet sequence"),
	OKU("a\xc2\xa9z@example.org", "a\xc2\xa9z", "example.org", false,
	    true, false, "RFC 3629: U+00A9 just past the C1 block"),
	OKU("\xf4\x8f\xbf\xbf@example.org", "\xf4\x8f\xbf\xbf", "example.org",
	    false, true, false, "RFC 3629: U+10FFFF is the last"),
	OKU("\xef\xbf\xbd@example.org", "\xef\xbf\xbd", "example.org", false,
	    true, false, "RFC 3629: U+FFFD"),
	BAD("a@\xc3\xa9-", ADDRESS_DOMAIN_SYNTAX,
	    "RFC 5321: U-label with trailing hyphen"),
	BAD("a\xc0\xaf@example.org", ADDRESS_UTF8,
	    "RFC 3629: overlong of '/'"),
	BAD("a\xe0\x80\xaf@example.org", ADDRESS_UTF8,
	    "RFC 3629: three-octet overlong"),
	BAD("a\xf0\x80\x80\xaf@example.org", ADDRESS_UTF8,
	    "RFC 3629: four-octet overlong"),
	BAD("a\x80@example.org", ADDRESS_UTF8,
	    "RFC 3629: lone continuation"),
	BAD("a\xe4\xbd@example.org", ADDRESS_UTF8,
	    "RFC 3629: truncated sequence"),
	BAD("a\xed\xa0\x80@example.org", ADDRESS_UTF8,
	    "RFC 3629: surrogate U+D800"),
	BAD("a\xed\xbf\xbf@example.org", ADDRESS_UTF8,
	    "RFC 3629: surrogate U+DFFF"),
	BAD("a\xf4\x90\x80\x80@example.org", ADDRESS_UTF8,
	    "RFC 3629: U+110000"),
	BAD("a\xf8\x88\x80\x80\x80@example.org", ADDRESS_UTF8,
	    "RFC 3629: five-octet form"),
	BAD("a\xff@example.org", ADDRESS_UTF8, "RFC 3629: 0xFF"),
	BAD("a@ex\xc3(ample.org", ADDRESS_UTF8,
	    "RFC 3629: bad continuation in domain"),
	BAD("a@example.or\xc3", ADDRESS_UTF8,
	    "RFC 3629: truncated at end of input"),
	BAD("\xc3", ADDRESS_UTF8, "RFC 3629: one lead octet alone"),
	BAD("\"a\xc0\xaf\"@example.org", ADDRESS_UTF8,
	    "RFC 3629: overlong inside quotes"),
	BAD("\xc0\xaf" NOAT300, ADDRESS_UTF8, "precedence: utf8 before length"),
	BAD("abc\x80", ADDRESS_UTF8, "precedence: utf8 before no @"),

	/* ---- control octets: always ADDRESS_CONTROL, whatever else */
	BAD("a\0b@example.org", ADDRESS_CONTROL, "corner: embedded NUL"),
	BAD("a@example.org\0", ADDRESS_CONTROL, "corner: trailing NUL"),
	BAD("\0", ADDRESS_CONTROL, "corner: lone NUL"),
	BAD("a\r\n@example.org", ADDRESS_CONTROL, "corner: CRLF in local"),
	BAD("a@example.org\r\nRCPT TO:<b@example.org>", ADDRESS_CONTROL,
	    "corner: SMTP command injection"),
	BAD("a@example.org\n", ADDRESS_CONTROL, "corner: trailing LF"),
	BAD("\"a\rb\"@example.org", ADDRESS_CONTROL, "corner: CR in quotes"),
	BAD("\"a\\\nb\"@example.org", ADDRESS_CONTROL,
	    "corner: LF as a quoted-pair"),
	BAD("\"a\tb\"@example.org", ADDRESS_CONTROL, "corner: TAB in quotes"),
	BAD("a\tb@example.org", ADDRESS_CONTROL, "corner: TAB"),
	BAD("a\x7f@example.org", ADDRESS_CONTROL, "corner: DEL"),
	BAD("a\x1b[31m@example.org", ADDRESS_CONTROL,
	    "corner: terminal escape"),
	BAD("\x01@example.org", ADDRESS_CONTROL, "corner: SOH"),
	BAD("a@example.org\x1f", ADDRESS_CONTROL, "corner: US"),
	BAD("a@[1.2.3.4\n]", ADDRESS_CONTROL, "corner: LF in literal"),
	BAD("a\xc2\x85@example.org", ADDRESS_CONTROL,
	    "policy: C1 NEL U+0085"),
	BAD("a\xc2\x9b" "31m@example.org", ADDRESS_CONTROL,
	    "policy: C1 CSI U+009B"),
	BAD("a\xc2\x80@example.org", ADDRESS_CONTROL,
	    "policy: C1 first, U+0080"),
	BAD("a\xc2\x9f@example.org", ADDRESS_CONTROL,
	    "policy: C1 last, U+009F"),
	BAD("\xc0\xaf\n@x", ADDRESS_CONTROL, "precedence: control before utf8"),
	BAD("\xc0\xaf\xc2\x85@x", ADDRESS_CONTROL,
	    "precedence: C1 after bad utf8"),
	BAD(NOAT300 "\n", ADDRESS_CONTROL, "precedence: control before length"),
	BAD("abc\n", ADDRESS_CONTROL, "precedence: control before no @"),
	BAD("a\0\n", ADDRESS_CONTROL, "corner: scanning goes past a NUL"),
	BAD("\n", ADDRESS_CONTROL, "corner: lone LF"),
	BAD("@\r", ADDRESS_CONTROL, "precedence: control before local empty"),

	/* ---- empty */
	BAD("", ADDRESS_EMPTY, "corner: empty string"),
};

/* Prints octets so that a failing row is readable. */
static const char *
visible(const char *s, size_t len, char *buf, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
	}
	buf[o] = '\0';
	return buf;
}

/* The input in a heap buffer of exactly len octets: no terminator to lean
 * on, so ASan reports any read past the end.  A failing check leaks it. */
static char *
exact_copy(const char *s, size_t len)
{
	char *p = malloc(len > 0 ? len : 1);

	assert_non_null(p);
	memcpy(p, s, len);
	return p;
}

static bool
view_is(const char *view, size_t view_len, const char *want)
{
	return want != NULL && view != NULL && view_len == strlen(want) &&
	    memcmp(view, want, view_len) == 0;
}

/*
 * What every accepted address must satisfy, whatever the input: it is
 * written verbatim into "RCPT TO:<...>" and into logs.
 */
static void
check_invariants(const char *s, size_t len, enum address_error e,
    const struct address *a)
{
	bool has_control = false;
	char buf[1200];

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			has_control = true;
	if (has_control && e != ADDRESS_CONTROL) {
		print_error("control octet not reported: \"%s\" -> %s\n",
		    visible(s, len, buf, sizeof(buf)), address_strerror(e));
		fail();
	}
	if (!has_control && len > ADDRESS_MAX && e == ADDRESS_OK)
		fail_msg("over-long accepted: %zu", len);
	if (e != ADDRESS_OK) {
		assert_null(a->local);
		assert_null(a->domain);
		assert_int_equal(a->local_len, 0);
		assert_int_equal(a->domain_len, 0);
		return;
	}
	assert_true(len >= 3 && len <= ADDRESS_MAX);
	assert_ptr_equal(a->local, s);
	assert_true(a->local_len >= 1 && a->local_len <= ADDRESS_LOCAL_MAX);
	assert_int_equal(s[a->local_len], '@');
	assert_ptr_equal(a->domain, s + a->local_len + 1);
	assert_int_equal(a->local_len + 1 + a->domain_len, len);
	assert_int_equal(a->local_quoted, s[0] == '"');
	/* No SP outside a quoted local part; no quote or backslash either. */
	for (size_t i = a->local_quoted ? a->local_len : 0; i < len; i++)
		if (s[i] == ' ' || s[i] == '"' || s[i] == '\\') {
			print_error("unquoted '%c' accepted: \"%s\"\n", s[i],
			    visible(s, len, buf, sizeof(buf)));
			fail();
		}
	if (a->domain_kind == ADDRESS_DOMAIN_NAME) {
		bool utf8 = !a->domain_utf8;

		/* What address_parse takes, address_parse_domain takes. */
		assert_int_equal(address_parse_domain(a->domain, a->domain_len,
		    &utf8), ADDRESS_OK);
		assert_int_equal(utf8, a->domain_utf8);
	} else {
		assert_int_equal(a->domain[0], '[');
		assert_int_equal(a->domain[a->domain_len - 1], ']');
		assert_false(a->domain_utf8);
	}
}

static void
test_row(void **state)
{
	const struct row *r = *state;
	char *s = exact_copy(r->in, r->len);
	struct address a;
	enum address_error e;
	char buf[1200];

	/* Garbage first: an error must leave no stale views behind. */
	memset(&a, 0xa5, sizeof(a));
	e = address_parse(s, r->len, &a);
	if (e != r->want) {
		print_error("\"%s\" (%s): got %s, want %s\n",
		    visible(r->in, r->len, buf, sizeof(buf)), r->why,
		    address_strerror(e), address_strerror(r->want));
		fail();
	}
	check_invariants(s, r->len, e, &a);
	/* out is optional and changes nothing. */
	assert_int_equal(address_parse(s, r->len, NULL), r->want);
	if (e == ADDRESS_OK) {
		if (!view_is(a.local, a.local_len, r->local) ||
		    !view_is(a.domain, a.domain_len, r->domain)) {
			print_error("\"%s\": split wrong\n",
			    visible(r->in, r->len, buf, sizeof(buf)));
			fail();
		}
		assert_int_equal(a.domain_kind, r->kind);
		assert_int_equal(a.local_quoted, r->quoted);
		assert_int_equal(a.local_utf8, r->local_utf8);
		assert_int_equal(a.domain_utf8, r->domain_utf8);
	}
	free(s);
}

/* Every prefix of every row: no over-read, and the invariants hold. */
static void
test_truncations(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		for (size_t n = 0; n <= rows[i].len; n++) {
			char *s = exact_copy(rows[i].in, n);
			struct address a;
			enum address_error e = address_parse(s, n, &a);

			check_invariants(s, n, e, &a);
			if (n == 0)
				assert_int_equal(e, ADDRESS_EMPTY);
			free(s);
		}
}

/* One octet of each valid row replaced by a troublesome one. */
static void
test_mutations(void **state)
{
	static const unsigned char subst[] = {
		'\0', '\r', '\n', '\t', 0x7f, ' ', '@', '"', '\\', '.', '[',
		']', ':', '-', '_', 0x80, 0xc0, 0xed, 0xff,
	};
	unsigned control = 0;

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		if (rows[i].want != ADDRESS_OK)
			continue;
		for (size_t pos = 0; pos < rows[i].len; pos++)
			for (size_t k = 0; k < sizeof(subst); k++) {
				char *s = exact_copy(rows[i].in, rows[i].len);
				struct address a;
				enum address_error e;

				s[pos] = (char)subst[k];
				e = address_parse(s, rows[i].len, &a);
				check_invariants(s, rows[i].len, e, &a);
				if (subst[k] < 0x20 || subst[k] == 0x7f)
					control++;
				free(s);
			}
	}
	/* The loop did run over the control substitutions. */
	assert_true(control > 1000);
}

static uint64_t
xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Seeded random strings from an alphabet of the octets that matter, some
 * over the length limit; a fixed seed keeps failures reproducible. */
static void
test_random(void **state)
{
	static const char alphabet[] =
	    "aZ09.@\"\\ []:-_!IPv6f\r\n\x7f\xc3\xa9\x80\xf0\x9f";
	uint64_t x = 0x9e3779b97f4a7c15ull;
	char s[300];
	unsigned ok = 0;

	for (int iter = 0; iter < 200000; iter++) {
		size_t len = xorshift(&x) % (iter % 100 == 0 ? 300 : 40);
		char *p;
		struct address a;
		enum address_error e;

		for (size_t i = 0; i < len; i++) {
			uint64_t r = xorshift(&x);

			/* Mostly letters, so that some strings pass. */
			s[i] = r % 3 ? "abcdefgh"[r % 8] :
			    alphabet[(r >> 8) % (sizeof(alphabet) - 1)];
		}
		p = exact_copy(s, len);
		e = address_parse(p, len, &a);
		check_invariants(p, len, e, &a);
		if (e == ADDRESS_OK)
			ok++;
		free(p);
	}
	/* The walk must reach the accepting paths to test anything. */
	assert_true(ok > 100);
}

static void
test_null_input(void **state)
{
	struct address a;
	bool utf8 = true;

	assert_int_equal(address_parse(NULL, 0, &a), ADDRESS_EMPTY);
	assert_int_equal(address_parse(NULL, 5, &a), ADDRESS_EMPTY);
	assert_int_equal(address_parse("", 0, NULL), ADDRESS_EMPTY);
	assert_int_equal(address_parse_domain(NULL, 0, &utf8),
	    ADDRESS_DOMAIN_EMPTY);
	assert_false(utf8);
}

/* The length argument rules, not the NUL: a prefix of a longer buffer. */
static void
test_length_not_nul(void **state)
{
	static const char text[] = "jdoe@one.test, mary@x.test";
	struct address a;

	assert_int_equal(address_parse(text, 13, &a), ADDRESS_OK);
	assert_int_equal(a.domain_len, 8);
	assert_int_equal(address_parse(text, 14, &a), ADDRESS_DOMAIN_SYNTAX);
	assert_int_equal(address_parse(text, sizeof(text) - 1, &a),
	    ADDRESS_LOCAL_SYNTAX);
}

struct domain_row {
	const char *in;
	size_t len;
	enum address_error want;
	bool utf8;
	const char *why;
};

#define DOK(in, u, why) { S(in), ADDRESS_OK, u, why }
#define DBAD(in, e, why) { S(in), e, false, why }

static const struct domain_row domain_rows[] = {
	DOK("example.org", false, "RFC 5321 Domain"),
	DOK("EXAMPLE.ORG", false, "RFC 5321 §2.4: case"),
	DOK("localhost", false, "single label"),
	DOK("a", false, "one octet"),
	DOK("xn--bcher-kva.example", false, "RFC 5890: A-label"),
	DOK("bücher.example", true, "RFC 5890: U-label"),
	DOK("例子.广告", true, "RFC 6531: U-labels"),
	DOK("123.example", false, "RFC 1123: numeric non-top label"),
	DOK(LABEL63 ".example", false, "RFC 1035: 63-octet label"),
	DOK(DOM255, false, "RFC 5321 §4.5.3.1.2: 255 octets"),
	DBAD(DOM256, ADDRESS_DOMAIN_TOO_LONG, "RFC 5321: 256 octets"),
	DBAD(LABEL64 ".example", ADDRESS_LABEL_TOO_LONG,
	    "RFC 1035: 64-octet label"),
	DBAD("", ADDRESS_DOMAIN_EMPTY, "corner: empty"),
	DBAD("example.org.", ADDRESS_DOMAIN_SYNTAX, "corner: trailing dot"),
	DBAD(".example.org", ADDRESS_DOMAIN_SYNTAX, "corner: leading dot"),
	DBAD("example..org", ADDRESS_DOMAIN_SYNTAX, "corner: empty label"),
	DBAD(".", ADDRESS_DOMAIN_SYNTAX, "corner: root alone"),
	DBAD("-example.org", ADDRESS_DOMAIN_SYNTAX, "RFC 5321: leading hyphen"),
	DBAD("example-.org", ADDRESS_DOMAIN_SYNTAX,
	    "RFC 5321: trailing hyphen"),
	DBAD("exam_ple.org", ADDRESS_DOMAIN_SYNTAX, "RFC 5321: underscore"),
	DBAD("exa mple.org", ADDRESS_DOMAIN_SYNTAX, "corner: space"),
	DBAD("[1.2.3.4]", ADDRESS_DOMAIN_SYNTAX,
	    "header: literals refused here"),
	DBAD("[IPv6:::1]", ADDRESS_DOMAIN_SYNTAX,
	    "header: literals refused here"),
	DBAD("1.2.3.4", ADDRESS_DOMAIN_SYNTAX, "RFC 3696 §2: numeric TLD"),
	DBAD("example.123", ADDRESS_DOMAIN_SYNTAX, "RFC 3696 §2: numeric TLD"),
	DBAD("user@example.org", ADDRESS_DOMAIN_SYNTAX, "corner: an address"),
	DBAD("example.org\r\n", ADDRESS_CONTROL, "corner: CRLF"),
	DBAD("exa\0mple.org", ADDRESS_CONTROL, "corner: embedded NUL"),
	DBAD("example.org\xc2\x85", ADDRESS_CONTROL, "policy: C1 NEL"),
	DBAD("ex\xc0\xaf" "ample.org", ADDRESS_UTF8, "RFC 3629: overlong"),
	DBAD("ex\xed\xa0\x80.org", ADDRESS_UTF8, "RFC 3629: surrogate"),
	DBAD("\xc0\xaf\r", ADDRESS_CONTROL, "precedence: control before utf8"),
};

static void
test_domain_row(void **state)
{
	const struct domain_row *r = *state;
	char *s = exact_copy(r->in, r->len);
	bool utf8 = !r->utf8;   /* must be overwritten either way */
	enum address_error e = address_parse_domain(s, r->len, &utf8);

	if (e != r->want) {
		char buf[1200];

		print_error("domain \"%s\" (%s): got %s, want %s\n",
		    visible(r->in, r->len, buf, sizeof(buf)), r->why,
		    address_strerror(e), address_strerror(r->want));
		fail();
	}
	assert_int_equal(utf8, r->utf8);
	assert_int_equal(address_parse_domain(s, r->len, NULL), r->want);
	free(s);
}

static void
test_strerror(void **state)
{
	const char *seen[ADDRESS__ERROR_COUNT];
	const char *unknown = address_strerror(ADDRESS__ERROR_COUNT);

	assert_non_null(unknown);
	assert_non_null(address_strerror((enum address_error)-1));
	assert_non_null(address_strerror((enum address_error)9999));
	for (int e = 0; e < ADDRESS__ERROR_COUNT; e++) {
		const char *t = address_strerror((enum address_error)e);

		assert_non_null(t);
		assert_true(strlen(t) > 0 && strlen(t) < 64);
		/* Goes into log lines and protocol replies as is. */
		for (const char *c = t; *c != '\0'; c++)
			assert_true(*c >= 0x20 && *c < 0x7f && *c != '"');
		/* Each error has its own text, not the fallback. */
		assert_string_not_equal(t, unknown);
		for (int j = 0; j < e; j++)
			assert_string_not_equal(t, seen[j]);
		seen[e] = t;
	}
	assert_non_null(strstr(address_strerror(ADDRESS_LOCAL_TOO_LONG), "64"));
	assert_non_null(strstr(address_strerror(ADDRESS_TOO_LONG), "254"));
	assert_non_null(strstr(address_strerror(ADDRESS_LABEL_TOO_LONG), "63"));
	assert_non_null(strstr(address_strerror(ADDRESS_DOMAIN_TOO_LONG),
	    "255"));
}

/* Every error code the parser can produce appears in some row. */
static void
test_rows_cover_errors(void **state)
{
	bool hit[ADDRESS__ERROR_COUNT] = { false };

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++)
		hit[rows[i].want] = true;
	for (size_t i = 0; i < ARRAY_SIZE(domain_rows); i++)
		hit[domain_rows[i].want] = true;
	for (int e = 0; e < ADDRESS__ERROR_COUNT; e++)
		if (!hit[e])
			fail_msg("no row expects %s", address_strerror(
			    (enum address_error)e));
}

static struct CMUnitTest row_tests[ARRAY_SIZE(rows)];
static char row_names[ARRAY_SIZE(rows)][96];
static struct CMUnitTest domain_tests[ARRAY_SIZE(domain_rows)];
static char domain_names[ARRAY_SIZE(domain_rows)][96];

int
main(void)
{
	static const struct CMUnitTest other_tests[] = {
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_mutations),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_null_input),
		cmocka_unit_test(test_length_not_nul),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_rows_cover_errors),
	};
	int failed = 0;

	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		snprintf(row_names[i], sizeof(row_names[i]), "parse %03zu %s", i,
		    rows[i].why);
		row_tests[i] = (struct CMUnitTest){
			.name = row_names[i],
			.test_func = test_row,
			.initial_state = (void *)&rows[i],
		};
	}
	for (size_t i = 0; i < ARRAY_SIZE(domain_rows); i++) {
		snprintf(domain_names[i], sizeof(domain_names[i]),
		    "domain %02zu %s", i, domain_rows[i].why);
		domain_tests[i] = (struct CMUnitTest){
			.name = domain_names[i],
			.test_func = test_domain_row,
			.initial_state = (void *)&domain_rows[i],
		};
	}
	failed += cmocka_run_group_tests_name("address_parse", row_tests,
	    NULL, NULL);
	failed += cmocka_run_group_tests_name("address_parse_domain",
	    domain_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("address", other_tests, NULL,
	    NULL);
	return failed == 0 ? 0 : 1;
}
