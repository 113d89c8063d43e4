"""Bodies of the ``armbus`` commands that read or move the arm: info, scan, baud, torque, move, run, monitor.

Theory of operation
-------------------
As in :mod:`armbus.tools.commands` (which finds these bodies here by name): each ``cmd_<name>(args) -> int`` opens
the arm with :func:`armbus.tools.commands.open_arm` (the commands that move take the arm's lease for their
duration), does one job, and prints a human table or, with ``--json``, JSON. What can go wrong for a user is raised
as an armbus exception and becomes one line and an exit code in the CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from armbus.bus.errors import ExitCode, UsageError
from armbus.tools.commands import default_port, emit, joint_name, open_arm


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
