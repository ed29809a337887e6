/* Key attestation, verifier side: evidence JSON, the auditor's checks,
 * TPM2_MakeCredential in software, tpm2-tools' credential file format.
 * Needs no TPM: TPM structures are unmarshalled with libtss2-mu only. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>
#include "sitetoken/attest.h"
#include "sitetoken/token.h"

#define CRED_MAGIC 0xBADCC0DEu
#define CRED_VERSION 1u
#define NAME_LEN (2 + 32)
/* TPM_GENERATED_VALUE; tss2_tpm2_types.h's macro is fine, spelled out for
 * the reader. */
#define ATT_GENERATED 0xff544347u

/* The only TPMA_OBJECT bits a non-exportable, TPM-made signing key and a
 * proper AK must have. */
#define ATT_KEY_BITS (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | \
	TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_SIGN_ENCRYPT)

static void
att_blob_free(struct stk_blob *b)
{
	if (b->p != NULL) {
		OPENSSL_cleanse(b->p, b->len);
		free(b->p);
	}
	b->p = NULL;
	b->len = 0;
}

void
stk_attest_evidence_free(struct stk_attest_evidence *ev)
{
	size_t i;

	if (ev == NULL)
		return;
	att_blob_free(&ev->sig);
	att_blob_free(&ev->cert_info);
	att_blob_free(&ev->pub_area);
	att_blob_free(&ev->ak_pub);
	att_blob_free(&ev->ek_cert);
	for (i = 0; i < ev->nchain; i++)
		att_blob_free(&ev->chain[i]);
	free(ev);
}

static int
att_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
stk_attest_nonce_parse(const char *hex, unsigned char *out, size_t *len,
    struct stk_error *err)
{
	size_t n = hex != NULL ? strlen(hex) : 0, i;
	int hi, lo;

	*len = 0;
	if (n % 2 != 0 || n / 2 < STK_ATTEST_NONCE_MIN ||
	    n / 2 > STK_ATTEST_NONCE_MAX)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "the nonce must be %d to %d bytes of hex (an even number of "
		    "digits), fresh for every attestation", STK_ATTEST_NONCE_MIN,
		    STK_ATTEST_NONCE_MAX);
	for (i = 0; i < n / 2; i++) {
		hi = att_hexval((unsigned char)hex[2 * i]);
		lo = att_hexval((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "the nonce is not hex");
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	*len = n / 2;
	return STK_OK;
}

static void
att_hex(const unsigned char *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ---- JSON --------------------------------------------------------------- */

static int
att_b64_member(json_t *obj, const char *name, const char *where,
    struct stk_blob *out, struct stk_error *err)
{
	json_t *v = json_object_get(obj, name);
	const char *s;

	if (v == NULL || !json_is_string(v))
		return stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "evidence: %s\"%s\" is missing or not a string", where, name);
	s = json_string_value(v);
	if (json_string_length(v) == 0 ||
	    stk_b64url_decode(s, json_string_length(v), &out->p, &out->len) != 0) {
		out->p = NULL;
		out->len = 0;
		return stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "evidence: %s\"%s\" is not strict base64url", where, name);
	}
	return STK_OK;
}

int
stk_attest_evidence_parse(const char *json, size_t len,
    struct stk_attest_evidence **out, struct stk_error *err)
{
	struct stk_attest_evidence *ev = NULL;
	json_t *j = NULL, *st, *v, *e;
	json_error_t jerr;
	size_t i;
	int r;

	*out = NULL;
	if (len > STK_ATTEST_JSON_MAX)
		return stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "evidence: larger than %d bytes", STK_ATTEST_JSON_MAX);
	j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL || !json_is_object(j)) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "evidence: not a JSON object (%s)", j == NULL ? jerr.text :
		    "wrong type");
		goto out;
	}
	if ((ev = calloc(1, sizeof(*ev))) == NULL) {
		r = STK_E_NOMEM;
		goto out;
	}
	v = json_object_get(j, "fmt");
	if (!json_is_string(v) || strcmp(json_string_value(v), "tpm") != 0) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "evidence: \"fmt\" is not \"tpm\"");
		goto out;
	}
	st = json_object_get(j, "attStmt");
	if (!json_is_object(st)) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "evidence: \"attStmt\" is missing or not an object");
		goto out;
	}
	v = json_object_get(st, "ver");
	if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "evidence: attStmt \"ver\" is not \"2.0\"");
		goto out;
	}
	v = json_object_get(st, "alg");
	if (!json_is_integer(v) || (json_integer_value(v) != STK_COSE_RS256 &&
	    json_integer_value(v) != STK_COSE_ES256)) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "evidence: attStmt \"alg\" is not -257 (RS256) or -7 (ES256)");
		goto out;
	}
	ev->alg = (int)json_integer_value(v);
	if ((r = att_b64_member(st, "sig", "attStmt ", &ev->sig, err)) != 0 ||
	    (r = att_b64_member(st, "certInfo", "attStmt ", &ev->cert_info, err)) != 0 ||
	    (r = att_b64_member(st, "pubArea", "attStmt ", &ev->pub_area, err)) != 0 ||
	    (r = att_b64_member(j, "akPub", "", &ev->ak_pub, err)) != 0 ||
	    (r = att_b64_member(j, "ekCert", "", &ev->ek_cert, err)) != 0)
		goto out;
	v = json_object_get(j, "ekChain");
	if (v != NULL && !json_is_array(v)) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "evidence: \"ekChain\" is not an array");
		goto out;
	}
	if (json_array_size(v) > STK_ATTEST_CHAIN_MAX) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "evidence: more than %d certificates in \"ekChain\"",
		    STK_ATTEST_CHAIN_MAX);
		goto out;
	}
	json_array_foreach(v, i, e) {
		struct stk_blob *b = &ev->chain[ev->nchain];

		if (!json_is_string(e) || json_string_length(e) == 0 ||
		    stk_b64url_decode(json_string_value(e), json_string_length(e),
		    &b->p, &b->len) != 0) {
			b->p = NULL;
			b->len = 0;
			r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
			    "evidence: \"ekChain\"[%zu] is not strict base64url", i);
			goto out;
		}
		ev->nchain++;
	}
	v = json_object_get(j, "nonce");
	if (!json_is_string(v) || stk_attest_nonce_parse(json_string_value(v),
	    ev->nonce, &ev->nonce_len, NULL) != 0) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "evidence: \"nonce\" is missing or not %d..%d bytes of hex",
		    STK_ATTEST_NONCE_MIN, STK_ATTEST_NONCE_MAX);
		goto out;
	}
	*out = ev;
	ev = NULL;
	r = STK_OK;
out:
	stk_attest_evidence_free(ev);
	json_decref(j);
	return r;
}

static int
att_set_b64(json_t *obj, const char *name, const struct stk_blob *b)
{
	char *s = NULL;

	if (stk_b64url_encode(b->p, b->len, &s) != 0)
		return STK_E_NOMEM;
	if (json_object_set_new(obj, name, json_string(s)) != 0) {
		free(s);
		return STK_E_NOMEM;
	}
	free(s);
	return STK_OK;
}

int
stk_attest_evidence_json(const struct stk_attest_evidence *ev, char **out,
    struct stk_error *err)
{
	json_t *j = json_object(), *st = json_object(), *ch = json_array();
	char nonce[2 * STK_ATTEST_NONCE_MAX + 1], *txt = NULL, *b64 = NULL;
	size_t i;
	int r = STK_E_NOMEM;

	*out = NULL;
	if (j == NULL || st == NULL || ch == NULL)
		goto out;
	att_hex(ev->nonce, ev->nonce_len, nonce);
	if (json_object_set_new(st, "ver", json_string("2.0")) != 0 ||
	    json_object_set_new(st, "alg", json_integer(ev->alg)) != 0 ||
	    att_set_b64(st, "sig", &ev->sig) != 0 ||
	    att_set_b64(st, "certInfo", &ev->cert_info) != 0 ||
	    att_set_b64(st, "pubArea", &ev->pub_area) != 0)
		goto out;
	for (i = 0; i < ev->nchain; i++) {
		if (stk_b64url_encode(ev->chain[i].p, ev->chain[i].len, &b64) != 0 ||
		    json_array_append_new(ch, json_string(b64)) != 0)
			goto out;
		free(b64);
		b64 = NULL;
	}
	if (json_object_set_new(j, "fmt", json_string("tpm")) != 0 ||
	    json_object_set(j, "attStmt", st) != 0 ||
	    att_set_b64(j, "akPub", &ev->ak_pub) != 0 ||
	    att_set_b64(j, "ekCert", &ev->ek_cert) != 0 ||
	    json_object_set(j, "ekChain", ch) != 0 ||
	    json_object_set_new(j, "nonce", json_string(nonce)) != 0)
		goto out;
	if ((txt = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) == NULL)
		goto out;
	if ((*out = malloc(strlen(txt) + 2)) == NULL)
		goto out;
	snprintf(*out, strlen(txt) + 2, "%s\n", txt);
	r = STK_OK;
out:
	if (r != STK_OK)
		stk_error_set(err, r, STK_LAYER_NONE, 0,
		    "out of memory writing the evidence");
	free(txt);
	free(b64);
	json_decref(st);
	json_decref(ch);
	json_decref(j);
	return r;
}

/* ---- TPM structures ------------------------------------------------------ */

/* Unmarshal a whole TPMT_PUBLIC: trailing bytes are refused, so a padded
 * blob cannot carry something the signature does not cover. */
static int
att_public(const struct stk_blob *b, const char *what, TPMT_PUBLIC *p,
    struct stk_error *err)
{
	size_t off = 0;

	memset(p, 0, sizeof(*p));
	if (Tss2_MU_TPMT_PUBLIC_Unmarshal(b->p, b->len, &off, p) != TSS2_RC_SUCCESS)
		return stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "%s is not a TPMT_PUBLIC (truncated or malformed)", what);
	if (off != b->len)
		return stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "%s has %zu bytes after its TPMT_PUBLIC (padded)", what,
		    b->len - off);
	return STK_OK;
}

static int
att_name(const unsigned char *pub, size_t len, TPMI_ALG_HASH alg,
    unsigned char name[NAME_LEN], struct stk_error *err)
{
	if (alg != TPM2_ALG_SHA256)
		return stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "nameAlg 0x%04x is not SHA-256", (unsigned)alg);
	name[0] = (unsigned char)(alg >> 8);
	name[1] = (unsigned char)alg;
	if (EVP_Digest(pub, len, name + 2, NULL, EVP_sha256(), NULL) != 1)
		return stk_error_openssl(err, STK_E_CRYPTO, "SHA-256");
	return STK_OK;
}

int
stk_attest_name_hex(const unsigned char *tpmt_public, size_t len, char *hex,
    size_t hexlen, struct stk_error *err)
{
	struct stk_blob b = { (unsigned char *)(uintptr_t)tpmt_public, len };
	unsigned char name[NAME_LEN];
	TPMT_PUBLIC p;
	int r;

	if (hexlen < 2 * NAME_LEN + 1)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "name buffer too small");
	if ((r = att_public(&b, "public area", &p, err)) != 0 ||
	    (r = att_name(tpmt_public, len, p.nameAlg, name, err)) != 0)
		return r;
	att_hex(name, NAME_LEN, hex);
	return STK_OK;
}

/* The public key of a TPMT_PUBLIC as an EVP_PKEY (RSA-2048+ or P-256). */
static int
att_pkey(const TPMT_PUBLIC *p, const char *what, EVP_PKEY **out,
    struct stk_error *err)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	BIGNUM *n = NULL, *e = NULL;
	unsigned char pt[65];
	int r;

	*out = NULL;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL) {
		r = STK_E_NOMEM;
		goto out;
	}
	if (p->type == TPM2_ALG_RSA) {
		UINT32 exp = p->parameters.rsaDetail.exponent ?
		    p->parameters.rsaDetail.exponent : 65537;

		if (p->parameters.rsaDetail.keyBits < 2048 ||
		    p->unique.rsa.size * 8u != p->parameters.rsaDetail.keyBits) {
			r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
			    "%s: RSA key smaller than 2048 bits or of the wrong "
			    "size", what);
			goto out;
		}
		n = BN_bin2bn(p->unique.rsa.buffer, p->unique.rsa.size, NULL);
		e = BN_new();
		if (n == NULL || e == NULL || BN_set_word(e, exp) != 1 ||
		    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
		    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1) {
			r = STK_E_NOMEM;
			goto out;
		}
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	} else if (p->type == TPM2_ALG_ECC &&
	    p->parameters.eccDetail.curveID == TPM2_ECC_NIST_P256 &&
	    p->unique.ecc.x.size == 32 && p->unique.ecc.y.size == 32) {
		pt[0] = 0x04;
		memcpy(pt + 1, p->unique.ecc.x.buffer, 32);
		memcpy(pt + 33, p->unique.ecc.y.buffer, 32);
		if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
		    "P-256", 0) != 1 ||
		    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
		    pt, sizeof(pt)) != 1) {
			r = STK_E_NOMEM;
			goto out;
		}
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	} else {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "%s is neither RSA (2048 bits or more) nor ECC P-256", what);
		goto out;
	}
	if (ctx == NULL || (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		*out = NULL;
		r = stk_error_openssl(err, STK_E_ATTEST, "%s: not a valid public "
		    "key", what);
		goto out;
	}
	r = STK_OK;
out:
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	return r;
}

int
stk_attest_roots_load(const char *path, X509_STORE **out, struct stk_error *err)
{
	X509_STORE *st = NULL;
	int r;

	*out = NULL;
	if ((st = X509_STORE_new()) == NULL)
		return STK_E_NOMEM;
	if (X509_STORE_load_file(st, path) != 1) {
		r = stk_error_openssl(err, STK_E_IO, "cannot read EK root "
		    "certificates from %s", path);
		goto out;
	}
	*out = st;
	st = NULL;
	r = STK_OK;
out:
	X509_STORE_free(st);
	return r;
}

static X509 *
att_x509(const struct stk_blob *b)
{
	const unsigned char *p = b->p;
	X509 *x = d2i_X509(NULL, &p, (long)b->len);

	/* A DER certificate with bytes after it is not what was signed. */
	if (x != NULL && p != b->p + b->len) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

static int
att_check_chain(const struct stk_attest_evidence *ev, X509_STORE *roots,
    struct stk_attest_result *res, struct stk_error *err)
{
	X509_STORE_CTX *ctx = NULL;
	STACK_OF(X509) *chain = NULL;
	X509 *ek = NULL, *x;
	size_t i;
	int r, vr;

	if ((ek = att_x509(&ev->ek_cert)) == NULL) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "ekCert is not one DER X.509 certificate");
		goto out;
	}
	if ((chain = sk_X509_new_null()) == NULL) {
		r = STK_E_NOMEM;
		goto out;
	}
	for (i = 0; i < ev->nchain; i++) {
		if ((x = att_x509(&ev->chain[i])) == NULL) {
			r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
			    "ekChain[%zu] is not one DER X.509 certificate", i);
			goto out;
		}
		if (sk_X509_push(chain, x) <= 0) {
			X509_free(x);
			r = STK_E_NOMEM;
			goto out;
		}
	}
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, roots, ek, chain) != 1) {
		r = STK_E_NOMEM;
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		vr = X509_STORE_CTX_get_error(ctx);
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_OPENSSL,
		    (unsigned long)vr, "EK certificate does not chain to a trusted "
		    "EK root: %s (evidence from another TPM, or the wrong "
		    "--ek-ca)", X509_verify_cert_error_string(vr));
		goto out;
	}
	if (res != NULL) {
		X509_NAME_oneline(X509_get_subject_name(ek), res->ek_subject,
		    (int)sizeof(res->ek_subject));
		X509_NAME_oneline(X509_get_issuer_name(ek), res->ek_issuer,
		    (int)sizeof(res->ek_issuer));
	}
	r = STK_OK;
out:
	X509_STORE_CTX_free(ctx);
	sk_X509_pop_free(chain, X509_free);
	X509_free(ek);
	return r;
}

/* The AK must be a restricted signing key made in a TPM: only such a key
 * refuses to sign data that starts with TPM_GENERATED, so only its
 * signature over a TPMS_ATTEST means the TPM produced that structure. */
static int
att_check_ak(const TPMT_PUBLIC *ak, int alg, struct stk_error *err)
{
	TPMA_OBJECT a = ak->objectAttributes;

	if (!(a & TPMA_OBJECT_RESTRICTED))
		return stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "the AK is not a restricted key: an unrestricted key can "
		    "sign a forged TPMS_ATTEST");
	if (!(a & TPMA_OBJECT_SIGN_ENCRYPT) || (a & TPMA_OBJECT_DECRYPT))
		return stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "the AK is not a signing-only key");
	if ((a & (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
	    TPMA_OBJECT_SENSITIVEDATAORIGIN)) != (TPMA_OBJECT_FIXEDTPM |
	    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN))
		return stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "the AK lacks fixedTPM, fixedParent or sensitiveDataOrigin");
	if (ak->type == TPM2_ALG_RSA && alg == STK_COSE_RS256 &&
	    ak->parameters.rsaDetail.scheme.scheme == TPM2_ALG_RSASSA &&
	    ak->parameters.rsaDetail.scheme.details.rsassa.hashAlg == TPM2_ALG_SHA256)
		return STK_OK;
	if (ak->type == TPM2_ALG_ECC && alg == STK_COSE_ES256 &&
	    ak->parameters.eccDetail.scheme.scheme == TPM2_ALG_ECDSA &&
	    ak->parameters.eccDetail.scheme.details.ecdsa.hashAlg == TPM2_ALG_SHA256)
		return STK_OK;
	return stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
	    "the AK's scheme is not the evidence's alg %d (RSASSA-SHA256 for "
	    "-257, ECDSA-SHA256 for -7)", alg);
}

static int
att_check_sig(const struct stk_attest_evidence *ev, EVP_PKEY *akey,
    struct stk_error *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int r, ok;

	if (md == NULL)
		return STK_E_NOMEM;
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, akey) != 1) {
		r = stk_error_openssl(err, STK_E_CRYPTO, "signature check set-up");
		goto out;
	}
	ok = EVP_DigestVerify(md, ev->sig.p, ev->sig.len, ev->cert_info.p,
	    ev->cert_info.len);
	if (ok != 1) {
		r = stk_error_openssl(err, STK_E_ATTEST, "the AK's signature over "
		    "certInfo does not verify");
		goto out;
	}
	r = STK_OK;
out:
	EVP_MD_CTX_free(md);
	return r;
}

int
stk_attest_verify(const struct stk_attest_evidence *ev,
    const struct stk_attest_expect *exp, struct stk_attest_result *res,
    struct stk_error *err)
{
	TPMT_PUBLIC ak, key;
	TPMS_ATTEST att;
	EVP_PKEY *akey = NULL, *kkey = NULL;
	unsigned char akname[NAME_LEN], kname[NAME_LEN];
	size_t off = 0;
	TPMA_OBJECT a;
	int r;

	if (res != NULL)
		memset(res, 0, sizeof(*res));
	if (exp == NULL || exp->roots == NULL || exp->nonce == NULL) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "attestation check without trusted EK roots or nonce");
		goto out;
	}
	if (exp->nonce_len != ev->nonce_len ||
	    CRYPTO_memcmp(exp->nonce, ev->nonce, ev->nonce_len) != 0) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "the evidence answers another nonce (stale or replayed "
		    "evidence)");
		goto out;
	}
	/* 1. The EK is a genuine TPM's: its certificate chains to the root. */
	if ((r = att_check_chain(ev, exp->roots, res, err)) != STK_OK)
		goto out;
	/* 2. The AK is a restricted signing key, and it signed certInfo. */
	if ((r = att_public(&ev->ak_pub, "akPub", &ak, err)) != STK_OK ||
	    (r = att_check_ak(&ak, ev->alg, err)) != STK_OK ||
	    (r = att_name(ev->ak_pub.p, ev->ak_pub.len, ak.nameAlg, akname,
	    err)) != STK_OK ||
	    (r = att_pkey(&ak, "akPub", &akey, err)) != STK_OK ||
	    (r = att_check_sig(ev, akey, err)) != STK_OK)
		goto out;
	/* 3. certInfo is the TPM's certify of this pubArea over the nonce. */
	memset(&att, 0, sizeof(att));
	if (Tss2_MU_TPMS_ATTEST_Unmarshal(ev->cert_info.p, ev->cert_info.len,
	    &off, &att) != TSS2_RC_SUCCESS) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "certInfo is not a TPMS_ATTEST (truncated or malformed)");
		goto out;
	}
	if (off != ev->cert_info.len) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "certInfo has %zu bytes after its TPMS_ATTEST (padded)",
		    ev->cert_info.len - off);
		goto out;
	}
	if (att.magic != ATT_GENERATED) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "certInfo magic is not TPM_GENERATED: not made by a TPM");
		goto out;
	}
	if (att.type != TPM2_ST_ATTEST_CERTIFY) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "certInfo is not a TPM2_Certify result (type 0x%04x)",
		    (unsigned)att.type);
		goto out;
	}
	if (att.extraData.size != exp->nonce_len ||
	    CRYPTO_memcmp(att.extraData.buffer, exp->nonce, exp->nonce_len) != 0) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "certInfo extraData is not the nonce: the TPM certified "
		    "for another challenge (replayed evidence)");
		goto out;
	}
	if ((r = att_public(&ev->pub_area, "pubArea", &key, err)) != STK_OK ||
	    (r = att_name(ev->pub_area.p, ev->pub_area.len, key.nameAlg, kname,
	    err)) != STK_OK)
		goto out;
	if (att.attested.certify.name.size != NAME_LEN ||
	    memcmp(att.attested.certify.name.name, kname, NAME_LEN) != 0) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "certInfo certifies another key: its name is not "
		    "Name(pubArea)");
		goto out;
	}
	/* 4. The key cannot leave the TPM and was made inside it. */
	a = key.objectAttributes;
	if ((a & ATT_KEY_BITS) != ATT_KEY_BITS) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "the key lacks %s%s%s%s: it may have been imported or may "
		    "be duplicated out of the TPM",
		    (a & TPMA_OBJECT_FIXEDTPM) ? "" : "fixedTPM ",
		    (a & TPMA_OBJECT_FIXEDPARENT) ? "" : "fixedParent ",
		    (a & TPMA_OBJECT_SENSITIVEDATAORIGIN) ? "" :
		    "sensitiveDataOrigin ",
		    (a & TPMA_OBJECT_SIGN_ENCRYPT) ? "" : "sign");
		goto out;
	}
	/* 5. The key is the one in question. */
	if ((r = att_pkey(&key, "pubArea", &kkey, err)) != STK_OK)
		goto out;
	if (exp->key != NULL && EVP_PKEY_eq(kkey, exp->key) != 1) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "pubArea is not the expected key (the site certificate's)");
		goto out;
	}
	if (res != NULL) {
		att_hex(akname, NAME_LEN, res->ak_name);
		att_hex(kname, NAME_LEN, res->key_name);
		snprintf(res->key_type, sizeof(res->key_type), "%s",
		    stk_key_type_name(stk_key_type_of_pkey(kkey)) ?
		    stk_key_type_name(stk_key_type_of_pkey(kkey)) : "other");
		res->clock = (unsigned long long)att.clockInfo.clock;
	}
	r = STK_OK;
out:
	EVP_PKEY_free(akey);
	EVP_PKEY_free(kkey);
	return r;
}

/* ---- credential ---------------------------------------------------------- */

/* KDFa (TPM 2.0 Part 1, 11.4.10.2) with SHA-256, HMAC counter mode. The
 * label includes its terminating NUL, as the TPM hashes it. */
static int
att_kdfa(const unsigned char *key, size_t keylen, const char *label,
    const unsigned char *u, size_t ulen, size_t bits, unsigned char *out)
{
	unsigned char cnt[4], b[4], h[32];
	size_t done = 0, n, want = bits / 8;
	uint32_t i = 1;
	int r = STK_E_CRYPTO;

	b[0] = (unsigned char)(bits >> 24);
	b[1] = (unsigned char)(bits >> 16);
	b[2] = (unsigned char)(bits >> 8);
	b[3] = (unsigned char)bits;
	while (done < want) {
		EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
		EVP_MAC_CTX *mc = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
		OSSL_PARAM p[2] = {
			OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
			OSSL_PARAM_construct_end(),
		};
		size_t ol = 0;
		int ok;

		cnt[0] = (unsigned char)(i >> 24);
		cnt[1] = (unsigned char)(i >> 16);
		cnt[2] = (unsigned char)(i >> 8);
		cnt[3] = (unsigned char)i;
		ok = mc != NULL && EVP_MAC_init(mc, key, keylen, p) == 1 &&
		    EVP_MAC_update(mc, cnt, 4) == 1 &&
		    EVP_MAC_update(mc, (const unsigned char *)label,
		    strlen(label) + 1) == 1 &&
		    (ulen == 0 || EVP_MAC_update(mc, u, ulen) == 1) &&
		    EVP_MAC_update(mc, b, 4) == 1 &&
		    EVP_MAC_final(mc, h, &ol, sizeof(h)) == 1 && ol == sizeof(h);
		EVP_MAC_CTX_free(mc);
		EVP_MAC_free(mac);
		if (!ok)
			goto out;
		n = want - done < sizeof(h) ? want - done : sizeof(h);
		memcpy(out + done, h, n);
		done += n;
		i++;
	}
	r = STK_OK;
out:
	OPENSSL_cleanse(h, sizeof(h));
	return r;
}

static void
att_be16(unsigned char *p, size_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

int
stk_attest_make_credential(const struct stk_attest_evidence *ev,
    const unsigned char *secret, size_t secret_len, unsigned char **out,
    size_t *outlen, struct stk_error *err)
{
	unsigned char seed[32], symkey[16], hmackey[32], name[NAME_LEN];
	unsigned char cv[2 + STK_ATTEST_SECRET_MAX], enc[2 + STK_ATTEST_SECRET_MAX];
	unsigned char mac[32], iv[16], encseed[512];
	size_t enclen = sizeof(encseed), cvlen = 2 + secret_len, idlen, total;
	EVP_PKEY_CTX *pc = NULL;
	EVP_CIPHER_CTX *cc = NULL;
	EVP_PKEY *ekpub;
	TPMT_PUBLIC ak;
	X509 *ek = NULL;
	unsigned char *label = NULL, *buf = NULL, *p;
	unsigned int maclen = 0;
	int r, outl = 0;

	*out = NULL;
	*outlen = 0;
	if (secret_len == 0 || secret_len > STK_ATTEST_SECRET_MAX)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "the credential secret must be 1 to %d bytes",
		    STK_ATTEST_SECRET_MAX);
	if ((r = att_public(&ev->ak_pub, "akPub", &ak, err)) != STK_OK ||
	    (r = att_name(ev->ak_pub.p, ev->ak_pub.len, ak.nameAlg, name, err)) != STK_OK)
		goto out;
	if ((ek = att_x509(&ev->ek_cert)) == NULL) {
		r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_NONE, 0,
		    "ekCert is not one DER X.509 certificate");
		goto out;
	}
	ekpub = X509_get0_pubkey(ek);
	if (ekpub == NULL || EVP_PKEY_get_base_id(ekpub) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(ekpub) != 2048) {
		r = stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "credential making supports an RSA-2048 EK only");
		goto out;
	}
	if (RAND_bytes(seed, sizeof(seed)) != 1) {
		r = stk_error_openssl(err, STK_E_CRYPTO, "random seed");
		goto out;
	}
	/* The seed, RSA-OAEP(SHA-256) encrypted to the EK, label "IDENTITY". */
	if ((label = OPENSSL_malloc(9)) == NULL) {
		r = STK_E_NOMEM;
		goto out;
	}
	memcpy(label, "IDENTITY", 9);
	if ((pc = EVP_PKEY_CTX_new(ekpub, NULL)) == NULL ||
	    EVP_PKEY_encrypt_init(pc) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pc, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pc, EVP_sha256()) != 1 ||
	    EVP_PKEY_CTX_set0_rsa_oaep_label(pc, label, 9) != 1) {
		r = stk_error_openssl(err, STK_E_CRYPTO, "RSA-OAEP set-up");
		goto out;
	}
	label = NULL; /* owned by pc now */
	if (EVP_PKEY_encrypt(pc, encseed, &enclen, seed, sizeof(seed)) != 1) {
		r = stk_error_openssl(err, STK_E_CRYPTO, "RSA-OAEP of the seed");
		goto out;
	}
	/* credentialBlob: HMAC || AES-128-CFB(KDFa(seed,"STORAGE",name)) of
	 * the TPM2B_DIGEST secret (TPM 2.0 Part 1, 24.4 and 24.5). */
	att_be16(cv, secret_len);
	memcpy(cv + 2, secret, secret_len);
	memset(iv, 0, sizeof(iv));
	if (att_kdfa(seed, sizeof(seed), "STORAGE", name, NAME_LEN, 128,
	    symkey) != STK_OK ||
	    att_kdfa(seed, sizeof(seed), "INTEGRITY", NULL, 0, 256,
	    hmackey) != STK_OK) {
		r = stk_error_openssl(err, STK_E_CRYPTO, "KDFa");
		goto out;
	}
	if ((cc = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(cc, EVP_aes_128_cfb(), NULL, symkey, iv) != 1 ||
	    EVP_EncryptUpdate(cc, enc, &outl, cv, (int)cvlen) != 1 ||
	    (size_t)outl != cvlen) {
		r = stk_error_openssl(err, STK_E_CRYPTO, "AES-128-CFB");
		goto out;
	}
	{
		unsigned char hin[2 + STK_ATTEST_SECRET_MAX + NAME_LEN];

		memcpy(hin, enc, cvlen);
		memcpy(hin + cvlen, name, NAME_LEN);
		if (HMAC(EVP_sha256(), hmackey, sizeof(hmackey), hin,
		    cvlen + NAME_LEN, mac, &maclen) == NULL || maclen != 32) {
			r = stk_error_openssl(err, STK_E_CRYPTO, "HMAC");
			goto out;
		}
	}
	idlen = 2 + sizeof(mac) + cvlen;
	total = 8 + 2 + idlen + 2 + enclen;
	if ((buf = malloc(total)) == NULL) {
		r = STK_E_NOMEM;
		goto out;
	}
	p = buf;
	p[0] = 0xba; p[1] = 0xdc; p[2] = 0xc0; p[3] = 0xde;
	p[4] = 0; p[5] = 0; p[6] = 0; p[7] = 1;
	p += 8;
	att_be16(p, idlen);
	att_be16(p + 2, sizeof(mac));
	memcpy(p + 4, mac, sizeof(mac));
	memcpy(p + 4 + sizeof(mac), enc, cvlen);
	p += 2 + idlen;
	att_be16(p, enclen);
	memcpy(p + 2, encseed, enclen);
	*out = buf;
	*outlen = total;
	buf = NULL;
	r = STK_OK;
out:
	OPENSSL_cleanse(seed, sizeof(seed));
	OPENSSL_cleanse(symkey, sizeof(symkey));
	OPENSSL_cleanse(hmackey, sizeof(hmackey));
	OPENSSL_cleanse(cv, sizeof(cv));
	OPENSSL_free(label);
	EVP_PKEY_CTX_free(pc);
	EVP_CIPHER_CTX_free(cc);
	X509_free(ek);
	free(buf);
	return r;
}

int
stk_attest_credfile_parse(const unsigned char *buf, size_t len,
    struct stk_blob *id_object, struct stk_blob *enc_secret,
    struct stk_error *err)
{
	size_t a, b;
	uint32_t magic, ver;

	id_object->p = enc_secret->p = NULL;
	id_object->len = enc_secret->len = 0;
	if (len < 12)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "credential file is too short");
	magic = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | buf[3];
	ver = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 |
	    (uint32_t)buf[6] << 8 | buf[7];
	if (magic != CRED_MAGIC || ver != CRED_VERSION)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "not a tpm2_makecredential file (magic 0x%08x version %u)",
		    (unsigned)magic, (unsigned)ver);
	a = (size_t)buf[8] << 8 | buf[9];
	if (10 + a + 2 > len)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "credential file is truncated");
	b = (size_t)buf[10 + a] << 8 | buf[11 + a];
	if (12 + a + b != len)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "credential file is %s", 12 + a + b > len ? "truncated" :
		    "padded (bytes after its two structures)");
	if ((id_object->p = malloc(2 + a)) == NULL ||
	    (enc_secret->p = malloc(2 + b)) == NULL) {
		free(id_object->p);
		id_object->p = NULL;
		return STK_E_NOMEM;
	}
	memcpy(id_object->p, buf + 8, 2 + a);
	id_object->len = 2 + a;
	memcpy(enc_secret->p, buf + 10 + a, 2 + b);
	enc_secret->len = 2 + b;
	return STK_OK;
}

#ifndef STK_HAVE_TPM
int
stk_key_attestation_available(const struct stk_key *key)
{
	(void)key;
	return 0;
}

int
stk_tpm_attest(struct stk_key *key, const unsigned char *nonce,
    size_t nonce_len, struct stk_attest_evidence **out, struct stk_error *err)
{
	(void)key; (void)nonce; (void)nonce_len;
	*out = NULL;
	return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
	    "built without the TPM backend");
}

int
stk_tpm_activate_credential(struct stk_key *key, const unsigned char *cred,
    size_t cred_len, unsigned char *secret, size_t *secret_len,
    struct stk_error *err)
{
	(void)key; (void)cred; (void)cred_len; (void)secret;
	*secret_len = 0;
	return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
	    "built without the TPM backend");
}
#endif
