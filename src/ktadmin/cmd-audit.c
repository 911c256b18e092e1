/*
 * cmd-audit.c - ktadmin audit: questions to the append-only audit_log
 * without SQL.  Who read this key, when, from where (--object UUID
 * --action deposit_read); what one client did (--client FP); what
 * happened within a time (--since, --until), narrowed by org, action and
 * result.  Rows as an aligned table or JSON lines, newest first, a page
 * at a time by keyset on the rows' ids (never OFFSET: a page costs the
 * same at the end of ten million rows as at the start), through the
 * indexes of migration "audit_query" (src/common/db.c).  A tally of
 * failed authentication (src/server/authfail.c) is one row with its
 * count.  Read-only: it answers on a passive's replica too.
 *
 * The chain's verbs (--verify, --export, --prune-before) are the other
 * half of the command, in auditchain.c; cmd_audit hands them over.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auditchain.h"
#include "conf.h"
#include "crypto.h"
#include "db.h"
#include "ktadmin.h"
#include "log.h"
#include "pgcluster.h"
#include "pgp.h"
#include "util.h"

#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX 10000
/* audit_log.count (migration "audit_count"): the oldest schema asked. */
#define AUDIT_SCHEMA_MIN 10
/* A name of an org, an action or a result, as the server writes them. */
#define AUDIT_NAME_MAX 64
/* Filters, the cursor and the limit: every one a parameter. */
#define AUDIT_PARAMS_MAX 12

/* The columns, in the SELECT's order and the table's. */
enum audit_col {
	COL_ID,
	COL_AT,
	COL_ACTION,
	COL_RESULT,
	COL_ACTOR,
	COL_ORG,
	COL_OBJECT,
	COL_REMOTE,
	COL_COUNT,
	COL_N
};

static const char *const audit_heads[COL_N] = {"ID", "TIME (UTC)", "ACTION",
    "RESULT", "ACTOR", "ORG", "OBJECT", "REMOTE", "COUNT"};
static const char *const audit_keys[COL_N] = {"id", "at", "action",
    "result", "actor", "org", "object", "remote_addr", "count"};

struct audit_query {
	char since[32], until[32]; /* "" or an ISO-8601 UTC time */
	char client[PGP_FPR_LEN + 1];
	char object[CRYPTO_UUID_LEN + 1];
	const char *org, *action, *result;
	long long after;  /* --after-id: -1 when not given */
	long long before; /* --before-id: 0 when not given */
	int limit;
	int json, explain;
};

/* A statement's text and its parameters, filters appended in turn. */
struct audit_sql {
	char text[2048];
	size_t len;
	const char *params[AUDIT_PARAMS_MAX];
	char nums[4][32]; /* the cursor, the limit and its LIMIT, as text */
	int n;
};

static void
audit_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: ktadmin audit [--confdir DIR] [--since T] [--until T] "
	    "[--client FP]\n"
	    "                     [--org ORG] [--action A[,A...]] "
	    "[--object UUID]\n"
	    "                     [--result R[,R...]] [--json] [--limit N]\n"
	    "                     [--before-id ID | --after-id ID] "
	    "[--explain]\n\n"
	    "Ask the append-only audit log who did what, when, from where.  "
	    "Rows are\n"
	    "listed newest first, --limit at a time; the last line on stderr "
	    "tells how\n"
	    "to get the next page.\n\n"
	    "      --since T       rows at or after T\n"
	    "      --until T       rows before T\n"
	    "                      T: 2026-12-08, 2026-12-08T09:30[:00][Z|"
	    "+01:00]\n"
	    "                      (UTC unless it says), now, or a time ago: "
	    "90s, 30m,\n"
	    "                      24h, 7d, 2w\n"
	    "      --client FP     rows of this client (40 hex digits, or "
	    "4096R/...)\n"
	    "      --org ORG       rows of this organization\n"
	    "      --action A      rows of these actions (comma-separated: "
	    "deposit_read,\n"
	    "                      deposit_create, register, auth, ...)\n"
	    "      --object UUID   rows about this deposit\n"
	    "      --result R      rows with these results (ok, not_found, "
	    "...)\n"
	    "      --json          one JSON object per line (id, at, action, "
	    "result,\n"
	    "                      actor, org, object, remote_addr, count)\n"
	    "      --limit N       rows per page, 1-%d (default %d)\n"
	    "      --before-id ID  the page after one that ended at ID: "
	    "older rows\n"
	    "      --after-id ID   rows newer than ID, oldest first (0: from "
	    "the start)\n"
	    "      --explain       show how PostgreSQL answers (EXPLAIN "
	    "ANALYZE), not\n"
	    "                      the rows\n"
	    "  -c, --confdir DIR   config dir (default $KEYTRUSTEE_HOME/"
	    ".keytrustee,\n"
	    "                      KEYTRUSTEE_HOME defaults to %s)\n"
	    "  -h, --help          show this help\n",
	    AUDIT_LIMIT_MAX, AUDIT_LIMIT_DEFAULT, KT_DEFAULT_HOME);
}

/* "error: invalid OPTION \"VALUE\"", a hint, and 2 (a usage error). */
static int
audit_bad(const char *opt, const char *value, const char *hint)
{
	char q[256];

	cli_error("invalid %s \"%s\"", opt, cli_quote(value, q, sizeof(q)));
	cli_hint("%s", hint);
	return 2;
}

/* A list of names (org, action, result): [A-Za-z0-9_.-], commas if list. */
static int
audit_names_ok(const char *s, int list)
{
	size_t n = 0;

	for (; *s != '\0'; s++) {
		if (list && *s == ',') {
			if (n == 0)
				return 0;
			n = 0;
			continue;
		}
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' &&
		    *s != '-')
			return 0;
		if (++n > AUDIT_NAME_MAX)
			return 0;
	}
	return n > 0;
}

/* A row id: 0 .. 2^63-1 (0 only for --after-id). */
static int
audit_id_parse(const char *s, long long *out)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

/* Append text to the statement; -1 when it does not fit. */
static int
audit_sql_add(struct audit_sql *q, const char *text)
{
	size_t n = strlen(text);

	if (q->len + n >= sizeof(q->text))
		return -1;
	memcpy(q->text + q->len, text, n + 1);
	q->len += n;
	return 0;
}

/* " AND <pre>$<the next parameter's number><post>", value that parameter. */
static void
audit_sql_filter(
    struct audit_sql *q, const char *pre, const char *post, const char *value)
{
	char num[16];

	snprintf(num, sizeof(num), "$%d", q->n + 1);
	audit_sql_add(q, " AND ");
	audit_sql_add(q, pre);
	audit_sql_add(q, num);
	audit_sql_add(q, post);
	q->params[q->n++] = value;
}

/*
 * The query of a: its filters as parameters; newest first below --before-id
 * (or from the newest), oldest first above --after-id; limit + 1 rows, the
 * last telling only that there is a next page.  With explain, its plan.
 */
static void
audit_sql_build(struct audit_sql *q, const struct audit_query *a)
{
	int fence;

	memset(q, 0, sizeof(*q));
	audit_sql_add(q, a->explain ? "EXPLAIN (ANALYZE, BUFFERS) " : "");
	audit_sql_add(q,
	    "SELECT id, to_char(at AT TIME ZONE 'UTC', "
	    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), action, result, actor, "
	    "org, object, remote_addr, count FROM audit_log WHERE true");
	if (a->since[0] != '\0')
		audit_sql_filter(q, "at >= ", "::timestamptz", a->since);
	if (a->until[0] != '\0')
		audit_sql_filter(q, "at < ", "::timestamptz", a->until);
	if (a->client[0] != '\0')
		audit_sql_filter(q, "actor = ", "", a->client);
	if (a->org != NULL)
		audit_sql_filter(q, "org = ", "", a->org);
	if (a->action != NULL)
		audit_sql_filter(
		    q, "action = ANY (string_to_array(", ", ','))", a->action);
	if (a->object[0] != '\0')
		audit_sql_filter(q, "object = ", "", a->object);
	if (a->result != NULL)
		audit_sql_filter(
		    q, "result = ANY (string_to_array(", ", ','))", a->result);
	if (a->after >= 0) {
		snprintf(q->nums[0], sizeof(q->nums[0]), "%lld", a->after);
		audit_sql_filter(q, "id > ", "::bigint", q->nums[0]);
	}
	if (a->before > 0) {
		snprintf(q->nums[1], sizeof(q->nums[1]), "%lld", a->before);
		audit_sql_filter(q, "id < ", "::bigint", q->nums[1]);
	}
	/*
	 * The page is in the ids' order; "id + 0" is that order but not the
	 * primary key's, so that PostgreSQL reads the rows through a BRIN
	 * index and sorts them (a top-N sort) rather than walk the key: for
	 * a deposit (the bloom filters of audit_log_object), and for a time
	 * range when the walk would begin outside it (newest first with
	 * --until, oldest first with --since).  It cannot know that ids and
	 * times rise together, nor how rare a deposit is, and would walk the
	 * key past every row before the first match.  Newest first since a
	 * time, and for a client, the walk from the newest row is the fast
	 * way.
	 */
	fence = a->object[0] != '\0' ||
	    (a->after >= 0 ? a->since[0] != '\0' : a->until[0] != '\0');
	audit_sql_add(q, fence ? " ORDER BY id + 0" : " ORDER BY id");
	audit_sql_add(q, a->after >= 0 ? "" : " DESC");
	snprintf(q->nums[2], sizeof(q->nums[2]), "%d", a->limit + 1);
	snprintf(q->nums[3], sizeof(q->nums[3]), " LIMIT $%d::int", q->n + 1);
	audit_sql_add(q, q->nums[3]);
	q->params[q->n++] = q->nums[2];
}

/* A field as the table shows it: "-" for none, control characters escaped. */
static const char *
audit_cell(const PGresult *res, int row, int col, char *buf, size_t len)
{
	if (PQgetisnull(res, row, col))
		return "-";
	if (col == COL_AT) /* seconds are enough to read */
		snprintf(buf, len, "%.19sZ", PQgetvalue(res, row, col));
	else
		cli_quote(PQgetvalue(res, row, col), buf, len);
	return buf;
}

static void
audit_print_table(const PGresult *res, int nrows)
{
	int w[COL_N], i, c, n;
	char buf[512];

	for (c = 0; c < COL_N; c++)
		w[c] = (int)strlen(audit_heads[c]);
	for (i = 0; i < nrows; i++)
		for (c = 0; c < COL_N; c++)
			if ((n = (int)strlen(audit_cell(res, i, c, buf,
				 sizeof(buf)))) > w[c])
				w[c] = n;
	for (i = -1; i < nrows; i++)
		for (c = 0; c < COL_N; c++) {
			const char *v = i == -1 ? audit_heads[c]
			    : audit_cell(res, i, c, buf, sizeof(buf));

			/* Numbers to the right; the count ends the line. */
			if (c == COL_COUNT)
				printf("%*s\n", w[c], v);
			else
				printf(c == COL_ID ? "%*s  " : "%-*s  ", w[c],
				    v);
		}
}

/* One JSON object per row, every key present (null when the row has none). */
static int
audit_print_json(const PGresult *res, int nrows)
{
	json_t *o;
	char *s;
	int i, c;

	for (i = 0; i < nrows; i++) {
		if ((o = json_object()) == NULL)
			return -1;
		for (c = 0; c < COL_N; c++) {
			const char *v = PQgetvalue(res, i, c);
			json_t *j;

			if (PQgetisnull(res, i, c))
				j = json_null();
			else if (c == COL_ID || c == COL_COUNT)
				j = json_integer(strtoll(v, NULL, 10));
			else
				j = json_string(v);
			if (json_object_set_new(o, audit_keys[c], j) == -1) {
				json_decref(o);
				return -1;
			}
		}
		s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(o);
		if (s == NULL)
			return -1;
		printf("%s\n", s);
		free(s);
	}
	return 0;
}

/* An argument as a shell reads it back: quoted unless plain. */
static void
audit_shell_word(FILE *fp, const char *s)
{
	const char *p;

	for (p = s; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && strchr("_./:=@%+,-", *p) == NULL)
			break;
	if (*p == '\0' && *s != '\0') {
		fputs(s, fp);
		return;
	}
	fputc('\'', fp);
	for (p = s; *p != '\0'; p++)
		if (*p == '\'')
			fputs("'\\''", fp);
		else
			fputc(*p, fp);
	fputc('\'', fp);
}

/*
 * The last line on stderr: the command for the next page, this one's
 * arguments but its cursor (skip[i]: argv[i] was one) and the new cursor.
 */
static void
audit_next_hint(int argc, char **argv, const char *skip, const char *opt,
    const char *id)
{
	int i;

	fputs("next page: ktadmin audit", stderr);
	for (i = 1; i < argc; i++)
		if (!skip[i]) {
			fputc(' ', stderr);
			audit_shell_word(stderr, argv[i]);
		}
	fprintf(stderr, " %s %s\n", opt, id);
}

static int
audit_run(PGconn *db, const struct audit_query *a, int argc, char **argv,
    const char *skip)
{
	struct audit_sql q;
	PGresult *res;
	int i, n, more, ret = 1;

	audit_sql_build(&q, a);
	/*
	 * A deposit's rows are found by the bloom index on object, whose
	 * worth PostgreSQL's BRIN cost model cannot see (it judges a BRIN
	 * index by the column's physical order, which uuids do not have): on
	 * a big table it may pick a scan of the whole table instead, and does
	 * so or not by the sample ANALYZE drew.  This session reads only.
	 */
	if (a->object[0] != '\0') {
		res = PQexec(db, "SET enable_seqscan = off");
		PQclear(res);
	}
	res = PQexecParams(db, q.text, q.n, NULL, q.params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		cli_error("cannot read the audit log");
		cli_detail_lines(PQresultErrorMessage(res));
		goto out;
	}
	if (a->explain) {
		for (i = 0; i < PQntuples(res); i++)
			printf("%s\n", PQgetvalue(res, i, 0));
		ret = 0;
		goto out;
	}
	n = PQntuples(res);
	if ((more = n > a->limit))
		n = a->limit;
	if (a->json) {
		if (audit_print_json(res, n) == -1) {
			cli_error("out of memory");
			goto out;
		}
	} else if (n > 0)
		audit_print_table(res, n);
	if (fflush(stdout) == EOF) {
		cli_error("cannot write the rows: %s", strerror(errno));
		goto out;
	}
	if (n == 0)
		fprintf(stderr, "no rows%s\n",
		    a->after >= 0 ? " after that id yet" : "");
	else if (a->after >= 0) /* forward: later rows may come */
		audit_next_hint(argc, argv, skip, "--after-id",
		    PQgetvalue(res, n - 1, COL_ID));
	else if (more)
		audit_next_hint(argc, argv, skip, "--before-id",
		    PQgetvalue(res, n - 1, COL_ID));
	else
		fprintf(stderr, "%d row(s); no older rows\n", n);
	ret = 0;
out:
	PQclear(res);
	return ret;
}

/* Does argv ask for one of the chain's verbs? */
static int
audit_chain_wanted(int argc, char **argv)
{
	static const char *const verbs[] = {
	    "--verify", "--export", "--prune-before"};
	size_t v, n;
	int i;

	for (i = 1; i < argc; i++)
		for (v = 0; v < sizeof(verbs) / sizeof(verbs[0]); v++) {
			n = strlen(verbs[v]);
			if (strncmp(argv[i], verbs[v], n) == 0 &&
			    (argv[i][n] == '\0' || argv[i][n] == '='))
				return 1;
		}
	return 0;
}

/*
 * The cursor option getopt_long just returned is not repeated in the next
 * page's command: mark it, and its argument when that was apart.
 */
static void
audit_skip_cursor(char **argv, char *skip)
{
	skip[optind - 1] = 1;
	if (optarg == argv[optind - 1] && optind >= 2)
		skip[optind - 2] = 1;
}

int
cmd_audit(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"confdir", required_argument, NULL, 'c'},
	    {"since", required_argument, NULL, 'S'},
	    {"until", required_argument, NULL, 'U'},
	    {"client", required_argument, NULL, 'C'},
	    {"org", required_argument, NULL, 'O'},
	    {"action", required_argument, NULL, 'A'},
	    {"object", required_argument, NULL, 'o'},
	    {"result", required_argument, NULL, 'R'},
	    {"json", no_argument, NULL, 'j'},
	    {"limit", required_argument, NULL, 'l'},
	    {"after-id", required_argument, NULL, 'a'},
	    {"before-id", required_argument, NULL, 'b'},
	    {"explain", no_argument, NULL, 'e'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct audit_query a;
	const char *confdir = NULL;
	char *skip = NULL, err[128];
	struct kt_conf *c = NULL;
	struct timespec now;
	PGconn *db = NULL;
	int ch, ret = 2, version;
	size_t i;

	if (audit_chain_wanted(argc, argv))
		return audit_chain_main(argc, argv);
	clock_gettime(CLOCK_REALTIME, &now);
	memset(&a, 0, sizeof(a));
	a.after = -1;
	a.limit = AUDIT_LIMIT_DEFAULT;
	if ((skip = calloc((size_t)argc + 1, 1)) == NULL) {
		cli_error("out of memory");
		return 1;
	}
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			confdir = optarg;
			break;
		case 'S':
		case 'U':
			if (audit_time_parse(optarg, &now,
				ch == 'S' ? a.since : a.until) == -1) {
				ret = audit_bad(ch == 'S' ? "--since time"
							  : "--until time",
				    optarg,
				    "give an ISO-8601 date or time "
				    "(2026-12-08, 2026-12-08T09:30:00Z), "
				    "now, or a time ago (90s, 30m, 24h, 7d, "
				    "2w)");
				goto out;
			}
			break;
		case 'C':
			if (pgp_fpr_parse(optarg, a.client) == -1) {
				ret = audit_bad("fingerprint", optarg,
				    "give 40 hex digits, or 4096R/ followed "
				    "by 40 hex digits, as the client printed "
				    "at registration");
				goto out;
			}
			break;
		case 'O':
			if (!audit_names_ok(optarg, 0)) {
				ret = audit_bad("organization name", optarg,
				    "names are letters, digits, '-' and '_'");
				goto out;
			}
			a.org = optarg;
			break;
		case 'A':
		case 'R':
			if (!audit_names_ok(optarg, 1)) {
				ret = audit_bad(ch == 'A' ? "action" : "result",
				    optarg,
				    "give names as the server writes them "
				    "(deposit_read, ok, ...), separated by "
				    "commas");
				goto out;
			}
			*(ch == 'A' ? &a.action : &a.result) = optarg;
			break;
		case 'o':
			for (i = 0; optarg[i] != '\0' && i < CRYPTO_UUID_LEN;
			     i++)
				a.object[i] = (char)tolower(
				    (unsigned char)optarg[i]);
			a.object[i] = '\0';
			if (optarg[i] != '\0' || !crypto_uuid_ok(a.object)) {
				ret = audit_bad("deposit uuid", optarg,
				    "give a uuid as the server answered it "
				    "(8-4-4-4-12 hex digits)");
				goto out;
			}
			break;
		case 'j':
			a.json = 1;
			break;
		case 'e':
			a.explain = 1;
			break;
		case 'l':
			if (parse_int(optarg, 1, AUDIT_LIMIT_MAX, &a.limit) ==
			    -1) {
				snprintf(err, sizeof(err),
				    "give a number of rows from 1 to %d",
				    AUDIT_LIMIT_MAX);
				ret = audit_bad("--limit", optarg, err);
				goto out;
			}
			break;
		case 'a':
		case 'b':
			if (audit_id_parse(optarg,
				ch == 'a' ? &a.after : &a.before) == -1 ||
			    (ch == 'b' && a.before == 0)) {
				ret = audit_bad(ch == 'a' ? "--after-id"
							  : "--before-id",
				    optarg,
				    "give a row id, as the last line of the "
				    "page before printed it");
				goto out;
			}
			audit_skip_cursor(argv, skip);
			break;
		case 'h':
			audit_usage(stdout);
			fputc('\n', stdout);
			audit_chain_usage(stdout);
			ret = 0;
			goto out;
		default:
			ret = cli_opt_error("ktadmin", "audit", ch, argv);
			goto out;
		}
	}
	if (optind < argc) {
		cli_error("unexpected argument \"%s\"", argv[optind]);
		ret = ktadmin_bad_usage("audit");
		goto out;
	}
	if (a.after >= 0 && a.before > 0) {
		cli_error("give one of --after-id and --before-id");
		ret = ktadmin_bad_usage("audit");
		goto out;
	}
	if (a.since[0] != '\0' && a.until[0] != '\0' &&
	    strcmp(a.since, a.until) >= 0) {
		cli_error("--since (%s) is not before --until (%s)", a.since,
		    a.until);
		goto out;
	}
	ret = 1;
	if (pgcluster_conf_load(confdir, &c) == -1 ||
	    (db = pgcluster_conf_db(c)) == NULL)
		goto out;
	if ((version = db_schema_version(db)) < AUDIT_SCHEMA_MIN) {
		cli_error("the database has no audit log to ask yet (schema "
			  "version %d, older than %d)",
		    version, AUDIT_SCHEMA_MIN);
		cli_hint("start the server once to migrate it");
		goto out;
	}
	ret = audit_run(db, &a, argc, argv, skip);
out:
	PQfinish(db);
	conf_free(c);
	free(skip);
	return ret;
}
