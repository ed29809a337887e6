/* Device certificate checks on every registration path (MP over HTTP and
 * HTTPS, CMG): key type and strength, validity dates. Not on the gateway's
 * per-request path: a registered certificate was checked when it
 * registered.
 *
 * Parsing a certificate is most of a registration's CPU with OpenSSL 3
 * (d2i_X509 builds the public key through the provider decoders, ~150 us),
 * and a device retrying, or a source flooding junk bulk tokens over one TLS
 * client certificate, presents the same DER again and again. So the parse
 * is cached by the SHA-256 of the DER (which is also the x5t#S256): what
 * does not depend on the time (DER, key rules, readable dates, refused or
 * not and why) is kept, and the dates are compared with `now` on every
 * call exactly as X509_cmp_time does. The cache is bounded (direct-mapped,
 * DEVCERT_SLOTS entries, sharded locks) and process-wide: the verdict is a
 * function of the bytes alone. stk_device_cert_check_uncached is the
 * general path; tests/unit/test_devcert.c compares the two. */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "sitetoken/cert.h"
#include "sitetoken/devcert.h"
#include "sitetoken/device.h"

#define DEVCERT_SLOTS 1024
#define DEVCERT_SHARDS 16

struct devcert_slot {
	unsigned char id[32];     /* SHA-256 of the DER; all zero: empty */
	int used;
	int rc;                   /* time-independent verdict: STK_OK or refusal */
	struct stk_error err;     /* its message when rc != STK_OK */
	int64_t not_before, not_after;
};

static struct devcert_slot devcert_slots[DEVCERT_SLOTS];
static pthread_mutex_t devcert_mu[DEVCERT_SHARDS] = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
	PTHREAD_MUTEX_INITIALIZER };

static int
devcert_key_ok(X509 *x, struct stk_error *err)
{
	static const char *const curves[] = { "prime256v1", "secp384r1", "secp521r1" };
	EVP_PKEY *k = X509_get0_pubkey(x);
	char group[64] = "";
	size_t i, glen = 0;
	int bits;

	if (k == NULL)
		return stk_error_openssl(err, STK_E_ARG,
		    "device certificate: its public key is unreadable");
	bits = EVP_PKEY_get_bits(k);
	switch (EVP_PKEY_get_base_id(k)) {
	case EVP_PKEY_RSA:
		if (bits < STK_DEVICE_RSA_MIN_BITS || bits > STK_DEVICE_RSA_MAX_BITS)
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "device key is RSA-%d: the site takes RSA of %d to %d bits, "
			    "or EC P-256, P-384, P-521", bits, STK_DEVICE_RSA_MIN_BITS,
			    STK_DEVICE_RSA_MAX_BITS);
		return STK_OK;
	case EVP_PKEY_EC:
		if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group,
		    sizeof(group), &glen) != 1)
			snprintf(group, sizeof(group), "explicit parameters");
		for (i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
			if (strcmp(group, curves[i]) == 0)
				return STK_OK;
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device key is EC on %.40s (%d bits): the site takes EC P-256, "
		    "P-384, P-521, or RSA of %d to %d bits", group, bits,
		    STK_DEVICE_RSA_MIN_BITS, STK_DEVICE_RSA_MAX_BITS);
	default:
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device key type %.20s is not accepted: the site takes RSA of %d "
		    "to %d bits or EC P-256, P-384, P-521", OBJ_nid2sn(
		    EVP_PKEY_get_base_id(k)), STK_DEVICE_RSA_MIN_BITS,
		    STK_DEVICE_RSA_MAX_BITS);
	}
}

static int
devcert_dates_ok(X509 *x, int64_t now, struct stk_error *err)
{
	time_t early = (time_t)(now + STK_DEVICE_CERT_LEEWAY);
	time_t late = (time_t)(now - STK_DEVICE_CERT_LEEWAY);
	int c;

	/* X509_cmp_time: -1 before, 1 after the given time, 0 unreadable. */
	if ((c = X509_cmp_time(X509_get0_notBefore(x), &early)) == 0)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device certificate: unreadable notBefore");
	if (c > 0)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device certificate is not yet valid (notBefore is ahead of the "
		    "site's clock by more than %d s)", STK_DEVICE_CERT_LEEWAY);
	if ((c = X509_cmp_time(X509_get0_notAfter(x), &late)) == 0)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device certificate: unreadable notAfter");
	if (c < 0)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device certificate has expired (notAfter is behind the site's "
		    "clock by more than %d s): make a new one", STK_DEVICE_CERT_LEEWAY);
	return STK_OK;
}

/* The dates of a cached certificate against now: the same decisions as
 * devcert_dates_ok (X509_cmp_time is -1 when the time is at or before the
 * given one, 1 after it). */
static int
devcert_slot_dates_ok(const struct devcert_slot *c, int64_t now, struct stk_error *err)
{
	int r = STK_OK;

	if (c->not_before > now + STK_DEVICE_CERT_LEEWAY)
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device certificate is not yet valid (notBefore is ahead of the "
		    "site's clock by more than %d s)", STK_DEVICE_CERT_LEEWAY);
	else if (c->not_after <= now - STK_DEVICE_CERT_LEEWAY)
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device certificate has expired (notAfter is behind the site's "
		    "clock by more than %d s): make a new one", STK_DEVICE_CERT_LEEWAY);
	return r;
}

static int
devcert_epoch(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;
	time_t e = (time_t)-1;

	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(t, &tm) == 1)
		e = timegm(&tm);
	*out = (int64_t)e;
	return e == (time_t)-1 ? -1 : 0;
}

/* Parse once: the time-independent verdict into c (rc, err, dates). */
static void
devcert_parse(const unsigned char *der, size_t len, struct devcert_slot *c)
{
	const unsigned char *p = der;
	time_t zero = 0;
	X509 *x = NULL;

	stk_error_clear(&c->err);
	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len) {
		c->rc = stk_error_openssl(&c->err, STK_E_ARG,
		    "device certificate is not DER X.509");
		goto out;
	}
	if ((c->rc = devcert_key_ok(x, &c->err)) != 0)
		goto out;
	/* Unreadable for X509_cmp_time, or beyond what we can compare:
	 * a refusal whatever the time. */
	if (X509_cmp_time(X509_get0_notBefore(x), &zero) == 0) {
		c->rc = stk_error_set(&c->err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device certificate: unreadable notBefore");
		goto out;
	}
	if (X509_cmp_time(X509_get0_notAfter(x), &zero) == 0) {
		c->rc = stk_error_set(&c->err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device certificate: unreadable notAfter");
		goto out;
	}
	if (devcert_epoch(X509_get0_notBefore(x), &c->not_before) != 0 ||
	    devcert_epoch(X509_get0_notAfter(x), &c->not_after) != 0)
		c->rc = stk_error_set(&c->err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "device certificate: unreadable validity dates");
out:
	X509_free(x);
}

int
stk_device_cert_check_uncached(const unsigned char *der, size_t len, int64_t now,
    char thumb[44], struct stk_error *err)
{
	const unsigned char *p = der;
	X509 *x = NULL;
	int r;

	thumb[0] = '\0';
	if (der == NULL || len == 0 || len > STK_DEVICE_CERT_MAX) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "no device certificate or certificate too large");
		goto out;
	}
	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len) {
		r = stk_error_openssl(err, STK_E_ARG, "device certificate is not DER X.509");
		goto out;
	}
	if ((r = devcert_key_ok(x, err)) != 0 || (r = devcert_dates_ok(x, now, err)) != 0)
		goto out;
	stk_cert_x5t_s256(der, len, thumb);
out:
	X509_free(x);
	return r;
}

int
stk_device_cert_check(const unsigned char *der, size_t len, int64_t now,
    char thumb[44], struct stk_error *err)
{
	unsigned char id[32];
	struct devcert_slot c, *slot;
	pthread_mutex_t *mu;
	size_t i;
	int r;

	thumb[0] = '\0';
	if (der == NULL || len == 0 || len > STK_DEVICE_CERT_MAX) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "no device certificate or certificate too large");
		goto out;
	}
	if (EVP_Digest(der, len, id, NULL, EVP_sha256(), NULL) != 1) {
		r = stk_device_cert_check_uncached(der, len, now, thumb, err);
		goto out;
	}
	i = ((size_t)id[0] << 8 | id[1]) % DEVCERT_SLOTS;
	slot = &devcert_slots[i];
	mu = &devcert_mu[i % DEVCERT_SHARDS];
	pthread_mutex_lock(mu);
	c = *slot;
	pthread_mutex_unlock(mu);
	if (!c.used || memcmp(c.id, id, sizeof(id)) != 0) {
		memset(&c, 0, sizeof(c));
		devcert_parse(der, len, &c);
		memcpy(c.id, id, sizeof(id));
		c.used = 1;
		pthread_mutex_lock(mu);
		*slot = c;
		pthread_mutex_unlock(mu);
	}
	if (c.rc != STK_OK) {
		if (err != NULL)
			*err = c.err;
		r = c.rc;
		goto out;
	}
	if ((r = devcert_slot_dates_ok(&c, now, err)) != 0)
		goto out;
	stk_cert_x5t_s256(der, len, thumb);
out:
	return r;
}
