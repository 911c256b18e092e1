/*
 * test_connlimit.c - unit tests for src/server/connlimit.c: the counts per
 * address, what counts as one address, and whom the limit evicts.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "connlimit.h"

static void
addr4(const char *text, struct connlimit_addr *a)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, text, &sin.sin_addr), 1);
	connlimit_addr_of((struct sockaddr *)&sin, a);
}

static void
addr6(const char *text, struct connlimit_addr *a)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
	connlimit_addr_of((struct sockaddr *)&sin6, a);
}

static void
test_an_address_holds_its_share_and_no_more(void **state)
{
	struct connlimit *cl = connlimit_new(3);
	struct connlimit_addr a, b;
	int i;

	(void)state;
	assert_non_null(cl);
	addr4("192.0.2.1", &a);
	addr4("192.0.2.2", &b);
	for (i = 0; i < 3; i++)
		assert_int_equal(connlimit_take(cl, &a), 1);
	assert_int_equal(connlimit_take(cl, &a), 0);
	assert_int_equal(connlimit_take(cl, &a), 0);
	/* Another address is not held for it. */
	assert_int_equal(connlimit_take(cl, &b), 1);
	/* One closed: one more. */
	connlimit_put(cl, &a);
	assert_int_equal(connlimit_take(cl, &a), 1);
	assert_int_equal(connlimit_take(cl, &a), 0);
	/* All closed: the address starts again from nothing. */
	for (i = 0; i < 3; i++)
		connlimit_put(cl, &a);
	for (i = 0; i < 3; i++)
		assert_int_equal(connlimit_take(cl, &a), 1);
	assert_int_equal(connlimit_take(cl, &a), 0);
	connlimit_free(cl);
}

static void
test_many_addresses_are_counted_apart(void **state)
{
	struct connlimit *cl = connlimit_new(2);
	struct connlimit_addr a;
	char text[32];
	int i;

	(void)state;
	for (i = 0; i < 50000; i++) {
		snprintf(text, sizeof(text), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		addr4(text, &a);
		assert_int_equal(connlimit_take(cl, &a), 1);
		assert_int_equal(connlimit_take(cl, &a), 1);
	}
	for (i = 0; i < 50000; i++) {
		snprintf(text, sizeof(text), "10.%d.%d.%d", i >> 16,
		    (i >> 8) & 255, i & 255);
		addr4(text, &a);
		assert_int_equal(connlimit_take(cl, &a), 0);
		connlimit_put(cl, &a);
	}
	connlimit_free(cl); /* frees what is left (ASan checks) */
}

static void
test_one_address_is_ipv4_or_an_ipv6_64(void **state)
{
	struct connlimit *cl = connlimit_new(2);
	struct connlimit_addr a, b;

	(void)state;
	/* v4-mapped on an IPv6 socket is the IPv4 address. */
	addr4("198.51.100.7", &a);
	addr6("::ffff:198.51.100.7", &b);
	assert_memory_equal(&a, &b, sizeof(a));
	/* One /64 is one address ... */
	addr6("2001:db8:1:2::1", &a);
	addr6("2001:db8:1:2:ffff:ffff:ffff:ffff", &b);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(connlimit_take(cl, &a), 1);
	assert_int_equal(connlimit_take(cl, &b), 1);
	assert_int_equal(connlimit_take(cl, &b), 0);
	/* ... and the next /64 another. */
	addr6("2001:db8:1:3::1", &b);
	assert_int_equal(connlimit_take(cl, &b), 1);
	connlimit_free(cl);
}

/* A server of two workers, as connlimit_admit sees it. */
struct fixture {
	struct server srv;
	struct worker w[2];
};

static void
fixture_init(struct fixture *f, int max_conns, int per_addr)
{
	memset(f, 0, sizeof(*f));
	f->srv.max_conns = max_conns;
	f->srv.nworkers = 2;
	f->srv.workers = f->w;
	f->srv.conns = connlimit_new(per_addr);
	assert_non_null(f->srv.conns);
	atomic_store(&f->w[0].idle_since, LLONG_MAX);
	atomic_store(&f->w[1].idle_since, LLONG_MAX);
}

/* A connection from a accepted by the first worker. */
static enum connlimit_verdict
admit(struct fixture *f, const struct connlimit_addr *a, struct worker **ev)
{
	return connlimit_admit(&f->srv, &f->w[0], a, ev);
}

static void
test_the_limit_evicts_the_longest_idle(void **state)
{
	struct fixture f;
	struct connlimit_addr a, b;
	struct worker *evict;

	(void)state;
	fixture_init(&f, 2, 10);
	addr4("192.0.2.1", &a);
	addr4("192.0.2.9", &b);
	assert_int_equal(admit(&f, &a, &evict), CONNLIMIT_ADMIT);
	assert_null(evict);
	assert_int_equal(admit(&f, &a, &evict), CONNLIMIT_ADMIT);
	assert_null(evict);
	/* Both idle, the second worker's since longer: it closes one. */
	atomic_store(&f.w[0].idle_since, 5000);
	atomic_store(&f.w[1].idle_since, 1000);
	assert_int_equal(admit(&f, &b, &evict), CONNLIMIT_ADMIT);
	assert_ptr_equal(evict, &f.w[1]);
	assert_int_equal(atomic_load(&f.w[1].evict_pending), 1);
	assert_int_equal(atomic_load(&f.w[0].evict_pending), 0);
	assert_int_equal(atomic_load(&f.srv.nconns), 3);
	/* Its owner closed it (http_evict_idle); its oldest is now newer. */
	atomic_store(&f.w[1].evict_pending, 0);
	connlimit_release(&f.srv, &a);
	atomic_store(&f.w[1].idle_since, 9000);
	assert_int_equal(admit(&f, &b, &evict), CONNLIMIT_ADMIT);
	assert_ptr_equal(evict, &f.w[0]);
	connlimit_free(f.srv.conns);
}

static void
test_room_being_made_is_not_asked_twice(void **state)
{
	struct fixture f;
	struct connlimit_addr a;
	struct worker *evict;

	(void)state;
	fixture_init(&f, 1, 10);
	addr4("192.0.2.1", &a);
	assert_int_equal(admit(&f, &a, &evict), CONNLIMIT_ADMIT);
	atomic_store(&f.w[0].idle_since, 1000);
	assert_int_equal(admit(&f, &a, &evict), CONNLIMIT_ADMIT);
	assert_ptr_equal(evict, &f.w[0]);
	/* Before the owner ran, one more: another eviction, not three. */
	assert_int_equal(admit(&f, &a, &evict), CONNLIMIT_ADMIT);
	assert_ptr_equal(evict, &f.w[0]);
	assert_int_equal(atomic_load(&f.w[0].evict_pending), 2);
	/* One closed by its peer meanwhile: the room owed is enough. */
	connlimit_release(&f.srv, &a);
	assert_int_equal(admit(&f, &a, &evict), CONNLIMIT_ADMIT);
	assert_null(evict);
	assert_int_equal(atomic_load(&f.w[0].evict_pending), 2);
	connlimit_free(f.srv.conns);
}

static void
test_nothing_idle_refuses_and_uncounts(void **state)
{
	struct fixture f;
	struct connlimit_addr a, b;
	struct worker *evict;

	(void)state;
	fixture_init(&f, 1, 1);
	addr4("192.0.2.1", &a);
	addr4("192.0.2.2", &b);
	assert_int_equal(admit(&f, &a, &evict), CONNLIMIT_ADMIT);
	/* Its address has its share: refused before the global count. */
	assert_int_equal(admit(&f, &a, &evict), CONNLIMIT_REFUSE_ADDR);
	assert_int_equal(atomic_load(&f.srv.nconns), 1);
	/* Every connection has a request in progress: refused. */
	assert_int_equal(admit(&f, &b, &evict), CONNLIMIT_REFUSE_FULL);
	assert_null(evict);
	assert_int_equal(atomic_load(&f.srv.nconns), 1);
	/* ... and b's count was given back with it. */
	connlimit_release(&f.srv, &a);
	assert_int_equal(admit(&f, &b, &evict), CONNLIMIT_ADMIT);
	assert_null(evict);
	connlimit_free(f.srv.conns);
}

static void
test_a_full_backlog_evicts_at_home(void **state)
{
	struct fixture f;
	struct connlimit_addr a;
	struct worker *evict;

	(void)state;
	fixture_init(&f, 10, 1000);
	addr4("192.0.2.1", &a);
	/* 100 open, the second worker owes 64 and holds the oldest idle. */
	atomic_store(&f.srv.nconns, 100);
	atomic_store(&f.w[1].evict_pending, 64);
	atomic_store(&f.w[1].idle_since, 1000);
	atomic_store(&f.w[0].idle_since, 5000);
	/* It is asked no more: the acceptor closes its own oldest. */
	assert_int_equal(admit(&f, &a, &evict), CONNLIMIT_ADMIT);
	assert_ptr_equal(evict, &f.w[0]);
	assert_int_equal(atomic_load(&f.w[1].evict_pending), 64);
	/* Nothing idle at home: refused, however idle the other is. */
	atomic_store(&f.w[0].evict_pending, 0);
	atomic_store(&f.w[0].idle_since, LLONG_MAX);
	assert_int_equal(admit(&f, &a, &evict), CONNLIMIT_REFUSE_FULL);
	assert_null(evict);
	assert_int_equal(atomic_load(&f.srv.nconns), 101);
	connlimit_free(f.srv.conns);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_an_address_holds_its_share_and_no_more),
		cmocka_unit_test(test_many_addresses_are_counted_apart),
		cmocka_unit_test(test_one_address_is_ipv4_or_an_ipv6_64),
		cmocka_unit_test(test_the_limit_evicts_the_longest_idle),
		cmocka_unit_test(test_room_being_made_is_not_asked_twice),
		cmocka_unit_test(test_nothing_idle_refuses_and_uncounts),
		cmocka_unit_test(test_a_full_backlog_evicts_at_home),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
