/* sitetoken — error codes and error detail.
 *
 * Every library function returns 0 (STK_OK) or a negative enum stk_rc value.
 * When the caller passes a struct stk_error, it receives the layer that failed,
 * the native code of that layer (TSS2_RC, CKR_*, OpenSSL error, errno) and a
 * human message that never contains a secret or a full token. */
#ifndef SITETOKEN_ERROR_H
#define SITETOKEN_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

enum stk_rc {
	STK_OK = 0,
	STK_E_NOMEM = -1,        /* allocation failed */
	STK_E_ARG = -2,          /* bad argument or usage */
	STK_E_IO = -3,           /* file or directory I/O */
	STK_E_PERM = -4,         /* file permissions too loose */
	STK_E_CRYPTO = -5,       /* OpenSSL failure */
	STK_E_BACKEND = -6,      /* key backend (TPM, HSM) failure */
	STK_E_UNSUPPORTED = -7,  /* backend or operation not available */
	STK_E_NOTFOUND = -8,     /* key, token, object, record not found */
	STK_E_AUTH = -9,         /* wrong PIN / auth value */
	STK_E_EXISTS = -10,      /* already exists */
	STK_E_DB = -11,          /* site database failure */
	/* Token refusals: each names the rule that refused the token. */
	STK_E_TOKEN_SIZE = -20,      /* over the 8 KiB limit */
	STK_E_TOKEN_FORMAT = -21,    /* not three segments */
	STK_E_TOKEN_B64 = -22,       /* bad base64url: padding, alphabet, stray bits */
	STK_E_TOKEN_JSON = -23,      /* header/payload not strict JSON (dup members...) */
	STK_E_TOKEN_ALG = -24,       /* none, HMAC, or alg not the key's */
	STK_E_TOKEN_HEADER = -25,    /* crit, jku, x5u, jwk, typ, unknown kid */
	STK_E_TOKEN_SIGNATURE = -26, /* signature does not verify */
	STK_E_TOKEN_CLAIMS = -27,    /* missing or mistyped claim */
	STK_E_TOKEN_ISSUER = -28,    /* iss or TenantId not this site */
	STK_E_TOKEN_AUDIENCE = -29,  /* aud not ours */
	STK_E_TOKEN_TYPE = -30,      /* token of another Type */
	STK_E_TOKEN_EXPIRED = -31,   /* now >= exp + leeway */
	STK_E_TOKEN_NOTYET = -32,    /* now < nbf - leeway */
	STK_E_TOKEN_BLOCKED = -33,   /* bulk token on the block list */
	STK_E_TOKEN_BINDING = -34,   /* cnf thumbprint is not the presented certificate */
	STK_E_TOKEN_UNKNOWN = -38,   /* signed by the site, but not on its record */
	STK_E_TOKEN_EXHAUSTED = -35, /* bulk token used up (--max-uses) */
	STK_E_TOKEN_SOURCE = -36,    /* bulk token presented from outside its --source networks */
	STK_E_ATTEST = -40,          /* key attestation evidence refused (reason in the message) */
};

/* Which layer a failure came from, so "TPM said X" and "OpenSSL said Y" differ. */
enum stk_layer {
	STK_LAYER_NONE = 0,
	STK_LAYER_SYS,     /* native = errno */
	STK_LAYER_OPENSSL, /* native = ERR_peek_last_error() */
	STK_LAYER_PKCS11,  /* native = CK_RV */
	STK_LAYER_TSS2,    /* native = TSS2_RC */
	STK_LAYER_SQLITE,  /* native = sqlite result code */
	STK_LAYER_TOKEN,   /* token validation */
	STK_LAYER_PG,      /* native = 0 (SQLSTATE is in the message) */
};

struct stk_error {
	int code;              /* enum stk_rc */
	enum stk_layer layer;
	unsigned long native;  /* native code of that layer, 0 if none */
	char msg[256];         /* human message, never a secret */
};

/* Static description of a code ("token expired"); never NULL. */
const char *stk_strerror(int code);

/* Record an error (printf-style). err may be NULL. Evaluates to code so
 * callers can write `return stk_error_set(err, STK_E_IO, ...)`. A macro
 * (GNU statement expression), so the returned code is visible at the call
 * site: static analyzers do not follow variadic functions. */
#define stk_error_set(err, code, ...) __extension__ ({ \
	int stk__code = (code); \
	stk__error_set((err), stk__code, __VA_ARGS__); \
	stk__code; })
void stk__error_set(struct stk_error *err, int code, enum stk_layer layer,
    unsigned long native, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* As stk_error_set, appending the last OpenSSL error string and clearing
 * OpenSSL's error queue. */
#define stk_error_openssl(err, code, ...) __extension__ ({ \
	int stk__code = (code); \
	stk__error_openssl((err), stk__code, __VA_ARGS__); \
	stk__code; })
void stk__error_openssl(struct stk_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void stk_error_clear(struct stk_error *err);

#ifdef __cplusplus
}
#endif
#endif
