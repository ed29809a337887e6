/* Device policy without HTTP: registration, gateway checks, renewal,
 * settings, and that each change is audited with it. One behaviour per
 * test, each on a fresh site (device certificates A and B). */
#include "sitetoken/certs.h"
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
	struct stk_issued r, r2;   /* a test's other tokens */
	char *bulk;                /* a bulk token (new_bulk) */
	struct stk_bulk_record rec;
	struct stk_error err;      /* of the last call */
	struct stk_reg_request rq; /* the test's request */
	char nonce[STK_CHALLENGE_LEN + 1], *proof; /* of pop_request */
	const struct refusal_case *row; /* of a refusal_cases test */
};

/* A test on a fresh site (setup, or setup_a: A registered, f->a), its fixture f. */
#define FX_TEST(name) TU_FX_TEST(struct fx, name)

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->row = *state; /* the table row (initial state), or NULL */
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
	stk_issued_clear(&f->r);
	stk_issued_clear(&f->r2);
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

/* f->rq: the certificate der on the MP, no proof. */
static void
mp_request(struct fx *f, const unsigned char *der, size_t len)
{
	memset(&f->rq, 0, sizeof(f->rq));
	f->rq.via = STK_VIA_MP;
	f->rq.cert_der = der;
	f->rq.cert_len = len;
	f->rq.challenges = f->ch;
	f->rq.peer = "test";
}

/* What a device does on the HTTP MP: f->rq, A's certificate with a proof,
 * by the key `keyname`, over a challenge issued at now (f->nonce, f->proof). */
static void
pop_request(struct fx *f, const char *keyname, int64_t now)
{
	struct stk_key_opts ko;
	struct stk_key *k = NULL;
	unsigned char sig[512];
	size_t siglen = sizeof(sig);
	char path[PATH_MAX], x5t[44], *msg;
	int64_t exp;

	memset(&ko, 0, sizeof(ko));
	assert_int_equal(stk_challenge_issue(f->ch, now, f->nonce, &exp, &f->err), 0);
	stk_cert_x5t_s256(f->certA, f->lenA, x5t);
	msg = stk_pop_message(STK_POP_REGISTER, f->nonce, x5t);
	snprintf(path, sizeof(path), "%s/%s.key", f->dir, keyname);
	if (stk_key_open(path, &ko, &k, &f->err) != 0)
		fail_msg("open %s: %s", path, f->err.msg);
	assert_int_equal(stk_key_sign(k, (unsigned char *)msg, strlen(msg), sig, &siglen,
	    &f->err), 0);
	free(f->proof);
	assert_int_equal(stk_b64url_encode(sig, siglen, &f->proof), 0);
	stk_key_close(k);
	free(msg);
	mp_request(f, f->certA, f->lenA);
	f->rq.nonce = f->nonce;
	f->rq.proof = f->proof;
}

/* f->rq registers (into *out, or cleared when out is NULL). */
static void
reg_ok(struct fx *f, int64_t now, struct stk_issued *out)
{
	struct stk_issued tmp;
	enum stk_refusal reason;

	if (stk_device_register(f->s, &f->rq, now, out ? out : &tmp, &reason, &f->err) != 0)
		fail_msg("register: %s", f->err.msg);
	if (out == NULL)
		stk_issued_clear(&tmp);
}

/* A registers over the MP at now, with a proof by its own key. */
static void
reg_mp(struct fx *f, int64_t now, struct stk_issued *out)
{
	pop_request(f, "a", now);
	reg_ok(f, now, out);
}

/* A registered over the MP at t0, in f->a. */
static struct stk_issued *
reg_a(struct fx *f)
{
	reg_mp(f, f->t0, &f->a);
	return &f->a;
}

/* A fresh site (setup) where A registered over the MP at t0, in f->a. */
static int
setup_a(void **state)
{
	setup(state);
	reg_a(*state);
	return 0;
}

/* A bulk token (60 min), in f->bulk and f->rec. */
static const char *
new_bulk(struct fx *f)
{
	assert_int_equal(stk_bulk_new(f->s, 60, "t", &f->bulk, &f->rec, &f->err), 0);
	return f->bulk;
}

/* f->rq is refused with `want`: nothing registered, one more
 * "refused" audit record. */
static void
assert_refused(struct fx *f, int64_t now, enum stk_refusal want)
{
	struct stk_issued out;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	int devices = sf_device_count(f->s), refused = audit_count(f, NULL, "refused");

	assert_int_not_equal(stk_device_register(f->s, &f->rq, now, &out, &reason, &f->err), 0);
	assert_int_equal(reason, want);
	assert_int_equal(sf_device_count(f->s), devices);
	assert_int_equal(audit_count(f, NULL, "refused"), refused + 1);
}

/* A presents tok, with its own certificate or (cert_b) B's, at now: to
 * the gateway when out is NULL, else for renewal into *out. Returns
 * STK_REFUSAL_NONE when accepted, else the reason (and f->err). */
static enum stk_refusal
present(struct fx *f, const char *tok, int cert_b, int64_t now, struct stk_issued *out)
{
	const unsigned char *cert = cert_b ? f->certB : f->certA;
	size_t len = cert_b ? f->lenB : f->lenA;
	struct stk_device d;
	enum stk_refusal reason = STK_REFUSAL_NONE;

	if ((out == NULL ? stk_device_authenticate(f->s, tok, strlen(tok), cert, len, now,
	    &d, &reason, &f->err) : stk_device_renew(f->s, tok, strlen(tok), cert, len, now,
	    out, &reason, &f->err)) == 0)
		return STK_REFUSAL_NONE;
	assert_int_not_equal(reason, STK_REFUSAL_NONE);
	return reason;
}
#define gateway(f, tok, now) present(f, tok, 0, now, NULL)
#define renew(f, tok, now, out) present(f, tok, 0, now, out)

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
FX_TEST(test_mp_register_new_device)
{
	struct stk_device d;
	char x5t[44];

	assert_true(f->a.new_device);
	assert_non_null(f->a.token);
	assert_string_equal(f->a.dev.via, "mp");
	assert_int_equal(f->a.dev.token_exp - f->a.dev.last_issued_at, 90 * DAY);
	stk_cert_x5t_s256(f->certA, f->lenA, x5t);
	assert_string_equal(f->a.dev.thumbprint, x5t);
	assert_int_equal(stk_device_get(f->s, f->a.dev.guid, &d, &f->err), 0);
	assert_int_equal(d.allow_cmg, -1);
}

/* The same certificate again: same device (one row), new token, both audited. */
FX_TEST(test_mp_register_again_same_device)
{
	reg_mp(f, f->t0 + 10, &f->r);
	assert_false(f->r.new_device);
	assert_string_equal(f->r.dev.guid, f->a.dev.guid);
	assert_string_not_equal(f->r.dev.last_jti, f->a.dev.last_jti);
	assert_int_equal(sf_device_count(f->s), 1);
	assert_int_equal(audit_count(f, "device.register.mp", "ok"), 2);
}

/* An HTTPS MP that needs a credential refuses without one and registers with one. */
FX_TEST(test_https_mp_requires_credential)
{
	sf_tls_request(&f->rq, STK_VIA_MP, f->certA, f->lenA, NULL);
	f->rq.require_credential = 1;
	assert_refused(f, f->t0, STK_REFUSAL_CREDENTIAL);
	f->rq.trusted_credential = 1;
	reg_ok(f, f->t0, NULL);
}

/* Proof of possession (attacker 1, see refusal_cases): a proof registers
 * once; the same challenge replayed does not. */
FX_TEST(test_pop_replayed_challenge_refused)
{
	pop_request(f, "a", f->t0);
	reg_ok(f, f->t0 + 1, NULL);
	assert_refused(f, f->t0 + 2, STK_REFUSAL_CHALLENGE_INVALID);
	assert_int_equal(audit_count(f, "device.register.mp", "ok"), 1);
}

/* ---- registration through the CMG (TLS client certificate + bulk token) ---- */

/* A CMG registration records the bulk token it enrolled with. */
FX_TEST(test_cmg_register_with_bulk)
{
	sf_tls_request(&f->rq, STK_VIA_CMG, f->certA, f->lenA, new_bulk(f));
	reg_ok(f, f->t0, &f->r);
	assert_string_equal(f->r.dev.via, "cmg");
	assert_string_equal(f->r.dev.bulk_guid, f->rec.guid);
}

/* Attacker 1 with a bulk token and any TLS certificate: a body naming
 * another certificate (a victim's public one) is refused; the TLS one is
 * what registers. */
FX_TEST(test_tls_body_cert_must_match)
{
	sf_tls_request(&f->rq, STK_VIA_CMG, f->certB, f->lenB, new_bulk(f));
	f->rq.cert_der = f->certA;
	f->rq.cert_len = f->lenA;
	assert_refused(f, f->t0, STK_REFUSAL_BINDING);
	f->rq.cert_der = f->certB;
	f->rq.cert_len = f->lenB;
	reg_ok(f, f->t0, NULL);
}

/* ---- registration refusals: one row (one cmocka test, by name) each ---- */

enum req_shape {
	REQ_BODY = 1, /* the MP, the certificate in the body, no proof */
	REQ_POP,      /* the MP, A's certificate with a proof by key .pop */
	REQ_TLS_MP,   /* the MP over HTTPS: the handshake's certificate */
	REQ_CMG,      /* the CMG: the handshake's certificate, bulk token */
};
enum { CERT_NONE, CERT_A, CERT_B, CERT_JUNK };

struct refusal_case {
	const char *name;
	const char *off;      /* this setting turned off first, or NULL */
	int prior;            /* A registered over the MP first */
	enum req_shape req;
	int cert;             /* CERT_*: the certificate presented */
	int bulk;             /* 1: with a bulk token, 2: a blocked one */
	const char *pop;      /* REQ_POP: the key that signs the challenge */
	int forge;            /* REQ_POP: one character of the nonce changed */
	int64_t late;         /* the request arrives t0 + late */
	enum stk_refusal want;
	int http;             /* the status the reason maps to, when checked */
};

static const struct refusal_case refusal_cases[] = {
	/* Bytes that are not a certificate. */
	{ .name = "test_refuse_bad_certificate", .req = REQ_BODY, .cert = CERT_JUNK,
	  .want = STK_REFUSAL_BAD_CERTIFICATE },
	/* With internal registration off the MP registers nobody. */
	{ .name = "test_refuse_internal_registration_off", .off = STK_SETTING_INTERNAL_REG,
	  .req = REQ_TLS_MP, .cert = CERT_A, .want = STK_REFUSAL_INTERNAL_DISABLED },
	/* Proof of possession (attacker 1, network: A's certificate is
	 * public; before, any post of it re-registered A): a certificate
	 * without a proof; B's key signing a challenge for A's certificate;
	 * a nonce with one character changed (fails the challenge MAC); the
	 * genuine proof after the challenge's lifetime. */
	{ .name = "test_pop_required", .prior = 1, .req = REQ_BODY, .cert = CERT_A,
	  .want = STK_REFUSAL_PROOF_REQUIRED },
	{ .name = "test_pop_by_other_key_refused", .prior = 1, .req = REQ_POP, .pop = "b",
	  .want = STK_REFUSAL_PROOF_INVALID },
	{ .name = "test_pop_forged_nonce_refused", .req = REQ_POP, .pop = "a", .forge = 1,
	  .want = STK_REFUSAL_CHALLENGE_INVALID },
	{ .name = "test_pop_expired_challenge_refused", .req = REQ_POP, .pop = "a",
	  .late = STK_CHALLENGE_TTL, .want = STK_REFUSAL_CHALLENGE_INVALID },
	/* The CMG refuses a client certificate without a bulk token, and a
	 * request without a client certificate. */
	{ .name = "test_refuse_cmg_without_bulk_token", .req = REQ_CMG, .cert = CERT_A,
	  .want = STK_REFUSAL_NO_TOKEN },
	{ .name = "test_refuse_cmg_without_client_cert", .req = REQ_CMG, .bulk = 1,
	  .want = STK_REFUSAL_NO_CLIENT_CERT },
	/* A blocked bulk token registers no more devices. */
	{ .name = "test_blocked_bulk_refuses_registration", .req = REQ_CMG, .cert = CERT_B,
	  .bulk = 2, .want = STK_REFUSAL_BULK_BLOCKED },
	/* Item 5: with allow-cmg off a CMG registration is refused 403
	 * cloud_gateway_disabled before the bulk token is checked: no
	 * enrollment counted for the token. Before: it registered, then every
	 * request was refused. */
	{ .name = "test_cmg_registration_allow_cmg_off", .off = STK_SETTING_ALLOW_CMG,
	  .req = REQ_CMG, .cert = CERT_A, .bulk = 1, .want = STK_REFUSAL_CMG_DISABLED,
	  .http = 403 },
};

/* The request of row f->row is refused with its reason (assert_refused:
 * nothing registered, one more refusal audited); a bulk token it carried
 * counts no enrollment. */
FX_TEST(test_refusal)
{
	const struct refusal_case *c = f->row;
	unsigned char junk[8] = { 0x30, 0x03, 1, 2, 3, 4, 5, 6 };
	const unsigned char *der[] = { NULL, f->certA, f->certB, junk };
	size_t len[] = { 0, f->lenA, f->lenB, sizeof(junk) };

	if (c->off != NULL)
		assert_int_equal(stk_setting_set(f->s, c->off, "off", "t", &f->err), 0);
	if (c->prior)
		reg_a(f);
	if (c->bulk)
		new_bulk(f);
	if (c->bulk == 2)
		assert_int_equal(stk_bulk_set_blocked(f->s, f->rec.guid, 1, "t", &f->err), 0);
	if (c->req == REQ_BODY)
		mp_request(f, der[c->cert], len[c->cert]);
	else if (c->req == REQ_POP)
		pop_request(f, c->pop, f->t0);
	else
		sf_tls_request(&f->rq, c->req == REQ_CMG ? STK_VIA_CMG : STK_VIA_MP,
		    der[c->cert], len[c->cert], f->bulk);
	if (c->forge)
		f->nonce[3] = f->nonce[3] == 'A' ? 'B' : 'A';
	assert_refused(f, f->t0 + c->late, c->want);
	if (c->http != 0)
		assert_int_equal(stk_refusal_http(c->want), c->http);
	if (c->bulk)
		assert_int_equal(bulk_devices(f), 0);
}

/* ---- the gateway (client token + TLS client certificate) ---- */

/* A client token works with its own certificate only (binding). */
FX_TEST(test_token_bound_to_cert)
{
	struct stk_device d;
	enum stk_refusal reason;

	assert_int_equal(gateway(f, f->a.token, f->t0), STK_REFUSAL_NONE);
	assert_int_equal(stk_device_authenticate(f->s, f->a.token, strlen(f->a.token),
	    f->certB, f->lenB, f->t0, &d, &reason, &f->err), STK_E_TOKEN_BINDING);
	assert_int_equal(reason, STK_REFUSAL_BINDING);
}

/* A bulk token is not a client token at the gateway. */
FX_TEST(test_bulk_token_not_client_token)
{
	assert_int_equal(gateway(f, new_bulk(f), f->t0), STK_REFUSAL_TOKEN_TYPE);
}

/* allow-cmg off refuses the gateway; a device override lets it in; default refuses. */
FX_TEST(test_allow_cmg_site_and_device_override)
{
	assert_int_equal(stk_setting_set(f->s, STK_SETTING_ALLOW_CMG, "off", "t", &f->err), 0);
	assert_int_equal(gateway(f, f->a.token, f->t0), STK_REFUSAL_CMG_DISABLED);
	assert_int_equal(stk_device_set_allow_cmg(f->s, f->a.dev.guid, 1, "t", &f->err), 0);
	assert_int_equal(gateway(f, f->a.token, f->t0), STK_REFUSAL_NONE);
	assert_int_equal(stk_device_set_allow_cmg(f->s, f->a.dev.guid, -1, "t", &f->err), 0);
	assert_int_equal(gateway(f, f->a.token, f->t0), STK_REFUSAL_CMG_DISABLED);
}

/* A blocked device is refused at the gateway, and let in once unblocked. */
FX_TEST(test_blocked_device_refused)
{
	assert_int_equal(stk_device_set_blocked(f->s, f->a.dev.guid, 1, "t", &f->err), 0);
	assert_int_equal(gateway(f, f->a.token, f->t0), STK_REFUSAL_DEVICE_BLOCKED);
	assert_int_equal(stk_device_set_blocked(f->s, f->a.dev.guid, 0, "t", &f->err), 0);
	assert_int_equal(gateway(f, f->a.token, f->t0), STK_REFUSAL_NONE);
}

/* Unknown settings and values are refused. */
FX_TEST(test_unknown_settings_refused)
{
	assert_int_equal(stk_setting_set(f->s, "nope", "on", "t", &f->err), STK_E_ARG);
	assert_int_equal(stk_setting_set(f->s, STK_SETTING_ALLOW_CMG, "maybe", "t", &f->err),
	    STK_E_ARG);
}

/* ---- renewal ---- */

/* Day 31: renewed, valid 90 days from the renewal, same device, audited. */
FX_TEST(test_renewal_extends_from_renewal)
{
	assert_int_equal(renew(f, f->a.token, f->t0 + 31 * DAY, &f->r), STK_REFUSAL_NONE);
	assert_int_equal(f->r.dev.token_exp, f->t0 + 121 * DAY);
	assert_string_equal(f->r.dev.guid, f->a.dev.guid);
	assert_int_equal(audit_count(f, "device.renew", "ok"), 1);
}

/* Renewal with another certificate is refused (binding), audited. */
FX_TEST(test_renewal_with_other_cert_refused)
{
	assert_int_equal(present(f, f->a.token, 1, f->t0 + 31 * DAY, &f->r), STK_REFUSAL_BINDING);
	assert_int_equal(audit_count(f, "device.renew", "refused"), 1);
}

/* An expired token does not renew (no token); the message says: internal network. */
FX_TEST(test_renewal_after_expiry_refused)
{
	assert_int_equal(renew(f, f->a.token, f->t0 + 91 * DAY, &f->r), STK_REFUSAL_TOKEN_EXPIRED);
	assert_non_null(strstr(f->err.msg, "internal network"));
	assert_null(f->r.token);
	assert_int_equal(audit_count(f, "device.renew", "refused"), 1);
}

/* Attacker 6 (lost message): the renewal response is lost; the retry with
 * the token the device still holds gets a working token and the lost one
 * is dead. Before: the retry was refused token_superseded (locked out). */
FX_TEST(test_lost_renewal_retry)
{
	int64_t t = f->t0 + 31 * DAY;

	assert_int_equal(renew(f, f->a.token, t, &f->r), STK_REFUSAL_NONE);
	assert_int_equal(renew(f, f->a.token, t + 5, &f->r2), STK_REFUSAL_NONE);
	assert_int_equal(gateway(f, f->r2.token, t + 6), STK_REFUSAL_NONE);
	assert_int_equal(gateway(f, f->r.token, t + 6), STK_REFUSAL_SUPERSEDED);
}

/* Once the renewed token is used, the old one is superseded: it neither
 * passes the gateway nor renews (nor passes after the refused renewal). */
FX_TEST(test_used_renewal_finishes_old_token)
{
	int64_t t = f->t0 + 31 * DAY;

	assert_int_equal(renew(f, f->a.token, t, &f->r), STK_REFUSAL_NONE);
	assert_int_equal(gateway(f, f->r.token, t + 6), STK_REFUSAL_NONE);
	assert_int_equal(gateway(f, f->a.token, t + 6), STK_REFUSAL_SUPERSEDED);
	assert_int_equal(renew(f, f->a.token, t + 7, &f->r2), STK_REFUSAL_SUPERSEDED);
	assert_int_equal(gateway(f, f->a.token, t + 7), STK_REFUSAL_SUPERSEDED);
}

/* Attacker 6: a lost registration response; the retry leaves one device, one valid token. */
FX_TEST(test_lost_registration_retry)
{
	struct stk_issued *lost = reg_a(f);

	reg_mp(f, f->t0 + 3, &f->r);
	assert_string_equal(f->r.dev.guid, lost->dev.guid);
	assert_int_equal(sf_device_count(f->s), 1);
	assert_int_equal(gateway(f, f->r.token, f->t0 + 4), STK_REFUSAL_NONE);
	assert_int_not_equal(gateway(f, lost->token, f->t0 + 4), STK_REFUSAL_NONE);
}

/* ---- bulk tokens and their devices ---- */

static int
dev_guid_cb(void *ctx, const struct stk_device *d)
{
	snprintf(ctx, STK_GUID_LEN + 1, "%s", d->guid);
	return 0;
}

/* A CMG registration with bulk token 1 for A (f->r), then A over the MP. */
static void
enrol_then_mp(struct fx *f)
{
	sf_tls_request(&f->rq, STK_VIA_CMG, f->certA, f->lenA, new_bulk(f));
	reg_ok(f, f->t0, &f->r);
	reg_mp(f, f->t0 + 5, &f->r2);
	assert_string_equal(f->r2.dev.via, "mp");
}

/* Item 6: the enrollment history survives re-registration: the device
 * still counts for token 1 and is listed by it. Before: the count fell to
 * 0 and nothing tied the device to the token. */
FX_TEST(test_enrollment_history_survives)
{
	char listed[STK_GUID_LEN + 1] = "";

	enrol_then_mp(f);
	assert_int_equal(bulk_devices(f), 1);
	assert_int_equal(stk_device_foreach_bulk(f->s, f->rec.guid, dev_guid_cb, listed, &f->err), 0);
	assert_string_equal(listed, f->r.dev.guid);
}

/* `devices block --bulk` blocks the token's devices (audited); a second run blocks none. */
FX_TEST(test_block_bulk_blocks_its_devices)
{
	struct stk_device d;
	long n = -1;

	enrol_then_mp(f);
	assert_int_equal(stk_device_block_bulk(f->s, f->rec.guid, "admin", &n, &f->err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(stk_device_get(f->s, f->r.dev.guid, &d, &f->err), 0);
	assert_true(d.blocked);
	assert_int_equal(audit_count(f, "bulk.block_devices", "ok"), 1);
	assert_int_equal(audit_count(f, "device.block", "ok"), 1);
	assert_int_equal(stk_device_block_bulk(f->s, f->rec.guid, "admin", &n, &f->err), 0);
	assert_int_equal(n, 0);
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
FX_TEST(test_verdict_superseded)
{
	reg_mp(f, f->t0 + 1, &f->r);
	assert_int_equal(verdict(f, f->a.token), STK_REFUSAL_SUPERSEDED);
	assert_int_equal(verdict(f, f->r.token), STK_REFUSAL_NONE);
}

/* A blocked device's current token gets device_blocked. */
FX_TEST(test_verdict_blocked)
{
	assert_int_equal(stk_device_set_blocked(f->s, f->a.dev.guid, 1, "t", &f->err), 0);
	assert_int_equal(verdict(f, f->a.token), STK_REFUSAL_DEVICE_BLOCKED);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define TA(name) cmocka_unit_test_setup_teardown(name, setup_a, teardown)
#define NREFUSAL (sizeof(refusal_cases) / sizeof(refusal_cases[0]))

int
main(void)
{
	const struct CMUnitTest fixed[] = {
		TA(test_mp_register_new_device), TA(test_mp_register_again_same_device),
		T(test_https_mp_requires_credential), T(test_pop_replayed_challenge_refused),
		T(test_cmg_register_with_bulk), T(test_tls_body_cert_must_match),
		TA(test_token_bound_to_cert), T(test_bulk_token_not_client_token),
		TA(test_allow_cmg_site_and_device_override), TA(test_blocked_device_refused),
		T(test_unknown_settings_refused), TA(test_renewal_extends_from_renewal),
		TA(test_renewal_with_other_cert_refused), TA(test_renewal_after_expiry_refused),
		TA(test_lost_renewal_retry), TA(test_used_renewal_finishes_old_token),
		T(test_lost_registration_retry),
		T(test_enrollment_history_survives), T(test_block_bulk_blocks_its_devices),
		TA(test_verdict_superseded), TA(test_verdict_blocked),
	};
	struct CMUnitTest tests[sizeof(fixed) / sizeof(fixed[0]) + NREFUSAL];
	size_t i, n = 0;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		tests[n++] = fixed[i];
	/* Each refusal row its own test, named by the row, on a fresh site. */
	for (i = 0; i < NREFUSAL; i++)
		tests[n++] = (struct CMUnitTest){ refusal_cases[i].name, test_refusal, setup,
		    teardown, (void *)&refusal_cases[i] };
	return _cmocka_run_group_tests("test_device", tests, n, NULL, NULL);
}
