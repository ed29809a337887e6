/* Device certificate checks on every registration path (MP over HTTP and
 * HTTPS, CMG): one parse per request, key type and strength, validity
 * dates. Not on the gateway's per-request path: a registered certificate
 * was checked when it registered. */
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "sitetoken/cert.h"
#include "sitetoken/devcert.h"
#include "sitetoken/device.h"

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

int
stk_device_cert_check(const unsigned char *der, size_t len, int64_t now,
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
