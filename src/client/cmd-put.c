/* cmd-put.c - keytrustee-client put. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "log.h"
#include "util.h"

#define PUT_MAX (64L * 1024 * 1024)

static int
read_stream(FILE *fp, unsigned char **out, size_t *outlen)
{
	unsigned char *buf = NULL, *t;
	size_t len = 0, cap = 0, n;

	for (;;) {
		if (cap - len < 65536) {
			if (cap >= (size_t)PUT_MAX) {
				errno = EFBIG;
				goto fail;
			}
			cap = cap ? cap * 2 : 65536;
			if ((t = realloc(buf, cap + 1)) == NULL)
				goto fail;
			buf = t;
		}
		n = fread(buf + len, 1, cap - len, fp);
		len += n;
		if (n == 0) {
			if (ferror(fp))
				goto fail;
			break;
		}
	}
	if (len > (size_t)PUT_MAX) {
		errno = EFBIG;
		goto fail;
	}
	*out = buf;
	*outlen = len;
	return 0;
fail:
	if (buf != NULL)
		freezero(buf, cap);
	return -1;
}

int
cmd_put(int argc, char **argv)
{
	const char *confdir = client_confdir; /* --confdir before the verb */
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "file", required_argument, NULL, 'f' },
		{ "description", required_argument, NULL, 'D' },
		{ "confdir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct cmdtab_cmd *cmd = client_cmd_find("put");
	const char *name = NULL, *file = NULL, *desc = NULL;
	unsigned char *data = NULL;
	size_t len = 0;
	char *uuid = NULL;
	struct kt_client *c = NULL;
	FILE *fp;
	int ch, rc = 1, ret;

	opterr = 0;
	optind = 1;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': name = optarg; break;
		case 'f': file = optarg; break;
		case 'D': desc = optarg; break;
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
	if (name == NULL || *name == '\0')
		return client_usage_error(cmd, "--name NAME is required");
	if ((c = client_open(confdir, &rc)) == NULL)
		return rc;
	if (!kt_client_registered(c)) {
		rc = client_fail(c, kt_put(c, name, desc, "", 0, &uuid));
		goto out;
	}
	if (file != NULL && strcmp(file, "-") != 0) {
		if ((fp = fopen(file, "rb")) == NULL) {
			cli_error("%s: %s", file, strerror(errno));
			goto out;
		}
	} else
		fp = stdin;
	ret = read_stream(fp, &data, &len);
	if (ret != 0)
		cli_error("reading %s: %s", file ? file : "stdin",
		    strerror(errno));
	if (fp != stdin)
		fclose(fp);
	if (ret != 0)
		goto out;
	if ((ret = kt_put(c, name, desc, data, len, &uuid)) != KT_OK) {
		rc = client_fail(c, ret);
		goto out;
	}
	printf("%s\n", uuid);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	if (data != NULL)
		freezero(data, len);
	free(uuid);
	kt_client_free(c);
	return rc;
}
