/* sitetoken server: the management point (MP) and cloud gateway (CMG)
 * listeners over libmicrohttpd. Thin: parse the request, call site/device
 * policy, write the JSON response and one log line. See docs/api.md. */
#ifndef SITETOKEN_SERVER_H
#define SITETOKEN_SERVER_H

#include <stddef.h>
#include "sitetoken/error.h"
#include "sitetoken/site.h"

#define SRV_BODY_MAX 16384            /* request bodies over this are refused (413) */
#define SRV_THREADS_DEFAULT 4
/* Per listener. One address cannot hold every slot (slowloris): the
 * per-address limit is a fraction of the total, and a connection idle for
 * SRV_CONN_TIMEOUT seconds is closed. */
#define SRV_CONN_LIMIT 512u
#define SRV_CONN_PER_IP 64u
#define SRV_CONN_TIMEOUT 10u
#define SRV_SITE_NUMBER_DEFAULT "72186325152220500"

struct srv_config {
	const char *mp_addr;        /* "127.0.0.1:8080"; port 0 picks a free port */
	int mp_tls;                 /* MP over HTTPS */
	const char *cmg_addr;       /* CMG listener (always HTTPS, mutual TLS) */
	const char *tls_cert_pem;   /* server certificate chain, PEM text */
	const char *tls_key_pem;    /* server key, PEM text (wiped by the caller) */
	const char *trusted_ca_pem; /* CA whose client certificates the HTTPS MP
	                               accepts as a registration credential; NULL */
	const char *site_number;    /* CMG path segment after /CCM_Proxy_MutualAuth/ */
	unsigned int threads;       /* thread pool size per listener */
	const char *admin_addr;     /* admin console listener (HTTPS, bearer
	                               secret; server/admin.h); NULL: off */
	int admin_remote;           /* allow a non-loopback admin_addr */
	const char *metrics_addr;   /* Prometheus metrics (plain HTTP; server/
	                               metrics.h); NULL: off */
	int metrics_remote;         /* allow a non-loopback metrics_addr */
	const char *tls_priority;   /* GnuTLS priority string of every TLS
	                               listener; NULL: TLS 1.2/1.3, ECDHE, AEAD
	                               (SRV_TLS_PRIORITY_DEFAULT in http.h) */
};

struct srv;

/* Start both listeners. The site stays owned by the caller and must outlive
 * the server; the server serialises its use of it. Logs go to
 * <site>/logs/{CCM_STS,MP_RegistrationManager,ClientAuth}.log. */
int srv_start(struct stk_site *site, const struct srv_config *cfg,
    struct srv **out, struct stk_error *err);
/* Bound ports (useful with port 0). */
unsigned int srv_mp_port(const struct srv *s);
unsigned int srv_cmg_port(const struct srv *s);
unsigned int srv_admin_port(const struct srv *s); /* 0 when off */
unsigned int srv_metrics_port(const struct srv *s); /* 0 when off */
/* Stop accepting, finish requests in flight, close the logs; accepts NULL. */
void srv_stop(struct srv *s);

/* Logs (server/srvlog.c). One line per event:
 *   2026-11-25T17:20:00Z [tid 1234] <Component>: message */
enum srv_log_file { SRV_LOG_STS = 0, SRV_LOG_REG, SRV_LOG_AUTH, SRV_LOG_COUNT };
struct srv_logs;
int srv_logs_open(const char *site_dir, struct srv_logs **out, struct stk_error *err);
void srv_logs_close(struct srv_logs *l);
/* Ask every open log set to reopen its files (after logrotate moved them)
 * before its next line. Async-signal-safe; any thread may call it. */
void srv_logs_reopen(void);
void srv_log(struct srv_logs *l, enum srv_log_file which, const char *component,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same line with the message made of parts concatenated (no printf):
 * for the gateway's per-request lines. */
void srv_log_parts(struct srv_logs *l, enum srv_log_file which,
    const char *component, const char *const *parts, size_t nparts);

#endif
