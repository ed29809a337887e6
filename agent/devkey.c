/* The device key in hardware: `--key tpm` (made inside the device's TPM,
 * kept as a loadable blob) or `--key pkcs11:URI` (generated in the token,
 * non-extractable), through the site's key backends (signer/key.c, tpm/,
 * pkcs11/). The state directory then holds `device.keyref`, the key's URI
 * (a blob path or a PKCS#11 URI, never a PIN), and never a private key.
 * The default `--key file` keeps device.key as before (agent.c). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "sitetoken/cert.h"
#include "sitetoken/file.h"
#include "sitetoken/key.h"
#include "agent.h"

#define DEVKEY_REF "device.keyref"
#define DEVKEY_TPM_BLOB "device.tpmkey"
#define DEVKEY_P11_LABEL "sitetoken-device"

static int
devkey_exists(const struct agent *a, const char *name)
{
	char path[PATH_MAX];
	struct stat sb;

	return agent_path(a, name, path, sizeof(path)) == 0 &&
	    lstat(path, &sb) == 0;
}

int
agent_devkey_configure(struct agent *a, const char *spec, const char *tcti,
    struct stk_error *err)
{
	if (spec != NULL && strcmp(spec, "file") != 0 && strcmp(spec, "tpm") != 0 &&
	    strncmp(spec, "pkcs11:", 7) != 0)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "--key takes file, tpm or pkcs11:URI");
	if (spec != NULL && strncmp(spec, "pkcs11:", 7) == 0 && strstr(spec, "pin-value") != NULL)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "a PIN never goes in argv: use SITETOKEN_PKCS11_PIN, "
		    "SITETOKEN_PKCS11_PIN_FILE or pin-source=file:PATH");
	a->key_spec = spec;
	a->tcti = tcti;
	return STK_OK;
}

/* The key URI remembered in device.keyref (*out malloc'd; NULL and 0 if
 * there is none). */
static int
devkey_ref(const struct agent *a, char **out, struct stk_error *err)
{
	char path[PATH_MAX], *buf;
	struct stat sb;
	size_t n;

	*out = NULL;
	if (agent_path(a, DEVKEY_REF, path, sizeof(path)) != 0 || lstat(path, &sb) != 0)
		return STK_OK;
	if (!S_ISREG(sb.st_mode) || sb.st_uid != geteuid() || (sb.st_mode & 077) != 0)
		return stk_error_set(err, STK_E_PERM, STK_LAYER_NONE, 0, "%s must be a "
		    "regular file of this user with mode 0600", path);
	if ((buf = stk_file_read(path, 2048, &n)) == NULL)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot read %s", path);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	*out = buf;
	return STK_OK;
}

int
agent_devkey_mode(struct agent *a, struct stk_error *err)
{
	const char *spec = a->key_spec;
	int have_ref = devkey_exists(a, DEVKEY_REF);
	int have_file = devkey_exists(a, "device.key");
	char *ref;
	int r = 0;

	if (have_ref && have_file)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, "%s holds both "
		    "device.key and %s: remove the state directory to start over",
		    a->dir, DEVKEY_REF);
	if (have_ref) {
		if ((r = devkey_ref(a, &ref, err)) != 0)
			return r;
		if (ref == NULL)
			return stk_error_set(err, STK_E_IO, STK_LAYER_NONE, 0,
			    "%s vanished", DEVKEY_REF);
		if (spec != NULL && (strcmp(spec, "file") == 0 ||
		    (strcmp(spec, "tpm") == 0) != (strncmp(ref, "tpm:", 4) == 0)))
			r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, "the device "
			    "key of %s is %s, not --key %s", a->dir, ref, spec);
		else
			r = 1;
		free(ref);
		return r;
	}
	if (spec == NULL || strcmp(spec, "file") == 0)
		return 0;
	if (have_file)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, "%s already "
		    "holds a file key (device.key): --key %s needs a new state "
		    "directory", a->dir, strcmp(spec, "tpm") == 0 ? "tpm" : "pkcs11:...");
	return 1;
}

static void
devkey_opts(const struct agent *a, struct stk_key_opts *ko)
{
	memset(ko, 0, sizeof(*ko));
	ko->site_dir = a->dir;
	ko->tcti = a->tcti;
	ko->label = DEVKEY_P11_LABEL;
}

/* Make the self-signed certificate with the held key. */
static int
devkey_make_cert(struct agent *a, struct stk_key *key, struct stk_error *err)
{
	char cpath[PATH_MAX], host[256], x5t[44];
	int r;

	agent_path(a, "device.crt", cpath, sizeof(cpath));
	if ((r = agent_write_self_cert(a, key, cpath, host, x5t, err)) == 0)
		agent_log(a, AGENT_LOG_SETUP, "ccmsetup", "Created the device certificate "
		    "CN=%s x5t#S256=%s, signed by the %s-held device key", host, x5t,
		    key->vt->name);
	return r;
}

int
agent_devkey_ensure_identity(struct agent *a, struct stk_error *err)
{
	struct stk_key_opts ko;
	struct stk_key_info info;
	struct stk_key *key = NULL;
	char path[PATH_MAX], *uri = NULL, *ref = NULL;
	const char *backend;
	int r;

	if ((r = devkey_ref(a, &ref, err)) != 0)
		return r;
	if (ref != NULL) {
		/* Already made: only a lost certificate is made again. */
		if (devkey_exists(a, "device.crt")) {
			r = STK_OK;
			goto out;
		}
		devkey_opts(a, &ko);
		if ((r = stk_key_open(ref, &ko, &key, err)) == 0)
			r = devkey_make_cert(a, key, err);
		goto out;
	}
	devkey_opts(a, &ko);
	backend = strcmp(a->key_spec, "tpm") == 0 ? "tpm" : "pkcs11";
	if (strcmp(backend, "tpm") == 0) {
		/* A blob left by an interrupted run is not ours to reuse. */
		agent_path(a, DEVKEY_TPM_BLOB, path, sizeof(path));
		unlink(path);
		r = stk_key_generate("tpm", "tpm:blob=" DEVKEY_TPM_BLOB, STK_KEY_P256,
		    &ko, &key, &uri, err);
	} else
		r = stk_key_generate("pkcs11", a->key_spec, STK_KEY_P256, &ko, &key,
		    &uri, err);
	if (r != 0)
		goto out;
	memset(&info, 0, sizeof(info));
	if ((r = stk_key_describe(key, &info, err)) != 0)
		goto out;
	if (!info.non_exportable) {
		r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0, "the %s "
		    "device key at %s is exportable: refusing it", backend, info.location);
		goto out;
	}
	agent_path(a, DEVKEY_REF, path, sizeof(path));
	if ((r = stk_file_write(path, uri, strlen(uri), 0600, err)) != 0)
		goto out;
	agent_log(a, AGENT_LOG_SETUP, "ccmsetup", "Created the device key (P-256) "
	    "inside the %s, non-exportable: %s", strcmp(backend, "tpm") == 0 ?
	    "TPM" : "PKCS#11 token", info.location);
	r = devkey_make_cert(a, key, err);
out:
	stk_key_close(key);
	free(uri);
	free(ref);
	return r;
}

struct agent_devkey {
	struct stk_key *key;
	EVP_PKEY *pkey;  /* signs through key (tls_key.c) */
	X509 *cert;
};

void
agent_devkey_close(struct agent *a)
{
	if (a->devkey == NULL)
		return;
	EVP_PKEY_free(a->devkey->pkey);
	X509_free(a->devkey->cert);
	stk_key_close(a->devkey->key);
	free(a->devkey);
	a->devkey = NULL;
}

int
agent_devkey_key(struct agent *a, struct stk_key **key, struct stk_error *err)
{
	EVP_PKEY *pkey;
	X509 *cert;
	int r;

	*key = NULL;
	if ((r = agent_devkey_load(a, &pkey, &cert, err)) != 0)
		return r;
	*key = a->devkey->key;
	return STK_OK;
}

int
agent_devkey_load(struct agent *a, EVP_PKEY **pkey, X509 **cert,
    struct stk_error *err)
{
	struct stk_key_opts ko;
	struct agent_devkey *d = NULL;
	char path[PATH_MAX], *ref = NULL;
	FILE *fp = NULL;
	int r;

	if (a->devkey == NULL) {
		if ((r = devkey_ref(a, &ref, err)) != 0)
			goto out;
		if (ref == NULL) {
			r = stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_NONE, 0,
			    "no %s in %s", DEVKEY_REF, a->dir);
			goto out;
		}
		if ((d = calloc(1, sizeof(*d))) == NULL) {
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
			goto out;
		}
		devkey_opts(a, &ko);
		if ((r = stk_key_open(ref, &ko, &d->key, err)) != 0)
			goto out;
		agent_path(a, "device.crt", path, sizeof(path));
		if ((fp = fopen(path, "r")) == NULL ||
		    (d->cert = PEM_read_X509(fp, NULL, NULL, NULL)) == NULL) {
			r = stk_error_set(err, STK_E_IO, STK_LAYER_OPENSSL, 0,
			    "cannot read the device certificate %s", path);
			goto out;
		}
		if ((r = agent_tls_pkey(d->key, &d->pkey, err)) != 0)
			goto out;
		if (X509_check_private_key(d->cert, d->pkey) != 1) {
			r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0,
			    "%s is not the certificate of the device key %s", path, ref);
			goto out;
		}
		a->devkey = d;
		d = NULL;
	}
	*pkey = a->devkey->pkey;
	*cert = a->devkey->cert;
	r = STK_OK;
out:
	if (fp != NULL)
		fclose(fp);
	if (d != NULL) {
		EVP_PKEY_free(d->pkey);
		X509_free(d->cert);
		stk_key_close(d->key);
		free(d);
	}
	free(ref);
	return r;
}
