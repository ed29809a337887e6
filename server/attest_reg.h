/* Attested registration through the CMG (docs/api.md): nonce, evidence,
 * credential activation. Thread contract: srv_attreg_route may be called
 * from any listener thread; the nonce table has its own lock and every use
 * of the site handle holds the server's site lock (passed in). */
#ifndef SITETOKEN_SERVER_ATTEST_REG_H
#define SITETOKEN_SERVER_ATTEST_REG_H

#include <pthread.h>
#include <stddef.h>
#include <microhttpd.h>
#include "sitetoken/site.h"
#include "server.h"

#define SRV_ATTREG_TTL 120        /* seconds a nonce or a pending registration lives */
#define SRV_ATTREG_SLOTS 256      /* outstanding nonces + pending registrations */

struct srv_attreg;
struct srv_attreg *srv_attreg_new(struct stk_site *site, pthread_mutex_t *site_mu,
    struct srv_logs *logs);
void srv_attreg_free(struct srv_attreg *ar);
/* op: "nonce", "register" or "activate" (after .../sitetoken/v1/attest/).
 * cert_der: the TLS client certificate (NULL when none). */
enum MHD_Result srv_attreg_route(struct srv_attreg *ar, struct MHD_Connection *c,
    const char *op, const char *method, const char *body, size_t len,
    const unsigned char *cert_der, size_t cert_len, const char *peer);

#endif
