/* The server's housekeeping: the one place key retirement happens on its
 * own (site/keys/keys.c, stk_site_keys_retire_due). Once at start-up, then every
 * SRV_HOUSEKEEPING_INTERVAL seconds, under the server's site lock. Whether
 * a key is due is the store's decision (its record of the latest token
 * expiry per key and its clock), so a node whose clock runs ahead retires
 * nothing early on PostgreSQL. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include "server.h"
#include "housekeeping.h"

struct srv_hk {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	unsigned int interval;
	struct stk_site *site;
	pthread_mutex_t *site_mu;
	struct srv_logs *logs;
};

/* One run; the first (at start-up) says so also when it retires nothing, so
 * an operator (and a test) can tell it ran. */
static void
hk_run(struct srv_hk *h, int first)
{
	struct stk_error err;
	size_t n = 0;
	int r;

	stk_error_clear(&err);
	pthread_mutex_lock(h->site_mu);
	r = stk_site_keys_retire_due(h->site, "serve", &n, &err);
	pthread_mutex_unlock(h->site_mu);
	if (r != 0)
		srv_log(h->logs, SRV_LOG_STS, "CCM_STS", "Housekeeping: key retirement "
		    "failed: %s", err.msg[0] ? err.msg : stk_strerror(r));
	else if (n > 0)
		srv_log(h->logs, SRV_LOG_STS, "CCM_STS", "Housekeeping: %zu site key(s) "
		    "retired: every token they signed has expired", n);
	else if (first)
		srv_log(h->logs, SRV_LOG_STS, "CCM_STS", "Housekeeping: no site key "
		    "is due for retirement");
}

static void *
hk_main(void *arg)
{
	struct srv_hk *h = arg;
	struct timespec ts;
	int first = 1;

	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		pthread_mutex_unlock(&h->mu);
		hk_run(h, first);
		first = 0;
		pthread_mutex_lock(&h->mu);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += h->interval;
		while (!h->stop && pthread_cond_timedwait(&h->cv, &h->mu, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int
srv_housekeeping_start(struct stk_site *site, pthread_mutex_t *site_mu,
    struct srv_logs *logs, unsigned int interval, struct srv_hk **out,
    struct stk_error *err)
{
	struct srv_hk *h;
	pthread_condattr_t ca;
	int r = STK_OK;

	*out = NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	h->site = site;
	h->site_mu = site_mu;
	h->logs = logs;
	h->interval = interval ? interval : SRV_HOUSEKEEPING_INTERVAL;
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((errno = pthread_create(&h->th, NULL, hk_main, h)) != 0) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot start the housekeeping thread");
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		free(h);
		goto out;
	}
	*out = h;
out:
	return r;
}

void
srv_housekeeping_stop(struct srv_hk *h)
{
	if (h == NULL)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->th, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}
