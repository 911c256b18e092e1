/* hkp.h - HKP: the legacy clients' key lookup and key add (see hkp.c). */
#ifndef KT_HKP_H
#define KT_HKP_H

#include "handler.h"

handler_fn hkp_lookup;
handler_fn hkp_add;

#endif
