/* PostgreSQL store (libpq): one database shared by several site nodes.
 *
 * Each site lives in its own schema (search_path is set on connect), so one
 * PostgreSQL database can hold several sites and tests. The write lock is a
 * transaction-scoped advisory lock keyed by the schema: every writer on every
 * node queues on it, the equivalent of SQLite's BEGIN IMMEDIATE, so the audit
 * chain is appended by one writer at a time and never forks. READ COMMITTED
 * is enough under that lock: every statement after it sees the last commit.
 *
 * The common SQL dialect is rewritten here: `?` placeholders become `$n`,
 * INTEGER becomes BIGINT (times and sequence numbers are 64-bit), BLOB
 * becomes BYTEA. Parameters go as text except blobs (binary); results come
 * back as text and BYTEA columns are unescaped on demand.
 *
 * Passwords never live in the site configuration: use a libpq service file,
 * PGPASSFILE or peer/cert authentication.
 *
 * Failover: with a multi-host string (host=a,b port=p,q
 * target_session_attrs=read-write) libpq connects to whichever server is the
 * primary. A connection found dead between transactions is made again (the
 * next primary) and the statement re-run once; a transaction that loses its
 * connection fails, and the request is refused (the client retries). A
 * standby is refused at open (pg_check_primary). */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libpq-fe.h>
#include "db.h"

#define PG_BYTEAOID 17
#define PG_TEXTOID 25
#define PG_MAXPARAM 32
/* First half of the advisory lock key: "stk" site write lock. */
#define PG_LOCK_CLASS 0x73746b

struct pg_db {
	const struct site_db_vtable *vt;
	PGconn *c;
	char *schema;
	char *setup;             /* SET search_path ..., run on every connect */
	int in_tx;
	int standby;             /* the last reconnect reached a standby */
	char msg[256];
	int64_t changes;
};

struct pg_stmt {
	const struct site_db_vtable *vt;
	struct pg_db *db;
	char *sql;               /* rewritten: $n placeholders */
	int nparams;
	char *vals[PG_MAXPARAM];
	int lens[PG_MAXPARAM];
	int fmts[PG_MAXPARAM];
	Oid types[PG_MAXPARAM];  /* 0: the server infers it */
	unsigned char used[PG_MAXPARAM];
	PGresult *res;
	int row, nrows;
	unsigned char **blobs;   /* unescaped BYTEA values of the current row */
	size_t *blens;
	int nblobs;
};

#define PGD(d) ((struct pg_db *)(d))
#define PGS(s) ((struct pg_stmt *)(s))

static void
pg_set_msg(struct pg_db *d, const char *what, const char *m)
{
	size_t n;

	if (m != d->msg) /* already there (pg_fail_msg) */
		snprintf(d->msg, sizeof(d->msg), "%s%s%s", what ? what : "",
		    what ? ": " : "", m ? m : "unknown error");
	n = strlen(d->msg);
	while (n > 0 && (d->msg[n - 1] == '\n' || d->msg[n - 1] == ' '))
		d->msg[--n] = '\0';
}

/* Copy `sql`, rewriting placeholders (`?` and SQLite's numbered `?NNN`)
 * and type names outside quotes. *nparams: the highest parameter number;
 * used[i] (when not NULL, PG_MAXPARAM entries): parameter i+1 appears. */
static char *
pg_rewrite(const char *sql, int *nparams, unsigned char *used)
{
	size_t len = strlen(sql), cap = len * 2 + 16, o = 0;
	char *out = malloc(cap);
	const char *p = sql;
	char q = 0;
	int n = 0, seq = 0;

	if (out == NULL)
		return NULL;
	while (*p) {
		if (o + 16 >= cap) {
			char *nout = realloc(out, cap *= 2);
			if (nout == NULL) {
				free(out);
				return NULL;
			}
			out = nout;
		}
		if (q) {
			if (*p == q)
				q = 0;
			out[o++] = *p++;
			continue;
		}
		if (*p == '\'' || *p == '"') {
			q = *p;
			out[o++] = *p++;
			continue;
		}
		if (*p == '?') {
			int k;

			p++;
			if (isdigit((unsigned char)*p)) {
				for (k = 0; isdigit((unsigned char)*p) && k <= PG_MAXPARAM; p++)
					k = k * 10 + (*p - '0');
			} else
				k = seq + 1;
			seq = k;
			if (k > n)
				n = k;
			if (used != NULL && k >= 1 && k <= PG_MAXPARAM)
				used[k - 1] = 1;
			o += (size_t)snprintf(out + o, cap - o, "$%d", k);
			continue;
		}
		if (isalpha((unsigned char)*p) && (p == sql ||
		    !(isalnum((unsigned char)p[-1]) || p[-1] == '_'))) {
			size_t w = 0;
			while (isalnum((unsigned char)p[w]) || p[w] == '_')
				w++;
			if (w == 7 && strncasecmp(p, "INTEGER", 7) == 0) {
				memcpy(out + o, "BIGINT", 6);
				o += 6;
			} else if (w == 4 && strncasecmp(p, "BLOB", 4) == 0) {
				memcpy(out + o, "BYTEA", 5);
				o += 5;
			} else {
				if (o + w + 16 >= cap) {
					char *nout = realloc(out, cap = cap * 2 + w);
					if (nout == NULL) {
						free(out);
						return NULL;
					}
					out = nout;
				}
				memcpy(out + o, p, w);
				o += w;
			}
			p += w;
			continue;
		}
		out[o++] = *p++;
	}
	out[o] = '\0';
	*nparams = n;
	return out;
}

static int pg_check_primary(struct pg_db *d, struct stk_error *err);

/* Connect again (with a multi-host string: to whichever server is the
 * primary now). A server that turned out to be a standby is not used: the
 * connection is marked and made again before the next statement. */
static int
pg_reconnect(struct pg_db *d)
{
	struct stk_error e;

	PQreset(d->c);
	if (PQstatus(d->c) != CONNECTION_OK) {
		pg_set_msg(d, "reconnecting to the site database", PQerrorMessage(d->c));
		return -1;
	}
	memset(&e, 0, sizeof(e));
	if (pg_check_primary(d, &e) != 0) {
		d->standby = 1;
		pg_set_msg(d, NULL, e.msg);
		return -1;
	}
	d->standby = 0;
	PQclear(PQexec(d->c, d->setup));
	return 0;
}

/* The message for a failed call: the result's, else the connection's. */
static const char *
pg_fail_msg(struct pg_db *d, const PGresult *res)
{
	if (res != NULL)
		return PQresultErrorMessage(res);
	return d->standby || PQstatus(d->c) == CONNECTION_BAD ? d->msg :
	    PQerrorMessage(d->c);
}

/* Run one statement (params < 0: PQexec, several statements allowed). A
 * connection lost between transactions (server restart, failover, idle
 * timeout) is made again once and the statement re-run; inside a
 * transaction the statement fails and the caller rolls back. NULL: no
 * connection (d->msg says why). */
static PGresult *
pg_query(struct pg_db *d, const char *sql, int nparams, const Oid *types,
    const char *const *vals, const int *lens, const int *fmts)
{
	PGresult *res;
	int again;

	if (d->standby && !d->in_tx && pg_reconnect(d) != 0)
		return NULL;
	for (again = 0;; again++) {
		res = nparams < 0 ? PQexec(d->c, sql) : PQexecParams(d->c, sql,
		    nparams, types, vals, lens, fmts, 0);
		if (again || d->in_tx || PQstatus(d->c) != CONNECTION_BAD)
			return res;
		PQclear(res);
		if (pg_reconnect(d) != 0)
			return NULL;
	}
}

/* Run a command without parameters; 0 on success. */
static int
pg_run(struct pg_db *d, const char *sql)
{
	PGresult *res = pg_query(d, sql, -1, NULL, NULL, NULL, NULL);
	ExecStatusType t = PQresultStatus(res);
	int ok = t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK;

	if (!ok)
		pg_set_msg(d, NULL, pg_fail_msg(d, res));
	PQclear(res);
	return ok ? 0 : -1;
}

/* A hot standby accepts the connection and the reads, then fails the first
 * write (the migration check creates schema_version) with a message that
 * does not say why. Refuse it here, naming the server: a node serving from a
 * standby would also see a block list that lags the primary's. */
static int
pg_check_primary(struct pg_db *d, struct stk_error *err)
{
	PGresult *res = PQexec(d->c, "SELECT pg_is_in_recovery()");
	int r = STK_OK;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		r = stk_error_set(err, STK_E_DB, STK_LAYER_PG, 0,
		    "cannot ask the site database whether it is a standby: %s",
		    PQresultErrorMessage(res));
	else if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		r = stk_error_set(err, STK_E_DB, STK_LAYER_PG, 0,
		    "the site database server %s port %s is a read-only standby "
		    "(pg_is_in_recovery() is true): sitetoken does not migrate, write or "
		    "serve through a standby; connect to the primary, or list every "
		    "server with target_session_attrs=read-write",
		    PQhost(d->c), PQport(d->c));
	PQclear(res);
	return r;
}

static int
pg_open(const char *conninfo, const char *schema, int create,
    struct site_db **out, struct stk_error *err)
{
	struct pg_db *d = NULL;
	char *id = NULL, *sql = NULL;
	int r;

	*out = NULL;
	if (schema == NULL || *schema == '\0') {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "a PostgreSQL site needs a schema name");
		goto out;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->schema = strdup(schema)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	d->vt = &site_db_pg;
	d->c = PQconnectdb(conninfo);
	if (d->c == NULL || PQstatus(d->c) != CONNECTION_OK) {
		/* The message may name host and user, never the password. */
		r = stk_error_set(err, STK_E_DB, STK_LAYER_PG, 0,
		    "cannot connect to the site database: %s",
		    d->c ? PQerrorMessage(d->c) : "out of memory");
		goto out;
	}
	if ((r = pg_check_primary(d, err)) != 0)
		goto out;
	if ((id = PQescapeIdentifier(d->c, schema, strlen(schema))) == NULL ||
	    asprintf(&sql, "SET search_path TO %s; SET client_min_messages TO warning",
	    id) < 0) {
		sql = NULL;
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	if (create) {
		char *mk = NULL;

		/* A new site gets a new schema: never mix with an existing one. */
		if (asprintf(&mk, "CREATE SCHEMA %s", id) < 0) {
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
			goto out;
		}
		r = pg_run(d, mk);
		free(mk);
		if (r != 0) {
			r = stk_error_set(err, STK_E_DB, STK_LAYER_PG, 0,
			    "cannot create schema %s: %s", schema, d->msg);
			goto out;
		}
	}
	if (!create) {
		/* search_path takes a schema that does not exist; the first
		 * statement would then fail with "no schema has been selected to
		 * create in". Say which schema is missing instead. */
		const char *v[1] = { schema };
		PGresult *res = pg_query(d, "SELECT 1 FROM pg_namespace WHERE nspname = $1",
		    1, NULL, v, NULL, NULL);
		int found = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			pg_set_msg(d, NULL, PQresultErrorMessage(res));
		PQclear(res);
		if (!found) {
			r = d->msg[0] != '\0' ? stk_error_set(err, STK_E_DB, STK_LAYER_PG, 0,
			    "database: %s", d->msg) : stk_error_set(err, STK_E_ARG,
			    STK_LAYER_NONE, 0, "the site database has no schema '%.63s': "
			    "check --db-schema (it is the schema= line of the first node's "
			    "site.conf, site_<GUID hex>)", schema);
			goto out;
		}
	}
	if (pg_run(d, sql) != 0) {
		r = stk_error_set(err, STK_E_DB, STK_LAYER_PG, 0, "database: %s", d->msg);
		goto out;
	}
	d->setup = sql;
	sql = NULL;
	*out = (struct site_db *)d;
	d = NULL;
	r = STK_OK;
out:
	PQfreemem(id);
	free(sql);
	if (d != NULL) {
		PQfinish(d->c);
		free(d->schema);
		free(d);
	}
	return r;
}

static int
pg_check_conninfo(const char *conninfo, struct stk_error *err)
{
	PQconninfoOption *opts, *o;
	char *msg = NULL;
	int r = STK_OK;

	if ((opts = PQconninfoParse(conninfo, &msg)) == NULL) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_PG, 0,
		    "bad PostgreSQL connection string: %s", msg ? msg : "out of memory");
		PQfreemem(msg);
		return r;
	}
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL && *o->val)
			r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "the connection string holds a password: put it in a libpq "
			    "service file or PGPASSFILE, not in the site configuration");
	PQconninfoFree(opts);
	return r;
}

static void
pg_drop(struct site_db *db)
{
	struct pg_db *d = PGD(db);
	char *id, *sql = NULL;

	PQclear(PQexec(d->c, "ROLLBACK"));
	if ((id = PQescapeIdentifier(d->c, d->schema, strlen(d->schema))) == NULL)
		return;
	if (asprintf(&sql, "DROP SCHEMA IF EXISTS %s CASCADE", id) >= 0)
		pg_run(d, sql);
	free(sql);
	PQfreemem(id);
}

static void
pg_close(struct site_db *db)
{
	if (db == NULL)
		return;
	PQfinish(PGD(db)->c);
	free(PGD(db)->schema);
	free(PGD(db)->setup);
	free(db);
}

static int
pg_exec(struct site_db *db, const char *sql)
{
	int n, r;
	char *q = pg_rewrite(sql, &n, NULL);

	if (q == NULL) {
		pg_set_msg(PGD(db), NULL, "out of memory");
		return -1;
	}
	r = pg_run(PGD(db), q);
	free(q);
	return r;
}

static int
pg_begin_write(struct site_db *db)
{
	struct pg_db *d = PGD(db);
	const char *v[2];
	char cls[16];
	PGresult *res;
	int ok;

	if (pg_run(d, "BEGIN") != 0)
		return -1;
	d->in_tx = 1;
	snprintf(cls, sizeof(cls), "%d", PG_LOCK_CLASS);
	v[0] = cls;
	v[1] = d->schema;
	res = PQexecParams(d->c, "SELECT pg_advisory_xact_lock($1::int4,"
	    " hashtext($2::text))", 2, NULL, v, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok) {
		pg_set_msg(d, "taking the site write lock", PQresultErrorMessage(res));
		PQclear(res);
		PQclear(PQexec(d->c, "ROLLBACK"));
		d->in_tx = 0;
		return -1;
	}
	PQclear(res);
	return 0;
}

static int
pg_begin_read(struct site_db *db)
{
	if (pg_run(PGD(db), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") != 0)
		return -1;
	PGD(db)->in_tx = 1;
	return 0;
}

static int
pg_commit(struct site_db *db)
{
	struct pg_db *d = PGD(db);
	int r = pg_run(d, "COMMIT");

	/* The connection died while COMMIT was on its way: the server (or,
	 * with synchronous replication, the standby that takes over) may have
	 * the transaction or not. Say so; the site's writes are safe to retry
	 * (a registration is keyed by the certificate, a renewal supersedes). */
	if (r != 0 && PQstatus(d->c) == CONNECTION_BAD) {
		char m[sizeof(d->msg)];

		snprintf(m, sizeof(m), "%s", d->msg);
		pg_set_msg(d, "connection lost during COMMIT, outcome unknown "
		    "(a retry is safe)", m);
	}
	d->in_tx = 0;
	return r;
}

static void
pg_rollback(struct site_db *db)
{
	PQclear(PQexec(PGD(db)->c, "ROLLBACK"));
	PGD(db)->in_tx = 0;
}

static int
pg_get_version(struct site_db *db, int *version)
{
	struct pg_db *d = PGD(db);
	PGresult *res;
	int r = -1;

	*version = 0;
	if (pg_run(d, "CREATE TABLE IF NOT EXISTS schema_version (id INTEGER"
	    " PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)") != 0)
		return -1;
	res = pg_query(d, "SELECT version FROM schema_version WHERE id = 1", -1,
	    NULL, NULL, NULL, NULL);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		pg_set_msg(d, NULL, PQresultErrorMessage(res));
	else {
		if (PQntuples(res) == 1)
			*version = atoi(PQgetvalue(res, 0, 0));
		r = 0;
	}
	PQclear(res);
	return r;
}

static int
pg_set_version(struct site_db *db, int version)
{
	char sql[160];

	snprintf(sql, sizeof(sql), "INSERT INTO schema_version (id, version) VALUES"
	    " (1, %d) ON CONFLICT (id) DO UPDATE SET version = excluded.version",
	    version);
	return pg_run(PGD(db), sql);
}

static void
pg_stmt_reset_row(struct pg_stmt *s)
{
	int i;

	for (i = 0; i < s->nblobs; i++) {
		PQfreemem(s->blobs[i]);
		s->blobs[i] = NULL;
	}
}

static int
pg_prepare(struct site_db *db, const char *sql, struct site_stmt **out)
{
	struct pg_stmt *s;
	int i;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->sql = pg_rewrite(sql, &s->nparams, s->used)) == NULL) {
		free(s);
		pg_set_msg(PGD(db), NULL, "out of memory");
		return -1;
	}
	if (s->nparams > PG_MAXPARAM) {
		free(s->sql);
		free(s);
		pg_set_msg(PGD(db), NULL, "too many parameters");
		return -1;
	}
	s->vt = &site_db_pg;
	s->db = PGD(db);
	/* A parameter the statement never names (SQLite allows binding it)
	 * still needs a type here. */
	for (i = 0; i < s->nparams; i++)
		if (!s->used[i])
			s->types[i] = PG_TEXTOID;
	*out = (struct site_stmt *)s;
	return 0;
}

static int
pg_bind(struct pg_stmt *s, int i, const void *v, size_t n, int binary)
{
	char *copy = NULL;

	if (i < 1 || i > s->nparams || n > INT32_MAX)
		return -1;
	if (v != NULL) {
		if ((copy = malloc(n + 1)) == NULL)
			return -1;
		memcpy(copy, v, n);
		copy[n] = '\0';
	}
	free(s->vals[i - 1]);
	s->vals[i - 1] = copy;
	s->lens[i - 1] = (int)n;
	s->fmts[i - 1] = binary;
	/* Binary values are BYTEA: say so, or length(?) and friends are
	 * ambiguous. */
	if (binary)
		s->types[i - 1] = PG_BYTEAOID;
	return 0;
}

static int
pg_bind_text(struct site_stmt *st, int i, const char *v)
{
	return pg_bind(PGS(st), i, v, v ? strlen(v) : 0, 0);
}

static int
pg_bind_int64(struct site_stmt *st, int i, int64_t v)
{
	char b[24];

	snprintf(b, sizeof(b), "%" PRId64, v);
	return pg_bind(PGS(st), i, b, strlen(b), 0);
}

static int
pg_bind_blob(struct site_stmt *st, int i, const void *v, size_t n)
{
	return pg_bind(PGS(st), i, v ? v : "", n, 1);
}

static int
pg_bind_null(struct site_stmt *st, int i)
{
	return pg_bind(PGS(st), i, NULL, 0, 0);
}

static int
pg_step(struct site_stmt *st)
{
	struct pg_stmt *s = PGS(st);
	ExecStatusType t;

	pg_stmt_reset_row(s);
	if (s->res == NULL) {
		s->res = pg_query(s->db, s->sql, s->nparams, s->types,
		    (const char *const *)s->vals, s->lens, s->fmts);
		t = PQresultStatus(s->res);
		if (t == PGRES_COMMAND_OK) {
			const char *n = PQcmdTuples(s->res);
			s->db->changes = n && *n ? strtoll(n, NULL, 10) : 0;
			s->nrows = 0;
		} else if (t == PGRES_TUPLES_OK) {
			s->nrows = PQntuples(s->res);
		} else {
			pg_set_msg(s->db, NULL, pg_fail_msg(s->db, s->res));
			return SITE_DB_ERROR;
		}
		s->row = -1;
	}
	if (PQresultStatus(s->res) != PGRES_COMMAND_OK &&
	    PQresultStatus(s->res) != PGRES_TUPLES_OK)
		return SITE_DB_ERROR;
	if (s->row + 1 < s->nrows) {
		s->row++;
		return SITE_DB_ROW;
	}
	s->row = s->nrows;
	return SITE_DB_DONE;
}

static int
pg_cell_ok(struct pg_stmt *s, int i)
{
	return s->res != NULL && s->row >= 0 && s->row < s->nrows &&
	    i >= 0 && i < PQnfields(s->res);
}

static int
pg_column_is_null(struct site_stmt *st, int i)
{
	struct pg_stmt *s = PGS(st);

	return !pg_cell_ok(s, i) || PQgetisnull(s->res, s->row, i);
}

static int64_t
pg_column_int64(struct site_stmt *st, int i)
{
	struct pg_stmt *s = PGS(st);

	if (pg_column_is_null(st, i))
		return 0;
	return strtoll(PQgetvalue(s->res, s->row, i), NULL, 10);
}

static const char *
pg_column_text(struct site_stmt *st, int i)
{
	struct pg_stmt *s = PGS(st);

	if (pg_column_is_null(st, i))
		return NULL;
	return PQgetvalue(s->res, s->row, i);
}

static const void *
pg_column_blob(struct site_stmt *st, int i, size_t *n)
{
	struct pg_stmt *s = PGS(st);
	*n = 0;
	if (pg_column_is_null(st, i))
		return NULL;
	if (PQftype(s->res, i) != PG_BYTEAOID) {
		*n = (size_t)PQgetlength(s->res, s->row, i);
		return PQgetvalue(s->res, s->row, i);
	}
	if (s->blobs == NULL) {
		s->nblobs = PQnfields(s->res);
		s->blobs = calloc((size_t)s->nblobs, sizeof(*s->blobs));
		s->blens = calloc((size_t)s->nblobs, sizeof(*s->blens));
		if (s->blobs == NULL || s->blens == NULL) {
			free(s->blobs);
			free(s->blens);
			s->blobs = NULL;
			s->blens = NULL;
			s->nblobs = 0;
			return NULL;
		}
	}
	if (s->blobs[i] == NULL)
		s->blobs[i] = PQunescapeBytea((const unsigned char *)
		    PQgetvalue(s->res, s->row, i), &s->blens[i]);
	if (s->blobs[i] == NULL)
		return NULL;
	*n = s->blens[i];
	return s->blobs[i];
}

static void
pg_finalize(struct site_stmt *st)
{
	struct pg_stmt *s = PGS(st);
	int i;

	if (s == NULL)
		return;
	pg_stmt_reset_row(s);
	free(s->blobs);
	free(s->blens);
	for (i = 0; i < PG_MAXPARAM; i++)
		free(s->vals[i]);
	PQclear(s->res);
	free(s->sql);
	free(s);
}

static int64_t pg_changes(struct site_db *db) { return PGD(db)->changes; }
static const char *pg_errmsg(struct site_db *db) { return PGD(db)->msg; }
static unsigned long pg_errcode(struct site_db *db) { (void)db; return 0; }

const struct site_db_vtable site_db_pg = {
	.name = "postgresql",
	.layer = STK_LAYER_PG,
	.open = pg_open,
	.close = pg_close,
	.check_conninfo = pg_check_conninfo,
	.drop = pg_drop,
	.exec = pg_exec,
	.begin_write = pg_begin_write,
	.begin_read = pg_begin_read,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.get_version = pg_get_version,
	.set_version = pg_set_version,
	.prepare = pg_prepare,
	.bind_text = pg_bind_text,
	.bind_int64 = pg_bind_int64,
	.bind_blob = pg_bind_blob,
	.bind_null = pg_bind_null,
	.step = pg_step,
	.column_is_null = pg_column_is_null,
	.column_int64 = pg_column_int64,
	.column_text = pg_column_text,
	.column_blob = pg_column_blob,
	.finalize = pg_finalize,
	.changes = pg_changes,
	.errmsg = pg_errmsg,
	.errcode = pg_errcode,
};
