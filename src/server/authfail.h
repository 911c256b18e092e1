/*
 * authfail.h - failed authentication that names no client, audited by the
 * minute: one audit_log row per (source address, action, reason) and
 * minute, carrying how many requests it stands for (see authfail.c).
 */
#ifndef KT_AUTHFAIL_H
#define KT_AUTHFAIL_H

#include "server.h"

/* Seconds between the writes of the tallies. */
#define AUTHFAIL_FLUSH_SECS 60

/* The tally and its writing thread (its own database connection); NULL. */
struct authfail *authfail_start(struct server *srv);
/* Write what is tallied, stop the thread and free; NULL is fine. */
void authfail_stop(struct authfail *af);
/*
 * One more failure of action ("auth") from remote, refused for why
 * ("no_header", "throttled", ...).  Tallied; when the tally has no room,
 * audited on its own through w's connection, as every row was before.
 */
void authfail_note(
    struct worker *w, const char *action, const char *remote, const char *why);

#endif
