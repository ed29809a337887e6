/* The file key backend, what only it has: key file permissions, files that
 * are not keys, private directories, process hardening. The backend
 * contract is test_key_contract_file. */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <openssl/evp.h>
#include "sitetoken/file.h"
#include "sitetoken/key.h"
#include "testutil.h"

TU_TEST(test_loose_permissions_refused)
{
	char *dir = tu_tmpdir("filekey"), path[PATH_MAX], *uri = NULL;
	struct stk_key *k = NULL;
	struct stk_error err;
	mode_t modes[] = { 0640, 0604, 0660, 0644 };
	size_t i;

	snprintf(path, sizeof(path), "%s/k.pem", dir);
	assert_int_equal(stk_key_generate("file", path, STK_KEY_P256, NULL, &k, &uri, &err), 0);
	stk_key_close(k);
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		chmod(path, modes[i]);
		stk_error_clear(&err);
		assert_int_equal(stk_key_open(uri, NULL, &k, &err), STK_E_PERM);
		assert_null(k);
		assert_non_null(strstr(err.msg, "must not be accessible by group or others"));
	}
	chmod(path, 0400);
	assert_int_equal(stk_key_open(uri, NULL, &k, &err), 0);
	stk_key_close(k);
	free(uri);
	tu_rmrf(dir);
	free(dir);
}

TU_TEST(test_bad_files)
{
	char *dir = tu_tmpdir("filekey"), path[PATH_MAX], *u = NULL;
	struct stk_key *k = NULL;
	struct stk_error err;

	/* A missing file: test_key_contract_file's refused opens. */
	snprintf(path, sizeof(path), "%s/junk.pem", dir);
	tu_write_file(path, "not a key\n", 0600);
	assert_int_equal(stk_key_open(path, NULL, &k, &err), STK_E_CRYPTO);
	assert_non_null(strstr(err.msg, "does not hold a PEM private key"));
	assert_int_equal(stk_key_open("nosuchscheme:x", NULL, &k, &err), STK_E_UNSUPPORTED);
	assert_int_equal(stk_key_generate("nosuch", NULL, STK_KEY_P256, NULL, &k, &u, &err),
	    STK_E_UNSUPPORTED);
	assert_null(u);
	tu_rmrf(dir);
	free(dir);
}

/* Attacker 5 (local user): a process holding a secret leaves no core dump
 * and cannot be read by another process of the same user. Runs last: it
 * changes this process for good. */
TU_TEST(test_process_harden)
{
	struct rlimit rl;

	assert_int_equal(stk_process_harden(), 0);
	assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
	assert_int_equal(getrlimit(RLIMIT_CORE, &rl), 0);
	assert_true(rl.rlim_cur == 0 && rl.rlim_max == 0);
}

/* A directory the site writes into: ours and not group/other-writable. */
TU_TEST(test_dir_check_private)
{
	char *dir = tu_tmpdir("dircheck");
	struct stk_error err;

	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(stk_dir_check_private(dir, "site directory", &err), 0);
	assert_int_equal(chmod(dir, 0750), 0);
	assert_int_equal(stk_dir_check_private(dir, "site directory", &err), 0);
	assert_int_equal(chmod(dir, 0770), 0);
	assert_int_equal(stk_dir_check_private(dir, "site directory", &err), STK_E_PERM);
	assert_non_null(strstr(err.msg, "chmod 700"));
	assert_int_equal(chmod(dir, 0702), 0);
	assert_int_equal(stk_dir_check_private(dir, "site directory", &err), STK_E_PERM);
	assert_int_equal(chmod(dir, 0700), 0);
	tu_rmrf(dir);
	free(dir);
}

TU_MAIN(NULL, NULL,
	cmocka_unit_test(test_loose_permissions_refused),
	cmocka_unit_test(test_bad_files),
	cmocka_unit_test(test_dir_check_private),
	cmocka_unit_test(test_process_harden))
