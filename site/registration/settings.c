/* The site's registration settings (STK_SETTING_*: CMG access, internal
 * registration, required attestation): a row per setting, "on" or "off". */
#include <stdio.h>
#include <string.h>
#include "sitetoken/attest_policy.h"
#include "sitetoken/device.h"
#include "site_int.h"

static int
setting_bool_row(struct site_stmt *st, void *value)
{
	*(int *)value = strcmp(db_column_text(st, 0), "on") == 0;
	return STK_OK;
}

int
stk_setting_get_bool(struct stk_site *s, const char *name, int default_on,
    int *value, struct stk_error *err)
{
	int r;

	*value = default_on;
	r = site_row_get(s, "SELECT value FROM settings WHERE name = ?", &name, 1,
	    "reading settings", setting_bool_row, value, err);
	return r == STK_E_NOTFOUND ? STK_OK : r;
}

int
stk_setting_set(struct stk_site *s, const char *name, const char *value,
    const char *actor, struct stk_error *err)
{
	struct site_stmt *st = NULL;
	int r, in_tx = 0;

	if (name == NULL || (strcmp(name, STK_SETTING_ALLOW_CMG) != 0 &&
	    strcmp(name, STK_SETTING_INTERNAL_REG) != 0 &&
	    strcmp(name, STK_SETTING_REQUIRE_ATTESTATION) != 0))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "unknown setting '%.40s' (known: %s, %s, %s)", name ? name : "",
		    STK_SETTING_ALLOW_CMG, STK_SETTING_INTERNAL_REG,
		    STK_SETTING_REQUIRE_ATTESTATION);
	if (value == NULL || (strcmp(value, "on") != 0 && strcmp(value, "off") != 0))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "setting %s takes 'on' or 'off'", name);
	if ((r = stk_site_tx_begin(s, err)) != 0)
		goto out;
	in_tx = 1;
	if (db_prepare(s->store, "INSERT INTO settings (name, value) VALUES (?, ?)"
	    " ON CONFLICT (name) DO UPDATE SET value = excluded.value", &st) != 0) {
		r = site_db_error(s, err, "writing settings");
		goto out;
	}
	if (db_bind_text(st, 1, name) != 0 ||
	    db_bind_text(st, 2, value) != 0 ||
	    db_step(st) != SITE_DB_DONE) {
		r = site_db_error(s, err, "writing settings");
		goto out;
	}
	db_finalize(st);
	st = NULL;
	if ((r = site_gw_bump(s, err)) != 0 ||
	    (r = stk_audit_append(s, actor, "setting.set", name, "ok", value, err)) != 0)
		goto out;
	in_tx = 0;
	r = stk_site_tx_commit(s, err);
out:
	db_finalize(st);
	if (in_tx)
		stk_site_tx_rollback(s);
	return r;
}
