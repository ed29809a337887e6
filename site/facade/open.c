/* The site's facade: make a site (init), open one, join one as a node (node
 * add), close. The only code of site/ that calls every layer below it
 * (site/README.md). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sitetoken/cert.h"
#include "sitetoken/file.h"
#include "sitetoken/log.h"
#include "site_int.h"

static void site_node_cleanup(const char *dir, int made_dir);

/* The site directory and its logs/ (mode 0700). *made_dir says whether
 * the directory was created here, so a failed init can remove it. */
static int
site_dir_make(const char *dir, int *made_dir, struct stk_error *err)
{
	char path[PATH_MAX];

	*made_dir = 0;
	if (mkdir(dir, 0700) == 0)
		*made_dir = 1;
	else if (errno != EEXIST)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot create site directory %s: %s", dir, strerror(errno));
	snprintf(path, sizeof(path), "%s/logs", dir);
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot create %s: %s", path, strerror(errno));
	return STK_OK;
}

int
stk_site_init(const char *dir, const struct stk_site_init_opts *opts,
    struct stk_site **out, struct stk_error *err)
{
	struct stk_site *s = NULL;
	struct stk_key_opts ko;
	struct stk_key *key = NULL;
	struct site_conf conf;
	const struct site_db_vtable *vt;
	char *uri = NULL, *pem = NULL, kid[44], schema[48];
	EVP_PKEY *pub = NULL;
	struct site_stmt *st = NULL;
	enum stk_key_type type = opts->key_type ? opts->key_type : STK_KEY_RSA2048;
	int r, made_dir = 0, made_store = 0;
	int64_t now = stk_now();
	const char *dbconn = opts->db ? opts->db : getenv("SITETOKEN_DB");

	*out = NULL;
	memset(&conf, 0, sizeof(conf));
	if (site_exists(dir))
		return stk_error_set(err, STK_E_EXISTS, STK_LAYER_NONE, 0,
		    "a site already exists in %s", dir);
	if ((vt = site_db_find(dbconn)) == NULL)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "site database: this build has no PostgreSQL store");
	if (vt->check_conninfo != NULL && (r = vt->check_conninfo(dbconn, err)) != 0)
		return r;
	if ((r = site_dir_make(dir, &made_dir, err)) != 0)
		goto out;
	if ((r = site_alloc(dir, &s, err)) != 0)
		goto out;
	s->after_commit = site_audit_after_commit;
	if (stk_guid_new(s->guid) != 0) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0, "no random bytes");
		goto out;
	}
	if (vt != &site_db_sqlite && dbconn != NULL) {
		const char *sch = opts->db_schema ? opts->db_schema :
		    getenv("SITETOKEN_DB_SCHEMA");

		if (sch == NULL || *sch == '\0') {
			site_schema_name(s->guid, schema);
			sch = schema;
		}
		if ((conf.db = strdup(dbconn)) == NULL || (conf.schema = strdup(sch)) == NULL ||
		    (conf.node = strdup(SITE_NODE_DEFAULT)) == NULL) {
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
			goto out;
		}
	}
	stk_site_set_key_opts(s, &opts->key);
	ko = s->kopts;
	if ((r = stk_key_generate(opts->backend ? opts->backend : "file",
	    opts->key_uri, type, &ko, &key, &uri, err)) != 0)
		goto out;
	if ((r = stk_cert_make_site(key, s->guid, now, SITE_CERT_DAYS, &s->cert,
	    &s->cert_len, err)) != 0)
		goto out;
	if ((r = stk_key_get_public(key, &pub, err)) != 0)
		goto out;
	if (stk_pkey_kid(pub, kid) != 0) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0, "cannot compute kid");
		goto out;
	}
	if (stk_cert_der_to_pem(s->cert, s->cert_len, &pem) != 0) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0, "cannot encode certificate");
		goto out;
	}
	if ((r = site_write_file(dir, "site.crt", pem, strlen(pem), 0644, err)) != 0 ||
	    (r = site_trust_add_root(s, s->cert, s->cert_len, err)) != 0)
		goto out;
	if (conf.db != NULL && (r = site_conf_write(dir, &conf, err)) != 0)
		goto out;
	if ((r = site_db_open(s, &conf, 1, err)) != 0) {
		made_store = s->store != NULL;
		goto out;
	}
	made_store = 1;
	if ((s->backend = strdup(key->vt->name)) == NULL || (s->key_uri = strdup(uri)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	s->key_type = type;
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	if (db_prepare(s->store, "INSERT INTO site (id, tenant, backend, key_uri,"
	    " key_type, cert, kid, created_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
	    &st) != 0) {
		r = site_db_error(s, err, "recording the site");
		goto out;
	}
	if (db_bind_text(st, 1, s->guid) != 0 ||
	    db_bind_text(st, 2, s->backend) != 0 ||
	    db_bind_text(st, 3, s->key_uri) != 0 ||
	    db_bind_text(st, 4, stk_key_type_name(type)) != 0 ||
	    db_bind_blob(st, 5, s->cert, s->cert_len) != 0 ||
	    db_bind_text(st, 6, kid) != 0 ||
	    db_bind_int64(st, 7, now) != 0 ||
	    db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "recording the site");
		goto out;
	}
	db_finalize(st);
	st = NULL;
	if ((r = site_keys_insert(s, kid, stk_site_node(s), s->backend, s->key_uri,
	    type, s->cert, s->cert_len, now, err)) != 0)
		goto out;
	snprintf(s->kid, sizeof(s->kid), "%s", kid);
	s->key = key;
	key = NULL;
	if ((r = stk_audit_append(s, opts->actor ? opts->actor : "admin",
	    "site.init", s->guid, "ok", stk_key_type_name(type), err)) != 0)
		goto out;
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	/* The first checkpoint anchors the chain to the site key. */
	if ((r = stk_audit_checkpoint(s, err)) != 0)
		goto out;
	STK_LOG(STK_LOG_INFO, "site", "site %s initialised with %s key (%s), %s store",
	    s->guid, s->backend, stk_key_type_name(type), s->store->vt->name);
	r = STK_OK;
out:
	db_finalize(st);
	if (r != 0 && s != NULL)
		stk_site_tx_rollback(s);
	if (r != 0 && made_store && s->store->vt->drop != NULL)
		s->store->vt->drop(s->store);
	stk_key_close(key);
	free(uri);
	free(pem);
	EVP_PKEY_free(pub);
	site_conf_clear(&conf);
	if (r != 0) {
		stk_site_close(s);
		site_init_cleanup(dir, made_dir);
	} else
		*out = s;
	return r;
}

int
stk_site_open(const char *dir, struct stk_site **out, struct stk_error *err)
{
	struct stk_site *s = NULL;
	struct site_stmt *st = NULL;
	struct site_conf conf;
	const void *blob;
	const char *t;
	size_t n;
	int r;

	*out = NULL;
	memset(&conf, 0, sizeof(conf));
	if (!site_exists(dir))
		return stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_SYS, (unsigned long)ENOENT,
		    "no site in %s (run 'sitetoken site init' first)", dir);
	/* Another local user must not be able to swap the site's files
	 * (threat model, attacker 5). */
	if ((r = site_check_dirs(dir, err)) != 0)
		return r;
	if ((r = site_conf_read(dir, &conf, err)) != 0)
		goto out;
	if ((r = site_alloc(dir, &s, err)) != 0)
		goto out;
	s->after_commit = site_audit_after_commit;
	if (conf.node != NULL && (s->node = strdup(conf.node)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	if ((r = site_db_open(s, &conf, 0, err)) != 0)
		goto out;
	if (db_prepare(s->store, "SELECT tenant, backend, key_uri, key_type, cert"
	    " FROM site WHERE id = 1", &st) != 0) {
		r = site_db_error(s, err, "reading the site");
		goto out;
	}
	if ((r = db_step(st)) != SITE_DB_ROW) {
		r = r == SITE_DB_DONE ? stk_error_set(err, STK_E_DB, STK_LAYER_NONE, 0,
		    "site database of %s has no site record", dir) :
		    site_db_error(s, err, "reading the site");
		goto out;
	}
	t = db_column_text(st, 0);
	snprintf(s->guid, sizeof(s->guid), "%s", t ? t : "");
	s->backend = strdup((t = db_column_text(st, 1)) ? t : "");
	s->key_uri = strdup((t = db_column_text(st, 2)) ? t : "");
	s->key_type = stk_key_type_parse((t = db_column_text(st, 3)) ? t : "");
	blob = db_column_blob(st, 4, &n);
	if (s->backend == NULL || s->key_uri == NULL || n == 0 || blob == NULL ||
	    (s->cert = malloc(n)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	memcpy(s->cert, blob, n);
	s->cert_len = n;
	db_finalize(st);
	st = NULL;
	/* A node signs with its own key, not the one site init made. */
	if ((r = site_keys_open(s, err)) != 0)
		goto out;
	r = STK_OK;
out:
	db_finalize(st);
	site_conf_clear(&conf);
	if (r != 0)
		stk_site_close(s);
	else
		*out = s;
	return r;
}

void
stk_site_close(struct stk_site *s)
{
	if (s == NULL)
		return;
	if (s->store != NULL)
		site_audit_flush(s, 1);
	free(s->refusals);
	stk_verifier_free(s->verifier);
	stk_signer_free(s->signer);
	stk_key_close(s->key);
	site_keys_free_parked(s);
	free(s->keys_fp);
	if (s->store != NULL)
		s->store->vt->close(s->store);
	free(s->node);
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
site_node_create(const char *dir, const char *db, const char *schema,
    const char *node, struct stk_site **out, int *made_dir, struct stk_error *err)
{
	const struct site_db_vtable *vt = site_db_find(db);
	struct site_conf conf;
	int r;

	*out = NULL;
	*made_dir = 0;
	if (db == NULL || vt == NULL || vt == &site_db_sqlite || schema == NULL ||
	    *schema == '\0')
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "a node joins a site in a shared store: give the PostgreSQL "
		    "connection string and the site's schema (see site.conf)");
	if (vt->check_conninfo != NULL && (r = vt->check_conninfo(db, err)) != 0)
		return r;
	if (site_exists(dir))
		return stk_error_set(err, STK_E_EXISTS, STK_LAYER_NONE, 0,
		    "a site already exists in %s", dir);
	if ((r = site_dir_make(dir, made_dir, err)) != 0)
		goto out;
	conf.db = (char *)db;
	conf.schema = (char *)schema;
	conf.node = (char *)node;
	if ((r = site_conf_write(dir, &conf, err)) != 0 ||
	    (r = stk_site_open(dir, out, err)) != 0)
		goto out;
	r = STK_OK;
out:
	if (r != 0) {
		site_node_cleanup(dir, *made_dir);
		*made_dir = 0;
	}
	return r;
}

static void
site_node_cleanup(const char *dir, int made_dir)
{
	site_init_cleanup(dir, made_dir);
}

int
stk_site_node_add(const char *dir, const struct stk_site_node_opts *o,
    struct stk_site **out, struct stk_error *err)
{
	struct stk_site *s = NULL;
	struct stk_key *key = NULL;
	struct site_stmt *st = NULL;
	unsigned char *cert = NULL;
	size_t cert_len = 0;
	char *uri = NULL, kid[44];
	enum stk_key_type type = o->key_type ? o->key_type : STK_KEY_RSA2048;
	int64_t now = stk_now();
	int r, made_dir = 0, rc;

	*out = NULL;
	if (o->node == NULL || *o->node == '\0' || strlen(o->node) > 63 ||
	    o->node[strspn(o->node, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-")] != '\0')
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "a node needs a name of 1 to 63 letters, digits, '.', '_' or '-'");
	if ((r = site_node_create(dir, o->db, o->db_schema, o->node, &s, &made_dir,
	    err)) != 0)
		return r;
	stk_site_set_key_opts(s, &o->key);
	/* The site's first certificate, as the store holds it now, becomes this
	 * node's root (trust on first use, printed by `node add` so it can be
	 * compared with `site show` on the first node). This node's own key is
	 * trusted by the others once one of them runs `key endorse`.
	 * site_node_create returns 0 only with s set; the analyzer cannot see
	 * that stk_error_set (another file) never returns 0. */
	// NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
	if ((r = site_trust_add_root(s, s->cert, s->cert_len, err)) != 0)
		goto out;
	/* Refuse a node name already in use before making a key. */
	if (db_prepare(s->store, "SELECT count(*) FROM site_keys WHERE node = ?",
	    &st) != 0) {
		r = site_db_error(s, err, "reading the site keys");
		goto out;
	}
	rc = db_bind_text(st, 1, o->node) != 0 ?
	    SITE_DB_ERROR : db_step(st);
	if (rc != SITE_DB_ROW) {
		r = site_db_error(s, err, "reading the site keys");
		goto out;
	}
	if (db_column_int64(st, 0) > 0) {
		r = stk_error_set(err, STK_E_EXISTS, STK_LAYER_NONE, 0,
		    "site %s already has a node named %s", s->guid, o->node);
		goto out;
	}
	db_finalize(st);
	st = NULL;
	stk_progress("node add: making the node's key in its device", 1, 3);
	if ((r = site_make_key(s, o->backend ? o->backend : "file", o->key_uri, type,
	    now, &key, &uri, &cert, &cert_len, kid, err)) != 0)
		goto out;
	stk_progress("node add: registering the key in the site database", 2, 3);
	if ((r = site_write_cert_pem(s, cert, cert_len, err)) != 0)
		goto out;
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	if ((r = site_keys_insert(s, kid, o->node, key->vt->name, uri, type, cert,
	    cert_len, now, err)) != 0 ||
	    (r = stk_audit_append(s, o->actor ? o->actor : "admin", "node.add", o->node,
	    "ok", kid, err)) != 0) {
		stk_site_tx_rollback(s);
		goto out;
	}
	if ((r = stk_site_tx_commit(s, err)) != 0)
		goto out;
	stk_key_close(key);
	key = NULL;
	if ((r = site_keys_refresh(s, 1, err)) != 0)
		goto out;
	stk_progress("node add: done", 3, 3);
	STK_LOG(STK_LOG_INFO, "site", "node %s joined site %s with key %s",
	    o->node, s->guid, kid);
	r = STK_OK;
out:
	db_finalize(st);
	stk_key_close(key);
	free(uri);
	free(cert);
	if (r != 0) {
		stk_site_close(s);
		site_node_cleanup(dir, made_dir);
	} else
		*out = s;
	return r;
}
