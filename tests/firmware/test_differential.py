"""The C firmware against the Python model: the same scenario in simulated time, the same seed, identical wire
traffic on every link (hil kernel taps), packet for packet, for a C chain and a mixed chain."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from diff_harness import assert_same, seen

from armbus.bus.codec import Frame, decode_wire, encode_control, encode_data
from armbus.bus.deframer import Deframer
from armbus.bus.errors import ArmbusError
from armbus.bus.wire import ErrorKind, FaultCode, FrameKind, MsgType
from armbus.hil.faults import LinkFaults
from armbus.hil.firmware.build import available
from armbus.hil.joint_faults import Overheat, Reboot, Stall
from armbus.hil.link_faults import CutLink
from armbus.hil.schedule import FaultSchedule
from armbus.hil.simarm import SimArm
from armbus.joints.node import DOWN, UP, JointNode

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))
VECTORS = json.loads((Path(__file__).resolve().parents[2] / "docs" / "test-vectors.json").read_text())["vectors"]
MS = 1_000_000


def wait(arm: SimArm, ms: float) -> None:
    arm.sleep_until(arm.now() + int(ms * MS))


def names(arm: SimArm) -> list[str]:
    return list(arm.joints)


# --------------------------------------------------------------------------------------- one joint, every vector
def _drive(node: object, inputs: list[tuple[int, int, bytes]], until: int) -> list[tuple[int, int, bytes]]:
    """Feed ``inputs`` (t, port, bytes) to a node, fire its timers, and record what it sends until ``until``."""
    out: list[tuple[int, int, bytes]] = []
    pending = sorted(inputs, key=lambda x: x[0])
    t = 0
    while True:
        deadline = node.next_deadline()  # type: ignore[attr-defined]
        nxt = pending[0][0] if pending else None
        if nxt is not None and (deadline is None or nxt <= deadline):
            t, port, data = pending.pop(0)
            node.receive_data(port, data, t)  # type: ignore[attr-defined]
        elif deadline is not None and deadline <= until:
            t = max(t, deadline)
            node.handle_timer(t)  # type: ignore[attr-defined]
        else:
            return out
        for port in (UP, DOWN):
            data = node.data_to_send(port, t)  # type: ignore[attr-defined]
            if data:
                out.append((t, port, data))


def _joint(kind: str) -> object:
    if kind == "c":
        from armbus.hil.firmware.cjoint import CJoint

        return CJoint(serial=0x1001, seed=7)
    return JointNode(serial=0x1001, seed=7)


def _as_delivered(wire: bytes) -> bytes:
    """A DATA vector re-sent with seq 0, so that the opened link delivers it."""
    frame = decode_wire(wire)
    return encode_data(0, frame.flags, frame.packet) if frame.packet is not None else wire


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
@pytest.mark.parametrize("port", [UP, DOWN])
def test_every_test_vector_fed_to_one_joint(vector: dict[str, object], port: int) -> None:
    wire = bytes.fromhex(str(vector["wire"]))
    runs = []
    for kind in ("python", "c"):
        node = _joint(kind)
        inputs = [(1 * MS, port, encode_control(FrameKind.RESET, 0x33)), (2 * MS, port, wire)]
        if "frame" in vector:
            inputs.append((3 * MS, port, _as_delivered(wire)))
            inputs.append((4 * MS, port, wire))  # byte by byte below: the UART path
        runs.append(_drive(node, inputs, 60 * MS))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("vector", [v for v in VECTORS if "frame" in v][:12], ids=lambda v: v["name"])
def test_byte_by_byte_equals_block(vector: dict[str, object]) -> None:
    from armbus.hil.firmware.cjoint import CJoint

    wire = _as_delivered(bytes.fromhex(str(vector["wire"])))
    outs = []
    for bytewise in (False, True):
        node = CJoint(serial=1, seed=3)
        node.receive_data(UP, encode_control(FrameKind.RESET, 0x44), MS)
        node.data_to_send(UP, MS)
        if bytewise:
            for b in wire:
                node.rx_byte(UP, b, 2 * MS)
        else:
            node.receive_data(UP, wire, 2 * MS)
        outs.append((node.data_to_send(UP, 2 * MS), node.data_to_send(DOWN, 2 * MS), node.counters))
    assert outs[0] == outs[1]


def test_a_block_of_many_frames_and_a_ragged_tail() -> None:
    """Forty PINGs in one block, cut mid-frame, then the rest, an oversize chunk and more frames, to a joint whose
    host never acks: each frame is handled at its delimiter in both joints, so the UP queue fills, later frames are
    refused (not acked) and the wire traffic is the same."""
    from armbus.bus.messages import Ping, make_packet
    from armbus.bus.wire import Address

    pings = b"".join(encode_data(k % 256, 0, make_packet(Ping(), Address.HOST, Address.UNASSIGNED, 500 + k))
                     for k in range(40))
    cut = len(pings) // 2 + 3
    runs = []
    for kind in ("python", "c"):
        node = _joint(kind)
        inputs = [(1 * MS, UP, encode_control(FrameKind.RESET, 0x21)), (2 * MS, UP, pings[:cut]),
                  (2 * MS + 10, UP, pings[cut:] + b"\x01" * 300 + b"\x00" + pings[:60])]
        runs.append(_drive(node, inputs, 40 * MS))
    assert runs[0] == runs[1]
    assert len(runs[0]) > 3


# ------------------------------------------------------------------------------------------------- scenarios
def _session(arm: SimArm) -> None:
    arm.enumerate()
    j = names(arm)
    arm.read(j[0], "present_position")
    arm.write(j[1], "state_period", 20)
    arm.torque(True)
    arm.set_goal(j[0], position=0.3)
    wait(arm, 150)
    arm.read_states()
    arm.sync_write("goal_position", {n: 100_000 * (i + 1) for i, n in enumerate(j)})
    wait(arm, 100)
    for _ in range(25):
        arm.exchange({n: 0.1 for n in j})
    arm.estop()
    wait(arm, 50)
    for n in j:
        arm.write(n, "estop", 0)
    arm.reboot(j[-1])
    wait(arm, 80)
    arm.enumerate()


def test_enumerate_read_write_sync_cyclic_estop_reboot() -> None:
    got = seen(assert_same(_session))
    for t in (MsgType.ENUMERATE_REPLY, MsgType.READ_REPLY, MsgType.WRITE_REPLY, MsgType.SYNC_READ_REPLY,
              MsgType.SYNC_WRITE, MsgType.CYCLE_REPLY, MsgType.ESTOP, MsgType.STATE, MsgType.REBOOT):
        assert (t,) in got, t.name
    assert (MsgType.FAULT, FaultCode.REBOOTED) in got and (MsgType.FAULT, FaultCode.ESTOP) in got


def test_six_joints() -> None:
    assert_same(_session, joints=6, seed=5)


def _watchdog(arm: SimArm) -> None:
    arm.enumerate()
    j = names(arm)
    arm.torque(True)
    arm.set_goal(j[0], velocity=0.5)
    for n in j:
        arm.write(n, "watchdog_period", 30)
    wait(arm, 120)  # no heartbeat: every joint trips and stops
    arm.read_states()
    for n in j:
        arm.write(n, "clear_flags", 0x28)
    wait(arm, 20)


def test_watchdog_trip_and_clear() -> None:
    assert (MsgType.FAULT, FaultCode.WATCHDOG) in seen(assert_same(_watchdog))


def _faults(arm: SimArm) -> None:
    arm.enumerate()
    j = names(arm)
    arm.torque(True)
    arm.set_goal(j[0], position=1.0)
    arm.set_goal(j[1], current=1.2)
    varm = arm.virtual_arm
    varm.joints[2].actuator.supply_voltage = 8.0  # under-voltage
    wait(arm, 60)
    varm.joints[2].actuator.supply_voltage = 12.0
    wait(arm, 700)  # joint 1 jammed: stall; joint 2 against a load: over-current
    arm.read_states()


def test_faults_under_voltage_stall_over_current() -> None:
    sched = FaultSchedule((Stall(30 * MS, 1, 0.0, True), Stall(30 * MS, 2, -6.0, False),
                           Overheat(400 * MS, 3, None, 85.0)))
    got = seen(assert_same(_faults, faults=sched))
    for code in (FaultCode.UNDERVOLTAGE, FaultCode.STALL, FaultCode.OVER_CURRENT, FaultCode.OVER_TEMPERATURE):
        assert (MsgType.FAULT, code) in got, code.name


def _traffic(arm: SimArm) -> None:
    arm.enumerate()
    j = names(arm)
    for k in range(30):
        arm.read(j[k % len(j)], "present_temperature")
        arm.exchange({n: 0.05 * k for n in j})
    wait(arm, 30)


def test_lossy_links_with_seed() -> None:
    log = assert_same(_traffic, faults=LinkFaults(drop_byte=0.003, flip_bit=0.0005, dup_frame=0.01,
                                                  drop_frame=0.01), seed=11)
    retransmits = sum(1 for _, _, _, data in log for f in decode_all(data) if f.flags & 1)
    assert retransmits > 0


def test_link_cut_and_reboots() -> None:
    sched = FaultSchedule((CutLink(40 * MS, "j1-j2", 30 * MS), Reboot(90 * MS, 2), Reboot(140 * MS, 3)))

    def scenario(arm: SimArm) -> None:
        arm.enumerate()
        for _ in range(40):
            with contextlib.suppress(ArmbusError):  # the cut and the reboots fail some reads, alike on both
                arm.read_states(timeout=0.02)
            wait(arm, 2)
        arm.enumerate()

    got = seen(assert_same(scenario, faults=sched))
    assert (MsgType.FAULT, FaultCode.REBOOTED) in got and (-FrameKind.RESET,) in got


def decode_all(data: bytes) -> list[Frame]:
    return [f for f in Deframer().feed(data) if isinstance(f, Frame)]


def test_c_board_chain_without_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unseeded joints have noise-free actuators: the C joint then runs on the C board (all C, no callback), and
    its traffic still equals the Python joints'."""
    import armbus.hil.virtual_arm as va
    from armbus.hil.firmware.choice import joint_class

    def quiet(kind: str) -> object:
        cls = joint_class(kind)

        def make(*args: object, **kwargs: object) -> object:
            kwargs["seed"] = None
            return cls(*args, **kwargs)

        return make

    monkeypatch.setattr(va, "joint_class", quiet)
    got = seen(assert_same(_session))
    assert (MsgType.CYCLE_REPLY,) in got


def _errors_and_edges(arm: SimArm) -> None:
    from armbus.bus.messages import Read, SetGoal, Torque, Write

    arm.enumerate()
    j = names(arm)
    for msg in (Read(1, 1), Read(0, 1), Read(200, 2), Write(0, b"\x01\x02"), Write(37, b"\x05"), SetGoal(9, 0),
                SetGoal(1, 10**9), Torque(1), Write(79, (1).to_bytes(4, "little"))):
        with contextlib.suppress(ArmbusError):
            arm.request(msg, 2)
    arm.set_heartbeat(0.01)
    arm.write(j[0], "watchdog_period", 50)
    arm.torque(True)
    wait(arm, 40)
    arm.estop()
    with contextlib.suppress(ArmbusError):
        arm.set_goal(j[1], position=0.1)  # refused: e-stopped
    for _ in range(3):
        with contextlib.suppress(ArmbusError):
            arm.exchange({j[0]: 0.1, j[1]: 0.2})  # refused in the records: e-stopped
    for n in j:
        arm.write(n, "estop", 0)
    arm.set_heartbeat(None)
    arm.exchange(None)


def test_error_replies_heartbeats_and_refused_goals() -> None:
    got = seen(assert_same(_errors_and_edges))
    for kind in (ErrorKind.RANGE, ErrorKind.LENGTH, ErrorKind.ACCESS, ErrorKind.LIMIT):
        assert (MsgType.ERROR, kind) in got, kind.name
    assert (MsgType.HEARTBEAT,) in got


def test_line_rate_switch() -> None:
    def scenario(arm: SimArm) -> None:
        arm.enumerate()
        arm.set_baud(2_000_000)
        arm.read_states()
        arm.set_baud(1_000_000, 3_000_000)
        arm.read_states()

    assert (MsgType.WRITE,) in seen(assert_same(scenario))


@pytest.mark.parametrize("granularity", ["byte", "chunk"])
def test_delivery_granularity(granularity: str) -> None:
    """Bytes one at a time (the UART interrupt path) and whole drained chunks (several frames a block)."""
    assert_same(_traffic, granularity=granularity, kinds=("c",))


def test_six_joint_mixed_chain_on_lossy_links() -> None:
    assert_same(_traffic, joints=6, seed=21, kinds=("python,c", "c,c,python"),
                faults=LinkFaults(drop_byte=0.002, flip_bit=0.0005, dup_frame=0.01))


def test_enumerate_while_a_neighbour_boots() -> None:
    """ENUMERATE held while the DOWN neighbour reboots (no answer yet), then passed on; a cut cable makes the
    joint before it the chain end for a while (the ENUMERATE and SYNC_READ turn around there)."""
    sched = FaultSchedule((Reboot(30 * MS, 2), Reboot(30 * MS, 3), CutLink(200 * MS, "j2-j3", 400 * MS)))

    def scenario(arm: SimArm) -> None:
        arm.enumerate()
        wait(arm, 25)
        arm.enumerate()
        wait(arm, 200)
        for _ in range(3):
            with contextlib.suppress(ArmbusError):
                arm.enumerate()
            with contextlib.suppress(ArmbusError):
                arm.read_states(timeout=0.05)
        wait(arm, 400)
        arm.enumerate()

    got = seen(assert_same(scenario, faults=sched))
    assert (MsgType.ENUMERATE_REPLY,) in got and (MsgType.SYNC_READ_REPLY,) in got


def _random_script(seed: int) -> Callable[[SimArm], None]:
    """A seeded random session: every kind of request, valid and not, faults and pauses."""
    import random

    from armbus.bus.messages import Read, SetGoal, Write
    from armbus.joints.registers import REGISTERS

    def scenario(arm: SimArm) -> None:
        rng = random.Random(seed)
        arm.enumerate()
        j = names(arm)
        varm = arm.virtual_arm
        for _ in range(60):
            op = rng.randrange(12)
            n = rng.choice(j)
            addr = 1 + j.index(n)
            with contextlib.suppress(ArmbusError):
                if op == 0:
                    r = rng.choice(REGISTERS)
                    arm.request(Read(r.address + rng.choice((0, 0, 1)), r.size * rng.choice((1, 1, 2))), addr)
                elif op == 1:
                    r = rng.choice(REGISTERS)
                    value = rng.randint(r.minimum - 2, r.maximum + 2) if rng.random() < 0.3 else r.default
                    data = (value & ((1 << 8 * r.size) - 1)).to_bytes(r.size, "little")
                    arm.request(Write(r.address, data), addr)
                elif op == 2:
                    arm.torque(rng.random() < 0.7)
                elif op == 3:
                    arm.request(SetGoal(rng.randint(0, 4), rng.randint(-3_000_000, 3_000_000)), addr)
                elif op == 4:
                    arm.sync_write("goal_position", {m: rng.randint(-500_000, 500_000) for m in j})
                elif op == 5:
                    arm.read_states(timeout=0.05)
                elif op == 6:
                    for _ in range(rng.randint(1, 8)):
                        arm.exchange({m: rng.uniform(-0.5, 0.5) for m in j if rng.random() < 0.8})
                elif op == 7:
                    arm.estop()
                elif op == 8:
                    for m in j:
                        arm.write(m, "estop", 0)
                    arm.write(n, "clear_flags", 0xFF)
                elif op == 9:
                    act = varm.joint(addr).actuator
                    act.supply_voltage = rng.choice((12.0, 12.0, 9.0))
                    act.load_torque = rng.choice((0.0, 0.0, 2.0, -4.0))
                elif op == 10 and rng.random() < 0.3:
                    arm.reboot(n)
                else:
                    arm.write(n, rng.choice(("state_period", "watchdog_period")), rng.choice((0, 0, 10, 40)))
            wait(arm, rng.choice((0.5, 2, 5, 20)))

    return scenario


@pytest.mark.parametrize("seed", range(1, 9))
def test_random_sessions(seed: int) -> None:
    faults = LinkFaults(drop_byte=0.002, flip_bit=0.0005, dup_frame=0.01) if seed % 2 else None
    assert_same(_random_script(seed), joints=2 + seed % 3, seed=seed, faults=faults)
