/* throttle.h - attempts per remote address (see throttle.c). */
#ifndef KT_THROTTLE_H
#define KT_THROTTLE_H

#include "verdict.h"

/* max attempts a window (seconds); refusal: the 429's text. */
struct throttle *throttle_new(unsigned max, int window, const char *refusal);
void throttle_free(struct throttle *t);
/* 1 when addr has failed too often in this window (seconds left in retry). */
int throttle_blocked(struct throttle *t, const char *addr, int *retry);
/* 0 when addr may try to register; -1 with v refusing it (429). */
int throttle_check(struct throttle *t, const char *addr, struct verdict *v);
/* Count one attempt (a failure) of addr. */
void throttle_fail(struct throttle *t, const char *addr);
/* throttle_check, then count this attempt when it may go on. */
int throttle_take(struct throttle *t, const char *addr, struct verdict *v);

#endif
