/* sitetoken — one refusal vocabulary.
 *
 * Every "no" the site gives a device, an administrator or a script has one
 * row here: {reason, wire code, HTTP status, CLI/agent exit code, message}.
 * site/ returns an enum stk_refusal; the MP/CMG (server/server.c), the admin
 * API (server/admin.c), the CLI and the agent read the row. Nothing decides
 * on the text of a message.
 *
 * Adding a reason is one line in STK_REFUSALS (append it anywhere; the wire
 * code is the stable name, the enum value is not). Exit codes are the CLI's
 * and the agent's: 1 refused, 2 bad request or usage, 3 internal failure. */
#ifndef SITETOKEN_REFUSAL_H
#define SITETOKEN_REFUSAL_H

#ifdef __cplusplus
extern "C" {
#endif

/*  X(ID, wire code, HTTP status, exit code, message) */
#define STK_REFUSALS(X) \
	X(NONE, "ok", 200, 0, "accepted") \
	X(INTERNAL, "internal_error", 500, 3, "the site could not complete the request; see the server logs") \
	X(OTHER, "refused", 400, 1, "refused for a reason this program does not know") \
	X(BAD_REQUEST, "bad_request", 400, 2, "the request is not a strict JSON object of the documented members") \
	X(UNSUPPORTED_MEDIA, "unsupported_media_type", 415, 2, "the body must be Content-Type: application/json") \
	X(CROSS_ORIGIN, "cross_origin_refused", 403, 1, "requests from a web page (Origin header) are refused") \
	X(NOT_FOUND, "not_found", 404, 1, "unknown path or record") \
	X(METHOD_NOT_ALLOWED, "method_not_allowed", 405, 2, "wrong method for the path") \
	X(BODY_TOO_LARGE, "body_too_large", 413, 2, "request body too large") \
	X(UNAUTHORIZED, "unauthorized", 401, 1, "missing or wrong bearer secret") \
	X(BAD_LIFETIME, "bad_lifetime", 400, 2, "lifetime must be a whole number of minutes, 1 to 10080") \
	X(BAD_MAX_USES, "bad_max_uses", 400, 2, "max uses must be a whole number of registrations, 1 to 1000000") \
	X(BAD_SOURCE, "bad_source", 400, 2, "source must be IPv4 or IPv6 networks, CIDR[,CIDR]") \
	X(NO_CLIENT_CERT, "no_client_certificate", 401, 1, "no TLS client certificate was presented") \
	X(NO_TOKEN, "no_token", 401, 1, "no token in the request") \
	X(TOKEN_INVALID, "token_invalid", 401, 1, "the token failed a signature, header, claim or encoding rule") \
	X(TOKEN_EXPIRED, "token_expired", 401, 1, "the token expired") \
	X(TOKEN_NOTYET, "token_not_yet_valid", 401, 1, "the token is not valid yet") \
	X(TOKEN_TYPE, "wrong_token_type", 401, 1, "a token of another Type") \
	X(BULK_UNKNOWN, "bulk_token_unknown", 401, 1, "the site has no record of this bulk token") \
	X(BULK_BLOCKED, "bulk_token_blocked", 403, 1, "the bulk token is blocked") \
	X(BULK_EXHAUSTED, "bulk_token_exhausted", 403, 1, "the bulk token has been used as many times as it allows (--max-uses)") \
	X(BULK_SOURCE, "bulk_token_source", 403, 1, "the bulk token may not be used from this network (--source)") \
	X(BINDING, "certificate_mismatch", 401, 1, "the certificate is not the one the token or the TLS session is bound to") \
	X(UNKNOWN_DEVICE, "unknown_device", 401, 1, "the token's device is not registered") \
	X(SUPERSEDED, "token_superseded", 401, 1, "a newer token was issued to the device") \
	X(DEVICE_BLOCKED, "device_blocked", 403, 1, "the device is blocked") \
	X(CMG_DISABLED, "cloud_gateway_disabled", 403, 1, "client setting allow cloud gateway is off") \
	X(INTERNAL_DISABLED, "internal_registration_disabled", 403, 1, "internal registration is turned off on this site") \
	X(CREDENTIAL, "credential_required", 401, 1, "HTTPS registration needs a trusted client certificate or a bulk token") \
	X(BAD_CERTIFICATE, "bad_certificate", 400, 1, "the device certificate is not acceptable") \
	X(PROOF_REQUIRED, "proof_required", 401, 1, "registration must prove possession of the device key") \
	X(PROOF_INVALID, "proof_invalid", 401, 1, "the proof of possession (challenge signature) does not verify") \
	X(CHALLENGE_INVALID, "challenge_invalid", 401, 1, "the challenge is unknown, expired or already used") \
	X(ATTESTATION_REQUIRED, "attestation_required", 403, 1, "this site requires a TPM-attested device key") \
	X(ATTEST_INVALID, "attestation_invalid", 403, 1, "the key attestation evidence does not hold (EK chain, AK signature, certify, key attributes)") \
	X(ATTEST_NONCE, "attestation_nonce", 403, 1, "unknown, expired or replayed attestation nonce or pending registration") \
	X(ATTEST_KEY, "attestation_key_mismatch", 403, 1, "the attested key is not the TLS client certificate's key") \
	X(ATTEST_ACTIVATION, "attestation_activation_failed", 403, 1, "the credential was not activated by the TPM of the evidence") \
	X(ATTEST_UNAVAILABLE, "attestation_unavailable", 404, 1, "this site trusts no TPM manufacturer roots (sitetoken attest roots add)") \
	X(IDTOKEN_INVALID, "idtoken_invalid", 401, 1, "the ID token failed a size, encoding, JSON, header, algorithm, signature or claim rule") \
	X(IDTOKEN_ISSUER, "idtoken_issuer_untrusted", 401, 1, "the ID token's issuer is not trusted by this site (sitetoken oidc add)") \
	X(IDTOKEN_KEY, "idtoken_unknown_key", 401, 1, "the ID token's kid is not in its issuer's JWKS") \
	X(IDTOKEN_AUDIENCE, "idtoken_audience", 401, 1, "the ID token is not for this site's audience") \
	X(IDTOKEN_EXPIRED, "idtoken_expired", 401, 1, "the ID token expired or is not valid yet") \
	X(IDTOKEN_TENANT, "idtoken_tenant", 401, 1, "the ID token's tid is not the tenant this issuer is trusted for") \
	X(IDTOKEN_DEVICE, "idtoken_device_claim", 401, 1, "the ID token has no usable device claim") \
	X(IDTOKEN_IDENTITY, "idtoken_identity_registered", 409, 1, "this issuer and device identity is registered with another device key (re-key with the old key, or ask the administrator)") \
	X(CREDENTIAL_CONFLICT, "credential_conflict", 400, 2, "give a bulk token or an ID token, not both") \
	X(BUSY, "busy", 503, 3, "too many requests in progress; retry later")

enum stk_refusal {
#define STK_REFUSAL_ENUM_(id, code, http, exit_code, msg) STK_REFUSAL_##id,
	STK_REFUSALS(STK_REFUSAL_ENUM_)
#undef STK_REFUSAL_ENUM_
	STK_REFUSAL_COUNT
};

struct stk_refusal_row {
	enum stk_refusal reason;
	const char *code;      /* wire code: HTTP "error", audit detail, logs */
	unsigned int http;     /* HTTP status on the MP, CMG and admin API */
	int exit_code;         /* CLI and agent exit code */
	const char *message;   /* default human message (a detail may replace it) */
};

/* The row of a reason; an out-of-range value gives the INTERNAL row. Never
 * NULL. */
const struct stk_refusal_row *stk_refusal(enum stk_refusal r);
/* Shorthands for stk_refusal(r)->code / ->http / ->exit_code. */
const char *stk_refusal_code(enum stk_refusal r);
unsigned int stk_refusal_http(enum stk_refusal r);
int stk_refusal_exit(enum stk_refusal r);
/* The reason of a wire code (an agent reading a server's answer):
 * STK_REFUSAL_INTERNAL for NULL, STK_REFUSAL_OTHER for a code not in the
 * table (a newer server's reason is still a refusal). */
enum stk_refusal stk_refusal_parse(const char *code);
/* The reason for a token verification result (enum stk_rc): the STK_E_TOKEN_*
 * rules map to their reasons, 0 to NONE, anything else to INTERNAL. */
enum stk_refusal stk_refusal_of_rc(int rc);

#ifdef __cplusplus
}
#endif
#endif
