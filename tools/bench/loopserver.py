"""The loop benchmark's real-time pty arm: a child process serving a virtual arm, measured from inside.

Theory of operation
-------------------
The arm runs in its own interpreter (the simulation and the host must not share one interpreter lock), as
``armbus sim`` would run it (:func:`armbus.hil.ptyserver.build_arm`, :class:`armbus.hil.ptyserver.PtyServer`,
paced), with a :class:`~armbus.tools.bench.loopskew.SkewMeter` on its joints' control cores. It prints one JSON
line with the tty path, then reads commands on stdin, one per line:

* ``start``: a measured window begins: the lag samples so far are dropped, CPU time and slips are noted;
* ``stop``: the window ends: one JSON line with the window's figures (lag p50/p99/max from every sample of the
  window, slips, the server process's CPU share and its CPU per simulated second -- above 1 s it cannot keep up
  on any share of a core --, simulated over wall time, the goal skew of the cycles in it, bytes in and out).

The driver keeps only its last :data:`armbus.hil.realtime.LAG_SAMPLES` lag samples, fewer than a minute's
worth, so the main thread collects them every :data:`COLLECT_S` through :meth:`RealtimeArm.call` (run in the
driver thread between two events: no race with its appends) into a histogram of :data:`LAG_BUCKET_NS` buckets.
End of stdin or SIGTERM stops the server.

:class:`PtyArm` is the benchmark's side: start the child, open the window, close it and read the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from types import TracebackType

from armbus.hil.ptyserver import PtyServer, build_arm
from armbus.hil.realtime import RealtimeStats
from armbus.hil.virtual_arm import VirtualArm
from armbus.tools.bench.loopskew import SkewMeter

#: How often the lag samples are collected from the driver (its ring holds 10,000: over 1 s at any rate seen).
COLLECT_S = 0.25
#: Lag histogram resolution.
LAG_BUCKET_NS = 10_000
#: How long the client waits for the server's answers.
ANSWER_TIMEOUT_S = 30.0


class _Window:
    """Lag histogram and counters of one measured window."""

    def __init__(self, stats: RealtimeStats, sim_now: int) -> None:
        self.sim0 = sim_now
        self.hist: Counter[int] = Counter()
        self.max_ns = 0
        self.cpu0, self.wall0 = time.process_time(), time.monotonic()
        self.slipped0, self.in0, self.out0 = stats.slipped_ns, stats.host_bytes_in, stats.host_bytes_out

    def add(self, lags: list[int]) -> None:
        for lag in lags:
            self.hist[lag // LAG_BUCKET_NS] += 1
            if lag > self.max_ns:
                self.max_ns = lag

    def quantile_us(self, q: float) -> float:
        total = sum(self.hist.values())
        if not total:
            return 0.0
        rank, seen = min(total - 1, int(q * total)), 0
        for bucket in sorted(self.hist):
            seen += self.hist[bucket]
            if seen > rank:
                return (bucket + 1) * LAG_BUCKET_NS / 1e3  # the bucket's upper edge: never flattering
        return self.max_ns / 1e3  # pragma: no cover

    def figures(self, stats: RealtimeStats, sim_now: int) -> dict[str, float]:
        wall = time.monotonic() - self.wall0
        cpu = time.process_time() - self.cpu0
        sim = (sim_now - self.sim0) / 1e9
        return {"lag_p50_us": self.quantile_us(0.50), "lag_p99_us": self.quantile_us(0.99),
                "lag_max_us": self.max_ns / 1e3, "lag_samples": sum(self.hist.values()),
                "slipped_ms": (stats.slipped_ns - self.slipped0) / 1e6,
                "arm_cpu_pct": 100.0 * cpu / max(wall, 1e-9),
                "arm_cpu_per_sim_s": cpu / sim if sim > 0 else float("nan"), "sim_over_wall": sim / max(wall, 1e-9),
                "bytes_in": stats.host_bytes_in - self.in0, "bytes_out": stats.host_bytes_out - self.out0}


def _drain_lags(arm: VirtualArm, stats: RealtimeStats) -> list[int]:
    lags = list(stats.lags)
    stats.lags.clear()
    return lags


def serve(joints: int, baud: int, seed: int, skew: str) -> int:
    """The child's body (see the module docstring)."""
    ns = argparse.Namespace(joints=joints, baud=baud, seed=seed, faults=None)
    arm, _ = build_arm(ns)
    meter = SkewMeter([j.control for j in arm.joints], skew)
    commands: queue.Queue[str] = queue.Queue()
    signal.signal(signal.SIGTERM, lambda signum, frame: commands.put("quit"))

    def read_stdin() -> None:
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put("quit")

    server = PtyServer(arm)
    server.start()
    driver, stats = server.driver, server.driver.stats
    threading.Thread(target=read_stdin, daemon=True).start()
    print(json.dumps({"tty": server.path, "pid": os.getpid()}), flush=True)
    window: _Window | None = None
    try:
        while driver.running:
            try:
                command = commands.get(timeout=COLLECT_S)
            except queue.Empty:
                command = ""
            lags = driver.call(lambda a: _drain_lags(a, stats))
            if window is not None:
                window.add(lags)
            if command == "start":
                driver.call(lambda a: meter.reset())
                window = _Window(stats, driver.call(lambda a: a.kernel.now))
            elif command == "stop" and window is not None:
                skews = driver.call(lambda a: meter.figures())
                sim_now = driver.call(lambda a: a.kernel.now)
                print(json.dumps({**window.figures(stats, sim_now), **skews}), flush=True)
                window = None
            elif command == "quit":
                break
    finally:
        server.close()
    return 1 if driver.error is not None else 0


class PtyArm:
    """The benchmark's handle on a pty arm child process (a context manager)."""

    def __init__(self, joints: int, baud: int, seed: int, skew: str) -> None:
        cmd = [sys.executable, "-m", "armbus.tools.bench.loopserver", "--joints", str(joints), "--baud", str(baud),
               "--seed", str(seed), "--skew", skew]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        first = self._answer()
        self.tty = str(first["tty"])

    def _answer(self) -> dict[str, object]:
        assert self.proc.stdout is not None
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(ANSWER_TIMEOUT_S)
        if not box or not box[0]:
            self.close()
            raise RuntimeError(f"the pty arm did not answer: {self.proc.stderr.read() if self.proc.stderr else ''}")
        answer: dict[str, object] = json.loads(box[0])
        return answer

    def _send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def start_window(self) -> None:
        self._send("start")

    def stop_window(self) -> dict[str, object]:
        self._send("stop")
        return self._answer()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send("quit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()

    def __enter__(self) -> PtyArm:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m armbus.tools.bench.loopserver", description=__doc__.split("\n")[0])
    parser.add_argument("--joints", type=int, default=6)
    parser.add_argument("--baud", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skew", choices=("latch", "tick"), default="latch")
    args = parser.parse_args(argv)
    return serve(args.joints, args.baud, args.seed, args.skew)


if __name__ == "__main__":
    sys.exit(main())
