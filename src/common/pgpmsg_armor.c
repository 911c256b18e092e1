/* pgpmsg_armor.c - OpenPGP ASCII armor (see pgpmsg_armor.h). */
#include "pgpmsg_armor.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "pgpkey.h"

#define ARMOR_LINE 48 /* octets per 64-character base64 line */
#define ARMOR_BEGIN "-----BEGIN PGP "
#define ARMOR_END "-----END PGP "
#define ARMOR_DASHES "-----"

static const char *const armor_types[] = {
	PGPMSG_ARMOR_MESSAGE, PGPMSG_ARMOR_SIGNATURE, PGPMSG_ARMOR_PUBKEY,
};

/* The type as one of armor_types, or NULL. */
static const char *
armor_type(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(armor_types) / sizeof(armor_types[0]); i++)
		if (strlen(armor_types[i]) == n &&
		    memcmp(armor_types[i], s, n) == 0)
			return armor_types[i];
	return NULL;
}

size_t
pgpmsg_armor_size(const char *type, const char *version, size_t len)
{
	size_t n, t;
	const char *v;

	if (type == NULL || armor_type(type, strlen(type)) == NULL ||
	    len > PGPMSG_MAX)
		return 0;
	t = strlen(type);
	n = strlen(ARMOR_BEGIN) + t + strlen(ARMOR_DASHES) + 1;
	if (version != NULL) {
		for (v = version; *v != '\0'; v++)
			if ((unsigned char)*v < 0x20 || *v == 0x7f)
				return 0;
		n += strlen("Version: ") + (size_t)(v - version) + 1;
	}
	n += 1;                                        /* the empty line */
	n += (len + 2) / 3 * 4 + (len + ARMOR_LINE - 1) / ARMOR_LINE;
	n += 6;                                        /* "=XXXX\n" */
	n += strlen(ARMOR_END) + t + strlen(ARMOR_DASHES) + 1;
	return n;
}

/* s1 s2 s3 and a newline at out: the length. */
static size_t
armor_put(char *out, const char *s1, const char *s2, const char *s3)
{
	size_t a = strlen(s1), b = strlen(s2), c = strlen(s3);

	memcpy(out, s1, a);
	memcpy(out + a, s2, b);
	memcpy(out + a + b, s3, c);
	out[a + b + c] = '\n';
	return a + b + c + 1;
}

size_t
pgpmsg_armor_into(const char *type, const char *version,
    const unsigned char *bin, size_t len, char *out)
{
	unsigned char crc[3];
	uint32_t c = pgpkey_crc24(bin, len);
	size_t o = 0, off, n;

	o += armor_put(out + o, ARMOR_BEGIN, type, ARMOR_DASHES);
	if (version != NULL)
		o += armor_put(out + o, "Version: ", version, "");
	out[o++] = '\n';
	for (off = 0; off < len; off += n) {
		n = len - off < ARMOR_LINE ? len - off : ARMOR_LINE;
		o += crypto_b64_encode_into(bin + off, n, out + o);
		out[o++] = '\n';
	}
	crc[0] = (unsigned char)(c >> 16);
	crc[1] = (unsigned char)(c >> 8);
	crc[2] = (unsigned char)c;
	out[o++] = '=';
	o += crypto_b64_encode_into(crc, 3, out + o);
	out[o++] = '\n';
	o += armor_put(out + o, ARMOR_END, type, ARMOR_DASHES);
	return o;
}

int
pgpmsg_armor(const char *type, const char *version,
    const unsigned char *bin, size_t len, char **text, size_t *textlen)
{
	size_t n = pgpmsg_armor_size(type, version, len);

	*text = NULL;
	if (n == 0 || (*text = malloc(n + 1)) == NULL)
		return -1;
	n = pgpmsg_armor_into(type, version, bin, len, *text);
	(*text)[n] = '\0';
	if (textlen != NULL)
		*textlen = n;
	return 0;
}

/*
 * The line at *p (before end), *p moved past its LF: its start, and its
 * length without the trailing blanks and CR in *n; NULL at the end.
 */
static const char *
armor_line(const char **p, const char *end, size_t *n)
{
	const char *line = *p, *nl;

	if (line >= end)
		return NULL;
	nl = memchr(line, '\n', (size_t)(end - line));
	*p = nl != NULL ? nl + 1 : end;
	*n = (size_t)((nl != NULL ? nl : end) - line);
	while (*n > 0 && (line[*n - 1] == '\r' || line[*n - 1] == ' ' ||
	    line[*n - 1] == '\t'))
		(*n)--;
	return line;
}

/* 1 when line (n) is "<pre><type>-----" for a type of ours, in *type. */
static int
armor_marker(const char *line, size_t n, const char *pre, size_t *tlen,
    const char **type)
{
	size_t pl = strlen(pre), dl = strlen(ARMOR_DASHES);

	if (n < pl + dl || memcmp(line, pre, pl) != 0 ||
	    memcmp(line + n - dl, ARMOR_DASHES, dl) != 0)
		return 0;
	*tlen = n - pl - dl;
	*type = line + pl;
	return 1;
}

/* 1 when every octet of s (n) is a base64 digit or '='. */
static int
armor_b64_line(const char *s, size_t n)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '='))
			return 0;
	}
	return 1;
}

int
pgpmsg_dearmor(const char *text, size_t len, const char *type,
    unsigned char **bin, size_t *binlen, char *err, size_t errlen)
{
	const char *p = text, *end = text + len, *line, *t = NULL, *want;
	unsigned char *crc = NULL;
	size_t n, tlen, et, b64len = 0, crclen;
	char *b64 = NULL;
	int ret = -1, inbody = 0, lineno = 0, endline = 0;
	const char *e;

	*bin = NULL;
	*binlen = 0;
	if (len > PGPMSG_ARMOR_MAX) {
		snprintf(err, errlen, "the armored text is too long (%zu "
		    "bytes, at most %zu)", len, (size_t)PGPMSG_ARMOR_MAX);
		return -1;
	}
	/* The BEGIN line. */
	while ((line = armor_line(&p, end, &n)) != NULL)
		if (armor_marker(line, n, ARMOR_BEGIN, &tlen, &t))
			break;
	if (line == NULL) {
		snprintf(err, errlen, "no OpenPGP armor (a \"-----BEGIN PGP "
		    "...-----\" line) found");
		return -1;
	}
	if ((want = armor_type(t, tlen)) == NULL) {
		if (memmem(t, tlen, "PRIVATE KEY", 11) != NULL)
			snprintf(err, errlen, "the armor holds a secret key; "
			    "send the public key only");
		else if (tlen == 14 && memcmp(t, "SIGNED MESSAGE", 14) == 0)
			snprintf(err, errlen, "a cleartext-signed message is "
			    "not an armored OpenPGP message");
		else
			snprintf(err, errlen, "the armor's type is none of "
			    "MESSAGE, SIGNATURE, PUBLIC KEY BLOCK");
		return -1;
	}
	if (type != NULL && strcmp(type, want) != 0) {
		snprintf(err, errlen, "the armor is a PGP %s, not a PGP %s",
		    want, type);
		return -1;
	}
	/* At most as much base64 as there is text left. */
	if ((b64 = malloc((size_t)(end - p) + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while ((line = armor_line(&p, end, &n)) != NULL) {
		lineno++;
		if (armor_marker(line, n, ARMOR_END, &et, &e)) {
			endline = 1;
			break;
		}
		if (crc != NULL) {
			snprintf(err, errlen, "armor line %d: text after the "
			    "checksum line", lineno);
			goto out;
		}
		if (!inbody) {
			/*
			 * Headers ("Key: value") up to an empty line; a line
			 * with no colon starts the data without one, as some
			 * writers do.
			 */
			if (n == 0) {
				inbody = 1;
				continue;
			}
			if (memchr(line, ':', n) != NULL)
				continue;
			inbody = 1;
		}
		if (n > 0 && line[0] == '=') {
			if (n != 5 || !armor_b64_line(line + 1, 4) ||
			    crypto_b64_decode(line + 1, 4, 3, &crc, &crclen) ==
			    -1 || crclen != 3) {
				snprintf(err, errlen, "armor line %d: the "
				    "checksum line is malformed", lineno);
				goto out;
			}
			continue;
		}
		if (n == 0 || !armor_b64_line(line, n)) {
			snprintf(err, errlen, "armor line %d: %s", lineno,
			    n == 0 ? "an empty line inside the data" :
			    "not base64");
			goto out;
		}
		memcpy(b64 + b64len, line, n);
		b64len += n;
	}
	if (!endline) {
		snprintf(err, errlen, "the armor has no END line");
		goto out;
	}
	if (et != tlen || memcmp(e, t, tlen) != 0) {
		snprintf(err, errlen, "the armor's END line does not match "
		    "its BEGIN line");
		goto out;
	}
	if (b64len == 0) {
		snprintf(err, errlen, "the armor holds no data");
		goto out;
	}
	if (b64len / 4 * 3 > PGPMSG_MAX + 2) {
		snprintf(err, errlen, "the armored data is too long (more "
		    "than %zu bytes)", (size_t)PGPMSG_MAX);
		goto out;
	}
	if (crypto_b64_decode(b64, b64len, PGPMSG_MAX, bin, binlen) == -1) {
		snprintf(err, errlen, "the armor's base64 is malformed");
		goto out;
	}
	if (crc != NULL && pgpkey_crc24(*bin, *binlen) !=
	    ((uint32_t)crc[0] << 16 | (uint32_t)crc[1] << 8 | crc[2])) {
		snprintf(err, errlen, "the armor's checksum does not match its "
		    "data");
		free(*bin);
		*bin = NULL;
		*binlen = 0;
		goto out;
	}
	ret = 0;
out:
	free(crc);
	free(b64);
	return ret;
}
