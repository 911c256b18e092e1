/*
 * test_verdicts.c - unit tests for the checks that return verdicts instead
 * of answering: the HA write gate (ha.c) and the request signature's
 * header (authhdr.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "authhdr.h"
#include "ha.h"

static void
test_active_takes_writes(void **state)
{
	struct ha_state st;
	struct verdict v;

	(void)state;
	memset(&st, 0, sizeof(st));
	assert_int_equal(ha_gate(&st, 11371, &v), 0);
	/* Synchronous replication with its standby streaming. */
	st.r.sync_required = st.r.sync_streaming = 1;
	assert_int_equal(ha_gate(&st, 11371, &v), 0);
}

static void
test_active_without_its_sync_standby_refuses(void **state)
{
	struct ha_state st;
	struct verdict v;

	(void)state;
	memset(&st, 0, sizeof(st));
	st.r.sync_required = 1;
	assert_int_equal(ha_gate(&st, 11371, &v), -1);
	assert_int_equal(v.status, 503);
	assert_string_equal(v.code, "no_sync_standby");
	assert_int_equal(v.retry_after, 5);
	assert_null(v.active);
	assert_non_null(strstr(v.msg, "reads still work"));
}

static void
test_passive_names_the_active(void **state)
{
	struct ha_state st;
	struct verdict v;

	(void)state;
	memset(&st, 0, sizeof(st));
	st.r.passive = 1;
	snprintf(st.r.active_host, sizeof(st.r.active_host), "kts01.example");
	assert_int_equal(ha_gate(&st, 11371, &v), -1);
	assert_int_equal(v.status, 503);
	assert_string_equal(v.code, "passive");
	assert_string_equal(v.active, "https://kts01.example:11371");
	snprintf(st.r.active_host, sizeof(st.r.active_host), "2001:db8::1");
	ha_gate(&st, 443, &v);
	assert_string_equal(v.active, "https://[2001:db8::1]:443");
	/* A socket directory or nothing: not a host a client can use. */
	snprintf(st.r.active_host, sizeof(st.r.active_host), "/var/run/pg");
	ha_gate(&st, 443, &v);
	assert_string_equal(v.active, "unknown");
	st.r.active_host[0] = '\0';
	ha_gate(&st, 443, &v);
	assert_string_equal(v.active, "unknown");
}

#define FP "0123456789abcdef0123456789ABCDEF01234567"
#define SIG "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static void
test_authhdr_parse(void **state)
{
	struct authhdr h;

	(void)state;
	assert_int_equal(authhdr_parse("KT1-HMAC-SHA256 fp=" FP
	    ",ts=1765065600,sig=" SIG, &h), 0);
	assert_string_equal(h.fpr, "0123456789ABCDEF0123456789ABCDEF01234567");
	assert_string_equal(h.ts, "1765065600");
	assert_true(h.tsval == 1765065600LL);
	assert_int_equal(h.sig[0], 0x00);
	assert_int_equal(h.sig[31], 0xff);
	/* Spaces after the commas are allowed. */
	assert_int_equal(authhdr_parse("KT1-HMAC-SHA256 fp=" FP
	    ", ts=1, sig=" SIG, &h), 0);
}

static void
test_authhdr_refuses(void **state)
{
	static const char *const bad[] = {
	    "",
	    "Bearer x",
	    "kt1-hmac-sha256 fp=" FP ",ts=1,sig=" SIG,
	    "KT1-HMAC-SHA256  fp=" FP ",ts=1,sig=" SIG,
	    "KT1-HMAC-SHA256 fp=" FP "0,ts=1,sig=" SIG,
	    "KT1-HMAC-SHA256 fp=0123,ts=1,sig=" SIG,
	    "KT1-HMAC-SHA256 fp=" FP ",ts=,sig=" SIG,
	    "KT1-HMAC-SHA256 fp=" FP ",ts=-1,sig=" SIG,
	    "KT1-HMAC-SHA256 fp=" FP ",ts=1234567890123,sig=" SIG,
	    "KT1-HMAC-SHA256 fp=" FP ",ts=1,sig=" SIG "00",
	    "KT1-HMAC-SHA256 fp=" FP ",ts=1,sig=" SIG "x",
	    "KT1-HMAC-SHA256 fp=" FP ",ts=1,sig=0011",
	    "KT1-HMAC-SHA256 ts=1,fp=" FP ",sig=" SIG,
	    "KT1-HMAC-SHA256 fp=" FP ",ts=1",
	};
	struct authhdr h;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(authhdr_parse(bad[i], &h), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_active_takes_writes),
	    cmocka_unit_test(test_active_without_its_sync_standby_refuses),
	    cmocka_unit_test(test_passive_names_the_active),
	    cmocka_unit_test(test_authhdr_parse),
	    cmocka_unit_test(test_authhdr_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
