/* Keys for relying parties: GET /.well-known/jwks.json (every site key that
 * verifies tokens: stk_site_jwks) and GET /.well-known/openid-configuration
 * (issuer, jwks_uri) on the MP and the CMG, without a client certificate,
 * with Cache-Control max-age and ETag / If-None-Match. See docs/api.md.
 * Internal to server/. */
#ifndef SITETOKEN_SERVER_WELLKNOWN_H
#define SITETOKEN_SERVER_WELLKNOWN_H

#include <pthread.h>
#include <stdint.h>
#include <microhttpd.h>
#include "sitetoken/site.h"
#include "server.h"

#define SRV_WELLKNOWN "/.well-known/"
#define SRV_WELLKNOWN_MAX_AGE 300  /* seconds a relying party may cache */
#define SRV_WELLKNOWN_REREAD 10    /* seconds the server keeps the key set */

/* Shared by both listeners' threads: mu guards the cached key set. */
struct srv_wellknown {
	struct stk_site *site;
	pthread_mutex_t *site_mu;
	struct srv_logs *logs;
	pthread_mutex_t mu;
	char *jwks;           /* cached JWKS text, or NULL */
	int64_t read_at;      /* when it was read (monotonic seconds) */
};

void srv_wellknown_init(struct srv_wellknown *wk, struct stk_site *site,
    pthread_mutex_t *site_mu, struct srv_logs *logs);
void srv_wellknown_clear(struct srv_wellknown *wk);
/* Answer a request whose path starts with SRV_WELLKNOWN. scheme: "http" or
 * "https", for the jwks_uri of the discovery document. */
enum MHD_Result srv_wellknown_route(struct srv_wellknown *wk,
    struct MHD_Connection *c, const char *url, const char *method,
    const char *scheme);

#endif
