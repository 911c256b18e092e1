/* test_auditchain.c - unit tests for src/common/auditchain.{h,c}. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auditchain.h"
#include "crypto.h"

static struct auditchain_row
sample(void)
{
	struct auditchain_row r = {
		.id = 258, .xact = 0x0102030405060708LL, .at_us = -1,
		.actor = "ab", .org = NULL, .action = "", .object = "x",
		.remote_addr = NULL, .result = "ok", .count = 7,
	};
	return r;
}

/* The documented layout, byte for byte. */
static void
test_encode_layout(void **state)
{
	static const unsigned char want[] = {
		'K', 'T', 'A', '1',
		0, 0, 0, 0, 0, 0, 1, 2,			/* id 258 */
		1, 2, 3, 4, 5, 6, 7, 8,			/* xact */
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* at -1 */
		0, 0, 0, 2, 'a', 'b',			/* actor */
		0xff, 0xff, 0xff, 0xff,			/* org NULL */
		0, 0, 0, 0,				/* action "" */
		0, 0, 0, 1, 'x',			/* object */
		0xff, 0xff, 0xff, 0xff,			/* remote NULL */
		0, 0, 0, 2, 'o', 'k',			/* result */
		0, 0, 0, 0, 0, 0, 0, 7,			/* count */
	};
	struct auditchain_row r = sample();
	unsigned char buf[256];
	size_t n;

	(void)state;
	n = auditchain_encode(&r, buf, sizeof(buf));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	/* too little room: the length, and nothing written past cap */
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(auditchain_encode(&r, buf, 10), sizeof(want));
	assert_int_equal(buf[10], 0xaa);
}

static void
digest_of(const struct auditchain_row *r, unsigned char d[CRYPTO_HASH_LEN])
{
	assert_int_equal(auditchain_row_digest(r, d), 0);
}

/* NULL and "" differ, in every text column; so does every other change. */
static void
test_null_is_not_empty(void **state)
{
	const char **cols[6];
	struct auditchain_row r = sample(), s;
	unsigned char a[CRYPTO_HASH_LEN], b[CRYPTO_HASH_LEN];
	int i;

	(void)state;
	digest_of(&r, a);
	for (i = 0; i < 6; i++) {
		s = r;
		cols[0] = &s.actor;
		cols[1] = &s.org;
		cols[2] = &s.action;
		cols[3] = &s.object;
		cols[4] = &s.remote_addr;
		cols[5] = &s.result;
		*cols[i] = *cols[i] == NULL ? "" : NULL;
		digest_of(&s, b);
		assert_memory_not_equal(a, b, sizeof(a));
	}
	s = r;
	s.count = 1;
	digest_of(&s, b);
	assert_memory_not_equal(a, b, sizeof(a));
	s = r;
	s.xact++;
	digest_of(&s, b);
	assert_memory_not_equal(a, b, sizeof(a));
	s = r;
	s.at_us = 0;
	digest_of(&s, b);
	assert_memory_not_equal(a, b, sizeof(a));
	/* moving bytes between fields changes the digest (length prefixes) */
	s = r;
	s.actor = "a";
	s.action = "b";
	digest_of(&s, b);
	assert_memory_not_equal(a, b, sizeof(a));
}

/* A row longer than the stack buffer digests as its encoding does. */
static void
test_long_row(void **state)
{
	struct auditchain_row r = sample();
	unsigned char d[CRYPTO_HASH_LEN], e[CRYPTO_HASH_LEN], *buf;
	char *big = malloc(5000);
	size_t n;

	(void)state;
	assert_non_null(big);
	memset(big, 'y', 4999);
	big[4999] = '\0';
	r.object = big;
	n = auditchain_encode(&r, NULL, 0);
	assert_true(n > 5000);
	buf = malloc(n);
	assert_non_null(buf);
	assert_int_equal(auditchain_encode(&r, buf, n), n);
	assert_int_equal(crypto_sha256(buf, n, e), 0);
	digest_of(&r, d);
	assert_memory_equal(d, e, sizeof(d));
	free(buf);
	free(big);
}

/* The segment hash: "KTS1" || prev || digests || header, big-endian. */
static void
test_segment_hash(void **state)
{
	struct auditchain_seg s = {
		.seq = 3, .xact_lo = 10, .xact_hi = 20, .nrows = 2,
		.first_at = 100, .last_at = 200,
	};
	unsigned char d1[CRYPTO_HASH_LEN], d2[CRYPTO_HASH_LEN];
	unsigned char got[CRYPTO_HASH_LEN], want[CRYPTO_HASH_LEN];
	unsigned char buf[4 + 3 * CRYPTO_HASH_LEN + 48];
	struct auditchain_row r = sample();
	struct auditchain_hash *h;
	size_t off = 0;
	int i;

	(void)state;
	memset(s.prev, 0x5a, sizeof(s.prev));
	digest_of(&r, d1);
	r.id++;
	digest_of(&r, d2);
	h = auditchain_hash_new(s.prev);
	assert_non_null(h);
	assert_int_equal(auditchain_hash_row(h, d1), 0);
	assert_int_equal(auditchain_hash_row(h, d2), 0);
	assert_int_equal(auditchain_hash_end(h, &s, got), 0);

	memcpy(buf, "KTS1", 4);
	off = 4;
	memcpy(buf + off, s.prev, 32);
	off += 32;
	memcpy(buf + off, d1, 32);
	off += 32;
	memcpy(buf + off, d2, 32);
	off += 32;
	{
		int64_t v[6] = { 3, 10, 20, 2, 100, 200 };

		for (i = 0; i < 6; i++) {
			memset(buf + off, 0, 7);
			buf[off + 7] = (unsigned char)v[i];
			off += 8;
		}
	}
	assert_int_equal(off, sizeof(buf));
	assert_int_equal(crypto_sha256(buf, off, want), 0);
	assert_memory_equal(got, want, sizeof(got));
	/* another prev, another hash */
	s.prev[0] ^= 1;
	h = auditchain_hash_new(s.prev);
	assert_int_equal(auditchain_hash_row(h, d1), 0);
	assert_int_equal(auditchain_hash_row(h, d2), 0);
	assert_int_equal(auditchain_hash_end(h, &s, want), 0);
	assert_memory_not_equal(got, want, sizeof(got));
	auditchain_hash_free(NULL);
}

/* The audit key is HKDF-SHA256 (RFC 5869, no salt) of the data key. */
static void
test_key_and_mac(void **state)
{
	unsigned char dk[CRYPTO_KEY_LEN], key[CRYPTO_KEY_LEN];
	unsigned char zero[32] = {0}, prk[32], okm[32], info[64];
	unsigned char hash[CRYPTO_HASH_LEN], msg[AUDITCHAIN_MAC_MSG_LEN];
	unsigned char mac[CRYPTO_MAC_LEN], want[CRYPTO_MAC_LEN];
	unsigned char in[4 + AUDITCHAIN_MAC_MSG_LEN];
	size_t n = strlen(AUDITCHAIN_KEY_LABEL);
	int i;

	(void)state;
	for (i = 0; i < CRYPTO_KEY_LEN; i++)
		dk[i] = (unsigned char)i;
	assert_int_equal(auditchain_key(dk, key), 0);
	assert_int_equal(crypto_hmac_sha256(zero, 32, dk, 32, prk), 0);
	memcpy(info, AUDITCHAIN_KEY_LABEL, n);
	info[n] = 1;
	assert_int_equal(crypto_hmac_sha256(prk, 32, info, n + 1, okm), 0);
	assert_memory_equal(key, okm, 32);
	assert_memory_not_equal(key, dk, 32);

	memset(hash, 0x11, sizeof(hash));
	auditchain_mac_msg(1, 2, 3, hash, msg);
	assert_int_equal(msg[7], 1);
	assert_int_equal(msg[15], 2);
	assert_int_equal(msg[23], 3);
	assert_memory_equal(msg + 24, hash, sizeof(hash));
	assert_int_equal(auditchain_mac(key, msg, mac), 0);
	memcpy(in, "KTM1", 4);
	memcpy(in + 4, msg, sizeof(msg));
	assert_int_equal(crypto_hmac_sha256(key, 32, in, sizeof(in), want), 0);
	assert_memory_equal(mac, want, sizeof(mac));
}

static void
test_int(void **state)
{
	int64_t v = 0;

	(void)state;
	assert_int_equal(auditchain_int("-12", &v), 0);
	assert_int_equal(v, -12);
	assert_int_equal(auditchain_int("9223372036854775807", &v), 0);
	assert_int_equal(v, INT64_MAX);
	assert_int_equal(auditchain_int("9223372036854775808", &v), -1);
	assert_int_equal(auditchain_int("", &v), -1);
	assert_int_equal(auditchain_int("1x", &v), -1);
	assert_int_equal(auditchain_int(NULL, &v), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_layout),
		cmocka_unit_test(test_null_is_not_empty),
		cmocka_unit_test(test_long_row),
		cmocka_unit_test(test_segment_hash),
		cmocka_unit_test(test_key_and_mac),
		cmocka_unit_test(test_int),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
