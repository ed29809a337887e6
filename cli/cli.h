/* Shared pieces of the sitetoken command-line tools. */
#ifndef SITETOKEN_CLI_H
#define SITETOKEN_CLI_H

#include <stdint.h>
#include <stdio.h>
#include "sitetoken/error.h"
#include "sitetoken/site.h"

/* Exit codes (documented in --help and README). */
#define EXIT_VALID 0
#define EXIT_INVALID 1   /* token refused, unknown GUID, tampered audit log */
#define EXIT_USAGE 2     /* bad command line or bad value */
#define EXIT_BACKEND 3   /* key backend, database or I/O failure */

#define CLI_FILE_MAX ((size_t)1 << 20) /* bytes of an input file (evidence, CA, PEM) */

extern const char *cli_prog;

int cli_exit_code(int rc);
/* Print "prog: message" to stderr and return the exit code for rc. */
int cli_fail(const struct stk_error *err, int rc);
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* --site DIR, else $SITETOKEN_SITE; NULL (with a message) if neither. */
const char *cli_site_dir(const char *opt);
int cli_open_site(const char *opt_dir, struct stk_site **out);
const char *cli_actor(void);
void cli_time(int64_t t, char *buf, size_t len); /* ISO 8601 UTC */
void cli_log_to_stderr(int verbose);
/* Read a token from arg, or stdin when arg is NULL or "-". Trailing
 * whitespace is dropped. *out malloc'd (wipe with stk_token_free). */
int cli_read_token(const char *arg, char **out, size_t *len);
/* Key options from --tcti / --pkcs11-module, falling back to env. */
void cli_key_opts(struct stk_key_opts *o, const char *tcti, const char *module);

/* cli/help.c: per-command help (one table) and the getopt wrapper every
 * command uses, so `CMD SUB --list-options` prints its option table. */
struct option;
int cli_help_wanted(int argc, char **argv); /* -h or --help among argv[1..] */
int cli_help_print(int argc, char **argv);  /* argv[0] = command */
void cli_help_list(void);                   /* every command path, one a line */
int cli_getopt(int argc, char **argv, const struct option *opts);
/* cli/sub.c: a command's subcommands as one table, and the option loop each
 * repeated. The CLI runs one command per process: the subcommand running
 * is remembered for cli_opts' and cli_sub_usage's messages. */
struct cli_sub {
	const char *name;                   /* the word after the command */
	int (*run)(int argc, char **argv);  /* argv[0] = name */
	const char *usage;                  /* its usage line (cli_sub_usage), or NULL */
};
/* Runs the subcommand argv[1] names, or prints usage: EXIT_USAGE. subs ends
 * with a NULL name; a run set there takes any other word (argv[0] = it). */
int cli_sub_run(const char *cmd, const struct cli_sub *subs, int argc, char **argv,
    const char *usage);
/* The running subcommand's usage line on stderr; EXIT_USAGE. */
int cli_sub_usage(void);
/* A subcommand's options: --name VALUE sets *arg, --name (arg NULL) sets
 * *flag to 1. Ends with a NULL name. */
struct cli_opt {
	const char *name;
	const char **arg;
	int *flag;
};
/* Parses argv with cli_getopt (--list-options lists opts in order); 0 with
 * optind at the first operand, or EXIT_USAGE after "bad option for 'CMD
 * SUB'". */
int cli_opts(int argc, char **argv, const struct cli_opt *opts);
/* The same, but a bad option prints bad (a command's own wording) instead. */
int cli_opts_msg(int argc, char **argv, const struct cli_opt *opts, const char *bad);
/* And check (when not NULL) sees each option as it comes (value NULL for a
 * flag): a bad value stops there, with check's exit code, before any later
 * bad option is looked at. */
int cli_opts_check(int argc, char **argv, const struct cli_opt *opts, const char *bad,
    int (*check)(const struct cli_opt *o, const char *value));
/* A check for --key-type: rsa2048, rsa3072 or p256. */
int cli_check_key_type(const struct cli_opt *o, const char *value);
/* cli/progress.c: progress on stderr, only when stderr is a terminal (quiet in scripts).
 * cli_progress(label, done, total) redraws one line; total 0 = unknown.
 * cli_progress_end() ends the line. */
void cli_progress(const char *label, long long done, long long total);
void cli_progress_end(void);
void cli_progress_install(void); /* the library's stk_progress() -> here */

int cmd_site(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_issue(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_bulk(int argc, char **argv);
int cmd_certs(int argc, char **argv);
int cmd_audit(int argc, char **argv);
/* cli/cmd_node.c: several nodes, key rotation */
int cmd_node(int argc, char **argv);
int cmd_key_rotate(int argc, char **argv);
int cmd_key_list(int argc, char **argv);
/* cli/cmd_attest.c: key attestation */
int cmd_key_attest(int argc, char **argv);
int cmd_key_activate(int argc, char **argv);
int cmd_attest(int argc, char **argv);
int cmd_key_retire(int argc, char **argv, int restore);
int cmd_key_endorse(int argc, char **argv);
/* cli/cmd_oidc.c: trusted OIDC issuers */
int cmd_oidc(int argc, char **argv);

/* bulk new, shared by `sitetoken bulk new` and BulkRegistrationTokenTool. */
/* bulk new's options as given (NULL: not given). tls_cert: the gateway's
 * TLS certificate (chain) file, for the install line's /cahash: pin;
 * cmg: the gateway URL for that line. */
struct bulk_new_opts {
	const char *lifetime, *max_uses, *source, *tls_cert, *cmg;
	int json;
	int require_att;    /* --require-attestation (site/registration/attest_policy.c) */
};
int bulk_new_print(const char *site_dir, const struct bulk_new_opts *o);

#endif
