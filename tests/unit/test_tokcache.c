/* The gateway's verified-token cache (site/registration/tokcache.c) through
 * stk_device_authenticate on two nodes of one site: node A (the handle
 * that registers and administers) and node B (the gateway that serves from
 * its cache). On SQLite B is a second handle on the same store; with
 * SITETOKEN_DB (ctest label pg) B is a real second node (stk_site_node_add)
 * on its own connection. Every change made on A must be refused on B at the
 * very next request while B answers the token check from its cache: the
 * documented staleness for device state is zero. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sitetoken/cert.h"
#include "sitetoken/device.h"
#include "sitetoken/site.h"
#include "sitetoken/token.h"
#include "site_int.h"
#include "testutil.h"
#include "site_fixture.h"

#define DAY 86400

struct fx {
	char *dir;
	struct stk_site *a, *b;
	unsigned char *certA, *certB;
	size_t lenA, lenB;
	int64_t t0;
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

	stk_site_close(f->b);
	sf_site_done(f->a, f->dir);
	free(f->certA);
	free(f->certB);
	free(f);
	return 0;
}

static void
reg(struct fx *f, struct stk_issued *out)
{
	struct stk_reg_request rq;
	struct stk_error err;
	enum stk_refusal reason;

	/* The MP over TLS: the handshake proved the key (proof of possession). */
	sf_tls_request(&rq, STK_VIA_MP, f->certA, f->lenA, NULL);
	rq.peer = "test";
	if (stk_device_register(f->a, &rq, f->t0, out, &reason, &err) != 0)
		fail_msg("register: %s", err.msg);
}

/* Authenticate on node B; *hit: whether the token check was a cache hit. */
static int
auth_b(struct fx *f, const char *tok, const unsigned char *cert, size_t len,
    int64_t now, enum stk_refusal *reason, int *hit)
{
	uint64_t h0, m0, h1, m1;
	struct stk_device d;
	struct stk_error err;
	int r;

	stk_token_cache_stats(&h0, &m0);
	r = stk_device_authenticate(f->b, tok, strlen(tok), cert, len, now, &d, reason,
	    &err);
	stk_token_cache_stats(&h1, &m1);
	*hit = h1 > h0;
	return r;
}

static void
test_state_changes_on_a_refused_on_b_from_cache(void **state)
{
	/* Attacker 2 (thief of a client token whose device the administrator
	 * then blocks) and an administrator turning the gateway off: each
	 * change made on node A takes effect on node B's next request, while
	 * B's token check is a cache hit. */
	struct fx *f = *state;
	struct stk_issued a, r1;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	int hit;

	reg(f, &a);
	assert_int_equal(auth_b(f, a.token, f->certA, f->lenA, f->t0, &reason, &hit), 0);
	assert_false(hit);                  /* cold */
	assert_int_equal(auth_b(f, a.token, f->certA, f->lenA, f->t0, &reason, &hit), 0);
	assert_true(hit);                   /* warm */

	assert_int_equal(stk_device_set_blocked(f->a, a.dev.guid, 1, "t", &err), 0);
	assert_int_not_equal(auth_b(f, a.token, f->certA, f->lenA, f->t0, &reason, &hit), 0);
	assert_true(hit);
	assert_int_equal(reason, STK_REFUSAL_DEVICE_BLOCKED);
	assert_int_equal(stk_device_set_blocked(f->a, a.dev.guid, 0, "t", &err), 0);
	assert_int_equal(auth_b(f, a.token, f->certA, f->lenA, f->t0, &reason, &hit), 0);
	assert_true(hit);

	assert_int_equal(stk_setting_set(f->a, STK_SETTING_ALLOW_CMG, "off", "t", &err), 0);
	assert_int_not_equal(auth_b(f, a.token, f->certA, f->lenA, f->t0, &reason, &hit), 0);
	assert_true(hit);
	assert_int_equal(reason, STK_REFUSAL_CMG_DISABLED);
	assert_int_equal(stk_device_set_allow_cmg(f->a, a.dev.guid, 1, "t", &err), 0);
	assert_int_equal(auth_b(f, a.token, f->certA, f->lenA, f->t0, &reason, &hit), 0);
	assert_int_equal(stk_device_set_allow_cmg(f->a, a.dev.guid, 0, "t", &err), 0);
	assert_int_not_equal(auth_b(f, a.token, f->certA, f->lenA, f->t0, &reason, &hit), 0);
	assert_int_equal(reason, STK_REFUSAL_CMG_DISABLED);
	assert_int_equal(stk_device_set_allow_cmg(f->a, a.dev.guid, -1, "t", &err), 0);
	assert_int_equal(stk_setting_set(f->a, STK_SETTING_ALLOW_CMG, "on", "t", &err), 0);

	/* Renewal on A supersedes the cached token on B. */
	assert_int_equal(stk_device_renew(f->a, a.token, strlen(a.token), f->certA,
	    f->lenA, f->t0 + 31 * DAY, &r1, &reason, &err), 0);
	assert_int_not_equal(auth_b(f, a.token, f->certA, f->lenA, f->t0 + 31 * DAY,
	    &reason, &hit), 0);
	assert_true(hit);
	assert_int_equal(reason, STK_REFUSAL_SUPERSEDED);
	assert_int_equal(auth_b(f, r1.token, f->certA, f->lenA, f->t0 + 31 * DAY,
	    &reason, &hit), 0);
	stk_issued_clear(&a);
	stk_issued_clear(&r1);
}

static void
test_hit_applies_time_rules(void **state)
{
	/* A cached token is not valid past its exp: day 91 is refused as
	 * expired (the full check runs again), never served from the cache. */
	struct fx *f = *state;
	struct stk_issued a;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	int hit;

	reg(f, &a);
	assert_int_equal(auth_b(f, a.token, f->certA, f->lenA, f->t0, &reason, &hit), 0);
	assert_int_equal(auth_b(f, a.token, f->certA, f->lenA, f->t0 + 91 * DAY,
	    &reason, &hit), STK_E_TOKEN_EXPIRED);
	assert_false(hit);
	assert_int_equal(reason, STK_REFUSAL_TOKEN_EXPIRED);
	stk_issued_clear(&a);
}

static void
test_other_certificate_never_hits(void **state)
{
	/* Attacker 2 presents a token that was verified (and cached) for the
	 * device's certificate, with his own certificate: the cache key holds
	 * the certificate, so it is a miss and the binding refuses it. */
	struct fx *f = *state;
	struct stk_issued a;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	int hit, i;

	reg(f, &a);
	assert_int_equal(auth_b(f, a.token, f->certA, f->lenA, f->t0, &reason, &hit), 0);
	for (i = 0; i < 2; i++) {
		assert_int_equal(auth_b(f, a.token, f->certB, f->lenB, f->t0, &reason,
		    &hit), STK_E_TOKEN_BINDING);
		assert_false(hit);
		assert_int_equal(reason, STK_REFUSAL_BINDING);
	}
	stk_issued_clear(&a);
}

static void
test_entry_of_a_key_no_longer_trusted_misses(void **state)
{
	/* When the key that signed a cached token leaves the verifier's key
	 * set (retired), the entry is not used. */
	struct fx *f = *state;
	const struct stk_verifier *v;
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
	{
		const struct stk_signer *sg;

		assert_int_equal(stk_site_signer(f->a, &sg, &err), 0);
		snprintf(c.kid, sizeof(c.kid), "%s", stk_signer_kid(sg));
	}
	site_tokcache_put(key, &c);
	assert_true(site_tokcache_get(key, f->t0, 60, v, &c));
	assert_false(site_tokcache_get(key, f->t0, 60, empty, &c));
	/* and it was dropped, not kept for later */
	assert_false(site_tokcache_get(key, f->t0, 60, v, &c));
	stk_verifier_free(empty);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_state_changes_on_a_refused_on_b_from_cache,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_hit_applies_time_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_certificate_never_hits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_entry_of_a_key_no_longer_trusted_misses,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
