"""Events the host reports: frozen dataclasses named as nouns (the h11 / wsproto convention).

Theory of operation
-------------------
The sans-I/O host node (:mod:`armbus.controller.host`) turns bytes from the bus into these events; the sync and
asyncio drivers (:mod:`armbus.controller.arm`, :mod:`armbus.controller.aio`) hand them to user callbacks or async
iterators. Quantities are SI (via :mod:`armbus.controller.units`); positions here are *raw* joint positions, the
arm layer applies the calibration offsets of the config. Every event carries ``time``: the host's ``now`` (ns)
when the event arose.

Request outcomes (exactly one per request id): :class:`ReplyReceived`, :class:`RequestFailed` or
:class:`RequestTimedOut`. Send outcomes (exactly one per packet sent): :class:`PacketAcked` when the first hop
acknowledged it, or :class:`SendFailed` when the link gave up. A joint that refuses a sent command answers
ERROR: :class:`CommandRefused`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeVar

from armbus.bus.errors import ArmTimeoutError, PeerError
from armbus.bus.messages import Error, Fault, Message, State, Undeliverable
from armbus.bus.wire import Address, ErrorKind, FaultCode, MsgType, StatusFlag
from armbus.controller import units

_E = TypeVar("_E", bound=enum.IntEnum)


def _name(kind: type[_E], value: int) -> str:
    """The member's name, or the raw number when ``value`` names none."""
    known = _known(kind, value)
    return known.name if isinstance(known, kind) and known.name is not None else str(value)


def _known(kind: type[_E], value: int) -> _E | int:
    """``value`` as a member of ``kind`` when it names one, else the raw number (a newer peer's code)."""
    return kind(value) if value in kind._value2member_map_ else value


@dataclass(frozen=True)
class HostEvent:
    time: int  # ns, host clock


@dataclass(frozen=True)
class PacketAcked(HostEvent):
    """The first hop acknowledged packet ``msg_id`` (it is on its way; not yet executed)."""

    msg_id: int


@dataclass(frozen=True)
class SendFailed(HostEvent):
    """The host's link gave up on packet ``msg_id`` (no ack from the first joint after all retries)."""

    msg_id: int
    reason: str


@dataclass(frozen=True)
class ReplyReceived(HostEvent):
    """The reply to request ``msg_id`` arrived from joint ``src``."""

    msg_id: int
    src: int
    message: Message


@dataclass(frozen=True)
class RequestFailed(HostEvent):
    """Request ``msg_id`` failed: an ERROR reply, an UNDELIVERABLE report, or the link gave up."""

    msg_id: int
    dst: int
    error: PeerError


@dataclass(frozen=True)
class RequestTimedOut(HostEvent):
    """No reply to request ``msg_id`` (sent to ``dst``) before its deadline."""

    msg_id: int
    dst: int
    msg_type: int


@dataclass(frozen=True)
class JointState(HostEvent):
    """A joint's state (STATE telemetry or a sync-read record), SI units, raw position."""

    address: int
    status: StatusFlag
    position: float  # rad, raw (before calibration)
    velocity: float  # rad/s
    current: float  # A
    temperature: float  # degC
    voltage: float  # V

    @classmethod
    def from_wire(cls, time: int, address: int, s: State) -> JointState:
        return cls(
            time,
            address,
            StatusFlag(s.status),
            units.from_wire_position(s.position),
            units.from_wire_velocity(s.velocity),
            units.from_wire_current(s.current),
            units.from_wire_temperature(s.temperature),
            units.from_wire_voltage(s.voltage),
        )


@dataclass(frozen=True)
class FaultReported(HostEvent):
    """A joint reported a fault becoming active (or clearing)."""

    address: int
    code: FaultCode | int
    active: bool
    value: int

    @classmethod
    def from_wire(cls, time: int, address: int, f: Fault) -> FaultReported:
        return cls(time, address, _known(FaultCode, f.code), bool(f.active), f.value)


@dataclass(frozen=True)
class UndeliverableReported(HostEvent):
    """A hop could not deliver a packet (whether or not it was a pending request)."""

    report: Undeliverable


@dataclass(frozen=True)
class CommandRefused(HostEvent):
    """Joint ``src`` answered ERROR to packet ``msg_id`` that no request waits for: a command sent with
    ``send()`` (a goal out of range, a write refused BUSY, a bad SYNC_WRITE slice) was not carried out there."""

    src: int
    msg_id: int
    orig_type: MsgType | int
    kind: ErrorKind | int
    detail: int  # the register address, or 0

    @classmethod
    def from_wire(cls, time: int, src: int, msg_id: int, e: Error) -> CommandRefused:
        return cls(time, src, msg_id, _known(MsgType, e.orig_type), _known(ErrorKind, e.kind), e.detail)


@dataclass(frozen=True)
class StrayMessage(HostEvent):
    """A reply or message nobody waits for (a late reply after a timeout, an unknown msg_id)."""

    src: int
    msg_id: int
    message: Message | None  # None when the payload did not decode
    note: str


@dataclass(frozen=True)
class LinkEvent(HostEvent):
    """Something the host's hop link reported: a line error, a reset, a counter snapshot."""

    what: str
    detail: object = None


@dataclass(frozen=True)
class LeaseAnswered(HostEvent):
    """``armbus serve`` answered this client's lease request ``token``: ``granted`` or not; ``holder`` is who holds
    the lease now (None: nobody)."""

    token: int
    granted: bool
    holder: str | None


@dataclass(frozen=True)
class LeaseChanged(HostEvent):
    """The lease of the shared arm changed hands: ``holder`` now (None: nobody); ``yours`` if it is this client."""

    holder: str | None
    yours: bool


@dataclass(frozen=True)
class PortLost(HostEvent):
    """The serial port vanished (unplugged); the driver tries to reopen it."""

    port: str
    reason: str


@dataclass(frozen=True)
class PortRestored(HostEvent):
    """The serial port is back and the host link was reset."""

    port: str


def send_outcome(port: str, msg_id: int, event: HostEvent) -> int:
    """The msg_id of a sent packet once joint 1 acked it; a :class:`SendFailed` becomes a PeerError."""
    if isinstance(event, SendFailed):
        raise PeerError(f"{port}: packet {msg_id} not delivered to the first joint: {event.reason}")
    return msg_id


def request_outcome(port: str, msg_id: int, event: HostEvent) -> ReplyReceived:
    """The reply to request ``msg_id``, or the exception its outcome stands for (shared by every arm facade)."""
    if isinstance(event, ReplyReceived):
        return event
    if isinstance(event, RequestFailed):
        raise event.error
    if isinstance(event, RequestTimedOut):
        what = _name(MsgType, event.msg_type)
        if event.dst == Address.BROADCAST:
            raise ArmTimeoutError(f"{port}: no reply to the broadcast {what} {msg_id} in time (it comes from the "
                                  "last joint: is the chain complete, is every joint powered?)")
        raise ArmTimeoutError(f"{port}: no reply to {what} {msg_id} from joint {event.dst} in time")
    raise PeerError(f"{port}: request {msg_id}: {event}")


@dataclass(frozen=True)
class CycleSample:
    """One joint's record of a cyclic exchange, with the instant its sample was taken on the host's clock."""

    address: int
    status: StatusFlag
    result: int  # the record's result byte: read outcome << 4 | goal outcome (armbus.bus.cycle)
    data: bytes  # the registers read, wire units
    sampled_at: int  # ns, host clock: reply arrival - (the record's age + its transit up the chain)


@dataclass(frozen=True)
class CycleReplied(HostEvent):
    """The reply to cycle ``msg_id`` (sent at ``sent_at``) arrived; ``late`` when it came after the cycle was
    given up (missed). ``samples`` in address order; a joint missing from them did not answer this cycle."""

    msg_id: int
    sent_at: int
    samples: tuple[CycleSample, ...]
    late: bool = False


@dataclass(frozen=True)
class CycleMissed(HostEvent):
    """Cycle ``msg_id`` got no reply in time, or never left: ``reason`` says which."""

    msg_id: int
    sent_at: int
    reason: str
