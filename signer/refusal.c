/* The refusal table (include/sitetoken/refusal.h): one row per reason. */
#include <stddef.h>
#include <string.h>
#include "sitetoken/error.h"
#include "sitetoken/refusal.h"

static const struct stk_refusal_row refusal_rows[STK_REFUSAL_COUNT] = {
#define REFUSAL_ROW_(id, code, http, exit_code, msg) \
	{ STK_REFUSAL_##id, code, http, exit_code, msg },
	STK_REFUSALS(REFUSAL_ROW_)
#undef REFUSAL_ROW_
};

const struct stk_refusal_row *
stk_refusal(enum stk_refusal r)
{
	if ((unsigned int)r >= STK_REFUSAL_COUNT)
		r = STK_REFUSAL_INTERNAL;
	return &refusal_rows[r];
}

const char *
stk_refusal_code(enum stk_refusal r)
{
	return stk_refusal(r)->code;
}

unsigned int
stk_refusal_http(enum stk_refusal r)
{
	return stk_refusal(r)->http;
}

int
stk_refusal_exit(enum stk_refusal r)
{
	return stk_refusal(r)->exit_code;
}

enum stk_refusal
stk_refusal_parse(const char *code)
{
	size_t i;

	if (code == NULL)
		return STK_REFUSAL_INTERNAL;
	for (i = 0; i < STK_REFUSAL_COUNT; i++)
		if (strcmp(refusal_rows[i].code, code) == 0)
			return refusal_rows[i].reason;
	return STK_REFUSAL_OTHER;
}

enum stk_refusal
stk_refusal_of_rc(int rc)
{
	switch (rc) {
	case STK_OK: return STK_REFUSAL_NONE;
	case STK_E_TOKEN_EXPIRED: return STK_REFUSAL_TOKEN_EXPIRED;
	case STK_E_TOKEN_NOTYET: return STK_REFUSAL_TOKEN_NOTYET;
	case STK_E_TOKEN_TYPE: return STK_REFUSAL_TOKEN_TYPE;
	case STK_E_TOKEN_BLOCKED: return STK_REFUSAL_BULK_BLOCKED;
	case STK_E_TOKEN_UNKNOWN: return STK_REFUSAL_BULK_UNKNOWN;
	case STK_E_TOKEN_EXHAUSTED: return STK_REFUSAL_BULK_EXHAUSTED;
	case STK_E_TOKEN_SOURCE: return STK_REFUSAL_BULK_SOURCE;
	case STK_E_TOKEN_BINDING: return STK_REFUSAL_BINDING;
	case STK_E_TOKEN_SIZE: case STK_E_TOKEN_FORMAT: case STK_E_TOKEN_B64:
	case STK_E_TOKEN_JSON: case STK_E_TOKEN_ALG: case STK_E_TOKEN_HEADER:
	case STK_E_TOKEN_SIGNATURE: case STK_E_TOKEN_CLAIMS: case STK_E_TOKEN_ISSUER:
	case STK_E_TOKEN_AUDIENCE:
		return STK_REFUSAL_TOKEN_INVALID;
	default:
		return STK_REFUSAL_INTERNAL;
	}
}
