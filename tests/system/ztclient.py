"""A zTrustee-protocol client for the system tests, written to the project's
reference (``ztrustee-protocol.md``) and to nothing of the server's code:
a second implementation, in another language, of what Navigator Encrypt,
Key Trustee KMS and the zTrustee 3.5 Java library send and expect.

Python 3 over Debian's ``python3-cryptography`` (RSA, AES, hashes) and the
standard library; the OpenPGP packets (RFC 4880) are written and read here.

What it produces, as the reference says the 3.5 library does:

- a client key: RSA primary flagged certify+sign, an RSA encryption subkey,
  the UID ``ztrustee (client) <user@host>``, v4 self-signatures (0x13) and
  subkey binding (0x18), exported armored;
- json-encrypt requests: form field ``payload`` = an armored message
  (``Version: ztrustee v3.5.0-b4``) of a v3 PKESK to the server's PRIMARY
  key, a tag 9 Symmetrically Encrypted Data packet without MDC (AES-256,
  OpenPGP CFB with its resynchronisation), holding ZLIB compressed data: a
  one-pass signature (SHA-512, binary), a literal packet (mode ``b``, empty
  file name) and the v4 signature by the client's primary (hashed creation
  time and signer's user ID, unhashed issuer);
- json-sign requests: ``payload`` (the JSON in clear), ``payload_sig`` (an
  armored detached v4 SHA-512 signature) and ``client_fingerprint``;
  ``verify`` always goes json-encrypt;
- token sync (``auth_token`` = the last ``next_token``, kept in a token file
  written at offset 0 without truncating, §7);
- HKP add and lookup, with the 3.5 library's retry rule (10 tries, sleeping
  1, 2, ... 10 s) available but off unless asked for.

What it reads: answers in either protocol (SEIPD with MDC or tag 9, the
server's signature one-pass or detached, checked against the server key),
``register``'s JSON, and errors in either form (a payload with ``reason``
and ``status``, or a plain ``reason=...`` body), surfaced as an Answer's
``status`` and ``reason``.  An answer that claims to be a payload but does
not decrypt or verify raises ProtocolError, as the real client fails.
"""

import base64
import bz2
import hashlib
import http.client
import json
import os
import re
import ssl
import struct
import time
import urllib.parse
import zlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

VERSION = "ztrustee v3.5.0-b4"
FPR_RE = re.compile(r"([0-9]+)([A-Za-z])/([A-Fa-f0-9]+)")

# OpenPGP constants (RFC 4880 9.x)
PK_RSA = (1, 2, 3)
PK_LETTER = {1: "R", 2: "R", 3: "R", 17: "D", 16: "g"}
SYM_AES128, SYM_AES192, SYM_AES256 = 7, 8, 9
SYM_KEYLEN = {SYM_AES128: 16, SYM_AES192: 24, SYM_AES256: 32}
HASH_SHA1, HASH_SHA256, HASH_SHA384, HASH_SHA512, HASH_SHA224 = 2, 8, 9, 10, 11
HASHES = {
    HASH_SHA1: (hashlib.sha1, hashes.SHA1),
    HASH_SHA256: (hashlib.sha256, hashes.SHA256),
    HASH_SHA384: (hashlib.sha384, hashes.SHA384),
    HASH_SHA512: (hashlib.sha512, hashes.SHA512),
    HASH_SHA224: (hashlib.sha224, hashes.SHA224),
}
COMP_NONE, COMP_ZIP, COMP_ZLIB, COMP_BZIP2 = 0, 1, 2, 3

# packet tags
T_PKESK, T_SIG, T_SKESK, T_OPS, T_SECKEY, T_PUBKEY, T_SECSUB, T_COMP = 1, 2, 3, 4, 5, 6, 7, 8
T_SED, T_MARKER, T_LIT, T_TRUST, T_UID, T_PUBSUB, T_UAT, T_SEIPD, T_MDC = \
    9, 10, 11, 12, 13, 14, 17, 18, 19

# signature subpackets
SP_CREATED, SP_SIG_EXPIRES, SP_KEY_EXPIRES, SP_PREF_SYM, SP_ISSUER = 2, 3, 9, 11, 16
SP_PREF_HASH, SP_PREF_COMP, SP_KS_PREFS, SP_PRIMARY_UID, SP_KEY_FLAGS = 21, 22, 23, 25, 27
SP_SIGNER_UID, SP_FEATURES, SP_ISSUER_FPR = 28, 30, 33

KF_CERTIFY, KF_SIGN, KF_ENCRYPT_COMMS, KF_ENCRYPT_STORAGE = 0x01, 0x02, 0x04, 0x08


# --------------------------------------------------------------------------
# errors


class ZtError(Exception):
    """Anything the client refuses."""


class ArmorError(ZtError):
    pass


class PacketError(ZtError):
    pass


class InvalidServerKey(ZtError):
    """What the 3.5 library says of a server key it will not use."""

    def __init__(self, why):
        super().__init__("Invalid server key: " + why)
        self.why = why


class KeyTimeout(ZtError):
    def __init__(self, what):
        super().__init__("Timed out while retrieving key from server (%s)" % what)


class ProtocolError(ZtError):
    """An answer the real client could not use (it would fail)."""


# --------------------------------------------------------------------------
# armor (RFC 4880 6)


def _crc24_table():
    table = []
    for i in range(256):
        crc = i << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
        table.append(crc & 0xFFFFFF)
    return table


_CRC_TABLE = _crc24_table()


def crc24(data):
    crc = 0xB704CE
    for b in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ _CRC_TABLE[((crc >> 16) ^ b) & 0xFF]
    return crc


def armor(kind, data, headers=(("Version", VERSION),), crc=True):
    """ASCII armor: 64-column base64, a CRC-24 line, \\n line ends."""
    b64 = base64.b64encode(data).decode()
    lines = ["-----BEGIN PGP %s-----" % kind]
    lines += ["%s: %s" % h for h in headers]
    lines.append("")
    lines += [b64[i:i + 64] for i in range(0, len(b64), 64)]
    if crc:
        lines.append("=" + base64.b64encode(struct.pack(">I", crc24(data))[1:]).decode())
    lines.append("-----END PGP %s-----" % kind)
    return "\n".join(lines) + "\n"


_BEGIN_RE = re.compile(r"^-----BEGIN PGP ([A-Z ,0-9/]+)-----\s*$")


def dearmor(text, want=None):
    """(kind, headers, bytes) of the first armored block in text.  Refuses a
    missing END line, bad base64, a bad CRC, or a block of another kind than
    want."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise ArmorError("armor is not ASCII")
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines) and not _BEGIN_RE.match(lines[i]):
        i += 1
    if i == len(lines):
        raise ArmorError("no BEGIN PGP line")
    kind = _BEGIN_RE.match(lines[i]).group(1)
    if want is not None and kind != want:
        raise ArmorError("armor is %r, not %r" % (kind, want))
    i += 1
    headers = []
    while i < len(lines) and lines[i].strip():
        if ": " not in lines[i]:
            # No blank line after BEGIN: tolerated only if it looks like data.
            break
        k, v = lines[i].split(": ", 1)
        headers.append((k, v))
        i += 1
    body, crc = [], None
    end = "-----END PGP %s-----" % kind
    while i < len(lines):
        ln = lines[i].strip()
        i += 1
        if not ln:
            continue
        if ln == end:
            break
        if ln.startswith("-----"):
            raise ArmorError("unexpected armor line %r" % ln[:40])
        if ln.startswith("=") and len(ln) == 5:
            crc = ln[1:]
            continue
        body.append(ln)
    else:
        raise ArmorError("no END PGP %s line" % kind)
    try:
        data = base64.b64decode("".join(body), validate=True)
    except (ValueError, base64.binascii.Error):
        raise ArmorError("bad base64 in armor")
    if crc is not None:
        try:
            want_crc = int.from_bytes(base64.b64decode(crc, validate=True), "big")
        except (ValueError, base64.binascii.Error):
            raise ArmorError("bad CRC line")
        if want_crc != crc24(data):
            raise ArmorError("armor CRC mismatch")
    return kind, headers, data


# --------------------------------------------------------------------------
# packets (RFC 4880 4)


def new_len(n):
    if n < 192:
        return bytes([n])
    if n < 8384:
        n -= 192
        return bytes([(n >> 8) + 192, n & 0xFF])
    return b"\xff" + struct.pack(">I", n)


def packet(tag, body, fmt="old"):
    """One packet with a definite length: old format (as GnuPG and
    BouncyCastle write key, signature and session-key packets) unless the
    tag needs the new one."""
    if fmt == "new" or tag > 15:
        return bytes([0xC0 | tag]) + new_len(len(body)) + body
    n = len(body)
    if n < 256:
        return bytes([0x80 | tag << 2, n]) + body
    if n < 65536:
        return bytes([0x80 | tag << 2 | 1]) + struct.pack(">H", n) + body
    return bytes([0x80 | tag << 2 | 2]) + struct.pack(">I", n) + body


def partial_packet(tag, body, chunk_log2=9):
    """A new-format packet in partial body lengths (how a streaming writer
    such as BouncyCastle with a buffer sends large data)."""
    chunk = 1 << chunk_log2
    if len(body) < chunk:
        return packet(tag, body, "new")
    out = bytearray([0xC0 | tag])
    rest = body
    while len(rest) >= chunk:
        out.append(0xE0 | chunk_log2)
        out += rest[:chunk]
        rest = rest[chunk:]
    out += new_len(len(rest)) + rest
    return bytes(out)


def parse_packets(data):
    """[(tag, body)]; both header formats, partial lengths, indeterminate
    old-format length.  Refuses truncated data."""
    out = []
    i, n = 0, len(data)
    while i < n:
        hdr = data[i]
        i += 1
        if not hdr & 0x80:
            raise PacketError("bad packet header 0x%02x" % hdr)
        if hdr & 0x40:
            tag = hdr & 0x3F
            body = bytearray()
            while True:
                if i >= n:
                    raise PacketError("truncated length")
                o = data[i]
                if o < 192:
                    ln, i = o, i + 1
                    partial = False
                elif o < 224:
                    if i + 1 >= n:
                        raise PacketError("truncated length")
                    ln, i = ((o - 192) << 8) + data[i + 1] + 192, i + 2
                    partial = False
                elif o == 255:
                    if i + 5 > n:
                        raise PacketError("truncated length")
                    ln, i = struct.unpack(">I", data[i + 1:i + 5])[0], i + 5
                    partial = False
                else:
                    ln, i = 1 << (o & 0x1F), i + 1
                    partial = True
                if i + ln > n:
                    raise PacketError("truncated packet (tag %d)" % tag)
                body += data[i:i + ln]
                i += ln
                if not partial:
                    break
            out.append((tag, bytes(body)))
        else:
            tag = (hdr >> 2) & 0x0F
            lt = hdr & 3
            if lt == 3:
                ln = n - i
            else:
                w = (1, 2, 4)[lt]
                if i + w > n:
                    raise PacketError("truncated length")
                ln = int.from_bytes(data[i:i + w], "big")
                i += w
            if i + ln > n:
                raise PacketError("truncated packet (tag %d)" % tag)
            out.append((tag, data[i:i + ln]))
            i += ln
    return out


def mpi(n):
    bits = n.bit_length()
    return struct.pack(">H", bits) + n.to_bytes((bits + 7) // 8, "big")


def read_mpi(buf, off):
    if off + 2 > len(buf):
        raise PacketError("truncated MPI")
    bits = struct.unpack(">H", buf[off:off + 2])[0]
    ln = (bits + 7) // 8
    if off + 2 + ln > len(buf):
        raise PacketError("truncated MPI")
    return int.from_bytes(buf[off + 2:off + 2 + ln], "big"), off + 2 + ln


def mpi_bytes(buf, off):
    """The raw bytes of an MPI and the next offset."""
    v, nxt = read_mpi(buf, off)
    return buf[off + 2:nxt], nxt


# --------------------------------------------------------------------------
# keys


class PubKey:
    """One v4 public key packet (a primary or a subkey)."""

    def __init__(self, body):
        if len(body) < 6:
            raise PacketError("short key packet")
        self.body = bytes(body)
        self.version = body[0]
        if self.version != 4:
            raise PacketError("key packet version %d (only v4)" % self.version)
        self.created = struct.unpack(">I", body[1:5])[0]
        self.algo = body[5]
        self.n = self.e = None
        self.bits = 0
        if self.algo in PK_RSA:
            self.n, off = read_mpi(body, 6)
            self.e, off = read_mpi(body, off)
            self.bits = self.n.bit_length()
        elif self.algo in (16, 17):
            p, _ = read_mpi(body, 6)
            self.bits = p.bit_length()
        h = hashlib.sha1(b"\x99" + struct.pack(">H", len(self.body)) + self.body)
        self.fpr = h.hexdigest().upper()
        self.keyid = bytes.fromhex(self.fpr[24:])

    @classmethod
    def from_rsa(cls, pub, created):
        nums = pub.public_numbers()
        return cls(bytes([4]) + struct.pack(">I", created) + bytes([1]) +
                   mpi(nums.n) + mpi(nums.e))

    def rsa(self):
        if self.algo not in PK_RSA:
            raise ZtError("key %s is not RSA" % self.fpr)
        return rsa.RSAPublicNumbers(self.e, self.n).public_key()

    @property
    def qualified(self):
        return "%d%s/%s" % (self.bits, PK_LETTER.get(self.algo, "?"), self.fpr)

    def hash_material(self):
        return b"\x99" + struct.pack(">H", len(self.body)) + self.body


class Signature:
    """A parsed v4 signature packet."""

    def __init__(self, body):
        self.body = bytes(body)
        if not body or body[0] != 4:
            raise PacketError("signature version %d (only v4)" % (body[0] if body else -1))
        if len(body) < 6:
            raise PacketError("short signature")
        self.version, self.sigtype, self.pkalgo, self.hashalgo = body[0], body[1], body[2], body[3]
        hl = struct.unpack(">H", body[4:6])[0]
        self.hashed = body[6:6 + hl]
        off = 6 + hl
        if off + 2 > len(body):
            raise PacketError("short signature")
        ul = struct.unpack(">H", body[off:off + 2])[0]
        self.unhashed = body[off + 2:off + 2 + ul]
        off += 2 + ul
        if off + 2 > len(body):
            raise PacketError("short signature")
        self.left16 = body[off:off + 2]
        off += 2
        self.mpis = []
        while off < len(body):
            v, off = mpi_bytes(body, off)
            self.mpis.append(v)
        self.hashed_subs = parse_subpackets(self.hashed)
        self.unhashed_subs = parse_subpackets(self.unhashed)

    def sub(self, typ, hashed_only=False):
        for t, _, d in self.hashed_subs:
            if t == typ:
                return d
        if not hashed_only:
            for t, _, d in self.unhashed_subs:
                if t == typ:
                    return d
        return None

    @property
    def created(self):
        d = self.sub(SP_CREATED, hashed_only=True)
        return struct.unpack(">I", d)[0] if d and len(d) == 4 else None

    @property
    def issuer(self):
        """The issuer's key ID (8 bytes), from the issuer or the issuer
        fingerprint subpacket."""
        d = self.sub(SP_ISSUER)
        if d and len(d) == 8:
            return d
        d = self.sub(SP_ISSUER_FPR)
        if d and len(d) == 21 and d[0] == 4:
            return d[-8:]
        return None

    @property
    def key_flags(self):
        d = self.sub(SP_KEY_FLAGS, hashed_only=True)
        return d[0] if d else None

    @property
    def key_expires(self):
        d = self.sub(SP_KEY_EXPIRES, hashed_only=True)
        return struct.unpack(">I", d)[0] if d and len(d) == 4 else None

    @property
    def signer_uid(self):
        return self.sub(SP_SIGNER_UID, hashed_only=True)

    def trailer(self):
        head = bytes([4, self.sigtype, self.pkalgo, self.hashalgo]) + \
            struct.pack(">H", len(self.hashed)) + self.hashed
        return head + b"\x04\xff" + struct.pack(">I", len(head))

    def verify(self, pubkey, data):
        """True when this signature over data (already in hash form: the
        document, or the key material) verifies with pubkey (a PubKey)."""
        if self.hashalgo not in HASHES or self.pkalgo not in PK_RSA or \
                pubkey.algo not in PK_RSA or len(self.mpis) != 1:
            return False
        hfun, halg = HASHES[self.hashalgo]
        digest = hfun(data + self.trailer()).digest()
        if digest[:2] != self.left16:
            return False
        size = (pubkey.n.bit_length() + 7) // 8
        sig = self.mpis[0]
        if len(sig) > size:
            return False
        try:
            pubkey.rsa().verify(sig.rjust(size, b"\0"), digest, padding.PKCS1v15(),
                                utils.Prehashed(halg()))
        except Exception:  # noqa: BLE001 (InvalidSignature and friends)
            return False
        return True


def subpacket(typ, data, critical=False):
    body = bytes([typ | (0x80 if critical else 0)]) + data
    return new_len(len(body)) + body


def parse_subpackets(area):
    out, i = [], 0
    while i < len(area):
        o = area[i]
        if o < 192:
            ln, i = o, i + 1
        elif o < 255:
            if i + 1 >= len(area):
                raise PacketError("truncated subpacket")
            ln, i = ((o - 192) << 8) + area[i + 1] + 192, i + 2
        else:
            if i + 5 > len(area):
                raise PacketError("truncated subpacket")
            ln, i = struct.unpack(">I", area[i + 1:i + 5])[0], i + 5
        if ln < 1 or i + ln > len(area):
            raise PacketError("bad subpacket length")
        t = area[i]
        out.append((t & 0x7F, bool(t & 0x80), area[i + 1:i + ln]))
        i += ln
    return out


def make_signature(priv, keyid, sigtype, hashed_data, hashed_subs, unhashed_subs,
                   hashalgo=HASH_SHA512, corrupt=False):
    """The body of a v4 RSA signature packet over hashed_data (the document
    or the key material, already framed)."""
    hashed = b"".join(hashed_subs)
    unhashed = b"".join(unhashed_subs)
    head = bytes([4, sigtype, 1, hashalgo]) + struct.pack(">H", len(hashed)) + hashed
    trailer = head + b"\x04\xff" + struct.pack(">I", len(head))
    hfun, halg = HASHES[hashalgo]
    digest = hfun(hashed_data + trailer).digest()
    sig = priv.sign(digest, padding.PKCS1v15(), utils.Prehashed(halg()))
    if corrupt:
        sig = sig[:-1] + bytes([sig[-1] ^ 0x01])
    return head + struct.pack(">H", len(unhashed)) + unhashed + digest[:2] + \
        mpi(int.from_bytes(sig, "big"))


class Key:
    """A transferable public key: primary, user IDs with their signatures,
    subkeys with theirs."""

    def __init__(self, primary, uids, subkeys, direct):
        self.primary = primary
        self.uids = uids        # [(uid bytes, [Signature])]
        self.subkeys = subkeys  # [(PubKey, [Signature])]
        self.direct = direct    # [Signature] on the primary itself

    @property
    def fpr(self):
        return self.primary.fpr

    @property
    def qualified(self):
        return self.primary.qualified

    @property
    def keyid(self):
        return self.primary.keyid

    def all_keys(self):
        return [self.primary] + [s for s, _ in self.subkeys]

    def uid_material(self, uid):
        return self.primary.hash_material() + b"\xb4" + struct.pack(">I", len(uid)) + uid

    def valid_subkeys(self, flags):
        """Subkeys bound by a valid 0x18 from the primary whose key flags
        include one of flags, not revoked."""
        out = []
        for sk, sigs in self.subkeys:
            material = self.primary.hash_material() + sk.hash_material()
            bound = [s for s in sigs if s.sigtype == 0x18 and s.issuer == self.keyid
                     and s.verify(self.primary, material)]
            revoked = [s for s in sigs if s.sigtype == 0x28 and s.issuer == self.keyid
                       and s.verify(self.primary, material)]
            if bound and not revoked and (bound[-1].key_flags or 0) & flags:
                out.append(sk)
        return out

    def encryption_key(self):
        """Where a message to this key goes: its newest valid encryption
        subkey, else the primary when its self-signature allows it."""
        subs = self.valid_subkeys(KF_ENCRYPT_COMMS | KF_ENCRYPT_STORAGE)
        if subs:
            return subs[-1]
        for _, sigs in self.uids:
            for s in sigs:
                if s.sigtype in (0x10, 0x11, 0x12, 0x13) and s.issuer == self.keyid and \
                        (s.key_flags or 0) & (KF_ENCRYPT_COMMS | KF_ENCRYPT_STORAGE):
                    return self.primary
        raise ZtError("key %s has no encryption key" % self.fpr)

    def signing_keys(self):
        return [self.primary] + self.valid_subkeys(KF_SIGN)

    def check_as_server_key(self, now=None):
        """The 3.5 library's check of the server key it fetched: RSA primary,
        not revoked or expired, every certification over the first UID a
        valid self-signature (0x13 among them) -- a third-party
        certification makes it refuse the key."""
        now = time.time() if now is None else now
        if self.primary.algo not in PK_RSA:
            raise InvalidServerKey("primary key is not RSA")
        pm = self.primary.hash_material()
        for s in self.direct:
            if s.sigtype == 0x20 and s.issuer == self.keyid and s.verify(self.primary, pm):
                raise InvalidServerKey("key is revoked")
        if not self.uids:
            raise InvalidServerKey("no user ID")
        for u, sigs in self.uids:
            for s in sigs:
                if s.sigtype in (0x10, 0x11, 0x12, 0x13) and s.issuer != self.keyid:
                    raise InvalidServerKey("certification of %r by another key (%s)" % (
                        u, s.issuer.hex().upper() if s.issuer else "?"))
        uid, sigs = self.uids[0]
        material = self.uid_material(uid)
        good13 = []
        for s in sigs:
            if s.sigtype in (0x10, 0x11, 0x12, 0x13):
                if not s.verify(self.primary, material):
                    raise InvalidServerKey("bad self-signature over %r" % uid)
                if s.sigtype == 0x13:
                    good13.append(s)
            elif s.sigtype == 0x30 and s.issuer == self.keyid and \
                    s.verify(self.primary, material):
                raise InvalidServerKey("user ID is revoked")
        if not good13:
            raise InvalidServerKey("no 0x13 self-signature over the first user ID")
        newest = max(good13, key=lambda s: s.created or 0)
        exp = newest.key_expires
        if exp and self.primary.created + exp <= now:
            raise InvalidServerKey("key expired")
        return self

    def check_self_sigs(self):
        """Every self-signature of the key verifies (the client's own key)."""
        for uid, sigs in self.uids:
            for s in sigs:
                if s.issuer == self.keyid and not s.verify(self.primary, self.uid_material(uid)):
                    return False
        for sk, sigs in self.subkeys:
            for s in sigs:
                material = self.primary.hash_material() + sk.hash_material()
                if not s.verify(self.primary, material):
                    return False
        return True


def parse_keys(data):
    """Every transferable public key in data (binary packets)."""
    keys = []
    cur = None
    for tag, body in parse_packets(data):
        if tag == T_PUBKEY:
            cur = Key(PubKey(body), [], [], [])
            keys.append(cur)
        elif cur is None:
            raise PacketError("key block does not start with a public key (tag %d)" % tag)
        elif tag == T_UID:
            cur.uids.append((body, []))
        elif tag == T_UAT:
            cur.uids.append((None, []))  # not a UID; its sigs are kept apart
        elif tag == T_PUBSUB:
            cur.subkeys.append((PubKey(body), []))
        elif tag == T_SIG:
            try:
                s = Signature(body)
            except PacketError:
                continue  # v3 or unknown: ignored, as GnuPG does
            if cur.subkeys:
                cur.subkeys[-1][1].append(s)
            elif cur.uids:
                cur.uids[-1][1].append(s)
            else:
                cur.direct.append(s)
        elif tag in (T_TRUST, T_MARKER):
            continue
        elif tag in (T_SECKEY, T_SECSUB):
            raise PacketError("secret key material in a public key block")
        else:
            raise PacketError("unexpected packet tag %d in a key block" % tag)
    for k in keys:
        k.uids = [(u, s) for u, s in k.uids if u is not None]
    return keys


def read_key(armored):
    """The one public key of an armored block."""
    _, _, data = dearmor(armored, "PUBLIC KEY BLOCK")
    keys = parse_keys(data)
    if len(keys) != 1:
        raise ZtError("expected one key, got %d" % len(keys))
    return keys[0]


class ClientKey:
    """The client's own key pair: RSA primary (certify+sign) and RSA
    encryption subkey, with v4 self-signatures gpg accepts."""

    def __init__(self, primary_priv, sub_priv, uid, created):
        self.primary_priv = primary_priv
        self.sub_priv = sub_priv
        self.uid = uid.encode() if isinstance(uid, str) else uid
        self.created = created
        self.pkey = PubKey.from_rsa(primary_priv.public_key(), created)
        self.skey = PubKey.from_rsa(sub_priv.public_key(), created)
        self._packets = None

    @classmethod
    def generate(cls, uid, bits=2048, created=None):
        # A day old: a signature dated a few minutes back is still younger
        # than the key.
        created = int(time.time()) - 86400 if created is None else created
        p = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        s = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        return cls(p, s, uid, created)

    @property
    def fpr(self):
        return self.pkey.fpr

    @property
    def keyid(self):
        return self.pkey.keyid

    @property
    def qualified(self):
        return self.pkey.qualified

    def _self_sig(self, uid=None):
        uid = self.uid if uid is None else uid
        pk = self.pkey
        hashed = [
            subpacket(SP_ISSUER_FPR, b"\x04" + bytes.fromhex(pk.fpr)),
            subpacket(SP_CREATED, struct.pack(">I", self.created)),
            subpacket(SP_KEY_FLAGS, bytes([KF_CERTIFY | KF_SIGN])),
            subpacket(SP_PREF_SYM, bytes([SYM_AES256, SYM_AES192, SYM_AES128])),
            subpacket(SP_PREF_HASH, bytes([HASH_SHA512, HASH_SHA256])),
            subpacket(SP_PREF_COMP, bytes([COMP_ZLIB, COMP_ZIP, COMP_NONE])),
            subpacket(SP_FEATURES, b"\x01"),
            subpacket(SP_KS_PREFS, b"\x80"),
        ]
        material = pk.hash_material() + b"\xb4" + struct.pack(">I", len(uid)) + uid
        return make_signature(self.primary_priv, pk.keyid, 0x13, material, hashed,
                              [subpacket(SP_ISSUER, pk.keyid)])

    def _binding_sig(self):
        pk = self.pkey
        hashed = [
            subpacket(SP_ISSUER_FPR, b"\x04" + bytes.fromhex(pk.fpr)),
            subpacket(SP_CREATED, struct.pack(">I", self.created)),
            subpacket(SP_KEY_FLAGS, bytes([KF_ENCRYPT_COMMS | KF_ENCRYPT_STORAGE])),
        ]
        material = pk.hash_material() + self.skey.hash_material()
        return make_signature(self.primary_priv, pk.keyid, 0x18, material, hashed,
                              [subpacket(SP_ISSUER, pk.keyid)])

    def public_packets(self, subkey=True, extra_uids=()):
        """The public key's packets; without the encryption subkey, or with
        more user IDs (each self-signed), on request."""
        if subkey and not extra_uids and self._packets is not None:
            return self._packets
        out = packet(T_PUBKEY, self.pkey.body) + packet(T_UID, self.uid) + \
            packet(T_SIG, self._self_sig())
        for uid in extra_uids:
            out += packet(T_UID, uid) + packet(T_SIG, self._self_sig(uid))
        if subkey:
            out += packet(T_PUBSUB, self.skey.body) + packet(T_SIG, self._binding_sig())
        if subkey and not extra_uids:
            self._packets = out
        return out

    def public_key(self):
        """The public half as a Key."""
        return parse_keys(self.public_packets())[0]

    def export_public(self, **kw):
        return armor("PUBLIC KEY BLOCK", self.public_packets(**kw))

    def export_secret(self):
        """Unprotected secret key packets (s2k usage 0), for gpg --import."""
        def secret_body(pub, priv):
            nums = priv.private_numbers()
            p, q = sorted((nums.p, nums.q))
            u = pow(p, -1, q)
            mp = mpi(nums.d) + mpi(p) + mpi(q) + mpi(u)
            return pub.body + b"\x00" + mp + struct.pack(">H", sum(mp) & 0xFFFF)
        return armor("PRIVATE KEY BLOCK",
                     packet(T_SECKEY, secret_body(self.pkey, self.primary_priv)) +
                     packet(T_UID, self.uid) + packet(T_SIG, self._self_sig()) +
                     packet(T_SECSUB, secret_body(self.skey, self.sub_priv)) +
                     packet(T_SIG, self._binding_sig()))

    def decryption_keys(self):
        """[(keyid, private key)] for session-key packets."""
        return [(self.skey.keyid, self.sub_priv), (self.pkey.keyid, self.primary_priv)]

    def sign(self, data, sigtype=0x00, created=None, signer_uid=True, hashalgo=HASH_SHA512,
             corrupt=False):
        """A v4 signature over data by the primary: hashed creation time and
        signer's user ID, unhashed issuer (what the 3.5 library writes)."""
        created = int(time.time()) if created is None else int(created)
        hashed = [subpacket(SP_CREATED, struct.pack(">I", created))]
        if signer_uid:
            hashed.append(subpacket(SP_SIGNER_UID, self.uid))
        return make_signature(self.primary_priv, self.keyid, sigtype, data, hashed,
                              [subpacket(SP_ISSUER, self.keyid)], hashalgo, corrupt)

    def detached(self, data, **kw):
        return armor("SIGNATURE", packet(T_SIG, self.sign(data, **kw)))


# --------------------------------------------------------------------------
# messages


def _cfb(key, iv):
    return Cipher(algorithms.AES(key), modes.CFB(iv))


def sed_encrypt(key, plaintext, prefix=None):
    """Tag 9 body: OpenPGP CFB with the resynchronisation (RFC 4880 13.9)."""
    bs = 16
    prefix = os.urandom(bs) if prefix is None else prefix
    prefix = prefix + prefix[-2:]
    enc = _cfb(key, b"\0" * bs).encryptor()
    c1 = enc.update(prefix) + enc.finalize()
    enc = _cfb(key, c1[2:bs + 2]).encryptor()
    return c1 + enc.update(plaintext) + enc.finalize()


def sed_decrypt(key, ct):
    bs = 16
    if len(ct) < bs + 2:
        raise PacketError("short encrypted data")
    dec = _cfb(key, b"\0" * bs).decryptor()
    p1 = dec.update(ct[:bs + 2]) + dec.finalize()
    if p1[bs - 2:bs] != p1[bs:bs + 2]:
        raise ZtError("session key check failed (tag 9)")
    dec = _cfb(key, ct[2:bs + 2]).decryptor()
    return dec.update(ct[bs + 2:]) + dec.finalize()


def seipd_encrypt(key, plaintext):
    bs = 16
    prefix = os.urandom(bs)
    prefix += prefix[-2:]
    body = prefix + plaintext + b"\xd3\x14"
    body += hashlib.sha1(body).digest()
    enc = _cfb(key, b"\0" * bs).encryptor()
    return b"\x01" + enc.update(body) + enc.finalize()


def seipd_decrypt(key, data):
    bs = 16
    if not data or data[0] != 1:
        raise PacketError("SEIPD version %r" % (data[:1],))
    dec = _cfb(key, b"\0" * bs).decryptor()
    pt = dec.update(data[1:]) + dec.finalize()
    if len(pt) < bs + 2 + 22 or pt[bs - 2:bs] != pt[bs:bs + 2]:
        raise ZtError("session key check failed (SEIPD)")
    if pt[-22:-20] != b"\xd3\x14" or hashlib.sha1(pt[:-20]).digest() != pt[-20:]:
        raise ZtError("modification detected (bad MDC)")
    return pt[bs + 2:-22]


def pkesk(pubkey, symalgo, session_key, keyid=None):
    """A v3 public-key encrypted session key packet body (RSA PKCS#1 v1.5)."""
    m = bytes([symalgo]) + session_key + struct.pack(">H", sum(session_key) & 0xFFFF)
    ct = pubkey.rsa().encrypt(m, padding.PKCS1v15())
    return b"\x03" + (keyid if keyid is not None else pubkey.keyid) + b"\x01" + \
        mpi(int.from_bytes(ct, "big"))


def literal(data, fmt=b"b", filename=b"", date=None):
    date = int(time.time()) if date is None else date
    return bytes([fmt[0], len(filename)]) + filename + struct.pack(">I", date) + data


def one_pass(keyid, sigtype=0x00, hashalgo=HASH_SHA512, nested=1):
    return bytes([3, sigtype, hashalgo, 1]) + keyid + bytes([nested])


def compress(data, algo=COMP_ZLIB):
    if algo == COMP_ZLIB:
        return bytes([algo]) + zlib.compress(data)
    if algo == COMP_ZIP:
        c = zlib.compressobj(wbits=-15)
        return bytes([algo]) + c.compress(data) + c.flush()
    if algo == COMP_NONE:
        return bytes([algo]) + data
    raise ZtError("compression %d" % algo)


def decompress(body):
    if not body:
        raise PacketError("empty compressed packet")
    algo, data = body[0], body[1:]
    try:
        if algo == COMP_NONE:
            return data
        if algo in (COMP_ZIP, COMP_ZLIB):
            d = zlib.decompressobj(-15 if algo == COMP_ZIP else 15)
            out = d.decompress(data) + d.flush()
            if not d.eof:
                raise PacketError("truncated compressed data")
            return out
        if algo == COMP_BZIP2:
            return bz2.decompress(data)
    except (zlib.error, OSError, ValueError) as e:
        raise PacketError("bad compressed data: %s" % e)
    raise PacketError("unknown compression %d" % algo)


def signed_literal(signer, data, sig_time=None, corrupt_sig=False, sign=True,
                   signer_uid=True, hashalgo=HASH_SHA512):
    """One-pass signature, literal (mode b, empty name), signature."""
    lit = packet(T_LIT, literal(data))
    if not sign:
        return lit
    return (packet(T_OPS, one_pass(signer.keyid, hashalgo=hashalgo)) + lit +
            packet(T_SIG, signer.sign(data, created=sig_time, corrupt=corrupt_sig,
                                      signer_uid=signer_uid, hashalgo=hashalgo)))


def encrypt_message(data, recipients, signer=None, tag9=True, sig_time=None,
                    compression=COMP_ZLIB, partial=False, corrupt_sig=False,
                    sign=True, armored=True, hashalgo=HASH_SHA512, headers=None):
    """An OpenPGP message: a PKESK per recipient (a PubKey each), the
    encrypted data (tag 9 without MDC by default, else SEIPD with MDC),
    inside: compressed data holding the one-pass signed literal."""
    inner = signed_literal(signer, data, sig_time, corrupt_sig,
                           sign=sign and signer is not None, hashalgo=hashalgo)
    if compression is not None:
        inner = (partial_packet if partial else packet)(T_COMP, compress(inner, compression))
    key = os.urandom(32)
    out = b"".join(packet(T_PKESK, pkesk(r, SYM_AES256, key)) for r in recipients)
    if tag9:
        out += (partial_packet if partial else packet)(T_SED, sed_encrypt(key, inner))
    else:
        out += (partial_packet if partial else packet)(T_SEIPD, seipd_encrypt(key, inner))
    if not armored:
        return out
    return armor("MESSAGE", out, headers if headers is not None else (("Version", VERSION),))


class Opened:
    """A decrypted (or merely signed) message: its literal data, the
    signatures over it, and the literal packet's fields."""

    def __init__(self, data, sigs, fmt, filename, integrity):
        self.data = data
        self.sigs = sigs
        self.fmt = fmt
        self.filename = filename
        self.integrity = integrity  # "mdc", "none" (tag 9) or None (not encrypted)
        self.signer = None

    def signature_by(self, key):
        """The first signature over the data that verifies with a signing
        key of key (a Key), or None."""
        for s in self.sigs:
            for k in key.signing_keys():
                if s.issuer == k.keyid and s.verify(k, self._hashed(s)):
                    return s
        return None

    def _hashed(self, s):
        if s.sigtype == 0x01:
            return re.sub(rb"\r?\n", b"\r\n", self.data)
        return self.data


def _unpack_inner(data, depth=0):
    if depth > 4:
        raise PacketError("compression nested too deep")
    pkts = parse_packets(data)
    if len(pkts) == 1 and pkts[0][0] == T_COMP:
        return _unpack_inner(decompress(pkts[0][1]), depth + 1)
    sigs, lit, ops = [], None, 0
    for tag, body in pkts:
        if tag == T_OPS:
            ops += 1
        elif tag == T_SIG:
            sigs.append(Signature(body))
        elif tag == T_LIT:
            if lit is not None:
                raise PacketError("two literal packets")
            if len(body) < 6:
                raise PacketError("short literal packet")
            fnl = body[1]
            lit = (body[6 + fnl:], body[0:1], body[2:2 + fnl])
        elif tag == T_COMP:
            inner = _unpack_inner(decompress(body), depth + 1)
            lit = (inner.data, inner.fmt, inner.filename)
            sigs += inner.sigs
        elif tag == T_MARKER:
            continue
        else:
            raise PacketError("unexpected packet tag %d in a message" % tag)
    if lit is None:
        raise PacketError("no literal data in the message")
    return Opened(lit[0], sigs, lit[1], lit[2], None)


def decrypt_message(data, dkeys):
    """Open a binary message with dkeys [(keyid, private key)]."""
    pkts = parse_packets(data)
    sessions, enc = [], None
    for tag, body in pkts:
        if tag == T_PKESK:
            sessions.append(body)
        elif tag in (T_SED, T_SEIPD):
            if enc is not None:
                raise PacketError("two encrypted data packets")
            enc = (tag, body)
        elif tag in (T_SKESK, T_MARKER):
            continue
        elif enc is None and tag in (T_OPS, T_LIT, T_COMP, T_SIG):
            return _unpack_inner(data)  # not encrypted at all
        else:
            raise PacketError("unexpected packet tag %d" % tag)
    if enc is None:
        raise PacketError("no encrypted data")
    key = None
    for body in sessions:
        if len(body) < 10 or body[0] != 3:
            continue
        kid, algo = body[1:9], body[9]
        if algo not in PK_RSA:
            continue
        for mykid, priv in dkeys:
            if kid != mykid and kid != b"\0" * 8:
                continue
            c, _ = mpi_bytes(body, 10)
            size = (priv.key_size + 7) // 8
            try:
                m = priv.decrypt(c.rjust(size, b"\0"), padding.PKCS1v15())
            except ValueError:
                continue
            if len(m) < 3 or m[0] not in SYM_KEYLEN or len(m) != SYM_KEYLEN[m[0]] + 3:
                continue
            sk = m[1:-2]
            if sum(sk) & 0xFFFF != struct.unpack(">H", m[-2:])[0]:
                continue
            key = sk
            break
        if key is not None:
            break
    if key is None:
        raise ZtError("no session key for any of my keys")
    tag, body = enc
    if tag == T_SEIPD:
        opened = _unpack_inner(seipd_decrypt(key, body))
        opened.integrity = "mdc"
    else:
        opened = _unpack_inner(sed_decrypt(key, body))
        opened.integrity = "none"
    return opened


def read_detached(armored):
    _, _, data = dearmor(armored, "SIGNATURE")
    pkts = parse_packets(data)
    sigs = [Signature(b) for t, b in pkts if t == T_SIG]
    if not sigs or len(sigs) != len(pkts):
        raise PacketError("not a detached signature")
    return sigs


def verify_detached(armored, data, key):
    """The signature (from armored) over data that verifies with key, or None."""
    o = Opened(data, read_detached(armored), b"b", b"", None)
    return o.signature_by(key)


# --------------------------------------------------------------------------
# fingerprints (reference 2)


def parse_fingerprint(text):
    """(bits, letter, hex) by the client's regex, or None."""
    m = FPR_RE.fullmatch(text.strip())
    if not m:
        return None
    return int(m.group(1)), m.group(2), m.group(3)


def fingerprint_matches(qualified, key):
    """The client's comparison of a qualified fingerprint with a key:
    length, letter and hex compared case-sensitively."""
    p = parse_fingerprint(qualified)
    if p is None:
        return False
    pk = key.primary if isinstance(key, Key) else key
    return p == (pk.bits, PK_LETTER.get(pk.algo, "?"), pk.fpr)


# --------------------------------------------------------------------------
# token file (reference 7)


OMIT = object()


def json_bytes(data):
    """JSON as the 3.5 library writes it (org.json): UTF-8, nulls, and
    every / escaped as \\/."""
    return json.dumps(data, ensure_ascii=False).replace("/", "\\/").encode("utf-8")


class TokenFile:
    """The client's token store: the token is written at offset 0 over the
    old one without truncating the file, so only tokens of one length
    survive a round trip."""

    def __init__(self, path):
        self.path = path

    def read(self):
        try:
            with open(self.path, "rb") as f:
                return f.read().decode().strip()
        except FileNotFoundError:
            return ""

    def write(self, token):
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, token.encode(), 0)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------
# dates


def zdate(t):
    """A date as the 3.5 library writes after/before: Java's
    yyyy-MM-dd'T'HH:mm:ssZ in UTC, i.e. +0000."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(t))


DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|\+0000)$")


def parse_date(text):
    """Seconds since the epoch of a date the client can read (second
    precision, Z or +0000); ValueError otherwise."""
    if not isinstance(text, str) or not DATE_RE.match(text):
        raise ValueError("date the client cannot parse: %r" % (text,))
    import calendar
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


# --------------------------------------------------------------------------
# HTTP


def insecure_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason_phrase = reason
        self.headers = headers
        self.body = body

    def __repr__(self):
        return "HTTP %d %s %r" % (self.status, self.reason_phrase, self.body[:300])


def http_request(url, method, target, body=None, headers=(), source=None, timeout=30):
    """One request on a fresh connection (url: https://host:port or
    http://host:port).  Returns a Response; raises ProtocolError when the
    server closes the connection without an answer."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port or 443,
                                           context=insecure_context(), timeout=timeout,
                                           source_address=(source, 0) if source else None)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout,
                                          source_address=(source, 0) if source else None)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        try:
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError) as e:
            raise ProtocolError("%s %s: the server closed the connection without an "
                                "answer (%s)" % (method, target, e))
        data = resp.read()
        return Response(resp.status, resp.reason,
                        {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


FORM = "application/x-www-form-urlencoded"


def form_encode(fields):
    """k=v&... URL-encoded as UTF-8 (fields: dict or list of pairs)."""
    items = fields.items() if isinstance(fields, dict) else fields
    return urllib.parse.urlencode(list(items), quote_via=urllib.parse.quote_plus).encode()


def form_decode(body):
    """A form body as a dict; None when it is not one (or repeats a key)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "=" not in text:
        return None
    try:
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=True,
                                       errors="strict")
    except (ValueError, UnicodeDecodeError):
        return None
    d = {}
    for k, v in pairs:
        if k in d:
            return None
        d[k] = v
    return d


class Answer:
    """What the client made of a response.

    status: the HTTP status; data: the JSON object of the answer (decrypted
    and verified payload, register's JSON), or None; reason: data's
    ``reason``, else the plain ``reason=`` field, else the raw body (as the
    real client shows it), else the status line; form: 'payload' (an answer
    in the client's protocol), 'json' (register), 'plain' (a reason=...
    body or any other text) or 'empty'; signer: the server signature that
    verified (payload answers)."""

    def __init__(self, resp, form, data=None, reason=None, signer=None, opened=None):
        self.resp = resp
        self.status = resp.status
        self.headers = resp.headers
        self.body = resp.body
        self.form = form
        self.data = data
        self.signer = signer
        self.opened = opened
        # Where the reason came from: 'form' (a reason= body), 'data' (the
        # answer's JSON), 'body' (raw text), 'status' (the status line).
        self.reason_source = "form" if reason is not None else None
        if reason is None and isinstance(data, dict) and "reason" in data:
            reason, self.reason_source = data["reason"], "data"
        if reason is None and resp.body and resp.status >= 400:
            reason, self.reason_source = resp.body.decode("utf-8", "replace"), "body"
        if reason is None and resp.status >= 400:
            reason = "%d %s" % (resp.status, resp.reason_phrase)
            self.reason_source = "status"
        self.reason = reason

    @property
    def payload_status(self):
        if isinstance(self.data, dict) and isinstance(self.data.get("status"), int):
            return self.data["status"]
        return None

    def get(self, k, default=None):
        return self.data.get(k, default) if isinstance(self.data, dict) else default

    def __getitem__(self, k):
        if not isinstance(self.data, dict) or k not in self.data:
            raise KeyError("answer has no %r: %r" % (k, self))
        return self.data[k]

    def __repr__(self):
        shown = None
        if isinstance(self.data, dict):
            shown = {k: (v if not isinstance(v, str) or len(v) < 120 else v[:117] + "...")
                     for k, v in self.data.items()}
        return "<HTTP %d, %s answer, reason=%r, data=%r, body=%r>" % (
            self.status, self.form, self.reason, shown, self.body[:200])


# --------------------------------------------------------------------------
# the client


class Client:
    """A zTrustee client of one server.

    url: https://host:port of the server; hkp_url: where HKP goes (default
    url; http://host:port for the plain listener); protocol: json-encrypt
    or json-sign; token_sync: keep and send tokens; home: directory of the
    token file (a new temporary one if None); source: local address to
    connect from (each test client has its own, so per-address limits of
    one do not touch another); hkp_retry: the 3.5 library's 10 tries
    sleeping 1..10 s (off by default), sleep: the sleep function it uses;
    distinct_sig_times: give each request's signature a creation time of
    its own (the next second when requests come faster than one a second):
    RSA PKCS#1 v1.5 signatures are deterministic and dated to the second,
    so two identical requests in one second -- which a real client, seconds
    apart, does not make -- would carry one signature, a replay."""

    def __init__(self, url, name="client", host="host.example.com", bits=2048,
                 protocol="json-encrypt", token_sync=True, home=None, source=None,
                 hkp_url=None, hkp_retry=False, sleep=time.sleep, key=None, timeout=30,
                 distinct_sig_times=False):
        assert protocol in ("json-encrypt", "json-sign")
        self.url = url.rstrip("/")
        self.hkp_url = (hkp_url or url).rstrip("/")
        self.name = name
        self.host = host
        self.protocol = protocol
        self.token_sync = token_sync
        self.source = source
        self.hkp_retry = hkp_retry
        self.sleep = sleep
        self.timeout = timeout
        self.key = key or ClientKey.generate("ztrustee (client) <%s@%s>" % (name, host), bits)
        if home is None:
            import tempfile
            home = tempfile.mkdtemp(prefix="ztclient-")
        self.home = home
        self.tokens = TokenFile(os.path.join(home, "token"))
        self.server_fingerprint = None
        self.server_key = None
        self.challenge = None
        self.keycache = {}
        self.distinct_sig_times = distinct_sig_times
        self.last_sig_time = 0

    # identity
    @property
    def fingerprint(self):
        """The client's qualified fingerprint, e.g. 2048R/<40 HEX>."""
        return self.key.qualified

    @property
    def fpr(self):
        return self.key.fpr

    def __repr__(self):
        return "<ztclient %s %s %s>" % (self.name, self.protocol, self.fingerprint)

    # transport
    def http(self, method, target, body=None, ctype=FORM, url=None, headers=()):
        hdrs = list(headers)
        if body is not None and ctype is not None:
            hdrs.append(("Content-Type", ctype))
        return http_request(url or self.url, method, target, body, hdrs,
                            source=self.source, timeout=self.timeout)

    # HKP
    def hkp_add(self, keytext=None, url=None):
        """POST /pks/add keytext=<armored key> (default: this client's)."""
        body = form_encode({"keytext": self.key.export_public() if keytext is None
                            else keytext})
        return self.http("POST", "/pks/add", body, url=url or self.hkp_url)

    def hkp_lookup(self, fpr40, url=None):
        """GET /pks/lookup?op=get&options=mr&search=0x<fpr>: the Response."""
        return self.http("GET", "/pks/lookup?op=get&options=mr&search=0x" + fpr40,
                         url=url or self.hkp_url)

    KEY_RE = re.compile(r"-----BEGIN PGP PUBLIC KEY BLOCK-----.*?"
                        r"-----END PGP PUBLIC KEY BLOCK-----", re.S)

    def fetch_key(self, fingerprint, retry=None):
        """The key whose primary fingerprint is fingerprint (qualified or 40
        hex), by HKP, with the 3.5 library's retry rule when retry (default:
        the client's hkp_retry): 10 tries, sleeping 1, 2, ... 10 s after
        each failure."""
        retry = self.hkp_retry if retry is None else retry
        hexfpr = fingerprint.split("/")[-1]
        tries = 10 if retry else 1
        last = None
        for i in range(1, tries + 1):
            try:
                resp = self.hkp_lookup(hexfpr)
                last = resp
                if resp.status == 200:
                    m = self.KEY_RE.search(resp.body.decode("utf-8", "replace"))
                    if m:
                        _, _, data = dearmor(m.group(0), "PUBLIC KEY BLOCK")
                        for k in parse_keys(data):
                            if k.fpr == hexfpr.upper():
                                return k
                        raise ZtError("HKP answered another key for %s" % hexfpr)
            except ProtocolError as e:
                last = e
            if retry:
                self.sleep(i)
        if retry:
            raise KeyTimeout(hexfpr)
        raise ZtError("HKP lookup of %s failed: %r" % (hexfpr, last))

    def key_of(self, fingerprint):
        hexfpr = fingerprint.split("/")[-1].upper()
        if hexfpr == self.fpr:
            return self.key.public_key()
        if hexfpr not in self.keycache:
            self.keycache[hexfpr] = self.fetch_key(hexfpr)
        return self.keycache[hexfpr]

    # registration (reference 5)
    def get_fingerprint(self):
        """GET /?a=fingerprint: (Response, trimmed text)."""
        resp = self.http("GET", "/?a=fingerprint")
        return resp, resp.body.decode("utf-8", "replace").strip()

    def fetch_server_key(self):
        """Fingerprint, then the HKP lookup of that key, checked as the 3.5
        library checks it (InvalidServerKey when it would refuse it)."""
        resp, text = self.get_fingerprint()
        if resp.status != 200:
            raise ProtocolError("?a=fingerprint answered %r" % resp)
        if parse_fingerprint(text) is None:
            raise ProtocolError("?a=fingerprint: %r is not a fingerprint" % text)
        key = self.fetch_key(text)
        if not fingerprint_matches(text, key):
            raise InvalidServerKey("fingerprint %s does not match the key (%s)"
                                   % (text, key.qualified))
        key.check_as_server_key()
        self.server_fingerprint = text
        self.server_key = key
        return key

    def register(self, org=None, protocol=None, token_sync=None, extra=()):
        """POST /?a=register in the clear.  On 200, decrypts the challenge,
        checks its sha512 (ProtocolError when it does not match) and keeps
        next_token."""
        token_sync = self.token_sync if token_sync is None else token_sync
        fields = [("fingerprint", self.fingerprint), ("protocol", protocol or self.protocol)]
        if token_sync:
            fields.append(("token_sync", "1"))
        if org is not None:
            fields.append(("org", org))
        fields += list(extra)
        resp = self.http("POST", "/?a=register", form_encode(fields))
        ans = self._plain_or_json(resp)
        if resp.status == 200:
            if not isinstance(ans.data, dict) or not isinstance(ans.data.get("challenge"), str) \
                    or not isinstance(ans.data.get("sha512"), str):
                raise ProtocolError("register answer without challenge and sha512: %r" % ans)
            opened = self.open_message(ans.data["challenge"])
            plain = opened.data.decode("utf-8")
            if hashlib.sha512(opened.data).hexdigest() != ans.data["sha512"].lower():
                raise ProtocolError("register: sha512 does not match the challenge")
            self.challenge = plain
            ans.opened = opened
            if self.server_key is not None:
                ans.signer = opened.signature_by(self.server_key)
            if token_sync and isinstance(ans.data.get("next_token"), str):
                self.tokens.write(ans.data["next_token"])
        return ans

    def verify(self, response=None, **kw):
        """POST /?a=verify {"response": the challenge's plaintext}, always
        json-encrypt; the answer is read in the client's protocol."""
        return self.call("verify", {"response": self.challenge if response is None
                                    else response}, send_protocol="json-encrypt", **kw)

    def request_activation(self, org, auth="", contact="", justification="",
                           notify=(), group="", **kw):
        return self.call("request_activation", {
            "contact": contact, "justification": justification,
            "notify": ",".join(notify), "org": org, "auth": auth, "group": group}, **kw)

    def enroll(self, org=None, auth=None, **activation):
        """The whole registration: HKP add, fingerprint, server key, register,
        verify, and request_activation when auth is not None.  Each step
        must succeed; the answers are returned by step name."""
        steps = {}
        r = self.hkp_add()
        if r.status != 200:
            raise ProtocolError("HKP add of %s: expected 200, got %r" % (self.name, r))
        steps["hkp_add"] = r
        self.fetch_server_key()
        a = steps["register"] = self.register(org)
        if a.status != 200:
            raise ProtocolError("register of %s: expected 200, got %r" % (self.name, a))
        a = steps["verify"] = self.verify()
        if a.status != 200 or str(a.get("verified")).lower() != "true":
            raise ProtocolError("verify of %s: expected 200 verified true, got %r"
                                % (self.name, a))
        if auth is not None:
            a = steps["request_activation"] = self.request_activation(org, auth, **activation)
            if a.status != 200:
                raise ProtocolError("request_activation of %s: expected 200, got %r"
                                    % (self.name, a))
        return steps

    # requests (reference 3)
    def request_data(self, fields, auth_token=None):
        """The JSON object of a request: version, sig_fingerprint and (token
        sync) auth_token, then fields.  auth_token: None = the token file's,
        OMIT = none at all, else that value."""
        d = {"version": VERSION, "sig_fingerprint": self.fingerprint}
        if self.token_sync and auth_token is not OMIT:
            d["auth_token"] = self.tokens.read() if auth_token is None else auth_token
        d.update(fields)
        return d

    def payload(self, data, signer=None, sig_time=None, sign=True, tag9=True,
                compression=COMP_ZLIB, partial=False, corrupt_sig=False, recipient=None,
                hashalgo=HASH_SHA512, headers=None):
        """The armored json-encrypt payload of data (bytes): to the server's
        primary, signed by the client's primary (or signer)."""
        return encrypt_message(data, [recipient or self.server_key.primary],
                               signer or self.key, tag9=tag9, sig_time=sig_time,
                               compression=compression, partial=partial,
                               corrupt_sig=corrupt_sig, sign=sign, hashalgo=hashalgo,
                               headers=headers)

    def encode(self, data, protocol=None, raw=None, signer=None, sig_time=None,
               corrupt_sig=False, **kw):
        """Form fields [(k, v)] carrying data (a dict, or raw bytes) in the
        protocol (default: the client's).  kw: payload()'s options."""
        protocol = protocol or self.protocol
        body = raw if raw is not None else json_bytes(data)
        if sig_time is None and self.distinct_sig_times:
            sig_time = max(int(time.time()), self.last_sig_time + 1)
            self.last_sig_time = sig_time
        if protocol == "json-encrypt":
            return [("payload", self.payload(body, signer=signer, sig_time=sig_time,
                                             corrupt_sig=corrupt_sig, **kw))]
        sig = (signer or self.key).detached(body, created=sig_time, corrupt=corrupt_sig)
        return [("payload", body), ("payload_sig", sig),
                ("client_fingerprint", self.fingerprint)]

    def build(self, action, fields=None, send_protocol=None, auth_token=None, target=None,
              mutate=None, **kw):
        """The request of action with fields (a dict), unsent: (target, form
        body).  mutate, if given, changes the request's data (a dict) before
        it is encoded, or the form fields (a list of pairs) after:
        mutate(kind, value) returns the new value, kind being 'data' or
        'form'."""
        data = self.request_data(fields or {}, auth_token)
        if mutate is not None:
            data = mutate("data", data)
        form = self.encode(data, send_protocol, **kw) if isinstance(data, dict) \
            else self.encode(None, send_protocol, raw=data, **kw)
        if mutate is not None:
            form = mutate("form", form)
        return target or "/?a=" + action, form_encode(form)

    def call(self, action, fields=None, **kw):
        """Send action with fields (a dict; build()'s options) and read the
        answer."""
        return self.post(*self.build(action, fields, **kw))

    def post(self, target, body, ctype=FORM):
        """POST body to target and read the answer in the client's protocol."""
        return self.read_answer(self.http("POST", target, body, ctype))

    # answers (reference 4)
    def open_message(self, armored):
        _, _, data = dearmor(armored, "MESSAGE")
        return decrypt_message(data, self.key.decryption_keys())

    def _plain_or_json(self, resp):
        ctype = resp.headers.get("content-type", "")
        if resp.body.startswith(b"{") or ctype.startswith("application/json"):
            try:
                data = json.loads(resp.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                data = None
            if isinstance(data, dict):
                return Answer(resp, "json", data)
        form = form_decode(resp.body)
        if form is not None and "reason" in form and "payload" not in form:
            return Answer(resp, "plain", reason=form["reason"])
        if form is not None and "payload" in form:
            return self._payload_answer(resp, form)
        return Answer(resp, "plain" if resp.body else "empty")

    def _payload_answer(self, resp, form):
        if self.server_key is None:
            raise ProtocolError("a payload answer before the server key is known")
        if self.protocol == "json-encrypt":
            try:
                opened = self.open_message(form["payload"])
            except ZtError as e:
                raise ProtocolError("HTTP %d: cannot open the answer's payload: %s"
                                    % (resp.status, e))
            sig = opened.signature_by(self.server_key)
            if sig is None:
                raise ProtocolError("HTTP %d: Bad payload signature from server "
                                    "(encrypted answer not signed by the server key)"
                                    % resp.status)
            text = opened.data
        else:
            if "payload_sig" not in form:
                raise ProtocolError("HTTP %d: Bad payload signature from server "
                                    "(no payload_sig)" % resp.status)
            text = form["payload"].encode("utf-8")
            try:
                sig = verify_detached(form["payload_sig"], text, self.server_key)
            except ZtError as e:
                raise ProtocolError("HTTP %d: Bad payload signature from server (%s)"
                                    % (resp.status, e))
            if sig is None:
                raise ProtocolError("HTTP %d: Bad payload signature from server"
                                    % resp.status)
            opened = None
        try:
            data = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ProtocolError("HTTP %d: the answer's payload is not JSON: %r"
                                % (resp.status, text[:200]))
        if not isinstance(data, dict):
            raise ProtocolError("HTTP %d: the answer's payload is not a JSON object"
                                % resp.status)
        if self.token_sync and isinstance(data.get("next_token"), str):
            self.tokens.write(data["next_token"])
        return Answer(resp, "payload", data, signer=sig, opened=opened)

    def read_answer(self, resp):
        return self._plain_or_json(resp)

    # actions (reference 6)
    def put(self, content, handle, clients=(), trustees=(), description=None,
            recoverable=False, url=False, retrievals=None, ttl=None, ttb=None, votes=None,
            archive=False, deposit_group=None, sha512=None, extra=None, **kw):
        """Deposit content (bytes): put_fields() sent."""
        return self.call("put", self.put_fields(
            content, handle, clients, trustees, description, recoverable, url, retrievals,
            ttl, ttb, votes, archive, deposit_group, sha512, extra), **kw)

    def put_fields(self, content, handle, clients=(), trustees=(), description=None,
                   recoverable=False, url=False, retrievals=None, ttl=None, ttb=None,
                   votes=None, archive=False, deposit_group=None, sha512=None, extra=None):
        """The fields of a put of content (bytes).  Not recoverable: an
        armored message encrypted to this client and the listed clients
        (keys fetched by HKP); recoverable: base64 in 76-column CRLF lines,
        with its detached signature."""
        clients = [c.fingerprint if isinstance(c, Client) else c for c in clients]
        trustees = [c.fingerprint if isinstance(c, Client) else c for c in trustees]
        if recoverable:
            b64 = base64.encodebytes(content).decode().replace("\n", "\r\n")
            text = b64
        else:
            recips = [self.key.public_key().encryption_key()]
            recips += [self.key_of(c).encryption_key() for c in clients]
            text = encrypt_message(content, recips, self.key, tag9=False)
        fields = {
            "trustees": ",".join(trustees), "clients": ",".join(clients),
            "handle": handle, "description": description, "recoverable": recoverable,
            "url": url, "archive": "1" if archive else "0", "content": text,
            "sha512": hashlib.sha512(text.encode()).hexdigest() if sha512 is None else sha512,
        }
        for k, v in (("retrievals", retrievals), ("ttl", ttl), ("ttb", ttb), ("votes", votes)):
            if v is not None:
                fields[k] = v
        if recoverable:
            fields["recoverable_signature"] = self.key.detached(text.encode())
            fields["deposit_group"] = deposit_group
        elif deposit_group is not None:
            fields["deposit_group"] = deposit_group
        fields.update(extra or {})
        return fields

    def request(self, deposit_uuid=None, handle=None, client=None, group_name=None,
                timeout=43200, justification="", **kw):
        fields = {"deposit_uuid": deposit_uuid, "handle": handle, "timeout": timeout,
                  "justification": justification}
        if client is not None:
            fields["client"] = client
        if group_name is not None:
            fields["group_name"] = group_name
        return self.call("request", fields, **kw)

    def get(self, request_uuid, disable=False, **kw):
        return self.call("get", {"request_uuid": request_uuid, "disable": disable}, **kw)

    def fetch(self, deposit_uuid=None, handle=None, **kw):
        """request then get: (request answer, get answer or None)."""
        r = self.request(deposit_uuid, handle, **kw)
        if r.status != 200 or not isinstance(r.get("request_uuid"), str):
            return r, None
        return r, self.get(r["request_uuid"])

    def search(self, string=None, after=None, before=None, group=None, **kw):
        fields = {"string": string}
        if after is not None:
            fields["after"] = after
        if before is not None:
            fields["before"] = before
        if group is not None:
            fields["group"] = group
        return self.call("search", fields, **kw)

    def pending(self, **kw):
        return self.call("pending", {}, **kw)

    def authorize(self, request_uuid, **kw):
        return self.call("authorize", {"r": request_uuid}, **kw)

    def deny(self, request_uuid, **kw):
        return self.call("deny", {"r": request_uuid}, **kw)

    def enable(self, uuids, **kw):
        return self.call("enable", {"deposit_uuids": list(uuids)}, **kw)

    def disable(self, uuids, **kw):
        return self.call("disable", {"deposit_uuids": list(uuids)}, **kw)

    def purge(self, uuids, **kw):
        return self.call("purge", {"deposit_uuids": list(uuids)}, **kw)

    def entropy(self, count, **kw):
        return self.call("entropy", {"count": count}, **kw)

    def by_url(self, url_token, **kw):
        """POST /?d=<url>: a signed request (version, sig_fingerprint,
        auth_token) that requests and gets in one."""
        return self.call(None, {}, target="/?d=" + urllib.parse.quote(url_token, safe=""),
                         **kw)

    def open_content(self, got):
        """The deposit's bytes from a get answer: a recoverable deposit's
        base64, its recoverable_signature checked against the key named by
        content_sig_fingerprint (fetched by HKP, as the client does); else
        the armored content decrypted with this client's keys."""
        if str(got.get("recoverable")).lower() == "true":
            text = got["content"]
            key = self.key_of(got["content_sig_fingerprint"])
            if verify_detached(got["recoverable_signature"], text.encode(), key) is None:
                raise ProtocolError("recoverable_signature does not verify with %s"
                                    % got["content_sig_fingerprint"])
            return base64.b64decode(text)
        return self.open_message(got["content"]).data
