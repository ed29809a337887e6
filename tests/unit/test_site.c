/* Site database, bulk tokens, block list and audit chain (file backend). */
#include <time.h>
#include "sitetoken/certs.h"
#include "sitetoken/site.h"
#include "site_int.h"
#include "site_fixture.h"

/* A test on a fresh site (sf_setup, sf_setup_bulk), its fixture f. */
#define FX_TEST(name) TU_FX_TEST(struct sf_fx, name)

/* The site directory and its key file are private to the site's user. */
FX_TEST(test_init_modes)
{
	struct stat st;
	char p[PATH_MAX];

	assert_int_equal(stat(stk_site_dir(f->s), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(p, sizeof(p), "%s/site.key", stk_site_dir(f->s));
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true(stk_guid_valid(stk_site_guid(f->s)));
}

/* A second init refuses and leaves the site alone: it opens as before. */
FX_TEST(test_init_twice_refused)
{
	struct stk_site *again = NULL, *opened = NULL;
	struct stk_site_init_opts io;
	struct stk_error err;

	memset(&io, 0, sizeof(io));
	io.backend = "file";
	assert_int_equal(stk_site_init(stk_site_dir(f->s), &io, &again, &err), STK_E_EXISTS);
	assert_int_equal(stk_site_open(stk_site_dir(f->s), &opened, &err), 0);
	assert_string_equal(stk_site_guid(opened), stk_site_guid(f->s));
	assert_int_equal(stk_site_key_type(opened), STK_KEY_P256);
	stk_site_close(opened);
}

TU_TEST(test_init_failure_leaves_nothing)
{
	char *dir = tu_tmpdir("site"), sub[PATH_MAX];
	struct stk_site_init_opts io;
	struct stk_site *s = NULL;
	struct stk_error err;
	struct stat st;

	memset(&io, 0, sizeof(io));
	io.backend = "nosuch";
	snprintf(sub, sizeof(sub), "%s/site", dir);
	assert_int_equal(stk_site_init(sub, &io, &s, &err), STK_E_UNSUPPORTED);
	assert_null(s);
	assert_int_not_equal(stat(sub, &st), 0);
	tu_rmrf(dir);
	free(dir);
}

TU_TEST(test_lifetime_parsing)
{
	static const char *const bad[] = { "0", "-1", "-4320", "10081", "99999999999999999999999",
	    "abc", "1.5", "", " 5", "5 ", "+5", "0x10", "1e3" };
	struct stk_error err;
	long m;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		stk_error_clear(&err);
		if (stk_bulk_parse_lifetime(bad[i], &m, &err) != STK_E_ARG)
			fail_msg("lifetime '%s' accepted", bad[i]);
		assert_true(err.msg[0] != '\0');
	}
	assert_int_equal(stk_bulk_parse_lifetime("1", &m, &err), 0);
	assert_int_equal(m, 1);
	assert_int_equal(stk_bulk_parse_lifetime("10080", &m, &err), 0);
	assert_int_equal(m, 10080);
	assert_int_equal(stk_bulk_parse_lifetime("4320", &m, &err), 0);
	assert_int_equal(stk_bulk_parse_lifetime("10081", &m, &err), STK_E_ARG);
	assert_non_null(strstr(err.msg, "over the maximum of 10080"));
	assert_int_equal(stk_bulk_parse_lifetime("0", &m, &err), STK_E_ARG);
	assert_non_null(strstr(err.msg, "at least 1 minute"));
}

/* The fixture's bulk token at time now: 0 or the refusal. */
static int
check(struct sf_fx *f, int64_t now, struct stk_error *err)
{
	struct stk_claims c;
	int r = stk_bulk_check(f->s, f->bulk, strlen(f->bulk), now, &c, err);

	if (r == 0)
		assert_string_equal(c.id, f->rec.guid);
	stk_claims_clear(&c);
	return r;
}

/* A new bulk token lasts 3 days by default and verifies as itself. */
FX_TEST(test_bulk_default_lifetime)
{
	struct stk_error err;

	assert_int_equal(f->rec.exp - f->rec.nbf, 4320 * 60);
	assert_int_equal(check(f, stk_now(), &err), 0);
}

/* A blocked token is recorded as blocked and refused as "blocked". */
FX_TEST(test_bulk_blocked_refused)
{
	struct stk_bulk_record got;
	struct stk_error err;

	assert_int_equal(stk_bulk_set_blocked(f->s, f->rec.guid, 1, "tester", &err), 0);
	assert_int_equal(stk_bulk_get(f->s, f->rec.guid, &got, &err), 0);
	assert_int_equal(got.blocked, 1);
	assert_true(got.blocked_at > 0);
	assert_int_equal(check(f, stk_now(), &err), STK_E_TOKEN_BLOCKED);
	assert_non_null(strstr(err.msg, "is blocked"));
}

/* Blocking twice is harmless; unblocking makes the token work again. */
FX_TEST(test_bulk_unblock)
{
	struct stk_error err;

	assert_int_equal(stk_bulk_set_blocked(f->s, f->rec.guid, 1, "tester", &err), 0);
	assert_int_equal(stk_bulk_set_blocked(f->s, f->rec.guid, 1, "tester", &err), 0);
	assert_int_equal(stk_bulk_set_blocked(f->s, f->rec.guid, 0, "tester", &err), 0);
	assert_int_equal(check(f, stk_now(), &err), 0);
}

/* The same token after its window is refused as expired. */
FX_TEST(test_bulk_expired)
{
	struct stk_error err;

	assert_int_equal(check(f, f->rec.exp + 61, &err), STK_E_TOKEN_EXPIRED);
}

/* Blocking a GUID the site never issued, or no GUID at all. */
FX_TEST(test_bulk_block_unknown)
{
	struct stk_error err;

	assert_int_equal(stk_bulk_set_blocked(f->s, "00000000-0000-4000-8000-000000000000", 1,
	    "tester", &err), STK_E_NOTFOUND);
	assert_int_equal(stk_bulk_set_blocked(f->s, "not-a-guid", 1, "tester", &err), STK_E_ARG);
}

FX_TEST(test_database_never_holds_token)
{
	struct stk_error err;
	char *tok = f->bulk, path[PATH_MAX], *buf, *sig;
	const char *names[] = { "site.db", "site.db-wal" };
	size_t i, n;
	FILE *fp;
	int guid_seen = 0;

	sig = strrchr(tok, '.') + 1;
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", stk_site_dir(f->s), names[i]);
		if ((fp = fopen(path, "rb")) == NULL)
			continue;
		buf = malloc(1 << 24);
		n = fread(buf, 1, (1 << 24) - 1, fp);
		fclose(fp);
		assert_null(memmem(buf, n, tok, strlen(tok)));
		assert_null(memmem(buf, n, sig, 40));
		if (memmem(buf, n, f->rec.guid, strlen(f->rec.guid)) != NULL)
			guid_seen = 1;
		free(buf);
	}
	/* A store other than site.db (PostgreSQL): read every row instead. */
	snprintf(path, sizeof(path), "%s/site.db", stk_site_dir(f->s));
	if (access(path, F_OK) != 0) {
		assert_int_equal(site_store_dump(f->s, &buf, &n, &err), 0);
		assert_null(memmem(buf, n, tok, strlen(tok)));
		assert_null(memmem(buf, n, sig, 40));
		guid_seen = memmem(buf, n, f->rec.guid, strlen(f->rec.guid)) != NULL;
		free(buf);
	}
	/* the record is there (so we read the right bytes), the token is not */
	assert_true(guid_seen);
}

/* Issue 13: the verifier held at most 8 keys, and two rotations in one
 * second collided on the key file name. 11 rotations (two with the same
 * clock second, pinned through SITETOKEN_TIME_OFFSET) leave 12 keys, all
 * verifying: a bulk token of each verifies. */
FX_TEST(test_twelve_keys)
{
	struct stk_bulk_record rec;
	struct stk_site_key_row *rows = NULL;
	struct stk_claims c;
	struct stk_error err;
	char *tok[24], kid[64];
	size_t n = 0, i, same = 0;
	int64_t pinned = 0;
	int k, ntok = 0;

	memset(&c, 0, sizeof(c));
	tok[ntok++] = sf_bulk(f->s, 60, &rec);
	for (k = 0; k < 11 || same == 0; k++) {
		char off[32];

		assert_true(k < 20);
		/* Rotations 5 and 6 (and later ones, until two really shared a
		 * second) run with stk_now() pinned to one second. */
		if (k >= 5) {
			if (pinned == 0)
				pinned = stk_now();
			snprintf(off, sizeof(off), "%lld", (long long)(pinned - time(NULL)));
			setenv("SITETOKEN_TIME_OFFSET", off, 1);
		}
		if (stk_site_key_rotate(f->s, NULL, STK_KEY_NONE, "tester", kid, &err) != 0)
			fail_msg("rotation %d: %s", k + 1, err.msg);
		unsetenv("SITETOKEN_TIME_OFFSET");
		tok[ntok++] = sf_bulk(f->s, 60, &rec);
		assert_int_equal(stk_site_keys_list(f->s, &rows, &n, &err), 0);
		for (i = 1; i < n; i++)
			if (rows[i].created_at == pinned && rows[i - 1].created_at == pinned)
				same = 1;
		free(rows);
		rows = NULL;
	}
	assert_int_equal(stk_site_keys_list(f->s, &rows, &n, &err), 0);
	assert_true(n >= 12);
	for (i = 0; i < n; i++)
		assert_true(rows[i].trusted);
	free(rows);
	for (k = 0; k < ntok; k++) {
		if (stk_site_verify(f->s, tok[k], strlen(tok[k]), STK_TOKEN_BULK, stk_now(),
		    &c, &err) != 0)
			fail_msg("token %d of %d: %s", k + 1, ntok, err.msg);
		stk_claims_clear(&c);
		stk_token_free(tok[k]);
	}
}

/* A verifier snapshot stays usable after the key set changed under it
 * (no parking needed: it holds its own reference). */
FX_TEST(test_snapshot_outlives_rotation)
{
	struct stk_verifier *v1 = NULL, *v2 = NULL;
	struct stk_claims c;
	struct stk_error err;
	char *tok = f->bulk, kid[64];

	memset(&c, 0, sizeof(c));
	assert_int_equal(stk_site_verifier_get(f->s, &v1, &err), 0);
	assert_int_equal(stk_site_key_rotate(f->s, NULL, STK_KEY_NONE, "tester", kid,
	    &err), 0);
	assert_int_equal(stk_site_verifier_get(f->s, &v2, &err), 0);
	assert_ptr_not_equal(v1, v2);
	assert_int_equal(stk_verify(v1, tok, strlen(tok), STK_TOKEN_BULK, stk_now(), &c,
	    &err), 0);
	stk_claims_clear(&c);
	stk_verifier_free(v1);
	assert_int_equal(stk_verify(v2, tok, strlen(tok), STK_TOKEN_BULK, stk_now(), &c,
	    &err), 0);
	stk_claims_clear(&c);
	stk_verifier_free(v2);
}

/* The audit chain verifies, with a checkpoint at init and then one every
 * STK_AUDIT_CHECKPOINT_EVERY records. */
FX_TEST(test_audit_chain_checkpoints)
{
	struct stk_audit_report rep;
	struct stk_bulk_record rec;
	struct stk_error err;
	int i;

	for (i = 0; i < 2 * STK_AUDIT_CHECKPOINT_EVERY; i++)
		stk_token_free(sf_bulk(f->s, 5, &rec));
	assert_int_equal(stk_audit_verify(f->s, &rep, &err), 0);
	assert_int_equal(rep.records, 1 + 2 * STK_AUDIT_CHECKPOINT_EVERY);
	assert_true(rep.checkpoints >= 3);
	assert_string_equal(rep.problem, "");
}

/* An explicit checkpoint covers every record so far. */
FX_TEST(test_audit_explicit_checkpoint)
{
	struct stk_audit_report rep;
	struct stk_bulk_record rec;
	struct stk_error err;

	stk_token_free(sf_bulk(f->s, 5, &rec));
	assert_int_equal(stk_audit_checkpoint(f->s, &err), 0);
	assert_int_equal(stk_audit_verify(f->s, &rep, &err), 0);
	assert_int_equal(rep.last_checkpoint_seq, rep.records);
	assert_string_equal(rep.problem, "");
}

FX_TEST(test_certs_list)
{
	struct stk_bulk_record a, b;
	struct stk_cert_row *rows = NULL;
	struct stk_error err;
	size_t n, i;
	int seen_a = 0, seen_b = 0, seen_site = 0;

	stk_token_free(sf_bulk(f->s, 1, &a));
	stk_token_free(sf_bulk(f->s, 60, &b));
	assert_int_equal(stk_bulk_set_blocked(f->s, b.guid, 1, "tester", &err), 0);
	/* two minutes later the 1-minute token has expired */
	assert_int_equal(stk_certs_list(f->s, stk_now() + 120, &rows, &n, &err), 0);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++) {
		if (strcmp(rows[i].id, a.guid) == 0) {
			seen_a = 1;
			assert_string_equal(rows[i].status, "Expired");
			assert_string_equal(rows[i].type, "Bulk Registration Token");
		} else if (strcmp(rows[i].id, b.guid) == 0) {
			seen_b = 1;
			assert_string_equal(rows[i].status, "Blocked");
		} else {
			seen_site = 1;
			assert_string_equal(rows[i].type, "Site Signing");
			assert_string_equal(rows[i].status, "Active");
			assert_int_equal(strlen(rows[i].id), 40);
		}
	}
	assert_true(seen_a && seen_b && seen_site);
	free(rows);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, sf_setup, sf_teardown)
#define TB(fn) cmocka_unit_test_setup_teardown(fn, sf_setup_bulk, sf_teardown)

TU_MAIN(NULL, NULL,
	T(test_init_modes),
	T(test_init_twice_refused),
	cmocka_unit_test(test_init_failure_leaves_nothing),
	cmocka_unit_test(test_lifetime_parsing),
	TB(test_bulk_default_lifetime),
	TB(test_bulk_blocked_refused),
	TB(test_bulk_unblock),
	TB(test_bulk_expired),
	T(test_bulk_block_unknown),
	TB(test_database_never_holds_token),
	T(test_audit_chain_checkpoints),
	TB(test_audit_explicit_checkpoint),
	T(test_certs_list),
	T(test_twelve_keys),
	TB(test_snapshot_outlives_rotation))
