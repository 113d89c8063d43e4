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

Reading lives in :mod:`armbus.hil.trace.reader`.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, BinaryIO

from armbus.bus.errors import TraceError, UsageError
from armbus.bus.wire import PROTOCOL_VERSION

if TYPE_CHECKING:
    from armbus.hil.trace.reader import Trace

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
#: Latest time a trace holds: every armbus time is int64 ns (numpy columns, ``now``), so the writer refuses later
#: ones and the reader skips (and counts) packets whose scaled time falls outside 0..MAX_T_NS (~292 years).
MAX_T_NS = 2**63 - 1
#: Metadata comments look like ``armbus.<key>=<value>``; keys are short identifiers.
META_PREFIX = "armbus."
_KEY_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


class TraceFileError(TraceError):
    """A file that cannot be read as an armbus trace. ``partial`` holds what was read, if anything."""

    def __init__(self, message: str, partial: Trace | None = None) -> None:
        super().__init__(message)
        self.partial = partial


# ------------------------------------------------------------------------------------------------ writing


def pad4(n: int) -> int:
    """Padding that brings ``n`` bytes to a 32-bit boundary (every pcapng field and block is aligned)."""
    return (4 - n % 4) % 4


def _options(bo: str, opts: list[tuple[int, bytes]]) -> bytes:
    if not opts:
        return b""
    parts = []
    for code, value in opts:
        parts.append(struct.pack(bo + "HH", code, len(value)) + value + b"\x00" * pad4(len(value)))
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
    total = 32 + n + pad4(n)
    return b"".join((
        struct.pack(byte_order + "IIIIIII", BT_EPB, total, interface, (t_ns >> 32) & 0xFFFFFFFF,
                    t_ns & 0xFFFFFFFF, n, n),
        data, b"\x00" * pad4(n), struct.pack(byte_order + "I", total),
    ))


def direction_label(direction: object) -> str:
    """A direction as text: strings as they are, :class:`armbus.hil.wire.Direction` by its ``label`` ("a>b"),
    enums by name."""
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

    def write_blocks(self, blocks: bytes) -> None:
        """Append whole, already encoded blocks as they are (one unbuffered write): the fast path of generators
        that build many blocks at once with :func:`epb_block` / :func:`idb_block`. The caller vouches for them:
        every interface id they use was declared with :meth:`interface` first, and ``chunks`` is not counted."""
        self._write(blocks)

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
        """Record ``data`` seen on ``link`` in ``direction`` (str or enum) at ``t_ns`` (integer ns, 0..MAX_T_NS)."""
        if not data:
            return
        if not 0 <= t_ns <= MAX_T_NS:
            raise UsageError(f"trace timestamp {t_ns} ns is outside 0..2**63-1")
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
