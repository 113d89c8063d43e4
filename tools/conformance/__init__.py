"""Conformance check of an arm's wire behaviour: ``armbus conform --port PORT``.

Theory of operation
-------------------
The tool plays host against an arm someone else built (firmware written from docs/) and checks, on the wire, the
rules that docs/protocol.md, docs/hoplink.md and docs/joints.md set: the RESET handshake and what follows it,
enumeration, acks, retransmission and deduplication, the out-of-window reset, error replies and the e-stop
latch. It speaks the link by hand (:mod:`.wire`), so that nothing in the host hides what the arm does, and
prints one line per rule (:mod:`.rules`) with the section of the spec it checks. The exit status is 0 when every
rule passed, 1 when one failed (or could not run), 3 when the port cannot be opened.

``--port virtual`` runs the rules against an in-process virtual arm in simulated time (a quick way to see what
a passing run looks like); ``armbus sim`` gives the same arm behind a pseudo-terminal in real time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from armbus.bus.errors import ExitCode, UsageError
from armbus.bus.wire import DEFAULT_BAUD
from armbus.tools.conformance.rules import RULES, Outcome, run_rules
from armbus.tools.conformance.wire import SerialTransport, SimTransport, Transport, WireHost

__all__ = ["RULES", "conform", "main"]

_MARK = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}


def _line(o: Outcome) -> str:
    return f"{_MARK[o.status]}  {o.rule.name:22s} {o.rule.section}\n      {o.detail}"


def open_transport(port: str, baud: int, joints: int = 3) -> Transport:
    """The port by name: ``virtual`` (an in-process virtual arm of ``joints`` joints, simulated time), or a
    device path or pyserial URL."""
    if port == "virtual":
        from armbus.hil.virtual_arm import VirtualArm

        return SimTransport(VirtualArm(joints, baud=baud))
    return SerialTransport(port, baud)


def conform(transport: Transport, timeout: float = 0.5, *, seed: int | None = None, quiet: bool = False,
            out: TextIO | None = None) -> list[Outcome]:
    """Run every rule against the arm behind ``transport``; print each outcome unless ``quiet``."""
    stream = out if out is not None else sys.stdout

    def report(o: Outcome) -> None:
        if not quiet:
            print(_line(o), file=stream, flush=True)

    return run_rules(WireHost(transport, seed=seed), timeout, RULES, report)


def run_cli(args: argparse.Namespace) -> int:
    """The body of ``armbus conform`` and ``python -m armbus.tools.conformance``."""
    timeout = args.timeout  # checked by the parser
    port = args.port or os.environ.get("ARMBUS_PORT")
    if not port:
        raise UsageError("armbus conform needs --port PORT (or ARMBUS_PORT): the arm to check, or 'virtual'")
    joints = args.joints
    if not 1 <= joints <= 253:
        raise UsageError(f"--joints {joints}: a chain holds 1..253 joints")
    transport = open_transport(port, args.baud or DEFAULT_BAUD, joints)
    try:
        outcomes = conform(transport, timeout, seed=args.seed, quiet=args.json)
    finally:
        transport.close()
    failed = [o for o in outcomes if o.status != "pass"]
    if args.json:
        print(json.dumps([{"rule": o.rule.name, "section": o.rule.section, "status": o.status, "detail": o.detail}
                          for o in outcomes]))
    else:
        print(f"{len(outcomes) - len(failed)} of {len(outcomes)} rules passed"
              + (": " + ", ".join(o.rule.name for o in failed) + " did not" if failed else ""))
    return ExitCode.FAILED if failed else ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    from armbus.tools.cli import main as cli_main

    return cli_main(["conform", *(sys.argv[1:] if argv is None else argv)])
