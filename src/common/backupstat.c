/* backupstat.c - the result of the last backup (see backupstat.h). */
#include "backupstat.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* The words ktbackup.sh gives a failure; anything else shows as "other". */
static const char *const reasons[] = {"usage", "config", "output", "unreadable",
    "gpg", "database", "tar", "interrupted", "other"};

json_t *
backupstat_load(const char *confdir)
{
	char path[PATH_MAX], *buf = NULL;
	size_t len;
	json_t *st;
	const char *res;

	if (path_join(path, sizeof(path), confdir, BACKUPSTAT_FILE) == -1) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	if (file_read(path, 1024 * 1024, &buf, &len) == -1)
		return NULL;
	st = json_loadb(buf, len, 0, NULL);
	free(buf);
	res = json_string_value(json_object_get(st, "result"));
	if (!json_is_object(st) ||
	    !json_is_integer(json_object_get(st, "ended")) || res == NULL ||
	    (strcmp(res, "ok") != 0 && strcmp(res, "failed") != 0)) {
		json_decref(st);
		errno = EINVAL;
		return NULL;
	}
	return st;
}

long long
backupstat_interval(const json_t *st)
{
	json_int_t v =
	    json_integer_value(json_object_get(st, "interval_seconds"));

	return v > 0 ? (long long)v : BACKUPSTAT_DEFAULT_INTERVAL;
}

const char *
backupstat_state(const json_t *st, long long now)
{
	long long ended;

	if (st == NULL)
		return "none";
	if (strcmp(json_string_value(json_object_get(st, "result")), "ok") != 0)
		return "failed";
	ended = (long long)json_integer_value(json_object_get(st, "ended"));
	if (now - ended > 2 * backupstat_interval(st))
		return "overdue";
	return "ok";
}

void
backupstat_time(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "-");
}

static json_t *
time_or_null(const json_t *v)
{
	char buf[32];

	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return json_null();
	backupstat_time((long long)json_integer_value(v), buf, sizeof(buf));
	return json_string(buf);
}

json_t *
backupstat_health(const json_t *st, long long now)
{
	const char *state = backupstat_state(st, now), *r;
	json_t *o;
	size_t i;

	if (st == NULL)
		return json_pack("{s:s}", "state", state);
	o = json_pack("{s:s, s:o, s:s, s:I, s:I, s:I, s:o}", "state", state,
	    "last", time_or_null(json_object_get(st, "ended")), "result",
	    json_string_value(json_object_get(st, "result")), "age_seconds",
	    (json_int_t)(now -
		json_integer_value(json_object_get(st, "ended"))),
	    "duration_seconds",
	    json_integer_value(json_object_get(st, "duration_seconds")),
	    "interval_seconds", (json_int_t)backupstat_interval(st), "last_ok",
	    time_or_null(json_object_get(st, "last_ok")));
	if (o == NULL || strcmp(state, "failed") != 0)
		return o;
	r = json_string_value(json_object_get(st, "reason"));
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (r != NULL && strcmp(r, reasons[i]) == 0)
			break;
	json_object_set_new(o, "reason",
	    json_string(i < sizeof(reasons) / sizeof(reasons[0]) ? reasons[i]
								 : "other"));
	return o;
}
