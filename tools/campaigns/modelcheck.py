"""Check the Promela model of the hop link (docs/model/hoplink.pml) with spin: every property, every broken variant.

Theory of operation
-------------------
Each :class:`Check` is one spin run: a set of ``-D`` defines (the configuration, or a deliberately broken variant),
a kind (``safety``: pan compiled ``-DSAFETY -DNOCLAIM``, asserts and invalid end states; or an ltl claim name,
``./pan -a -f -N NAME``: acceptance cycles under weak fairness) and the expected outcome (holds, or fails). The
model is copied to a scratch directory, ``spin -a`` writes pan.c, gcc compiles it (without optimisation: it
compiles 4x faster, and every search here takes well under a second), and pan runs with a memory limit; a search
cut short by it counts as a failure of the check, since it proved nothing. :data:`CHECKS` is what
docs/hoplink.md states (the same runs pin it in tests/link/test_model.py); ``python -m
armbus.tools.campaigns.modelcheck`` prints one line per check and exits 1 if any outcome differs from the
expected one. Needs spin and gcc (Debian packages ``spin``, ``gcc``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from armbus.bus.errors import ExitCode

MODEL = Path(__file__).resolve().parents[2] / "docs" / "model" / "hoplink.pml"
#: The liveness configurations: lines that stop losing within the retry budget.
_L1 = ("-DLOSSES=1", "-DDUPS=1", "-DREBOOTS=0", "-DRETRIES=2")
_L2 = ("-DLOSSES=1", "-DDUPS=0", "-DREBOOTS=1", "-DRETRIES=3")
_L3 = ("-DLOSSES=0", "-DREFUSALS=1", "-DDUPS=1", "-DREBOOTS=0", "-DRETRIES=2")
_L4 = ("-DN=3", "-DLOSSES=1", "-DDUPS=1", "-DREBOOTS=1", "-DRETRIES=3")
_EARLY = ("-DEARLY_TIMERS", "-DCAP=4", "-DLOSSES=0", "-DDUPS=0", "-DREBOOTS=0")


@dataclass(frozen=True)
class Check:
    defines: tuple[str, ...]
    kind: str  # "safety" or an ltl claim name
    holds: bool  # the expected outcome


CHECKS = [
    Check((), "safety", True),
    Check(("-DREBOOTS=2", "-DLOSSES=1", "-DDUPS=0"), "safety", True),
    Check(("-DEARLY_TIMERS", "-DCAP=4", "-DLOSSES=1", "-DDUPS=0"), "safety", True),
    Check(("-DREFUSALS=1", "-DLOSSES=1"), "safety", True),
    *(Check(c, claim, True) for c in (_L1, _L2, _L3, _L4) for claim in ("settled", "delivered")),
    Check(("-DLOSSES=255",), "settled", True),
    Check(("-DLOSSES=255", "-DREFUSALS=255", "-DDUPS=0"), "settled", True),
    Check(("-DEARLY_TIMERS", "-DCAP=4", "-DLOSSES=1", "-DDUPS=0", "-DREBOOTS=0"), "settled", True),
    Check(("-DB_SENDS",), "safety", True),
    Check(("-DB_SENDS", "-DNB=2", "-DDUPS=0"), "safety", True),
    Check(("-DB_SENDS", "-DREBOOTS=2", "-DLOSSES=1", "-DDUPS=0"), "safety", True),
    *(Check(("-DB_SENDS", *_L2), claim, True) for claim in ("settled", "settled_b", "delivered")),
    Check(("-DB_SENDS", "-DLOSSES=255", "-DDUPS=0"), "settled_b", True),
    Check(("-DBROKEN_NO_DEDUP", "-DDUPS=0"), "safety", False),
    Check(("-DBROKEN_RESET_COPIES",), "safety", False),
    Check(("-DBROKEN_NO_BOOT_QUIET", "-DREBOOTS=2", "-DLOSSES=1"), "safety", False),
    Check(("-DBROKEN_SYNC_ACCEPT", "-DDUPS=0"), "safety", False),
    Check(("-DNONCE_MAY_REPEAT", "-DREBOOTS=2"), "safety", False),
    Check(("-DBROKEN_NO_NONCE_CHECK", *_EARLY), "safety", False),
    Check(("-DBROKEN_REFUSAL_ACKS", "-DREFUSALS=1", "-DLOSSES=0", "-DDUPS=0", "-DREBOOTS=0"), "safety", False),
    Check(("-DLOSSES=1", "-DDUPS=1", "-DREBOOTS=0", "-DRETRIES=0"), "safety", True),
    Check(("-DLOSSES=1", "-DDUPS=1", "-DREBOOTS=0", "-DRETRIES=0"), "delivered", False),
    Check(("-DLOSSES=2", "-DDUPS=0", "-DREBOOTS=0", "-DRETRIES=1"), "delivered", False),
    Check(("-DLOSSES=255", "-DBROKEN_RETRY_FOREVER"), "safety", True),
    Check(("-DLOSSES=255", "-DBROKEN_RETRY_FOREVER"), "settled", False),
    Check(("-DB_SENDS", "-DNB=2", "-DBROKEN_A_NO_DEDUP", "-DDUPS=0"), "safety", False),
]


@dataclass(frozen=True)
class Outcome:
    check: Check
    errors: int
    states: int
    seconds: float
    violation: str  # the first error pan names, or ""

    @property
    def ok(self) -> bool:
        return (self.errors == 0) == self.check.holds


def run_check(check: Check, workdir: Path) -> Outcome:
    """Build and run pan for one check in ``workdir`` (created, and left behind for its trail)."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(MODEL, workdir / "hoplink.pml")
    t0 = time.perf_counter()
    subprocess.run(["spin", *check.defines, "-a", "hoplink.pml"], cwd=workdir, check=True, capture_output=True,
                   timeout=60)
    cflags = ["-DSAFETY", "-DNOCLAIM"] if check.kind == "safety" else []
    subprocess.run(["gcc", "-O0", *cflags, "-DCOLLAPSE", "-DMEMLIM=1024", "-o", "pan", "pan.c"], cwd=workdir,
                   check=True, capture_output=True, timeout=120)
    args = [] if check.kind == "safety" else ["-a", "-f", "-N", check.kind]
    run = subprocess.run(["./pan", "-m200000", *args], cwd=workdir, capture_output=True, text=True, timeout=600)
    out = run.stdout + run.stderr
    errors = re.search(r"errors: (\d+)", out)
    states = re.search(r"(\d+) states, stored", out)
    if errors is None or "MEMLIM" in out or "max search depth too small" in out:
        raise RuntimeError(f"pan did not finish its search for {check}:\n{out}")
    found = re.search(r"(assertion violated[^\n]*?)(?: \(at depth|\n)|(acceptance cycle)|(invalid end state)", out)
    violation = next((g for g in found.groups() if g), "") if found else ""
    return Outcome(check, int(errors.group(1)), int(states.group(1)) if states else 0,
                   time.perf_counter() - t0, violation)


def describe(o: Outcome) -> str:
    config = " ".join(o.check.defines) or "(full configuration)"
    result = "holds" if o.errors == 0 else f"FAILS: {o.violation or 'error'}"
    expect = "" if o.ok else f"   <-- expected it to {'hold' if o.check.holds else 'fail'}"
    return f"{o.check.kind:9} {config:70} {result:55} {o.states:>9,} states {o.seconds:5.1f} s{expect}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m armbus.tools.campaigns.modelcheck",
                                 description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    if shutil.which("spin") is None or shutil.which("gcc") is None:
        print("spin and gcc are needed (apt-get install -y spin gcc)", file=sys.stderr)
        return ExitCode.USAGE
    with tempfile.TemporaryDirectory(prefix="hoplink-") as tmp:
        outcomes = [run_check(c, Path(tmp) / str(i)) for i, c in enumerate(CHECKS)]
    for o in outcomes:
        print(describe(o))
    wrong = [o for o in outcomes if not o.ok]
    print(f"{len(outcomes)} checks: {sum(o.errors == 0 for o in outcomes)} hold, "
          f"{sum(o.errors > 0 for o in outcomes)} fail, {len(wrong)} not as expected")
    for o in wrong:
        print(f"FAILED claim: {o.check.kind} with {' '.join(o.check.defines)} was expected to "
              f"{'hold' if o.check.holds else 'fail'}")
    return ExitCode.FAILED if wrong else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
