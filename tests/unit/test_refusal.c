/* The refusal table (signer/refusal.c): one row per reason, wire codes
 * unique and read back, token rules mapped without looking at a message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "sitetoken/error.h"
#include "sitetoken/refusal.h"

/* An agent maps the server's wire code back to the same reason: every code
 * is unique, so no two reasons can be confused on the way back. */
static void
test_codes_round_trip(void **state)
{
	int i, j;

	(void)state;
	for (i = 0; i < STK_REFUSAL_COUNT; i++) {
		const struct stk_refusal_row *row = stk_refusal((enum stk_refusal)i);

		assert_int_equal(row->reason, i);
		assert_int_equal(stk_refusal_parse(row->code), i);
		assert_true(row->http >= 200 && row->http < 600);
		assert_true(row->exit_code >= 0 && row->exit_code <= 3);
		assert_true(row->message[0] != '\0');
		for (j = i + 1; j < STK_REFUSAL_COUNT; j++)
			assert_string_not_equal(row->code, stk_refusal((enum stk_refusal)j)->code);
	}
}

/* A code this build does not know is still a refusal (exit 1), not an
 * internal failure; no code at all is a failure. Out-of-range values get a
 * row, never NULL. */
static void
test_unknown_codes(void **state)
{
	(void)state;
	assert_int_equal(stk_refusal_parse("made_up_reason"), STK_REFUSAL_OTHER);
	assert_int_equal(stk_refusal_exit(STK_REFUSAL_OTHER), 1);
	assert_int_equal(stk_refusal_parse(NULL), STK_REFUSAL_INTERNAL);
	assert_int_equal(stk_refusal_http(STK_REFUSAL_INTERNAL), 500);
	assert_string_equal(stk_refusal_code((enum stk_refusal)9999), "internal_error");
}

/* The reason follows the rule that refused the token (the error code), so
 * "not on the site's record" is bulk_token_unknown whatever the message. */
static void
test_token_rules(void **state)
{
	(void)state;
	assert_int_equal(stk_refusal_of_rc(STK_OK), STK_REFUSAL_NONE);
	assert_int_equal(stk_refusal_of_rc(STK_E_TOKEN_UNKNOWN), STK_REFUSAL_BULK_UNKNOWN);
	assert_int_equal(stk_refusal_of_rc(STK_E_TOKEN_ISSUER), STK_REFUSAL_TOKEN_INVALID);
	assert_int_equal(stk_refusal_of_rc(STK_E_TOKEN_SIGNATURE), STK_REFUSAL_TOKEN_INVALID);
	assert_int_equal(stk_refusal_of_rc(STK_E_TOKEN_EXPIRED), STK_REFUSAL_TOKEN_EXPIRED);
	assert_int_equal(stk_refusal_of_rc(STK_E_TOKEN_BLOCKED), STK_REFUSAL_BULK_BLOCKED);
	assert_int_equal(stk_refusal_of_rc(STK_E_DB), STK_REFUSAL_INTERNAL);
	assert_int_equal(stk_refusal_http(STK_REFUSAL_CMG_DISABLED), 403);
	assert_string_equal(stk_refusal_code(STK_REFUSAL_CMG_DISABLED), "cloud_gateway_disabled");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codes_round_trip),
		cmocka_unit_test(test_unknown_codes),
		cmocka_unit_test(test_token_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
