/*
 * api_register.c - POST /v1/register: a client registers its OpenPGP
 * public key with an organization and gets its request-signing secret,
 * encrypted to that key.  The org's auth secret decides its state: none
 * set → active; the right one given → active; none given → pending until
 * keytrustee-orgtool enable-client; a wrong one → 403, and an address
 * that fails too often is throttled.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "audit.h"
#include "auth.h"
#include "clientkey.h"
#include "ha.h"
#include "log.h"
#include "orgauth.h"
#include "throttle.h"
#include "util.h"

#define API_ORG_MAX 64
#define API_HOST_MAX 253
#define API_AUTH_MAX 1024
#define API_PUBKEY_MAX (100 * 1024)

struct reg {
	const char *org, *auth, *pubkey, *hostname;
	char orgid[24];
	char fpr[PGP_FPR_LEN + 1];
	const char *state;
	unsigned char secret[CRYPTO_KEY_LEN];
};

/* Audit the registration's refusal why from req. */
static void
reg_audit(struct worker *w, struct http_req *req, const char *actor,
    const char *org, const char *why)
{
	audit(w->srv->ha, w->store,
	    AUDIT_ROW(.actor = actor, .org = org, .action = "register",
		.object = actor, .remote = http_peer(req), .result = why));
}

static int
reg_parse(json_t *o, struct reg *r, struct verdict *v)
{
	if (api_member(o, "org", 0, &r->org, v) == -1 ||
	    api_member(o, "auth", 1, &r->auth, v) == -1 ||
	    api_member(o, "pubkey", 0, &r->pubkey, v) == -1 ||
	    api_member(o, "hostname", 0, &r->hostname, v) == -1)
		return -1;
	if (!api_text_ok(r->org, API_ORG_MAX, 0))
		return verdict_refuse(v, 400, "bad_request",
		    "org must be 1-64 characters without controls");
	if (r->auth != NULL && strlen(r->auth) > API_AUTH_MAX)
		return verdict_refuse(v, 400, "bad_request", "auth is too long");
	if (!api_text_ok(r->hostname, API_HOST_MAX, 0))
		return verdict_refuse(v, 400, "bad_request",
		    "hostname must be 1-253 characters without controls");
	if (strlen(r->pubkey) > API_PUBKEY_MAX ||
	    strstr(r->pubkey, "-----BEGIN PGP PUBLIC KEY BLOCK-----") == NULL)
		return verdict_refuse(v, 400, "bad_pubkey",
		    "pubkey must be an ASCII-armored OpenPGP public key");
	return 0;
}

/* The org's id and the state its auth secret decides; 0, or -1 with v. */
static int
reg_org(struct worker *w, struct http_req *req, struct reg *r,
    struct verdict *v)
{
	struct org_row o;
	int ret = -1;

	switch (store_org_get(w->store, r->org, &o)) {
	case STORE_OK:
		break;
	case STORE_NOT_FOUND:
		reg_audit(w, req, NULL, NULL, "unknown_org");
		return verdict_refuse(v, 404, "unknown_org",
		    "no such organization");
	default:
		return VERDICT_DB_DOWN(v);
	}
	snprintf(r->orgid, sizeof(r->orgid), "%s", o.id);
	if (orgauth_state(w->srv->throttle, http_peer(req), &o, r->auth,
		&r->state, v) == -1) {
		reg_audit(w, req, NULL, r->org, "bad_auth");
		goto out;
	}
	ret = 0;
out:
	store_org_clear(&o);
	return ret;
}

/*
 * The existing client of r->fpr: 1 when found (r->state, r->secret set),
 * 0 when none, -1 with v.
 */
static int
reg_existing(struct worker *w, struct http_req *req, struct reg *r,
    struct verdict *v)
{
	struct client_row c;
	enum store_result s;
	int ret = -1;

	if ((s = store_client_get(w->store, r->fpr, &c)) == STORE_NOT_FOUND)
		return 0;
	if (s != STORE_OK && s != STORE_INTEGRITY)
		return VERDICT_DB_DOWN(v);
	if (strcmp(c.org_id, r->orgid) != 0) {
		reg_audit(w, req, r->fpr, r->org, "other_org");
		verdict_refuse(v, 409, "conflict",
		    "this key is registered to another organization");
		goto out;
	}
	if (s == STORE_INTEGRITY ||
	    auth_secret_open(w->srv->datakey, r->fpr, c.a.nonce,
		sizeof(c.a.nonce), c.a.ct, sizeof(c.a.ct), r->secret) == -1) {
		log_warnx("client %s: its sealed secret fails the integrity "
			  "check",
		    r->fpr);
		VERDICT_INTEGRITY(v);
		goto out;
	}
	r->state = strcmp(c.a.state, "active") == 0	 ? "active"
	    : strcmp(c.a.state, "pending") == 0 ? "pending"
						 : "disabled";
	ret = 1;
out:
	OPENSSL_cleanse(&c, sizeof(c));
	return ret;
}

/*
 * A new client with its audit row and, in the same transaction, the
 * notice to each of the org's contacts: 1 done, 0 lost a race, -1 with v.
 */
static int
reg_insert(struct worker *w, struct http_req *req, struct reg *r,
    struct verdict *v)
{
	unsigned char nonce[CRYPTO_NONCE_LEN];
	unsigned char ct[CRYPTO_KEY_LEN + CRYPTO_TAG_LEN];
	char *subject = NULL, *body = NULL;
	int ret = -1;

	if (crypto_random(r->secret, sizeof(r->secret)) == -1 ||
	    crypto_seal(w->srv->datakey, r->fpr, strlen(r->fpr), r->secret,
		sizeof(r->secret), nonce, ct) == -1 ||
	    mail_client_notice(w->srv->conf, r->org, r->fpr, r->hostname,
		r->state, &subject, &body) == -1) {
		VERDICT_INTERNAL(v);
		goto out;
	}
	switch (store_client_insert(w->store,
	    &(struct client_new){.fpr = r->fpr, .org_id = r->orgid,
		.org = r->org, .hostname = r->hostname, .pubkey = r->pubkey,
		.state = r->state, .remote = http_peer(req), .nonce = nonce,
		.ct = ct, .subject = subject, .body = body})) {
	case STORE_OK:
		ret = 1;
		break;
	case STORE_CONFLICT:
		ret = 0;
		break;
	case STORE_NO_SYNC:
		ha_no_sync(v);
		break;
	default:
		VERDICT_DB_DOWN(v);
	}
out:
	free(subject);
	free(body);
	return ret;
}

/* The client key's registration: 200 or 201 and its state, or -1 with v. */
static int
reg_client(struct worker *w, struct http_req *req, struct reg *r,
    struct verdict *v, int *status)
{
	int e, found;

	/* Twice at most: a concurrent registration of the key may win. */
	for (e = 0; e < 2; e++) {
		if ((found = reg_existing(w, req, r, v)) == -1)
			return -1;
		if (found) {
			reg_audit(w, req, r->fpr, r->org, "existing");
			*status = 200;
			return 0;
		}
		if ((found = reg_insert(w, req, r, v)) == -1)
			return -1;
		if (found) {
			*status = 201;
			return 0;
		}
	}
	return verdict_refuse(v, 503, "conflict", "try again");
}

void
api_register(struct worker *w, struct http_req *req,
    const struct handler_match *m)
{
	struct reg r;
	struct verdict v;
	struct clientkey *key = NULL;
	const unsigned char *body;
	char hex[2 * CRYPTO_KEY_LEN + 1], err[512], *armored = NULL;
	size_t len;
	json_t *o = NULL, *ans = NULL;
	int status = 0, e;

	(void)m;
	memset(&r, 0, sizeof(r));
	body = http_req_body(req, &len);
	if ((o = api_json(api_ctype_json(http_req_header(req, "Content-Type")),
		 body, len, &v)) == NULL ||
	    reg_parse(o, &r, &v) == -1)
		goto refuse;
	if (throttle_check(w->srv->throttle, http_peer(req), &v) == -1) {
		reg_audit(w, req, NULL, r.org, "throttled");
		goto refuse;
	}
	if (ha_write_gate(w->srv->ha, &v) == -1 ||
	    reg_org(w, req, &r, &v) == -1)
		goto refuse;
	if (clientkey_load(r.pubkey, strlen(r.pubkey), &key, r.fpr, err,
		sizeof(err)) == -1) {
		log_debug("register: key refused: %s", err);
		reg_audit(w, req, NULL, r.org, "bad_pubkey");
		verdict_refuse(&v, 400, "bad_pubkey",
		    "pubkey is not a usable OpenPGP public key (one key, with "
		    "an encryption subkey, no secret parts)");
		goto refuse;
	}
	if (reg_client(w, req, &r, &v, &status) == -1)
		goto refuse;
	hex_encode(r.secret, sizeof(r.secret), hex, 0);
	e = clientkey_encrypt(
	    key, hex, strlen(hex), &armored, NULL, err, sizeof(err));
	OPENSSL_cleanse(hex, sizeof(hex));
	if (e == -1) {
		log_warnx("register: client %s: %s", r.fpr, err);
		verdict_refuse(&v, 500, "internal",
		    "cannot encrypt to the client's key");
		goto refuse;
	}
	if ((ans = json_pack("{s:s, s:s, s:s, s:s}", "fingerprint", r.fpr,
		 "state", r.state, "secret", armored, "server_fingerprint",
		 w->srv->qfpr)) == NULL) {
		VERDICT_INTERNAL(&v);
		goto refuse;
	}
	http_reply_json(req, status, ans);
	log_info("register: client %s of org %s: %s (%s)", r.fpr, r.org,
	    status == 201 ? "new" : "existing", r.state);
	goto out;
refuse:
	http_reply_verdict(req, &v);
out:
	OPENSSL_cleanse(r.secret, sizeof(r.secret));
	clientkey_free(key);
	free(armored);
	json_decref(ans);
	json_decref(o);
}
