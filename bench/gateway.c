/* Gateway figures against a running `sitetoken serve` (bench/run.sh starts
 * one on loopback): authenticated CMG requests per second with keep-alive
 * and mutual TLS (reference: GET health on the same connections, i.e. the
 * bare HTTPS stack), registrations per second end to end (reference: one
 * fresh mutual-TLS handshake per request), and the server's resident memory
 * holding N concurrent connections. libcurl multi, one thread; every phase
 * is bounded in count and time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/resource.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "bench.h"

#define KEEPALIVE_CONNS 16
#define KEEPALIVE_THREADS 2
#define PHASE_TIMEOUT 30L

struct device {
	char *cert_pem, *key_pem;
	char auth[STK_TOKEN_MAX + 64];   /* "Authorization: Bearer ..." */
	struct curl_slist *hdr;
};

struct xfer {
	CURL *e;
	struct device *d;
	char *body;                      /* response, grown as needed */
	size_t len;
	long status;
};

static char base[512];
static char *bulk;

static size_t
on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t add = sz * n;
	char *nb;

	if (x->len + add > 1 << 20)
		return 0;
	if ((nb = realloc(x->body, x->len + add + 1)) == NULL)
		return 0;
	memcpy(nb + x->len, p, add);
	x->body = nb;
	x->len += add;
	x->body[x->len] = '\0';
	return add;
}

static int
device_make(struct device *d, int i)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *n;
	BIO *b = NULL;
	char cn[32], *p;
	long len;
	int r = -1;

	memset(d, 0, sizeof(*d));
	snprintf(cn, sizeof(cn), "bench-device-%d", i);
	if (k == NULL || x == NULL || X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), i + 1) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30) == NULL ||
	    X509_set_pubkey(x, k) != 1 || (n = X509_get_subject_name(x)) == NULL ||
	    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, n) != 1 || X509_sign(x, k, EVP_sha256()) <= 0)
		goto out;
	if ((b = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509(b, x) != 1 ||
	    (len = BIO_get_mem_data(b, &p)) <= 0 ||
	    (d->cert_pem = strndup(p, (size_t)len)) == NULL)
		goto out;
	BIO_free(b);
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (len = BIO_get_mem_data(b, &p)) <= 0 ||
	    (d->key_pem = strndup(p, (size_t)len)) == NULL)
		goto out;
	r = 0;
out:
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(k);
	return r;
}

static void
device_free(struct device *d)
{
	if (d->key_pem != NULL)
		OPENSSL_cleanse(d->key_pem, strlen(d->key_pem));
	free(d->key_pem);
	free(d->cert_pem);
	curl_slist_free_all(d->hdr);
	OPENSSL_cleanse(d->auth, sizeof(d->auth));
	memset(d, 0, sizeof(*d));
}

/* An easy handle for `path` as device d. body: POST body or NULL (GET). */
static int
xfer_setup(struct xfer *x, struct device *d, const char *path,
    const char *body, int fresh)
{
	struct curl_blob cert, key;
	char url[640];

	free(x->body);
	x->body = NULL;
	x->len = 0;
	x->status = 0;
	x->d = d;
	if (x->e == NULL && (x->e = curl_easy_init()) == NULL)
		return -1;
	snprintf(url, sizeof(url), "%s/sitetoken/v1/%s", base, path);
	cert = (struct curl_blob){ d->cert_pem, strlen(d->cert_pem), CURL_BLOB_COPY };
	key = (struct curl_blob){ d->key_pem, strlen(d->key_pem), CURL_BLOB_COPY };
	curl_easy_setopt(x->e, CURLOPT_URL, url);
	curl_easy_setopt(x->e, CURLOPT_CAINFO, bench_opts.ca_file);
	curl_easy_setopt(x->e, CURLOPT_SSLCERT_BLOB, &cert);
	curl_easy_setopt(x->e, CURLOPT_SSLCERTTYPE, "PEM");
	curl_easy_setopt(x->e, CURLOPT_SSLKEY_BLOB, &key);
	curl_easy_setopt(x->e, CURLOPT_SSLKEYTYPE, "PEM");
	curl_easy_setopt(x->e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->e, CURLOPT_TIMEOUT, PHASE_TIMEOUT);
	curl_easy_setopt(x->e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->e, CURLOPT_FORBID_REUSE, fresh ? 1L : 0L);
	curl_easy_setopt(x->e, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
	curl_easy_setopt(x->e, CURLOPT_HTTPHEADER, d->hdr);
	if (body != NULL)
		curl_easy_setopt(x->e, CURLOPT_COPYPOSTFIELDS, body);
	else
		curl_easy_setopt(x->e, CURLOPT_HTTPGET, 1L);
	return 0;
}

static CURLM *
multi_new(long maxconn)
{
	CURLM *m = curl_multi_init();

	if (m != NULL)
		curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, maxconn);
	return m;
}

/* Run until every added transfer is done or the deadline passes; calls
 * again(x) when one finishes: nonzero re-adds it (keep-alive loops). */
static long
multi_run(CURLM *m, double deadline, int (*again)(struct xfer *, void *),
    void *arg, long *ok, long *bad)
{
	int running = 1, q;
	CURLMsg *msg;
	struct xfer *x;
	long done = 0;

	*ok = *bad = 0;
	while (running > 0 && bench_now() < deadline) {
		if (curl_multi_perform(m, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(m, &q)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &x->status);
			if (msg->data.result == CURLE_OK && x->status == 200)
				(*ok)++;
			else {
				if (*bad == 0 && getenv("STK_BENCH_DEBUG"))
					fprintf(stderr, "gateway: first failure: %s, "
					    "HTTP %ld\n", curl_easy_strerror(msg->data.result),
					    x->status);
				(*bad)++;
			}
			done++;
			curl_multi_remove_handle(m, x->e);
			if (again != NULL && again(x, arg)) {
				curl_multi_add_handle(m, x->e);
				running++;
			}
		}
		if (running > 0)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	return done;
}

/* What one keep-alive series measured besides its rate. */
struct ka_stats {
	double client_cpu;           /* bench process CPU / wall, in cores */
	double server_cpu;           /* server process CPU / wall, in cores */
	double p50_ms, p99_ms;       /* per-request latency */
};

struct ka_thread {
	pthread_t th;
	struct device *dev;          /* this thread's devices (one per conn) */
	int nconn;
	const char *url_base;        /* which server */
	const char *path;
	double *lat;                 /* seconds, per request */
	size_t nlat, caplat;
	long ok, bad;
	double t0, t1;
	int failed;
};

static double
proc_cpu_s(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	/* after "(comm) ": state is field 3; utime, stime are 14, 15 */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double
self_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static int
again_lat(struct xfer *x, void *a)
{
	struct ka_thread *t = a;
	curl_off_t us = 0;

	if (curl_easy_getinfo(x->e, CURLINFO_TOTAL_TIME_T, &us) == CURLE_OK &&
	    t->nlat < t->caplat)
		t->lat[t->nlat++] = (double)us / 1e6;
	if (bench_now() >= t->t1)
		return 0;
	x->len = 0;
	return 1;
}

static pthread_barrier_t ka_barrier;

static void *
ka_run(void *arg)
{
	struct ka_thread *t = arg;
	struct xfer *x = calloc((size_t)t->nconn, sizeof(*x));
	CURLM *m = multi_new(t->nconn * 2);
	long ok = 0, bad = 1;
	int i;

	t->failed = 1;
	if (x == NULL || m == NULL) {
		pthread_barrier_wait(&ka_barrier);
		goto out;
	}
	for (i = 0; i < t->nconn; i++) {
		xfer_setup(&x[i], &t->dev[i], t->path, NULL, 0);
		if (t->url_base != NULL) {
			char url[640];

			snprintf(url, sizeof(url), "%s/sitetoken/v1/%s", t->url_base,
			    t->path);
			curl_easy_setopt(x[i].e, CURLOPT_URL, url);
		}
		curl_multi_add_handle(m, x[i].e);
	}
	/* Warm-up: one request per connection does the handshakes. */
	t->t1 = 0;
	multi_run(m, bench_now() + PHASE_TIMEOUT, again_lat, t, &ok, &bad);
	/* Every thread times the same interval, after every warm-up. */
	pthread_barrier_wait(&ka_barrier);
	if (bad != 0 || ok != t->nconn)
		goto out;
	t->nlat = 0;
	for (i = 0; i < t->nconn; i++)
		curl_multi_add_handle(m, x[i].e);
	t->t0 = bench_now();
	t->t1 = t->t0 + bench_opts.seconds * 2;
	multi_run(m, t->t1 + PHASE_TIMEOUT, again_lat, t, &t->ok, &t->bad);
	t->t1 = bench_now();
	t->failed = t->bad != 0;
out:
	for (i = 0; x != NULL && i < t->nconn; i++) {
		curl_multi_remove_handle(m, x[i].e);
		curl_easy_cleanup(x[i].e);
		free(x[i].body);
	}
	free(x);
	curl_multi_cleanup(m);
	return NULL;
}

static int
cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Requests per second over `conns` kept-alive connections driven by
 * KEEPALIVE_THREADS client threads (one curl multi each), with the client's
 * and the server's CPU and the latency percentiles. url_base: another
 * server (NULL: --cmg). */
static int
keepalive_rate_on(struct device *dev, int conns, const char *url_base,
    const char *path, double *rate, struct ka_stats *st)
{
	struct ka_thread t[KEEPALIVE_THREADS];
	int nt = conns < KEEPALIVE_THREADS ? conns : KEEPALIVE_THREADS, i, used = 0;
	double start, c0, s0, wall, *all = NULL;
	size_t nall = 0;
	long ok = 0;
	int r = 0;

	memset(t, 0, sizeof(t));
	memset(st, 0, sizeof(*st));
	*rate = 0;
	start = bench_now();
	c0 = self_cpu_s();
	s0 = proc_cpu_s(bench_opts.server_pid);
	for (i = 0; i < nt; i++) {
		t[i].nconn = conns / nt + (i < conns % nt);
		t[i].dev = dev + used;
		used += t[i].nconn;
		t[i].url_base = url_base;
		t[i].path = path;
		t[i].caplat = 1 << 20;
		if ((t[i].lat = malloc(t[i].caplat * sizeof(double))) == NULL)
			return -1;
	}
	pthread_barrier_init(&ka_barrier, NULL, (unsigned)nt);
	for (i = 0; i < nt; i++)
		if (pthread_create(&t[i].th, NULL, ka_run, &t[i]) != 0)
			abort(); /* the barrier would wait for it forever */
	for (i = 0; i < nt; i++)
		pthread_join(t[i].th, NULL);
	pthread_barrier_destroy(&ka_barrier);
	wall = 0;
	for (i = 0; i < nt; i++) {
		if (t[i].failed)
			r = -1;
		ok += t[i].ok;
		if (t[i].t1 - t[i].t0 > wall)
			wall = t[i].t1 - t[i].t0;
		nall += t[i].nlat;
	}
	if (r != 0) {
		bench_fail("gateway", "GET %s: refused (or connection failed) on "
		    "%d kept-alive connections", path, conns);
		goto out;
	}
	if (wall <= 0 || (all = malloc((nall + 1) * sizeof(double))) == NULL) {
		r = -1;
		goto out;
	}
	nall = 0;
	for (i = 0; i < nt; i++) {
		memcpy(all + nall, t[i].lat, t[i].nlat * sizeof(double));
		nall += t[i].nlat;
	}
	qsort(all, nall, sizeof(double), cmp_dbl);
	*rate = (double)ok / wall;
	/* CPU over the whole call (warm-up included). */
	wall = bench_now() - start;
	st->client_cpu = (self_cpu_s() - c0) / wall;
	st->server_cpu = (proc_cpu_s(bench_opts.server_pid) - s0) / wall;
	st->p50_ms = nall ? all[nall / 2] * 1e3 : 0;
	st->p99_ms = nall ? all[nall * 99 / 100] * 1e3 : 0;
out:
	for (i = 0; i < KEEPALIVE_THREADS; i++)
		free(t[i].lat);
	free(all);
	return r;
}

static int
keepalive_rate(struct device *dev, int conns, const char *path, double *rate,
    struct ka_stats *st)
{
	return keepalive_rate_on(dev, conns, NULL, path, rate, st);
}

/* Register devices [from, to) through the CMG, conc in flight; or, with
 * health=1, the same number of fresh mutual-TLS GET health requests. */
static int
register_batch(struct device *dev, int from, int to, int health, int conc,
    double *rate)
{
	struct xfer *x;
	CURLM *m = multi_new(16);
	char *body = NULL;
	json_t *j;
	long ok, bad;
	double t0;
	int i, next = from, r = 0, inflight = conc;
	struct curl_slist *json_hdr = curl_slist_append(NULL,
	    "Content-Type: application/json");

	*rate = 0;
	if (m == NULL || (x = calloc((size_t)(to - from), sizeof(*x))) == NULL) {
		curl_multi_cleanup(m);
		return -1;
	}
	if ((j = json_pack("{s:s, s:s}", "bulk_token", bulk, "hostname",
	    "bench")) == NULL || (body = json_dumps(j, JSON_COMPACT)) == NULL) {
		json_decref(j);
		free(x);
		curl_multi_cleanup(m);
		return -1;
	}
	json_decref(j);
	t0 = bench_now();
	while (next < to || inflight < conc) {
		/* Top up to conc in flight, then drain what finished. */
		while (next < to && inflight > 0) {
			struct xfer *xi = &x[next - from];

			xfer_setup(xi, &dev[next], health ? "health" : "register",
			    health ? NULL : body, 1);
			if (!health)
				curl_easy_setopt(xi->e, CURLOPT_HTTPHEADER, json_hdr);
			curl_multi_add_handle(m, xi->e);
			next++;
			inflight--;
		}
		multi_run(m, bench_now() + PHASE_TIMEOUT, NULL, NULL, &ok, &bad);
		inflight += (int)(ok + bad);
		if (bad != 0) {
			r = -1;
			break;
		}
		if (ok + bad == 0)
			break;
	}
	*rate = (double)(to - from) / (bench_now() - t0);
	for (i = 0; i < to - from && !health && r == 0; i++) {
		json_t *resp = x[i].body ? json_loads(x[i].body, 0, NULL) : NULL;
		const char *tok = json_string_value(json_object_get(resp,
		    "client_token"));

		if (tok == NULL || strlen(tok) > STK_TOKEN_MAX) {
			bench_fail("gateway", "registration %d: HTTP %ld %.200s",
			    from + i, x[i].status, x[i].body ? x[i].body : "");
			r = -1;
		} else {
			struct device *d = &dev[from + i];

			snprintf(d->auth, sizeof(d->auth),
			    "Authorization: Bearer %s", tok);
			curl_slist_free_all(d->hdr);
			d->hdr = curl_slist_append(NULL, d->auth);
		}
		json_decref(resp);
	}
	if (r != 0 && health)
		bench_fail("gateway", "fresh GET health refused");
	for (i = 0; i < to - from; i++) {
		if (x[i].e != NULL) {
			curl_multi_remove_handle(m, x[i].e);
			curl_easy_cleanup(x[i].e);
		}
		free(x[i].body);
	}
	free(x);
	free(body);
	curl_slist_free_all(json_hdr);
	curl_multi_cleanup(m);
	return r;
}

static long
proc_kib(long pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	fclose(fp);
	return v;
}

/* N concurrent kept-alive connections, each having made one authenticated
 * request; the server's RSS is read while all of them are open. */
static int
rss_figure(struct device *dev)
{
	int n = bench_opts.gw_conns, i;
	struct xfer *x = calloc((size_t)n, sizeof(*x));
	CURLM *m = multi_new(n + 16);
	struct bench_figure f;
	long ok = 0, bad = 0, idle, held, hwm;

	if (x == NULL || m == NULL) {
		free(x);
		curl_multi_cleanup(m);
		return -1;
	}
	idle = proc_kib(bench_opts.server_pid, "VmRSS");
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)n);
	for (i = 0; i < n; i++) {
		char src[32];

		xfer_setup(&x[i], &dev[0], "policy", NULL, 0);
		/* Spread over source addresses of 127/8 (still loopback), so a
		 * per-address connection limit of the server does not decide
		 * the figure; its total limit still applies. */
		snprintf(src, sizeof(src), "host!127.0.%d.%d", 1 + i / 250,
		    2 + i % 250);
		curl_easy_setopt(x[i].e, CURLOPT_INTERFACE, src);
		curl_multi_add_handle(m, x[i].e);
	}
	multi_run(m, bench_now() + PHASE_TIMEOUT, NULL, NULL, &ok, &bad);
	held = proc_kib(bench_opts.server_pid, "VmRSS");
	hwm = proc_kib(bench_opts.server_pid, "VmHWM");
	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "gateway rss %d conns", n);
	f.value = (double)held;
	f.unit = "KiB";
	f.nrefs = 2;
	f.refs[0] = (struct bench_ref){ "idle", (double)idle, NULL };
	f.refs[1] = (struct bench_ref){ "peak", (double)hwm, NULL };
	snprintf(f.note, sizeof(f.note), "per-conn %.1f KiB  served %ld/%d "
	    "(refused %ld; server limits: %u total, %u per address)",
	    ok ? (double)(held - idle) / (double)ok : 0.0, ok, n, bad, 512u, 64u);
	bench_emit(&f);
	/* Closing the multi handle closes every connection. */
	for (i = 0; i < n; i++) {
		curl_multi_remove_handle(m, x[i].e);
		curl_easy_cleanup(x[i].e);
		free(x[i].body);
	}
	free(x);
	curl_multi_cleanup(m);
	return ok > 0 ? 0 : -1;
}

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char buf[STK_TOKEN_MAX + 2];
	size_t n;

	if (fp == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	return n ? strdup(buf) : NULL;
}

/* Index of the median of v[0..n) (v itself unchanged). */
static int
median_index(const double *v, int n)
{
	int i, k, below, best = 0;

	for (i = 0; i < n; i++) {
		for (k = 0, below = 0; k < n; k++)
			below += v[k] < v[i] || (v[k] == v[i] && k < i);
		if (below == n / 2)
			best = i;
	}
	return best;
}

/* The same keep-alive policy load on the server started with the token
 * cache off (--cmg-cold; bench/run.sh starts it on the same site): what the
 * verified-token cache buys. */
static int
cache_figure(struct device *dev, int conns, int rounds)
{
	double warm[16], cold[16];
	struct ka_stats sw[16], sc[16];
	struct bench_figure f;
	long pid = bench_opts.server_pid;
	int round, mw, mc, r = 0;

	for (round = 0; round < rounds && r == 0; round++) {
		bench_opts.server_pid = bench_opts.cold_pid;
		r = keepalive_rate_on(dev, conns, bench_opts.cmg_cold_url, "policy",
		    &cold[round], &sc[round]);
		bench_opts.server_pid = pid;
		if (r == 0)
			r = keepalive_rate(dev, conns, "policy", &warm[round], &sw[round]);
	}
	if (r != 0)
		return -1;
	mw = median_index(warm, rounds);
	mc = median_index(cold, rounds);
	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "gateway policy cache warm c%d", conns);
	f.value = warm[mw];
	f.unit = "req/s";
	f.nrefs = 1;
	f.refs[0] = (struct bench_ref){ "cold", cold[mc], "ratio" };
	snprintf(f.note, sizeof(f.note), "(cold: a server with "
	    "SITETOKEN_TOKEN_CACHE=0)  p50/p99 warm %.2f/%.2f ms, cold %.2f/%.2f ms",
	    sw[mw].p50_ms, sw[mw].p99_ms, sc[mc].p50_ms, sc[mc].p99_ms);
	bench_emit(&f);
	return 0;
}

/* Registered devices in the site database, made up to `total` with rows
 * that no request names (sqlite3 CLI on --site-db), then checkpointed as a
 * site that grew over time would be (readers of a long WAL pay for it). */
static int
devices_fill(int total)
{
	char cmd[1400];

	snprintf(cmd, sizeof(cmd), "sqlite3 -cmd '.timeout 30000' '%s' \""
	    "DELETE FROM devices WHERE cert_thumbprint LIKE 'bench-fake-%%';"
	    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i <"
	    " %d - (SELECT count(*) FROM devices)) INSERT INTO devices (guid,"
	    " cert_thumbprint, cert, registered_at, via) SELECT printf("
	    "'%%08x-0000-4000-8000-%%012x', i, i), 'bench-fake-' || i, x'00', 0, 'mp'"
	    " FROM n WHERE %d > (SELECT count(*) FROM devices);"
	    "PRAGMA wal_checkpoint(TRUNCATE);\" >/dev/null",
	    bench_opts.site_db, total, total);
	return system(cmd) == 0 ? 0 : -1;
}

static int
devices_figure(struct device *dev, int conns, int rounds)
{
	double small[16], big[16];
	struct ka_stats ss[16], sb[16];
	struct bench_figure f;
	int round, ms, mb, r = 0;

	/* Alternate which size goes first, as the other figures do. */
	for (round = 0; round < rounds && r == 0; round++) {
		if (round % 2 == 0)
			r = devices_fill(1000) != 0 ||
			    keepalive_rate(dev, conns, "policy", &small[round], &ss[round]) != 0 ||
			    devices_fill(100000) != 0 ||
			    keepalive_rate(dev, conns, "policy", &big[round], &sb[round]) != 0;
		else
			r = devices_fill(100000) != 0 ||
			    keepalive_rate(dev, conns, "policy", &big[round], &sb[round]) != 0 ||
			    devices_fill(1000) != 0 ||
			    keepalive_rate(dev, conns, "policy", &small[round], &ss[round]) != 0;
	}
	if (devices_fill(0) != 0 || r != 0) {
		bench_fail("gateway", "device-count figure: cannot fill %s (sqlite3)",
		    bench_opts.site_db);
		return -1;
	}
	ms = median_index(small, rounds);
	mb = median_index(big, rounds);
	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "gateway policy 100k devices c%d", conns);
	f.value = big[mb];
	f.unit = "req/s";
	f.nrefs = 1;
	f.refs[0] = (struct bench_ref){ "1k-devices", small[ms], "ratio" };
	f.target = 0.9;
	snprintf(f.note, sizeof(f.note), "p50/p99 100k %.2f/%.2f ms, 1k %.2f/%.2f ms",
	    sb[mb].p50_ms, sb[mb].p99_ms, ss[ms].p50_ms, ss[ms].p99_ms);
	bench_emit(&f);
	return 0;
}

int
bench_gateway(void)
{
	int regs = bench_opts.gw_regs < KEEPALIVE_CONNS ? KEEPALIVE_CONNS :
	    bench_opts.gw_regs;
	int ndev = regs * 2, i, round, rounds, r = -1;
	struct device *dev = NULL;
	struct bench_figure f;
	struct rlimit rl;
	double v[2][16], reg[16];
	struct ka_stats sp[16], sh[16];
	int conns, mid, midh;

	if (bench_opts.cmg_url == NULL || bench_opts.ca_file == NULL ||
	    bench_opts.bulk_file == NULL || bench_opts.server_pid <= 0) {
		bench_fail("gateway", "needs --cmg, --ca, --bulk-token-file and "
		    "--server-pid (bench/run.sh passes them)");
		return -1;
	}
	/* One descriptor per connection. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	snprintf(base, sizeof(base), "%s", bench_opts.cmg_url);
	if ((bulk = slurp(bench_opts.bulk_file)) == NULL) {
		bench_fail("gateway", "cannot read %s", bench_opts.bulk_file);
		return -1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((dev = calloc((size_t)ndev, sizeof(*dev))) == NULL)
		goto out;
	for (i = 0; i < ndev; i++)
		if (device_make(&dev[i], i) != 0) {
			bench_fail("gateway", "cannot make device certificates");
			goto out;
		}
	/* Registrations (timed by the register group, bench_register); the
	 * devices of the first round then serve the keep-alive figure. */
	rounds = bench_opts.rounds > 16 ? 16 : bench_opts.rounds;
	if (regs / rounds < 1)
		rounds = 1;
	for (round = 0; round < rounds; round++) {
		int from = round * (regs / rounds), to = from + regs / rounds;

		if (register_batch(dev, from, to, 0, 8, &reg[round]) != 0)
			goto out;
	}
	conns = regs < KEEPALIVE_CONNS ? regs : KEEPALIVE_CONNS;
	for (round = 0; round < rounds; round++) {
		/* Alternate who goes first. */
		if (round % 2 == 0) {
			if (keepalive_rate(dev, conns, "policy", &v[0][round], &sp[round]) != 0 ||
			    keepalive_rate(dev, conns, "health", &v[1][round], &sh[round]) != 0)
				goto out;
		} else if (keepalive_rate(dev, conns, "health", &v[1][round], &sh[round]) != 0 ||
		    keepalive_rate(dev, conns, "policy", &v[0][round], &sp[round]) != 0)
			goto out;
	}
	mid = median_index(v[0], rounds);
	midh = median_index(v[1], rounds);
	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "gateway policy keep-alive c%d t%d",
	    conns, KEEPALIVE_THREADS);
	f.value = v[0][mid];
	f.unit = "req/s";
	f.nrefs = 1;
	f.refs[0] = (struct bench_ref){ "health", v[1][midh], "ratio" };
	f.target = 0.8;
	/* Server CPU per request: what a loaded machine moves least. */
	snprintf(f.note, sizeof(f.note), "p50/p99 %.2f/%.2f ms (health %.2f/%.2f)  "
	    "cpu client %.2f server %.2f cores (health %.2f/%.2f)  server %.1f us/req "
	    "(health %.1f)", sp[mid].p50_ms, sp[mid].p99_ms, sh[midh].p50_ms,
	    sh[midh].p99_ms, sp[mid].client_cpu, sp[mid].server_cpu, sh[midh].client_cpu,
	    sh[midh].server_cpu, v[0][mid] > 0 ? sp[mid].server_cpu / v[0][mid] * 1e6 : 0,
	    v[1][midh] > 0 ? sh[midh].server_cpu / v[1][midh] * 1e6 : 0);
	bench_emit(&f);
	if (bench_opts.cmg_cold_url != NULL && cache_figure(dev, conns, rounds) != 0)
		goto out;
	if (bench_opts.site_db != NULL && devices_figure(dev, conns, rounds) != 0)
		goto out;
	if (rss_figure(dev) != 0)
		goto out;
	r = 0;
out:
	for (i = 0; dev != NULL && i < ndev; i++)
		device_free(&dev[i]);
	free(dev);
	free(bulk);
	curl_global_cleanup();
	return r;
}

/* Group "register": registrations end to end through the CMG, each with a
 * new device certificate and one fresh mutual-TLS handshake, against the
 * same number of fresh mutual-TLS GET health requests (the handshake
 * alone), 8 in flight; with --cmg-hsm also through a server whose site key
 * is in SoftHSM at 1, 2 and 8 in flight, against SoftHSM's raw C_Sign at 2
 * threads (hsm.c). The series alternate round by round, the order rotated
 * each round; medians are printed. */
enum { REG_FILE, REG_HS, REG_H1, REG_H2, REG_H8, REG_CSIGN, REG_NPHASES };

/* CPU seconds of the file-key server and of this client spent in the
 * REG_FILE and REG_HS phases, over all rounds (with --server-pid): what a
 * registration costs against a handshake whatever else loads the machine. */
static double reg_cpu_srv[2], reg_cpu_cli[2];

static int
reg_phase(int ph, struct device *dev, int regs, int from, int to,
    char *fbulk, char *hbulk, double *v)
{
	static const int conc[REG_NPHASES] = { 8, 8, 1, 2, 8, 0 };
	double s0, c0;
	int r;

	if (ph == REG_CSIGN)
		return bench_hsm_csign_rate(2, v);
	snprintf(base, sizeof(base), "%s", ph >= REG_H1 ? bench_opts.cmg_hsm_url :
	    bench_opts.cmg_url);
	bulk = ph >= REG_H1 ? hbulk : fbulk;
	s0 = bench_opts.server_pid > 0 ? proc_cpu_s(bench_opts.server_pid) : 0;
	c0 = self_cpu_s();
	r = register_batch(dev, ph * regs + from, ph * regs + to, ph == REG_HS,
	    conc[ph], v);
	if (ph <= REG_HS) {
		reg_cpu_cli[ph] += self_cpu_s() - c0;
		if (bench_opts.server_pid > 0)
			reg_cpu_srv[ph] += proc_cpu_s(bench_opts.server_pid) - s0;
	}
	return r;
}

int
bench_register(void)
{
	int regs = bench_opts.gw_regs < 8 ? 8 : bench_opts.gw_regs;
	int hsm = bench_opts.cmg_hsm_url != NULL, nph = hsm ? REG_NPHASES : REG_H1;
	int ndev = regs * (hsm ? REG_CSIGN : REG_H1), i, k, ph, round, rounds, per;
	double v[REG_NPHASES][16], lo;
	struct device *dev = NULL;
	struct bench_figure f;
	char *fbulk = NULL, *hbulk = NULL;
	int r = -1;

	if (bench_opts.cmg_url == NULL || bench_opts.ca_file == NULL ||
	    bench_opts.bulk_file == NULL || (hsm && bench_opts.hsm_bulk_file == NULL)) {
		bench_fail("register", "needs --cmg, --ca and --bulk-token-file "
		    "(and --hsm-bulk-token-file with --cmg-hsm; bench/run.sh passes them)");
		return -1;
	}
	if ((fbulk = slurp(bench_opts.bulk_file)) == NULL ||
	    (hsm && (hbulk = slurp(bench_opts.hsm_bulk_file)) == NULL)) {
		bench_fail("register", "cannot read a bulk token file");
		goto out;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if ((dev = calloc((size_t)ndev, sizeof(*dev))) == NULL)
		goto out;
	for (i = 0; i < ndev; i++)
		if (device_make(&dev[i], 100000 + i) != 0) {
			bench_fail("register", "cannot make device certificates");
			goto out;
		}
	rounds = bench_opts.rounds > 16 ? 16 : bench_opts.rounds;
	if ((per = regs / rounds) < 1) {
		rounds = 1;
		per = regs;
	}
	for (round = 0; round < rounds; round++)
		for (k = 0; k < nph; k++) {
			ph = (k + round) % nph;
			if (reg_phase(ph, dev, regs, round * per, round * per + per, fbulk,
			    hbulk, &v[ph][round]) != 0)
				goto out;
		}
	for (ph = 0; ph < nph; ph++)
		v[ph][0] = v[ph][median_index(v[ph], rounds)];
	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "register cmg file c8");
	f.value = v[REG_FILE][0];
	f.unit = "reg/s";
	f.nrefs = 1;
	f.refs[0] = (struct bench_ref){ "handshake", v[REG_HS][0], "ratio" };
	f.target = 0.8;
	/* CPU per operation, server and client (ms): the ratio the machine
	 * allows once nothing but CPU limits. */
	snprintf(f.note, sizeof(f.note), "(%d new devices; reference: fresh mutual-TLS "
	    "GET health)  cpu ms/op server %.2f client %.2f (handshake %.2f/%.2f)",
	    per * rounds, reg_cpu_srv[REG_FILE] * 1e3 / (per * rounds),
	    reg_cpu_cli[REG_FILE] * 1e3 / (per * rounds),
	    reg_cpu_srv[REG_HS] * 1e3 / (per * rounds),
	    reg_cpu_cli[REG_HS] * 1e3 / (per * rounds));
	bench_emit(&f);
	for (ph = REG_H1; hsm && ph <= REG_H8; ph++) {
		lo = v[REG_HS][0] < v[REG_CSIGN][0] ? v[REG_HS][0] : v[REG_CSIGN][0];
		memset(&f, 0, sizeof(f));
		snprintf(f.name, sizeof(f.name), "register cmg softhsm c%d",
		    ph == REG_H1 ? 1 : ph == REG_H2 ? 2 : 8);
		f.value = v[ph][0];
		f.unit = "reg/s";
		f.nrefs = 2;
		f.refs[0] = (struct bench_ref){ "handshake c8", v[REG_HS][0], "ratio" };
		f.refs[1] = (struct bench_ref){ "C_Sign 2t", v[REG_CSIGN][0], "ratio" };
		f.target = 0.8;
		f.target_ref = lo == v[REG_HS][0] ? 0 : 1;
		snprintf(f.note, sizeof(f.note), "(%d registrations, site key RSA-2048 in "
		    "SoftHSM; target against the lower reference)", per * rounds);
		bench_emit(&f);
	}
	r = 0;
out:
	for (i = 0; dev != NULL && i < ndev; i++)
		device_free(&dev[i]);
	free(dev);
	free(fbulk);
	free(hbulk);
	bulk = NULL;
	curl_global_cleanup();
	return r;
}
