/* Internal to the library and its fuzz/unit harnesses: the claim reader on
 * its own, so a fuzzer reaches it without forging signatures. */
#ifndef SITETOKEN_JWS_INT_H
#define SITETOKEN_JWS_INT_H

#include "sitetoken/token.h"

/* Parse `len` bytes of payload JSON (strict jansson) and apply the claim
 * rules of stk_verify. Same results as stk_verify past the signature check,
 * except that claims->payload_json stays NULL. */
int stk__jws_check_payload(const struct stk_verifier *v, const char *json,
    size_t len, enum stk_token_type expect, int64_t now,
    struct stk_claims *claims, struct stk_error *err);

/* The same through stk_verify's hot path: the canonical layout of our own
 * issuer read directly when `json` is one (*used_fast = 1, if non-NULL),
 * strict jansson otherwise. Must agree with stk__jws_check_payload on every
 * input: return code, err->code, err->msg and every claim. */
int stk__jws_check_payload_fast(const struct stk_verifier *v, const char *json,
    size_t len, enum stk_token_type expect, int64_t now,
    struct stk_claims *claims, int *used_fast, struct stk_error *err);

#endif
