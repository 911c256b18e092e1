/* kt-http.c - HTTPS to the server through libcurl, and request signing. */
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "kt-int.h"
#include "util.h"

#define KT_RESP_MAX (256L * 1024 * 1024)

int
kt_http_init(void)
{
	static int done;

	if (!done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -1;
		done = 1;
	}
	return 0;
}

int
kt_sign(const char *secret_hex, const char *method, const char *target,
    const char *ts, const void *body, size_t bodylen, char sig[65])
{
	unsigned char key[KT_SECRET_LEN], mac[CRYPTO_MAC_LEN];
	int ret = -1;

	if (crypto_hex_decode(secret_hex, strlen(secret_hex), key,
	    sizeof(key)) == -1 ||
	    crypto_kt1_mac(key, sizeof(key), method, target, ts, body, bodylen,
	    mac) == -1)
		goto out;
	hex_encode(mac, sizeof(mac), sig, 0);
	ret = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(mac, sizeof(mac));
	return ret;
}

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct kt_resp *r = arg;
	size_t n = size * nmemb;
	char *b;

	if (r->len + n > (size_t)KT_RESP_MAX)
		return 0;
	if ((b = realloc(r->body, r->len + n + 1)) == NULL)
		return 0;
	r->body = b;
	memcpy(r->body + r->len, ptr, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

int
kt_resp_failover(const struct kt_resp *r)
{
	return r->net_failed || r->status >= 500;
}

void
kt_resp_free(struct kt_resp *r)
{
	if (r->body != NULL)
		freezero(r->body, r->len);
	memset(r, 0, sizeof(*r));
}

int
kt_http(struct kt_client *c, const char *base, const char *method,
    const char *target, const char *body, size_t bodylen, int flags,
    struct kt_resp *r)
{
	CURL *h = NULL;
	struct curl_slist *hdrs = NULL, *t;
	char errbuf[CURL_ERROR_SIZE] = "", *url = NULL, ts[32], sig[65];
	char auth[256];
	CURLcode cc;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	if (asprintf(&url, "%s%s", base, target) == -1) {
		url = NULL;
		kt_seterr(c, "out of memory");
		goto out;
	}
	if ((h = curl_easy_init()) == NULL) {
		kt_seterr(c, "libcurl: cannot make a handle");
		goto out;
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (body != NULL)
		hdrs = curl_slist_append(hdrs,
		    "Content-Type: application/json");
	if (flags & KT_HTTP_SIGN) {
		snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
		if (c->secret_hex == NULL || kt_sign(c->secret_hex, method,
		    target, ts, body, body != NULL ? bodylen : 0, sig) != 0) {
			kt_seterr(c, "cannot sign the request");
			goto out;
		}
		snprintf(auth, sizeof(auth), "Authorization: KT1-HMAC-SHA256 "
		    "fp=%s,ts=%s,sig=%s", c->fpr, ts, sig);
		t = curl_slist_append(hdrs, auth);
		explicit_bzero(auth, sizeof(auth));
		if (t == NULL)
			goto oom;
		hdrs = t;
	}
	/* curl would send "Expect: 100-continue" on large bodies. */
	if ((t = curl_slist_append(hdrs, "Expect:")) == NULL)
		goto oom;
	hdrs = t;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)bodylen);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)0);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if (flags & KT_HTTP_READ) {
		/*
		 * A server that takes the connection and then says nothing
		 * (stopped, hung, a dead host's half-open socket) must not
		 * hold a read that the next server can answer: no TLS
		 * handshake, or no byte of the answer, within TIMEOUT is a
		 * failure like a refused connection.
		 */
		long secs = c->timeout > 0 ? c->timeout : KT_READ_TIMEOUT;

		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, secs);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, secs);
	} else
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "keytrustee-client/1");
	if (c->ssl_insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (c->cacert != NULL) {
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
	}
	if ((cc = curl_easy_perform(h)) != CURLE_OK) {
		if (cc == CURLE_WRITE_ERROR || cc == CURLE_OUT_OF_MEMORY) {
			kt_seterr(c, "%s: reading the answer: %s", url,
			    errbuf[0] ? errbuf : curl_easy_strerror(cc));
			goto out;
		}
		kt_seterr(c, "%s %s: %s", method, url,
		    errbuf[0] ? errbuf : curl_easy_strerror(cc));
		if (cc == CURLE_PEER_FAILED_VERIFICATION ||
		    cc == CURLE_SSL_CACERT_BADFILE)
			strncat(c->err, " (give --cacert FILE with the "
			    "server's CA, or --skip-ssl-check for testing)",
			    sizeof(c->err) - strlen(c->err) - 1);
		kt_resp_free(r);
		r->net_failed = 1;
		ret = 0;
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body == NULL && (r->body = calloc(1, 1)) == NULL)
		goto oom;
	ret = 0;
	goto out;
oom:
	kt_seterr(c, "out of memory");
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	free(url);
	return ret;
}

int
kt_http_error(struct kt_client *c, const char *what, struct kt_resp *r)
{
	json_t *doc = NULL;
	const char *msg = NULL, *code = NULL;
	int ret;

	c->http_status = (int)r->status;
	if (r->body != NULL && (doc = json_loadb(r->body, r->len, 0, NULL)) !=
	    NULL && json_is_object(doc)) {
		msg = json_string_value(json_object_get(doc, "error"));
		code = json_string_value(json_object_get(doc, "code"));
	}
	free(c->err_code);
	c->err_code = code != NULL ? strdup(code) : NULL;
	if (msg != NULL)
		kt_seterr(c, "%s: the server answered %ld: %s%s%s%s", what,
		    r->status, msg, code ? " (" : "", code ? code : "",
		    code ? ")" : "");
	else
		kt_seterr(c, "%s: the server answered HTTP %ld", what,
		    r->status);
	if (code != NULL && strcmp(code, "client_pending") == 0)
		ret = KT_EPENDING;
	else if (code != NULL && strcmp(code, "client_disabled") == 0)
		ret = KT_EDISABLED;
	else if (r->status == 401)
		ret = KT_EUNAUTH;
	else if (r->status == 404)
		ret = KT_ENOTFOUND;
	else
		ret = KT_ESERVER;
	json_decref(doc);
	return ret;
}
