"""Reading armbus pcapng traces: a fast block walk, EPB fields gathered as numpy columns, tolerant of cuts.

Theory of operation
-------------------
The whole file is read once and viewed as an array of u32 words per byte order (blocks are 4-byte aligned). The
block walk is a chain (each block's length gives the next block's offset), so it cannot be a single numpy
operation; it is made one in the common case instead:

* *EPB candidates* are found column-wise: every word equal to the EPB type whose next word is a plausible length
  (>= 32, a multiple of 4, inside the file) and whose block's last word repeats that length. Each candidate's
  successor is ``offset + length``; a *run* is a stretch of consecutive candidates where every successor is the
  next candidate.
* The Python loop walks blocks as before, but when it reaches a candidate it takes the whole run at once (one
  ``searchsorted``) and jumps to the run's end. Section headers, interface descriptions, other blocks, corrupt
  or cut blocks go through the loop one by one. A candidate that is really packet data (a false positive) can
  never be reached by the walk, because the walk only lands on block starts; it only splits a run in two.

A file of N packets thus costs a few numpy passes plus one loop iteration per non-EPB block and per run. The EPB
fields are then gathered column-wise, one fancy index per field.

Either byte order is accepted, per section. A truncated last block is reported in :attr:`Trace.truncated` /
:attr:`Trace.warnings`, never raised. Files that are not pcapng at all, empty files and unreadable paths raise
:class:`~armbus.hil.trace.pcapng.TraceFileError`; interfaces of other link types (an Ethernet capture from another
tool) are listed but their packets are skipped, with a warning naming the link type. Packets whose time, scaled by
their interface's ``if_tsresol`` and shifted by its ``if_tsoffset``, falls outside 0..2**63-1 ns (negative, or
beyond int64 nanoseconds) are skipped, counted in :attr:`Trace.out_of_range_times` and named in a warning:
clamping them would invent an order and a duration that the capture does not hold. The format is described in
:mod:`armbus.hil.trace.pcapng` and docs/traces.md.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from armbus.bus.wire import NS_PER_S
from armbus.hil.trace.pcapng import (
    BT_EPB,
    BT_IDB,
    BT_SHB,
    BT_SPB,
    BYTE_ORDER_MAGIC,
    IF_NAME,
    IF_TSOFFSET,
    IF_TSRESOL,
    LINKTYPE_ARMBUS,
    LINKTYPE_NAMES,
    MAX_T_NS,
    META_PREFIX,
    OPT_COMMENT,
    OPT_ENDOFOPT,
    PCAP_MAGICS,
    SHB_USERAPPL,
    TraceFileError,
    pad4,
)

#: Smallest block (type, total length, trailing length).
_MIN_BLOCK = 12
_EPB_HEADER = 28  # type, length, interface id, ts high, ts low, captured length, original length



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
    out_of_range_times: int = 0  # packets skipped because their time does not fit 0..MAX_T_NS

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
        pos += 4 + length + pad4(length)
    return out


def _tsresol_to_ns(raw: bytes) -> tuple[int, int]:
    """(multiplier, divisor) turning timestamp units into ns; spec 4.2 if_tsresol (default 10**-6)."""
    r = raw[0] if raw else 6
    if r & 0x80:
        return NS_PER_S, 1 << (r & 0x7F)
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


def parse_trace(buf: bytes, path: str = "<bytes>") -> Trace:
    """Parse a whole pcapng file held in memory (see :func:`read_trace`)."""
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
    epb_sets: list[tuple[str, list[int], list[np.ndarray]]] = []  # (byte order, local->global map, EPB offsets)
    epbs: list[np.ndarray] = []
    runs: dict[str, _Runs] = {}
    head = _HEAD[bo]
    while off < n:
        if n - off < 8:
            _truncated(trace, off, n - off, "block header")
            break
        btype, blen = head(buf, off)
        if btype == BT_EPB:  # fast path: the whole run of well-formed EPBs starting here
            r = runs.get(bo) or runs.setdefault(bo, _Runs(u32[bo], n))
            run = r.run_at(off)
            if run is not None:
                epbs.append(run[0])
                off = run[1]
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
            epbs.append(np.asarray([off], np.int64))
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
            offset_ns = unpack_from(bo + "q", tsoff)[0] * NS_PER_S if len(tsoff) == 8 else 0
            scales[gidx] = (mult, div, offset_ns)
            section_ifaces.append(gidx)
        elif btype == BT_SPB:
            trace.skipped_packets += 1
        off += blen
    _gather_epbs(trace, u32, epb_sets, scales)
    return trace


class _Runs:
    """EPB candidates of one byte order and the runs they form (see the module docstring)."""

    def __init__(self, words: np.ndarray, n: int) -> None:
        c = np.flatnonzero(words[:-1] == BT_EPB)
        blen = words[c + 1].astype(np.int64)
        ok = (blen >= 32) & (blen % 4 == 0) & (c * 4 + blen <= n)
        c, blen = c[ok], blen[ok]
        ok = words[c + blen // 4 - 1] == words[c + 1]
        self.start = c[ok] * 4  # byte offsets of the candidates, ascending
        self.next = self.start + blen[ok]
        self.breaks = np.flatnonzero(self.next[:-1] != self.start[1:])  # runs end at these indices
        self.last = len(self.start) - 1

    def run_at(self, off: int) -> tuple[np.ndarray, int] | None:
        """(offsets of the run of candidates starting at ``off``, offset after it), or None if ``off`` is not one."""
        k = int(np.searchsorted(self.start, off))
        if k > self.last or self.start[k] != off:
            return None
        b = int(np.searchsorted(self.breaks, k))
        end = int(self.breaks[b]) if b < len(self.breaks) else self.last
        return self.start[k:end + 1], int(self.next[end])


def _truncated(trace: Trace, off: int, have: int, what: str) -> None:
    trace.truncated = True
    trace.warnings.append(f"truncated last block at offset {off}: {have} bytes of a {what} "
                          "(recorder killed while writing?); everything before it was read")


def _corrupt(trace: Trace, off: int, what: str) -> None:
    if off == 0:
        raise TraceFileError(f"{trace.path}: not a pcapng file ({what})")
    trace.truncated = True
    trace.warnings.append(f"corrupt block at offset {off}: {what}; reading stopped there")


def _to_ns(ts: np.ndarray, mult: int, div: int, offset_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw u64 timestamps of one interface -> (int64 ns, valid mask); invalid rows (time outside
    0..:data:`MAX_T_NS`) hold 0. Vectorised when every result fits, exact Python ints otherwise."""
    if not len(ts):
        return np.zeros(0, np.int64), np.ones(0, bool)
    lo, hi = int(ts.min()), int(ts.max())
    if mult == 1 and div == 1 and hi <= MAX_T_NS and lo + offset_ns >= 0 and hi + offset_ns <= MAX_T_NS:
        return ts.astype(np.int64) + np.int64(offset_ns), np.ones(len(ts), bool)
    exact = [v * mult // div + offset_ns for v in ts.tolist()]
    valid = np.fromiter((0 <= v <= MAX_T_NS for v in exact), bool, len(exact))
    return np.asarray([v if 0 <= v <= MAX_T_NS else 0 for v in exact], dtype=np.int64), valid


def _gather_epbs(trace: Trace, u32: dict[str, np.ndarray], epb_sets: list[tuple[str, list[int], list[np.ndarray]]],
                 scales: dict[int, tuple[int, int, int]]) -> None:
    """Gather EPB fields column-wise (u32 word index = offset / 4) and keep those of armbus interfaces.

    Every EPB offset given has been checked by the walk (length, trailing length, inside the file).
    """
    cols: list[tuple[np.ndarray, ...]] = []
    for bo, local_map, offsets in epb_sets:
        if not offsets:
            continue
        w = np.concatenate(offsets) // 4
        hdr = u32[bo][w[:, None] + np.arange(1, 6)]  # length, interface, ts high, ts low, captured length
        local = hdr[:, 1].astype(np.int64)
        bad = local >= len(local_map)
        if bad.any():
            trace.warnings.append(f"{int(bad.sum())} packet block(s) name an undeclared interface: skipped")
        lut = np.asarray([*local_map, -1], dtype=np.int64)
        gidx = lut[np.minimum(local, len(local_map))]
        ts = (hdr[:, 2].astype(np.uint64) << np.uint64(32)) | hdr[:, 3]
        cap = hdr[:, 4].astype(np.int64)
        over = cap > hdr[:, 0].astype(np.int64) - 32
        if over.any():
            trace.warnings.append(f"{int(over.sum())} packet block(s) claim more data than they hold")
            gidx = np.where(over, -1, gidx)
        cols.append((gidx, ts, w * 4 + _EPB_HEADER, cap))
    if not cols:
        return
    gidx, ts, off, cap = (np.concatenate(c) for c in zip(*cols, strict=True)) if len(cols) > 1 else cols[0]
    armbus = np.zeros(len(trace.interfaces) + 1, bool)  # indexed by gidx + 1 (-1: skipped)
    armbus[[i.index + 1 for i in trace.interfaces if i.armbus]] = True
    keep = armbus[gidx + 1]
    if not keep.all():
        trace.skipped_packets += int((~keep).sum())
        gidx, ts, off, cap = gidx[keep], ts[keep], off[keep], cap[keep]
    # interfaces grouped by their time scale: one conversion per distinct (if_tsresol, if_tsoffset)
    by_scale: dict[tuple[int, int, int], list[int]] = {}
    for i in trace.interfaces:
        if i.armbus:
            by_scale.setdefault(scales[i.index], []).append(i.index)
    if len(by_scale) == 1:
        t_ns, valid = _to_ns(ts, *next(iter(by_scale)))
    else:
        t_ns = np.empty(len(ts), dtype=np.int64)
        valid = np.ones(len(ts), dtype=bool)
        for scale, members in by_scale.items():
            sel = np.flatnonzero(np.isin(gidx, members))
            t_ns[sel], valid[sel] = _to_ns(ts[sel], *scale)
    if not valid.all():
        n_bad = int((~valid).sum())
        trace.out_of_range_times += n_bad
        trace.warnings.append(f"{n_bad} packet block(s) with a time outside 0..2**63-1 ns (if_tsresol/if_tsoffset "
                              "of their interface): skipped")
        gidx, t_ns, off, cap = gidx[valid], t_ns[valid], off[valid], cap[valid]
    trace.chunk_iface = gidx.astype(np.int32)
    trace.chunk_t_ns = t_ns
    trace.chunk_off = off
    trace.chunk_len = cap
