"""Compare two frame sequences (recorded vs replayed answers), ignoring what legitimately varies.

Theory of operation
-------------------
Each frame (or line error) becomes a :class:`Row`: its time, the decoded item, and a *key*: a hashable tuple of
every field that must be equal, with the fields that may legitimately differ left out (the list is in
docs/traces.md, "Replay"):

* RESET / RESET_ACK sequence numbers: they are nonces drawn at random by each endpoint;
* HEARTBEAT ``host_time_ms``: the host's clock;
* measured values -- STATE position, velocity, current, temperature, voltage, and the same registers
  (``present_position`` .. ``present_voltage``) inside READ_REPLY, SYNC_READ_REPLY and CYCLE_REPLY data -- are
  left out of the key and compared afterwards within a tolerance (:class:`Tolerances`);
* CYCLE_REPLY ``age_us``: when in its control period a joint's sample was taken (a clock phase, not behaviour);
* with ``ignore_seq`` (a capture that starts mid-stream): link sequence numbers of DATA and ACK frames, and the
  msg_id of unsolicited messages (STATE, FAULT, UNDELIVERABLE), which count on from whatever came before.

The two key lists are aligned with :class:`difflib.SequenceMatcher` (no junk heuristic), so one missing or
extra frame shows as one difference instead of shifting every later pair. Matched pairs then have their
measured values checked within the tolerances; in a replaced stretch, frames are paired in order and each pair's
differing fields are named. Replayed frames that come after the end of the recording and match nothing are
not differences (the recording stopped before them); they are counted in :attr:`Comparison.beyond_end`.
"""

from __future__ import annotations

import difflib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from armbus.bus.codec import Frame, LineError
from armbus.bus.deframer import Deframer
from armbus.bus.errors import DecodeError
from armbus.bus.messages import CycleReply, ReadReply, State, SyncReadReply, decode_payload
from armbus.bus.wire import FrameFlag, FrameKind, LineErrorKind, MsgType
from armbus.joints.registers import BY_NAME

#: Measured registers (joints/registers.py): (name, address, struct format); compared within a tolerance.
MEASURED = tuple((name, BY_NAME[name].address, fmt) for name, fmt in (
    ("present_position", "<i"), ("present_velocity", "<i"), ("present_current", "<h"),
    ("present_temperature", "<h"), ("present_voltage", "<H")))
_STATE_FIELDS = {"present_position": "position", "present_velocity": "velocity", "present_current": "current",
                 "present_temperature": "temperature", "present_voltage": "voltage"}
_UNSOLICITED = (MsgType.STATE, MsgType.FAULT, MsgType.UNDELIVERABLE)
_RETRANSMIT = int(FrameFlag.RETRANSMIT)


@dataclass(frozen=True)
class Tolerances:
    """Largest accepted difference of each measured value, in register units.

    Defaults: what a real arm replaying the same goals varies by between two runs, not what a simulation does
    (a seeded simulation repeats exactly): position 20 000 urad (~1.1 deg, a few encoder counts plus tracking
    error), velocity 200 000 urad/s, current 200 mA (load and friction), temperature 50 (5 degC, the winding
    warms up), voltage 500 mV (supply sag).
    """

    present_position: int = 20_000
    present_velocity: int = 200_000
    present_current: int = 200
    present_temperature: int = 50
    present_voltage: int = 500

    def of(self, name: str) -> int:
        return int(getattr(self, name))


@dataclass(frozen=True)
class Row:
    """One decoded item at time ``t_ns`` with its comparison key and measured values {name: value}."""

    t_ns: int
    item: Frame | LineError
    key: tuple[Any, ...]
    measured: tuple[tuple[str, int], ...]


@dataclass
class Comparison:
    """Outcome of :func:`compare`: human-readable differences, and counts."""

    differences: list[str] = field(default_factory=list)
    matched: int = 0
    beyond_end: int = 0
    #: replayed time minus recorded time of every matched pair (ns), for timing reports.
    shifts: list[int] = field(default_factory=list)


def _mask_measured(reg: int, data: bytes, prefix: tuple[Any, ...]) -> tuple[bytes, list[tuple[str, int]]]:
    """``data`` read from ``reg`` with the measured registers' bytes zeroed, and those values."""
    masked = bytearray(data)
    values = []
    for name, addr, fmt in MEASURED:
        off = addr - reg
        size = struct.calcsize(fmt)
        if off >= 0 and off + size <= len(data):
            values.append((f"{'/'.join(map(str, prefix))}{'/' if prefix else ''}{name}",
                           struct.unpack_from(fmt, data, off)[0]))
            masked[off:off + size] = bytes(size)
    return bytes(masked), values


def _payload_key(typ: int, payload: bytes) -> tuple[Any, list[tuple[str, int]]]:
    """Payload part of a key (measured values masked out) and the measured values."""
    try:
        msg = decode_payload(typ, payload)
    except DecodeError:
        return payload, []
    if isinstance(msg, State):
        return ("state", msg.status), [(n, getattr(msg, f)) for n, f in _STATE_FIELDS.items()]
    if typ == MsgType.HEARTBEAT:
        return ("heartbeat",), []
    if isinstance(msg, ReadReply):
        data, values = _mask_measured(msg.reg, msg.data, ())
        return ("read_reply", msg.reg, data), values
    if isinstance(msg, SyncReadReply):
        recs = []
        values = []
        for r in msg.records:
            data, v = _mask_measured(msg.reg, r.data, (f"j{r.address}",))
            recs.append((r.address, r.status, data))
            values += v
        return ("sync_read_reply", msg.reg, msg.length, tuple(recs)), values
    if isinstance(msg, CycleReply):
        cycle_recs = []
        values = []
        for c in msg.records:
            data, v = _mask_measured(msg.reg, c.data, (f"j{c.address}",))
            cycle_recs.append((c.address, c.status, c.result, data))
            values += v
        return ("cycle_reply", msg.reg, msg.length, tuple(cycle_recs)), values
    return payload, []


def make_row(t_ns: int, item: Frame | LineError, ignore_seq: bool = False) -> Row:
    """A :class:`Row` with the key described in the module docstring."""
    if isinstance(item, LineError):
        return Row(t_ns, item, ("LINE", int(item.kind), int(item.size)), ())
    kind, seq, flags, packet = int(item.kind), int(item.seq), int(item.flags), item.packet
    if kind in (FrameKind.RESET, FrameKind.RESET_ACK) or ignore_seq:
        seq = -1
    if packet is None:
        return Row(t_ns, item, (kind, seq, flags), ())
    msg_id = -1 if ignore_seq and packet.type in _UNSOLICITED else packet.msg_id
    pkey, measured = _payload_key(packet.type, packet.payload)
    return Row(t_ns, item, (kind, seq, flags, packet.src, packet.dst, packet.type, msg_id, packet.ttl, pkey),
               tuple(measured))


def decode_rows(chunks: Iterable[tuple[int, bytes]], ignore_seq: bool = False,
                packets: bool = False) -> tuple[list[Row], int]:
    """Rows of a byte stream given as ``(t_ns, chunk)``; an item's time is that of the chunk that ends it.
    Also returns how many bytes of an unfinished frame are left at the end. With ``packets``, only the packets
    count: DATA frames keyed without their link fields (seq, flags), retransmissions dropped; control frames and
    line noise belong to the link session that carried them (a tap capture's arm had its own)."""
    deframer = Deframer()
    rows = []
    for t, data in chunks:
        for item in deframer.feed(data):
            if not packets:
                rows.append(make_row(t, item, ignore_seq))
            elif isinstance(item, Frame) and item.packet is not None and not item.flags & _RETRANSMIT:
                row = make_row(t, item, True)
                key = ("PACKET", *row.key[3:])
                if not rows or rows[-1].key != key:  # a duplicate the link delivered again
                    rows.append(Row(row.t_ns, row.item, key, row.measured))
    return rows, deframer.buffered


def describe(item: Frame | LineError) -> str:
    """One short line naming a frame."""
    if isinstance(item, LineError):
        return f"line error {_name(LineErrorKind, item.kind)} ({item.size} bytes)"
    head = f"{_name(FrameKind, item.kind)} seq={item.seq}"
    p = item.packet
    if p is None:
        return head
    dst = "*" if p.dst == 0xFF else str(p.dst)
    return f"{head} {p.src}->{dst} {_name(MsgType, p.type)} id={p.msg_id} ttl={p.ttl} payload={p.payload.hex()}"


def _name(enum_cls: Any, value: int) -> str:
    try:
        return str(enum_cls(value).name)
    except ValueError:
        return f"0x{value:02x}"


def _field_diffs(a: Row, b: Row) -> list[str]:
    """Names and values of the fields in which two rows differ (keys compared field by field)."""
    names = ("kind", "seq", "flags", "src", "dst", "type", "msg_id", "ttl", "payload")
    out = []
    for name, x, y in zip(names, a.key, b.key, strict=False):
        if x != y:
            if name == "payload" and isinstance(a.item, Frame) and isinstance(b.item, Frame):
                x = a.item.packet.payload.hex() if a.item.packet else x
                y = b.item.packet.payload.hex() if b.item.packet else y
            out.append(f"{name} {x} != {y}")
    if len(a.key) != len(b.key) and not out:
        out.append("frame kind differs")
    return out


def _measured_diffs(a: Row, b: Row, tol: Tolerances) -> list[str]:
    out = []
    got = dict(b.measured)
    for name, value in a.measured:
        if name not in got:
            continue
        limit = tol.of(name.rsplit("/", 1)[-1])
        if abs(got[name] - value) > limit:
            out.append(f"{name} {value} != {got[name]} (tolerance {limit})")
    return out


def compare(recorded: Sequence[Row], replayed: Sequence[Row], tolerances: Tolerances | None = None,
            end_ns: int | None = None) -> Comparison:
    """Align ``replayed`` with ``recorded`` and list the differences (see the module docstring).

    ``end_ns``: time the recording ends, on the replayed rows' time base; unmatched replayed rows after it
    are counted in ``beyond_end``, not reported.
    """
    tol = tolerances or Tolerances()
    out = Comparison()

    def at(r: Row) -> str:
        return f"{r.t_ns / 1e9:.6f}s"

    def pair(ia: int, ib: int, diffs: list[str]) -> None:
        a, b = recorded[ia], replayed[ib]
        out.differences.append(f"recorded #{ia} at {at(a)} vs replayed #{ib} at {at(b)}: {describe(a.item)}: "
                               + "; ".join(diffs))

    matcher = difflib.SequenceMatcher(None, [r.key for r in recorded], [r.key for r in replayed], autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            for ia, ib in zip(range(a0, a1), range(b0, b1), strict=True):
                a, b = recorded[ia], replayed[ib]
                out.matched += 1
                out.shifts.append(b.t_ns - a.t_ns)
                diffs = _measured_diffs(a, b, tol)
                if diffs:
                    pair(ia, ib, diffs)
            continue
        n = min(a1 - a0, b1 - b0)
        for ia, ib in zip(range(a0, a0 + n), range(b0, b0 + n), strict=True):
            a, b = recorded[ia], replayed[ib]
            pair(ia, ib, _field_diffs(a, b) + _measured_diffs(a, b, tol))
        for ia in range(a0 + n, a1):
            a = recorded[ia]
            out.differences.append(f"recorded #{ia} at {at(a)} missing from the replay: {describe(a.item)}")
        for ib in range(b0 + n, b1):
            b = replayed[ib]
            if end_ns is not None and b.t_ns > end_ns and b1 == len(replayed):
                out.beyond_end += 1
                continue
            out.differences.append(f"replayed #{ib} at {at(b)} not in the recording: {describe(b.item)}")
    return out
