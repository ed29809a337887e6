/* Helpers shared by the unit tests. */
#ifndef STK_TESTUTIL_H
#define STK_TESTUTIL_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh scratch directory under $STK_TEST_TMP (or /tmp). */
static inline char *
tu_tmpdir(const char *tag)
{
	const char *base = getenv("STK_TEST_TMP");
	char *p = malloc(PATH_MAX);

	snprintf(p, PATH_MAX, "%s/%s-XXXXXX", base && *base ? base : "/tmp", tag);
	if (mkdtemp(p) == NULL) {
		perror("mkdtemp");
		abort();
	}
	return p;
}

static inline void
tu_rmrf(const char *dir)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

#endif
