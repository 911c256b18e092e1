/*
 * test_keyproc.c - unit tests for src/server/keyproc*.c: a real key
 * process on a config dir made here (an RSA-2048 OpenPGP key pair by gpg,
 * datakey.gpg, an ECDSA TLS key), asked for every operation of its
 * allow-list, and a second one on the test's own socketpairs, sent
 * malformed and forbidden frames: each refused channel is closed, the
 * others keep answering.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "auditchain.h"
#include "conf.h"
#include "datakey.h"
#include "keyproc.h"
#include "keyproc_child.h"
#include "keyproc_ops.h"
#include "keyproc_tlskey.h"
#include "log.h"
#include "pgp.h"
#include "pgpkey.h"
#include "pgpsig.h"
#include "spawn.h"
#include "util.h"

static char dir[] = "/tmp/kt-test-keyproc-XXXXXX";
static struct kt_conf *conf;
static struct keyproc_info info;
static unsigned char datakey[CRYPTO_KEY_LEN];
static EVP_PKEY *sign_key, *dec_key, *tls_key; /* copies, to check with */

static int
gpg(const char *a1, const char *a2, const char *a3, const char *a4)
{
	char *argv[] = { "gpg", "--homedir", dir, "--batch", "--passphrase",
		"", "--pinentry-mode", "loopback", (char *)a1, (char *)a2,
		(char *)a3, (char *)a4, NULL };
	struct spawn_opts o = { .capture = 1 };
	struct spawn_result r;
	int st;

	if (spawn_run(argv, &o, &r) == -1)
		return -1;
	st = r.status;
	spawn_result_free(&r);
	return st == 0 ? 0 : -1;
}

static int
setup(void **state)
{
	char path[512], fpr[PGP_FPR_LEN + 1], qfpr[PGP_QFPR_MAX], err[1024];
	FILE *f;

	(void)state;
	log_init("test_keyproc", 0);
	if (mkdtemp(dir) == NULL || pgp_init() == -1)
		return -1;
	if (gpg("--quick-gen-key", "kt test <kt@localhost>", "rsa2048",
	    "sign,cert") == -1 ||
	    pgp_secret_key(dir, fpr, qfpr, err, sizeof(err)) != 0 ||
	    gpg("--quick-add-key", fpr, "rsa2048", "encr") == -1 ||
	    datakey_create(dir, fpr, err, sizeof(err)) != 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/.ssl", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/.ssl/ssl-cert-keytrustee-pk.pem", dir);
	if ((tls_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
	    (f = fopen(path, "w")) == NULL)
		return -1;
	chmod(path, 0600);
	PEM_write_PrivateKey(f, tls_key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	snprintf(path, sizeof(path), "%s/keytrustee.conf", dir);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs("{}\n", f);
	fclose(f);
	chmod(path, 0600);
	if (conf_load(dir, &conf, NULL, err, sizeof(err)) == -1 ||
	    kp_load_pgp(dir, fpr, &sign_key, &dec_key, err, sizeof(err)) ==
	    -1) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	pgp_kill_agent(dir);
	/* Before any thread, as in the server. */
	if (keyproc_start(conf, 4, datakey, &info, err, sizeof(err)) == -1) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	keyproc_stop();
	keyproc_info_free(&info);
	EVP_PKEY_free(sign_key);
	EVP_PKEY_free(dec_key);
	EVP_PKEY_free(tls_key);
	conf_free(conf);
	pgp_kill_agent(dir);
	rm_tree(dir);
	return 0;
}

static void
test_start_answer(void **state)
{
	unsigned char want[CRYPTO_KEY_LEN];
	char err[512];

	(void)state;
	assert_null(info.error);
	assert_int_equal(strlen(info.fpr), PGP_FPR_LEN);
	assert_true(strncmp(info.qfpr, "2048R/", 6) == 0);
	assert_string_equal(info.qfpr + 6, info.fpr);
	assert_non_null(strstr(info.pubkey,
	    "-----BEGIN PGP PUBLIC KEY BLOCK-----"));
	assert_int_equal(datakey_load(dir, want, err, sizeof(err)), 0);
	pgp_kill_agent(dir);
	assert_memory_equal(datakey, want, sizeof(want));
	assert_true(keyproc_pid() > 0);
	assert_int_equal(keyproc_ping(), 0);
}

/* A PKESK's RSA value: block encrypted to k with PKCS#1 v1.5. */
static void
pkcs1_encrypt(EVP_PKEY *k, const unsigned char *block, size_t len,
    unsigned char *ct, size_t *ctlen)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(k, NULL);

	assert_non_null(pc);
	assert_true(EVP_PKEY_encrypt_init(pc) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0);
	assert_true(EVP_PKEY_encrypt(pc, ct, ctlen, block, len) > 0);
	EVP_PKEY_CTX_free(pc);
}

static void
test_pgp_sign_and_decrypt(void **state)
{
	unsigned char dg[32], sig[PGPSIG_SIG_MAX], block[40], ct[256], out[4096];
	size_t siglen = 0, ctlen = sizeof(ct), outlen = 0;
	EVP_PKEY_CTX *pc;
	char err[256];

	(void)state;
	assert_int_equal(RAND_bytes(dg, sizeof(dg)), 1);
	assert_int_equal(keyproc_pgp_sign(NULL, PGPKEY_HASH_SHA256, dg,
	    sizeof(dg), sig, &siglen, err, sizeof(err)), 0);
	assert_int_equal(siglen, 256);
	pc = EVP_PKEY_CTX_new(sign_key, NULL);
	assert_true(EVP_PKEY_verify_init(pc) > 0);
	assert_true(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0);
	assert_true(EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) > 0);
	assert_int_equal(EVP_PKEY_verify(pc, sig, siglen, dg, sizeof(dg)), 1);
	dg[0] ^= 1; /* the check can fail */
	assert_int_not_equal(EVP_PKEY_verify(pc, sig, siglen, dg, sizeof(dg)),
	    1);
	EVP_PKEY_CTX_free(pc);

	assert_int_equal(RAND_bytes(block, sizeof(block)), 1);
	pkcs1_encrypt(dec_key, block, sizeof(block), ct, &ctlen);
	assert_int_equal(keyproc_pgp_decrypt(KP_PGP_SUBKEY, ct, ctlen, out,
			     &outlen, err, sizeof(err)),
	    0);
	assert_int_equal(outlen, sizeof(block));
	assert_memory_equal(out, block, sizeof(block));
	/* encrypted to the other key: answered KP_FAIL, not refused */
	ctlen = sizeof(ct);
	pkcs1_encrypt(sign_key, block, sizeof(block), ct, &ctlen);
	outlen = 0;
	if (keyproc_pgp_decrypt(KP_PGP_SUBKEY, ct, ctlen, out, &outlen, err,
		sizeof(err)) == 0)
		/* OpenSSL's implicit rejection gives a random block instead */
		assert_memory_not_equal(out, block, sizeof(block));
	/* The legacy clients encrypt to the primary: it decrypts too. */
	outlen = 0;
	assert_int_equal(keyproc_pgp_decrypt(KP_PGP_PRIMARY, ct, ctlen, out,
			     &outlen, err, sizeof(err)),
	    0);
	assert_int_equal(outlen, sizeof(block));
	assert_memory_equal(out, block, sizeof(block));
	assert_int_equal(keyproc_ping(), 0);
}

static void
test_tls_key_and_reload(void **state)
{
	unsigned char dg[32], sig[256];
	size_t siglen = sizeof(sig);
	EVP_PKEY *proxy, *again;
	EVP_PKEY_CTX *pc;
	char err[512];
	int rsa = -1;

	(void)state;
	proxy = keyproc_tls_key(conf, &rsa, err, sizeof(err));
	assert_non_null(proxy);
	assert_int_equal(rsa, 0);
	assert_int_equal(kp_tlskey_gen(proxy), 1);
	assert_int_equal(EVP_PKEY_eq(proxy, tls_key), 1);
	assert_int_equal(RAND_bytes(dg, sizeof(dg)), 1);
	pc = EVP_PKEY_CTX_new(proxy, NULL);
	assert_true(EVP_PKEY_sign_init(pc) > 0);
	assert_true(EVP_PKEY_sign(pc, sig, &siglen, dg, sizeof(dg)) > 0);
	EVP_PKEY_CTX_free(pc);
	pc = EVP_PKEY_CTX_new(tls_key, NULL);
	assert_true(EVP_PKEY_verify_init(pc) > 0);
	assert_int_equal(EVP_PKEY_verify(pc, sig, siglen, dg, sizeof(dg)), 1);
	EVP_PKEY_CTX_free(pc);
	keyproc_tls_commit(proxy);
	/* reloads: a new generation each; two back is gone */
	again = keyproc_tls_key(conf, &rsa, err, sizeof(err));
	assert_non_null(again);
	assert_int_equal(kp_tlskey_gen(again), 2);
	EVP_PKEY_free(again);
	again = keyproc_tls_key(conf, &rsa, err, sizeof(err));
	assert_non_null(again);
	assert_int_equal(kp_tlskey_gen(again), 3);
	/* generation 1 was committed: kept; 2 was replaced by 3 */
	siglen = sizeof(sig);
	pc = EVP_PKEY_CTX_new(proxy, NULL);
	assert_true(EVP_PKEY_sign_init(pc) > 0);
	assert_true(EVP_PKEY_sign(pc, sig, &siglen, dg, sizeof(dg)) > 0);
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(again);
	EVP_PKEY_free(proxy);
}

#define RAW_CHANNELS 15

/* Send a raw frame (hdr then len payload bytes, as one message). */
static void
raw_send(int fd, uint16_t op, uint16_t status, uint32_t key, uint32_t hlen,
    const void *payload, size_t len)
{
	unsigned char buf[sizeof(struct kp_hdr) + KP_MAX_PAYLOAD + 200];
	struct kp_hdr h = { op, status, key, hlen };

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), payload, len);
	assert_int_equal(send(fd, buf, sizeof(h) + len, MSG_NOSIGNAL),
	    (ssize_t)(sizeof(h) + len));
}

/* The answer on fd: its status, or -1 when the channel was closed. */
static int
raw_answer(int fd, uint16_t op, unsigned char *ans, size_t *len)
{
	unsigned char buf[sizeof(struct kp_hdr) + KP_MAX_ANSWER];
	struct kp_hdr h;
	ssize_t n;

	n = recv(fd, buf, sizeof(buf), 0);
	if (n == 0)
		return -1;
	assert_true(n >= (ssize_t)sizeof(h));
	memcpy(&h, buf, sizeof(h));
	assert_int_equal(h.op, op);
	assert_int_equal(h.len, (size_t)n - sizeof(h));
	if (ans != NULL)
		memcpy(ans, buf + sizeof(h), h.len);
	if (len != NULL)
		*len = h.len;
	return h.status;
}

/*
 * Frames the serving process's API cannot even make: a second key process
 * on socketpairs of the test's own, each bad frame on a channel of its
 * own.  Each is refused and that channel closed; the others answer.
 */
static void
test_refusals(void **state)
{
	unsigned char p[KP_MAX_PAYLOAD + 100], ans[KP_MAX_PAYLOAD];
	int sv[2], mine[RAW_CHANNELS], theirs[RAW_CHANNELS], i, c = 1, st;
	size_t n = 0;
	pid_t pid;

	(void)state;
	memset(p, 0, sizeof(p));
	for (i = 0; i < RAW_CHANNELS; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET |
		    SOCK_CLOEXEC, 0, sv), 0);
		mine[i] = sv[0];
		theirs[i] = sv[1];
	}
	fflush(stderr);
	if ((pid = fork()) == 0) {
		for (i = 0; i < RAW_CHANNELS; i++)
			close(mine[i]);
		kp_child_main(conf, theirs, RAW_CHANNELS, getppid());
	}
	assert_true(pid > 0);
	for (i = 0; i < RAW_CHANNELS; i++)
		close(theirs[i]);
	assert_int_equal(raw_answer(mine[0], KP_OP_START, NULL, &n), KP_OK);
	assert_true(n > sizeof(struct kp_start_wire));

	/* a frame shorter than a header */
	assert_int_equal(send(mine[c], p, 5, MSG_NOSIGNAL), 5);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	/* a length that is not what came */
	raw_send(mine[c], KP_OP_PING, 0, 0, 10, p, 0);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	/* a request with a status */
	raw_send(mine[c], KP_OP_PING, KP_FAIL, 0, 0, p, 0);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	/* not an operation; the start-up answer's */
	raw_send(mine[c], 99, 0, 0, 0, p, 0);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	raw_send(mine[c], KP_OP_START, 0, 0, 0, p, 0);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	/* a payload over the bound */
	raw_send(mine[c], KP_OP_PGP_DECRYPT, 0, 0, KP_MAX_PAYLOAD + 50, p,
	    KP_MAX_PAYLOAD + 50);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	/* SHA-256 named, 20 bytes given; SHA-1, not on the list */
	p[0] = PGPKEY_HASH_SHA256;
	raw_send(mine[c], KP_OP_PGP_SIGN, 0, 0, 21, p, 21);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	p[0] = 2;
	raw_send(mine[c], KP_OP_PGP_SIGN, 0, 0, 21, p, 21);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	/* RSA with OAEP padding; a PKESK longer than the modulus */
	p[0] = RSA_PKCS1_OAEP_PADDING;
	raw_send(mine[c], KP_OP_TLS_RSA_SIGN, 0, 1, 40, p, 40);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	raw_send(mine[c], KP_OP_PGP_DECRYPT, 0, 0, 257, p, 257);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	/* a key that is neither the subkey nor the primary */
	raw_send(mine[c], KP_OP_PGP_DECRYPT, 0, 2, 16, p, 16);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	/* an audit MAC of another length than its message, or with a key */
	raw_send(mine[c], KP_OP_AUDIT_MAC, 0, 0, AUDITCHAIN_MAC_MSG_LEN + 1, p,
	    AUDITCHAIN_MAC_MSG_LEN + 1);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	raw_send(mine[c], KP_OP_AUDIT_MAC, 0, 1, AUDITCHAIN_MAC_MSG_LEN, p,
	    AUDITCHAIN_MAC_MSG_LEN);
	assert_int_equal(raw_answer(mine[c++], 0, NULL, NULL), -1);
	assert_int_equal(c, RAW_CHANNELS - 1);

	/* The last channel and channel 0 still answer. */
	raw_send(mine[c], KP_OP_PING, 0, 0, 0, p, 0);
	assert_int_equal(raw_answer(mine[c], KP_OP_PING, NULL, &n), KP_OK);
	assert_int_equal(n, 0);
	/* a TLS key that is not loaded: a failure, the channel stays */
	memset(p, 1, 32);
	raw_send(mine[c], KP_OP_TLS_EC_SIGN, 0, 77, 32, p, 32);
	assert_int_equal(raw_answer(mine[c], KP_OP_TLS_EC_SIGN, ans, &n),
	    KP_FAIL);
	assert_true(n > 0 && memmem(ans, n, "no such TLS key", 15) != NULL);
	/* the loaded one signs */
	raw_send(mine[c], KP_OP_TLS_EC_SIGN, 0, 1, 32, p, 32);
	assert_int_equal(raw_answer(mine[c], KP_OP_TLS_EC_SIGN, ans, &n),
	    KP_OK);
	assert_true(n > 8 && ans[0] == 0x30); /* DER SEQUENCE */
	raw_send(mine[0], KP_OP_PING, 0, 0, 0, p, 0);
	assert_int_equal(raw_answer(mine[0], KP_OP_PING, NULL, NULL), KP_OK);

	/* Channel 0 ends: the key process exits. */
	for (i = 0; i < RAW_CHANNELS; i++)
		close(mine[i]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* the first key process is untouched */
	assert_int_equal(keyproc_ping(), 0);
}

/*
 * The audit MAC: HMAC-SHA256 under HKDF(data key), the key the serving
 * process never derives (docs/audit.md).
 */
static void
test_audit_mac(void **state)
{
	unsigned char key[CRYPTO_KEY_LEN], hash[CRYPTO_HASH_LEN];
	unsigned char msg[AUDITCHAIN_MAC_MSG_LEN], got[CRYPTO_MAC_LEN];
	unsigned char want[CRYPTO_MAC_LEN];
	char err[256];

	(void)state;
	memset(hash, 0x42, sizeof(hash));
	auditchain_mac_msg(7, 1234, 3, hash, msg);
	assert_int_equal(keyproc_audit_mac(msg, got, err, sizeof(err)), 0);
	assert_int_equal(auditchain_key(datakey, key), 0);
	assert_int_equal(auditchain_mac(key, msg, want), 0);
	assert_memory_equal(got, want, sizeof(got));
	/* not a MAC under the data key itself */
	assert_int_equal(auditchain_mac(datakey, msg, want), 0);
	assert_memory_not_equal(got, want, sizeof(got));
}

static void *
forbidden_call(void *arg)
{
	unsigned char ans[64];
	size_t n;

	(void)arg;
	keyproc_call(KP_OP_MAX + 3, 0, NULL, 0, ans, sizeof(ans), &n);
	_exit(0); /* answered: not what the key process must do */
}

/*
 * Through the API: a refused request ends the asking process at once with
 * status 1 and one line naming the key process, as the server would end.
 */
static void
test_refused_call_ends_the_caller(void **state)
{
	char buf[4096];
	size_t got = 0;
	ssize_t n;
	pthread_t t;
	int p[2], st;
	pid_t pid;

	(void)state;
	assert_int_equal(keyproc_ping(), 0); /* this thread has a channel */
	assert_int_equal(pipe(p), 0);
	fflush(stderr);
	if ((pid = fork()) == 0) {
		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		/* a thread of its own takes another channel */
		pthread_create(&t, NULL, forbidden_call, NULL);
		pthread_join(t, NULL);
		_exit(2);
	}
	assert_true(pid > 0);
	close(p[1]);
	while (got < sizeof(buf) - 1 &&
	    (n = read(p[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	assert_non_null(strstr(buf, "key process (pid"));
	assert_non_null(strstr(buf, "closed its channel"));
	assert_non_null(strstr(buf, "; exiting"));
	/* the test's own channel is untouched */
	assert_int_equal(keyproc_ping(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_answer),
		cmocka_unit_test(test_pgp_sign_and_decrypt),
		cmocka_unit_test(test_tls_key_and_reload),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_audit_mac),
		cmocka_unit_test(test_refused_call_ends_the_caller),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
