/*
 * pgpmsg_tool.c - src/common/pgpmsg*.c on the command line, for the
 * interoperability tests with GnuPG and librnp
 * (tests/system/test_pgpmsg_interop.py).  It plays the server: SECKEY is
 * the binary export of a throwaway unprotected OpenPGP key (what the key
 * process reads, through pgpkey_read_secret), ENCFPR its encryption
 * subkey, and the RSA private operations are the callbacks the key
 * process would answer.
 *
 *   pgpmsg_tool decrypt SECKEY ENCFPR        message (armored or binary)
 *       on stdin -> the packets inside on stdout, "integrity=0|1" and
 *       "keyid=<the key ID that decrypted>" on stderr
 *   pgpmsg_tool answer SECKEY ENCFPR PUBKEY [zlib]   data on stdin ->
 *       armored message signed by SECKEY, encrypted to PUBKEY
 *   pgpmsg_tool detach SECKEY ENCFPR         data on stdin -> armored
 *       detached signature
 *   pgpmsg_tool pubkey PUBKEY                "primary FPR", "subkey FPR
 *       FLAGS", "encrypt FPR" lines
 *
 * Exit 0, 1 with "error: ..." on stderr, 2 on bad usage.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "pgpkey.h"
#include "pgpmsg.h"
#include "pgpmsg_rsa.h"
#include "pgpsig.h"
#include "util.h"

struct server {
	EVP_PKEY *sign;    /* the primary */
	EVP_PKEY *decrypt; /* the encryption subkey */
	unsigned char fpr[PGPKEY_FPR_LEN];
	struct rsa_keys keys; /* both, for the decryption callback */
};

static void
usage(void)
{
	fprintf(stderr, "usage: pgpmsg_tool decrypt SECKEY ENCFPR\n"
	    "       pgpmsg_tool answer SECKEY ENCFPR PUBKEY [zlib]\n"
	    "       pgpmsg_tool detach SECKEY ENCFPR\n"
	    "       pgpmsg_tool pubkey PUBKEY\n");
	exit(2);
}

static void
die(const char *what, const char *err)
{
	fprintf(stderr, "error: %s: %s\n", what, err);
	exit(1);
}

/* A file (or "-": stdin), dearmored when it is armored. */
static unsigned char *
load(const char *path, const char *type, size_t *len)
{
	unsigned char *bin = NULL;
	char *text = NULL, err[256];

	if (file_read(strcmp(path, "-") == 0 ? "/dev/stdin" : path,
	    PGPMSG_ARMOR_MAX, &text, len) == -1)
		die(path, "cannot read it");
	if (type == NULL || memmem(text, *len, "-----BEGIN PGP ", 15) == NULL)
		return (unsigned char *)text;
	if (pgpmsg_dearmor(text, *len, type, &bin, len, err,
	    sizeof(err)) == -1)
		die(path, err);
	free(text);
	return bin;
}

static void
server_load(struct server *s, const char *seckey, const char *encfpr)
{
	unsigned char *buf;
	size_t len;
	char err[256];

	buf = load(seckey, NULL, &len);
	if (pgpkey_read_secret(buf, len, encfpr, &s->sign, &s->decrypt,
	    s->fpr, err, sizeof(err)) == -1)
		die(seckey, err);
	OPENSSL_clear_free(buf, len);
	/* The primary decrypts too: the zTrustee client encrypts to it. */
	s->keys.key[0] = s->sign;
	memcpy(s->keys.keyid[0], s->fpr + 12, PGPKEY_KEYID_LEN);
	s->keys.key[1] = s->decrypt;
	if (crypto_hex_decode(encfpr + 24, 16, s->keys.keyid[1],
	    PGPKEY_KEYID_LEN) == -1)
		die(encfpr, "not a fingerprint");
	s->keys.n = 2;
}

static void
put_hex(const char *label, const unsigned char *b, size_t n,
    const char *tail)
{
	char hex[2 * PGPKEY_FPR_LEN + 1];

	hex_encode(b, n, hex, 1);
	printf("%s %s%s\n", label, hex, tail);
}

static void
write_out(const void *p, size_t n)
{
	if (fwrite(p, 1, n, stdout) != n || fflush(stdout) != 0)
		die("stdout", "write failed");
}

static int
cmd_decrypt(struct server *s)
{
	unsigned char *msg, *plain;
	size_t len, plen;
	int integrity;
	char err[256], id[2 * PGPKEY_KEYID_LEN + 1];

	msg = load("-", PGPMSG_ARMOR_MESSAGE, &len);
	if (pgpmsg_decrypt(msg, len, rsa_decrypt, &s->keys, &plain, &plen,
	    &integrity, err, sizeof(err)) == -1)
		die("decrypt", err);
	hex_encode(s->keys.used, PGPKEY_KEYID_LEN, id, 1);
	fprintf(stderr, "integrity=%d\nkeyid=%s\n", integrity, id);
	write_out(plain, plen);
	OPENSSL_clear_free(plain, plen);
	free(msg);
	return 0;
}

static int
cmd_answer(struct server *s, const char *pubpath, int flags)
{
	unsigned char *data, *pub, *packets, *msg;
	struct pgpmsg_pubkey *key;
	size_t len, publen, plen, mlen, tlen;
	char err[256], *text;

	pub = load(pubpath, PGPMSG_ARMOR_PUBKEY, &publen);
	if (pgpmsg_pubkey_parse(pub, publen, &key, err, sizeof(err)) == -1)
		die(pubpath, err);
	data = load("-", NULL, &len);
	if (pgpmsg_sign(data, len, s->fpr, time(NULL), flags, rsa_sign, s->sign,
	    &packets, &plen, err, sizeof(err)) == -1)
		die("sign", err);
	if (pgpmsg_encrypt(packets, plen, key, &msg, &mlen, err,
	    sizeof(err)) == -1)
		die("encrypt", err);
	if (pgpmsg_armor(PGPMSG_ARMOR_MESSAGE, "keytrustee", msg, mlen, &text,
	    &tlen) == -1)
		die("armor", "failed");
	write_out(text, tlen);
	OPENSSL_clear_free(packets, plen);
	free(text);
	free(msg);
	free(data);
	free(pub);
	pgpmsg_pubkey_free(key);
	return 0;
}

static int
cmd_detach(struct server *s)
{
	unsigned char *data, *sig;
	size_t len, slen, tlen;
	char err[256], *text;

	data = load("-", NULL, &len);
	if (pgpmsg_detached(data, len, s->fpr, time(NULL), rsa_sign, s->sign,
	    &sig, &slen, err, sizeof(err)) == -1)
		die("sign", err);
	if (pgpmsg_armor(PGPMSG_ARMOR_SIGNATURE, NULL, sig, slen, &text,
	    &tlen) == -1)
		die("armor", "failed");
	write_out(text, tlen);
	free(text);
	free(sig);
	free(data);
	return 0;
}

static int
cmd_pubkey(const char *path)
{
	struct pgpmsg_pubkey *key;
	unsigned char *bin;
	size_t len, i;
	char err[256], tail[32];

	bin = load(path, PGPMSG_ARMOR_PUBKEY, &len);
	if (pgpmsg_pubkey_parse(bin, len, &key, err, sizeof(err)) == -1)
		die(path, err);
	put_hex("primary", key->primary.pub.fpr, PGPKEY_FPR_LEN, "");
	for (i = 0; i < key->nsubkeys; i++) {
		snprintf(tail, sizeof(tail), " %d", key->subkeys[i].flags);
		put_hex("subkey", key->subkeys[i].pub.fpr, PGPKEY_FPR_LEN,
		    tail);
	}
	if (key->encrypt != NULL)
		put_hex("encrypt", key->encrypt->pub.fpr, PGPKEY_FPR_LEN, "");
	pgpmsg_pubkey_free(key);
	free(bin);
	return 0;
}

int
main(int argc, char **argv)
{
	struct server s;
	int r = 2;

	memset(&s, 0, sizeof(s));
	if (argc == 3 && strcmp(argv[1], "pubkey") == 0)
		return cmd_pubkey(argv[2]);
	if (argc < 4)
		usage();
	if (strcmp(argv[1], "decrypt") == 0 && argc == 4) {
		server_load(&s, argv[2], argv[3]);
		r = cmd_decrypt(&s);
	} else if (strcmp(argv[1], "answer") == 0 && (argc == 5 ||
	    (argc == 6 && strcmp(argv[5], "zlib") == 0))) {
		server_load(&s, argv[2], argv[3]);
		r = cmd_answer(&s, argv[4], argc == 6 ? PGPMSG_ZLIB : 0);
	} else if (strcmp(argv[1], "detach") == 0 && argc == 4) {
		server_load(&s, argv[2], argv[3]);
		r = cmd_detach(&s);
	} else {
		usage();
	}
	EVP_PKEY_free(s.sign);
	EVP_PKEY_free(s.decrypt);
	return r;
}
