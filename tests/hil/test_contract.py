"""Contract suite: what every armbus arm must do, virtual or real.

Runs unchanged against an in-process virtual arm (default) and against hardware:
``pytest tests/hil/test_contract.py --armbus-port /dev/ttyUSB0``. It is the acceptance test for a freshly built
arm. Tests marked ``moves_arm`` move joints by at most 0.3 rad from where they are, inside their limits
(docs/hil.md lists each move); the others never power a motor for long and never move it on purpose.
Persistent (EEPROM) registers are written only by ``test_position_limit_holds_a_joint_back``, once to narrow a
limit and once to restore it.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import pytest

from armbus.bus.cycle import GOAL_NONE, GOAL_TAKEN
from armbus.bus.errors import PeerError, RemoteError, UndeliverableError
from armbus.bus.messages import Ping, PingReply, Read, Write
from armbus.bus.wire import FaultCode, StatusFlag

#: Position tolerance for "reached its goal" (rad): about 0.6 deg, well above encoder resolution, well below
#: the 0.1 rad moves.
TOLERANCE = 0.01
#: Small move (rad): 5.7 deg, safe on any arm that is not against its limit.
STEP = 0.1
#: How long a joint may take to settle (s): a 0.1 rad move settles in about 0.3 s on the reference joint.
SETTLE_S = 3.0
#: Distance kept from the configured position limits when choosing a move (rad).
LIMIT_MARGIN = 0.2
#: How long before an exchange a joint's sample may have been taken (ns): a sensor period of a slow joint.
SAMPLE_SLACK_NS = 50_000_000
#: Rate of the cyclic run (Hz): modest, so that a USB adapter with a 16 ms latency timer keeps up.
CYCLIC_RATE_HZ = 100


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(poll)


def names(arm: Any) -> list[str]:
    return sorted(arm.joints, key=lambda n: arm.joints[n].config.address)


def limits(arm: Any, name: str) -> tuple[float, float]:
    return arm.read(name, "position_min") * 1e-6, arm.read(name, "position_max") * 1e-6


def safe_target(arm: Any, name: str, step: float = STEP) -> tuple[float, float]:
    """(start, goal): ``step`` away from where the joint is, toward the side with room inside its limits."""
    lo, hi = limits(arm, name)
    start = arm.read_state(name).position
    goal = start + step if start + step <= hi - LIMIT_MARGIN else start - step
    assert lo + LIMIT_MARGIN <= goal <= hi - LIMIT_MARGIN, f"{name} at {start:.3f} rad has no room for a move"
    return start, goal


def status(arm: Any, name: str) -> StatusFlag:
    return StatusFlag(arm.read(name, "status"))


# ------------------------------------------------------------------------------------------------ discovery
def test_enumeration_lists_every_joint_in_chain_order(arm: Any, arm_target: Any) -> None:
    found = arm.enumerate()
    assert [j.address for j in found] == list(range(1, len(found) + 1))
    assert len({j.serial for j in found}) == len(found), "serial numbers must be unique"
    if arm_target.joints is not None:
        assert len(found) == arm_target.joints
    assert len(arm.joints) == len(found)


def test_every_joint_identifies_itself_consistently(arm: Any) -> None:
    found = {j.address: j for j in arm.enumerate()}
    for name in names(arm):
        address = arm.joints[name].config.address
        reply = arm.ping(name)
        assert isinstance(reply, PingReply)
        assert reply.address == address
        assert (reply.model, reply.serial) == (found[address].model, found[address].serial)
        assert arm.read(name, "model_number") == reply.model
        assert arm.read(name, "serial_number") == reply.serial
        assert (arm.read(name, "firmware_major"), arm.read(name, "firmware_minor")) == (reply.fw_major,
                                                                                        reply.fw_minor)
        assert arm.read(name, "bus_address") == address


# ------------------------------------------------------------------------------------------------ registers
def test_volatile_registers_round_trip(arm: Any) -> None:
    arm.torque(False)
    for i, name in enumerate(names(arm)):
        for register, value in (("goal_position", -123_456 * (i + 1)), ("goal_velocity", 5_000 * (i + 1)),
                                ("state_period", 0), ("watchdog_period", 0)):
            arm.write(name, register, value)
            assert arm.read(name, register) == value, f"{name}.{register}"


def test_error_replies_name_what_was_wrong(arm: Any) -> None:
    first = names(arm)[0]
    address = arm.joints[first].config.address
    cases = [
        (Read(1, 1), "RANGE"),  # not the start of a register
        (Read(56, 3), "LENGTH"),  # ends inside present_velocity
        (Write(0, struct.pack("<H", 7)), "ACCESS"),  # model_number is read-only
        (Write(38, bytes([9])), "LIMIT"),  # goal_mode 9 does not exist
    ]
    for message, kind in cases:
        with pytest.raises(RemoteError, match=kind):
            arm.request(message, address)
    arm.torque(True, first)
    try:
        wait_until(lambda: status(arm, first) & StatusFlag.TORQUE_ON, 2.0, "torque on")
        with pytest.raises(RemoteError, match="ACCESS"):  # persistent registers only with torque off
            arm.write(first, "velocity_limit", arm.read(first, "velocity_limit"))
    finally:
        arm.torque(False, first)


def test_a_joint_that_is_not_there_is_reported_undeliverable(arm: Any) -> None:
    missing = len(arm.joints) + 1
    with pytest.raises(UndeliverableError):
        arm.request(Ping(), missing, timeout=2.0)


def test_inverted_limits_are_refused_and_nothing_changes(arm: Any) -> None:
    name = names(arm)[-1]
    arm.torque(False, name)
    lo, hi = arm.read(name, "position_min"), arm.read(name, "position_max")
    both = struct.pack("<ii", hi, lo)  # min > max
    with pytest.raises(RemoteError, match="LIMIT"):
        arm.request(Write(8, both), arm.joints[name].config.address)
    assert (arm.read(name, "position_min"), arm.read(name, "position_max")) == (lo, hi)


# ------------------------------------------------------------------------------------------------ torque, sync
def test_torque_switches_on_and_off_for_every_joint(arm: Any) -> None:
    arm.torque(True)
    for name in names(arm):
        wait_until(lambda n=name: status(arm, n) & StatusFlag.TORQUE_ON, 2.0, f"{name} torque on")
        assert arm.read(name, "torque_enable") == 1
    arm.torque(False)
    for name in names(arm):
        wait_until(lambda n=name: not status(arm, n) & StatusFlag.TORQUE_ON, 2.0, f"{name} torque off")


def test_sync_read_returns_every_joint_consistent_with_single_reads(arm: Any) -> None:
    arm.torque(False)
    states = arm.read_states()
    assert sorted(states) == sorted(arm.joints)
    for name, s in states.items():
        single = arm.read_state(name)
        assert abs(single.position - s.position) < 0.02, name  # at rest: the same place
        assert 0.0 < s.voltage < 60.0 and -40.0 < s.temperature < 150.0
        assert not s.status & StatusFlag.TORQUE_ON


def test_sync_write_reaches_every_joint(arm: Any) -> None:
    arm.torque(False)
    values = {name: 1000 * (i + 1) for i, name in enumerate(names(arm))}
    arm.sync_write("goal_position", values)
    for name, value in values.items():
        wait_until(lambda n=name, v=value: arm.read(n, "goal_position") == v, 2.0, f"{name} goal_position")


# ------------------------------------------------------------------------------------------------ cyclic exchange
def test_one_exchange_returns_every_joint_with_a_sane_age(arm: Any) -> None:
    arm.torque(False)
    before = arm.now()
    states = arm.exchange()  # read only
    after = arm.now()
    assert sorted(states) == sorted(arm.joints)
    for name, s in states.items():
        assert s.address == arm.joints[name].config.address
        # sampled while the exchange ran (give or take a sensor period), and before its reply was in
        assert before - SAMPLE_SLACK_NS < s.sampled_at < after, f"{name}: sample instant outside the exchange"
        assert 0.0 < s.age(after) < arm.timeout
        assert s.goal_result == GOAL_NONE and not s.status & StatusFlag.TORQUE_ON
        assert abs(arm.read_state(name).position - s.position) < 0.02, name  # at rest: the same place


def test_cyclic_exchange_at_a_modest_rate_answers_its_cycles(arm: Any) -> None:
    """100 Hz for half a second, torque off, every cycle carrying goals a few mrad from where the joints rest (a
    different one per joint): the goals are taken and become each joint's goal register, and nothing moves."""
    arm.torque(False)
    rest = {name: s.position for name, s in arm.exchange().items()}
    goals = {name: rest[name] + 0.001 * (i + 1) for i, name in enumerate(names(arm))}
    views: list[Any] = []

    def callback(view: Any) -> dict[str, float]:
        views.append(view)
        return goals

    report = arm.cyclic(callback, CYCLIC_RATE_HZ).run(0.5)
    # every deadline served and every cycle answered, ideally; a virtual arm on a loaded machine (it runs in this
    # process) makes the loop skip some deadlines and loses some replies to its own lag
    assert report.cycles + report.deadlines_missed >= 45, report.summary()
    assert report.cycles >= 25 and report.replied >= 0.7 * report.cycles, report.summary()
    assert report.partial == 0 and report.goals_refused == 0, report.summary()
    last = views[-1]
    assert sorted(last.states) == sorted(arm.joints)
    for name, s in last.states.items():
        assert 0.0 < s.age(last.now) < arm.timeout, f"{name}: state {s.age(last.now) * 1e3:.1f} ms old"
        assert s.goal_result == GOAL_TAKEN, name
        assert abs(s.position - rest[name]) < TOLERANCE, f"{name} moved with torque off"
    assert 0.0 < report.age_p50_ms < 50.0, report.summary()
    for name, goal in goals.items():  # a cyclic goal is the joint's goal, as SET_GOAL's would be
        assert abs(arm.read(name, "goal_position") - round(goal * 1e6)) <= 1, name


# ------------------------------------------------------------------------------------------------ motion
@pytest.mark.moves_arm
def test_small_moves_reach_their_goal_and_come_back(arm: Any) -> None:
    plan = {name: safe_target(arm, name) for name in names(arm)}
    arm.torque(True)
    try:
        arm.set_goals({name: goal for name, (_, goal) in plan.items()})
        for name, (_, goal) in plan.items():
            wait_until(lambda n=name, g=goal: abs(arm.read_state(n).position - g) < TOLERANCE, SETTLE_S,
                       f"{name} at {goal:.3f} rad")
        arm.set_goals({name: start for name, (start, _) in plan.items()})
        for name, (start, _) in plan.items():
            wait_until(lambda n=name, g=start: abs(arm.read_state(n).position - g) < TOLERANCE, SETTLE_S,
                       f"{name} back at {start:.3f} rad")
    finally:
        arm.torque(False)


@pytest.mark.moves_arm
def test_estop_stops_every_joint_and_latches_until_released(arm: Any) -> None:
    plan = {name: safe_target(arm, name, 3 * STEP) for name in names(arm)}
    arm.torque(True)
    try:
        arm.set_goals({name: goal for name, (_, goal) in plan.items()})
        time.sleep(0.05)
        arm.estop()
        for name in plan:
            wait_until(lambda n=name: status(arm, n) & StatusFlag.ESTOPPED, 2.0, f"{name} e-stopped")
        for name in plan:
            wait_until(lambda n=name: abs(arm.read_state(n).velocity) < 0.05, 2.0, f"{name} at rest")
        rest = {name: arm.read_state(name).position for name in plan}
        for name, (start, _) in plan.items():  # goals are ignored while e-stopped
            arm.set_goal(name, position=start)
        time.sleep(0.3)
        for name in plan:
            assert abs(arm.read_state(name).position - rest[name]) < TOLERANCE, f"{name} moved while e-stopped"
            assert arm.read(name, "estop") == 1
        for name in plan:  # a stop removes torque once the joint is at rest
            wait_until(lambda n=name: not status(arm, n) & StatusFlag.TORQUE_ON, 2.0, f"{name} unpowered")
            assert arm.read(name, "torque_enable") == 0
        for name in plan:
            arm.write(name, "estop", 0)
            wait_until(lambda n=name: not status(arm, n) & StatusFlag.ESTOPPED, 2.0, f"{name} released")
        time.sleep(0.3)
        for name in plan:  # released means ready, not moving: unpowered until torque-on
            assert not status(arm, name) & StatusFlag.TORQUE_ON, f"{name} powered by the release alone"
            assert abs(arm.read_state(name).position - rest[name]) < TOLERANCE, f"{name} moved after the release"
        arm.torque(True)
        time.sleep(0.3)
        for name in plan:  # torque-on holds where the joint is: the goal it had before the stop is gone
            assert status(arm, name) & StatusFlag.TORQUE_ON
            assert abs(arm.read_state(name).position - rest[name]) < TOLERANCE, f"{name} jumped at torque-on"
    finally:
        arm.torque(False)


@pytest.mark.moves_arm
def test_watchdog_stops_a_joint_whose_host_goes_quiet(arm: Any) -> None:
    name = names(arm)[0]
    arm.torque(True, name)
    try:
        wait_until(lambda: status(arm, name) & StatusFlag.TORQUE_ON, 2.0, "torque on")
        arm.write(name, "watchdog_period", 100)  # ms; no heartbeats are being sent
        wait_until(lambda: status(arm, name) & StatusFlag.WATCHDOG, 2.0, "watchdog tripped")
        assert arm.read(name, "fault_code") == FaultCode.WATCHDOG
        wait_until(lambda: not status(arm, name) & StatusFlag.TORQUE_ON, 2.0, "torque removed by the stop")
        arm.write(name, "clear_flags", int(StatusFlag.WATCHDOG | StatusFlag.FAULT))
        wait_until(lambda: not status(arm, name) & StatusFlag.WATCHDOG, 2.0, "watchdog cleared")
        assert not status(arm, name) & StatusFlag.TORQUE_ON, "a cleared watchdog stop powered the joint"
        arm.torque(True, name)
        wait_until(lambda: status(arm, name) & StatusFlag.TORQUE_ON, 2.0, "torque on again")
        arm.set_heartbeat(0.02)
        arm.write(name, "watchdog_period", 300)
        time.sleep(0.6)
        assert not status(arm, name) & StatusFlag.WATCHDOG, "tripped although heartbeats were sent"
    finally:
        arm.set_heartbeat(None)
        arm.write(name, "watchdog_period", 0)
        arm.torque(False, name)


@pytest.mark.moves_arm
def test_position_limit_holds_a_joint_back(arm: Any) -> None:
    name = names(arm)[0]
    arm.torque(False, name)
    start, goal = safe_target(arm, name, 2 * STEP)
    original = arm.read(name, "position_max"), arm.read(name, "position_min")
    up = goal > start
    fence = start + (0.05 if up else -0.05)
    register = "position_max" if up else "position_min"
    arm.write(name, register, round(fence * 1e6))
    try:
        arm.torque(True, name)
        arm.set_goal(name, position=goal)
        wait_until(lambda: status(arm, name) & StatusFlag.AT_LIMIT, SETTLE_S, "AT_LIMIT while pushing")
        time.sleep(0.5)
        pos = arm.read_state(name).position
        assert (pos <= fence + TOLERANCE) if up else (pos >= fence - TOLERANCE), f"{pos:.3f} beyond {fence:.3f}"
        assert abs(pos - start) > 0.01, "the joint should have moved up to the limit"
    finally:
        arm.torque(False, name)
        wait_until(lambda: not status(arm, name) & StatusFlag.TORQUE_ON, 2.0, "torque off")
        arm.write(name, register, original[0] if up else original[1])


def test_requests_on_a_quiet_arm_do_not_time_out(arm: Any) -> None:
    """A burst of requests: every one answered (no lost replies under back-to-back load)."""
    name = names(arm)[-1]
    for i in range(50):
        try:
            arm.read(name, "present_position")
        except PeerError as exc:
            raise AssertionError(f"request {i} failed: {exc}") from exc
