/* sitetoken-soak: a bounded mixed load on a running `sitetoken serve` for a
 * set time, printing the server's RSS and open descriptors and the request
 * latencies (p50/p99) at the start and at the end, so growth shows up as a
 * difference between two figures of the same run (bench/soak.sh starts the
 * server and a fresh site; bench/README.md).
 *
 * Each tick (100 ms) does one registration of a new device with the MP, one
 * renewal and three authenticated policy requests through the CMG (mutual
 * TLS) for a pool of devices; every 5 s a bulk token is created and blocked
 * (the CLI), every 90 s (a third of a shorter run) the node's key is rotated
 * (the CLI). Start figures
 * are taken over the first window (a fifth of the run, at most 60 s), end
 * figures over the last. Any refused request is counted and fails the run. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/wait.h>
#include <curl/curl.h>
#include <jansson.h>
#include "sitetoken/cert.h"
#include "sitetoken/device.h"
#include "sitetoken/key.h"
#include "sitetoken/site.h"

#define POOL 16
#define TICK_NS 100000000L
#define BULK_EVERY 5.0
#define ROTATE_EVERY 90.0
#define MAX_SAMPLES 200000

enum { OP_REG, OP_RENEW, OP_POLICY, OP_N };
static const char *const op_names[OP_N] = { "register (MP)", "renew (CMG)",
	"policy (CMG)" };

struct window {
	double *lat[OP_N];
	size_t n[OP_N];
	long rss_kib, fds;
};

struct dev {
	char crt[PATH_MAX], key[PATH_MAX];
	char x5t[44];    /* x5t#S256 of the certificate, for the MP's proof */
	char *pem;
	char *token;
};

static struct {
	const char *mp, *cmg, *ca, *site, *stk, *tmp;
	long pid;
	double seconds;
} o;

static unsigned long refused;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
proc_figures(long pid, long *rss_kib, long *fds)
{
	char path[64], line[256];
	FILE *f;
	DIR *d;
	struct dirent *e;

	*rss_kib = *fds = -1;
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "re")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "VmRSS:", 6) == 0)
				*rss_kib = strtol(line + 6, NULL, 10);
		fclose(f);
	}
	snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
	if ((d = opendir(path)) != NULL) {
		*fds = 0;
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				(*fds)++;
		closedir(d);
	}
}

struct buf { char *p; size_t n; };

static size_t
on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct buf *b = ud;
	char *q = realloc(b->p, b->n + sz * n + 1);

	if (q == NULL)
		return 0;
	memcpy(q + b->n, p, sz * n);
	b->n += sz * n;
	q[b->n] = '\0';
	b->p = q;
	return sz * n;
}

/* One request; returns the HTTP status (0: no answer), the body in *body
 * (caller frees) and the time it took in *secs. */
static long
request(CURL *e, const char *url, const struct dev *d, const char *body,
    char **out, double *secs)
{
	struct curl_slist *h = NULL;
	struct buf b = { NULL, 0 };
	char auth[8192];
	long status = 0;
	double t0;

	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CAINFO, o.ca);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
	h = curl_slist_append(h, "Content-Type: application/json");
	if (d != NULL) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, d->crt);
		curl_easy_setopt(e, CURLOPT_SSLKEY, d->key);
		if (d->token != NULL) {
			snprintf(auth, sizeof(auth), "Authorization: Bearer %s", d->token);
			h = curl_slist_append(h, auth);
		}
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	if (body != NULL)
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
	t0 = now_s();
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	*secs = now_s() - t0;
	curl_slist_free_all(h);
	*out = b.p;
	return status;
}

/* A new device identity: P-256 key file (0600) and self-signed cert. */
static int
dev_make(struct dev *d, const char *name)
{
	struct stk_key_opts ko;
	struct stk_key *k = NULL;
	struct stk_error err;
	unsigned char *der = NULL;
	size_t len = 0;
	char *uri = NULL;
	FILE *f;
	int r = -1;

	memset(d, 0, sizeof(*d));
	memset(&ko, 0, sizeof(ko));
	snprintf(d->key, sizeof(d->key), "%s/%s.key", o.tmp, name);
	snprintf(d->crt, sizeof(d->crt), "%s/%s.crt", o.tmp, name);
	unlink(d->key);
	if (stk_key_generate("file", d->key, STK_KEY_P256, &ko, &k, &uri, &err) != 0 ||
	    stk_cert_make_self_signed(k, name, "soak device", stk_now(), 30, &der, &len,
	    &err) != 0 || stk_cert_der_to_pem(der, len, &d->pem) != 0) {
		fprintf(stderr, "sitetoken-soak: device identity: %s\n", err.msg);
		goto out;
	}
	if ((f = fopen(d->crt, "we")) == NULL || fputs(d->pem, f) < 0 || fclose(f) != 0)
		goto out;
	stk_cert_x5t_s256(der, len, d->x5t);
	r = 0;
out:
	stk_key_close(k);
	free(uri);
	free(der);
	return r;
}

static void
dev_free(struct dev *d)
{
	free(d->pem);
	free(d->token);
	unlink(d->key);
	unlink(d->crt);
	memset(d, 0, sizeof(*d));
}

/* Keep the token of a 200 registration/renewal answer. */
static int
take_token(struct dev *d, const char *body)
{
	json_t *j = body ? json_loads(body, 0, NULL) : NULL;
	const char *t = j ? json_string_value(json_object_get(j, "client_token")) : NULL;
	int r = -1;

	if (t != NULL) {
		free(d->token);
		d->token = strdup(t);
		r = d->token ? 0 : -1;
	}
	json_decref(j);
	return r;
}

static void
note(struct window *w, int op, double secs)
{
	if (w != NULL && w->n[op] < MAX_SAMPLES)
		w->lat[op][w->n[op]++] = secs;
}

static int
check(long status, const char *what, const char *body)
{
	if (status == 200)
		return 0;
	if (refused++ < 5)
		fprintf(stderr, "sitetoken-soak: %s: HTTP %ld %.200s\n", what, status,
		    body ? body : "");
	return -1;
}

/* The HTTP MP's proof of possession (docs/api.md): its challenge signed
 * with the device key. *proof and *nonce malloc'd. The challenge round trip
 * is part of the registration's time. */
static int
pop(CURL *e, struct dev *d, char **nonce, char **proof, double *secs)
{
	struct stk_key_opts ko;
	struct stk_key *k = NULL;
	struct stk_error err;
	unsigned char sig[256];
	size_t siglen = sizeof(sig);
	char url[512], *out = NULL, *msg = NULL;
	json_t *j = NULL;
	long st;
	int r = -1;

	*nonce = *proof = NULL;
	memset(&ko, 0, sizeof(ko));
	snprintf(url, sizeof(url), "%s/sitetoken/v1/challenge", o.mp);
	st = request(e, url, NULL, "{}", &out, secs);
	if (check(st, "challenge", out) != 0 ||
	    (j = json_loads(out, 0, NULL)) == NULL ||
	    json_string_value(json_object_get(j, "nonce")) == NULL ||
	    (*nonce = strdup(json_string_value(json_object_get(j, "nonce")))) == NULL ||
	    (msg = stk_pop_message(STK_POP_REGISTER, *nonce, d->x5t)) == NULL ||
	    stk_key_open(d->key, &ko, &k, &err) != 0 ||
	    stk_key_sign(k, (const unsigned char *)msg, strlen(msg), sig, &siglen, &err) != 0 ||
	    stk_b64url_encode(sig, siglen, proof) != 0)
		goto out;
	r = 0;
out:
	stk_key_close(k);
	json_decref(j);
	free(msg);
	free(out);
	return r;
}

static int
reg(CURL *e, struct dev *d, struct window *w)
{
	char url[512], *body = NULL, *out = NULL, *nonce = NULL, *proof = NULL;
	json_t *j = NULL;
	double secs = 0, csecs = 0;
	long st;
	int r = -1;

	if (pop(e, d, &nonce, &proof, &csecs) != 0)
		goto out;
	j = json_pack("{s:s, s:s, s:s}", "certificate", d->pem, "nonce", nonce,
	    "proof", proof);
	snprintf(url, sizeof(url), "%s/sitetoken/v1/register", o.mp);
	if (j == NULL || (body = json_dumps(j, JSON_COMPACT)) == NULL)
		goto out;
	st = request(e, url, NULL, body, &out, &secs);
	note(w, OP_REG, csecs + secs);
	if ((r = check(st, "register", out)) == 0)
		r = take_token(d, out);
out:
	json_decref(j);
	free(nonce);
	free(proof);
	free(body);
	free(out);
	return r;
}

static int
cmg(CURL *e, struct dev *d, int op, struct window *w)
{
	char url[512], *out = NULL;
	double secs;
	long st;
	int r;

	snprintf(url, sizeof(url), "%s/sitetoken/v1/%s", o.cmg,
	    op == OP_RENEW ? "renew" : "policy");
	st = request(e, url, d, op == OP_RENEW ? "{}" : NULL, &out, &secs);
	note(w, op, secs);
	if ((r = check(st, op_names[op], out)) == 0 && op == OP_RENEW)
		r = take_token(d, out);
	free(out);
	return r;
}

/* The CLI, for what an administrator does meanwhile: `sitetoken CMD
 * --site DIR ARGS`. */
static int
cli(const char *cmdw, const char *args)
{
	char cmd[PATH_MAX * 2 + 256];
	int rc;

	snprintf(cmd, sizeof(cmd), "'%s' %s --site '%s' %s >/dev/null 2>>'%s/cli.err'",
	    o.stk, cmdw, o.site, args, o.tmp);
	rc = system(cmd);
	if (rc != 0 && refused++ < 5)
		fprintf(stderr, "sitetoken-soak: sitetoken %s: exit %d\n", cmdw,
		    WIFEXITED(rc) ? WEXITSTATUS(rc) : -1);
	return rc == 0 ? 0 : -1;
}

static int
bulk_block(void)
{
	char cmd[PATH_MAX * 2 + 256], guid[64] = "";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "'%s' bulk new --site '%s' --lifetime 60 --json 2>>'%s/cli.err'",
	    o.stk, o.site, o.tmp);
	if ((p = popen(cmd, "r")) != NULL) {
		json_t *j = json_loadf(p, 0, NULL);
		const char *g = j ? json_string_value(json_object_get(j, "guid")) : NULL;

		if (g != NULL)
			snprintf(guid, sizeof(guid), "%s", g);
		json_decref(j); /* the token is dropped with it */
		pclose(p);
	}
	if (guid[0] == '\0') {
		if (refused++ < 5)
			fprintf(stderr, "sitetoken-soak: bulk new failed\n");
		return -1;
	}
	return cli("bulk block", guid);
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_d);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i] * 1e3;
}

static void
print_window(const char *name, struct window *w, double secs)
{
	int i;

	printf("%-5s (%.0f s window): server RSS %ld KiB, open fds %ld\n", name, secs,
	    w->rss_kib, w->fds);
	for (i = 0; i < OP_N; i++)
		printf("  %-14s n=%-6zu p50 %7.2f ms   p99 %7.2f ms\n", op_names[i],
		    w->n[i], pct(w->lat[i], w->n[i], 0.50), pct(w->lat[i], w->n[i], 0.99));
}

static int
usage(void)
{
	fprintf(stderr, "usage: sitetoken-soak --mp URL --cmg URL --ca FILE --site DIR "
	    "--stk PATH --server-pid PID --tmp DIR [--minutes N | --seconds N]\n"
	    "  default 10 minutes; bench/soak.sh runs it against a fresh server\n");
	return 2;
}

int
main(int argc, char **argv)
{
	struct window start, end;
	struct dev pool[POOL], fresh;
	CURL *e;
	double t0, t_end, win, next_bulk, next_rot, rot_every;
	unsigned long ticks = 0, regs = 0, blocks = 0, rots = 0;
	int i, j, r = 0;

	o.seconds = 600;
	for (i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			return usage();
		if (strcmp(argv[i], "--mp") == 0) o.mp = v;
		else if (strcmp(argv[i], "--cmg") == 0) o.cmg = v;
		else if (strcmp(argv[i], "--ca") == 0) o.ca = v;
		else if (strcmp(argv[i], "--site") == 0) o.site = v;
		else if (strcmp(argv[i], "--stk") == 0) o.stk = v;
		else if (strcmp(argv[i], "--tmp") == 0) o.tmp = v;
		else if (strcmp(argv[i], "--server-pid") == 0) o.pid = strtol(v, NULL, 10);
		else if (strcmp(argv[i], "--minutes") == 0) o.seconds = 60 * strtod(v, NULL);
		else if (strcmp(argv[i], "--seconds") == 0) o.seconds = strtod(v, NULL);
		else
			return usage();
		i++;
	}
	if (!o.mp || !o.cmg || !o.ca || !o.site || !o.stk || !o.tmp || o.pid <= 0 ||
	    !(o.seconds >= 10))
		return usage();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	e = curl_easy_init();
	memset(&start, 0, sizeof(start));
	memset(&end, 0, sizeof(end));
	for (j = 0; j < OP_N; j++) {
		start.lat[j] = calloc(MAX_SAMPLES, sizeof(double));
		end.lat[j] = calloc(MAX_SAMPLES, sizeof(double));
		if (start.lat[j] == NULL || end.lat[j] == NULL)
			return 1;
	}
	for (i = 0; i < POOL; i++) {
		char name[32];

		snprintf(name, sizeof(name), "pool%d", i);
		if (dev_make(&pool[i], name) != 0 || reg(e, &pool[i], NULL) != 0) {
			fprintf(stderr, "sitetoken-soak: setting up the device pool failed\n");
			return 1;
		}
	}
	win = o.seconds / 5 < 60 ? o.seconds / 5 : 60;
	t0 = now_s();
	t_end = t0 + o.seconds;
	next_bulk = t0 + BULK_EVERY;
	rot_every = o.seconds / 3 < ROTATE_EVERY ? o.seconds / 3 : ROTATE_EVERY;
	next_rot = t0 + rot_every;
	printf("sitetoken-soak: %.0f s of mixed load on server pid %ld\n", o.seconds, o.pid);
	fflush(stdout);
	while (now_s() < t_end) {
		double t = now_s(), left;
		struct window *w = t - t0 < win ? &start : t > t_end - win ? &end : NULL;
		struct dev *d = &pool[ticks % POOL];
		char name[32];
		struct timespec ts;

		snprintf(name, sizeof(name), "d%lu", ticks);
		if (dev_make(&fresh, name) == 0) {
			if (reg(e, &fresh, w) == 0)
				regs++;
			dev_free(&fresh);
		} else
			refused++;
		cmg(e, d, OP_RENEW, w);
		for (j = 0; j < 3; j++)
			cmg(e, &pool[(ticks + 1 + (unsigned long)j) % POOL], OP_POLICY, w);
		if (now_s() >= next_bulk) {
			next_bulk += BULK_EVERY;
			if (bulk_block() == 0)
				blocks++;
		}
		if (now_s() >= next_rot) {
			next_rot += rot_every;
			if (cli("key rotate", "") == 0)
				rots++;
		}
		if (start.rss_kib == 0 && t - t0 >= win)
			proc_figures(o.pid, &start.rss_kib, &start.fds);
		ticks++;
		left = t + TICK_NS / 1e9 - now_s();
		if (left > 0) {
			ts.tv_sec = 0;
			ts.tv_nsec = (long)(left * 1e9);
			nanosleep(&ts, NULL);
		}
	}
	proc_figures(o.pid, &end.rss_kib, &end.fds);
	printf("%lu ticks: %lu registrations, %lu renewals+policy rounds, %lu bulk tokens "
	    "blocked, %lu key rotations, %lu refused\n", ticks, regs, ticks, blocks, rots,
	    refused);
	print_window("start", &start, win);
	print_window("end", &end, win);
	if (start.rss_kib > 0)
		printf("RSS end/start %.2f, fds end-start %+ld\n",
		    (double)end.rss_kib / (double)start.rss_kib, end.fds - start.fds);
	if (refused > 0)
		r = 1;
	for (i = 0; i < POOL; i++)
		dev_free(&pool[i]);
	for (j = 0; j < OP_N; j++) {
		free(start.lat[j]);
		free(end.lat[j]);
	}
	curl_easy_cleanup(e);
	curl_global_cleanup();
	return r;
}
