/* Small files (include/sitetoken/file.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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
