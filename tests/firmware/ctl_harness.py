"""Test harness: the C control core (joints/firmware/src/control.c) and the C board through ctypes, side by side
with the Python ControlCore and Actuator, driven by one script of timed actions and compared exactly.

A :class:`Pair` holds both joints. Each action runs on both; after each, :meth:`Pair.check` compares the state
snapshots, the live flags, torque, the sample instant, the command ring marks, the fault events drained since
the last check and the actuator's state (positions, currents and temperatures as doubles, bit for bit).
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

from armbus.bus.wire import FaultCode
from armbus.hil.firmware.cboard import CBoard, bind
from armbus.joints.actuator import Actuator, ActuatorParams
from armbus.joints.control import Command, CommandKind, ControlCore, FaultEvent
from armbus.joints.registers import REGISTERS, RegisterFile

FIRMWARE = Path(__file__).resolve().parents[2] / "joints" / "firmware"
MS = 1_000_000
REG_ID = {r.name: k for k, r in enumerate(REGISTERS)}
REG_TABLE_SIZE = REGISTERS[-1].end


class CState(ctypes.Structure):
    """``ctl_state_t``."""

    _fields_ = [("position", ctypes.c_int32), ("velocity", ctypes.c_int32), ("current", ctypes.c_int16),
                ("temperature", ctypes.c_int16), ("voltage", ctypes.c_uint16), ("status", ctypes.c_uint8)]


class CCommand(ctypes.Structure):
    """``ctl_command_t``."""

    _fields_ = [("kind", ctypes.c_uint8), ("a", ctypes.c_int32), ("b", ctypes.c_int32)]


class CEvent(ctypes.Structure):
    """``ctl_event_t``."""

    _fields_ = [("code", ctypes.c_uint8), ("active", ctypes.c_uint8), ("value", ctypes.c_int32)]


_VP, _I64 = ctypes.c_void_p, ctypes.c_int64
TICK_HOOK = ctypes.CFUNCTYPE(None, _VP, _I64)
LATCH_HOOK = ctypes.CFUNCTYPE(None, _VP, _I64, ctypes.c_uint16)


def load(path: Path) -> ctypes.CDLL:
    lib = bind(ctypes.CDLL(str(path)))
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "sil_ctl_size": (ctypes.c_size_t, []),
        "ctl_init": (None, [_VP, _VP, _VP, _I64, _I64]),
        "ctl_next_deadline": (_I64, [_VP]),
        "ctl_handle_timer": (None, [_VP, _I64]),
        "ctl_estop": (None, [_VP, _I64]),
        "ctl_post_goal": (None, [_VP, ctypes.c_uint8, ctypes.c_int32, _I64, ctypes.c_uint16]),
        "ctl_command": (ctypes.c_bool, [_VP, ctypes.POINTER(CCommand)]),
        "ctl_next_event": (ctypes.c_bool, [_VP, ctypes.POINTER(CEvent)]),
        "ctl_set_tick_hook": (None, [_VP, TICK_HOOK, _VP]),
        "ctl_set_latch_hook": (None, [_VP, LATCH_HOOK, _VP]),
        "ctl_state": (ctypes.POINTER(CState), [_VP]),
        "ctl_flags": (ctypes.c_uint8, [_VP]),
        "ctl_torque": (ctypes.c_bool, [_VP]),
        "ctl_sampled_at": (_I64, [_VP]),
        "ctl_commands_posted": (ctypes.c_uint32, [_VP]),
        "ctl_commands_taken": (ctypes.c_uint32, [_VP]),
        "ctl_commands_len": (ctypes.c_uint32, [_VP]),
        "ctl_commands_refused": (ctypes.c_uint32, [_VP]),
        "ctl_events_refused": (ctypes.c_uint32, [_VP]),
        "ctl_goals_latched": (ctypes.c_uint32, [_VP]),
        "ctl_stale_releases": (ctypes.c_uint32, [_VP]),
        "fw_regs_init": (None, [_VP, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint8, ctypes.c_uint8]),
        "fw_regs_set": (None, [_VP, ctypes.c_uint, ctypes.c_int64]),
        "fw_regs_get": (ctypes.c_int64, [_VP, ctypes.c_uint]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


class CCore:
    """The C control core with its register file and board (physics, or ``actuator`` behind callbacks)."""

    def __init__(self, lib: ctypes.CDLL, params: ActuatorParams | None = None, period_ns: int = MS,
                 now: int = 0, actuator: Actuator | None = None, regs: dict[str, int] | None = None) -> None:
        self.lib = lib
        self.board = CBoard(lib, params, now, actuator=actuator)
        self._regs = (ctypes.c_uint64 * ((REG_TABLE_SIZE + 7) // 8))()
        self.regs = ctypes.cast(self._regs, _VP).value
        lib.fw_regs_init(self.regs, 0, 0, 1, 0)
        for name, value in (regs or {}).items():
            lib.fw_regs_set(self.regs, REG_ID[name], value)
        self._mem = (ctypes.c_uint64 * ((lib.sil_ctl_size() + 7) // 8))()
        self.ptr = ctypes.cast(self._mem, _VP).value
        lib.ctl_init(self.ptr, self.regs, self.board.hal, period_ns, now)
        self.latched: list[tuple[int, int]] = []
        self.ticks: list[int] = []
        self._hooks = (TICK_HOOK(lambda _c, t: self.ticks.append(t)),
                       LATCH_HOOK(lambda _c, at, tag: self.latched.append((at, tag))))
        lib.ctl_set_tick_hook(self.ptr, self._hooks[0], None)
        lib.ctl_set_latch_hook(self.ptr, self._hooks[1], None)

    def set_reg(self, name: str, value: int) -> None:
        self.lib.fw_regs_set(self.regs, REG_ID[name], value)

    def command(self, kind: int, a: int = 0, b: int = 0) -> bool:
        return bool(self.lib.ctl_command(self.ptr, ctypes.byref(CCommand(kind, a, b))))

    def events(self) -> list[FaultEvent]:
        out, ev = [], CEvent()
        while self.lib.ctl_next_event(self.ptr, ctypes.byref(ev)):
            out.append(FaultEvent(FaultCode(ev.code), bool(ev.active), ev.value))
        return out

    def state(self) -> tuple[int, ...]:
        s = self.lib.ctl_state(self.ptr).contents
        return (s.position, s.velocity, s.current, s.temperature, s.voltage, s.status)


class Pair:
    """The Python and the C control core, each on its own actuator, stepped together.

    ``noise_seed`` given: both sides run on Python Actuators with that noise seed (the C core through the
    board's callbacks), so noise and fault injection are the same on both; else the C core runs on the C board.
    """

    def __init__(self, lib: ctypes.CDLL, params: ActuatorParams | None = None, noise_seed: int | None = None,
                 period_ns: int = MS, **regs: int) -> None:
        self.act = Actuator(params, seed=noise_seed)
        self.regs = RegisterFile()
        for name, value in regs.items():
            self.regs.set(name, value)
        self.py = ControlCore(self.act, self.regs, period_ns, 0)
        self.py_latched: list[tuple[int, int]] = []
        self.py_ticks: list[int] = []
        self.py.latch_hooks.append(lambda at, tag: self.py_latched.append((at, tag)))
        self.py.tick_hooks.append(self.py_ticks.append)
        self.c_act = Actuator(params, seed=noise_seed) if noise_seed is not None else None
        self.c = CCore(lib, params, period_ns, 0, actuator=self.c_act, regs=regs)
        self.now = 0
        self.checks = 0
        self.events: list[FaultEvent] = []  # every event, as both sides reported it
        self.check()

    # --- actions on both sides ---------------------------------------------------------------------------
    def command(self, kind: CommandKind, a: int = 0, b: int = 0) -> bool:
        ok_py = self.py.commands.put(Command(kind, a, b))
        ok_c = self.c.command(int(kind), a, b)
        assert ok_py == ok_c, (kind, a, b)
        return ok_py

    def estop(self, at: int) -> None:
        self.now = at
        self.py.estop(at)
        self.c.lib.ctl_estop(self.c.ptr, at)
        self.check()

    def post_goal(self, mode: int, value: int, at: int, tag: int) -> None:
        self.py.post_goal(mode, value, at, tag)
        self.c.lib.ctl_post_goal(self.c.ptr, mode, value, at, tag)

    def set_reg(self, name: str, value: int) -> None:
        self.regs.set(name, value)
        self.c.set_reg(name, value)

    def inject(self, **fields: Any) -> None:
        """Set Actuator fields (load_torque, jammed, supply_voltage, ambient_temperature, temperature) on both."""
        for name, value in fields.items():
            setattr(self.act, name, value)
            setattr(self.c_act if self.c_act is not None else self.c.board, name, value)

    def timer(self, now: int, check: bool = True) -> None:
        """handle_timer at ``now`` on both (when due), then compare (``check``: else the events pile up)."""
        self.now = now
        d_py, d_c = self.py.next_deadline(), self.c.lib.ctl_next_deadline(self.c.ptr)
        assert d_py == d_c, (now, d_py, d_c)
        if d_py <= now:
            self.py.handle_timer(now)
            self.c.lib.ctl_handle_timer(self.c.ptr, now)
        if check:
            self.check()

    def run(self, ms: float, step_ns: int = MS, check: bool = True) -> None:
        """Step both by ``step_ns`` for ``ms`` milliseconds, comparing after every step (``check``: else only the
        ticks run, and the fault events wait in their rings: a full ring refuses more)."""
        end = self.now + int(ms * MS)
        while self.now < end:
            self.timer(min(self.now + step_ns, end), check)

    # --- the comparison ------------------------------------------------------------------------------------
    def check(self) -> None:
        py, c = self.py, self.c
        where = f"t={self.now}"
        assert tuple(py.state) == c.state(), (where, tuple(py.state), c.state())
        assert py.flags == c.lib.ctl_flags(c.ptr), (where, py.flags, c.lib.ctl_flags(c.ptr))
        assert py.torque == c.lib.ctl_torque(c.ptr), where
        assert py.sampled_at == c.lib.ctl_sampled_at(c.ptr), where
        assert (py.commands.posted, py.commands.taken, py.commands.refused) == (
            c.lib.ctl_commands_posted(c.ptr), c.lib.ctl_commands_taken(c.ptr), c.lib.ctl_commands_refused(c.ptr)), where
        assert py.events.refused == c.lib.ctl_events_refused(c.ptr), where
        assert (py.goals_latched, py.stale_releases) == (
            c.lib.ctl_goals_latched(c.ptr), c.lib.ctl_stale_releases(c.ptr)), where
        ev_py, ev_c = [], c.events()
        while (ev := py.events.get()) is not None:
            ev_py.append(FaultEvent(FaultCode(ev.code), bool(ev.active), ev.value))
        assert ev_py == ev_c, (where, ev_py, ev_c)
        self.events += ev_py
        a = self.act
        b: Any = self.c_act if self.c_act is not None else c.board
        mine = (a.position, a.velocity, a.current, a.temperature, a.voltage_cmd, bool(a.bridge_on), a.time)
        theirs = (b.position, b.velocity, b.current, b.temperature, b.voltage_cmd, bool(b.bridge_on), b.time)
        assert mine == theirs, (where, mine, theirs)
        assert self.py_latched == c.latched and self.py_ticks == c.ticks, where
        self.checks += 1
