/* sitetoken — site policy for devices: registration (internal MP, or bulk
 * token through the cloud gateway), gateway authentication, renewal, client
 * settings ("allow cloud gateway") and the device block list.
 *
 * Every registration, renewal and refusal appends an audit record in the
 * same transaction as its change, so an acknowledged registration is durable
 * (SQLite WAL, synchronous=FULL) and audited.
 *
 * A struct stk_site is one database connection: these functions are not
 * thread-safe on one site handle. A multi-threaded caller (the server)
 * serialises them with its own lock. */
#ifndef SITETOKEN_DEVICE_H
#define SITETOKEN_DEVICE_H

#include <stddef.h>
#include <stdint.h>
#include "sitetoken/error.h"
#include "sitetoken/oidc.h"
#include "sitetoken/refusal.h"
#include "sitetoken/site.h"
#include "sitetoken/token.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STK_CLIENT_TOKEN_LIFETIME ((int64_t)90 * 86400) /* seconds: 90 days */
#define STK_DEVICE_CERT_MAX 16384              /* bytes of DER we accept */
/* The device API's path prefix on the MP and the CMG (docs/api.md); the
 * agent builds its URLs with it. */
#define STK_API_PREFIX "/sitetoken/v1/"

/* Names of site settings (the settings table). Values are "on"/"off". */
#define STK_SETTING_ALLOW_CMG "allow-cmg"           /* default on */
#define STK_SETTING_INTERNAL_REG "internal-registration" /* default on */

enum stk_via { STK_VIA_MP = 0, STK_VIA_CMG };

struct stk_device {
	char guid[STK_GUID_LEN + 1];
	char thumbprint[44];              /* x5t#S256 of the device certificate */
	int64_t registered_at;
	char via[4];                      /* "mp" or "cmg" */
	char bulk_guid[STK_GUID_LEN + 1]; /* bulk token used, "" if none */
	int blocked;
	int allow_cmg;                    /* -1: site default, 0 off, 1 on */
	char last_jti[STK_GUID_LEN + 1];
	int64_t last_issued_at, token_exp;
	/* Idempotent renewal: the token last_jti replaced stays good for one
	 * more renewal until last_jti is first used (a device that lost the
	 * renewal response retries with the token it still holds). */
	char prev_jti[STK_GUID_LEN + 1];  /* "" if none */
	int token_used;                   /* last_jti seen at the gateway */
	char attestation[8];              /* "tpm" when the key was attested at
	                                     registration; "" or "none" otherwise
	                                     (set for issuing; attest_policy.h
	                                     reads the record) */
};

/* Result of a registration or renewal. token: the client token (malloc'd;
 * free with stk_token_free). */
struct stk_issued {
	struct stk_device dev;
	char *token;
	int new_device;                   /* 0 when an existing device registered again */
};
void stk_issued_clear(struct stk_issued *r); /* wipes/frees the token */

/* ---- Proof of possession on the HTTP MP (docs/api.md) ----
 * The MP hands out a challenge (nonce); the device signs
 *   "sitetoken-register-v1\n" <nonce> "\n" <x5t#S256 of its certificate>
 * with its key (SHA-256; RSA PKCS#1 v1.5, or ECDSA as raw r||s or DER) and
 * sends nonce and signature (base64url) with the certificate. A nonce is
 * good for STK_CHALLENGE_TTL seconds, once, on the MP process that made it.
 * struct stk_challenges is thread-safe. */
#define STK_CHALLENGE_TTL 120
#define STK_CHALLENGE_LEN 54      /* base64url of 40 bytes */
#define STK_POP_REGISTER "sitetoken-register-v1"
#define STK_POP_REKEY "sitetoken-rekey-v1"
struct stk_challenges;
int stk_challenges_new(struct stk_challenges **out, struct stk_error *err);
void stk_challenges_free(struct stk_challenges *c);
int stk_challenge_issue(struct stk_challenges *c, int64_t now,
    char nonce[STK_CHALLENGE_LEN + 1], int64_t *expires_at, struct stk_error *err);
/* Issued here, not expired, not used: 0, else STK_E_AUTH. */
int stk_challenge_check(struct stk_challenges *c, const char *nonce, int64_t now,
    struct stk_error *err);
/* As check, and marks it used. */
int stk_challenge_consume(struct stk_challenges *c, const char *nonce, int64_t now,
    struct stk_error *err);
/* The message a proof signs: context "\n" a "\n" b, in out (malloc'd). */
char *stk_pop_message(const char *context, const char *a, const char *b);
/* Verify a proof signature (base64url) over msg with the certificate's key. */
int stk_pop_verify(const unsigned char *cert_der, size_t cert_len, const char *msg,
    const char *sig_b64url, struct stk_error *err);

/* Request facts for a registration. */
struct stk_reg_request {
	enum stk_via via;
	int tls;                          /* the listener is TLS (the CMG always) */
	/* TLS listeners: the client certificate of the handshake (which proved
	 * the key): that is the certificate registered. */
	const unsigned char *tls_cert_der;
	size_t tls_cert_len;
	/* The certificate in the body: on the HTTP MP the one registered (with
	 * the challenge proof below); on TLS, if given, it must equal the TLS
	 * client certificate. */
	const unsigned char *cert_der;
	size_t cert_len;
	struct stk_challenges *challenges; /* HTTP MP */
	const char *nonce, *proof;        /* HTTP MP: challenge and signature */
	const char *bulk_token;           /* NULL when none */
	size_t bulk_len;
	const char *id_token;             /* OIDC ID token in place of a bulk
	                                     token (sitetoken/oidc.h), or NULL */
	size_t id_token_len;
	int trusted_credential;           /* MP over HTTPS: caller verified a client
	                                     certificate chaining to a trusted CA */
	int require_credential;           /* HTTPS MP: a credential is required */
	const char *peer;                 /* for the audit actor ("127.0.0.1") */
	const char *attestation;          /* "tpm" when the caller verified TPM key
	                                     attestation of the certificate's key
	                                     (attest_policy.h), NULL: none */
	const char *ek_sha256;            /* hex SHA-256 of the EK certificate */
};

/* Register a device and issue its client token (90 days, bound to the
 * certificate), once it proved possession of the certificate's key (TLS
 * client certificate, or the challenge signature on the HTTP MP). The same
 * certificate registering again keeps its device GUID and gets a new token
 * (a registration retried after a lost response); every registration is
 * appended to the enrollment history. With an ID token (id_token) the
 * device is the one its issuer + device claim registered: the same key
 * registers again; another key is refused STK_REFUSAL_IDTOKEN_IDENTITY (an
 * ID token alone never moves a device to a new key: attacker 1 of the
 * threat model, without the device's key, must not supersede it). allow-cmg off refuses a CMG
 * registration before the bulk token is looked at. On refusal returns a negative code and sets *reason (refusal.h;
 * STK_REFUSAL_INTERNAL for a store or backend failure); a policy refusal is
 * audited. */
int stk_device_register(struct stk_site *s, const struct stk_reg_request *req,
    int64_t now, struct stk_issued *out, enum stk_refusal *reason,
    struct stk_error *err);

/* stk_device_register in two halves, for a server that keeps the checks out
 * of its registration lock (server/server.c):
 *  - stk_device_register_check only reads (proof of possession, certificate
 *    rules, site switches, the bulk token's signature, record, block and
 *    source, attestation policy): call it with any handle of the site, no
 *    lock (e.g. a worker thread's own). On refusal it returns a negative
 *    code with *reason set and records nothing: pass the refusal to
 *    stk_device_register_refused (audited, aggregated per source on that
 *    handle: STK_AUDIT_REFUSAL_*), unless *reason is STK_REFUSAL_INTERNAL.
 *  - stk_device_register_commit does the rest in one transaction on a
 *    signing handle: device blocked?, the bulk token's use limit (exactly
 *    once, conditional update), the token, history and audit; it audits
 *    its own refusals. req must be the request the check saw; a token
 *    signed ahead in c (stk_device_register_presign) is taken from c.
 * c borrows from req (the certificate); clear it with
 * stk_reg_checked_clear after the commit. */
struct stk_reg_checked {
	const unsigned char *der;      /* the certificate registered */
	size_t derlen;
	char thumb[44];                /* its x5t#S256 */
	struct stk_claims bulk;        /* the bulk token's claims, if any */
	/* stk_device_register_presign: the client token signed ahead, used by
	 * the commit only if its device GUID and the site's signer are still
	 * the ones it was signed for (else the commit signs again). */
	const struct stk_signer *signer;
	char *token;
	char guid[STK_GUID_LEN + 1];
	char jti[STK_GUID_LEN + 1];
	int64_t signed_at;
	int guid_new;                  /* guid was made (no device had it) */
	/* An ID token registration: who the verified token names (oidc.h). */
	struct stk_idtoken idt;
	int have_idt;
};

int stk_device_register_check(struct stk_site *s, const struct stk_reg_request *req,
    int64_t now, struct stk_reg_checked *c, enum stk_refusal *reason,
    struct stk_error *err);
void stk_device_register_refused(struct stk_site *s, const struct stk_reg_request *req,
    const struct stk_reg_checked *c, enum stk_refusal reason,
    const struct stk_error *why);
int stk_device_register_commit(struct stk_site *s, const struct stk_reg_request *req,
    struct stk_reg_checked *c, int64_t now, struct stk_issued *out,
    enum stk_refusal *reason, struct stk_error *err);
void stk_reg_checked_clear(struct stk_reg_checked *c);
/* Sign the client token of a checked registration ahead of the commit,
 * outside any lock: s (any handle, e.g. a worker's verify-only one) tells
 * whether the certificate already has a device (its GUID is kept) or not (a
 * new GUID); signer is the site's current signer as the caller last got it
 * from the signing handle (stk_site_signer, under its lock; a replaced
 * signer stays valid until that handle closes). The commit at the same
 * `now` uses the token when the GUID and the signer still match. */
int stk_device_register_presign(struct stk_site *s, const struct stk_signer *signer,
    const struct stk_reg_request *req, int64_t now, struct stk_reg_checked *c,
    struct stk_error *err);
/* A refusal of stk_device_register_check counted on handle s without its
 * store (stk_audit_refusal_counted): 1 when nothing more is to be done (or
 * nothing to audit), 0 when the caller must still call
 * stk_device_register_refused with s (under its lock). */
int stk_device_register_refusal_counted(struct stk_site *s,
    const struct stk_reg_request *req, enum stk_refusal reason);

/* Gateway authentication: client token valid at `now`, bound to the TLS
 * client certificate `peer_der`, device known and not blocked, "att":"tpm"
 * in the token when attestation is required for the device (its bulk
 * token's policy, else the site's), allow-cmg on.
 * On success fills *dev. Refusals audited, *reason set. */
int stk_device_authenticate(struct stk_site *s, const char *token, size_t len,
    const unsigned char *peer_der, size_t peer_len, int64_t now,
    struct stk_device *dev, enum stk_refusal *reason, struct stk_error *err);
/* The same for a request on a client connection a server keeps open:
 * conn (stk_gw_conn_new, one per connection, freed with stk_gw_conn_free
 * when it closes; never shared by two connections at once) remembers the
 * certificate's thumbprint and the last token's cache key, so a kept-alive
 * connection hashes neither again. Both are compared byte for byte with the
 * request's before they are used; conn holds a copy of the last token
 * (wiped when replaced or freed). conn NULL: as stk_device_authenticate.
 *
 * Both answer from the gateway cache when it holds the token (verified with
 * this certificate) and the device's state at the current generation: a
 * change made through any handle of this process applies to the next call;
 * one made by another process or node applies to every call that starts 1 s
 * or more after it committed (site/registration/tokcache.c). The site
 * handle itself is not thread-safe: one thread at a time (the server opens
 * one per worker).
 * On success dev holds guid, thumbprint, last_jti, blocked, allow_cmg,
 * token_used, last_issued_at and token_exp. */
struct stk_gw_conn;
struct stk_gw_conn *stk_gw_conn_new(void);
void stk_gw_conn_free(struct stk_gw_conn *conn);   /* accepts NULL */
int stk_device_authenticate_conn(struct stk_site *s, struct stk_gw_conn *conn,
    const char *token, size_t len, const unsigned char *peer_der, size_t peer_len,
    int64_t now, struct stk_device *dev, enum stk_refusal *reason,
    struct stk_error *err);

/* Renewal through the gateway: authenticate as above, then issue a new
 * 90-day token for the same certificate. Idempotent: the token the last
 * renewal replaced renews again while the new one has not been used (its
 * response was lost); the update re-checks the device's latest jti, so of
 * renewals racing on several nodes one wins and the others are refused
 * STK_REFUSAL_SUPERSEDED. An expired token is refused with
 * STK_REFUSAL_TOKEN_EXPIRED (register again on the internal network). */
int stk_device_renew(struct stk_site *s, const char *token, size_t len,
    const unsigned char *peer_der, size_t peer_len, int64_t now,
    struct stk_issued *out, enum stk_refusal *reason, struct stk_error *err);

int stk_device_get(struct stk_site *s, const char *guid, struct stk_device *dev,
    struct stk_error *err);
typedef int (*stk_device_cb)(void *ctx, const struct stk_device *d);
int stk_device_foreach(struct stk_site *s, stk_device_cb cb, void *ctx,
    struct stk_error *err);
int stk_device_set_blocked(struct stk_site *s, const char *guid, int block,
    const char *actor, struct stk_error *err);
/* Devices ever enrolled with bulk token bulk_guid (enrollment history). */
int stk_device_foreach_bulk(struct stk_site *s, const char *bulk_guid,
    stk_device_cb cb, void *ctx, struct stk_error *err);
/* Block every device ever enrolled with bulk token bulk_guid (a leaked
 * token), each audited, in one transaction; *count: devices newly blocked. */
int stk_device_block_bulk(struct stk_site *s, const char *bulk_guid,
    const char *actor, long *count, struct stk_error *err);

/* Move a device's token to a new certificate (re-key before the old one
 * expires), through the CMG: the request authenticates as a renewal with the
 * old certificate (TLS) and token; `proof` is the new key's signature over
 * stk_pop_message(STK_POP_REKEY, <token jti>, <x5t#S256 of new_cert>). The
 * device's certificate becomes new_cert and a token bound to it is issued;
 * the old token is superseded. Audited (device.rekey). */
int stk_device_rekey(struct stk_site *s, const char *token, size_t len,
    const unsigned char *peer_der, size_t peer_len,
    const unsigned char *new_cert, size_t new_len, const char *proof,
    int64_t now, struct stk_issued *out, enum stk_refusal *reason,
    struct stk_error *err);

/* The gateway's verdict on a client token whose signature and claims
 * already verified (`sitetoken verify` on a site): device known, the token
 * is its latest, not blocked, not bound to another certificate. Reads only. */
int stk_device_token_verdict(struct stk_site *s, const struct stk_claims *c,
    enum stk_refusal *reason, struct stk_error *err);
/* allow: -1 back to the site default, 0 off, 1 on. */
int stk_device_set_allow_cmg(struct stk_site *s, const char *guid, int allow,
    const char *actor, struct stk_error *err);

/* Site settings ("on"/"off" values). get: default_on when unset. */
int stk_setting_get_bool(struct stk_site *s, const char *name, int default_on,
    int *value, struct stk_error *err);
int stk_setting_set(struct stk_site *s, const char *name, const char *value,
    const char *actor, struct stk_error *err);

#ifdef __cplusplus
}
#endif
#endif
