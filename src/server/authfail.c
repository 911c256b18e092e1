/*
 * authfail.c - failed authentication, of /v1 (auth.c) and of the legacy
 * protocol (legacy.c): its limit per source address, and its audit by the
 * minute.
 *
 * A request whose authentication failed used to add one audit_log row:
 * one connection without a valid Authorization added ~1,400 rows a second
 * to a table that is never pruned.  Now a failure that names no
 * registered client (none, malformed, stale, an unknown fingerprint; a
 * legacy request traced to no client), and a refusal because the address
 * failed too often (429), adds one to the tally of its (source address,
 * action, reason), kept in memory; a thread writes every tally as one row
 * carrying its count (and the time of its first failure) once a minute
 * and at shutdown.  The audit still says who hammered, how and how much;
 * the table grows by a few rows a minute per source.  A failure that names
 * a registered client (a bad signature, a pending or disabled client) is
 * a row of its own, with the client, as before.
 *
 * Every failure counts against its address (throttle.c); one that failed
 * AUTH_FAILURES_PER_MINUTE times within 60 s is refused until its window
 * ends.  Successful requests neither count nor pass through here.
 *
 * The tally is a fixed table; a failure that finds no room is audited on
 * its own, as before.  Rows that cannot be written (the database down)
 * go back into the tally for the next minute.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "authfail.h"
#include "log.h"
#include "throttle.h"

#define AUTHFAIL_SLOTS 4096
#define AUTHFAIL_PROBES 16

struct authfail_slot {
	char remote[64]; /* "": free */
	char action[32];
	char why[32];
	time_t first; /* wall clock: the row's at */
	int count;
};

struct authfail {
	struct server *srv;
	struct throttle *throttle; /* failures per address, then 429 */
	struct store *store;	   /* the writer's own connection */
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	int stop;
	pthread_t thread;
	int started;
	struct authfail_slot slot[AUTHFAIL_SLOTS];
	struct authfail_slot out[AUTHFAIL_SLOTS]; /* the writer's copy */
};

static unsigned
authfail_hash(const char *a, const char *b, const char *c)
{
	const char *s[3] = {a, b, c};
	unsigned h = 2166136261u;
	int i;

	for (i = 0; i < 3; i++) {
		for (; *s[i]; s[i]++)
			h = (h ^ (unsigned char)*s[i]) * 16777619u;
		h = (h ^ 0xff) * 16777619u; /* "ab","c" is not "a","bc" */
	}
	return h;
}

/*
 * Add count failures (the first at first) to the tally of the key; 0, or
 * -1 when the table has no room for it.  Called with the lock held.
 */
static int
tally_add(struct authfail *af, const char *remote, const char *action,
    const char *why, int count, time_t first)
{
	unsigned h = authfail_hash(remote, action, why), i;
	struct authfail_slot *s;

	for (i = 0; i < AUTHFAIL_PROBES; i++) {
		s = &af->slot[(h + i) % AUTHFAIL_SLOTS];
		if (s->remote[0] == '\0') {
			snprintf(s->remote, sizeof(s->remote), "%s", remote);
			snprintf(s->action, sizeof(s->action), "%s", action);
			snprintf(s->why, sizeof(s->why), "%s", why);
			s->first = first;
			s->count = count;
			return 0;
		}
		if (strcmp(s->remote, remote) == 0 &&
		    strcmp(s->action, action) == 0 &&
		    strcmp(s->why, why) == 0) {
			if (s->count > INT_MAX - count)
				return -1; /* full: a row of its own */
			s->count += count;
			if (first < s->first)
				s->first = first;
			return 0;
		}
	}
	return -1;
}

/* r audited: tallied when it names no client and the tally has room. */
static void
authfail_audit(struct worker *w, const struct audit_row *r)
{
	struct authfail *af = w->srv->authfail;
	int tallied = -1;

	if (r->actor == NULL) {
		pthread_mutex_lock(&af->mtx);
		tallied = tally_add(af, r->remote != NULL ? r->remote : "",
		    r->action, r->result, 1, time(NULL));
		pthread_mutex_unlock(&af->mtx);
	}
	if (tallied == -1)
		audit(w->srv->ha, w->store, r);
}

int
authfail_check(struct worker *w, const char *action, const char *remote,
    struct verdict *v)
{
	if (throttle_check(w->srv->authfail->throttle, remote, v) == 0)
		return 0;
	authfail_audit(w, AUDIT_ROW(.action = action, .remote = remote,
			      .result = "throttled"));
	return -1;
}

void
authfail_record(struct worker *w, const struct audit_row *r)
{
	throttle_fail(w->srv->authfail->throttle,
	    r->remote != NULL ? r->remote : "");
	authfail_audit(w, r);
}

/* Write every tally as its row; what cannot be written is kept. */
static void
authfail_flush(struct authfail *af)
{
	struct authfail_slot *s;
	char at[32];
	struct tm tm;
	int i, n = 0, lost = 0;

	pthread_mutex_lock(&af->mtx);
	for (i = 0; i < AUTHFAIL_SLOTS; i++)
		if (af->slot[i].remote[0] != '\0') {
			af->out[n++] = af->slot[i];
			af->slot[i].remote[0] = '\0';
		}
	pthread_mutex_unlock(&af->mtx);
	for (i = 0; i < n; i++) {
		s = &af->out[i];
		gmtime_r(&s->first, &tm);
		strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (audit(af->srv->ha, af->store,
			AUDIT_ROW(.action = s->action, .remote = s->remote,
			    .result = s->why, .at = at, .count = s->count)) ==
		    0)
			continue;
		pthread_mutex_lock(&af->mtx);
		if (af->stop ||
		    tally_add(af, s->remote, s->action, s->why, s->count,
			s->first) == -1)
			lost += s->count;
		pthread_mutex_unlock(&af->mtx);
	}
	if (lost > 0)
		log_warnx("audit_log: %d failed authentications could not be "
			  "recorded",
		    lost);
}

static void *
authfail_main(void *arg)
{
	struct authfail *af = arg;
	struct timespec until;
	int stop = 0;

	while (!stop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += AUTHFAIL_FLUSH_SECS;
		pthread_mutex_lock(&af->mtx);
		while (!af->stop &&
		    pthread_cond_timedwait(&af->cond, &af->mtx, &until) == 0)
			;
		stop = af->stop;
		pthread_mutex_unlock(&af->mtx);
		authfail_flush(af);
	}
	return NULL;
}

struct authfail *
authfail_start(struct server *srv)
{
	struct authfail *af;
	pthread_condattr_t ca;

	if ((af = calloc(1, sizeof(*af))) == NULL)
		return NULL;
	af->srv = srv;
	pthread_mutex_init(&af->mtx, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&af->cond, &ca);
	pthread_condattr_destroy(&ca);
	if ((af->throttle = throttle_new(
		 (unsigned)srv->conf->auth_failures_per_minute, 60,
		 "too many failed authentications from this address; try "
		 "again later")) == NULL ||
	    (af->store = store_new(srv->conf, "failed-auth audit")) == NULL ||
	    pthread_create(&af->thread, NULL, authfail_main, af) != 0) {
		authfail_stop(af);
		return NULL;
	}
	af->started = 1;
	return af;
}

void
authfail_stop(struct authfail *af)
{
	if (af == NULL)
		return;
	pthread_mutex_lock(&af->mtx);
	af->stop = 1;
	pthread_cond_signal(&af->cond);
	pthread_mutex_unlock(&af->mtx);
	if (af->started)
		pthread_join(af->thread, NULL); /* it writes what is left */
	store_free(af->store);
	throttle_free(af->throttle);
	pthread_cond_destroy(&af->cond);
	pthread_mutex_destroy(&af->mtx);
	free(af);
}
