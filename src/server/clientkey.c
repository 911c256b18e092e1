/*
 * clientkey.c - a registering client's OpenPGP public key, in-process with
 * librnp: check it (the rules pgp_import_pubkey applies with gpg) and
 * encrypt its signing secret to it.  Each key has an rnp_ffi_t of its own,
 * in memory only: no keyring on disk, no process, no lock shared between
 * the workers.
 */
#include <ctype.h>
#include <rnp/rnp.h>
#include <rnp/rnp_err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "clientkey.h"
#include "pgpkey.h"

#define CK_BEGIN "-----BEGIN PGP "
#define CK_END "-----END PGP "

struct clientkey {
	rnp_ffi_t ffi;
	rnp_key_handle_t key; /* the primary key */
};

void
clientkey_free(struct clientkey *k)
{
	if (k == NULL)
		return;
	rnp_key_handle_destroy(k->key);
	rnp_ffi_destroy(k->ffi);
	free(k);
}

/* Is key (primary or subkey) valid now, not revoked, not expired? */
static int
clientkey_usable(rnp_key_handle_t key)
{
	bool valid = false, revoked = true, expired = true;

	if (rnp_key_is_valid(key, &valid) != RNP_SUCCESS ||
	    rnp_key_is_revoked(key, &revoked) != RNP_SUCCESS ||
	    rnp_key_is_expired(key, &expired) != RNP_SUCCESS)
		return 0;
	return valid && !revoked && !expired;
}

static int
clientkey_can_encrypt(rnp_key_handle_t key)
{
	bool enc = false;

	return rnp_key_allows_usage(key, "encrypt", &enc) == RNP_SUCCESS &&
	    enc && clientkey_usable(key);
}

/* Has the primary key a user ID with a valid self-signature (gpg's rule)? */
static int
clientkey_has_uid(rnp_key_handle_t key)
{
	rnp_uid_handle_t uid = NULL;
	size_t n = 0, i;
	bool valid;
	int ok = 0;

	if (rnp_key_get_uid_count(key, &n) != RNP_SUCCESS)
		return 0;
	for (i = 0; i < n && !ok; i++) {
		valid = false;
		if (rnp_key_get_uid_handle_at(key, i, &uid) != RNP_SUCCESS)
			return 0;
		ok = rnp_uid_is_valid(uid, &valid) == RNP_SUCCESS && valid;
		rnp_uid_handle_destroy(uid);
	}
	return ok;
}

/* Does the primary key or one of its subkeys serve for encryption now? */
static int
clientkey_enc_subkey(rnp_key_handle_t key)
{
	rnp_key_handle_t sub = NULL;
	size_t n = 0, i;
	int ok;

	if (clientkey_can_encrypt(key))
		return 1;
	if (rnp_key_get_subkey_count(key, &n) != RNP_SUCCESS)
		return 0;
	for (i = 0, ok = 0; i < n && !ok; i++) {
		if (rnp_key_get_subkey_at(key, i, &sub) != RNP_SUCCESS)
			return 0;
		ok = clientkey_can_encrypt(sub);
		rnp_key_handle_destroy(sub);
	}
	return ok;
}

/*
 * The one primary key of the ffi (its fingerprint in fpr, upper-case):
 * 1, 0 when there is none, -1 when there is more than one key (another
 * primary, or a subkey bound to none of them).
 */
static int
clientkey_primary(rnp_ffi_t ffi, char fpr[PGP_FPR_LEN + 1])
{
	rnp_identifier_iterator_t it = NULL;
	rnp_key_handle_t h = NULL;
	const char *id;
	char *pfpr = NULL;
	bool primary;
	int nprim = 0, stray = 0;

	fpr[0] = '\0';
	if (rnp_identifier_iterator_create(ffi, &it, "fingerprint") !=
	    RNP_SUCCESS)
		return 0;
	while (rnp_identifier_iterator_next(it, &id) == RNP_SUCCESS &&
	    id != NULL) {
		if (rnp_locate_key(ffi, "fingerprint", id, &h) != RNP_SUCCESS ||
		    h == NULL)
			continue;
		primary = false;
		rnp_key_is_primary(h, &primary);
		if (primary) {
			/* Not v4 (40 hex): left empty, refused. */
			if (nprim++ == 0 && strlen(id) == PGP_FPR_LEN)
				memcpy(fpr, id, PGP_FPR_LEN + 1);
		} else if (rnp_key_get_primary_fprint(h, &pfpr) !=
			RNP_SUCCESS ||
		    pfpr == NULL)
			stray = 1;
		rnp_buffer_destroy(pfpr);
		pfpr = NULL;
		rnp_key_handle_destroy(h);
		h = NULL;
	}
	rnp_identifier_iterator_destroy(it);
	if (nprim == 0)
		return 0;
	if (nprim > 1 || stray)
		return -1;
	return nprim;
}

/*
 * The checksum line ("=" and 4 base64 characters) that ends the armored
 * block [p, end), end being its END line: 1 with *crc, 0 when there is none,
 * -1 when it is malformed.
 */
static int
clientkey_armor_crc(const char *p, const char *end, uint32_t *crc)
{
	const char *line = NULL, *q;
	unsigned char raw[4];
	size_t n;

	/* The line before the END line. */
	for (q = p; q < end; q++)
		if (q[0] == '\n' && q + 1 < end)
			line = q + 1;
	if (line == NULL || *line != '=')
		return 0;
	for (n = 0; line + 1 + n < end && line[1 + n] != '\r' &&
	     line[1 + n] != '\n' && line[1 + n] != ' ' && line[1 + n] != '\t';
	     n++)
		;
	if (n != 4 ||
	    EVP_DecodeBlock(raw, (const unsigned char *)line + 1, 4) != 3)
		return -1;
	*crc = (uint32_t)raw[0] << 16 | (uint32_t)raw[1] << 8 | raw[2];
	return 1;
}

/*
 * Every armored block of armored, decoded into out, as gpg reads them
 * (text around the blocks ignored), each one's checksum checked: 0, or -1
 * with err.
 */
static int
clientkey_dearmor(
    const char *armored, size_t len, rnp_output_t out, char *err, size_t errlen)
{
	const char *p = armored, *end = armored + len, *b, *e, *eol;
	rnp_input_t in = NULL;
	rnp_result_t r;
	uint8_t *buf;
	size_t before = 0, after;
	uint32_t want = 0;
	int nblocks = 0, c;

	while ((b = memmem(p, (size_t)(end - p), CK_BEGIN, strlen(CK_BEGIN))) !=
	    NULL) {
		if ((e = memmem(b, (size_t)(end - b), CK_END,
			 strlen(CK_END))) == NULL) {
			snprintf(err, errlen, "the armor has no END line");
			return -1;
		}
		eol = memchr(e, '\n', (size_t)(end - e));
		eol = eol == NULL ? end : eol + 1;
		if ((c = clientkey_armor_crc(b, e, &want)) == -1) {
			snprintf(err, errlen,
			    "the armor's checksum line is malformed");
			return -1;
		}
		if ((r = rnp_input_from_memory(&in, (const uint8_t *)b,
			 (size_t)(eol - b), false)) != RNP_SUCCESS ||
		    (r = rnp_dearmor(in, out)) != RNP_SUCCESS ||
		    (r = rnp_output_memory_get_buf(out, &buf, &after, false)) !=
			RNP_SUCCESS) {
			rnp_input_destroy(in);
			snprintf(err, errlen, "reading the armor: %s",
			    rnp_result_to_string(r));
			return -1;
		}
		rnp_input_destroy(in);
		in = NULL;
		if (c == 1 &&
		    pgpkey_crc24(buf + before, after - before) != want) {
			snprintf(err, errlen,
			    "the armor's checksum does not match its data");
			return -1;
		}
		before = after;
		nblocks++;
		p = eol;
	}
	if (nblocks == 0) {
		snprintf(err, errlen, "no OpenPGP armor found");
		return -1;
	}
	return 0;
}

int
clientkey_load(const char *armored, size_t len, struct clientkey **out,
    char fpr[PGP_FPR_LEN + 1], char *err, size_t errlen)
{
	struct clientkey *k = NULL;
	rnp_output_t bin = NULL;
	rnp_input_t in = NULL;
	rnp_result_t e;
	uint8_t *buf;
	size_t nsec = 0, n = 0, nread, i;
	int ret = -1, nkeys;

	*out = NULL;
	if (memmem(armored, len, "PRIVATE KEY BLOCK", 17) != NULL) {
		snprintf(err, errlen,
		    "secret key material given; send the public key only");
		return -1;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if ((e = rnp_ffi_create(&k->ffi, "GPG", "GPG")) != RNP_SUCCESS) {
		k->ffi = NULL;
		snprintf(err, errlen, "librnp: %s", rnp_result_to_string(e));
		goto out;
	}
	if ((e = rnp_output_to_memory(&bin, len)) != RNP_SUCCESS) {
		snprintf(err, errlen, "librnp: %s", rnp_result_to_string(e));
		goto out;
	}
	if (clientkey_dearmor(armored, len, bin, err, errlen) == -1)
		goto out;
	if ((e = rnp_output_memory_get_buf(bin, &buf, &n, false)) !=
		RNP_SUCCESS ||
	    (e = rnp_input_from_memory(&in, buf, n, false)) != RNP_SUCCESS) {
		snprintf(err, errlen, "librnp: %s", rnp_result_to_string(e));
		goto out;
	}
	/*
	 * One transferable key at a time, to count them as gpg does (the
	 * same key twice is two).  Secret keys are read too, to be refused.
	 */
	for (nread = 0;; nread++) {
		e = rnp_import_keys(k->ffi, in,
		    RNP_LOAD_SAVE_PUBLIC_KEYS | RNP_LOAD_SAVE_SECRET_KEYS |
			RNP_LOAD_SAVE_SINGLE,
		    NULL);
		if (e == RNP_ERROR_EOF)
			break;
		if (e != RNP_SUCCESS) {
			snprintf(err, errlen, "importing the key: %s",
			    rnp_result_to_string(e));
			goto out;
		}
	}
	if (rnp_get_secret_key_count(k->ffi, &nsec) != RNP_SUCCESS ||
	    nsec > 0) {
		snprintf(err, errlen,
		    "secret key material given; send the public key only");
		goto out;
	}
	if (nread == 0 || (nkeys = clientkey_primary(k->ffi, fpr)) == 0) {
		snprintf(err, errlen, "no OpenPGP public key found");
		goto out;
	}
	if (nread > 1 || nkeys == -1) {
		snprintf(err, errlen, "more than one OpenPGP key given");
		goto out;
	}
	if (strlen(fpr) != PGP_FPR_LEN) {
		snprintf(err, errlen, "the key was not accepted: not a v4 key");
		goto out;
	}
	for (i = 0; i < PGP_FPR_LEN; i++)
		fpr[i] = (char)toupper((unsigned char)fpr[i]);
	if ((e = rnp_locate_key(k->ffi, "fingerprint", fpr, &k->key)) !=
		RNP_SUCCESS ||
	    k->key == NULL) {
		snprintf(err, errlen, "reading back the key: %s",
		    rnp_result_to_string(e));
		goto out;
	}
	if (!clientkey_has_uid(k->key)) {
		snprintf(
		    err, errlen, "the key was not accepted: no valid user ID");
		goto out;
	}
	if (!clientkey_usable(k->key) || !clientkey_enc_subkey(k->key)) {
		snprintf(
		    err, errlen, "the key has no usable encryption subkey");
		goto out;
	}
	*out = k;
	k = NULL;
	ret = 0;
out:
	rnp_input_destroy(in);
	rnp_output_destroy(bin);
	clientkey_free(k);
	return ret;
}

int
clientkey_encrypt(struct clientkey *k, const void *plain, size_t len,
    char **armored, size_t *outlen, char *err, size_t errlen)
{
	rnp_input_t in = NULL;
	rnp_output_t out = NULL;
	rnp_op_encrypt_t op = NULL;
	rnp_result_t e;
	uint8_t *buf = NULL;
	size_t n = 0;
	int ret = -1;

	*armored = NULL;
	/*
	 * SEIPD with MDC (no AEAD: gpg 2.2 and GPGME clients read it),
	 * AES-256, nothing to compress in a 64-hex secret.
	 */
	if ((e = rnp_input_from_memory(&in, plain, len, false)) !=
		RNP_SUCCESS ||
	    (e = rnp_output_to_memory(&out, 0)) != RNP_SUCCESS ||
	    (e = rnp_op_encrypt_create(&op, k->ffi, in, out)) != RNP_SUCCESS ||
	    (e = rnp_op_encrypt_add_recipient(op, k->key)) != RNP_SUCCESS ||
	    (e = rnp_op_encrypt_set_armor(op, true)) != RNP_SUCCESS ||
	    (e = rnp_op_encrypt_set_cipher(op, "AES256")) != RNP_SUCCESS ||
	    (e = rnp_op_encrypt_set_aead(op, "None")) != RNP_SUCCESS ||
	    (e = rnp_op_encrypt_set_compression(op, "Uncompressed", 0)) !=
		RNP_SUCCESS ||
	    (e = rnp_op_encrypt_execute(op)) != RNP_SUCCESS ||
	    (e = rnp_output_memory_get_buf(out, &buf, &n, false)) !=
		RNP_SUCCESS) {
		snprintf(err, errlen, "encrypting to the client's key: %s",
		    rnp_result_to_string(e));
		goto out;
	}
	if ((*armored = malloc(n + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(*armored, buf, n);
	(*armored)[n] = '\0';
	if (outlen != NULL)
		*outlen = n;
	ret = 0;
out:
	rnp_op_encrypt_destroy(op);
	rnp_output_destroy(out);
	rnp_input_destroy(in);
	return ret;
}

int
clientkey_qualified(struct clientkey *k, char out[PGP_QFPR_MAX])
{
	char *alg = NULL, *fpr = NULL;
	uint32_t bits = 0;
	int ret = -1;

	if (rnp_key_get_alg(k->key, &alg) == RNP_SUCCESS &&
	    strcmp(alg, RNP_ALGNAME_RSA) == 0 &&
	    rnp_key_get_bits(k->key, &bits) == RNP_SUCCESS &&
	    rnp_key_get_fprint(k->key, &fpr) == RNP_SUCCESS &&
	    strlen(fpr) == PGP_FPR_LEN) {
		snprintf(out, PGP_QFPR_MAX, "%uR/%s", (unsigned)bits, fpr);
		ret = 0;
	}
	rnp_buffer_destroy(alg);
	rnp_buffer_destroy(fpr);
	return ret;
}

/* The key provider's context: who finds a key, and whether it did. */
struct ck_provider {
	clientkey_lookup_fn *lookup;
	void *arg;
	int tried;
	/* What it imported (ring only): the armored key's digest. */
	unsigned char digest[SHA256_DIGEST_LENGTH];
	int imported;
};

/*
 * A worker's keys of the clients whose requests it verified: one librnp
 * context holding them, imported and checked once, and for each the
 * digest of the armored key it was imported from and the time it stops
 * being valid (librnp judged its self-signatures, revocation and expiry
 * at import).  Used by one thread only; no lock.
 */
#define CK_RING_MAX 512
struct ck_entry {
	char keyid[17]; /* its primary's key ID, upper-case hex */
	unsigned char digest[SHA256_DIGEST_LENGTH];
	uint64_t valid_till;
};
struct clientkey_ring {
	rnp_ffi_t ffi;
	struct ck_provider p; /* the ffi's key provider's, per call */
	struct ck_entry e[CK_RING_MAX];
	int n;
};

/* librnp asks for the key of a signature: import the one lookup finds. */
static void
ck_provide(rnp_ffi_t ffi, void *ctx, const char *type, const char *id,
    bool secret)
{
	struct ck_provider *p = ctx;
	rnp_input_t in = NULL;
	char *armored;

	if (secret || p->tried || strcmp(type, "keyid") != 0 ||
	    strlen(id) != 16)
		return;
	p->tried = 1; /* one signature, one key: never a second look-up */
	if ((armored = p->lookup(p->arg, id)) == NULL)
		return;
	SHA256((const unsigned char *)armored, strlen(armored), p->digest);
	if (rnp_input_from_memory(&in, (const uint8_t *)armored,
		strlen(armored), false) == RNP_SUCCESS &&
	    rnp_import_keys(ffi, in, RNP_LOAD_SAVE_PUBLIC_KEYS, NULL) ==
		RNP_SUCCESS)
		p->imported = 1;
	rnp_input_destroy(in);
	free(armored);
}

/* A ring's context made (again): empty, its provider set. */
static int
ck_ring_reset(struct clientkey_ring *ring)
{
	rnp_ffi_destroy(ring->ffi);
	ring->ffi = NULL;
	ring->n = 0;
	if (rnp_ffi_create(&ring->ffi, "GPG", "GPG") != RNP_SUCCESS) {
		ring->ffi = NULL;
		return -1;
	}
	if (rnp_ffi_set_key_provider(ring->ffi, ck_provide, &ring->p) !=
	    RNP_SUCCESS) {
		rnp_ffi_destroy(ring->ffi);
		ring->ffi = NULL;
		return -1;
	}
	return 0;
}

struct clientkey_ring *
clientkey_ring_new(void)
{
	struct clientkey_ring *ring;

	if ((ring = calloc(1, sizeof(*ring))) == NULL)
		return NULL;
	if (ck_ring_reset(ring) == -1) {
		free(ring);
		return NULL;
	}
	return ring;
}

void
clientkey_ring_free(struct clientkey_ring *ring)
{
	if (ring == NULL)
		return;
	rnp_ffi_destroy(ring->ffi);
	free(ring);
}

static struct ck_entry *
ck_ring_find(struct clientkey_ring *ring, const char *keyid)
{
	int i;

	for (i = 0; i < ring->n; i++)
		if (strcmp(ring->e[i].keyid, keyid) == 0)
			return &ring->e[i];
	return NULL;
}

/*
 * The one good signature of op: its signer's primary and its time.  The
 * signing key must be the primary (what the look-up by key ID finds).
 */
static int
ck_signer(rnp_op_verify_t op, char signer[PGP_FPR_LEN + 1], time_t *created,
    char *err, size_t errlen)
{
	rnp_op_verify_signature_t sig = NULL;
	rnp_key_handle_t key = NULL;
	char *fpr = NULL;
	bool primary = false;
	uint32_t t = 0;
	size_t n = 0, i;
	int ret = -1;

	if (rnp_op_verify_get_signature_count(op, &n) != RNP_SUCCESS ||
	    n != 1) {
		snprintf(err, errlen, "%s", n == 0 ? "the payload is not signed"
						   : "more than one signature");
		return -1;
	}
	if (rnp_op_verify_get_signature_at(op, 0, &sig) != RNP_SUCCESS ||
	    rnp_op_verify_signature_get_status(sig) != RNP_SUCCESS ||
	    rnp_op_verify_signature_get_key(sig, &key) != RNP_SUCCESS ||
	    key == NULL) {
		snprintf(err, errlen, "the signature does not verify against "
				      "a registered client's key");
		goto out;
	}
	if (rnp_key_is_primary(key, &primary) != RNP_SUCCESS || !primary ||
	    rnp_key_get_fprint(key, &fpr) != RNP_SUCCESS || fpr == NULL ||
	    strlen(fpr) != PGP_FPR_LEN ||
	    rnp_op_verify_signature_get_times(sig, &t, NULL) != RNP_SUCCESS) {
		snprintf(err, errlen, "the signer's key cannot be read");
		goto out;
	}
	for (i = 0; i < PGP_FPR_LEN; i++)
		signer[i] = (char)toupper((unsigned char)fpr[i]);
	signer[PGP_FPR_LEN] = '\0';
	*created = (time_t)t;
	ret = 0;
out:
	rnp_buffer_destroy(fpr);
	rnp_key_handle_destroy(key);
	return ret;
}

/* One verification in ffi (see clientkey_verify). */
static int
ck_verify(rnp_ffi_t ffi, const unsigned char *msg, size_t len,
    const unsigned char *sig, size_t siglen, unsigned char **data,
    size_t *datalen, char signer[PGP_FPR_LEN + 1], time_t *created,
    time_t ahead, char *err, size_t errlen)
{
	rnp_input_t in = NULL, sigin = NULL;
	rnp_output_t out = NULL;
	rnp_op_verify_t op = NULL;
	rnp_result_t e;
	uint8_t *buf;
	size_t n = 0;
	int ret = -1;

	if (data != NULL)
		*data = NULL;
	if ((ahead > 0 &&
		(e = rnp_set_timestamp(ffi, (uint64_t)(time(NULL) + ahead))) !=
		    RNP_SUCCESS) ||
	    (e = rnp_input_from_memory(&in, msg, len, false)) != RNP_SUCCESS) {
		snprintf(err, errlen, "librnp: %s", rnp_result_to_string(e));
		goto out;
	}
	if (sig != NULL)
		e = rnp_input_from_memory(&sigin, sig, siglen, false);
	else
		e = rnp_output_to_memory(&out, 0);
	if (e == RNP_SUCCESS)
		e = sig != NULL
		    ? rnp_op_verify_detached_create(&op, ffi, in, sigin)
		    : rnp_op_verify_create(&op, ffi, in, out);
	if (e != RNP_SUCCESS) {
		snprintf(err, errlen, "librnp: %s", rnp_result_to_string(e));
		goto out;
	}
	/* Its result says what failed; the signature's status, which one. */
	(void)rnp_op_verify_execute(op);
	if (ck_signer(op, signer, created, err, errlen) == -1)
		goto out;
	if (sig == NULL) {
		if (rnp_output_memory_get_buf(out, &buf, &n, false) !=
			RNP_SUCCESS ||
		    (*data = malloc(n + 1)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		memcpy(*data, buf, n);
		(*data)[n] = '\0';
		*datalen = n;
	}
	ret = 0;
out:
	rnp_op_verify_destroy(op);
	rnp_output_destroy(out);
	rnp_input_destroy(sigin);
	rnp_input_destroy(in);
	return ret;
}

/*
 * The key the ring's context verified signer's signature with is the one
 * the client has now: imported from the same armored key (the look-up
 * gives it again: a key changed since is a different text), and still
 * valid when the signature is judged (librnp judged it at import).
 */
static int
ck_ring_current(struct clientkey_ring *ring, const char *signer, time_t ahead)
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	const char *keyid = signer + PGP_FPR_LEN - 16;
	struct ck_entry *ent = ck_ring_find(ring, keyid);
	char *armored;

	if (ent == NULL ||
	    (uint64_t)(time(NULL) + ahead) + 1 >= ent->valid_till)
		return 0;
	if ((armored = ring->p.lookup(ring->p.arg, keyid)) == NULL)
		return 0;
	SHA256((const unsigned char *)armored, strlen(armored), d);
	free(armored);
	return CRYPTO_memcmp(d, ent->digest, sizeof(d)) == 0;
}

/* Remember what the provider imported for signer, for the next request. */
static void
ck_ring_note(struct clientkey_ring *ring, const char *signer)
{
	const char *keyid = signer + PGP_FPR_LEN - 16;
	rnp_key_handle_t key = NULL;
	struct ck_entry *ent;
	uint64_t till = 0;

	if (rnp_locate_key(ring->ffi, "keyid", keyid, &key) != RNP_SUCCESS ||
	    key == NULL || rnp_key_valid_till64(key, &till) != RNP_SUCCESS)
		till = 0;
	rnp_key_handle_destroy(key);
	if ((ent = ck_ring_find(ring, keyid)) == NULL) {
		if (till == 0 || ring->n >= CK_RING_MAX)
			return; /* not kept: looked up again next time */
		ent = &ring->e[ring->n++];
	}
	snprintf(ent->keyid, sizeof(ent->keyid), "%s", keyid);
	memcpy(ent->digest, ring->p.digest, sizeof(ent->digest));
	ent->valid_till = till;
}

/* ck_verify in the ring's context, what its provider imported noted. */
static int
ck_ring_verify(struct clientkey_ring *ring, const unsigned char *msg,
    size_t len, const unsigned char *sig, size_t siglen,
    clientkey_lookup_fn *lookup, void *arg, unsigned char **data,
    size_t *datalen, char signer[PGP_FPR_LEN + 1], time_t *created,
    time_t ahead, char *err, size_t errlen)
{
	int ret;

	memset(&ring->p, 0, sizeof(ring->p));
	ring->p.lookup = lookup;
	ring->p.arg = arg;
	ret = ck_verify(ring->ffi, msg, len, sig, siglen, data, datalen, signer,
	    created, ahead, err, errlen);
	if (ret == 0 && ring->p.imported)
		ck_ring_note(ring, signer);
	return ret;
}

int
clientkey_verify(struct clientkey_ring *ring, const unsigned char *msg,
    size_t len, const unsigned char *sig, size_t siglen,
    clientkey_lookup_fn *lookup, void *arg, unsigned char **data,
    size_t *datalen, char signer[PGP_FPR_LEN + 1], time_t *created,
    time_t ahead, char *err, size_t errlen)
{
	struct ck_provider p = {lookup, arg, 0, {0}, 0};
	rnp_ffi_t ffi = NULL;
	rnp_result_t e;
	int ret;

	if (ring != NULL && (ring->ffi != NULL || ck_ring_reset(ring) == 0)) {
		ret = ck_ring_verify(ring, msg, len, sig, siglen, lookup, arg,
		    data, datalen, signer, created, ahead, err, errlen);
		/* The key looked up now: judged as in a context of its own. */
		if (ring->p.tried)
			return ret;
		/* A key the ring had: taken if it is the client's key now. */
		if (ret == 0 && ck_ring_current(ring, signer, ahead))
			return 0;
		if (ret == 0 && data != NULL) {
			OPENSSL_clear_free(*data, *datalen);
			*data = NULL;
		}
		/*
		 * Refused by it, or it is no longer the client's key (or no
		 * longer valid): the ring starts again, and the request is
		 * judged with the key looked up now.
		 */
		if (ck_ring_reset(ring) == 0)
			return ck_ring_verify(ring, msg, len, sig, siglen,
			    lookup, arg, data, datalen, signer, created, ahead,
			    err, errlen);
	}
	if ((e = rnp_ffi_create(&ffi, "GPG", "GPG")) != RNP_SUCCESS) {
		snprintf(err, errlen, "librnp: %s", rnp_result_to_string(e));
		return -1;
	}
	if ((e = rnp_ffi_set_key_provider(ffi, ck_provide, &p)) !=
	    RNP_SUCCESS) {
		snprintf(err, errlen, "librnp: %s", rnp_result_to_string(e));
		ret = -1;
	} else
		ret = ck_verify(ffi, msg, len, sig, siglen, data, datalen,
		    signer, created, ahead, err, errlen);
	rnp_ffi_destroy(ffi);
	return ret;
}
