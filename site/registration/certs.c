/* The certificates view (`sitetoken certs`, the console's Certificates
 * page): the site key certificates of every node and the bulk registration
 * tokens, with their uses, limits and the devices registered with each.
 * Reads only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "sitetoken/bulklimits.h"
#include "sitetoken/certs.h"
#include "registration_int.h"

_Static_assert(sizeof(((struct stk_cert_row *)0)->sources) == STK_BULK_SOURCES_LEN,
    "a certificates row holds a token's normalised --source list");

/* Uses, limit and networks of the bulk rows (site/bulk/bulk_limits.c's table). */
static int
certs_fill_uses(struct stk_site *s, struct stk_cert_row *rows, size_t n,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int rc, r = STK_OK;
	size_t i;

	if (db_prepare(s->store, "SELECT guid, max_uses, uses, sources FROM bulk_limits",
	    &st) != 0) {
		r = site_db_error(s, err, "reading bulk token limits");
		goto out;
	}
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		const char *g = db_column_text(st, 0);

		for (i = 0; g != NULL && i < n; i++) {
			if (strcmp(rows[i].type, STK_CERT_TYPE_BULK) != 0 ||
			    strcmp(rows[i].id, g) != 0)
				continue;
			rows[i].max_uses = db_column_is_null(st, 1) ? 0 :
			    (long)db_column_int64(st, 1);
			rows[i].uses = (long)db_column_int64(st, 2);
			snprintf(rows[i].sources, sizeof(rows[i].sources), "%s",
			    db_column_text(st, 3) ? db_column_text(st, 3) : "");
		}
	}
	if (rc != SITE_DB_DONE)
		r = site_db_error(s, err, "reading bulk token limits");
out:
	db_finalize(st);
	return r;
}

static int64_t
asn1_time_to_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/* One STK_CERT_TYPE_SITE row for a site key certificate. */
static void
cert_row(struct stk_cert_row *row, const unsigned char *der, size_t len,
    const char *state, int64_t now)
{
	const unsigned char *p = der;
	unsigned char md[20];
	X509 *x;

	memset(row, 0, sizeof(*row));
	snprintf(row->type, sizeof(row->type), STK_CERT_TYPE_SITE);
	EVP_Digest(der, len, md, NULL, EVP_sha1(), NULL);
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(row->id + 2 * i, 3, "%02X", md[i]);
	if ((x = d2i_X509(NULL, &p, (long)len)) != NULL) {
		row->valid_from = asn1_time_to_unix(X509_get0_notBefore(x));
		row->valid_to = asn1_time_to_unix(X509_get0_notAfter(x));
		X509_free(x);
	}
	row->created_at = row->valid_from;
	snprintf(row->status, sizeof(row->status), "%s",
	    now >= row->valid_to ? "Expired" : state);
}

static int
cert_rows_grow(struct stk_cert_row **v, size_t *cap, size_t cnt,
    struct stk_error *err)
{
	struct stk_cert_row *nv;

	if (cnt < *cap)
		return STK_OK;
	if ((nv = realloc(*v, *cap * 2 * sizeof(**v))) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	*v = nv;
	*cap *= 2;
	return STK_OK;
}

int
stk_certs_list(struct stk_site *s, int64_t now, struct stk_cert_row **rows,
    size_t *n, struct stk_error *err)
{
	struct stk_cert_row *v = NULL, *row;
	size_t cap = 16, cnt = 0;
	struct site_stmt *st = NULL;
	int rc, r = STK_OK;

	*rows = NULL;
	*n = 0;
	if ((v = calloc(cap, sizeof(*v))) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	/* Every node's key certificate in use (one row on a one-node site). */
	if (db_prepare(s->store, "SELECT cert, status FROM site_keys WHERE status IN"
	    " ('active', 'retiring') ORDER BY created_at, kid", &st) != 0) {
		r = site_db_error(s, err, "reading the site keys");
		goto out;
	}
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		size_t len;
		const void *der = db_column_blob(st, 0, &len);
		const char *status = db_column_text(st, 1);

		if (der == NULL)
			continue;
		if ((r = cert_rows_grow(&v, &cap, cnt, err)) != 0)
			goto out;
		cert_row(&v[cnt++], der, len, status && strcmp(status, "retiring") == 0 ?
		    "Retiring" : "Active", now);
	}
	if (rc != SITE_DB_DONE) {
		r = site_db_error(s, err, "reading the site keys");
		goto out;
	}
	db_finalize(st);
	st = NULL;
	if (cnt == 0)
		cert_row(&v[cnt++], s->cert, s->cert_len, "Active", now);

	if (db_prepare(s->store, "SELECT guid, nbf, exp, created_at, blocked"
	    " FROM bulk_tokens", &st) != 0) {
		r = site_db_error(s, err, "reading bulk tokens");
		goto out;
	}
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		if ((r = cert_rows_grow(&v, &cap, cnt, err)) != 0)
			goto out;
		row = &v[cnt++];
		memset(row, 0, sizeof(*row));
		snprintf(row->type, sizeof(row->type), STK_CERT_TYPE_BULK);
		snprintf(row->id, sizeof(row->id), "%s", db_column_text(st, 0));
		row->valid_from = db_column_int64(st, 1);
		row->valid_to = db_column_int64(st, 2);
		row->created_at = db_column_int64(st, 3);
		snprintf(row->status, sizeof(row->status), "%s", db_column_int(st, 4) ?
		    "Blocked" : now >= row->valid_to ? "Expired" : "Active");
	}
	if (rc != SITE_DB_DONE)
		r = site_db_error(s, err, "reading bulk tokens");
	else
		r = certs_fill_uses(s, v, cnt, err);
	if (r == 0) {
		*rows = v;
		*n = cnt;
		v = NULL;
	}
out:
	db_finalize(st);
	free(v);
	return r;
}

int
stk_certs_count_devices(struct stk_site *s, struct stk_cert_row *rows, size_t n,
    struct stk_error *err)
{
	struct site_stmt *st = NULL;
	long total = 0, cnt;
	const char *g;
	size_t i;
	int rc, r = STK_OK;

	for (i = 0; i < n; i++)
		rows[i].devices = 0;
	/* One grouped pass over the enrollment history (registrations_bulk
	 * index), then map onto the rows. */
	if (db_prepare(s->store, "SELECT bulk_guid, count(DISTINCT device_guid)"
	    " FROM registrations WHERE bulk_guid IS NOT NULL GROUP BY bulk_guid", &st) != 0) {
		r = site_db_error(s, err, "counting devices");
		goto out;
	}
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		g = db_column_text(st, 0);
		cnt = (long)db_column_int64(st, 1);
		if (g == NULL)
			continue;
		for (i = 0; i < n; i++)
			if (strcmp(rows[i].type, STK_CERT_TYPE_SITE) != 0 &&
			    strcmp(rows[i].id, g) == 0)
				rows[i].devices = cnt;
	}
	if (rc != SITE_DB_DONE)
		r = site_db_error(s, err, "counting devices");
	db_finalize(st);
	st = NULL;
	if (r == STK_OK && db_prepare(s->store, "SELECT count(*) FROM devices", &st) != 0)
		r = site_db_error(s, err, "counting devices");
	if (r == STK_OK && db_step(st) == SITE_DB_ROW)
		total = (long)db_column_int64(st, 0);
	else if (r == STK_OK)
		r = site_db_error(s, err, "counting devices");
	for (i = 0; r == STK_OK && i < n; i++)
		if (strcmp(rows[i].type, STK_CERT_TYPE_SITE) == 0)
			rows[i].devices = total;
out:
	db_finalize(st);
	return r;
}
