/* keyproc_child.h - the key process itself (see keyproc_child.c). */
#ifndef KT_KEYPROC_CHILD_H
#define KT_KEYPROC_CHILD_H

#include <sys/types.h>

#include "conf.h"

/* Load the keys, answer the start-up on fds[0], serve; never returns. */
__attribute__((noreturn)) void kp_child_main(const struct kt_conf *c,
    const int *fds, int nchan, pid_t parent);

#endif
