/* Keys for relying parties; see wellknown.h and docs/api.md "Keys for
 * relying parties".
 *
 * The key set is public (threat model 1 sees it anyway), so it needs no
 * client certificate on the CMG: the CMG only requests one (GnuTLS
 * GNUTLS_CERT_REQUEST through MHD's trust list), and the gateway paths
 * refuse a request without one. The key set is read from the store at most
 * every SRV_WELLKNOWN_REREAD seconds, so a flood of key-set requests does
 * not queue behind the site lock that registrations need. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "sitetoken/token.h"
#include "http.h"
#include "wellknown.h"

static int64_t
wk_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

void
srv_wellknown_init(struct srv_wellknown *wk, struct stk_site *site,
    pthread_mutex_t *site_mu, struct srv_logs *logs)
{
	memset(wk, 0, sizeof(*wk));
	wk->site = site;
	wk->site_mu = site_mu;
	wk->logs = logs;
	pthread_mutex_init(&wk->mu, NULL);
}

void
srv_wellknown_clear(struct srv_wellknown *wk)
{
	if (wk == NULL || wk->site == NULL)
		return;
	free(wk->jwks);
	pthread_mutex_destroy(&wk->mu);
	memset(wk, 0, sizeof(*wk));
}

/* The key set text (malloc'd copy), read again when the cached one is old. */
static char *
wk_jwks(struct srv_wellknown *wk)
{
	struct stk_error err;
	char *fresh = NULL, *out = NULL;
	int64_t now = wk_clock();
	int r;

	pthread_mutex_lock(&wk->mu);
	if (wk->jwks == NULL || now - wk->read_at >= SRV_WELLKNOWN_REREAD) {
		stk_error_clear(&err);
		pthread_mutex_lock(wk->site_mu);
		r = stk_site_jwks(wk->site, &fresh, &err);
		pthread_mutex_unlock(wk->site_mu);
		if (r == 0) {
			free(wk->jwks);
			wk->jwks = fresh;
			wk->read_at = now;
		} else
			srv_log(wk->logs, SRV_LOG_STS, "CCM_STS", "Cannot read the site "
			    "keys for /.well-known/jwks.json: %s", err.msg);
	}
	if (wk->jwks != NULL)
		out = strdup(wk->jwks);
	pthread_mutex_unlock(&wk->mu);
	return out;
}

/* A strong validator: the first 16 bytes of the body's SHA-256, quoted. */
static void
wk_etag(const char *body, size_t len, char out[40])
{
	unsigned char md[32];
	size_t i;

	EVP_Digest(body, len, md, NULL, EVP_sha256(), NULL);
	out[0] = '"';
	for (i = 0; i < 16; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
	out[33] = '"';
	out[34] = '\0';
}

/* If-None-Match: "*" or a list holding our tag (weak or strong). */
static int
wk_not_modified(struct MHD_Connection *c, const char *etag)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_IF_NONE_MATCH);

	if (h == NULL)
		return 0;
	while (*h == ' ')
		h++;
	return strcmp(h, "*") == 0 || strstr(h, etag) != NULL;
}

static enum MHD_Result
wk_reply(struct MHD_Connection *c, char *body, const char *ctype)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char etag[40], cc[64];
	size_t len = strlen(body);
	int fresh;

	wk_etag(body, len, etag);
	fresh = wk_not_modified(c, etag);
	if (fresh) {
		free(body);
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	} else if ((resp = MHD_create_response_from_buffer_with_free_callback(len, body,
	    free)) == NULL)
		free(body);
	if (resp == NULL)
		return MHD_NO;
	snprintf(cc, sizeof(cc), "public, max-age=%d", SRV_WELLKNOWN_MAX_AGE);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cc);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	if (!fresh)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	ret = MHD_queue_response(c, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
wk_error(struct MHD_Connection *c, unsigned int status, const char *code,
    const char *msg)
{
	return srv_reply_json(c, status, json_pack("{s:s, s:s}", "error", code,
	    "message", msg));
}

/* The Host header names where the client reached us; only a plain
 * host[:port] is echoed into jwks_uri. */
static int
wk_host_ok(const char *h)
{
	size_t i;

	if (h == NULL || *h == '\0' || strlen(h) > 255)
		return 0;
	for (i = 0; h[i]; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
		    (h[i] >= '0' && h[i] <= '9') || strchr(".-:[]", h[i]) != NULL))
			return 0;
	return 1;
}

enum MHD_Result
srv_wellknown_route(struct srv_wellknown *wk, struct MHD_Connection *c,
    const char *url, const char *method, const char *scheme)
{
	const char *op = url + strlen(SRV_WELLKNOWN), *host;
	char iss[80], uri[320], *body;
	json_t *o;

	if (strcmp(op, "jwks.json") != 0 && strcmp(op, "openid-configuration") != 0)
		return wk_error(c, MHD_HTTP_NOT_FOUND, "not_found", "unknown path");
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return wk_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
		    "use GET");
	if (op[0] == 'j') {
		if ((body = wk_jwks(wk)) == NULL)
			return wk_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal_error",
			    "the site keys cannot be read; see the server logs");
		return wk_reply(c, body, "application/jwk-set+json");
	}
	host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	if (!wk_host_ok(host))
		return wk_error(c, MHD_HTTP_BAD_REQUEST, "bad_request",
		    "a Host header (host[:port]) is required");
	snprintf(iss, sizeof(iss), "urn:sccm:oauth2:%s", stk_site_guid(wk->site));
	snprintf(uri, sizeof(uri), "%s://%s%sjwks.json", scheme, host, SRV_WELLKNOWN);
	o = json_pack("{s:s, s:s, s:s, s:[s, s], s:[s, s]}", "issuer", iss,
	    "jwks_uri", uri, "audience", "urn:sccm:service",
	    "token_types_supported", "ClientAuthentication", "BulkRegistration",
	    "token_signing_alg_values_supported", "RS256", "ES256");
	body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (body == NULL)
		return MHD_NO;
	return wk_reply(c, body, "application/json");
}
