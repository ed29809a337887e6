#include <stdarg.h>
#include <stdio.h>
#include "sitetoken/log.h"

static stk_log_fn log_fn;
static void *log_ctx;
static enum stk_log_level log_max = STK_LOG_INFO;

void
stk_log_set(stk_log_fn fn, void *ctx, enum stk_log_level max_level)
{
	log_fn = fn;
	log_ctx = ctx;
	log_max = max_level;
}

char *
stk_escape(char *out, size_t outlen, const char *in, int flags)
{
	static const char hx[] = "0123456789abcdef";
	size_t o = 0;
	const unsigned char *p;

	for (p = (const unsigned char *)(in ? in : ""); *p != '\0'; p++) {
		if (*p < 0x20 || *p >= 0x7f) {
			if (o + 4 >= outlen)
				break;
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hx[*p >> 4];
			out[o++] = hx[*p & 15];
		} else if (*p == '\\' && (flags & STK_ESCAPE_BACKSLASH)) {
			if (o + 2 >= outlen)
				break;
			out[o++] = '\\';
			out[o++] = '\\';
		} else {
			if (o + 1 >= outlen)
				break;
			out[o++] = (char)*p;
		}
	}
	out[o] = '\0';
	return out;
}

void
stk_log_emit(enum stk_log_level level, const char *component,
    const char *func, int line, const char *fmt, ...)
{
	char raw[1024], msg[1024];
	va_list ap;

	if (log_fn == NULL || level > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/* A message may carry request content: one line, no terminal control. */
	log_fn(log_ctx, level, component, func, line, stk_escape(msg, sizeof(msg),
	    raw, 0));
}

static stk_progress_fn progress_fn;
static void *progress_ctx;

void
stk_progress_set(stk_progress_fn fn, void *ctx)
{
	progress_fn = fn;
	progress_ctx = ctx;
}

void
stk_progress(const char *what, long long done, long long total)
{
	if (progress_fn != NULL)
		progress_fn(progress_ctx, what, done, total);
}
