"""``armbus serve`` benchmark (``python -m armbus.tools.bench.serve``, ``armbus bench serve``).

Theory of operation
-------------------
Real processes, wall clock: ``armbus sim`` (the pty arm, 3 joints at 1 Mbaud) and ``armbus serve`` on it. It
measures

* the round trip of a READ to joint 2 on the pty directly (no serve running), then through serve (one client):
  what the socket hop and the server's loop add;
* fan-out: N clients attached at once (N = 1, 4, 8; Arm objects in this process, each with its own connection
  and reader thread), telemetry on (STATE every 10 ms from each joint, 300 a second nominal; the Python arm
  behind the pty sends fewer when the machine is busy), for a few seconds: the STATE reports each client got,
  and one client's READ round trip meanwhile.

Claims checked (exit 1 when one fails): through serve the median round trip is at most
:data:`MAX_ADDED_MS` above the direct one; with 8 clients the client that got the fewest STATE reports got at
least :data:`MIN_SHARE` of what the one that got the most did (fan-out loses nothing), and the median round
trip stays below :data:`MAX_LOADED_MS`.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from armbus.bus.errors import ExitCode

#: What serve may add to the median round trip (ms): a socket round trip and two event-loop passes.
MAX_ADDED_MS = 1.5
#: Fewest STATE reports one of 8 clients got, as a share of the most another got.
MIN_SHARE = 0.99
#: Median READ round trip (ms) with 8 clients attached and telemetry on (a loaded 2-core machine is slow).
MAX_LOADED_MS = 25.0
STATE_PERIOD_MS = 10
JOINTS = 3
CLI = [sys.executable, "-m", "armbus.tools.cli"]


def _start(argv: list[str], expect: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if expect not in line:
        proc.kill()
        raise SystemExit(f"{argv[3]} did not start: {line!r}")
    return proc


def _stop(proc: subprocess.Popen[str]) -> str:
    """Stop ``proc`` (SIGINT); what it printed at the end."""
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out = ""
    return out.strip()


def round_trips(url: str, n: int) -> list[float]:
    from armbus.controller.arm import Arm

    with Arm.open(url, timeout=0.5) as arm:
        arm.enumerate()
        return _reads(arm, n)


def _reads(arm: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        arm.read("joint2", "bus_address")  # type: ignore[attr-defined]
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def fan_out(url: str, clients: int, seconds: float) -> tuple[list[int], list[float]]:
    """(STATE reports each client got, one client's READ round trips in ms) with ``clients`` attached."""
    from armbus.controller.arm import Arm
    from armbus.controller.events import HostEvent, JointState

    arms = [Arm.open(url, timeout=0.5) for _ in range(clients)]
    counts = [0] * clients
    lock = threading.Lock()
    try:
        for arm in arms:
            arm.enumerate()
        for i, arm in enumerate(arms):
            def listener(ev: HostEvent, i: int = i) -> None:
                if isinstance(ev, JointState):
                    with lock:
                        counts[i] += 1
            arm.add_listener(listener)
        with arms[0].lease("bench"):
            arms[0].sync_write("state_period", {f"joint{j}": STATE_PERIOD_MS for j in range(1, JOINTS + 1)})
        time.sleep(0.2)
        with lock:
            counts[:] = [0] * clients
        end = time.monotonic() + seconds
        rtts: list[float] = []
        while time.monotonic() < end:
            rtts += _reads(arms[0], 1)
            time.sleep(0.005)
        with lock:
            got = list(counts)
        with arms[0].lease("bench"):
            arms[0].sync_write("state_period", {f"joint{j}": 0 for j in range(1, JOINTS + 1)})
        return got, rtts
    finally:
        for arm in arms:
            arm.close()


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m armbus.tools.bench.serve", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer requests, shorter fan-out runs")
    args = p.parse_args(argv)
    n, seconds = (100, 1.5) if args.quick else (400, 3.0)
    failures = []
    with tempfile.TemporaryDirectory(prefix="ab-bench-", dir="/tmp") as folder:
        tty, sock = Path(folder) / "arm", Path(folder) / "arm.sock"
        sim = _start([*CLI, "sim", "--joints", str(JOINTS), "--link", str(tty)], "virtual arm")
        try:
            direct = round_trips(str(tty), n)
            serve = _start([*CLI, "serve", "--port", str(tty), "--socket", str(sock)], "clients attach with")
            try:
                url = f"serve://{sock}"
                served = round_trips(url, n)
                print(f"READ round trip, pty arm, 3 joints, 1 Mbaud ({n} requests):")
                print(f"  direct       p50 {statistics.median(direct):6.2f} ms  p99 {_pct(direct, 0.99):6.2f} ms")
                print(f"  via serve    p50 {statistics.median(served):6.2f} ms  p99 {_pct(served, 0.99):6.2f} ms")
                added = statistics.median(served) - statistics.median(direct)
                print(f"  serve adds   {added:+.2f} ms at the median (claim: <= {MAX_ADDED_MS} ms)")
                if added > MAX_ADDED_MS:
                    failures.append(f"serve adds {added:.2f} ms to the median round trip")
                expected = 1000 / STATE_PERIOD_MS * JOINTS * seconds
                print(f"fan-out: STATE every {STATE_PERIOD_MS} ms from {JOINTS} joints (~{expected:.0f} in "
                      f"{seconds:g} s), one client reading meanwhile:")
                for clients in (1, 4, 8):
                    got, rtts = fan_out(url, clients, seconds)
                    share = min(got) / max(1, max(got))
                    print(f"  {clients} client(s): each got {min(got)}..{max(got)} STATE ({max(got) / expected:.0%} "
                          f"of nominal); READ p50 {statistics.median(rtts):.2f} ms p99 {_pct(rtts, 0.99):.2f} ms")
                    if clients == 8 and share < MIN_SHARE:
                        failures.append(f"with 8 clients one got only {share:.0%} of what another got")
                    if clients == 8 and statistics.median(rtts) > MAX_LOADED_MS:
                        failures.append(f"with 8 clients the median round trip is {statistics.median(rtts):.1f} ms")
            finally:
                print(f"  {_stop(serve)}")
        finally:
            _stop(sim)
    for f in failures:
        print(f"FAILED: {f}")
    print(f"machine: {os.cpu_count()} cpu(s), load {os.getloadavg()[0]:.1f}")
    return ExitCode.FAILED if failures else ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
