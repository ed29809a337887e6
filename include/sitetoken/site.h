/* sitetoken — the site: its state directory, SQLite database, signing key,
 * bulk registration tokens and hash-chained audit log.
 *
 * Site directory layout:
 *   site.db    SQLite (WAL, synchronous=FULL): site record, bulk token
 *              records (never a token), audit chain and checkpoints
 *   site.conf  instead of site.db when the site lives in PostgreSQL: the
 *              connection string (no password), schema and node name
 *   site.crt   the site certificate (PEM), for verifiers
 *   site.key   the PEM key (file backend only, mode 0600)
 *   logs/      CCM_STS.log, MP_RegistrationManager.log, ClientAuth.log */
#ifndef SITETOKEN_SITE_H
#define SITETOKEN_SITE_H

#include <stddef.h>
#include <stdint.h>
#include "sitetoken/error.h"
#include "sitetoken/key.h"
#include "sitetoken/token.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STK_BULK_LIFETIME_DEFAULT 4320 /* minutes: three days */
#define STK_BULK_LIFETIME_MAX 10080    /* minutes: seven days */
#define STK_AUDIT_CHECKPOINT_EVERY 16  /* records between signed checkpoints */
/* A checkpoint is also signed when the last one is this old (seconds). */
#define STK_AUDIT_CHECKPOINT_SECONDS 300
/* `audit verify` requires a checkpoint at record 1 and at most this many
 * records between two checkpoints and after the last one: a longer gap
 * means checkpoints were deleted. An append that would pass it is refused
 * (the action it records does not happen) until a checkpoint is signed. */
#define STK_AUDIT_CHECKPOINT_MAX_GAP 32  /* 2 * STK_AUDIT_CHECKPOINT_EVERY */
/* Refusals (outcome "refused") from one source (actor) for one event and
 * reason: the first STK_AUDIT_REFUSAL_BURST in an interval of
 * STK_AUDIT_REFUSAL_INTERVAL seconds are recorded one by one, the rest are
 * counted and recorded as one "N more" record when the interval ends (at
 * the next record after it, or when the site is closed). Refusals alone
 * trigger at most one checkpoint per interval while the unsigned tail is
 * below STK_AUDIT_CHECKPOINT_MAX_GAP - STK_AUDIT_CHECKPOINT_EVERY / 2. */
#define STK_AUDIT_REFUSAL_INTERVAL 10
#define STK_AUDIT_REFUSAL_BURST 24

/* Current time in seconds. Tests may shift it with SITETOKEN_TIME_OFFSET
 * (seconds, may be negative); nothing else should. */
int64_t stk_now(void);

struct stk_site;

struct stk_site_init_opts {
	const char *backend;        /* "file", "pkcs11", "tpm" */
	const char *key_uri;        /* where to make the key (backend-specific), or NULL */
	enum stk_key_type key_type; /* default rsa2048 */
	struct stk_key_opts key;    /* tcti, module path...; site_dir is set by init */
	const char *actor;          /* who runs it, for the audit log */
	/* Site store: NULL takes $SITETOKEN_DB, and without it SQLite (site.db
	 * in the site directory). "postgresql://..." or a libpq "key=value"
	 * string puts the site in PostgreSQL, in schema db_schema (NULL takes
	 * $SITETOKEN_DB_SCHEMA, else "site_<GUID hex>"); it is kept in site.conf
	 * and must not hold a password (libpq service file or PGPASSFILE). */
	const char *db;
	const char *db_schema;
};

/* Threads: a site handle is used by one thread at a time (the server
 * serialises its calls behind one mutex). What it hands out may outlive
 * that: a verifier snapshot (stk_site_verifier_get) is immutable and may
 * be used from any thread until released. */

/* Create the site directory (0700), key, certificate and database. Refuses
 * an existing site. On failure nothing is left behind. */
int stk_site_init(const char *dir, const struct stk_site_init_opts *opts,
    struct stk_site **out, struct stk_error *err);
/* Open an existing site (database, certificate). The key is opened only
 * when signing needs it (stk_site_signer). */
int stk_site_open(const char *dir, struct stk_site **out, struct stk_error *err);
void stk_site_close(struct stk_site *s);
/* Make `s` a verify-only handle: it never opens the site key (a TPM or HSM
 * serves one handle; a second open could wait on it), so anything that
 * would sign through it fails with STK_E_AUTH, and an audit checkpoint due
 * on it is left to the next commit of a signing handle.
 *
 * Thread contract: a site handle is used by one thread at a time (its
 * store connection is not shared). Threads that run concurrently open one
 * handle each — the server gives every worker thread its own verify-only
 * handle for gateway authentication — and keep one signing handle for
 * what signs (registration, renewal), serialised by its owner. */
void stk_site_forbid_signing(struct stk_site *s);

/* The gateway cache (process-wide, bounded, sharded; see
 * site/registration/tokcache.c and README "Performance"): verified client
 * token claims and the device state stk_device_authenticate decides on,
 * invalidated by the site's generation counter (changes in this process at once, from other
 * processes and nodes within 1 s). Counters (claims answered from the
 * cache, tokens verified) since start; clear empties it. Both thread-safe.
 * Set SITETOKEN_TOKEN_CACHE=0 before the first request to turn it off. */
void stk_token_cache_stats(uint64_t *hits, uint64_t *misses);
void stk_token_cache_clear(void);

const char *stk_site_dir(const struct stk_site *s);
const char *stk_site_guid(const struct stk_site *s);       /* lower case */
const char *stk_site_backend(const struct stk_site *s);
const char *stk_site_key_uri(const struct stk_site *s);
enum stk_key_type stk_site_key_type(const struct stk_site *s);
const unsigned char *stk_site_cert(const struct stk_site *s, size_t *len);

/* Options used when the key is opened (TCTI, module path); copied. */
void stk_site_set_key_opts(struct stk_site *s, const struct stk_key_opts *o);
/* Open the key (once) and return the signer / key. Owned by the site. */
int stk_site_signer(struct stk_site *s, const struct stk_signer **out,
    struct stk_error *err);
int stk_site_key(struct stk_site *s, struct stk_key **out, struct stk_error *err);
/* A verifier over every trusted site key (no private key needed). Owned by
 * the site and valid until it is closed (a verifier lent this way is kept
 * when the key set changes: prefer stk_site_verifier_get). */
int stk_site_verifier(struct stk_site *s, const struct stk_verifier **out,
    struct stk_error *err);
/* The current key-set snapshot: an immutable verifier with one reference
 * for the caller (release with stk_verifier_free). A key-set change swaps
 * in a new snapshot; holders keep theirs until they release it, so nothing
 * is parked for the life of the site. The snapshot may be used from any
 * thread (token.h). */
int stk_site_verifier_get(struct stk_site *s, struct stk_verifier **out,
    struct stk_error *err);

/* Verify a token with every active or retiring site key; a kid the cached
 * key set does not know makes it re-read the store once (another node's
 * new key). As stk_verify otherwise. */
int stk_site_verify(struct stk_site *s, const char *token, size_t len,
    enum stk_token_type expect, int64_t now, struct stk_claims *claims,
    struct stk_error *err);

/* ---- Several nodes, key rotation ----
 * Each node signs with its own key (its own TPM, HSM or key file), listed in
 * the store with its kid and certificate; every node verifies with every
 * active or retiring key. */

/* This node's name ("main" for the node that ran site init). */
const char *stk_site_node(const struct stk_site *s);
/* The store holding the site: "sqlite" or "postgresql". */
const char *stk_site_store(const struct stk_site *s);

struct stk_site_node_opts {
	const char *db;             /* the site's store (connection string) */
	const char *db_schema;      /* its schema (see site.conf of a node) */
	const char *node;           /* this node's name, unique in the site */
	const char *backend;        /* key backend, as for site init */
	const char *key_uri;
	enum stk_key_type key_type;
	struct stk_key_opts key;
	const char *actor;
};
/* Join an existing site from another node: a new site directory (0700) with
 * site.conf, this node's own key and certificate, registered in the store
 * (audited as node.add). Refuses a node name in use. */
int stk_site_node_add(const char *dir, const struct stk_site_node_opts *o,
    struct stk_site **out, struct stk_error *err);

/* Make a new key for this node (same backend; type STK_KEY_NONE keeps the
 * type; key_uri NULL: a new key file for the file backend, required for
 * the others) and sign with it from now on. The old key turns "retiring"
 * and keeps verifying until every token it signed has expired; then
 * stk_site_keys_retire_due retires it. Both steps are audited. */
int stk_site_key_rotate(struct stk_site *s, const char *key_uri,
    enum stk_key_type type, const char *actor, char new_kid[64],
    struct stk_error *err);

/* Retire every retiring key whose tokens have all expired by the store's
 * own record (the latest expiry of tokens each key signed) and the store's
 * clock (PostgreSQL now(); SQLite: this node's clock), each audited as
 * key.retire. The one place retirement happens on its own: the server's
 * housekeeping and `sitetoken key retire` call it; reading, verifying and
 * signing never retire. *retired: how many. */
int stk_site_keys_retire_due(struct stk_site *s, const char *actor,
    size_t *retired, struct stk_error *err);
/* Retire one retiring key now, by hand (audited). An active key is refused
 * (rotate first). *valid_until: 0, or the expiry of the last token it
 * signed when some had not expired yet (they stop verifying). */
int stk_site_key_retire(struct stk_site *s, const char *kid, const char *actor,
    int64_t *valid_until, struct stk_error *err);
/* Undo a retirement: the key turns retiring again (verifies; housekeeping
 * retires it once the store says its tokens have expired). Audited. */
int stk_site_key_restore(struct stk_site *s, const char *kid, const char *actor,
    struct stk_error *err);

struct stk_site_key_row {
	char kid[64], node[64], backend[16], key_type[16];
	char status[12];            /* active, retiring, retired */
	int64_t created_at, not_after, retired_at; /* 0 when not set */
	int64_t max_exp;            /* latest expiry of a token it signed, by
	                               the store's record; 0 none; -1 unknown
	                               (a key from before the record) */
	int64_t retire_after;       /* retiring: when housekeeping may retire it
	                               (by the store's clock); else 0 */
	int mine;                   /* this node signs with it */
	int trusted;                /* a root here, or endorsed from one */
	int64_t cert_not_after;     /* trusted: its certificate's notAfter; else 0 */
};
/* JWKS ({"keys":[...]}) of every active and retiring key, for verifiers
 * outside the site. *out malloc'd (free()). */
int stk_site_jwks(struct stk_site *s, char **out, struct stk_error *err);
/* Endorse another node's key (by kid) with this node's key, so that every
 * node trusting this one trusts it: a key row is trusted only when it is a
 * root in the site directory (site.crt, trust.pem) or endorsed by a trusted
 * key. Compare the kid with `key list` on the node that owns the key first:
 * an endorsement vouches for whatever row the store holds under that kid. */
int stk_site_key_endorse(struct stk_site *s, const char *kid, const char *actor,
    struct stk_error *err);
/* Every key the site ever had. *rows malloc'd (free()). */
int stk_site_keys_list(struct stk_site *s, struct stk_site_key_row **rows,
    size_t *n, struct stk_error *err);

/* ---- Bulk registration tokens ---- */

struct stk_bulk_record {
	char guid[STK_GUID_LEN + 1];
	int64_t nbf, exp, created_at, blocked_at;
	int blocked;
	char created_by[64];
};

/* Parse a lifetime in minutes: whole number 1..10080. */
int stk_bulk_parse_lifetime(const char *s, long *minutes, struct stk_error *err);
/* Issue a bulk token valid `minutes` from now and record its GUID (never the
 * token) with an audit record, in one transaction. *token is wiped/freed
 * with stk_token_free. */
int stk_bulk_new(struct stk_site *s, long minutes, const char *actor,
    char **token, struct stk_bulk_record *rec, struct stk_error *err);
/* Block (block=1) or unblock a bulk token by GUID. STK_E_NOTFOUND if the
 * site never issued it. Repeating an action is harmless (no change). */
int stk_bulk_set_blocked(struct stk_site *s, const char *guid, int block,
    const char *actor, struct stk_error *err);
int stk_bulk_get(struct stk_site *s, const char *guid,
    struct stk_bulk_record *rec, struct stk_error *err);
/* Verify a bulk token for registration: every token rule, and the site must
 * have a record of it that is not blocked. */
int stk_bulk_check(struct stk_site *s, const char *token, size_t len,
    int64_t now, struct stk_claims *claims, struct stk_error *err);

/* ---- Audit log ---- */

struct stk_audit_record {
	int64_t seq, at;
	char actor[64], event[48], subject[80], outcome[24], detail[160];
	char prev_hash[65], hash[65];
	/* What else the record is about, as a GUID (the bulk token a device
	 * registered with), "" if nothing: the console's per-token trail
	 * matches subject and ref, never the detail text. */
	char ref[80];
};

/* Append a record in its own transaction (use inside stk_site_tx_* for a
 * change: then it joins that transaction). */
int stk_audit_append(struct stk_site *s, const char *actor, const char *event,
    const char *subject, const char *outcome, const char *detail,
    struct stk_error *err);
/* The same with a second subject (ref, may be NULL). */
int stk_audit_append_ref(struct stk_site *s, const char *actor,
    const char *event, const char *subject, const char *ref,
    const char *outcome, const char *detail, struct stk_error *err);
/* A refusal counted without the store: 1 when it joined the current
 * interval's surplus of its source, event and reason (detail's text up to
 * the first ':'; STK_AUDIT_REFUSAL_*): nothing more to record now, the
 * handle records the count later like any aggregated refusal. 0 when it
 * must be recorded through stk_audit_append (the first
 * STK_AUDIT_REFUSAL_BURST of an interval, a new interval): nothing was
 * counted then. Thread-safe against the handle's own store use, so a
 * server can call it without the lock it holds around the handle. */
int stk_audit_refusal_counted(struct stk_site *s, const char *actor,
    const char *event, const char *detail);
/* Sign a checkpoint over the chain head with the site key. */
int stk_audit_checkpoint(struct stk_site *s, struct stk_error *err);

struct stk_audit_report {
	int64_t records, checkpoints, last_checkpoint_seq;
	int64_t bad_seq;       /* first bad record (0 if none) */
	char problem[200];     /* what is wrong, empty when intact */
	int64_t anchor_seq;    /* checkpoint the site directory's anchor names (0: none) */
	char anchor_note[200]; /* what the anchor could not check, empty if all */
	int64_t untrusted_keys; /* key rows ignored: no valid endorsement */
	int64_t tpm_counter;   /* this node's TPM NV counter checked (0: none) */
};
/* Check the whole chain and every checkpoint signature. Returns 0 when
 * intact, 1 when tampering was found (rep says which record and what),
 * negative on error. */
int stk_audit_verify(struct stk_site *s, struct stk_audit_report *rep,
    struct stk_error *err);
typedef int (*stk_audit_cb)(void *ctx, const struct stk_audit_record *r);
int stk_audit_foreach(struct stk_site *s, stk_audit_cb cb, void *ctx,
    struct stk_error *err);

/* ---- Transactions (BEGIN IMMEDIATE ... COMMIT/ROLLBACK) ---- */
/* Group commit: between stk_site_batch_begin and stk_site_batch_end the
 * transactions of this handle (stk_site_tx_*, and so every change and its
 * audit record) are savepoints of one store transaction, committed with
 * one flush to disk by stk_site_batch_end. Each stays all or nothing; none
 * is durable before stk_site_batch_end returns 0, so no caller may answer
 * for one before; when it fails, none of the batch happened. The audit
 * checkpoint, if due, is signed after that commit. */
int stk_site_batch_begin(struct stk_site *s, struct stk_error *err);
int stk_site_batch_end(struct stk_site *s, struct stk_error *err);
int stk_site_tx_begin(struct stk_site *s, struct stk_error *err);
int stk_site_tx_commit(struct stk_site *s, struct stk_error *err);
void stk_site_tx_rollback(struct stk_site *s);

#ifdef __cplusplus
}
#endif
#endif
