/* Fixtures shared by the unit tests that need a site and device
 * certificates: a failure fails the calling test. */
#ifndef STK_SITE_FIXTURE_H
#define STK_SITE_FIXTURE_H

#include "testutil.h"
#include "sitetoken/cert.h"
#include "sitetoken/device.h"
#include "sitetoken/key.h"
#include "sitetoken/site.h"
#include "sitetoken/token.h"

/* A site in "<dir>/site": file backend, P-256 site key, actor "tester". */
static inline struct stk_site *
sf_site_init(const char *dir)
{
	struct stk_site_init_opts io;
	struct stk_site *s = NULL;
	struct stk_error err;
	char sub[PATH_MAX];

	memset(&io, 0, sizeof(io));
	io.backend = "file";
	io.key_type = STK_KEY_P256;
	io.actor = "tester";
	snprintf(sub, sizeof(sub), "%s/site", dir);
	if (stk_site_init(sub, &io, &s, &err) != 0)
		fail_msg("site init: %s", err.msg);
	return s;
}

/* Closes the site and removes (and frees) its scratch directory dir. */
static inline void
sf_site_done(struct stk_site *s, char *dir)
{
	stk_site_close(s);
	tu_rmrf(dir);
	free(dir);
}

/* A device certificate: a fresh P-256 file key "<dir>/<name>.key" and a
 * self-signed certificate for it, CN name, valid from t0 for days days. */
static inline void
sf_device_cert(const char *dir, const char *name, int64_t t0, int days,
    unsigned char **der, size_t *len)
{
	struct stk_key_opts ko;
	struct stk_key *k = NULL;
	struct stk_error err;
	char path[PATH_MAX], *uri = NULL;

	memset(&ko, 0, sizeof(ko));
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	if (stk_key_generate("file", path, STK_KEY_P256, &ko, &k, &uri, &err) != 0)
		fail_msg("device key: %s", err.msg);
	if (stk_cert_make_self_signed(k, name, "test device", t0, days, der, len,
	    &err) != 0)
		fail_msg("device cert: %s", err.msg);
	stk_key_close(k);
	free(uri);
}

/* A fresh site per cmocka test, as *state: sf_setup (the site alone),
 * sf_setup_bulk (and a bulk token of the default lifetime, actor "tester")
 * or sf_setup_dev (and a device certificate "dev" valid from t0 for a year:
 * all a registration needs); teardown sf_teardown. */
struct sf_fx {
	char *dir;
	struct stk_site *s;
	int64_t t0;
	char *bulk;
	struct stk_bulk_record rec;
	unsigned char *cert;
	size_t len;
};

static inline int
sf_setup(void **state)
{
	struct sf_fx *f = calloc(1, sizeof(*f));

	f->dir = tu_tmpdir("site");
	f->t0 = stk_now();
	f->s = sf_site_init(f->dir);
	*state = f;
	return 0;
}

/* A bulk token of the given lifetime (minutes), actor "tester"; its
 * record in *rec. Free with stk_token_free. */
static inline char *
sf_bulk(struct stk_site *s, long minutes, struct stk_bulk_record *rec)
{
	struct stk_error err;
	char *tok = NULL;

	if (stk_bulk_new(s, minutes, "tester", &tok, rec, &err) != 0)
		fail_msg("bulk token: %s", err.msg);
	return tok;
}

static inline int
sf_setup_bulk(void **state)
{
	struct sf_fx *f;

	sf_setup(state);
	f = *state;
	f->bulk = sf_bulk(f->s, STK_BULK_LIFETIME_DEFAULT, &f->rec);
	return 0;
}

static inline int
sf_setup_dev(void **state)
{
	struct sf_fx *f;

	sf_setup_bulk(state);
	f = *state;
	sf_device_cert(f->dir, "dev", f->t0, 365, &f->cert, &f->len);
	return 0;
}

static inline int
sf_teardown(void **state)
{
	struct sf_fx *f = *state;

	sf_site_done(f->s, f->dir);
	stk_token_free(f->bulk);
	free(f->cert);
	free(f);
	return 0;
}

static inline int
sf_count_cb(void *ctx, const struct stk_device *d)
{
	(void)d;
	(*(int *)ctx)++;
	return 0;
}

/* How many devices the site has (through the public API only). */
static inline int
sf_device_count(struct stk_site *s)
{
	struct stk_error err;
	int n = 0;

	if (stk_device_foreach(s, sf_count_cb, &n, &err) != 0)
		fail_msg("device list: %s", err.msg);
	return n;
}

/* A registration request over a TLS listener (the CMG, or the MP over
 * HTTPS): the handshake's client certificate cert (which proved the key),
 * and the bulk token bulk unless NULL. */
static inline void
sf_tls_request(struct stk_reg_request *rq, enum stk_via via,
    const unsigned char *cert, size_t len, const char *bulk)
{
	memset(rq, 0, sizeof(*rq));
	rq->via = via;
	rq->tls = 1;
	rq->tls_cert_der = cert;
	rq->tls_cert_len = len;
	if (bulk != NULL) {
		rq->bulk_token = bulk;
		rq->bulk_len = strlen(bulk);
	}
}

/* testutil.h's TU_FX_TEST, by its first name (test_tokcache uses it). */
#define SF_TEST(fxtype, name) TU_FX_TEST(fxtype, name)

#endif
