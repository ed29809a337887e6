/* The device half of attested registration (SPEC.md "Key attestation
 * (TPM)"): evidence that the device key lives in this device's TPM, over a
 * verifier's nonce, and TPM2_ActivateCredential of the verifier's challenge.
 * The same code as the site's `key attest` / `key activate-credential`
 * (tpm/tpm_attest.c), on the device key named by device.keyref. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "sitetoken/attest.h"
#include "sitetoken/file.h"
#include "sitetoken/key.h"
#include "agent.h"

static int
attest_key(struct agent *a, struct stk_key **key, struct stk_error *err)
{
	static const char msg[] = "key attestation needs the device key in a TPM "
	    "(--key tpm); this device's key is %s, which cannot be presented as "
	    "a TPM key";
	int r;

	*key = NULL;
	if ((r = agent_devkey_mode(a, err)) < 0)
		return r;
	if (r == 0)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0, msg,
		    "a file (device.key)");
	if ((r = agent_devkey_key(a, key, err)) != 0)
		return r;
	if (!stk_key_attestation_available(*key))
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0, msg,
		    strcmp((*key)->vt->name, "pkcs11") == 0 ? "in a PKCS#11 token" :
		    (*key)->vt->name);
	return STK_OK;
}

int
agent_attest(struct agent *a, const char *nonce_hex, const char *out,
    struct stk_error *err)
{
	unsigned char nonce[STK_ATTEST_NONCE_MAX];
	struct stk_attest_evidence *ev = NULL;
	struct stk_key *key = NULL;
	char *json = NULL;
	size_t nlen = 0;
	int r;

	if ((r = stk_attest_nonce_parse(nonce_hex, nonce, &nlen, err)) != 0 ||
	    (r = attest_key(a, &key, err)) != 0 ||
	    (r = stk_tpm_attest(key, nonce, nlen, &ev, err)) != 0 ||
	    (r = stk_attest_evidence_json(ev, &json, err)) != 0)
		goto out;
	if (out == NULL || strcmp(out, "-") == 0) {
		if (fputs(json, stdout) == EOF || fflush(stdout) != 0)
			r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, 0,
			    "cannot write the evidence");
	} else
		r = stk_file_write(out, json, strlen(json), 0644, err);
	if (r == 0)
		agent_log(a, AGENT_LOG_SETUP, "ccmsetup", "Attested the TPM-held device "
		    "key over nonce %s", nonce_hex);
out:
	free(json);
	stk_attest_evidence_free(ev);
	return r;
}

int
agent_activate_credential(struct agent *a, const char *in, struct stk_error *err)
{
	unsigned char secret[STK_ATTEST_SECRET_MAX], *cred = NULL;
	struct stk_key *key = NULL;
	size_t clen = 0, slen = 0, i;
	int r;

	if ((r = attest_key(a, &key, err)) != 0)
		return r;
	if ((cred = (unsigned char *)stk_file_read(in, 4096, &clen)) == NULL)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, 0,
		    "cannot read the credential %s", in);
	if ((r = stk_tpm_activate_credential(key, cred, clen, secret, &slen, err)) != 0)
		goto out;
	for (i = 0; i < slen; i++)
		printf("%02x", secret[i]);
	printf("\n");
	agent_log(a, AGENT_LOG_SETUP, "ccmsetup", "Activated a credential with the "
	    "device TPM's EK");
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	free(cred);
	return r;
}
