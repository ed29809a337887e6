/* sitetoken serve — run the MP and CMG listeners until SIGTERM/SIGINT. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "sitetoken/file.h"
#include "server.h"
#include "admin.h"
#include "cli.h"

static const char serve_usage[] =
"usage: sitetoken serve [--config FILE] [--site DIR] --tls-cert FILE --tls-key FILE\n"
"         [--mp ADDR:PORT] [--mp-tls] [--cmg ADDR:PORT] [--trusted-ca FILE]\n"
"         [--site-number N] [--threads N] [--pid-file FILE] [--ready-file FILE]\n"
"         [--tcti CONF] [--pkcs11-module PATH] [--admin ADDR:PORT [--admin-remote]]\n"
"         [--metrics ADDR:PORT [--metrics-remote]]\n"
"         [--tls-priority STRING]\n"
"  defaults: --mp 127.0.0.1:8080 --cmg 127.0.0.1:8443; port 0 picks a free\n"
"  port (written to --ready-file as mp_port=N / cmg_port=N once listening)\n"
"  --admin: the admin console (HTTPS, same certificate; admin_port=N in the\n"
"  ready file); loopback only unless --admin-remote. Its bearer secret is\n"
"  <site>/admin.token (see `sitetoken admin token`)\n"
"  --metrics: Prometheus metrics over plain HTTP at /metrics (metrics_port=N\n"
"  in the ready file); loopback only unless --metrics-remote\n"
"  --config FILE: 'name = value' lines, names as the long options\n"
"  (sitetoken serve --help)\n"
"  --tls-priority: GnuTLS priority string for every TLS listener; the default\n"
"  takes TLS 1.2 and 1.3 only, ECDHE key exchange and AEAD suites only";

/* The config file: one option a line, "name = value" or a bare "name" for a
 * flag ("name = yes|no" too), names as the long options, '#' comments. It
 * becomes "--name value" arguments placed before the command line's, so the
 * command line wins. Checked against the option table here, so a typo names
 * the file and line instead of surfacing as an unknown option. On success
 * *out_argv (free) points into *out_args (free) and argv. */
static int
serve_config(const char *file, const struct cli_opt *opts, int argc, char **argv,
    int *out_argc, char ***out_argv, char **out_args)
{
	struct stat st;
	const struct cli_opt *o;
	char *buf = NULL, *args = NULL, *p, *line, *next, *name, *val, *eq, *end;
	char **av = NULL;
	int n = 1, lineno = 0, i, r = EXIT_USAGE;
	size_t len;

	*out_argv = NULL;
	*out_args = NULL;
	if (stat(file, &st) != 0 || (buf = stk_file_read(file, 65536, NULL)) == NULL) {
		fprintf(stderr, "%s: cannot read config %s: %s\n", cli_prog, file,
		    strerror(errno));
		goto out;
	}
	/* Whoever can write the config can point the server at any key or
	 * file: refuse one that group or others may write. */
	if ((st.st_mode & 022) != 0) {
		fprintf(stderr, "%s: %s has mode %04o: a config file must not be "
		    "writable by group or others\n", cli_prog, file,
		    (unsigned int)(st.st_mode & 07777));
		goto out;
	}
	/* Each line of k bytes (newline included) yields at most k + 3 bytes
	 * ("--", two NULs), and at most two arguments. */
	len = strlen(buf);
	if ((args = malloc(3 * len + 16)) == NULL ||
	    (av = calloc((size_t)argc + len + 2, sizeof(*av))) == NULL) {
		fprintf(stderr, "%s: out of memory\n", cli_prog);
		r = EXIT_BACKEND;
		goto out;
	}
	p = args;
	av[0] = argv[0];
	for (line = buf; line != NULL; line = next) {
		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((eq = strchr(line, '#')) != NULL)
			*eq = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		end = line + strlen(line);
		while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = '\0';
		if (*line == '\0')
			continue;
		name = line;
		val = NULL;
		if ((eq = strchr(line, '=')) != NULL) {
			val = eq + 1;
			while (*val == ' ' || *val == '\t')
				val++;
			for (end = eq; end > name && (end[-1] == ' ' || end[-1] == '\t'); end--)
				;
			*end = '\0';
			if (strlen(val) >= 2 && val[0] == '"' && val[strlen(val) - 1] == '"') {
				val[strlen(val) - 1] = '\0';
				val++;
			}
		}
		for (o = opts; o->name != NULL; o++)
			if (strcmp(o->name, name) == 0)
				break;
		if (o->name == NULL || strcmp(o->name, "config") == 0) {
			fprintf(stderr, "%s: %s:%d: unknown option '%s' (names are the long "
			    "options of 'sitetoken serve --help', without --)\n", cli_prog,
			    file, lineno, name);
			goto out;
		}
		if (o->arg != NULL && (val == NULL || *val == '\0')) {
			fprintf(stderr, "%s: %s:%d: '%s' needs a value\n", cli_prog, file,
			    lineno, name);
			goto out;
		}
		if (o->arg == NULL && val != NULL) {
			if (strcmp(val, "no") == 0 || strcmp(val, "false") == 0 ||
			    strcmp(val, "off") == 0)
				continue;
			if (strcmp(val, "yes") != 0 && strcmp(val, "true") != 0 &&
			    strcmp(val, "on") != 0) {
				fprintf(stderr, "%s: %s:%d: '%s' is a flag: give no value, or "
				    "yes or no\n", cli_prog, file, lineno, name);
				goto out;
			}
		}
		av[n++] = p;
		p += sprintf(p, "--%s", name) + 1;
		if (o->arg != NULL) {
			av[n++] = p;
			p += sprintf(p, "%s", val) + 1;
		}
	}
	for (i = 1; i < argc; i++)
		av[n++] = argv[i];
	av[n] = NULL;
	*out_argc = n;
	*out_argv = av;
	*out_args = args;
	av = NULL;
	args = NULL;
	r = 0;
out:
	free(av);
	free(args);
	free(buf);
	return r;
}

static const char *serve_conf; /* --config FILE, as found before parsing */

/* serve's --site-number, --threads and --config, checked as they come. */
static int
serve_check(const struct cli_opt *o, const char *value)
{
	size_t i;

	/* --config was taken out first: here it is an abbreviation that scan missed. */
	if (strcmp(o->name, "config") == 0 && serve_conf == NULL)
		return cli_usage_error("spell out --config FILE");
	if (strcmp(o->name, "site-number") == 0) {
		for (i = 0; value[i]; i++)
			if (value[i] < '0' || value[i] > '9' || i > 30)
				break;
		if (i == 0 || value[i] != '\0')
			return cli_usage_error("--site-number takes digits");
	}
	if (strcmp(o->name, "threads") == 0 && (strtol(value, NULL, 10) < 1 ||
	    strtol(value, NULL, 10) > 64))
		return cli_usage_error("--threads must be 1 to 64");
	return 0;
}

int
cmd_serve(int argc, char **argv)
{
	struct srv_config cfg;
	struct stk_site *site = NULL;
	struct stk_key_opts ko;
	struct stk_error err;
	struct srv *srv = NULL;
	const char *dir = NULL, *cert = NULL, *key = NULL, *ca = NULL;
	const char *pidf = NULL, *readyf = NULL, *tcti = NULL, *mod = NULL;
	char *cert_pem = NULL, *key_pem = NULL, *ca_pem = NULL, buf[128];
	char **cargv = NULL, *cargs = NULL;
	const char *config = NULL, *config_opt = NULL, *threads = NULL;
	struct stat kst;
	sigset_t set;
	int r, sig = 0, rc;
	size_t i;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "mp", &cfg.mp_addr, NULL }, { "mp-tls", NULL, &cfg.mp_tls },
		{ "cmg", &cfg.cmg_addr, NULL }, { "tls-cert", &cert, NULL },
		{ "tls-key", &key, NULL }, { "trusted-ca", &ca, NULL },
		{ "site-number", &cfg.site_number, NULL }, { "threads", &threads, NULL },
		{ "pid-file", &pidf, NULL }, { "ready-file", &readyf, NULL },
		{ "tcti", &tcti, NULL }, { "pkcs11-module", &mod, NULL },
		{ "admin", &cfg.admin_addr, NULL }, { "admin-remote", NULL, &cfg.admin_remote },
		{ "metrics", &cfg.metrics_addr, NULL },
		{ "metrics-remote", NULL, &cfg.metrics_remote }, { "config", &config_opt, NULL },
		{ "tls-priority", &cfg.tls_priority, NULL }, { NULL, NULL, NULL }
	};

	memset(&cfg, 0, sizeof(cfg));
	cfg.mp_addr = "127.0.0.1:8080";
	cfg.cmg_addr = "127.0.0.1:8443";
	/* First, only --config: its lines go before the command line's. */
	for (i = 1; i < (size_t)argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < (size_t)argc)
			config = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			config = argv[i] + 9;
	}
	if (config != NULL) {
		if ((r = serve_config(config, opts, argc, argv, &argc, &cargv, &cargs)) != 0)
			return r;
		argv = cargv;
	}
	serve_conf = config;
	if ((rc = cli_opts_check(argc, argv, opts, serve_usage, serve_check)) != 0)
		goto out;
	if (threads != NULL)
		cfg.threads = (unsigned int)strtol(threads, NULL, 10);
	if (optind != argc) {
		rc = cli_usage_error("unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (cert == NULL || key == NULL) {
		rc = cli_usage_error("%s", serve_usage);
		goto out;
	}
	/* Like the file key backend: a TLS key others can read is refused. */
	if (stat(key, &kst) == 0 && (kst.st_mode & 077) != 0) {
		fprintf(stderr, "%s: %s has mode %04o: the TLS key must not be readable "
		    "by group or others (chmod 600)\n", cli_prog, key,
		    (unsigned int)(kst.st_mode & 07777));
		rc = EXIT_BACKEND;
		goto out;
	}
	if ((cert_pem = stk_file_read(cert, 65536, NULL)) == NULL ||
	    (key_pem = stk_file_read(key, 65536, NULL)) == NULL ||
	    (ca != NULL && (ca_pem = stk_file_read(ca, 262144, NULL)) == NULL)) {
		fprintf(stderr, "%s: cannot read %s: %s\n", cli_prog,
		    cert_pem == NULL ? cert : key_pem == NULL ? key : ca, strerror(errno));
		/* A file that cannot be read is an I/O failure (README: exit 3). */
		rc = EXIT_BACKEND;
		goto out;
	}
	cfg.tls_cert_pem = cert_pem;
	cfg.tls_key_pem = key_pem;
	cfg.trusted_ca_pem = ca_pem;
	if ((r = cli_open_site(dir, &site)) != 0) {
		rc = r;
		goto out;
	}
	cli_key_opts(&ko, tcti, mod);
	stk_site_set_key_opts(site, &ko);
	/* Block the stop signals before the listener threads exist, so they
	 * inherit the mask and only sigwait() below sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	stk_error_clear(&err);
	if ((r = srv_start(site, &cfg, &srv, &err)) != 0) {
		rc = cli_fail(&err, r);
		goto out;
	}
	if (pidf != NULL) {
		snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
		if (stk_file_write(pidf, buf, strlen(buf), 0644, &err) != 0)
			fprintf(stderr, "%s: %s\n", cli_prog, err.msg);
	}
	fprintf(stderr, "%s: site %s: MP on %s port %u, CMG on https port %u "
	    "(/CCM_Proxy_MutualAuth/%s/)\n", cli_prog, stk_site_guid(site),
	    cfg.mp_tls ? "https" : "http", srv_mp_port(srv), srv_cmg_port(srv),
	    cfg.site_number ? cfg.site_number : SRV_SITE_NUMBER_DEFAULT);
	if (cfg.admin_addr != NULL)
		fprintf(stderr, "%s: admin console on https port %u (secret: `sitetoken "
		    "admin token`)\n", cli_prog, srv_admin_port(srv));
	if (cfg.metrics_addr != NULL)
		fprintf(stderr, "%s: metrics on http port %u (/metrics)\n", cli_prog,
		    srv_metrics_port(srv));
	if (readyf != NULL) {
		snprintf(buf, sizeof(buf), "mp_port=%u\ncmg_port=%u\nadmin_port=%u\n"
		    "metrics_port=%u\n", srv_mp_port(srv), srv_cmg_port(srv),
		    srv_admin_port(srv), srv_metrics_port(srv));
		if (stk_file_write(readyf, buf, strlen(buf), 0644, &err) != 0)
			fprintf(stderr, "%s: %s\n", cli_prog, err.msg);
	}
	/* SIGHUP: reopen the logs (logrotate's postrotate sends it). */
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
		srv_logs_reopen();
	fprintf(stderr, "%s: signal %d: stopping\n", cli_prog, sig);
	srv_stop(srv);
	if (pidf != NULL)
		unlink(pidf);
	if (readyf != NULL)
		unlink(readyf);
	rc = 0;
out:
	stk_site_close(site);
	free(cert_pem);
	if (key_pem != NULL) {
		OPENSSL_cleanse(key_pem, strlen(key_pem));
		free(key_pem);
	}
	free(ca_pem);
	free(cargv);
	free(cargs);
	return rc;
}

static const char admin_usage[] = "usage: admin token [--rotate]\n"
    "  prints the admin console's bearer secret (<site>/admin.token, 0600),\n"
    "  making it on first use; --rotate replaces it (the old one stops\n"
    "  working at once, even in a running server)";

/* sitetoken admin token [--rotate]: print the admin console's bearer
 * secret, making it on first use. */
static int
admin_token(int argc, char **argv)
{
	struct stk_site *site = NULL;
	struct stk_error err;
	const char *dir = NULL;
	char secret[ADM_SECRET_LEN + 1];
	int r, rotate = 0, created = 0;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "rotate", NULL, &rotate }, { NULL, NULL, NULL }
	};

	if ((r = cli_opts_msg(argc, argv, opts, admin_usage)) != 0)
		return r;
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	/* Opening the site first checks that DIR is a site. */
	if ((r = cli_open_site(dir, &site)) != 0)
		return r;
	stk_error_clear(&err);
	if ((r = srv_admin_secret(stk_site_dir(site), rotate, secret, &created, &err)) != 0 ||
	    (created && (r = stk_audit_append(site, cli_actor(), "admin.secret",
	    ADM_SECRET_FILE, "ok", rotate ? "rotated" : "created", &err)) != 0)) {
		OPENSSL_cleanse(secret, sizeof(secret));
		stk_site_close(site);
		return cli_fail(&err, r);
	}
	if (created)
		fprintf(stderr, "%s: admin secret %s in %s/%s\n", cli_prog,
		    rotate ? "rotated" : "created", stk_site_dir(site), ADM_SECRET_FILE);
	printf("%s\n", secret);
	fflush(stdout);
	OPENSSL_cleanse(secret, sizeof(secret));
	stk_site_close(site);
	return 0;
}

int
cmd_admin(int argc, char **argv)
{
	static const struct cli_sub subs[] = { { "token", admin_token, NULL }, { NULL, NULL, NULL } };

	return cli_sub_run("admin", subs, argc, argv, admin_usage);
}
