/*
 * fuzz_httpmsg.c - libFuzzer target for httpmsg_head and httpmsg_body, the
 * server's HTTP/1.x request parser (it works in place on the connection's
 * input buffer).
 *
 * The input is what a client could send on a connection.  Whatever the
 * parser accepts must lie inside the buffer: the head's strings end within
 * the head, the body within the bytes the body was said to take, and no
 * more than the limits.  A refusal must be an HTTP status with a reason.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpmsg.h"

#define MAXH 4096
#define MAXB 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
inside(const char *p, const char *lo, const char *hi)
{
	if (p == NULL || p < lo || p >= hi ||
	    memchr(p, '\0', (size_t)(hi - p)) == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct httpmsg m;
	ssize_t h, b;
	char *buf;
	int i;

	/* One spare byte, as the server keeps, and nothing past it. */
	if ((buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = 'x';
	h = httpmsg_head(buf, size, MAXH, MAXB, &m);
	if (h < 0) {
		if (m.error == NULL || -h < 400 || -h > 599)
			abort();
		goto out;
	}
	if (h == 0) {
		if (size >= MAXH)
			abort();
		goto out;
	}
	if ((size_t)h > size || (size_t)h > MAXH)
		abort();
	inside(m.method_name, buf, buf + h);
	inside(m.target, buf, buf + h);
	if (m.nfields < 0 || m.nfields > HTTPMSG_MAX_FIELDS)
		abort();
	for (i = 0; i < m.nfields; i++) {
		inside(m.fields[i].name, buf, buf + h);
		inside(m.fields[i].value, buf, buf + h);
	}
	if (m.content_length > MAXB)
		abort();
	b = httpmsg_body(buf + h, size - (size_t)h, MAXB, &m);
	if (b == HTTPMSG_MORE)
		goto out;
	if (b < 0) {
		if (m.error == NULL || -b < 400 || -b > 599)
			abort();
		goto out;
	}
	if ((size_t)b > size - (size_t)h || m.bodylen > MAXB ||
	    m.bodylen > (size_t)b || m.body != buf + h)
		abort();
	/* Touch every byte of the body: ASan checks it is ours. */
	for (i = 0; (size_t)i < m.bodylen; i++)
		buf[h + i] ^= m.body[i];
out:
	free(buf);
	return 0;
}
