/*
 * pgcluster-socket.c - where the cluster's unix sockets are.  Always in
 * ROOT; the standard cluster (port 11381) also in libpq's default
 * directory, /var/run/postgresql on Debian, so that the guide's
 * `sudo -u keytrustee psql -p 11381 -d keytrustee` and `pg_dump -p 11381`
 * reach it without -h.  That directory belongs to Debian's
 * postgresql-common (its tmpfiles.d makes it 2775 postgres:postgres at
 * every boot); the account writes there as a member of the postgres group
 * (scripts/kt-account.sh).  Made here only when missing.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "pgcluster.h"
#include "util.h"

#define PGCLUSTER_SOCK_SUFFIX "/.s.PGSQL.65535.lock"

int
pgcluster_set_sockdir(struct pgcluster *d, const char *dir)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) -
	    sizeof(PGCLUSTER_SOCK_SUFFIX);

	if (*dir == '\0') {
		d->sockdir[0] = '\0';
		return 0;
	}
	if (*dir != '/' || strpbrk(dir, "',\\\n\r") != NULL) {
		cli_error(
		    "--socket-dir: \"%s\" is not an absolute path without "
		    "quotes, commas or backslashes",
		    dir);
		return -1;
	}
	if (strlen(dir) > max) {
		cli_error("--socket-dir %s is too long for a unix socket (at "
			  "most %zu characters)",
		    dir, max);
		return -1;
	}
	snprintf(d->sockdir, sizeof(d->sockdir), "%s", dir);
	return 0;
}

int
pgcluster_sockdirs(const struct pgcluster *d, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s%s%s", d->root,
	    *d->sockdir != '\0' ? ", " : "", d->sockdir);

	if (n < 0 || (size_t)n >= len) {
		cli_error("%s: path too long", d->root);
		return -1;
	}
	return 0;
}

/*
 * The directory of ROOT/postgresql.conf's (last) unix_socket_directories
 * that is not ROOT, as bootstrap wrote it; none when there is none.
 */
void
pgcluster_read_sockdir(struct pgcluster *d)
{
	char path[PATH_MAX], line[PATH_MAX * 2 + 64], *p, *q, *dir;
	FILE *fp;

	d->sockdir[0] = '\0';
	if (path_join(path, sizeof(path), d->root, "postgresql.conf") == -1 ||
	    (fp = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), fp) != NULL) {
		p = line + strspn(line, " \t");
		if (strncmp(p, "unix_socket_directories", 23) != 0 ||
		    (p = strchr(p, '\'')) == NULL ||
		    (q = strchr(++p, '\'')) == NULL)
			continue;
		*q = '\0';
		d->sockdir[0] = '\0';
		while ((dir = strsep(&p, ",")) != NULL) {
			size_t n;

			dir += strspn(dir, " ");
			for (n = strlen(dir); n > 0 && dir[n - 1] == ' '; n--)
				dir[n - 1] = '\0';
			if (*dir == '/' && strcmp(dir, d->root) != 0 &&
			    strlen(dir) < sizeof(d->sockdir)) {
				snprintf(
				    d->sockdir, sizeof(d->sockdir), "%s", dir);
				break;
			}
		}
	}
	fclose(fp);
}

/* Can uid (with gid and its supplementary groups) write into st's dir? */
static int
pgcluster_can_write(const struct stat *st, const char *account)
{
	struct passwd *pw = getpwnam(account);
	gid_t *groups = NULL;
	int i, n = 0, member = 0;

	if (pw == NULL)
		return 0;
	if (st->st_uid == pw->pw_uid)
		return (st->st_mode & S_IWUSR) && (st->st_mode & S_IXUSR);
	/* The first call counts the groups. */
	(void)getgrouplist(account, pw->pw_gid, NULL, &n);
	if (n > 0 && (groups = calloc((size_t)n, sizeof(*groups))) != NULL &&
	    getgrouplist(account, pw->pw_gid, groups, &n) != -1)
		for (i = 0; i < n && !member; i++)
			member = groups[i] == st->st_gid;
	free(groups);
	if (member)
		return (st->st_mode & S_IWGRP) && (st->st_mode & S_IXGRP);
	return (st->st_mode & S_IWOTH) && (st->st_mode & S_IXOTH);
}

int
pgcluster_sockdir_ensure(const struct pgcluster *d)
{
	struct passwd *pg;
	struct stat st;
	uid_t uid = 0;
	gid_t gid = 0;
	int ok;

	if (*d->sockdir == '\0')
		return 0;
	if (d->runas == NULL)
		ok = access(d->sockdir, W_OK | X_OK) == 0;
	else if (stat(d->sockdir, &st) == 0)
		ok = S_ISDIR(st.st_mode) && pgcluster_can_write(&st, d->runas);
	else if (errno != ENOENT)
		ok = 0;
	else {
		/* As postgresql-common's tmpfiles.d would make it. */
		if ((pg = getpwnam("postgres")) != NULL) {
			uid = pg->pw_uid;
			gid = pg->pw_gid;
		} else
			(void)account_lookup(d->runas, &uid, &gid);
		ok = mkdir(d->sockdir, 0755) == 0 &&
		    chown(d->sockdir, pg != NULL ? uid : 0, gid) == 0 &&
		    chmod(d->sockdir, 02775) == 0 &&
		    stat(d->sockdir, &st) == 0 &&
		    pgcluster_can_write(&st, d->runas);
	}
	if (ok)
		return 0;
	cli_warning("the %s account cannot write to %s: psql and pg_dump "
		    "without -h will not find this PostgreSQL",
	    d->runas != NULL ? d->runas : "invoking", d->sockdir);
	cli_detail("PostgreSQL starts with its socket in %s only", d->root);
	cli_hint("run kt-account.sh as root (it adds %s to the group of %s), "
		 "or use psql -h %s",
	    d->runas != NULL ? d->runas : PGCLUSTER_ACCOUNT, d->sockdir,
	    d->root);
	return -1;
}
