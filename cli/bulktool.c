/* BulkRegistrationTokenTool — the original syntax: /? /new /lifetime N,
 * and sitetoken's additions /maxuses N, /source CIDR[,CIDR], /json.
 * The site directory comes from $SITETOKEN_SITE (or /site DIR). */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "sitetoken/file.h"
#include "cli.h"

const char *cli_prog = "BulkRegistrationTokenTool";

static void
usage(FILE *fp)
{
	fputs("Usage: BulkRegistrationTokenTool.exe /new [/lifetime N] [/maxuses N]\n"
	    "           [/source CIDR[,CIDR]] [/json]\n"
	    "       BulkRegistrationTokenTool.exe /?\n\n"
	    "  /new          create a bulk registration token; prints its GUID, its\n"
	    "                validity period and the token (the token is not stored)\n"
	    "  /lifetime N   validity in minutes: default 4320 (3 days), 1 to 10080\n"
	    "  /maxuses N    at most N devices register with it (1 to 1000000)\n"
	    "  /source CIDR[,CIDR]  only registrations from these networks\n"
	    "  /json         print the GUID, validity, limits and token as JSON\n"
	    "  /site DIR     site directory (default: $SITETOKEN_SITE); also --site DIR\n"
	    "  /?, -h, --help  this help\n\n"
	    "Exit codes: 0 created, 2 usage error or a bad value (nothing created),\n"
	    "3 key backend, database or I/O error.\n", fp);
}

/* /name, -name or --name: the messages shared with sitetoken say "--site". */
static int
is_opt(const char *a, const char *name)
{
	if (a[0] == '-' && a[1] == '-')
		a++;
	return (a[0] == '/' || a[0] == '-') && strcasecmp(a + 1, name) == 0;
}

int
main(int argc, char **argv)
{
	const char *lifetime = NULL, *dir = NULL, *max_uses = NULL, *source = NULL;
	int i, do_new = 0, json = 0;

	/* It opens the site key: no core dump, not dumpable (attacker 5). */
	stk_process_harden();
	cli_log_to_stderr(0);
	cli_progress_install();
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	for (i = 1; i < argc; i++) {
		if (is_opt(argv[i], "?") || is_opt(argv[i], "help") || is_opt(argv[i], "h") ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (is_opt(argv[i], "new")) {
			do_new = 1;
		} else if (is_opt(argv[i], "lifetime") || strncasecmp(argv[i], "/lifetime:", 10) == 0) {
			if (argv[i][9] == ':')
				lifetime = argv[i] + 10;
			else if (i + 1 < argc)
				lifetime = argv[++i];
			else
				return cli_usage_error("/lifetime needs a number of minutes");
		} else if (is_opt(argv[i], "maxuses") || strncasecmp(argv[i], "/maxuses:", 9) == 0) {
			if (argv[i][8] == ':')
				max_uses = argv[i] + 9;
			else if (i + 1 < argc)
				max_uses = argv[++i];
			else
				return cli_usage_error("/maxuses needs a number of registrations");
		} else if (is_opt(argv[i], "source") || strncasecmp(argv[i], "/source:", 8) == 0) {
			if (argv[i][7] == ':')
				source = argv[i] + 8;
			else if (i + 1 < argc)
				source = argv[++i];
			else
				return cli_usage_error("/source needs CIDR[,CIDR]");
		} else if (is_opt(argv[i], "json")) {
			json = 1;
		} else if (is_opt(argv[i], "site") && i + 1 < argc) {
			dir = argv[++i];
		} else if (strncmp(argv[i], "--site=", 7) == 0) {
			dir = argv[i] + 7;
		} else
			return cli_usage_error("unknown argument '%s'", argv[i]);
	}
	if (!do_new)
		return cli_usage_error("/lifetime, /maxuses, /source and /json are used with /new");
	{
		struct bulk_new_opts o = { lifetime, max_uses, source, NULL, NULL, json, 0 };

		return bulk_new_print(dir, &o);
	}
}
