/* sitetoken-agent internals: state directory, logs, HTTP, registration and
 * renewal. The agent is a client of the HTTP API in docs/api.md only. */
#ifndef SITETOKEN_AGENT_H
#define SITETOKEN_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include "sitetoken/error.h"
#include "sitetoken/refusal.h"

#define AGENT_RENEW_DAYS_DEFAULT 30
#define AGENT_REKEY_DAYS_DEFAULT 60 /* re-key this long before the certificate expires */
#define AGENT_RESP_MAX 65536
#define AGENT_CERT_DAYS 3650 /* the device's self-signed certificate (a new key) */
#define AGENT_PEM_MAX 65536  /* bytes of a certificate file the agent reads */

/* Exit codes, as the admin CLI. */
#define AGENT_EXIT_OK 0
#define AGENT_EXIT_REFUSED 1  /* the server refused (reason on stderr) */
#define AGENT_EXIT_USAGE 2
#define AGENT_EXIT_ERROR 3    /* I/O, TLS, network, state */

enum agent_log_file { AGENT_LOG_SETUP = 0, AGENT_LOG_CLIENTID, AGENT_LOG_COUNT };

/* What the state directory remembers (state.json); the token is in its
 * own 0600 file, client.token. */
struct agent_state {
	char device_guid[40];
	char mp[512];         /* internal MP base URL */
	char cmg[512];        /* CMG base URL .../CCM_Proxy_MutualAuth/<n> */
	char site_code[16];
	char via[4];
	char jti[40];
	int64_t issued_at, expires_at;
	char ca_hash[80];     /* "sha256:HEX" gateway pin (pin.c), "" for none */
};

struct agent {
	char *dir;            /* state directory (0700) */
	const char *ca_file;  /* trust for the server TLS certificate */
	int64_t clock_offset; /* tests only: SITETOKEN_TIME_OFFSET / --clock-offset */
	int renew_days;
	int rekey_days;
	struct agent_state st;
	int have_state;
	const char *key_spec;  /* --key: NULL/"file", "tpm" or "pkcs11:URI" */
	const char *tcti;      /* --tcti (else SITETOKEN_TCTI) */
	struct agent_devkey *devkey; /* the held key, opened on first TLS use */
	const char *ca_hash;   /* --ca-hash / /cahash: for this registration */
	const char *id_token;  /* --id-token-file / /idtoken:-: an OIDC ID token
	                          sent in place of a bulk token (never logged,
	                          never written) */
	unsigned char pin[32]; /* pin.c: the parsed st.ca_hash during a request */
	int pin_devkey;        /* pin.c: the request presents the held device key */
};

int64_t agent_now(const struct agent *a);
/* t as "YYYY-MM-DDTHH:MM:SSZ" (UTC) in buf (at least 21 bytes); buf. */
const char *agent_time(int64_t t, char *buf, size_t len);
void agent_log(struct agent *a, enum agent_log_file which, const char *component,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
struct stk_key;

/* Wipe and free a string that held a secret (token, PIN, body); accepts NULL. */
void agent_free_secret(char *p);
/* dir/name in out: -1 when it does not fit. */
int agent_path(const struct agent *a, const char *name, char *out, size_t len);
/* Write a new self-signed certificate of key (CN: this host's name, the
 * device's certificate lifetime) at path, 0644; host and x5t (base64url
 * SHA-256) say what was written, for the setup log. */
int agent_write_self_cert(struct agent *a, struct stk_key *key, const char *path,
    char host[256], char x5t[44], struct stk_error *err);

/* Create/check the state directory, load state.json when present. */
int agent_open(struct agent *a, const char *dir, struct stk_error *err);
void agent_close(struct agent *a);
int agent_state_save(struct agent *a, struct stk_error *err);

/* Make the device key (P-256, 0600) and self-signed certificate unless they
 * exist; check their permissions when they do. */
int agent_ensure_identity(struct agent *a, struct stk_error *err);

/* Register: through the CMG when cmg_url and a bulk token (or a->id_token)
 * are given, else
 * with the MP (bulk token optional there). The bulk token is only sent,
 * never written. On refusal *reason is the server's reason (its wire code read
 * through the refusal table; INTERNAL for an unknown code). */
int agent_register(struct agent *a, const char *mp_url, const char *cmg_url,
    const char *bulk, enum stk_refusal *reason, struct stk_error *err);
int agent_renew(struct agent *a, enum stk_refusal *reason, struct stk_error *err);
/* Authenticated GET of the CMG policy endpoint; *body malloc'd. */
int agent_policy(struct agent *a, char **body, enum stk_refusal *reason, struct stk_error *err);
/* 1 when the token is at least renew_days old. */
int agent_renew_due(const struct agent *a);
/* Re-key through the CMG (docs/api.md): a new key and certificate
 * (device.new.*), the old key in the TLS handshake, the new key's signature
 * over the token's jti and the new certificate; on success they replace
 * device.key/device.crt and the new token is stored. */
int agent_rekey(struct agent *a, enum stk_refusal *reason, struct stk_error *err);
/* The device certificate's notAfter; 1 when it is within rekey_days. */
int agent_cert_expiry(struct agent *a, int64_t *not_after, struct stk_error *err);
int agent_rekey_due(struct agent *a);

/* Seed-style install properties (SPEC "Seed-style install syntax"):
 * /mp:URL CCMHOSTNAME=HOST/PATH SMSSiteCode=ABC /regtoken:TOKEN|-, or
 * /idtoken:- (an OIDC ID token on stdin) in place of /regtoken.
 * Keys are case-insensitive; each at most once; values non-empty printable
 * ASCII without spaces. The gateway URL (cmg) is /mp: when given, else
 * https://CCMHOSTNAME; it must be https (the bulk token travels in it) and
 * fit the state file. A /regtoken: value is copied to bulk (malloc'd) and
 * wiped from argv; "-" sets bulk_stdin instead. 0, or STK_E_ARG with the
 * reason in err. */
struct agent_install {
	const char *mp, *host, *code;  /* point into argv, or NULL */
	const char *cahash;            /* /cahash:sha256:HEX (checked), or NULL */
	char *bulk;                    /* wiped by agent_install_clear */
	int bulk_stdin;
	int idtoken_stdin;             /* /idtoken:- (an ID token only from stdin) */
	char cmg[512];
};
int agent_install_parse(int argc, char **argv, struct agent_install *out,
    struct stk_error *err);
void agent_install_clear(struct agent_install *in);

/* http.c: one request. cert: present the device certificate. bearer: the
 * client token for the Authorization header (never logged). */
int agent_http(struct agent *a, const char *method, const char *url,
    const char *json_body, const char *bearer, int cert, long *status,
    char **resp, struct stk_error *err);
void agent_http_global(int init);

/* devkey.c: the device key in a TPM or PKCS#11 token (device.keyref holds
 * its URI; no private key in the state directory). configure checks --key.
 * mode: 1 when the device key is (to be) held in hardware, 0 for the file
 * key, <0 when --key contradicts the state directory. */
struct evp_pkey_st;
struct x509_st;
int agent_devkey_configure(struct agent *a, const char *spec, const char *tcti,
    struct stk_error *err);
int agent_devkey_mode(struct agent *a, struct stk_error *err);
int agent_devkey_ensure_identity(struct agent *a, struct stk_error *err);
/* The held key as an EVP_PKEY for TLS and its certificate (owned by a). */
int agent_devkey_load(struct agent *a, struct evp_pkey_st **pkey,
    struct x509_st **cert, struct stk_error *err);
void agent_devkey_close(struct agent *a);
/* The held key itself (owned by a). */
int agent_devkey_key(struct agent *a, struct stk_key **key, struct stk_error *err);
/* attest_dev.c: evidence for the TPM-held device key over nonce_hex (to
 * out, or stdout for NULL/"-"), and credential activation (secret in hex
 * on stdout). A file or PKCS#11 key is refused with STK_E_UNSUPPORTED. */
int agent_attest(struct agent *a, const char *nonce_hex, const char *out,
    struct stk_error *err);
int agent_activate_credential(struct agent *a, const char *in,
    struct stk_error *err);
/* attest_reg.c: attested registration through the CMG (a->st.cmg): nonce,
 * evidence, credential activation. 1 when this device cannot attest (file
 * or PKCS#11 key, or a TPM without an EK certificate) or the gateway refused
 * the attested exchange (404, 403 attestation_*): register as before, and
 * the site's policy decides.
 * 0 with the last response in *status / *resp (malloc'd, may hold the
 * client token), or a negative code. */
int agent_attest_register(struct agent *a, const char *bulk, const char *host,
    long *status, char **resp, struct stk_error *err);
/* tls_key.c: an EVP_PKEY whose ECDSA signatures come from key (P-256), and
 * the libcurl hook that presents it with device.crt. */
int agent_tls_pkey(struct stk_key *key, struct evp_pkey_st **out,
    struct stk_error *err);
int agent_tls_use_devkey(struct agent *a, void *curl, struct stk_error *err);
/* What agent_tls_use_devkey's libcurl hook does to the SSL_CTX: 0 or -1. */
int agent_tls_ctx_devkey(struct agent *a, void *sslctx);
/* pin.c: "sha256:HEX" -> 32 bytes (STK_E_ARG with the reason); and the
 * libcurl hook that trusts only a chain holding the pinned public key
 * (a->st.ca_hash; nothing when empty). devkey: the request presents the
 * held device key (the hook then does agent_tls_use_devkey's work too). */
int agent_pin_parse(const char *s, unsigned char pin[32], struct stk_error *err);
int agent_pin_use(struct agent *a, void *curl, int devkey, struct stk_error *err);

#endif
