/*
 * fuzz_clientkey.c - libFuzzer target for clientkey_load, the check of the
 * armored OpenPGP public key a registering client sends (the armor and its
 * CRC-24, then librnp's parse), and clientkey_encrypt on what it accepts.
 *
 * The input is the "pubkey" string of the request (a C string, as jansson
 * hands it over).  An accepted key must have a 40-hex upper-case
 * fingerprint and take an encrypted message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clientkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char secret[] = "0123456789abcdef0123456789abcdef"
				     "0123456789abcdef0123456789abcdef";
	struct clientkey *k = NULL;
	char fpr[PGP_FPR_LEN + 1], err[512], *text, *msg = NULL;
	size_t i, len;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	len = strlen(text);
	if (clientkey_load(text, len, &k, fpr, err, sizeof(err)) == 0) {
		if (strlen(fpr) != PGP_FPR_LEN)
			abort();
		for (i = 0; i < PGP_FPR_LEN; i++)
			if (!strchr("0123456789ABCDEF", fpr[i]))
				abort();
		if (clientkey_encrypt(k, secret, strlen(secret), &msg, NULL,
			err, sizeof(err)) != 0 ||
		    strncmp(msg, "-----BEGIN PGP MESSAGE-----", 27) != 0)
			abort();
	} else if (k != NULL || err[0] == '\0')
		abort();
	free(msg);
	clientkey_free(k);
	free(text);
	return 0;
}
