/* ktadmin.h - the ktadmin command table. */
#ifndef KTADMIN_H
#define KTADMIN_H

#include <stddef.h>

struct ktadmin_cmd {
	const char *name;
	const char *usage;
	const char *summary;
	int (*run)(int argc, char **argv);  /* argv[0] is the command name */
};

/* One file per command: cmd-init.c, cmd-db.c, cmd-restore.c, cmd-mail.c. */
int cmd_init(int argc, char **argv);
int cmd_db(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_mail(int argc, char **argv);

/*
 * PostgreSQL's bin directory: $PG_BINDIR, else `pg_config --bindir`, else
 * the newest /usr/lib/postgresql/N/bin.  Reports and returns -1 when none.
 */
int pgbin_find(char *bindir, size_t len);

extern const char *ktadmin_progname;

#endif
