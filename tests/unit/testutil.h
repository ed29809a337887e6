/* What every unit test includes: cmocka (and the headers it needs before
 * it), scratch directories and files, and the main() of a test program. */
#ifndef STK_TESTUTIL_H
#define STK_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* main() running the tests listed after the group fixtures as one group:
 * TU_MAIN(NULL, NULL, cmocka_unit_test(test_a), ...) */
#define TU_MAIN(group_setup, group_teardown, ...) \
	int main(void) \
	{ \
		const struct CMUnitTest tests[] = { __VA_ARGS__ }; \
		return cmocka_run_group_tests(tests, group_setup, group_teardown); \
	}

/* A cmocka test without a fixture: TU_TEST(test_x) { ... } */
#define TU_TEST(name) static void name(void **state __attribute__((unused)))

/* A cmocka test whose body gets the fixture *state as `f`, of type fxtype:
 * #define FX_TEST(name) TU_FX_TEST(struct fx, name), then FX_TEST(test_x) { ... }. */
#define TU_FX_TEST(fxtype, name) \
	static void name##_body(fxtype *f); \
	static void name(void **state) { name##_body(*state); } \
	static void name##_body(fxtype *f)

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

/* A file holding text, with mode mode (a failure fails the test). */
static inline void
tu_write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(path, mode), 0);
}

/* The first 64 KiB of a file, NUL-terminated; free it. */
static inline char *
tu_read_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char *p = calloc(1, 65536);
	size_t n;

	assert_non_null(fp);
	n = fread(p, 1, 65535, fp);
	p[n] = '\0';
	fclose(fp);
	return p;
}

#endif
