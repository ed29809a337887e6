/* Read-only site figures for monitoring; see sitetoken/stats.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sitetoken/stats.h"
#include "site_int.h"

static int
stats_count(struct stk_site *s, const char *sql, int64_t *out, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r = STK_OK;

	*out = 0;
	if (db_prepare(s->store, sql, &st) != 0 || db_step(st) != SITE_DB_ROW)
		r = site_db_error(s, err, "counting audit records");
	else
		*out = db_column_int64(st, 0);
	db_finalize(st);
	return r;
}

int
stk_stats_audit_counts(struct stk_site *s, int64_t *records, int64_t *checkpoints,
    struct stk_error *err)
{
	int r;

	*records = *checkpoints = 0;
	if ((r = stats_count(s, "SELECT count(*) FROM audit", records, err)) != 0)
		return r;
	return stats_count(s, "SELECT count(*) FROM audit_checkpoints", checkpoints, err);
}

/* The keys that verify, as verifiers see them: the trusted key list
 * (keys/keytrust.c through stk_site_keys_list), so a row a database writer
 * inserted without an endorsement never shows up as a key that verifies. */
int
stk_stats_keys(struct stk_site *s, struct stk_stats_key **rows, size_t *n,
    struct stk_error *err)
{
	struct stk_site_key_row *kr = NULL;
	struct stk_stats_key *v = NULL;
	size_t kn = 0, cnt = 0, i;
	int r;

	*rows = NULL;
	*n = 0;
	if ((r = stk_site_keys_list(s, &kr, &kn, err)) != 0)
		return r;
	if (kn > 0 && (v = calloc(kn, sizeof(*v))) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	for (i = 0; i < kn; i++) {
		if (!kr[i].trusted || (strcmp(kr[i].status, "active") != 0 &&
		    strcmp(kr[i].status, "retiring") != 0))
			continue;
		snprintf(v[cnt].kid, sizeof(v[cnt].kid), "%s", kr[i].kid);
		snprintf(v[cnt].node, sizeof(v[cnt].node), "%s", kr[i].node);
		snprintf(v[cnt].status, sizeof(v[cnt].status), "%s", kr[i].status);
		v[cnt].cert_not_after = kr[i].cert_not_after;
		v[cnt].not_after = kr[i].not_after;
		cnt++;
	}
	*rows = v;
	*n = cnt;
	v = NULL;
out:
	free(v);
	free(kr);
	return r;
}
