/* Internal to site/: the site store interface.
 *
 * One const vtable per store (curl lib/vtls style), a vtable pointer as the
 * first member of every connection and statement (BearSSL style). The calls
 * mirror SQLite's prepare/bind/step/column so the site code reads the same on
 * every store; a driver maps them onto its own client library.
 *
 * SQL handed to a driver is the common dialect: SQLite syntax that
 * PostgreSQL also accepts, `?` placeholders, INTEGER and BLOB column types.
 * A driver rewrites what its server spells differently (placeholders, types).
 *
 * Errors: a failing call returns non-zero and leaves the message and native
 * code on the connection (db_errmsg/db_errcode), as SQLite does, so callers
 * can say what they were doing when it failed (site_db_error). */
#ifndef SITETOKEN_SITE_DB_H
#define SITETOKEN_SITE_DB_H

#include <stddef.h>
#include <stdint.h>
#include "sitetoken/error.h"

#define SITE_DB_ROW 1   /* step: a row is ready */
#define SITE_DB_DONE 0  /* step: no (more) rows */
#define SITE_DB_ERROR (-1)

struct site_db;
struct site_stmt;

struct site_db_vtable {
	const char *name;        /* "sqlite", "postgresql" */
	enum stk_layer layer; /* layer of db_errcode's native codes */

	/* Open the store. `conninfo` is the driver's connection string (a file
	 * path for SQLite); `schema` names the site's namespace where the store
	 * has one (NULL otherwise); create: make what is missing. */
	int (*open)(const char *conninfo, const char *schema, int create,
	    struct site_db **out, struct stk_error *err);
	void (*close)(struct site_db *db);   /* accepts NULL */
	/* Refuse a connection string that cannot go in site.conf (one that
	 * holds a password). NULL: anything goes. */
	int (*check_conninfo)(const char *conninfo, struct stk_error *err);
	/* Remove everything open(create=1) made (a failed site init). NULL:
	 * the caller removes the files. */
	void (*drop)(struct site_db *db);

	/* One or more statements without parameters or results. */
	int (*exec)(struct site_db *db, const char *sql);

	/* Transactions. begin_write takes the store's exclusive write lock
	 * before it returns, so two writers (threads, processes or nodes)
	 * queue instead of forking the audit chain. begin_read gives one
	 * consistent snapshot for a multi-statement read. */
	int (*begin_write)(struct site_db *db);
	int (*begin_read)(struct site_db *db);
	int (*commit)(struct site_db *db);
	void (*rollback)(struct site_db *db);   /* quiet: nothing to report */

	/* Schema version (migrations applied). Called inside begin_write. */
	int (*get_version)(struct site_db *db, int *version);
	int (*set_version)(struct site_db *db, int version);

	/* Prepared statements: bind (1-based), step, read columns (0-based),
	 * finalize. Bound values are copied. Column values stay valid until the
	 * next step or finalize. */
	int (*prepare)(struct site_db *db, const char *sql, struct site_stmt **out);
	int (*bind_text)(struct site_stmt *st, int i, const char *v);
	int (*bind_int64)(struct site_stmt *st, int i, int64_t v);
	int (*bind_blob)(struct site_stmt *st, int i, const void *v, size_t n);
	int (*bind_null)(struct site_stmt *st, int i);
	int (*step)(struct site_stmt *st);      /* SITE_DB_ROW/DONE/ERROR */
	int (*column_is_null)(struct site_stmt *st, int i);
	int64_t (*column_int64)(struct site_stmt *st, int i);   /* NULL: 0 */
	const char *(*column_text)(struct site_stmt *st, int i); /* NULL: NULL */
	const void *(*column_blob)(struct site_stmt *st, int i, size_t *n);
	void (*finalize)(struct site_stmt *st);  /* accepts NULL */

	/* Rows changed by the last INSERT/UPDATE/DELETE on this connection. */
	int64_t (*changes)(struct site_db *db);
	const char *(*errmsg)(struct site_db *db);
	unsigned long (*errcode)(struct site_db *db);
};

struct site_db { const struct site_db_vtable *vt; };
struct site_stmt { const struct site_db_vtable *vt; };

extern const struct site_db_vtable site_db_sqlite;
extern const struct site_db_vtable site_db_pg;

/* The store for a connection string: "postgresql://...", "postgres://..." or
 * a libpq "key=value" string is PostgreSQL; NULL, "" or "sqlite" is SQLite.
 * NULL when that store is not compiled in. */
const struct site_db_vtable *site_db_find(const char *conninfo);

/* Thin wrappers so callers read like the SQLite API they replace. */
static inline int db_prepare(struct site_db *db, const char *sql, struct site_stmt **st)
{ *st = NULL; return db->vt->prepare(db, sql, st); }
static inline int db_bind_text(struct site_stmt *st, int i, const char *v)
{ return st->vt->bind_text(st, i, v); }
static inline int db_bind_int64(struct site_stmt *st, int i, int64_t v)
{ return st->vt->bind_int64(st, i, v); }
static inline int db_bind_blob(struct site_stmt *st, int i, const void *v, size_t n)
{ return st->vt->bind_blob(st, i, v, n); }
static inline int db_bind_null(struct site_stmt *st, int i)
{ return st->vt->bind_null(st, i); }
static inline int db_step(struct site_stmt *st) { return st->vt->step(st); }
static inline int db_column_is_null(struct site_stmt *st, int i)
{ return st->vt->column_is_null(st, i); }
static inline int64_t db_column_int64(struct site_stmt *st, int i)
{ return st->vt->column_int64(st, i); }
static inline int db_column_int(struct site_stmt *st, int i)
{ return (int)st->vt->column_int64(st, i); }
static inline const char *db_column_text(struct site_stmt *st, int i)
{ return st->vt->column_text(st, i); }
static inline const void *db_column_blob(struct site_stmt *st, int i, size_t *n)
{ return st->vt->column_blob(st, i, n); }
static inline void db_finalize(struct site_stmt *st) { if (st) st->vt->finalize(st); }
static inline int db_exec(struct site_db *db, const char *sql)
{ return db->vt->exec(db, sql); }
static inline int64_t db_changes(struct site_db *db) { return db->vt->changes(db); }

#endif
