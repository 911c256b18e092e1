"""make check's short pass of make fuzz: every libFuzzer target under
tests/fuzz/ is built and run for a few seconds over its committed corpus,
which holds the inputs that once failed (regress-*), and any crash, leak
or failed check fails the test.

Skipped only when tests/fuzz/build.sh finds no clang or no libFuzzer
runtime (its exit status 77); scripts/install-deps.sh installs both, so a
machine set up by `make deps` always runs it.
"""

import glob
import os
import re
import subprocess

import pytest

from conftest import ROOT

FUZZ = os.path.join(ROOT, "tests", "fuzz")
SECONDS = 5  # per target


def targets():
    return sorted(re.sub(r"^fuzz_(.*)\.c$", r"\1", os.path.basename(p))
                  for p in glob.glob(os.path.join(FUZZ, "fuzz_*.c")))


def test_every_target_has_a_seed_corpus():
    assert targets(), "no tests/fuzz/fuzz_*.c"
    for t in targets():
        seeds = glob.glob(os.path.join(FUZZ, "corpus", t, "*"))
        assert seeds, "fuzz_%s has no seeds in tests/fuzz/corpus/%s/" % (t, t)


def test_every_target_runs_clean_for_a_few_seconds():
    env = dict(os.environ, FUZZ_TIME=str(SECONDS))
    env.pop("FUZZ_BUILD_ONLY", None)
    proc = subprocess.run(
        ["nice", "-n", "10", "sh", os.path.join(FUZZ, "build.sh")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True, timeout=1800)
    if proc.returncode == 77:
        pytest.skip("no fuzzer toolchain: " + proc.stderr.strip())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for t in targets():
        assert "ok: fuzz_%s " % t in proc.stdout, \
            "fuzz_%s did not run:\n%s" % (t, proc.stdout)
        log = open(os.path.join(ROOT, "build", "fuzz", "fuzz_%s.log" % t),
                   errors="replace").read()
        m = re.search(r"stat::number_of_executed_units: (\d+)", log)
        # Its corpus at least, and then some fuzzing.
        seeds = len(glob.glob(os.path.join(FUZZ, "corpus", t, "*")))
        assert m and int(m.group(1)) > seeds, "fuzz_%s: %s" % (t, log[-2000:])
