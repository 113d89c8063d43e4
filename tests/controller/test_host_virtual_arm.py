"""The host node driving the virtual arm (simulated joints, simulated time): discovery, sync read/write."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from armbus.bus.messages import Enumerate, Message, Ping
from armbus.bus.wire import Address
from armbus.controller import ops
from armbus.controller.events import HostEvent, PacketAcked, ReplyReceived
from armbus.controller.host import HostNode
from armbus.hil.virtual_arm import VirtualArm

MS = 1_000_000
#: The chain end learns it is last when its forward toward the open connector fails: allow for the retries.
ENUMERATE_TIMEOUT = 3000 * MS


class Sim:
    def __init__(self, joints: int = 3) -> None:
        self.host = HostNode()
        self.arm = VirtualArm(joints, host=self.host, seed=3)
        self.events: list[HostEvent] = []
        self.arm.run_for(5 * MS)  # link handshake

    def call(self, fn: Callable[[HostNode, int], int]) -> int:
        msg_id = fn(self.host, self.arm.now)
        self.arm.kernel.wake("host")
        return msg_id

    def request(self, message: Message, dst: int, timeout_ns: int = 100 * MS) -> ReplyReceived:
        msg_id = self.call(lambda h, now: h.request(message, dst, now, timeout_ns))
        for _ in range(timeout_ns // MS + 10):
            self.arm.run_for(1 * MS)
            while (ev := self.host.next_event()) is not None:
                self.events.append(ev)
                if getattr(ev, "msg_id", None) == msg_id and not isinstance(ev, PacketAcked):
                    assert isinstance(ev, ReplyReceived), ev
                    return ev
        raise AssertionError(f"no outcome for request {msg_id}")


def test_enumerate_ping_and_sync_read() -> None:
    sim = Sim(3)
    reply = sim.request(Enumerate(), Address.BROADCAST, ENUMERATE_TIMEOUT)
    found = ops.decode_enumeration(reply.message)
    assert [j.address for j in found] == [1, 2, 3]
    assert [j.serial for j in found] == [0x1001, 0x1002, 0x1003]
    ping = ops.decode_ping(sim.request(Ping(), 2).message)
    assert ping.address == 2 and ping.serial == 0x1002
    states = ops.decode_states(sim.request(ops.sync_read_states(), Address.BROADCAST).message, sim.arm.now)
    assert [s.address for s in states] == [1, 2, 3]


def test_register_write_then_sync_write_goals_move_joints() -> None:
    sim = Sim(2)
    sim.request(Enumerate(), Address.BROADCAST, ENUMERATE_TIMEOUT)
    for address in (1, 2):
        ops.check_write_reply("torque_enable", sim.request(ops.write_request("torque_enable", 1), address).message)
    assert ops.decode_read("torque_enable", sim.request(ops.read_request("torque_enable"), 1).message) == 1
    sim.call(lambda h, now: h.send(ops.sync_write_goals({1: 0.3, 2: -0.2}), Address.BROADCAST, now))
    sim.arm.run_for(2000 * MS)
    goal = ops.decode_read("goal_position", sim.request(ops.read_request("goal_position"), 2).message)
    assert goal == -200_000
    states = ops.decode_states(sim.request(ops.sync_read_states(), Address.BROADCAST).message, sim.arm.now)
    assert states[0].position == pytest.approx(0.3, abs=0.02)
    assert states[1].position == pytest.approx(-0.2, abs=0.02)
