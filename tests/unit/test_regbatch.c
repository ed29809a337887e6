/* Group commit of registrations (stk_site_batch_*, used by serve): the same
 * registrations committed one by one and as savepoints of one batch give
 * the same outcome: a --max-uses 2 token used exactly twice, the later ones
 * refused bulk_token_exhausted (audited), a re-registration inside the
 * batch sees the row an earlier item wrote (no second use), an item that
 * is refused leaves the others' work in place, and the audit chain
 * verifies (checkpoint signed after the batch's commit). Differential: the
 * two runs are compared item by item. And the token signed ahead of the
 * commit (test_presign). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "sitetoken/bulklimits.h"
#include "sitetoken/device.h"
#include "sitetoken/site.h"
#include "testutil.h"
#include "site_fixture.h"

#define NCERT 4
#define NITEM 6

struct outcome {
	int r;
	enum stk_refusal reason;
	int new_device;
	char guid[40];
};

/* One site: register certs 0,1,2,3 then 0 again and 1 again with one
 * --max-uses 2 token, batched or not; the token is used exactly twice. */
static void
run(int batched, struct outcome out[NITEM])
{
	static const int order[NITEM] = { 0, 1, 2, 0, 3, 1 };
	char *dir = tu_tmpdir("regbatch");
	struct stk_site *s = sf_site_init(dir);
	unsigned char *der[NCERT];
	size_t len[NCERT];
	struct stk_bulk_limits lim;
	struct stk_bulk_record rec;
	struct stk_reg_request rq[NITEM];
	struct stk_reg_checked chk[NITEM];
	struct stk_issued is;
	struct stk_audit_report rep;
	struct stk_error err;
	enum stk_refusal reason;
	char *bulk = NULL, name[8];
	int64_t t0 = stk_now();
	long uses = -1;
	int i;

	for (i = 0; i < NCERT; i++) {
		snprintf(name, sizeof(name), "d%d", i);
		sf_device_cert(dir, name, t0, 30, &der[i], &len[i]);
	}
	memset(&lim, 0, sizeof(lim));
	lim.max_uses = 2;
	assert_int_equal(stk_bulk_new_limited(s, 60, &lim, "t", &bulk, &rec, &err), 0);
	/* The checks first (as the server's workers do, before the commit). */
	for (i = 0; i < NITEM; i++) {
		sf_tls_request(&rq[i], STK_VIA_CMG, der[order[i]], len[order[i]],
		    bulk);
		rq[i].peer = "192.0.2.1";
		assert_int_equal(stk_device_register_check(s, &rq[i], t0, &chk[i], &reason,
		    &err), 0);
	}
	if (batched)
		assert_int_equal(stk_site_batch_begin(s, &err), 0);
	for (i = 0; i < NITEM; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		out[i].r = stk_device_register_commit(s, &rq[i], &chk[i], t0, &is,
		    &out[i].reason, &err);
		out[i].new_device = is.new_device;
		snprintf(out[i].guid, sizeof(out[i].guid), "%s", is.dev.guid);
		stk_issued_clear(&is);
		stk_reg_checked_clear(&chk[i]);
	}
	if (batched)
		assert_int_equal(stk_site_batch_end(s, &err), 0);
	assert_int_equal(stk_bulk_limits_get(s, rec.guid, &lim, &uses, &err), 0);
	assert_int_equal(uses, 2);      /* the token used exactly twice */
	assert_true(stk_audit_verify(s, &rep, &err) >= 0);
	assert_string_equal(rep.problem, "");
	stk_token_free(bulk);
	for (i = 0; i < NCERT; i++)
		free(der[i]);
	sf_site_done(s, dir);
}

static void
test_batch_same_as_one_by_one(void **state)
{
	struct outcome one[NITEM], bat[NITEM];
	int i;

	(void)state;
	run(0, one);
	run(1, bat);
	for (i = 0; i < NITEM; i++) {
		assert_int_equal(one[i].r, bat[i].r);
		assert_int_equal(one[i].reason, bat[i].reason);
		assert_int_equal(one[i].new_device, bat[i].new_device);
	}
	/* d0, d1 new; d2 exhausted; d0 again: the same device, no use;
	 * d3 exhausted; d1 again: the same device. */
	assert_int_equal(bat[0].r, 0);
	assert_int_equal(bat[1].r, 0);
	assert_int_equal(bat[2].reason, STK_REFUSAL_BULK_EXHAUSTED);
	assert_int_equal(bat[3].r, 0);
	assert_int_equal(bat[3].new_device, 0);
	assert_string_equal(bat[3].guid, bat[0].guid);
	assert_int_equal(bat[4].reason, STK_REFUSAL_BULK_EXHAUSTED);
	assert_int_equal(bat[5].r, 0);
	assert_string_equal(bat[5].guid, bat[1].guid);
}

/* Nothing of an unfinished batch is visible to another handle (durable
 * only at stk_site_batch_end). */
static void
test_batch_not_visible_before_end(void **state)
{
	struct sf_fx *f = *state;
	struct stk_site *o = NULL;
	struct stk_reg_request rq;
	struct stk_reg_checked chk;
	struct stk_issued is;
	struct stk_device d;
	struct stk_error err;
	enum stk_refusal reason;
	char sub[PATH_MAX + 8];

	snprintf(sub, sizeof(sub), "%s/site", f->dir);
	assert_int_equal(stk_site_open(sub, &o, &err), 0);
	sf_tls_request(&rq, STK_VIA_MP, f->cert, f->len, NULL);
	assert_int_equal(stk_device_register_check(f->s, &rq, f->t0, &chk, &reason, &err), 0);
	assert_int_equal(stk_site_batch_begin(f->s, &err), 0);
	assert_int_equal(stk_device_register_commit(f->s, &rq, &chk, f->t0, &is, &reason,
	    &err), 0);
	assert_int_equal(stk_device_get(o, is.dev.guid, &d, &err), STK_E_NOTFOUND);
	assert_int_equal(stk_site_batch_end(f->s, &err), 0);
	assert_int_equal(stk_device_get(o, is.dev.guid, &d, &err), 0);
	stk_issued_clear(&is);
	stk_reg_checked_clear(&chk);
	stk_site_close(o);
}

/* Signing ahead (stk_device_register_presign, outside serve's lock): the
 * commit takes the pre-signed token when the device GUID and the signer
 * are the ones it was signed for; when another registration of the same
 * certificate made the device meanwhile, the commit signs again for the
 * device's real GUID (the pre-signed token, for a GUID that does not
 * exist, is never handed out). */
static void
test_presign(void **state)
{
	struct sf_fx *f = *state;
	struct stk_site *s = f->s;
	const struct stk_signer *sg = NULL;
	struct stk_reg_request rq;
	struct stk_reg_checked c1, c2;
	struct stk_issued a, b;
	struct stk_device d;
	struct stk_error err;
	enum stk_refusal reason;
	char pre_jti[40], pre_guid[40];
	int64_t t0 = f->t0;

	assert_int_equal(stk_site_signer(s, &sg, &err), 0);
	sf_tls_request(&rq, STK_VIA_MP, f->cert, f->len, NULL);
	/* Matching: the pre-signed token is the one issued. */
	assert_int_equal(stk_device_register_check(s, &rq, t0, &c1, &reason, &err), 0);
	assert_int_equal(stk_device_register_presign(s, sg, &rq, t0, &c1, &err), 0);
	assert_non_null(c1.token);
	snprintf(pre_jti, sizeof(pre_jti), "%s", c1.jti);
	snprintf(pre_guid, sizeof(pre_guid), "%s", c1.guid);
	assert_int_equal(stk_device_register_commit(s, &rq, &c1, t0, &a, &reason, &err), 0);
	assert_string_equal(a.dev.last_jti, pre_jti);
	assert_string_equal(a.dev.guid, pre_guid);
	assert_int_equal(stk_device_authenticate(s, a.token, strlen(a.token), f->cert, f->len,
	    t0, &d, &reason, &err), 0);
	stk_reg_checked_clear(&c1);
	/* Stale: signed ahead as a new device (checked on a state where the
	 * device did not exist), committed after it exists. */
	memset(&c2, 0, sizeof(c2));
	assert_int_equal(stk_device_register_check(s, &rq, t0 + 1, &c2, &reason, &err), 0);
	assert_int_equal(stk_device_register_presign(s, sg, &rq, t0 + 1, &c2, &err), 0);
	assert_string_equal(c2.guid, a.dev.guid); /* known device: its GUID */
	snprintf(c2.guid, sizeof(c2.guid), "%s", "00000000-0000-4000-8000-000000000000");
	c2.guid_new = 1;
	snprintf(pre_jti, sizeof(pre_jti), "%s", c2.jti);
	assert_int_equal(stk_device_register_commit(s, &rq, &c2, t0 + 1, &b, &reason, &err), 0);
	assert_string_equal(b.dev.guid, a.dev.guid);
	assert_string_not_equal(b.dev.last_jti, pre_jti);
	assert_int_equal(stk_device_authenticate(s, b.token, strlen(b.token), f->cert, f->len,
	    t0 + 1, &d, &reason, &err), 0);
	assert_string_equal(d.guid, a.dev.guid);
	stk_reg_checked_clear(&c2);
	stk_issued_clear(&a);
	stk_issued_clear(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_same_as_one_by_one),
		cmocka_unit_test_setup_teardown(test_batch_not_visible_before_end, sf_setup_dev,
		    sf_teardown),
		cmocka_unit_test_setup_teardown(test_presign, sf_setup_dev, sf_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
