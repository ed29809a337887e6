/* Site certificates made through the backend interface. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/x509.h>
#include <openssl/param_build.h>
#include <openssl/bn.h>
#include <openssl/x509v3.h>
#include "sitetoken/cert.h"
#include "sitetoken/token.h"
#include "testutil.h"

#define SITE "5b2f4a1e-8c3d-4e6f-9a0b-1c2d3e4f5a6b"

static void
make_and_check(enum stk_key_type type)
{
	char *dir = tu_tmpdir("cert"), path[PATH_MAX], *uri = NULL, guid[37];
	char *pem = NULL, x5t[44], kid[44];
	struct stk_key *k = NULL;
	struct stk_error err;
	unsigned char *der = NULL, *der2 = NULL;
	size_t len, len2;
	const unsigned char *p;
	X509 *x;
	EVP_PKEY *pub = NULL;

	snprintf(path, sizeof(path), "%s/k.pem", dir);
	assert_int_equal(stk_key_generate("file", path, type, NULL, &k, &uri, &err), 0);
	assert_int_equal(stk_cert_make_site(k, SITE, 1800000000, 365, &der, &len, &err), 0);
	p = der;
	x = d2i_X509(NULL, &p, (long)len);
	assert_non_null(x);
	assert_int_equal(p - der, (long)len);
	assert_int_equal(stk_key_get_public(k, &pub, &err), 0);
	/* self-signed by the site key, X.509 v3, CA:FALSE */
	assert_int_equal(X509_verify(x, pub), 1);
	assert_int_equal(X509_get_version(x), 2);
	assert_int_equal(X509_check_ca(x), 0);
	assert_int_equal(X509_get_signature_nid(x), type == STK_KEY_P256 ?
	    NID_ecdsa_with_SHA256 : NID_sha256WithRSAEncryption);
	assert_int_equal(stk_cert_site_guid(der, len, guid), 0);
	assert_string_equal(guid, SITE);
	/* PEM round trip keeps the DER */
	assert_int_equal(stk_cert_der_to_pem(der, len, &pem), 0);
	assert_int_equal(stk_cert_pem_to_der(pem, strlen(pem), &der2, &len2), 0);
	assert_int_equal(len2, len);
	assert_memory_equal(der2, der, len);
	stk_cert_x5t(der, len, x5t);
	assert_int_equal(strlen(x5t), 27);
	assert_int_equal(stk_pkey_kid(pub, kid), 0);
	assert_int_equal(strlen(kid), 43);
	X509_free(x);
	EVP_PKEY_free(pub);
	free(der);
	free(der2);
	free(pem);
	free(uri);
	stk_key_close(k);
	tu_rmrf(dir);
	free(dir);
}

static void test_site_cert_rsa(void **s) { (void)s; make_and_check(STK_KEY_RSA2048); }
static void test_site_cert_ec(void **s) { (void)s; make_and_check(STK_KEY_P256); }

static void
test_kid_rfc7638_vector(void **state)
{
	/* RFC 7638 §3.1 example key and its thumbprint. */
	static const char n_b64[] =
	    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
	    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
	    "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
	    "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
	unsigned char *n = NULL, e[3] = { 1, 0, 1 };
	size_t nlen;
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *pkey = NULL;
	BIGNUM *bn, *be;
	char kid[44];

	(void)state;
	assert_int_equal(stk_b64url_decode(n_b64, strlen(n_b64), &n, &nlen), 0);
	bn = BN_bin2bn(n, (int)nlen, NULL);
	be = BN_bin2bn(e, 3, NULL);
	OSSL_PARAM_BLD_push_BN(bld, "n", bn);
	OSSL_PARAM_BLD_push_BN(bld, "e", be);
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
	assert_int_equal(stk_pkey_kid(pkey, kid), 0);
	assert_string_equal(kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	EVP_PKEY_free(pkey);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(bn);
	BN_free(be);
	free(n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_site_cert_rsa),
		cmocka_unit_test(test_site_cert_ec),
		cmocka_unit_test(test_kid_rfc7638_vector),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
