/*
 * authfail.h - failed authentication: its limit per source address
 * (AUTH_FAILURES_PER_MINUTE, then 429) and its audit, by the minute when
 * it names no client: one audit_log row per (source address, action,
 * reason) and minute, carrying how many requests it stands for (see
 * authfail.c).
 */
#ifndef KT_AUTHFAIL_H
#define KT_AUTHFAIL_H

#include "server.h"
#include "store/store.h"
#include "verdict.h"

/* Seconds between the writes of the tallies. */
#define AUTHFAIL_FLUSH_SECS 60

/*
 * The tally, its writing thread (with its own database connection) and
 * the limit: AUTH_FAILURES_PER_MINUTE of srv's configuration.  NULL.
 */
struct authfail *authfail_start(struct server *srv);
/* Write what is tallied, stop the thread and free; NULL is fine. */
void authfail_stop(struct authfail *af);
/*
 * May remote try to authenticate (for action: "auth", a legacy action)?
 * 0, or -1 with v refusing it (429 with Retry-After) when it failed too
 * often this minute; that refusal is tallied too ("throttled").
 */
int authfail_check(struct worker *w, const char *action, const char *remote,
    struct verdict *v);
/*
 * One failed authentication, r (its remote, action and result, why):
 * counted against its address, and audited: as a row of its own when it
 * names a registered client (r->actor), else tallied by the minute (a row
 * of its own only when the tally has no room).
 */
void authfail_record(struct worker *w, const struct audit_row *r);

#endif
