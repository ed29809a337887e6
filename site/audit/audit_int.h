/* Internal to site/audit/: what the chain (log.c) shares with checkpoints
 * and verification (audit.c). */
#ifndef SITETOKEN_AUDIT_INT_H
#define SITETOKEN_AUDIT_INT_H

#include "site_int.h"

/* prev_hash of record 1. */
extern const char audit_genesis[65];
/* A record's hash: SHA-256 over its length-prefixed fields (log.c). */
void audit_hash(const struct stk_audit_record *r, char out[65]);
/* The newest record's seq and hash (0 and audit_genesis when none). */
int audit_head(struct stk_site *s, int64_t *seq, char hash[65],
    struct stk_error *err);
/* The newest checkpoint's record and time (0, 0 when none); -1 when the
 * store cannot be read. */
int64_t audit_last_checkpoint_at(struct stk_site *s, int64_t *at);
int64_t audit_last_checkpoint(struct stk_site *s);

#endif
