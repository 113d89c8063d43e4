"""The serve hub, sans-I/O: clients as byte streams, joint 1 as a hop-link endpoint, time stepped by hand."""

from __future__ import annotations

import struct

from armbus.bus.codec import Packet
from armbus.bus.link import LinkConfig, LinkEndpoint, PacketReceived
from armbus.bus.messages import EStop, State, SyncReadReply, SyncRecord, Torque, decode_packet, make_packet
from armbus.bus.wire import Address, GoalMode, MsgType, StatusFlag
from armbus.controller import ops
from armbus.controller import serveproto as sp
from armbus.controller.servehub import ServeHub
from armbus.joints.registers import STATE_BLOCK, STATE_BLOCK_FORMAT

STEP = 50_000  # ns


class Rig:
    def __init__(self, soft: int = 1 << 18, hard: int = 1 << 22) -> None:
        self.hub = ServeHub(LinkConfig(), seed=1, soft_limit=soft, hard_limit=hard)
        self.joint = LinkEndpoint(LinkConfig(), seed=2, name="joint1")
        self.now = 0
        self.on_bus: list[Packet] = []
        self.run()

    def run(self, steps: int = 200) -> None:
        for _ in range(steps):
            self.now += STEP
            for end in (self.hub, self.joint):
                deadline = end.next_deadline()
                if deadline is not None and deadline <= self.now:
                    end.handle_timer(self.now)
            down = self.hub.data_to_send(self.now)
            if down:
                self.joint.receive_data(down, self.now)
            up = self.joint.data_to_send(self.now)
            if up:
                self.hub.receive_data(up, self.now)
            while (ev := self.joint.next_event()) is not None:
                if isinstance(ev, PacketReceived):
                    self.on_bus.append(ev.packet)

    def client(self, key: int, flags: int = sp.WANT_PACKETS) -> None:
        self.hub.connect(key, f"pid {key} (client)")
        self.hub.client_data(key, sp.Hello(sp.VERSION, flags, "").encode(), self.now)

    def say(self, key: int, *messages: sp.Send | sp.Lease) -> None:
        self.hub.client_data(key, b"".join(m.encode() for m in messages), self.now)

    def heard(self, key: int) -> list[sp.Message]:
        reader = sp.FrameReader()
        reader.feed(self.hub.output(key))
        return list(reader.frames())

    def answer(self, request: Packet, reply: Packet) -> None:
        self.joint.send(reply._replace(msg_id=request.msg_id), self.now)


def read_packet(msg_id: int, dst: int = 1) -> Packet:
    return make_packet(ops.read_request("bus_address"), Address.HOST, dst, msg_id)


def test_two_clients_with_the_same_msg_id_get_their_own_replies() -> None:
    rig = Rig()
    rig.client(1)
    rig.client(2)
    rig.heard(1), rig.heard(2)
    rig.say(1, sp.Send(read_packet(5, dst=1), False))
    rig.say(2, sp.Send(read_packet(5, dst=3), False))
    rig.run()
    assert len(rig.on_bus) == 2 and rig.on_bus[0].msg_id != rig.on_bus[1].msg_id  # the hub's own ids on the bus
    for request, value in zip(rig.on_bus, (b"\x01", b"\x03"), strict=True):
        rig.answer(request, Packet(request.dst, 0, MsgType.READ_REPLY, 0, 16, b"\x24\x00" + value))
    rig.run()
    for key, value in ((1, 1), (2, 3)):
        got = rig.heard(key)
        assert sp.Acked(5) in got
        replies = [m.packet for m in got if isinstance(m, sp.Received)]
        assert len(replies) == 1 and replies[0].msg_id == 5 and replies[0].payload[-1] == value


def test_unsolicited_states_fan_out_to_every_packet_client_only() -> None:
    rig = Rig()
    rig.client(1)
    rig.client(2)
    rig.client(3, flags=0)  # a client that asked for no packets (a tap asks for wire bytes only)
    state = make_packet(State(int(StatusFlag.TORQUE_ON), 1, 2, 3, 250, 12000), 2, Address.HOST, 900)
    rig.joint.send(state, rig.now)
    rig.run()
    for key in (1, 2):
        assert [m.packet for m in rig.heard(key) if isinstance(m, sp.Received)] == [state]
    assert not any(isinstance(m, sp.Received) for m in rig.heard(3))
    assert rig.hub.counters.fanned_out == 2


def test_the_lease_refuses_motion_of_others_but_not_their_estop() -> None:
    rig = Rig()
    rig.client(1)
    rig.client(2)
    rig.say(1, sp.Lease(1, sp.ACQUIRE, ""))
    assert sp.LeaseAnswer(1, True, "pid 1 (client)") in rig.heard(1)
    assert sp.LeaseHolder(False, "pid 1 (client)") in rig.heard(2)
    rig.say(2, sp.Lease(9, sp.ACQUIRE, "B"))
    assert rig.heard(2) == [sp.LeaseAnswer(9, False, "pid 1 (client)")]
    rig.say(2, sp.Send(make_packet(Torque(1), 0, 1, 11), False), sp.Send(make_packet(EStop(2), 0, 0xFF, 12), True))
    rig.run()
    got = rig.heard(2)
    refused = next(m for m in got if isinstance(m, sp.Failed))
    assert refused.msg_id == 11 and "held by pid 1 (client)" in refused.text
    assert sp.Acked(12) in got
    assert [p.type for p in rig.on_bus] == [MsgType.ESTOP]


def test_an_estop_takes_back_every_clients_queued_goals() -> None:
    rig = Rig()
    rig.client(1)
    rig.client(2)
    rig.say(1, sp.Lease(1, sp.ACQUIRE, ""))
    goals = [make_packet(ops.sync_write_goals({1: 0.1 * i}), 0, Address.BROADCAST, 100 + i) for i in range(4)]
    rig.say(1, *(sp.Send(g, False) for g in goals))
    rig.say(2, sp.Send(make_packet(EStop(1), 0, Address.BROADCAST, 7), True))
    rig.run()
    types = [p.type for p in rig.on_bus]
    assert types[0] == MsgType.ESTOP or types[1] == MsgType.ESTOP  # behind the frame in flight at most
    failed = [m for m in rig.heard(1) if isinstance(m, sp.Failed)]
    assert failed and all("e-stop" in m.text for m in failed)
    assert len(failed) + types.count(MsgType.SYNC_WRITE) == 4


def test_a_slow_client_loses_telemetry_not_answers_and_learns_how_much() -> None:
    rig = Rig(soft=2000)
    rig.client(1)
    rig.client(2)
    rig.heard(1)
    fast = 0
    for i in range(200):
        rig.joint.send(make_packet(State(0, i, 0, 0, 250, 12000), 2, Address.HOST, i), rig.now)
        rig.run(10)
        fast += sum(isinstance(m, sp.Received) for m in rig.heard(1))  # client 1 reads as it comes
    rig.say(2, sp.Send(read_packet(33), False))
    rig.run()
    request = rig.on_bus[-1]
    rig.answer(request, Packet(1, 0, MsgType.READ_REPLY, 0, 16, b"\x24\x00\x01"))
    rig.run()
    assert rig.hub.pending_output(2) >= 2000  # never drained: over the soft limit
    slow = rig.heard(2)
    assert sp.Acked(33) in slow and any(isinstance(m, sp.Received) and m.packet.msg_id == 33 for m in slow)
    dropped = rig.hub.counters.dropped
    assert dropped > 100
    assert fast == 200  # the other client got every one
    # the count rides ahead of the next frame the client gets (here the answer, which is never dropped)
    assert sp.Dropped(dropped) in slow and slow.index(sp.Dropped(dropped)) < slow.index(sp.Acked(33))
    rig.joint.send(make_packet(State(0, 0, 0, 0, 250, 12000), 2, Address.HOST, 999), rig.now)
    rig.run()
    again = rig.heard(2)
    assert isinstance(again[0], sp.Received) and again[0].packet.msg_id == 999  # read again: nothing new lost


def test_a_client_that_never_reads_is_disconnected_at_the_hard_limit() -> None:
    rig = Rig(soft=100, hard=3000)
    rig.client(1)
    rig.say(1, sp.Lease(1, sp.ACQUIRE, "x" * 1000), sp.Lease(2, sp.RELEASE, ""), sp.Lease(3, sp.ACQUIRE, "x" * 1000))
    assert rig.hub.closing() == [(1, "it read nothing while 3000 bytes waited for it")]
    assert rig.hub.counters.disconnected_slow == 1


def test_garbage_from_a_client_drops_that_client() -> None:
    rig = Rig()
    rig.client(1)
    rig.hub.client_data(1, b"\xff\xff\xff\xff", rig.now)
    [(key, why)] = rig.hub.closing()
    assert key == 1 and why.startswith("protocol error")
    rig.hub.connect(2, "pid 2")
    rig.hub.client_data(2, sp.Send(read_packet(1), False).encode(), rig.now)  # before HELLO
    assert rig.hub.closing()[0][0] == 2


def test_the_holder_going_away_frees_the_lease_and_makes_torqued_joints_hold() -> None:
    rig = Rig()
    rig.client(1)
    rig.client(2)
    rig.say(1, sp.Lease(1, sp.ACQUIRE, "ctl"))
    rig.heard(2)
    rig.hub.disconnect(1, rig.now)
    assert rig.hub.lease.name is None
    assert rig.heard(2) == [sp.LeaseHolder(False, "")]
    rig.run()
    [read] = rig.on_bus
    assert read.type == MsgType.SYNC_READ and read.dst == Address.BROADCAST
    block = struct.Struct(STATE_BLOCK_FORMAT)
    records = (SyncRecord(1, 0, block.pack(100, 0, 0, 250, 12000, 0)),
               SyncRecord(2, int(StatusFlag.TORQUE_ON | StatusFlag.MOVING),
                          block.pack(1_234_567, 500_000, 300, 250, 12000, int(StatusFlag.TORQUE_ON))))
    rig.answer(read, make_packet(SyncReadReply(*STATE_BLOCK, records), 2, 0, 0))
    rig.run()
    [hold] = rig.on_bus[1:]
    assert hold.dst == 2 and hold.type == MsgType.SET_GOAL
    goal = decode_packet(hold)
    assert (goal.mode, goal.value) == (int(GoalMode.POSITION), 1_234_567)  # type: ignore[attr-defined]
    assert rig.hub.counters.holds == 1
    assert not any(isinstance(m, sp.Received) for m in rig.heard(2))  # the hub's own reply goes to nobody


def test_a_new_cycle_takes_back_the_same_clients_older_one_only() -> None:
    from armbus.bus.cycle import Cycle

    rig = Rig()
    rig.client(1)
    rig.client(2)
    rig.say(1, sp.Lease(1, sp.ACQUIRE, ""))
    busy = make_packet(ops.sync_read_states(), 0, Address.BROADCAST, 1)  # keeps the link busy: the rest queue
    rig.say(2, sp.Send(busy, False), sp.Send(make_packet(Cycle(56, 15), 0, Address.BROADCAST, 2), False))
    cycle = Cycle(56, 15, int(GoalMode.POSITION), 1, (0, 0, 0))
    rig.say(1, *(sp.Send(make_packet(cycle, 0, Address.BROADCAST, 10 + i), False) for i in range(3)))
    rig.run()
    mine = [m for m in rig.heard(1) if isinstance(m, sp.Failed)]
    assert [m.msg_id for m in mine] == [10, 11] and all("superseded" in m.text for m in mine)
    assert not any(isinstance(m, sp.Failed) for m in rig.heard(2))  # the other client's cycle stays
    assert [p.type for p in rig.on_bus].count(MsgType.CYCLE) == 2
    assert rig.hub.counters.superseded == 2


def test_a_tap_gets_the_line_both_ways_with_times() -> None:
    rig = Rig()
    rig.client(1)
    rig.client(9, flags=sp.WANT_WIRE)
    rig.heard(9)
    rig.say(1, sp.Send(read_packet(3), False))
    rig.run()
    wire = [m for m in rig.heard(9) if isinstance(m, sp.Wire)]
    assert {m.direction for m in wire} == {sp.TO_ARM, sp.TO_HOST}
    assert all(0 < m.time <= rig.now for m in wire)
    assert [m.time for m in wire] == sorted(m.time for m in wire)
    assert not any(isinstance(m, sp.Received) for m in rig.heard(9))


def test_a_packet_the_bus_cannot_carry_drops_its_client_not_the_hub() -> None:
    rig = Rig()
    rig.client(1)
    rig.client(2)
    rig.say(1, sp.Send(Packet(0, 1, MsgType.READ, 5, 16, bytes(1000)), False))
    [(key, why)] = rig.hub.closing()
    assert key == 1 and "cannot carry" in why
    rig.say(2, sp.Send(read_packet(6), False))
    rig.run()
    assert [p.msg_id for p in rig.on_bus] != [] and rig.on_bus[-1].type == MsgType.READ
