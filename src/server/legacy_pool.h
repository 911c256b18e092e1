/*
 * legacy_pool.h - the threads that serve the legacy protocol's actions
 * (legacy.c).  A legacy request waits while the key process does its
 * RSA-4096 operations and while PostgreSQL answers; served in the worker
 * whose connection it came on, it would hold that worker's core idle and
 * every other connection of that worker waiting.  So the worker hands it
 * to one of these threads (each with a database connection and a key
 * ring of its own: a struct worker without a loop) and goes on; the
 * answer comes back to the worker's loop, which sends it.
 */
#ifndef KT_LEGACY_POOL_H
#define KT_LEGACY_POOL_H

#include <stddef.h>

#include "server.h"

struct legacy_pool;

/*
 * What the pool queues: the head of the caller's job (legacy.c's struct
 * legacy_job begins with it), with the two functions that serve it.
 */
struct pool_job {
	struct pool_job *next;
	struct worker *w; /* whose loop sends the answer */
	/* In a pool thread, whose context (store, keys) is ctx. */
	void (*run)(struct worker *ctx, struct pool_job *j);
	/* In w's loop: send the answer (unless !send, at a stop), free j. */
	void (*done)(struct pool_job *j, int send);
};

/*
 * n threads for srv (after workers_init: the answers come back to the
 * workers' loops); n = 0: none (each worker serves its own legacy
 * requests).  NULL with err on failure.
 */
struct legacy_pool *legacy_pool_start(
    struct server *srv, int n, char *err, size_t errlen);
/*
 * Queue j (from its worker's thread): 0, or -1 when there is no pool (or
 * it stops): the caller serves j itself.
 */
int legacy_pool_submit(struct legacy_pool *p, struct pool_job *j);
/*
 * After the workers' threads ended: let the threads finish the job each
 * has, drop what waits, join them.
 */
void legacy_pool_stop(struct legacy_pool *p);
/* Before the workers' loops are freed: their answer events, the rest. */
void legacy_pool_free(struct legacy_pool *p);

#endif
