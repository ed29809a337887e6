/* The token user PIN. It never comes from argv (other users can read it in
 * /proc), is never logged, and every buffer that held it is wiped. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include "sitetoken/file.h"
#include "p11_int.h"

static int
p11_pin_file(const char *path, char *pin, size_t pinsz, struct stk_error *err)
{
	ssize_t n;
	size_t got = 0;
	int fd, r = STK_OK;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return stk_error_set(err, errno == ENOENT ? STK_E_NOTFOUND : STK_E_IO,
		    STK_LAYER_SYS, (unsigned long)errno,
		    "cannot open PIN file %s: %s", path, strerror(errno));
	/* Regular, 0600 or stricter, and owned by this user. */
	if ((r = stk_file_check_secret(fd, path, "PIN file", 077, err)) != 0)
		goto out;
	while (got < pinsz - 1 &&
	    (n = read(fd, pin + got, pinsz - 1 - got)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = stk_error_set(err, STK_E_IO, STK_LAYER_SYS,
			    (unsigned long)errno, "cannot read PIN file %s", path);
			goto out;
		}
		got += (size_t)n;
	}
	pin[got] = '\0';
	/* Only the first line counts, as with most PIN files. */
	pin[strcspn(pin, "\r\n")] = '\0';
	if (pin[0] == '\0')
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "PIN file %s is empty", path);
out:
	close(fd);
	if (r != STK_OK)
		OPENSSL_cleanse(pin, pinsz);
	return r;
}

static int
p11_pin_prompt(const char *token_label, char *pin, size_t pinsz,
    struct stk_error *err)
{
	struct termios old, quiet;
	size_t n = 0;
	ssize_t got;
	char c;
	int echo_off = 0, r = STK_OK;

	fprintf(stderr, "PIN for PKCS#11 token '%s': ", token_label);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		echo_off = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
	}
	/* read(2), not stdio: a FILE buffer would keep a copy of the PIN
	 * that nothing wipes. */
	for (;;) {
		got = read(STDIN_FILENO, &c, 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0 || c == '\n' || c == '\r')
			break;
		if (n + 1 < pinsz)
			pin[n++] = c;
	}
	pin[n] = '\0';
	c = 0;
	if (echo_off)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	if (n == 0)
		r = stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
		    "no PIN entered");
	return r;
}

int
stk_p11_pin_get(const char *pin_source, const char *token_label, char *pin,
    size_t pinsz, struct stk_error *err)
{
	const char *env;

	memset(pin, 0, pinsz);
	if (pin_source != NULL) {
		/* RFC 7512 pin-source is a URI; a bare absolute path is
		 * accepted too. Running a command is deliberately not. */
		if (strncmp(pin_source, "file:", 5) == 0) {
			pin_source += 5;
			if (strncmp(pin_source, "//", 2) == 0)
				pin_source += 2;
		} else if (pin_source[0] != '/')
			return stk_error_set(err, STK_E_ARG, STK_LAYER_NONE, 0,
			    "pin-source must be file:PATH or an absolute path");
		return p11_pin_file(pin_source, pin, pinsz, err);
	}
	if ((env = getenv("SITETOKEN_PKCS11_PIN")) != NULL && *env != '\0') {
		if (strlen(env) >= pinsz)
			return stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
			    "SITETOKEN_PKCS11_PIN is too long");
		memcpy(pin, env, strlen(env) + 1);
		return STK_OK;
	}
	if ((env = getenv("SITETOKEN_PKCS11_PIN_FILE")) != NULL && *env != '\0')
		return p11_pin_file(env, pin, pinsz, err);
	if (isatty(STDIN_FILENO))
		return p11_pin_prompt(token_label, pin, pinsz, err);
	return stk_error_set(err, STK_E_AUTH, STK_LAYER_NONE, 0,
	    "token '%s' needs a user PIN: set SITETOKEN_PKCS11_PIN or "
	    "SITETOKEN_PKCS11_PIN_FILE, or add pin-source=file:PATH to the URI",
	    token_label);
}
