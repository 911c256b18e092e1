/*
 * policy.c - the legacy protocol's deposits (rows of deposits of
 * kind 'legacy', with their policy), the requests to release them and
 * the trustees' votes (docs/legacy.md).  What a client may do is decided
 * by the statements themselves where a race could change it (a release
 * takes one of its retrievals atomically), else by the row they return.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../deposit.h"
#include "db.h"
#include "int.h"
#include "log.h"

#define ISO(col)                                                            \
	"to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
/* Who may request a deposit d: its depositor and its readers. */
#define MAY_READ(who) "(d.owner = " who " OR " who " = ANY(d.readers))"
/* A deposit not gone: not past its ttl. */
#define ALIVE "(d.expires IS NULL OR d.expires > now())"

static const struct store_stmt stmt_put = {STMT_LEGACY_PUT, "kt_legacy_put",
    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
    "t AS (SELECT string_to_array(nullif($8, ''), ',') AS tr), "
    /* Every reader and trustee a client of this server. */
    "u AS (SELECT count(*) AS n FROM unnest(coalesce("
    "string_to_array(nullif($7, ''), ','), '{}') || "
    "coalesce((SELECT tr FROM t), '{}')) f WHERE NOT EXISTS "
    "(SELECT 1 FROM clients c WHERE c.fingerprint = f)), "
    "d AS (INSERT INTO deposits (uuid, owner, name, description, "
    "nonce, content, kind, readers, trustees, votes, retrievals, "
    "expires, not_before, archive, url, recoverable, recoverable_sig, "
    "deposit_group) SELECT $1::uuid, $2, $3, $4, $5, $6, 'legacy', "
    "coalesce(string_to_array(nullif($7, ''), ','), '{}'), "
    "coalesce(t.tr, '{}'), CASE WHEN $9::int < 0 THEN "
    "coalesce(cardinality(t.tr), 0) ELSE $9::int END, "
    "nullif($10::int, -1), CASE WHEN $11::bigint >= 0 THEN now() + "
    "$11::bigint * interval '1 second' END, now() + $12::bigint * "
    "interval '1 second', $13::int, $14, $15::boolean, $16, $17 "
    "FROM t WHERE " DB_SERVER_ORIGIN " AND (SELECT ok FROM g) "
    "AND (SELECT n FROM u) = 0 RETURNING uuid), "
    "a AS (" STORE_AUDIT_INSERT "SELECT now(), $2, $18, "
    "'deposit_create', uuid::text, $19, 'ok' FROM d) "
    "SELECT (SELECT ok FROM g), (SELECT count(*) FROM d), "
    "(SELECT n FROM u)",
    19, NULL};

enum store_result
store_legacy_put(struct store *st, const struct legacy_put *p)
{
	char votes[16], retrievals[16], ttl[24], ttb[24], archive[16];
	const char *params[19];
	int lens[19] = {0}, fmts[19] = {0};
	enum store_result ret;
	PGresult *res;

	snprintf(votes, sizeof(votes), "%d", p->votes);
	snprintf(retrievals, sizeof(retrievals), "%d", p->retrievals);
	snprintf(ttl, sizeof(ttl), "%ld", p->ttl);
	snprintf(ttb, sizeof(ttb), "%ld", p->ttb);
	snprintf(archive, sizeof(archive), "%d", p->archive);
	params[0] = p->uuid;
	params[1] = p->owner;
	params[2] = p->handle;
	params[3] = p->desc;
	params[4] = (const char *)p->nonce;
	lens[4] = CRYPTO_NONCE_LEN;
	fmts[4] = 1;
	params[5] = (const char *)p->ct;
	lens[5] = (int)p->ctlen;
	fmts[5] = 1;
	params[6] = p->readers;
	params[7] = p->trustees;
	params[8] = votes;
	params[9] = retrievals;
	params[10] = ttl;
	params[11] = ttb;
	params[12] = archive;
	params[13] = p->url;
	params[14] = p->recoverable ? "t" : "f";
	params[15] = p->recoverable_sig;
	params[16] = p->group;
	params[17] = p->org;
	params[18] = store_text(p->remote);
	/*
	 * readers, trustees: comma-joined fingerprints ("" none); votes -1:
	 * every trustee; retrievals -1: unlimited; ttl -1: for ever.
	 */
	ret =
	    store_gated(st, "legacy put", &stmt_put, params, lens, fmts, &res);
	if (ret != STORE_OK)
		return ret;
	if (strcmp(PQgetvalue(res, 0, 2), "0") != 0)
		ret = STORE_NOT_FOUND;
	else if (strcmp(PQgetvalue(res, 0, 1), "1") != 0)
		ret = STORE_FAIL;
	PQclear(res);
	return ret;
}

static char *
dupval(PGresult *res, int col)
{
	return PQgetisnull(res, 0, col) ? NULL : strdup(PQgetvalue(res, 0, col));
}

/*
 * A deposit: by uuid ($1), by url ($3), or the newest of a handle ($2)
 * the reader ($4) may read; one statement each, so that each is planned
 * for its index.
 */
#define DEPOSIT_SELECT(where)                                                  \
	"SELECT d.uuid::text, d.owner, coalesce(c.qualified, ''), "            \
	"d.name, d.description, " MAY_READ(                                    \
	    "$4") ", d.votes, "                                                \
		  "coalesce(d.retrievals, -1), d.released, d.archive, "        \
		  "d.recoverable, d.disabled, NOT " ALIVE ", "                 \
		  "d.not_before > now(), " ISO(                                \
		      "d.not_before") ", "                                     \
				      "d.recoverable_sig, d.url, d.nonce, "    \
				      "d.content, " ISO(                       \
					  "d.created") ", "                    \
						       "coalesce(cardinality(" \
						       "d.trustees), 0) "      \
						       "FROM deposits d LEFT " \
						       "JOIN clients c ON "    \
						       "c.fingerprint = "      \
						       "d.owner WHERE d.kind " \
						       "= 'legacy' AND " where \
						       " "                     \
						       "ORDER BY d.created "   \
						       "DESC LIMIT 1"
/* Its parameters' types: each statement names some of them only. */
static const Oid deposit_types[4] = {2950 /* uuid */, 25 /* text */, 25, 25};
static const struct store_stmt stmt_deposit_uuid = {STMT_LEGACY_DEPOSIT_UUID,
    "kt_legacy_deposit_uuid", DEPOSIT_SELECT("d.uuid = $1"), 4, deposit_types};
static const struct store_stmt stmt_deposit_url = {STMT_LEGACY_DEPOSIT_URL,
    "kt_legacy_deposit_url", DEPOSIT_SELECT("d.url = $3"), 4, deposit_types};
static const struct store_stmt stmt_deposit_handle = {
    STMT_LEGACY_DEPOSIT_HANDLE, "kt_legacy_deposit_handle",
    DEPOSIT_SELECT("d.name = $2 AND " MAY_READ("$4")), 4, deposit_types};

enum store_result
store_legacy_deposit(struct store *st, const char *uuid, const char *handle,
    const char *url, const char *reader, struct legacy_deposit *out)
{
	const char *params[4] = {uuid, handle, url, reader};
	unsigned char *nonce, *ct;
	size_t noncelen = 0, ctlen = 0;
	enum store_result ret;
	PGresult *res;

	memset(out, 0, sizeof(*out));
	/* By uuid, by url, or the newest of a handle the reader may read. */
	if ((ret = store_row(st, "legacy deposit",
		 uuid != NULL	   ? &stmt_deposit_uuid
		     : url != NULL ? &stmt_deposit_url
				   : &stmt_deposit_handle,
		 NULL, 4, params, 0, &res)) != STORE_OK)
		return ret;
	snprintf(out->uuid, sizeof(out->uuid), "%s", PQgetvalue(res, 0, 0));
	snprintf(out->owner, sizeof(out->owner), "%s", PQgetvalue(res, 0, 1));
	snprintf(out->owner_qualified, sizeof(out->owner_qualified), "%s",
	    PQgetvalue(res, 0, 2));
	out->may_read = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
	out->votes = atoi(PQgetvalue(res, 0, 6));
	out->retrievals = atoi(PQgetvalue(res, 0, 7));
	out->released = atoi(PQgetvalue(res, 0, 8));
	out->archive = atoi(PQgetvalue(res, 0, 9));
	out->recoverable = strcmp(PQgetvalue(res, 0, 10), "t") == 0;
	out->disabled = strcmp(PQgetvalue(res, 0, 11), "t") == 0;
	out->expired = strcmp(PQgetvalue(res, 0, 12), "t") == 0;
	out->early = strcmp(PQgetvalue(res, 0, 13), "t") == 0;
	snprintf(out->not_before, sizeof(out->not_before), "%s",
	    PQgetvalue(res, 0, 14));
	out->trustees = atoi(PQgetvalue(res, 0, 20));
	out->recoverable_sig = dupval(res, 15);
	out->url = dupval(res, 16);
	/* A text result: its bytea columns in their escaped form. */
	nonce = PQunescapeBytea(
	    (const unsigned char *)PQgetvalue(res, 0, 17), &noncelen);
	ct = PQunescapeBytea(
	    (const unsigned char *)PQgetvalue(res, 0, 18), &ctlen);
	if (nonce != NULL && ct != NULL)
		out->sealed = deposit_new(out->uuid, out->owner,
		    PQgetvalue(res, 0, 3),
		    PQgetisnull(res, 0, 4) ? NULL : PQgetvalue(res, 0, 4),
		    nonce, noncelen, ct, ctlen, PQgetvalue(res, 0, 19));
	PQfreemem(nonce);
	PQfreemem(ct);
	PQclear(res);
	if (out->sealed == NULL) {
		store_legacy_deposit_clear(out);
		return STORE_INTEGRITY;
	}
	return STORE_OK;
}

void
store_legacy_deposit_clear(struct legacy_deposit *d)
{
	free(d->recoverable_sig);
	free(d->url);
	deposit_unref(d->sealed);
	d->recoverable_sig = d->url = NULL;
	d->sealed = NULL;
}

static const struct store_stmt stmt_request_new = {STMT_LEGACY_REQUEST_NEW,
    "kt_legacy_request_new",
    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
    "r AS (INSERT INTO legacy_requests (uuid, deposit, requester, "
    "justification, expires) SELECT $1::uuid, $2::uuid, $3, $4, "
    "now() + $5::bigint * interval '1 second' WHERE (SELECT ok FROM g) "
    "RETURNING uuid), "
    "a AS (" STORE_AUDIT_INSERT "SELECT now(), $3, $6, "
    "'deposit_request', $2, $7, 'ok' FROM r) "
    "SELECT (SELECT ok FROM g), (SELECT count(*) FROM r)",
    7, NULL};

enum store_result
store_legacy_request_new(struct store *st, const char *req_uuid,
    const char *dep_uuid, const char *requester, const char *justification,
    long timeout, const char *org, const char *remote)
{
	char tmo[24];
	const char *params[7] = {req_uuid, dep_uuid, requester, justification,
	    tmo, org, store_text(remote)};

	snprintf(tmo, sizeof(tmo), "%ld", timeout);
	return store_gated_count(
	    st, "legacy request", &stmt_request_new, params, NULL, NULL);
}

static const struct store_stmt stmt_request = {STMT_LEGACY_REQUEST,
    "kt_legacy_request",
    "SELECT r.deposit::text, r.expires <= now(), "
    "(SELECT count(*) FROM legacy_votes v WHERE v.request = r.uuid "
    "AND v.approve), (SELECT count(*) FROM legacy_votes v WHERE "
    "v.request = r.uuid AND NOT v.approve) "
    "FROM legacy_requests r WHERE r.uuid = $1::uuid AND "
    "r.requester = $2",
    2, NULL};

enum store_result
store_legacy_request(struct store *st, const char *req_uuid,
    const char *requester, struct legacy_request *out)
{
	const char *params[2] = {req_uuid, requester};
	enum store_result ret;
	PGresult *res;

	memset(out, 0, sizeof(*out));
	if ((ret = store_row(st, "legacy request", &stmt_request, NULL, 2,
		 params, 0, &res)) != STORE_OK)
		return ret;
	snprintf(out->deposit, sizeof(out->deposit), "%s",
	    PQgetvalue(res, 0, 0));
	out->expired = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	out->approvals = atoi(PQgetvalue(res, 0, 2));
	out->denials = atoi(PQgetvalue(res, 0, 3));
	PQclear(res);
	return STORE_OK;
}

static const struct store_stmt stmt_release = {STMT_LEGACY_RELEASE,
    "kt_legacy_release",
    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
    "d AS (UPDATE deposits d SET released = released + 1, disabled = "
    "disabled OR $3::boolean WHERE d.uuid = $2::uuid AND "
    "d.kind = 'legacy' AND NOT d.disabled AND " ALIVE " AND "
    "(d.not_before IS NULL OR d.not_before <= now()) AND "
    "(d.retrievals IS NULL OR d.released < d.retrievals) AND "
    "(SELECT ok FROM g) RETURNING d.uuid), "
    "r AS (UPDATE legacy_requests SET released = true WHERE "
    "uuid = $1::uuid AND EXISTS (SELECT 1 FROM d)), "
    "a AS (" STORE_AUDIT_INSERT "SELECT now(), $4, $5, 'deposit_read', "
    "uuid::text, $6, 'ok' FROM d) "
    "SELECT (SELECT ok FROM g), (SELECT count(*) FROM d)",
    6, NULL};

enum store_result
store_legacy_release(struct store *st, const char *req_uuid,
    const char *dep_uuid, int disable, const char *requester, const char *org,
    const char *remote)
{
	const char *params[6] = {req_uuid, dep_uuid, disable ? "t" : "f",
	    requester, org, store_text(remote)};

	/*
	 * One of its retrievals, only while the policy still allows it (a
	 * concurrent release may have taken the last one).
	 */
	return store_gated_count(
	    st, "legacy release", &stmt_release, params, NULL, NULL);
}

static const struct store_stmt stmt_vote = {STMT_LEGACY_VOTE, "kt_legacy_vote",
    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
    "v AS (INSERT INTO legacy_votes (request, trustee, approve) "
    "SELECT r.uuid, $2, $3::boolean FROM legacy_requests r JOIN "
    "deposits d ON d.uuid = r.deposit WHERE r.uuid = $1::uuid AND "
    "$2 = ANY(d.trustees) AND r.expires > now() AND NOT r.released "
    "AND (SELECT ok FROM g) ON CONFLICT (request, trustee) DO NOTHING "
    "RETURNING request), "
    "a AS (" STORE_AUDIT_INSERT "SELECT now(), $2, $4, CASE WHEN "
    "$3::boolean THEN 'authorize' ELSE 'deny' END, request::text, $5, "
    "'ok' FROM v) "
    "SELECT (SELECT ok FROM g), (SELECT count(*) FROM v), "
    "EXISTS (SELECT 1 FROM legacy_requests r JOIN deposits d ON "
    "d.uuid = r.deposit WHERE r.uuid = $1::uuid AND "
    "NOT $2 = ANY(d.trustees))",
    5, NULL};

enum store_result
store_legacy_vote(struct store *st, const char *req_uuid,
    const char *trustee, int approve, const char *org, const char *remote)
{
	const char *params[5] = {req_uuid, trustee, approve ? "t" : "f", org,
	    store_text(remote)};

	/* A trustee of the deposit votes once on a live request. */
	return store_gated_count(
	    st, "legacy vote", &stmt_vote, params, NULL, NULL);
}

static const struct store_stmt stmt_manage = {STMT_LEGACY_MANAGE,
    "kt_legacy_manage",
    "WITH g AS (SELECT " HA_SYNC_OK " AS ok), "
    "u AS (SELECT DISTINCT x::uuid AS uuid FROM "
    "unnest(string_to_array($2, ',')) x), "
    "o AS (SELECT (SELECT count(*) FROM deposits d JOIN u USING (uuid) "
    "WHERE d.owner = $1 AND d.kind = 'legacy') = "
    "(SELECT count(*) FROM u) AND (SELECT ok FROM g) AS ok), "
    "s AS (UPDATE deposits d SET disabled = ($3 = 'disable') "
    "FROM u WHERE d.uuid = u.uuid AND $3 <> 'purge' AND "
    "(SELECT ok FROM o) RETURNING d.uuid), "
    "q AS (DELETE FROM legacy_requests r USING u WHERE "
    "r.deposit = u.uuid AND $3 = 'purge' AND (SELECT ok FROM o)), "
    "p AS (DELETE FROM deposits d USING u WHERE d.uuid = u.uuid AND "
    "$3 = 'purge' AND (SELECT ok FROM o) RETURNING d.uuid), "
    "a AS (" STORE_AUDIT_INSERT "SELECT now(), $1, $4, 'deposit_' || $3, "
    "uuid::text, $5, 'ok' FROM (SELECT uuid FROM s UNION ALL "
    "SELECT uuid FROM p) x) "
    "SELECT (SELECT ok FROM g), (SELECT ok FROM o)::int, "
    "(SELECT count(*) FROM deposits d JOIN u USING (uuid) WHERE "
    "d.kind = 'legacy') = (SELECT count(*) FROM u)",
    5, NULL};

enum store_result
store_legacy_manage(struct store *st, const char *owner, const char *uuids,
    const char *op, const char *org, const char *remote)
{
	const char *params[5] = {owner, uuids, op, org, store_text(remote)};

	/*
	 * enable, disable or purge: every deposit named must be the
	 * owner's, or nothing is done.  uuids: comma-joined, checked.
	 */
	return store_gated_count(
	    st, "legacy manage", &stmt_manage, params, NULL, NULL);
}

/* Column col of row i as JSON: its text, or null. */
static json_t *
text_or_null(PGresult *res, int i, int col)
{
	return PQgetisnull(res, i, col) ? json_null()
					: json_string(PQgetvalue(res, i, col));
}

/*
 * The rows of a read as a JSON array, each made by row (NULL: out of
 * memory): STORE_OK with *out, or STORE_FAIL (logged as what).
 */
static enum store_result
rows_json(struct store *st, const char *what, const struct store_stmt *s,
    const char *const *params, json_t *(*row)(PGresult *, int), json_t **out)
{
	enum store_result ret = STORE_FAIL;
	json_t *arr = NULL;
	PGresult *res;
	int i;

	*out = NULL;
	res = store_prepared(st, s, params, NULL, NULL, 0, 1);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("%s: %s", what, store_error(res, st->db));
		goto out;
	}
	if ((arr = json_array()) == NULL)
		goto out;
	for (i = 0; i < PQntuples(res); i++)
		if (json_array_append_new(arr, row(res, i)) == -1)
			goto out;
	*out = arr;
	arr = NULL;
	ret = STORE_OK;
out:
	json_decref(arr);
	PQclear(res);
	return ret;
}

static json_t *
search_row(PGresult *res, int i)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s}", "state",
	    PQgetvalue(res, i, 0), "creation", PQgetvalue(res, i, 1), "uuid",
	    PQgetvalue(res, i, 2), "url", PQgetvalue(res, i, 3), "description",
	    text_or_null(res, i, 4), "handle", PQgetvalue(res, i, 5));
}

static const struct store_stmt stmt_search = {STMT_LEGACY_SEARCH,
    "kt_legacy_search",
    "SELECT CASE WHEN d.disabled THEN 'disabled' WHEN d.archive <> 0 "
    "THEN 'archived' ELSE 'active' END, " ISO(
	"d.created") ", "
		     "d.uuid::text, coalesce(d.url, ''), d.description, d.name "
		     "FROM deposits d WHERE d.kind = 'legacy' AND " MAY_READ(
			 "$1") " AND " ALIVE " AND ($2::text IS NULL OR "
			       "strpos(lower(d.name), lower($2)) > 0 OR "
			       "strpos(lower(coalesce(d.description, '')), "
			       "lower($2)) > 0) AND "
			       "($3::timestamptz IS NULL OR d.created >= "
			       "$3::timestamptz) AND "
			       "($4::timestamptz IS NULL OR d.created < "
			       "$4::timestamptz) AND "
			       "($5::text IS NULL OR d.deposit_group = $5) "
			       "ORDER BY d.created, d.uuid",
    5, NULL};

enum store_result
store_legacy_search(struct store *st, const char *reader, const char *text,
    const char *after, const char *before, const char *group, json_t **out)
{
	const char *params[5] = {reader, text, after, before, group};

	return rows_json(
	    st, "legacy search", &stmt_search, params, search_row, out);
}

static json_t *
pending_row(PGresult *res, int i)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}",
	    "request_uuid", PQgetvalue(res, i, 0), "role", "trustee",
	    "creation", PQgetvalue(res, i, 1), "expiration",
	    PQgetvalue(res, i, 2), "client_fingerprint", PQgetvalue(res, i, 3),
	    "uuid", PQgetvalue(res, i, 4), "justification",
	    text_or_null(res, i, 5));
}

static const struct store_stmt stmt_pending = {STMT_LEGACY_PENDING,
    "kt_legacy_pending",
    "SELECT r.uuid::text, " ISO("r.created") ", " ISO(
	"r.expires") ", "
		     "coalesce(c.qualified, r.requester), r.deposit::text, "
		     "r.justification FROM legacy_requests r "
		     "JOIN deposits d ON d.uuid = r.deposit "
		     "LEFT JOIN clients c ON c.fingerprint = r.requester "
		     "WHERE $1 = ANY(d.trustees) AND r.expires > now() AND "
		     "NOT r.released AND NOT EXISTS (SELECT 1 FROM "
		     "legacy_votes v "
		     "WHERE v.request = r.uuid AND (v.trustee = $1 OR NOT "
		     "v.approve)) "
		     "AND (SELECT count(*) FROM legacy_votes v WHERE v.request "
		     "= "
		     "r.uuid) < d.votes "
		     "ORDER BY r.created, r.uuid",
    1, NULL};

enum store_result
store_legacy_pending(struct store *st, const char *trustee, json_t **out)
{
	const char *params[1] = {trustee};

	/*
	 * Live requests for a deposit $1 is a trustee of that still wait for
	 * votes: not voted on by $1, denied by none, short of the votes.
	 */
	return rows_json(
	    st, "legacy pending", &stmt_pending, params, pending_row, out);
}
