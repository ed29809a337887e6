/* The server's periodic housekeeping (server/housekeeping.c). Internal to
 * server/. */
#ifndef SITETOKEN_SERVER_HOUSEKEEPING_H
#define SITETOKEN_SERVER_HOUSEKEEPING_H

#include <pthread.h>
#include "sitetoken/error.h"
#include "sitetoken/site.h"

#define SRV_HOUSEKEEPING_INTERVAL 300u /* seconds between runs */

struct srv_hk;
struct srv_logs;

/* A thread that retires due site keys (stk_site_keys_retire_due) at once
 * and then every interval seconds (0: SRV_HOUSEKEEPING_INTERVAL), holding
 * site_mu around each use of site; results go to the CCM_STS log. */
int srv_housekeeping_start(struct stk_site *site, pthread_mutex_t *site_mu,
    struct srv_logs *logs, unsigned int interval, struct srv_hk **out,
    struct stk_error *err);
/* Stop and join the thread; accepts NULL. */
void srv_housekeeping_stop(struct srv_hk *h);

#endif
