/*
 * contact.h - GET/POST /?q=TOKEN: the link of the "KeyTrustee Contact
 * Registration" mail, where a contact registers its OpenPGP public key
 * (contact.c; what it reads of the request and writes back is
 * contact_form.c's).
 */
#ifndef KT_CONTACT_H
#define KT_CONTACT_H

#include "handler.h"

handler_fn contact_page;

#endif
