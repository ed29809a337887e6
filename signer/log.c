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

void
stk_log_emit(enum stk_log_level level, const char *component,
    const char *func, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (log_fn == NULL || level > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_fn(log_ctx, level, component, func, line, msg);
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
