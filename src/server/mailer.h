/* mailer.h - the outbox sender thread (see mailer.c). */
#ifndef KT_MAILER_H
#define KT_MAILER_H

#include <stddef.h>

#include "server.h"

int mailer_start(struct server *srv, char *err, size_t errlen);
void mailer_stop(struct server *srv);

#endif
