"""tests/bench/legacy.py - the legacy (zTrustee / KTS) protocol's rows of
`make bench` (issue 18, tests/bench/README.md "Legacy protocol").

Each json-encrypt request costs the server at least two RSA-4096 private
operations of its key (decrypting the session key, signing the answer), so
its ceiling on a machine is that machine's own RSA-4096 private operations
per second, over all cores, divided by the operations a request needs.  The
rows are judged against that, measured in the same run by `openssl speed`:

- rsa4096: `openssl speed -multi NCPU rsa4096`, sign/s (private ops/s);
- put: json-encrypt `put` of 2 KiB deposits, 16 connections (2 ops);
- request+get: json-encrypt `request` and `get` lines alternated, 16
  connections (2 ops each: 4 a pair; its req/s counts both);
- registrations: the whole registration of a new client (HKP add,
  register, verify, request_activation: 0 + 1 + 2 + 2 = 5 ops), 8 at a
  time, by processes doing the client's side for real (decrypting the
  challenge), so the load generator's CPU is in this row's.

The put and request+get requests are made before the load by the test
client (tests/system/ztclient.py, the reference's packets: a v3 PKESK to
the server's primary, tag 9 without MDC, ZLIB, a one-pass SHA-512
signature), each one once (a signature the server has seen is a replay it
refuses), and sent by wrk through requests.lua, so that the load generator
spends nothing on RSA during the load.  Every one is signed within the
server's 300 s window right before its load.
"""

import math
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system"))
import ztclient  # noqa: E402

OPS = {"legacy_put": 2, "legacy_request_get": 2, "legacy_register": 5}
FORM = "Content-Type: " + ztclient.FORM
CLIENTS = 4          # clients making the put and request+get loads
DEPOSITS = 4         # deposits of each to request
REQUESTS = 16        # requests of each client to get (each sent at many signature times)
CONNS = 16
REG_PROCS = 8
REG_KEYS = 40        # keys a registration process makes, at most

# What the line maker and the forked registration processes read (set before
# the fork: keys are not picklable).
_G = {}


def openssl_rsa4096(seconds, cpus):
    """RSA-4096 private operations per second of the whole machine:
    `openssl speed -multi CPUS rsa4096`'s sign/s (summed over its
    processes)."""
    p = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "-multi", str(cpus),
                        "rsa4096"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=seconds * 4 + 120)
    for line in p.stdout.decode().splitlines():
        m = re.match(r"rsa\s+4096 bits\s+\S+\s+\S+\s+([0-9.]+)\s+([0-9.]+)\s*$", line)
        if m:
            return float(m.group(1))
    raise RuntimeError("openssl speed printed no rsa 4096 line:\n" + p.stdout.decode()
                       + p.stderr.decode())


def proc_cpu_s(pid):
    """CPU seconds (user + system) of pid and its child processes (the
    server and its key process)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids, total = [pid], 0.0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                pids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def _line(job):
    """One request line for requests.lua."""
    kind, ci, arg, sig_time = job
    c = _G["clients"][ci]
    if kind == "put":
        target, body = c.build("put", c.put_fields(os.urandom(_G["size"]), arg))
    elif kind == "request":
        dep, why = arg
        target, body = c.build("request", {"deposit_uuid": dep, "handle": None,
                                           "timeout": 43200, "justification": why})
    else:
        target, body = c.build("get", {"request_uuid": arg, "disable": False},
                               sig_time=sig_time)
    return "POST\t%s\t%s\t%s\n" % (target, FORM, body.decode())


def _register(slot, keys, barrier, results):
    """A registration process: its keys made first, then, from the barrier
    on, whole registrations until they are done or the time is up."""
    try:
        made = [ztclient.ClientKey.generate("ztrustee (client) <reg%d-%d@bench.example.com>"
                                            % (slot, i)) for i in range(keys)]
        barrier.wait(timeout=600)
        t0, done, errors, first = time.monotonic(), 0, 0, None
        for i, key in enumerate(made):
            if time.monotonic() > t0 + _G["dur"]:
                break
            # one source address a registration: /pks/add allows 20 a
            # minute per address
            c = ztclient.Client(_G["url"], key=key, token_sync=False, home=_G["home"],
                                source="127.%d.%d.%d" % (100 + slot, i // 250, i % 250 + 1))
            c.server_key, c.server_fingerprint = _G["server_key"], _G["server_fpr"]
            try:
                steps = (c.hkp_add, lambda: c.register("bench"), c.verify,
                         lambda: c.request_activation("bench", ""))
                if all(step().status == 200 for step in steps):
                    done += 1
                else:
                    errors += 1
                    first = first or "a step was refused"
            except ztclient.ZtError as e:
                errors += 1
                first = first or str(e)
        results.put((slot, done, errors, t0, time.monotonic(), first))
    except Exception as e:  # report, never hang the parent
        results.put((slot, 0, 1, None, None, "%s: %s" % (type(e).__name__, e)))


class Legacy:
    """The rows, on the bench's server (env) and its wrk runner."""

    def __init__(self, env, wrk, host_cpu, host_share, log, dur, quick, size):
        self.env, self.wrk, self.log = env, wrk, log
        self.host_cpu, self.host_share = host_cpu, host_share
        self.dur, self.quick, self.size = dur, quick, size
        self.url = "https://127.0.0.1:%d" % env.port
        self.cpus = os.cpu_count()
        self.rsa = []          # openssl's private ops/s, every round
        self.round = 0

    def setup(self):
        """CLIENTS clients registered the legacy way (org "bench" has no
        auth secret: active at once), each with DEPOSITS deposits and
        REQUESTS requests of them."""
        t0 = time.monotonic()
        self.home = tempfile.mkdtemp(prefix="ztbench-", dir=self.env.work)
        self.clients, self.deposits, self.requests = [], [], []
        for i in range(CLIENTS):
            c = ztclient.Client(self.url, name="bench%d" % i, host="bench.example.com",
                                token_sync=False, home=self.home, source="127.99.0.%d" % (i + 1))
            c.enroll(org="bench", auth="")
            self.clients.append(c)
            for j in range(DEPOSITS):
                a = c.put(os.urandom(self.size), "seed-%d-%d" % (i, j))
                if a.status != 200:
                    raise RuntimeError("legacy put: %r" % a)
                self.deposits.append((i, a["deposit_uuid"]))
        for k in range(REQUESTS):
            for i, dep in self.deposits[k % DEPOSITS::DEPOSITS]:
                a = self.clients[i].request(dep, justification="seed %d" % k)
                if a.status != 200:
                    raise RuntimeError("legacy request: %r" % a)
                self.requests.append((i, a["request_uuid"]))
        c = self.clients[0]
        got = c.get(self.requests[0][1])
        if got.status != 200 or c.open_content(got) is None:
            raise RuntimeError("a legacy deposit does not read back: %r" % got)
        _G.update(clients=self.clients, size=self.size, url=self.url, home=self.home,
                  dur=self.dur, server_key=c.server_key, server_fpr=c.server_fingerprint)
        self.log("legacy: %d clients, %d deposits, %d requests in %.1f s" % (
            CLIENTS, len(self.deposits), len(self.requests), time.monotonic() - t0))

    def ceiling(self, name):
        """Requests a second the machine's RSA-4096 allows this row (the
        median of openssl's runs so far)."""
        rsa = sorted(self.rsa)[len(self.rsa) // 2]
        return rsa / OPS[name]

    def make_lines(self, jobs, name):
        # In this process: a pool forked from the bench (which has threads
        # by then) hung now and then in a child on a lock held at the fork.
        t0 = time.monotonic()
        lines = [_line(j) for j in jobs]
        path = os.path.join(self.env.work, name)
        with open(path, "w") as f:
            f.writelines(lines)
        self.log("legacy: %d %s lines in %.1f s" % (len(lines), name, time.monotonic() - t0))
        return path, len(lines)

    def enough(self, name):
        """Lines for the load: half again what the ceiling allows in it."""
        return int(math.ceil(self.ceiling(name) * self.dur * 1.5)) + 64

    def postmaster(self):
        """The PID of the bench's PostgreSQL (its backends are its
        children), or None."""
        try:
            with open(os.path.join(self.env.pgroot, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def run_wrk(self, path, n, name):
        pg = self.postmaster()
        cpu0, db0 = proc_cpu_s(self.env.server.pid), pg and proc_cpu_s(pg)
        r = self.wrk(self.url, path, 2, CONNS, name=name)
        n_req = max(1, r["requests"])
        r["server_cpu_ms_per_req"] = (proc_cpu_s(self.env.server.pid) - cpu0) * 1000 / n_req
        if pg:
            # PostgreSQL's own CPU (its backends): what unprepared
            # statements spent parsing and planning shows here
            r["db_cpu_ms_per_req"] = (proc_cpu_s(pg) - db0) * 1000 / n_req
        r["lines"] = n
        if r["requests"] > n:
            self.log("legacy: %s sent %d requests of %d lines: the rest were replays "
                     "(errors)" % (name, r["requests"], n))
        return r

    # the rows

    def openssl(self):
        t = 1 if self.quick else 5
        cpu0 = self.host_cpu()
        ops = openssl_rsa4096(t, self.cpus)
        _, steal = self.host_share(cpu0)
        self.rsa.append(ops)
        return {"rps": ops, "p50_ms": None, "p99_ms": None, "requests": 0, "errors": 0,
                "cpu_us_per_req": 1e6 * self.cpus / ops, "steal_pct": steal}

    def put(self):
        self.round += 1
        jobs = [("put", i % CLIENTS, "put-%d-%d" % (self.round, i), None)
                for i in range(self.enough("legacy_put"))]
        return self.run_wrk(*self.make_lines(jobs, "legacy_put.req"), name="legacy_put")

    def request_get(self):
        """request and get lines alternated: each request names one of the
        seed deposits with a justification of its own; each get one of
        the seed requests at a signature time of its own (a get may be
        repeated; its signature may not)."""
        n, now = self.enough("legacy_request_get"), int(time.time())
        jobs = []
        for k in range(n):
            if k % 2 == 0:
                i, dep = self.deposits[k // 2 % len(self.deposits)]
                jobs.append(("request", i, (dep, "bench %d %d" % (self.round, k)), None))
            else:
                i, req = self.requests[k // 2 % len(self.requests)]
                jobs.append(("get", i, req, now - k // 2 // len(self.requests)))
        if n // 2 // len(self.requests) > 250:
            raise RuntimeError("legacy: too few seed requests for %d gets" % (n // 2))
        return self.run_wrk(*self.make_lines(jobs, "legacy_request_get.req"),
                            name="legacy_request_get")

    def register(self):
        """Whole registrations by REG_PROCS processes, each with its own
        keys (made before the barrier, RSA-2048 like the clients')."""
        # Two RSA-2048 keys a client take ~0.1 s to make: at most REG_KEYS
        # a process, and the rate is over the time they took.
        per = max(4, min(REG_KEYS // (5 if self.quick else 1), int(math.ceil(
            self.ceiling("legacy_register") * self.dur * 1.3 / REG_PROCS))))
        ctx = multiprocessing.get_context("fork")
        barrier, results = ctx.Barrier(REG_PROCS + 1), ctx.Queue()
        procs = [ctx.Process(target=_register, args=(s, per, barrier, results))
                 for s in range(REG_PROCS)]
        t0 = time.monotonic()
        for p in procs:
            p.start()
        try:
            barrier.wait(timeout=900)
            self.log("legacy: %d keys made in %.1f s" % (per * REG_PROCS, time.monotonic() - t0))
            cpu0, scpu0 = self.host_cpu(), proc_cpu_s(self.env.server.pid)
            got = [results.get(timeout=self.dur + 300) for _ in procs]
        finally:
            for p in procs:
                p.join(timeout=30)
                if p.is_alive():
                    p.kill()
        busy_us, steal = self.host_share(cpu0)
        scpu = proc_cpu_s(self.env.server.pid) - scpu0
        done, errors = sum(g[1] for g in got), sum(g[2] for g in got)
        starts = [g[3] for g in got if g[3] is not None]
        ends = [g[4] for g in got if g[4] is not None]
        if not starts or done == 0:
            raise RuntimeError("legacy registrations: none done: %s" % [g[5] for g in got])
        secs = max(ends) - min(starts)
        if errors:
            self.log("legacy registrations: %d refused, first: %s" % (
                errors, next(g[5] for g in got if g[5])))
        self.log("legacy registrations: %d in %.1f s" % (done, secs))
        return {"rps": done / secs, "p50_ms": None, "p99_ms": None, "requests": done,
                "errors": errors, "cpu_us_per_req": busy_us / done, "steal_pct": steal,
                "server_cpu_ms_per_req": scpu * 1000 / done, "seconds": secs}

    def plan(self):
        return [("legacy_rsa4096_openssl", self.openssl), ("legacy_put", self.put),
                ("legacy_request_get", self.request_get),
                ("legacy_register", self.register)]

    def ratios(self, loads, results):
        """Each row over its ceiling (median over median)."""
        o = loads.get("legacy_rsa4096_openssl", {})
        if "rps_median" not in o:
            return
        for name in OPS:
            if "rps_median" in loads.get(name, {}):
                results["ratios"][name + "_over_rsa4096"] = \
                    loads[name]["rps_median"] / (o["rps_median"] / OPS[name])
