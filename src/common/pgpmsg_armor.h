/*
 * pgpmsg_armor.h - OpenPGP ASCII armor (RFC 4880 6.2), read and written:
 * the part of the pgpmsg module (pgpmsg.h) that pgpsig.c uses as well,
 * in a header of its own so that signatures do not depend on messages.
 */
#ifndef KT_PGPMSG_ARMOR_H
#define KT_PGPMSG_ARMOR_H

#include <stddef.h>

/* The most a binary message, key or signature read or written may be. */
#define PGPMSG_MAX ((size_t)4 << 20)
/* The most an armored text may be (its base64, lines and headers). */
#define PGPMSG_ARMOR_MAX (2 * PGPMSG_MAX)

/* The armor types ("-----BEGIN PGP <type>-----") read and written. */
#define PGPMSG_ARMOR_MESSAGE "MESSAGE"
#define PGPMSG_ARMOR_SIGNATURE "SIGNATURE"
#define PGPMSG_ARMOR_PUBKEY "PUBLIC KEY BLOCK"

/*
 * The length of the armor pgpmsg_armor_into writes for len octets, or 0
 * when type or version cannot be written (not an armor type above; a
 * version with a control character) or len exceeds PGPMSG_MAX.
 */
size_t pgpmsg_armor_size(const char *type, const char *version, size_t len);

/*
 * Armor bin into out (room for pgpmsg_armor_size octets; no NUL added):
 * "-----BEGIN PGP <type>-----", a "Version: <version>" header unless
 * version is NULL, an empty line, base64 in 64-character lines, "=" and
 * the CRC-24, the END line, every line ending in LF.  Its length.
 */
size_t pgpmsg_armor_into(const char *type, const char *version,
    const unsigned char *bin, size_t len, char *out);

/* The same, malloc'd and NUL-terminated into *text: 0, or -1. */
int pgpmsg_armor(const char *type, const char *version,
    const unsigned char *bin, size_t len, char **text, size_t *textlen);

/*
 * Decode the first armored block of text (what stands before its BEGIN
 * line and after its END line is ignored, as gpg does): of the type given,
 * or, type NULL, any of the three above.  Armor headers ("Version: ...")
 * are skipped, lines may end in CRLF or LF, the base64 must be strict and
 * the CRC-24, when present, right.  0 with *bin malloc'd (*binlen octets,
 * at most PGPMSG_MAX), or -1 with err.
 */
int pgpmsg_dearmor(const char *text, size_t len, const char *type,
    unsigned char **bin, size_t *binlen, char *err, size_t errlen);

#endif
