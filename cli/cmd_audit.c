/* audit show|verify|checkpoint */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "sitetoken/log.h"
#include "cli.h"

static int
show_row(void *ctx, const struct stk_audit_record *r)
{
	json_t *arr = ctx;
	char at[32], actor[4 * sizeof(r->actor)], event[4 * sizeof(r->event)];
	char subject[4 * sizeof(r->subject)], outcome[4 * sizeof(r->outcome)];
	char detail[4 * sizeof(r->detail)];

	cli_time(r->at, at, sizeof(at));
	if (arr != NULL)
		json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s,"
		    " s:s, s:s, s:s}", "seq", (json_int_t)r->seq, "time", at, "actor",
		    r->actor, "event", r->event, "subject", r->subject, "outcome",
		    r->outcome, "detail", r->detail, "prev_hash", r->prev_hash, "hash",
		    r->hash, "ref", r->ref));
	else
		/* Records are stored escaped; a row written into the store by
		 * other means is escaped here, so no control byte reaches the
		 * terminal. */
		printf("%6lld  %s  %-12s %-16s %-38s %-10s %s\n", (long long)r->seq, at,
		    stk_escape(actor, sizeof(actor), r->actor, 0),
		    stk_escape(event, sizeof(event), r->event, 0),
		    stk_escape(subject, sizeof(subject), r->subject, 0),
		    stk_escape(outcome, sizeof(outcome), r->outcome, 0),
		    stk_escape(detail, sizeof(detail), r->detail, 0));
	return 0;
}

/* Every subcommand (and an unknown word, before its usage line) takes
 * --site and --json but checkpoint, which prints nothing to format. */
static int
audit_run(int argc, char **argv)
{
	const char *dir = NULL, *sub = argv[0];
	struct stk_site *s;
	struct stk_error err;
	struct stk_audit_report rep;
	int json = 0, r, rc = 0;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "json", NULL, &json }, { NULL, NULL, NULL }
	}, site_opts[] = { { "site", &dir, NULL }, { NULL, NULL, NULL } };

	if ((r = cli_opts_msg(argc, argv, strcmp(sub, "checkpoint") == 0 ? site_opts : opts,
	    "bad option for 'audit'")) != 0)
		return r;
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (strcmp(sub, "show") != 0 && strcmp(sub, "verify") != 0 &&
	    strcmp(sub, "checkpoint") != 0)
		return cli_usage_error("usage: audit show|verify|checkpoint");
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	stk_error_clear(&err);
	if (strcmp(sub, "show") == 0) {
		json_t *arr = json ? json_array() : NULL;
		r = stk_audit_foreach(s, show_row, arr, &err);
		if (r == 0 && arr != NULL) {
			/* ASCII only: no C1 control reaches the terminal raw. */
			char *txt = json_dumps(arr, JSON_INDENT(2) | JSON_ENSURE_ASCII);
			printf("%s\n", txt);
			free(txt);
		}
		json_decref(arr);
		rc = r ? cli_fail(&err, r) : 0;
	} else if (strcmp(sub, "checkpoint") == 0) {
		r = stk_audit_checkpoint(s, &err);
		rc = r ? cli_fail(&err, r) : 0;
		if (r == 0)
			printf("Audit checkpoint signed.\n");
	} else {
		r = stk_audit_verify(s, &rep, &err);
		cli_progress_end();
		if (r < 0)
			rc = cli_fail(&err, r);
		else if (json) {
			json_t *o = json_pack("{s:b, s:I, s:I, s:I, s:I, s:s, s:I, s:s, s:I, s:I}",
			    "intact", r == 0,
			    "records", (json_int_t)rep.records, "checkpoints",
			    (json_int_t)rep.checkpoints, "last_checkpoint",
			    (json_int_t)rep.last_checkpoint_seq, "first_bad_record",
			    (json_int_t)rep.bad_seq, "problem", rep.problem,
			    "anchor", (json_int_t)rep.anchor_seq, "anchor_note",
			    rep.anchor_note, "untrusted_keys", (json_int_t)rep.untrusted_keys,
			    "tpm_counter", (json_int_t)rep.tpm_counter);
			char *txt = json_dumps(o, JSON_INDENT(2));
			printf("%s\n", txt);
			free(txt);
			json_decref(o);
		} else if (r == 0) {
			printf("Audit log intact: %lld records, %lld signed checkpoints "
			    "(last at record %lld; %lld later records checked by chain only).\n",
			    (long long)rep.records, (long long)rep.checkpoints,
			    (long long)rep.last_checkpoint_seq,
			    (long long)(rep.records - rep.last_checkpoint_seq));
			if (rep.anchor_seq > 0)
				printf("Anchor (site directory): the log still holds the "
				    "checkpoint at record %lld.\n", (long long)rep.anchor_seq);
			else
				printf("Note: %s.\n", rep.anchor_note);
			if (rep.tpm_counter > 0)
				printf("TPM counter %lld: matches this node's newest checkpoint.\n",
				    (long long)rep.tpm_counter);
		}
		if (r >= 0 && rep.untrusted_keys > 0)
			fprintf(stderr, "%s: %lld site key row(s) have no valid endorsement "
			    "and are ignored (see 'key list')\n", cli_prog,
			    (long long)rep.untrusted_keys);
		if (r == 1) {
			fprintf(stderr, "%s: audit log TAMPERED: first bad record %lld: %s\n",
			    cli_prog, (long long)rep.bad_seq, rep.problem);
			rc = EXIT_INVALID;
		}
	}
	stk_site_close(s);
	return rc;
}

int
cmd_audit(int argc, char **argv)
{
	static const struct cli_sub subs[] = { { NULL, audit_run, NULL } };

	return cli_sub_run("audit", subs, argc, argv, "usage: audit show|verify|checkpoint");
}
