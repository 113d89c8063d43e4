"""Regenerate the figures of docs/reliability.md from the current code, each stamped with the commit it ran on.

Theory of operation
-------------------
docs/reliability.md keeps every campaign's figures between markers::

    <!-- BEGIN GENERATED: NAME -->
    ...
    <!-- END GENERATED: NAME -->

:data:`CAMPAIGNS` maps each NAME to the campaign's command line, full and ``--quick``. ``python -m
armbus.tools.campaigns.report`` runs each one as a subprocess (``python -m armbus.tools.campaigns.X ...``: the same
command a reader would type, with its progress on stderr left out), and replaces the block with the command, the
commit (``git describe --always --dirty``), the date, the wall time, the exit status and the output. A block whose
campaign exits non-zero is still written (the doc then shows the broken claim), and the report exits 1.
``--only NAME`` (repeatable) regenerates some blocks; ``--quick`` runs the short versions, labelled as such in the
block. The full set takes hours on a 2-core machine (one simulated hour of soak alone is 1.5 to 5.5 hours); ``make
reliability`` runs it, ``make reliability-quick`` the short one (a few minutes).
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from armbus.bus.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"


@dataclass(frozen=True)
class Campaign:
    module: str  # armbus.tools.campaigns.<module>
    full: tuple[str, ...]
    quick: tuple[str, ...]


CAMPAIGNS: dict[str, Campaign] = {
    "model": Campaign("modelcheck", (), ()),
    "fuzz": Campaign("fuzzing", ("--inputs", "1000000", "--harness", "all", "--jobs", "2"), ("--quick", "--jobs", "2")),
    "c-fuzz": Campaign("cfuzz", ("--runs", "10000000", "--seed", "1"), ("--quick",)),
    "lossy-chain": Campaign("lossychain", ("--messages", "1000000", "--seed", "1"), ("--quick",)),
    "lossy-chain-20": Campaign("lossychain", ("--messages", "1000000", "--loss", "0.2", "--seed", "1"),
                               ("--quick", "--loss", "0.2")),
    "soak": Campaign("soak", ("--hours", "1", "--seed", "1"), ("--quick",)),
    "soak-cyclic": Campaign("soak", ("--hours", "1", "--cyclic", "--seed", "1"), ("--quick", "--cyclic")),
    "safety": Campaign("safety", ("--seed", "1"), ("--quick",)),
}


def block_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- BEGIN GENERATED: {re.escape(name)} -->\n).*?(<!-- END GENERATED: {re.escape(name)} -->)",
                      re.S)


def commit() -> str:
    """The commit the figures come from: ``git describe --always --dirty`` (``unknown`` outside a checkout)."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                             timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out or "unknown"


def command(name: str, quick: bool) -> list[str]:
    c = CAMPAIGNS[name]
    return ["python", "-m", f"armbus.tools.campaigns.{c.module}", *(c.quick if quick else c.full)]


def render(name: str, argv: list[str], output: str, *, code: int, wall_s: float, quick: bool, stamp: str,
           day: str) -> str:
    """The block's new body (between its markers)."""
    label = "quick run: " if quick else ""
    return (f"`{' '.join(argv)}` ({label}commit {stamp}, {day}, {wall_s:,.0f} s wall, exit status {code}):\n\n"
            f"```\n{output.rstrip()}\n```\n")


def replace_block(text: str, name: str, body: str) -> str:
    pattern = block_re(name)
    if not pattern.search(text):
        raise KeyError(name)
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text, count=1)


def run_campaign(name: str, quick: bool) -> tuple[list[str], str, int, float]:
    """Run one campaign; returns (the command as documented, its stdout, its exit status, wall seconds)."""
    argv = command(name, quick)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv[1:]], cwd=ROOT, capture_output=True, text=True)
    return argv, proc.stdout, proc.returncode, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m armbus.tools.campaigns.report", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the short version of every campaign")
    ap.add_argument("--only", action="append", metavar="NAME", help=f"one block ({', '.join(CAMPAIGNS)}); repeatable")
    ap.add_argument("--doc", type=Path, default=DOC, help="the page to update (default docs/reliability.md)")
    args = ap.parse_args(argv)
    names = args.only or list(CAMPAIGNS)
    unknown = [n for n in names if n not in CAMPAIGNS]
    if unknown:
        ap.error(f"unknown block {', '.join(unknown)}; choose from {', '.join(CAMPAIGNS)}")
    text = args.doc.read_text()
    missing = [n for n in names if not block_re(n).search(text)]
    if missing:
        ap.error(f"{args.doc} has no generated block for {', '.join(missing)}")
    stamp, day = commit(), datetime.date.today().isoformat()
    failed = []
    for name in names:
        print(f"{name}: {' '.join(command(name, args.quick))}", flush=True)
        cmd, output, code, wall = run_campaign(name, args.quick)
        body = render(name, cmd, output, code=code, wall_s=wall, quick=args.quick, stamp=stamp, day=day)
        text = replace_block(args.doc.read_text(), name, body)  # re-read: a long run may overlap an edit
        args.doc.write_text(text)
        print(f"{name}: exit status {code}, {wall:,.0f} s wall", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"FAILED claim: campaigns exited non-zero: {', '.join(failed)}")
    return ExitCode.FAILED if failed else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
