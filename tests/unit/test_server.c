/* Server in-process (server/): listeners on free loopback ports, request
 * parsing limits, mutual TLS binding, log lines, clean stop. Runs under
 * valgrind with the other unit tests. */
#include <curl/curl.h>
#include <jansson.h>
#include "server.h"
#include "site_fixture.h" /* sitetoken/cert.h, device.h, site.h */

struct fx {
	char *dir;
	struct stk_site *s;
	struct srv *srv;
	char crt[PATH_MAX], key[PATH_MAX];  /* device certificate and key files */
	char *dev_pem;
	char mp[64], cmg[128];
};

/* A test with a running server (setup), its fixture f. */
#define FX_TEST(name) TU_FX_TEST(struct fx, name)

struct buf {
	char *p;
	size_t n;
};

static size_t
collect(char *d, size_t sz, size_t nm, void *u)
{
	struct buf *b = u;
	char *np = realloc(b->p, b->n + sz * nm + 1);

	if (np == NULL)
		return 0;
	b->p = np;
	memcpy(b->p + b->n, d, sz * nm);
	b->n += sz * nm;
	b->p[b->n] = '\0';
	return sz * nm;
}

/* Extra request header for the next requests (CSRF tests), or NULL. */
static const char *req_header;

/* One request; returns the status, *body malloc'd. A body (a string) is
 * sent as application/json unless req_header names another Content-Type. */
static long
req(struct fx *f, const char *method, const char *url, const char *body,
    const char *bearer, int cert, char **out)
{
	struct buf b = { NULL, 0 };
	struct curl_slist *h = NULL;
	char auth[9000];
	long st = 0;
	CURL *c = curl_easy_init();

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	/* The server certificate here is self-signed without a SAN; trust and
	 * name checks are covered by the integration tests (agent --ca). */
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	if (body != NULL) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		if (req_header == NULL || strncmp(req_header, "Content-Type:", 13) != 0)
			h = curl_slist_append(h, "Content-Type: application/json");
	}
	if (req_header != NULL)
		h = curl_slist_append(h, req_header);
	if (bearer != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
		h = curl_slist_append(h, auth);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (cert) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, f->crt);
		curl_easy_setopt(c, CURLOPT_SSLKEY, f->key);
	}
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	*out = b.p ? b.p : strdup("");
	return st;
}

/* The request gets `status`, with `text` in the body unless NULL. */
static void
expect_status(struct fx *f, const char *method, const char *u, const char *body,
    const char *bearer, int cert, long status, const char *text)
{
	char *out;

	assert_int_equal(req(f, method, u, body, bearer, cert, &out), status);
	if (text != NULL && strstr(out, text) == NULL)
		fail_msg("%s %s: '%s' not in: %s", method, u, text, out);
	free(out);
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct srv_config cfg;
	struct stk_error err;
	char tkey[PATH_MAX], *tls_pem = NULL, *tls_key;
	unsigned char *der = NULL;
	size_t len = 0;

	f->dir = tu_tmpdir("server");
	f->s = sf_site_init(f->dir);
	/* Server TLS key + certificate, and a device key + certificate. */
	sf_device_cert(f->dir, "localhost", stk_now(), 2, &der, &len);
	assert_int_equal(stk_cert_der_to_pem(der, len, &tls_pem), 0);
	free(der);
	sf_device_cert(f->dir, "dev", stk_now(), 2, &der, &len);
	assert_int_equal(stk_cert_der_to_pem(der, len, &f->dev_pem), 0);
	free(der);
	snprintf(f->key, sizeof(f->key), "%s/dev.key", f->dir);
	snprintf(f->crt, sizeof(f->crt), "%s/dev.crt", f->dir);
	tu_write_file(f->crt, f->dev_pem, 0600);
	snprintf(tkey, sizeof(tkey), "%s/localhost.key", f->dir);
	tls_key = tu_read_file(tkey);
	memset(&cfg, 0, sizeof(cfg));
	cfg.mp_addr = "127.0.0.1:0";
	cfg.cmg_addr = "127.0.0.1:0";
	cfg.tls_cert_pem = tls_pem;
	cfg.tls_key_pem = tls_key;
	cfg.threads = 2;
	if (srv_start(f->s, &cfg, &f->srv, &err) != 0)
		fail_msg("server: %s", err.msg);
	free(tls_pem);
	free(tls_key);
	snprintf(f->mp, sizeof(f->mp), "http://127.0.0.1:%u/sitetoken/v1/", srv_mp_port(f->srv));
	snprintf(f->cmg, sizeof(f->cmg), "https://127.0.0.1:%u/CCM_Proxy_MutualAuth/%s/"
	    "sitetoken/v1/", srv_cmg_port(f->srv), SRV_SITE_NUMBER_DEFAULT);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	srv_stop(f->srv);
	sf_site_done(f->s, f->dir);
	free(f->dev_pem);
	free(f);
	return 0;
}

static char *
url(const struct fx *f, int cmg, const char *op)
{
	static char u[256];

	snprintf(u, sizeof(u), "%s%s", cmg ? f->cmg : f->mp, op);
	return u;
}

FX_TEST(test_parse_limits)
{
	char *big;

	/* duplicate members, truncated or whole */
	expect_status(f, "POST", url(f, 0, "register"),
	    "{\"certificate\":\"a\",\"certificate\":\"b\"", NULL, 0, 400, "bad_request");
	expect_status(f, "POST", url(f, 0, "register"),
	    "{\"certificate\":\"a\",\"certificate\":\"b\"}", NULL, 0, 400, "bad_request");
	expect_status(f, "POST", url(f, 0, "register"), "[1]", NULL, 0, 400, NULL);
	expect_status(f, "POST", url(f, 0, "register"), "{\"certificate\":1}", NULL, 0, 400, NULL);
	big = malloc(SRV_BODY_MAX + 2);
	memset(big, ' ', SRV_BODY_MAX + 1);
	big[SRV_BODY_MAX + 1] = '\0';
	expect_status(f, "POST", url(f, 0, "register"), big, NULL, 0, 413, NULL);
	free(big);
	expect_status(f, "GET", url(f, 0, "register"), NULL, NULL, 0, 405, NULL);
	expect_status(f, "GET", url(f, 0, "nope"), NULL, NULL, 0, 404, NULL);
	expect_status(f, "GET", url(f, 0, "health"), NULL, NULL, 0, 200, NULL);
}

/* The register body a device sends to the HTTP MP: certificate, and the
 * MP's challenge signed with the device key. malloc'd. */
static char *
mp_register_body(struct fx *f)
{
	struct stk_key *k = NULL;
	struct stk_error err;
	unsigned char *der = NULL, sig[256];
	size_t len = 0, siglen = sizeof(sig);
	char *out, *msg, *proof = NULL, *body, x5t[44];
	json_t *o;

	assert_int_equal(req(f, "POST", url(f, 0, "challenge"), "{}", NULL, 0, &out), 200);
	o = json_loads(out, 0, NULL);
	free(out);
	assert_int_equal(stk_cert_pem_to_der(f->dev_pem, strlen(f->dev_pem), &der, &len), 0);
	stk_cert_x5t_s256(der, len, x5t);
	free(der);
	msg = stk_pop_message(STK_POP_REGISTER, json_string_value(json_object_get(o,
	    "nonce")), x5t);
	assert_int_equal(stk_key_open(f->key, NULL, &k, &err), 0);
	assert_int_equal(stk_key_sign(k, (unsigned char *)msg, strlen(msg), sig, &siglen,
	    &err), 0);
	stk_key_close(k);
	assert_int_equal(stk_b64url_encode(sig, siglen, &proof), 0);
	json_object_set_new(o, "certificate", json_string(f->dev_pem));
	json_object_set_new(o, "proof", json_string(proof));
	json_object_del(o, "expires_at");
	json_object_del(o, "sign");
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	free(msg);
	free(proof);
	return body;
}

/* Attacker 1 (a web page a LAN browser opens): a form post (text/plain) or
 * any request carrying Origin is refused before the site sees it. */
FX_TEST(test_mp_refuses_browser_posts)
{
	char *body = mp_register_body(f);

	req_header = "Content-Type: text/plain";
	expect_status(f, "POST", url(f, 0, "register"), body, NULL, 0, 415,
	    "unsupported_media_type");
	req_header = "Origin: http://evil.example";
	expect_status(f, "POST", url(f, 0, "register"), body, NULL, 0, 403, "cross_origin_refused");
	req_header = NULL;
	/* The same body as a device sends it registers. */
	expect_status(f, "POST", url(f, 0, "register"), body, NULL, 0, 200, NULL);
	free(body);
}

FX_TEST(test_register_and_gateway)
{
	char *body, *out, *tok, path[PATH_MAX], *log;
	json_t *o;

	body = mp_register_body(f);
	assert_int_equal(req(f, "POST", url(f, 0, "register"), body, NULL, 0, &out), 200);
	free(body);
	o = json_loads(out, 0, NULL);
	free(out);
	assert_non_null(o);
	tok = strdup(json_string_value(json_object_get(o, "client_token")));
	json_decref(o);
	/* Gateway: with the bound certificate accepted, without refused. */
	expect_status(f, "GET", url(f, 1, "policy"), NULL, tok, 1, 200, NULL);
	expect_status(f, "GET", url(f, 1, "policy"), NULL, tok, 0, 401,
	    stk_refusal_code(STK_REFUSAL_NO_CLIENT_CERT));
	expect_status(f, "GET", url(f, 1, "policy"), NULL, NULL, 1, 401,
	    stk_refusal_code(STK_REFUSAL_NO_TOKEN));
	expect_status(f, "POST", url(f, 1, "renew"), "{}", tok, 1, 200, NULL);
	/* The old token is now superseded. */
	expect_status(f, "GET", url(f, 1, "policy"), NULL, tok, 1, 401,
	    stk_refusal_code(STK_REFUSAL_SUPERSEDED));
	/* Logs: the lines are there and the token is not. */
	snprintf(path, sizeof(path), "%s/logs/ClientAuth.log", stk_site_dir(f->s));
	log = tu_read_file(path);
	assert_non_null(strstr(log, "Refused policy from 127.0.0.1: no_client_certificate"));
	assert_null(strstr(log, tok));
	free(log);
	snprintf(path, sizeof(path), "%s/logs/CCM_STS.log", stk_site_dir(f->s));
	log = tu_read_file(path);
	assert_non_null(strstr(log, "(renewal)"));
	assert_null(strstr(log, tok));
	free(log);
	stk_token_free(tok);
}

FX_TEST(test_log_line)
{
	struct srv_logs *l = NULL;
	struct stk_error err;
	char path[PATH_MAX], *log, *nl;

	assert_int_equal(srv_logs_open(f->dir, &l, &err), 0);
	/* Request content with CR, LF and ESC stays on one line, escaped. */
	srv_log(l, SRV_LOG_REG, "MP_RegistrationManager", "two\r\nlines\x1b[2J %d", 1);
	srv_logs_close(l);
	snprintf(path, sizeof(path), "%s/logs/MP_RegistrationManager.log", f->dir);
	log = tu_read_file(path);
	assert_non_null(strstr(log, "] MP_RegistrationManager: two\\x0d\\x0alines\\x1b[2J 1\n"));
	assert_non_null(strstr(log, "[tid "));
	nl = strchr(log, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], '\0');
	free(log);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parse_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_and_gateway, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mp_refuses_browser_posts, setup, teardown),
	};
	int r;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return r;
}
