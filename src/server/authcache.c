/*
 * authcache.c - the clients' state, org and sealed signing secret, cached
 * so that a signed request does not wait on PostgreSQL for its lookup.
 *
 * Kept exact by PostgreSQL's LISTEN/NOTIFY (store/listen.c): schema
 * migration 5 has triggers that notify channel kt_clients with the
 * fingerprint of every client row inserted, updated or deleted
 * (keytrustee-orgtool disable-client, enable-client, re-registration, a
 * psql DELETE), and with "*" for a TRUNCATE, any change to orgs and any
 * DDL (a restore from a pg_dump drops and re-creates the tables); the
 * named entry (or all of them) is dropped as each notification arrives.
 * The cache is used only while the listener is up and listening (live):
 * before LISTEN succeeds, after it breaks, and until it is back (and
 * everything is dropped), and always on a passive, every lookup goes to
 * the database.  A lookup that raced a notification (the generation
 * changed while it read the row) is not cached.
 */
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "authcache.h"
#include "util.h"

#define AC_BUCKETS 16384
#define AC_MAX 200000 /* entries; beyond this everything is dropped */
#define AC_CHANNEL "kt_clients"

struct ac_node {
	struct ac_node *next;
	struct client_auth e;
};

struct authcache {
	pthread_rwlock_t lock;
	struct ac_node *b[AC_BUCKETS];
	size_t n;
	atomic_ulong gen; /* bumped by every invalidation */
	atomic_int live;  /* listening, and the cache may be used */
};

static unsigned
ac_hash(const char *fpr)
{
	return str_hash(fpr) % AC_BUCKETS;
}

static void
ac_node_free(struct ac_node *n)
{
	OPENSSL_cleanse(&n->e, sizeof(n->e));
	free(n);
}

/* Under the write lock. */
static void
ac_clear(struct authcache *ac)
{
	struct ac_node *n, *next;
	size_t i;

	for (i = 0; i < AC_BUCKETS; i++) {
		for (n = ac->b[i]; n != NULL; n = next) {
			next = n->next;
			ac_node_free(n);
		}
		ac->b[i] = NULL;
	}
	ac->n = 0;
}

void
authcache_invalidate(struct authcache *ac, const char *fpr)
{
	struct ac_node **pp, *n;

	pthread_rwlock_wrlock(&ac->lock);
	atomic_fetch_add(&ac->gen, 1);
	if (fpr == NULL || strcmp(fpr, "*") == 0)
		ac_clear(ac);
	else
		for (pp = &ac->b[ac_hash(fpr)]; (n = *pp) != NULL;
		     pp = &n->next)
			if (strcmp(n->e.fpr, fpr) == 0) {
				*pp = n->next;
				ac_node_free(n);
				ac->n--;
				break;
			}
	pthread_rwlock_unlock(&ac->lock);
}

int
authcache_get(struct authcache *ac, const char *fpr, struct client_auth *out)
{
	struct ac_node *n;
	int ret = -1;

	if (ac == NULL || !atomic_load(&ac->live))
		return -1;
	pthread_rwlock_rdlock(&ac->lock);
	for (n = ac->b[ac_hash(fpr)]; n != NULL; n = n->next)
		if (strcmp(n->e.fpr, fpr) == 0) {
			*out = n->e;
			ret = 0;
			break;
		}
	pthread_rwlock_unlock(&ac->lock);
	return ret;
}

unsigned long
authcache_gen(struct authcache *ac)
{
	return ac != NULL ? atomic_load(&ac->gen) : 0;
}

void
authcache_put(
    struct authcache *ac, const struct client_auth *e, unsigned long gen)
{
	struct ac_node *n;
	unsigned h;

	if (ac == NULL || !atomic_load(&ac->live) ||
	    (n = calloc(1, sizeof(*n))) == NULL)
		return;
	n->e = *e;
	h = ac_hash(e->fpr);
	pthread_rwlock_wrlock(&ac->lock);
	/* Only what no invalidation overtook since it was read. */
	if (atomic_load(&ac->gen) != gen || !atomic_load(&ac->live)) {
		pthread_rwlock_unlock(&ac->lock);
		ac_node_free(n);
		return;
	}
	if (ac->n >= AC_MAX)
		ac_clear(ac);
	n->next = ac->b[h];
	ac->b[h] = n;
	ac->n++;
	pthread_rwlock_unlock(&ac->lock);
}

void
authcache_set_live(struct authcache *ac, int on)
{
	/* What changed while not listening is unknown. */
	if (!on)
		atomic_store(&ac->live, 0);
	authcache_invalidate(ac, "*");
	if (on)
		atomic_store(&ac->live, 1);
}

static void
ac_notified(void *arg, const char *payload)
{
	authcache_invalidate(arg, payload);
}

static void
ac_live(void *arg, int on)
{
	authcache_set_live(arg, on);
}

void
authcache_channel(struct authcache *ac, struct store_channel *out)
{
	*out = (struct store_channel){AC_CHANNEL, ac_notified, ac_live, ac};
}

struct authcache *
authcache_new(void)
{
	struct authcache *ac;

	if ((ac = calloc(1, sizeof(*ac))) == NULL)
		return NULL;
	pthread_rwlock_init(&ac->lock, NULL);
	return ac;
}

void
authcache_free(struct authcache *ac)
{
	if (ac == NULL)
		return;
	pthread_rwlock_wrlock(&ac->lock);
	ac_clear(ac);
	pthread_rwlock_unlock(&ac->lock);
	pthread_rwlock_destroy(&ac->lock);
	free(ac);
}
