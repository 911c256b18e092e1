/*
 * backupstat.h - the result of the last backup, as ktbackup.sh leaves it in
 * CONFDIR/backup-status.json on every run (docs/backup.md), judged for the
 * server's /health and for kt-agent status and history.
 */
#ifndef KT_BACKUPSTAT_H
#define KT_BACKUPSTAT_H

#include <jansson.h>

#define BACKUPSTAT_FILE "backup-status.json"
/* The schedule's interval when the status names none: hourly. */
#define BACKUPSTAT_DEFAULT_INTERVAL 3600

/*
 * CONFDIR/backup-status.json, checked (an object with an integer "ended"
 * and a "result" of "ok" or "failed"); NULL with errno ENOENT when there is
 * none, EINVAL when it is not such a status.
 */
json_t *backupstat_load(const char *confdir);
/*
 * What the status says at time now: "none" (st is NULL), "failed" (the
 * last run failed), "overdue" (the last run ended more than twice the
 * interval ago), or "ok".
 */
const char *backupstat_state(const json_t *st, long long now);
/* The status's interval in seconds (BACKUPSTAT_DEFAULT_INTERVAL if none). */
long long backupstat_interval(const json_t *st);
/*
 * /health's "backup" object: state, the time and result of the last run,
 * its age, duration and interval, the last good run, and for a failure a
 * word from a fixed list (never a path or the error's text, which hold
 * the layout of the config dir).  NULL when out of memory.
 */
json_t *backupstat_health(const json_t *st, long long now);
/* "%Y-%m-%dT%H:%M:%SZ" of t into buf (at least 21 bytes); "-" for 0. */
void backupstat_time(long long t, char *buf, size_t len);

#endif
