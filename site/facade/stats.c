/* Read-only site figures for monitoring; see sitetoken/stats.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/asn1.h>
#include <openssl/x509.h>
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

int64_t
stk_stats_cert_not_after(const void *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = der != NULL ? d2i_X509(NULL, &p, (long)len) : NULL;
	struct tm tm;
	int64_t t = 0;

	if (x != NULL && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		t = (int64_t)timegm(&tm);
	X509_free(x);
	return t;
}

int
stk_stats_keys(struct stk_site *s, struct stk_stats_key **rows, size_t *n,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	struct stk_stats_key *v = NULL, *row;
	const void *der;
	size_t cap = 0, cnt = 0, dlen = 0;
	int rc, r = STK_OK;

	*rows = NULL;
	*n = 0;
	if (db_prepare(s->store, "SELECT kid, node, status, cert, not_after FROM"
	    " site_keys WHERE status IN ('active', 'retiring') ORDER BY created_at,"
	    " kid", &st) != 0)
		return site_db_error(s, err, "reading the site keys");
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		if (cnt == cap) {
			void *p = realloc(v, (cap = cap ? cap * 2 : 8) * sizeof(*v));

			if (p == NULL) {
				r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0,
				    "out of memory");
				goto out;
			}
			v = p;
		}
		row = &v[cnt++];
		memset(row, 0, sizeof(*row));
#define COL(i, f) snprintf(row->f, sizeof(row->f), "%s", \
	db_column_text(st, i) ? db_column_text(st, i) : "")
		COL(0, kid);
		COL(1, node);
		COL(2, status);
#undef COL
		der = db_column_blob(st, 3, &dlen);
		row->cert_not_after = stk_stats_cert_not_after(der, dlen);
		row->not_after = db_column_int64(st, 4);
	}
	if (rc != SITE_DB_DONE)
		r = site_db_error(s, err, "reading the site keys");
out:
	db_finalize(st);
	if (r != 0) {
		free(v);
		return r;
	}
	*rows = v;
	*n = cnt;
	return STK_OK;
}
