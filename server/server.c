/* MP and CMG listeners on libmicrohttpd (thread pool, GnuTLS).
 *
 * Mutual TLS on the CMG: giving MHD a trust list (MHD_OPTION_HTTPS_MEM_TRUST)
 * makes GnuTLS request a client certificate; the handshake proves the client
 * holds its key, and we read the certificate's DER from the session to
 * compare its SHA-256 thumbprint with the token's cnf (site/registration/gateway.c). The
 * trust list itself is not used to accept device certificates: they are
 * self-signed, and the binding to the token is what authenticates them. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include "sitetoken/attest_policy.h"
#include "sitetoken/cert.h"
#include "sitetoken/bulklimits.h"
#include "sitetoken/device.h"
#include "sitetoken/token.h"
#include "http.h"
#include "housekeeping.h"
#include "server.h"
#include "server_int.h"
#include "admin.h"
#include "attest_reg.h"
#include "metrics.h"
#include "wellknown.h"

#define SRV_CMG_PREFIX "/CCM_Proxy_MutualAuth/"

enum srv_kind { SRV_MP = 0, SRV_CMG };

struct srv_listener {
	struct srv *srv;
	enum srv_kind kind;
	int tls;
	struct MHD_Daemon *d;
	unsigned int port;
	struct srv_http http;      /* the MHD access handler's cls */
};

/* Thread contract: `site` is the signing handle; everything that signs or
 * writes through it (registration, renewal, the admin console) holds
 * site_mu. Gateway authentication (GET policy) takes no server lock: each
 * worker thread opens its own verify-only handle (own store connection,
 * own verifier) on first use; they are listed in `workers` and closed by
 * srv_stop after the listeners' threads are joined. */
struct srv_worker {
	struct stk_site *site;
	struct srv_worker *next;
};

struct srv {
	struct stk_site *site;
	pthread_mutex_t site_mu;   /* one site handle = one DB connection */
	pthread_key_t worker_key;  /* this thread's struct srv_worker */
	int have_worker_key;
	pthread_mutex_t workers_mu; /* guards the list only, never a request */
	struct srv_worker *workers;
	struct srv_logs *logs;
	struct srv_listener mp, cmg;
	struct srv_admin *admin;   /* admin console, or NULL */
	struct srv_metrics *metrics; /* metrics listener, or NULL */
	struct srv_wellknown wk;   /* keys for relying parties */
	struct srv_hk *hk;         /* key retirement (housekeeping.c) */
	struct srv_attreg *attreg; /* attested registration (attest_reg.c) */
	/* Group commit of registrations (srv_register_site): one thread at a
	 * time (the leader) commits the queued ones in one transaction. */
	pthread_mutex_t reg_mu;
	pthread_cond_t reg_cv;
	struct srv_regjob *reg_head;
	int reg_leader;
	const struct stk_signer *reg_signer; /* the site's signer after the last
	                                        commit (reg_mu): signing ahead */
	char site_number[64];
	int have_trusted_ca;
	char *cert_pem, *key_pem, *ca_pem;
	struct stk_challenges *challenges; /* HTTP MP proof of possession */
};

/* The TLS client certificate (leaf DER, pointing into the session), or NULL. */
static const gnutls_datum_t *
srv_peer_cert(struct MHD_Connection *c, gnutls_session_t *sess_out)
{
	const union MHD_ConnectionInfo *ci;
	const gnutls_datum_t *certs;
	gnutls_session_t sess;
	unsigned int n = 0;

	if (sess_out != NULL)
		*sess_out = NULL;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci == NULL || ci->tls_session == NULL)
		return NULL;
	sess = (gnutls_session_t)ci->tls_session;
	if (sess_out != NULL)
		*sess_out = sess;
	if (gnutls_certificate_type_get(sess) != GNUTLS_CRT_X509)
		return NULL;
	certs = gnutls_certificate_get_peers(sess, &n);
	return n > 0 ? &certs[0] : NULL;
}

const char *
srv_parse_bearer(const char *h)
{
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return *h ? h : NULL;
}

/* "Bearer <token>" from the Authorization header; NULL if absent. */
static const char *
srv_bearer(struct MHD_Connection *c)
{
	return srv_parse_bearer(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_AUTHORIZATION));
}

/* Strict JSON object of the body: duplicates refused, then json_unpack_ex
 * with JSON_STRICT refuses unknown members. */
int
srv_parse_register_body(const char *body, size_t len, struct srv_register_body *out,
    char *why, size_t whylen)
{
	json_error_t je;
	json_t *o = NULL;
	const unsigned char *h;
	int r = -1;

	memset(out, 0, sizeof(*out));
	if (len == 0) {
		snprintf(why, whylen, "empty body: a JSON object is required");
		goto out;
	}
	o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o)) {
		snprintf(why, whylen, "body is not a strict JSON object%s%s",
		    o == NULL ? ": " : "", o == NULL ? je.text : "");
		goto out;
	}
	out->o = o;
	o = NULL;
	if (json_unpack_ex(out->o, &je, JSON_STRICT, "{s?s, s?s, s?s, s?s, s?s, s?s}",
	    "certificate", &out->certificate, "bulk_token", &out->bulk_token,
	    "id_token", &out->id_token, "hostname", &out->hostname, "nonce",
	    &out->nonce, "proof", &out->proof) != 0) {
		snprintf(why, whylen, "request JSON: %s", je.text);
		goto out;
	}
	/* The hostname only goes to the registration log: keep it one short,
	 * printable field. */
	for (h = (const unsigned char *)out->hostname; h != NULL && *h; h++)
		if (*h < 0x20 || *h == 0x7f || h - (const unsigned char *)out->hostname >=
		    SRV_HOSTNAME_MAX) {
			snprintf(why, whylen, "'hostname' must be at most %d printable "
			    "characters", SRV_HOSTNAME_MAX);
			goto out;
		}
	r = 0;
out:
	json_decref(o);
	if (r != 0)
		srv_register_body_clear(out);
	return r;
}

void
srv_register_body_clear(struct srv_register_body *b)
{
	if (b == NULL)
		return;
	/* The bulk token text lives in the JSON object: wipe it first. */
	if (b->bulk_token != NULL)
		OPENSSL_cleanse((char *)(uintptr_t)b->bulk_token, strlen(b->bulk_token));
	if (b->id_token != NULL)
		OPENSSL_cleanse((char *)(uintptr_t)b->id_token, strlen(b->id_token));
	json_decref(b->o);
	memset(b, 0, sizeof(*b));
}

static json_t *
srv_issued_json(const struct stk_issued *is)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:b}",
	    "device_guid", is->dev.guid, "client_token", is->token,
	    "jti", is->dev.last_jti, "issued_at", (json_int_t)is->dev.last_issued_at,
	    "expires_at", (json_int_t)is->dev.token_exp, "via", is->dev.via,
	    "new_device", is->new_device);
}

static void
srv_log_issued(struct srv *s, const struct stk_issued *is, const char *what,
    const char *peer)
{
	srv_log(s->logs, SRV_LOG_STS, "CCM_STS", "Issued client authentication token "
	    "jti=%s sub=%s cnf.x5t#S256=%s exp=%lld (%s) for %s", is->dev.last_jti,
	    is->dev.guid, is->dev.thumbprint, (long long)is->dev.token_exp, what, peer);
}

static struct stk_site *srv_worker_site(struct srv *s);

#define SRV_REG_BATCH_MAX 8 /* well under the audit's unsigned-gap limit */

/* A checked registration waiting for its transaction. */
struct srv_regjob {
	const struct stk_reg_request *reg;
	struct stk_reg_checked *chk;
	int64_t now;
	struct stk_issued *is;
	enum stk_refusal *reason;
	struct stk_error *err;
	int r, done;
	struct srv_regjob *next;
};

/* Commit the jobs of list j under site_mu: one alone as before; several
 * as savepoints of one transaction (stk_site_batch_*), one flush to disk
 * for all. Nobody is answered before the batch's commit returned. */
static void
srv_regjobs_commit(struct srv *s, struct srv_regjob *j)
{
	const struct stk_signer *sg;
	struct srv_regjob *x;
	struct stk_error e;
	int batch;

	stk_error_clear(&e);
	pthread_mutex_lock(&s->site_mu);
	batch = j->next != NULL && stk_site_batch_begin(s->site, &e) == 0;
	for (x = j; x != NULL; x = x->next)
		x->r = stk_device_register_commit(s->site, x->reg, x->chk, x->now, x->is,
		    x->reason, x->err);
	if (batch && stk_site_batch_end(s->site, &e) != 0)
		for (x = j; x != NULL; x = x->next) {
			if (x->r != 0 && *x->reason != STK_REFUSAL_INTERNAL)
				continue; /* its refusal stands (its record is lost) */
			stk_issued_clear(x->is);
			*x->err = e;
			*x->reason = STK_REFUSAL_INTERNAL;
			x->r = e.code != 0 ? e.code : STK_E_DB;
		}
	/* The signer the next registrations sign with ahead, outside the lock
	 * (a replaced one stays valid until the handle closes: parked). */
	if (stk_site_signer(s->site, &sg, &e) != 0)
		sg = NULL;
	pthread_mutex_unlock(&s->site_mu);
	pthread_mutex_lock(&s->reg_mu);
	s->reg_signer = sg;
	pthread_mutex_unlock(&s->reg_mu);
}

/* Queue job and wait until a leader (this thread, if none is at work)
 * committed it. */
static void
srv_regjob_run(struct srv *s, struct srv_regjob *job)
{
	struct srv_regjob *take, **pp, *x;
	int n;

	pthread_mutex_lock(&s->reg_mu);
	for (pp = &s->reg_head; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = job;
	while (!job->done) {
		if (s->reg_leader) {
			pthread_cond_wait(&s->reg_cv, &s->reg_mu);
			continue;
		}
		s->reg_leader = 1;
		take = s->reg_head;
		for (n = 1, x = take; x->next != NULL && n < SRV_REG_BATCH_MAX; n++)
			x = x->next;
		s->reg_head = x->next;
		x->next = NULL;
		pthread_mutex_unlock(&s->reg_mu);
		srv_regjobs_commit(s, take);
		pthread_mutex_lock(&s->reg_mu);
		for (x = take; x != NULL; x = x->next)
			x->done = 1;
		s->reg_leader = 0;
		pthread_cond_broadcast(&s->reg_cv);
	}
	pthread_mutex_unlock(&s->reg_mu);
}

/* The registration through the site: the checks (certificate, bulk token
 * signature and record, settings) on this worker thread's own handle
 * without site_mu; a refusal of those is counted for the audit log without
 * the lock too (site/audit.c aggregates per source), only the first ones
 * of an interval are written under it. site_mu covers the transaction on
 * the signing handle (use limits, token, history, audit), shared by the
 * registrations that queued meanwhile (group commit, srv_regjob_run); the
 * client token is signed before it, outside the lock. */
static int
srv_register_site(struct srv *s, const struct stk_reg_request *reg,
    struct stk_issued *is, enum stk_refusal *reason, struct stk_error *err)
{
	struct stk_site *ws = srv_worker_site(s);
	struct stk_reg_checked chk;
	int64_t now = stk_now();
	int r;

	memset(&chk, 0, sizeof(chk));
	if (ws == NULL) { /* no handle of its own: all of it under the lock */
		pthread_mutex_lock(&s->site_mu);
		r = stk_device_register(s->site, reg, now, is, reason, err);
		pthread_mutex_unlock(&s->site_mu);
	} else if ((r = stk_device_register_check(ws, reg, now, &chk, reason, err)) != 0) {
		memset(is, 0, sizeof(*is));
		if (!stk_device_register_refusal_counted(s->site, reg, *reason)) {
			pthread_mutex_lock(&s->site_mu);
			stk_device_register_refused(s->site, reg, &chk, *reason, err);
			pthread_mutex_unlock(&s->site_mu);
		}
	} else {
		struct srv_regjob job = { reg, &chk, now, is, reason, err, 0, 0, NULL };
		const struct stk_signer *sg;
		struct stk_error e;

		/* Sign ahead without the lock; the commit signs again if the
		 * device's GUID or the site's key changed meanwhile. */
		pthread_mutex_lock(&s->reg_mu);
		sg = s->reg_signer;
		pthread_mutex_unlock(&s->reg_mu);
		stk_error_clear(&e);
		if (sg != NULL && stk_device_register_presign(ws, sg, reg, now, &chk, &e) != 0)
			srv_log(s->logs, SRV_LOG_REG, "MP_RegistrationManager", "signing ahead "
			    "failed (the commit signs): %s", e.msg);
		srv_regjob_run(s, &job);
		r = job.r;
	}
	stk_reg_checked_clear(&chk);
	return r;
}

/* POST register, on either listener. */
static enum MHD_Result
srv_register(struct srv_listener *ls, struct MHD_Connection *c,
    const struct srv_req *rq, const char *peer)
{
	struct srv *s = ls->srv;
	struct stk_reg_request reg;
	struct stk_issued is;
	struct stk_error err;
	const gnutls_datum_t *pc = NULL;
	gnutls_session_t sess = NULL;
	unsigned char *der = NULL;
	struct srv_register_body b;
	const char *pem, *bulk, *host;
	enum stk_refusal reason = STK_REFUSAL_INTERNAL;
	size_t derlen = 0;
	char why[200];
	enum MHD_Result ret;
	int r;

	memset(&reg, 0, sizeof(reg));
	memset(&is, 0, sizeof(is));
	stk_error_clear(&err);
	if (srv_parse_register_body(rq->body, rq->len, &b, why, sizeof(why)) != 0)
		return srv_refuse(c, STK_REFUSAL_BAD_REQUEST, why);
	pem = b.certificate;
	bulk = b.bulk_token;
	host = b.hostname;
	reg.via = ls->kind == SRV_CMG ? STK_VIA_CMG : STK_VIA_MP;
	reg.tls = ls->tls;
	reg.peer = peer;
	if (ls->tls && (pc = srv_peer_cert(c, &sess)) != NULL) {
		/* The certificate is the one the handshake proved. */
		reg.tls_cert_der = pc->data;
		reg.tls_cert_len = pc->size;
	}
	if (pem != NULL) {
		if (stk_cert_pem_to_der(pem, strlen(pem), &der, &derlen) != 0) {
			srv_register_body_clear(&b);
			return srv_refuse(c, STK_REFUSAL_BAD_CERTIFICATE,
			    "'certificate' must hold the device certificate in PEM");
		}
		reg.cert_der = der;
		reg.cert_len = derlen;
	} else if (!ls->tls) {
		srv_register_body_clear(&b);
		return srv_refuse(c, STK_REFUSAL_BAD_CERTIFICATE,
		    "'certificate' must hold the device certificate in PEM");
	}
	reg.challenges = s->challenges;
	reg.nonce = b.nonce;
	reg.proof = b.proof;
	if (ls->kind == SRV_MP) {
		reg.require_credential = ls->tls;
		if (ls->tls && pc != NULL && s->have_trusted_ca && sess != NULL) {
			unsigned int vs = 1;

			reg.trusted_credential = gnutls_certificate_verify_peers2(sess, &vs) == 0 &&
			    vs == 0;
		}
	}
	if (bulk != NULL) {
		reg.bulk_token = bulk;
		reg.bulk_len = strlen(bulk);
	}
	if (b.id_token != NULL) {
		reg.id_token = b.id_token;
		reg.id_token_len = strlen(b.id_token);
	}
	r = srv_register_site(s, &reg, &is, &reason, &err);
	free(der);
	if (r == 0) {
		srv_metrics_registered(ls->kind == SRV_CMG ? SRV_M_CMG : SRV_M_MP);
		srv_log(s->logs, SRV_LOG_REG, "MP_RegistrationManager", "%s device %s "
		    "registered via %s from %s (host %s) cert x5t#S256=%s%s%s%s",
		    is.new_device ? "New" : "Known", is.dev.guid, is.dev.via, peer,
		    host ? host : "-", is.dev.thumbprint, is.dev.bulk_guid[0] ?
		    " bulk token " : "", is.dev.bulk_guid, b.id_token ? " with an ID token"
		    " (identity in the audit log)" : "");
		if (ls->kind == SRV_CMG)
			srv_log(s->logs, SRV_LOG_AUTH, "ClientAuth", "Accepted registration from "
			    "%s: %s%s valid, device %s certificate x5t#S256=%s", peer,
			    b.id_token ? "ID token" : "bulk token ", b.id_token ? "" :
			    is.dev.bulk_guid, is.dev.guid, is.dev.thumbprint);
		srv_log_issued(s, &is, "registration", peer);
		ret = srv_reply_json(c, MHD_HTTP_OK, srv_issued_json(&is));
		stk_issued_clear(&is);
		srv_register_body_clear(&b); /* holds the bulk token text */
		return ret;
	}
	srv_register_body_clear(&b);
	srv_metrics_refused(ls->kind == SRV_CMG ? SRV_M_CMG : SRV_M_MP, reason);
	srv_log(s->logs, SRV_LOG_REG, "MP_RegistrationManager", "Refused registration "
	    "via %s from %s: %s (%s)", ls->kind == SRV_CMG ? "cmg" : "mp", peer,
	    stk_refusal_code(reason), err.msg);
	if (ls->kind == SRV_CMG)
		srv_log(s->logs, SRV_LOG_AUTH, "ClientAuth", "Refused registration from "
		    "%s: %s (%s)", peer, stk_refusal_code(reason), err.msg);
	/* An internal failure's detail stays in the server log. */
	return srv_refuse(c, reason, reason == STK_REFUSAL_INTERNAL ? NULL : err.msg);
}

/* POST challenge (HTTP MP): a nonce for the proof of possession. Costs no
 * store access (site/registration/challenge.c). */
static enum MHD_Result
srv_challenge(struct srv *s, struct MHD_Connection *c)
{
	char nonce[STK_CHALLENGE_LEN + 1];
	struct stk_error err;
	int64_t exp;

	stk_error_clear(&err);
	if (stk_challenge_issue(s->challenges, stk_now(), nonce, &exp, &err) != 0) {
		srv_log(s->logs, SRV_LOG_REG, "MP_RegistrationManager", "Cannot issue a "
		    "challenge: %s", err.msg);
		return srv_refuse(c, STK_REFUSAL_INTERNAL, NULL);
	}
	return srv_reply_json(c, MHD_HTTP_OK, json_pack("{s:s, s:I, s:s}", "nonce", nonce,
	    "expires_at", (json_int_t)exp, "sign", STK_POP_REGISTER "\n<nonce>\n"
	    "<x5t#S256 of the certificate>"));
}

/* POST rekey (CMG): move the token to a new certificate. */
static enum MHD_Result
srv_rekey(struct srv_listener *ls, struct MHD_Connection *c,
    const struct srv_req *rq, const char *peer)
{
	struct srv *s = ls->srv;
	struct srv_register_body b;
	struct stk_error err;
	struct stk_issued is;
	const gnutls_datum_t *pc = srv_peer_cert(c, NULL);
	const char *tok = srv_bearer(c);
	enum stk_refusal reason = STK_REFUSAL_INTERNAL;
	unsigned char *der = NULL;
	size_t derlen = 0;
	char why[200];
	enum MHD_Result ret;
	int r;

	stk_error_clear(&err);
	memset(&is, 0, sizeof(is));
	if (srv_parse_register_body(rq->body, rq->len, &b, why, sizeof(why)) != 0)
		return srv_refuse(c, STK_REFUSAL_BAD_REQUEST, why);
	if (b.certificate == NULL || stk_cert_pem_to_der(b.certificate,
	    strlen(b.certificate), &der, &derlen) != 0) {
		srv_register_body_clear(&b);
		return srv_refuse(c, STK_REFUSAL_BAD_CERTIFICATE,
		    "'certificate' must hold the new device certificate in PEM");
	}
	pthread_mutex_lock(&s->site_mu);
	r = stk_device_rekey(s->site, tok, tok ? strlen(tok) : 0, pc ? pc->data : NULL,
	    pc ? pc->size : 0, der, derlen, b.proof, stk_now(), &is, &reason, &err);
	pthread_mutex_unlock(&s->site_mu);
	free(der);
	srv_register_body_clear(&b);
	if (r != 0) {
		srv_log(s->logs, SRV_LOG_AUTH, "ClientAuth", "Refused rekey from %s: %s (%s)",
		    peer, stk_refusal_code(reason), err.msg);
		return srv_refuse(c, reason, reason == STK_REFUSAL_INTERNAL ? NULL : err.msg);
	}
	srv_log(s->logs, SRV_LOG_AUTH, "ClientAuth", "Accepted rekey from %s: device %s "
	    "moves to certificate x5t#S256=%s", peer, is.dev.guid, is.dev.thumbprint);
	srv_log_issued(s, &is, "re-key", peer);
	ret = srv_reply_json(c, MHD_HTTP_OK, srv_issued_json(&is));
	stk_issued_clear(&is);
	return ret;
}

/* A browser can be made to POST to the MP by any page it opens (CSRF):
 * such a request carries Origin, and a form cannot send application/json
 * without a CORS preflight that we never answer. Devices send neither. */
static enum stk_refusal
srv_post_checks(struct MHD_Connection *c, size_t body_len)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_CONTENT_TYPE);
	size_t n = strlen("application/json");

	if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin") != NULL ||
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site") != NULL)
		return STK_REFUSAL_CROSS_ORIGIN;
	if (ct == NULL && body_len == 0) /* renew's empty body */
		return STK_REFUSAL_NONE;
	if (ct == NULL || strncasecmp(ct, "application/json", n) != 0 ||
	    (ct[n] != '\0' && ct[n] != ';' && ct[n] != ' '))
		return STK_REFUSAL_UNSUPPORTED_MEDIA;
	return STK_REFUSAL_NONE;
}

/* This worker thread's verify-only site handle, opened on first use; NULL
 * when it cannot be opened (the caller falls back to the shared handle). */
static struct stk_site *
srv_worker_site(struct srv *s)
{
	struct srv_worker *w;
	struct stk_error err;

	if (!s->have_worker_key)
		return NULL;
	if ((w = pthread_getspecific(s->worker_key)) != NULL)
		return w->site;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	stk_error_clear(&err);
	if (stk_site_open(stk_site_dir(s->site), &w->site, &err) != 0) {
		srv_log(s->logs, SRV_LOG_AUTH, "ClientAuth", "worker site handle: %s "
		    "(this thread uses the shared handle)", err.msg);
		free(w);
		return NULL;
	}
	stk_site_forbid_signing(w->site);
	pthread_mutex_lock(&s->workers_mu);
	w->next = s->workers;
	s->workers = w;
	pthread_mutex_unlock(&s->workers_mu);
	pthread_setspecific(s->worker_key, w);
	return w->site;
}

/* Gateway requests that need the client token: renew and policy. */
static enum MHD_Result
srv_cmg_authed(struct srv_listener *ls, struct MHD_Connection *c,
    const char *op, const char *peer)
{
	struct srv *s = ls->srv;
	struct stk_error err;
	struct stk_issued is;
	struct stk_device dev;
	const gnutls_datum_t *pc = srv_peer_cert(c, NULL);
	const char *tok = srv_bearer(c);
	enum stk_refusal reason = STK_REFUSAL_INTERNAL;
	int renew = strcmp(op, "renew") == 0, r, n;
	enum MHD_Result ret;
	char body[512];
	int64_t now = stk_now();

	struct stk_site *ws = renew ? NULL : srv_worker_site(s);

	stk_error_clear(&err);
	memset(&is, 0, sizeof(is));
	if (ws == NULL)
		pthread_mutex_lock(&s->site_mu);
	if (renew)
		r = stk_device_renew(s->site, tok, tok ? strlen(tok) : 0,
		    pc ? pc->data : NULL, pc ? pc->size : 0, now, &is, &reason, &err);
	else /* certificate and token hashed once per connection (http.c) */
		r = stk_device_authenticate_conn(ws ? ws : s->site, srv_conn_gw(c), tok,
		    tok ? strlen(tok) : 0, pc ? pc->data : NULL, pc ? pc->size : 0, now,
		    &dev, &reason, &err);
	if (ws == NULL)
		pthread_mutex_unlock(&s->site_mu);
	if (r != 0) {
		srv_metrics_refused(SRV_M_CMG, reason);
		srv_log(s->logs, SRV_LOG_AUTH, "ClientAuth", "Refused %s from %s: %s (%s)",
		    op, peer, stk_refusal_code(reason), err.msg);
		return srv_refuse(c, reason, reason == STK_REFUSAL_INTERNAL ? NULL : err.msg);
	}
	if (renew) {
		srv_metrics_renewed(SRV_M_CMG);
		srv_log(s->logs, SRV_LOG_AUTH, "ClientAuth", "Accepted renew from %s: "
		    "device %s, certificate bound", peer, is.dev.guid);
		srv_log_issued(s, &is, "renewal", peer);
		ret = srv_reply_json(c, MHD_HTTP_OK, srv_issued_json(&is));
		stk_issued_clear(&is);
		return ret;
	}
	{
		/* Every request logs these two lines: no printf. */
		const char *const acc[] = { "Accepted ", op, " from ", peer, ": device ",
		    dev.guid, " jti ", dev.last_jti, ", certificate bound" };
		const char *const val[] = { "Validated client token jti=", dev.last_jti,
		    " sub=", dev.guid };

		srv_log_parts(s->logs, SRV_LOG_AUTH, "ClientAuth", acc,
		    sizeof(acc) / sizeof(acc[0]));
		srv_log_parts(s->logs, SRV_LOG_STS, "CCM_STS", val,
		    sizeof(val) / sizeof(val[0]));
	}
	/* Formatted here, not through jansson: every value is a GUID or an
	 * integer. allow_cmg is in effect (it is on, or we refused). */
	n = snprintf(body, sizeof(body), "{\"device_guid\":\"%s\",\"site\":\"%s\","
	    "\"token_expires_at\":%lld,\"token_issued_at\":%lld,\"allow_cmg\":true,"
	    "\"server_time\":%lld,\"status\":\"ok\"}", dev.guid, stk_site_guid(s->site),
	    (long long)dev.token_exp, (long long)dev.last_issued_at, (long long)now);
	if (n < 0 || (size_t)n >= sizeof(body))
		return srv_refuse(c, STK_REFUSAL_INTERNAL, NULL);
	return srv_reply_text_json(c, body, (size_t)n);
}

static enum MHD_Result
srv_route(void *ctx, struct MHD_Connection *c, const char *url,
    const char *method, const struct srv_req *rq)
{
	struct srv_listener *ls = ctx;
	struct srv *s = ls->srv;
	const char *op = NULL;
	enum stk_refusal why;
	char peer[64];
	size_t n;
	int post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;

	srv_peer_addr(c, peer, sizeof(peer));
	if (rq->too_big)
		return srv_refuse(c, STK_REFUSAL_BODY_TOO_LARGE, "request body over 16 KiB");
	if (strncmp(url, SRV_WELLKNOWN, strlen(SRV_WELLKNOWN)) == 0)
		return srv_wellknown_route(&s->wk, c, url, method, ls->tls ? "https" : "http");
	if (ls->kind == SRV_CMG) {
		n = strlen(SRV_CMG_PREFIX);
		if (strncmp(url, SRV_CMG_PREFIX, n) != 0 ||
		    strncmp(url + n, s->site_number, strlen(s->site_number)) != 0)
			return srv_refuse(c, STK_REFUSAL_NOT_FOUND,
			    "unknown path (expected /CCM_Proxy_MutualAuth/<site number>/...)");
		url += n + strlen(s->site_number);
	}
	if (strncmp(url, STK_API_PREFIX, strlen(STK_API_PREFIX)) == 0)
		op = url + strlen(STK_API_PREFIX);
	if (op == NULL)
		return srv_refuse(c, STK_REFUSAL_NOT_FOUND, "unknown path");
	if (post && (why = srv_post_checks(c, rq->len)) != STK_REFUSAL_NONE)
		return srv_refuse(c, why, NULL);
	if (strcmp(op, "register") == 0) {
		if (!post)
			return srv_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use POST");
		return srv_register(ls, c, rq, peer);
	}
	if (ls->kind == SRV_MP && !ls->tls && strcmp(op, "challenge") == 0) {
		if (!post)
			return srv_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use POST");
		return srv_challenge(s, c);
	}
	if (ls->kind == SRV_CMG && strcmp(op, "rekey") == 0) {
		if (!post)
			return srv_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use POST");
		return srv_rekey(ls, c, rq, peer);
	}
	if (ls->kind == SRV_CMG && strncmp(op, "attest/", 7) == 0) {
		const gnutls_datum_t *pc = srv_peer_cert(c, NULL);

		return srv_attreg_route(s->attreg, c, op + 7, method, rq->body, rq->len,
		    pc ? pc->data : NULL, pc ? pc->size : 0, peer);
	}
	if (ls->kind == SRV_CMG && strcmp(op, "renew") == 0) {
		if (!post)
			return srv_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use POST");
		return srv_cmg_authed(ls, c, "renew", peer);
	}
	if (ls->kind == SRV_CMG && strcmp(op, "policy") == 0) {
		if (!get)
			return srv_refuse(c, STK_REFUSAL_METHOD_NOT_ALLOWED, "use GET");
		return srv_cmg_authed(ls, c, "policy", peer);
	}
	if (strcmp(op, "health") == 0 && get)
		return srv_reply_json(c, MHD_HTTP_OK, json_pack("{s:s, s:s}", "status",
		    "ok", "site", stk_site_guid(s->site)));
	return srv_refuse(c, STK_REFUSAL_NOT_FOUND, "unknown path");
}

/* srv_route, timed for the metrics. */
static enum MHD_Result
srv_route_timed(void *ctx, struct MHD_Connection *c, const char *url,
    const char *method, const struct srv_req *rq)
{
	const struct srv_listener *ls = ctx;
	uint64_t t0 = srv_metrics_clock();
	enum MHD_Result ret = srv_route(ctx, c, url, method, rq);

	srv_metrics_request(ls->kind == SRV_CMG ? SRV_M_CMG : SRV_M_MP,
	    srv_metrics_clock() - t0);
	return ret;
}

/* MHD's format strings: checked as printf formats (clang -Wformat-nonliteral). */
static void __attribute__((format(printf, 2, 0)))
srv_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct srv *s = cls;
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	srv_log(s->logs, SRV_LOG_AUTH, "ClientAuth", "listener: %s", msg);
}

static int
srv_listen(struct srv *s, struct srv_listener *ls, const char *addr,
    unsigned int threads, struct stk_error *err)
{
	struct sockaddr_in sin;
	struct srv_daemon_opts opts;
	const union MHD_DaemonInfo *di;
	int r;

	if ((r = srv_parse_listen(addr, ls->kind == SRV_MP ? "MP" : "CMG", &sin,
	    err)) != 0)
		return r;
	ls->srv = s;
	ls->http = (struct srv_http){ srv_route_timed, ls, SRV_BODY_MAX };
	/* A trust list makes GnuTLS ask for a client certificate: every TLS
	 * listener asks, because on TLS the registered certificate is the TLS
	 * client certificate (proof of possession). The configured CA when
	 * there is one, else the server's own certificate (self-signed device
	 * certificates still get through the handshake: the token binding or
	 * the registration authenticates them, not the trust list). */
	opts = (struct srv_daemon_opts){ srv_mhd_log, s, &sin, threads,
	    SRV_CONN_LIMIT, SRV_CONN_PER_IP, SRV_CONN_TIMEOUT,
	    ls->tls ? s->cert_pem : NULL, s->key_pem,
	    s->ca_pem ? s->ca_pem : ls->tls ? s->cert_pem : NULL };
	ls->d = srv_http_start(&ls->http, &opts);
	if (ls->d == NULL)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot listen on %s (%s): %s", addr, ls->kind == SRV_CMG ? "CMG" : "MP",
		    errno ? strerror(errno) : "TLS set-up failed");
	di = MHD_get_daemon_info(ls->d, MHD_DAEMON_INFO_BIND_PORT);
	ls->port = di != NULL ? di->port : ntohs(sin.sin_port);
	return STK_OK;
}

int
srv_start(struct stk_site *site, const struct srv_config *cfg, struct srv **out,
    struct stk_error *err)
{
	struct srv *s = NULL;
	unsigned int threads = cfg->threads ? cfg->threads : SRV_THREADS_DEFAULT;
	int r;

	*out = NULL;
	if (cfg->tls_cert_pem == NULL || cfg->tls_key_pem == NULL) {
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "the CMG needs a TLS certificate and key (--tls-cert, --tls-key)");
		goto out;
	}
	{
		/* A typo in --tls-priority is a start-up error that names the
		 * option, not a listener that fails with "TLS set-up failed". */
		gnutls_priority_t prio;
		const char *epos = NULL;
		const char *ps = cfg->tls_priority ? cfg->tls_priority :
		    SRV_TLS_PRIORITY_DEFAULT;

		if (gnutls_priority_init(&prio, ps, &epos) != GNUTLS_E_SUCCESS) {
			r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "--tls-priority: GnuTLS does not understand '%.60s'",
			    epos != NULL ? epos : ps);
			goto out;
		}
		gnutls_priority_deinit(prio);
		srv_http_set_tls_priority(ps);
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	pthread_mutex_init(&s->site_mu, NULL);
	pthread_mutex_init(&s->workers_mu, NULL);
	pthread_mutex_init(&s->reg_mu, NULL);
	pthread_cond_init(&s->reg_cv, NULL);
	s->have_worker_key = pthread_key_create(&s->worker_key, NULL) == 0;
	s->site = site;
	snprintf(s->site_number, sizeof(s->site_number), "%s",
	    cfg->site_number ? cfg->site_number : SRV_SITE_NUMBER_DEFAULT);
	if ((s->cert_pem = strdup(cfg->tls_cert_pem)) == NULL ||
	    (s->key_pem = strdup(cfg->tls_key_pem)) == NULL ||
	    (cfg->trusted_ca_pem != NULL && (s->ca_pem = strdup(cfg->trusted_ca_pem)) == NULL)) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	s->have_trusted_ca = s->ca_pem != NULL;
	if ((r = stk_challenges_new(&s->challenges, err)) != 0)
		goto out;
	if ((r = srv_logs_open(stk_site_dir(site), &s->logs, err)) != 0)
		goto out;
	srv_wellknown_init(&s->wk, site, &s->site_mu, s->logs);
	if ((s->attreg = srv_attreg_new(site, &s->site_mu, s->logs)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	/* Open the key before the first request: a TPM or HSM problem shows at
	 * start-up, not at the first registration. */
	{
		const struct stk_signer *sg;
		const struct stk_verifier *v;

		if ((r = stk_site_signer(site, &sg, err)) != 0 ||
		    (r = stk_site_verifier(site, &v, err)) != 0)
			goto out;
	}
	s->mp.kind = SRV_MP;
	s->mp.tls = cfg->mp_tls;
	s->cmg.kind = SRV_CMG;
	s->cmg.tls = 1;
	if ((r = srv_listen(s, &s->mp, cfg->mp_addr, threads, err)) != 0 ||
	    (r = srv_listen(s, &s->cmg, cfg->cmg_addr, threads, err)) != 0)
		goto out;
	if (cfg->admin_addr != NULL && (r = srv_admin_start(site, &s->site_mu, s->logs,
	    cfg->admin_addr, cfg->admin_remote, s->cert_pem, s->key_pem, &s->admin,
	    err)) != 0)
		goto out;
	if (cfg->metrics_addr != NULL && (r = srv_metrics_start(site, &s->site_mu,
	    s->logs, cfg->metrics_addr, cfg->metrics_remote, &s->metrics, err)) != 0)
		goto out;
	if ((r = srv_housekeeping_start(site, &s->site_mu, s->logs, 0, &s->hk, err)) != 0)
		goto out;
	srv_log(s->logs, SRV_LOG_STS, "CCM_STS", "Site %s: token service started, "
	    "signing with the %s key backend", stk_site_guid(site), stk_site_backend(site));
	srv_log(s->logs, SRV_LOG_REG, "MP_RegistrationManager", "Management point "
	    "listening on %s port %u", cfg->mp_tls ? "https" : "http", s->mp.port);
	srv_log(s->logs, SRV_LOG_AUTH, "ClientAuth", "Cloud gateway listening on https "
	    "port %u under %s%s/ (mutual TLS)", s->cmg.port, SRV_CMG_PREFIX, s->site_number);
	*out = s;
	r = STK_OK;
out:
	if (r != 0)
		srv_stop(s);
	return r;
}

unsigned int srv_mp_port(const struct srv *s) { return s->mp.port; }
unsigned int srv_cmg_port(const struct srv *s) { return s->cmg.port; }
unsigned int srv_admin_port(const struct srv *s) { return srv_admin_listener_port(s->admin); }
unsigned int srv_metrics_port(const struct srv *s) { return srv_metrics_listener_port(s->metrics); }

void
srv_stop(struct srv *s)
{
	if (s == NULL)
		return;
	srv_housekeeping_stop(s->hk);
	/* MHD_stop_daemon joins the pool threads after requests in flight. */
	srv_admin_stop(s->admin);
	srv_metrics_stop(s->metrics);
	if (s->mp.d != NULL)
		MHD_stop_daemon(s->mp.d);
	if (s->cmg.d != NULL)
		MHD_stop_daemon(s->cmg.d);
	if (s->logs != NULL)
		srv_log(s->logs, SRV_LOG_STS, "CCM_STS", "Token service stopped");
	srv_wellknown_clear(&s->wk);
	srv_attreg_free(s->attreg);
	/* The pool threads are joined: no worker handle is in use. */
	while (s->workers != NULL) {
		struct srv_worker *w = s->workers;

		s->workers = w->next;
		stk_site_close(w->site);
		free(w);
	}
	if (s->have_worker_key)
		pthread_key_delete(s->worker_key);
	pthread_mutex_destroy(&s->workers_mu);
	pthread_mutex_destroy(&s->reg_mu);
	pthread_cond_destroy(&s->reg_cv);
	srv_logs_close(s->logs);
	pthread_mutex_destroy(&s->site_mu);
	free(s->cert_pem);
	if (s->key_pem != NULL) {
		OPENSSL_cleanse(s->key_pem, strlen(s->key_pem));
		free(s->key_pem);
	}
	free(s->ca_pem);
	stk_challenges_free(s->challenges);
	free(s);
}
