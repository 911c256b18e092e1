"""libkeytrustee as a library user meets it: installed by `make install`
and found through pkg-config.

The module installs once (`make install DESTDIR=<tmp> PREFIX=/usr/local`)
and checks what landed there: files and modes, the SONAME and the symbols
both libraries export (the kt_* functions keytrustee.h declares, nothing
else), the header on its own, keytrustee.pc, and every manual page of the
tree.  Then a small C program, built with `pkg-config --cflags --libs
keytrustee` pointed into DESTDIR, once against libkeytrustee.so and once
with --static against libkeytrustee.a, registers with conftest.py's real
server, puts a deposit, gets it back and compares the bytes.
"""

import glob
import os
import re
import shlex
import stat
import subprocess

import pytest

from conftest import ROOT, binary, mode, run, tool

PREFIX = "/usr/local"
BINARIES = ["keytrustee-server", "ktadmin", "keytrustee-orgtool",
            "keytrustee-client", "kt-agent", "ktbackup.sh", "kt-backup-schedule.sh"]
SOFILE = "libkeytrustee.so.1.0.0"
SONAME = "libkeytrustee.so.1"
DATA = b"\x00libkeytrustee\x00\xff\xfe\n" + bytes(range(256)) * 16 + b"\x00"

PROGRAM = r"""
/* A library user: register, put a deposit, get it back, compare. */
#include <keytrustee.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* usage: prog CONFDIR SERVER ORG CACERT FILE */
int
main(int argc, char **argv)
{
	struct kt_register_opts o;
	struct kt_client *c = NULL;
	struct kt_deposit_info *items = NULL;
	unsigned char buf[65536], *data = NULL;
	enum kt_source src = KT_SRC_CACHE;
	size_t len, dlen = 0, n = 0, i;
	char *uuid = NULL;
	const char *what = "usage";
	int rc = KT_EINVAL, listed = 0, status = 1;
	FILE *f;

	if (argc != 6 || (f = fopen(argv[5], "rb")) == NULL)
		goto out;
	len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	what = "kt_client_open";
	if ((rc = kt_client_open(argv[1], &c)) != KT_OK)
		goto out;
	what = "a fresh confdir is registered";
	if (kt_client_registered(c))
		goto out;
	memset(&o, 0, sizeof(o));
	o.server = argv[2];
	o.org = argv[3];
	o.cacert = argv[4];
	o.hostname = "libkeytrustee.example.com";
	what = "kt_register";
	if ((rc = kt_register(c, &o)) != KT_OK)
		goto out;
	what = "state after kt_register";
	if (kt_client_state(c) == NULL || strcmp(kt_client_state(c), "active"))
		goto out;
	what = "kt_put";
	rc = kt_put(c, "libkeytrustee-demo", "put through the library", buf,
	    len, &uuid);
	if (rc != KT_OK)
		goto out;
	what = "kt_get";
	rc = kt_get(c, uuid, KT_GET_NO_CACHE, &data, &dlen, &src);
	if (rc != KT_OK)
		goto out;
	what = "kt_get answered from somewhere but the active server";
	if (src != KT_SRC_ACTIVE)
		goto out;
	what = "the bytes got back differ from the bytes put";
	if (dlen != len || memcmp(data, buf, len) != 0)
		goto out;
	what = "kt_list";
	if ((rc = kt_list(c, "libkeytrustee-demo", &items, &n)) != KT_OK)
		goto out;
	for (i = 0; i < n; i++)
		listed += strcmp(items[i].uuid, uuid) == 0;
	what = "kt_list does not name the deposit once";
	if (listed != 1)
		goto out;
	printf("%s %zu %s\n", uuid, dlen, kt_client_fingerprint(c));
	status = 0;
out:
	if (status != 0)
		fprintf(stderr, "%s: %d: %s\n", what, rc,
		    c != NULL ? kt_client_error(c) : "");
	kt_deposit_info_free(items, n);
	free(data);
	free(uuid);
	if (c != NULL)
		kt_client_kill_agent(c);
	kt_client_free(c);
	return status;
}
"""


def make(*args):
    """make in the tree, with a clean environment of make's own (a
    `make system` above us would hand down its jobserver)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return run(["make", "--no-print-directory", "-C", ROOT] + list(args),
               timeout=900, check=True, env=env)


def tree_man_pages():
    return sorted(glob.glob(os.path.join(ROOT, "docs", "man", "*.[1-8]")))


def header_api():
    """The function names keytrustee.h declares (comments left out)."""
    with open(os.path.join(ROOT, "src", "libkeytrustee", "keytrustee.h")) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    names = set(re.findall(r"\b(kt_\w+)\s*\(", text))
    assert len(names) >= 15, names
    return names


def defined_symbols(*nm_args):
    proc = run([tool("nm"), "--defined-only"] + list(nm_args), check=True)
    # "ADDRESS TYPE NAME" lines; an archive adds "member:" headers.
    return {f[2] for f in (l.split() for l in proc.stdout.splitlines()) if len(f) == 3}


def needed(path):
    proc = run([tool("readelf"), "-d", path], check=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", proc.stdout)


class Installed:
    def __init__(self, destdir):
        self.destdir = destdir
        self.root = destdir + PREFIX
        self.libdir = os.path.join(self.root, "lib")
        self.includedir = os.path.join(self.root, "include")
        self.pcdir = os.path.join(self.libdir, "pkgconfig")

    def pkg_config(self, *args):
        env = dict(os.environ, PKG_CONFIG_PATH=self.pcdir,
                   PKG_CONFIG_SYSROOT_DIR=self.destdir)
        proc = run([tool("pkg-config")] + list(args), check=True, env=env)
        return shlex.split(proc.stdout)

    def files(self):
        """Every path under the prefix, relative to it, with its lstat."""
        found = {}
        for top, dirs, files in os.walk(self.root):
            for name in dirs + files:
                path = os.path.join(top, name)
                found[os.path.relpath(path, self.root)] = os.lstat(path)
        return found


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    destdir = str(tmp_path_factory.mktemp("destdir"))
    make("install", "DESTDIR=" + destdir, "PREFIX=" + PREFIX)
    return Installed(destdir)


def descriptor_version():
    with open(os.path.join(ROOT, "descriptor", "keytrustee.yaml")) as f:
        return re.search(r"^version: *(\S+)", f.read(), re.M).group(1)


# --------------------------------------------------------------------------
# what make install puts where


def test_installed_files_and_modes(inst):
    files = {"bin/" + b: 0o755 for b in BINARIES}
    files.update({
        "lib/libkeytrustee.a": 0o644,
        "lib/" + SOFILE: 0o644,
        "include/keytrustee.h": 0o644,
        "lib/pkgconfig/keytrustee.pc": 0o644,
        # the account script and the services' units (packaging/)
        "libexec/keytrustee/kt-account.sh": 0o755,
        "lib/systemd/system/keytrusteed.service": 0o644,
        "lib/systemd/system/keytrustee-db.service": 0o644,
    })
    links = {"lib/" + SONAME: SOFILE, "lib/libkeytrustee.so": SONAME}
    man = {"share/man/man%s/%s" % (p.rsplit(".", 1)[1], os.path.basename(p)): 0o644
           for p in tree_man_pages()}
    files.update(man)

    found = inst.files()
    dirs = {p for p, st in found.items() if stat.S_ISDIR(st.st_mode)}
    assert set(found) - dirs == set(files) | set(links)
    for path, want in files.items():
        st = found[path]
        assert stat.S_ISREG(st.st_mode), path
        assert st.st_mode & 0o7777 == want, (path, oct(st.st_mode & 0o7777))
    for path, target in links.items():
        assert stat.S_ISLNK(found[path].st_mode), path
        assert os.readlink(os.path.join(inst.root, path)) == target
    for d in dirs:
        assert found[d].st_mode & 0o7777 == 0o755, d
    with open(os.path.join(ROOT, "src", "libkeytrustee", "keytrustee.h"), "rb") as f:
        with open(os.path.join(inst.includedir, "keytrustee.h"), "rb") as g:
            assert f.read() == g.read()


def test_man_pages_of_the_tree_installed(inst):
    """Whatever docs/man/NAME.N the tree holds (none at first) is installed
    as share/man/manN/NAME.N, byte for byte, and nothing else is."""
    pages = tree_man_pages()
    want = {"share/man/man%s/%s" % (p.rsplit(".", 1)[1], os.path.basename(p)): p
            for p in pages}
    got = {p for p, st in inst.files().items()
           if p.startswith("share/man/") and not stat.S_ISDIR(st.st_mode)}
    assert got == set(want)
    for dst, src in want.items():
        with open(src, "rb") as f, open(os.path.join(inst.root, dst), "rb") as g:
            assert f.read() == g.read(), dst


def test_man_rule_takes_each_section_and_the_prefix(tmp_path):
    """The rule with pages present: each NAME.N lands in its manN, under
    the PREFIX given (pages here from MAN_PAGES, as the tree's would)."""
    src = tmp_path / "man"
    src.mkdir()
    names = ["ktfake.1", "ktfake.conf.5", "kt-fake-admin.8"]
    for n in names:
        (src / n).write_text(".TH %s\n" % n.upper())
    destdir = str(tmp_path / "dest")
    make("install", "DESTDIR=" + destdir, "PREFIX=/usr",
         "MAN_PAGES=" + " ".join(str(src / n) for n in names))
    mandir = os.path.join(destdir, "usr", "share", "man")
    got = sorted(os.path.relpath(os.path.join(top, f), mandir)
                 for top, _, files in os.walk(mandir) for f in files)
    assert got == ["man1/ktfake.1", "man5/ktfake.conf.5", "man8/kt-fake-admin.8"]
    for p in got:
        assert mode(os.path.join(mandir, p)) == 0o644
    with open(os.path.join(destdir, "usr", "lib", "pkgconfig", "keytrustee.pc")) as f:
        assert "prefix=/usr\n" in f.read()


def test_pkg_config_file(inst):
    assert inst.pkg_config("--modversion", "keytrustee") == [descriptor_version()]
    with open(os.path.join(inst.pcdir, "keytrustee.pc")) as f:
        assert "\nprefix=%s\n" % PREFIX in f.read()
    # pkg-config puts the sysroot (DESTDIR) before the prefix it read.
    assert inst.pkg_config("--variable=prefix", "keytrustee") == [inst.root]
    cflags = inst.pkg_config("--cflags", "keytrustee")
    assert "-I" + inst.includedir in cflags
    libs = inst.pkg_config("--libs", "keytrustee")
    assert libs == ["-L" + inst.libdir, "-lkeytrustee"]
    static = inst.pkg_config("--static", "--libs", "keytrustee")
    for lib in ("-lkeytrustee", "-lcurl", "-lgpgme", "-lcrypto", "-ljansson"):
        assert lib in static, static


# --------------------------------------------------------------------------
# what the libraries export


def test_shared_library_soname_and_exports(inst):
    so = os.path.join(inst.libdir, SOFILE)
    proc = run([tool("readelf"), "-d", so], check=True)
    assert "Library soname: [%s]" % SONAME in proc.stdout
    exported = defined_symbols("-D", so)
    assert all(s.startswith("kt_") for s in exported), sorted(exported)
    assert exported == header_api()
    # Nothing of the library's internals or of the common code.
    assert not {"kt_seterr", "kt_http", "path_join", "log_warnx"} & exported


def test_static_library_exports_only_the_api(inst):
    """The archive's one object keeps the same names global: a program
    linking it meets none of the common code's names."""
    assert defined_symbols("-g", os.path.join(inst.libdir, "libkeytrustee.a")) \
        == header_api()


@pytest.mark.parametrize("std,compiler", [("c99", "cc"), ("c11", "cc"),
                                          ("c++17", "g++")])
def test_header_is_self_contained(inst, tmp_path, std, compiler):
    src = tmp_path / ("use.cc" if compiler == "g++" else "use.c")
    src.write_text(
        "#include <keytrustee.h>\n"
        "size_t kt_use(struct kt_client *c);\n"
        "size_t kt_use(struct kt_client *c)\n"
        "{\n"
        "\tstruct kt_register_opts o = { 0, 0, 0, 0, 0, 0, 1 };\n"
        "\tenum kt_source s = KT_SRC_CACHE;\n"
        "\treturn sizeof(struct kt_deposit_info) + (size_t)s + KT_GET_NO_CACHE +\n"
        "\t    (size_t)(kt_register(c, &o) == KT_OK);\n"
        "}\n")
    run([tool(compiler), "-std=" + std, "-Wall", "-Wextra", "-pedantic", "-Werror",
         "-fsyntax-only", "-I" + inst.includedir, str(src)], check=True)


def test_client_links_the_static_library():
    client = binary("keytrustee-client")
    assert not [n for n in needed(client) if n.startswith("libkeytrustee")]
    assert "kt_put" in defined_symbols("-g", client)


# --------------------------------------------------------------------------
# a program built through pkg-config, against a real server


@pytest.fixture(scope="module")
def org(server):
    for args in (["add", "-n", "libkt-org", "-c", "lib@example.com"],
                 ["set-auth", "-n", "libkt-org", "-s", ""]):
        run([binary("keytrustee-orgtool"), "--confdir", server.confdir] + args,
            check=True)
    return "libkt-org"


def build_and_use(registry, server, org, tmp_path, flags, env):
    """Compile PROGRAM with flags, run it as a new client, and check its
    deposit with keytrustee-client too.  Returns the program's path."""
    src = tmp_path / "demo.c"
    src.write_text(PROGRAM)
    prog = str(tmp_path / "demo")
    run([tool("cc"), "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", prog,
         str(src)] + flags, check=True)
    data = tmp_path / "data"
    data.write_bytes(DATA)
    confdir = registry.gnupg_home(os.path.join(registry.mkdtemp("libkt-"), "kt"))
    url = server.url.replace("127.0.0.1", "localhost")
    cacert = os.path.join(server.confdir, ".ssl", "ssl-cert-keytrustee.pem")
    try:
        proc = run([prog, confdir, url, org, cacert, str(data)], timeout=180, env=env)
        assert proc.returncode == 0, proc.stderr
        uuid, length, fpr = proc.stdout.split()
        assert re.match(r"^[0-9a-f-]{36}$", uuid) and int(length) == len(DATA)
        assert re.match(r"^3072R/[0-9A-F]{40}$", fpr)
        assert mode(os.path.join(confdir, "keytrustee.conf")) == 0o600
        # The command-line client reads what the library wrote.
        got = subprocess.run([binary("keytrustee-client"), "--confdir", confdir,
                              "get", uuid, "--no-cache"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                             timeout=120)
        assert got.returncode == 0, got.stderr
        assert got.stdout == DATA
    finally:
        registry.kill_gnupg(confdir)
    return prog


def test_program_against_the_shared_library(registry, server, org, inst, tmp_path):
    flags = inst.pkg_config("--cflags", "--libs", "keytrustee")
    env = dict(os.environ, LD_LIBRARY_PATH=inst.libdir)
    prog = build_and_use(registry, server, org, tmp_path, flags, env)
    assert SONAME in needed(prog)
    ldd = run([tool("ldd"), prog], check=True, env=env).stdout
    assert "%s => %s" % (SONAME, os.path.join(inst.libdir, SONAME)) in ldd


def test_program_against_the_static_library(registry, server, org, inst, tmp_path):
    """pkg-config --static: libkeytrustee.a itself (-Bstatic: the .so sits
    beside it) and what it needs from Libs.private and Requires.private."""
    flags = inst.pkg_config("--static", "--cflags", "--libs", "keytrustee")
    i = flags.index("-lkeytrustee")
    flags[i:i + 1] = ["-Wl,-Bstatic", "-lkeytrustee", "-Wl,-Bdynamic"]
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    prog = build_and_use(registry, server, org, tmp_path, flags, env)
    assert not [n for n in needed(prog) if n.startswith("libkeytrustee")]
