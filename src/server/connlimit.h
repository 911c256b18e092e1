/*
 * connlimit.h - how many connections, and from where: at most
 * MAX_CONNECTIONS_PER_ADDRESS from one address, and at most
 * --max-connections in all, the longest-idle closed to make room.
 */
#ifndef KT_CONNLIMIT_H
#define KT_CONNLIMIT_H

#include <sys/socket.h>

#include "server.h"

/*
 * What is counted as one address: an IPv4 address (also when it comes
 * v4-mapped on an IPv6 socket), or an IPv6 /64 (what one host is given).
 */
struct connlimit_addr {
	unsigned char b[16];
};

enum connlimit_verdict {
	CONNLIMIT_ADMIT,	/* counted: open it */
	CONNLIMIT_REFUSE_ADDR,	/* its address has its share already */
	CONNLIMIT_REFUSE_FULL,	/* the limit, and nothing idle to close */
};

void connlimit_addr_of(const struct sockaddr *sa, struct connlimit_addr *a);

/* The per-address counts: at most per_addr each; NULL out of memory. */
struct connlimit *connlimit_new(int per_addr);
void connlimit_free(struct connlimit *cl);
/* 1 counted, 0 a has per_addr open already. */
int connlimit_take(struct connlimit *cl, const struct connlimit_addr *a);
/* One connection of a is gone. */
void connlimit_put(struct connlimit *cl, const struct connlimit_addr *a);

/*
 * Count a new connection from a, accepted by worker self, against
 * srv->conns (per address) and srv->max_conns.  Over the limit, it is
 * admitted when some worker has an idle connection: *evict is set to the
 * worker holding the longest-idle one, asked (w->evict_pending) to close
 * it; the caller closes it (self) or wakes that worker (worker.c).
 * Refused, nothing stays counted.  Logged at most once a second.
 */
enum connlimit_verdict connlimit_admit(struct server *srv,
    struct worker *self, const struct connlimit_addr *a,
    struct worker **evict);
/* An admitted connection is closed. */
void connlimit_release(struct server *srv, const struct connlimit_addr *a);

#endif
