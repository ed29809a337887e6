/* Gateway cache (site_gw_*, site_tokcache_*, site_int.h).
 *
 * What it saves: on a warm hit, everything. An entry holds the claims of a
 * client token already verified for one TLS client certificate AND the
 * device state the gateway decides on (certificate thumbprint, latest jti,
 * blocked, allow-cmg in effect, token_used), so a warm hit reads nothing
 * from the store; dev_auth (gateway.c) applies the same checks to the
 * cached state as to a row it has just read.
 *
 * How the device state goes stale, and for how long (README "Performance",
 * docs/api.md). Every change that matters to the gateway -- renewal,
 * re-key, a re-registration that supersedes a device's token, device and
 * bulk block/unblock, per-device allow-cmg, any setting, key retirement and
 * restore -- bumps the site-wide generation counter (the settings row
 * `gateway-generation`) in the same transaction (site_gw_bump). Cached
 * state is valid only while it carries the process's current generation
 * (tc_gen):
 *  - in this process a committed change bumps tc_gen at once
 *    (site_gw_committed, called by stk_site_tx_commit): staleness 0;
 *  - a change committed by another process or node is seen by polling the
 *    counter: each site handle reads it before a cache lookup when its last
 *    read is 1 s old or older (monotonic clock), and bumps tc_gen when it
 *    changed (or on the handle's first read, or when the read fails).
 *    Worst case: a request that starts 1 s (core/gwgen.c) after the
 *    change committed is decided on the new state, on every node.
 * A bump keeps the verified claims (they do not depend on device state)
 * and makes each handle re-read the key set on its next use, so a key
 * retired by hand stops verifying within the same bound.
 *
 * A hit also re-applies the time rules at the request's `now`, and
 * requires that the key that signed the token is still in the handle's
 * key set.
 *
 * Bounded and sharded: SHARDS independent tables of WAYS-way sets, each
 * with its own mutex (no global lock); a full set evicts its oldest entry.
 * Key: one SHA-256 over the site GUID, the certificate's thumbprint and the
 * token, so a token presented with another certificate never hits.
 * SITETOKEN_TOKEN_CACHE=0 in the environment turns it off (benchmarks of
 * the cold path). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "sitetoken/cert.h"
#include "sitetoken/device.h"
#include "site_int.h"

#define SHARDS 16
#define SETS 128                 /* per shard */
#define WAYS 4                   /* entries per set: 16*128*4 = 8192 */

struct tc_entry {
	unsigned char key[32];
	int used;
	uint64_t stamp;              /* insertion order, for eviction */
	enum stk_token_type type;
	char tenant[STK_GUID_LEN + 1];
	char id[STK_GUID_LEN + 1];
	char subject[STK_GUID_LEN + 1];
	char cnf[44];
	char kid[64];
	char att[8];                 /* the gateway requires it: keep it */
	int64_t iat, nbf, exp;
	uint64_t sgen;               /* generation of st; 0: no state */
	struct site_gw_state st;
};

struct tc_shard {
	pthread_mutex_t mu;
	uint64_t clock;
	struct tc_entry e[SETS][WAYS];
};

static struct tc_shard *tc_shards;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;
static int tc_on;
static uint64_t tc_hits, tc_misses;   /* atomics, not a lock */
static uint64_t tc_state_hits;        /* hits that also held current state */

static void
tc_init(void)
{
	const char *e = getenv("SITETOKEN_TOKEN_CACHE");
	size_t i;

	if (e != NULL && strcmp(e, "0") == 0)
		return;
	if ((tc_shards = calloc(SHARDS, sizeof(*tc_shards))) == NULL)
		return;
	for (i = 0; i < SHARDS; i++)
		pthread_mutex_init(&tc_shards[i].mu, NULL);
	tc_on = 1;
}

static EVP_MD *tc_sha256;
static pthread_key_t tc_md_key;
static pthread_once_t tc_md_once = PTHREAD_ONCE_INIT;
static int tc_have_md_key;

static void
tc_md_ctx_free(void *p)
{
	EVP_MD_CTX_free(p);
}

static void
tc_md_fetch(void)
{
	tc_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	tc_have_md_key = pthread_key_create(&tc_md_key, tc_md_ctx_free) == 0;
}

void
site_tokcache_key(const char *site_guid, const char *token, size_t len,
    const char *thumb, unsigned char key[32])
{
	EVP_MD_CTX *md = NULL;
	unsigned int n = 32;
	int own = 0;

	/* Fetched once (EVP_sha256() looks it up in the provider store, a read
	 * lock, on every call); one digest context per thread, reused. */
	pthread_once(&tc_md_once, tc_md_fetch);
	if (tc_have_md_key && (md = pthread_getspecific(tc_md_key)) == NULL &&
	    (md = EVP_MD_CTX_new()) != NULL &&
	    pthread_setspecific(tc_md_key, md) != 0)
		own = 1;
	if (md == NULL) {
		md = EVP_MD_CTX_new();
		own = 1;
	}
	if (md == NULL || EVP_DigestInit_ex2(md, tc_sha256 != NULL ? tc_sha256 :
	    EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, site_guid, strlen(site_guid) + 1) != 1 ||
	    EVP_DigestUpdate(md, thumb, strlen(thumb) + 1) != 1 ||
	    EVP_DigestUpdate(md, token, len) != 1 ||
	    EVP_DigestFinal_ex(md, key, &n) != 1)
		memset(key, 0, 32);  /* an all-zero key is never stored */
	if (own)
		EVP_MD_CTX_free(md);
}

static int
tc_key_ok(const unsigned char key[32])
{
	static const unsigned char zero[32];

	return memcmp(key, zero, 32) != 0;
}

static struct tc_shard *
tc_where(const unsigned char key[32], size_t *set)
{
	*set = ((size_t)key[1] << 8 | key[2]) % SETS;
	return &tc_shards[key[0] % SHARDS];
}

/* ---- per connection ---- */

/* What a server keeps per client connection so that requests on a kept-alive
 * connection hash nothing: the client certificate's DER and thumbprint, and
 * the last token presented with its cache key. Both are compared byte for
 * byte with what the request carries before they are used. */
struct stk_gw_conn {
	unsigned char *der;
	size_t der_len;
	char x5t[44];
	char *tok;                   /* a client token: wiped before it is freed */
	size_t tok_len;
	char key_site[STK_GUID_LEN + 1];
	char key_x5t[44];
	unsigned char key[32];
};

struct stk_gw_conn *
stk_gw_conn_new(void)
{
	return calloc(1, sizeof(struct stk_gw_conn));
}

static void
tc_conn_forget_token(struct stk_gw_conn *g)
{
	if (g->tok != NULL) {
		OPENSSL_cleanse(g->tok, g->tok_len);
		free(g->tok);
	}
	g->tok = NULL;
	g->tok_len = 0;
	OPENSSL_cleanse(g->key, sizeof(g->key));
}

void
stk_gw_conn_free(struct stk_gw_conn *g)
{
	if (g == NULL)
		return;
	tc_conn_forget_token(g);
	free(g->der);
	free(g);
}

const char *
site_gw_conn_x5t(struct stk_gw_conn *g, const unsigned char *der, size_t len)
{
	unsigned char *copy;

	if (g == NULL || der == NULL || len == 0)
		return NULL;
	if (g->der != NULL && g->der_len == len && memcmp(g->der, der, len) == 0)
		return g->x5t;
	if ((copy = malloc(len)) == NULL)
		return NULL;
	memcpy(copy, der, len);
	free(g->der);
	g->der = copy;
	g->der_len = len;
	stk_cert_x5t_s256(der, len, g->x5t);
	return g->x5t;
}

void
site_gw_conn_key(struct stk_gw_conn *g, const char *site_guid, const char *token,
    size_t len, const char *thumb, unsigned char key[32])
{
	if (g != NULL && g->tok != NULL && g->tok_len == len &&
	    strcmp(g->key_site, site_guid) == 0 && strcmp(g->key_x5t, thumb) == 0 &&
	    memcmp(g->tok, token, len) == 0) {
		/* Not constant-time on purpose: the token kept is the one this
		 * very connection (this TLS peer) presented; its timing tells the
		 * peer nothing it did not send itself. */
		memcpy(key, g->key, 32);
		return;
	}
	site_tokcache_key(site_guid, token, len, thumb, key);
	if (g == NULL || strlen(site_guid) >= sizeof(g->key_site) ||
	    strlen(thumb) >= sizeof(g->key_x5t))
		return;
	tc_conn_forget_token(g);
	if ((g->tok = malloc(len)) == NULL)
		return;
	memcpy(g->tok, token, len);
	g->tok_len = len;
	memcpy(g->key, key, 32);
	snprintf(g->key_site, sizeof(g->key_site), "%s", site_guid);
	snprintf(g->key_x5t, sizeof(g->key_x5t), "%s", thumb);
}

/* ---- settings the gateway reads ---- */

int
site_gw_allow_default(struct stk_site *s, uint64_t gen, int *on,
    struct stk_error *err)
{
	int r;

	if (s->gw.allow_gen == gen && gen != 0 && !s->gw.nocache) {
		*on = s->gw.allow;
		return STK_OK;
	}
	if ((r = stk_setting_get_bool(s, STK_SETTING_ALLOW_CMG, 1, on, err)) != 0)
		return r;
	s->gw.allow = *on;
	s->gw.allow_gen = gen;
	return STK_OK;
}

/* ---- entries ---- */

int
site_tokcache_get(const unsigned char key[32], int64_t now, int64_t leeway,
    const struct stk_verifier *v, struct stk_claims *c)
{
	return site_gw_get(key, now, leeway, v, 0, c, NULL) > 0;
}

int
site_gw_get(const unsigned char key[32], int64_t now, int64_t leeway,
    const struct stk_verifier *v, uint64_t gen, struct stk_claims *c,
    struct site_gw_state *st)
{
	struct tc_shard *sh;
	struct tc_entry *e;
	size_t set, w;
	int hit = 0;

	pthread_once(&tc_once, tc_init);
	memset(c, 0, sizeof(*c));
	if (!tc_on || !tc_key_ok(key))
		return 0;
	sh = tc_where(key, &set);
	pthread_mutex_lock(&sh->mu);
	for (w = 0; w < WAYS; w++) {
		e = &sh->e[set][w];
		if (!e->used || CRYPTO_memcmp(e->key, key, 32) != 0)
			continue;
		/* The time rules again, at this request's clock (as stk_verify:
		 * valid in [nbf - leeway, exp + leeway), no overflow). */
		if (!(e->exp <= INT64_MAX - leeway && now >= e->exp + leeway) &&
		    now >= e->nbf - leeway && stk_verifier_has_kid(v, e->kid)) {
			c->type = e->type;
			memcpy(c->tenant, e->tenant, sizeof(c->tenant));
			memcpy(c->id, e->id, sizeof(c->id));
			memcpy(c->subject, e->subject, sizeof(c->subject));
			memcpy(c->cnf_x5t_s256, e->cnf, sizeof(e->cnf));
			memcpy(c->kid, e->kid, sizeof(c->kid));
			memcpy(c->att, e->att, sizeof(c->att));
			c->iat = e->iat;
			c->nbf = e->nbf;
			c->exp = e->exp;
			hit = 1;
			if (st != NULL && gen != 0 && e->sgen == gen) {
				*st = e->st;
				hit = 2;
			}
		} else
			e->used = 0;   /* expired or its key left: drop it */
		break;
	}
	pthread_mutex_unlock(&sh->mu);
	__atomic_fetch_add(hit ? &tc_hits : &tc_misses, 1, __ATOMIC_RELAXED);
	if (hit == 2)
		__atomic_fetch_add(&tc_state_hits, 1, __ATOMIC_RELAXED);
	return hit;
}

void
site_tokcache_put(const unsigned char key[32], const struct stk_claims *c)
{
	struct tc_shard *sh;
	struct tc_entry *e, *victim = NULL;
	size_t set, w;

	pthread_once(&tc_once, tc_init);
	if (!tc_on || !tc_key_ok(key) || c->type != STK_TOKEN_CLIENT)
		return;
	sh = tc_where(key, &set);
	pthread_mutex_lock(&sh->mu);
	/* The same key again, else a free way, else the oldest. */
	for (w = 0; w < WAYS && victim == NULL; w++)
		if (sh->e[set][w].used && memcmp(sh->e[set][w].key, key, 32) == 0)
			victim = &sh->e[set][w];
	for (w = 0; w < WAYS && victim == NULL; w++)
		if (!sh->e[set][w].used)
			victim = &sh->e[set][w];
	if (victim == NULL) {
		victim = &sh->e[set][0];
		for (w = 1; w < WAYS; w++)
			if (sh->e[set][w].stamp < victim->stamp)
				victim = &sh->e[set][w];
	}
	e = victim;
	memcpy(e->key, key, 32);
	e->used = 1;
	e->stamp = ++sh->clock;
	e->type = c->type;
	memcpy(e->tenant, c->tenant, sizeof(e->tenant));
	memcpy(e->id, c->id, sizeof(e->id));
	memcpy(e->subject, c->subject, sizeof(e->subject));
	memcpy(e->cnf, c->cnf_x5t_s256, sizeof(e->cnf) - 1);
	e->cnf[sizeof(e->cnf) - 1] = '\0';
	memcpy(e->kid, c->kid, sizeof(e->kid));
	memcpy(e->att, c->att, sizeof(e->att));
	e->iat = c->iat;
	e->nbf = c->nbf;
	e->exp = c->exp;
	e->sgen = 0;
	pthread_mutex_unlock(&sh->mu);
}

void
site_gw_put_state(const unsigned char key[32], uint64_t gen,
    const struct site_gw_state *st)
{
	struct tc_shard *sh;
	size_t set, w;

	pthread_once(&tc_once, tc_init);
	if (!tc_on || !tc_key_ok(key) || gen == 0)
		return;
	sh = tc_where(key, &set);
	pthread_mutex_lock(&sh->mu);
	/* Only beside verified claims: an entry evicted meanwhile stays out. */
	for (w = 0; w < WAYS; w++)
		if (sh->e[set][w].used && memcmp(sh->e[set][w].key, key, 32) == 0) {
			sh->e[set][w].st = *st;
			sh->e[set][w].sgen = gen;
			break;
		}
	pthread_mutex_unlock(&sh->mu);
}

void
site_gw_state_of(const struct stk_device *d, int on, struct site_gw_state *st)
{
	memset(st, 0, sizeof(*st));
	memcpy(st->guid, d->guid, sizeof(st->guid));
	memcpy(st->thumbprint, d->thumbprint, sizeof(st->thumbprint));
	memcpy(st->last_jti, d->last_jti, sizeof(st->last_jti));
	st->blocked = d->blocked;
	st->allow_cmg = d->allow_cmg;
	st->on = on;
	st->token_used = d->token_used;
	st->last_issued_at = d->last_issued_at;
	st->token_exp = d->token_exp;
}

void
site_gw_device_of(const struct site_gw_state *st, struct stk_device *d)
{
	memset(d, 0, sizeof(*d));
	memcpy(d->guid, st->guid, sizeof(d->guid));
	memcpy(d->thumbprint, st->thumbprint, sizeof(d->thumbprint));
	memcpy(d->last_jti, st->last_jti, sizeof(d->last_jti));
	d->blocked = st->blocked;
	d->allow_cmg = st->allow_cmg;
	d->token_used = st->token_used;
	d->last_issued_at = st->last_issued_at;
	d->token_exp = st->token_exp;
}

void
stk_token_cache_stats(uint64_t *hits, uint64_t *misses)
{
	*hits = __atomic_load_n(&tc_hits, __ATOMIC_RELAXED);
	*misses = __atomic_load_n(&tc_misses, __ATOMIC_RELAXED);
}

uint64_t
site_gw_state_hits(void)
{
	return __atomic_load_n(&tc_state_hits, __ATOMIC_RELAXED);
}

void
stk_token_cache_clear(void)
{
	size_t i;

	pthread_once(&tc_once, tc_init);
	if (!tc_on)
		return;
	for (i = 0; i < SHARDS; i++) {
		pthread_mutex_lock(&tc_shards[i].mu);
		memset(tc_shards[i].e, 0, sizeof(tc_shards[i].e));
		pthread_mutex_unlock(&tc_shards[i].mu);
	}
}

int
site_verify_client_cached(struct stk_site *s, const char *token, size_t len,
    const char *thumb, int64_t now, struct stk_claims *c, struct stk_error *err)
{
	unsigned char key[32];
	int r = site_gw_verify(s, token, len, thumb, now, 0, key, c, NULL, err);

	return r > 0 ? STK_OK : r;
}

int
site_gw_verify(struct stk_site *s, const char *token, size_t len,
    const char *thumb, int64_t now, uint64_t gen, unsigned char key[32],
    struct stk_claims *c, struct site_gw_state *st, struct stk_error *err)
{
	return site_gw_verify_memo(s, token, len, thumb, now, gen, NULL, key, c, st,
	    err);
}

int
site_gw_verify_memo(struct stk_site *s, const char *token, size_t len,
    const char *thumb, int64_t now, uint64_t gen, struct stk_gw_conn *conn,
    unsigned char key[32], struct stk_claims *c, struct site_gw_state *st,
    struct stk_error *err)
{
	const struct stk_verifier *v;
	int r, hit;

	memset(c, 0, sizeof(*c));
	memset(key, 0, 32);
	if ((r = stk_site_verifier(s, &v, err)) != 0)
		return r;
	if (!s->gw.nocache) {
		site_gw_conn_key(conn, s->guid, token, len, thumb, key);
		if ((hit = site_gw_get(key, now, stk_verifier_leeway(v), v, gen, c,
		    st)) > 0)
			return hit;
	}
	r = stk_site_verify(s, token, len, STK_TOKEN_CLIENT, now, c, err);
	/* Only what the gateway would accept so far: bound to this cert. */
	if (r == 0 && !s->gw.nocache && strcmp(c->cnf_x5t_s256, thumb) == 0)
		site_tokcache_put(key, c);
	return r;
}
