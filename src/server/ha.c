/*
 * ha.c - active/passive high availability.  A monitor thread asks the
 * server's own PostgreSQL every HA_CHECK_MSECS whether it is a standby
 * (then this server is the passive one) and how replication stands
 * (store_repl_status), and caches the answer; requests read the cache
 * under a mutex and never query it themselves.
 *
 * Writes need both servers (the guide): a passive refuses them with 503
 * naming the active; the active refuses them at once while synchronous
 * replication is configured and no synchronous standby streams.  The cache
 * may be up to HA_CHECK_MSECS old, so each write statement also checks the
 * standby itself and writes nothing when there is none, and its commit's
 * wait for a standby that vanished in between is bounded (store/conn.c):
 * the write is refused, never hung.
 *
 * A passive's database is read-only: the audit rows of what it serves go
 * to a journal file, which the server imports into audit_log once it is
 * the active one (promoted, or started as the active with a journal left).
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ha.h"
#include "log.h"
#include "util.h"

#define HA_CHECK_MSECS 200
#define HA_JOURNAL "audit-passive.log"
#define HA_JOURNAL_MAX (256 * 1024 * 1024)

struct ha {
	const struct kt_conf *conf;
	pthread_mutex_t mtx; /* guards st */
	struct ha_state st;
	struct store *store; /* the monitor's connection */
	pthread_t thread;
	atomic_int stop;
	pthread_mutex_t journal_mtx;
	int journal_fd; /* the passive's audit journal, or -1 */
};

/* The rows of a journal, pointing into the JSON objects kept with them. */
struct journal {
	struct audit_row *rows;
	json_t **objs;
	int n, cap;
};

static void
journal_free(struct journal *j)
{
	int i;

	for (i = 0; i < j->n; i++)
		json_decref(j->objs[i]);
	free(j->objs);
	free(j->rows);
}

/* One line's row; 0, or -1 out of memory.  Other lines are skipped. */
static int
journal_add(struct journal *j, const char *line)
{
	struct audit_row *r;
	json_t *o;
	void *p;

	if ((o = json_loads(line, 0, NULL)) == NULL)
		return 0; /* a torn last line */
	if (j->n == j->cap) {
		j->cap = j->cap ? 2 * j->cap : 64;
		if ((p = realloc(j->rows, (size_t)j->cap * sizeof(*j->rows))) !=
		    NULL)
			j->rows = p;
		if (p == NULL || (p = realloc(j->objs,
				      (size_t)j->cap * sizeof(*j->objs))) ==
			NULL) {
			json_decref(o);
			return -1;
		}
		j->objs = p;
	}
	r = &j->rows[j->n];
#define MEMBER(k) json_string_value(json_object_get(o, (k)))
	*r = (struct audit_row){MEMBER("actor"), MEMBER("org"),
	    MEMBER("action"), MEMBER("object"), MEMBER("remote_addr"),
	    MEMBER("result"), MEMBER("at"),
	    (int)json_integer_value(json_object_get(o, "count"))};
#undef MEMBER
	if (r->at == NULL || r->action == NULL || r->result == NULL) {
		json_decref(o); /* not a row */
		return 0;
	}
	j->objs[j->n++] = o;
	return 0;
}

/*
 * Promoted: the reads this server served as the passive go from its
 * journal into audit_log, in one transaction, and the journal is renamed
 * aside.  Under journal_mtx, so no worker appends meanwhile.
 */
static void
ha_journal_import(struct ha *ha)
{
	char path[PATH_MAX], aside[PATH_MAX + 64], stamp[32], *text = NULL;
	char *line, *save = NULL;
	struct journal j = {NULL, NULL, 0, 0};
	time_t now = time(NULL);
	struct tm tm;
	size_t len;

	pthread_mutex_lock(&ha->journal_mtx);
	if (ha->journal_fd != -1)
		close(ha->journal_fd);
	ha->journal_fd = -1;
	if (path_join(path, sizeof(path), ha->conf->confdir, HA_JOURNAL) ==
		-1 ||
	    !file_exists(path))
		goto out;
	if (file_read(path, HA_JOURNAL_MAX, &text, &len) == -1) {
		log_warn("%s", path);
		goto out;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save))
		if (journal_add(&j, line) == -1) {
			log_warnx("audit journal %s not imported: out of "
				  "memory",
			    path);
			goto out;
		}
	if (store_audit_import(ha->store, j.rows, j.n) != STORE_OK) {
		log_warnx("audit journal %s not imported", path);
		goto out;
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(aside, sizeof(aside), "%s.imported-%s", path, stamp);
	if (rename(path, aside) == -1)
		log_warn("rename %s", path);
	log_info("HA: imported %d audit rows of the passive's journal into "
		 "audit_log (kept as %s)",
	    j.n, aside);
out:
	journal_free(&j);
	free(text);
	pthread_mutex_unlock(&ha->journal_mtx);
}

/* Check once and publish the result. */
static void
ha_refresh(struct ha *ha)
{
	struct ha_state st;
	int was_known, was_passive, ok;

	pthread_mutex_lock(&ha->mtx);
	st = ha->st;
	pthread_mutex_unlock(&ha->mtx);
	was_known = st.known;
	was_passive = st.r.passive;
	ok = store_repl_status(ha->store, &st.r) == STORE_OK;
	st.db_up = ok;
	if (ok)
		st.known = 1; /* when down, the last known role stays */
	st.checked_ms = mono_ms();
	pthread_mutex_lock(&ha->mtx);
	ha->st = st;
	pthread_mutex_unlock(&ha->mtx);
	if (ok && (!was_known || was_passive != st.r.passive))
		log_info("HA: this server is the %s one",
		    st.r.passive ? "passive" : "active");
	/* Promoted now, or started as the active with a journal left over. */
	if (ok && !st.r.passive && (!was_known || was_passive))
		ha_journal_import(ha);
}

static void *
ha_main(void *arg)
{
	struct ha *ha = arg;
	struct timespec ts = {0, HA_CHECK_MSECS * 1000000L};

	while (!atomic_load(&ha->stop)) {
		nanosleep(&ts, NULL);
		ha_refresh(ha);
	}
	return NULL;
}

struct ha *
ha_start(const struct kt_conf *conf, char *err, size_t errlen)
{
	struct ha *ha;
	int e;

	if ((ha = calloc(1, sizeof(*ha))) == NULL ||
	    (ha->store = store_new(conf, "HA monitor")) == NULL) {
		free(ha);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ha->conf = conf;
	pthread_mutex_init(&ha->mtx, NULL);
	pthread_mutex_init(&ha->journal_mtx, NULL);
	ha->journal_fd = -1;
	if (conf->db_connect != NULL)
		ha_refresh(ha);
	if ((e = pthread_create(&ha->thread, NULL, ha_main, ha)) != 0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(e));
		store_free(ha->store);
		free(ha);
		return NULL;
	}
	return ha;
}

void
ha_stop(struct ha *ha)
{
	if (ha == NULL)
		return;
	atomic_store(&ha->stop, 1);
	pthread_join(ha->thread, NULL);
	if (ha->journal_fd != -1)
		close(ha->journal_fd);
	store_free(ha->store);
	pthread_mutex_destroy(&ha->mtx);
	pthread_mutex_destroy(&ha->journal_mtx);
	free(ha);
}

void
ha_snapshot(struct ha *ha, struct ha_state *out)
{
	pthread_mutex_lock(&ha->mtx);
	*out = ha->st;
	pthread_mutex_unlock(&ha->mtx);
}

int
ha_is_passive(struct ha *ha)
{
	struct ha_state st;

	ha_snapshot(ha, &st);
	return st.r.passive;
}

/* "https://HOST:PORT" of the active server, as the passive knows it. */
static void
ha_active_url(const struct ha_state *st, int port, char *out, size_t outlen)
{
	const char *h = st->r.active_host;

	if (h[0] == '\0' || h[0] == '/')
		snprintf(out, outlen, "unknown");
	else if (strchr(h, ':') != NULL)
		snprintf(out, outlen, "https://[%s]:%d", h, port);
	else
		snprintf(out, outlen, "https://%s:%d", h, port);
}

int
ha_no_sync(struct verdict *v)
{
	verdict_refuse(v, 503, "no_sync_standby",
	    "writes need both Key Trustee Servers: the passive server is not "
	    "streaming, so this write is refused; reads still work");
	v->retry_after = 5;
	return -1;
}

int
ha_gate(const struct ha_state *st, int port, struct verdict *v)
{
	if (st->r.passive) {
		verdict_refuse(v, 503, "passive",
		    "this is the passive Key Trustee Server: it serves reads "
		    "only; send writes to the active server");
		ha_active_url(st, port, v->buf, sizeof(v->buf));
		v->active = v->buf;
		return -1;
	}
	if (st->r.sync_required && !st->r.sync_streaming)
		return ha_no_sync(v);
	return 0;
}

int
ha_write_gate(struct ha *ha, struct verdict *v)
{
	struct ha_state st;

	ha_snapshot(ha, &st);
	return ha_gate(&st, ha->conf->port, v);
}

json_t *
ha_health(struct ha *ha, int *writes)
{
	struct ha_state st;
	char url[300];
	json_t *r;

	ha_snapshot(ha, &st);
	if (st.r.passive) {
		ha_active_url(&st, ha->conf->port, url, sizeof(url));
		*writes = 0;
		r = json_pack("{s:s, s:s, s:s, s:I, s:f}", "state",
		    st.r.receiving ? "streaming" : "disconnected", "active",
		    url, "active_host", st.r.active_host, "lag_bytes",
		    (json_int_t)st.r.lag_bytes, "lag_seconds",
		    st.r.lag_seconds);
	} else {
		*writes =
		    st.db_up && (!st.r.sync_required || st.r.sync_streaming);
		r = json_pack("{s:s, s:b, s:b, s:i, s:I, s:f}", "state",
		    st.r.standbys > 0
			? "streaming"
			: (st.r.sync_required ? "disconnected" : "none"),
		    "synchronous", st.r.sync_required, "synchronous_standby",
		    st.r.sync_streaming, "standbys", st.r.standbys, "lag_bytes",
		    (json_int_t)st.r.lag_bytes, "lag_seconds",
		    st.r.lag_seconds);
	}
	if (r != NULL)
		json_object_set_new(r, "checked_ms_ago",
		    json_integer(mono_ms() - st.checked_ms));
	return r;
}

int
ha_journal(struct ha *ha, const struct audit_row *r)
{
	char path[PATH_MAX], at[32], *line = NULL;
	struct tm tm;
	time_t now = time(NULL);
	json_t *o;
	size_t n;
	int ret = -1;

	gmtime_r(&now, &tm);
	strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	o = json_pack("{s:s, s:s?, s:s?, s:s, s:s?, s:s?, s:s}", "at",
	    r->at != NULL ? r->at : at, "actor", r->actor, "org", r->org,
	    "action", r->action, "object", r->object, "remote_addr",
	    r->remote != NULL && *r->remote != '\0' ? r->remote : NULL,
	    "result", r->result);
	/* A tally of failed authentication (authfail.c) keeps its count. */
	if (o != NULL && r->count > 1)
		json_object_set_new(o, "count", json_integer(r->count));
	if (o == NULL || (line = json_dumps(o, JSON_COMPACT)) == NULL)
		goto out;
	pthread_mutex_lock(&ha->journal_mtx);
	if (ha->journal_fd == -1 &&
	    path_join(path, sizeof(path), ha->conf->confdir, HA_JOURNAL) == 0)
		ha->journal_fd = open(path,
		    O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		    0600);
	if (ha->journal_fd != -1) {
		n = strlen(line);
		line[n] = '\n'; /* one write(2) of the line and its newline */
		ret = write(ha->journal_fd, line, n + 1) == (ssize_t)(n + 1)
		    ? 0
		    : -1;
		line[n] = '\0';
	}
	pthread_mutex_unlock(&ha->journal_mtx);
	if (ret == -1)
		log_warn("%s/%s", ha->conf->confdir, HA_JOURNAL);
out:
	free(line);
	json_decref(o);
	return ret;
}
