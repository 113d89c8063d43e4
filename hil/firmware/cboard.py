"""The simulator's motor board in C (``joints/firmware/sil/sil_board.c``), seen from Python through ctypes.

Theory of operation
-------------------
The C firmware's control core drives its motor through the HAL of ``fw_hal_motor.h``. In the simulator a
``sil_board_t`` sits behind that HAL in one of two modes:

* physics (:class:`CBoard` built without an actuator): the C port of :class:`armbus.joints.actuator.Actuator`,
  equal to it bit for bit (noise-free sensors). The board's state (``sil_board_state_t``) is a view into the C
  struct, so fault injection sets ``supply_voltage``, ``ambient_temperature``, ``load_torque``, ``jammed`` or the
  winding ``temperature`` in place, between two advances, as on an Actuator.
* callbacks (``CBoard(lib, actuator=...)``): every HAL call goes to a Python Actuator through ctypes callbacks, so
  its seeded sensor noise and everything ``armbus.hil.joint_faults`` does to an Actuator reach the C firmware.

:class:`MotorParams` is ``fw_motor_params_t`` built from :class:`~armbus.joints.actuator.ActuatorParams`;
:func:`bind` declares the board's C functions on a loaded SIL library (``ctypes.CDLL``). A CBoard owns its C
memory (a ctypes buffer, no heap in C) and keeps its callbacks alive as long as it lives; the HAL pointer
(:attr:`CBoard.hal`) is what the firmware's init takes.
"""

from __future__ import annotations

import ctypes
import dataclasses
from typing import Any

from armbus.bus.errors import UsageError
from armbus.joints.actuator import Actuator, ActuatorParams

_I64 = ctypes.c_int64
_DBL = ctypes.c_double
_VP = ctypes.c_void_p


class MotorParams(ctypes.Structure):
    """``fw_motor_params_t``: the fields of ActuatorParams, in its order."""

    _fields_ = [
        ("supply_voltage", _DBL), ("resistance", _DBL), ("inductance", _DBL), ("torque_constant", _DBL),
        ("gear_ratio", _DBL), ("gear_efficiency", _DBL), ("rotor_inertia", _DBL), ("load_inertia", _DBL),
        ("viscous_friction", _DBL), ("coulomb_friction", _DBL), ("hw_current_limit", _DBL),
        ("ambient_temperature", _DBL), ("thermal_resistance", _DBL), ("thermal_time_constant", _DBL),
        ("encoder_counts_per_motor_rev", _I64), ("current_noise", _DBL), ("temperature_noise", _DBL),
        ("voltage_noise", _DBL), ("encoder_noise_counts", _DBL), ("max_step_ns", _I64),
    ]

    @classmethod
    def from_params(cls, params: ActuatorParams) -> MotorParams:
        """The C struct of ``params`` (every field; a field missing on either side is a UsageError)."""
        names = [f.name for f in dataclasses.fields(params)]
        if names != [f[0] for f in cls._fields_]:
            raise UsageError("ActuatorParams and fw_motor_params_t differ: regenerate hil/firmware/cboard.py")
        return cls(*(getattr(params, n) for n in names))


class BoardState(ctypes.Structure):
    """``sil_board_state_t``: the Actuator's state fields."""

    _fields_ = [
        ("position", _DBL), ("velocity", _DBL), ("current", _DBL), ("temperature", _DBL), ("voltage_cmd", _DBL),
        ("supply_voltage", _DBL), ("ambient_temperature", _DBL), ("load_torque", _DBL), ("time", _I64),
        ("bridge_on", ctypes.c_int32), ("jammed", ctypes.c_int32),
    ]


ADVANCE = ctypes.CFUNCTYPE(None, _VP, _I64)
SET_VOLTAGE = ctypes.CFUNCTYPE(None, _VP, _DBL)
COAST = ctypes.CFUNCTYPE(None, _VP)
COUNTS = ctypes.CFUNCTYPE(_I64, _VP)
SENSE = ctypes.CFUNCTYPE(_DBL, _VP)


class HalMotor(ctypes.Structure):
    """``fw_hal_motor_t``: ctx, params and the seven calls of the motor HAL."""

    _fields_ = [
        ("ctx", _VP), ("params", ctypes.POINTER(MotorParams)), ("advance", ADVANCE), ("set_voltage", SET_VOLTAGE),
        ("coast", COAST), ("encoder_counts", COUNTS), ("sensed_current", SENSE), ("sensed_temperature", SENSE),
        ("sensed_voltage", SENSE),
    ]


def bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the argument and result types of the board's functions on ``lib``; returns ``lib``."""
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "sil_board_size": (ctypes.c_size_t, []),
        "sil_board_init": (None, [_VP, ctypes.POINTER(MotorParams), _I64, _DBL]),
        "sil_board_motor": (_VP, [_VP]),
        "sil_board_use_callbacks": (None, [_VP, ctypes.POINTER(HalMotor)]),
        "sil_board_use_physics": (None, [_VP]),
        "sil_board_state": (ctypes.POINTER(BoardState), [_VP]),
        "sil_board_advance": (None, [_VP, _I64]),
        "sil_board_set_voltage": (None, [_VP, _DBL]),
        "sil_board_coast": (None, [_VP]),
        "sil_board_encoder_counts": (_I64, [_VP]),
        "sil_board_sensed_current": (_DBL, [_VP]),
        "sil_board_sensed_temperature": (_DBL, [_VP]),
        "sil_board_sensed_voltage": (_DBL, [_VP]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def _callbacks(act: Actuator) -> HalMotor:
    """The HAL calls forwarded to ``act`` (the ctx is unused: each callback closes over the actuator)."""
    return HalMotor(
        None, None,
        ADVANCE(lambda _ctx, now: act.advance(now)),
        SET_VOLTAGE(lambda _ctx, v: act.set_voltage(v)),
        COAST(lambda _ctx: act.coast()),
        COUNTS(lambda _ctx: act.encoder_counts()),
        SENSE(lambda _ctx: act.sensed_current()),
        SENSE(lambda _ctx: act.sensed_temperature()),
        SENSE(lambda _ctx: act.sensed_voltage()),
    )


class CBoard:
    """One ``sil_board_t`` in memory owned here: the C physics, or (``actuator`` given) the HAL forwarded to a
    Python :class:`~armbus.joints.actuator.Actuator`, whose parameters the board then takes."""

    _STATE_FIELDS = frozenset(f[0] for f in BoardState._fields_)

    def __init__(self, lib: ctypes.CDLL, params: ActuatorParams | None = None, now: int = 0,
                 position: float = 0.0, actuator: Actuator | None = None) -> None:
        if actuator is not None:
            if params is not None and params != actuator.params:
                raise UsageError("CBoard: give params or an actuator (the actuator's params are used)")
            params = actuator.params
        self.params = params if params is not None else ActuatorParams()
        self.lib = lib
        words = (lib.sil_board_size() + 7) // 8
        self._mem = (ctypes.c_uint64 * words)()  # 8-byte aligned, freed with this object
        self.ptr = ctypes.cast(self._mem, _VP).value
        lib.sil_board_init(self.ptr, ctypes.byref(MotorParams.from_params(self.params)), now, position)
        self.state: BoardState = lib.sil_board_state(self.ptr).contents
        #: The HAL the firmware is given (``const fw_hal_motor_t *``); it never changes with the mode.
        self.hal: int = lib.sil_board_motor(self.ptr)
        self.actuator: Actuator | None = None
        self._cb: HalMotor | None = None
        if actuator is not None:
            self.use_actuator(actuator)

    def use_actuator(self, actuator: Actuator) -> None:
        """Callback mode: the HAL calls go to ``actuator`` from now on."""
        self._cb = _callbacks(actuator)
        self.actuator = actuator
        self.lib.sil_board_use_callbacks(self.ptr, ctypes.byref(self._cb))

    def use_physics(self) -> None:
        """Physics mode: the C model answers the HAL again (its state as it was left)."""
        self.lib.sil_board_use_physics(self.ptr)
        self.actuator = None

    # --- the C physics, called directly (tests compare it with Actuator) --------------------------------
    def advance(self, now: int) -> None:
        self.lib.sil_board_advance(self.ptr, now)

    def set_voltage(self, volts: float) -> None:
        self.lib.sil_board_set_voltage(self.ptr, volts)

    def coast(self) -> None:
        self.lib.sil_board_coast(self.ptr)

    def encoder_counts(self) -> int:
        return int(self.lib.sil_board_encoder_counts(self.ptr))

    def sensed_current(self) -> float:
        return float(self.lib.sil_board_sensed_current(self.ptr))

    def sensed_temperature(self) -> float:
        return float(self.lib.sil_board_sensed_temperature(self.ptr))

    def sensed_voltage(self) -> float:
        return float(self.lib.sil_board_sensed_voltage(self.ptr))

    # --- the Actuator's public fields (fault injection) -----------------------------------------------
    @property
    def noisy(self) -> bool:
        """The C physics has noise-free sensors (the callback mode has the Actuator's)."""
        return False

    def set_noise(self, **_levels: Any) -> None:
        """Sensor noise needs the Python Actuator's seeded stream: a UsageError that says how to get it."""
        raise UsageError("the C board's sensors are noise-free: put a seeded Actuator behind it "
                         "(CBoard(lib, actuator=Actuator(seed=...)))")

    def __getattr__(self, name: str) -> Any:
        if name in CBoard._STATE_FIELDS:
            value = getattr(self.state, name)
            return bool(value) if name in ("bridge_on", "jammed") else value
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in CBoard._STATE_FIELDS:
            setattr(self.state, name, int(value) if name in ("bridge_on", "jammed", "time") else float(value))
        else:
            object.__setattr__(self, name, value)
