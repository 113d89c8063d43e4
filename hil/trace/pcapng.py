"""A small pcapng writer and reader for armbus traces: raw wire chunks, one interface per link direction.

Theory of operation
-------------------
A trace is a pcapng file (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html) holding:

* one Section Header Block (SHB) whose options carry the metadata: ``shb_userappl`` names the writer and every
  ``opt_comment`` of the form ``armbus.<key>=<value>`` is one metadata entry (protocol version, baud, joint
  count, seed, ... see docs/traces.md);
* one Interface Description Block (IDB) per link *and* direction, ``if_name = "<link>:<direction>"``, link
  type :data:`LINKTYPE_ARMBUS` (147 = LINKTYPE_USER0) and ``if_tsresol = 9`` (nanosecond timestamps);
* one Enhanced Packet Block (EPB) per chunk of bytes seen on one link direction at one time. Chunks are the
  bytes as they were read or sent, garbage between frames included, never re-encoded frames: replay is byte
  exact.

Writing: every block is built in memory and handed to an unbuffered file in one ``write`` call, so a recorder
killed at any moment leaves whole blocks plus at most one partial last block on disk.

Reading: the whole file is read once; a tight loop walks the block headers and remembers where the EPBs are;
their fields are then gathered column-wise with numpy (blocks are 4-byte aligned, so the file is viewed as an
array of u32). Either byte order is accepted, per section. A truncated last block is reported in
:attr:`Trace.truncated` / :attr:`Trace.warnings`, never raised. Files that are not pcapng at all, empty files
and unreadable paths raise :class:`TraceFileError`; interfaces of other link types (an Ethernet capture from
another tool) are listed but their packets are skipped, with a warning naming the link type.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from bus.errors import TraceError, UsageError
from bus.wire import PROTOCOL_VERSION

#: Block types (pcapng spec section 4 / 11.1).
BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_SPB = 0x00000003
BT_ISB = 0x00000005
BT_EPB = 0x00000006
#: SHB byte-order magic (spec 4.1); read in the wrong order it is 0x4D3C2B1A.
BYTE_ORDER_MAGIC = 0x1A2B3C4D
#: Classic libpcap file magics (us / ns, both orders): recognised only to give a precise error.
PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
#: Option codes (spec 3.5, 4.1, 4.2).
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
IF_TSOFFSET = 14
#: LINKTYPE_USER0 (tcpdump.org link-layer header types, 147..162 are reserved for private use). Chosen as the
#: first of the range; the Wireshark dissector in docs/wireshark/armbus.lua registers on the same one.
LINKTYPE_ARMBUS = 147
#: A few well-known link types, only to name them in warnings about files from other tools.
LINKTYPE_NAMES = {0: "NULL", 1: "ETHERNET", 101: "RAW", 105: "IEEE802_11", 113: "LINUX_SLL", 127: "RADIOTAP",
                  147: "USER0 (armbus)", 195: "IEEE802_15_4", 220: "USB_LINUX_MMAPPED", 276: "LINUX_SLL2"}
#: if_tsresol 9: timestamps count nanoseconds, the unit of every armbus time.
TSRESOL_NS = 9
#: Metadata comments look like ``armbus.<key>=<value>``; keys are short identifiers.
META_PREFIX = "armbus."
_KEY_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
#: Smallest block (type, total length, trailing length).
_MIN_BLOCK = 12
_EPB_HEADER = 28  # type, length, interface id, ts high, ts low, captured length, original length


class TraceFileError(TraceError):
    """A file that cannot be read as an armbus trace. ``partial`` holds what was read, if anything."""

    def __init__(self, message: str, partial: Trace | None = None) -> None:
        super().__init__(message)
        self.partial = partial


# ------------------------------------------------------------------------------------------------ writing


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _options(bo: str, opts: list[tuple[int, bytes]]) -> bytes:
    if not opts:
        return b""
    parts = []
    for code, value in opts:
        parts.append(struct.pack(bo + "HH", code, len(value)) + value + b"\x00" * _pad4(len(value)))
    parts.append(struct.pack(bo + "HH", OPT_ENDOFOPT, 0))
    return b"".join(parts)


def _block(bo: str, btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack(bo + "II", btype, total) + body + struct.pack(bo + "I", total)


def shb_block(metadata: Mapping[str, object], userappl: str, comments: list[str] | None = None,
              byte_order: str = "<") -> bytes:
    """Section Header Block carrying ``metadata`` as ``armbus.<key>=<value>`` comments."""
    opts: list[tuple[int, bytes]] = [(SHB_USERAPPL, userappl.encode())]
    for key, value in metadata.items():
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise UsageError(f"trace metadata key {key!r}: use letters, digits, '_', '.', '-'")
        opts.append((OPT_COMMENT, f"{META_PREFIX}{key}={value}".encode()))
    opts.extend((OPT_COMMENT, c.encode()) for c in comments or [])
    body = struct.pack(byte_order + "IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _options(byte_order, opts)
    return _block(byte_order, BT_SHB, body)


def idb_block(name: str, description: str = "", link_type: int = LINKTYPE_ARMBUS, byte_order: str = "<",
              tsresol: int = TSRESOL_NS) -> bytes:
    """Interface Description Block (ns timestamps by default); snaplen 0 means unlimited (spec 4.2)."""
    opts = [(IF_NAME, name.encode())]
    if description:
        opts.append((IF_DESCRIPTION, description.encode()))
    opts.append((IF_TSRESOL, bytes([tsresol])))
    body = struct.pack(byte_order + "HHI", link_type, 0, 0) + _options(byte_order, opts)
    return _block(byte_order, BT_IDB, body)


def epb_block(interface: int, t_ns: int, data: bytes, byte_order: str = "<") -> bytes:
    """Enhanced Packet Block: ``data`` seen on ``interface`` at ``t_ns`` (captured length == original)."""
    n = len(data)
    total = 32 + n + _pad4(n)
    return b"".join((
        struct.pack(byte_order + "IIIIIII", BT_EPB, total, interface, (t_ns >> 32) & 0xFFFFFFFF,
                    t_ns & 0xFFFFFFFF, n, n),
        data, b"\x00" * _pad4(n), struct.pack(byte_order + "I", total),
    ))


def direction_label(direction: object) -> str:
    """A direction as text: strings as they are, ``hil.wire.Direction`` by its ``label`` ("a>b"), enums by name."""
    if isinstance(direction, str):
        return direction
    label = getattr(direction, "label", None)
    if isinstance(label, str):
        return label
    name = getattr(direction, "name", None)
    return name.lower() if isinstance(name, str) else str(direction)


def interface_name(link: str, direction: object) -> str:
    """``if_name`` of a link direction: ``"<link>:<direction>"`` (the direction holds no ':')."""
    direction = direction_label(direction)
    if ":" in direction or not direction or not link:
        raise UsageError(f"trace interface {link!r}/{direction!r}: non-empty names, no ':' in the direction")
    return f"{link}:{direction}"


class TraceWriter:
    """Append chunks to a new pcapng trace; the kernel's tap: ``writer(link, direction, t_ns, data)``.

    Each block goes to the OS in one unbuffered write, so the file is readable up to the last whole block
    whenever the process dies. ``metadata`` becomes ``armbus.<key>=<value>`` comments; ``version`` (the
    protocol version) is added unless given.
    """

    def __init__(self, path: str | os.PathLike[str], metadata: Mapping[str, object] | None = None,
                 userappl: str = "armbus trace writer", byte_order: str = "<") -> None:
        if byte_order not in ("<", ">"):
            raise UsageError(f"byte_order must be '<' or '>', not {byte_order!r}")
        meta = {"version": PROTOCOL_VERSION, **(metadata or {})}
        header = shb_block(meta, userappl, byte_order=byte_order)  # validates before creating the file
        try:
            self._file: BinaryIO = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise TraceFileError(f"cannot create trace {os.fspath(path)!r}: {exc.strerror}") from None
        self._bo = byte_order
        self._interfaces: dict[tuple[str, object], int] = {}
        self.path = os.fspath(path)
        self.chunks = 0
        self._write(header)

    def _write(self, block: bytes) -> None:
        view = memoryview(block)
        while view:
            n = self._file.write(view)
            view = view[n or 0:]

    def interface(self, link: str, direction: object) -> int:
        """Interface id of a link direction, writing its IDB the first time it is seen."""
        key = (link, direction)
        iid = self._interfaces.get(key)
        if iid is None:
            iid = len(self._interfaces)
            self._write(idb_block(interface_name(link, direction), f"armbus link {link}, "
                                  f"{direction_label(direction)}",
                                  byte_order=self._bo))
            self._interfaces[key] = iid
        return iid

    def write(self, link: str, direction: object, t_ns: int, data: bytes) -> None:
        """Record ``data`` seen on ``link`` in ``direction`` (str or enum) at ``t_ns`` (integer ns, >= 0)."""
        if not data:
            return
        if t_ns < 0 or t_ns >= 1 << 64:
            raise UsageError(f"trace timestamp {t_ns} ns is outside 0..2**64-1")
        iid = self.interface(link, direction)
        self._write(epb_block(iid, t_ns, bytes(data), self._bo))
        self.chunks += 1

    __call__ = write

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Interface:
    """One IDB. ``link``/``direction`` come from ``if_name``; ``armbus`` is False for other link types."""

    index: int
    link_type: int
    name: str
    link: str
    direction: str
    armbus: bool


@dataclass
class Trace:
    """Everything read from a trace. Chunks are columns; ``chunk_data(i)`` gives the bytes of chunk ``i``.

    Only chunks of armbus interfaces are kept; they are in file order (the writer's order is time order).
    """

    path: str
    interfaces: list[Interface]
    metadata: dict[str, str]
    comments: list[str]
    userappl: str
    buffer: bytes
    chunk_iface: np.ndarray  # int32: interface index
    chunk_t_ns: np.ndarray  # int64: timestamp in nanoseconds
    chunk_off: np.ndarray  # int64: offset of the chunk's bytes in ``buffer``
    chunk_len: np.ndarray  # int64: chunk length
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)
    skipped_packets: int = 0

    def __len__(self) -> int:
        return len(self.chunk_iface)

    def chunk_data(self, i: int) -> bytes:
        off = int(self.chunk_off[i])
        return self.buffer[off:off + int(self.chunk_len[i])]

    def chunks(self) -> Iterator[tuple[int, int, bytes]]:
        """``(interface index, t_ns, data)`` for every armbus chunk, in file order."""
        buf = self.buffer
        for iid, t, off, n in zip(self.chunk_iface.tolist(), self.chunk_t_ns.tolist(),
                                  self.chunk_off.tolist(), self.chunk_len.tolist(), strict=True):
            yield iid, t, buf[off:off + n]

    def require_armbus(self) -> None:
        """Raise :class:`TraceFileError` (with this trace as ``partial``) when no interface is armbus."""
        if any(i.armbus for i in self.interfaces):
            return
        if not self.interfaces:
            raise TraceFileError(f"{self.path}: pcapng file without any interface", self)
        kinds = sorted({LINKTYPE_NAMES.get(i.link_type, str(i.link_type)) for i in self.interfaces})
        raise TraceFileError(
            f"{self.path}: not an armbus trace: link type(s) {', '.join(kinds)}, armbus uses "
            f"{LINKTYPE_ARMBUS} (LINKTYPE_USER0); {self.skipped_packets} packet(s) of other tools skipped",
            self)


def _parse_options(buf: bytes, start: int, end: int, bo: str) -> list[tuple[int, bytes]]:
    out = []
    pos = start
    while pos + 4 <= end:
        code, length = struct.unpack_from(bo + "HH", buf, pos)
        if code == OPT_ENDOFOPT:
            break
        out.append((code, buf[pos + 4:pos + 4 + length]))
        pos += 4 + length + _pad4(length)
    return out


def _tsresol_to_ns(raw: bytes) -> tuple[int, int]:
    """(multiplier, divisor) turning timestamp units into ns; spec 4.2 if_tsresol (default 10**-6)."""
    r = raw[0] if raw else 6
    if r & 0x80:
        return 1_000_000_000, 1 << (r & 0x7F)
    return (10 ** (9 - r), 1) if r <= 9 else (1, 10 ** (r - 9))


def _decode_text(b: bytes) -> str:
    return b.rstrip(b"\x00").decode("utf-8", "replace")


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a pcapng trace. Raises :class:`TraceFileError` only when nothing usable can be read."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            buf = f.read()
    except FileNotFoundError:
        raise TraceFileError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise TraceFileError(f"{p}: is a directory, not a trace file") from None
    except OSError as exc:
        raise TraceFileError(f"{p}: cannot read: {exc.strerror}") from None
    return parse_trace(buf, p)


_HEAD = {"<": struct.Struct("<II").unpack_from, ">": struct.Struct(">II").unpack_from}


def parse_trace(buf: bytes, path: str = "<bytes>", strict: bool = False) -> Trace:
    """Parse a whole pcapng file held in memory (see :func:`read_trace`).

    The block walk checks each EPB's trailing length column-wise afterwards; when one is wrong the file is
    parsed again with ``strict`` (every trailer checked in the walk), which stops at the corrupt block.
    """
    if not buf:
        raise TraceFileError(f"{path}: empty file (a recorder that died before writing its header?)")
    if buf[:4] in PCAP_MAGICS:
        raise TraceFileError(f"{path}: classic pcap file, not pcapng; convert it with 'editcap -F pcapng'")
    if len(buf) < 12 and struct.pack("<I", BT_SHB).startswith(buf[:4]):
        raise TraceFileError(f"{path}: truncated: only {len(buf)} bytes of the section header")
    if len(buf) < 12 or struct.unpack_from("<I", buf, 0)[0] != BT_SHB:
        raise TraceFileError(f"{path}: not a pcapng file (no section header block at the start)")
    empty = np.zeros(0, np.int64)
    trace = Trace(path, [], {}, [], "", buf, empty.astype(np.int32), empty, empty, empty)
    u32 = {"<": np.frombuffer(buf, "<u4", len(buf) // 4), ">": np.frombuffer(buf, ">u4", len(buf) // 4)}
    n = len(buf)
    unpack_from = struct.unpack_from
    off = 0
    bo = "<"
    section_ifaces: list[int] = []  # section-local interface id -> global index
    scales: dict[int, tuple[int, int, int]] = {}  # global index -> (mult, div, offset ns)
    epb_sets: list[tuple[str, list[int], list[int]]] = []  # (byte order, local->global map, EPB offsets)
    epbs: list[int] = []
    head = _HEAD[bo]
    while off < n:
        if n - off < 8:
            _truncated(trace, off, n - off, "block header")
            break
        btype, blen = head(buf, off)
        if btype == BT_EPB and not strict and blen >= 32 and not blen & 3 and off + blen <= n:
            epbs.append(off)  # fast path: trailers of EPBs are checked column-wise in _gather_epbs
            off += blen
            continue
        if btype == BT_SHB:
            if n - off < 12:
                _truncated(trace, off, n - off, "section header")
                break
            magic = unpack_from("<I", buf, off + 8)[0]
            if magic not in (BYTE_ORDER_MAGIC, 0x4D3C2B1A):
                _corrupt(trace, off, "section header with an invalid byte-order magic")
                break
            bo = "<" if magic == BYTE_ORDER_MAGIC else ">"
            head = _HEAD[bo]
            blen = unpack_from(bo + "I", buf, off + 4)[0]
        if blen < _MIN_BLOCK or blen % 4:
            _corrupt(trace, off, f"block length {blen} is invalid")
            break
        if off + blen > n:
            _truncated(trace, off, n - off, f"block of {blen} bytes")
            break
        if unpack_from(bo + "I", buf, off + blen - 4)[0] != blen:
            _corrupt(trace, off, "block's trailing length does not match its header")
            break
        if btype == BT_EPB:
            epbs.append(off)
        elif btype == BT_SHB:
            if off:
                trace.warnings.append(f"a second section starts at offset {off} (concatenated captures?)")
            epbs = []
            section_ifaces = []
            epb_sets.append((bo, section_ifaces, epbs))
            for code, value in _parse_options(buf, off + 24, off + blen - 4, bo):
                text = _decode_text(value)
                if code == SHB_USERAPPL:
                    trace.userappl = text
                elif code == OPT_COMMENT and text.startswith(META_PREFIX) and "=" in text:
                    key, _, val = text[len(META_PREFIX):].partition("=")
                    trace.metadata[key] = val
                elif code == OPT_COMMENT:
                    trace.comments.append(text)
        elif btype == BT_IDB:
            link_type = unpack_from(bo + "H", buf, off + 8)[0]
            opts = dict(_parse_options(buf, off + 16, off + blen - 4, bo))
            name = _decode_text(opts.get(IF_NAME, b""))
            link, _, direction = name.rpartition(":")
            gidx = len(trace.interfaces)
            armbus = link_type == LINKTYPE_ARMBUS
            trace.interfaces.append(Interface(gidx, link_type, name, link or name, direction, armbus))
            if not armbus:
                trace.warnings.append(
                    f"interface {gidx} ({name or 'unnamed'}) has link type "
                    f"{LINKTYPE_NAMES.get(link_type, link_type)}, not armbus ({LINKTYPE_ARMBUS}): "
                    "its packets are skipped")
            mult, div = _tsresol_to_ns(opts.get(IF_TSRESOL, b""))
            tsoff = opts.get(IF_TSOFFSET, b"")
            offset_ns = unpack_from(bo + "q", tsoff)[0] * 1_000_000_000 if len(tsoff) == 8 else 0
            scales[gidx] = (mult, div, offset_ns)
            section_ifaces.append(gidx)
        elif btype == BT_SPB:
            trace.skipped_packets += 1
        off += blen
    if not _gather_epbs(trace, u32, epb_sets, scales):
        return parse_trace(buf, path, strict=True)
    return trace


def _truncated(trace: Trace, off: int, have: int, what: str) -> None:
    trace.truncated = True
    trace.warnings.append(f"truncated last block at offset {off}: {have} bytes of a {what} "
                          "(recorder killed while writing?); everything before it was read")


def _corrupt(trace: Trace, off: int, what: str) -> None:
    if off == 0:
        raise TraceFileError(f"{trace.path}: not a pcapng file ({what})")
    trace.truncated = True
    trace.warnings.append(f"corrupt block at offset {off}: {what}; reading stopped there")


def _gather_epbs(trace: Trace, u32: dict[str, np.ndarray], epb_sets: list[tuple[str, list[int], list[int]]],
                 scales: dict[int, tuple[int, int, int]]) -> bool:
    """Gather EPB fields column-wise (u32 word index = offset / 4) and keep those of armbus interfaces.

    Returns False, changing nothing, when an EPB's trailing length disagrees with its header.
    """
    cols: list[tuple[np.ndarray, ...]] = []
    for bo, local_map, offsets in epb_sets:
        if not offsets:
            continue
        words = u32[bo]
        w = np.asarray(offsets, dtype=np.int64) // 4
        blen_w = words[w + 1].astype(np.int64) // 4
        if not np.array_equal(words[w + blen_w - 1], words[w + 1]):
            return False
        local = words[w + 2].astype(np.int64)
        bad = local >= len(local_map)
        if bad.any():
            trace.warnings.append(f"{int(bad.sum())} packet block(s) name an undeclared interface: skipped")
        lut = np.asarray([*local_map, -1], dtype=np.int64)
        gidx = lut[np.where(bad, len(local_map), local)]
        ts = (words[w + 3].astype(np.uint64) << np.uint64(32)) | words[w + 4].astype(np.uint64)
        cap = words[w + 5].astype(np.int64)
        over = cap > words[w + 1].astype(np.int64) - 32
        if over.any():
            trace.warnings.append(f"{int(over.sum())} packet block(s) claim more data than they hold")
            gidx = np.where(over, -1, gidx)
        cols.append((gidx, ts, w * 4 + _EPB_HEADER, cap))
    if not cols:
        return True
    gidx, ts, off, cap = (np.concatenate(c) for c in zip(*cols, strict=True))
    armbus_ids = np.asarray([i.index for i in trace.interfaces if i.armbus], dtype=np.int64)
    keep = np.isin(gidx, armbus_ids)
    trace.skipped_packets += int((~keep).sum())
    gidx, ts, off, cap = gidx[keep], ts[keep], off[keep], cap[keep]
    t_ns = np.empty(len(ts), dtype=np.int64)
    for g in np.unique(gidx).tolist():
        sel = gidx == g
        mult, div, offset_ns = scales[g]
        if mult == 1 and div == 1:
            t_ns[sel] = ts[sel].astype(np.int64) + offset_ns
        else:  # exact integer scaling (Python ints for the rare non-ns resolutions)
            t_ns[sel] = np.asarray([v * mult // div + offset_ns for v in ts[sel].tolist()], dtype=np.int64)
    trace.chunk_iface = gidx.astype(np.int32)
    trace.chunk_t_ns = t_ns
    trace.chunk_off = off
    trace.chunk_len = cap
    return True
