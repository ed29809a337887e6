/* Shared by the pkcs11 unit tests: a throw-away SoftHSM token made by
 * swtpm-setup/softhsm-token.sh, and direct access to the module's function
 * list for what the tests check behind the backend's back. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test_pkcs11_token.h"
#include "testutil.h"

#ifndef STK_SOURCE_DIR
#error STK_SOURCE_DIR must name the source tree
#endif

/* Run the script and put its `export NAME=VALUE` lines into our
 * environment. Values are plain paths or labels (no quoting needed for the
 * ones we make). */
int
p11t_token_setup(const char *label, char **dir)
{
	char cmd[PATH_MAX * 2], line[PATH_MAX + 64], *eq, *name;
	FILE *p;
	int n = 0;

	*dir = tu_tmpdir("softhsm");
	snprintf(cmd, sizeof(cmd), "bash '%s/swtpm-setup/softhsm-token.sh' "
	    "'%s/t' '%s'", STK_SOURCE_DIR, *dir, label);
	if ((p = popen(cmd, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), p) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "export ", 7) != 0 ||
		    (eq = strchr(line + 7, '=')) == NULL)
			continue;
		*eq = '\0';
		name = line + 7;
		setenv(name, eq + 1, 1);
		n++;
	}
	if (pclose(p) != 0 || n < 3)
		return -1;
	unsetenv("SITETOKEN_PKCS11_PIN");
	return 0;
}

void
p11t_token_cleanup(char *dir)
{
	if (dir == NULL)
		return;
	tu_rmrf(dir);
	free(dir);
}

static void *p11t_dl;
static CK_FUNCTION_LIST *p11t_list;
static int p11t_we_initialized;

/* The module's function list, initialised. The module is the same loaded
 * instance the backend uses, so this shares its login state: that is the
 * point for the lost-session test, and why we finalize only what we
 * initialised. */
CK_FUNCTION_LIST *
p11t_fl(void)
{
	CK_RV (*getfl)(CK_FUNCTION_LIST_PTR_PTR);
	CK_C_INITIALIZE_ARGS args;
	CK_RV rv;

	if (p11t_list != NULL)
		return p11t_list;
	if ((p11t_dl = dlopen(getenv("SITETOKEN_PKCS11_MODULE"), RTLD_NOW)) == NULL)
		return NULL;
	*(void **)(&getfl) = dlsym(p11t_dl, "C_GetFunctionList");
	if (getfl == NULL || getfl(&p11t_list) != CKR_OK)
		return NULL;
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = p11t_list->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED)
		return NULL;
	p11t_we_initialized = rv == CKR_OK;
	return p11t_list;
}

void
p11t_fl_release(void)
{
	if (p11t_list != NULL && p11t_we_initialized)
		p11t_list->C_Finalize(NULL);
	if (p11t_dl != NULL)
		dlclose(p11t_dl);
	p11t_list = NULL;
	p11t_dl = NULL;
	p11t_we_initialized = 0;
}

int
p11t_slot(CK_FUNCTION_LIST *fl, const char *label, CK_SLOT_ID *slot)
{
	CK_SLOT_ID ids[16];
	CK_ULONG n = 16, i;
	CK_TOKEN_INFO ti;
	size_t len = strlen(label);

	if (fl->C_GetSlotList(CK_TRUE, ids, &n) != CKR_OK)
		return -1;
	for (i = 0; i < n; i++) {
		if (fl->C_GetTokenInfo(ids[i], &ti) != CKR_OK)
			continue;
		/* Labels are blank-padded to 32 bytes. */
		if (memcmp(ti.label, label, len) == 0 &&
		    (len == sizeof(ti.label) || ti.label[len] == ' ')) {
			*slot = ids[i];
			return 0;
		}
	}
	return -1;
}

int
p11t_pin(char *buf, size_t len)
{
	FILE *f = fopen(getenv("SITETOKEN_PKCS11_PIN_FILE"), "r");

	if (f == NULL || fgets(buf, (int)len, f) == NULL) {
		if (f != NULL)
			fclose(f);
		return -1;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}
