/* OIDC, the site's half (include/sitetoken/oidc.h): trusted issuers in the
 * store, the in-memory JWKS cache of URL-mode issuers, the registration
 * check, and the one device per issuer + device claim (oidc_devices). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/sha.h>
#include "sitetoken/key.h"
#include "sitetoken/log.h"
#include "sitetoken/oidc.h"
#include "site_int.h"
#include "oidc_int.h"

/* ---- records ---- */

static int
oidc_printable(const char *v, size_t max)
{
	size_t n = 0;

	for (; *v; v++, n++)
		if (n >= max || (unsigned char)*v <= 0x20 || (unsigned char)*v >= 0x7f)
			return 0;
	return n > 0;
}

static int
oidc_check_record(const struct stk_oidc_issuer *is, struct stk_error *err)
{
	const char *c;

	if (strncmp(is->issuer, "https://", 8) != 0 || is->issuer[8] == '\0' ||
	    !oidc_printable(is->issuer, STK_OIDC_ISSUER_MAX))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, "--issuer must be "
		    "an https:// URL of at most %d printable characters (the exact iss)",
		    STK_OIDC_ISSUER_MAX);
	if (!oidc_printable(is->audience, STK_OIDC_ISSUER_MAX))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, "--audience must be "
		    "1 to %d printable characters", STK_OIDC_ISSUER_MAX);
	for (c = is->device_claim; *c; c++)
		if (!(*c == '_' || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9')))
			break;
	if (*c != '\0' || is->device_claim[0] == '\0' || strlen(is->device_claim) > 64)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, "--device-claim must "
		    "be 1 to 64 letters, digits or '_'");
	if (is->tenant[0] != '\0' && !oidc_printable(is->tenant, STK_OIDC_CLAIM_MAX))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, "--tenant must be "
		    "1 to %d printable characters", STK_OIDC_CLAIM_MAX);
	if (is->jwks_url[0] != '\0' && (strncmp(is->jwks_url, "https://", 8) != 0 ||
	    !oidc_printable(is->jwks_url, sizeof(is->jwks_url) - 1)))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, "a --jwks URL must "
		    "be https://");
	return STK_OK;
}

/* The endorsement message of an issuer record: every field that decides
 * whose tokens register devices, bound to this site. Attacker 3 (the
 * database writer) can add or edit rows but cannot sign this with a key the
 * site directory's roots trust (site/keytrust.c). */
static char *
oidc_endorse_message(const char *site_guid, const struct stk_oidc_issuer *is)
{
	unsigned char d1[32], d2[32];
	char h1[65], h2[65], *msg = NULL;
	const char *jwks = is->jwks_url[0] ? "" : (is->jwks ? is->jwks : "");
	const char *ca = is->jwks_ca ? is->jwks_ca : "";
	size_t i;

	SHA256((const unsigned char *)jwks, strlen(jwks), d1);
	SHA256((const unsigned char *)ca, strlen(ca), d2);
	for (i = 0; i < 32; i++) {
		snprintf(h1 + 2 * i, 3, "%02x", d1[i]);
		snprintf(h2 + 2 * i, 3, "%02x", d2[i]);
	}
	if (asprintf(&msg, "sitetoken oidc issuer v1\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n",
	    site_guid, is->issuer, is->audience, is->device_claim, is->tenant,
	    is->jwks_url, h1, h2) < 0)
		msg = NULL;
	return msg;
}

/* 1 when the record's endorsement verifies with a trusted site key. */
static int
oidc_endorsed(struct stk_site *s, const struct stk_oidc_issuer *is, const char *by,
    const char *endorsement)
{
	const struct site_trust_key *k;
	struct site_trust *t = NULL;
	struct stk_error e;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	char *msg = NULL;
	int ok = 0;

	stk_error_clear(&e);
	if (by == NULL || endorsement == NULL || *by == '\0' || *endorsement == '\0')
		return 0;
	if (site_trust_load(s, &t, &e) != 0) {
		STK_LOG(STK_LOG_ERROR, "oidc", "cannot load the trusted keys: %s", e.msg);
		return 0;
	}
	if ((k = site_trust_find(t, by)) != NULL &&
	    (msg = oidc_endorse_message(s->guid, is)) != NULL &&
	    stk_b64url_decode(endorsement, strlen(endorsement), &sig, &siglen) == 0)
		ok = stk_sig_verify(k->pk, (const unsigned char *)msg, strlen(msg), sig,
		    siglen) == 0;
	free(sig);
	free(msg);
	site_trust_free(t);
	return ok;
}

/* The end of a change to the trusted issuers, inside the caller's write
 * transaction: audit it, commit, and drop this process's JWKS cache so no
 * key of a changed record is used again. Takes the transaction over: on
 * failure it is rolled back (a failed commit rolls back itself). */
static int
oidc_commit(struct stk_site *s, const char *actor, const char *event,
    const char *issuer, const char *detail, struct stk_error *err)
{
	int r;

	if ((r = stk_audit_append(s, actor, event, issuer, "ok", detail, err)) != 0) {
		stk_site_tx_rollback(s);
		goto out;
	}
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	stk_oidc_cache_flush();
out:
	return r;
}

int
stk_oidc_add(struct stk_site *s, const struct stk_oidc_issuer *is,
    const char *actor, struct stk_error *err)
{
	struct stk_jwks *keys = NULL;
	struct site_stmt *st = NULL;
	struct stk_key *key = NULL;
	const char *issuer = is->issuer;
	unsigned char sig[STK_SIG_MAX];
	char detail[200], *msg = NULL, sigb64[(STK_SIG_MAX + 2) / 3 * 4 + 1];
	size_t siglen = sizeof(sig);
	int in_tx = 0, r;

	if ((r = oidc_check_record(is, err)) != 0)
		goto out;
	/* A JWKS with a key too small, or none usable, is refused here. */
	if (is->jwks == NULL) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, "no JWKS");
		goto out;
	}
	if ((r = stk_jwks_parse(is->jwks, strlen(is->jwks), 1, &keys, err)) != 0)
		goto out;
	snprintf(detail, sizeof(detail), "aud=%.60s claim=%s%s%.40s keys=%zu %s",
	    is->audience, is->device_claim, is->tenant[0] ? " tid=" : "", is->tenant,
	    stk_jwks_count(keys), is->jwks_url[0] ? "url" : "file");
	stk_jwks_free(keys);
	/* Sign the record with this node's key before taking the write lock. */
	if (s->kid[0] == '\0') {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "this node has no key of its own to endorse the issuer with");
		goto out;
	}
	if ((msg = oidc_endorse_message(s->guid, is)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	if ((r = stk_site_key(s, &key, err)) != 0 || (r = stk_key_sign(key,
	    (const unsigned char *)msg, strlen(msg), sig, &siglen, err)) != 0)
		goto out;
	stk_b64url_encode_buf(sig, siglen, sigb64);
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	in_tx = 1;
	r = site_row_get(s, "SELECT 1 FROM oidc_issuers WHERE issuer = ?", &issuer, 1,
	    "reading trusted issuers", NULL, NULL, err);
	if (r == STK_OK) {
		r = stk_error_set(err, STK_E_EXISTS, STK_LAYER_NONE, 0, "issuer %.200s is "
		    "trusted already (oidc remove it first to change it)", is->issuer);
		goto out;
	}
	if (r != STK_E_NOTFOUND)
		goto out;
	if (db_prepare(s->store, "INSERT INTO oidc_issuers (issuer, audience, device_claim,"
	    " tenant, jwks_url, jwks, jwks_ca, added_at, endorsed_by, endorsement)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &st) != 0) {
		r = site_db_error(s, err, "recording the issuer");
		goto out;
	}
	r = db_bind_text(st, 1, is->issuer) | db_bind_text(st, 2, is->audience) |
	    db_bind_text(st, 3, is->device_claim) | db_bind_text(st, 4, is->tenant) |
	    db_bind_text(st, 5, is->jwks_url) |
	    db_bind_text(st, 6, is->jwks_url[0] ? "" : is->jwks) |
	    db_bind_text(st, 7, is->jwks_ca ? is->jwks_ca : "") |
	    db_bind_int64(st, 8, stk_now()) | db_bind_text(st, 9, s->kid) |
	    db_bind_text(st, 10, sigb64);
	if (r != 0 || db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "recording the issuer");
		goto out;
	}
	db_finalize(st);
	st = NULL;
	in_tx = 0;
	r = oidc_commit(s, actor, "oidc.issuer.add", is->issuer, detail, err);
out:
	free(msg);
	db_finalize(st);
	if (in_tx)
		stk_site_tx_rollback(s);
	return r;
}

int
stk_oidc_remove(struct stk_site *s, const char *issuer, const char *actor,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int in_tx = 0, r;

	if (issuer == NULL || !oidc_printable(issuer, STK_OIDC_ISSUER_MAX)) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "--issuer must be the issuer URL as `oidc list` shows it");
		goto out;
	}
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	in_tx = 1;
	if (db_prepare(s->store, "DELETE FROM oidc_issuers WHERE issuer = ?", &st) != 0) {
		r = site_db_error(s, err, "removing the issuer");
		goto out;
	}
	if (db_bind_text(st, 1, issuer) != 0 || db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "removing the issuer");
		goto out;
	}
	if (db_changes(s->store) != 1) {
		r = stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_NONE, 0,
		    "issuer %.200s is not trusted by this site", issuer);
		goto out;
	}
	db_finalize(st);
	st = NULL;
	in_tx = 0;
	r = oidc_commit(s, actor, "oidc.issuer.remove", issuer, "", err);
out:
	db_finalize(st);
	if (in_tx)
		stk_site_tx_rollback(s);
	return r;
}

#define OIDC_COLUMNS "issuer, audience, device_claim, tenant, jwks_url, jwks," \
	" jwks_ca, added_at, endorsed_by, endorsement"

static int
oidc_row(struct site_stmt *st, void *arg)
{
	struct stk_oidc_issuer *o = arg;
	const char *t;

	memset(o, 0, sizeof(*o));
	snprintf(o->issuer, sizeof(o->issuer), "%s", db_column_text(st, 0));
	snprintf(o->audience, sizeof(o->audience), "%s", db_column_text(st, 1));
	snprintf(o->device_claim, sizeof(o->device_claim), "%s", db_column_text(st, 2));
	snprintf(o->tenant, sizeof(o->tenant), "%s", db_column_text(st, 3));
	snprintf(o->jwks_url, sizeof(o->jwks_url), "%s", db_column_text(st, 4));
	if ((t = db_column_text(st, 5)) != NULL && *t && (o->jwks = strdup(t)) == NULL)
		return STK_E_NOMEM;
	if ((t = db_column_text(st, 6)) != NULL && *t && (o->jwks_ca = strdup(t)) == NULL)
		return STK_E_NOMEM;
	o->added_at = db_column_int64(st, 7);
	snprintf(o->endorsed_by, sizeof(o->endorsed_by), "%s",
	    db_column_text(st, 8) ? db_column_text(st, 8) : "");
	if ((t = db_column_text(st, 9)) != NULL && *t && (o->endorsement = strdup(t)) == NULL)
		return STK_E_NOMEM;
	return STK_OK;
}

int
stk_oidc_get(struct stk_site *s, const char *issuer, struct stk_oidc_issuer *out,
    struct stk_error *err)
{
	int r;

	memset(out, 0, sizeof(*out));
	r = site_row_get(s, "SELECT " OIDC_COLUMNS " FROM oidc_issuers WHERE issuer = ?",
	    &issuer, 1, "reading trusted issuers", oidc_row, out, err);
	if (r == STK_E_NOTFOUND)
		r = stk_error_set(err, r, STK_LAYER_NONE, 0,
		    "issuer %.200s is not trusted by this site", issuer);
	else if (r == STK_E_NOMEM) {
		stk_oidc_issuer_clear(out);
		r = stk_error_set(err, r, STK_LAYER_NONE, 0, "out of memory");
	}
	return r;
}

int
stk_oidc_foreach(struct stk_site *s, stk_oidc_cb cb, void *ctx, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	struct stk_oidc_issuer *v = NULL, *nv;
	long *devices = NULL, *nd;
	size_t n = 0, i;
	int rc, r = STK_OK;

	/* Rows first, then the endorsement checks (their own queries) and the
	 * callbacks, with no statement open. */
	if (db_prepare(s->store, "SELECT " OIDC_COLUMNS ", (SELECT count(*) FROM"
	    " oidc_devices d WHERE d.issuer = oidc_issuers.issuer) FROM oidc_issuers"
	    " ORDER BY issuer", &st) != 0)
		return site_db_error(s, err, "reading trusted issuers");
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		if ((nv = realloc(v, (n + 1) * sizeof(*v))) == NULL ||
		    (v = nv, nd = realloc(devices, (n + 1) * sizeof(*devices))) == NULL) {
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
			break;
		}
		devices = nd;
		devices[n] = (long)db_column_int64(st, 10);
		if (oidc_row(st, &v[n++]) != 0) {
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
			break;
		}
	}
	if (r == 0 && rc != SITE_DB_DONE)
		r = site_db_error(s, err, "reading trusted issuers");
	db_finalize(st);
	for (i = 0; r == 0 && i < n; i++) {
		v[i].endorsed = oidc_endorsed(s, &v[i], v[i].endorsed_by, v[i].endorsement);
		r = cb(ctx, &v[i], devices[i]);
	}
	for (i = 0; i < n; i++)
		stk_oidc_issuer_clear(&v[i]);
	free(v);
	free(devices);
	return r;
}

/* ---- the JWKS cache of URL-mode issuers ----
 * Per process, keyed by issuer and URL. A fetch happens when the issuer has
 * no keys yet, when they are older than STK_OIDC_CACHE_MAX_AGE, or for an
 * unknown kid; never twice within STK_OIDC_REFRESH_MIN seconds, so junk
 * tokens naming random kids cost at most one fetch per interval (attacker
 * 1: no unbounded work). The lock is held across the check: registrations
 * are serialised by the server anyway. */

#define OIDC_CACHE_SLOTS 16

struct oidc_cache_ent {
	char issuer[STK_OIDC_ISSUER_MAX + 1];
	char url[1024];
	struct stk_jwks *keys;
	int64_t fetched_at;   /* keys fetched */
	int64_t tried_at;     /* last fetch attempt */
};

static pthread_mutex_t oidc_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct oidc_cache_ent oidc_cache[OIDC_CACHE_SLOTS];

void
stk_oidc_cache_flush(void)
{
	size_t i;

	pthread_mutex_lock(&oidc_cache_mu);
	for (i = 0; i < OIDC_CACHE_SLOTS; i++) {
		stk_jwks_free(oidc_cache[i].keys);
		memset(&oidc_cache[i], 0, sizeof(oidc_cache[i]));
	}
	pthread_mutex_unlock(&oidc_cache_mu);
}

/* Caller holds the lock. The slot of this issuer (a free or the oldest one
 * when new). */
static struct oidc_cache_ent *
oidc_cache_slot(const struct stk_oidc_issuer *is)
{
	struct oidc_cache_ent *e = NULL;
	size_t i;

	for (i = 0; i < OIDC_CACHE_SLOTS; i++)
		if (strcmp(oidc_cache[i].issuer, is->issuer) == 0 &&
		    strcmp(oidc_cache[i].url, is->jwks_url) == 0)
			return &oidc_cache[i];
	for (i = 0; i < OIDC_CACHE_SLOTS; i++)
		if (e == NULL || oidc_cache[i].tried_at < e->tried_at)
			e = &oidc_cache[i];
	stk_jwks_free(e->keys);
	memset(e, 0, sizeof(*e));
	snprintf(e->issuer, sizeof(e->issuer), "%s", is->issuer);
	snprintf(e->url, sizeof(e->url), "%s", is->jwks_url);
	return e;
}

/* Fetch when allowed; keeps the old keys when the fetch fails. */
static void
oidc_cache_fetch(struct oidc_cache_ent *e, const struct stk_oidc_issuer *is, int64_t now)
{
	struct stk_jwks *keys = NULL;
	struct stk_error err;
	char *doc = NULL;
	size_t len = 0;

	if (e->tried_at != 0 && now - e->tried_at < STK_OIDC_REFRESH_MIN)
		return;
	e->tried_at = now;
	stk_error_clear(&err);
	if (stk_jwks_fetch(is->jwks_url, is->jwks_ca, &doc, &len, &err) != 0 ||
	    stk_jwks_parse(doc, len, 0, &keys, &err) != 0) {
		STK_LOG(STK_LOG_WARN, "oidc", "JWKS of %.200s not refreshed: %s", is->issuer,
		    err.msg);
		free(doc);
		return;
	}
	free(doc);
	STK_LOG(STK_LOG_INFO, "oidc", "JWKS of %.200s fetched: %zu key(s)", is->issuer,
	    stk_jwks_count(keys));
	stk_jwks_free(e->keys);
	e->keys = keys;
	e->fetched_at = now;
}

int
stk_oidc_check(struct stk_site *s, const char *token, size_t len, int64_t now,
    struct stk_idtoken *out, enum stk_refusal *reason, struct stk_error *err)
{
	struct stk_oidc_issuer is;
	struct stk_jwks *keys = NULL;
	struct oidc_cache_ent *e;
	char iss[STK_OIDC_ISSUER_MAX + 1];
	int r;

	memset(out, 0, sizeof(*out));
	memset(&is, 0, sizeof(is));
	*reason = STK_REFUSAL_INTERNAL;
	if ((r = stk_idtoken_peek_issuer(token, len, iss, reason, err)) != 0)
		return r;
	if ((r = stk_oidc_get(s, iss, &is, err)) != 0) {
		if (r == STK_E_NOTFOUND) {
			*reason = STK_REFUSAL_IDTOKEN_ISSUER;
			r = stk_error_set(err, STK_E_TOKEN_ISSUER, STK_LAYER_TOKEN, 0,
			    "ID token issuer %.200s is not trusted by this site", iss);
		} else
			*reason = STK_REFUSAL_INTERNAL;
		return r;
	}
	/* A record the site key did not sign (attacker 3 wrote it) trusts no one. */
	if (!oidc_endorsed(s, &is, is.endorsed_by, is.endorsement)) {
		STK_LOG(STK_LOG_ERROR, "oidc", "the record of issuer %.200s is not endorsed by "
		    "a trusted site key: ignored (edited in the database?)", is.issuer);
		*reason = STK_REFUSAL_IDTOKEN_ISSUER;
		r = stk_error_set(err, STK_E_TOKEN_ISSUER, STK_LAYER_TOKEN, 0, "ID token "
		    "issuer %.200s is not trusted by this site (its record is not endorsed "
		    "by the site key)", is.issuer);
		goto out;
	}
	if (is.jwks_url[0] == '\0') {
		/* FILE mode: the keys checked at oidc add, from the record. */
		if ((r = stk_jwks_parse(is.jwks, is.jwks ? strlen(is.jwks) : 0, 0, &keys,
		    err)) != 0) {
			*reason = STK_REFUSAL_INTERNAL;
			goto out;
		}
		r = stk_idtoken_verify(&is, keys, token, len, now, out, reason, err);
		goto out;
	}
	pthread_mutex_lock(&oidc_cache_mu);
	e = oidc_cache_slot(&is);
	if (e->keys == NULL || now - e->fetched_at >= STK_OIDC_CACHE_MAX_AGE)
		oidc_cache_fetch(e, &is, now);
	if (e->keys == NULL) {
		*reason = STK_REFUSAL_IDTOKEN_KEY;
		r = stk_error_set(err, STK_E_TOKEN_HEADER, STK_LAYER_TOKEN, 0, "the JWKS of "
		    "%.200s cannot be fetched now (see the server log)", is.issuer);
	} else {
		r = stk_idtoken_verify(&is, e->keys, token, len, now, out, reason, err);
		if (r != 0 && *reason == STK_REFUSAL_IDTOKEN_KEY) {
			/* The issuer may have rotated its keys: fetch again (rate-limited). */
			oidc_cache_fetch(e, &is, now);
			r = stk_idtoken_verify(&is, e->keys, token, len, now, out, reason, err);
		}
	}
	pthread_mutex_unlock(&oidc_cache_mu);
out:
	stk_jwks_free(keys);
	stk_oidc_issuer_clear(&is);
	return r;
}

/* ---- one device per issuer + device claim ---- */

static int
oidc_guid_row(struct site_stmt *st, void *guid)
{
	snprintf(guid, STK_GUID_LEN + 1, "%s", db_column_text(st, 0));
	return STK_OK;
}

struct oidc_identity {
	char *issuer;
	size_t ilen;
	char *device;
	size_t dlen;
};

static int
oidc_identity_row(struct site_stmt *st, void *arg)
{
	struct oidc_identity *id = arg;

	snprintf(id->issuer, id->ilen, "%s", db_column_text(st, 0));
	snprintf(id->device, id->dlen, "%s", db_column_text(st, 1));
	return STK_OK;
}

int
site_oidc_device_lookup(struct stk_site *s, const char *issuer, const char *device,
    char guid[STK_GUID_LEN + 1], struct stk_error *err)
{
	const char *keys[2] = { issuer, device };

	guid[0] = '\0';
	return site_row_get(s, "SELECT device_guid FROM oidc_devices WHERE issuer = ?"
	    " AND device_id = ?", keys, 2, "reading OIDC devices", oidc_guid_row, guid, err);
}

int
site_oidc_identity_of(struct stk_site *s, const char *guid, char *issuer, size_t ilen,
    char *device, size_t dlen, struct stk_error *err)
{
	struct oidc_identity id = { issuer, ilen, device, dlen };

	issuer[0] = device[0] = '\0';
	return site_row_get(s, "SELECT issuer, device_id FROM oidc_devices WHERE"
	    " device_guid = ?", &guid, 1, "reading OIDC devices", oidc_identity_row, &id,
	    err);
}

int
site_oidc_device_bind(struct stk_site *s, const struct stk_idtoken *id,
    const char *guid, int64_t now, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r;

	if (db_prepare(s->store, "INSERT INTO oidc_devices (issuer, device_id, device_guid,"
	    " sub, registered_at) VALUES (?, ?, ?, ?, ?)", &st) != 0)
		return site_db_error(s, err, "recording the OIDC device");
	r = db_bind_text(st, 1, id->issuer) | db_bind_text(st, 2, id->device) |
	    db_bind_text(st, 3, guid) | db_bind_text(st, 4, id->sub) |
	    db_bind_int64(st, 5, now);
	if (r != 0 || db_step(st) != SITE_DB_DONE)
		r = site_db_error(s, err, "recording the OIDC device");
	db_finalize(st);
	return r;
}

int
stk_oidc_device_identity(struct stk_site *s, const char *guid, char *issuer,
    size_t ilen, char *device, size_t dlen, struct stk_error *err)
{
	int r = site_oidc_identity_of(s, guid, issuer, ilen, device, dlen, err);

	return r == STK_E_NOTFOUND ? STK_OK : r;
}
