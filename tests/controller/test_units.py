"""Unit parsing and SI <-> wire conversions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from armbus.bus.errors import UsageError
from armbus.controller import units
from armbus.controller.units import Dimension, parse_quantity


@pytest.mark.parametrize(
    ("text", "dimension", "expected"),
    [
        ("90deg", Dimension.ANGLE, math.pi / 2),
        ("1.2rad", Dimension.ANGLE, 1.2),
        ("-30 deg", Dimension.ANGLE, -math.pi / 6),
        ("  +45 DEG ", Dimension.ANGLE, math.pi / 4),
        ("0.5rev", Dimension.ANGLE, math.pi),
        ("0.5A", Dimension.CURRENT, 0.5),
        ("500mA", Dimension.CURRENT, 0.5),
        ("2rad/s", Dimension.ANGULAR_VELOCITY, 2.0),
        ("90deg/s", Dimension.ANGULAR_VELOCITY, math.pi / 2),
        ("60 rpm", Dimension.ANGULAR_VELOCITY, 2 * math.pi),
        ("1e3 mrad", Dimension.ANGLE, 1.0),
        (".5 A", Dimension.CURRENT, 0.5),
        ("70C", Dimension.TEMPERATURE, 70.0),
        ("12000mV", Dimension.VOLTAGE, 12.0),
    ],
)
def test_parse_quantity_to_si(text: str, dimension: Dimension, expected: float) -> None:
    assert parse_quantity(text, dimension) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "dimension", "fragment"),
    [
        ("90", Dimension.ANGLE, "no unit"),
        ("90 furlongs", Dimension.ANGLE, "unknown angle unit 'furlongs'"),
        ("2deg/s", Dimension.ANGLE, "unknown angle unit"),
        ("90deg", Dimension.ANGULAR_VELOCITY, "unknown angular velocity unit"),
        ("fast", Dimension.ANGULAR_VELOCITY, "is not a valid angular velocity"),
        ("", Dimension.CURRENT, "is not a valid current"),
        ("nan rad", Dimension.ANGLE, "is not a valid angle"),
        ("1.2.3rad", Dimension.ANGLE, "unknown angle unit"),
    ],
)
def test_parse_errors_name_the_text(text: str, dimension: Dimension, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_quantity(text, dimension)
    message = str(info.value)
    assert repr(text) in message
    assert fragment in message
    assert "accepted" in message or "expected" in message


def test_bare_number_allowed_when_asked() -> None:
    assert parse_quantity("0.25", Dimension.CURRENT, bare_is_si=True) == 0.25


def test_shortcuts() -> None:
    assert units.parse_angle("180deg") == pytest.approx(math.pi)
    assert units.parse_velocity("1rad/s") == 1.0
    assert units.parse_current("250mA") == pytest.approx(0.25)


@given(st.floats(min_value=-2000.0, max_value=2000.0))
def test_position_round_trip_within_half_a_microradian(rad: float) -> None:
    wire = units.to_wire_position(rad)
    assert isinstance(wire, int)
    assert abs(units.from_wire_position(wire) - rad) <= 0.5e-6 + 1e-12


@given(st.integers(min_value=units.I16_MIN, max_value=units.I16_MAX))
def test_current_wire_round_trip_is_exact(ma: int) -> None:
    assert units.to_wire_current(units.from_wire_current(ma)) == ma


def test_wire_scalings() -> None:
    assert units.to_wire_position(1.5) == 1_500_000
    assert units.to_wire_velocity(-0.25) == -250_000
    assert units.to_wire_current(0.5) == 500
    assert units.to_wire_temperature(36.6) == 366
    assert units.to_wire_voltage(12.0) == 12_000
    assert units.from_wire_temperature(366) == pytest.approx(36.6)
    assert units.from_wire_voltage(11_950) == pytest.approx(11.95)


@pytest.mark.parametrize(
    ("fn", "value", "name"),
    [
        (units.to_wire_position, 3000.0, "position"),
        (units.to_wire_current, 40.0, "current"),
        (units.to_wire_voltage, -1.0, "voltage"),
        (units.to_wire_velocity, math.inf, "velocity"),
        (units.to_wire_position, math.nan, "position"),
    ],
)
def test_out_of_range_is_a_usage_error(fn, value: float, name: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match=name):
        fn(value)
