/*
 * descriptor.c - load and check the YAML service descriptor (Cloudera's SDL
 * in YAML).  Every error names its place, h2o-style: "file:line: path:
 * reason", with libyaml's mark line + 1.  The structure is checked against
 * one table of kinds (allowed keys, their types, which are required); the
 * rest (names, ranges, references, substitutions) by the checks below it.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "util.h"

enum ftype {
	F_STR,
	F_INT,
	F_BOOL,
	F_SCALAR,
	F_STRLIST,
	F_INTLIST,
	F_STRMAP,
	F_MAP,
	F_LIST
};

struct kind;
struct field {
	const char *key;
	enum ftype type;
	int required;
	const struct kind *sub;
};
struct kind {
	const char *what;
	const struct field *fields;
};

#define END                                                                    \
	{                                                                      \
		NULL, 0, 0, NULL                                               \
	}
static const struct field runas_f[] = {
    {"user", F_STR, 1, NULL}, {"group", F_STR, 0, NULL}, END};
static const struct kind k_runas = {"runAs", runas_f};
static const struct field parcel_f[] = {{"requiredTags", F_STRLIST, 1, NULL},
    {"optionalTags", F_STRLIST, 0, NULL}, {"repoUrl", F_STR, 0, NULL}, END};
static const struct kind k_parcel = {"parcel", parcel_f};
static const struct field param_f[] = {{"name", F_STR, 1, NULL},
    {"label", F_STR, 1, NULL}, {"description", F_STR, 1, NULL},
    {"configName", F_STR, 0, NULL}, {"type", F_STR, 1, NULL},
    {"default", F_SCALAR, 0, NULL}, {"min", F_INT, 0, NULL},
    {"max", F_INT, 0, NULL}, {"validValues", F_STRLIST, 0, NULL},
    {"required", F_BOOL, 0, NULL}, {"sensitive", F_BOOL, 0, NULL},
    {"conformRegex", F_STR, 0, NULL}, END};
static const struct kind k_param = {"parameter", param_f};
static const struct field runner_f[] = {{"program", F_STR, 1, NULL},
    {"args", F_STRLIST, 0, NULL}, {"environmentVariables", F_STRMAP, 0, NULL},
    END};
static const struct kind k_runner = {"runner", runner_f};
static const struct field stop_f[] = {{"timeout", F_INT, 0, NULL}, END};
static const struct kind k_stop = {"stopRunner", stop_f};
static const struct field rule_f[] = {
    {"type", F_STR, 1, NULL}, {"role", F_STR, 1, NULL}, END};
static const struct kind k_rule = {"placement rule", rule_f};
static const struct field topo_f[] = {{"minInstances", F_INT, 0, NULL},
    {"maxInstances", F_INT, 0, NULL}, {"placementRules", F_LIST, 0, &k_rule},
    END};
static const struct kind k_topo = {"topology", topo_f};
static const struct field rcmd_f[] = {{"name", F_STR, 1, NULL},
    {"label", F_STR, 1, NULL}, {"description", F_STR, 1, NULL},
    {"expectedExitCodes", F_INTLIST, 1, NULL},
    {"requiredRoleState", F_STR, 0, NULL},
    {"commandRunner", F_MAP, 1, &k_runner}, {"runAs", F_MAP, 0, &k_runas}, END};
static const struct kind k_rcmd = {"role command", rcmd_f};
static const struct field gen_f[] = {{"filename", F_STR, 1, NULL},
    {"configFormat", F_STR, 1, NULL}, {"includedParams", F_STRLIST, 0, NULL},
    {"mergeInto", F_STR, 0, NULL}, END};
static const struct kind k_gen = {"generator", gen_f};
static const struct field cw_f[] = {{"generators", F_LIST, 0, &k_gen}, END};
static const struct kind k_cw = {"configWriter", cw_f};
static const struct field role_f[] = {{"name", F_STR, 1, NULL},
    {"label", F_STR, 1, NULL}, {"pluralLabel", F_STR, 1, NULL},
    {"runAs", F_MAP, 0, &k_runas}, {"topology", F_MAP, 0, &k_topo},
    {"startRunner", F_MAP, 1, &k_runner}, {"stopRunner", F_MAP, 0, &k_stop},
    {"commands", F_LIST, 0, &k_rcmd}, {"configWriter", F_MAP, 0, &k_cw}, END};
static const struct kind k_role = {"role", role_f};
static const struct field scmd_f[] = {{"name", F_STR, 1, NULL},
    {"label", F_STR, 1, NULL}, {"description", F_STR, 1, NULL},
    {"builtin", F_STR, 0, NULL}, {"roleName", F_STR, 0, NULL},
    {"roleCommand", F_STR, 0, NULL}, {"runMode", F_STR, 0, NULL}, END};
static const struct kind k_scmd = {"service command", scmd_f};
static const struct field sched_f[] = {{"name", F_STR, 1, NULL},
    {"label", F_STR, 1, NULL}, {"command", F_STR, 1, NULL},
    {"cron", F_STR, 1, NULL}, {"keep", F_SCALAR, 0, NULL},
    {"cronFile", F_STR, 0, NULL}, END};
static const struct kind k_sched = {"schedule", sched_f};
static const struct field service_f[] = {{"name", F_STR, 1, NULL},
    {"label", F_STR, 1, NULL}, {"description", F_STR, 1, NULL},
    {"version", F_STR, 1, NULL}, {"runAs", F_MAP, 0, &k_runas},
    {"parcel", F_MAP, 0, &k_parcel}, {"parameters", F_LIST, 0, &k_param},
    {"roles", F_LIST, 1, &k_role}, {"commands", F_LIST, 0, &k_scmd},
    {"schedules", F_LIST, 0, &k_sched}, END};
static const struct kind k_service = {"service", service_f};

static const char *const param_types[] = {"string", "long", "boolean", "port",
    "path", "string_enum", "password", NULL};
static const char *const builtin_vars[] = {
    "host", "user", "group", "active_host", NULL};

/* ------------------------------------------------------------------ */

/* A YAML path like roles[1].startRunner; a too long one is cut. */
static void spath(char *buf, size_t len, const char *fmt, ...) KT_PRINTF(3, 4);

static void
spath(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static void
default_report(
    void *arg, const char *file, int line, const char *path, const char *msg)
{
	(void)arg;
	if (path != NULL && *path != '\0')
		fprintf(stderr, "%s:%d: %s: %s\n", file, line, path, msg);
	else
		fprintf(stderr, "%s:%d: %s\n", file, line, msg);
}

static void derr(struct desc *d, const yaml_node_t *n, const char *path,
    const char *fmt, ...) KT_PRINTF(4, 5);

static void
derr(struct desc *d, const yaml_node_t *n, const char *path, const char *fmt,
    ...)
{
	char msg[1024];
	va_list ap;
	desc_report_fn fn = d->report ? d->report : default_report;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	d->nerrors++;
	fn(d->report_arg, d->file, n ? desc_line(n) : 1, path, msg);
}

int
desc_line(const yaml_node_t *n)
{
	return (int)n->start_mark.line + 1;
}

yaml_node_t *
desc_get(const struct desc *d, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k =
		    yaml_document_get_node((yaml_document_t *)&d->doc, p->key);
		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(
			    (yaml_document_t *)&d->doc, p->value);
	}
	return NULL;
}

const char *
desc_str(const struct desc *d, yaml_node_t *map, const char *key)
{
	yaml_node_t *n = desc_get(d, map, key);

	if (n == NULL || n->type != YAML_SCALAR_NODE)
		return NULL;
	return (const char *)n->data.scalar.value;
}

size_t
desc_len(const yaml_node_t *seq)
{
	if (seq == NULL || seq->type != YAML_SEQUENCE_NODE)
		return 0;
	return (size_t)(seq->data.sequence.items.top -
	    seq->data.sequence.items.start);
}

yaml_node_t *
desc_at(const struct desc *d, yaml_node_t *seq, size_t i)
{
	if (i >= desc_len(seq))
		return NULL;
	return yaml_document_get_node(
	    (yaml_document_t *)&d->doc, seq->data.sequence.items.start[i]);
}

yaml_node_t *
desc_find(const struct desc *d, yaml_node_t *seq, const char *name)
{
	size_t i;

	for (i = 0; i < desc_len(seq); i++) {
		yaml_node_t *n = desc_at(d, seq, i);
		const char *nm = desc_str(d, n, "name");
		if (nm != NULL && strcmp(nm, name) == 0)
			return n;
	}
	return NULL;
}

yaml_node_t *
desc_role(const struct desc *d, const char *name)
{
	return desc_find(d, desc_get(d, d->root, "roles"), name);
}

yaml_node_t *
desc_param(const struct desc *d, const char *name)
{
	return desc_find(d, desc_get(d, d->root, "parameters"), name);
}

yaml_node_t *
desc_service_command(const struct desc *d, const char *name)
{
	return desc_find(d, desc_get(d, d->root, "commands"), name);
}

const char *
desc_run_as(const struct desc *d, yaml_node_t *role, yaml_node_t *cmd)
{
	const char *u;

	if (cmd != NULL &&
	    (u = desc_str(d, desc_get(d, cmd, "runAs"), "user")) != NULL)
		return u;
	if (role != NULL &&
	    (u = desc_str(d, desc_get(d, role, "runAs"), "user")) != NULL)
		return u;
	if ((u = desc_str(d, desc_get(d, d->root, "runAs"), "user")) != NULL)
		return u;
	return "root";
}

/* ------------------------------------------------------------------ */

int
desc_load(struct desc *d, const char *file, const char *buf, size_t len)
{
	yaml_parser_t parser;
	char *data = NULL;
	size_t dlen = 0;
	int ret = -1, parser_ok = 0;

	d->loaded = 0;
	d->root = NULL;
	d->nerrors = 0;
	if ((d->file = strdup(file)) == NULL)
		goto out;
	if (buf == NULL) {
		if (file_read(file, 4 * 1024 * 1024, &data, &dlen) == -1) {
			char m[512];
			snprintf(
			    m, sizeof(m), "cannot read: %s", strerror(errno));
			(d->report ? d->report : default_report)(
			    d->report_arg, file, 0, NULL, m);
			d->nerrors++;
			goto out;
		}
		buf = data;
		len = dlen;
	}
	if (!yaml_parser_initialize(&parser))
		goto out;
	parser_ok = 1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &d->doc)) {
		char m[512];
		snprintf(m, sizeof(m), "YAML: %s%s%s",
		    parser.problem ? parser.problem : "parse error",
		    parser.context ? " " : "",
		    parser.context ? parser.context : "");
		(d->report ? d->report : default_report)(d->report_arg, file,
		    (int)parser.problem_mark.line + 1, NULL, m);
		d->nerrors++;
		goto out;
	}
	d->loaded = 1;
	d->root = yaml_document_get_root_node(&d->doc);
	if (d->root == NULL || d->root->type != YAML_MAPPING_NODE) {
		derr(d, d->root, "",
		    "the descriptor must be a mapping "
		    "(name, label, roles, ...)");
		goto out;
	}
	ret = 0;
out:
	if (parser_ok)
		yaml_parser_delete(&parser);
	free(data);
	return ret;
}

void
desc_free(struct desc *d)
{
	if (d == NULL)
		return;
	if (d->loaded)
		yaml_document_delete(&d->doc);
	d->loaded = 0;
	d->root = NULL;
	free(d->file);
	d->file = NULL;
}

/* ------------------------------------------------------------------ */
/* structure */

static int
is_int(const char *s, long long *v)
{
	char *end;

	if (s == NULL || *s == '\0')
		return 0;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

static const char *
node_type_name(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:
		return "a scalar";
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "empty";
	}
}

static const char *
scalar(const yaml_node_t *n)
{
	return n != NULL && n->type == YAML_SCALAR_NODE
	    ? (const char *)n->data.scalar.value
	    : NULL;
}

static void check_map(
    struct desc *d, yaml_node_t *n, const struct kind *k, const char *path);

static void
check_value(
    struct desc *d, yaml_node_t *v, const struct field *f, const char *path)
{
	char sub[512];
	long long iv;
	size_t i;

	switch (f->type) {
	case F_STR:
	case F_SCALAR:
		if (v->type != YAML_SCALAR_NODE)
			derr(d, v, path, "must be a string, not %s",
			    node_type_name(v));
		break;
	case F_INT:
		if (v->type != YAML_SCALAR_NODE || !is_int(scalar(v), &iv))
			derr(d, v, path, "must be an integer");
		break;
	case F_BOOL:
		if (v->type != YAML_SCALAR_NODE ||
		    (strcmp(scalar(v), "true") != 0 &&
			strcmp(scalar(v), "false") != 0))
			derr(d, v, path, "must be true or false");
		break;
	case F_STRLIST:
	case F_INTLIST:
		if (v->type != YAML_SEQUENCE_NODE) {
			derr(d, v, path, "must be a list, not %s",
			    node_type_name(v));
			break;
		}
		for (i = 0; i < desc_len(v); i++) {
			yaml_node_t *it = desc_at(d, v, i);
			spath(sub, sizeof(sub), "%s[%zu]", path, i);
			if (it->type != YAML_SCALAR_NODE)
				derr(d, it, sub, "must be a string, not %s",
				    node_type_name(it));
			else if (f->type == F_INTLIST &&
			    !is_int(scalar(it), &iv))
				derr(d, it, sub, "must be an integer");
		}
		break;
	case F_STRMAP:
		if (v->type != YAML_MAPPING_NODE) {
			derr(d, v, path, "must be a mapping, not %s",
			    node_type_name(v));
			break;
		}
		{
			yaml_node_pair_t *p;
			for (p = v->data.mapping.pairs.start;
			     p < v->data.mapping.pairs.top; p++) {
				yaml_node_t *kn =
				    yaml_document_get_node(&d->doc, p->key);
				yaml_node_t *vn =
				    yaml_document_get_node(&d->doc, p->value);
				spath(sub, sizeof(sub), "%s.%s", path,
				    scalar(kn) ? scalar(kn) : "?");
				if (vn->type != YAML_SCALAR_NODE)
					derr(d, vn, sub,
					    "must be a string, not %s",
					    node_type_name(vn));
			}
		}
		break;
	case F_MAP:
		check_map(d, v, f->sub, path);
		break;
	case F_LIST:
		if (v->type != YAML_SEQUENCE_NODE) {
			derr(d, v, path, "must be a list of %ss, not %s",
			    f->sub->what, node_type_name(v));
			break;
		}
		for (i = 0; i < desc_len(v); i++) {
			spath(sub, sizeof(sub), "%s[%zu]", path, i);
			check_map(d, desc_at(d, v, i), f->sub, sub);
		}
		break;
	}
}

static void
check_map(
    struct desc *d, yaml_node_t *n, const struct kind *k, const char *path)
{
	const struct field *f;
	yaml_node_pair_t *p, *q;
	char sub[512];

	if (n->type != YAML_MAPPING_NODE) {
		derr(d, n, path, "a %s must be a mapping, not %s", k->what,
		    node_type_name(n));
		return;
	}
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *kn = yaml_document_get_node(&d->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(&d->doc, p->value);
		const char *key = scalar(kn);

		if (key == NULL) {
			derr(d, kn, path, "keys must be strings");
			continue;
		}
		spath(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
		for (q = n->data.mapping.pairs.start; q < p; q++) {
			const char *k2 =
			    scalar(yaml_document_get_node(&d->doc, q->key));
			if (k2 != NULL && strcmp(k2, key) == 0)
				break;
		}
		if (q < p) {
			derr(d, kn, sub, "duplicate key");
			continue;
		}
		for (f = k->fields; f->key != NULL; f++)
			if (strcmp(f->key, key) == 0)
				break;
		if (f->key == NULL) {
			char known[512] = "";
			const struct field *g;
			for (g = k->fields; g->key != NULL; g++) {
				strncat(known, g->key,
				    sizeof(known) - strlen(known) - 3);
				if (g[1].key != NULL)
					strcat(known, ", ");
			}
			derr(d, kn, sub, "unknown key in a %s (known: %s)",
			    k->what, known);
			continue;
		}
		check_value(d, vn, f, sub);
	}
	for (f = k->fields; f->key != NULL; f++)
		if (f->required && desc_get(d, n, f->key) == NULL)
			derr(d, n, path, "missing required key '%s' in a %s",
			    f->key, k->what);
}

/* ------------------------------------------------------------------ */
/* names, ranges, references */

static int
in_list(const char *s, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

static int
entity_name_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
			*s == '_'))
			return 0;
	return 1;
}

/* Report the second of two list items with the same `key` value. */
static void
check_unique(struct desc *d, yaml_node_t *seq, const char *key,
    const char *path, const char *what)
{
	size_t i, j;
	char sub[512];

	for (i = 0; i < desc_len(seq); i++) {
		yaml_node_t *a = desc_at(d, seq, i);
		const char *va = desc_str(d, a, key);
		if (va == NULL)
			continue;
		for (j = 0; j < i; j++) {
			const char *vb = desc_str(d, desc_at(d, seq, j), key);
			if (vb != NULL && strcmp(va, vb) == 0) {
				spath(sub, sizeof(sub), "%s[%zu].%s", path, i,
				    key);
				derr(d, desc_get(d, a, key), sub,
				    "duplicate %s '%s' (first at line %d)",
				    what, va,
				    desc_line(
					desc_get(d, desc_at(d, seq, j), key)));
				break;
			}
		}
	}
}

/* Every ${var} of s must be a parameter or a built-in variable. */
static void
check_subst(struct desc *d, yaml_node_t *n, const char *path)
{
	const char *s = scalar(n), *p, *e;
	char var[256];

	if (s == NULL)
		return;
	for (p = s; (p = strstr(p, "${")) != NULL; p = e + 1) {
		if ((e = strchr(p, '}')) == NULL) {
			derr(d, n, path, "unterminated substitution '%s'", p);
			return;
		}
		if ((size_t)(e - p - 2) >= sizeof(var) || e == p + 2) {
			derr(d, n, path, "empty or too long substitution");
			continue;
		}
		memcpy(var, p + 2, (size_t)(e - p - 2));
		var[e - p - 2] = '\0';
		if (!in_list(var, builtin_vars) && desc_param(d, var) == NULL)
			derr(d, n, path,
			    "has invalid substitution '${%s}': no such "
			    "parameter (nor host, user, group, active_host)",
			    var);
	}
}

static void
check_runner(struct desc *d, yaml_node_t *r, const char *path)
{
	yaml_node_t *prog, *args, *env;
	char sub[512];
	size_t i;

	if (r == NULL || r->type != YAML_MAPPING_NODE)
		return;
	if ((prog = desc_get(d, r, "program")) != NULL && scalar(prog)) {
		const char *s = scalar(prog);
		spath(sub, sizeof(sub), "%s.program", path);
		if (*s == '\0' || *s == '/' || strstr(s, "..") != NULL)
			derr(d, prog, sub,
			    "must be a path inside the CSD (like "
			    "scripts/control.sh), not '%s'",
			    s);
	}
	args = desc_get(d, r, "args");
	for (i = 0; i < desc_len(args); i++) {
		spath(sub, sizeof(sub), "%s.args[%zu]", path, i);
		check_subst(d, desc_at(d, args, i), sub);
	}
	if ((env = desc_get(d, r, "environmentVariables")) != NULL &&
	    env->type == YAML_MAPPING_NODE) {
		yaml_node_pair_t *p;
		for (p = env->data.mapping.pairs.start;
		     p < env->data.mapping.pairs.top; p++) {
			yaml_node_t *kn =
			    yaml_document_get_node(&d->doc, p->key);
			const char *k = scalar(kn) ? scalar(kn) : "?";
			const char *c;
			spath(sub, sizeof(sub), "%s.environmentVariables.%s",
			    path, k);
			for (c = k; *c; c++)
				if (!((*c >= 'A' && *c <= 'Z') ||
					(*c >= 'a' && *c <= 'z') ||
					(*c >= '0' && *c <= '9') || *c == '_'))
					break;
			if (*c != '\0' || *k == '\0' ||
			    (*k >= '0' && *k <= '9'))
				derr(d, kn, sub,
				    "not a valid environment variable name");
			check_subst(
			    d, yaml_document_get_node(&d->doc, p->value), sub);
		}
	}
}

static int
get_int(struct desc *d, yaml_node_t *map, const char *key, long long *v)
{
	return is_int(desc_str(d, map, key), v);
}

const char *
desc_check_value(const struct desc *d, yaml_node_t *param, const char *value,
    char *buf, size_t len)
{
	const char *type = desc_str(d, param, "type");
	long long v, lo, hi;
	size_t i;

	if (type == NULL)
		return NULL;
	if (strcmp(type, "port") == 0) {
		if (!is_int(value, &v) || v < 1 || v > 65535) {
			snprintf(
			    buf, len, "'%s' is not a port (1-65535)", value);
			return buf;
		}
	} else if (strcmp(type, "long") == 0) {
		if (!is_int(value, &v)) {
			snprintf(buf, len, "'%s' is not an integer", value);
			return buf;
		}
		if (get_int((struct desc *)d, param, "min", &lo) && v < lo) {
			snprintf(
			    buf, len, "%lld is below the minimum %lld", v, lo);
			return buf;
		}
		if (get_int((struct desc *)d, param, "max", &hi) && v > hi) {
			snprintf(
			    buf, len, "%lld is above the maximum %lld", v, hi);
			return buf;
		}
	} else if (strcmp(type, "boolean") == 0) {
		if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
			snprintf(buf, len, "'%s' is not true or false", value);
			return buf;
		}
	} else if (strcmp(type, "path") == 0) {
		if (*value != '\0' && *value != '/') {
			snprintf(
			    buf, len, "'%s' is not an absolute path", value);
			return buf;
		}
	} else if (strcmp(type, "string_enum") == 0) {
		yaml_node_t *vv = desc_get(d, param, "validValues");
		for (i = 0; i < desc_len(vv); i++) {
			const char *s = scalar(desc_at(d, vv, i));
			if (s != NULL && strcmp(s, value) == 0)
				return NULL;
		}
		snprintf(buf, len, "'%s' is not one of validValues", value);
		return buf;
	}
	return NULL;
}

static void
check_params(struct desc *d)
{
	yaml_node_t *ps = desc_get(d, d->root, "parameters");
	char sub[512], buf[256];
	long long lo, hi;
	size_t i;

	check_unique(d, ps, "name", "parameters", "parameter name");
	check_unique(d, ps, "configName", "parameters", "configName");
	for (i = 0; i < desc_len(ps); i++) {
		yaml_node_t *p = desc_at(d, ps, i);
		const char *type = desc_str(d, p, "type");
		yaml_node_t *def = desc_get(d, p, "default");
		const char *why;

		if (p->type != YAML_MAPPING_NODE || type == NULL)
			continue;
		spath(sub, sizeof(sub), "parameters[%zu].type", i);
		if (!in_list(type, param_types)) {
			derr(d, desc_get(d, p, "type"), sub,
			    "unknown parameter type '%s' (known: string, "
			    "long, boolean, port, path, string_enum, "
			    "password)",
			    type);
			continue;
		}
		if (strcmp(type, "string_enum") == 0 &&
		    desc_len(desc_get(d, p, "validValues")) == 0) {
			spath(sub, sizeof(sub), "parameters[%zu]", i);
			derr(d, p, sub, "a string_enum needs validValues");
			continue;
		}
		if (get_int(d, p, "min", &lo) && get_int(d, p, "max", &hi) &&
		    lo > hi) {
			spath(sub, sizeof(sub), "parameters[%zu].min", i);
			derr(d, desc_get(d, p, "min"), sub,
			    "min %lld is greater than max %lld", lo, hi);
		}
		if (def != NULL && scalar(def) != NULL &&
		    (why = desc_check_value(
			 d, p, scalar(def), buf, sizeof(buf))) != NULL) {
			spath(sub, sizeof(sub), "parameters[%zu].default", i);
			derr(d, def, sub, "%s", why);
		}
	}
}

static void
check_roles(struct desc *d)
{
	yaml_node_t *rs = desc_get(d, d->root, "roles");
	char sub[512];
	size_t i, j;

	check_unique(d, rs, "name", "roles", "role name");
	for (i = 0; i < desc_len(rs); i++) {
		yaml_node_t *r = desc_at(d, rs, i), *topo, *rules, *cmds, *gens;
		const char *name = desc_str(d, r, "name");
		long long mn = 1, mx = -1;

		if (r->type != YAML_MAPPING_NODE)
			continue;
		if (name != NULL && !entity_name_ok(name)) {
			spath(sub, sizeof(sub), "roles[%zu].name", i);
			derr(d, desc_get(d, r, "name"), sub,
			    "'%s' is not an entity name ([A-Z0-9_]+)", name);
		}
		topo = desc_get(d, r, "topology");
		get_int(d, topo, "minInstances", &mn);
		if (get_int(d, topo, "maxInstances", &mx) && mx < mn) {
			spath(sub, sizeof(sub),
			    "roles[%zu].topology.maxInstances", i);
			derr(d, desc_get(d, topo, "maxInstances"), sub,
			    "maxInstances %lld is less than minInstances %lld",
			    mx, mn);
		}
		if (mn < 0) {
			spath(sub, sizeof(sub),
			    "roles[%zu].topology.minInstances", i);
			derr(d, desc_get(d, topo, "minInstances"), sub,
			    "minInstances must not be negative");
		}
		rules = desc_get(d, topo, "placementRules");
		for (j = 0; j < desc_len(rules); j++) {
			yaml_node_t *ru = desc_at(d, rules, j);
			const char *t = desc_str(d, ru, "type");
			const char *other = desc_str(d, ru, "role");
			if (t != NULL && strcmp(t, "alwaysWith") != 0 &&
			    strcmp(t, "neverWith") != 0) {
				spath(sub, sizeof(sub),
				    "roles[%zu].topology.placementRules[%zu]."
				    "type",
				    i, j);
				derr(d, desc_get(d, ru, "type"), sub,
				    "must be alwaysWith or neverWith, not "
				    "'%s'",
				    t);
			}
			if (other == NULL)
				continue;
			spath(sub, sizeof(sub),
			    "roles[%zu].topology.placementRules[%zu].role", i,
			    j);
			if (desc_role(d, other) == NULL)
				derr(d, desc_get(d, ru, "role"), sub,
				    "has invalid reference: no role '%s'",
				    other);
			else if (name != NULL && strcmp(other, name) == 0)
				derr(d, desc_get(d, ru, "role"), sub,
				    "a role cannot be placed relative to "
				    "itself");
		}
		spath(sub, sizeof(sub), "roles[%zu].startRunner", i);
		check_runner(d, desc_get(d, r, "startRunner"), sub);
		cmds = desc_get(d, r, "commands");
		spath(sub, sizeof(sub), "roles[%zu].commands", i);
		check_unique(d, cmds, "name", sub, "role command name");
		for (j = 0; j < desc_len(cmds); j++) {
			yaml_node_t *c = desc_at(d, cmds, j), *codes;
			const char *st = desc_str(d, c, "requiredRoleState");
			size_t k;
			long long code;

			if (c->type != YAML_MAPPING_NODE)
				continue;
			spath(sub, sizeof(sub),
			    "roles[%zu].commands[%zu].commandRunner", i, j);
			check_runner(d, desc_get(d, c, "commandRunner"), sub);
			if (st != NULL && strcmp(st, "running") != 0 &&
			    strcmp(st, "stopped") != 0) {
				spath(sub, sizeof(sub),
				    "roles[%zu].commands[%zu]."
				    "requiredRoleState",
				    i, j);
				derr(d, desc_get(d, c, "requiredRoleState"),
				    sub, "must be running or stopped, not '%s'",
				    st);
			}
			codes = desc_get(d, c, "expectedExitCodes");
			spath(sub, sizeof(sub),
			    "roles[%zu].commands[%zu].expectedExitCodes", i, j);
			if (codes != NULL &&
			    codes->type == YAML_SEQUENCE_NODE &&
			    desc_len(codes) == 0)
				derr(d, codes, sub, "must not be empty");
			for (k = 0; k < desc_len(codes); k++)
				if (is_int(
					scalar(desc_at(d, codes, k)), &code) &&
				    (code < 0 || code > 255))
					derr(d, desc_at(d, codes, k), sub,
					    "exit code %lld is out of range "
					    "0-255",
					    code);
		}
		gens =
		    desc_get(d, desc_get(d, r, "configWriter"), "generators");
		spath(
		    sub, sizeof(sub), "roles[%zu].configWriter.generators", i);
		check_unique(d, gens, "filename", sub, "filename");
		for (j = 0; j < desc_len(gens); j++) {
			yaml_node_t *g = desc_at(d, gens, j), *inc;
			const char *fmt = desc_str(d, g, "configFormat");
			const char *fn = desc_str(d, g, "filename");
			size_t k;

			if (fmt != NULL && strcmp(fmt, "json") != 0 &&
			    strcmp(fmt, "properties") != 0) {
				spath(sub, sizeof(sub),
				    "roles[%zu].configWriter.generators[%zu]."
				    "configFormat",
				    i, j);
				derr(d, desc_get(d, g, "configFormat"), sub,
				    "must be json or properties, not '%s'",
				    fmt);
			}
			if (fn != NULL &&
			    (*fn == '\0' || strchr(fn, '/') != NULL)) {
				spath(sub, sizeof(sub),
				    "roles[%zu].configWriter.generators[%zu]."
				    "filename",
				    i, j);
				derr(d, desc_get(d, g, "filename"), sub,
				    "must be a plain file name, not '%s'", fn);
			}
			spath(sub, sizeof(sub),
			    "roles[%zu].configWriter.generators[%zu]."
			    "mergeInto",
			    i, j);
			check_subst(d, desc_get(d, g, "mergeInto"), sub);
			inc = desc_get(d, g, "includedParams");
			for (k = 0; k < desc_len(inc); k++) {
				const char *pn = scalar(desc_at(d, inc, k));
				spath(sub, sizeof(sub),
				    "roles[%zu].configWriter.generators[%zu]."
				    "includedParams[%zu]",
				    i, j, k);
				if (pn != NULL && desc_param(d, pn) == NULL)
					derr(d, desc_at(d, inc, k), sub,
					    "has invalid reference: no "
					    "parameter '%s'",
					    pn);
				else if (pn != NULL &&
				    desc_str(d, desc_param(d, pn),
					"configName") == NULL)
					derr(d, desc_at(d, inc, k), sub,
					    "parameter '%s' has no "
					    "configName to write",
					    pn);
			}
		}
	}
}

static void
check_commands(struct desc *d)
{
	static const char *const builtins[] = {
	    "start", "stop", "restart", NULL};
	yaml_node_t *cs = desc_get(d, d->root, "commands");
	yaml_node_t *ss = desc_get(d, d->root, "schedules");
	char sub[512];
	size_t i;

	check_unique(d, cs, "name", "commands", "command name");
	for (i = 0; i < desc_len(cs); i++) {
		yaml_node_t *c = desc_at(d, cs, i), *role;
		const char *b = desc_str(d, c, "builtin");
		const char *rn = desc_str(d, c, "roleName");
		const char *rc = desc_str(d, c, "roleCommand");
		const char *rm = desc_str(d, c, "runMode");

		if (c->type != YAML_MAPPING_NODE)
			continue;
		spath(sub, sizeof(sub), "commands[%zu]", i);
		if (b != NULL) {
			if (!in_list(b, builtins))
				derr(d, desc_get(d, c, "builtin"), sub,
				    "builtin must be start, stop or restart, "
				    "not '%s'",
				    b);
			if (rn != NULL || rc != NULL)
				derr(d, c, sub,
				    "a builtin command takes no roleName or "
				    "roleCommand");
			continue;
		}
		if (rn == NULL || rc == NULL) {
			derr(d, c, sub,
			    "needs roleName and roleCommand (or builtin)");
			continue;
		}
		if (rm != NULL && strcmp(rm, "all") != 0 &&
		    strcmp(rm, "single") != 0) {
			spath(sub, sizeof(sub), "commands[%zu].runMode", i);
			derr(d, desc_get(d, c, "runMode"), sub,
			    "must be all or single, not '%s'", rm);
		}
		if ((role = desc_role(d, rn)) == NULL) {
			spath(sub, sizeof(sub), "commands[%zu].roleName", i);
			derr(d, desc_get(d, c, "roleName"), sub,
			    "has invalid reference: no role '%s'", rn);
			continue;
		}
		if (desc_find(d, desc_get(d, role, "commands"), rc) == NULL) {
			spath(sub, sizeof(sub), "commands[%zu].roleCommand", i);
			derr(d, desc_get(d, c, "roleCommand"), sub,
			    "has invalid reference: role %s has no command "
			    "'%s'",
			    rn, rc);
		}
	}
	check_unique(d, ss, "name", "schedules", "schedule name");
	for (i = 0; i < desc_len(ss); i++) {
		yaml_node_t *s = desc_at(d, ss, i);
		const char *cmd = desc_str(d, s, "command");
		const char *cron = desc_str(d, s, "cron");
		int fields = 0, inword = 0;
		const char *p;

		if (s->type != YAML_MAPPING_NODE)
			continue;
		if (cmd != NULL && desc_service_command(d, cmd) == NULL) {
			spath(sub, sizeof(sub), "schedules[%zu].command", i);
			derr(d, desc_get(d, s, "command"), sub,
			    "has invalid reference: no service command '%s'",
			    cmd);
		}
		for (p = cron; p != NULL && *p; p++) {
			if (*p == ' ' || *p == '\t')
				inword = 0;
			else if (!inword && ++fields)
				inword = 1;
		}
		if (cron != NULL && fields != 5) {
			spath(sub, sizeof(sub), "schedules[%zu].cron", i);
			derr(d, desc_get(d, s, "cron"), sub,
			    "'%s' is not a 5-field cron time", cron);
		}
		spath(sub, sizeof(sub), "schedules[%zu].keep", i);
		check_subst(d, desc_get(d, s, "keep"), sub);
		spath(sub, sizeof(sub), "schedules[%zu].cronFile", i);
		check_subst(d, desc_get(d, s, "cronFile"), sub);
	}
}

int
desc_validate(struct desc *d)
{
	const char *name;

	if (d->root == NULL || d->root->type != YAML_MAPPING_NODE)
		return d->nerrors ? d->nerrors : 1;
	check_map(d, d->root, &k_service, "");
	if ((name = desc_str(d, d->root, "name")) != NULL &&
	    !entity_name_ok(name))
		derr(d, desc_get(d, d->root, "name"), "name",
		    "'%s' is not an entity name ([A-Z0-9_]+)", name);
	check_params(d);
	check_roles(d);
	check_commands(d);
	return d->nerrors;
}
