"""The cyclic exchange on a 6-joint chain in simulated time (joints/cyclic.py, docs/protocol.md "The cyclic
exchange"): every joint latches its goal at the same instant, the reply comes back with one record per joint,
chain end first, a cycle may read nothing, and a CYCLE sent to one joint is refused."""

from __future__ import annotations

from armbus.bus.cycle import GOAL_TAKEN, Cycle, CycleReply
from armbus.bus.wire import Address, ErrorKind, GoalMode, MsgType
from armbus.controller.events import CommandRefused, HostEvent
from armbus.hil.simarm import SimArm

MS = 1_000_000
JOINTS = 6
GOALS = (10_000, 20_000, 30_000, 40_000, 50_000, 60_000)


class Cyclic:
    """An enumerated 6-joint SimArm with torque on; every CYCLE_REPLY, ERROR and goal latch collected."""

    def __init__(self) -> None:
        self.arm = SimArm(joints=JOINTS, seed=3, timeout=0.05)
        self.replies: list[CycleReply] = []
        self.refused: list[CommandRefused] = []
        self.latches: list[tuple[int, int, int]] = []
        self.arm.add_listener(self._listen)
        self.arm.enumerate()
        self.arm.torque(True)
        for node in self.arm.virtual_arm.joints:
            node.control.latch_hooks.append(lambda t, tag, a=node.address: self.latches.append((a, t, tag)))

    def _listen(self, event: HostEvent) -> None:
        message = getattr(event, "message", None)
        if isinstance(message, CycleReply):
            self.replies.append(message)
        elif isinstance(event, CommandRefused):
            self.refused.append(event)

    def run_ms(self, ms: float) -> None:
        self.arm.sleep_until(self.arm.now() + int(ms * MS))


def test_every_joint_latches_at_the_same_instant_and_the_reply_grows_up_the_chain() -> None:
    c = Cyclic()
    msg_id = c.arm.send(Cycle(0x0038, 10, int(GoalMode.POSITION), 1, GOALS), int(Address.BROADCAST))
    c.run_ms(10)
    assert sorted(a for a, _, _ in c.latches) == list(range(1, JOINTS + 1))
    assert len({t for _, t, _ in c.latches}) == 1, c.latches
    assert {tag for _, _, tag in c.latches} == {msg_id}
    assert [n.control.goal for n in c.arm.virtual_arm.joints] == list(GOALS)
    assert len(c.replies) == 1
    records = c.replies[0].records
    assert [r.address for r in records] == list(range(JOINTS, 0, -1))
    assert all(r.goal_result == GOAL_TAKEN and r.read_result == 0 and len(r.data) == 10 for r in records)


def test_a_cycle_sent_to_one_joint_is_refused_and_goes_nowhere() -> None:
    c = Cyclic()
    forwarded = [n.counters.forwarded for n in c.arm.virtual_arm.joints]
    msg_id = c.arm.send(Cycle(0x0038, 10, int(GoalMode.POSITION), 1, GOALS[:2]), 1)
    c.run_ms(10)
    assert [(e.src, e.msg_id, e.orig_type, e.kind) for e in c.refused] == [
        (1, msg_id, int(MsgType.CYCLE), int(ErrorKind.INSTRUCTION))]
    assert c.latches == [] and c.replies == []
    assert [n.counters.forwarded for n in c.arm.virtual_arm.joints] == forwarded


def test_a_cycle_reading_nothing_reports_status_and_outcomes_only() -> None:
    c = Cyclic()
    c.arm.send(Cycle(0, 0, int(GoalMode.POSITION), 1, GOALS), int(Address.BROADCAST))
    c.run_ms(10)
    assert len(c.replies) == 1
    assert [(r.address, r.result, r.data) for r in c.replies[0].records] == [
        (a, 0x00, b"") for a in range(JOINTS, 0, -1)]


def test_a_taken_cycle_goal_is_what_the_goal_registers_say() -> None:
    arm = SimArm(joints=2, seed=3)
    arm.enumerate()
    arm.torque(True)
    arm.exchange({"joint1": 0.25, "joint2": -0.5})
    assert arm.read("joint1", "goal_position") == 250_000 and arm.read("joint2", "goal_position") == -500_000
    assert arm.read("joint2", "goal_mode") == int(GoalMode.POSITION)
