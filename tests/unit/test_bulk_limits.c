/* Bulk token limits: the --max-uses and --source parsers and the network
 * match (IPv4 and IPv6; the server's own tests reach it over 127.0.0.1 only). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "sitetoken/bulklimits.h"

/* Only 1..1000000 in plain digits: 0, signs, spaces, overflow and
 * fractions are refused, so a typo never becomes "no limit". */
static void
test_max_uses_values(void **state)
{
	static const char *const bad[] = { "", "0", "-1", "+1", " 1", "1 ", "1.5", "0x10",
	    "1000001", "99999999999999999999", "abc" };
	struct stk_error err;
	long n = 7;
	size_t i;

	(void)state;
	assert_int_equal(stk_bulk_parse_max_uses("1", &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(stk_bulk_parse_max_uses("1000000", &n, &err), 0);
	assert_int_equal(n, 1000000);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 7;
		assert_int_equal(stk_bulk_parse_max_uses(bad[i], &n, &err), STK_E_ARG);
		assert_int_equal(n, 0);
		assert_non_null(strstr(err.msg, "--max-uses"));
	}
}

/* The list is normalised: bare addresses get their full prefix, IPv6 is
 * written in its canonical form. */
static void
test_sources_normalised(void **state)
{
	struct stk_error err;
	char out[STK_BULK_SOURCES_LEN];

	(void)state;
	assert_int_equal(stk_bulk_parse_sources("10.0.0.0/8,192.0.2.7,2001:DB8:0::/32,::1",
	    out, sizeof(out), &err), 0);
	assert_string_equal(out, "10.0.0.0/8,192.0.2.7/32,2001:db8::/32,::1/128");
	assert_int_equal(stk_bulk_parse_sources("0.0.0.0/0", out, sizeof(out), &err), 0);
	assert_string_equal(out, "0.0.0.0/0");
}

/* Malformed networks are refused at creation, not discovered at the first
 * registration; host bits after the prefix are a typo ("10.1.2.3/8"). */
static void
test_sources_refused(void **state)
{
	static const char *const bad[] = { "", ",", "10.0.0.0/8,", ",10.0.0.0/8",
	    "10.0.0.0/8,,10.0.0.0/16", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1",
	    "10.0.0.0/8a", "10.1.2.3/8", "300.0.0.0/8", "10.0.0.0 /8", "2001:db8::/129",
	    "2001:db8::1/32", "2001:zz8::/32", "host.example", "1.1.1.1,2.2.2.2,3.3.3.3,"
	    "4.4.4.4,5.5.5.5,6.6.6.6,7.7.7.7,8.8.8.8,9.9.9.9" };
	struct stk_error err;
	char out[STK_BULK_SOURCES_LEN];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(out, "x");
		assert_int_equal(stk_bulk_parse_sources(bad[i], out, sizeof(out), &err),
		    STK_E_ARG);
		assert_string_equal(out, "");
		assert_non_null(strstr(err.msg, "--source"));
	}
}

/* Attacker 1 with a leaked token outside the bound networks: refused;
 * inside, accepted; an IPv4 peer never matches an IPv6 network. */
static void
test_source_match(void **state)
{
	const char *src = "192.0.2.0/25,2001:db8:8000::/33,10.0.0.0/8";

	(void)state;
	assert_true(stk_bulk_source_match(src, "192.0.2.0"));
	assert_true(stk_bulk_source_match(src, "192.0.2.127"));
	assert_false(stk_bulk_source_match(src, "192.0.2.128"));
	assert_true(stk_bulk_source_match(src, "10.255.255.255"));
	assert_false(stk_bulk_source_match(src, "11.0.0.1"));
	assert_true(stk_bulk_source_match(src, "2001:db8:8000::1"));
	assert_true(stk_bulk_source_match(src, "2001:db8:ffff:ffff::"));
	assert_false(stk_bulk_source_match(src, "2001:db8:7fff::1"));
	assert_false(stk_bulk_source_match(src, "::ffff:192.0.2.1"));
	assert_false(stk_bulk_source_match(src, "?"));
	assert_false(stk_bulk_source_match(src, NULL));
	assert_true(stk_bulk_source_match("0.0.0.0/0", "203.0.113.9"));
	assert_true(stk_bulk_source_match("::/0", "2001:db8::1"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_max_uses_values),
		cmocka_unit_test(test_sources_normalised),
		cmocka_unit_test(test_sources_refused),
		cmocka_unit_test(test_source_match),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
