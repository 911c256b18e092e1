/*
 * mail.h - admin mail: the outbox (mail_outbox, written in the transaction
 * of its event), the messages the guide describes, and their delivery
 * through libcurl's SMTP to MAIL_URL, clear-signed by the server's OpenPGP
 * key and encrypted to the contact's key when the contact registered one.
 */
#ifndef KT_MAIL_H
#define KT_MAIL_H

#include <limits.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "conf.h"
#include "pgp.h"

/* The contact link token: 43 letters and digits, as the guide's. */
#define MAIL_TOKEN_LEN 43
/* The link lives this long (the guide: "This link will expire in 12 hours"). */
#define MAIL_TOKEN_HOURS 12
/* LISTEN/NOTIFY channel: a message was queued or pushed. */
#define MAIL_CHANNEL "keytrustee_mail"
/* The contacts' public keys: a GnuPG home of their own in the config dir. */
#define MAIL_CONTACTS_HOME ".contacts-gnupg"
#define MAIL_SUBJECT_CONTACT "KeyTrustee Contact Registration"

/*
 * SQL: the CTE "m" queueing the client notice (subject S, body B: parameter
 * references) to each contact of the organization "o" matching WHERE, joined
 * with FROM ("c, ": the client row the same statement changed, so nothing
 * is queued when it changed none); it returns each mail's id and rcpt.
 * The server's registrations and the orgtool's activate-client queue it so.
 */
#define MAIL_NOTICE_CTE(FROM, WHERE, S, B)                                   \
	"m AS (INSERT INTO mail_outbox (org_id, rcpt, kind, subject, body) " \
	"SELECT o.id, unnest(o.contacts), 'client_registration', " S ", " B \
	" FROM " FROM "orgs o WHERE " WHERE " RETURNING id, rcpt)"

/* curl_global_init; call once, before any thread starts. */
int mail_init(void);

/*
 * Queue the "KeyTrustee Contact Registration" message for contact of the
 * organization org, with a fresh link token (its hash stored in
 * contact_tokens), and notify MAIL_CHANNEL.  Runs in the caller's
 * transaction.  Returns 0, or -1 with the reason in err.
 */
int mail_enqueue_contact(PGconn *db, const struct kt_conf *c, const char *org,
    const char *contact, char *err, size_t errlen);

/*
 * The notice to an organization's contacts that a client registered
 * (state "active" or "pending"): subject and body, malloc'd.
 */
int mail_client_notice(const struct kt_conf *c, const char *org,
    const char *fpr, const char *hostname, const char *state, char **subject,
    char **body);

/*
 * Clear-sign text with the server's key: the armored "BEGIN PGP SIGNED
 * MESSAGE" text, malloc'd, or -1 with err.
 */
typedef int mail_sign_fn(void *arg, const char *text, size_t len,
    char **signed_text, char *err, size_t errlen);

/* What delivery needs: the config and the server's signing key. */
struct mail_sender {
	const struct kt_conf *conf;
	const char *gpghome;	      /* the server's GnuPG home */
	char signer[PGP_FPR_LEN + 1]; /* its key's fingerprint */
	char contacts_home[PATH_MAX]; /* gpghome/MAIL_CONTACTS_HOME */
	mail_sign_fn *sign;	      /* how mail is signed, and its arg */
	void *sign_arg;
};

/*
 * Fill s for the config dir c->confdir.  signer: the server key's
 * fingerprint when the caller knows it, else NULL to look it up (which
 * starts gpg-agent).  Mail is signed with pgp_clearsign (gpg-agent: the
 * caller stops it when done) unless the caller sets sign and sign_arg
 * after (the server: its key process).  0 or -1 with err.
 */
int mail_sender_init(struct mail_sender *s, const struct kt_conf *c,
    const char *signer, char *err, size_t errlen);

/* Called for every message tried: result "sent", "failed" or "deferred". */
typedef void mail_note_fn(void *arg, const char *id, const char *rcpt,
    const char *result, const char *detail);

struct mail_stats {
	int sent;     /* accepted by the MTA */
	int failed;   /* recipient refused for good (5xx): not retried */
	int deferred; /* MTA unreachable or 4xx: retried with backoff */
};

/*
 * Send every queued message that is due, each in its own transaction with
 * its row locked (FOR UPDATE SKIP LOCKED: several senders never send one
 * message twice), under mail_lock.  Returns 0 (see st), or -1 with err
 * when the database fails.
 */
int mail_deliver(const struct mail_sender *s, PGconn *db, mail_note_fn *note,
    void *arg, struct mail_stats *st, char *err, size_t errlen);

/*
 * The server's mail thread and 'ktadmin mail' (which signs through the
 * gpg-agent of the server's keyring and stops it when done) take turns
 * under a session advisory lock (it nests; unlock as often).
 */
#define MAIL_AGENT_LOCK "7243061"
int mail_lock(PGconn *db, char *err, size_t errlen);
void mail_unlock(PGconn *db);

/* Seconds until the next queued message is due: 0 now, -1 none or error. */
long mail_next_due(PGconn *db);

#endif
