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
#include "sitetoken/site.h"
#include "sitetoken/token.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STK_CLIENT_TOKEN_LIFETIME ((int64_t)90 * 86400) /* seconds: 90 days */
#define STK_DEVICE_CERT_MAX 16384              /* bytes of DER we accept */

/* Names of site settings (the settings table). Values are "on"/"off". */
#define STK_SETTING_ALLOW_CMG "allow-cmg"           /* default on */
#define STK_SETTING_INTERNAL_REG "internal-registration" /* default on */

/* Refusal reason codes: stable strings for HTTP bodies, logs and audit. */
#define STK_REASON_NO_CLIENT_CERT "no_client_certificate"
#define STK_REASON_NO_TOKEN "no_token"
#define STK_REASON_TOKEN_INVALID "token_invalid"
#define STK_REASON_TOKEN_EXPIRED "token_expired"
#define STK_REASON_TOKEN_NOTYET "token_not_yet_valid"
#define STK_REASON_TOKEN_TYPE "wrong_token_type"
#define STK_REASON_BULK_BLOCKED "bulk_token_blocked"
#define STK_REASON_BULK_UNKNOWN "bulk_token_unknown"
#define STK_REASON_BINDING "certificate_mismatch"
#define STK_REASON_UNKNOWN_DEVICE "unknown_device"
#define STK_REASON_DEVICE_BLOCKED "device_blocked"
#define STK_REASON_CMG_DISABLED "cloud_gateway_disabled"
#define STK_REASON_INTERNAL_DISABLED "internal_registration_disabled"
#define STK_REASON_CREDENTIAL "credential_required"
#define STK_REASON_BAD_CERT "bad_certificate"
#define STK_REASON_SUPERSEDED "token_superseded"

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

/* Request facts for a registration. */
struct stk_reg_request {
	enum stk_via via;
	const unsigned char *cert_der;    /* the device's self-signed certificate */
	size_t cert_len;
	const char *bulk_token;           /* NULL when none */
	size_t bulk_len;
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
 * certificate). The same certificate registering again keeps its device
 * GUID. On refusal returns a negative code and sets *reason to an
 * STK_REASON_* string (static); the refusal is audited. */
int stk_device_register(struct stk_site *s, const struct stk_reg_request *req,
    int64_t now, struct stk_issued *out, const char **reason,
    struct stk_error *err);

/* Gateway authentication: client token valid at `now`, bound to the TLS
 * client certificate `peer_der`, device known and not blocked, allow-cmg on.
 * On success fills *dev. Refusals audited, *reason set. */
int stk_device_authenticate(struct stk_site *s, const char *token, size_t len,
    const unsigned char *peer_der, size_t peer_len, int64_t now,
    struct stk_device *dev, const char **reason, struct stk_error *err);

/* Renewal through the gateway: authenticate as above, then issue a new
 * 90-day token for the same certificate. An expired token is refused with
 * STK_REASON_TOKEN_EXPIRED (register again on the internal network). */
int stk_device_renew(struct stk_site *s, const char *token, size_t len,
    const unsigned char *peer_der, size_t peer_len, int64_t now,
    struct stk_issued *out, const char **reason, struct stk_error *err);

/* Map a token refusal code to its STK_REASON_* string. */
const char *stk_device_reason_of(int code);

int stk_device_get(struct stk_site *s, const char *guid, struct stk_device *dev,
    struct stk_error *err);
typedef int (*stk_device_cb)(void *ctx, const struct stk_device *d);
int stk_device_foreach(struct stk_site *s, stk_device_cb cb, void *ctx,
    struct stk_error *err);
int stk_device_set_blocked(struct stk_site *s, const char *guid, int block,
    const char *actor, struct stk_error *err);
/* allow: -1 back to the site default, 0 off, 1 on. */
int stk_device_set_allow_cmg(struct stk_site *s, const char *guid, int allow,
    const char *actor, struct stk_error *err);

/* Fill rows[i].devices of a certificates view (stk_certs_list): for a bulk
 * token, the devices that registered with it; for the site certificate,
 * every registered device (their client tokens are signed by its key). */
int stk_certs_count_devices(struct stk_site *s, struct stk_cert_row *rows,
    size_t n, struct stk_error *err);

/* Site settings ("on"/"off" values). get: default_on when unset. */
int stk_setting_get_bool(struct stk_site *s, const char *name, int default_on,
    int *value, struct stk_error *err);
int stk_setting_set(struct stk_site *s, const char *name, const char *value,
    const char *actor, struct stk_error *err);

#ifdef __cplusplus
}
#endif
#endif
