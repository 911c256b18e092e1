/*
 * parcel.c - parcels under PARCELS_ROOT: NAME-VERSION/ dirs, the active one
 * reachable as the NAME symlink (setActiveSymlink), the install that checks
 * a parcel's SHA-1 against the repo's manifest.json before it unpacks it.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "agent.h"
#include "log.h"
#include "spawn.h"
#include "util.h"

int
mkdir_parents(const char *path, mode_t mode)
{
	if (dir_ensure_parents(path, 0755, (uid_t)-1, (gid_t)-1) == -1)
		return -1;
	return dir_ensure(path, mode);
}

int
parcel_active(char *buf, size_t len)
{
	char link[PATH_MAX + 32], target[PATH_MAX], dir[2 * PATH_MAX + 32];
	ssize_t n;

	snprintf(
	    link, sizeof(link), "%s/%s", agent_parcels_root, PARCEL_PRODUCT);
	if ((n = readlink(link, target, sizeof(target) - 1)) == -1)
		return -1;
	target[n] = '\0';
	if (strchr(target, '/') != NULL || (size_t)n >= len)
		return -1;
	snprintf(dir, sizeof(dir), "%s/%s/meta/parcel.json", agent_parcels_root,
	    target);
	if (access(dir, R_OK) == -1)
		return -1;
	memcpy(buf, target, (size_t)n + 1);
	return 0;
}

int
parcel_require_active(const struct desc *d, char *buf, size_t len)
{
	if (parcel_active(buf, len) == -1) {
		cli_error("no %s parcel is active under %s", PARCEL_PRODUCT,
		    agent_parcels_root);
		cli_hint("kt-agent parcel install FILE; kt-agent parcel "
			 "activate NAME-VERSION");
		return -1;
	}
	return d != NULL ? parcel_check_tags(d, buf) : 0;
}

json_t *
parcel_meta(const char *dirpath)
{
	char path[PATH_MAX + 32];
	json_error_t jerr;
	json_t *j;

	snprintf(path, sizeof(path), "%s/meta/parcel.json", dirpath);
	if ((j = json_load_file(path, 0, &jerr)) == NULL)
		cli_error("%s:%d: %s", path, jerr.line, jerr.text);
	return j;
}

/*
 * The accounts meta/parcel.json's "users" declares, made when missing by
 * the parcel's libexec/kt-account.sh (the one script that makes the
 * service account everywhere).  0, else -1 (reported).
 */
int
parcel_ensure_users(const char *dirpath)
{
	char script[PATH_MAX + 32];
	json_t *meta, *u;
	const char *name, *home;
	int ret = -1;

	if ((meta = parcel_meta(dirpath)) == NULL)
		return -1;
	snprintf(script, sizeof(script), "%s/libexec/kt-account.sh", dirpath);
	json_object_foreach(json_object_get(meta, "users"), name, u)
	{
		char *argv[] = {
		    script, "--user", (char *)name, "--home", NULL, NULL};

		if (getpwnam(name) != NULL)
			continue;
		home = json_string_value(json_object_get(u, "home"));
		if (home == NULL) {
			cli_error("%s/meta/parcel.json: users.%s.home (a "
				  "string) is required",
			    dirpath, name);
			goto out;
		}
		if (geteuid() != 0) {
			cli_error("the account %s the parcel runs as does not "
				  "exist",
			    name);
			cli_hint(
			    "activate the parcel as root, which creates it");
			goto out;
		}
		argv[4] = (char *)home;
		if (spawn_cli(argv, 0) == -1)
			goto out;
		printf("Created the account %s (home %s) the parcel declares\n",
		    name, home);
	}
	ret = 0;
out:
	json_decref(meta);
	return ret;
}

int
parcel_check_tags(const struct desc *d, const char *dirname)
{
	yaml_node_t *tags =
	    desc_get(d, desc_get(d, d->root, "parcel"), "requiredTags");
	char path[PATH_MAX];
	json_t *meta, *prov, *t;
	size_t i, j;
	int ret = 0;

	snprintf(path, sizeof(path), "%s/%s", agent_parcels_root, dirname);
	if ((meta = parcel_meta(path)) == NULL)
		return -1;
	prov = json_object_get(meta, "provides");
	for (i = 0; i < desc_len(tags); i++) {
		const char *want =
		    (const char *)desc_at(d, tags, i)->data.scalar.value;
		int found = 0;
		json_array_foreach(prov, j, t)
		{
			if (json_is_string(t) &&
			    strcmp(json_string_value(t), want) == 0)
				found = 1;
		}
		if (!found) {
			cli_error("the active parcel %s does not provide the "
				  "tag '%s' the descriptor requires",
			    dirname, want);
			ret = -1;
		}
	}
	json_decref(meta);
	return ret;
}

int
parcel_sha1_file(const char *path, char hex[41])
{
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	FILE *fp = NULL;
	size_t n;
	int ret = -1;

	if ((fp = fopen(path, "rb")) == NULL)
		goto out;
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1)
		goto out;
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		if (EVP_DigestUpdate(ctx, buf, n) != 1)
			goto out;
	if (ferror(fp) || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 ||
	    mdlen != 20)
		goto out;
	hex_encode(md, 20, hex, 0);
	hex[40] = '\0';
	ret = 0;
out:
	EVP_MD_CTX_free(ctx);
	if (fp != NULL)
		fclose(fp);
	return ret;
}
