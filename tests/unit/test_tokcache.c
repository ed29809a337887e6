/* The gateway's cache (site/registration/tokcache.c) through
 * stk_device_authenticate on two nodes of one site: node A (the handle that
 * registers and administers) and node B (the gateway that serves from its
 * cache). On SQLite B is a second handle on the same store; with
 * SITETOKEN_DB (ctest label pg) B is a real second node (stk_site_node_add)
 * on its own connection.
 *
 * The documented staleness: a change made through a handle of the same
 * process applies to B's very next request; a change made by another
 * process (a forked child on its own connection: the CLI, another node)
 * applies to every request B starts 1 s or more after it committed. Both
 * are asserted here, and a differential test checks that B's cached
 * decisions equal those of a handle deciding without the cache over a
 * random sequence of state changes. */
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sitetoken/attest_policy.h"
#include "sitetoken/cert.h"
#include "sitetoken/device.h"
#include "sitetoken/site.h"
#include "sitetoken/token.h"
#include "site_int.h"
#include "testutil.h"
#include "site_fixture.h"

#define DAY 86400
#define FX_TEST(name) SF_TEST(struct fx, name)

struct fx {
	char *dir;
	struct stk_site *a, *b;
	unsigned char *certA, *certB;
	size_t lenA, lenB;
	int64_t t0;
	struct stk_issued is;     /* A's device registered at t0 (reg) */
	struct stk_error err;
};

/* Node B: a second node of A's site on PostgreSQL, else a second handle. */
static void
open_node_b(struct fx *f, const char *dir_a)
{
	struct stk_site_node_opts no;
	struct stk_error err;
	char path[PATH_MAX + 16], line[512], schema[128] = "";
	const char *db = getenv("SITETOKEN_DB");
	FILE *fp;

	if (db == NULL || *db == '\0') {
		if (stk_site_open(dir_a, &f->b, &err) != 0)
			fail_msg("node B: %s", err.msg);
		return;
	}
	snprintf(path, sizeof(path), "%s/site.conf", dir_a);
	assert_non_null(fp = fopen(path, "r"));
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, "schema=", 7) == 0)
			snprintf(schema, sizeof(schema), "%.*s", (int)strcspn(line + 7, "\n"),
			    line + 7);
	fclose(fp);
	memset(&no, 0, sizeof(no));
	no.db = db;
	no.db_schema = schema;
	no.node = "b";
	no.backend = "file";
	no.key_type = STK_KEY_P256;
	no.actor = "tester";
	snprintf(path, sizeof(path), "%s/node-b", f->dir);
	if (stk_site_node_add(path, &no, &f->b, &err) != 0)
		fail_msg("node B: %s", err.msg);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char sub[PATH_MAX];

	f->dir = tu_tmpdir("tokcache");
	f->t0 = stk_now();
	f->a = sf_site_init(f->dir);
	snprintf(sub, sizeof(sub), "%s/site", f->dir);
	open_node_b(f, sub);
	sf_device_cert(f->dir, "a", f->t0, 365, &f->certA, &f->lenA);
	sf_device_cert(f->dir, "b", f->t0, 365, &f->certB, &f->lenB);
	stk_token_cache_clear();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	stk_issued_clear(&f->is);
	stk_site_close(f->b);
	sf_site_done(f->a, f->dir);
	free(f->certA);
	free(f->certB);
	free(f);
	return 0;
}

/* A's device registers (f->is) over the MP over TLS: the handshake proved
 * the key (proof of possession). Returns its token. */
static const char *
reg(struct fx *f)
{
	struct stk_reg_request rq;
	enum stk_refusal reason;

	sf_tls_request(&rq, STK_VIA_MP, f->certA, f->lenA, NULL);
	rq.peer = "test";
	if (stk_device_register(f->a, &rq, f->t0, &f->is, &reason, &f->err) != 0)
		fail_msg("register: %s", f->err.msg);
	return f->is.token;
}

/* Node B's verdict on tok, with A's certificate (B's when cert_b), at now
 * is want (STK_REFUSAL_NONE: accepted) and, unless hit < 0, the token
 * check was a cache hit (1) or not (0). Returns the call's result. */
static int
b_auth(struct fx *f, int cert_b, const char *tok, int64_t now, enum stk_refusal want,
    int hit)
{
	enum stk_refusal reason = STK_REFUSAL_NONE;
	uint64_t h0, m0, h1, m1;
	struct stk_device d;
	int r;

	stk_token_cache_stats(&h0, &m0);
	r = stk_device_authenticate(f->b, tok, strlen(tok), cert_b ? f->certB : f->certA,
	    cert_b ? f->lenB : f->lenA, now, &d, &reason, &f->err);
	stk_token_cache_stats(&h1, &m1);
	if (want == STK_REFUSAL_NONE) {
		assert_int_equal(r, 0);
	} else {
		assert_int_not_equal(r, 0);
		assert_int_equal(reason, want);
	}
	if (hit >= 0)
		assert_int_equal(h1 > h0, hit);
	return r;
}
#define b_says(f, tok, now, want, hit) b_auth(f, 0, tok, now, want, hit)

FX_TEST(test_state_changes_on_a_refused_on_b_from_cache)
{
	/* Attacker 2 (thief of a client token whose device the administrator
	 * then blocks) and an administrator turning the gateway off: each
	 * change made on node A takes effect on node B's next request, while
	 * B's token check is a cache hit. */
	const char *tok = reg(f);
	struct stk_issued r1;
	enum stk_refusal reason = STK_REFUSAL_NONE;

	b_says(f, tok, f->t0, STK_REFUSAL_NONE, 0);   /* cold */
	b_says(f, tok, f->t0, STK_REFUSAL_NONE, 1);   /* warm */
	assert_int_equal(stk_device_set_blocked(f->a, f->is.dev.guid, 1, "t", &f->err), 0);
	b_says(f, tok, f->t0, STK_REFUSAL_DEVICE_BLOCKED, 1);
	assert_int_equal(stk_device_set_blocked(f->a, f->is.dev.guid, 0, "t", &f->err), 0);
	b_says(f, tok, f->t0, STK_REFUSAL_NONE, 1);

	assert_int_equal(stk_setting_set(f->a, STK_SETTING_ALLOW_CMG, "off", "t", &f->err), 0);
	b_says(f, tok, f->t0, STK_REFUSAL_CMG_DISABLED, 1);
	assert_int_equal(stk_device_set_allow_cmg(f->a, f->is.dev.guid, 1, "t", &f->err), 0);
	b_says(f, tok, f->t0, STK_REFUSAL_NONE, -1);
	assert_int_equal(stk_device_set_allow_cmg(f->a, f->is.dev.guid, 0, "t", &f->err), 0);
	b_says(f, tok, f->t0, STK_REFUSAL_CMG_DISABLED, -1);
	assert_int_equal(stk_device_set_allow_cmg(f->a, f->is.dev.guid, -1, "t", &f->err), 0);
	assert_int_equal(stk_setting_set(f->a, STK_SETTING_ALLOW_CMG, "on", "t", &f->err), 0);

	/* Renewal on A supersedes the cached token on B. */
	assert_int_equal(stk_device_renew(f->a, tok, strlen(tok), f->certA,
	    f->lenA, f->t0 + 31 * DAY, &r1, &reason, &f->err), 0);
	b_says(f, tok, f->t0 + 31 * DAY, STK_REFUSAL_SUPERSEDED, 1);
	b_says(f, r1.token, f->t0 + 31 * DAY, STK_REFUSAL_NONE, -1);
	stk_issued_clear(&r1);
}

FX_TEST(test_hit_applies_time_rules)
{
	/* A cached token is not valid past its exp: day 91 is refused as
	 * expired (the full check runs again), never served from the cache. */
	const char *tok = reg(f);

	b_says(f, tok, f->t0, STK_REFUSAL_NONE, -1);
	assert_int_equal(b_says(f, tok, f->t0 + 91 * DAY, STK_REFUSAL_TOKEN_EXPIRED, 0),
	    STK_E_TOKEN_EXPIRED);
}

FX_TEST(test_other_certificate_never_hits)
{
	/* Attacker 2 presents a token that was verified (and cached) for the
	 * device's certificate, with his own certificate: the cache key holds
	 * the certificate, so it is a miss and the binding refuses it. */
	const char *tok = reg(f);
	int i;

	b_says(f, tok, f->t0, STK_REFUSAL_NONE, -1);
	for (i = 0; i < 2; i++)
		assert_int_equal(b_auth(f, 1, tok, f->t0, STK_REFUSAL_BINDING, 0),
		    STK_E_TOKEN_BINDING);
}

FX_TEST(test_entry_of_a_key_no_longer_trusted_misses)
{
	/* When the key that signed a cached token leaves the verifier's key
	 * set (retired), the entry is not used. */
	const struct stk_verifier *v;
	const struct stk_signer *sg;
	struct stk_verifier *empty = NULL;
	struct stk_claims c;
	struct stk_error err;
	unsigned char key[32];

	memset(&c, 0, sizeof(c));
	c.type = STK_TOKEN_CLIENT;
	c.nbf = f->t0;
	c.exp = f->t0 + DAY;
	assert_int_equal(stk_site_verifier(f->a, &v, &err), 0);
	assert_int_equal(stk_verifier_new(stk_site_guid(f->a), &empty, &err), 0);
	site_tokcache_key(stk_site_guid(f->a), "x.y.z", 5, "thumb", key);
	assert_int_equal(stk_site_signer(f->a, &sg, &err), 0);
	snprintf(c.kid, sizeof(c.kid), "%s", stk_signer_kid(sg));
	site_tokcache_put(key, &c);
	assert_true(site_tokcache_get(key, f->t0, 60, v, &c));
	assert_false(site_tokcache_get(key, f->t0, 60, empty, &c));
	/* and it was dropped, not kept for later */
	assert_false(site_tokcache_get(key, f->t0, 60, v, &c));
	stk_verifier_free(empty);
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
sleep_s(double s)
{
	struct timespec ts;

	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* What another process does to the site: a forked child opens node A's
 * directory on its own connection, makes one change and exits. Returns
 * the monotonic time by which the change had committed. */
enum other_op { OTHER_BLOCK, OTHER_UNBLOCK, OTHER_CMG_OFF, OTHER_CMG_ON, OTHER_RENEW };

static double
other_process(struct fx *f, enum other_op op, const char *guid, const char *tok,
    int64_t now)
{
	char sub[PATH_MAX];
	pid_t pid;
	int st = 0;

	snprintf(sub, sizeof(sub), "%s/site", f->dir);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		struct stk_site *c = NULL;
		struct stk_error err;
		struct stk_issued is;
		enum stk_refusal reason;
		int r = 1;

		if (stk_site_open(sub, &c, &err) == 0) {
			switch (op) {
			case OTHER_BLOCK:
			case OTHER_UNBLOCK:
				r = stk_device_set_blocked(c, guid, op == OTHER_BLOCK, "t", &err);
				break;
			case OTHER_CMG_OFF:
			case OTHER_CMG_ON:
				r = stk_setting_set(c, STK_SETTING_ALLOW_CMG, op == OTHER_CMG_OFF ?
				    "off" : "on", "t", &err);
				break;
			case OTHER_RENEW:
				r = stk_device_renew(c, tok, strlen(tok), f->certA, f->lenA, now,
				    &is, &reason, &err);
				if (r == 0)
					stk_issued_clear(&is);
				break;
			}
			stk_site_close(c);
		}
		_exit(r == 0 ? 0 : 1);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	return mono();
}

/* Every request B starts 1 s after the other process committed. */
#define BOUND 1.0
#define MARGIN 0.05

static void
wait_bound(double committed)
{
	double left = committed + BOUND + MARGIN - mono();

	if (left > 0)
		sleep_s(left);
}

FX_TEST(test_other_process_change_refused_within_bound)
{
	/* Attacker 2 (thief of a client token whose device the administrator
	 * then blocks with the CLI, or from node A): B serves the device from
	 * its cache (no store read), yet refuses it on every request that
	 * starts 1 s after the block committed in another process. Without
	 * the generation counter or B's poll this stays accepted. */
	const char *tok = reg(f);
	enum stk_refusal reason = STK_REFUSAL_NONE;
	struct stk_device d;
	int64_t polled;
	uint64_t sh0;
	double t;
	int r;

	b_says(f, tok, f->t0, STK_REFUSAL_NONE, -1);
	sh0 = site_gw_state_hits();
	b_says(f, tok, f->t0, STK_REFUSAL_NONE, 1);
	assert_true(site_gw_state_hits() > sh0);   /* decided from the cache */

	t = other_process(f, OTHER_BLOCK, f->is.dev.guid, NULL, 0);
	/* Within the bound B may still answer from its cache, and must unless
	 * this very request polled the store (the cache is really in use).
	 * Asked after the request: a guess beforehand whether a poll is due
	 * failed when a loaded machine stalled between guess and request. */
	polled = f->b->gw.polled_at;
	sh0 = site_gw_state_hits();
	r = stk_device_authenticate(f->b, tok, strlen(tok), f->certA, f->lenA, f->t0, &d,
	    &reason, &f->err);
	if (f->b->gw.polled_at == polled) {
		assert_int_equal(r, 0);
		assert_true(site_gw_state_hits() > sh0);
	} else
		assert_int_equal(reason, STK_REFUSAL_DEVICE_BLOCKED);
	wait_bound(t);
	/* the claims still came from the cache (hit) */
	assert_int_equal(b_says(f, tok, f->t0, STK_REFUSAL_DEVICE_BLOCKED, 1), STK_E_AUTH);

	wait_bound(other_process(f, OTHER_UNBLOCK, f->is.dev.guid, NULL, 0));
	b_says(f, tok, f->t0, STK_REFUSAL_NONE, -1);
	wait_bound(other_process(f, OTHER_CMG_OFF, NULL, NULL, 0));
	b_says(f, tok, f->t0, STK_REFUSAL_CMG_DISABLED, -1);
	wait_bound(other_process(f, OTHER_CMG_ON, NULL, NULL, 0));
	b_says(f, tok, f->t0, STK_REFUSAL_NONE, -1);

	/* A renewal elsewhere supersedes the token B holds. */
	wait_bound(other_process(f, OTHER_RENEW, NULL, tok, f->t0 + 31 * DAY));
	b_says(f, tok, f->t0 + 31 * DAY, STK_REFUSAL_SUPERSEDED, -1);
}

/* ---- differential: cached decisions equal uncached ones ---- */

static uint64_t rng_state;

static unsigned int
rnd(unsigned int n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned int)(rng_state % n);
}

#define DIFF_STEPS 120
#define DIFF_TOKENS 6   /* the latest tokens of each device checked per step */
#define EK_SHA256 "5e1f2a9c0d7b43e8a6c1f0b29d8e7a6c5b4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f"

struct dtok {
	char *tok;
	int dev;        /* 0: certA's device, 1: certB's */
};

FX_TEST(test_cached_equals_uncached)
{
	/* The fast path (B: certificate and token hashes from a connection
	 * memo, claims and device state from the cache) and the general one
	 * (C: same site, cache off for this handle: verify and read the store
	 * every time) must give the same verdict, reason and device on every
	 * request, over a random sequence of blocks, allow-cmg changes (site
	 * and device), attestation-policy changes (the site's
	 * require-attestation, the bulk token's own policy; tokens with and
	 * without "att":"tpm"), renewals, re-registrations and clock moves
	 * made through node A. */
	struct stk_site *c = NULL;
	struct stk_error err;
	struct dtok toks[2 * DIFF_STEPS + 2];
	size_t ntok = 0, i, j, seen[2];
	char sub[PATH_MAX], guid[2][STK_GUID_LEN + 1];
	const unsigned char *cert[2] = { f->certA, f->certB };
	size_t clen[2] = { f->lenA, f->lenB };
	int64_t now = f->t0;
	uint64_t sh0 = site_gw_state_hits();
	int step, d, round, compared = 0;
	struct stk_gw_conn *memo[2] = { stk_gw_conn_new(), stk_gw_conn_new() };
	struct stk_bulk_record rec;
	char *bulk = NULL;
	const char *seed = getenv("STK_DIFF_SEED");

	assert_non_null(memo[0]);
	assert_non_null(memo[1]);
	rng_state = seed != NULL ? strtoull(seed, NULL, 10) : 0x5eed5eedULL;
	if (rng_state == 0)
		rng_state = 1;
	snprintf(sub, sizeof(sub), "%s/site", f->dir);
	if (stk_site_open(sub, &c, &err) != 0)
		fail_msg("handle C: %s", err.msg);
	c->gw.nocache = 1;
	/* Devices enrol with this token (registration via the CMG), so its own
	 * attestation policy applies to them at the gateway. */
	assert_int_equal(stk_bulk_new(f->a, 10080, "t", &bulk, &rec, &err), 0);
	/* Steps -2 and -1 register the two devices: A's key unattested, B's
	 * TPM-attested (its tokens say "att":"tpm"). */
	for (step = -2; step < DIFF_STEPS; step++) {
		struct stk_issued is;
		struct stk_reg_request rq;
		enum stk_refusal reason;
		int op = step < 0 ? 4 : (int)rnd(9), cmg, r = -1;

		d = step < 0 ? step + 2 : (int)rnd(2);
		memset(&is, 0, sizeof(is));
		switch (op) {
		case 0:
			(void)stk_device_set_blocked(f->a, guid[d], (int)rnd(2), "t", &err);
			break;
		case 1:
			(void)stk_setting_set(f->a, STK_SETTING_ALLOW_CMG, rnd(2) ? "on" : "off",
			    "t", &err);
			break;
		case 2:
			(void)stk_device_set_allow_cmg(f->a, guid[d], (int)rnd(3) - 1, "t", &err);
			break;
		case 3:
			/* Renew with the device's latest token. */
			for (i = ntok; i-- > 0;)
				if (toks[i].dev == d)
					break;
			r = stk_device_renew(f->a, toks[i].tok, strlen(toks[i].tok), cert[d],
			    clen[d], now, &is, &reason, &err);
			break;
		case 4:
			/* (Re-)registration, the key attested or not: over the CMG
			 * with the bulk token (refused when allow-cmg, attestation or
			 * the token's expiry say so), or over the MP without it (the
			 * device leaves the token's policy). */
			cmg = step < 0 || rnd(2) == 1;
			sf_tls_request(&rq, cmg ? STK_VIA_CMG : STK_VIA_MP, cert[d], clen[d],
			    cmg ? bulk : NULL);
			rq.peer = "test";
			if (step < 0 ? d == 1 : rnd(2) == 1) {
				rq.attestation = "tpm";
				rq.ek_sha256 = EK_SHA256;
			}
			r = stk_device_register(f->a, &rq, now, &is, &reason, &err);
			if (r != 0 && step < 0)
				fail_msg("register: %s", err.msg);
			break;
		case 5:
			/* The bulk token's own policy: required, not, the site's. */
			(void)stk_bulk_set_require_attestation(f->a, rec.guid, (int)rnd(3) - 1,
			    "t", &err);
			break;
		case 6:
			(void)stk_setting_set(f->a, STK_SETTING_REQUIRE_ATTESTATION,
			    rnd(2) ? "on" : "off", "t", &err);
			break;
		default:
			now += (int64_t)rnd(20) * DAY + (int64_t)rnd(3600);
			break;
		}
		if (r == 0) {   /* a new token of device d */
			snprintf(guid[d], sizeof(guid[d]), "%s", is.dev.guid);
			toks[ntok].tok = is.token;
			toks[ntok++].dev = d;
			is.token = NULL;
		}
		stk_issued_clear(&is);
		/* Every recent token of each device, with each certificate; twice,
		 * so the second round finds the state the first one cached. */
		for (round = 0; round < 2; round++) {
			seen[0] = seen[1] = 0;
			for (i = ntok; i-- > 0;) {
				if (seen[toks[i].dev]++ >= DIFF_TOKENS)
					continue;
				for (j = 0; j < 2; j++) {
					struct stk_device db, dc;
					enum stk_refusal rb = STK_REFUSAL_NONE, rc = STK_REFUSAL_NONE;
					int xb, xc;

					/* B through a per-connection memo, as the server: the
					 * memo's certificate changes on alternate steps (a
					 * renegotiation) and its token on most calls. */
					xb = stk_device_authenticate_conn(f->b, memo[(j + (size_t)step) % 2],
					    toks[i].tok, strlen(toks[i].tok), cert[j], clen[j], now, &db,
					    &rb, &err);
					xc = stk_device_authenticate(c, toks[i].tok, strlen(toks[i].tok),
					    cert[j], clen[j], now, &dc, &rc, &err);
					if (xb != xc || rb != rc)
						fail_msg("step %d op %d: token %zu cert %zu: cached %d/%s, "
						    "uncached %d/%s", step, op, i, j, xb, stk_refusal_code(rb),
						    xc, stk_refusal_code(rc));
					if (xb == 0 && (strcmp(db.guid, dc.guid) != 0 ||
					    strcmp(db.last_jti, dc.last_jti) != 0 ||
					    db.token_exp != dc.token_exp || db.blocked != dc.blocked ||
					    db.last_issued_at != dc.last_issued_at))
						fail_msg("step %d: accepted with another device state", step);
					compared++;
				}
			}
		}
	}
	/* The fast path really decided many of these (not a fixed share: a
	 * step slower than the 1 s poll interval, on a loaded machine, sees its
	 * own change once more through the poll and re-reads the state). */
	assert_true(compared > 0);
	assert_true(site_gw_state_hits() - sh0 > DIFF_STEPS);
	for (i = 0; i < ntok; i++)
		stk_token_free(toks[i].tok);
	stk_token_free(bulk);
	stk_gw_conn_free(memo[0]);
	stk_gw_conn_free(memo[1]);
	stk_site_close(c);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_state_changes_on_a_refused_on_b_from_cache), T(test_hit_applies_time_rules),
		T(test_other_certificate_never_hits), T(test_entry_of_a_key_no_longer_trusted_misses),
		T(test_other_process_change_refused_within_bound), T(test_cached_equals_uncached),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
