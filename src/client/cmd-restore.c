/* cmd-restore.c - keytrustee-client restore: a backup back into DIR. */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "spawn.h"
#include "util.h"

#define TAR_BLOCK 512
#define TAR_MAX (256UL * 1024 * 1024)

/*
 * Is name (an archive member path or a hard link target) safe: relative,
 * no ".." component, under the one top dir (*top, set by the first member)?
 */
static int
path_ok(const char *name, char *top, size_t toplen)
{
	const char *p = name, *slash;
	size_t n;
	int first = 1;

	if (name[0] == '\0' || name[0] == '/')
		return 0;
	while (*p != '\0') {
		slash = strchr(p, '/');
		n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (n == 2 && strncmp(p, "..", 2) == 0)
			return 0;
		if (first) {
			if (n == 0 || (n == 1 && p[0] == '.') || n >= toplen)
				return 0;
			if (top[0] == '\0') {
				memcpy(top, p, n);
				top[n] = '\0';
			} else if (strlen(top) != n || strncmp(top, p, n) != 0)
				return 0;
			first = 0;
		}
		p += n;
		while (*p == '/')
			p++;
	}
	return 1;
}

/*
 * A symlink's target: relative and without any ".." component, so it can
 * only point down into the top dir, whatever other links it goes through
 * (a client config dir holds no links at all; nothing legitimate is lost).
 */
static int
symlink_ok(const char *target)
{
	const char *p;
	size_t n;

	if (target[0] == '/' || target[0] == '\0')
		return 0;
	for (p = target; *p != '\0';) {
		n = strcspn(p, "/");
		if (n == 2 && strncmp(p, "..", 2) == 0)
			return 0;
		p += n;
		while (*p == '/')
			p++;
	}
	return 1;
}

static unsigned long long
octal(const char *f, size_t len)
{
	unsigned long long v = 0;
	size_t i = 0;

	while (i < len && (f[i] == ' ' || f[i] == '\0'))
		i++;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++)
		v = v * 8 + (unsigned long long)(f[i] - '0');
	return v;
}

/* "len path=value\n" records of a pax header: pick path and linkpath. */
static void
pax_parse(const char *d, size_t len, char *path, char *link, size_t max)
{
	size_t off = 0, rlen;
	const char *kv, *eq;
	char *end;

	while (off < len) {
		rlen = strtoul(d + off, &end, 10);
		if (rlen == 0 || off + rlen > len || *end != ' ')
			return;
		kv = end + 1;
		eq = memchr(kv, '=', (size_t)(d + off + rlen - kv));
		if (eq != NULL) {
			size_t vlen = (size_t)(d + off + rlen - 1 - (eq + 1));
			char *dst = NULL;

			if ((size_t)(eq - kv) == 4 && strncmp(kv, "path", 4) == 0)
				dst = path;
			else if ((size_t)(eq - kv) == 8 &&
			    strncmp(kv, "linkpath", 8) == 0)
				dst = link;
			if (dst != NULL && vlen < max) {
				memcpy(dst, eq + 1, vlen);
				dst[vlen] = '\0';
			}
		}
		off += rlen;
	}
}

/*
 * Walk the tar headers of path and refuse anything that would land outside
 * the one top dir.  On success *top holds that dir's name.
 */
static int
archive_check(const char *path, char *top, size_t toplen)
{
	char *data = NULL, name[PATH_MAX], link[PATH_MAX];
	char lname[PATH_MAX] = "", llink[PATH_MAX] = "";
	size_t len = 0, off = 0, size, nlen;
	const char *h;
	int rc = -1, members = 0, zero;

	top[0] = '\0';
	if (file_read(path, TAR_MAX, &data, &len) == -1) {
		cli_error("reading the archive: %s", strerror(errno));
		return -1;
	}
	while (off + TAR_BLOCK <= len) {
		h = data + off;
		zero = 1;
		for (nlen = 0; nlen < TAR_BLOCK; nlen++)
			if (h[nlen] != '\0') {
				zero = 0;
				break;
			}
		if (zero)
			break;
		if (memcmp(h + 257, "ustar", 5) != 0) {
			cli_error("the archive is not a tar file (bad header "
			    "at offset %zu)", off);
			goto out;
		}
		size = (size_t)octal(h + 124, 12);
		if (size > len - off - TAR_BLOCK) {
			cli_error("the archive is truncated");
			goto out;
		}
		if (h[156] == 'L' || h[156] == 'K' || h[156] == 'x') {
			const char *d = h + TAR_BLOCK;

			if (h[156] == 'x')
				pax_parse(d, size, lname, llink, PATH_MAX);
			else if (size < PATH_MAX) {
				char *dst = h[156] == 'L' ? lname : llink;

				memcpy(dst, d, size);
				dst[size] = '\0';
			}
			off += TAR_BLOCK + (size + TAR_BLOCK - 1) /
			    TAR_BLOCK * TAR_BLOCK;
			continue;
		}
		if (h[156] == 'g') {
			off += TAR_BLOCK + (size + TAR_BLOCK - 1) /
			    TAR_BLOCK * TAR_BLOCK;
			continue;
		}
		if (lname[0] != '\0')
			snprintf(name, sizeof(name), "%s", lname);
		else if (h[345] != '\0')
			snprintf(name, sizeof(name), "%.155s/%.100s", h + 345,
			    h);
		else
			snprintf(name, sizeof(name), "%.100s", h);
		if (llink[0] != '\0')
			snprintf(link, sizeof(link), "%s", llink);
		else
			snprintf(link, sizeof(link), "%.100s", h + 157);
		lname[0] = llink[0] = '\0';
		if (!path_ok(name, top, toplen)) {
			cli_error("the archive holds \"%s\", outside its one "
			    "top dir%s%s", name, top[0] ? " " : "", top);
			goto out;
		}
		switch (h[156]) {
		case '0': case '\0': case '5': case '7':
			break;
		case '1':
			if (!path_ok(link, top, toplen)) {
				cli_error("the archive holds a hard link \"%s\" "
				    "to \"%s\", outside its top dir", name,
				    link);
				goto out;
			}
			break;
		case '2':
			if (!symlink_ok(link)) {
				cli_error("the archive holds a symbolic link "
				    "\"%s\" -> \"%s\" pointing outside its top "
				    "dir", name, link);
				goto out;
			}
			break;
		default:
			cli_error("the archive holds \"%s\" of type '%c' (only "
			    "files, dirs and links belong in a config dir)",
			    name, h[156]);
			goto out;
		}
		members++;
		off += TAR_BLOCK + (size + TAR_BLOCK - 1) / TAR_BLOCK *
		    TAR_BLOCK;
	}
	if (members == 0) {
		cli_error("the archive is empty or not a tar file");
		goto out;
	}
	rc = 0;
out:
	free(data);
	return rc;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int
rm_tree(const char *path)
{
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* What the input file is: 1 a tar, 2 OpenPGP, 0 neither (or unreadable). */
static int
input_kind(const char *path)
{
	unsigned char h[TAR_BLOCK];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, h, sizeof(h));
	close(fd);
	if (n == TAR_BLOCK && memcmp(h + 257, "ustar", 5) == 0)
		return 1;
	if (n >= 27 && memcmp(h, "-----BEGIN PGP MESSAGE-----", 27) == 0)
		return 2;
	if (n > 0 && (h[0] & 0x80) != 0)
		return 2;
	return 0;
}

int
cmd_restore(const char *confdir, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "force", no_argument, NULL, 'f' },
		{ "confdir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct client_cmd *cmd = client_cmd_find("restore");
	const char *input = NULL;
	char target[PATH_MAX], pbuf[PATH_MAX], stage[PATH_MAX + 32] = "";
	char tarpath[PATH_MAX + 64], top[256], src[PATH_MAX + 320];
	char old[PATH_MAX + 32] = "", conf[PATH_MAX + 400];
	struct stat st;
	int ch, rc = 1, force = 0, kind, exists;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'i': input = optarg; break;
		case 'f': force = 1; break;
		case 'd': confdir = optarg; break;
		case 'h':
			client_cmd_help(cmd, stdout);
			return 0;
		default:
			return cli_opt_error(client_progname, cmd->name, ch, argv);
		}
	}
	if (optind < argc)
		return client_usage_error(cmd, "unexpected argument \"%s\"",
		    argv[optind]);
	if (input == NULL || input[0] == '\0')
		return client_usage_error(cmd, "--input FILE is required");
	if (confdir == NULL) {
		if (kt_default_confdir(target, sizeof(target)) != KT_OK) {
			cli_error("HOME is not set or too long");
			cli_hint("give --confdir DIR");
			return 2;
		}
	} else if (snprintf(target, sizeof(target), "%s", confdir) >=
	    (int)sizeof(target)) {
		cli_error("--confdir is too long");
		return 2;
	}
	while (strlen(target) > 1 && target[strlen(target) - 1] == '/')
		target[strlen(target) - 1] = '\0';
	umask(077);

	if ((kind = input_kind(input)) == -1) {
		cli_error("%s: %s", input, strerror(errno));
		return 1;
	}
	if (kind == 0) {
		cli_error("%s is neither a tar archive nor an OpenPGP file",
		    input);
		cli_hint("give a file written by '%s backup'", client_progname);
		return 1;
	}
	snprintf(conf, sizeof(conf), "%s/keytrustee.conf", target);
	exists = lstat(target, &st) == 0;
	if (exists && !S_ISDIR(st.st_mode)) {
		cli_error("%s exists and is not a directory", target);
		return 1;
	}
	if (exists && lstat(conf, &st) == 0 && !force) {
		cli_error("%s already holds a registered client "
		    "(keytrustee.conf)", target);
		cli_hint("give --force to replace it with the backup, or "
		    "--confdir DIR to restore elsewhere");
		return 1;
	}

	/* Stage next to the target: same fs, so the final rename is atomic. */
	snprintf(pbuf, sizeof(pbuf), "%s", target);
	snprintf(stage, sizeof(stage), "%s/.kt-restore.XXXXXX",
	    dirname(pbuf));
	if (mkdtemp(stage) == NULL) {
		cli_error("creating a directory next to %s: %s", target,
		    strerror(errno));
		stage[0] = '\0';
		return 1;
	}
	snprintf(tarpath, sizeof(tarpath), "%s/archive.tar", stage);
	if (kind == 2) {
		char *gpg[] = { "gpg", "--batch", "--yes", "--decrypt",
		    "--output", tarpath, "--", (char *)input, NULL };

		if (client_run(gpg, 0) == -1) {
			cli_hint("the backup's secret key must be in your "
			    "keyring (GNUPGHOME selects another)");
			goto out;
		}
	} else {
		char *cp[] = { "cp", "--", (char *)input, tarpath, NULL };

		if (client_run(cp, 0) == -1)
			goto out;
	}
	if (archive_check(tarpath, top, sizeof(top)) == -1) {
		cli_hint("nothing was written; restore only files made by "
		    "'%s backup'", client_progname);
		goto out;
	}
	{
		char *tar[] = { "tar", "--extract", "--file", tarpath,
		    "--directory", stage, "--same-permissions",
		    "--no-same-owner", "--no-overwrite-dir", "--", top, NULL };

		if (client_run(tar, 0) == -1)
			goto out;
	}
	unlink(tarpath);
	snprintf(src, sizeof(src), "%s/%s", stage, top);
	snprintf(conf, sizeof(conf), "%s/keytrustee.conf", src);
	if (lstat(src, &st) == -1 || !S_ISDIR(st.st_mode)) {
		cli_error("the archive's top \"%s\" is not a directory", top);
		goto out;
	}
	if (lstat(conf, &st) == -1 || !S_ISREG(st.st_mode)) {
		cli_error("the archive holds no %s/keytrustee.conf", top);
		cli_hint("this is not a backup of a client config dir");
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		cli_warning("keytrustee.conf in the archive had mode %04o; "
		    "set to 0600", (unsigned)(st.st_mode & 07777));
	}
	if (chmod(conf, 0600) == -1 || chmod(src, 0700) == -1) {
		cli_error("setting modes in %s: %s", src, strerror(errno));
		goto out;
	}
	if (lstat(conf, &st) == -1 || (st.st_mode & 07777) != 0600) {
		cli_error("keytrustee.conf is not mode 0600 after restore");
		goto out;
	}

	if (lstat(target, &st) == 0) {
		/* The old dir's gpg-agent must not outlive its keys. */
		char *kill[] = { "gpgconf", "--homedir", target, "--kill",
		    "all", NULL };
		struct spawn_opts so;
		struct spawn_result sr;

		memset(&so, 0, sizeof(so));
		memset(&sr, 0, sizeof(sr));
		so.envp = client_spawn_env();
		so.capture = 1;
		(void)spawn_run(kill, &so, &sr);
		spawn_result_free(&sr);
		if (path_join(old, sizeof(old), stage, "old") == -1 ||
		    rename(target, old) == -1) {
			cli_error("moving %s aside: %s", target,
			    strerror(errno));
			old[0] = '\0';
			goto out;
		}
	}
	if (rename(src, target) == -1) {
		cli_error("renaming into %s: %s", target, strerror(errno));
		if (old[0] != '\0' && rename(old, target) == 0)
			old[0] = '\0';
		goto out;
	}
	printf("Restored %s from %s\n", target, input);
	rc = 0;
out:
	if (stage[0] != '\0' && rm_tree(stage) == -1 && errno != ENOENT)
		cli_warning("could not remove %s: %s", stage, strerror(errno));
	return rc;
}
