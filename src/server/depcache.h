/*
 * depcache.h - the sealed deposits in memory, kept exact by LISTEN/NOTIFY
 * and bounded in size (see depcache.c).
 */
#ifndef KT_DEPCACHE_H
#define KT_DEPCACHE_H

#include <stddef.h>

#include "conf.h"
#include "deposit.h"
#include "store/store.h"

/* A cache of at most limit bytes (0: none) and its filler thread. */
struct depcache *depcache_start(const struct kt_conf *conf, size_t limit);
void depcache_stop(struct depcache *dc);
/* The cached deposit uuid (a reference: deposit_unref), or NULL. */
struct deposit *depcache_get(struct depcache *dc, const char *uuid);
/* Read before the database; put keeps d only if nothing was dropped since. */
unsigned long depcache_gen(struct depcache *dc);
void depcache_put(struct depcache *dc, struct deposit *d, unsigned long gen);
/* Invalidations (the listener, the API's DELETE). */
void depcache_drop(struct depcache *dc, const char *uuid);
void depcache_flush(struct depcache *dc);
/* The listener: on (emptied, then filled from the table) or off. */
void depcache_set_live(struct depcache *dc, int live);
/* Read the table into the cache again (rows came from elsewhere). */
void depcache_fill(struct depcache *dc);
void depcache_stats(struct depcache *dc, size_t *n, size_t *bytes,
    size_t *limit, int *live, int *filling);
/* The channel that keeps it exact, for store_listen_start. */
void depcache_channel(struct depcache *dc, struct store_channel *out);

/*
 * The table without its filler thread and store: for depcache.c itself
 * and tests/fuzz/fuzz_depcache.c, which checks it against a model of what
 * it must hold.  The rest of the server uses what is above.
 */
/*
 * A cache of at most limit bytes in nbuckets hash buckets (a power of
 * two), with no filler: nothing reads the table into it, and what a
 * flush retires stays counted against the limit until depcache_reap.
 * Freed by depcache_stop.  NULL out of memory or for a bad nbuckets.
 */
struct depcache *depcache_new(size_t limit, unsigned nbuckets);
/*
 * Keep d (the cache takes a reference of its own) unless an invalidation
 * overtook it since gen was read, the cache is off, or d's uuid is there
 * already.  When full: evict=1 makes room in d's lock stripe, else d is
 * not kept.  1 kept, 0 not (stale, off or present), -1 no room.
 */
int depcache_keep(
    struct depcache *dc, struct deposit *d, unsigned long gen, int evict);
/* Free what flushes retired now (the filler's work). */
void depcache_reap(struct depcache *dc);

#endif
