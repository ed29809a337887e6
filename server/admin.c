/* Admin console listener: the certificates view (site certificate and bulk
 * registration tokens) as a page plus a JSON API, over HTTPS.
 *
 * Thin like the MP/CMG: every action calls the same site/ functions as the
 * CLI (stk_certs_list, stk_bulk_parse_lifetime, stk_bulk_new,
 * stk_bulk_set_blocked, stk_audit_foreach), with the admin identity as the
 * audit actor. Only the page's own static files are served without the
 * bearer secret: they are constant, embedded in the binary and carry no site
 * data. Every other request without the right secret is 401 and an audit
 * record. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "sitetoken/attest.h"
#include "sitetoken/bulklimits.h"
#include "sitetoken/certs.h"
#include "sitetoken/device.h"
#include "sitetoken/refusal.h"
#include "sitetoken/token.h"
#include "admin.h"
#include "http.h"

#define ADM_API "/api/v1/"
#define ADM_BODY_MAX 4096
#define ADM_AUDIT_MAX 500 /* records of one token returned, newest kept */

/* default-src 'self' and nothing inline: the page is one HTML file, one
 * stylesheet and one script, all from here. */
#define ADM_CSP "default-src 'self'; script-src 'self'; style-src 'self'; " \
	"img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; " \
	"form-action 'self'; frame-ancestors 'none'"

struct srv_admin {
	struct stk_site *site;
	pthread_mutex_t *site_mu;   /* shared with the MP and CMG */
	struct srv_logs *logs;
	struct MHD_Daemon *d;
	unsigned int port;
	char secret_path[PATH_MAX];
	struct srv_http http;       /* the MHD access handler's cls */
};


/* ---- the secret file ---- */

static int
adm_secret_path(const char *site_dir, char *buf, size_t len, struct stk_error *err)
{
	int n = snprintf(buf, len, "%s/%s", site_dir, ADM_SECRET_FILE);

	if (n < 0 || (size_t)n >= len)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "site directory path too long");
	return STK_OK;
}

/* Read the secret: the file must be ours, regular and not readable by
 * others (as the file key backend insists for site.key). */
static int
adm_secret_read(const char *path, char secret[ADM_SECRET_LEN + 1],
    struct stk_error *err)
{
	char buf[128];
	struct stat st;
	ssize_t n;
	size_t len;
	int fd, r = STK_OK;

	memset(secret, 0, ADM_SECRET_LEN + 1);
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return stk_error_set(err, errno == ENOENT ? STK_E_NOTFOUND : STK_E_IO,
		    STK_LAYER_SYS, (unsigned long)errno, "cannot open %s: %s", path,
		    strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_NONE, 0,
		    "%s is not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0 || st.st_uid != geteuid()) {
		r = stk_error_set(err, STK_E_PERM, STK_LAYER_NONE, 0,
		    "%s must be mode 0600 and owned by this user (chmod 600, or "
		    "`sitetoken admin token --rotate`)", path);
		goto out;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	len = n > 0 ? (size_t)n : 0;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
	    buf[len - 1] == ' '))
		len--;
	if (len != ADM_SECRET_LEN) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_NONE, 0,
		    "%s does not hold an admin secret (`sitetoken admin token --rotate`)",
		    path);
		goto out;
	}
	memcpy(secret, buf, ADM_SECRET_LEN);
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return r;
}

int
srv_admin_secret(const char *site_dir, int rotate, char secret[ADM_SECRET_LEN + 1],
    int *created, struct stk_error *err)
{
	unsigned char raw[ADM_SECRET_BYTES];
	char path[PATH_MAX], tmp[PATH_MAX + 8], line[ADM_SECRET_LEN + 2];
	int fd = -1, r;

	*created = 0;
	memset(secret, 0, ADM_SECRET_LEN + 1);
	if ((r = adm_secret_path(site_dir, path, sizeof(path), err)) != 0)
		return r;
	if (!rotate) {
		r = adm_secret_read(path, secret, err);
		if (r != STK_E_NOTFOUND)
			return r;
		stk_error_clear(err);
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return stk_error_openssl(err, STK_E_CRYPTO, "no random bytes");
	stk_b64url_encode_buf(raw, sizeof(raw), secret);
	OPENSSL_cleanse(raw, sizeof(raw));
	snprintf(line, sizeof(line), "%s\n", secret);
	/* Written aside and renamed over: a reader sees the old or the new
	 * secret, never half of one. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600)) < 0 || write(fd, line, strlen(line)) != (ssize_t)strlen(line) ||
	    fsync(fd) != 0) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) != 0) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	*created = 1;
	r = STK_OK;
out:
	if (r != 0) {
		if (fd >= 0)
			close(fd);
		unlink(tmp);
	}
	OPENSSL_cleanse(line, sizeof(line));
	if (r != 0)
		OPENSSL_cleanse(secret, ADM_SECRET_LEN + 1);
	return r;
}

/* ---- responses ---- */

static void
adm_headers(struct MHD_Response *resp, unsigned int status)
{
	MHD_add_response_header(resp, "Content-Security-Policy", ADM_CSP);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		    "Bearer realm=\"sitetoken-admin\"");
}

/* Every API answer: JSON (srv_reply_json_as) with the headers above. */
static const struct srv_json_style adm_json = {
	"application/json; charset=utf-8", adm_headers
};

/* A refusal: code and status from the one table (sitetoken/refusal.h). */
static enum MHD_Result
adm_refuse(struct MHD_Connection *c, enum stk_refusal why, const char *msg)
{
	const struct stk_refusal_row *row = stk_refusal(why);

	return srv_reply_json_as(c, &adm_json, row->http,
	    json_pack("{s:s, s:s}", "error", row->code,
	    "message", msg != NULL && msg[0] ? msg : row->message));
}

static enum MHD_Result
adm_reply_asset(struct MHD_Connection *c, const struct adm_asset *as)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(as->len, (void *)(uintptr_t)as->data,
	    MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	adm_headers(resp, MHD_HTTP_OK);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, as->type);
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* ---- helpers ---- */

static void
adm_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Check the bearer secret. On success actor gets the admin identity used in
 * the audit log: "admin-console/<first 8 hex of the secret's SHA-256>@peer",
 * so records say which secret (before or after a rotation) acted. */
static int
adm_authenticate(struct srv_admin *a, struct MHD_Connection *c, const char *peer,
    char *actor, size_t alen, const char **why)
{
	unsigned char want[32], got[32];
	char secret[ADM_SECRET_LEN + 1];
	struct stk_error err;
	const char *h;
	size_t n;
	int ok;

	*why = NULL;
	h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
		*why = "no bearer secret";
		return -1;
	}
	h += 7;
	while (*h == ' ')
		h++;
	n = strlen(h);
	/* Read per request: a rotation takes effect at once, without restart. */
	stk_error_clear(&err);
	if (adm_secret_read(a->secret_path, secret, &err) != 0) {
		srv_log(a->logs, SRV_LOG_STS, "AdminConsole", "Admin secret unavailable: %s",
		    err.msg);
		*why = "admin secret unavailable on the server";
		return -1;
	}
	/* Compare digests: constant time and independent of the length sent. */
	EVP_Digest(secret, ADM_SECRET_LEN, want, NULL, EVP_sha256(), NULL);
	EVP_Digest(h, n, got, NULL, EVP_sha256(), NULL);
	OPENSSL_cleanse(secret, sizeof(secret));
	ok = CRYPTO_memcmp(want, got, sizeof(want)) == 0;
	if (!ok) {
		*why = "wrong bearer secret";
		return -1;
	}
	snprintf(actor, alen, "admin-console/%02x%02x%02x%02x@%.39s", want[0], want[1],
	    want[2], want[3], peer);
	return 0;
}

static enum MHD_Result
adm_unauthorized(struct srv_admin *a, struct MHD_Connection *c, const char *method,
    const char *url, const char *peer, const char *why)
{
	struct stk_error err;
	char actor[64], subject[80];

	snprintf(actor, sizeof(actor), "anonymous@%.53s", peer);
	snprintf(subject, sizeof(subject), "%.8s %.70s", method, url);
	stk_error_clear(&err);
	pthread_mutex_lock(a->site_mu);
	if (stk_audit_append(a->site, actor, "admin.auth", subject, "refused", why,
	    &err) != 0)
		srv_log(a->logs, SRV_LOG_STS, "AdminConsole", "Cannot audit a refusal: %s",
		    err.msg);
	pthread_mutex_unlock(a->site_mu);
	srv_log(a->logs, SRV_LOG_STS, "AdminConsole", "Refused %s from %s: %s",
	    subject, peer, why);
	return adm_refuse(c, STK_REFUSAL_UNAUTHORIZED,
	    "the admin bearer secret is required (sitetoken admin token)");
}

/* The refusal for a site call's result. */
static enum stk_refusal
adm_refusal_of(int r)
{
	switch (r) {
	case STK_E_ARG: return STK_REFUSAL_BAD_REQUEST;
	case STK_E_NOTFOUND: return STK_REFUSAL_NOT_FOUND;
	default: return STK_REFUSAL_INTERNAL;
	}
}

/* ---- list ---- */

enum adm_col { COL_TYPE = 0, COL_ID, COL_FROM, COL_TO, COL_STATUS, COL_DEVICES,
    COL_CREATED, COL_COUNT };
static const char *const adm_cols[COL_COUNT] = { "type", "id", "from", "to",
    "status", "devices", "created" };

struct adm_sort {
	int col, desc;
};

#define ADM_CMP(a, b) (((a) > (b)) - ((a) < (b)))

static int
adm_row_cmp(const void *a, const void *b, void *ctx)
{
	const struct stk_cert_row *x = a, *y = b;
	const struct adm_sort *so = ctx;
	int c = 0;

	switch (so->col) {
	case COL_TYPE: c = strcmp(x->type, y->type); break;
	case COL_ID: c = strcasecmp(x->id, y->id); break;
	case COL_FROM: c = ADM_CMP(x->valid_from, y->valid_from); break;
	case COL_TO: c = ADM_CMP(x->valid_to, y->valid_to); break;
	case COL_STATUS: c = strcmp(x->status, y->status); break;
	case COL_DEVICES: c = ADM_CMP(x->devices, y->devices); break;
	case COL_CREATED: c = ADM_CMP(x->created_at, y->created_at); break;
	}
	if (c == 0)
		c = strcasecmp(x->id, y->id);
	return so->desc ? -c : c;
}

/* Same names as `certs list --type`: site, bulk, or the full Type. */
static int
adm_type_filter(const char *want, const char **type)
{
	*type = NULL;
	if (want == NULL || *want == '\0' || strcasecmp(want, "all") == 0)
		return 0;
	if (strcasecmp(want, "bulk") == 0 || strcmp(want, STK_CERT_TYPE_BULK) == 0)
		*type = STK_CERT_TYPE_BULK;
	else if (strcasecmp(want, "site") == 0 || strcmp(want, STK_CERT_TYPE_SITE) == 0)
		*type = STK_CERT_TYPE_SITE;
	else
		return -1;
	return 0;
}

static enum MHD_Result
adm_certs(struct srv_admin *a, struct MHD_Connection *c)
{
	const char *tq = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "type");
	const char *sq = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "sort");
	const char *type;
	struct stk_cert_row *rows = NULL;
	struct stk_error err;
	struct adm_sort so = { COL_TYPE, 0 };
	int64_t now = stk_now();
	size_t n = 0, i;
	json_t *arr;
	int r;

	if (adm_type_filter(tq, &type) != 0)
		return adm_refuse(c, STK_REFUSAL_BAD_REQUEST,
		    "type must be 'site' or 'bulk'");
	if (sq != NULL && *sq != '\0') {
		if (*sq == '-') {
			so.desc = 1;
			sq++;
		}
		for (so.col = 0; so.col < COL_COUNT; so.col++)
			if (strcmp(sq, adm_cols[so.col]) == 0)
				break;
		if (so.col == COL_COUNT)
			return adm_refuse(c, STK_REFUSAL_BAD_REQUEST,
			    "sort must be one of type, id, from, to, status, devices, "
			    "created (prefix '-' for descending)");
	}
	stk_error_clear(&err);
	pthread_mutex_lock(a->site_mu);
	r = stk_certs_list(a->site, now, &rows, &n, &err);
	if (r == 0)
		r = stk_certs_count_devices(a->site, rows, n, &err);
	pthread_mutex_unlock(a->site_mu);
	if (r != 0) {
		free(rows);
		srv_log(a->logs, SRV_LOG_STS, "AdminConsole", "Cannot list certificates: %s",
		    err.msg);
		return adm_refuse(c, STK_REFUSAL_INTERNAL,
		    "cannot read the site; see the server logs");
	}
	qsort_r(rows, n, sizeof(*rows), adm_row_cmp, &so);
	arr = json_array();
	for (i = 0; i < n; i++) {
		char from[32], to[32];

		if (type != NULL && strcmp(rows[i].type, type) != 0)
			continue;
		adm_time(rows[i].valid_from, from, sizeof(from));
		adm_time(rows[i].valid_to, to, sizeof(to));
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I,"
		    " s:I, s:s, s:I, s:I, s:o, s:o}", "type", rows[i].type, "kind",
		    strcmp(rows[i].type, STK_CERT_TYPE_SITE) == 0 ? "site" : "bulk",
		    "id", rows[i].id, "valid_from", from, "valid_to", to,
		    "nbf", (json_int_t)rows[i].valid_from, "exp", (json_int_t)rows[i].valid_to,
		    "created_at", (json_int_t)rows[i].created_at, "status", rows[i].status,
		    "devices", (json_int_t)rows[i].devices, "uses", (json_int_t)rows[i].uses,
		    "max_uses", rows[i].max_uses > 0 ? json_integer(rows[i].max_uses) :
		    json_null(), "sources", rows[i].sources[0] ?
		    json_string(rows[i].sources) : json_null()));
	}
	free(rows);
	return srv_reply_json_as(c, &adm_json, MHD_HTTP_OK, json_pack("{s:o, s:I}", "rows", arr,
	    "server_time", (json_int_t)now));
}

/* ---- new bulk token ---- */

/* A number member as the CLI would get it on its command line: a JSON
 * integer, or a string as typed; a JSON real stays one (60.0 and 1e3 are
 * refused by the CLI's parsers, never taken as the integer they equal). */
static const char *
adm_num_text(const json_t *v, char *buf, size_t len)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v)) {
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return buf;
	}
	if (json_is_real(v)) {
		snprintf(buf, len, "%.17g", json_real_value(v));
		if (strpbrk(buf, ".eEn") == NULL)
			snprintf(buf + strlen(buf), len - strlen(buf), ".0");
		return buf;
	}
	return "";
}

static enum MHD_Result
adm_bulk_new(struct srv_admin *a, struct MHD_Connection *c,
    const struct srv_req *rq, const char *actor)
{
	struct stk_bulk_record rec;
	struct stk_bulk_limits lim;
	struct stk_error err;
	json_error_t je;
	json_t *o = NULL, *lt = NULL, *mu = NULL, *src = NULL;
	char *token = NULL, buf[64], from[32], to[32];
	long minutes = STK_BULK_LIFETIME_DEFAULT;
	enum MHD_Result ret;
	int r;

	stk_error_clear(&err);
	memset(&lim, 0, sizeof(lim));
	if (rq->len > 0) {
		o = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &je);
		if (o == NULL || !json_is_object(o) ||
		    json_unpack_ex(o, &je, JSON_STRICT, "{s?o, s?o, s?o}", "lifetime_minutes",
		    &lt, "max_uses", &mu, "source", &src) != 0) {
			json_decref(o);
			return adm_refuse(c, STK_REFUSAL_BAD_REQUEST, "body must be "
			    "{\"lifetime_minutes\": N, \"max_uses\": N, \"source\": \"CIDR[,CIDR]\"}"
			    " (each optional; strict JSON, no other members)");
		}
	}
	/* The CLI's parsers decide, so both front ends refuse the same values
	 * with the same messages, before anything is created. */
	if (lt != NULL && stk_bulk_parse_lifetime(adm_num_text(lt, buf, sizeof(buf)),
	    &minutes, &err) != 0) {
		json_decref(o);
		return adm_refuse(c, STK_REFUSAL_BAD_LIFETIME, err.msg);
	}
	if (mu != NULL && !json_is_null(mu) && stk_bulk_parse_max_uses(adm_num_text(mu,
	    buf, sizeof(buf)), &lim.max_uses, &err) != 0) {
		json_decref(o);
		return adm_refuse(c, STK_REFUSAL_BAD_MAX_USES, err.msg);
	}
	if (src != NULL && !json_is_null(src) && !json_is_string(src)) {
		json_decref(o);
		return adm_refuse(c, STK_REFUSAL_BAD_SOURCE, "source must be a string: "
		    "CIDR[,CIDR] (e.g. 192.0.2.0/24,2001:db8::/32)");
	}
	if (src != NULL && json_is_string(src) && stk_bulk_parse_sources(
	    json_string_value(src), lim.sources, sizeof(lim.sources), &err) != 0) {
		json_decref(o);
		return adm_refuse(c, STK_REFUSAL_BAD_SOURCE, err.msg);
	}
	json_decref(o);
	pthread_mutex_lock(a->site_mu);
	r = stk_bulk_new_limited(a->site, minutes, &lim, actor, &token, &rec, &err);
	pthread_mutex_unlock(a->site_mu);
	if (r != 0) {
		srv_log(a->logs, SRV_LOG_STS, "AdminConsole", "Bulk registration token not "
		    "created for %s: %s", actor, err.msg);
		return adm_refuse(c, adm_refusal_of(r), err.msg);
	}
	buf[0] = '\0';
	if (lim.max_uses)
		snprintf(buf, sizeof(buf), ", at most %ld uses", lim.max_uses);
	srv_log(a->logs, SRV_LOG_STS, "AdminConsole", "Bulk registration token %s "
	    "created by %s, valid %ld minutes (exp=%lld)%s%s%s", rec.guid, actor,
	    minutes, (long long)rec.exp, buf, lim.sources[0] ? ", from " : "",
	    lim.sources);
	adm_time(rec.nbf, from, sizeof(from));
	adm_time(rec.exp, to, sizeof(to));
	ret = srv_reply_json_as(c, &adm_json, MHD_HTTP_CREATED, json_pack("{s:s, s:I,"
	    " s:I, s:s, s:s, s:I, s:o, s:o, s:s, s:s}", "guid", rec.guid, "nbf",
	    (json_int_t)rec.nbf, "exp", (json_int_t)rec.exp, "valid_from", from,
	    "valid_to", to, "lifetime_minutes", (json_int_t)minutes, "max_uses",
	    lim.max_uses ? json_integer(lim.max_uses) : json_null(), "sources",
	    lim.sources[0] ? json_string(lim.sources) : json_null(), "created_by",
	    rec.created_by, "token", token));
	/* jansson copied the token: wipe ours now, the reply's when sent. */
	stk_token_free(token);
	return ret;
}

/* ---- block / unblock ---- */

static enum MHD_Result
adm_bulk_block(struct srv_admin *a, struct MHD_Connection *c, const char *guid,
    int block, const char *actor)
{
	struct stk_bulk_record rec;
	struct stk_error err;
	int r;

	stk_error_clear(&err);
	pthread_mutex_lock(a->site_mu);
	r = stk_bulk_set_blocked(a->site, guid, block, actor, &err);
	if (r == 0)
		r = stk_bulk_get(a->site, guid, &rec, &err);
	pthread_mutex_unlock(a->site_mu);
	if (r != 0)
		return adm_refuse(c, adm_refusal_of(r), err.msg);
	srv_log(a->logs, SRV_LOG_STS, "AdminConsole", "Bulk registration token %s %s by %s",
	    rec.guid, block ? "blocked" : "unblocked", actor);
	return srv_reply_json_as(c, &adm_json, MHD_HTTP_OK, json_pack("{s:s, s:s, s:b}", "guid",
	    rec.guid, "status", rec.blocked ? "Blocked" : stk_now() >= rec.exp ?
	    "Expired" : "Active", "blocked", rec.blocked));
}

/* ---- audit trail of one token ---- */

struct adm_trail {
	const char *guid;
	json_t *arr;
};

static int
adm_trail_cb(void *ctx, const struct stk_audit_record *rec)
{
	struct adm_trail *t = ctx;
	char at[32];

	/* Its own events name it as subject, registrations with it as ref:
	 * structured columns, never the detail text (request content). */
	if (strcasecmp(rec->subject, t->guid) != 0 && strcasecmp(rec->ref, t->guid) != 0)
		return 0;
	adm_time(rec->at, at, sizeof(at));
	json_array_append_new(t->arr, json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s}",
	    "seq", (json_int_t)rec->seq, "at", (json_int_t)rec->at, "time", at,
	    "actor", rec->actor, "event", rec->event, "subject", rec->subject,
	    "outcome", rec->outcome, "detail", rec->detail));
	if (json_array_size(t->arr) > ADM_AUDIT_MAX)
		json_array_remove(t->arr, 0);
	return 0;
}

static enum MHD_Result
adm_bulk_audit(struct srv_admin *a, struct MHD_Connection *c, const char *guid)
{
	struct stk_bulk_record rec;
	struct adm_trail t;
	struct stk_error err;
	int r;

	stk_error_clear(&err);
	t.arr = json_array();
	pthread_mutex_lock(a->site_mu);
	r = stk_bulk_get(a->site, guid, &rec, &err);
	t.guid = rec.guid;
	if (r == 0)
		r = stk_audit_foreach(a->site, adm_trail_cb, &t, &err);
	pthread_mutex_unlock(a->site_mu);
	if (r != 0) {
		json_decref(t.arr);
		return adm_refuse(c, adm_refusal_of(r), err.msg);
	}
	return srv_reply_json_as(c, &adm_json, MHD_HTTP_OK,
	    json_pack("{s:s, s:o}", "guid", rec.guid,
	    "records", t.arr));
}

/* ---- query helpers ---- */

/* An optional whole-number query parameter in [min, max]; -1 when bad. */
static int
adm_qint(struct MHD_Connection *c, const char *name, long def, long min, long max,
    long *out)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
	char *end;
	long n;

	*out = def;
	if (v == NULL || *v == '\0')
		return 0;
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

static const char *
adm_qstr(struct MHD_Connection *c, const char *name)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);

	return v != NULL && *v != '\0' ? v : NULL;
}

/* A strict JSON object body with one string member `name`. */
static int
adm_body_str(const struct srv_req *rq, const char *name, char *out, size_t len)
{
	json_error_t je;
	json_t *o;
	const char *v = NULL;
	int r = -1;

	if (rq->len == 0)
		return -1;
	o = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &je);
	if (o != NULL && json_is_object(o) &&
	    json_unpack_ex(o, &je, JSON_STRICT, "{s:s}", name, &v) == 0 &&
	    strlen(v) < len) {
		snprintf(out, len, "%s", v);
		r = 0;
	}
	json_decref(o);
	return r;
}

/* ---- devices ---- */

static const char *
adm_dev_status(const struct stk_device *d, int64_t now)
{
	if (d->blocked)
		return "Blocked";
	return d->token_exp > 0 && d->token_exp <= now ? "Expired" : "Active";
}

static json_t *
adm_dev_json(const struct stk_device *d, int site_allow, int64_t now)
{
	char reg[32], iss[32], exp[32];

	adm_time(d->registered_at, reg, sizeof(reg));
	adm_time(d->last_issued_at, iss, sizeof(iss));
	adm_time(d->token_exp, exp, sizeof(exp));
	return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:b, s:s, s:s, s:b, s:s, s:I,"
	    " s:s, s:I, s:s}", "guid", d->guid, "thumbprint", d->thumbprint,
	    "registered_at", (json_int_t)d->registered_at, "registered", reg,
	    "via", d->via, "bulk_guid", d->bulk_guid, "blocked", d->blocked,
	    "status", adm_dev_status(d, now),
	    "allow_cmg", d->allow_cmg < 0 ? "default" : d->allow_cmg ? "on" : "off",
	    "allow_cmg_effective", d->allow_cmg < 0 ? site_allow : d->allow_cmg,
	    "last_jti", d->last_jti, "token_issued_at", (json_int_t)d->last_issued_at,
	    "token_issued", iss, "token_exp", (json_int_t)d->token_exp, "token_expires",
	    exp);
}

struct adm_devq {
	const char *q, *status, *via, *bulk;
	long limit, offset, total;
	int site_allow;
	int64_t now;
	json_t *arr;
};

static int
adm_dev_cb(void *ctx, const struct stk_device *d)
{
	struct adm_devq *f = ctx;

	if (f->status != NULL && strcasecmp(f->status, adm_dev_status(d, f->now)) != 0)
		return 0;
	if (f->via != NULL && strcasecmp(f->via, d->via) != 0)
		return 0;
	if (f->bulk != NULL && strcasecmp(f->bulk, d->bulk_guid) != 0)
		return 0;
	/* Search: a part of the GUID, thumbprint, bulk token GUID or jti. */
	if (f->q != NULL && strcasestr(d->guid, f->q) == NULL &&
	    strstr(d->thumbprint, f->q) == NULL && strcasestr(d->bulk_guid, f->q) == NULL &&
	    strcasestr(d->last_jti, f->q) == NULL)
		return 0;
	if (f->total >= f->offset && f->total < f->offset + f->limit)
		json_array_append_new(f->arr, adm_dev_json(d, f->site_allow, f->now));
	f->total++;
	return 0;
}

static enum MHD_Result
adm_devices(struct srv_admin *a, struct MHD_Connection *c)
{
	struct adm_devq f;
	struct stk_error err;
	int r;

	memset(&f, 0, sizeof(f));
	f.q = adm_qstr(c, "q");
	f.status = adm_qstr(c, "status");
	f.via = adm_qstr(c, "via");
	f.bulk = adm_qstr(c, "bulk");
	f.now = stk_now();
	if ((f.status != NULL && strcasecmp(f.status, "active") != 0 &&
	    strcasecmp(f.status, "blocked") != 0 && strcasecmp(f.status, "expired") != 0) ||
	    (f.via != NULL && strcasecmp(f.via, "mp") != 0 && strcasecmp(f.via, "cmg") != 0) ||
	    adm_qint(c, "limit", 200, 1, ADM_AUDIT_MAX, &f.limit) != 0 ||
	    adm_qint(c, "offset", 0, 0, LONG_MAX / 2, &f.offset) != 0)
		return adm_refuse(c, STK_REFUSAL_BAD_REQUEST,
		    "status is active, blocked or expired; via is mp or cmg; limit 1 to "
		    "500; offset from 0");
	if (f.q != NULL && strlen(f.q) > 64)
		return adm_refuse(c, STK_REFUSAL_BAD_REQUEST,
		    "search text over 64 characters");
	f.arr = json_array();
	stk_error_clear(&err);
	pthread_mutex_lock(a->site_mu);
	r = stk_setting_get_bool(a->site, STK_SETTING_ALLOW_CMG, 1, &f.site_allow, &err);
	if (r == 0)
		r = stk_device_foreach(a->site, adm_dev_cb, &f, &err);
	pthread_mutex_unlock(a->site_mu);
	if (r != 0) {
		json_decref(f.arr);
		srv_log(a->logs, SRV_LOG_STS, "AdminConsole", "Cannot list devices: %s",
		    err.msg);
		return adm_refuse(c, STK_REFUSAL_INTERNAL,
		    "cannot read the site; see the server logs");
	}
	return srv_reply_json_as(c, &adm_json, MHD_HTTP_OK,
	    json_pack("{s:o, s:I, s:I, s:I, s:b, s:I}",
	    "rows", f.arr, "total", (json_int_t)f.total, "offset", (json_int_t)f.offset,
	    "limit", (json_int_t)f.limit, "allow_cmg_default", f.site_allow,
	    "server_time", (json_int_t)f.now));
}

/* POST devices/<guid>/block | unblock | allow-cmg */
static enum MHD_Result
adm_device_action(struct srv_admin *a, struct MHD_Connection *c, const char *guid,
    const char *op, const struct srv_req *rq, const char *actor)
{
	struct stk_device d;
	struct stk_error err;
	char value[16] = "";
	int r, allow = -1, site_allow = 1;

	stk_error_clear(&err);
	if (strcmp(op, "allow-cmg") == 0) {
		if (adm_body_str(rq, "value", value, sizeof(value)) != 0 ||
		    (strcmp(value, "on") != 0 && strcmp(value, "off") != 0 &&
		    strcmp(value, "default") != 0))
			return adm_refuse(c, STK_REFUSAL_BAD_REQUEST,
			    "body must be {\"value\": \"on\"|\"off\"|\"default\"}");
		allow = strcmp(value, "on") == 0 ? 1 : strcmp(value, "off") == 0 ? 0 : -1;
	}
	pthread_mutex_lock(a->site_mu);
	if (strcmp(op, "allow-cmg") == 0)
		r = stk_device_set_allow_cmg(a->site, guid, allow, actor, &err);
	else
		r = stk_device_set_blocked(a->site, guid, op[0] == 'b', actor, &err);
	if (r == 0)
		r = stk_device_get(a->site, guid, &d, &err);
	if (r == 0)
		r = stk_setting_get_bool(a->site, STK_SETTING_ALLOW_CMG, 1, &site_allow, &err);
	pthread_mutex_unlock(a->site_mu);
	if (r != 0)
		return adm_refuse(c, adm_refusal_of(r), err.msg);
	if (strcmp(op, "allow-cmg") == 0)
		srv_log(a->logs, SRV_LOG_STS, "AdminConsole", "Device %s: allow-cmg %s by %s",
		    d.guid, value, actor);
	else
		srv_log(a->logs, SRV_LOG_STS, "AdminConsole", "Device %s %sed by %s", d.guid,
		    op, actor);
	return srv_reply_json_as(c, &adm_json, MHD_HTTP_OK,
	    adm_dev_json(&d, site_allow, stk_now()));
}

/* ---- site settings ---- */

static const struct {
	const char *name, *what;
} adm_settings[] = {
	{ STK_SETTING_ALLOW_CMG, "Devices may use the cloud gateway (site default; "
	    "a device's own value wins)" },
	{ STK_SETTING_INTERNAL_REG, "Devices may register directly with the "
	    "management point on the internal network" },
};
#define ADM_NSETTINGS (sizeof(adm_settings) / sizeof(adm_settings[0]))

static enum MHD_Result
adm_settings_get(struct srv_admin *a, struct MHD_Connection *c)
{
	struct stk_error err;
	json_t *arr = json_array();
	size_t i;
	int r = 0, on;

	stk_error_clear(&err);
	pthread_mutex_lock(a->site_mu);
	for (i = 0; i < ADM_NSETTINGS && r == 0; i++) {
		r = stk_setting_get_bool(a->site, adm_settings[i].name, 1, &on, &err);
		if (r == 0)
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "name",
			    adm_settings[i].name, "value", on ? "on" : "off", "default", "on",
			    "description", adm_settings[i].what));
	}
	pthread_mutex_unlock(a->site_mu);
	if (r != 0) {
		json_decref(arr);
		return adm_refuse(c, adm_refusal_of(r), err.msg);
	}
	return srv_reply_json_as(c, &adm_json, MHD_HTTP_OK, json_pack("{s:o}", "settings", arr));
}

static enum MHD_Result
adm_settings_set(struct srv_admin *a, struct MHD_Connection *c,
    const struct srv_req *rq, const char *actor)
{
	struct stk_error err;
	json_error_t je;
	json_t *o = NULL;
	const char *name = NULL, *value = NULL;
	size_t i;
	int r;

	if (rq->len > 0)
		o = json_loadb(rq->body, rq->len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o) || json_unpack_ex(o, &je, JSON_STRICT,
	    "{s:s, s:s}", "name", &name, "value", &value) != 0 ||
	    (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)) {
		json_decref(o);
		return adm_refuse(c, STK_REFUSAL_BAD_REQUEST,
		    "body must be {\"name\": SETTING, \"value\": \"on\"|\"off\"}");
	}
	for (i = 0; i < ADM_NSETTINGS; i++)
		if (strcmp(name, adm_settings[i].name) == 0)
			break;
	if (i == ADM_NSETTINGS) {
		json_decref(o);
		return adm_refuse(c, STK_REFUSAL_BAD_REQUEST,
		    "unknown setting (allow-cmg, internal-registration)");
	}
	stk_error_clear(&err);
	pthread_mutex_lock(a->site_mu);
	r = stk_setting_set(a->site, adm_settings[i].name, value, actor, &err);
	pthread_mutex_unlock(a->site_mu);
	if (r == 0)
		srv_log(a->logs, SRV_LOG_STS, "AdminConsole", "Setting %s set to %s by %s",
		    adm_settings[i].name, value, actor);
	json_decref(o);
	if (r != 0)
		return adm_refuse(c, adm_refusal_of(r), err.msg);
	return adm_settings_get(a, c);
}

/* ---- the audit log ---- */

struct adm_auditq {
	const char *q, *outcome;
	long limit;
	int64_t before, matched;
	json_t *arr;
};

static json_t *
adm_record_json(const struct stk_audit_record *rec)
{
	char at[32];

	adm_time(rec->at, at, sizeof(at));
	return json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s}", "seq",
	    (json_int_t)rec->seq, "at", (json_int_t)rec->at, "time", at, "actor",
	    rec->actor, "event", rec->event, "subject", rec->subject, "outcome",
	    rec->outcome, "detail", rec->detail);
}

static int
adm_audit_cb(void *ctx, const struct stk_audit_record *rec)
{
	struct adm_auditq *f = ctx;

	if (f->before > 0 && rec->seq >= f->before)
		return 0;
	if (f->outcome != NULL && strcmp(f->outcome, rec->outcome) != 0)
		return 0;
	if (f->q != NULL && strcasestr(rec->event, f->q) == NULL &&
	    strcasestr(rec->subject, f->q) == NULL && strcasestr(rec->actor, f->q) == NULL &&
	    strcasestr(rec->detail, f->q) == NULL)
		return 0;
	f->matched++;
	json_array_append_new(f->arr, adm_record_json(rec));
	if ((long)json_array_size(f->arr) > f->limit)
		json_array_remove(f->arr, 0);
	return 0;
}

static enum MHD_Result
adm_audit(struct srv_admin *a, struct MHD_Connection *c)
{
	struct adm_auditq f;
	struct stk_error err;
	json_t *rev;
	long before;
	size_t i, n;
	int r;

	memset(&f, 0, sizeof(f));
	f.q = adm_qstr(c, "q");
	f.outcome = adm_qstr(c, "outcome");
	if (adm_qint(c, "limit", 100, 1, ADM_AUDIT_MAX, &f.limit) != 0 ||
	    adm_qint(c, "before", 0, 0, LONG_MAX, &before) != 0 ||
	    (f.q != NULL && strlen(f.q) > 64) ||
	    (f.outcome != NULL && strlen(f.outcome) > 23))
		return adm_refuse(c, STK_REFUSAL_BAD_REQUEST,
		    "limit 1 to 500, before a record number, q at most 64 characters");
	f.before = before;
	f.arr = json_array();
	stk_error_clear(&err);
	pthread_mutex_lock(a->site_mu);
	r = stk_audit_foreach(a->site, adm_audit_cb, &f, &err);
	pthread_mutex_unlock(a->site_mu);
	if (r != 0) {
		json_decref(f.arr);
		return adm_refuse(c, adm_refusal_of(r), err.msg);
	}
	/* Newest first, as an administrator reads a log. */
	rev = json_array();
	n = json_array_size(f.arr);
	for (i = n; i > 0; i--)
		json_array_append(rev, json_array_get(f.arr, i - 1));
	json_decref(f.arr);
	return srv_reply_json_as(c, &adm_json, MHD_HTTP_OK,
	    json_pack("{s:o, s:I, s:I}", "records", rev,
	    "matched", (json_int_t)f.matched, "next_before", (json_int_t)(n > 0 &&
	    f.matched > (int64_t)n ? json_integer_value(json_object_get(json_array_get(rev,
	    n - 1), "seq")) : 0)));
}

static enum MHD_Result
adm_audit_verify(struct srv_admin *a, struct MHD_Connection *c)
{
	struct stk_audit_report rep;
	struct stk_error err;
	int r;

	memset(&rep, 0, sizeof(rep));
	stk_error_clear(&err);
	pthread_mutex_lock(a->site_mu);
	r = stk_audit_verify(a->site, &rep, &err);
	pthread_mutex_unlock(a->site_mu);
	if (r < 0)
		return adm_refuse(c, STK_REFUSAL_INTERNAL,
		    err.msg);
	/* The anchor state: what the site directory (and on a TPM node the
	 * TPM's NV counter) says about the head, beside the chain's result. */
	return srv_reply_json_as(c, &adm_json, MHD_HTTP_OK,
	    json_pack("{s:b, s:I, s:I, s:I, s:I, s:s,"
	    " s:I, s:{s:I, s:s, s:I}, s:I}", "intact", r == 0, "records",
	    (json_int_t)rep.records, "checkpoints", (json_int_t)rep.checkpoints,
	    "last_checkpoint_seq", (json_int_t)rep.last_checkpoint_seq, "bad_seq",
	    (json_int_t)rep.bad_seq, "problem", rep.problem, "verified_at",
	    (json_int_t)stk_now(), "anchor", "seq", (json_int_t)rep.anchor_seq, "note",
	    rep.anchor_note, "tpm_counter", (json_int_t)rep.tpm_counter,
	    "untrusted_keys", (json_int_t)rep.untrusted_keys));
}

/* ---- site keys ---- */

static enum MHD_Result
adm_keys(struct srv_admin *a, struct MHD_Connection *c)
{
	struct stk_site_key_row *rows = NULL;
	struct stk_key_info info;
	struct stk_key *key = NULL;
	struct stk_error err, kerr;
	json_t *arr, *o, *attrs;
	size_t n = 0, i, j;
	int r, described = 0;

	stk_error_clear(&err);
	stk_error_clear(&kerr);
	memset(&info, 0, sizeof(info));
	pthread_mutex_lock(a->site_mu);
	r = stk_site_keys_list(a->site, &rows, &n, &err);
	/* This node's key, read back from its device (as `key show`). */
	if (r == 0 && stk_site_key(a->site, &key, &kerr) == 0 &&
	    stk_key_describe(key, &info, &kerr) == 0)
		described = 1;
	pthread_mutex_unlock(a->site_mu);
	if (r != 0)
		return adm_refuse(c, adm_refusal_of(r), err.msg);
	arr = json_array();
	for (i = 0; i < n; i++) {
		o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:b, s:b}", "kid",
		    rows[i].kid, "node", rows[i].node, "backend", rows[i].backend,
		    "key_type", rows[i].key_type, "status", rows[i].status, "created_at",
		    (json_int_t)rows[i].created_at, "not_after", (json_int_t)rows[i].not_after,
		    "retired_at", (json_int_t)rows[i].retired_at, "mine", rows[i].mine,
		    "trusted", rows[i].trusted);
		/* Whether an auditor can get TPM attestation evidence for this
		 * node's key (`sitetoken key attest`); none for PKCS#11 and file. */
		if (o != NULL && rows[i].mine && key != NULL)
			json_object_set_new(o, "attestation", json_string(
			    stk_key_attestation_available(key) ? "tpm" : "none"));
		if (o != NULL && rows[i].mine && described) {
			attrs = json_array();
			for (j = 0; j < info.nattrs; j++)
				json_array_append_new(attrs, json_pack("{s:s, s:s}", "name",
				    info.attrs[j].name, "value", info.attrs[j].value));
			json_object_set_new(o, "attributes", attrs);
			json_object_set_new(o, "non_exportable", json_boolean(info.non_exportable));
			json_object_set_new(o, "location", json_string(info.location));
		} else if (o != NULL && rows[i].mine)
			json_object_set_new(o, "describe_error", json_string(kerr.msg));
		json_array_append_new(arr, o);
	}
	free(rows);
	return srv_reply_json_as(c, &adm_json, MHD_HTTP_OK,
	    json_pack("{s:o, s:s, s:s}", "keys", arr,
	    "node", stk_site_node(a->site), "store", stk_site_store(a->site)));
}

/* ---- dashboard: registrations, renewals and refusals over time ---- */

#define ADM_STATS_BUCKETS_MAX 400

struct adm_stats {
	int64_t start, step;
	long nb;
	json_int_t reg[ADM_STATS_BUCKETS_MAX], ren[ADM_STATS_BUCKETS_MAX];
	json_t *refusals;   /* reason -> [counts per bucket] */
	json_int_t total_reg, total_ren, total_ref;
};

static int
adm_stats_cb(void *ctx, const struct stk_audit_record *rec)
{
	struct adm_stats *st = ctx;
	char reason[48];
	json_t *series;
	long b;
	size_t n;
	int reg = strncmp(rec->event, "device.register", 15) == 0;
	int ren = strcmp(rec->event, "device.renew") == 0;
	int gw = strcmp(rec->event, "gateway.auth") == 0;

	if ((!reg && !ren && !gw) || rec->at < st->start)
		return 0;
	b = (long)((rec->at - st->start) / st->step);
	if (b >= st->nb)
		return 0;
	if (strcmp(rec->outcome, "ok") == 0) {
		if (reg) {
			st->reg[b]++;
			st->total_reg++;
		} else if (ren) {
			st->ren[b]++;
			st->total_ren++;
		}
		return 0;
	}
	if (strcmp(rec->outcome, "refused") != 0)
		return 0;
	/* A refusal's detail starts with its reason code ("reason: message"). */
	n = strcspn(rec->detail, ": ");
	snprintf(reason, sizeof(reason), "%.*s", (int)(n < sizeof(reason) ? n :
	    sizeof(reason) - 1), rec->detail);
	if (reason[0] == '\0')
		snprintf(reason, sizeof(reason), "other");
	if ((series = json_object_get(st->refusals, reason)) == NULL) {
		long i;

		series = json_array();
		for (i = 0; i < st->nb; i++)
			json_array_append_new(series, json_integer(0));
		json_object_set_new(st->refusals, reason, series);
	}
	json_integer_set(json_array_get(series, (size_t)b),
	    json_integer_value(json_array_get(series, (size_t)b)) + 1);
	st->total_ref++;
	return 0;
}

static enum MHD_Result
adm_stats(struct srv_admin *a, struct MHD_Connection *c)
{
	struct adm_stats *st;
	struct stk_error err;
	const char *bq = adm_qstr(c, "bucket");
	json_t *reg, *ren, *times;
	int64_t now = stk_now();
	long days, i;
	enum MHD_Result ret;
	int r;

	if (adm_qint(c, "days", 14, 1, 90, &days) != 0 || (bq != NULL &&
	    strcmp(bq, "hour") != 0 && strcmp(bq, "day") != 0) ||
	    (bq != NULL && bq[0] == 'h' && days > 14))
		return adm_refuse(c, STK_REFUSAL_BAD_REQUEST,
		    "days 1 to 90; bucket hour (up to 14 days) or day");
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return adm_refuse(c, STK_REFUSAL_INTERNAL,
		    "out of memory");
	st->step = bq != NULL && bq[0] == 'h' ? 3600 : 86400;
	st->nb = days * 86400 / st->step;
	/* Whole buckets, the last one holding now. */
	st->start = (now / st->step + 1) * st->step - st->nb * st->step;
	st->refusals = json_object();
	stk_error_clear(&err);
	pthread_mutex_lock(a->site_mu);
	r = stk_audit_foreach(a->site, adm_stats_cb, st, &err);
	pthread_mutex_unlock(a->site_mu);
	if (r != 0) {
		json_decref(st->refusals);
		free(st);
		return adm_refuse(c, adm_refusal_of(r), err.msg);
	}
	reg = json_array();
	ren = json_array();
	times = json_array();
	for (i = 0; i < st->nb; i++) {
		json_array_append_new(times, json_integer(st->start + i * st->step));
		json_array_append_new(reg, json_integer(st->reg[i]));
		json_array_append_new(ren, json_integer(st->ren[i]));
	}
	ret = srv_reply_json_as(c, &adm_json, MHD_HTTP_OK,
	    json_pack("{s:I, s:I, s:o, s:o, s:o, s:o,"
	    " s:{s:I, s:I, s:I}, s:I}", "start", (json_int_t)st->start, "step",
	    (json_int_t)st->step, "times", times, "registrations", reg, "renewals", ren,
	    "refusals", st->refusals, "totals", "registrations", st->total_reg,
	    "renewals", st->total_ren, "refusals", st->total_ref, "server_time",
	    (json_int_t)now));
	free(st);
	return ret;
}

/* ---- routing ---- */

/* The "<GUID>/" segment at the start of *op: the GUID into guid and *op
 * moved past the slash. STK_REFUSAL_NOT_FOUND when the path has no such
 * segment, STK_REFUSAL_BAD_REQUEST when it is not a GUID. */
static enum stk_refusal
adm_guid_segment(const char **op, char guid[STK_GUID_LEN + 1])
{
	size_t n = strcspn(*op, "/");

	if (n != STK_GUID_LEN || (*op)[n] != '/')
		return STK_REFUSAL_NOT_FOUND;
	memcpy(guid, *op, n);
	guid[n] = '\0';
	*op += n + 1;
	if (!stk_guid_valid(guid))
		return STK_REFUSAL_BAD_REQUEST;
	return STK_REFUSAL_NONE;
}

static enum MHD_Result
adm_route(void *ctx, struct MHD_Connection *c, const char *url,
    const char *method, const struct srv_req *rq)
{
	struct srv_admin *a = ctx;
	int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	int post = strcmp(method, "POST") == 0;
	const char *why, *op;
	char peer[64], actor[64], guid[STK_GUID_LEN + 1];
	enum stk_refusal bad;
	size_t i;

	srv_peer_addr(c, peer, sizeof(peer));
	/* The page itself: constant, no site data, so no secret needed. */
	if (get)
		for (i = 0; i < adm_asset_count; i++)
			if (strcmp(url, adm_assets[i].path) == 0)
				return adm_reply_asset(c, &adm_assets[i]);
	if (adm_authenticate(a, c, peer, actor, sizeof(actor), &why) != 0)
		return adm_unauthorized(a, c, method, url, peer, why);
	if (rq->too_big)
		return adm_refuse(c, STK_REFUSAL_BODY_TOO_LARGE,
		    "request body over 4 KiB");
	if (strncmp(url, ADM_API, strlen(ADM_API)) != 0)
		return adm_refuse(c, STK_REFUSAL_NOT_FOUND, "unknown path");
	op = url + strlen(ADM_API);
	if (strcmp(op, "session") == 0) {
		if (!get)
			return adm_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use GET");
		return srv_reply_json_as(c, &adm_json, MHD_HTTP_OK, json_pack("{s:s, s:s, s:i, s:i, s:I}",
		    "actor", actor, "site", stk_site_guid(a->site), "lifetime_default",
		    STK_BULK_LIFETIME_DEFAULT, "lifetime_max", STK_BULK_LIFETIME_MAX,
		    "server_time", (json_int_t)stk_now()));
	}
	if (strcmp(op, "certs") == 0) {
		if (!get)
			return adm_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use GET");
		return adm_certs(a, c);
	}
	if (strcmp(op, "bulk") == 0) {
		if (!post)
			return adm_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use POST");
		return adm_bulk_new(a, c, rq, actor);
	}
	/* bulk/<guid>/block | unblock | audit */
	if (strncmp(op, "bulk/", 5) == 0) {
		op += 5;
		if ((bad = adm_guid_segment(&op, guid)) != STK_REFUSAL_NONE)
			return adm_refuse(c, bad, bad == STK_REFUSAL_NOT_FOUND ?
			    "expected bulk/<GUID>/block, unblock or audit" : "not a GUID");
		if (strcmp(op, "block") == 0 || strcmp(op, "unblock") == 0) {
			if (!post)
				return adm_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use POST");
			return adm_bulk_block(a, c, guid, op[0] == 'b', actor);
		}
		if (strcmp(op, "audit") == 0) {
			if (!get)
				return adm_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use GET");
			return adm_bulk_audit(a, c, guid);
		}
	}
	op = url + strlen(ADM_API);
	if (strcmp(op, "devices") == 0)
		return get ? adm_devices(a, c) : adm_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use GET");
	/* devices/<guid>/block | unblock | allow-cmg */
	if (strncmp(op, "devices/", 8) == 0) {
		op += 8;
		if ((bad = adm_guid_segment(&op, guid)) != STK_REFUSAL_NONE)
			return adm_refuse(c, bad, bad == STK_REFUSAL_NOT_FOUND ?
			    "expected devices/<GUID>/block, unblock or allow-cmg" : "not a GUID");
		if (strcmp(op, "block") == 0 || strcmp(op, "unblock") == 0 ||
		    strcmp(op, "allow-cmg") == 0) {
			if (!post)
				return adm_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use POST");
			return adm_device_action(a, c, guid, op, rq, actor);
		}
		return adm_refuse(c, STK_REFUSAL_NOT_FOUND, "unknown path");
	}
	if (strcmp(op, "settings") == 0) {
		if (get)
			return adm_settings_get(a, c);
		if (post)
			return adm_settings_set(a, c, rq, actor);
		return adm_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use GET or POST");
	}
	if (strcmp(op, "audit") == 0 || strcmp(op, "audit/verify") == 0 ||
	    strcmp(op, "keys") == 0 || strcmp(op, "stats") == 0) {
		if (!get)
			return adm_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use GET");
		if (strcmp(op, "audit") == 0)
			return adm_audit(a, c);
		if (strcmp(op, "audit/verify") == 0)
			return adm_audit_verify(a, c);
		if (strcmp(op, "keys") == 0)
			return adm_keys(a, c);
		return adm_stats(a, c);
	}
	return adm_refuse(c, STK_REFUSAL_NOT_FOUND, "unknown path");
}

/* MHD's format strings: checked as printf formats (clang -Wformat-nonliteral). */
static void __attribute__((format(printf, 2, 0)))
adm_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct srv_admin *a = cls;
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	srv_log(a->logs, SRV_LOG_STS, "AdminConsole", "listener: %s", msg);
}

static int
adm_parse_addr(const char *spec, int remote, struct sockaddr_in *sin,
    struct stk_error *err)
{
	int r;

	if ((r = srv_parse_listen(spec, "admin", sin, err)) != 0)
		return r;
	if (!remote && (ntohl(sin->sin_addr.s_addr) >> 24) != 127)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "the admin console listens on loopback only; '%s' needs "
		    "--admin-remote", spec);
	return STK_OK;
}

int
srv_admin_start(struct stk_site *site, pthread_mutex_t *site_mu,
    struct srv_logs *logs, const char *addr, int remote, const char *cert_pem,
    const char *key_pem, struct srv_admin **out, struct stk_error *err)
{
	struct srv_admin *a = NULL;
	struct sockaddr_in sin;
	struct srv_daemon_opts opts;
	const union MHD_DaemonInfo *di;
	char secret[ADM_SECRET_LEN + 1];
	int r, created = 0;

	*out = NULL;
	if ((r = adm_parse_addr(addr, remote, &sin, err)) != 0)
		goto out;
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	a->http = (struct srv_http){ adm_route, a, ADM_BODY_MAX };
	a->site = site;
	a->site_mu = site_mu;
	a->logs = logs;
	if ((r = adm_secret_path(stk_site_dir(site), a->secret_path,
	    sizeof(a->secret_path), err)) != 0)
		goto out;
	/* A bad secret file is a start-up error, not a run of 401s. */
	r = srv_admin_secret(stk_site_dir(site), 0, secret, &created, err);
	OPENSSL_cleanse(secret, sizeof(secret));
	if (r != 0)
		goto out;
	if (created) {
		pthread_mutex_lock(site_mu);
		r = stk_audit_append(site, "serve", "admin.secret", ADM_SECRET_FILE, "ok",
		    "created for the admin console", err);
		pthread_mutex_unlock(site_mu);
		if (r != 0)
			goto out;
	}
	opts = (struct srv_daemon_opts){ adm_mhd_log, a, &sin, 2, 64, 0, 30,
	    cert_pem, key_pem, NULL };
	a->d = srv_http_start(&a->http, &opts);
	if (a->d == NULL) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot listen on %s (admin console): %s", addr,
		    errno ? strerror(errno) : "TLS set-up failed");
		goto out;
	}
	di = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
	a->port = di != NULL ? di->port : ntohs(sin.sin_port);
	srv_log(logs, SRV_LOG_STS, "AdminConsole", "Admin console listening on https "
	    "port %u (bearer secret in %s)", a->port, a->secret_path);
	*out = a;
	r = STK_OK;
out:
	if (r != 0)
		srv_admin_stop(a);
	return r;
}

unsigned int
srv_admin_listener_port(const struct srv_admin *a)
{
	return a != NULL ? a->port : 0;
}

void
srv_admin_stop(struct srv_admin *a)
{
	if (a == NULL)
		return;
	if (a->d != NULL)
		MHD_stop_daemon(a->d);
	free(a);
}
