/* sitetoken — the certificates view (`sitetoken certs`, the console's
 * Certificates page): one row per site key certificate in use (every node's)
 * and per bulk registration token. Implemented in
 * site/registration/certs.c; reads only.
 *
 * Thread contract: as for the rest of the site API, one stk_site handle is
 * used by one thread at a time. */
#ifndef SITETOKEN_CERTS_H
#define SITETOKEN_CERTS_H

#include <stddef.h>
#include <stdint.h>
#include "sitetoken/error.h"
#include "sitetoken/site.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The two kinds of row (stk_cert_row.type), as the console shows them. */
#define STK_CERT_TYPE_SITE "Site Signing"
#define STK_CERT_TYPE_BULK "Bulk Registration Token"

struct stk_cert_row {
	char type[32];      /* STK_CERT_TYPE_SITE or STK_CERT_TYPE_BULK */
	char id[64];        /* GUID for tokens, SHA-1 thumbprint (hex) for certs */
	int64_t valid_from, valid_to, created_at;
	char status[16];    /* Active, Blocked, Expired */
	long devices;       /* devices registered with it */
	long uses, max_uses; /* bulk tokens: registrations counted; limit (0: none) */
	char sources[512];   /* bulk tokens: networks (--source), "" for anywhere
	                        (STK_BULK_SOURCES_LEN of sitetoken/bulklimits.h) */
};

/* All rows, unsorted, with their uses, limits and networks (not yet their
 * devices). *rows malloc'd (free()). */
int stk_certs_list(struct stk_site *s, int64_t now, struct stk_cert_row **rows,
    size_t *n, struct stk_error *err);

/* Fill rows[i].devices of a certificates view (stk_certs_list): for a bulk
 * token, the devices ever enrolled with it (enrollment history, so a
 * re-registration does not take a device off its count); for the site
 * certificate, every registered device. */
int stk_certs_count_devices(struct stk_site *s, struct stk_cert_row *rows,
    size_t n, struct stk_error *err);

#ifdef __cplusplus
}
#endif

#endif /* SITETOKEN_CERTS_H */
