/*
 * ha.h - active/passive high availability: this server's role, the
 * replication state, the write gate, and the passive's audit journal.
 */
#ifndef KT_HA_H
#define KT_HA_H

#include <jansson.h>

#include "conf.h"
#include "store/store.h"
#include "verdict.h"

/* What the HA monitor last saw of this server's database. */
struct ha_state {
	int known;	       /* a check has succeeded */
	int db_up;	       /* the last check succeeded */
	long long checked_ms;  /* CLOCK_MONOTONIC of the last check */
	struct repl_status r;  /* what that check found */
};

struct ha;

/*
 * Check once (the role is known before the first request when it can be)
 * and start the monitor thread; NULL with err.
 */
struct ha *ha_start(const struct kt_conf *conf, char *err, size_t errlen);
void ha_stop(struct ha *ha);
void ha_snapshot(struct ha *ha, struct ha_state *out);
int ha_is_passive(struct ha *ha);
/*
 * May this server take a write now?  0 yes; -1 with v refusing it: 503
 * from a passive (naming the active), or from an active whose synchronous
 * standby does not stream.
 */
int ha_write_gate(struct ha *ha, struct verdict *v);
/* The same for the state st of a server on port. */
int ha_gate(const struct ha_state *st, int port, struct verdict *v);
/* The 503 of a write that found no synchronous standby; returns -1. */
int ha_no_sync(struct verdict *v);
/* The "replication" object of /health; *writes: may it take writes. */
json_t *ha_health(struct ha *ha, int *writes);
/* The passive's audit: one JSON line per row in CONFDIR/audit-passive.log. */
int ha_journal(struct ha *ha, const struct audit_row *r);

#endif
