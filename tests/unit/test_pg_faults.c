/* PostgreSQL connection faults under the site (site/store/db_pg.c), injected by
 * wrapping libpq's PQexec (-Wl,--wrap): the connection dies around a
 * registration's COMMIT, or between requests. Runs against the pg fixture's
 * cluster (SITETOKEN_DB). What a device sees: the request fails with a
 * clear "outcome unknown" error, and its retry with the same certificate
 * gets one device (the same GUID when the first attempt did commit), never
 * a second one. */
#include <sys/socket.h>
#include <libpq-fe.h>
#include "site_fixture.h"

/* ---- the fault: what happens to the next COMMIT ---- */
enum { FAULT_NONE, FAULT_ANSWER_LOST, FAULT_NEVER_SENT };
static int fault;
static PGconn *site_conn; /* the site's connection, seen through PQexec */

PGresult *__real_PQexec(PGconn *c, const char *q);
PGresult *__wrap_PQexec(PGconn *c, const char *q);

PGresult *
__wrap_PQexec(PGconn *c, const char *q)
{
	site_conn = c;
	if (fault != FAULT_NONE && strcmp(q, "COMMIT") == 0) {
		int mode = fault;

		fault = FAULT_NONE;
		if (mode == FAULT_ANSWER_LOST) /* the server commits... */
			PQclear(__real_PQexec(c, q));
		/* ...and the connection dies before (or instead of) the answer. */
		shutdown(PQsocket(c), SHUT_RDWR);
	}
	return __real_PQexec(c, q);
}

static int
reg(struct sf_fx *f, struct stk_issued *out, struct stk_error *err)
{
	struct stk_reg_request rq;
	enum stk_refusal reason;

	/* The MP over TLS: the handshake proved the key (proof of possession). */
	sf_tls_request(&rq, STK_VIA_MP, f->cert, f->len, NULL);
	rq.peer = "127.0.0.1";
	return stk_device_register(f->s, &rq, stk_now(), out, &reason, err);
}

/* The connection dies around COMMIT (mode): the device sees an error that
 * says the outcome is unknown; the site holds the device only if the server
 * committed, and the retry (same certificate) reconnects and ends with one
 * device: the first attempt's, or a new one. */
static void
commit_fault(struct sf_fx *f, int mode, int committed)
{
	struct stk_audit_report rep;
	struct stk_issued out;
	struct stk_error err;

	memset(&err, 0, sizeof(err));
	fault = mode;
	assert_int_equal(reg(f, &out, &err), STK_E_DB);
	assert_int_equal(fault, FAULT_NONE); /* it was the COMMIT that failed */
	assert_non_null(strstr(err.msg, "outcome unknown"));
	assert_int_equal(sf_device_count(f->s), committed);
	assert_int_equal(reg(f, &out, &err), 0);
	assert_int_equal(out.new_device, !committed);
	assert_int_equal(sf_device_count(f->s), 1);
	stk_issued_clear(&out);
	assert_int_equal(stk_audit_verify(f->s, &rep, &err), 0);
}

/* The server committed the registration but the answer was lost. */
static void
test_commit_answer_lost(void **state)
{
	commit_fault(*state, FAULT_ANSWER_LOST, 1);
}

/* The connection died before COMMIT reached the server: nothing was
 * committed. */
static void
test_commit_never_sent(void **state)
{
	commit_fault(*state, FAULT_NEVER_SENT, 0);
}

/* The server ends the site's connection between requests (restart, idle
 * timeout, failover): the next request reconnects by itself. */
static void
test_reconnect_between_requests(void **state)
{
	struct sf_fx *f = *state;
	struct stk_issued out;
	struct stk_error err;
	PGconn *other;
	PGresult *res;
	char pid[16], q[80];

	assert_int_equal(reg(f, &out, &err), 0);
	stk_issued_clear(&out);
	assert_non_null(site_conn);
	snprintf(pid, sizeof(pid), "%d", PQbackendPID(site_conn));
	other = PQconnectdb(getenv("SITETOKEN_DB"));
	assert_int_equal(PQstatus(other), CONNECTION_OK);
	/* Gone when this returns (waited for up to 60 s), so the next request
	 * does meet a dead connection. */
	snprintf(q, sizeof(q), "SELECT pg_terminate_backend(%s, 60000)", pid);
	res = PQexec(other, q);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_string_equal(PQgetvalue(res, 0, 0), "t");
	PQclear(res);
	PQfinish(other);
	assert_int_equal(reg(f, &out, &err), 0);
	assert_int_equal(out.new_device, 0);
	stk_issued_clear(&out);
	assert_int_equal(sf_device_count(f->s), 1);
}

/* A site with a device certificate (cert, len) and a bulk token. */
#define T(name) cmocka_unit_test_setup_teardown(name, sf_setup_dev, sf_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_commit_answer_lost),
		T(test_commit_never_sent),
		T(test_reconnect_between_requests),
	};

	if (getenv("SITETOKEN_DB") == NULL) {
		fprintf(stderr, "test_pg_faults needs SITETOKEN_DB (the pg fixture)\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
