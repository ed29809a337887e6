/* Strict base64url (RFC 4648 §5) without padding, as JWS requires. */
#include <stdlib.h>
#include <string.h>
#include "sitetoken/token.h"

static const char b64u_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 0..63 or 0xff for anything outside the alphabet (including '='). */
static const unsigned char b64u_rev[256] = {
#define X 0xff
	X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
	X,X,X,X,X,X,X,X,X,X,X,X,X,62,X,X, 52,53,54,55,56,57,58,59,60,61,X,X,X,X,X,X,
	X,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14, 15,16,17,18,19,20,21,22,23,24,25,X,X,X,X,63,
	X,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40, 41,42,43,44,45,46,47,48,49,50,51,X,X,X,X,X,
	X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
	X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
	X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
	X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
#undef X
};

size_t
stk_b64url_encode_buf(const unsigned char *in, size_t len, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64u_alpha[(v >> 18) & 63];
		out[o++] = b64u_alpha[(v >> 12) & 63];
		out[o++] = b64u_alpha[(v >> 6) & 63];
		out[o++] = b64u_alpha[v & 63];
	}
	if (len - i == 1) {
		unsigned v = (unsigned)in[i] << 16;
		out[o++] = b64u_alpha[(v >> 18) & 63];
		out[o++] = b64u_alpha[(v >> 12) & 63];
	} else if (len - i == 2) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
		out[o++] = b64u_alpha[(v >> 18) & 63];
		out[o++] = b64u_alpha[(v >> 12) & 63];
		out[o++] = b64u_alpha[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

int
stk_b64url_encode(const unsigned char *in, size_t len, char **out)
{
	char *buf;

	*out = NULL;
	if (len > (SIZE_MAX - 4) / 4 * 3)
		return STK_E_ARG;
	if ((buf = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return STK_E_NOMEM;
	stk_b64url_encode_buf(in, len, buf);
	*out = buf;
	return STK_OK;
}

int
stk_b64url_decode(const char *in, size_t len, unsigned char **out,
    size_t *outlen)
{
	unsigned char *buf = NULL;
	size_t i, o = 0, rem = len % 4;
	unsigned v;
	int r = STK_E_TOKEN_B64;

	*out = NULL;
	*outlen = 0;
	if (rem == 1)
		goto out; /* 6 bits cannot encode a byte */
	if ((buf = malloc(len / 4 * 3 + 3)) == NULL)
		return STK_E_NOMEM;
	for (i = 0; i < len; i++)
		if (b64u_rev[(unsigned char)in[i]] == 0xff)
			goto out;
	for (i = 0; i + 3 < len; i += 4) {
		v = (unsigned)b64u_rev[(unsigned char)in[i]] << 18 |
		    (unsigned)b64u_rev[(unsigned char)in[i + 1]] << 12 |
		    (unsigned)b64u_rev[(unsigned char)in[i + 2]] << 6 |
		    b64u_rev[(unsigned char)in[i + 3]];
		buf[o++] = (unsigned char)(v >> 16);
		buf[o++] = (unsigned char)(v >> 8);
		buf[o++] = (unsigned char)v;
	}
	if (rem == 2) {
		v = (unsigned)b64u_rev[(unsigned char)in[i]] << 6 |
		    b64u_rev[(unsigned char)in[i + 1]];
		if (v & 0x0f)
			goto out; /* stray bits: non-canonical encoding */
		buf[o++] = (unsigned char)(v >> 4);
	} else if (rem == 3) {
		v = (unsigned)b64u_rev[(unsigned char)in[i]] << 12 |
		    (unsigned)b64u_rev[(unsigned char)in[i + 1]] << 6 |
		    b64u_rev[(unsigned char)in[i + 2]];
		if (v & 0x03)
			goto out;
		buf[o++] = (unsigned char)(v >> 10);
		buf[o++] = (unsigned char)(v >> 2);
	}
	*out = buf;
	*outlen = o;
	buf = NULL;
	r = STK_OK;
out:
	free(buf);
	return r;
}
