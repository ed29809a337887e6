/* The skeleton every command with subcommands repeated: pick the
 * subcommand from a table, loop over its options, complain in one voice
 * about a bad option or bad operands. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"

#define SUB_OPT_VAL 256   /* getopt values of a cli_opt table: 256 + index */
#define SUB_OPTS_MAX 24

static const struct cli_sub *sub_cur;   /* the subcommand running */
static char sub_path[64];               /* "oidc add": named by a bad option */

int
cli_sub_run(const char *cmd, const struct cli_sub *subs, int argc, char **argv,
    const char *usage)
{
	const struct cli_sub *sub;
	int r;

	for (sub = subs; argc >= 2 && sub->name != NULL; sub++)
		if (strcmp(argv[1], sub->name) == 0)
			break;
	if (argc >= 2 && (sub->name != NULL || sub->run != NULL)) {
		sub_cur = sub;
		snprintf(sub_path, sizeof(sub_path), "%s %s", cmd, argv[1]);
		r = sub->run(argc - 1, argv + 1);
	} else
		r = cli_usage_error("%s", usage);
	return r;
}

int
cli_sub_usage(void)
{
	return cli_usage_error("%s", sub_cur != NULL && sub_cur->usage != NULL ?
	    sub_cur->usage : "bad arguments");
}

int
cli_opts(int argc, char **argv, const struct cli_opt *opts)
{
	return cli_opts_check(argc, argv, opts, NULL, NULL);
}

int
cli_opts_msg(int argc, char **argv, const struct cli_opt *opts, const char *bad)
{
	return cli_opts_check(argc, argv, opts, bad, NULL);
}

int
cli_opts_check(int argc, char **argv, const struct cli_opt *opts, const char *bad,
    int (*check)(const struct cli_opt *o, const char *value))
{
	struct option lo[SUB_OPTS_MAX + 1];
	size_t i, n;
	int c, r = 0;

	memset(lo, 0, sizeof(lo));
	for (n = 0; n < SUB_OPTS_MAX && opts[n].name != NULL; n++) {
		lo[n].name = opts[n].name;
		lo[n].has_arg = opts[n].arg != NULL ? required_argument : no_argument;
		lo[n].val = SUB_OPT_VAL + (int)n;
	}
	optind = 1;
	while (r == 0 && (c = cli_getopt(argc, argv, lo)) != -1) {
		i = (size_t)(c - SUB_OPT_VAL);
		if ((c < SUB_OPT_VAL || i >= n) && bad != NULL)
			r = cli_usage_error("%s", bad);
		else if (c < SUB_OPT_VAL || i >= n)
			r = cli_usage_error("bad option for '%s'", sub_path);
		else if (opts[i].arg != NULL)
			*opts[i].arg = optarg;
		else if (opts[i].flag != NULL)
			*opts[i].flag = 1;
		if (r == 0 && check != NULL)
			r = check(&opts[i], opts[i].arg != NULL ? optarg : NULL);
	}
	return r;
}

int
cli_check_key_type(const struct cli_opt *o, const char *value)
{
	if (strcmp(o->name, "key-type") == 0 && stk_key_type_parse(value) == STK_KEY_NONE)
		return cli_usage_error("--key-type must be rsa2048, rsa3072 or p256");
	return 0;
}
