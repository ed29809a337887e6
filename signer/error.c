#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include "sitetoken/error.h"

const char *
stk_strerror(int code)
{
	switch (code) {
	case STK_OK: return "success";
	case STK_E_NOMEM: return "out of memory";
	case STK_E_ARG: return "invalid argument";
	case STK_E_IO: return "I/O error";
	case STK_E_PERM: return "file permissions too open";
	case STK_E_CRYPTO: return "cryptographic library error";
	case STK_E_BACKEND: return "key backend error";
	case STK_E_UNSUPPORTED: return "not supported";
	case STK_E_NOTFOUND: return "not found";
	case STK_E_AUTH: return "authentication failed";
	case STK_E_EXISTS: return "already exists";
	case STK_E_DB: return "site database error";
	case STK_E_TOKEN_SIZE: return "token too large";
	case STK_E_TOKEN_FORMAT: return "token malformed";
	case STK_E_TOKEN_B64: return "token has invalid base64url";
	case STK_E_TOKEN_JSON: return "token has invalid JSON";
	case STK_E_TOKEN_ALG: return "token algorithm refused";
	case STK_E_TOKEN_HEADER: return "token header refused";
	case STK_E_TOKEN_SIGNATURE: return "token signature invalid";
	case STK_E_TOKEN_CLAIMS: return "token claims invalid";
	case STK_E_TOKEN_ISSUER: return "token issuer not this site";
	case STK_E_TOKEN_AUDIENCE: return "token audience invalid";
	case STK_E_TOKEN_TYPE: return "token of the wrong type";
	case STK_E_TOKEN_EXPIRED: return "token expired";
	case STK_E_TOKEN_NOTYET: return "token not yet valid";
	case STK_E_TOKEN_BLOCKED: return "token blocked";
	case STK_E_TOKEN_BINDING: return "token not bound to this certificate";
	case STK_E_TOKEN_UNKNOWN: return "token not on the site's record";
	case STK_E_TOKEN_EXHAUSTED: return "bulk token used up";
	case STK_E_TOKEN_SOURCE: return "bulk token presented from outside its networks";
	case STK_E_ATTEST: return "key attestation evidence refused";
	default: return "unknown error";
	}
}

void
stk_error_clear(struct stk_error *err)
{
	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
}

static void __attribute__((format(printf, 5, 0)))
err_vset(struct stk_error *err, int code, enum stk_layer layer,
    unsigned long native, const char *fmt, va_list ap)
{
	err->code = code;
	err->layer = layer;
	err->native = native;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

void
stk__error_set(struct stk_error *err, int code, enum stk_layer layer,
    unsigned long native, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	err_vset(err, code, layer, native, fmt, ap);
	va_end(ap);
}

void
stk__error_openssl(struct stk_error *err, int code, const char *fmt, ...)
{
	unsigned long e = ERR_peek_last_error();
	char ebuf[128] = "";
	va_list ap;
	size_t n;

	if (e != 0)
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
	ERR_clear_error();
	if (err == NULL)
		return;
	va_start(ap, fmt);
	err_vset(err, code, STK_LAYER_OPENSSL, e, fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	if (e != 0 && n + 3 < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - n, " (%s)", ebuf);
}
