"""The sans-I/O host node against a real hop-link peer playing joint 1, in simulated time."""

from __future__ import annotations

from collections.abc import Callable

from armbus.bus.codec import Packet, encode_data
from armbus.bus.errors import RemoteError
from armbus.bus.link import LinkEndpoint, PacketReceived
from armbus.bus.messages import Error, Heartbeat, Ping, PingReply, State, Torque, decode_packet, make_packet
from armbus.bus.wire import Address, ErrorKind, MsgType, StatusFlag
from armbus.controller.events import (
    CommandRefused,
    JointState,
    LinkEvent,
    PacketAcked,
    ReplyReceived,
    RequestFailed,
    RequestTimedOut,
    SendFailed,
    StrayMessage,
)
from armbus.controller.host import BACKLOG_LIMIT, HostConfig, HostNode

MS = 1_000_000
Responder = Callable[[Packet], Packet | None]


class Bench:
    """Host node + one peer link endpoint joined by an ideal wire (zero delay) under simulated time."""

    def __init__(self, responder: Responder | None = None, config: HostConfig | None = None) -> None:
        self.now = 0
        self.host = HostNode(config, now=0)
        self.peer = LinkEndpoint(seed=99, name="joint1")
        self.responder = responder
        self.received: list[Packet] = []
        self.cut = False  # True: host bytes never reach the peer
        self.events: list[object] = []

    def transfer(self) -> None:
        for _ in range(100):
            up = self.host.data_to_send(0, self.now)
            if up and not self.cut:
                self.peer.receive_data(up, self.now)
            while (ev := self.peer.next_event()) is not None:
                if isinstance(ev, PacketReceived):
                    self.received.append(ev.packet)
                    reply = self.responder(ev.packet) if self.responder else None
                    if reply is not None:
                        self.peer.send(reply, self.now)
            down = self.peer.data_to_send(self.now)
            if down and not self.cut:
                self.host.receive_data(0, down, self.now)
            while (hev := self.host.next_event()) is not None:
                self.events.append(hev)
            if not up and not down:
                return

    def run_until(self, t: int) -> None:
        self.transfer()
        while True:
            deadlines = [d for d in (self.host.next_deadline(), self.peer.next_deadline()) if d is not None]
            nxt = min(deadlines, default=None)
            if nxt is None or nxt > t:
                break
            self.now = max(self.now, nxt)
            self.host.handle_timer(self.now)
            self.peer.handle_timer(self.now)
            self.transfer()
        self.now = t
        self.transfer()

    def of(self, cls: type) -> list:
        return [e for e in self.events if isinstance(e, cls)]


def ping_responder(packet: Packet) -> Packet | None:
    if packet.type == MsgType.PING:
        return make_packet(PingReply(7, 1, 0, 1234, 1), src=1, dst=Address.HOST, msg_id=packet.msg_id)
    if packet.type == MsgType.TORQUE:
        return make_packet(Error(MsgType.TORQUE, ErrorKind.BUSY), src=1, dst=Address.HOST, msg_id=packet.msg_id)
    return None


def test_send_is_acked_by_first_hop() -> None:
    b = Bench()
    b.run_until(1 * MS)
    msg_id = b.host.send(Torque(1), 1, b.now)
    b.run_until(2 * MS)
    assert [e.msg_id for e in b.of(PacketAcked)] == [msg_id]
    assert [decode_packet(p) for p in b.received] == [Torque(1)]
    assert b.received[0].src == Address.HOST and b.received[0].dst == 1


def test_request_reply_correlated() -> None:
    b = Bench(ping_responder)
    b.run_until(1 * MS)
    ids = [b.host.request(Ping(), 1, b.now) for _ in range(3)]
    b.run_until(5 * MS)
    replies = b.of(ReplyReceived)
    assert [r.msg_id for r in replies] == ids
    assert all(r.message == PingReply(7, 1, 0, 1234, 1) for r in replies)
    assert b.host.pending_requests == 0 and b.host.counters.replies == 3


def test_error_reply_fails_request() -> None:
    from armbus.bus.messages import Read

    b = Bench(ping_responder)
    b.run_until(1 * MS)
    # TORQUE gets no reply on success, so ask for an ERROR via a READ that the responder answers with ERROR
    b.responder = lambda p: make_packet(Error(MsgType.READ, ErrorKind.RANGE, 9), 1, 0, p.msg_id)
    msg_id = b.host.request(Read(999, 1), 1, b.now)
    b.run_until(5 * MS)
    [failed] = b.of(RequestFailed)
    assert failed.msg_id == msg_id and isinstance(failed.error, RemoteError)
    assert "RANGE" in str(failed.error)


def test_request_times_out_at_its_deadline() -> None:
    b = Bench(config=HostConfig(reply_timeout_ns=20 * MS))
    b.run_until(1 * MS)
    msg_id = b.host.request(Ping(), 1, b.now)
    b.run_until(20 * MS)
    assert b.of(RequestTimedOut) == []
    b.run_until(21 * MS + 1)
    [timeout] = b.of(RequestTimedOut)
    assert timeout.msg_id == msg_id and timeout.time == 21 * MS
    assert b.of(PacketAcked)  # it did reach the first joint


def test_unsolicited_state_and_stray_reply() -> None:
    b = Bench()
    b.run_until(1 * MS)
    b.peer.send(make_packet(State(int(StatusFlag.TORQUE_ON), 1_000_000, -2_000, 150, 355, 12_000), 1, 0, 5), b.now)
    b.peer.send(make_packet(PingReply(7, 1, 0, 1, 1), 1, 0, 4242), b.now)
    b.run_until(2 * MS)
    [state] = b.of(JointState)
    assert state.address == 1 and state.position == 1.0 and state.current == 0.15
    assert state.status == StatusFlag.TORQUE_ON and state.temperature == 35.5 and state.voltage == 12.0
    [stray] = b.of(StrayMessage)
    assert stray.msg_id == 4242


def test_error_answering_a_sent_command_is_a_command_refused_event() -> None:
    b = Bench(responder=lambda p: make_packet(Error(p.type, ErrorKind.BUSY, 37), 1, 0, p.msg_id))
    b.run_until(1 * MS)
    msg_id = b.host.send(Torque(1), 1, b.now)
    b.run_until(5 * MS)
    [refused] = b.of(CommandRefused)
    assert (refused.src, refused.msg_id, refused.orig_type, refused.kind, refused.detail) == (
        1, msg_id, MsgType.TORQUE, ErrorKind.BUSY, 37)
    assert b.of(StrayMessage) == [] and b.host.counters.refused == 1


def test_a_request_lost_in_flight_to_a_link_reset_is_sent_again_but_a_command_is_not() -> None:
    """Joint 1 restarts its session while a PING is on the wire (as when the port comes back): the host's link
    fails the frame (LINK_RESET); the PING has no side effect, so the host sends it again and the caller gets its
    reply. A TORQUE lost the same way may have been delivered: it fails (SendFailed), it is not repeated."""
    b = Bench(responder=lambda p: make_packet(PingReply(7, 1, 0, 1, 1), 1, 0, p.msg_id) if p.type == MsgType.PING
              else None)
    b.run_until(1 * MS)
    for msg in (Ping(), Torque(1)):
        before = len(b.received)
        msg_id = b.host.request(msg, 1, b.now) if isinstance(msg, Ping) else b.host.send(msg, 1, b.now)
        wire = b.host.data_to_send(0, b.now)  # the frame is on the wire ...
        b.peer.reset(b.now)  # ... when joint 1 starts a new session: it drops the frame
        b.peer.receive_data(wire, b.now)
        b.run_until(b.now + 20 * MS)
        if isinstance(msg, Ping):
            assert len([e for e in b.of(ReplyReceived) if e.msg_id == msg_id]) == 1
            assert [p.type for p in b.received[before:]] == [MsgType.PING]  # delivered once, by the resend
            assert b.host.counters.resent == 1
        else:
            [failed] = [e for e in b.of(SendFailed) if e.msg_id == msg_id]
            assert "LINK_RESET" in failed.reason
            assert b.received[before:] == []
    assert b.of(RequestFailed) == [] and b.host.counters.resent == 1


def test_heartbeats_on_an_absolute_schedule_without_ack_events() -> None:
    b = Bench(config=HostConfig(heartbeat_period_ns=100 * MS))
    b.run_until(1000 * MS)
    beats = [p for p in b.received if p.type == MsgType.HEARTBEAT]
    assert len(beats) == 11  # t = 0, 100, ..., 1000 ms
    assert all(p.dst == Address.BROADCAST for p in beats)
    assert [decode_packet(p) for p in beats][-1] == Heartbeat(1000)
    assert b.of(PacketAcked) == []
    b.host.set_heartbeat(None, b.now)
    b.run_until(2000 * MS)
    assert len([p for p in b.received if p.type == MsgType.HEARTBEAT]) == 11


def test_line_noise_is_an_event_not_an_exception() -> None:
    b = Bench()
    b.run_until(1 * MS)
    good = encode_data(0, 0, make_packet(Ping(), 1, 0, 1))
    b.host.receive_data(0, b"\x13\x37garbage\x00" + good[:-3] + b"\xff\x00", b.now)
    b.transfer()
    kinds = [e.what for e in b.of(LinkEvent)]
    assert kinds.count("line error") >= 2


def test_backlog_overflow_and_link_give_up_fail_sends_and_requests() -> None:
    b = Bench()
    b.run_until(1 * MS)
    b.cut = True
    queue_limit = b.host.link.config.queue_limit
    ids = [b.host.send(Torque(1), 1, b.now) for _ in range(1 + queue_limit + BACKLOG_LIMIT)]
    overflow_id = b.host.request(Ping(), 1, b.now)
    b.transfer()
    failed = b.of(SendFailed)
    assert [f.msg_id for f in failed] == [overflow_id]
    assert "backlog full" in failed[0].reason
    [req_failed] = b.of(RequestFailed)
    assert req_failed.msg_id == overflow_id
    b.run_until(2000 * MS)  # the link retries, gives up and fails everything it held
    assert {f.msg_id for f in b.of(SendFailed)} >= set(ids[:1])
    assert b.host.counters.backlog_overflows == 1
