/*
 * kpbench.c - what the key process costs (tests/bench/README.md, "Key
 * process"): each private-key operation in-process (OpenSSL directly, the
 * same keyproc_ops.c functions the key process runs) against the same
 * operation through the key process, and the bare round trip, from 1 and
 * from 2 threads; medians and 99th percentiles of the latency of one
 * operation.
 *
 *   kpbench --confdir DIR [--scale F]
 *
 * DIR is a config dir made by 'ktadmin init' (RSA-4096 OpenPGP key, ECDSA
 * P-256 TLS key).  Before measuring, the results of both paths are checked
 * against each other (same PKCS#1 v1.5 signature, same decrypted block, an
 * ECDSA signature that verifies), so the numbers are of operations that
 * work.  Not installed; built and run by `make bench-keyproc`.
 */
#include <getopt.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "keyproc.h"
#include "keyproc_ops.h"
#include "keyproc_tlskey.h"
#include "log.h"
#include "pgp.h"
#include "pgpkey.h"
#include "util.h"

#define MAX_THREADS 2

struct keys {
	EVP_PKEY *tls;      /* the real TLS key, in this process */
	EVP_PKEY *tlsproxy; /* the serving process's forwarding key */
	EVP_PKEY *sign;     /* OpenPGP primary, in this process */
	EVP_PKEY *decrypt;  /* OpenPGP encryption subkey, in this process */
	unsigned char digest[32];
	unsigned char ct[512]; /* a PKESK value for the subkey */
	size_t ctlen;
	unsigned char block[35]; /* what it decrypts to */
};

static struct keys K;

enum op { OP_PING, OP_EC, OP_EC_FRAME, OP_PGP_SIGN, OP_PGP_DECRYPT,
	OP_COUNT };
static const char *const op_names[] = { "round trip (ping)",
	"TLS ECDSA P-256 sign", "  the same, frame only", "OpenPGP RSA-4096 sign",
	"OpenPGP RSA-4096 decrypt" };

static void
die(const char *what)
{
	fprintf(stderr, "kpbench: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ECDSA through a key: the real one, or the proxy (EVP, as libssl). */
static int
ec_sign(EVP_PKEY *k, unsigned char *sig, size_t *siglen)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(k, NULL);
	int ok = pc != NULL && EVP_PKEY_sign_init(pc) > 0 &&
	    EVP_PKEY_sign(pc, sig, siglen, K.digest, sizeof(K.digest)) > 0;

	EVP_PKEY_CTX_free(pc);
	return ok ? 0 : -1;
}

/* One operation; keyproc: through the key process. */
static int
do_op(enum op op, int keyproc)
{
	unsigned char out[KP_MAX_PAYLOAD];
	size_t n = sizeof(out);
	char err[256];

	switch (op) {
	case OP_PING:
		return keyproc_ping();
	case OP_EC:
		if (keyproc)
			return ec_sign(K.tlsproxy, out, &n);
		return kp_op_ec_sign(K.tls, K.digest, sizeof(K.digest), out,
		    &n);
	case OP_EC_FRAME:
		/* without libssl's legacy EVP path around it */
		if (keyproc)
			return keyproc_call(KP_OP_TLS_EC_SIGN, 1, K.digest,
			    sizeof(K.digest), out, n, &n) == KP_OK ? 0 : -1;
		return kp_op_ec_sign(K.tls, K.digest, sizeof(K.digest), out,
		    &n);
	case OP_PGP_SIGN:
		if (keyproc)
			return keyproc_pgp_sign(NULL, PGPKEY_HASH_SHA256,
			    K.digest, sizeof(K.digest), out, &n, err,
			    sizeof(err));
		return kp_op_pgp_sign(K.sign, PGPKEY_HASH_SHA256, K.digest,
		    sizeof(K.digest), out, &n);
	case OP_PGP_DECRYPT:
		if (keyproc)
			return keyproc_pgp_decrypt(KP_PGP_SUBKEY, K.ct, K.ctlen, out, &n, err,
			    sizeof(err));
		return kp_op_pgp_decrypt(K.decrypt, K.ct, K.ctlen, out, &n);
	case OP_COUNT:
		break;
	}
	return -1;
}

struct run {
	enum op op;
	int keyproc, iters;
	long long *lat; /* iters per thread */
	pthread_barrier_t *start;
};

static void *
run_thread(void *arg)
{
	struct run *r = arg;
	long long t;
	int i;

	pthread_barrier_wait(r->start);
	for (i = 0; i < r->iters; i++) {
		t = now_ns();
		if (do_op(r->op, r->keyproc) == -1)
			die("an operation failed");
		r->lat[i] = now_ns() - t;
	}
	return NULL;
}

static int
cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

struct result {
	double p50, p99, ops; /* microseconds, microseconds, per second */
};

static struct result
measure(enum op op, int keyproc, int nthreads, int iters)
{
	struct run r[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	pthread_barrier_t start;
	long long *all, t0, t1;
	struct result res;
	int i, total = nthreads * iters;

	if ((all = calloc((size_t)total, sizeof(*all))) == NULL)
		die("out of memory");
	pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
	for (i = 0; i < nthreads; i++) {
		r[i] = (struct run){ op, keyproc, iters, all + i * iters,
			&start };
		if (pthread_create(&tid[i], NULL, run_thread, &r[i]) != 0)
			die("pthread_create");
	}
	pthread_barrier_wait(&start);
	t0 = now_ns();
	for (i = 0; i < nthreads; i++)
		pthread_join(tid[i], NULL);
	t1 = now_ns();
	pthread_barrier_destroy(&start);
	qsort(all, (size_t)total, sizeof(*all), cmp_ll);
	res.p50 = (double)all[total / 2] / 1000.0;
	res.p99 = (double)all[(size_t)total * 99 / 100] / 1000.0;
	res.ops = (double)total * 1e9 / (double)(t1 - t0);
	free(all);
	return res;
}

/* Both paths give the same answers (or, for ECDSA, valid ones). */
static void
check(void)
{
	unsigned char a[KP_MAX_PAYLOAD], b[KP_MAX_PAYLOAD];
	size_t na = sizeof(a), nb = sizeof(b);
	EVP_PKEY_CTX *pc;
	char err[256];

	if (kp_op_pgp_sign(K.sign, PGPKEY_HASH_SHA256, K.digest,
	    sizeof(K.digest), a, &na) == -1 ||
	    keyproc_pgp_sign(NULL, PGPKEY_HASH_SHA256, K.digest,
	    sizeof(K.digest), b, &nb, err, sizeof(err)) == -1 || na != nb ||
	    memcmp(a, b, na) != 0)
		die("the OpenPGP signatures differ");
	na = nb = sizeof(a);
	if (kp_op_pgp_decrypt(K.decrypt, K.ct, K.ctlen, a, &na) == -1 ||
	    keyproc_pgp_decrypt(KP_PGP_SUBKEY, K.ct, K.ctlen, b, &nb, err, sizeof(err)) ==
	    -1 || na != sizeof(K.block) || nb != na ||
	    memcmp(a, K.block, na) != 0 || memcmp(b, K.block, nb) != 0)
		die("the decrypted session-key blocks differ");
	nb = sizeof(b);
	if (ec_sign(K.tlsproxy, b, &nb) == -1 ||
	    (pc = EVP_PKEY_CTX_new(K.tls, NULL)) == NULL ||
	    EVP_PKEY_verify_init(pc) <= 0 ||
	    EVP_PKEY_verify(pc, b, nb, K.digest, sizeof(K.digest)) != 1)
		die("the key process's ECDSA signature does not verify");
	EVP_PKEY_CTX_free(pc);
}

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: kpbench --confdir DIR [--scale F]\n");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "confdir", required_argument, NULL, 'c' },
		{ "scale", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static const int iters[OP_COUNT] = { 20000, 4000, 4000, 150, 150 };
	unsigned char datakey[CRYPTO_KEY_LEN];
	struct keyproc_info info;
	struct result in[OP_COUNT][MAX_THREADS + 1], kp[OP_COUNT][MAX_THREADS + 1];
	struct kt_conf *c = NULL;
	const char *confdir = NULL;
	EVP_PKEY_CTX *pc;
	char err[1024];
	double scale = 1.0;
	uid_t owner;
	int ch, op, t, rsa, n;

	while ((ch = getopt_long(argc, argv, "c:s:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			confdir = optarg;
			break;
		case 's':
			scale = atof(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (confdir == NULL || scale <= 0) {
		usage(stderr);
		return 2;
	}
	log_init("kpbench", 0);
	if (become_owner_of(confdir, &owner) == -1)
		die("cannot become the config dir's owner");
	if (conf_load(confdir, &c, NULL, err, sizeof(err)) == -1)
		die(err);
	/* As the server: before any thread, before anything secret. */
	if (keyproc_start(c, MAX_THREADS + KP_SPARE_CHANNELS, datakey, &info,
	    err, sizeof(err)) == -1)
		die(err);
	OPENSSL_cleanse(datakey, sizeof(datakey));
	if (info.error != NULL)
		die(info.error);
	if ((K.tlsproxy = keyproc_tls_key(c, &rsa, err, sizeof(err))) == NULL)
		die(err);
	if (EVP_PKEY_get_base_id(K.tlsproxy) != EVP_PKEY_EC)
		die("the TLS key is not ECDSA (ktadmin init's default)");

	/* The same keys in this process, for the in-process column. */
	if (pgp_init() == -1)
		die("GPGME");
	if (kp_load_pgp(confdir, info.fpr, &K.sign, &K.decrypt, err,
	    sizeof(err)) == -1)
		die(err);
	pgp_kill_agent(confdir);
	if ((K.tls = kp_load_tls(c, err, sizeof(err))) == NULL)
		die(err);
	if (RAND_bytes(K.digest, sizeof(K.digest)) != 1 ||
	    RAND_bytes(K.block, sizeof(K.block)) != 1)
		die("RAND_bytes");
	K.ctlen = sizeof(K.ct);
	if ((pc = EVP_PKEY_CTX_new(K.decrypt, NULL)) == NULL ||
	    EVP_PKEY_encrypt_init(pc) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) <= 0 ||
	    EVP_PKEY_encrypt(pc, K.ct, &K.ctlen, K.block, sizeof(K.block)) <= 0)
		die("encrypting a session-key block");
	EVP_PKEY_CTX_free(pc);
	check();

	printf("key process: %s, OpenPGP %s, TLS ECDSA P-256; %ld cores\n\n",
	    confdir, info.qfpr, sysconf(_SC_NPROCESSORS_ONLN));
	printf("%-26s %3s | %10s %10s %9s | %10s %10s %9s | %10s\n",
	    "operation", "thr", "in-proc", "p99", "ops/s", "keyproc", "p99",
	    "ops/s", "op+ping");
	printf("%-26s %3s | %10s %10s %9s | %10s %10s %9s | %10s\n", "", "",
	    "p50 us", "us", "", "p50 us", "us", "", "p50 us");
	for (t = 1; t <= MAX_THREADS; t++) {
		for (op = 0; op < OP_COUNT; op++) {
			n = (int)(iters[op] * scale);
			if (n < 20)
				n = 20;
			/* warm up both paths (and this thread's channel) */
			measure((enum op)op, 1, t, n / 10 + 1);
			if (op != OP_PING) {
				measure((enum op)op, 0, t, n / 10 + 1);
				in[op][t] = measure((enum op)op, 0, t, n);
			}
			kp[op][t] = measure((enum op)op, 1, t, n);
		}
		for (op = 0; op < OP_COUNT; op++) {
			if (op == OP_PING)
				printf("%-26s %3d | %10s %10s %9s | %10.1f "
				    "%10.1f %9.0f | %10s\n", op_names[op], t,
				    "-", "-", "-", kp[op][t].p50, kp[op][t].p99,
				    kp[op][t].ops, "-");
			else
				printf("%-26s %3d | %10.1f %10.1f %9.0f | "
				    "%10.1f %10.1f %9.0f | %10.1f\n",
				    op_names[op], t, in[op][t].p50,
				    in[op][t].p99, in[op][t].ops,
				    kp[op][t].p50, kp[op][t].p99, kp[op][t].ops,
				    in[op][t].p50 + kp[OP_PING][t].p50);
		}
	}
	EVP_PKEY_free(K.tls);
	EVP_PKEY_free(K.tlsproxy);
	EVP_PKEY_free(K.sign);
	EVP_PKEY_free(K.decrypt);
	keyproc_info_free(&info);
	keyproc_stop();
	conf_free(c);
	return 0;
}
