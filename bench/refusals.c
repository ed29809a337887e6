/* Bench group "refusals": what a flood of junk requests from one source
 * costs legitimate registrations, and the site key. A throw-away SQLite site
 * (file key), driven as `sitetoken serve` does: a registration's checks on
 * a second, verify-only handle (the worker thread's) without the lock, a
 * refusal of them counted without it, the transaction on the signing
 * handle behind one mutex.
 *   "registrations during refusal flood": registrations/s with 10 junk
 *     bulk tokens from one source refused (and audited) per registration,
 *     beside registrations/s without them (target >= 0.8).
 *   "site-key signatures per 10000 refusals": checkpoints signed while
 *     10000 junk registrations are refused, beside the audit records they
 *     left (the aggregated refusals: STK_AUDIT_REFUSAL_*). */
#include <ftw.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "sitetoken/device.h"
#include "sitetoken/site.h"
#include "bench.h"

#define REF_CERTS 32
#define REF_JUNK "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.AAAA"
#define REF_JUNK_PER_REG 10

struct ref_ctx {
	struct stk_site *site, *worker;
	pthread_mutex_t mu;
	unsigned char *der[REF_CERTS];
	int der_len[REF_CERTS];
	unsigned long next;
	long junk_done;
};

static int
ref_make_cert(unsigned char **der, int *len)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	int r = -1;

	*der = NULL;
	if (k == NULL || x == NULL || X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL ||
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	    (const unsigned char *)"bench-device", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    X509_set_pubkey(x, k) != 1 || X509_sign(x, k, EVP_sha256()) <= 0)
		goto out;
	if ((*len = i2d_X509(x, der)) > 0)
		r = 0;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	return r;
}

static int
ref_register(struct ref_ctx *c, const char *bulk, const char *peer)
{
	struct stk_reg_request rq;
	struct stk_reg_checked chk;
	struct stk_issued is;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	unsigned long i;
	int64_t now;
	int r;

	memset(&rq, 0, sizeof(rq));
	memset(&is, 0, sizeof(is));
	pthread_mutex_lock(&c->mu);
	i = c->next++ % REF_CERTS;
	pthread_mutex_unlock(&c->mu);
	/* As over TLS (the CMG, or the MP over HTTPS): the handshake proved
	 * the key, so the registered certificate is the TLS client one. */
	rq.via = bulk != NULL ? STK_VIA_CMG : STK_VIA_MP;
	rq.tls = 1;
	rq.tls_cert_der = c->der[i];
	rq.tls_cert_len = (size_t)c->der_len[i];
	rq.bulk_token = bulk;
	rq.bulk_len = bulk != NULL ? strlen(bulk) : 0;
	rq.peer = peer;
	now = stk_now();
	if ((r = stk_device_register_check(c->worker, &rq, now, &chk, &reason,
	    &err)) != 0) {
		if (!stk_device_register_refusal_counted(c->site, &rq, reason)) {
			pthread_mutex_lock(&c->mu);
			stk_device_register_refused(c->site, &rq, &chk, reason, &err);
			pthread_mutex_unlock(&c->mu);
		}
	} else {
		pthread_mutex_lock(&c->mu);
		r = stk_device_register_commit(c->site, &rq, &chk, now, &is, &reason, &err);
		pthread_mutex_unlock(&c->mu);
	}
	stk_reg_checked_clear(&chk);
	stk_issued_clear(&is);
	return r;
}

static int
op_register(void *ctx, int tid)
{
	(void)tid;
	return ref_register(ctx, NULL, "192.0.2.10");
}

/* One registration and REF_JUNK_PER_REG junk requests refused, each site
 * call taking the lock as a server thread would: the flood is fixed at 10
 * junk requests per registration whatever the lock's fairness, so the
 * figure shows what refusals cost, not how a mutex schedules. */
static int
op_register_flood(void *ctx, int tid)
{
	struct ref_ctx *c = ctx;
	int i;

	(void)tid;
	for (i = 0; i < REF_JUNK_PER_REG; i++) {
		if (ref_register(c, REF_JUNK, "198.51.100.7") == 0)
			return -1; /* junk accepted: the figure would be wrong */
		c->junk_done++;
	}
	return ref_register(c, NULL, "192.0.2.10");
}

static int
ref_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int64_t
ref_count(struct ref_ctx *c, const char *what)
{
	struct stk_audit_report rep;
	struct stk_error err;

	if (stk_audit_verify(c->site, &rep, &err) < 0)
		return -1;
	return strcmp(what, "checkpoints") == 0 ? rep.checkpoints : rep.records;
}

int
bench_refusals(void)
{
	struct ref_ctx c;
	struct stk_site_init_opts io;
	struct stk_error err;
	struct bench_series s[2];
	struct bench_figure f;
	char dir[4096], site[4200];
	double v[2], t0, t1;
	long n = bench_opts.quick ? 500 : 10000, i;
	int64_t cp0, rec0, cp1, rec1;
	int rc = -1;

	memset(&c, 0, sizeof(c));
	pthread_mutex_init(&c.mu, NULL);
	snprintf(dir, sizeof(dir), "%s/stk-bench-ref.XXXXXX", bench_opts.tmpdir);
	if (mkdtemp(dir) == NULL) {
		bench_fail("refusals", "mkdtemp %s failed", dir);
		return -1;
	}
	snprintf(site, sizeof(site), "%s/site", dir);
	memset(&io, 0, sizeof(io));
	io.backend = "file";
	io.key_type = STK_KEY_P256;
	io.actor = "bench";
	if (stk_site_init(site, &io, &c.site, &err) != 0) {
		fprintf(stderr, "sitetoken-bench: refusals: site init: %s\n", err.msg);
		goto out;
	}
	if (stk_site_open(site, &c.worker, &err) != 0) {
		fprintf(stderr, "sitetoken-bench: refusals: site open: %s\n", err.msg);
		goto out;
	}
	stk_site_forbid_signing(c.worker);
	for (i = 0; i < REF_CERTS; i++)
		if (ref_make_cert(&c.der[i], &c.der_len[i]) != 0)
			goto out;
	memset(s, 0, sizeof(s));
	s[0] = (struct bench_series){ "flood", op_register_flood, NULL, NULL, &c };
	s[1] = (struct bench_series){ "quiet", op_register, NULL, NULL, &c };
	if (bench_compare(s, 2, 1, v) != 0)
		goto out;
	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "registrations during refusal flood");
	f.value = v[0];
	f.unit = "regs/s";
	f.nrefs = 1;
	f.refs[0] = (struct bench_ref){ "without flood", v[1], "ratio" };
	f.target = 0.8;
	snprintf(f.note, sizeof(f.note), "%ld junk requests refused meanwhile",
	    c.junk_done);
	bench_emit(&f);
	/* Refusals alone: signatures and records per n junk requests. */
	if ((cp0 = ref_count(&c, "checkpoints")) < 0 || (rec0 = ref_count(&c, "records")) < 0)
		goto out;
	t0 = bench_now();
	for (i = 0; i < n; i++)
		if (ref_register(&c, REF_JUNK, "198.51.100.7") == 0)
			goto out;
	t1 = bench_now();
	/* Closing records the counts still held (nothing is dropped). */
	stk_site_close(c.site);
	c.site = NULL;
	if (stk_site_open(site, &c.site, &err) != 0 ||
	    (cp1 = ref_count(&c, "checkpoints")) < 0 || (rec1 = ref_count(&c, "records")) < 0)
		goto out;
	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "site-key signatures per 10000 refusals");
	f.value = (double)(cp1 - cp0) * 10000.0 / (double)n;
	f.unit = "sigs";
	f.nrefs = 1;
	f.nrefs = 2;
	f.refs[0] = (struct bench_ref){ "audit records", (double)(rec1 - rec0) *
	    10000.0 / (double)n, NULL };
	f.refs[1] = (struct bench_ref){ "refusals/s", (double)n / (t1 - t0), NULL };
	snprintf(f.note, sizeof(f.note), "%ld refusals from one source; without "
	    "aggregation: 10000 records, 625 signatures", n);
	bench_emit(&f);
	rc = 0;
out:
	stk_site_close(c.worker);
	stk_site_close(c.site);
	for (i = 0; i < REF_CERTS; i++)
		OPENSSL_free(c.der[i]);
	pthread_mutex_destroy(&c.mu);
	/* A throw-away site with a private key file: remove it. */
	if (nftw(dir, ref_rm, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "sitetoken-bench: refusals: cannot remove %s\n", dir);
	if (rc != 0)
		bench_fail("refusals", "a measurement failed");
	return rc;
}
