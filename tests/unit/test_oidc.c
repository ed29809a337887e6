/* OIDC ID token verifier and JWKS parser (site/registration/oidc.c): each RFC 8725 rule
 * on its own, with keys and tokens made here by OpenSSL (the test is the
 * issuer). The integration test oidc_register.sh covers the store, the
 * server and the JWKS URL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>
#include "sitetoken/key.h"
#include "sitetoken/oidc.h"
#include "sitetoken/token.h"

#define NOW ((int64_t)1800000000)
#define ISS "https://issuer.test/t1/v2.0"
#define AUD "api://sitetoken"

static EVP_PKEY *rsa_key, *ec_key, *small_key, *rsa_other;

static char *
b64(const unsigned char *p, size_t n)
{
	char *o = NULL;

	assert_int_equal(stk_b64url_encode(p, n, &o), 0);
	return o;
}

/* A key parameter in base64url: big-endian, left-padded to `width` bytes when
 * width > 0 (RFC 7518 6.2.1.2: an EC coordinate is always the field's full
 * size, even when its first byte is zero, which happens in 1 key of 128). */
static char *
bn_b64(EVP_PKEY *k, const char *name, int width)
{
	BIGNUM *bn = NULL;
	unsigned char buf[1024];
	int n;

	assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
	n = width > 0 ? BN_bn2binpad(bn, buf, width) : BN_bn2bin(bn, buf);
	assert_true(n > 0);
	BN_free(bn);
	return b64(buf, (size_t)n);
}

/* The JWK of a key, as a JSON object text. */
static char *
jwk_of(EVP_PKEY *k, const char *kid)
{
	char *out = NULL, *a, *b;

	if (EVP_PKEY_is_a(k, "RSA")) {
		a = bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0);
		b = bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0);
		assert_true(asprintf(&out, "{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"%s\","
		    "\"n\":\"%s\",\"e\":\"%s\"}", kid, a, b) > 0);
	} else {
		a = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, 32);
		b = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
		assert_true(asprintf(&out, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\","
		    "\"x\":\"%s\",\"y\":\"%s\"}", kid, a, b) > 0);
	}
	free(a);
	free(b);
	return out;
}

static struct stk_jwks *
jwks_std(void)
{
	struct stk_jwks *k = NULL;
	struct stk_error err;
	char *r = jwk_of(rsa_key, "rsa1"), *e = jwk_of(ec_key, "ec1"), *doc = NULL;

	assert_true(asprintf(&doc, "{\"keys\":[%s,%s]}", r, e) > 0);
	assert_int_equal(stk_jwks_parse(doc, strlen(doc), 1, &k, &err), 0);
	free(r);
	free(e);
	free(doc);
	return k;
}

/* header.payload.signature with key k (NULL: empty signature; "HS256":
 * HMAC with `hmac` as the secret). */
static char *
sign(EVP_PKEY *k, const char *hdr, const char *pl, const char *hmac)
{
	char *h = b64((const unsigned char *)hdr, strlen(hdr));
	char *p = b64((const unsigned char *)pl, strlen(pl));
	char *input = NULL, *sig = NULL, *tok = NULL;
	unsigned char s[1024], raw[64];
	size_t slen = sizeof(s), rawlen = sizeof(raw);
	unsigned int hl = 0;
	EVP_MD_CTX *md;

	assert_true(asprintf(&input, "%s.%s", h, p) > 0);
	if (hmac != NULL) {
		HMAC(EVP_sha256(), hmac, (int)strlen(hmac), (unsigned char *)input,
		    strlen(input), s, &hl);
		sig = b64(s, hl);
	} else if (k == NULL)
		sig = strdup("");
	else {
		md = EVP_MD_CTX_new();
		assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
		assert_int_equal(EVP_DigestSign(md, s, &slen, (unsigned char *)input,
		    strlen(input)), 1);
		EVP_MD_CTX_free(md);
		if (EVP_PKEY_is_a(k, "EC")) {
			assert_int_equal(stk_ecdsa_der_to_raw(s, slen, raw, rawlen), 0);
			sig = b64(raw, 64);
		} else
			sig = b64(s, slen);
	}
	assert_true(asprintf(&tok, "%s.%s", input, sig) > 0);
	free(h);
	free(p);
	free(input);
	free(sig);
	return tok;
}

static char *
payload(const char *extra)
{
	char *p = NULL;

	assert_true(asprintf(&p, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"s-1\","
	    "\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,\"tid\":\"t1\",\"deviceId\":\"dev-1\"%s}",
	    (long long)NOW - 10, (long long)NOW - 10, (long long)NOW + 600,
	    extra ? extra : "") > 0);
	return p;
}

static const struct stk_oidc_issuer std_issuer = {
	.issuer = ISS, .audience = AUD, .device_claim = "deviceId", .tenant = "t1",
};

/* verify(tok) with the standard issuer and JWKS at NOW: the reason. */
static enum stk_refusal
verdict_at(const char *tok, int64_t now, struct stk_idtoken *out)
{
	struct stk_idtoken id;
	struct stk_jwks *k = jwks_std();
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_INTERNAL;
	int r;

	r = stk_idtoken_verify(&std_issuer, k, tok, strlen(tok), now, out ? out : &id, &reason,
	    &err);
	assert_true((r == 0) == (reason == STK_REFUSAL_NONE));
	stk_jwks_free(k);
	return reason;
}

static enum stk_refusal
verdict(const char *tok)
{
	return verdict_at(tok, NOW, NULL);
}

/* One case: sign payload(extra) under header hdr with key k, expect want. */
static void
expect(EVP_PKEY *k, const char *hdr, const char *extra, enum stk_refusal want)
{
	char *p = payload(extra), *t = sign(k, hdr, p, NULL);

	assert_int_equal(verdict(t), want);
	free(p);
	free(t);
}

#define RS "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"typ\":\"JWT\"}"
#define ES "{\"alg\":\"ES256\",\"kid\":\"ec1\"}"
#define BAD STK_REFUSAL_IDTOKEN_INVALID
#define EXP "1800000060" /* NOW + 60 */

/* The issuer's RS256 and ES256 tokens verify and name the device. */
static void
test_good_tokens(void **state)
{
	struct stk_idtoken id;
	char *p = payload(NULL), *t1 = sign(rsa_key, RS, p, NULL), *t2 = sign(ec_key, ES, p, NULL);

	(void)state;
	assert_int_equal(verdict_at(t1, NOW, &id), STK_REFUSAL_NONE);
	assert_string_equal(id.issuer, ISS);
	assert_string_equal(id.device, "dev-1");
	assert_string_equal(id.sub, "s-1");
	assert_int_equal(verdict_at(t2, NOW, &id), STK_REFUSAL_NONE);
	assert_string_equal(id.kid, "ec1");
	free(p);
	free(t1);
	free(t2);
}

/* RFC 8725 3.1: the token never chooses the algorithm. "none", HMAC with the
 * public key as the secret (the classic confusion), and an alg that is not
 * the JWK's are refused. */
static void
test_alg_rules(void **state)
{
	char *p = payload(NULL), *n = bn_b64(rsa_key, OSSL_PKEY_PARAM_RSA_N, 0), *t;

	(void)state;
	expect(NULL, "{\"alg\":\"none\",\"kid\":\"rsa1\"}", NULL, BAD);
	t = sign(NULL, "{\"alg\":\"HS256\",\"kid\":\"rsa1\"}", p, n);
	assert_int_equal(verdict(t), BAD);
	free(t);
	free(n);
	free(p);
	/* ES256 header on the RSA key's kid, signed by the EC key. */
	expect(ec_key, "{\"alg\":\"ES256\",\"kid\":\"rsa1\"}", NULL, BAD);
	expect(rsa_key, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"x\"]}", NULL, BAD);
	expect(rsa_key, "{\"alg\":\"RS256\"}", NULL, BAD);
}

/* A kid the JWKS lacks is its own reason (the caller may refresh the JWKS);
 * another key's signature under a known kid is invalid. */
static void
test_kid_and_signature(void **state)
{
	(void)state;
	expect(rsa_other, "{\"alg\":\"RS256\",\"kid\":\"rsa9\"}", NULL, STK_REFUSAL_IDTOKEN_KEY);
	expect(rsa_other, RS, NULL, BAD);
}

/* The claims of a token: each the default below unless given as its own
 * JSON value ("": the claim left out). */
struct claims {
	const char *iss, *aud, *sub, *exp, *tid, *dev;
};

/* Sign the claims c with rsa_key under RS, expect want. */
static void
expect_claims(struct claims c, enum stk_refusal want)
{
	const char *name[] = { "iss", "aud", "sub", "exp", "tid", "deviceId" };
	const char *def[] = { "\"" ISS "\"", "\"" AUD "\"", "\"s\"", EXP, "\"t1\"", "\"d\"" };
	const char *val[] = { c.iss, c.aud, c.sub, c.exp, c.tid, c.dev };
	char p[1024] = "{", *t;
	size_t i;

	for (i = 0; i < 6; i++) {
		const char *v = val[i] != NULL ? val[i] : def[i];

		if (*v != '\0')
			snprintf(p + strlen(p), sizeof(p) - strlen(p), "%s\"%s\":%s",
			    p[1] ? "," : "", name[i], v);
	}
	strcat(p, "}");
	t = sign(rsa_key, RS, p, NULL);
	assert_int_equal(verdict(t), want);
	free(t);
}

/* Exact iss; aud a string or an array holding the audience. */
static void
test_iss_aud(void **state)
{
	(void)state;
	expect_claims((struct claims){ .iss = "\"" ISS "/\"" }, BAD);
	expect_claims((struct claims){ .aud = "[\"x\",\"" AUD "\"]" }, STK_REFUSAL_NONE);
	expect_claims((struct claims){ .aud = "[\"x\",1]" }, BAD);
	expect_claims((struct claims){ .aud = "\"api://other\"" }, STK_REFUSAL_IDTOKEN_AUDIENCE);
}

/* exp within the 60 s leeway passes, past it is refused; nbf and iat in the
 * future beyond the leeway are refused; time claims must be integers. */
static void
test_time_window(void **state)
{
	char *p = payload(NULL), *t = sign(rsa_key, RS, p, NULL);

	(void)state;
	assert_int_equal(verdict_at(t, NOW + 600 + STK_OIDC_LEEWAY - 1, NULL), STK_REFUSAL_NONE);
	assert_int_equal(verdict_at(t, NOW + 600 + STK_OIDC_LEEWAY, NULL), STK_REFUSAL_IDTOKEN_EXPIRED);
	assert_int_equal(verdict_at(t, NOW - 10 - STK_OIDC_LEEWAY - 1, NULL),
	    STK_REFUSAL_IDTOKEN_EXPIRED);
	free(t);
	free(p);
	expect_claims((struct claims){ .exp = EXP ".0" }, BAD);
	expect_claims((struct claims){ .exp = "" }, BAD);
}

/* tid when a tenant is configured; the device claim present and sane; sub
 * present and sane (they reach the audit log). */
static void
test_claims(void **state)
{
	const char *bad[] = { "", "\"a\\nb\"", "17", "\"a b\"", "\"\"", NULL };
	char big[203];
	size_t i;

	(void)state;
	expect_claims((struct claims){ .tid = "\"t2\"" }, STK_REFUSAL_IDTOKEN_TENANT);
	for (i = 0; bad[i] != NULL; i++)
		expect_claims((struct claims){ .dev = bad[i] }, STK_REFUSAL_IDTOKEN_DEVICE);
	/* 199 characters */
	memset(big, 'a', sizeof(big));
	big[0] = big[200] = '"';
	big[201] = '\0';
	expect_claims((struct claims){ .dev = big }, STK_REFUSAL_IDTOKEN_DEVICE);
	expect_claims((struct claims){ .sub = "\"s\\u0001\"" }, BAD);
}

/* Strict JSON and encoding: a duplicate member (a lax parser would read the
 * last deviceId), padding, a fourth segment, the size limit. */
static void
test_encoding(void **state)
{
	char *t, *p, *big;
	int i;

	(void)state;
	expect(rsa_key, RS, ",\"deviceId\":\"dev-2\"", BAD);
	expect(rsa_key, "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"kid\":\"rsa1\"}", NULL, BAD);
	p = payload(NULL);
	t = sign(rsa_key, RS, p, NULL);
	for (i = 0; i < 2; i++) {
		assert_true(asprintf(&big, "%s%s", t, i == 0 ? "==" : ".a") > 0);
		assert_int_equal(verdict(big), BAD);
		free(big);
	}
	free(t);
	free(p);
	big = malloc(STK_OIDC_TOKEN_MAX + 100);
	memset(big, 'a', STK_OIDC_TOKEN_MAX);
	big[STK_OIDC_TOKEN_MAX] = '\0';
	assert_true(asprintf(&p, ",\"pad\":\"%s\"", big) > 0);
	expect(rsa_key, RS, p, BAD);
	free(p);
	free(big);
}

/* The unverified iss picks the issuer record; it obeys the same rules. */
static void
test_peek_issuer(void **state)
{
	char iss[STK_OIDC_ISSUER_MAX + 1], *p = payload(NULL), *t = sign(rsa_key, RS, p, NULL);
	enum stk_refusal reason;
	struct stk_error err;

	(void)state;
	assert_int_equal(stk_idtoken_peek_issuer(t, strlen(t), iss, &reason, &err), 0);
	assert_string_equal(iss, ISS);
	assert_int_not_equal(stk_idtoken_peek_issuer("a.b", 3, iss, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_IDTOKEN_INVALID);
	free(t);
	free(p);
}

/* oidc add parses strictly: a key too small, a duplicate kid, an EC point
 * off the curve refuse the whole JWKS; a refresh parses leniently and keeps
 * the good keys. Symmetric ("oct") keys and other uses are skipped. */
static void
test_jwks_rules(void **state)
{
	struct stk_jwks *k = NULL;
	struct stk_error err;
	char *r = jwk_of(rsa_key, "rsa1"), *s = jwk_of(small_key, "small1"), *doc = NULL;
	char *e = jwk_of(ec_key, "ec1");

	(void)state;
	assert_true(asprintf(&doc, "{\"keys\":[%s,%s]}", r, s) > 0);
	assert_int_equal(stk_jwks_parse(doc, strlen(doc), 1, &k, &err), STK_E_ARG);
	assert_non_null(strstr(err.msg, "1024 bits is too small"));
	assert_null(k);
	assert_int_equal(stk_jwks_parse(doc, strlen(doc), 0, &k, &err), 0);
	assert_int_equal(stk_jwks_count(k), 1);
	assert_string_equal(stk_jwks_kid(k, 0), "rsa1");
	stk_jwks_free(k);
	free(doc);
	assert_true(asprintf(&doc, "{\"keys\":[%s,%s]}", r, r) > 0);
	assert_int_equal(stk_jwks_parse(doc, strlen(doc), 1, &k, &err), STK_E_ARG);
	assert_non_null(strstr(err.msg, "twice"));
	free(doc);
	assert_true(asprintf(&doc, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"AAAA\"},"
	    "{\"kty\":\"RSA\",\"use\":\"enc\",\"kid\":\"x\",\"n\":\"AQAB\",\"e\":\"AQAB\"},%s]}",
	    e) > 0);
	assert_int_equal(stk_jwks_parse(doc, strlen(doc), 1, &k, &err), 0);
	assert_int_equal(stk_jwks_count(k), 1);
	assert_string_equal(stk_jwks_alg(k, 0), "ES256");
	stk_jwks_free(k);
	free(doc);
	/* x and y of P-256's size, but not a point of the curve. */
	doc = strdup("{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"bad\","
	    "\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
	    "\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}");
	assert_int_equal(stk_jwks_parse(doc, strlen(doc), 1, &k, &err), STK_E_ARG);
	free(doc);
	doc = strdup("{\"keys\":[],\"keys\":[]}");
	assert_int_equal(stk_jwks_parse(doc, strlen(doc), 0, &k, &err), STK_E_ARG);
	free(doc);
	doc = strdup("{\"keys\":[]}");
	assert_int_equal(stk_jwks_parse(doc, strlen(doc), 0, &k, &err), STK_E_ARG);
	free(doc);
	free(r);
	free(s);
	free(e);
}

static int
setup(void **state)
{
	(void)state;
	rsa_key = EVP_RSA_gen(2048);
	rsa_other = EVP_RSA_gen(2048);
	small_key = EVP_RSA_gen(1024);
	ec_key = EVP_EC_gen("P-256");
	return rsa_key && rsa_other && small_key && ec_key ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(rsa_other);
	EVP_PKEY_free(small_key);
	EVP_PKEY_free(ec_key);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_tokens),
		cmocka_unit_test(test_alg_rules),
		cmocka_unit_test(test_kid_and_signature),
		cmocka_unit_test(test_iss_aud),
		cmocka_unit_test(test_time_window),
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_encoding),
		cmocka_unit_test(test_peek_issuer),
		cmocka_unit_test(test_jwks_rules),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
