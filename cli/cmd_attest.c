/* key attest | key activate-credential (the site's side, needs its TPM);
 * attest verify | attest challenge (the auditor's side, offline). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include "cli.h"
#include "sitetoken/attest.h"
#include "sitetoken/attest_policy.h"
#include "sitetoken/key.h"
#include "sitetoken/site.h"

static const char no_attest_msg[] =
    "key attestation needs a TPM site key: the %s backend has no key "
    "attestation (PKCS#11 defines no standard one; `key show` reports the "
    "attributes the device reports about itself, which an auditor has to "
    "take on trust)";

/* Read a whole file (or stdin for NULL / "-"), at most CLI_FILE_MAX. */
static int
read_all(const char *path, unsigned char **out, size_t *len)
{
	FILE *fp = (path == NULL || strcmp(path, "-") == 0) ? stdin :
	    fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t n = 0, cap = 0, got;

	*out = NULL;
	*len = 0;
	if (fp == NULL) {
		fprintf(stderr, "%s: cannot read %s\n", cli_prog, path);
		return EXIT_BACKEND;
	}
	for (;;) {
		if (n == cap) {
			unsigned char *nb;

			if (cap >= CLI_FILE_MAX) {
				fprintf(stderr, "%s: %s is larger than 1 MiB\n",
				    cli_prog, path ? path : "stdin");
				free(buf);
				if (fp != stdin)
					fclose(fp);
				return EXIT_USAGE;
			}
			cap = cap ? cap * 2 : 4096;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				free(buf);
				if (fp != stdin)
					fclose(fp);
				return EXIT_BACKEND;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, fp);
		n += got;
		if (got == 0)
			break;
	}
	if (fp != stdin)
		fclose(fp);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static int
write_file(const char *path, const void *p, size_t len, mode_t mode)
{
	FILE *fp;
	int ok;

	if (path == NULL || strcmp(path, "-") == 0)
		return fwrite(p, 1, len, stdout) == len ? 0 : EXIT_BACKEND;
	umask(077 & ~mode);
	if ((fp = fopen(path, "wb")) == NULL) {
		fprintf(stderr, "%s: cannot write %s\n", cli_prog, path);
		return EXIT_BACKEND;
	}
	ok = fwrite(p, 1, len, fp) == len;
	if (fclose(fp) != 0 || !ok) {
		fprintf(stderr, "%s: cannot write %s\n", cli_prog, path);
		return EXIT_BACKEND;
	}
	return 0;
}

/* The key to attest: --key-uri (no site needed), else the site's key;
 * EXIT_USAGE when it cannot attest. */
static int
open_key(const char *dir, const char *key_uri, const char *tcti,
    struct stk_site **site, struct stk_key **key, struct stk_key **owned)
{
	struct stk_key_opts o;
	struct stk_error err;
	int r, rc = 0;

	*site = NULL;
	*key = *owned = NULL;
	stk_error_clear(&err);
	if (key_uri != NULL) {
		cli_key_opts(&o, tcti, NULL);
		if ((r = stk_key_open(key_uri, &o, owned, &err)) != 0) {
			rc = cli_fail(&err, r);
			goto out;
		}
		*key = *owned;
	} else if ((rc = cli_open_site(dir, site)) != 0)
		goto out;
	else if ((r = stk_site_key(*site, key, &err)) != 0) {
		rc = cli_fail(&err, r);
		goto out;
	}
	if (!stk_key_attestation_available(*key)) {
		fprintf(stderr, "%s: ", cli_prog);
		fprintf(stderr, no_attest_msg, *key != NULL ? (*key)->vt->name : "?");
		fputc('\n', stderr);
		rc = EXIT_USAGE;
	}
out:
	if (rc != 0) {
		stk_key_close(*owned);
		stk_site_close(*site);
		*site = NULL;
		*key = *owned = NULL;
	}
	return rc;
}

static int
key_attest(int argc, char **argv)
{
	const char *dir = NULL, *nonce_hex = NULL, *out = NULL, *key_uri = NULL;
	const char *tcti = NULL;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "nonce", &nonce_hex, NULL }, { "out", &out, NULL },
		{ "key-uri", &key_uri, NULL }, { "tcti", &tcti, NULL }, { NULL, NULL, NULL }
	};
	unsigned char nonce[STK_ATTEST_NONCE_MAX];
	size_t nlen = 0;
	struct stk_attest_evidence *ev = NULL;
	struct stk_site *s = NULL;
	struct stk_key *key = NULL, *owned = NULL;
	struct stk_error err;
	char *json = NULL;
	int r, rc;

	if ((rc = cli_opts(argc, argv, opts)) != 0)
		return rc;
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if (nonce_hex == NULL)
		return cli_usage_error("key attest needs --nonce HEX (the "
		    "auditor's fresh challenge)");
	stk_error_clear(&err);
	if ((r = stk_attest_nonce_parse(nonce_hex, nonce, &nlen, &err)) != 0)
		return cli_fail(&err, r);
	if ((rc = open_key(dir, key_uri, tcti, &s, &key, &owned)) != 0)
		return rc;
	if ((r = stk_tpm_attest(key, nonce, nlen, &ev, &err)) != 0 ||
	    (r = stk_attest_evidence_json(ev, &json, &err)) != 0) {
		rc = cli_fail(&err, r);
		goto out;
	}
	rc = write_file(out, json, strlen(json), 0644);
out:
	free(json);
	stk_attest_evidence_free(ev);
	stk_key_close(owned);
	stk_site_close(s);
	return rc;
}

static int
key_activate(int argc, char **argv)
{
	const char *dir = NULL, *in = NULL, *key_uri = NULL, *tcti = NULL;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "in", &in, NULL }, { "key-uri", &key_uri, NULL },
		{ "tcti", &tcti, NULL }, { NULL, NULL, NULL }
	};
	unsigned char secret[STK_ATTEST_SECRET_MAX], *cred = NULL;
	size_t slen = 0, clen = 0, i;
	struct stk_site *s = NULL;
	struct stk_key *key = NULL, *owned = NULL;
	struct stk_error err;
	int r, rc;

	if ((rc = cli_opts(argc, argv, opts)) != 0)
		return rc;
	if (optind != argc)
		return cli_usage_error("unexpected argument '%s'", argv[optind]);
	if ((rc = read_all(in, &cred, &clen)) != 0)
		return rc;
	if ((rc = open_key(dir, key_uri, tcti, &s, &key, &owned)) != 0)
		goto out;
	stk_error_clear(&err);
	if ((r = stk_tpm_activate_credential(key, cred, clen, secret, &slen,
	    &err)) != 0) {
		rc = cli_fail(&err, r);
		goto out;
	}
	for (i = 0; i < slen; i++)
		printf("%02x", secret[i]);
	printf("\n");
	rc = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	free(cred);
	stk_key_close(owned);
	stk_site_close(s);
	return rc;
}

static int
load_evidence(const char *path, struct stk_attest_evidence **ev)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	struct stk_error err;
	int r, rc;

	if ((rc = read_all(path, &buf, &len)) != 0)
		return rc;
	stk_error_clear(&err);
	r = stk_attest_evidence_parse((const char *)buf, len, ev, &err);
	free(buf);
	return r != 0 ? cli_fail(&err, r) : 0;
}

static EVP_PKEY *
cert_key(const char *path)
{
	FILE *fp = fopen(path, "r");
	X509 *x = NULL;
	EVP_PKEY *k = NULL;

	if (fp == NULL)
		return NULL;
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	if (x == NULL) {
		rewind(fp);
		x = d2i_X509_fp(fp, NULL);
	}
	fclose(fp);
	if (x != NULL && (k = X509_get0_pubkey(x)) != NULL)
		EVP_PKEY_up_ref(k);
	X509_free(x);
	return k;
}

/* The expected secret and AK name a challenge left beside CRED. */
static int
read_challenge(const char *cred, char *secret, size_t slen, char *name,
    size_t nlen)
{
	char path[4096], line[256];
	FILE *fp;
	int got = 0;

	snprintf(path, sizeof(path), "%s.secret", cred);
	if ((fp = fopen(path, "r")) == NULL) {
		fprintf(stderr, "%s: cannot read %s (written by `attest "
		    "challenge`)\n", cli_prog, path);
		return EXIT_BACKEND;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, "secret=", 7) == 0)
			got |= snprintf(secret, slen, "%s", line + 7) > 0;
		else if (strncmp(line, "ak-name=", 8) == 0)
			got |= (snprintf(name, nlen, "%s", line + 8) > 0) << 1;
	}
	OPENSSL_cleanse(line, sizeof(line));
	fclose(fp);
	if (got != 3) {
		fprintf(stderr, "%s: %s is not a challenge file\n", cli_prog, path);
		return EXIT_USAGE;
	}
	return 0;
}

static int
attest_verify(int argc, char **argv)
{
	const char *ca = NULL, *nonce_hex = NULL, *cert = NULL, *secret = NULL;
	const char *chal = NULL, *evpath, *dir = NULL;
	unsigned char nonce[STK_ATTEST_NONCE_MAX];
	char want_secret[2 * STK_ATTEST_SECRET_MAX + 2], want_name[80];
	struct stk_attest_evidence *ev = NULL;
	struct stk_attest_expect exp;
	struct stk_attest_result res;
	struct stk_error err;
	EVP_PKEY *key = NULL;
	X509_STORE *roots = NULL;
	size_t nlen = 0;
	int r, rc, json = 0, bound = 0;
	const struct cli_opt opts[] = {
		/* Accepted like every command's, but no site is needed. */
		{ "site", &dir, NULL },
		{ "ek-ca", &ca, NULL }, { "nonce", &nonce_hex, NULL }, { "cert", &cert, NULL },
		{ "secret", &secret, NULL }, { "challenge", &chal, NULL },
		{ "json", NULL, &json }, { NULL, NULL, NULL }
	};

	if ((rc = cli_opts(argc, argv, opts)) != 0)
		return rc;
	if (optind + 1 != argc || ca == NULL || nonce_hex == NULL)
		return cli_sub_usage();
	if ((secret == NULL) != (chal == NULL))
		return cli_usage_error("--secret and --challenge go together: "
		    "the secret `key activate-credential` printed, and the "
		    "credential file `attest challenge` wrote");
	evpath = argv[optind];
	stk_error_clear(&err);
	if ((r = stk_attest_nonce_parse(nonce_hex, nonce, &nlen, &err)) != 0)
		return cli_fail(&err, r);
	if (cert != NULL && (key = cert_key(cert)) == NULL) {
		fprintf(stderr, "%s: cannot read a certificate from %s\n",
		    cli_prog, cert);
		return EXIT_USAGE;
	}
	if ((r = stk_attest_roots_load(ca, &roots, &err)) != 0) {
		rc = cli_fail(&err, r);
		goto out;
	}
	if ((rc = load_evidence(evpath, &ev)) != 0)
		goto out;
	memset(&exp, 0, sizeof(exp));
	exp.roots = roots;
	exp.nonce = nonce;
	exp.nonce_len = nlen;
	exp.key = key;
	if ((r = stk_attest_verify(ev, &exp, &res, &err)) != 0) {
		rc = cli_fail(&err, r);
		goto out;
	}
	if (chal != NULL) {
		if ((rc = read_challenge(chal, want_secret, sizeof(want_secret),
		    want_name, sizeof(want_name))) != 0)
			goto out;
		if (strcmp(want_name, res.ak_name) != 0) {
			fprintf(stderr, "%s: the challenge %s was made for another "
			    "AK (name %s), not this evidence's AK %s\n", cli_prog,
			    chal, want_name, res.ak_name);
			rc = EXIT_INVALID;
			goto out;
		}
		if (strlen(secret) != strlen(want_secret) ||
		    CRYPTO_memcmp(secret, want_secret, strlen(want_secret)) != 0) {
			fprintf(stderr, "%s: the activated secret is not the "
			    "challenge's: the AK does not live in the TPM of this "
			    "EK\n", cli_prog);
			rc = EXIT_INVALID;
			goto out;
		}
		bound = 1;
	}
	if (json) {
		printf("{\"result\":\"pass\",\"key_type\":\"%s\",\"key_name\":\"%s\","
		    "\"ak_name\":\"%s\",\"ak_bound_to_ek\":%s,\"key_matches_cert\":%s}\n",
		    res.key_type, res.key_name, res.ak_name, bound ? "true" : "false",
		    key != NULL ? "true" : "false");
	} else {
		printf("EK certificate:   %s\n  issued by:      %s\n  chains to a "
		    "root in %s: yes\n", res.ek_subject, res.ek_issuer, ca);
		printf("AK:               restricted signing key, name %s\n"
		    "  signature over certInfo: valid\n", res.ak_name);
		printf("certInfo:         TPM_GENERATED certify of name %s over "
		    "the nonce\n", res.key_name);
		printf("Key:              %s, fixedTPM|fixedParent|"
		    "sensitiveDataOrigin|sign\n", res.key_type);
		printf("Key is %s: %s\n", cert ? cert : "the site certificate's",
		    key != NULL ? "yes" : "not checked (no --cert)");
		printf("AK in the EK's TPM: %s\n", bound ? "yes (credential "
		    "activated)" : "not checked (run attest challenge, key "
		    "activate-credential, then --secret/--challenge)");
		printf("Result:           pass\n");
	}
	rc = 0;
out:
	OPENSSL_cleanse(want_secret, sizeof(want_secret));
	stk_attest_evidence_free(ev);
	X509_STORE_free(roots);
	EVP_PKEY_free(key);
	return rc;
}

static int
attest_challenge(int argc, char **argv)
{
	const char *out = NULL, *dir = NULL;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, /* no site needed */
		{ "out", &out, NULL }, { NULL, NULL, NULL }
	};
	struct stk_attest_evidence *ev = NULL;
	struct stk_error err;
	unsigned char secret[STK_ATTEST_SECRET_MAX], *cred = NULL;
	char name[80], path[4096], body[256];
	size_t clen = 0, i;
	int c, r, rc;

	if ((rc = cli_opts(argc, argv, opts)) != 0)
		return rc;
	if (optind + 1 != argc || out == NULL || strcmp(out, "-") == 0)
		return cli_sub_usage();
	if ((rc = load_evidence(argv[optind], &ev)) != 0)
		return rc;
	stk_error_clear(&err);
	if (RAND_bytes(secret, sizeof(secret)) != 1) {
		rc = EXIT_BACKEND;
		goto out;
	}
	if ((r = stk_attest_name_hex(ev->ak_pub.p, ev->ak_pub.len, name,
	    sizeof(name), &err)) != 0 ||
	    (r = stk_attest_make_credential(ev, secret, sizeof(secret), &cred,
	    &clen, &err)) != 0) {
		rc = cli_fail(&err, r);
		goto out;
	}
	if ((rc = write_file(out, cred, clen, 0644)) != 0)
		goto out;
	/* The expected answer stays with the auditor, beside the credential. */
	snprintf(path, sizeof(path), "%s.secret", out);
	i = (size_t)snprintf(body, sizeof(body), "ak-name=%s\nsecret=", name);
	for (c = 0; c < (int)sizeof(secret); c++)
		i += (size_t)snprintf(body + i, sizeof(body) - i, "%02x", secret[c]);
	i += (size_t)snprintf(body + i, sizeof(body) - i, "\n");
	if ((rc = write_file(path, body, i, 0600)) != 0)
		goto out;
	printf("Credential for AK %s written to %s (expected secret in %s).\n"
	    "Have the site run: sitetoken key activate-credential --in %s\n",
	    name, out, path, out);
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(body, sizeof(body));
	free(cred);
	stk_attest_evidence_free(ev);
	return rc;
}

static int
roots_row(void *ctx, const struct stk_attest_root *rt)
{
	json_t *arr = ctx;
	char when[32];

	if (arr != NULL) {
		json_array_append_new(arr, json_pack("{s:s, s:s, s:I}", "sha256",
		    rt->sha256, "subject", rt->subject, "added_at",
		    (json_int_t)rt->added_at));
		return 0;
	}
	cli_time(rt->added_at, when, sizeof(when));
	printf("%-64s  %-20s  %s\n", rt->sha256, when, rt->subject);
	return 0;
}

/* attest roots add|list|remove: the manufacturer roots the site trusts for
 * device EKs (attested registration). */
static int
attest_roots(int argc, char **argv)
{
	const char *dir = NULL, *sub;
	struct stk_site *s = NULL;
	struct stk_error err;
	unsigned char *pem = NULL;
	size_t len = 0, n = 0;
	json_t *arr = NULL;
	int r, rc, json = 0, list;
	const struct cli_opt opts[] = {
		{ "site", &dir, NULL }, { "json", NULL, &json }, { NULL, NULL, NULL }
	};

	/* Options first (getopt moves ADD|LIST|REMOVE and FILE behind them). */
	if ((rc = cli_opts(argc, argv, opts)) != 0)
		return rc;
	sub = optind < argc ? argv[optind++] : "";
	list = strcmp(sub, "list") == 0;
	if (!list && strcmp(sub, "add") != 0 && strcmp(sub, "remove") != 0)
		return cli_usage_error("usage: attest roots add|remove FILE | attest roots list");
	if (json && !list)
		return cli_usage_error("--json is for 'attest roots list'");
	if (argc - optind != (list ? 0 : 1))
		return cli_usage_error(list ? "usage: attest roots list [--json]" :
		    "usage: attest roots %s FILE", sub);
	/* Read the file before touching the site: a bad file changes nothing. */
	if (!list && (rc = read_all(argv[optind], &pem, &len)) != 0)
		return rc;
	if ((rc = cli_open_site(dir, &s)) != 0)
		goto out;
	stk_error_clear(&err);
	if (list) {
		if (json)
			arr = json_array();
		else
			printf("%-64s  %-20s  %s\n", "SHA-256", "Added", "Subject");
		r = stk_attest_roots_foreach(s, roots_row, arr, &err);
		if (r == 0 && json) {
			char *txt = json_dumps(arr, JSON_INDENT(2));

			printf("%s\n", txt ? txt : "[]");
			free(txt);
		}
	} else if (strcmp(sub, "add") == 0)
		r = stk_attest_roots_add(s, (const char *)pem, len, cli_actor(), &n, &err);
	else
		r = stk_attest_roots_remove(s, (const char *)pem, len, cli_actor(), &n, &err);
	if (r != 0) {
		rc = cli_fail(&err, r);
		goto out;
	}
	if (!list)
		printf("%zu attestation root(s) %s.\n", n, strcmp(sub, "add") == 0 ?
		    "added" : "removed");
	rc = 0;
out:
	json_decref(arr);
	free(pem);
	stk_site_close(s);
	return rc;
}

int
cmd_key_attest(int argc, char **argv)
{
	return key_attest(argc, argv);
}

int
cmd_key_activate(int argc, char **argv)
{
	return key_activate(argc, argv);
}

int
cmd_attest(int argc, char **argv)
{
	static const struct cli_sub subs[] = {
		{ "verify", attest_verify, "usage: attest verify EVIDENCE --ek-ca ROOT.pem "
		    "--nonce HEX [--cert site.crt] [--secret HEX --challenge CRED] [--json]" },
		{ "challenge", attest_challenge, "usage: attest challenge EVIDENCE --out CRED" },
		{ "roots", attest_roots, NULL },
		{ NULL, NULL, NULL }
	};

	return cli_sub_run("attest", subs, argc, argv, "usage: attest verify|challenge|roots");
}
