/* Device policy (site/device.c) without HTTP: registration, gateway checks,
 * renewal, settings, and that each change is audited with it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "sitetoken/cert.h"
#include "sitetoken/device.h"
#include "sitetoken/site.h"
#include "testutil.h"

#define DAY 86400

struct fx {
	char *dir;
	struct stk_site *s;
	unsigned char *certA, *certB;
	size_t lenA, lenB;
	int64_t t0;
};

static void
make_cert(struct fx *f, const char *name, unsigned char **der, size_t *len)
{
	struct stk_key_opts ko;
	struct stk_key *k = NULL;
	struct stk_error err;
	char path[PATH_MAX], *uri = NULL;

	memset(&ko, 0, sizeof(ko));
	snprintf(path, sizeof(path), "%s/%s.key", f->dir, name);
	if (stk_key_generate("file", path, STK_KEY_P256, &ko, &k, &uri, &err) != 0)
		fail_msg("device key: %s", err.msg);
	if (stk_cert_make_self_signed(k, name, "test device", f->t0, 365, der, len, &err) != 0)
		fail_msg("device cert: %s", err.msg);
	stk_key_close(k);
	free(uri);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct stk_site_init_opts io;
	struct stk_error err;
	char sub[PATH_MAX];

	memset(&io, 0, sizeof(io));
	io.backend = "file";
	io.key_type = STK_KEY_P256;
	io.actor = "tester";
	f->dir = tu_tmpdir("device");
	f->t0 = stk_now();
	snprintf(sub, sizeof(sub), "%s/site", f->dir);
	if (stk_site_init(sub, &io, &f->s, &err) != 0)
		fail_msg("site init: %s", err.msg);
	make_cert(f, "a", &f->certA, &f->lenA);
	make_cert(f, "b", &f->certB, &f->lenB);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	stk_site_close(f->s);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f->certA);
	free(f->certB);
	free(f);
	return 0;
}

/* Counted through the public API only, so the test does not depend on the
 * store behind the site. */
struct audit_match {
	const char *event, *outcome; /* NULL matches any */
	int n;
};

static int
audit_count_cb(void *ctx, const struct stk_audit_record *r)
{
	struct audit_match *m = ctx;

	if ((m->event == NULL || strcmp(r->event, m->event) == 0) &&
	    (m->outcome == NULL || strcmp(r->outcome, m->outcome) == 0))
		m->n++;
	return 0;
}

static int
audit_count(struct fx *f, const char *event, const char *outcome)
{
	struct audit_match m = { event, outcome, 0 };
	struct stk_error err;

	assert_int_equal(stk_audit_foreach(f->s, audit_count_cb, &m, &err), 0);
	return m.n;
}

static int
dev_count_cb(void *ctx, const struct stk_device *d)
{
	(void)d;
	(*(int *)ctx)++;
	return 0;
}

static int
device_count(struct fx *f)
{
	struct stk_error err;
	int n = 0;

	assert_int_equal(stk_device_foreach(f->s, dev_count_cb, &n, &err), 0);
	return n;
}

static void
reg_mp(struct fx *f, const unsigned char *der, size_t len, int64_t now,
    struct stk_issued *out)
{
	struct stk_reg_request rq;
	struct stk_error err;
	enum stk_refusal reason;

	memset(&rq, 0, sizeof(rq));
	rq.via = STK_VIA_MP;
	rq.cert_der = der;
	rq.cert_len = len;
	rq.peer = "test";
	if (stk_device_register(f->s, &rq, now, out, &reason, &err) != 0)
		fail_msg("register: %s", err.msg);
}

static void
test_register_mp(void **state)
{
	struct fx *f = *state;
	struct stk_issued a, again;
	struct stk_device d;
	struct stk_error err;
	char x5t[44];

	reg_mp(f, f->certA, f->lenA, f->t0, &a);
	assert_true(a.new_device);
	assert_non_null(a.token);
	assert_string_equal(a.dev.via, "mp");
	assert_int_equal(a.dev.token_exp - a.dev.last_issued_at, 90 * DAY);
	stk_cert_x5t_s256(f->certA, f->lenA, x5t);
	assert_string_equal(a.dev.thumbprint, x5t);
	assert_int_equal(stk_device_get(f->s, a.dev.guid, &d, &err), 0);
	assert_int_equal(d.allow_cmg, -1);
	/* Same certificate again: same device, new token, one row. */
	reg_mp(f, f->certA, f->lenA, f->t0 + 10, &again);
	assert_false(again.new_device);
	assert_string_equal(again.dev.guid, a.dev.guid);
	assert_string_not_equal(again.dev.last_jti, a.dev.last_jti);
	assert_int_equal(device_count(f), 1);
	assert_int_equal(audit_count(f, "device.register.mp", "ok"), 2);
	stk_issued_clear(&a);
	stk_issued_clear(&again);
}

static void
test_register_refusals(void **state)
{
	struct fx *f = *state;
	struct stk_reg_request rq;
	struct stk_issued out;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	unsigned char junk[8] = { 0x30, 0x03, 1, 2, 3, 4, 5, 6 };

	memset(&rq, 0, sizeof(rq));
	rq.via = STK_VIA_MP;
	rq.cert_der = junk;
	rq.cert_len = sizeof(junk);
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_BAD_CERTIFICATE);
	/* CMG: certificate but no bulk token. */
	rq.via = STK_VIA_CMG;
	rq.cert_der = f->certA;
	rq.cert_len = f->lenA;
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_NO_TOKEN);
	/* CMG: no certificate at all. */
	rq.cert_der = NULL;
	rq.cert_len = 0;
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_NO_CLIENT_CERT);
	/* HTTPS MP needs a credential. */
	rq.via = STK_VIA_MP;
	rq.cert_der = f->certA;
	rq.cert_len = f->lenA;
	rq.require_credential = 1;
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_CREDENTIAL);
	rq.trusted_credential = 1;
	assert_int_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	stk_issued_clear(&out);
	/* Internal registration off. */
	assert_int_equal(stk_setting_set(f->s, STK_SETTING_INTERNAL_REG, "off", "t", &err), 0);
	rq.require_credential = 0;
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_INTERNAL_DISABLED);
	assert_int_equal(device_count(f), 1);
	assert_int_equal(audit_count(f, NULL, "refused"), 5);
}

static void
test_cmg_bulk_and_auth(void **state)
{
	struct fx *f = *state;
	struct stk_reg_request rq;
	struct stk_bulk_record rec;
	struct stk_issued a;
	struct stk_device d;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	char *bulk = NULL;

	assert_int_equal(stk_bulk_new(f->s, 60, "t", &bulk, &rec, &err), 0);
	memset(&rq, 0, sizeof(rq));
	rq.via = STK_VIA_CMG;
	rq.cert_der = f->certA;
	rq.cert_len = f->lenA;
	rq.bulk_token = bulk;
	rq.bulk_len = strlen(bulk);
	assert_int_equal(stk_device_register(f->s, &rq, f->t0, &a, &reason, &err), 0);
	assert_string_equal(a.dev.via, "cmg");
	assert_string_equal(a.dev.bulk_guid, rec.guid);
	/* Bound to A: accepted with A, refused with B. */
	assert_int_equal(stk_device_authenticate(f->s, a.token, strlen(a.token), f->certA,
	    f->lenA, f->t0, &d, &reason, &err), 0);
	assert_int_equal(stk_device_authenticate(f->s, a.token, strlen(a.token), f->certB,
	    f->lenB, f->t0, &d, &reason, &err), STK_E_TOKEN_BINDING);
	assert_int_equal(reason, STK_REFUSAL_BINDING);
	/* The bulk token is not a client token. */
	assert_int_not_equal(stk_device_authenticate(f->s, bulk, strlen(bulk), f->certA,
	    f->lenA, f->t0, &d, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_TOKEN_TYPE);
	/* allow-cmg: site off, device override on, back to default. */
	assert_int_equal(stk_setting_set(f->s, STK_SETTING_ALLOW_CMG, "off", "t", &err), 0);
	assert_int_not_equal(stk_device_authenticate(f->s, a.token, strlen(a.token),
	    f->certA, f->lenA, f->t0, &d, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_CMG_DISABLED);
	assert_int_equal(stk_device_set_allow_cmg(f->s, a.dev.guid, 1, "t", &err), 0);
	assert_int_equal(stk_device_authenticate(f->s, a.token, strlen(a.token), f->certA,
	    f->lenA, f->t0, &d, &reason, &err), 0);
	assert_int_equal(stk_device_set_allow_cmg(f->s, a.dev.guid, -1, "t", &err), 0);
	assert_int_not_equal(stk_device_authenticate(f->s, a.token, strlen(a.token),
	    f->certA, f->lenA, f->t0, &d, &reason, &err), 0);
	assert_int_equal(stk_setting_set(f->s, STK_SETTING_ALLOW_CMG, "on", "t", &err), 0);
	/* Blocked device; blocked bulk token. */
	assert_int_equal(stk_device_set_blocked(f->s, a.dev.guid, 1, "t", &err), 0);
	assert_int_not_equal(stk_device_authenticate(f->s, a.token, strlen(a.token),
	    f->certA, f->lenA, f->t0, &d, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_DEVICE_BLOCKED);
	assert_int_equal(stk_device_set_blocked(f->s, a.dev.guid, 0, "t", &err), 0);
	assert_int_equal(stk_bulk_set_blocked(f->s, rec.guid, 1, "t", &err), 0);
	rq.cert_der = f->certB;
	rq.cert_len = f->lenB;
	stk_issued_clear(&a);
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &a, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_BULK_BLOCKED);
	/* Unknown settings are refused. */
	assert_int_equal(stk_setting_set(f->s, "nope", "on", "t", &err), STK_E_ARG);
	assert_int_equal(stk_setting_set(f->s, STK_SETTING_ALLOW_CMG, "maybe", "t", &err),
	    STK_E_ARG);
	stk_token_free(bulk);
}

static void
test_renewal_window(void **state)
{
	struct fx *f = *state;
	struct stk_issued a, r1, r2;
	struct stk_device d;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;

	reg_mp(f, f->certA, f->lenA, f->t0, &a);
	/* Day 31: renewed, valid 90 days from renewal; the old token is replaced. */
	assert_int_equal(stk_device_renew(f->s, a.token, strlen(a.token), f->certA, f->lenA,
	    f->t0 + 31 * DAY, &r1, &reason, &err), 0);
	assert_int_equal(r1.dev.token_exp, f->t0 + 121 * DAY);
	assert_string_equal(r1.dev.guid, a.dev.guid);
	assert_int_not_equal(stk_device_authenticate(f->s, a.token, strlen(a.token),
	    f->certA, f->lenA, f->t0 + 31 * DAY, &d, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_SUPERSEDED);
	/* Renewal with another certificate: refused. */
	assert_int_not_equal(stk_device_renew(f->s, r1.token, strlen(r1.token), f->certB,
	    f->lenB, f->t0 + 32 * DAY, &r2, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_BINDING);
	/* 91 days after the renewal: expired, renewal refused with the hint. */
	assert_int_not_equal(stk_device_renew(f->s, r1.token, strlen(r1.token), f->certA,
	    f->lenA, f->t0 + 122 * DAY, &r2, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_TOKEN_EXPIRED);
	assert_non_null(strstr(err.msg, "internal network"));
	assert_null(r2.token);
	assert_int_equal(audit_count(f, "device.renew", "ok"), 1);
	assert_int_equal(audit_count(f, "device.renew", "refused"), 2);
	stk_issued_clear(&a);
	stk_issued_clear(&r1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_mp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmg_bulk_and_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renewal_window, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
