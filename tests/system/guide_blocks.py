"""The admin guide's command blocks, taken from the guide's own text.

Used by tests/system/test_guide.py.  Nothing here retypes a command: every
block is cut out of the guide (the seed text the project must satisfy) and
given an id, ``<section>-<n>``, where section is the slug of the last
heading of the guide's table of contents above the block and n counts the
blocks of that section from 1.  Two kinds of block are taken:

- fenced blocks (```), the guide's command and output examples;
- inline commands: a backquoted span that starts with ``$ ``, or follows
  ``: `` or ``Run (the) `` in the prose (``zip -r --encrypt ...``,
  ``$ sudo service keytrusteed start``, ``keytrustee-orgtool list``).

The PDF the text comes from wrapped long lines; ``joined()`` puts a command
back on one line by the rules of ``LINE_JOINS`` (listed there, with why).
"""

import os
import re
import subprocess

GUIDE_NAME = "000_0f5336c8a802f5e5.txt"

# The fence-to-fence joins where the PDF broke one example over a page:
# (id of the first part, id of its continuation).  The continuation is not a
# block of its own.
PAGE_BREAKS = [
    ("back-up-key-trustee-server-using-the-ktbackup-sh-script-1",
     "back-up-key-trustee-server-using-the-ktbackup-sh-script-2"),
    ("restore-key-trustee-server-from-ktbackup-sh-backups-2",
     "restore-key-trustee-server-from-ktbackup-sh-backups-3"),
    ("restore-key-trustee-server-from-ktbackup-sh-backups-5",
     "restore-key-trustee-server-from-ktbackup-sh-backups-6"),
]

# The PDF the text was taken from wrapped lines too long for its page.  Each
# wrap inside a command is listed here as "end of the line|start of the
# next" (the text on either side, as printed); a " " after the "|" means the
# PDF broke at a space, which comes back, else it broke inside a word or a
# path, and the halves are joined with nothing between them.  No other line
# of a block is joined: the rest are separate commands or output.
PDF_WRAPS = [
    "--output /path/to/johndoe.pub --export| 'John Doe'",
    "/var/lib/keytrustee/.key|trustee/.ssl.bak",
    ".ssl/ssl-cert-|keytrustee-ca.pem",
    "/path/to/new/certificate.pem /path/to/|new/private_key.pem",
    "/parcels/KEYTRUSTEE_SERVER/PG|_DB/opt/postgres/9.3/bin/psql",
    "-p 11381 -f /var/lib/keytrustee/|kts_bak_kts01",
    "/opt/postgres/9.3/bin/p|sql -p 11381",
    "keyhsm01.example.com:9090 --client-|certfile",
    "--client-keyfile /path/to/|new/key_trustee_server/private_key",
    "rsync -zcv --exclude .ssl /var/lib/keytrustee/.keytrustee| root@keytrustee02",
    "/path/to/password_script| [arguments]",
]


def _origin_dir(d):
    """The directory of this clone's ``origin`` when it is a local path (a
    clean clone made by ``git clone /work/main DIR``), else None."""
    try:
        url = subprocess.run(["git", "-C", d, "config", "--get", "remote.origin.url"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if url.startswith("file://"):
        url = url[len("file://"):]
    return url if url.startswith("/") and os.path.isdir(url) else None


def find_guide(start=None):
    """The guide's text (the vendor's, not part of this tree): ``$KT_GUIDE``,
    else ``shared/seeds/GUIDE_NAME`` in the first parent of the repository
    that has it (DESIGN.md's ``../shared/seeds/``), else the same above
    the local repository this one was cloned from.  None when nowhere."""
    if os.environ.get("KT_GUIDE"):
        return os.environ["KT_GUIDE"]
    here = os.path.abspath(start or os.path.dirname(__file__))
    for d in (here, _origin_dir(here)):
        while d:
            p = os.path.join(d, "shared", "seeds", GUIDE_NAME)
            if os.path.exists(p):
                return p
            up = os.path.dirname(d)
            d = None if up == d else up
    return None


def slug(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def toc_titles(lines):
    """Titles of the table of contents ("Title.....\\tN")."""
    titles = []
    for ln in lines:
        m = re.match(r"^(\S.*?)\.{3,}\s*\d+\s*$", ln)
        if m:
            titles.append(m.group(1).strip())
    return titles


class Block:
    def __init__(self, bid, section, line, kind, raw):
        self.id = bid
        self.section = section
        self.line = line        # 1-based line of the guide
        self.kind = kind        # "fenced" or "inline"
        self.raw = raw          # the text as printed (PDF line breaks kept)

    def __repr__(self):
        return "Block(%s, line %d)" % (self.id, self.line)


def _inline_commands(line):
    out = []
    for m in re.finditer(r"`([^`]+)`", line):
        text = m.group(1)
        before = line[:m.start()]
        if text.startswith("$ ") or before.endswith(": ") or \
                re.search(r"\b[Rr]un (the )?$", before):
            if " " in text.strip():
                out.append(text)
    return out


def extract(text):
    """Every block of the guide, in order, page-break continuations joined."""
    lines = text.split("\n")
    titles = set(toc_titles(lines))
    section = "front"
    counts = {}
    blocks = []
    in_fence = False
    buf = []
    start = 0

    def add(kind, line, raw):
        counts[section] = counts.get(section, 0) + 1
        blocks.append(Block("%s-%d" % (slug(section), counts[section]),
                            section, line, kind, raw))

    for i, ln in enumerate(lines):
        if ln.strip().startswith("```"):
            if in_fence:
                in_fence = False
                add("fenced", start + 1, "\n".join(buf).strip("\n"))
            else:
                in_fence, buf, start = True, [], i
            continue
        if in_fence:
            buf.append(ln)
            continue
        if ln.strip().replace("`", "") in titles:
            section = ln.strip().replace("`", "")
            continue
        if re.match(r"^(\S.*?)\.{3,}\s*\d+\s*$", ln):
            continue        # a line of the table of contents
        for cmd in _inline_commands(ln):
            add("inline", i + 1, cmd)
    by_id = {b.id: b for b in blocks}
    for first, cont in PAGE_BREAKS:
        by_id[first].raw += "\n" + by_id[cont].raw
        blocks.remove(by_id[cont])
    return blocks


def load(path=None):
    path = path or find_guide()
    with open(path, encoding="utf-8") as f:
        return extract(f.read())


PROMPT = re.compile(r"^(\$ |\[[^]]+\]\$ )")


def joined(raw):
    """The block's text with the PDF_WRAPS undone."""
    out = []
    for ln in raw.split("\n"):
        glue = None
        for w in PDF_WRAPS:
            tail, head = w.split("|")
            if out and out[-1].endswith(tail) and ln.startswith(head.lstrip()):
                glue = " " if head.startswith(" ") else ""
        if glue is None:
            out.append(ln)
        else:
            out[-1] += glue + ln
    return "\n".join(out)


def is_transcript(raw):
    """A block that shows a shell session: its commands carry a prompt."""
    return any(PROMPT.match(ln) for ln in raw.split("\n"))


def commands(raw):
    """The command lines of a block, PDF wraps undone: in a transcript the
    lines after a shell prompt (prompt removed), else every non-empty
    line."""
    lines = joined(raw).split("\n")
    if is_transcript(raw):
        return [PROMPT.sub("", ln) for ln in lines if PROMPT.match(ln)]
    return [ln for ln in lines if ln.strip()]


if __name__ == "__main__":
    for b in load():
        print("== %s (line %d, %s)" % (b.id, b.line, b.kind))
        print(joined(b.raw))
