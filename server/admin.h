/* sitetoken admin console: a separate HTTPS listener (loopback unless told
 * otherwise) serving the certificates view as a web page and the JSON API
 * under it. See docs/api.md, "Admin API".
 *
 * Authentication is a bearer secret kept in <site>/admin.token (mode 0600,
 * owned by the server's user), made or rotated by `sitetoken admin token`.
 * The browser holds it in page memory only and sends it as
 * "Authorization: Bearer"; there are no cookies, so a page from another
 * origin cannot make the browser act with it (no CSRF by construction). */
#ifndef SITETOKEN_SERVER_ADMIN_H
#define SITETOKEN_SERVER_ADMIN_H

#include <pthread.h>
#include <stddef.h>
#include "server.h"

#define ADM_SECRET_FILE "admin.token"
#define ADM_SECRET_BYTES 32
#define ADM_SECRET_LEN 43 /* base64url of ADM_SECRET_BYTES, no padding */

/* The page's static files, embedded at build time (server/admin/embed.cmake
 * turns server/admin/ into a generated C file). */
struct adm_asset {
	const char *path;          /* URL path: "/", "/console.js" ... */
	const char *type;          /* Content-Type */
	const unsigned char *data;
	size_t len;
};
extern const struct adm_asset adm_assets[];
extern const size_t adm_asset_count;

struct srv_admin;

/* Start the admin listener on addr ("127.0.0.1:0" picks a free port). A
 * non-loopback address is refused unless remote is set. The site, its lock
 * and the logs stay owned by the caller (the MP/CMG server), which must stop
 * the admin listener first. cert/key PEM must outlive the listener. The
 * secret file is made when missing. */
int srv_admin_start(struct stk_site *site, pthread_mutex_t *site_mu,
    struct srv_logs *logs, const char *addr, int remote, const char *cert_pem,
    const char *key_pem, struct srv_admin **out, struct stk_error *err);
unsigned int srv_admin_listener_port(const struct srv_admin *a);
void srv_admin_stop(struct srv_admin *a); /* accepts NULL */

/* Make the admin bearer secret in <site_dir>/admin.token when it is missing,
 * or a new one when rotate is set (the old one stops working at once), and
 * return it in secret (wipe it after use). *created tells whether a new
 * secret was written. Refuses a file others can read or that is not ours. */
int srv_admin_secret(const char *site_dir, int rotate,
    char secret[ADM_SECRET_LEN + 1], int *created, struct stk_error *err);

#endif
