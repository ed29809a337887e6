/* sitetoken — administrator CLI. Thin: parse, call the library, print. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include "sitetoken/file.h"
#include "cli.h"

/* Registration service commands (cli/cmd_serve.c, cli/cmd_settings.c). */
int cmd_serve(int argc, char **argv);
int cmd_settings(int argc, char **argv);
int cmd_devices(int argc, char **argv);
int cmd_admin(int argc, char **argv); /* cli/cmd_serve.c */

const char *cli_prog = "sitetoken";

static const char usage_text[] =
"Usage: sitetoken [--site DIR] COMMAND [ARGS]\n"
"       sitetoken COMMAND [SUBCOMMAND] --help   options of one command\n"
"\n"
"Hardware-backed signed tokens for device registration.\n"
"The site directory comes from --site DIR or $SITETOKEN_SITE.\n"
"\n"
"Site and key:\n"
"  site init [--backend file|pkcs11|tpm] [--key-type rsa2048|rsa3072|p256]\n"
"            [--key-uri URI] [--pkcs11-uri URI] [--pkcs11-module PATH]\n"
"            [--tcti CONF]          make the site key, certificate and database\n"
"            [--db CONNINFO [--db-schema NAME]]  PostgreSQL instead of SQLite\n"
"                                   (or $SITETOKEN_DB; no password in it)\n"
"  site show [--json]               site GUID, backend, certificate\n"
"  key show [--json]                backend, key type, x5t, kid, and the key's\n"
"                                   protection attributes read from the device\n"
"  key export [--jwks] [--out FILE] public key as PEM (default) or JWKS\n"
"  key rotate [--key-uri URI] [--key-type TYPE]  new key for this node; the\n"
"                                   old one verifies until its tokens expire;\n"
"                                   --key-uri is required on pkcs11 (file and\n"
"                                   tpm: a new file in the site directory)\n"
"  key list [--json]                every site key: node, status, kid\n"
"  key attest --nonce HEX [--out FILE] [--key-uri URI] [--tcti CONF]\n"
"                                   TPM key attestation evidence (JSON): EK\n"
"                                   certificate and chain, AK, TPM2_Certify of\n"
"                                   the key over the auditor's nonce\n"
"  key activate-credential [--in FILE]  TPM2_ActivateCredential of a\n"
"                                   tpm2_makecredential file; prints the secret\n"
"  key retire [KID] [--json]        retire the retiring keys whose tokens the\n"
"                                   store says have all expired (or KID now)\n"
"  key restore KID                  undo a retirement (audited)\n"
"  key endorse --kid KID            this node's key vouches for another\n"
"                                   node's key (after node add); a key row\n"
"                                   nobody trusted endorsed is ignored\n"
"  node add --node NAME --db CONNINFO --db-schema NAME [--backend ...]\n"
"                                   join a PostgreSQL site from another node\n"
"                                   with this node's own key\n"
"\n"
"Tokens:\n"
"  issue --type bulk [--lifetime MINUTES] [--json]\n"
"                                   same as 'bulk new'\n"
"  verify [--type bulk|client] [--cert FILE | --jwks FILE] [--leeway SECONDS]\n"
"         [--json] [TOKEN|-]        verify against the site's public keys and\n"
"                                   print the claims; reads stdin without TOKEN\n"
"                                   (preferred: argv is visible to other users);\n"
"                                   on a site also the gateway's verdict;\n"
"                                   --cert/--jwks: offline, with those keys\n"
"\n"
"Bulk registration tokens:\n"
"  bulk new [--lifetime MINUTES] [--max-uses N] [--source CIDR[,CIDR]]\n"
"           [--require-attestation] [--tls-cert FILE [--cmg URL]] [--json]\n"
"                                   default 4320 (3 days), 1 to 10080 (7 days);\n"
"                                   use limit, networks, attestation, install\n"
"                                   line with the gateway's pin\n"
"  bulk block GUID | bulk unblock GUID\n"
"  certs list [--type TYPE] [--sort COLUMN] [--json]\n"
"                                   site certificates and bulk tokens; TYPE is\n"
"                                   'site' or 'bulk'; COLUMN one of type, id,\n"
"                                   from, to, status, created, devices, uses (prefix\n"
"                                   '-' to sort descending)\n"
"\n"
"Registration service (MP + cloud gateway):\n"
"  serve [--config FILE] --tls-cert FILE --tls-key FILE [--mp ADDR:PORT] [--mp-tls]\n"
"        [--cmg ADDR:PORT] [--trusted-ca FILE] [--site-number N]\n"
"        [--pid-file FILE] [--ready-file FILE] [--tls-priority STRING]\n"
"        [--admin ADDR:PORT]        run the MP and CMG until SIGTERM; --admin\n"
"                                   adds the admin console (HTTPS, loopback)\n"
"  admin token [--rotate]           print (make, or replace) the admin\n"
"                                   console's bearer secret\n"
"  settings set allow-cmg on|off [--device GUID]\n"
"  settings set internal-registration on|off\n"
"  settings set require-attestation on|off  refuse unattested registrations\n"
"  settings show [--json]           client settings (site defaults)\n"
"  devices list [--json] [--bulk GUID] | devices block GUID | devices unblock GUID\n"
"  devices block --bulk GUID        block every device a bulk token ever enrolled\n"
"  oidc add --issuer URL --jwks FILE|URL --audience AUD [--device-claim NAME]\n"
"           [--tenant TID] [--jwks-ca FILE]  trust an OIDC issuer's ID tokens\n"
"                                   as a registration credential\n"
"  oidc list [--json] | oidc remove --issuer URL\n""\n"
"Key attestation, the auditor's side (offline: no TPM, no site):\n"
"  attest verify EVIDENCE --ek-ca ROOT.pem --nonce HEX [--cert site.crt]\n"
"         [--secret HEX --challenge CRED] [--json]  check every point of the\n"
"                                   evidence; exit 1 with the reason if one fails\n"
"  attest challenge EVIDENCE --out CRED  credential for the evidence's AK,\n"
"                                   to its EK (tpm2_makecredential format);\n"
"                                   the expected secret goes to CRED.secret\n"
"  attest roots add|remove FILE | attest roots list [--json]\n"
"                                   manufacturer roots trusted for device EKs\n"
"\n"
"Audit log:\n"
"  audit show [--json]              every record of the hash-chained log\n"
"  audit verify [--json]            check the chain, the checkpoints (by trusted\n"
"                                   keys, none missing), the anchor file and\n"
"                                   the TPM counter\n"
"  audit checkpoint                 sign a checkpoint over the chain head now\n"
"\n"
"Environment:\n"
"  SITETOKEN_SITE           site directory\n"
"  SITETOKEN_TCTI           TPM TCTI, e.g. swtpm:host=127.0.0.1,port=2321\n"
"  SITETOKEN_PKCS11_PIN     HSM user PIN (never give a PIN on the command line)\n"
"  SITETOKEN_PKCS11_PIN_FILE  file holding the HSM user PIN (mode 0600)\n"
"  SITETOKEN_PKCS11_MODULE  PKCS#11 module path\n"
"  SITETOKEN_TPM_KEY_AUTH, SITETOKEN_TPM_KEY_AUTH_FILE  TPM key auth value\n"
"  SITETOKEN_DB             PostgreSQL connection string for site init\n"
"  SITETOKEN_TIME_OFFSET    shift the clock by N seconds (tests only)\n"
"  TSS2_LOG                 tpm2-tss diagnostics (default here: all+none)\n"
"\n"
"Exit codes:\n"
"  0  success (token valid)\n"
"  1  token refused, unknown GUID, audit log tampered, or attestation\n"
"     evidence refused (reason on stderr)\n"
"  2  usage error or bad value (nothing was changed)\n"
"  3  key backend, database or I/O error\n";

int
main(int argc, char **argv)
{
	int i;

	/* Commands open the site key, PIN files, the TLS key: no core dump
	 * and no ptrace by other processes of this user (attacker 5). */
	stk_process_harden();
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--list-commands") == 0) {
			cli_help_list(); /* for the help test and bash completion */
			return 0;
		}
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("sitetoken 0.1.0 (%s)\n", OpenSSL_version(OPENSSL_VERSION));
			return 0;
		}
		if (argv[i][0] != '-')
			break;
	}
	if (argc < 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	/* Global --site DIR before the command: turn it into the env var the
	 * commands read, so each command also accepts --site itself. */
	i = 1;
	while (i < argc && strncmp(argv[i], "--site", 6) == 0) {
		if (strcmp(argv[i], "--site") == 0 && i + 1 < argc) {
			setenv("SITETOKEN_SITE", argv[i + 1], 1);
			i += 2;
		} else if (strncmp(argv[i], "--site=", 7) == 0) {
			setenv("SITETOKEN_SITE", argv[i] + 7, 1);
			i++;
		} else
			return cli_usage_error("--site needs a directory");
	}
	if (i >= argc)
		return cli_usage_error("no command given");
	argc -= i;
	argv += i;
	/* `sitetoken COMMAND [SUB] ... --help`: that command's help, on stdout. */
	if (cli_help_wanted(argc, argv))
		return cli_help_print(argc, argv);
	/* tpm2-tss prints its own WARNING/ERROR lines on every TPM error,
	 * before our message says what happened; quiet unless asked. */
	if (getenv("TSS2_LOG") == NULL)
		setenv("TSS2_LOG", "all+none", 1);
	cli_log_to_stderr(0);
	cli_progress_install();
	if (strcmp(argv[0], "site") == 0)
		return cmd_site(argc, argv);
	if (strcmp(argv[0], "key") == 0)
		return cmd_key(argc, argv);
	if (strcmp(argv[0], "node") == 0)
		return cmd_node(argc, argv);
	if (strcmp(argv[0], "issue") == 0)
		return cmd_issue(argc, argv);
	if (strcmp(argv[0], "verify") == 0)
		return cmd_verify(argc, argv);
	if (strcmp(argv[0], "bulk") == 0)
		return cmd_bulk(argc, argv);
	if (strcmp(argv[0], "certs") == 0)
		return cmd_certs(argc, argv);
	if (strcmp(argv[0], "audit") == 0)
		return cmd_audit(argc, argv);
	if (strcmp(argv[0], "attest") == 0)
		return cmd_attest(argc, argv);
	if (strcmp(argv[0], "serve") == 0)
		return cmd_serve(argc, argv);
	if (strcmp(argv[0], "settings") == 0)
		return cmd_settings(argc, argv);
	if (strcmp(argv[0], "devices") == 0)
		return cmd_devices(argc, argv);
	if (strcmp(argv[0], "admin") == 0)
		return cmd_admin(argc, argv);
	if (strcmp(argv[0], "oidc") == 0)
		return cmd_oidc(argc, argv);
	return cli_usage_error("unknown command '%s'", argv[0]);
}
