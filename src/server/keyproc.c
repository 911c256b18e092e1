/*
 * keyproc.c - the serving process's side of the key process (see
 * keyproc.h): the fork, the channels, the calls, and its death.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keyproc.h"
#include "keyproc_child.h"
#include "log.h"
#include "pgpsig.h"

/* An operation answers within this, or the key process is wedged. */
#define KP_TIMEOUT_SECS 30
#define KP_STOP_WAIT_MS 2000

struct kp_chan {
	int fd;
	atomic_int taken; /* by a thread, for its life */
};

static struct {
	pid_t pid;
	int nchan;
	struct kp_chan *chan;      /* [0] is shared under shared_mtx */
	pthread_mutex_t shared_mtx;
	pthread_key_t owner;       /* releases a thread's channel at exit */
	atomic_int failed;
	atomic_int stopping;
	int start_pending;         /* the start-up key is not taken yet */
	unsigned char *start_tls;  /* its DER public key, or its error */
	size_t start_tlslen;
	uint32_t start_gen;
} kp = {
	.pid = -1,
	.shared_mtx = PTHREAD_MUTEX_INITIALIZER,
};

static __thread struct kp_chan *kp_mine;

/* Log one line naming the key process and exit: never serve without it. */
static __attribute__((noreturn, format(printf, 1, 2))) void
kp_fail(const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (atomic_exchange(&kp.failed, 1) == 0) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		log_warnx("key process (pid %ld) %s; exiting", (long)kp.pid,
		    msg);
		/* No atexit handlers: other threads are inside OpenSSL. */
		_exit(1);
	}
	for (;;)
		pause(); /* the first thread to fail is exiting */
}

static void
kp_release(void *arg)
{
	struct kp_chan *ch = arg;

	atomic_store(&ch->taken, 0);
}

/* This thread's channel; *shared when it had to take the shared one. */
static struct kp_chan *
kp_channel(int *shared)
{
	int i, zero;

	*shared = 0;
	if (kp_mine != NULL)
		return kp_mine;
	for (i = 1; i < kp.nchan; i++) {
		zero = 0;
		if (atomic_load(&kp.chan[i].taken) == 0 &&
		    atomic_compare_exchange_strong(&kp.chan[i].taken, &zero,
		    1)) {
			kp_mine = &kp.chan[i];
			pthread_setspecific(kp.owner, kp_mine);
			return kp_mine;
		}
	}
	*shared = 1;
	pthread_mutex_lock(&kp.shared_mtx);
	return &kp.chan[0];
}

/*
 * Receive one answer to op on fd into h and ans: its status, or never
 * returns.  forever: a reload may run the operator's password script,
 * which is given the time it takes, as at start-up.
 */
static int
kp_recv(int fd, int op, struct kp_hdr *h, void *ans, size_t anscap,
    size_t *anslen, int forever)
{
	struct iovec iov[2] = { { h, sizeof(*h) }, { ans, anscap } };
	struct msghdr m;
	ssize_t n;

	for (;;) {
		memset(&m, 0, sizeof(m));
		m.msg_iov = iov;
		m.msg_iovlen = 2;
		if ((n = recvmsg(fd, &m, 0)) >= 0)
			break;
		if (errno == EINTR || (forever && (errno == EAGAIN ||
		    errno == EWOULDBLOCK)))
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			kp_fail("did not answer within %d s", KP_TIMEOUT_SECS);
		kp_fail("channel failed: %s", strerror(errno));
	}
	if (n == 0)
		kp_fail("closed its channel (it died or refused a request)");
	if ((size_t)n < sizeof(*h) || (m.msg_flags & MSG_TRUNC) ||
	    h->op != op || h->len != (size_t)n - sizeof(*h) ||
	    (h->status != KP_OK && h->status != KP_FAIL))
		kp_fail("sent a malformed answer");
	*anslen = h->len;
	return h->status;
}

static int
kp_call(int op, uint32_t key, const void *req, size_t reqlen, void *ans,
    size_t anscap, size_t *anslen, int forever)
{
	struct kp_hdr h = { (uint16_t)op, 0, key, (uint32_t)reqlen };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)req, reqlen } };
	struct kp_chan *ch;
	struct msghdr m;
	ssize_t n;
	int shared, st;

	if (kp.nchan == 0 || reqlen > KP_MAX_PAYLOAD)
		kp_fail("was asked for a %s", kp.nchan == 0 ?
		    "call before it started" : "request that is too large");
	ch = kp_channel(&shared);
	memset(&m, 0, sizeof(m));
	m.msg_iov = iov;
	m.msg_iovlen = reqlen > 0 ? 2 : 1;
	do
		n = sendmsg(ch->fd, &m, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)(sizeof(h) + reqlen))
		kp_fail("cannot be written to: %s", n == -1 ? strerror(errno) :
		    "short write");
	st = kp_recv(ch->fd, op, &h, ans, anscap, anslen, forever);
	if (shared)
		pthread_mutex_unlock(&kp.shared_mtx);
	return st;
}

int
keyproc_call(int op, uint32_t key, const void *req, size_t reqlen,
    void *ans, size_t anscap, size_t *anslen)
{
	/* A reload runs the operator's password script: no time limit. */
	return kp_call(op, key, req, reqlen, ans, anscap, anslen,
	    op == KP_OP_TLS_RELOAD);
}

void
keyproc_reason(const void *ans, size_t n, char *err, size_t errlen)
{
	snprintf(err, errlen, "%.*s", (int)(n > 512 ? 512 : n),
	    (const char *)ans);
}

/* Take the start-up answer apart; -1 with err when it is malformed. */
static int
kp_take_start(unsigned char *buf, size_t n, unsigned char *datakey,
    struct keyproc_info *info, char *err, size_t errlen)
{
	struct kp_start_wire w;
	const unsigned char *tls, *pgp;

	if (n < sizeof(w))
		goto bad;
	memcpy(&w, buf, sizeof(w));
	if (w.tls_len > n - sizeof(w) || w.pgp_len > n - sizeof(w) -
	    w.tls_len || w.fpr[PGP_FPR_LEN] != '\0' ||
	    w.qfpr[PGP_QFPR_MAX - 1] != '\0')
		goto bad;
	tls = buf + sizeof(w);
	pgp = tls + w.tls_len;
	if ((kp.start_tls = malloc(w.tls_len + 1)) == NULL)
		goto oom;
	memcpy(kp.start_tls, tls, w.tls_len);
	kp.start_tls[w.tls_len] = '\0';
	kp.start_tlslen = w.tls_len;
	kp.start_gen = w.tls_gen;
	kp.start_pending = 1;
	memcpy(datakey, w.datakey, CRYPTO_KEY_LEN);
	memcpy(info->fpr, w.fpr, sizeof(info->fpr));
	memcpy(info->qfpr, w.qfpr, sizeof(info->qfpr));
	if (w.tls_gen != 0 && w.pgp_ok) {
		if ((info->pubkey = malloc(w.pgp_len + 1)) == NULL)
			goto oom;
		memcpy(info->pubkey, pgp, w.pgp_len);
		info->pubkey[w.pgp_len] = '\0';
		info->pubkeylen = w.pgp_len;
	} else if (w.tls_gen != 0) {
		if ((info->error = malloc(w.pgp_len + 1)) == NULL)
			goto oom;
		memcpy(info->error, pgp, w.pgp_len);
		info->error[w.pgp_len] = '\0';
	}
	OPENSSL_cleanse(&w, sizeof(w));
	return 0;
bad:
	snprintf(err, errlen, "the key process sent a malformed start-up "
	    "answer");
	return -1;
oom:
	OPENSSL_cleanse(&w, sizeof(w));
	snprintf(err, errlen, "out of memory");
	return -1;
}

int
keyproc_start(const struct kt_conf *c, int nchan,
    unsigned char datakey[CRYPTO_KEY_LEN], struct keyproc_info *info,
    char *err, size_t errlen)
{
	struct timeval tv = { KP_TIMEOUT_SECS, 0 };
	struct kp_hdr h;
	unsigned char *buf = NULL;
	int *theirs = NULL, sv[2], i, st, ret = -1;
	pid_t parent = getpid();
	size_t n = 0;

	memset(info, 0, sizeof(*info));
	nchan++; /* channel 0, shared */
	if ((kp.chan = calloc((size_t)nchan, sizeof(*kp.chan))) == NULL ||
	    (theirs = calloc((size_t)nchan, sizeof(*theirs))) == NULL ||
	    (buf = malloc(KP_MAX_ANSWER)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (i = 0; i < nchan; i++)
		kp.chan[i].fd = theirs[i] = -1;
	for (i = 0; i < nchan; i++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
		    sv) == -1) {
			snprintf(err, errlen, "key process: socketpair: %s",
			    strerror(errno));
			goto out;
		}
		kp.chan[i].fd = sv[0];
		theirs[i] = sv[1];
	}
	if (pthread_key_create(&kp.owner, kp_release) != 0) {
		snprintf(err, errlen, "key process: pthread_key_create failed");
		goto out;
	}
	if ((kp.pid = fork()) == -1) {
		snprintf(err, errlen, "key process: fork: %s", strerror(errno));
		goto out;
	}
	if (kp.pid == 0) {
		for (i = 0; i < nchan; i++)
			close(kp.chan[i].fd);
		kp_child_main(c, theirs, nchan, parent);
	}
	for (i = 0; i < nchan; i++) {
		close(theirs[i]);
		theirs[i] = -1;
	}
	kp.nchan = nchan;
	/* Loading keys may take gpg a while: no time limit on this one. */
	st = kp_recv(kp.chan[0].fd, KP_OP_START, &h, buf, KP_MAX_ANSWER, &n,
	    1);
	if (st != KP_OK) {
		keyproc_reason(buf, n, err, errlen);
		goto out;
	}
	if (kp_take_start(buf, n, datakey, info, err, errlen) == -1)
		goto out;
	for (i = 0; i < nchan; i++)
		setsockopt(kp.chan[i].fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
		    sizeof(tv));
	log_info("key process (pid %ld) holds the TLS and OpenPGP private "
	    "keys; %d channels", (long)kp.pid, nchan);
	ret = 0;
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, KP_MAX_ANSWER);
		free(buf);
	}
	if (theirs != NULL)
		for (i = 0; i < nchan; i++)
			if (theirs[i] != -1)
				close(theirs[i]);
	free(theirs);
	return ret;
}

void
keyproc_info_free(struct keyproc_info *info)
{
	free(info->pubkey);
	free(info->error);
	info->pubkey = info->error = NULL;
}

pid_t
keyproc_pid(void)
{
	return kp.pid;
}

void
keyproc_sigchld(void)
{
	int status;

	if (kp.pid <= 0 || atomic_load(&kp.stopping))
		return;
	if (waitpid(kp.pid, &status, WNOHANG) != kp.pid)
		return; /* another child (gpg, a script): theirs to reap */
	if (WIFSIGNALED(status))
		kp_fail("was killed by signal %d (%s)", WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
	kp_fail("exited with status %d", WEXITSTATUS(status));
}

void
keyproc_stop(void)
{
	int i, status;

	if (kp.pid <= 0)
		return;
	atomic_store(&kp.stopping, 1);
	/* Its channel 0 ends: it exits. */
	for (i = 0; i < kp.nchan; i++)
		close(kp.chan[i].fd);
	for (i = 0; i < KP_STOP_WAIT_MS / 10; i++) {
		if (waitpid(kp.pid, &status, WNOHANG) != 0)
			goto out;
		usleep(10000);
	}
	kill(kp.pid, SIGKILL);
	waitpid(kp.pid, &status, 0);
out:
	kp.pid = -1;
	kp.nchan = 0;
	free(kp.chan);
	kp.chan = NULL;
	free(kp.start_tls);
	kp.start_tls = NULL;
}

int
keyproc_start_tls(uint32_t *gen, const unsigned char **der, size_t *len)
{
	if (!kp.start_pending)
		return 0;
	kp.start_pending = 0;
	*gen = kp.start_gen;
	*der = kp.start_tls;
	*len = kp.start_tlslen;
	return 1;
}

int
keyproc_pgp_sign(void *arg, int hashalgo, const unsigned char *digest,
    size_t dlen, unsigned char *sig, size_t *siglen, char *err,
    size_t errlen)
{
	unsigned char req[1 + EVP_MAX_MD_SIZE];

	(void)arg;
	if (dlen == 0 || dlen > EVP_MAX_MD_SIZE || hashalgo <= 0 ||
	    hashalgo > 255) {
		snprintf(err, errlen, "signing: bad digest");
		return -1;
	}
	req[0] = (unsigned char)hashalgo;
	memcpy(req + 1, digest, dlen);
	if (keyproc_call(KP_OP_PGP_SIGN, 0, req, dlen + 1, sig,
	    PGPSIG_SIG_MAX, siglen) != KP_OK) {
		keyproc_reason(sig, *siglen, err, errlen);
		return -1;
	}
	return 0;
}

int
keyproc_pgp_decrypt(enum kp_pgp_key which, const unsigned char *ct,
    size_t len, unsigned char *out, size_t *outlen, char *err, size_t errlen)
{
	if (len == 0 || len > KP_MAX_PAYLOAD) {
		snprintf(err, errlen, "decrypting: bad ciphertext length");
		return -1;
	}
	if (keyproc_call(KP_OP_PGP_DECRYPT, which, ct, len, out,
		KP_MAX_PAYLOAD, outlen) != KP_OK) {
		keyproc_reason(out, *outlen, err, errlen);
		OPENSSL_cleanse(out, *outlen);
		*outlen = 0;
		return -1;
	}
	return 0;
}

int
keyproc_audit_mac(const unsigned char msg[AUDITCHAIN_MAC_MSG_LEN],
    unsigned char mac[CRYPTO_MAC_LEN], char *err, size_t errlen)
{
	unsigned char ans[KP_MAX_PAYLOAD];
	size_t n = 0;

	if (keyproc_call(KP_OP_AUDIT_MAC, 0, msg, AUDITCHAIN_MAC_MSG_LEN, ans,
	    sizeof(ans), &n) != KP_OK || n != CRYPTO_MAC_LEN) {
		keyproc_reason(ans, n, err, errlen);
		return -1;
	}
	memcpy(mac, ans, CRYPTO_MAC_LEN);
	return 0;
}

int
keyproc_ping(void)
{
	size_t n;

	return keyproc_call(KP_OP_PING, 0, NULL, 0, NULL, 0, &n) == KP_OK ?
	    0 : -1;
}
