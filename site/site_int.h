/* Internal to site/: the site object and database helpers. */
#ifndef SITETOKEN_SITE_INT_H
#define SITETOKEN_SITE_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include "sitetoken/site.h"
#include "db.h"

struct stk_site {
	char *dir;
	struct site_db *store;       /* the site store (db.h) */
	sqlite3 *db;                 /* raw handle for code not yet on the store
	                              * interface; NULL on PostgreSQL */
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
	struct stk_verifier *verifier;
	int in_tx;
	int audit_dirty;             /* records appended since the last commit */
};

int site_db_error(struct stk_site *s, struct stk_error *err, const char *what);
/* Every row of every site table as bytes, for tests that must prove what
 * the store does not hold (*out malloc'd). */
int site_store_dump(struct stk_site *s, char **out, size_t *len,
    struct stk_error *err);
/* The raw SQLite handle behind a SQLite store (NULL for other stores). */
sqlite3 *site_db_sqlite_handle(struct site_db *db);
/* Run one statement without results. */
/* Sign a checkpoint when one is due (after a commit). */
void site_audit_after_commit(struct stk_site *s);
int site_exec(struct stk_site *s, const char *sql, struct stk_error *err);

#endif
