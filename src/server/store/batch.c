/*
 * batch.c - many rows in one statement: the audit rows of reads, and new
 * deposits with their deposit_create rows.  Every row of a batch goes in
 * arrays in PostgreSQL's binary format (nothing to escape or parse), so
 * one prepared text serves whatever the batch size, PostgreSQL parses it
 * once per session, and the batch commits in one transaction and one
 * flush.
 *
 * The reads' batch is sent without waiting on a non-blocking connection
 * whose socket the audit queue watches from its worker's event loop
 * (auditq.c), committed durably or only written, as the queue asks, and
 * store_wal_flush makes what was only written durable; new deposits
 * commit through the bounded write of conn.c.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "int.h"
#include "log.h"

/*
 * Fixed OIDs of PostgreSQL's catalog (pg_type.dat): binary arrays name
 * their element type.
 */
#define OID_BYTEA 17
#define OID_INT4 23
#define OID_TEXT 25
#define OID_UUID 2950
#define OID_BYTEA_ARRAY 1001
#define OID_INT4_ARRAY 1007
#define OID_TEXT_ARRAY 1009
#define OID_UUID_ARRAY 2951

#define READ_COLS 4
#define READ_PARAMS (READ_COLS + 1) /* and synchronous_commit */
#define DEPOSIT_COLS 12

static const Oid read_types[READ_PARAMS] = {OID_TEXT_ARRAY, OID_TEXT_ARRAY,
    OID_TEXT_ARRAY, OID_TEXT_ARRAY, OID_TEXT};
static const Oid deposit_types[DEPOSIT_COLS] = {OID_UUID_ARRAY,
    OID_TEXT_ARRAY, OID_TEXT_ARRAY, OID_TEXT_ARRAY, OID_BYTEA_ARRAY,
    OID_BYTEA_ARRAY, OID_TEXT_ARRAY, OID_TEXT_ARRAY, OID_BYTEA_ARRAY,
    OID_INT4_ARRAY, OID_TEXT_ARRAY, OID_TEXT_ARRAY};

/*
 * Like store_audit's rows, an audit row alone never waits for a standby:
 * $5 is 'local' (the commit returns once flushed here) or 'off' (once
 * written; store_wal_flush flushes it later).
 */
static const struct store_stmt stmt_reads = {STMT_AUDIT_READS,
    "kt_audit_reads",
    STORE_AUDIT_INSERT
    "SELECT now(), a, o, 'deposit_read', b, r, 'ok' FROM "
    "unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
    "AS t (a, o, b, r), (SELECT set_config('synchronous_commit', "
    "$5, true)) s",
    READ_PARAMS, read_types};

/*
 * The deposits, their deposit_create rows and their requests' answers
 * commit together, or nothing when HA_SYNC_OK is false.  A deposit goes in
 * only when its request's digest ($9, distinct in a batch) was claimed now
 * (s): a replay, or the twin of a request still committing (whose claim
 * this one waits for), inserts nothing, and is named in the result by its
 * ordinal.  Only the audit columns and the digests are unnested twice,
 * not the contents.
 */
static const struct store_stmt stmt_deposits = {STMT_DEPOSITS_NEW,
    "kt_deposits_new",
    "WITH g AS (SELECT " DB_SERVER_ORIGIN " AND " HA_SYNC_OK " AS ok), "
    "x AS (" STORE_SEEN_PURGE "), "
    "s AS (" STORE_SEEN_INSERT "SELECT k, " STORE_SEEN_EXPIRES ", st, l, "
    "b FROM unnest($9::bytea[], $10::int[], $11::text[], $12::text[]) "
    "AS t (k, st, l, b) WHERE (SELECT ok FROM g) "
    "ON CONFLICT (digest) DO NOTHING RETURNING digest), "
    "d AS (INSERT INTO deposits (uuid, owner, name, description, "
    "nonce, content) SELECT u, o, n, de, no, c FROM unnest($1::uuid[], "
    "$2::text[], $3::text[], $4::text[], $5::bytea[], $6::bytea[], "
    "$9::bytea[]) AS t (u, o, n, de, no, c, k) "
    "WHERE k IN (SELECT digest FROM s) RETURNING uuid), "
    "a AS (" STORE_AUDIT_INSERT
    "SELECT now(), a.owner, a.org, 'deposit_create', a.uuid::text, "
    "a.remote, 'ok' FROM unnest($1::uuid[], $2::text[], $7::text[], "
    "$8::text[]) AS a (uuid, owner, org, remote) JOIN d USING (uuid)) "
    "SELECT (SELECT ok FROM g), (SELECT string_agg(i::text, ',') FROM "
    "unnest($9::bytea[]) WITH ORDINALITY AS t (k, i) "
    "WHERE (SELECT ok FROM g) AND k NOT IN (SELECT digest FROM s))",
    DEPOSIT_COLS, deposit_types};

/* A one-dimensional array in PostgreSQL's binary format (array_recv). */
#define pgarr store_buf

static void
pgarr_put32(struct pgarr *a, uint32_t v)
{
	a->buf[a->len++] = (unsigned char)(v >> 24);
	a->buf[a->len++] = (unsigned char)(v >> 16);
	a->buf[a->len++] = (unsigned char)(v >> 8);
	a->buf[a->len++] = (unsigned char)v;
}

/* Room for need more bytes; 0, or -1 (and a->fail) when out of memory. */
static int
pgarr_room(struct pgarr *a, size_t need)
{
	unsigned char *p;
	size_t cap;

	if (a->fail)
		return -1;
	if (a->len + need <= a->cap)
		return 0;
	for (cap = a->cap ? a->cap : 4096; cap < a->len + need; cap *= 2)
		;
	if ((p = realloc(a->buf, cap)) == NULL) {
		a->fail = 1;
		return -1;
	}
	a->buf = p;
	a->cap = cap;
	return 0;
}

/* Start an array of n elements of type elem. */
static void
pgarr_begin(struct pgarr *a, Oid elem, int n)
{
	a->len = 0;
	a->fail = 0;
	if (pgarr_room(a, 20) == -1)
		return;
	pgarr_put32(a, 1); /* dimensions */
	pgarr_put32(a, 0); /* flags: has nulls, set by pgarr_add */
	pgarr_put32(a, elem);
	pgarr_put32(a, (uint32_t)n);
	pgarr_put32(a, 1); /* lower bound */
}

/* The next element: len bytes of v in the type's binary form, or NULL. */
static void
pgarr_add(struct pgarr *a, const void *v, size_t len)
{
	if (pgarr_room(a, 4 + (v != NULL ? len : 0)) == -1)
		return;
	if (v == NULL) {
		a->buf[7] = 1;
		pgarr_put32(a, 0xffffffffu); /* -1: NULL */
		return;
	}
	pgarr_put32(a, (uint32_t)len);
	memcpy(a->buf + a->len, v, len);
	a->len += len;
}

/* An int4. */
static void
pgarr_add_int(struct pgarr *a, int v)
{
	unsigned char b[4] = {(unsigned char)((uint32_t)v >> 24),
	    (unsigned char)((uint32_t)v >> 16), (unsigned char)((uint32_t)v >> 8),
	    (unsigned char)v};

	pgarr_add(a, b, sizeof(b));
}

/* Text, NULL as NULL. */
static void
pgarr_add_str(struct pgarr *a, const char *v)
{
	pgarr_add(a, v, v != NULL ? strlen(v) : 0);
}

/* A uuid (canonical text, checked by the caller) as its 16 bytes. */
static void
pgarr_add_uuid(struct pgarr *a, const char *uuid)
{
	unsigned char bin[16];
	size_t i, k = 0;

	for (i = 0; uuid[i] != '\0' && k < sizeof(bin); i++) {
		if (uuid[i] == '-')
			continue;
		if (crypto_hex_decode(uuid + i, 2, bin + k, 1) == -1)
			break;
		k++;
		i++;
	}
	if (k != sizeof(bin)) {
		a->fail = 1;
		return;
	}
	pgarr_add(a, bin, sizeof(bin));
}

/* The store's arrays, begun for n rows of the element types elem. */
static struct pgarr *
arrays_begin(struct store *st, const Oid *elem, int ncols, int n)
{
	int k;

	for (k = 0; k < ncols; k++)
		pgarr_begin(&st->arr[k], elem[k], n);
	return st->arr;
}

/* The arrays as the statement's binary parameters; -1 when one failed. */
static int
arrays_params(
    struct pgarr *arr, int n, const char **params, int *lens, int *fmts)
{
	int k;

	for (k = 0; k < n; k++) {
		if (arr[k].fail || arr[k].len > INT_MAX)
			return -1;
		params[k] = (const char *)arr[k].buf;
		lens[k] = (int)arr[k].len;
		fmts[k] = 1;
	}
	return 0;
}

/* ---- new deposits -------------------------------------------------------- */

/* Row i's request is one of rows 0..i-1's (a twin in one batch). */
static int
seen_earlier(const struct deposit_row *rows, int i)
{
	int j;

	for (j = 0; j < i; j++)
		if (memcmp(rows[j].ans.seen, rows[i].ans.seen,
			CRYPTO_HASH_LEN) == 0)
			return 1;
	return 0;
}

/* Mark the rows named by the ordinals list ("2,5") of the rows sent. */
static void
seen_mark(const char *list, const int *sent, int nsent, int *seen)
{
	char *end;
	long k;

	while (*list != '\0') {
		k = strtol(list, &end, 10);
		if (end == list)
			break;
		if (k >= 1 && k <= nsent)
			seen[sent[k - 1]] = 1;
		list = *end == ',' ? end + 1 : end;
	}
}

enum store_result
store_deposit_insert(struct store *st, const struct deposit_row *rows,
    const char *const *remote, int n, int *seen)
{
	static const Oid elem[DEPOSIT_COLS] = {OID_UUID, OID_TEXT, OID_TEXT,
	    OID_TEXT, OID_BYTEA, OID_BYTEA, OID_TEXT, OID_TEXT, OID_BYTEA,
	    OID_INT4, OID_TEXT, OID_TEXT};
	const char *params[DEPOSIT_COLS];
	int lens[DEPOSIT_COLS], fmts[DEPOSIT_COLS], i, m = 0, timed_out = 0;
	int *sent = NULL;
	enum store_result ret = STORE_FAIL;
	struct pgarr *a;
	PGresult *res = NULL;

	if ((sent = calloc((size_t)n, sizeof(*sent))) == NULL)
		goto oom;
	/* A twin in this batch is a replay of its first: not sent. */
	for (i = 0; i < n; i++) {
		seen[i] = seen_earlier(rows, i);
		if (!seen[i])
			sent[m++] = i;
	}
	a = arrays_begin(st, elem, DEPOSIT_COLS, m);
	for (i = 0; i < m; i++) {
		const struct deposit_row *r = &rows[sent[i]];

		pgarr_add_uuid(&a[0], r->uuid);
		pgarr_add_str(&a[1], r->owner);
		pgarr_add_str(&a[2], r->name);
		pgarr_add_str(&a[3], r->desc);
		pgarr_add(&a[4], r->nonce, CRYPTO_NONCE_LEN);
		pgarr_add(&a[5], r->ct, r->ctlen);
		pgarr_add_str(&a[6], r->org);
		pgarr_add_str(&a[7], store_text(remote[sent[i]]));
		pgarr_add(&a[8], r->ans.seen, CRYPTO_HASH_LEN);
		pgarr_add_int(&a[9], r->ans.status);
		pgarr_add_str(&a[10], r->ans.location);
		pgarr_add_str(&a[11], r->ans.body);
	}
	if (arrays_params(a, DEPOSIT_COLS, params, lens, fmts) == -1)
		goto oom;
	res = store_exec_bounded(st, &stmt_deposits, NULL, DEPOSIT_COLS,
	    params, lens, fmts, &timed_out);
	if (timed_out)
		ret = STORE_NO_SYNC;
	else if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		log_warnx("deposit create: %s", store_error(res, st->db));
	else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
		ret = STORE_NO_SYNC; /* HA_SYNC_OK was false just now */
	else {
		seen_mark(PQgetvalue(res, 0, 1), sent, m, seen);
		ret = STORE_OK;
	}
	PQclear(res);
	free(sent);
	return ret;
oom:
	log_warnx("deposit create: out of memory");
	free(sent);
	return STORE_FAIL;
}

/* ---- the audit rows of reads ----------------------------------------------- */

int
store_batch_open(struct store *st, int *fresh)
{
	*fresh = 0;
	if (st->db != NULL && PQstatus(st->db) == CONNECTION_OK &&
	    PQisnonblocking(st->db))
		return PQsocket(st->db);
	*fresh = 1;
	store_batch_close(st);
	/* Made and prepared blocking, like a worker's; then non-blocking. */
	if (store_db(st) == NULL || store_prepare(st, &stmt_reads) == -1 ||
	    PQsetnonblocking(st->db, 1) != 0) {
		store_batch_close(st);
		return -1;
	}
	return PQsocket(st->db);
}

int
store_batch_send(
    struct store *st, const struct audit_row *rows, int n, int durable)
{
	static const Oid elem[READ_COLS] = {OID_TEXT, OID_TEXT, OID_TEXT,
	    OID_TEXT};
	const char *params[READ_PARAMS];
	int lens[READ_PARAMS], fmts[READ_PARAMS], i;
	struct pgarr *a;

	a = arrays_begin(st, elem, READ_COLS, n);
	for (i = 0; i < n; i++) {
		pgarr_add_str(&a[0], store_text(rows[i].actor));
		pgarr_add_str(&a[1], store_text(rows[i].org));
		pgarr_add_str(&a[2], store_text(rows[i].object));
		pgarr_add_str(&a[3], store_text(rows[i].remote));
	}
	if (arrays_params(a, READ_COLS, params, lens, fmts) == -1) {
		log_warnx("%s: audit batch: out of memory", st->name);
		return -1;
	}
	params[READ_COLS] = durable ? "local" : "off";
	lens[READ_COLS] = fmts[READ_COLS] = 0;
	st->batch_ok = 0;
	if (!PQsendQueryPrepared(st->db, stmt_reads.name, READ_PARAMS, params,
		lens, fmts, 0)) {
		log_warnx("%s: audit batch: %s", st->name,
		    PQerrorMessage(st->db));
		return -1;
	}
	return store_batch_flush(st);
}

int
store_batch_flush(struct store *st)
{
	int f = PQflush(st->db);

	if (f == -1)
		log_warnx("%s: audit batch: %s", st->name,
		    PQerrorMessage(st->db));
	return f;
}

int
store_batch_poll(struct store *st)
{
	PGresult *res;

	if (!PQconsumeInput(st->db)) {
		log_warnx("%s: audit batch: %s", st->name,
		    PQerrorMessage(st->db));
		return -1;
	}
	while (!PQisBusy(st->db)) {
		if ((res = PQgetResult(st->db)) == NULL)
			return st->batch_ok; /* the batch is done */
		st->batch_ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if (!st->batch_ok)
			log_warnx("%s: audit batch: %s", st->name,
			    store_error(res, st->db));
		PQclear(res);
	}
	return 2;
}

enum store_result
store_wal_flush(struct store *st)
{
	enum store_result ret;
	PGresult *res;

	/*
	 * A commit flushes the log only when its transaction has an xid and
	 * wrote WAL (xact.c, RecordTransactionCommit): pg_current_xact_id()
	 * alone writes nothing, and its commit flushes nothing.  A
	 * transactional logical message gives it both, a record of a few
	 * bytes that changes no table; its synchronous commit then flushes
	 * the log up to its own record, after every commit before it.
	 */
	res = store_exec(st,
	    "SELECT pg_logical_emit_message(true, 'keytrustee', '') FROM "
	    "(SELECT set_config('synchronous_commit', 'local', true)) s",
	    0, NULL);
	if (res == NULL)
		return STORE_FAIL;
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		ret = STORE_OK;
	else if (store_is_readonly(res))
		ret = STORE_READONLY;
	else
		ret = STORE_FAIL;
	if (ret == STORE_FAIL)
		log_warnx("%s: %s", st->name, store_error(res, st->db));
	PQclear(res);
	return ret;
}

void
store_batch_close(struct store *st)
{
	PGresult *res;

	if (st->db != NULL && PQisBusy(st->db) &&
	    PQsetnonblocking(st->db, 0) == 0)
		while ((res = PQgetResult(st->db)) != NULL)
			PQclear(res);
	PQfinish(st->db);
	st->db = NULL;
	st->prepared = 0;
	st->pid = 0;
}
