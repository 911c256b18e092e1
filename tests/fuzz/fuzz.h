/*
 * fuzz.h - what the libFuzzer targets that check a property share: a
 * failed check names the target and the property, then aborts, which
 * libFuzzer reports as a crash and saves the input of.
 */
#ifndef KT_FUZZ_H
#define KT_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(ok, what) fuzz_check((ok), __FILE__, (what))

static inline void
fuzz_check(int ok, const char *file, const char *what)
{
	if (!ok) {
		fprintf(stderr, "%s: check failed: %s\n", file, what);
		abort();
	}
}

#endif
