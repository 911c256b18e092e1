/*
 * audit.h - keeping one audit row: in audit_log, or in the passive's
 * journal while this server's database is a read-only replica.
 */
#ifndef KT_AUDIT_H
#define KT_AUDIT_H

#include "ha.h"
#include "store/store.h"

/* 0 kept (in audit_log or the journal), -1 kept nowhere (logged). */
int audit(struct ha *ha, struct store *st, const struct audit_row *r);

#endif
