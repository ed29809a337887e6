/* base64url: RFC 4648 vectors, and strictness (padding, alphabet, stray bits). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "sitetoken/token.h"

static void
roundtrip(const char *in, const char *want)
{
	char *enc = NULL;
	unsigned char *dec = NULL;
	size_t n;

	assert_int_equal(stk_b64url_encode((const unsigned char *)in, strlen(in), &enc), 0);
	assert_string_equal(enc, want);
	assert_int_equal(stk_b64url_decode(enc, strlen(enc), &dec, &n), 0);
	assert_int_equal(n, strlen(in));
	assert_memory_equal(dec, in, n);
	free(enc);
	free(dec);
}

static void
test_rfc4648_vectors(void **state)
{
	(void)state;
	roundtrip("", "");
	roundtrip("f", "Zg");
	roundtrip("fo", "Zm8");
	roundtrip("foo", "Zm9v");
	roundtrip("foob", "Zm9vYg");
	roundtrip("fooba", "Zm9vYmE");
	roundtrip("foobar", "Zm9vYmFy");
	roundtrip("\xfb\xff\xbf", "-_-_"); /* the URL alphabet's two characters */
}

static int
dec(const char *s)
{
	unsigned char *out = NULL;
	size_t n;
	int r = stk_b64url_decode(s, strlen(s), &out, &n);

	free(out);
	return r;
}

static void
test_strict_refusals(void **state)
{
	(void)state;
	assert_int_equal(dec("Zg=="), STK_E_TOKEN_B64);   /* padding */
	assert_int_equal(dec("Zm8="), STK_E_TOKEN_B64);
	assert_int_equal(dec("Zm9v+g"), STK_E_TOKEN_B64); /* standard alphabet */
	assert_int_equal(dec("Zm9v/g"), STK_E_TOKEN_B64);
	assert_int_equal(dec("Zm 9v"), STK_E_TOKEN_B64);  /* whitespace */
	assert_int_equal(dec("Zm9vY"), STK_E_TOKEN_B64);  /* impossible length */
	assert_int_equal(dec("Zh"), STK_E_TOKEN_B64);     /* stray bits: "f" is Zg */
	assert_int_equal(dec("Zm9"), STK_E_TOKEN_B64);    /* stray bits: "fo" is Zm8 */
	assert_int_equal(dec("Zg"), 0);
}

static void
test_every_byte_value(void **state)
{
	unsigned char in[256], *out = NULL;
	char *enc = NULL;
	size_t n, len;

	(void)state;
	for (n = 0; n < 256; n++)
		in[n] = (unsigned char)n;
	for (len = 0; len <= 256; len++) {
		assert_int_equal(stk_b64url_encode(in, len, &enc), 0);
		assert_int_equal(stk_b64url_decode(enc, strlen(enc), &out, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(out, in, len);
		free(enc);
		free(out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors),
		cmocka_unit_test(test_strict_refusals),
		cmocka_unit_test(test_every_byte_value),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
