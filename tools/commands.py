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

from armbus.bus.errors import ExitCode, UsageError
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


def __getattr__(name: str) -> Any:
    """The joint-state commands live in :mod:`armbus.tools.jointcmds` (cmd_reg, cmd_clear, cmd_estop)."""
    if name in ("cmd_reg", "cmd_clear", "cmd_estop"):
        from armbus.tools import jointcmds

        return getattr(jointcmds, name)
    raise AttributeError(name)


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


def _state_row(name: str, s: Any) -> dict[str, Any]:
    import math

    from armbus.bus.wire import StatusFlag

    flags = [f.name for f in StatusFlag if f and f in StatusFlag(s.status) and f.name]
    return {"joint": name, "address": s.address, "position_deg": math.degrees(s.position),
            "velocity_deg_s": math.degrees(s.velocity), "current_a": s.current, "temperature_c": s.temperature,
            "voltage_v": s.voltage, "flags": flags}


def cmd_info(args: argparse.Namespace) -> int:
    arm = open_arm(args)
    try:
        rows = []
        for name, cfg in arm.model.joints.items():
            ping = arm.ping(name)
            rows.append({"joint": name, "address": cfg.address, "model": ping.model,
                         "firmware": f"{ping.fw_major}.{ping.fw_minor}", "serial": ping.serial})
        states = arm.read_states()
    finally:
        arm.close()
    if getattr(args, "json", False):
        emit(args, {"joints": rows, "states": [_state_row(n, s) for n, s in states.items()]}, "")
        return 0
    print(f"{len(rows)} joints on {default_port(args)}")
    print(f"{'joint':10s} {'addr':>4s} {'model':>7s} {'fw':>5s} {'serial':>10s} {'position':>10s} {'temp':>6s}  flags")
    for r in rows:
        s = states.get(r["joint"])
        st = _state_row(r["joint"], s) if s is not None else None
        pos = f"{st['position_deg']:8.2f}deg" if st else "-"
        temp = f"{st['temperature_c']:5.1f}C" if st else "-"
        flags = ",".join(st["flags"]) if st else "-"
        print(f"{r['joint']:10s} {r['address']:4d} 0x{r['model']:04x} {r['firmware']:>5s} 0x{r['serial']:08x} "
              f"{pos:>10s} {temp:>6s}  {flags}")
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from armbus.controller.scan import scan, scan_order

    bauds = None
    if args.bauds:
        try:
            bauds = [int(b) for b in args.bauds.split(",") if b.strip()]
        except ValueError:
            raise UsageError(f"bad --bauds {args.bauds!r}: expected comma-separated whole numbers") from None
    order = scan_order(bauds)  # a bad rate is refused before the port is opened
    as_json = getattr(args, "json", False)
    port = default_port(args)

    def show(baud: int, outcome: str) -> None:
        if not as_json:
            print(f"{baud:>8d} baud: {outcome}", flush=True)

    result = scan(port, order, on_rate=show)
    if as_json:
        emit(args, {"port": port, "baud": result.baud, "joints": result.joints, "tried": result.tried}, "")
    elif result.found:
        print(f"found: {result.joints} joint(s) at {result.baud} baud on {port}")
    else:
        print("no arm found: check power and wiring, and that the port is the arm's (armbus ports)")
    return 0 if result.found else ExitCode.TIMEOUT


def cmd_baud(args: argparse.Namespace) -> int:
    from armbus.controller.baud import DEFAULT_TRIAL_MS, RateSwitchFailed, check_rate

    rate = check_rate(args.rate, "rate")
    chain = check_rate(args.chain, "--chain rate") if args.chain is not None else rate
    trial_ms = args.trial_ms or DEFAULT_TRIAL_MS
    if not 10 <= trial_ms <= 60_000:
        raise UsageError(f"--trial-ms {trial_ms}: choose 10..60000 ms")
    arm = open_arm(args, lease=True)
    try:
        try:
            report = arm.set_baud(rate, chain, trial_ms=trial_ms)
        except RateSwitchFailed as exc:
            report = exc.report
    finally:
        arm.close()
    emit(args, report, f"{report.outcome}: {report.detail} ({report.duration_ms:.0f} ms)")
    if not report.ok:
        return ExitCode.FAILED
    return 0


def cmd_torque(args: argparse.Namespace) -> int:
    arm = open_arm(args, lease=args.state == "on")  # switching off stops: free for every client
    try:
        name = joint_name(arm, args.joint) if args.joint else None
        arm.torque(args.state == "on", name)
    finally:
        arm.close()
    emit(args, {"torque": args.state, "joint": name or "all"}, f"torque {args.state}: {name or 'all joints'}")
    return 0


def cmd_move(args: argparse.Namespace) -> int:
    import math
    import time

    from armbus.bus.errors import ArmTimeoutError
    from armbus.controller.units import parse_angle
    from armbus.tools.jointcmds import blockers, check_ready, keep_alive

    target = parse_angle(args.position)
    tolerance = parse_angle(args.tolerance)
    if tolerance <= 0:
        raise UsageError(f"--tolerance {args.tolerance}: must be more than 0 (e.g. 0.5deg)")
    arm = open_arm(args, lease=True)
    try:
        name = joint_name(arm, args.joint)
        check_ready(arm, [name])  # an e-stopped or faulted joint says so now, not after a timeout
        arm.model.check_position(arm.model.joint(name), target)
        keep_alive(arm, [name])
        arm.torque(True, name)
        arm.set_goal(name, position=target)
        state = arm.read_state(name)
        if args.wait:
            deadline = time.monotonic() + max(2.0, 10 * args.timeout)
            while abs(state.position - target) > tolerance:
                if time.monotonic() > deadline:
                    why = blockers(arm, [name])
                    raise ArmTimeoutError(f"{name} did not reach {math.degrees(target):.2f} deg "
                                          f"(at {math.degrees(state.position):.2f} deg, flags {state.status})"
                                          + (f": {why[0]}" if why else ""))
                time.sleep(0.02)
                state = arm.read_state(name)
    finally:
        arm.close()
    emit(args, {"joint": name, "goal_deg": math.degrees(target), "position_deg": math.degrees(state.position)},
         f"{name}: goal {math.degrees(target):.2f} deg, now at {math.degrees(state.position):.2f} deg")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from armbus.controller.trajectory import load_csv

    trajectory = load_csv(args.trajectory)
    arm = open_arm(args, lease=True)
    try:
        missing = [n for n in trajectory.names if n not in arm.model.joints]
        if missing:
            raise UsageError(f"{args.trajectory}: column(s) {', '.join(missing)} name no joint of the arm "
                             f"({', '.join(arm.model.joints)})")
        for i, name in enumerate(trajectory.names):  # preflight: nothing moves if any waypoint is out of range
            cfg = arm.model.joint(name)
            for value in (float(trajectory.positions[:, i].min()), float(trajectory.positions[:, i].max())):
                try:
                    arm.model.check_position(cfg, value)
                except UsageError as exc:
                    raise UsageError(f"{args.trajectory}: {exc}") from None
        from armbus.tools.jointcmds import check_ready, keep_alive

        check_ready(arm, list(trajectory.names))
        keep_alive(arm, list(trajectory.names))
        arm.torque(True)
        plan = trajectory.plan(profile="min_jerk" if args.profile == "minjerk" else "trapezoid")
        report = arm.run_trajectory(plan, args.rate, on_cycle=_progress(plan.duration))
    finally:
        arm.close()
    emit(args, report, report.summary())
    return ExitCode.OK if report.reached else ExitCode.FAILED


def _progress(total_s: float) -> Any:
    """A streaming callback that shows the time done on stderr once a second, when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    shown = [-1]

    def show(info: Any) -> None:
        second = int(info.time)
        if second != shown[0]:
            shown[0] = second
            print(f"\rarmbus run: {info.time:6.1f} / {total_s:.1f} s", end="", file=sys.stderr, flush=True)

    return show


def cmd_monitor(args: argparse.Namespace) -> int:
    import time

    from rich.live import Live
    from rich.table import Table

    from armbus.bus.errors import ArmTimeoutError, PortError

    if args.rate <= 0 or args.rate > 50:
        raise UsageError(f"--rate {args.rate}: choose 0.1..50 refreshes per second")
    arm = open_arm(args)
    period = 1.0 / args.rate
    end = time.monotonic() + args.duration if args.duration else None

    def table() -> Table:
        t = Table(title=f"armbus monitor: {default_port(args)}  (Ctrl-C to stop)")
        for col in ("joint", "addr", "position deg", "velocity deg/s", "current A", "temp C", "volt V", "flags"):
            t.add_column(col, justify="right" if col not in ("joint", "flags") else "left")
        try:
            states = arm.read_states()
        except (PortError, ArmTimeoutError) as exc:  # the port comes back by itself: keep watching
            t.caption = f"waiting for the arm: {exc}"
            return t
        link = arm.runner.node.link.counters
        for name, s in states.items():
            r = _state_row(name, s)
            t.add_row(name, str(r["address"]), f"{r['position_deg']:.2f}", f"{r['velocity_deg_s']:.1f}",
                      f"{r['current_a']:.3f}", f"{r['temperature_c']:.1f}", f"{r['voltage_v']:.2f}",
                      ",".join(r["flags"]))
        t.caption = (f"host link: sent {link.frames_sent}  received {link.frames_received}  "
                     f"retransmits {link.retransmits}  crc errors {link.crc_errors}  failures {link.failures}")
        return t

    def rows() -> list[dict[str, Any]] | None:
        try:
            return [_state_row(n, s) for n, s in arm.read_states().items()]
        except (PortError, ArmTimeoutError) as exc:
            print(f"armbus: waiting for the arm: {exc}", file=sys.stderr, flush=True)
            return None

    try:
        if getattr(args, "json", False):
            while end is None or time.monotonic() < end:
                data = rows()
                if data is not None:
                    print(json.dumps(data), flush=True)
                time.sleep(period)
        else:
            with Live(table(), refresh_per_second=args.rate) as live:
                while end is None or time.monotonic() < end:
                    time.sleep(period)
                    live.update(table())
    finally:
        arm.close()
    return 0
