/* Differential test of the device-certificate check's cache (site/registration/devcert.c):
 * stk_device_cert_check (parse cached by the DER's SHA-256, dates compared
 * with now on each call) against stk_device_cert_check_uncached (one full
 * parse per call) for accepted and refused certificates at times around
 * every validity boundary: same verdict, same message, same thumbprint, on
 * the first call (cache miss) and on later ones (hits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "sitetoken/devcert.h"
#include "sitetoken/error.h"

#define T0 1800000000LL /* a fixed "now" for the certificates' dates */

/* A self-signed certificate with the key from gen, valid [nb, na]. */
static int
mkcert(EVP_PKEY *k, int64_t nb, int64_t na, unsigned char **der)
{
	X509 *x = X509_new();
	int len = -1;

	*der = NULL;
	if (x == NULL || X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), 7) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na) == NULL ||
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"devcert-test", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    X509_set_pubkey(x, k) != 1 || X509_sign(x, k, EVP_sha256()) <= 0)
		goto out;
	len = i2d_X509(x, der);
out:
	X509_free(x);
	return len;
}

/* Both paths at now: identical outcome. Returns the verdict. */
static int
same(const unsigned char *der, size_t len, int64_t now)
{
	struct stk_error e1, e2;
	char t1[44], t2[44];
	int r1, r2;

	stk_error_clear(&e1);
	stk_error_clear(&e2);
	r2 = stk_device_cert_check_uncached(der, len, now, t2, &e2);
	r1 = stk_device_cert_check(der, len, now, t1, &e1);
	assert_int_equal(r1, r2);
	assert_string_equal(t1, t2);
	if (r1 != 0) {
		assert_int_equal(e1.code, e2.code);
		/* OpenSSL's queue text may differ between calls: the prefix is ours. */
		assert_int_equal(strncmp(e1.msg, e2.msg, 36), 0);
	}
	return r1;
}

/* A certificate of key k valid [nb, na], at times around both boundaries:
 * accepted within the leeway when key_ok, else always refused. */
static void
check_times(EVP_PKEY *k, int64_t nb, int64_t na, int key_ok)
{
	const int64_t L = STK_DEVICE_CERT_LEEWAY;
	const int64_t when[] = { nb - L - 2, nb - L - 1, nb - L, nb - L + 1, nb, nb + 1,
	    (nb + na) / 2, na - 1, na, na + L - 1, na + L, na + L + 1, na + L + 2 };
	unsigned char *der = NULL;
	size_t i;
	int pass, r, len;

	assert_non_null(k);
	len = mkcert(k, nb, na, &der);
	assert_true(len > 0);
	/* Twice over: the first pass fills the cache, the second hits it. */
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < sizeof(when) / sizeof(when[0]); i++) {
			r = same(der, (size_t)len, when[i]);
			if (!key_ok)
				assert_int_not_equal(r, 0);
			else if (when[i] >= nb - L && when[i] < na + L)
				assert_int_equal(r, 0);
			else
				assert_int_not_equal(r, 0);
		}
	OPENSSL_free(der);
}

static void
test_accepted_and_dates(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	(void)state;
	check_times(k, T0, T0 + 86400, 1);
	/* GeneralizedTime dates (after 2049). */
	check_times(k, 2600000000LL, 2700000000LL, 1);
	EVP_PKEY_free(k);
}

/* Attacker 1 (threat model): weak keys stay refused on a cache hit. */
static void
test_refused_keys(void **state)
{
	EVP_PKEY *k[2];
	size_t i;

	(void)state;
	k[0] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	k[1] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-224");
	for (i = 0; i < 2; i++) {
		check_times(k[i], T0, T0 + 86400, 0);
		EVP_PKEY_free(k[i]);
	}
}

/* Truncated, a trailing byte, a flipped tag, junk, nothing: refused both
 * ways, on the first call (miss) and the second (hit); the intact DER is
 * accepted between its altered twins (the cache keys on content). */
static void
test_not_der(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	unsigned char *buf = NULL, junk[64];
	int len, pass;

	(void)state;
	len = mkcert(k, T0, T0 + 86400, &buf);
	assert_true(len > 10 && (buf = OPENSSL_realloc(buf, (size_t)len + 1)) != NULL);
	buf[len] = 0; /* the trailing byte */
	memset(junk, 0x30, sizeof(junk));
	for (pass = 0; pass < 2; pass++) {
		assert_int_not_equal(same(buf, (size_t)len - 1, T0 + 10), 0);
		assert_int_not_equal(same(buf, (size_t)len + 1, T0 + 10), 0);
		buf[0] ^= 0x10;
		assert_int_not_equal(same(buf, (size_t)len, T0 + 10), 0);
		buf[0] ^= 0x10;
		assert_int_equal(same(buf, (size_t)len, T0 + 10), 0);
		assert_int_not_equal(same(junk, sizeof(junk), T0), 0);
		assert_int_not_equal(same(NULL, 0, T0), 0);
	}
	OPENSSL_free(buf);
	EVP_PKEY_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted_and_dates),
		cmocka_unit_test(test_refused_keys),
		cmocka_unit_test(test_not_der),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
