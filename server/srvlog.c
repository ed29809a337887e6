/* Server log files, named as administrators of the original system expect
 * them. Callers pass GUIDs and jti only, never a token. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "sitetoken/file.h"
#include "sitetoken/log.h"
#include "server.h"

static const char *const srvlog_names[SRV_LOG_COUNT] = {
	"CCM_STS.log", "MP_RegistrationManager.log", "ClientAuth.log",
};

struct srv_logs {
	pthread_mutex_t mu;
	int fd[SRV_LOG_COUNT];
	char dir[PATH_MAX - 64]; /* <site>/logs, room left for a file name */
	unsigned int reopened; /* srvlog_reopen_gen when last (re)opened */
};

/* Bumped by srv_logs_reopen() (from the SIGHUP waiter); every open log set
 * compares it under its mutex before writing, so no file descriptor is
 * touched from a signal context or while another thread writes. */
static atomic_uint srvlog_reopen_gen;

static int
srvlog_open_one(const struct srv_logs *l, int i)
{
	char path[PATH_MAX];

	int n = snprintf(path, sizeof(path), "%s/%s", l->dir, srvlog_names[i]);

	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW |
	    O_NOCTTY, 0640);
}

void
srv_logs_reopen(void)
{
	atomic_fetch_add(&srvlog_reopen_gen, 1);
}

/* Called with l->mu held. A file that cannot be reopened keeps its old
 * descriptor: logging to a renamed file beats losing the line. */
static void
srvlog_maybe_reopen(struct srv_logs *l)
{
	unsigned int g = atomic_load(&srvlog_reopen_gen);
	int i, fd;

	if (g == l->reopened)
		return;
	l->reopened = g;
	for (i = 0; i < SRV_LOG_COUNT; i++) {
		if ((fd = srvlog_open_one(l, i)) < 0)
			continue;
		close(l->fd[i]);
		l->fd[i] = fd;
	}
}

int
srv_logs_open(const char *site_dir, struct srv_logs **out, struct stk_error *err)
{
	struct srv_logs *l;
	char path[PATH_MAX];
	int i, r = STK_OK;

	*out = NULL;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
	pthread_mutex_init(&l->mu, NULL);
	for (i = 0; i < SRV_LOG_COUNT; i++)
		l->fd[i] = -1;
	l->reopened = atomic_load(&srvlog_reopen_gen);
	snprintf(path, sizeof(path), "%s/logs", site_dir);
	if (strlen(path) >= sizeof(l->dir)) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, ENAMETOOLONG,
		    "log directory %s: name too long", path);
		goto out;
	}
	memcpy(l->dir, path, strlen(path) + 1);
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot make %s: %s", path, strerror(errno));
		goto out;
	}
	if ((r = stk_dir_check_private(path, "log directory", err)) != 0)
		goto out;
	for (i = 0; i < SRV_LOG_COUNT; i++) {
		snprintf(path, sizeof(path), "%s/logs/%s", site_dir, srvlog_names[i]);
		/* O_NOFOLLOW: a symlink planted in logs/ must not make the server
		 * append to a file of the attacker's choosing (attacker 5). */
		if ((l->fd[i] = srvlog_open_one(l, i)) < 0) {
			r = errno == ELOOP ? stk_error_set(err, STK_E_PERM, STK_LAYER_SYS,
			    ELOOP, "log %s is a symbolic link: refused (remove it)", path) :
			    stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
			    "cannot open log %s: %s", path, strerror(errno));
			goto out;
		}
		if ((r = stk_file_check_secret(l->fd[i], path, "log", 022, err)) != 0)
			goto out;
	}
	*out = l;
	l = NULL;
out:
	srv_logs_close(l);
	return r;
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

/* Append src at *n in buf (size len), truncating; buf stays terminated. */
static void
srvlog_cat(char *buf, size_t len, size_t *n, const char *src)
{
	size_t k = strlen(src);

	if (*n >= len)
		return;
	if (k > len - 1 - *n)
		k = len - 1 - *n;
	memcpy(buf + *n, src, k);
	*n += k;
	buf[*n] = '\0';
}

/* Write one line: prefix, component, the message raw (escaped). */
static void
srvlog_write(struct srv_logs *l, enum srv_log_file which, const char *component,
    const char *raw)
{
	/* Per thread: the time stamp of the current second and the thread id
	 * (gmtime, strftime, a system call) are formatted once, not per line. */
	static _Thread_local time_t pre_at = (time_t)-1;
	static _Thread_local char pre[64];
	static _Thread_local long tid;
	char line[1024];
	struct tm tm;
	time_t now = (time_t)stk_now();
	size_t n = 0;

	if (now != pre_at) {
		char ts[32];

		if (tid == 0)
			tid = (long)syscall(SYS_gettid);
		gmtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		snprintf(pre, sizeof(pre), "%s [tid %ld] ", ts, tid);
		pre_at = now;
	}
	line[0] = '\0';
	srvlog_cat(line, sizeof(line), &n, pre);
	srvlog_cat(line, sizeof(line), &n, component);
	srvlog_cat(line, sizeof(line), &n, ": ");
	if (n >= sizeof(line) - 2)
		return;
	/* One event, one line: CR, LF, ESC and every other control byte a
	 * message might carry from a request are written as \xHH. */
	stk_escape(line + n, sizeof(line) - n - 1, raw, 0);
	n += strlen(line + n);
	line[n++] = '\n';
	pthread_mutex_lock(&l->mu);
	srvlog_maybe_reopen(l);
	if (write(l->fd[which], line, n) < 0) {
		/* Nothing sensible to do: the server never prints. */
	}
	pthread_mutex_unlock(&l->mu);
}

void
srv_log(struct srv_logs *l, enum srv_log_file which, const char *component,
    const char *fmt, ...)
{
	char raw[1024];
	va_list ap;
	int m;

	if (l == NULL || which < 0 || which >= SRV_LOG_COUNT)
		return;
	va_start(ap, fmt);
	m = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	srvlog_write(l, which, component, raw);
}

void
srv_log_parts(struct srv_logs *l, enum srv_log_file which, const char *component,
    const char *const *parts, size_t nparts)
{
	char raw[1024];
	size_t i, n = 0;

	if (l == NULL || which < 0 || which >= SRV_LOG_COUNT)
		return;
	raw[0] = '\0';
	for (i = 0; i < nparts; i++)
		srvlog_cat(raw, sizeof(raw), &n, parts[i] != NULL ? parts[i] : "");
	srvlog_write(l, which, component, raw);
}
