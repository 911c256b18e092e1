/*
 * test_pgpmsg.c - unit tests for src/common/pgpmsg*.{h,c}: armor, public
 * keys, decryption of tag 9 and tag 18 messages, signed and encrypted
 * answers, detached signatures.
 *
 * What the module writes is taken apart here with code of the test's own
 * (OpenPGP CFB built on AES-ECB step by step as RFC 4880 13.9 says, SHA-1
 * and SHA-512 through OpenSSL, RSA signatures verified with OpenSSL), and
 * what it reads is made the same way, so both directions are checked
 * against the RFC rather than against the code under test.  The RSA
 * private operations are the test's callbacks, as the key process's are
 * the server's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <zlib.h>

#include "pgpkey.h"
#include "pgpmsg.h"
#include "pgpmsg_rsa.h"
#include "pgpsig.h"

#define T0 1600000000u
#define WHEN 1700000000u
#define BIG (64 * 1024)

static EVP_PKEY *kp, *ks, *kx; /* primary, encryption subkey, a stranger */
static unsigned char fprp[20], fprs[20], fprx[20];
static struct rsa_keys srv; /* kp and ks: what the server decrypts with */
static unsigned char pubkey[8192]; /* primary, uid, subkey, signatures */
static size_t pubkeylen;

/* --------------------------------------------------------------------
 * Writing packets (the test's own)
 */

/* v, big-endian, at p: 4. */
static size_t
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
	return 4;
}

static size_t
put_mpi_bn(unsigned char *out, EVP_PKEY *k, const char *name)
{
	BIGNUM *bn = NULL;
	size_t n, bits;

	assert_true(EVP_PKEY_get_bn_param(k, name, &bn));
	n = (size_t)BN_num_bytes(bn);
	bits = (size_t)BN_num_bits(bn);
	out[0] = (unsigned char)(bits >> 8);
	out[1] = (unsigned char)bits;
	BN_bn2bin(bn, out + 2);
	BN_free(bn);
	return 2 + n;
}

static size_t
put_packet(unsigned char *out, int tag, const unsigned char *body, size_t n)
{
	size_t h = pgpkey_header(tag, n, out);

	memmove(out + h, body, n);
	return h + n;
}

/* A v4 public (sub)key packet of k (algorithm algo) and its fingerprint. */
static size_t
key_packet(unsigned char *out, int tag, EVP_PKEY *k, uint32_t created,
    int algo, unsigned char fpr[20])
{
	unsigned char body[1200], hdr[3];
	size_t b = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	body[b++] = 4;
	b += put32(body + b, created);
	body[b++] = (unsigned char)algo;
	b += put_mpi_bn(body + b, k, OSSL_PKEY_PARAM_RSA_N);
	b += put_mpi_bn(body + b, k, OSSL_PKEY_PARAM_RSA_E);
	hdr[0] = 0x99;
	hdr[1] = (unsigned char)(b >> 8);
	hdr[2] = (unsigned char)b;
	if (fpr != NULL) {
		assert_true(EVP_DigestInit_ex(md, EVP_sha1(), NULL));
		assert_true(EVP_DigestUpdate(md, hdr, 3));
		assert_true(EVP_DigestUpdate(md, body, b));
		assert_true(EVP_DigestFinal_ex(md, fpr, NULL));
	}
	EVP_MD_CTX_free(md);
	return put_packet(out, tag, body, b);
}

/*
 * A v4 signature packet of type by issuer (its last 8 octets in the
 * unhashed area): hashed creation time, key flags (unless -1) and key
 * expiration (unless 0).  The signature value is filler: keys are not
 * verified by the module.
 */
static size_t
sig_packet(unsigned char *out, int type, uint32_t created, int flags,
    uint32_t expires, const unsigned char *issuer)
{
	unsigned char body[200];
	size_t b = 0, hl;

	body[b++] = 4;
	body[b++] = (unsigned char)type;
	body[b++] = 1;
	body[b++] = 10;
	hl = b;
	b += 2;
	body[b++] = 5;
	body[b++] = 2;
	b += put32(body + b, created);
	if (flags != -1) {
		body[b++] = 2;
		body[b++] = 0x80 | 27; /* critical, as gpg marks it */
		body[b++] = (unsigned char)flags;
	}
	if (expires != 0) {
		body[b++] = 5;
		body[b++] = 9;
		b += put32(body + b, expires);
	}
	body[hl] = 0;
	body[hl + 1] = (unsigned char)(b - hl - 2);
	body[b++] = 0;
	body[b++] = 10;
	body[b++] = 9;
	body[b++] = 16;
	memcpy(body + b, issuer + 12, 8);
	b += 8;
	body[b++] = 0xab;
	body[b++] = 0xcd;
	body[b++] = 0;
	body[b++] = 8;
	body[b++] = 0x99;
	return put_packet(out, 2, body, b);
}

static size_t
uid_packet(unsigned char *out, const char *uid)
{
	return put_packet(out, 13, (const unsigned char *)uid, strlen(uid));
}

/* The client key of the protocol: RSA primary (C+S), RSA subkey (E). */
static size_t
client_key(unsigned char *out)
{
	size_t n = 0;

	n += key_packet(out + n, 6, kp, T0, 1, fprp);
	n += uid_packet(out + n, "ztrustee (client) <root@host>");
	n += sig_packet(out + n, 0x13, T0, 0x03, 0, fprp);
	n += key_packet(out + n, 14, ks, T0 + 10, 1, fprs);
	n += sig_packet(out + n, 0x18, T0 + 10, 0x0c, 0, fprp);
	return n;
}

/* --------------------------------------------------------------------
 * OpenPGP CFB (RFC 4880 13.9) over AES-ECB, both ways
 */

static void
cfb(const unsigned char *key, size_t keylen, unsigned char fr[16], int enc,
    const unsigned char *in, size_t n, unsigned char *out)
{
	const EVP_CIPHER *c = keylen == 16 ? EVP_aes_128_ecb() :
	    keylen == 24 ? EVP_aes_192_ecb() : EVP_aes_256_ecb();
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	unsigned char fre[16], ct[16];
	size_t off, m, i;
	int l;

	assert_true(EVP_EncryptInit_ex(ctx, c, NULL, key, NULL));
	EVP_CIPHER_CTX_set_padding(ctx, 0);
	for (off = 0; off < n; off += m) {
		assert_true(EVP_EncryptUpdate(ctx, fre, &l, fr, 16));
		m = n - off < 16 ? n - off : 16;
		for (i = 0; i < m; i++) {
			out[off + i] = in[off + i] ^ fre[i];
			ct[i] = enc ? out[off + i] : in[off + i];
		}
		memcpy(fr, ct, m);
	}
	EVP_CIPHER_CTX_free(ctx);
}

/* Encrypt prefix||data (n octets) as tag 9 (resync) or tag 18 (none). */
static void
ocfb(const unsigned char *key, size_t keylen, int resync, int enc,
    const unsigned char *in, size_t n, unsigned char *out)
{
	unsigned char fr[16];

	memset(fr, 0, sizeof(fr));
	if (!resync) {
		cfb(key, keylen, fr, enc, in, n, out);
		return;
	}
	cfb(key, keylen, fr, enc, in, 18, out);
	memcpy(fr, (enc ? out : in) + 2, 16);
	cfb(key, keylen, fr, enc, in + 18, n - 18, out + 18);
}

/* --------------------------------------------------------------------
 * Messages made by the test
 */

#define FLAW_CHECKSUM 0x01
#define FLAW_QUICK 0x02
#define FLAW_MDC 0x04
#define FLAW_ALGO 0x08

/* A v3 PKESK of the session block (algo, key) to k with keyid. */
static size_t
pkesk(unsigned char *out, EVP_PKEY *k, const unsigned char *keyid,
    int algo, const unsigned char *key, size_t keylen, int flaws)
{
	unsigned char block[40], ct[600], body[700];
	size_t ctlen = sizeof(ct), b = 0, i, skip = 0, bits;
	unsigned sum = 0;
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(k, NULL);

	block[0] = (unsigned char)((flaws & FLAW_ALGO) ? 3 : algo);
	memcpy(block + 1, key, keylen);
	for (i = 0; i < keylen; i++)
		sum += key[i];
	if (flaws & FLAW_CHECKSUM)
		sum++;
	block[1 + keylen] = (unsigned char)(sum >> 8);
	block[2 + keylen] = (unsigned char)sum;
	assert_true(EVP_PKEY_encrypt_init(pc) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0);
	assert_true(EVP_PKEY_encrypt(pc, ct, &ctlen, block, 3 + keylen) > 0);
	EVP_PKEY_CTX_free(pc);
	body[b++] = 3;
	memcpy(body + b, keyid, 8);
	b += 8;
	body[b++] = 1;
	while (ct[skip] == 0)
		skip++;
	bits = (ctlen - skip) * 8;
	for (i = 0x80; (ct[skip] & i) == 0; i >>= 1)
		bits--;
	body[b++] = (unsigned char)(bits >> 8);
	body[b++] = (unsigned char)bits;
	memcpy(body + b, ct + skip, ctlen - skip);
	b += ctlen - skip;
	return put_packet(out, 1, body, b);
}

/*
 * The encrypted packet (tag 9 or 18) of data under key, header included:
 * a random prefix, for tag 18 the MDC.
 */
static size_t
sealed(unsigned char *out, int tag, const unsigned char *key, size_t keylen,
    const unsigned char *data, size_t n, int flaws)
{
	size_t ptlen = 18 + n + (tag == 18 ? 22 : 0), o = 0;
	unsigned char *pt = malloc(ptlen), *ct = malloc(ptlen);
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	assert_non_null(pt);
	assert_non_null(ct);
	assert_true(RAND_bytes(pt, 16) == 1);
	pt[16] = pt[14] ^ ((flaws & FLAW_QUICK) ? 1 : 0);
	pt[17] = pt[15];
	memcpy(pt + 18, data, n);
	if (tag == 18) {
		pt[18 + n] = 0xd3;
		pt[19 + n] = 0x14;
		assert_true(EVP_DigestInit_ex(md, EVP_sha1(), NULL));
		assert_true(EVP_DigestUpdate(md, pt, 20 + n));
		assert_true(EVP_DigestFinal_ex(md, pt + 20 + n, NULL));
		if (flaws & FLAW_MDC)
			pt[ptlen - 1] ^= 0x40;
	}
	EVP_MD_CTX_free(md);
	ocfb(key, keylen, tag == 9, 1, pt, ptlen, ct);
	o = pgpkey_header(tag, ptlen + (tag == 18), out);
	if (tag == 18)
		out[o++] = 1;
	memcpy(out + o, ct, ptlen);
	free(pt);
	free(ct);
	return o + ptlen;
}

/* A whole message: PKESK to the subkey, then the packet of tag. */
static size_t
message(unsigned char *out, int tag, int algo, size_t keylen,
    const unsigned char *data, size_t n, int flaws)
{
	unsigned char key[32];
	size_t o;

	assert_true(RAND_bytes(key, sizeof(key)) == 1);
	o = pkesk(out, ks, fprs + 12, algo, key, keylen, flaws);
	return o + sealed(out + o, tag, key, keylen, data, n, flaws);
}

/* --------------------------------------------------------------------
 * Callbacks: the key process's work, done here (pgpmsg_rsa.h), and a
 * signer that refuses
 */

static int
sign_refuses(void *arg, int hashalgo, const unsigned char *digest,
    size_t dlen, unsigned char *sig, size_t *siglen, char *err,
    size_t errlen)
{
	(void)arg;
	(void)hashalgo;
	(void)digest;
	(void)dlen;
	(void)sig;
	(void)siglen;
	snprintf(err, errlen, "the key process said no");
	return -1;
}

static int
setup(void **state)
{
	unsigned char scratch[1200];

	(void)state;
	kp = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ks = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	kx = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	if (kp == NULL || ks == NULL || kx == NULL)
		return -1;
	pubkeylen = client_key(pubkey);
	key_packet(scratch, 6, kx, T0, 1, fprx);
	srv.key[0] = kp;
	srv.key[1] = ks;
	memcpy(srv.keyid[0], fprp + 12, 8);
	memcpy(srv.keyid[1], fprs + 12, 8);
	srv.n = 2;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(kp);
	EVP_PKEY_free(ks);
	EVP_PKEY_free(kx);
	return 0;
}

/* pgpmsg_decrypt expected to fail with a reason containing want. */
static void
decrypt_fails(const unsigned char *msg, size_t len, const char *want)
{
	unsigned char *plain = (unsigned char *)"unset";
	size_t plainlen = 99;
	int integrity = 7;
	char err[256] = "";

	assert_int_equal(pgpmsg_decrypt(msg, len, rsa_decrypt, &srv, &plain,
	    &plainlen, &integrity, err, sizeof(err)), -1);
	assert_null(plain);
	assert_int_equal(plainlen, 0);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

/* pgpmsg_decrypt expected to give data back, with integrity as said. */
static void
decrypt_gives(const unsigned char *msg, size_t len,
    const unsigned char *data, size_t n, int want_integrity)
{
	unsigned char *plain = NULL;
	size_t plainlen = 0;
	int integrity = -1;
	char err[256] = "";

	if (pgpmsg_decrypt(msg, len, rsa_decrypt, &srv, &plain, &plainlen,
	    &integrity, err, sizeof(err)) == -1)
		fail_msg("decrypt: %s", err);
	assert_int_equal(plainlen, n);
	assert_memory_equal(plain, data, n);
	assert_int_equal(integrity, want_integrity);
	OPENSSL_clear_free(plain, plainlen);
}

/* --------------------------------------------------------------------
 * Armor
 */

static void
test_armor_vector(void **state)
{
	static const char want[] =
	    "-----BEGIN PGP MESSAGE-----\nVersion: ztrustee v3.5.0-b4\n\n"
	    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v\n"
	    "MDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5f\n"
	    "YGFiYw==\n=ojIo\n-----END PGP MESSAGE-----\n";
	unsigned char bin[100], *back = NULL;
	char *text = NULL, err[256];
	size_t i, textlen = 0, backlen = 0;

	(void)state;
	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)i;
	assert_int_equal(pgpmsg_armor(PGPMSG_ARMOR_MESSAGE,
	    "ztrustee v3.5.0-b4", bin, sizeof(bin), &text, &textlen), 0);
	assert_string_equal(text, want);
	assert_int_equal(textlen, strlen(want));
	assert_int_equal(pgpmsg_armor_size(PGPMSG_ARMOR_MESSAGE,
	    "ztrustee v3.5.0-b4", sizeof(bin)), strlen(want));
	assert_int_equal(pgpmsg_dearmor(text, textlen, PGPMSG_ARMOR_MESSAGE,
	    &back, &backlen, err, sizeof(err)), 0);
	assert_int_equal(backlen, sizeof(bin));
	assert_memory_equal(back, bin, sizeof(bin));
	free(back);
	free(text);
	/* No Version line; other types; an unknown type or a bad version. */
	assert_int_equal(pgpmsg_armor(PGPMSG_ARMOR_SIGNATURE, NULL, bin, 3,
	    &text, NULL), 0);
	assert_string_equal(text, "-----BEGIN PGP SIGNATURE-----\n\nAAEC\n"
	    "=ybVn\n-----END PGP SIGNATURE-----\n");
	free(text);
	assert_int_equal(pgpmsg_armor("PRIVATE KEY BLOCK", NULL, bin, 3, &text,
	    NULL), -1);
	assert_null(text);
	assert_int_equal(pgpmsg_armor(PGPMSG_ARMOR_MESSAGE, "a\nb", bin, 3,
	    &text, NULL), -1);
}

static void
test_armor_lengths(void **state)
{
	unsigned char bin[200], *back;
	size_t lens[] = { 1, 2, 3, 47, 48, 49, 96, 97, 200 }, i, j, tl, bl;
	char *text, err[256];

	(void)state;
	for (i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(i * 37 + 11);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		assert_int_equal(pgpmsg_armor(PGPMSG_ARMOR_PUBKEY, NULL, bin,
		    lens[i], &text, &tl), 0);
		/* lines of 64 at most */
		for (j = 0; j < tl;) {
			const char *nl = strchr(text + j, '\n');

			assert_non_null(nl);
			assert_true(nl - (text + j) <= 64);
			j = (size_t)(nl - text) + 1;
		}
		assert_int_equal(pgpmsg_dearmor(text, tl, NULL, &back, &bl,
		    err, sizeof(err)), 0);
		assert_int_equal(bl, lens[i]);
		assert_memory_equal(back, bin, bl);
		free(back);
		free(text);
	}
}

/* Dearmor text (its type want, NULL any): 0, or -1 with err checked. */
static int
dearmor(const char *text, const char *type, const char *want_err,
    unsigned char **bin, size_t *binlen)
{
	char err[256] = "";
	int r;

	r = pgpmsg_dearmor(text, strlen(text), type, bin, binlen, err,
	    sizeof(err));
	if (want_err == NULL) {
		if (r != 0)
			fail_msg("dearmor: %s", err);
	} else {
		assert_int_equal(r, -1);
		assert_null(*bin);
		if (strstr(err, want_err) == NULL)
			fail_msg("error \"%s\" lacks \"%s\"", err, want_err);
	}
	return r;
}

static void
test_dearmor_forms(void **state)
{
	unsigned char *bin = NULL;
	size_t n = 0;

	(void)state;
	/* CRLF, headers, text around, a checksum: "hello" */
	dearmor("junk before\r\n-----BEGIN PGP MESSAGE-----\r\n"
	    "Version: ztrustee v3.5.0-b4\r\nComment: x: y\r\n\r\n"
	    "aGVsbG8=\r\n=R/WK\r\n-----END PGP MESSAGE-----\r\ntrailing\r\n",
	    PGPMSG_ARMOR_MESSAGE, NULL, &bin, &n);
	assert_int_equal(n, 5);
	assert_memory_equal(bin, "hello", 5);
	free(bin);
	/* LF, no headers, no checksum, data split over lines */
	dearmor("-----BEGIN PGP SIGNATURE-----\n\naGVs\nbG8=\n"
	    "-----END PGP SIGNATURE-----", NULL, NULL, &bin, &n);
	assert_int_equal(n, 5);
	free(bin);
	/* no empty line after BEGIN: taken as data all the same */
	dearmor("-----BEGIN PGP PUBLIC KEY BLOCK-----\naGVsbG8=\n"
	    "-----END PGP PUBLIC KEY BLOCK-----\n", NULL, NULL, &bin, &n);
	assert_int_equal(n, 5);
	free(bin);
}

#define BEGIN_MSG "-----BEGIN PGP MESSAGE-----\n"
#define END_MSG "-----END PGP MESSAGE-----\n"

static void
test_dearmor_errors(void **state)
{
	static const struct {
		const char *text, *type, *err;
	} bad[] = {
		/* the checksum of "hellp" is not that of "hello" */
		{ BEGIN_MSG "\naGVsbHA=\n=R/WK\n" END_MSG, NULL,
		    "checksum does not match" },
		{ BEGIN_MSG "\naGVsbG8=\n=R/W\n" END_MSG, NULL,
		    "checksum line is malformed" },
		{ BEGIN_MSG "\naGVsbG8=\n=R/WK\nx\n" END_MSG, NULL,
		    "after the checksum" },
		/* strict base64: a foreign character, padding inside, a bad
		 * length, bits set past the end; no empty line inside */
		{ BEGIN_MSG "\naGVs*bG8=\n" END_MSG, NULL, "not base64" },
		{ BEGIN_MSG "\naGV=bG8=\n" END_MSG, NULL,
		    "base64 is malformed" },
		{ BEGIN_MSG "\naGVsbG8\n" END_MSG, NULL,
		    "base64 is malformed" },
		{ BEGIN_MSG "\naGVsbG9=\n" END_MSG, NULL,
		    "base64 is malformed" },
		{ BEGIN_MSG "\naGVs\n\nbG8=\n" END_MSG, NULL,
		    "empty line inside" },
		/* the frame */
		{ BEGIN_MSG "\naGVsbG8=\n", NULL, "no END line" },
		{ BEGIN_MSG "\naGVsbG8=\n-----END PGP SIGNATURE-----\n", NULL,
		    "does not match its BEGIN" },
		{ BEGIN_MSG "\n" END_MSG, NULL, "holds no data" },
		{ "hello", NULL, "no OpenPGP armor" },
		{ BEGIN_MSG "\naGVsbG8=\n" END_MSG, PGPMSG_ARMOR_SIGNATURE,
		    "is a PGP MESSAGE, not a PGP SIGNATURE" },
		{ "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\naGVsbG8=\n"
		    "-----END PGP PRIVATE KEY BLOCK-----\n", NULL,
		    "secret key" },
		{ "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhi\n",
		    NULL, "cleartext-signed" },
		{ "-----BEGIN PGP ARMORED FILE-----\n\naGVsbG8=\n"
		    "-----END PGP ARMORED FILE-----\n", NULL,
		    "none of MESSAGE" },
	};
	unsigned char *bin = NULL;
	size_t n = 0, i;
	char *big;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		dearmor(bad[i].text, bad[i].type, bad[i].err, &bin, &n);
	/* bounded: a text over PGPMSG_ARMOR_MAX is refused unread */
	big = malloc(PGPMSG_ARMOR_MAX + 2);
	assert_non_null(big);
	memset(big, 'A', PGPMSG_ARMOR_MAX + 1);
	big[PGPMSG_ARMOR_MAX + 1] = '\0';
	dearmor(big, NULL, "too long", &bin, &n);
	/* and base64 of more than PGPMSG_MAX octets, within that */
	n = (size_t)sprintf(big, BEGIN_MSG "\n");
	for (i = 0; i < (PGPMSG_MAX + 300) / 48; i++) {
		memset(big + n, 'A', 64);
		big[n + 64] = '\n';
		n += 65;
	}
	assert_true(n < PGPMSG_ARMOR_MAX - 100);
	strcpy(big + n, END_MSG);
	dearmor(big, NULL, "armored data is too long", &bin, &n);
	free(big);
}

/* --------------------------------------------------------------------
 * Public keys
 */

static struct pgpmsg_pubkey *
parse_ok(const unsigned char *bin, size_t len)
{
	struct pgpmsg_pubkey *key = NULL;
	char err[256] = "";

	if (pgpmsg_pubkey_parse(bin, len, &key, err, sizeof(err)) == -1)
		fail_msg("pubkey: %s", err);
	return key;
}

static void
parse_fails(const unsigned char *bin, size_t len, const char *want)
{
	struct pgpmsg_pubkey *key = (struct pgpmsg_pubkey *)&key;
	char err[256] = "";

	assert_int_equal(pgpmsg_pubkey_parse(bin, len, &key, err,
	    sizeof(err)), -1);
	assert_null(key);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void
test_pubkey_client(void **state)
{
	struct pgpmsg_pubkey *key;

	(void)state;
	key = parse_ok(pubkey, pubkeylen);
	assert_memory_equal(key->primary.pub.fpr, fprp, 20);
	assert_memory_equal(key->primary.pub.keyid, fprp + 12, 8);
	assert_int_equal(key->primary.pub.created, T0);
	assert_int_equal(key->primary.flags, 0x03);
	assert_int_equal(key->nsubkeys, 1);
	assert_memory_equal(key->subkeys[0].pub.fpr, fprs, 20);
	assert_int_equal(key->subkeys[0].flags, 0x0c);
	assert_ptr_equal(key->encrypt, &key->subkeys[0]);
	assert_int_equal(EVP_PKEY_eq(key->subkeys[0].pub.pkey, ks), 1);
	assert_int_equal(EVP_PKEY_eq(key->primary.pub.pkey, kp), 1);
	pgpmsg_pubkey_free(key);
	pgpmsg_pubkey_free(NULL);
}

static void
test_pubkey_choice(void **state)
{
	unsigned char buf[8192];
	struct pgpmsg_pubkey *key;
	unsigned char f2[20];
	size_t n;

	(void)state;
	/* a lone primary (C+S+E, as the server key may be): itself */
	n = key_packet(buf, 6, kp, T0, 1, NULL);
	n += uid_packet(buf + n, "server");
	n += sig_packet(buf + n, 0x13, T0, 0x0f, 0, fprp);
	key = parse_ok(buf, n);
	assert_int_equal(key->nsubkeys, 0);
	assert_ptr_equal(key->encrypt, &key->primary);
	pgpmsg_pubkey_free(key);
	/* a subkey flagged sign-only is not taken: the primary is */
	n = key_packet(buf, 6, kp, T0, 1, NULL);
	n += key_packet(buf + n, 14, ks, T0, 1, NULL);
	n += sig_packet(buf + n, 0x18, T0, 0x02, 0, fprp);
	key = parse_ok(buf, n);
	assert_ptr_equal(key->encrypt, &key->primary);
	pgpmsg_pubkey_free(key);
	/* two encryption subkeys: the newer; a revoked one is passed over */
	n = client_key(buf);
	n += key_packet(buf + n, 14, kx, T0 + 20, 1, f2);
	n += sig_packet(buf + n, 0x18, T0 + 20, 0x04, 0, fprp);
	key = parse_ok(buf, n);
	assert_int_equal(key->nsubkeys, 2);
	assert_memory_equal(key->encrypt->pub.fpr, f2, 20);
	pgpmsg_pubkey_free(key);
	n += sig_packet(buf + n, 0x28, T0 + 30, -1, 0, fprp);
	key = parse_ok(buf, n);
	assert_int_equal(key->subkeys[1].revoked, 1);
	assert_memory_equal(key->encrypt->pub.fpr, fprs, 20);
	pgpmsg_pubkey_free(key);
	/* an expired subkey neither; a newer binding renews it */
	n = client_key(buf);
	n += key_packet(buf + n, 14, kx, T0 + 20, 1, f2);
	n += sig_packet(buf + n, 0x18, T0 + 20, 0x04, 100, fprp);
	key = parse_ok(buf, n);
	assert_int_equal(key->subkeys[1].expires, (time_t)T0 + 120);
	assert_memory_equal(key->encrypt->pub.fpr, fprs, 20);
	pgpmsg_pubkey_free(key);
	n += sig_packet(buf + n, 0x18, T0 + 50, 0x04, 0, fprp);
	key = parse_ok(buf, n);
	assert_memory_equal(key->encrypt->pub.fpr, f2, 20);
	pgpmsg_pubkey_free(key);
	/* a third party's binding signature counts for nothing */
	n = key_packet(buf, 6, kp, T0, 1, NULL);
	n += key_packet(buf + n, 14, ks, T0, 1, NULL);
	n += sig_packet(buf + n, 0x18, T0, 0x0c, 0, fprx);
	key = parse_ok(buf, n);
	assert_int_equal(key->subkeys[0].flags, -1);
	assert_ptr_equal(key->encrypt, &key->primary);
	pgpmsg_pubkey_free(key);
	/* a sign-only primary and no subkey: nothing to encrypt to */
	n = key_packet(buf, 6, kp, T0, 3, NULL);
	key = parse_ok(buf, n);
	assert_null(key->encrypt);
	pgpmsg_pubkey_free(key);
}

static void
test_pubkey_refused(void **state)
{
	unsigned char buf[8192];
	size_t n, i, h, b;
	int tag;

	(void)state;
	parse_fails(pubkey, 0, "no public key");
	/* two keys */
	n = client_key(buf);
	n += key_packet(buf + n, 6, kx, T0, 1, NULL);
	parse_fails(buf, n, "more than one public key");
	/* not RSA: the primary, a subkey */
	n = key_packet(buf, 6, kp, T0, 1, NULL);
	assert_int_equal(pgpkey_packet(buf, n, &tag, &h, &b), 0);
	buf[h + 5] = 22;
	parse_fails(buf, n, "not RSA (OpenPGP algorithm 22)");
	n = client_key(buf);
	n += key_packet(buf + n, 14, kx, T0, 18, NULL);
	parse_fails(buf, n, "a subkey: the public key is not RSA (OpenPGP "
	    "algorithm 18)");
	/* a v3 key, a secret key, a stray packet */
	n = key_packet(buf, 6, kp, T0, 1, NULL);
	buf[h] = 3;
	parse_fails(buf, n, "not a version 4 key");
	n = key_packet(buf, 5, kp, T0, 1, NULL);
	parse_fails(buf, n, "secret key");
	n = key_packet(buf, 6, kp, T0, 1, NULL);
	n += put_packet(buf + n, 11, (const unsigned char *)"b\0\0\0\0\0", 6);
	parse_fails(buf, n, "unexpected packet (tag 11)");
	/* every truncation of the client key fails, none crashes */
	for (i = 1; i < pubkeylen; i++) {
		struct pgpmsg_pubkey *key = NULL;
		char err[256];

		if (pgpmsg_pubkey_parse(pubkey, i, &key, err,
		    sizeof(err)) == 0) {
			/* a cut right between two packets is a key still */
			pgpmsg_pubkey_free(key);
			continue;
		}
		assert_null(key);
	}
	parse_fails(pubkey, 100, "malformed or truncated");
	parse_fails(pubkey, PGPMSG_MAX + 1, "too large");
}

/* --------------------------------------------------------------------
 * Decryption
 */

static void
test_decrypt_tag9_resync(void **state)
{
	unsigned char msg[BIG + 1024], data[BIG];
	size_t n, sizes[] = { 1, 15, 16, 17, 100, 5000, BIG }, i;

	(void)state;
	assert_true(RAND_bytes(data, sizeof(data)) == 1);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		n = message(msg, 9, 9, 32, data, sizes[i], 0);
		decrypt_gives(msg, n, data, sizes[i], 0);
	}
	/* AES-128 and -192 */
	n = message(msg, 9, 7, 16, data, 300, 0);
	decrypt_gives(msg, n, data, 300, 0);
	n = message(msg, 9, 8, 24, data, 300, 0);
	decrypt_gives(msg, n, data, 300, 0);
}

static void
test_decrypt_tag9_needs_resync(void **state)
{
	unsigned char msg[2048], data[300], key[32], pt[400], ct[400];
	size_t o, h;

	(void)state;
	/*
	 * A tag 9 packet encrypted without the resync (as a tag 18 is)
	 * must not decrypt right: the resync is what is tested above.
	 */
	memset(data, 'x', sizeof(data));
	assert_true(RAND_bytes(key, sizeof(key)) == 1);
	assert_true(RAND_bytes(pt, 16) == 1);
	pt[16] = pt[14];
	pt[17] = pt[15];
	memcpy(pt + 18, data, sizeof(data));
	ocfb(key, 32, 0, 1, pt, 18 + sizeof(data), ct);
	o = pkesk(msg, ks, fprs + 12, 9, key, 32, 0);
	h = pgpkey_header(9, 18 + sizeof(data), msg + o);
	memcpy(msg + o + h, ct, 18 + sizeof(data));
	{
		unsigned char *plain = NULL;
		size_t plainlen = 0;
		int integrity;
		char err[256];

		assert_int_equal(pgpmsg_decrypt(msg, o + h + 18 +
		    sizeof(data), rsa_decrypt, &srv, &plain, &plainlen,
		    &integrity, err, sizeof(err)), 0);
		assert_int_equal(plainlen, sizeof(data));
		assert_memory_not_equal(plain, data, sizeof(data));
		free(plain);
	}
}

static void
test_decrypt_tag18(void **state)
{
	unsigned char msg[BIG + 1024], data[BIG];
	size_t n;

	(void)state;
	assert_true(RAND_bytes(data, sizeof(data)) == 1);
	n = message(msg, 18, 9, 32, data, 1, 0);
	decrypt_gives(msg, n, data, 1, 1);
	n = message(msg, 18, 9, 32, data, BIG, 0);
	decrypt_gives(msg, n, data, BIG, 1);
	n = message(msg, 18, 7, 16, data, 77, 0);
	decrypt_gives(msg, n, data, 77, 1);
}

static void
test_decrypt_tampered(void **state)
{
	static const struct {
		int tag, flaw;
		const char *err;
	} flawed[] = {
		{ 18, FLAW_MDC, "modification detection code" },
		{ 18, FLAW_CHECKSUM, "checksum is wrong" },
		{ 9, FLAW_CHECKSUM, "checksum is wrong" },
		{ 9, FLAW_QUICK, "quick check" },
		{ 18, FLAW_QUICK, "quick check" },
		{ 9, FLAW_ALGO, "algorithm (3)" },
	};
	unsigned char msg[4096], data[500];
	size_t n, o, h, b, i;
	int tag;

	(void)state;
	memset(data, 'd', sizeof(data));
	for (i = 0; i < sizeof(flawed) / sizeof(flawed[0]); i++) {
		n = message(msg, flawed[i].tag, 9, 32, data, sizeof(data),
		    flawed[i].flaw);
		decrypt_fails(msg, n, flawed[i].err);
	}
	/* one bit of the ciphertext of a tag 18 packet: the MDC says so */
	n = message(msg, 18, 9, 32, data, sizeof(data), 0);
	msg[n - 100] ^= 0x01;
	decrypt_fails(msg, n, "modification detection code");
	/* ... and of its MDC */
	msg[n - 100] ^= 0x01;
	msg[n - 1] ^= 0x80;
	decrypt_fails(msg, n, "modification detection code");
	msg[n - 1] ^= 0x80;
	decrypt_gives(msg, n, data, sizeof(data), 1);
	/* the PKESK's value: RSA padding breaks, the callback says so */
	assert_int_equal(pgpkey_packet(msg, n, &tag, &h, &b), 0);
	o = h + 12;
	msg[o + 50] ^= 0x10;
	decrypt_fails(msg, n, "RSA decryption failed");
	msg[o + 50] ^= 0x10;
	/* another SEIPD version */
	msg[n - 22 - 500 - 18 - 1] = 2;
	decrypt_fails(msg, n, "version (2) is not 1");
}

static void
test_decrypt_recipients(void **state)
{
	unsigned char msg[4096], data[64], key[32];
	size_t o = 0, n;

	(void)state;
	memset(data, 'r', sizeof(data));
	assert_true(RAND_bytes(key, sizeof(key)) == 1);
	/* a stranger first, then the server's primary: the primary's */
	o += pkesk(msg + o, kx, fprx + 12, 9, key, 32, 0);
	o += pkesk(msg + o, kp, fprp + 12, 9, key, 32, 0);
	n = o + sealed(msg + o, 9, key, 32, data, sizeof(data), 0);
	srv.calls = 0;
	decrypt_gives(msg, n, data, sizeof(data), 0);
	assert_int_equal(srv.calls, 2);
	/* only the stranger: the callback's refusal is the reason */
	o = pkesk(msg, kx, fprx + 12, 9, key, 32, 0);
	n = o + sealed(msg + o, 9, key, 32, data, sizeof(data), 0);
	decrypt_fails(msg, n, "not a key of this server");
	/* no PKESK at all; a marker packet is skipped */
	o = put_packet(msg, 10, (const unsigned char *)"PGP", 3);
	n = o + sealed(msg + o, 18, key, 32, data, sizeof(data), 0);
	decrypt_fails(msg, n, "not encrypted to an RSA key");
	/* no encrypted packet; a literal packet is no part of one */
	o = pkesk(msg, kp, fprp + 12, 9, key, 32, 0);
	decrypt_fails(msg, o, "no encrypted data packet");
	n = o + put_packet(msg + o, 11, data, 10);
	decrypt_fails(msg, n, "unexpected packet (tag 11)");
	/* data after the encrypted packet */
	n = o + sealed(msg + o, 18, key, 32, data, sizeof(data), 0);
	msg[n++] = 0xc2;
	msg[n++] = 0;
	decrypt_fails(msg, n, "data follows");
}

static void
test_decrypt_truncated_oversize(void **state)
{
	unsigned char msg[4096], data[200];
	size_t n, i;

	(void)state;
	memset(data, 't', sizeof(data));
	n = message(msg, 18, 9, 32, data, sizeof(data), 0);
	for (i = 0; i < n; i++) {
		unsigned char *plain = NULL;
		size_t pl = 0;
		int integrity;
		char err[256];

		assert_int_equal(pgpmsg_decrypt(msg, i, rsa_decrypt, &srv,
		    &plain, &pl, &integrity, err, sizeof(err)), -1);
		assert_null(plain);
	}
	decrypt_fails(msg, PGPMSG_MAX + 1, "too large");
	/* an encrypted packet shorter than its prefix */
	n = pkesk(msg, ks, fprs + 12, 9, data, 32, 0);
	n += put_packet(msg + n, 9, data, 17);
	decrypt_fails(msg, n, "too short");
}

/*
 * msg (len) with its encrypted packet (at off) rewritten in partial body
 * lengths: parts of 1 << parts[i] octets, then the rest as a definite
 * length.
 */
static size_t
repartition(unsigned char *out, const unsigned char *msg, size_t off,
    size_t len, const int *parts)
{
	unsigned char hdr[6];
	size_t o, h, b, done = 0, i, hl;
	int tag;

	assert_int_equal(pgpkey_packet(msg + off, len - off, &tag, &h, &b), 0);
	memcpy(out, msg, off);
	o = off;
	out[o++] = (unsigned char)(0xc0 | tag);
	for (i = 0; parts[i] != 0; i++) {
		out[o++] = (unsigned char)(224 + parts[i]);
		memcpy(out + o, msg + off + h + done, (size_t)1 << parts[i]);
		o += (size_t)1 << parts[i];
		done += (size_t)1 << parts[i];
	}
	hl = pgpkey_header(tag, b - done, hdr);
	memcpy(out + o, hdr + 1, hl - 1);
	o += hl - 1;
	memcpy(out + o, msg + off + h + done, b - done);
	return o + b - done;
}

static void
test_decrypt_partial_lengths(void **state)
{
	static const int p1[] = { 9, 0 }, p2[] = { 10, 9, 11, 0 },
	    p3[] = { 9, 9, 9, 9, 9, 9, 9, 0 };
	unsigned char msg[8192], out[8192], data[4000];
	size_t n, o, m, h, b;
	int tag;

	(void)state;
	assert_true(RAND_bytes(data, sizeof(data)) == 1);
	n = message(msg, 18, 9, 32, data, sizeof(data), 0);
	assert_int_equal(pgpkey_packet(msg, n, &tag, &h, &b), 0);
	o = h + b; /* the PKESK's length */
	m = repartition(out, msg, o, n, p1);
	assert_int_not_equal(m, n);
	decrypt_gives(out, m, data, sizeof(data), 1);
	m = repartition(out, msg, o, n, p2);
	decrypt_gives(out, m, data, sizeof(data), 1);
	m = repartition(out, msg, o, n, p3);
	decrypt_gives(out, m, data, sizeof(data), 1);
	/* a part longer than what is left: the first, a later one */
	m = repartition(out, msg, o, n, p1);
	out[o + 1] = 224 + 13;
	decrypt_fails(out, m, "malformed or truncated");
	m = repartition(out, msg, o, n, p2);
	out[o + 2 + 1024] = 224 + 13;
	decrypt_fails(out, m, "partial lengths run past");
	/* the last part cut short */
	m = repartition(out, msg, o, n, p2);
	decrypt_fails(out, m - 1, "partial lengths run past");
	/* tag 9 in an old-format packet of indeterminate length */
	n = message(msg, 9, 9, 32, data, sizeof(data), 0);
	assert_int_equal(pgpkey_packet(msg, n, &tag, &h, &b), 0);
	o = h + b;
	assert_int_equal(msg[o], 0xc9);
	memcpy(out, msg, o);
	out[o] = 0x80 | 9 << 2 | 3;
	memcpy(out + o + 1, msg + o + 3, n - o - 3);
	decrypt_gives(out, n - 2, data, sizeof(data), 0);
	/* partial lengths are for data packets only */
	out[0] = 0xc1;
	out[1] = 224 + 9;
	decrypt_fails(out, 600, "unexpected packet (tag 1)");
}

/* --------------------------------------------------------------------
 * Signing and encrypting answers
 */

/* Check the v4 binary SHA-512 signature packet body s (n) over data. */
static void
check_signature(const unsigned char *s, size_t n, const unsigned char *data,
    size_t len, uint32_t when, int want_ok)
{
	unsigned char trailer[6], digest[64], sig[512];
	size_t hashed, off, bits, m, size;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pc;
	unsigned int dlen;
	int ok;

	assert_int_equal(s[0], 4);
	assert_int_equal(s[1], 0x00); /* binary */
	assert_int_equal(s[2], 1);    /* RSA */
	assert_int_equal(s[3], 10);   /* SHA-512 */
	hashed = (size_t)s[4] << 8 | s[5];
	assert_int_equal(hashed, 29);
	assert_int_equal(s[7], 33);
	assert_memory_equal(s + 9, fprp, 20);
	assert_int_equal(s[30], 2);
	assert_int_equal((uint32_t)s[31] << 24 | (uint32_t)s[32] << 16 |
	    (uint32_t)s[33] << 8 | s[34], when);
	off = 6 + hashed;
	assert_int_equal((size_t)s[off] << 8 | s[off + 1], 10);
	assert_int_equal(s[off + 3], 16);
	assert_memory_equal(s + off + 4, fprp + 12, 8);
	off += 12;
	trailer[0] = 4;
	trailer[1] = 0xff;
	trailer[2] = trailer[3] = trailer[4] = 0;
	trailer[5] = (unsigned char)(6 + hashed);
	assert_true(EVP_DigestInit_ex(md, EVP_sha512(), NULL));
	assert_true(EVP_DigestUpdate(md, data, len));
	assert_true(EVP_DigestUpdate(md, s, 6 + hashed));
	assert_true(EVP_DigestUpdate(md, trailer, 6));
	assert_true(EVP_DigestFinal_ex(md, digest, &dlen));
	EVP_MD_CTX_free(md);
	ok = s[off] == digest[0] && s[off + 1] == digest[1];
	off += 2;
	bits = (size_t)s[off] << 8 | s[off + 1];
	m = (bits + 7) / 8;
	assert_int_equal(off + 2 + m, n);
	size = (size_t)EVP_PKEY_get_size(kp);
	memset(sig, 0, size - m);
	memcpy(sig + size - m, s + off + 2, m);
	pc = EVP_PKEY_CTX_new(kp, NULL);
	assert_true(EVP_PKEY_verify_init(pc) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0);
	assert_true(EVP_PKEY_CTX_set_signature_md(pc, EVP_sha512()) > 0);
	ok = ok && EVP_PKEY_verify(pc, sig, size, digest, dlen) == 1;
	EVP_PKEY_CTX_free(pc);
	assert_int_equal(ok, want_ok);
}

/* Take apart one-pass + literal + signature; check it all. */
static void
check_signed(const unsigned char *p, size_t n, const unsigned char *data,
    size_t len)
{
	size_t h, b;
	int tag;

	assert_int_equal(pgpkey_packet(p, n, &tag, &h, &b), 0);
	assert_int_equal(tag, 4);
	assert_int_equal(b, 13);
	assert_memory_equal(p + h, "\x03\x00\x0a\x01", 4);
	assert_memory_equal(p + h + 4, fprp + 12, 8);
	assert_int_equal(p[h + 12], 1);
	p += h + b;
	n -= h + b;
	assert_int_equal(pgpkey_packet(p, n, &tag, &h, &b), 0);
	assert_int_equal(tag, 11);
	assert_int_equal(b, 6 + len);
	assert_memory_equal(p + h, "b\0", 2);
	assert_memory_equal(p + h + 2, "\x65\x53\xf1\x00", 4); /* WHEN */
	assert_memory_equal(p + h + 6, data, len);
	p += h + b;
	n -= h + b;
	assert_int_equal(pgpkey_packet(p, n, &tag, &h, &b), 0);
	assert_int_equal(tag, 2);
	assert_int_equal(h + b, n);
	check_signature(p + h, b, data, len, WHEN, 1);
	/* and the check can fail */
	check_signature(p + h, b, (const unsigned char *)"other", 5, WHEN, 0);
}

static void
test_sign(void **state)
{
	const unsigned char *data = (const unsigned char *)
	    "{\"deposit_uuid\": \"x\", \"url\": \"y\"}";
	size_t len = strlen((const char *)data), n, zn, h, b;
	unsigned char *p = NULL, *z = NULL, *un;
	uLongf unlen;
	char err[256];
	int tag;

	(void)state;
	assert_int_equal(pgpmsg_sign(data, len, fprp, WHEN, 0, rsa_sign, kp, &p,
	    &n, err, sizeof(err)), 0);
	check_signed(p, n, data, len);
	/* compressed: one ZLIB packet holding the same (RSA v1.5 signatures
	 * are deterministic) */
	assert_int_equal(pgpmsg_sign(data, len, fprp, WHEN, PGPMSG_ZLIB,
	    rsa_sign, kp, &z, &zn, err, sizeof(err)), 0);
	assert_int_equal(pgpkey_packet(z, zn, &tag, &h, &b), 0);
	assert_int_equal(tag, 8);
	assert_int_equal(h + b, zn);
	assert_int_equal(z[h], 2);
	unlen = n + 100;
	un = malloc(unlen);
	assert_int_equal(uncompress(un, &unlen, z + h + 1, b - 1), Z_OK);
	assert_int_equal(unlen, n);
	assert_memory_equal(un, p, n);
	free(un);
	free(z);
	OPENSSL_clear_free(p, n);
	/* the signer's refusal is the reason */
	p = (unsigned char *)"unset";
	assert_int_equal(pgpmsg_sign(data, len, fprp, WHEN, 0, sign_refuses,
	    NULL, &p, &n, err, sizeof(err)), -1);
	assert_null(p);
	assert_string_equal(err, "the key process said no");
}

static void
test_detached(void **state)
{
	const unsigned char *data = (const unsigned char *)"{\"a\": 1}";
	unsigned char *sig = NULL;
	size_t n = 0, h, b;
	char err[256];
	int tag;

	(void)state;
	assert_int_equal(pgpmsg_detached(data, 8, fprp, WHEN, rsa_sign, kp,
	    &sig, &n, err, sizeof(err)), 0);
	assert_int_equal(pgpkey_packet(sig, n, &tag, &h, &b), 0);
	assert_int_equal(tag, 2);
	assert_int_equal(h + b, n);
	check_signature(sig + h, b, data, 8, WHEN, 1);
	check_signature(sig + h, b, data, 7, WHEN, 0);
	free(sig);
	assert_int_equal(pgpmsg_detached(data, 8, fprp, WHEN, sign_refuses,
	    NULL, &sig, &n, err, sizeof(err)), -1);
	assert_null(sig);
}

/* Decrypt what pgpmsg_encrypt wrote with the test's own code. */
static void
open_independently(const unsigned char *msg, size_t n,
    const unsigned char *want, size_t wantlen)
{
	unsigned char block[600], *pt, mdc[20];
	size_t h, b, bl = sizeof(block), o;
	EVP_PKEY_CTX *pc;
	unsigned sum = 0, i;
	int tag;

	assert_int_equal(pgpkey_packet(msg, n, &tag, &h, &b), 0);
	assert_int_equal(tag, 1);
	assert_int_equal(msg[h], 3);
	assert_memory_equal(msg + h + 1, fprs + 12, 8); /* to the subkey */
	assert_int_equal(msg[h + 9], 1);
	pc = EVP_PKEY_CTX_new(ks, NULL);
	assert_true(EVP_PKEY_decrypt_init(pc) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0);
	assert_true(EVP_PKEY_decrypt(pc, block, &bl, msg + h + 12,
	    b - 12) > 0);
	EVP_PKEY_CTX_free(pc);
	assert_int_equal(bl, 35);
	assert_int_equal(block[0], 9);
	for (i = 0; i < 32; i++)
		sum += block[1 + i];
	assert_int_equal(sum & 0xffff, (unsigned)block[33] << 8 | block[34]);
	o = h + b;
	assert_int_equal(pgpkey_packet(msg + o, n - o, &tag, &h, &b), 0);
	assert_int_equal(tag, 18);
	assert_int_equal(o + h + b, n);
	assert_int_equal(msg[o + h], 1);
	assert_int_equal(b - 1, 18 + wantlen + 22);
	pt = malloc(b);
	ocfb(block + 1, 32, 0, 0, msg + o + h + 1, b - 1, pt);
	assert_int_equal(pt[14], pt[16]);
	assert_int_equal(pt[15], pt[17]);
	assert_memory_equal(pt + 18, want, wantlen);
	assert_int_equal(pt[18 + wantlen], 0xd3);
	assert_int_equal(pt[19 + wantlen], 0x14);
	assert_true(EVP_Digest(pt, 20 + wantlen, mdc, NULL, EVP_sha1(), NULL));
	assert_memory_equal(pt + 20 + wantlen, mdc, 20);
	free(pt);
}

static void
test_encrypt(void **state)
{
	unsigned char data[3000], *msg = NULL, *msg2 = NULL;
	struct pgpmsg_pubkey *key = parse_ok(pubkey, pubkeylen);
	size_t n = 0, n2 = 0;
	char err[256];

	(void)state;
	assert_true(RAND_bytes(data, sizeof(data)) == 1);
	assert_int_equal(pgpmsg_encrypt(data, sizeof(data), key, &msg, &n, err,
	    sizeof(err)), 0);
	open_independently(msg, n, data, sizeof(data));
	decrypt_gives(msg, n, data, sizeof(data), 1);
	/* a fresh session key and prefix each time */
	assert_int_equal(pgpmsg_encrypt(data, sizeof(data), key, &msg2, &n2,
	    err, sizeof(err)), 0);
	assert_int_equal(n, n2);
	assert_memory_not_equal(msg, msg2, n);
	free(msg);
	free(msg2);
	/* nothing to encrypt to; nothing to encrypt */
	key->encrypt = NULL;
	assert_int_equal(pgpmsg_encrypt(data, 1, key, &msg, &n, err,
	    sizeof(err)), -1);
	assert_null(msg);
	assert_non_null(strstr(err, "no key to encrypt to"));
	key->encrypt = &key->subkeys[0];
	assert_int_equal(pgpmsg_encrypt(data, 0, key, &msg, &n, err,
	    sizeof(err)), -1);
	assert_int_equal(pgpmsg_encrypt(data, PGPMSG_MAX + 1, key, &msg, &n,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too large"));
	pgpmsg_pubkey_free(key);
}

static void
test_encrypt_short_mpi(void **state)
{
	unsigned char data[10] = "0123456789", *msg = NULL;
	struct pgpmsg_pubkey *key = parse_ok(pubkey, pubkeylen);
	size_t n = 0, h, b, tries;
	char err[256];
	int tag;

	(void)state;
	/*
	 * About one RSA ciphertext in 256 starts with a zero octet: its MPI
	 * is shorter than the modulus, and must still decrypt.
	 */
	for (tries = 0; tries < 20000; tries++) {
		assert_int_equal(pgpmsg_encrypt(data, sizeof(data), key, &msg,
		    &n, err, sizeof(err)), 0);
		assert_int_equal(pgpkey_packet(msg, n, &tag, &h, &b), 0);
		if (b - 12 < 256)
			break;
		free(msg);
	}
	assert_true(tries < 20000);
	assert_true(((size_t)msg[h + 10] << 8 | msg[h + 11]) <= 255 * 8);
	decrypt_gives(msg, n, data, sizeof(data), 1);
	free(msg);
	pgpmsg_pubkey_free(key);
}

static void
test_round_trip(void **state)
{
	const unsigned char *data = (const unsigned char *)
	    "{\"status\": 200, \"content\": \"...\"}";
	size_t len = strlen((const char *)data), pl, ml, tl, bl, dl;
	unsigned char *p, *m, *bin, *dec;
	struct pgpmsg_pubkey *key;
	int integrity, z;
	char *text, err[256];

	(void)state;
	for (z = 0; z <= PGPMSG_ZLIB; z += PGPMSG_ZLIB) {
		/* the server's answer, armored as it goes on the wire */
		key = parse_ok(pubkey, pubkeylen);
		assert_int_equal(pgpmsg_sign(data, len, fprp, WHEN, z, rsa_sign,
		    kp, &p, &pl, err, sizeof(err)), 0);
		assert_int_equal(pgpmsg_encrypt(p, pl, key, &m, &ml, err,
		    sizeof(err)), 0);
		assert_int_equal(pgpmsg_armor(PGPMSG_ARMOR_MESSAGE, NULL, m, ml,
		    &text, &tl), 0);
		/* and read back as the client would: the same packets */
		assert_int_equal(pgpmsg_dearmor(text, tl, PGPMSG_ARMOR_MESSAGE,
		    &bin, &bl, err, sizeof(err)), 0);
		assert_int_equal(pgpmsg_decrypt(bin, bl, rsa_decrypt, &srv,
		    &dec, &dl, &integrity, err, sizeof(err)), 0);
		assert_int_equal(integrity, 1);
		assert_int_equal(dl, pl);
		assert_memory_equal(dec, p, pl);
		if (z == 0)
			check_signed(dec, dl, data, len);
		OPENSSL_clear_free(dec, dl);
		OPENSSL_clear_free(p, pl);
		free(bin);
		free(text);
		free(m);
		pgpmsg_pubkey_free(key);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_armor_vector),
		cmocka_unit_test(test_armor_lengths),
		cmocka_unit_test(test_dearmor_forms),
		cmocka_unit_test(test_dearmor_errors),
		cmocka_unit_test(test_pubkey_client),
		cmocka_unit_test(test_pubkey_choice),
		cmocka_unit_test(test_pubkey_refused),
		cmocka_unit_test(test_decrypt_tag9_resync),
		cmocka_unit_test(test_decrypt_tag9_needs_resync),
		cmocka_unit_test(test_decrypt_tag18),
		cmocka_unit_test(test_decrypt_tampered),
		cmocka_unit_test(test_decrypt_recipients),
		cmocka_unit_test(test_decrypt_truncated_oversize),
		cmocka_unit_test(test_decrypt_partial_lengths),
		cmocka_unit_test(test_sign),
		cmocka_unit_test(test_detached),
		cmocka_unit_test(test_encrypt),
		cmocka_unit_test(test_encrypt_short_mpi),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
