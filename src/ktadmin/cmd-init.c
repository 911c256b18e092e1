/*
 * cmd-init.c - ktadmin init: make (or complete) a server's config dir:
 * keytrustee.conf, the OpenPGP key with the dir as GnuPG home, the
 * data key (datakey.gpg, encrypted to that OpenPGP key), the
 * self-signed TLS certificate under .ssl/, logging.conf.  On an existing
 * dir (the passive host after rsync) it keeps what is there.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cert.h"
#include "conf.h"
#include "datakey.h"
#include "ktadmin.h"
#include "log.h"
#include "pgp.h"
#include "util.h"

#define INIT_PGP_BITS 4096

#define INIT_ACCOUNT "keytrustee"

static const char logging_conf[] =
    "# keytrustee-server logging.  level: debug, info or warning.\n"
    "# Messages go to standard error, where the service manager (kt-agent,\n"
    "# systemd) collects them.\n"
    "[logging]\n"
    "level = info\n";

static void
init_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ktadmin init [--confdir DIR] [--hostname NAME] "
	    "[--tls-key ecdsa|rsa]\n\n"
	    "Create the Key Trustee Server configuration directory, or complete\n"
	    "an existing one (keeping its OpenPGP keyring).\n\n"
	    "  -c, --confdir DIR    config dir (default "
	    "$KEYTRUSTEE_HOME/.keytrustee,\n"
	    "                       KEYTRUSTEE_HOME defaults to %s)\n"
	    "      --hostname NAME  host name for the key's uid and the "
	    "certificate\n"
	    "                       (default: this host's FQDN)\n"
	    "      --tls-key TYPE   key of the self-signed certificate: ecdsa "
	    "(P-256,\n"
	    "                       default) or rsa (4096 bits)\n"
	    "  -h, --help           show this help\n", KT_DEFAULT_HOME);
}

static char *
host_fqdn(void)
{
	char host[256];
	struct addrinfo hints, *ai = NULL;
	char *ret;

	if (gethostname(host, sizeof(host)) == -1)
		return strdup("localhost");
	host[sizeof(host) - 1] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_CANONNAME;
	if (getaddrinfo(host, NULL, &hints, &ai) == 0 && ai->ai_canonname)
		ret = strdup(ai->ai_canonname);
	else
		ret = strdup(host);
	if (ai != NULL)
		freeaddrinfo(ai);
	return ret;
}

static int
hostname_ok(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > 253)
		return 0;
	for (; *h; h++)
		if (!(('a' <= *h && *h <= 'z') || ('A' <= *h && *h <= 'Z') ||
		    ('0' <= *h && *h <= '9') || *h == '-' || *h == '.' ||
		    *h == ':'))
			return 0;
	return 1;
}

/*
 * The config dir, 0700.  As root, its missing parents are made first (the
 * guide's --confdir /var/lib/keytrustee/.keytrustee on a fresh host), 0700
 * and the account's like the home kt-account.sh makes; otherwise a missing
 * parent is an error, as mkdir has it.
 */
static int
init_confdir(const char *confdir)
{
	struct stat st;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;

	if (geteuid() == 0) {
		(void)account_lookup(INIT_ACCOUNT, &uid, &gid);
		if (dir_ensure_parents(confdir, 0700, uid, gid) == -1) {
			cli_error("cannot create the parents of config dir "
				  "%s: %s",
			    confdir, strerror(errno));
			return -1;
		}
	}
	if (dir_ensure(confdir, 0700) == -1) {
		cli_error("cannot create config dir %s: %s", confdir,
		    strerror(errno));
		if (errno == ENOENT)
			cli_hint("create its parent directory first, or run "
				 "ktadmin init as root");
		return -1;
	}
	if (stat(confdir, &st) == 0 && (st.st_mode & 077) != 0) {
		cli_warning("%s had mode %04o; set to 0700", confdir,
		    (unsigned)(st.st_mode & 07777));
		if (chmod(confdir, 0700) == -1) {
			cli_error("chmod %s: %s", confdir, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static struct kt_conf *
init_conf(const char *confdir, const char *hostname, int hostname_given)
{
	struct kt_conf *c = NULL;
	char path[PATH_MAX], err[1024];

	if (path_join(path, sizeof(path), confdir, KT_CONF_FILE) == -1)
		return NULL;
	if (!file_exists(path)) {
		if ((c = conf_new_default(confdir, hostname)) == NULL) {
			cli_error("out of memory");
			return NULL;
		}
	} else {
		if (conf_load(confdir, &c, NULL, err, sizeof(err)) == -1) {
			cli_error("%s", err);
			cli_hint("fix or remove %s and run ktadmin init again",
			    path);
			return NULL;
		}
		if (hostname_given &&
		    conf_set_str(c, "HOSTNAME", hostname) == -1) {
			conf_free(c);
			return NULL;
		}
	}
	if (conf_save(c) == -1) {
		cli_error("cannot write %s: %s", path, strerror(errno));
		conf_free(c);
		return NULL;
	}
	return c;
}

static int
init_tls(const struct kt_conf *c, enum cert_keytype ktype)
{
	char ssldir[PATH_MAX], err[512];
	int have_cert = file_exists(c->ssl_certificate);
	int have_key = file_exists(c->ssl_private_key);

	if (have_cert && have_key)
		return 0;
	if (have_cert != have_key) {
		cli_error("%s exists but %s does not",
		    have_cert ? c->ssl_certificate : c->ssl_private_key,
		    have_cert ? c->ssl_private_key : c->ssl_certificate);
		cli_hint("restore the missing file, or move both away to have "
		    "a new self-signed pair made");
		return -1;
	}
	if (path_join(ssldir, sizeof(ssldir), c->confdir, ".ssl") == -1 ||
	    dir_ensure(ssldir, 0700) == -1) {
		cli_error("cannot create %s: %s", ssldir, strerror(errno));
		return -1;
	}
	if (cert_make_selfsigned(c->ssl_certificate, c->ssl_private_key,
	    c->hostname, ktype, err, sizeof(err)) == -1) {
		cli_error("%s", err);
		return -1;
	}
	printf("Created self-signed certificate %s for %s\n",
	    c->ssl_certificate, c->hostname);
	return 0;
}

int
cmd_init(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "confdir", required_argument, NULL, 'c' },
		{ "hostname", required_argument, NULL, 'H' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char *confdir = NULL, *hostname = NULL, *defdir = NULL;
	char fpr[PGP_FPR_LEN + 1], qfpr[PGP_QFPR_MAX], uid[512], err[1024];
	char lpath[PATH_MAX];
	enum cert_keytype ktype = CERT_KEY_ECDSA;
	struct kt_conf *c = NULL;
	int ch, r, ret = 1, hostname_given = 0;
	uid_t owner_uid;
	gid_t owner_gid;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			confdir = optarg;
			break;
		case 'H':
			hostname = optarg;
			hostname_given = 1;
			break;
		case 'k':
			if (strcmp(optarg, "ecdsa") == 0)
				ktype = CERT_KEY_ECDSA;
			else if (strcmp(optarg, "rsa") == 0)
				ktype = CERT_KEY_RSA;
			else {
				cli_error("--tls-key: unknown key type \"%s\"",
				    optarg);
				cli_hint("use ecdsa or rsa");
				return 2;
			}
			break;
		case 'h':
			init_usage(stdout);
			return 0;
		default:
			return cli_opt_error("ktadmin", "init", ch, argv);
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		return ktadmin_bad_usage("init");
	}
	if (hostname != NULL && !hostname_ok(hostname)) {
		cli_error("--hostname: \"%s\" is not a valid host name",
		    hostname);
		return 2;
	}
	if (confdir == NULL) {
		if ((defdir = conf_default_dir()) == NULL) {
			cli_error("KEYTRUSTEE_HOME is too long");
			return 2;
		}
		confdir = defdir;
	}
	if (hostname == NULL && (hostname = host_fqdn()) == NULL)
		goto out;
	umask(077);
	if (init_confdir(confdir) == -1)
		goto out;
	if ((c = init_conf(confdir, hostname, hostname_given)) == NULL)
		goto out;
	if (pgp_init() == -1) {
		cli_error("GnuPG (gpg) is not usable through GPGME");
		cli_hint("install the gnupg package");
		goto out;
	}
	r = pgp_secret_key(confdir, fpr, qfpr, err, sizeof(err));
	if (r == -1) {
		cli_error("%s", err);
		goto out;
	}
	if (r == 1) {
		snprintf(uid, sizeof(uid),
		    "keytrustee (keytrustee Server Key) <keytrustee@%s>",
		    c->hostname);
		printf("Generating %u-bit RSA OpenPGP key for %s ...\n",
		    INIT_PGP_BITS, uid);
		fflush(stdout);
		if (pgp_genkey(confdir, uid, INIT_PGP_BITS, 1, err,
		    sizeof(err)) == -1 ||
		    pgp_secret_key(confdir, fpr, qfpr, err, sizeof(err)) != 0) {
			cli_error("%s", err);
			goto out;
		}
	}
	/* The data key, encrypted to the key above; an existing one stays. */
	if ((r = datakey_create(confdir, fpr, err, sizeof(err))) == -1) {
		cli_error("%s", err);
		goto out;
	}
	if (r == 0)
		printf("Created data key %s/%s\n", confdir, DATAKEY_FILE);
	if (init_tls(c, ktype) == -1)
		goto out;
	if (path_join(lpath, sizeof(lpath), confdir, "logging.conf") == 0 &&
	    !file_exists(lpath) && file_write_atomic(lpath, logging_conf,
	    strlen(logging_conf), 0644) == -1) {
		cli_error("cannot write %s: %s", lpath, strerror(errno));
		goto out;
	}
	/*
	 * As the guide's layout has it, the service account owns the config
	 * dir (the server and ktbackup.sh run as keytrustee); the gpg-agent
	 * GnuPG started for root goes first, or its root-owned sockets would
	 * stand in the account's way.
	 */
	pgp_kill_agent(confdir);
	if (geteuid() == 0 && account_lookup(INIT_ACCOUNT, &owner_uid, &owner_gid) == 0 &&
	    chown_tree_to_account(confdir, INIT_ACCOUNT) == -1) {
		cli_error("cannot give %s to the %s account: %s", confdir,
		    INIT_ACCOUNT, strerror(errno));
		goto out;
	}
	printf("Initialized directory for %s\n", qfpr);
	ret = 0;
out:
	conf_free(c);
	if (!hostname_given)
		free(hostname);
	free(defdir);
	return ret;
}
