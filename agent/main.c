/* sitetoken-agent — the device side: install/register, renew, run, status. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "sitetoken/file.h"
#include "sitetoken/token.h"
#include "agent.h"

static const char usage_text[] =
"Usage: sitetoken-agent [--state DIR] [--ca FILE] [--renew-days N]\n"
"         [--key file|tpm|pkcs11:URI] [--tcti CONF] [--clock-offset SECONDS]\n"
"         COMMAND [OPTIONS]\n"
"       sitetoken-agent COMMAND --help\n"
"\n"
"  install /mp:URL CCMHOSTNAME=HOST/PATH SMSSiteCode=ABC [/cahash:sha256:HEX]\n"
"          [/regtoken:TOKEN|- | /idtoken:-]\n"
"                      seed-style install: register through the cloud gateway\n"
"                      with a bulk registration token. Prefer /regtoken:- (stdin)\n"
"                      or SITETOKEN_REGTOKEN: argv is visible to other users.\n"
"  register --mp URL [--cmg URL] [--regtoken-file FILE | --regtoken-stdin |\n"
"          --id-token-file FILE] [--ca-hash sha256:HEX]\n"
"                      register with the MP (internal network), or through the\n"
"                      CMG when --cmg and a bulk token or an OIDC ID token\n"
"                      (--id-token-file, '-' for stdin) are given\n"
"  renew [--force]     renew the client token through the CMG when due (or\n"
"                      re-key instead when the certificate is due)\n"
"  rekey [--force]     new device key and certificate, the token moved to them\n"
"                      through the CMG (proof with the old and the new key),\n"
"                      when the certificate expires within --rekey-days\n"
"  run [--once] [--interval SECONDS]\n"
"                      renew whenever the token is older than --renew-days,\n"
"                      re-key whenever the certificate is due\n"
"  policy              authenticated request through the CMG (prints the reply)\n"
"  status [--json]     device GUID, token age and expiry\n"
"  attest --nonce HEX [--out FILE]\n"
"                      key attestation evidence (SPEC.md) that the device key\n"
"                      is in this device's TPM (--key tpm only), over the\n"
"                      verifier's nonce; checked with `sitetoken attest verify`\n"
"                      against device.crt (docs/attestation.md)\n"
"  activate-credential --in CRED\n"
"                      TPM2_ActivateCredential of the verifier's challenge\n"
"                      (`sitetoken attest challenge`); prints the secret\n"
"\n"
"Device key (chosen when it is first made, then kept): --key file (default:\n"
"device.key, 0600), --key tpm (made inside the device's TPM, fixedTPM and\n"
"fixedParent; the state keeps only its loadable blob device.tpmkey; TPM from\n"
"--tcti CONF or $SITETOKEN_TCTI, e.g. swtpm:host=127.0.0.1,port=2321 or\n"
"device:/dev/tpmrm0), --key pkcs11:URI (generated non-extractable in the\n"
"token; module from module-path= or $SITETOKEN_PKCS11_MODULE; the PIN from\n"
"$SITETOKEN_PKCS11_PIN, $SITETOKEN_PKCS11_PIN_FILE or pin-source=file:PATH,\n"
"never argv). A held key's URI is kept in device.keyref; TLS client\n"
"authentication and the self-signed certificate are signed inside the device.\n"
"\n"
"Options: --renew-days N (default 30), --rekey-days N (default 60). State: --state DIR or\n"
"$SITETOKEN_AGENT_STATE (0700; device.key 0600, device.crt, client.token 0600,\n"
"state.json, ccmsetup.log, ClientIDManagerStartup.log). The bulk token is\n"
"never written to disk. --clock-offset / $SITETOKEN_TIME_OFFSET: tests only.\n"
"\n"
"Gateway pin: /cahash:sha256:HEX or --ca-hash sha256:HEX (in the install\n"
"line `sitetoken bulk new` prints): the server is trusted when its chain\n"
"holds a certificate whose SubjectPublicKeyInfo has that SHA-256; no --ca is\n"
"needed, and nothing is sent to a server that fails it. The pin is kept in\n"
"state.json and replaces --ca for later renewals.\n"
"\n"
"Exit codes: 0 done, 1 refused by the server (reason on stderr), 2 usage (also\n"
"--key contradicting the state directory, attest without a TPM key), 3 network,\n"
"TLS, I/O, state, TPM or token error.\n";

/* Per-command help: one entry per command. Global options are in
 * usage_text; tests/integration/cli_help.sh checks the two against the
 * options this file parses. */
static const struct {
	const char *cmd, *text;
} agent_helps[] = {
	{ "install",
"usage: sitetoken-agent [GLOBAL OPTIONS] install /mp:URL CCMHOSTNAME=HOST/PATH\n"
"         SMSSiteCode=ABC [/cahash:sha256:HEX] [/regtoken:TOKEN|/regtoken:-|\n"
"         /idtoken:-]\n\n"
"Seed-style install: register through the cloud gateway with a bulk\n"
"registration token. /regtoken:- reads it from standard input; without\n"
"/regtoken it comes from $SITETOKEN_REGTOKEN (argv is visible to others).\n""/idtoken:- registers with an OIDC ID token read from standard input\n"
"instead (the site must trust its issuer: sitetoken oidc add).\n"
"A device key in a TPM with an EK certificate registers attested (evidence\n"
"over the gateway's nonce, credential activation; docs/api.md); if the\n"
"gateway refuses that, the plain registration follows and the site's\n"
"require-attestation policy decides.\n"

"/cahash:sha256:HEX trusts the gateway whose certificate chain holds a\n"
"certificate with that SHA-256 of its SubjectPublicKeyInfo (no --ca needed).\n" },
	{ "register",
"usage: sitetoken-agent [GLOBAL OPTIONS] register --mp URL [--cmg URL]\n"
"         [--regtoken-file FILE | --regtoken-stdin | --id-token-file FILE]\n"
"         [--ca-hash sha256:HEX]\n\n"
"Register with the management point on the internal network, or through\n"
"the cloud gateway when --cmg and a bulk registration token are given\n"
"(attested, as for install, when the key is in a TPM with an EK certificate).\n\n"
"  --mp URL             the management point\n"
"  --cmg URL            the cloud gateway\n"
"  --regtoken-file FILE read the bulk token from FILE ('-': stdin)\n"
"  --regtoken-stdin     read the bulk token from standard input\n""  --id-token-file FILE register with an OIDC ID token from FILE ('-': stdin)\n"
"                       in place of a bulk token (never logged or stored)\n"
"  --ca-hash sha256:HEX trust the server whose chain holds a certificate with\n"
"                       this SHA-256 of its SubjectPublicKeyInfo (kept for renewals)\n" },
	{ "renew",
"usage: sitetoken-agent [GLOBAL OPTIONS] renew [--force]\n\n"
"Renew the client token through the gateway when it is due.\n\n"
"  --force              renew now, even if not due\n" },
	{ "run",
"usage: sitetoken-agent [GLOBAL OPTIONS] run [--once] [--interval SECONDS]\n\n"
"Stay running and renew whenever the token is older than --renew-days.\n\n"
"  --once               check once and exit (for a systemd timer)\n"
"  --interval SECONDS   time between checks (default 3600)\n" },
	{ "policy",
"usage: sitetoken-agent [GLOBAL OPTIONS] policy\n\n"
"Make an authenticated request through the gateway and print the reply.\n" },
	{ "status",
"usage: sitetoken-agent [GLOBAL OPTIONS] status [--json]\n\n"
"Print the device GUID, the token's age and expiry (exit 1: not registered).\n\n"
"  --json               print as JSON\n" },
	{ "rekey",
"usage: sitetoken-agent [GLOBAL OPTIONS] rekey [--force]\n\n"
"Make a new device key and certificate and move the client token to them\n"
"through the gateway (proof of possession of the old and the new key), when\n"
"the certificate expires within --rekey-days (run and renew do it too).\n"
"A key held in a TPM or PKCS#11 token is not re-keyed yet.\n\n"
"  --force              re-key now, even if not due\n" },
	{ "attest",
"usage: sitetoken-agent [GLOBAL OPTIONS] attest --nonce HEX [--out FILE]\n\n"
"Key attestation evidence (SPEC.md) that the device key is in this device's\n"
"TPM (--key tpm only), over the verifier's nonce.\n\n"
"  --nonce HEX          the verifier's nonce\n"
"  --out FILE           write the evidence to FILE (else standard output)\n" },
	{ "activate-credential",
"usage: sitetoken-agent [GLOBAL OPTIONS] activate-credential --in CRED\n\n"
"TPM2_ActivateCredential of the verifier's challenge (sitetoken attest\n"
"challenge); prints the secret as lower-case hex.\n\n"
"  --in CRED            the credential file\n" },
};

static int
agent_help(int argc, char **argv)
{
	size_t i;
	int j;

	for (j = 1; j < argc; j++)
		if (strcmp(argv[j], "-h") == 0 || strcmp(argv[j], "--help") == 0)
			break;
	if (j == argc)
		return -1;
	for (i = 0; i < sizeof(agent_helps) / sizeof(agent_helps[0]); i++)
		if (strcmp(agent_helps[i].cmd, argv[0]) == 0) {
			printf("%s\nGlobal options: --state DIR, --ca FILE, --renew-days N,\n"
			    "--rekey-days N, --key file|tpm|pkcs11:URI, --tcti CONF,\n"
			    "--clock-offset SECONDS\n"
			    "(see 'sitetoken-agent --help').\n"
			    "  -h, --help           this help\n", agent_helps[i].text);
			return 0;
		}
	fputs(usage_text, stdout);
	return 0;
}

static volatile sig_atomic_t agent_stop;

static void
on_signal(int sig)
{
	(void)sig;
	agent_stop = 1;
}

/* with_bulk: the refused request carried a bulk registration token (a
 * registration), so an expired token is that one, not the client token. */
static int
agent_fail(const struct stk_error *err, int r, enum stk_refusal reason, int with_bulk)
{
	fprintf(stderr, "sitetoken-agent: %s\n", err->msg[0] ? err->msg : "failed");
	if (with_bulk && reason == STK_REFUSAL_TOKEN_EXPIRED)
		fprintf(stderr, "sitetoken-agent: the bulk registration token expired: ask "
		    "the site administrator for a new one (sitetoken bulk new)\n");
	else if (reason == STK_REFUSAL_IDTOKEN_EXPIRED)
		fprintf(stderr, "sitetoken-agent: the ID token expired: get a fresh one from "
		    "the identity provider\n");
	else if (reason == STK_REFUSAL_TOKEN_EXPIRED)
		fprintf(stderr, "sitetoken-agent: the client token expired: register again "
		    "with the management point on the internal network "
		    "(sitetoken-agent register --mp URL)\n");
	if (r == STK_E_AUTH && reason != STK_REFUSAL_NONE)
		return stk_refusal_exit(reason);
	if (r == STK_E_ARG)
		return AGENT_EXIT_USAGE;
	return AGENT_EXIT_ERROR;
}

static int
usage_error(const char *msg)
{
	fprintf(stderr, "sitetoken-agent: %s\nTry 'sitetoken-agent --help'.\n", msg);
	return AGENT_EXIT_USAGE;
}

/* A bulk token from a file, stdin ("-") or the environment; NULL if none. */
static char *
read_bulk(const char *file, int from_stdin)
{
	char *buf = NULL, *env;
	size_t n = 0;
	FILE *fp = NULL;

	if (file != NULL)
		fp = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
	else if (from_stdin)
		fp = stdin;
	if (fp != NULL) {
		if ((buf = malloc((size_t)STK_TOKEN_MAX * 2 + 1)) != NULL) {
			n = fread(buf, 1, (size_t)STK_TOKEN_MAX * 2, fp);
			buf[n] = '\0';
		}
		if (fp != stdin)
			fclose(fp);
	} else if (file == NULL && (env = getenv("SITETOKEN_REGTOKEN")) != NULL &&
	    *env != '\0') {
		buf = strdup(env);
		n = buf ? strlen(buf) : 0;
	}
	while (buf != NULL && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
	    buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (buf != NULL && n == 0) {
		free(buf);
		buf = NULL;
	}
	return buf;
}

static int
cmd_install(struct agent *a, int argc, char **argv)
{
	struct stk_error err;
	struct agent_install in;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	char ts[32], *idtok = NULL;
	int r, rc;

	stk_error_clear(&err);
	if (agent_install_parse(argc, argv, &in, &err) != 0)
		return usage_error(err.msg);
	if (in.idtoken_stdin) {
		/* /idtoken:- : the ID token comes from stdin, never argv or env. */
		if ((idtok = read_bulk("-", 1)) == NULL) {
			agent_install_clear(&in);
			return usage_error("/idtoken:- found no ID token on standard input");
		}
		a->id_token = idtok;
	} else if (in.bulk == NULL)
		in.bulk = read_bulk(in.bulk_stdin ? "-" : NULL, in.bulk_stdin);
	if (in.code != NULL)
		snprintf(a->st.site_code, sizeof(a->st.site_code), "%s", in.code);
	if (in.cahash != NULL)
		a->ca_hash = in.cahash;
	agent_log(a, AGENT_LOG_SETUP, "ccmsetup", "ccmsetup started: /mp:%s CCMHOSTNAME=%s "
	    "SMSSiteCode=%s %s:%s", in.mp ? in.mp : "-", in.host ? in.host : "-",
	    in.code ? in.code : "-", idtok ? "/idtoken" : "/regtoken",
	    in.bulk || idtok ? "(hidden)" : "(none)");
	if (in.bulk == NULL && idtok == NULL) {
		agent_log(a, AGENT_LOG_SETUP, "ccmsetup", "No bulk registration token: "
		    "an internet install needs /regtoken");
		agent_install_clear(&in);
		return usage_error("internet install needs a bulk registration token "
		    "(/regtoken:-, or SITETOKEN_REGTOKEN)");
	}
	r = agent_register(a, NULL, in.cmg, in.bulk, &reason, &err);
	agent_install_clear(&in);
	a->id_token = NULL;
	agent_free_secret(idtok);
	if (r != 0) {
		agent_log(a, AGENT_LOG_SETUP, "ccmsetup", "Installation failed: %s", err.msg);
		rc = agent_fail(&err, r, reason, 1);
		return rc;
	}
	agent_log(a, AGENT_LOG_SETUP, "ccmsetup", "Installation succeeded: device %s "
	    "registered through the cloud gateway", a->st.device_guid);
	printf("installed: device %s registered through %s (token valid until %s)\n",
	    a->st.device_guid, a->st.cmg, agent_time(a->st.expires_at, ts, sizeof(ts)));
	return 0;
}

static int
cmd_register(struct agent *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mp", required_argument, NULL, 'm' },
		{ "cmg", required_argument, NULL, 'c' },
		{ "regtoken-file", required_argument, NULL, 'f' },
		{ "regtoken-stdin", no_argument, NULL, 's' },
		{ "ca-hash", required_argument, NULL, 'p' },
		{ "id-token-file", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 }
	};
	struct stk_error err;
	const char *mp = NULL, *cmg = NULL, *file = NULL, *idfile = NULL;
	char *bulk = NULL, *idtok = NULL, ts[32];
	enum stk_refusal reason = STK_REFUSAL_NONE;
	int c, r, rc, from_stdin = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm': mp = optarg; break;
		case 'c': cmg = optarg; break;
		case 'f': file = optarg; break;
		case 's': from_stdin = 1; break;
		case 'p': a->ca_hash = optarg; break;
		case 'i': idfile = optarg; break;
		default: return usage_error("bad option for 'register'");
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument (the bulk token is read from "
		    "--regtoken-file, --regtoken-stdin or SITETOKEN_REGTOKEN)");
	if (mp == NULL && cmg == NULL)
		return usage_error("register needs --mp URL (and --cmg URL for the gateway)");
	stk_error_clear(&err);
	if (a->ca_hash != NULL) {
		unsigned char pin[32];

		if (agent_pin_parse(a->ca_hash, pin, &err) != 0)
			return usage_error(err.msg);
	}
	if (idfile != NULL) {
		/* An ID token replaces the bulk token; never from argv or env. */
		if (file != NULL || from_stdin)
			return usage_error("give a bulk token or an ID token, not both");
		if ((idtok = read_bulk(idfile, 0)) == NULL)
			return usage_error("no ID token in the given --id-token-file");
		a->id_token = idtok;
	} else {
		bulk = read_bulk(file, from_stdin);
		if ((file != NULL || from_stdin) && bulk == NULL)
			return usage_error("no bulk registration token in the given file or stdin");
	}
	if (mp == NULL && bulk == NULL && idtok == NULL) {
		agent_free_secret(idtok);
		return usage_error("registration through the CMG needs a bulk token or an "
		    "ID token");
	}
	stk_error_clear(&err);
	r = agent_register(a, mp, cmg, bulk, &reason, &err);
	a->id_token = NULL;
	if (r != 0) {
		rc = agent_fail(&err, r, reason, bulk != NULL || idtok != NULL);
		agent_free_secret(bulk);
		agent_free_secret(idtok);
		return rc;
	}
	agent_free_secret(bulk);
	agent_free_secret(idtok);
	printf("registered: device %s via %s (token jti %s valid until %s)\n",
	    a->st.device_guid, a->st.via, a->st.jti,
	    agent_time(a->st.expires_at, ts, sizeof(ts)));
	return 0;
}

static int do_rekey(struct agent *a, int force);

static int
do_renew(struct agent *a, int force)
{
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	char ts[32];
	int r, rc;

	/* A certificate about to expire: re-key, which also renews. */
	if (a->have_state && a->st.cmg[0] && agent_rekey_due(a))
		return do_rekey(a, 1);
	if (!force && a->have_state && !agent_renew_due(a)) {
		printf("renewal not due: token is %lld days old (renews at %d days)\n",
		    (long long)((agent_now(a) - a->st.issued_at) / 86400), a->renew_days);
		return 0;
	}
	stk_error_clear(&err);
	if ((r = agent_renew(a, &reason, &err)) != 0) {
		rc = agent_fail(&err, r, reason, 0);
		return rc;
	}
	printf("renewed: device %s, token jti %s valid until %s\n", a->st.device_guid,
	    a->st.jti, agent_time(a->st.expires_at, ts, sizeof(ts)));
	return 0;
}

static int
do_rekey(struct agent *a, int force)
{
	struct stk_error err;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	char ts[32];
	int r;

	if (!force && !agent_rekey_due(a)) {
		printf("re-key not due: the certificate expires in more than %d days\n",
		    a->rekey_days);
		return 0;
	}
	stk_error_clear(&err);
	if ((r = agent_rekey(a, &reason, &err)) != 0)
		return agent_fail(&err, r, reason, 0);
	printf("re-keyed: device %s, new certificate, token jti %s valid until %s\n",
	    a->st.device_guid, a->st.jti, agent_time(a->st.expires_at, ts, sizeof(ts)));
	return 0;
}

static int
cmd_rekey(struct agent *a, int argc, char **argv)
{
	int force = 0, i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0)
			force = 1;
		else
			return usage_error("usage: rekey [--force]");
	}
	return do_rekey(a, force);
}

static int
cmd_renew(struct agent *a, int argc, char **argv)
{
	int force = 0, i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0)
			force = 1;
		else
			return usage_error("usage: renew [--force]");
	}
	return do_renew(a, force);
}

static int
cmd_run(struct agent *a, int argc, char **argv)
{
	long interval = 3600;
	int once = 0, i, rc = 0;
	char *end;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--once") == 0)
			once = 1;
		else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
			interval = strtol(argv[++i], &end, 10);
			if (*end != '\0' || interval < 1)
				return usage_error("--interval takes seconds >= 1");
		} else
			return usage_error("usage: run [--once] [--interval SECONDS]");
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while (!agent_stop) {
		rc = do_renew(a, 0);
		fflush(stdout);
		if (once)
			break;
		for (i = 0; i < interval && !agent_stop; i++)
			sleep(1);
	}
	return rc;
}

static int
cmd_policy(struct agent *a)
{
	struct stk_error err;
	char *body = NULL;
	enum stk_refusal reason = STK_REFUSAL_NONE;
	int r, rc;

	stk_error_clear(&err);
	if ((r = agent_policy(a, &body, &reason, &err)) != 0) {
		rc = agent_fail(&err, r, reason, 0);
		return rc;
	}
	printf("%s\n", body);
	free(body);
	return 0;
}

static int
cmd_status(struct agent *a, int argc, char **argv)
{
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;
	int64_t now = agent_now(a);
	int64_t age = a->have_state && now > a->st.issued_at ? now - a->st.issued_at : 0;

	if (!a->have_state) {
		printf(json ? "{\"registered\": false}\n" : "not registered\n");
		return 1;
	}
	if (json) {
		printf("{\"registered\": true, \"device_guid\": \"%s\", \"via\": \"%s\", "
		    "\"jti\": \"%s\", \"issued_at\": %lld, \"expires_at\": %lld, "
		    "\"age_days\": %lld, \"renew_due\": %s, \"expired\": %s, "
		    "\"cmg\": \"%s\", \"mp\": \"%s\"}\n", a->st.device_guid, a->st.via,
		    a->st.jti, (long long)a->st.issued_at, (long long)a->st.expires_at,
		    (long long)(age / 86400),
		    agent_renew_due(a) ? "true" : "false",
		    now >= a->st.expires_at ? "true" : "false", a->st.cmg, a->st.mp);
		return 0;
	}
	printf("device:        %s (registered via %s)\n", a->st.device_guid, a->st.via);
	/* A clock behind the issue time (or a token past its expiry) must not
	 * read as "-3 days old" or "expires in -2 days". */
	if (now >= a->st.expires_at)
		printf("client token:  jti %s, %lld days old, expired %lld days ago "
		    "(EXPIRED: register on the internal network)\n", a->st.jti,
		    (long long)(age / 86400), (long long)((now - a->st.expires_at) / 86400));
	else
		printf("client token:  jti %s, %lld days old, expires in %lld days%s\n",
		    a->st.jti, (long long)(age / 86400),
		    (long long)((a->st.expires_at - now) / 86400),
		    agent_renew_due(a) ? " (renewal due)" : "");
	printf("gateway:       %s\nmanagement pt: %s\n", a->st.cmg[0] ? a->st.cmg : "-",
	    a->st.mp[0] ? a->st.mp : "-");
	return 0;
}

static int
cmd_attest(struct agent *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "nonce", required_argument, NULL, 'n' },
		{ "out", required_argument, NULL, 'o' },
		{ "in", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 }
	};
	struct stk_error err;
	const char *nonce = NULL, *out = NULL, *in = NULL;
	int c, r, activate = strcmp(argv[0], "activate-credential") == 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n': nonce = optarg; break;
		case 'o': out = optarg; break;
		case 'i': in = optarg; break;
		default: return usage_error("bad option for 'attest'");
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument");
	if (activate ? in == NULL || nonce != NULL || out != NULL :
	    nonce == NULL || in != NULL)
		return usage_error(activate ? "usage: activate-credential --in CRED" :
		    "usage: attest --nonce HEX [--out FILE]");
	stk_error_clear(&err);
	r = activate ? agent_activate_credential(a, in, &err) :
	    agent_attest(a, nonce, out, &err);
	if (r != 0) {
		fprintf(stderr, "sitetoken-agent: %s\n", err.msg);
		return r == STK_E_ARG || r == STK_E_UNSUPPORTED ? AGENT_EXIT_USAGE :
		    AGENT_EXIT_ERROR;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct agent a;
	struct stk_error err;
	const char *state = getenv("SITETOKEN_AGENT_STATE"), *off = getenv("SITETOKEN_TIME_OFFSET");
	const char *key_spec = NULL, *tcti = NULL;
	char *end;
	int i, rc;

	memset(&a, 0, sizeof(a));
	/* The device key and the client token live here: no core dump, not
	 * dumpable (attacker 5). */
	stk_process_harden();
	a.renew_days = AGENT_RENEW_DAYS_DEFAULT;
	a.rekey_days = AGENT_REKEY_DAYS_DEFAULT;
	if (off != NULL && *off != '\0')
		a.clock_offset = strtoll(off, NULL, 10);
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		} else if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
			state = argv[++i];
		else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
			a.ca_file = argv[++i];
		else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
			key_spec = argv[++i];
		else if (strcmp(argv[i], "--tcti") == 0 && i + 1 < argc)
			tcti = argv[++i];
		else if (strcmp(argv[i], "--clock-offset") == 0 && i + 1 < argc) {
			a.clock_offset = strtoll(argv[++i], &end, 10);
			if (*end != '\0')
				return usage_error("--clock-offset takes seconds");
		} else if (strcmp(argv[i], "--renew-days") == 0 && i + 1 < argc) {
			a.renew_days = (int)strtol(argv[++i], &end, 10);
			if (*end != '\0' || a.renew_days < 1 || a.renew_days > 89)
				return usage_error("--renew-days takes 1 to 89");
		} else if (strcmp(argv[i], "--rekey-days") == 0 && i + 1 < argc) {
			a.rekey_days = (int)strtol(argv[++i], &end, 10);
			if (*end != '\0' || a.rekey_days < 1 || a.rekey_days > 3650)
				return usage_error("--rekey-days takes 1 to 3650");
		} else
			return usage_error("unknown option");
	}
	if (i >= argc) {
		fputs(usage_text, stderr);
		return AGENT_EXIT_USAGE;
	}
	/* `sitetoken-agent COMMAND --help`: before the state directory is needed. */
	if ((rc = agent_help(argc - i, argv + i)) >= 0)
		return rc;
	if (state == NULL || *state == '\0')
		return usage_error("no state directory: give --state DIR or set "
		    "SITETOKEN_AGENT_STATE");
	argc -= i;
	argv += i;
	stk_error_clear(&err);
	if (agent_devkey_configure(&a, key_spec, tcti, &err) != 0)
		return usage_error(err.msg);
	if (agent_open(&a, state, &err) != 0) {
		fprintf(stderr, "sitetoken-agent: %s\n", err.msg);
		agent_close(&a);
		return AGENT_EXIT_ERROR;
	}
	agent_http_global(1);
	if (strcmp(argv[0], "install") == 0)
		rc = cmd_install(&a, argc, argv);
	else if (strcmp(argv[0], "register") == 0)
		rc = cmd_register(&a, argc, argv);
	else if (strcmp(argv[0], "renew") == 0)
		rc = cmd_renew(&a, argc, argv);
	else if (strcmp(argv[0], "rekey") == 0)
		rc = cmd_rekey(&a, argc, argv);
	else if (strcmp(argv[0], "run") == 0)
		rc = cmd_run(&a, argc, argv);
	else if (strcmp(argv[0], "policy") == 0)
		rc = cmd_policy(&a);
	else if (strcmp(argv[0], "status") == 0)
		rc = cmd_status(&a, argc, argv);
	else if (strcmp(argv[0], "attest") == 0 ||
	    strcmp(argv[0], "activate-credential") == 0)
		rc = cmd_attest(&a, argc, argv);
	else
		rc = usage_error("unknown command");
	agent_http_global(0);
	agent_close(&a);
	return rc;
}
