/*
 * contact_form.h - what the contact page (contact.c) reads of a request
 * and writes back, needing no request: tests/fuzz/fuzz_contact.c links
 * contact_form.c alone.
 */
#ifndef KT_CONTACT_FORM_H
#define KT_CONTACT_FORM_H

#include <event2/buffer.h>
#include <stddef.h>

#define CONTACT_BEGIN "-----BEGIN PGP PUBLIC KEY BLOCK-----"
#define CONTACT_END "-----END PGP PUBLIC KEY BLOCK-----"

/* 1 when token has the shape of a mail link's: MAIL_TOKEN_LEN alnums. */
int contact_token_ok(const char *token);
/*
 * The key a POST carries (ctype its Content-Type, or NULL): the form
 * field "key" of a form, else the raw body; malloc'd, NULL when a form
 * has none (or out of memory).
 */
char *contact_form_key(
    const char *ctype, const unsigned char *body, size_t len);
/*
 * Trim key's surrounding white space in place; 1 when what is left is
 * one whole armored public key block: the BEGIN line, something, the
 * END line, and nothing around them.
 */
int contact_armor_ok(char *key);
/* s into b, with HTML's five special characters as entities. */
void contact_html_escape(struct evbuffer *b, const char *s);

#endif
