/*
 * cmd-parcel.c - kt-agent parcel install FILE | activate NAME-VERSION |
 * deactivate | list, under PARCELS_ROOT.  install checks the file's SHA-1
 * against the repo's manifest.json (next to it, or --manifest), its name
 * (NAME-VERSION-DISTRO.parcel), its one top dir NAME-VERSION/ and
 * meta/parcel.json before it moves the unpacked dir into place; a refused
 * parcel leaves PARCELS_ROOT as it was.  activate first makes the
 * accounts meta/parcel.json declares (users) when missing, then points
 * the NAME symlink at a version (atomically, by a rename).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"
#include "spawn.h"
#include "util.h"

static int
run_quiet(char **argv, struct spawn_result *res)
{
	struct spawn_opts o = {0};

	o.capture = 1;
	if (spawn_run(argv, &o, res) == -1) {
		cli_error("cannot run %s: %s", argv[0], strerror(errno));
		return -1;
	}
	return 0;
}

static void
rm_rf(const char *path)
{
	char *argv[] = {"rm", "-rf", "--", (char *)path, NULL};
	struct spawn_result res;

	if (run_quiet(argv, &res) == 0)
		spawn_result_free(&res);
}

/* NAME-VERSION-DISTRO.parcel -> NAME, VERSION (as cm_ext's regex). */
static int
split_name(const char *base, char *name, char *version, size_t len)
{
	const char *dash1 = strchr(base, '-'), *ext, *dash2;
	size_t l = strlen(base);

	if (l < 8 || strcmp(base + l - 7, ".parcel") != 0 || dash1 == NULL)
		return -1;
	ext = base + l - 7;
	for (dash2 = ext; dash2 > dash1 && *dash2 != '-'; dash2--)
		;
	if (dash2 == dash1 || (size_t)(dash1 - base) >= len ||
	    (size_t)(dash2 - dash1 - 1) >= len || dash2 - dash1 < 2 ||
	    ext - dash2 < 2)
		return -1;
	memcpy(name, base, (size_t)(dash1 - base));
	name[dash1 - base] = '\0';
	memcpy(version, dash1 + 1, (size_t)(dash2 - dash1 - 1));
	version[dash2 - dash1 - 1] = '\0';
	return 0;
}

static int
check_meta(const char *dir, const char *name, const char *version)
{
	static const char *const need[] = {
	    "packages", "components", "users", "groups", NULL};
	json_t *m = parcel_meta(dir);
	const char *defines;
	char path[2 * PATH_MAX + 700];
	int ret = -1, i;

	if (m == NULL)
		return -1;
	if (json_integer_value(json_object_get(m, "schema_version")) != 1) {
		cli_error("meta/parcel.json: schema_version must be 1");
		goto out;
	}
	if (!json_is_string(json_object_get(m, "name")) ||
	    strcmp(json_string_value(json_object_get(m, "name")), name) != 0 ||
	    !json_is_string(json_object_get(m, "version")) ||
	    strcmp(json_string_value(json_object_get(m, "version")), version) !=
		0) {
		cli_error("meta/parcel.json names %s-%s, the file %s-%s",
		    json_string_value(json_object_get(m, "name")),
		    json_string_value(json_object_get(m, "version")), name,
		    version);
		goto out;
	}
	if (!json_is_boolean(json_object_get(m, "setActiveSymlink"))) {
		cli_error("meta/parcel.json: setActiveSymlink (a boolean) is "
			  "required");
		goto out;
	}
	for (i = 0; need[i] != NULL; i++)
		if (json_object_get(m, need[i]) == NULL) {
			cli_error("meta/parcel.json: %s is required", need[i]);
			goto out;
		}
	defines = json_string_value(
	    json_object_get(json_object_get(m, "scripts"), "defines"));
	if (defines == NULL || strchr(defines, '/') != NULL) {
		cli_error("meta/parcel.json: scripts.defines must name a "
			  "script in meta/");
		goto out;
	}
	snprintf(path, sizeof(path), "%s/meta/%s", dir, defines);
	if (access(path, R_OK) == -1) {
		cli_error(
		    "meta/%s (scripts.defines): %s", defines, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	json_decref(m);
	return ret;
}

static int
parcel_install(const char *file, const char *manifest)
{
	char fcopy[PATH_MAX], mpath[PATH_MAX], name[128], version[128];
	char top[300], hex[41], dest[PATH_MAX + 320], tmp[PATH_MAX],
	    un[PATH_MAX + 320];
	const char *base, *want = NULL;
	json_error_t jerr;
	json_t *man = NULL, *p;
	struct spawn_result res = {0};
	size_t i;
	int ret = 1, have_tmp = 0;

	snprintf(fcopy, sizeof(fcopy), "%s", file);
	base = basename(fcopy);
	if (split_name(base, name, version, sizeof(name)) == -1 ||
	    strcmp(name, PARCEL_PRODUCT) != 0) {
		cli_error("%s: not a %s parcel file name (%s-VERSION-DISTRO."
			  "parcel)",
		    file, PARCEL_PRODUCT, PARCEL_PRODUCT);
		return 1;
	}
	if (manifest == NULL) {
		char d[PATH_MAX];
		snprintf(d, sizeof(d), "%s", file);
		snprintf(mpath, sizeof(mpath), "%s/manifest.json", dirname(d));
		manifest = mpath;
	}
	if ((man = json_load_file(manifest, 0, &jerr)) == NULL) {
		cli_error("%s: %s", manifest, jerr.text);
		cli_hint("a parcel is installed from its repo: the .parcel "
			 "file and manifest.json");
		return 1;
	}
	json_array_foreach(json_object_get(man, "parcels"), i, p)
	{
		const char *pn =
		    json_string_value(json_object_get(p, "parcelName"));
		if (pn != NULL && strcmp(pn, base) == 0)
			want = json_string_value(json_object_get(p, "hash"));
	}
	if (want == NULL) {
		cli_error("%s lists no parcel %s", manifest, base);
		goto out;
	}
	if (parcel_sha1_file(file, hex) == -1) {
		cli_error("%s: %s", file, strerror(errno));
		goto out;
	}
	if (strcasecmp(hex, want) != 0) {
		cli_error("%s: hash mismatch: SHA-1 %s, the manifest says %s",
		    file, hex, want);
		cli_detail("the parcel is corrupt or not the one the repo "
			   "published; nothing was installed");
		goto out;
	}
	snprintf(top, sizeof(top), "%s-%s", name, version);
	snprintf(dest, sizeof(dest), "%s/%s", agent_parcels_root, top);
	if (access(dest, F_OK) == 0) {
		printf(
		    "%s is already installed in %s\n", top, agent_parcels_root);
		ret = 0;
		goto out;
	}
	{
		char *argv[] = {"tar", "-tzf", (char *)file, NULL};
		char *line, *save = NULL;
		if (run_quiet(argv, &res) == -1)
			goto out;
		if (res.status != 0) {
			cli_error("%s: not a gzip tar", file);
			cli_detail_lines(res.err);
			goto out;
		}
		for (line = strtok_r(res.out, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save)) {
			size_t tl = strlen(top);
			if (strncmp(line, top, tl) != 0 ||
			    (line[tl] != '/' && line[tl] != '\0') ||
			    strstr(line, "..") != NULL) {
				cli_error("%s: member '%s' is outside the one "
					  "top dir %s/",
				    file, line, top);
				goto out;
			}
		}
		spawn_result_free(&res);
	}
	if (mkdir_parents(agent_parcels_root, 0755) == -1) {
		cli_error("cannot create %s: %s", agent_parcels_root,
		    strerror(errno));
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s/.install-XXXXXX", agent_parcels_root);
	if (mkdtemp(tmp) == NULL) {
		cli_error("cannot create a dir in %s: %s", agent_parcels_root,
		    strerror(errno));
		goto out;
	}
	have_tmp = 1;
	{
		char *argv[] = {"tar", "-xzf", (char *)file, "-C", tmp,
		    "--no-same-owner", NULL};
		if (run_quiet(argv, &res) == -1)
			goto out;
		if (res.status != 0) {
			cli_error("%s: cannot unpack", file);
			cli_detail_lines(res.err);
			goto out;
		}
		spawn_result_free(&res);
	}
	snprintf(un, sizeof(un), "%s/%s", tmp, top);
	if (check_meta(un, name, version) == -1)
		goto out;
	if (chmod(un, 0755) == -1 || rename(un, dest) == -1) {
		cli_error(
		    "cannot move %s to %s: %s", un, dest, strerror(errno));
		goto out;
	}
	printf("Installed %s in %s\n", top, dest);
	ret = 0;
out:
	spawn_result_free(&res);
	if (have_tmp)
		rm_rf(tmp);
	json_decref(man);
	return ret;
}

static int
parcel_activate(const char *nv)
{
	char dir[PATH_MAX], link[PATH_MAX], tmp[PATH_MAX], name[128];
	const char *dash = strchr(nv, '-');
	struct stat st;

	if (dash == NULL || strchr(nv, '/') != NULL ||
	    (size_t)(dash - nv) >= sizeof(name)) {
		cli_error("'%s' is not NAME-VERSION", nv);
		return 2;
	}
	memcpy(name, nv, (size_t)(dash - nv));
	name[dash - nv] = '\0';
	snprintf(dir, sizeof(dir), "%s/%s", agent_parcels_root, nv);
	if (strcmp(name, PARCEL_PRODUCT) != 0 || stat(dir, &st) == -1 ||
	    !S_ISDIR(st.st_mode)) {
		cli_error(
		    "parcel %s is not installed in %s", nv, agent_parcels_root);
		cli_hint("kt-agent parcel list; kt-agent parcel install FILE");
		return 1;
	}
	if (parcel_ensure_users(dir) == -1)
		return 1;
	snprintf(link, sizeof(link), "%s/%s", agent_parcels_root, name);
	if (lstat(link, &st) == 0 && !S_ISLNK(st.st_mode)) {
		cli_error("%s exists and is not a symlink", link);
		return 1;
	}
	snprintf(tmp, sizeof(tmp), "%s/.%s.link.%ld", agent_parcels_root, name,
	    (long)getpid());
	(void)unlink(tmp);
	if (symlink(nv, tmp) == -1 || rename(tmp, link) == -1) {
		cli_error(
		    "cannot point %s at %s: %s", link, nv, strerror(errno));
		(void)unlink(tmp);
		return 1;
	}
	printf("Activated %s (%s -> %s); restart the roles to use it\n", nv,
	    link, nv);
	return 0;
}

static int
parcel_deactivate(void)
{
	char link[PATH_MAX], active[256];

	if (parcel_active(active, sizeof(active)) == -1) {
		printf("No %s parcel is active\n", PARCEL_PRODUCT);
		return 0;
	}
	snprintf(
	    link, sizeof(link), "%s/%s", agent_parcels_root, PARCEL_PRODUCT);
	if (unlink(link) == -1) {
		cli_error("%s: %s", link, strerror(errno));
		return 1;
	}
	printf("Deactivated %s\n", active);
	return 0;
}

static int
parcel_list(void)
{
	char active[256] = "";
	struct dirent *de;
	DIR *dir;

	(void)parcel_active(active, sizeof(active));
	if ((dir = opendir(agent_parcels_root)) == NULL) {
		if (errno == ENOENT)
			return 0;
		cli_error("%s: %s", agent_parcels_root, strerror(errno));
		return 1;
	}
	while ((de = readdir(dir)) != NULL) {
		char meta[PATH_MAX];
		if (de->d_name[0] == '.' ||
		    strncmp(de->d_name, PARCEL_PRODUCT "-",
			sizeof(PARCEL_PRODUCT)) != 0)
			continue;
		snprintf(meta, sizeof(meta), "%s/%s/meta/parcel.json",
		    agent_parcels_root, de->d_name);
		if (access(meta, R_OK) == -1)
			continue;
		printf("%-40s %s\n", de->d_name,
		    strcmp(de->d_name, active) == 0 ? "activated"
						    : "distributed");
	}
	closedir(dir);
	return 0;
}

int
cmd_parcel(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"manifest", required_argument, NULL, 'm'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	static const char options[] =
	    "  --manifest FILE       install: the repo's manifest.json "
	    "(default: next\n"
	    "                        to the parcel)\n";
	const char *manifest = NULL, *verb;
	int ch, nargs;

	while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'm':
			manifest = optarg;
			break;
		case 'h':
			agent_usage(stdout, "parcel", options);
			return 0;
		default:
			return cli_opt_error(
			    AGENT_PROGNAME, "parcel", ch, argv);
		}
	}
	if (optind >= argc) {
		cli_error("parcel needs install, activate, deactivate or list");
		cli_hint("run 'kt-agent parcel --help' for usage");
		return 2;
	}
	verb = argv[optind];
	nargs = argc - optind - 1;
	if (strcmp(verb, "install") == 0 || strcmp(verb, "activate") == 0) {
		if (nargs != 1) {
			cli_error("parcel %s needs one %s", verb,
			    verb[0] == 'i' ? "FILE" : "NAME-VERSION");
			return 2;
		}
		return verb[0] == 'i'
		    ? parcel_install(argv[optind + 1], manifest)
		    : parcel_activate(argv[optind + 1]);
	}
	if (strcmp(verb, "deactivate") == 0 || strcmp(verb, "list") == 0) {
		if (nargs != 0) {
			cli_error("unexpected argument '%s'", argv[optind + 1]);
			return 2;
		}
		return verb[0] == 'd' ? parcel_deactivate() : parcel_list();
	}
	cli_error("unknown parcel command '%s'", verb);
	cli_hint("run 'kt-agent parcel --help' for usage");
	return 2;
}
