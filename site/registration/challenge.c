/* Registration challenges for the HTTP MP (proof of possession of the
 * device key, docs/api.md "Proof of possession").
 *
 * A nonce is stateless until it is used: 16 random bytes, its expiry and an
 * HMAC-SHA256 (a key made at start, never stored) over both, base64url.
 * Issuing one costs no memory and no store write, so junk challenge
 * requests cannot fill anything. A nonce is remembered only once a
 * registration has proved possession with it (single use); that table is
 * bounded because each entry needs a valid signature and expires with the
 * nonce. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include "sitetoken/device.h"
#include "sitetoken/key.h"
#include "sitetoken/token.h"

#define CH_RAND 16
#define CH_MAC 16
#define CH_RAW (CH_RAND + 8 + CH_MAC)
#define CH_USED_MAX 4096

struct ch_used {
	unsigned char id[CH_RAND];
	int64_t exp;
};

struct stk_challenges {
	pthread_mutex_t mu;
	unsigned char key[32];
	struct ch_used used[CH_USED_MAX];
};

int
stk_challenges_new(struct stk_challenges **out, struct stk_error *err)
{
	struct stk_challenges *c;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	if (RAND_bytes(c->key, sizeof(c->key)) != 1) {
		free(c);
		return stk_error_openssl(err, STK_E_CRYPTO, "no random bytes");
	}
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return STK_OK;
}

void
stk_challenges_free(struct stk_challenges *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->mu);
	OPENSSL_cleanse(c->key, sizeof(c->key));
	free(c);
}

static int
ch_mac(const struct stk_challenges *c, const unsigned char *msg, unsigned char out[CH_MAC])
{
	unsigned char full[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (HMAC(EVP_sha256(), c->key, sizeof(c->key), msg, CH_RAND + 8, full, &n) == NULL)
		return -1;
	memcpy(out, full, CH_MAC);
	return 0;
}

int
stk_challenge_issue(struct stk_challenges *c, int64_t now,
    char nonce[STK_CHALLENGE_LEN + 1], int64_t *expires_at, struct stk_error *err)
{
	unsigned char raw[CH_RAW];
	uint64_t exp = (uint64_t)(now + STK_CHALLENGE_TTL);
	int i;

	nonce[0] = '\0';
	if (RAND_bytes(raw, CH_RAND) != 1)
		return stk_error_openssl(err, STK_E_CRYPTO, "no random bytes");
	for (i = 0; i < 8; i++)
		raw[CH_RAND + i] = (unsigned char)(exp >> (56 - 8 * i));
	if (ch_mac(c, raw, raw + CH_RAND + 8) != 0)
		return stk_error_openssl(err, STK_E_CRYPTO, "HMAC failed");
	stk_b64url_encode_buf(raw, sizeof(raw), nonce);
	*expires_at = (int64_t)exp;
	return STK_OK;
}

/* Decode and authenticate a nonce: its random part and expiry. */
static int
ch_open(const struct stk_challenges *c, const char *nonce, int64_t now,
    unsigned char id[CH_RAND], int64_t *exp, struct stk_error *err)
{
	unsigned char *raw = NULL, mac[CH_MAC];
	size_t n = 0;
	uint64_t e = 0;
	int i, r = STK_OK;

	if (nonce == NULL || strlen(nonce) != STK_CHALLENGE_LEN ||
	    stk_b64url_decode(nonce, STK_CHALLENGE_LEN, &raw, &n) != 0 || n != CH_RAW ||
	    ch_mac(c, raw, mac) != 0 || CRYPTO_memcmp(mac, raw + CH_RAND + 8, CH_MAC) != 0) {
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "the challenge was not issued by this management point "
		    "(ask for a new one: POST .../challenge)");
		goto out;
	}
	for (i = 0; i < 8; i++)
		e = (e << 8) | raw[CH_RAND + i];
	if ((int64_t)e <= now) {
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "the challenge expired (they last %d seconds): ask for a new one",
		    STK_CHALLENGE_TTL);
		goto out;
	}
	memcpy(id, raw, CH_RAND);
	*exp = (int64_t)e;
out:
	free(raw);
	return r;
}

/* Refuse a nonce already used; when record, also remember this one (and
 * refuse it when every slot holds a nonce still alive). */
static int
ch_use(struct stk_challenges *c, const char *nonce, int64_t now, int record,
    struct stk_error *err)
{
	unsigned char id[CH_RAND];
	int64_t exp;
	size_t i, slot = CH_USED_MAX;
	int r;

	if ((r = ch_open(c, nonce, now, id, &exp, err)) != 0)
		return r;
	pthread_mutex_lock(&c->mu);
	for (i = 0; i < CH_USED_MAX; i++) {
		if (c->used[i].exp > now && memcmp(c->used[i].id, id, CH_RAND) == 0) {
			r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
			    "the challenge was already used: ask for a new one");
			goto out;
		}
		if (slot == CH_USED_MAX && c->used[i].exp <= now)
			slot = i;
	}
	if (!record)
		goto out;
	if (slot == CH_USED_MAX) {
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "too many registrations in the last %d seconds: retry shortly",
		    STK_CHALLENGE_TTL);
		goto out;
	}
	memcpy(c->used[slot].id, id, CH_RAND);
	c->used[slot].exp = exp;
out:
	pthread_mutex_unlock(&c->mu);
	return r;
}

int
stk_challenge_check(struct stk_challenges *c, const char *nonce, int64_t now,
    struct stk_error *err)
{
	return ch_use(c, nonce, now, 0, err);
}

int
stk_challenge_consume(struct stk_challenges *c, const char *nonce, int64_t now,
    struct stk_error *err)
{
	return ch_use(c, nonce, now, 1, err);
}

char *
stk_pop_message(const char *context, const char *a, const char *b)
{
	char *m = NULL;

	if (asprintf(&m, "%s\n%s\n%s", context, a ? a : "", b ? b : "") < 0)
		return NULL;
	return m;
}

/* ECDSA DER (what `openssl dgst -sign` writes) to raw r||s, for the check
 * stk_sig_verify makes. 0, or -1 when sig is not a DER signature. */
static int
pop_der_to_raw(const unsigned char *sig, size_t len, unsigned char raw[64])
{
	const unsigned char *p = sig;
	const BIGNUM *r, *s;
	ECDSA_SIG *es;
	int ok;

	if ((es = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL || p != sig + len) {
		ECDSA_SIG_free(es);
		return -1;
	}
	ECDSA_SIG_get0(es, &r, &s);
	ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
	ECDSA_SIG_free(es);
	return ok ? 0 : -1;
}

int
stk_pop_verify(const unsigned char *cert_der, size_t cert_len, const char *msg,
    const char *sig_b64url, struct stk_error *err)
{
	const unsigned char *p = cert_der;
	unsigned char *sig = NULL, raw[64];
	size_t siglen = 0;
	EVP_PKEY *pub;
	X509 *x = NULL;
	int r;

	if (sig_b64url == NULL || strlen(sig_b64url) > 2048 ||
	    stk_b64url_decode(sig_b64url, strlen(sig_b64url), &sig, &siglen) != 0) {
		r = stk_error_set(err, STK_E_TOKEN_SIGNATURE, STK_LAYER_TOKEN, 0,
		    "the proof is not a base64url signature");
		goto out;
	}
	if ((x = d2i_X509(NULL, &p, (long)cert_len)) == NULL ||
	    (pub = X509_get0_pubkey(x)) == NULL) {
		r = stk_error_openssl(err, STK_E_ARG, "device certificate has no usable key");
		goto out;
	}
	r = stk_sig_verify(pub, (const unsigned char *)msg, strlen(msg), sig, siglen);
	if (r == STK_E_TOKEN_SIGNATURE && EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC &&
	    pop_der_to_raw(sig, siglen, raw) == 0)
		r = stk_sig_verify(pub, (const unsigned char *)msg, strlen(msg), raw,
		    sizeof(raw));
	if (r != 0)
		r = stk_error_set(err, STK_E_TOKEN_SIGNATURE, STK_LAYER_TOKEN, 0,
		    "the proof of possession does not verify with the certificate's key");
out:
	X509_free(x);
	free(sig);
	return r;
}
