/*
 * replay.c - a /v1 write's request seen before.  The write kept its
 * answer with its request's digest in its own transaction (store/seen.c),
 * so the replay is answered what the first request was, whichever worker
 * or server process took either, and writes nothing but its audit row.
 */
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "log.h"
#include "replay.h"
#include "util.h"

void
replay_answer(struct worker *w, struct http_req *req,
    const struct auth_client *c, const char *object)
{
	char *location = NULL, *body = NULL;
	const char *result;
	struct verdict v;
	int status;

	switch (store_seen_answer(
	    w->store, c->seen, sizeof(c->seen), &status, &location, &body)) {
	case STORE_OK:
		result = "answered";
		break;
	case STORE_NOT_FOUND:
		result = "refused";
		verdict_refuse(&v, 409, "replay",
		    "this signed request was carried out before and its "
		    "answer is no longer kept; sign a new one");
		break;
	default:
		VERDICT_DB_DOWN(&v);
		http_reply_verdict(req, &v);
		return;
	}
	audit(w->srv->ha, w->store,
	    AUDIT_ROW(.actor = c->fpr, .org = c->org, .action = "replay",
		.object = object, .remote = http_peer(req), .result = result));
	if (body == NULL) {
		http_reply_verdict(req, &v);
		return;
	}
	if (location != NULL)
		http_add_header(req, "Location", location);
	http_reply(req, status, "application/json", body, strlen(body));
	free(location);
	free(body);
}
