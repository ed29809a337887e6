/* The gateway's generation of device state (site_gw_*, site_int.h): how a
 * change committed anywhere on the site reaches the gateway cache of every
 * process (registration/tokcache.c holds the cache and says what goes
 * stale; README "Performance" gives the bound).
 *
 * Every transaction that changes what the gateway decides on calls
 * site_gw_bump: it increments the settings row `gateway-generation` in the
 * store (so other processes and nodes see it) and marks the handle; the
 * commit then bumps this process's generation (tc_gen) at once. Cached
 * device state is valid only while it carries the current tc_gen.
 * site_gw_begin, before a cache lookup, reads the store's counter when the
 * handle's last read is SITE_GW_POLL_NS old or older (monotonic clock) and
 * bumps tc_gen when it moved, on the handle's first read, and when the read
 * fails: a request that starts SITE_GW_POLL_NS after a change committed in
 * another process is decided on the new state. Part of the core: the
 * commit (site.c) and every layer that changes state call it. */
#include <stdlib.h>
#include <time.h>
#include "site_int.h"

#define SITE_GW_POLL_NS 1000000000LL  /* the staleness bound across processes */
#define SITE_GW_ROW "gateway-generation"

/* The process's generation of device state (never 0: 0 marks "no state"). */
static uint64_t tc_gen = 1;

uint64_t
site_gw_generation(void)
{
	return __atomic_load_n(&tc_gen, __ATOMIC_ACQUIRE);
}

static void
tc_gen_bump(void)
{
	__atomic_add_fetch(&tc_gen, 1, __ATOMIC_ACQ_REL);
}

static int64_t
tc_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int
site_gw_bump(struct stk_site *s, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r = STK_OK;

	/* PostgreSQL and SQLite both take this spelling; the row lock it takes
	 * is held by a transaction that already holds the site's write lock. */
	if (db_prepare(s->store, "INSERT INTO settings (name, value) VALUES ('"
	    SITE_GW_ROW "', '1') ON CONFLICT (name) DO UPDATE SET value ="
	    " CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT)", &st) != 0 ||
	    db_step(st) != SITE_DB_DONE)
		/* As site_db_error, which site.c (the commit calls us) defines. */
		r = stk_error_set(err, STK_E_DB, s->store->vt->layer,
		    s->store->vt->errcode(s->store), "recording a gateway state change: %s",
		    s->store->vt->errmsg(s->store));
	db_finalize(st);
	if (r == 0)
		s->gw.dirty = 1;
	return r;
}

void
site_gw_committed(struct stk_site *s, int committed)
{
	if (s->gw.dirty && committed)
		tc_gen_bump();
	s->gw.dirty = 0;
}

/* Read the site's generation counter; -1 when it cannot be read. */
static int64_t
tc_read_db_gen(struct stk_site *s)
{
	struct site_stmt *st = NULL;
	const char *v;
	int64_t g = -1;
	int rc;

	if (db_prepare(s->store, "SELECT value FROM settings WHERE name = '"
	    SITE_GW_ROW "'", &st) != 0)
		return -1;
	if ((rc = db_step(st)) == SITE_DB_DONE)
		g = 0;
	else if (rc == SITE_DB_ROW && (v = db_column_text(st, 0)) != NULL)
		g = strtoll(v, NULL, 10);
	db_finalize(st);
	return g;
}

uint64_t
site_gw_begin(struct stk_site *s)
{
	int64_t t = tc_mono_ns(), g;
	uint64_t gen;

	if (!s->gw.polled || t - s->gw.polled_at >= SITE_GW_POLL_NS ||
	    t < s->gw.polled_at) {
		g = tc_read_db_gen(s);
		/* A first read knows nothing of what other handles cached; a
		 * failed read cannot vouch for anything: both invalidate. */
		if (g < 0 || !s->gw.polled || g != s->gw.db_gen)
			tc_gen_bump();
		if (g >= 0) {
			s->gw.db_gen = g;
			s->gw.polled = 1;
			s->gw.polled_at = t;
		}
	}
	gen = site_gw_generation();
	if (gen != s->gw.seen) {
		/* A key retired or restored elsewhere: re-read the key set. */
		if (s->gw.seen != 0)
			s->keys_checked = 0;
		s->gw.seen = gen;
	}
	return gen;
}
