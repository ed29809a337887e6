/* Token figures with the file backend: verify against raw OpenSSL
 * EVP_DigestVerify and libjwt, issue against raw EVP_DigestSign, and the
 * allocations of one verify. */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include "sitetoken/cert.h"
#include "bench.h"

#define LIFETIME (30 * 86400)

int
bench_site_make(struct stk_key *key, struct bench_site *s, const char *group)
{
	struct stk_error err;
	unsigned char *sig = NULL, *der = NULL;
	const char *dot;
	size_t siglen, derlen;

	memset(s, 0, sizeof(*s));
	memset(&err, 0, sizeof(err));
	s->key = key;
	s->now = (int64_t)time(NULL);
	if (stk_guid_new(s->guid) != 0 || stk_guid_new(s->device) != 0)
		goto fail;
	if (stk_cert_make_site(key, s->guid, s->now, 365, &s->cert,
	    &s->cert_len, &err) != 0 ||
	    stk_signer_new(key, s->cert, s->cert_len, s->guid, &s->signer,
	    &err) != 0 ||
	    stk_verifier_new(s->guid, &s->verifier, &err) != 0 ||
	    stk_verifier_add_cert(s->verifier, s->cert, s->cert_len, &err) != 0 ||
	    stk_key_get_public(key, &s->pub, &err) != 0)
		goto fail;
	/* The device certificate's thumbprint only has to look like one. */
	stk_cert_x5t_s256(s->cert, s->cert_len, s->cnf);
	if (stk_issue_client(s->signer, s->device, s->cnf, s->now, LIFETIME,
	    &s->token, NULL, &err) != 0)
		goto fail;
	s->token_len = strlen(s->token);
	dot = strrchr(s->token, '.');
	s->input_len = (size_t)(dot - s->token);
	if (stk_b64url_decode(dot + 1, strlen(dot + 1), &sig, &siglen) != 0)
		goto fail;
	if (key->type == STK_KEY_P256) {
		if (stk_ecdsa_raw_to_der(sig, siglen, &der, &derlen) != 0 ||
		    derlen > sizeof(s->sig))
			goto fail;
		memcpy(s->sig, der, derlen);
		s->sig_len = derlen;
		OPENSSL_free(der);
	} else {
		memcpy(s->sig, sig, siglen);
		s->sig_len = siglen;
	}
	free(sig);
	return 0;
fail:
	bench_fail(group, "cannot set up a site on the key: %s",
	    err.msg[0] ? err.msg : "(no detail)");
	free(sig);
	bench_site_free(s);
	return -1;
}

void
bench_site_free(struct bench_site *s)
{
	stk_token_free(s->token);
	EVP_PKEY_free(s->pub);
	stk_verifier_free(s->verifier);
	stk_signer_free(s->signer);
	free(s->cert);
	memset(s, 0, sizeof(*s));
}

int
bench_issue_one(struct bench_site *s)
{
	struct stk_error err;
	char *tok = NULL;
	int r;

	r = stk_issue_client(s->signer, s->device, s->cnf, s->now, LIFETIME,
	    &tok, NULL, &err);
	stk_token_free(tok);
	return r;
}

/* ---- per-figure contexts -------------------------------------------- */

struct tok_ctx {
	struct bench_site site;
	EVP_PKEY *priv;                        /* raw signing reference */
	char *pem;                             /* public key PEM for libjwt */
	size_t pem_len;
	EVP_MD_CTX *md[BENCH_MAX_THREADS];     /* verify */
	EVP_MD_CTX *smd[BENCH_MAX_THREADS];    /* sign */
	const char *alg;
};

static int
op_verify(void *c, int tid)
{
	struct tok_ctx *t = c;
	struct stk_claims claims;
	struct stk_error err;
	int r;

	(void)tid;
	r = stk_verify(t->site.verifier, t->site.token, t->site.token_len,
	    STK_TOKEN_CLIENT, t->site.now, &claims, &err);
	stk_claims_clear(&claims);
	return r;
}

/* The floor: one EVP_DigestVerify of the signing input, the signature
 * already decoded, a context reused per thread. */
static int
op_verify_raw(void *c, int tid)
{
	struct tok_ctx *t = c;

	if (EVP_DigestVerifyInit(t->md[tid], NULL, EVP_sha256(), NULL,
	    t->site.pub) != 1 ||
	    EVP_DigestVerify(t->md[tid], t->site.sig, t->site.sig_len,
	    (const unsigned char *)t->site.token, t->site.input_len) != 1)
		return -1;
	return 0;
}

static int
op_verify_libjwt(void *c, int tid)
{
	struct tok_ctx *t = c;
	jwt_t *jwt = NULL;
	int r;

	(void)tid;
	r = jwt_decode(&jwt, t->site.token, (const unsigned char *)t->pem,
	    (int)t->pem_len);
	jwt_free(jwt);
	return r == 0 ? 0 : -1;
}

static int
op_issue(void *c, int tid)
{
	(void)tid;
	return bench_issue_one(&((struct tok_ctx *)c)->site);
}

static int
op_issue_raw(void *c, int tid)
{
	struct tok_ctx *t = c;
	unsigned char sig[STK_SIG_MAX];
	size_t siglen = sizeof(sig);

	if (EVP_DigestSignInit(t->smd[tid], NULL, EVP_sha256(), NULL,
	    t->priv) != 1 ||
	    EVP_DigestSign(t->smd[tid], sig, &siglen,
	    (const unsigned char *)t->site.token, t->site.input_len) != 1)
		return -1;
	return 0;
}

static int
tok_setup(struct tok_ctx *t, enum stk_key_type type, const char *dir)
{
	struct stk_key_opts o;
	struct stk_error err;
	struct stk_key *key = NULL;
	char path[4200], *uri = NULL;
	FILE *fp;
	BIO *b = NULL;
	char *p;
	long n;
	int i;

	memset(t, 0, sizeof(*t));
	memset(&o, 0, sizeof(o));
	t->alg = stk_key_type_alg(type);
	o.site_dir = dir;
	snprintf(path, sizeof(path), "%s/%s.key", dir, t->alg);
	if (stk_key_generate("file", path, type, &o, &key, &uri, &err) != 0) {
		bench_fail("tokens", "file key: %s", err.msg);
		return -1;
	}
	free(uri);
	if (bench_site_make(key, &t->site, "tokens") != 0)
		return -1;
	if ((fp = fopen(path, "r")) == NULL ||
	    (t->priv = PEM_read_PrivateKey(fp, NULL, NULL, NULL)) == NULL) {
		if (fp)
			fclose(fp);
		bench_fail("tokens", "cannot read back %s", path);
		return -1;
	}
	fclose(fp);
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PUBKEY(b, t->site.pub) != 1 ||
	    (n = BIO_get_mem_data(b, &p)) <= 0 ||
	    (t->pem = malloc((size_t)n + 1)) == NULL) {
		BIO_free(b);
		return -1;
	}
	memcpy(t->pem, p, (size_t)n);
	t->pem[n] = '\0';
	t->pem_len = (size_t)n;
	BIO_free(b);
	for (i = 0; i < BENCH_MAX_THREADS; i++)
		if ((t->md[i] = EVP_MD_CTX_new()) == NULL ||
		    (t->smd[i] = EVP_MD_CTX_new()) == NULL)
			return -1;
	/* Every series must accept the token before anything is timed. */
	if ((i = op_verify(t, 0)) != 0 || (i = op_verify_raw(t, 0)) != 0 ||
	    (i = op_issue(t, 0)) != 0 || (i = op_issue_raw(t, 0)) != 0) {
		bench_fail("tokens", "%s: a series fails on the bench token (%s)",
		    t->alg, stk_strerror(i));
		return -1;
	}
	if (op_verify_libjwt(t, 0) != 0) {
		bench_fail("tokens", "%s: libjwt does not accept our token", t->alg);
		return -1;
	}
	return 0;
}

static void
tok_free(struct tok_ctx *t)
{
	struct stk_key *key = t->site.key;
	int i;

	bench_site_free(&t->site);
	stk_key_close(key);
	EVP_PKEY_free(t->priv);
	free(t->pem);
	for (i = 0; i < BENCH_MAX_THREADS; i++) {
		EVP_MD_CTX_free(t->md[i]);
		EVP_MD_CTX_free(t->smd[i]);
	}
}

/* ---- memory ----------------------------------------------------------- */

static void
alloc_per_op(bench_op_fn op, void *ctx, long n, double *bytes, double *calls)
{
	uint64_t c0, b0, c1, b1;
	int64_t l0, l1;
	long i;

	bench_alloc_get(&c0, &b0, &l0);
	bench_alloc_enable(1);
	for (i = 0; i < n; i++)
		op(ctx, 0);
	bench_alloc_enable(0);
	bench_alloc_get(&c1, &b1, &l1);
	*bytes = (double)(b1 - b0) / (double)n;
	*calls = (double)(c1 - c0) / (double)n;
}

struct grow_arg {
	struct tok_ctx *t;
	long n;
	int rc;
};

static void *
grow_thread(void *a)
{
	struct grow_arg *g = a;
	long i;

	for (i = 0; i < g->n && g->rc == 0; i++)
		g->rc = op_verify(g->t, 0);
	return NULL;
}

static int
mem_figures(struct tok_ctx *t)
{
	struct bench_figure f;
	struct grow_arg g[2];
	pthread_t th[2];
	struct mallinfo2 m0, m1;
	uint64_t c0, b0, c1, b1;
	int64_t l0, l1;
	double ours_b, ours_c, raw_b, raw_c, jwt_b, jwt_c, t0;
	long n = bench_opts.quick ? 200 : 2000;
	int i;

	alloc_per_op(op_verify, t, n, &ours_b, &ours_c);
	alloc_per_op(op_verify_raw, t, n, &raw_b, &raw_c);
	alloc_per_op(op_verify_libjwt, t, n, &jwt_b, &jwt_c);
	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "memory verify %s", t->alg);
	f.value = ours_b;
	f.unit = "B/op";
	f.nrefs = 2;
	f.refs[0] = (struct bench_ref){ "raw", raw_b, NULL };
	f.refs[1] = (struct bench_ref){ "libjwt", jwt_b, NULL };
#ifdef STK_BENCH_NO_ALLOC_HOOK
	snprintf(f.note, sizeof(f.note), "allocation counting off (sanitizer build)");
#else
	snprintf(f.note, sizeof(f.note), "allocs/op %.1f (raw %.1f, libjwt %.1f)",
	    ours_c, raw_c, jwt_c);
#endif
	bench_emit(&f);

	/* Growth: live bytes (counting allocator) and glibc's in-use total
	 * before and after mem_ops verifies on two threads. */
	m0 = mallinfo2();
	bench_alloc_get(&c0, &b0, &l0);
	bench_alloc_enable(1);
	t0 = bench_now();
	for (i = 0; i < 2; i++) {
		g[i] = (struct grow_arg){ t, bench_opts.mem_ops / 2, 0 };
		pthread_create(&th[i], NULL, grow_thread, &g[i]);
	}
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	bench_alloc_enable(0);
	bench_alloc_get(&c1, &b1, &l1);
	m1 = mallinfo2();
	if (g[0].rc != 0 || g[1].rc != 0) {
		bench_fail("tokens", "verify failed during the growth run");
		return -1;
	}
	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "memory growth %s %ldk verifies",
	    t->alg, bench_opts.mem_ops / 1000);
	f.value = (double)(l1 - l0);
	f.unit = "B live";
	f.nrefs = 1;
	f.refs[0] = (struct bench_ref){ "heap-in-use-delta",
	    (double)((long long)m1.uordblks - (long long)m0.uordblks), NULL };
	snprintf(f.note, sizeof(f.note), "(%.1f s, %.0f allocs)",
	    bench_now() - t0, (double)(c1 - c0));
	bench_emit(&f);
	return 0;
}

/* ---- group ------------------------------------------------------------ */

int
bench_tokens(void)
{
	static const enum stk_key_type types[] = { STK_KEY_RSA2048, STK_KEY_P256 };
	char dir[4000], path[4200];
	struct tok_ctx t;
	struct bench_figure f;
	double v[3], one[2] = { 0, 0 };
	int ti, th, rc = 0;

	snprintf(dir, sizeof(dir), "%s/stk-bench.XXXXXX", bench_opts.tmpdir);
	if (mkdtemp(dir) == NULL) {
		bench_fail("tokens", "mkdtemp %s failed", dir);
		return -1;
	}
	for (ti = 0; ti < 2 && rc == 0; ti++) {
		if (tok_setup(&t, types[ti], dir) != 0) {
			tok_free(&t);
			rc = -1;
			break;
		}
		struct bench_series vs[3] = {
			{ "ours", op_verify, NULL, NULL, &t },
			{ "raw", op_verify_raw, NULL, NULL, &t },
			{ "libjwt", op_verify_libjwt, NULL, NULL, &t },
		};
		struct bench_series is[2] = {
			{ "ours", op_issue, NULL, NULL, &t },
			{ "raw", op_issue_raw, NULL, NULL, &t },
		};
		for (th = 1; th <= 2 && rc == 0; th++) {
			if ((rc = bench_compare(vs, 3, th, v)) != 0)
				break;
			memset(&f, 0, sizeof(f));
			snprintf(f.name, sizeof(f.name), "verify %s %dt", t.alg, th);
			f.value = v[0];
			f.unit = "ops/s";
			f.nrefs = 2;
			f.refs[0] = (struct bench_ref){ "raw", v[1], "ratio" };
			f.refs[1] = (struct bench_ref){ "libjwt", v[2], "vs-libjwt" };
			f.target = 0.9;
			bench_emit(&f);
		}
		for (th = 1; th <= 2 && rc == 0; th++) {
			if ((rc = bench_compare(is, 2, th, v)) != 0)
				break;
			memset(&f, 0, sizeof(f));
			snprintf(f.name, sizeof(f.name), "issue file %s %dt", t.alg, th);
			f.value = v[0];
			f.unit = "ops/s";
			f.nrefs = 1;
			f.refs[0] = (struct bench_ref){ "raw", v[1], "ratio" };
			f.target = 0.9;
			if (th == 1)
				one[ti] = v[0];
			else {
				f.nrefs = 2;
				f.refs[1] = (struct bench_ref){ "1t", one[ti], "scaling" };
			}
			bench_emit(&f);
		}
		if (rc == 0 && ti == 0)
			rc = mem_figures(&t);
		tok_free(&t);
	}
	if (rc != 0)
		bench_fail("tokens", "a measurement failed");
	/* Key files are private keys of a throw-away site: remove them. */
	for (ti = 0; ti < 2; ti++) {
		snprintf(path, sizeof(path), "%s/%s.key", dir,
		    stk_key_type_alg(types[ti]));
		unlink(path);
	}
	rmdir(dir);
	return rc;
}
