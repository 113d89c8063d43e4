"""Leave an arm as it was found: what the contract suite does around every test on a real arm.

Theory of operation
-------------------
A test suite that moves a real arm must not walk it away a little further on each run, nor leave a joint latched
in WATCHDOG for the next run to trip over with nothing pointing at it. :func:`preflight` reads every joint's status
before a test and refuses to start when one is latched (e-stopped, stopped by its watchdog, faulted), naming the
joint, the flags and the fault, with the way out. :func:`snapshot` records what a test may change: each joint's
position, torque, watchdog and telemetry periods. :func:`restore` puts them back after the test: it releases
stops the test left, clears the flags it latched, brings every joint that moved more than
:data:`POSITION_TOLERANCE_RAD` back to where it was (torque on, a goal, wait), and restores the registers and the
torque state. What it could not restore is returned, so the caller can say so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from armbus.bus.wire import FaultCode, StatusFlag

#: A joint that ended a test further than this from where it started is moved back (0.01 rad = 0.57 deg).
POSITION_TOLERANCE_RAD = 0.01
#: How long a joint may take to get back (s): a few small test moves at the default limits.
RETURN_TIMEOUT_S = 5.0
_LATCHED = StatusFlag.ESTOPPED | StatusFlag.WATCHDOG | StatusFlag.FAULT
_REGISTERS = ("watchdog_period", "state_period")


@dataclass(frozen=True)
class JointSnapshot:
    position: float  # rad, calibrated
    torque: bool
    registers: dict[str, int]


def preflight(arm: Any) -> list[str]:
    """One line per joint that is latched before the test, with the way out (empty: all clear)."""
    out = []
    for name, s in arm.read_states().items():
        latched = StatusFlag(s.status) & _LATCHED
        if latched:
            code = arm.read(name, "fault_code")
            fault = FaultCode(code).name if code in FaultCode._value2member_map_ else str(code)
            out.append(f"{name} is latched in {latched} (fault_code {fault}) before the test: clear it first "
                       f"(armbus clear {name}, or armbus estop --release)")
    return out


def snapshot(arm: Any) -> dict[str, JointSnapshot]:
    states = arm.read_states()
    return {name: JointSnapshot(s.position, bool(s.status & StatusFlag.TORQUE_ON),
                                {r: arm.read(name, r) for r in _REGISTERS})
            for name, s in states.items()}


def restore(arm: Any, before: dict[str, JointSnapshot]) -> list[str]:
    """Put the arm back as ``before`` says; returns what could not be restored (empty: all of it)."""
    problems: list[str] = []
    arm.set_heartbeat(None)
    for name in before:
        arm.write(name, "watchdog_period", 0)  # no watchdog trip while joints are moved back
        if arm.read(name, "estop"):
            arm.write(name, "estop", 0)
        arm.write(name, "clear_flags", int(_LATCHED))
    states = arm.read_states()
    away = [n for n, snap in before.items()
            if n in states and abs(states[n].position - snap.position) > POSITION_TOLERANCE_RAD]
    for name in away:
        arm.torque(True, name)
        arm.set_goal(name, position=before[name].position)
    end = time.monotonic() + RETURN_TIMEOUT_S
    while away and time.monotonic() < end:
        time.sleep(0.05)
        states = arm.read_states()
        away = [n for n in away if abs(states[n].position - before[n].position) > POSITION_TOLERANCE_RAD]
    problems += [f"{n} did not get back to {before[n].position:.4f} rad (at {states[n].position:.4f} rad)"
                 for n in away]
    for name, snap in before.items():
        arm.torque(snap.torque, name)
        for reg, value in snap.registers.items():
            arm.write(name, reg, value)
    return problems
