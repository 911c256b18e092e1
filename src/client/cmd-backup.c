/* cmd-backup.c - keytrustee-client backup: the config dir as a (GPG) tar. */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "log.h"
#include "spawn.h"
#include "util.h"

int
cmd_backup(int argc, char **argv)
{
	const char *confdir = client_confdir; /* --confdir before the verb */
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "gpg-recipient", required_argument, NULL, 'r' },
		{ "cleartext", no_argument, NULL, 'C' },
		{ "confdir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cmdtab_cmd *cmd = client_cmd_find("backup");
	const char *output = NULL, *recipient = NULL;
	char dirbuf[PATH_MAX], basebuf[PATH_MAX], outbuf[PATH_MAX];
	char tartmp[PATH_MAX + 32] = "", gpgtmp[PATH_MAX + 32] = "";
	char *parent, *base, *final;
	struct kt_client *c = NULL;
	struct stat st;
	int ch, fd, rc = 1, cleartext = 0;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'o': output = optarg; break;
		case 'r': recipient = optarg; break;
		case 'C': cleartext = 1; break;
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
	if (output == NULL || output[0] == '\0')
		return client_usage_error(cmd, "--output FILE is required");
	if ((recipient == NULL) == (cleartext == 0))
		return client_usage_error(cmd, "give either --gpg-recipient R "
		    "or --cleartext");
	if (strlen(output) >= sizeof(outbuf))
		return client_usage_error(cmd, "--output is too long");
	umask(077);
	if ((c = client_open(confdir, &rc)) == NULL)
		return rc;
	if (!kt_client_registered(c)) {
		cli_error("%s holds no keytrustee.conf: nothing to back up",
		    kt_client_confdir(c));
		cli_hint("give --confdir DIR of a registered client");
		goto out;
	}
	if (strlen(kt_client_confdir(c)) >= sizeof(dirbuf)) {
		cli_error("config dir path is too long");
		goto out;
	}
	strcpy(dirbuf, kt_client_confdir(c));
	strcpy(basebuf, kt_client_confdir(c));
	if (stat(dirbuf, &st) == -1 || !S_ISDIR(st.st_mode)) {
		cli_error("%s is not a directory", dirbuf);
		goto out;
	}
	parent = dirname(dirbuf);
	base = basename(basebuf);
	if (strcmp(base, "/") == 0 || strcmp(base, ".") == 0 ||
	    strcmp(base, "..") == 0) {
		cli_error("cannot back up \"%s\": give the config dir by name",
		    kt_client_confdir(c));
		goto out;
	}

	/* Temp files next to FILE, so the final rename stays on one fs. */
	snprintf(tartmp, sizeof(tartmp), "%s.tmp.XXXXXX", output);
	if ((fd = mkstemp(tartmp)) == -1) {
		cli_error("creating a file next to %s: %s", output,
		    strerror(errno));
		tartmp[0] = '\0';
		goto out;
	}
	close(fd);
	{
		char *tar[] = { "tar", "--create", "--file", tartmp,
		    "--directory", parent, "--exclude=S.*", "--exclude=.#lk*",
		    "--", base, NULL };
		int st_tar = spawn_cli(tar, 1);

		if (st_tar == -1)
			goto out;
		if (st_tar == 1)
			cli_warning("some files changed while tar read them "
			    "(gpg-agent at work); the archive was written");
	}
	final = tartmp;
	if (!cleartext) {
		snprintf(gpgtmp, sizeof(gpgtmp), "%s.gpg.XXXXXX", output);
		if ((fd = mkstemp(gpgtmp)) == -1) {
			cli_error("creating a file next to %s: %s", output,
			    strerror(errno));
			gpgtmp[0] = '\0';
			goto out;
		}
		close(fd);
		{
			char *gpg[] = { "gpg", "--batch", "--yes",
			    "--trust-model", "always", "--encrypt", "-r",
			    (char *)recipient, "--output", gpgtmp, "--",
			    tartmp, NULL };

			if (spawn_cli(gpg, 0) == -1) {
				cli_hint("the recipient's public key must be "
				    "in your keyring (gpg --list-keys %s; "
				    "GNUPGHOME selects another)", recipient);
				goto out;
			}
		}
		final = gpgtmp;
	}
	if (chmod(final, 0600) == -1 || rename(final, output) == -1) {
		cli_error("writing %s: %s", output, strerror(errno));
		goto out;
	}
	final[0] = '\0';
	printf("Backed up %s to %s (%s)\n", kt_client_confdir(c), output,
	    cleartext ? "cleartext tar: it holds the signing secret and "
	    "private key" : "encrypted");
	rc = 0;
out:
	if (tartmp[0] != '\0')
		unlink(tartmp);
	if (gpgtmp[0] != '\0')
		unlink(gpgtmp);
	kt_client_free(c);
	return rc;
}
