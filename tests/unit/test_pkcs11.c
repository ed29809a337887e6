/* The pkcs11 key backend against a real SoftHSM token, what only it has: a
 * private key that cannot be read out even logged in, PIN file, wrong key
 * type, two keys on one module. A wrong PIN is test_pkcs11_faults (which
 * counts the logins). The backend contract (generate,
 * sign, describe, re-open, duplicate, threads, missing token/object/module,
 * bad URIs, sessions closed under the key) is test_key_contract_pkcs11. */
#include "test_pkcs11_token.h"
#include "sitetoken/key.h"
#include "sitetoken/log.h"
#include "key_check.h"

#define LABEL "unit"
static char *tokdir;

static int
group_setup(void **state)
{
	(void)state;
	return p11t_token_setup(LABEL, &tokdir); /* no PIN in the environment */
}

static int
group_teardown(void **state)
{
	(void)state;
	p11t_fl_release();
	p11t_token_cleanup(tokdir);
	return 0;
}

/* Make sure key `object` exists whatever order the tests ran in. */
static void
ensure_key(const char *object, enum stk_key_type type)
{
	char uri[128], *u = NULL;
	struct stk_key *k = NULL;
	struct stk_error err;

	snprintf(uri, sizeof(uri), "pkcs11:token=" LABEL ";object=%s", object);
	if (stk_key_generate("pkcs11", uri, type, NULL, &k, &u, &err) == 0) {
		stk_key_close(k);
		free(u);
	}
}

/* Log in with our own session and find a private key by label. */
static void
own_session(CK_FUNCTION_LIST *fl, CK_SESSION_HANDLE *s, const char *label,
    CK_OBJECT_HANDLE *h)
{
	CK_SLOT_ID slot;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[2] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_ULONG n = 0;
	char pin[64];
	CK_RV rv;

	assert_int_equal(p11t_slot(fl, LABEL, &slot), 0);
	assert_int_equal(fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, s),
	    CKR_OK);
	assert_int_equal(p11t_pin(pin, sizeof(pin)), 0);
	rv = fl->C_Login(*s, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
	assert_true(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN);
	assert_int_equal(fl->C_FindObjectsInit(*s, t, 2), CKR_OK);
	assert_int_equal(fl->C_FindObjects(*s, h, 1, &n), CKR_OK);
	fl->C_FindObjectsFinal(*s);
	assert_int_equal(n, 1);
}

/* Even logged in as the user, the token refuses to hand out the private
 * key material: CKR_ATTRIBUTE_SENSITIVE, length unavailable. */
TU_TEST(test_private_key_unreadable)
{
	CK_FUNCTION_LIST *fl;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h;
	CK_BYTE buf[1024];
	CK_ATTRIBUTE a;
	static const CK_ATTRIBUTE_TYPE rsa_secret[] = { CKA_PRIVATE_EXPONENT,
	    CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2,
	    CKA_COEFFICIENT };
	size_t i;

	ensure_key("unread-rsa", STK_KEY_RSA2048);
	ensure_key("unread-ec", STK_KEY_P256);
	/* Only now: closing those keys finalized the module. */
	assert_non_null(fl = p11t_fl());

	own_session(fl, &s, "unread-rsa", &h);
	for (i = 0; i < sizeof(rsa_secret) / sizeof(rsa_secret[0]); i++) {
		a.type = rsa_secret[i];
		a.pValue = buf;
		a.ulValueLen = sizeof(buf);
		assert_int_equal(fl->C_GetAttributeValue(s, h, &a, 1),
		    CKR_ATTRIBUTE_SENSITIVE);
		assert_true(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
	}
	fl->C_CloseSession(s);

	own_session(fl, &s, "unread-ec", &h);
	a.type = CKA_VALUE;
	a.pValue = buf;
	a.ulValueLen = sizeof(buf);
	assert_int_equal(fl->C_GetAttributeValue(s, h, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
	assert_true(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
	/* And the flag cannot be turned back: CKA_EXTRACTABLE stays FALSE. */
	{
		CK_BBOOL yes = CK_TRUE;
		CK_ATTRIBUTE set = { CKA_EXTRACTABLE, &yes, sizeof(yes) };
		CK_SESSION_HANDLE rw;
		CK_SLOT_ID slot;

		assert_int_equal(p11t_slot(fl, LABEL, &slot), 0);
		assert_int_equal(fl->C_OpenSession(slot, CKF_SERIAL_SESSION |
		    CKF_RW_SESSION, NULL, NULL, &rw), CKR_OK);
		assert_int_not_equal(fl->C_SetAttributeValue(rw, h, &set, 1), CKR_OK);
		fl->C_CloseSession(rw);
	}
	fl->C_Logout(s);
	fl->C_CloseSession(s);
	p11t_fl_release();
}

TU_TEST(test_pin_file)
{
	char *dir = tu_tmpdir("pinfile"), path[PATH_MAX], uri[PATH_MAX + 64],
	    pin[64];
	struct stk_key *k = NULL;
	struct stk_error err;

	ensure_key("pinf", STK_KEY_P256);
	assert_int_equal(p11t_pin(pin, sizeof(pin) - 1), 0);
	strcat(pin, "\n"); /* as an editor leaves it */
	snprintf(path, sizeof(path), "%s/pin", dir);
	tu_write_file(path, pin, 0640);
	/* pin-source wins over the environment, and is checked like ssh keys. */
	setenv("SITETOKEN_PKCS11_PIN", "not-the-pin", 1);
	snprintf(uri, sizeof(uri), "pkcs11:token=" LABEL ";object=pinf"
	    "?pin-source=file:%s", path);
	k = NULL;
	assert_int_equal(stk_key_open(uri, NULL, &k, &err), STK_E_PERM);
	assert_non_null(strstr(err.msg, "chmod 600"));
	chmod(path, 0600);
	assert_int_equal(stk_key_open(uri, NULL, &k, &err), 0);
	assert_signs_for(k, NULL);
	stk_key_close(k);
	unsetenv("SITETOKEN_PKCS11_PIN");
	tu_rmrf(dir);
	free(dir);
}

/* An RSA-1024 key made behind the backend's back (pkcs11-tool, as an
 * operator might) is refused by type. */
TU_TEST(test_wrong_key_type)
{
	struct stk_key *k = (struct stk_key *)1;
	struct stk_error err;
	char pin[64], cmd[512];

	assert_int_equal(p11t_pin(pin, sizeof(pin)), 0);
	snprintf(cmd, sizeof(cmd), "pkcs11-tool --module \"$SITETOKEN_PKCS11_MODULE\" "
	    "--token-label " LABEL " --login --pin '%s' --keypairgen --key-type rsa:1024 "
	    "--label weak --id 1024 >/dev/null 2>&1", pin);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(stk_key_open("pkcs11:token=" LABEL ";object=weak", NULL, &k,
	    &err), STK_E_UNSUPPORTED);
	assert_null(k);
	assert_non_null(strstr(err.msg, "is RSA-1024"));
}

/* ---- a session really lost ---- */

static int reopened;

static void
count_log(void *ctx, enum stk_log_level level, const char *component,
    const char *func, int line, const char *msg)
{
	(void)ctx; (void)level; (void)func; (void)line;
	if (strcmp(component, "pkcs11") == 0 && strstr(msg, "reopened") != NULL)
		reopened++;
}

/* Two keys on one module in one process: closing one finalizes the module
 * (libp11 0.4.12), and the other recovers with one reconnect. */
TU_TEST(test_two_keys_one_module)
{
	struct stk_key *a = NULL, *b = NULL;
	struct stk_error err;
	char *ua = NULL, *ub = NULL;

	assert_int_equal(stk_key_generate("pkcs11", "pkcs11:token=" LABEL
	    ";object=two-a", STK_KEY_P256, NULL, &a, &ua, &err), 0);
	assert_int_equal(stk_key_generate("pkcs11", "pkcs11:token=" LABEL
	    ";object=two-b", STK_KEY_RSA2048, NULL, &b, &ub, &err), 0);
	assert_signs_for(a, NULL);
	assert_signs_for(b, NULL);
	reopened = 0;
	stk_log_set(count_log, NULL, STK_LOG_DEBUG);
	stk_key_close(a);
	assert_signs_for(b, NULL);
	stk_log_set(NULL, NULL, STK_LOG_ERROR);
	assert_int_equal(reopened, 1);
	stk_key_close(b);
	free(ua);
	free(ub);
}

TU_MAIN(group_setup, group_teardown,
	cmocka_unit_test(test_private_key_unreadable),
	cmocka_unit_test(test_pin_file),
	cmocka_unit_test(test_wrong_key_type),
	cmocka_unit_test(test_two_keys_one_module))
