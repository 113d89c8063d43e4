"""Message ids and request/reply correlation for the host: sans-I/O, deadlines in integer ns.

Theory of operation
-------------------
Every packet the host sends carries a 16-bit ``msg_id`` (contracts: chosen by the source; replies, ERRORs and
UNDELIVERABLE reports quote it). :class:`Correlator` allocates ids sequentially with wrap-around, skipping ids
still in use, so a late reply can only be confused with a new request after 65535 further packets.

A request is pending under its ``msg_id`` with the destination it was sent to, its type and an absolute
deadline. An incoming packet completes it when

* its ``msg_id`` matches, its type is the request's reply type (``type | 0x80``) or ERROR, and
* its source is the destination, or the destination was BROADCAST / UNASSIGNED (the reply to an ENUMERATE or
  SYNC_READ comes from the last joint, whose address the host may not know yet).

An UNDELIVERABLE report whose ``orig_src`` is the host and ``orig_msg_id`` matches fails the request; so does a
link-level delivery failure. :meth:`Correlator.expire` turns passed deadlines into :class:`RequestTimedOut`.
Each request ends with exactly one outcome; what arrives afterwards is a :class:`StrayMessage`.
"""

from __future__ import annotations

from dataclasses import dataclass

from armbus.bus.codec import Packet
from armbus.bus.errors import PeerError, RemoteError, UndeliverableError
from armbus.bus.messages import Error, Message, Undeliverable
from armbus.bus.wire import REPLY_BIT, Address, ErrorKind, MsgType, UndeliverableReason
from armbus.controller.events import HostEvent, ReplyReceived, RequestFailed, RequestTimedOut

#: msg_id is a u16 on the wire (contracts.md).
MSG_ID_MODULO = 1 << 16


@dataclass
class Pending:
    msg_id: int
    dst: int
    msg_type: int
    deadline: int


def _name(enum_type: type[ErrorKind] | type[UndeliverableReason] | type[MsgType], value: int) -> str:
    try:
        return enum_type(value).name
    except ValueError:
        return f"0x{value:02x}"


def remote_error(src: int, err: Error) -> RemoteError:
    return RemoteError(
        f"joint {src} refused {_name(MsgType, err.orig_type)}: {_name(ErrorKind, err.kind)} (detail {err.detail})"
    )


def undeliverable_error(u: Undeliverable) -> UndeliverableError:
    return UndeliverableError(
        f"{_name(MsgType, u.orig_type)} to {u.orig_dst} not delivered: hop {u.reporter} -> {u.next_hop} "
        f"gave up ({_name(UndeliverableReason, u.reason)})"
    )


class Correlator:
    """Allocates msg ids and matches replies to pending requests."""

    def __init__(self, first_id: int = 1) -> None:
        self._next = first_id % MSG_ID_MODULO
        self._pending: dict[int, Pending] = {}

    @property
    def pending(self) -> int:
        return len(self._pending)

    def is_pending(self, msg_id: int) -> bool:
        return msg_id in self._pending

    def allocate(self) -> int:
        """The next free msg id (never one that a pending request still uses)."""
        for _ in range(MSG_ID_MODULO):
            candidate = self._next
            self._next = (self._next + 1) % MSG_ID_MODULO
            if candidate not in self._pending:
                return candidate
        raise RuntimeError("all 65536 message ids are pending")  # pragma: no cover - bounded by the caller

    def add(self, msg_id: int, dst: int, msg_type: int, deadline: int) -> None:
        self._pending[msg_id] = Pending(msg_id, dst, msg_type, deadline)

    def match(self, packet: Packet, message: Message, now: int) -> HostEvent | None:
        """The outcome ``packet`` completes, or None when it answers nothing pending."""
        if packet.type == MsgType.UNDELIVERABLE:
            assert isinstance(message, Undeliverable)
            if message.orig_src != Address.HOST:
                return None
            p = self._pending.get(message.orig_msg_id)
            if p is None or p.msg_type != message.orig_type:
                return None
            del self._pending[p.msg_id]
            return RequestFailed(now, p.msg_id, p.dst, undeliverable_error(message))
        p = self._pending.get(packet.msg_id)
        if p is None:
            return None
        if packet.type not in (p.msg_type | REPLY_BIT, MsgType.ERROR):
            return None
        if p.dst not in (Address.BROADCAST, Address.UNASSIGNED) and packet.src != p.dst:
            return None
        if packet.type == MsgType.ERROR:
            assert isinstance(message, Error)
            if message.orig_type != p.msg_type:
                return None
            del self._pending[p.msg_id]
            return RequestFailed(now, p.msg_id, p.dst, remote_error(packet.src, message))
        del self._pending[p.msg_id]
        return ReplyReceived(now, p.msg_id, packet.src, message)

    def fail(self, msg_id: int, error: PeerError, now: int) -> HostEvent | None:
        """Fail a pending request (the link gave up on it); None if it is not pending."""
        p = self._pending.pop(msg_id, None)
        if p is None:
            return None
        return RequestFailed(now, p.msg_id, p.dst, error)

    def next_deadline(self) -> int | None:
        if not self._pending:
            return None
        return min(p.deadline for p in self._pending.values())

    def expire(self, now: int) -> list[HostEvent]:
        """Time out every request whose deadline is at or before ``now``."""
        late = [p for p in self._pending.values() if p.deadline <= now]
        for p in late:
            del self._pending[p.msg_id]
        return [RequestTimedOut(now, p.msg_id, p.dst, p.msg_type) for p in sorted(late, key=lambda p: p.deadline)]

    def cancel_all(self, now: int, error: PeerError) -> list[HostEvent]:
        """Fail every pending request (the port went away)."""
        events: list[HostEvent] = [RequestFailed(now, p.msg_id, p.dst, error) for p in self._pending.values()]
        self._pending.clear()
        return events
