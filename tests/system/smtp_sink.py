"""A real SMTP server for the mail tests (Debian's python3-aiosmtpd).

Usage: python3 smtp_sink.py --port N --dir DIR [--cert PEM --key PEM]

Every message it accepts is written to DIR as <n>.eml (written to a temp
name, then renamed, so a reader never sees half a file) with a JSON side
file <n>.json holding the envelope (mail_from, rcpt_tos) and whether the
session had switched to TLS.  With --cert/--key it offers STARTTLS.
Recipients in the domain reject.invalid are refused with 550, those in
defer.invalid with 451, the way a real MTA refuses unknown users.
"""

import argparse
import asyncio
import itertools
import json
import os
import ssl

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        self.seq = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        domain = address.rsplit("@", 1)[-1].lower()
        if domain == "reject.invalid":
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if domain == "defer.invalid":
            return "451 4.3.0 <%s>: try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        n = "%d-%d" % (os.getpid(), next(self.seq))
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None}
        for ext, data in ((".json", json.dumps(meta).encode()),
                          (".eml", envelope.original_content)):
            tmp = os.path.join(self.outdir, "." + n + ext)
            with open(tmp, "wb") as f:
                f.write(data)
            os.rename(tmp, os.path.join(self.outdir, n + ext))
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    handler = Sink(args.dir)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(
        lambda: SMTP(handler, hostname="sink.localhost", tls_context=tls,
                     require_starttls=False, decode_data=False),
        host="127.0.0.1", port=args.port))
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
