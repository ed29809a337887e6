/* Internals of the pkcs11 key backend shared by its files and its unit
 * tests; not part of the library API. */
#ifndef SITETOKEN_P11_INT_H
#define SITETOKEN_P11_INT_H

#include <stddef.h>
#include "sitetoken/error.h"

/* An RFC 7512 PKCS#11 URI, percent-decoded. Text members are malloc'd,
 * NUL-terminated, NULL when absent. `id` is binary (id_len bytes). */
struct stk_p11_uri {
	char *token;
	char *manufacturer;
	char *model;
	char *serial;
	char *object;
	char *type;          /* "private", "public", "cert", ... */
	unsigned char *id;
	size_t id_len;
	char *module_path;   /* query: module-path */
	char *pin_source;    /* query: pin-source (a file, never the PIN) */
};

/* Parse `uri` ("pkcs11:..."). A pin-value is refused: the PIN never goes
 * where argv or a database could keep it. STK_E_ARG on any syntax error. */
int stk_p11_uri_parse(const char *uri, struct stk_p11_uri *out,
    struct stk_error *err);
/* Canonical text of u (attributes percent-encoded where needed). *out
 * malloc'd. */
int stk_p11_uri_format(const struct stk_p11_uri *u, char **out);
void stk_p11_uri_clear(struct stk_p11_uri *u); /* accepts NULL */

#define STK_P11_PIN_MAX 256

/* Get the user PIN: the URI's pin-source file, else $SITETOKEN_PKCS11_PIN,
 * else the file named by $SITETOKEN_PKCS11_PIN_FILE, else a prompt when
 * stdin is a terminal. A PIN file readable or writable by group/others is
 * refused. pin must hold STK_P11_PIN_MAX bytes; the caller wipes it. */
int stk_p11_pin_get(const char *pin_source, const char *token_label,
    char *pin, size_t pinsz, struct stk_error *err);

#endif
