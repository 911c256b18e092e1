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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "contact.h"
#include "contact_form.h"
#include "crypto.h"
#include "http.h"
#include "log.h"
#include "mail.h"
#include "util.h"

#define CONTACT_KEY_MAX (100 * 1024)

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
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	page_head(b, title);
	evbuffer_add_printf(b, "<p>");
	contact_html_escape(b, msg);
	evbuffer_add_printf(b, "</p>\n");
	page_send(req, status, b);
	evbuffer_free(b);
}

/* 1 found (t filled), 0 unknown, -1 after replying. */
static int
contact_lookup(struct worker *w, struct http_req *req, const char *token,
    struct contact_token *t)
{
	if (crypto_sha256_hex(token, strlen(token), t->hash) == -1) {
		contact_fail(req, 500, "internal", "Internal error",
		    "internal error");
		return -1;
	}
	switch (store_contact_token(w->store, t)) {
	case STORE_OK:
		return 1;
	case STORE_NOT_FOUND:
		return 0;
	default:
		contact_fail(req, 503, "database", "Try again later",
		    "the database is not available");
		return -1;
	}
}

static void
contact_form(struct worker *w, struct http_req *req,
    const struct contact_token *t, const char *token)
{
	struct evbuffer *b;

	if ((b = evbuffer_new()) == NULL) {
		http_reply_error(req, 500, "internal", "out of memory");
		return;
	}
	page_head(b, "Key Trustee Server: register your GPG public key");
	evbuffer_add_printf(b, "<p>Contact <strong>");
	contact_html_escape(b, t->contact);
	evbuffer_add_printf(b, "</strong> of organization <strong>");
	contact_html_escape(b, t->org);
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
	contact_html_escape(b, w->srv->pubkey);
	evbuffer_add_printf(b, "</pre>\n");
	page_send(req, 200, b);
	evbuffer_free(b);
}

static void
contact_store(struct worker *w, struct http_req *req,
    const struct contact_token *t)
{
	char fpr[PGP_FPR_LEN + 1], err[512], *key = NULL;
	const char *peer = http_peer(req);
	const unsigned char *body;
	struct evbuffer *b = NULL;
	size_t len;
	int e;

	body = http_req_body(req, &len);
	if ((key = contact_form_key(http_req_header(req, "Content-Type"), body,
		 len)) == NULL ||
	    *key == '\0') {
		contact_fail(req, 400, "bad_pubkey", "No key given",
		    "paste your public key into the form");
		goto out;
	}
	if (strlen(key) > CONTACT_KEY_MAX || !contact_armor_ok(key)) {
		contact_fail(req, 400, "bad_pubkey",
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
		audit(w->srv->ha, w->store,
		    AUDIT_ROW(.actor = t->contact, .org = t->org,
			.action = "contact.key", .remote = peer,
			.result = "bad_pubkey"));
		contact_fail(req, 400, "bad_pubkey", "Key refused",
		    "the key is not a usable OpenPGP public key: one key, with "
		    "an encryption subkey, and no secret parts");
		goto out;
	}
	/* Used once: the token is taken in the transaction storing the key. */
	switch (store_contact_key(w->store, t, fpr, key, peer)) {
	case STORE_OK:
		break;
	case STORE_NOT_FOUND:
		contact_fail(req, 410, "link_gone", "Link no longer valid",
		    "this link was used or expired meanwhile");
		goto out;
	default:
		contact_fail(req, 503, "database", "Try again later",
		    "the database is not available");
		goto out;
	}
	log_info(
	    "contact %s of org %s registered key %s", t->contact, t->org, fpr);
	if (contact_wants_json(req)) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "fingerprint", fpr,
		    "contact", t->contact, "org", t->org);

		if (o == NULL)
			http_reply_error(
			    req, 500, "internal", "out of memory");
		else
			http_reply_json(req, 200, o);
		json_decref(o);
		goto out;
	}
	if ((b = evbuffer_new()) == NULL) {
		http_reply_error(req, 500, "internal", "out of memory");
		goto out;
	}
	page_head(b, "Key registered");
	evbuffer_add_printf(
	    b, "<p>Key <code>%s</code> is registered for ", fpr);
	contact_html_escape(b, t->contact);
	evbuffer_add_printf(b, " of organization ");
	contact_html_escape(b, t->org);
	evbuffer_add_printf(b,
	    ". Mail from this server to you is now encrypted to it and "
	    "signed by <code>%s</code>.</p>\n",
	    w->srv->qfpr);
	page_send(req, 200, b);
out:
	if (b != NULL)
		evbuffer_free(b);
	if (key != NULL)
		freezero(key, strlen(key));
}

void
contact_page(struct worker *w, struct http_req *req,
    const struct handler_match *m)
{
	enum httpmsg_method cmd = http_req_method(req);
	const char *token = m->value;
	struct contact_token t;
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
	if (!contact_token_ok(token)) {
		contact_fail(req, 404, "unknown_link", "Unknown link",
		    "this registration link is not known to this server");
		return;
	}
	if ((r = contact_lookup(w, req, token, &t)) == -1)
		return;
	if (r == 0) {
		contact_fail(req, 404, "unknown_link", "Unknown link",
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
		contact_store(w, req, &t);
	else
		contact_form(w, req, &t, token);
}
