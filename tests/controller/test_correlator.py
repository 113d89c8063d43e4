"""Message ids and reply correlation: each request ends with exactly one outcome."""

from __future__ import annotations

from armbus.bus.codec import Packet
from armbus.bus.errors import RemoteError, UndeliverableError
from armbus.bus.messages import Error, PingReply, ReadReply, Undeliverable, decode_packet, make_packet
from armbus.bus.wire import Address, ErrorKind, MsgType, UndeliverableReason
from armbus.controller.correlator import Correlator
from armbus.controller.events import ReplyReceived, RequestFailed, RequestTimedOut


def reply(src: int, msg_id: int, message: Error | PingReply | ReadReply | Undeliverable) -> Packet:
    return make_packet(message, src=src, dst=Address.HOST, msg_id=msg_id)


def match(c: Correlator, packet: Packet, now: int = 5) -> object:
    return c.match(packet, decode_packet(packet), now)


def test_ids_sequential_wrap_and_skip_pending() -> None:
    c = Correlator(first_id=65534)
    assert [c.allocate() for _ in range(3)] == [65534, 65535, 0]
    c.add(1, 3, MsgType.PING, deadline=100)
    assert c.allocate() == 2  # 1 is still pending
    assert c.is_pending(1) and c.pending == 1


def test_reply_from_the_right_joint_completes_once() -> None:
    c = Correlator()
    c.add(7, 3, MsgType.PING, deadline=100)
    ping = PingReply(model=1, fw_major=1, fw_minor=0, serial=42, address=3)
    assert match(c, reply(2, 7, ping)) is None  # wrong source
    assert match(c, reply(3, 8, ping)) is None  # wrong id
    assert match(c, reply(3, 7, ReadReply(0, b"\x01"))) is None  # wrong reply type
    event = match(c, reply(3, 7, ping))
    assert isinstance(event, ReplyReceived) and event.src == 3 and event.message == ping
    assert match(c, reply(3, 7, ping)) is None  # already completed
    assert c.pending == 0 and c.next_deadline() is None


def test_broadcast_request_accepts_any_source() -> None:
    c = Correlator()
    c.add(9, Address.BROADCAST, MsgType.READ, deadline=100)
    event = match(c, reply(5, 9, ReadReply(56, b"\x00\x00")))
    assert isinstance(event, ReplyReceived) and event.src == 5


def test_error_reply_fails_with_remote_error_naming_kind() -> None:
    c = Correlator()
    c.add(4, 2, MsgType.WRITE, deadline=100)
    assert match(c, reply(2, 4, Error(MsgType.READ, ErrorKind.RANGE))) is None  # quotes another type
    event = match(c, reply(2, 4, Error(MsgType.WRITE, ErrorKind.ACCESS, 37)))
    assert isinstance(event, RequestFailed) and isinstance(event.error, RemoteError)
    assert str(event.error) == "joint 2 refused WRITE: ACCESS (detail 37)"


def test_undeliverable_fails_the_quoted_request_only() -> None:
    c = Correlator()
    c.add(4, 6, MsgType.READ, deadline=100)
    other = Undeliverable(2, 3, Address.HOST, 6, MsgType.READ, 5, UndeliverableReason.RETRIES)
    assert match(c, reply(2, 0, other)) is None
    not_ours = Undeliverable(2, 3, 1, 6, MsgType.READ, 4, UndeliverableReason.RETRIES)
    assert match(c, reply(2, 0, not_ours)) is None
    ours = Undeliverable(2, 3, Address.HOST, 6, MsgType.READ, 4, UndeliverableReason.NO_ROUTE)
    event = match(c, reply(2, 0, ours))
    assert isinstance(event, RequestFailed) and isinstance(event.error, UndeliverableError)
    assert str(event.error) == "READ to 6 not delivered: hop 2 -> 3 gave up (NO_ROUTE)"


def test_deadlines_expire_in_order() -> None:
    c = Correlator()
    c.add(1, 1, MsgType.PING, deadline=300)
    c.add(2, 2, MsgType.PING, deadline=100)
    c.add(3, 3, MsgType.PING, deadline=200)
    assert c.next_deadline() == 100
    assert c.expire(99) == []
    events = c.expire(200)
    assert [e.msg_id for e in events if isinstance(e, RequestTimedOut)] == [2, 3]
    assert c.next_deadline() == 300
    failed = c.cancel_all(250, UndeliverableError("port gone"))
    assert [type(e) for e in failed] == [RequestFailed] and c.pending == 0
