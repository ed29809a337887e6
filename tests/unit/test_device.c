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
#include "site_fixture.h"

#define DAY 86400

struct fx {
	char *dir;
	struct stk_site *s;
	unsigned char *certA, *certB;
	size_t lenA, lenB;
	int64_t t0;
	struct stk_challenges *ch;
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct stk_error err;

	f->dir = tu_tmpdir("device");
	f->t0 = stk_now();
	f->s = sf_site_init(f->dir);
	sf_device_cert(f->dir, "a", f->t0, 365, &f->certA, &f->lenA);
	sf_device_cert(f->dir, "b", f->t0, 365, &f->certB, &f->lenB);
	if (stk_challenges_new(&f->ch, &err) != 0)
		fail_msg("challenges: %s", err.msg);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	stk_challenges_free(f->ch);
	sf_site_done(f->s, f->dir);
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

/* What a device does on the HTTP MP: a challenge, signed with the key
 * `keyname` over the certificate der. *proof malloc'd. */
static void
prove(struct fx *f, const char *keyname, const unsigned char *der, size_t len,
    int64_t now, char nonce[STK_CHALLENGE_LEN + 1], char **proof)
{
	struct stk_key_opts ko;
	struct stk_key *k = NULL;
	struct stk_error err;
	unsigned char sig[512];
	size_t siglen = sizeof(sig);
	char path[PATH_MAX], x5t[44], *msg;
	int64_t exp;

	memset(&ko, 0, sizeof(ko));
	assert_int_equal(stk_challenge_issue(f->ch, now, nonce, &exp, &err), 0);
	stk_cert_x5t_s256(der, len, x5t);
	msg = stk_pop_message(STK_POP_REGISTER, nonce, x5t);
	snprintf(path, sizeof(path), "%s/%s.key", f->dir, keyname);
	if (stk_key_open(path, &ko, &k, &err) != 0)
		fail_msg("open %s: %s", path, err.msg);
	assert_int_equal(stk_key_sign(k, (unsigned char *)msg, strlen(msg), sig, &siglen,
	    &err), 0);
	assert_int_equal(stk_b64url_encode(sig, siglen, proof), 0);
	stk_key_close(k);
	free(msg);
}

static void
mp_request(struct fx *f, struct stk_reg_request *rq, const unsigned char *der,
    size_t len)
{
	memset(rq, 0, sizeof(*rq));
	rq->via = STK_VIA_MP;
	rq->cert_der = der;
	rq->cert_len = len;
	rq->challenges = f->ch;
	rq->peer = "test";
}

static void
reg_mp(struct fx *f, const unsigned char *der, size_t len, int64_t now,
    struct stk_issued *out)
{
	struct stk_reg_request rq;
	struct stk_error err;
	enum stk_refusal reason;
	char nonce[STK_CHALLENGE_LEN + 1], *proof = NULL;

	prove(f, der == f->certA ? "a" : "b", der, len, now, nonce, &proof);
	mp_request(f, &rq, der, len);
	rq.nonce = nonce;
	rq.proof = proof;
	if (stk_device_register(f->s, &rq, now, out, &reason, &err) != 0)
		fail_msg("register: %s", err.msg);
	free(proof);
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

	mp_request(f, &rq, junk, sizeof(junk));
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_BAD_CERTIFICATE);
	/* CMG: certificate but no bulk token. */
	sf_tls_request(&rq, STK_VIA_CMG, f->certA, f->lenA, NULL);
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_NO_TOKEN);
	/* CMG: no certificate at all. */
	rq.tls_cert_der = NULL;
	rq.tls_cert_len = 0;
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_NO_CLIENT_CERT);
	/* HTTPS MP needs a credential. */
	rq.via = STK_VIA_MP;
	rq.tls_cert_der = f->certA;
	rq.tls_cert_len = f->lenA;
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
	sf_tls_request(&rq, STK_VIA_CMG, f->certA, f->lenA, bulk);
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
	rq.tls_cert_der = f->certB;
	rq.tls_cert_len = f->lenB;
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

/* Attacker 1 (network): A's certificate is public. Posting it to the HTTP
 * MP without a proof, with a proof by another key, or with a challenge that
 * was forged, expired or already used registers nothing and leaves A's token
 * the latest. Before: any post of the certificate re-registered A. */
static void
test_pop_refusals(void **state)
{
	struct fx *f = *state;
	struct stk_reg_request rq;
	struct stk_issued a, out;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	char nonce[STK_CHALLENGE_LEN + 1], forged[STK_CHALLENGE_LEN + 1], *proof = NULL;

	reg_mp(f, f->certA, f->lenA, f->t0, &a);
	mp_request(f, &rq, f->certA, f->lenA);
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_PROOF_REQUIRED);
	/* B's key signs a challenge for A's certificate. */
	prove(f, "b", f->certA, f->lenA, f->t0, nonce, &proof);
	rq.nonce = nonce;
	rq.proof = proof;
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_PROOF_INVALID);
	free(proof);
	/* A nonce with one character changed fails the MAC. */
	prove(f, "a", f->certA, f->lenA, f->t0, nonce, &proof);
	memcpy(forged, nonce, sizeof(forged));
	forged[3] = forged[3] == 'A' ? 'B' : 'A';
	rq.nonce = forged;
	rq.proof = proof;
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_CHALLENGE_INVALID);
	/* The genuine proof, too late. */
	rq.nonce = nonce;
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0 + STK_CHALLENGE_TTL, &out,
	    &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_CHALLENGE_INVALID);
	/* In time it registers; replayed, it does not. */
	assert_int_equal(stk_device_register(f->s, &rq, f->t0 + 1, &out, &reason, &err), 0);
	stk_issued_clear(&out);
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0 + 2, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_CHALLENGE_INVALID);
	free(proof);
	assert_int_equal(device_count(f), 1);
	assert_int_equal(audit_count(f, "device.register.mp", "refused"), 5);
	assert_int_equal(audit_count(f, "device.register.mp", "ok"), 2);
	stk_issued_clear(&a);
}

/* Attacker 1 with a bulk token and any TLS certificate: the registered
 * certificate is the TLS client certificate; a body naming another one (a
 * victim's public certificate) is refused. */
static void
test_tls_body_cert_must_match(void **state)
{
	struct fx *f = *state;
	struct stk_reg_request rq;
	struct stk_bulk_record rec;
	struct stk_issued out;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	char *bulk = NULL;

	assert_int_equal(stk_bulk_new(f->s, 60, "t", &bulk, &rec, &err), 0);
	sf_tls_request(&rq, STK_VIA_CMG, f->certB, f->lenB, bulk);
	rq.cert_der = f->certA;
	rq.cert_len = f->lenA;
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_BINDING);
	assert_int_equal(device_count(f), 0);
	/* The same certificate in body and TLS is fine. */
	rq.cert_der = f->certB;
	rq.cert_len = f->lenB;
	assert_int_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	stk_issued_clear(&out);
	stk_token_free(bulk);
}

/* Attacker 6 (lost message): the renewal response is lost; the device
 * retries with the token it still holds and gets a token that works; the
 * lost one is dead. Once the new token has been used, the old one no longer
 * renews. Before: the retry was refused token_superseded (locked out). */
static void
test_lost_renewal_retry(void **state)
{
	struct fx *f = *state;
	struct stk_issued a, lost, r2, r3;
	struct stk_device d;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	int64_t t = f->t0 + 31 * DAY;

	reg_mp(f, f->certA, f->lenA, f->t0, &a);
	assert_int_equal(stk_device_renew(f->s, a.token, strlen(a.token), f->certA, f->lenA,
	    t, &lost, &reason, &err), 0);
	assert_int_equal(stk_device_renew(f->s, a.token, strlen(a.token), f->certA, f->lenA,
	    t + 5, &r2, &reason, &err), 0);
	assert_int_equal(stk_device_authenticate(f->s, r2.token, strlen(r2.token), f->certA,
	    f->lenA, t + 6, &d, &reason, &err), 0);
	assert_int_not_equal(stk_device_authenticate(f->s, lost.token, strlen(lost.token),
	    f->certA, f->lenA, t + 6, &d, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_SUPERSEDED);
	/* r2 was used: a.token is finished, for renewal too. */
	assert_int_not_equal(stk_device_renew(f->s, a.token, strlen(a.token), f->certA,
	    f->lenA, t + 7, &r3, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_SUPERSEDED);
	/* The previous token never works at the gateway for anything else. */
	assert_int_not_equal(stk_device_authenticate(f->s, a.token, strlen(a.token),
	    f->certA, f->lenA, t + 7, &d, &reason, &err), 0);
	stk_issued_clear(&a);
	stk_issued_clear(&lost);
	stk_issued_clear(&r2);
}

/* Attacker 6 for registration: the response is lost; the device registers
 * again (fresh proof) and ends with one device and one valid token. */
static void
test_lost_registration_retry(void **state)
{
	struct fx *f = *state;
	struct stk_issued lost, again;
	struct stk_device d;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;

	reg_mp(f, f->certA, f->lenA, f->t0, &lost);
	reg_mp(f, f->certA, f->lenA, f->t0 + 3, &again);
	assert_string_equal(again.dev.guid, lost.dev.guid);
	assert_int_equal(device_count(f), 1);
	assert_int_equal(stk_device_authenticate(f->s, again.token, strlen(again.token),
	    f->certA, f->lenA, f->t0 + 4, &d, &reason, &err), 0);
	assert_int_not_equal(stk_device_authenticate(f->s, lost.token, strlen(lost.token),
	    f->certA, f->lenA, f->t0 + 4, &d, &reason, &err), 0);
	stk_issued_clear(&lost);
	stk_issued_clear(&again);
}

/* Item 5: with allow-cmg off, a CMG registration is refused 403
 * cloud_gateway_disabled before the bulk token is checked: no device, no
 * enrollment counted for the token. Before: it registered, then every
 * request was refused. */
static void
test_cmg_registration_allow_cmg_off(void **state)
{
	struct fx *f = *state;
	struct stk_reg_request rq;
	struct stk_bulk_record rec;
	struct stk_cert_row row;
	struct stk_issued out;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	char *bulk = NULL;

	assert_int_equal(stk_bulk_new(f->s, 60, "t", &bulk, &rec, &err), 0);
	assert_int_equal(stk_setting_set(f->s, STK_SETTING_ALLOW_CMG, "off", "t", &err), 0);
	sf_tls_request(&rq, STK_VIA_CMG, f->certA, f->lenA, bulk);
	assert_int_not_equal(stk_device_register(f->s, &rq, f->t0, &out, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_CMG_DISABLED);
	assert_int_equal(stk_refusal_http(reason), 403);
	assert_int_equal(device_count(f), 0);
	memset(&row, 0, sizeof(row));
	snprintf(row.type, sizeof(row.type), "Bulk Registration Token");
	snprintf(row.id, sizeof(row.id), "%s", rec.guid);
	assert_int_equal(stk_certs_count_devices(f->s, &row, 1, &err), 0);
	assert_int_equal(row.devices, 0);
	stk_token_free(bulk);
}

static int
dev_guid_cb(void *ctx, const struct stk_device *d)
{
	snprintf(ctx, STK_GUID_LEN + 1, "%s", d->guid);
	return 0;
}

/* Item 6: the enrollment history survives re-registration: a device
 * enrolled with bulk token 1 that re-registers over the MP still counts for
 * token 1 and is listed by it; `block --bulk` blocks it (audited). Before:
 * the count fell to 0 and nothing tied the device to the token. */
static void
test_enrollment_history_and_block_bulk(void **state)
{
	struct fx *f = *state;
	struct stk_reg_request rq;
	struct stk_bulk_record rec;
	struct stk_cert_row row;
	struct stk_issued a, again;
	struct stk_device d;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	char *bulk = NULL, listed[STK_GUID_LEN + 1] = "";
	long n = -1;

	assert_int_equal(stk_bulk_new(f->s, 60, "t", &bulk, &rec, &err), 0);
	sf_tls_request(&rq, STK_VIA_CMG, f->certA, f->lenA, bulk);
	assert_int_equal(stk_device_register(f->s, &rq, f->t0, &a, &reason, &err), 0);
	reg_mp(f, f->certA, f->lenA, f->t0 + 5, &again);
	assert_string_equal(again.dev.via, "mp");
	memset(&row, 0, sizeof(row));
	snprintf(row.type, sizeof(row.type), "Bulk Registration Token");
	snprintf(row.id, sizeof(row.id), "%s", rec.guid);
	assert_int_equal(stk_certs_count_devices(f->s, &row, 1, &err), 0);
	assert_int_equal(row.devices, 1);
	assert_int_equal(stk_device_foreach_bulk(f->s, rec.guid, dev_guid_cb, listed, &err), 0);
	assert_string_equal(listed, a.dev.guid);
	assert_int_equal(stk_device_block_bulk(f->s, rec.guid, "admin", &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(stk_device_get(f->s, a.dev.guid, &d, &err), 0);
	assert_true(d.blocked);
	assert_int_equal(audit_count(f, "bulk.block_devices", "ok"), 1);
	assert_int_equal(audit_count(f, "device.block", "ok"), 1);
	/* Again: nothing left to block. */
	assert_int_equal(stk_device_block_bulk(f->s, rec.guid, "admin", &n, &err), 0);
	assert_int_equal(n, 0);
	stk_issued_clear(&a);
	stk_issued_clear(&again);
	stk_token_free(bulk);
}

/* Item 7: the gateway's verdict for `verify` on a site. */
static void
test_token_verdict(void **state)
{
	struct fx *f = *state;
	struct stk_issued a, b;
	struct stk_claims c;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;

	reg_mp(f, f->certA, f->lenA, f->t0, &a);
	reg_mp(f, f->certA, f->lenA, f->t0 + 1, &b);
	assert_int_equal(stk_site_verify(f->s, a.token, strlen(a.token), STK_TOKEN_CLIENT,
	    f->t0 + 2, &c, &err), 0);
	assert_int_not_equal(stk_device_token_verdict(f->s, &c, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_SUPERSEDED);
	stk_claims_clear(&c);
	assert_int_equal(stk_site_verify(f->s, b.token, strlen(b.token), STK_TOKEN_CLIENT,
	    f->t0 + 2, &c, &err), 0);
	assert_int_equal(stk_device_token_verdict(f->s, &c, &reason, &err), 0);
	assert_int_equal(stk_device_set_blocked(f->s, b.dev.guid, 1, "t", &err), 0);
	assert_int_not_equal(stk_device_token_verdict(f->s, &c, &reason, &err), 0);
	assert_int_equal(reason, STK_REFUSAL_DEVICE_BLOCKED);
	stk_claims_clear(&c);
	stk_issued_clear(&a);
	stk_issued_clear(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_mp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmg_bulk_and_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_renewal_window, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pop_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_body_cert_must_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_renewal_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_registration_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmg_registration_allow_cmg_off, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_enrollment_history_and_block_bulk, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_token_verdict, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
