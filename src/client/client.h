/* client.h - keytrustee-client: one file per command over libkeytrustee. */
#ifndef KT_CLIENT_H
#define KT_CLIENT_H

#include <stdio.h>

#include "cmdtab.h"
#include "keytrustee.h"

#define CLIENT_PROGNAME "keytrustee-client"

/*
 * The verbs name their entry of main.c's command table struct client_cmd:
 * it is the shared table's entry (name, usage, summary, handler).
 */
#define client_cmd cmdtab_cmd

extern const char *client_progname;

/* Open the client; on failure report and return NULL (*rc = exit code). */
struct kt_client *client_open(const char *confdir, int *rc);
/* Report a library failure with a hint; returns the exit code (1 or 2). */
int client_fail(struct kt_client *c, int ret);
/* Usage error for cmd: prints error + hint, returns 2. */
int client_usage_error(const struct client_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "usage: keytrustee-client [--confdir DIR] USAGE\n\nSUMMARY\n" */
void client_cmd_help(const struct client_cmd *cmd, FILE *fp);
const struct client_cmd *client_cmd_find(const char *name);

/* The verbs; main.c hands each the --confdir given before it. */
int cmd_register(const char *confdir, int argc, char **argv);
int cmd_put(const char *confdir, int argc, char **argv);
int cmd_get(const char *confdir, int argc, char **argv);
int cmd_list(const char *confdir, int argc, char **argv);
int cmd_delete(const char *confdir, int argc, char **argv);
int cmd_backup(const char *confdir, int argc, char **argv);
int cmd_restore(const char *confdir, int argc, char **argv);

#endif
