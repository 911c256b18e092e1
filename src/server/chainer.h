/*
 * chainer.h - the audit chain's sealer thread (chainer.c, docs/audit.md).
 */
#ifndef KT_CHAINER_H
#define KT_CHAINER_H

#include <stddef.h>

#include "conf.h"

struct ha;
struct chainer;

/*
 * Start the thread: every AUDIT_CHAIN_INTERVAL seconds of conf it seals the
 * audit rows of the transactions ended since into audit_chain, unless ha
 * says this server is the passive.  NULL with err when it cannot start.
 */
struct chainer *chainer_start(const struct kt_conf *conf, struct ha *ha,
    char *err, size_t errlen);
/* Stop it (after the tick in progress, if any) and free it; NULL: none. */
void chainer_stop(struct chainer *c);

#endif
