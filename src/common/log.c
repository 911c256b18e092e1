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

/*
 * A warning repeated word for word (a database outage: one per failed
 * request) is written the first time, then at most once every
 * LOG_REPEAT_SECS with how many were left out since the last one written.
 * The LOG_RECENT warnings last seen are remembered; what was left out of
 * one is written, as "LINE (N more since TIME)", by the first line logged
 * after its period, or when it is forgotten for a newer one.
 */
#define LOG_REPEAT_SECS 5
#define LOG_RECENT 32
#define LOG_MSG_MAX 2048

static struct log_recent {
	char line[LOG_MSG_MAX]; /* "" when the slot is free */
	char since[40];		/* the time stamp of the last one written */
	const char *level;
	struct timespec written; /* CLOCK_MONOTONIC */
	struct timespec seen;
	unsigned long more; /* left out since then */
} log_recent[LOG_RECENT];

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

/* Under log_mtx; with r, how many of it were left out since when. */
static void
log_write(const char *ts, const char *level, const char *line,
    const struct log_recent *r)
{
	if (r != NULL && r->more > 0)
		fprintf(stderr, "%sZ %s[%s]: %s (%lu more since %sZ)\n", ts,
		    log_progname, level, line, r->more, r->since);
	else
		fprintf(
		    stderr, "%sZ %s[%s]: %s\n", ts, log_progname, level, line);
}

static int
ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	    (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Under log_mtx: r's line is written at ts; its period starts again. */
static void
log_written(struct log_recent *r, const char *ts, const struct timespec *mono)
{
	r->more = 0;
	r->written = *mono;
	snprintf(r->since, sizeof(r->since), "%s", ts + 11); /* HH:MM:SS.mmm */
}

/* Under log_mtx: what was left out of warnings whose period is over. */
static void
log_flush_recent(const char *ts, const struct timespec *mono)
{
	struct timespec end;
	struct log_recent *r;

	for (r = log_recent; r < log_recent + LOG_RECENT; r++) {
		end = r->written;
		end.tv_sec += LOG_REPEAT_SECS;
		if (r->line[0] != '\0' && r->more > 0 &&
		    !ts_before(mono, &end)) {
			log_write(ts, r->level, r->line, r);
			log_written(r, ts, mono);
		}
	}
}

/*
 * Under log_mtx, after log_flush_recent: whether the warning line is to
 * be written now (1), or is left out and counted (0).
 */
static int
log_repeat(const char *ts, const char *level, const char *line,
    const struct timespec *mono)
{
	struct log_recent *r, *free_slot = NULL, *oldest = NULL;
	struct timespec end;

	for (r = log_recent; r < log_recent + LOG_RECENT; r++) {
		if (r->line[0] == '\0') {
			if (free_slot == NULL)
				free_slot = r;
		} else if (strcmp(r->line, line) == 0)
			break;
		else if (oldest == NULL || ts_before(&r->seen, &oldest->seen))
			oldest = r;
	}
	if (r < log_recent + LOG_RECENT) {
		r->seen = *mono;
		end = r->written;
		end.tv_sec += LOG_REPEAT_SECS;
		if (ts_before(mono, &end)) {
			r->more++;
			return 0;
		}
	} else {
		/* A new one; the one seen longest ago says what it left out. */
		if ((r = free_slot) == NULL) {
			r = oldest;
			if (r->more > 0)
				log_write(ts, r->level, r->line, r);
		}
		snprintf(r->line, sizeof(r->line), "%s", line);
		r->level = level;
		r->seen = *mono;
	}
	log_written(r, ts, mono);
	return 1;
}

static void
vlog(const char *level, const char *suffix, const char *fmt, va_list ap)
{
	char ts[40], line[LOG_MSG_MAX];
	size_t n;
	struct timespec now, mono;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + strlen(ts), sizeof(ts) - strlen(ts), ".%03ld",
	    now.tv_nsec / 1000000);
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	if (suffix != NULL && n < sizeof(line) - 1)
		snprintf(line + n, sizeof(line) - n, ": %s", suffix);
	pthread_mutex_lock(&log_mtx);
	log_flush_recent(ts, &mono);
	if (strcmp(level, "WARNING") != 0 || log_repeat(ts, level, line, &mono))
		log_write(ts, level, line, NULL);
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
