/*
 * mail.c - admin mail: the outbox, the guide's messages and their delivery
 * through libcurl's SMTP.  See mail.h.
 */
#include "mail.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "pgp.h"
#include "util.h"

#define MAIL_CONNECT_TIMEOUT 10L
#define MAIL_TIMEOUT 60L
/* Backoff: 10 s after the first failure, doubling, at most an hour. */
#define MAIL_BACKOFF_SQL                                                       \
	"now() + least(3600, 10 * power(2, least(attempts, 12))) * "           \
	"interval '1 second'"

int
mail_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

/* printf into a malloc'd string; NULL when out of memory. */
static char *mail_printf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static char *
mail_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		s = NULL;
	va_end(ap);
	return s;
}

static void
mail_seterr(
    char *err, size_t errlen, const char *what, PGconn *db, PGresult *res)
{
	const char *m = res != NULL ? PQresultErrorMessage(res) : NULL;
	size_t n;

	if (m == NULL || *m == '\0')
		m = PQerrorMessage(db);
	snprintf(err, errlen, "%s: %s", what, m);
	n = strlen(err);
	while (n > 0 && err[n - 1] == '\n')
		err[--n] = '\0';
}

int
mail_enqueue_contact(PGconn *db, const struct kt_conf *c, const char *org,
    const char *contact, char *err, size_t errlen)
{
	char token[MAIL_TOKEN_LEN + 1], hash[2 * CRYPTO_HASH_LEN + 1];
	char when[64], *body = NULL;
	const char *params[5];
	PGresult *res = NULL;
	struct tm tm;
	time_t t;
	int ret = -1;

	if (crypto_alnum(token, MAIL_TOKEN_LEN) == -1 ||
	    crypto_sha256_hex(token, MAIL_TOKEN_LEN, hash) == -1) {
		snprintf(err, errlen, "cannot draw random bytes from OpenSSL");
		goto out;
	}
	params[0] = hash;
	params[1] = org;
	params[2] = contact;
	res = PQexecParams(db,
	    "INSERT INTO contact_tokens (token_hash, org_id, contact) "
	    "SELECT $1, id, $3 FROM orgs WHERE name = $2 "
	    "RETURNING extract(epoch FROM expires)::bigint",
	    3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		mail_seterr(
		    err, errlen, "cannot store the contact link", db, res);
		goto out;
	}
	t = (time_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	res = NULL;
	/* The guide: "at Thu Sep  3 00:08:25 2015 UTC" (asctime's form). */
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y UTC", &tm) ==
		0) {
		snprintf(err, errlen, "cannot format the expiry time");
		goto out;
	}
	body = mail_printf(
	    "Hello, this is an automated message from your Key Trustee "
	    "Server.\n"
	    "\n"
	    "Welcome to Key Trustee! You have been listed as an administrator "
	    "contact\n"
	    "for keytrustee services at your organization [%s]. As an "
	    "administrator,\n"
	    "you may be contacted to authorize the activation of new "
	    "keytrustee clients.\n"
	    "\n"
	    "We recommend that you register a GPG public key for secure "
	    "administration of\n"
	    "your clients. To do so, visit the link below and follow the "
	    "instructions.\n"
	    "\n"
	    "https://%s:%d/?q=%s\n"
	    "\n"
	    "This link will expire in %d hours, at %s.\n",
	    org, c->hostname, c->port, token, MAIL_TOKEN_HOURS, when);
	if (body == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	params[0] = org;
	params[1] = contact;
	params[2] = MAIL_SUBJECT_CONTACT;
	params[3] = body;
	res = PQexecParams(db,
	    "WITH m AS (INSERT INTO mail_outbox (org_id, rcpt, kind, subject, "
	    "body) SELECT id, $2, 'contact_registration', $3, $4 FROM orgs "
	    "WHERE name = $1 RETURNING id) "
	    "SELECT pg_notify('" MAIL_CHANNEL "', m.id::text) FROM m",
	    4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		mail_seterr(err, errlen, "cannot queue the mail", db, res);
		goto out;
	}
	ret = 0;
out:
	PQclear(res);
	if (body != NULL)
		freezero(body, strlen(body));
	explicit_bzero(token, sizeof(token));
	return ret;
}

int
mail_client_notice(const struct kt_conf *c, const char *org, const char *fpr,
    const char *hostname, const char *state, char **subject, char **body)
{
	int pending = strcmp(state, "pending") == 0;

	*subject =
	    mail_printf("KeyTrustee Client Registration: %s (%s)", org, state);
	*body = mail_printf(
	    "Hello, this is an automated message from your Key Trustee "
	    "Server.\n"
	    "\n"
	    "A new client has registered with your organization [%s].\n"
	    "\n"
	    "  Organization: %s\n"
	    "  Fingerprint:  %s\n"
	    "  Hostname:     %s\n"
	    "  State:        %s\n"
	    "  Server:       https://%s:%d/\n"
	    "\n"
	    "%s"
	    "\n"
	    "  keytrustee-orgtool enable-client --fingerprint %s\n"
	    "\n"
	    "If you do not know this client, disable it:\n"
	    "\n"
	    "  keytrustee-orgtool disable-client --fingerprint %s\n",
	    org, org, fpr, hostname,
	    pending ? "pending (waiting for approval)" : "active", c->hostname,
	    c->port,
	    pending ? "It registered without the authorization code and waits "
		      "for an administrator.\n"
		      "To approve it, run as root on the Key Trustee Server:\n"
		    : "It gave the organization's authorization code (or none "
		      "is required)\n"
		      "and is active now. A client that was disabled comes "
		      "back with:\n",
	    fpr, fpr);
	if (*subject == NULL || *body == NULL) {
		free(*subject);
		free(*body);
		*subject = *body = NULL;
		return -1;
	}
	return 0;
}

/* The default signer: gpg-agent, through GPGME. */
static int
mail_sign_gpg(void *arg, const char *text, size_t len, char **signed_text,
    char *err, size_t errlen)
{
	const struct mail_sender *s = arg;

	return pgp_clearsign(s->gpghome, s->signer, text, len, signed_text,
	    NULL, err, errlen);
}

int
mail_sender_init(struct mail_sender *s, const struct kt_conf *c,
    const char *signer, char *err, size_t errlen)
{
	char qfpr[PGP_QFPR_MAX];
	int r;

	memset(s, 0, sizeof(*s));
	s->conf = c;
	s->gpghome = c->confdir;
	s->sign = mail_sign_gpg;
	s->sign_arg = s;
	if (path_join(s->contacts_home, sizeof(s->contacts_home), c->confdir,
		MAIL_CONTACTS_HOME) == -1) {
		snprintf(err, errlen, "%s: path too long", c->confdir);
		return -1;
	}
	if (dir_ensure(s->contacts_home, 0700) == -1) {
		snprintf(err, errlen, "%s: cannot create it", s->contacts_home);
		return -1;
	}
	if (signer != NULL) {
		snprintf(s->signer, sizeof(s->signer), "%s", signer);
		return 0;
	}
	r = pgp_secret_key(c->confdir, s->signer, qfpr, err, errlen);
	if (r == 1)
		snprintf(err, errlen, "%s: no OpenPGP key to sign mail with",
		    c->confdir);
	return r == 0 ? 0 : -1;
}

/* ---- SMTP --------------------------------------------------------------- */

struct mail_src {
	const char *p;
	size_t left;
};

static size_t
mail_read(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct mail_src *src = arg;
	size_t n = size * nmemb;

	if (n > src->left)
		n = src->left;
	memcpy(buf, src->p, n);
	src->p += n;
	src->left -= n;
	return n;
}

enum mail_result { MAIL_SENT, MAIL_REFUSED, MAIL_DEFER };

/*
 * One message to one recipient.  STARTTLS whenever the MTA offers it;
 * credentials come from MAIL_URL's user info.  The MTA's certificate is
 * verified for smtps:// and whenever credentials are sent; for plain
 * smtp:// STARTTLS is opportunistic (as Postfix's "may" level), so that a
 * local MTA with its snake-oil certificate still takes mail.
 */
static enum mail_result
mail_smtp(const struct kt_conf *c, const char *rcpt, const char *msg,
    size_t len, char *err, size_t errlen)
{
	char ebuf[CURL_ERROR_SIZE] = "", from[600], to[600];
	struct curl_slist *rcpts = NULL;
	struct mail_src src = {msg, len};
	enum mail_result ret = MAIL_DEFER;
	int smtps, creds;
	long code = 0;
	CURLcode e;
	CURL *h;

	smtps = strncmp(c->mail_url, "smtps://", 8) == 0;
	if (!smtps && strncmp(c->mail_url, "smtp://", 7) != 0) {
		snprintf(err, errlen,
		    "MAIL_URL must start with smtp:// or smtps://");
		return MAIL_DEFER;
	}
	creds = strchr(c->mail_url + (smtps ? 8 : 7), '@') != NULL;
	snprintf(from, sizeof(from), "<keytrustee@%s>", c->hostname);
	snprintf(to, sizeof(to), "<%s>", rcpt);
	if ((h = curl_easy_init()) == NULL ||
	    (rcpts = curl_slist_append(NULL, to)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, c->mail_url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
	if (!smtps && !creds) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, mail_read);
	curl_easy_setopt(h, CURLOPT_READDATA, &src);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(h, CURLOPT_CRLF, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, MAIL_CONNECT_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, MAIL_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	e = curl_easy_perform(h);
	if (e == CURLE_OK) {
		ret = MAIL_SENT;
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	snprintf(err, errlen, "%s", *ebuf ? ebuf : curl_easy_strerror(e));
	/* A recipient refused for good is final; the rest is retried. */
	if (code >= 500 && code < 600 && strncmp(ebuf, "RCPT", 4) == 0)
		ret = MAIL_REFUSED;
out:
	curl_slist_free_all(rcpts);
	curl_easy_cleanup(h);
	return ret;
}

/* ---- the outbox -----------------------------------------------------------
 */

struct mail_row {
	char id[24], orgid[24], rcpt[320], created[64];
	char kind[64], subject[256];
	const char *body;
};

/*
 * The message as sent: headers, then the body clear-signed by the server,
 * encrypted to the contact's key when one is registered (enc_fpr).
 */
static char *
mail_compose(const struct mail_sender *s, PGconn *db, const struct mail_row *m,
    const char *body, char enc_fpr[PGP_FPR_LEN + 1], char *err, size_t errlen)
{
	const char *params[2] = {m->orgid, m->rcpt};
	char *signed_text = NULL, *enc = NULL, *msg = NULL, date[64];
	const char *payload;
	PGresult *res = NULL;
	struct tm tm;
	time_t now = time(NULL);

	enc_fpr[0] = '\0';
	if (s->sign(s->sign_arg, body, strlen(body), &signed_text, err,
		errlen) == -1)
		goto out;
	payload = signed_text;
	res = PQexecParams(db,
	    "SELECT fingerprint, pubkey FROM contact_keys "
	    "WHERE org_id = $1::bigint AND lower(contact) = lower($2)",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mail_seterr(err, errlen, "contact_keys", db, res);
		goto out;
	}
	if (PQntuples(res) == 1) {
		/* Imported again each time: the home may be a fresh restore. */
		if (pgp_import_pubkey(s->contacts_home, PQgetvalue(res, 0, 1),
			(size_t)PQgetlength(res, 0, 1), enc_fpr, err,
			errlen) == -1 ||
		    pgp_encrypt(s->contacts_home, enc_fpr, signed_text,
			strlen(signed_text), &enc, NULL, err, errlen) == -1) {
			enc_fpr[0] = '\0';
			goto out;
		}
		payload = enc;
	}
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	msg = mail_printf("From: Key Trustee Server <keytrustee@%s>\n"
			  "To: <%s>\n"
			  "Subject: %s\n"
			  "Date: %s\n"
			  "Message-ID: <kt-mail-%s-%s@%s>\n"
			  "MIME-Version: 1.0\n"
			  "Content-Type: text/plain; charset=utf-8\n"
			  "Content-Transfer-Encoding: 8bit\n"
			  "X-KeyTrustee-Mail: %s\n"
			  "X-KeyTrustee-Outbox-Id: %s\n"
			  "\n"
			  "%s",
	    s->conf->hostname, m->rcpt, m->subject, date, m->id, m->created,
	    s->conf->hostname, m->kind, m->id, payload);
	if (msg == NULL)
		snprintf(err, errlen, "out of memory");
out:
	PQclear(res);
	free(signed_text);
	free(enc);
	return msg;
}

/* Record the outcome of one attempt (still in the row's transaction). */
static int
mail_record(PGconn *db, const char *id, enum mail_result r, const char *enc,
    const char *detail, char *err, size_t errlen)
{
	const char *params[2] = {id, NULL};
	const char *sql;
	PGresult *res;
	int ret = 0;

	if (r == MAIL_SENT) {
		/* The body held the link token: it is not kept once sent. */
		sql = "UPDATE mail_outbox SET state = 'sent', sent = now(), "
		      "attempts = attempts + 1, encrypted_to = $2, body = '', "
		      "last_error = NULL WHERE id = $1::bigint";
		params[1] = *enc ? enc : NULL;
	} else if (r == MAIL_REFUSED) {
		sql = "UPDATE mail_outbox SET state = 'failed', "
		      "attempts = attempts + 1, last_error = $2 "
		      "WHERE id = $1::bigint";
		params[1] = detail;
	} else {
		sql = "UPDATE mail_outbox SET attempts = attempts + 1, "
		      "last_error = $2, next_attempt = " MAIL_BACKOFF_SQL
		      " WHERE id = $1::bigint";
		params[1] = detail;
	}
	res = PQexecParams(db, sql, 2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		mail_seterr(err, errlen, "mail_outbox", db, res);
		ret = -1;
	}
	PQclear(res);
	return ret;
}

static int
mail_exec(PGconn *db, const char *sql, char *err, size_t errlen)
{
	PGresult *res = PQexec(db, sql);
	int ret = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		mail_seterr(err, errlen, sql, db, res);
		ret = -1;
	}
	PQclear(res);
	return ret;
}

/* Try the next due message after id last: 1 tried, 0 none left, -1. */
static int
mail_one(const struct mail_sender *s, PGconn *db, char last[24],
    mail_note_fn *note, void *arg, struct mail_stats *st, char *err,
    size_t errlen)
{
	const char *params[1] = {last};
	char detail[512] = "", enc[PGP_FPR_LEN + 1] = "", *msg = NULL;
	enum mail_result r = MAIL_DEFER;
	struct mail_row m;
	PGresult *res = NULL;
	int ret = -1;

	if (mail_exec(db, "BEGIN", err, errlen) == -1)
		return -1;
	res = PQexecParams(db,
	    "SELECT id::text, coalesce(org_id::text, ''), rcpt, kind, "
	    "subject, body, extract(epoch FROM created)::bigint::text "
	    "FROM mail_outbox WHERE state = 'queued' AND next_attempt <= now() "
	    "AND id > $1::bigint ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		mail_seterr(err, errlen, "mail_outbox", db, res);
		goto out;
	}
	if (PQntuples(res) == 0) {
		ret = mail_exec(db, "COMMIT", err, errlen) == -1 ? -1 : 0;
		goto out;
	}
	memset(&m, 0, sizeof(m));
	snprintf(m.id, sizeof(m.id), "%s", PQgetvalue(res, 0, 0));
	snprintf(m.orgid, sizeof(m.orgid), "%s", PQgetvalue(res, 0, 1));
	snprintf(m.rcpt, sizeof(m.rcpt), "%s", PQgetvalue(res, 0, 2));
	snprintf(m.kind, sizeof(m.kind), "%s", PQgetvalue(res, 0, 3));
	snprintf(m.subject, sizeof(m.subject), "%s", PQgetvalue(res, 0, 4));
	snprintf(m.created, sizeof(m.created), "%s", PQgetvalue(res, 0, 6));
	snprintf(last, 24, "%s", m.id);
	msg = mail_compose(
	    s, db, &m, PQgetvalue(res, 0, 5), enc, detail, sizeof(detail));
	if (msg != NULL)
		r = mail_smtp(
		    s->conf, m.rcpt, msg, strlen(msg), detail, sizeof(detail));
	if (mail_record(db, m.id, r, enc, detail, err, errlen) == -1 ||
	    mail_exec(db, "COMMIT", err, errlen) == -1)
		goto out;
	if (r == MAIL_SENT)
		st->sent++;
	else if (r == MAIL_REFUSED)
		st->failed++;
	else
		st->deferred++;
	if (note != NULL)
		note(arg, m.id, m.rcpt,
		    r == MAIL_SENT	    ? "sent"
			: r == MAIL_REFUSED ? "failed"
					    : "deferred",
		    r == MAIL_SENT ? (*enc ? "encrypted" : "signed") : detail);
	ret = 1;
out:
	PQclear(res);
	if (msg != NULL)
		freezero(msg, strlen(msg));
	if (PQtransactionStatus(db) != PQTRANS_IDLE) {
		res = PQexec(db, "ROLLBACK");
		PQclear(res);
	}
	return ret;
}

int
mail_deliver(const struct mail_sender *s, PGconn *db, mail_note_fn *note,
    void *arg, struct mail_stats *st, char *err, size_t errlen)
{
	char last[24] = "0";
	int r;

	memset(st, 0, sizeof(*st));
	if (mail_lock(db, err, errlen) == -1)
		return -1;
	while ((r = mail_one(s, db, last, note, arg, st, err, errlen)) == 1)
		;
	mail_unlock(db);
	return r;
}

int
mail_lock(PGconn *db, char *err, size_t errlen)
{
	PGresult *res =
	    PQexec(db, "SELECT pg_advisory_lock(" MAIL_AGENT_LOCK ")");
	int ret = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "mail lock: %s", PQerrorMessage(db));
		ret = -1;
	}
	PQclear(res);
	return ret;
}

void
mail_unlock(PGconn *db)
{
	PQclear(PQexec(db, "SELECT pg_advisory_unlock(" MAIL_AGENT_LOCK ")"));
}

long
mail_next_due(PGconn *db)
{
	PGresult *res;
	long ret = -1;

	/* Not greatest(0, ...): it ignores a NULL (no mail) and says 0. */
	res = PQexec(db,
	    "SELECT ceil(extract(epoch FROM min(next_attempt) - now()))"
	    "::bigint FROM mail_outbox WHERE state = 'queued'");
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    !PQgetisnull(res, 0, 0)) {
		ret = strtol(PQgetvalue(res, 0, 0), NULL, 10);
		if (ret < 0)
			ret = 0;
	}
	PQclear(res);
	return ret;
}
