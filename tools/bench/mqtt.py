"""Benchmark: ten arms bridged to one Mosquitto broker at 100 Hz each; delivered rate, latency, the bridges' CPU.

Theory of operation
-------------------
A real Mosquitto (:mod:`armbus.tools.mqtt.broker`, passwords and the lab's ACL) on 127.0.0.1; ``--arms`` bridges
(:class:`armbus.tools.mqtt.bridge.Bridge`, each with its own broker connection and threads, as ``armbus bridge``
runs them), each in a process of its own as in a lab, each on a :class:`StateArm`; one subscriber in a process of
its own takes the state topics. The subscriber is ``mosquitto_sub`` (a C client) so that its own speed does not cap
the figures (a paho subscriber in Python falls behind near 5000 messages/s here); it stamps each message's arrival
on the wall clock, and this benchmark subtracts the ``t`` the bridge stamped when it read the state:
publish-to-receive latency, bridge queue, broker and subscriber included. Both ends read the same clock (one
machine).

:class:`StateArm` is a simulated arm at the level the bridge sees it: ``read_states()`` returns every joint's state
(a seeded smooth motion with noise) at once. The bus simulation is left out on purpose: a real-time virtual arm
(``armbus://``) costs about a third of a core by itself, so ten would measure the simulator, not the bridge; the
bridge's cost per arm on a real port is the figure printed here plus the SYNC_READ the host does anyway.

It runs once with each state layout (``state/JOINT``, one message per joint, the default of ``armbus bridge``; and
``states``, one message per reading of the arm) unless ``--layout`` picks one. After a warm-up, the window of
``--seconds`` counts the joint states stamped inside it, per arm. Figures: the delivered rate (per joint and per
arm, and as a share of ``rate`` x joints x seconds; beside it the share the bridge read and queued, which tells a
slow bridge from a lossy path), latency p50/p99/max, CPU time per second of the bridges (their threads and paho's,
summed over the bridges' processes) and of the broker.
Claims checked (exit 1 when one fails):

* every arm delivers >= 99 % of ``--rate`` per joint (no arm starved, no message lost on the way);
* latency p99 <= 50 ms (a dashboard or a remote e-stop operator sees the arm as it is now);
* no telemetry dropped by the bridges' bounded queues while the broker is up.

    python -m armbus.tools.bench.mqtt                    # 10 arms x 6 joints at 100 Hz, 10 s, each layout
    python -m armbus.tools.bench.mqtt --quick            # 10 arms, 3 s
    python -m armbus.tools.bench.mqtt --layout arm       # one states message per reading only
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from armbus.bus.wire import StatusFlag
from armbus.controller.events import HostEvent, JointState
from armbus.tools.mqtt.bridge import Bridge
from armbus.tools.mqtt.broker import Mosquitto, available, clients_available, lab_acl

#: The claims (see the module docstring).
MIN_DELIVERED = 0.99
MAX_P99_MS = 50.0
USERS = {"bridge": "bench-bridge", "dash": "bench-dash"}


@dataclass(frozen=True)
class _Joint:
    address: int


@dataclass
class _Model:
    joints: dict[str, _Joint]


@dataclass
class StateArm:
    """A simulated arm as the bridge sees it (see the module docstring). Seeded: the same seed, the same motion."""

    joints: int = 6
    seed: int = 0
    clock: Callable[[], int] = time.monotonic_ns
    model: _Model = field(init=False)
    listeners: list[Callable[[HostEvent], None]] = field(default_factory=list)
    reads: int = 0

    def __post_init__(self) -> None:
        self.model = _Model({f"joint{a}": _Joint(a) for a in range(1, self.joints + 1)})
        rng = random.Random(self.seed)
        self._phase = [rng.uniform(0, 2 * math.pi) for _ in range(self.joints)]
        self._rng = rng

    def read_states(self) -> dict[str, JointState]:
        now = self.clock()
        self.reads += 1
        s = now / 1e9
        out = {}
        for (name, j), phase in zip(self.model.joints.items(), self._phase, strict=True):
            out[name] = JointState(now, j.address, StatusFlag.TORQUE_ON, 0.5 * math.sin(s + phase),
                                   0.5 * math.cos(s + phase), 0.2 + self._rng.gauss(0, 0.01), 31.5, 12.0)
        return out

    def add_listener(self, listener: Callable[[HostEvent], None]) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Callable[[HostEvent], None]) -> None:
        self.listeners.remove(listener)

    def set_goals(self, goals: dict[str, float]) -> dict[str, float]:
        return goals

    def estop(self, reason: int = 0) -> None:
        pass


def _subscriber(port: int, ready: Any, stop: Any, out: Any) -> None:
    """The dashboard (its own process): ``mosquitto_sub`` stamps each state message's arrival (``%U``, the wall
    clock in ns resolution) as it reads it, this process pairs the stamps with the ``t`` inside."""
    import subprocess
    import threading

    samples: list[tuple[str, float, float, int]] = []  # (arm, t stamped, latency s, joint states inside)
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-u", "dash", "-P", USERS["dash"],
                            "-i", "bench-dash", "-t", "armbus/v1/+/state/+", "-t", "armbus/v1/+/states",
                            "-F", "%U %p"],
                           stdout=subprocess.PIPE, text=True, bufsize=1 << 16)

    def read() -> None:
        assert sub.stdout is not None
        for line in sub.stdout:
            arrived, _, payload = line.partition(" ")
            body = json.loads(payload)
            samples.append((body["arm"], body["t"], float(arrived) - body["t"], len(body.get("joints", (0,)))))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(1.0)  # connected and subscribed (mosquitto_sub says nothing until a message comes)
    ready.set()
    stop.wait()
    time.sleep(0.2)
    sub.terminate()
    sub.wait()
    reader.join(timeout=10)
    out.put({"samples": samples})


def _arm_process(i: int, url: str, joints: int, rate: float, layout: str, ready: Any, stop: Any, out: Any) -> None:
    """One bridged arm (its own process): reports, when stopped, (wall time, states queued) every 0.1 s and its
    final counters."""
    bridge = Bridge(StateArm(joints, seed=i), url, f"arm{i + 1:02d}", rate_hz=rate, client_id=f"bench-arm{i + 1:02d}",
                    layout=layout).start()
    ready.put(bridge.wait_connected(30))
    samples = [(time.time(), bridge.counters()["states_queued"])]
    while not stop.wait(0.1):
        samples.append((time.time(), bridge.counters()["states_queued"]))
    counters = bridge.counters()
    bridge.stop(flush_timeout=0.5)
    out.put((i, samples, counters))


def _at(samples: list[tuple[float, int]], t: float) -> int:
    """The count of the last sample taken at or before ``t``."""
    return max((n for when, n in samples if when <= t), default=0)


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(arms: int = 10, joints: int = 6, rate: float = 100.0, seconds: float = 10.0, warmup: float = 1.5,
        layout: str = "joint", folder: Path | None = None) -> tuple[int, dict[str, Any]]:
    """Run the benchmark; returns (exit code, figures) and prints the figures and the claims."""
    why = available() or clients_available()
    if why is not None:
        print(f"bench mqtt: cannot run: {why}", file=sys.stderr)
        return 2, {}
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(folder or Path(tmp), USERS, lab_acl({"bridge": "+"}, operators=("dash",)))
        with broker:
            ctx = mp.get_context("spawn")
            ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
            sub = ctx.Process(target=_subscriber, args=(broker.port, ready, stop, out), daemon=True)
            sub.start()
            if not ready.wait(30):
                sub.kill()
                print("bench mqtt: the subscriber did not connect", file=sys.stderr)
                return 1, {}
            # one process per bridge, as in a lab (one armbus serve or bridge per arm): no bridge waits for
            # another's turn at the interpreter lock
            arm_ready, arm_stop, arm_out = ctx.Queue(), ctx.Event(), ctx.Queue()
            procs = [ctx.Process(target=_arm_process, daemon=True,
                                 args=(i, broker.url("bridge"), joints, rate, layout, arm_ready, arm_stop, arm_out))
                     for i in range(arms)]
            for proc in procs:
                proc.start()
            if not all(arm_ready.get(timeout=60) for _ in procs):
                print("bench mqtt: a bridge did not connect", file=sys.stderr)
            time.sleep(warmup)
            broker_pid = broker.proc.pid if broker.proc is not None else 0
            pids = [proc.pid or 0 for proc in procs]
            t0, cpu0, broker0 = time.time(), sum(map(_proc_cpu, pids)), _proc_cpu(broker_pid)
            time.sleep(seconds)
            t1, cpu1, broker1 = time.time(), sum(map(_proc_cpu, pids)), _proc_cpu(broker_pid)
            time.sleep(0.5)  # the last messages of the window arrive
            arm_stop.set()
            reports = sorted(arm_out.get(timeout=60) for _ in procs)
            for proc in procs:
                proc.join(timeout=10)
            counters = [counters for _, _, counters in reports]
            queued0 = [_at(samples, t0) for _, samples, _ in reports]
            queued1 = [_at(samples, t1) for _, samples, _ in reports]
            stop.set()
            result = out.get(timeout=60)
            sub.join(timeout=10)
    window = t1 - t0
    inside = [(arm, lat, n) for arm, t, lat, n in result["samples"] if t0 <= t < t1]
    per_arm: dict[str, int] = {f"arm{i + 1:02d}": 0 for i in range(arms)}
    for arm, _, n in inside:
        per_arm[arm] = per_arm.get(arm, 0) + n  # joint states delivered
    expected = rate * joints * window
    shares = {arm: n / expected for arm, n in per_arm.items()}
    latencies_ms = [lat * 1000 for _, lat, _ in inside]
    figures = {
        "arms": arms, "joints": joints, "rate_hz": rate, "layout": layout, "window_s": round(window, 3),
        "delivered_msgs_per_s": round(len(inside) / window, 1),
        "delivered_joint_states_per_s": round(sum(per_arm.values()) / window, 1),
        "delivered_share_worst_arm": round(min(shares.values()), 4),
        "read_share_worst_arm": round(min(q1 - q0 for q0, q1 in zip(queued0, queued1, strict=True)) / expected, 4),
        "delivered_hz_per_joint_worst_arm": round(min(shares.values()) * rate, 2),
        "latency_ms_p50": round(statistics.median(latencies_ms), 2) if latencies_ms else float("nan"),
        "latency_ms_p99": round(_pct(latencies_ms, 0.99), 2),
        "latency_ms_max": round(max(latencies_ms), 2) if latencies_ms else float("nan"),
        "bridge_cpu_per_s": round((cpu1 - cpu0) / window, 3),
        "bridge_cpu_per_s_per_arm": round((cpu1 - cpu0) / window / arms, 4),
        "broker_cpu_per_s": round((broker1 - broker0) / window, 3),

        "telemetry_dropped": sum(c["telemetry_dropped"] + c["telemetry_lost"] for c in counters),
        "states_skipped": sum(c["states_skipped"] for c in counters),
    }
    worst, p99 = min(shares.values()), round(_pct(latencies_ms, 0.99), 2)
    print(f"{arms} arms x {joints} joints at {rate:g} Hz, states per {layout}, {window:.1f} s window, one Mosquitto, "
          "one subscriber")
    for key, value in figures.items():
        print(f"  {key:34s} {value}")
    claims = [
        (f"every arm delivers >= {MIN_DELIVERED:.0%} of {rate:g} Hz per joint", worst >= MIN_DELIVERED,
         f"worst arm {worst:.2%}"),
        (f"latency p99 <= {MAX_P99_MS:g} ms", p99 <= MAX_P99_MS, f"p99 {p99} ms"),
        ("no telemetry dropped while the broker is up", figures["telemetry_dropped"] == 0,
         f"{figures['telemetry_dropped']} dropped"),
    ]
    for what, ok, measured in claims:
        print(f"  {'PASS' if ok else 'FAIL'}  {what} ({measured})")
    return (0 if all(ok for _, ok, _ in claims) else 1), figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m armbus.tools.bench.mqtt", description=__doc__.splitlines()[0])
    parser.add_argument("--arms", type=int, default=10)
    parser.add_argument("--joints", type=int, default=6)
    parser.add_argument("--rate", type=float, default=100.0, help="state messages per joint per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--layout", choices=["joint", "arm"], action="append",
                        help="state/JOINT messages, or one states message per reading of an arm (default: each)")
    parser.add_argument("--quick", action="store_true", help="a 3 s window")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    worst, runs = 0, []  # type: tuple[int, list[dict[str, Any]]]
    for layout in args.layout or ["joint", "arm"]:
        code, figures = run(args.arms, args.joints, args.rate, 3.0 if args.quick else args.seconds, layout=layout)
        worst, runs = max(worst, code), [*runs, figures]
    if args.json:
        print(json.dumps(runs))
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
