/* ktadmin.h - the ktadmin command table. */
#ifndef KTADMIN_H
#define KTADMIN_H

struct ktadmin_cmd {
	const char *name;
	const char *usage;
	const char *summary;
	int (*run)(int argc, char **argv);  /* argv[0] is the command name */
};

/* One file per command: cmd-init.c, cmd-db.c, cmd-mail.c. */
int cmd_init(int argc, char **argv);
int cmd_db(int argc, char **argv);
int cmd_mail(int argc, char **argv);

extern const char *ktadmin_progname;

#endif
