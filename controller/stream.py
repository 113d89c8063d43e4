"""Trajectory streaming: a planned trajectory sent as SYNC_WRITE goals at a fixed control rate, without drift.

Theory of operation
-------------------
:func:`stream_plan` (``Arm.run_trajectory``) samples a :class:`armbus.controller.trajectory.Plan` at ``k / rate`` and
sends sample ``k`` in cycle ``k`` as one SYNC_WRITE frame, on the absolute deadlines of a
:class:`armbus.controller.scheduler.RateKeeper` (``skip`` policy): a late cycle sends the sample that belongs to its
own deadline, missed deadlines are counted and never burst, and the schedule never drifts because deadlines
are computed from the start, not from the previous wake-up. Time comes from the arm (``arm.now()`` /
``arm.sleep_until()``): the wall clock on a port, simulated time on :class:`armbus.hil.simarm.SimArm`.

Limits, in three layers:

1. before streaming, the samples are checked against each joint's ``max_velocity`` and ``max_acceleration``
   (finite differences of what will actually be sent); a plan that exceeds them is re-planned with the arm's
   limits (``on_limit="stretch"``, reported as ``stretched``), or refused with ``on_limit="reject"``;
2. every cycle the :class:`StepLimiter` moves each goal at most ``min(max_step, max_velocity * dt)`` from the
   previous goal, ``dt`` being the time since that goal was due (after missed deadlines, a larger step is
   legitimately allowed); a clamped cycle is counted, and the stream goes on past the plan's end until the
   goals have caught up with the final sample;
3. :class:`armbus.controller.armmodel.ArmModel` clamps positions into the joint limits, as for any goal.

Closed loop (``closed_loop=True``): after each SYNC_WRITE the cycle reads every joint's state with one
SYNC_READ and accumulates the tracking error ``plan position at the cycle's deadline - measured position``.
A read that fails or times out is counted and the stream goes on. After the last goal the stream reads the
states until every joint is within ``tolerance`` of the end or ``settle`` seconds passed, and reports the final
error. ``on_cycle(info)`` is called every cycle; returning ``False`` stops the stream.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from armbus.bus.errors import ArmTimeoutError, PeerError, UsageError
from armbus.bus.wire import NS_PER_S
from armbus.controller.events import JointState
from armbus.controller.scheduler import RateKeeper
from armbus.controller.trajectory import JointLimits, Plan, Trajectory, TrajectoryError, check_rate

if TYPE_CHECKING:
    from armbus.controller.arm import Arm

Array = npt.NDArray[np.float64]
#: Default arrival tolerance: 0.01 rad (0.57 deg), a few encoder counts on a hobby servo, well above the
#: simulated joint's steady-state error.
DEFAULT_TOLERANCE = 0.01
#: Default time allowed after the last goal for the joints to arrive (s): a position loop settles in ~0.2 s.
DEFAULT_SETTLE_S = 1.0
#: Relative slack when checking the samples against the limits: finite differences of an exactly-limited plan
#: may exceed the limit by rounding.
LIMIT_SLACK = 1e-6


@dataclass(frozen=True)
class CycleInfo:
    """One streaming cycle, as handed to ``on_cycle``."""

    index: int  # cycle number in the schedule (skipped deadlines skip numbers)
    time: float  # s after the stream's start: this cycle's deadline
    lateness: float  # s the cycle began after its deadline
    desired: Mapping[str, float]  # the plan at this deadline (rad)
    goals: Mapping[str, float]  # what was sent (after the limits)
    states: Mapping[str, JointState] | None  # closed loop: what the joints reported this cycle


@dataclass(frozen=True)
class StreamReport:
    names: tuple[str, ...]
    rate_hz: float
    cycles: int  # cycles run (goals sent, including the catch-up after the plan's end)
    missed: int  # deadlines skipped because a cycle was late
    clamped: int  # cycles in which the step limiter moved a goal
    send_failures: int
    read_failures: int
    stretched: bool  # the plan was re-planned to fit the arm's velocity/acceleration limits
    stopped: bool  # on_cycle asked to stop
    duration: float  # s, first deadline to the last cycle's deadline
    expected_duration: float  # s, the plan's duration
    achieved_hz: float
    cycle_p50: float  # s, work time of a cycle (send, and read when closed loop)
    cycle_p99: float
    lateness_p99: float  # s
    tracking_rms: Mapping[str, float]  # rad, closed loop only (nan otherwise)
    tracking_max: Mapping[str, float]
    final_error: Mapping[str, float]  # rad, end of plan - position read after settling (nan if unread)
    reached: bool  # every final error within the tolerance
    tolerance: float
    cpu_per_cycle: float  # s of this thread's CPU per cycle

    def summary(self) -> str:
        worst = max(self.final_error.values(), key=lambda e: abs(e) if math.isfinite(e) else math.inf)
        return (f"{self.cycles} cycles at {self.rate_hz:g} Hz (achieved {self.achieved_hz:.1f} Hz), "
                f"missed {self.missed}, clamped {self.clamped}, cycle p50 {self.cycle_p50 * 1e3:.2f} ms "
                f"p99 {self.cycle_p99 * 1e3:.2f} ms, worst final error {worst:.4f} rad, "
                f"{'reached' if self.reached else 'NOT reached'}")


class StepLimiter:
    """Per-cycle goal clamp: at most ``min(max_step, max_velocity * dt)`` per joint from the previous goal."""

    def __init__(self, max_velocity: npt.ArrayLike, max_step: npt.ArrayLike, initial: npt.ArrayLike) -> None:
        self.max_velocity: Array = np.asarray(max_velocity, dtype=float)
        self.max_step: Array = np.asarray(max_step, dtype=float)
        self.position: Array = np.array(initial, dtype=float)

    def step(self, target: Array, dt: float) -> tuple[Array, bool]:
        """The goal to send toward ``target`` after ``dt`` seconds; and whether it was clamped."""
        bound = np.minimum(self.max_step, self.max_velocity * dt)
        delta = target - self.position
        clipped = np.clip(delta, -bound, bound)
        clamped = bool(np.any(np.abs(delta - clipped) > 1e-12))
        self.position = self.position + clipped
        return self.position.copy(), clamped


def _limits(arm: Arm, names: Sequence[str]) -> JointLimits:
    joints = [arm.model.joint(n) for n in names]
    return JointLimits(
        np.array([j.position_min for j in joints]),
        np.array([j.position_max for j in joints]),
        np.array([j.max_velocity for j in joints]),
        np.array([math.inf if j.max_acceleration is None else j.max_acceleration for j in joints]),
    )


def fit_plan(plan: Plan, limits: JointLimits, rate_hz: float, on_limit: str = "stretch") -> tuple[Plan, bool]:
    """``plan`` if its samples keep within the velocity/acceleration limits, else re-planned within them."""
    samples = plan.sample(rate_hz)
    dt = np.diff(samples.times)[:, None]
    vel = np.diff(samples.positions, axis=0) / dt if len(dt) else np.zeros((0, len(plan.names)))
    acc = np.diff(vel, axis=0) / dt[1:] if len(vel) > 1 else np.zeros((0, len(plan.names)))
    with np.errstate(invalid="ignore"):
        fast = bool(np.any(np.abs(vel) > limits.max_velocity * (1 + LIMIT_SLACK)))
        # the first/last sample intervals may be shorter than 1/rate; skip accelerations that involve them
        brisk = bool(np.any(np.abs(acc[:-1]) > limits.max_acceleration * (1 + LIMIT_SLACK) + 1e-9))
    if not (fast or brisk):
        return plan, False
    if on_limit == "reject":
        what = "velocity" if fast else "acceleration"
        raise TrajectoryError(f"the plan exceeds the arm's {what} limits; re-plan with the arm's limits or "
                              "stream with on_limit='stretch'")
    replanned = Trajectory(plan.names, plan.times, plan.positions).plan(limits, plan.profile, "stretch")
    return replanned, True


def stream_plan(
    arm: Arm,
    plan: Plan,
    rate_hz: float = 200.0,
    *,
    closed_loop: bool = False,
    on_cycle: Callable[[CycleInfo], bool | None] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    settle: float = DEFAULT_SETTLE_S,
    on_limit: str = "stretch",
    read_timeout: float | None = None,
) -> StreamReport:
    """Stream ``plan`` to ``arm`` at ``rate_hz``; see the module docstring."""
    check_rate(rate_hz)
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise UsageError(f"tolerance must be a positive number of rad, got {tolerance!r}")
    if on_limit not in ("stretch", "reject"):
        raise UsageError(f"on_limit must be 'stretch' or 'reject', got {on_limit!r}")
    names = plan.names
    joints = [arm.model.joint(n) for n in names]
    plan, stretched = fit_plan(plan, _limits(arm, names), rate_hz, on_limit)
    samples = plan.sample(rate_hz)
    last = len(samples.times) - 1
    final = samples.positions[-1]

    start_states = _read(arm, read_timeout)
    if start_states is None:
        raise ArmTimeoutError("cannot read the joints' states before streaming")
    initial = [arm.model.last_goal.get(n, start_states[n].position if n in start_states else 0.0) for n in names]
    limiter = StepLimiter([j.max_velocity for j in joints], [j.max_step for j in joints], initial)

    cpu0 = time.thread_time()
    keeper = RateKeeper(rate_hz, start=arm.now(), policy="skip")
    start = keeper.next_deadline()
    prev_deadline: int | None = None
    sq = np.zeros(len(names))
    worst = np.zeros(len(names))
    tracked = 0
    clamped = send_failures = read_failures = 0
    stopped = False
    last_deadline = start
    while True:
        arm.sleep_until(keeper.next_deadline())
        cycle = keeper.begin(arm.now())
        k = min(cycle.index, last)
        desired = samples.positions[k]
        dt = (cycle.deadline - prev_deadline) / NS_PER_S if prev_deadline is not None else 1.0 / rate_hz
        prev_deadline = last_deadline = cycle.deadline
        goal, was_clamped = limiter.step(desired, dt)
        clamped += was_clamped
        try:
            arm.set_goals(dict(zip(names, goal.tolist(), strict=True)))
        except (ArmTimeoutError, PeerError):
            send_failures += 1
        states = _read(arm, read_timeout) if closed_loop else None
        if closed_loop:
            if states is None or any(n not in states for n in names):
                read_failures += 1
            else:
                err = desired - np.array([states[n].position for n in names])
                sq += err * err
                worst = np.maximum(worst, np.abs(err))
                tracked += 1
        keeper.end(arm.now())
        if on_cycle is not None:
            info = CycleInfo(cycle.index, (cycle.deadline - start) / NS_PER_S, cycle.lateness / NS_PER_S,
                             dict(zip(names, desired.tolist(), strict=True)),
                             dict(zip(names, goal.tolist(), strict=True)), states)
            if on_cycle(info) is False:
                stopped = True
                break
        if cycle.index >= last and np.allclose(limiter.position, final, rtol=0, atol=1e-12):
            break
    cpu = time.thread_time() - cpu0

    final_error = _settle(arm, names, final, tolerance, 0.0 if stopped else settle, rate_hz, read_timeout)
    stats = keeper.stats()
    nan = math.nan
    rms = np.sqrt(sq / tracked) if tracked else np.full(len(names), nan)
    return StreamReport(
        names=tuple(names),
        rate_hz=rate_hz,
        cycles=stats.cycles,
        missed=stats.missed,
        clamped=clamped,
        send_failures=send_failures,
        read_failures=read_failures,
        stretched=stretched,
        stopped=stopped,
        duration=(last_deadline - start) / NS_PER_S,
        expected_duration=plan.duration,
        achieved_hz=stats.achieved_hz,
        cycle_p50=stats.work_p50,
        cycle_p99=stats.work_p99,
        lateness_p99=stats.lateness_p99,
        tracking_rms=dict(zip(names, rms.tolist(), strict=True)),
        tracking_max=dict(zip(names, (worst if tracked else rms).tolist(), strict=True)),
        final_error=final_error,
        reached=all(math.isfinite(e) and abs(e) <= tolerance for e in final_error.values()),
        tolerance=tolerance,
        cpu_per_cycle=cpu / max(1, stats.cycles),
    )


def _read(arm: Arm, timeout: float | None) -> dict[str, JointState] | None:
    try:
        return arm.read_states(timeout)
    except (ArmTimeoutError, PeerError):
        return None


def _settle(arm: Arm, names: Sequence[str], final: Array, tolerance: float, settle: float, rate_hz: float,
            timeout: float | None) -> dict[str, float]:
    """Read the states until every joint is within ``tolerance`` of ``final`` or ``settle`` s passed."""
    until = arm.now() + int(settle * NS_PER_S)
    period = int(NS_PER_S / rate_hz)
    errors = {n: math.nan for n in names}
    while True:
        states = _read(arm, timeout)
        if states is not None:
            errors = {n: float(final[i] - states[n].position) if n in states else math.nan
                      for i, n in enumerate(names)}
            if all(math.isfinite(e) and abs(e) <= tolerance for e in errors.values()):
                return errors
        now = arm.now()
        if now >= until:
            return errors
        arm.sleep_until(min(until, now + period))
