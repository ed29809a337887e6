/* The JSON claim reader on arbitrary payloads (no signature needed). */
#include <stdint.h>
#include <string.h>
#include "fuzz_common.h"
#include "jws_int.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stk_verifier *v = fuzz_verifier();
	struct stk_claims c;
	struct stk_error err;
	int r;

	r = stk__jws_check_payload(v, (const char *)data, size,
	    size % 2 ? STK_TOKEN_BULK : STK_TOKEN_ANY, FUZZ_NOW, &c, &err);
	if (r == 0 && (c.type == STK_TOKEN_ANY || !stk_guid_valid(c.id)))
		abort();
	stk_claims_clear(&c);
	return 0;
}
