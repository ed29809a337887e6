/* Between the tpm backend (tpm_backend.c) and key attestation
 * (tpm_attest.c); not a public header. */
#ifndef SITETOKEN_TPM_INT_H
#define SITETOKEN_TPM_INT_H

#include <tss2/tss2_esys.h>
#include "sitetoken/key.h"

extern const struct stk_key_backend stk_backend_tpm;

/* What an open TPM key lends: valid until stk_tpm__return. */
struct stk_tpm_lend {
	ESYS_CONTEXT *ectx;
	ESYS_TR handle;  /* the key (transient or persistent) */
	ESYS_TR session; /* salted HMAC session that authorises the key */
};

/* Take the key's lock (reconnecting if the TPM was lost) and lend its
 * context; STK_E_UNSUPPORTED if key is not a TPM key. Every success is
 * paired with one stk_tpm__return. */
int stk_tpm__borrow(struct stk_key *key, struct stk_tpm_lend *l,
    struct stk_error *err);
void stk_tpm__return(struct stk_key *key);

/* The signing scheme of the keys the backend makes and of the AK: type and
 * parameters of p for ECDSA on P-256 (ecc) or RSASSA-2048, both SHA-256,
 * no symmetric part. The caller sets nameAlg and objectAttributes. */
void stk_tpm__sign_params(TPMT_PUBLIC *p, int ecc);

#endif
