"""ESTOP at a joint: taken and acted on whatever is full, passed down ahead of queued traffic, and a release it
overtook cannot undo it."""

from __future__ import annotations

from joint_bench import MS, Bench, opened_node, wire_frame

from armbus.bus.codec import decode_wire, encode_control
from armbus.bus.messages import (
    Enumerate,
    Error,
    EStop,
    Heartbeat,
    Ping,
    Reboot,
    Undeliverable,
    Write,
    decode_packet,
    make_packet,
)
from armbus.bus.wire import Address, ErrorKind, FrameKind, MsgType, StatusFlag, UndeliverableReason
from armbus.joints.control import Command, CommandKind
from armbus.joints.node import DOWN, UP, JointNode
from armbus.joints.registers import BY_NAME

BCAST = Address.BROADCAST
ESTOPPED = StatusFlag.ESTOPPED
ESTOP_REG = BY_NAME["estop"].address


def full_node() -> tuple[JointNode, int]:
    """:func:`opened_node` with its command mailbox, its UP queue and its DOWN queue (no neighbour answers there)
    all full."""
    node, now = opened_node()
    filler = make_packet(Heartbeat(0), Address.HOST, BCAST, 1)
    while node.control.commands.put(Command(CommandKind.HEARTBEAT)):
        pass
    for link in node.links:
        while link.send(filler, now):
            pass
        assert link.queue_space == 0
    node.data_to_send(UP, now)
    node.data_to_send(DOWN, now)
    return node, now


def test_estop_frame_is_acked_and_acted_on_with_everything_full() -> None:
    node, now = full_node()
    ping = make_packet(Ping(), Address.HOST, Address.UNASSIGNED, 7)
    node.receive_data(UP, wire_frame(ping, seq=0), now)
    assert node.data_to_send(UP, now) == b"" and node.links[UP].counters.refused == 1  # full: a PING waits
    estop = make_packet(EStop(3), Address.HOST, BCAST, 8, ttl=5)
    node.receive_data(UP, wire_frame(estop, seq=0), now)
    assert node.data_to_send(UP, now) == encode_control(FrameKind.ACK, 0)  # the ESTOP is taken at once
    assert node.control.flags & ESTOPPED and node.registers.get("estop") == 1
    down = node.links[DOWN].queued
    assert down[0] == estop._replace(src=Address.UNASSIGNED, ttl=4)  # passed on ahead of the full queue
    assert all(p.type == MsgType.HEARTBEAT for p in down[1:]) and len(down) == 1 + node.link_config.queue_limit
    assert node.counters.forwarded == 1 and node.router.counters.urgent == 1


def test_estop_the_down_link_cannot_take_is_reported_not_dropped() -> None:
    node, now = full_node()
    for k in range(node.link_config.urgent_limit):  # e-stops already waiting toward the neighbour
        assert node.links[DOWN].send(make_packet(EStop(0), Address.HOST, BCAST, 100 + k), now, urgent=True)
    estop = make_packet(EStop(3), Address.HOST, BCAST, 8)
    node.receive_data(UP, wire_frame(estop, seq=0), now)
    assert node.data_to_send(UP, now) == encode_control(FrameKind.ACK, 0)
    assert node.control.flags & ESTOPPED
    reports = [decode_packet(p) for p in node.router.backlog]  # the UP queue is full: the report waits here
    assert [(r.orig_type, r.orig_msg_id, r.reason) for r in reports if isinstance(r, Undeliverable)] == [
        (MsgType.ESTOP, 8, UndeliverableReason.QUEUE_FULL)]


def enumerated(n: int) -> Bench:
    b = Bench(n)
    b.request(Enumerate(), dst=BCAST, run_ms=10)
    assert [j.address for j in b.nodes] == list(range(1, n + 1))
    return b


def test_estop_overtakes_a_queued_release_which_is_then_refused() -> None:
    """The host releases joint 2 and then e-stops everyone; the ESTOP overtakes the release on the host link, so
    joint 2 gets the release second: it must stay stopped (the host's last word) and answer BUSY."""
    b = enumerated(2)
    b.request(EStop(1), dst=BCAST, run_ms=5)
    assert all(j.control.flags & ESTOPPED for j in b.nodes)
    b._msg_id += 1
    assert b.host.send(make_packet(Ping(), Address.HOST, 1, b._msg_id), b.now)  # in flight
    b._msg_id += 1
    release = b._msg_id
    assert b.host.send(make_packet(Write(ESTOP_REG, b"\x00"), Address.HOST, 2, release), b.now)  # queued
    b._msg_id += 1
    assert b.host.send(make_packet(EStop(2), Address.HOST, BCAST, b._msg_id), b.now, urgent=True)
    assert b.host.queued[0].type == MsgType.ESTOP  # ahead of the release
    b.run(20 * MS)
    assert all(j.control.flags & ESTOPPED for j in b.nodes)
    err = b.reply(release)
    assert isinstance(err, Error) and err.kind == ErrorKind.BUSY
    assert b.nodes[1].counters.stale_refused == 1
    b.request(Write(ESTOP_REG, b"\x00"), dst=2, run_ms=5)  # a release sent after the ESTOP is obeyed
    assert not b.nodes[1].control.flags & ESTOPPED


def host_acks(node: JointNode, out: bytes, now: int) -> None:
    """The fake host acks every DATA frame the joint sent (its replies and faults), so its UP queue drains."""
    for piece in out.split(b"\x00")[:-1]:
        frame = decode_wire(piece + b"\x00")
        if frame.kind == FrameKind.DATA:
            node.receive_data(UP, encode_control(FrameKind.ACK, frame.seq), now)
            host_acks(node, node.data_to_send(UP, now), now)


def test_overtaken_release_or_reboot_refused_across_id_wrap_until_a_newer_packet() -> None:
    node, now = opened_node()
    host, me = Address.HOST, Address.UNASSIGNED
    release = Write(ESTOP_REG, b"\x00")
    clear = Write(BY_NAME["clear_flags"].address, bytes((int(ESTOPPED),)))
    stream = [make_packet(EStop(1), host, BCAST, 3),  # ids wrap: 65530 and 65534 are older than 3
              make_packet(release, host, me, 65530),
              make_packet(clear, host, me, 65534),
              make_packet(Reboot(), host, me, 2),
              make_packet(Heartbeat(0), host, BCAST, 4),  # newer: nothing the ESTOP overtook can follow it
              make_packet(release, host, me, 5)]
    memory = []
    for seq, packet in enumerate(stream):
        now += MS
        node.receive_data(UP, wire_frame(packet, seq), now)
        out = node.data_to_send(UP, now)
        assert encode_control(FrameKind.ACK, seq) in out  # nothing withheld
        host_acks(node, out, now)
        memory.append(node.estop_msg_id)
        now = node.control.next_deadline()
        node.handle_timer(now)  # a control tick takes what the mailbox holds
        host_acks(node, node.data_to_send(UP, now), now)
        if seq == 3:
            assert node.control.flags & ESTOPPED and not node.booting
    assert memory == [3, 3, 3, 3, None, None]
    assert node.counters.stale_refused == 3
    assert not node.control.flags & ESTOPPED  # the newer release is obeyed


def _after_estop() -> tuple[JointNode, int]:
    node, now = opened_node()
    now += MS
    node.receive_data(UP, wire_frame(make_packet(EStop(1), Address.HOST, BCAST, 40_000), 0), now)
    host_acks(node, node.data_to_send(UP, now), now)
    assert node.estop_msg_id == 40_000
    return node, now


def test_a_new_host_session_forgets_the_estop_id() -> None:
    """A host that reconnects numbers its messages afresh: its release must not look older than the e-stop."""
    node, now = _after_estop()
    now += MS
    node.receive_data(UP, encode_control(FrameKind.RESET, 0x33), now)  # the host's link starts a new session
    node.handle_timer(now)
    assert node.estop_msg_id is None
    assert not node.overtaken_by_estop(1)


def test_the_estop_id_is_forgotten_after_the_memory_window() -> None:
    from armbus.joints.node import ESTOP_MEMORY_NS

    node, now = _after_estop()
    node.handle_timer(now + ESTOP_MEMORY_NS // 2)
    assert node.overtaken_by_estop(39_999)  # still inside the window: an older release is refused
    t = now + ESTOP_MEMORY_NS
    while t < now + ESTOP_MEMORY_NS + 10 * MS:
        node.handle_timer(t)
        t = node.next_deadline() or t + MS
    assert node.estop_msg_id is None


def test_torque_on_right_behind_a_clear_is_taken_within_one_control_period() -> None:
    """A host releases an e-stop with clear_flags and powers the joint at once: the torque write arrives before
    the control core has taken the clear, and is accepted (the core applies the clear first, in mailbox order).
    A torque write with no clear in front of it is still refused BUSY while the flag stands."""
    node, now = opened_node()
    host, me = Address.HOST, Address.UNASSIGNED
    torque = Write(BY_NAME["torque_enable"].address, b"\x01")
    clear = Write(BY_NAME["clear_flags"].address, bytes((int(ESTOPPED),)))
    node.receive_data(UP, wire_frame(make_packet(EStop(1), host, BCAST, 1), 0), now)
    now = node.control.next_deadline()
    node.handle_timer(now)
    assert node.control.flags & ESTOPPED
    replies = []
    for seq, packet in enumerate([make_packet(Heartbeat(0), host, BCAST, 2), make_packet(torque, host, me, 3),
                                  make_packet(clear, host, me, 4), make_packet(torque, host, me, 5)], start=1):
        node.receive_data(UP, wire_frame(packet, seq), now)  # all at one instant: no control tick between
        out = node.data_to_send(UP, now)
        host_acks(node, out, now)
        frames = [decode_wire(p + b"\x00") for p in out.split(b"\x00")[:-1]]
        replies += [decode_packet(f.packet) for f in frames if f.packet is not None and f.packet.type != MsgType.FAULT]
    errors = [r for r in replies if isinstance(r, Error)]
    assert [e.kind for e in errors] == [ErrorKind.BUSY]  # the first torque write only
    now = node.control.next_deadline()
    node.handle_timer(now)
    assert not node.control.flags & ESTOPPED
    assert node.control.torque
