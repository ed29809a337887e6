/* Prometheus metrics of `sitetoken serve --metrics ADDR:PORT`: a plain HTTP
 * listener (loopback unless told otherwise) answering GET /metrics in the
 * Prometheus text format (version 0.0.4). See docs/api.md, "Metrics".
 *
 * Thread contract: the counters are process-wide C11 atomics, so the
 * srv_metrics_* recorders may be called from any listener thread at any
 * time, with or without a metrics listener running (they then only count).
 * srv_metrics_start/stop are called by the thread that starts and stops the
 * server. Internal to server/. */
#ifndef SITETOKEN_SERVER_METRICS_H
#define SITETOKEN_SERVER_METRICS_H

#include <pthread.h>
#include <stdint.h>
#include "sitetoken/error.h"
#include "sitetoken/refusal.h"
#include "sitetoken/site.h"
#include "server.h"

enum srv_metric_listener { SRV_M_MP = 0, SRV_M_CMG, SRV_M_LISTENERS };

/* Monotonic clock in microseconds, for durations. */
uint64_t srv_metrics_clock(void);
/* A registration accepted on a listener. */
void srv_metrics_registered(enum srv_metric_listener l);
/* A renewal accepted (the CMG). */
void srv_metrics_renewed(enum srv_metric_listener l);
/* A request the site refused: reason is an STK_REASON_* code, NULL for an
 * internal error. */
void srv_metrics_refused(enum srv_metric_listener l, enum stk_refusal reason);
/* A request answered by a listener after usec microseconds. */
void srv_metrics_request(enum srv_metric_listener l, uint64_t usec);

struct srv_metrics;

/* Listen on addr ("127.0.0.1:0" picks a free port); a non-loopback address
 * is refused unless remote is set. From now on the site key's signatures
 * are timed too. The site, its lock and the logs stay the caller's and must
 * outlive the listener. */
int srv_metrics_start(struct stk_site *site, pthread_mutex_t *site_mu,
    struct srv_logs *logs, const char *addr, int remote, struct srv_metrics **out,
    struct stk_error *err);
unsigned int srv_metrics_listener_port(const struct srv_metrics *m);
void srv_metrics_stop(struct srv_metrics *m); /* accepts NULL */

#endif
