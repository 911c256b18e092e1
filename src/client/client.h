/* client.h - keytrustee-client: one file per command over libkeytrustee. */
#ifndef KT_CLIENT_H
#define KT_CLIENT_H

#include <stdio.h>

#include "cmdtab.h"
#include "keytrustee.h"

#define CLIENT_PROGNAME "keytrustee-client"

extern const char *client_progname;
/* --confdir given before the verb (NULL: none); a verb's own overrides it. */
extern const char *client_confdir;

/* Open the client; on failure report and return NULL (*rc = exit code). */
struct kt_client *client_open(const char *confdir, int *rc);
/* Report a library failure with a hint; returns the exit code (1 or 2). */
int client_fail(struct kt_client *c, int ret);
/* Usage error for cmd: prints error + hint, returns 2. */
int client_usage_error(const struct cmdtab_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "usage: keytrustee-client [--confdir DIR] USAGE\n\nSUMMARY\n" */
void client_cmd_help(const struct cmdtab_cmd *cmd, FILE *fp);
const struct cmdtab_cmd *client_cmd_find(const char *name);

/* The verbs (main.c's command table). */
int cmd_register(int argc, char **argv);
int cmd_put(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_delete(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);

#endif
