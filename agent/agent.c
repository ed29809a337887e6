/* Device agent: identity (key + self-signed certificate), state, logs,
 * registration and renewal against the API of docs/api.md. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <openssl/asn1.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include "sitetoken/cert.h"
#include "sitetoken/device.h"
#include "sitetoken/file.h"
#include "sitetoken/key.h"
#include "sitetoken/token.h"
#include "agent.h"

static const char *const agent_log_names[AGENT_LOG_COUNT] = {
	"ccmsetup.log", "ClientIDManagerStartup.log",
};

int64_t
agent_now(const struct agent *a)
{
	return (int64_t)time(NULL) + a->clock_offset;
}

const char *
agent_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
	return buf;
}

void
agent_log(struct agent *a, enum agent_log_file which, const char *component,
    const char *fmt, ...)
{
	char path[PATH_MAX], ts[32], msg[1024], *p;
	int64_t now = agent_now(a);
	va_list ap;
	FILE *fp;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* One event, one line: a server's refusal message or an install
	 * property cannot forge log lines. */
	for (p = msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	snprintf(path, sizeof(path), "%s/%s", a->dir, agent_log_names[which]);
	if ((fp = fopen(path, "a")) == NULL)
		return;
	fprintf(fp, "%s [pid %ld] %s: %s\n", agent_time(now, ts, sizeof(ts)),
	    (long)getpid(), component, msg);
	fclose(fp);
}

int
agent_path(const struct agent *a, const char *name, char *out, size_t len)
{
	return snprintf(out, len, "%s/%s", a->dir, name) >= (int)len ? -1 : 0;
}

/* Refuse a file that others may read (key, token) or a loose directory. */
static int
agent_check_mode(const char *path, mode_t forbidden, int must_exist,
    struct stk_error *err)
{
	struct stat sb;

	if (lstat(path, &sb) != 0) {
		if (errno == ENOENT && !must_exist)
			return STK_E_NOTFOUND;
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot stat %s: %s", path, strerror(errno));
	}
	if (S_ISLNK(sb.st_mode))
		return stk_error_set(err, STK_E_PERM, STK_LAYER_NONE, 0,
		    "%s is a symbolic link: refusing it", path);
	if (sb.st_uid != geteuid())
		return stk_error_set(err, STK_E_PERM, STK_LAYER_NONE, 0,
		    "%s is not owned by this user", path);
	if ((sb.st_mode & forbidden) != 0)
		return stk_error_set(err, STK_E_PERM, STK_LAYER_NONE, 0,
		    "%s has mode %04o: others may read it (chmod %s it)", path,
		    (unsigned int)(sb.st_mode & 07777), S_ISDIR(sb.st_mode) ? "700" : "600");
	return STK_OK;
}

/* A small state file without its trailing newline (malloc'd). */
static char *
agent_read_file(const char *path, size_t max)
{
	size_t n;
	char *buf = stk_file_read(path, max, &n);

	while (buf != NULL && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return buf;
}

void
agent_free_secret(char *p)
{
	if (p != NULL) {
		OPENSSL_cleanse(p, strlen(p));
		free(p);
	}
}

static void
copy_str(char *dst, size_t len, json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	snprintf(dst, len, "%s", v ? v : "");
}

int
agent_open(struct agent *a, const char *dir, struct stk_error *err)
{
	char path[PATH_MAX];
	json_t *o;
	json_error_t je;
	int r;

	if ((a->dir = strdup(dir)) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot create state directory %s: %s", dir, strerror(errno));
	if ((r = agent_check_mode(dir, 077, 1, err)) != 0)
		return r;
	if (agent_path(a, "state.json", path, sizeof(path)) != 0)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0, "path too long");
	if (access(path, F_OK) != 0)
		return STK_OK;
	if ((o = json_load_file(path, JSON_REJECT_DUPLICATES, &je)) == NULL ||
	    !json_is_object(o)) {
		json_decref(o);
		return stk_error_set(err, STK_E_IO, STK_LAYER_NONE, 0,
		    "%s is damaged: %s", path, je.text);
	}
	copy_str(a->st.device_guid, sizeof(a->st.device_guid), o, "device_guid");
	copy_str(a->st.mp, sizeof(a->st.mp), o, "mp");
	copy_str(a->st.cmg, sizeof(a->st.cmg), o, "cmg");
	copy_str(a->st.site_code, sizeof(a->st.site_code), o, "site_code");
	copy_str(a->st.via, sizeof(a->st.via), o, "via");
	copy_str(a->st.jti, sizeof(a->st.jti), o, "jti");
	copy_str(a->st.ca_hash, sizeof(a->st.ca_hash), o, "ca_hash");
	a->st.issued_at = json_integer_value(json_object_get(o, "issued_at"));
	a->st.expires_at = json_integer_value(json_object_get(o, "expires_at"));
	json_decref(o);
	a->have_state = a->st.device_guid[0] != '\0';
	return STK_OK;
}

void
agent_close(struct agent *a)
{
	if (a == NULL)
		return;
	agent_devkey_close(a);
	free(a->dir);
	a->dir = NULL;
}

int
agent_state_save(struct agent *a, struct stk_error *err)
{
	char path[PATH_MAX], *txt;
	json_t *o;
	int r;

	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}",
	    "device_guid", a->st.device_guid, "mp", a->st.mp, "cmg", a->st.cmg,
	    "site_code", a->st.site_code, "via", a->st.via, "jti", a->st.jti,
	    "issued_at", (json_int_t)a->st.issued_at,
	    "expires_at", (json_int_t)a->st.expires_at);
	/* The gateway pin stays with the device for renewals (pin.c). */
	if (o != NULL && a->st.ca_hash[0])
		json_object_set_new(o, "ca_hash", json_string(a->st.ca_hash));
	txt = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (txt == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	agent_path(a, "state.json", path, sizeof(path));
	r = stk_file_write(path, txt, strlen(txt), 0600, err);
	free(txt);
	return r;
}

int
agent_write_self_cert(struct agent *a, struct stk_key *key, const char *path,
    char host[256], char x5t[44], struct stk_error *err)
{
	unsigned char *der = NULL;
	char *pem = NULL;
	size_t derlen = 0;
	int r;

	if (gethostname(host, 256) != 0)
		snprintf(host, 256, "device");
	host[255] = '\0';
	if ((r = stk_cert_make_self_signed(key, host, "sitetoken device", agent_now(a),
	    AGENT_CERT_DAYS, &der, &derlen, err)) != 0)
		goto out;
	if (stk_cert_der_to_pem(der, derlen, &pem) != 0) {
		r = stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0,
		    "cannot encode the device certificate");
		goto out;
	}
	unlink(path);
	if ((r = stk_file_write(path, pem, strlen(pem), 0644, err)) != 0)
		goto out;
	stk_cert_x5t_s256(der, derlen, x5t);
out:
	free(der);
	free(pem);
	return r;
}

/* A new P-256 key (0600) and self-signed certificate at the given names. */
static int
agent_make_identity(struct agent *a, const char *keyname, const char *crtname,
    struct stk_error *err)
{
	struct stk_key_opts ko;
	struct stk_key *key = NULL;
	char kpath[PATH_MAX], cpath[PATH_MAX], host[256], x5t[44], *uri = NULL;
	int r;

	agent_path(a, keyname, kpath, sizeof(kpath));
	agent_path(a, crtname, cpath, sizeof(cpath));
	memset(&ko, 0, sizeof(ko));
	ko.site_dir = a->dir;
	unlink(cpath);
	unlink(kpath);
	if ((r = stk_key_generate("file", kpath, STK_KEY_P256, &ko, &key, &uri, err)) != 0 ||
	    (r = agent_write_self_cert(a, key, cpath, host, x5t, err)) != 0)
		goto out;
	agent_log(a, AGENT_LOG_SETUP, "ccmsetup", "Created the device key (P-256, "
	    "mode 0600) and self-signed certificate CN=%s x5t#S256=%s", host, x5t);
out:
	stk_key_close(key);
	free(uri);
	return r;
}

int
agent_ensure_identity(struct agent *a, struct stk_error *err)
{
	char kpath[PATH_MAX], cpath[PATH_MAX];
	int rk, rc;

	if ((rk = agent_devkey_mode(a, err)) != 0)
		return rk < 0 ? rk : agent_devkey_ensure_identity(a, err);
	agent_path(a, "device.key", kpath, sizeof(kpath));
	agent_path(a, "device.crt", cpath, sizeof(cpath));
	rk = agent_check_mode(kpath, 077, 0, err);
	if (rk != 0 && rk != STK_E_NOTFOUND)
		return rk;
	rc = agent_check_mode(cpath, 022, 0, err);
	if (rc != 0 && rc != STK_E_NOTFOUND)
		return rc;
	if (rk == 0 && rc == 0)
		return STK_OK;
	if (rk == 0 && rc == STK_E_NOTFOUND)
		return stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_NONE, 0,
		    "%s exists without its certificate %s: remove the state directory "
		    "to start over", kpath, cpath);
	return agent_make_identity(a, "device.key", "device.crt", err);
}

static void
agent_trim_url(char *url)
{
	size_t n = strlen(url);

	while (n > 0 && url[n - 1] == '/')
		url[--n] = '\0';
}

/* Parse a refusal body {"error":..., "message":...}: STK_E_AUTH. */
static int
agent_refusal(const char *body, long status, enum stk_refusal *reason, struct stk_error *err)
{
	json_t *o = json_loads(body ? body : "", JSON_REJECT_DUPLICATES, NULL);
	const char *code = json_string_value(json_object_get(o, "error"));
	const char *msg = json_string_value(json_object_get(o, "message"));

	*reason = stk_refusal_parse(code);
	stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, (unsigned long)status,
	    "refused (HTTP %ld %s): %s", status, code ? code : "?", msg ? msg : "");
	json_decref(o);
	return STK_E_AUTH;
}

/* Sign msg with the key in the state directory (name: device.key, or the
 * re-key's device.new.key); *proof: base64url (malloc'd). */
static int
agent_sign(struct agent *a, const char *keyname, const char *msg, char **proof,
    struct stk_error *err)
{
	struct stk_key_opts ko;
	struct stk_key *key = NULL, *held = NULL;
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	char kpath[PATH_MAX];
	int r;

	*proof = NULL;
	memset(&ko, 0, sizeof(ko));
	ko.site_dir = a->dir;
	/* The device key held in a TPM or PKCS#11 token signs there. */
	if (strcmp(keyname, "device.key") == 0 &&
	    (r = agent_devkey_mode(a, err)) != 0) {
		if (r < 0 || (r = agent_devkey_key(a, &held, err)) != 0)
			goto out;
	} else {
		agent_path(a, keyname, kpath, sizeof(kpath));
		if ((r = stk_key_open(kpath, &ko, &key, err)) != 0)
			goto out;
	}
	if ((r = stk_key_sign(held != NULL ? held : key, (const unsigned char *)msg, strlen(msg), sig, &siglen,
	    err)) != 0)
		goto out;
	if (stk_b64url_encode(sig, siglen, proof) != 0)
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
out:
	stk_key_close(key);
	return r;
}

/* x5t#S256 of a PEM certificate file in the state directory. */
static int
agent_cert_thumb(struct agent *a, const char *name, char x5t[44], unsigned char **der_out,
    size_t *len_out, struct stk_error *err)
{
	char path[PATH_MAX], *pem;
	unsigned char *der = NULL;
	size_t len = 0;

	agent_path(a, name, path, sizeof(path));
	if ((pem = agent_read_file(path, AGENT_PEM_MAX)) == NULL)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot read %s", path);
	if (stk_cert_pem_to_der(pem, strlen(pem), &der, &len) != 0) {
		free(pem);
		return stk_error_set(err, STK_E_IO, STK_LAYER_NONE, 0,
		    "%s is not a PEM certificate", path);
	}
	free(pem);
	stk_cert_x5t_s256(der, len, x5t);
	if (der_out != NULL) {
		*der_out = der;
		*len_out = len;
	} else
		free(der);
	return STK_OK;
}

/* Proof of possession for the plain-HTTP MP: fetch a challenge and sign it
 * with the device key (docs/api.md). */
static int
agent_mp_proof(struct agent *a, char **nonce, char **proof, enum stk_refusal *reason,
    struct stk_error *err)
{
	char url[1100], x5t[44], *resp = NULL, *msg = NULL;
	const char *n;
	long status = 0;
	json_t *o = NULL;
	int r;

	*nonce = *proof = NULL;
	snprintf(url, sizeof(url), "%s%schallenge", a->st.mp, STK_API_PREFIX);
	if ((r = agent_http(a, "POST", url, "{}", NULL, 0, &status, &resp, err)) != 0)
		goto out;
	if (status != 200) {
		r = agent_refusal(resp, status, reason, err);
		goto out;
	}
	o = json_loads(resp, JSON_REJECT_DUPLICATES, NULL);
	if ((n = json_string_value(json_object_get(o, "nonce"))) == NULL ||
	    (*nonce = strdup(n)) == NULL) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_NONE, 0,
		    "unexpected challenge response from the management point");
		goto out;
	}
	if ((r = agent_cert_thumb(a, "device.crt", x5t, NULL, NULL, err)) != 0)
		goto out;
	if ((msg = stk_pop_message(STK_POP_REGISTER, *nonce, x5t)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	r = agent_sign(a, "device.key", msg, proof, err);
out:
	if (r != 0) {
		free(*nonce);
		*nonce = NULL;
	}
	free(msg);
	json_decref(o);
	free(resp);
	return r;
}

/* Store a token response; the token goes to client.token (0600). */
static int
agent_store_issued(struct agent *a, const char *body, struct stk_error *err)
{
	char path[PATH_MAX];
	json_error_t je;
	const char *tok;
	json_t *o;
	int r;

	o = json_loads(body, JSON_REJECT_DUPLICATES, &je);
	tok = json_string_value(json_object_get(o, "client_token"));
	if (o == NULL || tok == NULL || json_string_value(json_object_get(o,
	    "device_guid")) == NULL) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_NONE, 0,
		    "unexpected response from the server");
		goto out;
	}
	agent_path(a, "client.token", path, sizeof(path));
	if ((r = stk_file_write(path, tok, strlen(tok), 0600, err)) != 0)
		goto out;
	copy_str(a->st.device_guid, sizeof(a->st.device_guid), o, "device_guid");
	copy_str(a->st.jti, sizeof(a->st.jti), o, "jti");
	copy_str(a->st.via, sizeof(a->st.via), o, "via");
	a->st.issued_at = json_integer_value(json_object_get(o, "issued_at"));
	a->st.expires_at = json_integer_value(json_object_get(o, "expires_at"));
	a->have_state = 1;
	r = agent_state_save(a, err);
out:
	/* The object holds the token text: wipe it before freeing. */
	if (tok != NULL)
		OPENSSL_cleanse((char *)tok, strlen(tok));
	json_decref(o);
	return r;
}

int
agent_register(struct agent *a, const char *mp_url, const char *cmg_url,
    const char *bulk, enum stk_refusal *reason, struct stk_error *err)
{
	char url[1100], cpath[PATH_MAX], host[256], ts[32], *pem = NULL, *body = NULL;
	char *resp = NULL, *nonce = NULL, *proof = NULL;
	int via_cmg = cmg_url != NULL && (bulk != NULL || a->id_token != NULL), r;
	/* The credential's member: an ID token replaces the bulk token. */
	const char *cred_name = a->id_token != NULL ? "id_token" : "bulk_token";
	const char *cred = a->id_token != NULL ? a->id_token : bulk;
	long status = 0;
	json_t *o;

	*reason = STK_REFUSAL_NONE;
	if ((r = agent_ensure_identity(a, err)) != 0)
		return r;
	if (mp_url != NULL) {
		snprintf(a->st.mp, sizeof(a->st.mp), "%s", mp_url);
		agent_trim_url(a->st.mp);
	}
	if (cmg_url != NULL) {
		snprintf(a->st.cmg, sizeof(a->st.cmg), "%s", cmg_url);
		agent_trim_url(a->st.cmg);
	}
	if (a->ca_hash != NULL) {
		unsigned char pin[32];

		if ((r = agent_pin_parse(a->ca_hash, pin, err)) != 0)
			return r;
		snprintf(a->st.ca_hash, sizeof(a->st.ca_hash), "%s", a->ca_hash);
	}
	if (!via_cmg && a->st.mp[0] == '\0')
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "no management point: give --mp URL (or a CMG URL and a bulk token)");
	agent_path(a, "device.crt", cpath, sizeof(cpath));
	if ((pem = agent_read_file(cpath, AGENT_PEM_MAX)) == NULL)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot read %s", cpath);
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "device");
	host[sizeof(host) - 1] = '\0';
	if (via_cmg) {
		o = json_pack("{s:s, s:s}", cred_name, cred, "hostname", host);
		snprintf(url, sizeof(url), "%s%sregister", a->st.cmg, STK_API_PREFIX);
		agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup", "Rotating internet "
		    "management point, new management point [1] is: %s (0) with capabilities: "
		    "<Capabilities SchemaVersion =\"1.0\"><Property Name=\"SSL\" Version=\"1\" />"
		    "</Capabilities>", a->st.cmg);
	} else {
		/* On https the TLS client certificate proves the key; on plain
		 * http the device signs the MP's challenge. */
		if (strncmp(a->st.mp, "https", 5) != 0 &&
		    (r = agent_mp_proof(a, &nonce, &proof, reason, err)) != 0) {
			agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup",
			    "Registration challenge failed: %s", err ? err->msg : "");
			goto out;
		}
		o = json_pack("{s:s, s:s}", "certificate", pem, "hostname", host);
		if (o != NULL && cred != NULL)
			json_object_set_new(o, cred_name, json_string(cred));
		if (o != NULL && nonce != NULL) {
			json_object_set_new(o, "nonce", json_string(nonce));
			json_object_set_new(o, "proof", json_string(proof));
		}
		snprintf(url, sizeof(url), "%s%sregister", a->st.mp, STK_API_PREFIX);
	}
	body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (body == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup", "Registering with %s "
	    "(%s%s)", via_cmg ? a->st.cmg : a->st.mp, via_cmg ? "cloud gateway" :
	    "management point", a->id_token ? ", ID token" : bulk ?
	    ", bulk registration token" : "");
	/* A TPM-held key with an EK certificate registers attested (attest_reg.c);
	 * attested registration takes a bulk token only. */
	r = via_cmg && a->id_token == NULL ? agent_attest_register(a, bulk, host, &status,
	    &resp, err) : 1;
	if (r == 1)
		r = agent_http(a, "POST", url, body, NULL, via_cmg ||
		    strncmp(url, "https", 5) == 0, &status, &resp, err);
	if (r != 0) {
		agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup",
		    "Registration failed: %s", err ? err->msg : "");
		goto out;
	}
	if (status != 200) {
		r = agent_refusal(resp, status, reason, err);
		agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup",
		    "Registration refused: %s", err ? err->msg : "");
		goto out;
	}
	if ((r = agent_store_issued(a, resp, err)) != 0)
		goto out;
	agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup", "Registered: device %s "
	    "via %s, client token jti %s valid until %s", a->st.device_guid, a->st.via,
	    a->st.jti, agent_time(a->st.expires_at, ts, sizeof(ts)));
out:
	free(pem);
	free(nonce);
	free(proof);
	agent_free_secret(body);
	agent_free_secret(resp);
	return r;
}

static char *
agent_token(struct agent *a, struct stk_error *err)
{
	char path[PATH_MAX], *t;
	int held;

	/* The device key goes to the TLS stack for every use of the token:
	 * refuse it loose here too, not only at registration. */
	agent_path(a, "device.key", path, sizeof(path));
	if ((held = agent_devkey_mode(a, err)) < 0 ||
	    (held == 0 && agent_check_mode(path, 077, 1, err) != 0))
		return NULL;
	agent_path(a, "client.token", path, sizeof(path));
	if (agent_check_mode(path, 077, 1, err) != 0)
		return NULL;
	if ((t = agent_read_file(path, STK_TOKEN_MAX + 1)) == NULL)
		stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot read %s", path);
	return t;
}

int
agent_renew_due(const struct agent *a)
{
	return agent_now(a) - a->st.issued_at >= (int64_t)a->renew_days * 86400;
}

static int
agent_need_state(struct agent *a, struct stk_error *err)
{
	if (!a->have_state || a->st.cmg[0] == '\0')
		return stk_error_set(err, STK_E_NOTFOUND, STK_LAYER_NONE, 0,
		    "not registered through a cloud gateway yet (state in %s)", a->dir);
	return STK_OK;
}

int
agent_renew(struct agent *a, enum stk_refusal *reason, struct stk_error *err)
{
	char url[1100], ts[32], *tok = NULL, *resp = NULL, old[40];
	long status = 0;
	int r;

	*reason = STK_REFUSAL_NONE;
	if ((r = agent_need_state(a, err)) != 0)
		return r;
	if ((tok = agent_token(a, err)) == NULL)
		return err ? err->code : STK_E_IO;
	snprintf(old, sizeof(old), "%s", a->st.jti);
	snprintf(url, sizeof(url), "%s%srenew", a->st.cmg, STK_API_PREFIX);
	if ((r = agent_http(a, "POST", url, "{}", tok, 1, &status, &resp, err)) != 0) {
		agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup",
		    "Renewal failed: %s", err ? err->msg : "");
		goto out;
	}
	if (status != 200) {
		r = agent_refusal(resp, status, reason, err);
		agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup",
		    "Renewal of token jti %s refused: %s%s", old, err ? err->msg : "",
		    *reason == STK_REFUSAL_TOKEN_EXPIRED ? " -- register again "
		    "with the management point on the internal network" : "");
		goto out;
	}
	if ((r = agent_store_issued(a, resp, err)) != 0)
		goto out;
	agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup", "Renewed client token "
	    "through %s: jti %s replaces %s, valid until %s", a->st.cmg, a->st.jti, old,
	    agent_time(a->st.expires_at, ts, sizeof(ts)));
out:
	agent_free_secret(tok);
	agent_free_secret(resp);
	return r;
}

int
agent_policy(struct agent *a, char **body, enum stk_refusal *reason, struct stk_error *err)
{
	char url[1100], *tok = NULL, *resp = NULL;
	long status = 0;
	int r;

	*body = NULL;
	*reason = STK_REFUSAL_NONE;
	if ((r = agent_need_state(a, err)) != 0)
		return r;
	if ((tok = agent_token(a, err)) == NULL)
		return err ? err->code : STK_E_IO;
	snprintf(url, sizeof(url), "%s%spolicy", a->st.cmg, STK_API_PREFIX);
	if ((r = agent_http(a, "GET", url, NULL, tok, 1, &status, &resp, err)) != 0)
		goto out;
	if (status != 200) {
		r = agent_refusal(resp, status, reason, err);
		agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup",
		    "Policy request refused: %s", err ? err->msg : "");
		goto out;
	}
	agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup", "Policy request "
	    "through %s accepted (device %s)", a->st.cmg, a->st.device_guid);
	*body = resp;
	resp = NULL;
out:
	agent_free_secret(tok);
	agent_free_secret(resp);
	return r;
}

int
agent_cert_expiry(struct agent *a, int64_t *not_after, struct stk_error *err)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	char x5t[44];
	size_t len = 0;
	struct tm tm;
	X509 *x;
	int r;

	*not_after = 0;
	if ((r = agent_cert_thumb(a, "device.crt", x5t, &der, &len, err)) != 0)
		return r;
	p = der;
	if ((x = d2i_X509(NULL, &p, (long)len)) == NULL ||
	    ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		r = stk_error_set(err, STK_E_IO, STK_LAYER_NONE, 0,
		    "the device certificate's validity is unreadable");
	else
		*not_after = (int64_t)timegm(&tm);
	X509_free(x);
	free(der);
	return r;
}

int
agent_rekey_due(struct agent *a)
{
	struct stk_error e;
	int64_t na;

	/* A hardware-held key is not re-keyed (yet): see agent_rekey. */
	if (agent_devkey_mode(a, &e) != 0)
		return 0;
	return agent_cert_expiry(a, &na, NULL) == 0 &&
	    na - agent_now(a) <= (int64_t)a->rekey_days * 86400;
}

int
agent_rekey(struct agent *a, enum stk_refusal *reason, struct stk_error *err)
{
	char url[1100], x5t[44], old[40], ts[32], kpath[PATH_MAX], cpath[PATH_MAX];
	char nk[PATH_MAX], nc[PATH_MAX], *tok = NULL, *resp = NULL, *msg = NULL;
	char *proof = NULL, *pem = NULL, *body = NULL;
	long status = 0;
	json_t *o;
	int r;

	*reason = STK_REFUSAL_NONE;
	if ((r = agent_need_state(a, err)) != 0)
		return r;
	/* The re-key makes a new file key beside the old one; a key held in a
	 * TPM or PKCS#11 token is not re-keyed yet (its certificate is renewed
	 * by registering again with the same held key). */
	if ((r = agent_devkey_mode(a, err)) != 0)
		return r < 0 ? r : stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE,
		    0, "re-key of a device key held in a TPM or PKCS#11 token is not "
		    "supported yet");
	if ((tok = agent_token(a, err)) == NULL)
		return err ? err->code : STK_E_IO;
	snprintf(old, sizeof(old), "%s", a->st.jti);
	/* The new identity beside the old one until the site has moved the
	 * token; the TLS handshake below still uses the old one. */
	if ((r = agent_make_identity(a, "device.new.key", "device.new.crt", err)) != 0 ||
	    (r = agent_cert_thumb(a, "device.new.crt", x5t, NULL, NULL, err)) != 0)
		goto out;
	if ((msg = stk_pop_message(STK_POP_REKEY, a->st.jti, x5t)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	if ((r = agent_sign(a, "device.new.key", msg, &proof, err)) != 0)
		goto out;
	agent_path(a, "device.new.crt", nc, sizeof(nc));
	if ((pem = agent_read_file(nc, AGENT_PEM_MAX)) == NULL) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot read %s", nc);
		goto out;
	}
	o = json_pack("{s:s, s:s}", "certificate", pem, "proof", proof);
	body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (body == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	snprintf(url, sizeof(url), "%s%srekey", a->st.cmg, STK_API_PREFIX);
	if ((r = agent_http(a, "POST", url, body, tok, 1, &status, &resp, err)) != 0) {
		agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup",
		    "Re-key failed: %s", err ? err->msg : "");
		goto out;
	}
	if (status != 200) {
		r = agent_refusal(resp, status, reason, err);
		agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup",
		    "Re-key of token jti %s refused: %s", old, err ? err->msg : "");
		goto out;
	}
	/* The site moved the token: the new key and certificate take over. */
	agent_path(a, "device.key", kpath, sizeof(kpath));
	agent_path(a, "device.crt", cpath, sizeof(cpath));
	agent_path(a, "device.new.key", nk, sizeof(nk));
	if (rename(nk, kpath) != 0 || rename(nc, cpath) != 0) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot move the new identity into place: %s", strerror(errno));
		goto out;
	}
	if ((r = agent_store_issued(a, resp, err)) != 0)
		goto out;
	agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup", "Re-keyed through %s: "
	    "certificate x5t#S256=%s, jti %s replaces %s, valid until %s", a->st.cmg, x5t,
	    a->st.jti, old, agent_time(a->st.expires_at, ts, sizeof(ts)));
out:
	agent_free_secret(tok);
	agent_free_secret(resp);
	free(msg);
	free(proof);
	free(pem);
	free(body);
	return r;
}

/* A property value: non-empty, printable ASCII, no spaces (it is logged to
 * ccmsetup.log and becomes a URL). */
static int
agent_install_value(const char *v)
{
	if (*v == '\0')
		return 0;
	for (; *v; v++)
		if ((unsigned char)*v <= 0x20 || (unsigned char)*v >= 0x7f)
			return 0;
	return 1;
}

int
agent_install_parse(int argc, char **argv, struct agent_install *out,
    struct stk_error *err)
{
	static const char *const keys[] = { "/mp:", "CCMHOSTNAME=", "SMSSiteCode=",
	    "/cahash:", "/regtoken:", "/idtoken:" };
	const char **slot[4];
	const char *v;
	size_t k, klen;
	int i, n, have_tok = 0;

	memset(out, 0, sizeof(*out));
	slot[0] = &out->mp;
	slot[1] = &out->host;
	slot[2] = &out->code;
	slot[3] = &out->cahash;
	for (i = 1; i < argc; i++) {
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (strncasecmp(argv[i], keys[k], strlen(keys[k])) == 0)
				break;
		if (k == sizeof(keys) / sizeof(keys[0])) {
			agent_install_clear(out);
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "unknown install property '%.40s'", argv[i]);
		}
		klen = strlen(keys[k]);
		v = argv[i] + klen;
		if (k == 5) {
			/* An ID token only from stdin: argv is visible to others. */
			if (strcmp(argv[i] + klen, "-") != 0) {
				OPENSSL_cleanse(argv[i] + klen, strlen(argv[i] + klen));
				agent_install_clear(out);
				return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
				    "/idtoken takes '-' only: the ID token is read from standard "
				    "input, never from the command line");
			}
			if (out->idtoken_stdin || have_tok) {
				agent_install_clear(out);
				return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
				    "give one of /regtoken and /idtoken, once");
			}
			out->idtoken_stdin = 1;
			continue;
		}
		if (k == 4 && out->idtoken_stdin) {
			OPENSSL_cleanse(argv[i] + klen, strlen(argv[i] + klen));
			agent_install_clear(out);
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "give one of /regtoken and /idtoken, once");
		}
		if ((k < 4 && *slot[k] != NULL) || (k == 4 && have_tok)) {
			agent_install_clear(out);
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "install property %.*s given twice", (int)klen - 1, keys[k]);
		}
		if (!agent_install_value(v)) {
			if (k == 4)
				OPENSSL_cleanse(argv[i] + klen, strlen(v));
			agent_install_clear(out);
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "install property %.*s needs a value without spaces or control "
			    "characters", (int)klen - 1, keys[k]);
		}
		if (k < 4) {
			*slot[k] = v;
			continue;
		}
		have_tok = 1;
		if (strcmp(v, "-") == 0) {
			out->bulk_stdin = 1;
			continue;
		}
		out->bulk = strdup(v);
		/* Do not leave it in our own argv (visible in /proc). */
		OPENSSL_cleanse(argv[i] + klen, strlen(v));
		if (out->bulk == NULL) {
			agent_install_clear(out);
			return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0,
			    "out of memory");
		}
	}
	if (out->code != NULL && (strlen(out->code) != 3 || strspn(out->code,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != 3)) {
		agent_install_clear(out);
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "SMSSiteCode must be three letters or digits");
	}
	if (out->cahash != NULL) {
		unsigned char pin[32];

		if (agent_pin_parse(out->cahash, pin, err) != 0) {
			agent_install_clear(out);
			return STK_E_ARG;
		}
	}
	if (out->mp == NULL && out->host == NULL) {
		agent_install_clear(out);
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "install needs /mp:URL or CCMHOSTNAME=HOST/PATH");
	}
	n = out->mp != NULL ? snprintf(out->cmg, sizeof(out->cmg), "%s", out->mp) :
	    snprintf(out->cmg, sizeof(out->cmg), "https://%s", out->host);
	if (n < 0 || (size_t)n >= sizeof(out->cmg) ||
	    strncasecmp(out->cmg, "https://", 8) != 0 || out->cmg[8] == '\0') {
		agent_install_clear(out);
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "the cloud gateway URL must be https:// and under %zu characters",
		    sizeof(out->cmg));
	}
	return STK_OK;
}

void
agent_install_clear(struct agent_install *in)
{
	if (in == NULL)
		return;
	agent_free_secret(in->bulk);
	memset(in, 0, sizeof(*in));
}
