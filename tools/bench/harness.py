"""Benchmark of the real-time harness: round trip over a pty, pacing accuracy, keeping up at 1 kHz.

Theory of operation
-------------------
Three measurements, each a median over several repetitions, printed as figures (``python -m armbus.tools.bench.harness
[--quick]``; :func:`run` returns them for ``armbus bench``):

* **round trip**: PING from a host (:class:`armbus.hil.probe.LinkProbe`) to joint 1 of a 6-joint arm behind a pty,
  unpaced, run by ``armbus sim`` in its own process (as users run it; in-process, the driver thread and the
  host would share the GIL and the host would wait up to a 5 ms switch interval), side by side in the same run
  with the baseline: a raw ``os.read``/``os.write`` echo thread on another pty, echoing a PING-sized message.
  Blocks of the two alternate so that both see the same machine load. Target: ratio <= 1.5.
* **pacing**: a host writes one second of bytes at the configured baud (non-zero bytes with a delimiter every
  :data:`FRAME_BYTES`; joint 1 counts them as line errors) into a paced pty arm; a capture tap records the wall
  time at which each delivery reaches joint 1, and the throughput is the bytes delivered between the first and
  the last delivery over that time. Target: within +-5 % of baud / 10 bytes per second (8N1).
* **keep-up**: a paced 6-joint arm idles (1 kHz control loops only) for a while; the driver's lag statistics,
  simulated time slipped and its CPU use show whether it keeps up with real time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import signal
import statistics
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable
from typing import Any

from armbus.bus.messages import Ping, PingReply
from armbus.bus.wire import DEFAULT_BAUD
from armbus.hil.probe import LinkProbe
from armbus.hil.ptyserver import PtyServer
from armbus.hil.realtime import realtime_link_config
from armbus.hil.virtual_arm import VirtualArm
from armbus.hil.wire import Direction

#: Size of the baseline echo message: a PING frame on the wire (14 bytes) plus its reply (30 bytes with the
#: joint's ACK), so the raw echo moves as many bytes per round trip as the arm does.
ECHO_BYTES = 44
#: Garbage frame length in the pacing run: delimiter every 200 bytes (one delivery per 2 ms at 1 Mbaud).
FRAME_BYTES = 200
#: Targets stated in docs/hil.md.
RTT_RATIO_TARGET = 1.5
PACING_TOLERANCE = 0.05


def open_slave(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


def _arm(joints: int, baud: int) -> VirtualArm:
    return VirtualArm(joints, baud=baud, seed=1, link_config=realtime_link_config(baud))


# ------------------------------------------------------------------------------------------------ round trip
class Echo:
    """Raw pty echo: a thread copies whatever arrives on the master back to it."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            r, _, _ = select.select([self.master, self._stop_r], [], [])
            if self._stop_r in r:
                return
            data = os.read(self.master, 4096)
            os.write(self.master, data)

    def round_trip(self, message: bytes) -> int:
        t0 = time.perf_counter_ns()
        os.write(self.slave, message)
        got = 0
        while got < len(message):
            got += len(os.read(self.slave, 4096))
        return time.perf_counter_ns() - t0

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        self._thread.join()
        for fd in (self.master, self.slave, self._stop_r, self._stop_w):
            os.close(fd)


def median_block(fn: Callable[[], int], n: int) -> float:
    return statistics.median(fn() for _ in range(n))


def sim_process(joints: int, unpaced: bool, firmware: str = "python") -> tuple[subprocess.Popen[str], str]:
    """``armbus sim`` in its own process (as a user runs it): no GIL shared with the host under test."""
    code = ("import argparse, sys; from armbus.hil.ptyserver import run_sim; sys.exit(run_sim(argparse.Namespace("
            f"joints={joints}, baud=1000000, seed=1, faults=None, unpaced={unpaced}, capture=None, link=None, "
            f"json=True, firmware={firmware!r})))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        return proc, str(json.loads(line)["tty"])
    except (ValueError, KeyError):
        proc.kill()
        raise RuntimeError(f"armbus sim did not start: {line!r}") from None


def bench_round_trip(reps: int, per_block: int) -> dict[str, Any]:
    """Median PING round trip to joint 1 (unpaced 6-joint pty arm, own process) vs raw pty echo, in us."""
    proc, path = sim_process(6, unpaced=True)
    echo = Echo()
    host_fd = open_slave(path)
    try:
        probe = LinkProbe(host_fd, DEFAULT_BAUD)
        probe.open(timeout=5)
        probe.enumerate(timeout=5)

        def ping() -> int:
            t0 = time.perf_counter_ns()
            reply = probe.request(Ping(), 1, timeout=2)
            dt = time.perf_counter_ns() - t0
            assert isinstance(reply, PingReply)
            return dt

        message = bytes(random.Random(1).randrange(1, 256) for _ in range(ECHO_BYTES))
        arm_blocks, echo_blocks = [], []
        for _ in range(reps):
            arm_blocks.append(median_block(ping, per_block))
            echo_blocks.append(median_block(lambda: echo.round_trip(message), per_block))
    finally:
        os.close(host_fd)
        echo.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    arm_us, echo_us = statistics.median(arm_blocks) / 1e3, statistics.median(echo_blocks) / 1e3
    return {"ping_rtt_us": round(arm_us, 1), "raw_echo_rtt_us": round(echo_us, 1),
            "ratio": round(arm_us / echo_us, 2), "target_ratio": RTT_RATIO_TARGET,
            "blocks": reps, "per_block": per_block}


# ------------------------------------------------------------------------------------------------ pacing
def _pacing_once(baud: int, seconds: float) -> float:
    server = PtyServer(_arm(1, baud), paced=True)
    seen: list[tuple[int, int]] = []

    def tap(link: str, direction: Direction, t: int, data: bytes) -> None:
        if link == "host-j1" and direction == Direction.A_TO_B:
            seen.append((time.monotonic_ns(), len(data)))

    server.arm.kernel.add_tap(tap)
    server.start()
    host_fd = open_slave(server.path)
    nbytes = int(baud / 10 * seconds)
    rng = random.Random(2)
    frame = bytes(rng.randrange(1, 256) for _ in range(FRAME_BYTES - 1)) + b"\x00"
    blob = (frame * (nbytes // FRAME_BYTES + 1))[:nbytes]
    try:
        view = memoryview(blob)
        while view:
            n = os.write(host_fd, view[:4096])
            view = view[n:]
        deadline = time.monotonic() + seconds * 3 + 2
        while server.driver.call(lambda a: sum(n for _, n in seen)) < nbytes and time.monotonic() < deadline:
            time.sleep(0.05)
        chunks = server.driver.call(lambda a: list(seen))
    finally:
        os.close(host_fd)
        server.close()
    delivered = sum(n for _, n in chunks[1:])
    span = chunks[-1][0] - chunks[0][0]
    return delivered / (span / 1e9)


def bench_pacing(baud: int, seconds: float, reps: int) -> dict[str, Any]:
    """Median delivered byte rate into joint 1 vs baud / 10 (8N1)."""
    rates = [_pacing_once(baud, seconds) for _ in range(reps)]
    rate = statistics.median(rates)
    nominal = baud / 10
    return {"baud": baud, "bytes_per_s": round(rate), "nominal_bytes_per_s": round(nominal),
            "error_pct": round((rate / nominal - 1) * 100, 2), "target_pct": PACING_TOLERANCE * 100,
            "seconds": seconds, "reps": reps}


# ------------------------------------------------------------------------------------------------ keep-up
def bench_keepup(joints: int, seconds: float) -> dict[str, Any]:
    """Lag of a paced arm idling with its 1 kHz control loops; CPU used by the whole process meanwhile."""
    master, slave = os.openpty()
    tty.setraw(slave)
    server_arm = _arm(joints, DEFAULT_BAUD)
    from armbus.hil.realtime import RealtimeArm

    rt = RealtimeArm(server_arm, master, paced=True)
    cpu0, t0 = time.process_time(), time.monotonic()
    rt.start()
    time.sleep(seconds)
    rt.stop()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
    os.close(master)
    os.close(slave)
    s = rt.stats.summary()
    return {"joints": joints, "seconds": seconds, "cpu_fraction": round(cpu / wall, 3),
            "events_per_s": round(server_arm.kernel.events / wall),
            "lag_median_us": round(s["lag_median_us"]), "lag_p99_us": round(s["lag_p99_us"]),
            "lag_max_us": round(s["lag_max_us"]), "slipped_ms": round(s["slipped_ms"], 1),
            "sim_vs_wall": round(server_arm.kernel.now / 1e9 / wall, 3)}


def run(quick: bool = False) -> dict[str, Any]:
    """Every measurement; ``quick`` uses fewer repetitions (a few seconds in all)."""
    result: dict[str, Any] = {"round_trip": bench_round_trip(3 if quick else 7, 50 if quick else 200)}
    bauds = [1_000_000] if quick else [115_200, 1_000_000, 4_000_000]
    result["pacing"] = [bench_pacing(b, 1.0, 1 if quick else 3) for b in bauds]
    result["keepup"] = bench_keepup(6, 1.0 if quick else 3.0)
    rt, pacing = result["round_trip"], result["pacing"]
    result["targets_met"] = {
        "round_trip": rt["ratio"] <= RTT_RATIO_TARGET,
        "pacing": all(abs(p["error_pct"]) <= PACING_TOLERANCE * 100 for p in pacing),
    }
    return result


def _print(result: dict[str, Any]) -> None:
    rt = result["round_trip"]
    print(f"round trip, host -> joint 1 (unpaced pty arm): {rt['ping_rtt_us']:.0f} us median; raw pty echo "
          f"{rt['raw_echo_rtt_us']:.0f} us; ratio {rt['ratio']} (target <= {rt['target_ratio']})")
    for p in result["pacing"]:
        print(f"pacing at {p['baud']} baud: {p['bytes_per_s']} B/s delivered vs {p['nominal_bytes_per_s']} "
              f"nominal: {p['error_pct']:+.2f} % (target +-{p['target_pct']:.0f} %)")
    k = result["keepup"]
    print(f"keep-up, {k['joints']} joints at 1 kHz for {k['seconds']} s: {k['events_per_s']} events/s, CPU "
          f"{k['cpu_fraction'] * 100:.0f} %, lag median {k['lag_median_us']} us, p99 {k['lag_p99_us']} us, max "
          f"{k['lag_max_us']} us, slipped {k['slipped_ms']} ms, simulated/wall {k['sim_vs_wall']}")
    print(f"targets met: {result['targets_met']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m armbus.tools.bench.harness", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    result = run(args.quick)
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
