/* OIDC ID tokens, the pure half: JWKS parsing, ID token verification and
 * the JWKS fetch (include/sitetoken/oidc.h). No store here, so the unit
 * test and the fuzz target reach every rule.
 *
 * The rules are those of our own tokens (RFC 8725): the key fixes the
 * algorithm, the token does not choose it; exact iss and aud; integer time
 * claims with STK_OIDC_LEEWAY; a size limit; strict base64url and strict
 * JSON (duplicate members refused); crit refused; jku, x5u, jwk and x5c
 * never followed (keys come only from the issuer's configured JWKS). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include "sitetoken/key.h"
#include "sitetoken/log.h"
#include "sitetoken/oidc.h"
#include "sitetoken/token.h"

enum jwk_alg { JWK_RS256 = 1, JWK_ES256 };

struct jwk {
	char kid[STK_OIDC_CLAIM_MAX + 1];
	enum jwk_alg alg;
	EVP_PKEY *pk;
};

struct stk_jwks {
	struct jwk k[STK_OIDC_KEYS_MAX];
	size_t n;
};

void
stk_oidc_issuer_clear(struct stk_oidc_issuer *i)
{
	if (i == NULL)
		return;
	free(i->jwks);
	free(i->jwks_ca);
	free(i->endorsement);
	memset(i, 0, sizeof(*i));
}

void
stk_jwks_free(struct stk_jwks *k)
{
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; i < k->n; i++)
		EVP_PKEY_free(k->k[i].pk);
	free(k);
}

size_t
stk_jwks_count(const struct stk_jwks *k)
{
	return k == NULL ? 0 : k->n;
}

const char *
stk_jwks_kid(const struct stk_jwks *k, size_t i)
{
	return k == NULL || i >= k->n ? NULL : k->k[i].kid;
}

const char *
stk_jwks_alg(const struct stk_jwks *k, size_t i)
{
	if (k == NULL || i >= k->n)
		return NULL;
	return k->k[i].alg == JWK_RS256 ? "RS256" : "ES256";
}

/* A claim value we record (audit, logs) or compare: 1..max characters of a
 * small alphabet, so no control character or separator reaches a log line. */
static int
oidc_sane(const char *v, size_t max)
{
	size_t n = 0;

	if (v == NULL || *v == '\0')
		return 0;
	for (; *v; v++, n++)
		if (n >= max || !(isalnum((unsigned char)*v) || strchr("._:@/+=-", *v)))
			return 0;
	return 1;
}

/* A member decoded from base64url (strict) into *out; 0 or -1. */
static int
jwk_b64(json_t *o, const char *name, unsigned char **out, size_t *len)
{
	json_t *v = json_object_get(o, name);

	*out = NULL;
	*len = 0;
	if (!json_is_string(v))
		return -1;
	return stk_b64url_decode(json_string_value(v), json_string_length(v), out, len) == 0 &&
	    *len > 0 ? 0 : -1;
}

static EVP_PKEY *
jwk_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pk = NULL;

	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pk = NULL;
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	return pk;
}

/* RSA from n and e. *bits set for a key too small or too large (pk NULL). */
static EVP_PKEY *
jwk_rsa(json_t *o, int *bits, const char **why)
{
	unsigned char *n = NULL, *e = NULL;
	size_t nlen, elen;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pk = NULL;

	*bits = 0;
	*why = "n and e must be base64url";
	if (jwk_b64(o, "n", &n, &nlen) != 0 || jwk_b64(o, "e", &e, &elen) != 0)
		goto out;
	*why = "malformed RSA key";
	if (n[0] == 0 || e[0] == 0 || elen > 8)
		goto out;
	*bits = (int)(nlen * 8);
	{
		unsigned char top = n[0];

		while (!(top & 0x80)) {
			(*bits)--;
			top = (unsigned char)(top << 1);
		}
	}
	if (*bits < STK_OIDC_RSA_MIN_BITS || *bits > STK_OIDC_RSA_MAX_BITS) {
		*why = "RSA key size";
		goto out;
	}
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)elen, NULL)) == NULL || !BN_is_odd(be) ||
	    BN_is_one(be) || (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1)
		goto out;
	pk = jwk_fromdata("RSA", bld);
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	ERR_clear_error();
	return pk;
}

/* EC P-256 from x and y (each 32 bytes), the point checked on the curve. */
static EVP_PKEY *
jwk_ec(json_t *o, const char **why)
{
	unsigned char *x = NULL, *y = NULL, pt[65];
	size_t xlen, ylen;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY_CTX *chk = NULL;
	EVP_PKEY *pk = NULL;

	*why = "x and y must be base64url of 32 bytes each";
	if (jwk_b64(o, "x", &x, &xlen) != 0 || jwk_b64(o, "y", &y, &ylen) != 0 ||
	    xlen != 32 || ylen != 32)
		goto out;
	pt[0] = 0x04;
	memcpy(pt + 1, x, 32);
	memcpy(pt + 33, y, 32);
	*why = "the point is not on P-256";
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    "prime256v1", 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt,
	    sizeof(pt)) != 1)
		goto out;
	if ((pk = jwk_fromdata("EC", bld)) != NULL &&
	    ((chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL ||
	    EVP_PKEY_public_check(chk) != 1)) {
		EVP_PKEY_free(pk);
		pk = NULL;
	}
out:
	EVP_PKEY_CTX_free(chk);
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	ERR_clear_error();
	return pk;
}

/* One JWK. 1: kept in *k; 0: skipped (another use, kty, curve or alg);
 * -1: bad (msg in err), refused in strict mode, skipped otherwise. */
static int
jwk_one(json_t *o, size_t idx, struct jwk *k, struct stk_error *err)
{
	json_t *kty = json_object_get(o, "kty"), *kid = json_object_get(o, "kid");
	json_t *use = json_object_get(o, "use"), *alg = json_object_get(o, "alg");
	const char *why = NULL, *t, *a = NULL;
	int bits = 0;

	memset(k, 0, sizeof(*k));
	if (!json_is_object(o) || !json_is_string(kty))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "JWKS key %zu is not an object with a kty", idx), -1;
	if (use != NULL && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
		return 0;
	if (alg != NULL && !json_is_string(alg))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "JWKS key %zu: alg is not a string", idx), -1;
	a = alg ? json_string_value(alg) : NULL;
	t = json_string_value(kty);
	if (strcmp(t, "RSA") != 0 && strcmp(t, "EC") != 0)
		return 0;  /* "oct" and the rest: never a public signing key */
	if (!json_is_string(kid) || !oidc_sane(json_string_value(kid), STK_OIDC_CLAIM_MAX))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "JWKS key %zu has no kid of 1 to %d characters [A-Za-z0-9._:@/+=-]",
		    idx, STK_OIDC_CLAIM_MAX), -1;
	snprintf(k->kid, sizeof(k->kid), "%s", json_string_value(kid));
	if (strcmp(t, "RSA") == 0) {
		if (a != NULL && strcmp(a, "RS256") != 0)
			return 0;
		k->alg = JWK_RS256;
		if ((k->pk = jwk_rsa(o, &bits, &why)) == NULL) {
			if (bits != 0 && bits < STK_OIDC_RSA_MIN_BITS)
				return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
				    "JWKS key %s: RSA key of %d bits is too small (at least %d)",
				    k->kid, bits, STK_OIDC_RSA_MIN_BITS), -1;
			if (bits > STK_OIDC_RSA_MAX_BITS)
				return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
				    "JWKS key %s: RSA key of %d bits is too large (at most %d)",
				    k->kid, bits, STK_OIDC_RSA_MAX_BITS), -1;
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "JWKS key %s: %s", k->kid, why), -1;
		}
		return 1;
	}
	{
		json_t *crv = json_object_get(o, "crv");

		if (!json_is_string(crv))
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "JWKS key %s: EC key without crv", k->kid), -1;
		if (strcmp(json_string_value(crv), "P-256") != 0) {
			/* P-192 and the like are too weak; larger curves are not ES256. */
			if (strcmp(json_string_value(crv), "P-384") == 0 ||
			    strcmp(json_string_value(crv), "P-521") == 0)
				return 0;
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "JWKS key %s: curve %.20s is not accepted (P-256 only)", k->kid,
			    json_string_value(crv)), -1;
		}
	}
	if (a != NULL && strcmp(a, "ES256") != 0)
		return 0;
	k->alg = JWK_ES256;
	if ((k->pk = jwk_ec(o, &why)) == NULL)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, "JWKS key %s: %s",
		    k->kid, why), -1;
	return 1;
}

int
stk_jwks_parse(const char *json, size_t len, int strict, struct stk_jwks **out,
    struct stk_error *err)
{
	struct stk_jwks *k = NULL;
	struct stk_error e;
	json_error_t je;
	json_t *o = NULL, *keys;
	size_t i, j;
	int r = STK_OK, v;

	*out = NULL;
	if (json == NULL || len == 0 || len > STK_OIDC_JWKS_MAX)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "a JWKS must be 1 to %d bytes", STK_OIDC_JWKS_MAX);
	o = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o) || !json_is_array(keys = json_object_get(o, "keys"))) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "the JWKS is not a strict JSON object with a \"keys\" array%s%.120s",
		    o == NULL ? ": " : "", o == NULL ? je.text : "");
		goto out;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	for (i = 0; i < json_array_size(keys); i++) {
		stk_error_clear(&e);
		if (k->n == STK_OIDC_KEYS_MAX) {
			if (strict) {
				r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
				    "the JWKS has over %d signing keys", STK_OIDC_KEYS_MAX);
				goto out;
			}
			STK_LOG(STK_LOG_WARN, "oidc", "JWKS: keys past the first %d ignored",
			    STK_OIDC_KEYS_MAX);
			break;
		}
		v = jwk_one(json_array_get(keys, i), i, &k->k[k->n], &e);
		for (j = 0; v == 1 && j < k->n; j++)
			if (strcmp(k->k[j].kid, k->k[k->n].kid) == 0) {
				stk_error_set(&e, STK_E_ARG, STK_LAYER_NONE, 0,
				    "JWKS: kid %s appears twice", k->k[j].kid);
				EVP_PKEY_free(k->k[k->n].pk);
				k->k[k->n].pk = NULL;
				v = -1;
			}
		if (v == 1) {
			k->n++;
			continue;
		}
		if (v < 0 && strict) {
			if (err != NULL)
				*err = e;
			r = e.code;
			goto out;
		}
		if (v < 0)
			STK_LOG(STK_LOG_WARN, "oidc", "JWKS key ignored: %s", e.msg);
	}
	if (k->n == 0) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, "the JWKS has no "
		    "usable signing key (RSA of %d bits or more for RS256, EC P-256 for ES256)",
		    STK_OIDC_RSA_MIN_BITS);
		goto out;
	}
	*out = k;
	k = NULL;
out:
	json_decref(o);
	stk_jwks_free(k);
	return r;
}

/* ---- ID tokens ---- */

#define REFUSE(rsn, ...) (*reason = (rsn), stk_error_set(err, STK_E_TOKEN_CLAIMS, \
	STK_LAYER_TOKEN, 0, __VA_ARGS__))

/* Split into three segments and decode header and payload as strict JSON
 * objects. *sig/siglen: the third segment (base64url text). */
static int
idt_split(const char *tok, size_t len, json_t **hdr, json_t **pl, const char **sig,
    size_t *siglen, size_t *signed_len, enum stk_refusal *reason, struct stk_error *err)
{
	const char *d1, *d2, *end = tok + len;
	unsigned char *raw = NULL;
	json_error_t je;
	size_t rawlen, i;
	json_t **slot[2];
	const char *seg[2];
	size_t seglen[2];

	*hdr = *pl = NULL;
	*reason = STK_REFUSAL_IDTOKEN_INVALID;
	if (tok == NULL || len == 0)
		return REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "empty ID token");
	if (len > STK_OIDC_TOKEN_MAX)
		return REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "the ID token is over %d bytes",
		    STK_OIDC_TOKEN_MAX);
	if ((d1 = memchr(tok, '.', len)) == NULL ||
	    (d2 = memchr(d1 + 1, '.', (size_t)(end - d1 - 1))) == NULL ||
	    memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
		return REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "the ID token is not three "
		    "base64url segments (JWS compact serialization)");
	seg[0] = tok;
	seglen[0] = (size_t)(d1 - tok);
	seg[1] = d1 + 1;
	seglen[1] = (size_t)(d2 - d1 - 1);
	slot[0] = hdr;
	slot[1] = pl;
	for (i = 0; i < 2; i++) {
		if (stk_b64url_decode(seg[i], seglen[i], &raw, &rawlen) != 0) {
			json_decref(*hdr);
			*hdr = NULL;
			return REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token %s is not strict "
			    "base64url", i == 0 ? "header" : "payload");
		}
		*slot[i] = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, &je);
		free(raw);
		raw = NULL;
		if (*slot[i] == NULL || !json_is_object(*slot[i])) {
			json_decref(*hdr);
			json_decref(*pl);
			*hdr = *pl = NULL;
			return REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token %s is not a strict "
			    "JSON object (duplicate members are refused)%s%.100s",
			    i == 0 ? "header" : "payload", je.text[0] ? ": " : "", je.text);
		}
	}
	*sig = d2 + 1;
	*siglen = (size_t)(end - d2 - 1);
	*signed_len = (size_t)(d2 - tok);
	return STK_OK;
}

int
stk_idtoken_peek_issuer(const char *token, size_t len,
    char iss[STK_OIDC_ISSUER_MAX + 1], enum stk_refusal *reason,
    struct stk_error *err)
{
	json_t *hdr = NULL, *pl = NULL, *v;
	const char *sig;
	size_t siglen, slen;
	int r;

	iss[0] = '\0';
	if ((r = idt_split(token, len, &hdr, &pl, &sig, &siglen, &slen, reason, err)) != 0)
		return r;
	v = json_object_get(pl, "iss");
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > STK_OIDC_ISSUER_MAX ||
	    strlen(json_string_value(v)) != json_string_length(v))
		r = REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "the ID token has no iss of 1 to %d "
		    "characters", STK_OIDC_ISSUER_MAX);
	else
		snprintf(iss, STK_OIDC_ISSUER_MAX + 1, "%s", json_string_value(v));
	json_decref(hdr);
	json_decref(pl);
	return r;
}

/* Signature over header.payload with the JWK's key and algorithm. */
static int
idt_sig(const struct jwk *k, const char *input, size_t inlen, const char *sig_b64,
    size_t sig_b64len)
{
	unsigned char *sig = NULL, *der = NULL;
	size_t siglen = 0, derlen = 0;
	EVP_MD_CTX *md = NULL;
	int ok = 0;

	if (stk_b64url_decode(sig_b64, sig_b64len, &sig, &siglen) != 0)
		return -1;
	if (k->alg == JWK_RS256) {
		if (siglen != (size_t)EVP_PKEY_get_size(k->pk))
			goto out;
	} else {
		if (siglen != 64 || stk_ecdsa_raw_to_der(sig, siglen, &der, &derlen) != 0)
			goto out;
	}
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pk) != 1)
		goto out;
	ok = EVP_DigestVerify(md, der ? der : sig, der ? derlen : siglen,
	    (const unsigned char *)input, inlen) == 1;
out:
	EVP_MD_CTX_free(md);
	free(sig);
	free(der);
	ERR_clear_error();
	return ok ? 0 : -1;
}

/* An integer time claim: -1 absent, 0 present (in *t), -2 not an integer. */
static int
idt_time(json_t *pl, const char *name, int64_t *t)
{
	json_t *v = json_object_get(pl, name);

	*t = 0;
	if (v == NULL)
		return -1;
	if (!json_is_integer(v))
		return -2;
	*t = (int64_t)json_integer_value(v);
	return 0;
}

int
stk_idtoken_verify(const struct stk_oidc_issuer *is, const struct stk_jwks *keys,
    const char *token, size_t len, int64_t now, struct stk_idtoken *out,
    enum stk_refusal *reason, struct stk_error *err)
{
	json_t *hdr = NULL, *pl = NULL, *v, *alg, *kid, *typ;
	const struct jwk *k = NULL;
	const char *sig, *a;
	size_t siglen, slen, i;
	int64_t exp, nbf, iat;
	int r, t;

	memset(out, 0, sizeof(*out));
	*reason = STK_REFUSAL_IDTOKEN_INVALID;
	if ((r = idt_split(token, len, &hdr, &pl, &sig, &siglen, &slen, reason, err)) != 0)
		return r;
	/* Header: the JWK decides the algorithm; "none" and HMAC never pass. */
	alg = json_object_get(hdr, "alg");
	kid = json_object_get(hdr, "kid");
	typ = json_object_get(hdr, "typ");
	if (!json_is_string(alg)) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token header has no alg");
		goto out;
	}
	a = json_string_value(alg);
	if (strcmp(a, "RS256") != 0 && strcmp(a, "ES256") != 0) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token alg %.20s is refused "
		    "(RS256 or ES256 only; never none or HMAC)", a);
		goto out;
	}
	if (json_object_get(hdr, "crit") != NULL) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token header has crit");
		goto out;
	}
	if (typ != NULL && (!json_is_string(typ) ||
	    strcasecmp(json_string_value(typ), "JWT") != 0)) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token typ must be JWT");
		goto out;
	}
	if (!json_is_string(kid) || !oidc_sane(json_string_value(kid), STK_OIDC_CLAIM_MAX)) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token header has no usable kid");
		goto out;
	}
	for (i = 0; i < stk_jwks_count(keys); i++)
		if (strcmp(keys->k[i].kid, json_string_value(kid)) == 0)
			k = &keys->k[i];
	snprintf(out->kid, sizeof(out->kid), "%s", json_string_value(kid));
	if (k == NULL) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_KEY, "ID token kid %s is not in the JWKS of %.100s",
		    out->kid, is->issuer);
		goto out;
	}
	if (strcmp(a, k->alg == JWK_RS256 ? "RS256" : "ES256") != 0) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token alg %s does not match key "
		    "%s (%s)", a, k->kid, k->alg == JWK_RS256 ? "RS256" : "ES256");
		goto out;
	}
	if (idt_sig(k, token, slen, sig, siglen) != 0) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token signature does not verify "
		    "with key %s", k->kid);
		goto out;
	}
	/* Claims. */
	v = json_object_get(pl, "iss");
	if (!json_is_string(v) || strcmp(json_string_value(v), is->issuer) != 0 ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token iss is not %.100s", is->issuer);
		goto out;
	}
	snprintf(out->issuer, sizeof(out->issuer), "%s", is->issuer);
	v = json_object_get(pl, "aud");
	t = 0;
	if (json_is_string(v))
		t = strcmp(json_string_value(v), is->audience) == 0;
	else if (json_is_array(v) && json_array_size(v) > 0) {
		for (i = 0; i < json_array_size(v); i++) {
			json_t *e = json_array_get(v, i);

			if (!json_is_string(e)) {
				t = -1;
				break;
			}
			if (strcmp(json_string_value(e), is->audience) == 0)
				t = 1;
		}
	} else
		t = -1;
	if (t < 0) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token aud must be a string or an "
		    "array of strings");
		goto out;
	}
	if (t == 0) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_AUDIENCE, "ID token aud does not name %.100s",
		    is->audience);
		goto out;
	}
	if (idt_time(pl, "exp", &exp) != 0 || idt_time(pl, "iat", &iat) == -2 ||
	    idt_time(pl, "nbf", &nbf) == -2) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token time claims must be "
		    "integers (exp required)");
		goto out;
	}
	if (now >= exp + STK_OIDC_LEEWAY) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_EXPIRED, "ID token expired at %lld",
		    (long long)exp);
		goto out;
	}
	if (idt_time(pl, "nbf", &nbf) == 0 && now + STK_OIDC_LEEWAY < nbf) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_EXPIRED, "ID token is not valid before %lld",
		    (long long)nbf);
		goto out;
	}
	if (idt_time(pl, "iat", &iat) == 0 && now + STK_OIDC_LEEWAY < iat) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_EXPIRED, "ID token was issued in the future "
		    "(iat %lld)", (long long)iat);
		goto out;
	}
	out->exp = exp;
	if (is->tenant[0] != '\0') {
		v = json_object_get(pl, "tid");
		if (!json_is_string(v) || strcmp(json_string_value(v), is->tenant) != 0) {
			r = REFUSE(STK_REFUSAL_IDTOKEN_TENANT, "ID token tid is not %.100s",
			    is->tenant);
			goto out;
		}
	}
	v = json_object_get(pl, "sub");
	if (!json_is_string(v) || !oidc_sane(json_string_value(v), STK_OIDC_CLAIM_MAX)) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_INVALID, "ID token sub must be 1 to %d "
		    "characters [A-Za-z0-9._:@/+=-]", STK_OIDC_CLAIM_MAX);
		goto out;
	}
	snprintf(out->sub, sizeof(out->sub), "%s", json_string_value(v));
	v = json_object_get(pl, is->device_claim);
	if (!json_is_string(v) || !oidc_sane(json_string_value(v), STK_OIDC_CLAIM_MAX)) {
		r = REFUSE(STK_REFUSAL_IDTOKEN_DEVICE, "ID token claim %s must name the "
		    "device: 1 to %d characters [A-Za-z0-9._:@/+=-]", is->device_claim,
		    STK_OIDC_CLAIM_MAX);
		goto out;
	}
	snprintf(out->device, sizeof(out->device), "%s", json_string_value(v));
	*reason = STK_REFUSAL_NONE;
	r = STK_OK;
out:
	if (r != 0) {
		char kidsave[sizeof(out->kid)];

		memcpy(kidsave, out->kid, sizeof(kidsave));
		memset(out, 0, sizeof(*out));
		memcpy(out->kid, kidsave, sizeof(kidsave));
	}
	json_decref(hdr);
	json_decref(pl);
	return r;
}

/* ---- JWKS over https ---- */

struct fetch_buf {
	char *p;
	size_t n;
	int over;
};

static size_t
fetch_write(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct fetch_buf *b = ctx;
	size_t len = size * nmemb;
	char *np;

	if (b->n + len > STK_OIDC_JWKS_MAX) {
		b->over = 1;
		return 0;
	}
	if ((np = realloc(b->p, b->n + len + 1)) == NULL)
		return 0;
	b->p = np;
	memcpy(b->p + b->n, data, len);
	b->n += len;
	b->p[b->n] = '\0';
	return len;
}

int
stk_jwks_fetch(const char *url, const char *ca_pem, char **out, size_t *len,
    struct stk_error *err)
{
	struct fetch_buf b = { NULL, 0, 0 };
	struct curl_blob blob;
	CURL *c = NULL;
	CURLcode cc;
	long status = 0;
	int r = STK_OK;

	*out = NULL;
	*len = 0;
	if (url == NULL || strncmp(url, "https://", 8) != 0)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "a JWKS URL must be https://");
	if ((c = curl_easy_init()) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "curl_easy_init failed");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)STK_OIDC_FETCH_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fetch_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (ca_pem != NULL) {
		blob.data = (void *)(uintptr_t)ca_pem;
		blob.len = strlen(ca_pem);
		blob.flags = CURL_BLOB_COPY;
		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	}
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (b.over)
		r = stk_error_set(err, STK_E_IO, STK_LAYER_NONE, 0, "JWKS at %.200s is over "
		    "%d bytes", url, STK_OIDC_JWKS_MAX);
	else if (cc != CURLE_OK)
		r = stk_error_set(err, STK_E_IO, STK_LAYER_NONE, (unsigned long)cc,
		    "cannot fetch the JWKS at %.200s: %s", url, curl_easy_strerror(cc));
	else if (status != 200 || b.n == 0)
		r = stk_error_set(err, STK_E_IO, STK_LAYER_NONE, 0, "JWKS at %.200s: HTTP "
		    "%ld%s", url, status, b.n == 0 ? ", empty" : "");
	curl_easy_cleanup(c);
	if (r != 0) {
		free(b.p);
		return r;
	}
	*out = b.p;
	*len = b.n;
	return STK_OK;
}
