/* Verified-token cache of the gateway (site_tokcache_*, site_int.h).
 *
 * What it saves: the signature check and claim parse of a client token the
 * gateway has already verified for the same TLS client certificate. What it
 * never holds: anything about the device's current state. dev_auth reads
 * the device row (blocked, last_jti, allow-cmg) and the allow-cmg setting
 * from the store on every request, hit or miss, so a block, an unblock, a
 * renewal (the old jti superseded) or an allow-cmg change made on any node
 * applies to the very next request on every node: staleness 0. A hit also
 * re-applies the time rules at the request's `now`, and requires that the
 * key that signed the token is still in the handle's current key set, so a
 * retired key's tokens stop hitting when the handle's key set is refreshed
 * (site/keys/keys.c: at most SITE_KEYS_TTL seconds, the same bound as the
 * verifier without any cache).
 *
 * Bounded and sharded: SHARDS independent tables of WAYS-way sets, each
 * with its own mutex (no global lock); a full set evicts its oldest entry.
 * Key: SHA-256 over the site GUID, the token and the certificate's
 * thumbprint, so a token presented with another certificate never hits.
 * SITETOKEN_TOKEN_CACHE=0 in the environment turns it off (benchmarks of
 * the cold path). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
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
static pthread_once_t tc_md_once = PTHREAD_ONCE_INIT;

static void
tc_md_fetch(void)
{
	tc_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void
site_tokcache_key(const char *site_guid, const char *token, size_t len,
    const char *thumb, unsigned char key[32])
{
	EVP_MD_CTX *md;
	unsigned int n = 32;

	/* Fetched once: EVP_sha256() looks it up in the provider store (a
	 * read lock) on every call. */
	pthread_once(&tc_md_once, tc_md_fetch);
	md = EVP_MD_CTX_new();
	if (md == NULL || EVP_DigestInit_ex(md, tc_sha256 != NULL ? tc_sha256 :
	    EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, site_guid, strlen(site_guid) + 1) != 1 ||
	    EVP_DigestUpdate(md, thumb, strlen(thumb) + 1) != 1 ||
	    EVP_DigestUpdate(md, token, len) != 1 ||
	    EVP_DigestFinal_ex(md, key, &n) != 1)
		memset(key, 0, 32);  /* an all-zero key is never stored */
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

int
site_tokcache_get(const unsigned char key[32], int64_t now, int64_t leeway,
    const struct stk_verifier *v, struct stk_claims *c)
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
		} else
			e->used = 0;   /* expired or its key left: drop it */
		break;
	}
	pthread_mutex_unlock(&sh->mu);
	__atomic_fetch_add(hit ? &tc_hits : &tc_misses, 1, __ATOMIC_RELAXED);
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
	pthread_mutex_unlock(&sh->mu);
}

void
stk_token_cache_stats(uint64_t *hits, uint64_t *misses)
{
	*hits = __atomic_load_n(&tc_hits, __ATOMIC_RELAXED);
	*misses = __atomic_load_n(&tc_misses, __ATOMIC_RELAXED);
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
	const struct stk_verifier *v;
	unsigned char key[32];
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = stk_site_verifier(s, &v, err)) != 0)
		return r;
	site_tokcache_key(s->guid, token, len, thumb, key);
	if (site_tokcache_get(key, now, stk_verifier_leeway(v), v, c))
		return STK_OK;
	r = stk_site_verify(s, token, len, STK_TOKEN_CLIENT, now, c, err);
	/* Only what the gateway would accept so far: bound to this cert. */
	if (r == 0 && strcmp(c->cnf_x5t_s256, thumb) == 0)
		site_tokcache_put(key, c);
	return r;
}
