#!/usr/bin/python3
"""tests/bench/bench.py - `make bench`: keytrustee-server against the
machine's own limits, side by side in one run (issue 8, tests/bench/README.md).

Everything runs on 127.0.0.1 in one temporary directory: a config dir made by
`ktadmin init`, its PostgreSQL (`ktadmin db --bootstrap`), the server, nginx
with the server's own certificate, pgbench on the same PostgreSQL, Barbican
when it runs.  Every load is bounded in time (wrk -d, pgbench -T, timeouts on
every subprocess); whatever was started is stopped on every exit path
(SIGTERM to process groups, then SIGKILL; `ktadmin db --stop`;
`gpgconf --kill all`).

Each pair runs alternately three times; the table gives the median and
min-max of req/s, the median p50/p99 latency, and ours/baseline ratios.
Four more columns say what the machine did meanwhile: the busy CPU time of
the whole machine per request (median; /proc/stat), load generator
included, the largest share of time the hypervisor took away in any run
(steal %; a run with much steal says little), the longest time the
cluster's disk held requests and completed none (/proc/diskstats), and
the WAL segments PostgreSQL made (each zero-filled while commits wait).  The
GET rows run with keytrustee.conf's default AUDIT_READ_FLUSH_MS (a read's
audit row committed before its answer, flushed within the window); a row
beside them runs the same GET with AUDIT_READ_FLUSH_MS = 0 (each read's row
flushed before its answer: the promise before issue 20), and a diagnostic
row with PostgreSQL's fsync off for that run only: what the disk costs a
read; neither is in a target.
Results also go to build/bench/results.json.

BENCH_SERVER_ARGS="--threads 8": extra keytrustee-server arguments (to
compare designs; the default run uses none).

BENCH_QUICK=1: every load 2 s, one round, small scaling sizes (to try the
harness; the numbers mean nothing).

BENCH_ONLY=ours_get,baseline_a_nginx_static: run only those loads (names as
in results.json), no Barbican, scaling or idle rows (to iterate on one path).
"""

import base64
import http.client
import json
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "build", "bin")
OUT = os.path.join(ROOT, "build", "bench")
HELPER = os.path.join(OUT, "ktbench")
LUA = os.path.join(ROOT, "tests", "bench", "requests.lua")
PUT_LUA = os.path.join(ROOT, "tests", "bench", "signed_put.lua")

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
DUR = 2 if QUICK else 10
ROUNDS = 1 if QUICK else 3
STORED = 1000 if QUICK else 10000
SCALES = [1000, 10000, 30000] if QUICK else [1000, 100000, 1000000]
IDLE_CONNS = 1000 if QUICK else 10000
SIZE = 2048
ONLY = [n for n in os.environ.get("BENCH_ONLY", "").split(",") if n]

started = []      # Popen objects (each in its own process group)
clusters = []     # pg root dirs
gnupg_homes = []


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def run(argv, timeout=600, check=True, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (" ".join(map(str, argv)), p.returncode,
                                                  p.stderr.decode(errors="replace")[-2000:]))
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, logpath, **kw):
    with open(logpath, "ab") as f:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                             start_new_session=True, **kw)
    started.append(p)
    return p


def stop(p, timeout=15):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=timeout)
    if p in started:
        started.remove(p)


def cleanup():
    for p in reversed(list(started)):
        try:
            stop(p)
        except Exception as e:  # keep cleaning up
            log("stopping pid %d: %s" % (p.pid, e))
    for root in clusters:
        if os.path.exists(os.path.join(root, "postmaster.pid")):
            subprocess.run([os.path.join(BIN, "ktadmin"), "db", "--stop", "--pg-rootdir", root],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    for h in gnupg_homes:
        if os.path.isdir(h):
            subprocess.run(["gpgconf", "--homedir", h, "--kill", "all"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def wait_tls(port, proc, what, timeout=30):
    ctx = no_verify()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited %d before it was ready" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost"):
                    return
        except (OSError, ssl.SSLError):
            time.sleep(0.1)
    raise RuntimeError("%s not ready after %ds" % (what, timeout))


def no_verify():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def https(port, method, path, body=b"", headers=None):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=no_verify(), timeout=60)
    try:
        c.request(method, path, body=body or None, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# --------------------------------------------------------------------------
# the setup: config dir, PostgreSQL, server, one client, stored deposits


class Env:
    def __init__(self, base):
        self.base = base
        self.confdir = os.path.join(base, "conf")
        self.pgroot = os.path.join(base, "pg")
        self.pgport = free_port()
        self.port = free_port()
        self.work = os.path.join(base, "work")
        os.mkdir(self.work)
        shutil.chown(self.work, "keytrustee", "keytrustee")
        self.server = None

    def psql(self, sql, db="keytrustee", stdin=None, timeout=1800):
        p = run(["runuser", "-u", "keytrustee", "--", "psql", "-h", self.pgroot, "-p",
                 str(self.pgport), "-d", db, "-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                stdin=stdin, timeout=timeout, cwd="/")
        return p.stdout.decode().strip()

    def setup(self):
        log("ktadmin init (RSA 4096: takes a while)")
        run([os.path.join(BIN, "ktadmin"), "init", "--confdir", self.confdir,
             "--hostname", "localhost"], timeout=600)
        gnupg_homes.append(self.confdir)
        clusters.append(self.pgroot)
        run([os.path.join(BIN, "ktadmin"), "db", "--bootstrap", "--confdir", self.confdir,
             "--pg-rootdir", self.pgroot, "--port", str(self.pgport)], timeout=300)
        self.start_server()
        uid = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(43))
        self.psql("INSERT INTO orgs (name, uuid, auth_secret) VALUES ('bench', '%s', '')" % uid)
        self.register_client()

    def start_server(self):
        self.server = spawn([os.path.join(BIN, "keytrustee-server"), "--confdir", self.confdir,
                             "--port", str(self.port), "--listen", "127.0.0.1",
                             "--max-connections", str(IDLE_CONNS + 100),
                             # the idle connections all come from 127.0.0.1
                             "--max-connections-per-address", str(IDLE_CONNS + 100)] +
                            os.environ.get("BENCH_SERVER_ARGS", "").split(),
                            os.path.join(self.base, "server.log"))
        wait_tls(self.port, self.server, "keytrustee-server")

    def set_conf(self, **keys):
        """keytrustee.conf's keys set (None: removed, the default), its
        owner and mode kept."""
        path = os.path.join(self.confdir, "keytrustee.conf")
        st = os.stat(path)
        with open(path) as f:
            conf = json.load(f)
        for k, v in keys.items():
            if v is None:
                conf.pop(k, None)
            else:
                conf[k] = v
        with open(path + ".new", "w") as f:
            json.dump(conf, f, indent=4)
        os.chown(path + ".new", st.st_uid, st.st_gid)
        os.chmod(path + ".new", st.st_mode & 0o777)
        os.rename(path + ".new", path)

    def restart_server(self):
        stop(self.server)
        self.start_server()
        self.wait_cache()

    def register_client(self):
        """One real client (a gpg key) whose secret we can decrypt."""
        home = os.path.join(self.base, "client-gnupg")
        os.mkdir(home, 0o700)
        gnupg_homes.append(home)
        gpg = ["gpg", "--homedir", home, "--batch", "--passphrase", "", "--quiet"]
        run(gpg + ["--quick-gen-key", "bench <bench@example.com>", "ed25519", "sign", "never"])
        fpr = [l.split(":")[9] for l in run(gpg + ["--with-colons", "--list-keys"])
               .stdout.decode().splitlines() if l.startswith("fpr:")][0]
        run(gpg + ["--quick-add-key", fpr, "cv25519", "encr", "never"])
        pub = run(gpg + ["--armor", "--export", fpr]).stdout.decode()
        st, data = https(self.port, "POST", "/v1/register",
                         json.dumps({"org": "bench", "pubkey": pub,
                                     "hostname": "bench.example.com"}).encode(),
                         {"Content-Type": "application/json"})
        if st != 201:
            raise RuntimeError("registration: %d %s" % (st, data[:300]))
        ans = json.loads(data)
        p = run(gpg + ["--pinentry-mode", "loopback", "-d"], input=ans["secret"].encode())
        self.fpr = ans["fingerprint"]
        self.secret = p.stdout.decode().strip()
        assert len(self.secret) == 64

    def store(self, n):
        """n deposits of SIZE bytes, sealed as the server seals them, by COPY."""
        ufile = os.path.join(self.work, "uuids-%d" % os.getpid())
        t0 = time.monotonic()
        helper = subprocess.Popen(["runuser", "-u", "keytrustee", "--", HELPER, "deposits",
                                   self.confdir, self.fpr, str(n), str(SIZE), ufile],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/")
        try:
            self.psql("COPY deposits (uuid, owner, name, description, nonce, content) "
                      "FROM STDIN (FORMAT binary)", stdin=helper.stdout)
            helper.stdout.close()
            if helper.wait(timeout=1800) != 0:
                raise RuntimeError("ktbench deposits: " + helper.stderr.read().decode())
        finally:
            if helper.poll() is None:
                helper.kill()
                helper.wait()
        self.psql("ANALYZE deposits")
        with open(ufile) as f:
            uuids = f.read().split()
        os.unlink(ufile)
        log("stored %d deposits in %.1f s" % (n, time.monotonic() - t0))
        self.settle()
        return uuids

    def settle(self):
        """The bulk load's pages written out (a checkpoint, then sync(2))
        before anything is measured: a server that has been up a while has
        its table on disk, and the kernel's writeback of a fresh 2 GB COPY
        would otherwise stall the next load's commits behind it."""
        t0 = time.monotonic()
        self.psql("CHECKPOINT", db="postgres")
        os.sync()
        log("checkpoint and sync in %.1f s" % (time.monotonic() - t0))

    def cache(self):
        st, body = https(self.port, "GET", "/health")
        return json.loads(body)["deposit_cache"]

    def wait_cache(self, timeout=900):
        """Until the server's deposit cache holds every stored deposit (or
        is full): what a server that has been up a while serves from.  The
        fill reads the table in the background (src/server/depcache.c)."""
        want = int(self.psql("SELECT count(*) FROM deposits"))
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            c = self.cache()
            full = c["bytes"] + 4 * SIZE > c["limit_bytes"]
            if c["live"] and (c["deposits"] >= want or (full and not c["filling"])):
                log("deposit cache: %d of %d deposits, %.0f MiB, after %.1f s" % (
                    c["deposits"], want, c["bytes"] / 2**20, time.monotonic() - t0))
                return c
            time.sleep(0.2)
        log("deposit cache: still filling after %d s: %s" % (timeout, self.cache()))
        return self.cache()

    def sign(self, lines, name):
        path = os.path.join(self.work, name)
        p = run([HELPER, "sign", self.secret, self.fpr], input="".join(lines).encode())
        with open(path, "wb") as f:
            f.write(p.stdout)
        return path


# --------------------------------------------------------------------------
# loads


PROFILE = os.environ.get("BENCH_PROFILE", "")
profiled = set()


def profile_start(name, dur):
    """BENCH_PROFILE=ours_get,ours_put: perf (cpu-clock, call graphs) on the
    server and on PostgreSQL during the first run of those loads, into
    build/bench/NAME.perf.data (read with perf report -i)."""
    if name not in PROFILE.split(",") or name in profiled or shutil.which("perf") is None:
        return None
    profiled.add(name)
    return subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-a", "-o",
                             os.path.join(OUT, name + ".perf.data"), "--", "sleep",
                             str(max(1, dur - 1))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def host_cpu():
    """The machine's CPU time so far (/proc/stat, in clock ticks)."""
    with open("/proc/stat") as f:
        return [int(x) for x in f.readline().split()[1:]]


def host_share(before):
    """What the machine did during a load, from host_cpu() before it: its
    busy CPU time in µs (everything on the machine: the load generator
    too) and the share of time the hypervisor took away (steal: on a
    shared VM, the noise that moves req/s between runs)."""
    d = [a - b for a, b in zip(host_cpu(), before)]
    total = sum(d[:8]) or 1
    idle, steal = d[3] + d[4], d[7]
    return (total - idle - steal) * 1e6 / os.sysconf("SC_CLK_TCK"), 100.0 * steal / total


class DiskWatch:
    """The block device under the cluster, read from /proc/diskstats every
    5 ms while a load runs: the longest stretch in which it had requests in
    flight and completed none.  Every answer waiting for a commit sits
    through such a stall (a GET waits for its audit row's flush), and
    wrk counts a stall of every connection many times over (its p99 is
    corrected for coordinated omission); nginx's answers touch no disk.
    Where the device cannot be found (no diskstats line for it), stall_ms
    is None.

    Also the WAL segments PostgreSQL made during the load: a new segment
    is 16 MB zero-filled and fsynced while the WAL write lock is held, so
    every commit waits for it (a young cluster has none to recycle; a
    recycled one keeps its inode, a new one has a new inode)."""
    dev = None  # (major, minor) of the cluster's filesystem, set by main()
    wal_dir = None  # the cluster's pg_wal, set by main()

    def __init__(self):
        self.stall_ms = None
        self.stalls_over_20ms = 0
        self.wal_new = None
        self._wal0 = None
        self._stop = threading.Event()
        self._thread = None

    @staticmethod
    def wal_inodes(d):
        """The inodes of the WAL segments in d (24 hex digits a name)."""
        inodes = set()
        with os.scandir(d) as it:
            for e in it:
                if len(e.name) == 24 and all(c in string.hexdigits for c in e.name):
                    inodes.add(e.inode())
        return inodes

    @staticmethod
    def sample(dev):
        """(completions, in flight) of dev, or None."""
        with open("/proc/diskstats") as f:
            for line in f:
                v = line.split()
                if (int(v[0]), int(v[1])) == dev:
                    n = [int(x) for x in v[3:]]
                    # reads, writes, discards (4.18+) and flushes (5.5+) done
                    done = n[0] + n[4] + (n[11] if len(n) > 11 else 0) + \
                        (n[15] if len(n) > 15 else 0)
                    return done, n[8]
        return None

    def _run(self):
        """A stall is counted between two samples that both saw requests in
        flight and the same completions: a lower bound, whatever the
        sampler's own delays under load."""
        done = since = None  # completions seen; first sample of them in flight
        longest = cur = 0.0
        while True:
            now, cur_sample = time.monotonic(), DiskWatch.sample(self.dev)
            if cur_sample is None:  # the device went away: what was seen stands
                break
            n, inflight = cur_sample
            if n != done or inflight == 0:
                if cur > 0.020:
                    self.stalls_over_20ms += 1
                done, cur = n, 0.0
                since = now if inflight else None
            elif since is None:
                since = now
            else:
                cur = now - since
                longest = max(longest, cur)
            if self._stop.wait(0.005):
                break
        if cur > 0.020:
            self.stalls_over_20ms += 1
        self.stall_ms = longest * 1000

    def __enter__(self):
        if self.wal_dir is not None:
            self._wal0 = DiskWatch.wal_inodes(self.wal_dir)
        if self.dev is not None and DiskWatch.sample(self.dev) is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self._wal0 is not None:
            self.wal_new = len(DiskWatch.wal_inodes(self.wal_dir) - self._wal0)

    def result(self):
        return {"disk_stall_ms": self.stall_ms, "disk_stalls_over_20ms":
                self.stalls_over_20ms if self.stall_ms is not None else None,
                "wal_segments_new": self.wal_new}


def wrk(url, reqfile, threads, conns, close=False, dur=None, name=None, script=None):
    """wrk through requests.lua over reqfile, or through script with the
    arguments reqfile (a list)."""
    dur = dur or DUR
    prof = profile_start(name, dur)
    args = reqfile if script else [reqfile, str(threads)] + (["close"] if close else [])
    argv = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % dur, "--timeout", "5s",
            "-s", script or LUA, url, "--"] + args
    cpu0 = host_cpu()
    with DiskWatch() as disk:
        p = run(argv, timeout=dur + 60)
    busy_us, steal = host_share(cpu0)
    if prof is not None:
        prof.wait(timeout=60)
    out = p.stdout.decode()
    for line in out.splitlines():
        if line.startswith("JSON "):
            r = json.loads(line[5:])
            secs = r["duration_us"] / 1e6
            errs = sum(r[k] for k in ("connect_errors", "read_errors", "write_errors",
                                     "status_errors", "timeouts"))
            return {"rps": (r["requests"] - errs) / secs, "p50_ms": r["p50_us"] / 1000,
                    "p99_ms": r["p99_us"] / 1000, "requests": r["requests"], "errors": errs,
                    "cpu_us_per_req": busy_us / max(1, r["requests"]), "steal_pct": steal,
                    "detail": {k: r[k] for k in r if k.endswith("errors") or k == "timeouts"},
                    **disk.result()}
    raise RuntimeError("wrk printed no summary:\n" + out + p.stderr.decode())


def disk_flush(path, dur):
    """The disk's own commit latency: 8 KiB written and fdatasync'd over and
    over in one file on the filesystem of the cluster's WAL, nothing else
    running.  Every answer that waits for a commit (each GET waits for its
    audit row's) carries this; nginx's answers do not.  Its tail is the
    VM's disk, not the server."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    lat = []
    try:
        block = os.urandom(8192)
        for i in range(256):
            os.pwrite(fd, block, i * 8192)
        os.fsync(fd)
        end = time.monotonic() + dur
        i = 0
        while time.monotonic() < end:
            t0 = time.monotonic()
            os.pwrite(fd, block, (i % 256) * 8192)
            os.fdatasync(fd)
            lat.append((time.monotonic() - t0) * 1000)
            i += 1
    finally:
        os.close(fd)
        os.unlink(path)
    return {"flushes_per_s": len(lat) / dur, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
            "max_ms": max(lat), "over_5ms": sum(1 for x in lat if x > 5),
            "over_20ms": sum(1 for x in lat if x > 20)}


def wait_setting(env, name, value, timeout=10):
    """Until a new session sees the setting (pg_reload_conf only signals)."""
    deadline = time.monotonic() + timeout
    while env.psql("SHOW " + name, db="postgres") != value:
        if time.monotonic() > deadline:
            raise RuntimeError("PostgreSQL's %s is not %s after a reload" % (name, value))
        time.sleep(0.05)


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else 0.0


class Loads:
    def __init__(self, env, nginx, uuids):
        self.env = env
        self.nginx = nginx
        self.uuids = uuids
        self.url = "https://127.0.0.1:%d" % env.port

    # baseline A: nginx, 2 KiB static file, keep-alive
    def nginx_static(self):
        return wrk(self.nginx.url, self.nginx.static_req, 2, 64)

    # ours: GET of a random one of the stored deposits
    def ours_get(self, uuids=None, dur=None):
        uuids = uuids or self.uuids
        lines = ["GET\t/v1/deposits/%s\t\n" % random.choice(uuids) for _ in range(10000)]
        req = self.env.sign(lines, "get.req")
        first = int(self.env.psql("SELECT coalesce(max(id), 0) FROM audit_log"))
        r = wrk(self.url, req, 2, 64, dur=dur, name="ours_get")
        # The reads' rows per committed batch (one transaction each).
        rows, batches = self.env.psql(
            "SELECT count(*), count(DISTINCT xmin::text) FROM audit_log WHERE id > %d "
            "AND action = 'deposit_read'" % first).split("|")
        r["read_rows_per_batch"] = int(rows) / int(batches) if int(batches) else None
        return r

    # the same GET with each read's row flushed before its answer
    def ours_get_flush0(self):
        """The GET load on a server restarted with AUDIT_READ_FLUSH_MS = 0
        (every read waits for its audit row's flush, as before issue 20),
        then restarted with the default again, its cache filled."""
        e = self.env
        e.set_conf(AUDIT_READ_FLUSH_MS=0)
        try:
            e.restart_server()
            return self.ours_get()
        finally:
            e.set_conf(AUDIT_READ_FLUSH_MS=None)
            e.restart_server()

    # diagnostic: the same GET with PostgreSQL's fsync off, restored after
    def ours_get_nofsync(self):
        """What the disk costs a GET: the server unchanged (every answer still
        waits for its audit row's commit), only PostgreSQL's fdatasync of
        that commit skipped.  Never a target, never a setting: fsync is back
        on, and what it left unwritten is on disk (a checkpoint and
        sync(2)), before the next load."""
        e = self.env
        e.psql("ALTER SYSTEM SET fsync = off", db="postgres")
        e.psql("SELECT pg_reload_conf()", db="postgres")
        try:
            wait_setting(e, "fsync", "off")
            return self.ours_get()
        finally:
            e.psql("ALTER SYSTEM RESET fsync", db="postgres")
            e.psql("SELECT pg_reload_conf()", db="postgres")
            wait_setting(e, "fsync", "on")
            e.settle()

    # baseline B: pgbench, one 2 KiB bytea row per transaction
    def pgbench_insert(self):
        e = self.env
        logdir = os.path.join(e.work, "pgb")
        shutil.rmtree(logdir, ignore_errors=True)
        os.mkdir(logdir)
        shutil.chown(logdir, "keytrustee", "keytrustee")
        cpu0 = host_cpu()
        with DiskWatch() as disk:
            p = run(["runuser", "-u", "keytrustee", "--", "pgbench", "-n", "-h", e.pgroot,
                     "-p", str(e.pgport), "-c16", "-j2", "-T%d" % DUR, "-M", "prepared",
                     "-f", self.pgb_script, "--log", "--log-prefix",
                     os.path.join(logdir, "tx"), "ktbench_b"], timeout=DUR + 120, cwd=logdir)
        busy_us, steal = host_share(cpu0)
        out = p.stdout.decode()
        tps = None
        for line in out.splitlines():
            if line.startswith("tps = "):
                tps = float(line.split()[2])
        lat = []
        for fn in os.listdir(logdir):
            with open(os.path.join(logdir, fn)) as f:
                for line in f:
                    lat.append(int(line.split()[2]) / 1000.0)
        if tps is None:
            raise RuntimeError("pgbench printed no tps:\n" + out)
        return {"rps": tps, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
                "requests": len(lat), "errors": 0,
                "cpu_us_per_req": busy_us / max(1, len(lat)), "steal_pct": steal,
                **disk.result()}

    def pgbench_prepare(self):
        e = self.env
        e.psql("CREATE DATABASE ktbench_b", db="postgres")
        e.psql("CREATE EXTENSION pgcrypto; CREATE TABLE blobs (id bigserial PRIMARY KEY, "
               "b bytea NOT NULL)", db="ktbench_b")
        self.pgb_script = os.path.join(e.work, "insert.sql")
        with open(self.pgb_script, "w") as f:
            # 2 KiB of random (incompressible, like sealed deposits) bytes
            f.write("INSERT INTO blobs (b) VALUES "
                    "(gen_random_bytes(1024) || gen_random_bytes(1024));\n")
        os.chmod(self.pgb_script, 0o644)

    # ours: POST /v1/deposits of 2 KiB, 16 connections
    def ours_put(self):
        # Each request signed as wrk sends it: a signed write the server
        # has seen is answered from its record, not stored again.
        before = int(self.env.psql("SELECT count(*) FROM deposits"))
        r = wrk(self.url, [self.env.secret, self.env.fpr, str(SIZE)], 2, 16,
                name="ours_put", script=PUT_LUA)
        r["created"] = int(self.env.psql("SELECT count(*) FROM deposits")) - before
        if r["created"] < r["requests"] - r["errors"]:
            raise RuntimeError("ours_put: %d answered requests made %d deposits" % (
                r["requests"] - r["errors"], r["created"]))
        return r

    # ours: registrations of new clients, 8 concurrent
    def ours_register(self):
        e = self.env
        n = 3000 if QUICK else 20000
        p = run([HELPER, "regbodies", "bench", str(n)])
        path = os.path.join(e.work, "reg.req")
        with open(path, "wb") as f:
            for line in p.stdout.splitlines():
                f.write(b"POST\t/v1/register\t\t" + line + b"\n")
        before = int(e.psql("SELECT count(*) FROM clients"))
        r = wrk(self.url, path, 2, 8, name="ours_register")
        created = int(e.psql("SELECT count(*) FROM clients")) - before
        r["created"] = created
        r["rps"] = created / DUR
        r["cpu_us_per_req"] *= r["requests"] / max(1, created)
        if created >= n // 2 * 2 - 8:
            log("registration: %d keys were not enough: rate is a lower bound" % n)
        return r

    # full TLS handshakes: a new connection per fingerprint request
    def ours_handshake(self):
        path = os.path.join(self.env.work, "fpr.req")
        with open(path, "w") as f:
            f.write("GET\t/?a=fingerprint\t\t\n")
        return wrk(self.url, path, 2, 16, close=True)

    def nginx_handshake(self):
        return wrk(self.nginx.url, self.nginx.fpr_req, 2, 16, close=True)


# --------------------------------------------------------------------------
# nginx (baseline A and the handshake baseline)


class Nginx:
    def __init__(self, env):
        self.dir = os.path.join(env.base, "nginx")
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o755)
        www = os.path.join(self.dir, "www")
        os.mkdir(www)
        os.chmod(www, 0o755)
        with open(os.path.join(www, "static.bin"), "wb") as f:
            f.write(os.urandom(SIZE))
        qfpr = https(env.port, "GET", "/?a=fingerprint")[1]
        with open(os.path.join(www, "fingerprint"), "wb") as f:
            f.write(qfpr)
        for fn in os.listdir(www):
            os.chmod(os.path.join(www, fn), 0o644)
        self.port = free_port()
        self.url = "https://127.0.0.1:%d" % self.port
        ssl_dir = os.path.join(env.confdir, ".ssl")
        d = self.dir
        conf = """
worker_processes 2;
daemon off;
master_process on;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:%(port)d ssl;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        ssl_protocols TLSv1.3;
        ssl_session_tickets off;
        root %(www)s;
        default_type application/octet-stream;
    }
}
""" % {"d": d, "port": self.port, "www": www,
       "cert": os.path.join(ssl_dir, "ssl-cert-keytrustee.pem"),
       "key": os.path.join(ssl_dir, "ssl-cert-keytrustee-pk.pem")}
        self.conf = os.path.join(d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.static_req = os.path.join(d, "static.req")
        with open(self.static_req, "w") as f:
            f.write("GET\t/static.bin\t\t\n")
        self.fpr_req = os.path.join(d, "fpr.req")
        with open(self.fpr_req, "w") as f:
            f.write("GET\t/fingerprint\t\t\n")
        self.proc = spawn(["nginx", "-e", os.path.join(d, "error.log"), "-p", d, "-c",
                           self.conf], os.path.join(d, "stderr.log"))
        wait_tls(self.port, self.proc, "nginx")


# --------------------------------------------------------------------------
# the table


def median_or_none(values):
    """The median, or None when a run has none (openssl's and the legacy
    registrations' rows have no latency)."""
    values = list(values)
    return None if None in values or not values else statistics.median(values)


def summarize(runs):
    rps = [r["rps"] for r in runs]
    return {"rps_median": statistics.median(rps), "rps_min": min(rps), "rps_max": max(rps),
            "p50_ms": median_or_none(r["p50_ms"] for r in runs),
            "p99_ms": median_or_none(r["p99_ms"] for r in runs),
            "server_cpu_ms_per_req": median_or_none(r.get("server_cpu_ms_per_req")
                                                    for r in runs),
            "db_cpu_ms_per_req": median_or_none(r.get("db_cpu_ms_per_req") for r in runs),
            "errors": sum(r.get("errors", 0) for r in runs),
            "read_rows_per_batch": median_or_none(r.get("read_rows_per_batch")
                                                  for r in runs),
            "cpu_us_per_req": statistics.median(r.get("cpu_us_per_req", 0) for r in runs),
            "steal_pct_max": max(r.get("steal_pct", 0) for r in runs),
            "disk_stall_ms_max": max((r["disk_stall_ms"] for r in runs
                                      if r.get("disk_stall_ms") is not None), default=None),
            "wal_segments_new_median": statistics.median(
                [r["wal_segments_new"] for r in runs
                 if r.get("wal_segments_new") is not None] or [None]),
            "runs": runs}


def fmt_row(name, s):
    if s is None:
        return "%-34s %s" % (name, "not run")
    if "skipped" in s:
        return "%-34s %s" % (name, s["skipped"])
    stall, wal = s.get("disk_stall_ms_max"), s.get("wal_segments_new_median")

    def ms(v):
        return "-" if v is None else "%.2f" % v
    return "%-34s %9.0f  %8.0f-%-8.0f %7s %8s %6d %8.0f %6.0f %8s %7s" % (
        name, s["rps_median"], s["rps_min"], s["rps_max"], ms(s["p50_ms"]), ms(s["p99_ms"]),
        s["errors"], s.get("cpu_us_per_req", 0), s.get("steal_pct_max", 0),
        "-" if stall is None else "%.0f" % stall, "-" if wal is None else "%g" % wal)


def main():
    if os.geteuid() != 0:
        print("error: make bench runs as root (PostgreSQL runs as the keytrustee "
              "account, nginx binds as root)", file=sys.stderr)
        return 1
    for b in ("keytrustee-server", "ktadmin"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            print("error: %s is not built; run make" % b, file=sys.stderr)
            return 1
    # 10,000 idle connections need as many descriptors, here and in the server
    # (each side holds one descriptor per connection; the server inherits)
    global IDLE_CONNS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE_CONNS + 1000
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            IDLE_CONNS = hard - 1000
            log("the descriptor limit is %d here: %d idle connections" % (hard, IDLE_CONNS))
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    os.makedirs(OUT, exist_ok=True)
    base = tempfile.mkdtemp(prefix="ktbench-")
    os.chmod(base, 0o755)
    t_start = time.monotonic()
    results = {"quick": QUICK, "duration_s": DUR, "rounds": ROUNDS, "deposit_size": SIZE,
               "host": {"cpus": os.cpu_count()}, "loads": {}, "ratios": {}}

    def handler(sig, frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    try:
        env = Env(base)
        st = os.stat(base)
        DiskWatch.dev = (os.major(st.st_dev), os.minor(st.st_dev))
        DiskWatch.wal_dir = os.path.join(env.pgroot, "pg_wal")
        env.setup()
        uuids = env.store(STORED)
        env.wait_cache()
        st, body = https(env.port, "GET", "/v1/deposits/" + uuids[0], headers={
            "Authorization": open(env.sign(["GET\t/v1/deposits/%s\t\n" % uuids[0]], "one"))
            .read().split("\t")[2].split(": ", 1)[1]})
        if st != 200 or len(base64.b64decode(json.loads(body)["content"])) != SIZE:
            raise RuntimeError("a stored deposit does not read back: %d %s" % (st, body[:200]))
        log("disk: 8 KiB write + fdatasync, %d s" % DUR)
        results["disk_flush"] = disk_flush(os.path.join(env.work, "flush.probe"), DUR)
        nginx = Nginx(env)
        loads = Loads(env, nginx, uuids)
        loads.pgbench_prepare()
        import barbican_peer
        peer = barbican_peer.Barbican(base, log, spawn, stop)
        peer_ok = not ONLY and peer.start()
        if ONLY:
            peer.why = "BENCH_ONLY"

        import legacy
        lg = legacy.Legacy(env, wrk, host_cpu, host_share, log, DUR, QUICK, SIZE)
        plan = [("baseline_a_nginx_static", loads.nginx_static),
                ("ours_get", loads.ours_get),
                ("ours_get_flush0", loads.ours_get_flush0),
                ("ours_get_nofsync", loads.ours_get_nofsync),
                ("baseline_b_pgbench_insert", loads.pgbench_insert),
                ("ours_put", loads.ours_put),
                ("ours_register", loads.ours_register),
                ("nginx_handshake", loads.nginx_handshake),
                ("ours_handshake", loads.ours_handshake)]
        if peer_ok:
            plan += [("barbican_store", lambda: peer.load("store", DUR)),
                     ("barbican_fetch", lambda: peer.load("fetch", DUR))]
        plan += lg.plan()
        if ONLY:
            plan = [(k, fn) for k, fn in plan if k in ONLY]
        if any(k.startswith("legacy_") and k != "legacy_rsa4096_openssl" for k, _ in plan):
            if "legacy_rsa4096_openssl" not in [k for k, _ in plan]:
                plan.insert(0, ("legacy_rsa4096_openssl", lg.openssl))
            lg.setup()
        raw = {k: [] for k, _ in plan}
        for rnd in range(ROUNDS):
            for name, fn in plan:
                log("round %d: %s" % (rnd + 1, name))
                raw[name].append(fn())
        for k, v in raw.items():
            results["loads"][k] = summarize(v)
        if not peer_ok:
            results["loads"]["barbican_store"] = {"skipped": "not run: " + peer.why}
            results["loads"]["barbican_fetch"] = {"skipped": "not run: " + peer.why}
        if peer_ok:
            peer.stop()
        lg.ratios(results["loads"], results)
        if ONLY:
            return report(results, t_start)

        # cost as work grows: the same GET with 1k, 100k, 1M stored deposits
        import idle
        scale = {}
        env.psql("DELETE FROM deposits")
        env.psql("VACUUM deposits")
        have = []
        for n in SCALES:
            have += env.store(n - len(have))
            cached = env.wait_cache()
            log("scaling: GET with %d stored" % n)
            scale[str(n)] = summarize([loads.ours_get(have) for _ in range(ROUNDS)])
            scale[str(n)]["cache"] = cached
            scale[str(n)]["rss_mib"] = idle.rss_mib(env.server.pid)
        results["scaling"] = scale

        # The connections' memory on a server holding no deposits: with
        # them, the cache's size is in the scaling rows (rss_mib, cache).
        env.psql("DELETE FROM deposits")
        stop(env.server)
        env.start_server()
        env.wait_cache()

        # memory at many idle connections
        results["idle"] = idle.measure(env.server.pid, env.port, IDLE_CONNS, log)
    finally:
        cleanup()
        shutil.rmtree(base, ignore_errors=True)

    return report(results, t_start)


def report(results, t_start):
    """The table and results.json (rows not run are left out)."""
    L = results["loads"]

    def ratio(a, b, key):
        if a in L and b in L and "rps_median" in L[a] and "rps_median" in L[b] \
                and L[b]["rps_median"] > 0:
            results["ratios"][key] = L[a]["rps_median"] / L[b]["rps_median"]
    ratio("ours_get", "baseline_a_nginx_static", "get_over_nginx_static")
    ratio("ours_get_flush0", "baseline_a_nginx_static", "get_flush0_over_nginx_static")
    ratio("ours_put", "baseline_b_pgbench_insert", "put_over_pgbench_insert")
    ratio("ours_handshake", "nginx_handshake", "handshake_over_nginx")
    ratio("ours_get", "barbican_fetch", "get_over_barbican_fetch")
    ratio("ours_put", "barbican_store", "put_over_barbican_store")
    sc = results.get("scaling", {})
    if sc:
        first, last = sc[str(SCALES[0])]["rps_median"], sc[str(SCALES[-1])]["rps_median"]
        results["ratios"]["get_largest_over_smallest"] = last / first if first else 0
    results["elapsed_s"] = time.monotonic() - t_start
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=2)

    print("\nkeytrustee benchmark (%s; %d s loads, %d rounds alternated, loopback, "
          "%d cores)" % ("QUICK: numbers mean nothing" if QUICK else "full", DUR, ROUNDS,
                         os.cpu_count()))
    print("%-34s %9s  %-17s %7s %8s %6s %8s %6s %8s %7s" % (
        "load", "req/s", "min-max", "p50 ms", "p99 ms", "errors", "cpu us", "steal%",
        "stall ms", "new WAL"))
    names = [("baseline A: nginx 2 KiB static", "baseline_a_nginx_static"),
             ("ours: GET deposit (10k stored)", "ours_get"),
             ("ours: GET, AUDIT_READ_FLUSH_MS=0", "ours_get_flush0"),
             ("diagnostic: GET, PG fsync off", "ours_get_nofsync"),
             ("baseline B: pgbench 2 KiB insert", "baseline_b_pgbench_insert"),
             ("ours: POST deposit 2 KiB", "ours_put"),
             ("ours: registrations (new/s)", "ours_register"),
             ("nginx: full TLS handshakes", "nginx_handshake"),
             ("ours: full TLS handshakes", "ours_handshake"),
             ("Barbican: store 32 B (HTTP)", "barbican_store"),
             ("Barbican: fetch 32 B (HTTP)", "barbican_fetch"),
             ("machine: openssl rsa4096 sign/s", "legacy_rsa4096_openssl"),
             ("legacy: put 2 KiB (json-encrypt)", "legacy_put"),
             ("legacy: request+get (json-enc.)", "legacy_request_get"),
             ("legacy: registrations (new/s)", "legacy_register")]
    for label, k in names:
        if k in L or not ONLY:
            print(fmt_row(label, L.get(k)))
    for n in SCALES if sc else []:
        print(fmt_row("ours: GET, %d stored" % n, sc[str(n)]))
    print("(p50/p99: wrk's as it reports them, corrected for coordinated omission -- a stall\n"
          " of every connection counts as the requests they would have sent meanwhile; pgbench's\n"
          " are its raw transaction times.  stall ms: the longest time the cluster's disk held\n"
          " requests and completed none, in any run; new WAL: the 16 MB WAL segments PostgreSQL\n"
          " zero-filled during a run (median; every commit waits for each).  The GET rows run\n"
          " with the default AUDIT_READ_FLUSH_MS (a read's row flushed within that window);\n"
          " AUDIT_READ_FLUSH_MS=0 flushes each read's row before its answer.  The fsync-off GET\n"
          " is a diagnostic, never a target: what the GET costs without the disk's flush)")
    targets = {"get_over_nginx_static": 0.5, "put_over_pgbench_insert": 0.8,
               "handshake_over_nginx": 0.8, "get_over_barbican_fetch": 50,
               "put_over_barbican_store": 50, "get_largest_over_smallest": 0.8,
               "legacy_put_over_rsa4096": 0.8, "legacy_request_get_over_rsa4096": 0.8}
    print("\nratio                              value   target")
    for k, v in results["ratios"].items():
        if k not in targets:
            print("%-34s %6.2f   (no target)" % (k, v))
            continue
        print("%-34s %6.2f   >= %g %s" % (k, v, targets[k],
                                          "ok" if v >= targets[k] else "MISSED"))
    lrows = [k for k in ("legacy_put", "legacy_request_get", "legacy_register")
             if "rps_median" in L.get(k, {})]
    if lrows and "rps_median" in L.get("legacy_rsa4096_openssl", {}):
        import legacy
        rsa = L["legacy_rsa4096_openssl"]["rps_median"]
        print("\nlegacy protocol: the rows over the machine's RSA-4096 private ops "
              "(openssl speed, %d cores: %.0f/s, %.2f ms each on one core)"
              % (os.cpu_count(), rsa, 1000.0 * os.cpu_count() / rsa))
        print("%-22s %8s %8s %8s %7s %16s %12s" % ("row", "req/s", "ops/req", "ceiling",
                                                   "ratio", "server cpu ms/req",
                                                   "db cpu ms"))
        for k in lrows:
            cpu, db = L[k].get("server_cpu_ms_per_req"), L[k].get("db_cpu_ms_per_req")
            print("%-22s %8.0f %8d %8.0f %7.2f %16s %12s" % (
                k, L[k]["rps_median"], legacy.OPS[k], rsa / legacy.OPS[k],
                L[k]["rps_median"] / (rsa / legacy.OPS[k]), "-" if cpu is None else "%.2f" % cpu,
                "-" if db is None else "%.2f" % db))
    g = L.get("ours_get", {})
    if "p99_ms" in g:
        why = []
        if "p99_ms" in L.get("baseline_a_nginx_static", {}):
            why.append("nginx's own %.2f" % L["baseline_a_nginx_static"]["p99_ms"])
        if "p99_ms" in L.get("ours_get_flush0", {}):
            why.append("with AUDIT_READ_FLUSH_MS=0 %.2f" % L["ours_get_flush0"]["p99_ms"])
        if "p99_ms" in L.get("ours_get_nofsync", {}):
            why.append("with PG fsync off %.2f" % L["ours_get_nofsync"]["p99_ms"])
        if g.get("disk_stall_ms_max") is not None:
            why.append("disk stalled up to %.0f ms" % g["disk_stall_ms_max"])
        if g.get("wal_segments_new_median") is not None:
            why.append("new WAL segments a run: %g" % g["wal_segments_new_median"])
        for k, what in (("ours_get", "read rows a batch %.1f"),
                        ("ours_get_flush0", "%.1f with AUDIT_READ_FLUSH_MS=0")):
            if L.get(k, {}).get("read_rows_per_batch") is not None:
                why.append(what % L[k]["read_rows_per_batch"])
        print("%-34s %6.2f   <= 5 ms %s%s" % ("ours_get p99 (ms)", g["p99_ms"],
                                              "ok" if g["p99_ms"] <= 5 else "MISSED",
                                              " (%s)" % "; ".join(why) if why else ""))
    r = L.get("ours_register", {})
    if "rps_median" in r:
        print("%-34s %6.0f   >= 200/s %s" % ("registrations per second", r["rps_median"],
                                             "ok" if r["rps_median"] >= 200 else "MISSED"))
    d = results.get("disk_flush")
    if d is not None:
        print("%-34s %6.2f   (p50 %.2f ms, max %.1f ms, %d over 5 ms and %d over 20 ms in %d s; "
              "%.0f flushes/s)" % ("disk: fdatasync 8 KiB, p99 (ms)", d["p99_ms"], d["p50_ms"],
                                   d["max_ms"], d["over_5ms"], d["over_20ms"],
                                   results["duration_s"], d["flushes_per_s"]))
    i = results.get("idle")
    if i is not None:
        print("%-34s %6.1f   <= 200 MiB %s (%d connections held, RSS before %.1f MiB)" % (
            "server RSS at idle conns (MiB)", i["rss_mib"],
            "ok" if i["rss_mib"] <= 200 else "MISSED", i["held"], i["rss_before_mib"]))
    for n in SCALES if sc else []:
        c = sc[str(n)].get("cache")
        if c:
            print("%-34s %6.1f   (cache: %d deposits, %.0f MiB of %.0f MiB)" % (
                "server RSS, %d stored (MiB)" % n, sc[str(n)]["rss_mib"], c["deposits"],
                c["bytes"] / 2**20, c["limit_bytes"] / 2**20))
    print("\nresults: %s (%.0f s)" % (os.path.join(OUT, "results.json"),
                                      results["elapsed_s"]))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print("error: bench: %s" % e, file=sys.stderr)
        sys.exit(1)
