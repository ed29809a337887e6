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
#include <sys/resource.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "bench.h"

#define KEEPALIVE_CONNS 8
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

struct loop_arg {
	double stop;
	const char *path;
};

static int
again_loop(struct xfer *x, void *a)
{
	struct loop_arg *l = a;

	if (bench_now() >= l->stop)
		return 0;
	x->len = 0;
	return 1;
}

/* Requests per second over KEEPALIVE_CONNS kept-alive connections. */
static int
keepalive_rate(struct device *dev, const char *path, double *rate)
{
	struct xfer x[KEEPALIVE_CONNS];
	struct loop_arg la;
	CURLM *m = multi_new(KEEPALIVE_CONNS * 2);
	long ok, bad, n;
	double t0;
	int i;

	memset(x, 0, sizeof(x));
	*rate = 0;
	if (m == NULL)
		return -1;
	for (i = 0; i < KEEPALIVE_CONNS; i++) {
		xfer_setup(&x[i], &dev[i], path, NULL, 0);
		curl_multi_add_handle(m, x[i].e);
	}
	/* Warm-up: one request per connection does the handshakes. */
	la.stop = 0;
	la.path = path;
	multi_run(m, bench_now() + PHASE_TIMEOUT, again_loop, &la, &ok, &bad);
	if (bad != 0 || ok != KEEPALIVE_CONNS) {
		bench_fail("gateway", "GET %s: %ld of %d refused", path, bad,
		    KEEPALIVE_CONNS);
		n = -1;
		goto out;
	}
	for (i = 0; i < KEEPALIVE_CONNS; i++)
		curl_multi_add_handle(m, x[i].e);
	t0 = bench_now();
	la.stop = t0 + bench_opts.seconds * 2;
	n = multi_run(m, la.stop + PHASE_TIMEOUT, again_loop, &la, &ok, &bad);
	*rate = (double)ok / (bench_now() - t0);
	if (bad != 0) {
		bench_fail("gateway", "GET %s: %ld refused under load", path, bad);
		n = -1;
	}
out:
	for (i = 0; i < KEEPALIVE_CONNS; i++) {
		curl_multi_remove_handle(m, x[i].e);
		curl_easy_cleanup(x[i].e);
		free(x[i].body);
	}
	curl_multi_cleanup(m);
	return n < 0 ? -1 : 0;
}

/* Register devices [from, to) through the CMG, 8 in flight; or, with
 * health=1, the same number of fresh mutual-TLS GET health requests. */
static int
register_batch(struct device *dev, int from, int to, int health, double *rate)
{
	struct xfer *x;
	CURLM *m = multi_new(16);
	char *body = NULL;
	json_t *j;
	long ok, bad;
	double t0;
	int i, next = from, r = 0, inflight = 8;
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
	while (next < to || inflight < 8) {
		/* Top up to 8 in flight, then drain what finished. */
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
	    "(refused %ld)", ok ? (double)(held - idle) / (double)ok : 0.0,
	    ok, n, bad);
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

int
bench_gateway(void)
{
	int regs = bench_opts.gw_regs < KEEPALIVE_CONNS ? KEEPALIVE_CONNS :
	    bench_opts.gw_regs;
	int ndev = regs * 2, i, round, rounds, r = -1;
	struct device *dev = NULL;
	struct bench_figure f;
	struct rlimit rl;
	double v[2][16], a, b, reg[16], hs[16];

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
	/* Registrations, in rounds alternating with fresh-handshake health
	 * requests as many; the devices of the first round then serve the
	 * keep-alive figure. */
	rounds = bench_opts.rounds > 16 ? 16 : bench_opts.rounds;
	if (regs / rounds < 1)
		rounds = 1;
	for (round = 0; round < rounds; round++) {
		int from = round * (regs / rounds), to = from + regs / rounds;

		if (register_batch(dev, from, to, 0, &reg[round]) != 0 ||
		    register_batch(dev, regs + from, regs + to, 1, &hs[round]) != 0)
			goto out;
	}
	for (round = 0; round < rounds; round++) {
		/* Alternate who goes first. */
		if (round % 2 == 0) {
			if (keepalive_rate(dev, "policy", &v[0][round]) != 0 ||
			    keepalive_rate(dev, "health", &v[1][round]) != 0)
				goto out;
		} else if (keepalive_rate(dev, "health", &v[1][round]) != 0 ||
		    keepalive_rate(dev, "policy", &v[0][round]) != 0)
			goto out;
	}
	/* Medians (rounds is small: sort in place). */
	for (i = 1; i < rounds; i++) {
		int k;
		for (k = i; k > 0 && v[0][k] < v[0][k - 1]; k--)
			a = v[0][k], v[0][k] = v[0][k - 1], v[0][k - 1] = a;
		for (k = i; k > 0 && v[1][k] < v[1][k - 1]; k--)
			a = v[1][k], v[1][k] = v[1][k - 1], v[1][k - 1] = a;
		for (k = i; k > 0 && reg[k] < reg[k - 1]; k--)
			a = reg[k], reg[k] = reg[k - 1], reg[k - 1] = a;
		for (k = i; k > 0 && hs[k] < hs[k - 1]; k--)
			a = hs[k], hs[k] = hs[k - 1], hs[k - 1] = a;
	}
	a = v[0][rounds / 2];
	b = v[1][rounds / 2];
	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "gateway policy keep-alive c%d",
	    KEEPALIVE_CONNS);
	f.value = a;
	f.unit = "req/s";
	f.nrefs = 1;
	f.refs[0] = (struct bench_ref){ "health", b, "ratio" };
	snprintf(f.note, sizeof(f.note), "(mutual TLS, token verify + binding "
	    "+ device lookup vs bare HTTPS)");
	bench_emit(&f);
	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "gateway register c8");
	f.value = reg[rounds / 2];
	f.unit = "reg/s";
	f.nrefs = 1;
	f.refs[0] = (struct bench_ref){ "handshake", hs[rounds / 2], "ratio" };
	snprintf(f.note, sizeof(f.note), "(%d registrations; reference: fresh "
	    "mutual-TLS GET health)", regs);
	bench_emit(&f);
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
