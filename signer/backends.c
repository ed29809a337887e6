/* Key backend dispatch: the only place that lists the backends. Opening
 * and generating pick a backend here; every other call on a key goes
 * through its vtable (key.c). */
#include <stdio.h>
#include <string.h>
#include "sitetoken/key.h"

extern const struct stk_key_backend stk_backend_file;
#ifdef STK_HAVE_PKCS11
extern const struct stk_key_backend stk_backend_pkcs11;
#endif
#ifdef STK_HAVE_TPM
extern const struct stk_key_backend stk_backend_tpm;
#endif

static const struct stk_key_backend *const key_backends[] = {
	&stk_backend_file,
#ifdef STK_HAVE_PKCS11
	&stk_backend_pkcs11,
#endif
#ifdef STK_HAVE_TPM
	&stk_backend_tpm,
#endif
	NULL
};

const struct stk_key_backend *const *
stk_key_backends(void)
{
	return key_backends;
}

const struct stk_key_backend *
stk_key_backend_find(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && key_backends[i] != NULL; i++)
		if (strcmp(key_backends[i]->name, name) == 0)
			return key_backends[i];
	return NULL;
}

static const struct stk_key_backend *
key_backend_for_uri(const char *uri)
{
	size_t i, n;
	const char *colon = strchr(uri, ':');

	if (colon != NULL) {
		n = (size_t)(colon - uri);
		for (i = 0; key_backends[i] != NULL; i++)
			if (strlen(key_backends[i]->scheme) == n &&
			    strncmp(key_backends[i]->scheme, uri, n) == 0)
				return key_backends[i];
	}
	/* A plain path is a PEM file. */
	if (uri[0] == '/' || uri[0] == '.' || colon == NULL)
		return &stk_backend_file;
	return NULL;
}

int
stk_key_open(const char *uri, const struct stk_key_opts *opts,
    struct stk_key **out, struct stk_error *err)
{
	const struct stk_key_backend *be;
	static const struct stk_key_opts no_opts;

	*out = NULL;
	if (uri == NULL || *uri == '\0')
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "no key URI given");
	if ((be = key_backend_for_uri(uri)) == NULL)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "no key backend for this URI scheme (compiled in: file%s%s)",
		    stk_key_backend_find("pkcs11") ? ", pkcs11" : "",
		    stk_key_backend_find("tpm") ? ", tpm" : "");
	return be->open(uri, opts ? opts : &no_opts, out, err);
}

int
stk_key_generate(const char *backend, const char *uri, enum stk_key_type type,
    const struct stk_key_opts *opts, struct stk_key **out, char **out_uri,
    struct stk_error *err)
{
	const struct stk_key_backend *be = stk_key_backend_find(backend);
	static const struct stk_key_opts no_opts;

	*out = NULL;
	*out_uri = NULL;
	if (be == NULL)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "key backend '%s' is not compiled in", backend ? backend : "");
	if (!(be->caps & STK_CAP_GENERATE) || be->generate == NULL)
		return stk_error_set(err, STK_E_UNSUPPORTED, STK_LAYER_NONE, 0,
		    "key backend '%s' cannot generate keys (it does not declare "
		    "STK_CAP_GENERATE): choose a backend that can (--backend)", be->name);
	if (stk_key_type_alg(type) == NULL)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "unknown key type");
	return be->generate(uri, type, opts ? opts : &no_opts, out, out_uri, err);
}
