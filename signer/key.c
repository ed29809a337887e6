/* Keys: the calls every backend answers, key types, signature forms. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include "sitetoken/key.h"

const char *
stk_key_type_alg(enum stk_key_type type)
{
	switch (type) {
	case STK_KEY_RSA2048:
	case STK_KEY_RSA3072: return "RS256";
	case STK_KEY_P256: return "ES256";
	default: return NULL;
	}
}

const char *
stk_key_type_name(enum stk_key_type type)
{
	switch (type) {
	case STK_KEY_RSA2048: return "rsa2048";
	case STK_KEY_RSA3072: return "rsa3072";
	case STK_KEY_P256: return "p256";
	default: return "none";
	}
}

enum stk_key_type
stk_key_type_parse(const char *name)
{
	if (name == NULL)
		return STK_KEY_NONE;
	if (strcmp(name, "rsa2048") == 0 || strcmp(name, "rsa") == 0)
		return STK_KEY_RSA2048;
	if (strcmp(name, "rsa3072") == 0)
		return STK_KEY_RSA3072;
	if (strcmp(name, "p256") == 0 || strcmp(name, "ec") == 0)
		return STK_KEY_P256;
	return STK_KEY_NONE;
}

enum stk_key_type
stk_key_type_of_pkey(const EVP_PKEY *pkey)
{
	char group[32];
	size_t glen = 0;

	if (pkey == NULL)
		return STK_KEY_NONE;
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		switch (EVP_PKEY_get_bits(pkey)) {
		case 2048: return STK_KEY_RSA2048;
		case 3072: return STK_KEY_RSA3072;
		default: return STK_KEY_NONE;
		}
	}
	if (EVP_PKEY_is_a(pkey, "EC") &&
	    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, sizeof(group), &glen) == 1 &&
	    (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0))
		return STK_KEY_P256;
	return STK_KEY_NONE;
}

int
stk_key_get_public(struct stk_key *key, EVP_PKEY **out, struct stk_error *err)
{
	*out = NULL;
	if (key->vt->get_public == NULL)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "backend %s cannot give its public key", key->vt->name);
	return key->vt->get_public(key, out, err);
}

/* One lock for every key of a backend without STK_CAP_THREADSAFE: such a
 * backend may share one session or context between its keys. */
static pthread_mutex_t key_sign_serial = PTHREAD_MUTEX_INITIALIZER;

int
stk_key_sign_digest(struct stk_key *key, const unsigned char *digest,
    size_t dlen, unsigned char *sig, size_t *siglen, struct stk_error *err)
{
	size_t cap = *siglen;
	int r;

	if (dlen != STK_SHA256_LEN)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "digest must be SHA-256");
	/* A backend that does not declare STK_CAP_THREADSAFE signs one call
	 * at a time, whichever thread (a server worker) asks. */
	if (!(key->vt->caps & STK_CAP_THREADSAFE))
		pthread_mutex_lock(&key_sign_serial);
	r = key->vt->sign(key, digest, dlen, sig, siglen, err);
	if (!(key->vt->caps & STK_CAP_THREADSAFE))
		pthread_mutex_unlock(&key_sign_serial);
	if (r != 0)
		return r;
	/* Never let a backend hand the core a signature of the wrong shape. */
	if (*siglen > cap ||
	    (key->type == STK_KEY_P256 && *siglen != STK_P256_SIG_LEN) ||
	    (key->type == STK_KEY_RSA2048 && *siglen != 256) ||
	    (key->type == STK_KEY_RSA3072 && *siglen != 384))
		return stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
		    "backend %s returned a %zu-byte signature for a %s key",
		    key->vt->name, *siglen, stk_key_type_name(key->type));
	return STK_OK;
}

int
stk_key_sign(struct stk_key *key, const unsigned char *data, size_t len,
    unsigned char *sig, size_t *siglen, struct stk_error *err)
{
	unsigned char md[STK_SHA256_LEN];

	if (EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL) != 1)
		return stk_error_openssl(err, STK_E_CRYPTO, "SHA-256 failed");
	return stk_key_sign_digest(key, md, sizeof(md), sig, siglen, err);
}

int
stk_key_describe(struct stk_key *key, struct stk_key_info *info,
    struct stk_error *err)
{
	int r = STK_OK;

	memset(info, 0, sizeof(*info));
	info->backend = key->vt->name;
	info->type = key->type;
	if (key->vt->describe != NULL)
		r = key->vt->describe(key, info, err);
	/* Only a backend that can make a key non-exportable may say a key is. */
	if (!(key->vt->caps & STK_CAP_NONEXPORTABLE))
		info->non_exportable = 0;
	return r;
}

void
stk_key_close(struct stk_key *key)
{
	if (key != NULL && key->vt != NULL && key->vt->close != NULL)
		key->vt->close(key);
}

int
stk_key_counter(struct stk_key *key, const char *name, int advance,
    uint64_t *value, struct stk_error *err)
{
	*value = 0;
	if (key == NULL || key->vt == NULL || key->vt->counter == NULL)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "the %s backend has no monotonic counter",
		    key && key->vt ? key->vt->name : "key");
	return key->vt->counter(key, name, advance, value, err);
}

void
stk_key_info_add(struct stk_key_info *info, const char *name,
    const char *fmt, ...)
{
	struct stk_key_attr *a;
	va_list ap;

	if (info->nattrs >= STK_KEY_ATTRS_MAX)
		return;
	a = &info->attrs[info->nattrs++];
	snprintf(a->name, sizeof(a->name), "%s", name);
	va_start(ap, fmt);
	vsnprintf(a->value, sizeof(a->value), fmt, ap);
	va_end(ap);
}

int
stk_ecdsa_raw_to_der(const unsigned char *raw, size_t rawlen,
    unsigned char **der, size_t *derlen)
{
	ECDSA_SIG *s = NULL;
	BIGNUM *r = NULL, *sv = NULL;
	unsigned char *p = NULL;
	int n, ret = STK_E_CRYPTO;

	*der = NULL;
	*derlen = 0;
	if (rawlen != STK_P256_SIG_LEN)
		return STK_E_ARG;
	if ((s = ECDSA_SIG_new()) == NULL ||
	    (r = BN_bin2bn(raw, 32, NULL)) == NULL ||
	    (sv = BN_bin2bn(raw + 32, 32, NULL)) == NULL)
		goto out;
	if (ECDSA_SIG_set0(s, r, sv) != 1)
		goto out;
	r = sv = NULL;
	if ((n = i2d_ECDSA_SIG(s, &p)) <= 0)
		goto out;
	*der = p;
	*derlen = (size_t)n;
	ret = STK_OK;
out:
	BN_free(r);
	BN_free(sv);
	ECDSA_SIG_free(s);
	return ret;
}

int
stk_ecdsa_der_to_raw(const unsigned char *der, size_t derlen,
    unsigned char *raw, size_t rawlen)
{
	const unsigned char *p = der;
	ECDSA_SIG *s;
	const BIGNUM *r, *sv;
	int ret = STK_E_CRYPTO;

	if (rawlen != STK_P256_SIG_LEN)
		return STK_E_ARG;
	if ((s = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) == NULL)
		return STK_E_CRYPTO;
	ECDSA_SIG_get0(s, &r, &sv);
	if (BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(sv, raw + 32, 32) == 32)
		ret = STK_OK;
	ECDSA_SIG_free(s);
	return ret;
}

/* Exactly the signature our signers make: r||s for P-256 (DER to OpenSSL,
 * *der malloc'd), the modulus size for RSA. */
static int
sig_form(enum stk_key_type type, EVP_PKEY *pub, const unsigned char *sig,
    size_t siglen, unsigned char **der, size_t *derlen)
{
	*der = NULL;
	*derlen = 0;
	if (type == STK_KEY_P256)
		return siglen == STK_P256_SIG_LEN &&
		    stk_ecdsa_raw_to_der(sig, siglen, der, derlen) == 0 ?
		    STK_OK : STK_E_TOKEN_SIGNATURE;
	return siglen == (size_t)EVP_PKEY_get_size(pub) ? STK_OK : STK_E_TOKEN_SIGNATURE;
}

/* DigestVerifyInit for a site key: SHA-256, PKCS#1 v1.5 for RSA. */
static int
sig_init(EVP_MD_CTX *md, EVP_PKEY *pub, enum stk_key_type type)
{
	EVP_PKEY_CTX *pctx = NULL;

	return EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pub) == 1 &&
	    (type == STK_KEY_P256 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1) ? 0 : -1;
}

struct stk_sig_ctx {
	EVP_PKEY *pub;
	enum stk_key_type type;
	EVP_MD_CTX *tmpl;    /* initialised, never used directly: copied */
};

struct stk_sig_ctx *
stk_sig_ctx_new(EVP_PKEY *pub)
{
	struct stk_sig_ctx *c;
	enum stk_key_type type = stk_key_type_of_pkey(pub);

	if (type == STK_KEY_NONE || (c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->type = type;
	if ((c->tmpl = EVP_MD_CTX_new()) == NULL || sig_init(c->tmpl, pub, type) != 0 ||
	    EVP_PKEY_up_ref(pub) != 1) {
		ERR_clear_error();
		EVP_MD_CTX_free(c->tmpl);
		free(c);
		return NULL;
	}
	c->pub = pub;
	return c;
}

void
stk_sig_ctx_free(struct stk_sig_ctx *c)
{
	if (c == NULL)
		return;
	EVP_MD_CTX_free(c->tmpl);
	EVP_PKEY_free(c->pub);
	free(c);
}

/* One verification with md initialised for the key. */
static int
sig_check(EVP_MD_CTX *md, enum stk_key_type type, EVP_PKEY *pub,
    const unsigned char *data, size_t len, const unsigned char *sig, size_t siglen)
{
	unsigned char *der;
	size_t derlen;
	int r;

	if ((r = sig_form(type, pub, sig, siglen, &der, &derlen)) != 0)
		return r;
	r = (der != NULL ? EVP_DigestVerify(md, der, derlen, data, len) :
	    EVP_DigestVerify(md, sig, siglen, data, len)) == 1 ? STK_OK :
	    STK_E_TOKEN_SIGNATURE;
	OPENSSL_free(der);
	return r;
}

int
stk_sig_verify_ctx(const struct stk_sig_ctx *c, const unsigned char *data,
    size_t len, const unsigned char *sig, size_t siglen)
{
	EVP_MD_CTX *md;
	int r = STK_E_CRYPTO;

	if ((md = EVP_MD_CTX_new()) != NULL && EVP_MD_CTX_copy_ex(md, c->tmpl) == 1)
		r = sig_check(md, c->type, c->pub, data, len, sig, siglen);
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	return r;
}

int
stk_sig_verify(EVP_PKEY *pub, const unsigned char *data, size_t len,
    const unsigned char *sig, size_t siglen)
{
	enum stk_key_type type = stk_key_type_of_pkey(pub);
	EVP_MD_CTX *md;
	int r = STK_E_CRYPTO;

	if (type == STK_KEY_NONE)
		return STK_E_UNSUPPORTED;
	if ((md = EVP_MD_CTX_new()) != NULL && sig_init(md, pub, type) == 0)
		r = sig_check(md, type, pub, data, len, sig, siglen);
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	return r;
}
