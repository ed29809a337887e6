/* settings set|show, devices list|block|unblock (one, or by bulk token) */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "sitetoken/attest_policy.h"
#include "sitetoken/device.h"
#include "sitetoken/oidc.h"
#include "cli.h"

static int
settings_set(int argc, char **argv)
{
	struct stk_site *s;
	struct stk_error err;
	const char *dir = NULL, *dev = NULL, *name, *value;
	int r, allow = 0;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "device", &dev, NULL }, { NULL, NULL, NULL }
	};

	if ((r = cli_opts(argc, argv, opts)) != 0)
		return r;
	if (argc - optind != 2)
		return cli_sub_usage();
	name = argv[optind];
	value = argv[optind + 1];
	if (dev != NULL) {
		if (strcmp(name, STK_SETTING_ALLOW_CMG) != 0)
			return cli_usage_error("only allow-cmg has a per-device value");
		if (strcmp(value, "on") == 0)
			allow = 1;
		else if (strcmp(value, "off") == 0)
			allow = 0;
		else if (strcmp(value, "default") == 0)
			allow = -1;
		else
			return cli_usage_error("allow-cmg --device takes on, off or default");
		if (!stk_guid_valid(dev))
			return cli_usage_error("'%s' is not a device GUID", dev);
	} else if ((strcmp(name, STK_SETTING_ALLOW_CMG) != 0 &&
	    strcmp(name, STK_SETTING_INTERNAL_REG) != 0 &&
	    strcmp(name, STK_SETTING_REQUIRE_ATTESTATION) != 0) ||
	    (strcmp(value, "on") != 0 && strcmp(value, "off") != 0))
		return cli_usage_error("usage: settings set allow-cmg|internal-registration"
		    "|require-attestation on|off");
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	stk_error_clear(&err);
	if (dev != NULL)
		r = stk_device_set_allow_cmg(s, dev, allow, cli_actor(), &err);
	else
		r = stk_setting_set(s, name, value, cli_actor(), &err);
	stk_site_close(s);
	if (r != 0)
		return cli_fail(&err, r);
	printf("%s%s%s = %s\n", name, dev ? " for device " : "", dev ? dev : "", value);
	return 0;
}

static int
settings_show(int argc, char **argv)
{
	struct stk_site *s;
	struct stk_error err;
	const char *dir = NULL;
	int r, json = 0, cmg = 1, internal = 1, att = 0;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "json", NULL, &json }, { NULL, NULL, NULL }
	};

	if ((r = cli_opts(argc, argv, opts)) != 0)
		return r;
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	stk_error_clear(&err);
	if ((r = stk_setting_get_bool(s, STK_SETTING_ALLOW_CMG, 1, &cmg, &err)) != 0 ||
	    (r = stk_setting_get_bool(s, STK_SETTING_INTERNAL_REG, 1, &internal, &err)) != 0 ||
	    (r = stk_setting_get_bool(s, STK_SETTING_REQUIRE_ATTESTATION, 0, &att,
	    &err)) != 0) {
		stk_site_close(s);
		return cli_fail(&err, r);
	}
	stk_site_close(s);
	if (json)
		printf("{\"%s\": \"%s\", \"%s\": \"%s\", \"%s\": \"%s\"}\n",
		    STK_SETTING_ALLOW_CMG, cmg ? "on" : "off", STK_SETTING_INTERNAL_REG,
		    internal ? "on" : "off", STK_SETTING_REQUIRE_ATTESTATION, att ? "on" : "off");
	else
		printf("%-24s %s\n%-24s %s\n%-24s %s\n", STK_SETTING_ALLOW_CMG,
		    cmg ? "on" : "off", STK_SETTING_INTERNAL_REG, internal ? "on" : "off",
		    STK_SETTING_REQUIRE_ATTESTATION, att ? "on" : "off");
	return 0;
}

int
cmd_settings(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{ "set", settings_set, "usage: settings set allow-cmg on|off [--device GUID]"
		    " | settings set internal-registration on|off" },
		{ "show", settings_show, NULL },
		{ NULL, NULL, NULL }
	};

	return cli_sub_run("settings", subs, argc, argv,
	    "usage: settings set NAME on|off [--device GUID] | settings show");
}

struct dev_list_ctx {
	int json;
	json_t *arr;
	struct stk_site *s;
};

static int
dev_list_row(void *ctx, const struct stk_device *d)
{
	struct dev_list_ctx *lc = ctx;
	char reg[32], exp[32], att[8], ek[65];
	char oiss[STK_OIDC_ISSUER_MAX + 1], odev[STK_OIDC_CLAIM_MAX + 1];
	struct stk_error err;

	stk_error_clear(&err);
	if (stk_attest_device_get(lc->s, d->guid, att, sizeof(att), ek, sizeof(ek),
	    &err) != 0)
		return cli_fail(&err, STK_E_DB);
	if (lc->json && stk_oidc_device_identity(lc->s, d->guid, oiss, sizeof(oiss), odev,
	    sizeof(odev), &err) != 0)
		return cli_fail(&err, STK_E_DB);
	if (lc->json) {
		json_array_append_new(lc->arr, json_pack("{s:s, s:s, s:I, s:s, s:s?, s:b,"
		    " s:s, s:s, s:I, s:I, s:s, s:s?}", "guid", d->guid,
		    "cert_thumbprint", d->thumbprint,
		    "registered_at", (json_int_t)d->registered_at, "via", d->via,
		    "bulk_guid", d->bulk_guid[0] ? d->bulk_guid : NULL,
		    "blocked", d->blocked, "allow_cmg", d->allow_cmg < 0 ? "default" :
		    d->allow_cmg ? "on" : "off", "last_token_jti", d->last_jti,
		    "last_issued_at", (json_int_t)d->last_issued_at,
		    "token_exp", (json_int_t)d->token_exp, "attestation", att,
		    "ek_sha256", ek[0] ? ek : NULL));
		/* The OIDC identity it registered with (sitetoken oidc add). */
		json_object_set_new(json_array_get(lc->arr, json_array_size(lc->arr) - 1),
		    "oidc_issuer", oiss[0] ? json_string(oiss) : json_null());
		json_object_set_new(json_array_get(lc->arr, json_array_size(lc->arr) - 1),
		    "oidc_device", odev[0] ? json_string(odev) : json_null());
		return 0;
	}
	cli_time(d->registered_at, reg, sizeof(reg));
	cli_time(d->token_exp, exp, sizeof(exp));
	printf("%-36s  %-3s  %-20s  %-20s  %-7s  %-7s  %-4s\n", d->guid, d->via, reg,
	    exp, d->blocked ? "Blocked" : "Active", d->allow_cmg < 0 ? "default" :
	    d->allow_cmg ? "on" : "off", att);
	return 0;
}

/* devices list|block|unblock: argv[0] names it; block and unblock print one
 * line (no --json), and unblock takes no --bulk. */
static int
devices_run(int argc, char **argv)
{
	struct dev_list_ctx lc = { 0, NULL, NULL };
	struct stk_site *s;
	struct stk_error err;
	const char *dir = NULL, *bulk = NULL, *sub = argv[0];
	long n = 0;
	int r;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "json", NULL, &lc.json }, { "bulk", &bulk, NULL },
		{ NULL, NULL, NULL }
	}, block_opts[] = {
		{ "site", &dir, NULL }, { "bulk", &bulk, NULL }, { NULL, NULL, NULL }
	}, unblock_opts[] = { { "site", &dir, NULL }, { NULL, NULL, NULL } };

	if ((r = cli_opts(argc, argv, strcmp(sub, "list") == 0 ? opts :
	    strcmp(sub, "block") == 0 ? block_opts : unblock_opts)) != 0)
		return r;
	if (bulk != NULL && (!stk_guid_valid(bulk) || strcmp(sub, "unblock") == 0 ||
	    argc - optind != 0))
		return cli_usage_error("usage: devices list --bulk GUID | devices block --bulk "
		    "GUID (GUID of a bulk registration token)");
	if (strcmp(sub, "list") != 0 && bulk == NULL &&
	    (argc - optind != 1 || !stk_guid_valid(argv[optind])))
		return cli_usage_error("usage: devices %s GUID", sub);
	if ((r = cli_open_site(dir, &s)) != 0)
		return r;
	stk_error_clear(&err);
	lc.s = s;
	if (strcmp(sub, "list") == 0) {
		if (lc.json)
			lc.arr = json_array();
		else
			printf("%-36s  %-3s  %-20s  %-20s  %-7s  %-7s  %-4s\n", "Device GUID",
			    "Via", "Registered", "Token expires", "Status", "CMG", "Att");
		r = bulk != NULL ? stk_device_foreach_bulk(s, bulk, dev_list_row, &lc, &err) :
		    stk_device_foreach(s, dev_list_row, &lc, &err);
		if (r == 0 && lc.json) {
			char *txt = json_dumps(lc.arr, JSON_INDENT(2));

			printf("%s\n", txt ? txt : "[]");
			free(txt);
		}
		json_decref(lc.arr);
	} else if (bulk != NULL) {
		/* Every device a leaked bulk token ever enrolled (audited). */
		r = stk_device_block_bulk(s, bulk, cli_actor(), &n, &err);
		if (r == 0)
			printf("%ld device(s) enrolled with bulk token %s blocked\n", n, bulk);
	} else {
		r = stk_device_set_blocked(s, argv[optind], strcmp(sub, "block") == 0,
		    cli_actor(), &err);
		if (r == 0)
			printf("device %s %sed\n", argv[optind], sub);
	}
	stk_site_close(s);
	return r != 0 ? cli_fail(&err, r) : 0;
}

int
cmd_devices(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{ "list", devices_run, NULL }, { "block", devices_run, NULL },
		{ "unblock", devices_run, NULL }, { NULL, NULL, NULL }
	};

	return cli_sub_run("devices", subs, argc, argv, "usage: devices list [--json] "
	    "[--bulk GUID] | devices block|unblock GUID | devices block --bulk GUID");
}
