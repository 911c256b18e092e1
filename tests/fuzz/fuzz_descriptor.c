/*
 * fuzz_descriptor.c - libFuzzer target for the YAML service descriptor:
 * desc_load (libyaml) and desc_validate over arbitrary input.  Every
 * reported error must carry a line >= 0 and a non-empty message; a file
 * with no errors must have a root mapping.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../agent/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
sink(void *arg, const char *file, int line, const char *path, const char *msg)
{
	(void)arg;
	(void)path;
	if (file == NULL || line < 0 || msg == NULL || msg[0] == '\0')
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct desc d;

	if (size > 256 * 1024)
		return 0;
	memset(&d, 0, sizeof(d));
	d.report = sink;
	if (desc_load(&d, "fuzz.yaml", (const char *)data, size) == 0) {
		if (desc_validate(&d) == 0 && d.root == NULL)
			abort();
	}
	desc_free(&d);
	return 0;
}
