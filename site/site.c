/* Site directory, database and key. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sitetoken/cert.h"
#include "sitetoken/log.h"
#include "site_int.h"

#define SITE_CERT_DAYS (5 * 365)

/* Each entry migrates the schema from version i to i+1. Never edit an entry
 * that has shipped; append a new one. */
static const char *const site_migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE site ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  tenant TEXT NOT NULL, backend TEXT NOT NULL, key_uri TEXT NOT NULL,"
	"  key_type TEXT NOT NULL, cert BLOB NOT NULL, kid TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE bulk_tokens ("
	"  guid TEXT PRIMARY KEY, nbf INTEGER NOT NULL, exp INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL, created_by TEXT NOT NULL,"
	"  blocked INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),"
	"  blocked_at INTEGER);"
	"CREATE TABLE audit ("
	"  seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL,"
	"  event TEXT NOT NULL, subject TEXT NOT NULL, outcome TEXT NOT NULL,"
	"  detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
	"CREATE TABLE audit_checkpoints ("
	"  seq INTEGER PRIMARY KEY, head_hash TEXT NOT NULL, at INTEGER NOT NULL,"
	"  kid TEXT NOT NULL, sig TEXT NOT NULL);",
	/* 1 -> 2: registered devices and client settings */
	"CREATE TABLE devices ("
	"  guid TEXT PRIMARY KEY, cert_thumbprint TEXT NOT NULL UNIQUE,"
	"  cert BLOB NOT NULL, registered_at INTEGER NOT NULL,"
	"  via TEXT NOT NULL CHECK (via IN ('mp', 'cmg')), bulk_guid TEXT,"
	"  blocked INTEGER NOT NULL DEFAULT 0 CHECK (blocked IN (0, 1)),"
	"  allow_cmg INTEGER CHECK (allow_cmg IN (0, 1)),"
	"  last_token_jti TEXT, last_issued_at INTEGER, token_exp INTEGER);"
	"CREATE INDEX devices_bulk ON devices (bulk_guid);"
	"CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);",
};

int64_t
stk_now(void)
{
	const char *off = getenv("SITETOKEN_TIME_OFFSET");
	long long o = 0;
	char *end;

	if (off != NULL && *off != '\0') {
		errno = 0;
		o = strtoll(off, &end, 10);
		if (errno != 0 || *end != '\0')
			o = 0;
	}
	return (int64_t)time(NULL) + o;
}

int
site_db_error(struct stk_site *s, struct stk_error *err, const char *what)
{
	int rc = sqlite3_extended_errcode(s->db);

	return stk_error_set(err, STK_E_DB, STK_LAYER_SQLITE, (unsigned long)rc,
	    "%s: %s", what, sqlite3_errmsg(s->db));
}

int
site_exec(struct stk_site *s, const char *sql, struct stk_error *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		stk_error_set(err, STK_E_DB, STK_LAYER_SQLITE, (unsigned long)rc,
		    "database: %s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return STK_E_DB;
	}
	return STK_OK;
}

int
stk_site_tx_begin(struct stk_site *s, struct stk_error *err)
{
	int r;

	/* IMMEDIATE takes the write lock now, so two writers queue on the
	 * busy timeout instead of failing with "database is locked" later. */
	if ((r = site_exec(s, "BEGIN IMMEDIATE", err)) == 0)
		s->in_tx = 1;
	return r;
}

int
stk_site_tx_commit(struct stk_site *s, struct stk_error *err)
{
	int r = site_exec(s, "COMMIT", err);

	if (r != 0)
		stk_site_tx_rollback(s);
	s->in_tx = 0;
	if (r == 0 && s->audit_dirty)
		site_audit_after_commit(s);
	s->audit_dirty = 0;
	return r;
}

void
stk_site_tx_rollback(struct stk_site *s)
{
	if (s->in_tx)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	s->in_tx = 0;
	s->audit_dirty = 0;
}

static int
site_db_open(struct stk_site *s, int create, struct stk_error *err)
{
	char path[PATH_MAX];
	sqlite3_stmt *st = NULL;
	int version, rc, r;
	size_t i, n = sizeof(site_migrations) / sizeof(site_migrations[0]);

	snprintf(path, sizeof(path), "%s/site.db", s->dir);
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0), NULL);
	if (rc != SQLITE_OK) {
		r = stk_error_set(err, rc == SQLITE_CANTOPEN ? STK_E_NOTFOUND : STK_E_DB,
		    STK_LAYER_SQLITE, (unsigned long)rc,
		    "cannot open site database %s: %s", path,
		    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		return r;
	}
	sqlite3_busy_timeout(s->db, 15000);
	if ((r = site_exec(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	    "PRAGMA foreign_keys=ON;", err)) != 0)
		return r;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return site_db_error(s, err, "reading schema version");
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > (int)n)
		return stk_error_set(err, STK_E_DB, STK_LAYER_NONE, 0,
		    "site database schema %d is newer than this program (%zu)",
		    version, n);
	for (i = (size_t)version; i < n; i++) {
		char pragma[64];

		if ((r = stk_site_tx_begin(s, err)) != 0)
			return r;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version=%zu", i + 1);
		if ((r = site_exec(s, site_migrations[i], err)) != 0 ||
		    (r = site_exec(s, pragma, err)) != 0) {
			stk_site_tx_rollback(s);
			return r;
		}
		if ((r = stk_site_tx_commit(s, err)) != 0)
			return r;
	}
	return STK_OK;
}

static int
site_alloc(const char *dir, struct stk_site **out, struct stk_error *err)
{
	struct stk_site *s;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL || (s->dir = strdup(dir)) == NULL) {
		free(s);
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	}
	pthread_mutex_init(&s->lock, NULL);
	s->kopts.site_dir = s->dir;
	*out = s;
	return STK_OK;
}

void
stk_site_close(struct stk_site *s)
{
	if (s == NULL)
		return;
	stk_verifier_free(s->verifier);
	stk_signer_free(s->signer);
	stk_key_close(s->key);
	if (s->db != NULL)
		sqlite3_close_v2(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s->cert);
	free(s->backend);
	free(s->key_uri);
	free(s->tcti);
	free(s->module_path);
	free(s->dir);
	free(s);
}

static int
write_file_atomic(const char *dir, const char *name, const void *data,
    size_t len, mode_t mode, struct stk_error *err)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	int fd;
	ssize_t w;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) < 0)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot write %s: %s", tmp, strerror(errno));
	w = write(fd, data, len);
	if (w != (ssize_t)len || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot write %s", tmp);
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot rename %s", tmp);
	}
	return STK_OK;
}

/* Remove what a failed init created, leaving a pre-existing empty dir. */
static void
site_init_cleanup(const char *dir, int made_dir)
{
	static const char *const files[] = { "site.db", "site.db-wal", "site.db-shm",
	    "site.crt", "site.key", ".site.crt.tmp", "site.tpmkey" };
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/logs", dir);
	rmdir(path);
	if (made_dir)
		rmdir(dir);
}

int
stk_site_init(const char *dir, const struct stk_site_init_opts *opts,
    struct stk_site **out, struct stk_error *err)
{
	struct stk_site *s = NULL;
	struct stk_key_opts ko;
	struct stk_key *key = NULL;
	char *uri = NULL, *pem = NULL, path[PATH_MAX], kid[44];
	EVP_PKEY *pub = NULL;
	sqlite3_stmt *st = NULL;
	struct stat sb;
	enum stk_key_type type = opts->key_type ? opts->key_type : STK_KEY_RSA2048;
	int r, made_dir = 0;
	int64_t now = stk_now();

	*out = NULL;
	snprintf(path, sizeof(path), "%s/site.db", dir);
	if (stat(path, &sb) == 0)
		return stk_error_set(err, STK_E_EXISTS, STK_LAYER_NONE, 0,
		    "a site already exists in %s", dir);
	if (mkdir(dir, 0700) == 0)
		made_dir = 1;
	else if (errno != EEXIST)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot create site directory %s: %s", dir, strerror(errno));
	snprintf(path, sizeof(path), "%s/logs", dir);
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot create %s: %s", path, strerror(errno));
		goto fail;
	}
	if ((r = site_alloc(dir, &s, err)) != 0)
		goto fail;
	if (stk_guid_new(s->guid) != 0) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0, "no random bytes");
		goto fail;
	}
	stk_site_set_key_opts(s, &opts->key);
	ko = s->kopts;
	if ((r = stk_key_generate(opts->backend ? opts->backend : "file",
	    opts->key_uri, type, &ko, &key, &uri, err)) != 0)
		goto fail;
	if ((r = stk_cert_make_site(key, s->guid, now, SITE_CERT_DAYS, &s->cert,
	    &s->cert_len, err)) != 0)
		goto fail;
	if ((r = stk_key_get_public(key, &pub, err)) != 0)
		goto fail;
	if (stk_pkey_kid(pub, kid) != 0) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0, "cannot compute kid");
		goto fail;
	}
	if (stk_cert_der_to_pem(s->cert, s->cert_len, &pem) != 0) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0, "cannot encode certificate");
		goto fail;
	}
	if ((r = write_file_atomic(dir, "site.crt", pem, strlen(pem), 0644, err)) != 0)
		goto fail;
	if ((r = site_db_open(s, 1, err)) != 0)
		goto fail;
	if ((s->backend = strdup(key->vt->name)) == NULL || (s->key_uri = strdup(uri)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto fail;
	}
	s->key_type = type;
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto fail;
	if (sqlite3_prepare_v2(s->db, "INSERT INTO site (id, tenant, backend, key_uri,"
	    " key_type, cert, kid, created_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?)", -1,
	    &st, NULL) != SQLITE_OK) {
		r = site_db_error(s, err, "recording the site");
		goto fail_tx;
	}
	sqlite3_bind_text(st, 1, s->guid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, s->backend, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, s->key_uri, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, stk_key_type_name(type), -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, s->cert, (int)s->cert_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, kid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, now);
	if (sqlite3_step(st) != SQLITE_DONE) {
		r = site_db_error(s, err, "recording the site");
		goto fail_tx;
	}
	sqlite3_finalize(st);
	st = NULL;
	s->key = key;
	key = NULL;
	if ((r = stk_audit_append(s, opts->actor ? opts->actor : "admin",
	    "site.init", s->guid, "ok", stk_key_type_name(type), err)) != 0)
		goto fail_tx;
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto fail;
	/* The first checkpoint anchors the chain to the site key. */
	if ((r = stk_audit_checkpoint(s, err)) != 0)
		goto fail;
	STK_LOG(STK_LOG_INFO, "site", "site %s initialised with %s key (%s)",
	    s->guid, s->backend, stk_key_type_name(type));
	free(uri);
	free(pem);
	EVP_PKEY_free(pub);
	*out = s;
	return STK_OK;
fail_tx:
	sqlite3_finalize(st);
	stk_site_tx_rollback(s);
fail:
	stk_key_close(key);
	free(uri);
	free(pem);
	EVP_PKEY_free(pub);
	stk_site_close(s);
	site_init_cleanup(dir, made_dir);
	return r;
}

int
stk_site_open(const char *dir, struct stk_site **out, struct stk_error *err)
{
	struct stk_site *s = NULL;
	sqlite3_stmt *st = NULL;
	char path[PATH_MAX];
	struct stat sb;
	const void *blob;
	int r, n;

	*out = NULL;
	snprintf(path, sizeof(path), "%s/site.db", dir);
	if (stat(path, &sb) != 0)
		return stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_SYS, (unsigned long)errno,
		    "no site in %s (run 'sitetoken site init' first)", dir);
	if ((r = site_alloc(dir, &s, err)) != 0)
		return r;
	if ((r = site_db_open(s, 0, err)) != 0)
		goto fail;
	if (sqlite3_prepare_v2(s->db, "SELECT tenant, backend, key_uri, key_type, cert"
	    " FROM site WHERE id = 1", -1, &st, NULL) != SQLITE_OK) {
		r = site_db_error(s, err, "reading the site");
		goto fail;
	}
	if (sqlite3_step(st) != SQLITE_ROW) {
		r = stk_error_set(err, STK_E_DB, STK_LAYER_NONE, 0,
		    "site database %s has no site record", path);
		goto fail;
	}
	snprintf(s->guid, sizeof(s->guid), "%s", (const char *)sqlite3_column_text(st, 0));
	s->backend = strdup((const char *)sqlite3_column_text(st, 1));
	s->key_uri = strdup((const char *)sqlite3_column_text(st, 2));
	s->key_type = stk_key_type_parse((const char *)sqlite3_column_text(st, 3));
	blob = sqlite3_column_blob(st, 4);
	n = sqlite3_column_bytes(st, 4);
	if (s->backend == NULL || s->key_uri == NULL || n <= 0 ||
	    (s->cert = malloc((size_t)n)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto fail;
	}
	memcpy(s->cert, blob, (size_t)n);
	s->cert_len = (size_t)n;
	sqlite3_finalize(st);
	*out = s;
	return STK_OK;
fail:
	sqlite3_finalize(st);
	stk_site_close(s);
	return r;
}

const char *stk_site_dir(const struct stk_site *s) { return s->dir; }
const char *stk_site_guid(const struct stk_site *s) { return s->guid; }
const char *stk_site_backend(const struct stk_site *s) { return s->backend; }
const char *stk_site_key_uri(const struct stk_site *s) { return s->key_uri; }
enum stk_key_type stk_site_key_type(const struct stk_site *s) { return s->key_type; }

const unsigned char *
stk_site_cert(const struct stk_site *s, size_t *len)
{
	*len = s->cert_len;
	return s->cert;
}

void
stk_site_set_key_opts(struct stk_site *s, const struct stk_key_opts *o)
{
	free(s->tcti);
	free(s->module_path);
	s->tcti = o && o->tcti ? strdup(o->tcti) : NULL;
	s->module_path = o && o->module_path ? strdup(o->module_path) : NULL;
	s->kopts.tcti = s->tcti;
	s->kopts.module_path = s->module_path;
	s->kopts.label = NULL;
	s->kopts.site_dir = s->dir;
}

int
stk_site_key(struct stk_site *s, struct stk_key **out, struct stk_error *err)
{
	int r = STK_OK;

	pthread_mutex_lock(&s->lock);
	if (s->key == NULL && s->key_auth_err.code == STK_E_AUTH) {
		/* Retrying a refused PIN on every request would lock the token. */
		r = STK_E_AUTH;
		if (err != NULL)
			*err = s->key_auth_err;
	} else if (s->key == NULL) {
		r = stk_key_open(s->key_uri, &s->kopts, &s->key, err);
		if (r == STK_E_AUTH && err != NULL)
			s->key_auth_err = *err;
		else if (r == STK_E_AUTH)
			s->key_auth_err.code = r;
	}
	*out = s->key;
	pthread_mutex_unlock(&s->lock);
	/* A site whose key is gone is a backend failure, not an unknown
	 * record the caller asked about. */
	if (r == STK_E_NOTFOUND) {
		r = STK_E_BACKEND;
		if (err != NULL)
			err->code = r;
	}
	return r;
}

int
stk_site_signer(struct stk_site *s, const struct stk_signer **out,
    struct stk_error *err)
{
	struct stk_key *key;
	int r;

	*out = NULL;
	if ((r = stk_site_key(s, &key, err)) != 0)
		return r;
	pthread_mutex_lock(&s->lock);
	if (s->signer == NULL)
		r = stk_signer_new(key, s->cert, s->cert_len, s->guid, &s->signer, err);
	*out = s->signer;
	pthread_mutex_unlock(&s->lock);
	return r;
}

int
stk_site_verifier(struct stk_site *s, const struct stk_verifier **out,
    struct stk_error *err)
{
	struct stk_verifier *v = NULL;
	int r = STK_OK;

	*out = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->verifier == NULL) {
		if ((r = stk_verifier_new(s->guid, &v, err)) == 0 &&
		    (r = stk_verifier_add_cert(v, s->cert, s->cert_len, err)) == 0) {
			s->verifier = v;
			v = NULL;
		}
		stk_verifier_free(v);
	}
	*out = s->verifier;
	pthread_mutex_unlock(&s->lock);
	return r;
}
