/*
 * keyproc_wire.h - the frames between keytrustee-server and its key
 * process (keyproc.h), which both sides of the socketpairs include.
 */
#ifndef KT_KEYPROC_WIRE_H
#define KT_KEYPROC_WIRE_H

#include <stdint.h>

#include "crypto.h"
#include "pgp.h"

struct kp_hdr {
	uint16_t op;     /* enum kp_op; an answer repeats its request's */
	uint16_t status; /* requests 0; answers enum kp_status */
	uint32_t key;    /* TLS ops and reload: the TLS key's generation */
	uint32_t len;    /* payload bytes after the header, in one message */
};

#define KP_MAX_PAYLOAD 4096
#define KP_MAX_ANSWER 65536
/*
 * Channels beyond the workers': main (reload), the mail sender, the audit
 * chainer, one more.
 */
#define KP_SPARE_CHANNELS 4

enum kp_op {
	KP_OP_PING = 1,     /* nothing -> nothing: the round trip */
	KP_OP_TLS_EC_SIGN,  /* digest (16..64 bytes) -> DER ECDSA signature */
	KP_OP_TLS_RSA_SIGN, /* padding byte + block -> RSA private encrypt:
			       RSA_PKCS1_PADDING (block <= size - 11), or
			       RSA_NO_PADDING of a PSS-encoded block */
	KP_OP_PGP_SIGN,     /* OpenPGP hash algorithm byte + digest ->
			       PKCS#1 v1.5 signature (DigestInfo) by the
			       primary key, modulus-sized */
	KP_OP_PGP_DECRYPT,  /* key: enum kp_pgp_key; RSA ciphertext of a
			       PKESK (the MPI's value) -> its PKCS#1 v1.5
			       plaintext, by that key */
	KP_OP_TLS_RELOAD,   /* key: the new generation; payload: the 4-byte
			       generation to keep.  The key process reads
			       keytrustee.conf itself and loads SSL_PRIVATE_KEY
			       -> its DER public key */
	KP_OP_START,        /* the start-up answer, once, on channel 0 */
	KP_OP_AUDIT_MAC,    /* an audit chain segment's MAC message
			       (AUDITCHAIN_MAC_MSG_LEN bytes) -> its
			       HMAC-SHA256 under the audit key, which the
			       key process derives from the data key */
	KP_OP_MAX
};

/*
 * Which OpenPGP key decrypts: the encryption subkey (what gpg encrypts
 * to), or the primary (the legacy clients encrypt to the primary,
 * whatever its usage flags say).
 */
enum kp_pgp_key { KP_PGP_SUBKEY = 0, KP_PGP_PRIMARY = 1 };

enum kp_status { KP_OK = 0, KP_FAIL = 1 /* payload: the reason */ };

/*
 * The start-up answer's payload: this, then tls_len bytes (the TLS key's
 * DER public key, or why it failed when tls_gen is 0), then pgp_len bytes
 * (the armored OpenPGP public key, or why the OpenPGP keys or the data key
 * failed when pgp_ok is 0; nothing when the TLS key failed first).
 */
struct kp_start_wire {
	uint32_t tls_gen;
	uint32_t tls_len;
	uint32_t pgp_ok;
	uint32_t pgp_len;
	unsigned char datakey[CRYPTO_KEY_LEN];
	char fpr[PGP_FPR_LEN + 1];
	char qfpr[PGP_QFPR_MAX];
};

#endif
