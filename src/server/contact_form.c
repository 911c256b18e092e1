/*
 * contact_form.c - what the contact registration page (contact.c) reads
 * of a request, the token of its link and the key its form posts, and
 * the escaping of what it writes back into HTML.
 */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "contact_form.h"
#include "http.h"
#include "mail.h"

int
contact_token_ok(const char *token)
{
	size_t i;

	for (i = 0; token[i] != '\0'; i++)
		if (!((token[i] >= 'A' && token[i] <= 'Z') ||
			(token[i] >= 'a' && token[i] <= 'z') ||
			(token[i] >= '0' && token[i] <= '9')))
			return 0;
	return i == MAIL_TOKEN_LEN;
}

char *
contact_form_key(const char *ctype, const unsigned char *in, size_t len)
{
	struct evkeyvalq q;
	const char *v;
	char *body, *key = NULL;

	if ((body = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(body, in, len);
	body[len] = '\0';
	if (ctype == NULL ||
	    strncasecmp(ctype, HTTP_FORM_CTYPE, strlen(HTTP_FORM_CTYPE)) != 0)
		return body;
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(body, &q) == 0 &&
	    (v = evhttp_find_header(&q, "key")) != NULL)
		key = strdup(v);
	evhttp_clear_headers(&q);
	free(body);
	return key;
}

static int
contact_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int
contact_armor_ok(char *key)
{
	size_t n, nb = strlen(CONTACT_BEGIN), ne = strlen(CONTACT_END);
	char *p = key;

	while (contact_space(*p))
		p++;
	memmove(key, p, strlen(p) + 1);
	n = strlen(key);
	while (n > 0 && contact_space(key[n - 1]))
		key[--n] = '\0';
	return n > nb + ne && strncmp(key, CONTACT_BEGIN, nb) == 0 &&
	    strcmp(key + n - ne, CONTACT_END) == 0;
}

void
contact_html_escape(struct evbuffer *b, const char *s)
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
