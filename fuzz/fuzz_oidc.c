/* OIDC: the JWKS parser and the ID token verifier (site/registration/oidc.c) on
 * arbitrary input.
 *  - "JWKS\0TOKEN": the token verified with that JWKS (parsed leniently);
 *  - input starting with '{': a JWKS, parsed strictly and leniently;
 *  - anything else: an ID token verified with fuzz/data/oidc-jwks.json, whose
 *    keys signed the seeds in corpus/oidc (the private keys are not kept),
 *    so mutations reach every claim rule.
 * Invariants: a JWKS the strict parser takes, the lenient one takes with the
 * same keys; a verified token names a device and agrees with the issuer
 * peek; a refusal always carries a reason. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sitetoken/log.h"
#include "sitetoken/oidc.h"

#define FUZZ_OIDC_NOW 1800000000LL

static struct stk_jwks *
fuzz_keys(void)
{
	static struct stk_jwks *k;
	char buf[STK_OIDC_JWKS_MAX];
	size_t n;
	FILE *fp;

	if (k != NULL)
		return k;
	if ((fp = fopen(STK_FUZZ_OIDC_JWKS, "r")) == NULL) {
		perror(STK_FUZZ_OIDC_JWKS);
		abort();
	}
	n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	if (stk_jwks_parse(buf, n, 1, &k, NULL) != 0)
		abort();
	return k;
}

static void
fuzz_issuer(struct stk_oidc_issuer *is)
{
	memset(is, 0, sizeof(*is));
	snprintf(is->issuer, sizeof(is->issuer), "https://issuer.test/tenant1/v2.0");
	snprintf(is->audience, sizeof(is->audience), "api://sitetoken");
	snprintf(is->device_claim, sizeof(is->device_claim), "deviceId");
	snprintf(is->tenant, sizeof(is->tenant), "tenant1");
}

static void
fuzz_token(const struct stk_jwks *keys, const char *tok, size_t len)
{
	struct stk_oidc_issuer is;
	struct stk_idtoken id;
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_INTERNAL, r2;
	char iss[STK_OIDC_ISSUER_MAX + 1];
	int r;

	fuzz_issuer(&is);
	r = stk_idtoken_verify(&is, keys, tok, len, FUZZ_OIDC_NOW, &id, &reason, &err);
	if ((r == 0) != (reason == STK_REFUSAL_NONE))
		abort();
	if (r != 0)
		return;
	if (id.device[0] == '\0' || id.sub[0] == '\0' || strcmp(id.issuer, is.issuer) != 0)
		abort();
	if (stk_idtoken_peek_issuer(tok, len, iss, &r2, &err) != 0 ||
	    strcmp(iss, is.issuer) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stk_jwks *strict = NULL, *lax = NULL;
	const char *in = (const char *)data, *nul;
	struct stk_error err;
	size_t i;

	stk_log_set(NULL, NULL, STK_LOG_ERROR);
	nul = memchr(in, '\0', size);
	if (nul != NULL) {
		if (stk_jwks_parse(in, (size_t)(nul - in), 0, &lax, &err) == 0)
			fuzz_token(lax, nul + 1, size - (size_t)(nul - in) - 1);
		stk_jwks_free(lax);
		return 0;
	}
	if (size > 0 && in[0] == '{') {
		int rs = stk_jwks_parse(in, size, 1, &strict, &err);
		int rl = stk_jwks_parse(in, size, 0, &lax, &err);

		if (rs == 0) {
			if (rl != 0 || stk_jwks_count(strict) != stk_jwks_count(lax))
				abort();
			for (i = 0; i < stk_jwks_count(strict); i++)
				if (strcmp(stk_jwks_kid(strict, i), stk_jwks_kid(lax, i)) != 0 ||
				    strcmp(stk_jwks_alg(strict, i), stk_jwks_alg(lax, i)) != 0)
					abort();
		}
		stk_jwks_free(strict);
		stk_jwks_free(lax);
		return 0;
	}
	fuzz_token(fuzz_keys(), in, size);
	return 0;
}
