"""Ticks per second of the C control core on the C board against the Python ControlCore on its Actuator (one
handle_timer call runs every tick of the span on each side), printed; the C port must be at least 10x faster."""

from __future__ import annotations

import ctypes
import time

from ctl_harness import MS, TICK_HOOK, CCore

from armbus.bus.wire import GoalMode
from armbus.joints.actuator import Actuator
from armbus.joints.control import Command, CommandKind, ControlCore
from armbus.joints.registers import RegisterFile


def rate(run: object, ticks: int) -> float:
    t0 = time.perf_counter()
    run(ticks)  # type: ignore[operator]
    return ticks / (time.perf_counter() - t0)


def test_c_control_core_ticks_faster(ctl_lib: ctypes.CDLL) -> None:
    c = CCore(ctl_lib)
    ctl_lib.ctl_set_tick_hook(c.ptr, TICK_HOOK(), None)  # no hook: the bare loop
    c.command(int(CommandKind.TORQUE), 1)
    c.command(int(CommandKind.SET_GOAL), int(GoalMode.VELOCITY), 1_000_000)
    py = ControlCore(Actuator(), RegisterFile())
    py.commands.put(Command(CommandKind.TORQUE, 1))
    py.commands.put(Command(CommandKind.SET_GOAL, GoalMode.VELOCITY, 1_000_000))
    c_rate = rate(lambda n: ctl_lib.ctl_handle_timer(c.ptr, n * MS), 200_000)
    py_rate = rate(lambda n: py.handle_timer(n * MS), 20_000)
    print(f"\ncontrol core + actuator, ticks/s: C {c_rate:,.0f}, Python {py_rate:,.0f}, x{c_rate / py_rate:.0f}")
    assert ctl_lib.ctl_sampled_at(c.ptr) == 200_000 * MS and py.sampled_at == 20_000 * MS  # every tick ran
    assert c.board.position > 2.5 and py.act.position > 2.5  # moved, up to the position limit
    assert c_rate > 10 * py_rate
