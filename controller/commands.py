"""Bodies of the ``armbus`` subcommands (parsing and exit codes live in :mod:`controller.cli`).

Theory of operation
-------------------
Each ``cmd_<name>(args) -> int`` does one job and prints either a human table or, with ``--json``, JSON. Anything
that can go wrong for a user (a bad argument, a missing port, a silent arm) is raised as an armbus exception and
turned into one line and an exit code by the CLI. Heavy modules are imported inside the commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

from bus.errors import UsageError


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON with --json, else ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(data, default=_json_default, indent=None))
    else:
        print(text)


def _json_default(obj: object) -> object:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, bytes):
        return obj.hex()
    return str(obj)


def default_port(args: argparse.Namespace) -> str:
    return getattr(args, "port", None) or os.environ.get("ARMBUS_PORT") or "virtual"


# ----------------------------------------------------------------------------------------------------- ports
def cmd_ports(args: argparse.Namespace) -> int:
    from controller.ports import check_latency, list_ports

    ports = list_ports()
    warnings = [w for w in (check_latency(p.device) for p in ports) if w is not None]
    if getattr(args, "json", False):
        emit(args, {"ports": ports, "latency_warnings": [str(w) for w in warnings]}, "")
        return 0
    if not ports:
        print("no serial ports found (a USB-serial adapter appears as /dev/ttyUSB* or /dev/ttyACM* on Linux)")
        return 0
    for p in ports:
        usb = p.usb_id or "-"
        lat = f"{p.latency_timer_ms} ms" if p.latency_timer_ms is not None else "-"
        print(f"{p.device:24s} {usb:10s} latency {lat:6s} {p.description}")
    for w in warnings:
        print(f"\nwarning: {w}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------------------------- bench
def cmd_bench(args: argparse.Namespace) -> int:
    from controller.benchall import run_benchmarks

    return run_benchmarks(args.which, quick=args.quick, as_json=getattr(args, "json", False))


def _not_ready(name: str) -> int:
    raise UsageError(f"'{name}' is not available in this build")


# ----------------------------------------------------------------------------------------------------- traces
_TRACE_ACTIONS = {
    "decode": "hil.trace.decode",
    "stats": "hil.trace.stats",
    "replay": "hil.trace.replay",
    "plot": "hil.trace.plot",
}


def cmd_trace(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(_TRACE_ACTIONS[args.action])
    argv = [args.file, *args.rest]
    if getattr(args, "json", False) and "--json" not in argv and args.action in ("decode", "stats"):
        argv.append("--json")
    return int(module.main(argv))


def cmd_tap(args: argparse.Namespace) -> int:
    from hil.trace import tap

    argv = ["--port", args.port, "--baud", str(args.baud), "--out", args.out]
    if args.link:
        argv += ["--link", args.link]
    return int(tap.main(argv))


# ----------------------------------------------------------------------------------------------------- sim
def cmd_sim(args: argparse.Namespace) -> int:
    from hil.ptyserver import run_sim

    return int(run_sim(args))


# ----------------------------------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from controller.demo import main

    return main(args)
