/* A pinned gateway (kubeadm's discovery-token-ca-cert-hash): the agent
 * trusts the server whose presented chain contains a certificate with the
 * given SHA-256 of its SubjectPublicKeyInfo, and validates the chain up to
 * that certificate as the only trust anchor. So a device needs no CA file,
 * and the bulk token is sent only after the handshake accepted the pinned
 * server: an impostor (threat model 1) fails the handshake and receives
 * nothing. Hostname checking stays libcurl's. */
#include <ctype.h>
#include <string.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "agent.h"

int
agent_pin_parse(const char *s, unsigned char pin[32], struct stk_error *err)
{
	static const char pfx[] = "sha256:";
	const char *h;
	size_t i;

	memset(pin, 0, 32);
	if (s == NULL || strncasecmp(s, pfx, sizeof(pfx) - 1) != 0)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "the CA pin must be sha256:HEX (64 hex digits: the SHA-256 of a "
		    "certificate's SubjectPublicKeyInfo)");
	h = s + sizeof(pfx) - 1;
	if (strlen(h) != 64 || strspn(h, "0123456789abcdefABCDEF") != 64)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "the CA pin 'sha256:%.70s' needs exactly 64 hex digits", h);
	for (i = 0; i < 32; i++) {
		int hi = isdigit((unsigned char)h[2 * i]) ? h[2 * i] - '0' :
		    tolower((unsigned char)h[2 * i]) - 'a' + 10;
		int lo = isdigit((unsigned char)h[2 * i + 1]) ? h[2 * i + 1] - '0' :
		    tolower((unsigned char)h[2 * i + 1]) - 'a' + 10;

		pin[i] = (unsigned char)(hi << 4 | lo);
	}
	return STK_OK;
}

static int
pin_spki_matches(X509 *x, const unsigned char pin[32])
{
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	int n, ok;

	if (x == NULL || (n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der)) <= 0)
		return 0;
	ok = EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) == 1 &&
	    mdlen == 32 && CRYPTO_memcmp(md, pin, 32) == 0;
	OPENSSL_free(der);
	return ok;
}

/* Replaces OpenSSL's chain building for this connection: find the pinned
 * certificate among those the server sent, then verify the chain with it
 * as the one trust anchor (signatures, validity, purpose). */
static int
pin_verify(X509_STORE_CTX *ctx, void *arg)
{
	const unsigned char *pin = arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(ctx), *anchor = NULL;
	STACK_OF(X509) *chain = X509_STORE_CTX_get0_untrusted(ctx);
	X509_STORE *store = NULL;
	X509_STORE_CTX *v = NULL;
	int i, ok = 0;

	if (pin_spki_matches(leaf, pin))
		anchor = leaf;
	for (i = 0; anchor == NULL && chain != NULL && i < sk_X509_num(chain); i++)
		if (pin_spki_matches(sk_X509_value(chain, i), pin))
			anchor = sk_X509_value(chain, i);
	if (anchor == NULL) {
		X509_STORE_CTX_set_error(ctx, X509_V_ERR_CERT_UNTRUSTED);
		goto out;
	}
	if ((store = X509_STORE_new()) == NULL || X509_STORE_add_cert(store, anchor) != 1 ||
	    (v = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(v, store, leaf, chain) != 1 ||
	    X509_STORE_CTX_set_purpose(v, X509_PURPOSE_SSL_SERVER) != 1) {
		X509_STORE_CTX_set_error(ctx, X509_V_ERR_UNSPECIFIED);
		goto out;
	}
	/* A self-signed leaf pinned directly is its own anchor: partial
	 * chains let a pinned intermediate be the anchor too. */
	X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(v), X509_V_FLAG_PARTIAL_CHAIN);
	if ((ok = X509_verify_cert(v)) != 1) {
		X509_STORE_CTX_set_error(ctx, X509_STORE_CTX_get_error(v));
		ok = 0;
	}
out:
	X509_STORE_CTX_free(v);
	X509_STORE_free(store);
	return ok;
}

static CURLcode
pin_ctx_cb(CURL *curl, void *sslctx, void *parm)
{
	struct agent *a = parm;

	(void)curl;
	SSL_CTX_set_cert_verify_callback(sslctx, pin_verify, a->pin);
	/* The device key held in hardware uses the same libcurl hook. */
	if (a->pin_devkey && agent_tls_ctx_devkey(a, sslctx) != 0)
		return CURLE_SSL_CERTPROBLEM;
	return CURLE_OK;
}

int
agent_pin_use(struct agent *a, void *curl, int devkey, struct stk_error *err)
{
	const char *pin = a->st.ca_hash;
	int r;

	if (pin[0] == '\0')
		return STK_OK;
	a->pin_devkey = devkey;
	if ((r = agent_pin_parse(pin, a->pin, err)) != 0)
		return r;
	if (curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, pin_ctx_cb) != CURLE_OK ||
	    curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, a) != CURLE_OK)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "this libcurl cannot check a CA pin (it needs libcurl over OpenSSL)");
	return STK_OK;
}
