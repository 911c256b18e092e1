/* test_conf.c - unit tests for src/common/conf.{h,c}. */
#include <errno.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "conf.h"
#include "util.h"

#define CONFDIR "/etc/kt-test"

/* What the warn callback was given. */
static char warned[4096];
static int nwarned;

static void
warn_collect(const char *msg)
{
	size_t n = strlen(warned);

	nwarned++;
	snprintf(warned + n, sizeof(warned) - n, "%s\n", msg);
}

static int
reset_warn(void **state)
{
	(void)state;
	warned[0] = '\0';
	nwarned = 0;
	return 0;
}

/* Parse a NUL-terminated document as "test.conf" under CONFDIR. */
static int
parse(const char *text, struct kt_conf **c, char *err, size_t errlen)
{
	err[0] = '\0';
	return conf_parse(text, strlen(text), CONFDIR, "test.conf", c,
	    warn_collect, err, errlen);
}

/* The document must be refused with every one of the fragments in err. */
static void
assert_refused(const char *text, const char *frag1, const char *frag2)
{
	struct kt_conf *c = (struct kt_conf *)1;
	char err[512];

	if (parse(text, &c, err, sizeof(err)) != -1) {
		conf_free(c);
		fail_msg("accepted: %s", text);
	}
	assert_null(c);
	if (strstr(err, frag1) == NULL)
		fail_msg("\"%s\" not in \"%s\" (for %s)", frag1, err, text);
	if (frag2 != NULL && strstr(err, frag2) == NULL)
		fail_msg("\"%s\" not in \"%s\" (for %s)", frag2, err, text);
}

static void
test_new_default(void **state)
{
	struct kt_conf *c;
	json_t *j;

	(void)state;
	c = conf_new_default(CONFDIR, "kt.example.com");
	assert_non_null(c);
	assert_string_equal(c->confdir, CONFDIR);
	assert_string_equal(c->path, CONFDIR "/keytrustee.conf");
	assert_string_equal(c->ssl_certificate,
	    CONFDIR "/.ssl/ssl-cert-keytrustee.pem");
	assert_string_equal(c->ssl_private_key,
	    CONFDIR "/.ssl/ssl-cert-keytrustee-pk.pem");
	assert_null(c->ssl_private_key_password_script);
	assert_null(c->ssl_ca);
	assert_string_equal(c->tls_min_version_name, "tlsv1.2");
	assert_int_equal(c->tls_min_version, TLS1_2_VERSION);
	assert_string_equal(c->ssl_ciphers, "");
	assert_int_equal(c->port, 11371);
	assert_int_equal(c->db_port, 11381);
	assert_null(c->db_connect);
	assert_string_equal(c->mail_url, "smtp://localhost:25");
	assert_string_equal(c->hostname, "kt.example.com");

	/* The document holds the relative paths, so a copied dir is whole. */
	j = c->json;
	assert_true(json_is_object(j));
	assert_string_equal(json_string_value(json_object_get(j,
	    "SSL_CERTIFICATE")), ".ssl/ssl-cert-keytrustee.pem");
	assert_string_equal(json_string_value(json_object_get(j,
	    "SSL_PRIVATE_KEY")), ".ssl/ssl-cert-keytrustee-pk.pem");
	assert_string_equal(json_string_value(json_object_get(j,
	    "TLS_MIN_VERSION")), "tlsv1.2");
	assert_int_equal(json_integer_value(json_object_get(j, "PORT")),
	    11371);
	assert_int_equal(json_integer_value(json_object_get(j, "DB_PORT")),
	    11381);
	assert_string_equal(json_string_value(json_object_get(j,
	    "HOSTNAME")), "kt.example.com");
	assert_null(json_object_get(j, "DB_CONNECT"));
	conf_free(c);

	/* No hostname given: the machine's. */
	c = conf_new_default(CONFDIR, NULL);
	assert_non_null(c);
	assert_non_null(c->hostname);
	assert_true(c->hostname[0] != '\0');
	conf_free(c);
	conf_free(NULL);
}

static void
test_parse_good(void **state)
{
	const char *doc =
	    "{\n"
	    "    \"SSL_CERTIFICATE\": \"/srv/cert.pem\",\n"
	    "    \"SSL_PRIVATE_KEY\": \"keys/pk.pem\",\n"
	    "    \"SSL_PRIVATE_KEY_PASSWORD_SCRIPT\": \"/bin/echo -n pw\",\n"
	    "    \"SSL_CA\": \"ca.pem\",\n"
	    "    \"TLS_MIN_VERSION\": \"tlsv1.3\",\n"
	    "    \"SSL_CIPHERS\": \"HIGH:!aNULL\",\n"
	    "    \"PORT\": 443,\n"
	    "    \"DB_PORT\": 5432,\n"
	    "    \"DB_CONNECT\": \"host=/tmp port=5432 dbname=keytrustee\",\n"
	    "    \"MAIL_URL\": \"smtp://mail:25\",\n"
	    "    \"HOSTNAME\": \"kts.example.org\"\n"
	    "}\n";
	struct kt_conf *c = NULL;
	char err[256];

	(void)state;
	assert_int_equal(parse(doc, &c, err, sizeof(err)), 0);
	assert_non_null(c);
	assert_string_equal(c->path, CONFDIR "/keytrustee.conf");
	assert_string_equal(c->ssl_certificate, "/srv/cert.pem");
	/* Relative paths are taken from the config dir. */
	assert_string_equal(c->ssl_private_key, CONFDIR "/keys/pk.pem");
	assert_string_equal(c->ssl_ca, CONFDIR "/ca.pem");
	/* ... but the password script is a command, not a path. */
	assert_string_equal(c->ssl_private_key_password_script,
	    "/bin/echo -n pw");
	assert_string_equal(c->tls_min_version_name, "tlsv1.3");
	assert_int_equal(c->tls_min_version, TLS1_3_VERSION);
	assert_string_equal(c->ssl_ciphers, "HIGH:!aNULL");
	assert_int_equal(c->port, 443);
	assert_int_equal(c->db_port, 5432);
	assert_string_equal(c->db_connect,
	    "host=/tmp port=5432 dbname=keytrustee");
	assert_string_equal(c->mail_url, "smtp://mail:25");
	assert_string_equal(c->hostname, "kts.example.org");
	assert_non_null(c->json);
	assert_int_equal(nwarned, 0);
	conf_free(c);
}

static void
test_parse_empty_object_defaults(void **state)
{
	struct kt_conf *c = NULL;
	char err[256];

	(void)state;
	assert_int_equal(parse("{}", &c, err, sizeof(err)), 0);
	assert_int_equal(c->port, KT_DEFAULT_PORT);
	assert_int_equal(c->db_port, KT_DEFAULT_DB_PORT);
	assert_int_equal(c->tls_min_version, TLS1_2_VERSION);
	assert_string_equal(c->ssl_certificate,
	    CONFDIR "/.ssl/ssl-cert-keytrustee.pem");
	assert_null(c->ssl_ca);
	assert_null(c->db_connect);
	conf_free(c);

	/* null clears an optional string. */
	assert_int_equal(parse("{\"SSL_CA\": null, \"DB_CONNECT\": null}", &c,
	    err, sizeof(err)), 0);
	assert_null(c->ssl_ca);
	assert_null(c->db_connect);
	conf_free(c);
}

static void
test_port_validation(void **state)
{
	struct kt_conf *c = NULL;
	char err[256];

	(void)state;
	assert_refused("{\n\"PORT\": 0\n}", "test.conf:2: PORT:", "1 to 65535");
	assert_refused("{\"PORT\": 70000}", "test.conf:1: PORT:", "65535");
	assert_refused("{\"PORT\": 65536}", "PORT", NULL);
	assert_refused("{\"PORT\": -1}", "PORT", NULL);
	assert_refused("{\"PORT\": \"11371\"}", "test.conf:1: PORT:",
	    "integer");
	assert_refused("{\"PORT\": 11371.0}", "PORT", "integer");
	assert_refused("{\"PORT\": true}", "PORT", NULL);
	assert_refused("{\"PORT\": null}", "PORT", NULL);
	assert_refused("{\"PORT\": [1]}", "PORT", NULL);
	assert_refused("{\"PORT\": 4294967297}", "PORT", NULL);
	assert_refused("{\"DB_PORT\": 0}", "test.conf:1: DB_PORT:", NULL);
	assert_refused("{\"DB_PORT\": \"5432\"}", "DB_PORT", NULL);

	assert_int_equal(parse("{\"PORT\": 1, \"DB_PORT\": 65535}", &c, err,
	    sizeof(err)), 0);
	assert_int_equal(c->port, 1);
	assert_int_equal(c->db_port, 65535);
	conf_free(c);
}

/* AUTH_FAILURES_PER_MINUTE: a count, defaulted, checked, never a string. */
static void
test_auth_failures_per_minute(void **state)
{
	struct kt_conf *c;
	char err[512];

	(void)state;
	assert_int_equal(parse("{}", &c, err, sizeof(err)), 0);
	assert_int_equal(c->auth_failures_per_minute, KT_DEFAULT_AUTH_FAILURES);
	conf_free(c);
	assert_int_equal(parse("{\"AUTH_FAILURES_PER_MINUTE\": 7}", &c, err,
			     sizeof(err)),
	    0);
	assert_int_equal(c->auth_failures_per_minute, 7);
	assert_int_equal(nwarned, 0);
	conf_free(c);
	assert_refused("{\"AUTH_FAILURES_PER_MINUTE\": 0}",
	    "test.conf:1: AUTH_FAILURES_PER_MINUTE", "from 1 to 1000000");
	assert_refused("{\"AUTH_FAILURES_PER_MINUTE\": 1000001}",
	    "AUTH_FAILURES_PER_MINUTE", "from 1 to 1000000");
	assert_refused("{\n \"AUTH_FAILURES_PER_MINUTE\": \"60\"}",
	    "test.conf:2: AUTH_FAILURES_PER_MINUTE", "integer");
	assert_refused("{\"AUTH_FAILURES_PER_MINUTE\": null}",
	    "AUTH_FAILURES_PER_MINUTE", "integer");
	assert_refused("{\"AUTH_FAILURES_PER_MINUTE\": 1.5}",
	    "AUTH_FAILURES_PER_MINUTE", "integer");
}

/*
 * AUDIT_READ_FLUSH_MS: milliseconds, 0 allowed (a read's row flushed
 * before its answer), defaulted, bounded, never a string.
 */
static void
test_audit_read_flush_ms(void **state)
{
	struct kt_conf *c;
	char err[512];

	(void)state;
	assert_int_equal(parse("{}", &c, err, sizeof(err)), 0);
	assert_int_equal(
	    c->audit_read_flush_ms, KT_DEFAULT_AUDIT_READ_FLUSH_MS);
	conf_free(c);
	assert_int_equal(
	    parse("{\"AUDIT_READ_FLUSH_MS\": 0}", &c, err, sizeof(err)), 0);
	assert_int_equal(c->audit_read_flush_ms, 0);
	conf_free(c);
	assert_int_equal(parse("{\"AUDIT_READ_FLUSH_MS\": 10000}", &c, err,
			     sizeof(err)),
	    0);
	assert_int_equal(c->audit_read_flush_ms, 10000);
	assert_int_equal(nwarned, 0);
	conf_free(c);
	assert_refused("{\"AUDIT_READ_FLUSH_MS\": -1}",
	    "test.conf:1: AUDIT_READ_FLUSH_MS", "from 0 to 10000");
	assert_refused("{\"AUDIT_READ_FLUSH_MS\": 10001}",
	    "AUDIT_READ_FLUSH_MS", "from 0 to 10000");
	assert_refused("{\n \"AUDIT_READ_FLUSH_MS\": \"100\"}",
	    "test.conf:2: AUDIT_READ_FLUSH_MS", "milliseconds");
	assert_refused("{\"AUDIT_READ_FLUSH_MS\": null}",
	    "AUDIT_READ_FLUSH_MS", "integer");
	assert_refused("{\"AUDIT_READ_FLUSH_MS\": 0.5}",
	    "AUDIT_READ_FLUSH_MS", "integer");
}

/* BACKUP_INTERVAL: seconds, hourly by default, a count like the others. */
static void
test_backup_interval(void **state)
{
	struct kt_conf *c;
	char err[512];

	(void)state;
	assert_int_equal(parse("{}", &c, err, sizeof(err)), 0);
	assert_int_equal(c->backup_interval, 3600);
	conf_free(c);
	assert_int_equal(
	    parse("{\"BACKUP_INTERVAL\": 1800}", &c, err, sizeof(err)), 0);
	assert_int_equal(c->backup_interval, 1800);
	assert_int_equal(nwarned, 0);
	conf_free(c);
	assert_refused("{\"BACKUP_INTERVAL\": 0}",
	    "test.conf:1: BACKUP_INTERVAL", "from 1 to 1000000");
	assert_refused("{\"BACKUP_INTERVAL\": \"1h\"}", "BACKUP_INTERVAL",
	    "integer");
}

static void
test_max_connections_per_address(void **state)
{
	struct kt_conf *c = NULL;
	char err[256];

	(void)state;
	assert_int_equal(parse("{}", &c, err, sizeof(err)), 0);
	assert_int_equal(c->max_conns_per_addr, KT_DEFAULT_MAX_CONNS_PER_ADDR);
	assert_int_equal(c->max_conns_per_addr, 512);
	conf_free(c); /* an integer key is not freed as a string */
	assert_int_equal(parse("{\"MAX_CONNECTIONS_PER_ADDRESS\": 50}", &c,
	    err, sizeof(err)), 0);
	assert_int_equal(c->max_conns_per_addr, 50);
	conf_free(c);
	assert_refused("{\n\"MAX_CONNECTIONS_PER_ADDRESS\": 0\n}",
	    "test.conf:2: MAX_CONNECTIONS_PER_ADDRESS:", "1 to 1000000");
	assert_refused("{\"MAX_CONNECTIONS_PER_ADDRESS\": 1000001}",
	    "MAX_CONNECTIONS_PER_ADDRESS", "1 to 1000000");
	assert_refused("{\"MAX_CONNECTIONS_PER_ADDRESS\": \"50\"}",
	    "MAX_CONNECTIONS_PER_ADDRESS", "integer");
	assert_refused("{\"MAX_CONNECTIONS_PER_ADDRESS\": null}",
	    "MAX_CONNECTIONS_PER_ADDRESS", NULL);
	assert_refused("{\"MAX_CONNECTIONS_PER_ADDRESS\": 5.5}",
	    "MAX_CONNECTIONS_PER_ADDRESS", "integer");
}

static void
test_tls_version_validation(void **state)
{
	static const struct {
		const char *name;
		int version;
	} ok[] = {
		{ "tlsv1", TLS1_VERSION },
		{ "tlsv1.1", TLS1_1_VERSION },
		{ "tlsv1.2", TLS1_2_VERSION },
		{ "tlsv1.3", TLS1_3_VERSION },
	};
	struct kt_conf *c = NULL;
	char doc[128], err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(doc, sizeof(doc), "{\"TLS_MIN_VERSION\": \"%s\"}",
		    ok[i].name);
		assert_int_equal(parse(doc, &c, err, sizeof(err)), 0);
		assert_int_equal(c->tls_min_version, ok[i].version);
		assert_string_equal(c->tls_min_version_name, ok[i].name);
		conf_free(c);
	}
	assert_refused("{\n  \"PORT\": 1,\n  \"TLS_MIN_VERSION\": \"tlsv9\"\n}",
	    "test.conf:3: TLS_MIN_VERSION:", "tlsv9");
	assert_refused("{\"TLS_MIN_VERSION\": \"TLSv1.2\"}", "TLS_MIN_VERSION",
	    NULL);
	assert_refused("{\"TLS_MIN_VERSION\": \"\"}", "TLS_MIN_VERSION", NULL);
	assert_refused("{\"TLS_MIN_VERSION\": 1.2}", "TLS_MIN_VERSION",
	    "string");
	assert_refused("{\"TLS_MIN_VERSION\": null}", "TLS_MIN_VERSION", NULL);
}

static void
test_mail_keys(void **state)
{
	struct kt_conf *c = NULL;
	char err[256];

	(void)state;
	assert_int_equal(parse("{\"MAIL_URL\": \"smtps://u:p@relay.example.com:465\", "
	    "\"HOSTNAME\": \"kts01.example.com\"}", &c, err, sizeof(err)), 0);
	assert_string_equal(c->mail_url, "smtps://u:p@relay.example.com:465");
	assert_string_equal(c->hostname, "kts01.example.com");
	conf_free(c);
	assert_int_equal(parse("{}", &c, err, sizeof(err)), 0);
	assert_string_equal(c->mail_url, "smtp://localhost:25");
	conf_free(c);
	assert_refused("{\n  \"MAIL_URL\": \"http://localhost\"\n}",
	    "test.conf:2: MAIL_URL:", "smtp://");
	assert_refused("{\"MAIL_URL\": \"smtp://\"}", "MAIL_URL", "no host");
	assert_refused("{\"MAIL_URL\": \"\"}", "MAIL_URL", "empty");
	assert_refused("{\"MAIL_URL\": \"smtp://a b\"}", "MAIL_URL", "spaces");
	assert_refused("{\"HOSTNAME\": \"a\\r\\nBcc: x\"}", "HOSTNAME",
	    "controls");
	assert_refused("{\"HOSTNAME\": \"x@y\"}", "HOSTNAME", "host name");
	assert_refused("{\"HOSTNAME\": \"\"}", "HOSTNAME", "empty");
}

static void
test_tls_version_map(void **state)
{
	(void)state;
	assert_int_equal(conf_tls_version("tlsv1"), TLS1_VERSION);
	assert_int_equal(conf_tls_version("tlsv1.1"), TLS1_1_VERSION);
	assert_int_equal(conf_tls_version("tlsv1.2"), TLS1_2_VERSION);
	assert_int_equal(conf_tls_version("tlsv1.3"), TLS1_3_VERSION);
	assert_int_equal(conf_tls_version("tlsv1.4"), -1);
	assert_int_equal(conf_tls_version("sslv3"), -1);
	assert_int_equal(conf_tls_version(""), -1);
	assert_int_equal(conf_tls_version("tlsv1.2 "), -1);
}

static void
test_string_validation(void **state)
{
	(void)state;
	assert_refused("{\"HOSTNAME\": 5}", "test.conf:1: HOSTNAME:", "string");
	assert_refused("{\"SSL_CERTIFICATE\": 1}", "SSL_CERTIFICATE",
	    "string");
	assert_refused("{\"SSL_PRIVATE_KEY\": {}}", "SSL_PRIVATE_KEY", NULL);
	assert_refused("{\"SSL_CA\": [\"a\"]}", "SSL_CA", NULL);
	assert_refused("{\"SSL_CIPHERS\": false}", "SSL_CIPHERS", NULL);
	assert_refused("{\"DB_CONNECT\": 3}", "DB_CONNECT", NULL);
	assert_refused("{\"MAIL_URL\": 25}", "MAIL_URL", NULL);
	assert_refused("{\"SSL_PRIVATE_KEY_PASSWORD_SCRIPT\": 7}",
	    "SSL_PRIVATE_KEY_PASSWORD_SCRIPT", NULL);
	/* A path may not be empty. */
	assert_refused("{\"SSL_CERTIFICATE\": \"\"}", "SSL_CERTIFICATE",
	    "empty");
	assert_refused("{\"SSL_CA\": \"\"}", "SSL_CA", "empty");
}

/*
 * Only the optional keys (SSL_CA, DB_CONNECT, SSL_PRIVATE_KEY_PASSWORD_SCRIPT)
 * may be null; a null required key must be refused by name, not leave a
 * NULL path for the server to stat.
 */
static void
test_null_required_string_refused(void **state)
{
	(void)state;
	assert_refused("{\"SSL_CERTIFICATE\": null}", "SSL_CERTIFICATE", NULL);
	assert_refused("{\"SSL_PRIVATE_KEY\": null}", "SSL_PRIVATE_KEY", NULL);
	assert_refused("{\"HOSTNAME\": null}", "HOSTNAME", NULL);
}

static void
test_nul_bytes(void **state)
{
	static const char doc[] = "{\"HOSTNAME\": \"a\0b\"}";
	struct kt_conf *c = (struct kt_conf *)1;
	char err[256];

	(void)state;
	/* A raw NUL inside the document. */
	assert_int_equal(conf_parse(doc, sizeof(doc) - 1, CONFDIR, "test.conf",
	    &c, NULL, err, sizeof(err)), -1);
	assert_null(c);
	assert_non_null(strstr(err, "test.conf"));
	assert_non_null(strstr(err, "NUL"));
	/* An escaped NUL in a value or a key. */
	assert_refused("{\"HOSTNAME\": \"a\\u0000b\"}", "test.conf:1:", NULL);
	assert_refused("{\"HOST\\u0000NAME\": \"a\"}", "test.conf:1:", NULL);
}

static void
test_malformed_json(void **state)
{
	(void)state;
	assert_refused("{\n  \"PORT\": 1,\n  \"HOSTNAME\": \"x\",\n  ,\n}\n",
	    "test.conf:4: invalid JSON", NULL);
	assert_refused("{\n\"PORT\": 1\n", "test.conf:3: invalid JSON", NULL);
	assert_refused("{\"PORT\": 1} trailing", "test.conf:1: invalid JSON",
	    NULL);
	assert_refused("", "test.conf:", "invalid JSON");
	assert_refused("{'PORT': 1}", "test.conf:1: invalid JSON", NULL);
	assert_refused("{\"PORT\": 1,}", "invalid JSON", NULL);
	assert_refused("{\"HOSTNAME\": \"\xff\xfe\"}", "invalid JSON", NULL);
}

static void
test_root_not_object(void **state)
{
	(void)state;
	assert_refused("[]", "test.conf:1:", "JSON object");
	assert_refused("[{\"PORT\": 1}]", "JSON object", NULL);
	assert_refused("\"PORT\"", "test.conf:1:", NULL);
	assert_refused("42", "test.conf:1:", NULL);
	assert_refused("null", "test.conf:1:", NULL);
}

static void
test_duplicate_keys(void **state)
{
	(void)state;
	assert_refused("{\n\"PORT\": 1,\n\"PORT\": 2\n}", "test.conf:3:",
	    "duplicate");
	assert_refused("{\"X\": 1, \"X\": 1}", "duplicate", NULL);
}

static void
test_unknown_keys_warned(void **state)
{
	struct kt_conf *c = NULL;
	char err[256];

	(void)state;
	assert_int_equal(parse("{\n  \"PORT\": 2000,\n  \"POTR\": 1,\n"
	    "  \"extra\": {\"nested\": [1, 2]}\n}", &c, err, sizeof(err)), 0);
	assert_non_null(c);
	assert_int_equal(c->port, 2000);
	assert_int_equal(nwarned, 2);
	assert_non_null(strstr(warned, "test.conf:3: POTR: unknown key"));
	assert_non_null(strstr(warned, "test.conf:4: extra: unknown key"));
	/* Kept in the document, so a save does not lose them. */
	assert_non_null(json_object_get(c->json, "POTR"));
	conf_free(c);

	/* Keys are case-sensitive. */
	assert_int_equal(parse("{\"port\": 1}", &c, err, sizeof(err)), 0);
	assert_int_equal(c->port, KT_DEFAULT_PORT);
	assert_int_equal(nwarned, 3);
	conf_free(c);

	/* No callback: still not fatal. */
	assert_int_equal(conf_parse("{\"FOO\": 1}", 10, CONFDIR, "t", &c, NULL,
	    err, sizeof(err)), 0);
	conf_free(c);
}

/*
 * The line of an error is that of the top-level key, not of an earlier
 * value or nested key with the same text: "PORT" first appears as
 * HOSTNAME's value on line 2, the bad PORT is on line 3.
 */
static void
test_error_line_not_fooled_by_values(void **state)
{
	(void)state;
	assert_refused("{\n\"HOSTNAME\": \"PORT\",\n\"PORT\": 0\n}",
	    "test.conf:3: PORT:", NULL);
}

static void
test_set_values(void **state)
{
	struct kt_conf *c;

	(void)state;
	c = conf_new_default(CONFDIR, "h");
	assert_non_null(c);

	assert_int_equal(conf_set_int(c, "PORT", 8443), 0);
	assert_int_equal(c->port, 8443);
	assert_int_equal(json_integer_value(json_object_get(c->json, "PORT")),
	    8443);
	errno = 0;
	assert_int_equal(conf_set_int(c, "PORT", 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(conf_set_int(c, "PORT", 70000), -1);
	assert_int_equal(conf_set_str(c, "PORT", "80"), -1);
	/* A refused value changes neither the struct nor the document. */
	assert_int_equal(c->port, 8443);
	assert_int_equal(json_integer_value(json_object_get(c->json, "PORT")),
	    8443);

	assert_int_equal(conf_set_str(c, "TLS_MIN_VERSION", "tlsv1.3"), 0);
	assert_int_equal(c->tls_min_version, TLS1_3_VERSION);
	assert_string_equal(c->tls_min_version_name, "tlsv1.3");
	errno = 0;
	assert_int_equal(conf_set_str(c, "TLS_MIN_VERSION", "tlsv9"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(c->tls_min_version, TLS1_3_VERSION);
	assert_string_equal(json_string_value(json_object_get(c->json,
	    "TLS_MIN_VERSION")), "tlsv1.3");

	assert_int_equal(conf_set_int(c, "HOSTNAME", 5), -1);
	assert_string_equal(c->hostname, "h");
	assert_int_equal(conf_set_str(c, "SSL_CERTIFICATE", ""), -1);

	/* Relative path: resolved in the struct, kept relative on disk. */
	assert_int_equal(conf_set_str(c, "SSL_CA", "ca.pem"), 0);
	assert_string_equal(c->ssl_ca, CONFDIR "/ca.pem");
	assert_string_equal(json_string_value(json_object_get(c->json,
	    "SSL_CA")), "ca.pem");
	/* NULL removes. */
	assert_int_equal(conf_set_str(c, "SSL_CA", NULL), 0);
	assert_null(c->ssl_ca);
	assert_null(json_object_get(c->json, "SSL_CA"));

	assert_int_equal(conf_set_str(c, "DB_CONNECT", "port=5"), 0);
	assert_string_equal(c->db_connect, "port=5");

	/* Unknown keys are stored as given. */
	assert_int_equal(conf_set_str(c, "X_CUSTOM", "v"), 0);
	assert_string_equal(json_string_value(json_object_get(c->json,
	    "X_CUSTOM")), "v");
	conf_free(c);
}

static void
test_save_load_roundtrip(void **state)
{
	char dir[] = "/tmp/kt-test-conf.XXXXXX", path[PATH_MAX], err[512];
	char want[PATH_MAX + 16];
	struct kt_conf *c, *l = NULL;
	struct stat st;
	mode_t old;

	(void)state;
	assert_non_null(mkdtemp(dir));
	c = conf_new_default(dir, "round.example");
	assert_non_null(c);
	assert_int_equal(conf_set_int(c, "PORT", 12345), 0);
	assert_int_equal(conf_set_int(c, "DB_PORT", 12346), 0);
	assert_int_equal(conf_set_str(c, "TLS_MIN_VERSION", "tlsv1.3"), 0);
	assert_int_equal(conf_set_str(c, "DB_CONNECT",
	    "host=/tmp password=secret"), 0);
	assert_int_equal(conf_set_str(c, "SSL_CA", "/abs/ca.pem"), 0);
	assert_int_equal(conf_set_str(c, "UNKNOWN_KEPT", "x"), 0);
	old = umask(0);
	assert_int_equal(conf_save(c), 0);
	umask(old);

	assert_int_equal(path_join(path, sizeof(path), dir, KT_CONF_FILE), 0);
	assert_string_equal(c->path, path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	reset_warn(NULL);
	assert_int_equal(conf_load(dir, &l, warn_collect, err, sizeof(err)),
	    0);
	assert_non_null(l);
	assert_string_equal(l->path, path);
	assert_string_equal(l->ssl_certificate, c->ssl_certificate);
	assert_string_equal(l->ssl_private_key, c->ssl_private_key);
	assert_string_equal(l->ssl_ca, "/abs/ca.pem");
	assert_int_equal(l->port, 12345);
	assert_int_equal(l->db_port, 12346);
	assert_int_equal(l->tls_min_version, TLS1_3_VERSION);
	assert_string_equal(l->db_connect, "host=/tmp password=secret");
	assert_string_equal(l->hostname, "round.example");
	assert_string_equal(l->mail_url, "smtp://localhost:25");
	assert_string_equal(l->ssl_ciphers, "");
	assert_int_equal(nwarned, 1);
	assert_non_null(strstr(warned, "UNKNOWN_KEPT"));
	assert_true(json_equal(c->json, l->json));
	conf_free(l);

	/* A bad value on disk names the file and the line. */
	assert_int_equal(file_write_atomic(path, "{\n\"PORT\": \"x\"\n}", 15,
	    0600), 0);
	assert_int_equal(conf_load(dir, &l, NULL, err, sizeof(err)), -1);
	assert_null(l);
	snprintf(want, sizeof(want), "%s:2: PORT:", path);
	assert_non_null(strstr(err, want));

	/* A missing file names the path and the reason. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(conf_load(dir, &l, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, strerror(ENOENT)));

	conf_free(c);
	assert_int_equal(rmdir(dir), 0);
}

static void
test_default_dir(void **state)
{
	char *d;

	(void)state;
	assert_int_equal(setenv("KEYTRUSTEE_HOME", "/srv/kt", 1), 0);
	d = conf_default_dir();
	assert_non_null(d);
	assert_string_equal(d, "/srv/kt/.keytrustee");
	free(d);

	assert_int_equal(setenv("KEYTRUSTEE_HOME", "", 1), 0);
	d = conf_default_dir();
	assert_string_equal(d, "/var/lib/keytrustee/.keytrustee");
	free(d);

	assert_int_equal(unsetenv("KEYTRUSTEE_HOME"), 0);
	d = conf_default_dir();
	assert_string_equal(d, KT_DEFAULT_HOME "/.keytrustee");
	free(d);
}

/* conf_parse reads only len bytes: the text need not be terminated. */
static void
test_unterminated_text(void **state)
{
	struct kt_conf *c = NULL;
	char err[512], *buf;

	(void)state;
	buf = malloc(2);
	assert_non_null(buf);
	memcpy(buf, "{}", 2);
	assert_int_equal(conf_parse(buf, 2, CONFDIR, "t", &c, NULL, err,
	    sizeof(err)), 0);
	assert_int_equal(c->port, KT_DEFAULT_PORT);
	conf_free(c);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unterminated_text),
		cmocka_unit_test_setup(test_new_default, reset_warn),
		cmocka_unit_test_setup(test_parse_good, reset_warn),
		cmocka_unit_test_setup(test_parse_empty_object_defaults,
		    reset_warn),
		cmocka_unit_test_setup(test_port_validation, reset_warn),
		cmocka_unit_test_setup(test_max_connections_per_address,
		    reset_warn),
		cmocka_unit_test_setup(test_auth_failures_per_minute,
		    reset_warn),
		cmocka_unit_test_setup(test_backup_interval, reset_warn),
		cmocka_unit_test_setup(test_audit_read_flush_ms, reset_warn),
		cmocka_unit_test_setup(test_tls_version_validation,
		    reset_warn),
		cmocka_unit_test_setup(test_tls_version_map, reset_warn),
		cmocka_unit_test_setup(test_string_validation, reset_warn),
		cmocka_unit_test_setup(test_nul_bytes, reset_warn),
		cmocka_unit_test_setup(test_malformed_json, reset_warn),
		cmocka_unit_test_setup(test_root_not_object, reset_warn),
		cmocka_unit_test_setup(test_duplicate_keys, reset_warn),
		cmocka_unit_test_setup(test_unknown_keys_warned, reset_warn),
		cmocka_unit_test_setup(test_set_values, reset_warn),
		cmocka_unit_test_setup(test_save_load_roundtrip, reset_warn),
		cmocka_unit_test_setup(test_default_dir, reset_warn),
		cmocka_unit_test_setup(test_mail_keys, reset_warn),
		/* Known bugs, reported; they fail until conf.c is fixed. */
		cmocka_unit_test_setup(test_null_required_string_refused,
		    reset_warn),
		cmocka_unit_test_setup(test_error_line_not_fooled_by_values,
		    reset_warn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
