/*
 * audit.c - one row of the append-only audit_log per state change, deposit
 * access and refusal: who, what, when, from where; never secret material.
 */
#include "audit.h"

int
audit(struct ha *ha, struct store *st, const struct audit_row *r)
{
	/* A passive's database is read-only: its journal takes the row. */
	if (ha_is_passive(ha))
		return ha_journal(ha, r);
	switch (store_audit(st, r)) {
	case STORE_OK:
		return 0;
	case STORE_READONLY: /* promoted or demoted since the last check */
		return ha_journal(ha, r);
	default:
		return -1;
	}
}
