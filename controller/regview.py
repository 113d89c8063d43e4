"""Registers as a person reads them: scaled values with units, enums and flags by name, and the reverse.

Theory of operation
-------------------
The register table (:mod:`armbus.joints.registers`) stores wire units: microradians, milliamperes, tenths of a
degree Celsius, flag bits. :func:`show` turns a register's raw value into what a servo wizard's control table
shows (``25.1 degC``, ``12.50 deg (0.2182 rad)``, ``ESTOP (7)``, ``TORQUE_ON|MOVING``), and :func:`parse` takes
what a person types for a write: a quantity with its unit (``90deg``, ``1.5A``, ``80degC``, ``200ms``), a name or
``|``-joined names for enums and flags (``REBOOTED``, ``FAULT|WATCHDOG``, ``velocity``), or a bare integer in the
register's own unit (what the wire carries). Anything else is a :class:`~armbus.bus.errors.UsageError` that says
what the register takes. :func:`table` is a whole joint's table for ``armbus reg dump``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from armbus.bus.errors import UsageError
from armbus.bus.wire import FaultCode, GoalMode, StatusFlag
from armbus.controller.units import Dimension, parse_quantity
from armbus.joints.registers import BY_NAME, REGISTERS, RateCommand, RateState, Register


@dataclass(frozen=True)
class Scale:
    """A register unit as a quantity: its dimension, SI per register unit, and how to show it."""

    dimension: Dimension
    si_per_unit: float
    show_unit: str
    show_per_si: float
    digits: int


#: Register units that are quantities (the others are plain integers, enums or flags).
SCALES: dict[str, Scale] = {
    "urad": Scale(Dimension.ANGLE, 1e-6, "deg", 180.0 / math.pi, 2),
    "urad/s": Scale(Dimension.ANGULAR_VELOCITY, 1e-6, "deg/s", 180.0 / math.pi, 2),
    "mA": Scale(Dimension.CURRENT, 1e-3, "A", 1.0, 3),
    "0.1 degC": Scale(Dimension.TEMPERATURE, 0.1, "degC", 1.0, 1),
    "mV": Scale(Dimension.VOLTAGE, 1e-3, "V", 1.0, 2),
}
#: Register units that name an enumeration or a set of flags.
ENUMS: dict[str, type[enum.IntEnum] | type[enum.IntFlag]] = {
    "StatusFlag": StatusFlag, "FaultCode": FaultCode, "GoalMode": GoalMode, "RateCommand": RateCommand,
    "RateState": RateState,
}
_TIME_UNITS = {"ms": 1, "s": 1000}


def register(name: str) -> Register:
    try:
        return BY_NAME[name]
    except KeyError:
        raise UsageError(f"unknown register {name!r} (armbus reg list shows them)") from None


def show(name: str, raw: int) -> str:
    """The raw value of register ``name`` as a person reads it."""
    reg = register(name)
    scale = SCALES.get(reg.unit)
    if scale is not None:
        si = raw * scale.si_per_unit
        text = f"{si * scale.show_per_si:.{scale.digits}f} {scale.show_unit}"
        if scale.dimension is Dimension.ANGLE:
            text += f" ({si:.4f} rad)"
        return text
    kind = ENUMS.get(reg.unit)
    if kind is StatusFlag:
        return f"{StatusFlag(raw)} (0x{raw:02x})"
    if kind is not None:
        if raw in kind._value2member_map_:
            return f"{kind(raw).name} ({raw})"
        return "none (0)" if raw == 0 and kind is FaultCode else f"{raw}"
    return f"{raw} {reg.unit}".rstrip()


def parse(name: str, text: str) -> int:
    """What a person typed for register ``name``, in the register's wire units (checked against its range)."""
    reg = register(name)
    text = text.strip()
    value = _parse(reg, text)
    if not reg.minimum <= value <= reg.maximum:
        raise UsageError(f"{text!r} for {name} is {show(name, value)}, outside its range "
                         f"{show(name, reg.minimum)} .. {show(name, reg.maximum)}")
    return value


def _parse(reg: Register, text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        pass
    scale = SCALES.get(reg.unit)
    if scale is not None:
        try:
            si = parse_quantity(text, scale.dimension)
        except UsageError as exc:
            raise UsageError(f"{reg.name}: {exc}; or an integer in {reg.unit}") from None
        return round(si / scale.si_per_unit)
    kind = ENUMS.get(reg.unit)
    if kind is not None:
        total = 0
        for part in text.replace(",", "|").split("|"):
            key = part.strip().upper()
            members: Mapping[str, enum.Enum] = kind.__members__
            if key not in members:
                names = ", ".join(m for m in members if m != "NONE")
                raise UsageError(f"{reg.name} takes {names} (or an integer), got {part.strip()!r}")
            total |= int(members[key].value)
        return total
    if reg.unit == "ms":
        for unit, factor in _TIME_UNITS.items():
            if text.endswith(unit):
                try:
                    return round(float(text[:-len(unit)]) * factor)
                except ValueError:
                    break
        raise UsageError(f"{reg.name} takes a time such as 200ms or 0.5s (or an integer in ms), got {text!r}")
    raise UsageError(f"{reg.name} takes an integer{' in ' + reg.unit if reg.unit else ''}, got {text!r}")


def table(values: Mapping[str, int]) -> list[dict[str, object]]:
    """Rows of a joint's whole register table (``values`` by register name), in address order."""
    return [{"address": r.address, "name": r.name, "raw": values[r.name], "value": show(r.name, values[r.name]),
             "access": r.access.name, "persistent": r.persistent, "meaning": r.doc}
            for r in REGISTERS if r.name in values]
