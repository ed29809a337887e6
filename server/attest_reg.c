/* Attested registration through the cloud gateway (issue 18, server half).
 *
 *   POST attest/nonce     -> {"nonce": hex, "expires_in": s}
 *   POST attest/register  {"bulk_token", "evidence", "hostname"?}
 *                         -> {"pending_id", "credential", "expires_in"}
 *   POST attest/activate  {"pending_id", "secret", "bulk_token", "hostname"?}
 *                         -> the client token, as POST register
 *
 * The nonce and the pending registration are bound to the TLS client
 * certificate that asked for them, live SRV_ATTREG_TTL seconds and are used
 * once (taken out of the table before they are checked, so a replay finds
 * nothing). They live in this process's memory: the three requests go to
 * one gateway node. The table is bounded, so junk requests cost a slot each
 * and no more. The evidence is checked against the site's trusted EK roots,
 * its key against the TLS certificate's key; MakeCredential (software) binds
 * the secret to the EK and the AK, so only the TPM that made the evidence
 * can answer. Only then does site/registration/registration.c register the device, recorded
 * as attested ("tpm", with its EK certificate's SHA-256). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include "sitetoken/attest.h"
#include "sitetoken/attest_policy.h"
#include "sitetoken/cert.h"
#include "sitetoken/device.h"
#include "sitetoken/token.h"
#include "attest_reg.h"
#include "http.h"
#include "metrics.h"

#define AR_NONCE_LEN 32
#define AR_ID_LEN 16

enum ar_kind { AR_FREE = 0, AR_NONCE, AR_PENDING };

struct ar_slot {
	enum ar_kind kind;
	int64_t expires;
	unsigned char id[AR_NONCE_LEN];  /* the nonce, or the pending id (AR_ID_LEN) */
	char thumb[44];                  /* TLS client certificate it is bound to */
	unsigned char secret[STK_ATTEST_SECRET_MAX];
	char ek_sha256[65];
};

struct srv_attreg {
	struct stk_site *site;
	pthread_mutex_t *site_mu;
	struct srv_logs *logs;
	pthread_mutex_t mu;              /* the table */
	struct ar_slot slots[SRV_ATTREG_SLOTS];
};

struct srv_attreg *
srv_attreg_new(struct stk_site *site, pthread_mutex_t *site_mu, struct srv_logs *logs)
{
	struct srv_attreg *ar = calloc(1, sizeof(*ar));

	if (ar == NULL)
		return NULL;
	ar->site = site;
	ar->site_mu = site_mu;
	ar->logs = logs;
	pthread_mutex_init(&ar->mu, NULL);
	return ar;
}

void
srv_attreg_free(struct srv_attreg *ar)
{
	if (ar == NULL)
		return;
	pthread_mutex_destroy(&ar->mu);
	OPENSSL_cleanse(ar->slots, sizeof(ar->slots));
	free(ar);
}

/* Store a slot; 0, or -1 when every slot is in use and alive. */
static int
ar_put(struct srv_attreg *ar, const struct ar_slot *in)
{
	int64_t now = stk_now();
	size_t i;
	int r = -1;

	pthread_mutex_lock(&ar->mu);
	for (i = 0; i < SRV_ATTREG_SLOTS; i++)
		if (ar->slots[i].kind == AR_FREE || ar->slots[i].expires <= now) {
			OPENSSL_cleanse(&ar->slots[i], sizeof(ar->slots[i]));
			ar->slots[i] = *in;
			r = 0;
			break;
		}
	pthread_mutex_unlock(&ar->mu);
	return r;
}

/* Take (remove) the live slot of this kind and id; 0 when found. */
static int
ar_take(struct srv_attreg *ar, enum ar_kind kind, const unsigned char *id,
    size_t idlen, struct ar_slot *out)
{
	int64_t now = stk_now();
	size_t i;
	int r = -1;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&ar->mu);
	for (i = 0; i < SRV_ATTREG_SLOTS; i++) {
		struct ar_slot *sl = &ar->slots[i];

		if (sl->kind != kind || CRYPTO_memcmp(sl->id, id, idlen) != 0)
			continue;
		if (sl->expires > now) {
			*out = *sl;
			r = 0;
		}
		OPENSSL_cleanse(sl, sizeof(*sl));
		break;
	}
	pthread_mutex_unlock(&ar->mu);
	return r;
}

/* A refusal: logged (ClientAuth, MP_RegistrationManager), audited, 403. */
static enum MHD_Result
ar_refuse(struct srv_attreg *ar, struct MHD_Connection *c, const char *peer,
    const char *thumb, enum stk_refusal why, const char *msg)
{
	const char *code = stk_refusal_code(why);

	pthread_mutex_lock(ar->site_mu);
	stk_attest_audit_refusal(ar->site, peer, thumb, code, msg);
	pthread_mutex_unlock(ar->site_mu);
	srv_metrics_refused(SRV_M_CMG, why);
	srv_log(ar->logs, SRV_LOG_AUTH, "ClientAuth", "Refused attested registration "
	    "from %s: %s (%s)", peer, code, msg);
	srv_log(ar->logs, SRV_LOG_REG, "MP_RegistrationManager", "Refused attested "
	    "registration via cmg from %s: %s (%s)", peer, code, msg);
	return srv_refuse(c, why, msg);
}

static void
ar_hex(const unsigned char *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static int
ar_unhex(const char *hex, unsigned char *out, size_t want)
{
	size_t i;
	unsigned int v;

	if (hex == NULL || strlen(hex) != 2 * want)
		return -1;
	for (i = 0; i < want; i++) {
		if (sscanf(hex + 2 * i, "%2x", &v) != 1 ||
		    strchr("0123456789abcdefABCDEF", hex[2 * i]) == NULL ||
		    strchr("0123456789abcdefABCDEF", hex[2 * i + 1]) == NULL)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

static int
ar_count_root(void *ctx, const struct stk_attest_root *rt)
{
	(void)rt;
	(*(size_t *)ctx)++;
	return 0;
}

static enum MHD_Result
ar_nonce(struct srv_attreg *ar, struct MHD_Connection *c, const char *thumb)
{
	struct ar_slot sl;
	struct stk_error err;
	char hex[2 * AR_NONCE_LEN + 1];
	size_t nroots = 0;
	int r;

	/* A site that trusts no maker cannot attest anyone: say so before the
	 * device does any TPM work (it then registers without attestation). */
	stk_error_clear(&err);
	pthread_mutex_lock(ar->site_mu);
	r = stk_attest_roots_foreach(ar->site, ar_count_root, &nroots, &err);
	pthread_mutex_unlock(ar->site_mu);
	if (r != 0)
		return srv_refuse(c, STK_REFUSAL_INTERNAL,
		    "see the server logs");
	if (nroots == 0)
		return srv_refuse(c, STK_REFUSAL_ATTEST_UNAVAILABLE,
		    "this site trusts no TPM manufacturer root (sitetoken attest roots add)");
	memset(&sl, 0, sizeof(sl));
	sl.kind = AR_NONCE;
	sl.expires = stk_now() + SRV_ATTREG_TTL;
	snprintf(sl.thumb, sizeof(sl.thumb), "%s", thumb);
	if (RAND_bytes(sl.id, AR_NONCE_LEN) != 1)
		return srv_refuse(c, STK_REFUSAL_INTERNAL,
		    "no random bytes");
	if (ar_put(ar, &sl) != 0)
		return srv_refuse(c, STK_REFUSAL_BUSY,
		    "too many attested registrations in progress; retry later");
	ar_hex(sl.id, AR_NONCE_LEN, hex);
	return srv_reply_json(c, MHD_HTTP_OK, json_pack("{s:s, s:i}", "nonce", hex,
	    "expires_in", SRV_ATTREG_TTL));
}

/* Bulk token check before any attestation work: only a holder of a valid
 * bulk token makes the gateway verify evidence and make credentials. */
static int
ar_bulk_ok(struct srv_attreg *ar, const char *bulk, enum stk_refusal *reason,
    struct stk_error *err)
{
	struct stk_claims cl;
	int r;

	memset(&cl, 0, sizeof(cl));
	*reason = STK_REFUSAL_NONE;
	if (bulk == NULL) {
		*reason = STK_REFUSAL_NO_TOKEN;
		return stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "registration through the cloud gateway needs a bulk registration token");
	}
	pthread_mutex_lock(ar->site_mu);
	r = stk_bulk_check(ar->site, bulk, strlen(bulk), stk_now(), &cl, err);
	pthread_mutex_unlock(ar->site_mu);
	stk_claims_clear(&cl);
	if (r != 0)
		*reason = stk_refusal_of_rc(r);
	return r;
}

static enum MHD_Result
ar_register(struct srv_attreg *ar, struct MHD_Connection *c, const char *peer,
    const char *thumb, const unsigned char *cert_der, size_t cert_len, json_t *o)
{
	struct stk_attest_evidence *ev = NULL;
	struct stk_attest_expect exp;
	struct stk_error err;
	struct ar_slot nonce, pend;
	X509_STORE *roots = NULL;
	X509 *x = NULL;
	EVP_PKEY *tlskey = NULL;
	const unsigned char *p = cert_der;
	const char *bulk = NULL, *host = NULL;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	json_t *evj = NULL;
	json_error_t je;
	unsigned char md[32], *cred = NULL;
	char *evtxt = NULL, *credb64 = NULL, idhex[2 * AR_ID_LEN + 1];
	size_t clen = 0;
	unsigned int mdlen = 0;
	enum MHD_Result ret;
	int r;

	stk_error_clear(&err);
	memset(&pend, 0, sizeof(pend));
	if (json_unpack_ex(o, &je, JSON_STRICT, "{s:s, s:o, s?s}", "bulk_token",
	    &bulk, "evidence", &evj, "hostname", &host) != 0 || !json_is_object(evj))
		return srv_refuse(c, STK_REFUSAL_BAD_REQUEST,
		    "attest/register takes {\"bulk_token\", \"evidence\": {...}, \"hostname\"}");
	if (ar_bulk_ok(ar, bulk, &reason, &err) != 0)
		return ar_refuse(ar, c, peer, thumb, reason, err.msg);
	if ((evtxt = json_dumps(evj, JSON_COMPACT)) == NULL ||
	    stk_attest_evidence_parse(evtxt, strlen(evtxt), &ev, &err) != 0) {
		ret = ar_refuse(ar, c, peer, thumb, STK_REFUSAL_ATTEST_INVALID, err.msg[0] ? err.msg : "unreadable evidence");
		goto out;
	}
	/* The nonce: ours, alive, for this certificate, used once. */
	if (ev->nonce_len != AR_NONCE_LEN ||
	    ar_take(ar, AR_NONCE, ev->nonce, AR_NONCE_LEN, &nonce) != 0) {
		ret = ar_refuse(ar, c, peer, thumb, STK_REFUSAL_ATTEST_NONCE, "the evidence is over a nonce this gateway "
		    "did not issue, or one already used or expired: ask attest/nonce again");
		goto out;
	}
	if (strcmp(nonce.thumb, thumb) != 0) {
		ret = ar_refuse(ar, c, peer, thumb, STK_REFUSAL_ATTEST_NONCE, "the nonce was issued to another TLS client "
		    "certificate");
		goto out;
	}
	pthread_mutex_lock(ar->site_mu);
	r = stk_attest_roots_store(ar->site, &roots, &err);
	pthread_mutex_unlock(ar->site_mu);
	if (r != 0) {
		ret = srv_refuse(c, STK_REFUSAL_INTERNAL,
		    "see the server logs");
		srv_log(ar->logs, SRV_LOG_AUTH, "ClientAuth", "attestation roots: %s", err.msg);
		goto out;
	}
	memset(&exp, 0, sizeof(exp));
	exp.roots = roots;
	exp.nonce = nonce.id;
	exp.nonce_len = AR_NONCE_LEN;
	if (stk_attest_verify(ev, &exp, NULL, &err) != 0) {
		ret = ar_refuse(ar, c, peer, thumb, STK_REFUSAL_ATTEST_INVALID, err.msg);
		goto out;
	}
	/* The evidence holds; now it must be about the key of this TLS
	 * certificate (the handshake proved the client holds that key). */
	if (cert_len > STK_DEVICE_CERT_MAX || (x = d2i_X509(NULL, &p, (long)cert_len)) == NULL ||
	    (tlskey = X509_get_pubkey(x)) == NULL) {
		ret = srv_refuse(c, STK_REFUSAL_BAD_CERTIFICATE,
		    "the TLS client certificate cannot be read");
		goto out;
	}
	exp.key = tlskey;
	stk_error_clear(&err);
	if (stk_attest_verify(ev, &exp, NULL, &err) != 0) {
		ret = ar_refuse(ar, c, peer, thumb, STK_REFUSAL_ATTEST_KEY,
		    "the attested TPM key is not the key of the TLS client certificate");
		goto out;
	}
	pend.kind = AR_PENDING;
	pend.expires = stk_now() + SRV_ATTREG_TTL;
	snprintf(pend.thumb, sizeof(pend.thumb), "%s", thumb);
	if (EVP_Digest(ev->ek_cert.p, ev->ek_cert.len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    RAND_bytes(pend.id, AR_ID_LEN) != 1 ||
	    RAND_bytes(pend.secret, sizeof(pend.secret)) != 1 ||
	    stk_attest_make_credential(ev, pend.secret, sizeof(pend.secret), &cred,
	    &clen, &err) != 0 || stk_b64url_encode(cred, clen, &credb64) != 0) {
		ret = ar_refuse(ar, c, peer, thumb, STK_REFUSAL_ATTEST_INVALID, err.msg[0] ? err.msg :
		    "cannot make a credential for this EK");
		goto out;
	}
	ar_hex(md, mdlen, pend.ek_sha256);
	if (ar_put(ar, &pend) != 0) {
		ret = srv_refuse(c, STK_REFUSAL_BUSY,
		    "too many attested registrations in progress; retry later");
		goto out;
	}
	ar_hex(pend.id, AR_ID_LEN, idhex);
	srv_log(ar->logs, SRV_LOG_REG, "MP_RegistrationManager", "Attestation "
	    "evidence from %s (host %s) verified: EK sha256=%s, key of certificate "
	    "x5t#S256=%s; credential sent, pending %s", peer, host ? host : "-",
	    pend.ek_sha256, thumb, idhex);
	ret = srv_reply_json(c, MHD_HTTP_OK, json_pack("{s:s, s:s, s:i}", "pending_id", idhex,
	    "credential", credb64, "expires_in", SRV_ATTREG_TTL));
out:
	OPENSSL_cleanse(&pend, sizeof(pend));
	OPENSSL_cleanse(&nonce, sizeof(nonce));
	free(evtxt);
	free(cred);
	free(credb64);
	stk_attest_evidence_free(ev);
	X509_STORE_free(roots);
	EVP_PKEY_free(tlskey);
	X509_free(x);
	return ret;
}

static enum MHD_Result
ar_activate(struct srv_attreg *ar, struct MHD_Connection *c, const char *peer,
    const char *thumb, const unsigned char *cert_der, size_t cert_len, json_t *o)
{
	struct stk_reg_request reg;
	struct stk_issued is;
	struct stk_error err;
	struct ar_slot pend;
	const char *id = NULL, *sec = NULL, *bulk = NULL, *host = NULL;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	unsigned char idb[AR_ID_LEN], secret[STK_ATTEST_SECRET_MAX];
	json_error_t je;
	enum MHD_Result ret;
	int r;

	stk_error_clear(&err);
	memset(&is, 0, sizeof(is));
	if (json_unpack_ex(o, &je, JSON_STRICT, "{s:s, s:s, s:s, s?s}", "pending_id",
	    &id, "secret", &sec, "bulk_token", &bulk, "hostname", &host) != 0 ||
	    ar_unhex(id, idb, sizeof(idb)) != 0 || ar_unhex(sec, secret, sizeof(secret)) != 0)
		return srv_refuse(c, STK_REFUSAL_BAD_REQUEST, "attest/activate "
		    "takes {\"pending_id\": hex, \"secret\": 64 hex digits, \"bulk_token\", "
		    "\"hostname\"}");
	if (ar_take(ar, AR_PENDING, idb, sizeof(idb), &pend) != 0) {
		ret = ar_refuse(ar, c, peer, thumb, STK_REFUSAL_ATTEST_NONCE, "no such pending registration (unknown, "
		    "already answered or expired): start again with attest/nonce");
		goto out;
	}
	if (strcmp(pend.thumb, thumb) != 0) {
		ret = ar_refuse(ar, c, peer, thumb, STK_REFUSAL_ATTEST_KEY,
		    "the pending registration belongs to another TLS client certificate");
		goto out;
	}
	if (CRYPTO_memcmp(secret, pend.secret, sizeof(secret)) != 0) {
		ret = ar_refuse(ar, c, peer, thumb, STK_REFUSAL_ATTEST_ACTIVATION, "the secret is not the credential's: "
		    "the TPM that answered is not the one of the evidence's EK");
		goto out;
	}
	memset(&reg, 0, sizeof(reg));
	reg.via = STK_VIA_CMG;
	reg.tls = 1; /* the handshake proved the key of this certificate */
	reg.tls_cert_der = cert_der;
	reg.tls_cert_len = cert_len;
	reg.bulk_token = bulk;
	reg.bulk_len = strlen(bulk);
	reg.peer = peer;
	reg.attestation = "tpm";
	reg.ek_sha256 = pend.ek_sha256;
	pthread_mutex_lock(ar->site_mu);
	r = stk_device_register(ar->site, &reg, stk_now(), &is, &reason, &err);
	pthread_mutex_unlock(ar->site_mu);
	if (r != 0) {
		/* Refused and audited by site/registration/registration.c. */
		srv_metrics_refused(SRV_M_CMG, reason);
		srv_log(ar->logs, SRV_LOG_AUTH, "ClientAuth", "Refused attested "
		    "registration from %s: %s (%s)", peer, stk_refusal_code(reason),
		    err.msg);
		/* An internal failure's detail stays in the server log. */
		ret = srv_refuse(c, reason, reason == STK_REFUSAL_INTERNAL ? NULL : err.msg);
		goto out;
	}
	srv_metrics_registered(SRV_M_CMG);
	srv_log(ar->logs, SRV_LOG_REG, "MP_RegistrationManager", "%s device %s "
	    "registered via cmg from %s (host %s) cert x5t#S256=%s bulk token %s, "
	    "TPM-attested EK sha256=%s", is.new_device ? "New" : "Known", is.dev.guid,
	    peer, host ? host : "-", is.dev.thumbprint, is.dev.bulk_guid, pend.ek_sha256);
	srv_log(ar->logs, SRV_LOG_STS, "CCM_STS", "Issued client authentication token "
	    "jti=%s sub=%s cnf.x5t#S256=%s exp=%lld (attested registration) for %s",
	    is.dev.last_jti, is.dev.guid, is.dev.thumbprint, (long long)is.dev.token_exp,
	    peer);
	ret = srv_reply_json(c, MHD_HTTP_OK, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:b,"
	    " s:s}", "device_guid", is.dev.guid, "client_token", is.token, "jti",
	    is.dev.last_jti, "issued_at", (json_int_t)is.dev.last_issued_at,
	    "expires_at", (json_int_t)is.dev.token_exp, "via", is.dev.via,
	    "new_device", is.new_device, "attestation", "tpm"));
out:
	stk_issued_clear(&is);
	OPENSSL_cleanse(&pend, sizeof(pend));
	OPENSSL_cleanse(secret, sizeof(secret));
	return ret;
}

enum MHD_Result
srv_attreg_route(struct srv_attreg *ar, struct MHD_Connection *c, const char *op,
    const char *method, const char *body, size_t len, const unsigned char *cert_der,
    size_t cert_len, const char *peer)
{
	char thumb[44];
	json_error_t je;
	json_t *o = NULL;
	enum MHD_Result ret;

	if (strcmp(op, "nonce") != 0 && strcmp(op, "register") != 0 &&
	    strcmp(op, "activate") != 0)
		return srv_refuse(c, STK_REFUSAL_NOT_FOUND, "unknown path");
	if (strcmp(method, "POST") != 0)
		return srv_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED,
		    "use POST");
	if (cert_der == NULL || cert_len == 0)
		return srv_refuse(c, STK_REFUSAL_NO_CLIENT_CERT,
		    "attested registration needs the device's TLS client certificate");
	if (cert_len > STK_DEVICE_CERT_MAX)
		return srv_refuse(c, STK_REFUSAL_BAD_CERTIFICATE,
		    "device certificate too large");
	stk_cert_x5t_s256(cert_der, cert_len, thumb);
	if (strcmp(op, "nonce") == 0)
		return ar_nonce(ar, c, thumb);
	o = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : NULL;
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return srv_refuse(c, STK_REFUSAL_BAD_REQUEST,
		    "body is not a strict JSON object");
	}
	if (strcmp(op, "register") == 0)
		ret = ar_register(ar, c, peer, thumb, cert_der, cert_len, o);
	else
		ret = ar_activate(ar, c, peer, thumb, cert_der, cert_len, o);
	/* The body held the bulk token text. */
	{
		json_t *b = json_object_get(o, "bulk_token");
		const char *t = json_string_value(b);

		if (t != NULL)
			OPENSSL_cleanse((char *)(uintptr_t)t, strlen(t));
	}
	json_decref(o);
	return ret;
}
