/* TPM NV monotonic counter behind the key backend's counter slot
 * (tpm_nv.c), and the two hooks it needs from tpm_backend.c. */
#ifndef SITETOKEN_TPM_NV_H
#define SITETOKEN_TPM_NV_H

#include <stdint.h>
#include <tss2/tss2_esys.h>
#include "sitetoken/key.h"

/* stk_key_backend.counter for the tpm backend. */
int tpm_nv_counter(struct stk_key *key, const char *name, int advance,
    uint64_t *value, struct stk_error *err);
/* The key's ESAPI context with the key's lock held (NULL and unlocked, err
 * set, when the TPM cannot be reached); tpm_key_unlock releases it. */
ESYS_CONTEXT *tpm_key_lock_esys(struct stk_key *key, struct stk_error *err);
void tpm_key_unlock(struct stk_key *key);

#endif
