/* issue, verify */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "sitetoken/cert.h"
#include "sitetoken/file.h"
#include "sitetoken/token.h"
#include "cli.h"

enum { OPT_SITE = 256, OPT_TYPE, OPT_LIFETIME, OPT_JSON, OPT_CERT, OPT_LEEWAY };

int
cmd_issue(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "site", required_argument, NULL, OPT_SITE },
		{ "type", required_argument, NULL, OPT_TYPE },
		{ "lifetime", required_argument, NULL, OPT_LIFETIME },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 }
	};
	const char *dir = NULL, *lifetime = NULL, *type = NULL;
	int c, json = 0;

	optind = 1;
	while ((c = cli_getopt(argc, argv, opts)) != -1) {
		switch (c) {
		case OPT_SITE: dir = optarg; break;
		case OPT_TYPE: type = optarg; break;
		case OPT_LIFETIME: lifetime = optarg; break;
		case OPT_JSON: json = 1; break;
		default: return cli_usage_error("bad option for 'issue'");
		}
	}
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (type == NULL || stk_token_type_parse(type) != STK_TOKEN_BULK)
		return cli_usage_error("issue needs --type bulk (client tokens are "
		    "issued to devices by the management point)");
	{
		struct bulk_new_opts o = { lifetime, NULL, NULL, NULL, NULL, json };

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

static const char *
refusal_code(int rc)
{
	switch (rc) {
	case STK_E_TOKEN_SIZE: return "too_large";
	case STK_E_TOKEN_FORMAT: return "malformed";
	case STK_E_TOKEN_B64: return "bad_base64url";
	case STK_E_TOKEN_JSON: return "bad_json";
	case STK_E_TOKEN_ALG: return "bad_alg";
	case STK_E_TOKEN_HEADER: return "bad_header";
	case STK_E_TOKEN_SIGNATURE: return "bad_signature";
	case STK_E_TOKEN_CLAIMS: return "bad_claims";
	case STK_E_TOKEN_ISSUER: return "wrong_issuer";
	case STK_E_TOKEN_AUDIENCE: return "wrong_audience";
	case STK_E_TOKEN_TYPE: return "wrong_type";
	case STK_E_TOKEN_EXPIRED: return "expired";
	case STK_E_TOKEN_NOTYET: return "not_yet_valid";
	case STK_E_TOKEN_BLOCKED: return "blocked";
	default: return "error";
	}
}

int
cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "site", required_argument, NULL, OPT_SITE },
		{ "type", required_argument, NULL, OPT_TYPE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "leeway", required_argument, NULL, OPT_LEEWAY },
		{ NULL, 0, NULL, 0 }
	};
	const char *dir = NULL, *certfile = NULL;
	enum stk_token_type type = STK_TOKEN_ANY;
	struct stk_site *s = NULL;
	struct stk_verifier *own = NULL;
	const struct stk_verifier *v = NULL;
	struct stk_claims claims;
	struct stk_error err;
	unsigned char *der = NULL;
	size_t derlen, len;
	char *token = NULL, guid[37], *end;
	long leeway = -1;
	int c, json = 0, r, rc;

	optind = 1;
	while ((c = cli_getopt(argc, argv, opts)) != -1) {
		switch (c) {
		case OPT_SITE: dir = optarg; break;
		case OPT_TYPE:
			if ((type = stk_token_type_parse(optarg)) == STK_TOKEN_ANY)
				return cli_usage_error("--type must be bulk or client");
			break;
		case OPT_JSON: json = 1; break;
		case OPT_CERT: certfile = optarg; break;
		case OPT_LEEWAY:
			errno = 0;
			leeway = strtol(optarg, &end, 10);
			if (errno || *end || leeway < 0 || leeway > 3600)
				return cli_usage_error("--leeway must be 0 to 3600 seconds");
			break;
		default: return cli_usage_error("bad option for 'verify'");
		}
	}
	if (argc - optind > 1)
		return cli_usage_error("verify takes one token");
	stk_error_clear(&err);
	memset(&claims, 0, sizeof(claims));
	if (certfile != NULL) {
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
	}
	if (r == 0) {
		print_claims(&claims, json);
		rc = EXIT_VALID;
	} else {
		if (json) {
			json_t *o = json_pack("{s:b, s:s, s:s}", "valid", 0,
			    "code", refusal_code(r), "reason", err.msg);
			char *txt = json_dumps(o, JSON_COMPACT);
			printf("%s\n", txt ? txt : "{\"valid\":false}");
			free(txt);
			json_decref(o);
		}
		fprintf(stderr, "%s: token refused: %s\n", cli_prog, err.msg);
		rc = cli_exit_code(r);
	}
out:
	stk_claims_clear(&claims);
	stk_token_free(token);
	stk_verifier_free(own);
	stk_site_close(s);
	return rc;
}
