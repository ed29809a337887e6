/* The site store interface (site/store/db.h), on SQLite, or on PostgreSQL when
 * SITETOKEN_DB names one (ctest label pg): the common SQL dialect, numbered
 * and unnamed placeholders, blobs with NUL bytes, NULLs, 64-bit integers,
 * changed-row counts, errors, the write lock and schema versions. */
#include <sys/wait.h>
#include "db.h"
#include "testutil.h"

struct fx {
	char *dir;
	char conn[4096];
	char schema[64];
	const struct site_db_vtable *vt;
	struct site_db *db;
};

/* A test on a fresh store with table t (setup), its fixture f. */
#define FX_TEST(name) TU_FX_TEST(struct fx, name)

static int
store_open(struct fx *f, int create, struct site_db **out)
{
	struct stk_error err;
	int r = f->vt->open(f->conn, f->schema, create, out, &err);

	if (r != 0)
		print_error("open: %s\n", err.msg);
	return r;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	const char *pg = getenv("SITETOKEN_DB");
	static int nth; /* each test its own schema */

	f->dir = tu_tmpdir("store");
	if (pg != NULL && *pg != '\0') {
		snprintf(f->conn, sizeof(f->conn), "%s", pg);
		snprintf(f->schema, sizeof(f->schema), "store_test_%ld_%d",
		    (long)getpid(), nth++);
	} else
		snprintf(f->conn, sizeof(f->conn), "%s/store.db", f->dir);
	f->vt = site_db_find(pg);
	assert_non_null(f->vt);
	assert_int_equal(store_open(f, 1, &f->db), 0);
	assert_int_equal(db_exec(f->db, "CREATE TABLE t (id INTEGER PRIMARY KEY,"
	    " name TEXT, n INTEGER, b BLOB)"), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	if (f->vt->drop != NULL)
		f->vt->drop(f->db);
	f->vt->close(f->db);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* The one integer a query returns. */
static int64_t
query_int(struct site_db *db, const char *sql)
{
	struct site_stmt *st;
	int64_t v;

	assert_int_equal(db_prepare(db, sql, &st), 0);
	assert_int_equal(db_step(st), SITE_DB_ROW);
	v = db_column_int64(st, 0);
	db_finalize(st);
	return v;
}

FX_TEST(test_roundtrip)
{
	struct site_stmt *st;
	const unsigned char blob[] = { 0, 1, 2, '\\', 'x', 0xff, 0, '\'' };
	const void *b;
	size_t n;

	assert_int_equal(db_prepare(f->db, "INSERT INTO t (id, name, n, b) VALUES"
	    " (?, ?, ?, ?)", &st), 0);
	db_bind_int64(st, 1, 1);
	db_bind_text(st, 2, "it's '?' here");
	db_bind_int64(st, 3, INT64_C(9007199254740993));
	db_bind_blob(st, 4, blob, sizeof(blob));
	assert_int_equal(db_step(st), SITE_DB_DONE);
	assert_int_equal(db_changes(f->db), 1);
	db_finalize(st);
	/* numbered placeholders, one bound but unused, a NULL */
	assert_int_equal(db_prepare(f->db, "INSERT INTO t (id, name, n, b) VALUES"
	    " (?1, ?2, ?4, NULL)", &st), 0);
	db_bind_int64(st, 1, 2);
	db_bind_text(st, 2, "two");
	db_bind_text(st, 3, "unused");
	db_bind_null(st, 4);
	assert_int_equal(db_step(st), SITE_DB_DONE);
	db_finalize(st);

	assert_int_equal(db_prepare(f->db, "SELECT id, name, n, b FROM t WHERE"
	    " name <> '?' ORDER BY id", &st), 0);
	assert_int_equal(db_step(st), SITE_DB_ROW);
	assert_int_equal(db_column_int64(st, 0), 1);
	assert_string_equal(db_column_text(st, 1), "it's '?' here");
	assert_true(db_column_int64(st, 2) == INT64_C(9007199254740993));
	b = db_column_blob(st, 3, &n);
	assert_int_equal(n, sizeof(blob));
	assert_memory_equal(b, blob, sizeof(blob));
	assert_int_equal(db_step(st), SITE_DB_ROW);
	assert_int_equal(db_column_int64(st, 0), 2);
	assert_true(db_column_is_null(st, 2));
	assert_null(db_column_text(st, 2));
	assert_int_equal(db_column_int64(st, 2), 0);
	assert_true(db_column_is_null(st, 3));
	assert_int_equal(db_step(st), SITE_DB_DONE);
	db_finalize(st);

	/* a blob compared by length (typed as a blob, not ambiguous) */
	assert_int_equal(db_prepare(f->db, "UPDATE t SET n = 7 WHERE id = ?1 AND"
	    " length(?2) > 0", &st), 0);
	db_bind_int64(st, 1, 1);
	db_bind_blob(st, 2, blob, sizeof(blob));
	assert_int_equal(db_step(st), SITE_DB_DONE);
	assert_int_equal(db_changes(f->db), 1);
	db_finalize(st);
	assert_int_equal(db_prepare(f->db, "DELETE FROM t WHERE id = 99", &st), 0);
	assert_int_equal(db_step(st), SITE_DB_DONE);
	assert_int_equal(db_changes(f->db), 0);
	db_finalize(st);
}

/* The same SQL text prepared again (the SQLite store keeps prepared
 * statements per connection) behaves as a fresh statement: no binding or
 * row position carries over, a nested use of a text still in use gets its
 * own statement, a statement left mid-rows does not hold the next use, and
 * more distinct texts than any cache holds still work. */
FX_TEST(test_statement_reuse)
{
	struct site_stmt *a, *b;
	char sql[64];
	int i;

	assert_int_equal(db_exec(f->db, "INSERT INTO t (id, name) VALUES (1, 'one'),"
	    " (2, 'two')"), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(db_prepare(f->db, "SELECT name FROM t WHERE id >="
		    " coalesce(?, 0) ORDER BY id", &a), 0);
		if (i == 0) {
			db_bind_int64(a, 1, 2);
			assert_int_equal(db_step(a), SITE_DB_ROW);
			assert_string_equal(db_column_text(a, 0), "two");
			/* nested: same text while a is in use */
			assert_int_equal(db_prepare(f->db, "SELECT name FROM t WHERE id >="
			    " coalesce(?, 0) ORDER BY id", &b), 0);
			db_bind_int64(b, 1, 1);
			assert_int_equal(db_step(b), SITE_DB_ROW);
			assert_string_equal(db_column_text(b, 0), "one");
			db_finalize(b);
			assert_int_equal(db_step(a), SITE_DB_DONE);
		} else {
			/* the unbound parameter is NULL again: every row */
			assert_int_equal(db_step(a), SITE_DB_ROW);
			assert_string_equal(db_column_text(a, 0), i == 1 ? "one" : "uno");
			if (i == 1) {
				db_finalize(a); /* left mid-rows */
				assert_int_equal(db_exec(f->db, "UPDATE t SET name = 'uno'"
				    " WHERE id = 1"), 0);
				continue;
			}
		}
		db_finalize(a);
	}
	for (i = 0; i < 200; i++) {
		snprintf(sql, sizeof(sql), "SELECT %d + ?", i);
		assert_int_equal(db_prepare(f->db, sql, &a), 0);
		db_bind_int64(a, 1, 1);
		assert_int_equal(db_step(a), SITE_DB_ROW);
		assert_int_equal(db_column_int64(a, 0), i + 1);
		db_finalize(a);
	}
}

FX_TEST(test_errors)
{
	struct site_stmt *st = NULL;

	/* a duplicate key fails at step, with a message on the connection */
	assert_int_equal(db_prepare(f->db, "INSERT INTO t (id) VALUES (?)", &st), 0);
	db_bind_int64(st, 1, 5);
	assert_int_equal(db_step(st), SITE_DB_DONE);
	db_finalize(st);
	assert_int_equal(db_prepare(f->db, "INSERT INTO t (id) VALUES (?)", &st), 0);
	db_bind_int64(st, 1, 5);
	assert_int_equal(db_step(st), SITE_DB_ERROR);
	assert_true(strlen(f->vt->errmsg(f->db)) > 0);
	db_finalize(st);
	assert_int_not_equal(db_exec(f->db, "SELECT * FROM no_such_table"), 0);
	assert_true(strlen(f->vt->errmsg(f->db)) > 0);
	/* a rolled-back write leaves nothing */
	assert_int_equal(f->vt->begin_write(f->db), 0);
	assert_int_equal(db_exec(f->db, "INSERT INTO t (id) VALUES (6)"), 0);
	f->vt->rollback(f->db);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM t WHERE id = 6"), 0);
}

FX_TEST(test_version)
{
	int v = -1;

	assert_int_equal(f->vt->begin_write(f->db), 0);
	assert_int_equal(f->vt->get_version(f->db, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(f->vt->set_version(f->db, 3), 0);
	assert_int_equal(f->vt->commit(f->db), 0);
	assert_int_equal(f->vt->begin_write(f->db), 0);
	assert_int_equal(f->vt->get_version(f->db, &v), 0);
	assert_int_equal(v, 3);
	f->vt->rollback(f->db);
}

/* Two processes increment one counter 50 times each, read-modify-write
 * under begin_write: the lock must make every increment count. */
FX_TEST(test_write_lock)
{
	struct site_stmt *st;
	pid_t pid[2];
	int i, k, status;

	assert_int_equal(db_exec(f->db, "INSERT INTO t (id, n) VALUES (100, 0)"), 0);
	/* No connection crosses fork(): SQLite forbids it. */
	f->vt->close(f->db);
	f->db = NULL;
	for (k = 0; k < 2; k++) {
		if ((pid[k] = fork()) == 0) {
			struct site_db *db = NULL;
			int bad = 0;

			if (store_open(f, 0, &db) != 0)
				_exit(2);
			for (i = 0; i < 50 && !bad; i++) {
				int64_t n = 0;

				if (f->vt->begin_write(db) != 0) {
					bad = 1;
					break;
				}
				if (db_prepare(db, "SELECT n FROM t WHERE id = 100", &st) != 0 ||
				    db_step(st) != SITE_DB_ROW)
					bad = 1;
				else
					n = db_column_int64(st, 0);
				db_finalize(st);
				usleep(200);
				if (!bad && (db_prepare(db, "UPDATE t SET n = ? WHERE id = 100",
				    &st) != 0 || db_bind_int64(st, 1, n + 1) != 0 ||
				    db_step(st) != SITE_DB_DONE))
					bad = 1;
				db_finalize(st);
				if (bad || f->vt->commit(db) != 0)
					bad = 1;
			}
			f->vt->close(db);
			_exit(bad);
		}
		assert_true(pid[k] > 0);
	}
	for (k = 0; k < 2; k++) {
		assert_int_equal(waitpid(pid[k], &status, 0), pid[k]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(store_open(f, 0, &f->db), 0);
	assert_int_equal(query_int(f->db, "SELECT n FROM t WHERE id = 100"), 100);
}

/* The server ends backend pid, and it is gone when this returns (waited
 * for up to 60 s, not guessed with a sleep). */
static void
kill_backend(struct fx *f, int64_t pid)
{
	struct site_db *other = NULL;
	char sql[96];

	assert_int_equal(store_open(f, 0, &other), 0);
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%lld, 60000)::int",
	    (long long)pid);
	assert_int_equal(query_int(other, sql), 1);
	f->vt->close(other);
}

/* PostgreSQL: a connection the server dropped between transactions (restart,
 * failover) is made again for the next statement; inside a transaction the
 * statement fails instead (no half transaction on a new connection). */
FX_TEST(test_reconnect)
{
	if (strcmp(f->vt->name, "postgresql") != 0) {
		/* SQLite has no server connection to lose. */
		assert_int_equal(db_exec(f->db, "SELECT 1"), 0);
		return;
	}
	kill_backend(f, query_int(f->db, "SELECT pg_backend_pid()"));
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM t"), 0);

	assert_int_equal(f->vt->begin_write(f->db), 0);
	kill_backend(f, query_int(f->db, "SELECT pg_backend_pid()"));
	assert_int_not_equal(db_exec(f->db, "INSERT INTO t (id) VALUES (7)"), 0);
	f->vt->rollback(f->db);
	assert_int_equal(db_exec(f->db, "INSERT INTO t (id) VALUES (8)"), 0);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM t"), 1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

TU_MAIN(NULL, NULL,
	T(test_roundtrip),
	T(test_statement_reuse),
	T(test_errors),
	T(test_version),
	T(test_write_lock),
	T(test_reconnect))
