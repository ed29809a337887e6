/* sitetoken — JWS compact tokens of SPEC.md: bulk registration and client
 * authentication tokens, their issue and their verification.
 *
 * Verification needs only public keys (site certificates or PEM/JWKS), so a
 * gateway can verify without access to any private key. */
#ifndef SITETOKEN_TOKEN_H
#define SITETOKEN_TOKEN_H

#include <stddef.h>
#include <stdint.h>
#include "sitetoken/error.h"
#include "sitetoken/key.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STK_TOKEN_MAX 8192          /* tokens over 8 KiB are refused */
#define STK_DEFAULT_LEEWAY 60       /* seconds */
/* ES256 tokens whose nbf is at or after this time (2026-12-02T00:00:00Z,
 * when sitetoken started issuing low-s signatures only) must be low-s; a
 * high-s signature on an older token is still accepted until it expires. */
#define STK_ES256_LOW_S_SINCE 1796169600LL
#define STK_GUID_LEN 36
#define STK_AUDIENCE "urn:sccm:service"
#define STK_ISSUER_PREFIX "urn:sccm:oauth2:"

enum stk_token_type {
	STK_TOKEN_ANY = 0,   /* verify: accept any known Type (CLI decoding only) */
	STK_TOKEN_BULK,      /* Type "BulkRegistration" */
	STK_TOKEN_CLIENT,    /* Type "ClientAuthentication" */
};

const char *stk_token_type_name(enum stk_token_type t); /* "BulkRegistration"... */
enum stk_token_type stk_token_type_parse(const char *s); /* accepts "bulk"/"client" too */

/* Decoded claims of a verified token. */
struct stk_claims {
	enum stk_token_type type;
	char tenant[STK_GUID_LEN + 1];    /* site GUID, lower case */
	char id[STK_GUID_LEN + 1];        /* bulk: UniqueId; client: jti */
	char subject[STK_GUID_LEN + 1];   /* client: sub (device GUID) */
	char cnf_x5t_s256[64];            /* client: certificate binding */
	char att[8];                      /* client: attestation level of the
	                                     device key ("tpm"), "" when none */
	char kid[64];                     /* kid of the key that signed */
	int64_t iat, nbf, exp;            /* iat 0 for bulk tokens */
	char *payload_json;               /* payload as received (malloc'd) */
	char *header_json;                /* header as received (malloc'd) */
};
void stk_claims_clear(struct stk_claims *c); /* frees members; accepts NULL */

/* ---- Issuing ---- */

/* A signer: the site key plus the site certificate it belongs to.
 * Thread-safe for issuing: signing on a backend without STK_CAP_THREADSAFE
 * is serialised by stk_key_sign. */
struct stk_signer;

/* Borrow `key` (the caller keeps ownership and closes it after the signer).
 * `cert_der` is the site certificate (copied); `site_guid` any case. */
int stk_signer_new(struct stk_key *key, const unsigned char *cert_der,
    size_t cert_len, const char *site_guid, struct stk_signer **out,
    struct stk_error *err);
void stk_signer_free(struct stk_signer *s);
const char *stk_signer_kid(const struct stk_signer *s);
const char *stk_signer_x5t(const struct stk_signer *s);

/* Bulk registration token valid [nbf, exp). unique_id: lower-case GUID to
 * use, or NULL to generate one; the GUID used is written to out_guid
 * (STK_GUID_LEN+1 bytes) when non-NULL. *out is malloc'd; caller frees it
 * with stk_token_free (which wipes it). */
int stk_issue_bulk(const struct stk_signer *s, const char *unique_id,
    int64_t nbf, int64_t exp, char **out, char *out_guid,
    struct stk_error *err);

/* Client authentication token for device `device_guid`, bound to the
 * certificate whose SHA-256 thumbprint (base64url) is `cnf_x5t_s256`,
 * valid [now, now + lifetime). out_jti as out_guid above. */
int stk_issue_client(const struct stk_signer *s, const char *device_guid,
    const char *cnf_x5t_s256, int64_t now, int64_t lifetime, char **out,
    char *out_jti, struct stk_error *err);
/* The same, with the claim "att":"tpm" (after cnf) when att is "tpm": the
 * device key was TPM-attested at registration, so a gateway can require it
 * without a lookup. att NULL, "" or "none": no claim (as stk_issue_client);
 * anything else is refused with STK_E_ARG. */
int stk_issue_client_att(const struct stk_signer *s, const char *device_guid,
    const char *cnf_x5t_s256, const char *att, int64_t now, int64_t lifetime,
    char **out, char *out_jti, struct stk_error *err);

/* Sign arbitrary header and payload JSON texts (used by tests and tools;
 * applies no policy). */
int stk_jws_sign_raw(struct stk_key *key, const char *header_json,
    const char *payload_json, char **out, struct stk_error *err);

void stk_token_free(char *token); /* wipes and frees; accepts NULL */

/* ---- Verifying ---- */

struct stk_verifier;

/* site_guid: the site this verifier accepts tokens of (any case). */
/* Threads: a verifier is built (add_*, set_leeway) by one thread; once
 * built it is immutable and stk_verify may run on it from any number of
 * threads at once. It is reference-counted: stk_verifier_ref takes one more
 * reference (any thread), stk_verifier_free drops one (any thread; the last
 * frees it). */
int stk_verifier_new(const char *site_guid, struct stk_verifier **out,
    struct stk_error *err);
struct stk_verifier *stk_verifier_ref(struct stk_verifier *v);
void stk_verifier_free(struct stk_verifier *v);
/* Add a trusted site key: from a site certificate (DER) or a public key.
 * Several keys may be added (rotation); tokens pick one with kid/x5t. */
int stk_verifier_add_cert(struct stk_verifier *v, const unsigned char *der,
    size_t len, struct stk_error *err);
int stk_verifier_add_pubkey(struct stk_verifier *v, EVP_PKEY *pkey,
    struct stk_error *err);
void stk_verifier_set_leeway(struct stk_verifier *v, int64_t seconds);
int64_t stk_verifier_leeway(const struct stk_verifier *v);
/* 1 when a key with this kid is one of v's keys. */
int stk_verifier_has_kid(const struct stk_verifier *v, const char *kid);

/* Verify `token` (len bytes, need not be NUL-terminated) at time `now`.
 * expect: the Type required (STK_TOKEN_ANY only for decoding tools).
 * On success fills *claims (caller clears); on refusal returns the
 * STK_E_TOKEN_* code naming the rule, with the reason in err->msg. */
int stk_verify(const struct stk_verifier *v, const char *token, size_t len,
    enum stk_token_type expect, int64_t now, struct stk_claims *claims,
    struct stk_error *err);

/* ---- Helpers ---- */

/* New random GUID (RFC 4122 v4), lower case, into out[STK_GUID_LEN+1]. */
int stk_guid_new(char out[STK_GUID_LEN + 1]);
/* 1 if s is a GUID in canonical 8-4-4-4-12 form (either case). */
int stk_guid_valid(const char *s);

/* base64url without padding (RFC 7515 §2). encode: *out malloc'd, NUL-terminated.
 * decode is strict: alphabet only, no padding, no stray bits. */
int stk_b64url_encode(const unsigned char *in, size_t len, char **out);
int stk_b64url_decode(const char *in, size_t len, unsigned char **out,
    size_t *outlen);
/* Encode into a caller buffer of at least 4*ceil(len/3)+1 bytes. */
size_t stk_b64url_encode_buf(const unsigned char *in, size_t len, char *out);

#ifdef __cplusplus
}
#endif
#endif
