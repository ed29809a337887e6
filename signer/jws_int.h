/* Internal to the library and its fuzz/unit harnesses: the claim reader on
 * its own, so a fuzzer reaches it without forging signatures. */
#ifndef SITETOKEN_JWS_INT_H
#define SITETOKEN_JWS_INT_H

#include "sitetoken/token.h"

/* Parse `len` bytes of payload JSON (strict) and apply the claim rules of
 * stk_verify. Same results as stk_verify past the signature check. */
int stk__jws_check_payload(const struct stk_verifier *v, const char *json,
    size_t len, enum stk_token_type expect, int64_t now,
    struct stk_claims *claims, struct stk_error *err);

#endif
