/* pgpmsg_pubkey.c - transferable public keys (see pgpmsg.h). */
#include "pgpmsg.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 4880 5.2.1 and 5.2.3.1. */
#define SIG_CERT_FIRST 0x10 /* 0x10..0x13: certifications of a user ID */
#define SIG_CERT_LAST 0x13
#define SIG_SUBKEY_BINDING 0x18
#define SIG_DIRECT 0x1f
#define SIG_KEY_REVOCATION 0x20
#define SIG_SUBKEY_REVOCATION 0x28
#define SUB_CREATED 2
#define SUB_KEY_EXPIRES 9
#define SUB_ISSUER 16
#define SUB_KEY_FLAGS 27
#define SUB_ISSUER_FPR 33

/* What a v4 signature says of the key it is about. */
struct sig {
	int type;
	uint32_t created;
	uint32_t key_expires; /* seconds after the key's creation; 0: never */
	int flags;            /* -1: no key flags subpacket */
	unsigned char issuer[PGPKEY_KEYID_LEN];
	int has_issuer;
};

/*
 * The subpackets of one area [p, end) into s (hashed: what the signature
 * covers; the unhashed area gives only the issuer).  0, or -1 malformed.
 */
static int
sig_subpackets(const unsigned char *p, const unsigned char *end,
    int hashed, struct sig *s)
{
	size_t n;
	int type;

	while (p < end) {
		if (p[0] < 192) {
			n = p[0];
			p += 1;
		} else if (p[0] < 255) {
			if (end - p < 2)
				return -1;
			n = ((size_t)(p[0] - 192) << 8) + p[1] + 192;
			p += 2;
		} else {
			if (end - p < 5)
				return -1;
			n = (size_t)p[1] << 24 | (size_t)p[2] << 16 |
			    (size_t)p[3] << 8 | p[4];
			p += 5;
		}
		if (n == 0 || n > (size_t)(end - p))
			return -1;
		type = p[0] & 0x7f;
		if (type == SUB_ISSUER && n == 1 + PGPKEY_KEYID_LEN) {
			memcpy(s->issuer, p + 1, PGPKEY_KEYID_LEN);
			s->has_issuer = 1;
		} else if (type == SUB_ISSUER_FPR && n == 2 + PGPKEY_FPR_LEN &&
		    p[1] == 4) {
			memcpy(s->issuer, p + 2 + PGPKEY_FPR_LEN -
			    PGPKEY_KEYID_LEN, PGPKEY_KEYID_LEN);
			s->has_issuer = 1;
		} else if (hashed && type == SUB_CREATED && n == 5) {
			s->created = (uint32_t)p[1] << 24 |
			    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
		} else if (hashed && type == SUB_KEY_EXPIRES && n == 5) {
			s->key_expires = (uint32_t)p[1] << 24 |
			    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
		} else if (hashed && type == SUB_KEY_FLAGS && n >= 2) {
			s->flags = p[1];
		}
		p += n;
	}
	return 0;
}

/* A signature packet's body: 1 read (v4), 0 another version, -1 bad. */
static int
sig_read(const unsigned char *body, size_t len, struct sig *s)
{
	const unsigned char *p = body, *end = body + len;
	size_t n;

	memset(s, 0, sizeof(*s));
	s->flags = -1;
	if (len < 1)
		return -1;
	if (body[0] != 4)
		return 0;
	if (len < 6)
		return -1;
	s->type = body[1];
	p += 4;
	n = (size_t)p[0] << 8 | p[1];
	if (n > (size_t)(end - p - 2) ||
	    sig_subpackets(p + 2, p + 2 + n, 1, s) == -1)
		return -1;
	p += 2 + n;
	if (end - p < 2)
		return -1;
	n = (size_t)p[0] << 8 | p[1];
	if (n > (size_t)(end - p - 2) ||
	    sig_subpackets(p + 2, p + 2 + n, 0, s) == -1)
		return -1;
	return 1;
}

/*
 * Take what signature s says about key k (newest self-signature wins;
 * revocations of the kind given count).
 */
static void
sig_apply(struct pgpmsg_key *k, const struct sig *s, uint32_t *newest,
    int revocation)
{
	if (s->type == revocation) {
		k->revoked = 1;
		return;
	}
	if (s->created < *newest)
		return;
	*newest = s->created;
	k->flags = s->flags;
	k->expires = s->key_expires != 0 ?
	    (time_t)k->pub.created + (time_t)s->key_expires : 0;
}

static void
key_clear(struct pgpmsg_key *k)
{
	EVP_PKEY_free(k->pub.pkey);
	memset(k, 0, sizeof(*k));
}

void
pgpmsg_pubkey_free(struct pgpmsg_pubkey *key)
{
	size_t i;

	if (key == NULL)
		return;
	key_clear(&key->primary);
	for (i = 0; i < key->nsubkeys; i++)
		key_clear(&key->subkeys[i]);
	free(key->subkeys);
	free(key);
}

/* 1 when k may be encrypted to at now. */
static int
key_encrypts(const struct pgpmsg_key *k, time_t now)
{
	return (k->pub.algo == PGPKEY_PK_RSA ||
	    k->pub.algo == PGPKEY_PK_RSA_E) && !k->revoked &&
	    (k->expires == 0 || k->expires > now);
}

/* The key to encrypt to (see pgpmsg.h), or NULL. */
static const struct pgpmsg_key *
pubkey_encrypt(const struct pgpmsg_pubkey *key)
{
	const struct pgpmsg_key *best = NULL, *k;
	time_t now = time(NULL);
	size_t i;

	for (i = 0; i < key->nsubkeys; i++) {
		k = &key->subkeys[i];
		if (k->flags != -1 && (k->flags & PGPMSG_FLAG_ENCRYPT) != 0 &&
		    key_encrypts(k, now) &&
		    (best == NULL || k->pub.created >= best->pub.created))
			best = k;
	}
	if (best == NULL && key_encrypts(&key->primary, now))
		best = &key->primary;
	return best;
}

int
pgpmsg_pubkey_parse(const unsigned char *bin, size_t len,
    struct pgpmsg_pubkey **out, char *err, size_t errlen)
{
	struct pgpmsg_pubkey *key = NULL;
	struct pgpmsg_key *cur = NULL;
	uint32_t pnewest = 0, snewest = 0; /* the primary's, the subkey's */
	char why[160];
	size_t off = 0, h, b;
	struct sig s;
	int tag, r;

	*out = NULL;
	if (len > PGPMSG_MAX) {
		snprintf(err, errlen, "the public key is too large (%zu bytes)",
		    len);
		return -1;
	}
	if ((key = calloc(1, sizeof(*key))) == NULL ||
	    (key->subkeys = calloc(PGPMSG_SUBKEYS_MAX,
	    sizeof(*key->subkeys))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	while (off < len) {
		if (pgpkey_packet(bin + off, len - off, &tag, &h, &b) == -1) {
			snprintf(err, errlen, "the public key's packet at "
			    "offset %zu is malformed or truncated", off);
			goto fail;
		}
		if (off == 0 && tag != PGPKEY_TAG_PUBKEY) {
			snprintf(err, errlen, "%s", tag == PGPKEY_TAG_SECKEY ?
			    "a secret key was given; send the public key only" :
			    "the data does not start with a public key packet");
			goto fail;
		}
		switch (tag) {
		case PGPKEY_TAG_PUBKEY:
		case PGPKEY_TAG_PUBSUBKEY:
			if (tag == PGPKEY_TAG_PUBKEY && cur != NULL) {
				snprintf(err, errlen, "the data holds more "
				    "than one public key");
				goto fail;
			}
			if (tag == PGPKEY_TAG_PUBKEY) {
				cur = &key->primary;
			} else if (key->nsubkeys == PGPMSG_SUBKEYS_MAX) {
				snprintf(err, errlen, "the public key has more "
				    "than %d subkeys", PGPMSG_SUBKEYS_MAX);
				goto fail;
			} else {
				cur = &key->subkeys[key->nsubkeys++];
			}
			if (pgpkey_read_public(bin + off + h, b, &cur->pub,
			    why, sizeof(why)) == -1) {
				snprintf(err, errlen, "%s%s",
				    tag == PGPKEY_TAG_PUBKEY ? "" : "a subkey: ", why);
				goto fail;
			}
			cur->flags = -1;
			snewest = 0;
			break;
		case PGPKEY_TAG_UID:
		case PGPKEY_TAG_UATTR:
			/* Their certifications speak of the primary. */
			cur = &key->primary;
			break;
		case PGPKEY_TAG_SIG:
			if ((r = sig_read(bin + off + h, b, &s)) == -1) {
				snprintf(err, errlen, "a signature packet of "
				    "the public key is malformed");
				goto fail;
			}
			/* Only self-signatures (or unattributed ones). */
			if (r == 0 || (s.has_issuer && memcmp(s.issuer,
			    key->primary.pub.keyid, PGPKEY_KEYID_LEN) != 0))
				break;
			if (cur != &key->primary) {
				if (s.type == SIG_SUBKEY_BINDING ||
				    s.type == SIG_SUBKEY_REVOCATION)
					sig_apply(cur, &s, &snewest,
					    SIG_SUBKEY_REVOCATION);
			} else if ((s.type >= SIG_CERT_FIRST &&
			    s.type <= SIG_CERT_LAST) || s.type == SIG_DIRECT ||
			    s.type == SIG_KEY_REVOCATION) {
				sig_apply(cur, &s, &pnewest,
				    SIG_KEY_REVOCATION);
			}
			break;
		case PGPKEY_TAG_TRUST:
			break;
		case PGPKEY_TAG_SECSUBKEY:
			snprintf(err, errlen, "a secret key was given; send "
			    "the public key only");
			goto fail;
		default:
			snprintf(err, errlen, "unexpected packet (tag %d) in a "
			    "public key", tag);
			goto fail;
		}
		off += h + b;
	}
	if (cur == NULL) {
		snprintf(err, errlen, "no public key given");
		goto fail;
	}
	key->encrypt = pubkey_encrypt(key);
	*out = key;
	return 0;
fail:
	pgpmsg_pubkey_free(key);
	return -1;
}
