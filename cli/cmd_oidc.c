/* sitetoken oidc add|list|remove: the OIDC issuers whose ID tokens register
 * devices in place of a bulk token (include/sitetoken/oidc.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "sitetoken/oidc.h"
#include "cli.h"

/* A whole (text) file, at most max bytes; NULL with a message otherwise. */
static char *
oidc_read_file(const char *path, size_t max, const char *what)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	size_t n;

	if (fp == NULL) {
		fprintf(stderr, "%s: cannot read %s %s\n", cli_prog, what, path);
		return NULL;
	}
	if ((buf = malloc(max + 2)) == NULL) {
		fclose(fp);
		return NULL;
	}
	n = fread(buf, 1, max + 1, fp);
	fclose(fp);
	if (n == 0 || n > max) {
		fprintf(stderr, "%s: %s %s must be 1 to %zu bytes\n", cli_prog, what, path, max);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	if (strlen(buf) != n) {
		fprintf(stderr, "%s: %s %s holds a NUL byte\n", cli_prog, what, path);
		free(buf);
		return NULL;
	}
	return buf;
}

/* v (when given) into dst, or a usage error if it does not fit. */
static int
oidc_set(char *dst, size_t dlen, const char *v, const char *opt)
{
	if (v != NULL && strlen(v) >= dlen)
		return cli_usage_error("%s is longer than %zu characters", opt, dlen - 1);
	if (v != NULL)
		snprintf(dst, dlen, "%s", v);
	return 0;
}

static int
oidc_add(int argc, char **argv)
{
	struct stk_oidc_issuer is;
	struct stk_site *s = NULL;
	struct stk_error err;
	const char *dir = NULL, *jwks = NULL, *ca = NULL, *iss = NULL, *aud = NULL;
	const char *claim = NULL, *tenant = NULL;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "issuer", &iss, NULL }, { "jwks", &jwks, NULL },
		{ "jwks-ca", &ca, NULL }, { "audience", &aud, NULL },
		{ "device-claim", &claim, NULL }, { "tenant", &tenant, NULL },
		{ NULL, NULL, NULL }
	};
	size_t len;
	int r, rc = EXIT_USAGE;

	memset(&is, 0, sizeof(is));
	snprintf(is.device_claim, sizeof(is.device_claim), "%s",
	    STK_OIDC_DEVICE_CLAIM_DEFAULT);
	if (cli_opts(argc, argv, opts) != 0 ||
	    oidc_set(is.issuer, sizeof(is.issuer), iss, "--issuer") != 0 ||
	    oidc_set(is.audience, sizeof(is.audience), aud, "--audience") != 0 ||
	    oidc_set(is.device_claim, sizeof(is.device_claim), claim, "--device-claim") != 0 ||
	    oidc_set(is.tenant, sizeof(is.tenant), tenant, "--tenant") != 0)
		goto out;
	if (optind != argc || iss == NULL || aud == NULL || jwks == NULL) {
		rc = cli_sub_usage();
		goto out;
	}
	stk_error_clear(&err);
	/* Everything is read (and fetched) before the site is touched: a bad
	 * file, URL or key changes nothing. */
	if (strncmp(jwks, "https://", 8) == 0) {
		if (oidc_set(is.jwks_url, sizeof(is.jwks_url), jwks, "--jwks") != 0)
			goto out;
		if (ca != NULL && (is.jwks_ca = oidc_read_file(ca, CLI_FILE_MAX, "CA file")) == NULL)
			goto out;
		if ((r = stk_jwks_fetch(is.jwks_url, is.jwks_ca, &is.jwks, &len, &err)) != 0) {
			rc = cli_fail(&err, r);
			goto out;
		}
	} else {
		if (strstr(jwks, "://") != NULL) {
			rc = cli_usage_error("--jwks must be a file or an https:// URL");
			goto out;
		}
		if (ca != NULL) {
			rc = cli_usage_error("--jwks-ca is for a --jwks https:// URL");
			goto out;
		}
		if ((is.jwks = oidc_read_file(jwks, STK_OIDC_JWKS_MAX, "JWKS")) == NULL)
			goto out;
	}
	if ((rc = cli_open_site(dir, &s)) != 0)
		goto out;
	if ((r = stk_oidc_add(s, &is, cli_actor(), &err)) != 0) {
		rc = cli_fail(&err, r);
		goto out;
	}
	printf("Trusted issuer %s (audience %s, device claim %s%s%s, keys from %s).\n",
	    is.issuer, is.audience, is.device_claim, is.tenant[0] ? ", tenant " : "",
	    is.tenant, is.jwks_url[0] ? is.jwks_url : "the JWKS file");
	rc = 0;
out:
	stk_oidc_issuer_clear(&is);
	stk_site_close(s);
	return rc;
}

static int
oidc_row(void *ctx, const struct stk_oidc_issuer *is, long devices)
{
	json_t *arr = ctx;
	char when[32];

	if (arr != NULL) {
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:b}",
		    "issuer", is->issuer, "audience", is->audience, "device_claim",
		    is->device_claim, "tenant", is->tenant, "jwks", is->jwks_url[0] ?
		    is->jwks_url : "file", "devices", (json_int_t)devices, "added_at",
		    (json_int_t)is->added_at, "endorsed", is->endorsed));
		return 0;
	}
	cli_time(is->added_at, when, sizeof(when));
	printf("%s%s\n  audience %s, device claim %s, tenant %s, keys %s, %ld device(s), "
	    "added %s\n", is->issuer, is->endorsed ? "" : "  NOT TRUSTED: the record is not "
	    "endorsed by a trusted site key (edited in the database?)", is->audience, is->device_claim, is->tenant[0] ?
	    is->tenant : "(any)", is->jwks_url[0] ? is->jwks_url : "(file)", devices, when);
	return 0;
}

static int
oidc_list(int argc, char **argv)
{
	struct stk_site *s = NULL;
	struct stk_error err;
	const char *dir = NULL;
	json_t *arr = NULL;
	int r, rc, json = 0;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "json", NULL, &json }, { NULL, NULL, NULL }
	};

	if ((rc = cli_opts(argc, argv, opts)) != 0)
		return rc;
	if (optind != argc)
		return cli_sub_usage();
	if ((rc = cli_open_site(dir, &s)) != 0)
		return rc;
	stk_error_clear(&err);
	if (json)
		arr = json_array();
	r = stk_oidc_foreach(s, oidc_row, arr, &err);
	if (r == 0 && json) {
		char *txt = json_dumps(arr, JSON_INDENT(2));

		printf("%s\n", txt ? txt : "[]");
		free(txt);
	}
	rc = r != 0 ? cli_fail(&err, r) : 0;
	json_decref(arr);
	stk_site_close(s);
	return rc;
}

static int
oidc_remove(int argc, char **argv)
{
	struct stk_site *s = NULL;
	struct stk_error err;
	const char *dir = NULL, *issuer = NULL;
	int r, rc;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "issuer", &issuer, NULL }, { NULL, NULL, NULL }
	};

	if ((rc = cli_opts(argc, argv, opts)) != 0)
		return rc;
	if (optind != argc || issuer == NULL)
		return cli_sub_usage();
	if ((rc = cli_open_site(dir, &s)) != 0)
		return rc;
	stk_error_clear(&err);
	if ((r = stk_oidc_remove(s, issuer, cli_actor(), &err)) != 0)
		rc = cli_fail(&err, r);
	else
		printf("Issuer %s is no longer trusted.\n", issuer);
	stk_site_close(s);
	return rc;
}

int
cmd_oidc(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{ "add", oidc_add, "usage: oidc add --issuer URL --jwks FILE|URL "
		    "--audience AUD [--device-claim NAME] [--tenant TID] [--jwks-ca FILE]" },
		{ "list", oidc_list, "usage: oidc list [--json]" },
		{ "remove", oidc_remove, "usage: oidc remove --issuer URL" },
		{ NULL, NULL, NULL }
	};

	return cli_sub_run("oidc", subs, argc, argv, "usage: oidc add|list|remove");
}
