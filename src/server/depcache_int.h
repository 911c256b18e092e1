/*
 * depcache_int.h - the deposit cache's table without its filler thread
 * and store, for depcache.c itself and for tests/fuzz/fuzz_depcache.c,
 * which checks it against a model of what it must hold.  The server uses
 * depcache.h only.
 */
#ifndef KT_DEPCACHE_INT_H
#define KT_DEPCACHE_INT_H

#include <stddef.h>

#include "depcache.h"

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
