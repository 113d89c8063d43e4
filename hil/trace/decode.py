"""Decode a trace: chunks -> frames per link direction, as numpy columns; filters; text and JSON lines.

Theory of operation
-------------------
Each interface of a trace is one direction of one link; its rows are what one :class:`armbus.bus.deframer.Deframer` fed
with the interface's chunks in file order returns: one row per non-empty delimiter-separated piece, a ``Frame`` or
a ``LineError``. A row's time is the time of the chunk that holds its 0x00 delimiter, i.e. when the receiver
could have decoded it. The decoding itself is columnar (:mod:`armbus.bus.batch`); :mod:`armbus.hil.trace.reference`
keeps the Deframer-based decoder that defines the result, and the tests compare the two.

1. All chunks are copied, in file order, into one buffer with a 0x00 inserted before each (one boolean mask over
   the file). Splitting it at 0x00 gives every piece of every chunk, and a piece never spans two chunks.
2. An interface whose chunks all end with 0x00 (every simulated capture: the kernel delivers whole frames) leaves
   its receiver between frames at each chunk end, so its pieces are exactly the Deframer's. Interfaces with a
   chunk that ends inside a frame (reads of a real port) are decoded from their own joined stream instead
   (:func:`armbus.bus.batch.decode_stream`, the same rules including a held tail).
3. :func:`armbus.bus.batch.decode_pieces` turns all pieces into columns in one call; rows are put in time order with one
   stable sort on (time, interface), which is the time-ordered merge of the per-interface streams.

Payloads are not copied: :class:`PayloadStore` slices one out of the decoded bodies when it is asked for
(printing, payload statistics), so ``decode`` + ``stats`` never build a bytes object per frame.

Rows: ``kind`` is the FrameKind, or :data:`LINE_ERROR` (-1) for a line error, whose ``error`` is the
LineErrorKind and ``size`` the piece size; network fields (src, dst, type, msg_id, ttl) are -1 outside DATA frames.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from itertools import compress, pairwise
from typing import Any, overload

import numpy as np

from armbus.bus.batch import LINE_ERROR, concat, decode_pieces, decode_stream
from armbus.bus.errors import DecodeError, TraceError, UsageError, exit_code
from armbus.bus.messages import decode_payload
from armbus.bus.wire import NS_PER_MS, NS_PER_S, NS_PER_US, FrameFlag, FrameKind, LineErrorKind, MsgType
from armbus.hil.trace.reader import Trace, read_trace

#: The array columns of a :class:`FrameTable`, by name (the payloads are a store of their own): what a decoder
#: fills and what two tables are compared on.
COLUMNS = ("t_ns", "iface", "kind", "seq", "flags", "src", "dst", "type", "msg_id", "ttl", "error", "size",
           "payload_index")


class PayloadStore(Sequence[bytes]):
    """Payloads sliced on demand out of the decoded frame bodies: ``store[i]`` is a bytes object."""

    def __init__(self, bodies: bytes, offsets: np.ndarray, lengths: np.ndarray) -> None:
        self.bodies = bodies
        self.offsets = offsets
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.offsets)

    @overload
    def __getitem__(self, i: int) -> bytes: ...

    @overload
    def __getitem__(self, i: slice) -> list[bytes]: ...

    def __getitem__(self, i: int | slice) -> bytes | list[bytes]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        off = int(self.offsets[i])
        if off < 0:
            raise IndexError(f"row {i} carries no payload")
        return self.bodies[off:off + int(self.lengths[i])]


@dataclass
class FrameTable:
    """Every frame and line error of a trace, one row each, in time order; ``payloads[payload_index[i]]``."""

    trace: Trace
    t_ns: np.ndarray  # int64
    iface: np.ndarray  # int16
    kind: np.ndarray  # int8: FrameKind or LINE_ERROR
    seq: np.ndarray  # int16 (0 for line errors)
    flags: np.ndarray  # int16
    src: np.ndarray  # int16, -1 outside DATA
    dst: np.ndarray
    type: np.ndarray
    msg_id: np.ndarray  # int32, -1 outside DATA
    ttl: np.ndarray
    error: np.ndarray  # int8: LineErrorKind, 0 for frames
    size: np.ndarray  # int32: piece size of a line error, 0 for frames
    payload_index: np.ndarray  # int32, -1 outside DATA
    payloads: Sequence[bytes]
    leftover: dict[int, int]  # interface -> bytes of an unfinished frame at the end of the trace

    def __len__(self) -> int:
        return len(self.t_ns)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: decoding allocates millions of acyclic tuples (frames, packets), and
    each collection pass would walk all of them again (measured: 20% of decode+stats). Restored on exit."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def decode_trace(trace: Trace) -> FrameTable:
    """Decode every armbus interface of ``trace`` into one time-ordered :class:`FrameTable`."""
    with gc_paused():
        return _decode_trace(trace)


def _decode_trace(trace: Trace) -> FrameTable:
    armbus = [i.index for i in trace.interfaces if i.armbus]
    n = len(trace)
    if not armbus or not n:
        empty = {name: np.zeros(0, np.int64) for name in COLUMNS}
        return FrameTable(trace, **empty, payloads=PayloadStore(b"", empty["t_ns"], empty["t_ns"]), leftover={})
    off, ln, t_chunk, if_chunk = trace.chunk_off, trace.chunk_len, trace.chunk_t_ns, trace.chunk_iface
    # Every chunk's bytes, in file order, each preceded by a 0x00: gathered from the file.
    k = ln + 1
    c_start = np.cumsum(k) - k  # where each chunk's inserted 0x00 lands
    wire = _gather_chunks(np.frombuffer(trace.buffer, np.uint8), off - 1, k, c_start)
    wire[c_start] = 0
    ends_zero = wire[c_start + ln] == 0  # the chunk leaves the receiver between frames (an empty chunk too)
    open_ends = np.bincount(if_chunk[~ends_zero], minlength=len(trace.interfaces))
    clean = np.asarray([i.armbus and not open_ends[i.index] for i in trace.interfaces])
    # Interfaces whose chunks all end with a delimiter: their pieces are the pieces of this one buffer.
    zpos = np.flatnonzero(wire == 0)
    plen = np.diff(zpos) - 1
    starts_chunk = np.zeros(len(wire), bool)
    starts_chunk[c_start] = True
    piece_chunk = np.cumsum(starts_chunk[zpos[:-1]]) - 1  # the chunk each piece lies in (after its 0x00)
    take = (plen > 0) & clean[if_chunk[piece_chunk]]
    pieces = list(compress(wire.tobytes().split(b"\x00")[1:-1], take.tolist()))
    rows_chunk = [piece_chunk[take]]
    parts = [decode_pieces(pieces, plen[take])]
    leftover = {}
    # Other interfaces (reads that cut frames, as a tap records them): the interface's stream, as one feed.
    for itf in (i for i in armbus if not clean[i]):
        sel = np.flatnonzero(if_chunk == itf)
        m = ln[sel]
        res = decode_stream(_gather_chunks(wire, c_start[sel] + 1, m, np.cumsum(m) - m).tobytes())
        if res.buffered:
            leftover[itf] = res.buffered
        parts.append(res.columns)
        rows_chunk.append(sel[np.searchsorted(np.cumsum(m), res.ends, side="right")])
    cols = concat(parts)
    chunk = np.concatenate(rows_chunk)
    t_ns, iface = t_chunk[chunk], if_chunk[chunk].astype(np.int16)
    order = np.lexsort((iface, t_ns))  # by time, then interface, then stream order: the merge of the streams
    table = {name: getattr(cols, name)[order] for name in COLUMNS if hasattr(cols, name)}
    is_data = table["kind"] == FrameKind.DATA
    return FrameTable(trace, t_ns=t_ns[order], iface=iface[order], **table,
                      payload_index=np.where(is_data, np.arange(len(order), dtype=np.int32), -1).astype(np.int32),
                      payloads=PayloadStore(cols.bodies, cols.pay_off[order], cols.pay_len[order]),
                      leftover=leftover)


#: Bytes gathered per step in :func:`_gather_chunks`: index arrays of this many int64 stay in the CPU caches
#: (measured: one 36 M-entry index for a 100 MB capture took 5x longer per byte than 20 MB ones).
_GATHER_BLOCK = 1 << 20


def _gather_chunks(src: np.ndarray, first: np.ndarray, k: np.ndarray, dst_start: np.ndarray) -> np.ndarray:
    """``src[first[i]:first[i] + k[i]]`` for every i, concatenated (``dst_start`` = where each lands), in blocks
    of about :data:`_GATHER_BLOCK` bytes."""
    out = np.empty(int(dst_start[-1] + k[-1]) if len(k) else 0, np.uint8)
    edges = [*np.searchsorted(dst_start, np.arange(0, len(out), _GATHER_BLOCK)).tolist(), len(k)]
    for a, b in pairwise(edges):
        if a == b:
            continue
        base = int(dst_start[a])
        index = np.repeat(first[a:b] - (dst_start[a:b] - base), k[a:b])
        index += np.arange(len(index))
        out[base:base + len(index)] = src[index]
    return out


def decode_file(path: str) -> FrameTable:
    """Read and decode a trace file; raises TraceError when it holds no armbus interface."""
    trace = read_trace(path)
    trace.require_armbus()
    return decode_trace(trace)


# ------------------------------------------------------------------------------------------------ filters


def parse_time(text: str) -> int:
    """``"1.5"`` (seconds), ``"250ms"``, ``"10us"``, ``"42ns"``, ``"2s"`` -> integer nanoseconds."""
    units = (("ns", 1), ("us", NS_PER_US), ("ms", NS_PER_MS), ("s", NS_PER_S))
    t = text.strip().lower()
    for suffix, scale in units:
        if t.endswith(suffix) and (suffix != "s" or not t.endswith(("ns", "us", "ms"))):
            t, mult = t[: -len(suffix)], scale
            break
    else:
        mult = NS_PER_S
    try:
        return round(float(t) * mult)
    except ValueError:
        raise UsageError(f"time {text!r}: use a number of seconds or a unit: 1.5, 250ms, 10us, 42ns") from None


def type_codes(names: Sequence[str]) -> tuple[set[int], set[int], bool]:
    """Names -> (message types, control frame kinds, line errors wanted). Case-insensitive, numbers accepted."""
    types: set[int] = set()
    kinds: set[int] = set()
    line = False
    for raw in names:
        for name in filter(None, (n.strip().upper().replace("-", "_") for n in raw.split(","))):
            if name in MsgType.__members__:
                types.add(MsgType[name])
            elif name in ("ACK", "RESET", "RESET_ACK"):
                kinds.add(FrameKind[name])
            elif name in ("LINE", "LINE_ERROR", "NOISE"):
                line = True
            elif name.startswith("0X") or name.isdigit():
                types.add(int(name, 0))
            else:
                known = ", ".join([*MsgType.__members__, "ACK", "RESET", "RESET_ACK", "LINE_ERROR"])
                raise UsageError(f"unknown message type {raw!r}; known: {known}")
    return types, kinds, line


def select(table: FrameTable, joint: int | None = None, types: Sequence[str] = (),
           links: Sequence[str] = (), t_from: int | None = None, t_to: int | None = None) -> np.ndarray:
    """Row indices matching every given filter.

    ``joint``: DATA frames from or to that address, broadcasts included (control frames and line errors carry
    no address and are left out). ``types``: message type / frame kind names. ``links``: a link name, or
    ``link:direction``. ``t_from``/``t_to``: ns, inclusive/exclusive.
    """
    mask = np.ones(len(table), bool)
    if joint is not None:
        mask &= (table.src == joint) | (table.dst == joint) | (table.dst == 0xFF)
    if types:
        codes, kinds, line = type_codes(types)
        m = np.isin(table.type, list(codes)) if codes else np.zeros(len(table), bool)
        if kinds:
            m |= np.isin(table.kind, list(kinds))
        if line:
            m |= table.kind == LINE_ERROR
        mask &= m
    if links:
        ids = [i.index for i in table.trace.interfaces if i.link in links or i.name in links]
        if not ids:
            known = sorted({i.link for i in table.trace.interfaces})
            raise UsageError(f"no link named {', '.join(links)} in this trace; links: {', '.join(known)}")
        mask &= np.isin(table.iface, ids)
    if t_from is not None:
        mask &= table.t_ns >= t_from
    if t_to is not None:
        mask &= table.t_ns < t_to
    return np.flatnonzero(mask)


# ------------------------------------------------------------------------------------------------ rendering


def _plain(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _name(enum_cls: Any, value: int) -> str:
    try:
        return str(enum_cls(value).name)
    except ValueError:
        return f"0x{value:02x}"


def record(table: FrameTable, i: int) -> dict[str, Any]:
    """One row as a JSON-ready dictionary (payload fields decoded with armbus.bus.messages)."""
    itf = table.trace.interfaces[int(table.iface[i])]
    rec: dict[str, Any] = {"t_ns": int(table.t_ns[i]), "link": itf.link, "dir": itf.direction}
    kind = int(table.kind[i])
    if kind == LINE_ERROR:
        rec.update(kind="LINE_ERROR", error=_name(LineErrorKind, int(table.error[i])), size=int(table.size[i]))
        return rec
    flags = int(table.flags[i])
    rec.update(kind=_name(FrameKind, kind), seq=int(table.seq[i]), flags=flags,
               retransmit=bool(flags & FrameFlag.RETRANSMIT))
    if kind != FrameKind.DATA:
        return rec
    typ = int(table.type[i])
    payload = table.payloads[int(table.payload_index[i])]
    rec.update(src=int(table.src[i]), dst=int(table.dst[i]), type=_name(MsgType, typ),
               msg_id=int(table.msg_id[i]), ttl=int(table.ttl[i]))
    try:
        rec["fields"] = _plain(asdict(decode_payload(typ, payload)))
    except DecodeError as exc:
        rec["fields"] = {}
        rec["payload_error"] = str(exc)
        rec["payload"] = payload.hex()
    return rec


def format_text(rec: dict[str, Any]) -> str:
    """One human-readable line per record."""
    head = f"{rec['t_ns'] / 1e9:14.9f} {rec['link'] + ':' + rec['dir']:<16} "
    if rec["kind"] == "LINE_ERROR":
        return head + f"!! line error {rec['error']} ({rec['size']} bytes)"
    seq = f"{rec['kind']:<9} seq={rec['seq']:<3}{' R' if rec['retransmit'] else '  '}"
    if rec["kind"] != "DATA":
        return head + seq
    fields = " ".join(f"{k}={v}" for k, v in rec["fields"].items())
    if "payload_error" in rec:
        fields = f"!! {rec['payload_error']} payload={rec['payload']}"
    dst = "*" if rec["dst"] == 0xFF else rec["dst"]
    return head + seq + f" {rec['src']:>3}->{dst:<3} {rec['type']:<15} id={rec['msg_id']:<5} ttl={rec['ttl']:<2} " \
        + fields


def iter_lines(table: FrameTable, rows: np.ndarray, as_json: bool = False) -> Iterator[str]:
    """Rendered lines for ``rows`` (text, or one JSON object per line)."""
    for i in rows.tolist():
        rec = record(table, i)
        yield json.dumps(rec, separators=(",", ":")) if as_json else format_text(rec)


def build_parser(prog: str = "armbus trace decode") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Decode an armbus pcapng trace, one line per frame.")
    p.add_argument("file", help="trace file (.pcapng)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--joint", type=int, help="only DATA frames from/to this address (broadcasts included)")
    p.add_argument("--type", action="append", default=[], help="message type(s), e.g. STATE,ACK,LINE_ERROR")
    p.add_argument("--link", action="append", default=[], help="link name, or link:direction")
    p.add_argument("--from", dest="t_from", help="start time (1.5, 250ms, 10us)")
    p.add_argument("--to", dest="t_to", help="end time (exclusive)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``armbus trace decode FILE [--json] [filters]``. Returns the exit status (2 on a bad file or option)."""
    args = build_parser().parse_args(argv)
    try:
        table = decode_file(args.file)
        rows = select(table, args.joint, args.type, args.link,
                      parse_time(args.t_from) if args.t_from else None,
                      parse_time(args.t_to) if args.t_to else None)
        for w in table.trace.warnings:
            print(f"warning: {w}", file=sys.stderr)
        if not args.json:
            meta = " ".join(f"{k}={v}" for k, v in table.trace.metadata.items())
            print(f"# {args.file}: {len(rows)} of {len(table)} rows; {meta}")
        for line in iter_lines(table, rows, args.json):
            print(line)
    except (TraceError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
    return 0
