/* JWS compact serialization (RFC 7515) of the tokens of SPEC.md, with the
 * rules of RFC 8725: fixed algorithm per key, no none/HMAC, crit refused,
 * keys never taken from the token, exact iss/aud/Type, strict base64url and
 * JSON, integer times, 8 KiB limit. Checks run in an order that never
 * reveals claim contents of a token whose signature has not verified. */
#include <ctype.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include "sitetoken/cert.h"
#include "sitetoken/token.h"
#include "jws_int.h"

#define BULK_MAX_LIFETIME ((int64_t)10080 * 60)
#define CLIENT_MAX_LIFETIME ((int64_t)90 * 86400)

struct stk_signer {
	struct stk_key *key;
	char tenant[STK_GUID_LEN + 1];     /* lower case */
	char tenant_up[STK_GUID_LEN + 1];  /* upper case, as in TenantId */
	char x5t[44];
	char kid[44];
	char *header_b64;                  /* constant per signer */
};

struct vkey {
	EVP_PKEY *pkey;
	struct stk_sig_ctx *sig;           /* prepared verification (NULL: fresh) */
	enum stk_key_type type;
	char kid[44];
	char x5t[44];                      /* empty when added as a bare key */
	/* The header our signer writes for this key, as JSON and base64url
	 * (NULL for a bare key: no x5t to write). */
	char *hdr_json;
	char *hdr_b64;
};

struct stk_verifier {
	char tenant[STK_GUID_LEN + 1];
	char tenant_up[STK_GUID_LEN + 1];
	char issuer[sizeof(STK_ISSUER_PREFIX) + STK_GUID_LEN];
	int64_t leeway;
	atomic_int refs;                   /* stk_verifier_ref / _free */
	size_t nkeys;
	size_t cap;
	struct vkey *keys;                 /* grows: a site has any number of keys */
};

const char *
stk_token_type_name(enum stk_token_type t)
{
	switch (t) {
	case STK_TOKEN_BULK: return "BulkRegistration";
	case STK_TOKEN_CLIENT: return "ClientAuthentication";
	default: return "Any";
	}
}

enum stk_token_type
stk_token_type_parse(const char *s)
{
	if (s == NULL)
		return STK_TOKEN_ANY;
	if (strcmp(s, "BulkRegistration") == 0 || strcasecmp(s, "bulk") == 0)
		return STK_TOKEN_BULK;
	if (strcmp(s, "ClientAuthentication") == 0 || strcasecmp(s, "client") == 0)
		return STK_TOKEN_CLIENT;
	return STK_TOKEN_ANY;
}

static void
case_copy(char *dst, const char *src, int upper)
{
	size_t i;

	for (i = 0; i < STK_GUID_LEN; i++)
		dst[i] = (char)(upper ? toupper((unsigned char)src[i]) :
		    tolower((unsigned char)src[i]));
	dst[STK_GUID_LEN] = '\0';
}

void
stk_token_free(char *token)
{
	if (token == NULL)
		return;
	OPENSSL_cleanse(token, strlen(token));
	free(token);
}

void
stk_claims_clear(struct stk_claims *c)
{
	if (c == NULL)
		return;
	free(c->payload_json);
	free(c->header_json);
	memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------------ */
/* Issuing                                                             */

/* The one header a signer writes: the verifier rebuilds it to recognise
 * its own tokens' headers byte for byte. */
static char *
jws_header_json(enum stk_key_type type, const char *x5t, const char *kid)
{
	json_t *h;
	char *txt;

	if ((h = json_pack("{s:s, s:s, s:s, s:s}", "typ", "JWT",
	    "alg", stk_key_type_alg(type), "x5t", x5t, "kid", kid)) == NULL)
		return NULL;
	txt = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	return txt;
}

int
stk_signer_new(struct stk_key *key, const unsigned char *cert_der,
    size_t cert_len, const char *site_guid, struct stk_signer **out,
    struct stk_error *err)
{
	struct stk_signer *s = NULL;
	EVP_PKEY *pub = NULL;
	char *htxt = NULL;
	int r;

	*out = NULL;
	if (!stk_guid_valid(site_guid)) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "site GUID is not a GUID");
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	s->key = key;
	case_copy(s->tenant, site_guid, 0);
	case_copy(s->tenant_up, site_guid, 1);
	stk_cert_x5t(cert_der, cert_len, s->x5t);
	if ((r = stk_key_get_public(key, &pub, err)) != 0)
		goto out;
	if ((r = stk_pkey_kid(pub, s->kid)) != 0) {
		stk_error_set(err, r, STK_LAYER_OPENSSL, 0, "cannot compute kid");
		goto out;
	}
	r = STK_E_NOMEM;
	if ((htxt = jws_header_json(key->type, s->x5t, s->kid)) == NULL ||
	    stk_b64url_encode((const unsigned char *)htxt, strlen(htxt),
	    &s->header_b64) != 0) {
		stk_error_set(err, r, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	*out = s;
	s = NULL;
	r = STK_OK;
out:
	free(htxt);
	EVP_PKEY_free(pub);
	stk_signer_free(s);
	return r;
}

void
stk_signer_free(struct stk_signer *s)
{
	if (s == NULL)
		return;
	free(s->header_b64);
	free(s);
}

const char *stk_signer_kid(const struct stk_signer *s) { return s->kid; }
const char *stk_signer_x5t(const struct stk_signer *s) { return s->x5t; }

/* P-256 group order n and floor(n / 2), big-endian. */
static const unsigned char p256_n[32] = {
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84,
	0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
};
static const unsigned char p256_half_n[32] = {
	0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42,
	0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
};

/* 1 when the s half of a raw r||s P-256 signature is over n/2. */
static int
ecdsa_high_s(const unsigned char *sig)
{
	return memcmp(sig + 32, p256_half_n, 32) > 0;
}

/* s := n - s, so that (r, s) becomes the low-s twin of the same
 * signature (both verify; we issue only the low one, as Bitcoin's BIP 62
 * and libsecp256k1 do, and verify only the low one). */
static void
ecdsa_normalize_s(unsigned char *sig)
{
	int i, borrow = 0, d;

	if (!ecdsa_high_s(sig))
		return;
	for (i = 31; i >= 0; i--) {
		d = (int)p256_n[i] - (int)sig[32 + i] - borrow;
		borrow = d < 0;
		sig[32 + i] = (unsigned char)(d + (borrow ? 256 : 0));
	}
}

static EVP_MD *jws_sha256;
static pthread_once_t jws_sha256_once = PTHREAD_ONCE_INIT;

static void
jws_sha256_fetch(void)
{
	jws_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* SHA-256 with the digest fetched once per process, not looked up in the
 * provider store on every token (EVP_sha256() does that implicitly). */
static int
jws_digest(const unsigned char *data, size_t len, unsigned char *md)
{
	pthread_once(&jws_sha256_once, jws_sha256_fetch);
	return EVP_Digest(data, len, md, NULL, jws_sha256 != NULL ? jws_sha256 :
	    EVP_sha256(), NULL) == 1 ? STK_OK : STK_E_CRYPTO;
}

/* header_b64 "." b64(payload) "." b64(sig) */
static int
jws_sign_parts(struct stk_key *key, const char *header_b64,
    const char *payload, char **out, struct stk_error *err)
{
	size_t hlen = strlen(header_b64), plen = strlen(payload);
	size_t cap = hlen + 1 + (plen + 2) / 3 * 4 + 1 + (size_t)(STK_SIG_MAX + 2) / 3 * 4 + 1;
	unsigned char sig[STK_SIG_MAX], md[STK_SHA256_LEN];
	size_t siglen = sizeof(sig), n;
	char *buf;
	int r;

	*out = NULL;
	if ((buf = malloc(cap)) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	memcpy(buf, header_b64, hlen);
	buf[hlen] = '.';
	n = hlen + 1;
	n += stk_b64url_encode_buf((const unsigned char *)payload, plen, buf + n);
	if ((r = jws_digest((unsigned char *)buf, n, md)) != 0 ||
	    (r = stk_key_sign_digest(key, md, sizeof(md), sig, &siglen, err)) != 0) {
		if (r == STK_E_CRYPTO)
			stk_error_openssl(err, r, "SHA-256 failed");
		free(buf);
		return r;
	}
	if (key->type == STK_KEY_P256)
		ecdsa_normalize_s(sig);
	buf[n++] = '.';
	stk_b64url_encode_buf(sig, siglen, buf + n);
	*out = buf;
	return STK_OK;
}

int
stk_jws_sign_raw(struct stk_key *key, const char *header_json,
    const char *payload_json, char **out, struct stk_error *err)
{
	char *hb = NULL;
	int r;

	*out = NULL;
	if (stk_b64url_encode((const unsigned char *)header_json,
	    strlen(header_json), &hb) != 0)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	r = jws_sign_parts(key, hb, payload_json, out, err);
	free(hb);
	return r;
}

/* Sign a payload text the caller built (malloc'd; freed here). */
static int
signer_issue(const struct stk_signer *s, char *payload, char **out,
    struct stk_error *err)
{
	int r;

	if (payload == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	r = jws_sign_parts(s->key, s->header_b64, payload, out, err);
	free(payload);
	return r;
}

/* The claim sets are written directly in the canonical layout (the bytes
 * json_dumps(JSON_COMPACT) made of the former json_pack, members in that
 * order), which is also the layout the verifier reads without jansson.
 * Every value is a GUID, a fixed string, an integer or a base64url
 * thumbprint: nothing needs escaping (checked by the callers). */
static char *
payload_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
payload_printf(const char *fmt, ...)
{
	va_list ap;
	char *txt = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&txt, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : txt;
}

static int
id_or_new(const char *given, char id[STK_GUID_LEN + 1], struct stk_error *err)
{
	if (given == NULL)
		return stk_guid_new(id) == 0 ? STK_OK :
		    stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0,
		    "no random bytes for a GUID");
	if (!stk_guid_valid(given))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "'%s' is not a GUID", given);
	case_copy(id, given, 0);
	return STK_OK;
}

int
stk_issue_bulk(const struct stk_signer *s, const char *unique_id,
    int64_t nbf, int64_t exp, char **out, char *out_guid,
    struct stk_error *err)
{
	char id[STK_GUID_LEN + 1], iss[sizeof(STK_ISSUER_PREFIX) + STK_GUID_LEN];
	int r;

	*out = NULL;
	if (exp <= nbf || exp - nbf > BULK_MAX_LIFETIME)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "bulk token lifetime must be 1 to 10080 minutes");
	if ((r = id_or_new(unique_id, id, err)) != 0)
		return r;
	snprintf(iss, sizeof(iss), STK_ISSUER_PREFIX "%s", s->tenant);
	r = signer_issue(s, payload_printf("{\"SCCMTokenCategory\":\"SCCMPreAuthToken\","
	    "\"Authority\":\"SCCM\",\"License\":\"SCCM\",\"Type\":\"BulkRegistration\","
	    "\"TenantId\":\"%s\",\"UniqueId\":\"%s\",\"iss\":\"%s\",\"aud\":\""
	    STK_AUDIENCE "\",\"nbf\":%lld,\"exp\":%lld}", s->tenant_up, id, iss,
	    (long long)nbf, (long long)exp), out, err);
	if (r == 0 && out_guid != NULL)
		memcpy(out_guid, id, STK_GUID_LEN + 1);
	return r;
}

int
stk_issue_client(const struct stk_signer *s, const char *device_guid,
    const char *cnf_x5t_s256, int64_t now, int64_t lifetime, char **out,
    char *out_jti, struct stk_error *err)
{
	return stk_issue_client_att(s, device_guid, cnf_x5t_s256, NULL, now,
	    lifetime, out, out_jti, err);
}

int
stk_issue_client_att(const struct stk_signer *s, const char *device_guid,
    const char *cnf_x5t_s256, const char *att, int64_t now, int64_t lifetime,
    char **out, char *out_jti, struct stk_error *err)
{
	char jti[STK_GUID_LEN + 1], sub[STK_GUID_LEN + 1];
	char iss[sizeof(STK_ISSUER_PREFIX) + STK_GUID_LEN];
	int r, tpm = att != NULL && strcmp(att, "tpm") == 0;

	*out = NULL;
	if (att != NULL && !tpm && att[0] != '\0' && strcmp(att, "none") != 0)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "attestation level must be tpm or none");
	if (lifetime <= 0 || lifetime > CLIENT_MAX_LIFETIME)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "client token lifetime must be 1 s to 90 days");
	if (cnf_x5t_s256 == NULL || strlen(cnf_x5t_s256) != 43 ||
	    strspn(cnf_x5t_s256, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") != 43)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "certificate thumbprint must be a base64url SHA-256");
	if ((r = id_or_new(device_guid, sub, err)) != 0 ||
	    (r = id_or_new(NULL, jti, err)) != 0)
		return r;
	snprintf(iss, sizeof(iss), STK_ISSUER_PREFIX "%s", s->tenant);
	r = signer_issue(s, payload_printf("{\"Type\":\"ClientAuthentication\","
	    "\"TenantId\":\"%s\",\"sub\":\"%s\",\"jti\":\"%s\",\"iss\":\"%s\","
	    "\"aud\":\"" STK_AUDIENCE "\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,"
	    "\"cnf\":{\"x5t#S256\":\"%s\"}%s}", s->tenant_up, sub, jti, iss,
	    (long long)now, (long long)now, (long long)now + (long long)lifetime,
	    cnf_x5t_s256, tpm ? ",\"att\":\"tpm\"" : ""), out, err);
	if (r == 0 && out_jti != NULL)
		memcpy(out_jti, jti, STK_GUID_LEN + 1);
	return r;
}

/* ------------------------------------------------------------------ */
/* Verifying                                                           */

int
stk_verifier_new(const char *site_guid, struct stk_verifier **out,
    struct stk_error *err)
{
	struct stk_verifier *v;

	*out = NULL;
	if (!stk_guid_valid(site_guid))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "site GUID is not a GUID");
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	case_copy(v->tenant, site_guid, 0);
	case_copy(v->tenant_up, site_guid, 1);
	snprintf(v->issuer, sizeof(v->issuer), STK_ISSUER_PREFIX "%s", v->tenant);
	v->leeway = STK_DEFAULT_LEEWAY;
	atomic_init(&v->refs, 1);
	*out = v;
	return STK_OK;
}

struct stk_verifier *
stk_verifier_ref(struct stk_verifier *v)
{
	if (v != NULL)
		atomic_fetch_add(&v->refs, 1);
	return v;
}

void
stk_verifier_free(struct stk_verifier *v)
{
	size_t i;

	if (v == NULL || atomic_fetch_sub(&v->refs, 1) != 1)
		return;
	for (i = 0; i < v->nkeys; i++) {
		EVP_PKEY_free(v->keys[i].pkey);
		stk_sig_ctx_free(v->keys[i].sig);
		free(v->keys[i].hdr_json);
		free(v->keys[i].hdr_b64);
	}
	free(v->keys);
	free(v);
}

void
stk_verifier_set_leeway(struct stk_verifier *v, int64_t seconds)
{
	v->leeway = seconds < 0 ? 0 : seconds;
}

int64_t
stk_verifier_leeway(const struct stk_verifier *v)
{
	return v->leeway;
}

int
stk_verifier_has_kid(const struct stk_verifier *v, const char *kid)
{
	size_t i;

	for (i = 0; i < v->nkeys; i++)
		if (strcmp(v->keys[i].kid, kid) == 0)
			return 1;
	return 0;
}

static int
verifier_add(struct stk_verifier *v, EVP_PKEY *pkey, const char *x5t,
    struct stk_error *err)
{
	struct vkey *k;
	enum stk_key_type type = stk_key_type_of_pkey(pkey);

	if (type == STK_KEY_NONE)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "site key is not RSA 2048/3072 or EC P-256");
	if (v->nkeys == v->cap) {
		size_t ncap = v->cap ? v->cap * 2 : 4;
		void *p = realloc(v->keys, ncap * sizeof(*v->keys));

		if (p == NULL)
			return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0,
			    "out of memory");
		v->keys = p;
		v->cap = ncap;
	}
	k = &v->keys[v->nkeys];
	memset(k, 0, sizeof(*k));
	if (stk_pkey_kid(pkey, k->kid) != 0)
		return stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0,
		    "cannot compute kid");
	if (x5t != NULL)
		snprintf(k->x5t, sizeof(k->x5t), "%s", x5t);
	/* Best effort: without it, headers are only parsed in full. */
	if (x5t != NULL && (k->hdr_json = jws_header_json(type, k->x5t,
	    k->kid)) != NULL && stk_b64url_encode((unsigned char *)k->hdr_json,
	    strlen(k->hdr_json), &k->hdr_b64) != 0) {
		free(k->hdr_json);
		k->hdr_json = NULL;
	}
	if (EVP_PKEY_up_ref(pkey) != 1) {
		free(k->hdr_json);
		free(k->hdr_b64);
		memset(k, 0, sizeof(*k));
		return stk_error_openssl(err, STK_E_CRYPTO, "EVP_PKEY_up_ref");
	}
	k->pkey = pkey;
	k->type = type;
	k->sig = stk_sig_ctx_new(pkey); /* best effort, like the header */
	v->nkeys++;
	return STK_OK;
}

int
stk_verifier_add_pubkey(struct stk_verifier *v, EVP_PKEY *pkey,
    struct stk_error *err)
{
	return verifier_add(v, pkey, NULL, err);
}

int
stk_verifier_add_cert(struct stk_verifier *v, const unsigned char *der,
    size_t len, struct stk_error *err)
{
	const unsigned char *p = der;
	X509 *x;
	char x5t[44];
	int r;

	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len) {
		X509_free(x);
		return stk_error_openssl(err, STK_E_CRYPTO,
		    "site certificate is not valid DER");
	}
	stk_cert_x5t(der, len, x5t);
	r = verifier_add(v, X509_get0_pubkey(x), x5t, err);
	X509_free(x);
	return r;
}

/* Token refusal helper. */
#define REFUSE(code, ...) \
	stk_error_set(err, (code), STK_LAYER_TOKEN, 0, __VA_ARGS__)

static json_t *
jws_json_segment(const char *seg, size_t len, const char *what,
    char **text, struct stk_error *err, int *r)
{
	unsigned char *raw = NULL;
	size_t rawlen;
	json_error_t jerr;
	json_t *j;

	*text = NULL;
	if ((*r = stk_b64url_decode(seg, len, &raw, &rawlen)) != 0) {
		if (*r == STK_E_TOKEN_B64)
			REFUSE(*r, "%s is not strict base64url (no padding, "
			    "URL-safe alphabet, no stray bits)", what);
		else
			stk_error_set(err, *r, STK_LAYER_NONE, 0, "out of memory");
		return NULL;
	}
	/* Strict: duplicate members refused, NUL in strings refused. */
	j = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL || !json_is_object(j)) {
		/* jansson's text quotes the input: token content stays out
		 * of messages (they reach logs and the audit log). */
		*r = REFUSE(STK_E_TOKEN_JSON, "%s is not a JSON object (%s)", what,
		    j != NULL ? "not an object" : json_error_code(&jerr) ==
		    json_error_duplicate_key ? "duplicate member" : "malformed JSON");
		json_decref(j);
		free(raw);
		return NULL;
	}
	if ((*text = malloc(rawlen + 1)) == NULL) {
		*r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		json_decref(j);
		free(raw);
		return NULL;
	}
	memcpy(*text, raw, rawlen);
	(*text)[rawlen] = '\0';
	free(raw);
	*r = STK_OK;
	return j;
}

static const struct vkey *
verifier_pick(const struct stk_verifier *v, const char *kid, const char *x5t)
{
	size_t i;

	for (i = 0; i < v->nkeys; i++) {
		if (kid != NULL && strcmp(v->keys[i].kid, kid) == 0)
			return &v->keys[i];
		if (kid == NULL && x5t != NULL && v->keys[i].x5t[0] != '\0' &&
		    strcmp(v->keys[i].x5t, x5t) == 0)
			return &v->keys[i];
	}
	return NULL;
}

/* The key whose own header (as our signer writes it) the token carries
 * byte for byte, or NULL. Such a header passes every header rule by
 * construction, so it need not be decoded and parsed again. */
static const struct vkey *
verifier_known_header(const struct stk_verifier *v, const char *seg,
    size_t len)
{
	size_t i;

	for (i = 0; i < v->nkeys; i++)
		if (v->keys[i].hdr_b64 != NULL &&
		    strlen(v->keys[i].hdr_b64) == len &&
		    memcmp(v->keys[i].hdr_b64, seg, len) == 0)
			return &v->keys[i];
	return NULL;
}

static int
jws_check_header(const struct stk_verifier *v, json_t *h,
    const struct vkey **key, struct stk_error *err)
{
	static const char *const never_followed[] = { "jku", "x5u", "jwk", "x5c" };
	json_t *alg = json_object_get(h, "alg");
	json_t *typ = json_object_get(h, "typ");
	json_t *kid = json_object_get(h, "kid");
	json_t *x5t = json_object_get(h, "x5t");
	const char *a;
	size_t i;

	if (!json_is_string(alg))
		return REFUSE(STK_E_TOKEN_ALG, "header has no alg");
	a = json_string_value(alg);
	if (strcasecmp(a, "none") == 0)
		return REFUSE(STK_E_TOKEN_ALG, "alg 'none' is refused: tokens must be signed");
	if (strncasecmp(a, "HS", 2) == 0)
		return REFUSE(STK_E_TOKEN_ALG, "alg HS* refused: HMAC is never accepted "
		    "for a site key");
	if (strcmp(a, "RS256") != 0 && strcmp(a, "ES256") != 0)
		return REFUSE(STK_E_TOKEN_ALG, "alg is not RS256 or ES256");
	if (json_object_get(h, "crit") != NULL)
		return REFUSE(STK_E_TOKEN_HEADER, "header 'crit' is refused");
	for (i = 0; i < sizeof(never_followed) / sizeof(never_followed[0]); i++)
		if (json_object_get(h, never_followed[i]) != NULL)
			return REFUSE(STK_E_TOKEN_HEADER, "header '%s' refused: keys are "
			    "never taken from a token", never_followed[i]);
	if (!json_is_string(typ) || strcmp(json_string_value(typ), "JWT") != 0)
		return REFUSE(STK_E_TOKEN_HEADER, "header typ must be \"JWT\"");
	if ((kid != NULL && !json_is_string(kid)) || (x5t != NULL && !json_is_string(x5t)))
		return REFUSE(STK_E_TOKEN_HEADER, "header kid/x5t must be strings");
	if (kid == NULL && x5t == NULL)
		return REFUSE(STK_E_TOKEN_HEADER, "header names no site key (kid or x5t)");
	*key = verifier_pick(v, kid ? json_string_value(kid) : NULL,
	    x5t ? json_string_value(x5t) : NULL);
	if (*key == NULL)
		return REFUSE(STK_E_TOKEN_HEADER, "token was signed by a key this site "
		    "does not trust (unknown %s)", kid ? "kid" : "x5t");
	/* Both named: they must name the same key, or a token could claim
	 * one certificate while being checked against another's key. A key
	 * added without its certificate has no x5t to compare. */
	if (kid != NULL && x5t != NULL && (*key)->x5t[0] != '\0' &&
	    strcmp((*key)->x5t, json_string_value(x5t)) != 0)
		return REFUSE(STK_E_TOKEN_HEADER, "header x5t is not the certificate "
		    "of the key named by kid");
	/* The key fixes the algorithm; the token does not choose it. */
	if (strcmp(a, stk_key_type_alg((*key)->type)) != 0)
		return REFUSE(STK_E_TOKEN_ALG, "alg does not match the site key (%s)",
		    stk_key_type_alg((*key)->type));
	return STK_OK;
}

static int
jws_check_sig(const struct vkey *key, const char *input, size_t inlen,
    const char *sig_b64, size_t siglen_b64, int *high_s, struct stk_error *err)
{
	unsigned char *sig = NULL;
	size_t siglen;
	int r;

	if ((r = stk_b64url_decode(sig_b64, siglen_b64, &sig, &siglen)) != 0)
		return r == STK_E_TOKEN_B64 ? REFUSE(r, "signature is not strict base64url")
		    : stk_error_set(err, r, STK_LAYER_NONE, 0, "out of memory");
	/* ECDSA signatures are malleable: (r, n - s) verifies as well as
	 * (r, s). We issue low-s only and accept low-s only, so one token has
	 * one encoding (docs/api.md, "ES256 signatures") -- once the claims
	 * show the token was made after the rule (stk_verify), so that tokens
	 * issued before the upgrade keep working until they expire. */
	*high_s = key->type == STK_KEY_P256 && siglen == STK_P256_SIG_LEN &&
	    ecdsa_high_s(sig);
	r = key->sig != NULL ? stk_sig_verify_ctx(key->sig, (const unsigned char *)input,
	    inlen, sig, siglen) : stk_sig_verify(key->pkey, (const unsigned char *)input,
	    inlen, sig, siglen);
	free(sig);
	if (r == STK_E_TOKEN_SIGNATURE)
		return REFUSE(r, "signature does not verify with the site key");
	if (r != 0)
		return stk_error_set(err, r, STK_LAYER_OPENSSL, 0, "cannot verify signature");
	return STK_OK;
}

/* ---- Claim sources ----
 * The claim rules below read claims through one accessor, from either the
 * strict jansson tree or, on the hot path, the canonical layout our own
 * issuer writes (json_dumps JSON_COMPACT of the json_pack in stk_issue_*:
 * members in that order, no white space). The layout reader accepts only a
 * strict subset of JSON on which jansson's reading is known: member names
 * fixed and distinct, strings of printable ASCII without '"' or '\\',
 * integers 0 or [1-9][0-9]{0,17}. Anything else falls back to jansson, so
 * both sources give one verdict; fuzz/fuzz_claims_diff.c and test_jws check
 * that they do. */

enum cl_kind { CL_MISSING = 0, CL_STRING, CL_INT, CL_OBJECT, CL_OTHER };

struct cl_val {
	const char *s;   /* CL_STRING: not NUL-terminated */
	size_t len;
	int64_t i;       /* CL_INT */
};

#define LAYOUT_MAX 11

struct layout_field {
	const char *name;
	enum cl_kind kind;   /* CL_OBJECT: the one-member cnf object */
};

struct layout {
	const struct layout_field *f;
	size_t n;
};

static const struct layout_field bulk_fields[] = {
	{ "SCCMTokenCategory", CL_STRING }, { "Authority", CL_STRING },
	{ "License", CL_STRING }, { "Type", CL_STRING }, { "TenantId", CL_STRING },
	{ "UniqueId", CL_STRING }, { "iss", CL_STRING }, { "aud", CL_STRING },
	{ "nbf", CL_INT }, { "exp", CL_INT },
};
static const struct layout_field client_fields[] = {
	{ "Type", CL_STRING }, { "TenantId", CL_STRING }, { "sub", CL_STRING },
	{ "jti", CL_STRING }, { "iss", CL_STRING }, { "aud", CL_STRING },
	{ "iat", CL_INT }, { "nbf", CL_INT }, { "exp", CL_INT },
	{ "cnf", CL_OBJECT },
};
/* A client token of a TPM-attested device: the same, then "att". */
static const struct layout_field client_att_fields[] = {
	{ "Type", CL_STRING }, { "TenantId", CL_STRING }, { "sub", CL_STRING },
	{ "jti", CL_STRING }, { "iss", CL_STRING }, { "aud", CL_STRING },
	{ "iat", CL_INT }, { "nbf", CL_INT }, { "exp", CL_INT },
	{ "cnf", CL_OBJECT }, { "att", CL_STRING },
};
static const struct layout_field cnf_fields[] = { { "x5t#S256", CL_STRING } };
static const struct layout layouts[] = {
	{ bulk_fields, sizeof(bulk_fields) / sizeof(bulk_fields[0]) },
	{ client_fields, sizeof(client_fields) / sizeof(client_fields[0]) },
	{ client_att_fields, sizeof(client_att_fields) / sizeof(client_att_fields[0]) },
};
static const struct layout cnf_layout = { cnf_fields, 1 };

struct fastp {
	const struct layout *lay;
	struct cl_val val[LAYOUT_MAX];
	struct fastp *cnf;   /* client layout: the cnf member */
};

struct cl_src {
	json_t *j;                 /* jansson object, or */
	const struct fastp *f;     /* a recognised layout */
};

static enum cl_kind
cl_get(const struct cl_src *src, const char *name, struct cl_val *val,
    struct cl_src *sub)
{
	json_t *m;
	size_t i;

	memset(val, 0, sizeof(*val));
	if (src->f != NULL) {
		for (i = 0; i < src->f->lay->n; i++) {
			if (strcmp(src->f->lay->f[i].name, name) != 0)
				continue;
			*val = src->f->val[i];
			if (src->f->lay->f[i].kind == CL_OBJECT && sub != NULL) {
				sub->j = NULL;
				sub->f = src->f->cnf;
			}
			return src->f->lay->f[i].kind;
		}
		return CL_MISSING;
	}
	if ((m = json_object_get(src->j, name)) == NULL)
		return CL_MISSING;
	if (json_is_string(m)) {
		val->s = json_string_value(m);
		val->len = json_string_length(m);
		return CL_STRING;
	}
	if (json_is_integer(m)) {
		val->i = (int64_t)json_integer_value(m);
		return CL_INT;
	}
	if (json_is_object(m)) {
		if (sub != NULL) {
			sub->j = m;
			sub->f = NULL;
		}
		return CL_OBJECT;
	}
	return CL_OTHER;
}

/* One member: "name":value. Returns the position after it, or NULL. */
static const char *
layout_member(const char *p, const char *end, const struct layout_field *fd,
    struct cl_val *val, struct fastp *cnf)
{
	size_t nlen = strlen(fd->name), nd;
	const char *q;
	int64_t i;

	if ((size_t)(end - p) < nlen + 3 || p[0] != '"' ||
	    memcmp(p + 1, fd->name, nlen) != 0 || p[nlen + 1] != '"' ||
	    p[nlen + 2] != ':')
		return NULL;
	p += nlen + 3;
	switch (fd->kind) {
	case CL_STRING:
		if (p == end || *p++ != '"')
			return NULL;
		for (q = p; q < end && *q != '"'; q++)
			if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e ||
			    *q == '\\')
				return NULL;
		if (q == end)
			return NULL;
		val->s = p;
		val->len = (size_t)(q - p);
		return q + 1;
	case CL_INT:
		for (q = p, i = 0; q < end && *q >= '0' && *q <= '9'; q++)
			if (q - p < 18)
				i = i * 10 + (*q - '0');
		nd = (size_t)(q - p);
		/* Canonical and far from int64's limit; else jansson decides. */
		if (nd == 0 || nd > 18 || (nd > 1 && *p == '0'))
			return NULL;
		val->i = i;
		return q;
	case CL_OBJECT:
		if (p == end || *p++ != '{' || cnf == NULL ||
		    (p = layout_member(p, end, &cnf_fields[0], &cnf->val[0],
		    NULL)) == NULL || p == end || *p != '}')
			return NULL;
		cnf->lay = &cnf_layout;
		return p + 1;
	default:
		return NULL;
	}
}

/* 1 when json[0..len) is exactly one of the canonical layouts. */
static int
layout_read(const char *json, size_t len, struct fastp *fp, struct fastp *cnf)
{
	const char *p, *end = json + len;
	size_t l, i;

	memset(fp, 0, sizeof(*fp));
	for (l = 0; l < sizeof(layouts) / sizeof(layouts[0]); l++) {
		p = json;
		if (len < 2 || *p++ != '{')
			return 0;
		for (i = 0; i < layouts[l].n && p != NULL; i++) {
			if (i > 0 && (p == end || *p++ != ','))
				p = NULL;
			if (p != NULL)
				p = layout_member(p, end, &layouts[l].f[i],
				    &fp->val[i], cnf);
		}
		if (p != NULL && p + 1 == end && *p == '}') {
			fp->lay = &layouts[l];
			fp->cnf = layouts[l].f != bulk_fields ? cnf : NULL;
			return 1;
		}
		memset(fp, 0, sizeof(*fp));
	}
	return 0;
}

static int
str_is(const struct cl_val *val, const char *want)
{
	size_t n = strlen(want);

	return val->len == n && memcmp(val->s, want, n) == 0;
}

static int
claim_str(const struct cl_src *p, const char *name, const char *want, int code,
    struct cl_val *out, struct stk_error *err)
{
	struct cl_val val;

	if (cl_get(p, name, &val, NULL) != CL_STRING)
		return REFUSE(STK_E_TOKEN_CLAIMS, "claim %s missing or not a string", name);
	if (want != NULL && !str_is(&val, want))
		return REFUSE(code, "claim %s is not \"%s\"", name, want);
	if (out != NULL)
		*out = val;
	return STK_OK;
}

static int
claim_time(const struct cl_src *p, const char *name, int64_t *out,
    struct stk_error *err)
{
	struct cl_val val;

	switch (cl_get(p, name, &val, NULL)) {
	case CL_MISSING:
		return REFUSE(STK_E_TOKEN_CLAIMS, "claim %s missing", name);
	case CL_INT:
		break;
	default:
		return REFUSE(STK_E_TOKEN_CLAIMS, "claim %s must be an integer "
		    "(seconds)", name);
	}
	*out = val.i;
	if (*out < 0)
		return REFUSE(STK_E_TOKEN_CLAIMS, "claim %s is negative", name);
	return STK_OK;
}

static int
claim_guid(const struct cl_src *p, const char *name, char *out,
    struct stk_error *err)
{
	struct cl_val val;
	size_t i;
	int r;

	if ((r = claim_str(p, name, NULL, 0, &val, err)) != 0)
		return r;
	if (val.len != STK_GUID_LEN)
		return REFUSE(STK_E_TOKEN_CLAIMS, "claim %s is not a GUID", name);
	memcpy(out, val.s, STK_GUID_LEN);
	out[STK_GUID_LEN] = '\0';
	if (!stk_guid_valid(out)) {
		out[0] = '\0';
		return REFUSE(STK_E_TOKEN_CLAIMS, "claim %s is not a GUID", name);
	}
	for (i = 0; i < STK_GUID_LEN; i++)
		if (isupper((unsigned char)out[i])) {
			out[0] = '\0';
			return REFUSE(STK_E_TOKEN_CLAIMS, "claim %s must be lower case", name);
		}
	return STK_OK;
}

/* now is past exp + leeway, without overflow for any exp. */
static int
time_expired(int64_t now, int64_t exp, int64_t leeway)
{
	return exp <= INT64_MAX - leeway && now >= exp + leeway;
}

static int
jws_check_claims(const struct stk_verifier *v, const struct cl_src *p,
    enum stk_token_type expect, int64_t now, struct stk_claims *c,
    struct stk_error *err)
{
	struct cl_val type_s, cnf_s, att_s;
	enum stk_token_type type;
	enum cl_kind ak;
	struct cl_src cnf;
	int r;

	if ((r = claim_str(p, "Type", NULL, 0, &type_s, err)) != 0)
		return r;
	if (str_is(&type_s, "BulkRegistration"))
		type = STK_TOKEN_BULK;
	else if (str_is(&type_s, "ClientAuthentication"))
		type = STK_TOKEN_CLIENT;
	else
		return REFUSE(STK_E_TOKEN_TYPE, "unknown token Type");
	if (expect != STK_TOKEN_ANY && type != expect)
		return REFUSE(STK_E_TOKEN_TYPE, "a %s token is not accepted as a %s "
		    "token", stk_token_type_name(type), stk_token_type_name(expect));
	c->type = type;
	if ((r = claim_str(p, "iss", v->issuer, STK_E_TOKEN_ISSUER, NULL, err)) != 0 ||
	    (r = claim_str(p, "aud", STK_AUDIENCE, STK_E_TOKEN_AUDIENCE, NULL, err)) != 0 ||
	    (r = claim_str(p, "TenantId", v->tenant_up, STK_E_TOKEN_ISSUER, NULL, err)) != 0 ||
	    (r = claim_time(p, "nbf", &c->nbf, err)) != 0 ||
	    (r = claim_time(p, "exp", &c->exp, err)) != 0)
		return r;
	if (c->exp <= c->nbf)
		return REFUSE(STK_E_TOKEN_CLAIMS, "exp is not after nbf");
	/* v is never NULL here; the analyzer infers it might be from the
	 * `want != NULL` test in claim_str on v->tenant_up. */
	memcpy(c->tenant, v->tenant, sizeof(c->tenant)); // NOLINT(clang-analyzer-core.NonNullParamChecker)

	if (type == STK_TOKEN_BULK) {
		if ((r = claim_str(p, "SCCMTokenCategory", "SCCMPreAuthToken",
		    STK_E_TOKEN_CLAIMS, NULL, err)) != 0 ||
		    (r = claim_str(p, "Authority", "SCCM", STK_E_TOKEN_CLAIMS, NULL, err)) != 0 ||
		    (r = claim_str(p, "License", "SCCM", STK_E_TOKEN_CLAIMS, NULL, err)) != 0 ||
		    (r = claim_guid(p, "UniqueId", c->id, err)) != 0)
			return r;
		if (c->exp - c->nbf > BULK_MAX_LIFETIME)
			return REFUSE(STK_E_TOKEN_CLAIMS, "bulk token lifetime is over "
			    "the 7-day maximum");
	} else {
		if ((r = claim_guid(p, "sub", c->subject, err)) != 0 ||
		    (r = claim_guid(p, "jti", c->id, err)) != 0 ||
		    (r = claim_time(p, "iat", &c->iat, err)) != 0)
			return r;
		if (cl_get(p, "cnf", &cnf_s, &cnf) != CL_OBJECT ||
		    claim_str(&cnf, "x5t#S256", NULL, 0, &cnf_s, err) != 0 ||
		    cnf_s.len != 43 || memchr(cnf_s.s, '\0', 43) != NULL)
			return REFUSE(STK_E_TOKEN_CLAIMS, "claim cnf must hold an "
			    "x5t#S256 certificate thumbprint");
		memcpy(c->cnf_x5t_s256, cnf_s.s, 43);
		c->cnf_x5t_s256[43] = '\0';
		/* Optional attestation level: "tpm" is the only one written. */
		if ((ak = cl_get(p, "att", &att_s, NULL)) != CL_MISSING) {
			if (ak != CL_STRING || !str_is(&att_s, "tpm"))
				return REFUSE(STK_E_TOKEN_CLAIMS, "claim att must be "
				    "\"tpm\" when present");
			memcpy(c->att, "tpm", 4);
		}
		if (c->exp - c->nbf > CLIENT_MAX_LIFETIME)
			return REFUSE(STK_E_TOKEN_CLAIMS, "client token lifetime is "
			    "over 90 days");
	}
	/* Leeway edges: valid for now in [nbf - leeway, exp + leeway). */
	if (time_expired(now, c->exp, v->leeway))
		return REFUSE(STK_E_TOKEN_EXPIRED, "token expired %lld s ago",
		    (long long)(now - c->exp));
	if (now < c->nbf - v->leeway)
		return REFUSE(STK_E_TOKEN_NOTYET, "token is not valid for another %lld s",
		    (long long)(c->nbf - now));
	return STK_OK;
}

/* The claim rules on `len` bytes of payload JSON: from the canonical layout
 * when it is one (and `fast` allows), else from strict jansson. */
static int
payload_check(const struct stk_verifier *v, const char *json, size_t len,
    int fast, enum stk_token_type expect, int64_t now, struct stk_claims *c,
    int *used_fast, struct stk_error *err)
{
	struct fastp fp, cnf;
	struct cl_src src = { NULL, NULL };
	json_error_t jerr;
	int r;

	if (used_fast != NULL)
		*used_fast = 0;
	if (fast && layout_read(json, len, &fp, &cnf)) {
		if (used_fast != NULL)
			*used_fast = 1;
		src.f = &fp;
		return jws_check_claims(v, &src, expect, now, c, err);
	}
	/* Strict: duplicate members refused, NUL in strings refused. */
	src.j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (src.j == NULL || !json_is_object(src.j)) {
		r = REFUSE(STK_E_TOKEN_JSON, "payload is not a JSON object: %s",
		    src.j == NULL ? jerr.text : "not an object");
		json_decref(src.j);
		return r;
	}
	r = jws_check_claims(v, &src, expect, now, c, err);
	json_decref(src.j);
	return r;
}

/* The payload segment decoded into a NUL-terminated malloc'd text. */
static int
jws_payload_text(const char *seg, size_t len, char **text, size_t *tlen,
    struct stk_error *err)
{
	unsigned char *raw = NULL;
	size_t rawlen;
	int r;

	*text = NULL;
	*tlen = 0;
	if ((r = stk_b64url_decode(seg, len, &raw, &rawlen)) != 0) {
		if (r == STK_E_TOKEN_B64)
			return REFUSE(r, "payload is not strict base64url (no "
			    "padding, URL-safe alphabet, no stray bits)");
		return stk_error_set(err, r, STK_LAYER_NONE, 0, "out of memory");
	}
	if ((*text = malloc(rawlen + 1)) == NULL) {
		free(raw);
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	}
	memcpy(*text, raw, rawlen);
	(*text)[rawlen] = '\0';
	*tlen = rawlen;
	free(raw);
	return STK_OK;
}

int
stk_verify(const struct stk_verifier *v, const char *token, size_t len,
    enum stk_token_type expect, int64_t now, struct stk_claims *claims,
    struct stk_error *err)
{
	const char *d1, *d2;
	json_t *h = NULL;
	const struct vkey *key = NULL;
	struct stk_claims c;
	char *ptext = NULL;
	size_t plen = 0;
	int r, high_s = 0;

	memset(&c, 0, sizeof(c));
	memset(claims, 0, sizeof(*claims));
	if (len > STK_TOKEN_MAX)
		return REFUSE(STK_E_TOKEN_SIZE, "token is %zu bytes, over the %d-byte "
		    "limit", len, STK_TOKEN_MAX);
	if (len == 0 || (d1 = memchr(token, '.', len)) == NULL ||
	    (d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token))) == NULL)
		return REFUSE(STK_E_TOKEN_FORMAT, "token must have three "
		    "dot-separated segments");
	if (memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) != NULL)
		return REFUSE(STK_E_TOKEN_FORMAT, "token has more than three segments");
	if (d1 == token || d2 == d1 + 1)
		return REFUSE(STK_E_TOKEN_FORMAT, "token has an empty segment");

	if ((key = verifier_known_header(v, token, (size_t)(d1 - token))) != NULL) {
		if ((c.header_json = strdup(key->hdr_json)) == NULL) {
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0,
			    "out of memory");
			goto out;
		}
	} else {
		if ((h = jws_json_segment(token, (size_t)(d1 - token), "header",
		    &c.header_json, err, &r)) == NULL)
			goto out;
		/* Header rules first, so "alg":"none" with its empty
		 * signature is refused for what it is. */
		if ((r = jws_check_header(v, h, &key, err)) != 0)
			goto out;
	}
	if (d2 + 1 == token + len) {
		r = REFUSE(STK_E_TOKEN_SIGNATURE, "token is unsigned (empty signature)");
		goto out;
	}
	if ((r = jws_check_sig(key, token, (size_t)(d2 - token), d2 + 1,
	    len - (size_t)(d2 + 1 - token), &high_s, err)) != 0)
		goto out;
	if ((r = jws_payload_text(d1 + 1, (size_t)(d2 - d1 - 1), &ptext, &plen,
	    err)) != 0 ||
	    (r = payload_check(v, ptext, plen, 1, expect, now, &c, NULL, err)) != 0)
		goto out;
	if (high_s && c.nbf >= STK_ES256_LOW_S_SINCE) {
		r = REFUSE(STK_E_TOKEN_SIGNATURE, "ES256 signature is not in low-s "
		    "form (s > n/2)");
		goto out;
	}
	memcpy(c.kid, key->kid, sizeof(key->kid));
	c.payload_json = ptext;
	ptext = NULL;
	*claims = c;
	memset(&c, 0, sizeof(c));
	r = STK_OK;
out:
	json_decref(h);
	free(ptext);
	stk_claims_clear(&c);
	return r;
}

int
stk__jws_check_payload(const struct stk_verifier *v, const char *json,
    size_t len, enum stk_token_type expect, int64_t now,
    struct stk_claims *claims, struct stk_error *err)
{
	memset(claims, 0, sizeof(*claims));
	return payload_check(v, json, len, 0, expect, now, claims, NULL, err);
}

int
stk__jws_check_payload_fast(const struct stk_verifier *v, const char *json,
    size_t len, enum stk_token_type expect, int64_t now,
    struct stk_claims *claims, int *used_fast, struct stk_error *err)
{
	memset(claims, 0, sizeof(*claims));
	return payload_check(v, json, len, 1, expect, now, claims, used_fast, err);
}
