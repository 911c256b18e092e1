/*
 * fuzz_contact.c - libFuzzer target for what the contact registration
 * page reads and writes (src/server/contact_form.c): the token of its
 * link, the key its form posts, the check that the key is one whole
 * armored block, and the HTML escaping of what it echoes.  Each against a
 * reference written here from the specification, not from the code:
 *
 *  - a token is good exactly when it is MAIL_TOKEN_LEN ASCII letters and
 *    digits, as the link's query parameter q, once decoded, too;
 *  - a form's key is the first field "key" decoded as a browser encodes
 *    it (application/x-www-form-urlencoded: '&' between fields, '=' after
 *    the name, '+' a space, %XX an octet), whenever the form is well
 *    formed (every field named and with an '='); any other body is the
 *    key as it is, up to a NUL;
 *  - the armor check trims exactly the white space around the key and
 *    accepts exactly a BEGIN line and an END line that do not overlap;
 *    checking again changes nothing;
 *  - escaped text holds no < > " ' and no & but an entity's, and
 *    unescapes to what it was.
 *
 * The first input octet is the Content-Type (0: a form, 1: none, else
 * text/plain); the rest is the body, and also the query and the text
 * escaped (up to a NUL).
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "contact_form.h"
#include "crypto.h"
#include "http.h"
#include "mail.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A link's token: MAIL_TOKEN_LEN ASCII letters and digits (by strspn). */
static int
ref_token_ok(const char *s)
{
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789";

	return strlen(s) == MAIL_TOKEN_LEN &&
	    strspn(s, alnum) == MAIL_TOKEN_LEN;
}

/* s[0..n) form-decoded into a new C string (a %00 ends it). */
static char *
ref_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1);
	unsigned char c;
	size_t i, o = 0;

	if (out == NULL)
		abort();
	for (i = 0; i < n; i++) {
		if (s[i] == '+')
			out[o++] = ' ';
		else if (s[i] == '%' && i + 2 < n &&
		    crypto_hex_decode(s + i + 1, 2, &c, 1) == 0) {
			out[o++] = (char)c;
			i += 2;
		} else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
}

/*
 * The first field "key" of form s (a C string), or NULL; *wellformed 0
 * when a field has no name or no '='.  Names are compared as sent (a
 * browser never encodes "key"), without case as libevent's
 * evhttp_find_header does.
 */
static char *
ref_form_key(const char *s, int *wellformed)
{
	const char *f = s, *amp, *eq;
	char *val = NULL;
	size_t flen;

	*wellformed = 1;
	if (*s == '\0')
		return NULL;
	for (;;) {
		amp = strchr(f, '&');
		flen = amp != NULL ? (size_t)(amp - f) : strlen(f);
		eq = memchr(f, '=', flen);
		if (eq == NULL || eq == f)
			*wellformed = 0;
		else if (val == NULL && eq - f == 3 &&
		    strncasecmp(f, "key", 3) == 0)
			val = ref_decode(eq + 1, flen - 4);
		if (amp == NULL)
			break;
		f = amp + 1;
	}
	return val;
}

static int
space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void
armor(const char *key)
{
	size_t nb = strlen(CONTACT_BEGIN), ne = strlen(CONTACT_END), n;
	char *k = strdup(key), *again;
	const char *p = key;
	int r, want;

	if (k == NULL)
		abort();
	r = contact_armor_ok(k);
	while (space(*p))
		p++;
	n = strlen(p);
	while (n > 0 && space(p[n - 1]))
		n--;
	FUZZ_CHECK(strlen(k) == n && memcmp(k, p, n) == 0, "trimmed");
	want = n >= nb + 1 + ne && strncmp(p, CONTACT_BEGIN, nb) == 0 &&
	    strncmp(p + n - ne, CONTACT_END, ne) == 0;
	FUZZ_CHECK(r == want, "a whole armored block");
	if ((again = strdup(k)) == NULL)
		abort();
	FUZZ_CHECK(contact_armor_ok(again) == r && strcmp(again, k) == 0,
	    "checking twice");
	free(again);
	free(k);
}

static void
escape(const char *s)
{
	static const char *const ent[] = {
	    "&lt;", "&gt;", "&amp;", "&quot;", "&#39;"};
	static const char raw[] = "<>&\"'";
	struct evbuffer *b = evbuffer_new();
	const char *o;
	size_t len, i, k, j = 0;

	if (b == NULL)
		abort();
	contact_html_escape(b, s);
	len = evbuffer_get_length(b);
	o = len > 0 ? (const char *)evbuffer_pullup(b, -1) : "";
	for (i = 0; i < len; i++, j++) {
		FUZZ_CHECK(
		    o[i] != '<' && o[i] != '>' && o[i] != '"' && o[i] != '\'',
		    "a special character left raw");
		if (o[i] != '&') {
			FUZZ_CHECK(s[j] == o[i], "escaped text changed");
			continue;
		}
		for (k = 0; k < 5; k++)
			if (len - i >= strlen(ent[k]) &&
			    memcmp(o + i, ent[k], strlen(ent[k])) == 0)
				break;
		FUZZ_CHECK(k < 5 && s[j] == raw[k],
		    "an entity for what was not there");
		i += strlen(ent[k]) - 1;
	}
	FUZZ_CHECK(s[j] == '\0', "escaped text lost characters");
	evbuffer_free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *ctype, *v;
	struct evkeyvalq q;
	unsigned char *body;
	char *text, *key, *ref;
	size_t len;
	int wellformed;

	if (size < 1)
		return 0;
	ctype = data[0] == 0 ? HTTP_FORM_CTYPE
	    : data[0] == 1   ? NULL
			     : "text/plain";
	len = size - 1;
	/* Exactly the body, and the same as a C string. */
	if ((body = malloc(len > 0 ? len : 1)) == NULL ||
	    (text = malloc(len + 1)) == NULL)
		abort();
	memcpy(body, data + 1, len);
	memcpy(text, data + 1, len);
	text[len] = '\0';

	/* The link's token: as it is, and as the query parameter q. */
	FUZZ_CHECK(contact_token_ok(text) == ref_token_ok(text), "token");
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(text, &q) == 0 &&
	    (v = evhttp_find_header(&q, "q")) != NULL)
		FUZZ_CHECK(
		    contact_token_ok(v) == ref_token_ok(v), "token in q");
	evhttp_clear_headers(&q);

	key = contact_form_key(ctype, body, len);
	if (ctype == NULL || strcmp(ctype, HTTP_FORM_CTYPE) != 0)
		FUZZ_CHECK(
		    key != NULL && strcmp(key, text) == 0, "a raw body's key");
	else {
		ref = ref_form_key(text, &wellformed);
		if (wellformed)
			FUZZ_CHECK(ref == NULL
				? key == NULL
				: key != NULL && strcmp(key, ref) == 0,
			    "the form's key");
		free(ref);
	}
	if (key != NULL)
		armor(key);
	armor(text);
	escape(text);
	free(key);
	free(text);
	free(body);
	return 0;
}
