"""Switching a running chain's rates from the host (Arm.set_baud on a simulated arm, simulated time)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from armbus.bus.errors import UsageError
from armbus.bus.messages import Message, Write
from armbus.bus.wire import StatusFlag, wire_time_ns
from armbus.controller.baud import (
    DEFAULT_TRIAL_MS,
    Ask,
    RateReport,
    RateSwitchFailed,
    Retune,
    Step,
    Tell,
    Wait,
    run_sync,
    switch_plan,
)
from armbus.hil.joint_faults import CutCable
from armbus.hil.simarm import SimArm
from armbus.hil.virtual_arm import DEFAULT_WIRE_TURNAROUND_NS
from armbus.hil.wire import Direction
from armbus.joints.registers import BY_NAME, RateCommand, RateState

MS = 1_000_000
MBAUD = 1_000_000


def rates(arm: SimArm) -> list[tuple[int, int]]:
    return [(j.port_baud(0), j.port_baud(1)) for j in arm.virtual_arm.joints]


def ping_wire_ns(arm: SimArm) -> tuple[int, int]:
    """(arrival - send time, wire bytes) of a PING to joint 1 on an idle host link."""
    seen: list[tuple[int, bytes]] = []

    def tap(link: str, direction: Direction, t: int, data: bytes) -> None:
        if link == "host-j1" and direction == Direction.A_TO_B:
            seen.append((t, data))

    kernel = arm.virtual_arm.kernel
    kernel.add_tap(tap)
    t0 = arm.now()
    arm.ping("joint1")
    kernel.remove_tap(tap)
    t, frame = seen[0]
    return t - t0, len(frame)


def test_a_6_joint_chain_switches_from_1_to_3_mbaud_and_every_joint_answers_at_the_new_wire_time() -> None:
    arm = SimArm(joints=6, seed=1)
    arm.enumerate()
    dt, n = ping_wire_ns(arm)
    assert dt == DEFAULT_WIRE_TURNAROUND_NS + wire_time_ns(n, MBAUD)
    report = arm.set_baud(3_000_000)
    assert report.ok and report.outcome == "switched" and report.joints == 6
    assert report.states == {a: "IDLE" for a in range(1, 7)}
    assert report.duration_ms < 100  # 20 ms delay, six hop allowances, two SYNC_READs and the confirm
    assert rates(arm) == [(3_000_000, 3_000_000)] * 6
    assert all(j.registers.get("up_baud") == 3_000_000 for j in arm.virtual_arm.joints)  # stored
    assert all(link.wire.matched and link.wire.baud == 3_000_000 for link in arm.virtual_arm.kernel.links.values())
    assert arm.runner.node.link.config.baud == 3_000_000  # the host link's timers follow
    timing = arm.runner.node.cycles.timing  # and so does the cyclic exchange's wire-time model
    assert (timing.host_baud, timing.chain_baud) == (3_000_000, 3_000_000)
    assert len(arm.read_states()) == 6
    dt, n = ping_wire_ns(arm)
    assert dt == DEFAULT_WIRE_TURNAROUND_NS + wire_time_ns(n, 3_000_000)  # a third of the wire time
    arm.virtual_arm.joint(3).reboot(arm.now())  # a joint that reboots comes back at its stored rates
    arm.sleep_until(arm.now() + 100 * MS)
    assert len(arm.enumerate()) == 6 and rates(arm)[2] == (3_000_000, 3_000_000)


def test_the_host_link_and_the_chain_get_rates_of_their_own() -> None:
    arm = SimArm(joints=3, seed=2)
    report = arm.set_baud(1_000_000, chain=4_000_000)
    assert report.ok and (report.host_baud, report.chain_baud) == (1_000_000, 4_000_000)
    assert rates(arm) == [(1_000_000, 4_000_000), (4_000_000, 4_000_000), (4_000_000, 4_000_000)]
    assert len(arm.read_states()) == 3


def test_a_joint_that_cannot_take_the_rate_stops_the_switch_before_anything_changes() -> None:
    arm = SimArm(joints=6, seed=3)
    arm.virtual_arm.joint(4).max_baud = 2_000_000  # a slower UART
    with pytest.raises(RateSwitchFailed, match="joint 4 refused") as info:
        arm.set_baud(3_000_000)
    assert info.value.report.outcome == "refused" and info.value.report.host_baud == MBAUD
    assert rates(arm) == [(MBAUD, MBAUD)] * 6
    assert all(j.rates.state is RateState.IDLE and j.rates.switches == 0 for j in arm.virtual_arm.joints)
    assert len(arm.read_states()) == 6


class CutBeforeCommit:
    """Drives the switch like Arm, but cuts the cable after joint 3 just before the commit goes out."""

    def __init__(self, arm: SimArm) -> None:
        self.arm = arm

    def send(self, message: Message, dst: int, timeout: float | None = None) -> int:
        kernel = self.arm.virtual_arm.kernel
        CutCable(0, after_joint=3, duration_ns=300 * MS).apply(kernel, kernel.now)
        return self.arm.send(message, dst, timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.arm, name)


def test_a_commit_that_reaches_only_part_of_the_chain_falls_back_to_the_old_rate_everywhere() -> None:
    arm = SimArm(joints=6, seed=4)
    arm.enumerate()
    plan = switch_plan(6, 3_000_000, 3_000_000, MBAUD, arm.now())
    with pytest.raises(RateSwitchFailed, match="went back by itself") as info:
        run_sync(CutBeforeCommit(arm), plan)
    report = info.value.report
    assert report.outcome == "reverted" and (report.host_baud, report.chain_baud) == (MBAUD, MBAUD)
    assert len(report.states) == 6
    joints = arm.virtual_arm.joints
    assert [j.rates.switches for j in joints] == [1, 1, 1, 0, 0, 0]  # the commit stopped at the cut
    assert [j.rates.reverts for j in joints] == [1, 1, 1, 0, 0, 0]  # and the trial ended by itself
    assert rates(arm) == [(MBAUD, MBAUD)] * 6 and arm.runner.node.link.config.baud == MBAUD
    j4_up = joints[3].links[0].counters  # joint 3 at 3 Mbaud, joint 4 at 1 Mbaud, after the cable came back
    assert j4_up.crc_errors + j4_up.framing_errors > 0 and arm.virtual_arm.kernel.bytes_garbled > 0
    assert len(arm.read_states()) == 6


class CutAtConfirm(CutBeforeCommit):
    """Cuts the cable after joint 3 for good just before the confirm goes out."""

    def send(self, message: Message, dst: int, timeout: float | None = None) -> int:
        if message == Write(BY_NAME["baud_command"].address, bytes((RateCommand.CONFIRM,))):
            kernel = self.arm.virtual_arm.kernel
            CutCable(0, after_joint=3, duration_ns=2000 * MS).apply(kernel, kernel.now)
        return self.arm.send(message, dst, timeout)


def test_a_confirm_that_reaches_part_of_the_chain_is_reported_broken_and_switching_that_part_back_heals_it() -> None:
    arm = SimArm(joints=6, seed=7)
    arm.enumerate()
    with pytest.raises(RateSwitchFailed, match="switch it back with set_baud at the old rate") as info:
        run_sync(CutAtConfirm(arm), switch_plan(6, 3_000_000, 3_000_000, MBAUD, arm.now()))
    assert info.value.report.outcome == "broken"
    stored = [j.registers.get("up_baud") for j in arm.virtual_arm.joints]
    assert stored == [3_000_000] * 3 + [MBAUD] * 3  # the confirm stopped at the cut
    arm.sleep_until(arm.now() + 2000 * MS)  # the cable is back; the chain is split by its rates
    arm.set_port_baud(3_000_000)
    assert arm.wait_link(1.0)  # the host link gave up while the rates disagreed: it reopens at its next probe
    assert len(arm.enumerate()) == 3
    assert arm.set_baud(MBAUD).ok  # the first part goes back to the old rate ...
    arm.sleep_until(arm.now() + 100 * MS)
    assert len(arm.enumerate()) == 6  # ... and the chain is whole again
    assert rates(arm) == [(MBAUD, MBAUD)] * 6


def test_a_host_that_never_confirms_leaves_every_joint_back_at_the_old_rate() -> None:
    arm = SimArm(joints=6, seed=5)
    arm.enumerate()
    run_until_the_host_switched(arm, switch_plan(6, 3_000_000, 3_000_000, MBAUD, arm.now()))  # then it goes away
    assert all(j.rates.state is RateState.TRIAL for j in arm.virtual_arm.joints)
    arm.sleep_until(arm.now() + DEFAULT_TRIAL_MS * MS)
    assert all(j.rates.state is RateState.REVERTED for j in arm.virtual_arm.joints)
    assert rates(arm) == [(MBAUD, MBAUD)] * 6
    arm.set_port_baud(MBAUD)  # a host back at the old rate finds the whole chain
    assert len(arm.enumerate()) == 6 and len(arm.read_states()) == 6


def run_until_the_host_switched(arm: SimArm, plan: Generator[Step, Any, RateReport]) -> None:
    """Carry a switch plan out up to the host's own switch of its port, and no further (no confirm)."""
    outcome: Any = None
    while not isinstance(step := plan.send(outcome), Retune):
        value: Any = None
        if isinstance(step, Ask):
            value = arm.request(step.message, step.dst, step.timeout)
        elif isinstance(step, Tell):
            value = arm.send(step.message, step.dst)
        elif isinstance(step, Wait):
            arm.sleep_until(step.until_ns)
        outcome = (arm.now(), value)
    arm.set_port_baud(step.baud)
    plan.close()


def test_an_e_stop_during_the_trial_stops_every_joint() -> None:
    arm = SimArm(joints=6, seed=6)
    arm.enumerate()
    run_until_the_host_switched(arm, switch_plan(6, 3_000_000, 3_000_000, MBAUD, arm.now(), delay_ms=1))
    arm.estop()
    arm.sleep_until(arm.now() + 5 * MS)
    assert all(j.rates.state is RateState.TRIAL for j in arm.virtual_arm.joints)
    assert all(j.control.state.status & StatusFlag.ESTOPPED for j in arm.virtual_arm.joints)


def test_bad_rates_are_refused_with_the_supported_list() -> None:
    arm = SimArm(joints=1)
    with pytest.raises(UsageError, match=r"not a supported line rate .*115200"):
        arm.set_baud(1234)
    with pytest.raises(UsageError, match="chain rate 5000000"):
        arm.set_baud(1_000_000, chain=5_000_000)
    with pytest.raises(UsageError, match="trial_ms"):
        switch_plan(1, 1_000_000, 1_000_000, 1_000_000, 0, trial_ms=1).send(None)
