/*
 * chainer.c - the audit chain's sealer (docs/audit.md): one thread with its
 * own database connection that, every AUDIT_CHAIN_INTERVAL seconds on the
 * active server, seals the audit rows of every transaction that has ended
 * since the last segment into new segments of audit_chain, each hashed
 * over the one before and MACed by the key process.  Nothing on the
 * request path changes: a row is chained after it is written.
 *
 * A tick: the head of the chain and the horizon X (store_chain_begin),
 * the rows head.xact_hi <= xact < X in (xact, id) order, cut into
 * segments of about CHAINER_SEG_ROWS rows at transaction boundaries (a
 * transaction's rows are never split), the last one ending at X.  No rows:
 * no segment.  A passive never writes; after a promotion it seals.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auditchain.h"
#include "chainer.h"
#include "ha.h"
#include "keyproc.h"
#include "log.h"
#include "store/store.h"

/* A segment closes at the first transaction boundary past this many rows. */
#define CHAINER_SEG_ROWS 10000
/* Seconds between the lines that say what sealing cost (info). */
#define CHAINER_LOG_SECS 60

struct chainer {
	struct store *st;
	struct ha *ha;
	int interval; /* seconds */
	int pipe[2];  /* written to stop it */
	int64_t high; /* the highest seq sealed or seen at the head */
	int stuck;    /* the head went back: sealing stopped */
	pthread_t thread;
};

/* The segment being built. */
struct chainer_seg {
	struct auditchain_seg s;
	struct auditchain_hash *h;
	char *ids;		/* "{1,2,...}" */
	size_t idslen, idscap;
	unsigned char *dig;	/* AUDITCHAIN_DIG_LEN per row */
	size_t diglen, digcap;
	int64_t last_xact;
};

static void
chainer_seg_clear(struct chainer_seg *g)
{
	auditchain_hash_free(g->h);
	g->h = NULL;
	g->idslen = g->diglen = 0;
	g->s.nrows = 0;
	g->s.first_at = g->s.last_at = 0;
}

static int
chainer_grow(void *pp, size_t *cap, size_t need)
{
	void **p = pp;
	size_t n = *cap ? *cap : 4096;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	if ((q = realloc(*p, n)) == NULL)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

/* Start a segment after (seq, hash) at xact lo. */
static int
chainer_seg_start(struct chainer_seg *g, int64_t seq, int64_t lo,
    const unsigned char prev[CRYPTO_HASH_LEN])
{
	chainer_seg_clear(g);
	g->s.seq = seq;
	g->s.xact_lo = lo;
	memcpy(g->s.prev, prev, CRYPTO_HASH_LEN);
	if ((g->h = auditchain_hash_new(prev)) == NULL)
		return -1;
	if (chainer_grow(&g->ids, &g->idscap, 2) == -1)
		return -1;
	g->ids[0] = '{';
	g->idslen = 1;
	return 0;
}

static int
chainer_seg_add(struct chainer_seg *g, const struct auditchain_row *r)
{
	unsigned char d[CRYPTO_HASH_LEN];
	int n;

	if (auditchain_row_digest(r, d) == -1 ||
	    auditchain_hash_row(g->h, d) == -1 ||
	    chainer_grow(&g->ids, &g->idscap, g->idslen + 24) == -1 ||
	    chainer_grow(&g->dig, &g->digcap, g->diglen + AUDITCHAIN_DIG_LEN) ==
	    -1)
		return -1;
	n = snprintf(g->ids + g->idslen, 24, "%s%" PRId64,
	    g->s.nrows > 0 ? "," : "", r->id);
	g->idslen += (size_t)n;
	memcpy(g->dig + g->diglen, d, AUDITCHAIN_DIG_LEN);
	g->diglen += AUDITCHAIN_DIG_LEN;
	if (g->s.nrows == 0 || r->at_us < g->s.first_at)
		g->s.first_at = r->at_us;
	if (g->s.nrows == 0 || r->at_us > g->s.last_at)
		g->s.last_at = r->at_us;
	g->s.nrows++;
	g->last_xact = r->xact;
	return 0;
}

/* Seal g at xact hi: hash, MAC, INSERT; its hash into prev. */
static enum store_result
chainer_seg_seal(struct chainer *c, struct chainer_seg *g, int64_t hi,
    unsigned char prev[CRYPTO_HASH_LEN])
{
	unsigned char hash[CRYPTO_HASH_LEN], mac[CRYPTO_MAC_LEN];
	unsigned char msg[AUDITCHAIN_MAC_MSG_LEN];
	char err[512];
	enum store_result r;

	g->s.xact_hi = hi;
	g->ids[g->idslen] = '}';
	g->ids[g->idslen + 1] = '\0';
	r = auditchain_hash_end(g->h, &g->s, hash);
	g->h = NULL;
	if (r == -1) {
		log_warnx("audit chain: segment %" PRId64 ": cannot hash it",
		    g->s.seq);
		return STORE_FAIL;
	}
	auditchain_mac_msg(g->s.seq, hi, g->s.nrows, hash, msg);
	if (keyproc_audit_mac(msg, mac, err, sizeof(err)) == -1) {
		log_warnx("audit chain: segment %" PRId64 ": the key process "
		    "did not MAC it: %s", g->s.seq, err);
		return STORE_FAIL;
	}
	r = store_chain_insert(c->st, &g->s, g->ids, g->dig, g->diglen, hash,
	    mac);
	if (r == STORE_OK)
		memcpy(prev, hash, CRYPTO_HASH_LEN);
	return r;
}

/* One tick: seal what there is.  The rows sealed (or -1). */
static long long
chainer_tick(struct chainer *c, int *nsegs)
{
	struct store_chain_head h;
	struct auditchain_row row;
	struct chainer_seg g;
	PGresult *res = NULL;
	enum store_result r;
	int64_t seq = 0;
	long long rows = 0;
	int i, n, ok = 0;

	*nsegs = 0;
	memset(&g, 0, sizeof(g));
	if ((r = store_chain_begin(c->st, &h)) != STORE_OK)
		return r == STORE_CONFLICT ? 0 : -1;
	/*
	 * The head never goes back (a prune leaves its last segment as the
	 * anchor): segments were removed.  Sealing their rows again would
	 * MAC whatever is there now; the rows stay unsealed instead, until
	 * an operator looks (and restarts the server).
	 */
	if (h.seq < c->high) {
		if (!c->stuck)
			log_warnx("audit chain: the head went back from segment "
			    "%" PRId64 " to %" PRId64 ": segments were removed; "
			    "not sealing until restarted (ktadmin audit "
			    "--verify)", c->high, h.seq);
		c->stuck = 1;
		store_chain_end(c->st, 0);
		return 0;
	}
	c->high = h.seq;
	if (h.horizon <= h.xact_hi) {
		store_chain_end(c->st, 0);
		return 0;
	}
	if (store_chain_open(c->st, h.xact_hi, h.horizon) != STORE_OK)
		goto out;
	seq = h.seq + 1;
	if (chainer_seg_start(&g, seq, h.xact_hi, h.hash) == -1)
		goto out;
	for (;;) {
		if ((res = store_chain_fetch(c->st)) == NULL)
			goto out;
		if ((n = PQntuples(res)) == 0)
			break;
		for (i = 0; i < n; i++) {
			if (auditchain_row_get(res, i, 0, &row) == -1) {
				log_warnx("audit chain: audit_log row %d of a "
				    "fetch is malformed", i);
				goto out;
			}
			if (g.s.nrows >= CHAINER_SEG_ROWS &&
			    row.xact != g.last_xact) {
				if (chainer_seg_seal(c, &g, row.xact, h.hash) !=
				    STORE_OK)
					goto out;
				(*nsegs)++;
				if (chainer_seg_start(&g, ++seq, row.xact,
				    h.hash) == -1)
					goto out;
			}
			if (chainer_seg_add(&g, &row) == -1)
				goto out;
			rows++;
		}
		PQclear(res);
		res = NULL;
	}
	if (g.s.nrows > 0) {
		if (chainer_seg_seal(c, &g, h.horizon, h.hash) != STORE_OK)
			goto out;
		(*nsegs)++;
	}
	ok = 1;
out:
	PQclear(res);
	chainer_seg_clear(&g);
	free(g.ids);
	free(g.dig);
	if (store_chain_end(c->st, ok) != STORE_OK)
		ok = 0;
	/* Committed: the head is the last segment made. */
	if (ok && *nsegs > 0)
		c->high = seq;
	return ok ? rows : -1;
}

static double
chainer_cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void *
chainer_main(void *arg)
{
	struct chainer *c = arg;
	struct pollfd pfd;
	struct timespec now;
	double t0, cpu = 0;
	long long n, rows = 0, segs = 0;
	time_t last = 0;
	int k;

	for (;;) {
		pfd.fd = c->pipe[0];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, c->interval * 1000) == -1 && errno != EINTR)
			log_warn("audit chain: poll");
		if (pfd.revents != 0)
			break;
		/* A passive's database is a replica: it has the active's. */
		if (ha_is_passive(c->ha))
			continue;
		t0 = chainer_cpu_ms();
		if ((n = chainer_tick(c, &k)) <= 0)
			continue;
		rows += n;
		segs += k;
		cpu += chainer_cpu_ms() - t0;
		/* What sealing costs: at once the first time, then a minute's. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (last != 0 && now.tv_sec - last < CHAINER_LOG_SECS)
			continue;
		log_info("audit chain: sealed %lld rows in %lld segment(s), "
		    "%.1f ms CPU", rows, segs, cpu);
		last = now.tv_sec;
		rows = segs = 0;
		cpu = 0;
	}
	return NULL;
}

struct chainer *
chainer_start(const struct kt_conf *conf, struct ha *ha, char *err,
    size_t errlen)
{
	struct chainer *c;
	int e;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->ha = ha;
	c->interval = conf->audit_chain_interval;
	c->pipe[0] = c->pipe[1] = -1;
	if ((c->st = store_new(conf, "audit chain")) == NULL ||
	    pipe2(c->pipe, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "audit chain: %s", strerror(errno));
		goto fail;
	}
	if ((e = pthread_create(&c->thread, NULL, chainer_main, c)) != 0) {
		snprintf(err, errlen, "audit chain: pthread_create: %s",
		    strerror(e));
		goto fail;
	}
	return c;
fail:
	if (c->pipe[0] != -1) {
		close(c->pipe[0]);
		close(c->pipe[1]);
	}
	store_free(c->st);
	free(c);
	return NULL;
}

void
chainer_stop(struct chainer *c)
{
	if (c == NULL)
		return;
	if (write(c->pipe[1], "x", 1) == -1)
		log_warn("audit chain: stopping the chainer");
	pthread_join(c->thread, NULL);
	close(c->pipe[0]);
	close(c->pipe[1]);
	store_free(c->st);
	free(c);
}
