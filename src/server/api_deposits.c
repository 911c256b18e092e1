/*
 * api_deposits.c - /v1/deposits: an active client stores, fetches, lists
 * and deletes its own deposits, every request signed (auth.c).  Deposits
 * are sealed at rest with AES-256-GCM under the data key, AAD = uuid text
 * || owner fingerprint.  No access without its audit row: a read and a new
 * deposit are answered once their rows committed (auditq.c).
 */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "api.h"
#include "audit.h"
#include "auditq.h"
#include "auth.h"
#include "depcache.h"
#include "ha.h"
#include "log.h"
#include "replay.h"
#include "util.h"

/* The audit row of client c's action on object from req. */
#define DEP_ROW(c, req, act, obj, res)                                      \
	AUDIT_ROW(.actor = (c)->fpr, .org = (c)->org, .action = (act),      \
	    .object = (obj), .remote = http_peer(req), .result = (res))

/*
 * Who sent req (verified), and the deposit uuid of the path, canonical
 * lower case (when the route matched one); a write must pass the HA gate
 * too.  0, or -1 with v refusing.
 */
static int
dep_request(struct worker *w, struct http_req *req,
    const struct handler_match *m, int write, struct auth_client *c,
    char uuid[CRYPTO_UUID_LEN + 1], struct verdict *v)
{
	const char *id = m->rest;
	size_t i;

	memset(c, 0, sizeof(*c));
	if (auth_request(w, req, c, v) == -1)
		return -1;
	if (id != NULL) {
		/* Canonical text, either case; compared in lower case. */
		for (i = 0; i < CRYPTO_UUID_LEN && id[i] != '\0'; i++)
			uuid[i] = (char)(id[i] >= 'A' && id[i] <= 'F'
				? id[i] - 'A' + 'a'
				: id[i]);
		uuid[i] = '\0';
		if (id[i] != '\0' || !crypto_uuid_ok(uuid))
			return verdict_refuse(
			    v, 400, "bad_uuid", "not a deposit uuid");
	}
	return write ? ha_write_gate(w->srv->ha, v) : 0;
}

/* An answer set aside until its audit row commits (auditq.c). */
struct dep_pending {
	struct worker *w;
	struct http_req *req;
	struct auth_client c;
	char *body;
	size_t len;
	char uuid[CRYPTO_UUID_LEN + 1]; /* a new deposit's */
};

static struct dep_pending *
pending_new(struct worker *w, struct http_req *req,
    const struct auth_client *c, char *body, size_t len, const char *uuid)
{
	struct dep_pending *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->w = w;
	p->req = req;
	p->c = *c;
	p->body = body;
	p->len = len;
	snprintf(p->uuid, sizeof(p->uuid), "%s", uuid);
	return p;
}

static void
pending_free(struct dep_pending *p)
{
	freezero(p->body, p->len);
	free(p);
}

/* ---- POST /v1/deposits ---------------------------------------------------- */

/* The answer to a new deposit, once it and its row committed (or not). */
static void
create_done(void *arg, int result)
{
	struct dep_pending *p = arg;
	struct verdict v;
	char loc[64];

	if (result == 1) {
		snprintf(loc, sizeof(loc), "/v1/deposits/%s", p->uuid);
		http_add_header(p->req, "Location", loc);
		http_reply(p->req, 201, "application/json", p->body, p->len);
	} else if (result == 2) {
		/* A replay: its first answer, nothing stored. */
		replay_answer(p->w, p->req, &p->c, NULL);
	} else {
		if (result == -1)
			ha_no_sync(&v); /* the standby went away just now */
		else
			VERDICT_DB_DOWN(&v);
		http_reply_verdict(p->req, &v);
	}
	pending_free(p);
}

void
api_deposit_create(struct worker *w, struct http_req *req,
    const struct handler_match *m)
{
	struct api_deposit_body d;
	struct auth_client c;
	struct verdict v;
	struct dep_pending *p = NULL;
	const unsigned char *body;
	unsigned char *ct = NULL, nonce[CRYPTO_NONCE_LEN];
	char uuid[CRYPTO_UUID_LEN + 1], *text = NULL, loc[64];
	size_t len;
	struct deposit_row row;
	json_t *ans = NULL;
	enum store_result r;
	int seen = 0;

	memset(&d, 0, sizeof(d));
	body = http_req_body(req, &len);
	if (dep_request(w, req, m, 1, &c, uuid, &v) == -1 ||
	    api_deposit_body(
		api_ctype_json(http_req_header(req, "Content-Type")), 0, body,
		len, &d, &v) == -1)
		goto refuse;
	if (crypto_uuid4(uuid) == -1 ||
	    (ct = malloc(d.plainlen + CRYPTO_TAG_LEN)) == NULL)
		goto internal;
	if (deposit_seal(w->srv->datakey, uuid, c.fpr, d.plain, d.plainlen,
		nonce, ct) == -1 ||
	    (ans = json_pack("{s:s}", "uuid", uuid)) == NULL ||
	    (text = json_dumps(ans, JSON_COMPACT)) == NULL)
		goto internal;
	if ((p = pending_new(w, req, &c, text, strlen(text), uuid)) == NULL) {
		free(text);
		goto internal;
	}
	/* Its answer is kept with it, for a replay of its request. */
	snprintf(loc, sizeof(loc), "/v1/deposits/%s", uuid);
	row = (struct deposit_row){uuid, c.fpr, c.org, d.cname, d.cdesc, nonce,
	    ct, d.plainlen + CRYPTO_TAG_LEN, {c.seen, 201, loc, text}};
	/* With the other deposits waiting: one commit for all. */
	if (auditq_create(w->srv->auditq, w, &row, http_peer(req), create_done,
		p) == 0)
		ct = NULL; /* the queue's now */
	else {
		/* No queue: the row and its audit entry commit right now. */
		r = store_deposit_insert(w->store, &row,
		    (const char *const[]){http_peer(req)}, 1, &seen);
		create_done(p, r == STORE_OK ? 1 + seen
			: r == STORE_NO_SYNC ? -1
					     : 0);
	}
	goto out;
internal:
	VERDICT_INTERNAL(&v);
refuse:
	http_reply_verdict(req, &v);
out:
	free(ct);
	api_deposit_body_clear(&d);
	json_decref(ans);
}

/* ---- GET /v1/deposits/{uuid} ------------------------------------------------ */

/*
 * Deposit uuid of client c, from the cache or else the database: 1 found
 * (*out, a reference; *fresh when read from the database now, with the
 * cache's generation from before that read in *gen), 0 not found (or
 * not c's), -1 with v.
 */
static int
dep_lookup(struct worker *w, struct http_req *req,
    const struct auth_client *c, const char *uuid, struct deposit **out,
    int *fresh, unsigned long *gen, struct verdict *v)
{
	struct depcache *dc = w->srv->depcache;
	struct deposit *d;

	*out = NULL;
	*fresh = 0;
	if ((d = depcache_get(dc, uuid)) != NULL) {
		if (strcmp(d->owner, c->fpr) == 0) {
			*out = d;
			return 1;
		}
		deposit_unref(d);
		return 0;
	}
	*gen = depcache_gen(dc);
	switch (store_deposit_read(w->store, uuid, c->fpr, out)) {
	case STORE_OK:
		*fresh = 1;
		return 1;
	case STORE_NOT_FOUND:
		return 0;
	case STORE_INTEGRITY:
		log_warnx("deposit %s of client %s: the stored row is not "
			  "well formed (or out of memory)",
		    uuid, c->fpr);
		audit(w->srv->ha, w->store,
		    DEP_ROW(c, req, "deposit_read", uuid, "integrity"));
		return VERDICT_INTEGRITY(v);
	default:
		return VERDICT_DB_DOWN(v);
	}
}

/* A read's answer, once its audit row is kept (or not). */
static void
read_done(void *arg, int result)
{
	struct dep_pending *p = arg;

	if (result == 1)
		http_reply(p->req, 200, "application/json", p->body, p->len);
	else
		http_reply_error(
		    p->req, 503, "database", "the database is not available");
	pending_free(p);
}

void
api_deposit_get(struct worker *w, struct http_req *req,
    const struct handler_match *m)
{
	char uuid[CRYPTO_UUID_LEN + 1], *text = NULL;
	unsigned char *plain = NULL;
	struct auth_client c;
	struct deposit *d = NULL;
	struct dep_pending *p;
	struct verdict v;
	size_t ctlen = 0, len = 0;
	unsigned long gen = 0;
	int fresh;

	if (dep_request(w, req, m, 0, &c, uuid, &v) == -1)
		goto refuse;
	switch (dep_lookup(w, req, &c, uuid, &d, &fresh, &gen, &v)) {
	case -1:
		goto refuse;
	case 0:
		audit(w->srv->ha, w->store,
		    DEP_ROW(&c, req, "deposit_read", uuid, "not_found"));
		verdict_refuse(&v, 404, "not_found", "no such deposit");
		goto refuse;
	}
	ctlen = d->ctlen;
	if ((plain = malloc(ctlen)) == NULL)
		goto internal;
	if (deposit_open(w->srv->datakey, d, plain) == -1) {
		log_warnx("deposit %s of client %s: integrity check failed; "
			  "the stored row was altered or damaged",
		    uuid, c.fpr);
		audit(w->srv->ha, w->store,
		    DEP_ROW(&c, req, "deposit_read", uuid, "integrity"));
		VERDICT_INTEGRITY(&v);
		goto refuse;
	}
	/* Only a row that opened is kept. */
	if (fresh)
		depcache_put(w->srv->depcache, d, gen);
	if ((text = deposit_answer(d, plain, ctlen - CRYPTO_TAG_LEN, &len)) ==
	    NULL)
		goto internal;
	if ((p = pending_new(w, req, &c, text, len, uuid)) == NULL) {
		freezero(text, len);
		goto internal;
	}
	/* No access without its audit row: answered once it commits. */
	if (auditq_read(w->srv->auditq, w,
		DEP_ROW(&c, req, "deposit_read", uuid, "ok"), read_done,
		p) == -1)
		read_done(p, audit(w->srv->ha, w->store,
				 DEP_ROW(&c, req, "deposit_read", uuid,
				     "ok")) == 0);
	goto out;
internal:
	VERDICT_INTERNAL(&v);
refuse:
	http_reply_verdict(req, &v);
out:
	if (plain != NULL)
		freezero(plain, ctlen);
	deposit_unref(d);
}

/* ---- GET /v1/deposits ----------------------------------------------------- */

void
api_deposit_list(struct worker *w, struct http_req *req,
    const struct handler_match *m)
{
	const char *query = http_req_query(req), *name = NULL;
	struct auth_client c;
	struct verdict v;
	struct evkeyvalq q;
	json_t *arr = NULL, *ans = NULL;
	char uuid[CRYPTO_UUID_LEN + 1];

	TAILQ_INIT(&q);
	if (dep_request(w, req, m, 0, &c, uuid, &v) == -1)
		goto refuse;
	if (query != NULL && evhttp_parse_query_str(query, &q) != 0) {
		verdict_refuse(&v, 400, "bad_request", "malformed query string");
		goto refuse;
	}
	name = evhttp_find_header(&q, "name");
	if (name != NULL && !api_text_ok(name, API_NAME_MAX, 0)) {
		verdict_refuse(&v, 400, "bad_name",
		    "name must be 1-255 characters without control characters");
		goto refuse;
	}
	switch (store_deposit_list(w->store, c.fpr, name, &arr)) {
	case STORE_OK:
		break;
	case STORE_FAIL:
		VERDICT_DB_DOWN(&v);
		goto refuse;
	default:
		VERDICT_INTERNAL(&v);
		goto refuse;
	}
	if (audit(w->srv->ha, w->store,
		DEP_ROW(&c, req, "deposit_list", name, "ok")) == -1) {
		VERDICT_DB_DOWN(&v);
		goto refuse;
	}
	if ((ans = json_pack("{s:O}", "deposits", arr)) == NULL) {
		VERDICT_INTERNAL(&v);
		goto refuse;
	}
	http_reply_json(req, 200, ans);
	goto out;
refuse:
	http_reply_verdict(req, &v);
out:
	evhttp_clear_headers(&q);
	json_decref(arr);
	json_decref(ans);
}

/* ---- DELETE /v1/deposits/{uuid} ---------------------------------------------- */

void
api_deposit_delete(struct worker *w, struct http_req *req,
    const struct handler_match *m)
{
	char uuid[CRYPTO_UUID_LEN + 1], *text = NULL;
	struct auth_client c;
	struct verdict v;
	json_t *ans = NULL;

	if (dep_request(w, req, m, 1, &c, uuid, &v) == -1)
		goto refuse;
	if ((ans = json_pack("{s:s}", "deleted", uuid)) == NULL ||
	    (text = json_dumps(ans, JSON_COMPACT)) == NULL) {
		VERDICT_INTERNAL(&v);
		goto refuse;
	}
	/* The deletion, its audit row and its answer commit together. */
	switch (store_deposit_delete(w->store, uuid,
	    DEP_ROW(&c, req, "deposit_delete", uuid, NULL),
	    &(const struct store_answer){c.seen, 200, NULL, text})) {
	case STORE_OK:
		break;
	case STORE_CONFLICT:
		/* A replay: its first answer, nothing deleted. */
		replay_answer(w, req, &c, uuid);
		goto out;
	case STORE_NOT_FOUND:
		verdict_refuse(&v, 404, "not_found", "no such deposit");
		goto refuse;
	case STORE_NO_SYNC:
		ha_no_sync(&v); /* the standby went away just now */
		goto refuse;
	default:
		VERDICT_DB_DOWN(&v);
		goto refuse;
	}
	/* Gone for every worker before the answer says so. */
	depcache_drop(w->srv->depcache, uuid);
	http_reply(req, 200, "application/json", text, strlen(text));
	goto out;
refuse:
	http_reply_verdict(req, &v);
out:
	free(text);
	json_decref(ans);
}
