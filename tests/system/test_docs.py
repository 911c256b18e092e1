"""The documentation: a short README, links that lead somewhere, man pages
that render without a warning, and every binary's --help naming its page.

The man pages are rendered as an operator reads them (`man -l`, 80
columns) and checked with groff's warnings all on (`groff -man -ww -z`);
man-db and groff-base come from scripts/install-deps.sh.
"""

import glob
import os
import re

import pytest

from conftest import ROOT, binary, run, tool

README = os.path.join(ROOT, "README.md")
DOCS = os.path.join(ROOT, "docs")
MAN = os.path.join(DOCS, "man")
SCRIPTS = os.path.join(ROOT, "scripts")

# binary -> (its page, the commands whose --help lists its options)
PAGES = {
    "keytrustee-server": ("keytrustee-server.8", [[]]),
    "ktadmin": ("ktadmin.8", [[], ["init"], ["db"], ["promote"], ["restore"], ["mail"],
                             ["audit"]]),
    "keytrustee-orgtool": ("keytrustee-orgtool.8",
                           [[], ["add"], ["list"], ["disable-client"], ["enable-client"],
                            ["set-auth"], ["activate-client"], ["reset-token"]]),
    "keytrustee-client": ("keytrustee-client.1",
                          [[], ["register"], ["put"], ["get"], ["list"], ["delete"],
                           ["backup"], ["restore"]]),
    "kt-agent": ("kt-agent.8",
                 [[], ["validate"], ["assign"], ["actions"], ["exec"], ["start"], ["stop"],
                  ["status"], ["run"], ["history"], ["schedule"], ["parcel"]]),
    "ktbackup.sh": ("ktbackup.sh.8", [[]]),
}
# other programs a page documents as well
ALSO = {"ktbackup.sh": ["kt-backup-schedule.sh"]}
MAN_PAGES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(MAN, "*.[0-9]")))
BINARY_SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES", "EXIT STATUS",
                   "EXAMPLES", "SEE ALSO")
CONF_SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "KEYS", "FILES", "EXAMPLES", "SEE ALSO")


def program(name):
    if name.endswith(".sh"):
        path = os.path.join(SCRIPTS, name)
        assert os.access(path, os.X_OK), path
        return path
    return binary(name)


def help_text(name, words):
    proc = run([program(name)] + words + ["--help"], timeout=10)
    assert proc.returncode == 0, (name, words, proc.stderr)
    return proc.stdout


def render(page):
    """`man -l` at 80 columns: (stdout, stderr)."""
    env = dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat", LC_ALL="C.UTF-8")
    env.pop("MANOPT", None)
    proc = run([tool("man"), "-l", os.path.join(MAN, page)], timeout=30, env=env)
    assert proc.returncode == 0, (page, proc.stderr)
    return proc.stdout, proc.stderr


def markdown_files():
    return [README] + sorted(glob.glob(os.path.join(DOCS, "*.md"))) + [
        os.path.join(ROOT, "tests", "bench", "RESULTS.md")]


def github_anchor(heading):
    """The id GitHub gives a heading: lower case, punctuation dropped
    (letters, digits, '-', '_' and spaces kept), spaces as '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def strip_code(text):
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path):
    with open(path) as f:
        text = re.sub(r"^```.*?^```", "", f.read(), flags=re.S | re.M)
    return {github_anchor(m.group(1)) for m in re.finditer(r"^#+ (.*)$", text, re.M)}


# --------------------------------------------------------------------------
# README


def test_readme_is_short_and_keeps_the_two_commands():
    with open(README) as f:
        text = f.read()
    lines = text.count("\n")
    assert lines <= 200, "README.md has %d lines; move detail into docs/" % lines
    assert "make run" in text and "make check" in text


# --------------------------------------------------------------------------
# links


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_lead_to_files(path):
    with open(path) as f:
        text = strip_code(f.read())
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links, "%s links to nothing" % path
    bad = []
    for target in links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        if not os.path.isfile(dest):
            bad.append("%s: no such file" % target)
        elif frag and dest.endswith(".md") and frag not in anchors(dest):
            bad.append("%s: no heading #%s in %s" % (target, frag, os.path.relpath(dest, ROOT)))
    assert not bad, "%s:\n  %s" % (os.path.relpath(path, ROOT), "\n  ".join(bad))


# --------------------------------------------------------------------------
# man pages


def test_every_page_is_there():
    want = sorted([page for page, _ in PAGES.values()] + ["keytrustee.conf.5"])
    assert MAN_PAGES == want


@pytest.mark.parametrize("page", MAN_PAGES)
def test_page_renders_without_warnings(page):
    out, err = render(page)
    assert err == "", "man -l %s:\n%s" % (page, err)
    name, section = page.rsplit(".", 1)
    assert out.startswith("%s(%s)" % (name.upper(), section)), out[:200]
    proc = run([tool("groff"), "-man", "-ww", "-z", os.path.join(MAN, page)], timeout=30)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr
    wanted = CONF_SECTIONS if page == "keytrustee.conf.5" else BINARY_SECTIONS
    headings = re.findall(r"^([A-Z][A-Z ]+)$", out, re.M)
    missing = [s for s in wanted if s not in headings]
    assert not missing, "%s lacks %s" % (page, missing)


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_documents_every_option(name):
    page, commands = PAGES[name]
    out, _ = render(page)
    helps = "".join(help_text(name, words) for words in commands)
    helps += "".join(help_text(other, []) for other in ALSO.get(name, []))
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", helps))
    assert options, name
    missing = sorted(o for o in options if not re.search(re.escape(o) + r"(?![a-z-])", out))
    assert not missing, "%s does not document %s" % (page, missing)


def test_conf_page_documents_every_key():
    with open(os.path.join(ROOT, "src", "common", "conf.c")) as f:
        keys = re.findall(r'\{ "([A-Z_]+)", CT_', f.read())
    assert "SSL_CERTIFICATE" in keys and "HOSTNAME" in keys
    out, _ = render("keytrustee.conf.5")
    missing = [k for k in keys if not re.search(r"^ {7}%s \(" % k, out, re.M)]
    assert not missing, "keytrustee.conf(5) has no entry for %s" % missing


# --------------------------------------------------------------------------
# --help names the page


@pytest.mark.parametrize("name", sorted(PAGES))
def test_help_names_its_page(name):
    page, _ = PAGES[name]
    ref = "%s(%s)" % tuple(page.rsplit(".", 1))
    assert os.path.isfile(os.path.join(MAN, page))
    text = help_text(name, [])
    assert ref in text, "%s --help does not name %s" % (name, ref)
