/*
 * auditq.h - group commit of the audit rows of deposit reads and of new
 * deposits: a request whose answer waits for its row's commit is set
 * aside, and its handler's function is called from its worker's loop once
 * the row committed (or could not).
 */
#ifndef KT_AUDITQ_H
#define KT_AUDITQ_H

#include "server.h"
#include "store/store.h"

/*
 * What became of a queued row: 1 committed, 0 not (the database failed),
 * -1 refused (a write found no synchronous standby), 2 a new deposit's
 * request was seen before (nothing written: its first answer is kept,
 * store_seen_answer).
 */
typedef void auditq_done_fn(void *arg, int result);

/* After the workers' loops exist (srv->workers), with srv->ha. */
struct auditq *auditq_start(struct server *srv);
/*
 * After the workers' loops stopped: queued deposits commit, a read batch
 * out is waited for; reads not sent yet were never answered, and nothing
 * is called back.
 */
void auditq_stop(struct auditq *q);
/*
 * Queue the "deposit_read ok" row r of a request of w: done(arg, 1 or 0)
 * once it is kept (a failed batch is retried row by row, which journals on
 * a passive).  -1 when there is no queue (a passive does not queue): the
 * caller audits itself, and done is never called.
 */
int auditq_read(struct auditq *q, struct worker *w, const struct audit_row *r,
    auditq_done_fn *done, void *arg);
/*
 * Queue the new deposit d with its deposit_create row (from remote) and
 * its request's answer: done(arg, 1, 2, 0 or -1) once it committed, as one
 * of a batch.  d is
 * copied, but for its ciphertext d->ct, which is taken over (the caller
 * forgets it) when 0 is returned.  -1 when there is no queue: the caller
 * inserts it itself, and done is never called.
 */
int auditq_create(struct auditq *q, struct worker *w,
    const struct deposit_row *d, const char *remote, auditq_done_fn *done,
    void *arg);

#endif
