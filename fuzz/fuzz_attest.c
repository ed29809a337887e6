/* The key attestation evidence parser and the auditor's checks on
 * arbitrary input; an input starting with the tpm2-tools credential magic
 * goes to the credential file parser instead. The seeds in corpus/attest
 * are real evidence from a swtpm whose EK root is fuzz/data/ek-root.pem,
 * so mutations reach every check past the JSON. Invariant: evidence that
 * passes still passes after a serialise/parse round trip. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sitetoken/attest.h"

static X509_STORE *
fuzz_roots(void)
{
	static X509_STORE *st;

	if (st == NULL && stk_attest_roots_load(STK_FUZZ_EK_ROOT, &st, NULL) != 0) {
		fprintf(stderr, "cannot load %s\n", STK_FUZZ_EK_ROOT);
		abort();
	}
	return st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stk_attest_evidence *ev = NULL, *ev2 = NULL;
	struct stk_attest_expect exp;
	struct stk_attest_result res;
	struct stk_blob a, b;
	struct stk_error err;
	char *json = NULL;

	if (size >= 4 && data[0] == 0xba && data[1] == 0xdc) {
		if (stk_attest_credfile_parse(data, size, &a, &b, &err) == 0) {
			/* Both parts are whole TPM2Bs covering the file. */
			if (a.len + b.len + 8 != size || a.len < 2 || b.len < 2)
				abort();
			free(a.p);
			free(b.p);
		}
		return 0;
	}
	if (stk_attest_evidence_parse((const char *)data, size, &ev, &err) != 0)
		return 0;
	memset(&exp, 0, sizeof(exp));
	exp.roots = fuzz_roots();
	exp.nonce = ev->nonce;
	exp.nonce_len = ev->nonce_len;
	if (stk_attest_verify(ev, &exp, &res, &err) == 0) {
		if (stk_attest_evidence_json(ev, &json, &err) != 0 ||
		    stk_attest_evidence_parse(json, strlen(json), &ev2, &err) != 0 ||
		    stk_attest_verify(ev2, &exp, NULL, &err) != 0)
			abort();
	}
	free(json);
	stk_attest_evidence_free(ev2);
	stk_attest_evidence_free(ev);
	return 0;
}
