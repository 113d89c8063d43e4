"""The C control core's and board's numbers are the Python model's: every constant #defined in control.c and
sil_board.c equals its namesake in joints/control.py / joints/actuator.py, and fw_motor_params_default equals
ActuatorParams()."""

from __future__ import annotations

import ctypes
import re

from ctl_harness import FIRMWARE

from armbus.hil.firmware.cboard import MotorParams
from armbus.joints import actuator, control
from armbus.joints.actuator import ActuatorParams

_DEFINE = re.compile(r"^#define ([A-Z_]+) ([-+0-9.eE]+)$", re.M)


def defines(path: str) -> dict[str, float]:
    return {name: float(value) for name, value in _DEFINE.findall((FIRMWARE / path).read_text())}


def test_control_constants_are_the_python_ones() -> None:
    found = defines("src/control.c")
    assert len(found) >= 15
    for name, value in found.items():
        source = control if hasattr(control, name) else actuator
        assert getattr(source, name) == value, name


def test_board_constants_are_the_python_ones() -> None:
    found = defines("sil/sil_board.c")
    assert found == {"COPPER_ALPHA": actuator.COPPER_ALPHA}


def test_default_motor_params_are_actuator_params(ctl_lib: ctypes.CDLL) -> None:
    c = MotorParams()
    ctl_lib.fw_motor_params_default(ctypes.byref(c))
    want = MotorParams.from_params(ActuatorParams())
    names = [f[0] for f in MotorParams._fields_]
    assert [getattr(c, n) for n in names] == [getattr(want, n) for n in names]
