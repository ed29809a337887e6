/* Differential: the verifier's canonical-layout claim reader (hot path)
 * against the strict jansson reader, on the same payload bytes. Any
 * disagreement — verdict, refusal code, reason text or a decoded claim —
 * aborts. Seeds are payloads in our issuer's own layout, so mutations land
 * on both sides of the layout check. */
#include <stdint.h>
#include <string.h>
#include "fuzz_common.h"
#include "jws_int.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum stk_token_type types[] = { STK_TOKEN_ANY, STK_TOKEN_BULK,
	    STK_TOKEN_CLIENT };
	struct stk_verifier *v = fuzz_verifier();
	struct stk_claims a, b;
	struct stk_error ea, eb;
	enum stk_token_type t = types[size % 3];
	/* Inside the seeds' window, and past every window (exp overflow). */
	int64_t now = size % 5 == 0 ? INT64_MAX : FUZZ_NOW;
	int ra, rb, used;

	stk_error_clear(&ea);
	stk_error_clear(&eb);
	ra = stk__jws_check_payload(v, (const char *)data, size, t, now, &a, &ea);
	rb = stk__jws_check_payload_fast(v, (const char *)data, size, t, now, &b,
	    &used, &eb);
	if (ra != rb || ea.code != eb.code || strcmp(ea.msg, eb.msg) != 0 ||
	    a.type != b.type || strcmp(a.tenant, b.tenant) != 0 ||
	    strcmp(a.id, b.id) != 0 || strcmp(a.subject, b.subject) != 0 ||
	    strcmp(a.cnf_x5t_s256, b.cnf_x5t_s256) != 0 || strcmp(a.att, b.att) != 0 ||
	    a.iat != b.iat ||
	    a.nbf != b.nbf || a.exp != b.exp) {
		fprintf(stderr, "readers disagree: jansson %d (%s), layout %d%s (%s)\n",
		    ra, ea.msg, rb, used ? " [layout]" : "", eb.msg);
		abort();
	}
	stk_claims_clear(&a);
	stk_claims_clear(&b);
	return 0;
}
