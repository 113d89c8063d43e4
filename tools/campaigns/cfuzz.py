"""Fuzz the C firmware's receive path with libFuzzer, and report executions, speed, coverage and crashes.

Theory of operation
-------------------
The harness is ``joints/firmware/fuzz/fuzz_receive.c`` (its header says what an input means and which invariants
it checks: the deframer, COBS and the frame decoder alone, and a whole joint fed bytes on UP and DOWN, byte by byte
and in blocks, with time advancing from the input, its timers run and its output drained and checked). ``make -C
joints/firmware fuzz-build`` compiles it with ``clang -fsanitize=fuzzer,address,undefined``, so an out-of-bounds
access, undefined behaviour, a hang or a broken invariant is a crash that libFuzzer saves with its input.

:func:`seed_corpus` turns every vector of docs/test-vectors.json into two seeds: the wire bytes for the frame
layer, and for the joint a RESET that opens the link (on UP, and on DOWN for the frames that come from below),
then the vector's packet as DATA frame 0, time passing and a drain. The inputs in
``joints/firmware/fuzz/regressions/`` (crashes found before, minimized) run first, once each; then libFuzzer runs
``--runs`` inputs (or ``--seconds``) from the seeds, seeded (``--seed``) and with a fresh corpus directory, so a
run's figures depend only on the code, the seed and the machine's speed.

``python -m armbus.tools.campaigns.cfuzz --runs 10000000`` (``make -C joints/firmware fuzz RUNS=...``) prints one
summary line (executions, exec/s, edges and features covered, corpus size, crashes) and exits 1 on a crash, with
the saved input and the commands that minimize it and replay it; 2 (one line: what to install) when clang or its
fuzzer runtime is missing. ``--quick`` is a 20-second run.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from armbus.bus.codec import Frame, encode_control, encode_data
from armbus.bus.deframer import Deframer
from armbus.bus.errors import ExitCode, UsageError
from armbus.bus.wire import FrameKind

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "joints" / "firmware"
REGRESSIONS = FIRMWARE / "fuzz" / "regressions"
VECTORS = ROOT / "docs" / "test-vectors.json"
MAX_LEN = 4096
UP, DOWN = 0, 1


@dataclass
class FuzzResult:
    executions: int = 0
    seconds: float = 0.0
    exec_per_s: int = 0
    cov: int = 0  # edges covered
    ft: int = 0  # features
    corpus: int = 0
    regressions: int = 0
    crashes: list[str] = field(default_factory=list)
    log_tail: str = ""

    def line(self) -> str:
        return (f"c-fuzz: {self.executions:,} executions in {self.seconds:,.0f} s = {self.exec_per_s:,} exec/s, "
                f"coverage {self.cov} edges / {self.ft} features, corpus {self.corpus}, regression inputs "
                f"{self.regressions}, crashes {len(self.crashes)}")


def fuzzer_unavailable() -> str | None:
    """None when clang and its libFuzzer runtime are installed, else what to install (one line)."""
    clang = shutil.which("clang")
    if clang is None:
        return "clang is not installed: apt-get install clang libclang-rt-14-dev (or any clang with libFuzzer)"
    res = subprocess.run([clang, "-print-resource-dir"], capture_output=True, text=True, check=False).stdout.strip()
    if not res or not list(Path(res).glob("lib/**/libclang_rt.fuzzer*.a")):
        return f"clang's libFuzzer runtime is missing under {res or '?'}: apt-get install libclang-rt-14-dev"
    if shutil.which("make") is None:
        return "make is not installed"
    return None


def build(out: Path) -> Path:
    """The harness binary, built with the firmware Makefile's fuzz-build target into ``out``."""
    reason = fuzzer_unavailable()
    if reason:
        raise UsageError(reason)
    proc = subprocess.run(["make", "-s", "-C", str(FIRMWARE), "fuzz-build", f"BUILD={out}"], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise UsageError(f"the fuzz harness did not build: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return out / "fuzz" / "fuzz_receive"


def _bytes_records(port: int, data: bytes, bytewise: bool = False) -> bytes:
    out = bytearray()
    for k in range(0, len(data), 32):
        part = data[k:k + 32]
        out += bytes([((len(part) - 1) << 3) | (4 if bytewise else 0) | port]) + part
    return bytes(out)


def _advance(us: int) -> bytes:
    """A time record of ``us`` microseconds (10-us units up to 2.56 ms, then 1-ms units)."""
    if us <= 2560:
        return bytes([2 | (1 << 2), max(0, us // 10 - 1)])
    return bytes([2 | (3 << 2), min(255, us // 1000 - 1)])


_DRAIN = bytes([3 | (62 << 2)])  # a partial drain of 63 bytes (op 0xFF would be a reboot)


def seed_corpus(out: Path) -> int:
    """Write the seeds (see the module docstring); returns how many."""
    out.mkdir(parents=True, exist_ok=True)
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]
    n = 0

    def put(name: str, data: bytes) -> None:
        nonlocal n
        (out / name).write_bytes(data[:MAX_LEN])
        n += 1

    for v in vectors:
        wire = bytes.fromhex(v["wire"])
        put(f"frame-{v['name']}", b"\x00" + wire)
        items = Deframer().feed(wire)
        frame = items[0] if items and isinstance(items[0], Frame) else None
        for port in (UP, DOWN):
            opening = _bytes_records(port, encode_control(FrameKind.RESET, 0x40 + port)) + _advance(500)
            if frame is not None and frame.kind == FrameKind.DATA and frame.packet is not None:
                body = _bytes_records(port, encode_data(0, 0, frame.packet), bytewise=port == DOWN)
            else:
                body = _bytes_records(port, wire)
            put(f"joint-{'up' if port == UP else 'down'}-{v['name']}",
                b"\x01" + opening + body + _advance(2000) + _DRAIN + _advance(20000))
    return n


_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_STAT = re.compile(r"stat::(\w+):\s+(\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


def run(*, runs: int | None, seconds: int | None, seed: int, binary: Path | None = None,
        work: Path | None = None) -> FuzzResult:
    """Build (unless ``binary``), replay the regression inputs, then fuzz; the result of the run."""
    with tempfile.TemporaryDirectory(prefix="armbus-cfuzz-") as tmp:
        base = work or Path(tmp)
        exe = binary or build(base / "build")
        seeds, corpus, artifacts = base / "seeds", base / "corpus", base / "artifacts"
        for d in (corpus, artifacts):
            d.mkdir(parents=True, exist_ok=True)
        seed_corpus(seeds)
        result = FuzzResult()
        regressions = sorted(p for p in REGRESSIONS.glob("*") if p.is_file() and not p.name.startswith("."))
        if regressions:
            proc = subprocess.run([str(exe), *map(str, regressions)], capture_output=True, text=True, check=False)
            result.regressions = len(regressions)
            if proc.returncode != 0:
                result.crashes.append(f"a regression input crashes again: {proc.stderr.strip()[-400:]}")
                result.log_tail = proc.stderr[-3000:]
                return result
        args = [str(exe), f"-seed={seed}", f"-max_len={MAX_LEN}", "-timeout=10", "-rss_limit_mb=2048",
                "-print_final_stats=1", f"-artifact_prefix={artifacts}/", str(corpus), str(seeds)]
        if runs is not None:
            args.insert(1, f"-runs={runs}")
        if seconds is not None:
            args.insert(1, f"-max_total_time={seconds}")
        t0 = time.perf_counter()
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        result.seconds = time.perf_counter() - t0
        log = proc.stderr
        stats = dict((k, int(v)) for k, v in _STAT.findall(log))
        result.executions = stats.get("number_of_executed_units", 0)
        result.exec_per_s = stats.get("average_exec_per_sec", 0)
        done = _DONE.findall(log)
        if done:
            result.cov, result.ft, result.corpus = int(done[-1][1]), int(done[-1][2]), int(done[-1][3])
        else:  # a crash ends the run before DONE: the last status line has the coverage
            status = re.findall(r"#\d+\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", log)
            if status:
                result.cov, result.ft, result.corpus = (int(x) for x in status[-1])
        result.crashes += _ARTIFACT.findall(log)
        if proc.returncode != 0 and not result.crashes:
            result.crashes.append(f"the fuzzer exited with status {proc.returncode}")
        result.log_tail = log[-3000:]
        if result.crashes and work is None:  # keep the crashing inputs past the temporary directory
            keep = Path(tempfile.mkdtemp(prefix="armbus-cfuzz-crash-"))
            result.crashes = [str(shutil.copy(c, keep)) if Path(c).exists() else c for c in result.crashes]
        return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m armbus.tools.campaigns.cfuzz", description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=None, help="inputs to run (default 1,000,000 unless --seconds)")
    ap.add_argument("--seconds", type=int, default=None, help="stop after this many seconds")
    ap.add_argument("--seed", type=int, default=1, help="libFuzzer's seed (default 1)")
    ap.add_argument("--quick", action="store_true", help="a 20-second run")
    ap.add_argument("--binary", type=Path, default=None, help="a harness binary already built (make fuzz-build)")
    args = ap.parse_args(argv)
    runs, seconds = args.runs, args.seconds
    if args.quick:
        runs, seconds = None, 20
    elif runs is None and seconds is None:
        runs = 1_000_000
    try:
        result = run(runs=runs, seconds=seconds, seed=args.seed, binary=args.binary)
    except UsageError as exc:
        print(f"c-fuzz: {exc}", file=sys.stderr)
        return int(ExitCode.USAGE)
    print(result.line())
    for crash in result.crashes:
        print(f"CRASH {crash}")
        if Path(crash).exists():
            print(f"  minimize: {FIRMWARE}/build/fuzz/fuzz_receive -minimize_crash=1 -runs=100000 {crash}\n"
                  f"  then add the minimized input to {REGRESSIONS.relative_to(ROOT)}/ and fix the firmware")
    if result.crashes:
        print(result.log_tail, file=sys.stderr)
    return int(ExitCode.FAILED if result.crashes else ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main())
