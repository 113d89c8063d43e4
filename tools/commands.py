"""Bodies of the ``armbus`` subcommands (parsing and exit codes live in :mod:`armbus.tools.cli`).

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

from armbus.bus.errors import UsageError
from armbus.bus.wire import DEFAULT_BAUD


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
    """--port, else $ARMBUS_PORT, else the in-process virtual arm (said on stderr: nothing real moves)."""
    port = getattr(args, "port", None) or os.environ.get("ARMBUS_PORT")
    if port:
        return str(port)
    if not getattr(args, "_said_virtual", False):
        print("armbus: no --port (nor $ARMBUS_PORT): using an in-process virtual arm, not a real one",
              file=sys.stderr)
        args._said_virtual = True
    return "virtual"


# ----------------------------------------------------------------------------------------------------- ports
def cmd_ports(args: argparse.Namespace) -> int:
    from armbus.controller.ports import SYSFS_ROOT, check_latency, detect_adapter, list_ports
    from armbus.tools.bench.adapter import latency_consequence

    sysfs = getattr(args, "sysfs_root", SYSFS_ROOT)  # tests point it at a tree of their own
    ports = list_ports(sysfs)
    warnings = [w for w in (check_latency(p.device, sysfs) for p in ports) if w is not None]
    effects = {w.device: latency_consequence(w.latency_ms, w.sysfs_path) for w in warnings}
    adapters = {p.device: detect_adapter(p.device, sysfs) for p in ports}
    if getattr(args, "json", False):
        emit(args, {"ports": ports, "adapters": adapters, "latency_warnings": [str(w) for w in warnings],
                    "latency_effects": effects}, "")
        return 0
    if not ports:
        print("no serial ports found (a USB-serial adapter appears as /dev/ttyUSB* or /dev/ttyACM* on Linux)")
        return 0
    for p in ports:
        usb = p.usb_id or "-"
        a = adapters[p.device]
        kind = f"{a.kind} {a.latency_ms} ms" if a.latency_ms is not None else a.kind
        print(f"{p.device:24s} {usb:10s} {kind:14s} host turnaround {a.turnaround_ns / 1e6:g} ms  {p.description}")
    for w in warnings:
        print(f"\nwarning: {w.device}: {effects[w.device]}\n{w}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------------------------------- bench
def cmd_conform(args: argparse.Namespace) -> int:
    from armbus.tools.conformance import run_cli

    return run_cli(args)


def cmd_bench(args: argparse.Namespace) -> int:
    from armbus.tools.bench.suite import run_benchmarks

    return run_benchmarks(args.which, quick=args.quick, as_json=getattr(args, "json", False))


def cmd_bridge(args: argparse.Namespace) -> int:
    from armbus.tools.mqtt.run import run_bridge

    return run_bridge(args, open_arm(args))


def _not_ready(name: str) -> int:
    raise UsageError(f"'{name}' is not available in this build")


#: Commands whose bodies live in another module: the joint-state commands in :mod:`armbus.tools.jointcmds`,
#: the commands that read or move the arm in :mod:`armbus.tools.armcmds`.
_ELSEWHERE = {"cmd_reg": "jointcmds", "cmd_clear": "jointcmds", "cmd_estop": "jointcmds",
              "cmd_info": "armcmds", "cmd_scan": "armcmds", "cmd_baud": "armcmds", "cmd_torque": "armcmds",
              "cmd_move": "armcmds", "cmd_run": "armcmds", "cmd_monitor": "armcmds"}


def __getattr__(name: str) -> Any:
    """A command body from the module :data:`_ELSEWHERE` names, imported on first use."""
    module = _ELSEWHERE.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f"armbus.tools.{module}"), name)


# ----------------------------------------------------------------------------------------------------- traces
_TRACE_ACTIONS = {
    "decode": "armbus.hil.trace.decode",
    "stats": "armbus.hil.trace.stats",
    "replay": "armbus.hil.trace.replay",
    "plot": "armbus.hil.trace.plot",
    "export": "armbus.hil.trace.mcapexport",
}


def cmd_trace(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(_TRACE_ACTIONS[args.action])
    if args.action == "export":  # argparse leaves the options after the action in rest: export parses them
        argv = [*([args.file] if args.file else []), *(["--mcap", args.mcap] if args.mcap else []),
                *(["--out", args.out] if args.out else []), *args.rest]
        return int(module.main([*argv, "--json"] if getattr(args, "json", False) and "--json" not in argv else argv))
    if not args.file or args.mcap or args.out:
        raise UsageError(f"armbus trace {args.action} FILE: give the capture file (--mcap and --out are for export)")
    argv = [args.file, *args.rest]
    if getattr(args, "json", False) and "--json" not in argv and args.action in ("decode", "stats"):
        argv.append("--json")
    return int(module.main(argv))


def cmd_record(args: argparse.Namespace) -> int:
    from armbus.tools.record import cmd_record

    return cmd_record(args)


def cmd_tap(args: argparse.Namespace) -> int:
    from armbus.hil.trace import tap

    if not args.port:
        raise UsageError("tap needs the real arm's port: armbus tap --port /dev/ttyUSB0 --out FILE")
    if args.port.startswith("serve://"):  # a shared arm: the tap is one more client of armbus serve
        from armbus.hil.trace.servetap import run_serve_tap

        return run_serve_tap(args.port, args.out, args.duration)
    args.baud = args.baud or DEFAULT_BAUD
    argv = ["--port", args.port, "--baud", str(args.baud), "--out", args.out]
    if args.link:
        argv += ["--link", args.link]
    if args.duration is not None:
        argv += ["--duration", str(args.duration)]
    return int(tap.main(argv))


# ----------------------------------------------------------------------------------------------------- serve
#: What ``armbus serve`` starts in its own process once it listens (``start(info)`` coroutine functions, see
#: :func:`armbus.controller.server.serve`): options such as ``--mqtt`` append to it through :func:`serve_clients`.
def serve_clients(args: argparse.Namespace) -> list[Any]:
    """The in-process clients ``armbus serve`` starts for ``args``: the MQTT bridge with ``--mqtt``."""
    clients: list[Any] = []
    if getattr(args, "mqtt", None):
        from armbus.tools.mqtt.run import serve_bridge

        clients.append(serve_bridge(args))
    return clients


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from armbus.controller.server import ServeInfo, serve
    from armbus.controller.serveurl.protocol_serve import default_socket

    port = getattr(args, "port", None) or os.environ.get("ARMBUS_PORT")
    if not port:
        raise UsageError("serve needs the arm's port: armbus serve --port /dev/ttyUSB0 (or set $ARMBUS_PORT)")
    if port.startswith("serve://"):
        raise UsageError(f"{port} is already served: attach to it with --port {port}")
    baud = getattr(args, "baud", None) or DEFAULT_BAUD
    path = os.path.abspath(args.socket) if args.socket else default_socket(port)

    def ready(info: ServeInfo) -> None:
        print(f"armbus serve: {info.port} at {info.baud} baud; clients attach with --port {info.url}", flush=True)

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.duration is not None:
            loop.call_later(args.duration, stop.set)
        return await serve(port, baud=baud, socket_path=path, clients=serve_clients(args), ready=ready, stop=stop)

    counters = asyncio.run(main())
    print(f"armbus serve: stopped; {counters.clients} client(s), {counters.packets} packet(s) to the arm, "
          f"{counters.dropped} frame(s) dropped for slow clients, {counters.holds} hold(s) after a lease holder left",
          flush=True)
    return 0


# ----------------------------------------------------------------------------------------------------- sim
def cmd_sim(args: argparse.Namespace) -> int:
    from armbus.hil.ptyserver import run_sim

    args.baud = args.baud or DEFAULT_BAUD
    return int(run_sim(args))


# ----------------------------------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from armbus.tools.demo import main

    return main(args)


# ----------------------------------------------------------------------------------------------------- arm
def open_arm(args: argparse.Namespace, enumerate_chain: bool = True, lease: bool = False) -> Any:
    """Open the arm named by --port (or $ARMBUS_PORT, or the in-process virtual arm) and enumerate it. With
    ``lease`` (the commands that move) take the arm's lease for the command's duration: on an arm shared by
    ``armbus serve`` another holder makes the command fail at once, naming it (nothing free on a direct port)."""
    from armbus.bus.errors import ArmTimeoutError, PeerError
    from armbus.controller.arm import Arm
    from armbus.controller.config import load_config

    config = load_config(args.config) if getattr(args, "config", None) else None
    port = default_port(args)
    if config is not None and config.port and not getattr(args, "port", None):
        port = config.port
    baud = args.baud or (config.baud if config is not None and config.baud else 1_000_000)
    arm = Arm.open(port, baud, config=config, timeout=args.timeout)
    if lease:
        try:
            arm.acquire_lease()
        except BaseException:
            arm.close()
            raise
    if not enumerate_chain:
        return arm
    try:
        arm.enumerate()
    except (ArmTimeoutError, PeerError) as exc:
        arm.close()
        raise ArmTimeoutError(
            f"no arm answered on {port} at {baud} baud ({exc}): check power, the cable to joint 1 and the baud "
            f"rate (armbus scan --port {port} tries several)"
        ) from None
    return arm


def joint_name(arm: Any, text: str) -> str:
    """A joint given by name or by address ("2" -> the joint at address 2)."""
    names = list(arm.model.joints)
    if text in arm.model.joints:
        return text
    if text.isdigit():
        cfg = arm.model.by_address(int(text))
        if cfg is not None:
            return str(cfg.name)
    raise UsageError(f"unknown joint {text!r}: the arm has {', '.join(names) or 'no joints'} "
                     "(names from --config, or addresses 1..N)")
