/* Attested registration, the site's side of the policy: trusted EK roots,
 * require-attestation (site default, per bulk token), what each device
 * proved. Kept apart from site/registration/registration.c, which calls in at two points
 * (the policy check and the record of the device). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "sitetoken/attest_policy.h"
#include "sitetoken/device.h"
#include "sitetoken/log.h"
#include "site_int.h"

/* Every CERTIFICATE of a PEM buffer: at least one, at most
 * STK_ATTEST_ROOTS_MAX, each a CA certificate (an EK root signs EK
 * certificates; a leaf here is the wrong file). */
static int
ap_parse_pem(const char *pem, size_t len, X509 **certs, size_t *n,
    struct stk_error *err)
{
	BIO *b = NULL;
	X509 *x;
	int r = STK_OK;

	*n = 0;
	if (pem == NULL || len == 0 || len > INT32_MAX)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "the roots file is empty");
	if ((b = BIO_new_mem_buf(pem, (int)len)) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_OPENSSL, 0, "out of memory");
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (*n == STK_ATTEST_ROOTS_MAX) {
			X509_free(x);
			r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "more than %d certificates in one roots file",
			    STK_ATTEST_ROOTS_MAX);
			goto out;
		}
		certs[(*n)++] = x;
		if (X509_check_ca(x) < 1) {
			r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "certificate %zu of the roots file is not a CA "
			    "certificate (a manufacturer root signs EK certificates)", *n);
			goto out;
		}
	}
	ERR_clear_error();
	if (*n == 0)
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "no PEM certificate in the roots file");
out:
	BIO_free(b);
	if (r != STK_OK) {
		while (*n > 0)
			X509_free(certs[--(*n)]);
	}
	return r;
}

static int
ap_der(X509 *x, unsigned char **der, int *len, char hex[65], char *subject,
    size_t sublen, struct stk_error *err)
{
	unsigned char md[32];
	unsigned int mdlen = 0, i;

	*der = NULL;
	if ((*len = i2d_X509(x, der)) <= 0 ||
	    EVP_Digest(*der, (size_t)*len, md, &mdlen, EVP_sha256(), NULL) != 1) {
		OPENSSL_free(*der);
		*der = NULL;
		return stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL,
		    ERR_get_error(), "cannot encode a root certificate");
	}
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * (size_t)i, 3, "%02x", md[i]);
	X509_NAME_oneline(X509_get_subject_name(x), subject, (int)sublen);
	return STK_OK;
}

/* add != 0: insert each (absent) root; else delete each. */
static int
ap_roots_change(struct stk_site *s, const char *pem, size_t len, int add,
    const char *actor, size_t *changed, struct stk_error *err)
{
	X509 *certs[STK_ATTEST_ROOTS_MAX];
	struct site_stmt *st = NULL;
	unsigned char *der = NULL;
	char hex[65], subject[256];
	size_t n = 0, i;
	int64_t now = stk_now();
	int derlen, r;

	*changed = 0;
	if ((r = ap_parse_pem(pem, len, certs, &n, err)) != 0)
		return r;
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if ((r = ap_der(certs[i], &der, &derlen, hex, subject, sizeof(subject),
		    err)) != 0)
			goto out;
		if (db_prepare(s->store, add ? "INSERT INTO attest_roots (sha256, subject,"
		    " cert, added_at) VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING" :
		    "DELETE FROM attest_roots WHERE sha256 = ?", &st) != 0) {
			r = site_db_error(s, err, "writing the attestation roots");
			goto out;
		}
		if (db_bind_text(st, 1, hex) != 0 ||
		    (add && (db_bind_text(st, 2, subject) != 0 ||
		    db_bind_blob(st, 3, der, (size_t)derlen) != 0 ||
		    db_bind_int64(st, 4, now) != 0)) ||
		    db_step(st) != SITE_DB_DONE) {
			r = site_db_error(s, err, "writing the attestation roots");
			goto out;
		}
		if (db_changes(s->store) == 1) {
			(*changed)++;
			if ((r = stk_audit_append(s, actor, add ? "attest.root.add" :
			    "attest.root.remove", hex, "ok", subject, err)) != 0)
				goto out;
		}
		db_finalize(st);
		st = NULL;
		OPENSSL_free(der);
		der = NULL;
	}
	if (!add && *changed == 0) {
		r = stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_NONE, 0,
		    "none of the %zu certificate(s) is a trusted attestation root", n);
		goto out;
	}
	r = stk_site_tx_commit(s, err);
out:
	db_finalize(st);
	if (r != 0) {
		stk_site_tx_rollback(s);
		*changed = 0;
	}
	OPENSSL_free(der);
	for (i = 0; i < n; i++)
		X509_free(certs[i]);
	return r;
}

int
stk_attest_roots_add(struct stk_site *s, const char *pem, size_t len,
    const char *actor, size_t *added, struct stk_error *err)
{
	return ap_roots_change(s, pem, len, 1, actor, added, err);
}

int
stk_attest_roots_remove(struct stk_site *s, const char *pem, size_t len,
    const char *actor, size_t *removed, struct stk_error *err)
{
	return ap_roots_change(s, pem, len, 0, actor, removed, err);
}

int
stk_attest_roots_foreach(struct stk_site *s, stk_attest_root_cb cb, void *ctx,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	struct stk_attest_root rt;
	int rc, r = STK_OK;

	if (db_prepare(s->store, "SELECT sha256, subject, added_at FROM attest_roots"
	    " ORDER BY added_at, sha256", &st) != 0)
		return site_db_error(s, err, "reading the attestation roots");
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		memset(&rt, 0, sizeof(rt));
		snprintf(rt.sha256, sizeof(rt.sha256), "%s", db_column_text(st, 0));
		snprintf(rt.subject, sizeof(rt.subject), "%s", db_column_text(st, 1));
		rt.added_at = db_column_int64(st, 2);
		if ((r = cb(ctx, &rt)) != 0)
			break;
	}
	if (r == 0 && rc != SITE_DB_DONE)
		r = site_db_error(s, err, "reading the attestation roots");
	db_finalize(st);
	return r;
}

int
stk_attest_roots_store(struct stk_site *s, X509_STORE **out,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	X509_STORE *xs = NULL;
	const unsigned char *p;
	size_t n = 0;
	X509 *x;
	int rc, r = STK_OK;

	*out = NULL;
	if ((xs = X509_STORE_new()) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_OPENSSL, 0, "out of memory");
	if (db_prepare(s->store, "SELECT cert FROM attest_roots", &st) != 0) {
		r = site_db_error(s, err, "reading the attestation roots");
		goto out;
	}
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		p = db_column_blob(st, 0, &n);
		if (p == NULL || n > INT32_MAX ||
		    (x = d2i_X509(NULL, &p, (long)n)) == NULL) {
			r = stk_error_set(err, STK_E_DB, STK_LAYER_OPENSSL, ERR_get_error(),
			    "an attestation root in the store is not a certificate");
			goto out;
		}
		rc = X509_STORE_add_cert(xs, x);
		X509_free(x);
		if (rc != 1) {
			r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL,
			    ERR_get_error(), "cannot load an attestation root");
			goto out;
		}
	}
	if (rc != SITE_DB_DONE) {
		r = site_db_error(s, err, "reading the attestation roots");
		goto out;
	}
	*out = xs;
	xs = NULL;
out:
	db_finalize(st);
	X509_STORE_free(xs);
	return r;
}

int
stk_attest_required(struct stk_site *s, const char *bulk_guid, int *required,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int rc, r, tok = -1;

	*required = 0;
	if (bulk_guid != NULL && bulk_guid[0]) {
		if (db_prepare(s->store, "SELECT require_attestation FROM bulk_tokens"
		    " WHERE guid = ?", &st) != 0)
			return site_db_error(s, err, "reading the bulk token policy");
		rc = db_bind_text(st, 1, bulk_guid) != 0 ?
		    SITE_DB_ERROR : db_step(st);
		if (rc == SITE_DB_ROW && !db_column_is_null(st, 0))
			tok = db_column_int(st, 0) ? 1 : 0;
		else if (rc != SITE_DB_ROW && rc != SITE_DB_DONE) {
			db_finalize(st);
			return site_db_error(s, err, "reading the bulk token policy");
		}
		db_finalize(st);
	}
	if (tok >= 0) {
		*required = tok;
		return STK_OK;
	}
	r = stk_setting_get_bool(s, STK_SETTING_REQUIRE_ATTESTATION, 0, required, err);
	return r;
}

int
stk_bulk_set_require_attestation(struct stk_site *s, const char *guid, int on,
    const char *actor, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r, in_tx = 0;

	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	in_tx = 1;
	if (db_prepare(s->store, "UPDATE bulk_tokens SET require_attestation = ?"
	    " WHERE guid = ?", &st) != 0) {
		r = site_db_error(s, err, "writing the bulk token policy");
		goto out;
	}
	if ((on < 0 ?
	    db_bind_null(st, 1) :
	    db_bind_int64(st, 1, on ? 1 : 0)) != 0 ||
	    db_bind_text(st, 2, guid) != 0 ||
	    db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "writing the bulk token policy");
		goto out;
	}
	if (db_changes(s->store) != 1) {
		r = stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_NONE, 0,
		    "no bulk token %.40s on this site", guid);
		goto out;
	}
	db_finalize(st);
	st = NULL;
	/* Gateways cache whether a device of this token must be attested. */
	if ((r = site_gw_bump(s, err)) != 0)
		goto out;
	if ((r = stk_audit_append(s, actor, "bulk.policy", guid, "ok", on < 0 ?
	    "require-attestation=site default" : on ? "require-attestation=on" :
	    "require-attestation=off", err)) != 0)
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
stk_attest_record_device(struct stk_site *s, const char *guid,
    const char *attestation, const char *ek_sha256, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r = STK_OK;

	if (db_prepare(s->store, "UPDATE devices SET attestation = ?, ek_sha256 = ?"
	    " WHERE guid = ?", &st) != 0)
		return site_db_error(s, err, "recording the device attestation");
	if (db_bind_text(st, 1, attestation ? attestation : "none") != 0 ||
	    (ek_sha256 != NULL && ek_sha256[0] ?
	    db_bind_text(st, 2, ek_sha256) :
	    db_bind_null(st, 2)) != 0 ||
	    db_bind_text(st, 3, guid) != 0 ||
	    db_step(st) != SITE_DB_DONE || db_changes(s->store) != 1)
		r = site_db_error(s, err, "recording the device attestation");
	db_finalize(st);
	return r;
}

int
stk_attest_device_get(struct stk_site *s, const char *guid, char *att,
    size_t attlen, char *ek, size_t eklen, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	const char *t;
	int rc, r = STK_OK;

	snprintf(att, attlen, "none");
	if (eklen > 0)
		ek[0] = '\0';
	if (db_prepare(s->store, "SELECT attestation, ek_sha256 FROM devices"
	    " WHERE guid = ?", &st) != 0)
		return site_db_error(s, err, "reading the device attestation");
	rc = db_bind_text(st, 1, guid) != 0 ?
	    SITE_DB_ERROR : db_step(st);
	if (rc == SITE_DB_ROW) {
		if ((t = db_column_text(st, 0)) != NULL && t[0])
			snprintf(att, attlen, "%s", t);
		if ((t = db_column_text(st, 1)) != NULL)
			snprintf(ek, eklen, "%s", t);
	} else if (rc != SITE_DB_DONE)
		r = site_db_error(s, err, "reading the device attestation");
	db_finalize(st);
	return r;
}

void
stk_attest_audit_refusal(struct stk_site *s, const char *actor,
    const char *subject, const char *reason, const char *msg)
{
	struct stk_error e;
	char detail[160];

	stk_error_clear(&e);
	snprintf(detail, sizeof(detail), "%.40s: %.110s", reason ? reason : "error",
	    msg ? msg : "");
	if (stk_audit_append(s, actor ? actor : "device", "device.register.attest",
	    subject ? subject : "", "refused", detail, &e) != 0)
		STK_LOG(STK_LOG_ERROR, "attest", "cannot audit a refusal: %s", e.msg);
}
