/* HTTP(S) with libcurl: server certificate checked against --ca, device
 * certificate and key for mutual TLS with the gateway. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include "agent.h"

struct http_buf {
	char *data;
	size_t len;
	int overflow;
};

static size_t
http_collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct http_buf *b = userdata;
	size_t n = size * nmemb;
	char *nd;

	if (b->len + n > AGENT_RESP_MAX) {
		b->overflow = 1;
		return 0;
	}
	if ((nd = realloc(b->data, b->len + n + 1)) == NULL)
		return 0;
	b->data = nd;
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

void
agent_http_global(int init)
{
	if (init)
		curl_global_init(CURL_GLOBAL_DEFAULT);
	else
		curl_global_cleanup();
}

int
agent_http(struct agent *a, const char *method, const char *url,
    const char *json_body, const char *bearer, int cert, long *status,
    char **resp, struct stk_error *err)
{
	struct http_buf b = { NULL, 0, 0 };
	struct curl_slist *hdr = NULL;
	char path[PATH_MAX], *auth = NULL;
	CURL *c;
	CURLcode cc;
	int r = STK_OK;

	*status = 0;
	*resp = NULL;
	if ((c = curl_easy_init()) == NULL)
		return stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "curl init failed");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (a->ca_file != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, a->ca_file);
	if (cert && agent_devkey_mode(a, NULL) == 1) {
		if ((r = agent_tls_use_devkey(a, c, err)) != 0)
			goto out;
	} else if (cert) {
		snprintf(path, sizeof(path), "%s/device.crt", a->dir);
		curl_easy_setopt(c, CURLOPT_SSLCERT, path);
		snprintf(path, sizeof(path), "%s/device.key", a->dir);
		curl_easy_setopt(c, CURLOPT_SSLKEY, path);
	}
	if ((r = agent_pin_use(a, c, cert && agent_devkey_mode(a, NULL) == 1, err)) != 0)
		goto out;
	hdr = curl_slist_append(hdr, "Accept: application/json");
	if (json_body != NULL) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body);
	}
	if (bearer != NULL) {
		if (asprintf(&auth, "Authorization: Bearer %s", bearer) < 0) {
			auth = NULL;
			r = stk_error_set(err, STK_E_NOMEM, STK_LAYER_NONE, 0, "out of memory");
			goto out;
		}
		hdr = curl_slist_append(hdr, auth);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if ((cc = curl_easy_perform(c)) != CURLE_OK) {
		/* Without --ca only the system CAs are trusted: a site's own
		 * server certificate fails here, and the user needs to know why. */
		r = stk_error_set(err, STK_E_IO, STK_LAYER_NONE, (unsigned long)cc,
		    "%s %s: %s%s", method, url, curl_easy_strerror(cc),
		    cc == CURLE_PEER_FAILED_VERIFICATION && a->st.ca_hash[0] ?
		    " (no certificate in the server's chain has the pinned public key "
		    "hash: nothing was sent)" :
		    cc == CURLE_PEER_FAILED_VERIFICATION && a->ca_file == NULL ?
		    " (the server's certificate is not trusted by the system CAs: give "
		    "--ca FILE with the site's CA or server certificate)" : "");
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	*resp = b.data != NULL ? b.data : strdup("");
	b.data = NULL;
out:
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	if (auth != NULL) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	if (b.data != NULL) {
		OPENSSL_cleanse(b.data, b.len);
		free(b.data);
	}
	return r;
}
