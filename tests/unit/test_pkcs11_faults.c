/* Fault injection for the pkcs11 backend with link-time --wrap:
 *  - EVP_PKEY_sign (the backend's call into libp11's token key) fails the
 *    way libp11 reports a failed C_Sign: CK_RV as the reason of an error in
 *    libp11's OpenSSL error library;
 *  - PKCS11_login is counted, to show one login per connection and no
 *    retry storm on a wrong PIN.
 * Everything else is the real SoftHSM token. */
#include <pthread.h>
#include <time.h>
#include <libp11.h>
#include "test_pkcs11_token.h"
#include <openssl/err.h>
#include <openssl/evp.h>
#include "sitetoken/key.h"
#include "sitetoken/log.h"
#include "key_check.h"

#define LABEL "faults"
static char *tokdir;

/* ---- wrappers ---- */

int __real_EVP_PKEY_sign(EVP_PKEY_CTX *ctx, unsigned char *sig,
    size_t *siglen, const unsigned char *tbs, size_t tbslen);
int __wrap_EVP_PKEY_sign(EVP_PKEY_CTX *ctx, unsigned char *sig,
    size_t *siglen, const unsigned char *tbs, size_t tbslen);
int __real_PKCS11_login(PKCS11_SLOT *slot, int so, const char *pin);
int __wrap_PKCS11_login(PKCS11_SLOT *slot, int so, const char *pin);

static pthread_mutex_t inj_lock = PTHREAD_MUTEX_INITIALIZER;
static int fail_count;            /* fail this many next calls */
static CK_RV fail_rv;
static pthread_barrier_t *fail_barrier; /* hold failing threads together */
static int logins;
static int sign_calls;
static int probe_overlap;         /* hold each call until a second arrives */
static int in_flight, max_in_flight;
/* Sessions are closed only between two signatures (each signature, with
 * its reopening, holds this for reading): SoftHSM 2.6 frees a session's
 * objects under a C_Sign (or a key search) running on it in another thread
 * of the same process, a crash inside the module; that race belongs to the
 * application, and an HSM restart seen from here fails the next call. */
static pthread_rwlock_t sign_rw =
    PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP; /* the closer is not starved */

int
__wrap_EVP_PKEY_sign(EVP_PKEY_CTX *ctx, unsigned char *sig, size_t *siglen,
    const unsigned char *tbs, size_t tbslen)
{
	int fail = 0;

	pthread_mutex_lock(&inj_lock);
	sign_calls++;
	if (fail_count > 0 && sig != NULL) {
		fail_count--;
		fail = 1;
	}
	pthread_mutex_unlock(&inj_lock);
	if (!fail && probe_overlap && sig != NULL) {
		struct timespec ts = { 0, 1000000 };
		int i, n, r;

		n = __atomic_add_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
		if (n > __atomic_load_n(&max_in_flight, __ATOMIC_SEQ_CST))
			__atomic_store_n(&max_in_flight, n, __ATOMIC_SEQ_CST);
		/* Up to 20 s (a loaded machine may not run it at once) for the
		 * other thread to get here too: it can only if the backend lets
		 * two signatures run at once. */
		for (i = 0; i < 20000 &&
		    __atomic_load_n(&max_in_flight, __ATOMIC_SEQ_CST) < 2; i++)
			nanosleep(&ts, NULL);
		r = __real_EVP_PKEY_sign(ctx, sig, siglen, tbs, tbslen);
		__atomic_sub_fetch(&in_flight, 1, __ATOMIC_SEQ_CST);
		return r;
	}
	if (!fail)
		return __real_EVP_PKEY_sign(ctx, sig, siglen, tbs, tbslen);
	if (fail_barrier != NULL)
		pthread_barrier_wait(fail_barrier);
	/* What libp11 leaves behind when C_Sign fails. */
	ERR_raise(ERR_get_CKR_code(), (int)fail_rv);
	return 0;
}

int
__wrap_PKCS11_login(PKCS11_SLOT *slot, int so, const char *pin)
{
	pthread_mutex_lock(&inj_lock);
	logins++;
	pthread_mutex_unlock(&inj_lock);
	return __real_PKCS11_login(slot, so, pin);
}

static void
arm(int count, CK_RV rv)
{
	pthread_mutex_lock(&inj_lock);
	fail_count = count;
	fail_rv = rv;
	pthread_mutex_unlock(&inj_lock);
}

static int reopened, lost;

static void
count_log(void *ctx, enum stk_log_level level, const char *component,
    const char *func, int line, const char *msg)
{
	(void)ctx; (void)level; (void)func; (void)line;
	if (strcmp(component, "pkcs11") != 0)
		return;
	if (strstr(msg, "reopened") != NULL)
		__atomic_add_fetch(&reopened, 1, __ATOMIC_SEQ_CST);
	if (strstr(msg, "lost the session") != NULL)
		__atomic_add_fetch(&lost, 1, __ATOMIC_SEQ_CST);
}

/* ---- fixtures ---- */

/* One key open at a time: with libp11 0.4.12 every key has its own
 * context, and closing or rebuilding one finalizes the module under the
 * other (which then recovers through the very path tested here, but would
 * blur the counts). */
static char *rsa_uri, *ec_uri;
static struct stk_key *rsa_key, *ec_key;
static EVP_PKEY *rsa_pub, *ec_pub;

static int
group_setup(void **state)
{
	struct stk_error err;
	struct stk_key *k = NULL;

	(void)state;
	if (p11t_token_setup(LABEL, &tokdir) != 0) /* no PIN in the environment */
		return -1;
	if (stk_key_generate("pkcs11", "pkcs11:token=" LABEL ";object=rsa",
	    STK_KEY_RSA2048, NULL, &k, &rsa_uri, &err) != 0)
		return -1;
	stk_key_close(k);
	if (stk_key_generate("pkcs11", "pkcs11:token=" LABEL ";object=ec",
	    STK_KEY_P256, NULL, &k, &ec_uri, &err) != 0)
		return -1;
	stk_key_close(k);
	stk_log_set(count_log, NULL, STK_LOG_DEBUG);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	stk_log_set(NULL, NULL, STK_LOG_ERROR);
	free(rsa_uri);
	free(ec_uri);
	p11t_token_cleanup(tokdir);
	return 0;
}

/* Each test opens its key afresh (RSA for reset, P-256 for reset_ec), no
 * fault armed. */
static int
open_key(const char *uri, struct stk_key **key, EVP_PKEY **pub)
{
	struct stk_error err;

	if (stk_key_open(uri, NULL, key, &err) != 0 ||
	    stk_key_get_public(*key, pub, &err) != 0)
		return -1;
	arm(0, 0);
	fail_barrier = NULL;
	reopened = lost = logins = sign_calls = 0;
	return 0;
}

static int reset(void **state) { (void)state; return open_key(rsa_uri, &rsa_key, &rsa_pub); }
static int reset_ec(void **state) { (void)state; return open_key(ec_uri, &ec_key, &ec_pub); }

static int
done(void **state)
{
	(void)state;
	stk_key_close(rsa_key);
	stk_key_close(ec_key);
	EVP_PKEY_free(rsa_pub);
	EVP_PKEY_free(ec_pub);
	rsa_key = ec_key = NULL;
	rsa_pub = ec_pub = NULL;
	return 0;
}

static int
sign_check(struct stk_key *k, EVP_PKEY *pub, struct stk_error *err)
{
	const unsigned char msg[] = "h.p";
	unsigned char sig[STK_SIG_MAX];
	size_t siglen = sizeof(sig);
	int r;

	stk_error_clear(err);
	if ((r = stk_key_sign(k, msg, sizeof(msg), sig, &siglen, err)) != 0)
		return r;
	return stk_sig_verify(pub, msg, sizeof(msg), sig, siglen);
}

/* ---- tests ---- */

/* The next C_Sign fails with rv (the session or token is gone): the
 * signature still succeeds, after one reopening and one login. */
static void
lost_once(struct stk_key *k, EVP_PKEY *pub, CK_RV rv)
{
	struct stk_error err;

	arm(1, rv);
	assert_int_equal(sign_check(k, pub, &err), 0);
	assert_int_equal(lost, 1);
	assert_int_equal(reopened, 1);
	assert_int_equal(logins, 1);    /* one fresh login for the new context */
	assert_int_equal(sign_calls, 2); /* the failed one and the retry */
	/* Healthy again: no more reopening. */
	assert_int_equal(sign_check(k, pub, &err), 0);
	assert_int_equal(reopened, 1);
}

TU_TEST(test_lost_session_rsa) { lost_once(rsa_key, rsa_pub, CKR_SESSION_HANDLE_INVALID); }
TU_TEST(test_lost_session_ec) { lost_once(ec_key, ec_pub, CKR_SESSION_HANDLE_INVALID); }
TU_TEST(test_device_removed) { lost_once(rsa_key, rsa_pub, CKR_DEVICE_REMOVED); }
TU_TEST(test_token_not_present) { lost_once(ec_key, ec_pub, CKR_TOKEN_NOT_PRESENT); }
TU_TEST(test_logged_out) { lost_once(rsa_key, rsa_pub, CKR_USER_NOT_LOGGED_IN); }

/* Reopen once only: if the retry fails too, report it (no loop). */
TU_TEST(test_lost_twice_gives_up)
{
	struct stk_error err;

	arm(2, CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(sign_check(rsa_key, rsa_pub, &err), STK_E_BACKEND);
	assert_int_equal(err.layer, STK_LAYER_PKCS11);
	assert_int_equal(err.native, CKR_SESSION_HANDLE_INVALID);
	assert_non_null(strstr(err.msg, "after reopening"));
	assert_non_null(strstr(err.msg, "CKR_SESSION_HANDLE_INVALID"));
	assert_int_equal(sign_calls, 2);
	assert_int_equal(logins, 1);
	/* Not fatal for the key: the next call works. */
	assert_int_equal(sign_check(rsa_key, rsa_pub, &err), 0);
}

/* Other errors are reported at once, without reconnecting. */
TU_TEST(test_other_error_no_reopen)
{
	struct stk_error err;

	arm(1, CKR_FUNCTION_FAILED);
	assert_int_equal(sign_check(ec_key, ec_pub, &err), STK_E_BACKEND);
	assert_int_equal(err.native, CKR_FUNCTION_FAILED);
	assert_non_null(strstr(err.msg, "CKR_FUNCTION_FAILED"));
	assert_int_equal(lost, 0);
	assert_int_equal(logins, 0);
	assert_int_equal(sign_calls, 1);
}

/* Two threads lose their session at the same moment: the connection is
 * rebuilt once (one login), and both signatures succeed. */
struct th { struct stk_key *k; EVP_PKEY *pub; int rc; };

static void *
th_run(void *arg)
{
	struct th *t = arg;
	struct stk_error err;

	t->rc = sign_check(t->k, t->pub, &err);
	return NULL;
}

TU_TEST(test_concurrent_loss_one_reconnect)
{
	pthread_barrier_t b;
	pthread_t th[2];
	struct th t[2] = { { rsa_key, rsa_pub, -1 }, { rsa_key, rsa_pub, -1 } };
	int i;

	pthread_barrier_init(&b, NULL, 2);
	fail_barrier = &b;
	arm(2, CKR_DEVICE_REMOVED);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, th_run, &t[i]), 0);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	fail_barrier = NULL;
	pthread_barrier_destroy(&b);
	assert_int_equal(t[0].rc, 0);
	assert_int_equal(t[1].rc, 0);
	assert_int_equal(lost, 2);
	assert_int_equal(reopened, 2); /* both retried after the reopening */
	assert_int_equal(logins, 1);   /* ...but only one reconnect and login */
}

static int
done_first(void **state)
{
	done(state);
	reopened = lost = logins = sign_calls = 0;
	return 0;
}

/* Two threads are inside the token's signing call at the same time: the
 * backend's lock does not serialize signatures. */
TU_TEST(test_two_signatures_in_flight)
{
	pthread_t th[2];
	struct th t[2] = { { ec_key, ec_pub, -1 }, { ec_key, ec_pub, -1 } };
	int i;

	in_flight = max_in_flight = 0;
	probe_overlap = 1;
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, th_run, &t[i]), 0);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	probe_overlap = 0;
	assert_int_equal(t[0].rc, 0);
	assert_int_equal(t[1].rc, 0);
	assert_int_equal(max_in_flight, 2);
	assert_int_equal(lost, 0);
}

/* A wrong PIN is refused with a message that names the cause (never the
 * PIN) and costs one login attempt: the same wrong PIN is never presented
 * again (a server re-opening the key on every request would otherwise run
 * the token's retry counter down), so the token is not locked. A new PIN
 * is tried; the right one still works. */
TU_TEST(test_wrong_pin_one_attempt)
{
	struct stk_key *k = NULL;
	struct stk_error err;
	CK_FUNCTION_LIST *fl;
	CK_SLOT_ID slot;
	CK_TOKEN_INFO ti;
	int i;

	setenv("SITETOKEN_PKCS11_PIN", "00000000", 1);
	for (i = 0; i < 5; i++) {
		stk_error_clear(&err);
		assert_int_equal(stk_key_open(rsa_uri, NULL, &k, &err), STK_E_AUTH);
		assert_null(k);
		assert_int_equal(err.layer, STK_LAYER_PKCS11);
		assert_int_equal(err.native, CKR_PIN_INCORRECT);
		assert_non_null(strstr(err.msg, "wrong PIN"));
		assert_null(strstr(err.msg, "00000000"));
		if (i > 0)
			assert_non_null(strstr(err.msg, "already refused this PIN"));
	}
	assert_int_equal(logins, 1);
	setenv("SITETOKEN_PKCS11_PIN", "11111111", 1);
	assert_int_equal(stk_key_open(rsa_uri, NULL, &k, &err), STK_E_AUTH);
	assert_null(strstr(err.msg, "already refused"));
	assert_int_equal(logins, 2);
	unsetenv("SITETOKEN_PKCS11_PIN");
	assert_non_null(fl = p11t_fl());
	assert_int_equal(p11t_slot(fl, LABEL, &slot), 0);
	assert_int_equal(fl->C_GetTokenInfo(slot, &ti), CKR_OK);
	assert_false(ti.flags & CKF_USER_PIN_LOCKED);
	p11t_fl_release();
	assert_int_equal(stk_key_open(rsa_uri, NULL, &k, &err), 0);
	assert_int_equal(logins, 3);
	assert_signs_for(k, NULL);
	rsa_key = k; /* closed by the teardown */
}

/* Real faults, no injection: every session of the token is closed
 * (C_CloseAllSessions: what an HSM restart looks like to us) ten times while
 * two threads sign as fast as they can (between two signatures, see
 * sign_rw), each thread signing at least once after every close. Every
 * signature succeeds and verifies: the first one after each close reopens
 * the session (and logs in) by itself. */
struct load {
	struct stk_key *k;
	EVP_PKEY *pub;
	volatile int *stop;
	int ok, failed, after;
	int tries; /* signatures made, counted under sign_rw */
	char msg[256];
};

/* Until each thread made a signature after `since` (its tries at the
 * last close): progress, not a sleep, so a slow machine cannot make a
 * close land on a thread that never ran. Up to 60 s. */
static void
wait_each_signed(struct load *l, const int since[2])
{
	struct timespec ts = { 0, 1000000 };
	int i;

	for (i = 0; i < 60000; i++) {
		if (__atomic_load_n(&l[0].tries, __ATOMIC_SEQ_CST) > since[0] &&
		    __atomic_load_n(&l[1].tries, __ATOMIC_SEQ_CST) > since[1])
			return;
		nanosleep(&ts, NULL);
	}
}

static void *
load_run(void *arg)
{
	struct load *l = arg;
	struct stk_error err;
	int r;

	while (!__atomic_load_n(l->stop, __ATOMIC_SEQ_CST)) {
		pthread_rwlock_rdlock(&sign_rw);
		r = sign_check(l->k, l->pub, &err); /* a wrong signature fails too */
		__atomic_add_fetch(&l->tries, 1, __ATOMIC_SEQ_CST); /* under the lock */
		pthread_rwlock_unlock(&sign_rw);
		if (r == 0)
			l->ok++;
		else if (l->failed++ == 0)
			snprintf(l->msg, sizeof(l->msg), "%s",
			    err.msg[0] != '\0' ? err.msg : "wrong signature");
	}
	/* The closing has stopped: the next signature works. */
	l->after = sign_check(l->k, l->pub, &err) == 0;
	return NULL;
}

TU_TEST(test_sessions_closed_under_load)
{
	CK_FUNCTION_LIST *fl;
	CK_SLOT_ID slot;
	volatile int stop = 0;
	struct load l[2];
	pthread_t th[2];
	int i, since[2] = { 0, 0 };

	memset(l, 0, sizeof(l));
	assert_non_null(fl = p11t_fl());
	assert_int_equal(p11t_slot(fl, LABEL, &slot), 0);
	for (i = 0; i < 2; i++) {
		l[i].k = ec_key;
		l[i].pub = ec_pub;
		l[i].stop = &stop;
		assert_int_equal(pthread_create(&th[i], NULL, load_run, &l[i]), 0);
	}
	for (i = 0; i < 10; i++) {
		wait_each_signed(l, since);
		pthread_rwlock_wrlock(&sign_rw);
		assert_int_equal(fl->C_CloseAllSessions(slot), CKR_OK);
		since[0] = __atomic_load_n(&l[0].tries, __ATOMIC_SEQ_CST);
		since[1] = __atomic_load_n(&l[1].tries, __ATOMIC_SEQ_CST);
		pthread_rwlock_unlock(&sign_rw);
	}
	wait_each_signed(l, since);
	__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	p11t_fl_release();
	for (i = 0; i < 2; i++) {
		printf("# thread %d: %d signatures, %d failed%s%s\n", i, l[i].ok,
		    l[i].failed, l[i].failed ? ": " : "", l[i].msg);
		assert_true(l[i].ok > 0);
		assert_int_equal(l[i].after, 1);
		assert_int_equal(l[i].failed, 0);
	}
	/* Each close (every one landed between two signatures) cost a reopening. */
	assert_true(__atomic_load_n(&reopened, __ATOMIC_SEQ_CST) >= 10);
}

TU_MAIN(group_setup, group_teardown,
	cmocka_unit_test_setup_teardown(test_lost_session_rsa, reset, done),
	cmocka_unit_test_setup_teardown(test_lost_session_ec, reset_ec, done),
	cmocka_unit_test_setup_teardown(test_device_removed, reset, done),
	cmocka_unit_test_setup_teardown(test_token_not_present, reset_ec, done),
	cmocka_unit_test_setup_teardown(test_logged_out, reset, done),
	cmocka_unit_test_setup_teardown(test_lost_twice_gives_up, reset, done),
	cmocka_unit_test_setup_teardown(test_other_error_no_reopen, reset_ec, done),
	cmocka_unit_test_setup_teardown(test_concurrent_loss_one_reconnect, reset, done),
	cmocka_unit_test_setup_teardown(test_two_signatures_in_flight, reset_ec, done),
	cmocka_unit_test_setup_teardown(test_sessions_closed_under_load, reset_ec, done),
	cmocka_unit_test_setup_teardown(test_wrong_pin_one_attempt, done_first, done))
