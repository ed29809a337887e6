/* sitetoken-bench: shared harness. Every figure is measured beside a
 * reference taken in the same run, in interleaved rounds, so the ratio
 * survives a noisy machine. */
#ifndef STK_BENCH_H
#define STK_BENCH_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_MAX_THREADS 8
#define BENCH_MAX_SERIES 3
#define BENCH_MAX_REFS 3

/* One operation, run in a loop by each thread. tid is 0..threads-1.
 * Returns 0 or a negative code (the bench stops with a message). */
typedef int (*bench_op_fn)(void *ctx, int tid);
/* Optional per-round hooks (e.g. the TPM allows one connection at a time,
 * so each series connects at the start of its round and disconnects at its
 * end, outside the timed part). */
typedef int (*bench_round_fn)(void *ctx, int threads);

struct bench_series {
	const char *name;        /* "ours", "raw", "libjwt" */
	bench_op_fn op;
	bench_round_fn begin;    /* NULL: nothing */
	bench_round_fn end;
	void *ctx;
};

struct bench_ref {
	const char *name;        /* printed before the value */
	double value;
	const char *ratio_name;  /* NULL: no ratio printed */
};

/* One printed line. */
struct bench_figure {
	char name[64];           /* "verify RS256 1t" */
	double value;
	const char *unit;        /* "ops/s", "B/op", "KiB" */
	int nrefs;
	struct bench_ref refs[BENCH_MAX_REFS];
	double target;           /* minimum ratio vs refs[0] (0: none) */
	int target_ref;          /* which ref the target applies to */
	char note[200];          /* free text appended */
};

struct bench_opts {
	int quick;               /* CI smoke: tiny durations, one round */
	int json;
	int rounds;
	double seconds;          /* per series per round */
	long mem_ops;            /* verifies for the growth check */
	const char *only;        /* comma list of groups, NULL = all available */
	const char *tmpdir;
	/* gateway */
	const char *cmg_url, *ca_file, *bulk_file;
	long server_pid;
	int gw_conns;            /* concurrent connections for the RSS figure */
	int gw_regs;             /* registrations to time */
	const char *cmg_cold_url; /* a second server with the token cache off */
	long cold_pid;
	const char *site_db;     /* the site's SQLite file (device-count figure) */
	const char *cmg_hsm_url; /* a server whose site key is in SoftHSM */
	const char *hsm_bulk_file; /* a bulk token of that site */
};

extern struct bench_opts bench_opts;

double bench_now(void);
/* ops/s of one series at `threads` threads for bench_opts.seconds. */
int bench_rate(const struct bench_series *s, int threads, double *rate);
/* Median of interleaved rounds for each series; out[i] per series. */
int bench_compare(const struct bench_series *s, int nseries, int threads,
    double *out);
void bench_emit(const struct bench_figure *f);
void bench_fail(const char *group, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int bench_group_on(const char *group);

/* Groups. Each returns 0, or a negative value when it could not run. */
int bench_tokens(void);      /* verify + issue (file backend) + memory */
int bench_pkcs11(void);
int bench_tpm(void);
int bench_gateway(void);
int bench_register(void);    /* registrations end to end (file key, SoftHSM) */
/* Raw C_Sign rate on the SoftHSM token at `threads` threads (hsm.c). */
int bench_hsm_csign_rate(int threads, double *rate);
int bench_refusals(void);    /* junk-refusal flood vs registrations */

/* Counting allocator (bench/alloc_count.c). */
void bench_alloc_enable(int on);
void bench_alloc_get(uint64_t *calls, uint64_t *bytes, int64_t *live);

#endif

/* A site around one key: certificate, signer, verifier, one client token
 * and its signing input / signature for the raw references. */
#include <openssl/evp.h>
#include "sitetoken/key.h"
#include "sitetoken/token.h"

struct bench_site {
	struct stk_key *key;         /* borrowed */
	unsigned char *cert;
	size_t cert_len;
	char guid[STK_GUID_LEN + 1];
	char device[STK_GUID_LEN + 1];
	char cnf[44];
	struct stk_signer *signer;
	struct stk_verifier *verifier;
	EVP_PKEY *pub;
	char *token;
	size_t token_len;
	size_t input_len;            /* header.payload */
	unsigned char sig[STK_SIG_MAX]; /* as OpenSSL wants it (DER for EC) */
	size_t sig_len;
	int64_t now;
};

int bench_site_make(struct stk_key *key, struct bench_site *s, const char *group);
void bench_site_free(struct bench_site *s);
int bench_issue_one(struct bench_site *s);
