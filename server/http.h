/* Pieces every listener shares (MP/CMG in server.c, admin console in
 * admin.c): request bodies, JSON responses, peer address, listen address.
 * Internal to server/. */
#ifndef SITETOKEN_SERVER_HTTP_H
#define SITETOKEN_SERVER_HTTP_H

#include <stddef.h>
#include <netinet/in.h>
#include <jansson.h>
#include <microhttpd.h>
#include "sitetoken/error.h"
#include "sitetoken/refusal.h"

/* A request body as received. too_big: it went over the listener's limit
 * (the rest was dropped; the route answers 413). */
struct srv_req {
	char *body;
	size_t len;
	int too_big;
	int embedded;  /* the connection's own (struct srv_conn), not malloc'd */
};

/* How a listener answers a complete request. */
typedef enum MHD_Result (*srv_route_fn)(void *ctx, struct MHD_Connection *c,
    const char *url, const char *method, const struct srv_req *rq);

/* The MHD access handler's cls: one per listener. */
struct srv_http {
	srv_route_fn route;
	void *ctx;
	size_t body_max;
};

/* MHD access handler (cls: struct srv_http) and completion callback.
 * Bodies are wiped when the request ends: they may hold a bulk token. */
enum MHD_Result srv_http_handler(void *cls, struct MHD_Connection *c,
    const char *url, const char *method, const char *version,
    const char *upload_data, size_t *upload_data_size, void **con_cls);
void srv_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe);

/* A response holding o as compact JSON (o is released), Content-Type
 * ctype and Cache-Control: no-store; the text is wiped when MHD frees it
 * (it may hold a token). NULL when out of memory. */
struct MHD_Response *srv_json_response(json_t *o, const char *ctype);

/* Queues srv_json_response(o, "application/json") with status (o is
 * released); MHD_NO when out of memory. */
enum MHD_Result srv_reply_json(struct MHD_Connection *c, unsigned int status,
    json_t *o);

/* How a listener dresses its JSON replies: Content-Type, and headers added
 * to each (may be NULL; status is the reply's). The admin console's
 * security headers are one. */
struct srv_json_style {
	const char *ctype;
	void (*headers)(struct MHD_Response *resp, unsigned int status);
};
/* srv_reply_json in a listener's style. */
enum MHD_Result srv_reply_json_as(struct MHD_Connection *c,
    const struct srv_json_style *style, unsigned int status, json_t *o);

/* A refusal: code and status from the one table (sitetoken/refusal.h); msg
 * NULL or empty takes the table's message. */
enum MHD_Result srv_refuse(struct MHD_Connection *c, enum stk_refusal why,
    const char *msg);

/* The gateway memo of this client connection (stk_gw_conn, freed when the
 * connection closes), or NULL. */
struct stk_gw_conn;
struct stk_gw_conn *srv_conn_gw(struct MHD_Connection *c);

/* A 200 response holding the JSON text json (copied), "application/json",
 * no-store: for bodies formatted without a JSON library. */
enum MHD_Result srv_reply_text_json(struct MHD_Connection *c, const char *json,
    size_t len);

/* The client's IPv4 address, or "?". */
void srv_peer_addr(struct MHD_Connection *c, char *buf, size_t len);

/* How to start a listener's daemon (srv_http_start). */
struct srv_daemon_opts {
	MHD_LogCallback log;          /* MHD's own messages, with log_cls */
	void *log_cls;
	const struct sockaddr_in *sin;
	unsigned int threads;         /* thread pool size */
	unsigned int conn_limit;      /* connections held at once */
	unsigned int per_ip_limit;    /* per client address; 0: no limit */
	unsigned int timeout;         /* idle seconds before a connection closes */
	const char *cert_pem;         /* NULL: plain HTTP; else TLS with key_pem */
	const char *key_pem;
	const char *trust_pem;        /* non-NULL: ask for a client certificate */
};

/* The TLS policy of every listener (MP over HTTPS, CMG, admin console), as
 * a GnuTLS priority string: TLS 1.2 and 1.3 only; in TLS 1.2 ECDHE key
 * exchange only (forward secrecy, no static RSA) with AEAD suites only (no
 * CBC, no RC4, no SHA-1 MAC). TLS 1.3 suites are all ECDHE/DHE + AEAD.
 * `serve --tls-priority` replaces it (docs/api.md). */
#define SRV_TLS_PRIORITY_DEFAULT \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-KX-ALL:+ECDHE-ECDSA:" \
	"+ECDHE-RSA:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:" \
	"-MAC-ALL:+AEAD:%SERVER_PRECEDENCE"

/* Set the priority string the TLS listeners started after this call use
 * (NULL: SRV_TLS_PRIORITY_DEFAULT). Call before starting any listener; the
 * string must outlive them. */
void srv_http_set_tls_priority(const char *priority);
const char *srv_http_tls_priority(void);

/* An MHD daemon (internal polling thread, thread pool) for listener h:
 * srv_http_handler with cls h, srv_http_completed. NULL on failure, with
 * errno set when the system said why. */
struct MHD_Daemon *srv_http_start(struct srv_http *h, const struct srv_daemon_opts *o);

/* "ADDR:PORT": IPv4 address ("localhost" or empty: 127.0.0.1), port 0 to
 * 65535 (0: any free port). what names the listener in messages. */
int srv_parse_listen(const char *spec, const char *what,
    struct sockaddr_in *sin, struct stk_error *err);

#endif
