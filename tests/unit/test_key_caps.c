/* STK_CAP_* drive the core (signer/key.c): a backend that does not declare
 * STK_CAP_THREADSAFE is never entered by two signing threads at once, and
 * one without STK_CAP_NONEXPORTABLE never reports a non-exportable key.
 * The backends here are test doubles built on the public vtable: the real
 * file, pkcs11 and tpm backends all declare every cap they use, so none of
 * them could show the serialisation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>
#include "sitetoken/key.h"

static pthread_mutex_t fk_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fk_cond = PTHREAD_COND_INITIALIZER;
static int fk_inside, fk_max_inside, fk_started;
static long fk_window_ms;

/* Once both signing threads have started, waits up to fk_window_ms for two
 * signers to be inside at once: with two threads allowed in, they meet
 * here; with signing serialised, never. The window starts only when the
 * second thread exists, so a slow thread start on a loaded machine can
 * neither fail the parallel case nor hide a missing lock in the serial one. */
static int
fk_sign(struct stk_key *key, const unsigned char *digest, size_t dlen,
    unsigned char *sig, size_t *siglen, struct stk_error *err)
{
	struct timespec until;

	(void)key; (void)digest; (void)dlen; (void)err;
	pthread_mutex_lock(&fk_lock);
	fk_inside++;
	if (fk_inside > fk_max_inside)
		fk_max_inside = fk_inside;
	pthread_cond_broadcast(&fk_cond);
	while (fk_started < 2)
		pthread_cond_wait(&fk_cond, &fk_lock);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += fk_window_ms / 1000;
	until.tv_nsec += fk_window_ms % 1000 * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (fk_max_inside < 2 &&
	    pthread_cond_timedwait(&fk_cond, &fk_lock, &until) == 0)
		;
	fk_inside--;
	pthread_mutex_unlock(&fk_lock);
	memset(sig, 1, STK_P256_SIG_LEN);
	*siglen = STK_P256_SIG_LEN;
	return STK_OK;
}

static int
fk_describe(struct stk_key *key, struct stk_key_info *info, struct stk_error *err)
{
	(void)key; (void)err;
	info->non_exportable = 1; /* what a careless backend might claim */
	return STK_OK;
}

static const struct stk_key_backend fk_serial = {
	.name = "fake-serial", .scheme = "fake", .caps = 0,
	.sign = fk_sign, .describe = fk_describe,
};
static const struct stk_key_backend fk_parallel = {
	.name = "fake-parallel", .scheme = "fake",
	.caps = STK_CAP_THREADSAFE | STK_CAP_NONEXPORTABLE,
	.sign = fk_sign, .describe = fk_describe,
};

static void *
sign_thread(void *arg)
{
	struct stk_key *key = arg;
	unsigned char sig[STK_SIG_MAX];
	size_t siglen = sizeof(sig);

	pthread_mutex_lock(&fk_lock);
	fk_started++;
	pthread_cond_broadcast(&fk_cond);
	pthread_mutex_unlock(&fk_lock);
	if (stk_key_sign(key, (const unsigned char *)"x", 1, sig, &siglen, NULL) != 0)
		return (void *)1;
	return NULL;
}

/* window_ms: how long a signer waits for the other one (see fk_sign). */
static int
max_concurrent_signers(const struct stk_key_backend *vt, long window_ms)
{
	struct stk_key key = { vt, STK_KEY_P256 };
	pthread_t t[2];
	void *rv;
	int i;

	fk_max_inside = fk_started = 0;
	fk_window_ms = window_ms;
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, sign_thread, &key), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], &rv), 0);
		assert_null(rv);
	}
	return fk_max_inside;
}

/* A server worker pool signing with a backend that is not thread-safe:
 * the core lets one signer in at a time (each waits 300 ms in vain). */
static void
test_not_threadsafe_is_serialised(void **state)
{
	(void)state;
	assert_int_equal(max_concurrent_signers(&fk_serial, 300), 1);
}

/* The same backend declaring STK_CAP_THREADSAFE is entered in parallel:
 * the lock above comes from the cap, not from signing in general. The
 * 30 s window only guards against a hang: the second signer ends it. */
static void
test_threadsafe_runs_in_parallel(void **state)
{
	(void)state;
	assert_int_equal(max_concurrent_signers(&fk_parallel, 30000), 2);
}

/* `key show` of a backend that cannot make keys non-exportable never says
 * "non-exportable", whatever the backend fills in. */
static void
test_nonexportable_needs_the_cap(void **state)
{
	struct stk_key serial = { &fk_serial, STK_KEY_P256 };
	struct stk_key parallel = { &fk_parallel, STK_KEY_P256 };
	struct stk_key_info info;

	(void)state;
	assert_int_equal(stk_key_describe(&serial, &info, NULL), 0);
	assert_int_equal(info.non_exportable, 0);
	assert_int_equal(stk_key_describe(&parallel, &info, NULL), 0);
	assert_int_equal(info.non_exportable, 1);
}

/* Every compiled-in backend that can generate says so, and the reverse:
 * stk_key_generate refuses a backend without STK_CAP_GENERATE. */
static void
test_generate_cap_matches_slot(void **state)
{
	const struct stk_key_backend *const *b;

	(void)state;
	for (b = stk_key_backends(); *b != NULL; b++)
		assert_int_equal(((*b)->caps & STK_CAP_GENERATE) != 0,
		    (*b)->generate != NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_threadsafe_is_serialised),
		cmocka_unit_test(test_threadsafe_runs_in_parallel),
		cmocka_unit_test(test_nonexportable_needs_the_cap),
		cmocka_unit_test(test_generate_cap_matches_slot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
