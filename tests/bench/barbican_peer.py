"""The peer: OpenStack Barbican (Debian's barbican-api / python3-barbican),
sqlite, unauthenticated pipeline, storing and fetching a 32-byte secret.
Started for real; when it cannot run here, `why` says so and the table
shows it instead of numbers."""

import base64
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


class Barbican:
    def __init__(self, base, log, spawn, stop):
        self.dir = os.path.join(base, "barbican")
        self.log, self.spawn, self.stop_proc = log, spawn, stop
        self.proc = None
        self.why = ""
        self.port = None

    def start(self):
        import bench
        paste_src = "/etc/barbican/barbican-api-paste.ini"
        if not os.path.exists(paste_src):
            self.why = "barbican-api is not installed (%s missing)" % paste_src
            return False
        os.mkdir(self.dir)
        self.port = bench.free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        conf = os.path.join(self.dir, "barbican.conf")
        with open(conf, "w") as f:
            f.write("[DEFAULT]\nsql_connection = sqlite:///%s/barbican.sqlite\n"
                    "db_auto_create = True\nhost_href = %s\nlog_file = %s/barbican.log\n"
                    "debug = False\n"
                    "[secretstore]\nenabled_secretstore_plugins = store_crypto\n"
                    "[crypto]\nenabled_crypto_plugins = simple_crypto\n"
                    "[simple_crypto_plugin]\nkek = %s\n"
                    % (self.dir, self.url, self.dir,
                       base64.b64encode(secrets.token_bytes(32)).decode()))
        paste = os.path.join(self.dir, "barbican-api-paste.ini")
        with open(paste_src) as f:
            text = f.read()
        # the unauthenticated pipeline (no keystone)
        text = text.replace("/v1: barbican-api-keystone", "/v1: barbican_api")
        with open(paste, "w") as f:
            f.write(text)
        # the schema (db_auto_create does not make it with this release)
        p = subprocess.run(["barbican-manage", "db", "upgrade", "--db-url",
                            "sqlite:///%s/barbican.sqlite" % self.dir],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        if p.returncode != 0:
            self.why = "barbican-manage db upgrade failed: " + \
                " ".join(p.stdout.decode(errors="replace").split())[-300:]
            return False
        self.proc = self.spawn([sys.executable, os.path.join(HERE, "barbican_run.py"), conf,
                                paste, str(self.port)], os.path.join(self.dir, "stderr.log"),
                               cwd=self.dir)  # whatever it writes stays in its dir
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self.secret_ref = self.store_one()
                self.prepare()
                return True
            except OSError:
                time.sleep(0.5)
        tail = ""
        for fn in ("stderr.log", "barbican.log"):
            try:
                with open(os.path.join(self.dir, fn), errors="replace") as f:
                    tail += f.read()[-600:]
            except OSError:
                pass
        self.why = "Barbican did not answer within 60 s: " + " ".join(tail.split())[-400:]
        self.stop()
        return False

    def body(self):
        return json.dumps({"payload": base64.b64encode(secrets.token_bytes(32)).decode(),
                           "payload_content_type": "application/octet-stream",
                           "payload_content_encoding": "base64"}, separators=(",", ":"))

    def store_one(self):
        req = urllib.request.Request(self.url + "/v1/secrets", data=self.body().encode(),
                                     headers={"Content-Type": "application/json",
                                              "X-Project-Id": "bench"})
        with urllib.request.urlopen(req, timeout=10) as r:
            ref = json.loads(r.read())["secret_ref"]
        path = ref.split("/v1/", 1)[1]
        req = urllib.request.Request(self.url + "/v1/" + path + "/payload",
                                     headers={"Accept": "application/octet-stream",
                                              "X-Project-Id": "bench"})
        with urllib.request.urlopen(req, timeout=10) as r:
            if len(r.read()) != 32:
                raise OSError("Barbican returned a payload of the wrong size")
        return "/v1/" + path

    def prepare(self):
        self.store_req = os.path.join(self.dir, "store.req")
        with open(self.store_req, "w") as f:
            for _ in range(200):
                f.write("POST\t/v1/secrets\tX-Project-Id: bench\t%s\n" % self.body())
        self.fetch_req = os.path.join(self.dir, "fetch.req")
        with open(self.fetch_req, "w") as f:
            f.write("GET\t%s/payload\tX-Project-Id: bench|Accept: application/octet-stream\t\n"
                    % self.secret_ref)

    def load(self, what, dur):
        import bench
        # one process, one thread: more connections only queue
        return bench.wrk(self.url, self.store_req if what == "store" else self.fetch_req,
                         1, 4, dur=dur)

    def stop(self):
        if self.proc is not None:
            self.stop_proc(self.proc)
            self.proc = None
