/*
 * throttle.c - attempts per remote address, in memory: failed
 * registrations (a wrong org auth secret), keys posted to /pks/add.  max
 * of them inside a window of that many seconds block the address until the
 * window ends.  A fixed table; when it is full the oldest window is
 * dropped.  Every authenticated request asks whether its address is
 * blocked: while no address has reached max within a window, the answer
 * is no without the lock.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "throttle.h"

#define THROTTLE_SLOTS 4096
#define THROTTLE_ADDR_MAX 64

struct throttle_slot {
	char addr[THROTTLE_ADDR_MAX];
	time_t start;      /* 0: free */
	unsigned failures;
};

struct throttle {
	pthread_mutex_t mtx;
	/* When an address last reached max (monotonic seconds). */
	atomic_llong last_full;
	unsigned max;
	int window;
	const char *refusal;
	struct throttle_slot slot[THROTTLE_SLOTS];
};

struct throttle *
throttle_new(unsigned max, int window, const char *refusal)
{
	struct throttle *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	pthread_mutex_init(&t->mtx, NULL);
	atomic_init(&t->last_full, -(1LL << 40));
	t->max = max;
	t->window = window;
	t->refusal = refusal;
	return t;
}

void
throttle_free(struct throttle *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->mtx);
	free(t);
}

static time_t
throttle_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + 1;  /* never 0, which marks a free slot */
}

static unsigned
throttle_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The live slot of addr, or NULL.  Called with the lock held. */
static struct throttle_slot *
throttle_find(struct throttle *t, const char *addr, time_t now, int create)
{
	unsigned h = throttle_hash(addr), i;
	struct throttle_slot *s, *victim = NULL;

	/* Open addressing over a short probe run. */
	for (i = 0; i < 16; i++) {
		s = &t->slot[(h + i) % THROTTLE_SLOTS];
		if (s->start != 0 && now - s->start >= t->window)
			s->start = 0;  /* expired */
		if (s->start != 0 && strcmp(s->addr, addr) == 0)
			return s;
		if (s->start == 0) {
			if (victim == NULL || victim->start != 0)
				victim = s;
		} else if (victim == NULL ||
		    (victim->start != 0 && s->start < victim->start))
			victim = s;
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	strncpy(victim->addr, addr, sizeof(victim->addr) - 1);
	victim->start = now;
	return victim;
}

int
throttle_blocked(struct throttle *t, const char *addr, int *retry)
{
	time_t now = throttle_now();
	struct throttle_slot *s;
	int blocked = 0;

	/* A block ends with its window, which began before max was reached. */
	if ((long long)now - atomic_load_explicit(&t->last_full,
				 memory_order_acquire) >= t->window)
		return 0;
	pthread_mutex_lock(&t->mtx);
	s = throttle_find(t, addr, now, 0);
	if (s != NULL && s->failures >= t->max) {
		blocked = 1;
		*retry = (int)(t->window - (now - s->start));
	}
	pthread_mutex_unlock(&t->mtx);
	return blocked;
}

int
throttle_check(struct throttle *t, const char *addr, struct verdict *v)
{
	int retry;

	if (!throttle_blocked(t, addr, &retry))
		return 0;
	verdict_refuse(v, 429, "throttled", t->refusal);
	v->retry_after = retry > 0 ? retry : 1;
	return -1;
}

void
throttle_fail(struct throttle *t, const char *addr)
{
	struct throttle_slot *s;

	time_t now = throttle_now();

	pthread_mutex_lock(&t->mtx);
	s = throttle_find(t, addr, now, 1);
	if (++s->failures >= t->max)
		atomic_store_explicit(&t->last_full, (long long)now,
		    memory_order_release);
	pthread_mutex_unlock(&t->mtx);
}

int
throttle_take(struct throttle *t, const char *addr, struct verdict *v)
{
	if (throttle_check(t, addr, v) == -1)
		return -1;
	throttle_fail(t, addr);
	return 0;
}
