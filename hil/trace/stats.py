"""Trace statistics: counts, per-hop and end-to-end latency, retransmissions, line errors, silent gaps.

Theory of operation
-------------------
Everything works on the columns of a :class:`~armbus.hil.trace.decode.FrameTable` with numpy; no per-frame Python.

* Counts: frames per message type / control kind (every hop counts), and *messages* per type: one per distinct
  packet, a packet seen on several hops or retransmitted being the same (src, dst, type, msg_id) within
  :data:`INSTANCE_WINDOW_NS`.
* Per-hop latency: a DATA frame on one direction of a link to the first ACK with its seq on the other direction of
  the same link, measured from the latest (re)transmission before that ACK (so retries do not inflate it; they are
  counted apart). Matching is one sort: rows keyed by (interface where the ACK travels, seq), ordered by time; each
  ACK takes the nearest DATA before it in its key group (``maximum.accumulate`` over row indices).
* End-to-end latency: a request (types that get replies) from its first appearance to the first reply or ERROR
  (src = the requester, same msg_id) on the same link in the opposite direction, i.e. back at the requester.
* Line errors by kind; UNDELIVERABLE messages; silent gaps: per link direction, intervals longer than ``gap_ns``
  between consecutive rows, and from the trace's start and to its end.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from armbus.bus.errors import TraceError, UsageError, exit_code
from armbus.bus.wire import NS_PER_S, FrameFlag, FrameKind, LineErrorKind, MsgType
from armbus.hil.trace.decode import LINE_ERROR, FrameTable, decode_file, parse_time

#: A packet seen again with the same (src, dst, type, msg_id) within this time is the same message (another hop
#: or a retry). 1 s: far above a retried delivery across a long chain (milliseconds), far below the time a host
#: takes to wrap its 16-bit msg_id counter at realistic rates (65536 requests).
INSTANCE_WINDOW_NS = NS_PER_S
#: Default silent-gap threshold: 50 ms, five periods of a 100 Hz state stream / heartbeat.
DEFAULT_GAP_NS = 50_000_000
#: Requests that get a reply (contracts: WRITE, READ, PING, ENUMERATE, SYNC_READ, CYCLE); others only get ERROR.
REPLY_TYPES = (MsgType.PING, MsgType.ENUMERATE, MsgType.READ, MsgType.WRITE, MsgType.SYNC_READ, MsgType.CYCLE)
#: The broadcasts that get a reply (from the chain end); any other broadcast (a WRITE of clear_flags, say) gets none.
BROADCAST_REPLY_TYPES = (MsgType.ENUMERATE, MsgType.SYNC_READ, MsgType.CYCLE)
#: Every unicast request can fail with ERROR; these are measured when an ERROR answers them.
REQUEST_TYPES = (*REPLY_TYPES, MsgType.SET_GOAL, MsgType.TORQUE, MsgType.REBOOT)
_T_BITS = 62  # times relative to the trace start fit in int64 with room to spare


@dataclass
class Latency:
    """Summary of a latency sample in nanoseconds."""

    count: int = 0
    p50_ns: float = 0.0
    p99_ns: float = 0.0
    max_ns: int = 0
    mean_ns: float = 0.0

    @classmethod
    def of(cls, sample: np.ndarray) -> Latency:
        if not len(sample):
            return cls()
        p50, p99 = np.percentile(sample, [50, 99])
        return cls(len(sample), float(p50), float(p99), int(sample.max()), float(sample.mean()))


@dataclass
class TraceStats:
    duration_ns: int
    frames: int
    frames_by_type: dict[str, int]
    messages_by_type: dict[str, int]
    line_errors: dict[str, int]
    retransmissions: int
    undeliverable: int
    hop_latency: dict[str, Latency]  # per link, plus "all"
    e2e_latency: dict[str, Latency]  # per request type, plus "all"
    unanswered_requests: int
    unacked_frames: int
    gaps: list[dict[str, Any]] = field(default_factory=list)
    per_interface: dict[str, dict[str, int]] = field(default_factory=dict)
    hop_samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    e2e_samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("hop_samples")
        d.pop("e2e_samples")
        return d


def _counts(labels: list[str], values: np.ndarray) -> dict[str, int]:
    """Occurrences of each value (small non-negative ints indexing ``labels``), by label, in value order."""
    cnt = np.bincount(values, minlength=len(labels)) if len(values) else np.zeros(0, np.int64)
    return {labels[u]: int(cnt[u]) for u in np.flatnonzero(cnt).tolist()}


def _first_of_runs(sorted_values: np.ndarray) -> np.ndarray:
    """Index of the first element of each run of equal values in a sorted array (np.unique's return_index)."""
    first = np.ones(len(sorted_values), bool)
    first[1:] = sorted_values[1:] != sorted_values[:-1]
    return np.flatnonzero(first)


def _name(enum_cls: Any, v: int) -> str:
    try:
        return str(enum_cls(v).name)
    except ValueError:
        return f"0x{v:02x}"


def _match_previous(key_a: np.ndarray, t_a: np.ndarray, key_b: np.ndarray, t_b: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """For each B row, the latest A row with the same key and t_a <= t_b; first B per A only.

    Returns (index into A, index into B) of the matched pairs.
    """
    na = len(key_a)
    keys = np.concatenate([key_a, key_b])
    times = np.concatenate([t_a, t_b])
    is_b = np.concatenate([np.zeros(na, bool), np.ones(len(key_b), bool)])
    if len(keys) and keys.min() >= 0 and keys.max() <= 0xFFFF:  # e.g. (interface, seq): a radix sort on u16
        by_time = np.lexsort((is_b, times))
        order = by_time[np.argsort(keys[by_time].astype(np.uint16), kind="stable")]  # == lexsort((is_b, times, keys))
    else:
        order = np.lexsort((is_b, times, keys))
    pos = np.arange(len(order))
    last_a = np.maximum.accumulate(np.where(~is_b[order], pos, -1))
    sel = is_b[order] & (last_a >= 0)
    b_pos = pos[sel]
    a_pos = last_a[sel]
    same = keys[order][a_pos] == keys[order][b_pos]
    a_pos, b_pos = a_pos[same], b_pos[same]
    first = _first_of_runs(a_pos)  # a_pos never decreases (a running maximum): the first B after each A
    return order[a_pos[first]], order[b_pos[first]] - na


def _instances(key: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ids): rows that start a new instance of their key (first, or more than INSTANCE_WINDOW_NS after
    the previous row of that key), and each row's instance number."""
    order = np.lexsort((t, key))
    k, tt = key[order], t[order]
    start = np.ones(len(k), bool)
    start[1:] = (k[1:] != k[:-1]) | (tt[1:] - tt[:-1] > INSTANCE_WINDOW_NS)
    mask = np.zeros(len(k), bool)
    mask[order] = start
    ids = np.zeros(len(k), np.int64)
    ids[order] = np.cumsum(start) - 1
    return mask, ids


def compute(table: FrameTable, gap_ns: int = DEFAULT_GAP_NS) -> TraceStats:
    """All statistics of a decoded trace."""
    trace = table.trace
    ifaces = trace.interfaces
    t0 = int(trace.chunk_t_ns.min()) if len(trace) else 0
    t_end = int(trace.chunk_t_ns.max()) if len(trace) else 0
    t = table.t_ns - t0
    kind = table.kind.astype(np.int64)
    typ = table.type.astype(np.int64)
    is_data = kind == FrameKind.DATA
    is_err = kind == LINE_ERROR

    labels = [f"0x{v:02x}" for v in range(256)] + ["ACK", "RESET", "RESET_ACK"]
    for m in MsgType:
        labels[m] = m.name
    label_idx = np.where(is_data, typ, 255 + kind)[~is_err]
    frames_by_type = _counts(labels, label_idx)
    pkey = (table.src.astype(np.int64) << 32) | (table.dst.astype(np.int64) << 24) | (typ << 16) \
        | table.msg_id.astype(np.int64)
    d_rows = np.flatnonzero(is_data)
    inst, _ = _instances(pkey[d_rows], t[d_rows])
    msg_rows = d_rows[inst]
    messages_by_type = _counts(labels, typ[msg_rows])
    line_errors = _counts([_name(LineErrorKind, i) for i in range(256)], table.error[is_err].astype(np.int64))
    retrans = is_data & ((table.flags & FrameFlag.RETRANSMIT) != 0)

    # Per-hop: DATA keyed by the interface its ACK travels on; ACK keyed by its own interface.
    opposite = np.full(len(ifaces) + 1, -1, np.int64)
    for a in ifaces:
        for b in ifaces:
            if a.armbus and b.armbus and a.link == b.link and a.index != b.index:
                opposite[a.index] = b.index
    iface = table.iface.astype(np.int64)
    seq = table.seq.astype(np.int64)
    acks = np.flatnonzero(kind == FrameKind.ACK)
    data_opp = opposite[iface[d_rows]]
    ok = data_opp >= 0
    a_idx, b_idx = _match_previous((data_opp[ok] << 8) | seq[d_rows][ok], t[d_rows][ok],
                                   (iface[acks] << 8) | seq[acks], t[acks])
    hop_data_rows, hop_ack_rows = d_rows[ok][a_idx], acks[b_idx]
    hop = t[hop_ack_rows] - t[hop_data_rows]
    hop_latency = {"all": Latency.of(hop)}
    for link in sorted({i.link for i in ifaces if i.armbus}):
        ids = [i.index for i in ifaces if i.link == link]
        hop_latency[link] = Latency.of(hop[np.isin(iface[hop_data_rows], ids)])
    # A DATA frame (all transmissions of one seq and packet on one link direction) is unacked when no
    # transmission of it got an ACK.
    fkey = (iface[d_rows][ok] << 48) | (seq[d_rows][ok] << 40) | (table.src[d_rows][ok].astype(np.int64) << 24) \
        | (table.dst[d_rows][ok].astype(np.int64) << 16) | table.msg_id[d_rows][ok].astype(np.int64)
    starts, fid = _instances(fkey, t[d_rows][ok])
    acked = np.zeros(len(fid) + 1, bool)
    acked[fid[a_idx]] = True
    unacked = int(starts.sum()) - int(acked.sum())

    # End to end: request instance's first row -> reply to the requester on the opposite direction of that link.
    # Broadcasts that get a reply (ENUMERATE, SYNC_READ, CYCLE) count as the host sent them: their reply comes
    # back to the host from the chain end, while the copies the joints forward are theirs, answered by nobody.
    req_type = np.isin(typ[msg_rows], REQUEST_TYPES)
    from_host_bcast = ((table.dst[msg_rows] == 0xFF) & (table.src[msg_rows] == 0)
                       & np.isin(typ[msg_rows], BROADCAST_REPLY_TYPES))
    req_rows = msg_rows[req_type & ((table.dst[msg_rows] != 0xFF) | from_host_bcast)]
    rep_rows = d_rows[((typ[d_rows] & 0x80) != 0)]
    rk_req = (table.src[req_rows].astype(np.int64) << 40) | (table.msg_id[req_rows].astype(np.int64) << 16) \
        | opposite[iface[req_rows]]
    rk_rep = (table.dst[rep_rows].astype(np.int64) << 40) | (table.msg_id[rep_rows].astype(np.int64) << 16) \
        | iface[rep_rows]
    valid = opposite[iface[req_rows]] >= 0
    a_idx, b_idx = _match_previous(rk_req[valid], t[req_rows][valid], rk_rep, t[rep_rows])
    m_req, m_rep = req_rows[valid][a_idx], rep_rows[b_idx]
    e2e = t[m_rep] - t[m_req]
    e2e_latency = {"all": Latency.of(e2e)}
    for ty in np.flatnonzero(np.bincount(typ[m_req], minlength=256)).tolist():
        e2e_latency[_name(MsgType, ty)] = Latency.of(e2e[typ[m_req] == ty])
    expected = np.isin(typ[req_rows], REPLY_TYPES)
    answered = np.zeros(len(req_rows), bool)
    answered[np.flatnonzero(valid)[a_idx]] = True
    unanswered = int((expected & ~answered).sum())

    # Silent gaps per interface, including the start and end of the trace.
    gaps: list[dict[str, Any]] = []
    per_interface: dict[str, dict[str, int]] = {}
    for itf in ifaces:
        if not itf.armbus:
            continue
        rows = np.flatnonzero(iface == itf.index)
        per_interface[itf.name] = {
            "frames": int((~is_err[rows]).sum()), "line_errors": int(is_err[rows].sum()),
            "retransmissions": int(retrans[rows].sum()), "bytes": int(trace.chunk_len[trace.chunk_iface
                                                                                     == itf.index].sum()),
        }
        edges = np.concatenate([[0], t[rows], [t_end - t0]])
        d = np.diff(edges)
        for j in np.flatnonzero(d > gap_ns).tolist():
            gaps.append({"interface": itf.name, "start_ns": int(edges[j]) + t0, "length_ns": int(d[j])})
    gaps.sort(key=lambda g: -g["length_ns"])

    return TraceStats(
        duration_ns=t_end - t0, frames=int((~is_err).sum()), frames_by_type=frames_by_type,
        messages_by_type=messages_by_type, line_errors=line_errors, retransmissions=int(retrans.sum()),
        undeliverable=int((typ[msg_rows] == MsgType.UNDELIVERABLE).sum()), hop_latency=hop_latency,
        e2e_latency=e2e_latency, unanswered_requests=unanswered, unacked_frames=unacked, gaps=gaps,
        per_interface=per_interface, hop_samples=hop, e2e_samples=e2e,
    )


def _us(ns: float) -> str:
    return f"{ns / 1000:.1f}us"


def format_text(s: TraceStats, max_gaps: int = 10) -> str:
    out = [f"duration {s.duration_ns / 1e9:.6f} s, {s.frames} frames, {s.retransmissions} retransmissions, "
           f"{sum(s.line_errors.values())} line errors, {s.undeliverable} undeliverable, "
           f"{s.unanswered_requests} unanswered requests, {s.unacked_frames} unacked DATA transmissions"]
    out.append("frames by type:   " + ", ".join(f"{k}={v}" for k, v in sorted(s.frames_by_type.items())))
    out.append("messages by type: " + ", ".join(f"{k}={v}" for k, v in sorted(s.messages_by_type.items())))
    if s.line_errors:
        out.append("line errors:      " + ", ".join(f"{k}={v}" for k, v in sorted(s.line_errors.items())))
    for title, lat in (("hop latency (DATA->ACK)", s.hop_latency), ("end-to-end latency", s.e2e_latency)):
        out.append(f"{title}:")
        for k, v in lat.items():
            out.append(f"  {k:<20} n={v.count:<8} p50={_us(v.p50_ns):>10} p99={_us(v.p99_ns):>10} "
                       f"max={_us(v.max_ns):>10}")
    out.append("per interface:")
    for name, counts in s.per_interface.items():
        out.append(f"  {name:<24} " + " ".join(f"{a}={b}" for a, b in counts.items()))
    out.append(f"silent gaps: {len(s.gaps)}")
    for g in s.gaps[:max_gaps]:
        out.append(f"  {g['interface']:<24} at {g['start_ns'] / 1e9:.6f} s for {g['length_ns'] / 1e6:.3f} ms")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """``armbus trace stats FILE [--json] [--gap 50ms]``. Returns the exit status (2 on a bad file/option)."""
    p = argparse.ArgumentParser(prog="armbus trace stats", description="Summarise an armbus pcapng trace.")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--gap", default="50ms", help="silent-gap threshold (default 50ms)")
    args = p.parse_args(argv)
    try:
        table = decode_file(args.file)
        stats = compute(table, parse_time(args.gap))
    except (TraceError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    for w in table.trace.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(json.dumps(stats.as_dict()) if args.json else format_text(stats))
    return 0
