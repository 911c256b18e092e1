/*
 * authcache.h - the clients' auth data (store_client_auth's), cached and
 * kept exact by LISTEN/NOTIFY (see authcache.c).
 */
#ifndef KT_AUTHCACHE_H
#define KT_AUTHCACHE_H

#include "store/store.h"

struct authcache *authcache_new(void);
void authcache_free(struct authcache *ac);
/* 0 with the entry while the cache is live and holds fpr; else -1. */
int authcache_get(struct authcache *ac, const char *fpr,
    struct client_auth *out);
/* Read before the database lookup; put keeps e only if unchanged since. */
unsigned long authcache_gen(struct authcache *ac);
void authcache_put(struct authcache *ac, const struct client_auth *e,
    unsigned long gen);
/* Drop fpr's entry ("*" or NULL: every entry). */
void authcache_invalidate(struct authcache *ac, const char *fpr);
/* On (listening: may be used) or off; emptied either way. */
void authcache_set_live(struct authcache *ac, int on);
/* The channel that keeps it exact, for store_listen_start. */
void authcache_channel(struct authcache *ac, struct store_channel *out);

#endif
