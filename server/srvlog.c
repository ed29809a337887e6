/* Server log files, named as administrators of the original system expect
 * them. Callers pass GUIDs and jti only, never a token. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "sitetoken/log.h"
#include "server.h"

static const char *const srvlog_names[SRV_LOG_COUNT] = {
	"CCM_STS.log", "MP_RegistrationManager.log", "ClientAuth.log",
};

struct srv_logs {
	pthread_mutex_t mu;
	int fd[SRV_LOG_COUNT];
};

int
srv_logs_open(const char *site_dir, struct srv_logs **out, struct stk_error *err)
{
	struct srv_logs *l;
	char path[PATH_MAX];
	int i;

	*out = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	pthread_mutex_init(&l->mu, NULL);
	for (i = 0; i < SRV_LOG_COUNT; i++)
		l->fd[i] = -1;
	snprintf(path, sizeof(path), "%s/logs", site_dir);
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		goto fail;
	for (i = 0; i < SRV_LOG_COUNT; i++) {
		snprintf(path, sizeof(path), "%s/logs/%s", site_dir, srvlog_names[i]);
		if ((l->fd[i] = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		    0640)) < 0)
			goto fail;
	}
	*out = l;
	return STK_OK;
fail:
	stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
	    "cannot open log %s: %s", path, strerror(errno));
	srv_logs_close(l);
	return STK_E_IO;
}

void
srv_logs_close(struct srv_logs *l)
{
	int i;

	if (l == NULL)
		return;
	for (i = 0; i < SRV_LOG_COUNT; i++)
		if (l->fd[i] >= 0)
			close(l->fd[i]);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

void
srv_log(struct srv_logs *l, enum srv_log_file which, const char *component,
    const char *fmt, ...)
{
	char line[1024], raw[1024], ts[32];
	struct tm tm;
	time_t now = (time_t)stk_now();
	va_list ap;
	int n, m;

	if (l == NULL || which < 0 || which >= SRV_LOG_COUNT)
		return;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	n = snprintf(line, sizeof(line), "%s [tid %ld] %s: ", ts,
	    (long)syscall(SYS_gettid), component);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	m = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	/* One event, one line: CR, LF, ESC and every other control byte a
	 * message might carry from a request are written as \xHH. */
	stk_escape(line + n, sizeof(line) - (size_t)n - 1, raw, 0);
	n += (int)strlen(line + n);
	line[n++] = '\n';
	pthread_mutex_lock(&l->mu);
	if (write(l->fd[which], line, (size_t)n) < 0) {
		/* Nothing sensible to do: the server never prints. */
	}
	pthread_mutex_unlock(&l->mu);
}
