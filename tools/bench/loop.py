"""Loop benchmark: the cyclic exchange against the SYNC_WRITE + SYNC_READ loop, on the pty arm and in simulated time.

Theory of operation
-------------------
For each configuration (:data:`CONFIGS`: 1 Mbaud at 500 Hz, 3 Mbaud at 1 kHz; 6 joints) both loops
(:mod:`armbus.tools.bench.looprun`) run once against a real-time pty arm in a child process
(:mod:`armbus.tools.bench.loopserver`, paced at the configuration's baud, as ``armbus sim --baud B`` runs it) and
once in simulated time (:class:`armbus.hil.simarm.SimArm`), ``--seconds`` each (60 s; ``--quick`` 2 s). One table
per configuration puts the four runs side by side: achieved rate, missed cycles, state age, cycle latency, goal
skew (latch instants for the cyclic exchange; the control ticks that took a SYNC_WRITE's goal for the old loop;
measured on the joints, inside the pty arm's process for the pty runs), host CPU (pty runs), and the pty arm's
lag and CPU. Below it, what the wire allows (:mod:`armbus.tools.bench.loopwire`): the exchange's latency floor
and link-utilisation bound, and the old loop's wire floor.

Targets (:func:`check`) apply to the cyclic exchange, in both clocks: rate reached with at most 1 % missed, state
age p99 within 1.3x the latency floor; on the pty arm also host CPU within 25 % of a core at 1 kHz and the pty
arm keeping up (no slip, lag p99 within one control period). Each is printed as met or missed with its measured
figure; the exit code is 1 when one is missed (``--no-check``: 0 anyway, for exploring). A miss is a miss
whatever its cause; :func:`limits` then says from the measured figures what ran out (the pty arm's CPU and slips,
cycles superseded behind hop 1's stop-and-wait, the host's spinning).

``python -m armbus.tools.bench.loop [--quick] [--seconds S] [--only pty|sim] [--loops cyclic,sync]
[--config BAUD:HZ ...] [--json] [--save FILE] [--no-check]``; :func:`run` and :func:`check` for tests.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from armbus.bus.errors import ExitCode
from armbus.controller.cyclic import READ_SPANS
from armbus.joints.control import DEFAULT_PERIOD_NS
from armbus.tools.bench.looprun import CLOCKS, LOOPS, LoopFigures, run_pty, run_sim
from armbus.tools.bench.loopwire import cyclic_budget, floor_rate_hz, wire_floor

#: (baud, rate) pairs: the two operating points the targets name.
CONFIGS: tuple[tuple[int, float], ...] = ((1_000_000, 500.0), (3_000_000, 1000.0))
JOINTS = 6
#: Window of a full run (a minute: over a thousand cycles above the p99) and of --quick.
DURATION_S, QUICK_DURATION_S = 60.0, 2.0
MAX_MISSED_PCT = 1.0
AGE_OVER_FLOOR = 1.3
MAX_HOST_CPU_PCT = 25.0
#: Host CPU target applies at this rate and above.
CPU_TARGET_HZ = 1000.0
#: The pty arm keeps up when its lag p99 stays within one control period and it never slips.
MAX_LAG_P99_US = DEFAULT_PERIOD_NS / 1e3
#: Turnaround per reply on hop 1 behind a pty (the host's reader and the pty arm's driver each waking and
#: answering): a round figure for the table's stop-and-wait line, of the order of the 0.1 ms wake-up latency
#: measured in docs/hil.md plus each side's processing of a frame.
PTY_TURNAROUND_NS = 400_000
#: A rate counts as reached within this fraction (the achieved rate is measured over a window of deadlines).
RATE_TOLERANCE = 0.99


@dataclass(frozen=True)
class Target:
    config: str
    clock: str
    name: str
    measured: str
    met: bool

    def line(self) -> str:
        return f"  [{'met' if self.met else 'MISSED'}] {self.config} {self.clock}: {self.name}: {self.measured}"


def run(configs: Sequence[tuple[int, float]] = CONFIGS, seconds: float = DURATION_S, *,
        clocks: Sequence[str] = CLOCKS, loops: Sequence[str] = LOOPS, joints: int = JOINTS,
        seed: int = 1) -> list[LoopFigures]:
    """Every (configuration, loop, clock) run, in that order."""
    out = []
    for baud, rate in configs:
        for loop in loops:
            for clock in clocks:
                runner = run_pty if clock == "pty" else run_sim
                out.append(runner(loop, joints, baud, rate, seconds, seed))
    return out


def yardstick_us() -> float:
    """A fixed pure-Python workload (``sum(range(1000))``, best of five batches): how fast this machine runs
    Python right now. The wall-clock figures depend on it; the simulated-time ones do not."""
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(200):
            sum(range(1000))
        best = min(best, (time.perf_counter() - t0) / 200 * 1e6)
    return best


def _label(baud: int, rate: float) -> str:
    return f"{baud / 1e6:g} Mbaud {rate:g} Hz"


def check(figs: Sequence[LoopFigures], joints: int = JOINTS) -> list[Target]:
    """The targets for every cyclic run in ``figs`` (see the module docstring)."""
    length = READ_SPANS["motion"][1]
    out = []
    for f in figs:
        if f.loop != "cyclic":
            continue
        cfg = _label(f.baud, f.rate_hz)
        floor_ms = cyclic_budget(joints, f.baud, length).floor_ns / 1e6
        out.append(Target(cfg, f.clock, f">= {f.rate_hz:g} Hz, <= {MAX_MISSED_PCT:g} % missed",
                          f"{f.achieved_hz:.1f} Hz, {f.missed_pct:.2f} % missed",
                          f.achieved_hz >= RATE_TOLERANCE * f.rate_hz and f.missed_pct <= MAX_MISSED_PCT))
        ratio = f.age_p99_ms / floor_ms
        out.append(Target(cfg, f.clock, f"state age p99 <= {AGE_OVER_FLOOR:g}x the latency floor",
                          f"{f.age_p99_ms:.2f} ms = {ratio:.2f}x {floor_ms:.2f} ms", ratio <= AGE_OVER_FLOOR))
        if f.clock != "pty":
            continue
        if f.rate_hz >= CPU_TARGET_HZ:
            out.append(Target(cfg, f.clock, f"host CPU <= {MAX_HOST_CPU_PCT:g} % of a core",
                              f"{f.cpu_core_pct:.1f} % ({f.cpu_per_cycle_us:.0f} us/cycle)",
                              f.cpu_core_pct <= MAX_HOST_CPU_PCT))
        out.append(Target(cfg, f.clock, f"pty arm keeps up (no slip, lag p99 <= {MAX_LAG_P99_US:g} us)",
                          f"lag p99 {f.lag_p99_us:.0f} us, max {f.lag_max_us:.0f} us, slipped {f.slipped_ms:.1f} ms, "
                          f"arm CPU {f.arm_cpu_pct:.0f} % of a core",
                          f.lag_p99_us <= MAX_LAG_P99_US and f.slipped_ms == 0))
    return out


#: Table rows: label, then how to print a run's figures.
ROWS: tuple[tuple[str, str], ...] = (
    ("achieved rate (Hz)", "{achieved_hz:.1f}"),
    ("missed (%)", "{missed_pct:.2f}"),
    ("cycles superseded / no reply / late", "{superseded} / {no_reply} / {late}"),
    ("state age p50 / p99 (ms)", "{age_p50_ms:.2f} / {age_p99_ms:.2f}"),
    ("latency p50 / p99 (ms)", "{latency_p50_ms:.2f} / {latency_p99_ms:.2f}"),
    ("goal skew p50 / p99 / max (us)", "{skew_p50_us:.1f} / {skew_p99_us:.1f} / {skew_max_us:.1f}"),
    ("host CPU per cycle (us)", "{cpu_per_cycle_us:.0f}"),
    ("host CPU (% of a core)", "{cpu_core_pct:.1f}"),
    ("pty arm lag p50 / p99 (us)", "{lag_p50_us:.0f} / {lag_p99_us:.0f}"),
    ("pty arm lag max (us), slipped (ms)", "{lag_max_us:.0f}, {slipped_ms:.1f}"),
    ("pty arm CPU (% of a core)", "{arm_cpu_pct:.0f}"),
    ("pty arm CPU per simulated s (s)", "{arm_cpu_per_sim_s:.2f}"),
    ("pty arm simulated / wall time", "{sim_over_wall:.3f}"),
)


def limits(figs: Sequence[LoopFigures], joints: int = JOINTS) -> list[str]:
    """For each cyclic run on the pty arm that missed a target, what the measured figures say ran out."""
    out = []
    load = os.getloadavg()[0]
    for f in figs:
        if f.loop != "cyclic" or f.clock != "pty" or all(t.met for t in check([f], joints)):
            continue
        cfg = f"{_label(f.baud, f.rate_hz)} pty"
        if f.slipped_ms > 0 or f.sim_over_wall < 0.99:
            out.append(f"{cfg}: the pty arm fell behind real time (simulated/wall {f.sim_over_wall:.3f}, slipped "
                       f"{f.slipped_ms:.0f} ms) using {f.arm_cpu_pct:.0f} % of a core, {f.arm_cpu_per_sim_s:.2f} s of "
                       f"CPU per simulated second: it did not get the CPU it needed (load average {load:.1f} on "
                       f"{os.cpu_count()} cores)")
        elif f.lag_p99_us > MAX_LAG_P99_US:
            out.append(f"{cfg}: the pty arm kept pace on average but ran late in bursts (lag p50 "
                       f"{f.lag_p50_us:.0f} us, p99 {f.lag_p99_us:.0f} us) using {f.arm_cpu_pct:.0f} % of a core")
        if f.superseded > 0.01 * max(1, f.cycles):
            hop1 = cyclic_budget(joints, f.baud, READ_SPANS["motion"][1]).hop1_rate_hz(PTY_TURNAROUND_NS)
            out.append(f"{cfg}: {f.superseded} of {f.cycles} cycles superseded: a CYCLE's ACK took longer than a "
                       f"period to come back over hop 1 (stop-and-wait; {hop1:.0f} Hz at most with "
                       f"{PTY_TURNAROUND_NS / 1e3:.0f} us turnaround)")
        if f.rate_hz >= CPU_TARGET_HZ and f.cpu_core_pct > MAX_HOST_CPU_PCT:
            out.append(f"{cfg}: host CPU {f.cpu_core_pct:.1f} % includes the last 100 us of each wait spun on the "
                       f"clock (NodeRunner.sleep_until), up to 10 % of a core at 1 kHz")
    return out


def _cell(fmt: str, f: LoopFigures) -> str:
    values = {k: (_NanSafe(v) if isinstance(v, float) else v) for k, v in asdict(f).items()}
    return fmt.format(**values)


class _NanSafe(float):
    def __format__(self, spec: str) -> str:
        return "-" if math.isnan(self) else format(float(self), spec)


def table(figs: Sequence[LoopFigures], baud: int, rate: float, joints: int = JOINTS) -> str:
    """The side-by-side table of one configuration, then its wire budget."""
    runs = [f for f in figs if f.baud == baud and f.rate_hz == rate]
    heads = [f"{f.loop} {f.clock}" for f in runs]
    cells = [[_cell(fmt, f) for f in runs] for _, fmt in ROWS]
    width = max([12, *(len(h) for h in heads), *(len(c) for row in cells for c in row)]) + 2
    lines = [f"{_label(baud, rate)}, {joints} joints, {runs[0].seconds:g} s per run" if runs else _label(baud, rate),
             f"{'':36}" + "".join(f"{h:>{width}}" for h in heads)]
    for (label, _), row in zip(ROWS, cells, strict=True):
        lines.append(f"{label:36}" + "".join(f"{c:>{width}}" for c in row))
    length = READ_SPANS["motion"][1]
    budget = cyclic_budget(joints, baud, length)
    floor = wire_floor(joints, baud)
    ms = {k: v * 1e3 for k, v in floor.items()}
    lines.append(f"cyclic exchange: latency floor {budget.floor_ns / 1e6:.2f} ms; link bound "
                 f"{budget.max_rate_hz:.0f} Hz (busiest: {budget.busiest.describe()}; "
                 f"{100 * budget.utilisation(rate):.0f} % used at {rate:g} Hz)")
    pty_hz = budget.hop1_rate_hz(PTY_TURNAROUND_NS)
    lines.append(f"hop 1 stop-and-wait (one frame in flight): reply + ACK {budget.hop1_round_ns(0, False) / 1e6:.2f} "
                 f"ms per cycle, {budget.hop1_round_ns(0) / 1e6:.2f} ms with a CYCLE ahead of the ACK -> at most "
                 f"{budget.hop1_rate_hz(0):.0f} Hz with an instant turnaround, {pty_hz:.0f} Hz with "
                 f"{PTY_TURNAROUND_NS / 1e3:.0f} us (host and pty arm waking and answering)")
    lines.append(f"sync loop: wire floor {ms['floor_s']:.2f} ms per cycle ({floor['bytes']:.0f} bytes: sync-write "
                 f"{ms['sync_write_s']:.2f} ms, sync-read down {ms['sync_read_down_s']:.2f} ms, reply up "
                 f"{ms['reply_up_s']:.2f} ms) -> at most {floor_rate_hz(floor['floor_s']):.0f} Hz")
    lines.append("goal skew: measured on the joints (inside the pty arm's process for the pty runs)")
    return "\n".join(lines)


def _config(text: str) -> tuple[int, float]:
    try:
        baud, rate = text.split(":")
        return int(baud), float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected BAUD:HZ, e.g. 3000000:1000") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m armbus.tools.bench.loop", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DURATION_S:g} s runs instead of {DURATION_S:g} s")
    parser.add_argument("--seconds", type=float, help="length of each run (overrides --quick)")
    parser.add_argument("--config", type=_config, action="append", help="BAUD:HZ (repeatable; default: "
                        + ", ".join(f"{b}:{r:g}" for b, r in CONFIGS) + ")")
    parser.add_argument("--only", choices=CLOCKS, help="run against the pty arm or in simulated time only")
    parser.add_argument("--loops", default=",".join(LOOPS), help="comma-separated: cyclic, sync")
    parser.add_argument("--joints", type=int, default=JOINTS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", metavar="FILE", help="also write the JSON document to FILE")
    parser.add_argument("--no-check", action="store_true", help="exit 0 even when a target is missed")
    args = parser.parse_args(argv)
    loops = [x.strip() for x in args.loops.split(",") if x.strip()]
    if not loops or any(x not in LOOPS for x in loops):
        parser.error(f"--loops: choose from {', '.join(LOOPS)}")
    seconds = args.seconds if args.seconds is not None else (QUICK_DURATION_S if args.quick else DURATION_S)
    if not seconds > 0:
        parser.error("--seconds must be positive")
    configs = args.config or list(CONFIGS)
    clocks = [args.only] if args.only else list(CLOCKS)
    before = yardstick_us()
    figs = run(configs, seconds, clocks=clocks, loops=loops, joints=args.joints, seed=args.seed)
    after = yardstick_us()
    targets = check(figs, args.joints)
    missed = [t for t in targets if not t.met]
    document = json.dumps({"runs": [asdict(f) for f in figs], "targets": [asdict(t) for t in targets],
                           "yardstick_us": [before, after]}, indent=1)
    if args.save:
        with open(args.save, "w", encoding="utf-8") as out:
            out.write(document + "\n")
    if args.json:
        print(document)
    else:
        print(f"loop benchmark, {args.joints} joints, host pid {os.getpid()}, load average "
              f"{os.getloadavg()[0]:.2f} at the end; machine yardstick sum(range(1000)): {before:.1f} us before, "
              f"{after:.1f} us after the runs (about 10 us on a recent desktop CPU)")
        for baud, rate in configs:
            print()
            print(table(figs, baud, rate, args.joints))
        print("\ntargets (cyclic exchange):")
        for t in targets:
            print(t.line())
        print(f"{len(targets) - len(missed)} of {len(targets)} targets met")
        reasons = limits(figs, args.joints)
        if reasons:
            print("what ran out (measured):")
            for line in reasons:
                print(f"  {line}")
    if missed and not args.no_check:
        return ExitCode.FAILED
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
