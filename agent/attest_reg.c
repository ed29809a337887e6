/* Attested registration through the cloud gateway, the device's side
 * (docs/api.md "Attested registration"): ask the gateway for a nonce, send
 * evidence over it for the TPM-held device key (attest_dev.c's evidence),
 * answer the credential with TPM2_ActivateCredential, receive the client
 * token. Used by agent_register when the device key is in a TPM that has an
 * EK certificate; any other key registers as before (and a site that
 * requires attestation refuses it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "sitetoken/attest.h"
#include "sitetoken/device.h"
#include "sitetoken/key.h"
#include "sitetoken/token.h"
#include "agent.h"

/* POST a JSON object to attest/<op>; the object is freed (and the dump
 * wiped: it may hold the bulk token). */
static int
ar_post(struct agent *a, const char *op, json_t *o, long *status, char **resp,
    struct stk_error *err)
{
	char url[1100], *body;
	int r;

	*resp = NULL;
	snprintf(url, sizeof(url), "%s%s%s", a->st.cmg, STK_API_PREFIX "attest/", op);
	body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (body == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	r = agent_http(a, "POST", url, body, NULL, 1, status, resp, err);
	OPENSSL_cleanse(body, strlen(body));
	free(body);
	return r;
}

/* A refusal of the attested exchange that a plain registration may still
 * get past (the site decides with its policy: attestation_required when it
 * insists): the gateway has no attested registration (404), or refused the
 * evidence, nonce or activation (403 attestation_*, audited there). */
static int
ar_fallback(struct agent *a, long status, const char *resp)
{
	json_t *o;
	const char *code;
	int fb = 0;

	if (status == 404)
		fb = 1;
	else if (status == 403) {
		o = json_loads(resp ? resp : "", JSON_REJECT_DUPLICATES, NULL);
		code = json_string_value(json_object_get(o, "error"));
		fb = code != NULL && strncmp(code, "attestation_", 12) == 0;
		if (fb)
			agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup",
			    "Attested registration refused (%s): registering without "
			    "attestation", code);
		json_decref(o);
	}
	return fb;
}

int
agent_attest_register(struct agent *a, const char *bulk, const char *host,
    long *status, char **resp, struct stk_error *err)
{
	struct stk_attest_evidence *ev = NULL;
	struct stk_key *key = NULL;
	unsigned char nonce[STK_ATTEST_NONCE_MAX], secret[STK_ATTEST_SECRET_MAX];
	unsigned char *cred = NULL;
	char *evtxt = NULL, pid[64], sechex[2 * STK_ATTEST_SECRET_MAX + 1];
	size_t nlen = 0, clen = 0, slen = 0, i;
	json_t *o = NULL, *evj;
	int r;

	*status = 0;
	*resp = NULL;
	if ((r = agent_devkey_mode(a, err)) < 0)
		return r;
	if (r == 0)
		return 1; /* file key: nothing to attest */
	if ((r = agent_devkey_key(a, &key, err)) != 0)
		return r;
	if (!stk_key_attestation_available(key))
		return 1; /* PKCS#11: no standard key attestation */
	agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup", "Attested "
	    "registration: asking %s for a nonce", a->st.cmg);
	if ((r = ar_post(a, "nonce", json_object(), status, resp, err)) != 0)
		return r;
	if (*status != 200) {
		r = ar_fallback(a, *status, *resp) ? 1 : 0; /* else the caller reports it */
		goto out;
	}
	o = json_loads(*resp, JSON_REJECT_DUPLICATES, NULL);
	if (stk_attest_nonce_parse(json_string_value(json_object_get(o, "nonce")),
	    nonce, &nlen, err) != 0) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_NONE, 0,
		    "unexpected nonce response from the gateway");
		goto out;
	}
	json_decref(o);
	o = NULL;
	agent_free_secret(*resp);
	*resp = NULL;
	/* A TPM without an EK certificate cannot be attested: register as
	 * before (the site decides whether that is enough). */
	if (stk_tpm_attest(key, nonce, nlen, &ev, err) != 0) {
		agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup", "No key "
		    "attestation from this TPM (%s): registering without it",
		    err ? err->msg : "");
		stk_error_clear(err);
		r = 1;
		goto out;
	}
	if ((r = stk_attest_evidence_json(ev, &evtxt, err)) != 0)
		goto out;
	if ((evj = json_loads(evtxt, JSON_REJECT_DUPLICATES, NULL)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	if ((r = ar_post(a, "register", json_pack("{s:s, s:o, s:s}", "bulk_token", bulk,
	    "evidence", evj, "hostname", host), status, resp, err)) != 0)
		goto out;
	if (*status != 200) {
		r = ar_fallback(a, *status, *resp) ? 1 : 0;
		goto out;
	}
	o = json_loads(*resp, JSON_REJECT_DUPLICATES, NULL);
	{
		const char *id = json_string_value(json_object_get(o, "pending_id"));
		const char *cb = json_string_value(json_object_get(o, "credential"));

		if (id == NULL || cb == NULL || strlen(id) >= sizeof(pid) ||
		    stk_b64url_decode(cb, strlen(cb), &cred, &clen) != 0) {
			r = stk_error_set(err, STK_E_IO, STK_LAYER_NONE, 0,
			    "unexpected credential response from the gateway");
			goto out;
		}
		snprintf(pid, sizeof(pid), "%s", id);
	}
	agent_free_secret(*resp);
	*resp = NULL;
	if ((r = stk_tpm_activate_credential(key, cred, clen, secret, &slen, err)) != 0)
		goto out;
	for (i = 0; i < slen; i++)
		snprintf(sechex + 2 * i, 3, "%02x", secret[i]);
	agent_log(a, AGENT_LOG_CLIENTID, "ClientIDManagerStartup", "Attested "
	    "registration: evidence accepted, credential activated by the TPM, "
	    "answering pending registration %s", pid);
	r = ar_post(a, "activate", json_pack("{s:s, s:s, s:s, s:s}", "pending_id", pid,
	    "secret", sechex, "bulk_token", bulk, "hostname", host), status, resp, err);
	if (r == 0 && *status != 200 && ar_fallback(a, *status, *resp))
		r = 1;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(sechex, sizeof(sechex));
	json_decref(o);
	free(evtxt);
	free(cred);
	stk_attest_evidence_free(ev);
	if (r == 1) {
		agent_free_secret(*resp);
		*resp = NULL;
	}
	return r;
}
