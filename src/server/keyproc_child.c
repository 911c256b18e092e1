/*
 * keyproc_child.c - the key process itself (see keyproc.h): it loads the
 * TLS private key, the server's OpenPGP secret keys and the data key,
 * answers the start-up, then serves each channel with a thread of its own,
 * performing only the operations of the allow-list below.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auditchain.h"
#include "datakey.h"
#include "keyproc_child.h"
#include "keyproc_ops.h"
#include "keyproc_wire.h"
#include "log.h"
#include "pgp.h"
#include "pgpkey.h"
#include "util.h"

#define KC_STACK (256 * 1024)

static struct {
	const struct kt_conf *conf; /* as read at start-up (the fork's copy) */
	EVP_PKEY *pgp_sign;         /* the OpenPGP primary */
	EVP_PKEY *pgp_decrypt;      /* its encryption subkey */
	unsigned char audit_key[CRYPTO_KEY_LEN]; /* from the data key */
	pthread_mutex_t tls_mtx;
	struct {
		uint32_t gen;
		EVP_PKEY *pkey;
	} tls[2];                   /* the served key, and the one before */
} kc = { .tls_mtx = PTHREAD_MUTEX_INITIALIZER };

/* The TLS key of generation gen (a reference), or NULL. */
static EVP_PKEY *
kc_tls_get(uint32_t gen)
{
	EVP_PKEY *k = NULL;
	int i;

	pthread_mutex_lock(&kc.tls_mtx);
	for (i = 0; i < 2; i++)
		if (gen != 0 && kc.tls[i].gen == gen &&
		    EVP_PKEY_up_ref(kc.tls[i].pkey))
			k = kc.tls[i].pkey;
	pthread_mutex_unlock(&kc.tls_mtx);
	return k;
}

/* Keep k as generation gen, in place of a key that is not keep. */
static void
kc_tls_put(EVP_PKEY *k, uint32_t gen, uint32_t keep)
{
	EVP_PKEY *old;
	int i;

	pthread_mutex_lock(&kc.tls_mtx);
	i = kc.tls[0].gen == keep ? 1 : kc.tls[1].gen == keep ? 0 :
	    kc.tls[0].gen < kc.tls[1].gen ? 0 : 1;
	old = kc.tls[i].pkey;
	kc.tls[i].pkey = k;
	kc.tls[i].gen = gen;
	pthread_mutex_unlock(&kc.tls_mtx);
	EVP_PKEY_free(old);
}

/* The DER public key of k into out (cap bytes): its length, or 0. */
static size_t
kc_pubkey_der(EVP_PKEY *k, unsigned char *out, size_t cap)
{
	int n = i2d_PUBKEY(k, NULL);
	unsigned char *p = out;

	if (n <= 0 || (size_t)n > cap || i2d_PUBKEY(k, &p) != n)
		return 0;
	return (size_t)n;
}

/* What an answer is: its status and payload length. */
struct kc_ans {
	int status;
	size_t len;
};

static struct kc_ans
kc_fail(unsigned char *out, const char *reason)
{
	struct kc_ans a = { KP_FAIL, 0 };

	a.len = strlen(reason);
	if (a.len > KP_MAX_PAYLOAD)
		a.len = KP_MAX_PAYLOAD;
	memcpy(out, reason, a.len);
	return a;
}

/* SIGHUP in the serving process: read keytrustee.conf, load the key. */
static struct kc_ans
kc_reload(uint32_t gen, const unsigned char *in, unsigned char *out)
{
	struct kt_conf *c = NULL;
	struct kc_ans a = { KP_OK, 0 };
	char err[1024];
	EVP_PKEY *k;
	uint32_t keep;

	memcpy(&keep, in, sizeof(keep));
	/* The serving process logged the warnings of its own reading. */
	if (conf_load(kc.conf->confdir, &c, NULL, err, sizeof(err)) == -1)
		return kc_fail(out, err);
	if ((k = kp_load_tls(c, err, sizeof(err))) == NULL) {
		conf_free(c);
		return kc_fail(out, err);
	}
	conf_free(c);
	if ((a.len = kc_pubkey_der(k, out, KP_MAX_PAYLOAD)) == 0) {
		EVP_PKEY_free(k);
		return kc_fail(out, "SSL_PRIVATE_KEY: its public key does "
		    "not fit a frame");
	}
	kc_tls_put(k, gen, keep);
	return a;
}

/*
 * The allow-list: check the request's shape and perform it.  Returns -1
 * with *why for a request that is refused (the channel is closed).
 */
static int
kc_dispatch(const struct kp_hdr *h, const unsigned char *in,
    unsigned char *out, struct kc_ans *a, const char **why)
{
	size_t cap = KP_MAX_PAYLOAD;
	EVP_PKEY *k = NULL;	   /* a TLS key: a reference */
	EVP_PKEY *pgp;		   /* an OpenPGP key: not one */
	int r = -1;

	a->status = KP_OK;
	a->len = 0;
	*why = "malformed request";
	switch (h->op) {
	case KP_OP_PING:
		if (h->len != 0 || h->key != 0)
			return -1;
		return 0;
	case KP_OP_TLS_EC_SIGN:
		if (h->len < 16 || h->len > 64)
			return -1;
		if ((k = kc_tls_get(h->key)) == NULL)
			break;
		r = kp_op_ec_sign(k, in, h->len, out, &cap);
		break;
	case KP_OP_TLS_RSA_SIGN:
		if (h->len < 2 || (in[0] != RSA_PKCS1_PADDING &&
		    in[0] != RSA_NO_PADDING))
			return -1;
		if ((k = kc_tls_get(h->key)) == NULL)
			break;
		r = kp_op_rsa_sign(k, in[0], in + 1, h->len - 1, out, &cap);
		break;
	case KP_OP_PGP_SIGN:
		if (h->key != 0 || h->len < 2 || pgpkey_md(in[0]) == NULL ||
		    h->len - 1 != (uint32_t)EVP_MD_get_size(pgpkey_md(in[0])))
			return -1;
		r = kp_op_pgp_sign(kc.pgp_sign, in[0], in + 1, h->len - 1, out,
		    &cap);
		break;
	case KP_OP_PGP_DECRYPT:
		if (h->key != KP_PGP_SUBKEY && h->key != KP_PGP_PRIMARY)
			return -1;
		pgp = h->key == KP_PGP_PRIMARY ? kc.pgp_sign : kc.pgp_decrypt;
		if (h->len == 0 || h->len > (uint32_t)EVP_PKEY_get_size(pgp))
			return -1;
		r = kp_op_pgp_decrypt(pgp, in, h->len, out, &cap);
		break;
	case KP_OP_AUDIT_MAC:
		if (h->key != 0 || h->len != AUDITCHAIN_MAC_MSG_LEN)
			return -1;
		if (auditchain_mac(kc.audit_key, in, out) == -1) {
			*a = kc_fail(out, "the operation failed");
			return 0;
		}
		a->len = CRYPTO_MAC_LEN;
		return 0;
	case KP_OP_TLS_RELOAD:
		if (h->key == 0 || h->len != sizeof(uint32_t))
			return -1;
		*a = kc_reload(h->key, in, out);
		return 0;
	default:
		*why = "operation not allowed";
		return -1;
	}
	if (k == NULL && (h->op == KP_OP_TLS_EC_SIGN ||
	    h->op == KP_OP_TLS_RSA_SIGN)) {
		*a = kc_fail(out, "no such TLS key (reloaded twice since)");
		return 0;
	}
	EVP_PKEY_free(k);
	if (r == -1) {
		OPENSSL_cleanse(out, KP_MAX_PAYLOAD);
		*a = kc_fail(out, "the operation failed");
		return 0;
	}
	a->len = cap;
	return 0;
}

/* Serve one channel until it ends or a request is refused. */
static void
kc_serve(int fd, int idx)
{
	unsigned char in[sizeof(struct kp_hdr) + KP_MAX_PAYLOAD + 1];
	unsigned char out[sizeof(struct kp_hdr) + KP_MAX_PAYLOAD];
	struct iovec iov = { in, sizeof(in) };
	struct kp_hdr h;
	struct kc_ans a;
	struct msghdr m;
	const char *why;
	ssize_t n;

	for (;;) {
		memset(&m, 0, sizeof(m));
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		if ((n = recvmsg(fd, &m, 0)) == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == -1)
				log_warn("key process: channel %d", idx);
			break;
		}
		if ((size_t)n < sizeof(h) || (m.msg_flags & MSG_TRUNC)) {
			log_warnx("key process: channel %d: refused a frame of "
			    "%zd bytes; closing it", idx, n);
			break;
		}
		memcpy(&h, in, sizeof(h));
		if (h.status != 0 || h.len != (size_t)n - sizeof(h) ||
		    h.len > KP_MAX_PAYLOAD) {
			log_warnx("key process: channel %d: refused a malformed "
			    "frame (operation %u); closing it", idx, h.op);
			break;
		}
		if (kc_dispatch(&h, in + sizeof(h), out + sizeof(h), &a,
		    &why) == -1) {
			log_warnx("key process: channel %d: refused operation "
			    "%u: %s; closing it", idx, h.op, why);
			break;
		}
		h.status = (uint16_t)a.status;
		h.len = (uint32_t)a.len;
		memcpy(out, &h, sizeof(h));
		n = send(fd, out, sizeof(h) + a.len, MSG_NOSIGNAL);
		/* A decrypted session key, a signature: nothing stays. */
		OPENSSL_cleanse(out, sizeof(h) + a.len);
		OPENSSL_cleanse(in, sizeof(in));
		if (n != (ssize_t)(sizeof(h) + a.len))
			break;
	}
	close(fd);
}

struct kc_thread {
	int fd, idx;
};

static void *
kc_thread_main(void *arg)
{
	struct kc_thread t = *(struct kc_thread *)arg;

	free(arg);
	kc_serve(t.fd, t.idx);
	return NULL;
}

/* Close every descriptor but 0-2 and the channels (fds, sorted up). */
static void
kc_close_others(const int *fds, int n)
{
	unsigned lo = STDERR_FILENO + 1;
	int i;

	for (i = 0; i < n; i++) {
		if ((unsigned)fds[i] > lo)
			close_range(lo, (unsigned)fds[i] - 1, 0);
		lo = (unsigned)fds[i] + 1;
	}
	close_range(lo, ~0U, 0);
}

static int
kc_cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/*
 * Load the OpenPGP keys, their public key and the data key into w, pub
 * and datakey: 0, or -1 with the reason in err.  Stops the agent after.
 */
static int
kc_load_pgp(struct kp_start_wire *w, char **pub, size_t *publen, char *err,
    size_t errlen)
{
	const char *dir = kc.conf->confdir;
	int r;

	if (pgp_init() == -1) {
		snprintf(err, errlen, "GnuPG is not usable through GPGME (is "
		    "gnupg installed?)");
		return -1;
	}
	r = pgp_secret_key(dir, w->fpr, w->qfpr, err, errlen);
	if (r == 1)
		snprintf(err, errlen, "%s: no OpenPGP key in the config dir; "
		    "run 'ktadmin init --confdir %s'", dir, dir);
	if (r == 0 && kp_load_pgp(dir, w->fpr, &kc.pgp_sign,
	    &kc.pgp_decrypt, err, errlen) == -1)
		r = -1;
	if (r == 0 && pgp_export_pubkey(dir, w->fpr, pub, publen, err,
	    errlen) == -1)
		r = -1;
	if (r == 0) {
		r = datakey_load(dir, w->datakey, err, errlen);
		if (r == 1)
			snprintf(err, errlen, "%s: no data key (%s); run "
			    "'ktadmin init --confdir %s'", dir, DATAKEY_FILE,
			    dir);
		if (r == 0 && auditchain_key(w->datakey, kc.audit_key) == -1) {
			snprintf(err, errlen, "the audit key cannot be "
			    "derived: %s", crypto_ssl_reason());
			r = -1;
		}
	}
	/* Everything is in this process now: no agent keeps a copy. */
	pgp_kill_agent(dir);
	return r == 0 ? 0 : -1;
}

/* Send the start-up answer on fd: 0, or -1. */
static int
kc_answer_start(int fd, struct kp_start_wire *w, const void *tls,
    const void *pgp)
{
	size_t n = sizeof(struct kp_hdr) + sizeof(*w) + w->tls_len + w->pgp_len;
	struct kp_hdr h = { KP_OP_START, KP_OK, 0, 0 };
	unsigned char *buf;
	ssize_t sent;

	if (n > sizeof(h) + KP_MAX_ANSWER || (buf = malloc(n)) == NULL)
		return -1;
	h.len = (uint32_t)(n - sizeof(h));
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), w, sizeof(*w));
	memcpy(buf + sizeof(h) + sizeof(*w), tls, w->tls_len);
	memcpy(buf + sizeof(h) + sizeof(*w) + w->tls_len, pgp, w->pgp_len);
	sent = send(fd, buf, n, MSG_NOSIGNAL);
	OPENSSL_cleanse(buf, n);
	free(buf);
	return sent == (ssize_t)n ? 0 : -1;
}

void
kp_child_main(const struct kt_conf *c, const int *fds, int nchan,
    pid_t parent)
{
	struct kp_start_wire w;
	unsigned char der[KP_MAX_PAYLOAD];
	char err[1024], *pub = NULL;
	const void *tls = der, *pgp = "";
	struct kc_thread *t;
	pthread_attr_t attr;
	EVP_PKEY *k;
	size_t publen = 0;
	int *sorted, i, e, ok;

	/* Die with the server; no core, no ptrace by the same user. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	prctl(PR_SET_DUMPABLE, 0);
	prctl(PR_SET_NAME, "kt-keyproc");
	log_init("keytrustee-keyproc", 0);
	/* The server's signals are its own: this process ends with it. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if ((sorted = malloc((size_t)nchan * sizeof(*sorted))) == NULL)
		_exit(1);
	memcpy(sorted, fds, (size_t)nchan * sizeof(*sorted));
	qsort(sorted, (size_t)nchan, sizeof(*sorted), kc_cmp_int);
	kc_close_others(sorted, nchan);
	free(sorted);
	if (mlockall(MCL_CURRENT | MCL_FUTURE) == -1)
		log_warnx("key process: its memory is not locked (mlockall: "
		    "%s; raise the memlock limit, e.g. LimitMEMLOCK=infinity)",
		    strerror(errno));

	kc.conf = c;
	memset(&w, 0, sizeof(w));
	if ((k = kp_load_tls(c, err, sizeof(err))) == NULL ||
	    (w.tls_len = (uint32_t)kc_pubkey_der(k, der, sizeof(der))) == 0) {
		if (k != NULL)
			snprintf(err, sizeof(err), "%s: SSL_PRIVATE_KEY: its "
			    "public key is too large", c->path);
		EVP_PKEY_free(k);
		tls = err;
		w.tls_len = (uint32_t)strlen(err);
	} else {
		w.tls_gen = 1;
		kc_tls_put(k, 1, 0);
		if (kc_load_pgp(&w, &pub, &publen, err, sizeof(err)) == 0) {
			w.pgp_ok = 1;
			pgp = pub;
			w.pgp_len = (uint32_t)publen;
		} else {
			pgp = err;
			w.pgp_len = (uint32_t)strlen(err);
		}
	}
	ok = w.pgp_ok;
	e = kc_answer_start(fds[0], &w, tls, pgp);
	OPENSSL_cleanse(&w, sizeof(w));
	free(pub);
	if (e == -1 || !ok)
		_exit(e == -1 ? 1 : 0); /* the server reports it and exits */

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, KC_STACK);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (i = 1; i < nchan; i++) {
		pthread_t tid;

		if ((t = malloc(sizeof(*t))) == NULL)
			_exit(1);
		t->fd = fds[i];
		t->idx = i;
		if ((e = pthread_create(&tid, &attr, kc_thread_main, t)) != 0) {
			log_warnx("key process: pthread_create: %s",
			    strerror(e));
			_exit(1);
		}
	}
	pthread_attr_destroy(&attr);
	/* Channel 0 ends when the server does (or refuses): so does this. */
	kc_serve(fds[0], 0);
	_exit(0);
}
