/* sitetoken — read-only figures about a site for monitoring (the server's
 * metrics listener and the admin console's dashboard). Nothing here writes.
 *
 * Like the rest of a struct stk_site, not thread-safe on one site handle:
 * a multi-threaded caller serialises these with its own lock. */
#ifndef SITETOKEN_STATS_H
#define SITETOKEN_STATS_H

#include <stddef.h>
#include <stdint.h>
#include "sitetoken/error.h"
#include "sitetoken/site.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Records and signed checkpoints in the audit log (counted, not verified:
 * see stk_audit_verify for that). */
int stk_stats_audit_counts(struct stk_site *s, int64_t *records,
    int64_t *checkpoints, struct stk_error *err);

/* One site key that still verifies: active or retiring, and trusted (a
 * root of the site directory or endorsed from one, as stk_site_keys_list
 * says; a key row without a valid endorsement is left out), with the
 * notAfter of its certificate. not_after: when a retiring key stops verifying (0 for
 * an active key). */
struct stk_stats_key {
	char kid[64], node[64], status[12];
	int64_t cert_not_after, not_after;
};
/* *rows malloc'd (free()). */
int stk_stats_keys(struct stk_site *s, struct stk_stats_key **rows, size_t *n,
    struct stk_error *err);

/* notAfter of a DER certificate, in seconds since 1970; 0 when it cannot
 * be read. */
int64_t stk_stats_cert_not_after(const void *der, size_t len);

#ifdef __cplusplus
}
#endif
#endif
