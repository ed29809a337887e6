/* Hash-chained audit log with checkpoints signed by the site key.
 *
 * Record hash = SHA-256 over the length-prefixed fields and the previous
 * record's hash, so no field can bleed into another. A checkpoint signs
 * (site, seq, head hash, time) with the site key through the backend, so a
 * rewrite of the whole chain is caught without trusting the database. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "sitetoken/cert.h"
#include "sitetoken/log.h"
#include "site_int.h"

static const char audit_genesis[65] =
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

static void
audit_hash(const struct stk_audit_record *r, char out[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char d[32];
	char num[64];
	const char *fields[8];
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
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	for (i = 0; i < 8; i++) {
		char len[24];
		int n = snprintf(len, sizeof(len), "%zu:", strlen(fields[i]));
		EVP_DigestUpdate(md, len, (size_t)n);
		EVP_DigestUpdate(md, fields[i], strlen(fields[i]));
	}
	EVP_DigestFinal_ex(md, d, NULL);
	EVP_MD_CTX_free(md);
	hex(d, sizeof(d), out);
}

static int
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

static int64_t
audit_last_checkpoint(struct stk_site *s)
{
	struct site_stmt *st = NULL;
	int64_t seq = 0;

	if (db_prepare(s->store, "SELECT max(seq) FROM audit_checkpoints", &st) == 0 &&
	    db_step(st) == SITE_DB_ROW)
		seq = db_column_int64(st, 0);
	db_finalize(st);
	return seq;
}

int
stk_audit_append(struct stk_site *s, const char *actor, const char *event,
    const char *subject, const char *outcome, const char *detail,
    struct stk_error *err)
{
	struct stk_audit_record rec;
	struct site_stmt *st = NULL;
	int own = !s->in_tx, r;

	memset(&rec, 0, sizeof(rec));
	snprintf(rec.actor, sizeof(rec.actor), "%s", actor ? actor : "");
	snprintf(rec.event, sizeof(rec.event), "%s", event ? event : "");
	snprintf(rec.subject, sizeof(rec.subject), "%s", subject ? subject : "");
	snprintf(rec.outcome, sizeof(rec.outcome), "%s", outcome ? outcome : "");
	snprintf(rec.detail, sizeof(rec.detail), "%s", detail ? detail : "");
	if (own && (r = stk_site_tx_begin(s, err)) != 0)
		return r;
	if ((r = audit_head(s, &rec.seq, rec.prev_hash, err)) != 0)
		goto fail;
	rec.seq++;
	rec.at = stk_now();
	audit_hash(&rec, rec.hash);
	if (db_prepare(s->store, "INSERT INTO audit (seq, at, actor, event,"
	    " subject, outcome, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?)",
	    &st) != 0) {
		r = site_db_error(s, err, "appending to the audit log");
		goto fail;
	}
	db_bind_int64(st, 1, rec.seq);
	db_bind_int64(st, 2, rec.at);
	db_bind_text(st, 3, rec.actor);
	db_bind_text(st, 4, rec.event);
	db_bind_text(st, 5, rec.subject);
	db_bind_text(st, 6, rec.outcome);
	db_bind_text(st, 7, rec.detail);
	db_bind_text(st, 8, rec.prev_hash);
	db_bind_text(st, 9, rec.hash);
	if (db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "appending to the audit log");
		goto fail;
	}
	db_finalize(st);
	s->audit_dirty = 1;
	if (own)
		return stk_site_tx_commit(s, err);
	return STK_OK;
fail:
	db_finalize(st);
	if (own)
		stk_site_tx_rollback(s);
	return r;
}

static void
checkpoint_message(const char *site, int64_t seq, const char *hash, int64_t at,
    char *buf, size_t len)
{
	snprintf(buf, len, "sitetoken audit checkpoint v1\n%s\n%lld\n%s\n%lld\n",
	    site, (long long)seq, hash, (long long)at);
}

int
stk_audit_checkpoint(struct stk_site *s, struct stk_error *err)
{
	struct stk_key *key;
	const struct stk_signer *signer;
	struct site_stmt *st = NULL;
	unsigned char sig[STK_SIG_MAX];
	char msg[256], hash[65], sigb64[(STK_SIG_MAX + 2) / 3 * 4 + 1];
	size_t siglen = sizeof(sig);
	int64_t seq, at = stk_now();
	int r;

	if ((r = stk_site_signer(s, &signer, err)) != 0 ||
	    (r = stk_site_key(s, &key, err)) != 0)
		return r;
	if ((r = stk_site_tx_begin(s, err)) != 0)
		return r;
	if ((r = audit_head(s, &seq, hash, err)) != 0)
		goto fail;
	if (seq == 0 || audit_last_checkpoint(s) >= seq) {
		stk_site_tx_rollback(s);
		return STK_OK; /* nothing new to sign */
	}
	checkpoint_message(s->guid, seq, hash, at, msg, sizeof(msg));
	if ((r = stk_key_sign(key, (const unsigned char *)msg, strlen(msg), sig,
	    &siglen, err)) != 0)
		goto fail;
	stk_b64url_encode_buf(sig, siglen, sigb64);
	if (db_prepare(s->store, "INSERT INTO audit_checkpoints (seq, head_hash,"
	    " at, kid, sig) VALUES (?,?,?,?,?)", &st) != 0) {
		r = site_db_error(s, err, "writing an audit checkpoint");
		goto fail;
	}
	db_bind_int64(st, 1, seq);
	db_bind_text(st, 2, hash);
	db_bind_int64(st, 3, at);
	db_bind_text(st, 4, stk_signer_kid(signer));
	db_bind_text(st, 5, sigb64);
	if (db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "writing an audit checkpoint");
		goto fail;
	}
	db_finalize(st);
	return stk_site_tx_commit(s, err);
fail:
	db_finalize(st);
	stk_site_tx_rollback(s);
	return r;
}

void
site_audit_after_commit(struct stk_site *s)
{
	struct stk_error e;
	int64_t seq;
	char hash[65];

	if (audit_head(s, &seq, hash, NULL) != 0 ||
	    seq - audit_last_checkpoint(s) < STK_AUDIT_CHECKPOINT_EVERY)
		return;
	s->audit_dirty = 0;
	stk_error_clear(&e);
	if (stk_audit_checkpoint(s, &e) != 0)
		STK_LOG(STK_LOG_WARN, "audit", "audit checkpoint not signed: %s", e.msg);
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
	    " detail, prev_hash, hash FROM audit ORDER BY seq", &st) != 0)
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

struct chain_walk {
	struct stk_audit_report *rep;
	int64_t expect;
	char prev[65];
	/* recomputed hash of every record, indexed by seq (for checkpoints) */
	char (*hashes)[65];
	size_t cap;
};

static int
chain_step(void *ctx, const struct stk_audit_record *r)
{
	struct chain_walk *w = ctx;
	char h[65];

	if (r->seq != w->expect) {
		w->rep->bad_seq = w->expect;
		snprintf(w->rep->problem, sizeof(w->rep->problem),
		    "record %lld is missing (removed): the log jumps from %lld to %lld",
		    (long long)w->expect, (long long)(w->expect - 1), (long long)r->seq);
		return 1;
	}
	if (strcmp(r->prev_hash, w->prev) != 0) {
		w->rep->bad_seq = r->seq;
		snprintf(w->rep->problem, sizeof(w->rep->problem),
		    "record %lld does not follow record %lld (removed, reordered or "
		    "inserted)", (long long)r->seq, (long long)(r->seq - 1));
		return 1;
	}
	audit_hash(r, h);
	if (strcmp(h, r->hash) != 0) {
		w->rep->bad_seq = r->seq;
		snprintf(w->rep->problem, sizeof(w->rep->problem),
		    "record %lld was edited (its hash does not match its contents)",
		    (long long)r->seq);
		return 1;
	}
	if ((size_t)r->seq >= w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 256;
		void *p;
		while (ncap <= (size_t)r->seq)
			ncap *= 2;
		if ((p = realloc(w->hashes, ncap * sizeof(*w->hashes))) == NULL)
			return STK_E_NOMEM;
		w->hashes = p;
		w->cap = ncap;
	}
	memcpy(w->hashes[r->seq], h, 65);
	memcpy(w->prev, h, 65);
	w->expect++;
	w->rep->records++;
	stk_progress("audit verify: records checked", w->rep->records, 0);
	return 0;
}

static EVP_PKEY *
site_cert_pubkey(struct stk_site *s)
{
	const unsigned char *p = s->cert;
	X509 *x = d2i_X509(NULL, &p, (long)s->cert_len);
	EVP_PKEY *k = NULL;

	if (x != NULL) {
		k = X509_get0_pubkey(x);
		if (k != NULL)
			EVP_PKEY_up_ref(k);
		X509_free(x);
	}
	return k;
}

int
stk_audit_verify(struct stk_site *s, struct stk_audit_report *rep,
    struct stk_error *err)
{
	struct chain_walk w;
	struct site_stmt *st = NULL;
	EVP_PKEY *pub = NULL;
	char kid[44], msg[256];
	int64_t prev_cp = 0;
	int r, rc;

	memset(rep, 0, sizeof(*rep));
	memset(&w, 0, sizeof(w));
	w.rep = rep;
	w.expect = 1;
	memcpy(w.prev, audit_genesis, 65);
	/* One read transaction: a concurrent writer cannot make us see a torn chain. */
	if (s->store->vt->begin_read(s->store) != 0)
		return site_db_error(s, err, "reading the audit log");
	r = stk_audit_foreach(s, chain_step, &w, err);
	if (r < 0)
		goto out;
	if (r == 1)
		goto out;
	if ((pub = site_cert_pubkey(s)) == NULL || stk_pkey_kid(pub, kid) != 0) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0,
		    "cannot read the site public key");
		goto out;
	}
	if (db_prepare(s->store, "SELECT seq, head_hash, at, kid, sig FROM"
	    " audit_checkpoints ORDER BY seq", &st) != 0) {
		r = site_db_error(s, err, "reading audit checkpoints");
		goto out;
	}
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		int64_t seq = db_column_int64(st, 0);
		const char *head = db_column_text(st, 1);
		const char *ckid = db_column_text(st, 3);
		const char *sigb = db_column_text(st, 4);
		unsigned char *sig = NULL;
		size_t siglen = 0;
		EVP_PKEY *k = NULL;
		int ok;

		if (seq < 1) {
			rep->bad_seq = 1;
			snprintf(rep->problem, sizeof(rep->problem),
			    "a checkpoint names record %lld, which cannot exist",
			    (long long)seq);
			r = 1;
			goto out;
		}
		checkpoint_message(s->guid, seq, head ? head : "",
		    db_column_int64(st, 2), msg, sizeof(msg));
		/* Signed by the site key or by any key a node ever registered
		 * (retired keys too: their checkpoints stay history). */
		if (ckid != NULL && strcmp(ckid, kid) != 0)
			k = site_keys_pubkey(s, ckid);
		ok = head != NULL && ckid != NULL && sigb != NULL &&
		    (strcmp(ckid, kid) == 0 || k != NULL) &&
		    stk_b64url_decode(sigb, strlen(sigb), &sig, &siglen) == 0 &&
		    stk_sig_verify(k ? k : pub, (const unsigned char *)msg, strlen(msg),
		    sig, siglen) == 0;
		EVP_PKEY_free(k);
		free(sig);
		if (!ok) {
			rep->bad_seq = seq;
			snprintf(rep->problem, sizeof(rep->problem),
			    "checkpoint at record %lld is not signed by the site key",
			    (long long)seq);
			r = 1;
			goto out;
		}
		if (seq > rep->records || w.hashes == NULL) {
			rep->bad_seq = rep->records + 1;
			snprintf(rep->problem, sizeof(rep->problem),
			    "log truncated: a signed checkpoint covers record %lld but "
			    "the log ends at record %lld", (long long)seq,
			    (long long)rep->records);
			r = 1;
			goto out;
		}
		if (strcmp(w.hashes[seq], head) != 0) {
			rep->bad_seq = prev_cp + 1;
			snprintf(rep->problem, sizeof(rep->problem),
			    "records %lld..%lld were rewritten: the chain no longer "
			    "matches the checkpoint signed at record %lld",
			    (long long)prev_cp + 1, (long long)seq, (long long)seq);
			r = 1;
			goto out;
		}
		prev_cp = seq;
		rep->checkpoints++;
		rep->last_checkpoint_seq = seq;
	}
	if (rc != SITE_DB_DONE) {
		r = site_db_error(s, err, "reading audit checkpoints");
		goto out;
	}
	r = 0;
out:
	db_finalize(st);
	s->store->vt->rollback(s->store); /* read-only: nothing to keep */
	EVP_PKEY_free(pub);
	free(w.hashes);
	return r;
}
