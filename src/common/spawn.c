/* spawn.c - run another program from an argv, never through a shell. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define SPAWN_MAX_CAPTURE (4 * 1024 * 1024)

static char *const spawn_default_env[] = {
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL=C", NULL};

static void
child_exec(char *const argv[], const struct spawn_opts *o, int outfd, int errfd)
{
	char *const *envp = o->envp ? o->envp : spawn_default_env;
	struct sigaction sa;
	sigset_t none;
	int sig, nullfd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if ((nullfd = open("/dev/null", O_RDWR)) == -1)
		_exit(127);
	dup2(nullfd, STDIN_FILENO);
	if (outfd != -1)
		dup2(outfd, STDOUT_FILENO);
	if (errfd != -1)
		dup2(errfd, STDERR_FILENO);
	closefrom(STDERR_FILENO + 1);
	if (o->setsid)
		(void)setsid();

	if (o->runas != NULL && geteuid() == 0) {
		struct passwd *pw = getpwnam(o->runas);
		if (pw == NULL) {
			dprintf(
			    STDERR_FILENO, "no such account: %s\n", o->runas);
			_exit(127);
		}
		if (initgroups(pw->pw_name, pw->pw_gid) == -1 ||
		    setgid(pw->pw_gid) == -1 || setuid(pw->pw_uid) == -1) {
			dprintf(STDERR_FILENO, "cannot switch to %s: %s\n",
			    o->runas, strerror(errno));
			_exit(127);
		}
	}
	if (o->cwd != NULL && chdir(o->cwd) == -1) {
		dprintf(
		    STDERR_FILENO, "chdir %s: %s\n", o->cwd, strerror(errno));
		_exit(127);
	}
	if (strchr(argv[0], '/') != NULL) {
		execve(argv[0], argv, envp);
	} else {
		/* Search PATH of the child's environment. */
		const char *path = "/usr/bin:/bin";
		char buf[4096], *dirs, *d, *save = NULL;
		size_t i;
		for (i = 0; envp[i] != NULL; i++)
			if (strncmp(envp[i], "PATH=", 5) == 0)
				path = envp[i] + 5;
		if ((dirs = strdup(path)) != NULL) {
			for (d = strtok_r(dirs, ":", &save); d != NULL;
			     d = strtok_r(NULL, ":", &save)) {
				snprintf(buf, sizeof(buf), "%s/%s", d, argv[0]);
				execve(buf, argv, envp);
			}
		}
	}
	dprintf(
	    STDERR_FILENO, "cannot execute %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int
append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (*len + n + 1 > SPAWN_MAX_CAPTURE)
		n = SPAWN_MAX_CAPTURE - *len - 1;
	if (*len + n + 1 > *cap) {
		size_t ncap = (*len + n + 1) * 2;
		char *nb = realloc(*buf, ncap);
		if (nb == NULL)
			return -1;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

int
spawn_run(
    char *const argv[], const struct spawn_opts *opts, struct spawn_result *res)
{
	struct spawn_opts dflt = {0};
	const struct spawn_opts *o = opts ? opts : &dflt;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1};
	sigset_t all, old;
	size_t outcap = 0, errcap = 0;
	pid_t pid;
	int st, saved;

	memset(res, 0, sizeof(*res));
	if (o->capture) {
		if (pipe2(outp, O_CLOEXEC) == -1 ||
		    pipe2(errp, O_CLOEXEC) == -1)
			goto fail;
	}
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid == 0)
		child_exec(argv, o, outp[1], errp[1]);
	saved = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid == -1) {
		errno = saved;
		goto fail;
	}
	if (outp[1] != -1) {
		struct pollfd pfd[2];
		char buf[8192];
		int open_fds = 2;

		close(outp[1]);
		close(errp[1]);
		outp[1] = errp[1] = -1;
		pfd[0].fd = outp[0];
		pfd[1].fd = errp[0];
		pfd[0].events = pfd[1].events = POLLIN;
		while (open_fds > 0) {
			int i;
			if (poll(pfd, 2, -1) == -1) {
				if (errno == EINTR)
					continue;
				break;
			}
			for (i = 0; i < 2; i++) {
				ssize_t n;
				if (pfd[i].fd == -1 || pfd[i].revents == 0)
					continue;
				n = read(pfd[i].fd, buf, sizeof(buf));
				if (n <= 0) {
					if (n == -1 && errno == EINTR)
						continue;
					pfd[i].fd = -1;
					open_fds--;
					continue;
				}
				if (i == 0)
					append(&res->out, &res->outlen, &outcap,
					    buf, (size_t)n);
				else
					append(&res->err, &res->errlen, &errcap,
					    buf, (size_t)n);
			}
		}
		close(outp[0]);
		close(errp[0]);
	}
	while (waitpid(pid, &st, 0) == -1) {
		if (errno != EINTR)
			return -1;
	}
	res->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return 0;
fail:
	saved = errno;
	if (outp[0] != -1) {
		close(outp[0]);
		close(outp[1]);
	}
	if (errp[0] != -1) {
		close(errp[0]);
		close(errp[1]);
	}
	errno = saved;
	return -1;
}

int
spawn_start(char *const argv[], const struct spawn_opts *opts, int outfd,
    int errfd, pid_t *pidp)
{
	struct spawn_opts dflt = {0};
	const struct spawn_opts *o = opts ? opts : &dflt;
	sigset_t all, old;
	pid_t pid;
	int saved;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid = fork();
	if (pid == 0)
		child_exec(argv, o, outfd, errfd);
	saved = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid == -1) {
		errno = saved;
		return -1;
	}
	*pidp = pid;
	return 0;
}

void
spawn_result_free(struct spawn_result *res)
{
	if (res == NULL)
		return;
	if (res->out != NULL)
		freezero(res->out, res->outlen);
	if (res->err != NULL)
		free(res->err);
	res->out = res->err = NULL;
	res->outlen = res->errlen = 0;
}

int
argv_split(const char *cmd, char ***argvp)
{
	char **argv = NULL, *word = NULL;
	size_t argc = 0, wlen = 0;
	const char *p = cmd;
	int quote = 0, inword = 0;

	*argvp = NULL;
	if ((word = malloc(strlen(cmd) + 1)) == NULL)
		return -1;
	for (;; p++) {
		char c = *p;
		if (c == '\0' ||
		    (!quote && (c == ' ' || c == '\t' || c == '\n'))) {
			if (quote) {
				errno = EINVAL;
				goto fail;
			}
			if (inword) {
				char **na =
				    realloc(argv, (argc + 2) * sizeof(*argv));
				if (na == NULL)
					goto fail;
				argv = na;
				word[wlen] = '\0';
				if ((argv[argc++] = strdup(word)) == NULL)
					goto fail;
				argv[argc] = NULL;
				wlen = 0;
				inword = 0;
			}
			if (c == '\0')
				break;
			continue;
		}
		if (quote == 0 && (c == '\'' || c == '"')) {
			quote = c;
			inword = 1;
		} else if (quote == c) {
			quote = 0;
		} else if (c == '\\' && quote != '\'' && p[1] != '\0') {
			word[wlen++] = *++p;
			inword = 1;
		} else {
			word[wlen++] = c;
			inword = 1;
		}
	}
	free(word);
	if (argc == 0) {
		errno = EINVAL;
		return -1;
	}
	*argvp = argv;
	return 0;
fail:
	free(word);
	if (argv != NULL) {
		argv[argc] = NULL;
		argv_free(argv);
	}
	return -1;
}

void
argv_free(char **argv)
{
	size_t i;

	if (argv == NULL)
		return;
	for (i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

char *const *
spawn_user_env(void)
{
	static const char *names[] = { "PATH", "GNUPGHOME", "HOME", "TMPDIR" };
	static char buf[4][PATH_MAX + 16];
	static char *env[6];
	const char *v;
	size_t i, n = 0;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		v = getenv(names[i]);
		if (v == NULL && i == 0)
			v = "/usr/local/bin:/usr/bin:/bin";
		if (v == NULL || strlen(v) > PATH_MAX)
			continue;
		snprintf(buf[n], sizeof(buf[n]), "%s=%s", names[i], v);
		env[n] = buf[n];
		n++;
	}
	env[n++] = "LC_ALL=C";
	env[n] = NULL;
	return env;
}

int
spawn_cli(char *const argv[], int okmax)
{
	struct spawn_opts o;
	struct spawn_result r;
	int status;

	memset(&o, 0, sizeof(o));
	memset(&r, 0, sizeof(r));
	o.envp = spawn_user_env();
	o.capture = 1;
	if (spawn_run(argv, &o, &r) == -1) {
		cli_error("could not run %s: %s", argv[0], strerror(errno));
		cli_hint("install %s or fix PATH", argv[0]);
		spawn_result_free(&r);
		return -1;
	}
	status = r.status;
	if (status > okmax) {
		cli_error("%s failed (exit %d)", argv[0], status);
		cli_detail_lines(r.err);
	}
	spawn_result_free(&r);
	return status > okmax ? -1 : status;
}

