/* Devices: registration, gateway authentication, renewal, client settings.
 *
 * Policy lives here so the server stays thin: it hands over what it saw
 * (certificate DER, token text, transport) and maps the reason code we
 * return to an HTTP status. Every change and every refusal is audited; a
 * change and its audit record share one transaction. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include "sitetoken/bulklimits.h"
#include "sitetoken/cert.h"
#include "sitetoken/devcert.h"
#include "sitetoken/device.h"
#include "sitetoken/log.h"
#include "site_int.h"

void
stk_issued_clear(struct stk_issued *r)
{
	if (r == NULL)
		return;
	stk_token_free(r->token);
	memset(r, 0, sizeof(*r));
}

const char *
stk_device_reason_of(int code)
{
	switch (code) {
	case STK_E_TOKEN_EXPIRED:
		return STK_REASON_TOKEN_EXPIRED;
	case STK_E_TOKEN_NOTYET:
		return STK_REASON_TOKEN_NOTYET;
	case STK_E_TOKEN_TYPE:
		return STK_REASON_TOKEN_TYPE;
	case STK_E_TOKEN_BLOCKED:
		return STK_REASON_BULK_BLOCKED;
	case STK_E_TOKEN_BINDING:
		return STK_REASON_BINDING;
	case STK_E_TOKEN_EXHAUSTED:
		return STK_REASON_BULK_EXHAUSTED;
	case STK_E_TOKEN_SOURCE:
		return STK_REASON_BULK_SOURCE;
	default:
		return STK_REASON_TOKEN_INVALID;
	}
}

/* Record a refusal in its own transaction. Best effort: a refusal is
 * returned to the caller even when the audit write fails (logged). */
static void
dev_audit_refusal(struct stk_site *s, const char *actor, const char *event,
    const char *subject, const char *reason, const struct stk_error *why)
{
	struct stk_error e;
	char detail[160];

	stk_error_clear(&e);
	snprintf(detail, sizeof(detail), "%.40s: %.110s", reason ? reason : "error",
	    why != NULL && why->msg[0] ? why->msg : "");
	if (stk_audit_append(s, actor ? actor : "device", event, subject ? subject : "",
	    "refused", detail, &e) != 0)
		STK_LOG(STK_LOG_ERROR, "device", "cannot audit a refusal: %s", e.msg);
}

static void
dev_row(struct site_stmt *st, struct stk_device *d)
{
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
}

#define DEV_COLUMNS "guid, cert_thumbprint, registered_at, via, bulk_guid," \
	" blocked, allow_cmg, last_token_jti, last_issued_at, token_exp"

/* by: "guid" or "cert_thumbprint". */
static int
dev_lookup(struct stk_site *s, const char *by, const char *key,
    struct stk_device *d, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	char sql[256];
	int rc, r;

	memset(d, 0, sizeof(*d));
	snprintf(sql, sizeof(sql), "SELECT " DEV_COLUMNS " FROM devices WHERE %s = ?", by);
	if (db_prepare(s->store, sql, &st) != 0)
		return site_db_error(s, err, "reading devices");
	db_bind_text(st, 1, key);
	if ((rc = db_step(st)) == SITE_DB_ROW) {
		dev_row(st, d);
		r = STK_OK;
	} else if (rc == SITE_DB_DONE)
		r = stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_NONE, 0,
		    "no device %s on this site", key);
	else
		r = site_db_error(s, err, "reading devices");
	db_finalize(st);
	return r;
}

int
stk_device_get(struct stk_site *s, const char *guid, struct stk_device *dev,
    struct stk_error *err)
{
	char g[STK_GUID_LEN + 1];
	size_t i;

	memset(dev, 0, sizeof(*dev));
	if (guid == NULL || !stk_guid_valid(guid))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "'%.40s' is not a GUID", guid ? guid : "");
	for (i = 0; i <= STK_GUID_LEN; i++)
		g[i] = (char)tolower((unsigned char)guid[i]);
	return dev_lookup(s, "guid", g, dev, err);
}

int
stk_device_foreach(struct stk_site *s, stk_device_cb cb, void *ctx,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	struct stk_device d;
	int rc, r = STK_OK;

	if (db_prepare(s->store, "SELECT " DEV_COLUMNS " FROM devices"
	    " ORDER BY registered_at, guid", &st) != 0)
		return site_db_error(s, err, "reading devices");
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		dev_row(st, &d);
		if ((r = cb(ctx, &d)) != 0)
			break;
	}
	if (r == 0 && rc != SITE_DB_DONE)
		r = site_db_error(s, err, "reading devices");
	db_finalize(st);
	return r;
}

int
stk_setting_get_bool(struct stk_site *s, const char *name, int default_on,
    int *value, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int rc, r = STK_OK;

	*value = default_on;
	if (db_prepare(s->store, "SELECT value FROM settings WHERE name = ?", &st) != 0)
		return site_db_error(s, err, "reading settings");
	db_bind_text(st, 1, name);
	if ((rc = db_step(st)) == SITE_DB_ROW)
		*value = strcmp(db_column_text(st, 0), "on") == 0;
	else if (rc != SITE_DB_DONE)
		r = site_db_error(s, err, "reading settings");
	db_finalize(st);
	return r;
}

int
stk_setting_set(struct stk_site *s, const char *name, const char *value,
    const char *actor, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r;

	if (name == NULL || (strcmp(name, STK_SETTING_ALLOW_CMG) != 0 &&
	    strcmp(name, STK_SETTING_INTERNAL_REG) != 0))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "unknown setting '%.40s' (known: %s, %s)", name ? name : "",
		    STK_SETTING_ALLOW_CMG, STK_SETTING_INTERNAL_REG);
	if (value == NULL || (strcmp(value, "on") != 0 && strcmp(value, "off") != 0))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "setting %s takes 'on' or 'off'", name);
	if ((r = stk_site_tx_begin(s, err)) != 0)
		return r;
	if (db_prepare(s->store, "INSERT INTO settings (name, value) VALUES (?, ?)"
	    " ON CONFLICT (name) DO UPDATE SET value = excluded.value", &st) != 0) {
		r = site_db_error(s, err, "writing settings");
		goto fail;
	}
	db_bind_text(st, 1, name);
	db_bind_text(st, 2, value);
	if (db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "writing settings");
		goto fail;
	}
	db_finalize(st);
	st = NULL;
	if ((r = stk_audit_append(s, actor, "setting.set", name, "ok", value, err)) != 0)
		goto fail;
	return stk_site_tx_commit(s, err);
fail:
	db_finalize(st);
	stk_site_tx_rollback(s);
	return r;
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
	int r;

	if ((r = stk_site_tx_begin(s, err)) != 0)
		return r;
	if ((r = stk_device_get(s, guid, &d, err)) != 0)
		goto fail;
	snprintf(sql, sizeof(sql), "UPDATE devices SET %s = ? WHERE guid = ?", col);
	if (db_prepare(s->store, sql, &st) != 0) {
		r = site_db_error(s, err, "updating the device");
		goto fail;
	}
	if (value < 0)
		db_bind_null(st, 1);
	else
		db_bind_int64(st, 1, value);
	db_bind_text(st, 2, d.guid);
	if (db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "updating the device");
		goto fail;
	}
	db_finalize(st);
	st = NULL;
	if ((r = stk_audit_append(s, actor, event, d.guid, "ok", detail, err)) != 0)
		goto fail;
	return stk_site_tx_commit(s, err);
fail:
	db_finalize(st);
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

/* Issue a token for device d (guid, thumbprint set) and write the row:
 * insert when is_new, else update. Caller holds the transaction. */
static int
dev_issue_store(struct stk_site *s, struct stk_device *d, int is_new,
    const unsigned char *cert_der, size_t cert_len, int64_t now, char **token,
    struct stk_error *err)
{
	const struct stk_signer *signer;
	struct site_stmt *st = NULL;
	const char *sql;
	int r;

	*token = NULL;
	if ((r = stk_site_signer(s, &signer, err)) != 0)
		return r;
	if ((r = stk_issue_client(signer, d->guid, d->thumbprint, now,
	    STK_CLIENT_TOKEN_LIFETIME, token, d->last_jti, err)) != 0)
		return r;
	d->last_issued_at = now;
	d->token_exp = now + STK_CLIENT_TOKEN_LIFETIME;
	/* The key retires only after this token expires (site/keys.c). */
	if ((r = site_keys_issued(s, stk_signer_kid(signer), d->token_exp, err)) != 0)
		goto fail;
	if (is_new)
		sql = "INSERT INTO devices (guid, cert_thumbprint, cert, registered_at,"
		    " via, bulk_guid, blocked, allow_cmg, last_token_jti, last_issued_at,"
		    " token_exp) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, NULL, ?7, ?8, ?9)";
	else if (cert_der != NULL)
		sql = "UPDATE devices SET registered_at = ?4, via = ?5, bulk_guid = ?6,"
		    " last_token_jti = ?7, last_issued_at = ?8, token_exp = ?9"
		    " WHERE guid = ?1 AND cert_thumbprint = ?2 AND length(?3) > 0";
	else
		sql = "UPDATE devices SET last_token_jti = ?7, last_issued_at = ?8,"
		    " token_exp = ?9 WHERE guid = ?1 AND cert_thumbprint = ?2";
	if (db_prepare(s->store, sql, &st) != 0) {
		r = site_db_error(s, err, "recording the device");
		goto fail;
	}
	db_bind_text(st, 1, d->guid);
	db_bind_text(st, 2, d->thumbprint);
	if (cert_der != NULL)
		db_bind_blob(st, 3, cert_der, cert_len);
	db_bind_int64(st, 4, d->registered_at);
	db_bind_text(st, 5, d->via);
	if (d->bulk_guid[0])
		db_bind_text(st, 6, d->bulk_guid);
	else
		db_bind_null(st, 6);
	db_bind_text(st, 7, d->last_jti);
	db_bind_int64(st, 8, d->last_issued_at);
	db_bind_int64(st, 9, d->token_exp);
	if (db_step(st) != SITE_DB_DONE || db_changes(s->store) != 1) {
		r = site_db_error(s, err, "recording the device");
		goto fail;
	}
	db_finalize(st);
	return STK_OK;
fail:
	db_finalize(st);
	stk_token_free(*token);
	*token = NULL;
	return r;
}

int
stk_device_register(struct stk_site *s, const struct stk_reg_request *req,
    int64_t now, struct stk_issued *out, const char **reason,
    struct stk_error *err)
{
	struct stk_claims bulk;
	struct stk_device old;
	char thumb[44], detail[160];
	const char *actor = req->peer ? req->peer : "device";
	const char *event = req->via == STK_VIA_CMG ? "device.register.cmg" :
	    "device.register.mp";
	int r, on, exists = 0;

	memset(out, 0, sizeof(*out));
	memset(&bulk, 0, sizeof(bulk));
	*reason = NULL;
	thumb[0] = '\0';
	if (req->via == STK_VIA_CMG && (req->cert_der == NULL || req->cert_len == 0)) {
		r = stk_error_set(err, STK_E_TOKEN_BINDING, STK_LAYER_TOKEN, 0,
		    "the cloud gateway requires a TLS client certificate");
		*reason = STK_REASON_NO_CLIENT_CERT;
		goto refuse;
	}
	if ((r = stk_device_cert_check(req->cert_der, req->cert_len, now, thumb, err)) != 0) {
		*reason = STK_REASON_BAD_CERT;
		goto refuse;
	}
	if (req->via == STK_VIA_MP) {
		if ((r = stk_setting_get_bool(s, STK_SETTING_INTERNAL_REG, 1, &on, err)) != 0)
			return r;
		if (!on) {
			r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
			    "internal registration is turned off on this site");
			*reason = STK_REASON_INTERNAL_DISABLED;
			goto refuse;
		}
	}
	if (req->bulk_token != NULL) {
		if ((r = stk_bulk_check(s, req->bulk_token, req->bulk_len, now, &bulk,
		    err)) != 0) {
			*reason = r == STK_E_TOKEN_ISSUER &&
			    strstr(err ? err->msg : "", "record") != NULL ?
			    STK_REASON_BULK_UNKNOWN : stk_device_reason_of(r);
			goto refuse;
		}
		if ((r = stk_bulk_limits_source_check(s, bulk.id, req->peer, err)) != 0) {
			if (r != STK_E_TOKEN_SOURCE)
				goto out;
			*reason = stk_device_reason_of(r);
			goto refuse;
		}
	} else if (req->via == STK_VIA_CMG ||
	    (req->require_credential && !req->trusted_credential)) {
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0, "%s",
		    req->via == STK_VIA_CMG ?
		    "registration through the cloud gateway needs a bulk registration token" :
		    "registration over HTTPS needs a trusted client certificate or a bulk "
		    "registration token");
		*reason = req->via == STK_VIA_CMG ? STK_REASON_NO_TOKEN : STK_REASON_CREDENTIAL;
		goto refuse;
	}
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	r = dev_lookup(s, "cert_thumbprint", thumb, &old, err);
	if (r == 0)
		exists = 1;
	else if (r != STK_E_NOTFOUND)
		goto fail_tx;
	if (exists && old.blocked) {
		stk_site_tx_rollback(s);
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "device %s is blocked", old.guid);
		*reason = STK_REASON_DEVICE_BLOCKED;
		goto refuse;
	}
	/* One use per device: the same device retrying with the same token
	 * (a lost response, threat model 6) does not use it again. */
	if (req->bulk_token != NULL && !(exists && strcmp(old.bulk_guid, bulk.id) == 0) &&
	    (r = stk_bulk_limits_use(s, bulk.id, err)) != 0) {
		stk_site_tx_rollback(s);
		if (r != STK_E_TOKEN_EXHAUSTED)
			goto out;
		*reason = stk_device_reason_of(r);
		goto refuse;
	}
	if (exists)
		out->dev = old;
	else if (stk_guid_new(out->dev.guid) != 0) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0, "no random bytes");
		goto fail_tx;
	}
	snprintf(out->dev.thumbprint, sizeof(out->dev.thumbprint), "%s", thumb);
	out->dev.registered_at = now;
	snprintf(out->dev.via, sizeof(out->dev.via), "%s",
	    req->via == STK_VIA_CMG ? "cmg" : "mp");
	snprintf(out->dev.bulk_guid, sizeof(out->dev.bulk_guid), "%s",
	    req->bulk_token != NULL ? bulk.id : "");
	if (!exists)
		out->dev.allow_cmg = -1;
	if ((r = dev_issue_store(s, &out->dev, !exists, req->cert_der, req->cert_len,
	    now, &out->token, err)) != 0)
		goto fail_tx;
	snprintf(detail, sizeof(detail), "%s jti=%s x5t#S256=%s%s%s", exists ?
	    "re-registered" : "new", out->dev.last_jti, thumb,
	    out->dev.bulk_guid[0] ? " bulk=" : "", out->dev.bulk_guid);
	if ((r = stk_audit_append(s, actor, event, out->dev.guid, "ok", detail, err)) != 0)
		goto fail_tx;
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	out->new_device = !exists;
	stk_claims_clear(&bulk);
	return STK_OK;
fail_tx:
	stk_site_tx_rollback(s);
	goto out;
refuse:
	dev_audit_refusal(s, actor, event, req->bulk_token && bulk.id[0] ? bulk.id :
	    thumb, *reason, err);
out:
	stk_claims_clear(&bulk);
	stk_issued_clear(out);
	if (*reason == NULL && r != 0)
		*reason = NULL;
	return r;
}

/* Gateway checks shared by authenticate and renew. */
static int
dev_auth(struct stk_site *s, const char *event, const char *token, size_t len,
    const unsigned char *peer_der, size_t peer_len, int64_t now,
    struct stk_device *dev, const char **reason, struct stk_error *err)
{
	struct stk_claims c;
	char thumb[44] = "";
	int r, on;

	memset(dev, 0, sizeof(*dev));
	memset(&c, 0, sizeof(c));
	*reason = NULL;
	if (peer_der == NULL || peer_len == 0) {
		r = stk_error_set(err, STK_E_TOKEN_BINDING, STK_LAYER_TOKEN, 0,
		    "no TLS client certificate was presented");
		*reason = STK_REASON_NO_CLIENT_CERT;
		goto refuse;
	}
	/* Hash only: the TLS library parsed this certificate in the handshake
	 * and it matched the registered thumbprint (a parsed certificate)
	 * or it does not bind. No X.509 parse per request. */
	if (peer_len > STK_DEVICE_CERT_MAX) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device certificate too large");
		*reason = STK_REASON_BAD_CERT;
		goto refuse;
	}
	stk_cert_x5t_s256(peer_der, peer_len, thumb);
	if (token == NULL || len == 0) {
		r = stk_error_set(err, STK_E_TOKEN_FORMAT, STK_LAYER_TOKEN, 0,
		    "no client authentication token in the request");
		*reason = STK_REASON_NO_TOKEN;
		goto refuse;
	}
	/* Through the site: a kid another node made since the key set was
	 * cached is looked up once more. A token verified before with this
	 * certificate comes from the cache (tokcache.c); the device checks
	 * below always read the store. */
	if ((r = site_verify_client_cached(s, token, len, thumb, now, &c, err)) != 0) {
		if (r == STK_E_DB) /* the key set could not be read */
			goto out;
		*reason = stk_device_reason_of(r);
		if (r == STK_E_TOKEN_EXPIRED && err != NULL)
			snprintf(err->msg, sizeof(err->msg), "client token expired: "
			    "register again directly with the management point on the "
			    "internal network");
		else if (r == STK_E_TOKEN_TYPE && err != NULL)
			snprintf(err->msg, sizeof(err->msg), "not a client authentication "
			    "token (a bulk registration token is only for first "
			    "registration and cannot be renewed)");
		goto refuse;
	}
	if (strcmp(c.cnf_x5t_s256, thumb) != 0) {
		r = stk_error_set(err, STK_E_TOKEN_BINDING, STK_LAYER_TOKEN, 0,
		    "token %s is bound to another certificate than the TLS client "
		    "certificate", c.id);
		*reason = STK_REASON_BINDING;
		goto refuse;
	}
	if ((r = dev_lookup(s, "guid", c.subject, dev, err)) != 0) {
		if (r != STK_E_NOTFOUND)
			goto out;
		*reason = STK_REASON_UNKNOWN_DEVICE;
		goto refuse;
	}
	if (strcmp(dev->thumbprint, thumb) != 0) {
		r = stk_error_set(err, STK_E_TOKEN_BINDING, STK_LAYER_TOKEN, 0,
		    "device %s is registered with another certificate", dev->guid);
		*reason = STK_REASON_BINDING;
		goto refuse;
	}
	if (strcmp(dev->last_jti, c.id) != 0) {
		r = stk_error_set(err, STK_E_TOKEN_CLAIMS, STK_LAYER_TOKEN, 0,
		    "token %s was replaced by a newer token for device %s", c.id, dev->guid);
		*reason = STK_REASON_SUPERSEDED;
		goto refuse;
	}
	if (dev->blocked) {
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "device %s is blocked", dev->guid);
		*reason = STK_REASON_DEVICE_BLOCKED;
		goto refuse;
	}
	on = dev->allow_cmg;
	if (on < 0 && (r = stk_setting_get_bool(s, STK_SETTING_ALLOW_CMG, 1, &on, err)) != 0)
		goto out;
	if (!on) {
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "client setting 'allow cloud gateway' is off for device %s", dev->guid);
		*reason = STK_REASON_CMG_DISABLED;
		goto refuse;
	}
	stk_claims_clear(&c);
	return STK_OK;
refuse:
	dev_audit_refusal(s, "gateway", event, dev->guid[0] ? dev->guid :
	    c.subject[0] ? c.subject : thumb, *reason, err);
out:
	stk_claims_clear(&c);
	return r;
}

int
stk_device_authenticate(struct stk_site *s, const char *token, size_t len,
    const unsigned char *peer_der, size_t peer_len, int64_t now,
    struct stk_device *dev, const char **reason, struct stk_error *err)
{
	return dev_auth(s, "gateway.auth", token, len, peer_der, peer_len, now, dev,
	    reason, err);
}

int
stk_device_renew(struct stk_site *s, const char *token, size_t len,
    const unsigned char *peer_der, size_t peer_len, int64_t now,
    struct stk_issued *out, const char **reason, struct stk_error *err)
{
	char detail[160], old_jti[STK_GUID_LEN + 1];
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = dev_auth(s, "device.renew", token, len, peer_der, peer_len, now,
	    &out->dev, reason, err)) != 0)
		return r;
	snprintf(old_jti, sizeof(old_jti), "%s", out->dev.last_jti);
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	if ((r = dev_issue_store(s, &out->dev, 0, NULL, 0, now, &out->token, err)) != 0)
		goto fail_tx;
	snprintf(detail, sizeof(detail), "jti=%s replaces %s", out->dev.last_jti, old_jti);
	if ((r = stk_audit_append(s, "gateway", "device.renew", out->dev.guid, "ok",
	    detail, err)) != 0)
		goto fail_tx;
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	return STK_OK;
fail_tx:
	stk_site_tx_rollback(s);
out:
	stk_issued_clear(out);
	return r;
}

int
stk_certs_count_devices(struct stk_site *s, struct stk_cert_row *rows, size_t n,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	long total = 0, cnt;
	const char *g;
	size_t i;
	int rc, r = STK_OK;

	for (i = 0; i < n; i++)
		rows[i].devices = 0;
	/* One grouped pass (devices_bulk index), then map onto the rows. */
	if (db_prepare(s->store, "SELECT bulk_guid, count(*) FROM devices"
	    " GROUP BY bulk_guid", &st) != 0)
		return site_db_error(s, err, "counting devices");
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		g = db_column_text(st, 0);
		cnt = (long)db_column_int64(st, 1);
		total += cnt;
		if (g == NULL)
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(rows[i].type, "Site Signing") != 0 &&
			    strcmp(rows[i].id, g) == 0)
				rows[i].devices = cnt;
	}
	if (rc != SITE_DB_DONE)
		r = site_db_error(s, err, "counting devices");
	db_finalize(st);
	for (i = 0; r == STK_OK && i < n; i++)
		if (strcmp(rows[i].type, "Site Signing") == 0)
			rows[i].devices = total;
	return r;
}
