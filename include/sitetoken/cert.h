/* sitetoken — the site certificate, made and signed by the site key through
 * the backend interface (so the same code works for TPM, HSM and file). */
#ifndef SITETOKEN_CERT_H
#define SITETOKEN_CERT_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>
#include "sitetoken/key.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Self-signed site certificate: subject CN=<site GUID>, O=sitetoken site,
 * valid from now-1h for `days`. *der malloc'd (caller frees). */
int stk_cert_make_site(struct stk_key *key, const char *site_guid,
    int64_t now, int days, unsigned char **der, size_t *derlen,
    struct stk_error *err);

/* Self-signed certificate with a given CN (device certificates). */
int stk_cert_make_self_signed(struct stk_key *key, const char *cn,
    const char *org, int64_t now, int days, unsigned char **der,
    size_t *derlen, struct stk_error *err);

/* base64url SHA-1 (x5t) / SHA-256 (x5t#S256) of a DER certificate into out
 * (at least 44 bytes). */
void stk_cert_x5t(const unsigned char *der, size_t len, char out[44]);
void stk_cert_x5t_s256(const unsigned char *der, size_t len, char out[44]);
/* RFC 7638 JWK thumbprint (base64url SHA-256) of a public key: our kid. */
int stk_pkey_kid(EVP_PKEY *pkey, char out[44]);
/* Public key as one JWK object text {"kty":..., "kid":..., "alg":..., ...};
 * malloc'd. x5t/cert_der optional. */
int stk_pkey_to_jwk(EVP_PKEY *pkey, const unsigned char *cert_der,
    size_t cert_len, char **out, struct stk_error *err);

/* Site GUID from a site certificate's subject CN (lower case). */
int stk_cert_site_guid(const unsigned char *der, size_t len,
    char out[37]);

/* DER <-> PEM helpers. */
int stk_cert_der_to_pem(const unsigned char *der, size_t len, char **pem);
int stk_cert_pem_to_der(const char *pem, size_t len, unsigned char **der,
    size_t *derlen);

#ifdef __cplusplus
}
#endif
#endif
