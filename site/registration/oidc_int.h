/* Internal to site/: the OIDC device map (oidc_site.c) for registration
 * (device.c). Inside the caller's transaction. */
#ifndef SITETOKEN_OIDC_INT_H
#define SITETOKEN_OIDC_INT_H

#include <stddef.h>
#include <stdint.h>
#include "sitetoken/oidc.h"

struct stk_site;
/* The device GUID registered for issuer + device claim value: 0, or
 * STK_E_NOTFOUND (no error set), or a store error. */
int site_oidc_device_lookup(struct stk_site *s, const char *issuer, const char *device,
    char guid[STK_GUID_LEN + 1], struct stk_error *err);
/* The identity a device was registered with: 0, STK_E_NOTFOUND, or an error. */
int site_oidc_identity_of(struct stk_site *s, const char *guid, char *issuer, size_t ilen,
    char *device, size_t dlen, struct stk_error *err);
int site_oidc_device_bind(struct stk_site *s, const struct stk_idtoken *id,
    const char *guid, int64_t now, struct stk_error *err);

#endif
