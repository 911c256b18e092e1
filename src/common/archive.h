/*
 * archive.h - looking inside a tar archive before anything is extracted:
 * which members it holds, of which type, with which link targets.  The
 * backups of a server and of a client are tar files (maybe inside OpenPGP);
 * their restores refuse an archive that would write outside its place.
 */
#ifndef KT_ARCHIVE_H
#define KT_ARCHIVE_H

#include <stddef.h>

struct archive_member {
	const char *name; /* as stored (GNU long names and pax paths applied) */
	const char *link; /* hard or symbolic link target, else "" */
	char type;	  /* tar typeflag: '0' file, '5' dir, '1', '2', ... */
	unsigned long long size;
	unsigned int mode;
};

/* Called for each member; returns 0 to go on, -1 (having said why) to stop. */
typedef int (*archive_member_fn)(const struct archive_member *m, void *arg);

/*
 * Walk the headers of the tar file at path, reading it as a stream (no size
 * limit), and call fn for every member.  Format errors are reported with
 * cli_error.  Returns the number of members, or -1.
 */
int archive_scan(const char *path, archive_member_fn fn, void *arg);

/*
 * Is name relative, free of ".." components, and under one top dir?  *top
 * is set by the first call (top[0] == '\0') and checked by the later ones.
 */
int archive_path_ok(const char *name, char *top, size_t toplen);

/* A symlink target that can only point down: relative, without "..". */
int archive_symlink_ok(const char *target);

/* What a file is: 1 a tar, 2 OpenPGP (binary or armored), 0 neither, -1 errno.
 */
int archive_kind(const char *path);

#endif
