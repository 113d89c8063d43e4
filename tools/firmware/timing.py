"""What the firmware's time-critical paths cost on this machine, against the budgets a board must meet.

Theory of operation
-------------------
``joints/firmware/board/timing_host.c`` (compiled here with the system C compiler, ``-O2``, the firmware's
floating-point flags, on the simulator's motor board) drives one joint: PINGs arrive on UP one byte at a time as a
UART interrupt delivers them, the output is drained and acked as a host would, then the control core ticks with
torque on. It prints the mean, median, 99th percentile and maximum of three paths: a byte that is not a delimiter
(one ``fw_joint_rx_byte``), a frame's delimiter (the whole frame handling up to the reply being queued) and the
control tick (``fw_joint_handle_timer`` at its 1 kHz deadline; here with the simulated motor's physics, which a
board does not run). :data:`BUDGETS` are the limits at 1 Mbaud from docs/porting-firmware.md ("Timing budgets");
``python -m armbus.tools.firmware.timing`` prints the table with the headroom (budget / p99) and exits 1 when a
p99 is over its budget, 2 (one line) without a C compiler.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from armbus.bus.errors import ExitCode
from armbus.hil.firmware.build import FIRMWARE_DIR, FirmwareUnavailable, compiler

SOURCE = FIRMWARE_DIR / "board" / "timing_host.c"
FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off", "-fno-fast-math")
#: path -> (budget in ns, what it is)
BUDGETS = {
    "byte": (10_000, "a byte that is not a delimiter: one byte time at 1 Mbaud"),
    "frame_end": (320_000, "a frame's delimiter: 32 byte times of UART FIFO at 1 Mbaud"),
    "control_tick": (1_000_000, "the control tick: its 1 ms period"),
}


@dataclass(frozen=True)
class PathTiming:
    name: str
    mean_ns: int
    median_ns: int
    p99_ns: int
    max_ns: int
    count: int

    @property
    def budget_ns(self) -> int:
        return BUDGETS[self.name][0]

    @property
    def ok(self) -> bool:
        return self.p99_ns <= self.budget_ns


def measure() -> list[PathTiming]:
    cc = compiler()
    with tempfile.TemporaryDirectory(prefix="armbus-fwtiming-") as tmp:
        exe = Path(tmp) / "timing_host"
        srcs = sorted(str(p) for p in [*(FIRMWARE_DIR / "src").glob("*.c"), *(FIRMWARE_DIR / "gen").glob("*.c")])
        build = subprocess.run([*cc, *FLAGS, f"-I{FIRMWARE_DIR / 'include'}", f"-I{FIRMWARE_DIR / 'gen'}",
                                f"-I{FIRMWARE_DIR / 'sil'}", "-o", str(exe), str(SOURCE), *srcs,
                                str(FIRMWARE_DIR / "sil" / "sil_board.c"), "-lm"],
                               capture_output=True, text=True, check=False)
        if build.returncode != 0:
            raise FirmwareUnavailable(f"the timing program did not build: {build.stderr.strip()[:300]}")
        run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"the timing program failed: {run.stderr.strip()}")
    out = []
    for line in run.stdout.splitlines():
        name, *nums = line.split()
        mean, median, p99, mx, count = (int(float(x)) for x in nums)
        out.append(PathTiming(name, mean, median, p99, mx, count))
    return out


def table(timings: list[PathTiming]) -> str:
    rows = ["| path | mean ns | median ns | p99 ns | max ns | count | budget ns | headroom (budget / p99) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in timings:
        rows.append(f"| {t.name} | {t.mean_ns} | {t.median_ns} | {t.p99_ns} | {t.max_ns} | {t.count} | "
                    f"{t.budget_ns} | {t.budget_ns / max(t.p99_ns, 1):,.0f} x |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m armbus.tools.firmware.timing", description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    try:
        timings = measure()
    except FirmwareUnavailable as exc:
        print(f"firmware timing: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    print(table(timings))
    for t in timings:
        print(f"{'PASS' if t.ok else 'FAIL'}  {t.name}: p99 {t.p99_ns} ns of {t.budget_ns} ns "
              f"({BUDGETS[t.name][1]})")
    return int(ExitCode.OK if all(t.ok for t in timings) else ExitCode.FAILED)


if __name__ == "__main__":
    sys.exit(main())
