"""A 6-joint chain in simulated time: the joint firmware behind the real host stack (armbus.hil.simarm.SimArm on
armbus.hil.virtual_arm.VirtualArm, 1 Mbaud wires with their byte times): enumeration, sync write/read, e-stop order and
latency, watchdog, limits, reboot, and the bad-input rules."""

from __future__ import annotations

import pytest

from armbus.bus.errors import RemoteError
from armbus.bus.messages import Message, Read, SetGoal, Write
from armbus.bus.wire import Address, ErrorKind, FaultCode, GoalMode, MsgType, StatusFlag
from armbus.controller.events import CommandRefused, FaultReported, HostEvent
from armbus.hil.simarm import SimArm
from armbus.joints.node import DOWN, JointNode
from armbus.joints.registers import BY_NAME, STATE_BLOCK

MS = 1_000_000
JOINTS = 6
#: ESTOP on the wire: 10 header + 1 payload + 2 CRC bytes, +1 COBS, +1 delimiter = 15 bytes = 150 us at 1 Mbaud;
#: plus the wire turnaround (10 us). A hop may also find one largest frame (270 bytes, 2.7 ms) on the wire.
ESTOP_HOP_NS = 160_000
LARGEST_FRAME_NS = 2_700_000


class Chain:
    """A SimArm with six joints, enumerated, with every FaultReported event collected."""

    def __init__(self, seed: int = 3) -> None:
        self.arm = SimArm(joints=JOINTS, seed=seed, timeout=0.05)
        self.varm = self.arm.virtual_arm
        self.faults: list[FaultReported] = []
        self.errors: list[CommandRefused] = []
        self.arm.add_listener(self._listen)
        self.found = self.arm.enumerate()

    def _listen(self, event: HostEvent) -> None:
        if isinstance(event, FaultReported):
            self.faults.append(event)
        elif isinstance(event, CommandRefused):
            self.errors.append(event)

    def refused(self, message: Message, dst: int) -> str:
        """Send a request that must fail; the ErrorKind name of the joint's ERROR reply."""
        if message.TYPE in (MsgType.READ, MsgType.WRITE):
            with pytest.raises(RemoteError) as info:
                self.arm.request(message, dst)
            return str(info.value).split(": ")[-1].split(" ")[0]
        self.errors.clear()  # a message that gets no reply on success: its ERROR is unsolicited
        msg_id = self.arm.send(message, dst)
        self.run_ms(5)
        assert len(self.errors) == 1 and self.errors[0].orig_type == message.TYPE
        assert self.errors[0].msg_id == msg_id and (dst == Address.BROADCAST or self.errors[0].src == dst)
        return ErrorKind(self.errors[0].kind).name

    @property
    def nodes(self) -> list[JointNode]:
        return self.varm.joints

    def run_ms(self, ms: float) -> None:
        self.arm.sleep_until(self.arm.now() + int(ms * MS))

    def fault_sources(self, code: FaultCode, active: bool = True) -> list[int]:
        return sorted(f.address for f in self.faults if f.code == code and f.active == active)

    def all_moving(self, velocity: float) -> None:
        """Torque on and a velocity goal on every joint (rad/s)."""
        self.arm.torque(True)
        for k in range(1, JOINTS + 1):
            self.arm.set_goal(f"joint{k}", velocity=velocity)


@pytest.fixture
def chain() -> Chain:
    return Chain()


def test_enumeration_sync_write_and_sync_read(chain: Chain) -> None:
    assert [j.address for j in chain.found] == list(range(1, JOINTS + 1))
    assert [n.address for n in chain.nodes] == list(range(1, JOINTS + 1))
    assert [n.is_last for n in chain.nodes] == [False] * (JOINTS - 1) + [True]
    arm = chain.arm
    arm.torque(True)
    goals = {f"joint{k}": 50_000 * k for k in range(1, JOINTS + 1)}  # urad
    arm.sync_write("goal_position", goals)
    chain.run_ms(600)
    states = arm.read_states()
    assert list(states) == list(goals)
    for name, goal in goals.items():
        assert states[name].position == pytest.approx(goal * 1e-6, abs=2e-3)
        assert states[name].status & StatusFlag.TORQUE_ON
    assert [n.registers.get("goal_position") for n in chain.nodes] == list(goals.values())


def test_enumeration_is_quick_and_the_end_forwards_nothing() -> None:
    arm = SimArm(joints=JOINTS, seed=4, timeout=0.05)
    t0 = arm.now()
    arm.enumerate()
    assert arm.now() - t0 < 20 * MS  # the end knew at once that no neighbour ever answered
    arm.set_heartbeat(0.02)
    last = arm.virtual_arm.joints[-1]
    before = last.links[DOWN].counters.failures
    arm.sleep_until(arm.now() + 500 * MS)
    assert last.counters.handled >= 24  # the heartbeats reached it ...
    assert last.links[DOWN].counters.failures == before  # ... and stopped there


def test_estop_stops_all_six_in_chain_order_within_the_wire_time(chain: Chain) -> None:
    chain.all_moving(2.0)
    chain.run_ms(300)
    assert all(abs(n.actuator.velocity) > 1.5 for n in chain.nodes)
    stopped_at: dict[int, int] = {}
    for k, node in enumerate(chain.nodes, start=1):
        original = node.control.estop

        def spy(now: int, k: int = k, original=original) -> None:  # type: ignore[no-untyped-def]
            stopped_at.setdefault(k, now)
            original(now)

        node.control.estop = spy  # type: ignore[method-assign]
    sent = chain.arm.now()
    chain.arm.estop(1)
    chain.run_ms(80)
    order = sorted(stopped_at, key=stopped_at.__getitem__)
    assert order == list(range(1, JOINTS + 1))
    latency = [stopped_at[k] - sent for k in order]
    # per hop: the frame's wire time and turnaround, and at worst one largest frame already on the wire
    for k, t in enumerate(latency, start=1):
        assert t <= k * (ESTOP_HOP_NS + LARGEST_FRAME_NS) + ESTOP_HOP_NS
    assert latency[-1] <= JOINTS * ESTOP_HOP_NS * 2  # an idle chain: no frame in the way
    assert all(n.control.state.status & StatusFlag.ESTOPPED for n in chain.nodes)
    assert all(abs(n.actuator.velocity) < 0.05 for n in chain.nodes)
    assert chain.fault_sources(FaultCode.ESTOP) == list(range(1, JOINTS + 1))
    assert chain.refused(SetGoal(GoalMode.VELOCITY, 1), 3) == "BUSY"  # no goals until the e-stop is released


def test_watchdog_safe_stops_every_joint_when_heartbeats_stop(chain: Chain) -> None:
    arm = chain.arm
    for k in range(1, JOINTS + 1):
        arm.write(f"joint{k}", "watchdog_period", 50)
    arm.set_heartbeat(0.02)
    chain.all_moving(1.0)
    chain.run_ms(200)
    assert chain.faults == [] and all(n.actuator.velocity > 0.8 for n in chain.nodes)
    arm.set_heartbeat(None)
    chain.run_ms(200)
    assert chain.fault_sources(FaultCode.WATCHDOG) == list(range(1, JOINTS + 1))
    for node in chain.nodes:
        status = node.control.state.status
        assert status & StatusFlag.WATCHDOG and status & StatusFlag.FAULT
        assert not status & StatusFlag.TORQUE_ON and node.registers.get("torque_enable") == 0  # torque removed
        assert abs(node.actuator.velocity) < 0.05  # braked to standstill first


def test_limits_clamp_goals_and_report_excursions(chain: Chain) -> None:
    arm = chain.arm
    arm.write("joint3", "position_max", 300_000)  # torque is off: persistent writes are allowed
    arm.torque(True, "joint3")
    arm.send(SetGoal(GoalMode.POSITION, 1_000_000), 3)  # beyond the limit: accepted, clamped
    chain.run_ms(500)
    j3 = arm.read_state("joint3")
    assert j3.position == pytest.approx(0.3, abs=2e-3)
    assert j3.status & StatusFlag.AT_LIMIT
    arm.torque(False, "joint3")
    chain.nodes[2].actuator.load_torque = 1.0  # pushed past the limit by hand, torque off
    chain.run_ms(400)
    assert chain.fault_sources(FaultCode.POSITION_LIMIT) == [3]
    assert chain.nodes[2].actuator.position > 0.35


def test_reboot_keeps_persistent_loses_volatile_resyncs_and_is_found_again(chain: Chain) -> None:
    arm = chain.arm
    arm.write("joint4", "position_max", 1_234_567)
    arm.write("joint4", "goal_velocity", 42)
    resets_before = chain.nodes[2].links[DOWN].counters.resets_accepted + chain.nodes[2].links[DOWN].counters.acked
    arm.reboot("joint4")
    chain.run_ms(100)
    node = chain.nodes[3]
    assert node.counters.reboots == 1 and node.address == Address.UNASSIGNED
    assert [f.address for f in chain.faults if f.code == FaultCode.REBOOTED] == [Address.UNASSIGNED]
    link = chain.nodes[2].links[DOWN]
    assert link.is_open and link.counters.resets_accepted + link.counters.acked > resets_before
    found = arm.enumerate()
    assert [j.serial for j in found] == [0x1001 + k for k in range(JOINTS)]
    assert [j.address for j in found if j.rebooted] == [4]  # the enumeration saw REBOOTED, then cleared it
    assert arm.read("joint4", "position_max") == 1_234_567
    assert arm.read("joint4", "goal_velocity") == 0
    assert not arm.read_state("joint4").status & StatusFlag.REBOOTED


def _enc(name: str, value: int) -> bytes:
    r = BY_NAME[name]
    return value.to_bytes(r.size, "little", signed=r.signed)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (Write(BY_NAME["goal_position"].address, _enc("goal_position", 0) + b"\x00"), "LENGTH"),  # wrong length
        (Write(BY_NAME["goal_velocity"].address, _enc("goal_velocity", 30_000_000)), "LIMIT"),  # out of range
        (Write(BY_NAME["torque_enable"].address, b"\x07"), "LIMIT"),
        (Read(BY_NAME["goal_position"].address, 3), "LENGTH"),
        (Read(9999, 1), "RANGE"),  # unknown register
        (Write(BY_NAME["goal_position"].address + 1, b"\x00"), "RANGE"),  # inside a register
        (SetGoal(9, 0), "LIMIT"),  # unknown goal type
        (Write(BY_NAME["present_position"].address, _enc("present_position", 1)), "ACCESS"),  # read-only
        (Write(BY_NAME["position_max"].address, _enc("position_max", 1000)), "ACCESS"),  # persistent, torque on
    ],
)
def test_bad_input_gets_an_error_reply_and_changes_nothing(chain: Chain, message: Message, kind: str) -> None:
    arm = chain.arm
    arm.torque(True, "joint2")
    chain.run_ms(5)
    node = chain.nodes[1]
    before = bytes(node.registers.mem[:STATE_BLOCK[0]])
    commands = node.control.commands.accepted
    assert chain.refused(message, 2) == kind
    assert bytes(node.registers.mem[:STATE_BLOCK[0]]) == before
    assert node.control.commands.accepted == commands
    assert node.counters.errors_sent == 1
