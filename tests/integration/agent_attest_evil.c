/* A test-only sitetoken-agent with fault injection (-Wl,--wrap), playing
 * threat model 1: a network attacker whose TPM is not the TPM of the EK
 * certificate it presents. Used by tests/integration/attest_reg.sh.
 *
 * stk_tpm_attest: the real evidence of this device's TPM (its AK, its key),
 * with ekCert/ekChain replaced by those of the evidence in
 * $STK_EVIL_EK_FROM (a genuine TPM whose maker the site trusts).
 * stk_tpm_activate_credential: the real activation in this TPM, which
 * cannot open a credential sealed to the other TPM's EK; the attacker then
 * answers with a guess, as it must. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include "sitetoken/attest.h"
#include "sitetoken/file.h"

int __real_stk_tpm_attest(struct stk_key *key, const unsigned char *nonce,
    size_t nonce_len, struct stk_attest_evidence **out, struct stk_error *err);
int __real_stk_tpm_activate_credential(struct stk_key *key,
    const unsigned char *cred, size_t cred_len, unsigned char *secret,
    size_t *secret_len, struct stk_error *err);

int
__wrap_stk_tpm_attest(struct stk_key *key, const unsigned char *nonce,
    size_t nonce_len, struct stk_attest_evidence **out, struct stk_error *err)
{
	const char *path = getenv("STK_EVIL_EK_FROM");
	struct stk_attest_evidence *other = NULL, *ev;
	struct stk_blob t, chain[STK_ATTEST_CHAIN_MAX];
	char *json;
	size_t len = 0, i;
	int r;

	if ((r = __real_stk_tpm_attest(key, nonce, nonce_len, out, err)) != 0 ||
	    path == NULL)
		return r;
	ev = *out;
	if ((json = stk_file_read(path, STK_ATTEST_JSON_MAX, &len)) == NULL ||
	    (r = stk_attest_evidence_parse(json, len, &other, err)) != 0) {
		fprintf(stderr, "evil: cannot read %s\n", path);
		free(json);
		return STK_E_IO;
	}
	free(json);
	t = ev->ek_cert;
	ev->ek_cert = other->ek_cert;
	other->ek_cert = t;
	memcpy(chain, ev->chain, sizeof(chain));
	memcpy(ev->chain, other->chain, sizeof(chain));
	memcpy(other->chain, chain, sizeof(chain));
	i = ev->nchain;
	ev->nchain = other->nchain;
	other->nchain = i;
	stk_attest_evidence_free(other);
	fprintf(stderr, "evil: presenting another TPM's EK certificate\n");
	return 0;
}

int
__wrap_stk_tpm_activate_credential(struct stk_key *key, const unsigned char *cred,
    size_t cred_len, unsigned char *secret, size_t *secret_len, struct stk_error *err)
{
	int r = __real_stk_tpm_activate_credential(key, cred, cred_len, secret,
	    secret_len, err);

	if (r == 0)
		return 0;
	fprintf(stderr, "evil: this TPM cannot activate the credential (%s); "
	    "guessing the secret\n", err != NULL ? err->msg : "");
	if (RAND_bytes(secret, STK_ATTEST_SECRET_MAX) != 1)
		return r;
	*secret_len = STK_ATTEST_SECRET_MAX;
	stk_error_clear(err);
	return 0;
}
