/* log.h - logging for daemons and diagnostics for command-line tools. */
#ifndef KT_LOG_H
#define KT_LOG_H

#include <stdarg.h>
#include <stddef.h>

#define KT_PRINTF(f, a) __attribute__((format(printf, f, a)))

/*
 * Daemon logging: to stderr (foreground) with a time stamp and level.  A
 * warning repeated word for word is written at most once every 5 s, with
 * the count of those left out (log.c).
 */
void log_init(const char *progname, int debug);
void log_setverbose(int debug);
void log_warn(const char *, ...) KT_PRINTF(1, 2);  /* appends strerror(errno) */
void log_warnx(const char *, ...) KT_PRINTF(1, 2);
void log_info(const char *, ...) KT_PRINTF(1, 2);
void log_debug(const char *, ...) KT_PRINTF(1, 2);
void log_ssl(const char *, ...) KT_PRINTF(1, 2);   /* appends the OpenSSL queue */
__attribute__((noreturn)) void fatal(const char *, ...) KT_PRINTF(1, 2);
__attribute__((noreturn)) void fatalx(const char *, ...) KT_PRINTF(1, 2);

/*
 * Command-line diagnostics, PostgreSQL style:
 *   error: <what went wrong>
 *   detail: <more>
 *   hint: <what to do>
 */
void cli_error(const char *, ...) KT_PRINTF(1, 2);
void cli_detail(const char *, ...) KT_PRINTF(1, 2);
void cli_hint(const char *, ...) KT_PRINTF(1, 2);
void cli_warning(const char *, ...) KT_PRINTF(1, 2);
/* Each line of a multi-line message (libpq's, a program's) as a detail. */
void cli_detail_lines(const char *text);

/* s with control characters, quotes and backslashes escaped, into buf. */
const char *cli_quote(const char *s, char *buf, size_t len);
/*
 * Report what getopt_long refused (opterr = 0, optstring starting with
 * ':' so that a missing argument returns ':'), with a hint to run
 * 'PROG [CMD] --help'.  Returns 2, the exit code of a usage error.
 */
int cli_opt_error(const char *prog, const char *cmd, int ch, char **argv);

#endif
