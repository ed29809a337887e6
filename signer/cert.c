/* Site and device certificates, signed by a key through the backend
 * interface: the TBS part is encoded with OpenSSL, the signature comes from
 * the backend (TPM, HSM or file), and the outer SEQUENCE is assembled here,
 * so no private key ever has to be an OpenSSL object. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "sitetoken/cert.h"
#include "sitetoken/token.h"

void
stk_cert_x5t(const unsigned char *der, size_t len, char out[44])
{
	unsigned char md[20];

	EVP_Digest(der, len, md, NULL, EVP_sha1(), NULL);
	stk_b64url_encode_buf(md, sizeof(md), out);
}

void
stk_cert_x5t_s256(const unsigned char *der, size_t len, char out[44])
{
	unsigned char md[32];

	EVP_Digest(der, len, md, NULL, EVP_sha256(), NULL);
	stk_b64url_encode_buf(md, sizeof(md), out);
}

/* base64url of a big-endian unsigned integer without leading zeros
 * (RFC 7518 §6.3.1) or of fixed width (EC coordinates, §6.2.1.2). */
static char *
bn_b64(const BIGNUM *bn, int width)
{
	unsigned char buf[512];
	int n = width > 0 ? BN_bn2binpad(bn, buf, width) : BN_bn2bin(bn, buf);
	char *s = NULL;

	if (n <= 0 || n > (int)sizeof(buf) || stk_b64url_encode(buf, (size_t)n, &s) != 0)
		return NULL;
	return s;
}

/* The JWK members that define the key, in RFC 7638 lexicographic order. */
static json_t *
pkey_jwk_core(EVP_PKEY *pkey)
{
	BIGNUM *a = NULL, *b = NULL;
	char *sa = NULL, *sb = NULL;
	json_t *j = NULL;

	if (EVP_PKEY_is_a(pkey, "RSA")) {
		if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &a) == 1 &&
		    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &b) == 1 &&
		    (sa = bn_b64(a, 0)) != NULL && (sb = bn_b64(b, 0)) != NULL)
			j = json_pack("{s:s, s:s, s:s}", "e", sa, "kty", "RSA", "n", sb);
	} else if (EVP_PKEY_is_a(pkey, "EC")) {
		if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &a) == 1 &&
		    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &b) == 1 &&
		    (sa = bn_b64(a, 32)) != NULL && (sb = bn_b64(b, 32)) != NULL)
			j = json_pack("{s:s, s:s, s:s, s:s}", "crv", "P-256",
			    "kty", "EC", "x", sa, "y", sb);
	}
	BN_free(a);
	BN_free(b);
	free(sa);
	free(sb);
	return j;
}

int
stk_pkey_kid(EVP_PKEY *pkey, char out[44])
{
	json_t *j = pkey_jwk_core(pkey);
	char *txt;
	unsigned char md[32];

	out[0] = '\0';
	ERR_clear_error();
	if (j == NULL)
		return STK_E_CRYPTO;
	/* JSON_SORT_KEYS + compact gives the RFC 7638 canonical form. */
	txt = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	if (txt == NULL)
		return STK_E_NOMEM;
	EVP_Digest(txt, strlen(txt), md, NULL, EVP_sha256(), NULL);
	free(txt);
	stk_b64url_encode_buf(md, sizeof(md), out);
	return STK_OK;
}

int
stk_pkey_to_jwk(EVP_PKEY *pkey, const unsigned char *cert_der,
    size_t cert_len, char **out, struct stk_error *err)
{
	json_t *j = pkey_jwk_core(pkey), *x5c;
	char kid[44], x5t[44], *b64 = NULL;
	const unsigned char *p;
	EVP_ENCODE_CTX *ectx;
	int r = STK_E_NOMEM;

	*out = NULL;
	if (j == NULL || stk_pkey_kid(pkey, kid) != 0) {
		r = stk_error_openssl(err, STK_E_CRYPTO, "cannot encode public key as JWK");
		goto out;
	}
	json_object_set_new(j, "kid", json_string(kid));
	json_object_set_new(j, "use", json_string("sig"));
	json_object_set_new(j, "alg", json_string(stk_key_type_alg(stk_key_type_of_pkey(pkey))));
	if (cert_der != NULL) {
		/* x5c is standard (not url-safe) base64, no line breaks. */
		int n = 0, tot = 0;
		stk_cert_x5t(cert_der, cert_len, x5t);
		json_object_set_new(j, "x5t", json_string(x5t));
		if ((b64 = malloc(cert_len / 48 * 65 + 200)) == NULL ||
		    (ectx = EVP_ENCODE_CTX_new()) == NULL)
			goto out;
		EVP_EncodeInit(ectx);
		p = cert_der;
		EVP_EncodeUpdate(ectx, (unsigned char *)b64, &n, p, (int)cert_len);
		tot = n;
		EVP_EncodeFinal(ectx, (unsigned char *)b64 + tot, &n);
		tot += n;
		EVP_ENCODE_CTX_free(ectx);
		b64[tot] = '\0';
		{	/* drop the newlines EVP_Encode inserts */
			char *s = b64, *d = b64;
			for (; *s; s++)
				if (*s != '\n')
					*d++ = *s;
			*d = '\0';
		}
		x5c = json_array();
		json_array_append_new(x5c, json_string(b64));
		json_object_set_new(j, "x5c", x5c);
	}
	if ((*out = json_dumps(j, JSON_COMPACT)) != NULL)
		r = STK_OK;
out:
	free(b64);
	json_decref(j);
	if (r == STK_E_NOMEM)
		stk_error_set(err, r, STK_LAYER_NONE, 0, "out of memory");
	return r;
}

static int
der_len(unsigned char *p, size_t len)
{
	/* Returns the number of bytes of the DER length; writes them if p. */
	int n = 0, i;
	size_t t = len;

	if (len < 128) {
		if (p)
			p[0] = (unsigned char)len;
		return 1;
	}
	while (t) {
		n++;
		t >>= 8;
	}
	if (p) {
		p[0] = (unsigned char)(0x80 | n);
		for (i = 0; i < n; i++)
			p[1 + i] = (unsigned char)(len >> (8 * (n - 1 - i)));
	}
	return 1 + n;
}

static int
x509_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

static int
cert_make(struct stk_key *key, const char *cn, const char *org, int64_t now,
    int days, int site, unsigned char **der, size_t *derlen,
    struct stk_error *err)
{
	X509 *x = NULL;
	X509_NAME *name = NULL;
	X509_ALGOR *alg = NULL;
	EVP_PKEY *pub = NULL;
	ASN1_INTEGER *serial = NULL;
	BIGNUM *sbn = NULL;
	unsigned char rnd[16], sig[STK_SIG_MAX], *tbs = NULL, *algder = NULL;
	unsigned char *sigder = NULL, *outbuf = NULL, *q;
	size_t siglen = sizeof(sig), sigderlen, body, total;
	int tbslen, alglen, r = STK_E_CRYPTO, ossl = 0;
	const unsigned char *cp;

	*der = NULL;
	*derlen = 0;
	if ((r = stk_key_get_public(key, &pub, err)) != 0)
		goto out;
	/* Until a callee sets its own error, a failure is OpenSSL's. */
	r = STK_E_CRYPTO;
	ossl = 1;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		goto out;
	rnd[0] &= 0x7f; /* positive serial */
	if ((x = X509_new()) == NULL || X509_set_version(x, 2) != 1 ||
	    (sbn = BN_bin2bn(rnd, sizeof(rnd), NULL)) == NULL ||
	    (serial = BN_to_ASN1_INTEGER(sbn, NULL)) == NULL ||
	    X509_set_serialNumber(x, serial) != 1 ||
	    (name = X509_NAME_new()) == NULL ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    (org != NULL && X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	    (const unsigned char *)org, -1, -1, 0) != 1) ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, name) != 1 ||
	    X509_time_adj_ex(X509_getm_notBefore(x), 0, -3600, (time_t *)&now) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), days, 0, (time_t *)&now) == NULL ||
	    X509_set_pubkey(x, pub) != 1)
		goto out;
	if (!x509_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
	    !x509_add_ext(x, NID_key_usage, "critical,digitalSignature") ||
	    !x509_add_ext(x, NID_subject_key_identifier, "hash") ||
	    (!site && !x509_add_ext(x, NID_ext_key_usage, "clientAuth")))
		goto out;

	/* The TBS and the outer certificate carry the same AlgorithmIdentifier.
	 * OpenSSL 3.0 has no setter for the TBS one without a private key
	 * object, so the field it hands out is filled in place. */
	alg = (X509_ALGOR *)X509_get0_tbs_sigalg(x);
	if (key->type == STK_KEY_P256)
		X509_ALGOR_set0(alg, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, NULL);
	else
		X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256WithRSAEncryption), V_ASN1_NULL, NULL);
	if ((tbslen = i2d_re_X509_tbs(x, &tbs)) <= 0 ||
	    (alglen = i2d_X509_ALGOR(alg, &algder)) <= 0)
		goto out;
	if ((r = stk_key_sign(key, tbs, (size_t)tbslen, sig, &siglen, err)) != 0) {
		ossl = 0;
		goto out;
	}
	r = STK_E_CRYPTO;
	if (key->type == STK_KEY_P256) {
		if (stk_ecdsa_raw_to_der(sig, siglen, &sigder, &sigderlen) != 0)
			goto out;
	} else {
		if ((sigder = OPENSSL_malloc(siglen)) == NULL)
			goto out;
		memcpy(sigder, sig, siglen);
		sigderlen = siglen;
	}
	/* Certificate ::= SEQUENCE { tbs, algid, BIT STRING signature } */
	body = (size_t)tbslen + (size_t)alglen + 1 +
	    (size_t)der_len(NULL, sigderlen + 1) + sigderlen + 1;
	total = 1 + (size_t)der_len(NULL, body) + body;
	if ((outbuf = malloc(total)) == NULL) {
		r = STK_E_NOMEM;
		goto out;
	}
	q = outbuf;
	*q++ = 0x30;
	q += der_len(q, body);
	memcpy(q, tbs, (size_t)tbslen);
	q += tbslen;
	memcpy(q, algder, (size_t)alglen);
	q += alglen;
	*q++ = 0x03;
	q += der_len(q, sigderlen + 1);
	*q++ = 0x00; /* no unused bits */
	memcpy(q, sigder, sigderlen);
	/* Prove the result is a certificate that verifies with its own key. */
	cp = outbuf;
	X509_free(x);
	if ((x = d2i_X509(NULL, &cp, (long)total)) == NULL ||
	    X509_verify(x, pub) != 1) {
		r = stk_error_openssl(err, STK_E_BACKEND,
		    "certificate signed by the key does not verify");
		ossl = 0;
		goto out;
	}
	*der = outbuf;
	*derlen = total;
	outbuf = NULL;
	r = STK_OK;
out:
	if (r != 0 && ossl)
		r = stk_error_openssl(err, r, "cannot build certificate");
	free(outbuf);
	OPENSSL_free(tbs);
	OPENSSL_free(algder);
	OPENSSL_free(sigder);
	ASN1_INTEGER_free(serial);
	BN_free(sbn);
	X509_NAME_free(name);
	X509_free(x);
	EVP_PKEY_free(pub);
	return r;
}

int
stk_cert_make_site(struct stk_key *key, const char *site_guid, int64_t now,
    int days, unsigned char **der, size_t *derlen, struct stk_error *err)
{
	return cert_make(key, site_guid, "sitetoken site", now, days, 1, der,
	    derlen, err);
}

int
stk_cert_make_self_signed(struct stk_key *key, const char *cn,
    const char *org, int64_t now, int days, unsigned char **der,
    size_t *derlen, struct stk_error *err)
{
	return cert_make(key, cn, org, now, days, 0, der, derlen, err);
}

int
stk_cert_site_guid(const unsigned char *der, size_t len, char out[37])
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	int n, i, r = STK_E_NOTFOUND;

	out[0] = '\0';
	if (x == NULL) {
		ERR_clear_error();
		return STK_E_CRYPTO;
	}
	n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
	    out, 37);
	if (n == STK_GUID_LEN && stk_guid_valid(out)) {
		for (i = 0; i < n; i++)
			out[i] = (char)tolower((unsigned char)out[i]);
		r = STK_OK;
	} else
		out[0] = '\0';
	X509_free(x);
	return r;
}

int
stk_cert_der_to_pem(const unsigned char *der, size_t len, char **pem)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	BIO *b = NULL;
	BUF_MEM *bm;
	int r = STK_E_CRYPTO;

	*pem = NULL;
	if (x == NULL || (b = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509(b, x) != 1)
		goto out;
	BIO_get_mem_ptr(b, &bm);
	if ((*pem = malloc(bm->length + 1)) == NULL) {
		r = STK_E_NOMEM;
		goto out;
	}
	memcpy(*pem, bm->data, bm->length);
	(*pem)[bm->length] = '\0';
	r = STK_OK;
out:
	ERR_clear_error();
	BIO_free(b);
	X509_free(x);
	return r;
}

int
stk_cert_pem_to_der(const char *pem, size_t len, unsigned char **der,
    size_t *derlen)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	unsigned char *p = NULL;
	int n;

	*der = NULL;
	*derlen = 0;
	BIO_free(b);
	if (x == NULL) {
		ERR_clear_error();
		return STK_E_CRYPTO;
	}
	n = i2d_X509(x, &p);
	X509_free(x);
	if (n <= 0)
		return STK_E_CRYPTO;
	if ((*der = malloc((size_t)n)) == NULL) {
		OPENSSL_free(p);
		return STK_E_NOMEM;
	}
	memcpy(*der, p, (size_t)n);
	OPENSSL_free(p);
	*derlen = (size_t)n;
	return STK_OK;
}
