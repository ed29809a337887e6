/* Internal to site/registration/: what registration.c shares with the
 * gateway checks (gateway.c). */
#ifndef SITETOKEN_REGISTRATION_INT_H
#define SITETOKEN_REGISTRATION_INT_H

#include "sitetoken/device.h"
#include "site_int.h"

/* Record a refusal in its own transaction. Best effort: a refusal is
 * returned to the caller even when the audit write fails (logged). */
void dev_audit_refusal(struct stk_site *s, const char *actor, const char *event,
    const char *subject, enum stk_refusal reason, const struct stk_error *why);
/* by: "guid" or "cert_thumbprint". */
int dev_lookup(struct stk_site *s, const char *by, const char *key,
    struct stk_device *d, struct stk_error *err);
/* Issue a token for device d and write the row (registration.c says how).
 * Caller holds the transaction. */
int dev_issue_store(struct stk_site *s, struct stk_device *d, int is_new,
    const unsigned char *cert_der, size_t cert_len, const char *expect_jti,
    const char *prev_jti, int64_t now, char **token, struct stk_error *err);

#endif
