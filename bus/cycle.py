"""The cyclic exchange's two payloads: CYCLE (goals down, shrinking) and CYCLE_REPLY (records up, growing).

Theory of operation
-------------------
One control cycle is one CYCLE broadcast and one CYCLE_REPLY (docs/protocol.md, "The cyclic exchange"):

* **CYCLE** (host -> BROADCAST) carries what every joint reads back (``reg``, ``length``: the same span from
  each), the goal mode of the cycle (``mode``: a :class:`~armbus.bus.wire.GoalMode`, or :data:`NO_GOALS`), and one
  i32 goal per joint from address ``first`` on. Each joint takes its slice and forwards the rest
  (:meth:`Cycle.rest_after`): the frame shrinks by four bytes per hop. Slices run out before the chain does when
  the host commands fewer joints; the header still travels to the chain end, since every joint answers.
* **CYCLE_REPLY** (joint -> HOST) is started by the chain end with its own record; every joint above appends its
  own (:meth:`CycleReply.with_record`) and forwards it: the frame grows by one record per hop, and records come
  in chain-end-first order. A record is the joint's address, its status flags, a ``result`` byte (read outcome
  in the high nibble, goal outcome in the low one: :func:`result_byte`) and the age of its sample in
  microseconds when the joint handed the reply to its link (saturating at :data:`AGE_MAX_US`), then ``length``
  bytes of registers.

Decoding is strict, like every payload: a short header, slices that are not whole i32s, goals with mode
:data:`NO_GOALS`, or records that are not whole ``5 + length``-byte units are DecodeError LENGTH.

The joints' per-frame path: every joint edits both frames on their way, a thousand times a second each, so it
works on the payload bytes instead of building the message objects and packing them again. :func:`cycle_head`
and :func:`reply_head` check a payload exactly as :meth:`Cycle.unpack` and :meth:`CycleReply.unpack` do and return
its header; :func:`rest_payload` is ``Cycle.rest_after(address).pack()`` and :func:`append_record` is
``CycleReply.with_record(record).pack()``, byte for byte, with the same checks and errors (the payload being one
that decoded).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from armbus.bus.errors import DecodeError, EncodeError
from armbus.bus.payload import Message, check_u, fit, need
from armbus.bus.wire import LineErrorKind, MsgType

#: CYCLE header: reg u16, length u8, mode u8, first u8; then one i32 goal per slice.
CYCLE_HEADER = struct.Struct("<HBBB")
GOAL = struct.Struct("<i")
#: CYCLE_REPLY header (reg u16, length u8) and each record's head (address, status, result, age_us u16).
REPLY_HEADER = struct.Struct("<HB")
RECORD_HEAD = struct.Struct("<BBBH")
#: ``mode`` of a read-only cycle: no slices follow, no joint changes its goal.
NO_GOALS = 0
#: Goal outcome (low nibble of ``result``): 0 the goal was taken; 1..7 the ErrorKind that refused it
#: (BUSY: e-stopped, faulted or watchdog-stopped; LIMIT: outside the register's range or an unknown mode);
#: GOAL_NONE: this cycle had no slice for the joint.
GOAL_TAKEN, GOAL_NONE = 0x0, 0xF
#: Read outcome (high nibble): 0, or the ErrorKind of a read the register table refused (data then zeros).
READ_OK = 0x0
#: The largest age a record can say; older samples say this.
AGE_MAX_US = 0xFFFF
_CYCLE_HEAD, _GOAL, _REPLY_HEAD, _RECORD_HEAD = CYCLE_HEADER.size, GOAL.size, REPLY_HEADER.size, RECORD_HEAD.size
_unpack_cycle_head, _pack_cycle_head, _unpack_goal = CYCLE_HEADER.unpack_from, CYCLE_HEADER.pack, GOAL.unpack_from
_unpack_reply_head, _pack_record_head = REPLY_HEADER.unpack_from, RECORD_HEAD.pack


def cycle_size(slices: int) -> int:
    """Payload bytes of a CYCLE carrying ``slices`` goals."""
    return CYCLE_HEADER.size + GOAL.size * slices


def reply_size(records: int, length: int) -> int:
    """Payload bytes of a CYCLE_REPLY carrying ``records`` records of ``length`` register bytes."""
    return REPLY_HEADER.size + (RECORD_HEAD.size + length) * records


def result_byte(read: int, goal: int) -> int:
    """The record's ``result`` byte from a read outcome and a goal outcome (each 0..15)."""
    return (read & 0xF) << 4 | (goal & 0xF)


@dataclass(frozen=True)
class Cycle(Message):
    """One control cycle's request: goals for joints ``first`` .. ``first + len(goals) - 1``, and a read span."""

    TYPE = MsgType.CYCLE
    reg: int
    length: int
    mode: int = NO_GOALS
    first: int = 1
    goals: tuple[int, ...] = ()

    def pack(self) -> bytes:
        check_u("reg", self.reg, 0xFFFF)
        check_u("length", self.length, 0xFF)
        check_u("mode", self.mode, 0xFF)
        check_u("first", self.first, 0xFF)
        if self.mode == NO_GOALS and self.goals:
            raise EncodeError("goals", "a cycle with mode 0 (no goals) carries no slices")
        out = bytearray(CYCLE_HEADER.pack(self.reg, self.length, self.mode, self.first))
        for i, g in enumerate(self.goals):
            if not isinstance(g, int) or not -0x80000000 <= g <= 0x7FFFFFFF:
                raise EncodeError(f"goals[{i}]", f"{g!r} is not an i32")
            out += GOAL.pack(g)
        return fit("goals", bytes(out))

    @classmethod
    def unpack(cls, payload: bytes) -> Cycle:
        need(cls, payload, CYCLE_HEADER.size)
        reg, length, mode, first = CYCLE_HEADER.unpack_from(payload)
        body = payload[CYCLE_HEADER.size:]
        if len(body) % GOAL.size:
            raise DecodeError(LineErrorKind.LENGTH, f"CYCLE: {len(body)} bytes of goals is not n x 4")
        if mode == NO_GOALS and body:
            raise DecodeError(LineErrorKind.LENGTH, "CYCLE: goals with mode 0 (no goals)")
        goals = tuple(v for (v,) in GOAL.iter_unpack(body))
        return cls(reg, length, mode, first, goals)

    def slice_for(self, address: int) -> int | None:
        """The goal for ``address``, or None when this cycle has none for it."""
        i = address - self.first
        return self.goals[i] if 0 <= i < len(self.goals) else None

    def rest_after(self, address: int) -> Cycle:
        """What joint ``address`` forwards: the slices for the joints below it only."""
        skip = max(0, address - self.first + 1)
        return Cycle(self.reg, self.length, self.mode, max(self.first, address + 1), self.goals[skip:])


class CycleHead(NamedTuple):
    """A checked CYCLE payload's header and slice count (see :func:`cycle_head`)."""

    reg: int
    length: int
    mode: int
    first: int
    slices: int


def cycle_head(payload: bytes) -> CycleHead:
    """The header of a CYCLE payload, checked as :meth:`Cycle.unpack` checks it (DecodeError LENGTH)."""
    size = len(payload)
    if size < _CYCLE_HEAD:
        raise DecodeError(LineErrorKind.LENGTH, f"CYCLE payload is {size} bytes, need >= {_CYCLE_HEAD}")
    reg, length, mode, first = _unpack_cycle_head(payload)
    body = size - _CYCLE_HEAD
    if body % _GOAL:
        raise DecodeError(LineErrorKind.LENGTH, f"CYCLE: {body} bytes of goals is not n x 4")
    if mode == NO_GOALS and body:
        raise DecodeError(LineErrorKind.LENGTH, "CYCLE: goals with mode 0 (no goals)")
    return CycleHead(reg, length, mode, first, body // _GOAL)


def slice_at(payload: bytes, head: CycleHead, address: int) -> int | None:
    """``Cycle.slice_for(address)`` of a checked payload."""
    i = address - head.first
    return _unpack_goal(payload, _CYCLE_HEAD + _GOAL * i)[0] if 0 <= i < head.slices else None


def rest_payload(payload: bytes, head: CycleHead, address: int) -> tuple[bytes, int]:
    """What joint ``address`` forwards (``Cycle.rest_after(address).pack()``) and how many slices it keeps."""
    skip = min(max(0, address - head.first + 1), head.slices)
    first = max(head.first, address + 1)
    if first > 0xFF:  # no joint has such an address; refused as packing the message refuses it
        check_u("first", first, 0xFF)
    rest = _pack_cycle_head(head.reg, head.length, head.mode, first)
    return rest + payload[_CYCLE_HEAD + _GOAL * skip:], head.slices - skip


def reply_head(payload: bytes) -> tuple[int, int]:
    """``(reg, length)`` of a CYCLE_REPLY payload, checked as :meth:`CycleReply.unpack` checks it."""
    size = len(payload)
    if size < _REPLY_HEAD:
        raise DecodeError(LineErrorKind.LENGTH, f"CYCLE_REPLY payload is {size} bytes, need >= {_REPLY_HEAD}")
    reg, length = _unpack_reply_head(payload)
    if (size - _REPLY_HEAD) % (_RECORD_HEAD + length):
        raise DecodeError(LineErrorKind.LENGTH,
                          f"CYCLE_REPLY: records are not whole {_RECORD_HEAD + length}-byte units")
    return reg, length


def append_record(payload: bytes, length: int, address: int, status: int, result: int, age_us: int,
                  data: bytes) -> bytes:
    """A checked CYCLE_REPLY payload with one more record (``CycleReply.with_record(...).pack()``): EncodeError,
    as there, for a record that does not fit its fields or a payload that no longer fits one frame."""
    i = (len(payload) - _REPLY_HEAD) // (_RECORD_HEAD + length)
    if len(data) != length:
        raise EncodeError(f"records[{i}].data", f"{len(data)} bytes, expected {length}")
    if not (0 <= address <= 0xFF and 0 <= status <= 0xFF and 0 <= result <= 0xFF and 0 <= age_us <= AGE_MAX_US):
        for name, value, hi in (("address", address, 0xFF), ("status", status, 0xFF), ("result", result, 0xFF),
                                ("age_us", age_us, AGE_MAX_US)):
            check_u(f"records[{i}].{name}", value, hi)
    return fit("records", payload + _pack_record_head(address, status, result, age_us) + data)


@dataclass(frozen=True)
class CycleRecord:
    """One joint's line in a CYCLE_REPLY."""

    address: int
    status: int
    result: int
    age_us: int
    data: bytes

    @property
    def goal_result(self) -> int:
        """GOAL_TAKEN, an ErrorKind value, or GOAL_NONE."""
        return self.result & 0xF

    @property
    def read_result(self) -> int:
        """READ_OK or the ErrorKind value of a refused read."""
        return self.result >> 4


@dataclass(frozen=True)
class CycleReply(Message):
    """The records of one cycle, chain end first."""

    TYPE = MsgType.CYCLE_REPLY
    reg: int
    length: int
    records: tuple[CycleRecord, ...] = ()

    def pack(self) -> bytes:
        check_u("reg", self.reg, 0xFFFF)
        check_u("length", self.length, 0xFF)
        out = bytearray(REPLY_HEADER.pack(self.reg, self.length))
        for i, r in enumerate(self.records):
            if len(r.data) != self.length:
                raise EncodeError(f"records[{i}].data", f"{len(r.data)} bytes, expected {self.length}")
            check_u(f"records[{i}].address", r.address, 0xFF)
            check_u(f"records[{i}].status", r.status, 0xFF)
            check_u(f"records[{i}].result", r.result, 0xFF)
            check_u(f"records[{i}].age_us", r.age_us, AGE_MAX_US)
            out += RECORD_HEAD.pack(r.address, r.status, r.result, r.age_us) + r.data
        return fit("records", bytes(out))

    @classmethod
    def unpack(cls, payload: bytes) -> CycleReply:
        need(cls, payload, REPLY_HEADER.size)
        reg, length = REPLY_HEADER.unpack_from(payload)
        size = RECORD_HEAD.size + length
        body = payload[REPLY_HEADER.size:]
        if len(body) % size:
            raise DecodeError(LineErrorKind.LENGTH, f"CYCLE_REPLY: records are not whole {size}-byte units")
        recs = []
        for i in range(0, len(body), size):
            address, status, result, age = RECORD_HEAD.unpack_from(body, i)
            recs.append(CycleRecord(address, status, result, age, bytes(body[i + RECORD_HEAD.size:i + size])))
        return cls(reg, length, tuple(recs))

    def with_record(self, record: CycleRecord) -> CycleReply:
        """This reply with one more joint's record appended (what each joint forwards up)."""
        return CycleReply(self.reg, self.length, (*self.records, record))

    def record_size(self) -> int:
        """Bytes each record takes."""
        return RECORD_HEAD.size + self.length
