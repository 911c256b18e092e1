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

#include "auditchain.h"
#include "conf.h"
#include "crypto.h"
#include "keyproc_wire.h"
#include "pgp.h"

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
 * The TLS key of the start-up answer, once (keyproc_tlskey.c takes it):
 * 1 with its generation and DER public key (or, gen 0, why it failed, as
 * text), 0 when it was taken already.
 */
int keyproc_start_tls(uint32_t *gen, const unsigned char **der,
    size_t *len);
/* A KP_FAIL answer's reason (ans, n bytes) into err. */
void keyproc_reason(const void *ans, size_t n, char *err, size_t errlen);

/* OpenPGP: the signer pgpsig_clearsign wants (arg unused). */
int keyproc_pgp_sign(void *arg, int hashalgo, const unsigned char *digest,
    size_t dlen, unsigned char *sig, size_t *siglen, char *err,
    size_t errlen);
/*
 * A PKESK's RSA value -> its session-key block (out: KP_MAX_PAYLOAD), by
 * the encryption subkey or the primary.
 */
int keyproc_pgp_decrypt(enum kp_pgp_key which, const unsigned char *ct,
    size_t len, unsigned char *out, size_t *outlen, char *err,
    size_t errlen);
/*
 * The MAC of an audit chain segment (auditchain_mac_msg's message) under
 * the audit key, which only the key process holds: 0, or -1 with err.
 */
int keyproc_audit_mac(const unsigned char msg[AUDITCHAIN_MAC_MSG_LEN],
    unsigned char mac[CRYPTO_MAC_LEN], char *err, size_t errlen);
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

#endif
