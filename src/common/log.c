/* log.c - logging for daemons and diagnostics for command-line tools. */
#include "log.h"

#include <getopt.h>

#include <errno.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *log_progname = "keytrustee";
static int log_debug_on;
static pthread_mutex_t log_mtx = PTHREAD_MUTEX_INITIALIZER;

void
log_init(const char *progname, int debug)
{
	log_progname = progname;
	log_debug_on = debug;
}

void
log_setverbose(int debug)
{
	log_debug_on = debug;
}

static void
vlog(const char *level, const char *suffix, const char *fmt, va_list ap)
{
	char ts[32], msg[2048];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	pthread_mutex_lock(&log_mtx);
	fprintf(stderr, "%s.%03ldZ %s[%s]: %s%s%s\n", ts, now.tv_nsec / 1000000,
	    log_progname, level, msg, suffix ? ": " : "", suffix ? suffix : "");
	fflush(stderr);
	pthread_mutex_unlock(&log_mtx);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	char *e = strerror(errno);

	va_start(ap, fmt);
	vlog("WARNING", e, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("WARNING", NULL, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("INFO", NULL, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_debug_on)
		return;
	va_start(ap, fmt);
	vlog("DEBUG", NULL, fmt, ap);
	va_end(ap);
}

void
log_ssl(const char *fmt, ...)
{
	va_list ap;
	char buf[256] = "";
	unsigned long e;

	if ((e = ERR_get_error()) != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	va_start(ap, fmt);
	vlog("WARNING", buf[0] ? buf : NULL, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	char *e = strerror(errno);

	va_start(ap, fmt);
	vlog("FATAL", e, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("FATAL", NULL, fmt, ap);
	va_end(ap);
	exit(1);
}

static void
vcli(const char *prefix, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", prefix);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

#define CLI_FN(name, prefix)                \
	void name(const char *fmt, ...)     \
	{                                   \
		va_list ap;                 \
		va_start(ap, fmt);          \
		vcli(prefix, fmt, ap);      \
		va_end(ap);                 \
	}

CLI_FN(cli_error, "error")
CLI_FN(cli_detail, "detail")
CLI_FN(cli_hint, "hint")
CLI_FN(cli_warning, "warning")

const char *
cli_quote(const char *s, char *buf, size_t len)
{
	static const char trunc[] = "...";
	size_t o = 0;
	const unsigned char *p;

	if (len == 0)
		return "";
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		char tmp[8];
		size_t n;

		if (*p < 0x20 || *p == 0x7f)
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", *p);
		else if (*p == '"' || *p == '\\')
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", *p);
		else {
			tmp[0] = (char)*p;
			n = 1;
		}
		if (o + n + sizeof(trunc) > len) {
			if (o + sizeof(trunc) <= len) {
				memcpy(buf + o, trunc, sizeof(trunc));
				return buf;
			}
			break;
		}
		memcpy(buf + o, tmp, n);
		o += n;
	}
	buf[o < len ? o : len - 1] = '\0';
	return buf;
}

int
cli_opt_error(const char *prog, const char *cmd, int ch, char **argv)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";
	char q[256];

	/* A long option names itself in argv; a short one only in optopt. */
	if (strncmp(arg, "--", 2) != 0 && optopt != 0)
		snprintf(q, sizeof(q), "-%c", optopt);
	else
		cli_quote(arg, q, sizeof(q));
	if (ch == ':')
		cli_error("option \"%s\" requires an argument", q);
	else
		cli_error("unknown option \"%s\"", q);
	cli_hint("run '%s%s%s --help' for usage", prog, cmd ? " " : "",
	    cmd ? cmd : "");
	return 2;
}

void
cli_detail_lines(const char *text)
{
	const char *p = text, *nl;

	if (text == NULL)
		return;
	while (*p != '\0') {
		int n;

		nl = strchr(p, '\n');
		n = nl != NULL ? (int)(nl - p) : (int)strlen(p);
		if (n > 0)
			cli_detail("%.*s", n, p);
		if (nl == NULL)
			break;
		p = nl + 1;
	}
}
