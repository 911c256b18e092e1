/*
 * contact.c - the link of the "KeyTrustee Contact Registration" mail:
 * GET /?q=TOKEN serves a small self-contained HTML page (no external
 * assets) with the server's fingerprint and public key and a form to paste
 * the contact's OpenPGP public key; POST stores the key for that contact
 * once GPGME accepts it (one whole armored block, BEGIN and END lines
 * included).  A token is good for 12 hours and one key: unknown is 404,
 * expired or used is 410.  Browsers get HTML; a client that accepts only
 * application/json gets {"error", "code"}.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "crypto.h"
#include "log.h"
#include "mail.h"
#include "server.h"
#include "util.h"

#define CONTACT_KEY_MAX (100 * 1024)
#define CONTACT_BEGIN "-----BEGIN PGP PUBLIC KEY BLOCK-----"
#define CONTACT_END "-----END PGP PUBLIC KEY BLOCK-----"

struct contact_tok {
	char hash[2 * CRYPTO_HASH_LEN + 1];
	char org[72];
	char contact[320];
	char expires[32];
	int used, expired;
};

static void
html_escape(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '<':
			evbuffer_add(b, "&lt;", 4);
			break;
		case '>':
			evbuffer_add(b, "&gt;", 4);
			break;
		case '&':
			evbuffer_add(b, "&amp;", 5);
			break;
		case '"':
			evbuffer_add(b, "&quot;", 6);
			break;
		case '\'':
			evbuffer_add(b, "&#39;", 5);
			break;
		default:
			evbuffer_add(b, s, 1);
		}
	}
}

static int
contact_wants_json(struct http_req *req)
{
	const char *a = http_req_header(req, "Accept");

	return a != NULL && strstr(a, "application/json") != NULL &&
	    strstr(a, "text/html") == NULL;
}

static void
page_head(struct evbuffer *b, const char *title)
{
	evbuffer_add_printf(b,
	    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	    "<title>%s</title>\n<style>body{font-family:sans-serif;"
	    "max-width:48em;margin:2em auto;padding:0 1em}pre,textarea{"
	    "font-family:monospace;font-size:small}textarea{width:100%%}"
	    "pre{background:#f4f4f4;padding:.5em;overflow:auto}</style>"
	    "</head><body>\n<h1>%s</h1>\n",
	    title, title);
}

static void
page_send(struct http_req *req, int status, struct evbuffer *b)
{
	const char *p;
	size_t len;

	evbuffer_add_printf(b, "</body></html>\n");
	len = evbuffer_get_length(b);
	p = (const char *)evbuffer_pullup(b, -1);
	/* Nothing from elsewhere: no scripts, styles only inline, forms here.
	 */
	http_add_header(req,
	    "Content-Security-Policy",
	    "default-src 'none'; style-src 'unsafe-inline'; "
	    "form-action 'self'; frame-ancestors 'none'");
	http_reply(req, status, "text/html; charset=utf-8", p != NULL ? p : "",
	    p != NULL ? len : 0);
}

/* An error as a page (or JSON for a JSON client). */
static void
contact_fail(struct http_req *req, int status, const char *code,
    const char *title, const char *msg)
{
	struct evbuffer *b;

	if (contact_wants_json(req)) {
		http_reply_error(req, status, code, msg);
		return;
	}
	if ((b = evbuffer_new()) == NULL) {
		http_reply_error(req, HTTP_INTERNAL, "internal", "out of memory");
		return;
	}
	page_head(b, title);
	evbuffer_add_printf(b, "<p>");
	html_escape(b, msg);
	evbuffer_add_printf(b, "</p>\n");
	page_send(req, status, b);
	evbuffer_free(b);
}

/* 1 found (t filled), 0 unknown, -1 after replying. */
static int
contact_lookup(struct http_req *req, PGconn *db, const char *token,
    struct contact_tok *t)
{
	const char *params[1];
	PGresult *res;
	int ret = -1;

	if (crypto_sha256_hex(token, strlen(token), t->hash) == -1) {
		contact_fail(req, HTTP_INTERNAL, "internal", "Internal error",
		    "internal error");
		return -1;
	}
	params[0] = t->hash;
	res = PQexecParams(db,
	    "SELECT o.name, t.contact, t.used IS NOT NULL, t.expires <= now(), "
	    "to_char(t.expires AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
	    "FROM contact_tokens t JOIN orgs o ON o.id = t.org_id "
	    "WHERE t.token_hash = $1",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("contact link: %s", db_error(res, db));
		contact_fail(req, 503, "database", "Try again later",
		    "the database is not available");
		goto out;
	}
	if (PQntuples(res) == 0) {
		ret = 0;
		goto out;
	}
	snprintf(t->org, sizeof(t->org), "%s", PQgetvalue(res, 0, 0));
	snprintf(t->contact, sizeof(t->contact), "%s", PQgetvalue(res, 0, 1));
	t->used = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
	t->expired = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
	snprintf(t->expires, sizeof(t->expires), "%s", PQgetvalue(res, 0, 4));
	ret = 1;
out:
	PQclear(res);
	return ret;
}

static void
contact_form(struct worker *w, struct http_req *req,
    const struct contact_tok *t, const char *token)
{
	struct evbuffer *b;

	if ((b = evbuffer_new()) == NULL) {
		http_reply_error(req, HTTP_INTERNAL, "internal", "out of memory");
		return;
	}
	page_head(b, "Key Trustee Server: register your GPG public key");
	evbuffer_add_printf(b, "<p>Contact <strong>");
	html_escape(b, t->contact);
	evbuffer_add_printf(b, "</strong> of organization <strong>");
	html_escape(b, t->org);
	evbuffer_add_printf(b,
	    "</strong>. This link expires at %s UTC and registers one "
	    "key.</p>\n"
	    "<form method=\"post\" action=\"/?q=%s\">\n"
	    "<p><label for=\"key\">Paste your whole ASCII-armored OpenPGP "
	    "public key, from <code>" CONTACT_BEGIN
	    "</code> to <code>" CONTACT_END "</code>:</label></p>\n"
	    "<textarea id=\"key\" name=\"key\" rows=\"16\" required>"
	    "</textarea>\n<p><button type=\"submit\">Register key</button>"
	    "</p>\n</form>\n"
	    "<h2>This server's key</h2>\n<p>Mail from this server is signed "
	    "with the key below; import it to verify the sender "
	    "(<code>gpg --import</code>). Fingerprint: <code>%s</code></p>\n"
	    "<pre>",
	    t->expires, token, w->srv->qfpr);
	html_escape(b, w->srv->pubkey);
	evbuffer_add_printf(b, "</pre>\n");
	page_send(req, HTTP_OK, b);
	evbuffer_free(b);
}

/* The key from the body (form field "key" or the raw body), malloc'd. */
static char *
contact_body_key(struct http_req *req)
{
	const char *ct = http_req_header(req, "Content-Type");
	size_t len;
	const unsigned char *in = http_req_body(req, &len);
	struct evkeyvalq q;
	const char *v;
	char *body, *key = NULL;

	if ((body = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(body, in, len);
	body[len] = '\0';
	if (ct == NULL ||
	    strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0)
		return body;
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(body, &q) == 0 &&
	    (v = evhttp_find_header(&q, "key")) != NULL)
		key = strdup(v);
	evhttp_clear_headers(&q);
	free(body);
	return key;
}

/* A whole armored public key block and nothing else; 1 when fine. */
static int
contact_armor_ok(char *key)
{
	size_t n;
	char *p = key;

	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	memmove(key, p, strlen(p) + 1);
	n = strlen(key);
	while (n > 0 &&
	    (key[n - 1] == ' ' || key[n - 1] == '\t' || key[n - 1] == '\r' ||
		key[n - 1] == '\n'))
		key[--n] = '\0';
	return strncmp(key, CONTACT_BEGIN, strlen(CONTACT_BEGIN)) == 0 &&
	    n > strlen(CONTACT_END) &&
	    strcmp(key + n - strlen(CONTACT_END), CONTACT_END) == 0;
}

static void
contact_store(struct worker *w, struct http_req *req, PGconn *db,
    const struct contact_tok *t)
{
	char fpr[PGP_FPR_LEN + 1], err[512], *key = NULL;
	const char *params[4], *peer = http_peer(req);
	struct evbuffer *b = NULL;
	PGresult *res = NULL;
	int e;

	if ((key = contact_body_key(req)) == NULL || *key == '\0') {
		contact_fail(req, HTTP_BADREQUEST, "bad_pubkey", "No key given",
		    "paste your public key into the form");
		goto out;
	}
	if (strlen(key) > CONTACT_KEY_MAX || !contact_armor_ok(key)) {
		contact_fail(req, HTTP_BADREQUEST, "bad_pubkey",
		    "Not a whole public key",
		    "upload the entire ASCII-armored public key, from "
		    "the " CONTACT_BEGIN " line to the " CONTACT_END " line");
		goto out;
	}
	pthread_mutex_lock(&w->srv->pgp_mtx);
	e = pgp_import_pubkey(w->srv->mail.contacts_home, key, strlen(key), fpr,
	    err, sizeof(err));
	pthread_mutex_unlock(&w->srv->pgp_mtx);
	if (e == -1) {
		log_debug("contact key refused: %s", err);
		audit(w, t->contact, t->org, "contact.key", NULL, peer,
		    "bad_pubkey");
		contact_fail(req, HTTP_BADREQUEST, "bad_pubkey", "Key refused",
		    "the key is not a usable OpenPGP public key: one key, with "
		    "an encryption subkey, and no secret parts");
		goto out;
	}
	/* Used once: the token is taken in the transaction storing the key. */
	params[0] = t->hash;
	params[1] = fpr;
	params[2] = key;
	params[3] = *peer ? peer : NULL;
	res = PQexecParams(db,
	    "WITH t AS (UPDATE contact_tokens SET used = now() "
	    "WHERE token_hash = $1 AND used IS NULL AND expires > now() "
	    "RETURNING org_id, contact), "
	    "k AS (INSERT INTO contact_keys (org_id, contact, fingerprint, "
	    "pubkey) SELECT org_id, contact, $2, $3 FROM t "
	    "ON CONFLICT (org_id, contact) DO UPDATE SET fingerprint = "
	    "EXCLUDED.fingerprint, pubkey = EXCLUDED.pubkey, registered = "
	    "now() "
	    "RETURNING org_id, contact) "
	    "INSERT INTO audit_log (actor, org, action, object, remote_addr, "
	    "result) SELECT k.contact, o.name, 'contact.key', $2, $4, 'ok' "
	    "FROM k JOIN orgs o ON o.id = k.org_id RETURNING id",
	    4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("contact key: %s", db_error(res, db));
		contact_fail(req, 503, "database", "Try again later",
		    "the database is not available");
		goto out;
	}
	if (PQntuples(res) != 1) {
		contact_fail(req, 410, "link_gone", "Link no longer valid",
		    "this link was used or expired meanwhile");
		goto out;
	}
	log_info(
	    "contact %s of org %s registered key %s", t->contact, t->org, fpr);
	if (contact_wants_json(req)) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "fingerprint", fpr,
		    "contact", t->contact, "org", t->org);

		if (o == NULL)
			http_reply_error(
			    req, HTTP_INTERNAL, "internal", "out of memory");
		else
			http_reply_json(req, HTTP_OK, o);
		json_decref(o);
		goto out;
	}
	if ((b = evbuffer_new()) == NULL) {
		http_reply_error(req, HTTP_INTERNAL, "internal", "out of memory");
		goto out;
	}
	page_head(b, "Key registered");
	evbuffer_add_printf(
	    b, "<p>Key <code>%s</code> is registered for ", fpr);
	html_escape(b, t->contact);
	evbuffer_add_printf(b, " of organization ");
	html_escape(b, t->org);
	evbuffer_add_printf(b,
	    ". Mail from this server to you is now encrypted to it and "
	    "signed by <code>%s</code>.</p>\n",
	    w->srv->qfpr);
	page_send(req, HTTP_OK, b);
out:
	if (b != NULL)
		evbuffer_free(b);
	PQclear(res);
	if (key != NULL)
		freezero(key, strlen(key));
}

void
contact_page(struct worker *w, struct http_req *req, const char *token)
{
	enum httpmsg_method cmd = http_req_method(req);
	struct contact_tok t;
	PGconn *db;
	size_t i;
	int r;

	memset(&t, 0, sizeof(t));
	if (cmd != HTTPMSG_GET && cmd != HTTPMSG_HEAD &&
	    cmd != HTTPMSG_POST) {
		http_add_header(req,
		    "Allow", "GET, HEAD, POST");
		contact_fail(req, 405, "method_not_allowed",
		    "Method not allowed", "method not allowed on this link");
		return;
	}
	for (i = 0; token[i] != '\0'; i++)
		if (!((token[i] >= 'A' && token[i] <= 'Z') ||
			(token[i] >= 'a' && token[i] <= 'z') ||
			(token[i] >= '0' && token[i] <= '9')))
			break;
	if (token[i] != '\0' || i != MAIL_TOKEN_LEN) {
		contact_fail(req, HTTP_NOTFOUND, "unknown_link", "Unknown link",
		    "this registration link is not known to this server");
		return;
	}
	if ((db = worker_db(w)) == NULL) {
		contact_fail(req, 503, "database", "Try again later",
		    "the database is not available");
		return;
	}
	if ((r = contact_lookup(req, db, token, &t)) == -1)
		return;
	if (r == 0) {
		contact_fail(req, HTTP_NOTFOUND, "unknown_link", "Unknown link",
		    "this registration link is not known to this server");
		return;
	}
	if (t.used) {
		contact_fail(req, 410, "link_used", "Link already used",
		    "this registration link was already used to register a "
		    "key");
		return;
	}
	if (t.expired) {
		contact_fail(req, 410, "link_expired", "Link expired",
		    "this registration link expired 12 hours after it was "
		    "sent");
		return;
	}
	if (cmd == HTTPMSG_POST)
		contact_store(w, req, db, &t);
	else
		contact_form(w, req, &t, token);
}
