/*
 * test_pgpsig.c - unit tests for src/common/pgpsig.{h,c}: cleartext
 * signatures made with an OpenSSL key, taken apart here and checked with
 * the public key through OpenSSL over the canonical text the test writes
 * out by hand (so canonicalisation, dash-escaping, the packet and the armor
 * are all checked against RFC 4880, not against the code under test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "pgpkey.h"
#include "pgpsig.h"

static const unsigned char fpr1[PGPKEY_FPR_LEN] = {
	0x31, 0x06, 0x91, 0x5a, 0x47, 0xf1, 0x91, 0x69, 0xca, 0xc5,
	0x7c, 0xb9, 0x63, 0x6e, 0x26, 0x6f, 0x12, 0x62, 0xf4, 0x11,
};
#define WHEN1 ((time_t)1700000000)

static EVP_PKEY *rsa_key;

static int
setup(void **state)
{
	(void)state;
	rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	return rsa_key == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(rsa_key);
	return 0;
}

/* The signer the key process would be: PKCS#1 v1.5 with the DigestInfo. */
static int
sign_openssl(void *arg, int hashalgo, const unsigned char *digest,
    size_t dlen, unsigned char *sig, size_t *siglen, char *err,
    size_t errlen)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(arg, NULL);
	int ok;

	*siglen = PGPSIG_SIG_MAX;
	ok = pc != NULL && EVP_PKEY_sign_init(pc) > 0 &&
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0 &&
	    EVP_PKEY_CTX_set_signature_md(pc, pgpkey_md(hashalgo)) > 0 &&
	    EVP_PKEY_sign(pc, sig, siglen, digest, dlen) > 0;
	EVP_PKEY_CTX_free(pc);
	if (!ok)
		snprintf(err, errlen, "signing failed");
	return ok ? 0 : -1;
}

static int
sign_fails(void *arg, int hashalgo, const unsigned char *digest,
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

/* What a clear-signed text is made of, as read back. */
struct parsed {
	char *body;             /* between the header and the armor */
	unsigned char pkt[4096];
	size_t pktlen;
	const unsigned char *sigbody; /* the packet's body */
	size_t sigbodylen;
};

static int
b64val(int c)
{
	const char *a =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c != 0 ? strchr(a, c) : NULL;

	return p != NULL ? (int)(p - a) : -1;
}

/* Decode base64 text (no newlines) appended to out at *n. */
static void
b64dec(const char *s, size_t len, unsigned char *out, size_t *n)
{
	unsigned acc = 0;
	int bits = 0, v;
	size_t i;

	for (i = 0; i < len && s[i] != '='; i++) {
		v = b64val((unsigned char)s[i]);
		assert_true(v >= 0);
		acc = acc << 6 | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[(*n)++] = (unsigned char)(acc >> bits);
		}
	}
}

static void
parse(const char *text, struct parsed *p)
{
	static const char head[] =
	    "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n";
	static const char begin[] = "-----BEGIN PGP SIGNATURE-----\n\n";
	static const char end[] = "-----END PGP SIGNATURE-----\n";
	const char *b, *line, *nl;
	unsigned char crc[3];
	size_t n = 0, h, crcn = 0;
	unsigned long c;
	int tag;

	memset(p, 0, sizeof(*p));
	assert_memory_equal(text, head, sizeof(head) - 1);
	text += sizeof(head) - 1;
	b = strstr(text, "\n-----BEGIN PGP SIGNATURE-----\n");
	assert_non_null(b);
	p->body = strndup(text, (size_t)(b - text) + 1);
	b++;
	assert_memory_equal(b, begin, sizeof(begin) - 1);
	line = b + sizeof(begin) - 1;
	for (;;) {
		nl = strchr(line, '\n');
		assert_non_null(nl);
		if (*line == '=')
			break;
		assert_true(nl - line <= 64);
		b64dec(line, (size_t)(nl - line), p->pkt, &n);
		line = nl + 1;
	}
	b64dec(line + 1, (size_t)(nl - line - 1), crc, &crcn);
	assert_int_equal(crcn, 3);
	c = (unsigned long)crc[0] << 16 | (unsigned long)crc[1] << 8 | crc[2];
	assert_int_equal(c, pgpkey_crc24(p->pkt, n));
	assert_string_equal(nl + 1, end);
	p->pktlen = n;
	assert_int_equal(pgpkey_packet(p->pkt, n, &tag, &h, &p->sigbodylen),
	    0);
	assert_int_equal(tag, 2);
	assert_int_equal(h + p->sigbodylen, n);
	p->sigbody = p->pkt + h;
}

/*
 * Check the v4 signature packet's fields and its signature over canon
 * (the canonical text): 1 verified, 0 not.
 */
static int
verify(const struct parsed *p, const char *canon, time_t when)
{
	const unsigned char *s = p->sigbody;
	unsigned char trailer[6], digest[32], sig[512];
	size_t hashed, unhashed, off, bits, n, size;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pc;
	unsigned int dlen;
	int ok;

	assert_int_equal(s[0], 4);    /* version */
	assert_int_equal(s[1], 0x01); /* canonical text */
	assert_int_equal(s[2], PGPKEY_PK_RSA);
	assert_int_equal(s[3], PGPKEY_HASH_SHA256);
	hashed = (size_t)s[4] << 8 | s[5];
	/* issuer fingerprint (33, v4) then creation time (2) */
	assert_int_equal(hashed, 23 + 6);
	assert_int_equal(s[6], 22);
	assert_int_equal(s[7], 33);
	assert_int_equal(s[8], 4);
	assert_memory_equal(s + 9, fpr1, PGPKEY_FPR_LEN);
	assert_int_equal(s[29], 5);
	assert_int_equal(s[30], 2);
	assert_int_equal((unsigned long)s[31] << 24 | (unsigned long)s[32] << 16 |
	    (unsigned long)s[33] << 8 | s[34], (unsigned long)when);
	off = 6 + hashed;
	unhashed = (size_t)s[off] << 8 | s[off + 1];
	assert_int_equal(unhashed, 10); /* issuer key ID (16) */
	assert_int_equal(s[off + 2], 9);
	assert_int_equal(s[off + 3], 16);
	assert_memory_equal(s + off + 4, fpr1 + 12, 8);
	off += 2 + unhashed;
	trailer[0] = 4;
	trailer[1] = 0xff;
	trailer[2] = trailer[3] = trailer[4] = 0;
	trailer[5] = (unsigned char)(6 + hashed);
	assert_true(EVP_DigestInit_ex(md, EVP_sha256(), NULL));
	assert_true(EVP_DigestUpdate(md, canon, strlen(canon)));
	assert_true(EVP_DigestUpdate(md, s, 6 + hashed));
	assert_true(EVP_DigestUpdate(md, trailer, sizeof(trailer)));
	assert_true(EVP_DigestFinal_ex(md, digest, &dlen));
	EVP_MD_CTX_free(md);
	ok = s[off] == digest[0] && s[off + 1] == digest[1];
	off += 2;
	/* The MPI: its bit count, no leading zero octets. */
	bits = (size_t)s[off] << 8 | s[off + 1];
	n = (bits + 7) / 8;
	assert_int_equal(off + 2 + n, p->sigbodylen);
	assert_true(s[off + 2] != 0 && s[off + 2] >> ((bits - 1) % 8) == 1);
	size = (size_t)EVP_PKEY_get_size(rsa_key);
	assert_true(n <= size && size <= sizeof(sig));
	memset(sig, 0, size - n);
	memcpy(sig + size - n, s + off + 2, n);
	pc = EVP_PKEY_CTX_new(rsa_key, NULL);
	assert_non_null(pc);
	assert_true(EVP_PKEY_verify_init(pc) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0);
	assert_true(EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) > 0);
	ok = ok && EVP_PKEY_verify(pc, sig, size, digest, dlen) == 1;
	EVP_PKEY_CTX_free(pc);
	return ok;
}

static void
clearsign(const char *text, struct parsed *p)
{
	char err[256] = "", *out = NULL;
	size_t outlen = 0;

	assert_int_equal(pgpsig_clearsign(text, strlen(text), fpr1, WHEN1,
	    sign_openssl, rsa_key, &out, &outlen, err, sizeof(err)), 0);
	assert_non_null(out);
	assert_int_equal(outlen, strlen(out));
	parse(out, p);
	free(out);
}

static void
test_crc24(void **state)
{
	(void)state;
	assert_int_equal(pgpkey_crc24((const unsigned char *)"", 0),
	    0xb704ce);
	/* The CRC-24/OPENPGP check value. */
	assert_int_equal(pgpkey_crc24((const unsigned char *)"123456789", 9),
	    0x21cf02);
}

static void
test_plain_text(void **state)
{
	struct parsed p;

	(void)state;
	clearsign("Hello, this is an automated message.\nSecond line\n", &p);
	assert_string_equal(p.body,
	    "Hello, this is an automated message.\nSecond line\n");
	/* The last line ending is not signed; the others are CRLF. */
	assert_true(verify(&p, "Hello, this is an automated message.\r\n"
	    "Second line", WHEN1));
	/* and the check can fail: a signed line ending, another text */
	assert_false(verify(&p, "Hello, this is an automated message.\r\n"
	    "Second line\r\n", WHEN1));
	assert_false(verify(&p, "Hello, this is an automated message.\n"
	    "Second line", WHEN1));
	free(p.body);
}

static void
test_dash_escape_and_canonical(void **state)
{
	struct parsed p;

	(void)state;
	clearsign("-----BEGIN PGP SIGNATURE-----\n"
	    "- a list item  \t\n"
	    "From the server\n"
	    "Fromage\n"
	    "a CRLF line\r\n"
	    "  indented -\n"
	    "\n"
	    "last, no newline", &p);
	/* Escaped as RFC 4880 7.1 says; trailing blanks and CR cut. */
	assert_string_equal(p.body,
	    "- -----BEGIN PGP SIGNATURE-----\n"
	    "- - a list item\n"
	    "- From the server\n"
	    "Fromage\n"
	    "a CRLF line\n"
	    "  indented -\n"
	    "\n"
	    "last, no newline\n");
	/* Signed: the text unescaped, without trailing blanks, CRLF. */
	assert_true(verify(&p, "-----BEGIN PGP SIGNATURE-----\r\n"
	    "- a list item\r\n"
	    "From the server\r\n"
	    "Fromage\r\n"
	    "a CRLF line\r\n"
	    "  indented -\r\n"
	    "\r\n"
	    "last, no newline", WHEN1));
	/* The trailing blanks are not part of what is signed. */
	assert_false(verify(&p, "-----BEGIN PGP SIGNATURE-----\r\n"
	    "- a list item  \t\r\n"
	    "From the server\r\n"
	    "Fromage\r\n"
	    "a CRLF line\r\n"
	    "  indented -\r\n"
	    "\r\n"
	    "last, no newline", WHEN1));
	free(p.body);
}

static void
test_empty_and_blank_lines(void **state)
{
	struct parsed p;

	(void)state;
	clearsign("", &p);
	assert_string_equal(p.body, "\n");
	assert_true(verify(&p, "", WHEN1));
	free(p.body);
	clearsign("\n\nx\n\n", &p);
	assert_string_equal(p.body, "\n\nx\n\n");
	assert_true(verify(&p, "\r\n\r\nx\r\n", WHEN1));
	free(p.body);
}

static void
test_signer_failure(void **state)
{
	char err[256] = "", *out = (char *)"unset";

	(void)state;
	assert_int_equal(pgpsig_clearsign("text\n", 5, fpr1, WHEN1,
	    sign_fails, NULL, &out, NULL, err, sizeof(err)), -1);
	assert_null(out);
	assert_string_equal(err, "the key process said no");
}

static void
test_packet_headers(void **state)
{
	unsigned char hdr[6], buf[70000];
	size_t lens[] = { 0, 191, 192, 8383, 8384, 65000 }, i, h, b, n;
	int tag;

	(void)state;
	memset(buf, 0, sizeof(buf));
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		n = pgpkey_header(2, lens[i], hdr);
		assert_int_equal(n, lens[i] < 192 ? 2 : lens[i] < 8384 ? 3 : 6);
		memcpy(buf, hdr, n);
		assert_int_equal(pgpkey_packet(buf, n + lens[i], &tag, &h, &b),
		    0);
		assert_int_equal(tag, 2);
		assert_int_equal(h, n);
		assert_int_equal(b, lens[i]);
		/* one byte short: refused */
		if (lens[i] > 0)
			assert_int_equal(pgpkey_packet(buf, n + lens[i] - 1,
			    &tag, &h, &b), -1);
	}
	/* old format, two-octet length: gpg's signature packets */
	buf[0] = 0x89;
	buf[1] = 0x01;
	buf[2] = 0x0e;
	assert_int_equal(pgpkey_packet(buf, 3 + 0x10e, &tag, &h, &b), 0);
	assert_int_equal(tag, 2);
	assert_int_equal(h, 3);
	assert_int_equal(b, 0x10e);
	/* partial body lengths are refused */
	buf[0] = 0xc2;
	buf[1] = 0xe1;
	assert_int_equal(pgpkey_packet(buf, 100, &tag, &h, &b), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc24),
		cmocka_unit_test(test_plain_text),
		cmocka_unit_test(test_dash_escape_and_canonical),
		cmocka_unit_test(test_empty_and_blank_lines),
		cmocka_unit_test(test_signer_failure),
		cmocka_unit_test(test_packet_headers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
