/* Issue through SoftHSM (pkcs11 backend) against a raw C_Sign loop on the
 * same key, one PKCS#11 session per thread. Needs the environment of
 * swtpm-setup/softhsm-token.sh (bench/run.sh provides it). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>
#include "bench.h"

#define OBJ_LABEL "stk-bench-rsa"

struct hsm_ctx {
	struct bench_site site;
	void *dl;
	CK_FUNCTION_LIST *fl;
	CK_SESSION_HANDLE sess[BENCH_MAX_THREADS];
	CK_OBJECT_HANDLE obj[BENCH_MAX_THREADS];
};

static int
op_issue(void *c, int tid)
{
	(void)tid;
	return bench_issue_one(&((struct hsm_ctx *)c)->site);
}

/* The token hashes and signs the same signing input (CKM_SHA256_RSA_PKCS):
 * the least work any PKCS#11 caller can do per signature. */
static int
op_csign(void *c, int tid)
{
	struct hsm_ctx *h = c;
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	CK_BYTE sig[STK_SIG_MAX];
	CK_ULONG siglen = sizeof(sig);

	if (h->fl->C_SignInit(h->sess[tid], &m, h->obj[tid]) != CKR_OK ||
	    h->fl->C_Sign(h->sess[tid], (CK_BYTE_PTR)h->site.token,
	    h->site.input_len, sig, &siglen) != CKR_OK)
		return -1;
	return 0;
}

static int
read_pin(char *pin, size_t len)
{
	const char *f = getenv("SITETOKEN_PKCS11_PIN_FILE");
	FILE *fp;
	size_t n;

	if (f == NULL || (fp = fopen(f, "r")) == NULL)
		return -1;
	n = fread(pin, 1, len - 1, fp);
	fclose(fp);
	while (n > 0 && (pin[n - 1] == '\n' || pin[n - 1] == '\r'))
		n--;
	pin[n] = '\0';
	return n > 0 ? 0 : -1;
}

/* Our own handle on the same module (same process, so the same SoftHSM
 * instance and login state as the backend's libp11). */
static int
raw_setup(struct hsm_ctx *h, const char *token_label)
{
	CK_C_GetFunctionList gfl;
	CK_C_INITIALIZE_ARGS ia;
	CK_SLOT_ID slots[16];
	CK_ULONG ns = 16, i, nf;
	CK_TOKEN_INFO ti;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[2] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)OBJ_LABEL, sizeof(OBJ_LABEL) - 1 },
	};
	CK_RV rv;
	char pin[256], label[33];
	int t, found = -1;
	const char *mod = getenv("SITETOKEN_PKCS11_MODULE");

	if (mod == NULL || (h->dl = dlopen(mod, RTLD_NOW)) == NULL ||
	    (gfl = (CK_C_GetFunctionList)dlsym(h->dl, "C_GetFunctionList")) == NULL ||
	    gfl(&h->fl) != CKR_OK)
		return -1;
	memset(&ia, 0, sizeof(ia));
	ia.flags = CKF_OS_LOCKING_OK;
	rv = h->fl->C_Initialize(&ia);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
		return -1;
	if (h->fl->C_GetSlotList(CK_TRUE, slots, &ns) != CKR_OK)
		return -1;
	for (i = 0; i < ns && found < 0; i++) {
		if (h->fl->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		memcpy(label, ti.label, 32);
		label[32] = '\0';
		for (t = 31; t >= 0 && label[t] == ' '; t--)
			label[t] = '\0';
		if (strcmp(label, token_label) == 0)
			found = (int)i;
	}
	if (found < 0 || read_pin(pin, sizeof(pin)) != 0)
		return -1;
	for (t = 0; t < BENCH_MAX_THREADS; t++) {
		if (h->fl->C_OpenSession(slots[found], CKF_SERIAL_SESSION, NULL,
		    NULL, &h->sess[t]) != CKR_OK)
			return -1;
		if (t == 0) {
			rv = h->fl->C_Login(h->sess[0], CKU_USER, (CK_UTF8CHAR_PTR)pin,
			    strlen(pin));
			if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
				return -1;
		}
		if (h->fl->C_FindObjectsInit(h->sess[t], tmpl, 2) != CKR_OK)
			return -1;
		rv = h->fl->C_FindObjects(h->sess[t], &h->obj[t], 1, &nf);
		h->fl->C_FindObjectsFinal(h->sess[t]);
		if (rv != CKR_OK || nf != 1)
			return -1;
	}
	OPENSSL_cleanse(pin, sizeof(pin));
	return 0;
}

int
bench_pkcs11(void)
{
	struct hsm_ctx h;
	struct stk_key *key = NULL;
	struct stk_error err;
	struct bench_figure f;
	char uri[256], *out_uri = NULL;
	const char *tok = getenv("SITETOKEN_PKCS11_TOKEN");
	double v[2], one = 0, raw_one = 0;
	int th, r = 0, t;

	memset(&h, 0, sizeof(h));
	memset(&err, 0, sizeof(err));
	if (tok == NULL)
		tok = "sitetoken";
	snprintf(uri, sizeof(uri), "pkcs11:token=%s;object=" OBJ_LABEL, tok);
	if (stk_key_open(uri, NULL, &key, &err) != 0 &&
	    stk_key_generate("pkcs11", uri, STK_KEY_RSA2048, NULL, &key,
	    &out_uri, &err) != 0) {
		bench_fail("pkcs11", "no key %s: %s", uri, err.msg);
		return -1;
	}
	free(out_uri);
	if (bench_site_make(key, &h.site, "pkcs11") != 0) {
		stk_key_close(key);
		return -1;
	}
	if (raw_setup(&h, tok) != 0 || op_csign(&h, 0) != 0) {
		bench_fail("pkcs11", "raw C_Sign set-up on %s failed", uri);
		r = -1;
		goto out;
	}
	struct bench_series s[2] = {
		{ "ours", op_issue, NULL, NULL, &h },
		{ "raw", op_csign, NULL, NULL, &h },
	};
	for (th = 1; th <= 2 && r == 0; th++) {
		if ((r = bench_compare(s, 2, th, v)) != 0) {
			bench_fail("pkcs11", "a measurement failed");
			break;
		}
		memset(&f, 0, sizeof(f));
		snprintf(f.name, sizeof(f.name), "issue pkcs11 RS256 %dt", th);
		f.value = v[0];
		f.unit = "ops/s";
		f.nrefs = 1;
		f.refs[0] = (struct bench_ref){ "raw", v[1], "ratio" };
		f.target = 0.85;
		if (th == 1) {
			one = v[0];
			raw_one = v[1];
		} else {
			/* The raw loop's own scaling tells the machine's and the
			 * token's limit apart from ours. */
			snprintf(f.note, sizeof(f.note), "raw-scaling %.2f",
			    raw_one > 0 ? v[1] / raw_one : 0.0);
			/* The 2-thread target is scaling over our own 1t rate. */
			f.nrefs = 2;
			f.refs[1] = (struct bench_ref){ "1t", one, "scaling" };
			f.target = 1.6;
			f.target_ref = 1;
		}
		bench_emit(&f);
	}
out:
	if (h.fl != NULL)
		for (t = 0; t < BENCH_MAX_THREADS; t++)
			if (h.sess[t] != 0)
				h.fl->C_CloseSession(h.sess[t]);
	bench_site_free(&h.site);
	stk_key_close(key);
	/* No C_Finalize and no dlclose: the module is shared with libp11,
	 * which finalizes it when the key closes. */
	return r;
}

/* The raw reference of the registrations-through-SoftHSM figure (gateway.c):
 * C_Sign at `threads` threads on the bench's own RSA-2048 key object of the
 * same token the server's site key lives in, for bench_opts.seconds. The
 * sessions stay open between calls (one per thread), so rounds interleave
 * with the registrations without set-up in the timed part. */
static struct hsm_ctx csign_ctx;
static struct stk_key *csign_key;

int
bench_hsm_csign_rate(int threads, double *rate)
{
	struct bench_series s = { "raw", op_csign, NULL, NULL, &csign_ctx };
	struct stk_error err;
	char uri[256], *out_uri = NULL;
	const char *tok = getenv("SITETOKEN_PKCS11_TOKEN");

	*rate = 0;
	if (csign_ctx.fl == NULL) {
		memset(&err, 0, sizeof(err));
		snprintf(uri, sizeof(uri), "pkcs11:token=%s;object=" OBJ_LABEL,
		    tok ? tok : "sitetoken");
		if (csign_key == NULL && stk_key_open(uri, NULL, &csign_key, &err) != 0 &&
		    stk_key_generate("pkcs11", uri, STK_KEY_RSA2048, NULL, &csign_key,
		    &out_uri, &err) != 0) {
			bench_fail("register", "no key %s: %s", uri, err.msg);
			return -1;
		}
		free(out_uri);
		if (bench_site_make(csign_key, &csign_ctx.site, "register") != 0)
			return -1;
		if (raw_setup(&csign_ctx, tok ? tok : "sitetoken") != 0 ||
		    op_csign(&csign_ctx, 0) != 0) {
			bench_fail("register", "raw C_Sign set-up on %s failed", uri);
			return -1;
		}
	}
	return bench_rate(&s, threads, rate);
}
