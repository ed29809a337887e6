/* Site directory, database and key. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/x509.h>
#include "sitetoken/cert.h"
#include "sitetoken/file.h"
#include "sitetoken/log.h"
#include "sitetoken/token.h"
#include "site_int.h"

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
	/* 2 -> 3: one signing key per node, rotation (site/keys/keys.c) */
	"CREATE TABLE site_keys ("
	"  kid TEXT PRIMARY KEY, node TEXT NOT NULL, backend TEXT NOT NULL,"
	"  key_uri TEXT NOT NULL, key_type TEXT NOT NULL, cert BLOB NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('active', 'retiring', 'retired')),"
	"  created_at INTEGER NOT NULL, not_after INTEGER, retired_at INTEGER);"
	"CREATE INDEX site_keys_node ON site_keys (node, status);"
	"INSERT INTO site_keys (kid, node, backend, key_uri, key_type, cert, status,"
	"  created_at) SELECT kid, 'main', backend, key_uri, key_type, cert,"
	"  'active', created_at FROM site;",
	/* key retirement by the store's record, not a clock (site/keys/keys.c):
	 * max_exp, the latest expiry of tokens each key signed (0: none yet;
	 * NULL: a key from before this record, not_after covers it);
	 * retiring_at, when it stopped signing, by the store's clock. */
	"ALTER TABLE site_keys ADD COLUMN max_exp INTEGER DEFAULT 0;"
	"ALTER TABLE site_keys ADD COLUMN retiring_at INTEGER;"
	"UPDATE site_keys SET max_exp = NULL;",
	/* 4 -> 5: enrollment history (append-only) and idempotent renewal
	 * (site/registration/registration.c) */
	"CREATE TABLE registrations ("
	"  device_guid TEXT NOT NULL, cert_thumbprint TEXT NOT NULL,"
	"  via TEXT NOT NULL, bulk_guid TEXT, peer TEXT NOT NULL, at INTEGER NOT NULL);"
	"CREATE INDEX registrations_bulk ON registrations (bulk_guid);"
	"CREATE INDEX registrations_device ON registrations (device_guid);"
	"INSERT INTO registrations (device_guid, cert_thumbprint, via, bulk_guid, peer, at)"
	"  SELECT guid, cert_thumbprint, via, bulk_guid, '', registered_at FROM devices;"
	"ALTER TABLE devices ADD COLUMN prev_token_jti TEXT;"
	"ALTER TABLE devices ADD COLUMN token_used INTEGER NOT NULL DEFAULT 1;",
	/* 5 -> 6: a key row is trusted only through an endorsement by an
	 * already trusted key (site/keys/keytrust.c); nothing is endorsed here */
	"ALTER TABLE site_keys ADD COLUMN endorsed_by TEXT;"
	"ALTER TABLE site_keys ADD COLUMN endorsement TEXT;"
	/* and a structured second subject for audit records (the bulk token
	 * a registration used), hashed when set */
	"ALTER TABLE audit ADD COLUMN ref TEXT NOT NULL DEFAULT '';"
	/* and the TPM NV counter value a checkpoint was signed with */
	"ALTER TABLE audit_checkpoints ADD COLUMN counter INTEGER;",
	/* 6 -> 7: attested registration (site/registration/attest_policy.c): manufacturer roots
	 * trusted for device EKs; what each device proved; the per bulk token
	 * policy (NULL: the site default) */
	"CREATE TABLE attest_roots ("
	"  sha256 TEXT PRIMARY KEY, subject TEXT NOT NULL, cert BLOB NOT NULL,"
	"  added_at INTEGER NOT NULL);"
	"ALTER TABLE devices ADD COLUMN attestation TEXT;"
	"ALTER TABLE devices ADD COLUMN ek_sha256 TEXT;"
	"ALTER TABLE bulk_tokens ADD COLUMN require_attestation INTEGER;",
	/* 7 -> 8: bulk token limits (site/bulk/bulk_limits.c): a row per limited token;
	 * max_uses NULL: no use limit; sources '': any network. */
	"CREATE TABLE IF NOT EXISTS bulk_limits ("
	"  guid TEXT PRIMARY KEY, max_uses INTEGER CHECK (max_uses > 0),"
	"  uses INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0),"
	"  sources TEXT NOT NULL DEFAULT '',"
	"  CHECK (max_uses IS NULL OR uses <= max_uses));",
	/* 8 -> 9: trusted OIDC issuers (site/registration/oidc_site.c): jwks holds the JWKS
	 * document in FILE mode, jwks_url the https URL otherwise (jwks_ca: PEM,
	 * '' for the system CAs); endorsement: the site key's signature over the
	 * record (a row the database writer adds is not trusted); and the one
	 * device each issuer + device claim value registered. */
	"CREATE TABLE IF NOT EXISTS oidc_issuers ("
	"  issuer TEXT PRIMARY KEY, audience TEXT NOT NULL, device_claim TEXT NOT NULL,"
	"  tenant TEXT NOT NULL DEFAULT '', jwks_url TEXT NOT NULL DEFAULT '',"
	"  jwks TEXT NOT NULL DEFAULT '', jwks_ca TEXT NOT NULL DEFAULT '',"
	"  added_at INTEGER NOT NULL, endorsed_by TEXT NOT NULL DEFAULT '',"
	"  endorsement TEXT NOT NULL DEFAULT '');"
	"CREATE TABLE IF NOT EXISTS oidc_devices ("
	"  issuer TEXT NOT NULL, device_id TEXT NOT NULL, device_guid TEXT NOT NULL UNIQUE,"
	"  sub TEXT NOT NULL, registered_at INTEGER NOT NULL,"
	"  PRIMARY KEY (issuer, device_id));",
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
	struct site_db *db = s->store;

	return stk_error_set(err, STK_E_DB, db->vt->layer, db->vt->errcode(db),
	    "%s: %s", what, db->vt->errmsg(db));
}

int
site_guid_arg(const char *guid, char g[STK_GUID_LEN + 1], struct stk_error *err)
{
	size_t i;

	g[0] = '\0';
	if (!stk_guid_valid(guid))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "'%.40s' is not a GUID", guid ? guid : "");
	for (i = 0; i <= STK_GUID_LEN; i++)
		g[i] = (char)tolower((unsigned char)guid[i]);
	return STK_OK;
}

int
site_row_get(struct stk_site *s, const char *sql, const char *const *keys,
    int nkeys, const char *what, int (*row)(struct site_stmt *, void *),
    void *arg, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int i, rc = SITE_DB_ERROR, r;

	if (db_prepare(s->store, sql, &st) != 0) {
		r = site_db_error(s, err, what);
		goto out;
	}
	for (i = 0; i < nkeys; i++)
		if (db_bind_text(st, i + 1, keys[i]) != 0)
			break;
	if (i == nkeys)
		rc = db_step(st);
	if (rc == SITE_DB_ROW)
		r = row != NULL ? row(st, arg) : STK_OK;
	else if (rc == SITE_DB_DONE)
		r = STK_E_NOTFOUND;
	else
		r = site_db_error(s, err, what);
out:
	db_finalize(st);
	return r;
}

int
site_exec(struct stk_site *s, const char *sql, struct stk_error *err)
{
	if (db_exec(s->store, sql) != 0)
		return site_db_error(s, err, "database");
	return STK_OK;
}

/* Group commit (stk_site_batch_*): inside a batch, a transaction of this
 * handle is a savepoint of the batch's one transaction. */
int
stk_site_batch_begin(struct stk_site *s, struct stk_error *err)
{
	if (s->batch || s->in_tx)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "a batch cannot start inside a transaction");
	if (s->store->vt->begin_write(s->store) != 0)
		return site_db_error(s, err, "database");
	s->batch = 1;
	s->audit_dirty = 0;
	return STK_OK;
}

int
stk_site_batch_end(struct stk_site *s, struct stk_error *err)
{
	int r = STK_OK, dirty = s->audit_dirty;

	if (!s->batch)
		return STK_OK;
	s->batch = 0;
	s->in_tx = 0;
	if (s->store->vt->commit(s->store) != 0) {
		r = site_db_error(s, err, "database");
		s->store->vt->rollback(s->store);
	} else if (dirty && s->after_commit != NULL)
		s->after_commit(s);   /* as in stk_site_tx_commit */
	s->audit_dirty = 0;
	/* An item that changed what gateways cache is published now, with
	 * the batch (its bump stays marked through the items' savepoints). */
	site_gw_committed(s, r == 0);
	return r;
}

int
stk_site_tx_begin(struct stk_site *s, struct stk_error *err)
{
	if (s->batch) {
		if (s->in_tx)
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "nested transaction in a batch");
		if (db_exec(s->store, "SAVEPOINT stk_batch_item") != 0)
			return site_db_error(s, err, "database");
		s->in_tx = 1;
		return STK_OK;
	}
	/* The write lock is taken now (BEGIN IMMEDIATE, an advisory lock on
	 * PostgreSQL), so two writers queue instead of failing later or
	 * forking the audit chain. */
	if (s->store->vt->begin_write(s->store) != 0)
		return site_db_error(s, err, "database");
	s->in_tx = 1;
	return STK_OK;
}

int
stk_site_tx_commit(struct stk_site *s, struct stk_error *err)
{
	int r = STK_OK;

	if (s->batch) {
		/* Durable with the batch (stk_site_batch_end); the checkpoint
		 * waits for that commit too (audit_dirty is kept). */
		if (db_exec(s->store, "RELEASE SAVEPOINT stk_batch_item") != 0) {
			r = site_db_error(s, err, "database");
			stk_site_tx_rollback(s);
		}
		s->in_tx = 0;
		return r;
	}
	if (s->store->vt->commit(s->store) != 0)
		r = site_db_error(s, err, "database");
	if (r != 0)
		stk_site_tx_rollback(s);
	s->in_tx = 0;
	site_gw_committed(s, r == 0);
	if (r == 0 && s->audit_dirty && s->after_commit != NULL)
		s->after_commit(s);
	s->audit_dirty = 0;
	return r;
}

void
stk_site_tx_rollback(struct stk_site *s)
{
	if (s->batch) {
		/* The item only; what the batch's earlier items did stays. */
		if (s->in_tx && (db_exec(s->store, "ROLLBACK TO SAVEPOINT stk_batch_item") != 0 ||
		    db_exec(s->store, "RELEASE SAVEPOINT stk_batch_item") != 0))
			STK_LOG(STK_LOG_ERROR, "site", "cannot roll back a batch item");
		s->in_tx = 0;
		return;
	}
	if (s->in_tx)
		s->store->vt->rollback(s->store);
	s->in_tx = 0;
	s->audit_dirty = 0;
	site_gw_committed(s, 0);
}

/* Apply the migrations this store has not seen yet. Each runs under the
 * write lock and re-reads the version there, so two nodes opening a new
 * database at once migrate it once. */
static int
site_db_migrate(struct stk_site *s, struct stk_error *err)
{
	struct site_db *db = s->store;
	int version, in_tx = 0, r;
	size_t n = sizeof(site_migrations) / sizeof(site_migrations[0]);

	for (;;) {
		if ((r = stk_site_tx_begin(s, err)) != 0)
			goto out;
		in_tx = 1;
		if (db->vt->get_version(db, &version) != 0) {
			r = site_db_error(s, err, "reading schema version");
			goto out;
		}
		if (version > (int)n) {
			r = stk_error_set(err, STK_E_DB, STK_LAYER_NONE, 0,
			    "site database schema %d is newer than this program (%zu)",
			    version, n);
			goto out;
		}
		if (version == (int)n) {
			r = STK_OK; /* up to date: the rollback ends the read */
			goto out;
		}
		stk_progress("migrating the site database: schema version", version + 1,
		    (long long)n);
		if ((r = site_exec(s, site_migrations[version], err)) != 0)
			goto out;
		if (db->vt->set_version(db, version + 1) != 0) {
			r = site_db_error(s, err, "writing schema version");
			goto out;
		}
		in_tx = 0;
		if ((r = stk_site_tx_commit(s, err)) != 0)
			goto out;
	}
out:
	if (in_tx)
		stk_site_tx_rollback(s);
	return r;
}

/* ---- site.conf: which store holds the site, and this node's name ----
 * key=value lines, mode 0600. Never a password (the store refuses one). */

void
site_conf_clear(struct site_conf *c)
{
	free(c->db);
	free(c->schema);
	free(c->node);
	memset(c, 0, sizeof(*c));
}

/* 0 and an empty conf when there is no site.conf (a plain SQLite site). */
int
site_conf_read(const char *dir, struct site_conf *c, struct stk_error *err)
{
	char path[PATH_MAX], line[2048];
	FILE *f;
	int r = STK_OK;

	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), "%s/site.conf", dir);
	if ((f = fopen(path, "re")) == NULL)
		return errno == ENOENT ? STK_OK : stk_error_set(err, STK_E_IO,
		    STK_LAYER_SYS, (unsigned long)errno, "cannot read %s: %s", path,
		    strerror(errno));
	while (r == 0 && fgets(line, sizeof(line), f) != NULL) {
		char *v, **slot = NULL;

		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if ((v = strchr(line, '=')) == NULL) {
			r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "%s: bad line '%.40s'", path, line);
			break;
		}
		*v++ = '\0';
		if (strcmp(line, "db") == 0)
			slot = &c->db;
		else if (strcmp(line, "schema") == 0)
			slot = &c->schema;
		else if (strcmp(line, "node") == 0)
			slot = &c->node;
		else
			continue; /* newer keys: ignored by this version */
		free(*slot);
		if ((*slot = strdup(v)) == NULL)
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	}
	fclose(f);
	if (r != 0)
		site_conf_clear(c);
	return r;
}

int
site_conf_write(const char *dir, const struct site_conf *c, struct stk_error *err)
{
	char *text = NULL;
	int r;

	if (asprintf(&text, "# sitetoken site configuration. No secrets here: a\n"
	    "# PostgreSQL password goes in a libpq service file or PGPASSFILE.\n"
	    "%s%s%s%s%s%s%s%s%s", c->db ? "db=" : "", c->db ? c->db : "",
	    c->db ? "\n" : "", c->schema ? "schema=" : "", c->schema ? c->schema : "",
	    c->schema ? "\n" : "", c->node ? "node=" : "", c->node ? c->node : "",
	    c->node ? "\n" : "") < 0)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	r = site_write_file(dir, "site.conf", text, strlen(text), 0600, err);
	free(text);
	return r;
}

/* Open the store named by the site's configuration (SQLite site.db in the
 * site directory when there is none). */
int
site_db_open(struct stk_site *s, const struct site_conf *c, int create,
    struct stk_error *err)
{
	const struct site_db_vtable *vt = site_db_find(c->db);
	char path[PATH_MAX];
	int r;

	if (vt == NULL)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "site database '%.40s...' needs a store this build lacks "
		    "(PostgreSQL)", c->db);
	if (vt == &site_db_sqlite) {
		snprintf(path, sizeof(path), "%s/site.db", s->dir);
		r = vt->open(path, NULL, create, &s->store, err);
	} else
		r = vt->open(c->db, c->schema, create, &s->store, err);
	if (r != 0)
		return r;
	return site_db_migrate(s, err);
}

int
site_alloc(const char *dir, struct stk_site **out, struct stk_error *err)
{
	struct stk_site *s;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL || (s->dir = strdup(dir)) == NULL) {
		free(s);
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->refusal_mu, NULL);
	s->kopts.site_dir = s->dir;
	*out = s;
	return STK_OK;
}

int
site_write_file(const char *dir, const char *name, const void *data,
    size_t len, mode_t mode, struct stk_error *err)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "site directory path too long");
	return stk_file_write(path, data, len, mode, err);
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

void
stk_site_forbid_signing(struct stk_site *s)
{
	pthread_mutex_lock(&s->lock);
	/* Reuses the "never present again" latch of a refused PIN. */
	stk_error_set(&s->key_auth_err, STK_E_AUTH, STK_LAYER_NONE, 0,
	    "this site handle verifies only (a gateway worker's handle): it "
	    "does not open the site key");
	pthread_mutex_unlock(&s->lock);
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
site_store_dump(struct stk_site *s, char **out, size_t *len, struct stk_error *err)
{
	static const char *const tables[] = { "site", "bulk_tokens", "audit",
	    "audit_checkpoints", "devices", "settings", "registrations" };
	struct site_stmt *st = NULL;
	char sql[64];
	FILE *f;
	size_t i;
	int c, rc = SITE_DB_DONE, r = STK_OK;

	*out = NULL;
	*len = 0;
	if ((f = open_memstream(out, len)) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	for (i = 0; r == 0 && i < sizeof(tables) / sizeof(tables[0]); i++) {
		snprintf(sql, sizeof(sql), "SELECT * FROM %s", tables[i]);
		if (db_prepare(s->store, sql, &st) != 0) {
			r = site_db_error(s, err, "dumping the store");
			break;
		}
		while ((rc = db_step(st)) == SITE_DB_ROW)
			for (c = 0; c < 16; c++) { /* past the last column: NULL */
				size_t n;
				const void *b;

				if (db_column_is_null(st, c) ||
				    (b = db_column_blob(st, c, &n)) == NULL)
					continue;
				fwrite(b, 1, n, f);
				fputc('\n', f);
			}
		if (rc != SITE_DB_DONE)
			r = site_db_error(s, err, "dumping the store");
		db_finalize(st);
		st = NULL;
	}
	fclose(f);
	if (r != 0) {
		free(*out);
		*out = NULL;
		*len = 0;
	}
	return r;
}

const char *
stk_site_node(const struct stk_site *s)
{
	return s->node ? s->node : SITE_NODE_DEFAULT;
}

const char *
stk_site_store(const struct stk_site *s)
{
	return s->store->vt->name;
}

/* Remove what a failed init created, leaving a pre-existing empty dir. */
void
site_init_cleanup(const char *dir, int made_dir)
{
	static const char *const files[] = { "site.db", "site.db-wal", "site.db-shm",
	    "site.crt", "site.key", ".site.crt.tmp", "site.tpmkey", "site.conf",
	    ".site.conf.tmp", "trust.pem", "trust.pem.tmp", "audit.anchor",
	    "audit.anchor.tmp" };
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

/* A site's schema name on a shared store: "site_" and the GUID's hex. */
void
site_schema_name(const char *guid, char out[48])
{
	size_t o = 0;

	o += (size_t)snprintf(out, 48, "site_");
	for (; *guid && o < 47; guid++)
		if (*guid != '-')
			out[o++] = *guid;
	out[o] = '\0';
}

int
site_exists(const char *dir)
{
	char path[PATH_MAX];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/site.db", dir);
	if (stat(path, &sb) == 0)
		return 1;
	snprintf(path, sizeof(path), "%s/site.conf", dir);
	return stat(path, &sb) == 0;
}

/* The site directory and its logs/ (when there is one yet): owned by this
 * user, not writable by group or others. */
int
site_check_dirs(const char *dir, struct stk_error *err)
{
	char path[PATH_MAX];
	struct stat sb;
	int r;

	if ((r = stk_dir_check_private(dir, "site directory", err)) != 0)
		return r;
	snprintf(path, sizeof(path), "%s/logs", dir);
	if (lstat(path, &sb) != 0 && errno == ENOENT)
		return STK_OK;
	return stk_dir_check_private(path, "log directory", err);
}
