/*
 * hkp.c - the OpenPGP HTTP Keyserver Protocol as the legacy clients use
 * it (docs/legacy.md): GET /pks/lookup?op=get&options=mr&search=0x<FPR>
 * serves the server's key (self-signatures only) or a client's, and POST
 * /pks/add takes the key a client is about to register with.  Served on
 * the HTTPS port, and on the plain-HTTP HKP_PORT when it is set.
 */
#include <ctype.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "audit.h"
#include "clientkey.h"
#include "ha.h"
#include "hkp.h"
#include "http.h"
#include "log.h"
#include "pgpmsg.h"
#include "throttle.h"
#include "util.h"

#define HKP_KEY_MAX (64 * 1024)
#define HKP_CTYPE "application/pgp-keys"

/* The body's form field name, decoded, or NULL. */
static const char *
hkp_field(struct evkeyvalq *q, const char *name)
{
	return evhttp_find_header(q, name);
}

/* "0x" and 40 hex digits (either case) into fpr, upper-case: 0, or -1. */
static int
hkp_search_fpr(const char *search, char fpr[PGP_FPR_LEN + 1])
{
	size_t i;

	if (search == NULL)
		return -1;
	if (strncasecmp(search, "0x", 2) == 0)
		search += 2;
	if (strlen(search) != PGP_FPR_LEN || !hex_valid(search, PGP_FPR_LEN))
		return -1;
	for (i = 0; i < PGP_FPR_LEN; i++)
		fpr[i] = (char)toupper((unsigned char)search[i]);
	fpr[PGP_FPR_LEN] = '\0';
	return 0;
}

void
hkp_lookup(struct worker *w, struct http_req *req,
    const struct handler_match *m)
{
	const char *query = http_req_query(req), *own;
	char fpr[PGP_FPR_LEN + 1], *armored = NULL;
	struct evkeyvalq q;
	struct verdict v;

	(void)m;
	TAILQ_INIT(&q);
	if (query == NULL || evhttp_parse_query_str(query, &q) != 0) {
		verdict_refuse(&v, 400, "bad_request", "malformed query string");
		goto refuse;
	}
	if (hkp_field(&q, "op") == NULL ||
	    strcmp(hkp_field(&q, "op"), "get") != 0) {
		verdict_refuse(&v, 501, "not_implemented",
		    "only op=get is served");
		goto refuse;
	}
	if (hkp_search_fpr(hkp_field(&q, "search"), fpr) == -1) {
		verdict_refuse(&v, 400, "bad_request",
		    "search must be 0x and a key's 40 hex digit fingerprint");
		goto refuse;
	}
	own = strchr(w->srv->qfpr, '/');
	if (own != NULL && strcmp(own + 1, fpr) == 0) {
		http_reply(req, 200, HKP_CTYPE, w->srv->pubkey,
		    w->srv->pubkeylen);
		goto out;
	}
	switch (store_hkp_key(w->store, fpr, &armored)) {
	case STORE_OK:
		http_reply(req, 200, HKP_CTYPE, armored, strlen(armored));
		goto out;
	case STORE_NOT_FOUND:
		verdict_refuse(&v, 404, "not_found", "no such key");
		break;
	default:
		VERDICT_DB_DOWN(&v);
	}
refuse:
	http_reply_verdict(req, &v);
out:
	free(armored);
	evhttp_clear_headers(&q);
}

/*
 * Can the server answer the key's client: a key pgpmsg reads (RSA keys
 * only), with a key to encrypt to?  0, or -1 with err.
 */
static int
answerable(const char *armored, char *err, size_t errlen)
{
	struct pgpmsg_pubkey *key = NULL;
	unsigned char *bin = NULL;
	size_t len = 0;
	int ret = -1;

	if (pgpmsg_dearmor(armored, strlen(armored), PGPMSG_ARMOR_PUBKEY, &bin,
		&len, err, errlen) == 0 &&
	    pgpmsg_pubkey_parse(bin, len, &key, err, errlen) == 0) {
		if (key->encrypt == NULL)
			snprintf(err, errlen, "the key cannot encrypt");
		else
			ret = 0;
	}
	pgpmsg_pubkey_free(key);
	free(bin);
	return ret;
}

void
hkp_add(struct worker *w, struct http_req *req, const struct handler_match *m)
{
	const char *peer = http_peer(req), *key;
	char fpr[PGP_FPR_LEN + 1], qfpr[PGP_QFPR_MAX], err[256];
	struct clientkey *k = NULL;
	const unsigned char *body;
	struct evkeyvalq q;
	struct verdict v;
	size_t len;

	(void)m;
	TAILQ_INIT(&q);
	body = http_req_body(req, &len);
	if (throttle_take(w->srv->hkp_throttle, peer, &v) == -1 ||
	    ha_write_gate(w->srv->ha, &v) == -1)
		goto refuse;
	if (evhttp_parse_query_str((const char *)body, &q) != 0 ||
	    (key = hkp_field(&q, "keytext")) == NULL) {
		verdict_refuse(&v, 400, "bad_request",
		    "the body must be the form field keytext");
		goto refuse;
	}
	if (strlen(key) > HKP_KEY_MAX) {
		verdict_refuse(&v, 413, "too_large", "a key is 64 KiB at most");
		goto refuse;
	}
	if (clientkey_load(key, strlen(key), &k, fpr, err, sizeof(err)) ==
		-1 ||
	    clientkey_qualified(k, qfpr) == -1 ||
	    answerable(key, err, sizeof(err)) == -1) {
		log_debug("HKP add: key refused: %s", err);
		audit(w->srv->ha, w->store,
		    AUDIT_ROW(.action = "hkp.add", .remote = peer,
			.result = "bad_pubkey"));
		verdict_refuse(&v, 400, "bad_pubkey",
		    "keytext must be one OpenPGP public key with an RSA "
		    "primary and an encryption subkey, no secret parts");
		goto refuse;
	}
	switch (store_hkp_add(w->store, fpr, key, peer)) {
	case STORE_OK:
		http_reply(req, 200, "text/plain", "key added\n", 10);
		goto out;
	case STORE_NO_SYNC:
		ha_no_sync(&v);
		break;
	default:
		VERDICT_DB_DOWN(&v);
	}
refuse:
	http_reply_verdict(req, &v);
out:
	clientkey_free(k);
	evhttp_clear_headers(&q);
}
