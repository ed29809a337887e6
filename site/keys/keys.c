/* Site keys: one signing key per node, each in that node's own TPM, HSM or
 * key file, registered in the shared store (site_keys) with its kid and
 * certificate. Every node verifies with every active or retiring key.
 *
 * The key set is cached: re-read when older than SITE_KEYS_TTL, and at once
 * when a token names a key the cache does not know (rate-limited, so a flood
 * of garbage tokens cannot turn into a flood of queries). Reading the key
 * set never writes: verifying changes nothing in the site.
 *
 * Retirement (threat model, attacker 4: a wrong clock on one node or one
 * CLI run must not make a site-wide change). Every issue records in the
 * store the latest expiry of the tokens each key signed (site_keys.max_exp,
 * site_keys_issued). A rotation leaves the old key "retiring" (retiring_at,
 * by the store's clock). A retiring key is retired only when the store's
 * clock (PostgreSQL now(); on SQLite the serving node's) is past both
 * max_exp and retiring_at by SITE_KEY_GRACE, and only by
 * stk_site_keys_retire_due (the server's housekeeping, `sitetoken key
 * retire`) or an explicit stk_site_key_retire; both audited, and
 * stk_site_key_restore undoes a mistake.
 *
 * The verifier is a reference-counted snapshot (stk_site_verifier_get):
 * a refresh swaps in a new one and holders keep theirs. The signer, key and
 * certificate handed out stay valid until the site is closed: a rotation
 * of this node's key parks the old ones (one set per rotation), and so
 * does a key-set change for a verifier lent without a reference. Which
 * keys are trusted at all is decided in keytrust.c. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/asn1.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include "sitetoken/cert.h"
#include "sitetoken/device.h"
#include "sitetoken/log.h"
#include "sitetoken/stats.h"
#include "site_int.h"

#define SITE_KEYS_TTL 60          /* seconds a cached key set is trusted */
#define SITE_KEYS_MISS_GAP 1      /* seconds between unknown-kid refreshes */
/* A retiring key verifies until the longest-lived token it could have signed
 * has expired: client tokens (bulk tokens live at most 7 days), plus the
 * verifiers' clock leeway and the time nodes may take to notice a rotation. */
#define SITE_KEY_RETIRE_AFTER \
	(STK_CLIENT_TOKEN_LIFETIME + STK_DEFAULT_LEEWAY + SITE_KEYS_TTL)
/* After its last token expired (max_exp) and after it stopped signing
 * (retiring_at), a key still verifies for the verifiers' clock leeway and
 * the time processes of its node take to notice the rotation. Keys from
 * before max_exp was recorded (NULL) fall back on not_after, which already
 * holds the whole client token lifetime. */
#define SITE_KEY_GRACE (STK_DEFAULT_LEEWAY + SITE_KEYS_TTL)

struct site_parked {
	struct site_parked *next;
	struct stk_signer *signer;
	struct stk_key *key;
	struct stk_verifier *verifier;
	unsigned char *cert;
};

static void
park(struct stk_site *s, struct stk_signer *signer, struct stk_key *key,
    struct stk_verifier *v, unsigned char *cert)
{
	struct site_parked *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		/* Leaking beats a use-after-free in a caller that holds it. */
		STK_LOG(STK_LOG_WARN, "site", "out of memory parking an old key");
		return;
	}
	p->signer = signer;
	p->key = key;
	p->verifier = v;
	p->cert = cert;
	p->next = s->parked;
	s->parked = p;
}

void
site_keys_free_parked(struct stk_site *s)
{
	struct site_parked *p, *n;

	for (p = s->parked; p != NULL; p = n) {
		n = p->next;
		stk_verifier_free(p->verifier);
		stk_signer_free(p->signer);
		stk_key_close(p->key);
		free(p->cert);
		free(p);
	}
	s->parked = NULL;
}

int
site_keys_insert(struct stk_site *s, const char *kid, const char *node,
    const char *backend, const char *key_uri, enum stk_key_type type,
    const unsigned char *cert, size_t cert_len, int64_t now,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r = STK_OK;

	if (db_prepare(s->store, "INSERT INTO site_keys (kid, node, backend, key_uri,"
	    " key_type, cert, status, created_at) VALUES (?, ?, ?, ?, ?, ?,"
	    " 'active', ?)", &st) != 0)
		return site_db_error(s, err, "registering the key");
	if (db_bind_text(st, 1, kid) != 0 ||
	    db_bind_text(st, 2, node) != 0 ||
	    db_bind_text(st, 3, backend) != 0 ||
	    db_bind_text(st, 4, key_uri) != 0 ||
	    db_bind_text(st, 5, stk_key_type_name(type)) != 0 ||
	    db_bind_blob(st, 6, cert, cert_len) != 0 ||
	    db_bind_int64(st, 7, now) != 0 ||
	    db_step(st) != SITE_DB_DONE)
		r = site_db_error(s, err, "registering the key");
	db_finalize(st);
	return r;
}

/* Load this node's newest active key that is trusted (keytrust.c) into the
 * site: a row a database writer inserted for this node is passed over. A
 * change of key parks the open key and signer. Call with s->lock held, or
 * before the site is shared. */
static int
site_keys_load_mine(struct stk_site *s, const struct site_trust *t,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	const char *kid = NULL, *backend = NULL, *uri = NULL, *type = NULL;
	const void *blob = NULL;
	char *nb = NULL, *nu = NULL;
	unsigned char *nc = NULL;
	size_t n = 0;
	int rc, r = STK_OK;

	if (db_prepare(s->store, "SELECT kid, backend, key_uri, key_type, cert FROM"
	    " site_keys WHERE node = ? AND status = 'active' ORDER BY created_at DESC,"
	    " kid", &st) != 0)
		return site_db_error(s, err, "reading the site keys");
	if (db_bind_text(st, 1, stk_site_node(s)) != 0) {
		r = site_db_error(s, err, "reading the site keys");
		goto out;
	}
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		kid = db_column_text(st, 0);
		if (kid != NULL && site_trust_find(t, kid) != NULL)
			break;
		if (kid != NULL)
			STK_LOG(STK_LOG_WARN, "site", "node %s: key %.43s has no valid "
			    "endorsement: not used", stk_site_node(s), kid);
		kid = NULL;
	}
	if (rc != SITE_DB_ROW && rc != SITE_DB_DONE) {
		r = site_db_error(s, err, "reading the site keys");
		goto out;
	}
	if (kid == NULL || strcmp(kid, s->kid) == 0)
		goto out; /* no trusted key of its own: keeps the site record's */
	backend = db_column_text(st, 1);
	uri = db_column_text(st, 2);
	type = db_column_text(st, 3);
	blob = db_column_blob(st, 4, &n);
	if (backend == NULL || uri == NULL || type == NULL || blob == NULL || n == 0) {
		r = stk_error_set(err, STK_E_DB, STK_LAYER_NONE, 0,
		    "site key %s has an empty field", kid);
		goto out;
	}
	if ((nb = strdup(backend)) == NULL || (nu = strdup(uri)) == NULL ||
	    (nc = malloc(n)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	memcpy(nc, blob, n);
	if (s->kid[0] != '\0')
		STK_LOG(STK_LOG_INFO, "site", "node %s now signs with key %s (was %s)",
		    stk_site_node(s), kid, s->kid);
	park(s, s->signer, s->key, NULL, s->cert);
	s->signer = NULL;
	s->key = NULL;
	free(s->backend);
	free(s->key_uri);
	s->backend = nb;
	s->key_uri = nu;
	s->cert = nc;
	s->cert_len = n;
	s->key_type = stk_key_type_parse(type);
	snprintf(s->kid, sizeof(s->kid), "%s", kid);
	nb = nu = NULL;
	nc = NULL;
out:
	free(nb);
	free(nu);
	free(nc);
	db_finalize(st);
	return r;
}

int
site_store_now(struct stk_site *s, int64_t *now, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r = STK_OK;

	*now = 0;
	/* On SQLite the store is on this host: its clock is the serving node's. */
	if (s->store->vt == &site_db_sqlite) {
		*now = stk_now();
		return STK_OK;
	}
	if (db_prepare(s->store, "SELECT CAST(extract(epoch FROM now()) AS BIGINT)",
	    &st) != 0)
		return site_db_error(s, err, "reading the store's clock");
	if (db_step(st) == SITE_DB_ROW)
		*now = db_column_int64(st, 0);
	else
		r = site_db_error(s, err, "reading the store's clock");
	db_finalize(st);
	return r;
}

int
site_keys_issued(struct stk_site *s, const char *kid, int64_t exp,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r = STK_OK;

	/* NULL max_exp: a key from before the record; not_after covers it. */
	if (db_prepare(s->store, "UPDATE site_keys SET max_exp = ? WHERE kid = ?"
	    " AND max_exp IS NOT NULL AND max_exp < ?", &st) != 0)
		return site_db_error(s, err, "recording the token's key");
	if (db_bind_int64(st, 1, exp) != 0 || db_bind_text(st, 2, kid) != 0 ||
	    db_bind_int64(st, 3, exp) != 0 || db_step(st) != SITE_DB_DONE)
		r = site_db_error(s, err, "recording the token's key");
	db_finalize(st);
	return r;
}

/* Set key kid's status (from one of the statuses in `from`, a SQL list)
 * and audit it as event, in its own transaction. *changed: 0 when the key
 * was not in such a status. */
static int
site_keys_set_status(struct stk_site *s, const char *kid, const char *from,
    const char *to, int64_t now, const char *actor, const char *event,
    const char *detail, int *changed, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	char sql[256];
	int r;

	*changed = 0;
	if (strcmp(to, "retired") == 0)
		snprintf(sql, sizeof(sql), "UPDATE site_keys SET status = 'retired',"
		    " retired_at = ?1 WHERE kid = ?2 AND status IN (%s)", from);
	else
		snprintf(sql, sizeof(sql), "UPDATE site_keys SET status = 'retiring',"
		    " retired_at = NULL, retiring_at = ?1 WHERE kid = ?2 AND status"
		    " IN (%s)", from);
	if ((r = stk_site_tx_begin(s, err)) != 0)
		return r;
	if (db_prepare(s->store, sql, &st) != 0) {
		r = site_db_error(s, err, "changing a site key's status");
		goto out;
	}
	if (db_bind_int64(st, 1, now) != 0 || db_bind_text(st, 2, kid) != 0 ||
	    db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "changing a site key's status");
		goto out;
	}
	*changed = db_changes(s->store) == 1;
	/* Gateways re-read the key set at the next generation (tokcache.c). */
	if (*changed && (r = site_gw_bump(s, err)) != 0)
		goto out;
	if (*changed && (r = stk_audit_append(s, actor ? actor : "admin", event, kid,
	    "ok", detail, err)) != 0)
		goto out;
	db_finalize(st);
	st = NULL;
	r = stk_site_tx_commit(s, err);
out:
	db_finalize(st);
	if (r != 0) {
		stk_site_tx_rollback(s);
		*changed = 0;
	}
	return r;
}

int
stk_site_keys_retire_due(struct stk_site *s, const char *actor, size_t *retired,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	char (*kids)[64] = NULL, detail[96];
	size_t n = 0, cap = 0, i;
	int64_t now;
	int r, rc, changed;

	*retired = 0;
	if ((r = site_store_now(s, &now, err)) != 0)
		return r;
	if (db_prepare(s->store, "SELECT kid FROM site_keys WHERE status = 'retiring'"
	    " AND coalesce(max_exp, not_after) IS NOT NULL"
	    " AND coalesce(max_exp, not_after) + ?1 <= ?2"
	    " AND coalesce(retiring_at, 0) + ?1 <= ?2 ORDER BY kid", &st) != 0)
		return site_db_error(s, err, "reading the site keys");
	if (db_bind_int64(st, 1, SITE_KEY_GRACE) != 0 || db_bind_int64(st, 2, now) != 0) {
		r = site_db_error(s, err, "reading the site keys");
		goto out;
	}
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		if (n == cap) {
			void *p = realloc(kids, (cap = cap ? cap * 2 : 4) * sizeof(*kids));
			if (p == NULL) {
				r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0,
				    "out of memory");
				goto out;
			}
			kids = p;
		}
		snprintf(kids[n++], sizeof(kids[0]), "%s", db_column_text(st, 0) ?
		    db_column_text(st, 0) : "");
	}
	if (rc != SITE_DB_DONE) {
		r = site_db_error(s, err, "reading the site keys");
		goto out;
	}
	db_finalize(st);
	st = NULL;
	snprintf(detail, sizeof(detail), "every token it signed has expired (store "
	    "clock %lld)", (long long)now);
	/* Each under the write lock, conditional on still being retiring:
	 * another node's housekeeping may have done it meanwhile. */
	for (i = 0; i < n; i++) {
		if ((r = site_keys_set_status(s, kids[i], "'retiring'", "retired", now,
		    actor, "key.retire", detail, &changed, err)) != 0)
			goto out;
		if (changed)
			(*retired)++;
	}
	if (*retired > 0)
		STK_LOG(STK_LOG_INFO, "site", "%zu site key(s) retired", *retired);
out:
	free(kids);
	db_finalize(st);
	return r;
}

struct key_state {
	char status[16];
	int64_t until;               /* coalesce(max_exp, not_after, 0) */
};

static int
key_state_row(struct site_stmt *st, void *arg)
{
	struct key_state *k = arg;

	snprintf(k->status, sizeof(k->status), "%s", db_column_text(st, 0) ?
	    db_column_text(st, 0) : "");
	k->until = db_column_int64(st, 1);
	return STK_OK;
}

int
stk_site_key_retire(struct stk_site *s, const char *kid, const char *actor,
    int64_t *valid_until, struct stk_error *err)
{
	struct key_state ks = { "", 0 };
	char detail[128];
	int64_t now;
	int r, changed;

	*valid_until = 0;
	if ((r = site_store_now(s, &now, err)) != 0)
		return r;
	r = site_row_get(s, "SELECT status, coalesce(max_exp, not_after, 0)"
	    " FROM site_keys WHERE kid = ?", &kid, 1, "reading the site keys",
	    key_state_row, &ks, err);
	if (r == STK_E_NOTFOUND)
		r = stk_error_set(err, r, STK_LAYER_NONE, 0,
		    "no site key %s (see `sitetoken key list`)", kid);
	if (r != 0)
		goto out;
	if (strcmp(ks.status, "active") == 0) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "key %s is a node's active signing key: rotate that node's key "
		    "first (`sitetoken key rotate`)", kid);
		goto out;
	}
	if (strcmp(ks.status, "retired") == 0) {
		r = stk_error_set(err, STK_E_EXISTS, STK_LAYER_NONE, 0,
		    "key %s is already retired", kid);
		goto out;
	}
	/* The operator's decision (a compromised key, say): tokens it signed
	 * that have not expired stop verifying; say so in the record. */
	if (ks.until + SITE_KEY_GRACE > now)
		snprintf(detail, sizeof(detail), "by hand; tokens it signed were valid "
		    "until %lld", (long long)ks.until);
	else
		snprintf(detail, sizeof(detail), "by hand; every token it signed has "
		    "expired");
	if ((r = site_keys_set_status(s, kid, "'retiring'", "retired", now, actor,
	    "key.retire", detail, &changed, err)) != 0)
		goto out;
	if (!changed) {
		r = stk_error_set(err, STK_E_EXISTS, STK_LAYER_NONE, 0,
		    "key %s changed status meanwhile", kid);
		goto out;
	}
	if (ks.until + SITE_KEY_GRACE > now)
		*valid_until = ks.until;
	s->keys_checked = 0; /* the next use re-reads the key set */
out:
	return r;
}

int
stk_site_key_restore(struct stk_site *s, const char *kid, const char *actor,
    struct stk_error *err)
{
	int64_t now;
	int r, changed;

	if ((r = site_store_now(s, &now, err)) != 0)
		return r;
	/* Back to retiring: it verifies again, and housekeeping retires it
	 * only when the store says its tokens have expired. */
	if ((r = site_keys_set_status(s, kid, "'retired'", "retiring", now, actor,
	    "key.restore", "verifies again until its tokens expire", &changed,
	    err)) != 0)
		return r;
	if (!changed)
		return stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_NONE, 0,
		    "no retired site key %s (see `sitetoken key list`)", kid);
	s->keys_checked = 0;
	return STK_OK;
}

static int
trust_verifies(const struct site_trust_key *k)
{
	return k->trusted && k->in_table && (strcmp(k->status, "active") == 0 ||
	    strcmp(k->status, "retiring") == 0);
}

/* Build a verifier over every trusted active and retiring key, unless the
 * set is the one the current verifier holds. Rows without a valid
 * endorsement are left out and reported when the set changes. */
static int
site_keys_load_verifier(struct stk_site *s, const struct site_trust *t,
    struct stk_error *err)
{
	struct stk_verifier *v = NULL;
	char *fp = NULL;
	size_t fplen = 0, i;
	FILE *f;
	int r = STK_OK, nkeys = 0;

	if ((f = open_memstream(&fp, &fplen)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	if ((r = stk_verifier_new(s->guid, &v, err)) != 0)
		goto out;
	for (i = 0; i < t->n; i++) {
		const struct site_trust_key *k = &t->k[i];

		if (!trust_verifies(k)) {
			if (k->in_table && !k->trusted)
				fprintf(f, "!%s;", k->kid);
			continue;
		}
		fprintf(f, "%s;", k->kid);
		if ((r = stk_verifier_add_cert(v, k->der, k->der_len, err)) != 0)
			goto out;
		nkeys++;
	}
	/* No trusted row (a store from before site_keys cannot happen after
	 * the migration): the roots in the site directory, never nothing. */
	for (i = 0; nkeys == 0 && i < t->n; i++)
		if (t->k[i].root && (r = stk_verifier_add_cert(v, t->k[i].der,
		    t->k[i].der_len, err)) != 0)
			goto out;
	fclose(f);
	f = NULL;
	if (s->verifier != NULL && s->keys_fp != NULL && strcmp(s->keys_fp, fp) == 0)
		goto out; /* unchanged */
	if (t->untrusted > 0)
		STK_LOG(STK_LOG_WARN, "site", "%zu site key row(s) without a valid "
		    "endorsement ignored (first: %s); tokens they signed are refused",
		    t->untrusted, t->first_untrusted);
	pthread_mutex_lock(&s->lock);
	/* Snapshot holders keep their reference; only a verifier lent
	 * without one (stk_site_verifier) must stay until close. */
	if (s->verifier_lent)
		park(s, NULL, NULL, s->verifier, NULL);
	else
		stk_verifier_free(s->verifier);
	s->verifier_lent = 0;
	s->verifier = v;
	v = NULL;
	free(s->keys_fp);
	s->keys_fp = fp;
	fp = NULL;
	pthread_mutex_unlock(&s->lock);
out:
	if (f != NULL)
		fclose(f);
	free(fp);
	stk_verifier_free(v);
	return r;
}

int
site_keys_refresh(struct stk_site *s, int force, struct stk_error *err)
{
	struct site_trust *t = NULL;
	int64_t now = stk_now();
	int r;

	if (s->refreshing)
		return STK_OK;
	if (!force && s->verifier != NULL && now - s->keys_checked < SITE_KEYS_TTL &&
	    now >= s->keys_checked)
		return STK_OK;
	s->refreshing = 1;
	s->keys_checked = now;
	/* A read only: retirement is stk_site_keys_retire_due's alone. */
	if ((r = site_trust_load(s, &t, err)) == 0 &&
	    (r = site_keys_load_verifier(s, t, err)) == 0) {
		pthread_mutex_lock(&s->lock);
		r = site_keys_load_mine(s, t, err);
		pthread_mutex_unlock(&s->lock);
	}
	site_trust_free(t);
	s->refreshing = 0;
	if (r != 0)
		s->keys_checked = 0;
	return r;
}

int
site_keys_open(struct stk_site *s, struct stk_error *err)
{
	struct site_trust *t = NULL;
	int r;

	if ((r = site_trust_load(s, &t, err)) == 0)
		r = site_keys_load_mine(s, t, err);
	site_trust_free(t);
	return r;
}

int
stk_site_verify(struct stk_site *s, const char *token, size_t len,
    enum stk_token_type expect, int64_t now, struct stk_claims *claims,
    struct stk_error *err)
{
	struct stk_verifier *v = NULL;
	int64_t t = stk_now();
	int r;

	if ((r = stk_site_verifier_get(s, &v, err)) != 0)
		return r;
	r = stk_verify(v, token, len, expect, now, claims, err);
	/* A header refusal may be a key another node registered since the
	 * cache was filled: look once more (rate-limited). */
	if (r == STK_E_TOKEN_HEADER && t - s->keys_missed >= SITE_KEYS_MISS_GAP) {
		s->keys_missed = t;
		stk_verifier_free(v);
		v = NULL;
		if (site_keys_refresh(s, 1, NULL) == 0 &&
		    (r = stk_site_verifier_get(s, &v, err)) == 0) {
			stk_claims_clear(claims);
			r = stk_verify(v, token, len, expect, now, claims, err);
		}
	}
	stk_verifier_free(v);
	return r;
}

int
stk_site_jwks(struct stk_site *s, char **out, struct stk_error *err)
{
	struct site_trust *t = NULL;
	char *buf = NULL, *jwk = NULL;
	size_t len = 0, i;
	FILE *f = NULL;
	int r, nkeys = 0;

	*out = NULL;
	if ((r = site_trust_load(s, &t, err)) != 0)
		return r;
	if ((f = open_memstream(&buf, &len)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	fputs("{\"keys\":[", f);
	/* Trusted keys only, oldest first (the order rows were made). */
	for (i = 0; i < t->n; i++) {
		const struct site_trust_key *k = &t->k[i];

		if (!trust_verifies(k))
			continue;
		if ((r = stk_pkey_to_jwk(k->pk, k->der, k->der_len, &jwk, err)) != 0)
			goto out;
		fprintf(f, "%s%s", nkeys++ ? "," : "", jwk);
		free(jwk);
		jwk = NULL;
	}
out:
	if (f != NULL) {
		fputs("]}", f);
		fclose(f);
	}
	site_trust_free(t);
	if (r != 0)
		free(buf);
	else
		*out = buf;
	return r;
}

/* Declared in sitetoken/stats.h; here, below the facade that reads it for
 * metrics, because the key list fills each trusted key's notAfter. */
int64_t
stk_stats_cert_not_after(const void *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = der != NULL ? d2i_X509(NULL, &p, (long)len) : NULL;
	struct tm tm;
	int64_t t = 0;

	if (x != NULL && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		t = (int64_t)timegm(&tm);
	X509_free(x);
	return t;
}

int
stk_site_keys_list(struct stk_site *s, struct stk_site_key_row **rows,
    size_t *n, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	struct site_trust *t = NULL;
	const struct site_trust_key *tk;
	struct stk_site_key_row *v = NULL, *row;
	size_t cap = 0, cnt = 0;
	int rc, r = STK_OK;

	*rows = NULL;
	*n = 0;
	if ((r = site_trust_load(s, &t, err)) != 0)
		return r;
	if (db_prepare(s->store, "SELECT kid, node, backend, key_type, status,"
	    " created_at, not_after, retired_at, coalesce(max_exp, -1),"
	    " coalesce(retiring_at, 0) FROM site_keys"
	    " ORDER BY created_at, kid", &st) != 0) {
		r = site_db_error(s, err, "reading the site keys");
		goto out;
	}
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		if (cnt == cap) {
			void *p = realloc(v, (cap = cap ? cap * 2 : 8) * sizeof(*v));
			if (p == NULL) {
				r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0,
				    "out of memory");
				goto out;
			}
			v = p;
		}
		row = &v[cnt++];
		memset(row, 0, sizeof(*row));
#define COL(i, f) snprintf(row->f, sizeof(row->f), "%s", \
	db_column_text(st, i) ? db_column_text(st, i) : "")
		COL(0, kid);
		COL(1, node);
		COL(2, backend);
		COL(3, key_type);
		COL(4, status);
#undef COL
		row->created_at = db_column_int64(st, 5);
		row->not_after = db_column_int64(st, 6);
		row->retired_at = db_column_int64(st, 7);
		row->max_exp = db_column_int64(st, 8);
		/* The rule of stk_site_keys_retire_due. */
		if (strcmp(row->status, "retiring") == 0) {
			int64_t last = row->max_exp >= 0 ? row->max_exp : row->not_after;
			int64_t since = db_column_int64(st, 9);

			row->retire_after = (last > since ? last : since) + SITE_KEY_GRACE;
		}
		row->mine = strcmp(row->kid, s->kid) == 0;
		if ((tk = site_trust_find(t, row->kid)) != NULL) {
			row->trusted = 1;
			row->cert_not_after = stk_stats_cert_not_after(tk->der,
			    tk->der_len);
		}
	}
	if (rc != SITE_DB_DONE)
		r = site_db_error(s, err, "reading the site keys");
out:
	site_trust_free(t);
	db_finalize(st);
	if (r != 0)
		free(v);
	else {
		*rows = v;
		*n = cnt;
	}
	return r;
}

/* Make a key in this node's device and its certificate (signed by itself). */
int
site_make_key(struct stk_site *s, const char *backend, const char *key_uri,
    enum stk_key_type type, int64_t now, struct stk_key **key, char **uri,
    unsigned char **cert, size_t *cert_len, char kid[44], struct stk_error *err)
{
	struct stk_key_opts ko = s->kopts;
	EVP_PKEY *pub = NULL;
	int r;

	*key = NULL;
	*uri = NULL;
	*cert = NULL;
	if ((r = stk_key_generate(backend, key_uri, type, &ko, key, uri, err)) != 0)
		goto out;
	if ((r = stk_cert_make_site(*key, s->guid, now, SITE_CERT_DAYS, cert,
	    cert_len, err)) != 0 || (r = stk_key_get_public(*key, &pub, err)) != 0)
		goto out;
	if (stk_pkey_kid(pub, kid) != 0) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0, "cannot compute kid");
		goto out;
	}
	r = STK_OK;
out:
	EVP_PKEY_free(pub);
	if (r != 0) {
		stk_key_close(*key);
		*key = NULL;
		free(*uri);
		*uri = NULL;
		free(*cert);
		*cert = NULL;
	}
	return r;
}

int
site_write_cert_pem(struct stk_site *s, const unsigned char *der, size_t len,
    struct stk_error *err)
{
	char *pem = NULL;
	int r;

	if (stk_cert_der_to_pem(der, len, &pem) != 0)
		return stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0,
		    "cannot encode certificate");
	r = site_write_file(s->dir, "site.crt", pem, strlen(pem), 0644, err);
	free(pem);
	return r;
}

int
stk_site_key_rotate(struct stk_site *s, const char *key_uri,
    enum stk_key_type type, const char *actor, char new_kid[64],
    struct stk_error *err)
{
	struct stk_key *key = NULL;
	struct site_stmt *st = NULL;
	unsigned char *cert = NULL;
	size_t cert_len = 0;
	char *uri = NULL, kid[44], path[PATH_MAX], detail[160], old_kid[64];
	int64_t now = stk_now(), store_now;
	int r, committed = 0;

	new_kid[0] = '\0';
	if ((r = site_keys_refresh(s, 1, err)) != 0)
		return r;
	snprintf(old_kid, sizeof(old_kid), "%s", s->kid);
	if (type == STK_KEY_NONE)
		type = s->key_type;
	if (key_uri == NULL && strcmp(s->backend, "file") == 0) {
		unsigned char rnd[6];

		/* A new file beside the old one: the old key keeps verifying.
		 * Random bytes in the name: two rotations in one second (two
		 * processes, or two nodes sharing a directory) never collide. */
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0,
			    "no random bytes");
		snprintf(path, sizeof(path), "file:%s/site-%lld-%02x%02x%02x%02x%02x%02x.key",
		    s->dir, (long long)now, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
		key_uri = path;
	} else if (key_uri == NULL && strcmp(s->backend, "tpm") == 0) {
		/* Likewise a new key blob in the site directory (same TPM). */
		snprintf(path, sizeof(path), "tpm:blob=%s/site-%lld.tpmkey", s->dir,
		    (long long)now);
		key_uri = path;
	} else if (key_uri == NULL)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "key rotate on the %s backend needs --key-uri for the new key "
		    "(e.g. --key-uri 'pkcs11:token=...;object=site-key-2')", s->backend);
	if ((r = site_make_key(s, s->backend, key_uri, type, now, &key, &uri,
	    &cert, &cert_len, kid, err)) != 0)
		return r;
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	if ((r = site_store_now(s, &store_now, err)) != 0)
		goto out;
	if (db_prepare(s->store, "UPDATE site_keys SET status = 'retiring',"
	    " not_after = ?, retiring_at = ? WHERE node = ? AND status = 'active'",
	    &st) != 0) {
		r = site_db_error(s, err, "rotating the site key");
		goto out;
	}
	if (db_bind_int64(st, 1, now + SITE_KEY_RETIRE_AFTER) != 0 ||
	    db_bind_int64(st, 2, store_now) != 0 ||
	    db_bind_text(st, 3, stk_site_node(s)) != 0 || db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "rotating the site key");
		goto out;
	}
	db_finalize(st);
	st = NULL;
	/* The old key (trusted: it is this node's site.crt) endorses the new
	 * one, so every node that trusts the old key trusts the new. */
	if ((r = site_keys_insert(s, kid, stk_site_node(s), s->backend, uri, type,
	    cert, cert_len, now, err)) != 0 ||
	    (r = site_trust_endorse(s, kid, stk_site_node(s), cert, cert_len, err)) != 0)
		goto out;
	snprintf(detail, sizeof(detail), "node=%s old=%s retires after %lld",
	    stk_site_node(s), old_kid, (long long)now + SITE_KEY_RETIRE_AFTER);
	if ((r = stk_audit_append(s, actor ? actor : "admin", "key.rotate", kid, "ok",
	    detail, err)) != 0)
		goto out;
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	committed = 1;
	stk_key_close(key);
	key = NULL;
	/* The certificate site.crt held stays a root (trust.pem): the old
	 * key's checkpoints and endorsements keep verifying here. */
	if ((r = site_trust_add_root(s, s->cert, s->cert_len, err)) != 0)
		goto out;
	/* The new key signs from now on: here at once, on running processes
	 * of this node within SITE_KEYS_TTL. */
	if ((r = site_keys_refresh(s, 1, err)) != 0 ||
	    (r = site_write_cert_pem(s, cert, cert_len, err)) != 0)
		goto out;
	snprintf(new_kid, 64, "%s", kid);
	STK_LOG(STK_LOG_INFO, "site", "node %s rotated its key: %s -> %s",
	    stk_site_node(s), old_kid, kid);
out:
	db_finalize(st);
	if (r != 0 && !committed) {
		stk_site_tx_rollback(s);
		/* Only a key file can be removed here; a TPM blob or HSM object
		 * made for nothing is reported so the operator can delete it. */
		if (strncmp(uri, "file:", 5) == 0)
			unlink(uri + 5);
		else
			STK_LOG(STK_LOG_WARN, "site", "rotation failed: key %s was made "
			    "but not registered", uri);
	}
	stk_key_close(key);
	free(uri);
	free(cert);
	return r;
}

/* The key about to sign must be the one the site's certificate (this
 * node's row in site_keys) names: else every token would fail to verify
 * and every checkpoint would later read as tampering. */
static int
site_key_matches_cert(struct stk_site *s, struct stk_key *key,
    struct stk_error *err)
{
	const unsigned char *p = s->cert;
	EVP_PKEY *pub = NULL;
	X509 *x = NULL;
	int r;

	if ((r = stk_key_get_public(key, &pub, err)) != 0)
		goto out;
	if (p == NULL || (x = d2i_X509(NULL, &p, (long)s->cert_len)) == NULL) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0,
		    "the site certificate of key %s is unreadable", s->kid);
		goto out;
	}
	if (EVP_PKEY_eq(pub, X509_get0_pubkey(x)) != 1)
		r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
		    "the site key %s does not match the site certificate (key %s): "
		    "refusing to sign (was the key file replaced? restore it, or "
		    "rotate the key)", s->key_uri, s->kid[0] ? s->kid : "?");
out:
	X509_free(x);
	EVP_PKEY_free(pub);
	return r;
}

int
stk_site_signer(struct stk_site *s, const struct stk_signer **out,
    struct stk_error *err)
{
	struct stk_key *key;
	int r;

	*out = NULL;
	/* Follow a rotation made by another process of this node. */
	if ((r = site_keys_refresh(s, 0, err)) != 0)
		return r;
	if ((r = stk_site_key(s, &key, err)) != 0)
		return r;
	pthread_mutex_lock(&s->lock);
	if (s->signer == NULL && (r = site_key_matches_cert(s, key, err)) == 0)
		r = stk_signer_new(key, s->cert, s->cert_len, s->guid, &s->signer, err);
	*out = s->signer;
	pthread_mutex_unlock(&s->lock);
	return r;
}

int
stk_site_verifier(struct stk_site *s, const struct stk_verifier **out,
    struct stk_error *err)
{
	int r;

	*out = NULL;
	/* Built from every active and retiring key in the store (keys.c). */
	if ((r = site_keys_refresh(s, 0, err)) != 0)
		return r;
	pthread_mutex_lock(&s->lock);
	*out = s->verifier;
	s->verifier_lent = 1;
	pthread_mutex_unlock(&s->lock);
	return *out != NULL ? STK_OK : stk_error_set(err, STK_E_DB, STK_LAYER_NONE, 0,
	    "site has no verification key");
}

int
stk_site_verifier_get(struct stk_site *s, struct stk_verifier **out,
    struct stk_error *err)
{
	int r;

	*out = NULL;
	if ((r = site_keys_refresh(s, 0, err)) != 0)
		return r;
	pthread_mutex_lock(&s->lock);
	*out = stk_verifier_ref(s->verifier);
	pthread_mutex_unlock(&s->lock);
	return *out != NULL ? STK_OK : stk_error_set(err, STK_E_DB, STK_LAYER_NONE, 0,
	    "site has no verification key");
}

int
stk_site_key_endorse(struct stk_site *s, const char *kid, const char *actor,
    struct stk_error *err)
{
	struct site_trust *t = NULL;
	struct site_trust_key *k;
	char detail[160];
	int r;

	if ((r = site_trust_load(s, &t, err)) != 0)
		return r;
	if (site_trust_find(t, s->kid) == NULL) {
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "this node's own key %s is not trusted here: it cannot endorse",
		    s->kid);
		goto out;
	}
	if ((k = site_trust_lookup(t, kid)) == NULL || !k->in_table) {
		r = stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_NONE, 0,
		    "no site key with kid %.43s (or its certificate does not match it)",
		    kid);
		goto out;
	}
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	snprintf(detail, sizeof(detail), "node=%s by=%s", k->node, s->kid);
	if ((r = site_trust_endorse(s, k->kid, k->node, k->der, k->der_len, err)) != 0 ||
	    (r = stk_audit_append(s, actor ? actor : "admin", "key.endorse", k->kid,
	    "ok", detail, err)) != 0) {
		stk_site_tx_rollback(s);
		goto out;
	}
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	/* Verifiers of this process pick the key up now. */
	r = site_keys_refresh(s, 1, err);
out:
	site_trust_free(t);
	return r;
}
