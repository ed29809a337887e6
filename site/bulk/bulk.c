/* Bulk registration tokens: issued on demand, recorded by GUID only (the
 * token itself is never stored), blockable, and listed beside the site
 * certificates (site/registration/certs.c). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sitetoken/bulklimits.h"
#include "sitetoken/log.h"
#include "site_int.h"

int
stk_bulk_parse_lifetime(const char *s, long *minutes, struct stk_error *err)
{
	const char *p;
	long v;
	char *end;

	*minutes = 0;
	if (s == NULL || *s == '\0')
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "lifetime is empty: give a whole number of minutes (1 to %d)",
		    STK_BULK_LIFETIME_MAX);
	p = s;
	if (*p == '-')
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "lifetime '%.32s' is negative: give 1 to %d minutes", s,
		    STK_BULK_LIFETIME_MAX);
	for (; *p; p++)
		if (!isdigit((unsigned char)*p))
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "lifetime '%.32s' is not a whole number of minutes "
			    "(1 to %d)", s, STK_BULK_LIFETIME_MAX);
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno == ERANGE || v > STK_BULK_LIFETIME_MAX)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "lifetime %.32s minutes is over the maximum of %d (7 days)", s,
		    STK_BULK_LIFETIME_MAX);
	if (v < 1)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "lifetime must be at least 1 minute");
	*minutes = v;
	return STK_OK;
}

static int
bulk_insert(struct stk_site *s, const struct stk_bulk_record *rec,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r = STK_OK;

	if (db_prepare(s->store, "INSERT INTO bulk_tokens (guid, nbf, exp,"
	    " created_at, created_by) VALUES (?,?,?,?,?)", &st) != 0)
		return site_db_error(s, err, "recording the bulk token");
	if (db_bind_text(st, 1, rec->guid) != 0 ||
	    db_bind_int64(st, 2, rec->nbf) != 0 ||
	    db_bind_int64(st, 3, rec->exp) != 0 ||
	    db_bind_int64(st, 4, rec->created_at) != 0 ||
	    db_bind_text(st, 5, rec->created_by) != 0 ||
	    db_step(st) != SITE_DB_DONE)
		r = site_db_error(s, err, "recording the bulk token");
	db_finalize(st);
	return r;
}

int
stk_bulk_new(struct stk_site *s, long minutes, const char *actor,
    char **token, struct stk_bulk_record *rec, struct stk_error *err)
{
	return stk_bulk_new_limited(s, minutes, NULL, actor, token, rec, err);
}

int
stk_bulk_new_limited(struct stk_site *s, long minutes,
    const struct stk_bulk_limits *lim, const char *actor, char **token,
    struct stk_bulk_record *rec, struct stk_error *err)
{
	const struct stk_signer *signer;
	char detail[160];
	int r;

	*token = NULL;
	memset(rec, 0, sizeof(*rec));
	if (minutes < 1 || minutes > STK_BULK_LIFETIME_MAX) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "lifetime must be 1 to %d minutes", STK_BULK_LIFETIME_MAX);
		goto out;
	}
	if ((r = stk_site_signer(s, &signer, err)) != 0)
		goto out;
	rec->created_at = rec->nbf = stk_now();
	rec->exp = rec->nbf + (int64_t)minutes * 60;
	snprintf(rec->created_by, sizeof(rec->created_by), "%s", actor ? actor : "admin");
	/* Sign first: if the record cannot be written, the token is wiped and
	 * never seen; if signing fails, nothing was recorded. */
	if ((r = stk_issue_bulk(signer, NULL, rec->nbf, rec->exp, token, rec->guid,
	    err)) != 0)
		goto out;
	snprintf(detail, sizeof(detail), "lifetime=%ld min%s%.0ld%s%.120s", minutes,
	    lim && lim->max_uses ? " max_uses=" : "", lim ? lim->max_uses : 0,
	    lim && lim->sources[0] ? " source=" : "", lim ? lim->sources : "");
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	if ((r = bulk_insert(s, rec, err)) != 0 ||
	    (r = site_bulk_limits_insert(s, rec->guid, lim, err)) != 0 ||
	    (r = site_keys_issued(s, stk_signer_kid(signer), rec->exp, err)) != 0 ||
	    (r = stk_audit_append(s, rec->created_by, "bulk.new", rec->guid, "ok",
	    detail, err)) != 0) {
		stk_site_tx_rollback(s);
		goto out;
	}
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	STK_LOG(STK_LOG_INFO, "bulk", "bulk registration token %s created, valid "
	    "%ld minutes", rec->guid, minutes);
	r = STK_OK;
out:
	if (r != 0) {
		stk_token_free(*token);
		*token = NULL;
	}
	return r;
}

static int
bulk_row(struct site_stmt *st, void *arg)
{
	struct stk_bulk_record *rec = arg;

	memset(rec, 0, sizeof(*rec));
	snprintf(rec->guid, sizeof(rec->guid), "%s", db_column_text(st, 0));
	rec->nbf = db_column_int64(st, 1);
	rec->exp = db_column_int64(st, 2);
	rec->created_at = db_column_int64(st, 3);
	snprintf(rec->created_by, sizeof(rec->created_by), "%s",
	    db_column_text(st, 4));
	rec->blocked = db_column_int(st, 5);
	rec->blocked_at = db_column_int64(st, 6);
	return STK_OK;
}

int
stk_bulk_get(struct stk_site *s, const char *guid, struct stk_bulk_record *rec,
    struct stk_error *err)
{
	char g[STK_GUID_LEN + 1];
	const char *key = g;
	int r;

	memset(rec, 0, sizeof(*rec));
	if ((r = site_guid_arg(guid, g, err)) != 0)
		return r;
	r = site_row_get(s, "SELECT guid, nbf, exp, created_at, created_by, blocked,"
	    " blocked_at FROM bulk_tokens WHERE guid = ?", &key, 1,
	    "reading bulk tokens", bulk_row, rec, err);
	if (r == STK_E_NOTFOUND)
		r = stk_error_set(err, r, STK_LAYER_NONE, 0,
		    "no bulk registration token with GUID %s on this site", g);
	return r;
}

int
stk_bulk_set_blocked(struct stk_site *s, const char *guid, int block,
    const char *actor, struct stk_error *err)
{
	struct stk_bulk_record rec;
	struct site_stmt *st = NULL;
	const char *event = block ? "bulk.block" : "bulk.unblock";
	int in_tx = 0, r;

	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	in_tx = 1;
	if ((r = stk_bulk_get(s, guid, &rec, err)) != 0)
		goto out;
	if (rec.blocked == (block ? 1 : 0)) {
		/* Harmless repeat: recorded, nothing changes. */
		if ((r = stk_audit_append(s, actor, event, rec.guid, "unchanged",
		    block ? "already blocked" : "already active", err)) != 0)
			goto out;
		in_tx = 0;
		r = stk_site_tx_commit(s, err);
		goto out;
	}
	if (db_prepare(s->store, "UPDATE bulk_tokens SET blocked = ?, blocked_at = ?"
	    " WHERE guid = ?", &st) != 0) {
		r = site_db_error(s, err, "updating the bulk token");
		goto out;
	}
	if (db_bind_int64(st, 1, block ? 1 : 0) != 0 ||
	    (block ?
	    db_bind_int64(st, 2, stk_now()) :
	    db_bind_null(st, 2)) != 0 ||
	    db_bind_text(st, 3, rec.guid) != 0 ||
	    db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "updating the bulk token");
		goto out;
	}
	db_finalize(st);
	st = NULL;
	if ((r = stk_audit_append(s, actor, event, rec.guid, "ok", "", err)) != 0)
		goto out;
	in_tx = 0;
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	STK_LOG(STK_LOG_INFO, "bulk", "bulk registration token %s %s", rec.guid,
	    block ? "blocked" : "unblocked");
	r = STK_OK;
out:
	db_finalize(st);
	if (in_tx)
		stk_site_tx_rollback(s);
	return r;
}

int
stk_bulk_check(struct stk_site *s, const char *token, size_t len, int64_t now,
    struct stk_claims *claims, struct stk_error *err)
{
	struct stk_bulk_record rec;
	int r;

	memset(claims, 0, sizeof(*claims));
	if ((r = stk_site_verify(s, token, len, STK_TOKEN_BULK, now, claims, err)) != 0)
		return r;
	if ((r = stk_bulk_get(s, claims->id, &rec, err)) != 0) {
		if (r == STK_E_NOTFOUND)
			r = stk_error_set(err, STK_E_TOKEN_UNKNOWN, STK_LAYER_TOKEN, 0,
			    "bulk token %s is not on this site's record", claims->id);
		goto out;
	}
	if (rec.blocked) {
		r = stk_error_set(err, STK_E_TOKEN_BLOCKED, STK_LAYER_TOKEN, 0,
		    "bulk token %s is blocked", rec.guid);
		goto out;
	}
	r = STK_OK;
out:
	if (r != 0) {
		/* A token the site signed but refuses (blocked, not on record)
		 * keeps its GUID in claims->id: the refusal's audit subject, so
		 * it joins that token's trail. Nothing allocated is kept. */
		memcpy(rec.guid, claims->id, sizeof(rec.guid));
		stk_claims_clear(claims);
		memcpy(claims->id, rec.guid, sizeof(claims->id));
	}
	return r;
}
