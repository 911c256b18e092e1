/* kt-cache.c - CONFDIR/cache/<uuid>: deposits as ciphertext, for offline get. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt-int.h"
#include "util.h"

#define KT_CACHE_MAX (512L * 1024 * 1024)

/* A uuid is used as a file name: hex digits and dashes only. */
int
kt_uuid_ok(const char *uuid)
{
	size_t i, n = strlen(uuid);

	if (n == 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)uuid[i]) && uuid[i] != '-')
			return 0;
	return 1;
}

static int
cache_path(struct kt_client *c, const char *uuid, char *buf, size_t len)
{
	if (!kt_uuid_ok(uuid) ||
	    snprintf(buf, len, "%s/cache/%s", c->confdir, uuid) >= (int)len) {
		kt_seterr(c, "\"%s\" is not a deposit uuid", uuid);
		return KT_EINVAL;
	}
	return KT_OK;
}

int
kt_cache_put(struct kt_client *c, const char *uuid, const char *name,
    const char *description, const char *content_b64)
{
	char dir[4096], path[4096], *text = NULL;
	json_t *doc;
	int ret = KT_ERR;

	if (snprintf(dir, sizeof(dir), "%s/cache", c->confdir) >=
	    (int)sizeof(dir) || cache_path(c, uuid, path, sizeof(path)) != 0)
		return KT_EINVAL;
	if (dir_ensure(dir, 0700) == -1) {
		kt_seterr(c, "%s: %s", dir, strerror(errno));
		return KT_ERR;
	}
	doc = json_pack("{s:s, s:s?, s:s?, s:s}", "uuid", uuid, "name", name,
	    "description", description, "content", content_b64);
	if (doc == NULL || (text = json_dumps(doc, JSON_COMPACT)) == NULL) {
		kt_seterr(c, "cannot encode the cache entry");
		goto out;
	}
	if (file_write_atomic(path, text, strlen(text), 0600) == -1) {
		kt_seterr(c, "writing %s: %s", path, strerror(errno));
		goto out;
	}
	ret = KT_OK;
out:
	free(text);
	json_decref(doc);
	return ret;
}

static int
cache_read(struct kt_client *c, const char *path, json_t **doc)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	*doc = NULL;
	if ((r = kt_file_mode_ok(c, path)) != KT_OK)
		return r;
	if (file_read(path, KT_CACHE_MAX, &text, &len) == -1) {
		kt_seterr(c, "%s: %s", path, strerror(errno));
		return KT_ERR;
	}
	*doc = json_loadb(text, len, 0, NULL);
	free(text);
	if (*doc == NULL || !json_is_object(*doc) ||
	    !json_is_string(json_object_get(*doc, "content"))) {
		json_decref(*doc);
		*doc = NULL;
		kt_seterr(c, "%s: not a cache entry", path);
		return KT_ERR;
	}
	return KT_OK;
}

int
kt_cache_get(struct kt_client *c, const char *uuid, char **content_b64)
{
	char path[4096];
	json_t *doc;
	int r;

	*content_b64 = NULL;
	if ((r = cache_path(c, uuid, path, sizeof(path))) != KT_OK)
		return r;
	if (!file_exists(path))
		return 1;
	if ((r = cache_read(c, path, &doc)) != KT_OK)
		return r;
	*content_b64 = strdup(json_string_value(json_object_get(doc,
	    "content")));
	json_decref(doc);
	if (*content_b64 == NULL) {
		kt_seterr(c, "out of memory");
		return KT_ERR;
	}
	return KT_OK;
}

int
kt_cache_find_name(struct kt_client *c, const char *name, char **uuid,
    char **content_b64)
{
	char dir[4096], path[4096];
	DIR *d;
	struct dirent *de;
	struct stat st;
	json_t *doc, *best = NULL;
	time_t best_t = 0;
	int ret = 1, r;

	*uuid = *content_b64 = NULL;
	snprintf(dir, sizeof(dir), "%s/cache", c->confdir);
	if ((d = opendir(dir)) == NULL)
		return 1;
	while ((de = readdir(d)) != NULL) {
		if (!kt_uuid_ok(de->d_name) || snprintf(path, sizeof(path),
		    "%s/%s", dir, de->d_name) >= (int)sizeof(path))
			continue;
		if ((r = cache_read(c, path, &doc)) != KT_OK) {
			if (r == KT_EPERM) {
				ret = r;
				break;
			}
			continue;
		}
		const char *n = json_string_value(json_object_get(doc,
		    "name"));
		if (n == NULL || strcmp(n, name) != 0 ||
		    stat(path, &st) == -1 ||
		    (best != NULL && st.st_mtime < best_t)) {
			json_decref(doc);
			continue;
		}
		json_decref(best);
		best = doc;
		best_t = st.st_mtime;
	}
	closedir(d);
	if (ret == 1 && best != NULL) {
		*uuid = strdup(json_string_value(json_object_get(best,
		    "uuid")) ? json_string_value(json_object_get(best, "uuid"))
		    : "");
		*content_b64 = strdup(json_string_value(json_object_get(best,
		    "content")));
		ret = *uuid && *content_b64 ? KT_OK : KT_ERR;
		if (ret != KT_OK) {
			free(*uuid);
			free(*content_b64);
			*uuid = *content_b64 = NULL;
			kt_seterr(c, "out of memory");
		}
	}
	json_decref(best);
	return ret;
}

void
kt_cache_remove(struct kt_client *c, const char *uuid)
{
	char path[4096];

	if (cache_path(c, uuid, path, sizeof(path)) == KT_OK)
		(void)unlink(path);
}
