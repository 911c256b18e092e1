/*
 * depcache.c - the stored deposits, still sealed, in memory, so that a GET
 * is answered without a database round trip (issue 8).
 *
 * What is kept is what the deposits table holds (struct deposit): the
 * AES-GCM nonce and ciphertext (opened on every read, as a row from the
 * database is), the owner, and the answer's other members rendered once.
 * Deposits never change once written; they are deleted.  The cache is
 * kept exact the way the client cache is (authcache.c), by the same
 * listener (store/listen.c): schema migration 6 notifies channel
 * kt_deposits with the uuid of every row deleted or updated, "*" on a
 * TRUNCATE or any DDL; what is named is dropped as each notification
 * arrives.  The API's own
 * DELETE drops its entry before it answers.  A read
 * that raced an invalidation (the generation moved while it read the
 * database) is not kept.  The cache is used only while the listener is
 * up (depcache_set_live): never on a passive (its database is a replica,
 * which gets no notifications), never while the LISTEN connection is
 * down, and it is emptied each time it goes on or off.
 *
 * Filling: a read that misses puts the row in.  A filler thread also
 * reads the whole table in uuid order when the cache goes live and again
 * when rows arrive that this server did not insert (an INSERT statement
 * from anywhere but the server notifies "+"; the server's own inserts set
 * keytrustee.origin and come in on their first read), so that a large
 * table does not pay a database read per first access.  Memory is bounded
 * (--deposit-cache-mb): the filler stops when the cache is full; a read
 * that misses then evicts what shares its hash bucket.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "depcache.h"
#include "deposit.h"
#include "log.h"
#include "util.h"

#define DC_BUCKETS (1u << 20) /* pointers only: pages touched as used */
#define DC_STRIPES 64
#define DC_CHANNEL "kt_deposits"
#define DC_FILL_BATCH 2000
#define DC_EVICT_SCAN 64 /* buckets looked at for an entry to evict */
#define DC_STALE_TRIES 3 /* reads of a fill batch an invalidation overtook */

/*
 * A bucket array out of use: one a flush swapped out, its entries (bytes
 * of them) still to free, or the empty spare the next flush swaps in.
 */
struct dc_array {
	struct dc_array *next;
	struct deposit **b;
	size_t bytes;
};

struct depcache {
	struct store *store; /* the filler's connection */
	size_t limit;
	pthread_rwlock_t lock[DC_STRIPES];
	struct deposit **b; /* swapped only with every stripe locked */
	unsigned nbuckets;  /* DC_BUCKETS (fewer in the fuzzer) */
	atomic_size_t bytes, n;
	atomic_size_t retiring; /* bytes of retired entries not yet freed */
	atomic_ulong gen;
	atomic_int live;
	/* the filler, which also frees what flushes retired */
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	int fill_wanted, stop, filling, threaded;
	struct dc_array *retired;
	struct dc_array *spare;
	pthread_t thread;
};

static unsigned
dc_hash(const struct depcache *dc, const char *uuid)
{
	return str_hash(uuid) & (dc->nbuckets - 1);
}

/*
 * Is e the deposit uuid names?  The whole string: a notification's payload
 * may be any text, shorter than a uuid or longer (fuzz_depcache found a
 * comparison of the first 36 octets reading past a short one).
 */
static int
dc_is(const struct deposit *e, const char *uuid)
{
	return strcmp(e->uuid, uuid) == 0;
}

static pthread_rwlock_t *
dc_stripe(struct depcache *dc, unsigned h)
{
	return &dc->lock[h % DC_STRIPES];
}

struct deposit *
depcache_get(struct depcache *dc, const char *uuid)
{
	struct deposit *e;
	unsigned h;

	if (dc == NULL || !atomic_load(&dc->live))
		return NULL;
	h = dc_hash(dc, uuid);
	pthread_rwlock_rdlock(dc_stripe(dc, h));
	for (e = dc->b[h]; e != NULL; e = e->next)
		if (dc_is(e, uuid)) {
			deposit_ref(e);
			break;
		}
	pthread_rwlock_unlock(dc_stripe(dc, h));
	return e;
}

unsigned long
depcache_gen(struct depcache *dc)
{
	return dc != NULL ? atomic_load(&dc->gen) : 0;
}

/* Unlink *pp (under its stripe's write lock). */
static void
dc_unlink(struct depcache *dc, struct deposit **pp)
{
	struct deposit *e = *pp;

	*pp = e->next;
	atomic_fetch_sub(&dc->bytes, e->size);
	atomic_fetch_sub(&dc->n, 1);
	deposit_unref(e);
}

/*
 * Make room from the buckets of h's stripe (its lock is held): the first
 * entry found in h or the next DC_EVICT_SCAN buckets of the stripe goes,
 * which is as good as random for uuids.  0, or -1 when none was found.
 */
static int
dc_evict(struct depcache *dc, unsigned h)
{
	unsigned k, b;

	for (k = 0; k < DC_EVICT_SCAN; k++) {
		b = (h + k * DC_STRIPES) & (dc->nbuckets - 1);
		if (dc->b[b] != NULL) {
			dc_unlink(dc, &dc->b[b]);
			return 0;
		}
	}
	return -1;
}

int
depcache_keep(
    struct depcache *dc, struct deposit *e, unsigned long gen, int evict)
{
	struct deposit **pp;
	unsigned h;
	int ret = 0;

	if (dc == NULL || dc->limit == 0 || !atomic_load(&dc->live))
		return 0;
	h = dc_hash(dc, e->uuid);
	pthread_rwlock_wrlock(dc_stripe(dc, h));
	if (atomic_load(&dc->gen) != gen || !atomic_load(&dc->live))
		goto out;
	for (pp = &dc->b[h]; *pp != NULL; pp = &(*pp)->next)
		if (dc_is(*pp, e->uuid))
			goto out;
	while (atomic_load(&dc->bytes) + atomic_load(&dc->retiring) + e->size >
	    dc->limit)
		if (!evict || dc_evict(dc, h) == -1) {
			ret = -1;
			goto out;
		}
	deposit_ref(e);
	e->next = dc->b[h];
	dc->b[h] = e;
	atomic_fetch_add(&dc->bytes, e->size);
	atomic_fetch_add(&dc->n, 1);
	ret = 1;
out:
	pthread_rwlock_unlock(dc_stripe(dc, h));
	return ret;
}

void
depcache_put(struct depcache *dc, struct deposit *e, unsigned long gen)
{
	(void)depcache_keep(dc, e, gen, 1);
}

void
depcache_drop(struct depcache *dc, const char *uuid)
{
	struct deposit **pp;
	unsigned h;

	if (dc == NULL)
		return;
	h = dc_hash(dc, uuid);
	pthread_rwlock_wrlock(dc_stripe(dc, h));
	atomic_fetch_add(&dc->gen, 1);
	for (pp = &dc->b[h]; *pp != NULL; pp = &(*pp)->next)
		if (dc_is(*pp, uuid)) {
			dc_unlink(dc, pp);
			break;
		}
	pthread_rwlock_unlock(dc_stripe(dc, h));
}

/* Unreference every entry of a bucket array of n, leaving it empty. */
static void
dc_empty_buckets(struct deposit **b, unsigned n)
{
	struct deposit *e, *next;
	size_t h;

	/* Writing only where there were entries: pages never used stay so. */
	for (h = 0; h < n; h++) {
		if (b[h] == NULL)
			continue;
		for (e = b[h]; e != NULL; e = next) {
			next = e->next;
			deposit_unref(e);
		}
		b[h] = NULL;
	}
}

static void
dc_array_free(struct dc_array *a)
{
	if (a == NULL)
		return;
	free(a->b);
	free(a);
}

/*
 * An empty array for a flush: the spare, else a new one (whose 8 MB of
 * page faults cost the listener up to 65 ms here); NULL out of memory.
 */
static struct dc_array *
dc_array_take(struct depcache *dc)
{
	struct dc_array *a;

	pthread_mutex_lock(&dc->mtx);
	a = dc->spare;
	dc->spare = NULL;
	pthread_mutex_unlock(&dc->mtx);
	if (a == NULL && (a = calloc(1, sizeof(*a))) != NULL &&
	    (a->b = calloc(dc->nbuckets, sizeof(*a->b))) == NULL) {
		free(a);
		a = NULL;
	}
	return a;
}

/*
 * Empty what flushes retired (the filler's thread, or the last stop), and
 * keep one array as the spare unless stopping.
 */
static void
dc_free_retired(struct depcache *dc, struct dc_array *a)
{
	struct dc_array *next;

	for (; a != NULL; a = next) {
		next = a->next;
		dc_empty_buckets(a->b, dc->nbuckets);
		atomic_fetch_sub(&dc->retiring, a->bytes);
		a->bytes = 0;
		pthread_mutex_lock(&dc->mtx);
		if (dc->spare == NULL && !dc->stop) {
			dc->spare = a;
			a = NULL;
		}
		pthread_mutex_unlock(&dc->mtx);
		dc_array_free(a);
	}
}

/*
 * Empty the cache at once: with every stripe locked, the generation moves
 * (no read from before is kept) and the bucket array is swapped for an
 * empty one, so no lookup after this returns finds an entry from before.
 * Emptying the old array is the filler's work: dropping the entries in
 * place, stripe by stripe, took the listener ~100 ms here however few
 * they were (a strided walk of 8 MB), while stale entries stayed visible
 * in the stripes not reached yet and the notifications queued behind this
 * one waited.  Without memory for the swap the entries are dropped here,
 * every stripe still locked.
 */
void
depcache_flush(struct depcache *dc)
{
	struct deposit **old;
	struct dc_array *a = NULL;
	unsigned s;

	if (dc == NULL)
		return;
	if (atomic_load(&dc->n) > 0)
		a = dc_array_take(dc);
	for (s = 0; s < DC_STRIPES; s++)
		pthread_rwlock_wrlock(&dc->lock[s]);
	atomic_fetch_add(&dc->gen, 1);
	if (a != NULL) {
		old = dc->b;
		dc->b = a->b;
		a->b = old;
		a->bytes = atomic_exchange(&dc->bytes, 0);
		atomic_fetch_add(&dc->retiring, a->bytes);
	} else if (atomic_load(&dc->n) > 0) {
		dc_empty_buckets(dc->b, dc->nbuckets);
		atomic_store(&dc->bytes, 0);
	}
	atomic_store(&dc->n, 0);
	for (s = DC_STRIPES; s-- > 0;)
		pthread_rwlock_unlock(&dc->lock[s]);
	if (a == NULL)
		return;
	pthread_mutex_lock(&dc->mtx);
	a->next = dc->retired;
	dc->retired = a;
	pthread_cond_signal(&dc->cond);
	pthread_mutex_unlock(&dc->mtx);
}

void
depcache_fill(struct depcache *dc)
{
	if (dc == NULL || dc->limit == 0)
		return;
	pthread_mutex_lock(&dc->mtx);
	dc->fill_wanted = 1;
	pthread_cond_signal(&dc->cond);
	pthread_mutex_unlock(&dc->mtx);
}

void
depcache_set_live(struct depcache *dc, int live)
{
	if (dc == NULL)
		return;
	/* Whatever changed while not listening is unknown. */
	atomic_store(&dc->live, live);
	depcache_flush(dc);
	if (live)
		depcache_fill(dc);
}

/* A fill batch as it is read. */
struct dc_fill {
	struct depcache *dc;
	unsigned long gen; /* the generation before the read */
	int stale, full;
};

static int
dc_fill_one(void *arg, struct deposit *d)
{
	struct dc_fill *f = arg;
	int r = depcache_keep(f->dc, d, f->gen, 0);

	if (r == -1)
		f->full = 1;
	else if (r == 0 && atomic_load(&f->dc->gen) != f->gen)
		f->stale = 1;
	return f->full || f->stale ? -1 : 0;
}

/*
 * One batch of the table after key last (all from the start when empty):
 * rows read, -1 on error, -2 when the cache is full.  last moves on when
 * the batch was kept (one an invalidation overtook is read again, up to
 * DC_STALE_TRIES times).
 */
static int
dc_fill_batch(struct depcache *dc, struct store *st,
    char last[CRYPTO_UUID_LEN + 1], int *stale_tries)
{
	struct dc_fill f = {dc, atomic_load(&dc->gen), 0, 0};
	char next[CRYPTO_UUID_LEN + 1];
	int n;

	if ((n = store_deposit_scan(st, last, DC_FILL_BATCH, dc_fill_one, &f,
		 next)) == -1)
		return -1;
	if (f.full)
		return -2;
	/*
	 * Overtaken by an invalidation: read again, but not for ever (rows
	 * not kept are read in by their first GET).
	 */
	if (f.stale && ++*stale_tries < DC_STALE_TRIES)
		return n;
	*stale_tries = 0;
	if (n > 0)
		memcpy(last, next, sizeof(next));
	return n;
}

static void *
dc_main(void *arg)
{
	struct depcache *dc = arg;
	char last[CRYPTO_UUID_LEN + 1];
	struct dc_array *retired;
	int r, stale_tries, want;

	for (;;) {
		pthread_mutex_lock(&dc->mtx);
		dc->filling = 0;
		while (!dc->fill_wanted && dc->retired == NULL && !dc->stop)
			pthread_cond_wait(&dc->cond, &dc->mtx);
		if (dc->stop) {
			pthread_mutex_unlock(&dc->mtx);
			break;
		}
		retired = dc->retired;
		dc->retired = NULL;
		want = dc->filling = dc->fill_wanted;
		dc->fill_wanted = 0;
		pthread_mutex_unlock(&dc->mtx);
		/* Before a fill: their bytes count against the limit. */
		dc_free_retired(dc, retired);
		if (!want)
			continue;
		/* On an error the next go live or "+" tries again. */
		last[0] = '\0';
		stale_tries = 0;
		do {
			pthread_mutex_lock(&dc->mtx);
			r = dc->stop ? -1 : 0;
			pthread_mutex_unlock(&dc->mtx);
			if (r == 0 && atomic_load(&dc->live))
				r = dc_fill_batch(
				    dc, dc->store, last, &stale_tries);
			else
				r = -1;
		} while (r > 0);
		log_debug("deposit cache: %zu deposits, %zu bytes%s",
		    atomic_load(&dc->n), atomic_load(&dc->bytes),
		    r == -2 ? " (full)" : "");
	}
	return NULL;
}

void
depcache_stats(struct depcache *dc, size_t *n, size_t *bytes, size_t *limit,
    int *live, int *filling)
{
	*n = *bytes = *limit = 0;
	*live = *filling = 0;
	if (dc == NULL)
		return;
	*n = atomic_load(&dc->n);
	*bytes = atomic_load(&dc->bytes);
	*limit = dc->limit;
	*live = atomic_load(&dc->live);
	pthread_mutex_lock(&dc->mtx);
	*filling = dc->filling || dc->fill_wanted;
	pthread_mutex_unlock(&dc->mtx);
}

struct depcache *
depcache_new(size_t limit, unsigned nbuckets)
{
	struct depcache *dc;
	int i;

	if (nbuckets == 0 || (nbuckets & (nbuckets - 1)) != 0 ||
	    (dc = calloc(1, sizeof(*dc))) == NULL)
		return NULL;
	if ((dc->b = calloc(nbuckets, sizeof(*dc->b))) == NULL) {
		free(dc);
		return NULL;
	}
	dc->nbuckets = nbuckets;
	dc->limit = limit;
	for (i = 0; i < DC_STRIPES; i++)
		pthread_rwlock_init(&dc->lock[i], NULL);
	pthread_mutex_init(&dc->mtx, NULL);
	pthread_cond_init(&dc->cond, NULL);
	return dc;
}

struct depcache *
depcache_start(const struct kt_conf *conf, size_t limit)
{
	struct depcache *dc;

	if ((dc = depcache_new(limit, DC_BUCKETS)) == NULL)
		return NULL;
	if ((dc->store = store_new(conf, "deposit cache fill")) == NULL ||
	    pthread_create(&dc->thread, NULL, dc_main, dc) != 0) {
		depcache_stop(dc);
		return NULL;
	}
	dc->threaded = 1;
	return dc;
}

void
depcache_reap(struct depcache *dc)
{
	struct dc_array *retired;

	pthread_mutex_lock(&dc->mtx);
	retired = dc->retired;
	dc->retired = NULL;
	pthread_mutex_unlock(&dc->mtx);
	dc_free_retired(dc, retired);
}

void
depcache_stop(struct depcache *dc)
{
	int i;

	if (dc == NULL)
		return;
	pthread_mutex_lock(&dc->mtx);
	dc->stop = 1;
	pthread_cond_signal(&dc->cond);
	pthread_mutex_unlock(&dc->mtx);
	if (dc->threaded)
		pthread_join(dc->thread, NULL);
	atomic_store(&dc->live, 0);
	dc_free_retired(dc, dc->retired);
	dc_empty_buckets(dc->b, dc->nbuckets);
	free(dc->b);
	dc_array_free(dc->spare);
	for (i = 0; i < DC_STRIPES; i++)
		pthread_rwlock_destroy(&dc->lock[i]);
	pthread_mutex_destroy(&dc->mtx);
	pthread_cond_destroy(&dc->cond);
	store_free(dc->store);
	free(dc);
}

/* A notification: a uuid is dropped; "*" empties and "+" reads again. */
static void
dc_notified(void *arg, const char *payload)
{
	struct depcache *dc = arg;

	if (strcmp(payload, "*") == 0)
		depcache_flush(dc);
	else if (strcmp(payload, "+") != 0) {
		depcache_drop(dc, payload);
		return;
	}
	depcache_fill(dc);
}

static void
dc_live(void *arg, int on)
{
	depcache_set_live(arg, on);
}

void
depcache_channel(struct depcache *dc, struct store_channel *out)
{
	*out = (struct store_channel){DC_CHANNEL, dc_notified, dc_live, dc};
}
