/* The server's request parsing, as srv_register and the CMG's renew/policy
 * do it before calling the site: the register body (strict JSON, members,
 * hostname), its PEM certificate and the certificate checks the site applies
 * (DER X.509, thumbprint), the bulk token's verification, and the bearer
 * credential of renew/policy. The first input byte picks the path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/x509.h>
#include "fuzz_common.h"
#include "server_int.h"

static void
fuzz_token(const char *tok, size_t len, enum stk_token_type type)
{
	struct stk_claims c;
	struct stk_error err;

	if (stk_verify(fuzz_verifier(), tok, len, type, FUZZ_NOW, &c, &err) == 0)
		stk_claims_clear(&c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct srv_register_body b;
	unsigned char *der = NULL;
	const unsigned char *p;
	const char *tok;
	char why[200], *h, thumb[44];
	size_t derlen = 0;
	X509 *x;

	if (size == 0)
		return 0;
	if (data[0] & 1) {
		/* Authorization header value (renew, policy). */
		if ((h = malloc(size)) == NULL)
			return 0;
		memcpy(h, data + 1, size - 1);
		h[size - 1] = '\0';
		if ((tok = srv_parse_bearer(h)) != NULL) {
			if (*tok == '\0' || *tok == ' ')
				abort();
			fuzz_token(tok, strlen(tok), STK_TOKEN_CLIENT);
		}
		free(h);
		return 0;
	}
	why[0] = '\0';
	if (srv_parse_register_body((const char *)data + 1, size - 1, &b, why,
	    sizeof(why)) != 0) {
		if (why[0] == '\0' || b.o != NULL)
			abort();
		return 0;
	}
	/* The hostname reaches the registration log: short and printable. */
	if (b.hostname != NULL && (strlen(b.hostname) > SRV_HOSTNAME_MAX ||
	    strpbrk(b.hostname, "\r\n\t\x1b\x7f") != NULL))
		abort();
	if (b.certificate != NULL &&
	    stk_cert_pem_to_der(b.certificate, strlen(b.certificate), &der, &derlen) == 0) {
		p = der;
		if ((x = d2i_X509(NULL, &p, (long)derlen)) != NULL)
			stk_cert_x5t_s256(der, derlen, thumb);
		X509_free(x);
		free(der);
	}
	if (b.bulk_token != NULL)
		fuzz_token(b.bulk_token, strlen(b.bulk_token), STK_TOKEN_BULK);
	srv_register_body_clear(&b);
	return 0;
}
