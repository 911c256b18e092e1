/*
 * fuzz_pgpmsg.c - libFuzzer target for what the server parses of a legacy
 * client's OpenPGP (src/common/pgpmsg*.c): ASCII armor of any type, a
 * transferable public key (a key posted to /pks/add, a registered
 * client's), and a message to decrypt (a json-encrypt payload).
 *
 * The first input octet chooses: 0 the armored text that follows, then
 * its binary as a public key; 1 the binary as a public key; 2 the binary
 * as a message whose session key "decrypts" to the PKESK's own value (so
 * the fuzzer also controls the algorithm octet, the key and its checksum
 * that the key process would hand back).
 */
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgpmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
echo_decrypt(void *arg, const unsigned char keyid[PGPKEY_KEYID_LEN],
    const unsigned char *ct, size_t ctlen, unsigned char *out,
    size_t *outlen, char *err, size_t errlen)
{
	(void)arg;
	(void)keyid;
	(void)err;
	(void)errlen;
	if (ctlen > *outlen)
		return -1;
	memcpy(out, ct, ctlen);
	*outlen = ctlen;
	return 0;
}

static void
pubkey(const unsigned char *bin, size_t len)
{
	struct pgpmsg_pubkey *key = NULL;
	char err[256] = "";

	if (pgpmsg_pubkey_parse(bin, len, &key, err, sizeof(err)) == 0) {
		/* What it says it found must be there. */
		if (key == NULL || (key->nsubkeys > 0 && key->subkeys == NULL))
			abort();
	} else if (key != NULL || err[0] == '\0')
		abort();
	pgpmsg_pubkey_free(key);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *bin = NULL, *plain = NULL;
	size_t binlen = 0, plainlen = 0;
	char err[256] = "";
	int integrity = -1;

	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		if (pgpmsg_dearmor((const char *)data + 1, size - 1, NULL, &bin,
			&binlen, err, sizeof(err)) == 0)
			pubkey(bin, binlen);
		else if (bin != NULL || err[0] == '\0')
			abort();
		break;
	case 1:
		pubkey(data + 1, size - 1);
		break;
	default:
		if (pgpmsg_decrypt(data + 1, size - 1, echo_decrypt, NULL,
			&plain, &plainlen, &integrity, err, sizeof(err)) == 0) {
			if (integrity != 0 && integrity != 1)
				abort();
			OPENSSL_clear_free(plain, plainlen);
		} else if (plain != NULL || err[0] == '\0')
			abort();
	}
	free(bin);
	return 0;
}
