/* Per-command help of `sitetoken`: one table, one entry per subcommand.
 *
 * To add a subcommand: add an entry below (usage line, what it does, one
 * line per option) and parse its options with cli_getopt(). The test
 * tests/integration/cli_help.sh checks, for every entry, that each option
 * the help names is in the command's getopt table and the reverse
 * (`sitetoken CMD SUB --list-options` prints the table). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

struct cli_help {
	const char *cmd;  /* "bulk new": command and subcommand */
	const char *text; /* usage line, blank line, description, options */
};

#define KEY_OPTS \
"  --backend file|pkcs11|tpm   where the key lives (default file: a PEM file,\n" \
"                       development only)\n" \
"  --key-type rsa2048|rsa3072|p256  (default rsa2048; p256 signs ES256)\n" \
"  --key-uri URI        an existing key (tpm:handle=0x81000001, pkcs11:...)\n" \
"  --pkcs11-uri URI     PKCS#11 key by RFC 7512 URI (pkcs11:token=T;object=O)\n" \
"  --pkcs11-module PATH PKCS#11 module (else $SITETOKEN_PKCS11_MODULE)\n" \
"  --tcti CONF          TPM TCTI (else $SITETOKEN_TCTI)\n"

static const struct cli_help cli_helps[] = {
	{ "site init",
"usage: sitetoken site init [--backend B] [--key-type T] [--key-uri URI]\n"
"         [--pkcs11-uri URI] [--pkcs11-module PATH] [--tcti CONF]\n"
"         [--db CONNINFO [--db-schema NAME]] [--json]\n\n"
"Make the site: its key (inside the TPM or HSM), the self-signed site\n"
"certificate and the site database, in the site directory.\n\n"
KEY_OPTS
"  --db CONNINFO        PostgreSQL instead of SQLite (else $SITETOKEN_DB);\n"
"                       no password in it (use a service or pgpass file)\n"
"  --db-schema NAME     schema for this site (default site_<GUID hex>)\n"
"  --json               print the result as JSON\n" },
	{ "site show",
"usage: sitetoken site show [--json]\n\n"
"Print the site GUID, issuer, key backend, certificate x5t, store and node.\n\n"
"  --json               print as JSON\n" },
	{ "key show",
"usage: sitetoken key show [--json]\n\n"
"Print the backend, key type, x5t and kid, and the key's protection\n"
"attributes as read back from the TPM or HSM (for compliance audits).\n\n"
"  --json               print as JSON\n" },
	{ "key export",
"usage: sitetoken key export [--jwks|--json] [--out FILE]\n\n"
"Export the site's public key(s) for verifiers: PEM by default.\n\n"
"  --jwks, --json       a JWKS with every active and retiring key\n"
"  --out FILE           write to FILE instead of standard output\n" },
	{ "key rotate",
"usage: sitetoken key rotate [--key-type T] [--key-uri URI|--pkcs11-uri URI]\n"
"         [--json]\n\n"
"Make a new key for this node and sign with it from now on; the old key\n"
"turns retiring and verifies until the tokens it signed expire.\n\n"
"  --key-type rsa2048|rsa3072|p256  (default: the current key's type)\n"
"  --key-uri URI        use an existing key\n"
"  --pkcs11-uri URI     PKCS#11 key by RFC 7512 URI\n"
"  --json               print the result as JSON\n" },
	{ "key retire",
"usage: sitetoken key retire [KID] [--json]\n\n"
"Without KID: retire the retiring keys whose tokens the store says have all\n"
"expired (by the store's clock; the server's housekeeping does the same).\n"
"With KID: retire that retiring key now (warns if its tokens were still\n"
"valid). The active key is refused. Audited.\n\n"
"  --json               print the result as JSON\n" },
	{ "key restore",
"usage: sitetoken key restore KID [--json]\n\n"
"Undo a retirement: the key verifies again until its tokens expire. Audited.\n\n"
"  --json               print the result as JSON\n" },
	{ "key endorse",
"usage: sitetoken key endorse --kid KID\n\n"
"This node's key vouches for another node's key (after `node add`): the\n"
"endorsement is a signature by an already trusted key, checked on every\n"
"load. A key row nobody trusted endorsed is ignored (and tokens it signed\n"
"refused). Only endorse a kid you recognise (see `sitetoken key list`).\n\n"
"  --kid KID            the key to endorse\n" },
	{ "key list",
"usage: sitetoken key list [--json]\n\n"
"List every site key: kid, node, status (active, retiring, retired).\n\n"
"  --json               print as JSON\n" },
	{ "key attest",
"usage: sitetoken key attest --nonce HEX [--out FILE] [--key-uri URI]\n"
"         [--tcti CONF]\n\n"
"TPM key attestation evidence (JSON, see docs/attestation.md): the EK\n"
"certificate and chain from the TPM's NV indices, and TPM2_Certify of the\n"
"site key by the attestation key over the auditor's nonce. TPM sites only:\n"
"a PKCS#11 or file key exits 2 (no standard key attestation).\n\n"
"  --nonce HEX          the verifier's nonce (hex, 8 to 64 bytes)\n"
"  --out FILE           write the evidence to FILE instead of standard output\n"
"  --key-uri URI        attest another TPM key (tpm:handle=0x81...), no site\n"
"  --tcti CONF          TPM TCTI (else $SITETOKEN_TCTI)\n" },
	{ "key activate-credential",
"usage: sitetoken key activate-credential [--in FILE] [--key-uri URI]\n"
"         [--tcti CONF]\n\n"
"TPM2_ActivateCredential with the attestation key and the EK on a credential\n"
"made by tpm2_makecredential or 'sitetoken attest challenge'; prints the\n"
"recovered secret as lower-case hex.\n\n"
"  --in FILE            the credential file (else standard input)\n"
"  --key-uri URI        the TPM key the evidence was about, no site\n"
"  --tcti CONF          TPM TCTI (else $SITETOKEN_TCTI)\n" },
	{ "node add",
"usage: sitetoken node add --node NAME --db CONNINFO --db-schema NAME\n"
"         [--backend B] [--key-type T] [--key-uri URI] [--pkcs11-uri URI]\n"
"         [--pkcs11-module PATH] [--tcti CONF] [--json]\n\n"
"Join an existing PostgreSQL site from another node, with this node's own\n"
"key (made in its TPM or HSM) registered in the site's key table.\n\n"
"  --node NAME          this node's name\n"
"  --db CONNINFO        the site's PostgreSQL database (no password in it)\n"
"  --db-schema NAME     the site's schema (see site.conf on the first node)\n"
KEY_OPTS
"  --json               print the result as JSON\n" },
	{ "issue",
"usage: sitetoken issue --type bulk [--lifetime MINUTES] [--json]\n\n"
"Issue a token: the same as 'bulk new' (client tokens come only from the\n"
"registration service).\n\n"
"  --type bulk          the token type\n"
"  --lifetime MINUTES   validity: default 4320 (3 days), 1 to 10080 (7 days)\n"
"  --json               print as JSON\n" },
	{ "verify",
"usage: sitetoken verify [--type bulk|client] [--cert FILE|--jwks FILE]\n"
"         [--leeway SECONDS] [--json] [TOKEN|-]\n\n"
"Verify a token against the site's public keys and print its claims; the\n"
"reason on refusal (exit 1). On a site, the gateway's verdict too (a\n"
"superseded token, a blocked device or bulk token is refused). Reads the\n"
"token from standard input unless TOKEN is given (preferred: argv is\n"
"visible to other users).\n\n"
"  --type bulk|client   the type the token must have\n"
"  --cert FILE          verify with this site certificate only (no site needed)\n"
"  --jwks FILE          verify offline with any key of this JWKS (keys with x5c,\n"
"                       as `sitetoken key export --jwks` writes; no site needed)\n"
"  --leeway SECONDS     clock leeway, 0 to 3600 (default 60)\n"
"  --json               print the claims, or the refusal, as JSON\n" },
	{ "bulk new",
"usage: sitetoken bulk new [--lifetime MINUTES] [--max-uses N]\n"
"         [--source CIDR[,CIDR]] [--require-attestation]\n"
"         [--tls-cert FILE [--cmg URL]] [--json]\n\n"
"Create a bulk registration token. Prints the GUID the site tracks it by,\n"
"its validity and the token itself, which is stored nowhere: copy it now.\n\n"
"  --lifetime MINUTES   validity: default 4320 (3 days), 1 to 10080 (7 days)\n"
"  --max-uses N         at most N devices register with it (1 to 1000000;\n"
"                       default: no limit); then 403 bulk_token_exhausted\n"
"  --source CIDR[,CIDR] only registrations from these IPv4/IPv6 networks (up\n"
"                       to 8); others get 403 bulk_token_source\n"
"  --require-attestation  devices registering with this token must prove a\n"
"                       TPM-held key (else 403 attestation_required), whatever\n"
"                       the site's require-attestation setting\n"
"  --tls-cert FILE      the gateway's TLS certificate (chain, PEM; as serve\n"
"                       --tls-cert): also print the device's install line\n"
"                       with /cahash:sha256:HEX, the SHA-256 of the\n"
"                       SubjectPublicKeyInfo of the file's last certificate\n"
"  --cmg URL            the gateway URL for that line\n"
"  --json               print as JSON\n" },
	{ "bulk block",
"usage: sitetoken bulk block GUID\n\n"
"Block a bulk registration token: registrations presenting it are refused.\n" },
	{ "bulk unblock",
"usage: sitetoken bulk unblock GUID\n\n"
"Unblock a bulk registration token.\n" },
	{ "certs list",
"usage: sitetoken certs list [--type site|bulk] [--sort COLUMN] [--json]\n\n"
"List the site certificates and bulk registration tokens.\n\n"
"  --type site|bulk     only this type\n"
"  --sort COLUMN        type, id, from, to, status, created, devices or uses;\n"
"                       prefix '-' to sort descending\n"
"  --json               print as JSON\n" },
	{ "serve",
"usage: sitetoken serve [--config FILE] --tls-cert FILE --tls-key FILE\n"
"         [--mp ADDR:PORT] [--mp-tls] [--cmg ADDR:PORT] [--trusted-ca FILE]\n"
"         [--site-number N] [--threads N] [--pid-file FILE] [--ready-file FILE]\n"
"         [--tcti CONF] [--pkcs11-module PATH] [--admin ADDR:PORT [--admin-remote]]\n"
"         [--metrics ADDR:PORT [--metrics-remote]] [--tls-priority STRING]\n\n"
"Run the management point (MP) and the cloud gateway (CMG) until SIGTERM or\n"
"SIGINT. SIGHUP reopens the log files (after logrotate moved them).\n\n"
"  --config FILE        read options from FILE: one 'name = value' (or 'name')\n"
"                       per line, names as the long options, '#' comments;\n"
"                       options on the command line override the file\n"
"  --tls-cert FILE      TLS certificate (PEM) of the listeners\n"
"  --tls-key FILE       its private key (PEM, mode 0600)\n"
"  --mp ADDR:PORT       MP listener (default 127.0.0.1:8080; port 0: any)\n"
"  --mp-tls             MP over HTTPS\n"
"  --cmg ADDR:PORT      CMG listener, HTTPS with client certificates\n"
"                       (default 127.0.0.1:8443)\n"
"  --trusted-ca FILE    CA whose client certificates may register on an HTTPS MP\n"
"  --site-number N      the number in /CCM_Proxy_MutualAuth/N/ (digits)\n"
"  --threads N          worker threads, 1 to 64\n"
"  --pid-file FILE      write the process id to FILE\n"
"  --ready-file FILE    once listening, write mp_port=N, cmg_port=N and\n"
"                       admin_port=N to FILE\n"
"  --tcti CONF          TPM TCTI (else $SITETOKEN_TCTI)\n"
"  --pkcs11-module PATH PKCS#11 module (else $SITETOKEN_PKCS11_MODULE)\n"
"  --admin ADDR:PORT    the admin console (HTTPS, same certificate); its\n"
"                       bearer secret is <site>/admin.token\n"
"  --admin-remote       let the console listen on a non-loopback address\n"
"  --metrics ADDR:PORT  Prometheus metrics over plain HTTP at /metrics\n"
"                       (metrics_port=N in the ready file)\n"
"  --metrics-remote     let metrics listen on a non-loopback address\n"
"  --tls-priority STRING  GnuTLS priority string of every TLS listener\n"
"                       (default: TLS 1.2 and 1.3, ECDHE, AEAD suites only)\n" },
	{ "admin token",
"usage: sitetoken admin token [--rotate]\n\n"
"Print the admin console's bearer secret (<site>/admin.token, 0600), making\n"
"it on first use.\n\n"
"  --rotate             replace it: the old one stops working at once\n" },
	{ "settings set",
"usage: sitetoken settings set allow-cmg on|off\n"
"       sitetoken settings set allow-cmg on|off|default --device GUID\n"
"       sitetoken settings set internal-registration on|off\n"
"       sitetoken settings set require-attestation on|off\n\n"
"Change a client setting: the site default, or one device's override.\n"
"require-attestation on refuses registrations without TPM key attestation\n"
"(403 attestation_required; a bulk token created to require it does so\n"
"whatever this says, see 'bulk new'). Default off.\n\n"
"  --device GUID        per-device value of allow-cmg\n" },
	{ "settings show",
"usage: sitetoken settings show [--json]\n\n"
"Print the client settings (site defaults).\n\n"
"  --json               print as JSON\n" },
	{ "devices list",
"usage: sitetoken devices list [--json] [--bulk GUID]\n\n"
"List the registered devices: GUID, via, registration time, token expiry,\n"
"status, allow-cmg override and attestation (tpm or none; --json also gives\n"
"ek_sha256, the SHA-256 of an attested device's EK certificate).\n\n"
"  --json               print as JSON\n"
"  --bulk GUID          only the devices ever enrolled with this bulk token\n" },
	{ "devices block",
"usage: sitetoken devices block GUID | devices block --bulk GUID\n\n"
"Block a device: the gateway refuses it and its renewals. With --bulk, block\n"
"every device a (leaked) bulk registration token ever enrolled (audited).\n\n"
"  --bulk GUID          the bulk registration token\n" },
	{ "devices unblock",
"usage: sitetoken devices unblock GUID\n\n"
"Unblock a device.\n" },
	{ "attest verify",
"usage: sitetoken attest verify EVIDENCE --ek-ca ROOT.pem --nonce HEX\n"
"         [--cert site.crt] [--challenge CRED --secret HEX] [--json]\n\n"
"The auditor's offline check of key attestation evidence (no TPM, no site):\n"
"EK chain, AK signature, certify of the key over the nonce, fixedTPM,\n"
"fixedParent, sensitiveDataOrigin. Exit 1 with the reason on refusal.\n\n"
"  --ek-ca ROOT.pem     the TPM manufacturer roots trusted\n"
"  --nonce HEX          the nonce the evidence must be over\n"
"  --cert FILE          the attested key must be this certificate's key\n"
"  --challenge CRED     the credential made by 'attest challenge' ...\n"
"  --secret HEX         ... and the secret the TPM recovered from it\n"
"  --json               print the result as JSON\n" },
	{ "attest challenge",
"usage: sitetoken attest challenge EVIDENCE --out CRED\n\n"
"MakeCredential in software for the evidence's AK and EK (tpm2-tools file\n"
"format); the expected secret goes to CRED.secret (mode 0600).\n\n"
"  --out CRED           where to write the credential\n" },
	{ "attest roots",
"usage: sitetoken attest roots add FILE\n"
"       sitetoken attest roots remove FILE\n"
"       sitetoken attest roots list [--json]\n\n"
"The TPM manufacturer roots the site trusts for device EK certificates in\n"
"attested registration. FILE holds one or more PEM CA certificates; add\n"
"keeps those already trusted, remove exits 1 when none of them is trusted.\n"
"Each change is audited (attest.root.add, attest.root.remove).\n\n"
"  --json               list as JSON (sha256, subject, added_at)\n" },
	{ "oidc add",
"usage: sitetoken oidc add --issuer URL --jwks FILE|URL --audience AUD\n"
"         [--device-claim NAME] [--tenant TID] [--jwks-ca FILE]\n\n"
"Trust an OIDC issuer (Entra/Azure AD-style device identity): its ID tokens\n"
"register a device in place of a bulk token, one device per issuer and\n"
"device claim value. The JWKS is checked now: a key too small (RSA under\n"
"2048 bits, EC other than P-256) or no usable key refuses it (exit 2).\n"
"The record is signed with the site key (a row edited in the database\n"
"trusts no one). Audited (oidc.issuer.add).\n\n"
"  --issuer URL         the exact iss of the ID tokens (https://...)\n"
"  --jwks FILE|URL      the issuer's keys: a JWKS file (kept in the site\n"
"                       store), or an https URL fetched now and by the server\n"
"                       when needed (cached; fetched again for an unknown kid\n"
"                       at most once every 10 seconds)\n"
"  --jwks-ca FILE       PEM CA for the JWKS URL (default: the system CAs)\n"
"  --audience AUD       the aud the ID tokens must carry (this site's app id)\n"
"  --device-claim NAME  the claim naming the device (default deviceId)\n"
"  --tenant TID         the tid the ID tokens must carry (default: any)\n" },
	{ "oidc list",
"usage: sitetoken oidc list [--json]\n\n"
"The trusted OIDC issuers, with the number of devices each registered; a\n"
"record not signed by a trusted site key is marked NOT TRUSTED.\n\n"
"  --json               print as JSON\n" },
	{ "oidc remove",
"usage: sitetoken oidc remove --issuer URL\n\n"
"Stop trusting an issuer (exit 1 when it is not trusted). Its devices stay\n"
"registered; block them with 'devices block'. Audited (oidc.issuer.remove).\n\n"
"  --issuer URL         the issuer as 'oidc list' shows it\n" },
	{ "audit show",
"usage: sitetoken audit show [--json]\n\n"
"Print every record of the hash-chained audit log.\n\n"
"  --json               print as JSON\n" },
	{ "audit verify",
"usage: sitetoken audit verify [--json]\n\n"
"Check the hash chain and the signed checkpoints; names the first bad record\n"
"(exit 1) when one was edited, removed, reordered or the log was cut. Shows\n"
"progress on a terminal.\n\n"
"  --json               print the report as JSON\n" },
	{ "audit checkpoint",
"usage: sitetoken audit checkpoint\n\n"
"Sign a checkpoint over the chain head now, with the site key.\n" },
};

static const char help_footer[] =
"  --site DIR           site directory (default: $SITETOKEN_SITE)\n"
"  -h, --help           this help\n\n"
"Exit codes: 0 success, 1 refused (token, GUID, tampered log), 2 usage error\n"
"(nothing changed), 3 key backend, database or I/O error.\n"
"More: man sitetoken.\n";

static int
is_help(const char *a)
{
	return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

int
cli_help_wanted(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (is_help(argv[i]))
			return 1;
	return 0;
}

int
cli_help_print(int argc, char **argv)
{
	char path[128];
	size_t i, n = sizeof(cli_helps) / sizeof(cli_helps[0]);
	int found = 0;

	/* "bulk new", then "issue" (a command without subcommands). */
	if (argc >= 2 && !is_help(argv[1])) {
		snprintf(path, sizeof(path), "%s %s", argv[0], argv[1]);
		for (i = 0; i < n; i++)
			if (strcmp(cli_helps[i].cmd, path) == 0) {
				printf("%s\n%s", cli_helps[i].text, help_footer);
				return 0;
			}
	}
	for (i = 0; i < n; i++)
		if (strcmp(cli_helps[i].cmd, argv[0]) == 0) {
			printf("%s\n%s", cli_helps[i].text, help_footer);
			return 0;
		}
	/* A command with subcommands: the usage line of each. */
	for (i = 0; i < n; i++) {
		size_t len = strlen(argv[0]);
		const char *nl;

		if (strncmp(cli_helps[i].cmd, argv[0], len) != 0 || cli_helps[i].cmd[len] != ' ')
			continue;
		if (!found)
			printf("usage: sitetoken %s SUBCOMMAND [OPTIONS]\n\n", argv[0]);
		found = 1;
		nl = strstr(cli_helps[i].text, "\n\n");
		printf("  %.*s\n", nl ? (int)(nl - cli_helps[i].text) - 7 :
		    (int)strlen(cli_helps[i].text) - 7, cli_helps[i].text + 7);
	}
	if (!found)
		return cli_usage_error("unknown command '%s'", argv[0]);
	printf("\n'sitetoken %s SUBCOMMAND --help' for details.\n", argv[0]);
	return 0;
}

void
cli_help_list(void)
{
	size_t i;

	for (i = 0; i < sizeof(cli_helps) / sizeof(cli_helps[0]); i++)
		printf("%s\n", cli_helps[i].cmd);
}

int
cli_getopt(int argc, char **argv, const struct option *opts)
{
	int i;

	/* --list-options (for the help test and bash completion): the
	 * options this command's getopt table accepts, one per line. */
	if (optind == 1)
		for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
			if (strcmp(argv[i], "--list-options") == 0) {
				for (; opts->name != NULL; opts++)
					printf("--%s\n", opts->name);
				fflush(stdout);
				exit(0);
			}
	return getopt_long(argc, argv, "", opts, NULL);
}
