"""The joint's part in the cyclic exchange: take a goal slice going down, append a record going up.

Theory of operation
-------------------
A CYCLE (bus/cycle.py, docs/protocol.md) comes down from UP. :func:`on_cycle`:

1. forwards the rest first (:meth:`JointNode.pass_down`: the slices of the joints below, re-originated from this
   joint with ttl - 1), so that the frame loses no time here;
2. takes this joint's slice, if it has one: checked like a SET_GOAL (a mode and range the goal registers accept;
   not while a stop or fault holds the joint), then written into the control core's goal slot
   (:meth:`ControlCore.post_goal`) to be latched ``lead`` ns from now. ``lead`` (:func:`lead_ns`) is the time the
   frame still needs to reach the last joint with a slice: the wire time of each shrinking frame still ahead, at
   this joint's DOWN rate, plus one forwarding latency per hop. Every joint latches at the instant the last one
   receives its frame, so all apply together although joint 1 received the frame milliseconds before joint 6.
   A joint that could not forward (the chain end, or the link below is down) latches at once;
3. remembers the goal's outcome under the cycle's msg_id (a ring of :data:`RESULTS_KEPT` entries: the record
   built on the way up reports it);
4. at the chain end (nothing forwarded), starts the CYCLE_REPLY with its own record (:func:`start_reply`).

A CYCLE_REPLY comes up from DOWN (the router hands it to the joint: ``GATHERED``). :func:`on_cycle_reply` appends
this joint's record and sends it on up, re-originated from this joint with ttl - 1. A record is sampled when it is
appended: status flags and registers as of the control core's latest tick, and ``age_us``, the time since that
tick's sensor sample. If the forward of a CYCLE fails later (retries exhausted, the link reset), the joint starts
the reply itself (:func:`start_reply`, from ``delivery_failed``): the host gets the records gathered so far
and sees the missing joints. A reply that would no longer fit one frame goes on without this joint's record.

Nothing here answers with ERROR: at 1 kHz a refused goal must not become a storm of reports. The record's
``result`` byte carries the outcome of this cycle's goal and read, next to the status flags that say why. The one
exception is a CYCLE sent to one joint rather than to BROADCAST: the exchange is defined for the whole chain only
(a unicast remainder forwarded down would come back up addressed to this joint), so it is refused with ERROR
INSTRUCTION, like any request a joint does not support, and changes nothing.
"""

from __future__ import annotations

import functools
import struct
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from armbus.bus.codec import Packet
from armbus.bus.cycle import (
    AGE_MAX_US,
    GOAL_NONE,
    GOAL_TAKEN,
    NO_GOALS,
    READ_OK,
    REPLY_HEADER,
    CycleHead,
    CycleRecord,
    append_record,
    cycle_head,
    cycle_size,
    reply_head,
    rest_payload,
    result_byte,
    slice_at,
)
from armbus.bus.errors import EncodeError
from armbus.bus.messages import Error
from armbus.bus.router import DOWN, UP
from armbus.bus.wire import (
    DEFAULT_TTL,
    NS_PER_US,
    Address,
    ErrorKind,
    GoalMode,
    MsgType,
    UndeliverableReason,
    data_wire_size,
    wire_time_ns,
)
from armbus.joints.control import BLOCKING
from armbus.joints.registers import BY_NAME

if TYPE_CHECKING:
    from armbus.joints.node import JointNode

#: Goal outcomes remembered for the way back up: one per cycle in flight through this joint. 16 covers the
#: host's in-flight bound with room to spare; an older cycle's record says GOAL_NONE.
RESULTS_KEPT = 16
_GOAL_REGISTER = {int(GoalMode.POSITION): "goal_position", int(GoalMode.VELOCITY): "goal_velocity",
                  int(GoalMode.CURRENT): "goal_current"}
_GOAL_RANGE = {m: (BY_NAME[n].minimum, BY_NAME[n].maximum) for m, n in _GOAL_REGISTER.items()}


def _writer(name: str) -> tuple[Callable[[bytearray, int, int], None], int]:
    """``struct.pack_into`` for register ``name`` and its address: what ``RegisterFile.set`` stores, for a value
    already inside the register's range (so there is nothing to saturate)."""
    r = BY_NAME[name]
    code = {1: "b", 2: "h", 4: "i"}[r.size]
    return struct.Struct("<" + (code if r.signed else code.upper())).pack_into, r.address


_GOAL_WRITE = {m: _writer(n) for m, n in _GOAL_REGISTER.items()}
_MODE_WRITE, _MODE_AT = _writer("goal_mode")
assert all(BY_NAME["goal_mode"].minimum <= m <= BY_NAME["goal_mode"].maximum for m in _GOAL_REGISTER)
_UNASSIGNED, _BROADCAST = int(Address.UNASSIGNED), int(Address.BROADCAST)
_HOST, _CYCLE_REPLY = int(Address.HOST), int(MsgType.CYCLE_REPLY)
_REPLY_HEADER_PACK = REPLY_HEADER.pack
#: How each payload the joint edits is checked before its handler runs (joints/handlers.py ``dispatch``): the
#: header the handler needs, checked as the message class's ``unpack`` checks the payload.
HEADS = {int(MsgType.CYCLE): cycle_head, int(MsgType.CYCLE_REPLY): reply_head}


@functools.lru_cache(maxsize=1024)
def lead_ns(slices_below: int, baud: int, forward_latency_ns: int) -> int:
    """Time from now until the last of ``slices_below`` joints below has received its frame: each hop sends the
    frame with one slice fewer (k slices, then k - 1, ... down to 1) after its forwarding latency. A pure function
    of its arguments, remembered (a joint sees the same few values every cycle)."""
    return sum(wire_time_ns(data_wire_size(cycle_size(k)), baud) + forward_latency_ns
               for k in range(1, slices_below + 1))


def check_goal(node: JointNode, mode: int, value: int) -> int:
    """GOAL_TAKEN, or the ErrorKind that refuses this goal now."""
    limits = _GOAL_RANGE.get(mode)
    if limits is None or not limits[0] <= value <= limits[1]:
        return int(ErrorKind.LIMIT)
    if node.control.flags & BLOCKING:
        return int(ErrorKind.BUSY)
    return GOAL_TAKEN


def on_cycle(node: JointNode, port: int, packet: Packet, head: CycleHead, now: int) -> None:
    """A CYCLE (``head``: its checked header, :func:`armbus.bus.cycle.cycle_head`) came in on ``port``."""
    if port != UP:
        return
    if packet.dst != _BROADCAST:  # a whole-chain exchange only: refused, nothing taken or forwarded
        node.counters.errors_sent += 1
        node.reply(packet, Error(int(MsgType.CYCLE), int(ErrorKind.INSTRUCTION), 0), now)
        return
    addr = node.address
    payload = packet.payload
    if addr == _UNASSIGNED:
        rest, kept = payload, head.slices
    else:
        rest, kept = rest_payload(payload, head, addr)
    forwarded = node.pass_down(Packet(packet.src, packet.dst, packet.type, packet.msg_id, packet.ttl, rest), now)
    goal = None if head.mode == NO_GOALS or addr == _UNASSIGNED else slice_at(payload, head, addr)
    outcome = GOAL_NONE
    if goal is not None:
        outcome = check_goal(node, head.mode, goal)
        if outcome == GOAL_TAKEN:
            lead = lead_ns(kept, node.port_baud(DOWN), node.forward_latency_ns) if forwarded else 0
            mem = node.registers.mem  # as SET_GOAL: the registers say the goal (checked against their ranges)
            write, at = _GOAL_WRITE[head.mode]
            write(mem, at, goal)
            _MODE_WRITE(mem, _MODE_AT, head.mode)
            node.control.post_goal(head.mode, goal, now + lead, packet.msg_id)
            node.counters.cycle_goals += 1
        else:
            node.counters.cycle_refused += 1
    results = node.cycle_results
    results[packet.msg_id] = outcome
    while len(results) > RESULTS_KEPT:
        results.popitem(last=False)
    if not forwarded:
        _start_reply(node, packet, head.reg, head.length, now)


def _record_fields(node: JointNode, reg: int, length: int, msg_id: int, now: int
                   ) -> tuple[int, int, int, int, bytes]:
    """This joint's record for cycle ``msg_id``, sampled now: (address, status, result, age_us, data). ``length``
    0 reads nothing and cannot fail: a cycle that only wants status, goal outcomes and ages."""
    err, data = node.registers.read(reg, length) if length else (None, b"")
    read = READ_OK
    if err is not None:
        read, data = int(err), bytes(length)
    goal = node.cycle_results.get(msg_id, GOAL_NONE)
    control = node.control
    age = min(AGE_MAX_US, max(0, now - control.sampled_at) // NS_PER_US)
    # the flags of the latest tick, plus a stop taken since (an e-stop acts at once, between ticks): a goal refused
    # BUSY always comes with the flag that says why
    status = control.state.status | (control.flags & BLOCKING)
    return node.address & 0xFF, status, result_byte(read, goal), age, data


def record(node: JointNode, reg: int, length: int, msg_id: int, now: int) -> CycleRecord:
    """This joint's record for cycle ``msg_id``, sampled now."""
    return CycleRecord(*_record_fields(node, reg, length, msg_id, now))


def start_reply(node: JointNode, packet: Packet, now: int) -> None:
    """Start the CYCLE_REPLY for ``packet`` (a CYCLE) with this joint's record: at the chain end, or where the
    CYCLE could go no further."""
    head = cycle_head(packet.payload)
    _start_reply(node, packet, head.reg, head.length, now)


def _start_reply(node: JointNode, packet: Packet, reg: int, length: int, now: int) -> None:
    try:
        payload = append_record(_REPLY_HEADER_PACK(reg, length), length,
                                *_record_fields(node, reg, length, packet.msg_id, now))
    except EncodeError:  # one record longer than a frame: nothing can be said but that it failed
        node.router.report(packet, DOWN, UndeliverableReason.NO_ROUTE, now)
        return
    node.counters.cycle_replies += 1
    node.send(Packet(node.address & 0xFF, _HOST, _CYCLE_REPLY, packet.msg_id, DEFAULT_TTL, payload), now)


def on_cycle_reply(node: JointNode, port: int, packet: Packet, head: tuple[int, int], now: int) -> None:
    """A CYCLE_REPLY (``head``: its checked ``(reg, length)``, :func:`armbus.bus.cycle.reply_head`) came in."""
    if port != DOWN:
        return
    if packet.ttl == 0:
        node.router.report(packet, UP, UndeliverableReason.TTL, now)
        return
    reg, length = head
    try:
        payload = append_record(packet.payload, length, *_record_fields(node, reg, length, packet.msg_id, now))
    except EncodeError:  # full: the host sees this joint's record missing
        node.counters.cycle_overflow += 1
        payload = packet.payload
    node.send(Packet(node.address & 0xFF, packet.dst, packet.type, packet.msg_id, packet.ttl - 1, payload), now)


def new_results() -> OrderedDict[int, int]:
    """The ring of goal outcomes by msg_id (see :data:`RESULTS_KEPT`)."""
    return OrderedDict()
