/* sitetoken — site key and the key backend interface.
 *
 * A backend is one `const struct stk_key_backend` (curl vtls style): identity
 * and capabilities first, then one function pointer per operation, NULL for
 * "not supported". Backends are listed in signer/key.c; the core never knows
 * which one it talks to. A key object starts with `const struct
 * stk_key_backend *vt` (BearSSL style), so a backend allocates its own larger
 * struct with `struct stk_key` as first member. */
#ifndef SITETOKEN_KEY_H
#define SITETOKEN_KEY_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include "sitetoken/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum stk_key_type {
	STK_KEY_NONE = 0,
	STK_KEY_RSA2048,
	STK_KEY_RSA3072,
	STK_KEY_P256,
};

/* JWS alg of a key type: "RS256" or "ES256" (NULL for NONE). */
const char *stk_key_type_alg(enum stk_key_type type);
/* "rsa2048", "rsa3072", "p256"; and back (STK_KEY_NONE if unknown). */
const char *stk_key_type_name(enum stk_key_type type);
enum stk_key_type stk_key_type_parse(const char *name);

/* Largest signature a backend returns: RSA-3072 = 384 bytes. */
#define STK_SIG_MAX 512
#define STK_SHA256_LEN 32
#define STK_P256_SIG_LEN 64

/* Capability bits: what the core does with each.
 * GENERATE: stk_key_generate refuses a backend without it (site init,
 *   key rotate, node add make their key with it).
 * NONEXPORTABLE: stk_key_describe reports non_exportable = 0 for every key
 *   of a backend without it, whatever the backend says.
 * THREADSAFE: sign() may run on several threads at once; without it,
 *   stk_key_sign/stk_key_sign_digest serialise all signing on the backend. */
#define STK_CAP_GENERATE      0x01u /* can generate a key inside the backend */
#define STK_CAP_NONEXPORTABLE 0x02u /* keys can be made non-exportable */
#define STK_CAP_THREADSAFE    0x04u /* sign() may be called from several threads */

/* Options a backend may need; unset members are NULL/0. */
struct stk_key_opts {
	const char *site_dir;    /* where a backend may keep key blobs/files */
	const char *tcti;        /* tpm: TCTI config (else SITETOKEN_TCTI, else default) */
	const char *module_path; /* pkcs11: module, unless the URI has module-path */
	const char *label;       /* pkcs11: object label for generate, if not in URI */
};

/* One attribute read back from the device, e.g. {"CKA_EXTRACTABLE","false"}. */
struct stk_key_attr {
	char name[40];
	char value[88];
};

#define STK_KEY_ATTRS_MAX 16

/* What `key show` reports. Filled by the backend from the device itself. */
struct stk_key_info {
	const char *backend;      /* backend name */
	enum stk_key_type type;
	int non_exportable;       /* 1: the device enforces that the private key never leaves */
	char location[256];       /* where the key lives (URI without secrets) */
	size_t nattrs;
	struct stk_key_attr attrs[STK_KEY_ATTRS_MAX];
};

struct stk_key;

struct stk_key_backend {
	const char *name;    /* "file", "pkcs11", "tpm" */
	const char *scheme;  /* URI scheme that selects it: "file", "pkcs11", "tpm" */
	unsigned int caps;   /* STK_CAP_* */

	/* Open an existing key. `uri` includes the scheme. */
	int (*open)(const char *uri, const struct stk_key_opts *opts,
	    struct stk_key **out, struct stk_error *err);

	/* Generate a new key inside the backend and open it. *out_uri receives
	 * the URI to store for later open() (malloc'd, caller frees). NULL if
	 * the backend cannot generate. */
	int (*generate)(const char *uri, enum stk_key_type type,
	    const struct stk_key_opts *opts, struct stk_key **out,
	    char **out_uri, struct stk_error *err);

	/* Public key as an OpenSSL EVP_PKEY (new reference; caller frees). */
	int (*get_public)(struct stk_key *key, EVP_PKEY **out,
	    struct stk_error *err);

	/* Sign a SHA-256 digest. RSA: RSASSA-PKCS1-v1_5 (DigestInfo added by
	 * the backend or device). EC P-256: raw r||s, 64 bytes. *siglen holds
	 * the buffer size on entry, the signature length on return. */
	int (*sign)(struct stk_key *key, const unsigned char *digest,
	    size_t dlen, unsigned char *sig, size_t *siglen,
	    struct stk_error *err);

	/* Read the key's protection attributes back from the device. */
	int (*describe)(struct stk_key *key, struct stk_key_info *info,
	    struct stk_error *err);

	/* Release everything; accepts NULL. */
	void (*close)(struct stk_key *key);

	/* A monotonic counter inside the device, one per `name`: its value,
	 * advanced by one first when `advance` (the device may start it at
	 * any value; it never goes down, not even when the disk is restored).
	 * 0 when it was never advanced. NULL: the device has none (file,
	 * pkcs11). The audit log anchors its head to it (site/audit/audit.c). */
	int (*counter)(struct stk_key *key, const char *name, int advance,
	    uint64_t *value, struct stk_error *err);
};

struct stk_key {
	const struct stk_key_backend *vt;
	enum stk_key_type type;
};

/* NULL-terminated list of compiled-in backends. */
const struct stk_key_backend *const *stk_key_backends(void);
/* Backend by name ("file"...), NULL if not compiled in. */
const struct stk_key_backend *stk_key_backend_find(const char *name);

/* Open by URI; the scheme picks the backend ("pkcs11:...", "tpm:...",
 * "file:PATH" or a plain path for the file backend). */
int stk_key_open(const char *uri, const struct stk_key_opts *opts,
    struct stk_key **out, struct stk_error *err);
int stk_key_generate(const char *backend, const char *uri,
    enum stk_key_type type, const struct stk_key_opts *opts,
    struct stk_key **out, char **out_uri, struct stk_error *err);
int stk_key_get_public(struct stk_key *key, EVP_PKEY **out,
    struct stk_error *err);
/* Sign a digest and check the signature shape (RSA length, r||s length). */
int stk_key_sign_digest(struct stk_key *key, const unsigned char *digest,
    size_t dlen, unsigned char *sig, size_t *siglen, struct stk_error *err);
/* Hash `data` with SHA-256 and sign it. */
int stk_key_sign(struct stk_key *key, const unsigned char *data, size_t len,
    unsigned char *sig, size_t *siglen, struct stk_error *err);
int stk_key_describe(struct stk_key *key, struct stk_key_info *info,
    struct stk_error *err);
void stk_key_close(struct stk_key *key);
/* The backend's monotonic counter (see stk_key_backend.counter);
 * STK_E_UNSUPPORTED when it has none. */
int stk_key_counter(struct stk_key *key, const char *name, int advance,
    uint64_t *value, struct stk_error *err);

/* Key type of a public key, STK_KEY_NONE if not one we sign with. */
enum stk_key_type stk_key_type_of_pkey(const EVP_PKEY *pkey);

/* Helper for backends: append an attribute to info (silently drops past max). */
void stk_key_info_add(struct stk_key_info *info, const char *name,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Verify a signature made by stk_key_sign (RS256 PKCS#1 v1.5 or ES256 raw
 * r||s over SHA-256 of data) with a public key. 0 if it verifies,
 * STK_E_TOKEN_SIGNATURE if not, other negative codes on failure. */
int stk_sig_verify(EVP_PKEY *pub, const unsigned char *data, size_t len,
    const unsigned char *sig, size_t siglen);

/* The same check through a context prepared once per public key (the
 * digest and padding set up in advance, copied for each call): shareable
 * between threads, and it spares OpenSSL's per-call algorithm look-ups.
 * stk_sig_ctx_new returns NULL when out of memory or pub is not a site key
 * type; stk_sig_ctx_free accepts NULL. */
struct stk_sig_ctx;
struct stk_sig_ctx *stk_sig_ctx_new(EVP_PKEY *pub);
void stk_sig_ctx_free(struct stk_sig_ctx *c);
int stk_sig_verify_ctx(const struct stk_sig_ctx *c, const unsigned char *data,
    size_t len, const unsigned char *sig, size_t siglen);

/* ES256: raw r||s <-> DER ECDSA-Sig-Value, for backends and certificates. */
int stk_ecdsa_raw_to_der(const unsigned char *raw, size_t rawlen,
    unsigned char **der, size_t *derlen);
int stk_ecdsa_der_to_raw(const unsigned char *der, size_t derlen,
    unsigned char *raw, size_t rawlen);

#ifdef __cplusplus
}
#endif
#endif
