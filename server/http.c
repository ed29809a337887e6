/* Shared by the MP/CMG and admin listeners; see http.h. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "sitetoken/device.h"
#include "http.h"

/* Per TLS/TCP connection (MHD's socket context): the gateway's memo of the
 * connection (certificate thumbprint, last token's cache key;
 * site/registration/tokcache.c) and the request record reused by every
 * request on the connection (no allocation per request). */
struct srv_conn {
	struct stk_gw_conn *gw;
	struct srv_req req;          /* in use while req.embedded */
};

static void
srv_http_notify(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	struct srv_conn *sc = *socket_context;

	(void)cls;
	(void)c;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		if ((sc = calloc(1, sizeof(*sc))) != NULL)
			sc->gw = stk_gw_conn_new();
		*socket_context = sc;
		return;
	}
	if (sc == NULL)
		return;
	stk_gw_conn_free(sc->gw);
	free(sc);
	*socket_context = NULL;
}

static struct srv_conn *
srv_conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci != NULL ? ci->socket_context : NULL;
}

struct stk_gw_conn *
srv_conn_gw(struct MHD_Connection *c)
{
	struct srv_conn *sc = srv_conn_of(c);

	return sc != NULL ? sc->gw : NULL;
}

enum MHD_Result
srv_http_handler(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	const struct srv_http *h = cls;
	struct srv_req *rq = *con_cls;
	char *nb;

	(void)version;
	if (rq == NULL) {
		struct srv_conn *sc = srv_conn_of(c);

		if (sc != NULL && !sc->req.embedded) {
			rq = &sc->req;
			memset(rq, 0, sizeof(*rq));
			rq->embedded = 1;
		} else if ((rq = calloc(1, sizeof(*rq))) == NULL)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (!rq->too_big && rq->len + *upload_data_size <= h->body_max) {
			if ((nb = realloc(rq->body, rq->len + *upload_data_size + 1)) == NULL)
				return MHD_NO;
			rq->body = nb;
			memcpy(rq->body + rq->len, upload_data, *upload_data_size);
			rq->len += *upload_data_size;
			rq->body[rq->len] = '\0';
		} else
			rq->too_big = 1;
		*upload_data_size = 0;
		return MHD_YES;
	}
	return h->route(h->ctx, c, url, method, rq);
}

void
srv_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct srv_req *rq = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (rq == NULL)
		return;
	if (rq->body != NULL) {
		OPENSSL_cleanse(rq->body, rq->len);
		free(rq->body);
	}
	if (rq->embedded)
		memset(rq, 0, sizeof(*rq));   /* free for the next request */
	else
		free(rq);
	*con_cls = NULL;
}

static void
srv_wipe_free(void *p)
{
	if (p != NULL) {
		OPENSSL_cleanse(p, strlen(p));
		free(p);
	}
}

/* The headers of every JSON reply: Content-Type ctype, Cache-Control:
 * no-store. Passes NULL (out of memory) through. */
static struct MHD_Response *
srv_json_headers(struct MHD_Response *resp, const char *ctype)
{
	if (resp != NULL) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	}
	return resp;
}

/* Queues resp (NULL: out of memory, MHD_NO) and releases it. */
static enum MHD_Result
srv_queue(struct MHD_Connection *c, unsigned int status, struct MHD_Response *resp)
{
	enum MHD_Result ret = MHD_NO;

	if (resp != NULL) {
		ret = MHD_queue_response(c, status, resp);
		MHD_destroy_response(resp);
	}
	return ret;
}

struct MHD_Response *
srv_json_response(json_t *o, const char *ctype)
{
	struct MHD_Response *resp = NULL;
	char *txt = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (txt != NULL && (resp = MHD_create_response_from_buffer_with_free_callback(
	    strlen(txt), txt, srv_wipe_free)) == NULL)
		srv_wipe_free(txt);
	return srv_json_headers(resp, ctype);
}

enum MHD_Result
srv_reply_json_as(struct MHD_Connection *c, const struct srv_json_style *style,
    unsigned int status, json_t *o)
{
	/* The body may hold a client or bulk token: wiped when MHD is done. */
	struct MHD_Response *resp = srv_json_response(o, style->ctype);

	if (resp != NULL && style->headers != NULL)
		style->headers(resp, status);
	return srv_queue(c, status, resp);
}

enum MHD_Result
srv_reply_json(struct MHD_Connection *c, unsigned int status, json_t *o)
{
	static const struct srv_json_style plain = { "application/json", NULL };

	return srv_reply_json_as(c, &plain, status, o);
}

enum MHD_Result
srv_reply_text_json(struct MHD_Connection *c, const char *json, size_t len)
{
	return srv_queue(c, MHD_HTTP_OK, srv_json_headers(MHD_create_response_from_buffer(len,
	    (void *)(uintptr_t)json, MHD_RESPMEM_MUST_COPY), "application/json"));
}

enum MHD_Result
srv_refuse(struct MHD_Connection *c, enum stk_refusal why, const char *msg)
{
	const struct stk_refusal_row *row = stk_refusal(why);

	return srv_reply_json(c, row->http, json_pack("{s:s, s:s}", "error", row->code,
	    "message", msg != NULL && msg[0] ? msg : row->message));
}

void
srv_peer_addr(struct MHD_Connection *c, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr_in *sin;

	snprintf(buf, len, "?");
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || ci->client_addr == NULL)
		return;
	if (ci->client_addr->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)ci->client_addr;
		inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)len);
	}
}

int
srv_parse_listen(const char *spec, const char *what, struct sockaddr_in *sin,
    struct stk_error *err)
{
	char host[64];
	const char *colon;
	char *end;
	long port;

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	if (spec == NULL || (colon = strrchr(spec, ':')) == NULL ||
	    (size_t)(colon - spec) >= sizeof(host))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "%s listen address '%s' is not ADDR:PORT", what, spec ? spec : "");
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "bad port in '%s'", spec);
	if (strcmp(host, "localhost") == 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "'%s' is not an IPv4 address", host);
	sin->sin_port = htons((uint16_t)port);
	return STK_OK;
}

static const char *srv_tls_priority = SRV_TLS_PRIORITY_DEFAULT;

void
srv_http_set_tls_priority(const char *priority)
{
	srv_tls_priority = priority != NULL ? priority : SRV_TLS_PRIORITY_DEFAULT;
}

const char *
srv_http_tls_priority(void)
{
	return srv_tls_priority;
}

struct MHD_Daemon *
srv_http_start(struct srv_http *h, const struct srv_daemon_opts *o)
{
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem tls[5];
	size_t n = 0;

	/* TLS options only on TLS daemons (MHD refuses them otherwise). The
	 * trust list is what makes GnuTLS request a client certificate. */
	if (o->cert_pem != NULL) {
		flags |= MHD_USE_TLS;
		tls[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0,
		    (void *)(uintptr_t)o->cert_pem };
		tls[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0,
		    (void *)(uintptr_t)o->key_pem };
		/* Without a priority string GnuTLS would also take TLS 1.0/1.1,
		 * CBC and static-RSA suites (threat model, attacker 1). */
		tls[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_PRIORITIES, 0,
		    (void *)(uintptr_t)srv_tls_priority };
		if (o->trust_pem != NULL)
			tls[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_TRUST, 0,
			    (void *)(uintptr_t)o->trust_pem };
	}
	tls[n] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	return MHD_start_daemon(flags, 0, NULL, NULL, srv_http_handler, h,
	    MHD_OPTION_EXTERNAL_LOGGER, o->log, o->log_cls,
	    MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)o->sin,
	    MHD_OPTION_THREAD_POOL_SIZE, o->threads,
	    MHD_OPTION_CONNECTION_LIMIT, o->conn_limit,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->per_ip_limit,
	    MHD_OPTION_CONNECTION_TIMEOUT, o->timeout,
	    MHD_OPTION_NOTIFY_COMPLETED, srv_http_completed, NULL,
	    MHD_OPTION_NOTIFY_CONNECTION, srv_http_notify, NULL,
	    MHD_OPTION_ARRAY, tls,
	    MHD_OPTION_END);
}
