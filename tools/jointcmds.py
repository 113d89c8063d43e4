"""``armbus`` subcommands about the joints' state: registers as a person reads them, stops and their release.

Theory of operation
-------------------
A command that cannot act because of a joint's state says so at once, with the way out, instead of waiting for a
timeout: :func:`check_ready` reads every named joint's status (one SYNC_READ) and raises :class:`NotReady` naming
each blocked joint, what holds it (e-stopped, stopped by its watchdog, faulted with the fault by name) and the
command that clears it (``armbus estop --release``, ``armbus clear JOINT``). Commands that move the arm for more
than an instant feed the joints' watchdogs (:func:`keep_alive`): when any joint has ``watchdog_period`` set, the
host heartbeats at a third of the shortest period for as long as the command runs.

``armbus reg`` reads and writes through :mod:`armbus.controller.regview` (scaled values with units, enums and
flags by name; names, units or raw integers accepted on write); ``reg dump JOINT`` prints the whole table and
``JOINT`` may be ``all``. ``armbus clear [JOINT|all]`` clears the latched flags (ESTOPPED, WATCHDOG, FAULT,
REBOOTED); ``armbus estop --release`` releases an e-stop on every joint. Neither powers a joint: after a stop
the joints are ready, and motion needs ``armbus torque on`` (docs/joints.md).
"""

from __future__ import annotations

import argparse
from typing import Any

from armbus.bus.errors import ArmTimeoutError, PeerError, UsageError
from armbus.bus.wire import FaultCode, StatusFlag
from armbus.controller import regview
from armbus.joints.registers import REGISTERS
from armbus.tools.commands import emit, joint_name, open_arm

#: Latched flags that keep a joint from moving, what they mean, and the way out ({joint}: the joint's name).
BLOCKERS: tuple[tuple[StatusFlag, str, str], ...] = (
    (StatusFlag.ESTOPPED, "is e-stopped", "armbus estop --release, then armbus torque on"),
    (StatusFlag.WATCHDOG, "was stopped by its watchdog (no heartbeat within watchdog_period)",
     "armbus clear {joint}, then armbus torque on {joint}"),
    (StatusFlag.FAULT, "is faulted", "fix the cause, then armbus clear {joint} and armbus torque on {joint}"),
)
#: The latched flags ``clear`` clears (``clear_flags``): the stops, a fault, the reboot mark.
LATCHED = StatusFlag.ESTOPPED | StatusFlag.WATCHDOG | StatusFlag.FAULT | StatusFlag.REBOOTED
_LATCHED = LATCHED


class NotReady(PeerError):
    """A joint's state keeps the command from acting (the message says which and the way out)."""


def blockers(arm: Any, names: list[str]) -> list[str]:
    """One line per named joint whose latched state keeps it from moving, with the way out."""
    states = arm.read_states()
    lines = []
    for name in names:
        s = states.get(name)
        if s is None:
            continue
        for flag, what, way_out in BLOCKERS:
            if s.status & flag:
                if flag is StatusFlag.FAULT:
                    code = arm.read(name, "fault_code")
                    what = f"is faulted ({FaultCode(code).name if code in FaultCode._value2member_map_ else code})"
                lines.append(f"{name} {what}: {way_out.format(joint=name)}")
                break
    return lines


def check_ready(arm: Any, names: list[str]) -> None:
    """Raise :class:`NotReady` at once when a named joint cannot move (see the module docstring)."""
    lines = blockers(arm, names)
    if lines:
        raise NotReady("; ".join(lines))


def keep_alive(arm: Any, names: list[str]) -> None:
    """Heartbeat while the command runs when a joint has a watchdog (else a move would trip it)."""
    periods = [arm.read(n, "watchdog_period") for n in names]
    active = [p for p in periods if p]
    if active:
        arm.set_heartbeat(min(active) / 3000.0)


def _targets(arm: Any, text: str | None) -> list[str]:
    if text is None or text == "all":
        return list(arm.model.joints)
    return [joint_name(arm, text)]


def cmd_reg(args: argparse.Namespace) -> int:
    if args.action == "list":
        rows = [{"address": r.address, "name": r.name, "size": r.size, "access": r.access.name,
                 "persistent": r.persistent, "unit": r.unit, "doc": r.doc} for r in REGISTERS]
        text = "\n".join(f"{r['address']:3d} {r['name']:20s} {r['size']}B {r['access']:2s} "
                         f"{'persistent' if r['persistent'] else '':10s} {r['unit']:10s} {r['doc']}" for r in rows)
        emit(args, rows, text)
        return 0
    if not args.joint:
        raise UsageError(f"reg {args.action} needs a joint (a name, an address or all)")
    if args.action == "dump":
        return _dump(args)
    if not args.register:
        raise UsageError(f"reg {args.action} needs a register (armbus reg list shows them)")
    reg_name = args.register
    if reg_name.isdigit():
        by_addr = {r.address: r.name for r in REGISTERS}
        if int(reg_name) not in by_addr:
            raise UsageError(f"no register starts at address {reg_name} (armbus reg list)")
        reg_name = by_addr[int(reg_name)]
    regview.register(reg_name)
    value = None
    if args.action == "write":
        if args.value is None:
            raise UsageError("reg write needs a value: a quantity with its unit, a name, or an integer in the "
                             "register's unit")
        value = regview.parse(reg_name, args.value)
    arm = open_arm(args, lease=value is not None)
    try:
        rows = []
        for name in _targets(arm, args.joint):
            if value is not None:
                arm.write(name, reg_name, value)
            raw = arm.read(name, reg_name)
            rows.append({"joint": name, "register": reg_name, "value": raw, "unit": regview.register(reg_name).unit,
                         "text": regview.show(reg_name, raw)})
    finally:
        arm.close()
    emit(args, rows if len(rows) > 1 else rows[0], "\n".join(f"{r['joint']}.{reg_name} = {r['text']}" for r in rows))
    return 0


def _dump(args: argparse.Namespace) -> int:
    arm = open_arm(args)
    try:
        out = {}
        for name in _targets(arm, args.joint):
            out[name] = regview.table({r.name: arm.read(name, r.name) for r in REGISTERS})
    finally:
        arm.close()
    lines = []
    for name, rows in out.items():
        lines.append(f"{name}:")
        lines += [f"  {r['address']:3d} {r['name']:20s} {r['value']:28s} {r['access']:2s} "
                  f"{'persistent' if r['persistent'] else ''}".rstrip() for r in rows]
    emit(args, out, "\n".join(lines))
    return 0


def _release(args: argparse.Namespace, register: str, value: int, joint: str | None, what: str) -> int:
    """Write ``register`` = ``value`` on the joints named, then say which are still blocked (exit 1 if any).
    Releasing re-arms a stopped joint: it takes the lease."""
    arm = open_arm(args, lease=True)
    try:
        names = _targets(arm, joint)
        for name in names:
            arm.write(name, register, value)
        left = blockers(arm, names)
    finally:
        arm.close()
    emit(args, {"joints": names, "done": what, "still_blocked": left},
         f"{what} on {', '.join(names)}: ready and unpowered (armbus torque on to move)"
         + "".join(f"\nstill blocked: {line}" for line in left))
    return 1 if left else 0


def cmd_clear(args: argparse.Namespace) -> int:
    return _release(args, "clear_flags", int(_LATCHED), args.joint, "latched flags cleared")


def cmd_estop(args: argparse.Namespace) -> int:
    if args.release:
        return _release(args, "estop", 0, None, "e-stop released")
    arm = open_arm(args, enumerate_chain=False)
    try:
        arm.estop()
    except PeerError as exc:  # the link gave up: nothing answers on this port
        raise ArmTimeoutError(f"no joint acknowledged the e-stop ({exc}): check power and the cable to joint 1, "
                              "and stop the arm by its hardware e-stop") from None
    finally:
        arm.close()
    emit(args, {"estop": "sent"}, "e-stop sent to every joint (armbus estop --release to release it)")
    return 0
