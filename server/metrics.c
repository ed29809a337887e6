/* Prometheus metrics listener; see metrics.h and docs/api.md "Metrics".
 *
 * Counters live in one process-wide table of C11 atomics (listener threads
 * add to them without a lock). Figures that live in the site (audit record
 * and checkpoint counts, key and certificate expiry) are read at scrape
 * time under the site lock, through site/facade/stats.c: a scrape never writes.
 *
 * Site-key signing is timed by interposing on the key's backend vtable
 * (curl vtls / BearSSL style: the key object's first member is its vtable
 * pointer): the key gets a copy of its backend's table whose sign() times
 * the backend's own sign(). Every other slot, and the name, are the
 * backend's, so nothing else sees a difference. A key opened later (another
 * node rotated this node's key) is wrapped at the next scrape. */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <microhttpd.h>
#include "sitetoken/bulklimits.h"
#include "sitetoken/device.h"
#include "sitetoken/key.h"
#include "sitetoken/stats.h"
#include "http.h"
#include "metrics.h"

#define MET_PATH "/metrics"
#define MET_CTYPE "text/plain; version=0.0.4; charset=utf-8"

/* Histogram bounds in microseconds (le labels in seconds). */
static const uint64_t met_bounds[] = { 1000, 2500, 5000, 10000, 25000, 50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000 };
#define MET_NB (sizeof(met_bounds) / sizeof(met_bounds[0]))

struct met_hist {
	atomic_ullong bucket[MET_NB + 1]; /* per bound, then +Inf; not cumulative */
	atomic_ullong sum_usec;
	atomic_ullong count;
};

/* Every refusal of the one table (sitetoken/refusal.h), by its wire code. */
#define MET_NREASONS ((size_t)STK_REFUSAL_COUNT)

static const char *const met_listeners[SRV_M_LISTENERS] = { "mp", "cmg" };
static const char *const met_backends[] = { "file", "pkcs11", "tpm", "other" };
#define MET_NBACKENDS (sizeof(met_backends) / sizeof(met_backends[0]))

static struct {
	atomic_ullong registrations[SRV_M_LISTENERS];
	atomic_ullong renewals[SRV_M_LISTENERS];
	atomic_ullong refusals[SRV_M_LISTENERS][MET_NREASONS];
	struct met_hist requests[SRV_M_LISTENERS];
	struct met_hist signs[MET_NBACKENDS];
} met;

struct srv_metrics {
	struct stk_site *site;
	pthread_mutex_t *site_mu;
	struct srv_logs *logs;
	struct MHD_Daemon *d;
	unsigned int port;
	struct srv_http http;
};

uint64_t
srv_metrics_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void
met_observe(struct met_hist *h, uint64_t usec)
{
	size_t i;

	for (i = 0; i < MET_NB && usec > met_bounds[i]; i++)
		;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_usec, usec, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void
srv_metrics_registered(enum srv_metric_listener l)
{
	atomic_fetch_add_explicit(&met.registrations[l], 1, memory_order_relaxed);
}

void
srv_metrics_renewed(enum srv_metric_listener l)
{
	atomic_fetch_add_explicit(&met.renewals[l], 1, memory_order_relaxed);
}

void
srv_metrics_refused(enum srv_metric_listener l, enum stk_refusal reason)
{
	size_t i = (size_t)reason;

	if (i == 0 || i >= MET_NREASONS) /* NONE is not a refusal */
		i = STK_REFUSAL_INTERNAL;
	atomic_fetch_add_explicit(&met.refusals[l][i], 1, memory_order_relaxed);
}

void
srv_metrics_request(enum srv_metric_listener l, uint64_t usec)
{
	met_observe(&met.requests[l], usec);
}

/* ---- timing the site key's signatures ---- */

struct met_wrap {
	const struct stk_key_backend *orig;
	struct stk_key_backend timed;
	size_t backend;                  /* index in met_backends */
};

/* One per backend, filled once and never changed afterwards, so sign()
 * reads an entry without the lock. */
static struct met_wrap met_wraps[MET_NBACKENDS];
static size_t met_nwraps;
static pthread_mutex_t met_wrap_mu = PTHREAD_MUTEX_INITIALIZER;

static int
met_sign(struct stk_key *key, const unsigned char *digest, size_t dlen,
    unsigned char *sig, size_t *siglen, struct stk_error *err)
{
	const struct met_wrap *w = (const struct met_wrap *)(const void *)
	    ((const char *)key->vt - offsetof(struct met_wrap, timed));
	uint64_t t0 = srv_metrics_clock();
	int r = w->orig->sign(key, digest, dlen, sig, siglen, err);

	met_observe(&met.signs[w->backend], srv_metrics_clock() - t0);
	return r;
}

/* Point the site key at a timed copy of its backend's table (once per key).
 * Caller holds the site lock, under which every signature is made. */
static void
met_wrap_key(struct stk_site *site)
{
	struct stk_key *key = NULL;
	struct stk_error err;
	struct met_wrap *w = NULL;
	size_t i;

	stk_error_clear(&err);
	if (stk_site_key(site, &key, &err) != 0 || key == NULL || key->vt == NULL ||
	    key->vt->sign == NULL)
		return;
	pthread_mutex_lock(&met_wrap_mu);
	for (i = 0; i < met_nwraps; i++) {
		if (key->vt == &met_wraps[i].timed) {
			pthread_mutex_unlock(&met_wrap_mu);
			return; /* already timed */
		}
		if (key->vt == met_wraps[i].orig)
			w = &met_wraps[i];
	}
	if (w == NULL && met_nwraps < MET_NBACKENDS) {
		w = &met_wraps[met_nwraps++];
		w->orig = key->vt;
		w->timed = *key->vt;
		w->timed.sign = met_sign;
		for (w->backend = 0; w->backend < MET_NBACKENDS - 1; w->backend++)
			if (strcmp(key->vt->name, met_backends[w->backend]) == 0)
				break;
	}
	if (w != NULL)
		key->vt = &w->timed;
	pthread_mutex_unlock(&met_wrap_mu);
}

/* ---- the text format ---- */

static void
met_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
met_hist_write(FILE *f, const char *name, const char *label, const char *value,
    struct met_hist *h)
{
	unsigned long long cum = 0, sum;
	size_t i;

	for (i = 0; i <= MET_NB; i++) {
		cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		if (i < MET_NB)
			fprintf(f, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", name, label, value,
			    (double)met_bounds[i] / 1e6, cum);
		else
			fprintf(f, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", name, label,
			    value, cum);
	}
	sum = atomic_load_explicit(&h->sum_usec, memory_order_relaxed);
	/* count is the +Inf bucket: one number, so the two always agree. */
	fprintf(f, "%s_sum{%s=\"%s\"} %.6f\n%s_count{%s=\"%s\"} %llu\n", name, label,
	    value, (double)sum / 1e6, name, label, value, cum);
}

/* Label values come from the site store (kid, node name): keep them to
 * characters that need no escaping, so a stored value cannot forge lines. */
static void
met_label(char *out, size_t len, const char *in)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < len; i++) {
		if (in[i] >= 0x20 && in[i] < 0x7f && in[i] != '"' && in[i] != '\\')
			out[i] = in[i];
		else
			out[i] = '_';
	}
	out[i] = '\0';
}

static char *
met_render(struct srv_metrics *m, size_t *len)
{
	struct stk_stats_key *keys = NULL;
	struct stk_error err;
	const unsigned char *cert;
	int64_t records = 0, checkpoints = 0, now = stk_now(), cert_exp;
	size_t nkeys = 0, clen = 0, i, j;
	char *buf = NULL, kid[64], node[64];
	int site_ok;
	FILE *f;

	if ((f = open_memstream(&buf, len)) == NULL)
		return NULL;
	stk_error_clear(&err);
	pthread_mutex_lock(m->site_mu);
	met_wrap_key(m->site);
	site_ok = stk_stats_audit_counts(m->site, &records, &checkpoints, &err) == 0 &&
	    stk_stats_keys(m->site, &keys, &nkeys, &err) == 0;
	cert = stk_site_cert(m->site, &clen);
	cert_exp = stk_stats_cert_not_after(cert, clen);
	pthread_mutex_unlock(m->site_mu);
	if (!site_ok)
		srv_log(m->logs, SRV_LOG_STS, "Metrics", "Cannot read the site for "
		    "metrics: %s", err.msg);

	met_head(f, "sitetoken_registrations_total", "counter",
	    "Registrations accepted, by listener.");
	for (i = 0; i < SRV_M_LISTENERS; i++)
		fprintf(f, "sitetoken_registrations_total{listener=\"%s\"} %llu\n",
		    met_listeners[i], atomic_load(&met.registrations[i]));
	met_head(f, "sitetoken_renewals_total", "counter",
	    "Client token renewals accepted, by listener.");
	for (i = 0; i < SRV_M_LISTENERS; i++)
		fprintf(f, "sitetoken_renewals_total{listener=\"%s\"} %llu\n",
		    met_listeners[i], atomic_load(&met.renewals[i]));
	{
		uint64_t hits, misses;

		stk_token_cache_stats(&hits, &misses);
		met_head(f, "sitetoken_token_cache_hits_total", "counter",
		    "Gateway client-token checks answered by the verified-token cache.");
		fprintf(f, "sitetoken_token_cache_hits_total %llu\n", (unsigned long long)hits);
		met_head(f, "sitetoken_token_cache_misses_total", "counter",
		    "Gateway client-token checks that verified the signature.");
		fprintf(f, "sitetoken_token_cache_misses_total %llu\n",
		    (unsigned long long)misses);
	}
	met_head(f, "sitetoken_refusals_total", "counter",
	    "Registrations and gateway requests refused by the site, by listener and reason.");
	for (i = 0; i < SRV_M_LISTENERS; i++)
		for (j = 1; j < MET_NREASONS; j++) /* 0 is NONE */
			fprintf(f, "sitetoken_refusals_total{listener=\"%s\",reason=\"%s\"} "
			    "%llu\n", met_listeners[i], stk_refusal_code((enum stk_refusal)j),
			    atomic_load(&met.refusals[i][j]));
	met_head(f, "sitetoken_request_duration_seconds", "histogram",
	    "Time to answer a request on the MP or the gateway (CMG).");
	for (i = 0; i < SRV_M_LISTENERS; i++)
		met_hist_write(f, "sitetoken_request_duration_seconds", "listener",
		    met_listeners[i], &met.requests[i]);
	met_head(f, "sitetoken_sign_duration_seconds", "histogram",
	    "Time for one signature with the site key, by key backend.");
	for (i = 0; i < MET_NBACKENDS; i++)
		met_hist_write(f, "sitetoken_sign_duration_seconds", "backend",
		    met_backends[i], &met.signs[i]);
	if (site_ok) {
		met_head(f, "sitetoken_audit_records", "gauge",
		    "Records in the site's audit log.");
		fprintf(f, "sitetoken_audit_records %lld\n", (long long)records);
		met_head(f, "sitetoken_audit_checkpoints", "gauge",
		    "Signed checkpoints in the site's audit log.");
		fprintf(f, "sitetoken_audit_checkpoints %lld\n", (long long)checkpoints);
		met_head(f, "sitetoken_site_key_certificate_expiry_seconds", "gauge",
		    "Seconds until the certificate of each active or retiring site key expires.");
		for (i = 0; i < nkeys; i++) {
			met_label(kid, sizeof(kid), keys[i].kid);
			met_label(node, sizeof(node), keys[i].node);
			fprintf(f, "sitetoken_site_key_certificate_expiry_seconds{kid=\"%s\","
			    "node=\"%s\",status=\"%s\"} %lld\n", kid, node,
			    strcmp(keys[i].status, "active") == 0 ? "active" : "retiring",
			    (long long)(keys[i].cert_not_after - now));
		}
		met_head(f, "sitetoken_site_key_retire_seconds", "gauge",
		    "Seconds until a retiring site key stops verifying tokens.");
		for (i = 0; i < nkeys; i++) {
			if (keys[i].not_after == 0)
				continue;
			met_label(kid, sizeof(kid), keys[i].kid);
			met_label(node, sizeof(node), keys[i].node);
			fprintf(f, "sitetoken_site_key_retire_seconds{kid=\"%s\",node=\"%s\"} "
			    "%lld\n", kid, node, (long long)(keys[i].not_after - now));
		}
	}
	met_head(f, "sitetoken_site_certificate_expiry_seconds", "gauge",
	    "Seconds until this node's site certificate expires.");
	fprintf(f, "sitetoken_site_certificate_expiry_seconds %lld\n",
	    (long long)(cert_exp - now));
	free(keys);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static enum MHD_Result
met_queue(struct MHD_Connection *c, unsigned int status, struct MHD_Response *resp,
    const char *ctype)
{
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
met_text(struct MHD_Connection *c, unsigned int status, const char *msg)
{
	return met_queue(c, status, MHD_create_response_from_buffer(strlen(msg),
	    (void *)(uintptr_t)msg, MHD_RESPMEM_PERSISTENT), "text/plain; charset=utf-8");
}

static enum MHD_Result
met_route(void *ctx, struct MHD_Connection *c, const char *url, const char *method,
    const struct srv_req *rq)
{
	struct srv_metrics *m = ctx;
	struct MHD_Response *resp;
	size_t len = 0;
	char *body;

	(void)rq;
	if (strcmp(url, MET_PATH) != 0)
		return met_text(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at "
		    MET_PATH "\n");
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return met_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
	if ((body = met_render(m, &len)) == NULL)
		return met_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	if ((resp = MHD_create_response_from_buffer_with_free_callback(len, body,
	    free)) == NULL)
		free(body);
	return met_queue(c, MHD_HTTP_OK, resp, MET_CTYPE);
}

/* MHD's format strings: checked as printf formats (clang -Wformat-nonliteral). */
static void __attribute__((format(printf, 2, 0)))
met_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct srv_metrics *m = cls;
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	srv_log(m->logs, SRV_LOG_STS, "Metrics", "listener: %s", msg);
}

int
srv_metrics_start(struct stk_site *site, pthread_mutex_t *site_mu,
    struct srv_logs *logs, const char *addr, int remote, struct srv_metrics **out,
    struct stk_error *err)
{
	struct srv_metrics *m;
	struct sockaddr_in sin;
	struct srv_daemon_opts opts;
	const union MHD_DaemonInfo *di;
	int r;

	*out = NULL;
	if ((r = srv_parse_listen(addr, "metrics", &sin, err)) != 0)
		return r;
	/* Plain HTTP without authentication: what it tells (traffic, refusal
	 * reasons, key expiry) stays on the host unless asked for. */
	if (!remote && (ntohl(sin.sin_addr.s_addr) >> 24) != 127)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "the metrics listener is plain HTTP and listens on loopback only; "
		    "'%s' needs --metrics-remote", addr);
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	m->site = site;
	m->site_mu = site_mu;
	m->logs = logs;
	m->http = (struct srv_http){ met_route, m, 0 };
	pthread_mutex_lock(site_mu);
	met_wrap_key(site);
	pthread_mutex_unlock(site_mu);
	opts = (struct srv_daemon_opts){ met_mhd_log, m, &sin, 1, 16, 8, 10, NULL,
	    NULL, NULL };
	if ((m->d = srv_http_start(&m->http, &opts)) == NULL) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot listen on %s (metrics): %s", addr, strerror(errno));
		free(m);
		return r;
	}
	di = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
	m->port = di != NULL ? di->port : ntohs(sin.sin_port);
	srv_log(logs, SRV_LOG_STS, "Metrics", "Metrics listening on http port %u%s",
	    m->port, MET_PATH);
	*out = m;
	return STK_OK;
}

unsigned int
srv_metrics_listener_port(const struct srv_metrics *m)
{
	return m != NULL ? m->port : 0;
}

void
srv_metrics_stop(struct srv_metrics *m)
{
	if (m == NULL)
		return;
	if (m->d != NULL)
		MHD_stop_daemon(m->d);
	free(m);
}
