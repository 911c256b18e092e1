/*
 * ktbench.c - the benchmark's helper, linked with libkeytrustee-common so
 * that what it makes is exactly what the server reads and checks:
 *
 *   ktbench sign SECRET_HEX FPR < requests > signed
 *       each input line "METHOD<TAB>TARGET<TAB>BODY" (BODY may be empty)
 *       becomes "METHOD<TAB>TARGET<TAB>Authorization: ...<TAB>BODY", signed now
 *       with crypto_kt1_mac (valid for the server's +-300 s window).
 *   ktbench regbodies ORG N > bodies
 *       N POST /v1/register bodies, one a line, each with a new OpenPGP
 *       key (Ed25519 primary, Curve25519 encryption subkey, v4 packets
 *       self-signed here with OpenSSL): new clients without N gpg runs.
 *   ktbench deposits CONFDIR FPR N SIZE UUIDFILE > copy.bin
 *       N deposits of SIZE random bytes owned by FPR, sealed with the
 *       server's data key (datakey_load: gpg-agent decrypts datakey.gpg)
 *       as api.c seals them (AES-256-GCM, AAD = uuid || owner), in
 *       PostgreSQL's binary COPY format for
 *       COPY deposits (uuid, owner, name, description, nonce, content);
 *       their uuids go to UUIDFILE, one a line.
 *
 * Not installed; built by `make bench` into build/bench/.
 */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "datakey.h"
#include "pgp.h"
#include "util.h"

static void
die(const char *msg)
{
	fprintf(stderr, "error: ktbench: %s\n", msg);
	exit(1);
}

/* ---- sign -------------------------------------------------------------- */

static int
cmd_sign(const char *secrethex, const char *fpr)
{
	unsigned char secret[CRYPTO_KEY_LEN], mac[CRYPTO_MAC_LEN];
	char ts[24], hex[2 * CRYPTO_MAC_LEN + 1], *line = NULL, *m, *t, *b;
	size_t cap = 0;
	ssize_t n;

	if (crypto_hex_decode(
		secrethex, strlen(secrethex), secret, sizeof(secret)) == -1)
		die("SECRET_HEX must be 64 hex digits");
	snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		m = line;
		if ((t = strchr(m, '\t')) == NULL)
			die("input line without a tab");
		*t++ = '\0';
		if ((b = strchr(t, '\t')) == NULL)
			b = t + strlen(t);
		else
			*b++ = '\0';
		if (crypto_kt1_mac(secret, sizeof(secret), m, t, ts, b,
			strlen(b), mac) == -1)
			die("crypto_kt1_mac failed");
		hex_encode(mac, sizeof(mac), hex, 0);
		printf("%s\t%s\tAuthorization: KT1-HMAC-SHA256 "
		       "fp=%s,ts=%s,sig=%s\t%s\n",
		    m, t, fpr, ts, hex, b);
	}
	free(line);
	OPENSSL_cleanse(secret, sizeof(secret));
	return 0;
}

/* ---- regbodies: OpenPGP v4 Ed25519 + cv25519 public keys ---------------- */

struct buf {
	unsigned char d[4096];
	size_t n;
};

static void
put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > sizeof(b->d))
		die("packet buffer overflow");
	memcpy(b->d + b->n, p, n);
	b->n += n;
}

static void
put8(struct buf *b, unsigned v)
{
	unsigned char c = (unsigned char)v;

	put(b, &c, 1);
}

static void
put16(struct buf *b, unsigned v)
{
	put8(b, v >> 8);
	put8(b, v);
}

static void
put32(struct buf *b, uint32_t v)
{
	put16(b, v >> 16);
	put16(b, v & 0xffff);
}

/* An MPI of n bytes, leading zero bits not counted. */
static void
put_mpi(struct buf *b, const unsigned char *p, size_t n)
{
	unsigned bits;

	while (n > 0 && *p == 0) {
		p++;
		n--;
	}
	bits = (unsigned)n * 8;
	if (n > 0) {
		unsigned char c = *p;
		while (!(c & 0x80)) {
			c <<= 1;
			bits--;
		}
	}
	put16(b, bits);
	put(b, p, n);
}

/* A new-format packet. */
static void
put_packet(struct buf *out, int tag, const struct buf *body)
{
	put8(out, 0xc0 | (unsigned)tag);
	if (body->n < 192)
		put8(out, (unsigned)body->n);
	else if (body->n < 8384) {
		put8(out, (unsigned)(((body->n - 192) >> 8) + 192));
		put8(out, (unsigned)((body->n - 192) & 0xff));
	} else
		die("packet too long");
	put(out, body->d, body->n);
}

static EVP_PKEY *
keygen(int type, unsigned char pub[32])
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(
	    NULL, NULL, type == EVP_PKEY_ED25519 ? "ED25519" : "X25519");
	size_t n = 32;

	if (k == NULL || EVP_PKEY_get_raw_public_key(k, pub, &n) != 1 ||
	    n != 32)
		die("key generation failed");
	return k;
}

/* Key packet body: v4, time, algorithm, curve OID, 0x40 || point [, KDF]. */
static void
key_body(struct buf *b, uint32_t t, int sub, const unsigned char pub[32])
{
	static const unsigned char ed_oid[] = {
	    0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01};
	static const unsigned char cv_oid[] = {
	    0x2b, 0x06, 0x01, 0x04, 0x01, 0x97, 0x55, 0x01, 0x05, 0x01};
	unsigned char point[33];

	put8(b, 4);
	put32(b, t);
	put8(b, sub ? 18 : 22);
	put8(b, sub ? sizeof(cv_oid) : sizeof(ed_oid));
	put(b, sub ? cv_oid : ed_oid, sub ? sizeof(cv_oid) : sizeof(ed_oid));
	point[0] = 0x40;
	memcpy(point + 1, pub, 32);
	put_mpi(b, point, sizeof(point));
	if (sub) {
		/* KDF: SHA-256, AES-128 */
		put8(b, 3);
		put8(b, 1);
		put8(b, 8);
		put8(b, 7);
	}
}

static void
hash_key(EVP_MD_CTX *h, const struct buf *key)
{
	unsigned char hdr[3] = {
	    0x99, (unsigned char)(key->n >> 8), (unsigned char)key->n};

	EVP_DigestUpdate(h, hdr, 3);
	EVP_DigestUpdate(h, key->d, key->n);
}

/*
 * A v4 signature of type over what h has hashed so far, by the Ed25519
 * key sk whose fingerprint is fpr.
 */
static void
signature(struct buf *sig, EVP_MD_CTX *h, int type, uint32_t t, unsigned flags,
    const unsigned char fpr[20], EVP_PKEY *sk)
{
	unsigned char digest[32], rs[64], trailer[6];
	struct buf hashed = {.n = 0};
	EVP_MD_CTX *sc;
	size_t rslen = sizeof(rs);
	unsigned dlen = 0;

	put8(&hashed, 4);
	put8(&hashed, (unsigned)type);
	put8(&hashed, 22);
	put8(&hashed, 8); /* SHA-256 */
	put16(&hashed, 6 + 3 + 23);
	put8(&hashed, 5);
	put8(&hashed, 2); /* creation time */
	put32(&hashed, t);
	put8(&hashed, 2);
	put8(&hashed, 27); /* key flags */
	put8(&hashed, flags);
	put8(&hashed, 22);
	put8(&hashed, 33); /* issuer fingerprint */
	put8(&hashed, 4);
	put(&hashed, fpr, 20);
	EVP_DigestUpdate(h, hashed.d, hashed.n);
	trailer[0] = 4;
	trailer[1] = 0xff;
	trailer[2] = (unsigned char)(hashed.n >> 24);
	trailer[3] = (unsigned char)(hashed.n >> 16);
	trailer[4] = (unsigned char)(hashed.n >> 8);
	trailer[5] = (unsigned char)hashed.n;
	EVP_DigestUpdate(h, trailer, sizeof(trailer));
	if (EVP_DigestFinal_ex(h, digest, &dlen) != 1)
		die("SHA-256 failed");
	if ((sc = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(sc, NULL, NULL, NULL, sk) != 1 ||
	    EVP_DigestSign(sc, rs, &rslen, digest, sizeof(digest)) != 1)
		die("Ed25519 signature failed");
	EVP_MD_CTX_free(sc);
	put(sig, hashed.d, hashed.n);
	put16(sig, 10);
	put8(sig, 9);
	put8(sig, 16); /* issuer key id */
	put(sig, fpr + 12, 8);
	put(sig, digest, 2);
	put_mpi(sig, rs, 32);
	put_mpi(sig, rs + 32, 32);
}

static void
armor(const struct buf *b)
{
	uint32_t crc = 0xb704ce;
	unsigned char c[3];
	char *s;
	size_t i, n;
	int k;

	for (i = 0; i < b->n; i++) {
		crc ^= (uint32_t)b->d[i] << 16;
		for (k = 0; k < 8; k++) {
			crc <<= 1;
			if (crc & 0x1000000)
				crc ^= 0x1864cfb;
		}
	}
	crc &= 0xffffff;
	if ((s = crypto_b64_encode(b->d, b->n)) == NULL)
		die("out of memory");
	fputs("-----BEGIN PGP PUBLIC KEY BLOCK-----\\n\\n", stdout);
	for (i = 0, n = strlen(s); i < n; i += 64)
		printf("%.*s\\n", (int)(n - i < 64 ? n - i : 64), s + i);
	free(s);
	c[0] = (unsigned char)(crc >> 16);
	c[1] = (unsigned char)(crc >> 8);
	c[2] = (unsigned char)crc;
	s = crypto_b64_encode(c, 3);
	printf("=%s\\n-----END PGP PUBLIC KEY BLOCK-----\\n", s);
	free(s);
}

static void
one_key(const char *org, int i, uint32_t t)
{
	unsigned char pk[32], xpk[32], fpr[20];
	struct buf key = {.n = 0}, sub = {.n = 0}, uid = {.n = 0};
	struct buf sig1 = {.n = 0}, sig2 = {.n = 0}, out = {.n = 0};
	unsigned char uidhdr[5];
	EVP_PKEY *ed, *x;
	EVP_MD_CTX *h;
	unsigned flen = 0;
	int ulen;

	ed = keygen(EVP_PKEY_ED25519, pk);
	x = keygen(EVP_PKEY_X25519, xpk);
	key_body(&key, t, 0, pk);
	key_body(&sub, t, 1, xpk);
	ulen = snprintf((char *)uid.d, sizeof(uid.d),
	    "bench%d <bench%d@example.com>", i, i);
	uid.n = (size_t)ulen;
	if ((h = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(h, EVP_sha1(), NULL) != 1)
		die("SHA-1 failed");
	hash_key(h, &key);
	EVP_DigestFinal_ex(h, fpr, &flen);
	/* Self-signature over key and user id (positive certification). */
	EVP_DigestInit_ex(h, EVP_sha256(), NULL);
	hash_key(h, &key);
	uidhdr[0] = 0xb4;
	uidhdr[1] = (unsigned char)(uid.n >> 24);
	uidhdr[2] = (unsigned char)(uid.n >> 16);
	uidhdr[3] = (unsigned char)(uid.n >> 8);
	uidhdr[4] = (unsigned char)uid.n;
	EVP_DigestUpdate(h, uidhdr, 5);
	EVP_DigestUpdate(h, uid.d, uid.n);
	signature(&sig1, h, 0x13, t, 0x03, fpr, ed);
	/* Subkey binding: encrypt communications and storage. */
	EVP_DigestInit_ex(h, EVP_sha256(), NULL);
	hash_key(h, &key);
	hash_key(h, &sub);
	signature(&sig2, h, 0x18, t, 0x0c, fpr, ed);
	EVP_MD_CTX_free(h);
	put_packet(&out, 6, &key);
	put_packet(&out, 13, &uid);
	put_packet(&out, 2, &sig1);
	put_packet(&out, 14, &sub);
	put_packet(&out, 2, &sig2);
	printf("{\"org\":\"%s\",\"hostname\":\"bench%d.example.com\","
	       "\"pubkey\":\"",
	    org, i);
	armor(&out);
	printf("\"}\n");
	EVP_PKEY_free(ed);
	EVP_PKEY_free(x);
}

static int
cmd_regbodies(const char *org, int n)
{
	uint32_t t = (uint32_t)time(NULL) - 60;
	int i;

	for (i = 0; i < n; i++)
		one_key(org, i, t);
	return 0;
}

/* ---- deposits ------------------------------------------------------------ */

static void
w16(FILE *f, unsigned v)
{
	putc((int)(v >> 8) & 0xff, f);
	putc((int)v & 0xff, f);
}

static void
w32(FILE *f, uint32_t v)
{
	w16(f, v >> 16);
	w16(f, v & 0xffff);
}

static void
field(FILE *f, const void *p, size_t n)
{
	w32(f, (uint32_t)n);
	fwrite(p, 1, n, f);
}

static int
cmd_deposits(
    const char *confdir, const char *fpr, int n, int size, const char *uuidfile)
{
	unsigned char key[CRYPTO_KEY_LEN], nonce[CRYPTO_NONCE_LEN], ubin[16];
	unsigned char *pt, *ct;
	char uuid[CRYPTO_UUID_LEN + 1], aad[CRYPTO_UUID_LEN + PGP_FPR_LEN];
	char err[1024], name[32];
	FILE *uf;
	int i, j, k;

	if (strlen(fpr) != PGP_FPR_LEN)
		die("FPR must be 40 hex digits");
	if (datakey_load(confdir, key, err, sizeof(err)) != 0) {
		fprintf(stderr, "error: ktbench: %s\n", err);
		return 1;
	}
	pgp_kill_agent(confdir);
	if ((uf = fopen(uuidfile, "w")) == NULL)
		die("cannot write UUIDFILE");
	if ((pt = malloc((size_t)size)) == NULL ||
	    (ct = malloc((size_t)size + CRYPTO_TAG_LEN)) == NULL)
		die("out of memory");
	fwrite("PGCOPY\n\377\r\n\0", 1, 11, stdout);
	w32(stdout, 0);
	w32(stdout, 0);
	for (i = 0; i < n; i++) {
		if (crypto_uuid4(uuid) == -1 || crypto_random(pt, size) == -1)
			die("random failed");
		memcpy(aad, uuid, CRYPTO_UUID_LEN);
		memcpy(aad + CRYPTO_UUID_LEN, fpr, PGP_FPR_LEN);
		if (crypto_seal(key, aad, sizeof(aad), pt, (size_t)size, nonce,
			ct) == -1)
			die("seal failed");
		for (j = 0, k = 0; j < CRYPTO_UUID_LEN; j += 2) {
			if (uuid[j] == '-')
				j++;
			crypto_hex_decode(uuid + j, 2, ubin + k++, 1);
		}
		snprintf(name, sizeof(name), "bench-%d", i);
		w16(stdout, 6);
		field(stdout, ubin, 16);
		field(stdout, fpr, PGP_FPR_LEN);
		field(stdout, name, strlen(name));
		w32(stdout, 0xffffffff); /* description NULL */
		field(stdout, nonce, sizeof(nonce));
		field(stdout, ct, (size_t)size + CRYPTO_TAG_LEN);
		fprintf(uf, "%s\n", uuid);
	}
	w16(stdout, 0xffff);
	OPENSSL_cleanse(key, sizeof(key));
	free(pt);
	free(ct);
	if (fclose(uf) != 0 || fflush(stdout) != 0)
		die("write failed");
	return 0;
}

int
main(int argc, char **argv)
{
	int n = 0, size = 0;

	if (crypto_init() == -1)
		die("OpenSSL lacks what crypto.c needs");
	if (argc == 4 && strcmp(argv[1], "sign") == 0)
		return cmd_sign(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "regbodies") == 0 &&
	    parse_int(argv[3], 1, 10000000, &n) == 0)
		return cmd_regbodies(argv[2], n);
	if (argc == 7 && strcmp(argv[1], "deposits") == 0 &&
	    parse_int(argv[4], 1, 100000000, &n) == 0 &&
	    parse_int(argv[5], 1, 65536, &size) == 0) {
		if (pgp_init() == -1)
			die("GPGME is not usable");
		return cmd_deposits(argv[2], argv[3], n, size, argv[6]);
	}
	fprintf(stderr,
	    "usage: ktbench sign SECRET_HEX FPR < requests\n"
	    "       ktbench regbodies ORG N\n"
	    "       ktbench deposits CONFDIR FPR N SIZE UUIDFILE\n");
	return 2;
}
