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

/* Turns the site's attestation requirement "on" or "off". */
static void
site_requires(struct sf_fx *f, const char *on)
{
	struct stk_error err;

	assert_int_equal(stk_setting_set(f->s, STK_SETTING_REQUIRE_ATTESTATION, on, "t",
	    &err), 0);
}

/* The gateway's verdict on client token tok presented with cert at time t:
 * accepted (STK_REFUSAL_NONE) or refused with STK_E_AUTH and this reason. */
static enum stk_refusal
gateway(struct sf_fx *f, const char *tok, const unsigned char *cert, size_t len, int64_t t)
{
	struct stk_device d;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	int r = stk_device_authenticate(f->s, tok, strlen(tok), cert, len, t, &d, &reason, &err);

	if (r == 0)
		assert_int_equal(reason, STK_REFUSAL_NONE);
	else
		assert_int_equal(r, STK_E_AUTH);
	return reason;
}

static int
required(struct sf_fx *f, const char *bulk_guid)
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
	struct sf_fx *f = *state;
	struct stk_bulk_record b;
	struct stk_error err;
	char *tb = sf_bulk(f->s, 60, &b);

	assert_int_equal(required(f, NULL), 0);
	assert_int_equal(stk_bulk_set_require_attestation(f->s, f->rec.guid, 1, "t", &err), 0);
	assert_int_equal(required(f, f->rec.guid), 1);
	assert_int_equal(required(f, b.guid), 0);
	site_requires(f, "on");
	assert_int_equal(required(f, NULL), 1);
	assert_int_equal(required(f, b.guid), 1);
	assert_int_equal(stk_bulk_set_require_attestation(f->s, b.guid, 0, "t", &err), 0);
	assert_int_equal(required(f, b.guid), 0);
	/* An unknown token: STK_E_NOTFOUND, nothing changed. */
	assert_int_equal(stk_bulk_set_require_attestation(f->s,
	    "00000000-0000-4000-8000-000000000000", 1, "t", &err), STK_E_NOTFOUND);
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
	struct sf_fx *f = *state;
	struct stk_reg_request rq;
	struct stk_issued is, rn;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	char att[8], ek[65];
	int n = 0;

	site_requires(f, "on");
	/* The CMG: the TLS handshake proved the key. */
	sf_tls_request(&rq, STK_VIA_CMG, f->cert, f->len, f->bulk);
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
	site_requires(f, "off");
	rq.attestation = NULL;
	rq.ek_sha256 = NULL;
	assert_int_equal(stk_device_register(f->s, &rq, f->t0, &is, &reason, &err), 0);
	assert_int_equal(stk_attest_device_get(f->s, is.dev.guid, att, sizeof(att), ek,
	    sizeof(ek), &err), 0);
	assert_string_equal(att, "none");
	assert_string_equal(ek, "");
	assert_false(token_att_tpm(is.token));
	stk_issued_clear(&is);
}

static void
test_gateway_requires_att_claim(void **state)
{
	/* Threat model 2: a thief who copied a device's file key and client
	 * token. Once the site requires attestation, a token without "att"
	 * (a device registered unattested) is refused at the gateway, for
	 * requests and renewal alike (403 attestation_required, audited); a
	 * token with "att":"tpm" is accepted without a lookup, also when it
	 * comes from the verified-token cache (second request). A bulk
	 * token's own policy wins over the site's, as at registration. */
	struct sf_fx *f = *state;
	struct stk_reg_request rq;
	struct stk_issued plain, att, rn;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	unsigned char *cert2 = NULL;
	size_t len2 = 0;
	int i, n = 0;

	memset(&rn, 0, sizeof(rn));
	sf_device_cert(f->dir, "dev2", f->t0, 365, &cert2, &len2);
	sf_tls_request(&rq, STK_VIA_CMG, f->cert, f->len, f->bulk);
	rq.peer = "test";
	assert_int_equal(stk_device_register(f->s, &rq, f->t0, &plain, &reason, &err), 0);
	assert_false(token_att_tpm(plain.token));
	sf_tls_request(&rq, STK_VIA_CMG, cert2, len2, f->bulk);
	rq.peer = "test";
	rq.attestation = "tpm";
	rq.ek_sha256 = EK_HASH;
	assert_int_equal(stk_device_register(f->s, &rq, f->t0, &att, &reason, &err), 0);
	assert_true(token_att_tpm(att.token));
	/* Not required: both tokens work. */
	assert_int_equal(gateway(f, plain.token, f->cert, f->len, f->t0 + 1), STK_REFUSAL_NONE);

	site_requires(f, "on");
	assert_int_equal(gateway(f, plain.token, f->cert, f->len, f->t0 + 2),
	    STK_REFUSAL_ATTESTATION_REQUIRED);
	assert_int_equal(stk_device_renew(f->s, plain.token, strlen(plain.token), f->cert,
	    f->len, f->t0 + 3, &rn, &reason, &err), STK_E_AUTH);
	assert_int_equal(reason, STK_REFUSAL_ATTESTATION_REQUIRED);
	assert_null(rn.token);
	assert_int_equal(stk_audit_foreach(f->s, refusals, &n, &err), 0);
	assert_true(n >= 1);
	for (i = 0; i < 2; i++)
		assert_int_equal(gateway(f, att.token, cert2, len2, f->t0 + 4 + i),
		    STK_REFUSAL_NONE);

	/* The token the plain device enrolled with says "not required": its
	 * policy wins over the site default; then "required" with the site
	 * default off. */
	assert_int_equal(stk_bulk_set_require_attestation(f->s, f->rec.guid, 0, "t", &err), 0);
	assert_int_equal(gateway(f, plain.token, f->cert, f->len, f->t0 + 6), STK_REFUSAL_NONE);
	site_requires(f, "off");
	assert_int_equal(stk_bulk_set_require_attestation(f->s, f->rec.guid, 1, "t", &err), 0);
	assert_int_equal(gateway(f, plain.token, f->cert, f->len, f->t0 + 7),
	    STK_REFUSAL_ATTESTATION_REQUIRED);
	stk_issued_clear(&plain);
	stk_issued_clear(&att);
	free(cert2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, sf_setup_dev, sf_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_policy_precedence),
		T(test_required_refuses_unattested_and_records_attested),
		T(test_gateway_requires_att_claim),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
