/* Two renewals of the same token racing on two site handles (two nodes, or
 * two store connections): fault injection with --wrap=stk_site_tx_begin
 * runs the other node's whole renewal between this node's read of the
 * device and its write. The write re-checks the device's latest jti, so one
 * renewal wins and the other is refused token_superseded. Before, both were
 * issued and the first node's device held a dead token (issue 15, item 2). */
#include "site_fixture.h"

int __real_stk_site_tx_begin(struct stk_site *s, struct stk_error *err);

static struct {
	struct stk_site *victim, *other;   /* race when victim takes the lock */
	const char *token;
	const unsigned char *cert;
	size_t len;
	int64_t now;
	int armed, other_rc;
	struct stk_issued other_out;
} race;

/* The other node's renewal commits just before this one takes the write
 * lock for its own write. */
int
__wrap_stk_site_tx_begin(struct stk_site *s, struct stk_error *err)
{
	enum stk_refusal why;
	struct stk_error e;

	if (race.armed && s == race.victim) {
		race.armed = 0;
		race.other_rc = stk_device_renew(race.other, race.token, strlen(race.token),
		    race.cert, race.len, race.now, &race.other_out, &why, &e);
	}
	return __real_stk_site_tx_begin(s, err);
}

static void
test_concurrent_renewal_one_winner(void **state)
{
	struct sf_fx *f = *state;
	struct stk_site *s1 = f->s, *s2 = NULL;
	struct stk_reg_request rq;
	struct stk_issued a, mine;
	struct stk_device d;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	const unsigned char *der = f->cert;
	size_t len = f->len;
	char sub[PATH_MAX];
	int64_t t0 = f->t0;

	snprintf(sub, sizeof(sub), "%s/site", f->dir);
	assert_int_equal(stk_site_open(sub, &s2, &err), 0);
	/* Registered over the MP (TLS: the handshake proved the key), then
	 * used once at the gateway, as a device does before renewing. */
	sf_tls_request(&rq, STK_VIA_MP, der, len, NULL);
	assert_int_equal(stk_device_register(s1, &rq, t0, &a, &reason, &err), 0);
	assert_int_equal(stk_device_authenticate(s1, a.token, strlen(a.token), der, len,
	    t0 + 1, &d, &reason, &err), 0);

	memset(&race, 0, sizeof(race));
	race.victim = s1;
	race.other = s2;
	race.token = a.token;
	race.cert = der;
	race.len = len;
	race.now = t0 + 31 * 86400;
	race.other_rc = -1;
	race.armed = 1;
	assert_int_not_equal(stk_device_renew(s1, a.token, strlen(a.token), der, len,
	    t0 + 31 * 86400, &mine, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_SUPERSEDED);
	assert_null(mine.token);
	assert_int_equal(race.other_rc, 0);
	/* The winner's token is the device's one valid token. */
	assert_int_equal(stk_device_get(s1, a.dev.guid, &d, &err), 0);
	assert_string_equal(d.last_jti, race.other_out.dev.last_jti);
	assert_int_equal(stk_device_authenticate(s1, race.other_out.token,
	    strlen(race.other_out.token), der, len, t0 + 31 * 86400 + 1, &d, &reason, &err), 0);

	stk_issued_clear(&race.other_out);
	stk_issued_clear(&a);
	stk_site_close(s2);
}

TU_MAIN(NULL, NULL,
	cmocka_unit_test_setup_teardown(test_concurrent_renewal_one_winner, sf_setup_dev,
	    sf_teardown))
