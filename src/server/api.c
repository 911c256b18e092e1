/* api.c - reading the JSON bodies of the /v1 API (see api.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "crypto.h"
#include "util.h"

#define API_MAX_DEPTH 16

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

int
api_ctype_json(const char *ct)
{
	size_t n = strlen("application/json");

	if (ct == NULL || strncasecmp(ct, "application/json", n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

json_t *
api_json(int json, const unsigned char *body, size_t len, struct verdict *v)
{
	json_error_t jerr;
	json_t *o;

	if (!json) {
		verdict_refuse(v, 415, "unsupported_media_type",
		    "the body must be application/json");
		return NULL;
	}
	if (!api_depth_ok(body, len)) {
		verdict_refuse(v, 400, "bad_json", "JSON nested too deeply");
		return NULL;
	}
	o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		verdict_refuse(v, 400, "bad_json", "the body is not valid JSON");
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		verdict_refuse(
		    v, 400, "bad_json", "the body must be a JSON object");
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

int
api_text_ok(const char *s, size_t max, int allow_space_ctl)
{
	json_t *probe;
	size_t n;

	if (s == NULL || *s == '\0' || strlen(s) > 4 * max)
		return 0;
	if ((probe = json_string(s)) == NULL) /* not UTF-8 */
		return 0;
	json_decref(probe);
	n = utf8_len(s);
	return n >= 1 && n <= max && !has_control(s, allow_space_ctl);
}

int
api_member(json_t *o, const char *key, int optional, const char **out,
    struct verdict *v)
{
	json_t *m = json_object_get(o, key);

	*out = NULL;
	if ((m == NULL || json_is_null(m)) && optional)
		return 0;
	if (m == NULL) {
		verdict_refuse(v, 400, "bad_request", v->buf);
		snprintf(v->buf, sizeof(v->buf), "missing member \"%s\"", key);
		return -1;
	}
	if (!json_is_string(m)) {
		verdict_refuse(v, 400, "bad_request", v->buf);
		snprintf(v->buf, sizeof(v->buf),
		    "member \"%s\" must be a string", key);
		return -1;
	}
	*out = json_string_value(m);
	return 0;
}

/* A "..." string at *p; its characters, or NULL. */
static const unsigned char *
flat_string(const unsigned char **p, const unsigned char *end, size_t *len)
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
flat_ws(const unsigned char *p, const unsigned char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

int
api_flat_body(const unsigned char *body, size_t len, const char *const *keys,
    int n, const unsigned char **vals, size_t *lens)
{
	const unsigned char *p = body, *end = body + len, *k, *v;
	size_t klen, vlen;
	int seen[API_FLAT_MAX] = {0}, i;

	if (n > API_FLAT_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		vals[i] = NULL;
		lens[i] = 0;
	}
	p = flat_ws(p, end);
	if (p >= end || *p++ != '{')
		return 0;
	p = flat_ws(p, end);
	while (p < end && *p != '}') {
		if ((k = flat_string(&p, end, &klen)) == NULL)
			return 0;
		p = flat_ws(p, end);
		if (p >= end || *p++ != ':')
			return 0;
		p = flat_ws(p, end);
		if ((size_t)(end - p) >= 4 && memcmp(p, "null", 4) == 0) {
			v = NULL;
			vlen = 0;
			p += 4;
		} else if ((v = flat_string(&p, end, &vlen)) == NULL)
			return 0;
		for (i = 0; i < n; i++)
			if (klen == strlen(keys[i]) &&
			    memcmp(k, keys[i], klen) == 0)
				break;
		/* Another member, or one twice: jansson judges it. */
		if (i == n || seen[i]++)
			return 0;
		vals[i] = v;
		lens[i] = vlen;
		p = flat_ws(p, end);
		if (p < end && *p == ',') {
			p = flat_ws(p + 1, end);
			if (p >= end || *p != '"')
				return 0;
		} else if (p >= end || *p != '}')
			return 0;
	}
	return p < end && *p++ == '}' && flat_ws(p, end) == end;
}

int
api_deposit_body(int json, int jansson_only, const unsigned char *body,
    size_t len, struct api_deposit_body *d, struct verdict *v)
{
	static const char *const keys[3] = {"name", "content", "description"};
	const unsigned char *vals[3];
	const char *b64;
	size_t lens[3], b64len;

	memset(d, 0, sizeof(*d));
	if (json && !jansson_only &&
	    api_flat_body(body, len, keys, 3, vals, lens) && vals[0] != NULL &&
	    vals[1] != NULL) {
		if ((d->name = strndup((const char *)vals[0], lens[0])) == NULL ||
		    (vals[2] != NULL &&
			(d->desc = strndup((const char *)vals[2], lens[2])) ==
			    NULL))
			return VERDICT_INTERNAL(v);
		d->cname = d->name;
		d->cdesc = d->desc;
		b64 = (const char *)vals[1];
		b64len = lens[1];
	} else {
		/* Any other shape, or a missing name: jansson says which. */
		if ((d->o = api_json(json, body, len, v)) == NULL ||
		    api_member(d->o, "name", 0, &d->cname, v) == -1 ||
		    api_member(d->o, "content", 0, &b64, v) == -1 ||
		    api_member(d->o, "description", 1, &d->cdesc, v) == -1)
			return -1;
		b64len = strlen(b64);
	}
	if (!api_text_ok(d->cname, API_NAME_MAX, 0))
		return verdict_refuse(v, 400, "bad_name",
		    "name must be 1-255 characters without control characters");
	if (d->cdesc != NULL && *d->cdesc != '\0' &&
	    !api_text_ok(d->cdesc, API_DESC_MAX, 1))
		return verdict_refuse(v, 400, "bad_description",
		    "description must be at most 1024 characters without "
		    "control characters");
	/* The client's ciphertext: empty, it is a mistake, not a secret. */
	if (b64len == 0)
		return verdict_refuse(v, 400, "bad_content", "content is empty");
	if (b64len > (API_CONTENT_MAX + 2) / 3 * 4)
		return verdict_refuse(
		    v, 413, "too_large", "content is larger than 64 KiB");
	/* The length check above bounds the result to the limit + 2. */
	if (crypto_b64_decode(b64, b64len, API_CONTENT_MAX + 2, &d->plain,
		&d->plainlen) == -1)
		return verdict_refuse(v, 400, "bad_content",
		    "content must be standard base64 (with padding)");
	if (d->plainlen > API_CONTENT_MAX)
		return verdict_refuse(
		    v, 413, "too_large", "content is larger than 64 KiB");
	return 0;
}

void
api_deposit_body_clear(struct api_deposit_body *d)
{
	if (d->plain != NULL)
		freezero(d->plain, d->plainlen);
	free(d->name);
	free(d->desc);
	json_decref(d->o);
	memset(d, 0, sizeof(*d));
}
