/* conf.h - keytrustee.conf: the server's JSON configuration file. */
#ifndef KT_CONF_H
#define KT_CONF_H

#include <stddef.h>

#define KT_CONF_FILE "keytrustee.conf"
#define KT_DEFAULT_PORT 11371
#define KT_DEFAULT_DB_PORT 11381
#define KT_DEFAULT_HOME "/var/lib/keytrustee"
#define KT_CONF_MAX (1024 * 1024)
/* AUTH_FAILURES_PER_MINUTE: its default, and the largest a count may be. */
#define KT_DEFAULT_AUTH_FAILURES 60
#define KT_CONF_COUNT_MAX 1000000
/* AUDIT_CHAIN_INTERVAL's default, in seconds. */
#define KT_DEFAULT_AUDIT_CHAIN_INTERVAL 1
/* the most connections either limit allows */
#define KT_DEFAULT_MAX_CONNS_PER_ADDR 512
#define KT_MAX_CONNS KT_CONF_COUNT_MAX
/*
 * AUDIT_READ_FLUSH_MS: how long a read's committed audit row may wait for
 * its flush to disk (0: flushed before the answer), its default and most.
 */
#define KT_DEFAULT_AUDIT_READ_FLUSH_MS 100
#define KT_AUDIT_READ_FLUSH_MS_MAX 10000

struct kt_conf {
	char *confdir;
	char *path;
	char *ssl_certificate;
	char *ssl_private_key;
	char *ssl_private_key_password_script;
	char *ssl_ca;                 /* NULL when not set */
	char *tls_min_version_name;   /* "tlsv1.2" */
	int tls_min_version;          /* OpenSSL's TLS1_2_VERSION etc. */
	char *ssl_ciphers;            /* "" = ECDHE+AEAD (tls.c) */
	int port;
	int db_port;
	int hkp_port;                 /* plain-HTTP HKP listener; 0: none */
	int max_conns_per_addr;       /* connections from one address */
	int auth_failures_per_minute; /* per source address, then 429 */
	int backup_interval;          /* seconds (backupstat.h) */
	int audit_chain_interval;     /* seconds between chain seals */
	int audit_read_flush_ms;      /* a read's row durable within; 0: before */
	char *db_connect;             /* libpq conninfo; NULL before db setup */
	char *mail_url;
	char *hostname;
	void *json;                   /* the parsed document (json_t *) */
};

typedef void conf_warn_fn(const char *msg);

/* Default config dir: $KEYTRUSTEE_HOME/.keytrustee (malloc'd). */
char *conf_default_dir(void);

/*
 * Parse and validate a document.  Unknown keys are reported through warn
 * (may be NULL).  On error returns -1 with "file:line: KEY: reason" in err.
 */
int conf_parse(const char *text, size_t len, const char *confdir,
    const char *name, struct kt_conf **out, conf_warn_fn *warn, char *err,
    size_t errlen);
/* Read DIR/keytrustee.conf and parse it. */
int conf_load(const char *confdir, struct kt_conf **out, conf_warn_fn *warn,
    char *err, size_t errlen);
/* A fresh configuration with every default for confdir. */
struct kt_conf *conf_new_default(const char *confdir, const char *hostname);
/* Set a key in the document (and the struct); value NULL removes it. */
int conf_set_str(struct kt_conf *c, const char *key, const char *value);
int conf_set_int(struct kt_conf *c, const char *key, int value);
/* Write the document back atomically, mode 0600. */
int conf_save(const struct kt_conf *c);
/* When root, a file in the config dir gets the owner of the config dir. */
int conf_chown(const struct kt_conf *c, const char *path);
void conf_free(struct kt_conf *c);

/* "tlsv1.2" -> TLS1_2_VERSION; -1 when unknown. */
int conf_tls_version(const char *name);

#endif
