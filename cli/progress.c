/* Progress of long work on stderr, for a person watching a terminal; quiet
 * when stderr is not a terminal (scripts, cron, systemd), so output that
 * scripts parse never changes. The library reports through stk_progress(). */
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "sitetoken/log.h"
#include "cli.h"

static int progress_tty = -1;
static int progress_shown;
static struct timespec progress_last;

void
cli_progress(const char *label, long long done, long long total)
{
	struct timespec now;
	long long ms;

	if (progress_tty < 0)
		progress_tty = isatty(STDERR_FILENO);
	if (!progress_tty)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(now.tv_sec - progress_last.tv_sec) * 1000 +
	    (now.tv_nsec - progress_last.tv_nsec) / 1000000;
	/* At most ten redraws a second, and always the last step. */
	if (progress_shown && ms < 100 && (total == 0 || done < total))
		return;
	progress_last = now;
	if (total > 0)
		fprintf(stderr, "\r\033[K%s %lld/%lld", label, done, total);
	else
		fprintf(stderr, "\r\033[K%s: %lld", label, done);
	fflush(stderr);
	progress_shown = 1;
}

void
cli_progress_end(void)
{
	if (progress_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		progress_shown = 0;
	}
}

static void
cli_progress_sink(void *ctx, const char *what, long long done, long long total)
{
	(void)ctx;
	cli_progress(what, done, total);
}

void
cli_progress_install(void)
{
	stk_progress_set(cli_progress_sink, NULL);
}
