/*
 * api.h - the /v1 JSON API: client registration (api_register.c) and
 * deposits (api_deposits.c), and what they share to read a JSON body
 * (api.c).  Bodies are JSON objects (application/json, at most 128 KiB,
 * nesting at most API_MAX_DEPTH); every refusal is {"error", "code"} and
 * nothing of the request goes into the log.
 */
#ifndef KT_API_H
#define KT_API_H

#include <jansson.h>
#include <stddef.h>

#include "handler.h"
#include "http.h"
#include "verdict.h"

/* The handlers (route.c's table). */
handler_fn api_register;
handler_fn api_deposit_list;
handler_fn api_deposit_create;
handler_fn api_deposit_get;
handler_fn api_deposit_delete;

/*
 * Reading a body needs no request (api.c links alone, into the fuzzer
 * too): the handler passes what its Content-Type said.
 */
/* 1 when a Content-Type header's value (or NULL) is application/json. */
int api_ctype_json(const char *ctype);
/*
 * The body as a JSON object, or NULL with v refusing it: 415 unless json
 * (api_ctype_json of the request), 400.
 */
json_t *api_json(int json, const unsigned char *body, size_t len,
    struct verdict *v);
/*
 * A string member: 0 with *out (NULL when absent or null and optional),
 * -1 with v refusing (400).
 */
int api_member(json_t *o, const char *key, int optional, const char **out,
    struct verdict *v);
/*
 * A body of the usual shape read without jansson (parsing 2.7 KB of
 * base64 a character at a time in jansson was a sixth of the server's CPU
 * per POST): an object whose members are among the n keys, each at most
 * once, plain strings or null, printable ASCII without escapes.  1 with
 * vals[i] pointing into body (lens[i]; NULL when absent or null); 0 for
 * any other shape: the caller then parses with jansson, which judges it.
 */
#define API_FLAT_MAX 8
int api_flat_body(const unsigned char *body, size_t len,
    const char *const *keys, int n, const unsigned char **vals, size_t *lens);
/* A valid UTF-8 string of 1..max code points without controls. */
int api_text_ok(const char *s, size_t max, int allow_space_ctl);

/* POST /v1/deposits: {"name", "content" (base64), "description"}. */
#define API_NAME_MAX 255
#define API_DESC_MAX 1024
#define API_CONTENT_MAX (64 * 1024)
struct api_deposit_body {
	json_t *o;	    /* the body, when jansson read it */
	char *name, *desc;  /* copies, when api_flat_body read it */
	const char *cname, *cdesc; /* the name; the description or NULL */
	unsigned char *plain;	   /* the content decoded */
	size_t plainlen;
};
/*
 * Read a deposit's body (json: api_ctype_json of the request) into d,
 * zeroed first: 0, or -1 with v refusing (400, 413, 415, 500); either
 * way api_deposit_body_clear(d) after.  jansson_only=0 reads the usual
 * shape with api_flat_body; 1 always with jansson, for fuzz_depbody,
 * which checks that both read every body alike.
 */
int api_deposit_body(int json, int jansson_only, const unsigned char *body,
    size_t len, struct api_deposit_body *d, struct verdict *v);
void api_deposit_body_clear(struct api_deposit_body *d);

#endif
