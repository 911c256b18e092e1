/*
 * main.c - keytrustee-server: the Key Trustee Server HTTPS daemon.
 * Runs in the foreground (a supervisor such as kt-agent or systemd keeps
 * it), logs to standard error.  SIGTERM/SIGINT drain and exit; SIGHUP
 * reloads the certificate and key.
 */
#include <errno.h>
#include <event2/thread.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auditq.h"
#include "authcache.h"
#include "authfail.h"
#include "chainer.h"
#include "conf.h"
#include "connlimit.h"
#include "crypto.h"
#include "db.h"
#include "dbrole.h"
#include "depcache.h"
#include "ha.h"
#include "keyproc.h"
#include "legacy_pool.h"
#include "log.h"
#include "mail.h"
#include "mailer.h"
#include "pgp.h"
#include "pgpmsg.h"
#include "route.h"
#include "server.h"
#include "store/store.h"
#include "throttle.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

#define MAX_THREADS 256
#define DEFAULT_MAX_CONNS 10000
/* Descriptors kept for the rest: database, key process, logs, evictions. */
#define NOFILE_SPARE 256
#define MAX_DEPCACHE_MB (1 << 24)

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: keytrustee-server [--confdir DIR] [--port N] "
	    "[--listen ADDR] [--threads N]\n"
	    "                         [--max-connections N] "
	    "[--max-connections-per-address N]\n"
	    "                         [--deposit-cache-mb N] "
	    "[--legacy-threads N] [--debug]\n\n"
	    "Serve Key Trustee Server over HTTPS, in the foreground.\n\n"
	    "  -c, --confdir DIR  config dir made by 'ktadmin init' (default\n"
	    "                     $KEYTRUSTEE_HOME/.keytrustee, KEYTRUSTEE_HOME\n"
	    "                     defaults to %s)\n"
	    "  -p, --port N       HTTPS port (default: PORT in keytrustee.conf, "
	    "%d)\n"
	    "  -l, --listen ADDR  address to listen on (default: all)\n"
	    "  -t, --threads N    worker threads (default: one per core)\n"
	    "      --legacy-threads N\n"
	    "                     threads serving the legacy protocol's "
	    "actions; 0:\n"
	    "                     the workers serve them (default: three per "
	    "core)\n"
	    "  -m, --max-connections N\n"
	    "                     connections open at once; a new one beyond "
	    "closes\n"
	    "                     the longest-idle (default %d)\n"
	    "      --max-connections-per-address N\n"
	    "                     connections open at once from one address; "
	    "more are\n"
	    "                     refused (default: "
	    "MAX_CONNECTIONS_PER_ADDRESS in\n"
	    "                     keytrustee.conf, %d)\n"
	    "      --deposit-cache-mb N\n"
	    "                     memory for the cache of stored deposits, in "
	    "MiB; 0:\n"
	    "                     none (default: a quarter of the memory)\n"
	    "  -d, --debug        log debug messages\n"
	    "  -h, --help         show this help\n\n"
	    "Signals: TERM or INT drain and exit; HUP reloads the TLS "
	    "certificate and key.\n\nSee keytrustee-server(8).\n",
	    KT_DEFAULT_HOME, KT_DEFAULT_PORT, DEFAULT_MAX_CONNS,
	    KT_DEFAULT_MAX_CONNS_PER_ADDR);
}

/* --deposit-cache-mb in bytes; by default a quarter of the memory. */
static size_t
depcache_default(int mb)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);

	if (mb >= 0)
		return (size_t)mb << 20;
	if (pages <= 0 || psize <= 0)
		return (size_t)256 << 20;
	return (size_t)pages / 4 * (size_t)psize;
}

static void
conf_warn(const char *msg)
{
	log_warnx("%s", msg);
}

static int
listen_socket(const char *addr, int port)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[16];
	int fd = -1, one = 1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((e = getaddrinfo(addr, portstr, &hints, &res)) != 0) {
		log_warnx("--listen %s: %s", addr ? addr : "*",
		    gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		/*
		 * Accepted sockets inherit TCP_NODELAY: an answer leaves in
		 * one write, or several beyond 16 KiB (and the TLS handshake
		 * in its flights), none of which should wait ~40 ms for the
		 * client's delayed ACK.
		 */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 1024) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	if (fd == -1)
		log_warn("cannot listen on %s port %d", addr ? addr : "*", port);
	freeaddrinfo(res);
	return fd;
}

/*
 * Room for max_conns descriptors and some.  Where there is less, the
 * limit is what there is: at it, new connections close the longest-idle
 * (connlimit.c), where beyond the descriptors accept(2) would fail.
 */
static int
raise_nofile(int max_conns)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_conns + NOFILE_SPARE;
	int fit;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= want)
		return max_conns;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ?
	    want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= want)
		return max_conns;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return max_conns;
	fit = rl.rlim_cur > NOFILE_SPARE * 2 ?
	    (int)(rl.rlim_cur - NOFILE_SPARE) : (int)rl.rlim_cur / 2;
	log_warnx("--max-connections %d: the descriptor limit is %llu "
		  "(ulimit -n); serving at most %d connections",
	    max_conns, (unsigned long long)rl.rlim_cur, fit);
	return fit;
}

/*
 * Bring the database to this binary's schema before serving: after an
 * upgrade the operator restarts the server and nothing else.  The
 * migrations run as the admin role (dbrole.h), idempotent, under an
 * advisory lock; a DB_CONNECT that is still the admin's (a database
 * bootstrapped before the two roles) is moved to the server's own role
 * here, before any request.  A database that is down now is not fatal
 * (health says so); one that refuses is.
 */
static void
migrate_at_start(struct kt_conf *conf)
{
	struct dbrole_report rep;
	char err[1024];

	switch (dbrole_setup(conf, &rep, err, sizeof(err))) {
	case DBROLE_DOWN:
		log_warnx("database not reachable at start, schema not checked: "
		    "%s", err);
		return;
	case DBROLE_FAIL:
		fatalx("database schema: %s", err);
	default:
		break;
	}
	if (rep.standby)
		/* A passive's replica is read-only: the active migrates it. */
		log_info("database is a standby (passive server): schema "
		    "version %d, migrated by the active", rep.before);
	else if (rep.before >= 0 && rep.before < rep.after)
		log_info("database schema migrated from version %d to %d",
		    rep.before, rep.after);
	if (rep.converted)
		log_info("database roles: DB_CONNECT now connects as %s; the "
		    "admin's user and password moved to %s/%s",
		    DB_SERVER_ROLE, conf->confdir, DBROLE_ADMIN_FILE);
	if (rep.waiting)
		log_warnx("database roles: DB_CONNECT is still the admin's: "
		    "the active's database has no role %s yet (restart this "
		    "server after the active's)", DB_SERVER_ROLE);
}

/*
 * The request path: the worker threads' loops and database connections,
 * the audit queue that commits for them, the caches and the listener that
 * keeps them exact (after the caches), and then the threads, every
 * request going to the route table.
 */
static void
serve_start(struct server *srv)
{
	struct store_channel ch[2];
	char err[512];

	srv->handle = route_dispatch;
	srv->handle_plain = route_dispatch_plain;
	srv->refuses_as_form = route_refuses_as_form;
	if (workers_init(srv, err, sizeof(err)) == -1 ||
	    (srv->legacy_pool = legacy_pool_start(
		 srv, srv->nlegacy, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if ((srv->auditq = auditq_start(srv)) == NULL ||
	    (srv->depcache = depcache_start(srv->conf, srv->depcache_limit)) ==
		NULL ||
	    (srv->authcache = authcache_new()) == NULL)
		fatalx("cannot start the audit queue or the caches");
	authcache_channel(srv->authcache, &ch[0]);
	depcache_channel(srv->depcache, &ch[1]);
	if ((srv->listener = store_listen_start(srv->conf, ch, 2)) == NULL)
		fatalx("cannot start the caches' listener");
	if (workers_run(srv, err, sizeof(err)) == -1)
		fatalx("%s", err);
}

/* Stop accepting, drain, and free the request path (rows queued commit). */
static void
serve_stop(struct server *srv)
{
	workers_stop(srv);
	legacy_pool_stop(srv->legacy_pool);
	auditq_stop(srv->auditq);
	srv->auditq = NULL;
	store_listen_stop(srv->listener);
	srv->listener = NULL;
	authcache_free(srv->authcache);
	srv->authcache = NULL;
	depcache_stop(srv->depcache);
	srv->depcache = NULL;
	legacy_pool_free(srv->legacy_pool);
	srv->legacy_pool = NULL;
	workers_free(srv);
}

/* The server's public key, read: its key IDs, for the legacy protocol. */
static struct pgpmsg_pubkey *
self_key(const char *armored, char *err, size_t errlen)
{
	struct pgpmsg_pubkey *key = NULL;
	unsigned char *bin = NULL;
	size_t len = 0;

	if (pgpmsg_dearmor(armored, strlen(armored), PGPMSG_ARMOR_PUBKEY,
		&bin, &len, err, errlen) == 0)
		(void)pgpmsg_pubkey_parse(bin, len, &key, err, errlen);
	free(bin);
	return key;
}

static void
reload_tls(struct server *srv)
{
	struct kt_conf *c = NULL;
	SSL_CTX *ctx;
	char err[1024];

	/* Re-read keytrustee.conf for the TLS keys; the rest needs a restart. */
	if (conf_load(srv->conf->confdir, &c, conf_warn, err,
	    sizeof(err)) == -1) {
		log_warnx("SIGHUP: keeping the current certificate: %s", err);
		return;
	}
	if ((ctx = tls_ctx_build(c, err, sizeof(err))) == NULL) {
		log_warnx("SIGHUP: keeping the current certificate: %s", err);
		conf_free(c);
		return;
	}
	server_ctx_set(srv, ctx);
	log_info("SIGHUP: reloaded certificate %s and key %s",
	    c->ssl_certificate, c->ssl_private_key);
	conf_free(c);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "confdir", required_argument, NULL, 'c' },
		{ "port", required_argument, NULL, 'p' },
		{ "listen", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "max-connections", required_argument, NULL, 'm' },
		{ "max-connections-per-address", required_argument, NULL,
		    'A' },
		{ "deposit-cache-mb", required_argument, NULL, 'M' },
		{ "legacy-threads", required_argument, NULL, 'L' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct server srv;
	char *confdir = NULL, *defdir = NULL, *listen_addr = NULL;
	struct keyproc_info kinfo;
	char err[1024];
	int ch, port = 0, threads = 0, legacy_threads = -1, debug = 0, sig;
	int max_conns = DEFAULT_MAX_CONNS, per_addr = 0, cache_mb = -1;
	uid_t owner;
	sigset_t sigs;
	SSL_CTX *ctx;

	opterr = 0;  /* getopt's own messages are not "error: ..." */
	while ((ch = getopt_long(argc, argv, ":c:p:l:t:m:dh", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			confdir = optarg;
			break;
		case 'p':
			if (parse_int(optarg, 1, 65535, &port) == -1) {
				cli_error("--port: \"%s\" is not a port number "
				    "(1-65535)", optarg);
				return 2;
			}
			break;
		case 'l':
			listen_addr = optarg;
			break;
		case 't':
			if (parse_int(optarg, 1, MAX_THREADS, &threads) == -1) {
				cli_error("--threads: \"%s\" is not a number "
				    "from 1 to %d", optarg, MAX_THREADS);
				return 2;
			}
			break;
		case 'm':
			if (parse_int(optarg, 1, KT_MAX_CONNS,
			    &max_conns) == -1) {
				cli_error("--max-connections: \"%s\" is not a "
				    "number from 1 to %d", optarg,
				    KT_MAX_CONNS);
				return 2;
			}
			break;
		case 'A':
			if (parse_int(optarg, 1, KT_MAX_CONNS, &per_addr) ==
			    -1) {
				cli_error("--max-connections-per-address: "
				    "\"%s\" is not a number from 1 to %d",
				    optarg, KT_MAX_CONNS);
				return 2;
			}
			break;
		case 'M':
			if (parse_int(optarg, 0, MAX_DEPCACHE_MB, &cache_mb) ==
			    -1) {
				cli_error("--deposit-cache-mb: \"%s\" is not a "
				    "number from 0 to %d", optarg,
				    MAX_DEPCACHE_MB);
				return 2;
			}
			break;
		case 'L':
			if (parse_int(optarg, 0, MAX_THREADS,
				&legacy_threads) == -1) {
				cli_error("--legacy-threads: \"%s\" is not a "
					  "number from 0 to %d",
				    optarg, MAX_THREADS);
				return 2;
			}
			break;
		case 'd':
			debug = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return cli_opt_error("keytrustee-server", NULL, ch,
			    argv);
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		cli_hint("run 'keytrustee-server --help' for usage");
		return 2;
	}
	log_init("keytrustee-server", debug);
	if (confdir == NULL && (confdir = defdir = conf_default_dir()) == NULL)
		fatalx("KEYTRUSTEE_HOME is too long");

	/*
	 * Started as root, the server runs as the owner of its config dir
	 * (the keytrustee account, after ktadmin init), so that everything it
	 * writes there stays the account's, as ktbackup.sh needs.
	 */
	switch (become_owner_of(confdir, &owner)) {
	case -1:
		fatal("cannot switch to the owner (uid %ld) of %s", (long)owner,
		    confdir);
	case 1:
		log_warnx("running as root: %s is owned by root; 'ktadmin init' "
			  "gives it to the keytrustee account",
		    confdir);
		break;
	default:
		log_info("running as uid %ld", (long)owner);
	}
	/*
	 * Nothing the server or its key process runs from now on (gpg-agent,
	 * a password script) may gain privileges: a setuid program would run
	 * as this account.  Inherited over fork and exec.
	 */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("prctl(PR_SET_NO_NEW_PRIVS)");
	memset(&srv, 0, sizeof(srv));
	srv.lfd = srv.hkp_lfd = -1;
	pthread_mutex_init(&srv.ctx_mtx, NULL);
	if (conf_load(confdir, &srv.conf, conf_warn, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (port == 0)
		port = srv.conf->port;
	if (threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n < 1 ? 1 : (n > MAX_THREADS ? MAX_THREADS : (int)n);
	}
	if (legacy_threads == -1) {
		/*
		 * A legacy request waits on the key process's RSA-4096 and on
		 * PostgreSQL: three in flight a core keep the cores busy
		 * (tests/bench/README.md, "Legacy protocol").
		 */
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		legacy_threads = n < 1
		    ? 3
		    : (n > MAX_THREADS / 3 ? MAX_THREADS : 3 * (int)n);
	}

	/*
	 * The data key, held in locked memory, in a process that leaves no
	 * core dump and cannot be ptrace-attached by other processes of the
	 * same user.  The private keys are never here: the key process
	 * (keyproc.h), forked now, before any thread and before anything
	 * secret is read, loads them, decrypts the data key and hands it over.
	 */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	mlock(srv.datakey, sizeof(srv.datakey));
	if (keyproc_start(srv.conf,
		threads + legacy_threads + KP_SPARE_CHANNELS, srv.datakey,
		&kinfo, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if ((ctx = tls_ctx_build(srv.conf, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	server_ctx_set(&srv, ctx);
	if (kinfo.error != NULL)
		fatalx("%s", kinfo.error);
	memcpy(srv.qfpr, kinfo.qfpr, sizeof(srv.qfpr));
	srv.pubkey = kinfo.pubkey;
	srv.pubkeylen = kinfo.pubkeylen;
	if ((srv.self_key = self_key(srv.pubkey, err, sizeof(err))) == NULL)
		fatalx("the server's OpenPGP public key: %s", err);
	/* GPGME still encrypts mail to the contacts' keys. */
	if (pgp_init() == -1)
		fatalx("GnuPG is not usable through GPGME (is gnupg installed?)");
	if (crypto_init() == -1)
		fatalx("OpenSSL lacks AES-256-GCM, SHA-256 or HMAC");
	/*
	 * The clients' public keys are checked in memory (clientkey.c) and
	 * kept in the clients table only: no GnuPG home of theirs is made.
	 */
	pthread_mutex_init(&srv.pgp_mtx, NULL);
	if ((srv.throttle = throttle_new(5, 60,
		 "too many failed registrations from this address; try again "
		 "later")) == NULL ||
	    (srv.hkp_throttle = throttle_new(20, 60,
		 "too many keys posted from this address; try again later")) ==
		NULL)
		fatalx("out of memory");
	if (srv.conf->db_connect == NULL)
		log_warnx("%s: DB_CONNECT is not set; run 'ktadmin db "
		    "--bootstrap' (health reports the database as down)",
		    srv.conf->path);
	else
		migrate_at_start(srv.conf);
	if (mail_init() == -1)
		fatalx("libcurl cannot be initialised");

	srv.nworkers = threads;
	srv.nlegacy = legacy_threads;
	srv.max_conns = raise_nofile(max_conns);
	if (per_addr == 0)
		per_addr = srv.conf->max_conns_per_addr;
	if ((srv.conns = connlimit_new(per_addr)) == NULL)
		fatalx("out of memory");
	srv.depcache_limit = depcache_default(cache_mb);

	/* Signals are taken by this thread only, synchronously. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	keyproc_sigchld(); /* it may have died before SIGCHLD was blocked */
	signal(SIGPIPE, SIG_IGN);

	if (evthread_use_pthreads() == -1)
		fatalx("libevent has no pthreads support");
	if ((srv.lfd = listen_socket(listen_addr, port)) == -1 ||
	    (srv.conf->hkp_port != 0 &&
		(srv.hkp_lfd = listen_socket(listen_addr,
		     srv.conf->hkp_port)) == -1))
		exit(1);
	if ((srv.ha = ha_start(srv.conf, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if ((srv.authfail = authfail_start(&srv)) == NULL)
		fatalx("the audit of failed authentication cannot start");
	/* After the signal mask (threads inherit it) and the HA role. */
	if (mailer_start(&srv, err, sizeof(err)) == -1)
		fatalx("mail sender: %s", err);
	if ((srv.chainer = chainer_start(srv.conf, srv.ha, err,
	    sizeof(err))) == NULL)
		fatalx("%s", err);
	serve_start(&srv);
	log_info("at most %d connections, %d from one address", srv.max_conns,
	    per_addr);
	log_info("serving %s on https://%s:%d/ with %d threads (TLS minimum "
	    "%s) as the %s server", srv.qfpr, listen_addr ? listen_addr : "*", port, threads,
	    srv.conf->tls_min_version_name,
	    ha_is_passive(srv.ha) ? "passive" : "active");

	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload_tls(&srv);
			continue;
		}
		if (sig == SIGCHLD) {
			keyproc_sigchld(); /* exits when it was the key process */
			continue;
		}
		break;
	}
	log_info("%s: draining and shutting down", strsignal(sig));
	atomic_store(&srv.draining, 1);
	serve_stop(&srv);
	authfail_stop(srv.authfail); /* writes the last minute's tallies */
	mailer_stop(&srv);
	chainer_stop(srv.chainer);
	ha_stop(srv.ha);
	keyproc_stop();
	close(srv.lfd);
	if (srv.hkp_lfd != -1)
		close(srv.hkp_lfd);
	SSL_CTX_free(srv.ctx);
	OPENSSL_cleanse(srv.datakey, sizeof(srv.datakey));
	throttle_free(srv.throttle);
	throttle_free(srv.hkp_throttle);
	connlimit_free(srv.conns);
	free(srv.pubkey);
	pgpmsg_pubkey_free(srv.self_key);
	conf_free(srv.conf);
	free(defdir);
	log_info("stopped");
	return 0;
}
