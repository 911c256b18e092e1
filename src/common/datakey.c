/* datakey.c - the server's data key in CONFDIR/datakey.gpg (see datakey.h). */
#include "datakey.h"

#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgp.h"
#include "util.h"

#define DATAKEY_FILE_MAX (64 * 1024)

int
datakey_create(const char *confdir, const char *fpr, char *err, size_t errlen)
{
	unsigned char key[CRYPTO_KEY_LEN];
	char path[PATH_MAX], *msg = NULL;
	size_t msglen = 0;
	int ret = -1;

	if (path_join(path, sizeof(path), confdir, DATAKEY_FILE) == -1) {
		snprintf(err, errlen, "%s: path too long", confdir);
		return -1;
	}
	if (file_exists(path))
		return 1;
	if (crypto_random(key, sizeof(key)) == -1) {
		snprintf(err, errlen, "the random generator failed");
		goto out;
	}
	if (pgp_encrypt(confdir, fpr, key, sizeof(key), &msg, &msglen, err,
	    errlen) == -1)
		goto out;
	if (file_write_atomic(path, msg, msglen, 0600) == -1) {
		snprintf(err, errlen, "cannot write %s: %s", path,
		    strerror(errno));
		goto out;
	}
	ret = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	free(msg);
	return ret;
}

int
datakey_load(const char *confdir, unsigned char key[CRYPTO_KEY_LEN],
    char *err, size_t errlen)
{
	char path[PATH_MAX], perr[512], *msg = NULL;
	unsigned char *plain = NULL;
	size_t msglen = 0, plainlen = 0;
	int ret = -1;

	if (path_join(path, sizeof(path), confdir, DATAKEY_FILE) == -1) {
		snprintf(err, errlen, "%s: path too long", confdir);
		return -1;
	}
	if (!file_exists(path))
		return 1;
	if (key_file_perm_ok(path, perr, sizeof(perr)) == -1) {
		snprintf(err, errlen, "%s", perr);
		return -1;
	}
	if (file_read(path, DATAKEY_FILE_MAX, &msg, &msglen) == -1) {
		snprintf(err, errlen, "cannot read %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (pgp_decrypt(confdir, msg, msglen, &plain, &plainlen, perr,
	    sizeof(perr)) == -1) {
		snprintf(err, errlen, "%s: %s", path, perr);
		goto out;
	}
	if (plainlen != CRYPTO_KEY_LEN) {
		snprintf(err, errlen, "%s: holds %zu bytes, not a %d-byte "
		    "data key", path, plainlen, CRYPTO_KEY_LEN);
		goto out;
	}
	memcpy(key, plain, CRYPTO_KEY_LEN);
	ret = 0;
out:
	if (plain != NULL)
		freezero(plain, plainlen);
	free(msg);
	return ret;
}
