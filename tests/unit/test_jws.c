/* JWS tokens: issue/verify round trips on RS256 and ES256, and every
 * security rule of SPEC.md, each fed a bad token and checked for the
 * refusal code and reason. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include "sitetoken/cert.h"
#include "sitetoken/token.h"
#include "jws_int.h"
#include "testutil.h"

#define SITE "5b2f4a1e-8c3d-4e6f-9a0b-1c2d3e4f5a6b"
#define SITE_UP "5B2F4A1E-8C3D-4E6F-9A0B-1C2D3E4F5A6B"
#define TOKID "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
#define NOW 1800000000LL
#define CNF "QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ" /* a client token's cnf thumbprint */

struct fx {
	struct stk_key *key;        /* site key under test */
	struct stk_key *other;      /* a key the site does not trust */
	unsigned char *cert;
	size_t cert_len;
	struct stk_signer *signer;
	struct stk_verifier *v;
	char kid[44], x5t[44];
	const char *alg;
};

/* The keys are made once for the whole run (RSA key generation dominates
 * the run time, under valgrind most of all); every test opens them anew,
 * so no test sees another's key object, signer or verifier. */
static struct {
	char *dir;
	char *uri[2][2]; /* [RSA, P-256][site key, untrusted key] */
} keys;

static int
keys_make(void **state)
{
	static const enum stk_key_type types[2] = { STK_KEY_RSA2048, STK_KEY_P256 };
	static const char *const names[2][2] = { { "rsa.key", "rsa-other.key" },
	    { "ec.key", "ec-other.key" } };
	char path[PATH_MAX];
	struct stk_error err;
	struct stk_key *k;
	int t, i;

	(void)state;
	keys.dir = tu_tmpdir("jws");
	for (t = 0; t < 2; t++)
		for (i = 0; i < 2; i++) {
			snprintf(path, sizeof(path), "%s/%s", keys.dir, names[t][i]);
			if (stk_key_generate("file", path, types[t], NULL, &k,
			    &keys.uri[t][i], &err) != 0) {
				fprintf(stderr, "key generation: %s\n", err.msg);
				return -1;
			}
			stk_key_close(k);
		}
	return 0;
}

static int
keys_remove(void **state)
{
	int t, i;

	(void)state;
	for (t = 0; t < 2; t++)
		for (i = 0; i < 2; i++)
			free(keys.uri[t][i]);
	tu_rmrf(keys.dir);
	free(keys.dir);
	return 0;
}

static int
fx_setup(void **state, enum stk_key_type type)
{
	struct fx *f = calloc(1, sizeof(*f));
	int t = type == STK_KEY_P256;
	struct stk_error err;

	assert_int_equal(stk_key_open(keys.uri[t][0], NULL, &f->key, &err), 0);
	assert_int_equal(stk_key_open(keys.uri[t][1], NULL, &f->other, &err), 0);
	assert_int_equal(stk_cert_make_site(f->key, SITE, NOW, 365, &f->cert,
	    &f->cert_len, &err), 0);
	assert_int_equal(stk_signer_new(f->key, f->cert, f->cert_len, SITE,
	    &f->signer, &err), 0);
	assert_int_equal(stk_verifier_new(SITE, &f->v, &err), 0);
	assert_int_equal(stk_verifier_add_cert(f->v, f->cert, f->cert_len, &err), 0);
	snprintf(f->kid, sizeof(f->kid), "%s", stk_signer_kid(f->signer));
	snprintf(f->x5t, sizeof(f->x5t), "%s", stk_signer_x5t(f->signer));
	f->alg = stk_key_type_alg(type);
	*state = f;
	return 0;
}

static int setup_rsa(void **state) { return fx_setup(state, STK_KEY_RSA2048); }
static int setup_ec(void **state) { return fx_setup(state, STK_KEY_P256); }

static int
teardown(void **state)
{
	struct fx *f = *state;

	stk_verifier_free(f->v);
	stk_signer_free(f->signer);
	stk_key_close(f->key);
	stk_key_close(f->other);
	free(f->cert);
	free(f);
	return 0;
}

/* A correct header with extra members appended; a template for expand(). */
#define H(extra) "{\"typ\":\"JWT\",\"alg\":\"$alg\",\"x5t\":\"$x5t\",\"kid\":\"$kid\"" extra "}"

/* A header template with $alg, $alg2 (the algorithm of the other key
 * type), $x5t and $kid filled in for this fixture. */
static void
expand(const struct fx *f, const char *tpl, char *out, size_t len)
{
	static const char *const var[] = { "$alg2", "$alg", "$x5t", "$kid" };
	const char *val[] = { strcmp(f->alg, "RS256") == 0 ? "ES256" : "RS256", f->alg,
	    f->x5t, f->kid };
	size_t o = 0, i;

	while (*tpl != '\0') {
		for (i = 0; i < 4 && strncmp(tpl, var[i], strlen(var[i])) != 0; i++)
			;
		assert_true(o + (i < 4 ? strlen(val[i]) : 1) < len);
		if (i < 4) {
			memcpy(out + o, val[i], strlen(val[i]));
			o += strlen(val[i]);
			tpl += strlen(var[i]);
		} else
			out[o++] = *tpl++;
	}
	out[o] = '\0';
}

/* A bulk claim set valid [nbf, exp); each argument is the JSON value (or,
 * for times, the members) to write. BULK_OPEN leaves the object open. */
#define C_TYPE "\"BulkRegistration\""
#define C_TENANT "\"" SITE_UP "\""
#define C_ISS "\"urn:sccm:oauth2:" SITE "\""
#define C_AUD "\"urn:sccm:service\""
#define C_TIMES "\"nbf\":1800000000,\"exp\":1800003600"
#define BULK_OPEN(type, tenant, iss, aud, times) \
	"{\"SCCMTokenCategory\":\"SCCMPreAuthToken\",\"Authority\":\"SCCM\"," \
	"\"License\":\"SCCM\",\"Type\":" type ",\"TenantId\":" tenant "," \
	"\"UniqueId\":\"" TOKID "\",\"iss\":" iss ",\"aud\":" aud "," times
#define BULK(type, tenant, iss, aud, times) BULK_OPEN(type, tenant, iss, aud, times) "}"
#define BULK_OK BULK(C_TYPE, C_TENANT, C_ISS, C_AUD, C_TIMES)

static int
verify(const struct fx *f, const char *tok, enum stk_token_type t, int64_t now,
    struct stk_error *err)
{
	struct stk_claims c;
	int r;

	stk_error_clear(err);
	r = stk_verify(f->v, tok, strlen(tok), t, now, &c, err);
	stk_claims_clear(&c);
	return r;
}

/* stk_verify must return code, with reason in the message. */
static void
expect_verify(const struct fx *f, const char *tok, enum stk_token_type t, int64_t now,
    int code, const char *reason)
{
	struct stk_error err;
	int r = verify(f, tok, t, now, &err);

	if (r != code || strstr(err.msg, reason) == NULL)
		fail_msg("%s: want %d (%s), got %d: %s", f->alg, code, reason, r, err.msg);
}

static char *
sign_raw(struct stk_key *key, const char *h, const char *p)
{
	char *tok = NULL;
	struct stk_error err;

	assert_int_equal(stk_jws_sign_raw(key, h, p, &tok, &err), 0);
	return tok;
}

/* *tok: a bulk token issued by the site for [NOW, NOW + 3600). */
static void
issue_bulk(const struct fx *f, char **tok)
{
	struct stk_error err;

	assert_int_equal(stk_issue_bulk(f->signer, TOKID, NOW, NOW + 3600, tok, NULL, &err), 0);
}

/* ---- round trips ---- */

static void
test_bulk_roundtrip(void **state)
{
	struct fx *f = *state;
	struct stk_claims c;
	struct stk_error err;
	char *tok = NULL, guid[37];

	assert_int_equal(stk_issue_bulk(f->signer, NULL, NOW, NOW + 4320 * 60, &tok,
	    guid, &err), 0);
	assert_int_equal(stk_verify(f->v, tok, strlen(tok), STK_TOKEN_BULK, NOW + 1,
	    &c, &err), 0);
	assert_int_equal(c.type, STK_TOKEN_BULK);
	assert_string_equal(c.id, guid);
	assert_string_equal(c.tenant, SITE);
	assert_int_equal(c.nbf, NOW);
	assert_int_equal(c.exp - c.nbf, 4320 * 60);
	assert_string_equal(c.kid, f->kid);
	/* The exact header and claim names/values of SPEC.md, in order. */
	{
		char want_h[256], want_p[1024];
		expand(f, H(""), want_h, sizeof(want_h));
		assert_string_equal(c.header_json, want_h);
		snprintf(want_p, sizeof(want_p), "{\"SCCMTokenCategory\":\"SCCMPreAuthToken\","
		    "\"Authority\":\"SCCM\",\"License\":\"SCCM\",\"Type\":\"BulkRegistration\","
		    "\"TenantId\":\"" SITE_UP "\",\"UniqueId\":\"%s\",\"iss\":\"urn:sccm:oauth2:"
		    SITE "\",\"aud\":\"urn:sccm:service\",\"nbf\":%lld,\"exp\":%lld}", guid,
		    NOW, NOW + 4320 * 60);
		assert_string_equal(c.payload_json, want_p);
	}
	stk_claims_clear(&c);
	/* A bulk token is never accepted as a client token. */
	expect_verify(f, tok, STK_TOKEN_CLIENT, NOW + 1, STK_E_TOKEN_TYPE, "");
	stk_token_free(tok);
}

static void
test_client_roundtrip(void **state)
{
	struct fx *f = *state;
	struct stk_claims c;
	struct stk_error err;
	char *tok = NULL, jti[37];
	const char *cnf = "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c";
	const char *dev = "11111111-2222-4333-8444-555555555555";

	assert_int_equal(stk_issue_client(f->signer, dev, cnf, NOW, 90 * 86400, &tok,
	    jti, &err), 0);
	assert_int_equal(stk_verify(f->v, tok, strlen(tok), STK_TOKEN_CLIENT, NOW + 5,
	    &c, &err), 0);
	assert_int_equal(c.type, STK_TOKEN_CLIENT);
	assert_string_equal(c.subject, dev);
	assert_string_equal(c.id, jti);
	assert_string_equal(c.cnf_x5t_s256, cnf);
	assert_int_equal(c.iat, NOW);
	assert_int_equal(c.exp, NOW + 90 * 86400);
	assert_non_null(strstr(c.payload_json, "\"cnf\":{\"x5t#S256\":\""));
	stk_claims_clear(&c);
	/* A token of one Type is never accepted as another. */
	expect_verify(f, tok, STK_TOKEN_BULK, NOW + 5, STK_E_TOKEN_TYPE,
	    "ClientAuthentication token is not accepted");
	stk_token_free(tok);
}

static void
test_flipped_byte_anywhere(void **state)
{
	struct fx *f = *state;
	struct stk_error err;
	char *tok = NULL;
	size_t i, len;
	unsigned bit;

	issue_bulk(f, &tok);
	len = strlen(tok);
	assert_int_equal(verify(f, tok, STK_TOKEN_BULK, NOW, &err), 0);
	for (i = 0; i < len; i++) {
		for (bit = 0; bit < 8; bit += 3) {
			tok[i] ^= (char)(1u << bit);
			if (verify(f, tok, STK_TOKEN_BULK, NOW, &err) == 0)
				fail_msg("token with byte %zu bit %u flipped was accepted", i, bit);
			tok[i] ^= (char)(1u << bit);
		}
	}
	stk_token_free(tok);
}

/* ---- one verifier shared by threads (as the gateway's pool uses it) ---- */

struct vt_arg {
	const struct fx *f;
	const char *good, *bad;
	int wrong;
};

static void *
vt_run(void *p)
{
	struct vt_arg *a = p;
	struct stk_error err;
	int i;

	for (i = 0; i < 300; i++) {
		if (verify(a->f, a->good, STK_TOKEN_BULK, NOW, &err) != 0)
			a->wrong++;
		if (verify(a->f, a->bad, STK_TOKEN_BULK, NOW, &err) != STK_E_TOKEN_SIGNATURE)
			a->wrong++;
	}
	return NULL;
}

static void
test_verifier_shared_by_threads(void **state)
{
	struct fx *f = *state;
	struct vt_arg a[2];
	pthread_t t[2];
	char *tok = NULL, *bad;
	size_t len;
	int i;

	issue_bulk(f, &tok);
	len = strlen(tok);
	bad = strdup(tok);
	/* a signature character in the middle: still strict base64url */
	bad[len - 10] = bad[len - 10] == 'A' ? 'B' : 'A';
	for (i = 0; i < 2; i++) {
		a[i] = (struct vt_arg){ f, tok, bad, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, vt_run, &a[i]), 0);
	}
	for (i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(a[i].wrong, 0);
	}
	free(bad);
	stk_token_free(tok);
}

/* ---- header and claim rules: one row per rule ---- */

/* jku/x5u/jwk pointing at the attacker's key: refused outright, and no
 * fetch is attempted (also when the attacker signed and names no kid). */
#define JKU "\"jku\":\"https://attacker.invalid/jwks.json\""
#define X5U "\"x5u\":\"https://attacker.invalid/cert.pem\""
#define JWK "\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}"

static const struct rule {
	const char *h;      /* header template (expand) */
	const char *p;      /* claims; NULL: a correct bulk claim set */
	int by_other;       /* signed by a key the site does not trust */
	enum stk_token_type t;
	int code;           /* what stk_verify returns, at NOW + 10 */
	const char *reason; /* part of the message */
} rules[] = {
	/* algorithm */
	{ "{\"typ\":\"JWT\",\"alg\":\"$alg2\",\"x5t\":\"$x5t\",\"kid\":\"$kid\"}", NULL, 0,
	    STK_TOKEN_BULK, STK_E_TOKEN_ALG, "does not match the site key" },
	{ "{\"typ\":\"JWT\",\"alg\":\"PS256\",\"kid\":\"$kid\"}", NULL, 0,
	    STK_TOKEN_BULK, STK_E_TOKEN_ALG, "is not RS256 or ES256" },
	/* header */
	{ H(",\"crit\":[\"exp\"]"), NULL, 0, STK_TOKEN_BULK, STK_E_TOKEN_HEADER,
	    "'crit' is refused" },
	{ H("," JKU), NULL, 0, STK_TOKEN_BULK, STK_E_TOKEN_HEADER, "'jku'" },
	{ H("," X5U), NULL, 0, STK_TOKEN_BULK, STK_E_TOKEN_HEADER, "'x5u'" },
	{ H("," JWK), NULL, 0, STK_TOKEN_BULK, STK_E_TOKEN_HEADER, "'jwk'" },
	{ "{\"typ\":\"JWT\",\"alg\":\"$alg\"," JKU "}", NULL, 1, STK_TOKEN_BULK,
	    STK_E_TOKEN_HEADER, "" },
	{ "{\"typ\":\"JWT\",\"alg\":\"$alg\"," X5U "}", NULL, 1, STK_TOKEN_BULK,
	    STK_E_TOKEN_HEADER, "" },
	{ "{\"typ\":\"JWT\",\"alg\":\"$alg\"," JWK "}", NULL, 1, STK_TOKEN_BULK,
	    STK_E_TOKEN_HEADER, "" },
	{ "{\"alg\":\"$alg\",\"kid\":\"$kid\"}", NULL, 0, STK_TOKEN_BULK, STK_E_TOKEN_HEADER,
	    "typ must be" },
	{ "{\"typ\":\"JWT\",\"alg\":\"$alg\",\"kid\":\"nosuchkey\"}", NULL, 0, STK_TOKEN_BULK,
	    STK_E_TOKEN_HEADER, "unknown kid" },
	{ "{\"typ\":\"JWT\",\"alg\":\"$alg\"}", NULL, 0, STK_TOKEN_BULK, STK_E_TOKEN_HEADER,
	    "names no site key" },
	/* x5t alone selects the key too */
	{ "{\"typ\":\"JWT\",\"alg\":\"$alg\",\"x5t\":\"$x5t\"}", NULL, 0, STK_TOKEN_BULK, 0, "" },
	/* Attacker 1 (network) edits a header so that kid names the site key
	 * and x5t another certificate; both must name the same key. */
	{ "{\"typ\":\"JWT\",\"alg\":\"$alg\",\"kid\":\"$kid\","
	    "\"x5t\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAA\"}", NULL, 0, STK_TOKEN_BULK, STK_E_TOKEN_HEADER,
	    "x5t is not the certificate" },
	/* the header names the site key; another key signed */
	{ H(""), NULL, 1, STK_TOKEN_BULK, STK_E_TOKEN_SIGNATURE, "does not verify" },
	/* claims; iss is an exact match: a prefix or different case is not the issuer */
	{ H(""), BULK(C_TYPE, C_TENANT, "\"urn:sccm:oauth2:00000000-0000-4000-8000-000000000000\"",
	    C_AUD, C_TIMES), 0, STK_TOKEN_BULK, STK_E_TOKEN_ISSUER, "claim iss" },
	{ H(""), BULK(C_TYPE, C_TENANT, "\"urn:sccm:oauth2:" SITE_UP "\"", C_AUD, C_TIMES), 0,
	    STK_TOKEN_BULK, STK_E_TOKEN_ISSUER, "claim iss" },
	{ H(""), BULK(C_TYPE, C_TENANT, C_ISS, "\"urn:sccm:service2\"", C_TIMES), 0,
	    STK_TOKEN_BULK, STK_E_TOKEN_AUDIENCE, "claim aud" },
	/* aud as an array is not the exact audience string */
	{ H(""), BULK(C_TYPE, C_TENANT, C_ISS, "[" C_AUD "]", C_TIMES), 0,
	    STK_TOKEN_BULK, STK_E_TOKEN_CLAIMS, "claim aud" },
	{ H(""), BULK("\"Bulkregistration\"", C_TENANT, C_ISS, C_AUD, C_TIMES), 0,
	    STK_TOKEN_BULK, STK_E_TOKEN_TYPE, "unknown token Type" },
	{ H(""), BULK("\"UserAuthentication\"", C_TENANT, C_ISS, C_AUD, C_TIMES), 0,
	    STK_TOKEN_ANY, STK_E_TOKEN_TYPE, "unknown token Type" },
	{ H(""), BULK(C_TYPE, "\"" SITE "\"", C_ISS, C_AUD, C_TIMES), 0,
	    STK_TOKEN_BULK, STK_E_TOKEN_ISSUER, "claim TenantId" },
	/* times */
	{ H(""), BULK(C_TYPE, C_TENANT, C_ISS, C_AUD, "\"nbf\":1800000000,\"exp\":1800003600.0"),
	    0, STK_TOKEN_BULK, STK_E_TOKEN_CLAIMS, "exp must be an integer" },
	{ H(""), BULK(C_TYPE, C_TENANT, C_ISS, C_AUD, "\"nbf\":\"1800000000\",\"exp\":1800003600"),
	    0, STK_TOKEN_BULK, STK_E_TOKEN_CLAIMS, "nbf must be an integer" },
	{ H(""), BULK(C_TYPE, C_TENANT, C_ISS, C_AUD, "\"nbf\":1.8e9,\"exp\":1800003600"),
	    0, STK_TOKEN_BULK, STK_E_TOKEN_CLAIMS, "nbf must be an integer" },
	{ H(""), BULK(C_TYPE, C_TENANT, C_ISS, C_AUD, "\"nbf\":1800000000"),
	    0, STK_TOKEN_BULK, STK_E_TOKEN_CLAIMS, "claim exp missing" },
	/* a bulk token over the 7-day maximum, even if correctly signed */
	{ H(""), BULK(C_TYPE, C_TENANT, C_ISS, C_AUD, "\"nbf\":1800000000,\"exp\":1800604860"),
	    0, STK_TOKEN_BULK, STK_E_TOKEN_CLAIMS, "7-day maximum" },
	/* A TPM-attested device's token says "att":"tpm" (issue 18); an
	 * unknown level is not accepted (a reader must not take "sw" for "tpm"). */
	{ H(""), "{\"Type\":\"ClientAuthentication\",\"TenantId\":\"" SITE_UP "\",\"sub\":\""
	    TOKID "\",\"jti\":\"" TOKID "\",\"iss\":" C_ISS ",\"aud\":" C_AUD ",\"iat\":1800000000,"
	    "\"nbf\":1800000000,\"exp\":1800086400,\"cnf\":{\"x5t#S256\":\"" CNF "\"},"
	    "\"att\":\"sw\"}",
	    0, STK_TOKEN_CLIENT, STK_E_TOKEN_CLAIMS, "claim att" },
	/* JSON: duplicate members, not an object, trailing garbage */
	{ H(""), BULK_OPEN(C_TYPE, C_TENANT, C_ISS, C_AUD, C_TIMES) ",\"exp\":1900000000}", 0,
	    STK_TOKEN_BULK, STK_E_TOKEN_JSON, "duplicate" },
	{ H(",\"alg\":\"none\""), NULL, 0, STK_TOKEN_BULK, STK_E_TOKEN_JSON, "" },
	{ "[1]", NULL, 0, STK_TOKEN_BULK, STK_E_TOKEN_JSON, "not a JSON object" },
	{ H("") "x", NULL, 0, STK_TOKEN_BULK, STK_E_TOKEN_JSON, "header is not a JSON object" },
};

static void
test_header_and_claim_rules(void **state)
{
	struct fx *f = *state;
	char h[512], *tok;
	size_t i;

	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		expand(f, rules[i].h, h, sizeof(h));
		tok = sign_raw(rules[i].by_other ? f->other : f->key, h,
		    rules[i].p != NULL ? rules[i].p : BULK_OK);
		print_message("rule %zu: %s\n", i, h);
		expect_verify(f, tok, rules[i].t, NOW + 10, rules[i].code, rules[i].reason);
		free(tok);
	}
}

/* ---- tokens made without the signer ---- */

/* "b64url(h).b64url(p)", then "." and sig unless sig is NULL. malloc'd. */
static char *
compose(const struct fx *f, const char *htpl, const char *p, const char *sig)
{
	char h[512], *hb = NULL, *pb = NULL, *tok = malloc(4096);

	expand(f, htpl, h, sizeof(h));
	assert_int_equal(stk_b64url_encode((unsigned char *)h, strlen(h), &hb), 0);
	assert_int_equal(stk_b64url_encode((unsigned char *)p, strlen(p), &pb), 0);
	snprintf(tok, 4096, "%s.%s%s%s", hb, pb, sig ? "." : "", sig ? sig : "");
	free(hb);
	free(pb);
	return tok;
}

static void
test_alg_none(void **state)
{
	struct fx *f = *state;
	char *tok;

	tok = compose(f, "{\"typ\":\"JWT\",\"alg\":\"none\",\"kid\":\"$kid\"}", BULK_OK, "");
	expect_verify(f, tok, STK_TOKEN_BULK, NOW, STK_E_TOKEN_ALG, "'none' is refused");
	free(tok);
	/* "None"/"NONE" too */
	tok = compose(f, "{\"typ\":\"JWT\",\"alg\":\"NoNe\",\"kid\":\"$kid\"}", BULK_OK, "");
	expect_verify(f, tok, STK_TOKEN_BULK, NOW, STK_E_TOKEN_ALG, "");
	free(tok);
}

static void
test_hs256_with_public_key(void **state)
{
	/* The classic key-confusion attack: HMAC keyed with the site's public
	 * key PEM, which every verifier can read. */
	struct fx *f = *state;
	struct stk_error err;
	EVP_PKEY *pub = NULL;
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *bm;
	char *in, tok[4096], sigb[64];
	unsigned char mac[32];
	unsigned int maclen = sizeof(mac);

	assert_int_equal(stk_key_get_public(f->key, &pub, &err), 0);
	PEM_write_bio_PUBKEY(b, pub);
	BIO_get_mem_ptr(b, &bm);
	in = compose(f, "{\"typ\":\"JWT\",\"alg\":\"HS256\",\"kid\":\"$kid\"}", BULK_OK, NULL);
	HMAC(EVP_sha256(), bm->data, (int)bm->length, (unsigned char *)in, strlen(in), mac, &maclen);
	stk_b64url_encode_buf(mac, maclen, sigb);
	snprintf(tok, sizeof(tok), "%s.%s", in, sigb);
	expect_verify(f, tok, STK_TOKEN_BULK, NOW, STK_E_TOKEN_ALG, "HMAC is never accepted");
	free(in);
	BIO_free(b);
	EVP_PKEY_free(pub);
}

static void
test_times(void **state)
{
	struct fx *f = *state;
	char *tok = NULL;
	int64_t nbf = NOW, exp = NOW + 3600;

	issue_bulk(f, &tok);
	/* Leeway edges, 60 s by default: valid for now in [nbf-60, exp+60). */
	expect_verify(f, tok, STK_TOKEN_BULK, exp + 59, 0, "");
	expect_verify(f, tok, STK_TOKEN_BULK, exp + 60, STK_E_TOKEN_EXPIRED, "expired");
	expect_verify(f, tok, STK_TOKEN_BULK, exp + 86400, STK_E_TOKEN_EXPIRED, "");
	expect_verify(f, tok, STK_TOKEN_BULK, nbf - 60, 0, "");
	expect_verify(f, tok, STK_TOKEN_BULK, nbf - 61, STK_E_TOKEN_NOTYET,
	    "not valid for another");
	/* Leeway 0: the window is exact. */
	stk_verifier_set_leeway(f->v, 0);
	expect_verify(f, tok, STK_TOKEN_BULK, exp - 1, 0, "");
	expect_verify(f, tok, STK_TOKEN_BULK, exp, STK_E_TOKEN_EXPIRED, "");
	expect_verify(f, tok, STK_TOKEN_BULK, nbf - 1, STK_E_TOKEN_NOTYET, "");
	stk_verifier_set_leeway(f->v, STK_DEFAULT_LEEWAY);
	stk_token_free(tok);
}

/* ---- encoding and shape ---- */

static void
test_base64url_strictness(void **state)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	struct fx *f = *state;
	char *tok = NULL, buf[4096], *d1, *d2;
	const char *pos;
	size_t len;

	issue_bulk(f, &tok);
	len = strlen(tok);
	d1 = strchr(tok, '.');
	d2 = strchr(d1 + 1, '.');
	/* padding on the signature, on the header */
	snprintf(buf, sizeof(buf), "%s=", tok);
	expect_verify(f, buf, STK_TOKEN_BULK, NOW, STK_E_TOKEN_B64, "");
	snprintf(buf, sizeof(buf), "%.*s==%s", (int)(d1 - tok), tok, d1);
	expect_verify(f, buf, STK_TOKEN_BULK, NOW, STK_E_TOKEN_B64,
	    "header is not strict base64url");
	/* standard-alphabet characters */
	snprintf(buf, sizeof(buf), "%s", tok);
	buf[(d2 - tok) + 3] = '+';
	expect_verify(f, buf, STK_TOKEN_BULK, NOW, STK_E_TOKEN_B64, "");
	/* stray bits in the last signature character (256 and 64 byte
	 * signatures both leave 4 unused bits) */
	snprintf(buf, sizeof(buf), "%s", tok);
	pos = strchr(a, buf[len - 1]);
	assert_non_null(pos);
	assert_int_equal((pos - a) & 0x0f, 0);
	buf[len - 1] = a[(pos - a) | 1];
	expect_verify(f, buf, STK_TOKEN_BULK, NOW, STK_E_TOKEN_B64,
	    "signature is not strict base64url");
	stk_token_free(tok);
}

static void
test_segments(void **state)
{
	struct fx *f = *state;
	struct stk_error err;
	char *tok = NULL, buf[4096];

	issue_bulk(f, &tok);
	/* truncated: two segments */
	snprintf(buf, sizeof(buf), "%.*s", (int)(strrchr(tok, '.') - tok), tok);
	expect_verify(f, buf, STK_TOKEN_BULK, NOW, STK_E_TOKEN_FORMAT, "");
	/* truncated mid-signature */
	snprintf(buf, sizeof(buf), "%.*s", (int)strlen(tok) - 8, tok);
	assert_int_not_equal(verify(f, buf, STK_TOKEN_BULK, NOW, &err), 0);
	/* empty signature */
	snprintf(buf, sizeof(buf), "%.*s", (int)(strrchr(tok, '.') - tok + 1), tok);
	expect_verify(f, buf, STK_TOKEN_BULK, NOW, STK_E_TOKEN_SIGNATURE, "unsigned");
	/* extra segment (JWE-like or appended garbage) */
	snprintf(buf, sizeof(buf), "%s.AAAA", tok);
	expect_verify(f, buf, STK_TOKEN_BULK, NOW, STK_E_TOKEN_FORMAT, "more than three");
	expect_verify(f, "", STK_TOKEN_BULK, NOW, STK_E_TOKEN_FORMAT, "");
	expect_verify(f, "..", STK_TOKEN_BULK, NOW, STK_E_TOKEN_FORMAT, "");
	stk_token_free(tok);
}

static void
test_size_limit(void **state)
{
	struct fx *f = *state;
	char h[512], p[20000], *tok;
	size_t len, pad;
	int exact = 0;

	expand(f, H(""), h, sizeof(h));
	/* Pad the claims until the token is exactly 8192 bytes (accepted),
	 * then one step over (refused). */
	for (pad = 5000; pad < 6500; pad++) {
		snprintf(p, sizeof(p), BULK_OPEN(C_TYPE, C_TENANT, C_ISS, C_AUD, C_TIMES)
		    ",\"pad\":\"%0*d\"}", (int)pad, 0);
		tok = sign_raw(f->key, h, p);
		len = strlen(tok);
		if (len == STK_TOKEN_MAX) {
			expect_verify(f, tok, STK_TOKEN_BULK, NOW, 0, "");
			exact = 1;
		} else if (len > STK_TOKEN_MAX) {
			assert_true(exact);
			expect_verify(f, tok, STK_TOKEN_BULK, NOW, STK_E_TOKEN_SIZE,
			    "over the 8192-byte limit");
			free(tok);
			return;
		}
		free(tok);
	}
	fail_msg("no oversized token made");
}

static void
test_rotation_two_keys(void **state)
{
	/* A verifier trusting two site keys picks the right one by kid. */
	struct fx *f = *state;
	struct stk_error err;
	EVP_PKEY *pub = NULL;
	struct stk_signer *s2 = NULL;
	unsigned char *cert2 = NULL;
	size_t len2;
	char *tok = NULL;

	assert_int_equal(stk_cert_make_site(f->other, SITE, NOW, 30, &cert2, &len2, &err), 0);
	assert_int_equal(stk_signer_new(f->other, cert2, len2, SITE, &s2, &err), 0);
	assert_int_equal(stk_issue_bulk(s2, TOKID, NOW, NOW + 60, &tok, NULL, &err), 0);
	expect_verify(f, tok, STK_TOKEN_BULK, NOW, STK_E_TOKEN_HEADER, "");
	assert_int_equal(stk_key_get_public(f->other, &pub, &err), 0);
	assert_int_equal(stk_verifier_add_pubkey(f->v, pub, &err), 0);
	expect_verify(f, tok, STK_TOKEN_BULK, NOW, 0, "");
	EVP_PKEY_free(pub);
	stk_token_free(tok);
	stk_signer_free(s2);
	free(cert2);
}

/* ---- the canonical-layout claim reader against strict jansson ---- */

/* The payload JSON of a compact token (malloc'd, NUL-terminated). */
static char *
payload_of(const char *tok, size_t *len)
{
	const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
	unsigned char *raw;
	char *txt;

	assert_int_equal(stk_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &raw, len), 0);
	txt = malloc(*len + 1);
	memcpy(txt, raw, *len);
	txt[*len] = '\0';
	free(raw);
	return txt;
}

/* Both readers on one input: same verdict, same reason, same claims. */
static void
diff_one(const struct stk_verifier *v, const char *json, size_t len,
    enum stk_token_type t, int64_t now, int *fast_seen, int *ok_seen)
{
	struct stk_claims a, b;
	struct stk_error ea, eb;
	int ra, rb, used = 0;

	stk_error_clear(&ea);
	stk_error_clear(&eb);
	ra = stk__jws_check_payload(v, json, len, t, now, &a, &ea);
	rb = stk__jws_check_payload_fast(v, json, len, t, now, &b, &used, &eb);
	if (ra != rb || ea.code != eb.code || strcmp(ea.msg, eb.msg) != 0 ||
	    a.type != b.type || strcmp(a.tenant, b.tenant) != 0 ||
	    strcmp(a.id, b.id) != 0 || strcmp(a.subject, b.subject) != 0 ||
	    strcmp(a.cnf_x5t_s256, b.cnf_x5t_s256) != 0 || strcmp(a.att, b.att) != 0 ||
	    a.iat != b.iat ||
	    a.nbf != b.nbf || a.exp != b.exp)
		fail_msg("readers disagree on %.*s: jansson %d (%s), layout %d (%s)",
		    (int)len, json, ra, ea.msg, rb, eb.msg);
	*fast_seen += used;
	*ok_seen += ra == 0;
	stk_claims_clear(&a);
	stk_claims_clear(&b);
}

static void
test_layout_reader_agrees_with_jansson(void **state)
{
	/* The hot path reads our own payload layout without jansson. Every
	 * single-byte change, deletion and insertion of both issued layouts
	 * (and odd numbers) must get the jansson path's exact verdict,
	 * reason and claims; the canonical payloads must take the fast path. */
	static const char subst[] = "\"\\0 9-Aa},:{x\x01\x7f\xc3";
	static const char *const nums[] = { "0", "00", "01", "-1", "-0", "1.0",
	    "1e3", "999999999999999999", "1000000000000000000",
	    "9223372036854775807", "9223372036854775808", "18446744073709551616" };
	static const enum stk_token_type types[] = { STK_TOKEN_ANY, STK_TOKEN_BULK,
	    STK_TOKEN_CLIENT };
	struct fx *f = *state;
	struct stk_error err;
	char *tok[3] = { NULL, NULL, NULL }, *base, *m;
	size_t blen, i, k, t, j;
	int fast = 0, ok = 0, before;

	assert_int_equal(stk_issue_bulk(f->signer, TOKID, NOW, NOW + 3600, &tok[0],
	    NULL, &err), 0);
	assert_int_equal(stk_issue_client(f->signer, TOKID, CNF, NOW, 86400, &tok[1],
	    NULL, &err), 0);
	/* A TPM-attested device's token carries "att":"tpm" (issue 18). */
	assert_int_equal(stk_issue_client_att(f->signer, TOKID, CNF, "tpm", NOW, 86400,
	    &tok[2], NULL, &err), 0);
	for (k = 0; k < 3; k++) {
		base = payload_of(tok[k], &blen);
		before = fast;
		for (t = 0; t < 3; t++)
			diff_one(f->v, base, blen, types[t], NOW + 5, &fast, &ok);
		assert_int_equal(fast - before, 3); /* canonical: fast path */
		m = malloc(blen + 2);
		for (i = 0; i < blen; i++) {
			for (j = 0; j < sizeof(subst) - 1; j++) {
				memcpy(m, base, blen);
				m[i] = subst[j];
				diff_one(f->v, m, blen, types[(i + j) % 3], NOW + 5,
				    &fast, &ok);
			}
			memcpy(m, base, i);                  /* deletion */
			memcpy(m + i, base + i + 1, blen - i - 1);
			diff_one(f->v, m, blen - 1, types[i % 3], NOW + 5, &fast, &ok);
			memcpy(m, base, i);                  /* insertion */
			m[i] = base[i];
			memcpy(m + i + 1, base + i, blen - i);
			diff_one(f->v, m, blen + 1, types[i % 3], NOW + 5, &fast, &ok);
		}
		free(m);
		/* Every number form in place of exp, past and future. */
		for (j = 0; j < sizeof(nums) / sizeof(nums[0]); j++) {
			char *e = strstr(base, "\"exp\":"), buf[1024];
			size_t pre = (size_t)(e - base) + 6, dig = strspn(base + pre, "0123456789");
			int n = snprintf(buf, sizeof(buf), "%.*s%s%s", (int)pre, base,
			    nums[j], base + pre + dig);

			diff_one(f->v, buf, (size_t)n, STK_TOKEN_ANY, NOW + 5, &fast, &ok);
			diff_one(f->v, buf, (size_t)n, STK_TOKEN_ANY, INT64_MAX, &fast, &ok);
		}
		free(base);
	}
	/* The comparison saw both paths and both verdicts. */
	assert_true(fast > 100);
	assert_true(ok > 10);
	stk_token_free(tok[0]);
	stk_token_free(tok[1]);
	stk_token_free(tok[2]);
}

/* ---- JWS details (issue 15, item 9) ---- */

static void
test_huge_times_no_overflow(void **state)
{
	/* nbf/exp near INT64_MAX: exp + leeway must not wrap round to a past
	 * time and call a token from the far future "expired"; it is "not
	 * yet valid". And an unbounded leeway must not wrap either. */
	struct fx *f = *state;
	struct stk_claims c;
	struct stk_error err;
	const char *p = BULK(C_TYPE, C_TENANT, C_ISS, C_AUD,
	    "\"nbf\":9223372036854775000,\"exp\":9223372036854775800");

	assert_int_equal(stk__jws_check_payload(f->v, p, strlen(p), STK_TOKEN_BULK,
	    NOW, &c, &err), STK_E_TOKEN_NOTYET);
	stk_claims_clear(&c);
	assert_int_equal(stk__jws_check_payload_fast(f->v, p, strlen(p),
	    STK_TOKEN_BULK, NOW, &c, NULL, &err), STK_E_TOKEN_NOTYET);
	stk_claims_clear(&c);
	stk_verifier_set_leeway(f->v, INT64_MAX);
	p = BULK_OK;
	assert_int_equal(stk__jws_check_payload(f->v, p, strlen(p), STK_TOKEN_BULK,
	    NOW + 86400, &c, &err), 0);
	stk_claims_clear(&c);
}

static void
test_issue_refuses_non_base64url_thumbprint(void **state)
{
	/* The issuer writes the claim set without a JSON encoder: a
	 * thumbprint that is not base64url (a quote here would end the string
	 * and add a member) is refused, never written. */
	struct fx *f = *state;
	struct stk_error err;
	char *tok = NULL, cnf[] = CNF;

	cnf[10] = '"';
	assert_int_equal(stk_issue_client(f->signer, TOKID, cnf, NOW, 86400, &tok, NULL,
	    &err), STK_E_ARG);
	assert_null(tok);
	assert_non_null(strstr(err.msg, "base64url"));
}

static void
test_client_att_claim(void **state)
{
	/* A TPM-attested device's token says so ("att":"tpm", issue 18), so a
	 * gateway can require attestation without a lookup; a plain token has
	 * no claim; an unknown level is not written (nor accepted: see rules;
	 * a forged "att" would need the site key anyway). */
	struct fx *f = *state;
	struct stk_claims c;
	struct stk_error err;
	static const char *const att[][2] = { { "tpm", "tpm" }, { "none", "" } };
	char *tok = NULL;
	size_t i;

	for (i = 0; i < 2; i++) {
		assert_int_equal(stk_issue_client_att(f->signer, TOKID, CNF, att[i][0], NOW,
		    86400, &tok, NULL, &err), 0);
		assert_int_equal(stk_verify(f->v, tok, strlen(tok), STK_TOKEN_CLIENT, NOW + 1,
		    &c, &err), 0);
		assert_string_equal(c.att, att[i][1]);
		stk_claims_clear(&c);
		stk_token_free(tok);
		tok = NULL;
	}
	assert_int_equal(stk_issue_client_att(f->signer, TOKID, CNF, "sw", NOW, 86400,
	    &tok, NULL, &err), STK_E_ARG);
	assert_null(tok);
}

/* (r, n - s) from (r, s): the other ECDSA encoding of one signature. */
static char *
flip_s(const char *tok)
{
	const char *d2 = strrchr(tok, '.');
	EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	unsigned char *sig;
	size_t siglen;
	char *out = NULL, *enc;
	BIGNUM *s;

	assert_int_equal(stk_b64url_decode(d2 + 1, strlen(d2 + 1), &sig, &siglen), 0);
	assert_int_equal(siglen, 64);
	assert_non_null(s = BN_bin2bn(sig + 32, 32, NULL));
	assert_int_equal(BN_sub(s, EC_GROUP_get0_order(g), s), 1);
	assert_int_equal(BN_bn2binpad(s, sig + 32, 32), 32); /* fixed width: s may begin with 0 */
	assert_int_equal(stk_b64url_encode(sig, siglen, &enc), 0);
	assert_true(asprintf(&out, "%.*s%s", (int)(d2 + 1 - tok), tok, enc) > 0);
	BN_free(s);
	EC_GROUP_free(g);
	free(enc);
	free(sig);
	return out;
}

static void
test_es256_low_s_only(void **state)
{
	/* Attacker 1 re-encodes a captured ES256 token as (r, n - s): a
	 * second valid-looking token for one signature. Issue writes low-s
	 * only (about half of all raw ECDSA signatures are high-s, so 64
	 * tokens all low would not happen by chance), and verify refuses the
	 * high-s twin of each. */
	struct fx *f = *state;
	struct stk_error err;
	char *tok, *twin;
	int i;

	for (i = 0; i < 64; i++) {
		assert_int_equal(stk_issue_client(f->signer, TOKID, CNF, NOW, 86400,
		    &tok, NULL, &err), 0);
		expect_verify(f, tok, STK_TOKEN_CLIENT, NOW + 1, 0, "");
		twin = flip_s(tok);
		expect_verify(f, twin, STK_TOKEN_CLIENT, NOW + 1, STK_E_TOKEN_SIGNATURE, "low-s");
		free(twin);
		stk_token_free(tok);
	}
}

static void
test_es256_high_s_before_the_rule(void **state)
{
	/* A device whose ES256 client token was issued before low-s only
	 * (nbf before STK_ES256_LOW_S_SINCE) must not be locked out by the
	 * upgrade (attacker 6's outcome without an attacker): its high-s twin
	 * still verifies, while the same twin of a token made after the rule
	 * is refused (test above). */
	struct fx *f = *state;
	struct stk_error err;
	char *tok, *twin;
	int64_t old = STK_ES256_LOW_S_SINCE - 86400;

	assert_int_equal(stk_issue_client(f->signer, TOKID, CNF, old, 90 * 86400,
	    &tok, NULL, &err), 0);
	twin = flip_s(tok);
	expect_verify(f, twin, STK_TOKEN_CLIENT, old + 1, 0, "");
	free(twin);
	stk_token_free(tok);
}

#define BOTH(fn) cmocka_unit_test_setup_teardown(fn, setup_rsa, teardown), \
	cmocka_unit_test_setup_teardown(fn, setup_ec, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_bulk_roundtrip),
		BOTH(test_client_roundtrip),
		BOTH(test_flipped_byte_anywhere),
		BOTH(test_verifier_shared_by_threads),
		BOTH(test_alg_none),
		BOTH(test_hs256_with_public_key),
		BOTH(test_header_and_claim_rules),
		BOTH(test_times),
		BOTH(test_base64url_strictness),
		BOTH(test_segments),
		BOTH(test_size_limit),
		BOTH(test_rotation_two_keys),
		BOTH(test_layout_reader_agrees_with_jansson),
		BOTH(test_huge_times_no_overflow),
		BOTH(test_issue_refuses_non_base64url_thumbprint),
		BOTH(test_client_att_claim),
		cmocka_unit_test_setup_teardown(test_es256_low_s_only, setup_ec, teardown),
		cmocka_unit_test_setup_teardown(test_es256_high_s_before_the_rule, setup_ec,
		    teardown),
	};
	return cmocka_run_group_tests(tests, keys_make, keys_remove);
}
