/* Hash-chained audit log with checkpoints signed by the site key.
 *
 * Record hash = SHA-256 over the length-prefixed fields and the previous
 * record's hash, so no field can bleed into another. A checkpoint signs
 * (site, seq, head hash, time) with the site key through the backend, so a
 * rewrite of the whole chain is caught without trusting the database. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "sitetoken/cert.h"
#include "sitetoken/file.h"
#include "sitetoken/log.h"
#include "audit_int.h"

/* counter: the signing node's TPM NV counter after advancing it, 0 when
 * its key has none (then the message is the v1 message of old). */
static void
checkpoint_message(const char *site, int64_t seq, const char *hash, int64_t at,
    uint64_t counter, char *buf, size_t len)
{
	int n = snprintf(buf, len, "sitetoken audit checkpoint v1\n%s\n%lld\n%s\n%lld\n",
	    site, (long long)seq, hash, (long long)at);

	if (counter > 0 && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, "counter=%llu\n",
		    (unsigned long long)counter);
}

/* The name of this node's counter in its key's device. */
static void
audit_counter_name(struct stk_site *s, char *buf, size_t len)
{
	snprintf(buf, len, "sitetoken audit %s/%s", s->guid, stk_site_node(s));
}

/* ---- The anchor: audit.anchor in the site directory (0600, fsync'd) ----
 * The newest checkpoint this node signed: "seq=N" and "hash=H" lines. A
 * database writer cannot change it, so a log cut below it is found. */
#define AUDIT_ANCHOR "audit.anchor"

struct audit_anchor {
	int64_t seq;
	char hash[65], kid[64], site[STK_GUID_LEN + 1];
};

/* 0 and anchor->seq = 0 when there is none; 1 when it is unreadable. */
static int
audit_anchor_read(struct stk_site *s, struct audit_anchor *a)
{
	char path[PATH_MAX], *text, *line, *save = NULL;
	int bad = 0;

	memset(a, 0, sizeof(*a));
	snprintf(path, sizeof(path), "%s/%s", s->dir, AUDIT_ANCHOR);
	if ((text = stk_file_read(path, 4096, NULL)) == NULL)
		return errno == ENOENT ? 0 : 1;
	if (strncmp(text, "sitetoken audit anchor v1\n", 26) != 0)
		bad = 1;
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "seq=", 4) == 0)
			a->seq = strtoll(line + 4, NULL, 10);
		else if (strncmp(line, "hash=", 5) == 0)
			snprintf(a->hash, sizeof(a->hash), "%s", line + 5);
		else if (strncmp(line, "kid=", 4) == 0)
			snprintf(a->kid, sizeof(a->kid), "%s", line + 4);
		else if (strncmp(line, "site=", 5) == 0)
			snprintf(a->site, sizeof(a->site), "%s", line + 5);
	}
	free(text);
	if (a->seq <= 0 || strlen(a->hash) != 64)
		bad = 1;
	return bad;
}

static int
audit_anchor_write(struct stk_site *s, int64_t seq, const char *hash,
    const char *kid, struct stk_error *err)
{
	struct audit_anchor a;
	char text[512];

	/* Never move it back: another process of this node may have signed a
	 * later checkpoint already. */
	if (audit_anchor_read(s, &a) == 0 && a.seq >= seq)
		return STK_OK;
	snprintf(text, sizeof(text), "sitetoken audit anchor v1\nsite=%s\nseq=%lld\n"
	    "hash=%s\nkid=%s\n", s->guid, (long long)seq, hash, kid);
	return site_write_file(s->dir, AUDIT_ANCHOR, text, strlen(text), 0600, err);
}

/* ---- A third copy: each checkpoint this process signs, to syslog ----
 * With SITETOKEN_AUDIT_SYSLOG set ("1"/"on": /dev/log, where journald or
 * rsyslog listen; "/path": that datagram socket), one LOG_AUTHPRIV line per
 * checkpoint (site, node, seq, head hash, signing kid, time, TPM counter).
 * Forwarded off the host, it outlives a site directory and a database put
 * back together (README, "The syslog copy"). Set in the environment of the
 * server and the CLI, not in the database: a database writer could turn a
 * setting there off. Best effort: the checkpoint is committed already; a
 * failed send is logged. */
static void
audit_syslog_copy(struct stk_site *s, int64_t seq, const char *hash,
    const char *kid, int64_t at, uint64_t counter)
{
	const char *e = getenv("SITETOKEN_AUDIT_SYSLOG");
	struct sockaddr_un sun;
	char line[512], stamp[32], node[96];
	time_t now = time(NULL);
	struct tm tm;
	int fd, n;

	if (e == NULL || *e == '\0' || strcmp(e, "0") == 0 || strcmp(e, "off") == 0)
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", e[0] == '/' ? e :
	    "/dev/log") >= (int)sizeof(sun.sun_path)) {
		STK_LOG(STK_LOG_WARN, "audit", "SITETOKEN_AUDIT_SYSLOG: socket path too long");
		return;
	}
	/* RFC 3164, as syslog(3) writes it: "<PRI>Mmm dd hh:mm:ss TAG[PID]: ". */
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
	stk_escape(node, sizeof(node), stk_site_node(s), STK_ESCAPE_BACKSLASH);
	n = snprintf(line, sizeof(line), "<%d>%s sitetoken[%ld]: sitetoken audit checkpoint "
	    "site=%s node=%s seq=%lld hash=%s kid=%s at=%lld counter=%llu",
	    LOG_AUTHPRIV | LOG_NOTICE, stamp, (long)getpid(), s->guid, node,
	    (long long)seq, hash, kid, (long long)at, (unsigned long long)counter);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    sendto(fd, line, (size_t)n, MSG_NOSIGNAL, (const struct sockaddr *)&sun,
	    sizeof(sun)) != n)
		STK_LOG(STK_LOG_WARN, "audit", "checkpoint %lld not copied to syslog "
		    "(%s): %s", (long long)seq, sun.sun_path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

int
stk_audit_checkpoint(struct stk_site *s, struct stk_error *err)
{
	struct stk_key *key;
	const struct stk_signer *signer;
	struct site_stmt *st = NULL;
	unsigned char sig[STK_SIG_MAX];
	char msg[320], hash[65], sigb64[(STK_SIG_MAX + 2) / 3 * 4 + 1], cname[128];
	size_t siglen = sizeof(sig);
	int64_t seq, at = stk_now();
	uint64_t counter = 0, now_ctr = 0;
	int r, has_counter = 1, advanced = 0, in_tx = 0;

	if ((r = stk_site_signer(s, &signer, err)) != 0 ||
	    (r = stk_site_key(s, &key, err)) != 0)
		goto out;
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	in_tx = 1;
	if ((r = audit_head(s, &seq, hash, err)) != 0)
		goto out;
	if (seq == 0 || audit_last_checkpoint(s) >= seq) {
		r = STK_OK; /* nothing new to sign: the rollback ends the read */
		goto out;
	}
	/* A key with a monotonic counter (TPM NV): sign the value it will
	 * have, and advance it last, just before the commit: a log restored to
	 * an older state then shows a smaller value, or a gap in the node's
	 * run of values. Its first advance sets it to the TPM's highest
	 * counter value, so that one is made first. */
	audit_counter_name(s, cname, sizeof(cname));
	if ((r = stk_key_counter(key, cname, 0, &counter, err)) == STK_E_UNSUPPORTED) {
		stk_error_clear(err);
		counter = 0;
		has_counter = 0;
	} else if (r != 0)
		goto out;
	else if (counter == 0) {
		if ((r = stk_key_counter(key, cname, 1, &counter, err)) != 0)
			goto out;
		advanced = 1;
	} else
		counter++;
	checkpoint_message(s->guid, seq, hash, at, counter, msg, sizeof(msg));
	if ((r = stk_key_sign(key, (const unsigned char *)msg, strlen(msg), sig,
	    &siglen, err)) != 0)
		goto out;
	stk_b64url_encode_buf(sig, siglen, sigb64);
	if (db_prepare(s->store, "INSERT INTO audit_checkpoints (seq, head_hash,"
	    " at, kid, sig, counter) VALUES (?,?,?,?,?,?)", &st) != 0) {
		r = site_db_error(s, err, "writing an audit checkpoint");
		goto out;
	}
	if (db_bind_int64(st, 1, seq) != 0 ||
	    db_bind_text(st, 2, hash) != 0 ||
	    db_bind_int64(st, 3, at) != 0 ||
	    db_bind_text(st, 4, stk_signer_kid(signer)) != 0 ||
	    db_bind_text(st, 5, sigb64) != 0 ||
	    (counter > 0 ?
	    db_bind_int64(st, 6, (int64_t)counter) :
	    db_bind_null(st, 6)) != 0 ||
	    db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "writing an audit checkpoint");
		goto out;
	}
	db_finalize(st);
	st = NULL;
	if (has_counter && !advanced) {
		if ((r = stk_key_counter(key, cname, 1, &now_ctr, err)) != 0)
			goto out;
		if (now_ctr != counter) {
			r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
			    "TPM counter moved to %llu, expected %llu: checkpoint not "
			    "written", (unsigned long long)now_ctr,
			    (unsigned long long)counter);
			goto out;
		}
	}
	in_tx = 0;
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	audit_syslog_copy(s, seq, hash, stk_signer_kid(signer), at, counter);
	/* Outside the store: the head this node signed, so a log cut below it
	 * is detected by `audit verify`. */
	r = audit_anchor_write(s, seq, hash, stk_signer_kid(signer), err);
out:
	db_finalize(st);
	if (in_tx)
		stk_site_tx_rollback(s);
	return r;
}

void
site_audit_after_commit(struct stk_site *s)
{
	struct stk_error e;
	int64_t seq, last, last_at;
	char hash[65];

	if (audit_head(s, &seq, hash, NULL) != 0 ||
	    (last = audit_last_checkpoint_at(s, &last_at)) < 0 || seq == last)
		return;
	/* Every STK_AUDIT_CHECKPOINT_EVERY records, and by time. */
	if (seq - last < STK_AUDIT_CHECKPOINT_EVERY &&
	    stk_now() - last_at < STK_AUDIT_CHECKPOINT_SECONDS)
		return;
	/* Refusals alone: one site-key signature per interval at most, while
	 * the unsigned tail stays well below the limit. */
	if (!s->nonrefusal_since_cp && stk_now() - s->refusal_cp_at <
	    STK_AUDIT_REFUSAL_INTERVAL && stk_now() >= s->refusal_cp_at &&
	    seq - last < STK_AUDIT_CHECKPOINT_MAX_GAP - STK_AUDIT_CHECKPOINT_EVERY / 2)
		return;
	if (!s->nonrefusal_since_cp)
		s->refusal_cp_at = stk_now();
	s->nonrefusal_since_cp = 0;
	s->audit_dirty = 0;
	stk_error_clear(&e);
	if (stk_audit_checkpoint(s, &e) != 0)
		STK_LOG(STK_LOG_WARN, "audit", "audit checkpoint not signed: %s", e.msg);
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

static int
audit_bad(struct stk_audit_report *rep, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
audit_bad(struct stk_audit_report *rep, int64_t seq, const char *fmt, ...)
{
	va_list ap;

	rep->bad_seq = seq;
	va_start(ap, fmt);
	vsnprintf(rep->problem, sizeof(rep->problem), fmt, ap);
	va_end(ap);
	return 1;
}

/* A key this node signs or signed with (its checkpoints update its anchor). */
static int
audit_kid_is_mine(struct stk_site *s, const struct site_trust *t, const char *kid)
{
	const struct site_trust_key *k = site_trust_find(t, kid);

	return k != NULL && (strcmp(kid, s->kid) == 0 ||
	    (k->in_table && strcmp(k->node, stk_site_node(s)) == 0));
}

int
stk_audit_verify(struct stk_site *s, struct stk_audit_report *rep,
    struct stk_error *err)
{
	struct chain_walk w;
	struct site_stmt *st = NULL;
	struct site_trust *t = NULL;
	struct audit_anchor anc;
	struct stk_key *key = NULL;
	const struct stk_key_backend *kb;
	char msg[320], cname[128];
	int64_t prev_cp = 0, mine_after = 0, mine_ctr_seq = 0;
	uint64_t mine_ctr = 0, tpm_ctr = 0;
	int r, rc, anchor_bad, anchor_seen = 0, in_read = 0;

	memset(rep, 0, sizeof(*rep));
	memset(&w, 0, sizeof(w));
	w.rep = rep;
	w.expect = 1;
	memcpy(w.prev, audit_genesis, 65);
	/* Keys are trusted from the site directory's roots, never because the
	 * store lists them (keytrust.c). */
	if ((r = site_trust_load(s, &t, err)) != 0)
		return r;
	rep->untrusted_keys = (int64_t)t->untrusted;
	anchor_bad = audit_anchor_read(s, &anc);
	/* One read transaction: a concurrent writer cannot make us see a torn chain. */
	if (s->store->vt->begin_read(s->store) != 0) {
		r = site_db_error(s, err, "reading the audit log");
		goto out;
	}
	in_read = 1;
	r = stk_audit_foreach(s, chain_step, &w, err);
	if (r != 0)
		goto out;
	if (db_prepare(s->store, "SELECT seq, head_hash, at, kid, sig, counter FROM"
	    " audit_checkpoints ORDER BY seq", &st) != 0) {
		r = site_db_error(s, err, "reading audit checkpoints");
		goto out;
	}
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		int64_t seq = db_column_int64(st, 0);
		const char *head = db_column_text(st, 1);
		const char *ckid = db_column_text(st, 3);
		const char *sigb = db_column_text(st, 4);
		const struct site_trust_key *k = site_trust_find(t, ckid);
		uint64_t ctr = db_column_is_null(st, 5) ? 0 :
		    (uint64_t)db_column_int64(st, 5);
		unsigned char *sig = NULL;
		size_t siglen = 0;
		int ok;

		if (seq < 1) {
			r = audit_bad(rep, 1, "a checkpoint names record %lld, which "
			    "cannot exist", (long long)seq);
			goto out;
		}
		checkpoint_message(s->guid, seq, head ? head : "",
		    db_column_int64(st, 2), ctr, msg, sizeof(msg));
		/* Signed by a trusted key: a root in the site directory or a key
		 * endorsed from one (retired keys too: their checkpoints stay
		 * history). A key row a database writer inserted is not one. */
		ok = head != NULL && sigb != NULL && k != NULL &&
		    stk_b64url_decode(sigb, strlen(sigb), &sig, &siglen) == 0 &&
		    stk_sig_verify(k->pk, (const unsigned char *)msg, strlen(msg),
		    sig, siglen) == 0;
		free(sig);
		if (!ok) {
			r = audit_bad(rep, seq, "checkpoint at record %lld is not signed "
			    "by the site key (nor by a key endorsed from it)", (long long)seq);
			goto out;
		}
		if (seq > rep->records || w.hashes == NULL) {
			r = audit_bad(rep, rep->records + 1, "log truncated: a signed "
			    "checkpoint covers record %lld but the log ends at record %lld",
			    (long long)seq, (long long)rep->records);
			goto out;
		}
		if (strcmp(w.hashes[seq], head) != 0) {
			r = audit_bad(rep, prev_cp + 1, "records %lld..%lld were rewritten: "
			    "the chain no longer matches the checkpoint signed at record %lld",
			    (long long)prev_cp + 1, (long long)seq, (long long)seq);
			goto out;
		}
		/* Checkpoints cannot be dropped: one at record 1, then at most
		 * STK_AUDIT_CHECKPOINT_MAX_GAP records apart. */
		if (prev_cp == 0 && seq != 1) {
			r = audit_bad(rep, 1, "no signed checkpoint at record 1 (the first "
			    "is at record %lld): checkpoints were deleted", (long long)seq);
			goto out;
		}
		if (seq - prev_cp > STK_AUDIT_CHECKPOINT_MAX_GAP) {
			r = audit_bad(rep, prev_cp + 1, "records %lld..%lld have no signed "
			    "checkpoint (at most %d records apart): checkpoints were deleted",
			    (long long)prev_cp + 1, (long long)seq - 1,
			    STK_AUDIT_CHECKPOINT_MAX_GAP);
			goto out;
		}
		if (anc.seq > 0 && seq == anc.seq && strcmp(head, anc.hash) == 0)
			anchor_seen = 1;
		if (anc.seq > 0 && seq > anc.seq && audit_kid_is_mine(s, t, ckid) &&
		    mine_after == 0)
			mine_after = seq;
		if (ctr > 0 && audit_kid_is_mine(s, t, ckid)) {
			/* The node's TPM counter goes up by one per checkpoint. */
			if (mine_ctr > 0 && ctr != mine_ctr + 1) {
				r = audit_bad(rep, mine_ctr_seq + 1, "this node's checkpoints "
				    "with TPM counter %llu..%llu are missing (between records "
				    "%lld and %lld): the log was cut or restored",
				    (unsigned long long)mine_ctr + 1, (unsigned long long)ctr - 1,
				    (long long)mine_ctr_seq, (long long)seq);
				goto out;
			}
			mine_ctr = ctr;
			mine_ctr_seq = seq;
		}
		prev_cp = seq;
		rep->checkpoints++;
		rep->last_checkpoint_seq = seq;
	}
	if (rc != SITE_DB_DONE) {
		r = site_db_error(s, err, "reading audit checkpoints");
		goto out;
	}
	if (rep->records > 0 && prev_cp == 0) {
		r = audit_bad(rep, 1, "records 1..%lld have no signed checkpoint (none "
		    "at record 1): checkpoints were deleted", (long long)rep->records);
		goto out;
	}
	if (rep->records - prev_cp > STK_AUDIT_CHECKPOINT_MAX_GAP) {
		r = audit_bad(rep, prev_cp + 1, "records %lld..%lld have no signed "
		    "checkpoint (at most %d records after the last): checkpoints were "
		    "deleted", (long long)prev_cp + 1, (long long)rep->records,
		    STK_AUDIT_CHECKPOINT_MAX_GAP);
		goto out;
	}
	/* The TPM counter: it went up with every checkpoint this node signed,
	 * and no restore of the disk takes it back. */
	/* Only a backend with a counter is opened (no PIN asked for nothing);
	 * one that cannot be read is an error, not a pass. */
	if ((kb = stk_key_backend_find(s->backend)) != NULL && kb->counter != NULL) {
		audit_counter_name(s, cname, sizeof(cname));
		if ((r = stk_site_key(s, &key, err)) != 0 ||
		    (r = stk_key_counter(key, cname, 0, &tpm_ctr, err)) != 0)
			goto out;
	}
	if (tpm_ctr > 0 && mine_ctr < tpm_ctr) {
		r = audit_bad(rep, mine_ctr_seq + 1, "log truncated or restored: the TPM "
		    "counter is at %llu but this node's newest checkpoint in the log "
		    "carries %llu (record %lld): its later checkpoints and records are "
		    "missing", (unsigned long long)tpm_ctr, (unsigned long long)mine_ctr,
		    (long long)mine_ctr_seq);
		goto out;
	}
	if (tpm_ctr > 0 && mine_ctr > tpm_ctr) {
		r = audit_bad(rep, mine_ctr_seq, "the checkpoint at record %lld carries TPM "
		    "counter %llu, beyond the TPM's %llu: not this node's TPM, or it was "
		    "cleared", (long long)mine_ctr_seq, (unsigned long long)mine_ctr,
		    (unsigned long long)tpm_ctr);
		goto out;
	}
	rep->tpm_counter = (int64_t)tpm_ctr;
	/* The anchor outside the store: the log must still hold the checkpoint
	 * it names, and no later checkpoint of this node may exist beyond it. */
	if (anchor_bad) {
		r = audit_bad(rep, rep->records + 1, "the anchor file %s/" AUDIT_ANCHOR
		    " is unreadable", s->dir);
		goto out;
	}
	rep->anchor_seq = anc.seq;
	if (anc.seq == 0)
		snprintf(rep->anchor_note, sizeof(rep->anchor_note), "no anchor in the "
		    "site directory (this node signed no checkpoint yet): a log cut "
		    "after record %lld would not be detected here",
		    (long long)rep->last_checkpoint_seq);
	else if (strcmp(anc.site, s->guid) != 0) {
		r = audit_bad(rep, 1, "the anchor file belongs to another site (%.36s)",
		    anc.site);
		goto out;
	} else if (anc.seq > rep->records) {
		r = audit_bad(rep, rep->records + 1, "log truncated: the anchor names a "
		    "checkpoint at record %lld but the log ends at record %lld: records "
		    "%lld..%lld are missing", (long long)anc.seq, (long long)rep->records,
		    (long long)rep->records + 1, (long long)anc.seq);
		goto out;
	} else if (!anchor_seen) {
		r = audit_bad(rep, anc.seq, "the checkpoint at record %lld named by the "
		    "anchor is missing or was rewritten", (long long)anc.seq);
		goto out;
	} else if (mine_after > 0) {
		r = audit_bad(rep, anc.seq + 1, "anchor rolled back: it names record "
		    "%lld but this node signed a checkpoint at record %lld", (long long)anc.seq,
		    (long long)mine_after);
		goto out;
	}
	r = 0;
out:
	db_finalize(st);
	if (in_read)
		s->store->vt->rollback(s->store); /* read-only: nothing to keep */
	site_trust_free(t);
	free(w.hashes);
	return r;
}
