/* Key attestation, verifier side (attest/attest.c), without a TPM: real
 * evidence from a swtpm (fuzz/corpus/attest/seed-*.json, EK root
 * fuzz/data/ek-root.pem) is checked, altered and re-checked. The TPM side
 * is tested against swtpm in tests/integration/attest_tpm.sh.
 * Attacker: whoever carries the evidence from the site to the auditor
 * (threat model 1) or the site operator (3) editing it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sitetoken/attest.h"

#define SEED_DIR STK_SRC_DIR "/fuzz/corpus/attest/"
#define EK_ROOT STK_SRC_DIR "/fuzz/data/ek-root.pem"

/* Evidence from the seed corpus. */
static struct stk_attest_evidence *
load(const char *name)
{
	struct stk_attest_evidence *ev = NULL;
	char path[512], *txt = calloc(1, 65536);
	size_t len;
	FILE *fp;

	snprintf(path, sizeof(path), "%s%s", SEED_DIR, name);
	assert_non_null(fp = fopen(path, "rb"));
	len = fread(txt, 1, 65535, fp);
	fclose(fp);
	assert_int_equal(stk_attest_evidence_parse(txt, len, &ev, NULL), 0);
	free(txt);
	return ev;
}

static int
check(const struct stk_attest_evidence *ev, struct stk_attest_result *res,
    struct stk_error *err)
{
	static X509_STORE *roots;
	struct stk_attest_expect exp;

	if (roots == NULL)
		assert_int_equal(stk_attest_roots_load(EK_ROOT, &roots, NULL), 0);
	memset(&exp, 0, sizeof(exp));
	exp.roots = roots;
	exp.nonce = ev->nonce;
	exp.nonce_len = ev->nonce_len;
	return stk_attest_verify(ev, &exp, res, err);
}

/* Genuine evidence for an RS256 and an ES256 key passes, and names them. */
static void
test_genuine_evidence_passes(void **state)
{
	struct stk_attest_evidence *ev;
	struct stk_attest_result res;
	struct stk_error err;

	(void)state;
	ev = load("seed-rs256.json");
	assert_int_equal(check(ev, &res, &err), 0);
	assert_string_equal(res.key_type, "rsa2048");
	assert_memory_equal(res.ak_name, "000b", 4);
	stk_attest_evidence_free(ev);
	ev = load("seed-es256.json");
	assert_int_equal(check(ev, &res, &err), 0);
	assert_string_equal(res.key_type, "p256");
	stk_attest_evidence_free(ev);
}

/* What we write is what we read: serialise, parse, still passes. */
static void
test_json_round_trip(void **state)
{
	struct stk_attest_evidence *ev = load("seed-es256.json"), *ev2 = NULL;
	char *json = NULL;

	(void)state;
	assert_int_equal(stk_attest_evidence_json(ev, &json, NULL), 0);
	assert_int_equal(stk_attest_evidence_parse(json, strlen(json), &ev2, NULL), 0);
	assert_int_equal(check(ev2, NULL, NULL), 0);
	assert_int_equal(ev2->nchain, ev->nchain);
	free(json);
	stk_attest_evidence_free(ev2);
	stk_attest_evidence_free(ev);
}

/* Any single changed byte of what the TPM signed or the maker certified
 * (sig, certInfo, pubArea, ekCert, ekChain) is refused. akPub is left out
 * on purpose: its attribute bits are bound by credential activation (the
 * AK's name), not by the signature. */
static void
flip_each(struct stk_attest_evidence *ev, struct stk_blob *b, const char *what,
    size_t stride)
{
	struct stk_error err;
	size_t i;
	int r;

	for (i = 0; i < b->len; i += stride) {
		b->p[i] ^= 0x01;
		r = check(ev, NULL, &err);
		b->p[i] ^= 0x01;
		if (r != STK_E_ATTEST)
			fail_msg("%s byte %zu flipped: verify returned %d", what, i, r);
	}
	assert_int_equal(check(ev, NULL, NULL), 0);
}

static void
test_every_flipped_byte_refused(void **state)
{
	struct stk_attest_evidence *ev = load("seed-rs256.json");

	(void)state;
	flip_each(ev, &ev->sig, "sig", 1);
	flip_each(ev, &ev->cert_info, "certInfo", 1);
	flip_each(ev, &ev->pub_area, "pubArea", 1);
	/* Certificates: a sample (stride 7) keeps the run short under valgrind. */
	flip_each(ev, &ev->ek_cert, "ekCert", 7);
	flip_each(ev, &ev->chain[0], "ekChain[0]", 7);
	stk_attest_evidence_free(ev);
}

/* Another nonce: the evidence is stale, whatever else is right. */
static void
test_other_nonce_refused(void **state)
{
	struct stk_attest_evidence *ev = load("seed-rs256.json");
	struct stk_error err;

	(void)state;
	ev->nonce[0] ^= 1;
	assert_int_equal(check(ev, NULL, &err), STK_E_ATTEST);
	assert_non_null(strstr(err.msg, "extraData is not the nonce"));
	stk_attest_evidence_free(ev);
}

/* Without the intermediate the EK certificate chains to nothing. */
static void
test_missing_chain_refused(void **state)
{
	struct stk_attest_evidence *ev = load("seed-rs256.json");
	struct stk_error err;

	(void)state;
	ev->nchain = 0;
	assert_int_equal(check(ev, NULL, &err), STK_E_ATTEST);
	assert_non_null(strstr(err.msg, "does not chain"));
	ev->nchain = 1;
	stk_attest_evidence_free(ev);
}

/* The credential file has tpm2-tools' layout: magic, version 1, a
 * TPM2B_ID_OBJECT of HMAC (34) + encrypted TPM2B_DIGEST, a 256-byte
 * RSA-OAEP seed; and the parser takes back exactly that. */
static void
test_credential_layout(void **state)
{
	static const unsigned char magic[8] = { 0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1 };
	struct stk_attest_evidence *ev = load("seed-rs256.json");
	unsigned char secret[32], *cred = NULL;
	struct stk_blob a, b;
	size_t len = 0;
	struct stk_error err;

	(void)state;
	memset(secret, 0x5a, sizeof(secret));
	assert_int_equal(stk_attest_make_credential(ev, secret, sizeof(secret),
	    &cred, &len, &err), 0);
	assert_memory_equal(cred, magic, 8);
	assert_int_equal(len, 8 + 2 + (2 + 32 + 2 + 32) + 2 + 256);
	assert_int_equal(stk_attest_credfile_parse(cred, len, &a, &b, &err), 0);
	assert_int_equal(a.len, 2 + 2 + 32 + 2 + 32);
	assert_int_equal(b.len, 2 + 256);
	/* The secret is not in the clear. */
	assert_null(memmem(cred, len, secret, 8));
	free(a.p);
	free(b.p);
	assert_int_equal(stk_attest_credfile_parse(cred, len - 1, &a, &b, &err), STK_E_ARG);
	assert_non_null(strstr(err.msg, "truncated"));
	assert_int_equal(stk_attest_credfile_parse(cred, 20, &a, &b, &err), STK_E_ARG);
	cred[0] = 0;
	assert_int_equal(stk_attest_credfile_parse(cred, len, &a, &b, &err), STK_E_ARG);
	assert_non_null(strstr(err.msg, "not a tpm2_makecredential file"));
	free(cred);
	stk_attest_evidence_free(ev);
}

/* Strict JSON: unknown fmt, missing members, padded base64url. */
static void
test_strict_json(void **state)
{
	static const char *bad[] = {
		"",
		"[]",
		"{\"fmt\":\"packed\"}",
		"{\"fmt\":\"tpm\",\"attStmt\":{\"ver\":\"1.2\"}}",
		"{\"fmt\":\"tpm\",\"attStmt\":{\"ver\":\"2.0\",\"alg\":-8}}",
		"{\"fmt\":\"tpm\",\"attStmt\":{\"ver\":\"2.0\",\"alg\":-7,\"sig\":\"AA==\"}}",
		"{\"fmt\":\"tpm\",\"fmt\":\"tpm\"}",
		"{\"fmt\":\"tpm\",\"attStmt\":{\"ver\":\"2.0\",\"alg\":-7,\"sig\":\"AA\","
		    "\"certInfo\":\"AA\",\"pubArea\":\"AA\"},\"akPub\":\"AA\",\"ekCert\":"
		    "\"AA\",\"ekChain\":[],\"nonce\":\"0011\"}",
	};
	struct stk_attest_evidence *ev = NULL;
	struct stk_error err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(stk_attest_evidence_parse(bad[i], strlen(bad[i]),
		    &ev, &err), STK_E_ATTEST);
		assert_null(ev);
		assert_non_null(strstr(err.msg, "evidence:"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_genuine_evidence_passes),
		cmocka_unit_test(test_json_round_trip),
		cmocka_unit_test(test_every_flipped_byte_refused),
		cmocka_unit_test(test_other_nonce_refused),
		cmocka_unit_test(test_missing_chain_refused),
		cmocka_unit_test(test_credential_layout),
		cmocka_unit_test(test_strict_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
