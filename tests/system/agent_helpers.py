"""Shared helpers of the kt-agent system tests (test_agent*.py)."""

import os
import signal
import subprocess
import time

from conftest import ROOT, binary, ktadmin, run, wait_for

DESCRIPTOR = os.path.join(ROOT, "descriptor", "keytrustee.yaml")
VERSION = "1.0.0"


class Agent:
    """kt-agent with its own state dir, host name and PARCELS_ROOT."""

    def __init__(self, base, host="localhost"):
        self.state = os.path.join(base, "state")
        self.parcels = os.path.join(base, "parcels")
        self.host = host

    def __call__(self, *args, timeout=180, check=False):
        argv = [binary("kt-agent"), "--state", self.state, "--host", self.host,
                "--parcels-root", self.parcels] + [str(a) for a in args]
        return run(argv, timeout=timeout, check=check)

    def supervisor_pid(self):
        try:
            with open(os.path.join(self.state, "agent.pid")) as f:
                pid = int(f.read())
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return None
            return pid
        except (OSError, ValueError):
            return None


def build_parcel(version, outdir):
    proc = run(["sh", os.path.join(ROOT, "parcels", "build.sh"), "--version", version,
                "--bindir", os.path.join(ROOT, "build", "bin"), "--outdir", outdir],
               check=True, timeout=120)
    return proc.stdout.strip()


def build_csd(outdir, version=VERSION):
    proc = run(["sh", os.path.join(ROOT, "csd", "build.sh"), "--version", version,
                "--outdir", outdir], check=True)
    return proc.stdout.strip()


def unpack_csd(jar, dest):
    os.makedirs(dest)
    subprocess.run(["unzip", "-q", jar, "-d", dest], check=True, timeout=60)
    return dest


def stop_supervisor(agent):
    """Teardown, first half: stop through the agent; a supervisor still
    there after that is terminated, then killed."""
    try:
        agent("stop", "--timeout", "60", timeout=90)
    except subprocess.TimeoutExpired:
        pass
    pid = agent.supervisor_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        try:
            wait_for(lambda: agent.supervisor_pid() is None, 60, "supervisor exit")
        except AssertionError:
            os.kill(pid, signal.SIGKILL)


def sweep(base, db_root):
    """Teardown, second half: servers a failed test left under base, then
    the host's PostgreSQL."""
    for line in run(["pgrep", "-f", base]).stdout.split():
        try:
            if "keytrustee-server" in open("/proc/%s/cmdline" % line,
                                           errors="replace").read():
                os.kill(int(line), signal.SIGTERM)
        except OSError:
            pass
    time.sleep(0.5)
    if os.path.exists(os.path.join(db_root, "postmaster.pid")):
        ktadmin("db", "--stop", "--pg-rootdir", db_root)
