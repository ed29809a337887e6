/* issue, verify */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "sitetoken/cert.h"
#include "sitetoken/device.h"
#include "sitetoken/file.h"
#include "sitetoken/refusal.h"
#include "sitetoken/token.h"
#include "cli.h"

int
cmd_issue(int argc, char **argv)
{
	const char *dir = NULL, *lifetime = NULL, *type = NULL;
	int r, json = 0;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "type", &type, NULL }, { "lifetime", &lifetime, NULL },
		{ "json", NULL, &json }, { NULL, NULL, NULL }
	};

	if ((r = cli_opts_msg(argc, argv, opts, "bad option for 'issue'")) != 0)
		return r;
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (type == NULL || stk_token_type_parse(type) != STK_TOKEN_BULK)
		return cli_usage_error("issue needs --type bulk (client tokens are "
		    "issued to devices by the management point)");
	{
		struct bulk_new_opts o = { lifetime, NULL, NULL, NULL, NULL, json, 0 };

		return bulk_new_print(dir, &o);
	}
}

static int
load_cert_file(const char *path, unsigned char **der, size_t *len)
{
	char *buf;
	size_t n;
	int r;

	*der = NULL;
	if ((buf = stk_file_read(path, 65536, &n)) == NULL)
		return STK_E_IO;
	if (stk_cert_pem_to_der(buf, n, der, len) == 0)
		r = 0;
	else if (n > 0 && (unsigned char)buf[0] == 0x30) {
		*der = (unsigned char *)buf;
		*len = n;
		return 0;
	} else
		r = STK_E_CRYPTO;
	free(buf);
	return r;
}

static void
print_claims(const struct stk_claims *c, int json)
{
	json_t *h = json_loads(c->header_json, 0, NULL);
	json_t *p = json_loads(c->payload_json, 0, NULL);
	char *txt, from[32], to[32];

	cli_time(c->nbf, from, sizeof(from));
	cli_time(c->exp, to, sizeof(to));
	if (json) {
		json_t *o = json_pack("{s:b, s:s, s:s, s:s, s:s, s:O, s:O}",
		    "valid", 1, "type", stk_token_type_name(c->type), "kid", c->kid,
		    "valid_from", from, "valid_to", to, "header", h, "claims", p);
		txt = json_dumps(o, JSON_INDENT(2));
		printf("%s\n", txt);
		free(txt);
		json_decref(o);
	} else {
		printf("Token is valid: %s token %s\nValid from %s to %s\n",
		    stk_token_type_name(c->type), c->id, from, to);
		txt = json_dumps(h, JSON_INDENT(2));
		printf("Header: %s\n", txt);
		free(txt);
		txt = json_dumps(p, JSON_INDENT(2));
		printf("Claims: %s\n", txt);
		free(txt);
	}
	json_decref(h);
	json_decref(p);
}

/* A verifier from a JWKS file (`key export --jwks`): every key that
 * carries its site certificate (x5c), all of one site. Offline: no site. */
static int
verifier_from_jwks(const char *path, struct stk_verifier **out, struct stk_error *err)
{
	struct stk_verifier *v = NULL;
	unsigned char *der = NULL;
	char guid[37], first[37] = "";
	const char *b64;
	json_error_t je;
	json_t *o, *keys, *k;
	size_t i, n = 0;
	int r = STK_OK, len;

	*out = NULL;
	if ((o = json_load_file(path, JSON_REJECT_DUPLICATES, &je)) == NULL)
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "%s is not a JWKS: %s", path, je.text);
	keys = json_object_get(o, "keys");
	json_array_foreach(keys, i, k) {
		b64 = json_string_value(json_array_get(json_object_get(k, "x5c"), 0));
		if (b64 == NULL || (der = malloc(strlen(b64))) == NULL ||
		    (len = EVP_DecodeBlock(der, (const unsigned char *)b64,
		    (int)strlen(b64))) <= 0) {
			r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "%s: key %zu has no site certificate (x5c)", path, i);
			goto out;
		}
		/* EVP_DecodeBlock counts the padding as zero bytes. */
		len -= (int)(strlen(b64) > 1 && b64[strlen(b64) - 1] == '=') +
		    (int)(strlen(b64) > 2 && b64[strlen(b64) - 2] == '=');
		if (stk_cert_site_guid(der, (size_t)len, guid) != 0 ||
		    (first[0] && strcmp(first, guid) != 0)) {
			r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "%s: key %zu is not a certificate of %s", path, i,
			    first[0] ? first : "a site");
			goto out;
		}
		if (!first[0]) {
			snprintf(first, sizeof(first), "%s", guid);
			if ((r = stk_verifier_new(guid, &v, err)) != 0)
				goto out;
		}
		if ((r = stk_verifier_add_cert(v, der, (size_t)len, err)) != 0)
			goto out;
		free(der);
		der = NULL;
		n++;
	}
	if (n == 0)
		r = stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "%s holds no keys", path);
out:
	free(der);
	json_decref(o);
	if (r != 0)
		stk_verifier_free(v);
	else
		*out = v;
	return r;
}

/* --leeway's seconds into *out: 0, or -1 if it is not 0 to 3600. */
static int
verify_leeway(const char *v, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(v, &end, 10);
	return errno || *end || *out < 0 || *out > 3600 ? -1 : 0;
}

/* verify's --type and --leeway, checked as they come. */
static int
verify_check(const struct cli_opt *o, const char *value)
{
	long leeway;

	if (strcmp(o->name, "type") == 0 && stk_token_type_parse(value) == STK_TOKEN_ANY)
		return cli_usage_error("--type must be bulk or client");
	if (strcmp(o->name, "leeway") == 0 && verify_leeway(value, &leeway) != 0)
		return cli_usage_error("--leeway must be 0 to 3600 seconds");
	return 0;
}

int
cmd_verify(int argc, char **argv)
{
	const char *dir = NULL, *certfile = NULL, *jwksfile = NULL, *tname = NULL, *lw = NULL;
	enum stk_refusal verdict = STK_REFUSAL_NONE;
	enum stk_token_type type = STK_TOKEN_ANY;
	struct stk_site *s = NULL;
	struct stk_verifier *own = NULL;
	const struct stk_verifier *v = NULL;
	struct stk_claims claims;
	struct stk_error err;
	unsigned char *der = NULL;
	size_t derlen, len;
	char *token = NULL, guid[37];
	long leeway = -1;
	int json = 0, r, rc;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "type", &tname, NULL }, { "json", NULL, &json },
		{ "cert", &certfile, NULL }, { "jwks", &jwksfile, NULL }, { "leeway", &lw, NULL },
		{ NULL, NULL, NULL }
	};

	if ((r = cli_opts_check(argc, argv, opts, "bad option for 'verify'", verify_check)) != 0)
		return r;
	if (tname != NULL)
		type = stk_token_type_parse(tname);
	if (lw != NULL)
		verify_leeway(lw, &leeway);
	if (argc - optind > 1)
		return cli_usage_error("verify takes one token");
	if (certfile != NULL && jwksfile != NULL)
		return cli_usage_error("give --cert or --jwks, not both");
	stk_error_clear(&err);
	memset(&claims, 0, sizeof(claims));
	if (jwksfile != NULL) {
		if ((r = verifier_from_jwks(jwksfile, &own, &err)) != 0)
			return cli_fail(&err, r);
		v = own;
	} else if (certfile != NULL) {
		/* Verifier from the certificate alone: no site, no key. */
		if (load_cert_file(certfile, &der, &derlen) != 0)
			return cli_usage_error("cannot read certificate %s", certfile);
		if (stk_cert_site_guid(der, derlen, guid) != 0) {
			free(der);
			return cli_usage_error("%s is not a site certificate (CN is not "
			    "a site GUID)", certfile);
		}
		r = stk_verifier_new(guid, &own, &err);
		if (r == 0)
			r = stk_verifier_add_cert(own, der, derlen, &err);
		free(der);
		if (r != 0) {
			stk_verifier_free(own);
			return cli_fail(&err, r);
		}
		v = own;
	} else {
		if ((rc = cli_open_site(dir, &s)) != 0)
			return rc;
		if ((r = stk_site_verifier(s, &v, &err)) != 0) {
			stk_site_close(s);
			return cli_fail(&err, r);
		}
	}
	if (leeway >= 0)
		stk_verifier_set_leeway((struct stk_verifier *)v, leeway);
	if (cli_read_token(argc > optind ? argv[optind] : NULL, &token, &len) != 0) {
		rc = EXIT_BACKEND;
		goto out;
	}
	r = stk_verify(v, token, len, type, stk_now(), &claims, &err);
	if (r == 0 && claims.type == STK_TOKEN_BULK && s != NULL) {
		/* The block list lives in the site database. */
		stk_claims_clear(&claims);
		r = stk_bulk_check(s, token, len, stk_now(), &claims, &err);
	} else if (r == 0 && claims.type == STK_TOKEN_CLIENT && s != NULL) {
		/* On a site: the gateway's verdict (superseded, blocked, ...). */
		r = stk_device_token_verdict(s, &claims, &verdict, &err);
	}
	if (r == 0) {
		print_claims(&claims, json);
		rc = EXIT_VALID;
	} else {
		if (json) {
			json_t *o = json_pack("{s:b, s:s, s:s}", "valid", 0,
			    "code", stk_refusal_code(verdict != STK_REFUSAL_NONE ? verdict :
			    stk_refusal_of_rc(r)), "reason", err.msg);
			char *txt = json_dumps(o, JSON_COMPACT);
			printf("%s\n", txt ? txt : "{\"valid\":false}");
			free(txt);
			json_decref(o);
		}
		fprintf(stderr, "%s: token refused: %s\n", cli_prog, err.msg);
		if (verdict == STK_REFUSAL_NONE)
			verdict = stk_refusal_of_rc(r);
		rc = verdict != STK_REFUSAL_INTERNAL ? stk_refusal_exit(verdict) :
		    cli_exit_code(r);
	}
out:
	stk_claims_clear(&claims);
	stk_token_free(token);
	stk_verifier_free(own);
	stk_site_close(s);
	return rc;
}
