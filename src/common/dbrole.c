/*
 * dbrole.c - the database's two roles: the admin's conninfo and connection,
 * the server role's password, and bringing a database and its config dir
 * to both (dbrole.h).
 */
#include "dbrole.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "db.h"
#include "util.h"

/* What the server role's password is derived from the admin's with. */
#define DBROLE_DERIVE_LABEL "keytrustee server role password v1"

/*
 * Append " key='val'" (no space first) to the malloc'd *out, growing it;
 * one byte beyond the NUL is always left to spare.
 */
static int
dbrole_quote(
    char **out, size_t *used, size_t *cap, const char *key, const char *val)
{
	size_t need = strlen(key) + 2 * strlen(val) + 6;
	char *p;
	int quote;

	if (*used + need > *cap) {
		size_t ncap = (*cap + need) * 2;
		if ((p = malloc(ncap)) == NULL)
			return -1;
		if (*out != NULL) {
			memcpy(p, *out, *used + 1);
			freezero(*out, *cap);
		}
		*out = p;
		*cap = ncap;
	}
	/* Quoted only when it must be: port=11381, not port='11381'. */
	quote = *val == '\0' || strpbrk(val, " \t\n\r\f\v'\\") != NULL;
	p = *out + *used;
	p += sprintf(p, "%s%s=%s", *used > 0 ? " " : "", key, quote ? "'" : "");
	for (; *val != '\0'; val++) {
		if (*val == '\'' || *val == '\\')
			*p++ = '\\';
		*p++ = *val;
	}
	if (quote)
		*p++ = '\'';
	*p = '\0';
	*used = (size_t)(p - *out);
	return 0;
}

static void
dbrole_opts_free(PQconninfoOption *opts)
{
	PQconninfoOption *o;

	if (opts == NULL)
		return;
	for (o = opts; o->keyword != NULL; o++)
		if (o->val != NULL)
			explicit_bzero(o->val, strlen(o->val));
	PQconninfoFree(opts);
}

static PQconninfoOption *
dbrole_parse(const char *conninfo, const char *what, char *err, size_t errlen)
{
	PQconninfoOption *opts;
	char *msg = NULL;

	/* libpq's message quotes the text, which may be a password: not it. */
	if ((opts = PQconninfoParse(conninfo, &msg)) == NULL)
		snprintf(err, errlen, "%s cannot be parsed: %s", what,
		    msg != NULL ? "not a libpq conninfo of keyword=value pairs "
				  "with known keywords"
				: "out of memory");
	PQfreemem(msg);
	return opts;
}

/* over's value of key when it sets one, else base's (NULL: neither). */
static const char *
dbrole_value(
    const PQconninfoOption *base, const PQconninfoOption *over, const char *key)
{
	const char *val = NULL;

	for (; base->keyword != NULL; base++)
		if (strcmp(base->keyword, key) == 0)
			val = base->val;
	for (; over->keyword != NULL; over++)
		if (over->val != NULL && strcmp(over->keyword, key) == 0)
			val = over->val;
	return val;
}

char *
dbrole_conninfo_merge(
    const char *base, const char *over, char *err, size_t errlen)
{
	/* Where the database is first, as ktadmin db writes it; then the rest.
	 */
	static const char *const first[] = {
	    "host", "port", "dbname", "user", "password"};
	const size_t nfirst = sizeof(first) / sizeof(first[0]);
	PQconninfoOption *b = NULL, *v = NULL, *o;
	const char *val;
	char *out = NULL;
	size_t used = 0, cap = 0, i;

	if ((b = dbrole_parse(base, "DB_CONNECT", err, errlen)) == NULL ||
	    (v = dbrole_parse(over, "a conninfo", err, errlen)) == NULL)
		goto out;
	for (i = 0; i < nfirst; i++)
		if ((val = dbrole_value(b, v, first[i])) != NULL &&
		    dbrole_quote(&out, &used, &cap, first[i], val) == -1)
			goto nomem;
	for (o = b; o->keyword != NULL; o++) {
		for (i = 0; i < nfirst && strcmp(first[i], o->keyword) != 0;
		     i++)
			;
		if (i == nfirst &&
		    (val = dbrole_value(b, v, o->keyword)) != NULL &&
		    dbrole_quote(&out, &used, &cap, o->keyword, val) == -1)
			goto nomem;
	}
	if (out == NULL && (out = strdup("")) == NULL)
		goto nomem;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
	freezero(out, cap);
	out = NULL;
out:
	dbrole_opts_free(b);
	dbrole_opts_free(v);
	return out;
}

/*
 * CONFDIR/DBROLE_ADMIN_FILE's text (malloc'd, trailing newlines cut); NULL
 * with *missing set when there is none, or with the reason in err.
 */
static char *
dbrole_read_admin(
    const struct kt_conf *c, int *missing, char *err, size_t errlen)
{
	char path[PATH_MAX], *text = NULL;
	PQconninfoOption *opts;
	size_t len;

	*missing = 0;
	if (path_join(path, sizeof(path), c->confdir, DBROLE_ADMIN_FILE) ==
	    -1) {
		snprintf(err, errlen, "%s: path too long", c->confdir);
		return NULL;
	}
	if (!file_exists(path)) {
		*missing = 1;
		return NULL;
	}
	if (key_file_perm_ok(path, err, errlen) == -1)
		return NULL;
	if (file_read(path, 4096, &text, &len) == -1) {
		snprintf(
		    err, errlen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	if ((opts = dbrole_parse(text, path, err, errlen)) == NULL) {
		freezero(text, len);
		return NULL;
	}
	dbrole_opts_free(opts);
	return text;
}

char *
dbrole_admin_conninfo(const struct kt_conf *c, char *err, size_t errlen)
{
	char *admin, *ci;
	int missing;

	if (c->db_connect == NULL || *c->db_connect == '\0') {
		snprintf(err, errlen,
		    "DB_CONNECT is not set in %s; run 'ktadmin db "
		    "--bootstrap' first",
		    c->path);
		return NULL;
	}
	if ((admin = dbrole_read_admin(c, &missing, err, errlen)) == NULL) {
		if (!missing)
			return NULL;
		if ((ci = strdup(c->db_connect)) == NULL)
			snprintf(err, errlen, "out of memory");
		return ci;
	}
	ci = dbrole_conninfo_merge(c->db_connect, admin, err, errlen);
	freezero(admin, strlen(admin));
	return ci;
}

PGconn *
dbrole_connect_admin(
    const struct kt_conf *c, const char *dbname, char *err, size_t errlen)
{
	PGconn *db;
	char *ci;

	if ((ci = dbrole_admin_conninfo(c, err, errlen)) == NULL)
		return NULL;
	db = db_connect_conninfo(ci, dbname, err, errlen);
	freezero(ci, strlen(ci));
	return db;
}

int
dbrole_set_password(PGconn *db, const char *role, const char *password,
    char *err, size_t errlen)
{
	char *verifier = NULL, *ident = NULL, *sql = NULL;
	PGresult *res = NULL;
	int ret = -1;

	verifier = PQencryptPasswordConn(db, password, role, "scram-sha-256");
	if (verifier == NULL ||
	    (ident = PQescapeIdentifier(db, role, strlen(role))) == NULL) {
		snprintf(err, errlen, "the password of %s: %s", role,
		    PQerrorMessage(db));
		goto out;
	}
	/* Checked, not trusted: base64, '$' and ':' only. */
	if (strspn(verifier,
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		"0123456789+/=$:-") != strlen(verifier) ||
	    asprintf(&sql, "ALTER ROLE %s LOGIN PASSWORD '%s'", ident,
		verifier) == -1) {
		snprintf(
		    err, errlen, "unexpected password verifier from libpq");
		sql = NULL;
		goto out;
	}
	res = PQexec(db, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "cannot set the password of %s: %s", role,
		    PQresultErrorMessage(res));
		goto out;
	}
	ret = 0;
out:
	PQclear(res);
	if (sql != NULL)
		freezero(sql, strlen(sql));
	PQfreemem(ident);
	PQfreemem(verifier);
	return ret;
}

/* 1 when db's session is a superuser's, 0 not, -1 error. */
static int
dbrole_is_super(PGconn *db)
{
	PGresult *res = PQexec(
	    db, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user");
	int r = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		r = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return r;
}

/*
 * The server role's password: HMAC-SHA256 of the label under the admin's
 * password, so the active and a passive (each with a copy of the admin's)
 * agree without talking; random when the admin has none (peer or trust).
 */
static int
dbrole_server_password(const char *adminpw, char out[2 * CRYPTO_MAC_LEN + 1])
{
	unsigned char mac[CRYPTO_MAC_LEN];
	int r;

	if (adminpw != NULL && *adminpw != '\0')
		r = crypto_hmac_sha256(adminpw, strlen(adminpw),
		    DBROLE_DERIVE_LABEL, strlen(DBROLE_DERIVE_LABEL), mac);
	else
		r = crypto_random(mac, sizeof(mac));
	if (r == -1)
		return -1;
	hex_encode(mac, sizeof(mac), out, 0);
	explicit_bzero(mac, sizeof(mac));
	return 0;
}

/* The admin's user and password into CONFDIR/DBROLE_ADMIN_FILE (0600). */
static int
dbrole_write_admin(
    const struct kt_conf *c, PGconn *admin, char *err, size_t errlen)
{
	char path[PATH_MAX], *text = NULL;
	size_t used = 0, cap = 0;
	int ret = -1;

	if (path_join(path, sizeof(path), c->confdir, DBROLE_ADMIN_FILE) ==
		-1 ||
	    dbrole_quote(&text, &used, &cap, "user", PQuser(admin)) == -1 ||
	    (PQpass(admin) != NULL && *PQpass(admin) != '\0' &&
		dbrole_quote(&text, &used, &cap, "password", PQpass(admin)) ==
		    -1)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	text[used++] = '\n'; /* dbrole_quote leaves a byte to spare */
	text[used] = '\0';
	if (file_write_atomic(path, text, used, 0600) == -1 ||
	    conf_chown(c, path) == -1) {
		snprintf(
		    err, errlen, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	freezero(text, cap);
	return ret;
}

/*
 * DB_CONNECT from the admin's to DB_SERVER_ROLE's: its password set (on a
 * primary), a connection with the new conninfo tried, then keytrustee.conf
 * saved.  1 when moved, 0 when a replica has no such role yet, -1.
 */
static int
dbrole_move(struct kt_conf *c, PGconn *admin, int standby,
    struct dbrole_report *rep, char *err, size_t errlen)
{
	char pw[2 * CRYPTO_MAC_LEN + 1], over[128 + sizeof(pw)];
	char *ci = NULL;
	PGconn *db = NULL;
	int ret = -1;

	if (dbrole_server_password(PQpass(admin), pw) == -1) {
		snprintf(err, errlen, "cannot make a password");
		return -1;
	}
	snprintf(over, sizeof(over), "user=%s password=%s", DB_SERVER_ROLE, pw);
	if (!standby &&
	    (db_server_role(admin, 1, err, errlen) == -1 ||
		dbrole_set_password(admin, DB_SERVER_ROLE, pw, err, errlen) ==
		    -1))
		goto out;
	if ((ci = dbrole_conninfo_merge(c->db_connect, over, err, errlen)) ==
	    NULL)
		goto out;
	if ((db = db_connect_conninfo(ci, NULL, err, errlen)) == NULL) {
		if (standby) {
			rep->waiting = 1; /* the active has not made it yet */
			ret = 0;
		}
		goto out;
	}
	if (dbrole_is_super(db) != 0) {
		snprintf(err, errlen, "%s is a superuser", DB_SERVER_ROLE);
		goto out;
	}
	if (conf_set_str(c, "DB_CONNECT", ci) == -1 || conf_save(c) == -1 ||
	    conf_chown(c, c->path) == -1) {
		snprintf(err, errlen, "cannot write %s: %s", c->path,
		    strerror(errno));
		goto out;
	}
	rep->converted = 1;
	ret = 1;
out:
	if (db != NULL)
		PQfinish(db);
	if (ci != NULL)
		freezero(ci, strlen(ci));
	explicit_bzero(over, sizeof(over));
	explicit_bzero(pw, sizeof(pw));
	return ret;
}

/*
 * Must DB_CONNECT move to DB_SERVER_ROLE: is it a superuser's (as before
 * the two roles), or does it not open?  1, 0, -1.
 */
static int
dbrole_conf_is_admin(const struct kt_conf *c, int missing)
{
	char err[512];
	PGconn *db;
	int r;

	if (missing)
		return 1; /* the admin's connection was DB_CONNECT's */
	/* One that does not open (a restore's) is set again, as the admin. */
	if ((db = db_connect(c, err, sizeof(err))) == NULL)
		return 1;
	r = dbrole_is_super(db);
	PQfinish(db);
	return r;
}

enum dbrole_result
dbrole_setup(
    struct kt_conf *c, struct dbrole_report *rep, char *err, size_t errlen)
{
	enum dbrole_result ret = DBROLE_FAIL;
	PGconn *admin = NULL;
	char *text;
	int missing, super, r;

	memset(rep, 0, sizeof(*rep));
	rep->before = rep->after = -1;
	if ((text = dbrole_read_admin(c, &missing, err, errlen)) == NULL &&
	    !missing)
		return DBROLE_FAIL;
	if (text != NULL)
		freezero(text, strlen(text));
	if ((admin = dbrole_connect_admin(c, NULL, err, errlen)) == NULL)
		return c->db_connect != NULL ? DBROLE_DOWN : DBROLE_FAIL;
	if ((rep->standby = db_is_standby(admin)) == -1 ||
	    (super = dbrole_is_super(admin)) == -1 ||
	    (rep->before = db_schema_version(admin)) == -1) {
		snprintf(err, errlen, "%s", PQerrorMessage(admin));
		goto out;
	}
	rep->after = rep->before;
	if (!super) {
		/* Only the server's role here: enough unless it must migrate.
		 */
		if (!rep->standby && rep->before < DB_SCHEMA_VERSION) {
			snprintf(err, errlen,
			    "the database has schema version %d and this "
			    "program needs %d, but %s connects as %s, which "
			    "cannot migrate it: put the admin's user and "
			    "password in %s/%s",
			    rep->before, DB_SCHEMA_VERSION,
			    missing ? "DB_CONNECT" : DBROLE_ADMIN_FILE,
			    PQuser(admin), c->confdir, DBROLE_ADMIN_FILE);
			goto out;
		}
		ret = DBROLE_OK;
		goto out;
	}
	if (!rep->standby) {
		/*
		 * Not a client's write: committed here, streamed to the
		 * passive when it is there, never waited for.  And no
		 * NOTICE of a re-applied statement on stderr.
		 */
		PQclear(PQexec(admin,
		    "SET synchronous_commit = local; "
		    "SET client_min_messages = warning"));
		if (db_migrate(admin, err, errlen) == -1)
			goto out;
		rep->after = DB_SCHEMA_VERSION;
	}
	if ((r = dbrole_conf_is_admin(c, missing)) == -1) {
		snprintf(err, errlen, "DB_CONNECT: cannot tell its role");
		goto out;
	}
	if (r == 1) {
		if (missing && dbrole_write_admin(c, admin, err, errlen) == -1)
			goto out;
		if (dbrole_move(c, admin, rep->standby, rep, err, errlen) == -1)
			goto out;
	}
	ret = DBROLE_OK;
out:
	PQfinish(admin);
	return ret;
}
