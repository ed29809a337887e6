/* sitetoken — OIDC ID tokens as a registration credential (SPEC.md
 * "Registration credentials"): an issuer the site trusts (Entra/Azure AD
 * style device identity), its JWKS, and the verification of its ID tokens
 * with the RFC 8725 rules the site applies to its own tokens.
 *
 * Two layers:
 *  - pure parsing and verification (stk_jwks_*, stk_idtoken_*): no store,
 *    no network; what the unit test and the fuzz target reach;
 *  - the site's trusted issuers (stk_oidc_*): records in the site store
 *    (table oidc_issuers), the JWKS from the record (FILE mode) or fetched
 *    with libcurl from an https URL (URL mode), cached in memory per
 *    process and fetched again for an unknown kid at most once every
 *    STK_OIDC_REFRESH_MIN seconds per issuer.
 *
 * Refusals: the STK_REFUSAL_IDTOKEN_* rows of sitetoken/refusal.h.
 *
 * Thread contract: the pure functions are thread-safe (a parsed JWKS is
 * read-only once made). The stk_oidc_* functions take a site handle: one
 * handle is used by one thread at a time, as for the rest of the site API;
 * the in-memory JWKS cache they share is guarded by its own lock. */
#ifndef SITETOKEN_OIDC_H
#define SITETOKEN_OIDC_H

#include <stddef.h>
#include <stdint.h>
#include "sitetoken/error.h"
#include "sitetoken/refusal.h"
#include "sitetoken/site.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STK_OIDC_TOKEN_MAX 8192      /* bytes of an ID token (as our own tokens) */
#define STK_OIDC_JWKS_MAX 65536      /* bytes of a JWKS document */
#define STK_OIDC_KEYS_MAX 32         /* keys kept from one JWKS */
#define STK_OIDC_LEEWAY 60           /* seconds of clock leeway (exp, nbf, iat) */
#define STK_OIDC_REFRESH_MIN 10      /* seconds between two fetches of one
                                        issuer's JWKS URL (unknown kid) */
#define STK_OIDC_CACHE_MAX_AGE 3600  /* a fetched JWKS is fetched again after this */
#define STK_OIDC_FETCH_TIMEOUT 5     /* seconds for one JWKS fetch */
#define STK_OIDC_RSA_MIN_BITS 2048
#define STK_OIDC_RSA_MAX_BITS 8192
#define STK_OIDC_ISSUER_MAX 256      /* characters of an issuer or audience */
#define STK_OIDC_CLAIM_MAX 128       /* characters of a device claim value, sub, tenant */
#define STK_OIDC_DEVICE_CLAIM_DEFAULT "deviceId"

/* ---- JWKS ---- */
struct stk_jwks;

/* Parse a JWKS ({"keys":[...]}, strict JSON: duplicate members refused).
 * Signing keys kept: RSA (RS256) of STK_OIDC_RSA_MIN_BITS to
 * STK_OIDC_RSA_MAX_BITS bits, EC P-256 (ES256); each needs a kid, unique in
 * the set. Keys for another use ("use" not "sig"), of another kty, curve
 * or alg are skipped. strict (oidc add): a key too small, a malformed key
 * or a duplicate kid refuses the whole document (STK_E_ARG naming the key),
 * and so does a document without any usable key; !strict (a refresh): those
 * keys are skipped and logged, the rest kept. *out: free with stk_jwks_free. */
int stk_jwks_parse(const char *json, size_t len, int strict, struct stk_jwks **out,
    struct stk_error *err);
void stk_jwks_free(struct stk_jwks *k);
size_t stk_jwks_count(const struct stk_jwks *k);
/* The i-th key's kid and algorithm ("RS256"/"ES256"); NULL past the end. */
const char *stk_jwks_kid(const struct stk_jwks *k, size_t i);
const char *stk_jwks_alg(const struct stk_jwks *k, size_t i);

/* ---- ID tokens ---- */
/* What a trusted issuer's record says (oidc add). */
struct stk_oidc_issuer {
	char issuer[STK_OIDC_ISSUER_MAX + 1];    /* exact "iss" */
	char audience[STK_OIDC_ISSUER_MAX + 1];  /* exact "aud" (or one of them) */
	char device_claim[65];                   /* claim naming the device */
	char tenant[STK_OIDC_CLAIM_MAX + 1];     /* required "tid", "" for none */
	char jwks_url[1024];                     /* https URL, "" in FILE mode */
	char *jwks;       /* FILE mode: the JWKS document (malloc'd), else NULL */
	char *jwks_ca;    /* URL mode: PEM CA for the URL (malloc'd), NULL: system */
	int64_t added_at;
	/* Read from the store: the site key (kid) that signed the record and its
	 * signature; endorsed (stk_oidc_foreach): 1 when it verifies with a key
	 * the site directory's roots trust. */
	char endorsed_by[64];
	char *endorsement;
	int endorsed;
};
void stk_oidc_issuer_clear(struct stk_oidc_issuer *i);

/* A verified ID token: who it names. */
struct stk_idtoken {
	char issuer[STK_OIDC_ISSUER_MAX + 1];
	char device[STK_OIDC_CLAIM_MAX + 1];   /* value of the device claim */
	char sub[STK_OIDC_CLAIM_MAX + 1];
	char kid[STK_OIDC_CLAIM_MAX + 1];
	int64_t exp;
};

/* The "iss" of an ID token, read without verifying it (which issuer's keys
 * to verify with): the size, encoding and strict-JSON rules apply. On
 * refusal *reason is STK_REFUSAL_IDTOKEN_INVALID. */
int stk_idtoken_peek_issuer(const char *token, size_t len,
    char iss[STK_OIDC_ISSUER_MAX + 1], enum stk_refusal *reason,
    struct stk_error *err);

/* Verify an ID token of issuer `is` with the keys `keys` at `now`:
 * at most STK_OIDC_TOKEN_MAX bytes, strict base64url and JSON, header
 * "alg" RS256 or ES256 and the same as the JWK's ("none", HS*, any other or
 * a mismatch refused), "crit" refused, "kid" in the JWKS, signature, exact
 * "iss", "aud" equal to the audience (a string, or an array of strings
 * holding it), integer "exp" (required), "nbf" and "iat" within
 * STK_OIDC_LEEWAY, "tid" equal to the tenant when one is configured, "sub"
 * and the device claim present as sane strings (1 to STK_OIDC_CLAIM_MAX of
 * [A-Za-z0-9._:@/+=-]). 0 and *out filled, or a negative code with *reason:
 * IDTOKEN_INVALID, IDTOKEN_EXPIRED, IDTOKEN_AUDIENCE, IDTOKEN_KEY (kid not
 * in the JWKS), IDTOKEN_TENANT, IDTOKEN_DEVICE. */
int stk_idtoken_verify(const struct stk_oidc_issuer *is, const struct stk_jwks *keys,
    const char *token, size_t len, int64_t now, struct stk_idtoken *out,
    enum stk_refusal *reason, struct stk_error *err);

/* Fetch a JWKS document over https (libcurl, TLS 1.2+, peer and host
 * verified against the system CAs, or only ca_pem when given), at most
 * STK_OIDC_JWKS_MAX bytes, STK_OIDC_FETCH_TIMEOUT seconds, no redirects.
 * *out malloc'd, NUL-terminated. */
int stk_jwks_fetch(const char *url, const char *ca_pem, char **out, size_t *len,
    struct stk_error *err);

/* ---- The site's trusted issuers ---- */
/* Check and record an issuer (the CLI read or fetched its JWKS into
 * is->jwks; in URL mode is->jwks is checked then dropped, the keys are
 * fetched when needed). The record is signed with this node's site key
 * (every field, the JWKS and CA by SHA-256): stk_oidc_check trusts only a
 * record whose signature verifies with a trusted site key, so a row written
 * into the store directly (attacker 3) registers nothing. The issuer must be an https URL, the audience and
 * tenant printable, the device claim a JSON member name of letters, digits
 * and '_'; the JWKS must parse strictly. STK_E_EXISTS when the issuer is
 * trusted already. Audited (oidc.issuer.add). */
int stk_oidc_add(struct stk_site *s, const struct stk_oidc_issuer *is,
    const char *actor, struct stk_error *err);
/* Stop trusting an issuer: STK_E_NOTFOUND when it is not trusted. The
 * devices it registered stay (block them with `devices block`). Audited
 * (oidc.issuer.remove). */
int stk_oidc_remove(struct stk_site *s, const char *issuer, const char *actor,
    struct stk_error *err);
/* The record of an issuer (STK_E_NOTFOUND when not trusted); clear *out. */
int stk_oidc_get(struct stk_site *s, const char *issuer, struct stk_oidc_issuer *out,
    struct stk_error *err);
typedef int (*stk_oidc_cb)(void *ctx, const struct stk_oidc_issuer *is,
    long devices);
/* Every trusted issuer, by issuer, with the number of devices it registered. */
int stk_oidc_foreach(struct stk_site *s, stk_oidc_cb cb, void *ctx,
    struct stk_error *err);

/* Registration (site/device.c): peek the issuer, refuse an untrusted one
 * (STK_REFUSAL_IDTOKEN_ISSUER: no record, or a record not endorsed), verify with its keys (URL mode: the cache,
 * fetched again for an unknown kid when the last fetch is older than
 * STK_OIDC_REFRESH_MIN). Reads only. */
int stk_oidc_check(struct stk_site *s, const char *token, size_t len, int64_t now,
    struct stk_idtoken *out, enum stk_refusal *reason, struct stk_error *err);

/* The OIDC identity device `guid` registered with: issuer and device claim
 * value, both "" when it registered otherwise. */
int stk_oidc_device_identity(struct stk_site *s, const char *guid, char *issuer,
    size_t ilen, char *device, size_t dlen, struct stk_error *err);

/* Drop the in-memory JWKS cache (tests; a removed issuer's keys). */
void stk_oidc_cache_flush(void);

#ifdef __cplusplus
}
#endif
#endif
