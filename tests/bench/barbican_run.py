"""Run Debian's Barbican API (python3-barbican) on 127.0.0.1 with sqlite and
the unauthenticated pipeline, under wsgiref (one process, one thread).

    python3 barbican_run.py CONF PASTE_INI PORT
"""

import sys

conf, paste_ini, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
from wsgiref.simple_server import WSGIRequestHandler, make_server  # noqa: E402

from paste import deploy  # noqa: E402

from barbican.common import config  # noqa: E402

# barbican.common.config parsed only the default files when imported
config.parse_args(config.CONF, args=["--config-file", conf])


class Quiet(WSGIRequestHandler):
    def log_message(self, *a):
        pass


app = deploy.loadapp("config:" + paste_ini)
make_server("127.0.0.1", port, app, handler_class=Quiet).serve_forever()
