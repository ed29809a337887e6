/* sitetoken-bench: each figure beside a reference measured in the same
 * run. Series of one figure alternate round by round (ours, reference,
 * reference, ours, ...) and the median round is reported, so machine noise
 * hits both sides alike. See bench/README.md. */
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench.h"

struct bench_opts bench_opts = {
	.rounds = 5,
	.seconds = 0.2,
	.mem_ops = 1000000,
	.gw_conns = 500,     /* under the server's total limit (SRV_CONN_LIMIT 512) */
	.gw_regs = 200,
};

static int n_failed;
static int json_first = 1;

double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct worker {
	const struct bench_series *s;
	int tid;
	atomic_int *go, *stop;
	long ops;
	int rc;
	pthread_t th;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(w->go))
		;
	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		if ((w->rc = w->s->op(w->s->ctx, w->tid)) != 0)
			break;
		w->ops++;
	}
	return NULL;
}

int
bench_rate(const struct bench_series *s, int threads, double *rate)
{
	struct worker w[BENCH_MAX_THREADS];
	atomic_int go = 0, stop = 0;
	struct timespec ts;
	double t0, t1;
	long total = 0;
	int i, r = 0, started = 0;

	*rate = 0;
	if (s->begin != NULL && (r = s->begin(s->ctx, threads)) != 0)
		return r;
	memset(w, 0, sizeof(w));
	for (i = 0; i < threads; i++) {
		w[i].s = s;
		w[i].tid = i;
		w[i].go = &go;
		w[i].stop = &stop;
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0) {
			r = -1;
			atomic_store(&stop, 1);
			break;
		}
		started++;
	}
	t0 = bench_now();
	atomic_store(&go, 1);
	ts.tv_sec = (time_t)bench_opts.seconds;
	ts.tv_nsec = (long)((bench_opts.seconds - (double)ts.tv_sec) * 1e9);
	if (r == 0)
		nanosleep(&ts, NULL);
	atomic_store(&stop, 1);
	for (i = 0; i < started; i++) {
		pthread_join(w[i].th, NULL);
		total += w[i].ops;
		if (w[i].rc != 0 && r == 0)
			r = w[i].rc;
	}
	t1 = bench_now();
	if (s->end != NULL)
		s->end(s->ctx, threads);
	*rate = (double)total / (t1 - t0);
	return r;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int
bench_compare(const struct bench_series *s, int nseries, int threads,
    double *out)
{
	double v[BENCH_MAX_SERIES][16];
	int rounds = bench_opts.rounds > 16 ? 16 : bench_opts.rounds;
	int round, k, i, r;

	for (round = 0; round < rounds; round++) {
		for (k = 0; k < nseries; k++) {
			/* Rotate who goes first, so drift favours nobody. */
			i = (k + round) % nseries;
			if ((r = bench_rate(&s[i], threads, &v[i][round])) != 0)
				return r;
		}
	}
	for (i = 0; i < nseries; i++) {
		qsort(v[i], (size_t)rounds, sizeof(double), cmp_double);
		out[i] = rounds % 2 ? v[i][rounds / 2] :
		    (v[i][rounds / 2 - 1] + v[i][rounds / 2]) / 2;
	}
	return 0;
}

static void
json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

void
bench_emit(const struct bench_figure *f)
{
	int i, met = -1;
	double ratio;

	if (f->target > 0 && f->refs[f->target_ref].value > 0)
		met = f->value / f->refs[f->target_ref].value >= f->target;
	if (bench_opts.json) {
		printf("%s\n  {\"figure\":", json_first ? "[" : ",");
		json_first = 0;
		json_str(f->name);
		printf(",\"value\":%.1f,\"unit\":", f->value);
		json_str(f->unit);
		for (i = 0; i < f->nrefs; i++) {
			printf(",");
			json_str(f->refs[i].name);
			printf(":%.1f", f->refs[i].value);
			if (f->refs[i].ratio_name != NULL && f->refs[i].value > 0) {
				printf(",");
				json_str(f->refs[i].ratio_name);
				printf(":%.3f", f->value / f->refs[i].value);
			}
		}
		if (f->target > 0)
			printf(",\"target\":%.2f,\"met\":%s", f->target,
			    met == 1 ? "true" : "false");
		if (f->note[0] != '\0') {
			printf(",\"note\":");
			json_str(f->note);
		}
		printf("}");
		fflush(stdout);
		return;
	}
	printf("%s: %.0f %s", f->name, f->value, f->unit);
	for (i = 0; i < f->nrefs; i++) {
		printf("  %s %.0f", f->refs[i].name, f->refs[i].value);
		if (f->refs[i].ratio_name != NULL && f->refs[i].value > 0) {
			ratio = f->value / f->refs[i].value;
			printf("  %s %.2f", f->refs[i].ratio_name, ratio);
		}
	}
	if (f->note[0] != '\0')
		printf("  %s", f->note);
	if (met >= 0)
		printf("  [target %.2f %s]", f->target, met ? "met" : "MISSED");
	printf("\n");
	fflush(stdout);
}

void
bench_fail(const char *group, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "sitetoken-bench: %s: ", group);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	n_failed++;
}

int
bench_group_on(const char *group)
{
	const char *p = bench_opts.only;
	size_t n = strlen(group);

	if (p == NULL)
		return 1;
	while (*p != '\0') {
		if (strncmp(p, group, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return 1;
		p = strchr(p, ',');
		if (p == NULL)
			break;
		p++;
	}
	return 0;
}

static const char usage[] =
"usage: sitetoken-bench [--quick] [--json] [--rounds N] [--seconds S]\n"
"         [--only tokens,pkcs11,tpm,refusals,gateway,register] [--mem-ops N]\n"
"         [--tmp DIR]\n"
"         [--cmg URL --ca FILE --bulk-token-file FILE --server-pid PID\n"
"          [--conns N] [--registrations N] [--cmg-cold URL --cold-pid PID]\n"
"          [--site-db FILE] [--cmg-hsm URL --hsm-bulk-token-file FILE]]\n"
"pkcs11 runs when SOFTHSM2_CONF / SITETOKEN_PKCS11_MODULE / PIN file are set,\n"
"tpm when SITETOKEN_TCTI is set, gateway and register when --cmg is given\n"
"(register's SoftHSM figures with --cmg-hsm, a server whose site key is in\n"
"that SoftHSM token; bench/run.sh sets all of them up). A requested group\n"
"that cannot run is an error.\n";

int
main(int argc, char **argv)
{
	enum { O_QUICK = 256, O_JSON, O_ROUNDS, O_SECONDS, O_ONLY, O_MEM, O_TMP,
	    O_CMG, O_CA, O_BULK, O_PID, O_CONNS, O_REGS, O_COLD, O_COLDPID, O_SITEDB,
	    O_HSMURL, O_HSMBULK };
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, O_QUICK },
		{ "json", no_argument, NULL, O_JSON },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "only", required_argument, NULL, O_ONLY },
		{ "mem-ops", required_argument, NULL, O_MEM },
		{ "tmp", required_argument, NULL, O_TMP },
		{ "cmg", required_argument, NULL, O_CMG },
		{ "ca", required_argument, NULL, O_CA },
		{ "bulk-token-file", required_argument, NULL, O_BULK },
		{ "server-pid", required_argument, NULL, O_PID },
		{ "conns", required_argument, NULL, O_CONNS },
		{ "registrations", required_argument, NULL, O_REGS },
		{ "cmg-cold", required_argument, NULL, O_COLD },
		{ "cold-pid", required_argument, NULL, O_COLDPID },
		{ "site-db", required_argument, NULL, O_SITEDB },
		{ "cmg-hsm", required_argument, NULL, O_HSMURL },
		{ "hsm-bulk-token-file", required_argument, NULL, O_HSMBULK },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, quick_rounds = 0, quick_secs = 0, quick_mem = 0, quick_gw = 0;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_QUICK: bench_opts.quick = 1; break;
		case O_JSON: bench_opts.json = 1; break;
		case O_ROUNDS: bench_opts.rounds = atoi(optarg); quick_rounds = 1; break;
		case O_SECONDS: bench_opts.seconds = atof(optarg); quick_secs = 1; break;
		case O_ONLY: bench_opts.only = optarg; break;
		case O_MEM: bench_opts.mem_ops = atol(optarg); quick_mem = 1; break;
		case O_TMP: bench_opts.tmpdir = optarg; break;
		case O_CMG: bench_opts.cmg_url = optarg; break;
		case O_CA: bench_opts.ca_file = optarg; break;
		case O_BULK: bench_opts.bulk_file = optarg; break;
		case O_PID: bench_opts.server_pid = atol(optarg); break;
		case O_CONNS: bench_opts.gw_conns = atoi(optarg); quick_gw = 1; break;
		case O_REGS: bench_opts.gw_regs = atoi(optarg); quick_gw = 1; break;
		case O_COLD: bench_opts.cmg_cold_url = optarg; break;
		case O_COLDPID: bench_opts.cold_pid = atol(optarg); break;
		case O_SITEDB: bench_opts.site_db = optarg; break;
		case O_HSMURL: bench_opts.cmg_hsm_url = optarg; break;
		case O_HSMBULK: bench_opts.hsm_bulk_file = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc || bench_opts.rounds < 1 || bench_opts.rounds > 16 ||
	    !(bench_opts.seconds > 0) || bench_opts.mem_ops < 1 ||
	    bench_opts.gw_conns < 1 || bench_opts.gw_regs < 1) {
		fputs(usage, stderr);
		return 2;
	}
	if (bench_opts.quick) {
		/* A few hundred operations per figure: proves every path runs
		 * and prints; the numbers mean nothing. */
		if (!quick_rounds) bench_opts.rounds = 1;
		if (!quick_secs) bench_opts.seconds = 0.02;
		if (!quick_mem) bench_opts.mem_ops = 2000;
		if (!quick_gw) { bench_opts.gw_conns = 50; bench_opts.gw_regs = 10; }
	}
	if (bench_opts.tmpdir == NULL)
		bench_opts.tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	if (bench_group_on("tokens") && bench_tokens() != 0)
		bench_fail("tokens", "group failed");
	if (bench_group_on("pkcs11") && (bench_opts.only != NULL ||
	    getenv("SITETOKEN_PKCS11_MODULE") != NULL) && bench_pkcs11() != 0)
		bench_fail("pkcs11", "group failed");
	if (bench_group_on("tpm") && (bench_opts.only != NULL ||
	    getenv("SITETOKEN_TCTI") != NULL) && bench_tpm() != 0)
		bench_fail("tpm", "group failed");
	if (bench_group_on("refusals") && bench_refusals() != 0)
		bench_fail("refusals", "group failed");
	if (bench_group_on("gateway") && (bench_opts.only != NULL ||
	    bench_opts.cmg_url != NULL) && bench_gateway() != 0)
		bench_fail("gateway", "group failed");
	if (bench_group_on("register") && (bench_opts.only != NULL ||
	    bench_opts.cmg_url != NULL) && bench_register() != 0)
		bench_fail("register", "group failed");
	if (bench_opts.json)
		printf("%s]\n", json_first ? "[" : "\n");
	return n_failed ? 1 : 0;
}
