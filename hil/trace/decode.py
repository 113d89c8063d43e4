"""Decode a trace: chunks -> frames per link direction, as numpy columns; filters; text and JSON lines.

Theory of operation
-------------------
Each interface of a trace is one direction of one link. Its chunks are joined in file order into one byte string
and fed to one :class:`bus.deframer.Deframer` in a single call: the deframer does every check (COBS, CRC,
version, kind, length, type) and returns one item -- a ``Frame`` or a ``LineError`` -- per non-empty
delimiter-separated piece. A frame's time is the time of the chunk that holds its 0x00 delimiter, i.e. when the
receiver could have decoded it. The piece ends are found with numpy (positions of 0x00 preceded by a non-zero
byte) and mapped to chunk times with ``searchsorted``. If the item count ever disagrees with the piece count (a
change in the deframer's rules), the interface is decoded again chunk by chunk, which needs no such assumption.

Items are then turned into columns in bulk (``map``/``zip`` in C, ``np.fromiter``), never one Python record per
frame, and all interfaces are merged in time order. :class:`FrameTable` is what :mod:`hil.trace.stats` works on;
per-frame dictionaries (:func:`record`) are built only for the rows that are printed.

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
from itertools import compress
from operator import itemgetter
from typing import Any

import numpy as np

from bus.deframer import Deframer
from bus.errors import DecodeError, TraceError, UsageError
from bus.messages import decode_payload
from bus.wire import MAX_ENCODED, FrameFlag, FrameKind, LineErrorKind, MsgType
from hil.trace.reader import Trace, read_trace

#: ``kind`` of a row that is a line error rather than a frame.
LINE_ERROR = -1
#: Largest piece the deframer decodes (delimiter excluded); longer pieces are one OVERSIZE error (bus.deframer).
_MAX_PIECE = MAX_ENCODED - 1
_COLUMNS = ("t_ns", "iface", "kind", "seq", "flags", "src", "dst", "type", "msg_id", "ttl", "error", "size",
            "payload_index")
_g0, _g1, _g2, _g3 = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(3)


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
    payloads: list[bytes]
    leftover: dict[int, int]  # interface -> bytes of an unfinished frame at the end of the trace

    def __len__(self) -> int:
        return len(self.t_ns)


def _columns_from_items(items: list[Any], t_ns: np.ndarray, iface: int) -> dict[str, Any]:
    """Bulk conversion of deframer items to columns (C-level map/zip; no per-item Python code)."""
    n = len(items)
    lens = np.fromiter(map(len, items), np.int8, n)
    is_err = lens == 2  # LineError(kind, size) has 2 fields, Frame(kind, seq, flags, packet) has 4
    first = np.fromiter(map(_g0, items), np.int16, n)
    second = np.fromiter(map(_g1, items), np.int32, n)
    frames = items if not is_err.any() else list(compress(items, (~is_err).tolist()))
    fr_rows = np.flatnonzero(~is_err)
    cols: dict[str, Any] = {
        "t_ns": t_ns,
        "iface": np.full(n, iface, np.int16),
        "kind": np.where(is_err, LINE_ERROR, first).astype(np.int8),
        "seq": np.where(is_err, 0, second).astype(np.int16),
        "error": np.where(is_err, first, 0).astype(np.int8),
        "size": np.where(is_err, second, 0).astype(np.int32),
        "flags": np.zeros(n, np.int16),
    }
    for name in ("src", "dst", "type", "ttl"):
        cols[name] = np.full(n, -1, np.int16)
    cols["msg_id"] = np.full(n, -1, np.int32)
    cols["payload_index"] = np.full(n, -1, np.int32)
    cols["payloads"] = []
    if not frames:
        return cols
    cols["flags"][fr_rows] = np.fromiter(map(_g2, frames), np.int16, len(frames))
    packets = list(map(_g3, frames))
    is_data = cols["kind"][fr_rows] == FrameKind.DATA
    data_rows = fr_rows[is_data]
    if len(data_rows):
        dp = packets if is_data.all() else list(compress(packets, is_data.tolist()))
        src, dst, typ, mid, ttl, payloads = zip(*dp, strict=True)
        cols["src"][data_rows] = src
        cols["dst"][data_rows] = dst
        cols["type"][data_rows] = typ
        cols["msg_id"][data_rows] = mid
        cols["ttl"][data_rows] = ttl
        cols["payload_index"][data_rows] = np.arange(len(dp), dtype=np.int32)
        cols["payloads"] = list(payloads)
    return cols


def _decode_interface(trace: Trace, iface: int) -> tuple[dict[str, Any], int]:
    sel = np.flatnonzero(trace.chunk_iface == iface)
    offs, lens, times = trace.chunk_off[sel], trace.chunk_len[sel], trace.chunk_t_ns[sel]
    mv = memoryview(trace.buffer)
    blob = b"".join(map(trace.buffer.__getitem__, map(slice, offs.tolist(), (offs + lens).tolist())))
    deframer = Deframer()
    items = deframer.feed(blob)
    arr = np.frombuffer(blob, np.uint8)
    delim = np.flatnonzero(arr == 0)
    prev = np.empty_like(delim)
    prev[:1] = -1
    prev[1:] = delim[:-1]
    ends = delim[delim - prev > 1]  # each 0x00 that ends a non-empty piece
    tail = len(blob) - (int(delim[-1]) + 1 if len(delim) else 0)
    if tail > _MAX_PIECE:
        ends = np.append(ends, len(blob) - 1)
    if len(ends) == len(items):
        t_ns = times[np.searchsorted(np.cumsum(lens), ends, side="right")]
    else:  # the deframer's rules changed: fall back to feeding chunk by chunk (exact, slower)
        deframer = Deframer()
        items, tl = [], []
        for t, o, n in zip(times.tolist(), offs.tolist(), lens.tolist(), strict=True):
            out = deframer.feed(bytes(mv[o:o + n]))
            items.extend(out)
            tl.extend([t] * len(out))
        t_ns = np.asarray(tl, dtype=np.int64)
    return _columns_from_items(items, t_ns.astype(np.int64), iface), deframer.buffered


@contextmanager
def _gc_paused() -> Iterator[None]:
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
    with _gc_paused():
        return _decode_trace(trace)


def _decode_trace(trace: Trace) -> FrameTable:
    parts = []
    leftover = {}
    payloads: list[bytes] = []
    for itf in trace.interfaces:
        if not itf.armbus:
            continue
        cols, left = _decode_interface(trace, itf.index)
        if left:
            leftover[itf.index] = left
        pi = cols["payload_index"]
        pi[pi >= 0] += len(payloads)
        payloads.extend(cols.pop("payloads"))
        parts.append(cols)
    if not parts:
        empty = {name: np.zeros(0, np.int64) for name in _COLUMNS}
        return FrameTable(trace, **empty, payloads=[], leftover={})
    merged = {name: np.concatenate([p[name] for p in parts]) for name in _COLUMNS}
    order = np.argsort(merged["t_ns"], kind="stable")
    return FrameTable(trace, **{k: v[order] for k, v in merged.items()}, payloads=payloads, leftover=leftover)


def decode_file(path: str) -> FrameTable:
    """Read and decode a trace file; raises TraceError when it holds no armbus interface."""
    trace = read_trace(path)
    trace.require_armbus()
    return decode_trace(trace)


# ------------------------------------------------------------------------------------------------ filters


def parse_time(text: str) -> int:
    """``"1.5"`` (seconds), ``"250ms"``, ``"10us"``, ``"42ns"``, ``"2s"`` -> integer nanoseconds."""
    units = (("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000))
    t = text.strip().lower()
    for suffix, scale in units:
        if t.endswith(suffix) and (suffix != "s" or not t.endswith(("ns", "us", "ms"))):
            t, mult = t[: -len(suffix)], scale
            break
    else:
        mult = 1_000_000_000
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
    """One row as a JSON-ready dictionary (payload fields decoded with bus.messages)."""
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
        return 2
    except BrokenPipeError:  # output piped into head & co.
        sys.stderr.close()
    return 0
