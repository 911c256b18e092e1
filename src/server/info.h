/*
 * info.h - what anyone may ask, unauthenticated: the server's OpenPGP
 * fingerprint and public key (/?a=fingerprint, /?a=pubkey, as in the
 * guide), and /health.
 */
#ifndef KT_INFO_H
#define KT_INFO_H

#include "handler.h"

handler_fn info_fingerprint;
handler_fn info_pubkey;
handler_fn info_health;

#endif
