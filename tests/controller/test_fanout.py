"""controller.fanout: outcome routing by msg_id, failing every waiter, listeners that raise."""

from __future__ import annotations

import logging

import pytest

from armbus.bus.errors import PeerError
from armbus.bus.messages import PingReply
from armbus.bus.wire import StatusFlag
from armbus.controller.events import (
    HostEvent,
    JointState,
    PacketAcked,
    PortLost,
    ReplyReceived,
    RequestFailed,
    RequestTimedOut,
    SendFailed,
    StrayMessage,
)
from armbus.controller.fanout import Fanout

log = logging.getLogger("test_fanout")


def test_send_outcomes_resolve_ack_waiters_and_request_outcomes_reply_waiters() -> None:
    f: Fanout[str] = Fanout("port", log)
    f.expect(1, "ack1", reply=False)
    f.expect(2, "ack2", reply=False)
    f.expect(1, "reply1", reply=True)
    f.expect(3, "reply3", reply=True)
    f.expect(4, "reply4", reply=True)
    assert f.pending() == 5
    # a request's own PacketAcked resolves only an ack waiter under that msg_id, never its reply waiter
    assert f.take(PacketAcked(0, 1)) == "ack1"
    assert f.take(PacketAcked(0, 1)) is None
    assert f.take(SendFailed(0, 2, "gave up")) == "ack2"
    assert f.take(ReplyReceived(0, 1, 1, PingReply(1, 2, 3, 4, 1))) == "reply1"
    assert f.take(RequestFailed(0, 3, 1, PeerError("x"))) == "reply3"
    assert f.take(RequestTimedOut(0, 4, 1, 0x01)) is not None
    assert f.take(StrayMessage(0, 1, 5, None, "late")) is None  # not an outcome
    assert f.pending() == 0


def test_forget_and_take_all() -> None:
    f: Fanout[int] = Fanout("port", log)
    f.expect(7, 70, reply=True)
    f.expect(8, 80, reply=False)
    f.expect(9, 90, reply=True)
    f.forget(7, reply=False)  # the other table: nothing happens
    assert f.pending() == 3
    f.forget(7, reply=True)
    f.forget(7, reply=True)
    assert f.take_all() == [80, 90]  # ack waiters first
    assert f.take_all() == [] and f.pending() == 0
    assert f.take(PacketAcked(0, 8)) is None


def test_listeners_are_called_in_order_and_one_that_raises_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    f: Fanout[object] = Fanout("port", log)
    seen: list[tuple[str, HostEvent]] = []

    def bad(event: HostEvent) -> None:
        raise RuntimeError("user bug")

    def good(event: HostEvent) -> None:
        seen.append(("good", event))

    f.add_listener(bad)
    f.add_listener(good)
    event = PortLost(5, "port", "unplugged")
    with caplog.at_level(logging.ERROR, logger="test_fanout"):
        f.notify(event)
    assert seen == [("good", event)]
    assert "port: event listener" in caplog.text and "user bug" in caplog.text
    assert all(r.name == "test_fanout" for r in caplog.records)
    f.remove_listener(bad)
    with pytest.raises(ValueError):
        f.remove_listener(bad)
    assert f.listeners() == [good]


def test_snapshot_and_on_result() -> None:
    f: Fanout[object] = Fanout("port", log)
    results: list[object] = []
    calls: list[str] = []

    def first(event: HostEvent) -> str:
        calls.append("first")
        f.add_listener(late)  # added while notifying: not called for this event
        return "r1"

    def late(event: HostEvent) -> None:
        calls.append("late")

    f.add_listener(first)
    ev = JointState(0, 1, StatusFlag(0), 0.0, 0.0, 0.0, 0.0, 0.0)
    f.notify(ev, on_result=results.append)
    assert calls == ["first"] and results == ["r1"]
    snapshot = f.listeners()
    f.notify(ev, snapshot[:1])  # an explicit list: only those
    assert calls == ["first", "first"]


def test_on_result_that_raises_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    f: Fanout[object] = Fanout("arm", log)
    f.add_listener(lambda e: 1)
    f.add_listener(lambda e: 2)
    got: list[object] = []

    def on_result(result: object) -> None:
        if result == 1:
            raise TypeError("not awaitable")
        got.append(result)

    with caplog.at_level(logging.ERROR, logger="test_fanout"):
        f.notify(PortLost(0, "arm", "x"), on_result=on_result)
    assert got == [2] and "not awaitable" in caplog.text


def test_expecting_registers_the_waiter_before_returning_the_msg_id() -> None:
    f: Fanout[str] = Fanout("port", log)
    seen: list[int] = []

    def queue(node: list[int], now: int) -> int:
        node.append(now)
        seen.append(f.pending())  # not registered yet while fn runs
        return 42

    node: list[int] = []
    assert f.expecting(queue, "w", reply=True)(node, 7) == 42
    assert node == [7] and seen == [0] and f.pending() == 1
    assert f.take(PacketAcked(0, 42)) is None
    assert f.take(RequestTimedOut(0, 42, 1, 0x01)) == "w"
