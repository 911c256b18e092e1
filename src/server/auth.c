/*
 * auth.c - request signatures.  A registered client signs every request:
 *
 *   Authorization: KT1-HMAC-SHA256 fp=<40 hex>,ts=<unix seconds>,sig=<64 hex>
 *   sig = HMAC-SHA256(secret, METHOD "\n" URI "\n" ts "\n" hex(SHA-256(body)))
 *
 * where URI is the path and query exactly as sent.  The client's state and
 * sealed secret are read from the database on every request, so that
 * disabling a client takes effect on its next request.
 */
#include <ctype.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "log.h"
#include "util.h"
#include "server.h"

#define AUTH_SCHEME "KT1-HMAC-SHA256 "
#define AUTH_SKEW 300

/* Strict parse of the header value; -1 when malformed. */
int
auth_parse(const char *v, struct auth_header *h)
{
	size_t i, n;

	if (strncmp(v, AUTH_SCHEME, strlen(AUTH_SCHEME)) != 0)
		return -1;
	v += strlen(AUTH_SCHEME);
	if (strncmp(v, "fp=", 3) != 0 || !hex_valid(v + 3, PGP_FPR_LEN) ||
	    v[3 + PGP_FPR_LEN] != ',')
		return -1;
	for (i = 0; i < PGP_FPR_LEN; i++)
		h->fpr[i] = (char)toupper((unsigned char)v[3 + i]);
	h->fpr[PGP_FPR_LEN] = '\0';
	v += 3 + PGP_FPR_LEN + 1;
	while (*v == ' ')
		v++;
	if (strncmp(v, "ts=", 3) != 0)
		return -1;
	v += 3;
	for (n = 0; isdigit((unsigned char)v[n]); n++)
		;
	if (n == 0 || n > 12 || v[n] != ',')
		return -1;
	memcpy(h->ts, v, n);
	h->ts[n] = '\0';
	h->tsval = strtoll(h->ts, NULL, 10);
	v += n + 1;
	while (*v == ' ')
		v++;
	if (strncmp(v, "sig=", 4) != 0 ||
	    crypto_hex_decode(v + 4, strnlen(v + 4, 2 * CRYPTO_MAC_LEN + 1),
	    h->sig, CRYPTO_MAC_LEN) == -1)
		return -1;
	return 0;
}

static const char *
auth_method(enum httpmsg_method cmd)
{
	switch (cmd) {
	case HTTPMSG_GET:
		return "GET";
	case HTTPMSG_POST:
		return "POST";
	case HTTPMSG_DELETE:
		return "DELETE";
	case HTTPMSG_PUT:
		return "PUT";
	case HTTPMSG_HEAD:
		return "HEAD";
	default:
		return NULL;
	}
}

int
auth_secret_open(const struct server *srv, const char *fpr,
    const unsigned char *nonce, size_t noncelen, const unsigned char *ct,
    size_t ctlen, unsigned char secret[CRYPTO_KEY_LEN])
{
	if (noncelen != CRYPTO_NONCE_LEN ||
	    ctlen != CRYPTO_KEY_LEN + CRYPTO_TAG_LEN)
		return -1;
	return crypto_open(srv->datakey, fpr, strlen(fpr), nonce, ct, ctlen,
	    secret);
}

static int
auth_fail(struct worker *w, struct http_req *req, int status,
    const char *code, const char *msg, const char *fpr, const char *org,
    const char *why)
{
	audit(w, fpr, org, "auth", NULL, http_peer(req), why);
	http_reply_error(req, status, code, msg);
	return -1;
}

/*
 * The client's state, org and sealed secret: from the cache (authcache.c)
 * or the database.  0, or -1 after replying (401 unknown, 503).
 */
static int
auth_lookup(struct worker *w, struct http_req *req, const char *fpr,
    struct authcache_entry *e)
{
	struct authcache *ac = w->srv->authcache;
	const char *params[1] = { fpr };
	unsigned long gen;
	PGconn *db;
	PGresult *res;
	int ret = -1;

	if (authcache_get(ac, fpr, e) == 0)
		return 0;
	gen = authcache_gen(ac);
	if ((db = worker_db(w)) == NULL) {
		http_reply_error(req, 503, "database",
		    "the database is not available");
		return -1;
	}
	res = stmt_exec(w, db, STMT_AUTH_CLIENT, params, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("auth: %s", db_error(res, db));
		http_reply_error(req, 503, "database",
		    "the database is not available");
		goto out;
	}
	if (PQntuples(res) != 1) {
		auth_fail(w, req, 401, "unauthorized", "unknown client or bad "
		    "signature", fpr, NULL, "unknown_client");
		goto out;
	}
	if ((size_t)PQgetlength(res, 0, 1) != sizeof(e->nonce) ||
	    (size_t)PQgetlength(res, 0, 2) != sizeof(e->ct)) {
		log_warnx("client %s: its sealed secret fails the integrity "
		    "check", fpr);
		http_reply_error(req, 500, "integrity",
		    "stored data failed its integrity check");
		goto out;
	}
	snprintf(e->fpr, sizeof(e->fpr), "%s", fpr);
	snprintf(e->state, sizeof(e->state), "%s", PQgetvalue(res, 0, 0));
	snprintf(e->org, sizeof(e->org), "%s", PQgetvalue(res, 0, 3));
	memcpy(e->nonce, PQgetvalue(res, 0, 1), sizeof(e->nonce));
	memcpy(e->ct, PQgetvalue(res, 0, 2), sizeof(e->ct));
	authcache_put(ac, e, gen);
	ret = 0;
out:
	PQclear(res);
	return ret;
}

int
auth_request(struct worker *w, struct http_req *req,
    const unsigned char *body, size_t bodylen, struct auth_client *out)
{
	struct auth_header h;
	struct authcache_entry e;
	const char *value = NULL, *method, *uri;
	unsigned char secret[CRYPTO_KEY_LEN], mac[CRYPTO_MAC_LEN];
	int n = 0, ret = -1;
	long long now;

	n = http_req_header_count(req, "Authorization");
	value = http_req_header(req, "Authorization");
	memset(&h, 0, sizeof(h));
	memset(&e, 0, sizeof(e));
	if (n == 0)
		return auth_fail(w, req, 401, "unauthorized",
		    "this request needs an Authorization header "
		    "(KT1-HMAC-SHA256)", NULL, NULL, "no_header");
	if (n > 1 || auth_parse(value, &h) == -1)
		return auth_fail(w, req, 401, "unauthorized",
		    "malformed Authorization header", NULL, NULL, "malformed");
	now = (long long)time(NULL);
	if (h.tsval < now - AUTH_SKEW || h.tsval > now + AUTH_SKEW)
		return auth_fail(w, req, 401, "unauthorized",
		    "request timestamp is more than 300 seconds from the "
		    "server's clock", h.fpr, NULL, "stale");
	if (auth_lookup(w, req, h.fpr, &e) == -1)
		goto out;
	if (auth_secret_open(w->srv, h.fpr, e.nonce, sizeof(e.nonce), e.ct,
	    sizeof(e.ct), secret) == -1) {
		log_warnx("client %s: its sealed secret fails the integrity "
		    "check", h.fpr);
		http_reply_error(req, 500, "integrity",
		    "stored data failed its integrity check");
		goto out;
	}
	method = auth_method(http_req_method(req));
	uri = http_req_uri(req);
	if (method == NULL || uri == NULL ||
	    crypto_kt1_mac(secret, sizeof(secret), method, uri, h.ts, body,
	    bodylen, mac) == -1) {
		http_reply_error(req, 500, "internal", "internal error");
		goto out;
	}
	if (CRYPTO_memcmp(mac, h.sig, CRYPTO_MAC_LEN) != 0) {
		auth_fail(w, req, 401, "unauthorized", "unknown client or bad "
		    "signature", h.fpr, e.org, "bad_signature");
		goto out;
	}
	if (strcmp(e.state, "active") != 0) {
		int pending = strcmp(e.state, "pending") == 0;
		auth_fail(w, req, 403,
		    pending ? "client_pending" : "client_disabled",
		    pending ? "this client awaits approval "
		    "(keytrustee-orgtool enable-client)" :
		    "this client is disabled", h.fpr, e.org,
		    pending ? "client_pending" : "client_disabled");
		goto out;
	}
	memcpy(out->fpr, h.fpr, sizeof(out->fpr));
	snprintf(out->org, sizeof(out->org), "%s", e.org);
	ret = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(&e, sizeof(e));
	return ret;
}
