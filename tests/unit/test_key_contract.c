/* The key backend contract, one program run once per backend (ctest
 * test_key_contract_file, _pkcs11 against a real SoftHSM token, _tpm against
 * a real swtpm): for every key type the backend offers, a generated key
 * signs what OpenSSL verifies with the public key alone, describes its own
 * exportability from the device, re-opens by its stored URI, is not
 * overwritten by a second generate, signs for several threads at once,
 * survives more open/close cycles than the device has slots, and keeps
 * signing after its session to the device is lost; a missing device or
 * object and bad URIs are refused with the backend's own message.
 * Backend-only behaviour stays in test_file_backend, test_pkcs11 and
 * test_tpm. */
#include <pthread.h>
#include <time.h>
#include "sitetoken/cert.h"
#include "sitetoken/key.h"
#include "sitetoken/log.h"
#include "sitetoken/token.h"
#include "key_check.h"
#ifdef STK_TEST_PKCS11
#include "test_pkcs11_token.h"
#endif
#ifdef STK_TEST_TPM
#include "swtpm_util.h"
#endif

/* An open the backend refuses: uri (NULL: the key's stored URI) through
 * tcti (NULL: the key's), with this code, layer (0: any) and message. */
struct refusal {
	const char *uri, *tcti;
	int code;
	enum stk_layer layer;
	const char *text;
};

/* One backend: how to reach it and what only it can tell. */
struct backend {
	const char *name;
	enum stk_key_type types[3];
	int non_exportable;            /* what describe must report */
	const char *attrs[8][2];       /* attributes describe must read back */
	const char *reconnect_log;     /* the log line of a recovered session */
	const char *no_session_why;    /* NULL: there is a session to lose */
	struct refusal refused[10];    /* until code 0 */
	int (*setup)(void);               /* NULL: nothing to start */
	void (*teardown)(void);
	void (*gen_args)(const char *label); /* cur.gen_uri, cur.opts for label */
	void (*check_stored)(void);       /* what generate left behind */
	int (*lose_session)(void);
	int (*loaded)(void);              /* objects the device holds; NULL: none */
};

static const struct backend *be;
static char *scratch;

struct ctx {
	enum stk_key_type type;
	struct stk_key_opts opts;
	char dir[PATH_MAX];
	char gen_uri[PATH_MAX];
	char *uri;               /* the stored URI generate returned */
	struct stk_key *key;
	EVP_PKEY *pub;
};

static struct ctx cur;

/* ---- file ---- */

static void
file_gen_args(const char *label)
{
	snprintf(cur.gen_uri, sizeof(cur.gen_uri), "%s/%s.pem", scratch, label);
}

/* The PEM file is the key: readable by its owner only. */
static void
file_check_stored(void)
{
	struct stat st;

	assert_int_equal(stat(cur.gen_uri, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_non_null(strstr(cur.uri, cur.gen_uri));
}

static const struct backend file_backend = {
	"file", { STK_KEY_RSA2048, STK_KEY_RSA3072, STK_KEY_P256 }, 0,
	{ { "exportable", "true" } }, NULL,
	"a PEM file has no session: every signature uses the key in memory",
	{ { "/nonexistent/sitetoken/k.pem", NULL, STK_E_NOTFOUND, STK_LAYER_SYS,
	    "cannot open key file /nonexistent/sitetoken/k.pem" } },
	NULL, NULL, file_gen_args, file_check_stored, NULL, NULL,
};

/* ---- pkcs11 (SoftHSM) ---- */
#ifdef STK_TEST_PKCS11
#define P11_LABEL "contract"
static char *tokdir;

static int
p11_setup(void)
{
	return p11t_token_setup(P11_LABEL, &tokdir);
}

static void
p11_teardown(void)
{
	p11t_fl_release();
	p11t_token_cleanup(tokdir);
}

static void
p11_gen_args(const char *label)
{
	snprintf(cur.gen_uri, sizeof(cur.gen_uri), "pkcs11:token=" P11_LABEL ";object=%s", label);
}

/* The stored URI pins the private key by id and names no secret. */
static void
p11_check_stored(void)
{
	assert_non_null(strstr(cur.uri, "object="));
	assert_non_null(strstr(cur.uri, ";id=%"));
	assert_non_null(strstr(cur.uri, "type=private"));
	assert_null(strstr(cur.uri, "pin"));
}

/* Another application closes every session of the token (a token removal
 * or HSM restart looks like this): we are logged out and libp11's pooled
 * sessions are dead, so the backend must reconnect and log in again. */
static int
p11_lose_session(void)
{
	CK_FUNCTION_LIST *fl;
	CK_SLOT_ID slot;

	p11t_fl_release(); /* libp11 may have finalized the module since */
	fl = p11t_fl();
	if (fl == NULL || p11t_slot(fl, P11_LABEL, &slot) != 0)
		return -1;
	return fl->C_CloseAllSessions(slot) == CKR_OK ? 0 : -1;
}

static const struct backend p11_backend = {
	"pkcs11", { STK_KEY_RSA2048, STK_KEY_RSA3072, STK_KEY_P256 }, 1,
	{ { "CKA_SENSITIVE", "true" }, { "CKA_EXTRACTABLE", "false" },
	  { "CKA_ALWAYS_SENSITIVE", "true" }, { "CKA_NEVER_EXTRACTABLE", "true" },
	  { "CKA_TOKEN", "true" }, { "CKA_PRIVATE", "true" } },
	"reopened", NULL,
	{ { "pkcs11:token=no-such-token;object=x", NULL, STK_E_NOTFOUND, 0,
	    "no PKCS#11 token labelled 'no-such-token'" },
	  { "pkcs11:token=no-such-token;object=x", NULL, STK_E_NOTFOUND, 0,
	    "tokens present: '" P11_LABEL "'" },
	  { "pkcs11:token=" P11_LABEL ";object=no-such-key", NULL, STK_E_NOTFOUND, 0,
	    "no private key object 'no-such-key' on PKCS#11 token" },
	  { "pkcs11:token=" P11_LABEL ";id=%01%02%03", NULL, STK_E_NOTFOUND, 0,
	    "no private key" },
	  { "pkcs11:token=" P11_LABEL ";object=x?module-path=/nonexistent/libnone.so",
	    NULL, STK_E_BACKEND, 0, "cannot load PKCS#11 module /nonexistent/libnone.so" },
	  /* A library that is not a PKCS#11 module. */
	  { "pkcs11:token=" P11_LABEL ";object=x?module-path=libcrypto.so.3", NULL,
	    STK_E_BACKEND, 0, "is not a PKCS#11 module" },
	  { "pkcs11:token=" P11_LABEL ";object=x;type=cert", NULL, STK_E_ARG, 0,
	    "type=private" },
	  { "pkcs11:token=" P11_LABEL ";object=x?pin-value=1234", NULL, STK_E_ARG, 0,
	    "pin-value is refused" },
	  { "pkcs11:token=" P11_LABEL ";slot-id=3", NULL, STK_E_ARG, 0,
	    "'slot-id' is not supported" } },
	p11_setup, p11_teardown, p11_gen_args, p11_check_stored, p11_lose_session,
	NULL,
};
#endif

/* ---- tpm (swtpm) ---- */
#ifdef STK_TEST_TPM
static char tpm_state[512], tpm_tcti[128], gone_tcti[128];

static int
tpm_setup(void)
{
	char gone[512];

	swtpm_guard();
	unsetenv("SITETOKEN_TPM_KEY_AUTH");
	unsetenv("SITETOKEN_TPM_KEY_AUTH_FILE");
	snprintf(tpm_state, sizeof(tpm_state), "%s/tpm", scratch);
	if (swtpm_start(tpm_state, tpm_tcti, sizeof(tpm_tcti)) != 0)
		return -1;
	/* A port where swtpm was and is no more (started after ours, so it
	 * cannot be ours). */
	snprintf(gone, sizeof(gone), "%s/gone", scratch);
	if (swtpm_start(gone, gone_tcti, sizeof(gone_tcti)) != 0)
		return -1;
	swtpm_stop(gone);
	return 0;
}

static void tpm_teardown(void) { swtpm_stop(tpm_state); }

/* No URI: the blob goes to the site directory. */
static void
tpm_gen_args(const char *label)
{
	cur.gen_uri[0] = '\0';
	snprintf(cur.dir, sizeof(cur.dir), "%s/%s", scratch, label);
	mkdir(cur.dir, 0700);
	cur.opts.site_dir = cur.dir;
	cur.opts.tcti = tpm_tcti;
}

/* The wrapped blob lives in the site directory, owner-only. */
static void
tpm_check_stored(void)
{
	char path[PATH_MAX + 16];
	struct stat st;

	assert_true(strncmp(cur.uri, "tpm:blob=/", 10) == 0);
	snprintf(path, sizeof(path), "%s/site.tpmkey", cur.dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static int tpm_lose_session(void) { return swtpm_reset(tpm_tcti); }

/* Transient objects and sessions (swtpm has no resource manager). */
static int
tpm_loaded(void)
{
	return tpm_count_handles(tpm_tcti, TRANSIENT_FIRST) +
	    tpm_count_handles(tpm_tcti, HMAC_SESSION_FIRST);
}

static const struct backend tpm_backend = {
	"tpm", { STK_KEY_RSA2048, STK_KEY_P256 }, 1,
	{ { "fixedTPM", "true" }, { "fixedParent", "true" },
	  { "sensitiveDataOrigin", "true" }, { "userWithAuth", "true" },
	  { "sign", "true" }, { "decrypt", "false" }, { "restricted", "false" },
	  /* No auth value: nothing to guess, so no DA lockout for this key. */
	  { "noDA", "true" } },
	"reloaded", NULL,
	{ { NULL, gone_tcti, STK_E_BACKEND, STK_LAYER_TSS2, "TPM unreachable" },
	  { NULL, "nosuchtcti:foo", STK_E_BACKEND, STK_LAYER_TSS2, "TPM unreachable" },
	  { "tpm:handle=0x81000043", NULL, STK_E_NOTFOUND, 0, NULL },
	  { "tpm:handle=0x1234", NULL, STK_E_ARG, 0, NULL } },
	tpm_setup, tpm_teardown, tpm_gen_args, tpm_check_stored, tpm_lose_session,
	tpm_loaded,
};
#endif

/* ---- helpers ---- */

static int reconnects;

static void
count_reconnects(void *c, enum stk_log_level level, const char *component,
    const char *func, int line, const char *m)
{
	(void)c; (void)level; (void)func; (void)line;
	if (strcmp(component, be->name) == 0 && be->reconnect_log != NULL &&
	    strstr(m, be->reconnect_log) != NULL)
		reconnects++;
}

/* ---- the contract: a key of cur.type, generated once per group ---- */

static int
group_setup(void **state)
{
	struct stk_error err;
	char label[32];

	(void)state;
	snprintf(label, sizeof(label), "c-%s", stk_key_type_name(cur.type));
	memset(&cur.opts, 0, sizeof(cur.opts));
	be->gen_args(label);
	stk_error_clear(&err);
	if (stk_key_generate(be->name, cur.gen_uri[0] ? cur.gen_uri : NULL,
	    cur.type, &cur.opts, &cur.key, &cur.uri, &err) != 0 ||
	    stk_key_get_public(cur.key, &cur.pub, &err) != 0) {
		fprintf(stderr, "generate %s: %s\n", label, err.msg);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	stk_key_close(cur.key);
	EVP_PKEY_free(cur.pub);
	free(cur.uri);
	cur.key = NULL;
	cur.pub = NULL;
	cur.uri = NULL;
	/* Closing the key leaves nothing loaded in the device. */
	return be->loaded != NULL && be->loaded() != 0 ? -1 : 0;
}

/* Generate returns a key of the type asked, stored where its URI says. */
TU_TEST(test_generate)
{
	assert_int_equal(cur.key->type, cur.type);
	be->check_stored();
}

/* What the key signs, OpenSSL verifies with the public key alone. */
TU_TEST(test_sign_verifies_with_openssl)
{
	assert_signs_for(cur.key, cur.pub);
}

/* The public key is of the key's type and size (the JWKS publishes it). */
TU_TEST(test_public_key)
{
	static const int bits[] = { [STK_KEY_RSA2048] = 2048,
	    [STK_KEY_RSA3072] = 3072, [STK_KEY_P256] = 256 };

	assert_int_equal(stk_key_type_of_pkey(cur.pub), cur.type);
	assert_int_equal(EVP_PKEY_get_bits(cur.pub), bits[cur.type]);
}

/* `key show`: exportability and attributes read back from the device. */
TU_TEST(test_describe_exportability)
{
	struct stk_key_info info;
	struct stk_error err;
	size_t i;

	assert_int_equal(stk_key_describe(cur.key, &info, &err), 0);
	assert_string_equal(info.backend, be->name);
	assert_int_equal(info.type, cur.type);
	assert_int_equal(info.non_exportable, be->non_exportable);
	for (i = 0; i < 8 && be->attrs[i][0] != NULL; i++)
		assert_string_equal(attr(&info, be->attrs[i][0]), be->attrs[i][1]);
}

/* Later runs open the same key by the stored URI alone. */
TU_TEST(test_reopen_by_uri)
{
	struct stk_key *again = NULL;
	EVP_PKEY *pub = NULL;
	struct stk_error err;

	assert_int_equal(stk_key_open(cur.uri, &cur.opts, &again, &err), 0);
	assert_int_equal(again->type, cur.type);
	assert_int_equal(stk_key_get_public(again, &pub, &err), 0);
	assert_int_equal(EVP_PKEY_eq(pub, cur.pub), 1);
	assert_signs_for(again, cur.pub);
	EVP_PKEY_free(pub);
	stk_key_close(again);
}

/* A second generate at the same place is refused and the first key stays. */
TU_TEST(test_duplicate_generate_refused)
{
	struct stk_key *k = NULL;
	struct stk_error err;
	char *uri = NULL;

	assert_int_equal(stk_key_generate(be->name, cur.gen_uri[0] ? cur.gen_uri :
	    NULL, cur.type, &cur.opts, &k, &uri, &err), STK_E_EXISTS);
	assert_null(k);
	assert_null(uri);
	assert_int_equal(stk_key_open(cur.uri, &cur.opts, &k, &err), 0);
	assert_signs_for(k, cur.pub);
	stk_key_close(k);
}

/* Every refused open names its cause and returns no key. */
TU_TEST(test_open_refused)
{
	const struct refusal *r;
	struct stk_key_opts o;
	struct stk_key *k;
	struct stk_error err;

	for (r = be->refused; r->code != 0; r++) {
		o = cur.opts;
		if (r->tcti != NULL)
			o.tcti = r->tcti;
		k = (struct stk_key *)1;
		stk_error_clear(&err);
		assert_int_equal(stk_key_open(r->uri != NULL ? r->uri : cur.uri, &o,
		    &k, &err), r->code);
		assert_null(k);
		if (r->layer != STK_LAYER_NONE)
			assert_int_equal(err.layer, r->layer);
		if (r->text != NULL && strstr(err.msg, r->text) == NULL)
			fail_msg("message '%s' lacks '%s'", err.msg, r->text);
	}
}

/* More open/close cycles than a TPM has object slots (3 in swtpm): each
 * close gives back what the open took. */
TU_TEST(test_open_close_cycles)
{
	struct stk_key *k;
	struct stk_error err;
	int i, before = be->loaded != NULL ? be->loaded() : 0;

	for (i = 0; i < 12; i++) {
		k = NULL;
		assert_int_equal(stk_key_open(cur.uri, &cur.opts, &k, &err), 0);
		stk_key_close(k);
	}
	if (be->loaded != NULL)
		assert_int_equal(be->loaded(), before);
}

/* ---- threads issuing tokens with one key ---- */

/* Throughput is measured by bench/ (hsm.c, tpm.c), not here. */
#define NTHREADS 4
#define PER_THREAD 20

struct worker {
	const struct stk_signer *signer;
	int64_t now; /* the test's clock: tokens verify however long signing takes */
	char *tokens[PER_THREAD];
	int rc;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	struct stk_error err;
	int i;

	for (i = 0; i < PER_THREAD && w->rc == 0; i++)
		w->rc = stk_issue_bulk(w->signer, NULL, w->now, w->now + 3600,
		    &w->tokens[i], NULL, &err);
	return NULL;
}

/* A server's workers issue tokens with one shared key (the backend says
 * STK_CAP_THREADSAFE): every token of every thread verifies. */
TU_TEST(test_threads_share_one_key)
{
	struct worker w[NTHREADS];
	char guid[STK_GUID_LEN + 1];
	struct stk_signer *signer = NULL;
	struct stk_verifier *v = NULL;
	struct stk_claims claims;
	struct stk_error err;
	pthread_t th[NTHREADS];
	unsigned char *cert = NULL;
	size_t certlen = 0;
	int64_t now = (int64_t)time(NULL);
	int i, j;

	assert_true(cur.key->vt->caps & STK_CAP_THREADSAFE);
	assert_int_equal(stk_guid_new(guid), 0);
	assert_int_equal(stk_cert_make_site(cur.key, guid, now, 30, &cert, &certlen,
	    &err), 0);
	assert_int_equal(stk_signer_new(cur.key, cert, certlen, guid, &signer, &err), 0);
	assert_int_equal(stk_verifier_new(guid, &v, &err), 0);
	assert_int_equal(stk_verifier_add_cert(v, cert, certlen, &err), 0);
	memset(w, 0, sizeof(w));
	for (i = 0; i < NTHREADS; i++) {
		w[i].signer = signer;
		w[i].now = now;
		assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < NTHREADS; i++) {
		assert_int_equal(w[i].rc, 0);
		for (j = 0; j < PER_THREAD; j++) {
			assert_int_equal(stk_verify(v, w[i].tokens[j],
			    strlen(w[i].tokens[j]), STK_TOKEN_BULK, now, &claims,
			    &err), 0);
			stk_claims_clear(&claims);
			stk_token_free(w[i].tokens[j]);
		}
	}
	stk_verifier_free(v);
	stk_signer_free(signer);
	free(cert);
	assert_signs_for(cur.key, cur.pub);
}

/* The device drops our session under an open key: the next signature
 * reconnects once (logged), the next does not, and describe still works. */
TU_TEST(test_session_loss)
{
	struct stk_key_info info;
	struct stk_error err;

	if (be->lose_session == NULL) {
		printf("# session loss: n/a for %s: %s\n", be->name, be->no_session_why);
		skip();
	}
	assert_int_equal(be->lose_session(), 0);
	reconnects = 0;
	stk_log_set(count_reconnects, NULL, STK_LOG_DEBUG);
	assert_signs_for(cur.key, cur.pub);
	assert_signs_for(cur.key, cur.pub);
	stk_log_set(NULL, NULL, STK_LOG_ERROR);
	assert_int_equal(reconnects, 1);
	assert_int_equal(stk_key_describe(cur.key, &info, &err), 0);
	assert_int_equal(info.non_exportable, be->non_exportable);
}

int
main(int argc, char **argv)
{
	static const struct backend *const all[] = { &file_backend,
#ifdef STK_TEST_PKCS11
	    &p11_backend,
#endif
#ifdef STK_TEST_TPM
	    &tpm_backend,
#endif
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate),
		cmocka_unit_test(test_sign_verifies_with_openssl),
		cmocka_unit_test(test_public_key),
		cmocka_unit_test(test_describe_exportability),
		cmocka_unit_test(test_reopen_by_uri),
		cmocka_unit_test(test_duplicate_generate_refused),
		cmocka_unit_test(test_open_refused),
		cmocka_unit_test(test_open_close_cycles),
		cmocka_unit_test(test_threads_share_one_key),
		cmocka_unit_test(test_session_loss),
	};
	size_t i;
	int failed = 0;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (argc == 2 && strcmp(argv[1], all[i]->name) == 0)
			be = all[i];
	if (be == NULL) {
		fprintf(stderr, "usage: %s file|pkcs11|tpm (a backend built in)\n",
		    argv[0]);
		return 2;
	}
	scratch = tu_tmpdir(be->name);
	if (be->setup != NULL && be->setup() != 0) {
		fprintf(stderr, "cannot set up the %s backend\n", be->name);
		failed = 1;
		goto out;
	}
	for (i = 0; i < 3 && be->types[i] != STK_KEY_NONE; i++) {
		cur.type = be->types[i];
		failed += _cmocka_run_group_tests(stk_key_type_name(cur.type), tests,
		    sizeof(tests) / sizeof(tests[0]), group_setup, group_teardown);
	}
	if (be->teardown != NULL)
		be->teardown();
out:
	tu_rmrf(scratch);
	free(scratch);
	return failed;
}
