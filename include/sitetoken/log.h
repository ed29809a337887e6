/* sitetoken — logging. The library never prints; it calls the sink the
 * application installed. Messages never contain PINs, keys or full tokens. */
#ifndef SITETOKEN_LOG_H
#define SITETOKEN_LOG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum stk_log_level { STK_LOG_ERROR = 0, STK_LOG_WARN, STK_LOG_INFO, STK_LOG_DEBUG };

typedef void (*stk_log_fn)(void *ctx, enum stk_log_level level,
    const char *component, const char *func, int line, const char *msg);

/* Install a sink (NULL to silence). Not thread-safe: call at start-up. */
void stk_log_set(stk_log_fn fn, void *ctx, enum stk_log_level max_level);

void stk_log_emit(enum stk_log_level level, const char *component,
    const char *func, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Copy `in` into `out` (outlen > 0; always terminated, cut at a whole
 * escape) with every byte below 0x20, 0x7f and every byte from 0x80 up
 * (C1 controls, and any non-ASCII byte: records stay plain ASCII) written
 * as \xHH; with STK_ESCAPE_BACKSLASH also '\' as "\\", so an escaped
 * string is unambiguous. Request content goes through this before it
 * reaches a log line, an audit record or a terminal. Returns out. */
#define STK_ESCAPE_BACKSLASH 1
char *stk_escape(char *out, size_t outlen, const char *in, int flags);

#define STK_LOG(level, component, ...) \
	stk_log_emit((level), (component), __func__, __LINE__, __VA_ARGS__)

/* Progress of long work (audit verify, schema migrations, node add), for an
 * application that wants to show it: what is being done, how far (done of
 * total; total 0 when unknown). Called often, from the working thread; the
 * sink decides how often to draw. Not thread-safe to install: call at
 * start-up (NULL to remove). */
typedef void (*stk_progress_fn)(void *ctx, const char *what, long long done,
    long long total);
void stk_progress_set(stk_progress_fn fn, void *ctx);
void stk_progress(const char *what, long long done, long long total);

#ifdef __cplusplus
}
#endif
#endif
