/* kt-client.c - the client handle, its config dir, keytrustee.conf, register. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kt-int.h"
#include "pgp.h"
#include "util.h"

#define KT_CONF_MAX (64 * 1024)

const char *
kt_client_confdir(const struct kt_client *c)
{
	return c->confdir;
}

const char *
kt_client_fingerprint(const struct kt_client *c)
{
	return c->local_fingerprint;
}

const char *
kt_client_server(const struct kt_client *c)
{
	return c->server;
}

const char *
kt_client_state(const struct kt_client *c)
{
	return c->state;
}

int
kt_client_registered(const struct kt_client *c)
{
	return c->registered;
}

int
kt_file_mode_ok(struct kt_client *c, const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1) {
		kt_seterr(c, "%s: %s", path, strerror(errno));
		return KT_ERR;
	}
	if (!S_ISREG(st.st_mode)) {
		kt_seterr(c, "%s: not a regular file", path);
		return KT_ERR;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		kt_seterr(c, "%s has mode %04o; it holds a secret and must not "
		    "be accessible by group or others (needs 0600)", path,
		    (unsigned)(st.st_mode & 07777));
		return KT_EPERM;
	}
	return KT_OK;
}

static void
conf_clear(struct kt_client *c)
{
	free(c->local_fingerprint);
	free(c->server);
	free(c->passive_server);
	free(c->org);
	if (c->secret_hex != NULL)
		freezero(c->secret_hex, strlen(c->secret_hex));
	free(c->state);
	free(c->cacert);
	c->local_fingerprint = c->server = c->passive_server = c->org = NULL;
	c->secret_hex = c->state = c->cacert = NULL;
	c->ssl_insecure = 0;
	c->timeout = 0;
	c->registered = 0;
	c->fpr[0] = '\0';
}

/* "3072R/<40 hex>" or "<40 hex>" -> the 40 hex. */
static int
fpr_from_local(const char *lf, char fpr[41])
{
	const char *p = strchr(lf, '/');
	size_t i;

	p = p != NULL ? p + 1 : lf;
	if (strlen(p) != 40 || !hex_valid(p, 40))
		return -1;
	for (i = 0; i < 40; i++)
		fpr[i] = (char)toupper((unsigned char)p[i]);
	fpr[40] = '\0';
	return 0;
}

static int
conf_str(struct kt_client *c, json_t *doc, const char *key, int required,
    char **out)
{
	json_t *v = json_object_get(doc, key);

	if (v == NULL || json_is_null(v)) {
		if (required) {
			kt_seterr(c, "%s: %s: missing", c->confpath, key);
			return -1;
		}
		return 0;
	}
	if (!json_is_string(v)) {
		kt_seterr(c, "%s: %s: must be a string", c->confpath, key);
		return -1;
	}
	if ((*out = strdup(json_string_value(v))) == NULL) {
		kt_seterr(c, "out of memory");
		return -1;
	}
	return 0;
}

static int
conf_load(struct kt_client *c)
{
	json_t *doc = NULL, *v;
	json_error_t jerr;
	char *text = NULL;
	size_t len = 0;
	int ret = KT_ERR, r;

	if (!file_exists(c->confpath))
		return KT_OK;
	if ((r = kt_file_mode_ok(c, c->confpath)) != KT_OK)
		return r;
	if (file_read(c->confpath, KT_CONF_MAX, &text, &len) == -1) {
		kt_seterr(c, "%s: %s", c->confpath, strerror(errno));
		return KT_ERR;
	}
	if ((doc = json_loadb(text, len, 0, &jerr)) == NULL) {
		kt_seterr(c, "%s:%d: %s", c->confpath, jerr.line, jerr.text);
		goto out;
	}
	if (!json_is_object(doc)) {
		kt_seterr(c, "%s:1: not a JSON object", c->confpath);
		goto out;
	}
	if (conf_str(c, doc, "LOCAL_FINGERPRINT", 1, &c->local_fingerprint) ||
	    conf_str(c, doc, "SERVER", 1, &c->server) ||
	    conf_str(c, doc, "PASSIVE_SERVER", 0, &c->passive_server) ||
	    conf_str(c, doc, "ORG", 1, &c->org) ||
	    conf_str(c, doc, "SECRET", 1, &c->secret_hex) ||
	    conf_str(c, doc, "STATE", 1, &c->state) ||
	    conf_str(c, doc, "CACERT", 0, &c->cacert))
		goto out;
	if (fpr_from_local(c->local_fingerprint, c->fpr) == -1) {
		kt_seterr(c, "%s: LOCAL_FINGERPRINT: not a 40-digit OpenPGP "
		    "fingerprint", c->confpath);
		goto out;
	}
	if (strlen(c->secret_hex) != 2 * KT_SECRET_LEN ||
	    !hex_valid(c->secret_hex, 2 * KT_SECRET_LEN)) {
		kt_seterr(c, "%s: SECRET: not %d hex digits", c->confpath,
		    2 * KT_SECRET_LEN);
		goto out;
	}
	v = json_object_get(doc, "SSL_INSECURE");
	if (v != NULL && !json_is_boolean(v)) {
		kt_seterr(c, "%s: SSL_INSECURE: must be true or false",
		    c->confpath);
		goto out;
	}
	c->ssl_insecure = v != NULL && json_is_true(v);
	v = json_object_get(doc, "TIMEOUT");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > KT_TIMEOUT_MAX)) {
		kt_seterr(c, "%s: TIMEOUT: must be a whole number of seconds "
		    "from 1 to %d", c->confpath, KT_TIMEOUT_MAX);
		goto out;
	}
	c->timeout = v != NULL ? (int)json_integer_value(v) : 0;
	c->registered = 1;
	ret = KT_OK;
out:
	json_decref(doc);
	if (text != NULL)
		freezero(text, len);
	if (ret != KT_OK)
		conf_clear(c);
	return ret;
}

int
kt_conf_save(struct kt_client *c)
{
	json_t *doc;
	char *text = NULL;
	int ret = KT_ERR;

	doc = json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s, s:b, s:s?}",
	    "LOCAL_FINGERPRINT", c->local_fingerprint, "SERVER", c->server,
	    "PASSIVE_SERVER", c->passive_server, "ORG", c->org,
	    "SECRET", c->secret_hex, "STATE", c->state,
	    "SSL_INSECURE", c->ssl_insecure, "CACERT", c->cacert);
	/* An operator's TIMEOUT stays; the default is not written. */
	if (doc != NULL && c->timeout > 0 && json_object_set_new(doc,
	    "TIMEOUT", json_integer(c->timeout)) == -1) {
		json_decref(doc);
		doc = NULL;
	}
	if (doc == NULL ||
	    (text = json_dumps(doc, JSON_INDENT(4) | JSON_PRESERVE_ORDER)) ==
	    NULL) {
		kt_seterr(c, "%s: cannot encode the configuration",
		    c->confpath);
		goto out;
	}
	/* json_dumps has no trailing newline; the file gets one. */
	{
		size_t n = strlen(text);
		char *t = realloc(text, n + 2);

		if (t == NULL) {
			kt_seterr(c, "out of memory");
			goto out;
		}
		text = t;
		text[n] = '\n';
		text[n + 1] = '\0';
	}
	if (file_write_atomic(c->confpath, text, strlen(text), 0600) == -1) {
		kt_seterr(c, "writing %s: %s", c->confpath, strerror(errno));
		goto out;
	}
	ret = KT_OK;
out:
	if (text != NULL)
		freezero(text, strlen(text));
	json_decref(doc);
	return ret;
}

int
kt_default_confdir(char *buf, size_t len)
{
	const char *home = getenv("HOME");

	if (home == NULL || *home == '\0' ||
	    path_join(buf, len, home, ".keytrustee") == -1)
		return KT_EINVAL;
	return KT_OK;
}

int
kt_client_open(const char *confdir, struct kt_client **out)
{
	struct kt_client *c;
	char buf[4096];

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return KT_ERR;
	*out = c;
	if (kt_http_init() != 0) {
		kt_seterr(c, "libcurl failed to initialise");
		return KT_ERR;
	}
	if (pgp_init() != 0) {
		kt_seterr(c, "GPGME: no usable GnuPG engine");
		return KT_ERR;
	}
	if (confdir == NULL) {
		if (kt_default_confdir(buf, sizeof(buf)) != KT_OK) {
			kt_seterr(c, "HOME is not set or too long; give --confdir");
			return KT_EINVAL;
		}
		confdir = buf;
	}
	if ((c->confdir = strdup(confdir)) == NULL ||
	    asprintf(&c->confpath, "%s/%s", confdir, KT_CLIENT_CONF) == -1) {
		c->confpath = NULL;
		kt_seterr(c, "out of memory");
		return KT_ERR;
	}
	return conf_load(c);
}

void
kt_client_free(struct kt_client *c)
{
	if (c == NULL)
		return;
	conf_clear(c);
	free(c->confdir);
	free(c->confpath);
	free(c->err_code);
	explicit_bzero(c, sizeof(*c));
	free(c);
}

void
kt_client_kill_agent(struct kt_client *c)
{
	pgp_kill_agent(c->confdir);
}

static int
dup_opt(struct kt_client *c, char **dst, const char *src)
{
	free(*dst);
	*dst = NULL;
	if (src == NULL)
		return 0;
	if ((*dst = strdup(src)) == NULL) {
		kt_seterr(c, "out of memory");
		return -1;
	}
	return 0;
}

/* Drop trailing slashes so that base + "/v1/..." is one slash. */
static void
strip_slash(char *s)
{
	size_t n;

	if (s == NULL)
		return;
	n = strlen(s);
	while (n > 0 && s[n - 1] == '/')
		s[--n] = '\0';
}

int
kt_register(struct kt_client *c, const struct kt_register_opts *o)
{
	char fpr[PGP_FPR_LEN + 1], qfpr[PGP_QFPR_MAX], host[256];
	char *pub = NULL, *body = NULL;
	unsigned char *secret = NULL;
	size_t secretlen = 0, i;
	const char *hostname = o->hostname;
	json_t *req = NULL, *resp = NULL, *v;
	json_error_t jerr;
	struct kt_resp r = { 0 };
	const char *state;
	int ret = KT_ERR, e, timeout;

	kt_clearerr(c);
	if (o->server == NULL || o->org == NULL) {
		kt_seterr(c, "a server URL and an organization are needed");
		return KT_EINVAL;
	}
	if (strncmp(o->server, "https://", 8) != 0 || (o->passive_server &&
	    strncmp(o->passive_server, "https://", 8) != 0)) {
		kt_seterr(c, "server URLs must start with https://");
		return KT_EINVAL;
	}
	if (hostname == NULL) {
		if (gethostname(host, sizeof(host)) == -1)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		hostname = host;
	}
	if (dir_ensure(c->confdir, 0700) == -1) {
		kt_seterr(c, "%s: %s", c->confdir, strerror(errno));
		return KT_ERR;
	}
	if (chmod(c->confdir, 0700) == -1) {
		kt_seterr(c, "%s: chmod: %s", c->confdir, strerror(errno));
		return KT_ERR;
	}
	if (kt_pgp_ensure_key(c, hostname) != KT_OK)
		return KT_ERR;
	if (pgp_secret_key(c->confdir, fpr, qfpr, c->err, sizeof(c->err)) !=
	    0 || pgp_export_pubkey(c->confdir, fpr, &pub, NULL, c->err,
	    sizeof(c->err)) != 0)
		goto out;

	/*
	 * The new settings take effect now: kt_http reads them from c.  A
	 * TIMEOUT the operator set is no option of register: it stays.
	 */
	timeout = c->timeout;
	conf_clear(c);
	c->timeout = timeout;
	if (dup_opt(c, &c->server, o->server) ||
	    dup_opt(c, &c->passive_server, o->passive_server) ||
	    dup_opt(c, &c->org, o->org) || dup_opt(c, &c->cacert, o->cacert))
		goto out;
	strip_slash(c->server);
	strip_slash(c->passive_server);
	c->ssl_insecure = o->ssl_insecure;

	req = json_pack("{s:s, s:s?, s:s, s:s}", "org", o->org, "auth",
	    o->auth, "pubkey", pub, "hostname", hostname);
	if (req == NULL || (body = json_dumps(req, JSON_COMPACT)) == NULL) {
		kt_seterr(c, "cannot encode the registration request");
		goto out;
	}
	if (kt_http(c, c->server, "POST", "/v1/register", body, strlen(body),
	    0, &r) != 0)
		goto out;
	if (r.net_failed) {
		ret = KT_ENET;
		goto out;
	}
	if (r.status != 200 && r.status != 201) {
		ret = kt_http_error(c, "registration", &r);
		goto out;
	}
	if ((resp = json_loadb(r.body, r.len, 0, &jerr)) == NULL ||
	    !json_is_object(resp)) {
		kt_seterr(c, "registration: the server's answer is not JSON");
		goto out;
	}
	v = json_object_get(resp, "fingerprint");
	if (!json_is_string(v) ||
	    strcasecmp(json_string_value(v), fpr) != 0) {
		kt_seterr(c, "registration: the server answered for another "
		    "fingerprint than ours (%s)", fpr);
		goto out;
	}
	state = json_string_value(json_object_get(resp, "state"));
	v = json_object_get(resp, "secret");
	if (state == NULL || !json_is_string(v)) {
		kt_seterr(c, "registration: the answer lacks state or secret");
		goto out;
	}
	if ((e = kt_pgp_decrypt(c, json_string_value(v),
	    strlen(json_string_value(v)), &secret, &secretlen)) != KT_OK) {
		ret = e;
		goto out;
	}
	while (secretlen > 0 && isspace(secret[secretlen - 1]))
		secret[--secretlen] = '\0';
	for (i = 0; i < secretlen; i++)
		secret[i] = (unsigned char)tolower(secret[i]);
	if (secretlen != 2 * KT_SECRET_LEN ||
	    !hex_valid((char *)secret, secretlen)) {
		kt_seterr(c, "registration: the decrypted secret is not %d hex "
		    "digits", 2 * KT_SECRET_LEN);
		goto out;
	}
	if (dup_opt(c, &c->secret_hex, (char *)secret) ||
	    dup_opt(c, &c->local_fingerprint, qfpr) ||
	    dup_opt(c, &c->state, state))
		goto out;
	memcpy(c->fpr, fpr, sizeof(c->fpr));
	if ((ret = kt_conf_save(c)) != KT_OK)
		goto out;
	c->registered = 1;
	ret = KT_OK;
out:
	if (ret != KT_OK && !c->registered) {
		/* Leave the struct as the file on disk says. */
		char save[KT_ERRLEN];

		memcpy(save, c->err, sizeof(save));
		conf_clear(c);
		(void)conf_load(c);
		memcpy(c->err, save, sizeof(save));
	}
	if (secret != NULL)
		freezero(secret, secretlen);
	free(pub);
	free(body);
	json_decref(req);
	json_decref(resp);
	kt_resp_free(&r);
	return ret;
}
