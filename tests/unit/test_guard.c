/*
 * test_guard — the destination guard: every special-purpose range is
 * refused by default, wrapped IPv4 forms are judged by what they wrap, and
 * smtp.allow_networks opens exactly what it names.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "guard.h"

static struct sockaddr_storage
sa(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		fail_msg("bad test address %s", ip);
	return ss;
}

static const struct {
	const char *ip;
	const char *why; /* NULL: allowed */
} default_cases[] = {
	{ "8.8.8.8", NULL },
	{ "1.1.1.1", NULL },
	{ "203.0.112.255", NULL },
	{ "2001:4860:4860::8888", NULL },
	{ "2a00:1450:4001:80b::200e", NULL },
	{ "0.0.0.0", "this-network" },
	{ "0.1.2.3", "this-network" },
	{ "10.0.0.1", "private" },
	{ "10.255.255.255", "private" },
	{ "100.64.0.1", "shared-address-space" },
	{ "127.0.0.1", "loopback" },
	{ "127.255.0.9", "loopback" },
	{ "169.254.169.254", "link-local" },
	{ "172.16.0.1", "private" },
	{ "172.31.255.255", "private" },
	{ "172.32.0.1", NULL },
	{ "192.0.2.10", "documentation" },
	{ "192.168.1.1", "private" },
	{ "198.18.0.1", "benchmarking" },
	{ "198.51.100.1", "documentation" },
	{ "203.0.113.7", "documentation" },
	{ "224.0.0.1", "multicast" },
	{ "239.255.255.250", "multicast" },
	{ "240.0.0.1", "reserved" },
	{ "255.255.255.255", "reserved" },
	{ "::", "unspecified" },
	{ "::1", "loopback" },
	{ "fe80::1", "link-local" },
	{ "fc00::1", "unique-local" },
	{ "fd12:3456::1", "unique-local" },
	{ "ff02::1", "multicast" },
	{ "2001:db8::25", "documentation" },
	{ "::ffff:127.0.0.1", "loopback" },
	{ "::ffff:10.1.2.3", "private" },
	{ "::ffff:8.8.8.8", "ipv4-mapped" },
	{ "64:ff9b::a00:1", "private" },        /* NAT64 of 10.0.0.1 */
	{ "64:ff9b::7f00:1", "loopback" },      /* NAT64 of 127.0.0.1 */
	{ "64:ff9b::808:808", NULL },           /* NAT64 of 8.8.8.8 */
	{ "::127.0.0.1", "ipv4-compatible" },
	{ "2002:a00:1::1", "6to4" },
};

static void
test_defaults(void **state)
{
	char err[128];
	struct guard *g = guard_new(NULL, err, sizeof(err));

	assert_non_null(g);
	for (size_t i = 0; i < sizeof(default_cases) / sizeof(default_cases[0]); i++) {
		struct sockaddr_storage a = sa(default_cases[i].ip);
		const char *why;
		bool ok = guard_allows(g, (struct sockaddr *)&a, &why);
		if (default_cases[i].why == NULL) {
			if (!ok)
				fail_msg("%s refused (%s), expected allowed", default_cases[i].ip, why);
		} else {
			if (ok)
				fail_msg("%s allowed, expected %s", default_cases[i].ip,
				    default_cases[i].why);
			assert_string_equal(why, default_cases[i].why);
		}
	}
	guard_free(g);
}

static void
test_allow_list(void **state)
{
	char n1[] = "127.0.0.0/8", n2[] = "::1/128", n3[] = "10.1.0.0/16";
	char *nets[] = { n1, n2, n3, NULL };
	struct strlist allow = { nets, 3 };
	char err[128];
	struct guard *g = guard_new(&allow, err, sizeof(err));
	const char *why;
	struct sockaddr_storage a;

	assert_non_null(g);
	a = sa("127.0.2.1");
	assert_true(guard_allows(g, (struct sockaddr *)&a, &why));
	a = sa("::1");
	assert_true(guard_allows(g, (struct sockaddr *)&a, &why));
	a = sa("10.1.255.3");
	assert_true(guard_allows(g, (struct sockaddr *)&a, &why));
	a = sa("10.2.0.1");
	assert_false(guard_allows(g, (struct sockaddr *)&a, &why));
	a = sa("::ffff:127.0.0.1"); /* the same host, wrapped */
	assert_true(guard_allows(g, (struct sockaddr *)&a, &why));
	a = sa("192.168.0.1");
	assert_false(guard_allows(g, (struct sockaddr *)&a, &why));
	assert_string_equal(why, "private");
	guard_free(g);
}

static void
test_bad_allow_entry(void **state)
{
	char n1[] = "127.0.0.0/33";
	char *nets[] = { n1, NULL };
	struct strlist allow = { nets, 1 };
	char err[128];

	assert_null(guard_new(&allow, err, sizeof(err)));
	assert_non_null(strstr(err, "127.0.0.0/33"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_allow_list),
		cmocka_unit_test(test_bad_allow_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
