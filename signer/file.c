/* Small files (include/sitetoken/file.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include "sitetoken/file.h"

char *
stk_file_read(const char *path, size_t max, size_t *len)
{
	FILE *fp;
	char *buf;
	size_t n;
	int e;

	if (len != NULL)
		*len = 0;
	if ((fp = fopen(path, "rb")) == NULL)
		return NULL;
	if ((buf = malloc(max + 1)) == NULL) {
		fclose(fp);
		errno = ENOMEM;
		return NULL;
	}
	n = fread(buf, 1, max, fp);
	if (ferror(fp)) {
		e = errno ? errno : EIO;
		fclose(fp);
		free(buf);
		errno = e;
		return NULL;
	}
	fclose(fp);
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

int
stk_file_write(const char *path, const void *data, size_t len, mode_t mode,
    struct stk_error *err)
{
	char tmp[PATH_MAX];
	int fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
		    "path too long: %.60s...", path);
	unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)) < 0)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot write %s: %s", tmp, strerror(errno));
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot write %s", tmp);
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot rename %s", tmp);
	}
	return STK_OK;
}

int
stk_dir_check_private(const char *path, const char *what, struct stk_error *err)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return stk_error_set(err, errno == ENOENT ? STK_E_NOTFOUND : STK_E_IO,
		    STK_LAYER_SYS, (unsigned long)errno, "cannot stat %s %s: %s", what,
		    path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, 0,
		    "%s %s is not a directory", what, path);
	if (st.st_uid != geteuid())
		return stk_error_set(err, STK_E_PERM, STK_LAYER_SYS, 0,
		    "%s %s belongs to uid %lu, not to this user (uid %lu): refused "
		    "(chown it, or run as its owner)", what, path,
		    (unsigned long)st.st_uid, (unsigned long)geteuid());
	if ((st.st_mode & 022) != 0)
		return stk_error_set(err, STK_E_PERM, STK_LAYER_SYS, 0,
		    "%s %s has mode %04o: group or others could replace its files "
		    "(chmod 700)", what, path, (unsigned)(st.st_mode & 07777));
	return STK_OK;
}

int
stk_file_check_secret(int fd, const char *path, const char *what,
    mode_t forbidden, struct stk_error *err)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, (unsigned long)errno,
		    "cannot stat %s %s: %s", what, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return stk_error_set(err, STK_E_IO, STK_LAYER_SYS, 0,
		    "%s %s is not a regular file", what, path);
	if (st.st_uid != geteuid())
		return stk_error_set(err, STK_E_PERM, STK_LAYER_SYS, 0,
		    "%s %s belongs to uid %lu, not to this user (uid %lu): refused "
		    "(chown it)", what, path, (unsigned long)st.st_uid,
		    (unsigned long)geteuid());
	if ((st.st_mode & forbidden) != 0)
		return stk_error_set(err, STK_E_PERM, STK_LAYER_SYS, 0,
		    "%s %s has mode %04o: it must not be accessible by "
		    "group or others (chmod 600)", what, path,
		    (unsigned)(st.st_mode & 07777));
	return STK_OK;
}

int
stk_process_harden(void)
{
	struct rlimit rl = { 0, 0 };
	int r = 0;

	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		r = -1;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		r = -1;
	return r;
}
