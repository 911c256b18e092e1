/*
 * legacy_clients.c - a legacy client's registration (docs/legacy.md):
 * register (its key from /pks/add, a challenge encrypted to it), verify
 * (the challenge answered), request_activation (its organization, active
 * or pending by the org's auth secret as /v1/register decides), and
 * entropy.
 */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clientkey.h"
#include "ha.h"
#include "legacy.h"
#include "log.h"
#include "mail.h"
#include "orgauth.h"
#include "throttle.h"
#include "util.h"

#define CHALLENGE_LEN 32 /* random octets, sent as hex */
#define ENTROPY_MAX 4096

/* Lower-case hex SHA-512 of s. */
static int
sha512_hex(const char *s, char out[2 * 64 + 1])
{
	unsigned char d[64];
	unsigned int n;

	if (!EVP_Digest(s, strlen(s), d, &n, EVP_sha512(), NULL))
		return -1;
	hex_encode(d, sizeof(d), out, 0);
	out[2 * sizeof(d)] = '\0';
	return 0;
}

/* A form field of register (in the clear), or NULL. */
static const char *
field(struct legacy_req *r, const char *name)
{
	return evhttp_find_header(r->form, name);
}

/* The key the client posted to /pks/add (or registered with): 0, -1. */
static int
register_key(struct legacy_req *r, const char *qualified, char **armored,
    struct clientkey **key, struct verdict *v)
{
	char fpr[PGP_FPR_LEN + 1], got[PGP_FPR_LEN + 1], q[PGP_QFPR_MAX];
	char err[256];

	if (pgp_fpr_parse(qualified, fpr) == -1)
		return verdict_refuse(v, 400, "bad_request",
		    "fingerprint must be the client's <bits>R/<40 hex>");
	switch (store_hkp_key(r->w->store, fpr, armored)) {
	case STORE_OK:
		break;
	case STORE_NOT_FOUND:
		return verdict_refuse(v, 400, "no_key",
		    "no key of this fingerprint: post it to /pks/add first");
	default:
		return VERDICT_DB_DOWN(v);
	}
	if (clientkey_load(*armored, strlen(*armored), key, got, err,
		sizeof(err)) == -1 ||
	    strcmp(got, fpr) != 0 || clientkey_qualified(*key, q) == -1) {
		log_warnx("legacy register: key %s: %s", fpr, err);
		return VERDICT_INTEGRITY(v);
	}
	/* "<bits>R/" as the client wrote it must be the key's (section 2). */
	if (strchr(qualified, '/') != NULL &&
	    strncmp(qualified, q, (size_t)(strchr(q, '/') - q + 1)) != 0)
		return verdict_refuse(v, 400, "bad_request",
		    "fingerprint does not give the key's size and algorithm");
	snprintf(r->c.fpr, sizeof(r->c.fpr), "%s", fpr);
	snprintf(r->c.qualified, sizeof(r->c.qualified), "%s", q);
	return 0;
}

static int
register_run(struct legacy_req *r, json_t **ans, int *status,
    struct verdict *v)
{
	const char *proto = field(r, "protocol"), *org = field(r, "org");
	const char *sync = field(r, "token_sync");
	unsigned char rnd[CHALLENGE_LEN], nonce[CRYPTO_NONCE_LEN];
	unsigned char secret[CRYPTO_KEY_LEN], ct[CRYPTO_KEY_LEN + CRYPTO_TAG_LEN];
	char challenge[2 * CHALLENGE_LEN + 1], sha[2 * 64 + 1], token[65];
	char err[256], *armored = NULL, *msg = NULL;
	struct clientkey *key = NULL;
	struct org_row o = {"", NULL};
	enum store_result s;
	int tsync = sync != NULL && (strcmp(sync, "1") == 0 ||
				     strcasecmp(sync, "true") == 0);
	int ret = -1;

	(void)status;
	if (proto == NULL || *proto == '\0')
		proto = "json-encrypt";
	if (strcmp(proto, "json-encrypt") != 0 &&
	    strcmp(proto, "json-sign") != 0) {
		verdict_refuse(v, 400, "bad_request",
		    "protocol must be json-encrypt or json-sign");
		goto out;
	}
	if (field(r, "fingerprint") == NULL) {
		verdict_refuse(v, 400, "bad_request", "fingerprint is missing");
		goto out;
	}
	if (ha_write_gate(r->w->srv->ha, v) == -1 ||
	    register_key(r, field(r, "fingerprint"), &armored, &key, v) == -1)
		goto out;
	if (org != NULL && *org != '\0' &&
	    (s = store_org_get(r->w->store, org, &o)) != STORE_OK) {
		legacy_store_refusal(s, v, "organization");
		goto out;
	}
	token[0] = '\0';
	if (crypto_random(rnd, sizeof(rnd)) == -1 ||
	    crypto_random(secret, sizeof(secret)) == -1 ||
	    crypto_seal(r->w->srv->datakey, r->c.fpr, strlen(r->c.fpr), secret,
		sizeof(secret), nonce, ct) == -1) {
		VERDICT_INTERNAL(v);
		goto out;
	}
	hex_encode(rnd, sizeof(rnd), challenge, 0);
	challenge[2 * CHALLENGE_LEN] = '\0';
	if (tsync) {
		unsigned char t[32];
		if (crypto_random(t, sizeof(t)) == -1) {
			VERDICT_INTERNAL(v);
			goto out;
		}
		hex_encode(t, sizeof(t), token, 0);
		token[64] = '\0';
	}
	if (sha512_hex(challenge, sha) == -1 ||
	    (msg = legacy_message(r, armored, challenge, strlen(challenge),
		 err, sizeof(err))) == NULL) {
		log_warnx("legacy register: %s", err);
		VERDICT_INTERNAL(v);
		goto out;
	}
	if ((s = store_legacy_register(r->w->store,
		 &(struct legacy_register){.fpr = r->c.fpr,
		     .qualified = r->c.qualified, .hostname = r->peer,
		     .pubkey = armored, .protocol = proto,
		     .token = tsync ? token : NULL, .challenge_sha512 = sha,
		     .org = o.id[0] != '\0' ? org : NULL, .remote = r->peer,
		     .nonce = nonce, .ct = ct})) != STORE_OK) {
		legacy_store_refusal(s, v, "client");
		goto out;
	}
	*ans = json_pack("{s:s, s:s}", "challenge", msg, "sha512", sha);
	if (*ans == NULL || (tsync && json_object_set_new(*ans, "next_token",
					  json_string(token)) == -1)) {
		VERDICT_INTERNAL(v);
		goto out;
	}
	log_info("legacy register: client %s (%s)", r->c.qualified, proto);
	ret = 0;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(challenge, sizeof(challenge));
	store_org_clear(&o);
	clientkey_free(key);
	free(armored);
	free(msg);
	return ret;
}

static int
verify_run(struct legacy_req *r, json_t **ans, int *status, struct verdict *v)
{
	const char *response;
	char sha[2 * 64 + 1];
	enum store_result s;

	(void)status;
	if (legacy_str(r, "response", 0, &response, v) == -1)
		return -1;
	if (r->c.challenge[0] == '\0')
		return verdict_refuse(v, 403, "no_challenge",
		    "this client has no open challenge (register again)");
	if (sha512_hex(response, sha) == -1)
		return VERDICT_INTERNAL(v);
	if (strcasecmp(sha, r->c.challenge) != 0)
		return verdict_refuse(v, 403, "bad_response",
		    "the response is not the challenge's plaintext");
	s = store_legacy_verified(r->w->store, r->c.fpr, r->peer);
	if (s == STORE_NOT_FOUND)
		return verdict_refuse(v, 403, "no_challenge",
		    "this client has no open challenge (register again)");
	if (s != STORE_OK)
		return legacy_store_refusal(s, v, "client");
	*ans = json_pack("{s:s}", "verified", "true");
	return *ans != NULL ? 0 : VERDICT_INTERNAL(v);
}

static int
activation_run(struct legacy_req *r, json_t **ans, int *status,
    struct verdict *v)
{
	const char *org, *auth, *state;
	char *subject = NULL, *body = NULL;
	struct org_row o = {"", NULL};
	enum store_result s;
	int ret = -1;

	(void)status;
	if (legacy_str(r, "org", 0, &org, v) == -1 ||
	    legacy_str(r, "auth", 1, &auth, v) == -1 ||
	    throttle_check(r->w->srv->throttle, r->peer, v) == -1)
		return -1;
	if ((s = store_org_get(r->w->store, org, &o)) != STORE_OK)
		return legacy_store_refusal(s, v, "organization");
	if (orgauth_state(r->w->srv->throttle, r->peer, &o, auth, &state, v) ==
	    -1)
		goto out;
	if (mail_client_notice(r->w->srv->conf, org, r->c.fpr, r->peer, state,
		&subject, &body) == -1) {
		VERDICT_INTERNAL(v);
		goto out;
	}
	s = store_legacy_activate(r->w->store,
	    &(struct legacy_activation){.fpr = r->c.fpr, .org = org,
		.org_id = o.id, .state = state, .remote = r->peer,
		.subject = subject, .body = body});
	if (s == STORE_NOT_FOUND) { /* disabled meanwhile */
		verdict_refuse(v, 403, "client_disabled",
		    "this client is disabled");
		goto out;
	}
	if (s != STORE_OK) {
		legacy_store_refusal(s, v, "client");
		goto out;
	}
	log_info("legacy activation: client %s in org %s: %s", r->c.fpr, org,
	    state);
	if ((*ans = json_object()) == NULL)
		VERDICT_INTERNAL(v);
	else
		ret = 0;
out:
	store_org_clear(&o);
	free(subject);
	free(body);
	return ret;
}

static int
entropy_run(struct legacy_req *r, json_t **ans, int *status,
    struct verdict *v)
{
	unsigned char buf[ENTROPY_MAX];
	long long count;
	char *b64;

	(void)status;
	if (legacy_int(r, "count", 1, ENTROPY_MAX, LEGACY_REQUIRED, &count,
		v) == -1)
		return -1;
	if (crypto_random(buf, (size_t)count) == -1 ||
	    (b64 = crypto_b64_encode(buf, (size_t)count)) == NULL)
		return VERDICT_INTERNAL(v);
	OPENSSL_cleanse(buf, (size_t)count);
	*ans = json_pack("{s:s}", "entropy", b64);
	freezero(b64, strlen(b64));
	legacy_audit(r, NULL, "ok");
	return *ans != NULL ? 0 : VERDICT_INTERNAL(v);
}

const struct legacy_part legacy_register = {"register",
    LEGACY_CLEAR | LEGACY_WRITE, register_run};
const struct legacy_part legacy_verify = {"verify",
    LEGACY_ENCRYPT | LEGACY_ANY_STATE | LEGACY_WRITE, verify_run};
const struct legacy_part legacy_activation = {"request_activation",
    LEGACY_VERIFIED | LEGACY_WRITE, activation_run};
const struct legacy_part legacy_entropy = {"entropy", 0, entropy_run};
