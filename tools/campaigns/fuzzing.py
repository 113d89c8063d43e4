"""Long-run fuzzing of every receive path: seeded mutation of valid inputs, a million inputs per target.

Theory of operation
-------------------
``python -m armbus.tools.campaigns.fuzzing --inputs 1000000 --harness all`` runs each target of
:mod:`armbus.tools.campaigns.fuzz_targets` on
``--inputs`` inputs produced by a seeded :class:`Mutator` (no hypothesis: its per-example bookkeeping costs more
than most targets). An input is a seed (a valid frame, packet, payload or capture) or an input kept earlier,
with one to four stacked mutations: bit flips, byte sets, arithmetic on a byte, interesting values, inserts,
deletions, truncation, duplicated ranges, 0x00 delimiters, splices with another seed, or fresh random bytes.
Inputs that a target accepted as valid are kept (a bounded pool of :data:`POOL_SIZE`, random replacement), so
mutations wander deeper into valid territory than seeds alone.

A finding is any exception escaping a target (invariant violations included) or an input running longer than
``--hang-s`` (a SIGALRM interrupts it). Findings are grouped by exception type and innermost code location; the
first input of each group is printed (hex) and, with ``--findings DIR``, saved as JSON with the inputs of its
session (stateful targets keep a session for :data:`SESSION_INPUTS` inputs), replayable with ``--replay FILE``.
Memory: the stateful targets check their buffer bounds on every input; the runner also reports the growth of
the process's peak RSS between the first tenth of the run and its end.

``--engine atheris`` runs a target under atheris (coverage-guided libFuzzer) instead, when it is installed.
``--quick`` runs 20,000 inputs per target. Several targets run in parallel processes with ``--jobs``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from armbus.bus.errors import ExitCode
from armbus.tools.campaigns.fuzz_targets import TARGETS, FuzzTarget

#: Accepted inputs kept for further mutation: enough variety, small enough to pick from in O(1).
POOL_SIZE = 512
#: Inputs per session of a stateful target before it starts afresh (a finding replays at most this many).
SESSION_INPUTS = 256
#: Longest input the mutator builds: a few frames' worth, or a small capture.
MAX_INPUT = 4096
#: An input running longer than this (seconds) is a hang finding; the slowest valid inputs take milliseconds.
DEFAULT_HANG_S = 5.0
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 0x10, 0x20)
QUICK_INPUTS = 20_000


class Hang(Exception):
    """Raised by the alarm handler in an input that ran longer than the hang limit."""


class Mutator:
    """Seeded mutations of byte strings (see the module docstring)."""

    def __init__(self, seeds: Sequence[bytes], rng: random.Random) -> None:
        self.seeds = [bytes(s) for s in seeds] or [b""]
        self.rng = rng
        self.pool: list[bytes] = []

    def keep(self, data: bytes) -> None:
        if len(self.pool) < POOL_SIZE:
            self.pool.append(data)
        else:
            self.pool[self.rng.randrange(POOL_SIZE)] = data

    def next(self) -> bytes:
        rng = self.rng
        if rng.random() < 0.02:
            return rng.randbytes(rng.randrange(64))
        base = rng.choice(self.pool) if self.pool and rng.random() < 0.5 else rng.choice(self.seeds)
        d = bytearray(base)
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
            self._mutate(d)
        return bytes(d[:MAX_INPUT])

    def _mutate(self, d: bytearray) -> None:
        rng = self.rng
        op = rng.randrange(12)
        n = len(d)
        if n == 0 or op == 0:  # insert random bytes
            pos = rng.randrange(n + 1)
            d[pos:pos] = rng.randbytes(rng.randrange(1, 9))
        elif op == 1:  # flip one bit
            i = rng.randrange(n)
            d[i] ^= 1 << rng.randrange(8)
        elif op == 2:  # set a byte
            d[rng.randrange(n)] = rng.randrange(256)
        elif op == 3:  # arithmetic on a byte
            i = rng.randrange(n)
            d[i] = (d[i] + rng.choice((-1, 1)) * rng.randrange(1, 36)) & 0xFF
        elif op == 4:  # interesting value
            d[rng.randrange(n)] = rng.choice(INTERESTING)
        elif op == 5:  # delete a range
            i = rng.randrange(n)
            del d[i:i + rng.randrange(1, 17)]
        elif op == 6:  # truncate
            del d[rng.randrange(n):]
        elif op == 7:  # duplicate a range
            i = rng.randrange(n)
            j = min(n, i + rng.randrange(1, 65))
            pos = rng.randrange(n + 1)
            d[pos:pos] = d[i:j]
        elif op == 8:  # a delimiter
            pos = rng.randrange(n + 1)
            d[pos:pos] = b"\x00"
        elif op == 9:  # splice with another seed
            other = rng.choice(self.seeds)
            cut = rng.randrange(n + 1)
            d[cut:] = other[rng.randrange(len(other) + 1):] if other else b""
        elif op == 10:  # append a whole seed (frames back to back)
            d += rng.choice(self.seeds)
        else:  # overwrite a 4-byte word with an interesting or random value
            i = rng.randrange(n)
            d[i:i + 4] = rng.choice((b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff\xff\x7f",
                                     rng.randbytes(4)))


@dataclass
class Finding:
    key: str
    message: str
    data: bytes
    session: list[bytes]
    count: int = 1


@dataclass
class RunResult:
    target: str
    inputs: int
    seconds: float
    outcomes: dict[str, int] = field(default_factory=dict)
    findings: dict[str, Finding] = field(default_factory=dict)
    rss_start_kb: int = 0
    rss_end_kb: int = 0
    slowest_ms: float = 0.0

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


def _location(exc: BaseException) -> str:
    """Innermost frame in armbus code (file:line), the grouping key of a finding."""
    frames = traceback.extract_tb(exc.__traceback__)
    for fr in reversed(frames):
        if "/site-packages/" not in fr.filename:
            return f"{Path(fr.filename).name}:{fr.lineno}"
    return "?"


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang("input ran longer than the hang limit")


def run_target(name: str, inputs: int, seed: int, hang_s: float = DEFAULT_HANG_S,
               progress: bool = False) -> RunResult:
    """Run ``inputs`` mutated inputs through target ``name``; never raises for a finding (it is recorded)."""
    target: FuzzTarget = TARGETS[name]()
    mut = Mutator(target.seeds(), random.Random(seed))
    result = RunResult(name, 0, 0.0)
    session: list[bytes] = []
    old = signal.signal(signal.SIGALRM, _on_alarm)
    start = time.perf_counter()
    try:
        for i in range(inputs):
            if target.stateful and len(session) >= SESSION_INPUTS:
                target.renew()
                session = []
            if i == inputs // 10:
                result.rss_start_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            data = mut.seeds[i] if i < len(mut.seeds) else mut.next()
            if not target.stateful:
                session = []
            session.append(data)
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, hang_s)
            try:
                outcome = target.run(data)
            except Exception as exc:  # a finding: recorded, then the session starts afresh
                signal.setitimer(signal.ITIMER_REAL, 0)
                key = f"{type(exc).__name__} at {_location(exc)}"
                found = result.findings.get(key)
                if found is None:
                    result.findings[key] = Finding(key, str(exc)[:300], data, list(session))
                else:
                    found.count += 1
                outcome = "FINDING"
                if target.stateful:
                    target.renew()
                    session = []
            else:
                signal.setitimer(signal.ITIMER_REAL, 0)
                if outcome == "ok":
                    mut.keep(data)
            result.slowest_ms = max(result.slowest_ms, (time.perf_counter() - t0) * 1e3)
            result.outcomes[outcome] = result.outcomes.get(outcome, 0) + 1
            result.inputs += 1
            if progress and (i + 1) % 100_000 == 0:
                rate = (i + 1) / (time.perf_counter() - start)
                print(f"  {name}: {i + 1} inputs, {rate:,.0f}/s, {len(result.findings)} finding(s)", flush=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    result.seconds = time.perf_counter() - start
    result.rss_end_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result.rss_start_kb = result.rss_start_kb or result.rss_end_kb
    return result


def replay(path: Path) -> int:
    """Replay a saved finding's session, or every finding saved in a directory (as ``--findings DIR`` writes
    them; none is a clean run); prints the traceback each ends with. Exit 1 if one still fails."""
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            print(f"no findings to replay in {path}")
            return ExitCode.OK
        failing = [f for f in files if _replay_one(f) != ExitCode.OK]
        print(f"{len(files) - len(failing)} of {len(files)} finding(s) run clean now")
        return ExitCode.FAILED if failing else ExitCode.OK
    return _replay_one(path)


def _replay_one(path: Path) -> int:
    print(f"replaying {path}")
    doc = json.loads(path.read_text())
    target = TARGETS[doc["target"]]()
    for hexdata in doc["session"]:
        try:
            target.run(bytes.fromhex(hexdata))
        except Exception:
            traceback.print_exc()
            return ExitCode.FAILED
    print("the session runs clean now")
    return 0


def _save(result: RunResult, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(result.findings.values()):
        doc = {"target": result.target, "key": f.key, "message": f.message, "input": f.data.hex(),
               "session": [s.hex() for s in f.session]}
        (directory / f"{result.target}-{i}.json").write_text(json.dumps(doc, indent=1))


def report(result: RunResult) -> None:
    out = ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items()))
    print(f"{result.target:9} {result.inputs:>9,} inputs in {result.seconds:7.1f} s = {result.rate:9,.0f} inputs/s"
          f"  slowest {result.slowest_ms:6.1f} ms  peak RSS {result.rss_start_kb / 1024:.0f} -> "
          f"{result.rss_end_kb / 1024:.0f} MB  ({out})  findings: {len(result.findings)}")
    for f in result.findings.values():
        shown = f.data[:64].hex() + ("..." if len(f.data) > 64 else "")
        print(f"    {f.key} x{f.count}: {f.message}\n      input ({len(f.data)} bytes, session of "
              f"{len(f.session)}): {shown}")


def _run_atheris(name: str, inputs: int, seed: int) -> int:
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: pip install -e '.[fuzz]' (or make fuzz-atheris); or use the default "
              "engine", file=sys.stderr)
        return ExitCode.USAGE
    target = TARGETS[name]()
    count = [0]

    def one(data: bytes) -> None:
        count[0] += 1
        if target.stateful and count[0] % SESSION_INPUTS == 0:
            target.renew()
        target.run(data)

    atheris.instrument_all()
    atheris.Setup([sys.argv[0], f"-runs={inputs}", f"-seed={seed}", f"-max_len={MAX_INPUT}"], one)
    atheris.Fuzz()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m armbus.tools.campaigns.fuzzing", description=__doc__.split("\n")[0])
    ap.add_argument("--harness", default="all", help=f"target name or 'all' ({', '.join(TARGETS)})")
    ap.add_argument("--inputs", type=int, default=1_000_000, help="inputs per target (default 1,000,000)")
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_INPUTS:,} inputs per target")
    ap.add_argument("--seed", type=int, default=1, help="random seed of the mutator (default 1)")
    ap.add_argument("--jobs", type=int, default=1, help="targets run in parallel processes (default 1)")
    ap.add_argument("--hang-s", type=float, default=DEFAULT_HANG_S, help="seconds before an input is a hang")
    ap.add_argument("--findings", type=Path, help="directory to save findings as replayable JSON")
    ap.add_argument("--replay", type=Path, metavar="FILE_OR_DIR",
                    help="replay a saved finding, or every finding in a --findings directory, and exit")
    ap.add_argument("--engine", choices=("mutate", "atheris"), default="mutate")
    args = ap.parse_args(argv)
    if args.replay is not None:
        if not args.replay.exists():
            ap.error(f"--replay: {args.replay} does not exist")
        return replay(args.replay)
    names = list(TARGETS) if args.harness == "all" else [args.harness]
    for n in names:
        if n not in TARGETS:
            ap.error(f"unknown harness {n!r}; choose from {', '.join(TARGETS)} or all")
    if args.inputs < 1 or args.jobs < 1 or args.hang_s <= 0:
        ap.error("--inputs and --jobs must be at least 1 and --hang-s positive")
    inputs = QUICK_INPUTS if args.quick else args.inputs
    if args.engine == "atheris":
        if len(names) != 1:
            ap.error("--engine atheris runs one harness at a time")
        return _run_atheris(names[0], inputs, args.seed)
    print(f"fuzzing {', '.join(names)}: {inputs:,} inputs each, seed {args.seed}, {args.jobs} job(s)", flush=True)
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_target, n, inputs, args.seed, args.hang_s) for n in names]
            results = [f.result() for f in futures]
    else:
        results = [run_target(n, inputs, args.seed, args.hang_s, progress=True) for n in names]
    for r in results:
        report(r)
        if args.findings is not None and r.findings:
            _save(r, args.findings)
    total = sum(len(r.findings) for r in results)
    print(f"total: {sum(r.inputs for r in results):,} inputs, {total} distinct finding(s)")
    if total:
        where = ", ".join(f"{r.target} {len(r.findings)}" for r in results if r.findings)
        print(f"FAILED claim: no finding (every input parsed or raised the counted error, every invariant held): "
              f"{where}")
    return ExitCode.FAILED if total else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
