/* cmd-restore.c - keytrustee-client restore: a backup back into DIR. */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "client.h"
#include "log.h"
#include "spawn.h"
#include "util.h"

/* Every member under the one top dir; links may only point down into it. */
static int
member_ok(const struct archive_member *m, void *arg)
{
	char *top = arg;

	if (!archive_path_ok(m->name, top, 256)) {
		cli_error("the archive holds \"%s\", outside its one top dir%s%s",
		    m->name, top[0] ? " " : "", top);
		return -1;
	}
	switch (m->type) {
	case '0': case '5': case '7':
		return 0;
	case '1':
		if (!archive_path_ok(m->link, top, 256)) {
			cli_error("the archive holds a hard link \"%s\" to "
			    "\"%s\", outside its top dir", m->name, m->link);
			return -1;
		}
		return 0;
	case '2':
		if (!archive_symlink_ok(m->link)) {
			cli_error("the archive holds a symbolic link \"%s\" -> "
			    "\"%s\" pointing outside its top dir", m->name,
			    m->link);
			return -1;
		}
		return 0;
	default:
		cli_error("the archive holds \"%s\" of type '%c' (only files, "
		    "dirs and links belong in a config dir)", m->name, m->type);
		return -1;
	}
}

int
cmd_restore(int argc, char **argv)
{
	const char *confdir = client_confdir; /* --confdir before the verb */
	static const struct option opts[] = {
		{ "input", required_argument, NULL, 'i' },
		{ "force", no_argument, NULL, 'f' },
		{ "confdir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cmdtab_cmd *cmd = client_cmd_find("restore");
	const char *input = NULL;
	char target[PATH_MAX], pbuf[PATH_MAX], stage[PATH_MAX + 32] = "";
	char tarpath[PATH_MAX + 64], top[256] = "", src[PATH_MAX + 320];
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

	if ((kind = archive_kind(input)) == -1) {
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

		if (spawn_cli(gpg, 0) == -1) {
			cli_hint("the backup's secret key must be in your "
			    "keyring (GNUPGHOME selects another)");
			goto out;
		}
	} else {
		char *cp[] = { "cp", "--", (char *)input, tarpath, NULL };

		if (spawn_cli(cp, 0) == -1)
			goto out;
	}
	if (archive_scan(tarpath, member_ok, top) == -1) {
		cli_hint("nothing was written; restore only files made by "
		    "'%s backup'", client_progname);
		goto out;
	}
	{
		char *tar[] = { "tar", "--extract", "--file", tarpath,
		    "--directory", stage, "--same-permissions",
		    "--no-same-owner", "--no-overwrite-dir", "--", top, NULL };

		if (spawn_cli(tar, 0) == -1)
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
		so.envp = spawn_user_env();
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
