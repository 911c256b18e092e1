/*
 * fuzz_auth.c - libFuzzer target for authhdr_parse, the parser of the
 * Authorization header value
 *
 *   KT1-HMAC-SHA256 fp=<40 hex>,ts=<unix seconds>,sig=<64 hex>
 *
 * The input is the header value as httpmsg.c hands it over (a C string).  On
 * success the parts must be what the grammar allows; on failure nothing is
 * checked but the absence of memory errors.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authhdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct authhdr h;
	char *v;
	size_t i, n;

	/* Header values are C strings: copy and terminate the input. */
	if ((v = malloc(size + 1)) == NULL)
		return 0;
	memcpy(v, data, size);
	v[size] = '\0';
	memset(&h, 0xa5, sizeof(h));
	if (authhdr_parse(v, &h) == 0) {
		/* The scheme and the fingerprint prefix must be there. */
		if (strncmp(v, "KT1-HMAC-SHA256 fp=", 19) != 0)
			abort();
		if (memchr(h.fpr, '\0', sizeof(h.fpr)) == NULL ||
		    strlen(h.fpr) != PGP_FPR_LEN)
			abort();
		for (i = 0; i < PGP_FPR_LEN; i++)
			if (!isxdigit((unsigned char)h.fpr[i]) ||
			    islower((unsigned char)h.fpr[i]))
				abort();
		if (memchr(h.ts, '\0', sizeof(h.ts)) == NULL)
			abort();
		n = strlen(h.ts);
		if (n == 0 || n > 12)
			abort();
		for (i = 0; i < n; i++)
			if (!isdigit((unsigned char)h.ts[i]))
				abort();
		if (h.tsval < 0 || h.tsval != strtoll(h.ts, NULL, 10))
			abort();
	}
	free(v);
	return 0;
}
