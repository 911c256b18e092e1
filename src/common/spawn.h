/* spawn.h - run another program from an argv, never through a shell. */
#ifndef KT_SPAWN_H
#define KT_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

struct spawn_result {
	int status; /* exit code, or 128 + signal number */
	char *out;  /* captured stdout, NUL-terminated (may be NULL) */
	size_t outlen;
	char *err; /* captured stderr, NUL-terminated (may be NULL) */
	size_t errlen;
};

struct spawn_opts {
	char *const *envp; /* explicit environment; NULL = a minimal one */
	const char *runas; /* account to switch to when root; NULL = stay */
	const char *cwd;   /* NULL = inherit */
	int capture;	   /* 1: capture stdout/stderr; 0: inherit them */
	int setsid;	   /* 1: the child leads a new session */
};

/*
 * Run argv[0] (looked up in PATH of the given environment when it has no
 * slash).  Signals are blocked across fork, handlers reset in the child,
 * descriptors above 2 closed.  Returns 0 when the program ran (see
 * res->status), -1 when it could not be started.
 */
int spawn_run(char *const argv[], const struct spawn_opts *opts,
    struct spawn_result *res);
void spawn_result_free(struct spawn_result *res);

/*
 * The environment for the invoking user's own tools (tar, gpg): PATH (a
 * default when unset), GNUPGHOME, HOME and TMPDIR when set, LC_ALL=C.
 * Strings live in a static buffer, rebuilt by each call.
 */
char *const *spawn_user_env(void);

/*
 * Run argv in spawn_user_env(), capturing its output; report a failure (not
 * started, or an exit status above okmax) as error + detail lines.  Returns
 * the exit status, or -1 when the program could not be run or failed.
 */
int spawn_cli(char *const argv[], int okmax);

/*
 * Start argv as spawn_run does, without waiting: its stdout and stderr go to
 * outfd and errfd (-1 = inherit).  The caller reaps *pidp.  Returns -1 when
 * fork failed.
 */
int spawn_start(char *const argv[], const struct spawn_opts *opts, int outfd,
    int errfd, pid_t *pidp);

/* Split "cmd arg 'quoted arg'" into a NULL-terminated argv (no shell). */
int argv_split(const char *cmd, char ***argvp);
void argv_free(char **argv);

#endif
