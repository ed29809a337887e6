/* Device policy without HTTP: registration, gateway checks, renewal,
 * settings, and that each change is audited with it. One behaviour per
 * test, each on a fresh site (device certificates A and B). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "sitetoken/cert.h"
#include "sitetoken/certs.h"
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
	struct stk_issued a;       /* A registered over the MP (reg_a) */
	char *bulk;                /* a bulk token (new_bulk) */
	struct stk_bulk_record rec;
	struct stk_error err;      /* of the last call */
	struct stk_reg_request rq; /* the test's request */
	char nonce[STK_CHALLENGE_LEN + 1], *proof; /* of pop_request */
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->dir = tu_tmpdir("device");
	f->t0 = stk_now();
	f->s = sf_site_init(f->dir);
	sf_device_cert(f->dir, "a", f->t0, 365, &f->certA, &f->lenA);
	sf_device_cert(f->dir, "b", f->t0, 365, &f->certB, &f->lenB);
	if (stk_challenges_new(&f->ch, &f->err) != 0)
		fail_msg("challenges: %s", f->err.msg);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	stk_challenges_free(f->ch);
	stk_issued_clear(&f->a);
	stk_token_free(f->bulk);
	free(f->proof);
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

	assert_int_equal(stk_audit_foreach(f->s, audit_count_cb, &m, &f->err), 0);
	return m.n;
}

/* What a device does on the HTTP MP: a challenge, signed with the key
 * `keyname` over the certificate der. *proof malloc'd. */
static void
prove(struct fx *f, const char *keyname, const unsigned char *der, size_t len,
    int64_t now, char nonce[STK_CHALLENGE_LEN + 1], char **proof)
{
	struct stk_key_opts ko;
	struct stk_key *k = NULL;
	unsigned char sig[512];
	size_t siglen = sizeof(sig);
	char path[PATH_MAX], x5t[44], *msg;
	int64_t exp;

	memset(&ko, 0, sizeof(ko));
	assert_int_equal(stk_challenge_issue(f->ch, now, nonce, &exp, &f->err), 0);
	stk_cert_x5t_s256(der, len, x5t);
	msg = stk_pop_message(STK_POP_REGISTER, nonce, x5t);
	snprintf(path, sizeof(path), "%s/%s.key", f->dir, keyname);
	if (stk_key_open(path, &ko, &k, &f->err) != 0)
		fail_msg("open %s: %s", path, f->err.msg);
	assert_int_equal(stk_key_sign(k, (unsigned char *)msg, strlen(msg), sig, &siglen,
	    &f->err), 0);
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

/* f->rq: A's certificate on the MP with a proof by key `keyname` over a
 * challenge issued at now (f->nonce, f->proof). */
static void
pop_request(struct fx *f, const char *keyname, int64_t now)
{
	prove(f, keyname, f->certA, f->lenA, now, f->nonce, &f->proof);
	mp_request(f, &f->rq, f->certA, f->lenA);
	f->rq.nonce = f->nonce;
	f->rq.proof = f->proof;
}

/* The request registers (into *out, or cleared when out is NULL). */
static void
reg_ok(struct fx *f, struct stk_reg_request *rq, int64_t now, struct stk_issued *out)
{
	struct stk_issued tmp;
	enum stk_refusal reason;

	if (stk_device_register(f->s, rq, now, out ? out : &tmp, &reason, &f->err) != 0)
		fail_msg("register: %s", f->err.msg);
	if (out == NULL)
		stk_issued_clear(&tmp);
}

static void
reg_mp(struct fx *f, const unsigned char *der, size_t len, int64_t now,
    struct stk_issued *out)
{
	struct stk_reg_request rq;
	char nonce[STK_CHALLENGE_LEN + 1], *proof = NULL;

	prove(f, der == f->certA ? "a" : "b", der, len, now, nonce, &proof);
	mp_request(f, &rq, der, len);
	rq.nonce = nonce;
	rq.proof = proof;
	reg_ok(f, &rq, now, out);
	free(proof);
}

/* A registered over the MP at t0, in f->a. */
static struct stk_issued *
reg_a(struct fx *f)
{
	reg_mp(f, f->certA, f->lenA, f->t0, &f->a);
	return &f->a;
}

/* A bulk token (60 min), in f->bulk and f->rec. */
static const char *
new_bulk(struct fx *f)
{

	assert_int_equal(stk_bulk_new(f->s, 60, "t", &f->bulk, &f->rec, &f->err), 0);
	return f->bulk;
}

/* The request is refused with `want`: nothing registered, one more
 * "refused" audit record. */
static void
assert_refused(struct fx *f, struct stk_reg_request *rq, int64_t now,
    enum stk_refusal want)
{
	struct stk_issued out;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	int devices = sf_device_count(f->s), refused = audit_count(f, NULL, "refused");

	assert_int_not_equal(stk_device_register(f->s, rq, now, &out, &reason, &f->err), 0);
	assert_int_equal(reason, want);
	assert_int_equal(sf_device_count(f->s), devices);
	assert_int_equal(audit_count(f, NULL, "refused"), refused + 1);
}

/* The gateway's answer to token tok with certificate cert at now:
 * STK_REFUSAL_NONE when accepted, else the reason. */
static enum stk_refusal
gateway(struct fx *f, const char *tok, const unsigned char *cert, size_t len,
    int64_t now)
{
	struct stk_device d;
	enum stk_refusal reason = STK_REFUSAL_NONE;

	if (stk_device_authenticate(f->s, tok, strlen(tok), cert, len, now, &d,
	    &reason, &f->err) == 0)
		return STK_REFUSAL_NONE;
	assert_int_not_equal(reason, STK_REFUSAL_NONE);
	return reason;
}

/* The renewal of tok with cert at now: STK_REFUSAL_NONE and *out, or the
 * reason (and f->err). */
static enum stk_refusal
renew(struct fx *f, const char *tok, const unsigned char *cert, size_t len,
    int64_t now, struct stk_issued *out)
{
	enum stk_refusal reason = STK_REFUSAL_NONE;

	if (stk_device_renew(f->s, tok, strlen(tok), cert, len, now, out, &reason,
	    &f->err) == 0)
		return STK_REFUSAL_NONE;
	assert_int_not_equal(reason, STK_REFUSAL_NONE);
	return reason;
}

static int
bulk_devices(struct fx *f)
{
	struct stk_cert_row row;

	memset(&row, 0, sizeof(row));
	snprintf(row.type, sizeof(row.type), "Bulk Registration Token");
	snprintf(row.id, sizeof(row.id), "%s", f->rec.guid);
	assert_int_equal(stk_certs_count_devices(f->s, &row, 1, &f->err), 0);
	return (int)row.devices;
}

/* ---- registration over the MP ---- */

/* A first MP registration: a new device, 90-day token bound to the cert, CMG per site. */
static void
test_mp_register_new_device(void **state)
{
	struct fx *f = *state;
	struct stk_issued *a = reg_a(f);
	struct stk_device d;
	char x5t[44];

	assert_true(a->new_device);
	assert_non_null(a->token);
	assert_string_equal(a->dev.via, "mp");
	assert_int_equal(a->dev.token_exp - a->dev.last_issued_at, 90 * DAY);
	stk_cert_x5t_s256(f->certA, f->lenA, x5t);
	assert_string_equal(a->dev.thumbprint, x5t);
	assert_int_equal(stk_device_get(f->s, a->dev.guid, &d, &f->err), 0);
	assert_int_equal(d.allow_cmg, -1);
}

/* The same certificate again: same device (one row), new token, both audited. */
static void
test_mp_register_again_same_device(void **state)
{
	struct fx *f = *state;
	struct stk_issued again;

	reg_a(f);
	reg_mp(f, f->certA, f->lenA, f->t0 + 10, &again);
	assert_false(again.new_device);
	assert_string_equal(again.dev.guid, f->a.dev.guid);
	assert_string_not_equal(again.dev.last_jti, f->a.dev.last_jti);
	assert_int_equal(sf_device_count(f->s), 1);
	assert_int_equal(audit_count(f, "device.register.mp", "ok"), 2);
	stk_issued_clear(&again);
}

/* Bytes that are not a certificate are refused bad_certificate. */
static void
test_refuse_bad_certificate(void **state)
{
	struct fx *f = *state;
	unsigned char junk[8] = { 0x30, 0x03, 1, 2, 3, 4, 5, 6 };

	mp_request(f, &f->rq, junk, sizeof(junk));
	assert_refused(f, &f->rq, f->t0, STK_REFUSAL_BAD_CERTIFICATE);
}

/* An HTTPS MP that needs a credential refuses without one and registers with one. */
static void
test_https_mp_requires_credential(void **state)
{
	struct fx *f = *state;

	sf_tls_request(&f->rq, STK_VIA_MP, f->certA, f->lenA, NULL);
	f->rq.require_credential = 1;
	assert_refused(f, &f->rq, f->t0, STK_REFUSAL_CREDENTIAL);
	f->rq.trusted_credential = 1;
	reg_ok(f, &f->rq, f->t0, NULL);
}

/* With internal registration off the MP registers nobody. */
static void
test_refuse_internal_registration_off(void **state)
{
	struct fx *f = *state;

	assert_int_equal(stk_setting_set(f->s, STK_SETTING_INTERNAL_REG, "off", "t", &f->err), 0);
	sf_tls_request(&f->rq, STK_VIA_MP, f->certA, f->lenA, NULL);
	assert_refused(f, &f->rq, f->t0, STK_REFUSAL_INTERNAL_DISABLED);
}

/* ---- proof of possession (attacker 1, network: A's certificate is
 * public; before, any post of it re-registered A) ---- */

/* A certificate without a proof is refused proof_required. */
static void
test_pop_required(void **state)
{
	struct fx *f = *state;

	reg_a(f);
	mp_request(f, &f->rq, f->certA, f->lenA);
	assert_refused(f, &f->rq, f->t0, STK_REFUSAL_PROOF_REQUIRED);
}

/* B's key signing a challenge for A's certificate is refused. */
static void
test_pop_by_other_key_refused(void **state)
{
	struct fx *f = *state;

	reg_a(f);
	pop_request(f, "b", f->t0);
	assert_refused(f, &f->rq, f->t0, STK_REFUSAL_PROOF_INVALID);
}

/* A nonce with one character changed fails the challenge MAC. */
static void
test_pop_forged_nonce_refused(void **state)
{
	struct fx *f = *state;

	pop_request(f, "a", f->t0);
	f->nonce[3] = f->nonce[3] == 'A' ? 'B' : 'A';
	assert_refused(f, &f->rq, f->t0, STK_REFUSAL_CHALLENGE_INVALID);
}

/* The genuine proof after the challenge's lifetime is refused. */
static void
test_pop_expired_challenge_refused(void **state)
{
	struct fx *f = *state;

	pop_request(f, "a", f->t0);
	assert_refused(f, &f->rq, f->t0 + STK_CHALLENGE_TTL, STK_REFUSAL_CHALLENGE_INVALID);
}

/* A proof registers once; the same challenge replayed does not. */
static void
test_pop_replayed_challenge_refused(void **state)
{
	struct fx *f = *state;

	pop_request(f, "a", f->t0);
	reg_ok(f, &f->rq, f->t0 + 1, NULL);
	assert_refused(f, &f->rq, f->t0 + 2, STK_REFUSAL_CHALLENGE_INVALID);
	assert_int_equal(audit_count(f, "device.register.mp", "ok"), 1);
}

/* ---- registration through the CMG (TLS client certificate + bulk token) ---- */

/* A CMG registration records the bulk token it enrolled with. */
static void
test_cmg_register_with_bulk(void **state)
{
	struct fx *f = *state;
	struct stk_issued a;

	sf_tls_request(&f->rq, STK_VIA_CMG, f->certA, f->lenA, new_bulk(f));
	reg_ok(f, &f->rq, f->t0, &a);
	assert_string_equal(a.dev.via, "cmg");
	assert_string_equal(a.dev.bulk_guid, f->rec.guid);
	stk_issued_clear(&a);
}

/* The CMG refuses a client certificate without a bulk token. */
static void
test_refuse_cmg_without_bulk_token(void **state)
{
	struct fx *f = *state;

	sf_tls_request(&f->rq, STK_VIA_CMG, f->certA, f->lenA, NULL);
	assert_refused(f, &f->rq, f->t0, STK_REFUSAL_NO_TOKEN);
}

/* The CMG refuses a request without a client certificate. */
static void
test_refuse_cmg_without_client_cert(void **state)
{
	struct fx *f = *state;

	sf_tls_request(&f->rq, STK_VIA_CMG, NULL, 0, new_bulk(f));
	assert_refused(f, &f->rq, f->t0, STK_REFUSAL_NO_CLIENT_CERT);
}

/* Attacker 1 with a bulk token and any TLS certificate: a body naming
 * another certificate (a victim's public one) is refused; the TLS one is
 * what registers. */
static void
test_tls_body_cert_must_match(void **state)
{
	struct fx *f = *state;

	sf_tls_request(&f->rq, STK_VIA_CMG, f->certB, f->lenB, new_bulk(f));
	f->rq.cert_der = f->certA;
	f->rq.cert_len = f->lenA;
	assert_refused(f, &f->rq, f->t0, STK_REFUSAL_BINDING);
	f->rq.cert_der = f->certB;
	f->rq.cert_len = f->lenB;
	reg_ok(f, &f->rq, f->t0, NULL);
}

/* A blocked bulk token registers no more devices. */
static void
test_blocked_bulk_refuses_registration(void **state)
{
	struct fx *f = *state;

	sf_tls_request(&f->rq, STK_VIA_CMG, f->certB, f->lenB, new_bulk(f));
	assert_int_equal(stk_bulk_set_blocked(f->s, f->rec.guid, 1, "t", &f->err), 0);
	assert_refused(f, &f->rq, f->t0, STK_REFUSAL_BULK_BLOCKED);
}

/* Item 5: with allow-cmg off a CMG registration is refused 403
 * cloud_gateway_disabled before the bulk token is checked: no enrollment
 * counted for the token. Before: it registered, then every request was
 * refused. */
static void
test_cmg_registration_allow_cmg_off(void **state)
{
	struct fx *f = *state;

	assert_int_equal(stk_setting_set(f->s, STK_SETTING_ALLOW_CMG, "off", "t", &f->err), 0);
	sf_tls_request(&f->rq, STK_VIA_CMG, f->certA, f->lenA, new_bulk(f));
	assert_refused(f, &f->rq, f->t0, STK_REFUSAL_CMG_DISABLED);
	assert_int_equal(stk_refusal_http(STK_REFUSAL_CMG_DISABLED), 403);
	assert_int_equal(bulk_devices(f), 0);
}

/* ---- the gateway (client token + TLS client certificate) ---- */

/* A client token works with its own certificate only (binding). */
static void
test_token_bound_to_cert(void **state)
{
	struct fx *f = *state;
	struct stk_issued *a = reg_a(f);
	struct stk_device d;
	enum stk_refusal reason;

	assert_int_equal(gateway(f, a->token, f->certA, f->lenA, f->t0), STK_REFUSAL_NONE);
	assert_int_equal(stk_device_authenticate(f->s, a->token, strlen(a->token),
	    f->certB, f->lenB, f->t0, &d, &reason, &f->err), STK_E_TOKEN_BINDING);
	assert_int_equal(reason, STK_REFUSAL_BINDING);
}

/* A bulk token is not a client token at the gateway. */
static void
test_bulk_token_not_client_token(void **state)
{
	struct fx *f = *state;

	assert_int_equal(gateway(f, new_bulk(f), f->certA, f->lenA, f->t0),
	    STK_REFUSAL_TOKEN_TYPE);
}

/* allow-cmg off refuses the gateway; a device override lets it in; default refuses. */
static void
test_allow_cmg_site_and_device_override(void **state)
{
	struct fx *f = *state;
	struct stk_issued *a = reg_a(f);

	assert_int_equal(stk_setting_set(f->s, STK_SETTING_ALLOW_CMG, "off", "t", &f->err), 0);
	assert_int_equal(gateway(f, a->token, f->certA, f->lenA, f->t0), STK_REFUSAL_CMG_DISABLED);
	assert_int_equal(stk_device_set_allow_cmg(f->s, a->dev.guid, 1, "t", &f->err), 0);
	assert_int_equal(gateway(f, a->token, f->certA, f->lenA, f->t0), STK_REFUSAL_NONE);
	assert_int_equal(stk_device_set_allow_cmg(f->s, a->dev.guid, -1, "t", &f->err), 0);
	assert_int_equal(gateway(f, a->token, f->certA, f->lenA, f->t0), STK_REFUSAL_CMG_DISABLED);
}

/* A blocked device is refused at the gateway, and let in once unblocked. */
static void
test_blocked_device_refused(void **state)
{
	struct fx *f = *state;
	struct stk_issued *a = reg_a(f);

	assert_int_equal(stk_device_set_blocked(f->s, a->dev.guid, 1, "t", &f->err), 0);
	assert_int_equal(gateway(f, a->token, f->certA, f->lenA, f->t0), STK_REFUSAL_DEVICE_BLOCKED);
	assert_int_equal(stk_device_set_blocked(f->s, a->dev.guid, 0, "t", &f->err), 0);
	assert_int_equal(gateway(f, a->token, f->certA, f->lenA, f->t0), STK_REFUSAL_NONE);
}

/* Unknown settings and values are refused. */
static void
test_unknown_settings_refused(void **state)
{
	struct fx *f = *state;

	assert_int_equal(stk_setting_set(f->s, "nope", "on", "t", &f->err), STK_E_ARG);
	assert_int_equal(stk_setting_set(f->s, STK_SETTING_ALLOW_CMG, "maybe", "t", &f->err),
	    STK_E_ARG);
}

/* ---- renewal ---- */

/* Day 31: renewed, valid 90 days from the renewal, same device, audited. */
static void
test_renewal_extends_from_renewal(void **state)
{
	struct fx *f = *state;
	struct stk_issued *a = reg_a(f), r;

	assert_int_equal(renew(f, a->token, f->certA, f->lenA, f->t0 + 31 * DAY, &r),
	    STK_REFUSAL_NONE);
	assert_int_equal(r.dev.token_exp, f->t0 + 121 * DAY);
	assert_string_equal(r.dev.guid, a->dev.guid);
	assert_int_equal(audit_count(f, "device.renew", "ok"), 1);
	stk_issued_clear(&r);
}

/* Once the renewed token is used, the old one is superseded. */
static void
test_renewal_supersedes_old_token(void **state)
{
	struct fx *f = *state;
	struct stk_issued *a = reg_a(f), r;
	int64_t t = f->t0 + 31 * DAY;

	assert_int_equal(renew(f, a->token, f->certA, f->lenA, t, &r), STK_REFUSAL_NONE);
	assert_int_equal(gateway(f, r.token, f->certA, f->lenA, t + 1), STK_REFUSAL_NONE);
	assert_int_equal(gateway(f, a->token, f->certA, f->lenA, t + 1), STK_REFUSAL_SUPERSEDED);
	stk_issued_clear(&r);
}

/* Renewal with another certificate is refused (binding), audited. */
static void
test_renewal_with_other_cert_refused(void **state)
{
	struct fx *f = *state;
	struct stk_issued *a = reg_a(f), r;

	assert_int_equal(renew(f, a->token, f->certB, f->lenB, f->t0 + 31 * DAY, &r),
	    STK_REFUSAL_BINDING);
	assert_int_equal(audit_count(f, "device.renew", "refused"), 1);
}

/* An expired token does not renew (no token); the message says: internal network. */
static void
test_renewal_after_expiry_refused(void **state)
{
	struct fx *f = *state;
	struct stk_issued *a = reg_a(f), r;

	assert_int_equal(renew(f, a->token, f->certA, f->lenA, f->t0 + 91 * DAY, &r),
	    STK_REFUSAL_TOKEN_EXPIRED);
	assert_non_null(strstr(f->err.msg, "internal network"));
	assert_null(r.token);
	assert_int_equal(audit_count(f, "device.renew", "refused"), 1);
}

/* Attacker 6 (lost message): the renewal response is lost; the retry with
 * the token the device still holds gets a working token and the lost one
 * is dead. Before: the retry was refused token_superseded (locked out). */
static void
test_lost_renewal_retry(void **state)
{
	struct fx *f = *state;
	struct stk_issued *a = reg_a(f), lost, r2;
	int64_t t = f->t0 + 31 * DAY;

	assert_int_equal(renew(f, a->token, f->certA, f->lenA, t, &lost), STK_REFUSAL_NONE);
	assert_int_equal(renew(f, a->token, f->certA, f->lenA, t + 5, &r2), STK_REFUSAL_NONE);
	assert_int_equal(gateway(f, r2.token, f->certA, f->lenA, t + 6), STK_REFUSAL_NONE);
	assert_int_equal(gateway(f, lost.token, f->certA, f->lenA, t + 6), STK_REFUSAL_SUPERSEDED);
	stk_issued_clear(&lost);
	stk_issued_clear(&r2);
}

/* Once the new token is used, the first one neither renews nor passes the gateway. */
static void
test_used_renewal_finishes_old_token(void **state)
{
	struct fx *f = *state;
	struct stk_issued *a = reg_a(f), r2, r3;
	int64_t t = f->t0 + 31 * DAY;

	assert_int_equal(renew(f, a->token, f->certA, f->lenA, t, &r2), STK_REFUSAL_NONE);
	assert_int_equal(gateway(f, r2.token, f->certA, f->lenA, t + 6), STK_REFUSAL_NONE);
	assert_int_equal(renew(f, a->token, f->certA, f->lenA, t + 7, &r3),
	    STK_REFUSAL_SUPERSEDED);
	assert_int_not_equal(gateway(f, a->token, f->certA, f->lenA, t + 7), STK_REFUSAL_NONE);
	stk_issued_clear(&r2);
}

/* Attacker 6: a lost registration response; the retry leaves one device, one valid token. */
static void
test_lost_registration_retry(void **state)
{
	struct fx *f = *state;
	struct stk_issued *lost = reg_a(f), again;

	reg_mp(f, f->certA, f->lenA, f->t0 + 3, &again);
	assert_string_equal(again.dev.guid, lost->dev.guid);
	assert_int_equal(sf_device_count(f->s), 1);
	assert_int_equal(gateway(f, again.token, f->certA, f->lenA, f->t0 + 4), STK_REFUSAL_NONE);
	assert_int_not_equal(gateway(f, lost->token, f->certA, f->lenA, f->t0 + 4), STK_REFUSAL_NONE);
	stk_issued_clear(&again);
}

/* ---- bulk tokens and their devices ---- */

static int
dev_guid_cb(void *ctx, const struct stk_device *d)
{
	snprintf(ctx, STK_GUID_LEN + 1, "%s", d->guid);
	return 0;
}

/* A CMG registration with bulk token 1 for A, then A over the MP. */
static void
enrol_then_mp(struct fx *f, struct stk_issued *a)
{
	struct stk_issued again;

	sf_tls_request(&f->rq, STK_VIA_CMG, f->certA, f->lenA, new_bulk(f));
	reg_ok(f, &f->rq, f->t0, a);
	reg_mp(f, f->certA, f->lenA, f->t0 + 5, &again);
	assert_string_equal(again.dev.via, "mp");
	stk_issued_clear(&again);
}

/* Item 6: the enrollment history survives re-registration: the device
 * still counts for token 1 and is listed by it. Before: the count fell to
 * 0 and nothing tied the device to the token. */
static void
test_enrollment_history_survives(void **state)
{
	struct fx *f = *state;
	struct stk_issued a;
	char listed[STK_GUID_LEN + 1] = "";

	enrol_then_mp(f, &a);
	assert_int_equal(bulk_devices(f), 1);
	assert_int_equal(stk_device_foreach_bulk(f->s, f->rec.guid, dev_guid_cb, listed, &f->err), 0);
	assert_string_equal(listed, a.dev.guid);
	stk_issued_clear(&a);
}

/* `devices block --bulk` blocks the token's devices (audited); a second run blocks none. */
static void
test_block_bulk_blocks_its_devices(void **state)
{
	struct fx *f = *state;
	struct stk_issued a;
	struct stk_device d;
	long n = -1;

	enrol_then_mp(f, &a);
	assert_int_equal(stk_device_block_bulk(f->s, f->rec.guid, "admin", &n, &f->err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(stk_device_get(f->s, a.dev.guid, &d, &f->err), 0);
	assert_true(d.blocked);
	assert_int_equal(audit_count(f, "bulk.block_devices", "ok"), 1);
	assert_int_equal(audit_count(f, "device.block", "ok"), 1);
	assert_int_equal(stk_device_block_bulk(f->s, f->rec.guid, "admin", &n, &f->err), 0);
	assert_int_equal(n, 0);
	stk_issued_clear(&a);
}

/* ---- `verify` on a site (item 7): the gateway's verdict ---- */

/* verdict: the site's verdict on client token tok at t0 + 2. */
static enum stk_refusal
verdict(struct fx *f, const char *tok)
{
	struct stk_claims c;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	int r;

	assert_int_equal(stk_site_verify(f->s, tok, strlen(tok), STK_TOKEN_CLIENT,
	    f->t0 + 2, &c, &f->err), 0);
	r = stk_device_token_verdict(f->s, &c, &reason, &f->err);
	stk_claims_clear(&c);
	return r == 0 ? STK_REFUSAL_NONE : reason;
}

/* A token replaced by a newer registration is superseded; the newer is good. */
static void
test_verdict_superseded(void **state)
{
	struct fx *f = *state;
	struct stk_issued *a = reg_a(f), b;

	reg_mp(f, f->certA, f->lenA, f->t0 + 1, &b);
	assert_int_equal(verdict(f, a->token), STK_REFUSAL_SUPERSEDED);
	assert_int_equal(verdict(f, b.token), STK_REFUSAL_NONE);
	stk_issued_clear(&b);
}

/* A blocked device's current token gets device_blocked. */
static void
test_verdict_blocked(void **state)
{
	struct fx *f = *state;
	struct stk_issued *a = reg_a(f);

	assert_int_equal(stk_device_set_blocked(f->s, a->dev.guid, 1, "t", &f->err), 0);
	assert_int_equal(verdict(f, a->token), STK_REFUSAL_DEVICE_BLOCKED);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_mp_register_new_device), T(test_mp_register_again_same_device),
		T(test_refuse_bad_certificate), T(test_https_mp_requires_credential),
		T(test_refuse_internal_registration_off), T(test_pop_required),
		T(test_pop_by_other_key_refused), T(test_pop_forged_nonce_refused),
		T(test_pop_expired_challenge_refused), T(test_pop_replayed_challenge_refused),
		T(test_cmg_register_with_bulk), T(test_refuse_cmg_without_bulk_token),
		T(test_refuse_cmg_without_client_cert), T(test_tls_body_cert_must_match),
		T(test_blocked_bulk_refuses_registration), T(test_cmg_registration_allow_cmg_off),
		T(test_token_bound_to_cert), T(test_bulk_token_not_client_token),
		T(test_allow_cmg_site_and_device_override), T(test_blocked_device_refused),
		T(test_unknown_settings_refused), T(test_renewal_extends_from_renewal),
		T(test_renewal_supersedes_old_token), T(test_renewal_with_other_cert_refused),
		T(test_renewal_after_expiry_refused), T(test_lost_renewal_retry),
		T(test_used_renewal_finishes_old_token), T(test_lost_registration_retry),
		T(test_enrollment_history_survives), T(test_block_bulk_blocks_its_devices),
		T(test_verdict_superseded), T(test_verdict_blocked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
