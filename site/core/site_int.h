/* Internal to site/: the site object and database helpers. */
#ifndef SITETOKEN_SITE_INT_H
#define SITETOKEN_SITE_INT_H

#include <pthread.h>
#include <sys/types.h>
#include "sitetoken/site.h"
#include "db.h"

/* The gateway cache's per-handle state (tokcache.c). */
struct site_gw {
	int dirty;                   /* this transaction bumped the generation */
	int polled;                  /* db_gen was read at least once */
	int64_t polled_at;           /* monotonic ns of that read */
	int64_t db_gen;              /* the store's gateway-generation then */
	uint64_t seen;               /* process generation last seen */
	uint64_t allow_gen;          /* generation `allow` was read at; 0 none */
	int allow;                   /* site default allow-cmg */
	int nocache;                 /* tests: decide without the cache */
};

struct stk_site {
	char *dir;
	struct site_db *store;       /* the site store (db.h) */
	char *node;                  /* this node's name (site.conf), or NULL */
	char guid[STK_GUID_LEN + 1];
	char *backend;
	char *key_uri;
	enum stk_key_type key_type;
	unsigned char *cert;
	size_t cert_len;
	struct stk_key_opts kopts;   /* strings owned below */
	char *tcti, *module_path;
	pthread_mutex_t lock;        /* guards lazy key/signer/verifier setup */
	struct stk_key *key;
	struct stk_error key_auth_err; /* a refused PIN/auth: never presented again */
	struct stk_signer *signer;
	struct stk_verifier *verifier; /* current snapshot (the site's reference) */
	int verifier_lent;           /* handed out borrowed (stk_site_verifier) */
	int in_tx;
	int batch;                   /* stk_site_batch_begin: tx = savepoint */
	int audit_dirty;             /* records appended since the last commit */
	/* Run after a commit that appended audit records (the audit layer's
	 * checkpoint signing, installed by the facade): the core calls
	 * nothing above it by name. */
	void (*after_commit)(struct stk_site *s);
	/* site keys (keys.c) */
	char kid[64];                /* this node's signing key, "" if unknown */
	char *keys_fp;               /* the key set the verifier was built from */
	int64_t keys_checked;        /* when the key set was last read */
	int64_t keys_missed;         /* last refresh for an unknown kid */
	int refreshing;
	struct site_parked *parked;  /* replaced objects, freed at close */
	/* refusal aggregation (audit.c) */
	pthread_mutex_t refusal_mu;  /* the table: stk_audit_refusal_counted runs
	                                without the store */
	struct site_refusal *refusals;
	size_t nrefusals;
	int flushing;
	int nonrefusal_since_cp;     /* a record other than a refusal unsigned */
	int64_t refusal_cp_at;       /* last checkpoint refusals alone caused */
	struct site_gw gw;           /* gateway cache (tokcache.c) */
};

#define SITE_NODE_DEFAULT "main"  /* the node that ran site init */
#define SITE_CERT_DAYS (5 * 365)     /* a site key's certificate lifetime */

/* site/core/site.c: site.conf (which store holds the site, this node's
 * name), the store open with its migrations, the bare site object. */
struct site_conf {
	char *db, *schema, *node;
};
void site_conf_clear(struct site_conf *c);
/* 0 and an empty conf when there is no site.conf (a plain SQLite site). */
int site_conf_read(const char *dir, struct site_conf *c, struct stk_error *err);
int site_conf_write(const char *dir, const struct site_conf *c,
    struct stk_error *err);
/* Open the store c names (SQLite site.db in the site directory when none)
 * and apply the migrations it has not seen yet. */
int site_db_open(struct stk_site *s, const struct site_conf *c, int create,
    struct stk_error *err);
int site_alloc(const char *dir, struct stk_site **out, struct stk_error *err);
/* The site directory: 1 when dir holds a site (site.db or site.conf). */
int site_exists(const char *dir);
/* Remove what a failed init created, leaving a pre-existing empty dir. */
void site_init_cleanup(const char *dir, int made_dir);
/* A site's schema name on a shared store: "site_" and the GUID's hex. */
void site_schema_name(const char *guid, char out[48]);
/* The site directory and its logs/: owned by this user, not writable by
 * group or others. */
int site_check_dirs(const char *dir, struct stk_error *err);

int site_write_file(const char *dir, const char *name, const void *data,
    size_t len, mode_t mode, struct stk_error *err);
/* keys.c */
int site_keys_insert(struct stk_site *s, const char *kid, const char *node,
    const char *backend, const char *key_uri, enum stk_key_type type,
    const unsigned char *cert, size_t cert_len, int64_t now,
    struct stk_error *err);
int site_keys_open(struct stk_site *s, struct stk_error *err);
/* Make a key in this node's device and its certificate (signed by itself). */
int site_make_key(struct stk_site *s, const char *backend, const char *key_uri,
    enum stk_key_type type, int64_t now, struct stk_key **key, char **uri,
    unsigned char **cert, size_t *cert_len, char kid[44], struct stk_error *err);
/* Write a key's certificate as site.crt in the site directory. */
int site_write_cert_pem(struct stk_site *s, const unsigned char *der, size_t len,
    struct stk_error *err);
/* site/bulk/bulk_limits.c: record a new token's limits (caller's transaction). */
struct stk_bulk_limits;
int site_bulk_limits_insert(struct stk_site *s, const char *guid,
    const struct stk_bulk_limits *lim, struct stk_error *err);
/* The store's clock: PostgreSQL now(), shared by every node; on SQLite,
 * this (the serving) node's stk_now(). */
int site_store_now(struct stk_site *s, int64_t *now, struct stk_error *err);
/* Record that key kid signed a token expiring at exp (site_keys.max_exp,
 * what retirement waits for). Call inside the transaction that records the
 * token. */
int site_keys_issued(struct stk_site *s, const char *kid, int64_t exp,
    struct stk_error *err);
/* Re-read the key set when the cache is stale (or force): retire what is
 * due, rebuild the verifier if the set changed, follow this node's key. */
int site_keys_refresh(struct stk_site *s, int force, struct stk_error *err);
void site_keys_free_parked(struct stk_site *s);

/* tokcache.c: the gateway's cache of verified client tokens and of the
 * device state it decides on (see there for what goes stale and for how
 * long). site_verify_client_cached: stk_site_verify of a client token
 * presented with the certificate whose thumbprint is `thumb`, answered from
 * the cache when that pair was verified before. */
struct stk_device;
struct stk_gw_conn;
struct site_gw_state {           /* what dev_auth decides on */
	char guid[STK_GUID_LEN + 1];
	char thumbprint[44];
	char last_jti[STK_GUID_LEN + 1];
	int blocked, allow_cmg, on, token_used; /* on: allow-cmg in effect */
	int att_required;      /* a token without att is refused (attest_policy) */
	int64_t last_issued_at, token_exp;
};
int site_verify_client_cached(struct stk_site *s, const char *token,
    size_t len, const char *thumb, int64_t now, struct stk_claims *c,
    struct stk_error *err);
/* gwgen.c (core: the commit and every layer that changes state call it).
 * Poll the store's generation when due; the process's generation. */
uint64_t site_gw_begin(struct stk_site *s);
uint64_t site_gw_generation(void);
/* Inside a transaction that changes what the gateway decides on. */
int site_gw_bump(struct stk_site *s, struct stk_error *err);
/* From stk_site_tx_commit/rollback: publish this handle's bump. */
void site_gw_committed(struct stk_site *s, int committed);
/* The site default allow-cmg, read once per generation. */
int site_gw_allow_default(struct stk_site *s, uint64_t gen, int *on,
    struct stk_error *err);
/* Verify through the cache: < 0 error, 0 verified now (key filled for
 * site_gw_put_state), 1 claims from the cache, 2 claims and *st (current
 * at gen) from the cache. */
int site_gw_verify(struct stk_site *s, const char *token, size_t len,
    const char *thumb, int64_t now, uint64_t gen, unsigned char key[32],
    struct stk_claims *c, struct site_gw_state *st, struct stk_error *err);
/* The same with a server's per-connection memo (NULL: none). */
int site_gw_verify_memo(struct stk_site *s, const char *token, size_t len,
    const char *thumb, int64_t now, uint64_t gen, struct stk_gw_conn *conn,
    unsigned char key[32], struct stk_claims *c, struct site_gw_state *st,
    struct stk_error *err);
/* The certificate's thumbprint from the memo (hashed when it changed);
 * NULL when it cannot be kept. */
const char *site_gw_conn_x5t(struct stk_gw_conn *g, const unsigned char *der,
    size_t len);
/* The cache key of (token, thumb) from the memo when the connection
 * presented this very token before, else hashed (and remembered). */
void site_gw_conn_key(struct stk_gw_conn *g, const char *site_guid,
    const char *token, size_t len, const char *thumb, unsigned char key[32]);
int site_gw_get(const unsigned char key[32], int64_t now, int64_t leeway,
    const struct stk_verifier *v, uint64_t gen, struct stk_claims *c,
    struct site_gw_state *st);
void site_gw_put_state(const unsigned char key[32], uint64_t gen,
    const struct site_gw_state *st);
void site_gw_state_of(const struct stk_device *d, int on,
    struct site_gw_state *st);
void site_gw_device_of(const struct site_gw_state *st, struct stk_device *d);
uint64_t site_gw_state_hits(void);   /* decisions made without a store read */
void site_tokcache_key(const char *site_guid, const char *token, size_t len,
    const char *thumb, unsigned char key[32]);
int site_tokcache_get(const unsigned char key[32], int64_t now, int64_t leeway,
    const struct stk_verifier *v, struct stk_claims *c);
void site_tokcache_put(const unsigned char key[32], const struct stk_claims *c);
/* keytrust.c: the trusted key set, computed from the site directory's roots
 * (site.crt, trust.pem) along endorsements; never from the store alone. */
struct site_trust_key {
	char kid[44], node[64], status[12], endorsed_by[64];
	EVP_PKEY *pk;
	unsigned char *der;          /* certificate (the row's when in the table) */
	size_t der_len;
	char *endorsement;           /* base64url signature, NULL if none */
	int64_t created_at;
	int in_table, root, trusted;
};
struct site_trust {
	struct site_trust_key *k;
	size_t n, cap;
	size_t untrusted;            /* rows ignored: no valid endorsement */
	char first_untrusted[44];
};
int site_trust_load(struct stk_site *s, struct site_trust **out,
    struct stk_error *err);
/* The trusted key with this kid, or NULL. */
const struct site_trust_key *site_trust_find(const struct site_trust *t,
    const char *kid);
/* The key with this kid, trusted or not, or NULL. */
struct site_trust_key *site_trust_lookup(const struct site_trust *t,
    const char *kid);
void site_trust_free(struct site_trust *t);
void site_trust_message(const char *guid, const char *kid, const char *node,
    const unsigned char *der, size_t len, char *buf, size_t buflen);
/* Endorse a row with this node's key (inside the caller's transaction). */
int site_trust_endorse(struct stk_site *s, const char *kid, const char *node,
    const unsigned char *der, size_t len, struct stk_error *err);
/* Add a certificate to trust.pem in the site directory (if not there). */
int site_trust_add_root(struct stk_site *s, const unsigned char *der, size_t len,
    struct stk_error *err);

int site_db_error(struct stk_site *s, struct stk_error *err, const char *what);
/* Every row of every site table as bytes, for tests that must prove what
 * the store does not hold (*out malloc'd). */
int site_store_dump(struct stk_site *s, char **out, size_t *len,
    struct stk_error *err);
/* Sign a checkpoint when one is due (after a commit). */
void site_audit_after_commit(struct stk_site *s);
/* Record every refusal count still held (at close). */
void site_audit_flush(struct stk_site *s, int all);
/* A GUID given by a caller, in lower case as the store keeps it: 0, or
 * STK_E_ARG when guid (NULL too) is not one. */
int site_guid_arg(const char *guid, char g[STK_GUID_LEN + 1], struct stk_error *err);
/* Read the one row `sql` selects by the text values keys[0..nkeys-1] bound
 * to its `?`s: row(st, arg)'s result when there is one (row sets no error;
 * its columns are valid only during the call; NULL: 0, the row exists),
 * STK_E_NOTFOUND when there is none (no error set: the caller names what is
 * missing, or takes its default), else the store's error while `what`. */
int site_row_get(struct stk_site *s, const char *sql, const char *const *keys,
    int nkeys, const char *what, int (*row)(struct site_stmt *, void *),
    void *arg, struct stk_error *err);
/* Run one statement without results. */
int site_exec(struct stk_site *s, const char *sql, struct stk_error *err);

#endif
