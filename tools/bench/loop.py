"""Closed-loop benchmark: sync-write + sync-read every cycle against the real-time virtual arm on a pty.

Theory of operation
-------------------
A child process serves a 6-joint :class:`armbus.hil.virtual_arm.VirtualArm` in real time behind a pseudo-terminal
(:class:`armbus.hil.ptyserver.PtyServer`, paced: every byte takes its wire time at ``baud``); it is a separate process
so that the simulation and the host do not share one interpreter lock. This process opens the pty with the sync
:class:`armbus.controller.arm.Arm` (reader thread, wall clock) and runs, on the absolute deadlines of a
:class:`armbus.controller.scheduler.RateKeeper`, cycles of one SYNC_WRITE of goal positions (returns on joint 1's ack)
and one SYNC_READ of every joint's state block (returns with the reply from the chain end).

Figures, each the median of ``repeats`` runs:

* achieved rate, p50/p99 cycle time (begin -> state read back), missed deadlines (skip policy);
* host CPU: ``time.process_time`` of this process (API thread and reader thread) per cycle and as a share of one
  core, for the closed loop and for a 200 Hz sync-write-only stream (a rate the bus sustains, so the CPU share
  there is the cost of 200 real cycles per second, not of idle polling);
* the wire-time floor of one cycle: the sum of the wire times of every frame the cycle puts on the chain, acks
  included, from the codec's encoded sizes (:func:`wire_floor`): the SYNC_WRITE on each hop with the slices left
  for that hop, the SYNC_READ on each hop with the records gathered so far, the reply on each hop back, and a
  7-byte ACK per frame. The ratio p50 / floor says how close to the wire the loop runs; frames on different
  hops overlap in time (the links are full duplex and store-and-forward pipelines the write and the read), so
  the floor is a sum that the real critical path can undercut, and a ratio below 1 is possible.

``python -m armbus.tools.bench.loop [--quick] [--rate HZ] [--baud B] [--joints N]``; :func:`run` for ``armbus bench``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from armbus.bus.codec import encode_data
from armbus.bus.link import CONTROL_WIRE_SIZE
from armbus.bus.messages import SyncRead, SyncReadReply, SyncRecord, make_packet
from armbus.bus.wire import BITS_PER_BYTE, DEFAULT_BAUD, NS_PER_S, Address
from armbus.controller import ops
from armbus.controller.arm import Arm
from armbus.controller.scheduler import RateKeeper
from armbus.joints.registers import STATE_BLOCK

#: Full run: 10 s per repetition (the brief's target window); --quick: 2 s.
DURATION_S, QUICK_DURATION_S = 10.0, 2.0
#: Repetitions whose median is reported (three gives a median that one disturbed run cannot move).
REPEATS = 3
#: Target rate of the closed loop, and the rate at which the CPU budget (20 % of a core) is stated.
TARGET_HZ = 500.0
CPU_REFERENCE_HZ = 200.0
#: Goal motion: a 0.1 rad sine at 0.5 Hz on every joint (small and slow: the joints track it easily).
AMPLITUDE_RAD, MOTION_HZ = 0.1, 0.5


def wire_floor(joints: int, baud: int) -> dict[str, float]:
    """Wire time (s) of every frame one closed-loop cycle puts on the chain, summed, acks included."""
    reg, length = STATE_BLOCK
    byte_s = BITS_PER_BYTE / baud
    goals = {a: 0.0 for a in range(1, joints + 1)}
    write = ops.sync_write_goals(goals)
    sw = sr = up = 0
    for hop in range(1, joints + 1):  # hop k carries toward joint k
        src = Address.HOST if hop == 1 else hop - 1
        rest = type(write)(write.reg, write.slice_len, hop, write.data[(hop - 1) * write.slice_len:])
        sw += len(encode_data(0, 0, make_packet(rest, src, Address.BROADCAST, 1))) + CONTROL_WIRE_SIZE
        records = tuple(SyncRecord(a, 0, bytes(length)) for a in range(1, hop))
        read = SyncRead(reg, length, records)
        sr += len(encode_data(0, 0, make_packet(read, src, Address.BROADCAST, 2))) + CONTROL_WIRE_SIZE
    full = SyncReadReply(reg, length, tuple(SyncRecord(a, 0, bytes(length)) for a in range(1, joints + 1)))
    up = joints * (len(encode_data(0, 0, make_packet(full, joints, Address.HOST, 2))) + CONTROL_WIRE_SIZE)
    return {"sync_write_s": sw * byte_s, "sync_read_down_s": sr * byte_s, "reply_up_s": up * byte_s,
            "floor_s": (sw + sr + up) * byte_s, "bytes": sw + sr + up}


@dataclass
class LoopRun:
    rate_hz: float
    seconds: float
    cycles: int
    achieved_hz: float
    missed: int
    missed_pct: float
    cycle_p50_ms: float
    cycle_p99_ms: float
    cpu_per_cycle_us: float
    cpu_core_pct: float  # share of one core over the run
    failures: int


def closed_loop(arm: Arm, rate_hz: float, seconds: float, read: bool = True) -> LoopRun:
    """Cycles of sync-write (+ sync-read when ``read``) at ``rate_hz`` for ``seconds``."""
    names = list(arm.model.joints)
    keeper = RateKeeper(rate_hz, start=time.monotonic_ns(), policy="skip")
    start = keeper.next_deadline()
    end = start + int(seconds * NS_PER_S)
    failures = 0
    cpu0, wall0 = time.process_time(), time.monotonic()
    while keeper.next_deadline() < end:
        arm.sleep_until(keeper.next_deadline())
        cycle = keeper.begin(time.monotonic_ns())
        t = (cycle.deadline - start) / NS_PER_S
        goal = AMPLITUDE_RAD * math.sin(2 * math.pi * MOTION_HZ * t)
        try:
            arm.set_goals({n: goal for n in names})
            if read:
                arm.read_states()
        except Exception:  # a lost frame is a counted failure, the loop goes on
            failures += 1
        keeper.end(time.monotonic_ns())
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    s = keeper.stats()
    scheduled = s.cycles + s.missed
    return LoopRun(rate_hz, wall, s.cycles, s.achieved_hz, s.missed, 100.0 * s.missed / max(1, scheduled),
                   s.work_p50 * 1e3, s.work_p99 * 1e3, cpu / max(1, s.cycles) * 1e6, 100.0 * cpu / wall, failures)


def _median_run(runs: list[LoopRun]) -> dict[str, float]:
    keys = [k for k, v in asdict(runs[0]).items() if isinstance(v, (int, float))]
    return {k: statistics.median(getattr(r, k) for r in runs) for k in keys}


def _start_server(joints: int, baud: int, seed: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "armbus.tools.bench.loop", "--serve", "--joints", str(joints), "--baud", str(baud),
           "--seed", str(seed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("the virtual arm server did not start")
    return proc, json.loads(line)["tty"]


def run(quick: bool = False, *, rate_hz: float = TARGET_HZ, baud: int = DEFAULT_BAUD, joints: int = 6,
        repeats: int = REPEATS, seed: int = 1) -> dict[str, object]:
    """Run the benchmark; returns every figure (also printed by :func:`main`)."""
    seconds = QUICK_DURATION_S if quick else DURATION_S
    proc, tty = _start_server(joints, baud, seed)
    try:
        with Arm.open(tty, baud, timeout=0.2) as arm:
            arm.enumerate()
            arm.torque(True)
            target = [closed_loop(arm, rate_hz, seconds) for _ in range(repeats)]
            reference = [closed_loop(arm, CPU_REFERENCE_HZ, seconds / 2, read=False) for _ in range(repeats)]
            arm.torque(False)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    server = next((line for line in err.splitlines() if line.startswith("stopped:")), "no summary")
    floor = wire_floor(joints, baud)
    at_target, at_ref = _median_run(target), _median_run(reference)
    return {
        "joints": joints, "baud": baud, "seconds_per_run": seconds, "repeats": repeats,
        "target": at_target, "open_loop_200hz": at_ref, "wire_floor": floor, "virtual_arm": server,
        "p50_over_floor": at_target["cycle_p50_ms"] / 1e3 / floor["floor_s"],
        "max_rate_from_floor_hz": 1.0 / floor["floor_s"],
    }


def _serve(joints: int, baud: int, seed: int) -> int:
    from armbus.hil.ptyserver import run_sim

    ns = argparse.Namespace(joints=joints, baud=baud, seed=seed, faults=None, unpaced=False, capture=None,
                            link=None, json=True)
    return run_sim(ns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m armbus.tools.bench.loop", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DURATION_S:g} s runs instead of "
                        f"{DURATION_S:g} s")
    parser.add_argument("--rate", type=float, default=TARGET_HZ, help="closed-loop rate (Hz)")
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD)
    parser.add_argument("--joints", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(args.joints, args.baud, args.seed)
    r = run(args.quick, rate_hz=args.rate, baud=args.baud, joints=args.joints, repeats=args.repeats,
            seed=args.seed)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    t, ref, fl = r["target"], r["open_loop_200hz"], r["wire_floor"]
    assert isinstance(t, dict) and isinstance(ref, dict) and isinstance(fl, dict)
    print(f"closed loop, {r['joints']} joints at {r['baud']} baud, {r['seconds_per_run']:g} s x {r['repeats']} "
          f"(medians), host pid {os.getpid()}")
    for label, m in ((f"closed loop {t['rate_hz']:g} Hz", t), ("sync-write only 200 Hz", ref)):
        print(f"  {label}: achieved {m['achieved_hz']:.1f} Hz, cycle p50 {m['cycle_p50_ms']:.2f} ms "
              f"p99 {m['cycle_p99_ms']:.2f} ms, missed {m['missed']:.0f} ({m['missed_pct']:.1f} %), "
              f"failures {m['failures']:.0f}, CPU {m['cpu_per_cycle_us']:.0f} us/cycle "
              f"({m['cpu_core_pct']:.1f} % of a core)")
    print(f"  wire floor per cycle: {fl['floor_s'] * 1e3:.2f} ms ({fl['bytes']:.0f} bytes: sync-write "
          f"{fl['sync_write_s'] * 1e3:.2f} ms, sync-read down {fl['sync_read_down_s'] * 1e3:.2f} ms, reply up "
          f"{fl['reply_up_s'] * 1e3:.2f} ms) -> at most {r['max_rate_from_floor_hz']:.0f} Hz")
    print(f"  p50 / floor = {r['p50_over_floor']:.2f}")
    print(f"  virtual arm (other process): {r['virtual_arm']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
