/*
 * fuzz_depcache.c - libFuzzer target for the deposit cache's table
 * (src/server/depcache.c, without its filler thread: depcache.h),
 * checked against a model of what it must hold.
 *
 * The input is a program: two octets of setup (the byte limit, the number
 * of hash buckets, 1 to 256, so that chains and eviction scans are
 * exercised; whether the cache starts live), then operations of one to
 * three octets each on eight uuids: get, put (fresh or stale generation,
 * with or without eviction), drop (of a uuid, or of any short string, as
 * a notification's payload may be), flush, live on/off, and reap (the
 * filler freeing what flushes retired).  After every operation:
 *
 *  - a get finds exactly what the model holds, the very deposit put;
 *  - a put is kept, refused as stale/present/off, or refused for room
 *    exactly when the model says, and evicts only while it has no room;
 *  - the generation moves by one on every drop and flush, never else;
 *  - the count and bytes of depcache_stats are the model's;
 *  - every deposit's reference count is the fuzzer's one, plus one while
 *    the cache holds it, plus one while a flush retired it unreaped.
 *
 * The model is exact but for which entry a put that needs room evicts;
 * it learns that by looking each of its entries up.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "depcache.h"
#include "deposit.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NUUID 8
#define MAXOBJ 128
#define OWNER "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

struct model {
	struct depcache *dc;
	int live;
	size_t limit, bytes, retiring;
	unsigned long gen;
	struct deposit *in[NUUID]; /* what the cache holds, by uuid */
	struct deposit *obj[MAXOBJ];
	int retired[MAXOBJ]; /* retired by a flush, not reaped */
	int nobj;
};

static char uuids[NUUID][CRYPTO_UUID_LEN + 1];

static void
retire_all(struct model *m)
{
	int i, k;

	for (i = 0; i < NUUID; i++) {
		if (m->in[i] == NULL)
			continue;
		for (k = 0; k < m->nobj; k++)
			if (m->obj[k] == m->in[i])
				m->retired[k] = 1;
		m->in[i] = NULL;
	}
	m->retiring += m->bytes;
	m->bytes = 0;
	m->gen++;
}

/* Look every entry of the model up: those gone were evicted. */
static size_t
sync_evicted(struct model *m, size_t *maxsize)
{
	struct deposit *got;
	size_t gone = 0;
	int i;

	*maxsize = 0;
	for (i = 0; i < NUUID; i++) {
		if (m->in[i] == NULL)
			continue;
		got = depcache_get(m->dc, uuids[i]);
		FUZZ_CHECK(
		    got == NULL || got == m->in[i], "get after eviction");
		if (got == NULL) {
			gone += m->in[i]->size;
			if (m->in[i]->size > *maxsize)
				*maxsize = m->in[i]->size;
			m->bytes -= m->in[i]->size;
			m->in[i] = NULL;
		}
		deposit_unref(got);
	}
	return gone;
}

static void
op_put(struct model *m, int u, unsigned sz, int stale, int evict)
{
	static const unsigned char nonce[CRYPTO_NONCE_LEN], ct[4096];
	struct deposit *d;
	unsigned long gen;
	size_t before, gone, maxsize;
	int r, want;

	if (m->nobj == MAXOBJ)
		return;
	d = deposit_new(uuids[u], OWNER, "name", NULL, nonce, sizeof(nonce), ct,
	    CRYPTO_TAG_LEN + 8 * (size_t)sz, "2026-12-07T00:00:00Z");
	FUZZ_CHECK(d != NULL, "deposit_new");
	m->obj[m->nobj++] = d;
	gen = depcache_gen(m->dc) - (stale ? 1 : 0);
	before = m->bytes;
	r = depcache_keep(m->dc, d, gen, evict);
	if (m->limit == 0 || !m->live || stale || m->in[u] != NULL)
		want = 0;
	else if (m->bytes + m->retiring + d->size <= m->limit)
		want = 1;
	else if (!evict)
		want = -1;
	else {
		/* Room made by evicting: which ones, the model cannot say. */
		FUZZ_CHECK(r != 0, "a put that needs room is kept or refused");
		gone = sync_evicted(m, &maxsize);
		if (r == 1)
			FUZZ_CHECK(m->bytes + m->retiring + d->size <= m->limit,
			    "kept over the limit");
		else
			FUZZ_CHECK(m->bytes + m->retiring + d->size > m->limit,
			    "refused for room it had");
		/* Each eviction but the last was needed. */
		if (gone > 0)
			FUZZ_CHECK(
			    before - gone + maxsize + m->retiring + d->size >
				m->limit,
			    "evicted more than needed");
		want = r;
	}
	FUZZ_CHECK(r == want, "put's result");
	if (r == 1)
		m->in[u] = d, m->bytes += d->size;
}

static void
op_get(struct model *m, int u)
{
	struct deposit *got = depcache_get(m->dc, uuids[u]);

	FUZZ_CHECK(got == (m->live ? m->in[u] : NULL), "get");
	deposit_unref(got);
}

/* A drop of a uuid, or of n octets of anything (exactly n: no NUL). */
static void
op_drop(struct model *m, int u, const uint8_t *s, size_t n)
{
	char *p;
	int i;

	if (s == NULL) {
		depcache_drop(m->dc, uuids[u]);
		if (m->in[u] != NULL)
			m->bytes -= m->in[u]->size;
		m->in[u] = NULL;
	} else {
		if ((p = malloc(n + 1)) == NULL)
			return;
		memcpy(p, s, n);
		p[n] = '\0';
		depcache_drop(m->dc, p);
		for (i = 0; i < NUUID; i++)
			if (m->in[i] != NULL && strcmp(p, uuids[i]) == 0) {
				m->bytes -= m->in[i]->size;
				m->in[i] = NULL;
			}
		free(p);
	}
	m->gen++;
}

static void
check_state(struct model *m)
{
	size_t n, bytes, limit, held = 0;
	int live, filling, i, k, refs;

	depcache_stats(m->dc, &n, &bytes, &limit, &live, &filling);
	for (i = 0; i < NUUID; i++)
		held += m->in[i] != NULL;
	FUZZ_CHECK(n == held, "count");
	FUZZ_CHECK(bytes == m->bytes, "bytes");
	FUZZ_CHECK(limit == m->limit, "limit");
	FUZZ_CHECK(live == m->live, "live");
	FUZZ_CHECK(depcache_gen(m->dc) == m->gen, "generation");
	for (k = 0; k < m->nobj; k++) {
		refs = 1 + m->retired[k];
		for (i = 0; i < NUUID; i++)
			refs += m->in[i] == m->obj[k];
		FUZZ_CHECK(atomic_load(&m->obj[k]->refs) == refs, "references");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model m;
	size_t i = 2, n;
	int k;

	if (size < 2)
		return 0;
	if (uuids[0][0] == '\0')
		for (k = 0; k < NUUID; k++)
			snprintf(uuids[k], sizeof(uuids[k]),
			    "00000000-0000-4000-8000-%012d", k);
	memset(&m, 0, sizeof(m));
	/* Limit: 0 (no cache) to ~4 KiB: 2 to 9 deposits of ~450-1450. */
	m.limit = (size_t)(data[0] & 0x3f) * 64;
	m.dc = depcache_new(m.limit, 1u << (data[1] % 9));
	FUZZ_CHECK(m.dc != NULL, "depcache_new");
	if (data[0] & 0x40) {
		depcache_set_live(m.dc, 1);
		m.live = 1;
		m.gen++;
	}
	check_state(&m);
	while (i < size) {
		uint8_t op = data[i++];
		int u = (op >> 3) % NUUID;

		switch (op & 7) {
		case 0:
			op_get(&m, u);
			break;
		case 1:
		case 2:
			/*
			 * 1 as a GET that missed puts (evicting), 2 as the
			 * filler does (not); the next octet: the size, and
			 * a stale generation (bit 7).
			 */
			if (i >= size)
				break;
			op_put(
			    &m, u, data[i] & 0x7f, data[i] >> 7, (op & 7) == 1);
			i++;
			break;
		case 3:
			op_drop(&m, u, NULL, 0);
			break;
		case 4:
			/* A payload: length octet, then that many octets. */
			if (i >= size)
				break;
			n = data[i++] % 48;
			if (n > size - i)
				n = size - i;
			op_drop(&m, u, data + i, n);
			i += n;
			break;
		case 5:
			depcache_flush(m.dc);
			retire_all(&m);
			break;
		case 6:
			depcache_set_live(m.dc, op >> 7);
			m.live = op >> 7;
			retire_all(&m);
			break;
		default:
			depcache_reap(m.dc);
			memset(m.retired, 0, sizeof(m.retired));
			m.retiring = 0;
		}
		check_state(&m);
	}
	depcache_stop(m.dc);
	for (k = 0; k < m.nobj; k++) {
		FUZZ_CHECK(
		    atomic_load(&m.obj[k]->refs) == 1, "references at stop");
		deposit_unref(m.obj[k]);
	}
	return 0;
}
