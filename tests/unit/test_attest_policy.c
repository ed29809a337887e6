/* Attested registration, the site's policy (site/registration/attest_policy.c) without
 * HTTP or a TPM: which registrations need attestation (site default, per
 * bulk token), that an unattested one is refused and audited when they do,
 * and what an attested device is recorded and issued with. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "sitetoken/attest_policy.h"
#include "sitetoken/cert.h"
#include "sitetoken/device.h"
#include "sitetoken/site.h"
#include "sitetoken/token.h"
#include "testutil.h"
#include "site_fixture.h"

#define EK_HASH "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

struct fx {
	char *dir;
	struct stk_site *s;
	unsigned char *cert;
	size_t len;
	int64_t t0;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->dir = tu_tmpdir("attpol");
	f->t0 = stk_now();
	f->s = sf_site_init(f->dir);
	sf_device_cert(f->dir, "dev", f->t0, 365, &f->cert, &f->len);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	sf_site_done(f->s, f->dir);
	free(f->cert);
	free(f);
	return 0;
}

static int
required(struct fx *f, const char *bulk_guid)
{
	struct stk_error err;
	int on = -1;

	assert_int_equal(stk_attest_required(f->s, bulk_guid, &on, &err), 0);
	return on;
}

static void
test_policy_precedence(void **state)
{
	/* Off by default; the site setting turns it on for every registration;
	 * a bulk token's own value wins over the site default either way. */
	struct fx *f = *state;
	struct stk_bulk_record a, b;
	struct stk_error err;
	char *ta = NULL, *tb = NULL;

	assert_int_equal(stk_bulk_new(f->s, 60, "t", &ta, &a, &err), 0);
	assert_int_equal(stk_bulk_new(f->s, 60, "t", &tb, &b, &err), 0);
	assert_int_equal(required(f, NULL), 0);
	assert_int_equal(stk_bulk_set_require_attestation(f->s, a.guid, 1, "t", &err), 0);
	assert_int_equal(required(f, a.guid), 1);
	assert_int_equal(required(f, b.guid), 0);
	assert_int_equal(stk_setting_set(f->s, STK_SETTING_REQUIRE_ATTESTATION, "on",
	    "t", &err), 0);
	assert_int_equal(required(f, NULL), 1);
	assert_int_equal(required(f, b.guid), 1);
	assert_int_equal(stk_bulk_set_require_attestation(f->s, b.guid, 0, "t", &err), 0);
	assert_int_equal(required(f, b.guid), 0);
	/* An unknown token: STK_E_NOTFOUND, nothing changed. */
	assert_int_equal(stk_bulk_set_require_attestation(f->s,
	    "00000000-0000-4000-8000-000000000000", 1, "t", &err), STK_E_NOTFOUND);
	stk_token_free(ta);
	stk_token_free(tb);
}

static int
refusals(void *ctx, const struct stk_audit_record *r)
{
	if (strcmp(r->outcome, "refused") == 0 &&
	    strncmp(r->detail, "attestation_required:", 21) == 0)
		(*(int *)ctx)++;
	return 0;
}

/* 1 when the client token's payload carries "att":"tpm". */
static int
token_att_tpm(const char *tok)
{
	const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	unsigned char *p = NULL;
	char *txt;
	size_t n = 0;
	int r;

	assert_non_null(d2);
	assert_int_equal(stk_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &p, &n), 0);
	txt = calloc(1, n + 1);
	assert_non_null(txt);
	memcpy(txt, p, n);
	r = strstr(txt, "\"att\":\"tpm\"") != NULL;
	free(txt);
	free(p);
	return r;
}

static void
test_required_refuses_unattested_and_records_attested(void **state)
{
	/* Threat model 1: with the site requiring attestation, a device that
	 * holds a bulk token but no TPM-attested key is refused (reason
	 * attestation_required, audited, nothing recorded). The same device
	 * attested is recorded "tpm" with its EK hash, and its token and each
	 * renewal say "att":"tpm". */
	struct fx *f = *state;
	struct stk_reg_request rq;
	struct stk_bulk_record rec;
	struct stk_issued is, rn;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	char *bulk = NULL, att[8], ek[65];
	int n = 0;

	assert_int_equal(stk_bulk_new(f->s, 60, "t", &bulk, &rec, &err), 0);
	assert_int_equal(stk_setting_set(f->s, STK_SETTING_REQUIRE_ATTESTATION, "on",
	    "t", &err), 0);
	/* The CMG: the TLS handshake proved the key. */
	sf_tls_request(&rq, STK_VIA_CMG, f->cert, f->len, bulk);
	rq.peer = "test";
	assert_int_equal(stk_device_register(f->s, &rq, f->t0, &is, &reason, &err), STK_E_AUTH);
	assert_int_equal(reason, STK_REFUSAL_ATTESTATION_REQUIRED);
	assert_null(is.token);
	assert_int_equal(stk_audit_foreach(f->s, refusals, &n, &err), 0);
	assert_int_equal(n, 1);

	rq.attestation = "tpm";
	rq.ek_sha256 = EK_HASH;
	assert_int_equal(stk_device_register(f->s, &rq, f->t0, &is, &reason, &err), 0);
	assert_int_equal(stk_attest_device_get(f->s, is.dev.guid, att, sizeof(att), ek,
	    sizeof(ek), &err), 0);
	assert_string_equal(att, "tpm");
	assert_string_equal(ek, EK_HASH);
	assert_true(token_att_tpm(is.token));
	assert_int_equal(stk_device_renew(f->s, is.token, strlen(is.token), f->cert,
	    f->len, f->t0 + 60, &rn, &reason, &err), 0);
	assert_true(token_att_tpm(rn.token));
	stk_issued_clear(&rn);
	stk_issued_clear(&is);

	/* The same device registering again without attestation, once the
	 * site no longer requires it: recorded "none", no claim. */
	assert_int_equal(stk_setting_set(f->s, STK_SETTING_REQUIRE_ATTESTATION, "off",
	    "t", &err), 0);
	rq.attestation = NULL;
	rq.ek_sha256 = NULL;
	assert_int_equal(stk_device_register(f->s, &rq, f->t0, &is, &reason, &err), 0);
	assert_int_equal(stk_attest_device_get(f->s, is.dev.guid, att, sizeof(att), ek,
	    sizeof(ek), &err), 0);
	assert_string_equal(att, "none");
	assert_string_equal(ek, "");
	assert_false(token_att_tpm(is.token));
	stk_issued_clear(&is);
	stk_token_free(bulk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_policy_precedence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_required_refuses_unattested_and_records_attested,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
