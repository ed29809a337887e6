/* Shared set-up for the token fuzzers: a verifier for the site whose
 * certificate is fuzz/data/site.crt (public only; the seed tokens in
 * corpus/verify were signed by its key, which is not kept). */
#ifndef STK_FUZZ_COMMON_H
#define STK_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include "sitetoken/cert.h"
#include "sitetoken/token.h"

/* Inside the seed tokens' validity window, so the fuzzer reaches the time
 * rules and past them. */
#define FUZZ_NOW 1795628000LL

static struct stk_verifier *
fuzz_verifier(void)
{
	static struct stk_verifier *v;
	unsigned char *der = NULL;
	size_t len;
	char pem[8192], guid[37];
	size_t n;
	FILE *fp;

	if (v != NULL)
		return v;
	if ((fp = fopen(STK_FUZZ_SITE_CRT, "r")) == NULL) {
		perror(STK_FUZZ_SITE_CRT);
		abort();
	}
	n = fread(pem, 1, sizeof(pem), fp);
	fclose(fp);
	if (stk_cert_pem_to_der(pem, n, &der, &len) != 0 ||
	    stk_cert_site_guid(der, len, guid) != 0 ||
	    stk_verifier_new(guid, &v, NULL) != 0 ||
	    stk_verifier_add_cert(v, der, len, NULL) != 0)
		abort();
	free(der);
	return v;
}

#endif
