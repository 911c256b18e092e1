/*
 * legacy_deposits.c - a legacy client's deposits and their policy
 * (docs/legacy.md): put, request, get (and POST /?d=URL), search, the
 * trustees' pending, authorize and deny, and the depositor's enable,
 * disable and purge.  Deposits are rows of the deposits table sealed at
 * rest as /v1's are (deposit_seal), released only by their policy.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deposit.h"
#include "legacy.h"
#include "log.h"
#include "util.h"

#define HANDLE_MAX 255
#define DESC_MAX 1024
#define CONTENT_MAX (96 * 1024)
#define LIST_MAX 64		    /* clients or trustees of one deposit */
#define TIMEOUT_DEFAULT 43200	    /* a request's life, seconds */
#define SECONDS_MAX (100LL * 365 * 86400)
#define URL_LEN 43

/* A comma-joined list of fingerprints, as the fingerprints' hex. */
static int
fpr_list(const char *in, char **out, struct verdict *v, const char *key)
{
	char fpr[PGP_FPR_LEN + 1], *copy, *tok, *save = NULL, *o;
	size_t n = 0;

	*out = NULL;
	if (in == NULL || *in == '\0')
		return (*out = strdup("")) != NULL ? 0 : VERDICT_INTERNAL(v);
	if ((copy = strdup(in)) == NULL ||
	    (o = calloc(1, strlen(in) + 1)) == NULL) {
		free(copy);
		return VERDICT_INTERNAL(v);
	}
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		if (pgp_fpr_parse(tok, fpr) == -1 || ++n > LIST_MAX) {
			free(copy);
			free(o);
			verdict_refuse(v, 400, "bad_request", v->buf);
			snprintf(v->buf, sizeof(v->buf),
			    "%s must be at most %d comma-joined fingerprints",
			    key, LIST_MAX);
			return -1;
		}
		if (*o != '\0')
			strcat(o, ",");
		strcat(o, fpr);
	}
	free(copy);
	*out = o;
	return 0;
}

/* Has s a control character (C0 or DEL)? */
static int
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* How many entries a comma-joined list has. */
static long long
list_len(const char *s)
{
	long long n = *s != '\0';

	for (; *s != '\0'; s++)
		n += *s == ',';
	return n;
}

/* Lower-case hex SHA-512 of s: does it equal want (either case)? */
static int
sha512_is(const char *s, const char *want)
{
	unsigned char d[64];
	char hex[2 * sizeof(d) + 1];
	unsigned int n;

	if (!EVP_Digest(s, strlen(s), d, &n, EVP_sha512(), NULL))
		return 0;
	hex_encode(d, sizeof(d), hex, 0);
	hex[sizeof(hex) - 1] = '\0';
	return strcasecmp(hex, want) == 0;
}

/* A uuid in canonical lower case into out: 0, or -1. */
static int
canon_uuid(const char *in, char out[CRYPTO_UUID_LEN + 1])
{
	size_t i;

	if (in == NULL || strlen(in) != CRYPTO_UUID_LEN)
		return -1;
	for (i = 0; i <= CRYPTO_UUID_LEN; i++)
		out[i] = (char)(in[i] >= 'A' && in[i] <= 'F' ? in[i] + 32
							     : in[i]);
	return crypto_uuid_ok(out) ? 0 : -1;
}

/* A refusal of a member that is not a uuid. */
static int
bad_uuid(struct verdict *v, const char *key)
{
	verdict_refuse(v, 400, "bad_request", v->buf);
	snprintf(v->buf, sizeof(v->buf), "%s must be a uuid", key);
	return -1;
}

/* ---- put -------------------------------------------------------------------- */

struct put_fields {
	const char *handle, *desc, *content, *sha512, *rsig, *group, *clients,
	    *trustees;
	long long votes, retrievals, ttl, ttb, archive;
	int recoverable, url;
};

static int
put_fields(struct legacy_req *r, struct put_fields *f, struct verdict *v)
{
	json_t *a = json_object_get(r->data, "archive");

	if (legacy_str(r, "handle", 0, &f->handle, v) == -1 ||
	    legacy_str(r, "description", 1, &f->desc, v) == -1 ||
	    legacy_str(r, "content", 0, &f->content, v) == -1 ||
	    legacy_str(r, "sha512", 0, &f->sha512, v) == -1 ||
	    legacy_str(r, "clients", 1, &f->clients, v) == -1 ||
	    legacy_str(r, "trustees", 1, &f->trustees, v) == -1 ||
	    legacy_int(r, "votes", 0, LIST_MAX, -1, &f->votes, v) == -1 ||
	    legacy_int(r, "retrievals", 0, 1LL << 30, -1, &f->retrievals, v) ==
		-1 ||
	    legacy_int(r, "ttl", 0, SECONDS_MAX, -1, &f->ttl, v) == -1 ||
	    legacy_int(r, "ttb", 0, SECONDS_MAX, 0, &f->ttb, v) == -1 ||
	    legacy_bool(r, "recoverable", 0, &f->recoverable, v) == -1 ||
	    legacy_bool(r, "url", 0, &f->url, v) == -1)
		return -1;
	/* archive: "1"/"0" as the library sends it, or 1/0. */
	f->archive = 0;
	if (json_is_string(a) && (strcmp(json_string_value(a), "1") == 0 ||
				     strcmp(json_string_value(a), "0") == 0))
		f->archive = json_string_value(a)[0] == '1';
	else if (a != NULL && !json_is_null(a) &&
	    legacy_int(r, "archive", 0, 1, 0, &f->archive, v) == -1)
		return -1;
	if (f->recoverable &&
	    (legacy_str(r, "recoverable_signature", 0, &f->rsig, v) == -1 ||
		legacy_str(r, "deposit_group", 1, &f->group, v) == -1))
		return -1;
	if (*f->handle == '\0' || strlen(f->handle) > HANDLE_MAX ||
	    has_control(f->handle))
		return verdict_refuse(v, 400, "bad_request",
		    "handle must be 1 to 255 characters, none a control "
		    "character");
	if (f->desc != NULL && strlen(f->desc) > DESC_MAX)
		return verdict_refuse(v, 400, "bad_request",
		    "description must be at most 1024 characters");
	if (strlen(f->content) > CONTENT_MAX)
		return verdict_refuse(v, 413, "too_large",
		    "content is larger than 96 KiB");
	if (!sha512_is(f->content, f->sha512))
		return verdict_refuse(v, 400, "bad_sha512",
		    "sha512 is not the SHA-512 of content");
	return 0;
}

static int
put_run(struct legacy_req *r, json_t **ans, int *status, struct verdict *v)
{
	struct put_fields f;
	char uuid[CRYPTO_UUID_LEN + 1], url[URL_LEN + 1];
	unsigned char nonce[CRYPTO_NONCE_LEN], *ct = NULL;
	char *readers = NULL, *trustees = NULL;
	size_t len;
	int ret = -1;

	(void)status;
	memset(&f, 0, sizeof(f));
	if (put_fields(r, &f, v) == -1 ||
	    fpr_list(f.clients, &readers, v, "clients") == -1 ||
	    fpr_list(f.trustees, &trustees, v, "trustees") == -1)
		goto out;
	if (f.votes > list_len(trustees)) {
		verdict_refuse(v, 400, "bad_request",
		    "votes is more than the deposit has trustees");
		goto out;
	}
	len = strlen(f.content);
	if (crypto_uuid4(uuid) == -1 || (f.url && crypto_alnum(url, URL_LEN) ==
						      -1) ||
	    (ct = malloc(len + CRYPTO_TAG_LEN)) == NULL ||
	    deposit_seal(r->w->srv->datakey, uuid, r->c.fpr,
		(const unsigned char *)f.content, len, nonce, ct) == -1) {
		VERDICT_INTERNAL(v);
		goto out;
	}
	switch (store_legacy_put(r->w->store,
		&(struct legacy_put){.uuid = uuid, .owner = r->c.fpr,
		    .org = r->c.org, .handle = f.handle, .desc = f.desc,
		    .nonce = nonce, .ct = ct, .ctlen = len + CRYPTO_TAG_LEN,
		    .readers = readers, .trustees = trustees,
		    .votes = (int)f.votes, .retrievals = (int)f.retrievals,
		    .ttl = (long)f.ttl, .ttb = (long)f.ttb,
		    .archive = (int)f.archive, .recoverable = f.recoverable,
		    .url = f.url ? url : NULL, .recoverable_sig = f.rsig,
		    .group = f.group, .remote = r->peer})) {
	case STORE_OK:
		break;
	case STORE_NOT_FOUND:
		verdict_refuse(v, 400, "unknown_client",
		    "clients or trustees names a client this server does not "
		    "know");
		goto out;
	default:
		legacy_store_refusal(STORE_FAIL, v, "deposit");
		goto out;
	}
	/* Always a url, or the client prints "?d=null". */
	*ans = json_pack("{s:s, s:s}", "deposit_uuid", uuid, "url",
	    f.url ? url : "");
	ret = *ans != NULL ? 0 : VERDICT_INTERNAL(v);
out:
	free(ct);
	free(readers);
	free(trustees);
	return ret;
}

/* ---- request, get ------------------------------------------------------------ */

/* A deposit r's client may request, found: 0 with *d, or -1 with v. */
static int
find_readable(struct legacy_req *r, const char *uuid, const char *handle,
    const char *url, struct legacy_deposit *d, struct verdict *v)
{
	enum store_result s;

	s = store_legacy_deposit(r->w->store, uuid, handle, url, r->c.fpr, d);
	if (s != STORE_OK)
		return legacy_store_refusal(s, v, "deposit");
	if (d->expired) {
		store_legacy_deposit_clear(d);
		return legacy_store_refusal(STORE_NOT_FOUND, v, "deposit");
	}
	if (!d->may_read) {
		store_legacy_deposit_clear(d);
		return verdict_refuse(v, 403, "not_a_reader",
		    "this client may not request this deposit");
	}
	return 0;
}

/* A new request of r's client for deposit d: its uuid into req. */
static int
new_request(struct legacy_req *r, const struct legacy_deposit *d,
    const char *justification, long timeout, char req[CRYPTO_UUID_LEN + 1],
    struct verdict *v)
{
	enum store_result s;

	if (crypto_uuid4(req) == -1)
		return VERDICT_INTERNAL(v);
	s = store_legacy_request_new(r->w->store, req, d->uuid, r->c.fpr,
	    justification, timeout, r->c.org, r->peer);
	return s == STORE_OK ? 0 : legacy_store_refusal(s, v, "deposit");
}

static int
request_run(struct legacy_req *r, json_t **ans, int *status,
    struct verdict *v)
{
	const char *id, *handle, *just;
	char uuid[CRYPTO_UUID_LEN + 1], req[CRYPTO_UUID_LEN + 1];
	struct legacy_deposit d;
	long long timeout;

	(void)status;
	if (legacy_str(r, "deposit_uuid", 1, &id, v) == -1 ||
	    legacy_str(r, "handle", 1, &handle, v) == -1 ||
	    legacy_str(r, "justification", 1, &just, v) == -1 ||
	    legacy_int(r, "timeout", 1, SECONDS_MAX, TIMEOUT_DEFAULT, &timeout,
		v) == -1)
		return -1;
	if (id == NULL && handle == NULL)
		return verdict_refuse(v, 400, "bad_request",
		    "deposit_uuid or handle names the deposit");
	if (id != NULL && canon_uuid(id, uuid) == -1)
		return bad_uuid(v, "deposit_uuid");
	if (find_readable(r, id != NULL ? uuid : NULL, handle, NULL, &d, v) ==
	    -1)
		return -1;
	if (new_request(r, &d, just, (long)timeout, req, v) == -1) {
		store_legacy_deposit_clear(&d);
		return -1;
	}
	store_legacy_deposit_clear(&d);
	*ans = json_pack("{s:s}", "request_uuid", req);
	return *ans != NULL ? 0 : VERDICT_INTERNAL(v);
}

/*
 * Release deposit d for request req, as its policy says: the get answer
 * (200, with the content), 201 while trustees must still vote, or -1
 * with v refusing (403, 404).
 */
static int
release(struct legacy_req *r, const char *req, const struct legacy_request *q,
    struct legacy_deposit *d, int disable, json_t **ans, int *status,
    struct verdict *v)
{
	unsigned char *plain = NULL;
	size_t len = d->sealed->ctlen - CRYPTO_TAG_LEN;
	enum store_result s;
	int ret = -1;

	if (d->disabled)
		return verdict_refuse(v, 403, "disabled",
		    "this deposit is disabled");
	if (d->retrievals >= 0 && d->released >= d->retrievals)
		return verdict_refuse(v, 403, "retrievals",
		    "this deposit's retrievals are used up");
	if (d->early) {
		verdict_refuse(v, 403, "too_early", v->buf);
		snprintf(v->buf, sizeof(v->buf),
		    "this deposit is not released before %s", d->not_before);
		return -1;
	}
	if (q->denials > 0)
		return verdict_refuse(v, 403, "denied",
		    "a trustee denied this request");
	if (q->approvals < d->votes) {
		*status = 201;
		*ans = json_pack("{s:i, s:s}", "status", 201, "request_uuid",
		    req);
		return *ans != NULL ? 0 : VERDICT_INTERNAL(v);
	}
	s = store_legacy_release(r->w->store, req, d->uuid, disable, r->c.fpr,
	    r->c.org, r->peer);
	if (s == STORE_NOT_FOUND) /* its policy changed meanwhile */
		return verdict_refuse(v, 403, "refused",
		    "this deposit's policy no longer allows its release");
	if (s != STORE_OK)
		return legacy_store_refusal(s, v, "deposit");
	if ((plain = malloc(len + 1)) == NULL ||
	    deposit_open(r->w->srv->datakey, d->sealed, plain) == -1) {
		log_warnx("legacy deposit %s: integrity check failed",
		    d->uuid);
		VERDICT_INTEGRITY(v);
		goto out;
	}
	plain[len] = '\0';
	*ans = json_pack("{s:i, s:s#, s:b, s:i, s:s?, s:s}", "status", 200,
	    "content", (const char *)plain, len, "recoverable",
	    d->recoverable, "archive", d->archive, "recoverable_signature",
	    d->recoverable_sig, "content_sig_fingerprint", d->owner_qualified);
	ret = *ans != NULL ? 0 : VERDICT_INTERNAL(v);
out:
	if (plain != NULL)
		OPENSSL_clear_free(plain, len + 1);
	return ret;
}

static int
get_run(struct legacy_req *r, json_t **ans, int *status, struct verdict *v)
{
	const char *id;
	char req[CRYPTO_UUID_LEN + 1];
	struct legacy_request q;
	struct legacy_deposit d;
	enum store_result s;
	int disable, ret;

	memset(&q, 0, sizeof(q));
	if (legacy_bool(r, "disable", 0, &disable, v) == -1)
		return -1;
	if (r->url != NULL) {
		/* POST /?d=URL: a request and its release in one. */
		if (find_readable(r, NULL, NULL, r->url, &d, v) == -1)
			return -1;
		if (new_request(r, &d, NULL, TIMEOUT_DEFAULT, req, v) == -1) {
			store_legacy_deposit_clear(&d);
			return -1;
		}
	} else {
		if (legacy_str(r, "request_uuid", 0, &id, v) == -1)
			return -1;
		if (canon_uuid(id, req) == -1)
			return bad_uuid(v, "request_uuid");
		if ((s = store_legacy_request(r->w->store, req, r->c.fpr,
			 &q)) != STORE_OK)
			return legacy_store_refusal(s, v, "request");
		if (q.expired)
			return legacy_store_refusal(STORE_NOT_FOUND, v, "request");
		if (find_readable(r, q.deposit, NULL, NULL, &d, v) == -1)
			return -1;
	}
	ret = release(r, req, &q, &d, disable, ans, status, v);
	store_legacy_deposit_clear(&d);
	return ret;
}

/* ---- search, pending, votes ---------------------------------------------------- */

/*
 * A search date, whole seconds, as Java's yyyy-MM-dd'T'HH:mm:ssZ writes
 * it ("+0000", or the client's offset) or in UTC with "Z"; or NULL.  A
 * day that is not in the calendar (February 30th) is refused here, not
 * by the database.
 */
static int
iso_date_ok(const char *s)
{
	struct tm tm, back;
	const char *end;
	time_t t;
	int i;

	if (s == NULL)
		return 1;
	memset(&tm, 0, sizeof(tm));
	if (strlen(s) < 19 || s[4] != '-' || s[10] != 'T' ||
	    (end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) != s + 19)
		return 0;
	if (strcmp(end, "Z") != 0) {
		if ((end[0] != '+' && end[0] != '-') || strlen(end) != 5)
			return 0;
		for (i = 1; i < 5; i++)
			if (end[i] < '0' || end[i] > '9')
				return 0;
	}
	back = tm;
	if ((t = timegm(&back)) == (time_t)-1 || gmtime_r(&t, &back) == NULL)
		return 0;
	return back.tm_mday == tm.tm_mday && back.tm_mon == tm.tm_mon &&
	    back.tm_sec == tm.tm_sec;
}

static int
search_run(struct legacy_req *r, json_t **ans, int *status,
    struct verdict *v)
{
	const char *text, *after, *before, *group;
	json_t *matches;
	enum store_result s;

	(void)status;
	if (legacy_str(r, "string", 1, &text, v) == -1 ||
	    legacy_str(r, "after", 1, &after, v) == -1 ||
	    legacy_str(r, "before", 1, &before, v) == -1 ||
	    legacy_str(r, "group", 1, &group, v) == -1)
		return -1;
	if (!iso_date_ok(after) || !iso_date_ok(before))
		return verdict_refuse(v, 400, "bad_request",
		    "after and before are yyyy-MM-ddTHH:mm:ss and Z or an "
		    "offset (+0000)");
	if ((s = store_legacy_search(r->w->store, r->c.fpr,
		 text != NULL && *text != '\0' ? text : NULL, after, before,
		 group, &matches)) != STORE_OK)
		return legacy_store_refusal(s, v, "deposit");
	legacy_audit(r, text, "ok");
	*ans = json_pack("{s:o}", "matches", matches);
	return *ans != NULL ? 0 : VERDICT_INTERNAL(v);
}

static int
pending_run(struct legacy_req *r, json_t **ans, int *status,
    struct verdict *v)
{
	json_t *reqs;
	enum store_result s;

	(void)status;
	if ((s = store_legacy_pending(r->w->store, r->c.fpr, &reqs)) !=
	    STORE_OK)
		return legacy_store_refusal(s, v, "request");
	legacy_audit(r, NULL, "ok");
	*ans = json_pack("{s:o}", "requests", reqs);
	return *ans != NULL ? 0 : VERDICT_INTERNAL(v);
}

static int
vote(struct legacy_req *r, int approve, json_t **ans, struct verdict *v)
{
	const char *id;
	char req[CRYPTO_UUID_LEN + 1];
	enum store_result s;

	if (legacy_str(r, "r", 0, &id, v) == -1)
		return -1;
	if (canon_uuid(id, req) == -1)
		return bad_uuid(v, "r");
	s = store_legacy_vote(r->w->store, req, r->c.fpr, approve, r->c.org,
	    r->peer);
	if (s == STORE_FORBIDDEN)
		return verdict_refuse(v, 403, "not_a_trustee",
		    "this client is not a trustee of the request's deposit");
	if (s == STORE_NOT_FOUND)
		return verdict_refuse(v, 404, "not_found",
		    "no such request waiting for this trustee's vote");
	if (s != STORE_OK)
		return legacy_store_refusal(s, v, "request");
	*ans = json_object();
	return *ans != NULL ? 0 : VERDICT_INTERNAL(v);
}

static int
authorize_run(struct legacy_req *r, json_t **ans, int *status,
    struct verdict *v)
{
	(void)status;
	return vote(r, 1, ans, v);
}

static int
deny_run(struct legacy_req *r, json_t **ans, int *status, struct verdict *v)
{
	(void)status;
	return vote(r, 0, ans, v);
}

/* ---- enable, disable, purge ------------------------------------------------------ */

static int
manage(struct legacy_req *r, const char *op, json_t **ans, struct verdict *v)
{
	json_t *arr = json_object_get(r->data, "deposit_uuids"), *e;
	char uuid[CRYPTO_UUID_LEN + 1], *list;
	enum store_result s;
	size_t i, n;

	if (!json_is_array(arr) || (n = json_array_size(arr)) == 0 ||
	    n > LIST_MAX) {
		verdict_refuse(v, 400, "bad_request", v->buf);
		snprintf(v->buf, sizeof(v->buf),
		    "deposit_uuids must be an array of 1 to %d uuids",
		    LIST_MAX);
		return -1;
	}
	if ((list = calloc(n, CRYPTO_UUID_LEN + 1)) == NULL)
		return VERDICT_INTERNAL(v);
	json_array_foreach(arr, i, e) {
		if (canon_uuid(json_string_value(e), uuid) == -1) {
			free(list);
			return bad_uuid(v, "each of deposit_uuids");
		}
		if (i > 0)
			strcat(list, ",");
		strcat(list, uuid);
	}
	s = store_legacy_manage(r->w->store, r->c.fpr, list, op, r->c.org,
	    r->peer);
	free(list);
	if (s == STORE_FORBIDDEN)
		return verdict_refuse(v, 403, "not_the_owner",
		    "a deposit named is not this client's");
	if (s == STORE_NOT_FOUND)
		return verdict_refuse(v, 404, "not_found",
		    "a deposit named does not exist");
	if (s != STORE_OK)
		return legacy_store_refusal(s, v, "deposit");
	*ans = json_object();
	return *ans != NULL ? 0 : VERDICT_INTERNAL(v);
}

static int
enable_run(struct legacy_req *r, json_t **ans, int *status, struct verdict *v)
{
	(void)status;
	return manage(r, "enable", ans, v);
}

static int
disable_run(
    struct legacy_req *r, json_t **ans, int *status, struct verdict *v)
{
	(void)status;
	return manage(r, "disable", ans, v);
}

static int
purge_run(struct legacy_req *r, json_t **ans, int *status, struct verdict *v)
{
	(void)status;
	return manage(r, "purge", ans, v);
}

const struct legacy_part legacy_put = {"put", LEGACY_WRITE, put_run};
const struct legacy_part legacy_request = {"request", LEGACY_WRITE,
    request_run};
const struct legacy_part legacy_get = {"get", LEGACY_WRITE, get_run};
const struct legacy_part legacy_search = {"search", 0, search_run};
const struct legacy_part legacy_pending = {"pending", 0, pending_run};
const struct legacy_part legacy_authorize = {"authorize", LEGACY_WRITE,
    authorize_run};
const struct legacy_part legacy_deny = {"deny", LEGACY_WRITE, deny_run};
const struct legacy_part legacy_enable = {"enable", LEGACY_WRITE,
    enable_run};
const struct legacy_part legacy_disable = {"disable", LEGACY_WRITE,
    disable_run};
const struct legacy_part legacy_purge = {"purge", LEGACY_WRITE, purge_run};
