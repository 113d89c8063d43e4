"""Benchmark of the C joint firmware against the Python joints (``python -m armbus.tools.bench.firmware``,
``armbus bench firmware``).

Theory of operation
-------------------
Everything side by side in one run, each against its baseline measured in the same process:

* **round trip**: PING to joint 1 of a 6-joint pty arm run by ``armbus sim`` in its own process, unpaced, once with
  C joints (``--firmware c``) and once with Python joints, and the raw pty echo of
  :mod:`armbus.tools.bench.harness` (a thread echoing a PING-sized message). Blocks of the three alternate so
  that they see the same machine load; medians of the block medians. Target: C joints <= 2 x raw echo.
* **6-hop chain**: a :class:`~armbus.hil.simarm.SimArm` of 6 joints in simulated time, the host keeping one
  request to joint 6 (a READ of its position: 6 hops down and 6 up, each hop acked) always in flight; simulated
  seconds per wall second with C and with Python joints. Target: C joints >= 20 x real time.
* **demo**: ``armbus demo`` (:func:`armbus.tools.demo.run_demo`: enumeration, 250 Hz cyclic trajectory, a noisy
  cable, a reboot, e-stop; trace written, no plot) with C and with Python joints; simulated seconds per wall
  second. Target: C joints >= 20 x real time.

A missed target is reported with the measured limit and, with ``--profile``, the top of a cProfile of the C-joint
chain run, grouped by where the time goes (the simulation kernel, the ctypes calls into the firmware, the motor
board, the host). Exit status 1 when a target is missed, 2 (one line) when the C firmware cannot be built.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from typing import Any

from armbus.bus.errors import ExitCode
from armbus.bus.messages import Ping, PingReply
from armbus.bus.wire import DEFAULT_BAUD, NS_PER_S
from armbus.hil.firmware.build import available
from armbus.hil.probe import LinkProbe
from armbus.hil.simarm import SimArm
from armbus.tools.bench.harness import ECHO_BYTES, Echo, median_block, open_slave, sim_process

RTT_RATIO_TARGET = 2.0  # C joints' ping round trip / raw pty echo
SPEED_TARGET = 20.0  # simulated seconds per wall second with C joints
KINDS = ("c", "python")


def bench_round_trip(reps: int, per_block: int) -> dict[str, Any]:
    """Median PING round trips (us) to joint 1 of C and Python pty arms and the raw pty echo, interleaved."""
    procs, probes, fds = [], {}, []
    echo = Echo()
    try:
        for kind in KINDS:
            proc, path = sim_process(6, unpaced=True, firmware=kind)
            procs.append(proc)
            fd = open_slave(path)
            fds.append(fd)
            probe = LinkProbe(fd, DEFAULT_BAUD)
            probe.open(timeout=5)
            probe.enumerate(timeout=5)
            probes[kind] = probe

        def ping(probe: LinkProbe) -> int:
            t0 = time.perf_counter_ns()
            reply = probe.request(Ping(), 1, timeout=2)
            dt = time.perf_counter_ns() - t0
            assert isinstance(reply, PingReply)
            return dt

        message = bytes(random.Random(1).randrange(1, 256) for _ in range(ECHO_BYTES))
        blocks: dict[str, list[float]] = {"c": [], "python": [], "echo": []}
        for _ in range(reps):
            for kind in KINDS:
                blocks[kind].append(median_block(lambda p=probes[kind]: ping(p), per_block))  # type: ignore[misc]
            blocks["echo"].append(median_block(lambda: echo.round_trip(message), per_block))
    finally:
        for fd in fds:
            os.close(fd)
        echo.close()
        for proc in procs:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    us = {k: statistics.median(v) / 1e3 for k, v in blocks.items()}
    return {"c_us": round(us["c"], 1), "python_us": round(us["python"], 1), "echo_us": round(us["echo"], 1),
            "c_vs_echo": round(us["c"] / us["echo"], 2), "python_vs_echo": round(us["python"] / us["echo"], 2),
            "c_vs_python": round(us["c"] / us["python"], 2), "target": RTT_RATIO_TARGET, "blocks": reps,
            "per_block": per_block}


def chain_run(firmware: str, sim_s: float) -> tuple[float, float, int, int]:
    """(simulated s, wall s, requests, kernel events) of a 6-joint arm kept busy with READs of joint 6 for
    ``sim_s``."""
    arm = SimArm(joints=6, seed=1, timeout=0.2, firmware=firmware)
    arm.enumerate()
    start_ns, end_ns = arm.now(), arm.now() + int(sim_s * NS_PER_S)
    events0 = arm.virtual_arm.kernel.events
    n = 0
    t0 = time.perf_counter()
    while arm.now() < end_ns:
        arm.read("joint6", "present_position")
        n += 1
    wall = time.perf_counter() - t0
    events = arm.virtual_arm.kernel.events - events0
    arm.close()
    return (arm.now() - start_ns) / NS_PER_S, wall, n, events


def bench_chain(sim_s: float, reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"sim_s": sim_s, "reps": reps}
    for kind in KINDS:
        speeds, rates, events = [], [], []
        for _ in range(reps):
            sim, wall, n, ev = chain_run(kind, sim_s)
            speeds.append(sim / wall)
            rates.append(n / sim)
            events.append(ev / wall)
        out[f"{kind}_events_per_wall_s"] = round(statistics.median(events))
        out["events_per_sim_s"] = round(ev / sim)
        out[f"{kind}_speed"] = round(statistics.median(speeds), 1)
        out[f"{kind}_requests_per_sim_s"] = round(statistics.median(rates))
    out["c_vs_python"] = round(out["c_speed"] / out["python_speed"], 2)
    out["target"] = SPEED_TARGET
    return out


def bench_demo(reps: int) -> dict[str, Any]:
    from armbus.tools.demo import run_demo

    out: dict[str, Any] = {"reps": reps}
    for kind in KINDS:
        speeds = []
        for _ in range(reps):
            with tempfile.TemporaryDirectory(prefix="armbus-bench-demo-") as tmp, redirect_stdout(io.StringIO()):
                t0 = time.perf_counter()
                summary = run_demo(tmp, seed=1, live=False, firmware=kind, plot=False)
                wall = time.perf_counter() - t0
            speeds.append(summary["simulated_s"] / wall)
            out["sim_s"] = round(summary["simulated_s"], 2)
        out[f"{kind}_speed"] = round(statistics.median(speeds), 1)
    out["c_vs_python"] = round(out["c_speed"] / out["python_speed"], 2)
    out["target"] = SPEED_TARGET
    return out


#: Where the time of a profiled run goes: (label, substrings of the profiled function's file or name).
PROFILE_GROUPS = (
    ("ctypes calls into the C firmware", ("hil/firmware/cjoint.py",)),
    ("motor board (Python side)", ("hil/firmware/cboard.py", "joints/actuator.py")),
    ("simulation kernel and wires", ("hil/kernel.py", "hil/wire.py", "hil/faults.py", "hil/virtual_arm.py")),
    ("host node, link and codec", ("controller/", "bus/")),
)


def profile_chain(sim_s: float) -> list[tuple[str, float]]:
    """Seconds of own time per :data:`PROFILE_GROUPS` group (and the rest) in a C-joint chain run."""
    prof = cProfile.Profile()
    prof.enable()
    chain_run("c", sim_s)
    prof.disable()
    stats = pstats.Stats(prof)
    totals: dict[str, float] = {}
    for (path, _line, _name), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        label = next((g for g, keys in PROFILE_GROUPS if any(k in path for k in keys)), None)
        if label is None:
            label = "built-ins (ctypes foreign calls, dict/list ops)" if path == "~" else "other Python"
        totals[label] = totals.get(label, 0.0) + own
    return sorted(totals.items(), key=lambda kv: -kv[1])


def run(quick: bool = False, profile: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {
        "round_trip": bench_round_trip(3 if quick else 7, 50 if quick else 200),
        "chain": bench_chain(0.5 if quick else 2.0, 1 if quick else 3),
        "demo": bench_demo(1),
    }
    rt, chain, demo = result["round_trip"], result["chain"], result["demo"]
    result["targets_met"] = {"round_trip": rt["c_vs_echo"] <= RTT_RATIO_TARGET,
                             "chain": chain["c_speed"] >= SPEED_TARGET, "demo": demo["c_speed"] >= SPEED_TARGET}
    if profile or not all(result["targets_met"].values()):
        result["profile_chain_c"] = [(k, round(v, 3)) for k, v in profile_chain(0.5)]
    return result


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _print(result: dict[str, Any]) -> None:
    rt, chain, demo, met = result["round_trip"], result["chain"], result["demo"], result["targets_met"]
    print("| measurement | C joints | Python joints | baseline | C ratio | target | verdict |")
    print("|---|---:|---:|---:|---:|---|---|")
    print(f"| PING round trip, 6-joint pty arm (us, median) | {rt['c_us']:.0f} | {rt['python_us']:.0f} | raw pty "
          f"echo {rt['echo_us']:.0f} | {rt['c_vs_echo']} x echo | <= {rt['target']:g} x echo | "
          f"{_verdict(met['round_trip'])} |")
    print(f"| 6-hop chain, READs of joint 6 back to back (simulated s / wall s) | {chain['c_speed']} | "
          f"{chain['python_speed']} | - | {chain['c_vs_python']} x Python | >= {chain['target']:g} | "
          f"{_verdict(met['chain'])} |")
    print(f"| 6-joint demo, {demo['sim_s']} s simulated (simulated s / wall s) | {demo['c_speed']} | "
          f"{demo['python_speed']} | - | {demo['c_vs_python']} x Python | >= {demo['target']:g} | "
          f"{_verdict(met['demo'])} |")
    print(f"round trip: Python joints {rt['python_vs_echo']} x echo; C / Python {rt['c_vs_python']}; "
          f"{rt['blocks']} blocks of {rt['per_block']} pings each")
    print(f"chain: {chain['c_requests_per_sim_s']} requests per simulated s with C joints, "
          f"{chain['python_requests_per_sim_s']} with Python joints; the kernel handles {chain['events_per_sim_s']} "
          f"events per simulated s (byte deliveries, timers, 1 kHz control ticks of 6 joints), "
          f"{chain['c_events_per_wall_s']} per wall s with C joints ({chain['python_events_per_wall_s']} with "
          f"Python): {SPEED_TARGET:g} x real time needs {chain['events_per_sim_s'] * SPEED_TARGET:,.0f} per wall s")
    if "profile_chain_c" in result:
        total = sum(v for _, v in result["profile_chain_c"]) or 1.0
        print("where the time of the C-joint chain goes (cProfile, own time):")
        for label, sec in result["profile_chain_c"]:
            print(f"  {label:50s} {sec:7.3f} s  {100 * sec / total:4.0f} %")
    print(f"targets met: {met}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m armbus.tools.bench.firmware", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--profile", action="store_true", help="profile the C-joint chain run even when targets are met")
    args = ap.parse_args(argv)
    reason = available()
    if reason is not None:
        print(f"firmware bench: {reason}", file=sys.stderr)
        return int(ExitCode.USAGE)
    result = run(args.quick, args.profile)
    _print(result)
    return int(ExitCode.OK if all(result["targets_met"].values()) else ExitCode.FAILED)


if __name__ == "__main__":
    sys.exit(main())
