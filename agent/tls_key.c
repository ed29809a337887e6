/* TLS client authentication with the hardware-held device key.
 *
 * Why an EVP_PKEY over our own signer rather than an OpenSSL provider or
 * engine (tpm2-openssl, libp11's pkcs11 engine): the device key is already
 * opened through the key backend interface (signer/key.c), which owns the
 * TPM connection (TCTI from --tcti / SITETOKEN_TCTI, salted session,
 * re-establishing after a TPM reset) and the PKCS#11 login (PIN from the
 * environment or a 0600 file, never argv; a refused PIN never retried).
 * A provider would open the same key a second time through its own
 * configuration (its own TCTI string, its own PIN prompt and key file
 * format), so two code paths would have to agree on every rule, and
 * neither Debian package is otherwise needed. Here the TLS stack gets an
 * EC key whose ECDSA method is one function that calls stk_key_sign_digest;
 * OpenSSL 3 keeps such a key on its legacy path (a foreign EC_KEY_METHOD
 * is never exported to a provider), which is the path libp11's engine keys
 * take too. It is handed to libcurl through CURLOPT_SSL_CTX_FUNCTION
 * together with the certificate, and the client signature algorithms are
 * pinned to ECDSA P-256 with SHA-256: the only digest the backends sign. */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include "sitetoken/key.h"
#include "agent.h"

static EC_KEY_METHOD *tls_ec_method;
static int tls_ec_idx = -1;

static ECDSA_SIG *
tls_ec_sign_sig(const unsigned char *dgst, int dlen, const BIGNUM *kinv,
    const BIGNUM *rp, EC_KEY *eckey)
{
	struct stk_key *key = EC_KEY_get_ex_data(eckey, tls_ec_idx);
	unsigned char raw[STK_SIG_MAX];
	size_t rawlen = sizeof(raw);
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	struct stk_error err;

	(void)kinv;
	(void)rp;
	stk_error_clear(&err);
	if (key == NULL || dlen != STK_SHA256_LEN ||
	    stk_key_sign_digest(key, dgst, (size_t)dlen, raw, &rawlen, &err) != 0 ||
	    rawlen != STK_P256_SIG_LEN)
		goto out;
	if ((r = BN_bin2bn(raw, 32, NULL)) == NULL ||
	    (s = BN_bin2bn(raw + 32, 32, NULL)) == NULL ||
	    (sig = ECDSA_SIG_new()) == NULL || ECDSA_SIG_set0(sig, r, s) != 1) {
		ECDSA_SIG_free(sig);
		sig = NULL;
		goto out;
	}
	r = s = NULL;
out:
	BN_free(r);
	BN_free(s);
	return sig;
}

static int
tls_ec_sign(int type, const unsigned char *dgst, int dlen, unsigned char *out,
    unsigned int *outlen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *eckey)
{
	ECDSA_SIG *sig = tls_ec_sign_sig(dgst, dlen, kinv, r, eckey);
	unsigned char *p = out;
	int n;

	(void)type;
	if (sig == NULL)
		return 0;
	n = i2d_ECDSA_SIG(sig, &p);
	ECDSA_SIG_free(sig);
	if (n <= 0)
		return 0;
	*outlen = (unsigned int)n;
	return 1;
}

static int
tls_ec_sign_setup(EC_KEY *eckey, BN_CTX *ctx, BIGNUM **kinv, BIGNUM **r)
{
	(void)eckey;
	(void)ctx;
	(void)kinv;
	(void)r;
	return 1;
}

int
agent_tls_pkey(struct stk_key *key, EVP_PKEY **out, struct stk_error *err)
{
	EVP_PKEY *pub = NULL, *pkey = NULL;
	EC_KEY *ec = NULL;
	int r;

	*out = NULL;
	if (key->type != STK_KEY_P256)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "the device key is %s; TLS with a held key needs P-256",
		    stk_key_type_name(key->type));
	if (tls_ec_method == NULL) {
		if ((tls_ec_idx = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, NULL)) < 0 ||
		    (tls_ec_method = EC_KEY_METHOD_new(EC_KEY_OpenSSL())) == NULL)
			return stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0,
			    "cannot set up the TLS key method");
		EC_KEY_METHOD_set_sign(tls_ec_method, tls_ec_sign, tls_ec_sign_setup,
		    tls_ec_sign_sig);
	}
	if ((r = stk_key_get_public(key, &pub, err)) != 0)
		goto out;
	if ((ec = EVP_PKEY_get1_EC_KEY(pub)) == NULL ||
	    EC_KEY_set_method(ec, tls_ec_method) != 1 ||
	    EC_KEY_set_ex_data(ec, tls_ec_idx, key) != 1 ||
	    (pkey = EVP_PKEY_new()) == NULL || EVP_PKEY_assign_EC_KEY(pkey, ec) != 1) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0,
		    "cannot make the TLS key for the held device key");
		goto out;
	}
	ec = NULL;
	*out = pkey;
	pkey = NULL;
	r = STK_OK;
out:
	EC_KEY_free(ec);
	EVP_PKEY_free(pkey);
	EVP_PKEY_free(pub);
	return r;
}


int
agent_tls_ctx_devkey(struct agent *a, void *sslctx)
{
	SSL_CTX *ctx = sslctx;
	EVP_PKEY *pkey;
	X509 *cert;

	if (agent_devkey_load(a, &pkey, &cert, NULL) != 0 ||
	    SSL_CTX_use_certificate(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    SSL_CTX_set1_client_sigalgs_list(ctx, "ECDSA+SHA256") != 1)
		return -1;
	return 0;
}

static CURLcode
tls_ctx_cb(CURL *curl, void *sslctx, void *parm)
{
	(void)curl;
	return agent_tls_ctx_devkey(parm, sslctx) != 0 ? CURLE_SSL_CERTPROBLEM : CURLE_OK;
}

int
agent_tls_use_devkey(struct agent *a, void *curl, struct stk_error *err)
{
	EVP_PKEY *pkey;
	X509 *cert;
	int r;

	/* Open the key now, so a TPM or token error is reported as such
	 * rather than as a TLS failure inside libcurl. */
	if ((r = agent_devkey_load(a, &pkey, &cert, err)) != 0)
		return r;
	if (curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, tls_ctx_cb) != CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, a) != CURLE_OK)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "this libcurl cannot take a TLS key from the agent (it needs "
		    "libcurl over OpenSSL)");
	return STK_OK;
}
