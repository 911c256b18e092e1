/*
 * auditchain.h - ktadmin audit --verify, --export and --prune-before: the
 * audit chain's checks and its keeping (auditchain.c, docs/audit.md).
 */
#ifndef KTADMIN_AUDITCHAIN_H
#define KTADMIN_AUDITCHAIN_H

#include <stdio.h>

/*
 * argv[0] is "audit"; argv holds --verify [--file FILE], --export --before
 * DATE --output FILE, or --prune-before DATE, and --confdir DIR.  Returns
 * the exit code: 0 intact (done), 1 tampered (or failed), 2 usage.
 */
int audit_chain_main(int argc, char **argv);
/* The usage of those verbs (ktadmin audit --help prints it too). */
void audit_chain_usage(FILE *fp);

#endif
