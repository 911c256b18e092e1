/* fuzz_conf.c - libFuzzer target for conf_parse (keytrustee.conf). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kt_conf *c = NULL;
	char err[512], *text;

	if (size > KT_CONF_MAX)
		return 0;
	/*
	 * conf_parse reads text as a C string (strlen, strstr) and so needs
	 * text[len] == '\0', as file_read gives conf_load: copy the input.
	 */
	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (conf_parse(text, size, "/nonexistent", "fuzz", &c, NULL, err,
	    sizeof(err)) == 0) {
		if (c == NULL || c->path == NULL || c->json == NULL)
			abort();
		conf_free(c);
	} else if (c != NULL || memchr(err, '\0', sizeof(err)) == NULL ||
	    err[0] == '\0') {
		abort();
	}
	free(text);
	return 0;
}
