"""The reference trace decoder: every interface's chunks through one :class:`armbus.bus.deframer.Deframer`.

Theory of operation
-------------------
This is the decoder :mod:`armbus.hil.trace.decode` used before its columnar path (armbus.bus.batch), kept as the
definition the fast path is tested against and as the benchmark's baseline. Each armbus interface's chunks are joined in
file order and fed to a fresh Deframer in one call; a row's time is the time of the chunk holding its 0x00 delimiter
(piece ends mapped to chunks with ``searchsorted``). If the item count disagrees with the piece count, the interface is
fed again chunk by chunk, which needs no assumption about the deframer's rules. Items become columns in bulk
(``map``/``zip`` in C, ``np.fromiter``); interfaces are merged with a stable sort on time.
"""

from __future__ import annotations

from itertools import compress
from operator import itemgetter
from typing import Any

import numpy as np

from armbus.bus.deframer import Deframer
from armbus.bus.wire import MAX_ENCODED, FrameKind
from armbus.hil.trace.decode import COLUMNS, LINE_ERROR, FrameTable, gc_paused
from armbus.hil.trace.reader import Trace

#: Largest piece the deframer decodes (delimiter excluded); longer pieces are one OVERSIZE error (armbus.bus.deframer).
_MAX_PIECE = MAX_ENCODED - 1
_g0, _g1, _g2, _g3 = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(3)


def decode_trace_reference(trace: Trace) -> FrameTable:
    """Decode ``trace`` through the streaming Deframer: the reference for
    :func:`armbus.hil.trace.decode.decode_trace`."""
    with gc_paused():
        return _decode_trace(trace)


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
        empty = {name: np.zeros(0, np.int64) for name in COLUMNS}
        return FrameTable(trace, **empty, payloads=[], leftover={})
    merged = {name: np.concatenate([p[name] for p in parts]) for name in COLUMNS}
    order = np.argsort(merged["t_ns"], kind="stable")
    return FrameTable(trace, **{k: v[order] for k, v in merged.items()}, payloads=payloads, leftover=leftover)
