/*
 * keyproc.h - the key process: keytrustee-server's privilege separation.
 *
 * The serving process (HTTP, JSON, client OpenPGP: everything untrusted)
 * never holds the TLS private key nor the server's OpenPGP secret keys.  A
 * small process forked at start-up (before any thread, before anything
 * secret is read) loads them, hands the serving process the data key, the
 * public keys and fingerprints once, and then performs only the private-key
 * operations of an allow-list, each asked over a socketpair.  The ideas are
 * OpenSSH's monitor, OpenSMTPD's ca process and h2o's neverbleed.
 *
 * Channels: one SOCK_SEQPACKET socketpair per worker thread plus spares,
 * served by one thread each in the key process, so handshakes on different
 * workers never wait for each other.  A thread of the serving process
 * takes a free channel on its first operation and keeps it until it ends;
 * when none is free it uses channel 0, shared under a mutex.
 *
 * Frames: one message each way, a struct kp_hdr and at most KP_MAX_PAYLOAD
 * bytes (the start-up and reload answers: KP_MAX_ANSWER).  An unknown
 * operation or a malformed frame is refused: the key process logs it and
 * closes that channel.  A failed operation (a stale TLS key, a ciphertext
 * that does not decrypt) is answered KP_FAIL with a reason.
 *
 * Death: the key process dies with the server (PR_SET_PDEATHSIG); when the
 * key process dies or a channel fails, the server logs one line and exits
 * non-zero at once (keyproc_sigchld, and any call): it never serves with a
 * dead key path.
 */
#ifndef KT_KEYPROC_H
#define KT_KEYPROC_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf.h"
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
/* Channels beyond the workers': main (reload), the mail sender, one more. */
#define KP_SPARE_CHANNELS 3

enum kp_op {
	KP_OP_PING = 1,     /* nothing -> nothing: the round trip */
	KP_OP_TLS_EC_SIGN,  /* digest (16..64 bytes) -> DER ECDSA signature */
	KP_OP_TLS_RSA_SIGN, /* padding byte + block -> RSA private encrypt:
			       RSA_PKCS1_PADDING (block <= size - 11), or
			       RSA_NO_PADDING of a PSS-encoded block */
	KP_OP_PGP_SIGN,     /* OpenPGP hash algorithm byte + digest ->
			       PKCS#1 v1.5 signature (DigestInfo) by the
			       primary key, modulus-sized */
	KP_OP_PGP_DECRYPT,  /* RSA ciphertext of a PKESK (the MPI's value)
			       -> its PKCS#1 v1.5 plaintext, by the
			       encryption subkey */
	KP_OP_TLS_RELOAD,   /* key: the new generation; payload: the 4-byte
			       generation to keep.  The key process reads
			       keytrustee.conf itself and loads SSL_PRIVATE_KEY
			       -> its DER public key */
	KP_OP_START,        /* the start-up answer, once, on channel 0 */
	KP_OP_MAX
};

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

/* What the start-up answer gives the server besides the data key. */
struct keyproc_info {
	char fpr[PGP_FPR_LEN + 1];  /* the OpenPGP primary, upper-case hex */
	char qfpr[PGP_QFPR_MAX];    /* "4096R/<fpr>" */
	char *pubkey;               /* armored OpenPGP public key */
	size_t pubkeylen;
	char *error; /* NULL, or why the OpenPGP keys or data key failed */
};

/*
 * Fork the key process with nchan channels for conf c (call before any
 * thread exists and before anything secret is read), and wait for its
 * start-up answer: the data key into datakey, the rest into info.  A TLS
 * key that does not load is reported by the first keyproc_tls_key (where
 * tls_ctx_build loads the key, so errors come in today's order); an OpenPGP
 * or data key failure in info->error.  -1 with err when the process
 * cannot be started; one that dies before it answers ends this process
 * (as any failed channel does).
 */
int keyproc_start(const struct kt_conf *c, int nchan,
    unsigned char datakey[CRYPTO_KEY_LEN], struct keyproc_info *info,
    char *err, size_t errlen);
void keyproc_info_free(struct keyproc_info *info);
pid_t keyproc_pid(void);
/* Stop it: close the channels and reap it (at the end of main). */
void keyproc_stop(void);
/*
 * On SIGCHLD: when the key process has exited, log it and exit(1) at once;
 * otherwise (another child) return.
 */
void keyproc_sigchld(void);

/*
 * The TLS key for an SSL_CTX built from c: the public key with its private
 * operations forwarded to the key process.  The first call takes the key
 * loaded at start-up (or its error); each later call asks the key process
 * to read keytrustee.conf and load SSL_PRIVATE_KEY again (SIGHUP).  NULL
 * with err in tls.c's words.  RSA keys cannot do TLS 1.2 RSA key exchange
 * through it (see keyproc_tlskey.c): *rsa tells the caller to exclude kRSA.
 */
EVP_PKEY *keyproc_tls_key(const struct kt_conf *c, int *rsa, char *err,
    size_t errlen);
/* The TLS key of the context now served: a reload keeps it loaded. */
void keyproc_tls_commit(EVP_PKEY *pkey);

/* OpenPGP: the signer pgpsig_clearsign wants (arg unused). */
int keyproc_pgp_sign(void *arg, int hashalgo, const unsigned char *digest,
    size_t dlen, unsigned char *sig, size_t *siglen, char *err,
    size_t errlen);
/* A PKESK's RSA value -> its session-key block (out: KP_MAX_PAYLOAD). */
int keyproc_pgp_decrypt(const unsigned char *ct, size_t len,
    unsigned char *out, size_t *outlen, char *err, size_t errlen);
/* A round trip that does nothing (the benchmark's). */
int keyproc_ping(void);

/*
 * One request and its answer on this thread's channel: the answer's
 * status (KP_OK, or KP_FAIL with the reason as payload), its payload (at
 * most anscap bytes) in ans and length in *anslen.  A failed channel never
 * returns: the server exits (see above).
 */
int keyproc_call(int op, uint32_t key, const void *req, size_t reqlen,
    void *ans, size_t anscap, size_t *anslen);

/* tls.c: the reason of OpenSSL's last error, for messages. */
const char *tls_ssl_reason(void);

/* keyproc_tlskey.c - the proxy EVP_PKEY of the serving process. */
EVP_PKEY *kp_tlskey_proxy(const unsigned char *der, size_t len,
    uint32_t gen, char *err, size_t errlen);
/* The generation of a proxy key; 0 when pkey is not one. */
uint32_t kp_tlskey_gen(const EVP_PKEY *pkey);

/* keyproc_ops.c - the operations, on the real keys (key process, bench). */
int kp_op_ec_sign(EVP_PKEY *k, const unsigned char *dgst, size_t dlen,
    unsigned char *sig, size_t *siglen);
int kp_op_rsa_sign(EVP_PKEY *k, int padding, const unsigned char *in,
    size_t len, unsigned char *out, size_t *outlen);
int kp_op_pgp_sign(EVP_PKEY *k, int hashalgo, const unsigned char *dgst,
    size_t dlen, unsigned char *sig, size_t *siglen);
int kp_op_pgp_decrypt(EVP_PKEY *k, const unsigned char *ct, size_t len,
    unsigned char *out, size_t *outlen);
/* The server's OpenPGP secret keys from the GnuPG home confdir. */
int kp_load_pgp(const char *confdir, const char *fpr, EVP_PKEY **sign,
    EVP_PKEY **decrypt, char *err, size_t errlen);
/* The TLS private key named by c (tls.c's checks and error texts). */
EVP_PKEY *kp_load_tls(const struct kt_conf *c, char *err, size_t errlen);

/* keyproc_child.c - the key process itself; never returns. */
__attribute__((noreturn)) void kp_child_main(const struct kt_conf *c,
    const int *fds, int nchan, pid_t parent);

#endif
