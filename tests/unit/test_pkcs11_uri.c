/* RFC 7512 PKCS#11 URI parsing and the PIN sources of the pkcs11 backend
 * (no token needed). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/stat.h>
#include "sitetoken/error.h"
#include "p11_int.h"
#include "testutil.h"

static void
test_parse_full(void **state)
{
	struct stk_p11_uri u;
	struct stk_error err;

	(void)state;
	assert_int_equal(stk_p11_uri_parse("pkcs11:token=My%20Site;manufacturer=SoftHSM%20project;"
	    "model=SoftHSM%20v2;serial=3d34b7;object=site%3bkey;id=%01%a0%FF;type=private;"
	    "x-vendor=ignored?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
	    &u, &err), 0);
	assert_string_equal(u.token, "My Site");
	assert_string_equal(u.manufacturer, "SoftHSM project");
	assert_string_equal(u.model, "SoftHSM v2");
	assert_string_equal(u.serial, "3d34b7");
	assert_string_equal(u.object, "site;key");
	assert_string_equal(u.type, "private");
	assert_int_equal(u.id_len, 3);
	assert_memory_equal(u.id, "\x01\xa0\xff", 3);
	assert_string_equal(u.module_path, "/usr/lib/softhsm/libsofthsm2.so");
	assert_string_equal(u.pin_source, "file:/run/pin");
	stk_p11_uri_clear(&u);
	stk_p11_uri_clear(&u); /* twice is fine */
	stk_p11_uri_clear(NULL);
}

static void
test_parse_minimal(void **state)
{
	struct stk_p11_uri u;
	struct stk_error err;

	(void)state;
	assert_int_equal(stk_p11_uri_parse("pkcs11:", &u, &err), 0);
	assert_null(u.token);
	assert_null(u.id);
	stk_p11_uri_clear(&u);
	/* The scheme is case-insensitive (RFC 3986). */
	assert_int_equal(stk_p11_uri_parse("PKCS11:object=a", &u, &err), 0);
	assert_string_equal(u.object, "a");
	stk_p11_uri_clear(&u);
	/* Binary ids may hold NUL. */
	assert_int_equal(stk_p11_uri_parse("pkcs11:id=%00%01", &u, &err), 0);
	assert_int_equal(u.id_len, 2);
	stk_p11_uri_clear(&u);
}

static void
refused(const char *uri, const char *why)
{
	struct stk_p11_uri u;
	struct stk_error err;

	stk_error_clear(&err);
	assert_int_equal(stk_p11_uri_parse(uri, &u, &err), STK_E_ARG);
	assert_null(u.token);
	assert_null(u.object);
	if (strstr(err.msg, why) == NULL)
		fail_msg("'%s': message '%s' lacks '%s'", uri, err.msg, why);
	assert_null(strstr(err.msg, "S3cr3t")); /* the PIN of the pin-value row */
}

static void
test_refused(void **state)
{
	(void)state;
	refused("file:/x", "must start with 'pkcs11:'");
	refused("pkcs11:token=a;token=b", "given twice");
	refused("pkcs11:id=%01;id=%02", "given twice");
	refused("pkcs11:token=a%2", "bad percent-encoding");
	refused("pkcs11:token=a%zz", "bad percent-encoding");
	refused("pkcs11:token=a%00b", "bad percent-encoding");
	refused("pkcs11:token=a;;object=b", "empty attribute");
	refused("pkcs11:token", "without '='");
	refused("pkcs11:slot-id=1", "not supported");
	refused("pkcs11:token=a?module-name=softhsm", "not supported");
	/* query names are not path names and the other way round */
	refused("pkcs11:module-path=/x.so", "not supported");
	refused("pkcs11:token=a?object=b", "not supported");
	refused("pkcs11:token=a#frag", "fragment");
	/* A PIN in a URI is refused, and the message never repeats it. */
	refused("pkcs11:token=a?pin-value=S3cr3t-987", "pin-value is refused");
}

static void
test_format_roundtrip(void **state)
{
	struct stk_p11_uri u, v;
	struct stk_error err;
	char *text = NULL;

	(void)state;
	assert_int_equal(stk_p11_uri_parse("pkcs11:token=My%20Site;object=a%2Fb%3Bc;"
	    "id=%00%ab;type=private?module-path=/opt/lib/x.so&pin-source=file:/p",
	    &u, &err), 0);
	assert_int_equal(stk_p11_uri_format(&u, &text), 0);
	assert_string_equal(text, "pkcs11:token=My%20Site;object=a%2Fb%3Bc;"
	    "id=%00%AB;type=private?module-path=/opt/lib/x.so&pin-source=file:/p");
	assert_int_equal(stk_p11_uri_parse(text, &v, &err), 0);
	assert_string_equal(v.token, u.token);
	assert_string_equal(v.object, u.object);
	assert_int_equal(v.id_len, u.id_len);
	assert_memory_equal(v.id, u.id, u.id_len);
	free(text);
	stk_p11_uri_clear(&u);
	stk_p11_uri_clear(&v);
}

/* ---- PIN sources ---- */

static char *
write_pin(const char *dir, const char *content, mode_t mode)
{
	static char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/pin", dir);
	unlink(path);
	assert_non_null(f = fopen(path, "w"));
	fputs(content, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void
test_pin_sources(void **state)
{
	char *dir = tu_tmpdir("p11pin"), pin[STK_P11_PIN_MAX], src[PATH_MAX + 8];
	struct stk_error err;
	const char *path;

	(void)state;
	unsetenv("SITETOKEN_PKCS11_PIN");
	unsetenv("SITETOKEN_PKCS11_PIN_FILE");

	path = write_pin(dir, "123456\nsecond line\n", 0600);
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(stk_p11_pin_get(src, "t", pin, sizeof(pin), &err), 0);
	assert_string_equal(pin, "123456");
	/* a bare absolute path is a file too */
	assert_int_equal(stk_p11_pin_get(path, "t", pin, sizeof(pin), &err), 0);
	assert_string_equal(pin, "123456");
	/* pin-source beats the environment */
	setenv("SITETOKEN_PKCS11_PIN", "env-pin", 1);
	assert_int_equal(stk_p11_pin_get(src, "t", pin, sizeof(pin), &err), 0);
	assert_string_equal(pin, "123456");
	/* then the environment, which beats the PIN file variable */
	setenv("SITETOKEN_PKCS11_PIN_FILE", path, 1);
	assert_int_equal(stk_p11_pin_get(NULL, "t", pin, sizeof(pin), &err), 0);
	assert_string_equal(pin, "env-pin");
	unsetenv("SITETOKEN_PKCS11_PIN");
	assert_int_equal(stk_p11_pin_get(NULL, "t", pin, sizeof(pin), &err), 0);
	assert_string_equal(pin, "123456");

	/* Readable or writable by group/others: refused, buffer left empty. */
	write_pin(dir, "123456\n", 0640);
	assert_int_equal(stk_p11_pin_get(src, "t", pin, sizeof(pin), &err), STK_E_PERM);
	assert_string_equal(pin, "");
	assert_non_null(strstr(err.msg, "chmod 600"));
	write_pin(dir, "123456\n", 0602);
	assert_int_equal(stk_p11_pin_get(NULL, "t", pin, sizeof(pin), &err), STK_E_PERM);
	/* Empty, missing, or a command: refused. */
	write_pin(dir, "\n", 0600);
	assert_int_equal(stk_p11_pin_get(src, "t", pin, sizeof(pin), &err), STK_E_AUTH);
	assert_int_equal(stk_p11_pin_get("file:/nonexistent/pin", "t", pin,
	    sizeof(pin), &err), STK_E_NOTFOUND);
	assert_int_equal(stk_p11_pin_get("|/bin/echo 1234", "t", pin, sizeof(pin),
	    &err), STK_E_ARG);
	unsetenv("SITETOKEN_PKCS11_PIN_FILE");
	tu_rmrf(dir);
	free(dir);
}

/* No PIN anywhere and stdin not a terminal (as under ctest): a clear
 * refusal instead of a hang on a prompt nobody sees. */
static void
test_pin_none(void **state)
{
	char pin[STK_P11_PIN_MAX];
	struct stk_error err;
	FILE *f;

	(void)state;
	unsetenv("SITETOKEN_PKCS11_PIN");
	unsetenv("SITETOKEN_PKCS11_PIN_FILE");
	assert_non_null(f = freopen("/dev/null", "r", stdin));
	assert_int_equal(stk_p11_pin_get(NULL, "site", pin, sizeof(pin), &err),
	    STK_E_AUTH);
	assert_non_null(strstr(err.msg, "SITETOKEN_PKCS11_PIN"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_full),
		cmocka_unit_test(test_parse_minimal),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_format_roundtrip),
		cmocka_unit_test(test_pin_sources),
		cmocka_unit_test(test_pin_none),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
