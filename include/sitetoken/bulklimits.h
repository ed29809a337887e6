/* sitetoken — limits on a bulk registration token: a use limit
 * (`bulk new --max-uses N`) and a network binding (`--source CIDR,...`).
 *
 * Limits live in their own table (bulk_limits), one row per limited token;
 * a token without a row has neither limit. A use is counted by a
 * conditional UPDATE inside the registration's transaction, so concurrent
 * registrations on several nodes of one store use it exactly once each.
 *
 * Thread contract: as for the rest of the site API, one stk_site handle is
 * used by one thread at a time; the parse functions are pure and
 * thread-safe. */
#ifndef SITETOKEN_BULKLIMITS_H
#define SITETOKEN_BULKLIMITS_H

#include <stddef.h>
#include "sitetoken/error.h"
#include "sitetoken/site.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STK_BULK_MAX_USES_MAX 1000000 /* a larger limit is a typo, not a policy */
#define STK_BULK_SOURCES_MAX 8        /* CIDRs per token */
#define STK_BULK_SOURCES_LEN 512      /* normalised "cidr,cidr" text, with NUL
                                        (= sizeof stk_cert_row.sources) */

/* Refusals: STK_REFUSAL_BULK_EXHAUSTED, STK_REFUSAL_BULK_SOURCE
 * (sitetoken/refusal.h). */

struct stk_bulk_limits {
	long max_uses;                      /* 0: no use limit */
	char sources[STK_BULK_SOURCES_LEN]; /* normalised CIDR list, "" for anywhere */
};

/* "1".."1000000" -> *n; anything else (0, negative, not a whole number,
 * over the maximum) is STK_E_ARG with a message naming the value. */
int stk_bulk_parse_max_uses(const char *s, long *n, struct stk_error *err);

/* "10.0.0.0/8,2001:db8::/32" -> normalised list in out (network address,
 * prefix length; a bare address is a /32 or /128). Malformed, host bits set,
 * prefix out of range, empty items or over STK_BULK_SOURCES_MAX: STK_E_ARG. */
int stk_bulk_parse_sources(const char *s, char *out, size_t outlen,
    struct stk_error *err);

/* 1 when the address `peer` (text, IPv4 or IPv6) is inside one of the
 * normalised `sources`; 0 otherwise (an unparsable peer is outside). */
int stk_bulk_source_match(const char *sources, const char *peer);

/* As stk_bulk_new, recording the limits (lim may be NULL: none) in the
 * same transaction as the token's record. */
int stk_bulk_new_limited(struct stk_site *s, long minutes,
    const struct stk_bulk_limits *lim, const char *actor, char **token,
    struct stk_bulk_record *rec, struct stk_error *err);

/* The limits of token `guid`: *lim zeroed and *uses 0 when it has none. */
int stk_bulk_limits_get(struct stk_site *s, const char *guid,
    struct stk_bulk_limits *lim, long *uses, struct stk_error *err);

/* Registration hooks (site/registration/registration.c). source_check: STK_E_TOKEN_SOURCE when
 * the token is bound to networks that do not contain `peer`. use: inside the
 * registration transaction; counts one use, or STK_E_TOKEN_EXHAUSTED when
 * the limit is reached (nothing changed). */
int stk_bulk_limits_source_check(struct stk_site *s, const char *guid,
    const char *peer, struct stk_error *err);
int stk_bulk_limits_use(struct stk_site *s, const char *guid,
    struct stk_error *err);

#ifdef __cplusplus
}
#endif
#endif
