"""``armbus demo``: a virtual 6-joint arm from discovery to e-stop, in simulated time, with a trace and a summary.

Theory of operation
-------------------
The demo is the host API (:class:`armbus.hil.simarm.SimArm`, the same :class:`armbus.controller.arm.Arm` a real arm
uses) driving a :class:`armbus.hil.virtual_arm.VirtualArm` in simulated time, with every link recorded into a pcapng
trace through the kernel's capture tap. The script:

1. discovers the chain (ENUMERATE) and identifies every joint (PING);
2. switches torque on and streams a pick-and-place trajectory (minimum-jerk) with the cyclic exchange
   (:meth:`armbus.controller.arm.Arm.cyclic`): one CYCLE per cycle at 250 Hz carries every joint's goal down and
   brings every joint's state back, pipelined (an exchange takes 6.3 ms at 1 Mbaud); the callback compares each
   state with the plan at the instant it was sampled, and the live line shows the achieved rate, the state ages
   (p50/p99) and the cycles missed;
3. halfway through, makes the cable between joints 2 and 3 noisy for one second (frame loss, bit flips,
   duplicates): the hop links retransmit, some exchanges come late or not at all and are counted, and the
   trajectory finishes anyway;
4. reboots joint 4 and recovers (FAULT REBOOTED arrives, the host re-enumerates and restores torque);
5. e-stops every joint and checks that all report ESTOPPED;
6. prints a summary (frames, acks, retransmits, per-hop latency p50/p99 from the trace, the cyclic exchange's rate,
   state ages and misses, tracking error) and writes the trace, plus a plot when matplotlib is installed.

Simulated time makes the run deterministic for a given seed and several times faster than real time.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from armbus.bus.errors import ExitCode
from armbus.bus.wire import DEFAULT_BAUD, NS_PER_S, Address, StatusFlag
from armbus.controller.cyclic import CycleView
from armbus.controller.events import CycleMissed, FaultReported, HostEvent
from armbus.controller.stream import DEFAULT_TOLERANCE
from armbus.controller.trajectory import Plan, Trajectory
from armbus.hil.faults import LinkFaults
from armbus.hil.simarm import SimArm

JOINTS = 6
#: Pick-and-place waypoints in degrees for joints 1..6 (base, shoulder, elbow, wrist pitch, wrist roll, gripper).
WAYPOINTS_DEG = [
    (0.0, [0, 0, 0, 0, 0, 0]),  # home
    (1.0, [30, 25, -40, 15, 0, 30]),  # above the pick
    (1.6, [30, 40, -55, 15, 0, 30]),  # down to the part
    (2.0, [30, 40, -55, 15, 0, 0]),  # close the gripper
    (2.8, [-35, 20, -35, 15, 90, 0]),  # carry to the place
    (3.4, [-35, 38, -52, 15, 90, 0]),  # down
    (3.8, [-35, 38, -52, 15, 90, 30]),  # open the gripper
    (5.0, [0, 0, 0, 0, 0, 0]),  # home
]
NOISY_LINK = "j2-j3"
NOISE = LinkFaults(drop_frame=0.05, flip_bit=0.0005, dup_frame=0.02)
REBOOT_JOINT = 4
#: Rate of the cyclic exchange: one CYCLE (goals down, states up) per cycle. An exchange through six joints takes
#: 6.3 ms at 1 Mbaud, so two are in flight at once. 500 Hz runs too, but the noisy cable then costs about one cycle
#: in ten (each hop forwards every queued CYCLE, stale or not) and the demo takes twice as long.
RATE_HZ = 250.0
#: Time the exchange goes on holding the last waypoint after the plan's end, for the joints to arrive (s).
SETTLE_S = 0.3
#: Live figures cover the last second of cycles; the progress line is redrawn every this many cycles.
WINDOW_S = 1.0
REDRAW_EVERY = 25


def _trajectory() -> Trajectory:
    names = [f"joint{i}" for i in range(1, JOINTS + 1)]
    times = [t for t, _ in WAYPOINTS_DEG]
    positions = np.radians([p for _, p in WAYPOINTS_DEG])
    return Trajectory(names, times, positions)


_TOTALS = ("frames_sent", "data_sent", "acked", "retransmits", "duplicates", "crc_errors", "framing_errors",
           "failures", "resets_sent")


def _link_totals(arm: SimArm, retired: dict[str, int] | None = None) -> dict[str, int]:
    """Counters summed over every cabled link end (the host's, and both ends of each joint except the last joint's
    open DOWN port), plus ``retired``: those of link ends a reboot replaced."""
    varm = arm.virtual_arm
    ends = [ep for j in varm.joints for ep in j.links][:-1]
    endpoints = [arm.runner.node.link, *ends]
    return {k: sum(getattr(ep.counters, k) for ep in endpoints) + (retired or {}).get(k, 0) for k in _TOTALS}


class _Progress:
    """A one-line progress display (rich when on a terminal, plain lines otherwise)."""

    def __init__(self, total_s: float, live: bool) -> None:
        self.total_s = total_s
        self.live = live
        self.last_print = -1.0
        self._bar: Any = None
        if live:
            from rich.progress import BarColumn, Progress, TextColumn

            self._bar = Progress(TextColumn("  t={task.completed:3.1f} s"), BarColumn(bar_width=10),
                                 TextColumn("{task.description}"))
            self._task = self._bar.add_task("", total=total_s)
            self._bar.start()

    def update(self, t: float, note: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=min(t, self.total_s), description=note)
        elif t - self.last_print >= 1.0:
            self.last_print = t
            print(f"  t={t:4.1f} s  {note}", flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class _Stream:
    """The cyclic callback: the plan's positions at each deadline as goals, the tracking error of every state against
    the plan at the instant it was sampled, and the live figures of the last second (rate, state ages, misses)."""

    def __init__(self, arm: SimArm, plan: Plan, progress: _Progress, noisy: tuple[int, int]) -> None:
        self.arm, self.plan, self.progress, self.noisy = arm, plan, progress, noisy
        self.names = list(plan.names)
        self.column = {n: i for i, n in enumerate(self.names)}
        self.tracking: list[float] = []
        self.missed = 0
        self._t0: int | None = None  # deadline of cycle 0: the plan's time 0
        self._deadlines: deque[int] = deque()  # the last second's deadlines (the live rate)
        self._ages: deque[float] = deque(maxlen=int(WINDOW_S * RATE_HZ) * len(self.names))  # ms
        self._retransmits0 = _link_totals(arm)["retransmits"]

    def on_event(self, event: HostEvent) -> None:
        if isinstance(event, CycleMissed):
            self.missed += 1

    def callback(self, view: CycleView) -> dict[str, float]:
        if self._t0 is None:
            self._t0 = view.deadline - round(view.index * NS_PER_S / RATE_HZ)
        t0 = self._t0
        fresh = [s for s in view.states.values() if s.sampled_at >= t0]
        if fresh:  # each state against the plan where it was when the joint sampled it
            want, _ = self.plan.evaluate([(s.sampled_at - t0) / NS_PER_S for s in fresh])
            self.tracking.append(max(abs(want[i, self.column[s.name]] - s.position) for i, s in enumerate(fresh)))
        self._live(view)
        goal, _ = self.plan.evaluate([view.index / RATE_HZ])
        return dict(zip(self.names, goal[0].tolist(), strict=True))

    def _live(self, view: CycleView) -> None:
        deadlines = self._deadlines
        deadlines.append(view.deadline)
        while deadlines[0] <= view.deadline - WINDOW_S * NS_PER_S:
            deadlines.popleft()
        self._ages.extend((view.now - s.sampled_at) / 1e6 for s in view.states.values())
        if view.index % REDRAW_EVERY:
            return
        t = view.index / RATE_HZ
        ages = sorted(self._ages)
        if len(deadlines) < 2 or not ages:
            self.progress.update(t, "starting")
            return
        rate = (len(deadlines) - 1) * NS_PER_S / (deadlines[-1] - deadlines[0])
        p50, p99 = ages[len(ages) // 2], ages[int(0.99 * (len(ages) - 1))]
        retransmits = _link_totals(self.arm)["retransmits"] - self._retransmits0
        noisy = "  noisy" if self.noisy[0] <= view.deadline < self.noisy[1] else ""
        self.progress.update(t, f"{rate:.0f} Hz  age p50 {p50:.1f} p99 {p99:.1f} ms  missed {self.missed}  "
                                f"retx {retransmits}{noisy}")


def run_demo(out_dir: str = "armbus-demo", seed: int = 1, live: bool | None = None, firmware: str | None = None,
             plot: bool = True) -> dict[str, Any]:
    """Run the demo; return the summary as a dict (also printed). ``firmware`` is what the joints run (``python``,
    ``c``: :mod:`armbus.hil.firmware.choice`); ``plot=False`` skips the plot (benchmarks time the run alone)."""
    from armbus.hil.trace.pcapng import TraceWriter

    wall0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trace_path = out / "demo.pcapng"
    faults_seen: list[str] = []

    arm = SimArm(joints=JOINTS, seed=seed, timeout=0.2, firmware=firmware)
    varm = arm.virtual_arm
    writer = TraceWriter(trace_path, metadata={"joints": JOINTS, "baud": DEFAULT_BAUD, "seed": seed})
    varm.kernel.add_tap(writer)

    def on_event(ev: HostEvent) -> None:
        if isinstance(ev, FaultReported):
            who = "an unaddressed joint" if ev.address == Address.UNASSIGNED else f"joint{ev.address}"
            faults_seen.append(f"{getattr(ev.code, 'name', ev.code)} from {who}")

    arm.add_listener(on_event)
    print(f"armbus demo: virtual {JOINTS}-joint arm at 1 Mbaud, simulated time, seed {seed}")

    # 1. discovery
    found = arm.enumerate()
    print(f"\n1. discovered {len(found)} joints:")
    for j in found:
        ping = arm.ping(f"joint{j.address}")
        print(f"   joint{j.address}: model 0x{j.model:04x}, firmware {ping.fw_major}.{ping.fw_minor}, "
              f"serial 0x{j.serial:08x}")

    # 2-3. trajectory with a noisy cable in the middle, streamed by the cyclic exchange
    arm.torque(True)
    arm.set_heartbeat(0.05)
    plan = _trajectory().plan()
    t_start = arm.now()
    k = varm.kernel
    noisy_from, noisy_to = t_start + int(1.5 * NS_PER_S), t_start + int(2.5 * NS_PER_S)
    k.call_at(noisy_from, lambda now: k.faults.set_link(NOISY_LINK, NOISE))
    k.call_at(noisy_to, lambda now: k.faults.set_link(NOISY_LINK, LinkFaults()))
    print(f"\n2. pick-and-place trajectory, {plan.duration:.1f} s, streamed by the cyclic exchange at "
          f"{RATE_HZ:.0f} Hz\n   (one CYCLE per cycle: every joint's goal down, every joint's state back)\n"
          f"   (cable {NOISY_LINK} noisy from 1.5 s to 2.5 s: 5% frame loss, bit flips, duplicates)")
    before = _link_totals(arm)
    progress = _Progress(plan.duration + SETTLE_S, live if live is not None else _is_terminal())
    stream = _Stream(arm, plan, progress, (noisy_from, noisy_to))
    arm.add_listener(stream.on_event)
    report = arm.cyclic(stream.callback, RATE_HZ).run(plan.duration + SETTLE_S)
    arm.remove_listener(stream.on_event)
    progress.close()
    final = arm.exchange()
    end = dict(zip(plan.names, plan.positions[-1].tolist(), strict=True))
    final_error = max(abs(end[n] - final[n].position) for n in plan.names)
    reached = final_error <= DEFAULT_TOLERANCE
    during = _link_totals(arm)
    print(f"   {report.summary()}")
    print(f"   exchange latency p50 {report.latency_p50_ms:.2f} ms p99 {report.latency_p99_ms:.2f} ms, "
          f"worst final error {math.degrees(final_error):.2f} deg, {'reached' if reached else 'NOT reached'}")
    print(f"   retransmissions during the move: {during['retransmits'] - before['retransmits']}, "
          f"duplicates dropped: {during['duplicates'] - before['duplicates']}, "
          f"CRC errors: {during['crc_errors'] - before['crc_errors']}, "
          f"delivery failures: {during['failures'] - before['failures']}")

    # 4. a joint reboots
    print(f"\n3. joint{REBOOT_JOINT} reboots (power glitch)")
    reboot_at = arm.now()
    rebooting = varm.joint(REBOOT_JOINT)
    # the reboot replaces its link ends: keep their counters for the summary
    retired = {key: sum(getattr(ep.counters, key) for ep in rebooting.links) for key in _TOTALS}
    rebooting.reboot(reboot_at)
    arm.sleep_until(reboot_at + int(0.3 * NS_PER_S))
    rebooted = [f for f in faults_seen if f.startswith("REBOOTED")]
    print(f"   fault events: {', '.join(faults_seen) or 'none'} (a rebooted joint forgets its address)")
    found = arm.enumerate()
    arm.torque(True)
    states = arm.read_states()
    ok = all(s.status & StatusFlag.TORQUE_ON for s in states.values())
    recovered_s = (arm.now() - reboot_at) / NS_PER_S
    print(f"   re-enumerated {len(found)} joints, torque restored on all: {ok} "
          f"({recovered_s * 1e3:.0f} ms simulated after the reboot)")

    # 5. e-stop
    print("\n4. e-stop")
    t_stop = arm.now()
    arm.estop()
    arm.sleep_until(t_stop + int(0.05 * NS_PER_S))
    states = arm.read_states()
    stopped = [n for n, s in states.items() if s.status & StatusFlag.ESTOPPED]
    print(f"   {len(stopped)}/{len(states)} joints report ESTOPPED")
    arm.set_heartbeat(None)
    arm.close()
    writer.close()

    # 6. summary from the counters and the trace
    from armbus.hil.trace.decode import decode_file
    from armbus.hil.trace.stats import compute

    stats = compute(decode_file(str(trace_path)))
    totals = _link_totals(arm, retired)
    hop = stats.hop_latency.get("all")
    e2e = stats.e2e_latency.get("all")
    worst = max(stream.tracking) if stream.tracking else math.nan
    summary = {
        "joints": len(found),
        "frames": totals["frames_sent"],
        "data_frames": totals["data_sent"],
        "acks": totals["acked"],
        "retransmits": totals["retransmits"],
        "duplicates_dropped": totals["duplicates"],
        "crc_errors": totals["crc_errors"],
        "delivery_failures": totals["failures"],
        "hop_latency_p50_us": hop.p50_ns / 1e3 if hop else math.nan,
        "hop_latency_p99_us": hop.p99_ns / 1e3 if hop else math.nan,
        "e2e_latency_p50_us": e2e.p50_ns / 1e3 if e2e else math.nan,
        "e2e_latency_p99_us": e2e.p99_ns / 1e3 if e2e else math.nan,
        "cyclic_rate_hz": report.achieved_hz,
        "cycles": report.cycles,
        "cycles_replied": report.replied,
        "cycles_missed": report.missed,
        "cycles_late": report.late,
        "state_age_p50_ms": report.age_p50_ms,
        "state_age_p99_ms": report.age_p99_ms,
        "exchange_latency_p50_ms": report.latency_p50_ms,
        "exchange_latency_p99_ms": report.latency_p99_ms,
        "max_tracking_error_deg": math.degrees(worst),
        "trajectory_reached": reached,
        "reboot_recovered": ok and bool(rebooted),
        "estopped": len(stopped),
        "simulated_s": arm.now() / NS_PER_S,
        "wall_s": time.perf_counter() - wall0,
        "trace": str(trace_path),
        "plot": None,
    }
    if plot:
        summary["plot"] = _plot(trace_path, out)
        summary["wall_s"] = time.perf_counter() - wall0
    _print_summary(summary)
    return summary


def _plot(trace_path: Path, out: Path) -> str | None:
    try:
        import matplotlib  # noqa: F401

        from armbus.hil.trace import plot
    except ImportError:
        print("\n(matplotlib is not installed: no plot; pip install 'armbus[plot]')")
        return None
    target = out / "demo.png"
    rc = plot.main([str(trace_path), "-o", str(target)])
    return str(target) if rc == 0 else None


def _print_summary(s: dict[str, Any]) -> None:
    print("\nsummary")
    print(f"  frames on the wire     {s['frames']} ({s['data_frames']} data, {s['acks']} acked)")
    print(f"  retransmits            {s['retransmits']}  (duplicates dropped {s['duplicates_dropped']}, "
          f"CRC errors {s['crc_errors']}, delivery failures {s['delivery_failures']})")
    print(f"  hop latency            p50 {s['hop_latency_p50_us']:.0f} us   p99 {s['hop_latency_p99_us']:.0f} us")
    print(f"  request latency        p50 {s['e2e_latency_p50_us']:.0f} us   p99 {s['e2e_latency_p99_us']:.0f} us")
    print(f"  cyclic exchange        {s['cycles']} cycles at {s['cyclic_rate_hz']:.0f} Hz, {s['cycles_missed']} missed "
          f"({s['cycles_late']} answered late), exchange p50 {s['exchange_latency_p50_ms']:.1f} ms "
          f"p99 {s['exchange_latency_p99_ms']:.1f} ms")
    print(f"  state age              p50 {s['state_age_p50_ms']:.1f} ms   p99 {s['state_age_p99_ms']:.1f} ms")
    print(f"  max tracking error     {s['max_tracking_error_deg']:.2f} deg "
          f"(trajectory {'reached' if s['trajectory_reached'] else 'NOT reached'})")
    print(f"  reboot recovered       {'yes' if s['reboot_recovered'] else 'NO'}")
    print(f"  e-stopped joints       {s['estopped']}/{s['joints']}")
    print(f"  time                   {s['simulated_s']:.1f} s simulated in {s['wall_s']:.1f} s")
    print(f"  trace                  {s['trace']}" + (f"\n  plot                   {s['plot']}" if s["plot"] else ""))


def _is_terminal() -> bool:
    import sys

    return sys.stdout.isatty()


def main(args: argparse.Namespace) -> int:
    summary = run_demo(args.out, args.seed)
    if getattr(args, "json", False):
        import json

        print(json.dumps(summary))
    ok = summary["trajectory_reached"] and summary["reboot_recovered"] and summary["estopped"] == summary["joints"]
    return ExitCode.OK if ok else ExitCode.FAILED
