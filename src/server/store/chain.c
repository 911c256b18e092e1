/*
 * chain.c - the statements of the audit chainer (src/server/chainer.c):
 * under the chain's advisory lock and in one REPEATABLE READ transaction,
 * the head of the chain and the horizon below which every transaction has
 * ended, a cursor over the rows to seal, and the segments' INSERTs.
 */
#include <stdio.h>
#include <string.h>

#include "auditchain.h"
#include "int.h"
#include "log.h"

static int
chain_exec(struct store *st, const char *sql)
{
	PGresult *res = PQexec(st->db, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok && !store_is_readonly(res))
		log_warnx("%s: %s", st->name, store_error(res, st->db));
	PQclear(res);
	return ok ? 0 : -1;
}

enum store_result
store_chain_begin(struct store *st, struct store_chain_head *h)
{
	PGresult *res = NULL;
	enum store_result ret = STORE_FAIL;
	size_t n;

	if (store_db(st) == NULL)
		return STORE_FAIL;
	res = PQexec(st->db, "SELECT pg_try_advisory_lock(" AUDITCHAIN_LOCK
	    ")");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("%s: %s", st->name, store_error(res, st->db));
		PQclear(res);
		return STORE_FAIL;
	}
	/* A prune holds it: this tick is skipped. */
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		PQclear(res);
		return STORE_CONFLICT;
	}
	PQclear(res);
	/* A segment never waits for the synchronous standby (as its rows). */
	if (chain_exec(st, "BEGIN ISOLATION LEVEL REPEATABLE READ; "
	    "SET LOCAL synchronous_commit = local") == -1)
		goto out;
	/*
	 * The horizon: every transaction below the snapshot's xmin has
	 * ended, so the rows below it are all there is of them.  The head:
	 * the last segment, else the last anchor of a prune, else nothing.
	 */
	res = PQexec(st->db,
	    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, "
	    "h.seq, h.xact_hi, h.hash FROM (SELECT 0::bigint AS seq, "
	    "0::bigint AS xact_hi, NULL::bytea AS hash, 0 AS o UNION ALL "
	    "(SELECT seq, xact_hi, hash, 1 FROM audit_anchor "
	    "ORDER BY seq DESC LIMIT 1) UNION ALL "
	    "(SELECT seq, xact_hi, hash, 2 FROM audit_chain "
	    "ORDER BY seq DESC LIMIT 1)) h ORDER BY h.seq DESC, h.o DESC "
	    "LIMIT 1");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		log_warnx("%s: the chain's head: %s", st->name,
		    store_error(res, st->db));
		goto out;
	}
	memset(h, 0, sizeof(*h));
	if (auditchain_int(PQgetvalue(res, 0, 0), &h->horizon) == -1 ||
	    auditchain_int(PQgetvalue(res, 0, 1), &h->seq) == -1 ||
	    auditchain_int(PQgetvalue(res, 0, 2), &h->xact_hi) == -1) {
		ret = STORE_INTEGRITY;
		goto out;
	}
	if (!PQgetisnull(res, 0, 3)) {
		unsigned char *b = PQunescapeBytea(
		    (const unsigned char *)PQgetvalue(res, 0, 3), &n);

		if (b == NULL || n != sizeof(h->hash)) {
			PQfreemem(b);
			log_warnx("%s: segment %lld: its hash is not %zu bytes",
			    st->name, (long long)h->seq, sizeof(h->hash));
			ret = STORE_INTEGRITY;
			goto out;
		}
		memcpy(h->hash, b, n);
		PQfreemem(b);
	}
	ret = STORE_OK;
out:
	PQclear(res);
	if (ret != STORE_OK)
		store_chain_end(st, 0);
	return ret;
}

enum store_result
store_chain_open(struct store *st, int64_t lo, int64_t hi)
{
	char a[24], b[24];
	const char *p[2] = {a, b};
	PGresult *res;
	int ok;

	snprintf(a, sizeof(a), "%lld", (long long)lo);
	snprintf(b, sizeof(b), "%lld", (long long)hi);
	res = PQexecParams(st->db,
	    "DECLARE kt_chain NO SCROLL CURSOR FOR SELECT "
	    AUDITCHAIN_ROW_COLUMNS " FROM audit_log WHERE xact >= $1::bigint "
	    "AND xact < $2::bigint ORDER BY xact, id",
	    2, NULL, p, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		log_warnx("%s: %s", st->name, store_error(res, st->db));
	PQclear(res);
	return ok ? STORE_OK : STORE_FAIL;
}

PGresult *
store_chain_fetch(struct store *st)
{
	PGresult *res = PQexec(st->db, "FETCH 5000 FROM kt_chain");

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_warnx("%s: %s", st->name, store_error(res, st->db));
		PQclear(res);
		return NULL;
	}
	return res;
}

enum store_result
store_chain_insert(struct store *st, const struct auditchain_seg *s,
    const char *ids, const unsigned char *digests, size_t diglen,
    const unsigned char hash[CRYPTO_HASH_LEN],
    const unsigned char mac[CRYPTO_MAC_LEN])
{
	char num[6][24];
	const char *p[11];
	int len[11] = {0}, fmt[11] = {0}, i;
	enum store_result ret = STORE_OK;
	PGresult *res;

	snprintf(num[0], 24, "%lld", (long long)s->seq);
	snprintf(num[1], 24, "%lld", (long long)s->xact_lo);
	snprintf(num[2], 24, "%lld", (long long)s->xact_hi);
	snprintf(num[3], 24, "%lld", (long long)s->nrows);
	snprintf(num[4], 24, "%lld", (long long)s->first_at);
	snprintf(num[5], 24, "%lld", (long long)s->last_at);
	for (i = 0; i < 6; i++)
		p[i] = num[i];
	p[6] = ids;
	/* The byte strings go as binary parameters. */
	p[7] = (const char *)digests;
	len[7] = (int)diglen;
	p[8] = (const char *)s->prev;
	len[8] = CRYPTO_HASH_LEN;
	p[9] = (const char *)hash;
	len[9] = CRYPTO_HASH_LEN;
	p[10] = (const char *)mac;
	len[10] = CRYPTO_MAC_LEN;
	for (i = 7; i < 11; i++)
		fmt[i] = 1;
	res = PQexecParams(st->db,
	    "INSERT INTO audit_chain (seq, xact_lo, xact_hi, nrows, first_at, "
	    "last_at, ids, digests, prev, hash, mac) VALUES ($1::bigint, "
	    "$2::bigint, $3::bigint, $4::int, " AUDITCHAIN_AT(5) ", "
	    AUDITCHAIN_AT(6) ", $7::bigint[], $8::bytea, $9::bytea, "
	    "$10::bytea, $11::bytea)",
	    11, NULL, p, len, fmt, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		if (store_is_readonly(res))
			ret = STORE_READONLY;
		else {
			log_warnx("%s: segment %lld: %s", st->name,
			    (long long)s->seq, store_error(res, st->db));
			ret = STORE_FAIL;
		}
	}
	PQclear(res);
	return ret;
}

enum store_result
store_chain_end(struct store *st, int commit)
{
	enum store_result ret = STORE_OK;

	if (st->db == NULL || PQstatus(st->db) != CONNECTION_OK)
		return STORE_FAIL;
	if (PQtransactionStatus(st->db) != PQTRANS_IDLE &&
	    chain_exec(st, commit ? "COMMIT" : "ROLLBACK") == -1)
		ret = STORE_FAIL;
	if (chain_exec(st, "SELECT pg_advisory_unlock(" AUDITCHAIN_LOCK
	    ")") == -1)
		ret = STORE_FAIL;
	return ret;
}
