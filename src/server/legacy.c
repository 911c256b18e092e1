/*
 * legacy.c - a request of the clients' legacy protocol, read and answered
 * (docs/legacy.md): the form; the payload, decrypted (json-encrypt: the
 * server's private key operations in its key process, the rest in
 * pgpmsg.c) and its signature verified against the registered key of the
 * client it names (librnp, clientkey.c); its freshness and that it was
 * not seen before; the client's state and token; then its part (the
 * action, legacy_*.c), whose answer goes back in the client's protocol,
 * signed by the server (and encrypted to the client).
 */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include "audit.h"
#include "auth.h"
#include "authfail.h"
#include "clientkey.h"
#include "ha.h"
#include "keyproc.h"
#include "legacy.h"
#include "legacy_pool.h"
#include "log.h"
#include "pgpmsg.h"
#include "util.h"

#define LEGACY_MAX_BODY (128 * 1024)
#define LEGACY_MAX_FIELDS 16 /* register has the most: 4 */
#define LEGACY_TOKEN_LEN 64 /* hex digits of 32 random octets */

/* ---- what a signed request must be --------------------------------------- */

/*
 * Signatures seen, in memory, for a passive server (whose database takes
 * no writes): a fixed table of digests and when they may be forgotten.
 */
#define SEEN_SLOTS 8192
static struct {
	pthread_mutex_t mtx;
	unsigned char d[SEEN_SLOTS][CRYPTO_HASH_LEN];
	time_t until[SEEN_SLOTS];
} seen_mem = {.mtx = PTHREAD_MUTEX_INITIALIZER};

/* 0 first seen, -1 a replay (or no room to tell: refused). */
static int
seen_in_memory(const unsigned char d[CRYPTO_HASH_LEN])
{
	time_t now = time(NULL);
	unsigned h = (unsigned)d[0] << 8 | d[1];
	int i, free_slot = -1, ret = -1;

	pthread_mutex_lock(&seen_mem.mtx);
	for (i = 0; i < 64; i++) {
		int s = (int)((h + (unsigned)i) % SEEN_SLOTS);
		if (seen_mem.until[s] > now &&
		    memcmp(seen_mem.d[s], d, CRYPTO_HASH_LEN) == 0)
			goto out;
		if (seen_mem.until[s] <= now && free_slot == -1)
			free_slot = s;
	}
	if (free_slot != -1) {
		memcpy(seen_mem.d[free_slot], d, CRYPTO_HASH_LEN);
		seen_mem.until[free_slot] = now + STORE_SEEN_KEEP;
		ret = 0;
	}
out:
	pthread_mutex_unlock(&seen_mem.mtx);
	return ret;
}

/* A digest of a signature: who, when, over what. */
static int
seen_digest(const char *signer, time_t created, const unsigned char *data,
    size_t len, unsigned char d[CRYPTO_HASH_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	long long t = (long long)created;
	unsigned int n;
	int ok;

	ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
	    EVP_DigestUpdate(md, signer, strlen(signer)) &&
	    EVP_DigestUpdate(md, &t, sizeof(t)) &&
	    EVP_DigestUpdate(md, data, len) && EVP_DigestFinal_ex(md, d, &n);
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

/* ---- the pieces of a request --------------------------------------------- */

static int
bad_member(struct verdict *v, const char *key, const char *what)
{
	verdict_refuse(v, 400, "bad_request", v->buf);
	snprintf(v->buf, sizeof(v->buf), "%s must be %s", key, what);
	return -1;
}

int
legacy_str(struct legacy_req *r, const char *key, int optional,
    const char **out, struct verdict *v)
{
	json_t *m = json_object_get(r->data, key);

	*out = NULL;
	if ((m == NULL || json_is_null(m)) && optional)
		return 0;
	if (!json_is_string(m))
		return bad_member(v, key, "a string");
	*out = json_string_value(m);
	return 0;
}

int
legacy_int(struct legacy_req *r, const char *key, long long min,
    long long max, long long dflt, long long *out, struct verdict *v)
{
	json_t *m = json_object_get(r->data, key);

	*out = dflt;
	if ((m == NULL || json_is_null(m)) && dflt != LEGACY_REQUIRED)
		return 0;
	if (!json_is_integer(m))
		return bad_member(v, key, "an integer");
	*out = json_integer_value(m);
	if (*out < min || *out > max) {
		verdict_refuse(v, 400, "bad_request", v->buf);
		snprintf(v->buf, sizeof(v->buf), "%s must be from %lld to %lld",
		    key, min, max);
		return -1;
	}
	return 0;
}

int
legacy_bool(
    struct legacy_req *r, const char *key, int dflt, int *out, struct verdict *v)
{
	json_t *m = json_object_get(r->data, key);
	const char *s;

	*out = dflt;
	if (m == NULL || json_is_null(m))
		return 0;
	if (json_is_boolean(m)) {
		*out = json_is_true(m);
		return 0;
	}
	if (json_is_integer(m) && json_integer_value(m) >= 0 &&
	    json_integer_value(m) <= 1) {
		*out = (int)json_integer_value(m);
		return 0;
	}
	s = json_is_string(m) ? json_string_value(m) : "";
	if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
		*out = 1;
	else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
		*out = 0;
	else
		return bad_member(v, key, "true or false");
	return 0;
}

int
legacy_store_refusal(enum store_result s, struct verdict *v, const char *what)
{
	switch (s) {
	case STORE_NOT_FOUND:
		verdict_refuse(v, 404, "not_found", v->buf);
		snprintf(v->buf, sizeof(v->buf), "no such %s", what);
		return -1;
	case STORE_NO_SYNC:
		return ha_no_sync(v);
	case STORE_INTEGRITY:
		return VERDICT_INTEGRITY(v);
	default:
		return VERDICT_DB_DOWN(v);
	}
}

void
legacy_audit(struct legacy_req *r, const char *object, const char *why)
{
	audit(r->w->srv->ha, r->w->store,
	    AUDIT_ROW(.actor = r->c.fpr[0] != '\0' ? r->c.fpr : NULL,
		.org = r->c.org, .action = r->part->name, .object = object,
		.remote = r->peer, .result = why));
}

/* ---- answers --------------------------------------------------------------- */

/* "k=<URL-encoded v>", appended to a malloc'd body. */
static int
form_append(char **body, const char *k, const char *val, size_t len)
{
	char *enc = evhttp_uriencode(val, (ev_ssize_t)len, 1), *nb;
	size_t old = *body != NULL ? strlen(*body) : 0;

	if (enc == NULL)
		return -1;
	if ((nb = realloc(*body, old + strlen(k) + strlen(enc) + 3)) == NULL) {
		free(enc);
		return -1;
	}
	snprintf(nb + old, strlen(k) + strlen(enc) + 3, "%s%s=%s",
	    old > 0 ? "&" : "", k, enc);
	*body = nb;
	free(enc);
	return 0;
}

/* The server's fingerprint, binary. */
static int
self_fpr(struct server *srv, unsigned char fpr[PGPKEY_FPR_LEN])
{
	const char *hex = strchr(srv->qfpr, '/');

	return hex != NULL ? pgpkey_fpr_from_hex(hex + 1, fpr) : -1;
}

char *
legacy_message(struct legacy_req *r, const char *pubkey, const char *data,
    size_t len, char *err, size_t errlen)
{
	unsigned char fpr[PGPKEY_FPR_LEN], *bin = NULL, *pk = NULL, *msg = NULL;
	size_t binlen = 0, pklen = 0, msglen = 0, tlen;
	struct pgpmsg_pubkey *key = NULL;
	char *text = NULL;

	if (self_fpr(r->w->srv, fpr) == -1)
		snprintf(err, errlen, "the server's fingerprint is unreadable");
	else if (pgpmsg_dearmor(pubkey, strlen(pubkey), PGPMSG_ARMOR_PUBKEY,
		     &bin, &binlen, err, errlen) == 0 &&
	    pgpmsg_pubkey_parse(bin, binlen, &key, err, errlen) == 0 &&
	    pgpmsg_sign((const unsigned char *)data, len, fpr, time(NULL), 0,
		keyproc_pgp_sign, NULL, &pk, &pklen, err, errlen) == 0 &&
	    pgpmsg_encrypt(pk, pklen, key, &msg, &msglen, err, errlen) == 0)
		(void)pgpmsg_armor(PGPMSG_ARMOR_MESSAGE, NULL, msg, msglen, &text,
		    &tlen);
	if (pk != NULL)
		OPENSSL_clear_free(pk, pklen);
	free(bin);
	free(msg);
	pgpmsg_pubkey_free(key);
	return text;
}

/*
 * data, signed by the server, as protocol wants it: json-encrypt
 * "payload=<armored message to the client>", json-sign
 * "payload=<data>&payload_sig=<armored detached signature>".
 */
static char *
legacy_encode(struct legacy_req *r, const char *protocol, const char *data,
    char *err, size_t errlen)
{
	unsigned char fpr[PGPKEY_FPR_LEN], *msg = NULL;
	size_t len = strlen(data), msglen = 0, tlen;
	char *text = NULL, *body = NULL;

	if (strcmp(protocol, "json-sign") == 0) {
		if (self_fpr(r->w->srv, fpr) == -1 ||
		    pgpmsg_detached((const unsigned char *)data, len, fpr,
			time(NULL),
			keyproc_pgp_sign, NULL, &msg, &msglen, err,
			errlen) == -1 ||
		    pgpmsg_armor(PGPMSG_ARMOR_SIGNATURE, NULL, msg, msglen,
			&text, &tlen) == -1 ||
		    form_append(&body, "payload", data, len) == -1 ||
		    form_append(&body, "payload_sig", text, tlen) == -1)
			goto fail;
		goto out;
	}
	if ((text = legacy_message(r, r->c.pubkey, data, len, err, errlen)) ==
		NULL ||
	    form_append(&body, "payload", text, strlen(text)) == -1)
		goto fail;
	goto out;
fail:
	if (err[0] == '\0')
		snprintf(err, errlen, "out of memory");
	free(body);
	body = NULL;
out:
	free(msg);
	free(text);
	return body;
}

/* The answer: a refusal, as the route table says it is written. */
static void
out_verdict(struct legacy_req *r, const struct verdict *v)
{
	struct legacy_out *o = r->out;

	free(o->body);
	o->body = NULL;
	o->is_verdict = 1;
	o->v = *v;
	if (v->msg == v->buf) /* its text in its own buffer */
		o->v.msg = o->v.buf;
}

/* The answer: status, ctype and body (taken over). */
static void
out_reply(struct legacy_req *r, int status, const char *ctype, char *body)
{
	struct legacy_out *o = r->out;

	o->is_verdict = 0;
	o->status = status;
	o->ctype = ctype;
	free(o->body);
	o->body = body;
	o->len = strlen(body);
}

/* Answer ans (a JSON object) with status, in the client's protocol. */
static void
legacy_answer(struct legacy_req *r, const char *protocol, json_t *ans,
    int status)
{
	char err[256] = "", *data, *body = NULL;

	if ((data = json_dumps(ans, JSON_COMPACT)) == NULL ||
	    (body = legacy_encode(r, protocol, data, err, sizeof(err))) ==
		NULL) {
		struct verdict v;

		log_warnx("legacy %s: cannot answer: %s", r->part->name,
		    err[0] != '\0' ? err : "out of memory");
		verdict_refuse(
		    &v, 500, "internal", "the answer cannot be made");
		out_verdict(r, &v);
		goto out;
	}
	out_reply(r, status, HTTP_FORM_CTYPE, body);
	body = NULL;
out:
	if (data != NULL)
		OPENSSL_clear_free(data, strlen(data));
	free(body);
}

/*
 * A refusal of a request traced to its client, in its protocol: with the
 * client's next token when its token was taken (next not empty).
 */
static void
legacy_refuse(struct legacy_req *r, const char *protocol, const char *next,
    const struct verdict *v)
{
	char buf[sizeof(v->buf) + 64];
	json_t *ans = json_pack("{s:s, s:i}", "reason",
	    verdict_text(v, buf, sizeof(buf)), "status", v->status);

	if (ans != NULL && next[0] != '\0' &&
	    json_object_set_new(ans, "next_token", json_string(next)) != 0) {
		json_decref(ans);
		ans = NULL;
	}
	if (ans == NULL) {
		out_verdict(r, v);
		return;
	}
	r->out->retry_after = v->retry_after;
	legacy_answer(r, protocol, ans, v->status);
	json_decref(ans);
}

/* ---- reading a request ----------------------------------------------------- */

/* pgpmsg_decrypt_fn: a PKESK to the server's primary or its subkey. */
static int
legacy_decrypt_sk(void *arg, const unsigned char keyid[PGPKEY_KEYID_LEN],
    const unsigned char *ct, size_t ctlen, unsigned char *out,
    size_t *outlen, char *err, size_t errlen)
{
	const struct pgpmsg_pubkey *self = arg;
	enum kp_pgp_key which;

	if (memcmp(keyid, self->primary.pub.keyid, PGPKEY_KEYID_LEN) == 0)
		which = KP_PGP_PRIMARY;
	else if (self->encrypt != NULL && self->encrypt != &self->primary &&
	    memcmp(keyid, self->encrypt->pub.keyid, PGPKEY_KEYID_LEN) == 0)
		which = KP_PGP_SUBKEY;
	else {
		snprintf(err, errlen, "not encrypted to this server's key");
		return -1;
	}
	return keyproc_pgp_decrypt(which, ct, ctlen, out, outlen, err, errlen);
}

/* Is bin exactly one OpenPGP signature packet? */
static int
one_signature(const unsigned char *bin, size_t len)
{
	size_t hdrlen, bodylen;
	int tag;

	return pgpkey_packet(bin, len, &tag, &hdrlen, &bodylen) == 0 &&
	    tag == PGPKEY_TAG_SIG && hdrlen + bodylen == len;
}

/*
 * The signed JSON as the protocol has it: its version a string, and flat
 * (every member a string, number, boolean, null, or an array of those).
 */
static int
request_shape(json_t *data, struct verdict *v)
{
	const char *key;
	json_t *m, *e;
	size_t i;

	if (!json_is_string(json_object_get(data, "version")))
		return verdict_refuse(v, 400, "bad_request",
		    "the request names no version (a string)");
	json_object_foreach(data, key, m) {
		if (json_is_object(m))
			return bad_member(v, key, "a string, number or array");
		json_array_foreach(m, i, e) {
			if (json_is_object(e) || json_is_array(e))
				return bad_member(v, key,
				    "an array of strings or numbers");
		}
	}
	return 0;
}

/* clientkey_lookup_fn: the key of the registered client of a key ID. */
static char *
legacy_client_key(void *arg, const char *keyid)
{
	struct legacy_req *r = arg;

	/* Looked up again when the worker's key ring had it. */
	store_legacy_client_clear(&r->c);
	if (store_legacy_client(r->w->store, NULL, keyid, &r->c) != STORE_OK)
		return NULL;
	return strdup(r->c.pubkey);
}

/*
 * The request's signed JSON and its signer: json-encrypt (a payload,
 * decrypted) or json-sign (a payload and its detached signature); the
 * client named in it must be the signer.  0 with r->data and r->c, or -1
 * with v refusing (400, 401); *proto: the request's protocol.
 */
static int
legacy_identify(struct legacy_req *r, const char **proto, struct verdict *v)
{
	const char *payload = evhttp_find_header(r->form, "payload");
	const char *sig = evhttp_find_header(r->form, "payload_sig");
	const char *named = evhttp_find_header(r->form, "client_fingerprint");
	unsigned char *msg = NULL, *plain = NULL, *data = NULL, *sigbin = NULL;
	unsigned char digest[CRYPTO_HASH_LEN];
	size_t msglen = 0, plainlen = 0, datalen = 0, siglen = 0;
	char signer[PGP_FPR_LEN + 1], fpr[PGP_FPR_LEN + 1], err[256];
	const char *sigfpr = NULL;
	json_error_t jerr;
	time_t created = 0, now = time(NULL);
	int integrity, ret = -1;

	if (payload == NULL) {
		verdict_refuse(v, 400, "bad_request", "no payload");
		goto out;
	}
	if (sig == NULL && named != NULL) { /* json-sign, and unsigned */
		verdict_refuse(v, 401, "bad_signature",
		    "payload_sig is missing: the request is not signed");
		goto out;
	}
	*proto = sig != NULL ? "json-sign" : "json-encrypt";
	if ((r->part->flags & LEGACY_ENCRYPT) && sig != NULL) {
		verdict_refuse(v, 400, "bad_request",
		    "this action is sent json-encrypt");
		goto out;
	}
	if (sig == NULL) {
		if (pgpmsg_dearmor(payload, strlen(payload),
			PGPMSG_ARMOR_MESSAGE, &msg, &msglen, err,
			sizeof(err)) == -1 ||
		    pgpmsg_decrypt(msg, msglen, legacy_decrypt_sk,
			r->w->srv->self_key, &plain, &plainlen, &integrity, err,
			sizeof(err)) == -1) {
			log_debug("legacy payload: %s", err);
			verdict_refuse(v, 400, "bad_payload",
			    "the payload is not a message this server can "
			    "decrypt");
			goto out;
		}
		if (clientkey_verify(r->w->keys, plain, plainlen, NULL, 0,
			legacy_client_key, r, &data, &datalen, signer, &created,
			AUTH_SKEW, err, sizeof(err)) == -1)
			goto unsigned_;
	} else {
		if (named == NULL || pgp_fpr_parse(named, fpr) == -1) {
			verdict_refuse(v, 400, "bad_request",
			    "client_fingerprint must name the client");
			goto out;
		}
		if (pgpmsg_dearmor(sig, strlen(sig), PGPMSG_ARMOR_SIGNATURE,
			&sigbin, &siglen, err, sizeof(err)) == -1 ||
		    !one_signature(sigbin, siglen)) {
			verdict_refuse(v, 400, "bad_signature",
			    "payload_sig is not an armored signature");
			goto out;
		}
		if (clientkey_verify(r->w->keys, (const unsigned char *)payload,
			strlen(payload), sigbin, siglen, legacy_client_key, r,
			NULL, NULL, signer, &created, AUTH_SKEW, err,
			sizeof(err)) == -1)
			goto unsigned_;
		if (strcmp(signer, fpr) != 0) {
			verdict_refuse(v, 401, "wrong_signer",
			    "client_fingerprint is not the signer");
			goto out;
		}
		if ((data = (unsigned char *)strdup(payload)) == NULL)
			goto oom;
		datalen = strlen(payload);
	}
	/* The client whose key verified it (legacy_client_key read it). */
	if (strcmp(r->c.fpr, signer) != 0) {
		verdict_refuse(v, 401, "unknown_client",
		    "the signer is not a registered client");
		goto out;
	}
	if ((r->data = json_loadb((const char *)data, datalen,
		 JSON_REJECT_DUPLICATES, &jerr)) == NULL ||
	    !json_is_object(r->data)) {
		verdict_refuse(v, 400, "bad_json",
		    "the payload is not a JSON object");
		goto out;
	}
	if (request_shape(r->data, v) == -1)
		goto out;
	sigfpr = json_string_value(json_object_get(r->data, "sig_fingerprint"));
	if (sigfpr == NULL || pgp_fpr_parse(sigfpr, fpr) == -1 ||
	    strcmp(fpr, signer) != 0) {
		verdict_refuse(v, 401, "wrong_signer",
		    "sig_fingerprint is not the signer");
		goto out;
	}
	if (created < now - AUTH_SKEW || created > now + AUTH_SKEW) {
		verdict_refuse(v, 401, "stale",
		    "the request's signature is more than 300 seconds from the "
		    "server's clock");
		goto out;
	}
	if (seen_digest(signer, created, data, datalen, digest) == -1)
		goto oom;
	switch (store_seen(r->w->store, digest, sizeof(digest))) {
	case STORE_OK:
		break;
	case STORE_READONLY: /* a passive: its own memory */
		if (seen_in_memory(digest) == 0)
			break;
		/* FALLTHROUGH */
	case STORE_CONFLICT:
		verdict_refuse(v, 401, "replay",
		    "this request was seen before (a replay)");
		goto out;
	default:
		VERDICT_DB_DOWN(v);
		goto out;
	}
	ret = 0;
	goto out;
unsigned_:
	log_debug("legacy signature: %s", err);
	verdict_refuse(v, 401, "bad_signature", v->buf);
	snprintf(v->buf, sizeof(v->buf), "%s", err);
	goto out;
oom:
	VERDICT_INTERNAL(v);
out:
	if (ret == -1) {
		/* Not traced to a client: no actor in its audit row. */
		store_legacy_client_clear(&r->c);
		memset(&r->c, 0, sizeof(r->c));
	}
	if (plain != NULL)
		OPENSSL_clear_free(plain, plainlen);
	if (data != NULL)
		OPENSSL_clear_free(data, datalen);
	free(msg);
	free(sigbin);
	return ret;
}

/* A fresh token: 64 lower-case hex digits. */
static int
legacy_new_token(char out[LEGACY_TOKEN_LEN + 1])
{
	unsigned char b[LEGACY_TOKEN_LEN / 2];

	if (crypto_random(b, sizeof(b)) == -1)
		return -1;
	hex_encode(b, sizeof(b), out, 0);
	out[LEGACY_TOKEN_LEN] = '\0';
	return 0;
}

/*
 * The client may ask for this part now: its state, the HA gate (for a
 * write, and for a client with token sync, whose token advances), and its
 * token, advanced into next.  From then on every answer, a refusal of the
 * part too, carries next (docs/legacy.md).
 */
static int
legacy_admit(struct legacy_req *r, char next[LEGACY_TOKEN_LEN + 1],
    struct verdict *v)
{
	const char *st = r->c.state, *given;
	unsigned f = r->part->flags;

	next[0] = '\0';
	if (strcmp(st, "unverified") == 0 && !(f & LEGACY_ANY_STATE))
		return verdict_refuse(v, 403, "unverified",
		    "this client has not answered its registration "
		    "challenge (verify)");
	if (strcmp(st, "verified") == 0 &&
	    !(f & (LEGACY_ANY_STATE | LEGACY_VERIFIED)))
		return verdict_refuse(v, 403, "not_activated",
		    "this client is not activated in an organization "
		    "(request_activation)");
	if (strcmp(st, "disabled") == 0)
		return verdict_refuse(v, 403, "client_disabled",
		    "this client is disabled");
	if (strcmp(st, "pending") == 0 &&
	    !(f & (LEGACY_ANY_STATE | LEGACY_VERIFIED)))
		return verdict_refuse(v, 403, "client_pending",
		    "this client awaits approval (keytrustee-orgtool "
		    "enable-client)");
	if (((f & LEGACY_WRITE) || r->c.token_sync) &&
	    ha_write_gate(r->w->srv->ha, v) == -1)
		return -1;
	if (!r->c.token_sync)
		return 0;
	given = json_string_value(json_object_get(r->data, "auth_token"));
	if (given == NULL)
		return verdict_refuse(v, 403, "bad_token",
		    "this client syncs tokens: auth_token is missing");
	if (legacy_new_token(next) == -1)
		return VERDICT_INTERNAL(v);
	switch (store_legacy_token(r->w->store, r->c.fpr, given, next)) {
	case STORE_OK:
		return 0;
	case STORE_NOT_FOUND:
		next[0] = '\0';
		return verdict_refuse(v, 403, "bad_token",
		    "auth_token is not this client's next token");
	case STORE_NO_SYNC:
		next[0] = '\0';
		return ha_no_sync(v);
	default:
		next[0] = '\0';
		return VERDICT_DB_DOWN(v);
	}
}

/*
 * The request's form: a form body of at most LEGACY_MAX_BODY octets, a
 * few fields (LEGACY_MAX_FIELDS), each once.  0 with form filled, or -1
 * with v refusing.
 */
static int
legacy_form(const char *ctype, const unsigned char *body, size_t len,
    struct evkeyvalq *form, struct verdict *v)
{
	struct evkeyval *f, *g;
	int n = 0;

	if (len > LEGACY_MAX_BODY)
		return verdict_refuse(
		    v, 413, "too_large", "the request is over 128 KiB");
	if (ctype == NULL ||
	    strncasecmp(ctype, HTTP_FORM_CTYPE, strlen(HTTP_FORM_CTYPE)) != 0 ||
	    evhttp_parse_query_str((const char *)body, form) != 0)
		return verdict_refuse(v, 400, "bad_request",
		    "the body must be a form (" HTTP_FORM_CTYPE ")");
	TAILQ_FOREACH(f, form, next)
	if (++n > LEGACY_MAX_FIELDS)
		return verdict_refuse(v, 400, "bad_request",
		    "the form has too many fields");
	TAILQ_FOREACH(f, form, next)
	for (g = TAILQ_NEXT(f, next); g != NULL; g = TAILQ_NEXT(g, next))
		if (strcmp(f->key, g->key) == 0) {
			verdict_refuse(v, 400, "bad_request", v->buf);
			snprintf(v->buf, sizeof(v->buf),
			    "the form names %.64s more than once", f->key);
			return -1;
		}
	return 0;
}

static void
legacy_serve(struct legacy_req *r)
{
	const char *proto = "json-encrypt";
	char next[LEGACY_TOKEN_LEN + 1] = "", *text;
	struct evkeyvalq form;
	struct verdict v;
	json_t *ans = NULL;
	int status = 200;

	TAILQ_INIT(&form);
	r->form = &form;
	if (legacy_form(r->ctype, r->body, r->len, &form, &v) == -1) {
		out_verdict(r, &v);
		goto out;
	}
	if (r->part->flags & LEGACY_CLEAR) {
		/* register: its fields in the clear, its answer JSON. */
		if (r->part->run(r, &ans, &status, &v) == -1)
			out_verdict(r, &v);
		else if ((text = json_dumps(ans, JSON_COMPACT)) == NULL) {
			VERDICT_INTERNAL(&v);
			out_verdict(r, &v);
		} else
			out_reply(r, status, "application/json", text);
		goto out;
	}
	/* An address that failed too often this minute: 429, tallied. */
	if (authfail_check(r->w, r->part->name, r->peer, &v) == -1) {
		out_verdict(r, &v);
		goto out;
	}
	if (legacy_identify(r, &proto, &v) == -1) {
		/* Traced to no client: a failed authentication (authfail.h). */
		if (v.status < 500)
			authfail_record(r->w,
			    AUDIT_ROW(.action = r->part->name, .remote = r->peer,
				.result = v.code));
		else
			legacy_audit(r, NULL, v.code);
		out_verdict(r, &v);
		goto out;
	}
	/* Traced to its client: answered in its protocol from now on. */
	if (strcmp(r->c.protocol, "v1") != 0)
		proto = r->c.protocol;
	if (legacy_admit(r, next, &v) == -1 ||
	    r->part->run(r, &ans, &status, &v) == -1) {
		legacy_audit(r, NULL, v.code);
		legacy_refuse(r, proto, next, &v);
		goto out;
	}
	if (next[0] != '\0')
		json_object_set_new(ans, "next_token", json_string(next));
	legacy_answer(r, proto, ans, status);
out:
	json_decref(ans);
	json_decref(r->data);
	store_legacy_client_clear(&r->c);
	evhttp_clear_headers(&form);
}

/*
 * An action the protocol does not have, posted by a client: refused in
 * its protocol, as every answer to it is (route.c's catch-all).
 */
static int
unknown_run(struct legacy_req *r, json_t **ans, int *status,
    struct verdict *v)
{
	(void)r;
	(void)ans;
	(void)status;
	return verdict_refuse(v, 400, "unknown_action",
	    "unknown action in parameter a (docs/legacy.md lists them)");
}

const struct legacy_part legacy_unknown = {"unknown", LEGACY_ANY_STATE,
    unknown_run};

/* Serve j in the thread whose context (store, keys) is w. */
static void
legacy_job_run(struct worker *w, struct pool_job *pj)
{
	struct legacy_job *j = (struct legacy_job *)pj;
	struct legacy_req r;

	memset(&r, 0, sizeof(r));
	r.w = w;
	r.out = &j->out;
	r.ctype = j->ctype;
	r.body = j->body;
	r.len = j->len;
	r.part = j->part;
	r.url = j->url;
	r.peer = j->peer;
	legacy_serve(&r);
}

/* In j's worker's thread: send j's answer (unless dropped), and free j. */
static void
legacy_job_done(struct pool_job *pj, int send)
{
	struct legacy_job *j = (struct legacy_job *)pj;
	struct legacy_out *o = &j->out;
	char retry[16];

	if (send && o->is_verdict)
		http_reply_verdict(j->req, &o->v);
	else if (send && o->body == NULL) {
		struct verdict v;
		VERDICT_INTERNAL(&v);
		http_reply_verdict(j->req, &v);
	} else if (send) {
		if (o->retry_after > 0) {
			snprintf(retry, sizeof(retry), "%d", o->retry_after);
			http_add_header(j->req, "Retry-After", retry);
		}
		http_reply(j->req, o->status, o->ctype, o->body, o->len);
	}
	if (o->body != NULL)
		OPENSSL_clear_free(o->body, o->len);
	if (j->body != NULL)
		OPENSSL_clear_free(j->body, j->len);
	free(j->url);
	free(j->ctype);
	free(j->peer);
	free(j);
}

/* A copy of s (NULL stays NULL); -1 when out of memory. */
static int
dup_or_null(const char *s, char **out)
{
	*out = NULL;
	return s != NULL && (*out = strdup(s)) == NULL ? -1 : 0;
}

/*
 * Serve req as part (url: a ?d= deposit's token, or NULL): in a legacy
 * thread (legacy_pool.c), whose answer w sends when it is made, so that
 * w serves its other connections meanwhile; in w itself when there are
 * none.
 */
static void
legacy_start(struct worker *w, struct http_req *req,
    const struct legacy_part *part, const char *url)
{
	struct legacy_job *j;
	const unsigned char *body;
	struct verdict v;
	size_t len;

	body = http_req_body(req, &len);
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->body = malloc(len + 1)) == NULL ||
	    dup_or_null(url, &j->url) == -1 ||
	    dup_or_null(http_req_header(req, "Content-Type"), &j->ctype) ==
		-1 ||
	    dup_or_null(http_peer(req), &j->peer) == -1) {
		if (j != NULL)
			legacy_job_done(&j->job, 0);
		VERDICT_INTERNAL(&v);
		http_reply_verdict(req, &v);
		return;
	}
	memcpy(j->body, body, len);
	j->body[len] = '\0';
	j->len = len;
	j->job.w = w;
	j->job.run = legacy_job_run;
	j->job.done = legacy_job_done;
	j->req = req;
	j->part = part;
	if (legacy_pool_submit(w->srv->legacy_pool, &j->job) == 0)
		return; /* answered when it comes back */
	legacy_job_run(w, &j->job);
	legacy_job_done(&j->job, 1);
}

void
legacy_action(struct worker *w, struct http_req *req,
    const struct handler_match *m)
{
	legacy_start(w, req, m->arg, NULL);
}

void
legacy_url(struct worker *w, struct http_req *req,
    const struct handler_match *m)
{
	legacy_start(w, req, &legacy_get, m->value);
}
