/* Token parser and verifier on arbitrary bytes. */
#include <stdint.h>
#include <string.h>
#include "fuzz_common.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stk_verifier *v = fuzz_verifier();
	struct stk_claims c;
	struct stk_error err;
	static const enum stk_token_type types[] = { STK_TOKEN_ANY, STK_TOKEN_BULK,
	    STK_TOKEN_CLIENT };
	int r = stk_verify(v, (const char *)data, size,
	    types[size % 3], FUZZ_NOW, &c, &err);

	/* An accepted token must have given complete claims. */
	if (r == 0 && (c.payload_json == NULL || c.header_json == NULL ||
	    !stk_guid_valid(c.id) || c.exp <= c.nbf))
		abort();
	if (r != 0 && (r > 0 || err.msg[0] == '\0'))
		abort(); /* every refusal carries a reason */
	stk_claims_clear(&c);
	return 0;
}
