/*
 * connlimit.c - how many connections, and from where.
 *
 * One address holds at most MAX_CONNECTIONS_PER_ADDRESS (512) of them: a
 * connection beyond is refused as it is accepted, before any TLS.  The
 * counts are a hash table in shards, each under its own lock, touched
 * once when a connection opens and once when it closes, never per
 * request.
 *
 * All of them together hold at most --max-connections: a new one beyond
 * takes the place of the longest-idle connection of any address (idle:
 * no request with its handler; a handshake, a keep-alive wait, an answer
 * the client is slow to read).  Each worker keeps its idle connections in
 * the order they went idle (http.c) and publishes when its oldest did,
 * w->idle_since; the new connection's acceptor picks the worker whose
 * oldest is the oldest, and that worker closes it, in its own thread
 * (w->evict_pending, then a wake-up).  Only when no connection is idle
 * (every one has a request in progress) is a new one refused.  So one
 * address can never lock the others out: its connections age like
 * everyone's, and the new ones of others push them out.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connlimit.h"
#include "log.h"

#define CL_SHARDS 64
#define CL_BUCKETS 256 /* per shard */
/*
 * Evictions the workers may owe at once; beyond, the acceptor closes its
 * own longest-idle (at once, so it owes nothing), or refuses.  It bounds
 * how far past the limit the count goes while the owners catch up
 * (main.c keeps room for it in RLIMIT_NOFILE).
 */
#define CL_EVICT_BACKLOG 64

struct cl_entry {
	struct cl_entry *next;
	struct connlimit_addr a;
	int n;
};

struct cl_shard {
	pthread_mutex_t mtx;
	struct cl_entry *bucket[CL_BUCKETS];
};

struct connlimit {
	int per_addr;
	uint64_t k0, k1; /* the hash's random keys */
	struct cl_shard shard[CL_SHARDS];
};

/* An IPv4 address as IPv6 writes it: ::ffff:a.b.c.d */
static const unsigned char mapped[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void
connlimit_addr_of(const struct sockaddr *sa, struct connlimit_addr *a)
{
	const unsigned char *v6;

	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET) {
		memcpy(a->b, mapped, sizeof(mapped));
		memcpy(a->b + 12,
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    4);
	} else if (sa->sa_family == AF_INET6) {
		v6 = ((const struct sockaddr_in6 *)(const void *)sa)
			 ->sin6_addr.s6_addr;
		/* v4-mapped: the IPv4 address; else its /64. */
		memcpy(a->b, v6, memcmp(v6, mapped, sizeof(mapped)) == 0 ?
			16 : 8);
	}
}

struct connlimit *
connlimit_new(int per_addr)
{
	struct connlimit *cl = calloc(1, sizeof(*cl));
	int i;

	if (cl == NULL)
		return NULL;
	cl->per_addr = per_addr;
	if (RAND_bytes((unsigned char *)&cl->k0, sizeof(cl->k0)) != 1 ||
	    RAND_bytes((unsigned char *)&cl->k1, sizeof(cl->k1)) != 1) {
		free(cl);
		return NULL;
	}
	cl->k0 |= 1;
	cl->k1 |= 1;
	for (i = 0; i < CL_SHARDS; i++)
		pthread_mutex_init(&cl->shard[i].mtx, NULL);
	return cl;
}

void
connlimit_free(struct connlimit *cl)
{
	struct cl_entry *e, *next;
	int i, j;

	if (cl == NULL)
		return;
	for (i = 0; i < CL_SHARDS; i++) {
		for (j = 0; j < CL_BUCKETS; j++)
			for (e = cl->shard[i].bucket[j]; e != NULL; e = next) {
				next = e->next;
				free(e);
			}
		pthread_mutex_destroy(&cl->shard[i].mtx);
	}
	free(cl);
}

/* Keyed, so that no one picks addresses that share a chain. */
static uint64_t
cl_hash(const struct connlimit *cl, const struct connlimit_addr *a)
{
	uint64_t w0, w1, h;

	memcpy(&w0, a->b, 8);
	memcpy(&w1, a->b + 8, 8);
	h = (w0 ^ cl->k1) * cl->k0 + (w1 ^ cl->k0) * cl->k1;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	return h ^ (h >> 32);
}

/* The chain of a's entry, its shard locked. */
static struct cl_entry **
cl_lock(struct connlimit *cl, const struct connlimit_addr *a,
    struct cl_shard **sh)
{
	uint64_t h = cl_hash(cl, a);

	*sh = &cl->shard[h % CL_SHARDS];
	pthread_mutex_lock(&(*sh)->mtx);
	return &(*sh)->bucket[(h / CL_SHARDS) % CL_BUCKETS];
}

int
connlimit_take(struct connlimit *cl, const struct connlimit_addr *a)
{
	struct cl_shard *sh;
	struct cl_entry **chain = cl_lock(cl, a, &sh), *e;
	int ok = 1;

	for (e = *chain; e != NULL; e = e->next)
		if (memcmp(&e->a, a, sizeof(*a)) == 0)
			break;
	if (e == NULL) {
		/* Out of memory: admitted uncounted rather than refused. */
		if ((e = calloc(1, sizeof(*e))) != NULL) {
			e->a = *a;
			e->n = 1;
			e->next = *chain;
			*chain = e;
		}
	} else if (e->n >= cl->per_addr)
		ok = 0;
	else
		e->n++;
	pthread_mutex_unlock(&sh->mtx);
	return ok;
}

void
connlimit_put(struct connlimit *cl, const struct connlimit_addr *a)
{
	struct cl_shard *sh;
	struct cl_entry **chain = cl_lock(cl, a, &sh), **pp, *e;

	for (pp = chain; (e = *pp) != NULL; pp = &e->next)
		if (memcmp(&e->a, a, sizeof(*a)) == 0) {
			if (--e->n == 0) {
				*pp = e->next;
				free(e);
			}
			break;
		}
	pthread_mutex_unlock(&sh->mtx);
}

/* "192.0.2.1", or "2001:db8::/64": a, as the log names it. */
static void
cl_addr_text(const struct connlimit_addr *a, char *out, size_t len)
{
	char buf[INET6_ADDRSTRLEN];

	if (memcmp(a->b, mapped, sizeof(mapped)) == 0)
		inet_ntop(AF_INET, a->b + 12, out, (socklen_t)len);
	else if (inet_ntop(AF_INET6, a->b, buf, sizeof(buf)) != NULL)
		snprintf(out, len, "%s/64", buf);
	else
		snprintf(out, len, "?");
}

/* 1 at most once a second per *last: a flood must not flood the log. */
static int
cl_once_a_second(atomic_llong *last)
{
	long long now = (long long)time(NULL);

	return atomic_exchange(last, now) != now;
}

/*
 * Over the limit: the worker whose oldest idle connection is the oldest
 * is asked to close it; with the backlog full, self (the acceptor, which
 * closes it at once).  NULL when none has an idle connection.
 */
static struct worker *
cl_victim(struct server *srv, struct worker *self, int owed)
{
	struct worker *v = NULL;
	long long best = LLONG_MAX, t;
	int i;

	if (owed >= CL_EVICT_BACKLOG)
		v = atomic_load(&self->idle_since) != LLONG_MAX ? self : NULL;
	else
		for (i = 0; i < srv->nworkers; i++) {
			struct worker *w = &srv->workers[i];
			if ((t = atomic_load(&w->idle_since)) < best) {
				best = t;
				v = w;
			}
		}
	if (v != NULL)
		atomic_fetch_add(&v->evict_pending, 1);
	return v;
}

/* Evictions asked for and not yet done: the room being made. */
static int
cl_owed(struct server *srv)
{
	int i, owed = 0;

	for (i = 0; i < srv->nworkers; i++)
		owed += atomic_load(&srv->workers[i].evict_pending);
	return owed;
}

enum connlimit_verdict
connlimit_admit(struct server *srv, struct worker *self,
    const struct connlimit_addr *a, struct worker **evict)
{
	static atomic_llong warn_addr, warn_full, warn_evict;
	char text[INET6_ADDRSTRLEN + 4];
	int n, owed;

	*evict = NULL;
	if (srv->conns != NULL && !connlimit_take(srv->conns, a)) {
		if (cl_once_a_second(&warn_addr)) {
			cl_addr_text(a, text, sizeof(text));
			log_warnx("connection from %s refused: %d connections "
				  "open from that address, its limit "
				  "(MAX_CONNECTIONS_PER_ADDRESS)",
			    text, srv->conns->per_addr);
		}
		return CONNLIMIT_REFUSE_ADDR;
	}
	n = atomic_fetch_add(&srv->nconns, 1) + 1;
	if (srv->max_conns <= 0 || n <= srv->max_conns)
		return CONNLIMIT_ADMIT;
	if ((owed = cl_owed(srv)) >= n - srv->max_conns)
		return CONNLIMIT_ADMIT; /* room is being made */
	if ((*evict = cl_victim(srv, self, owed)) == NULL) {
		connlimit_release(srv, a);
		if (cl_once_a_second(&warn_full))
			log_warnx("connection refused: %d connections open, "
				  "the limit (--max-connections), and none "
				  "idle",
			    srv->max_conns);
		return CONNLIMIT_REFUSE_FULL;
	}
	if (cl_once_a_second(&warn_evict))
		log_warnx("%d connections open, the limit (--max-connections): "
			  "closing the longest-idle",
		    srv->max_conns);
	return CONNLIMIT_ADMIT;
}

void
connlimit_release(struct server *srv, const struct connlimit_addr *a)
{
	atomic_fetch_sub(&srv->nconns, 1);
	if (srv->conns != NULL)
		connlimit_put(srv->conns, a);
}
