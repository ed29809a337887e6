/* RFC 7512 PKCS#11 URIs: the only way a user names a key in a token.
 * Parsing is strict (unknown or repeated attributes are refused) because an
 * attribute we silently ignored would widen the match and could select a
 * key the administrator did not mean. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include "p11_int.h"

void
stk_p11_uri_clear(struct stk_p11_uri *u)
{
	if (u == NULL)
		return;
	free(u->token);
	free(u->manufacturer);
	free(u->model);
	free(u->serial);
	free(u->object);
	free(u->type);
	free(u->id);
	free(u->module_path);
	free(u->pin_source);
	memset(u, 0, sizeof(*u));
}

static int
p11_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode [s, s+len) into a new buffer (NUL-terminated for convenience).
 * Text values may not contain NUL: a C string would truncate them. */
static int
p11_pct_decode(const char *s, size_t len, int binary, unsigned char **out,
    size_t *outlen, const char *name, struct stk_error *err)
{
	unsigned char *buf;
	size_t i, n = 0;
	int hi, lo, r = STK_OK;

	*out = NULL;
	*outlen = 0;
	if ((buf = malloc(len + 1)) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0,
		    "out of memory");
	for (i = 0; i < len; i++) {
		if (s[i] != '%') {
			buf[n++] = (unsigned char)s[i];
			continue;
		}
		if (i + 2 >= len) {
			r = STK_E_ARG;
			break;
		}
		if ((hi = p11_hexval(s[i + 1])) < 0 ||
		    (lo = p11_hexval(s[i + 2])) < 0) {
			r = STK_E_ARG;
			break;
		}
		buf[n++] = (unsigned char)(hi << 4 | lo);
		i += 2;
	}
	if (r == STK_OK && !binary && memchr(buf, '\0', n) != NULL)
		r = STK_E_ARG;
	if (r != STK_OK) {
		free(buf);
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "PKCS#11 URI: bad percent-encoding in '%s'", name);
	}
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return STK_OK;
}

static int
p11_uri_dup(const char *nm, struct stk_error *err)
{
	return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
	    "PKCS#11 URI: attribute '%s' given twice", nm);
}

/* Set one attribute. `in_query`: after '?', where other names live. */
static int
p11_uri_attr(struct stk_p11_uri *u, const char *name, size_t nlen,
    const char *val, size_t vlen, int in_query, struct stk_error *err)
{
	static const struct {
		const char *name;
		int query;
		size_t off;
	} attrs[] = {
		{ "token", 0, offsetof(struct stk_p11_uri, token) },
		{ "manufacturer", 0, offsetof(struct stk_p11_uri, manufacturer) },
		{ "model", 0, offsetof(struct stk_p11_uri, model) },
		{ "serial", 0, offsetof(struct stk_p11_uri, serial) },
		{ "object", 0, offsetof(struct stk_p11_uri, object) },
		{ "type", 0, offsetof(struct stk_p11_uri, type) },
		{ "module-path", 1, offsetof(struct stk_p11_uri, module_path) },
		{ "pin-source", 1, offsetof(struct stk_p11_uri, pin_source) },
	};
	char nm[32];
	char **slot;
	unsigned char *dec = NULL;
	size_t i, declen;
	int r;

	if (nlen == 0 || nlen >= sizeof(nm))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "PKCS#11 URI: bad attribute name");
	memcpy(nm, name, nlen);
	nm[nlen] = '\0';
	/* Never echo the value: it could be a PIN. */
	if (strcmp(nm, "pin-value") == 0)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "PKCS#11 URI: pin-value is refused (a PIN in a URI ends up "
		    "in argv and the site database); use SITETOKEN_PKCS11_PIN, "
		    "SITETOKEN_PKCS11_PIN_FILE or pin-source=file:PATH");
	/* RFC 7512 §2.3: vendor attributes start with "x-"; they cannot
	 * narrow our match, so they are ignored. */
	if (strncmp(nm, "x-", 2) == 0)
		return STK_OK;
	if (strcmp(nm, "id") == 0 && !in_query) {
		if (u->id != NULL)
			return p11_uri_dup(nm, err);
		return p11_pct_decode(val, vlen, 1, &u->id, &u->id_len, nm, err);
	}
	for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		if (strcmp(attrs[i].name, nm) != 0 || attrs[i].query != in_query)
			continue;
		slot = (char **)(void *)((char *)u + attrs[i].off);
		if (*slot != NULL)
			return p11_uri_dup(nm, err);
		if ((r = p11_pct_decode(val, vlen, 0, &dec, &declen, nm, err)) != 0)
			return r;
		*slot = (char *)dec;
		return STK_OK;
	}
	return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
	    "PKCS#11 URI: attribute '%s' is not supported %s", nm,
	    in_query ? "in the query (module-path, pin-source)" :
	    "in the path (token, manufacturer, model, serial, object, id, type)");
}

static int
p11_uri_part(struct stk_p11_uri *u, const char *s, size_t len, char sep,
    int in_query, struct stk_error *err)
{
	const char *end = s + len, *item, *next, *eq;
	int r;

	for (item = s; item < end; item = next + 1) {
		if ((next = memchr(item, sep, (size_t)(end - item))) == NULL)
			next = end;
		/* An empty path is fine ("pkcs11:"), an empty attribute not. */
		if (next == item)
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "PKCS#11 URI: empty attribute");
		if ((eq = memchr(item, '=', (size_t)(next - item))) == NULL)
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "PKCS#11 URI: attribute without '='");
		if ((r = p11_uri_attr(u, item, (size_t)(eq - item), eq + 1,
		    (size_t)(next - eq - 1), in_query, err)) != 0)
			return r;
		if (next == end)
			break;
	}
	return STK_OK;
}

int
stk_p11_uri_parse(const char *uri, struct stk_p11_uri *out,
    struct stk_error *err)
{
	const char *p, *q;
	int r;

	memset(out, 0, sizeof(*out));
	if (uri == NULL || strncasecmp(uri, "pkcs11:", 7) != 0)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "not a PKCS#11 URI (must start with 'pkcs11:')");
	p = uri + 7;
	if (strchr(p, '#') != NULL) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "PKCS#11 URI: a fragment ('#') is not allowed");
		goto out;
	}
	q = strchr(p, '?');
	if ((r = p11_uri_part(out, p, q ? (size_t)(q - p) : strlen(p), ';', 0,
	    err)) != 0)
		goto out;
	if (q != NULL && (r = p11_uri_part(out, q + 1, strlen(q + 1), '&', 1,
	    err)) != 0)
		goto out;
out:
	if (r != STK_OK)
		stk_p11_uri_clear(out);
	return r;
}

/* Append name=value, percent-encoding all but RFC 3986 unreserved
 * characters (and '/' in paths of the query). */
static int
p11_uri_put(char **buf, size_t *len, size_t *cap, const char *pre,
    const char *name, const unsigned char *v, size_t vlen, int all,
    int slash_ok)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t need = strlen(pre) + strlen(name) + 1 + vlen * 3 + 1, i;
	char *nb, *o;

	if (*len + need > *cap) {
		if ((nb = realloc(*buf, *len + need + 64)) == NULL)
			return STK_E_NOMEM;
		*buf = nb;
		*cap = *len + need + 64;
	}
	o = *buf + *len;
	o += sprintf(o, "%s%s=", pre, name);
	for (i = 0; i < vlen; i++) {
		unsigned char c = v[i];

		if (!all && (isalnum(c) || c == '-' || c == '.' || c == '_' ||
		    c == '~' || (slash_ok && (c == '/' || c == ':'))))
			*o++ = (char)c;
		else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	*len = (size_t)(o - *buf);
	return STK_OK;
}

int
stk_p11_uri_format(const struct stk_p11_uri *u, char **out)
{
	const struct { const char *name; const char *v; } path[] = {
		{ "token", u->token }, { "manufacturer", u->manufacturer },
		{ "model", u->model }, { "serial", u->serial },
		{ "object", u->object },
	};
	char *buf = NULL;
	size_t len = 0, cap = 0, i;
	int r = STK_OK, n = 0, q = 0;

	*out = NULL;
	if ((buf = strdup("pkcs11:")) == NULL)
		return STK_E_NOMEM;
	len = strlen(buf);
	cap = len + 1;
	for (i = 0; r == 0 && i < sizeof(path) / sizeof(path[0]); i++)
		if (path[i].v != NULL)
			r = p11_uri_put(&buf, &len, &cap, n++ ? ";" : "", path[i].name,
			    (const unsigned char *)path[i].v, strlen(path[i].v), 0, 0);
	if (r == 0 && u->id != NULL)
		r = p11_uri_put(&buf, &len, &cap, n++ ? ";" : "", "id", u->id,
		    u->id_len, 1, 0);
	if (r == 0 && u->type != NULL)
		r = p11_uri_put(&buf, &len, &cap, n++ ? ";" : "", "type",
		    (const unsigned char *)u->type, strlen(u->type), 0, 0);
	if (r == 0 && u->module_path != NULL)
		r = p11_uri_put(&buf, &len, &cap, q++ ? "&" : "?", "module-path",
		    (const unsigned char *)u->module_path,
		    strlen(u->module_path), 0, 1);
	if (r == 0 && u->pin_source != NULL)
		r = p11_uri_put(&buf, &len, &cap, q++ ? "&" : "?", "pin-source",
		    (const unsigned char *)u->pin_source,
		    strlen(u->pin_source), 0, 1);
	if (r != 0) {
		free(buf);
		return r;
	}
	*out = buf;
	return STK_OK;
}
