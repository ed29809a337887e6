/* Server internals exposed for the fuzz targets (fuzz/fuzz_server_body.c):
 * the request parsers, without MHD, TLS or a site. Not part of the API. */
#ifndef SITETOKEN_SERVER_INT_H
#define SITETOKEN_SERVER_INT_H

#include <stddef.h>
#include <jansson.h>

#define SRV_HOSTNAME_MAX 255   /* the register body's optional "hostname" */

/* A parsed register body. The strings point into o; release with
 * srv_register_body_clear (which wipes the bulk and ID token text). */
struct srv_register_body {
	json_t *o;
	const char *certificate, *bulk_token, *hostname, *nonce, *proof;
	const char *id_token;      /* OIDC ID token in place of bulk_token */
};

/* Parse a register (or re-key) body: a strict JSON object (duplicates and
 * unknown members refused) with optional string members certificate,
 * bulk_token, id_token, hostname (printable, at most SRV_HOSTNAME_MAX bytes), nonce
 * and proof (the HTTP MP's proof of possession, docs/api.md). 0, or -1 with a
 * reason for the client in why. */
int srv_parse_register_body(const char *body, size_t len,
    struct srv_register_body *out, char *why, size_t whylen);
void srv_register_body_clear(struct srv_register_body *b);

/* The token of an "Authorization: Bearer <token>" header value (pointing
 * into h), or NULL when h is NULL or not a bearer credential. */
const char *srv_parse_bearer(const char *h);

#endif
