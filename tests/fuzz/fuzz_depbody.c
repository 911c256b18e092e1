/*
 * fuzz_depbody.c - libFuzzer target for the body of POST /v1/deposits
 * (src/server/api.c): api_deposit_body, its fast path api_flat_body, and
 * the jansson path every other shape takes.  A differential check:
 *
 *  - the body read as the server reads it and read by jansson alone give
 *    the same answer: the same name, description and decoded content, or
 *    the same refusal (status and code);
 *  - whatever api_flat_body accepts, jansson reads as an object of the
 *    same members with the same values (null or absent alike);
 *  - accepted content is canonical base64: it encodes back to the text.
 *
 * The first input octet says whether the Content-Type was
 * application/json (any value but 0xff); the rest is the body.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same_str(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/* api_flat_body's members against jansson's reading of the same body. */
static void
flat_vs_jansson(const unsigned char *body, size_t len)
{
	static const char *const keys[3] = {"name", "content", "description"};
	const unsigned char *vals[3];
	size_t lens[3];
	json_error_t jerr;
	json_t *o, *m;
	int i;

	if (!api_flat_body(body, len, keys, 3, vals, lens))
		return;
	o = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
	FUZZ_CHECK(
	    o != NULL && json_is_object(o), "flat read what is not JSON");
	for (i = 0; i < 3; i++) {
		m = json_object_get(o, keys[i]);
		if (vals[i] == NULL)
			FUZZ_CHECK(
			    m == NULL || json_is_null(m), "a member flat lost");
		else
			FUZZ_CHECK(json_is_string(m) &&
				json_string_length(m) == lens[i] &&
				memcmp(json_string_value(m), vals[i],
				    lens[i]) == 0,
			    "a member's value");
		if (m != NULL)
			json_object_del(o, keys[i]);
	}
	FUZZ_CHECK(json_object_size(o) == 0, "a member flat did not see");
	json_decref(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_deposit_body fast, slow;
	struct verdict vf, vs;
	const unsigned char *body;
	const char *b64;
	char *enc;
	size_t len;
	int json, rf, rs;

	if (size < 1)
		return 0;
	json = data[0] != 0xff;
	/* A copy of exactly the body: any read past it is ASan's. */
	len = size - 1;
	if ((body = malloc(len > 0 ? len : 1)) == NULL)
		return 0;
	memcpy((void *)body, data + 1, len);
	memset(&vf, 0, sizeof(vf));
	memset(&vs, 0, sizeof(vs));

	rf = api_deposit_body(json, 0, body, len, &fast, &vf);
	rs = api_deposit_body(json, 1, body, len, &slow, &vs);
	FUZZ_CHECK(rf == rs, "accepted by one path only");
	if (rf == 0) {
		FUZZ_CHECK(strcmp(fast.cname, slow.cname) == 0, "name");
		FUZZ_CHECK(same_str(fast.cdesc, slow.cdesc), "description");
		FUZZ_CHECK(fast.plainlen == slow.plainlen &&
			memcmp(fast.plain, slow.plain, fast.plainlen) == 0,
		    "content");
		FUZZ_CHECK(
		    fast.plainlen <= API_CONTENT_MAX, "content over 64 KiB");
		/* Strict base64: the content is the encoding of what it gave.
		 */
		b64 = json_string_value(json_object_get(slow.o, "content"));
		enc = crypto_b64_encode(slow.plain, slow.plainlen);
		FUZZ_CHECK(b64 != NULL && enc != NULL && strcmp(b64, enc) == 0,
		    "content is not canonical base64");
		free(enc);
	} else {
		FUZZ_CHECK(
		    vf.status == vs.status && strcmp(vf.code, vs.code) == 0,
		    "refused differently");
		FUZZ_CHECK(
		    vf.status >= 400 && vf.status < 600, "refusal status");
	}
	api_deposit_body_clear(&fast);
	api_deposit_body_clear(&slow);
	if (json)
		flat_vs_jansson(body, len);
	free((void *)body);
	return 0;
}
