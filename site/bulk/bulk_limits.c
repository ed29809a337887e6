/* Limits on a bulk registration token: how many registrations it may make
 * (--max-uses) and from which networks (--source). The token itself stays
 * unchanged and unstored; the limits are site records keyed by its GUID. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sitetoken/bulklimits.h"
#include "site_int.h"

int
stk_bulk_parse_max_uses(const char *s, long *n, struct stk_error *err)
{
	const char *p;
	long v;

	*n = 0;
	if (s == NULL || *s == '\0')
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "--max-uses is empty: give a whole number of registrations (1 to %d)",
		    STK_BULK_MAX_USES_MAX);
	if (*s == '-')
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "--max-uses '%.32s' is negative: give 1 to %d registrations", s,
		    STK_BULK_MAX_USES_MAX);
	for (p = s; *p; p++)
		if (!isdigit((unsigned char)*p))
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "--max-uses '%.32s' is not a whole number of registrations "
			    "(1 to %d)", s, STK_BULK_MAX_USES_MAX);
	errno = 0;
	v = strtol(s, NULL, 10);
	if (errno == ERANGE || v > STK_BULK_MAX_USES_MAX)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "--max-uses %.32s is over the maximum of %d", s, STK_BULK_MAX_USES_MAX);
	if (v < 1)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "--max-uses must be at least 1 (leave it out for no limit)");
	*n = v;
	return STK_OK;
}

/* One CIDR: address bytes (4 or 16) and prefix length. */
struct cidr {
	int af;
	unsigned char a[16];
	int bits;
};

static int
cidr_parse(const char *item, struct cidr *c)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(item, '/');
	size_t alen = slash ? (size_t)(slash - item) : strlen(item);
	int maxbits, i;

	memset(c, 0, sizeof(*c));
	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, item, alen);
	addr[alen] = '\0';
	c->af = strchr(addr, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(c->af, addr, c->a) != 1)
		return -1;
	maxbits = c->af == AF_INET ? 32 : 128;
	c->bits = maxbits;
	if (slash != NULL) {
		const char *p = slash + 1;

		if (*p == '\0' || strlen(p) > 3)
			return -1;
		for (c->bits = 0; *p; p++) {
			if (!isdigit((unsigned char)*p))
				return -1;
			c->bits = c->bits * 10 + (*p - '0');
		}
		if (c->bits > maxbits)
			return -1;
	}
	/* Host bits set ("10.1.2.3/8") is a typo more often than a wish. */
	for (i = c->bits; i < maxbits; i++)
		if (c->a[i / 8] & (0x80 >> (i % 8)))
			return -2;
	return 0;
}

static int
cidr_contains(const struct cidr *c, int af, const unsigned char *a)
{
	int i;

	if (af != c->af)
		return 0;
	for (i = 0; i < c->bits / 8; i++)
		if (a[i] != c->a[i])
			return 0;
	if (c->bits % 8 != 0) {
		unsigned char m = (unsigned char)(0xff << (8 - c->bits % 8));

		if ((a[i] & m) != c->a[i])
			return 0;
	}
	return 1;
}

int
stk_bulk_parse_sources(const char *s, char *out, size_t outlen,
    struct stk_error *err)
{
	char buf[STK_BULK_SOURCES_LEN], *item, *save = NULL;
	size_t used = 0;
	int count = 0, r = STK_OK;

	if (outlen > 0)
		out[0] = '\0';
	if (s == NULL || *s == '\0')
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "--source is empty: give CIDR[,CIDR] (e.g. 192.0.2.0/24,2001:db8::/32)");
	if (strlen(s) >= sizeof(buf))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "--source is too long (at most %d networks)", STK_BULK_SOURCES_MAX);
	if (s[strlen(s) - 1] == ',' || s[0] == ',' || strstr(s, ",,") != NULL)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "--source has an empty network in '%.64s'", s);
	snprintf(buf, sizeof(buf), "%s", s);
	for (item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
		struct cidr c;
		char txt[INET6_ADDRSTRLEN];
		int n, pr;

		if ((pr = cidr_parse(item, &c)) != 0) {
			r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, pr == -2 ?
			    "--source '%.64s' has host bits set after the prefix length" :
			    "--source '%.64s' is not an IPv4 or IPv6 network (ADDRESS[/BITS])",
			    item);
			goto out;
		}
		if (++count > STK_BULK_SOURCES_MAX) {
			r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "--source names more than %d networks", STK_BULK_SOURCES_MAX);
			goto out;
		}
		inet_ntop(c.af, c.a, txt, sizeof(txt));
		n = snprintf(out + used, outlen - used, "%s%s/%d", used ? "," : "", txt, c.bits);
		if (n < 0 || (size_t)n >= outlen - used) {
			r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "--source is too long");
			goto out;
		}
		used += (size_t)n;
	}
out:
	if (r != STK_OK && outlen > 0)
		out[0] = '\0';
	return r;
}

int
stk_bulk_source_match(const char *sources, const char *peer)
{
	char buf[STK_BULK_SOURCES_LEN], *item, *save = NULL;
	unsigned char a[16];
	int af;

	if (sources == NULL || peer == NULL)
		return 0;
	af = strchr(peer, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(af, peer, a) != 1)
		return 0;
	snprintf(buf, sizeof(buf), "%s", sources);
	for (item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
		struct cidr c;

		if (cidr_parse(item, &c) == 0 && cidr_contains(&c, af, a))
			return 1;
	}
	return 0;
}

int
site_bulk_limits_insert(struct stk_site *s, const char *guid,
    const struct stk_bulk_limits *lim, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r = STK_OK;

	if (lim == NULL || (lim->max_uses == 0 && lim->sources[0] == '\0'))
		return STK_OK;
	if (lim->max_uses < 0 || lim->max_uses > STK_BULK_MAX_USES_MAX)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "--max-uses must be 1 to %d", STK_BULK_MAX_USES_MAX);
	if (db_prepare(s->store, "INSERT INTO bulk_limits (guid, max_uses, uses, sources)"
	    " VALUES (?, ?, 0, ?)", &st) != 0)
		return site_db_error(s, err, "recording the bulk token's limits");
	if (db_bind_text(st, 1, guid) != 0 ||
	    (lim->max_uses > 0 ?
	    db_bind_int64(st, 2, lim->max_uses) :
	    db_bind_null(st, 2)) != 0 ||
	    db_bind_text(st, 3, lim->sources) != 0 ||
	    db_step(st) != SITE_DB_DONE)
		r = site_db_error(s, err, "recording the bulk token's limits");
	db_finalize(st);
	return r;
}

int
stk_bulk_limits_get(struct stk_site *s, const char *guid,
    struct stk_bulk_limits *lim, long *uses, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int rc, r = STK_OK;

	memset(lim, 0, sizeof(*lim));
	*uses = 0;
	if (db_prepare(s->store, "SELECT max_uses, uses, sources FROM bulk_limits"
	    " WHERE guid = ?", &st) != 0)
		return site_db_error(s, err, "reading the bulk token's limits");
	rc = db_bind_text(st, 1, guid) != 0 ?
	    SITE_DB_ERROR : db_step(st);
	if (rc == SITE_DB_ROW) {
		lim->max_uses = db_column_is_null(st, 0) ? 0 : (long)db_column_int64(st, 0);
		*uses = (long)db_column_int64(st, 1);
		snprintf(lim->sources, sizeof(lim->sources), "%s",
		    db_column_text(st, 2) ? db_column_text(st, 2) : "");
	} else if (rc != SITE_DB_DONE)
		r = site_db_error(s, err, "reading the bulk token's limits");
	db_finalize(st);
	return r;
}

int
stk_bulk_limits_source_check(struct stk_site *s, const char *guid,
    const char *peer, struct stk_error *err)
{
	struct stk_bulk_limits lim;
	long uses;
	int r;

	if ((r = stk_bulk_limits_get(s, guid, &lim, &uses, err)) != 0)
		return r;
	if (lim.sources[0] == '\0' || stk_bulk_source_match(lim.sources, peer))
		return STK_OK;
	return stk_error_set(err, STK_E_TOKEN_SOURCE, STK_LAYER_TOKEN, 0,
	    "bulk token %s may only be used from %.200s, not from %.64s", guid,
	    lim.sources, peer ? peer : "an unknown address");
}

int
stk_bulk_limits_use(struct stk_site *s, const char *guid, struct stk_error *err)
{
	struct stk_bulk_limits lim;
	struct site_stmt *st = NULL;
	long uses;
	int r = STK_OK;

	/* The WHERE clause is the limit: under the store's write lock (or a
	 * row lock on PostgreSQL) a second registration sees the first's
	 * count, so the last use is taken exactly once. */
	if (db_prepare(s->store, "UPDATE bulk_limits SET uses = uses + 1 WHERE guid = ?"
	    " AND (max_uses IS NULL OR uses < max_uses)", &st) != 0)
		return site_db_error(s, err, "counting the bulk token's use");
	if (db_bind_text(st, 1, guid) != 0 ||
	    db_step(st) != SITE_DB_DONE)
		r = site_db_error(s, err, "counting the bulk token's use");
	else if (db_changes(s->store) == 0) {
		/* No row: no limits. A row left unchanged: used up. */
		if ((r = stk_bulk_limits_get(s, guid, &lim, &uses, err)) == 0 &&
		    lim.max_uses > 0)
			r = stk_error_set(err, STK_E_TOKEN_EXHAUSTED, STK_LAYER_TOKEN, 0,
			    "bulk token %s has been used %ld of %ld times", guid, uses,
			    lim.max_uses);
	}
	db_finalize(st);
	return r;
}
