/*
 * api.c - the /v1 JSON API: client registration and deposits.  Bodies are
 * JSON objects (application/json, at most 128 KiB, nesting at most
 * API_MAX_DEPTH); every refusal is {"error", "code"} and nothing of the
 * request goes into the log.  Deposits are sealed at rest with AES-256-GCM
 * under the data key, AAD = uuid text || owner fingerprint.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "log.h"
#include "server.h"
#include "util.h"

#define API_MAX_DEPTH 16
#define API_NAME_MAX 255
#define API_DESC_MAX 1024
#define API_CONTENT_MAX (64 * 1024)
#define API_ORG_MAX 64
#define API_HOST_MAX 253
#define API_AUTH_MAX 1024
#define API_PUBKEY_MAX (100 * 1024)
#define API_AAD_LEN (CRYPTO_UUID_LEN + PGP_FPR_LEN)

/* Nesting depth of a JSON text, counted before jansson recurses into it. */
static int
api_depth_ok(const unsigned char *p, size_t n)
{
	int depth = 0, instr = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (instr) {
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				instr = 0;
		} else if (p[i] == '"')
			instr = 1;
		else if (p[i] == '{' || p[i] == '[') {
			if (++depth > API_MAX_DEPTH)
				return 0;
		} else if (p[i] == '}' || p[i] == ']')
			depth--;
	}
	return 1;
}

static int
api_ctype_json(struct http_req *req)
{
	const char *ct = http_req_header(req, "Content-Type");
	size_t n = strlen("application/json");

	if (ct == NULL || strncasecmp(ct, "application/json", n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* The body as a JSON object, or NULL after replying. */
static json_t *
api_json(struct http_req *req, const unsigned char *body, size_t len)
{
	json_error_t jerr;
	json_t *o;

	if (!api_ctype_json(req)) {
		http_reply_error(req, 415, "unsupported_media_type",
		    "the body must be application/json");
		return NULL;
	}
	if (!api_depth_ok(body, len)) {
		http_reply_error(req, HTTP_BADREQUEST, "bad_json",
		    "JSON nested too deeply");
		return NULL;
	}
	o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		http_reply_error(req, HTTP_BADREQUEST, "bad_json",
		    "the body is not valid JSON");
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		http_reply_error(req, HTTP_BADREQUEST, "bad_json",
		    "the body must be a JSON object");
		return NULL;
	}
	return o;
}

/* Code points of valid UTF-8. */
static size_t
utf8_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* C0 controls, DEL and C1 controls (U+0080..U+009F). */
static int
has_control(const char *s, int allow_space_ctl)
{
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++) {
		if (allow_space_ctl && (*p == '\t' || *p == '\n' || *p == '\r'))
			continue;
		if (*p < 0x20 || *p == 0x7f)
			return 1;
		if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			return 1;
	}
	return 0;
}

/* A valid UTF-8 string of 1..max code points without controls. */
static int
api_text_ok(const char *s, size_t max, int allow_space_ctl)
{
	json_t *probe;
	size_t n;

	if (s == NULL || *s == '\0' || strlen(s) > 4 * max)
		return 0;
	if ((probe = json_string(s)) == NULL)  /* not UTF-8 */
		return 0;
	json_decref(probe);
	n = utf8_len(s);
	return n >= 1 && n <= max && !has_control(s, allow_space_ctl);
}

/*
 * A string member: 0 with *out (NULL when absent or null and optional),
 * -1 after replying 400.
 */
static int
api_member(struct http_req *req, json_t *o, const char *key,
    int optional, const char **out)
{
	json_t *v = json_object_get(o, key);
	char msg[128];

	*out = NULL;
	if ((v == NULL || json_is_null(v)) && optional)
		return 0;
	if (v == NULL) {
		snprintf(msg, sizeof(msg), "missing member \"%s\"", key);
		http_reply_error(req, HTTP_BADREQUEST, "bad_request", msg);
		return -1;
	}
	if (!json_is_string(v)) {
		snprintf(msg, sizeof(msg), "member \"%s\" must be a string",
		    key);
		http_reply_error(req, HTTP_BADREQUEST, "bad_request", msg);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

static void
api_db_down(struct http_req *req)
{
	http_reply_error(req, 503, "database", "the database is not available");
}

static void
api_reply_pack_failed(struct http_req *req)
{
	http_reply_error(req, HTTP_INTERNAL, "internal", "internal error");
}

/* ---- POST /v1/register ---------------------------------------------- */

struct reg {
	const char *org, *auth, *pubkey, *hostname;
	char orgid[24];
	char fpr[PGP_FPR_LEN + 1];
	const char *state;
	unsigned char secret[CRYPTO_KEY_LEN];
};

/* Is the given auth secret the org's?  Length-safe, constant time. */
static int
reg_auth_equal(const char *given, const char *want)
{
	unsigned char a[CRYPTO_HASH_LEN], b[CRYPTO_HASH_LEN];
	int eq;

	if (crypto_sha256(given, strlen(given), a) == -1 ||
	    crypto_sha256(want, strlen(want), b) == -1)
		return 0;
	eq = CRYPTO_memcmp(a, b, sizeof(a)) == 0;
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return eq;
}

/*
 * The existing client of r->fpr: 1 when found (r->state, r->secret set),
 * 0 when none, -1 after replying.
 */
static int
reg_existing(struct worker *w, struct http_req *req, PGconn *db,
    struct reg *r)
{
	const char *params[1] = { r->fpr };
	PGresult *res;
	int ret = -1;

	res = PQexecParams(db,
	    "SELECT org_id::text, state, secret_nonce, secret_ct "
	    "FROM clients WHERE fingerprint = $1",
	    1, NULL, params, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("register: %s", db_error(res, db));
		api_db_down(req);
		goto out;
	}
	if (PQntuples(res) == 0) {
		ret = 0;
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), r->orgid) != 0) {
		audit(w, r->fpr, r->org, "register", r->fpr, http_peer(req),
		    "other_org");
		http_reply_error(req, 409, "conflict", "this key is registered "
		    "to another organization");
		goto out;
	}
	if (auth_secret_open(w->srv, r->fpr,
	    (const unsigned char *)PQgetvalue(res, 0, 2),
	    (size_t)PQgetlength(res, 0, 2),
	    (const unsigned char *)PQgetvalue(res, 0, 3),
	    (size_t)PQgetlength(res, 0, 3), r->secret) == -1) {
		log_warnx("client %s: its sealed secret fails the integrity "
		    "check", r->fpr);
		http_reply_error(req, HTTP_INTERNAL, "integrity",
		    "stored data failed its integrity check");
		goto out;
	}
	r->state = strcmp(PQgetvalue(res, 0, 1), "active") == 0 ? "active" :
	    strcmp(PQgetvalue(res, 0, 1), "pending") == 0 ? "pending" :
	    "disabled";
	ret = 1;
out:
	PQclear(res);
	return ret;
}

/*
 * Insert a new client with its audit row and, in the same statement (one
 * transaction), the notice to each of the org's contacts: 1 done, 0 lost a
 * race, -1.
 */
static int
reg_insert(struct worker *w, struct http_req *req, PGconn *db,
    struct reg *r)
{
	unsigned char nonce[CRYPTO_NONCE_LEN];
	unsigned char ct[CRYPTO_KEY_LEN + CRYPTO_TAG_LEN];
	const char *params[11];
	int lens[11] = { 0 }, fmts[11] = { 0 };
	char *subject = NULL, *body = NULL;
	PGresult *res = NULL;
	int ret = -1, timed_out;

	if (crypto_random(r->secret, sizeof(r->secret)) == -1 ||
	    crypto_seal(w->srv->datakey, r->fpr, strlen(r->fpr), r->secret,
	    sizeof(r->secret), nonce, ct) == -1 ||
	    mail_client_notice(w->srv->conf, r->org, r->fpr, r->hostname,
	    r->state, &subject, &body) == -1) {
		http_reply_error(req, HTTP_INTERNAL, "internal",
		    "internal error");
		goto out;
	}
	params[0] = r->fpr;
	params[1] = r->orgid;
	params[2] = r->hostname;
	params[3] = r->pubkey;
	params[4] = (const char *)nonce;
	lens[4] = sizeof(nonce);
	fmts[4] = 1;
	params[5] = (const char *)ct;
	lens[5] = sizeof(ct);
	fmts[5] = 1;
	params[6] = r->state;
	params[7] = *http_peer(req) ? http_peer(req) : NULL;
	params[8] = r->org;
	params[9] = subject;
	params[10] = body;
	res = ha_exec(w, db,
	    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
	    "c AS (INSERT INTO clients (fingerprint, org_id, hostname, "
	    "pubkey, secret_nonce, secret_ct, state, remote_addr) "
	    "SELECT $1, $2::bigint, $3, $4, $5, $6, $7, $8 "
	    "WHERE (SELECT ok FROM g) "
	    "ON CONFLICT (fingerprint) DO NOTHING RETURNING fingerprint), "
	    "a AS (INSERT INTO audit_log (actor, org, action, object, "
	    "remote_addr, result) SELECT c.fingerprint, $9, 'register', "
	    "c.fingerprint, $8, 'created_' || $7 FROM c RETURNING id), "
	    "m AS (INSERT INTO mail_outbox (org_id, rcpt, kind, subject, body) "
	    "SELECT o.id, unnest(o.contacts), 'client_registration', $10, $11 "
	    "FROM c, orgs o WHERE o.id = $2::bigint RETURNING id) "
	    "SELECT (SELECT count(*) FROM a), (SELECT ok FROM g), "
	    "CASE WHEN EXISTS (SELECT 1 FROM a) "
	    "THEN pg_notify('" MAIL_CHANNEL "', 'client')::text END",
	    11, params, lens, fmts, 0, &timed_out);
	if (timed_out) {
		ha_refuse_no_sync(req);
		goto out;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		log_warnx("register: %s", db_error(res, db));
		api_db_down(req);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
		ha_refuse_no_sync(req);
		goto out;
	}
	ret = strcmp(PQgetvalue(res, 0, 0), "1") == 0 ? 1 : 0;
out:
	PQclear(res);
	free(subject);
	free(body);
	return ret;
}

/* The org's id and state decision; 0, or -1 after replying. */
static int
reg_org(struct worker *w, struct http_req *req, PGconn *db,
    struct reg *r)
{
	const char *params[1] = { r->org }, *peer = http_peer(req), *want;
	PGresult *res;
	int ret = -1;

	res = PQexecParams(db,
	    "SELECT id::text, auth_secret FROM orgs WHERE name = $1",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("register: %s", db_error(res, db));
		api_db_down(req);
		goto out;
	}
	if (PQntuples(res) != 1) {
		audit(w, NULL, NULL, "register", NULL, peer, "unknown_org");
		http_reply_error(req, HTTP_NOTFOUND, "unknown_org",
		    "no such organization");
		goto out;
	}
	snprintf(r->orgid, sizeof(r->orgid), "%s", PQgetvalue(res, 0, 0));
	want = PQgetvalue(res, 0, 1);
	if (*want == '\0')
		r->state = "active";
	else if (r->auth == NULL || *r->auth == '\0')
		r->state = "pending";
	else if (reg_auth_equal(r->auth, want))
		r->state = "active";
	else {
		throttle_fail(w->srv->throttle, peer);
		audit(w, NULL, r->org, "register", NULL, peer, "bad_auth");
		http_reply_error(req, 403, "bad_auth",
		    "wrong authorization secret for this organization");
		goto out;
	}
	ret = 0;
out:
	PQclear(res);
	return ret;
}

static int
reg_parse(struct http_req *req, json_t *o, struct reg *r)
{
	if (api_member(req, o, "org", 0, &r->org) == -1 ||
	    api_member(req, o, "auth", 1, &r->auth) == -1 ||
	    api_member(req, o, "pubkey", 0, &r->pubkey) == -1 ||
	    api_member(req, o, "hostname", 0, &r->hostname) == -1)
		return -1;
	if (!api_text_ok(r->org, API_ORG_MAX, 0)) {
		http_reply_error(req, HTTP_BADREQUEST, "bad_request",
		    "org must be 1-64 characters without controls");
		return -1;
	}
	if (r->auth != NULL && strlen(r->auth) > API_AUTH_MAX) {
		http_reply_error(req, HTTP_BADREQUEST, "bad_request",
		    "auth is too long");
		return -1;
	}
	if (!api_text_ok(r->hostname, API_HOST_MAX, 0)) {
		http_reply_error(req, HTTP_BADREQUEST, "bad_request",
		    "hostname must be 1-253 characters without controls");
		return -1;
	}
	if (strlen(r->pubkey) > API_PUBKEY_MAX ||
	    strstr(r->pubkey, "-----BEGIN PGP PUBLIC KEY BLOCK-----") == NULL) {
		http_reply_error(req, HTTP_BADREQUEST, "bad_pubkey",
		    "pubkey must be an ASCII-armored OpenPGP public key");
		return -1;
	}
	return 0;
}

void
api_register(struct worker *w, struct http_req *req)
{
	struct reg r;
	struct clientkey *key = NULL;
	const unsigned char *body;
	const char *peer = http_peer(req);
	char hex[2 * CRYPTO_KEY_LEN + 1], err[512], *armored = NULL;
	char retry_s[16];
	size_t len;
	json_t *o = NULL, *ans = NULL;
	PGconn *db;
	int retry, found, status = HTTP_OK, e;

	memset(&r, 0, sizeof(r));
	body = http_req_body(req, &len);
	if ((o = api_json(req, body, len)) == NULL)
		return;
	if (reg_parse(req, o, &r) == -1)
		goto out;
	if (throttle_blocked(w->srv->throttle, peer, &retry)) {
		snprintf(retry_s, sizeof(retry_s), "%d", retry > 0 ? retry : 1);
		http_add_header(req, "Retry-After", retry_s);
		audit(w, NULL, r.org, "register", NULL, peer, "throttled");
		http_reply_error(req, 429, "throttled", "too many failed "
		    "registrations from this address; try again later");
		goto out;
	}
	if (ha_write_gate(w, req) == -1)
		goto out;
	if ((db = worker_db(w)) == NULL) {
		api_db_down(req);
		goto out;
	}
	if (reg_org(w, req, db, &r) == -1)
		goto out;
	if (clientkey_load(r.pubkey, strlen(r.pubkey), &key, r.fpr, err,
	    sizeof(err)) == -1) {
		log_debug("register: key refused: %s", err);
		audit(w, NULL, r.org, "register", NULL, peer, "bad_pubkey");
		http_reply_error(req, HTTP_BADREQUEST, "bad_pubkey",
		    "pubkey is not a usable OpenPGP public key (one key, with "
		    "an encryption subkey, no secret parts)");
		goto out;
	}
	/* Twice at most: a concurrent registration of the key may win. */
	for (e = 0; e < 2; e++) {
		if ((found = reg_existing(w, req, db, &r)) == -1)
			goto out;
		if (found) {
			audit(w, r.fpr, r.org, "register", r.fpr, peer,
			    "existing");
			status = HTTP_OK;
			break;
		}
		if ((found = reg_insert(w, req, db, &r)) == -1)
			goto out;
		if (found) {
			status = 201;
			break;
		}
	}
	if (e == 2) {
		http_reply_error(req, 503, "conflict", "try again");
		goto out;
	}
	hex_encode(r.secret, sizeof(r.secret), hex, 0);
	e = clientkey_encrypt(key, hex, strlen(hex), &armored, NULL, err,
	    sizeof(err));
	OPENSSL_cleanse(hex, sizeof(hex));
	if (e == -1) {
		log_warnx("register: client %s: %s", r.fpr, err);
		http_reply_error(req, HTTP_INTERNAL, "internal",
		    "cannot encrypt to the client's key");
		goto out;
	}
	ans = json_pack("{s:s, s:s, s:s, s:s}", "fingerprint", r.fpr,
	    "state", r.state, "secret", armored, "server_fingerprint",
	    w->srv->qfpr);
	if (ans == NULL)
		api_reply_pack_failed(req);
	else
		http_reply_json(req, status, ans);
	log_info("register: client %s of org %s: %s (%s)", r.fpr, r.org,
	    status == 201 ? "new" : "existing", r.state);
out:
	OPENSSL_cleanse(r.secret, sizeof(r.secret));
	clientkey_free(key);
	free(armored);
	json_decref(ans);
	json_decref(o);
}

/* ---- /v1/deposits ---------------------------------------------------- */

static void
dep_aad(char aad[API_AAD_LEN + 1], const char *uuid, const char *fpr)
{
	memcpy(aad, uuid, CRYPTO_UUID_LEN);
	memcpy(aad + CRYPTO_UUID_LEN, fpr, PGP_FPR_LEN);
	aad[API_AAD_LEN] = '\0';
}

/*
 * A deposit body read without jansson, for its usual shape: a JSON object
 * whose members are plain strings or null, printable ASCII without
 * escapes.  Parsing 2.7 KB of base64 a character at a time in jansson was
 * a sixth of the server's CPU per POST.  1 with name and content (and
 * description, NULL when absent or null) as copies, content as a pointer
 * into body; 0 for any other shape, duplicate members included: the
 * caller then parses with jansson, which judges it as before.
 */
struct dep_body {
	char *name, *desc;
	const char *content;
	size_t contentlen;
};

/* A "..." string at *p; its characters, or NULL. */
static const unsigned char *
dep_body_string(const unsigned char **p, const unsigned char *end, size_t *len)
{
	const unsigned char *s = *p + 1, *q;

	if (*p >= end || **p != '"')
		return NULL;
	for (q = s; q < end && *q != '"'; q++)
		if (*q < 0x20 || *q > 0x7e || *q == '\\')
			return NULL;
	if (q >= end)
		return NULL;
	*len = (size_t)(q - s);
	*p = q + 1;
	return s;
}

static const unsigned char *
dep_body_ws(const unsigned char *p, const unsigned char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int
dep_body_fast(const unsigned char *body, size_t len, struct dep_body *b)
{
	static const char *const keys[3] = {"name", "content", "description"};
	const unsigned char *p = body, *end = body + len, *k, *v;
	const unsigned char *val[3] = {NULL, NULL, NULL};
	size_t klen, vlen, vlens[3] = {0, 0, 0};
	int seen[3] = {0, 0, 0}, i;

	memset(b, 0, sizeof(*b));
	p = dep_body_ws(p, end);
	if (p >= end || *p++ != '{')
		return 0;
	p = dep_body_ws(p, end);
	while (p < end && *p != '}') {
		if ((k = dep_body_string(&p, end, &klen)) == NULL)
			return 0;
		p = dep_body_ws(p, end);
		if (p >= end || *p++ != ':')
			return 0;
		p = dep_body_ws(p, end);
		if ((size_t)(end - p) >= 4 && memcmp(p, "null", 4) == 0) {
			v = NULL;
			vlen = 0;
			p += 4;
		} else if ((v = dep_body_string(&p, end, &vlen)) == NULL)
			return 0;
		for (i = 0; i < 3; i++)
			if (klen == strlen(keys[i]) &&
			    memcmp(k, keys[i], klen) == 0)
				break;
		/* Another member, or one twice: jansson judges it. */
		if (i == 3 || seen[i]++)
			return 0;
		val[i] = v;
		vlens[i] = vlen;
		p = dep_body_ws(p, end);
		if (p < end && *p == ',') {
			p = dep_body_ws(p + 1, end);
			if (p >= end || *p != '"')
				return 0;
		} else if (p >= end || *p != '}')
			return 0;
	}
	if (p >= end || *p++ != '}' || dep_body_ws(p, end) != end)
		return 0;
	/* A missing or null name or content: jansson's path says which. */
	if (val[0] == NULL || val[1] == NULL)
		return 0;
	if ((b->name = strndup((const char *)val[0], vlens[0])) == NULL ||
	    (val[2] != NULL &&
		(b->desc = strndup((const char *)val[2], vlens[2])) == NULL)) {
		free(b->name);
		b->name = NULL;
		return 0;
	}
	b->content = (const char *)val[1];
	b->contentlen = vlens[1];
	return 1;
}

static void
dep_create(struct worker *w, struct http_req *req, PGconn *db,
    const struct auth_client *c, const unsigned char *body, size_t bodylen)
{
	const char *name, *desc, *b64, *params[8];
	int lens[8] = { 0 }, fmts[8] = { 0 };
	unsigned char *plain = NULL, *ct = NULL, nonce[CRYPTO_NONCE_LEN];
	char uuid[CRYPTO_UUID_LEN + 1], aad[API_AAD_LEN + 1], loc[64];
	size_t plainlen = 0, b64len;
	struct dep_body fast = { NULL, NULL, NULL, 0 };
	PGresult *res = NULL;
	char *text = NULL;
	json_t *o = NULL, *ans;
	int timed_out;

	if (api_ctype_json(req) && dep_body_fast(body, bodylen, &fast)) {
		name = fast.name;
		desc = fast.desc;
		b64 = fast.content;
		b64len = fast.contentlen;
	} else {
		if ((o = api_json(req, body, bodylen)) == NULL)
			return;
		if (api_member(req, o, "name", 0, &name) == -1 ||
		    api_member(req, o, "content", 0, &b64) == -1 ||
		    api_member(req, o, "description", 1, &desc) == -1)
			goto out;
		b64len = strlen(b64);
	}
	if (!api_text_ok(name, API_NAME_MAX, 0)) {
		http_reply_error(req, HTTP_BADREQUEST, "bad_name",
		    "name must be 1-255 characters without control characters");
		goto out;
	}
	if (desc != NULL && *desc != '\0' &&
	    !api_text_ok(desc, API_DESC_MAX, 1)) {
		http_reply_error(req, HTTP_BADREQUEST, "bad_description",
		    "description must be at most 1024 characters without "
		    "control characters");
		goto out;
	}
	if (b64len > (API_CONTENT_MAX + 2) / 3 * 4) {
		http_reply_error(req, 413, "too_large",
		    "content is larger than 64 KiB");
		goto out;
	}
	/* The length check above bounds the result to the limit + 2. */
	if (crypto_b64_decode(b64, b64len, API_CONTENT_MAX + 2, &plain,
	    &plainlen) == -1) {
		http_reply_error(req, HTTP_BADREQUEST, "bad_content",
		    "content must be standard base64 (with padding)");
		goto out;
	}
	if (plainlen > API_CONTENT_MAX) {
		http_reply_error(req, 413, "too_large",
		    "content is larger than 64 KiB");
		goto out;
	}
	if (crypto_uuid4(uuid) == -1 ||
	    (ct = malloc(plainlen + CRYPTO_TAG_LEN)) == NULL) {
		http_reply_error(req, HTTP_INTERNAL, "internal",
		    "internal error");
		goto out;
	}
	dep_aad(aad, uuid, c->fpr);
	if (crypto_seal(w->srv->datakey, aad, API_AAD_LEN, plain, plainlen,
	    nonce, ct) == -1) {
		http_reply_error(req, HTTP_INTERNAL, "internal",
		    "internal error");
		goto out;
	}
	/* With the other deposits waiting (auditq.c): one commit for all. */
	if ((ans = json_pack("{s:s}", "uuid", uuid)) != NULL &&
	    (text = json_dumps(ans, JSON_COMPACT)) != NULL &&
	    auditq_create(w, req, uuid, c->fpr, c->org, name, desc, nonce, ct,
	    plainlen + CRYPTO_TAG_LEN, http_peer(req), text,
	    strlen(text)) == 0) {
		json_decref(ans);
		ct = NULL;
		snprintf(loc, sizeof(loc), "/v1/deposits/%s", uuid);
		http_add_header(req, "Location", loc);
		goto out;
	}
	json_decref(ans);
	free(text);
	params[0] = uuid;
	params[1] = c->fpr;
	params[2] = name;
	params[3] = desc;
	params[4] = (const char *)nonce;
	lens[4] = sizeof(nonce);
	fmts[4] = 1;
	params[5] = (const char *)ct;
	lens[5] = (int)(plainlen + CRYPTO_TAG_LEN);
	fmts[5] = 1;
	params[6] = c->org;
	params[7] = *http_peer(req) ? http_peer(req) : NULL;
	/* The row and its audit entry commit together, before the answer. */
	res = ha_exec(w, db,
	    "WITH d AS (INSERT INTO deposits (uuid, owner, name, description, "
	    "nonce, content) SELECT $1::uuid, $2, $3, $4, $5, $6 "
	    "WHERE " DB_SERVER_ORIGIN " AND " HA_SYNC_OK " RETURNING uuid) "
	    "INSERT INTO audit_log (actor, org, action, object, remote_addr, "
	    "result) SELECT $2, $7, 'deposit_create', d.uuid::text, $8, 'ok' "
	    "FROM d",
	    8, params, lens, fmts, 0, &timed_out);
	if (timed_out) {
		ha_refuse_no_sync(req);
		goto out;
	}
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_warnx("deposit create: %s", db_error(res, db));
		api_db_down(req);
		goto out;
	}
	if (strcmp(PQcmdTuples(res), "0") == 0) {
		/* HA_SYNC_OK was false: the standby went away just now. */
		ha_refuse_no_sync(req);
		goto out;
	}
	snprintf(loc, sizeof(loc), "/v1/deposits/%s", uuid);
	http_add_header(req, "Location", loc);
	if ((ans = json_pack("{s:s}", "uuid", uuid)) == NULL) {
		api_reply_pack_failed(req);
		goto out;
	}
	http_reply_json(req, 201, ans);
	json_decref(ans);
out:
	if (plain != NULL)
		freezero(plain, plainlen);
	free(ct);
	free(fast.name);
	free(fast.desc);
	PQclear(res);
	json_decref(o);
}

/*
 * Deposit uuid of client c, from the cache or else the database: 1 found
 * (*out, a reference; *fresh when read from the database now, with the
 * cache's generation from before that read in *gen), 0 not found (or
 * not c's), -1 after replying.
 */
static int
dep_lookup(struct worker *w, struct http_req *req, PGconn *db,
    const struct auth_client *c, const char *uuid,
    struct depcache_entry **out, int *fresh, unsigned long *gen)
{
	struct depcache *dc = w->srv->depcache;
	const char *params[2] = { uuid, c->fpr };
	struct depcache_entry *e;
	PGresult *res;

	*out = NULL;
	*fresh = 0;
	if ((e = depcache_get(dc, uuid)) != NULL) {
		if (strcmp(depcache_entry_owner(e), c->fpr) == 0) {
			*out = e;
			return 1;
		}
		depcache_unref(e);
		return 0;
	}
	*gen = depcache_gen(dc);
	res = stmt_exec(w, db, STMT_DEPOSIT_READ, params, NULL, NULL, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("deposit read: %s", db_error(res, db));
		PQclear(res);
		api_db_down(req);
		return -1;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		return 0;
	}
	e = depcache_entry_new(uuid, c->fpr, PQgetvalue(res, 0, 0),
	    PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1),
	    (const unsigned char *)PQgetvalue(res, 0, 2),
	    (size_t)PQgetlength(res, 0, 2),
	    (const unsigned char *)PQgetvalue(res, 0, 3),
	    (size_t)PQgetlength(res, 0, 3), PQgetvalue(res, 0, 4));
	PQclear(res);
	if (e == NULL) {
		/* A nonce or ciphertext of the wrong size, or out of memory. */
		log_warnx("deposit %s of client %s: the stored row is not "
		    "well formed (or out of memory)", uuid, c->fpr);
		audit(w, c->fpr, c->org, "deposit_read", uuid, http_peer(req),
		    "integrity");
		http_reply_error(req, HTTP_INTERNAL, "integrity",
		    "stored data failed its integrity check");
		return -1;
	}
	*out = e;
	*fresh = 1;
	return 1;
}

static void
dep_get(struct worker *w, struct http_req *req, PGconn *db,
    const struct auth_client *c, const char *uuid)
{
	const char *peer = http_peer(req);
	const unsigned char *ct, *nonce;
	char aad[API_AAD_LEN + 1], *text = NULL;
	unsigned char *plain = NULL;
	struct depcache_entry *e = NULL;
	size_t ctlen = 0, len = 0;
	unsigned long gen = 0;
	int fresh;

	switch (dep_lookup(w, req, db, c, uuid, &e, &fresh, &gen)) {
	case -1:
		return;
	case 0:
		audit(w, c->fpr, c->org, "deposit_read", uuid, peer,
		    "not_found");
		http_reply_error(req, HTTP_NOTFOUND, "not_found",
		    "no such deposit");
		return;
	}
	ct = depcache_entry_ct(e, &ctlen, &nonce);
	if ((plain = malloc(ctlen)) == NULL) {
		http_reply_error(req, HTTP_INTERNAL, "internal",
		    "internal error");
		goto out;
	}
	dep_aad(aad, uuid, c->fpr);
	if (crypto_open(w->srv->datakey, aad, API_AAD_LEN, nonce, ct, ctlen,
	    plain) == -1) {
		log_warnx("deposit %s of client %s: integrity check failed; "
		    "the stored row was altered or damaged", uuid, c->fpr);
		audit(w, c->fpr, c->org, "deposit_read", uuid, peer,
		    "integrity");
		http_reply_error(req, HTTP_INTERNAL, "integrity",
		    "stored data failed its integrity check");
		goto out;
	}
	/* Only a row that opened is kept. */
	if (fresh)
		depcache_put(w->srv->depcache, e, gen);
	if ((text = depcache_answer(e, plain, ctlen - CRYPTO_TAG_LEN,
	    &len)) == NULL) {
		api_reply_pack_failed(req);
		goto out;
	}
	/* No access without its audit row: answered once it commits. */
	if (auditq_read(w, req, c->fpr, c->org, uuid, peer, text, len) == 0)
		text = NULL;
	else if (audit(w, c->fpr, c->org, "deposit_read", uuid, peer,
	    "ok") == -1)
		api_db_down(req);
	else
		http_reply(req, HTTP_OK, "application/json", text, len);
out:
	if (text != NULL)
		freezero(text, len);
	if (plain != NULL)
		freezero(plain, ctlen);
	depcache_unref(e);
}

static void
dep_list(struct worker *w, struct http_req *req, PGconn *db,
    const struct auth_client *c)
{
	const char *query = http_req_query(req);
	const char *name = NULL, *params[2];
	struct evkeyvalq q;
	PGresult *res = NULL;
	json_t *arr = NULL, *ans = NULL, *item;
	int i;

	TAILQ_INIT(&q);
	if (query != NULL && evhttp_parse_query_str(query, &q) != 0) {
		http_reply_error(req, HTTP_BADREQUEST, "bad_request",
		    "malformed query string");
		goto out;
	}
	name = evhttp_find_header(&q, "name");
	if (name != NULL && !api_text_ok(name, API_NAME_MAX, 0)) {
		http_reply_error(req, HTTP_BADREQUEST, "bad_name",
		    "name must be 1-255 characters without control characters");
		goto out;
	}
	params[0] = c->fpr;
	params[1] = name;
	res = PQexecParams(db,
	    "SELECT uuid::text, name, description, "
	    "to_char(created AT TIME ZONE 'UTC', "
	    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
	    "FROM deposits WHERE owner = $1 AND ($2::text IS NULL OR "
	    "name = $2) ORDER BY created, uuid",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("deposit list: %s", db_error(res, db));
		api_db_down(req);
		goto out;
	}
	if ((arr = json_array()) == NULL)
		goto fail;
	for (i = 0; i < PQntuples(res); i++) {
		item = json_pack("{s:s, s:s, s:o, s:s}",
		    "uuid", PQgetvalue(res, i, 0),
		    "name", PQgetvalue(res, i, 1),
		    "description", PQgetisnull(res, i, 2) ? json_null() :
		    json_string(PQgetvalue(res, i, 2)),
		    "created", PQgetvalue(res, i, 3));
		if (item == NULL || json_array_append_new(arr, item) == -1)
			goto fail;
	}
	if (audit(w, c->fpr, c->org, "deposit_list", name, http_peer(req),
	    "ok") == -1) {
		api_db_down(req);
		goto out;
	}
	if ((ans = json_pack("{s:O}", "deposits", arr)) == NULL)
		goto fail;
	http_reply_json(req, HTTP_OK, ans);
	goto out;
fail:
	api_reply_pack_failed(req);
out:
	evhttp_clear_headers(&q);
	json_decref(arr);
	json_decref(ans);
	PQclear(res);
}

static void
dep_delete(struct worker *w, struct http_req *req, PGconn *db,
    const struct auth_client *c, const char *uuid)
{
	const char *params[4] = { uuid, c->fpr, c->org, NULL };
	PGresult *res;
	json_t *ans;
	int timed_out;

	params[3] = *http_peer(req) ? http_peer(req) : NULL;
	/* The deletion and its audit row commit together. */
	res = ha_exec(w, db,
	    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
	    "d AS (DELETE FROM deposits WHERE uuid = $1::uuid AND "
	    "owner = $2 AND (SELECT ok FROM g) RETURNING uuid), "
	    "a AS (INSERT INTO audit_log (actor, org, action, object, "
	    "remote_addr, result) SELECT $2, $3, 'deposit_delete', $1, $4, "
	    "CASE WHEN count(*) > 0 THEN 'ok' ELSE 'not_found' END FROM d "
	    "HAVING (SELECT ok FROM g)) "
	    "SELECT (SELECT count(*) FROM d), (SELECT ok FROM g)",
	    4, params, NULL, NULL, 0, &timed_out);
	if (timed_out) {
		ha_refuse_no_sync(req);
		goto out;
	}
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		log_warnx("deposit delete: %s", db_error(res, db));
		api_db_down(req);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
		ha_refuse_no_sync(req);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
		http_reply_error(req, HTTP_NOTFOUND, "not_found",
		    "no such deposit");
		goto out;
	}
	/* Gone for every worker before the answer says so. */
	depcache_drop(w->srv->depcache, uuid);
	if ((ans = json_pack("{s:s}", "deleted", uuid)) == NULL) {
		api_reply_pack_failed(req);
		goto out;
	}
	http_reply_json(req, HTTP_OK, ans);
	json_decref(ans);
out:
	PQclear(res);
}

void
api_deposits(struct worker *w, struct http_req *req, const char *id)
{
	enum httpmsg_method cmd = http_req_method(req);
	struct auth_client c;
	const unsigned char *body;
	char uuid[CRYPTO_UUID_LEN + 1];
	size_t len, i;
	PGconn *db;

	body = http_req_body(req, &len);
	memset(&c, 0, sizeof(c));
	if (auth_request(w, req, body, len, &c) == -1)
		return;
	if (id != NULL) {
		/* Canonical text, either case; compared in lower case. */
		for (i = 0; i < CRYPTO_UUID_LEN && id[i] != '\0'; i++)
			uuid[i] = (char)(id[i] >= 'A' && id[i] <= 'F' ?
			    id[i] - 'A' + 'a' : id[i]);
		uuid[i] = '\0';
		if (id[i] != '\0' || !crypto_uuid_ok(uuid)) {
			http_reply_error(req, HTTP_BADREQUEST, "bad_uuid",
			    "not a deposit uuid");
			return;
		}
	}
	if ((cmd == HTTPMSG_POST || cmd == HTTPMSG_DELETE) &&
	    ha_write_gate(w, req) == -1)
		return;
	if ((db = worker_db(w)) == NULL) {
		api_db_down(req);
		return;
	}
	if (id == NULL && cmd == HTTPMSG_POST)
		dep_create(w, req, db, &c, body, len);
	else if (id == NULL)
		dep_list(w, req, db, &c);
	else if (cmd == HTTPMSG_GET)
		dep_get(w, req, db, &c, uuid);
	else
		dep_delete(w, req, db, &c, uuid);
}
