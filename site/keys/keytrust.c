/* Which site keys are trusted, decided without trusting the database.
 *
 * Roots live in the site directory, which a database writer (SPEC threat
 * model, attacker 3) cannot change: site.crt (this node's key) and
 * trust.pem (the site's first key, and every key site.crt held before a
 * rotation). A site_keys row is trusted when its certificate's key is a
 * root, or when its endorsement (a signature by an already trusted key over
 * site GUID, kid, node and certificate hash) verifies. Rotation endorses the
 * new key with the old one; a node joining by `node add` is endorsed by an
 * existing node (`key endorse KID`). Rows that are not reachable from a root
 * are ignored by verifiers and by `audit verify`, and reported. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include "sitetoken/cert.h"
#include "sitetoken/file.h"
#include "sitetoken/log.h"
#include "site_int.h"

#define TRUST_FILE "trust.pem"
#define TRUST_FILE_MAX ((size_t)256 * 1024)

static void
trust_key_clear(struct site_trust_key *k)
{
	EVP_PKEY_free(k->pk);
	free(k->der);
	free(k->endorsement);
	memset(k, 0, sizeof(*k));
}

void
site_trust_free(struct site_trust *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++)
		trust_key_clear(&t->k[i]);
	free(t->k);
	free(t);
}

static struct site_trust_key *
trust_lookup(const struct site_trust *t, const char *kid)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->k[i].kid, kid) == 0)
			return &t->k[i];
	return NULL;
}

struct site_trust_key *
site_trust_lookup(const struct site_trust *t, const char *kid)
{
	return trust_lookup(t, kid);
}

const struct site_trust_key *
site_trust_find(const struct site_trust *t, const char *kid)
{
	const struct site_trust_key *k;

	if (t == NULL || kid == NULL)
		return NULL;
	k = trust_lookup(t, kid);
	return k != NULL && k->trusted ? k : NULL;
}

static struct site_trust_key *
trust_push(struct site_trust *t)
{
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 8;
		void *p = realloc(t->k, ncap * sizeof(*t->k));

		if (p == NULL)
			return NULL;
		t->k = p;
		t->cap = ncap;
	}
	memset(&t->k[t->n], 0, sizeof(t->k[0]));
	return &t->k[t->n++];
}

/* Public key and kid of a DER certificate. */
static EVP_PKEY *
trust_cert_key(const unsigned char *der, size_t len, char kid[44])
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	EVP_PKEY *k = NULL;

	kid[0] = '\0';
	if (x == NULL || p != der + len) {
		X509_free(x);
		ERR_clear_error();
		return NULL;
	}
	if ((k = X509_get0_pubkey(x)) != NULL && EVP_PKEY_up_ref(k) == 1 &&
	    stk_pkey_kid(k, kid) != 0) {
		EVP_PKEY_free(k);
		k = NULL;
	} else if (k != NULL && kid[0] == '\0')
		k = NULL;
	X509_free(x);
	return k;
}

/* Add every certificate of a PEM file in the site directory as a root. */
static int
trust_add_pem_file(struct stk_site *s, struct site_trust *t, const char *name,
    struct stk_error *err)
{
	char path[PATH_MAX];
	char *pem;
	size_t len;
	BIO *b = NULL;
	X509 *x;
	int r = STK_OK;

	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	if ((pem = stk_file_read(path, TRUST_FILE_MAX, &len)) == NULL)
		return errno == ENOENT ? STK_OK : stk_error_set(err, STK_E_IO,
		    STK_LAYER_SYS, (unsigned long)errno, "cannot read %s: %s", path,
		    strerror(errno));
	if ((b = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		unsigned char *d = NULL;
		int n = i2d_X509(x, &d);
		struct site_trust_key *k;
		char kid[44];
		EVP_PKEY *pk;

		X509_free(x);
		if (n <= 0)
			continue;
		pk = trust_cert_key(d, (size_t)n, kid);
		if (pk == NULL || trust_lookup(t, kid) != NULL) {
			EVP_PKEY_free(pk);
			OPENSSL_free(d);
			continue;
		}
		if ((k = trust_push(t)) == NULL || (k->der = malloc((size_t)n)) == NULL) {
			EVP_PKEY_free(pk);
			OPENSSL_free(d);
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
			goto out;
		}
		memcpy(k->der, d, (size_t)n);
		k->der_len = (size_t)n;
		OPENSSL_free(d);
		k->pk = pk;
		snprintf(k->kid, sizeof(k->kid), "%s", kid);
		k->trusted = 1;
		k->root = 1;
	}
	ERR_clear_error();
out:
	BIO_free(b);
	free(pem);
	return r;
}

void
site_trust_message(const char *guid, const char *kid, const char *node,
    const unsigned char *der, size_t len, char *buf, size_t buflen)
{
	unsigned char d[32];
	char h[65];
	size_t i;

	SHA256(der, len, d);
	for (i = 0; i < 32; i++)
		snprintf(h + 2 * i, 3, "%02x", d[i]);
	snprintf(buf, buflen, "sitetoken key endorsement v1\n%s\n%s\n%s\n%s\n",
	    guid, kid, node, h);
}

static int
trust_endorsement_ok(struct stk_site *s, const struct site_trust_key *k,
    const struct site_trust_key *by)
{
	unsigned char *sig = NULL;
	size_t siglen = 0;
	char msg[512];
	int ok;

	site_trust_message(s->guid, k->kid, k->node, k->der, k->der_len, msg, sizeof(msg));
	ok = stk_b64url_decode(k->endorsement, strlen(k->endorsement), &sig,
	    &siglen) == 0 && stk_sig_verify(by->pk, (const unsigned char *)msg,
	    strlen(msg), sig, siglen) == 0;
	free(sig);
	return ok;
}

int
site_trust_load(struct stk_site *s, struct site_trust **out,
    struct stk_error *err)
{
	struct site_trust *t;
	struct site_stmt *st = NULL;
	int rc, r, changed;
	size_t i;

	*out = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	if ((r = trust_add_pem_file(s, t, "site.crt", err)) != 0 ||
	    (r = trust_add_pem_file(s, t, TRUST_FILE, err)) != 0)
		goto out;
	if (db_prepare(s->store, "SELECT kid, node, status, cert, endorsed_by,"
	    " endorsement, created_at FROM site_keys ORDER BY created_at, kid", &st) != 0) {
		r = site_db_error(s, err, "reading the site keys");
		goto out;
	}
	while ((rc = db_step(st)) == SITE_DB_ROW) {
		const char *kid = db_column_text(st, 0), *by = db_column_text(st, 4);
		const char *en = db_column_text(st, 5);
		const void *der;
		size_t n;
		char real[44];
		EVP_PKEY *pk;
		struct site_trust_key *k;

		der = db_column_blob(st, 3, &n);
		if (kid == NULL || der == NULL || n == 0)
			continue;
		pk = trust_cert_key(der, n, real);
		if (pk == NULL || strcmp(real, kid) != 0) {
			/* A row whose kid is not its certificate's: never trusted. */
			EVP_PKEY_free(pk);
			t->untrusted++;
			if (t->first_untrusted[0] == '\0')
				snprintf(t->first_untrusted, sizeof(t->first_untrusted),
				    "%.43s", kid);
			continue;
		}
		if ((k = trust_lookup(t, kid)) != NULL && k->in_table) {
			EVP_PKEY_free(pk);
			continue;
		}
		if (k == NULL && (k = trust_push(t)) == NULL) {
			EVP_PKEY_free(pk);
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
			goto out;
		}
		if (k->pk == NULL) {
			k->pk = pk;
			snprintf(k->kid, sizeof(k->kid), "%s", kid);
		} else
			EVP_PKEY_free(pk);
		/* The row's certificate: the one tokens name (x5t). */
		free(k->der);
		if ((k->der = malloc(n)) == NULL ||
		    (en != NULL && (k->endorsement = strdup(en)) == NULL)) {
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
			goto out;
		}
		memcpy(k->der, der, n);
		k->der_len = n;
		k->in_table = 1;
		k->created_at = db_column_int64(st, 6);
		snprintf(k->node, sizeof(k->node), "%s", db_column_text(st, 1) ?
		    db_column_text(st, 1) : "");
		snprintf(k->status, sizeof(k->status), "%s", db_column_text(st, 2) ?
		    db_column_text(st, 2) : "");
		snprintf(k->endorsed_by, sizeof(k->endorsed_by), "%s", by ? by : "");
	}
	if (rc != SITE_DB_DONE) {
		r = site_db_error(s, err, "reading the site keys");
		goto out;
	}
	/* Trust flows from the roots along endorsements, in any order. */
	do {
		changed = 0;
		for (i = 0; i < t->n; i++) {
			struct site_trust_key *k = &t->k[i];
			const struct site_trust_key *by;

			if (k->trusted || k->endorsement == NULL ||
			    (by = site_trust_find(t, k->endorsed_by)) == NULL ||
			    !trust_endorsement_ok(s, k, by))
				continue;
			k->trusted = 1;
			changed = 1;
		}
	} while (changed);
	for (i = 0; i < t->n; i++)
		if (!t->k[i].trusted) {
			t->untrusted++;
			if (t->first_untrusted[0] == '\0')
				snprintf(t->first_untrusted, sizeof(t->first_untrusted),
				    "%s", t->k[i].kid);
		}
	r = STK_OK;
out:
	db_finalize(st);
	if (r != 0)
		site_trust_free(t);
	else
		*out = t;
	return r;
}

int
site_trust_add_root(struct stk_site *s, const unsigned char *der, size_t len,
    struct stk_error *err)
{
	char path[PATH_MAX], kid[44];
	char *old = NULL, *pem = NULL, *all = NULL;
	size_t oldlen = 0;
	EVP_PKEY *pk = NULL;
	struct site_trust probe;
	int r;

	memset(&probe, 0, sizeof(probe));
	if ((pk = trust_cert_key(der, len, kid)) == NULL)
		return stk_error_set(err, STK_E_CRYPTO, STK_LAYER_OPENSSL, 0,
		    "cannot read a site key certificate");
	EVP_PKEY_free(pk);
	if ((r = trust_add_pem_file(s, &probe, TRUST_FILE, err)) != 0)
		goto out;
	if (trust_lookup(&probe, kid) != NULL)
		goto out; /* already a root */
	snprintf(path, sizeof(path), "%s/%s", s->dir, TRUST_FILE);
	if ((old = stk_file_read(path, TRUST_FILE_MAX, &oldlen)) == NULL && errno != ENOENT) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (stk_cert_der_to_pem(der, len, &pem) != 0 ||
	    asprintf(&all, "%s%s", old ? old : "", pem) < 0) {
		all = NULL;
		r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
		goto out;
	}
	r = site_write_file(s->dir, TRUST_FILE, all, strlen(all), 0644, err);
out:
	while (probe.n > 0)
		trust_key_clear(&probe.k[--probe.n]);
	free(probe.k);
	free(old);
	free(pem);
	free(all);
	return r;
}

int
site_trust_endorse(struct stk_site *s, const char *kid, const char *node,
    const unsigned char *der, size_t len, struct stk_error *err)
{
	struct stk_key *key;
	struct site_stmt *st = NULL;
	unsigned char sig[STK_SIG_MAX];
	char msg[512], sigb64[(STK_SIG_MAX + 2) / 3 * 4 + 1];
	size_t siglen = sizeof(sig);
	int r;

	if (s->kid[0] == '\0')
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "this node has no key of its own to endorse with");
	if ((r = stk_site_key(s, &key, err)) != 0)
		return r;
	site_trust_message(s->guid, kid, node, der, len, msg, sizeof(msg));
	if ((r = stk_key_sign(key, (const unsigned char *)msg, strlen(msg), sig,
	    &siglen, err)) != 0)
		return r;
	stk_b64url_encode_buf(sig, siglen, sigb64);
	if (db_prepare(s->store, "UPDATE site_keys SET endorsed_by = ?, endorsement = ?"
	    " WHERE kid = ?", &st) != 0)
		return site_db_error(s, err, "endorsing the key");
	if (db_bind_text(st, 1, s->kid) != 0 || db_bind_text(st, 2, sigb64) != 0 ||
	    db_bind_text(st, 3, kid) != 0 || db_step(st) != SITE_DB_DONE)
		r = site_db_error(s, err, "endorsing the key");
	db_finalize(st);
	return r;
}
