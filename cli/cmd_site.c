/* site init|show, key show|export */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/pem.h>
#include "sitetoken/cert.h"
#include "sitetoken/log.h"
#include "cli.h"
#include "sitetoken/attest.h"

static int
site_init(int argc, char **argv)
{
	struct stk_site_init_opts io;
	struct stk_error err;
	struct stk_site *s = NULL;
	const char *dir = NULL, *tcti = NULL, *mod = NULL, *type = NULL;
	int r, json = 0;
	/* --pkcs11-uri is the PKCS#11 spelling of --key-uri. */
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "backend", &io.backend, NULL },
		{ "key-type", &type, NULL }, { "key-uri", &io.key_uri, NULL },
		{ "pkcs11-uri", &io.key_uri, NULL }, { "pkcs11-module", &mod, NULL },
		{ "tcti", &tcti, NULL }, { "json", NULL, &json }, { "db", &io.db, NULL },
		{ "db-schema", &io.db_schema, NULL }, { NULL, NULL, NULL }
	};

	memset(&io, 0, sizeof(io));
	io.backend = "file";
	io.key_type = STK_KEY_RSA2048;
	if ((r = cli_opts_check(argc, argv, opts, NULL, cli_check_key_type)) != 0)
		return r;
	if (type != NULL)
		io.key_type = stk_key_type_parse(type);
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (stk_key_backend_find(io.backend) == NULL)
		return cli_usage_error("backend '%s' is not available (file%s%s)",
		    io.backend, stk_key_backend_find("pkcs11") ? ", pkcs11" : "",
		    stk_key_backend_find("tpm") ? ", tpm" : "");
	if (strcmp(io.backend, "pkcs11") == 0 && io.key_uri == NULL)
		return cli_usage_error("--backend pkcs11 needs --pkcs11-uri "
		    "'pkcs11:token=...;object=...'");
	if ((dir = cli_site_dir(dir)) == NULL)
		return EXIT_USAGE;
	cli_key_opts(&io.key, tcti, mod);
	io.actor = cli_actor();
	stk_error_clear(&err);
	r = stk_site_init(dir, &io, &s, &err);
	cli_progress_end();
	if (r != 0)
		return cli_fail(&err, r);
	if (json)
		printf("{\"site\":\"%s\",\"backend\":\"%s\",\"key_type\":\"%s\","
		    "\"key_uri\":\"%s\",\"dir\":\"%s\"}\n", stk_site_guid(s),
		    stk_site_backend(s), stk_key_type_name(stk_site_key_type(s)),
		    stk_site_key_uri(s), dir);
	else
		printf("Site %s initialised in %s\nKey: %s %s (%s)\nCertificate: %s/site.crt\n",
		    stk_site_guid(s), dir, stk_site_backend(s),
		    stk_key_type_name(stk_site_key_type(s)), stk_site_key_uri(s), dir);
	stk_site_close(s);
	return 0;
}

/* site show, key show and key export: --site and --json; key export also
 * --jwks and --out (a table each, so --list-options shows what each takes). */
static int
parse_simple(int argc, char **argv, const char **dir, int *json, int *jwks,
    const char **out)
{
	const struct cli_opt show_opts[] = {
		{ "site", dir, NULL }, { "json", NULL, json }, { NULL, NULL, NULL }
	}, export_opts[] = {
		{ "site", dir, NULL }, { "json", NULL, json }, { "jwks", NULL, jwks },
		{ "out", out, NULL }, { NULL, NULL, NULL }
	};
	int r;

	if ((r = cli_opts_msg(argc, argv, jwks == NULL ? show_opts : export_opts,
	    "bad option")) != 0)
		return r;
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	return 0;
}

static int
site_show(int argc, char **argv)
{
	struct stk_site *s;
	const char *dir = NULL;
	int json = 0, r;
	size_t clen;
	char x5t[44];
	const unsigned char *cert;

	if ((r = parse_simple(argc, argv, &dir, &json, NULL, NULL)) != 0)
		return r;
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	cert = stk_site_cert(s, &clen);
	stk_cert_x5t(cert, clen, x5t);
	if (json)
		printf("{\"site\":\"%s\",\"tenant\":\"%s\",\"issuer\":\"" STK_ISSUER_PREFIX
		    "%s\",\"backend\":\"%s\",\"key_type\":\"%s\",\"x5t\":\"%s\","
		    "\"store\":\"%s\",\"node\":\"%s\"}\n",
		    stk_site_guid(s), stk_site_guid(s), stk_site_guid(s),
		    stk_site_backend(s), stk_key_type_name(stk_site_key_type(s)), x5t,
		    stk_site_store(s), stk_site_node(s));
	else
		printf("Site GUID:  %s\nIssuer:     " STK_ISSUER_PREFIX "%s\n"
		    "Backend:    %s\nKey type:   %s\nCert x5t:   %s\n"
		    "Store:      %s\nNode:       %s\n",
		    stk_site_guid(s), stk_site_guid(s), stk_site_backend(s),
		    stk_key_type_name(stk_site_key_type(s)), x5t, stk_site_store(s),
		    stk_site_node(s));
	stk_site_close(s);
	return 0;
}

int
cmd_site(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{ "init", site_init, NULL }, { "show", site_show, NULL }, { NULL, NULL, NULL }
	};

	return cli_sub_run("site", subs, argc, argv, "usage: site init|show");
}

static int
key_show(int argc, char **argv)
{
	struct stk_site *s;
	struct stk_key *key;
	struct stk_key_info info;
	struct stk_error err;
	const struct stk_signer *signer;
	const char *dir = NULL;
	int json = 0, r;
	size_t i;

	if ((r = parse_simple(argc, argv, &dir, &json, NULL, NULL)) != 0)
		return r;
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	stk_error_clear(&err);
	if ((r = stk_site_signer(s, &signer, &err)) != 0 ||
	    (r = stk_site_key(s, &key, &err)) != 0 ||
	    (r = stk_key_describe(key, &info, &err)) != 0) {
		stk_site_close(s);
		return cli_fail(&err, r);
	}
	if (json) {
		json_t *j = json_object(), *a = json_object();
		char *txt;

		json_object_set_new(j, "backend", json_string(info.backend));
		json_object_set_new(j, "key_type", json_string(stk_key_type_name(info.type)));
		json_object_set_new(j, "alg", json_string(stk_key_type_alg(info.type)));
		json_object_set_new(j, "location", json_string(info.location));
		json_object_set_new(j, "x5t", json_string(stk_signer_x5t(signer)));
		json_object_set_new(j, "kid", json_string(stk_signer_kid(signer)));
		json_object_set_new(j, "non_exportable", json_boolean(info.non_exportable));
		json_object_set_new(j, "attestation", json_string(
		    stk_key_attestation_available(key) ? "tpm" : "none"));
		for (i = 0; i < info.nattrs; i++)
			json_object_set_new(a, info.attrs[i].name, json_string(info.attrs[i].value));
		json_object_set_new(j, "attributes", a);
		txt = json_dumps(j, JSON_INDENT(2));
		printf("%s\n", txt);
		free(txt);
		json_decref(j);
	} else {
		printf("Backend:         %s\nKey type:        %s (%s)\nLocation:        %s\n"
		    "x5t:             %s\nkid:             %s\nNon-exportable:  %s\n"
		    "Attributes read from the device:\n", info.backend,
		    stk_key_type_name(info.type), stk_key_type_alg(info.type),
		    info.location, stk_signer_x5t(signer), stk_signer_kid(signer),
		    info.non_exportable ? "yes" : "no (development key)");
		printf("Attestation:     %s\n", stk_key_attestation_available(key) ?
		    "available (TPM): sitetoken key attest --nonce HEX" :
		    strcmp(info.backend, "pkcs11") == 0 ? "none (PKCS#11 has no "
		    "standard key attestation; the attributes below are the "
		    "device's own report)" : "none (file key)");
		for (i = 0; i < info.nattrs; i++)
			printf("  %-24s %s\n", info.attrs[i].name, info.attrs[i].value);
	}
	stk_site_close(s);
	return 0;
}

static EVP_PKEY *
site_pubkey(struct stk_site *s)
{
	size_t len;
	const unsigned char *der = stk_site_cert(s, &len), *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	EVP_PKEY *k = NULL;

	if (x != NULL) {
		k = X509_get0_pubkey(x);
		if (k != NULL)
			EVP_PKEY_up_ref(k);
		X509_free(x);
	}
	return k;
}

static int
key_export(int argc, char **argv)
{
	struct stk_site *s;
	struct stk_error err;
	const char *dir = NULL, *out = NULL;
	int json = 0, jwks = 0, r, rc = 0;
	EVP_PKEY *pub;
	FILE *fp = stdout;
	char *jwk = NULL;

	if ((r = parse_simple(argc, argv, &dir, &json, &jwks, &out)) != 0)
		return r;
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	/* From the certificate: exporting needs no access to the device. */
	if ((pub = site_pubkey(s)) == NULL) {
		stk_site_close(s);
		fprintf(stderr, "%s: site certificate unreadable\n", cli_prog);
		return EXIT_BACKEND;
	}
	if (out != NULL && (fp = fopen(out, "w")) == NULL) {
		fprintf(stderr, "%s: cannot write %s\n", cli_prog, out);
		rc = EXIT_BACKEND;
		goto out;
	}
	stk_error_clear(&err);
	if (jwks || json) {
		/* Every node's key (and a retiring one), so a gateway verifies
		 * tokens from any node of the site. */
		if ((r = stk_site_jwks(s, &jwk, &err)) != 0) {
			rc = cli_fail(&err, r);
			goto out;
		}
		fprintf(fp, "%s\n", jwk);
	} else if (PEM_write_PUBKEY(fp, pub) != 1) {
		fprintf(stderr, "%s: cannot encode the public key\n", cli_prog);
		rc = EXIT_BACKEND;
	}
out:
	if (fp != NULL && fp != stdout && fclose(fp) != 0 && rc == 0)
		rc = EXIT_BACKEND;
	free(jwk);
	EVP_PKEY_free(pub);
	stk_site_close(s);
	return rc;
}

static int
key_retire(int argc, char **argv)
{
	return cmd_key_retire(argc, argv, 0);
}

static int
key_restore(int argc, char **argv)
{
	return cmd_key_retire(argc, argv, 1);
}

int
cmd_key(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{ "show", key_show, NULL }, { "export", key_export, NULL },
		{ "rotate", cmd_key_rotate, NULL }, { "list", cmd_key_list, NULL },
		{ "attest", cmd_key_attest, NULL },
		{ "activate-credential", cmd_key_activate, NULL },
		{ "retire", key_retire, NULL }, { "restore", key_restore, NULL },
		{ "endorse", cmd_key_endorse, NULL },
		{ NULL, NULL, NULL }
	};

	return cli_sub_run("key", subs, argc, argv, "usage: key show|export|rotate|list|"
	    "retire|restore|endorse|attest|activate-credential");
}
