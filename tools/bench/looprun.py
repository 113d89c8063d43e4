"""The two control loops of the loop benchmark, each run against the pty arm (wall clock) or in simulated time.

Theory of operation
-------------------
Both loops command the same motion (a 0.1 rad sine at 0.5 Hz, the same goal for every joint, so that goal takes
can be matched across joints by value) and read every joint's state each cycle:

* ``cyclic``: :meth:`armbus.controller.arm.Arm.cyclic`, one CYCLE per cycle, pipelined (the callback never
  waits on the wire); figures from its :class:`~armbus.controller.cyclic.CyclicReport`. State age is exact: the
  joint's sample instant on the host clock.
* ``sync``: the SYNC_WRITE + SYNC_READ loop, blocking, on a :class:`~armbus.controller.scheduler.RateKeeper`
  (skip policy): ``set_goals`` returns on joint 1's ack, ``read_states`` with the reply from the chain end. Its
  state age is taken from the SYNC_READ's send to the start of the next cycle, the one that uses it: a lower
  bound within one control tick (a joint samples at its last tick before the read passes).

Both wait with the arm's runner: on a port (the pty arm) the wall clock, a sleep then a spin; in simulated time
(:class:`armbus.hil.simarm.SimArm`) the kernel runs to the deadline. The sim runs put a
:class:`~armbus.tools.bench.loopskew.SkewMeter` on the joints in the same process; the pty runs have one inside
the arm's process (:mod:`armbus.tools.bench.loopserver`). Host CPU is ``time.process_time`` of this process
(the API thread and the port's reader thread) over the run: a pty figure only, since in simulated time the same
process runs the arm.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, fields
from typing import Any

from armbus.bus.wire import NS_PER_MS, NS_PER_S
from armbus.controller.arm import Arm
from armbus.controller.cyclic import CycleView
from armbus.controller.scheduler import RateKeeper
from armbus.hil.simarm import SimArm
from armbus.tools.bench.loopserver import PtyArm
from armbus.tools.bench.loopskew import SkewMeter, percentile

#: Goal motion: a 0.1 rad sine at 0.5 Hz on every joint (small and slow: the joints track it easily).
AMPLITUDE_RAD, MOTION_HZ = 0.1, 0.5
LOOPS = ("cyclic", "sync")
CLOCKS = ("pty", "sim")
#: Time the pty arm gets after torque on before a measured window (its links settled, the first goals taken).
SETTLE_S = 0.3
NAN = float("nan")


@dataclass
class LoopFigures:
    """One loop's run. ``nan`` where a figure does not apply (host CPU in simulated time, lag without a pty)."""

    loop: str
    clock: str
    baud: int
    rate_hz: float
    seconds: float
    cycles: int = 0
    achieved_hz: float = NAN
    missed_pct: float = NAN
    age_p50_ms: float = NAN
    age_p99_ms: float = NAN
    latency_p50_ms: float = NAN  # cyclic: send -> reply; sync: cycle begin -> states back
    latency_p99_ms: float = NAN
    skew_p50_us: float = NAN
    skew_p99_us: float = NAN
    skew_max_us: float = NAN
    skew_cycles: int = 0
    cpu_per_cycle_us: float = NAN
    cpu_core_pct: float = NAN
    lag_p50_us: float = NAN
    lag_p99_us: float = NAN
    lag_max_us: float = NAN
    slipped_ms: float = NAN
    arm_cpu_pct: float = NAN
    arm_cpu_per_sim_s: float = NAN  # the pty arm's CPU seconds per simulated second
    sim_over_wall: float = NAN  # the pty arm's simulated time over wall time (1: it kept pace)
    failures: int = 0  # sync: set_goals / read_states that raised
    superseded: int = 0  # cyclic: cycles taken back unsent (the host link still carried the one before)
    no_reply: int = 0  # cyclic: cycles sent and given up without a reply in time
    late: int = 0  # cyclic: replies that came after their cycle was given up

    def absorb(self, figures: dict[str, Any]) -> None:
        """Take the figures of ``figures`` whose names are fields of this class."""
        names = {f.name for f in fields(self)}
        for k, v in figures.items():
            if k in names:
                setattr(self, k, v)


def goal_at(t_s: float) -> float:
    return AMPLITUDE_RAD * math.sin(2 * math.pi * MOTION_HZ * t_s)


def run_cyclic(arm: Arm, rate_hz: float, seconds: float, fig: LoopFigures) -> None:
    """The cyclic exchange at ``rate_hz`` for ``seconds``; fills ``fig``."""
    names = list(arm.model.joints)

    def callback(view: CycleView) -> dict[str, float]:
        g = goal_at(view.index / rate_hz)
        return {n: g for n in names}

    c0 = arm.runner.call(lambda node, now: dataclasses.replace(node.cycles.counters))
    cpu0, wall0 = time.process_time(), time.monotonic()
    report = arm.cyclic(callback, rate_hz).run(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    c1 = arm.runner.call(lambda node, now: dataclasses.replace(node.cycles.counters))
    fig.superseded, fig.no_reply, fig.late = c1.superseded - c0.superseded, c1.missed - c0.missed, c1.late - c0.late
    fig.cycles, fig.achieved_hz, fig.missed_pct = report.cycles, report.achieved_hz, report.missed_pct
    fig.age_p50_ms, fig.age_p99_ms = report.age_p50_ms, report.age_p99_ms
    fig.latency_p50_ms, fig.latency_p99_ms = report.latency_p50_ms, report.latency_p99_ms
    _cpu(fig, cpu, wall, report.cycles)


def run_sync(arm: Arm, rate_hz: float, seconds: float, fig: LoopFigures) -> None:
    """SYNC_WRITE + SYNC_READ cycles at ``rate_hz`` for ``seconds`` (skip policy); fills ``fig``."""
    names = list(arm.model.joints)
    keeper = RateKeeper(rate_hz, start=arm.now() + int(NS_PER_S / rate_hz), policy="skip")
    start = keeper.next_deadline()
    end = start + int(seconds * NS_PER_S)
    ages: list[int] = []
    read_sent: int | None = None
    cpu0, wall0 = time.process_time(), time.monotonic()
    while keeper.next_deadline() < end:
        arm.sleep_until(keeper.next_deadline())
        cycle = keeper.begin(arm.now())
        if read_sent is not None:
            ages.append(arm.now() - read_sent)
            read_sent = None
        g = goal_at((cycle.deadline - start) / NS_PER_S)
        try:
            arm.set_goals({n: g for n in names})
            sent = arm.now()
            arm.read_states()
            read_sent = sent
        except Exception:  # a lost frame is a counted failure, the loop goes on
            fig.failures += 1
        keeper.end(arm.now())
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    s = keeper.stats()
    fig.cycles, fig.achieved_hz = s.cycles, s.achieved_hz
    fig.missed_pct = 100.0 * s.missed / max(1, s.cycles + s.missed)
    fig.latency_p50_ms, fig.latency_p99_ms = s.work_p50 * 1e3, s.work_p99 * 1e3
    fig.age_p50_ms, fig.age_p99_ms = percentile(ages, 0.50) / NS_PER_MS, percentile(ages, 0.99) / NS_PER_MS
    _cpu(fig, cpu, wall, s.cycles)


def _cpu(fig: LoopFigures, cpu: float, wall: float, cycles: int) -> None:
    if fig.clock == "pty":
        fig.cpu_per_cycle_us = cpu / max(1, cycles) * 1e6
        fig.cpu_core_pct = 100.0 * cpu / max(wall, 1e-9)


def _prepare(arm: Arm) -> None:
    arm.enumerate()
    arm.torque(True)


def run_sim(loop: str, joints: int, baud: int, rate_hz: float, seconds: float, seed: int = 1) -> LoopFigures:
    """One loop in simulated time, the skew measured on the simulated joints."""
    fig = LoopFigures(loop, "sim", baud, rate_hz, seconds)
    arm = SimArm(joints=joints, seed=seed, baud=baud)
    _prepare(arm)
    meter = SkewMeter([j.control for j in arm.virtual_arm.joints], "latch" if loop == "cyclic" else "tick")
    (run_cyclic if loop == "cyclic" else run_sync)(arm, rate_hz, seconds, fig)
    fig.absorb(meter.figures())
    return fig


def run_pty(loop: str, joints: int, baud: int, rate_hz: float, seconds: float, seed: int = 1) -> LoopFigures:
    """One loop against a fresh pty arm in a child process; skew, lag and the arm's CPU measured inside it."""
    fig = LoopFigures(loop, "pty", baud, rate_hz, seconds)
    with PtyArm(joints, baud, seed, "latch" if loop == "cyclic" else "tick") as server, \
            Arm.open(server.tty, baud, timeout=0.2) as arm:
        _prepare(arm)
        arm.sleep_until(arm.now() + int(SETTLE_S * NS_PER_S))
        server.start_window()
        try:
            (run_cyclic if loop == "cyclic" else run_sync)(arm, rate_hz, seconds, fig)
        finally:
            fig.absorb(server.stop_window())
        arm.torque(False)
    return fig
