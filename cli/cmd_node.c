/* node add, key rotate, key list: several site nodes and key rotation. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

/* sitetoken node add --site DIR --db CONNINFO --db-schema NAME --node NAME
 *     [--backend B] [--key-type T] [--key-uri URI] [--pkcs11-module P] [--tcti C] */
static int
node_add(int argc, char **argv)
{
	struct stk_site_node_opts no;
	struct stk_site *s = NULL;
	struct stk_error err;
	const char *dir = NULL, *tcti = NULL, *mod = NULL, *type = NULL;
	struct stk_site_key_row *rows = NULL;
	char kid[64];
	size_t n = 0, i;
	int r, json = 0;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "db", &no.db, NULL }, { "db-schema", &no.db_schema, NULL },
		{ "node", &no.node, NULL }, { "backend", &no.backend, NULL },
		{ "key-type", &type, NULL }, { "key-uri", &no.key_uri, NULL },
		{ "pkcs11-uri", &no.key_uri, NULL }, { "pkcs11-module", &mod, NULL },
		{ "tcti", &tcti, NULL }, { "json", NULL, &json }, { NULL, NULL, NULL }
	};

	memset(&no, 0, sizeof(no));
	no.backend = "file";
	no.db = getenv("SITETOKEN_DB");
	no.db_schema = getenv("SITETOKEN_DB_SCHEMA");
	if ((r = cli_opts_check(argc, argv, opts, NULL, cli_check_key_type)) != 0)
		return r;
	if (type != NULL)
		no.key_type = stk_key_type_parse(type);
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (no.node == NULL)
		return cli_usage_error("node add needs --node NAME");
	if (no.db == NULL || no.db_schema == NULL)
		return cli_usage_error("node add needs --db CONNINFO and --db-schema NAME "
		    "(the db= and schema= lines of another node's site.conf)");
	if (stk_key_backend_find(no.backend) == NULL)
		return cli_usage_error("backend '%s' is not available", no.backend);
	if ((dir = cli_site_dir(dir)) == NULL)
		return EXIT_USAGE;
	cli_key_opts(&no.key, tcti, mod);
	no.actor = cli_actor();
	stk_error_clear(&err);
	r = stk_site_node_add(dir, &no, &s, &err);
	cli_progress_end();
	if (r != 0)
		return cli_fail(&err, r);
	kid[0] = '\0';
	if (stk_site_keys_list(s, &rows, &n, &err) == 0)
		for (i = 0; i < n; i++)
			if (rows[i].mine)
				snprintf(kid, sizeof(kid), "%s", rows[i].kid);
	free(rows);
	if (json)
		printf("{\"site\":\"%s\",\"node\":\"%s\",\"dir\":\"%s\",\"backend\":\"%s\","
		    "\"kid\":\"%s\"}\n", stk_site_guid(s), stk_site_node(s), dir,
		    stk_site_backend(s), kid);
	else
		printf("Node %s joined site %s in %s\nKey: %s %s (%s)\nKid: %s\n"
		    "Other nodes trust this key once one of them runs\n"
		    "  sitetoken key endorse --kid %s\n", stk_site_node(s), stk_site_guid(s),
		    dir, stk_site_backend(s), stk_key_type_name(stk_site_key_type(s)),
		    stk_site_key_uri(s), kid, kid);
	stk_site_close(s);
	return 0;
}

int
cmd_node(int argc, char **argv)
{
	static const struct cli_sub subs[] = { { "add", node_add, NULL }, { NULL, NULL, NULL } };

	return cli_sub_run("node", subs, argc, argv, "usage: node add");
}

/* sitetoken key rotate [--key-uri URI] [--key-type T] [--json] */
int
cmd_key_rotate(int argc, char **argv)
{
	struct stk_site *s = NULL;
	struct stk_error err;
	enum stk_key_type type = STK_KEY_NONE;
	const char *dir = NULL, *uri = NULL, *tname = NULL;
	char kid[64];
	int r, json = 0;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "key-type", &tname, NULL }, { "key-uri", &uri, NULL },
		{ "pkcs11-uri", &uri, NULL }, { "json", NULL, &json }, { NULL, NULL, NULL }
	};

	if ((r = cli_opts_check(argc, argv, opts, NULL, cli_check_key_type)) != 0)
		return r;
	if (tname != NULL)
		type = stk_key_type_parse(tname);
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	stk_error_clear(&err);
	if ((r = stk_site_key_rotate(s, uri, type, cli_actor(), kid, &err)) != 0) {
		stk_site_close(s);
		return cli_fail(&err, r);
	}
	if (json)
		printf("{\"node\":\"%s\",\"kid\":\"%s\",\"key_uri\":\"%s\"}\n",
		    stk_site_node(s), kid, stk_site_key_uri(s));
	else
		printf("Node %s now signs with key %s (%s)\nThe old key verifies "
		    "until its last token has expired, then retires.\n",
		    stk_site_node(s), kid, stk_site_key_uri(s));
	stk_site_close(s);
	return 0;
}

/* sitetoken key endorse --kid KID (or KID after "--": a kid may begin with
 * '-'): this node's key vouches for another node's key (compare KID with
 * `key list` on the node that owns it first). */
int
cmd_key_endorse(int argc, char **argv)
{
	struct stk_site *s = NULL;
	struct stk_error err;
	const char *dir = NULL, *kid = NULL;
	int r;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "kid", &kid, NULL }, { NULL, NULL, NULL }
	};

	if ((r = cli_opts(argc, argv, opts)) != 0)
		return r;
	if (kid == NULL && optind == argc - 1)
		kid = argv[optind++];
	if (kid == NULL || optind != argc)
		return cli_usage_error("usage: key endorse --kid KID");
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	stk_error_clear(&err);
	if ((r = stk_site_key_endorse(s, kid, cli_actor(), &err)) != 0) {
		stk_site_close(s);
		return cli_fail(&err, r);
	}
	printf("Key %s endorsed by this node's key: every node that trusts this one "
	    "now trusts it.\n", kid);
	stk_site_close(s);
	return 0;
}

/* sitetoken key list [--json] */
int
cmd_key_list(int argc, char **argv)
{
	struct stk_site *s = NULL;
	struct stk_site_key_row *rows = NULL;
	struct stk_error err;
	const char *dir = NULL;
	char t1[32], t2[32], t3[32];
	size_t n = 0, i, wnode = 4, wkid = 3;
	int r, json = 0;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "json", NULL, &json }, { NULL, NULL, NULL }
	};

	if ((r = cli_opts(argc, argv, opts)) != 0)
		return r;
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	stk_error_clear(&err);
	if ((r = stk_site_keys_list(s, &rows, &n, &err)) != 0) {
		stk_site_close(s);
		return cli_fail(&err, r);
	}
	/* Column widths from the longest value, so long node names align. */
	for (i = 0; i < n; i++) {
		if (strlen(rows[i].node) > wnode)
			wnode = strlen(rows[i].node);
		if (strlen(rows[i].kid) > wkid)
			wkid = strlen(rows[i].kid);
	}
	if (json)
		printf("[");
	else
		printf("%-*s  %-*s  %-8s  %-8s  %-20s  %-20s  %s\n", (int)wkid, "Kid",
		    (int)wnode, "Node", "Backend", "Status", "Created",
		    "Last token expires", "Verifies until at least");
	for (i = 0; i < n; i++) {
		cli_time(rows[i].created_at, t1, sizeof(t1));
		if (rows[i].retire_after)
			cli_time(rows[i].retire_after, t2, sizeof(t2));
		else
			snprintf(t2, sizeof(t2), "%s", strcmp(rows[i].status, "retired") == 0 ?
			    "-" : "(signing)");
		if (rows[i].max_exp > 0)
			cli_time(rows[i].max_exp, t3, sizeof(t3));
		else
			snprintf(t3, sizeof(t3), "%s", rows[i].max_exp == 0 ? "-" : "unknown");
		if (json)
			printf("%s{\"kid\":\"%s\",\"node\":\"%s\",\"backend\":\"%s\","
			    "\"key_type\":\"%s\",\"status\":\"%s\",\"created_at\":%lld,"
			    "\"not_after\":%lld,\"retired_at\":%lld,\"max_exp\":%lld,"
			    "\"retire_after\":%lld,\"this_node\":%s,\"trusted\":%s}",
			    i ? "," : "", rows[i].kid, rows[i].node, rows[i].backend,
			    rows[i].key_type, rows[i].status, (long long)rows[i].created_at,
			    (long long)rows[i].not_after, (long long)rows[i].retired_at,
			    (long long)rows[i].max_exp, (long long)rows[i].retire_after,
			    rows[i].mine ? "true" : "false", rows[i].trusted ? "true" : "false");
		else
			printf("%-*s  %-*s  %-8s  %-8s  %-20s  %-20s  %s%s%s\n", (int)wkid,
			    rows[i].kid, (int)wnode, rows[i].node, rows[i].backend,
			    rows[i].status, t1, t3, t2, rows[i].mine ? "  (this node)" : "",
			    rows[i].trusted ? "" : "  UNTRUSTED (no valid endorsement)");
	}
	if (json)
		printf("]\n");
	free(rows);
	stk_site_close(s);
	return 0;
}

/* sitetoken key retire [KID] [--json] | key restore KID: retirement by hand.
 * Without KID, retire what the store says is due (the server's housekeeping
 * does the same on its own). */
int
cmd_key_retire(int argc, char **argv, int restore)
{
	struct stk_site *s = NULL;
	struct stk_error err;
	const char *dir = NULL, *kid = NULL;
	char t[32];
	int64_t until = 0;
	size_t n = 0;
	int c, r, json = 0;

	/* By hand, not getopt: a kid is base64url and may start with '-'. */
	for (c = 1; c < argc; c++) {
		if (strcmp(argv[c], "--list-options") == 0) { /* as cli_getopt */
			printf("--site\n--json\n");
			return 0;
		}
		if (strcmp(argv[c], "--site") == 0 && c + 1 < argc)
			dir = argv[++c];
		else if (strncmp(argv[c], "--site=", 7) == 0)
			dir = argv[c] + 7;
		else if (strcmp(argv[c], "--json") == 0)
			json = 1;
		else if (strcmp(argv[c], "--") != 0 && kid == NULL &&
		    (argv[c][0] != '-' || argv[c][1] != '-'))
			kid = argv[c];
		else if (strcmp(argv[c], "--") != 0)
			return cli_usage_error("usage: key retire [KID] [--json] | key "
			    "restore KID ('%s'?)", argv[c]);
	}
	if (restore && kid == NULL)
		return cli_usage_error("usage: key restore KID (see `sitetoken key list`)");
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	stk_error_clear(&err);
	if (restore)
		r = stk_site_key_restore(s, kid, cli_actor(), &err);
	else if (kid != NULL)
		r = stk_site_key_retire(s, kid, cli_actor(), &until, &err);
	else
		r = stk_site_keys_retire_due(s, cli_actor(), &n, &err);
	if (r != 0) {
		stk_site_close(s);
		return cli_fail(&err, r);
	}
	if (json && kid != NULL)
		printf("{\"kid\":\"%s\",\"status\":\"%s\",\"tokens_valid_until\":%lld}\n",
		    kid, restore ? "retiring" : "retired", (long long)until);
	else if (json)
		printf("{\"retired\":%zu}\n", n);
	else if (restore)
		printf("Key %s restored: it verifies again until its tokens expire\n", kid);
	else if (kid != NULL) {
		printf("Key %s retired\n", kid);
		if (until != 0) {
			cli_time(until, t, sizeof(t));
			fprintf(stderr, "%s: warning: tokens it signed were valid until %s "
			    "and no longer verify (undo: sitetoken key restore %s)\n",
			    cli_prog, t, kid);
		}
	} else
		printf("%zu key(s) retired (the store says every token they signed "
		    "has expired)\n", n);
	stk_site_close(s);
	return 0;
}
