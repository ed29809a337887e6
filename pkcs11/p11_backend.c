/* The `pkcs11` key backend: the site key lives in a PKCS#11 token (HSM,
 * smart card, SoftHSM for tests) and never leaves it.
 *
 * Split of work, because Debian's libp11 0.4.12 can neither generate EC keys,
 * nor set CKA_EXTRACTABLE=FALSE, nor read attributes back:
 *  - libp11: module loading, token lookup, login, key lookup, signing (its
 *    EVP_PKEY signs inside the token through a session pool of its own);
 *  - the module's own function list (C_GetFunctionList, same loaded module,
 *    so the same login state): key generation with an explicit template and
 *    reading the protection attributes back for `key show`.
 *
 * Lost sessions: libp11 returns a dead session to its pool and has no call
 * to evict it, so on a lost-session error the whole libp11 context is
 * rebuilt (module re-initialised, fresh login, key looked up again) under
 * the write side of a rwlock, then the operation is retried once. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libp11.h>
#include <p11-kit/pkcs11.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include "sitetoken/key.h"
#include "sitetoken/log.h"
#include "p11_int.h"

extern const struct stk_key_backend stk_backend_pkcs11;

#define P11_ID_LEN 16
#define P11_DEFAULT_LABEL "sitetoken-site"

struct p11_key {
	struct stk_key base;         /* must be first */
	struct stk_p11_uri uri;      /* what the user asked for */
	char *module;                /* module path actually loaded */
	char *location;              /* canonical URI, no secrets */
	pthread_rwlock_t lock;       /* read: sign, describe; write: reload */
	int lock_ok;
	unsigned long generation;    /* bumped by every reload */
	/* Our handle on the module, for its function list. Held for the key's
	 * lifetime so the module stays mapped across libp11 reloads. */
	void *dl;
	CK_FUNCTION_LIST *fl;
	/* libp11 state; rebuilt by p11_reload. */
	PKCS11_CTX *ctx;
	PKCS11_SLOT *slots;
	unsigned int nslots;
	PKCS11_SLOT *slot;
	CK_SLOT_ID slot_id;
	EVP_PKEY *priv;              /* libp11 key: signs inside the token */
	EVP_PKEY *pub;               /* plain OpenSSL public key */
	unsigned char *key_id;       /* CKA_ID of the key in use */
	size_t key_id_len;
	char *key_label;             /* CKA_LABEL of the key in use */
};

static const struct {
	CK_RV rv;
	const char *name;
} p11_rv_names[] = {
	{ CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR" },
	{ CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED" },
	{ CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD" },
	{ CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE" },
	{ CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID" },
	{ CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID" },
	{ CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR" },
	{ CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY" },
	{ CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED" },
	{ CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID" },
	{ CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT" },
	{ CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED" },
	{ CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID" },
	{ CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID" },
	{ CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT" },
	{ CKR_PIN_INVALID, "CKR_PIN_INVALID" },
	{ CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE" },
	{ CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED" },
	{ CKR_PIN_LOCKED, "CKR_PIN_LOCKED" },
	{ CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED" },
	{ CKR_SESSION_COUNT, "CKR_SESSION_COUNT" },
	{ CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID" },
	{ CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE" },
	{ CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT" },
	{ CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT" },
	{ CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED" },
	{ CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED" },
	{ CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN" },
	{ CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED" },
	{ CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED" },
};

static const char *
p11_rv_name(CK_RV rv, char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(p11_rv_names) / sizeof(p11_rv_names[0]); i++)
		if (p11_rv_names[i].rv == rv)
			return p11_rv_names[i].name;
	snprintf(buf, len, "CKR 0x%lx", (unsigned long)rv);
	return buf;
}

/* Errors that mean "the session (or the whole token connection) is gone",
 * after which reconnecting may succeed: token pulled, HSM restarted, all
 * sessions closed by another application, module finalized. */
static int
p11_rv_lost(CK_RV rv)
{
	switch (rv) {
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_DEVICE_REMOVED:
	case CKR_DEVICE_ERROR:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_CRYPTOKI_NOT_INITIALIZED:
	case CKR_KEY_HANDLE_INVALID:
	case CKR_OBJECT_HANDLE_INVALID:
		return 1;
	default:
		return 0;
	}
}

/* libp11 reports the CK_RV as the reason of an error in its own OpenSSL
 * error library; take it from the queue and clear the queue. 0 if none. */
static CK_RV
p11_queue_rv(void)
{
	unsigned long e;
	CK_RV rv = 0;
	int lib = ERR_get_CKR_code();

	while ((e = ERR_get_error()) != 0)
		if (lib != 0 && ERR_GET_LIB(e) == lib && ERR_GET_REASON(e) != 0)
			rv = (CK_RV)ERR_GET_REASON(e);
	return rv;
}

/* stk_error_set for a PKCS#11 failure: message plus the CKR_* name. A
 * macro like stk_error_set, so the returned code is visible to analyzers. */
static void
p11__fail(struct stk_error *err, int code, CK_RV rv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define p11_fail(err, code, ...) __extension__ ({ \
	int p11__code = (code); \
	p11__fail((err), p11__code, __VA_ARGS__); \
	p11__code; })

static void
p11__fail(struct stk_error *err, int code, CK_RV rv, const char *fmt, ...)
{
	char msg[200], nb[32];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rv == 0)
		stk_error_set(err, code, STK_LAYER_PKCS11, 0, "%s", msg);
	else
		stk_error_set(err, code, STK_LAYER_PKCS11, (unsigned long)rv,
		    "%s (%s)", msg, p11_rv_name(rv, nb, sizeof(nb)));
}

static int
p11_nomem(struct stk_error *err)
{
	return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
}

/* ---- connection: module, token, login, key ---- */

static void
p11_disconnect(struct p11_key *k)
{
	EVP_PKEY_free(k->priv);
	EVP_PKEY_free(k->pub);
	k->priv = k->pub = NULL;
	free(k->key_id);
	free(k->key_label);
	k->key_id = NULL;
	k->key_id_len = 0;
	k->key_label = NULL;
	if (k->ctx != NULL) {
		if (k->slots != NULL)
			PKCS11_release_all_slots(k->ctx, k->slots, k->nslots);
		PKCS11_CTX_unload(k->ctx);
		PKCS11_CTX_free(k->ctx);
	}
	k->ctx = NULL;
	k->slots = NULL;
	k->nslots = 0;
	k->slot = NULL;
	ERR_clear_error();
}

static void
p11_close(struct stk_key *key)
{
	struct p11_key *k = (struct p11_key *)key;

	if (k == NULL)
		return;
	p11_disconnect(k);
	if (k->dl != NULL)
		dlclose(k->dl);
	if (k->lock_ok)
		pthread_rwlock_destroy(&k->lock);
	stk_p11_uri_clear(&k->uri);
	free(k->module);
	free(k->location);
	free(k);
}

/* Load the module ourselves first: dlerror() says why a module will not
 * load, where libp11 only says that it did not. */
static int
p11_load_module(struct p11_key *k, struct stk_error *err)
{
	CK_RV (*getfl)(CK_FUNCTION_LIST_PTR_PTR);
	const char *why;
	CK_RV rv;

	dlerror();
	if ((k->dl = dlopen(k->module, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		why = dlerror();
		return stk_error_set(err, STK_E_BACKEND, STK_LAYER_SYS, 0,
		    "cannot load PKCS#11 module %s: %s", k->module,
		    why ? why : "unknown error");
	}
	*(void **)(&getfl) = dlsym(k->dl, "C_GetFunctionList");
	if (getfl == NULL)
		return stk_error_set(err, STK_E_BACKEND, STK_LAYER_SYS, 0,
		    "%s is not a PKCS#11 module (no C_GetFunctionList)", k->module);
	if ((rv = getfl(&k->fl)) != CKR_OK || k->fl == NULL)
		return p11_fail(err, STK_E_BACKEND, rv,
		    "PKCS#11 module %s gave no function list", k->module);
	return STK_OK;
}

static int
p11_token_matches(const struct stk_p11_uri *u, const PKCS11_TOKEN *t)
{
	if (t == NULL || !t->initialized)
		return 0;
	return (u->token == NULL || (t->label && strcmp(u->token, t->label) == 0)) &&
	    (u->manufacturer == NULL ||
	    (t->manufacturer && strcmp(u->manufacturer, t->manufacturer) == 0)) &&
	    (u->model == NULL || (t->model && strcmp(u->model, t->model) == 0)) &&
	    (u->serial == NULL ||
	    (t->serialnr && strcmp(u->serial, t->serialnr) == 0));
}

static int
p11_find_token(struct p11_key *k, struct stk_error *err)
{
	char seen[160];
	size_t used = 0;
	unsigned int i, n = 0;
	PKCS11_TOKEN *t;
	CK_RV rv;

	if (PKCS11_enumerate_slots(k->ctx, &k->slots, &k->nslots) != 0) {
		rv = p11_queue_rv();
		return p11_fail(err, STK_E_BACKEND, rv,
		    "cannot list the slots of PKCS#11 module %s", k->module);
	}
	seen[0] = '\0';
	for (i = 0; i < k->nslots; i++) {
		t = k->slots[i].token;
		if (t != NULL && t->initialized && used < sizeof(seen) - 1)
			used += (size_t)snprintf(seen + used, sizeof(seen) - used,
			    "%s'%s'", used ? ", " : "", t->label ? t->label : "");
		if (p11_token_matches(&k->uri, t)) {
			if (n++ == 0)
				k->slot = &k->slots[i];
		}
	}
	if (used >= sizeof(seen))
		used = sizeof(seen) - 1;
	if (n == 0)
		return stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_PKCS11,
		    CKR_TOKEN_NOT_PRESENT, "no PKCS#11 token %s%s%s in module %s "
		    "(tokens present: %s)", k->uri.token ? "labelled '" : "matching",
		    k->uri.token ? k->uri.token : " the URI",
		    k->uri.token ? "'" : "", k->module, used ? seen : "none");
	if (n > 1) {
		k->slot = NULL;
		return stk_error_set(err, STK_E_ARG, STK_LAYER_PKCS11, 0,
		    "%u PKCS#11 tokens match the URI; add token= or serial= to "
		    "choose one", n);
	}
	k->slot_id = PKCS11_get_slotid_from_slot(k->slot);
	return STK_OK;
}

/* ---- refused PINs ----
 * A server retries what failed: every request would open the key again
 * and present the same wrong PIN, and the token would count each one
 * until it locks. So a PIN the token refused is remembered (as a salted
 * SHA-256, per module and token serial, for this process only) and never
 * presented to that token again; a different PIN is tried normally. */

#define P11_REFUSED_MAX 8

static struct {
	char where[256];                        /* module + "\n" + serial */
	unsigned char hash[32];
} p11_refused[P11_REFUSED_MAX];
static unsigned int p11_refused_next;
static unsigned char p11_refused_salt[32];
static int p11_refused_salted;
static pthread_mutex_t p11_refused_lock = PTHREAD_MUTEX_INITIALIZER;

/* Caller holds p11_refused_lock. */
static int
p11_pin_hash(const struct p11_key *k, const char *pin, char *where,
    size_t wlen, unsigned char hash[32])
{
	EVP_MD_CTX *md;
	int ok;

	if (!p11_refused_salted) {
		if (RAND_bytes(p11_refused_salt, sizeof(p11_refused_salt)) != 1)
			return -1;
		p11_refused_salted = 1;
	}
	snprintf(where, wlen, "%s\n%s", k->module,
	    k->slot->token->serialnr ? k->slot->token->serialnr : "");
	if ((md = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(md, p11_refused_salt, sizeof(p11_refused_salt)) == 1 &&
	    EVP_DigestUpdate(md, where, strlen(where) + 1) == 1 &&
	    EVP_DigestUpdate(md, pin, strlen(pin)) == 1 &&
	    EVP_DigestFinal_ex(md, hash, NULL) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* 1 if this PIN was refused by this token before. */
static int
p11_pin_was_refused(const struct p11_key *k, const char *pin)
{
	char where[256];
	unsigned char hash[32];
	unsigned int i;
	int found = 0;

	pthread_mutex_lock(&p11_refused_lock);
	if (p11_pin_hash(k, pin, where, sizeof(where), hash) == 0)
		for (i = 0; i < P11_REFUSED_MAX && !found; i++)
			found = strcmp(p11_refused[i].where, where) == 0 &&
			    CRYPTO_memcmp(p11_refused[i].hash, hash, 32) == 0;
	pthread_mutex_unlock(&p11_refused_lock);
	OPENSSL_cleanse(hash, sizeof(hash));
	return found;
}

static void
p11_pin_refused(const struct p11_key *k, const char *pin)
{
	unsigned int i;

	pthread_mutex_lock(&p11_refused_lock);
	i = p11_refused_next++ % P11_REFUSED_MAX;
	if (p11_pin_hash(k, pin, p11_refused[i].where,
	    sizeof(p11_refused[i].where), p11_refused[i].hash) != 0)
		memset(&p11_refused[i], 0, sizeof(p11_refused[i]));
	pthread_mutex_unlock(&p11_refused_lock);
}

/* One login attempt, never a retry: a wrong PIN repeated by a loop (or by
 * a server's workers) would exhaust the token's retry counter and lock
 * it. `pin` is fetched into the caller's buffer only if still empty. */
static int
p11_login(struct p11_key *k, char *pin, size_t pinsz, struct stk_error *err)
{
	PKCS11_TOKEN *t = k->slot->token;
	CK_RV rv;
	int r;

	if (!t->loginRequired)
		return STK_OK;
	if (t->userPinLocked)
		return stk_error_set(err, STK_E_AUTH, STK_LAYER_PKCS11, CKR_PIN_LOCKED,
		    "the user PIN of token '%s' is locked; the token's security "
		    "officer must unlock it", t->label);
	if (pin[0] == '\0' &&
	    (r = stk_p11_pin_get(k->uri.pin_source, t->label, pin, pinsz, err)) != 0)
		return r;
	if (p11_pin_was_refused(k, pin))
		return p11_fail(err, STK_E_AUTH, CKR_PIN_INCORRECT, "wrong PIN for "
		    "PKCS#11 token '%s': the token already refused this PIN, so "
		    "it is not presented again (that could lock the token)",
		    t->label);
	if (PKCS11_login(k->slot, 0, pin) == 0)
		return STK_OK;
	rv = p11_queue_rv();
	switch (rv) {
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		p11_pin_refused(k, pin);
		return p11_fail(err, STK_E_AUTH, rv, "wrong PIN for PKCS#11 token "
		    "'%s': login refused (tried once, not retried, so the token "
		    "is not locked by this tool)", t->label);
	case CKR_PIN_LOCKED:
		return p11_fail(err, STK_E_AUTH, rv, "the user PIN of token '%s' "
		    "is locked", t->label);
	case CKR_PIN_EXPIRED:
		return p11_fail(err, STK_E_AUTH, rv, "the user PIN of token '%s' "
		    "has expired", t->label);
	default:
		return p11_fail(err, STK_E_BACKEND, rv,
		    "login to PKCS#11 token '%s' failed", t->label);
	}
}

/* Load the module through libp11, find the token, log in. */
static int
p11_connect(struct p11_key *k, char *pin, size_t pinsz, struct stk_error *err)
{
	CK_RV rv;
	int r;

	if ((k->ctx = PKCS11_CTX_new()) == NULL)
		return p11_nomem(err);
	if (PKCS11_CTX_load(k->ctx, k->module) != 0) {
		rv = p11_queue_rv();
		PKCS11_CTX_free(k->ctx);
		k->ctx = NULL;
		return p11_fail(err, STK_E_BACKEND, rv,
		    "cannot initialise PKCS#11 module %s", k->module);
	}
	if ((r = p11_find_token(k, err)) != 0)
		return r;
	return p11_login(k, pin, pinsz, err);
}

static int
p11_key_matches(const struct stk_p11_uri *u, const PKCS11_KEY *pk)
{
	if (u->object != NULL &&
	    (pk->label == NULL || strcmp(u->object, pk->label) != 0))
		return 0;
	if (u->id != NULL && (pk->id_len != u->id_len ||
	    memcmp(pk->id, u->id, u->id_len) != 0))
		return 0;
	return 1;
}

/* Public half as a plain OpenSSL key, with no libp11 method attached, so
 * callers may use it after the key is closed. */
static int
p11_plain_pubkey(EVP_PKEY *in, EVP_PKEY **out)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int n;

	*out = NULL;
	if ((n = i2d_PUBKEY(in, &der)) <= 0)
		return STK_E_CRYPTO;
	p = der;
	*out = d2i_PUBKEY(NULL, &p, n);
	OPENSSL_free(der);
	return *out != NULL ? STK_OK : STK_E_CRYPTO;
}

static int
p11_find_key(struct p11_key *k, struct stk_error *err)
{
	PKCS11_KEY *keys = NULL, *pk = NULL;
	unsigned int i, n = 0, nmatch = 0;
	enum stk_key_type type;
	char what[160];
	CK_RV rv;
	int r = STK_OK;

	snprintf(what, sizeof(what), "%s%s%s%s", k->uri.object ? "object '" : "",
	    k->uri.object ? k->uri.object : "", k->uri.object ? "'" : "",
	    k->uri.id ? (k->uri.object ? " with the given id" : "the given id") :
	    (k->uri.object ? "" : "any object"));
	if (PKCS11_enumerate_keys(k->slot->token, &keys, &n) != 0) {
		rv = p11_queue_rv();
		return p11_fail(err, STK_E_BACKEND, rv,
		    "cannot list the keys of token '%s'", k->slot->token->label);
	}
	for (i = 0; i < n; i++) {
		if (!keys[i].isPrivate || !p11_key_matches(&k->uri, &keys[i]))
			continue;
		if (nmatch++ == 0)
			pk = &keys[i];
	}
	if (nmatch == 0)
		return stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_PKCS11, 0,
		    "no private key %s on PKCS#11 token '%s'", what,
		    k->slot->token->label);
	if (nmatch > 1)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_PKCS11, 0,
		    "%u private keys match %s on token '%s'; add object= or id= "
		    "to the URI", nmatch, what, k->slot->token->label);
	/* The public half comes from libp11's private key object (modulus
	 * and exponent, or the EC point of the matching public object).
	 * PKCS11_get_public_key is avoided: in 0.4.12 it leaks an object that
	 * pins the slot, and with it libp11's copy of the PIN. */
	if ((k->priv = PKCS11_get_private_key(pk)) == NULL) {
		rv = p11_queue_rv();
		r = p11_fail(err, STK_E_BACKEND, rv, "cannot use private key %s "
		    "on token '%s'", what, k->slot->token->label);
		goto out;
	}
	if (p11_plain_pubkey(k->priv, &k->pub) != 0) {
		rv = p11_queue_rv();
		r = p11_fail(err, STK_E_BACKEND, rv, "cannot read the public half "
		    "of %s on token '%s'", what, k->slot->token->label);
		goto out;
	}
	type = stk_key_type_of_pkey(k->pub);
	if (type == STK_KEY_NONE) {
		r = stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_PKCS11, 0,
		    "key %s on token '%s' is %s-%d: sitetoken signs only with "
		    "RSA 2048/3072 or EC P-256", what, k->slot->token->label,
		    EVP_PKEY_is_a(k->pub, "RSA") ? "RSA" :
		    EVP_PKEY_is_a(k->pub, "EC") ? "EC" : "other",
		    EVP_PKEY_get_bits(k->pub));
		goto out;
	}
	if (k->base.type != STK_KEY_NONE && k->base.type != type) {
		r = stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_PKCS11, 0,
		    "key %s on token '%s' is now %s, was %s", what,
		    k->slot->token->label, stk_key_type_name(type),
		    stk_key_type_name(k->base.type));
		goto out;
	}
	k->base.type = type;
	if (pk->id_len > 0 && (k->key_id = malloc(pk->id_len)) == NULL) {
		r = p11_nomem(err);
		goto out;
	}
	if (pk->id_len > 0)
		memcpy(k->key_id, pk->id, pk->id_len);
	k->key_id_len = pk->id_len;
	if (pk->label != NULL && (k->key_label = strdup(pk->label)) == NULL) {
		r = p11_nomem(err);
		goto out;
	}
out:
	ERR_clear_error();
	return r;
}

/* (Re)build the libp11 side: module, token, login, key. The PIN is fetched
 * afresh each time and wiped at once, so no copy of ours outlives login. */
static int
p11_reconnect(struct p11_key *k, struct stk_error *err)
{
	char pin[STK_P11_PIN_MAX];
	int r;

	pin[0] = '\0';
	p11_disconnect(k);
	if ((r = p11_connect(k, pin, sizeof(pin), err)) == 0)
		r = p11_find_key(k, err);
	OPENSSL_cleanse(pin, sizeof(pin));
	if (r != 0)
		p11_disconnect(k);
	else
		k->generation++;
	return r;
}

/* Common start of open and generate: parse the URI, choose the module. */
static int
p11_key_new(const char *uri, const struct stk_key_opts *opts,
    struct p11_key **out, struct stk_error *err)
{
	struct p11_key *k;
	const char *mod;
	int r;

	*out = NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL)
		return p11_nomem(err);
	k->base.vt = &stk_backend_pkcs11;
	k->base.type = STK_KEY_NONE;
	if (pthread_rwlock_init(&k->lock, NULL) != 0) {
		r = p11_nomem(err);
		goto out;
	}
	k->lock_ok = 1;
	if ((r = stk_p11_uri_parse(uri, &k->uri, err)) != 0)
		goto out;
	if (k->uri.type != NULL && strcmp(k->uri.type, "private") != 0) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "PKCS#11 URI names a '%s' object; the site key must be "
		    "type=private", k->uri.type);
		goto out;
	}
	mod = k->uri.module_path;
	if (mod == NULL && opts != NULL)
		mod = opts->module_path;
	if (mod == NULL || *mod == '\0')
		mod = getenv("SITETOKEN_PKCS11_MODULE");
	if (mod == NULL || *mod == '\0') {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "no PKCS#11 module: give module-path in the URI, "
		    "--pkcs11-module PATH or SITETOKEN_PKCS11_MODULE");
		goto out;
	}
	if ((k->module = strdup(mod)) == NULL) {
		r = p11_nomem(err);
		goto out;
	}
	if ((r = p11_load_module(k, err)) != 0)
		goto out;
	*out = k;
	r = STK_OK;
out:
	if (r != 0)
		p11_close(&k->base);
	return r;
}

static int
p11_set_location(struct p11_key *k, struct stk_error *err)
{
	free(k->location);
	k->location = NULL;
	if (stk_p11_uri_format(&k->uri, &k->location) != 0)
		return p11_nomem(err);
	return STK_OK;
}

static int
p11_open(const char *uri, const struct stk_key_opts *opts,
    struct stk_key **out, struct stk_error *err)
{
	struct p11_key *k = NULL;
	int r;

	*out = NULL;
	if ((r = p11_key_new(uri, opts, &k, err)) != 0)
		return r;
	if ((r = p11_reconnect(k, err)) != 0 ||
	    (r = p11_set_location(k, err)) != 0)
		goto out;
	STK_LOG(STK_LOG_DEBUG, "pkcs11", "opened %s key %s",
	    stk_key_type_name(k->base.type), k->location);
	*out = &k->base;
	r = STK_OK;
out:
	if (r != 0)
		p11_close(&k->base);
	return r;
}

/* ---- the module's function list: generation and attributes ---- */

static int
p11_fl_find(struct p11_key *k, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
    const char *label, const unsigned char *id, size_t id_len,
    CK_OBJECT_HANDLE *obj, CK_ULONG *count, CK_RV *rvp)
{
	CK_ATTRIBUTE tmpl[3];
	CK_ULONG n = 0, found = 0;
	CK_OBJECT_HANDLE h[2];
	CK_RV rv;

	*obj = CK_INVALID_HANDLE;
	*count = 0;
	tmpl[n].type = CKA_CLASS;
	tmpl[n].pValue = &cls;
	tmpl[n++].ulValueLen = sizeof(cls);
	if (label != NULL) {
		tmpl[n].type = CKA_LABEL;
		tmpl[n].pValue = (void *)label;
		tmpl[n++].ulValueLen = strlen(label);
	}
	if (id != NULL && id_len > 0) {
		tmpl[n].type = CKA_ID;
		tmpl[n].pValue = (void *)id;
		tmpl[n++].ulValueLen = id_len;
	}
	if ((rv = k->fl->C_FindObjectsInit(s, tmpl, n)) != CKR_OK) {
		*rvp = rv;
		return -1;
	}
	rv = k->fl->C_FindObjects(s, h, 2, &found);
	k->fl->C_FindObjectsFinal(s);
	*rvp = rv;
	if (rv != CKR_OK)
		return -1;
	*count = found;
	if (found > 0)
		*obj = h[0];
	return 0;
}

static int
p11_generate_pair(struct p11_key *k, CK_SESSION_HANDLE s,
    enum stk_key_type type, const char *label, const unsigned char *id,
    size_t id_len, CK_OBJECT_HANDLE *pubh, CK_OBJECT_HANDLE *privh,
    CK_RV *rvp)
{
	/* DER OID 1.2.840.10045.3.1.7 (prime256v1 / P-256). */
	static CK_BYTE p256_oid[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
	    0x3d, 0x03, 0x01, 0x07 };
	static CK_BYTE f4[] = { 0x01, 0x00, 0x01 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = type == STK_KEY_RSA3072 ? 3072 : 2048;
	CK_MECHANISM mech = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_ULONG llen = (CK_ULONG)strlen(label), npub = 0, npriv = 0;
	CK_ATTRIBUTE pub[8], priv[10];

#define P11_ATTR(arr, n, t, p, l) do { (arr)[n].type = (t); \
	(arr)[n].pValue = (void *)(p); (arr)[(n)++].ulValueLen = (l); } while (0)
	P11_ATTR(pub, npub, CKA_TOKEN, &yes, sizeof(yes));
	P11_ATTR(pub, npub, CKA_PRIVATE, &no, sizeof(no));
	P11_ATTR(pub, npub, CKA_VERIFY, &yes, sizeof(yes));
	P11_ATTR(pub, npub, CKA_LABEL, label, llen);
	P11_ATTR(pub, npub, CKA_ID, id, id_len);
	if (type == STK_KEY_P256) {
		mech.mechanism = CKM_EC_KEY_PAIR_GEN;
		P11_ATTR(pub, npub, CKA_EC_PARAMS, p256_oid, sizeof(p256_oid));
	} else {
		P11_ATTR(pub, npub, CKA_MODULUS_BITS, &bits, sizeof(bits));
		P11_ATTR(pub, npub, CKA_PUBLIC_EXPONENT, f4, sizeof(f4));
	}
	/* The whole point: made inside, usable only for signing, never
	 * readable or wrappable out of the token. */
	P11_ATTR(priv, npriv, CKA_TOKEN, &yes, sizeof(yes));
	P11_ATTR(priv, npriv, CKA_PRIVATE, &yes, sizeof(yes));
	P11_ATTR(priv, npriv, CKA_SENSITIVE, &yes, sizeof(yes));
	P11_ATTR(priv, npriv, CKA_EXTRACTABLE, &no, sizeof(no));
	P11_ATTR(priv, npriv, CKA_SIGN, &yes, sizeof(yes));
	P11_ATTR(priv, npriv, CKA_DECRYPT, &no, sizeof(no));
	P11_ATTR(priv, npriv, CKA_UNWRAP, &no, sizeof(no));
	P11_ATTR(priv, npriv, CKA_DERIVE, &no, sizeof(no));
	P11_ATTR(priv, npriv, CKA_LABEL, label, llen);
	P11_ATTR(priv, npriv, CKA_ID, id, id_len);
#undef P11_ATTR
	*rvp = k->fl->C_GenerateKeyPair(s, &mech, pub, npub, priv, npriv,
	    pubh, privh);
	return *rvp == CKR_OK ? 0 : -1;
}

static int
p11_generate(const char *uri, enum stk_key_type type,
    const struct stk_key_opts *opts, struct stk_key **out, char **out_uri,
    struct stk_error *err)
{
	struct p11_key *k = NULL;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE pubh = CK_INVALID_HANDLE, privh = CK_INVALID_HANDLE, h;
	CK_ULONG count;
	CK_RV rv = CKR_OK;
	char pin[STK_P11_PIN_MAX], *label = NULL;
	unsigned char *id = NULL;
	int made = 0, r;

	*out = NULL;
	*out_uri = NULL;
	pin[0] = '\0';
	if ((r = p11_key_new(uri, opts, &k, err)) != 0)
		return r;
	if (k->uri.object == NULL)
		k->uri.object = strdup(opts && opts->label ? opts->label :
		    P11_DEFAULT_LABEL);
	if (k->uri.type == NULL)
		k->uri.type = strdup("private");
	if (k->uri.object == NULL || k->uri.type == NULL) {
		r = p11_nomem(err);
		goto out;
	}
	label = k->uri.object;
	if ((r = p11_connect(k, pin, sizeof(pin), err)) != 0)
		goto out;
	OPENSSL_cleanse(pin, sizeof(pin));
	if ((rv = k->fl->C_OpenSession(k->slot_id, CKF_SERIAL_SESSION |
	    CKF_RW_SESSION, NULL, NULL, &s)) != CKR_OK) {
		r = p11_fail(err, STK_E_BACKEND, rv, "cannot open a read/write "
		    "session on token '%s'", k->slot->token->label);
		goto out;
	}
	/* Refuse to make a second key under the same name: later lookups by
	 * label would be ambiguous, and the old key may still sign tokens. */
	if (p11_fl_find(k, s, CKO_PRIVATE_KEY, label, NULL, 0, &h, &count,
	    &rv) != 0) {
		r = p11_fail(err, STK_E_BACKEND, rv, "cannot search token '%s'",
		    k->slot->token->label);
		goto out;
	}
	if (count > 0) {
		r = stk_error_set(err, STK_E_EXISTS, STK_LAYER_PKCS11, 0,
		    "token '%s' already holds a private key labelled '%s'; "
		    "choose another object= name", k->slot->token->label, label);
		goto out;
	}
	if (k->uri.id == NULL) {
		if ((id = malloc(P11_ID_LEN)) == NULL) {
			r = p11_nomem(err);
			goto out;
		}
		if (RAND_bytes(id, P11_ID_LEN) != 1) {
			r = stk_error_openssl(err, STK_E_CRYPTO, "no random bytes");
			goto out;
		}
		k->uri.id = id;
		k->uri.id_len = P11_ID_LEN;
		id = NULL;
	}
	if (p11_generate_pair(k, s, type, label, k->uri.id, k->uri.id_len,
	    &pubh, &privh, &rv) != 0) {
		r = p11_fail(err, rv == CKR_MECHANISM_INVALID ? STK_E_UNSUPPORTED :
		    STK_E_BACKEND, rv, "token '%s' could not generate a %s key",
		    k->slot->token->label, stk_key_type_name(type));
		goto out;
	}
	made = 1;
	if ((r = p11_find_key(k, err)) != 0)
		goto out;
	if (k->base.type != type) {
		r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_PKCS11, 0,
		    "token '%s' generated a %s key when %s was asked for",
		    k->slot->token->label, stk_key_type_name(k->base.type),
		    stk_key_type_name(type));
		goto out;
	}
	if ((r = p11_set_location(k, err)) != 0)
		goto out;
	/* p11_set_location succeeded, so k->location is set (the analyzer
	 * loses it through stk_p11_uri_format's realloc helper). */
	if ((*out_uri = strdup(k->location)) == NULL) { // NOLINT(clang-analyzer-core.NonNullParamChecker)
		r = p11_nomem(err);
		goto out;
	}
	k->fl->C_CloseSession(s);
	s = CK_INVALID_HANDLE;
	k->generation++;
	STK_LOG(STK_LOG_INFO, "pkcs11", "generated %s key %s inside the token "
	    "(sensitive, not extractable)", stk_key_type_name(type), k->location);
	*out = &k->base;
	r = STK_OK;
out:
	if (r != 0 && made) {
		/* Nothing half-made is left on the token. */
		k->fl->C_DestroyObject(s, privh);
		k->fl->C_DestroyObject(s, pubh);
	}
	OPENSSL_cleanse(pin, sizeof(pin));
	free(id);
	if (s != CK_INVALID_HANDLE && k != NULL)
		k->fl->C_CloseSession(s);
	if (r != 0)
		p11_close(&k->base);
	return r;
}

static int
p11_get_public(struct stk_key *key, EVP_PKEY **out, struct stk_error *err)
{
	struct p11_key *k = (struct p11_key *)key;
	int r;

	*out = NULL;
	pthread_rwlock_rdlock(&k->lock);
	if (k->pub == NULL)
		r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_PKCS11, 0,
		    "PKCS#11 key %s is not connected", k->location);
	else if ((r = p11_plain_pubkey(k->pub, out)) != 0)
		r = stk_error_openssl(err, STK_E_CRYPTO, "cannot copy public key");
	pthread_rwlock_unlock(&k->lock);
	return r;
}

/* After a lost-session error seen on connection `gen`: reconnect once.
 * Threads that failed on the same connection find it already rebuilt
 * (generation moved) and just retry, so a token restart costs one login,
 * not one per thread. */
static int
p11_recover(struct p11_key *k, unsigned long gen, CK_RV rv,
    struct stk_error *err)
{
	char nb[32];
	int r = STK_OK;

	STK_LOG(STK_LOG_WARN, "pkcs11", "lost the session to %s (%s); "
	    "reopening", k->location, p11_rv_name(rv, nb, sizeof(nb)));
	pthread_rwlock_wrlock(&k->lock);
	if (k->generation == gen || k->priv == NULL)
		r = p11_reconnect(k, err);
	pthread_rwlock_unlock(&k->lock);
	return r;
}

/* ---- signing ---- */

/* One signature through libp11; caller holds the read lock. */
static int
p11_sign_once(struct p11_key *k, const unsigned char *digest, size_t dlen,
    unsigned char *sig, size_t *siglen, CK_RV *rvp)
{
	EVP_PKEY_CTX *ctx = NULL;
	unsigned char der[80];
	size_t derlen = sizeof(der), cap = *siglen;
	int r = STK_E_BACKEND;

	*rvp = 0;
	if (k->priv == NULL) {
		/* A failed reload left us disconnected: treat as lost. */
		*rvp = CKR_CRYPTOKI_NOT_INITIALIZED;
		return STK_E_BACKEND;
	}
	ERR_clear_error();
	if ((ctx = EVP_PKEY_CTX_new(k->priv, NULL)) == NULL ||
	    EVP_PKEY_sign_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1)
		goto out;
	if (k->base.type == STK_KEY_P256) {
		/* The token returns r||s (CKM_ECDSA); libp11 hands it to
		 * OpenSSL as DER, so convert back. */
		if (EVP_PKEY_sign(ctx, der, &derlen, digest, dlen) != 1)
			goto out;
		if (cap < STK_P256_SIG_LEN ||
		    stk_ecdsa_der_to_raw(der, derlen, sig, STK_P256_SIG_LEN) != 0) {
			r = STK_E_CRYPTO;
			goto out;
		}
		*siglen = STK_P256_SIG_LEN;
	} else {
		/* CKM_RSA_PKCS over the DigestInfo OpenSSL builds. */
		if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1 ||
		    EVP_PKEY_sign(ctx, sig, siglen, digest, dlen) != 1)
			goto out;
	}
	r = STK_OK;
out:
	if (r != STK_OK)
		*rvp = p11_queue_rv();
	EVP_PKEY_CTX_free(ctx);
	return r;
}

static int
p11_sign(struct stk_key *key, const unsigned char *digest, size_t dlen,
    unsigned char *sig, size_t *siglen, struct stk_error *err)
{
	struct p11_key *k = (struct p11_key *)key;
	size_t cap = *siglen;
	unsigned long gen;
	CK_RV rv;
	int r;

	pthread_rwlock_rdlock(&k->lock);
	gen = k->generation;
	r = p11_sign_once(k, digest, dlen, sig, siglen, &rv);
	pthread_rwlock_unlock(&k->lock);
	if (r == STK_OK)
		return STK_OK;
	if (!p11_rv_lost(rv))
		return p11_fail(err, r, rv, "PKCS#11 signing with %s failed",
		    k->location);
	if ((r = p11_recover(k, gen, rv, err)) != STK_OK)
		return r;
	pthread_rwlock_rdlock(&k->lock);
	*siglen = cap;
	r = p11_sign_once(k, digest, dlen, sig, siglen, &rv);
	pthread_rwlock_unlock(&k->lock);
	if (r != STK_OK)
		return p11_fail(err, r, rv, "PKCS#11 signing with %s failed "
		    "after reopening the session", k->location);
	STK_LOG(STK_LOG_INFO, "pkcs11", "session to %s reopened", k->location);
	return STK_OK;
}

/* ---- describe: attributes read back from the token ---- */

/* Add one boolean attribute to info; returns 1/0, or -1 if unreadable. */
static int
p11_attr_bool(struct p11_key *k, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_TYPE type, const char *name, struct stk_key_info *info)
{
	CK_BBOOL b = CK_FALSE;
	CK_ATTRIBUTE a = { type, &b, sizeof(b) };
	char nb[32];
	CK_RV rv;

	if ((rv = k->fl->C_GetAttributeValue(s, h, &a, 1)) != CKR_OK) {
		stk_key_info_add(info, name, "unreadable (%s)",
		    p11_rv_name(rv, nb, sizeof(nb)));
		return -1;
	}
	stk_key_info_add(info, name, "%s", b == CK_TRUE ? "true" : "false");
	return b == CK_TRUE;
}

/* One attempt under the read lock. *lost: the failure looks like a lost
 * session (a logged-out session also hides the private object). */
static int
p11_describe_once(struct p11_key *k, struct stk_key_info *info,
    unsigned long *gen, CK_RV *lost, struct stk_error *err)
{
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE h;
	CK_ULONG count;
	CK_RV rv;
	int sens, extr, tok, r = STK_OK;

	*lost = 0;
	pthread_rwlock_rdlock(&k->lock);
	*gen = k->generation;
	snprintf(info->location, sizeof(info->location), "%s", k->location);
	if (k->slot == NULL) {
		*lost = CKR_CRYPTOKI_NOT_INITIALIZED;
		r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_PKCS11, 0,
		    "PKCS#11 key %s is not connected", k->location);
		goto out;
	}
	if ((rv = k->fl->C_OpenSession(k->slot_id, CKF_SERIAL_SESSION, NULL,
	    NULL, &s)) != CKR_OK) {
		*lost = p11_rv_lost(rv) ? rv : 0;
		r = p11_fail(err, STK_E_BACKEND, rv, "cannot open a session on "
		    "token '%s'", k->slot->token->label);
		goto out;
	}
	if (p11_fl_find(k, s, CKO_PRIVATE_KEY,
	    k->key_id_len > 0 ? NULL : k->key_label, k->key_id, k->key_id_len,
	    &h, &count, &rv) != 0 || count == 0) {
		*lost = rv == CKR_OK ? CKR_USER_NOT_LOGGED_IN :
		    p11_rv_lost(rv) ? rv : 0;
		r = p11_fail(err, count == 0 && rv == CKR_OK ? STK_E_NOTFOUND :
		    STK_E_BACKEND, rv, "cannot find %s again on token '%s'",
		    k->location, k->slot->token->label);
		goto out;
	}
	/* Each attribute on its own: one the module does not know must not
	 * hide the others. */
	sens = p11_attr_bool(k, s, h, CKA_SENSITIVE, "CKA_SENSITIVE", info);
	extr = p11_attr_bool(k, s, h, CKA_EXTRACTABLE, "CKA_EXTRACTABLE", info);
	p11_attr_bool(k, s, h, CKA_ALWAYS_SENSITIVE, "CKA_ALWAYS_SENSITIVE", info);
	p11_attr_bool(k, s, h, CKA_NEVER_EXTRACTABLE, "CKA_NEVER_EXTRACTABLE",
	    info);
	tok = p11_attr_bool(k, s, h, CKA_TOKEN, "CKA_TOKEN", info);
	p11_attr_bool(k, s, h, CKA_PRIVATE, "CKA_PRIVATE", info);
	p11_attr_bool(k, s, h, CKA_SIGN, "CKA_SIGN", info);
	/* Only what the token itself enforces counts: sensitive, not
	 * extractable, and stored on the token. */
	info->non_exportable = sens == 1 && extr == 0 && tok == 1;
	stk_key_info_add(info, "token", "%s", k->slot->token->label);
	if (k->slot->token->serialnr != NULL)
		stk_key_info_add(info, "token-serial", "%s",
		    k->slot->token->serialnr);
	if (k->slot->token->manufacturer != NULL)
		stk_key_info_add(info, "token-manufacturer", "%s",
		    k->slot->token->manufacturer);
	stk_key_info_add(info, "module", "%s", k->module);
out:
	if (s != CK_INVALID_HANDLE)
		k->fl->C_CloseSession(s);
	pthread_rwlock_unlock(&k->lock);
	return r;
}

static int
p11_describe(struct stk_key *key, struct stk_key_info *info,
    struct stk_error *err)
{
	struct p11_key *k = (struct p11_key *)key;
	size_t nattrs = info->nattrs;
	unsigned long gen;
	CK_RV lost;
	int r;

	if ((r = p11_describe_once(k, info, &gen, &lost, err)) == STK_OK ||
	    lost == 0)
		return r;
	if ((r = p11_recover(k, gen, lost, err)) != STK_OK)
		return r;
	info->nattrs = nattrs;
	return p11_describe_once(k, info, &gen, &lost, err);
}

const struct stk_key_backend stk_backend_pkcs11 = {
	.name = "pkcs11",
	.scheme = "pkcs11",
	.caps = STK_CAP_GENERATE | STK_CAP_NONEXPORTABLE | STK_CAP_THREADSAFE,
	.open = p11_open,
	.generate = p11_generate,
	.get_public = p11_get_public,
	.sign = p11_sign,
	.describe = p11_describe,
	.close = p11_close,
};
