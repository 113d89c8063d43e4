"""Trajectory streaming against the simulated arm, in simulated time (SimArm: no thread, no wall clock)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from armbus.bus.errors import UsageError
from armbus.controller.config import ArmConfig, parse_config
from armbus.controller.stream import CycleInfo, StepLimiter, fit_plan
from armbus.controller.trajectory import JointLimits, Plan, Trajectory, TrajectoryError
from armbus.hil.simarm import SimArm

NAMES = ("joint1", "joint2", "joint3")


def config(max_step: float = 0.05, max_velocity: float = 3.0, offset: float = 0.0,
           max_acceleration: float | None = None) -> ArmConfig:
    joint = {"min": -2.0, "max": 2.0, "max_velocity": max_velocity, "max_current": 1.5, "offset": offset}
    if max_acceleration is not None:
        joint["max_acceleration"] = max_acceleration
    return parse_config({"bus": {"port": "virtual", "max_step": max_step},
                         "joints": {n: {"address": i + 1, **joint} for i, n in enumerate(NAMES)}})


def ready(cfg: ArmConfig | None = None, seed: int = 1) -> SimArm:
    arm = SimArm(joints=3, seed=seed, config=cfg or config())
    arm.enumerate()
    arm.torque(True)
    return arm


def plan(duration: float = 0.6, start: tuple[float, ...] = (0, 0, 0),
         end: tuple[float, ...] = (0.3, -0.2, 0.1)) -> Plan:
    return Trajectory(NAMES, [0.0, duration], [start, end]).plan()


def test_open_loop_reaches_the_end_on_schedule_without_drift() -> None:
    arm = ready()
    p = plan()
    report = arm.run_trajectory(p, 200.0)
    assert report.reached, report.final_error
    assert all(abs(e) <= report.tolerance for e in report.final_error.values())
    assert report.cycles == len(p.sample(200.0).times)
    assert report.missed == 0 and report.clamped == 0 and report.send_failures == 0
    # absolute deadlines: the last cycle is due exactly at the plan's end, although every cycle did work
    assert report.duration == pytest.approx(p.duration, abs=1e-9)
    assert report.lateness_p99 == 0.0
    assert report.achieved_hz == pytest.approx(200.0, rel=1e-6)
    assert all(math.isnan(v) for v in report.tracking_rms.values())  # open loop: nothing measured per cycle


def test_closed_loop_reports_tracking_error_and_keeps_the_schedule() -> None:
    arm = ready()
    p = plan()
    seen: list[CycleInfo] = []
    report = arm.run_trajectory(p, 200.0, closed_loop=True, on_cycle=seen.append)
    assert report.reached
    assert report.read_failures == 0
    # each cycle's work (sync-write ack + sync-read round trip) is a large part of the 5 ms period ...
    assert report.cycle_p50 > 1e-3
    # ... yet the schedule does not drift: no relative sleeping
    assert report.missed == 0
    assert report.duration == pytest.approx(p.duration, abs=1e-9)
    for name in NAMES:
        assert 0 < report.tracking_rms[name] <= report.tracking_max[name] < 0.2
    assert all(info.states is not None for info in seen)
    # the tracking error is the plan minus what the joints reported
    last = seen[-1]
    assert last.states is not None
    err = abs(last.desired["joint1"] - last.states["joint1"].position)
    assert err <= report.tracking_max["joint1"] + 1e-12


def test_too_fast_a_rate_counts_missed_deadlines_and_still_arrives() -> None:
    arm = ready()
    p = plan(0.3)
    report = arm.run_trajectory(p, 1000.0, closed_loop=True)  # a 3-joint sync-read takes > 1 ms at 1 Mbaud
    assert report.missed > 0
    assert report.cycles + report.missed >= len(p.sample(1000.0).times) - 1
    assert report.cycles < len(p.sample(1000.0).times)
    assert report.reached
    assert report.duration < p.duration + report.cycle_p99 + 1e-3  # skipping: never behind the plan's clock


def test_step_clamp_limits_every_cycle_then_catches_up() -> None:
    arm = ready(config(max_step=0.004))
    p = plan(0.3, end=(0.4, 0.0, 0.0))  # min-jerk peak speed 2.5 rad/s: 12.5 mrad per 5 ms cycle
    goals: list[float] = []
    report = arm.run_trajectory(p, 200.0, on_cycle=lambda info: goals.append(info.goals["joint1"]))
    steps = np.abs(np.diff(goals))
    assert steps.max() <= 0.004 + 1e-9
    assert report.clamped > 0
    assert report.cycles > len(p.sample(200.0).times)  # went on past the plan's end to catch up
    assert goals[-1] == pytest.approx(0.4)
    assert report.reached


def test_velocity_limit_stretches_the_plan() -> None:
    arm = ready(config(max_step=1.0, max_velocity=0.5))
    p = plan(0.2, end=(0.3, 0.0, 0.0))  # needs 2.8 rad/s
    goals: list[float] = []
    report = arm.run_trajectory(p, 200.0, on_cycle=lambda info: goals.append(info.goals["joint1"]))
    assert report.stretched
    assert np.abs(np.diff(goals)).max() <= 0.5 / 200.0 * (1 + 1e-6)
    assert report.duration >= 0.3 * 1.875 / 0.5 - 1e-9
    with pytest.raises(TrajectoryError, match="velocity"):
        arm.run_trajectory(p, 200.0, on_limit="reject")


def test_calibration_offset_applies_to_streamed_goals() -> None:
    arm = ready(config(offset=0.1))
    report = arm.run_trajectory(plan(0.4, end=(0.2, 0.2, 0.2)), 200.0)
    assert report.reached
    raw = arm.virtual_arm.joint(1).registers.get("goal_position")
    assert raw == 300_000  # 0.2 rad calibrated + 0.1 rad offset, in urad


def test_on_cycle_can_stop_the_stream() -> None:
    arm = ready()
    report = arm.run_trajectory(plan(), 200.0, on_cycle=lambda info: info.index < 9)
    assert report.stopped and report.cycles == 10
    assert not report.reached


def test_bad_arguments_are_usage_errors() -> None:
    arm = ready()
    with pytest.raises(UsageError, match="control rate"):
        arm.run_trajectory(plan(), 5000.0)
    with pytest.raises(UsageError, match="tolerance"):
        arm.run_trajectory(plan(), 200.0, tolerance=-1.0)
    with pytest.raises(UsageError, match="no joint named 'wrist'"):
        arm.run_trajectory(Trajectory(("wrist",), [0, 1], [[0], [1]]).plan(), 200.0)


def test_step_limiter_uses_the_time_since_the_previous_goal() -> None:
    lim = StepLimiter([1.0, 1.0], [0.1, 0.1], [0.0, 0.0])
    goal, clamped = lim.step(np.array([0.5, -0.001]), 0.01)
    assert clamped and goal.tolist() == pytest.approx([0.01, -0.001])
    goal, clamped = lim.step(np.array([0.5, -0.001]), 0.05)  # two deadlines skipped: a longer step is due
    assert clamped and goal.tolist() == pytest.approx([0.06, -0.001])
    goal, clamped = lim.step(np.array([0.07, 0.0]), 0.01)
    assert not clamped and goal.tolist() == pytest.approx([0.07, 0.0])


def test_fit_plan_keeps_a_plan_within_limits_untouched() -> None:
    p = plan(1.0)
    inf = np.full(3, math.inf)
    limits = JointLimits(-inf, inf, np.full(3, 10.0), np.full(3, 100.0))
    fitted, stretched = fit_plan(p, limits, 200.0)
    assert fitted is p and not stretched
    tight = JointLimits(-inf, inf, np.full(3, 10.0), np.full(3, 0.5))
    fitted, stretched = fit_plan(p, tight, 200.0)
    assert stretched and fitted.duration > p.duration
