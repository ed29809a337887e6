/* The `file` key backend: a PEM private key on disk. Development only: the
 * key is exportable by nature. It refuses key files that group or others
 * can read or write, as ssh does. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include "sitetoken/file.h"
#include "sitetoken/key.h"
#include "sitetoken/log.h"

extern const struct stk_key_backend stk_backend_file;

struct file_key {
	struct stk_key base; /* must be first */
	EVP_PKEY *pkey;
	/* Signing context prepared once (sign_init, SHA-256, padding): each
	 * signature works on a copy, so threads never share one and no call
	 * looks the algorithm up in the provider store again. NULL: prepare
	 * per call (a provider that cannot duplicate contexts). */
	EVP_PKEY_CTX *tmpl;
	char *path;
};

static const char *
file_path_of(const char *uri)
{
	if (strncmp(uri, "file:", 5) == 0) {
		uri += 5;
		/* file:///abs/path and file:/abs/path both name /abs/path */
		if (strncmp(uri, "//", 2) == 0)
			uri += 2;
	}
	return uri;
}

static void
file_close(struct stk_key *key)
{
	struct file_key *fk = (struct file_key *)key;

	if (fk == NULL)
		return;
	EVP_PKEY_CTX_free(fk->tmpl);
	EVP_PKEY_free(fk->pkey);
	free(fk->path);
	free(fk);
}

static int
file_check_mode(int fd, const char *path, struct stk_error *err)
{
	/* Owner too: a key file another user owns could be swapped by them. */
	return stk_file_check_secret(fd, path, "key file", 077, err);
}

/* A context ready to sign a SHA-256 digest with pkey, or NULL. */
static EVP_PKEY_CTX *
file_sign_ctx(EVP_PKEY *pkey, enum stk_key_type type)
{
	EVP_PKEY_CTX *ctx;

	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
	    EVP_PKEY_sign_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1 ||
	    (type != STK_KEY_P256 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1)) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static int
file_wrap(EVP_PKEY *pkey, const char *path, struct stk_key **out,
    struct stk_error *err)
{
	struct file_key *fk;
	enum stk_key_type type = stk_key_type_of_pkey(pkey);

	if (type == STK_KEY_NONE)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "key in %s is not RSA 2048/3072 or EC P-256", path);
	if ((fk = calloc(1, sizeof(*fk))) == NULL ||
	    (fk->path = strdup(path)) == NULL) {
		free(fk);
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0,
		    "out of memory");
	}
	fk->base.vt = &stk_backend_file;
	fk->base.type = type;
	fk->pkey = pkey;
	fk->tmpl = file_sign_ctx(pkey, type);   /* best effort */
	ERR_clear_error();
	*out = &fk->base;
	return STK_OK;
}

static int
file_open(const char *uri, const struct stk_key_opts *opts,
    struct stk_key **out, struct stk_error *err)
{
	const char *path = file_path_of(uri);
	EVP_PKEY *pkey = NULL;
	FILE *fp = NULL;
	int fd, r;

	(void)opts;
	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return stk_error_set(err, errno == ENOENT ? STK_E_NOTFOUND : STK_E_IO,
		    STK_LAYER_SYS, (unsigned long)errno,
		    "cannot open key file %s: %s", path, strerror(errno));
	if ((r = file_check_mode(fd, path, err)) != 0) {
		close(fd);
		return r;
	}
	if ((fp = fdopen(fd, "r")) == NULL) {
		close(fd);
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS,
		    (unsigned long)errno, "cannot read key file %s", path);
	}
	pkey = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	if (pkey == NULL)
		return stk_error_openssl(err, STK_E_CRYPTO,
		    "key file %s does not hold a PEM private key", path);
	if ((r = file_wrap(pkey, path, out, err)) != 0)
		EVP_PKEY_free(pkey);
	return r;
}

static int
file_generate(const char *uri, enum stk_key_type type,
    const struct stk_key_opts *opts, struct stk_key **out, char **out_uri,
    struct stk_error *err)
{
	char pathbuf[4096];
	const char *path;
	EVP_PKEY *pkey = NULL;
	FILE *fp = NULL;
	int fd = -1, created = 0, r = STK_E_CRYPTO;

	*out = NULL;
	*out_uri = NULL;
	if (uri != NULL && *uri != '\0')
		path = file_path_of(uri);
	else if (opts->site_dir != NULL) {
		snprintf(pathbuf, sizeof(pathbuf), "%s/site.key", opts->site_dir);
		path = pathbuf;
	} else {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "file backend: no key path given");
		goto out;
	}

	if (type == STK_KEY_P256)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
		    (size_t)(type == STK_KEY_RSA3072 ? 3072 : 2048));
	if (pkey == NULL) {
		r = stk_error_openssl(err, STK_E_CRYPTO, "key generation failed");
		goto out;
	}

	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600)) < 0) {
		r = stk_error_set(err, errno == EEXIST ? STK_E_EXISTS : STK_E_IO,
		    STK_LAYER_SYS, (unsigned long)errno,
		    "cannot create key file %s: %s", path, strerror(errno));
		goto out;
	}
	created = 1;
	if ((fp = fdopen(fd, "w")) == NULL) {
		close(fd);
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS,
		    (unsigned long)errno, "cannot write %s", path);
		goto out;
	}
	if (PEM_write_PrivateKey(fp, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
		fclose(fp);
		r = stk_error_openssl(err, STK_E_IO, "cannot write key file %s", path);
		goto out;
	}
	if (fclose(fp) != 0) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS,
		    (unsigned long)errno, "cannot write %s", path);
		goto out;
	}
	if (asprintf(out_uri, "file:%s", path) < 0) {
		*out_uri = NULL;
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	if ((r = file_wrap(pkey, path, out, err)) != 0) {
		free(*out_uri);
		*out_uri = NULL;
		goto out;
	}
	STK_LOG(STK_LOG_INFO, "file", "generated %s key in %s",
	    stk_key_type_name(type), path);
	pkey = NULL; /* the key object owns it */
out:
	if (r != 0 && created)
		unlink(path);
	EVP_PKEY_free(pkey);
	return r;
}

static int
file_get_public(struct stk_key *key, EVP_PKEY **out, struct stk_error *err)
{
	struct file_key *fk = (struct file_key *)key;
	unsigned char *der = NULL;
	const unsigned char *p;
	int n;

	/* A fresh object holding only the public half. */
	if ((n = i2d_PUBKEY(fk->pkey, &der)) <= 0)
		return stk_error_openssl(err, STK_E_CRYPTO, "cannot encode public key");
	p = der;
	*out = d2i_PUBKEY(NULL, &p, n);
	OPENSSL_free(der);
	if (*out == NULL)
		return stk_error_openssl(err, STK_E_CRYPTO, "cannot decode public key");
	return STK_OK;
}

static int
file_sign(struct stk_key *key, const unsigned char *digest, size_t dlen,
    unsigned char *sig, size_t *siglen, struct stk_error *err)
{
	struct file_key *fk = (struct file_key *)key;
	EVP_PKEY_CTX *ctx;
	unsigned char der[80];
	size_t derlen = sizeof(der);
	int r = STK_E_CRYPTO;

	if ((ctx = fk->tmpl != NULL ? EVP_PKEY_CTX_dup(fk->tmpl) :
	    file_sign_ctx(fk->pkey, key->type)) == NULL)
		goto out;
	if (key->type == STK_KEY_P256) {
		if (EVP_PKEY_sign(ctx, der, &derlen, digest, dlen) != 1)
			goto out;
		if (*siglen < STK_P256_SIG_LEN ||
		    stk_ecdsa_der_to_raw(der, derlen, sig, STK_P256_SIG_LEN) != 0)
			goto out;
		*siglen = STK_P256_SIG_LEN;
	} else {
		if (EVP_PKEY_sign(ctx, sig, siglen, digest, dlen) != 1)
			goto out;
	}
	r = STK_OK;
out:
	EVP_PKEY_CTX_free(ctx);
	if (r != 0)
		r = stk_error_openssl(err, r, "file backend: signing failed");
	return r;
}

static int
file_describe(struct stk_key *key, struct stk_key_info *info,
    struct stk_error *err)
{
	struct file_key *fk = (struct file_key *)key;
	struct stat st;

	(void)err;
	info->non_exportable = 0;
	snprintf(info->location, sizeof(info->location), "file:%s", fk->path);
	stk_key_info_add(info, "storage", "PEM file (development only)");
	stk_key_info_add(info, "exportable", "true");
	if (stat(fk->path, &st) == 0)
		stk_key_info_add(info, "file-mode", "%04o",
		    (unsigned)(st.st_mode & 07777));
	return STK_OK;
}

const struct stk_key_backend stk_backend_file = {
	.name = "file",
	.scheme = "file",
	.caps = STK_CAP_GENERATE | STK_CAP_THREADSAFE,
	.open = file_open,
	.generate = file_generate,
	.get_public = file_get_public,
	.sign = file_sign,
	.describe = file_describe,
	.close = file_close,
};
