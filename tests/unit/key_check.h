/* Shared by the key backend tests (test_key_contract, test_pkcs11,
 * test_tpm): a signature checked by OpenSSL alone and by the project's own
 * verifier, and an attribute of `key show`. */
#ifndef STK_KEY_CHECK_H
#define STK_KEY_CHECK_H

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include "sitetoken/key.h"
#include "testutil.h"

/* OpenSSL alone, not the project's verifier: RS256 is PKCS#1 v1.5, ES256
 * is r||s (JWS), which OpenSSL wants as DER. */
static inline int
openssl_verifies(EVP_PKEY *pub, const unsigned char *m, size_t mlen,
    const unsigned char *sig, size_t siglen)
{
	unsigned char der[128], *p = der;
	const unsigned char *s = sig;
	size_t slen = siglen;
	ECDSA_SIG *es;
	EVP_MD_CTX *c;
	int ok;

	if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC) {
		if (siglen != STK_P256_SIG_LEN || (es = ECDSA_SIG_new()) == NULL)
			return 0;
		ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL),
		    BN_bin2bn(sig + 32, 32, NULL));
		slen = (size_t)i2d_ECDSA_SIG(es, &p);
		s = der;
		ECDSA_SIG_free(es);
	}
	c = EVP_MD_CTX_new();
	ok = c != NULL &&
	    EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, pub) == 1 &&
	    EVP_DigestVerify(c, s, slen, m, mlen) == 1;
	EVP_MD_CTX_free(c);
	return ok;
}

/* `key` signs and both OpenSSL and stk_sig_verify verify it with `pub`
 * (NULL: the key's own public key, which must be of the key's type); one
 * byte less of the message does not verify (a real check). */
static inline void
assert_signs_for(struct stk_key *key, EVP_PKEY *pub)
{
	static const unsigned char msg[] = "header.payload";
	const size_t len = sizeof(msg) - 1;
	unsigned char sig[STK_SIG_MAX];
	size_t siglen = sizeof(sig);
	struct stk_error err;
	EVP_PKEY *own = NULL;

	stk_error_clear(&err);
	assert_int_equal(stk_key_sign(key, msg, len, sig, &siglen, &err), 0);
	if (pub == NULL) {
		assert_int_equal(stk_key_get_public(key, &own, &err), 0);
		assert_int_equal(stk_key_type_of_pkey(own), key->type);
		pub = own;
	}
	assert_int_equal(siglen, EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC ?
	    STK_P256_SIG_LEN : (size_t)EVP_PKEY_get_size(pub));
	assert_true(openssl_verifies(pub, msg, len, sig, siglen));
	assert_false(openssl_verifies(pub, msg, len - 1, sig, siglen));
	assert_int_equal(stk_sig_verify(pub, msg, len, sig, siglen), 0);
	assert_int_equal(stk_sig_verify(pub, msg, len - 1, sig, siglen),
	    STK_E_TOKEN_SIGNATURE);
	EVP_PKEY_free(own);
}

/* The value of attribute `name` that describe read from the device. */
static inline const char *
attr(const struct stk_key_info *info, const char *name)
{
	size_t i;

	for (i = 0; i < info->nattrs; i++)
		if (strcmp(info->attrs[i].name, name) == 0)
			return info->attrs[i].value;
	return "(absent)";
}

#endif
