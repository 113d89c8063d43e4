"""Loop-gain sweep: the box of the five gain registers inside which the cascade stays within its limits.

Theory of operation
-------------------
:func:`stress` runs one :class:`~armbus.joints.control.ControlCore` on one :class:`~armbus.joints.actuator.Actuator`
(seeded sensor noise, as in the simulated arm) in simulated time at 1 kHz through a fixed program of stress moves, for
one gain set under one :class:`Condition` (velocity limit, current limit, external load):

* hold after torque enable; a position step to the upper limit and across the whole range to the lower one
  (at the velocity limit, braking on the position-limit envelope); small position steps (the linear loop);
* velocity-mode steps beyond the limit and a reversal; a stop;
* current-mode steps at +-the current limit (the speed limiter of current mode is the velocity gain);
* a return toward the middle and a final hold where the joint got to: after :data:`SETTLE_MS` the velocity
  ripple (peak to peak) must stay within :data:`HOLD_RIPPLE` (a limit cycle around a goal is an instability
  even where the velocity bound is out of the motor's reach).

After every tick the joint is checked as ``armbus.tools.campaigns.safety.excursions`` checks it in the random-command
trial: velocity over ``1.2 x velocity_limit + VELOCITY_EXCURSION``, position more than ``POSITION_EXCURSION`` beyond its
range, current over the over-current trip level for longer than its trip time; a fault that switches the bridge off
counts too (a gain set the joint cannot run is not a safe one). :data:`CONDITIONS` are the limits and loads of the
stress runs; each is clean with the default gains (a condition no gain can run, such as a load beyond the current limit,
says nothing about gains).

:func:`sweep` then finds the box: for each gain alone (others at default) the first value, up from the default,
at which some condition has an excursion, and down from the default the last such value; the candidate box
keeps a margin of a factor :data:`MARGIN` inside both (max = first unstable / 2, min = last unstable x 2).
Every corner of the box (2^5) and :data:`RANDOM_POINTS` seeded random interior points are run; while one
fails, the bound of the gain that lies furthest out at that point (relative to its default, on a log scale)
is pulled in by a factor :data:`SHRINK`, and the checks start again. ``python -m armbus.tools.campaigns.gainsweep``
prints every figure.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from armbus.bus.errors import ExitCode
from armbus.bus.wire import GoalMode
from armbus.joints.actuator import Actuator, ActuatorParams
from armbus.joints.control import (
    DEFAULT_PERIOD_NS,
    OVERCURRENT_FACTOR,
    OVERCURRENT_MARGIN,
    OVERCURRENT_TIME,
    POSITION_EXCURSION,
    VELOCITY_EXCURSION,
    Command,
    CommandKind,
    ControlCore,
)
from armbus.joints.registers import BY_NAME, RegisterFile

#: The five loop-gain registers, outer loop first.
GAINS = ("pos_kp", "vel_kp", "vel_ki", "cur_kp", "cur_ki")
#: Largest value of a u16 gain register (the type's range: the sweep's upper end).
U16_MAX = 65535
#: Margin kept inside the first unstable value: a factor 2 in gain (6 dB of gain margin).
MARGIN = 2.0
#: Factor by which a bound is pulled in when a point of the box fails.
SHRINK = 0.8
#: How far below its default a gain is scanned before 0 is tried (octaves).
DOWN_OCTAVES = 6
#: Seeded random interior points checked besides the 32 corners.
RANDOM_POINTS = 24
#: Gravity load of the default link: 0.3 kg at 0.1 m (the actuator model's load inertia), 0.29 N m.
GRAVITY_LOAD = 0.3 * 9.81 * 0.1
#: The final hold: a position goal where the joint is, ``SETTLE_MS`` to settle, then ``HOLD_MS`` over which the
#: velocity ripple (peak to peak) is measured.
SETTLE_MS, HOLD_MS = 300, 300
#: Largest ripple of a settled hold: +-VELOCITY_EXCURSION (0.2 rad/s), the tolerance of a joint whose velocity
#: limit is 0. A limit cycle must be judged here: with a high velocity limit the excursion bound (up to 24 rad/s)
#: lies beyond the motor's no-load speed (4.8 rad/s), so a joint swinging at full speed around its goal passes it.
HOLD_RIPPLE = 2 * VELOCITY_EXCURSION


@dataclass(frozen=True)
class Condition:
    """Limits (register units) and external load (N m) of one stress run."""

    velocity_limit: int  # urad/s
    current_limit: int  # mA
    load: float = 0.0
    position_limit: int | None = None  # urad: position range +-this (None: the registers' default range)

    def __str__(self) -> str:
        span = "" if self.position_limit is None else f", range +-{self.position_limit * 1e-6:g} rad"
        return (f"v_lim {self.velocity_limit * 1e-6:g} rad/s, i_lim {self.current_limit * 1e-3:g} A, "
                f"load {self.load:.2f} N m{span}")


#: Stress conditions: the defaults with and without the gravity load; no speed allowed at all (a hold whose
#: limit cycle is judged against 0.2 rad/s) with full current; slow moves under load with full current (the
#: most authority per allowed speed); no speed allowed under load with little current (the speed limiter of
#: current mode is proportional: its steady error under load is inverse to vel_kp); a low current limit
#: (saturated loops); full current at a moderate speed limit; both limits at their maxima.
CONDITIONS: tuple[Condition, ...] = (
    Condition(4_000_000, 1500),
    Condition(4_000_000, 1500, GRAVITY_LOAD),
    Condition(0, 2500),
    Condition(500_000, 2500, GRAVITY_LOAD),
    Condition(0, 300, GRAVITY_LOAD),
    Condition(1_000_000, 300),
    Condition(2_000_000, 2500),
    Condition(20_000_000, 2500),
)


@dataclass
class Outcome:
    """What one stress run found."""

    excursions: int = 0
    peak: float = 0.0  # largest |velocity| / velocity bound over every tick
    ripple: float = 0.0  # peak-to-peak velocity over the final hold, rad/s
    first: str = ""  # the first excursion, described

    @property
    def ok(self) -> bool:
        return self.excursions == 0


def _program(c: Condition, p_min: float, p_max: float) -> list[tuple[GoalMode, int | None, int]]:
    """The stress moves for one condition: (mode, goal in register units or None for "where the joint is",
    duration in ms); the last one is the final hold."""
    v = c.velocity_limit * 1e-6
    span = p_max - p_min

    def travel(dist: float) -> int:  # time to cover ``dist`` at the limit plus settling, capped
        return min(1800, 300 + (round(dist / v * 1000) if v > 0 else 0))

    v_far = 2 * c.velocity_limit + 1_000_000  # beyond the limit: the goal is clamped to it
    return [
        (GoalMode.POSITION, round(p_max * 1e6), travel(p_max)),
        (GoalMode.POSITION, round(p_min * 1e6), travel(span)),
        (GoalMode.POSITION, round((p_min + 0.05) * 1e6), 200),
        (GoalMode.POSITION, round((p_min + 0.3) * 1e6), 250),
        (GoalMode.VELOCITY, v_far, 300),
        (GoalMode.VELOCITY, -v_far, 300),
        (GoalMode.VELOCITY, 0, 200),
        (GoalMode.CURRENT, c.current_limit, 60),
        (GoalMode.CURRENT, -c.current_limit, 60),
        (GoalMode.POSITION, round(0.5 * (p_min + p_max) * 1e6), travel(0.5 * span)),
        (GoalMode.POSITION, None, SETTLE_MS + HOLD_MS),  # the final hold, wherever the joint got to
    ]


def stress(gains: Mapping[str, int], cond: Condition, seed: int = 1, stop_early: bool = True) -> Outcome:
    """Run the stress program for ``gains`` (register values; missing ones at default) under ``cond``."""
    regs = RegisterFile()
    for name, value in gains.items():
        r = BY_NAME[name]
        regs.mem[r.address:r.end] = value.to_bytes(r.size, "little", signed=r.signed)  # past the register limits
    regs.set("velocity_limit", cond.velocity_limit)
    regs.set("current_limit", cond.current_limit)
    if cond.position_limit is not None:
        regs.set("position_min", -cond.position_limit)
        regs.set("position_max", cond.position_limit)
    act = Actuator(ActuatorParams(), seed=seed)
    act.load_torque = cond.load
    core = ControlCore(act, regs)
    p_min, p_max = core.p_min, core.p_max
    v_lim, i_lim = cond.velocity_limit * 1e-6, cond.current_limit * 1e-3
    v_bound = 1.2 * v_lim + VELOCITY_EXCURSION
    i_bound = OVERCURRENT_FACTOR * i_lim + OVERCURRENT_MARGIN
    out = Outcome()
    now = 0
    over_i = 0.0
    core.commands.put(Command(CommandKind.TORQUE, 1))
    moves: list[tuple[GoalMode, int | None, int]] = [(GoalMode.POSITION, 0, 100), *_program(cond, p_min, p_max)]
    hold_v: list[float] = []
    last_fault = ""
    for k, (mode, goal, ms) in enumerate(moves):
        if goal is None:
            goal = round(core.position * 1e6)
        if k:  # move 0: the hold after torque enable
            core.commands.put(Command(CommandKind.SET_GOAL, mode, goal))
        for step in range(ms):
            now += DEFAULT_PERIOD_NS
            core.handle_timer(now)
            while (ev := core.events.get()) is not None:
                if ev.active:
                    last_fault = ev.code.name
            vel, pos = core.velocity, core.position
            out.peak = max(out.peak, abs(vel) / v_bound)
            over_i = over_i + core.dt if abs(core.current) > i_bound else 0.0
            found = ""
            if not core.torque:
                found = f"bridge off ({last_fault or 'fault'})"
            elif abs(vel) > v_bound:
                found = f"velocity {vel:+.3f} rad/s, bound {v_bound:.3f}"
            elif max(p_min - pos, pos - p_max) > POSITION_EXCURSION:
                found = f"position {pos:+.4f} rad outside [{p_min:.3f}, {p_max:.3f}]"
            elif over_i > OVERCURRENT_TIME:
                found = f"current {core.current:+.3f} A over {i_bound:.3f} for {over_i * 1e3:.0f} ms"
            if found:
                out.excursions += 1
                if not out.first:
                    out.first = f"move {k} ({mode.name} {goal}) at {step} ms: {found}"
                if stop_early or not core.torque:
                    return out
            if k == len(moves) - 1 and step >= SETTLE_MS:
                hold_v.append(vel)
    out.ripple = max(hold_v) - min(hold_v)
    if out.ripple > HOLD_RIPPLE:
        out.excursions += 1
        out.first = out.first or (f"final hold: velocity ripple {out.ripple:.3f} rad/s peak to peak, "
                                  f"over {HOLD_RIPPLE:.3f}")
    return out


@dataclass
class Verdict:
    """Outcome of one gain set over a list of conditions."""

    ok: bool = True
    why: str = ""  # the first failure: condition and excursion
    peak: float = 0.0  # largest |velocity| / bound over the conditions run
    ripple: float = 0.0  # largest final-hold ripple, rad/s


def check(gains: Mapping[str, int], conditions: Iterable[Condition] = CONDITIONS, seed: int = 1,
          stop_early: bool = True) -> Verdict:
    """Run the stress program under every condition (with ``stop_early``, up to the first failure)."""
    v = Verdict()
    for c in conditions:
        o = stress(gains, c, seed, stop_early)
        v.peak, v.ripple = max(v.peak, o.peak), max(v.ripple, o.ripple)
        if not o.ok and v.ok:
            v.ok, v.why = False, f"{c}: {o.first}"
            if stop_early:
                break
    return v


def wide_conditions(seed: int = 1) -> tuple[Condition, ...]:
    """A grid of limits and loads beyond :data:`CONDITIONS` (a cross-check of the box, not used to find it):
    velocity limit 0 .. 20 rad/s x current limit 0.3 .. 2.5 A x no load / the gravity load, keeping those the
    default gains run cleanly (a load the current limit cannot hold fails whatever the gains). Current limits
    below 0.3 A are left out: there the drive torque is of the order of the Coulomb friction (0.1 A: 0.18 N m
    against 0.08 N m) and even the default gains hunt around a held goal, which no gain range cures."""
    grid = [Condition(v, i, load) for v in (0, 100_000, 300_000, 1_000_000, 4_000_000, 20_000_000)
            for i in (300, 800, 1500, 2500) for load in (0.0, GRAVITY_LOAD)]
    return tuple(c for c in grid if stress(_defaults(), c, seed).ok)


Box = dict[str, tuple[int, int]]


@dataclass
class SweepReport:
    """Figures of one sweep (see :func:`sweep`)."""

    first_unstable: dict[str, int | None] = field(default_factory=dict)  # up from the default, others at default
    last_unstable_below: dict[str, int | None] = field(default_factory=dict)  # down from the default
    candidate: Box = field(default_factory=dict)
    box: Box = field(default_factory=dict)
    points_checked: int = 0
    shrinks: list[str] = field(default_factory=list)  # one line per bound pulled in


def _defaults() -> dict[str, int]:
    return {g: BY_NAME[g].default for g in GAINS}


def _scan(gain: str, up: bool, conditions: tuple[Condition, ...], seed: int, log: bool) -> int | None:
    """First value, from the default outward in quarter octaves, with an excursion (None: none found). Up ends
    at the u16 maximum; down goes :data:`DOWN_OCTAVES` below the default, then tries 0."""
    d = BY_NAME[gain].default
    if up:
        values = sorted({min(U16_MAX, round(d * 2 ** (k / 4))) for k in range(1, 80)} - {d})
    else:
        values = sorted({math.floor(d * 2 ** (-k / 4)) for k in range(1, 4 * DOWN_OCTAVES + 1)} | {0},
                        reverse=True)
    for v in values:
        verdict = check({gain: v}, conditions, seed)
        if log:
            print(f"    {gain} = {v}: {'clean' if verdict.ok else verdict.why}", flush=True)
        if not verdict.ok:
            return v
    return None


def box_points(box: Box, random_points: int, seed: int) -> list[dict[str, int]]:
    """The 2^5 corners of ``box``, then seeded random interior points (alternately uniform and log-uniform)."""
    points = [{g: box[g][(n >> b) & 1] for b, g in enumerate(GAINS)} for n in range(2 ** len(GAINS))]
    rng = random.Random(seed)
    for n in range(random_points):
        p = {}
        for g in GAINS:
            lo, hi = box[g]
            if n % 2 or lo == 0:
                p[g] = rng.randint(lo, hi)
            else:
                p[g] = round(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        points.append(p)
    return points


def _culprits(point: Mapping[str, int], conditions: tuple[Condition, ...], seed: int) -> list[str]:
    """The first gain of a failing point whose return to its default alone makes the point clean (every
    off-default gain if none does)."""
    d = _defaults()
    off = [g for g in GAINS if point[g] != d[g]]
    for g in off:
        if check({**point, g: d[g]}, conditions, seed).ok:
            return [g]
    return off


def sweep(conditions: tuple[Condition, ...] = CONDITIONS, seed: int = 1, random_points: int = RANDOM_POINTS,
          log: bool = False) -> SweepReport:
    """Find the gain box (see the module docstring); ``log`` prints each step."""
    rep = SweepReport()
    d = _defaults()
    for g in GAINS:
        hi = rep.first_unstable[g] = _scan(g, True, conditions, seed, log)
        lo = rep.last_unstable_below[g] = _scan(g, False, conditions, seed, log) if d[g] else None
        top = U16_MAX if hi is None else max(d[g], math.floor(hi / MARGIN))
        bottom = 0 if lo is None else min(d[g], math.ceil(lo * MARGIN))
        rep.candidate[g] = (bottom, top)
    box = dict(rep.candidate)
    while True:
        failing: tuple[dict[str, int], str] | None = None
        for p in box_points(box, random_points, seed):
            rep.points_checked += 1
            verdict = check(p, conditions, seed)
            if not verdict.ok:
                failing = (p, verdict.why)
                break
        if failing is None:
            break
        p, why = failing
        for g in _culprits(p, conditions, seed):
            lo, hi = box[g]
            if p[g] > d[g]:
                box[g] = (lo, max(d[g], math.floor(hi * SHRINK)))
            elif p[g] < d[g]:
                box[g] = (min(d[g], max(1, math.ceil(lo / SHRINK))), hi)
            line = f"{g} {lo}..{hi} -> {box[g][0]}..{box[g][1]}: {_fmt(p)} failed ({why})"
            rep.shrinks.append(line)
            if log:
                print(f"    {line}", flush=True)
    rep.box = box
    return rep


def register_box() -> Box:
    """The gain box of the register table: (minimum, maximum) of each gain register."""
    return {g: (BY_NAME[g].minimum, BY_NAME[g].maximum) for g in GAINS}


def check_box(box: Box, conditions: tuple[Condition, ...], random_points: int = RANDOM_POINTS,
              seed: int = 1) -> tuple[int, Verdict, list[str]]:
    """Every corner and ``random_points`` random points of ``box`` under ``conditions``, run to the end:
    (points run, the worst figures with the first failure, one line per failing point)."""
    worst = Verdict()
    failures = []
    points = box_points(box, random_points, seed)
    for p in points:
        v = check(p, conditions, seed, stop_early=False)
        worst.peak, worst.ripple = max(worst.peak, v.peak), max(worst.ripple, v.ripple)
        if not v.ok:
            failures.append(f"{_fmt(p)}: {v.why}")
            if worst.ok:
                worst.ok, worst.why = False, v.why
    return len(points), worst, failures


def _fmt(point: Mapping[str, int]) -> str:
    return " ".join(f"{g}={point[g]}" for g in GAINS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m armbus.tools.campaigns.gainsweep", description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1, help="sensor noise and random interior points")
    ap.add_argument("--points", type=int, default=RANDOM_POINTS, help="random interior points per box check")
    ap.add_argument("--verbose", action="store_true", help="print every scanned value and every bound pulled in")
    ap.add_argument("--check", action="store_true",
                    help="skip the sweep: only check the register table's gain box")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    d = _defaults()
    print(f"stress conditions, default gains ({_fmt(d)}):")
    for c in CONDITIONS:
        o = stress(d, c, args.seed, stop_early=False)
        print(f"  {c}: excursions {o.excursions}, peak velocity {o.peak:.2f} x bound, "
              f"hold ripple {o.ripple * 1e3:.1f} mrad/s")
    if not args.check:
        rep = sweep(CONDITIONS, args.seed, args.points, args.verbose)
        print(f"one gain at a time (others at default), quarter-octave steps; candidate = first unstable / "
              f"{MARGIN:g} above, last unstable x {MARGIN:g} below:")
        for g in GAINS:
            hi, lo = rep.first_unstable[g], rep.last_unstable_below[g]
            clamped = (lo is not None and lo * MARGIN > d[g]) or (hi is not None and hi / MARGIN < d[g])
            print(f"  {g:7} default {d[g]:5}: first unstable above {'none' if hi is None else hi:>5}, "
                  f"below {'none' if lo is None else lo:>5} -> candidate {rep.candidate[g][0]}..{rep.candidate[g][1]}"
                  + (" (the margin reaches past the default: clamped to it)" if clamped else ""))
        print(f"box check: {rep.points_checked} points run (rounds of 32 corners + {args.points} random), "
              f"{len(rep.shrinks)} bounds pulled in")
        for line in rep.shrinks:
            print(f"  {line}")
        print("stable box: " + ", ".join(f"{g} {rep.box[g][0]}..{rep.box[g][1]}" for g in GAINS))
    box = register_box()
    wide = wide_conditions(args.seed)
    ok = True
    for label, conds in (("stress conditions", CONDITIONS), (f"{len(wide)} wide-grid conditions", wide)):
        n, worst, failures = check_box(box, conds, args.points, args.seed)
        print(f"register table box ({', '.join(f'{g} {box[g][0]}..{box[g][1]}' for g in GAINS)}), {label}: "
              f"{n - len(failures)}/{n} points clean; worst peak velocity {worst.peak:.2f} x bound, "
              f"worst hold ripple {worst.ripple * 1e3:.1f} mrad/s")
        for line in failures[:10]:
            print(f"  {line}")
        ok &= not failures
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    return ExitCode.OK if ok else ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())
