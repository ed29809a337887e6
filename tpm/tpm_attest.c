/* Key attestation, TPM side: the EK certificate and chain from NV, the AK,
 * TPM2_Certify of the site key, TPM2_ActivateCredential.
 *
 * The AK is a primary key of the endorsement hierarchy made from a fixed
 * template (restricted signing, fixedTPM|fixedParent|sensitiveDataOrigin):
 * the TPM derives the same key from its endorsement seed every time, so it
 * is "made on first use" on every use and nothing needs storing. It has the
 * EK's algorithm (RSA-2048 RSASSA-SHA256 when the TPM has an RSA EK
 * certificate, else ECC P-256 ECDSA-SHA256).
 *
 * Everything runs on the open site key's ESYS context under its lock, so
 * attestation never races a signature. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include "sitetoken/attest.h"
#include "sitetoken/key.h"
#include "tpm_int.h"

/* TCG EK Credential Profile 2.0, section 2.2.1.5: NV indices. */
#define EK_CERT_RSA_NV 0x01c00002u
#define EK_CERT_ECC_NV 0x01c0000au
#define EK_CERT_ECC384_NV 0x01c00016u /* swtpm's ECC (P-384) EK certificate */
#define EK_CHAIN_FIRST 0x01c00100u
#define EK_CHAIN_LAST 0x01c001ffu
#define EK_PERSISTENT_RSA 0x81010001u
#define NV_CHUNK 512u
#define EK_CERT_MAX 4096u

static int
att_tpm_error(struct stk_error *err, TSS2_RC rc, const char *what)
{
	return stk_error_set(err, STK_E_BACKEND, STK_LAYER_TSS2, rc,
	    "TPM %s failed: %s", what, Tss2_RC_Decode(rc));
}

static void
att_flush(ESYS_CONTEXT *ectx, ESYS_TR *tr)
{
	if (*tr != ESYS_TR_NONE)
		Esys_FlushContext(ectx, *tr);
	*tr = ESYS_TR_NONE;
}

/* Read a whole NV index (empty auth, authread) into a new blob.
 * STK_E_NOTFOUND if the index does not exist. */
static int
att_nv_read(ESYS_CONTEXT *ectx, TPM2_HANDLE index, struct stk_blob *out,
    struct stk_error *err)
{
	ESYS_TR nv = ESYS_TR_NONE;
	TPM2B_NV_PUBLIC *pub = NULL;
	TPM2B_MAX_NV_BUFFER *data = NULL;
	UINT16 size, off = 0, n;
	TSS2_RC rc;
	int r;

	out->p = NULL;
	out->len = 0;
	rc = Esys_TR_FromTPMPublic(ectx, index, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, &nv);
	if (rc != TSS2_RC_SUCCESS) {
		nv = ESYS_TR_NONE;
		/* Only the TPM saying "no such handle" means absent; a lost
		 * connection must not read as "this TPM has no certificate". */
		if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER)
			r = stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_TSS2, rc,
			    "the TPM has no NV index 0x%08x", (unsigned)index);
		else
			r = att_tpm_error(err, rc, "reading an NV index's public area");
		goto out;
	}
	if ((rc = Esys_NV_ReadPublic(ectx, nv, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, &pub, NULL)) != TSS2_RC_SUCCESS) {
		r = att_tpm_error(err, rc, "NV_ReadPublic");
		goto out;
	}
	size = pub->nvPublic.dataSize;
	if (size == 0 || size > EK_CERT_MAX) {
		r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
		    "NV index 0x%08x holds %u bytes, not a certificate",
		    (unsigned)index, (unsigned)size);
		goto out;
	}
	if ((out->p = malloc(size)) == NULL) {
		r = STK_E_NOMEM;
		goto out;
	}
	while (off < size) {
		n = (UINT16)((unsigned)(size - off) > NV_CHUNK ? NV_CHUNK :
		    (unsigned)(size - off));
		rc = Esys_NV_Read(ectx, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
		    ESYS_TR_NONE, n, off, &data);
		if (rc != TSS2_RC_SUCCESS) {
			r = att_tpm_error(err, rc, "NV_Read of the EK certificate");
			goto out;
		}
		if (data->size != n) {
			r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
			    "short NV read from 0x%08x", (unsigned)index);
			goto out;
		}
		memcpy(out->p + off, data->buffer, n);
		off = (UINT16)(off + n);
		Esys_Free(data);
		data = NULL;
	}
	out->len = size;
	r = STK_OK;
out:
	if (r != STK_OK) {
		free(out->p);
		out->p = NULL;
		out->len = 0;
	}
	Esys_Free(data);
	Esys_Free(pub);
	if (nv != ESYS_TR_NONE)
		Esys_TR_Close(ectx, &nv);
	return r;
}

/* The EK certificate and its algorithm (RSA preferred). */
static int
att_ek_cert(ESYS_CONTEXT *ectx, struct stk_blob *cert, TPM2_ALG_ID *alg,
    struct stk_error *err)
{
	static const struct { TPM2_HANDLE nv; TPM2_ALG_ID alg; } idx[] = {
		{ EK_CERT_RSA_NV, TPM2_ALG_RSA },
		{ EK_CERT_ECC_NV, TPM2_ALG_ECC },
		{ EK_CERT_ECC384_NV, TPM2_ALG_ECC },
	};
	size_t i;
	int r = STK_E_NOTFOUND;

	for (i = 0; i < sizeof(idx) / sizeof(idx[0]); i++) {
		r = att_nv_read(ectx, idx[i].nv, cert, err);
		if (r == STK_OK) {
			*alg = idx[i].alg;
			return STK_OK;
		}
		if (r != STK_E_NOTFOUND)
			return r;
	}
	return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
	    "the TPM holds no EK certificate (NV 0x%08x, 0x%08x or 0x%08x): "
	    "without one there is nothing an auditor can check the TPM "
	    "against (for swtpm: swtpm_setup --create-ek-cert, as "
	    "swtpm-setup/swtpm-start.sh does)", EK_CERT_RSA_NV,
	    EK_CERT_ECC_NV, EK_CERT_ECC384_NV);
}

/* EK chain: every certificate in NV 0x01c00100..0x01c001ff, each index
 * holding one or more concatenated DER certificates. */
static int
att_ek_chain(ESYS_CONTEXT *ectx, struct stk_attest_evidence *ev,
    struct stk_error *err)
{
	TPMS_CAPABILITY_DATA *cap = NULL;
	struct stk_blob b = { NULL, 0 };
	TPMI_YES_NO more = TPM2_NO;
	const unsigned char *p, *start;
	X509 *x;
	size_t i;
	TSS2_RC rc;
	int r = STK_OK;

	rc = Esys_GetCapability(ectx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	    TPM2_CAP_HANDLES, EK_CHAIN_FIRST, 64, &more, &cap);
	if (rc != TSS2_RC_SUCCESS)
		return att_tpm_error(err, rc, "GetCapability(NV handles)");
	for (i = 0; i < cap->data.handles.count; i++) {
		TPM2_HANDLE h = cap->data.handles.handle[i];

		if (h < EK_CHAIN_FIRST || h > EK_CHAIN_LAST)
			continue;
		if ((r = att_nv_read(ectx, h, &b, err)) != STK_OK)
			goto out;
		p = b.p;
		while (p < b.p + b.len) {
			start = p;
			if ((x = d2i_X509(NULL, &p, (long)(b.p + b.len - p))) == NULL) {
				r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
				    "NV index 0x%08x (EK chain) holds no DER "
				    "certificate", (unsigned)h);
				goto out;
			}
			X509_free(x);
			if (ev->nchain == STK_ATTEST_CHAIN_MAX) {
				r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
				    "more than %d EK chain certificates in NV",
				    STK_ATTEST_CHAIN_MAX);
				goto out;
			}
			if ((ev->chain[ev->nchain].p = malloc((size_t)(p - start))) == NULL) {
				r = STK_E_NOMEM;
				goto out;
			}
			memcpy(ev->chain[ev->nchain].p, start, (size_t)(p - start));
			ev->chain[ev->nchain++].len = (size_t)(p - start);
		}
		free(b.p);
		b.p = NULL;
	}
out:
	free(b.p);
	Esys_Free(cap);
	return r;
}

/* The AK template: restricted signing key of the EK's algorithm. */
static void
att_ak_template(TPM2_ALG_ID alg, TPM2B_PUBLIC *t)
{
	memset(t, 0, sizeof(*t));
	t->publicArea.nameAlg = TPM2_ALG_SHA256;
	t->publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM |
	    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
	    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA |
	    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
	stk_tpm__sign_params(&t->publicArea, alg == TPM2_ALG_ECC);
}

static int
att_make_ak(ESYS_CONTEXT *ectx, TPM2_ALG_ID alg, ESYS_TR *ak,
    TPM2B_PUBLIC **akpub, struct stk_error *err)
{
	TPM2B_SENSITIVE_CREATE sens;
	TPM2B_PUBLIC tmpl;
	TPM2B_DATA outside;
	TPML_PCR_SELECTION pcrs;
	TSS2_RC rc;

	memset(&sens, 0, sizeof(sens));
	memset(&outside, 0, sizeof(outside));
	memset(&pcrs, 0, sizeof(pcrs));
	att_ak_template(alg, &tmpl);
	rc = Esys_CreatePrimary(ectx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, ak,
	    akpub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		*ak = ESYS_TR_NONE;
		return att_tpm_error(err, rc, "creating the attestation key "
		    "(endorsement hierarchy; it must have an empty auth value)");
	}
	return STK_OK;
}

static int
att_marshal_public(const TPMT_PUBLIC *p, struct stk_blob *out,
    struct stk_error *err)
{
	unsigned char buf[sizeof(TPMT_PUBLIC)];
	size_t off = 0;
	TSS2_RC rc;

	if ((rc = Tss2_MU_TPMT_PUBLIC_Marshal(p, buf, sizeof(buf), &off)) !=
	    TSS2_RC_SUCCESS)
		return stk_error_set(err, STK_E_BACKEND, STK_LAYER_TSS2, rc,
		    "cannot marshal a public area: %s", Tss2_RC_Decode(rc));
	if ((out->p = malloc(off)) == NULL)
		return STK_E_NOMEM;
	memcpy(out->p, buf, off);
	out->len = off;
	return STK_OK;
}

int
stk_key_attestation_available(const struct stk_key *key)
{
	return key != NULL && key->vt == &stk_backend_tpm;
}

int
stk_tpm_attest(struct stk_key *key, const unsigned char *nonce,
    size_t nonce_len, struct stk_attest_evidence **out, struct stk_error *err)
{
	struct stk_attest_evidence *ev = NULL;
	struct stk_tpm_lend l;
	TPM2B_PUBLIC *akpub = NULL, *kpub = NULL;
	TPM2B_ATTEST *info = NULL;
	TPMT_SIGNATURE *sig = NULL;
	TPM2B_DATA qual;
	TPMT_SIG_SCHEME scheme;
	TPM2_ALG_ID alg = TPM2_ALG_RSA;
	ESYS_TR ak = ESYS_TR_NONE;
	unsigned char raw[64];
	unsigned char *der = NULL;
	size_t derlen = 0;
	int r, lent = 0;
	TSS2_RC rc;

	*out = NULL;
	if (nonce_len < STK_ATTEST_NONCE_MIN || nonce_len > STK_ATTEST_NONCE_MAX)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "the nonce must be %d to %d bytes", STK_ATTEST_NONCE_MIN,
		    STK_ATTEST_NONCE_MAX);
	if ((r = stk_tpm__borrow(key, &l, err)) != STK_OK)
		return r;
	lent = 1;
	if ((ev = calloc(1, sizeof(*ev))) == NULL) {
		r = STK_E_NOMEM;
		goto out;
	}
	if ((r = att_ek_cert(l.ectx, &ev->ek_cert, &alg, err)) != STK_OK ||
	    (r = att_ek_chain(l.ectx, ev, err)) != STK_OK ||
	    (r = att_make_ak(l.ectx, alg, &ak, &akpub, err)) != STK_OK)
		goto out;
	if ((rc = Esys_ReadPublic(l.ectx, l.handle, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, &kpub, NULL, NULL)) != TSS2_RC_SUCCESS) {
		r = att_tpm_error(err, rc, "reading the key's public area");
		goto out;
	}
	memset(&qual, 0, sizeof(qual));
	memcpy(qual.buffer, nonce, nonce_len);
	qual.size = (UINT16)nonce_len;
	memset(&scheme, 0, sizeof(scheme));
	scheme.scheme = TPM2_ALG_NULL; /* the AK's own scheme */
	/* The nonce is public: no parameter encryption, only the key's
	 * authorisation through its salted session. */
	if ((rc = Esys_TRSess_SetAttributes(l.ectx, l.session,
	    TPMA_SESSION_CONTINUESESSION, 0xff)) != TSS2_RC_SUCCESS) {
		r = att_tpm_error(err, rc, "setting session attributes");
		goto out;
	}
	rc = Esys_Certify(l.ectx, l.handle, ak, l.session, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, &qual, &scheme, &info, &sig);
	if (rc != TSS2_RC_SUCCESS) {
		r = att_tpm_error(err, rc, "Certify of the key by the AK");
		goto out;
	}
	if ((ev->cert_info.p = malloc(info->size)) == NULL) {
		r = STK_E_NOMEM;
		goto out;
	}
	memcpy(ev->cert_info.p, info->attestationData, info->size);
	ev->cert_info.len = info->size;
	if (sig->sigAlg == TPM2_ALG_RSASSA) {
		ev->alg = STK_COSE_RS256;
		der = malloc(sig->signature.rsassa.sig.size);
		if (der == NULL) {
			r = STK_E_NOMEM;
			goto out;
		}
		memcpy(der, sig->signature.rsassa.sig.buffer,
		    sig->signature.rsassa.sig.size);
		derlen = sig->signature.rsassa.sig.size;
	} else if (sig->sigAlg == TPM2_ALG_ECDSA &&
	    sig->signature.ecdsa.signatureR.size <= 32 &&
	    sig->signature.ecdsa.signatureS.size <= 32) {
		const TPM2B_ECC_PARAMETER *pr = &sig->signature.ecdsa.signatureR;
		const TPM2B_ECC_PARAMETER *ps = &sig->signature.ecdsa.signatureS;

		ev->alg = STK_COSE_ES256;
		memset(raw, 0, sizeof(raw));
		memcpy(raw + 32 - pr->size, pr->buffer, pr->size);
		memcpy(raw + 64 - ps->size, ps->buffer, ps->size);
		if ((r = stk_ecdsa_raw_to_der(raw, 64, &der, &derlen)) != STK_OK)
			goto out;
	} else {
		r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
		    "the AK signed with an unexpected scheme 0x%04x",
		    (unsigned)sig->sigAlg);
		goto out;
	}
	ev->sig.p = der;
	ev->sig.len = derlen;
	der = NULL;
	if ((r = att_marshal_public(&kpub->publicArea, &ev->pub_area, err)) != STK_OK ||
	    (r = att_marshal_public(&akpub->publicArea, &ev->ak_pub, err)) != STK_OK)
		goto out;
	memcpy(ev->nonce, nonce, nonce_len);
	ev->nonce_len = nonce_len;
	*out = ev;
	ev = NULL;
	r = STK_OK;
out:
	if (lent) {
		att_flush(l.ectx, &ak);
		stk_tpm__return(key);
	}
	free(der);
	Esys_Free(akpub);
	Esys_Free(kpub);
	Esys_Free(info);
	Esys_Free(sig);
	stk_attest_evidence_free(ev);
	return r;
}

/* The EK: the persistent one swtpm_setup and most platforms provide, else
 * re-created from the TCG default RSA template (EK Credential Profile,
 * template L-1), which yields the certified key again. *persistent says
 * whether to flush it afterwards. */
static int
att_ek_handle(ESYS_CONTEXT *ectx, ESYS_TR *ek, int *persistent,
    struct stk_error *err)
{
	static const unsigned char policy[32] = {
		0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
		0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
		0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
	};
	TPM2B_SENSITIVE_CREATE sens;
	TPM2B_PUBLIC tmpl;
	TPM2B_DATA outside;
	TPML_PCR_SELECTION pcrs;
	TSS2_RC rc;

	*persistent = 0;
	rc = Esys_TR_FromTPMPublic(ectx, EK_PERSISTENT_RSA, ESYS_TR_NONE,
	    ESYS_TR_NONE, ESYS_TR_NONE, ek);
	if (rc == TSS2_RC_SUCCESS) {
		*persistent = 1;
		return STK_OK;
	}
	memset(&sens, 0, sizeof(sens));
	memset(&tmpl, 0, sizeof(tmpl));
	memset(&outside, 0, sizeof(outside));
	memset(&pcrs, 0, sizeof(pcrs));
	tmpl.publicArea.type = TPM2_ALG_RSA;
	tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
	tmpl.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM |
	    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
	    TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED |
	    TPMA_OBJECT_DECRYPT;
	memcpy(tmpl.publicArea.authPolicy.buffer, policy, sizeof(policy));
	tmpl.publicArea.authPolicy.size = sizeof(policy);
	tmpl.publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
	tmpl.publicArea.parameters.rsaDetail.symmetric.keyBits.aes = 128;
	tmpl.publicArea.parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
	tmpl.publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
	tmpl.publicArea.parameters.rsaDetail.keyBits = 2048;
	tmpl.publicArea.unique.rsa.size = 256;
	rc = Esys_CreatePrimary(ectx, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, ek,
	    NULL, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		*ek = ESYS_TR_NONE;
		return att_tpm_error(err, rc, "creating the endorsement key");
	}
	return STK_OK;
}

int
stk_tpm_activate_credential(struct stk_key *key, const unsigned char *cred,
    size_t cred_len, unsigned char *secret, size_t *secret_len,
    struct stk_error *err)
{
	struct stk_blob idb = { NULL, 0 }, esb = { NULL, 0 };
	struct stk_blob ekc = { NULL, 0 };
	struct stk_tpm_lend l;
	TPM2B_ID_OBJECT id;
	TPM2B_ENCRYPTED_SECRET es;
	TPM2B_DIGEST *out = NULL;
	TPM2B_PUBLIC *akpub = NULL;
	TPM2B_NONCE empty_nonce;
	TPM2B_DIGEST empty_digest;
	TPMT_SYM_DEF sym;
	TPM2_ALG_ID alg = TPM2_ALG_RSA;
	ESYS_TR ak = ESYS_TR_NONE, ek = ESYS_TR_NONE, ps = ESYS_TR_NONE;
	size_t off;
	int r, lent = 0, ek_persistent = 0;
	TSS2_RC rc;

	*secret_len = 0;
	if ((r = stk_attest_credfile_parse(cred, cred_len, &idb, &esb, err)) != STK_OK)
		goto out;
	memset(&id, 0, sizeof(id));
	memset(&es, 0, sizeof(es));
	off = 0;
	if ((rc = Tss2_MU_TPM2B_ID_OBJECT_Unmarshal(idb.p, idb.len, &off, &id)) !=
	    TSS2_RC_SUCCESS || off != idb.len) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_TSS2, rc,
		    "the credential file's TPM2B_ID_OBJECT is malformed");
		goto out;
	}
	off = 0;
	if ((rc = Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal(esb.p, esb.len, &off,
	    &es)) != TSS2_RC_SUCCESS || off != esb.len) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_TSS2, rc,
		    "the credential file's TPM2B_ENCRYPTED_SECRET is malformed");
		goto out;
	}
	if ((r = stk_tpm__borrow(key, &l, err)) != STK_OK)
		goto out;
	lent = 1;
	/* The AK must be the one attest used: same EK algorithm choice. */
	if ((r = att_ek_cert(l.ectx, &ekc, &alg, err)) != STK_OK)
		goto out;
	if (alg != TPM2_ALG_RSA) {
		r = stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "credential activation supports an RSA EK only; this TPM "
		    "has an ECC EK certificate only");
		goto out;
	}
	if ((r = att_make_ak(l.ectx, alg, &ak, &akpub, err)) != STK_OK ||
	    (r = att_ek_handle(l.ectx, &ek, &ek_persistent, err)) != STK_OK)
		goto out;
	memset(&sym, 0, sizeof(sym));
	sym.algorithm = TPM2_ALG_NULL;
	rc = Esys_StartAuthSession(l.ectx, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_POLICY,
	    &sym, TPM2_ALG_SHA256, &ps);
	if (rc != TSS2_RC_SUCCESS) {
		ps = ESYS_TR_NONE;
		r = att_tpm_error(err, rc, "starting the EK policy session");
		goto out;
	}
	/* The EK's policy: PolicySecret(TPM_RH_ENDORSEMENT). */
	memset(&empty_nonce, 0, sizeof(empty_nonce));
	memset(&empty_digest, 0, sizeof(empty_digest));
	rc = Esys_PolicySecret(l.ectx, ESYS_TR_RH_ENDORSEMENT, ps,
	    ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &empty_nonce,
	    &empty_digest, &empty_nonce, 0, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		r = att_tpm_error(err, rc, "PolicySecret on the endorsement "
		    "hierarchy (it must have an empty auth value)");
		goto out;
	}
	rc = Esys_ActivateCredential(l.ectx, ak, ek, ESYS_TR_PASSWORD, ps,
	    ESYS_TR_NONE, &id, &es, &out);
	if (rc != TSS2_RC_SUCCESS) {
		TSS2_RC base = rc & 0xfff;

		if ((rc & TPM2_RC_FMT1) != 0)
			base = rc & (TPM2_RC_FMT1 | 0x3f);
		if (base == TPM2_RC_INTEGRITY)
			r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_TSS2, rc,
			    "credential refused by the TPM: it was not made for "
			    "this TPM's AK (another AK name) or was altered (%s)",
			    Tss2_RC_Decode(rc));
		else if (base == TPM2_RC_VALUE || base == TPM2_RC_SIZE ||
		    base == TPM2_RC_FAILURE || base == TPM2_RC_SCHEME ||
		    base == TPM2_RC_ECC_POINT)
			r = stk_error_set(err, STK_E_ATTEST, STK_LAYER_TSS2, rc,
			    "credential refused by the TPM: its seed is not "
			    "encrypted to this TPM's EK (%s)", Tss2_RC_Decode(rc));
		else
			r = att_tpm_error(err, rc, "ActivateCredential");
		goto out;
	}
	if (out->size > STK_ATTEST_SECRET_MAX) {
		r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
		    "recovered secret is longer than %d bytes",
		    STK_ATTEST_SECRET_MAX);
		goto out;
	}
	memcpy(secret, out->buffer, out->size);
	*secret_len = out->size;
	r = STK_OK;
out:
	if (lent) {
		att_flush(l.ectx, &ps);
		att_flush(l.ectx, &ak);
		if (ek_persistent)
			Esys_TR_Close(l.ectx, &ek);
		else
			att_flush(l.ectx, &ek);
		stk_tpm__return(key);
	}
	if (out != NULL)
		OPENSSL_cleanse(out, sizeof(*out));
	Esys_Free(out);
	Esys_Free(akpub);
	free(ekc.p);
	free(idb.p);
	free(esb.p);
	return r;
}
