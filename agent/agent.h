/* agent.h - kt-agent: the host agent of the KEYTRUSTEE_SERVER service. */
#ifndef KT_AGENT_H
#define KT_AGENT_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <yaml.h>
#include <jansson.h>

#define AGENT_PROGNAME "kt-agent"
#define AGENT_DEFAULT_STATE "/var/lib/kt-agent"
#define AGENT_DEFAULT_PARCELS_ROOT "/opt/cloudera/parcels"
#define AGENT_SERVICE_DIR "keytrustee_server"

/*
 * A verb's --help (each verb is one file, listed in main.c's table):
 * "usage: kt-agent [global options] USAGE\n\nSUMMARY\n\noptions:\nOPTIONS"
 */
void agent_usage(FILE *fp, const char *name, const char *options);
/*
 * Options of a verb that has only -h/--help and, when role is not NULL,
 * --role ROLE: -1 to go on (optind at the operands), else the exit code
 * (0 after the help, 2 for a bad option).
 */
int agent_getopt(int argc, char **argv, const char *name, const char *options,
    const char **role);

/* Global options (main.c). */
extern const char *agent_state_dir;
extern const char *agent_host;
extern const char *agent_parcels_root;
extern const char *agent_self; /* argv[0] resolved (for `run`) */

int cmd_validate(int, char **);
int cmd_assign(int, char **);
int cmd_actions(int, char **);
int cmd_exec(int, char **);
int cmd_start(int, char **);
int cmd_stop(int, char **);
int cmd_status(int, char **);
int cmd_run(int, char **);
int cmd_history(int, char **);
int cmd_parcel(int, char **);
int cmd_schedule(int, char **);

/* ---- descriptor.c: the YAML service descriptor ---- */

typedef void (*desc_report_fn)(
    void *arg, const char *file, int line, const char *path, const char *msg);

struct desc {
	yaml_document_t doc;
	int loaded;
	char *file;
	yaml_node_t *root;
	desc_report_fn report;
	void *report_arg;
	int nerrors;
};

/*
 * Parse file (or buf when not NULL) into d.  Errors go to d->report
 * (default: "file:line: path: reason" on stderr).  Returns 0 or -1.
 */
int desc_load(struct desc *d, const char *file, const char *buf, size_t len);
/* Check everything; returns the number of errors reported. */
int desc_validate(struct desc *d);
void desc_free(struct desc *d);

yaml_node_t *desc_get(const struct desc *d, yaml_node_t *map, const char *key);
const char *desc_str(const struct desc *d, yaml_node_t *map, const char *key);
size_t desc_len(const yaml_node_t *seq);
yaml_node_t *desc_at(const struct desc *d, yaml_node_t *seq, size_t i);
int desc_line(const yaml_node_t *n);
yaml_node_t *desc_find(
    const struct desc *d, yaml_node_t *seq, const char *name);
yaml_node_t *desc_role(const struct desc *d, const char *name);
yaml_node_t *desc_param(const struct desc *d, const char *name);
yaml_node_t *desc_service_command(const struct desc *d, const char *name);
/* The user a role (or a role command) runs as: its runAs, else the service's.
 */
const char *desc_run_as(
    const struct desc *d, yaml_node_t *role, yaml_node_t *cmd);
/* Check a parameter value against its type and range; NULL when fine. */
const char *desc_check_value(const struct desc *d, yaml_node_t *param,
    const char *value, char *buf, size_t len);

/* ---- state.c: deployment, desired state, status, process dirs ---- */

struct deploy {
	struct desc desc;
	json_t *json; /* deployment.json */
};

int state_path(char *buf, size_t len, const char *name);
json_t *state_load_json(const char *name); /* NULL + errno ENOENT if none */
int state_save_json(const char *name, json_t *j);
/* Load deployment.json and its descriptor; prints errors. */
int deploy_load(struct deploy *dp);
void deploy_free(struct deploy *dp);
/* Roles of the deployment on this host, in descriptor order. */
size_t deploy_host_roles(
    const struct deploy *dp, const char *host, yaml_node_t **roles, size_t max);
const char *deploy_role_host(const struct deploy *dp, const char *role);
/* Value of a parameter: the deployment's override, else its default. */
const char *deploy_param(const struct deploy *dp, const char *name);
/* Expand ${param}, ${host}, ${user}, ${group}, ${active_host}. */
char *deploy_subst(const struct deploy *dp, const char *s);
/* The pid of the supervisor (kt-agent run) of this state dir; 0: none. */
long agent_supervisor_pid(void);
/* The state of a role on this host: running, starting, backoff, stopped... */
const char *role_state(const char *role, long *pid);

struct proc_dir {
	char path[4096];
	int seq;
};
int proc_dir_make(struct proc_dir *pd, const char *role, const char *user);
/* Write the role's configWriter generators into the process dir. */
int proc_write_config(const struct deploy *dp, yaml_node_t *role,
    const struct proc_dir *pd, const char *user, int merge);
int proc_open_logs(
    const struct proc_dir *pd, const char *user, int *outfd, int *errfd);
/* Start a runner in pd as user (not waiting); *pidp its pid. */
int proc_spawn(const struct deploy *dp, yaml_node_t *role, yaml_node_t *runner,
    const char *user, const struct proc_dir *pd, pid_t *pidp);
/*
 * Build the runner's argv and environment (CONF_DIR, PARCELS_ROOT,
 * PARCEL_DIRNAMES, SCM_DEFINES_SCRIPTS, the runner's environmentVariables).
 */
int runner_build(const struct deploy *dp, yaml_node_t *runner,
    const struct proc_dir *pd, char ***argvp, char ***envp);
void strv_free(char **v);
/* record.json of a process dir */
int proc_record(const struct proc_dir *pd, const char *role,
    const char *command, pid_t pid, int exitcode, long started, long ended);
/* The role command that makes backups (ktbackup.sh, then the schedule). */
#define BACKUP_ROLE_COMMAND "BackupAndSetupCronJob"
/*
 * The status ktbackup.sh left (backupstat.h) for the config dir a role's
 * backups are of, KT_CONFDIR of that command; NULL when none.  *confdirp
 * is that config dir (the caller frees it), NULL when the role makes no
 * backups.
 */
json_t *role_backup_status(
    const struct deploy *dp, yaml_node_t *role, char **confdirp);
/* Run a runner to completion in a fresh process dir; returns its exit code. */
int proc_run_command(const struct deploy *dp, yaml_node_t *role,
    yaml_node_t *cmd, int *exitp, struct proc_dir *pd);

/* ---- lifecycle.c ---- */
size_t lc_select(
    const struct deploy *dp, const char *role, yaml_node_t **out, size_t max);
/* Set role (NULL: all of this host's) to want (running/stopped) and wait. */
int lc_change(
    const struct deploy *dp, const char *role, const char *want, int timeout);
/*
 * The first of cmd's requiredRoles (a role command's) that the deployment
 * does not assign to any host; NULL when the command applies.
 */
const char *lc_missing_role(const struct deploy *dp, yaml_node_t *cmd);
/* Run a role command if it applies and the role is in its requiredRoleState. */
int lc_role_command(const struct deploy *dp, yaml_node_t *role,
    yaml_node_t *cmd, const char *label);

int lc_verb(int argc, char **argv, const char *name, const char *want);

/* ---- parcel.c ---- */
#define PARCEL_PRODUCT "KEYTRUSTEE_SERVER"
/* mkdir -p (parents 0755, the last one mode). */
int mkdir_parents(const char *path, mode_t mode);
json_t *parcel_meta(const char *dirpath);
/* Make the accounts meta/parcel.json declares, when missing. */
int parcel_ensure_users(const char *dirpath);
int parcel_sha1_file(const char *path, char hex[41]);
/* The active parcel's directory name under PARCELS_ROOT; -1 when none. */
int parcel_active(char *buf, size_t len);
/*
 * The active parcel (an error when none), which must provide every
 * requiredTag of d (when d is not NULL).
 */
int parcel_require_active(const struct desc *d, char *buf, size_t len);
/* 0 when the active parcel provides every requiredTag of the descriptor. */
int parcel_check_tags(const struct desc *d, const char *dirname);

#endif
