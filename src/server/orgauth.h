/*
 * orgauth.h - what an organization's authorization secret decides for a
 * client asking to join it (keytrustee-orgtool set-auth): /v1/register
 * and the legacy protocol's request_activation decide it here, the same
 * way.  A check: a verdict, never an answer.
 */
#ifndef KT_ORGAUTH_H
#define KT_ORGAUTH_H

#include "store/store.h"
#include "throttle.h"
#include "verdict.h"

/*
 * The state of a client that gave the secret given (NULL or "": none) to
 * org o: "active" when o has no secret or this is it (compared in
 * constant time), "pending" when none was given; 0 with *state, or -1
 * with v refusing a wrong one (403 bad_auth), counted against peer by t.
 */
int orgauth_state(struct throttle *t, const char *peer,
    const struct org_row *o, const char *given, const char **state,
    struct verdict *v);

#endif
