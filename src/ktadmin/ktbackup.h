/* ktbackup.h - what a ktbackup.sh backup holds (ktbackup.c). */
#ifndef KTADMIN_KTBACKUP_H
#define KTADMIN_KTBACKUP_H

#include <limits.h>

/* The two members a restore takes, as stored, without trailing slashes. */
struct ktbackup {
	char conf[PATH_MAX]; /* the config dir */
	char sql[PATH_MAX];  /* the kts_bak_*.sql dump */
};

/*
 * Look at every member of the tar at tarpath (the backup called name):
 * 0 when it holds one config dir, one dump and nothing else (b says
 * where), else -1 with the reason reported.
 */
int ktbackup_scan(const char *tarpath, const char *name, struct ktbackup *b);

#endif
