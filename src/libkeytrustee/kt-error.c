/*
 * kt-error.c - a client's last error: what the library's files set and what
 * callers read back.  It uses no other file of the library, so every file
 * can report through it without tying the others into a loop.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "kt-int.h"

void
kt_seterr(struct kt_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

void
kt_clearerr(struct kt_client *c)
{
	c->err[0] = '\0';
	free(c->err_code);
	c->err_code = NULL;
	c->http_status = 0;
}

const char *
kt_client_error(const struct kt_client *c)
{
	return c->err[0] != '\0' ? c->err : "no error";
}

const char *
kt_client_error_code(const struct kt_client *c)
{
	return c->err_code;
}

int
kt_client_http_status(const struct kt_client *c)
{
	return c->http_status;
}
