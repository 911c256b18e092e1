/* common.c - what every keytrustee-client command shares: open, report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "log.h"

struct kt_client *
client_open(const char *confdir, int *rc)
{
	struct kt_client *c = NULL;
	int ret;

	if ((ret = kt_client_open(confdir, &c)) != KT_OK) {
		*rc = c != NULL ? client_fail(c, ret) : 1;
		if (c == NULL)
			cli_error("out of memory");
		kt_client_free(c);
		return NULL;
	}
	return c;
}

int
client_fail(struct kt_client *c, int ret)
{
	const char *fpr = kt_client_fingerprint(c);
	const char *code = kt_client_error_code(c);

	cli_error("%s", kt_client_error(c));
	switch (ret) {
	case KT_ENOTREG:
		cli_hint("run '%s register --server URL --org ORG' first",
		    client_progname);
		break;
	case KT_EPENDING:
		cli_hint("this client (%s) waits for an org administrator to "
		    "run 'keytrustee-orgtool enable-client --fingerprint %s'",
		    fpr ? fpr : "?", fpr ? fpr : "FINGERPRINT");
		break;
	case KT_EDISABLED:
		cli_hint("an org administrator has disabled this client; ask "
		    "them to enable %s again", fpr ? fpr : "it");
		break;
	case KT_EUNAUTH:
		cli_hint("check this machine's clock (requests are valid for "
		    "5 minutes) or register again");
		break;
	case KT_EPERM:
		cli_hint("chmod 600 the file (and 700 %s) if it is yours",
		    kt_client_confdir(c) ? kt_client_confdir(c) : "the dir");
		break;
	case KT_ENET:
		cli_hint("check that the server is up and reachable; TLS "
		    "errors need --cacert FILE at register");
		break;
	case KT_ENOTFOUND:
		if (code == NULL || code[0] == '\0')
			break;
		/* FALLTHROUGH */
	case KT_ESERVER:
		if (code != NULL && strcmp(code, "bad_auth") == 0)
			cli_hint("--auth must be the organization's auth "
			    "secret (keytrustee-orgtool list shows it)");
		else if (kt_client_http_status(c) == 429)
			cli_hint("too many failed attempts; wait and retry");
		break;
	default:
		break;
	}
	return ret == KT_EINVAL ? 2 : 1;
}
