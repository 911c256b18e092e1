/*
 * auditchain.c - ktadmin audit --verify, --export and --prune-before
 * (docs/audit.md).
 *
 * --verify walks the chain from its anchor (the last prune's, else the
 * start) segment by segment, in seq order: each segment's rows (xact_lo <=
 * xact < xact_hi, in (xact, id) order) against the ids and truncated
 * digests it sealed, its hash over its rows and the previous hash, and its
 * MAC under the audit key, which this process derives from the data key
 * as the key process does.  The first problem is reported, naming the
 * row: changed, removed, inserted, out of order; or the segment whose
 * record or MAC is wrong.  Rows not sealed yet are counted, not an error.
 * --file FILE does the same over an export.
 *
 * --export writes the segments whose rows are all before a date, with
 * their rows, as JSON lines that verify alone, and records it;
 * --prune-before removes the rows of exported segments only, as the admin
 * role (the append-only triggers off for its transaction), and leaves an
 * anchor from which the rest verifies.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auditchain.h"
#include "conf.h"
#include "crypto.h"
#include "datakey.h"
#include "db.h"
#include "ktadmin.h"
#include "log.h"
#include "pgcluster.h"
#include "pgp.h"
#include "util.h"
/* The chain's definitions (this folder's auditchain.h is the command's). */
#include "../common/auditchain.h"

#define EXPORT_FORMAT "keytrustee-audit-export"

/* A segment as read back (from the database or a file). */
struct vseg {
	struct auditchain_seg s;
	int64_t *ids;
	size_t nids;
	unsigned char *dig;
	size_t diglen;
	unsigned char hash[CRYPTO_HASH_LEN];
	unsigned char mac[CRYPTO_MAC_LEN];
};

/* The walk: what comes next, what was seen, the first problem. */
struct verify {
	unsigned char key[CRYPTO_KEY_LEN];
	int64_t next_seq, next_lo;
	unsigned char prev[CRYPTO_HASH_LEN];
	int64_t nsegs, nrows;
	char what[512];
};

static void
vseg_free(struct vseg *g)
{
	free(g->ids);
	free(g->dig);
	memset(g, 0, sizeof(*g));
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int
has_id(const int64_t *sorted, size_t n, int64_t id)
{
	return n > 0 && bsearch(&id, sorted, n, sizeof(id), cmp_i64) != NULL;
}

/*
 * Check one segment g and its rows (as found) against what comes next:
 * 0 when it holds, 1 with v->what when not.  -1 on a failure to check.
 */
static int
verify_seg(struct verify *v, const struct vseg *g,
    const struct auditchain_row *rows, size_t n)
{
	unsigned char d[CRYPTO_HASH_LEN], h[CRYPTO_HASH_LEN];
	unsigned char mac[CRYPTO_MAC_LEN], msg[AUDITCHAIN_MAC_MSG_LEN];
	struct auditchain_hash *ah = NULL;
	int64_t *sealed = NULL, *found = NULL, moved;
	size_t i, j, k;
	int ret = 1;

	if (g->s.seq != v->next_seq) {
		snprintf(v->what, sizeof(v->what), "segment %" PRId64 " is "
		    "missing (the next one found is %" PRId64 ")", v->next_seq,
		    g->s.seq);
		return 1;
	}
	if (g->nids != (size_t)g->s.nrows ||
	    g->diglen != g->nids * AUDITCHAIN_DIG_LEN) {
		snprintf(v->what, sizeof(v->what), "segment %" PRId64 ": its "
		    "record was changed (%zu ids, %zu digest bytes for %" PRId64
		    " rows)", g->s.seq, g->nids, g->diglen, g->s.nrows);
		return 1;
	}
	if ((sealed = malloc((g->nids + 1) * sizeof(*sealed))) == NULL ||
	    (found = malloc((n + 1) * sizeof(*found))) == NULL) {
		ret = -1;
		goto out;
	}
	memcpy(sealed, g->ids, g->nids * sizeof(*sealed));
	qsort(sealed, g->nids, sizeof(*sealed), cmp_i64);
	for (j = 0; j < n; j++)
		found[j] = rows[j].id;
	qsort(found, n, sizeof(*found), cmp_i64);
	/* The rows as sealed, in order, against the rows there are. */
	for (i = 0, j = 0; i < g->nids || j < n;) {
		if (i < g->nids && j < n && rows[j].id == g->ids[i]) {
			if (auditchain_row_digest(&rows[j], d) == -1) {
				ret = -1;
				goto out;
			}
			if (!crypto_memeq(d, g->dig + i * AUDITCHAIN_DIG_LEN,
			    AUDITCHAIN_DIG_LEN)) {
				snprintf(v->what, sizeof(v->what), "row %" PRId64
				    " was changed (segment %" PRId64 " sealed "
				    "other content)", rows[j].id, g->s.seq);
				goto out;
			}
			i++;
			j++;
		} else if (i < g->nids && !has_id(found, n, g->ids[i])) {
			snprintf(v->what, sizeof(v->what), "row %" PRId64 " was "
			    "removed (segment %" PRId64 " sealed it)", g->ids[i],
			    g->s.seq);
			goto out;
		} else if (j < n && !has_id(sealed, g->nids, rows[j].id)) {
			snprintf(v->what, sizeof(v->what), "row %" PRId64 " was "
			    "inserted into the sealed range of segment %" PRId64
			    " (transaction %" PRId64 ")", rows[j].id, g->s.seq,
			    rows[j].xact);
			goto out;
		} else if (i >= g->nids || j >= n) {
			/* an id sealed twice: no server made this record */
			snprintf(v->what, sizeof(v->what), "segment %" PRId64
			    ": its record was changed (an id listed twice)",
			    g->s.seq);
			goto out;
		} else {
			/*
			 * Both sealed, not in their sealed order: the row
			 * moved is the one whose content (its xact) changed.
			 */
			moved = g->ids[i];
			for (k = 0; k < g->nids; k++)
				if (g->ids[k] == rows[j].id)
					break;
			if (k < g->nids &&
			    auditchain_row_digest(&rows[j], d) == 0 &&
			    !crypto_memeq(d, g->dig + k * AUDITCHAIN_DIG_LEN,
			    AUDITCHAIN_DIG_LEN))
				moved = rows[j].id;
			snprintf(v->what, sizeof(v->what), "row %" PRId64 " is "
			    "out of order (segment %" PRId64 " sealed it at "
			    "another place: its transaction was changed)",
			    moved, g->s.seq);
			goto out;
		}
	}
	if (g->s.xact_lo != v->next_lo ||
	    !crypto_memeq(g->s.prev, v->prev, CRYPTO_HASH_LEN)) {
		snprintf(v->what, sizeof(v->what), "segment %" PRId64 " does "
		    "not follow segment %" PRId64 " (%s)", g->s.seq,
		    g->s.seq - 1, g->s.xact_lo != v->next_lo ?
		    "its range does not start where that one ended" :
		    "its previous hash is not that one's hash");
		goto out;
	}
	if ((ah = auditchain_hash_new(g->s.prev)) == NULL) {
		ret = -1;
		goto out;
	}
	for (j = 0; j < n; j++)
		if (auditchain_row_digest(&rows[j], d) == -1 ||
		    auditchain_hash_row(ah, d) == -1) {
			ret = -1;
			goto out;
		}
	i = auditchain_hash_end(ah, &g->s, h) == -1;
	ah = NULL;
	if (i) {
		ret = -1;
		goto out;
	}
	if (!crypto_memeq(h, g->hash, CRYPTO_HASH_LEN)) {
		snprintf(v->what, sizeof(v->what), "segment %" PRId64 ": its "
		    "record was changed (its hash does not match its rows and "
		    "header)", g->s.seq);
		goto out;
	}
	auditchain_mac_msg(g->s.seq, g->s.xact_hi, g->s.nrows, g->hash, msg);
	if (auditchain_mac(v->key, msg, mac) == -1) {
		ret = -1;
		goto out;
	}
	if (!crypto_memeq(mac, g->mac, CRYPTO_MAC_LEN)) {
		snprintf(v->what, sizeof(v->what), "segment %" PRId64 ": its "
		    "MAC does not verify (forged, or not made with this "
		    "server's audit key)", g->s.seq);
		goto out;
	}
	v->next_seq = g->s.seq + 1;
	v->next_lo = g->s.xact_hi;
	memcpy(v->prev, g->hash, CRYPTO_HASH_LEN);
	v->nsegs++;
	v->nrows += g->s.nrows;
	ret = 0;
out:
	auditchain_hash_free(ah);
	free(sealed);
	free(found);
	return ret;
}

/* The anchor's MAC (that of the last pruned segment): 0, or 1 with why. */
static int
verify_anchor(struct verify *v, int64_t seq, int64_t xact_hi, int64_t nrows,
    const unsigned char hash[CRYPTO_HASH_LEN],
    const unsigned char mac[CRYPTO_MAC_LEN])
{
	unsigned char msg[AUDITCHAIN_MAC_MSG_LEN], m[CRYPTO_MAC_LEN];

	auditchain_mac_msg(seq, xact_hi, nrows, hash, msg);
	if (auditchain_mac(v->key, msg, m) == -1 ||
	    !crypto_memeq(m, mac, CRYPTO_MAC_LEN)) {
		snprintf(v->what, sizeof(v->what), "the anchor (segment %" PRId64
		    ") does not verify: forged, or not made with this server's "
		    "audit key", seq);
		return 1;
	}
	v->next_seq = seq + 1;
	v->next_lo = xact_hi;
	memcpy(v->prev, hash, CRYPTO_HASH_LEN);
	return 0;
}

/* ---- reading values --------------------------------------------------- */

static int
hex_bytes(const char *s, unsigned char *out, size_t len)
{
	return s != NULL && strlen(s) == 2 * len &&
	    crypto_hex_decode(s, 2 * len, out, len) == 0 ? 0 : -1;
}

/* A hex string of any even length into *out (malloc'd). */
static int
hex_alloc(const char *s, unsigned char **out, size_t *len)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (s == NULL || n % 2 != 0 || (*out = malloc(n / 2 + 1)) == NULL)
		return -1;
	*len = n / 2;
	if (n > 0 && crypto_hex_decode(s, n, *out, n / 2) == -1) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

static char *
hex_of(const unsigned char *b, size_t n)
{
	char *s = malloc(2 * n + 1);

	if (s != NULL)
		hex_encode(b, n, s, 0);
	return s;
}

/* "{1,2,3}" into ids. */
static int
ids_parse(const char *s, int64_t **ids, size_t *n)
{
	size_t cap = 1, k = 0;
	const char *p;
	char *end;

	if (s == NULL || s[0] != '{')
		return -1;
	for (p = s; *p; p++)
		cap += *p == ',';
	if ((*ids = malloc(cap * sizeof(**ids))) == NULL)
		return -1;
	p = s + 1;
	if (*p == '}') {
		*n = 0;
		return 0;
	}
	while (k < cap) {
		errno = 0;
		(*ids)[k++] = strtoll(p, &end, 10);
		if (errno != 0 || end == p)
			break;
		if (*end == '}' && end[1] == '\0') {
			*n = k;
			return 0;
		}
		if (*end != ',')
			break;
		p = end + 1;
	}
	free(*ids);
	*ids = NULL;
	return -1;
}

/* ---- the database ----------------------------------------------------- */

#define SEG_COLUMNS                                                          \
	"seq, xact_lo, xact_hi, nrows, "                                     \
	"(extract(epoch FROM first_at) * 1000000)::bigint, "                 \
	"(extract(epoch FROM last_at) * 1000000)::bigint, ids::text, "       \
	"encode(digests, 'hex'), encode(prev, 'hex'), encode(hash, 'hex'), " \
	"encode(mac, 'hex')"

/* Row i of a SEG_COLUMNS result into g: 0, or -1 when malformed. */
static int
seg_get(const PGresult *res, int i, struct vseg *g)
{
	memset(g, 0, sizeof(*g));
	if (auditchain_int(PQgetvalue(res, i, 0), &g->s.seq) == -1 ||
	    auditchain_int(PQgetvalue(res, i, 1), &g->s.xact_lo) == -1 ||
	    auditchain_int(PQgetvalue(res, i, 2), &g->s.xact_hi) == -1 ||
	    auditchain_int(PQgetvalue(res, i, 3), &g->s.nrows) == -1 ||
	    auditchain_int(PQgetvalue(res, i, 4), &g->s.first_at) == -1 ||
	    auditchain_int(PQgetvalue(res, i, 5), &g->s.last_at) == -1 ||
	    ids_parse(PQgetvalue(res, i, 6), &g->ids, &g->nids) == -1 ||
	    hex_alloc(PQgetvalue(res, i, 7), &g->dig, &g->diglen) == -1 ||
	    hex_bytes(PQgetvalue(res, i, 8), g->s.prev, CRYPTO_HASH_LEN) ==
	    -1 ||
	    hex_bytes(PQgetvalue(res, i, 9), g->hash, CRYPTO_HASH_LEN) == -1 ||
	    hex_bytes(PQgetvalue(res, i, 10), g->mac, CRYPTO_MAC_LEN) == -1) {
		vseg_free(g);
		return -1;
	}
	return 0;
}

static void
pg_fail(PGconn *db, PGresult *res, const char *what)
{
	cli_error("%s", what);
	cli_detail_lines(res != NULL ? PQresultErrorMessage(res) :
	    PQerrorMessage(db));
}

static PGresult *
q(PGconn *db, const char *sql, int n, const char *const *p, int want)
{
	PGresult *res = PQexecParams(db, sql, n, NULL, p, NULL, NULL, 0);

	if (PQresultStatus(res) != (ExecStatusType)want) {
		pg_fail(db, res, "the database refused a query of the audit "
		    "chain");
		PQclear(res);
		return NULL;
	}
	return res;
}

/* What a walk over the database does with each good segment. */
typedef int seg_fn(void *arg, const struct vseg *g,
    const struct auditchain_row *rows, size_t n);

/*
 * Walk the database's chain (in the caller's transaction): 0 intact
 * (*pending: rows not sealed yet), 1 tampered (v->what), -1 failed.
 * each, when not NULL, gets every segment that verified and may stop the
 * walk by returning 1 (or fail it with -1).
 */
static int
walk_db(PGconn *db, struct verify *v, seg_fn *each, void *arg,
    int64_t *pending)
{
	struct auditchain_row *rows = NULL;
	PGresult *res = NULL, *rr = NULL;
	struct vseg g;
	char a[24], b[24];
	const char *p[2] = {a, b};
	int64_t seq, hi, nrows;
	unsigned char hash[CRYPTO_HASH_LEN], mac[CRYPTO_MAC_LEN];
	int i, k, n, ret = -1, r;

	memset(&g, 0, sizeof(g));
	v->next_seq = 1;
	v->next_lo = 0;
	memset(v->prev, 0, sizeof(v->prev));
	if ((res = q(db, "SELECT seq, xact_hi, nrows, encode(hash, 'hex'), "
	    "encode(mac, 'hex') FROM audit_anchor ORDER BY seq DESC LIMIT 1",
	    0, NULL, PGRES_TUPLES_OK)) == NULL)
		goto out;
	if (PQntuples(res) == 1) {
		if (auditchain_int(PQgetvalue(res, 0, 0), &seq) == -1 ||
		    auditchain_int(PQgetvalue(res, 0, 1), &hi) == -1 ||
		    auditchain_int(PQgetvalue(res, 0, 2), &nrows) == -1 ||
		    hex_bytes(PQgetvalue(res, 0, 3), hash, sizeof(hash)) == -1 ||
		    hex_bytes(PQgetvalue(res, 0, 4), mac, sizeof(mac)) == -1) {
			snprintf(v->what, sizeof(v->what), "the anchor's record "
			    "is malformed");
			ret = 1;
			goto out;
		}
		if ((ret = verify_anchor(v, seq, hi, nrows, hash, mac)) != 0)
			goto out;
		ret = -1;
	}
	PQclear(res);
	/* Nothing may be left (or put) before the anchor. */
	snprintf(a, sizeof(a), "%" PRId64, v->next_lo);
	if ((res = q(db, "SELECT id FROM audit_log WHERE xact < $1::bigint "
	    "ORDER BY xact, id LIMIT 1", 1, p, PGRES_TUPLES_OK)) == NULL)
		goto out;
	if (PQntuples(res) == 1) {
		snprintf(v->what, sizeof(v->what), "row %s was inserted before "
		    "the chain's anchor (segment %" PRId64 ")",
		    PQgetvalue(res, 0, 0), v->next_seq - 1);
		ret = 1;
		goto out;
	}
	PQclear(res);
	res = NULL;
	if ((rr = q(db, "DECLARE kt_segs NO SCROLL CURSOR FOR SELECT "
	    SEG_COLUMNS " FROM audit_chain ORDER BY seq", 0, NULL,
	    PGRES_COMMAND_OK)) == NULL)
		goto out;
	PQclear(rr);
	rr = NULL;
	for (;;) {
		PQclear(res);
		if ((res = q(db, "FETCH 100 FROM kt_segs", 0, NULL,
		    PGRES_TUPLES_OK)) == NULL)
			goto out;
		if ((n = PQntuples(res)) == 0)
			break;
		for (i = 0; i < n; i++) {
			if (seg_get(res, i, &g) == -1) {
				snprintf(v->what, sizeof(v->what), "segment %s: "
				    "its record is malformed",
				    PQgetvalue(res, i, 0));
				ret = 1;
				goto out;
			}
			snprintf(a, sizeof(a), "%" PRId64, g.s.xact_lo);
			snprintf(b, sizeof(b), "%" PRId64, g.s.xact_hi);
			PQclear(rr);
			if ((rr = q(db, "SELECT " AUDITCHAIN_ROW_COLUMNS " FROM "
			    "audit_log WHERE xact >= $1::bigint AND xact < "
			    "$2::bigint ORDER BY xact, id", 2, p,
			    PGRES_TUPLES_OK)) == NULL)
				goto out;
			free(rows);
			if ((rows = calloc((size_t)PQntuples(rr) + 1,
			    sizeof(*rows))) == NULL)
				goto out;
			for (k = 0; k < PQntuples(rr); k++)
				if (auditchain_row_get(rr, k, 0, &rows[k]) == -1) {
					snprintf(v->what, sizeof(v->what), "row "
					    "%s is malformed",
					    PQgetvalue(rr, k, 0));
					ret = 1;
					goto out;
				}
			r = verify_seg(v, &g, rows, (size_t)PQntuples(rr));
			if (r == 0 && each != NULL)
				r = each(arg, &g, rows, (size_t)PQntuples(rr));
			vseg_free(&g);
			if (r == 1 && each != NULL && v->what[0] == '\0')
				goto stop;
			if (r != 0) {
				ret = r;
				goto out;
			}
		}
	}
stop:
	PQclear(res);
	snprintf(a, sizeof(a), "%" PRId64, v->next_lo);
	if ((res = q(db, "SELECT count(*) FROM audit_log WHERE xact >= "
	    "$1::bigint", 1, p, PGRES_TUPLES_OK)) == NULL ||
	    auditchain_int(PQgetvalue(res, 0, 0), pending) == -1)
		goto out;
	ret = 0;
out:
	vseg_free(&g);
	free(rows);
	PQclear(res);
	PQclear(rr);
	return ret;
}

/* ---- the export file -------------------------------------------------- */

static json_t *
row_json(const struct auditchain_row *r)
{
#define JS(s) ((s) != NULL ? json_string(s) : json_null())
	return json_pack("{s:{s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o,s:I}}",
	    "row", "id", (json_int_t)r->id, "xact", (json_int_t)r->xact,
	    "at_us", (json_int_t)r->at_us, "actor", JS(r->actor), "org",
	    JS(r->org), "action", JS(r->action), "object", JS(r->object),
	    "remote_addr", JS(r->remote_addr), "result", JS(r->result),
	    "count", (json_int_t)r->count);
#undef JS
}

static json_t *
seg_json(const struct vseg *g)
{
	json_t *ids = json_array(), *o;
	char *dig = hex_of(g->dig, g->diglen);
	char *prev = hex_of(g->s.prev, CRYPTO_HASH_LEN);
	char *hash = hex_of(g->hash, CRYPTO_HASH_LEN);
	char *mac = hex_of(g->mac, CRYPTO_MAC_LEN);
	size_t i;

	for (i = 0; ids != NULL && i < g->nids; i++)
		json_array_append_new(ids, json_integer((json_int_t)g->ids[i]));
	o = ids == NULL || dig == NULL || prev == NULL || hash == NULL ||
	    mac == NULL ? NULL :
	    json_pack("{s:{s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:s,s:s,s:s,s:s}}",
	    "segment", "seq", (json_int_t)g->s.seq, "xact_lo",
	    (json_int_t)g->s.xact_lo, "xact_hi", (json_int_t)g->s.xact_hi,
	    "nrows", (json_int_t)g->s.nrows, "first_at_us",
	    (json_int_t)g->s.first_at, "last_at_us", (json_int_t)g->s.last_at,
	    "ids", ids, "digests", dig, "prev", prev, "hash", hash, "mac", mac);
	if (o == NULL)
		json_decref(ids);
	free(dig);
	free(prev);
	free(hash);
	free(mac);
	return o;
}

static int
put_line(FILE *fp, json_t *o)
{
	int r = o != NULL && json_dumpf(o, fp, JSON_COMPACT) == 0 &&
	    fputc('\n', fp) != EOF ? 0 : -1;

	json_decref(o);
	return r;
}

static const char *
jstr(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int
jint(json_t *o, const char *k, int64_t *out)
{
	json_t *v = json_object_get(o, k);

	if (!json_is_integer(v))
		return -1;
	*out = (int64_t)json_integer_value(v);
	return 0;
}

/* A text column: a string, or null (not absent). */
static int
jtext(json_t *o, const char *k, const char **out)
{
	json_t *v = json_object_get(o, k);

	if (json_is_null(v)) {
		*out = NULL;
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	*out = json_string_value(v);
	return 0;
}

static int
file_seg(json_t *o, struct vseg *g)
{
	json_t *ids = json_object_get(o, "ids");
	size_t i;

	memset(g, 0, sizeof(*g));
	if (jint(o, "seq", &g->s.seq) == -1 ||
	    jint(o, "xact_lo", &g->s.xact_lo) == -1 ||
	    jint(o, "xact_hi", &g->s.xact_hi) == -1 ||
	    jint(o, "nrows", &g->s.nrows) == -1 ||
	    jint(o, "first_at_us", &g->s.first_at) == -1 ||
	    jint(o, "last_at_us", &g->s.last_at) == -1 ||
	    !json_is_array(ids) ||
	    hex_alloc(jstr(o, "digests"), &g->dig, &g->diglen) == -1 ||
	    hex_bytes(jstr(o, "prev"), g->s.prev, CRYPTO_HASH_LEN) == -1 ||
	    hex_bytes(jstr(o, "hash"), g->hash, CRYPTO_HASH_LEN) == -1 ||
	    hex_bytes(jstr(o, "mac"), g->mac, CRYPTO_MAC_LEN) == -1)
		goto bad;
	g->nids = json_array_size(ids);
	if ((g->ids = malloc((g->nids + 1) * sizeof(*g->ids))) == NULL)
		goto bad;
	for (i = 0; i < g->nids; i++) {
		if (!json_is_integer(json_array_get(ids, i)))
			goto bad;
		g->ids[i] = (int64_t)json_integer_value(json_array_get(ids, i));
	}
	return 0;
bad:
	vseg_free(g);
	return -1;
}

static int
file_row(json_t *o, struct auditchain_row *r)
{
	return jint(o, "id", &r->id) == -1 || jint(o, "xact", &r->xact) == -1 ||
	    jint(o, "at_us", &r->at_us) == -1 ||
	    jint(o, "count", &r->count) == -1 ||
	    jtext(o, "actor", &r->actor) == -1 ||
	    jtext(o, "org", &r->org) == -1 ||
	    jtext(o, "action", &r->action) == -1 ||
	    jtext(o, "object", &r->object) == -1 ||
	    jtext(o, "remote_addr", &r->remote_addr) == -1 ||
	    jtext(o, "result", &r->result) == -1 ? -1 : 0;
}

/* The segment g (when it has one) with the rows gathered for it. */
static int
file_check(struct verify *v, struct vseg *g, json_t *rows)
{
	struct auditchain_row *r;
	size_t i, n = json_array_size(rows);
	int ret;

	if ((r = calloc(n + 1, sizeof(*r))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (file_row(json_object_get(json_array_get(rows, i), "row"),
		    &r[i]) == -1) {
			snprintf(v->what, sizeof(v->what), "a row of segment %"
			    PRId64 " is malformed", g->s.seq);
			free(r);
			return 1;
		}
		if (r[i].xact < g->s.xact_lo || r[i].xact >= g->s.xact_hi) {
			snprintf(v->what, sizeof(v->what), "row %" PRId64 " was "
			    "inserted into segment %" PRId64 " (its transaction "
			    "is outside the segment's range)", r[i].id,
			    g->s.seq);
			free(r);
			return 1;
		}
	}
	ret = verify_seg(v, g, r, n);
	free(r);
	return ret;
}

/* Verify an export: 0 intact, 1 not, -1 failed (reported). */
static int
verify_file(struct verify *v, FILE *fp, const char *path)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	json_t *o = NULL, *x, *rows = json_array();
	json_error_t je;
	struct vseg g;
	int64_t lineno = 0, seq, hi, want_segs = -1, want_rows = -1;
	unsigned char hash[CRYPTO_HASH_LEN];
	int ret = -1, have = 0, ended = 0;

	memset(&g, 0, sizeof(g));
	while ((len = getline(&line, &cap, fp)) != -1) {
		lineno++;
		json_decref(o);
		if ((o = json_loadb(line, (size_t)len, 0, &je)) == NULL ||
		    !json_is_object(o)) {
			snprintf(v->what, sizeof(v->what), "%s:%" PRId64 ": not "
			    "a JSON object: %s", path, lineno,
			    o == NULL ? je.text : "another value");
			ret = 1;
			goto out;
		}
		if (lineno == 1) {
			x = json_object_get(o, "anchor");
			if (!json_is_object(o) || jstr(o, "format") == NULL ||
			    strcmp(jstr(o, "format"), EXPORT_FORMAT) != 0 ||
			    !json_is_object(x) || jint(x, "seq", &seq) == -1 ||
			    jint(x, "xact_hi", &hi) == -1 ||
			    hex_bytes(jstr(x, "hash"), hash, sizeof(hash)) ==
			    -1) {
				snprintf(v->what, sizeof(v->what), "%s:1: not an "
				    "audit export's header", path);
				ret = 1;
				goto out;
			}
			v->next_seq = seq + 1;
			v->next_lo = hi;
			memcpy(v->prev, hash, sizeof(hash));
			continue;
		}
		if (ended) {
			snprintf(v->what, sizeof(v->what), "%s:%" PRId64 ": a "
			    "line after the end", path, lineno);
			ret = 1;
			goto out;
		}
		if ((x = json_object_get(o, "row")) != NULL) {
			if (!have) {
				snprintf(v->what, sizeof(v->what), "%s:%" PRId64
				    ": a row before any segment", path, lineno);
				ret = 1;
				goto out;
			}
			json_array_append(rows, o);
			continue;
		}
		/* A segment or the end: the segment before is complete. */
		if (have) {
			if ((ret = file_check(v, &g, rows)) != 0)
				goto out;
			ret = -1;
			vseg_free(&g);
			have = 0;
			json_array_clear(rows);
		}
		if ((x = json_object_get(o, "segment")) != NULL) {
			if (file_seg(x, &g) == -1) {
				snprintf(v->what, sizeof(v->what), "%s:%" PRId64
				    ": a malformed segment", path, lineno);
				ret = 1;
				goto out;
			}
			have = 1;
		} else if ((x = json_object_get(o, "end")) != NULL &&
		    jint(x, "segments", &want_segs) == 0 &&
		    jint(x, "rows", &want_rows) == 0) {
			ended = 1;
		} else {
			snprintf(v->what, sizeof(v->what), "%s:%" PRId64 ": "
			    "neither a segment, a row nor the end", path, lineno);
			ret = 1;
			goto out;
		}
	}
	if (ferror(fp)) {
		cli_error("cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (lineno == 0 || !ended || want_segs != v->nsegs ||
	    want_rows != v->nrows) {
		snprintf(v->what, sizeof(v->what), "%s: %s", path,
		    lineno == 0 ? "empty" : !ended ? "truncated (no end line)" :
		    "its end line does not count what it holds (truncated?)");
		ret = 1;
		goto out;
	}
	ret = 0;
out:
	vseg_free(&g);
	json_decref(o);
	json_decref(rows);
	free(line);
	return ret;
}

/* ---- export and prune ------------------------------------------------- */

struct export {
	FILE *fp;
	int64_t before_us;
	int64_t seq_lo, seq_hi, nsegs, nrows;
};

static int
export_seg(void *arg, const struct vseg *g, const struct auditchain_row *rows,
    size_t n)
{
	struct export *e = arg;
	size_t i;

	if (g->s.last_at >= e->before_us)
		return 1; /* this one and those after stay */
	if (put_line(e->fp, seg_json(g)) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (put_line(e->fp, row_json(&rows[i])) == -1)
			return -1;
	if (e->nsegs++ == 0)
		e->seq_lo = g->s.seq;
	e->seq_hi = g->s.seq;
	e->nrows += (int64_t)n;
	return 0;
}

/* DATE as microseconds since 1970 (PostgreSQL reads it): 0, or -1. */
static int
date_us(PGconn *db, const char *date, int64_t *out)
{
	const char *p[1] = {date};
	PGresult *res = PQexecParams(db, "SELECT (extract(epoch FROM "
	    "$1::timestamptz) * 1000000)::bigint", 1, NULL, p, NULL, NULL, 0);
	int ret = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK &&
	    auditchain_int(PQgetvalue(res, 0, 0), out) == 0)
		ret = 0;
	else {
		cli_error("\"%s\" is not a date", date);
		cli_detail_lines(PQresultErrorMessage(res));
		cli_hint("give an ISO date, e.g. 2026-01-31 or "
			 "'2026-01-31 12:00:00+00'");
	}
	PQclear(res);
	return ret;
}

static int
tx(PGconn *db, const char *sql)
{
	PGresult *res = PQexec(db, sql);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK;

	if (!ok)
		pg_fail(db, res, "the database refused a statement");
	PQclear(res);
	return ok ? 0 : -1;
}

/* The exported file's SHA-256 (lower-case hex), read back from fd. */
static int
file_sha256(int fd, char out[2 * CRYPTO_HASH_LEN + 1])
{
	unsigned char buf[65536], md[CRYPTO_HASH_LEN];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	ssize_t n = 0;
	off_t off = 0;
	int ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL);

	while (ok && (n = pread(fd, buf, sizeof(buf), off)) > 0) {
		ok = EVP_DigestUpdate(c, buf, (size_t)n);
		off += n;
	}
	ok = ok && n == 0 && EVP_DigestFinal_ex(c, md, NULL);
	EVP_MD_CTX_free(c);
	if (ok)
		hex_encode(md, sizeof(md), out, 0);
	return ok ? 0 : -1;
}

static int
do_export(PGconn *db, struct verify *v, const char *before,
    const char *output, int fd)
{
	struct export e;
	char sum[2 * CRYPTO_HASH_LEN + 1], a[24], b[24];
	const char *p[4] = {a, b, sum, output};
	PGresult *res = NULL;
	json_t *hdr;
	int64_t pending = 0, aseq, ahi;
	int r, ret = 1;

	memset(&e, 0, sizeof(e));
	if (date_us(db, before, &e.before_us) == -1)
		return 1;
	if (tx(db, "BEGIN ISOLATION LEVEL REPEATABLE READ") == -1)
		return 1;
	/* The header: where the walk starts (the last prune's anchor). */
	if ((res = q(db, "SELECT coalesce(max(seq), 0), coalesce((SELECT "
	    "xact_hi FROM audit_anchor ORDER BY seq DESC LIMIT 1), 0), "
	    "coalesce((SELECT encode(hash, 'hex') FROM audit_anchor ORDER BY "
	    "seq DESC LIMIT 1), repeat('0', 64)) FROM audit_anchor", 0, NULL,
	    PGRES_TUPLES_OK)) == NULL ||
	    auditchain_int(PQgetvalue(res, 0, 0), &aseq) == -1 ||
	    auditchain_int(PQgetvalue(res, 0, 1), &ahi) == -1)
		goto out;
	if ((e.fp = fdopen(dup(fd), "w")) == NULL) {
		cli_error("cannot write %s: %s", output, strerror(errno));
		goto out;
	}
	hdr = json_pack("{s:s,s:i,s:s,s:{s:I,s:I,s:s}}", "format",
	    EXPORT_FORMAT, "version", 1, "before", before, "anchor", "seq",
	    (json_int_t)aseq, "xact_hi", (json_int_t)ahi, "hash",
	    PQgetvalue(res, 0, 2));
	if (put_line(e.fp, hdr) == -1)
		goto werr;
	/* Every segment written was verified first. */
	if ((r = walk_db(db, v, export_seg, &e, &pending)) != 0) {
		if (r == 1) {
			cli_error("the audit chain does not verify: %s",
			    v->what);
			cli_hint("nothing was exported; keep the evidence");
		}
		goto out;
	}
	if (e.nsegs == 0) {
		cli_error("no sealed segment has all its rows before %s",
		    before);
		cli_hint("rows are sealed every AUDIT_CHAIN_INTERVAL seconds by "
			 "the running active server");
		goto out;
	}
	if (put_line(e.fp, json_pack("{s:{s:I,s:I}}", "end", "segments",
	    (json_int_t)e.nsegs, "rows", (json_int_t)e.nrows)) == -1 ||
	    fflush(e.fp) != 0 || fsync(fileno(e.fp)) != 0)
		goto werr;
	r = fclose(e.fp);
	e.fp = NULL;
	if (r != 0)
		goto werr;
	if (file_sha256(fd, sum) == -1) {
		cli_error("cannot read back %s: %s", output, strerror(errno));
		goto out;
	}
	snprintf(a, sizeof(a), "%" PRId64, e.seq_lo);
	snprintf(b, sizeof(b), "%" PRId64, e.seq_hi);
	PQclear(res);
	if ((res = q(db, "INSERT INTO audit_exports (seq_lo, seq_hi, sha256, "
	    "path) VALUES ($1::bigint, $2::bigint, $3, $4)", 4, p,
	    PGRES_COMMAND_OK)) == NULL || tx(db, "COMMIT") == -1) {
		cli_hint("the file is written but not recorded: "
			 "--prune-before will not remove its rows");
		goto out;
	}
	printf("exported segments %" PRId64 "..%" PRId64 " (%" PRId64 " rows) "
	    "to %s\nsha256 %s\n", e.seq_lo, e.seq_hi, e.nrows, output, sum);
	ret = 0;
	goto out;
werr:
	cli_error("cannot write %s: %s", output, strerror(errno));
out:
	PQclear(res);
	if (e.fp != NULL)
		fclose(e.fp);

	if (PQtransactionStatus(db) != PQTRANS_IDLE)
		tx(db, "ROLLBACK");
	return ret;
}

static int
do_prune(PGconn *db, struct verify *v, const char *before)
{
	char a[24], c[24];
	const char *p[1] = {a}, *pp[2] = {a, c};
	PGresult *res = NULL;
	int64_t before_us, last, pending, hi, pruned;
	int ret = 1, r;

	if (date_us(db, before, &before_us) == -1)
		return 1;
	/* Waits for the chainer's tick; holds it off until done. */
	if (tx(db, "BEGIN") == -1 ||
	    tx(db, "SELECT pg_advisory_xact_lock(" AUDITCHAIN_LOCK ")") == -1)
		goto out;
	if ((r = walk_db(db, v, NULL, NULL, &pending)) != 0) {
		if (r == 1) {
			cli_error("the audit chain does not verify: %s",
			    v->what);
			cli_hint("nothing was pruned: keep the evidence");
		}
		goto out;
	}
	/*
	 * The last segment that may go: every one up to it exported and
	 * with all its rows before the date.
	 */
	snprintf(a, sizeof(a), "%" PRId64, before_us);
	if ((res = q(db, "SELECT coalesce((SELECT min(seq) FROM audit_chain "
	    "WHERE last_at >= 'epoch'::timestamptz + $1::bigint * "
	    "interval '1 microsecond' OR seq > (SELECT coalesce(max(seq_hi), "
	    "0) FROM audit_exports)), (SELECT coalesce(max(seq), 0) + 1 FROM "
	    "audit_chain)) - 1", 1, p, PGRES_TUPLES_OK)) == NULL ||
	    auditchain_int(PQgetvalue(res, 0, 0), &last) == -1)
		goto out;
	PQclear(res);
	res = NULL;
	snprintf(a, sizeof(a), "%" PRId64, last);
	if ((res = q(db, "SELECT xact_hi FROM audit_chain WHERE seq = "
	    "$1::bigint", 1, p, PGRES_TUPLES_OK)) == NULL)
		goto out;
	if (PQntuples(res) == 0) {
		cli_error("nothing to prune before %s", before);
		cli_hint("only segments already exported ('ktadmin audit "
			 "--export --before DATE --output FILE') are pruned");
		goto out;
	}
	if (auditchain_int(PQgetvalue(res, 0, 0), &hi) == -1)
		goto out;
	PQclear(res);
	res = NULL;
	/* The append-only triggers do not fire for this transaction only. */
	if (tx(db, "SET LOCAL session_replication_role = replica") == -1)
		goto out;
	snprintf(a, sizeof(a), "%" PRId64, hi);
	if ((res = q(db, "WITH d AS (DELETE FROM audit_log WHERE xact < "
	    "$1::bigint RETURNING 1) SELECT count(*) FROM d", 1, p,
	    PGRES_TUPLES_OK)) == NULL ||
	    auditchain_int(PQgetvalue(res, 0, 0), &pruned) == -1)
		goto out;
	PQclear(res);
	res = NULL;
	/* The last segment pruned stays as the anchor, MAC and all. */
	snprintf(a, sizeof(a), "%" PRId64, last);
	snprintf(c, sizeof(c), "%" PRId64, pruned);
	if ((res = q(db, "WITH d AS (DELETE FROM audit_chain WHERE seq <= "
	    "$1::bigint RETURNING seq, xact_hi, nrows, hash, mac) "
	    "INSERT INTO audit_anchor (seq, xact_hi, nrows, hash, mac, "
	    "pruned_rows) SELECT seq, xact_hi, nrows, hash, mac, $2::bigint "
	    "FROM d WHERE seq = $1::bigint", 2, pp, PGRES_COMMAND_OK)) == NULL)
		goto out;
	if (tx(db, "COMMIT") == -1)
		goto out;
	printf("pruned segments up to %" PRId64 " (%" PRId64 " rows); the "
	    "chain now starts from that anchor\n", last, pruned);
	ret = 0;
out:
	PQclear(res);
	if (PQtransactionStatus(db) != PQTRANS_IDLE)
		tx(db, "ROLLBACK");
	return ret;
}

/* ---- the command ------------------------------------------------------ */

void
audit_chain_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ktadmin audit --verify [--confdir DIR]\n"
	    "       ktadmin audit --verify --file FILE [--confdir DIR]\n"
	    "       ktadmin audit --export --before DATE --output FILE "
	    "[--confdir DIR]\n"
	    "       ktadmin audit --prune-before DATE [--confdir DIR]\n\n"
	    "Check and keep the audit log's hash chain (docs/audit.md).\n\n"
	    "      --verify           walk the chain; report the first row "
	    "changed,\n"
	    "                         removed or inserted, exit 1; 0 when "
	    "intact\n"
	    "      --file FILE        verify an export file instead of the "
	    "database\n"
	    "      --export           write the sealed segments whose rows "
	    "are all\n"
	    "                         before --before DATE to --output FILE\n"
	    "      --prune-before DATE  remove the rows of exported segments "
	    "before DATE\n"
	    "  -c, --confdir DIR      config dir (default $KEYTRUSTEE_HOME/"
	    ".keytrustee,\n"
	    "                         KEYTRUSTEE_HOME defaults to %s)\n"
	    "  -h, --help             show this help\n",
	    KT_DEFAULT_HOME);
}

enum chain_action { CH_NONE, CH_VERIFY, CH_EXPORT, CH_PRUNE };

int
audit_chain_main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"verify", no_argument, NULL, 'V'},
	    {"export", no_argument, NULL, 'E'},
	    {"prune-before", required_argument, NULL, 'P'},
	    {"before", required_argument, NULL, 'b'},
	    {"output", required_argument, NULL, 'o'},
	    {"file", required_argument, NULL, 'f'},
	    {"confdir", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	enum chain_action action = CH_NONE;
	const char *confdir = NULL, *before = NULL, *output = NULL;
	const char *file = NULL, *prune = NULL;
	char err[1024], date[32];
	struct timespec now;
	struct kt_conf *c = NULL;
	struct verify v;
	unsigned char dk[CRYPTO_KEY_LEN];
	PGconn *db = NULL;
	uid_t owner;
	int64_t pending = 0;
	FILE *in = NULL;
	int ch, r, outfd = -1, ret = 1;

	memset(&v, 0, sizeof(v));
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'V':
		case 'E':
		case 'P':
			if (action != CH_NONE) {
				cli_error("give one of --verify, --export and "
				    "--prune-before");
				return ktadmin_bad_usage("audit");
			}
			action = ch == 'V' ? CH_VERIFY : ch == 'E' ? CH_EXPORT :
			    CH_PRUNE;
			if (ch == 'P')
				prune = optarg;
			break;
		case 'b':
			before = optarg;
			break;
		case 'o':
			output = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'c':
			confdir = optarg;
			break;
		case 'h':
			audit_chain_usage(stdout);
			return 0;
		default:
			return cli_opt_error("ktadmin", "audit", ch, argv);
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		return ktadmin_bad_usage("audit");
	}
	if (action == CH_NONE) {
		cli_error("audit: give --verify, --export or --prune-before");
		return ktadmin_bad_usage("audit");
	}
	if (file != NULL && action != CH_VERIFY) {
		cli_error("--file goes with --verify");
		return ktadmin_bad_usage("audit");
	}
	if ((before != NULL || output != NULL) && action != CH_EXPORT) {
		cli_error("--before and --output go with --export");
		return ktadmin_bad_usage("audit");
	}
	if (action == CH_EXPORT && (before == NULL || output == NULL)) {
		cli_error("--export needs --before DATE and --output FILE");
		return ktadmin_bad_usage("audit");
	}
	/* The dates as the queries take them, checked before anything. */
	clock_gettime(CLOCK_REALTIME, &now);
	if (action == CH_EXPORT || action == CH_PRUNE) {
		if (audit_time_parse(action == CH_EXPORT ? before : prune, &now,
			date) == -1) {
			cli_error("%s: \"%s\" is not a date",
			    action == CH_EXPORT ? "--before" : "--prune-before",
			    action == CH_EXPORT ? before : prune);
			cli_hint("give an ISO-8601 date or time (2026-01-31, "
				 "2026-01-31T12:00:00Z) or a time ago (30d)");
			return 2;
		}
		if (action == CH_EXPORT)
			before = date;
		else
			prune = date;
	}
	if (pgcluster_conf_load(confdir, &c) == -1)
		goto out;
	confdir = c->confdir;
	/*
	 * The files are the caller's: opened before switching to the owner
	 * of the config dir (an export is made 0600, for the caller).
	 */
	if (file != NULL && (in = fopen(file, "re")) == NULL) {
		cli_error("cannot open %s: %s", file, strerror(errno));
		goto out;
	}
	/* Never over an earlier export: it may be the only copy of rows. */
	if (output != NULL && (outfd = open(output, O_RDWR | O_CREAT |
	    O_EXCL | O_CLOEXEC, 0600)) == -1) {
		cli_error("cannot write %s: %s", output, strerror(errno));
		if (errno == EEXIST)
			cli_hint("an export is never overwritten: give a new "
				 "file name");
		goto out;
	}
	/* The data key is decrypted as the server does: as its owner. */
	if (become_owner_of(confdir, &owner) == -1) {
		cli_error("cannot switch to the owner of %s: %s", confdir,
		    strerror(errno));
		goto out;
	}
	if (pgp_init() == -1) {
		cli_error("GnuPG is not usable through GPGME");
		goto out;
	}
	r = datakey_load(confdir, dk, err, sizeof(err));
	pgp_kill_agent(confdir);
	if (r != 0) {
		cli_error("cannot read the data key, from which the audit key "
		    "is derived");
		cli_detail_lines(r == 1 ? "no " DATAKEY_FILE " in the config dir"
		    : err);
		goto out;
	}
	r = auditchain_key(dk, v.key);
	OPENSSL_cleanse(dk, sizeof(dk));
	if (r == -1) {
		cli_error("cannot derive the audit key");
		goto out;
	}
	if (file != NULL) {
		if ((r = verify_file(&v, in, file)) == 1) {
			cli_error("the export %s does not verify: %s", file,
			    v.what);
		} else if (r == 0) {
			printf("%s: intact: %" PRId64 " segments, %" PRId64
			    " rows, from anchor segment %" PRId64 "\n", file,
			    v.nsegs, v.nrows, v.next_seq - v.nsegs - 1);
			ret = 0;
		}
		goto out;
	}
	if ((db = pgcluster_conf_admin_db(c, "audit")) == NULL)
		goto out;
	if (db_schema_version(db) < 12) {
		cli_error("the database has no audit chain yet (schema older "
			  "than 12)");
		cli_hint("start the server once to migrate it");
		goto out;
	}
	if (action == CH_EXPORT) {
		ret = do_export(db, &v, before, output, outfd);
		goto out;
	}
	if (action == CH_PRUNE) {
		ret = do_prune(db, &v, prune);
		goto out;
	}
	if (tx(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") == -1)
		goto out;
	r = walk_db(db, &v, NULL, NULL, &pending);
	tx(db, "ROLLBACK");
	if (r == 1) {
		cli_error("the audit chain does not verify: %s", v.what);
		cli_detail("%" PRId64 " segments (%" PRId64 " rows) verified "
		    "before it", v.nsegs, v.nrows);
	} else if (r == 0) {
		printf("audit chain intact: %" PRId64 " segments, %" PRId64
		    " rows sealed (up to segment %" PRId64 "); %" PRId64
		    " rows not sealed yet\n", v.nsegs, v.nrows, v.next_seq - 1,
		    pending);
		ret = 0;
	}
out:
	if (in != NULL)
		fclose(in);
	if (outfd != -1) {
		/* A failed export leaves no file (this run made it). */
		if (ret != 0 && ftruncate(outfd, 0) == 0)
			unlink(output);
		close(outfd);
	}
	OPENSSL_cleanse(&v, sizeof(v));
	PQfinish(db);
	conf_free(c);
	return ret;
}
