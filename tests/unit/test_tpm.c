/* tpm backend against a real swtpm (started and stopped by the same
 * swtpm-setup scripts the demo and CI use), what only this backend has:
 * no transient object left after many signatures, clear errors for a wrong
 * auth value, a blob from another TPM and a DA lockout, persistent handles.
 * The backend contract (generate, sign, describe, re-open, duplicate,
 * threads, open/close cycles, an unreachable TPM, bad handles, TPM reset
 * under an open key) is test_key_contract_tpm; a restart of the swtpm
 * process, backend_cli_tpm. */
#include "sitetoken/key.h"
#include "sitetoken/log.h"
#include "swtpm_util.h"
#include "key_check.h"

static struct {
	char *dir;       /* scratch: site dirs, TPM state dirs */
	char state[600]; /* state of the main swtpm */
	char tcti[128];
} env;

static struct stk_key_opts
opts_for(const char *sub)
{
	static char dir[700];
	struct stk_key_opts o;

	snprintf(dir, sizeof(dir), "%s/%s", env.dir, sub);
	mkdir(dir, 0700);
	memset(&o, 0, sizeof(o));
	o.site_dir = dir;
	o.tcti = env.tcti;
	return o;
}

static int
group_setup(void **state)
{
	struct stk_key_opts o;
	struct stk_key *key = NULL;
	struct stk_error err;
	char *uri = NULL;

	(void)state;
	swtpm_guard();
	unsetenv("SITETOKEN_TPM_KEY_AUTH");
	unsetenv("SITETOKEN_TPM_KEY_AUTH_FILE");
	env.dir = tu_tmpdir("test_tpm");
	snprintf(env.state, sizeof(env.state), "%s/tpm", env.dir);
	if (swtpm_start(env.state, env.tcti, sizeof(env.tcti)) != 0) {
		fprintf(stderr, "cannot start swtpm (is swtpm installed?)\n");
		return -1;
	}
	setenv("TPM2TOOLS_TCTI", env.tcti, 1);
	/* The P-256 key the tests below open, in "p256" (generate, sign,
	 * re-open and the like are test_key_contract_tpm's). */
	o = opts_for("p256");
	if (stk_key_generate("tpm", NULL, STK_KEY_P256, &o, &key, &uri, &err) != 0)
		return -1;
	stk_key_close(key);
	free(uri);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	swtpm_stop(env.state);
	tu_rmrf(env.dir);
	free(env.dir);
	return 0;
}

/* 200 signatures in one process with one open key, then close: nothing may
 * stay loaded in the TPM ("out of memory for object contexts" otherwise). */
TU_TEST(test_200_signatures_no_transient_left)
{
	struct stk_key_opts o = opts_for("p256");
	struct stk_key *key = NULL;
	struct stk_error err;
	unsigned char md[STK_SHA256_LEN], sig[STK_SIG_MAX];
	size_t siglen;
	int i;

	stk_error_clear(&err);
	assert_int_equal(stk_key_open("tpm:blob=site.tpmkey", &o, &key, &err), 0);
	/* Open holds exactly the key and its session, nothing else. */
	assert_int_equal(tpm_count_handles(env.tcti, TRANSIENT_FIRST), 1);
	for (i = 0; i < 200; i++) {
		memset(md, i, sizeof(md));
		siglen = sizeof(sig);
		assert_int_equal(stk_key_sign_digest(key, md, sizeof(md), sig,
		    &siglen, &err), 0);
		assert_int_equal(siglen, STK_P256_SIG_LEN);
	}
	assert_int_equal(tpm_count_handles(env.tcti, TRANSIENT_FIRST), 1);
	stk_key_close(key);
	assert_true(tpm_is_clean(env.tcti));
}

TU_TEST(test_wrong_auth)
{
	struct stk_key_opts o = opts_for("auth");
	struct stk_key *key = NULL;
	struct stk_key_info info;
	struct stk_error err;
	unsigned char md[STK_SHA256_LEN] = { 1 }, sig[STK_SIG_MAX];
	size_t siglen = sizeof(sig);
	char *uri = NULL, path[800];

	setenv("SITETOKEN_TPM_KEY_AUTH", "correct horse", 1);
	assert_int_equal(stk_key_generate("tpm", NULL, STK_KEY_P256, &o, &key,
	    &uri, &err), 0);
	assert_signs_for(key, NULL);
	/* With an auth value the TPM's dictionary-attack guard stays on. */
	assert_int_equal(stk_key_describe(key, &info, &err), 0);
	assert_string_equal(attr(&info, "noDA"), "false");
	stk_key_close(key);

	setenv("SITETOKEN_TPM_KEY_AUTH", "wrong", 1);
	assert_int_equal(stk_key_open(uri, &o, &key, &err), 0);
	stk_error_clear(&err);
	assert_int_equal(stk_key_sign_digest(key, md, sizeof(md), sig, &siglen,
	    &err), STK_E_AUTH);
	assert_int_equal(err.layer, STK_LAYER_TSS2);
	assert_non_null(strstr(err.msg, "wrong auth value"));
	stk_key_close(key);
	unsetenv("SITETOKEN_TPM_KEY_AUTH");

	/* The same secret from a 0600 file, with an editor's newline. */
	snprintf(path, sizeof(path), "%s/auth.txt", o.site_dir);
	tu_write_file(path, "correct horse\n", 0600);
	setenv("SITETOKEN_TPM_KEY_AUTH_FILE", path, 1);
	assert_int_equal(stk_key_open(uri, &o, &key, &err), 0);
	assert_signs_for(key, NULL);
	stk_key_close(key);
	/* A secret file others can read is refused. */
	chmod(path, 0644);
	assert_int_equal(stk_key_open(uri, &o, &key, &err), STK_E_PERM);
	unsetenv("SITETOKEN_TPM_KEY_AUTH_FILE");
	free(uri);
	assert_true(tpm_is_clean(env.tcti));
}

/* Opening the P-256 blob through another TPM fails in the TSS2 layer,
 * naming why. */
TU_TEST(test_blob_from_another_tpm)
{
	struct stk_key_opts o = opts_for("p256");
	struct stk_key *key = NULL;
	struct stk_error err;
	char other[700], tcti[128];

	snprintf(other, sizeof(other), "%s/other", env.dir);
	assert_int_equal(swtpm_start(other, tcti, sizeof(tcti)), 0);
	o.tcti = tcti;
	stk_error_clear(&err);
	assert_int_equal(stk_key_open("tpm:blob=site.tpmkey", &o, &key, &err),
	    STK_E_BACKEND);
	assert_null(key);
	assert_int_equal(err.layer, STK_LAYER_TSS2);
	assert_non_null(strstr(err.msg, "made by another TPM"));
	/* The failed load left nothing behind on that TPM either. */
	assert_true(tpm_is_clean(tcti));
	swtpm_stop(other);
}

/* An existing persistent key, as an operator would provision it (with
 * tpm2-tools, through TPM2TOOLS_TCTI). */
TU_TEST(test_persistent_handle)
{
	struct stk_key_opts o = opts_for("persist");
	struct stk_key *key = NULL;
	struct stk_key_info info;
	struct stk_error err;
	char *uri = NULL, cmd[1024];

	snprintf(cmd, sizeof(cmd), "tpm2_createprimary -Q -C o -G ecc256:ecdsa-sha256 "
	    "-a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign' "
	    "-c '%s/p.ctx' && tpm2_evictcontrol -Q -C o -c '%s/p.ctx' 0x81000042 "
	    "&& tpm2_flushcontext -t", o.site_dir, o.site_dir);
	assert_int_equal(system(cmd), 0);

	/* "generate" on a handle adopts the existing key. */
	assert_int_equal(stk_key_generate("tpm", "tpm:handle=0x81000042",
	    STK_KEY_P256, &o, &key, &uri, &err), 0);
	assert_string_equal(uri, "tpm:handle=0x81000042");
	assert_signs_for(key, NULL);
	assert_int_equal(stk_key_describe(key, &info, &err), 0);
	assert_true(info.non_exportable);
	assert_non_null(strstr(attr(&info, "storage"), "persistent"));
	stk_key_close(key);
	free(uri);
	/* Asking for an RSA key at an ECC handle is refused. */
	assert_int_equal(stk_key_generate("tpm", "tpm:handle=0x81000042",
	    STK_KEY_RSA2048, &o, &key, &uri, &err), STK_E_ARG);
	assert_null(key);
	/* The persistent key stays; remove it so the TPM is as we found it. */
	assert_int_equal(system("tpm2_evictcontrol -Q -C o -c 0x81000042"), 0);
	assert_true(tpm_is_clean(env.tcti));
}

/* A DA-protected key (it has an auth value): wrong values are refused one
 * by one, never retried; once the TPM locks out, the message says so and
 * even the right value is refused until recovery. Runs last: it leaves
 * this swtpm in lockout. */
TU_TEST(test_lockout_is_explained)
{
	struct stk_key_opts o = opts_for("auth");
	struct stk_key *key = NULL;
	struct stk_error err;
	unsigned char md[STK_SHA256_LEN] = { 2 }, sig[STK_SIG_MAX];
	size_t siglen;
	int i, r = 0;

	setenv("SITETOKEN_TPM_KEY_AUTH", "not it", 1);
	assert_int_equal(stk_key_open("tpm:blob=site.tpmkey", &o, &key, &err), 0);
	for (i = 0; i < 5; i++) {
		siglen = sizeof(sig);
		stk_error_clear(&err);
		r = stk_key_sign_digest(key, md, sizeof(md), sig, &siglen, &err);
		assert_int_equal(r, STK_E_AUTH);
		if (strstr(err.msg, "lockout") != NULL)
			break;
		assert_non_null(strstr(err.msg, "wrong auth value"));
	}
	assert_true(i < 5);
	stk_key_close(key);
	setenv("SITETOKEN_TPM_KEY_AUTH", "correct horse", 1);
	assert_int_equal(stk_key_open("tpm:blob=site.tpmkey", &o, &key, &err), 0);
	siglen = sizeof(sig);
	assert_int_equal(stk_key_sign_digest(key, md, sizeof(md), sig, &siglen,
	    &err), STK_E_AUTH);
	assert_non_null(strstr(err.msg, "lockout"));
	stk_key_close(key);
	unsetenv("SITETOKEN_TPM_KEY_AUTH");
	assert_true(tpm_is_clean(env.tcti));
}

TU_MAIN(group_setup, group_teardown,
	cmocka_unit_test(test_200_signatures_no_transient_left),
	cmocka_unit_test(test_wrong_auth),
	cmocka_unit_test(test_blob_from_another_tpm),
	cmocka_unit_test(test_persistent_handle),
	cmocka_unit_test(test_lockout_is_explained))
