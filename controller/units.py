"""SI units at the API, integer wire units on the bus: every conversion lives here.

Theory of operation
-------------------
The host API speaks SI: radians, radians per second, amperes, degrees Celsius, volts. The wire speaks integers
(bus/wire.py, contracts): microradians, microradians per second, milliamperes, tenths of a degree Celsius and
millivolts. ``to_wire_*`` round to the nearest integer and check the field's range (a value that does not fit
raises :class:`armbus.bus.errors.UsageError` naming the quantity, never wraps); ``from_wire_*`` are exact scalings.

The command line and config files carry quantities as text with a unit ("90deg", "-30 deg", "0.5A", "500mA",
"2rad/s", "90deg/s"). :func:`parse_quantity` turns such text into an SI float for one dimension, and rejects a
missing or wrong unit with a message that quotes the text and lists the accepted units: a bare "90" is refused
for angles by default, because degrees-versus-radians is the classic way to send an arm somewhere unexpected.
"""

from __future__ import annotations

import enum
import math
import re

from armbus.bus.errors import UsageError

# Scale factors between SI and wire units (contracts.md, "Payloads").
URAD_PER_RAD = 1_000_000  # position: i32 microradians
MA_PER_A = 1_000  # current: mA
DECIDEGC_PER_DEGC = 10  # temperature: i16 tenths of a degree Celsius
MV_PER_V = 1_000  # voltage: u16 millivolts

# Integer ranges of the wire fields that carry these quantities (contracts.md).
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
I16_MIN, I16_MAX = -(2**15), 2**15 - 1
U16_MAX = 2**16 - 1


class Dimension(enum.Enum):
    """What a parsed quantity measures; each has an SI unit the parser converts to."""

    ANGLE = "angle"  # rad
    ANGULAR_VELOCITY = "angular velocity"  # rad/s
    ANGULAR_ACCELERATION = "angular acceleration"  # rad/s^2
    CURRENT = "current"  # A
    TEMPERATURE = "temperature"  # degC
    VOLTAGE = "voltage"  # V


#: Accepted unit spellings (lower case, spaces removed) -> factor to SI.
UNITS: dict[Dimension, dict[str, float]] = {
    Dimension.ANGLE: {
        "rad": 1.0,
        "mrad": 1e-3,
        "urad": 1e-6,
        "deg": math.pi / 180.0,
        "°": math.pi / 180.0,
        "rev": 2.0 * math.pi,
    },
    Dimension.ANGULAR_VELOCITY: {
        "rad/s": 1.0,
        "mrad/s": 1e-3,
        "urad/s": 1e-6,
        "deg/s": math.pi / 180.0,
        "°/s": math.pi / 180.0,
        "rpm": 2.0 * math.pi / 60.0,
    },
    Dimension.ANGULAR_ACCELERATION: {
        "rad/s^2": 1.0,
        "rad/s2": 1.0,
        "deg/s^2": math.pi / 180.0,
        "deg/s2": math.pi / 180.0,
    },
    Dimension.CURRENT: {"a": 1.0, "ma": 1e-3},
    Dimension.TEMPERATURE: {"c": 1.0, "degc": 1.0, "°c": 1.0},
    Dimension.VOLTAGE: {"v": 1.0, "mv": 1e-3},
}

SI_UNIT = {
    Dimension.ANGLE: "rad",
    Dimension.ANGULAR_VELOCITY: "rad/s",
    Dimension.ANGULAR_ACCELERATION: "rad/s^2",
    Dimension.CURRENT: "A",
    Dimension.TEMPERATURE: "degC",
    Dimension.VOLTAGE: "V",
}

_QUANTITY = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$")


def parse_quantity(text: str, dimension: Dimension, *, bare_is_si: bool = False) -> float:
    """Parse ``text`` such as ``"90deg"`` or ``"500 mA"`` into an SI float for ``dimension``.

    A number without a unit is refused unless ``bare_is_si`` is true (then it is taken in the SI unit).
    Raises :class:`UsageError` quoting ``text`` and listing the accepted units.
    """
    accepted = ", ".join(UNITS[dimension])
    match = _QUANTITY.match(text)
    if match is None:
        raise UsageError(
            f"{text!r} is not a valid {dimension.value}: expected a number and a unit ({accepted})"
        )
    number, unit = match.group(1), match.group(2).replace(" ", "").lower()
    value = float(number)
    if not unit:
        if bare_is_si:
            return value
        raise UsageError(
            f"{text!r} has no unit: write the {dimension.value} with a unit, "
            f"e.g. {number}{_example(dimension)} (accepted: {accepted})"
        )
    factor = UNITS[dimension].get(unit)
    if factor is None:
        raise UsageError(
            f"{text!r}: unknown {dimension.value} unit {match.group(2)!r} (accepted: {accepted})"
        )
    return value * factor


def _example(dimension: Dimension) -> str:
    return {
        Dimension.ANGLE: "deg",
        Dimension.ANGULAR_VELOCITY: "deg/s",
        Dimension.ANGULAR_ACCELERATION: "deg/s^2",
        Dimension.CURRENT: "mA",
        Dimension.TEMPERATURE: "C",
        Dimension.VOLTAGE: "V",
    }[dimension]


def parse_angle(text: str) -> float:
    """``"90deg"`` -> 1.5707963... rad."""
    return parse_quantity(text, Dimension.ANGLE)


def parse_velocity(text: str) -> float:
    """``"90deg/s"`` -> 1.5707963... rad/s."""
    return parse_quantity(text, Dimension.ANGULAR_VELOCITY)


def parse_current(text: str) -> float:
    """``"500mA"`` -> 0.5 A."""
    return parse_quantity(text, Dimension.CURRENT)


def _to_int(value: float, scale: int, lo: int, hi: int, what: str, unit: str) -> int:
    if not math.isfinite(value):
        raise UsageError(f"{what} must be a finite number, got {value!r}")
    scaled = round(value * scale)
    if not lo <= scaled <= hi:
        raise UsageError(
            f"{what} {value!r} {unit} does not fit the wire field ({lo / scale:g}..{hi / scale:g} {unit})"
        )
    return scaled


def to_wire_position(rad: float) -> int:
    """rad -> i32 microradians."""
    return _to_int(rad, URAD_PER_RAD, I32_MIN, I32_MAX, "position", "rad")


def to_wire_velocity(rad_s: float) -> int:
    """rad/s -> i32 microradians per second."""
    return _to_int(rad_s, URAD_PER_RAD, I32_MIN, I32_MAX, "velocity", "rad/s")


def to_wire_current(amps: float) -> int:
    """A -> mA, checked against the i16 of STATE reports (the tightest field that carries a current)."""
    return _to_int(amps, MA_PER_A, I16_MIN, I16_MAX, "current", "A")


def to_wire_temperature(degc: float) -> int:
    """degC -> i16 tenths of a degree."""
    return _to_int(degc, DECIDEGC_PER_DEGC, I16_MIN, I16_MAX, "temperature", "degC")


def to_wire_voltage(volts: float) -> int:
    """V -> u16 millivolts."""
    return _to_int(volts, MV_PER_V, 0, U16_MAX, "voltage", "V")


def from_wire_position(urad: int) -> float:
    return urad / URAD_PER_RAD


def from_wire_velocity(urad_s: int) -> float:
    return urad_s / URAD_PER_RAD


def from_wire_current(ma: int) -> float:
    return ma / MA_PER_A


def from_wire_temperature(decidegc: int) -> float:
    return decidegc / DECIDEGC_PER_DEGC


def from_wire_voltage(mv: int) -> float:
    return mv / MV_PER_V
