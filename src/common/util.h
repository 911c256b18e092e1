/* util.h - small file, string and account helpers shared by every binary. */
#ifndef KT_UTIL_H
#define KT_UTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Read a whole file (at most maxlen bytes) into a NUL-terminated buffer. */
int file_read(const char *path, size_t maxlen, char **out, size_t *outlen);
/* Write data to path via a temp file + fsync + rename, with the given mode. */
int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode);
int file_exists(const char *path);
/* rm -r: path and everything under it, links not followed. */
int rm_tree(const char *path);

/* mkdir with mode if missing; fails if it exists but is not a directory. */
int dir_ensure(const char *path, mode_t mode);
/*
 * mkdir -p of path's parents (not path itself): each one missing is made
 * with mode and, unless uid is (uid_t)-1, given to uid:gid.  0, else -1
 * with errno.
 */
int dir_ensure_parents(const char *path, mode_t mode, uid_t uid, gid_t gid);

/*
 * A file holding a secret key must not be readable by group or others.
 * Returns 0 when fine; otherwise -1 with a message naming the mode it has
 * and the mode it needs in err.
 */
int key_file_perm_ok(const char *path, char *err, size_t errlen);

/* path_join: "a" + "/" + "b" into buf; -1 when it does not fit. */
int path_join(char *buf, size_t len, const char *a, const char *b);

/* A decimal integer in [lo, hi], the whole string: 0, else -1. */
int parse_int(const char *s, int lo, int hi, int *out);

void hex_encode(const unsigned char *in, size_t len, char *out, int upper);
/* 1 when the n characters of s are all hex digits (either case). */
int hex_valid(const char *s, size_t n);
void freezero(void *p, size_t len);
/* FNV-1a of a string: the in-memory caches' bucket hash. */
unsigned str_hash(const char *s);
/* CLOCK_MONOTONIC in milliseconds: for deadlines and ages, not dates. */
long long mono_ms(void);

/* Look up the service account; -1 when it does not exist. */
int account_lookup(const char *name, uid_t *uid, gid_t *gid);
/* chown path to the account when running as root (no-op otherwise). */
int chown_to_account(const char *path, const char *account);
/* Switch this process to uid/gid and uid's groups, for good. */
int become_user(uid_t uid, gid_t gid);
/*
 * As root, become the owner of path (the config dir: the server and the
 * tools that use its keyring run as the account that owns it).  *uid is the
 * uid now in effect.  0 done (or not root), 1 path is root's (still root),
 * -1 with errno.
 */
int become_owner_of(const char *path, uid_t *uid);
/* The same for path and everything under it (links not followed); not
 * thread-safe. */
int chown_tree_to_account(const char *path, const char *account);

#endif
