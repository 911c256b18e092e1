/*
 * auditchain.h - the audit chain's definitions (docs/audit.md), the one
 * place the server's chainer and ktadmin audit --verify take them from:
 * a row's canonical encoding and digest, a segment's hash, the MAC the
 * key process puts on a segment, and the audit key it derives.
 *
 * A row's canonical encoding: "KTA1", then each column in this order,
 * an integer as 8 bytes big-endian, a text as its 4-byte big-endian
 * length and its bytes, NULL as the length 0xffffffff (so NULL and ""
 * differ): id, xact, at (microseconds since 1970-01-01 UTC), actor, org,
 * action, object, remote_addr, result, count.
 *
 * A segment's hash: SHA-256("KTS1" || prev || digest(row)... || seq ||
 * xact_lo || xact_hi || nrows || first_at || last_at), the integers as 8
 * bytes big-endian, the rows in chain order (xact, id).  Its MAC:
 * HMAC-SHA256(audit key, "KTM1" || seq || xact_hi || nrows || hash).
 */
#ifndef KT_AUDITCHAIN_H
#define KT_AUDITCHAIN_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

/* Bytes of a row's digest a segment keeps, to name the row that differs. */
#define AUDITCHAIN_DIG_LEN 8
/* The MAC's message: seq, xact_hi, nrows, hash. */
#define AUDITCHAIN_MAC_MSG_LEN (3 * 8 + CRYPTO_HASH_LEN)
/* HKDF-SHA256's info for the audit key (the data key is its input). */
#define AUDITCHAIN_KEY_LABEL "keytrustee audit chain v1"

/*
 * Session advisory lock ("ktchain") the server's chainer holds while it
 * seals and ktadmin audit --prune-before while it prunes.
 */
#define AUDITCHAIN_LOCK "7742940530147159394"

/*
 * The columns of audit_log a row is read with, in the order
 * auditchain_row_get takes them (at as integer microseconds).
 */
#define AUDITCHAIN_ROW_COLUMNS                                               \
	"id, xact, (extract(epoch FROM at) * 1000000)::bigint, actor, org, " \
	"action, object, remote_addr, result, count"
/* A timestamptz of microseconds since 1970 given as the text of $N. */
#define AUDITCHAIN_AT(n) "('epoch'::timestamptz + $" #n "::bigint * "       \
	"interval '1 microsecond')"

struct auditchain_row {
	int64_t id;
	int64_t xact;
	int64_t at_us;
	const char *actor; /* NULL: SQL NULL (not "") */
	const char *org;
	const char *action;
	const char *object;
	const char *remote_addr;
	const char *result;
	int64_t count;
};

/* A segment's header: everything its hash covers but the rows. */
struct auditchain_seg {
	int64_t seq;
	int64_t xact_lo; /* its rows: xact_lo <= xact < xact_hi */
	int64_t xact_hi;
	int64_t nrows;
	int64_t first_at; /* microseconds; 0 without rows */
	int64_t last_at;
	unsigned char prev[CRYPTO_HASH_LEN];
};

/*
 * The canonical encoding of r into out (cap bytes).  Returns its length
 * (which may exceed cap: then out holds nothing useful; call again with
 * that much room).
 */
size_t auditchain_encode(const struct auditchain_row *r, unsigned char *out,
    size_t cap);
/*
 * Row i of res, read with AUDITCHAIN_ROW_COLUMNS from column col on, into
 * r (whose texts point into res).  0, or -1 when a value is malformed.
 */
int auditchain_row_get(const PGresult *res, int i, int col,
    struct auditchain_row *r);
/* A decimal int64 ("-12"); 0, or -1 when s is not one. */
int auditchain_int(const char *s, int64_t *out);
/* SHA-256 of the canonical encoding.  0, or -1. */
int auditchain_row_digest(const struct auditchain_row *r,
    unsigned char out[CRYPTO_HASH_LEN]);

/* A segment's hash, computed as its rows come (opaque). */
struct auditchain_hash;
struct auditchain_hash *auditchain_hash_new(
    const unsigned char prev[CRYPTO_HASH_LEN]);
int auditchain_hash_row(struct auditchain_hash *h,
    const unsigned char digest[CRYPTO_HASH_LEN]);
/* Ends h (freed, also on failure) with the header s.  0, or -1. */
int auditchain_hash_end(struct auditchain_hash *h,
    const struct auditchain_seg *s, unsigned char out[CRYPTO_HASH_LEN]);
void auditchain_hash_free(struct auditchain_hash *h);

/* The message the key process MACs, from a segment's values. */
void auditchain_mac_msg(int64_t seq, int64_t xact_hi, int64_t nrows,
    const unsigned char hash[CRYPTO_HASH_LEN],
    unsigned char msg[AUDITCHAIN_MAC_MSG_LEN]);
/* HMAC-SHA256(key, "KTM1" || msg).  0, or -1. */
int auditchain_mac(const unsigned char key[CRYPTO_KEY_LEN],
    const unsigned char msg[AUDITCHAIN_MAC_MSG_LEN],
    unsigned char out[CRYPTO_MAC_LEN]);
/* The audit key: HKDF-SHA256(data key, info AUDITCHAIN_KEY_LABEL). */
int auditchain_key(const unsigned char datakey[CRYPTO_KEY_LEN],
    unsigned char out[CRYPTO_KEY_LEN]);

#endif
