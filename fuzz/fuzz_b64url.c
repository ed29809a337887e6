/* Strict base64url: whatever decodes must re-encode to the same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "sitetoken/token.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *out = NULL;
	char *enc = NULL;
	size_t n;

	if (stk_b64url_decode((const char *)data, size, &out, &n) == 0) {
		if (stk_b64url_encode(out, n, &enc) != 0 || strlen(enc) != size ||
		    memcmp(enc, data, size) != 0)
			abort(); /* decoding must be canonical */
		free(enc);
	}
	free(out);
	return 0;
}
