/* ktadmin.h - ktadmin's commands and what they share. */
#ifndef KTADMIN_H
#define KTADMIN_H

struct pgcluster;

/*
 * One file per command, listed in main.c's table (cmdtab.h): cmd-init.c,
 * cmd-db.c, cmd-promote.c, cmd-restore.c, cmd-mail.c, cmd-audit.c.
 */
int cmd_init(int argc, char **argv);
int cmd_db(int argc, char **argv);
int cmd_promote(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_mail(int argc, char **argv);
int cmd_audit(int argc, char **argv);

struct timespec;
/*
 * A time as ktadmin audit takes it (an ISO-8601 date or time, "now", or a
 * time ago: 90s, 30m, 24h, 7d, 2w) into out as UTC
 * "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" (audittime.c): 0, else -1.
 */
int audit_time_parse(const char *s, const struct timespec *now, char out[32]);

/* "hint: run 'ktadmin CMD --help' for usage"; returns 2 (a usage error). */
int ktadmin_bad_usage(const char *cmd);

/*
 * ktadmin db's actions, which ktadmin restore takes too (cmd-db.c); each
 * returns the exit code.  --bootstrap: an active cluster (mhost NULL), or a
 * passive streaming from the active's PostgreSQL at mhost, mport.
 */
int db_bootstrap(
    struct pgcluster *d, const char *confdir, const char *mhost, int mport);
/* --start: in the foreground (postgres itself), or in the background. */
int db_start(const struct pgcluster *d, int background);

#endif
