/* bulk new|block|unblock, certs list — shared with BulkRegistrationTokenTool */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include "sitetoken/bulklimits.h"
#include "sitetoken/device.h"
#include "sitetoken/token.h"
#include "cli.h"

enum { OPT_SITE = 256, OPT_LIFETIME, OPT_JSON, OPT_TYPE, OPT_SORT, OPT_MAX_USES,
	OPT_SOURCE };

int
bulk_new_print(const char *site_dir, const char *lifetime, const char *max_uses,
    const char *source, int json)
{
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
	if ((r = cli_open_site(site_dir, &s)) != 0)
		return r;
	if ((r = stk_bulk_new_limited(s, minutes, &lim, cli_actor(), &token, &rec,
	    &err)) != 0) {
		stk_site_close(s);
		return cli_fail(&err, r);
	}
	cli_time(rec.nbf, from, sizeof(from));
	cli_time(rec.exp, to, sizeof(to));
	if (json) {
		json_t *o = json_pack("{s:s, s:I, s:I, s:s, s:s, s:I, s:o, s:o, s:s}",
		    "guid", rec.guid, "nbf", (json_int_t)rec.nbf, "exp", (json_int_t)rec.exp,
		    "valid_from", from, "valid_to", to, "lifetime_minutes",
		    (json_int_t)minutes, "max_uses", lim.max_uses ?
		    json_integer(lim.max_uses) : json_null(), "sources", lim.sources[0] ?
		    json_string(lim.sources) : json_null(), "token", token);
		char *txt = json_dumps(o, JSON_INDENT(2));
		json_decref(o);
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
	}
	fflush(stdout);
	stk_token_free(token);
	stk_site_close(s);
	return 0;
}

static int
bulk_block(int argc, char **argv, int block)
{
	static const struct option opts[] = {
		{ "site", required_argument, NULL, OPT_SITE },
		{ NULL, 0, NULL, 0 }
	};
	struct stk_site *s;
	struct stk_error err;
	const char *dir = NULL;
	int c, r;

	optind = 1;
	while ((c = cli_getopt(argc, argv, opts)) != -1) {
		if (c == OPT_SITE)
			dir = optarg;
		else
			return cli_usage_error("bad option");
	}
	if (argc - optind != 1)
		return cli_usage_error("usage: bulk %s GUID", block ? "block" : "unblock");
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

int
cmd_bulk(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "site", required_argument, NULL, OPT_SITE },
		{ "lifetime", required_argument, NULL, OPT_LIFETIME },
		{ "max-uses", required_argument, NULL, OPT_MAX_USES },
		{ "source", required_argument, NULL, OPT_SOURCE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 }
	};
	const char *dir = NULL, *lifetime = NULL, *max_uses = NULL, *source = NULL;
	int c, json = 0;

	if (argc >= 2 && strcmp(argv[1], "block") == 0)
		return bulk_block(argc - 1, argv + 1, 1);
	if (argc >= 2 && strcmp(argv[1], "unblock") == 0)
		return bulk_block(argc - 1, argv + 1, 0);
	if (argc < 2 || strcmp(argv[1], "new") != 0)
		return cli_usage_error("usage: bulk new|block|unblock");
	argc--;
	argv++;
	optind = 1;
	while ((c = cli_getopt(argc, argv, opts)) != -1) {
		switch (c) {
		case OPT_SITE: dir = optarg; break;
		case OPT_LIFETIME: lifetime = optarg; break;
		case OPT_MAX_USES: max_uses = optarg; break;
		case OPT_SOURCE: source = optarg; break;
		case OPT_JSON: json = 1; break;
		default: return cli_usage_error("bad option for 'bulk new'");
		}
	}
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	return bulk_new_print(dir, lifetime, max_uses, source, json);
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
		return strcmp(type, "Bulk Registration Token") == 0;
	if (strcasecmp(want, "site") == 0)
		return strcmp(type, "Site Signing") == 0;
	return strcasecmp(want, type) == 0;
}

int
cmd_certs(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "site", required_argument, NULL, OPT_SITE },
		{ "type", required_argument, NULL, OPT_TYPE },
		{ "sort", required_argument, NULL, OPT_SORT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 }
	};
	static const char *const cols[] = { "type", "id", "from", "to", "status", "created",
	    "devices", "uses" };
	const char *dir = NULL, *type = NULL, *sort = NULL;
	struct stk_site *s;
	struct stk_cert_row *rows = NULL;
	struct stk_error err;
	size_t n, i;
	int c, json = 0, r;
	json_t *arr = NULL;

	if (argc < 2 || strcmp(argv[1], "list") != 0)
		return cli_usage_error("usage: certs list [--type site|bulk] [--sort COLUMN] [--json]");
	argc--;
	argv++;
	optind = 1;
	while ((c = cli_getopt(argc, argv, opts)) != -1) {
		switch (c) {
		case OPT_SITE: dir = optarg; break;
		case OPT_TYPE: type = optarg; break;
		case OPT_SORT: sort = optarg; break;
		case OPT_JSON: json = 1; break;
		default: return cli_usage_error("bad option for 'certs list'");
		}
	}
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (type != NULL && strcasecmp(type, "bulk") != 0 && strcasecmp(type, "site") != 0 &&
	    strcmp(type, "Bulk Registration Token") != 0 && strcmp(type, "Site Signing") != 0)
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
			    " s:I, s:o}", "type", rows[i].type, "id", rows[i].id, "valid_from", from,
			    "valid_to", to, "nbf", (json_int_t)rows[i].valid_from,
			    "exp", (json_int_t)rows[i].valid_to, "status", rows[i].status,
			    "devices", (json_int_t)rows[i].devices, "uses", (json_int_t)rows[i].uses,
			    "max_uses", rows[i].max_uses > 0 ? json_integer(rows[i].max_uses) :
			    json_null()));
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
