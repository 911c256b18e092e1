/*
 * replay.h - a /v1 write whose signed request was seen before
 * (docs/api.md, "Replayed requests"): answered as the first time.
 */
#ifndef KT_REPLAY_H
#define KT_REPLAY_H

#include "auth.h"
#include "http.h"
#include "server.h"

/*
 * Answer req, a replay of client c's write on object, with the answer
 * kept with the write (store_seen_answer), or 409 when none is kept any
 * more (503 when the database cannot tell); audited ("replay").
 */
void replay_answer(struct worker *w, struct http_req *req,
    const struct auth_client *c, const char *object);

#endif
