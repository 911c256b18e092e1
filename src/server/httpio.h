/*
 * httpio.h - the bytes of one HTTPS connection: a non-blocking socket
 * under an SSL, one input buffer that requests are parsed in place in
 * (httpmsg.c), and one output buffer that answers are built in and that
 * leaves in one SSL_write (one TLS record and one system call for an
 * answer of up to 16 KiB).  Nothing here knows HTTP beyond re-pointing a
 * parsed head when its buffer moves.  Both buffers are cleared when their
 * bytes are done with (requests and answers hold deposits and secrets).
 */
#ifndef KT_HTTPIO_H
#define KT_HTTPIO_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "httpmsg.h"

/* The input buffer: a head and a body, with room for chunk framing. */
#define HTTPIO_IN_MIN 4096
/* Buffers grown beyond this are given back between requests. */
#define HTTPIO_KEEP_BUF (32 * 1024)

struct httpio {
	int fd;
	SSL *ssl;
	int drained; /* SSL_read said WANT_READ since the last read edge */
	int eof;     /* the peer sent all it will (closed its side) */
	size_t dropped; /* input dropped while lingering */
	char *in;
	size_t inlen, incap, inmax;
	char *out;
	size_t outlen, outoff, outcap;
};

/* Room for n more bytes of output; -1 when out of memory. */
int httpio_room(struct httpio *io, size_t n);
/* Append (after httpio_room). */
void httpio_add(struct httpio *io, const void *p, size_t n);
void httpio_str(struct httpio *io, const char *s);
void httpio_num(struct httpio *io, size_t v);
/* SSL_write what is waiting: 1 all sent, 0 the socket is full, -1 failed. */
int httpio_flush(struct httpio *io);
/*
 * SSL_read into the input buffer until it would block: 1 read something,
 * 0 nothing there (drained), -1 closed or failed (eof when the peer
 * closed with data read).  head: a request head parsed in the buffer,
 * whose strings move with it, or NULL.  A full buffer at inmax reads
 * nothing more: the parser refuses what it holds.
 */
int httpio_read(struct httpio *io, struct httpmsg *head);
/* The first n bytes of input are done with: cleared, the rest moved up. */
void httpio_consume(struct httpio *io, size_t n);
/*
 * Read and drop what a lingering peer sends: 0 go on (the next read edge
 * calls again), -1 the peer closed, failed, or sent too much (max).
 */
int httpio_drop(struct httpio *io, size_t max);
/* Both buffers, cleared and freed. */
void httpio_free_buffers(struct httpio *io);

#endif
