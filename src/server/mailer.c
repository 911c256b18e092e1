/*
 * mailer.c - the server's mail sender: one thread with its own database
 * connection that LISTENs on MAIL_CHANNEL and delivers the outbox (see
 * common/mail.c), waking for every notification, when the next retry is
 * due, and at least once a minute.
 *
 * Signing: the server's private key is in the key process (keyproc.h);
 * this thread builds each cleartext signature itself (pgpsig.c) and has
 * only its digest signed there, so no gpg-agent is started for mail.  The
 * HTTP workers never touch the server's own GnuPG home.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ha.h"
#include "keyproc.h"
#include "log.h"
#include "mail.h"
#include "mailer.h"
#include "pgpsig.h"
#include "store/store.h"

#define MAILER_IDLE_SECS 60
#define MAILER_DB_RETRY_SECS 5

static void
mailer_note(void *arg, const char *id, const char *rcpt, const char *result,
    const char *detail)
{
	(void)arg;
	if (strcmp(result, "sent") == 0)
		log_info("mail %s to %s: sent (%s)", id, rcpt, detail);
	else
		log_warnx("mail %s to %s: %s: %s", id, rcpt, result, detail);
}

/* mail_sign_fn: a cleartext signature made here, signed by the key process. */
static int
mailer_sign(void *arg, const char *text, size_t len, char **signed_text,
    char *err, size_t errlen)
{
	const struct mail_sender *s = arg;
	unsigned char fpr[PGPKEY_FPR_LEN];

	if (pgpkey_fpr_from_hex(s->signer, fpr) == -1) {
		snprintf(err, errlen, "signing: bad key fingerprint");
		return -1;
	}
	return pgpsig_clearsign(text, len, fpr, time(NULL), keyproc_pgp_sign,
	    NULL, signed_text, NULL, err, errlen);
}

static void *
mailer_main(void *arg)
{
	struct server *srv = arg;
	struct mail_stats st;
	struct pollfd pfd[2];
	PGnotify *n;
	PGconn *db = NULL;
	char err[1024];
	long due;
	int nfd;

	for (;;) {
		due = MAILER_DB_RETRY_SECS;
		if (db != NULL && PQstatus(db) != CONNECTION_OK) {
			PQfinish(db);
			db = NULL;
		}
		if (db == NULL)
			db = store_listen_conn(srv->conf, MAIL_CHANNEL);
		/* A passive's database is a read-only replica: the active
		 * sends; after a promote this server takes over. */
		if (db != NULL && !ha_is_passive(srv->ha)) {
			if (mail_deliver(&srv->mail, db, mailer_note, NULL, &st,
				err, sizeof(err)) == -1)
				log_warnx("mail: %s", err);
			due = mail_next_due(db);
			if (due < 0 || due > MAILER_IDLE_SECS)
				due = MAILER_IDLE_SECS;
		}
		pfd[0].fd = srv->mail_pipe[0];
		pfd[0].events = POLLIN;
		nfd = 1;
		if (db != NULL) {
			pfd[1].fd = PQsocket(db);
			pfd[1].events = POLLIN;
			nfd = 2;
		}
		if (poll(pfd, (nfds_t)nfd, (int)due * 1000) == -1 &&
		    errno != EINTR)
			log_warn("mail: poll");
		if (pfd[0].revents != 0)
			break;
		if (db != NULL && nfd == 2 && pfd[1].revents != 0) {
			PQconsumeInput(db);
			while ((n = PQnotifies(db)) != NULL)
				PQfreemem(n);
		}
	}
	PQfinish(db);
	return NULL;
}

int
mailer_start(struct server *srv, char *err, size_t errlen)
{
	const char *fpr = strchr(srv->qfpr, '/');
	int e;

	/* main read the key already: no second listing (no agent start). */
	if (mail_sender_init(&srv->mail, srv->conf,
		fpr != NULL ? fpr + 1 : NULL, err, errlen) == -1)
		return -1;
	srv->mail.sign = mailer_sign;
	srv->mail.sign_arg = &srv->mail;
	if (pipe2(srv->mail_pipe, O_CLOEXEC) == -1) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	if ((e = pthread_create(&srv->mail_thread, NULL, mailer_main, srv)) !=
	    0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(e));
		return -1;
	}
	srv->mail_running = 1;
	return 0;
}

void
mailer_stop(struct server *srv)
{
	if (!srv->mail_running)
		return;
	if (write(srv->mail_pipe[1], "x", 1) == -1)
		log_warn("mail: stopping the sender");
	pthread_join(srv->mail_thread, NULL);
	close(srv->mail_pipe[0]);
	close(srv->mail_pipe[1]);
	srv->mail_running = 0;
}
