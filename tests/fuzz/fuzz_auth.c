/*
 * fuzz_auth.c - libFuzzer target for auth_parse, the parser of the
 * Authorization header value
 *
 *   KT1-HMAC-SHA256 fp=<40 hex>,ts=<unix seconds>,sig=<64 hex>
 *
 * The input is the header value as httpmsg.c hands it over (a C string).  On
 * success the parts must be what the grammar allows; on failure nothing is
 * checked but the absence of memory errors.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * auth.c's request path (auth_request) calls into the rest of the server;
 * the parser does not.  These stand-ins only satisfy the linker and abort
 * if ever reached.
 */
int
audit(struct worker *w, const char *actor, const char *org,
    const char *action, const char *object, const char *remote,
    const char *result)
{
	(void)w; (void)actor; (void)org; (void)action; (void)object;
	(void)remote; (void)result;
	abort();
}

const char *
db_error(PGresult *res, PGconn *db)
{
	(void)res; (void)db;
	abort();
}

void
http_reply_error(struct http_req *req, int status, const char *code,
    const char *msg)
{
	(void)req; (void)status; (void)code; (void)msg;
	abort();
}

const char *
http_peer(struct http_req *req)
{
	(void)req;
	abort();
}

enum httpmsg_method
http_req_method(const struct http_req *req)
{
	(void)req;
	abort();
}

const char *
http_req_header(const struct http_req *req, const char *name)
{
	(void)req; (void)name;
	abort();
}

int
http_req_header_count(const struct http_req *req, const char *name)
{
	(void)req; (void)name;
	abort();
}

const char *
http_req_uri(const struct http_req *req)
{
	(void)req;
	abort();
}

PGconn *
worker_db(struct worker *w)
{
	(void)w;
	abort();
}

PGresult *
stmt_exec(struct worker *w, PGconn *db, enum stmt_id id,
    const char *const *values, const int *lengths, const int *formats,
    int binary)
{
	(void)w; (void)db; (void)id; (void)values; (void)lengths;
	(void)formats; (void)binary;
	abort();
}

int
authcache_get(struct authcache *ac, const char *fpr,
    struct authcache_entry *out)
{
	(void)ac; (void)fpr; (void)out;
	abort();
}

unsigned long
authcache_gen(struct authcache *ac)
{
	(void)ac;
	abort();
}

void
authcache_put(struct authcache *ac, const struct authcache_entry *e,
    unsigned long gen)
{
	(void)ac; (void)e; (void)gen;
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct auth_header h;
	char *v;
	size_t i, n;

	/* Header values are C strings: copy and terminate the input. */
	if ((v = malloc(size + 1)) == NULL)
		return 0;
	memcpy(v, data, size);
	v[size] = '\0';
	memset(&h, 0xa5, sizeof(h));
	if (auth_parse(v, &h) == 0) {
		/* The scheme and the fingerprint prefix must be there. */
		if (strncmp(v, "KT1-HMAC-SHA256 fp=", 19) != 0)
			abort();
		if (memchr(h.fpr, '\0', sizeof(h.fpr)) == NULL ||
		    strlen(h.fpr) != PGP_FPR_LEN)
			abort();
		for (i = 0; i < PGP_FPR_LEN; i++)
			if (!isxdigit((unsigned char)h.fpr[i]) ||
			    islower((unsigned char)h.fpr[i]))
				abort();
		if (memchr(h.ts, '\0', sizeof(h.ts)) == NULL)
			abort();
		n = strlen(h.ts);
		if (n == 0 || n > 12)
			abort();
		for (i = 0; i < n; i++)
			if (!isdigit((unsigned char)h.ts[i]))
				abort();
		if (h.tsval < 0 || h.tsval != strtoll(h.ts, NULL, 10))
			abort();
	}
	free(v);
	return 0;
}
