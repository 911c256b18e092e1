/* kt-deposit.c - put, get, list and delete deposits. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "kt-int.h"
#include "util.h"

/* Responses are at most 256 MiB (kt-http.c): 3/4 of that once decoded. */
#define KT_CIPHER_MAX ((size_t)192 * 1024 * 1024)

/*
 * Reads that no server answered are tried again, up to KT_READ_ROUNDS
 * rounds, after a pause of KT_ROUND_PAUSE_MS, 2 * that, ...: the instant
 * after the active is killed, the passive may itself not be ready (a
 * restart, a 503 of a database not up yet), and half a second later it is.
 * No new round starts once TIMEOUT has passed since the first.
 */
#define KT_READ_ROUNDS 3
#define KT_ROUND_PAUSE_MS 250

/* Append s to the string in dst (size bytes), cut to fit. */
static void
append(char *dst, size_t size, const char *s)
{
	size_t used = strlen(dst), n = strlen(s);

	if (n > size - 1 - used)
		n = size - 1 - used;
	memcpy(dst + used, s, n);
	dst[used + n] = '\0';
}

/*
 * Send a signed request.  A read (failover set) goes to SERVER, then to
 * PASSIVE_SERVER when SERVER's answer is a failure kt_resp_failover names,
 * in rounds as above; a write goes to SERVER only, once.  KT_OK: an answer
 * (< 500) is in r; KT_ENET: no server gave one (each server's failure in c,
 * in the order tried); other codes: local errors.
 */
static int
request(struct kt_client *c, const char *method, const char *target,
    const char *body, size_t len, int failover, struct kt_resp *r,
    enum kt_source *src)
{
	const char *bases[2];
	char errs[KT_ERRLEN];
	size_t i, n = 0;
	int ret = KT_ENET, round, flags = KT_HTTP_SIGN;
	long long start = mono_ms(), limit;
	struct timespec pause = { 0, 0 };

	kt_clearerr(c);
	if (!c->registered) {
		kt_seterr(c, "this client is not registered (no %s)",
		    c->confpath);
		return KT_ENOTREG;
	}
	bases[n++] = c->server;
	if (failover && c->passive_server != NULL)
		bases[n++] = c->passive_server;
	if (failover)
		flags |= KT_HTTP_READ;
	limit = 1000LL * (c->timeout > 0 ? c->timeout : KT_READ_TIMEOUT);
	for (round = 0; ret == KT_ENET; round++) {
		if (round > 0) {
			if (!failover || round == KT_READ_ROUNDS ||
			    mono_ms() - start >= limit)
				break;
			pause.tv_nsec = (long)round * KT_ROUND_PAUSE_MS *
			    1000000L;
			nanosleep(&pause, NULL);
		}
		errs[0] = '\0';
		for (i = 0; i < n; i++) {
			kt_resp_free(r);
			if (kt_http(c, bases[i], method, target, body, len,
			    flags, r) != 0)
				return KT_ERR;
			if (!kt_resp_failover(r)) {
				if (src != NULL)
					*src = i == 0 ? KT_SRC_ACTIVE :
					    KT_SRC_PASSIVE;
				ret = KT_OK;
				break;
			}
			if (!r->net_failed)
				(void)kt_http_error(c, bases[i], r);
			/* Each server's failure, in the order tried. */
			if (i > 0)
				append(errs, sizeof(errs), "; then ");
			append(errs, sizeof(errs), c->err);
		}
	}
	if (ret == KT_ENET) {
		if (round > 1)
			kt_seterr(c, "%s (tried %d times)", errs, round);
		else
			kt_seterr(c, "%s", errs);
	}
	if (ret == KT_OK && r->status / 100 == 2 && c->state != NULL &&
	    strcmp(c->state, "active") != 0) {
		/* The server took us: an org admin enabled this client. */
		char *s = strdup("active");

		if (s != NULL) {
			free(c->state);
			c->state = s;
			(void)kt_conf_save(c);
		}
	}
	return ret;
}

static int
answer_json(struct kt_client *c, const char *what, struct kt_resp *r,
    json_t **doc)
{
	if ((*doc = json_loadb(r->body, r->len, 0, NULL)) == NULL ||
	    !json_is_object(*doc)) {
		json_decref(*doc);
		*doc = NULL;
		kt_seterr(c, "%s: the server's answer is not a JSON object",
		    what);
		return KT_ERR;
	}
	return KT_OK;
}

int
kt_put(struct kt_client *c, const char *name, const char *description,
    const void *data, size_t len, char **uuid)
{
	unsigned char *cipher = NULL;
	size_t cipherlen = 0;
	char *b64 = NULL, *body = NULL;
	json_t *req = NULL, *doc = NULL;
	struct kt_resp r = { 0 };
	const char *u;
	int ret;

	*uuid = NULL;
	kt_clearerr(c);
	if (name == NULL || *name == '\0') {
		kt_seterr(c, "a deposit needs a name");
		return KT_EINVAL;
	}
	if (!c->registered) {
		kt_seterr(c, "this client is not registered (no %s)",
		    c->confpath);
		return KT_ENOTREG;
	}
	if ((ret = kt_pgp_encrypt(c, data, len, &cipher, &cipherlen)) !=
	    KT_OK)
		goto out;
	ret = KT_ERR;
	if ((b64 = crypto_b64_encode(cipher, cipherlen)) == NULL) {
		kt_seterr(c, "out of memory");
		goto out;
	}
	req = json_pack("{s:s, s:s, s:s?}", "name", name, "content", b64,
	    "description", description);
	if (req == NULL || (body = json_dumps(req, JSON_COMPACT)) == NULL) {
		kt_seterr(c, "cannot encode the deposit");
		goto out;
	}
	if ((ret = request(c, "POST", "/v1/deposits", body, strlen(body), 0,
	    &r, NULL)) != KT_OK)
		goto out;
	if (r.status != 200 && r.status != 201) {
		ret = kt_http_error(c, "put", &r);
		goto out;
	}
	ret = KT_ERR;
	if (answer_json(c, "put", &r, &doc) != KT_OK)
		goto out;
	if ((u = json_string_value(json_object_get(doc, "uuid"))) == NULL ||
	    !kt_uuid_ok(u)) {
		kt_seterr(c, "put: the server's answer has no valid uuid");
		goto out;
	}
	if ((*uuid = strdup(u)) == NULL) {
		kt_seterr(c, "out of memory");
		goto out;
	}
	/* The deposit is stored; a cache failure is not the caller's loss. */
	(void)kt_cache_put(c, u, name, description, b64);
	kt_clearerr(c);
	ret = KT_OK;
out:
	kt_resp_free(&r);
	json_decref(req);
	json_decref(doc);
	free(body);
	free(b64);
	free(cipher);
	return ret;
}

static int
decode_decrypt(struct kt_client *c, const char *b64, unsigned char **data,
    size_t *len)
{
	unsigned char *cipher = NULL;
	size_t cipherlen = 0;
	int ret;

	if (crypto_b64_decode(b64, strlen(b64), KT_CIPHER_MAX, &cipher,
	    &cipherlen) != 0) {
		kt_seterr(c, "the deposit content is not valid base64");
		return KT_ERR;
	}
	ret = kt_pgp_decrypt(c, cipher, cipherlen, data, len);
	free(cipher);
	return ret;
}

int
kt_get(struct kt_client *c, const char *uuid, int flags,
    unsigned char **data, size_t *len, enum kt_source *src)
{
	char *target = NULL, *cached = NULL, neterr[KT_ERRLEN];
	json_t *doc = NULL;
	struct kt_resp r = { 0 };
	enum kt_source s = KT_SRC_ACTIVE;
	const char *content;
	int ret, cr;

	*data = NULL;
	*len = 0;
	kt_clearerr(c);
	if (!kt_uuid_ok(uuid)) {
		kt_seterr(c, "\"%s\" is not a deposit uuid", uuid);
		return KT_EINVAL;
	}
	if (asprintf(&target, "/v1/deposits/%s", uuid) == -1) {
		kt_seterr(c, "out of memory");
		return KT_ERR;
	}
	ret = request(c, "GET", target, NULL, 0, 1, &r, &s);
	free(target);
	if (ret == KT_ENET && !(flags & KT_GET_NO_CACHE)) {
		memcpy(neterr, c->err, sizeof(neterr));
		cr = kt_cache_get(c, uuid, &cached);
		if (cr == KT_OK) {
			kt_clearerr(c);
			s = KT_SRC_CACHE;
			ret = decode_decrypt(c, cached, data, len);
			goto out;
		}
		if (cr == 1)
			kt_seterr(c, "%s; and no cached "
			    "copy of %s", neterr, uuid);
		else
			ret = cr;
		goto out;
	}
	if (ret != KT_OK)
		goto out;
	if (r.status == 404)
		kt_cache_remove(c, uuid);
	if (r.status != 200) {
		ret = kt_http_error(c, "get", &r);
		goto out;
	}
	if ((ret = answer_json(c, "get", &r, &doc)) != KT_OK)
		goto out;
	if ((content = json_string_value(json_object_get(doc, "content"))) ==
	    NULL) {
		kt_seterr(c, "get: the server's answer has no content");
		ret = KT_ERR;
		goto out;
	}
	if ((ret = decode_decrypt(c, content, data, len)) != KT_OK)
		goto out;
	if (!(flags & KT_GET_NO_CACHE))
		(void)kt_cache_put(c, uuid,
		    json_string_value(json_object_get(doc, "name")),
		    json_string_value(json_object_get(doc, "description")),
		    content);
out:
	if (ret == KT_OK && src != NULL)
		*src = s;
	if (cached != NULL)
		freezero(cached, strlen(cached));
	json_decref(doc);
	kt_resp_free(&r);
	return ret;
}

static int
list_fetch(struct kt_client *c, const char *name,
    struct kt_deposit_info **items, size_t *n)
{
	char *target = NULL, *esc = NULL;
	json_t *doc = NULL, *arr, *it;
	struct kt_resp r = { 0 };
	struct kt_deposit_info *v = NULL;
	size_t i, cnt;
	int ret = KT_ERR;

	*items = NULL;
	*n = 0;
	if (name != NULL) {
		if ((esc = curl_easy_escape(NULL, name, 0)) == NULL ||
		    asprintf(&target, "/v1/deposits?name=%s", esc) == -1)
			target = NULL;
	} else
		target = strdup("/v1/deposits");
	if (target == NULL) {
		kt_seterr(c, "out of memory");
		goto out;
	}
	if ((ret = request(c, "GET", target, NULL, 0, 1, &r, NULL)) != KT_OK)
		goto out;
	if (r.status != 200) {
		ret = kt_http_error(c, "list", &r);
		goto out;
	}
	if ((ret = answer_json(c, "list", &r, &doc)) != KT_OK)
		goto out;
	ret = KT_ERR;
	if (!json_is_array(arr = json_object_get(doc, "deposits"))) {
		kt_seterr(c, "list: the server's answer has no deposits");
		goto out;
	}
	cnt = json_array_size(arr);
	if ((v = calloc(cnt + 1, sizeof(*v))) == NULL) {
		kt_seterr(c, "out of memory");
		goto out;
	}
	json_array_foreach(arr, i, it) {
		const char *u = json_string_value(json_object_get(it, "uuid"));
		const char *nm = json_string_value(json_object_get(it, "name"));
		const char *d = json_string_value(json_object_get(it,
		    "description"));
		json_t *cr = json_object_get(it, "created");
		char num[32];
		const char *cs = json_string_value(cr);

		if (cs == NULL && json_is_integer(cr)) {
			snprintf(num, sizeof(num), "%lld",
			    (long long)json_integer_value(cr));
			cs = num;
		}
		if (u == NULL) {
			kt_deposit_info_free(v, i);
			v = NULL;
			kt_seterr(c, "list: a deposit without uuid");
			goto out;
		}
		v[i].uuid = strdup(u);
		v[i].name = strdup(nm ? nm : "");
		v[i].description = strdup(d ? d : "");
		v[i].created = strdup(cs ? cs : "");
		if (!v[i].uuid || !v[i].name || !v[i].description ||
		    !v[i].created) {
			kt_deposit_info_free(v, i + 1);
			v = NULL;
			kt_seterr(c, "out of memory");
			goto out;
		}
	}
	*items = v;
	*n = cnt;
	ret = KT_OK;
out:
	curl_free(esc);
	free(target);
	json_decref(doc);
	kt_resp_free(&r);
	return ret;
}

int
kt_list(struct kt_client *c, const char *name,
    struct kt_deposit_info **items, size_t *n)
{
	kt_clearerr(c);
	return list_fetch(c, name, items, n);
}

void
kt_deposit_info_free(struct kt_deposit_info *items, size_t n)
{
	size_t i;

	if (items == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(items[i].uuid);
		free(items[i].name);
		free(items[i].description);
		free(items[i].created);
	}
	free(items);
}

int
kt_get_by_name(struct kt_client *c, const char *name, int flags,
    unsigned char **data, size_t *len, enum kt_source *src)
{
	struct kt_deposit_info *v = NULL;
	char *uuid = NULL, *cached = NULL, neterr[KT_ERRLEN];
	size_t n = 0, i, best = 0;
	int ret, cr;

	*data = NULL;
	*len = 0;
	kt_clearerr(c);
	ret = list_fetch(c, name, &v, &n);
	if (ret == KT_ENET && !(flags & KT_GET_NO_CACHE)) {
		memcpy(neterr, c->err, sizeof(neterr));
		cr = kt_cache_find_name(c, name, &uuid, &cached);
		if (cr == KT_OK) {
			kt_clearerr(c);
			if ((ret = decode_decrypt(c, cached, data, len)) ==
			    KT_OK && src != NULL)
				*src = KT_SRC_CACHE;
		} else if (cr == 1)
			kt_seterr(c, "%s; and no cached "
			    "deposit named \"%s\"", neterr, name);
		else
			ret = cr;
		goto out;
	}
	if (ret != KT_OK)
		goto out;
	for (i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0 && (uuid == NULL ||
		    strcmp(v[i].created, v[best].created) >= 0)) {
			best = i;
			uuid = v[i].uuid;
		}
	if (uuid == NULL) {
		kt_seterr(c, "no deposit named \"%s\"", name);
		ret = KT_ENOTFOUND;
		goto out;
	}
	uuid = NULL;
	ret = kt_get(c, v[best].uuid, flags, data, len, src);
out:
	free(uuid);
	if (cached != NULL)
		freezero(cached, strlen(cached));
	kt_deposit_info_free(v, n);
	return ret;
}

int
kt_delete(struct kt_client *c, const char *uuid)
{
	char *target = NULL;
	struct kt_resp r = { 0 };
	int ret;

	kt_clearerr(c);
	if (!kt_uuid_ok(uuid)) {
		kt_seterr(c, "\"%s\" is not a deposit uuid", uuid);
		return KT_EINVAL;
	}
	if (asprintf(&target, "/v1/deposits/%s", uuid) == -1) {
		kt_seterr(c, "out of memory");
		return KT_ERR;
	}
	ret = request(c, "DELETE", target, NULL, 0, 0, &r, NULL);
	free(target);
	if (ret != KT_OK)
		goto out;
	if (r.status == 200 || r.status == 204 || r.status == 404)
		kt_cache_remove(c, uuid);
	if (r.status != 200 && r.status != 204)
		ret = kt_http_error(c, "delete", &r);
out:
	kt_resp_free(&r);
	return ret;
}
