/* archive.c - tar headers read before extraction (see archive.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "log.h"

#define TAR_BLOCK 512
#define TAR_META_MAX (1024 * 1024) /* a long name or pax header */

int
archive_path_ok(const char *name, char *top, size_t toplen)
{
	const char *p = name, *slash;
	size_t n;
	int first = 1;

	if (name[0] == '\0' || name[0] == '/')
		return 0;
	while (*p != '\0') {
		slash = strchr(p, '/');
		n = slash != NULL ? (size_t)(slash - p) : strlen(p);
		if (n == 2 && strncmp(p, "..", 2) == 0)
			return 0;
		if (first) {
			if (n == 0 || (n == 1 && p[0] == '.') || n >= toplen)
				return 0;
			if (top[0] == '\0') {
				memcpy(top, p, n);
				top[n] = '\0';
			} else if (strlen(top) != n || strncmp(top, p, n) != 0)
				return 0;
			first = 0;
		}
		p += n;
		while (*p == '/')
			p++;
	}
	return 1;
}

int
archive_symlink_ok(const char *target)
{
	const char *p;
	size_t n;

	if (target[0] == '/' || target[0] == '\0')
		return 0;
	for (p = target; *p != '\0';) {
		n = strcspn(p, "/");
		if (n == 2 && strncmp(p, "..", 2) == 0)
			return 0;
		p += n;
		while (*p == '/')
			p++;
	}
	return 1;
}

static unsigned long long
octal(const char *f, size_t len)
{
	unsigned long long v = 0;
	size_t i = 0;

	while (i < len && (f[i] == ' ' || f[i] == '\0'))
		i++;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++)
		v = v * 8 + (unsigned long long)(f[i] - '0');
	return v;
}

/* "len key=value\n" records of a pax header: pick path and linkpath. */
static void
pax_parse(const char *d, size_t len, char *path, char *link, size_t max)
{
	size_t off = 0, rlen;
	const char *kv, *eq;
	char *end;

	while (off < len) {
		rlen = strtoul(d + off, &end, 10);
		if (rlen == 0 || off + rlen > len || *end != ' ')
			return;
		kv = end + 1;
		eq = memchr(kv, '=', (size_t)(d + off + rlen - kv));
		if (eq != NULL) {
			size_t vlen = (size_t)(d + off + rlen - 1 - (eq + 1));
			char *dst = NULL;

			if ((size_t)(eq - kv) == 4 &&
			    strncmp(kv, "path", 4) == 0)
				dst = path;
			else if ((size_t)(eq - kv) == 8 &&
			    strncmp(kv, "linkpath", 8) == 0)
				dst = link;
			if (dst != NULL && vlen < max) {
				memcpy(dst, eq + 1, vlen);
				dst[vlen] = '\0';
			}
		}
		off += rlen;
	}
}

static unsigned long long
padded(unsigned long long size)
{
	return (size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
}

int
archive_scan(const char *path, archive_member_fn fn, void *arg)
{
	char h[TAR_BLOCK], name[PATH_MAX], link[PATH_MAX];
	char lname[PATH_MAX] = "", llink[PATH_MAX] = "";
	char *meta = NULL;
	struct archive_member m;
	unsigned long long size;
	struct stat st;
	FILE *fp;
	size_t i;
	int members = 0, ret = -1;

	if ((fp = fopen(path, "rbe")) == NULL) {
		cli_error("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) == -1) {
		cli_error("%s: %s", path, strerror(errno));
		fclose(fp);
		return -1;
	}
	for (;;) {
		size_t got = fread(h, 1, sizeof(h), fp);

		if (got == 0 && feof(fp))
			break; /* no end-of-archive blocks: tolerated */
		if (got != sizeof(h)) {
			cli_error("%s: the archive is truncated", path);
			goto out;
		}
		for (i = 0; i < sizeof(h) && h[i] == '\0'; i++)
			;
		if (i == sizeof(h))
			break;
		if (memcmp(h + 257, "ustar", 5) != 0) {
			cli_error("%s is not a tar file (bad header at offset "
				  "%lld)",
			    path, (long long)ftello(fp) - TAR_BLOCK);
			goto out;
		}
		size = octal(h + 124, 12);
		if (h[156] == 'L' || h[156] == 'K' || h[156] == 'x') {
			if (size > TAR_META_MAX) {
				cli_error("%s: a %lld-byte name header is too "
					  "large",
				    path, (long long)size);
				goto out;
			}
			free(meta);
			if ((meta = malloc(padded(size) + 1)) == NULL ||
			    fread(meta, 1, padded(size), fp) != padded(size)) {
				cli_error("%s: the archive is truncated", path);
				goto out;
			}
			if (h[156] == 'x')
				pax_parse(meta, size, lname, llink, PATH_MAX);
			else if (size < PATH_MAX) {
				char *dst = h[156] == 'L' ? lname : llink;

				memcpy(dst, meta, size);
				dst[size] = '\0';
			}
			continue;
		}
		if (h[156] != 'g') {
			if (lname[0] != '\0')
				snprintf(name, sizeof(name), "%s", lname);
			else if (h[345] != '\0')
				snprintf(name, sizeof(name), "%.155s/%.100s",
				    h + 345, h);
			else
				snprintf(name, sizeof(name), "%.100s", h);
			if (llink[0] != '\0')
				snprintf(link, sizeof(link), "%s", llink);
			else
				snprintf(link, sizeof(link), "%.100s", h + 157);
			lname[0] = llink[0] = '\0';
			m.name = name;
			m.link = h[156] == '1' || h[156] == '2' ? link : "";
			m.type = h[156] == '\0' ? '0' : h[156];
			m.size = size;
			m.mode = (unsigned int)octal(h + 100, 8) & 07777;
			if (fn(&m, arg) == -1)
				goto out;
			members++;
		}
		/* Links and dirs carry no data, whatever their size field says.
		 */
		if (h[156] == '1' || h[156] == '2' || h[156] == '5')
			size = 0;
		if (size > (unsigned long long)(st.st_size - ftello(fp))) {
			cli_error("%s: the archive is truncated", path);
			goto out;
		}
		if (size > 0 &&
		    fseeko(fp, (off_t)padded(size), SEEK_CUR) == -1) {
			cli_error("%s: %s", path, strerror(errno));
			goto out;
		}
	}
	if (ferror(fp)) {
		cli_error("reading %s: %s", path, strerror(errno));
		goto out;
	}
	if (members == 0) {
		cli_error("%s is empty or not a tar file", path);
		goto out;
	}
	ret = members;
out:
	free(meta);
	fclose(fp);
	return ret;
}

int
archive_kind(const char *path)
{
	unsigned char h[TAR_BLOCK];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, h, sizeof(h));
	close(fd);
	if (n == TAR_BLOCK && memcmp(h + 257, "ustar", 5) == 0)
		return 1;
	if (n >= 27 && memcmp(h, "-----BEGIN PGP MESSAGE-----", 27) == 0)
		return 2;
	if (n > 0 && (h[0] & 0x80) != 0)
		return 2;
	return 0;
}
