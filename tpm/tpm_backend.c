/* The `tpm` key backend: a signing key inside a TPM 2.0, driven through
 * tpm2-tss ESAPI.
 *
 * URIs:
 *   tpm:blob=PATH       loadable key blob (TPM2B_PUBLIC + TPM2B_PRIVATE)
 *                       under the owner hierarchy's SRK; a relative PATH is
 *                       taken relative to the site directory
 *   tpm:handle=0x81xxxxxx  an existing persistent signing key
 *
 * The private key is created inside the TPM with fixedTPM|fixedParent|
 * sensitiveDataOrigin: the blob is only usable by the TPM that made it.
 * Blobs are preferred over persistent handles because NV slots are scarce.
 *
 * One open key keeps one ESYS context, the key loaded and one salted HMAC
 * session for its whole life, so signing costs exactly one TPM2_Sign. The
 * SRK is only needed to load the key and to salt the session; it is flushed
 * right after, so an open key occupies a single transient object slot.
 * ESYS contexts are not thread-safe: every TPM command runs under key->lock.
 *
 * The optional key auth value comes from SITETOKEN_TPM_KEY_AUTH or from the
 * file named by SITETOKEN_TPM_KEY_AUTH_FILE, never from argv; it crosses the
 * bus only inside the encrypted (salted) session. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>
#include "tpm_nv.h"
#include "sitetoken/key.h"
#include "sitetoken/log.h"
#include "tpm_int.h"

extern const struct stk_key_backend stk_backend_tpm;

#define TPM_BLOB_NAME "site.tpmkey"
/* Blob file: magic, version, SRK algorithm, then the two marshalled TPM2Bs. */
#define TPM_BLOB_MAGIC 0x53544b54u /* "STKT" */
#define TPM_BLOB_VERSION 1u
#define TPM_BLOB_MAX 4096
/* tss2_tpm2_types.h builds these by shifting an int into the sign bit,
 * which UBSan rightly reports; spell the values out. */
#define TPM_PERSISTENT_FIRST 0x81000000ul
#define TPM_PERSISTENT_LAST 0x81fffffful

struct tpm_key {
	struct stk_key base; /* must be first */
	pthread_mutex_t lock;
	int lock_ready;
	TSS2_TCTI_CONTEXT *tcti;
	ESYS_CONTEXT *ectx;
	ESYS_TR handle;      /* the signing key */
	ESYS_TR session;     /* salted HMAC session, param encryption */
	int persistent;      /* handle is a persistent object: never flush it */
	TPM2_HANDLE tpm_handle; /* persistent handle value, if persistent */
	TPM2B_PUBLIC pub;    /* public area as read back when opened */
	TPM2B_AUTH auth;     /* key auth value (secret; wiped on close) */
	char uri[PATH_MAX + 16];
	/* What it takes to connect and load again after a TPM reset or a
	 * lost connection, so a long-running service heals by itself. */
	char *tcti_conf;     /* NULL: the tpm2-tss default TCTI */
	int has_blob;
	char blob_path[PATH_MAX];
	TPM2B_PUBLIC blob_pub;
	TPM2B_PRIVATE blob_priv;
};

/* ---- errors ------------------------------------------------------------ */

/* TPM response codes carry handle/session/parameter numbers in their upper
 * bits; strip them so we can compare against TPM2_RC_* constants. */
static TSS2_RC
tpm_rc_base(TSS2_RC rc)
{
	if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER)
		return rc;
	if (rc & TPM2_RC_FMT1)
		return rc & (TPM2_RC_FMT1 | 0x3f);
	return rc & 0xfff;
}

static int
tpm_rc_unreachable(TSS2_RC rc)
{
	TSS2_RC layer = rc & TSS2_RC_LAYER_MASK, base = rc & 0xffff; /* TSS2_BASE_RC_* */

	if (layer == TSS2_TCTI_RC_LAYER)
		return 1;
	return (layer == TSS2_ESAPI_RC_LAYER || layer == TSS2_SYS_RC_LAYER) &&
	    (base == TSS2_BASE_RC_IO_ERROR || base == TSS2_BASE_RC_NO_CONNECTION ||
	    base == TSS2_BASE_RC_NOT_PERMITTED || base == TSS2_BASE_RC_TRY_AGAIN ||
	    base == TSS2_BASE_RC_INSUFFICIENT_RESPONSE ||
	    base == TSS2_BASE_RC_MALFORMED_RESPONSE);
}

/* Map a TSS2_RC to our error: layer TSS2, the raw code as native, the
 * decoded text in the message, and an explanation an operator can act on. */
static int
tpm_error(struct stk_error *err, TSS2_RC rc, const char *what)
{
	TSS2_RC base = tpm_rc_base(rc);
	const char *txt = Tss2_RC_Decode(rc);

	if (tpm_rc_unreachable(rc))
		return stk_error_set(err, STK_E_BACKEND, STK_LAYER_TSS2, rc,
		    "TPM unreachable (%s): %s; check --tcti / SITETOKEN_TCTI "
		    "(e.g. swtpm:host=127.0.0.1,port=2321 or device:/dev/tpmrm0)",
		    what, txt);
	if (base == TPM2_RC_AUTH_FAIL || base == TPM2_RC_BAD_AUTH)
		return stk_error_set(err, STK_E_AUTH, STK_LAYER_TSS2, rc,
		    "%s: wrong auth value for the TPM key (from SITETOKEN_TPM_KEY_AUTH"
		    " or SITETOKEN_TPM_KEY_AUTH_FILE); not retried, so that the "
		    "TPM's dictionary-attack counter is not run up (%s)", what, txt);
	if (base == TPM2_RC_LOCKOUT)
		return stk_error_set(err, STK_E_AUTH, STK_LAYER_TSS2, rc,
		    "%s: the TPM is in dictionary-attack lockout after too many "
		    "wrong auth values; wait for its recovery time or have the "
		    "owner reset it (tpm2_dictionarylockout --clear-lockout) (%s)",
		    what, txt);
	if (base == TPM2_RC_OBJECT_MEMORY || base == TPM2_RC_SESSION_MEMORY ||
	    base == TPM2_RC_OBJECT_HANDLES || base == TPM2_RC_SESSION_HANDLES)
		return stk_error_set(err, STK_E_BACKEND, STK_LAYER_TSS2, rc,
		    "%s: the TPM has no free object or session slots; another "
		    "program keeps objects loaded (use the resource manager, "
		    "device:/dev/tpmrm0 or tabrmd) (%s)", what, txt);
	return stk_error_set(err, STK_E_BACKEND, STK_LAYER_TSS2, rc,
	    "TPM %s failed: %s", what, txt);
}

/* ---- small helpers ----------------------------------------------------- */

static void
tpm_wipe_auth(TPM2B_AUTH *a)
{
	OPENSSL_cleanse(a, sizeof(*a));
}

/* Key auth from env or a 0600 file; empty if neither is set. */
static int
tpm_read_auth(TPM2B_AUTH *out, struct stk_error *err)
{
	const char *v = getenv("SITETOKEN_TPM_KEY_AUTH");
	const char *path = getenv("SITETOKEN_TPM_KEY_AUTH_FILE");
	unsigned char buf[sizeof(out->buffer) + 2];
	struct stat st;
	ssize_t n = 0;
	size_t len;
	int fd = -1, r = STK_OK;

	memset(out, 0, sizeof(*out));
	if (v != NULL && *v != '\0') {
		len = strlen(v);
		if (len > sizeof(out->buffer) || len > TPM2_SHA256_DIGEST_SIZE)
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "SITETOKEN_TPM_KEY_AUTH is longer than %d bytes",
			    TPM2_SHA256_DIGEST_SIZE);
		memcpy(out->buffer, v, len);
		out->size = (UINT16)len;
		return STK_OK;
	}
	if (path == NULL || *path == '\0')
		return STK_OK;
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot open TPM key auth file %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || (st.st_mode & 077) != 0) {
		r = stk_error_set(err, STK_E_PERM, STK_LAYER_SYS, 0,
		    "TPM key auth file %s must not be accessible by group or "
		    "others (chmod 600)", path);
		goto out;
	}
	/* Like PIN files: another user's file could be swapped under us. */
	if (st.st_uid != geteuid()) {
		r = stk_error_set(err, STK_E_PERM, STK_LAYER_SYS, 0,
		    "TPM key auth file %s belongs to uid %lu, not to this user: "
		    "refused (chown it)", path, (unsigned long)st.st_uid);
		goto out;
	}
	if ((n = read(fd, buf, sizeof(buf))) < 0) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot read TPM key auth file %s", path);
		goto out;
	}
	len = (size_t)n;
	/* A trailing newline from an editor or echo is not part of the secret. */
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len > TPM2_SHA256_DIGEST_SIZE) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "TPM key auth in %s is longer than %d bytes", path,
		    TPM2_SHA256_DIGEST_SIZE);
		goto out;
	}
	memcpy(out->buffer, buf, len);
	out->size = (UINT16)len;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	if (fd >= 0)
		close(fd);
	return r;
}

/* Parse "tpm:blob=PATH" / "tpm:handle=0x81..." (bare "tpm:" or NULL: none). */
static int
tpm_parse_uri(const char *uri, const char **blob, TPM2_HANDLE *handle,
    struct stk_error *err)
{
	const char *p;
	char *end;
	unsigned long v;

	*blob = NULL;
	*handle = 0;
	if (uri == NULL || *uri == '\0' || strcmp(uri, "tpm:") == 0 ||
	    strcmp(uri, "tpm") == 0)
		return STK_OK;
	if (strncmp(uri, "tpm:", 4) == 0) {
		p = uri + 4;
		if (strncmp(p, "blob=", 5) == 0 && p[5] != '\0') {
			*blob = p + 5;
			return STK_OK;
		}
		if (strncmp(p, "handle=", 7) == 0) {
			errno = 0;
			v = strtoul(p + 7, &end, 0);
			if (errno != 0 || *end != '\0' || end == p + 7 ||
			    v < TPM_PERSISTENT_FIRST || v > TPM_PERSISTENT_LAST)
				return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
				    "TPM key URI %s: handle must be a persistent handle "
				    "0x81000000..0x81ffffff", uri);
			*handle = (TPM2_HANDLE)v;
			return STK_OK;
		}
	}
	return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
	    "bad TPM key URI '%s' (want tpm:blob=PATH or tpm:handle=0x81xxxxxx)",
	    uri);
}

static int
tpm_blob_path(const char *blob, const struct stk_key_opts *opts, char *buf,
    size_t len, struct stk_error *err)
{
	int n;

	if (blob == NULL) {
		if (opts->site_dir == NULL)
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "tpm backend: no site directory for the key blob");
		n = snprintf(buf, len, "%s/%s", opts->site_dir, TPM_BLOB_NAME);
	} else if (blob[0] != '/' && opts->site_dir != NULL)
		n = snprintf(buf, len, "%s/%s", opts->site_dir, blob);
	else
		n = snprintf(buf, len, "%s", blob);
	if (n < 0 || (size_t)n >= len)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "TPM key blob path too long");
	return STK_OK;
}

/* ---- TPM session plumbing --------------------------------------------- */

static int
tpm_connect(const char *conf, TSS2_TCTI_CONTEXT **tcti, ESYS_CONTEXT **ectx,
    struct stk_error *err)
{
	TSS2_RC rc;

	*tcti = NULL;
	*ectx = NULL;
	/* NULL lets tpm2-tss pick the platform default (tabrmd, tpmrm0...). */
	if ((rc = Tss2_TctiLdr_Initialize(conf, tcti)) != TSS2_RC_SUCCESS) {
		*tcti = NULL;
		return stk_error_set(err, STK_E_BACKEND, STK_LAYER_TSS2, rc,
		    "TPM unreachable: cannot open TCTI '%s': %s; check --tcti / "
		    "SITETOKEN_TCTI (e.g. swtpm:host=127.0.0.1,port=2321 or "
		    "device:/dev/tpmrm0)", conf ? conf : "(default)",
		    Tss2_RC_Decode(rc));
	}
	if ((rc = Esys_Initialize(ectx, *tcti, NULL)) != TSS2_RC_SUCCESS) {
		*ectx = NULL;
		Tss2_TctiLdr_Finalize(tcti);
		return tpm_error(err, rc, "ESAPI initialisation");
	}
	/* Firmware normally did this; a bare simulator or a TPM that was just
	 * reset may not have. Other refusals (TPM_RC_INITIALIZE: already
	 * started; a resource manager filtering the command) are harmless:
	 * a TPM that really is not started fails the next command clearly. */
	rc = Esys_Startup(*ectx, TPM2_SU_CLEAR);
	if (rc != TSS2_RC_SUCCESS && tpm_rc_unreachable(rc)) {
		Esys_Finalize(ectx);
		Tss2_TctiLdr_Finalize(tcti);
		return tpm_error(err, rc, "startup");
	}
	return STK_OK;
}

/* The storage root key from the TCG provisioning-guidance ECC template
 * (P-256, AES-128-CFB, zero unique): every TPM derives the same SRK from its
 * owner seed, so it need not be persisted, and ECC keeps it fast to make. */
static int
tpm_create_srk(ESYS_CONTEXT *ectx, ESYS_TR *srk, struct stk_error *err)
{
	TPM2B_SENSITIVE_CREATE sens;
	TPM2B_PUBLIC tmpl;
	TPM2B_DATA outside;
	TPML_PCR_SELECTION pcrs;
	TSS2_RC rc;

	*srk = ESYS_TR_NONE;
	memset(&sens, 0, sizeof(sens));
	memset(&tmpl, 0, sizeof(tmpl));
	memset(&outside, 0, sizeof(outside));
	memset(&pcrs, 0, sizeof(pcrs));
	tmpl.publicArea.type = TPM2_ALG_ECC;
	tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
	tmpl.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM |
	    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
	    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA |
	    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
	tmpl.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
	tmpl.publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
	tmpl.publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
	tmpl.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
	tmpl.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
	tmpl.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	tmpl.publicArea.unique.ecc.x.size = 32;
	tmpl.publicArea.unique.ecc.y.size = 32;
	rc = Esys_CreatePrimary(ectx, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
	    ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, srk,
	    NULL, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		*srk = ESYS_TR_NONE;
		if (tpm_rc_base(rc) == TPM2_RC_BAD_AUTH ||
		    tpm_rc_base(rc) == TPM2_RC_AUTH_FAIL)
			return stk_error_set(err, STK_E_AUTH, STK_LAYER_TSS2, rc,
			    "TPM owner hierarchy has an auth value; sitetoken "
			    "needs the owner hierarchy with empty auth to make "
			    "its SRK (%s)", Tss2_RC_Decode(rc));
		return tpm_error(err, rc, "creating the storage root key");
	}
	return STK_OK;
}

/* Salted HMAC session: the salt is encrypted to the SRK, so session keys
 * (and thus the key's auth and the digest) are unknown to a bus sniffer. */
static int
tpm_start_session(ESYS_CONTEXT *ectx, ESYS_TR srk, ESYS_TR *session,
    struct stk_error *err)
{
	TPMT_SYM_DEF sym;
	TSS2_RC rc;

	*session = ESYS_TR_NONE;
	memset(&sym, 0, sizeof(sym));
	sym.algorithm = TPM2_ALG_AES;
	sym.keyBits.aes = 128;
	sym.mode.aes = TPM2_ALG_CFB;
	rc = Esys_StartAuthSession(ectx, srk, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_HMAC, &sym,
	    TPM2_ALG_SHA256, session);
	if (rc != TSS2_RC_SUCCESS) {
		*session = ESYS_TR_NONE;
		return tpm_error(err, rc, "starting the salted session");
	}
	rc = Esys_TRSess_SetAttributes(ectx, *session,
	    TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT |
	    TPMA_SESSION_CONTINUESESSION, 0xff);
	if (rc != TSS2_RC_SUCCESS) {
		Esys_FlushContext(ectx, *session);
		*session = ESYS_TR_NONE;
		return tpm_error(err, rc, "setting session attributes");
	}
	return STK_OK;
}

static void
tpm_flush(ESYS_CONTEXT *ectx, ESYS_TR *tr)
{
	if (ectx != NULL && *tr != ESYS_TR_NONE)
		Esys_FlushContext(ectx, *tr);
	*tr = ESYS_TR_NONE;
}

/* Drop the connection. flush=1 frees the TPM's slots (normal close);
 * flush=0 only forgets our references, for a TPM that was reset: its
 * transient objects are gone already, and on a TPM without a resource
 * manager the same handle numbers may now belong to someone else. */
static void
tpm_disconnect(struct tpm_key *tk, int flush)
{
	if (tk->ectx != NULL) {
		if (flush)
			tpm_flush(tk->ectx, &tk->session);
		else if (tk->session != ESYS_TR_NONE)
			Esys_TR_Close(tk->ectx, &tk->session);
		if (flush && !tk->persistent)
			tpm_flush(tk->ectx, &tk->handle);
		else if (tk->handle != ESYS_TR_NONE)
			/* A persistent key stays in NV: only forget it. */
			Esys_TR_Close(tk->ectx, &tk->handle);
		Esys_Finalize(&tk->ectx);
	}
	tk->session = ESYS_TR_NONE;
	tk->handle = ESYS_TR_NONE;
	if (tk->tcti != NULL)
		Tss2_TctiLdr_Finalize(&tk->tcti);
	tk->tcti = NULL;
}

static void
tpm_close(struct stk_key *key)
{
	struct tpm_key *tk = (struct tpm_key *)key;

	if (tk == NULL)
		return;
	tpm_disconnect(tk, 1);
	if (tk->lock_ready)
		pthread_mutex_destroy(&tk->lock);
	free(tk->tcti_conf);
	tpm_wipe_auth(&tk->auth);
	OPENSSL_cleanse(tk, sizeof(*tk));
	free(tk);
}

static int
tpm_key_new(const struct stk_key_opts *opts, struct tpm_key **out,
    struct stk_error *err)
{
	struct tpm_key *tk = NULL;
	const char *conf;
	int r;

	*out = NULL;
	if ((tk = calloc(1, sizeof(*tk))) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0,
		    "out of memory");
		goto out;
	}
	tk->base.vt = &stk_backend_tpm;
	tk->handle = ESYS_TR_NONE;
	tk->session = ESYS_TR_NONE;
	if (pthread_mutex_init(&tk->lock, NULL) != 0) {
		free(tk);
		tk = NULL;
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_SYS, 0,
		    "cannot create mutex");
		goto out;
	}
	tk->lock_ready = 1;
	conf = opts->tcti;
	if (conf == NULL || *conf == '\0')
		conf = getenv("SITETOKEN_TCTI");
	if (conf != NULL && *conf != '\0' &&
	    (tk->tcti_conf = strdup(conf)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0,
		    "out of memory");
		goto out;
	}
	if ((r = tpm_read_auth(&tk->auth, err)) != 0 ||
	    (r = tpm_connect(tk->tcti_conf, &tk->tcti, &tk->ectx, err)) != 0)
		goto out;
	*out = tk;
	r = STK_OK;
out:
	if (r != 0 && tk != NULL)
		tpm_close(&tk->base);
	return r;
}

/* Check that a public area is a key we can sign with, and which type. */
static int
tpm_check_public(const TPMT_PUBLIC *p, const char *where, enum stk_key_type *type,
    struct stk_error *err)
{
	TPMA_OBJECT a = p->objectAttributes;

	*type = STK_KEY_NONE;
	if (!(a & TPMA_OBJECT_SIGN_ENCRYPT) || (a & TPMA_OBJECT_RESTRICTED) ||
	    (a & TPMA_OBJECT_DECRYPT))
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "TPM key %s is not an unrestricted signing-only key", where);
	if (p->type == TPM2_ALG_RSA && p->parameters.rsaDetail.keyBits == 2048 &&
	    (p->parameters.rsaDetail.scheme.scheme == TPM2_ALG_NULL ||
	    (p->parameters.rsaDetail.scheme.scheme == TPM2_ALG_RSASSA &&
	    p->parameters.rsaDetail.scheme.details.rsassa.hashAlg == TPM2_ALG_SHA256)))
		*type = STK_KEY_RSA2048;
	else if (p->type == TPM2_ALG_ECC &&
	    p->parameters.eccDetail.curveID == TPM2_ECC_NIST_P256 &&
	    (p->parameters.eccDetail.scheme.scheme == TPM2_ALG_NULL ||
	    (p->parameters.eccDetail.scheme.scheme == TPM2_ALG_ECDSA &&
	    p->parameters.eccDetail.scheme.details.ecdsa.hashAlg == TPM2_ALG_SHA256)))
		*type = STK_KEY_P256;
	else
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "TPM key %s is not RSA 2048 RSASSA-SHA256 or ECC P-256 "
		    "ECDSA-SHA256", where);
	return STK_OK;
}

/* ---- blob file --------------------------------------------------------- */

static int
tpm_blob_write(const char *path, const TPM2B_PUBLIC *pub,
    const TPM2B_PRIVATE *priv, struct stk_error *err)
{
	uint8_t buf[TPM_BLOB_MAX];
	size_t off = 0;
	TSS2_RC rc;
	int fd = -1, r = STK_OK;

	if ((rc = Tss2_MU_UINT32_Marshal(TPM_BLOB_MAGIC, buf, sizeof(buf), &off)) ||
	    (rc = Tss2_MU_UINT32_Marshal(TPM_BLOB_VERSION, buf, sizeof(buf), &off)) ||
	    (rc = Tss2_MU_UINT16_Marshal(TPM2_ALG_ECC, buf, sizeof(buf), &off)) ||
	    (rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, sizeof(buf), &off)) ||
	    (rc = Tss2_MU_TPM2B_PRIVATE_Marshal(priv, buf, sizeof(buf), &off)))
		return stk_error_set(err, STK_E_BACKEND, STK_LAYER_TSS2, rc,
		    "cannot marshal TPM key blob: %s", Tss2_RC_Decode(rc));
	/* O_EXCL: never overwrite a key blob that may be a site's only key. */
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600)) < 0)
		return stk_error_set(err, errno == EEXIST ? STK_E_EXISTS : STK_E_IO,
		    STK_LAYER_SYS, (unsigned long)errno,
		    "cannot create TPM key blob %s: %s", path, strerror(errno));
	if (write(fd, buf, off) != (ssize_t)off || fsync(fd) != 0) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot write TPM key blob %s", path);
		close(fd);
		unlink(path);
		return r;
	}
	if (close(fd) != 0) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot write TPM key blob %s", path);
		unlink(path);
	}
	return r;
}

static int
tpm_blob_read(const char *path, TPM2B_PUBLIC *pub, TPM2B_PRIVATE *priv,
    struct stk_error *err)
{
	uint8_t buf[TPM_BLOB_MAX];
	size_t off = 0;
	ssize_t n;
	UINT32 magic = 0, version = 0;
	UINT16 srkalg = 0;
	int fd;

	memset(pub, 0, sizeof(*pub));
	memset(priv, 0, sizeof(*priv));
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return stk_error_set(err, errno == ENOENT ? STK_E_NOTFOUND : STK_E_IO,
		    STK_LAYER_SYS, (unsigned long)errno,
		    "cannot open TPM key blob %s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot read TPM key blob %s", path);
	if (Tss2_MU_UINT32_Unmarshal(buf, (size_t)n, &off, &magic) ||
	    Tss2_MU_UINT32_Unmarshal(buf, (size_t)n, &off, &version) ||
	    Tss2_MU_UINT16_Unmarshal(buf, (size_t)n, &off, &srkalg) ||
	    magic != TPM_BLOB_MAGIC || version != TPM_BLOB_VERSION ||
	    srkalg != TPM2_ALG_ECC ||
	    Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, (size_t)n, &off, pub) ||
	    Tss2_MU_TPM2B_PRIVATE_Unmarshal(buf, (size_t)n, &off, priv) ||
	    off != (size_t)n)
		return stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
		    "%s is not a sitetoken TPM key blob (or it is damaged)", path);
	return STK_OK;
}

/* ---- open / generate --------------------------------------------------- */

/* Load a blob under a fresh SRK, salt the session with that SRK, then flush
 * the SRK: the session keeps its salt, the key stays loaded. */
static int
tpm_load_blob(struct tpm_key *tk, const char *path, const TPM2B_PUBLIC *pub,
    const TPM2B_PRIVATE *priv, struct stk_error *err)
{
	ESYS_TR srk = ESYS_TR_NONE;
	TSS2_RC rc;
	TSS2_RC base;
	int r;

	if ((r = tpm_create_srk(tk->ectx, &srk, err)) != 0)
		goto out;
	if (tk->session == ESYS_TR_NONE &&
	    (r = tpm_start_session(tk->ectx, srk, &tk->session, err)) != 0)
		goto out;
	rc = Esys_Load(tk->ectx, srk, tk->session, ESYS_TR_NONE, ESYS_TR_NONE,
	    priv, pub, &tk->handle);
	if (rc != TSS2_RC_SUCCESS) {
		tk->handle = ESYS_TR_NONE;
		base = tpm_rc_base(rc);
		if (base == TPM2_RC_INTEGRITY || base == TPM2_RC_BINDING ||
		    base == TPM2_RC_SIZE || base == TPM2_RC_KEY ||
		    base == TPM2_RC_SYMMETRIC || base == TPM2_RC_VALUE ||
		    base == TPM2_RC_HMAC)
			r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_TSS2, rc,
			    "TPM refused to load the key blob %s: it was made by "
			    "another TPM, or this TPM's owner hierarchy was cleared "
			    "since; a TPM key cannot move to another TPM, make a new "
			    "site key on this one (%s)", path, Tss2_RC_Decode(rc));
		else
			r = tpm_error(err, rc, "loading the key blob");
		goto out;
	}
	if (pub != &tk->blob_pub) {
		tk->has_blob = 1;
		tk->blob_pub = *pub;
		tk->blob_priv = *priv;
		snprintf(tk->blob_path, sizeof(tk->blob_path), "%s", path);
	}
	r = STK_OK;
out:
	tpm_flush(tk->ectx, &srk);
	return r;
}

/* Read the public area back from the TPM and check it is our kind of key. */
static int
tpm_read_public(struct tpm_key *tk, struct stk_error *err)
{
	TPM2B_PUBLIC *p = NULL;
	uint8_t a[sizeof(TPM2B_PUBLIC)], b[sizeof(TPM2B_PUBLIC)];
	size_t alen = 0, blen = 0;
	TSS2_RC rc;
	int r;

	rc = Esys_ReadPublic(tk->ectx, tk->handle, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, &p, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS)
		return tpm_error(err, rc, "reading the key's public area");
	/* On a reconnect the key must be the very same one (a persistent
	 * handle may have been given to another key meanwhile). Compare the
	 * wire form: the C structs may differ in unused union bytes. */
	if (tk->base.type != STK_KEY_NONE &&
	    (Tss2_MU_TPM2B_PUBLIC_Marshal(p, a, sizeof(a), &alen) != 0 ||
	    Tss2_MU_TPM2B_PUBLIC_Marshal(&tk->pub, b, sizeof(b), &blen) != 0 ||
	    alen != blen || memcmp(a, b, alen) != 0)) {
		Esys_Free(p);
		return stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
		    "TPM key %s is no longer the key this site was opened with",
		    tk->uri);
	}
	tk->pub = *p;
	Esys_Free(p);
	r = tpm_check_public(&tk->pub.publicArea, tk->uri, &tk->base.type, err);
	return r;
}

static int
tpm_open_persistent(struct tpm_key *tk, TPM2_HANDLE handle,
    struct stk_error *err)
{
	ESYS_TR srk = ESYS_TR_NONE;
	TSS2_RC rc;
	int r;

	tk->persistent = 1;
	tk->tpm_handle = handle;
	rc = Esys_TR_FromTPMPublic(tk->ectx, handle, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, &tk->handle);
	if (rc != TSS2_RC_SUCCESS) {
		tk->handle = ESYS_TR_NONE;
		if (tpm_rc_base(rc) == TPM2_RC_HANDLE)
			return stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_TSS2, rc,
			    "no persistent TPM key at handle 0x%08x (%s)",
			    (unsigned)handle, Tss2_RC_Decode(rc));
		return tpm_error(err, rc, "opening the persistent key");
	}
	/* A signing key cannot salt a session: use a transient SRK for it. */
	if ((r = tpm_create_srk(tk->ectx, &srk, err)) != 0)
		goto out;
	r = tpm_start_session(tk->ectx, srk, &tk->session, err);
out:
	tpm_flush(tk->ectx, &srk);
	return r;
}

static int
tpm_finish_open(struct tpm_key *tk, struct stk_error *err)
{
	TSS2_RC rc;
	int r;

	if ((r = tpm_read_public(tk, err)) != 0)
		return r;
	if ((rc = Esys_TR_SetAuth(tk->ectx, tk->handle, &tk->auth)) != 0)
		return tpm_error(err, rc, "setting the key auth value");
	return STK_OK;
}

static int
tpm_open(const char *uri, const struct stk_key_opts *opts,
    struct stk_key **out, struct stk_error *err)
{
	struct tpm_key *tk = NULL;
	const char *blob;
	TPM2_HANDLE handle;
	TPM2B_PUBLIC pub;
	TPM2B_PRIVATE priv;
	char path[PATH_MAX];
	int r;

	*out = NULL;
	if ((r = tpm_parse_uri(uri, &blob, &handle, err)) != 0)
		return r;
	if (blob == NULL && handle == 0)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "TPM key URI '%s' names no key (want tpm:blob=PATH or "
		    "tpm:handle=0x81xxxxxx)", uri ? uri : "");
	if (blob != NULL &&
	    ((r = tpm_blob_path(blob, opts, path, sizeof(path), err)) != 0 ||
	    (r = tpm_blob_read(path, &pub, &priv, err)) != 0))
		return r;
	if ((r = tpm_key_new(opts, &tk, err)) != 0)
		goto out;
	snprintf(tk->uri, sizeof(tk->uri), "%s", uri);
	/* sitetoken makes a key with an auth value without noDA, and one
	 * without an auth value with noDA (tpm_template). Trying a key of the
	 * first kind with an empty value is a wrong guess: it counts against
	 * the TPM's dictionary-attack lockout. Ask for the value instead. */
	if (blob != NULL && tk->auth.size == 0 &&
	    !(pub.publicArea.objectAttributes & TPMA_OBJECT_NODA)) {
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "TPM key %s: auth value required (the key was made with one): set "
		    "SITETOKEN_TPM_KEY_AUTH or SITETOKEN_TPM_KEY_AUTH_FILE; not tried "
		    "with an empty value, which would count against the TPM's "
		    "dictionary-attack lockout", uri);
		goto out;
	}
	if (blob != NULL)
		r = tpm_load_blob(tk, path, &pub, &priv, err);
	else
		r = tpm_open_persistent(tk, handle, err);
	if (r != 0 || (r = tpm_finish_open(tk, err)) != 0)
		goto out;
	*out = &tk->base;
	r = STK_OK;
out:
	if (r != 0 && tk != NULL)
		tpm_close(&tk->base);
	return r;
}

/* Errors after which the key is worth loading again: the connection was
 * lost, or the TPM was reset or restarted and forgot our objects. Never an
 * auth failure: retrying those only runs up the DA counter. */
static int
tpm_rc_reload(TSS2_RC rc)
{
	TSS2_RC base = tpm_rc_base(rc);

	return tpm_rc_unreachable(rc) || base == TPM2_RC_INITIALIZE ||
	    base == TPM2_RC_HANDLE || base == TPM2_RC_REFERENCE_H0 ||
	    base == TPM2_RC_REFERENCE_S0;
}

/* Reconnect and reload the key; called with tk->lock held. */
static int
tpm_reestablish(struct tpm_key *tk, struct stk_error *err)
{
	int r;

	tpm_disconnect(tk, 0);
	if ((r = tpm_connect(tk->tcti_conf, &tk->tcti, &tk->ectx, err)) != 0)
		return r;
	if (tk->has_blob)
		r = tpm_load_blob(tk, tk->blob_path, &tk->blob_pub,
		    &tk->blob_priv, err);
	else
		r = tpm_open_persistent(tk, tk->tpm_handle, err);
	if (r == 0)
		r = tpm_finish_open(tk, err);
	if (r != 0) {
		tpm_disconnect(tk, 1);
		return r;
	}
	STK_LOG(STK_LOG_WARN, "tpm", "TPM connection lost or TPM reset; "
	    "reloaded key %s", tk->uri);
	return STK_OK;
}

void
stk_tpm__sign_params(TPMT_PUBLIC *p, int ecc)
{
	if (ecc) {
		p->type = TPM2_ALG_ECC;
		p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
		p->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
		p->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
		p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
		p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
	} else {
		p->type = TPM2_ALG_RSA;
		p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
		p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_RSASSA;
		p->parameters.rsaDetail.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
		p->parameters.rsaDetail.keyBits = 2048;
		p->parameters.rsaDetail.exponent = 0;
	}
}

static void
tpm_template(enum stk_key_type type, int has_auth, TPM2B_PUBLIC *t)
{
	memset(t, 0, sizeof(*t));
	t->publicArea.nameAlg = TPM2_ALG_SHA256;
	/* Non-exportable by construction: made inside, bound to this TPM and
	 * this parent; a plain signing key, no decrypt, not restricted. */
	t->publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM |
	    TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
	    TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_SIGN_ENCRYPT;
	/* Dictionary-attack protection guards an auth value against guessing.
	 * An empty auth has nothing to guess, and DA-protected keys are locked
	 * out when the TPM's counter runs up — which unclean power-offs also
	 * do — so a signing service would stop for no gain. */
	if (!has_auth)
		t->publicArea.objectAttributes |= TPMA_OBJECT_NODA;
	stk_tpm__sign_params(&t->publicArea, type == STK_KEY_P256);
}

/* Make a relative path absolute through its directory (which exists: it is
 * the site directory); the file itself does not exist yet. */
static int
tpm_abs_path(char *path, size_t len, struct stk_error *err)
{
	char dir[PATH_MAX], real[PATH_MAX], *slash;
	const char *base = path;
	int n;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		base = path + (slash - dir) + 1;
	} else
		snprintf(dir, sizeof(dir), ".");
	if (realpath(dir, real) == NULL)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot resolve directory %s: %s", dir, strerror(errno));
	n = snprintf(dir, sizeof(dir), "%s/%s", real, base);
	if (n < 0 || (size_t)n >= len)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "TPM key blob path too long");
	snprintf(path, len, "%s", dir);
	return STK_OK;
}

static int
tpm_generate(const char *uri, enum stk_key_type type,
    const struct stk_key_opts *opts, struct stk_key **out, char **out_uri,
    struct stk_error *err)
{
	struct tpm_key *tk = NULL;
	const char *blob;
	TPM2_HANDLE handle;
	TPM2B_SENSITIVE_CREATE sens;
	TPM2B_PUBLIC tmpl;
	TPM2B_DATA outside;
	TPML_PCR_SELECTION pcrs;
	TPM2B_PUBLIC *pub = NULL;
	TPM2B_PRIVATE *priv = NULL;
	ESYS_TR srk = ESYS_TR_NONE;
	char path[PATH_MAX];
	TSS2_RC rc;
	int r, wrote = 0;

	*out = NULL;
	*out_uri = NULL;
	memset(&sens, 0, sizeof(sens));
	if ((r = tpm_parse_uri(uri, &blob, &handle, err)) != 0)
		goto out;
	/* An existing persistent key: nothing to create, adopt it. */
	if (handle != 0) {
		if ((r = tpm_open(uri, opts, out, err)) != 0)
			goto out;
		if ((*out)->type != type) {
			r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "persistent TPM key 0x%08x is %s, not the requested %s",
			    (unsigned)handle, stk_key_type_name((*out)->type),
			    stk_key_type_name(type));
			goto out;
		}
		if ((*out_uri = strdup(uri)) == NULL) {
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0,
			    "out of memory");
			goto out;
		}
		r = STK_OK;
		goto out;
	}
	if (type != STK_KEY_RSA2048 && type != STK_KEY_P256) {
		r = stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "tpm backend makes rsa2048 or p256 keys, not %s",
		    stk_key_type_name(type));
		goto out;
	}
	if ((r = tpm_blob_path(blob, opts, path, sizeof(path), err)) != 0)
		goto out;
	/* Store an absolute path: the CLI may have been given a relative site
	 * directory, and the URI must still work from another cwd. */
	if (path[0] != '/' && (r = tpm_abs_path(path, sizeof(path), err)) != 0)
		goto out;
	if (access(path, F_OK) == 0) {
		r = stk_error_set(err, STK_E_EXISTS, STK_LAYER_NONE, 0,
		    "TPM key blob %s already exists; not overwriting it", path);
		goto out;
	}

	if ((r = tpm_key_new(opts, &tk, err)) != 0)
		goto out;
	if ((r = tpm_create_srk(tk->ectx, &srk, err)) != 0 ||
	    (r = tpm_start_session(tk->ectx, srk, &tk->session, err)) != 0)
		goto out;
	tpm_template(type, tk->auth.size > 0, &tmpl);
	sens.sensitive.userAuth = tk->auth;
	memset(&outside, 0, sizeof(outside));
	memset(&pcrs, 0, sizeof(pcrs));
	/* Through the salted session, so userAuth is encrypted on the bus. */
	rc = Esys_Create(tk->ectx, srk, tk->session, ESYS_TR_NONE, ESYS_TR_NONE,
	    &sens, &tmpl, &outside, &pcrs, &priv, &pub, NULL, NULL, NULL);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm_error(err, rc, "creating the signing key");
		goto out;
	}
	if ((r = tpm_blob_write(path, pub, priv, err)) != 0)
		goto out;
	wrote = 1;
	tpm_flush(tk->ectx, &srk);
	if (asprintf(out_uri, "tpm:blob=%s", path) < 0) {
		*out_uri = NULL;
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	snprintf(tk->uri, sizeof(tk->uri), "%s", *out_uri);
	if ((r = tpm_load_blob(tk, path, pub, priv, err)) != 0 ||
	    (r = tpm_finish_open(tk, err)) != 0)
		goto out;
	STK_LOG(STK_LOG_INFO, "tpm", "generated %s key in the TPM, blob %s",
	    stk_key_type_name(type), path);
	*out = &tk->base;
	tk = NULL;
	r = STK_OK;
out:
	if (r != 0) {
		if (tk != NULL)
			tpm_flush(tk->ectx, &srk);
		tpm_close(tk ? &tk->base : *out);
		*out = NULL;
		free(*out_uri);
		*out_uri = NULL;
		if (wrote)
			unlink(path);
	}
	OPENSSL_cleanse(&sens, sizeof(sens));
	if (priv != NULL)
		OPENSSL_cleanse(priv, sizeof(*priv));
	Esys_Free(priv);
	Esys_Free(pub);
	return r;
}

/* ---- operations -------------------------------------------------------- */

static int
tpm_get_public(struct stk_key *key, EVP_PKEY **out, struct stk_error *err)
{
	struct tpm_key *tk = (struct tpm_key *)key;
	const TPMT_PUBLIC *p = &tk->pub.publicArea;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	BIGNUM *n = NULL, *e = NULL;
	unsigned char point[65];
	int r = STK_E_CRYPTO;

	*out = NULL;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL)
		goto out;
	if (p->type == TPM2_ALG_RSA) {
		/* exponent 0 in a TPM public area means the default 65537. */
		if ((n = BN_bin2bn(p->unique.rsa.buffer, p->unique.rsa.size, NULL)) == NULL ||
		    (e = BN_new()) == NULL ||
		    BN_set_word(e, p->parameters.rsaDetail.exponent ?
		    p->parameters.rsaDetail.exponent : 65537) != 1 ||
		    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
		    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 ||
		    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL)
			goto out;
	} else {
		if (p->unique.ecc.x.size > 32 || p->unique.ecc.y.size > 32)
			goto out;
		/* Uncompressed point; TPM coordinates may be shorter than 32. */
		memset(point, 0, sizeof(point));
		point[0] = 0x04;
		memcpy(point + 1 + 32 - p->unique.ecc.x.size,
		    p->unique.ecc.x.buffer, p->unique.ecc.x.size);
		memcpy(point + 33 + 32 - p->unique.ecc.y.size,
		    p->unique.ecc.y.buffer, p->unique.ecc.y.size);
		if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
		    "prime256v1", 0) != 1 ||
		    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
		    point, sizeof(point)) != 1 ||
		    (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL)
			goto out;
	}
	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		*out = NULL;
		goto out;
	}
	r = STK_OK;
out:
	if (r != STK_OK)
		r = stk_error_openssl(err, r, "cannot convert the TPM public key");
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	return r;
}

static int
tpm_pad32(const TPM2B_ECC_PARAMETER *v, unsigned char *dst)
{
	if (v->size > 32)
		return -1;
	memset(dst, 0, 32 - v->size);
	memcpy(dst + 32 - v->size, v->buffer, v->size);
	return 0;
}

static TSS2_RC
tpm_sign_once(struct tpm_key *tk, const TPM2B_DIGEST *d,
    const TPMT_SIG_SCHEME *scheme, const TPMT_TK_HASHCHECK *check,
    TPMT_SIGNATURE **s)
{
	TSS2_RC rc;

	/* Always the salted HMAC session, also for a key without an auth
	 * value: the digest travels encrypted and the command is bound to the
	 * session. It doubles swtpm's cost per TPM2_Sign (tpm2-tss 3.2.1
	 * re-fetches OpenSSL algorithms per crypto operation); bench/ compares
	 * against a raw loop with the same session. */
	/* The response's first parameter is not a TPM2B, so response
	 * encryption must be off for Sign (else TPM_RC_ATTRIBUTES); the
	 * digest going in stays encrypted. */
	rc = Esys_TRSess_SetAttributes(tk->ectx, tk->session,
	    TPMA_SESSION_DECRYPT | TPMA_SESSION_CONTINUESESSION,
	    TPMA_SESSION_DECRYPT | TPMA_SESSION_ENCRYPT |
	    TPMA_SESSION_CONTINUESESSION);
	if (rc != TSS2_RC_SUCCESS)
		return rc;
	return Esys_Sign(tk->ectx, tk->handle, tk->session, ESYS_TR_NONE,
	    ESYS_TR_NONE, d, scheme, check, s);
}

static int
tpm_sign(struct stk_key *key, const unsigned char *digest, size_t dlen,
    unsigned char *sig, size_t *siglen, struct stk_error *err)
{
	struct tpm_key *tk = (struct tpm_key *)key;
	TPM2B_DIGEST d;
	TPMT_SIG_SCHEME scheme;
	TPMT_TK_HASHCHECK check;
	TPMT_SIGNATURE *s = NULL;
	TSS2_RC rc;
	size_t cap = *siglen;
	int r, attempt;

	if (dlen != TPM2_SHA256_DIGEST_SIZE)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "tpm backend signs SHA-256 digests only");
	memset(&d, 0, sizeof(d));
	memset(&scheme, 0, sizeof(scheme));
	memset(&check, 0, sizeof(check));
	d.size = (UINT16)dlen;
	memcpy(d.buffer, digest, dlen);
	if (key->type == STK_KEY_P256) {
		scheme.scheme = TPM2_ALG_ECDSA;
		scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
	} else {
		scheme.scheme = TPM2_ALG_RSASSA;
		scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
	}
	/* A NULL ticket: allowed because the key is not restricted. */
	check.tag = TPM2_ST_HASHCHECK;
	check.hierarchy = TPM2_RH_NULL;

	pthread_mutex_lock(&tk->lock);
	/* A previous reload failed: try once more for this call. */
	if (tk->ectx == NULL && (r = tpm_reestablish(tk, err)) != 0) {
		pthread_mutex_unlock(&tk->lock);
		goto out;
	}
	for (attempt = 0;; attempt++) {
		rc = tpm_sign_once(tk, &d, &scheme, &check, &s);
		if (rc == TSS2_RC_SUCCESS || attempt > 0 || !tpm_rc_reload(rc))
			break;
		if ((r = tpm_reestablish(tk, err)) != 0) {
			pthread_mutex_unlock(&tk->lock);
			goto out;
		}
	}
	pthread_mutex_unlock(&tk->lock);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm_error(err, rc, "signing");
		goto out;
	}
	if (key->type == STK_KEY_P256) {
		if (s->sigAlg != TPM2_ALG_ECDSA || cap < STK_P256_SIG_LEN ||
		    tpm_pad32(&s->signature.ecdsa.signatureR, sig) != 0 ||
		    tpm_pad32(&s->signature.ecdsa.signatureS, sig + 32) != 0) {
			r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
			    "TPM returned an unexpected ECDSA signature");
			goto out;
		}
		*siglen = STK_P256_SIG_LEN;
	} else {
		if (s->sigAlg != TPM2_ALG_RSASSA ||
		    s->signature.rsassa.sig.size > cap) {
			r = stk_error_set(err, STK_E_BACKEND, STK_LAYER_NONE, 0,
			    "TPM returned an unexpected RSA signature");
			goto out;
		}
		memcpy(sig, s->signature.rsassa.sig.buffer,
		    s->signature.rsassa.sig.size);
		*siglen = s->signature.rsassa.sig.size;
	}
	r = STK_OK;
out:
	Esys_Free(s);
	return r;
}

static int
tpm_describe(struct stk_key *key, struct stk_key_info *info,
    struct stk_error *err)
{
	static const struct { TPMA_OBJECT bit; const char *name; } bits[] = {
		{ TPMA_OBJECT_FIXEDTPM, "fixedTPM" },
		{ TPMA_OBJECT_FIXEDPARENT, "fixedParent" },
		{ TPMA_OBJECT_SENSITIVEDATAORIGIN, "sensitiveDataOrigin" },
		{ TPMA_OBJECT_USERWITHAUTH, "userWithAuth" },
		{ TPMA_OBJECT_ADMINWITHPOLICY, "adminWithPolicy" },
		{ TPMA_OBJECT_NODA, "noDA" },
		{ TPMA_OBJECT_RESTRICTED, "restricted" },
		{ TPMA_OBJECT_DECRYPT, "decrypt" },
		{ TPMA_OBJECT_SIGN_ENCRYPT, "sign" },
	};
	struct tpm_key *tk = (struct tpm_key *)key;
	TPM2B_PUBLIC *p = NULL;
	TPM2B_NAME *name = NULL;
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMA_OBJECT a;
	char list[88], hex[2 * sizeof(name->name) + 1], mfr[5];
	size_t i, off = 0;
	TSS2_RC rc;
	int r;

	pthread_mutex_lock(&tk->lock);
	if (tk->ectx == NULL && (r = tpm_reestablish(tk, err)) != 0) {
		pthread_mutex_unlock(&tk->lock);
		goto out;
	}
	rc = Esys_ReadPublic(tk->ectx, tk->handle, ESYS_TR_NONE, ESYS_TR_NONE,
	    ESYS_TR_NONE, &p, &name, NULL);
	if (rc == TSS2_RC_SUCCESS)
		(void)Esys_GetCapability(tk->ectx, ESYS_TR_NONE, ESYS_TR_NONE,
		    ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES, TPM2_PT_MANUFACTURER, 1,
		    NULL, &cap);
	pthread_mutex_unlock(&tk->lock);
	if (rc != TSS2_RC_SUCCESS) {
		r = tpm_error(err, rc, "reading the key's public area");
		goto out;
	}
	a = p->publicArea.objectAttributes;
	info->non_exportable = (a & TPMA_OBJECT_FIXEDTPM) &&
	    (a & TPMA_OBJECT_FIXEDPARENT);
	snprintf(info->location, sizeof(info->location), "%.255s", tk->uri);
	if (tk->persistent)
		stk_key_info_add(info, "storage", "TPM 2.0 persistent handle 0x%08x",
		    (unsigned)tk->tpm_handle);
	else
		stk_key_info_add(info, "storage", "TPM 2.0 key blob under the "
		    "owner SRK (ECC P-256)");
	list[0] = '\0';
	for (i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if ((a & bits[i].bit) && off < sizeof(list))
			off += (size_t)snprintf(list + off, sizeof(list) - off,
			    "%s%s", off ? "|" : "", bits[i].name);
	stk_key_info_add(info, "objectAttributes", "0x%08x %s", (unsigned)a, list);
	for (i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		stk_key_info_add(info, bits[i].name, "%s",
		    (a & bits[i].bit) ? "true" : "false");
	stk_key_info_add(info, "scheme", "%s",
	    p->publicArea.type == TPM2_ALG_ECC ? "ECDSA-SHA256 (NIST P-256)" :
	    "RSASSA-PKCS1-v1_5-SHA256 (RSA 2048)");
	for (i = 0; name != NULL && i < name->size && i < sizeof(name->name); i++)
		snprintf(hex + 2 * i, 3, "%02x", name->name[i]);
	hex[2 * i] = '\0';
	stk_key_info_add(info, "name", "%s", hex);
	if (cap != NULL && cap->data.tpmProperties.count == 1 &&
	    cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_MANUFACTURER) {
		UINT32 v = cap->data.tpmProperties.tpmProperty[0].value;

		for (i = 0; i < 4; i++) {
			unsigned char c = (unsigned char)(v >> (24 - 8 * i));
			mfr[i] = (char)((c >= 0x20 && c < 0x7f) ? c : ' ');
		}
		mfr[4] = '\0';
		stk_key_info_add(info, "tpm-manufacturer", "%s", mfr);
	}
	r = STK_OK;
out:
	Esys_Free(p);
	Esys_Free(name);
	Esys_Free(cap);
	return r;
}

/* For tpm/tpm_attest.c: lend the open key's ESYS context, its handle and
 * its salted session, with key->lock held until stk_tpm__return. */
int
stk_tpm__borrow(struct stk_key *key, struct stk_tpm_lend *l,
    struct stk_error *err)
{
	struct tpm_key *tk = (struct tpm_key *)key;
	int r = STK_OK;

	memset(l, 0, sizeof(*l));
	if (key == NULL || key->vt != &stk_backend_tpm)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "not a TPM key");
	pthread_mutex_lock(&tk->lock);
	if (tk->ectx == NULL && (r = tpm_reestablish(tk, err)) != 0) {
		pthread_mutex_unlock(&tk->lock);
		return r;
	}
	l->ectx = tk->ectx;
	l->handle = tk->handle;
	l->session = tk->session;
	return STK_OK;
}

void
stk_tpm__return(struct stk_key *key)
{
	pthread_mutex_unlock(&((struct tpm_key *)key)->lock);
}

/* ---- Hooks for tpm_nv.c ------------------------------------------------ */

ESYS_CONTEXT *
tpm_key_lock_esys(struct stk_key *key, struct stk_error *err)
{
	struct tpm_key *tk = (struct tpm_key *)key;

	pthread_mutex_lock(&tk->lock);
	if (tk->ectx == NULL && tpm_reestablish(tk, err) != 0) {
		pthread_mutex_unlock(&tk->lock);
		return NULL;
	}
	return tk->ectx;
}

void
tpm_key_unlock(struct stk_key *key)
{
	pthread_mutex_unlock(&((struct tpm_key *)key)->lock);
}

const struct stk_key_backend stk_backend_tpm = {
	.name = "tpm",
	.scheme = "tpm",
	.caps = STK_CAP_GENERATE | STK_CAP_NONEXPORTABLE | STK_CAP_THREADSAFE,
	.open = tpm_open,
	.generate = tpm_generate,
	.get_public = tpm_get_public,
	.sign = tpm_sign,
	.describe = tpm_describe,
	.close = tpm_close,
	.counter = tpm_nv_counter,
};
