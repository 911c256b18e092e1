/* throttle.h - failed registration attempts per remote address. */
#ifndef KT_THROTTLE_H
#define KT_THROTTLE_H

#include "verdict.h"

struct throttle *throttle_new(void);
void throttle_free(struct throttle *t);
/* 1 when addr has failed too often in this window (seconds left in retry). */
int throttle_blocked(struct throttle *t, const char *addr, int *retry);
/* 0 when addr may try to register; -1 with v refusing it (429). */
int throttle_check(struct throttle *t, const char *addr, struct verdict *v);
void throttle_fail(struct throttle *t, const char *addr);

#endif
