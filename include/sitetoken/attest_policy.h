/* sitetoken — the site's policy for attested device registration
 * (SPEC.md "Registration credentials", issue 18, server half):
 * the manufacturer roots trusted for device EKs, the require-attestation
 * setting (site default and per bulk token), and what a registered device
 * proved (attestation "tpm"|"none", SHA-256 of its EK certificate).
 *
 * Threads: like every stk_site function, one site handle is one store
 * connection; callers serialise calls on one handle. */
#ifndef SITETOKEN_ATTEST_POLICY_H
#define SITETOKEN_ATTEST_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>
#include "sitetoken/error.h"
#include "sitetoken/site.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Site setting (settings table, "on"/"off", default off). */
#define STK_SETTING_REQUIRE_ATTESTATION "require-attestation"
/* Refusal reasons: STK_REFUSAL_ATTESTATION_REQUIRED and STK_REFUSAL_ATTEST_*
 * of sitetoken/refusal.h. */

#define STK_ATTEST_ROOTS_MAX 64          /* certificates per roots file */

struct stk_attest_root {
	char sha256[65];                 /* hex of SHA-256(DER) */
	char subject[256];
	int64_t added_at;
};

/* Trust every certificate of a PEM file (one or more CERTIFICATE blocks)
 * as a manufacturer root for device EKs. A root already trusted is left as
 * it was. Audited (attest.root.add), one record per certificate, in one
 * transaction. *added: how many were new. */
int stk_attest_roots_add(struct stk_site *s, const char *pem, size_t len,
    const char *actor, size_t *added, struct stk_error *err);
/* Stop trusting the certificates of a PEM file. STK_E_NOTFOUND (nothing
 * changed) when none of them is trusted. Audited (attest.root.remove). */
int stk_attest_roots_remove(struct stk_site *s, const char *pem, size_t len,
    const char *actor, size_t *removed, struct stk_error *err);
typedef int (*stk_attest_root_cb)(void *ctx, const struct stk_attest_root *r);
int stk_attest_roots_foreach(struct stk_site *s, stk_attest_root_cb cb,
    void *ctx, struct stk_error *err);
/* A new X509_STORE of the trusted roots (empty when none: every EK is then
 * refused). Caller frees with X509_STORE_free. */
int stk_attest_roots_store(struct stk_site *s, X509_STORE **out,
    struct stk_error *err);

/* Does a registration with this bulk token (NULL/"" for none) need an
 * attested key? The token's own policy when it has one, else the site's
 * require-attestation setting. */
int stk_attest_required(struct stk_site *s, const char *bulk_guid,
    int *required, struct stk_error *err);
/* Per bulk token policy (bulk new --require-attestation): 1 on, 0 off,
 * -1 back to the site default. Audited (bulk.policy). */
int stk_bulk_set_require_attestation(struct stk_site *s, const char *guid,
    int on, const char *actor, struct stk_error *err);

/* What a device proved at registration: "tpm" with the EK certificate's
 * SHA-256 (hex), or "none". Caller holds the registration transaction. */
int stk_attest_record_device(struct stk_site *s, const char *guid,
    const char *attestation, const char *ek_sha256, struct stk_error *err);
/* Audit a refused attested registration (event device.register.attest,
 * subject: the TLS certificate thumbprint). Best effort, like every
 * refusal: a failed audit write is logged, the refusal still returned. */
void stk_attest_audit_refusal(struct stk_site *s, const char *actor,
    const char *subject, const char *reason, const char *msg);
/* Read it back: att[8] ("tpm", "none"), ek[65] ("" when none). */
int stk_attest_device_get(struct stk_site *s, const char *guid, char *att,
    size_t attlen, char *ek, size_t eklen, struct stk_error *err);

#ifdef __cplusplus
}
#endif
#endif
