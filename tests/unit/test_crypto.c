/* test_crypto.c - unit tests for src/common/crypto.{h,c}. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "util.h"

static const unsigned char key1[CRYPTO_KEY_LEN] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};
static const char pt1[] = "a deposit's plaintext, 41 bytes long.....";
static const char aad1[] = "0123456789ABCDEF0123456789ABCDEF01234567";

/* Lower-case hex of len bytes into out (2 * len + 1). */
static void
to_hex(const unsigned char *in, size_t len, char *out)
{
	size_t i;

	for (i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
	out[2 * len] = '\0';
}

struct sealed {
	unsigned char nonce[CRYPTO_NONCE_LEN];
	unsigned char ct[sizeof(pt1) - 1 + CRYPTO_TAG_LEN];
	unsigned char out[sizeof(pt1) - 1];
};

static void
seal1(struct sealed *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(crypto_seal(key1, aad1, strlen(aad1), pt1,
	    strlen(pt1), s->nonce, s->ct), 0);
}

static void
test_gcm_round_trip(void **state)
{
	struct sealed s;

	(void)state;
	assert_int_equal(crypto_init(), 0);
	seal1(&s);
	/* Sealed: the plaintext does not appear in the ciphertext. */
	assert_memory_not_equal(s.ct, pt1, strlen(pt1));
	assert_int_equal(crypto_open(key1, aad1, strlen(aad1), s.nonce, s.ct,
	    sizeof(s.ct), s.out), 0);
	assert_memory_equal(s.out, pt1, strlen(pt1));
}

static void
test_gcm_round_trip_empty(void **state)
{
	unsigned char nonce[CRYPTO_NONCE_LEN], ct[CRYPTO_TAG_LEN], out[1];

	(void)state;
	assert_int_equal(crypto_seal(key1, NULL, 0, "", 0, nonce, ct), 0);
	assert_int_equal(crypto_open(key1, NULL, 0, nonce, ct, sizeof(ct),
	    out), 0);
	/* The empty plaintext is still authenticated. */
	ct[0] ^= 0x01;
	assert_int_equal(crypto_open(key1, NULL, 0, nonce, ct, sizeof(ct),
	    out), -1);
}

static void
test_gcm_fresh_nonce(void **state)
{
	struct sealed a, b;

	(void)state;
	seal1(&a);
	seal1(&b);
	assert_memory_not_equal(a.nonce, b.nonce, CRYPTO_NONCE_LEN);
	assert_memory_not_equal(a.ct, b.ct, sizeof(a.ct));
}

static void
test_gcm_flipped_ciphertext(void **state)
{
	struct sealed s;
	size_t i;

	(void)state;
	for (i = 0; i < strlen(pt1); i += 13) {
		seal1(&s);
		s.ct[i] ^= 0x80;
		memset(s.out, 0x5a, sizeof(s.out));
		assert_int_equal(crypto_open(key1, aad1, strlen(aad1),
		    s.nonce, s.ct, sizeof(s.ct), s.out), -1);
		/* What did not verify is cleared, not handed out. */
		assert_memory_not_equal(s.out, pt1, 8);
	}
}

static void
test_gcm_flipped_tag(void **state)
{
	struct sealed s;
	size_t i;

	(void)state;
	for (i = 0; i < CRYPTO_TAG_LEN; i++) {
		seal1(&s);
		s.ct[strlen(pt1) + i] ^= 0x01;
		assert_int_equal(crypto_open(key1, aad1, strlen(aad1),
		    s.nonce, s.ct, sizeof(s.ct), s.out), -1);
	}
}

static void
test_gcm_flipped_nonce(void **state)
{
	struct sealed s;

	(void)state;
	seal1(&s);
	s.nonce[0] ^= 0x01;
	assert_int_equal(crypto_open(key1, aad1, strlen(aad1), s.nonce, s.ct,
	    sizeof(s.ct), s.out), -1);
}

static void
test_gcm_wrong_aad(void **state)
{
	struct sealed s;
	char aad[sizeof(aad1)];

	(void)state;
	seal1(&s);
	memcpy(aad, aad1, sizeof(aad1));
	aad[39] = '8';
	assert_int_equal(crypto_open(key1, aad, strlen(aad), s.nonce, s.ct,
	    sizeof(s.ct), s.out), -1);
	/* Missing or shortened AAD fails too. */
	assert_int_equal(crypto_open(key1, NULL, 0, s.nonce, s.ct,
	    sizeof(s.ct), s.out), -1);
	assert_int_equal(crypto_open(key1, aad1, strlen(aad1) - 1, s.nonce,
	    s.ct, sizeof(s.ct), s.out), -1);
}

static void
test_gcm_wrong_key(void **state)
{
	struct sealed s;
	unsigned char key[CRYPTO_KEY_LEN];

	(void)state;
	seal1(&s);
	memcpy(key, key1, sizeof(key));
	key[31] ^= 0x01;
	assert_int_equal(crypto_open(key, aad1, strlen(aad1), s.nonce, s.ct,
	    sizeof(s.ct), s.out), -1);
}

static void
test_gcm_short_input(void **state)
{
	struct sealed s;

	(void)state;
	seal1(&s);
	/* Less than a tag, or a truncated ciphertext. */
	assert_int_equal(crypto_open(key1, aad1, strlen(aad1), s.nonce, s.ct,
	    CRYPTO_TAG_LEN - 1, s.out), -1);
	assert_int_equal(crypto_open(key1, aad1, strlen(aad1), s.nonce, s.ct,
	    sizeof(s.ct) - 1, s.out), -1);
}

/* RFC 4648 section 10. */
static const struct {
	const char *raw, *b64;
} b64_vectors[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

/*
 * Each thread reuses its contexts (crypto.c): keys and directions in turn,
 * a failed open in between, and another thread, give the same results as
 * fresh contexts would.
 */
static void *
gcm_mix(void *arg)
{
	static const unsigned char key2[CRYPTO_KEY_LEN] = {0x42};
	struct sealed a, b;
	int i, *failed = arg;

	for (i = 0; i < 50; i++) {
		seal1(&a);
		memset(&b, 0, sizeof(b));
		if (crypto_seal(key2, aad1, strlen(aad1), pt1, strlen(pt1),
			b.nonce, b.ct) != 0 ||
		    crypto_open(key2, aad1, strlen(aad1), a.nonce, a.ct,
			sizeof(a.ct), a.out) != -1 ||
		    crypto_open(key1, aad1, strlen(aad1), a.nonce, a.ct,
			sizeof(a.ct), a.out) != 0 ||
		    memcmp(a.out, pt1, strlen(pt1)) != 0 ||
		    crypto_open(key2, aad1, strlen(aad1), b.nonce, b.ct,
			sizeof(b.ct), b.out) != 0 ||
		    memcmp(b.out, pt1, strlen(pt1)) != 0)
			*failed = 1;
	}
	return NULL;
}

static void
test_gcm_reused_contexts(void **state)
{
	pthread_t th;
	int failed_here = 0, failed_there = 0;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, gcm_mix, &failed_there), 0);
	gcm_mix(&failed_here);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(failed_here, 0);
	assert_int_equal(failed_there, 0);
}

/* Every length 0..300 of random bytes encodes as OpenSSL's encoder does. */
static void
test_b64_encode_as_openssl(void **state)
{
	unsigned char in[300];
	char ours[404], theirs[404];
	size_t n;

	(void)state;
	assert_int_equal(crypto_random(in, sizeof(in)), 0);
	for (n = 0; n <= sizeof(in); n++) {
		int len = EVP_EncodeBlock((unsigned char *)theirs, in, (int)n);
		assert_int_equal(crypto_b64_encode_into(in, n, ours), (size_t)len);
		assert_memory_equal(ours, theirs, (size_t)len);
	}
}

static void
test_b64_encode_vectors(void **state)
{
	size_t i;
	char *s;

	(void)state;
	for (i = 0; i < sizeof(b64_vectors) / sizeof(b64_vectors[0]); i++) {
		s = crypto_b64_encode(b64_vectors[i].raw,
		    strlen(b64_vectors[i].raw));
		assert_non_null(s);
		assert_string_equal(s, b64_vectors[i].b64);
		free(s);
	}
}

static void
test_b64_decode_vectors(void **state)
{
	unsigned char *out;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(b64_vectors) / sizeof(b64_vectors[0]); i++) {
		const char *in = b64_vectors[i].b64;

		assert_int_equal(crypto_b64_decode(in, strlen(in), 64, &out,
		    &n), 0);
		assert_non_null(out);
		assert_int_equal(n, strlen(b64_vectors[i].raw));
		assert_memory_equal(out, b64_vectors[i].raw, n);
		assert_int_equal(out[n], '\0');
		free(out);
	}
}

static void
test_b64_binary_round_trip(void **state)
{
	unsigned char raw[256], *out;
	size_t i, len, n;
	char *s;

	(void)state;
	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(255 - i);
	for (len = 0; len <= sizeof(raw); len += 37) {
		s = crypto_b64_encode(raw, len);
		assert_non_null(s);
		assert_int_equal(strlen(s), (len + 2) / 3 * 4);
		assert_int_equal(crypto_b64_decode(s, strlen(s), len, &out,
		    &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(out, raw, len);
		free(out);
		free(s);
	}
	s = crypto_b64_encode("\xfb\xff", 2);
	assert_string_equal(s, "+/8=");
	free(s);
}

static void
test_b64_decode_strict(void **state)
{
	static const char *bad[] = {
		"Zg=",          /* truncated: not a multiple of 4 */
		"Zm9",
		"Z",
		"Zm9vY",
		"Zh==",         /* unused bits set */
		"Zm9=",
		"Zg",           /* padding missing */
		"Z===",         /* too much padding */
		"====",
		"Zg=a",         /* '=' not final */
		"Zm==Zm9v",     /* padding in the middle */
		"=Zm9",
		"Zm9v====",
		"Zm9v Zm9v",    /* whitespace anywhere */
		"Zm9v\nZm9v",
		" Zm9v",
		"Zm9v\n",
		"Zm9v\t",
		"Zm-v",         /* base64url alphabet, bad chars */
		"Zm_v",
		"Zm9!",
		"Zm.v",
		"Zm9\x80",
	};
	unsigned char *out = (unsigned char *)"sentinel";
	size_t i, n = 99;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (crypto_b64_decode(bad[i], strlen(bad[i]), 64, &out,
		    &n) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_null(out);
		assert_int_equal(n, 0);
	}
	/* An embedded NUL is not in the alphabet either. */
	assert_int_equal(crypto_b64_decode("Zm\0v", 4, 64, &out, &n), -1);
}

static void
test_b64_decode_maxout(void **state)
{
	unsigned char *out;
	size_t n;

	(void)state;
	assert_int_equal(crypto_b64_decode("Zm9vYmFy", 8, 5, &out, &n), -1);
	assert_null(out);
	assert_int_equal(crypto_b64_decode("Zm9vYmFy", 8, 6, &out, &n), 0);
	assert_int_equal(n, 6);
	free(out);
}

static void
test_hmac_rfc4231_case2(void **state)
{
	static const char data[] = "what do ya want for nothing?";
	unsigned char mac[CRYPTO_MAC_LEN];
	char hex[2 * CRYPTO_MAC_LEN + 1];

	(void)state;
	assert_int_equal(crypto_hmac_sha256("Jefe", 4, data, strlen(data),
	    mac), 0);
	to_hex(mac, sizeof(mac), hex);
	assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c7"
	    "5a003f089d2739839dec58b964ec3843");
	/* A different key gives a different MAC. */
	assert_int_equal(crypto_hmac_sha256("Jeff", 4, data, strlen(data),
	    mac), 0);
	to_hex(mac, sizeof(mac), hex);
	assert_string_not_equal(hex, "5bdcc146bf60754e6a042426089575c7"
	    "5a003f089d2739839dec58b964ec3843");
}

static void
test_sha256_abc(void **state)
{
	static const char abc_hex[] = "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad";
	unsigned char h[CRYPTO_HASH_LEN];
	char hex[2 * CRYPTO_HASH_LEN + 1];

	(void)state;
	memset(hex, 'x', sizeof(hex));
	assert_int_equal(crypto_sha256_hex("abc", 3, hex), 0);
	assert_string_equal(hex, abc_hex);
	assert_int_equal(crypto_sha256("abc", 3, h), 0);
	to_hex(h, sizeof(h), hex);
	assert_string_equal(hex, abc_hex);
	/* SHA-256 of the empty string. */
	assert_int_equal(crypto_sha256_hex("", 0, hex), 0);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855");
}

static void
test_random_differs(void **state)
{
	unsigned char a[32], b[32], zero[32];

	(void)state;
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	memset(zero, 0, sizeof(zero));
	assert_int_equal(crypto_random(a, sizeof(a)), 0);
	assert_int_equal(crypto_random(b, sizeof(b)), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));
	assert_int_equal(crypto_random(a, 0), 0);
}

/*
 * The request MAC of DESIGN.md section 3, against values computed
 * independently (Python's hmac/hashlib) for key 00 01 .. 1f.
 */
static void
test_kt1_mac(void **state)
{
	unsigned char key[32], mac[CRYPTO_MAC_LEN];
	char hex[2 * CRYPTO_MAC_LEN + 1];
	const char body[] = "{\"name\":\"k1\"}";
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)i;
	assert_int_equal(crypto_kt1_mac(key, sizeof(key), "GET",
	    "/v1/deposits?name=k1", "1700000000", NULL, 0, mac), 0);
	hex_encode(mac, sizeof(mac), hex, 0);
	assert_string_equal(hex, "5b7e4d9cf7b6038e8fa93abf78b60531"
	    "dba96af85430d95aaae5ec0eb56facb9");
	assert_int_equal(crypto_kt1_mac(key, sizeof(key), "POST",
	    "/v1/deposits?name=k1", "1700000000", body, strlen(body), mac), 0);
	hex_encode(mac, sizeof(mac), hex, 0);
	assert_string_equal(hex, "87fdb0de50e5c5a0363698b6c759e21c"
	    "3340f4db632e7c0b801c9d315863fd47");
}

/* Link tokens and org uuids: n letters and digits, each value in use. */
static void
test_alnum(void **state)
{
	char a[44], b[44];
	int seen[256] = {0};
	size_t i, k;

	(void)state;
	assert_int_equal(crypto_alnum(a, 43), 0);
	assert_int_equal(strlen(a), 43);
	assert_int_equal(crypto_alnum(b, 43), 0);
	assert_string_not_equal(a, b);
	for (k = 0; k < 200; k++) {
		assert_int_equal(crypto_alnum(a, 43), 0);
		for (i = 0; i < 43; i++) {
			unsigned char c = (unsigned char)a[i];
			assert_true((c >= 'A' && c <= 'Z') ||
			    (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'));
			seen[c] = 1;
		}
	}
	/* 8600 draws: every one of the 62 symbols turns up. */
	for (i = 0, k = 0; i < 256; i++)
		k += (size_t)seen[i];
	assert_int_equal(k, 62);
	assert_int_equal(crypto_alnum(a, 0), 0);
	assert_string_equal(a, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gcm_round_trip),
		cmocka_unit_test(test_gcm_round_trip_empty),
		cmocka_unit_test(test_gcm_fresh_nonce),
		cmocka_unit_test(test_gcm_flipped_ciphertext),
		cmocka_unit_test(test_gcm_flipped_tag),
		cmocka_unit_test(test_gcm_flipped_nonce),
		cmocka_unit_test(test_gcm_wrong_aad),
		cmocka_unit_test(test_gcm_wrong_key),
		cmocka_unit_test(test_gcm_short_input),
		cmocka_unit_test(test_gcm_reused_contexts),
		cmocka_unit_test(test_b64_encode_vectors),
		cmocka_unit_test(test_b64_encode_as_openssl),
		cmocka_unit_test(test_b64_decode_vectors),
		cmocka_unit_test(test_b64_binary_round_trip),
		cmocka_unit_test(test_b64_decode_strict),
		cmocka_unit_test(test_b64_decode_maxout),
		cmocka_unit_test(test_hmac_rfc4231_case2),
		cmocka_unit_test(test_kt1_mac),
		cmocka_unit_test(test_sha256_abc),
		cmocka_unit_test(test_random_differs),
		cmocka_unit_test(test_alnum),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
