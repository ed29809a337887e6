/* The audit log's chain: append a record (hash-chained to the one before),
 * aggregate floods of refusals, read the records back. Checkpoints, the
 * anchor and verification are in audit.c, above the keys layer; this file
 * is below it (site/README.md), so every layer can record what it does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "sitetoken/log.h"
#include "audit_int.h"

const char audit_genesis[65] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static void
hex(const unsigned char *b, size_t n, char *out)
{
	static const char h[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = h[b[i] >> 4];
		out[2 * i + 1] = h[b[i] & 15];
	}
	out[2 * n] = '\0';
}

void
audit_hash(const struct stk_audit_record *r, char out[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char d[32];
	char num[64];
	const char *fields[9];
	size_t nfields = 8;
	size_t i;

	snprintf(num, sizeof(num), "%lld:%lld", (long long)r->seq, (long long)r->at);
	fields[0] = num;
	fields[1] = r->actor;
	fields[2] = r->event;
	fields[3] = r->subject;
	fields[4] = r->outcome;
	fields[5] = r->detail;
	fields[6] = r->prev_hash;
	fields[7] = "sitetoken-audit-v1";
	/* A ref is hashed after the tag, only when set: records without one
	 * (every record before the column existed) hash as they always did. */
	if (r->ref[0] != '\0')
		fields[nfields++] = r->ref;
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (i = 0; i < nfields; i++) {
		char len[24];
		int n = snprintf(len, sizeof(len), "%zu:", strlen(fields[i]));
		EVP_DigestUpdate(md, len, (size_t)n);
		EVP_DigestUpdate(md, fields[i], strlen(fields[i]));
	}
	EVP_DigestFinal_ex(md, d, NULL);
	EVP_MD_CTX_free(md);
	hex(d, sizeof(d), out);
}

int
audit_head(struct stk_site *s, int64_t *seq, char hash[65], struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int rc;

	*seq = 0;
	memcpy(hash, audit_genesis, 65);
	if (db_prepare(s->store, "SELECT seq, hash FROM audit ORDER BY seq DESC"
	    " LIMIT 1", &st) != 0)
		return site_db_error(s, err, "reading the audit log");
	if ((rc = db_step(st)) == SITE_DB_ROW) {
		*seq = db_column_int64(st, 0);
		snprintf(hash, 65, "%s", db_column_text(st, 1));
	}
	db_finalize(st);
	if (rc != SITE_DB_ROW && rc != SITE_DB_DONE)
		return site_db_error(s, err, "reading the audit log");
	return STK_OK;
}

/* The newest checkpoint's record and time (0, 0 when none); -1 when the
 * store cannot be read. */
int64_t
audit_last_checkpoint_at(struct stk_site *s, int64_t *at)
{
	struct site_stmt *st = NULL;
	int64_t seq = -1;
	int rc;

	if (at != NULL)
		*at = 0;
	if (db_prepare(s->store, "SELECT seq, at FROM audit_checkpoints ORDER BY seq"
	    " DESC LIMIT 1", &st) == 0) {
		if ((rc = db_step(st)) == SITE_DB_ROW) {
			seq = db_column_int64(st, 0);
			if (at != NULL)
				*at = db_column_int64(st, 1);
		} else if (rc == SITE_DB_DONE)
			seq = 0;
	}
	db_finalize(st);
	return seq;
}

int64_t
audit_last_checkpoint(struct stk_site *s)
{
	return audit_last_checkpoint_at(s, NULL);
}

/* ---- Refusal aggregation (STK_AUDIT_REFUSAL_*) ----
 * A flood of refusals from one source costs a counter increment, not a
 * database write and a share of a site-key signature. The counts are kept
 * per site handle; nothing is dropped: each interval's surplus becomes one
 * record with its count. */
#define SITE_REFUSALS_MAX 256

struct site_refusal {
	char actor[64], event[48], reason[48];
	int64_t start, last;
	long written, pending;
};

static int audit_append(struct stk_site *s, const char *actor, const char *event,
    const char *subject, const char *ref, const char *outcome, const char *detail,
    struct stk_error *err);

static int
refusal_flush_one(struct stk_site *s, struct site_refusal *f)
{
	char detail[160];
	struct stk_error e;
	int r;

	if (f->pending == 0)
		return STK_OK;
	snprintf(detail, sizeof(detail), "%.40s: %ld more refusals from this source "
	    "between %lld and %lld (aggregated)", f->reason, f->pending,
	    (long long)f->start, (long long)f->last);
	stk_error_clear(&e);
	if ((r = audit_append(s, f->actor, f->event, "", NULL, "refused", detail,
	    &e)) != 0) {
		STK_LOG(STK_LOG_ERROR, "audit", "cannot record %ld aggregated refusals: %s",
		    f->pending, e.msg);
		return r;
	}
	f->pending = 0;
	return STK_OK;
}

void
site_audit_flush(struct stk_site *s, int all)
{
	int64_t now = stk_now();
	size_t i, o = 0;

	/* flushing and in_tx belong to the thread that owns the store. */
	if (s->flushing || s->in_tx)
		return;
	pthread_mutex_lock(&s->refusal_mu);
	s->flushing = 1;
	for (i = 0; i < s->nrefusals; i++) {
		struct site_refusal *f = &s->refusals[i];
		int over = all || now - f->start >= STK_AUDIT_REFUSAL_INTERVAL ||
		    now < f->start;

		if (over && refusal_flush_one(s, f) == 0)
			continue; /* interval done: the entry goes */
		s->refusals[o++] = *f;
	}
	s->nrefusals = o;
	s->flushing = 0;
	pthread_mutex_unlock(&s->refusal_mu);
}

/* The entry of (actor, event, reason), or NULL. Caller holds refusal_mu. */
static struct site_refusal *
refusal_find(struct stk_site *s, const char *actor, const char *event,
    const char *reason)
{
	size_t i;

	for (i = 0; i < s->nrefusals; i++)
		if (strcmp(s->refusals[i].actor, actor) == 0 &&
		    strcmp(s->refusals[i].event, event) == 0 &&
		    strcmp(s->refusals[i].reason, reason) == 0)
			return &s->refusals[i];
	return NULL;
}

int
stk_audit_refusal_counted(struct stk_site *s, const char *actor, const char *event,
    const char *detail)
{
	char reason[48];
	struct site_refusal *f;
	int64_t now = stk_now();
	int r = 0;

	snprintf(reason, sizeof(reason), "%.*s", (int)strcspn(detail ? detail : "",
	    ":"), detail ? detail : "");
	pthread_mutex_lock(&s->refusal_mu);
	f = refusal_find(s, actor ? actor : "", event ? event : "", reason);
	if (f != NULL && now - f->start < STK_AUDIT_REFUSAL_INTERVAL && now >= f->start &&
	    f->written >= STK_AUDIT_REFUSAL_BURST) {
		f->last = now;
		f->pending++;
		r = 1;
	}
	pthread_mutex_unlock(&s->refusal_mu);
	return r;
}

/* 1: counted (no record now); 0: write the record. Caller holds
 * refusal_mu. */
static int
refusal_count_locked(struct stk_site *s, const char *actor, const char *event,
    const char *detail)
{
	char reason[48];
	struct site_refusal *f;
	int64_t now = stk_now();

	snprintf(reason, sizeof(reason), "%.*s", (int)strcspn(detail ? detail : "",
	    ":"), detail ? detail : "");
	f = refusal_find(s, actor, event, reason);
	if (f != NULL && (now - f->start >= STK_AUDIT_REFUSAL_INTERVAL || now < f->start)) {
		if (refusal_flush_one(s, f) != 0)
			return 0;
		f->start = now;
		f->written = 0;
	}
	if (f == NULL) {
		if (s->nrefusals == SITE_REFUSALS_MAX)
			return 0; /* table full (many sources): record one by one */
		if (s->refusals == NULL && (s->refusals = calloc(SITE_REFUSALS_MAX,
		    sizeof(*s->refusals))) == NULL)
			return 0;
		f = &s->refusals[s->nrefusals++];
		memset(f, 0, sizeof(*f));
		snprintf(f->actor, sizeof(f->actor), "%s", actor);
		snprintf(f->event, sizeof(f->event), "%s", event);
		snprintf(f->reason, sizeof(f->reason), "%s", reason);
		f->start = now;
	}
	f->last = now;
	if (f->written < STK_AUDIT_REFUSAL_BURST) {
		f->written++;
		return 0;
	}
	f->pending++;
	return 1;
}

static int
refusal_count(struct stk_site *s, const char *actor, const char *event,
    const char *detail)
{
	int r;

	pthread_mutex_lock(&s->refusal_mu);
	r = refusal_count_locked(s, actor, event, detail);
	pthread_mutex_unlock(&s->refusal_mu);
	return r;
}

int
stk_audit_append(struct stk_site *s, const char *actor, const char *event,
    const char *subject, const char *outcome, const char *detail,
    struct stk_error *err)
{
	return stk_audit_append_ref(s, actor, event, subject, NULL, outcome, detail,
	    err);
}

int
stk_audit_append_ref(struct stk_site *s, const char *actor, const char *event,
    const char *subject, const char *ref, const char *outcome, const char *detail,
    struct stk_error *err)
{
	int refusal = outcome != NULL && strcmp(outcome, "refused") == 0;

	/* Counts of finished intervals first, so records stay in time order;
	 * never inside a caller's transaction (a rollback would lose them). */
	site_audit_flush(s, 0);
	if (refusal && !s->in_tx && refusal_count(s, actor ? actor : "",
	    event ? event : "", detail))
		return STK_OK;
	return audit_append(s, actor, event, subject, ref, outcome, detail, err);
}

static int
audit_append(struct stk_site *s, const char *actor, const char *event,
    const char *subject, const char *ref, const char *outcome, const char *detail,
    struct stk_error *err)
{
	struct stk_audit_record rec;
	struct site_stmt *st = NULL;
	int own = !s->in_tx, in_tx = 0, r;

	int64_t last;

	/* Fields may carry request content: stored (and hashed) with control
	 * bytes escaped, so no record can hold a forged line or a terminal
	 * escape. */
	memset(&rec, 0, sizeof(rec));
	stk_escape(rec.actor, sizeof(rec.actor), actor, STK_ESCAPE_BACKSLASH);
	stk_escape(rec.event, sizeof(rec.event), event, STK_ESCAPE_BACKSLASH);
	stk_escape(rec.subject, sizeof(rec.subject), subject, STK_ESCAPE_BACKSLASH);
	stk_escape(rec.outcome, sizeof(rec.outcome), outcome, STK_ESCAPE_BACKSLASH);
	stk_escape(rec.detail, sizeof(rec.detail), detail, STK_ESCAPE_BACKSLASH);
	stk_escape(rec.ref, sizeof(rec.ref), ref, STK_ESCAPE_BACKSLASH);
	if (own && (r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	in_tx = own;
	if ((r = audit_head(s, &rec.seq, rec.prev_hash, err)) != 0)
		goto out;
	rec.seq++;
	/* Fail closed: past the longest gap `audit verify` accepts, nothing
	 * more is recorded (so nothing more is done) until a checkpoint is
	 * signed. */
	if ((last = audit_last_checkpoint(s)) < 0) {
		r = site_db_error(s, err, "reading audit checkpoints");
		goto out;
	}
	if (rec.seq - last > STK_AUDIT_CHECKPOINT_MAX_GAP) {
		r = stk_error_set(err, STK_E_DB, STK_LAYER_NONE, 0,
		    "the audit log has %lld records without a signed checkpoint: "
		    "refusing to record more until the site key signs one "
		    "('audit checkpoint')", (long long)(rec.seq - 1 - last));
		goto out;
	}
	rec.at = stk_now();
	audit_hash(&rec, rec.hash);
	if (db_prepare(s->store, "INSERT INTO audit (seq, at, actor, event,"
	    " subject, outcome, detail, prev_hash, hash, ref) VALUES"
	    " (?,?,?,?,?,?,?,?,?,?)",
	    &st) != 0) {
		r = site_db_error(s, err, "appending to the audit log");
		goto out;
	}
	if (db_bind_int64(st, 1, rec.seq) != 0 ||
	    db_bind_int64(st, 2, rec.at) != 0 ||
	    db_bind_text(st, 3, rec.actor) != 0 ||
	    db_bind_text(st, 4, rec.event) != 0 ||
	    db_bind_text(st, 5, rec.subject) != 0 ||
	    db_bind_text(st, 6, rec.outcome) != 0 ||
	    db_bind_text(st, 7, rec.detail) != 0 ||
	    db_bind_text(st, 8, rec.prev_hash) != 0 ||
	    db_bind_text(st, 9, rec.hash) != 0 ||
	    db_bind_text(st, 10, rec.ref) != 0 ||
	    db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "appending to the audit log");
		goto out;
	}
	db_finalize(st);
	st = NULL;
	s->audit_dirty = 1;
	if (strcmp(rec.outcome, "refused") != 0)
		s->nonrefusal_since_cp = 1;
	r = STK_OK;
	if (in_tx) {
		in_tx = 0;
		r = stk_site_tx_commit(s, err);
	}
out:
	db_finalize(st);
	if (in_tx)
		stk_site_tx_rollback(s);
	return r;
}

static void
audit_row(struct site_stmt *st, struct stk_audit_record *r)
{
	memset(r, 0, sizeof(*r));
	r->seq = db_column_int64(st, 0);
	r->at = db_column_int64(st, 1);
#define COL(i, f) snprintf(r->f, sizeof(r->f), "%s", \
	db_column_text(st, i) ? db_column_text(st, i) : "")
	COL(2, actor);
	COL(3, event);
	COL(4, subject);
	COL(5, outcome);
	COL(6, detail);
	COL(7, prev_hash);
	COL(8, hash);
	COL(9, ref);
#undef COL
}

int
stk_audit_foreach(struct stk_site *s, stk_audit_cb cb, void *ctx,
    struct stk_error *err)
{
	struct stk_audit_record rec;
	struct site_stmt *st = NULL;
	int rc, r = STK_OK;

	if (db_prepare(s->store, "SELECT seq, at, actor, event, subject, outcome,"
	    " detail, prev_hash, hash, ref FROM audit ORDER BY seq", &st) != 0)
		return site_db_error(s, err, "reading the audit log");
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		audit_row(st, &rec);
		if ((r = cb(ctx, &rec)) != 0)
			break;
	}
	if (r == 0 && rc != SITE_DB_DONE)
		r = site_db_error(s, err, "reading the audit log");
	db_finalize(st);
	return r;
}
