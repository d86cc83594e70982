/*
 * fuzz_address — libFuzzer harness for the mailbox syntax checker
 * (include/address.h): address_parse() and address_parse_domain() on the
 * same octets.
 *
 * What passes address_parse() is later written into "RCPT TO:<...>", so
 * the invariants are the header's promises: no control octet (CR, LF, NUL
 * included), no SP outside a quoted local part, the length limits, and the
 * part views lie inside the input and meet at the '@'.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static bool
has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char u = (unsigned char)s[i];

		if (u < 0x20 || u == 0x7f)
			return true;
	}
	return false;
}

static bool
all_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct address a;
	enum address_error e;
	bool utf8 = false;

	memset(&a, 0, sizeof(a));
	e = address_parse(s, size, &a);
	CHECK((unsigned)e < ADDRESS__ERROR_COUNT);
	CHECK(address_strerror(e) != NULL);
	if (e == ADDRESS_OK) {
		CHECK(size <= ADDRESS_MAX);
		CHECK(!has_control(s, size));
		CHECK(a.local == s && a.local_len > 0 && a.local_len <= ADDRESS_LOCAL_MAX);
		CHECK(a.local_len < size && s[a.local_len] == '@');
		CHECK(a.domain == s + a.local_len + 1);
		CHECK(a.domain_len > 0 && a.domain_len == size - a.local_len - 1);
		CHECK(a.domain_len <= ADDRESS_DOMAIN_MAX);
		/* SP only inside the quoted local part. */
		if (!a.local_quoted)
			CHECK(memchr(s, ' ', a.local_len) == NULL);
		else
			CHECK(s[0] == '"' && s[a.local_len - 1] == '"');
		CHECK(memchr(a.domain, ' ', a.domain_len) == NULL);
		CHECK(a.local_utf8 == !all_ascii(a.local, a.local_len));
		if (a.domain_kind == ADDRESS_DOMAIN_NAME) {
			CHECK(a.domain_utf8 == !all_ascii(a.domain, a.domain_len));
			/* A domain that passes inside a mailbox passes alone. */
			CHECK(address_parse_domain(a.domain, a.domain_len, &utf8) == ADDRESS_OK);
			CHECK(utf8 == a.domain_utf8);
		} else {
			CHECK(a.domain[0] == '[' && a.domain[a.domain_len - 1] == ']');
			CHECK(!a.domain_utf8);
		}
	}

	e = address_parse_domain(s, size, &utf8);
	CHECK((unsigned)e < ADDRESS__ERROR_COUNT);
	if (e == ADDRESS_OK) {
		CHECK(size > 0 && size <= ADDRESS_DOMAIN_MAX);
		CHECK(!has_control(s, size));
		CHECK(memchr(s, ' ', size) == NULL && memchr(s, '@', size) == NULL);
		CHECK(utf8 == !all_ascii(s, size));
	}
	return 0;
}
