"""Joint node handlers, fed by a host link over zero-latency wires (tests/joints/joint_bench.py)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joint_bench import MS, Bench, opened_node, wire_frame

from armbus.bus.codec import Packet
from armbus.bus.link import LinkState
from armbus.bus.messages import (
    Enumerate,
    EnumerateReply,
    Error,
    EStop,
    Fault,
    Heartbeat,
    Ping,
    PingReply,
    Read,
    ReadReply,
    Reboot,
    SetGoal,
    State,
    SyncRead,
    SyncReadReply,
    SyncWrite,
    Torque,
    Undeliverable,
    Write,
    WriteReply,
    decode_packet,
    make_packet,
)
from armbus.bus.wire import Address, ErrorKind, FaultCode, GoalMode, MsgType, StatusFlag, UndeliverableReason
from armbus.joints.control import Command, CommandKind
from armbus.joints.handlers import delivery_failed
from armbus.joints.node import DOWN, UP, JointNode, make_joint
from armbus.joints.registers import BY_NAME, STATE_BLOCK, STATE_BLOCK_FORMAT

BCAST = Address.BROADCAST


def enc(name: str, value: int) -> bytes:
    r = BY_NAME[name]
    return value.to_bytes(r.size, "little", signed=r.signed)


def addr(name: str) -> int:
    return BY_NAME[name].address


def enumerated(n: int) -> Bench:
    b = Bench(n)
    mid = b.request(Enumerate(), dst=BCAST, run_ms=10)
    assert isinstance(b.reply(mid), EnumerateReply)
    return b


def test_enumeration_assigns_chain_positions_and_finds_the_end() -> None:
    b = Bench(3)
    assert all(n.address == Address.UNASSIGNED for n in b.nodes)
    mid = b.request(Enumerate(), dst=BCAST, run_ms=10)
    reply = b.reply(mid)
    assert isinstance(reply, EnumerateReply)
    assert [r.serial for r in reply.records] == [1000, 1001, 1002]
    assert [n.address for n in b.nodes] == [1, 2, 3]
    assert [n.is_last for n in b.nodes] == [False, False, True]
    assert b.received[-1].src == 3


def test_chain_end_queues_no_broadcasts_downstream() -> None:
    b = enumerated(3)
    last, middle = b.nodes[2], b.nodes[1]
    before = (last.links[DOWN].counters.data_sent, last.links[DOWN].counters.failures, last.counters.delivery_failures)
    middle_sent = middle.links[DOWN].counters.data_sent
    probes = last.links[DOWN].counters.retransmits
    for _ in range(20):
        b.request(Heartbeat(0), dst=BCAST, run_ms=20)
    b.request(SyncWrite(addr("goal_position"), 4, 1, enc("goal_position", 5) * 3), dst=BCAST)
    b.request(EStop(1), dst=BCAST)
    after = (last.links[DOWN].counters.data_sent, last.links[DOWN].counters.failures, last.counters.delivery_failures)
    assert after == before  # nothing queued toward the open port, so nothing failed
    assert middle.links[DOWN].counters.data_sent >= middle_sent + 22  # the others pass them on
    assert last.links[DOWN].counters.retransmits > probes  # but the end keeps probing for a new neighbour
    assert last.control.state.status & StatusFlag.ESTOPPED and last.registers.get("goal_position") == 5


def test_enumeration_right_after_power_up_finds_the_end_quickly() -> None:
    b = Bench(3, boot_ms=1)  # the links are still opening
    mid = b.request(Enumerate(), dst=BCAST, run_ms=40)
    reply = b.reply(mid)
    assert isinstance(reply, EnumerateReply) and [r.serial for r in reply.records] == [1000, 1001, 1002]
    arrival = next(k for k, p in enumerate(b.received) if p.msg_id == mid)
    assert arrival == len(b.received) - 1 and b.nodes[2].is_last
    assert b.nodes[2].links[DOWN].state is not LinkState.DOWN  # answered before its link gave up


def test_joint_plugged_in_later_is_found_by_the_next_enumeration() -> None:
    b = Bench(3, connected=2)
    reply = b.reply(b.request(Enumerate(), dst=BCAST, run_ms=10))
    assert isinstance(reply, EnumerateReply) and len(reply.records) == 2 and b.nodes[1].is_last
    b.connected = 3  # plug in the third joint; the second's DOWN link is still probing
    b.run(100 * MS)
    assert b.nodes[1].links[DOWN].is_open
    reply = b.reply(b.request(Enumerate(), dst=BCAST, run_ms=10))
    assert isinstance(reply, EnumerateReply) and [r.serial for r in reply.records] == [1000, 1001, 1002]
    assert [n.is_last for n in b.nodes] == [False, False, True]


def test_ping_unicast_and_broadcast() -> None:
    b = enumerated(3)
    reply = b.reply(b.request(Ping(), dst=2))
    assert reply == PingReply(0x0A01, 1, 0, 1001, 2)
    replies = b.replies(b.request(Ping(), dst=BCAST))
    assert sorted(r.address for r in replies if isinstance(r, PingReply)) == [1, 2, 3]


def test_unassigned_joint_answers_at_unassigned_address() -> None:
    b = Bench(2)
    reply = b.reply(b.request(Ping(), dst=Address.UNASSIGNED))
    assert isinstance(reply, PingReply) and reply.serial == 1000


def test_write_then_read_back() -> None:
    b = enumerated(2)
    data = enc("goal_position", 123_456) + enc("goal_velocity", -5) + enc("goal_current", 7)
    assert b.reply(b.request(Write(addr("goal_position"), data), dst=2)) == WriteReply(addr("goal_position"), 10)
    assert b.reply(b.request(Read(addr("goal_position"), 10), dst=2)) == ReadReply(addr("goal_position"), data)
    assert b.nodes[0].registers.get("goal_position") == 0


@pytest.mark.parametrize(
    ("msg", "kind"),
    [
        (Read(1, 1), ErrorKind.RANGE),
        (Read(0, 9), ErrorKind.LENGTH),
        (Write(9999, b"\x00"), ErrorKind.RANGE),
        (Write(addr("goal_position"), b"\x00\x00"), ErrorKind.LENGTH),
        (Write(addr("model_number"), enc("model_number", 1)), ErrorKind.ACCESS),
        (Write(addr("status"), b"\x00"), ErrorKind.ACCESS),
        (Write(addr("torque_enable"), b"\x02"), ErrorKind.LIMIT),
        (Write(addr("goal_position"), enc("goal_position", -100_000_001)), ErrorKind.LIMIT),
        (SetGoal(9, 0), ErrorKind.LIMIT),
        (SetGoal(GoalMode.CURRENT, 100_000), ErrorKind.LIMIT),
        (Torque(3), ErrorKind.LIMIT),
    ],
)
def test_bad_requests_get_an_error_and_change_nothing(msg: object, kind: ErrorKind) -> None:
    b = enumerated(1)
    node = b.nodes[0]
    before = bytes(node.registers.mem[:STATE_BLOCK[0]])
    reply = b.reply(b.request(msg, dst=1))  # type: ignore[arg-type]
    assert isinstance(reply, Error) and reply.kind == kind and reply.orig_type == msg.TYPE  # type: ignore[attr-defined]
    assert bytes(node.registers.mem[:STATE_BLOCK[0]]) == before
    assert node.control.commands.accepted == 0 or not node.control.torque


def test_persistent_write_refused_with_torque_on() -> None:
    b = enumerated(1)
    b.request(Torque(1), dst=1)
    node = b.nodes[0]
    assert node.control.torque
    reply = b.reply(b.request(Write(addr("position_max"), enc("position_max", 1000)), dst=1))
    assert isinstance(reply, Error) and reply.kind == ErrorKind.ACCESS
    assert node.registers.get("position_max") == BY_NAME["position_max"].default
    b.request(Torque(0), dst=1)
    assert isinstance(b.reply(b.request(Write(addr("position_max"), enc("position_max", 1000)), dst=1)),
                      WriteReply)
    assert node.control.p_max == pytest.approx(1000e-6)  # the control core reloaded its limits


def test_malformed_payload_gets_length_error_and_replies_types_are_ignored() -> None:
    b = enumerated(1)
    b.send_raw(Packet(Address.HOST, 1, MsgType.READ, 77, 32, b"\x00"))
    reply = b.reply(77)
    assert isinstance(reply, Error) and reply.kind == ErrorKind.LENGTH
    b.send_raw(make_packet(State(0, 0, 0, 0, 0, 0), Address.HOST, 1, 78))
    assert b.replies(78) == []
    assert b.nodes[0].counters.ignored == 1


def test_sync_write_each_joint_takes_its_slice() -> None:
    b = enumerated(3)
    slices = enc("goal_position", 111) + enc("goal_position", 222)
    b.request(SyncWrite(addr("goal_position"), 4, 2, slices), dst=BCAST)
    assert [n.registers.get("goal_position") for n in b.nodes] == [0, 111, 222]
    assert [n.control.goal for n in b.nodes] == [0, 111, 222]  # and the control cores got the goal


def test_sync_write_bad_slice_reports_error_to_host() -> None:
    b = enumerated(2)
    mid = b.request(SyncWrite(addr("torque_enable"), 1, 1, b"\x01\x05"), dst=BCAST)
    err = b.reply(mid)
    assert isinstance(err, Error) and err.kind == ErrorKind.LIMIT
    assert b.received[-1].src == 2
    assert b.nodes[0].control.torque and not b.nodes[1].control.torque


def test_sync_read_collects_every_joint_state() -> None:
    b = enumerated(3)
    b.nodes[1].actuator.position = 0.25
    b.run(5 * MS)
    reply = b.reply(b.request(SyncRead(*STATE_BLOCK), dst=BCAST))
    assert isinstance(reply, SyncReadReply)
    assert [r.address for r in reply.records] == [1, 2, 3]
    positions = [struct.unpack(STATE_BLOCK_FORMAT, r.data)[0] for r in reply.records]
    assert abs(positions[1] - 250_000) < 10 and abs(positions[0]) < 10
    assert all(r.status & StatusFlag.REBOOTED for r in reply.records)


def test_set_goal_moves_joint() -> None:
    b = enumerated(2)
    b.request(Torque(1), dst=2)
    b.request(SetGoal(GoalMode.POSITION, 400_000), dst=2, run_ms=800)
    assert b.nodes[1].registers.get("present_position") == pytest.approx(400_000, abs=300)
    assert b.nodes[1].registers.get("goal_mode") == GoalMode.POSITION


def test_estop_stops_every_joint_then_blocks_motion() -> None:
    b = enumerated(3)
    for k in (1, 2, 3):
        b.request(Torque(1), dst=k, run_ms=1)
        b.request(SetGoal(GoalMode.VELOCITY, 2_000_000), dst=k, run_ms=1)
    b.run(200 * MS)
    b.request(EStop(1), dst=BCAST, run_ms=100)
    assert all(n.control.state.status & StatusFlag.ESTOPPED for n in b.nodes)
    assert all(abs(n.actuator.velocity) < 0.05 for n in b.nodes)
    assert sorted(p.src for p in b.received if p.type == MsgType.FAULT) == [1, 2, 3]
    err = b.reply(b.request(SetGoal(GoalMode.VELOCITY, 1), dst=2))
    assert isinstance(err, Error) and err.kind == ErrorKind.BUSY
    b.request(Write(addr("estop"), b"\x00"), dst=2)
    assert not b.nodes[1].control.state.status & StatusFlag.ESTOPPED


def test_heartbeat_watchdog() -> None:
    b = enumerated(2)
    for k in (1, 2):
        b.request(Write(addr("watchdog_period"), enc("watchdog_period", 50)), dst=k, run_ms=1)
        b.request(Torque(1), dst=k, run_ms=1)
    for _ in range(10):
        b.request(Heartbeat(0), dst=BCAST, run_ms=20)
    assert b.faults() == []
    b.run(100 * MS)
    faults = b.faults()
    assert {(f.code, f.active) for f in faults} == {(FaultCode.WATCHDOG, 1)}  # type: ignore[attr-defined]
    assert len(faults) == 2


def test_stall_fault_reported_upstream() -> None:
    b = enumerated(2)
    b.nodes[1].actuator.jammed = True
    b.request(Torque(1), dst=2)
    b.request(SetGoal(GoalMode.POSITION, 1_000_000), dst=2, run_ms=700)
    stall = [(p.src, decode_packet(p)) for p in b.received if p.type == MsgType.FAULT]
    assert (2, Fault(FaultCode.STALL, 1, stall[0][1].value)) in stall  # type: ignore[attr-defined]
    assert b.nodes[1].registers.get("fault_code") == FaultCode.STALL
    assert b.nodes[1].registers.get("torque_enable") == 0


def test_reboot_keeps_persistent_loses_volatile_and_resyncs() -> None:
    b = enumerated(2)
    b.request(Write(addr("position_max"), enc("position_max", 2_000_000)), dst=2)
    b.request(Write(addr("goal_velocity"), enc("goal_velocity", 42)), dst=2)
    b.request(Reboot(), dst=2, run_ms=100)
    node = b.nodes[1]
    assert node.counters.reboots == 1
    assert node.registers.get("position_max") == 2_000_000
    assert node.registers.get("goal_velocity") == 0
    assert node.address == Address.UNASSIGNED
    assert node.control.state.status & StatusFlag.REBOOTED
    assert any(f == Fault(FaultCode.REBOOTED, 1, 1) for f in b.faults())
    # its DOWN link has probed for 80 ms since the reboot and nobody answered: it answers the ENUMERATE at once
    reply = b.reply(b.request(Enumerate(), dst=BCAST, run_ms=2))
    assert isinstance(reply, EnumerateReply) and len(reply.records) == 2
    assert b.reply(b.request(Ping(), dst=2)) == PingReply(0x0A01, 1, 0, 1001, 2)


def test_state_telemetry_is_register_controlled() -> None:
    b = enumerated(1)
    b.run(50 * MS)
    assert not [p for p in b.received if p.type == MsgType.STATE]
    b.request(Write(addr("state_period"), enc("state_period", 10)), dst=1, run_ms=100)
    states = [p for p in b.received if p.type == MsgType.STATE]
    assert 9 <= len(states) <= 11


def test_full_mailbox_withholds_the_ack_then_the_retry_succeeds() -> None:
    b = enumerated(1)
    node = b.nodes[0]
    box = node.control.commands
    while box.put(Command(CommandKind.HEARTBEAT)):
        pass
    b._msg_id += 1
    assert b.host.send(make_packet(Ping(), Address.HOST, 1, b._msg_id), b.now)
    b.run(MS // 4)  # before the next control tick
    assert node.links[UP].counters.refused >= 1 and b.replies(b._msg_id) == []
    b.run(10 * MS)  # the tick drained the mailbox; the host's retransmission is accepted
    assert isinstance(b.reply(b._msg_id), PingReply)


def fresh_node() -> JointNode:
    return make_joint(serial=5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=80), max_size=12), st.sampled_from([UP, DOWN]))
def test_random_bytes_never_raise(chunks: list[bytes], port: int) -> None:
    node = fresh_node()
    now = 0
    for chunk in chunks:
        now += 100_000
        node.receive_data(port, chunk, now)
        node.data_to_send(UP, now)
        node.data_to_send(DOWN, now)
        node.handle_timer(now)
    assert node.control.state.position == 0


def test_byte_at_a_time_equals_whole_chunk() -> None:
    frames = b"".join(wire_frame(make_packet(Ping(), Address.HOST, Address.UNASSIGNED, 5), seq=0) for _ in range(1))
    results = []
    for bytewise in (False, True):
        node = fresh_node()
        node.receive_data(UP, b"", 0)
        if bytewise:
            for byte in frames:
                node.rx_byte(UP, byte, 0)
        else:
            node.receive_data(UP, frames, 0)
        results.append((node.links[UP].counters.frames_received, node.links[UP].counters.bytes_received))
    assert results[0] == results[1] == (1, len(frames))


def test_a_block_of_frames_is_handled_frame_by_frame_so_a_full_queue_refuses_instead_of_dropping_a_reply() -> None:
    """Ten PINGs in one block to a joint whose host never acks: each frame is routed and handled at its delimiter,
    so the replies fill the UP queue (1 in flight + 8) before the tenth frame is checked: it is not acked (the host
    retries later), and no reply is refused. The same as feeding the frames one call each."""
    pings = [wire_frame(make_packet(Ping(), Address.HOST, Address.UNASSIGNED, 100 + k), seq=k) for k in range(10)]
    outcomes = []
    for together in (True, False):
        node, now = opened_node()
        if together:
            node.receive_data(UP, b"".join(pings), now)
        else:
            for frame in pings:
                node.receive_data(UP, frame, now)
        up = node.links[UP].counters
        outcomes.append((up.data_delivered, up.refused, node.counters.tx_refused, node.counters.handled,
                         node.data_to_send(UP, now)))
    assert outcomes[0] == outcomes[1]
    delivered, refused, tx_refused, handled, _ = outcomes[0]
    assert (delivered, handled, tx_refused) == (9, 9, 0) and refused == 1


packets = st.builds(
    Packet,
    src=st.sampled_from([Address.HOST, 1, 7]),
    dst=st.sampled_from([Address.UNASSIGNED, Address.BROADCAST, 1, 9]),
    type=st.sampled_from([int(t) for t in MsgType]),
    msg_id=st.integers(0, 0xFFFF),
    ttl=st.integers(0, 3),
    payload=st.binary(max_size=40),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(packets, min_size=1, max_size=10))
def test_random_packets_never_raise_and_never_power_the_motor_uninvited(stream: list[Packet]) -> None:
    node, now = opened_node()
    for seq, packet in enumerate(stream):
        now += 300_000
        node.receive_data(UP, wire_frame(packet, seq), now)
        node.data_to_send(UP, now)
        node.data_to_send(DOWN, now)
        node.handle_timer(now)
    enabling = any(p.type in (MsgType.TORQUE, MsgType.WRITE, MsgType.SYNC_WRITE) for p in stream)
    assert enabling or not node.control.torque


def test_unknown_message_type_is_a_counted_line_error() -> None:
    from cobs import cobs

    from armbus.bus.crc import crc16

    node, now = opened_node()
    body = bytes([0x10, 0, 0, Address.HOST, Address.UNASSIGNED, 0x3F, 1, 0, 32, 0])
    frame = body + crc16(body).to_bytes(2, "big")
    node.receive_data(UP, cobs.encode(frame) + b"\x00", now)
    assert node.links[UP].counters.framing_errors == 1
    assert node.counters.handled == 0
    assert node.data_to_send(UP, now) == b""  # no ack, no reply


def test_sync_read_failed_by_a_rebooting_neighbour_does_not_end_the_chain_for_sync_writes() -> None:
    """Joint 2 reboots with a SYNC_READ in flight toward it: joint 1 answers that read with its own record but
    stays a middle joint, so the next SYNC_WRITE still reaches joints 2 and 3 (before the fix joint 1 marked
    itself last and dropped every remainder, unreported, until the next ENUMERATE)."""
    b = enumerated(3)
    b.nodes[1].reboot(b.now)  # bridge off for its boot time: joint 1's forward fails (resync when it is back)
    mid = b.request(SyncRead(addr("present_position"), 4), dst=BCAST, run_ms=400)
    got = b.replies(mid)  # the reply, and the forward's failure reported (UNDELIVERABLE LINK_RESET)
    reply = next(m for m in got if isinstance(m, SyncReadReply))
    assert [r.address for r in reply.records] == [1]
    assert b.nodes[0].is_last is False
    # Joint 2 is back but unassigned (no ENUMERATE yet): it passes the whole SYNC_WRITE on, joint 3 applies its own.
    b.request(SyncWrite(addr("goal_position"), 4, 1, enc("goal_position", 7) * 3), dst=BCAST, run_ms=10)
    assert b.nodes[0].registers.get("goal_position") == 7 and b.nodes[2].registers.get("goal_position") == 7


def test_broadcasts_a_middle_joint_cannot_pass_down_are_reported_until_re_enumeration() -> None:
    """The cable below joint 2 is cut and its DOWN link declared dead: joint 3 misses every broadcast. Joint 2
    knows (enumeration found it not last), so each SYNC_WRITE remainder, heartbeat and ESTOP it cannot pass on is
    reported UNDELIVERABLE(LINK_DOWN); a SYNC_READ is answered with the records so far. Once the next ENUMERATE
    makes joint 2 the chain end, nothing is reported any more."""
    b = enumerated(3)
    middle = b.nodes[1]
    b.connected = 2
    b.request(Heartbeat(0), dst=BCAST, run_ms=3000)  # its retries, then the RESET retries, run out
    assert middle.links[DOWN].state is LinkState.DOWN and middle.is_last is False

    def reports(msg_id: int) -> list[Undeliverable]:
        return [m for m in b.replies(msg_id) if isinstance(m, Undeliverable)]

    sw = b.request(SyncWrite(addr("goal_position"), 4, 1, enc("goal_position", 9) * 3), dst=BCAST, run_ms=20)
    hb = b.request(Heartbeat(0), dst=BCAST, run_ms=20)
    es = b.request(EStop(1), dst=BCAST, run_ms=20)
    for msg_id, kind in ((sw, MsgType.SYNC_WRITE), (hb, MsgType.HEARTBEAT), (es, MsgType.ESTOP)):
        got = reports(msg_id)
        assert len(got) == 1, (kind, got)
        assert (got[0].reporter, got[0].next_hop, got[0].orig_type, got[0].reason) == (
            2, 3, kind, UndeliverableReason.LINK_DOWN)
    assert b.nodes[1].registers.get("goal_position") == 9  # joints 1 and 2 took theirs
    sr = b.request(SyncRead(addr("present_position"), 4), dst=BCAST, run_ms=20)
    assert reports(sr) == []
    reply = next(m for m in b.replies(sr) if isinstance(m, SyncReadReply))
    assert [r.address for r in reply.records] == [1, 2]

    en = b.request(Enumerate(), dst=BCAST, run_ms=50)
    assert [r.serial for r in b.reply(en).records] == [1000, 1001]  # type: ignore[attr-defined]
    assert middle.is_last is True
    quiet = b.request(SyncWrite(addr("goal_position"), 4, 1, enc("goal_position", 3) * 2), dst=BCAST, run_ms=20)
    assert reports(quiet) == [] and reports(b.request(Heartbeat(0), dst=BCAST, run_ms=20)) == []


def _backlog_below_middle_joint(b: Bench) -> JointNode:
    """Cut the cable below joint 2 of 3 under a stream of SYNC_WRITEs: its DOWN queue fills, the frame in flight
    runs out of retries and the link resyncs (SYNCING) with the full queue still waiting."""
    middle = b.nodes[1]
    b.connected = 2
    for k in range(12):
        b.request(SyncWrite(addr("goal_position"), 4, 1, enc("goal_position", k) * 3), dst=BCAST, run_ms=1)
    while middle.links[DOWN].state is LinkState.OPEN:
        b.run(MS)
    assert middle.links[DOWN].state is LinkState.SYNCING and middle.links[DOWN].queue_space == 0
    return middle


def test_enumerate_behind_a_full_queue_waits_for_room_and_does_not_end_the_chain() -> None:
    """A full queue toward the next joint is a passing state: an ENUMERATE arriving then is held until there is
    room, not answered at once (that made the joint the chain end, and every later SYNC_WRITE remainder was then
    dropped for the joints below without a report)."""
    b = enumerated(3)
    middle = _backlog_below_middle_joint(b)
    en = b.request(Enumerate(), dst=BCAST, run_ms=30)
    assert b.replies(en) == [] and middle.is_last is False  # held
    assert middle.links[DOWN].state is LinkState.SYNCING and middle.links[DOWN].queue_space == 0
    b.connected = 3  # the cable is back: the link reopens, the backlog drains, the ENUMERATE follows it
    b.run(300 * MS)
    reply = b.reply(en)
    assert isinstance(reply, EnumerateReply) and [r.serial for r in reply.records] == [1000, 1001, 1002]
    assert [n.is_last for n in b.nodes] == [False, False, True]
    b.request(SyncWrite(addr("goal_position"), 4, 1, enc("goal_position", 77) * 3), dst=BCAST, run_ms=20)
    assert b.nodes[2].registers.get("goal_position") == 77


def test_enumerate_held_behind_a_full_queue_is_answered_when_the_link_dies() -> None:
    b = enumerated(3)
    middle = _backlog_below_middle_joint(b)
    en = b.request(Enumerate(), dst=BCAST, run_ms=30)
    assert b.replies(en) == []
    b.run(1000 * MS)  # the cable stays cut: the RESET retries run out, the link is declared dead
    assert middle.links[DOWN].state is LinkState.DOWN
    reply = b.reply(en)
    assert isinstance(reply, EnumerateReply) and [r.serial for r in reply.records] == [1000, 1001]
    assert middle.is_last is True


def test_enumerate_lost_to_a_rebooting_neighbour_goes_down_again_after_the_link_reset() -> None:
    """Joint 3 reboots just as the ENUMERATE leaves joint 2: the frame dies with its memory, and the link reset
    its boot brings fails it (LINK_RESET). The neighbour has just answered a new session, so joint 2 sends the
    ENUMERATE down again instead of taking itself for the chain end (which silenced every goal for joint 3)."""
    b = enumerated(3)
    b.nodes[2].reboot(b.now)
    en = b.request(Enumerate(), dst=BCAST, run_ms=100)
    assert b.nodes[1].links[DOWN].counters.resets_accepted >= 1  # the in-flight ENUMERATE was failed by the reset
    reply = b.reply(en)
    assert isinstance(reply, EnumerateReply) and [r.serial for r in reply.records] == [1000, 1001, 1002]
    assert [n.is_last for n in b.nodes] == [False, False, True]


def test_enumerate_failed_by_a_link_reset_does_not_displace_a_newer_one_held() -> None:
    """An older ENUMERATE failed by a link reset is sent again only if no newer one waits: the newer one is the
    host's current request and supersedes it."""
    b = enumerated(3)
    middle = _backlog_below_middle_joint(b)
    newer = b.request(Enumerate(), dst=BCAST, run_ms=30)
    held = middle.held_enumerate
    assert held is not None and held.msg_id == newer
    older = make_packet(Enumerate(), middle.address, BCAST, newer - 1)
    delivery_failed(middle, DOWN, older, UndeliverableReason.LINK_RESET, b.now)
    assert middle.held_enumerate is held
