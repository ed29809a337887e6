/* Gateway checks: a device's client token presented at the CMG
 * (authenticate), renewal and re-key. Registration itself is in
 * registration.c. Every refusal is audited; a change and its audit record
 * share one transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "sitetoken/attest_policy.h"
#include "sitetoken/cert.h"
#include "sitetoken/devcert.h"
#include "sitetoken/device.h"
#include "sitetoken/log.h"
#include "registration_int.h"

/* The first use of a renewed token closes the window in which the token it
 * replaced could still renew. */
static int
dev_mark_used(struct stk_site *s, const struct stk_device *d, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r;

	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	if (db_prepare(s->store, "UPDATE devices SET token_used = 1 WHERE guid = ?"
	    " AND last_token_jti = ?", &st) != 0 ||
	    (db_bind_text(st, 1, d->guid) | db_bind_text(st, 2, d->last_jti)) != 0 ||
	    db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "updating the device");
		db_finalize(st);
		stk_site_tx_rollback(s);
		goto out;
	}
	db_finalize(st);
	r = stk_site_tx_commit(s, err);
out:
	return r;
}

/* The att claim says the key was TPM-attested at registration: such a
 * token needs no lookup. Without it, the rule of registration applies (the
 * enrolling bulk token's policy, else the site's), so a device registered
 * unattested loses the gateway once attestation is required for it (its
 * file key and token may have been copied). Cached with the device state:
 * a change of either rule bumps the gateway generation. */
static int
dev_att_required(struct stk_site *s, const struct stk_claims *c,
    const struct stk_device *dev, int *need, struct stk_error *err)
{
	*need = 0;
	if (strcmp(c->att, "tpm") == 0)
		return STK_OK;
	return stk_attest_required(s, dev->bulk_guid, need, err);
}

/* Device-side checks of a client token whose signature and claims verified:
 * known, bound to the device's certificate (thumb, when given), the latest
 * token (or, for a renewal, the one the unused latest replaced), not
 * blocked. Reads only. */
static int
dev_state_checks(const struct stk_claims *c, const char *thumb, int renewal,
    const struct stk_device *dev, int att_required, enum stk_refusal *reason,
    struct stk_error *err)
{
	if (strcmp(dev->thumbprint, thumb ? thumb : c->cnf_x5t_s256) != 0) {
		*reason = STK_REFUSAL_BINDING;
		return stk_error_set(err, STK_E_TOKEN_BINDING, STK_LAYER_TOKEN, 0,
		    "device %s is registered with another certificate", dev->guid);
	}
	if (strcmp(dev->last_jti, c->id) != 0 && !(renewal && !dev->token_used &&
	    dev->prev_jti[0] && strcmp(dev->prev_jti, c->id) == 0)) {
		*reason = STK_REFUSAL_SUPERSEDED;
		return stk_error_set(err, STK_E_TOKEN_CLAIMS, STK_LAYER_TOKEN, 0,
		    "token %s was replaced by a newer token for device %s", c->id, dev->guid);
	}
	if (dev->blocked) {
		*reason = STK_REFUSAL_DEVICE_BLOCKED;
		return stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "device %s is blocked", dev->guid);
	}
	if (att_required && strcmp(c->att, "tpm") != 0) {
		*reason = STK_REFUSAL_ATTESTATION_REQUIRED;
		return stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "device %s is not TPM-attested and this site requires "
		    "attestation: register again with attestation evidence",
		    dev->guid);
	}
	return STK_OK;
}

static int
dev_token_checks(struct stk_site *s, const struct stk_claims *c, const char *thumb,
    int renewal, struct stk_device *dev, enum stk_refusal *reason,
    struct stk_error *err)
{
	int r, need;

	if ((r = dev_lookup(s, "guid", c->subject, dev, err)) != 0) {
		if (r == STK_E_NOTFOUND)
			*reason = STK_REFUSAL_UNKNOWN_DEVICE;
		return r;
	}
	if ((r = dev_att_required(s, c, dev, &need, err)) != 0)
		return r;
	return dev_state_checks(c, thumb, renewal, dev, need, reason, err);
}

int
stk_device_token_verdict(struct stk_site *s, const struct stk_claims *c,
    enum stk_refusal *reason, struct stk_error *err)
{
	struct stk_device d;
	int r;

	*reason = STK_REFUSAL_INTERNAL;
	if ((r = dev_token_checks(s, c, NULL, 0, &d, reason, err)) == 0)
		*reason = STK_REFUSAL_NONE;
	return r;
}

/* Gateway checks shared by authenticate, renew and re-key. renewal: the
 * token the unused latest one replaced is accepted (lost response). conn:
 * the server's memo of this client connection (or NULL), so a kept-alive
 * connection hashes its certificate and a repeated token only once.
 *
 * Authentication (not renewal) decides from the gateway cache when it holds
 * the token's claims and the device's state at the current generation
 * (tokcache.c); otherwise it reads the device row, decides the same way,
 * and caches that state. Renewal and re-key always read the store. */
static int
dev_auth(struct stk_site *s, const char *event, int renewal, const char *token,
    size_t len, const unsigned char *peer_der, size_t peer_len,
    struct stk_gw_conn *conn, int64_t now, struct stk_device *dev,
    char jti[STK_GUID_LEN + 1], enum stk_refusal *reason, struct stk_error *err)
{
	struct stk_claims c;
	struct site_gw_state gs;
	unsigned char key[32];
	char thumb[44] = "";
	const char *x5t = NULL;
	uint64_t gen = 0;
	int r, on, hit, need = 0;

	memset(dev, 0, sizeof(*dev));
	memset(&c, 0, sizeof(c));
	memset(&gs, 0, sizeof(gs));
	*reason = STK_REFUSAL_INTERNAL;
	if (jti != NULL)
		jti[0] = '\0';
	if (peer_der == NULL || peer_len == 0) {
		r = stk_error_set(err, STK_E_TOKEN_BINDING, STK_LAYER_TOKEN, 0,
		    "no TLS client certificate was presented");
		*reason = STK_REFUSAL_NO_CLIENT_CERT;
		goto out;
	} else if (peer_len > STK_DEVICE_CERT_MAX) {
		/* Hash only: the TLS library parsed this certificate in the
		 * handshake and it matched the registered thumbprint (a parsed
		 * certificate) or it does not bind. No X.509 parse per request. */
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device certificate too large");
		*reason = STK_REFUSAL_BAD_CERTIFICATE;
		goto out;
	} else if ((x5t = site_gw_conn_x5t(conn, peer_der, peer_len)) != NULL)
		memcpy(thumb, x5t, strlen(x5t) + 1);   /* hashed once per connection */
	else
		stk_cert_x5t_s256(peer_der, peer_len, thumb);
	if (token == NULL || len == 0) {
		r = stk_error_set(err, STK_E_TOKEN_FORMAT, STK_LAYER_TOKEN, 0,
		    "no client authentication token in the request");
		*reason = STK_REFUSAL_NO_TOKEN;
		goto out;
	}
	/* The generation is read before the device row: a change committed
	 * after this point makes what we cache below stale at once. */
	if (!renewal)
		gen = site_gw_begin(s);
	/* Through the site: a kid another node made since the key set was
	 * cached is looked up once more. */
	if ((r = site_gw_verify_memo(s, token, len, thumb, now, gen, conn, key, &c,
	    renewal ? NULL : &gs, err)) < 0) {
		if ((*reason = stk_refusal_of_rc(r)) == STK_REFUSAL_INTERNAL)
			goto out;
		if (r == STK_E_TOKEN_EXPIRED && err != NULL)
			snprintf(err->msg, sizeof(err->msg), "client token expired: "
			    "register again directly with the management point on the "
			    "internal network");
		else if (r == STK_E_TOKEN_TYPE && err != NULL)
			snprintf(err->msg, sizeof(err->msg), "not a client authentication "
			    "token (a bulk registration token is only for first "
			    "registration and cannot be renewed)");
		goto out;
	}
	hit = r;
	if (strcmp(c.cnf_x5t_s256, thumb) != 0) {
		r = stk_error_set(err, STK_E_TOKEN_BINDING, STK_LAYER_TOKEN, 0,
		    "token %s is bound to another certificate than the TLS client "
		    "certificate", c.id);
		*reason = STK_REFUSAL_BINDING;
		goto out;
	}
	if (hit == 2) {
		site_gw_device_of(&gs, dev);
		on = gs.on;
		need = gs.att_required;
	} else {
		if ((r = dev_lookup(s, "guid", c.subject, dev, err)) != 0) {
			if (r != STK_E_NOTFOUND)
				goto out;
			*reason = STK_REFUSAL_UNKNOWN_DEVICE;
			goto out;
		}
		on = dev->allow_cmg;
		if (on < 0 && (r = renewal ? stk_setting_get_bool(s, STK_SETTING_ALLOW_CMG,
		    1, &on, err) : site_gw_allow_default(s, gen, &on, err)) != 0)
			goto out;
		if ((r = dev_att_required(s, &c, dev, &need, err)) != 0)
			goto out;
		if (!renewal) {
			site_gw_state_of(dev, on, &gs);
			gs.att_required = need;
			site_gw_put_state(key, gen, &gs);
		}
	}
	if ((r = dev_state_checks(&c, thumb, renewal, dev, need, reason, err)) != 0)
		goto out;
	if (!on) {
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "client setting 'allow cloud gateway' is off for device %s", dev->guid);
		*reason = STK_REFUSAL_CMG_DISABLED;
		goto out;
	}
	if (!dev->token_used && strcmp(dev->last_jti, c.id) == 0) {
		if ((r = dev_mark_used(s, dev, err)) != 0)
			goto out;
		dev->token_used = 1;
		if (!renewal) {
			site_gw_state_of(dev, on, &gs);
			gs.att_required = need;
			site_gw_put_state(key, gen, &gs);
		}
	}
	if (jti != NULL)
		snprintf(jti, STK_GUID_LEN + 1, "%s", c.id);
	*reason = STK_REFUSAL_NONE;
	r = STK_OK;
out:
	/* A refusal (not a failure) is audited. */
	if (r != 0 && *reason != STK_REFUSAL_INTERNAL)
		dev_audit_refusal(s, "gateway", event, dev->guid[0] ? dev->guid :
		    c.subject[0] ? c.subject : thumb, *reason, err);
	stk_claims_clear(&c);
	return r;
}

int
stk_device_authenticate(struct stk_site *s, const char *token, size_t len,
    const unsigned char *peer_der, size_t peer_len, int64_t now,
    struct stk_device *dev, enum stk_refusal *reason, struct stk_error *err)
{
	return dev_auth(s, "gateway.auth", 0, token, len, peer_der, peer_len, NULL,
	    now, dev, NULL, reason, err);
}

int
stk_device_authenticate_conn(struct stk_site *s, struct stk_gw_conn *conn,
    const char *token, size_t len, const unsigned char *peer_der, size_t peer_len,
    int64_t now, struct stk_device *dev, enum stk_refusal *reason,
    struct stk_error *err)
{
	return dev_auth(s, "gateway.auth", 0, token, len, peer_der, peer_len, conn, now,
	    dev, NULL, reason, err);
}

/* Renewal (new_cert NULL) or re-key: the token moves on, the update
 * conditional on the latest jti read by dev_auth. */
static int
dev_renew(struct stk_site *s, const char *event, const char *token, size_t len,
    const unsigned char *peer_der, size_t peer_len, const unsigned char *new_cert,
    size_t new_len, const char *proof, int64_t now, struct stk_issued *out,
    enum stk_refusal *reason, struct stk_error *err)
{
	char detail[160], old_jti[STK_GUID_LEN + 1], used[STK_GUID_LEN + 1];
	char new_thumb[44] = "", *msg = NULL, ek[65];
	struct stk_device other;
	int r, authed = 0, in_tx = 0;

	memset(out, 0, sizeof(*out));
	/* dev_auth audits its own refusals and leaves out->dev as it was. */
	if ((r = dev_auth(s, event, 1, token, len, peer_der, peer_len, NULL, now,
	    &out->dev, used, reason, err)) != 0)
		goto out;
	authed = 1;
	*reason = STK_REFUSAL_INTERNAL;
	snprintf(old_jti, sizeof(old_jti), "%s", out->dev.last_jti);
	/* The renewed token carries the attestation the device proved at
	 * registration (a re-key with a new file key proves none). */
	if (new_cert != NULL)
		snprintf(out->dev.attestation, sizeof(out->dev.attestation), "none");
	else if ((r = stk_attest_device_get(s, out->dev.guid, out->dev.attestation,
	    sizeof(out->dev.attestation), ek, sizeof(ek), err)) != 0)
		goto out;
	if (new_cert != NULL) {
		if ((r = stk_device_cert_check(new_cert, new_len, now, new_thumb,
		    err)) != 0) {
			*reason = STK_REFUSAL_BAD_CERTIFICATE;
			goto out;
		}
		if ((msg = stk_pop_message(STK_POP_REKEY, used, new_thumb)) == NULL) {
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
			goto out;
		}
		if ((r = stk_pop_verify(new_cert, new_len, msg, proof, err)) != 0) {
			*reason = proof == NULL ? STK_REFUSAL_PROOF_REQUIRED :
			    STK_REFUSAL_PROOF_INVALID;
			goto out;
		}
		r = dev_lookup(s, "cert_thumbprint", new_thumb, &other, err);
		if (r == 0) {
			r = stk_error_set(err, STK_E_EXISTS, STK_LAYER_NONE, 0,
			    "the new certificate is already registered (device %s)", other.guid);
			*reason = STK_REFUSAL_BAD_CERTIFICATE;
			goto out;
		}
		if (r != STK_E_NOTFOUND)
			goto out;
		snprintf(out->dev.thumbprint, sizeof(out->dev.thumbprint), "%s", new_thumb);
	}
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	in_tx = 1;
	r = dev_issue_store(s, &out->dev, 0, new_cert, new_len, old_jti, used, now,
	    &out->token, err);
	if (r == STK_E_EXISTS)
		*reason = STK_REFUSAL_SUPERSEDED;
	if (r != 0)
		goto out;
	if (new_cert != NULL)
		snprintf(detail, sizeof(detail), "jti=%s replaces %s x5t#S256=%s",
		    out->dev.last_jti, used, new_thumb);
	else
		snprintf(detail, sizeof(detail), "jti=%s replaces %s%s", out->dev.last_jti,
		    used, strcmp(used, old_jti) != 0 ? " (retry: the previous renewal's "
		    "token was never used)" : "");
	if ((r = stk_audit_append(s, "gateway", event, out->dev.guid, "ok", detail,
	    err)) != 0)
		goto out;
	in_tx = 0;
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	*reason = STK_REFUSAL_NONE;
out:
	if (in_tx)
		stk_site_tx_rollback(s);
	if (r != 0 && authed) {
		/* A refusal (not a failure) is audited, after the rollback. */
		if (*reason != STK_REFUSAL_INTERNAL)
			dev_audit_refusal(s, "gateway", event, out->dev.guid, *reason, err);
		stk_issued_clear(out);
	}
	free(msg);
	return r;
}

int
stk_device_renew(struct stk_site *s, const char *token, size_t len,
    const unsigned char *peer_der, size_t peer_len, int64_t now,
    struct stk_issued *out, enum stk_refusal *reason, struct stk_error *err)
{
	return dev_renew(s, "device.renew", token, len, peer_der, peer_len, NULL, 0,
	    NULL, now, out, reason, err);
}

int
stk_device_rekey(struct stk_site *s, const char *token, size_t len,
    const unsigned char *peer_der, size_t peer_len,
    const unsigned char *new_cert, size_t new_len, const char *proof,
    int64_t now, struct stk_issued *out, enum stk_refusal *reason,
    struct stk_error *err)
{
	if (new_cert == NULL || new_len == 0) {
		memset(out, 0, sizeof(*out));
		*reason = STK_REFUSAL_BAD_CERTIFICATE;
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "re-key needs the new certificate");
	}
	return dev_renew(s, "device.rekey", token, len, peer_der, peer_len, new_cert,
	    new_len, proof, now, out, reason, err);
}
