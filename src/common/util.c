/* util.c - small file, string and account helpers shared by every binary. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ftw.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int
file_read(const char *path, size_t maxlen, char **out, size_t *outlen)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd, ret = -1;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *nb;
			cap = cap ? cap * 2 : 8192;
			if ((nb = realloc(buf, cap)) == NULL)
				goto out;
			buf = nb;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > maxlen) {
			errno = EFBIG;
			goto out;
		}
	}
	if (buf == NULL && (buf = malloc(1)) == NULL)
		goto out;
	buf[len] = '\0';
	*out = buf;
	buf = NULL;
	if (outlen)
		*outlen = len;
	ret = 0;
out:
	if (buf != NULL)
		freezero(buf, cap);
	close(fd);
	return ret;
}

/* Make a rename durable: fsync the directory that holds path. */
static int
dir_fsync(const char *path)
{
	char dir[PATH_MAX], *slash;
	int fd, ret;

	if (strlen(path) >= sizeof(dir))
		return 0;
	strcpy(dir, path);
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	ret = fsync(fd);
	close(fd);
	return ret;
}

int
file_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	const char *p = data;
	int fd, saved;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* A stale temp file of a crashed writer with our pid: start afresh. */
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd == -1)
		return -1;
	if (fchmod(fd, mode) == -1)
		goto fail;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, path) == -1) {
		fd = -1;
		goto fail;
	}
	return dir_fsync(path);
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	unlink(tmp);
	errno = saved;
	return -1;
}

int
file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

int
dir_ensure(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) == 0)
		return chmod(path, mode);
	if (errno != EEXIST)
		return -1;
	if (stat(path, &st) == -1)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

int
dir_ensure_parents(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	char buf[PATH_MAX], *p, *last;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((last = strrchr(buf, '/')) == NULL)
		return 0;
	for (p = buf + 1; p <= last; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) == 0) {
			if (chmod(buf, mode) == -1 ||
			    (uid != (uid_t)-1 && chown(buf, uid, gid) == -1))
				return -1;
		} else if (errno != EEXIST)
			return -1;
		*p = '/';
	}
	return 0;
}

int
key_file_perm_ok(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (stat(path, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen,
		    "%s: private key file has mode %04o; it must not be "
		    "accessible by group or others (needs 0600 or stricter)",
		    path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

int
path_join(char *buf, size_t len, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s/%s", a, b);

	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

void
hex_encode(const unsigned char *in, size_t len, char *out, int upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

int
hex_valid(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

unsigned
str_hash(const char *s)
{
	unsigned h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
freezero(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

int
account_lookup(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;

	if ((pw = getpwnam(name)) == NULL)
		return -1;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

int
chown_to_account(const char *path, const char *account)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0)
		return 0;
	if (account_lookup(account, &uid, &gid) == -1) {
		errno = ENOENT;
		return -1;
	}
	return chown(path, uid, gid);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

int
rm_tree(const char *path)
{
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* nftw passes no argument: the owner for chown_tree_to_account. */
static uid_t tree_uid;
static gid_t tree_gid;

static int
chown_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return lchown(path, tree_uid, tree_gid);
}

int
chown_tree_to_account(const char *path, const char *account)
{
	if (geteuid() != 0)
		return 0;
	if (account_lookup(account, &tree_uid, &tree_gid) == -1) {
		errno = ENOENT;
		return -1;
	}
	return nftw(path, chown_entry, 16, FTW_PHYS);
}

int
become_user(uid_t uid, gid_t gid)
{
	struct passwd *pw;

	if ((pw = getpwuid(uid)) == NULL) {
		errno = ENOENT;
		return -1;
	}
	if (initgroups(pw->pw_name, gid) == -1 || setgid(gid) == -1 ||
	    setuid(uid) == -1)
		return -1;
	if (uid != 0 && setuid(0) != -1) {
		errno = EPERM; /* root could be regained: refuse to go on */
		return -1;
	}
	return 0;
}

int
parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

int
become_owner_of(const char *path, uid_t *uid)
{
	struct stat st;

	*uid = geteuid();
	if (*uid != 0)
		return 0;
	if (stat(path, &st) == -1)
		return -1;
	*uid = st.st_uid;
	if (st.st_uid == 0)
		return 1;
	return become_user(st.st_uid, st.st_gid);
}
