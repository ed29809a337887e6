/* A TPM NV counter (TPM2_NT_COUNTER) per site node, advanced with every
 * audit checkpoint the node signs. The TPM only lets it go up, and it
 * survives a restore of the whole disk: a log (and site directory) put back
 * to an older state carries a smaller counter than the TPM, which `audit
 * verify` reports. The index is derived from the counter's name (site GUID
 * and node) in the owner range; it is defined on first use with empty
 * owner auth (swtpm, or a TPM whose owner auth is unset), readable and
 * writable with its own empty auth, and exempt from dictionary-attack
 * lockout. A counter's first value is the TPM's highest counter value ever,
 * not 1: only its growth means anything. */
#include <string.h>
#include <openssl/sha.h>
#include <tss2/tss2_rc.h>
#include "sitetoken/error.h"
#include "tpm_nv.h"

#define TPM_NV_BASE 0x01000000u
#define TPM_NV_MASK 0x003fffffu

static uint32_t
tpm_nv_index(const char *name)
{
	unsigned char d[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)name, strlen(name), d);
	return TPM_NV_BASE | (((uint32_t)d[0] << 16 | (uint32_t)d[1] << 8 | d[2]) &
	    TPM_NV_MASK);
}

static int
tpm_nv_error(struct stk_error *err, TSS2_RC rc, const char *what)
{
	return stk_error_set(err, STK_E_BACKEND, STK_LAYER_TSS2, rc,
	    "TPM NV counter: %s: %s", what, Tss2_RC_Decode(rc));
}

int
tpm_nv_counter(struct stk_key *key, const char *name, int advance,
    uint64_t *value, struct stk_error *err)
{
	uint32_t index = tpm_nv_index(name);
	ESYS_CONTEXT *ectx;
	ESYS_TR nv = ESYS_TR_NONE;
	TPM2B_MAX_NV_BUFFER *data = NULL;
	TSS2_RC rc;
	int r = STK_OK, i;

	*value = 0;
	if ((ectx = tpm_key_lock_esys(key, err)) == NULL)
		return err != NULL && err->code ? err->code : STK_E_BACKEND;
	rc = Esys_TR_FromTPMPublic(ectx, index, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, &nv);
	if (rc != TSS2_RC_SUCCESS) {
		TPM2B_NV_PUBLIC pub;
		TPM2B_AUTH auth;

		nv = ESYS_TR_NONE;
		if (!advance)
			goto out; /* never defined: no checkpoint counted yet */
		memset(&pub, 0, sizeof(pub));
		memset(&auth, 0, sizeof(auth));
		pub.nvPublic.nvIndex = index;
		pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
		pub.nvPublic.attributes = TPMA_NV_AUTHREAD | TPMA_NV_AUTHWRITE |
		    TPMA_NV_NO_DA | ((TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) &
		    TPMA_NV_TPM2_NT_MASK);
		pub.nvPublic.dataSize = 8;
		rc = Esys_NV_DefineSpace(ectx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
		    ESYS_TR_NONE, ESYS_TR_NONE, &auth, &pub, &nv);
		if (rc != TSS2_RC_SUCCESS) {
			nv = ESYS_TR_NONE;
			r = tpm_nv_error(err, rc, "defining the counter (owner auth?)");
			goto out;
		}
	}
	if (advance && (rc = Esys_NV_Increment(ectx, nv, nv, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, ESYS_TR_NONE)) != TSS2_RC_SUCCESS) {
		r = tpm_nv_error(err, rc, "increment");
		goto out;
	}
	rc = Esys_NV_Read(ectx, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
	    8, 0, &data);
	if ((rc & 0xfffu) == TPM2_RC_NV_UNINITIALIZED && !advance)
		goto out; /* defined, never advanced */
	if (rc != TSS2_RC_SUCCESS || data == NULL || data->size != 8) {
		r = tpm_nv_error(err, rc, "read");
		goto out;
	}
	for (i = 0; i < 8; i++)
		*value = *value << 8 | data->buffer[i];
out:
	Esys_Free(data);
	if (nv != ESYS_TR_NONE)
		Esys_TR_Close(ectx, &nv);
	tpm_key_unlock(key);
	return r;
}
