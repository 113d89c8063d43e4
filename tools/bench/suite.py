"""``armbus bench``: run every benchmark of the project, one after the other, and print one table.

Theory of operation
-------------------
Each benchmark is a module with its own ``python -m`` entry point that prints its figures (ratios against a
baseline run in the same process, medians of repetitions). This runner starts each in a fresh interpreter, so one
benchmark's warm caches or leaked threads cannot colour the next, captures its output, and prints a summary table
with the machine it ran on. ``--quick`` runs each with its own small-run arguments; ``--json`` prints everything
as one JSON document. A benchmark that fails is reported in the table and makes the exit code 1.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from armbus.bus.errors import ExitCode

#: name -> (module, what it measures, arguments of a --quick run). Order: bottom of the stack first.
BENCHMARKS: dict[str, tuple[str, str, list[str]]] = {
    "codec": ("armbus.tools.bench.codec", "frame encode/decode and stream deframing vs the construct path",
              ["--size-mb", "2", "--reps", "3"]),
    "link": ("armbus.tools.bench.link", "hop link CPU per message and 6-hop simulated chain speed", ["--quick"]),
    "hil": ("armbus.tools.bench.harness", "pty arm ping round trip vs raw pty echo; paced throughput", ["--quick"]),
    "trace": ("armbus.tools.bench.trace", "trace decode + stats throughput", ["--mb", "10", "--runs", "3"]),
    "loop": ("armbus.tools.bench.loop", "cyclic exchange vs sync-write + sync-read loop, pty arm and simulated time",
             ["--quick"]),
    "firmware": ("armbus.tools.bench.firmware", "C joint firmware vs Python joints: pty ping round trip vs raw echo, "
                 "simulated-time speed of the 6-hop chain and the demo", ["--quick"]),
    "adapter": ("armbus.tools.bench.adapter", "request round trips behind USB-serial adapter models (simulated "
                "time and the pty arm)", ["--quick"]),
    "serve": ("armbus.tools.bench.serve", "request round trip through armbus serve vs direct; fan-out to N clients",
              ["--quick"]),
    "mqtt": ("armbus.tools.bench.mqtt", "10 arms bridged to one Mosquitto at 100 Hz: delivered rate, latency, CPU",
             ["--quick"]),
}
#: Seconds one benchmark may run before it is stopped and reported as timed out.
TIMEOUT_S = 900


@dataclass
class BenchResult:
    name: str
    module: str
    returncode: int
    seconds: float
    output: str


def machine_info() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_one(name: str, quick: bool) -> BenchResult:
    module, _, quick_args = BENCHMARKS[name]
    cmd = [sys.executable, "-m", module, *(quick_args if quick else [])]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        out, rc = f"timed out after {TIMEOUT_S} s\n{partial}", 124
    return BenchResult(name, module, rc, time.perf_counter() - t0, out)


def run_benchmarks(which: list[str], quick: bool = False, as_json: bool = False) -> int:
    names = which or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        from armbus.bus.errors import UsageError

        raise UsageError(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    results = []
    info = machine_info()
    if not as_json:
        print(f"machine: {info['processor']} x{info['cpus']}, {info['system']}, Python {info['python']}")
    for name in names:
        if not as_json:
            print(f"\n=== {name}: {BENCHMARKS[name][1]} (python -m {BENCHMARKS[name][0]}) ===", flush=True)
        r = run_one(name, quick)
        results.append(r)
        if not as_json:
            print(r.output.rstrip())
    if as_json:
        print(json.dumps({"machine": info, "results": [asdict(r) for r in results]}, indent=2))
    else:
        print("\n| benchmark | status | seconds |\n|---|---|---|")
        for r in results:
            status = "ok" if r.returncode == 0 else f"FAILED (exit {r.returncode})"
            print(f"| {r.name} | {status} | {r.seconds:.1f} |")
    return ExitCode.OK if all(r.returncode == 0 for r in results) else ExitCode.FAILED
