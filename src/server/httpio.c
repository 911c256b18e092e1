/* httpio.c - the bytes of one HTTPS connection (see httpio.h). */
#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "httpio.h"
#include "util.h"

int
httpio_room(struct httpio *io, size_t n)
{
	size_t cap;
	char *p;

	if (io->outlen + n <= io->outcap)
		return 0;
	for (cap = io->outcap ? io->outcap : 4096; cap < io->outlen + n;
	     cap *= 2)
		;
	/* Not realloc: what is there (answers, deposits) is cleared. */
	if ((p = malloc(cap)) == NULL)
		return -1;
	if (io->out != NULL) {
		memcpy(p, io->out, io->outlen);
		freezero(io->out, io->outcap);
	}
	io->out = p;
	io->outcap = cap;
	return 0;
}

void
httpio_add(struct httpio *io, const void *p, size_t n)
{
	memcpy(io->out + io->outlen, p, n);
	io->outlen += n;
}

void
httpio_str(struct httpio *io, const char *s)
{
	httpio_add(io, s, strlen(s));
}

void
httpio_num(struct httpio *io, size_t v)
{
	char d[24];
	size_t i = sizeof(d);

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	httpio_add(io, d + i, sizeof(d) - i);
}

/*
 * Write up to n bytes: the count, 0 when the socket is full, -1 failed.
 * Over TLS, or plain (no SSL: the HKP listener).
 */
static int
httpio_write(struct httpio *io, const char *p, size_t n)
{
	ssize_t w;
	int r;

	if (n > INT_MAX)
		n = INT_MAX;
	if (io->ssl == NULL) {
		while ((w = write(io->fd, p, n)) == -1 && errno == EINTR)
			;
		if (w >= 0)
			return (int)w;
		return errno == EAGAIN ? 0 : -1;
	}
	if ((r = SSL_write(io->ssl, p, (int)n)) > 0)
		return r;
	switch (SSL_get_error(io->ssl, r)) {
	case SSL_ERROR_WANT_WRITE:
	case SSL_ERROR_WANT_READ:
		return 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

int
httpio_flush(struct httpio *io)
{
	int n;

	while (io->outoff < io->outlen) {
		n = httpio_write(io, io->out + io->outoff,
		    io->outlen - io->outoff);
		if (n <= 0)
			return n;
		io->outoff += (size_t)n;
	}
	/* Nor are the answers' bytes kept once sent. */
	if (io->outlen > 0)
		OPENSSL_cleanse(io->out, io->outlen);
	io->outoff = io->outlen = 0;
	if (io->outcap > HTTPIO_KEEP_BUF) {
		freezero(io->out, io->outcap);
		io->out = NULL;
		io->outcap = 0;
	}
	return 1;
}

/* The input buffer moves to to: a parsed head's strings move with it. */
static void
httpio_rebase(struct httpio *io, struct httpmsg *m, char *to)
{
	int i;

#define REBASE(p) ((p) = to + ((p)-io->in))
	if (m == NULL)
		return;
	REBASE(m->method_name);
	REBASE(m->target);
	for (i = 0; i < m->nfields; i++) {
		REBASE(m->fields[i].name);
		REBASE(m->fields[i].value);
	}
#undef REBASE
}

/*
 * Read up to n bytes into p: the count (> 0); 0 it would block (drained);
 * -1 closed or failed (close_notify, EOF, a reset or a TLS error).
 */
static int
httpio_recv(struct httpio *io, char *p, size_t n)
{
	ssize_t r;

	if (io->ssl == NULL) {
		while ((r = read(io->fd, p, n)) == -1 && errno == EINTR)
			;
		if (r > 0)
			return (int)r;
		if (r == -1 && errno == EAGAIN) {
			io->drained = 1;
			return 0;
		}
		return -1;
	}
	if ((r = SSL_read(io->ssl, p, (int)n)) > 0)
		return (int)r;
	switch (SSL_get_error(io->ssl, (int)r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		io->drained = 1;
		return 0;
	default:
		ERR_clear_error();
		return -1;
	}
}

int
httpio_read(struct httpio *io, struct httpmsg *head)
{
	int got = 0, n;

	/* An idle connection holds no buffer until a request comes. */
	if (io->incap == 0) {
		char first[HTTPIO_IN_MIN];
		if ((n = httpio_recv(io, first, sizeof(first) - 1)) <= 0)
			return n;
		if ((io->in = malloc(HTTPIO_IN_MIN)) == NULL) {
			OPENSSL_cleanse(first, (size_t)n);
			return -1;
		}
		io->incap = HTTPIO_IN_MIN;
		memcpy(io->in, first, (size_t)n);
		OPENSSL_cleanse(first, (size_t)n);
		io->inlen = (size_t)n;
		got = 1;
	}
	for (;;) {
		if (io->inlen + 1 >= io->incap) {
			size_t cap = io->incap * 2;
			char *p;
			if (io->incap >= io->inmax)
				return got;
			if (cap > io->inmax)
				cap = io->inmax;
			if ((p = malloc(cap)) == NULL)
				return got ? got : -1;
			memcpy(p, io->in, io->inlen);
			httpio_rebase(io, head, p);
			freezero(io->in, io->incap);
			io->in = p;
			io->incap = cap;
		}
		/* One byte is kept free: the body is NUL-terminated there. */
		n = httpio_recv(io, io->in + io->inlen, io->incap - io->inlen - 1);
		if (n > 0) {
			io->inlen += (size_t)n;
			got = 1;
			continue;
		}
		if (n == 0)
			return got;
		/* The peer is done sending: answer what it sent, then close. */
		io->eof = 1;
		return got ? 1 : -1;
	}
}

void
httpio_consume(struct httpio *io, size_t n)
{
	if (n < io->inlen)
		memmove(io->in, io->in + n, io->inlen - n);
	/* The request's bytes (its body: deposit contents) are not kept. */
	if (n > 0)
		OPENSSL_cleanse(io->in + io->inlen - n, n);
	io->inlen -= n;
	if (io->inlen == 0 && io->incap > HTTPIO_KEEP_BUF) {
		freezero(io->in, io->incap);
		io->in = NULL;
		io->incap = 0;
	}
}

int
httpio_drop(struct httpio *io, size_t max)
{
	char buf[16384];
	ssize_t n;

	for (;;) {
		n = read(io->fd, buf, sizeof(buf));
		if (n > 0) {
			io->dropped += (size_t)n;
			if (io->dropped <= max)
				continue;
		} else if (n == -1 && errno == EINTR)
			continue;
		else if (n == -1 && errno == EAGAIN)
			return 0;
		return -1;
	}
}

void
httpio_free_buffers(struct httpio *io)
{
	freezero(io->in, io->incap);
	freezero(io->out, io->outcap);
	io->in = io->out = NULL;
	io->inlen = io->incap = io->outlen = io->outoff = io->outcap = 0;
}
