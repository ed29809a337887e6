/* Devices: registration (gateway checks: gateway.c; settings: settings.c).
 *
 * Policy lives here so the server stays thin: it hands over what it saw
 * (certificate DER, token text, transport) and maps the reason code we
 * return to an HTTP status. Every change and every refusal is audited; a
 * change and its audit record share one transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include "sitetoken/attest_policy.h"
#include "sitetoken/bulklimits.h"
#include "sitetoken/cert.h"
#include "sitetoken/devcert.h"
#include "sitetoken/device.h"
#include "sitetoken/log.h"
#include "sitetoken/oidc.h"
#include "registration_int.h"
#include "oidc_int.h"

void
stk_issued_clear(struct stk_issued *r)
{
	if (r == NULL)
		return;
	stk_token_free(r->token);
	memset(r, 0, sizeof(*r));
}

/* Record a refusal in its own transaction. Best effort: a refusal is
 * returned to the caller even when the audit write fails (logged). */
void
dev_audit_refusal(struct stk_site *s, const char *actor, const char *event,
    const char *subject, enum stk_refusal reason, const struct stk_error *why)
{
	struct stk_error e;
	char detail[160];

	stk_error_clear(&e);
	snprintf(detail, sizeof(detail), "%.40s: %.110s", stk_refusal_code(reason),
	    why != NULL && why->msg[0] ? why->msg : "");
	if (stk_audit_append(s, actor ? actor : "device", event, subject ? subject : "",
	    "refused", detail, &e) != 0)
		STK_LOG(STK_LOG_ERROR, "device", "cannot audit a refusal: %s", e.msg);
}

static int
dev_row(struct site_stmt *st, void *arg)
{
	struct stk_device *d = arg;
	const char *t;

	memset(d, 0, sizeof(*d));
	snprintf(d->guid, sizeof(d->guid), "%s", db_column_text(st, 0));
	snprintf(d->thumbprint, sizeof(d->thumbprint), "%s",
	    db_column_text(st, 1));
	d->registered_at = db_column_int64(st, 2);
	snprintf(d->via, sizeof(d->via), "%s", db_column_text(st, 3));
	if ((t = db_column_text(st, 4)) != NULL)
		snprintf(d->bulk_guid, sizeof(d->bulk_guid), "%s", t);
	d->blocked = db_column_int(st, 5);
	d->allow_cmg = db_column_is_null(st, 6) ? -1 :
	    db_column_int(st, 6);
	if ((t = db_column_text(st, 7)) != NULL)
		snprintf(d->last_jti, sizeof(d->last_jti), "%s", t);
	d->last_issued_at = db_column_int64(st, 8);
	d->token_exp = db_column_int64(st, 9);
	if ((t = db_column_text(st, 10)) != NULL)
		snprintf(d->prev_jti, sizeof(d->prev_jti), "%s", t);
	d->token_used = db_column_int(st, 11);
	return STK_OK;
}

#define DEV_COLUMNS "guid, cert_thumbprint, registered_at, via, bulk_guid," \
	" blocked, allow_cmg, last_token_jti, last_issued_at, token_exp," \
	" prev_token_jti, token_used"

/* by: "guid" or "cert_thumbprint". */
int
dev_lookup(struct stk_site *s, const char *by, const char *key,
    struct stk_device *d, struct stk_error *err)
{
	char sql[256];
	int r;

	memset(d, 0, sizeof(*d));
	snprintf(sql, sizeof(sql), "SELECT " DEV_COLUMNS " FROM devices WHERE %s = ?", by);
	r = site_row_get(s, sql, &key, 1, "reading devices", dev_row, d, err);
	if (r == STK_E_NOTFOUND)
		r = stk_error_set(err, r, STK_LAYER_NONE, 0, "no device %s on this site", key);
	return r;
}

int
stk_device_get(struct stk_site *s, const char *guid, struct stk_device *dev,
    struct stk_error *err)
{
	char g[STK_GUID_LEN + 1];
	int r;

	memset(dev, 0, sizeof(*dev));
	if ((r = site_guid_arg(guid, g, err)) != 0)
		return r;
	return dev_lookup(s, "guid", g, dev, err);
}

/* Each device `sql` (DEV_COLUMNS; key, when not NULL, bound to its one
 * `?`) selects, to cb until it returns non-zero. */
static int
dev_each(struct stk_site *s, const char *sql, const char *key, stk_device_cb cb,
    void *ctx, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	struct stk_device d;
	int rc = SITE_DB_ERROR, r = STK_OK;

	if (db_prepare(s->store, sql, &st) != 0 ||
	    (key != NULL && db_bind_text(st, 1, key) != 0)) {
		r = site_db_error(s, err, "reading devices");
		goto out;
	}
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		dev_row(st, &d);
		if ((r = cb(ctx, &d)) != 0)
			break;
	}
	if (r == 0 && rc != SITE_DB_DONE)
		r = site_db_error(s, err, "reading devices");
out:
	db_finalize(st);
	return r;
}

int
stk_device_foreach(struct stk_site *s, stk_device_cb cb, void *ctx,
    struct stk_error *err)
{
	return dev_each(s, "SELECT " DEV_COLUMNS " FROM devices ORDER BY registered_at,"
	    " guid", NULL, cb, ctx, err);
}

/* UPDATE devices SET <col> = value (NULL when value < 0) WHERE guid. */
static int
dev_update_flag(struct stk_site *s, const char *guid, const char *col,
    int value, const char *actor, const char *event, const char *detail,
    struct stk_error *err)
{
	struct stk_device d;
	struct site_stmt *st = NULL;
	char sql[128];
	int r, in_tx = 0;

	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	in_tx = 1;
	if ((r = stk_device_get(s, guid, &d, err)) != 0)
		goto out;
	snprintf(sql, sizeof(sql), "UPDATE devices SET %s = ? WHERE guid = ?", col);
	if (db_prepare(s->store, sql, &st) != 0) {
		r = site_db_error(s, err, "updating the device");
		goto out;
	}
	if ((value < 0 ?
	    db_bind_null(st, 1) :
	    db_bind_int64(st, 1, value)) != 0 ||
	    db_bind_text(st, 2, d.guid) != 0 ||
	    db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "updating the device");
		goto out;
	}
	db_finalize(st);
	st = NULL;
	if ((r = site_gw_bump(s, err)) != 0 ||
	    (r = stk_audit_append(s, actor, event, d.guid, "ok", detail, err)) != 0)
		goto out;
	in_tx = 0;
	r = stk_site_tx_commit(s, err);
out:
	db_finalize(st);
	if (in_tx)
		stk_site_tx_rollback(s);
	return r;
}

int
stk_device_set_blocked(struct stk_site *s, const char *guid, int block,
    const char *actor, struct stk_error *err)
{
	return dev_update_flag(s, guid, "blocked", block ? 1 : 0, actor,
	    block ? "device.block" : "device.unblock", "", err);
}

int
stk_device_set_allow_cmg(struct stk_site *s, const char *guid, int allow,
    const char *actor, struct stk_error *err)
{
	const char *v = allow < 0 ? "site default" : allow ? "on" : "off";
	char detail[48];

	snprintf(detail, sizeof(detail), "%s=%s", STK_SETTING_ALLOW_CMG, v);
	return dev_update_flag(s, guid, "allow_cmg", allow < 0 ? -1 : allow ? 1 : 0,
	    actor, "setting.device", detail, err);
}

/* Issue a token for device d and write the row. Registration (cert_der
 * set): insert when is_new, else point the row at this certificate. Renewal
 * and re-key: only when the device's latest jti is still expect_jti (read
 * before the write lock: a renewal another node committed since makes this
 * one lose); prev_jti is the token presented. Caller holds the transaction.
 * STK_E_EXISTS when the conditional update found a newer token. */
static int
dev_issue_store_pre(struct stk_site *s, struct stk_device *d, int is_new,
    const unsigned char *cert_der, size_t cert_len, const char *expect_jti,
    const char *prev_jti, int64_t now, struct stk_reg_checked *pre, char **token,
    struct stk_error *err)
{
	const struct stk_signer *signer;
	struct site_stmt *st = NULL;
	const char *sql;
	int r;

	*token = NULL;
	if ((r = stk_site_signer(s, &signer, err)) != 0)
		goto out;
	if (pre != NULL && pre->token != NULL && pre->signer == signer &&
	    pre->signed_at == now && strcmp(pre->guid, d->guid) == 0) {
		/* Signed ahead, outside the lock, for this device by this key. */
		*token = pre->token;
		pre->token = NULL;
		snprintf(d->last_jti, sizeof(d->last_jti), "%s", pre->jti);
	} else if ((r = stk_issue_client_att(signer, d->guid, d->thumbprint,
	    d->attestation, now, STK_CLIENT_TOKEN_LIFETIME, token, d->last_jti,
	    err)) != 0)
		goto out;
	d->last_issued_at = now;
	d->token_exp = now + STK_CLIENT_TOKEN_LIFETIME;
	/* The key retires only after this token expires (site/keys/keys.c). */
	if ((r = site_keys_issued(s, stk_signer_kid(signer), d->token_exp, err)) != 0)
		goto out;
	d->token_used = 0;
	snprintf(d->prev_jti, sizeof(d->prev_jti), "%s", cert_der == NULL && prev_jti ?
	    prev_jti : "");
	if (is_new)
		sql = "INSERT INTO devices (guid, cert_thumbprint, cert, registered_at,"
		    " via, bulk_guid, blocked, allow_cmg, last_token_jti, last_issued_at,"
		    " token_exp, prev_token_jti, token_used) VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
		    " 0, NULL, ?7, ?8, ?9, NULL, 0)";
	else if (cert_der != NULL && expect_jti == NULL)
		sql = "UPDATE devices SET cert_thumbprint = ?2, cert = ?3, registered_at = ?4,"
		    " via = ?5, bulk_guid = ?6, last_token_jti = ?7, last_issued_at = ?8,"
		    " token_exp = ?9, prev_token_jti = NULL, token_used = 0 WHERE guid = ?1";
	else if (cert_der != NULL)
		sql = "UPDATE devices SET cert_thumbprint = ?2, cert = ?3,"
		    " last_token_jti = ?7, last_issued_at = ?8, token_exp = ?9,"
		    " prev_token_jti = NULL, token_used = 0 WHERE guid = ?1"
		    " AND last_token_jti = ?10";
	else
		sql = "UPDATE devices SET last_token_jti = ?7, last_issued_at = ?8,"
		    " token_exp = ?9, prev_token_jti = ?11, token_used = 0"
		    " WHERE guid = ?1 AND cert_thumbprint = ?2 AND last_token_jti = ?10";
	if (db_prepare(s->store, sql, &st) != 0) {
		r = site_db_error(s, err, "recording the device");
		goto out;
	}
	r = db_bind_text(st, 1, d->guid) | db_bind_text(st, 2, d->thumbprint);
	if (cert_der != NULL)
		r |= db_bind_blob(st, 3, cert_der, cert_len);
	if (is_new || (cert_der != NULL && expect_jti == NULL)) {
		r |= db_bind_int64(st, 4, d->registered_at) | db_bind_text(st, 5, d->via);
		r |= d->bulk_guid[0] ? db_bind_text(st, 6, d->bulk_guid) : db_bind_null(st, 6);
	}
	r |= db_bind_text(st, 7, d->last_jti) | db_bind_int64(st, 8, d->last_issued_at) |
	    db_bind_int64(st, 9, d->token_exp);
	if (!is_new && expect_jti != NULL) {
		r |= db_bind_text(st, 10, expect_jti);
		if (cert_der == NULL)
			r |= db_bind_text(st, 11, prev_jti ? prev_jti : "");
	}
	if (r != 0 || db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "recording the device");
		goto out;
	}
	if (db_changes(s->store) != 1) {
		r = is_new || expect_jti == NULL ? site_db_error(s, err,
		    "recording the device") : stk_error_set(err, STK_E_EXISTS,
		    STK_LAYER_NONE, 0, "device %s got a newer token meanwhile (another "
		    "renewal won)", d->guid);
		goto out;
	}
	/* A renewal, re-key or re-registration supersedes the token gateways
	 * may hold with this device's state (core/gwgen.c). */
	if (!is_new && (r = site_gw_bump(s, err)) != 0)
		goto out;
	r = STK_OK;
out:
	db_finalize(st);
	if (r != 0) {
		stk_token_free(*token);
		*token = NULL;
	}
	return r;
}

int
dev_issue_store(struct stk_site *s, struct stk_device *d, int is_new,
    const unsigned char *cert_der, size_t cert_len, const char *expect_jti,
    const char *prev_jti, int64_t now, char **token, struct stk_error *err)
{
	return dev_issue_store_pre(s, d, is_new, cert_der, cert_len, expect_jti,
	    prev_jti, now, NULL, token, err);
}

/* Append to the enrollment history (never updated, never deleted). */
static int
dev_history_append(struct stk_site *s, const struct stk_device *d, const char *peer,
    int64_t now, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r;

	if (db_prepare(s->store, "INSERT INTO registrations (device_guid, cert_thumbprint,"
	    " via, bulk_guid, peer, at) VALUES (?, ?, ?, ?, ?, ?)", &st) != 0)
		return site_db_error(s, err, "recording the registration");
	r = db_bind_text(st, 1, d->guid) | db_bind_text(st, 2, d->thumbprint) |
	    db_bind_text(st, 3, d->via) | (d->bulk_guid[0] ?
	    db_bind_text(st, 4, d->bulk_guid) : db_bind_null(st, 4)) |
	    db_bind_text(st, 5, peer ? peer : "") | db_bind_int64(st, 6, now);
	if (r != 0 || db_step(st) != SITE_DB_DONE)
		r = site_db_error(s, err, "recording the registration");
	db_finalize(st);
	return r;
}

/* allow-cmg for a certificate about to register through the CMG: the known
 * device's own value, else the site default. */
static int
dev_cmg_allowed(struct stk_site *s, const char *thumb, int *on, struct stk_error *err)
{
	struct stk_device d;
	int r;

	*on = 1;
	r = dev_lookup(s, "cert_thumbprint", thumb, &d, err);
	if (r == 0 && d.allow_cmg >= 0) {
		*on = d.allow_cmg;
		return STK_OK;
	}
	if (r != 0 && r != STK_E_NOTFOUND)
		return r;
	return stk_setting_get_bool(s, STK_SETTING_ALLOW_CMG, 1, on, err);
}

/* Proof of possession for a registration: which certificate is registered
 * and how its key was proved. */
static int
dev_reg_proof(const struct stk_reg_request *req, int64_t now,
    const unsigned char **der, size_t *len, char thumb[44],
    enum stk_refusal *reason, struct stk_error *err)
{
	char *msg = NULL;
	int r;

	*der = NULL;
	*len = 0;
	if (req->tls || req->via == STK_VIA_CMG) {
		/* The handshake proved the key of the TLS client certificate. */
		if (req->tls_cert_der == NULL || req->tls_cert_len == 0) {
			*reason = STK_REFUSAL_NO_CLIENT_CERT;
			return stk_error_set(err, STK_E_TOKEN_BINDING, STK_LAYER_TOKEN, 0,
			    "registration over TLS needs the device certificate as the TLS "
			    "client certificate");
		}
		if (req->cert_der != NULL && (req->cert_len != req->tls_cert_len ||
		    memcmp(req->cert_der, req->tls_cert_der, req->cert_len) != 0)) {
			*reason = STK_REFUSAL_BINDING;
			return stk_error_set(err, STK_E_TOKEN_BINDING, STK_LAYER_TOKEN, 0,
			    "the certificate in the body is not the TLS client certificate");
		}
		*der = req->tls_cert_der;
		*len = req->tls_cert_len;
		if ((r = stk_device_cert_check(*der, *len, now, thumb, err)) != 0)
			*reason = STK_REFUSAL_BAD_CERTIFICATE;
		return r;
	}
	if ((r = stk_device_cert_check(req->cert_der, req->cert_len, now, thumb,
	    err)) != 0) {
		*reason = STK_REFUSAL_BAD_CERTIFICATE;
		return r;
	}
	if (req->nonce == NULL || req->proof == NULL || req->challenges == NULL) {
		*reason = STK_REFUSAL_PROOF_REQUIRED;
		return stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "registration needs a proof of possession: sign a challenge "
		    "(POST .../challenge) with the device key");
	}
	if ((r = stk_challenge_check(req->challenges, req->nonce, now, err)) != 0) {
		*reason = STK_REFUSAL_CHALLENGE_INVALID;
		return r;
	}
	if ((msg = stk_pop_message(STK_POP_REGISTER, req->nonce, thumb)) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	r = stk_pop_verify(req->cert_der, req->cert_len, msg, req->proof, err);
	free(msg);
	if (r != 0) {
		*reason = r == STK_E_NOMEM ? STK_REFUSAL_INTERNAL : STK_REFUSAL_PROOF_INVALID;
		return r;
	}
	/* Single use, marked only once the signature verified. */
	if ((r = stk_challenge_consume(req->challenges, req->nonce, now, err)) != 0) {
		*reason = STK_REFUSAL_CHALLENGE_INVALID;
		return r;
	}
	*der = req->cert_der;
	*len = req->cert_len;
	return STK_OK;
}

void
stk_reg_checked_clear(struct stk_reg_checked *c)
{
	if (c == NULL)
		return;
	stk_claims_clear(&c->bulk);
	stk_token_free(c->token);
	memset(c, 0, sizeof(*c));
}

/* Everything of a registration that only reads: proof of possession,
 * certificate rules, the site's switches, the bulk token's signature,
 * record, block and source. No lock and no write: the server runs it on
 * its worker thread's own handle, so a junk request costs neither the
 * registration lock nor a transaction. */
int
stk_device_register_check(struct stk_site *s, const struct stk_reg_request *req,
    int64_t now, struct stk_reg_checked *c, enum stk_refusal *reason,
    struct stk_error *err)
{
	int r, on;

	memset(c, 0, sizeof(*c));
	*reason = STK_REFUSAL_INTERNAL;
	if (req->bulk_token != NULL && req->id_token != NULL) {
		*reason = STK_REFUSAL_CREDENTIAL_CONFLICT;
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "give a bulk token or an ID token, not both");
		goto out;
	}
	if ((r = dev_reg_proof(req, now, &c->der, &c->derlen, c->thumb, reason,
	    err)) != 0)
		goto out;
	if (req->via == STK_VIA_MP) {
		if ((r = stk_setting_get_bool(s, STK_SETTING_INTERNAL_REG, 1, &on, err)) != 0)
			goto out;
		if (!on) {
			*reason = STK_REFUSAL_INTERNAL_DISABLED;
			r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
			    "internal registration is turned off on this site");
			goto out;
		}
	} else {
		/* Before the bulk token is looked at (or counted as used). */
		if ((r = dev_cmg_allowed(s, c->thumb, &on, err)) != 0)
			goto out;
		if (!on) {
			*reason = STK_REFUSAL_CMG_DISABLED;
			r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
			    "client setting 'allow cloud gateway' is off: register with "
			    "the management point on the internal network");
			goto out;
		}
	}
	if (req->bulk_token != NULL) {
		if ((r = stk_bulk_check(s, req->bulk_token, req->bulk_len, now, &c->bulk,
		    err)) != 0) {
			*reason = stk_refusal_of_rc(r);
			goto out;
		}
		if ((r = stk_bulk_limits_source_check(s, c->bulk.id, req->peer, err)) != 0) {
			if (r == STK_E_TOKEN_SOURCE)
				*reason = STK_REFUSAL_BULK_SOURCE;
			goto out;
		}
	} else if (req->id_token != NULL) {
		/* Issuer trusted (its record signed by the site key), signature,
		 * claims (oidc_site.c): reads only, as the rest of the check. */
		if ((r = stk_oidc_check(s, req->id_token, req->id_token_len, now, &c->idt,
		    reason, err)) != 0)
			goto out;
		c->have_idt = 1;
	} else if (req->via == STK_VIA_CMG ||
	    (req->require_credential && !req->trusted_credential)) {
		*reason = req->via == STK_VIA_CMG ? STK_REFUSAL_NO_TOKEN : STK_REFUSAL_CREDENTIAL;
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0, "%s",
		    req->via == STK_VIA_CMG ?
		    "registration through the cloud gateway needs a bulk registration token "
		    "or an ID token" :
		    "registration over HTTPS needs a trusted client certificate, a bulk "
		    "registration token or an ID token");
		goto out;
	}
	/* Attestation policy (site/registration/attest_policy.c). */
	if ((r = stk_attest_required(s, req->bulk_token ? c->bulk.id : NULL, &on, err)) != 0)
		goto out;
	if (on && (req->attestation == NULL || strcmp(req->attestation, "tpm") != 0)) {
		*reason = STK_REFUSAL_ATTESTATION_REQUIRED;
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0, "this site "
		    "requires a TPM-attested device key: register with attestation "
		    "evidence (docs/api.md, attested registration)");
		goto out;
	}
	*reason = STK_REFUSAL_NONE;
	r = STK_OK;
out:
	return r;
}

void
stk_device_register_refused(struct stk_site *s, const struct stk_reg_request *req,
    const struct stk_reg_checked *c, enum stk_refusal reason,
    const struct stk_error *why)
{
	if (reason == STK_REFUSAL_INTERNAL || reason == STK_REFUSAL_NONE)
		return; /* a failure, not a policy refusal: the caller logs it */
	dev_audit_refusal(s, req->peer ? req->peer : "device", req->via == STK_VIA_CMG ?
	    "device.register.cmg" : "device.register.mp", req->bulk_token &&
	    c->bulk.id[0] ? c->bulk.id : c->thumb, reason, why);
}

int
stk_device_register_refusal_counted(struct stk_site *s,
    const struct stk_reg_request *req, enum stk_refusal reason)
{
	char detail[48];

	if (reason == STK_REFUSAL_INTERNAL || reason == STK_REFUSAL_NONE)
		return 1; /* nothing to audit */
	/* The key dev_audit_refusal's detail aggregates on. */
	snprintf(detail, sizeof(detail), "%.40s:", stk_refusal_code(reason));
	return stk_audit_refusal_counted(s, req->peer ? req->peer : "device",
	    req->via == STK_VIA_CMG ? "device.register.cmg" : "device.register.mp",
	    detail);
}

int
stk_device_register_presign(struct stk_site *s, const struct stk_signer *signer,
    const struct stk_reg_request *req, int64_t now, struct stk_reg_checked *c,
    struct stk_error *err)
{
	struct stk_device old;
	int r;

	stk_token_free(c->token);
	c->token = NULL;
	c->signer = NULL;
	if (signer == NULL) {
		r = STK_OK;
		goto out;
	}
	r = dev_lookup(s, "cert_thumbprint", c->thumb, &old, err);
	if (r == 0)
		snprintf(c->guid, sizeof(c->guid), "%s", old.guid);
	else if (r != STK_E_NOTFOUND)
		goto out;
	else if (stk_guid_new(c->guid) != 0) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0, "no random bytes");
		goto out;
	}
	c->guid_new = r == STK_E_NOTFOUND;
	if ((r = stk_issue_client_att(signer, c->guid, c->thumb, req->attestation ?
	    req->attestation : "none", now, STK_CLIENT_TOKEN_LIFETIME, &c->token, c->jti,
	    err)) != 0)
		goto out;
	c->signer = signer;
	c->signed_at = now;
out:
	return r;
}

/* The write half: under the store's write lock (a transaction), the
 * device's state, the bulk token's use limit (a conditional update: exactly
 * once across threads and nodes), the token, the history, the audit. */
int
stk_device_register_commit(struct stk_site *s, const struct stk_reg_request *req,
    struct stk_reg_checked *c, int64_t now, struct stk_issued *out,
    enum stk_refusal *reason, struct stk_error *err)
{
	struct stk_device old;
	char detail[320], idguid[STK_GUID_LEN + 1];
	char oiss[STK_OIDC_ISSUER_MAX + 1], odev[STK_OIDC_CLAIM_MAX + 1];
	const char *actor = req->peer ? req->peer : "device";
	const char *event = req->via == STK_VIA_CMG ? "device.register.cmg" :
	    "device.register.mp";
	int r, exists = 0, id_bound = 0, in_tx = 0;

	memset(out, 0, sizeof(*out));
	*reason = STK_REFUSAL_INTERNAL;
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	in_tx = 1;
	r = dev_lookup(s, "cert_thumbprint", c->thumb, &old, err);
	if (r == 0)
		exists = 1;
	else if (r != STK_E_NOTFOUND)
		goto out;
	if (exists && old.blocked) {
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "device %s is blocked", old.guid);
		*reason = STK_REFUSAL_DEVICE_BLOCKED;
		goto out;
	}
	/* One device per issuer + device claim: the same key registers again
	 * (a lost response, threat model 6); another key is refused, and so is
	 * this key when its device holds another identity (an ID token alone
	 * never moves a device to a new key: threat model 1). */
	if (c->have_idt) {
		r = site_oidc_device_lookup(s, c->idt.issuer, c->idt.device, idguid, err);
		if (r == 0) {
			id_bound = 1;
			if (!exists || strcmp(old.guid, idguid) != 0) {
				r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0, "device %.40s "
				    "of %.60s is device %s, registered with another key",
				    c->idt.device, c->idt.issuer, idguid);
				*reason = STK_REFUSAL_IDTOKEN_IDENTITY;
				goto out;
			}
		} else if (r != STK_E_NOTFOUND)
			goto out;
		else if (exists && (r = site_oidc_identity_of(s, old.guid, oiss, sizeof(oiss),
		    odev, sizeof(odev), err)) != STK_E_NOTFOUND) {
			if (r != 0)
				goto out;
			r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0, "this device key "
			    "is registered as device %.40s of %.60s", odev, oiss);
			*reason = STK_REFUSAL_IDTOKEN_IDENTITY;
			goto out;
		}
	}
	/* One use per device: the same device retrying with the same token
	 * (a lost response, threat model 6) does not use it again. */
	if (req->bulk_token != NULL && !(exists && strcmp(old.bulk_guid, c->bulk.id) == 0) &&
	    (r = stk_bulk_limits_use(s, c->bulk.id, err)) != 0) {
		if (r == STK_E_TOKEN_EXHAUSTED)
			*reason = STK_REFUSAL_BULK_EXHAUSTED;
		goto out;
	}
	if (exists)
		out->dev = old;
	else if (c->token != NULL && c->guid_new)
		memcpy(out->dev.guid, c->guid, sizeof(out->dev.guid)); /* signed for */
	else if (stk_guid_new(out->dev.guid) != 0) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0, "no random bytes");
		goto out;
	}
	snprintf(out->dev.thumbprint, sizeof(out->dev.thumbprint), "%s", c->thumb);
	out->dev.registered_at = now;
	snprintf(out->dev.via, sizeof(out->dev.via), "%s",
	    req->via == STK_VIA_CMG ? "cmg" : "mp");
	snprintf(out->dev.bulk_guid, sizeof(out->dev.bulk_guid), "%s",
	    req->bulk_token != NULL ? c->bulk.id : "");
	if (!exists)
		out->dev.allow_cmg = -1;
	snprintf(out->dev.attestation, sizeof(out->dev.attestation), "%s",
	    req->attestation ? req->attestation : "none");
	if ((r = dev_issue_store_pre(s, &out->dev, !exists, c->der, c->derlen, NULL,
	    NULL, now, c, &out->token, err)) != 0 ||
	    (r = stk_attest_record_device(s,
	    out->dev.guid, req->attestation, req->ek_sha256, err)) != 0)
		goto out;
	if ((r = dev_history_append(s, &out->dev, req->peer, now, err)) != 0)
		goto out;
	if (c->have_idt && !id_bound &&
	    (r = site_oidc_device_bind(s, &c->idt, out->dev.guid, now, err)) != 0)
		goto out;
	if (c->have_idt)
		/* The identity first: it is what the record is for (the token's
		 * jti and thumbprint are in the device row too). */
		snprintf(detail, sizeof(detail), "%s oidc iss=%.60s device=%.40s sub=%.40s "
		    "jti=%s x5t#S256=%s", exists ? "re-registered" : "new", c->idt.issuer,
		    c->idt.device, c->idt.sub, out->dev.last_jti, c->thumb);
	else
		snprintf(detail, sizeof(detail), "%s jti=%s x5t#S256=%s%s%s", exists ?
		    "re-registered" : "new", out->dev.last_jti, c->thumb,
		    out->dev.bulk_guid[0] ? " bulk=" : "", out->dev.bulk_guid);
	if ((r = stk_audit_append_ref(s, actor, event, out->dev.guid,
	    out->dev.bulk_guid, "ok", detail, err)) != 0)
		goto out;
	in_tx = 0;
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	out->new_device = !exists;
	*reason = STK_REFUSAL_NONE;
out:
	if (in_tx)
		stk_site_tx_rollback(s);
	if (r != 0) {
		/* Audits a refusal (not a failure), after the rollback. */
		stk_device_register_refused(s, req, c, *reason, err);
		stk_issued_clear(out);
	}
	return r;
}

int
stk_device_register(struct stk_site *s, const struct stk_reg_request *req,
    int64_t now, struct stk_issued *out, enum stk_refusal *reason,
    struct stk_error *err)
{
	struct stk_reg_checked c;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = stk_device_register_check(s, req, now, &c, reason, err)) != 0)
		stk_device_register_refused(s, req, &c, *reason, err);
	else
		r = stk_device_register_commit(s, req, &c, now, out, reason, err);
	stk_reg_checked_clear(&c);
	return r;
}

int
stk_device_foreach_bulk(struct stk_site *s, const char *bulk_guid,
    stk_device_cb cb, void *ctx, struct stk_error *err)
{
	char g[STK_GUID_LEN + 1];
	int r;

	if ((r = site_guid_arg(bulk_guid, g, err)) != 0)
		return r;
	return dev_each(s, "SELECT " DEV_COLUMNS " FROM devices WHERE guid IN"
	    " (SELECT device_guid FROM registrations WHERE bulk_guid = ?)"
	    " ORDER BY registered_at, guid", g, cb, ctx, err);
}

struct dev_guids {
	char (*g)[STK_GUID_LEN + 1];
	size_t n, cap;
};

static int
dev_collect(void *ctx, const struct stk_device *d)
{
	struct dev_guids *l = ctx;
	void *p;

	if (d->blocked)
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		if ((p = realloc(l->g, l->cap * sizeof(*l->g))) == NULL)
			return STK_E_NOMEM;
		l->g = p;
	}
	snprintf(l->g[l->n++], STK_GUID_LEN + 1, "%s", d->guid);
	return 0;
}

int
stk_device_block_bulk(struct stk_site *s, const char *bulk_guid,
    const char *actor, long *count, struct stk_error *err)
{
	struct dev_guids l = { NULL, 0, 0 };
	struct stk_bulk_record rec;
	struct site_stmt *st = NULL;
	char detail[80];
	size_t i;
	int r;

	*count = 0;
	if ((r = stk_site_tx_begin(s, err)) != 0)
		return r;
	/* Only a token this site issued (unknown GUID: 1, nothing changes). */
	if ((r = stk_bulk_get(s, bulk_guid, &rec, err)) != 0)
		goto out;
	if ((r = stk_device_foreach_bulk(s, rec.guid, dev_collect, &l, err)) != 0) {
		if (r == STK_E_NOMEM)
			stk_error_set(err, r, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	snprintf(detail, sizeof(detail), "enrolled with bulk=%s", rec.guid);
	for (i = 0; i < l.n; i++) {
		if (db_prepare(s->store, "UPDATE devices SET blocked = 1 WHERE guid = ?",
		    &st) != 0 || db_bind_text(st, 1, l.g[i]) != 0 ||
		    db_step(st) != SITE_DB_DONE) {
			r = site_db_error(s, err, "blocking devices");
			goto out;
		}
		db_finalize(st);
		st = NULL;
		if ((r = stk_audit_append(s, actor, "device.block", l.g[i], "ok", detail,
		    err)) != 0)
			goto out;
	}
	snprintf(detail, sizeof(detail), "%zu device(s) blocked", l.n);
	if (l.n > 0 && (r = site_gw_bump(s, err)) != 0)
		goto out;
	if ((r = stk_audit_append(s, actor, "bulk.block_devices", rec.guid, "ok", detail,
	    err)) != 0)
		goto out;
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	*count = (long)l.n;
out:
	db_finalize(st);
	if (r != 0)
		stk_site_tx_rollback(s);
	free(l.g);
	return r;
}
