#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "sitetoken/log.h"
#include "sitetoken/token.h"
#include "cli.h"

int
cli_exit_code(int rc)
{
	if (rc == 0)
		return EXIT_VALID;
	if (rc == STK_E_ARG)
		return EXIT_USAGE;
	if (rc <= STK_E_TOKEN_SIZE || rc == STK_E_NOTFOUND || rc == STK_E_EXISTS)
		return EXIT_INVALID;
	return EXIT_BACKEND;
}

int
cli_fail(const struct stk_error *err, int rc)
{
	if (err != NULL && err->msg[0] != '\0')
		fprintf(stderr, "%s: %s\n", cli_prog, err->msg);
	else
		fprintf(stderr, "%s: %s\n", cli_prog, stk_strerror(rc));
	/* A token, object or handle the device does not have is a backend
	 * failure (exit 3), not an unknown record the user asked about. */
	if (rc == STK_E_NOTFOUND && err != NULL &&
	    (err->layer == STK_LAYER_PKCS11 || err->layer == STK_LAYER_TSS2))
		return EXIT_BACKEND;
	return cli_exit_code(rc);
}

int
cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", cli_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help'.\n", cli_prog);
	return EXIT_USAGE;
}

const char *
cli_site_dir(const char *opt)
{
	const char *d = opt ? opt : getenv("SITETOKEN_SITE");

	if (d == NULL || *d == '\0') {
		cli_usage_error("no site directory: give --site DIR or set SITETOKEN_SITE");
		return NULL;
	}
	return d;
}

int
cli_open_site(const char *opt_dir, struct stk_site **out)
{
	struct stk_error err;
	struct stk_key_opts ko;
	const char *dir = cli_site_dir(opt_dir);
	int r;

	*out = NULL;
	if (dir == NULL)
		return EXIT_USAGE;
	stk_error_clear(&err);
	r = stk_site_open(dir, out, &err);
	cli_progress_end(); /* schema migrations */
	if (r != 0) {
		fprintf(stderr, "%s: %s\n", cli_prog, err.msg);
		return r == STK_E_NOTFOUND ? EXIT_USAGE : EXIT_BACKEND;
	}
	cli_key_opts(&ko, NULL, NULL);
	stk_site_set_key_opts(*out, &ko);
	return 0;
}

void
cli_key_opts(struct stk_key_opts *o, const char *tcti, const char *module)
{
	memset(o, 0, sizeof(*o));
	o->tcti = tcti ? tcti : getenv("SITETOKEN_TCTI");
	o->module_path = module ? module : getenv("SITETOKEN_PKCS11_MODULE");
}

const char *
cli_actor(void)
{
	const char *u = getenv("SUDO_USER");
	struct passwd *pw;

	if (u != NULL && *u != '\0')
		return u;
	if ((pw = getpwuid(geteuid())) != NULL)
		return pw->pw_name;
	return "admin";
}

void
cli_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
log_stderr(void *ctx, enum stk_log_level level, const char *component,
    const char *func, int line, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };

	(void)ctx;
	if (level == STK_LOG_DEBUG)
		fprintf(stderr, "%s: %s: [%s %s:%d] %s\n", cli_prog, names[level],
		    component, func, line, msg);
	else
		fprintf(stderr, "%s: %s: %s\n", cli_prog, names[level], msg);
}

void
cli_log_to_stderr(int verbose)
{
	stk_log_set(log_stderr, NULL, verbose > 1 ? STK_LOG_DEBUG :
	    verbose ? STK_LOG_INFO : STK_LOG_WARN);
}

int
cli_read_token(const char *arg, char **out, size_t *len)
{
	/* Read a little past the limit so an oversized token is reported as
	 * such by the verifier rather than truncated here. */
	size_t cap = (size_t)STK_TOKEN_MAX * 4, n = 0;
	char *buf;

	*out = NULL;
	*len = 0;
	if (arg != NULL && strcmp(arg, "-") != 0) {
		if ((buf = strdup(arg)) == NULL)
			return STK_E_NOMEM;
		n = strlen(buf);
	} else {
		if ((buf = malloc(cap + 1)) == NULL)
			return STK_E_NOMEM;
		n = fread(buf, 1, cap, stdin);
		buf[n] = '\0';
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
	    buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}
