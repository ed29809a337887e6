/* SQLite store: the embedded default. One file (site.db) in the site
 * directory, WAL, synchronous=FULL; BEGIN IMMEDIATE is the write lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <sqlite3.h>
#include "db.h"

struct sq_stmt {
	const struct site_db_vtable *vt;
	struct sq_db *db;
	sqlite3_stmt *st;
	int cached;        /* lives in db->cache: finalize resets it */
	int busy;          /* cached: handed out, not yet finalized */
	char *sql;         /* cached: the text it was prepared from */
};

/* Prepared statements are kept per connection (the first SQ_CACHE distinct
 * texts): db_prepare of a text seen before hands back the same statement,
 * reset, instead of compiling it again; db_finalize resets and keeps it.
 * A text already handed out (a nested use) gets a fresh statement. */
#define SQ_CACHE 48

struct sq_db {
	const struct site_db_vtable *vt;
	sqlite3 *h;
	char msg[256];     /* last error when SQLite's own is not it */
	int rc;
	pthread_mutex_t cache_mu;  /* the connection is FULLMUTEX: so is this */
	struct sq_stmt cache[SQ_CACHE];
	size_t ncache;
};

#define SQ(d) ((struct sq_db *)(d))
#define SQS(s) ((struct sq_stmt *)(s))

static int
sq_fail(struct sq_db *d, int rc)
{
	d->rc = rc;
	d->msg[0] = '\0';
	return rc == SQLITE_OK ? SQLITE_ERROR : rc;
}

/* Waiting for another connection's write lock (up to about 15 s, as
 * sqlite3_busy_timeout(15000) did): short sleeps first, since the gateway's
 * worker connections (one per thread) and the signing connection hold it
 * for a transaction of a few hundred microseconds; SQLite's own timeout
 * sleeps 1, 2, 5, 10... ms from the first retry. */
static int
sq_busy(void *arg, int count)
{
	(void)arg;
	if (count >= 20 + 90 + 1490)
		return 0;  /* give up: SQLITE_BUSY */
	usleep(count < 20 ? 100 : count < 110 ? 1000 : 10000);
	return 1;
}

static int
sq_open(const char *path, const char *schema, int create, struct site_db **out,
    struct stk_error *err)
{
	struct sq_db *d;
	char *msg = NULL;
	int rc, r;

	(void)schema;
	*out = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	d->vt = &site_db_sqlite;
	pthread_mutex_init(&d->cache_mu, NULL);
	rc = sqlite3_open_v2(path, &d->h, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0), NULL);
	if (rc != SQLITE_OK) {
		r = stk_error_set(err, rc == SQLITE_CANTOPEN ? STK_E_NOTFOUND : STK_E_DB,
		    STK_LAYER_SQLITE, (unsigned long)rc,
		    "cannot open site database %s: %s", path,
		    d->h ? sqlite3_errmsg(d->h) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_busy_handler(d->h, sq_busy, NULL);
	if ((rc = sqlite3_exec(d->h, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	    "PRAGMA foreign_keys=ON;", NULL, NULL, &msg)) != SQLITE_OK) {
		r = stk_error_set(err, STK_E_DB, STK_LAYER_SQLITE, (unsigned long)rc,
		    "database: %s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		goto out;
	}
	*out = (struct site_db *)d;
	r = STK_OK;
out:
	if (r != 0) {
		sqlite3_close_v2(d->h);
		pthread_mutex_destroy(&d->cache_mu);
		free(d);
	}
	return r;
}

static void
sq_close(struct site_db *db)
{
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < SQ(db)->ncache; i++) {
		sqlite3_finalize(SQ(db)->cache[i].st);
		free(SQ(db)->cache[i].sql);
	}
	sqlite3_close_v2(SQ(db)->h);
	pthread_mutex_destroy(&SQ(db)->cache_mu);
	free(db);
}

static int
sq_exec(struct site_db *db, const char *sql)
{
	struct sq_db *d = SQ(db);
	char *msg = NULL;
	int rc = sqlite3_exec(d->h, sql, NULL, NULL, &msg);

	if (rc == SQLITE_OK)
		return 0;
	sq_fail(d, rc);
	/* sqlite3_exec's message is the precise one; keep it. */
	if (msg != NULL)
		strncpy(d->msg, msg, sizeof(d->msg) - 1);
	sqlite3_free(msg);
	return -1;
}

static int sq_begin_write(struct site_db *db) { return sq_exec(db, "BEGIN IMMEDIATE"); }
static int sq_begin_read(struct site_db *db) { return sq_exec(db, "BEGIN"); }
static int sq_commit(struct site_db *db) { return sq_exec(db, "COMMIT"); }
static void sq_rollback(struct site_db *db)
{
	sqlite3_exec(SQ(db)->h, "ROLLBACK", NULL, NULL, NULL);
}

static int
sq_get_version(struct site_db *db, int *version)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*version = 0;
	if ((rc = sqlite3_prepare_v2(SQ(db)->h, "PRAGMA user_version", -1, &st,
	    NULL)) != SQLITE_OK || (rc = sqlite3_step(st)) != SQLITE_ROW) {
		sqlite3_finalize(st);
		sq_fail(SQ(db), rc);
		return -1;
	}
	*version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

static int
sq_set_version(struct site_db *db, int version)
{
	char sql[64];

	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", version);
	return sq_exec(db, sql);
}

static int
sq_prepare(struct site_db *db, const char *sql, struct site_stmt **out)
{
	struct sq_db *d = SQ(db);
	struct sq_stmt *s, *c;
	size_t i;
	int rc;

	pthread_mutex_lock(&d->cache_mu);
	for (i = 0; i < d->ncache; i++) {
		c = &d->cache[i];
		if (!c->busy && strcmp(c->sql, sql) == 0) {
			c->busy = 1;
			pthread_mutex_unlock(&d->cache_mu);
			*out = (struct site_stmt *)c;
			return 0;
		}
	}
	if (d->ncache < SQ_CACHE) {
		c = &d->cache[d->ncache];
		memset(c, 0, sizeof(*c));
		if ((c->sql = strdup(sql)) != NULL &&
		    sqlite3_prepare_v2(d->h, sql, -1, &c->st, NULL) == SQLITE_OK) {
			c->vt = &site_db_sqlite;
			c->db = d;
			c->cached = 1;
			c->busy = 1;
			d->ncache++;
			pthread_mutex_unlock(&d->cache_mu);
			*out = (struct site_stmt *)c;
			return 0;
		}
		free(c->sql);
		sqlite3_finalize(c->st);
		memset(c, 0, sizeof(*c));
	}
	pthread_mutex_unlock(&d->cache_mu);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		sq_fail(SQ(db), SQLITE_NOMEM);
		return -1;
	}
	s->vt = &site_db_sqlite;
	s->db = SQ(db);
	if ((rc = sqlite3_prepare_v2(SQ(db)->h, sql, -1, &s->st, NULL)) != SQLITE_OK) {
		sq_fail(SQ(db), rc);
		free(s);
		return -1;
	}
	*out = (struct site_stmt *)s;
	return 0;
}

static int
sq_bind_text(struct site_stmt *st, int i, const char *v)
{
	return sqlite3_bind_text(SQS(st)->st, i, v, -1, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : -1;
}

static int
sq_bind_int64(struct site_stmt *st, int i, int64_t v)
{
	return sqlite3_bind_int64(SQS(st)->st, i, v) == SQLITE_OK ? 0 : -1;
}

static int
sq_bind_blob(struct site_stmt *st, int i, const void *v, size_t n)
{
	return sqlite3_bind_blob64(SQS(st)->st, i, v, n, SQLITE_TRANSIENT) ==
	    SQLITE_OK ? 0 : -1;
}

static int
sq_bind_null(struct site_stmt *st, int i)
{
	return sqlite3_bind_null(SQS(st)->st, i) == SQLITE_OK ? 0 : -1;
}

static int
sq_step(struct site_stmt *st)
{
	int rc = sqlite3_step(SQS(st)->st);

	if (rc == SQLITE_ROW)
		return SITE_DB_ROW;
	if (rc == SQLITE_DONE)
		return SITE_DB_DONE;
	sq_fail(SQS(st)->db, rc);
	return SITE_DB_ERROR;
}

static int
sq_column_is_null(struct site_stmt *st, int i)
{
	return sqlite3_column_type(SQS(st)->st, i) == SQLITE_NULL;
}

static int64_t
sq_column_int64(struct site_stmt *st, int i)
{
	return sqlite3_column_int64(SQS(st)->st, i);
}

static const char *
sq_column_text(struct site_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(SQS(st)->st, i);
}

static const void *
sq_column_blob(struct site_stmt *st, int i, size_t *n)
{
	const void *p = sqlite3_column_blob(SQS(st)->st, i);

	*n = (size_t)sqlite3_column_bytes(SQS(st)->st, i);
	return p;
}

static void
sq_finalize(struct site_stmt *st)
{
	struct sq_stmt *s = SQS(st);

	if (st == NULL)
		return;
	if (s->cached) {
		sqlite3_reset(s->st);
		sqlite3_clear_bindings(s->st);
		pthread_mutex_lock(&s->db->cache_mu);
		s->busy = 0;
		pthread_mutex_unlock(&s->db->cache_mu);
		return;
	}
	sqlite3_finalize(s->st);
	free(st);
}

static int64_t sq_changes(struct site_db *db) { return sqlite3_changes(SQ(db)->h); }

static const char *
sq_errmsg(struct site_db *db)
{
	struct sq_db *d = SQ(db);

	if (d->msg[0] != '\0')
		return d->msg;
	/* sqlite3_errmsg describes the connection's last failure. */
	return d->rc == SQLITE_NOMEM ? sqlite3_errstr(d->rc) : sqlite3_errmsg(d->h);
}

static unsigned long
sq_errcode(struct site_db *db)
{
	int rc = sqlite3_extended_errcode(SQ(db)->h);

	return (unsigned long)(rc != SQLITE_OK ? rc : SQ(db)->rc);
}

const struct site_db_vtable site_db_sqlite = {
	.name = "sqlite",
	.layer = STK_LAYER_SQLITE,
	.open = sq_open,
	.close = sq_close,
	.exec = sq_exec,
	.begin_write = sq_begin_write,
	.begin_read = sq_begin_read,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.get_version = sq_get_version,
	.set_version = sq_set_version,
	.prepare = sq_prepare,
	.bind_text = sq_bind_text,
	.bind_int64 = sq_bind_int64,
	.bind_blob = sq_bind_blob,
	.bind_null = sq_bind_null,
	.step = sq_step,
	.column_is_null = sq_column_is_null,
	.column_int64 = sq_column_int64,
	.column_text = sq_column_text,
	.column_blob = sq_column_blob,
	.finalize = sq_finalize,
	.changes = sq_changes,
	.errmsg = sq_errmsg,
	.errcode = sq_errcode,
};
