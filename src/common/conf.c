/* conf.c - keytrustee.conf: the server's JSON configuration file. */
#include "conf.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backupstat.h"
#include "util.h"

enum conf_type { CT_STR, CT_PORT, CT_COUNT, CT_MSECS, CT_TLSVER };

static const struct conf_key {
	const char *name;
	enum conf_type type;
	size_t off;
	int path;      /* 1: relative values are taken from the config dir */
	int nullable;  /* 1: null means "not set" */
} conf_keys[] = {
	{ "SSL_CERTIFICATE", CT_STR, offsetof(struct kt_conf, ssl_certificate),
	    1, 0 },
	{ "SSL_PRIVATE_KEY", CT_STR, offsetof(struct kt_conf, ssl_private_key),
	    1, 0 },
	{ "SSL_PRIVATE_KEY_PASSWORD_SCRIPT", CT_STR,
	    offsetof(struct kt_conf, ssl_private_key_password_script), 0, 1 },
	{ "SSL_CA", CT_STR, offsetof(struct kt_conf, ssl_ca), 1, 1 },
	{ "TLS_MIN_VERSION", CT_TLSVER,
	    offsetof(struct kt_conf, tls_min_version_name), 0, 0 },
	{ "SSL_CIPHERS", CT_STR, offsetof(struct kt_conf, ssl_ciphers), 0, 0 },
	{ "PORT", CT_PORT, offsetof(struct kt_conf, port), 0, 0 },
	{ "DB_PORT", CT_PORT, offsetof(struct kt_conf, db_port), 0, 0 },
	{ "DB_CONNECT", CT_STR, offsetof(struct kt_conf, db_connect), 0, 1 },
	{ "MAIL_URL", CT_STR, offsetof(struct kt_conf, mail_url), 0, 0 },
	{ "HOSTNAME", CT_STR, offsetof(struct kt_conf, hostname), 0, 0 },
	/* HKP over plain HTTP (the legacy clients' port 80); null: off. */
	{ "HKP_PORT", CT_PORT, offsetof(struct kt_conf, hkp_port), 0, 1 },
	/* At most this many connections from one address (connlimit.c). */
	{ "MAX_CONNECTIONS_PER_ADDRESS", CT_COUNT,
	    offsetof(struct kt_conf, max_conns_per_addr), 0, 0 },
	/* Failed authentications a source address may make a minute. */
	{ "AUTH_FAILURES_PER_MINUTE", CT_COUNT,
	    offsetof(struct kt_conf, auth_failures_per_minute), 0, 0 },
	/*
	 * Seconds between scheduled backups: ktbackup.sh writes it into
	 * backup-status.json, and a backup older than twice it is overdue.
	 */
	{ "BACKUP_INTERVAL", CT_COUNT, offsetof(struct kt_conf, backup_interval),
	    0, 0 },
	/* Seconds between the audit chain's seals (docs/audit.md). */
	{ "AUDIT_CHAIN_INTERVAL", CT_COUNT,
	    offsetof(struct kt_conf, audit_chain_interval), 0, 0 },
	/* How long a read's audit row may be committed but not flushed. */
	{ "AUDIT_READ_FLUSH_MS", CT_MSECS,
	    offsetof(struct kt_conf, audit_read_flush_ms), 0, 0 },
};

static const struct {
	const char *name;
	int version;
} tls_versions[] = {
	{ "tlsv1", TLS1_VERSION },
	{ "tlsv1.1", TLS1_1_VERSION },
	{ "tlsv1.2", TLS1_2_VERSION },
	{ "tlsv1.3", TLS1_3_VERSION },
};

int
conf_tls_version(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(tls_versions) / sizeof(tls_versions[0]); i++)
		if (strcmp(name, tls_versions[i].name) == 0)
			return tls_versions[i].version;
	return -1;
}

char *
conf_default_dir(void)
{
	const char *home = getenv("KEYTRUSTEE_HOME");
	char buf[PATH_MAX];

	if (home == NULL || *home == '\0')
		home = KT_DEFAULT_HOME;
	if (path_join(buf, sizeof(buf), home, ".keytrustee") == -1)
		return NULL;
	return strdup(buf);
}

static char **
conf_strp(struct kt_conf *c, const struct conf_key *k)
{
	return (char **)(void *)((char *)c + k->off);
}

static int *
conf_intp(struct kt_conf *c, const struct conf_key *k)
{
	return (int *)(void *)((char *)c + k->off);
}

static int
conf_defaults(struct kt_conf *c, const char *confdir)
{
	char buf[PATH_MAX];

	if ((c->confdir = strdup(confdir)) == NULL)
		return -1;
	if (path_join(buf, sizeof(buf), confdir, KT_CONF_FILE) == -1 ||
	    (c->path = strdup(buf)) == NULL)
		return -1;
	if (path_join(buf, sizeof(buf), confdir,
	    ".ssl/ssl-cert-keytrustee.pem") == -1 ||
	    (c->ssl_certificate = strdup(buf)) == NULL)
		return -1;
	if (path_join(buf, sizeof(buf), confdir,
	    ".ssl/ssl-cert-keytrustee-pk.pem") == -1 ||
	    (c->ssl_private_key = strdup(buf)) == NULL)
		return -1;
	if ((c->tls_min_version_name = strdup("tlsv1.2")) == NULL ||
	    (c->ssl_ciphers = strdup("")) == NULL ||
	    (c->mail_url = strdup("smtp://localhost:25")) == NULL)
		return -1;
	c->tls_min_version = TLS1_2_VERSION;
	c->port = KT_DEFAULT_PORT;
	c->db_port = KT_DEFAULT_DB_PORT;
	c->backup_interval = BACKUPSTAT_DEFAULT_INTERVAL;
	c->max_conns_per_addr = KT_DEFAULT_MAX_CONNS_PER_ADDR;
	c->auth_failures_per_minute = KT_DEFAULT_AUTH_FAILURES;
	c->audit_chain_interval = KT_DEFAULT_AUDIT_CHAIN_INTERVAL;
	c->audit_read_flush_ms = KT_DEFAULT_AUDIT_READ_FLUSH_MS;
	if (gethostname(buf, sizeof(buf)) == -1)
		strcpy(buf, "localhost");
	buf[sizeof(buf) - 1] = '\0';
	if ((c->hostname = strdup(buf)) == NULL)
		return -1;
	return 0;
}

/*
 * MAIL_URL and HOSTNAME end up in SMTP commands and mail headers: an SMTP
 * URL, a name without spaces or controls.  NULL when fine, else why.
 */
static const char *
conf_mail_problem(const char *key, const char *s)
{
	const char *p;

	if (strcmp(key, "MAIL_URL") != 0 && strcmp(key, "HOSTNAME") != 0)
		return NULL;
	if (*s == '\0')
		return "must not be empty";
	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return "must not contain spaces, controls or "
			       "non-ASCII characters";
	if (strcmp(key, "HOSTNAME") == 0)
		return strpbrk(s, "<>@/,;\"\\") != NULL ?
		    "must be a host name" : NULL;
	p = strncmp(s, "smtp://", 7) == 0 ? s + 7 :
	    strncmp(s, "smtps://", 8) == 0 ? s + 8 : NULL;
	if (p == NULL)
		return "must be an smtp:// or smtps:// URL";
	if (*p == '\0' || *p == '/' || *p == ':')
		return "names no host";
	return NULL;
}

static int
conf_apply(struct kt_conf *c, const struct conf_key *k, json_t *v,
    const char *name, int line, char *err, size_t errlen)
{
	char buf[PATH_MAX];
	const char *s;
	char **sp;

	switch (k->type) {
	case CT_PORT:
		if (json_is_null(v) && k->nullable) {
			*conf_intp(c, k) = 0;
			return 0;
		}
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > 65535) {
			snprintf(err, errlen, "%s:%d: %s: must be an integer "
			    "port number from 1 to 65535", name, line, k->name);
			return -1;
		}
		*conf_intp(c, k) = (int)json_integer_value(v);
		return 0;
	case CT_COUNT:
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > KT_CONF_COUNT_MAX) {
			snprintf(err, errlen, "%s:%d: %s: must be an integer "
			    "from 1 to %d", name, line, k->name,
			    KT_CONF_COUNT_MAX);
			return -1;
		}
		*conf_intp(c, k) = (int)json_integer_value(v);
		return 0;
	case CT_MSECS:
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > KT_AUDIT_READ_FLUSH_MS_MAX) {
			snprintf(err, errlen, "%s:%d: %s: must be an integer "
			    "number of milliseconds from 0 to %d", name, line,
			    k->name, KT_AUDIT_READ_FLUSH_MS_MAX);
			return -1;
		}
		*conf_intp(c, k) = (int)json_integer_value(v);
		return 0;
	case CT_TLSVER:
	case CT_STR:
		if (json_is_null(v) && k->nullable) {
			sp = conf_strp(c, k);
			free(*sp);
			*sp = NULL;
			return 0;
		}
		if (!json_is_string(v)) {
			snprintf(err, errlen, "%s:%d: %s: must be a string",
			    name, line, k->name);
			return -1;
		}
		s = json_string_value(v);
		if (strlen(s) != json_string_length(v)) {
			snprintf(err, errlen, "%s:%d: %s: contains a NUL byte",
			    name, line, k->name);
			return -1;
		}
		if (k->type == CT_TLSVER) {
			int ver = conf_tls_version(s);
			if (ver == -1) {
				snprintf(err, errlen, "%s:%d: %s: unknown TLS "
				    "version \"%.32s\" (expected tlsv1, tlsv1.1, "
				    "tlsv1.2 or tlsv1.3)", name, line, k->name,
				    s);
				return -1;
			}
			c->tls_min_version = ver;
		}
		if (conf_mail_problem(k->name, s) != NULL) {
			snprintf(err, errlen, "%s:%d: %s: %s", name, line,
			    k->name, conf_mail_problem(k->name, s));
			return -1;
		}
		if (k->path && s[0] == '\0') {
			snprintf(err, errlen, "%s:%d: %s: must not be empty",
			    name, line, k->name);
			return -1;
		}
		if (k->path && s[0] != '/') {
			if (path_join(buf, sizeof(buf), c->confdir, s) == -1) {
				snprintf(err, errlen, "%s:%d: %s: path too long",
				    name, line, k->name);
				return -1;
			}
			s = buf;
		}
		sp = conf_strp(c, k);
		free(*sp);
		if ((*sp = strdup(s)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		return 0;
	}
	return -1;
}

/*
 * jansson keeps no per-key line numbers: find the line of KEY as a member
 * name of the top-level object (not a value, not a nested key).  text is
 * NUL-terminated.
 */
static int
conf_key_line(const char *text, const char *key)
{
	size_t klen = strlen(key);
	const char *p = text, *start;
	int line = 1, depth = 0;

	for (; *p != '\0'; p++) {
		if (*p == '\n') {
			line++;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			depth--;
		} else if (*p == '"') {
			const char *q;
			start = ++p;
			for (; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				else if (*p == '\n')
					line++;
			}
			if (*p == '\0')
				break;
			if (depth != 1 || (size_t)(p - start) != klen ||
			    memcmp(start, key, klen) != 0)
				continue;
			for (q = p + 1; *q == ' ' || *q == '\t' || *q == '\r' ||
			    *q == '\n'; q++)
				;
			if (*q == ':')
				return line;
		}
	}
	return 1;
}

int
conf_parse(const char *text, size_t len, const char *confdir, const char *name,
    struct kt_conf **out, conf_warn_fn *warn, char *err, size_t errlen)
{
	struct kt_conf *c = NULL;
	json_error_t jerr;
	json_t *root = NULL, *v;
	const char *key;
	char *copy = NULL;
	size_t i;
	int ret = -1;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL || conf_defaults(c, confdir)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (memchr(text, '\0', len) != NULL) {
		snprintf(err, errlen, "%s: contains a NUL byte", name);
		goto out;
	}
	/* A terminated copy: callers need not terminate text. */
	if ((copy = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	text = copy;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		snprintf(err, errlen, "%s:%d: invalid JSON: %s", name,
		    jerr.line, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "%s:1: the configuration must be a JSON "
		    "object", name);
		goto out;
	}
	json_object_foreach(root, key, v) {
		const struct conf_key *k = NULL;
		for (i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++)
			if (strcmp(conf_keys[i].name, key) == 0)
				k = &conf_keys[i];
		if (k == NULL) {
			if (warn != NULL) {
				char msg[512];
				snprintf(msg, sizeof(msg), "%s:%d: %.64s: unknown "
				    "key, ignored", name,
				    conf_key_line(text, key), key);
				warn(msg);
			}
			continue;
		}
		if (conf_apply(c, k, v, name, conf_key_line(text, key), err,
		    errlen) == -1)
			goto out;
	}
	c->json = root;
	root = NULL;
	*out = c;
	c = NULL;
	ret = 0;
out:
	if (copy != NULL)
		freezero(copy, len + 1);
	json_decref(root);
	conf_free(c);
	return ret;
}

int
conf_load(const char *confdir, struct kt_conf **out, conf_warn_fn *warn,
    char *err, size_t errlen)
{
	char path[PATH_MAX], *text = NULL;
	size_t len;
	int ret;

	*out = NULL;
	if (path_join(path, sizeof(path), confdir, KT_CONF_FILE) == -1) {
		snprintf(err, errlen, "%s: path too long", confdir);
		return -1;
	}
	if (file_read(path, KT_CONF_MAX, &text, &len) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	ret = conf_parse(text, len, confdir, path, out, warn, err, errlen);
	freezero(text, len);
	return ret;
}

struct kt_conf *
conf_new_default(const char *confdir, const char *hostname)
{
	struct kt_conf *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (conf_defaults(c, confdir) == -1 ||
	    (c->json = json_object()) == NULL)
		goto fail;
	if (hostname != NULL) {
		free(c->hostname);
		if ((c->hostname = strdup(hostname)) == NULL)
			goto fail;
	}
	/* Relative to the config dir, so a copied or restored dir is whole. */
	if (conf_set_str(c, "SSL_CERTIFICATE", ".ssl/ssl-cert-keytrustee.pem") ||
	    conf_set_str(c, "SSL_PRIVATE_KEY",
	    ".ssl/ssl-cert-keytrustee-pk.pem") ||
	    conf_set_str(c, "TLS_MIN_VERSION", c->tls_min_version_name) ||
	    conf_set_str(c, "SSL_CIPHERS", c->ssl_ciphers) ||
	    conf_set_int(c, "PORT", c->port) ||
	    conf_set_int(c, "DB_PORT", c->db_port) ||
	    conf_set_str(c, "MAIL_URL", c->mail_url) ||
	    conf_set_str(c, "HOSTNAME", c->hostname))
		goto fail;
	return c;
fail:
	conf_free(c);
	return NULL;
}

static const struct conf_key *
conf_find(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++)
		if (strcmp(conf_keys[i].name, key) == 0)
			return &conf_keys[i];
	return NULL;
}

int
conf_set_str(struct kt_conf *c, const char *key, const char *value)
{
	const struct conf_key *k = conf_find(key);
	char err[256];
	json_t *v;

	if (value == NULL) {
		json_object_del(c->json, key);
		if (k != NULL && k->nullable) {
			free(*conf_strp(c, k));
			*conf_strp(c, k) = NULL;
		}
		return 0;
	}
	if ((v = json_string(value)) == NULL)
		return -1;
	if (k != NULL && conf_apply(c, k, v, "", 0, err, sizeof(err)) == -1) {
		json_decref(v);
		errno = EINVAL;
		return -1;
	}
	return json_object_set_new(c->json, key, v);
}

int
conf_set_int(struct kt_conf *c, const char *key, int value)
{
	const struct conf_key *k = conf_find(key);
	char err[256];
	json_t *v;

	if ((v = json_integer(value)) == NULL)
		return -1;
	if (k != NULL && conf_apply(c, k, v, "", 0, err, sizeof(err)) == -1) {
		json_decref(v);
		errno = EINVAL;
		return -1;
	}
	return json_object_set_new(c->json, key, v);
}

int
conf_save(const struct kt_conf *c)
{
	char *text;
	int ret;

	text = json_dumps(c->json, JSON_INDENT(4) | JSON_SORT_KEYS);
	if (text == NULL)
		return -1;
	ret = file_write_atomic(c->path, text, strlen(text), 0600);
	freezero(text, strlen(text));
	return ret;
}

int
conf_chown(const struct kt_conf *c, const char *path)
{
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (stat(c->confdir, &st) == -1)
		return -1;
	return chown(path, st.st_uid, st.st_gid);
}

void
conf_free(struct kt_conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < sizeof(conf_keys) / sizeof(conf_keys[0]); i++) {
		char *s;
		if (conf_keys[i].type != CT_STR &&
		    conf_keys[i].type != CT_TLSVER)
			continue;
		/* DB_CONNECT may hold the database password. */
		if ((s = *conf_strp(c, &conf_keys[i])) != NULL)
			freezero(s, strlen(s));
	}
	free(c->confdir);
	free(c->path);
	json_decref(c->json);
	free(c);
}
