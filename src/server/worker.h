/* worker.h - the worker threads and their event loops (see worker.c). */
#ifndef KT_WORKER_H
#define KT_WORKER_H

#include <stddef.h>

#include "server.h"

/* Each worker's loop, listener and database connection; 0 or -1 (err). */
int workers_init(struct server *srv, char *err, size_t errlen);
/* The threads, serving from now on. */
int workers_run(struct server *srv, char *err, size_t errlen);
/* Stop accepting, let what is in flight finish briefly, join. */
void workers_stop(struct server *srv);
/* What the stopped workers still hold (after the audit queue stopped). */
void workers_free(struct server *srv);

#endif
