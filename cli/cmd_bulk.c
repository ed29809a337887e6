/* bulk new|block|unblock, certs list — shared with BulkRegistrationTokenTool */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "sitetoken/bulklimits.h"
#include "sitetoken/certs.h"
#include "sitetoken/device.h"
#include "sitetoken/token.h"
#include "cli.h"
#include "sitetoken/attest_policy.h"

/* The agent's gateway pin for a TLS certificate file: "sha256:" and the hex
 * SHA-256 of the SubjectPublicKeyInfo of the file's last certificate (the
 * CA end of a chain; the certificate itself when it is self-signed).
 * 0, or -1 with a message in why. */
static int
bulk_pin_of(const char *file, char pin[72], char *why, size_t whylen)
{
	FILE *fp;
	X509 *x = NULL, *last = NULL;
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	int n, r = -1;
	size_t i;

	if ((fp = fopen(file, "r")) == NULL) {
		snprintf(why, whylen, "--tls-cert %s: cannot read it", file);
		return -1;
	}
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL) {
		X509_free(last);
		last = x;
	}
	fclose(fp);
	if (last == NULL) {
		snprintf(why, whylen, "--tls-cert %s holds no PEM certificate", file);
		goto out;
	}
	if ((n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(last), &der)) <= 0 ||
	    EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		snprintf(why, whylen, "--tls-cert %s: cannot hash its public key", file);
		goto out;
	}
	snprintf(pin, 72, "sha256:");
	for (i = 0; i < 32; i++)
		snprintf(pin + 7 + 2 * i, 3, "%02x", md[i]);
	r = 0;
out:
	OPENSSL_free(der);
	X509_free(last);
	return r;
}

int
bulk_new_print(const char *site_dir, const struct bulk_new_opts *o)
{
	const char *lifetime = o->lifetime, *max_uses = o->max_uses, *source = o->source;
	char pin[72] = "", install[1024] = "", why[300];
	int json = o->json;
	struct stk_site *s;
	struct stk_bulk_record rec;
	struct stk_bulk_limits lim;
	struct stk_error err;
	char *token = NULL, from[32], to[32];
	long minutes = STK_BULK_LIFETIME_DEFAULT;
	int r;

	stk_error_clear(&err);
	memset(&lim, 0, sizeof(lim));
	/* Check the values before touching the site: a bad value changes nothing. */
	if (lifetime != NULL && stk_bulk_parse_lifetime(lifetime, &minutes, &err) != 0)
		return cli_usage_error("%s", err.msg);
	if (max_uses != NULL && stk_bulk_parse_max_uses(max_uses, &lim.max_uses, &err) != 0)
		return cli_usage_error("%s", err.msg);
	if (source != NULL && stk_bulk_parse_sources(source, lim.sources,
	    sizeof(lim.sources), &err) != 0)
		return cli_usage_error("%s", err.msg);
	if (o->cmg != NULL && (strncmp(o->cmg, "https://", 8) != 0 || o->cmg[8] == '\0' ||
	    strlen(o->cmg) > 500 || strpbrk(o->cmg, " \t\r\n\"'") != NULL))
		return cli_usage_error("--cmg must be the gateway's https:// URL "
		    "(https://HOST:PORT/CCM_Proxy_MutualAuth/SITE-NUMBER)");
	if (o->cmg != NULL && o->tls_cert == NULL)
		return cli_usage_error("--cmg is used with --tls-cert (the install line's pin)");
	if (o->tls_cert != NULL) {
		if (bulk_pin_of(o->tls_cert, pin, why, sizeof(why)) != 0)
			return cli_usage_error("%s", why);
		snprintf(install, sizeof(install), "sitetoken-agent install /mp:%s "
		    "/cahash:%s /regtoken:-", o->cmg ? o->cmg :
		    "https://GATEWAY/CCM_Proxy_MutualAuth/SITE-NUMBER", pin);
	}
	if ((r = cli_open_site(site_dir, &s)) != 0)
		return r;
	if ((r = stk_bulk_new_limited(s, minutes, &lim, cli_actor(), &token, &rec,
	    &err)) != 0) {
		stk_site_close(s);
		return cli_fail(&err, r);
	}
	/* The token is printed only once its policy is recorded: a token never
	 * shown cannot be used. */
	if (o->require_att && (r = stk_bulk_set_require_attestation(s, rec.guid, 1,
	    cli_actor(), &err)) != 0) {
		stk_token_free(token);
		stk_site_close(s);
		return cli_fail(&err, r);
	}
	cli_time(rec.nbf, from, sizeof(from));
	cli_time(rec.exp, to, sizeof(to));
	if (json) {
		json_t *jo = json_pack("{s:s, s:I, s:I, s:s, s:s, s:I, s:o, s:o, s:s}",
		    "guid", rec.guid, "nbf", (json_int_t)rec.nbf, "exp", (json_int_t)rec.exp,
		    "valid_from", from, "valid_to", to, "lifetime_minutes",
		    (json_int_t)minutes, "max_uses", lim.max_uses ?
		    json_integer(lim.max_uses) : json_null(), "sources", lim.sources[0] ?
		    json_string(lim.sources) : json_null(), "token", token);
		char *txt;

		if (jo != NULL && pin[0]) {
			json_object_set_new(jo, "ca_hash", json_string(pin));
			json_object_set_new(jo, "install", json_string(install));
		}
		txt = json_dumps(jo, JSON_INDENT(2));
		json_decref(jo);
		if (txt == NULL) {
			stk_token_free(token);
			stk_site_close(s);
			fprintf(stderr, "%s: out of memory\n", cli_prog);
			return EXIT_BACKEND;
		}
		printf("%s\n", txt);
		OPENSSL_cleanse(txt, strlen(txt));
		free(txt);
	} else {
		printf("Bulk registration token created. The site tracks it by this GUID;\n"
		    "the token itself is not stored anywhere: copy it now.\n\n"
		    "Token GUID:  %s\nValid from:  %s\nValid to:    %s (%ld minutes)\n",
		    rec.guid, from, to, minutes);
		if (lim.max_uses)
			printf("Max uses:    %ld registrations\n", lim.max_uses);
		if (lim.sources[0])
			printf("Sources:     %s\n", lim.sources);
		printf("\nToken:\n%s\n", token);
		if (pin[0])
			printf("\nInstall on the device (the token on its standard input;\n"
			    "the gateway is trusted by its pinned key, no CA file needed):\n"
			    "%s\n", install);
	}
	fflush(stdout);
	stk_token_free(token);
	stk_site_close(s);
	return 0;
}

static int
bulk_block_set(int argc, char **argv, int block)
{
	struct stk_site *s;
	struct stk_error err;
	const char *dir = NULL;
	const struct cli_opt opts[] = { { "site", &dir, NULL }, { NULL, NULL, NULL } };
	int r;

	if ((r = cli_opts_msg(argc, argv, opts, "bad option")) != 0)
		return r;
	if (argc - optind != 1)
		return cli_sub_usage();
	if (!stk_guid_valid(argv[optind]))
		return cli_usage_error("'%s' is not a GUID", argv[optind]);
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	stk_error_clear(&err);
	r = stk_bulk_set_blocked(s, argv[optind], block, cli_actor(), &err);
	stk_site_close(s);
	if (r != 0)
		return cli_fail(&err, r);
	printf("Bulk registration token %s is %s.\n", argv[optind],
	    block ? "blocked" : "active (unblocked)");
	return 0;
}

static int
bulk_block(int argc, char **argv)
{
	return bulk_block_set(argc, argv, 1);
}

static int
bulk_unblock(int argc, char **argv)
{
	return bulk_block_set(argc, argv, 0);
}

static int
bulk_new(int argc, char **argv)
{
	struct bulk_new_opts o = { NULL, NULL, NULL, NULL, NULL, 0, 0 };
	const char *dir = NULL;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "lifetime", &o.lifetime, NULL },
		{ "max-uses", &o.max_uses, NULL }, { "source", &o.source, NULL },
		{ "tls-cert", &o.tls_cert, NULL }, { "cmg", &o.cmg, NULL },
		{ "json", NULL, &o.json }, { "require-attestation", NULL, &o.require_att },
		{ NULL, NULL, NULL }
	};
	int r;

	if ((r = cli_opts(argc, argv, opts)) != 0)
		return r;
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	return bulk_new_print(dir, &o);
}

int
cmd_bulk(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{ "block", bulk_block, "usage: bulk block GUID" },
		{ "unblock", bulk_unblock, "usage: bulk unblock GUID" },
		{ "new", bulk_new, NULL },
		{ NULL, NULL, NULL }
	};

	return cli_sub_run("bulk", subs, argc, argv, "usage: bulk new|block|unblock");
}

/* ---- certs list ---- */

static int sort_col, sort_desc;

static int
row_cmp(const void *a, const void *b)
{
	const struct stk_cert_row *x = a, *y = b;
	int c = 0;

	switch (sort_col) {
	case 0: c = strcmp(x->type, y->type); break;
	case 1: c = strcasecmp(x->id, y->id); break;
	case 2: c = (x->valid_from > y->valid_from) - (x->valid_from < y->valid_from); break;
	case 3: c = (x->valid_to > y->valid_to) - (x->valid_to < y->valid_to); break;
	case 4: c = strcmp(x->status, y->status); break;
	case 5: c = (x->created_at > y->created_at) - (x->created_at < y->created_at); break;
	case 6: c = (x->devices > y->devices) - (x->devices < y->devices); break;
	case 7: c = (x->uses > y->uses) - (x->uses < y->uses); break;
	}
	if (c == 0)
		c = strcasecmp(x->id, y->id);
	return sort_desc ? -c : c;
}

static int
type_matches(const char *want, const char *type)
{
	if (want == NULL)
		return 1;
	if (strcasecmp(want, "bulk") == 0)
		return strcmp(type, STK_CERT_TYPE_BULK) == 0;
	if (strcasecmp(want, "site") == 0)
		return strcmp(type, STK_CERT_TYPE_SITE) == 0;
	return strcasecmp(want, type) == 0;
}

static int
certs_list(int argc, char **argv)
{
	static const char *const cols[] = { "type", "id", "from", "to", "status", "created",
	    "devices", "uses" };
	const char *dir = NULL, *type = NULL, *sort = NULL;
	struct stk_site *s;
	struct stk_cert_row *rows = NULL;
	struct stk_error err;
	size_t n, i;
	int json = 0, r;
	json_t *arr = NULL;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "type", &type, NULL }, { "sort", &sort, NULL },
		{ "json", NULL, &json }, { NULL, NULL, NULL }
	};

	if ((r = cli_opts(argc, argv, opts)) != 0)
		return r;
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (type != NULL && strcasecmp(type, "bulk") != 0 && strcasecmp(type, "site") != 0 &&
	    strcmp(type, STK_CERT_TYPE_BULK) != 0 && strcmp(type, STK_CERT_TYPE_SITE) != 0)
		return cli_usage_error("--type must be 'site' or 'bulk'");
	sort_col = 0;
	sort_desc = 0;
	if (sort != NULL) {
		if (*sort == '-') {
			sort_desc = 1;
			sort++;
		}
		for (sort_col = 0; sort_col < 8; sort_col++)
			if (strcmp(sort, cols[sort_col]) == 0)
				break;
		if (sort_col == 8)
			return cli_usage_error("--sort must be one of type, id, from, to, "
			    "status, created, devices, uses");
	}
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	stk_error_clear(&err);
	r = stk_certs_list(s, stk_now(), &rows, &n, &err);
	if (r == 0 && (r = stk_certs_count_devices(s, rows, n, &err)) != 0)
		free(rows);
	stk_site_close(s);
	if (r != 0)
		return cli_fail(&err, r);
	qsort(rows, n, sizeof(*rows), row_cmp);
	if (json)
		arr = json_array();
	else
		printf("%-24s %-40s %-20s %-20s %-8s %-7s %s\n", "Type", "GUID / Thumbprint",
		    "Valid from", "Valid to", "Status", "Devices", "Uses");
	for (i = 0; i < n; i++) {
		char from[32], to[32], uses[48];

		if (!type_matches(type, rows[i].type))
			continue;
		cli_time(rows[i].valid_from, from, sizeof(from));
		cli_time(rows[i].valid_to, to, sizeof(to));
		/* Uses: "used/limit" for a limited token, "-" for none. */
		if (rows[i].max_uses > 0)
			snprintf(uses, sizeof(uses), "%ld/%ld", rows[i].uses, rows[i].max_uses);
		else
			snprintf(uses, sizeof(uses), "-");
		if (json)
			json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I,"
			    " s:I, s:o, s:o}", "type", rows[i].type, "id", rows[i].id, "valid_from", from,
			    "valid_to", to, "nbf", (json_int_t)rows[i].valid_from,
			    "exp", (json_int_t)rows[i].valid_to, "status", rows[i].status,
			    "devices", (json_int_t)rows[i].devices, "uses", (json_int_t)rows[i].uses,
			    "max_uses", rows[i].max_uses > 0 ? json_integer(rows[i].max_uses) :
			    json_null(), "sources", rows[i].sources[0] ?
			    json_string(rows[i].sources) : json_null()));
		else
			printf("%-24s %-40s %-20s %-20s %-8s %-7ld %s\n", rows[i].type, rows[i].id,
			    from, to, rows[i].status, rows[i].devices, uses);
	}
	if (json) {
		char *txt = json_dumps(arr, JSON_INDENT(2));
		printf("%s\n", txt);
		free(txt);
		json_decref(arr);
	}
	free(rows);
	return 0;
}

int
cmd_certs(int argc, char **argv)
{
	static const struct cli_sub subs[] = { { "list", certs_list, NULL }, { NULL, NULL, NULL } };

	return cli_sub_run("certs", subs, argc, argv,
	    "usage: certs list [--type site|bulk] [--sort COLUMN] [--json]");
}
