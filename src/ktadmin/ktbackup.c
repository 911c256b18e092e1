/*
 * ktbackup.c - what a ktbackup.sh backup holds, looked at before anything is
 * extracted: files and dirs only, under relative names, one config dir (the
 * dir of its keytrustee.conf) and one kts_bak_*.sql dump, nothing else.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "archive.h"
#include "conf.h"
#include "ktbackup.h"
#include "log.h"

/* kts_bak_*.sql: the dump ktbackup.sh writes. */
static int
ktbackup_is_sql(const char *name)
{
	const char *base = strrchr(name, '/');
	size_t n;

	base = base != NULL ? base + 1 : name;
	n = strlen(base);
	return strncmp(base, "kts_bak_", 8) == 0 && n > 12 &&
	    strcmp(base + n - 4, ".sql") == 0;
}

/* name without trailing slashes, into buf. */
static const char *
ktbackup_path(const char *name, char *buf, size_t len)
{
	size_t n;

	snprintf(buf, len, "%s", name);
	n = strlen(buf);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	return buf;
}

/* Pass 1: safe names, plain files and dirs; find the conf dir and the SQL. */
static int
ktbackup_find(const struct archive_member *m, void *arg)
{
	struct ktbackup *b = arg;
	char top[256] = "", path[PATH_MAX];
	const char *base;

	if (!archive_path_ok(m->name, top, sizeof(top))) {
		cli_error("the backup holds \"%s\": not a relative path below "
			  "/",
		    m->name);
		return -1;
	}
	if (m->type != '0' && m->type != '5') {
		cli_error("the backup holds \"%s\" of type '%c' (a ktbackup.sh "
			  "backup holds only files and dirs)",
		    m->name, m->type);
		return -1;
	}
	ktbackup_path(m->name, path, sizeof(path));
	base = strrchr(path, '/');
	base = base != NULL ? base + 1 : path;
	if (m->type == '0' && strcmp(base, KT_CONF_FILE) == 0) {
		if (b->conf[0] != '\0') {
			cli_error("the backup holds two config dirs (%s and "
				  "%s)",
			    b->conf, path);
			return -1;
		}
		if (base == path) {
			cli_error("the backup's keytrustee.conf is not in a "
				  "config dir");
			return -1;
		}
		snprintf(b->conf, sizeof(b->conf), "%.*s",
		    (int)(base - path - 1), path);
	} else if (m->type == '0' && ktbackup_is_sql(path)) {
		if (b->sql[0] != '\0') {
			cli_error("the backup holds two database dumps (%s and "
				  "%s)",
			    b->sql, path);
			return -1;
		}
		snprintf(b->sql, sizeof(b->sql), "%s", path);
	}
	return 0;
}

/* Pass 2: nothing but the conf dir, its parents and the SQL. */
static int
ktbackup_check(const struct archive_member *m, void *arg)
{
	const struct ktbackup *b = arg;
	char path[PATH_MAX];
	size_t n = strlen(b->conf), pn;

	ktbackup_path(m->name, path, sizeof(path));
	pn = strlen(path);
	if (strcmp(path, b->sql) == 0)
		return 0;
	if (strncmp(path, b->conf, n) == 0 &&
	    (path[n] == '\0' || path[n] == '/'))
		return 0;
	if (m->type == '5' && pn < n && strncmp(path, b->conf, pn) == 0 &&
	    b->conf[pn] == '/')
		return 0;
	cli_error("the backup holds \"%s\", outside its config dir %s", path,
	    b->conf);
	return -1;
}

int
ktbackup_scan(const char *tarpath, const char *name, struct ktbackup *b)
{
	b->conf[0] = b->sql[0] = '\0';
	if (archive_scan(tarpath, ktbackup_find, b) == -1)
		return -1;
	if (b->conf[0] == '\0' || b->sql[0] == '\0') {
		cli_error("%s holds no %s", name,
		    b->conf[0] == '\0' ? "config dir (keytrustee.conf)"
				       : "database dump (kts_bak_*.sql)");
		return -1;
	}
	return archive_scan(tarpath, ktbackup_check, b) == -1 ? -1 : 0;
}
