/* Device certificates as a registration credential: what the site accepts
 * (site/registration/devcert.c). */
#ifndef SITETOKEN_DEVCERT_H
#define SITETOKEN_DEVCERT_H

#include <stddef.h>
#include <stdint.h>
#include "sitetoken/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds a device certificate's notBefore may lie ahead of the site's
 * clock, and its notAfter behind it (device clocks drift). */
#define STK_DEVICE_CERT_LEEWAY 300
#define STK_DEVICE_RSA_MIN_BITS 2048
#define STK_DEVICE_RSA_MAX_BITS 8192  /* larger keys: only a cost to us */

/* Parse a device certificate (DER, at most STK_DEVICE_CERT_MAX bytes) once
 * and check it can be registered: an RSA key of 2048 to 8192 bits or an EC
 * key on P-256, P-384 or P-521 (threat model, attacker 1: no weak device
 * key); valid at now within STK_DEVICE_CERT_LEEWAY (not yet valid, expired
 * refused). On success thumb is its x5t#S256. Any refusal is STK_E_ARG
 * with a message saying why (wire reason bad_certificate, HTTP 400). */
int stk_device_cert_check(const unsigned char *der, size_t len, int64_t now,
    char thumb[44], struct stk_error *err);
/* The same check without the process-wide cache of parsed certificates
 * (stk_device_cert_check parses a given DER once and compares its dates
 * with now on every call): the reference of the differential test. */
int stk_device_cert_check_uncached(const unsigned char *der, size_t len,
    int64_t now, char thumb[44], struct stk_error *err);

#ifdef __cplusplus
}
#endif

#endif
