"""Arm configuration: one TOML file naming the port, the joints and their limits.

Theory of operation
-------------------
A config file (example: docs/examples/arm.toml) has a ``[bus]`` table and one ``[joints.<name>]`` table per
joint. Quantities are either bare numbers in SI units (rad, rad/s, rad/s^2, A) or strings with a unit
parsed by :mod:`armbus.controller.units` ("90deg", "1.5A", "180deg/s"). :func:`load_config` reads and validates the
whole file and returns a frozen :class:`ArmConfig`; every problem raises :class:`armbus.bus.errors.ConfigError`
naming the file, the key and what to do, and unknown keys are refused (a misspelt limit must not be silently
ignored).

Calibration: a joint's ``offset`` is the raw encoder position (rad) at the joint's zero, so
``raw = position + offset``. Limits are in calibrated coordinates. :meth:`JointConfig.to_raw` and
:meth:`JointConfig.from_raw` are the only places that apply the offset.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from armbus.bus.errors import ConfigError, UsageError
from armbus.bus.wire import DEFAULT_BAUD, Address
from armbus.controller.units import Dimension, parse_quantity

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: Defaults. Baud: the highest rate common FTDI/CH340 adapters run reliably (field notes: up to 4.5 Mbaud on
#: Dynamixel, 1 Mbaud is the conservative common rate). Control rate: 200 Hz, the usual rate for hobby and
#: research arms (LeRobot streams at tens to hundreds of Hz). Heartbeat: 100 ms, a fifth of a 500 ms joint
#: watchdog so that four lost heartbeats in a row are tolerated.
DEFAULT_CONTROL_RATE_HZ = 200.0
MAX_CONTROL_RATE_HZ = 1000.0  # the brief's upper bound; above it a cycle is shorter than a bus round trip
DEFAULT_HEARTBEAT_S = 0.1
DEFAULT_REPLY_TIMEOUT_S = 0.1  # a round trip along 8 joints at 1 Mbaud takes a few ms; 100 ms is generous
ON_CLOSE_CHOICES = ("hold", "torque_off")

_BUS_KEYS = {"port", "baud", "control_rate_hz", "heartbeat_period", "reply_timeout", "on_close", "max_step"}
_JOINT_KEYS = {
    "address", "offset", "min", "max", "max_velocity", "max_acceleration", "max_current", "max_step",
}


@dataclass(frozen=True)
class JointConfig:
    """One joint: its name, bus address, calibration and limits (SI units, calibrated coordinates)."""

    name: str
    address: int
    offset: float  # rad: raw position at the joint's zero
    position_min: float  # rad
    position_max: float  # rad
    max_velocity: float  # rad/s
    max_current: float  # A
    max_step: float  # rad: the most one control cycle may move the goal
    max_acceleration: float | None = None  # rad/s^2; None: not limited by the trajectory planner

    def to_raw(self, position: float) -> float:
        """Calibrated position (rad) -> raw joint position (rad)."""
        return position + self.offset

    def from_raw(self, raw: float) -> float:
        """Raw joint position (rad) -> calibrated position (rad)."""
        return raw - self.offset

    def clamp(self, position: float) -> float:
        """Clamp a calibrated position into [position_min, position_max]."""
        return min(max(position, self.position_min), self.position_max)


@dataclass(frozen=True)
class ArmConfig:
    """A whole arm. ``joints`` are sorted by address (their order along the chain)."""

    source: str
    port: str
    baud: int
    control_rate_hz: float
    heartbeat_period: float  # s
    reply_timeout: float  # s
    on_close: str  # "hold" or "torque_off"
    joints: tuple[JointConfig, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    def joint(self, name: str) -> JointConfig:
        for j in self.joints:
            if j.name == name:
                return j
        raise UsageError(f"no joint named {name!r} in {self.source} (joints: {', '.join(self.names)})")

    def by_address(self, address: int) -> JointConfig | None:
        for j in self.joints:
            if j.address == address:
                return j
        return None


def load_config(path: str | Path) -> ArmConfig:
    """Read and validate a TOML arm config. Raises :class:`ConfigError` naming file and key."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file (see docs/examples/arm.toml for a template)") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    return parse_config(data, source=str(p))


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> ArmConfig:
    """Validate an already-parsed TOML document (a dict) into an :class:`ArmConfig`."""
    _no_unknown(data, {"bus", "joints"}, source, "")
    bus = data.get("bus", {})
    if not isinstance(bus, Mapping):
        raise ConfigError(f"{source}: [bus] must be a table")
    _no_unknown(bus, _BUS_KEYS, source, "bus.")
    port = bus.get("port")
    if not isinstance(port, str) or not port:
        raise ConfigError(
            f'{source}: bus.port is missing: add port = "/dev/ttyUSB0" (or a URL such as '
            '"socket://host:port") under [bus]; `armbus ports` lists the serial ports'
        )
    baud = bus.get("baud", DEFAULT_BAUD)
    if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
        raise ConfigError(f"{source}: bus.baud must be a positive integer (bits per second), got {baud!r}")
    rate = _number(bus, "control_rate_hz", source, "bus.", DEFAULT_CONTROL_RATE_HZ)
    if not 0 < rate <= MAX_CONTROL_RATE_HZ:
        raise ConfigError(
            f"{source}: bus.control_rate_hz must be in (0, {MAX_CONTROL_RATE_HZ:g}] Hz, got {rate:g}"
        )
    heartbeat = _seconds(bus, "heartbeat_period", source, DEFAULT_HEARTBEAT_S)
    reply_timeout = _seconds(bus, "reply_timeout", source, DEFAULT_REPLY_TIMEOUT_S)
    on_close = bus.get("on_close", "hold")
    if on_close not in ON_CLOSE_CHOICES:
        choices = ", ".join(ON_CLOSE_CHOICES)
        raise ConfigError(f"{source}: bus.on_close must be one of {choices}, got {on_close!r}")
    default_step = _quantity(bus, "max_step", Dimension.ANGLE, source, "bus.", None)

    joints_table = data.get("joints")
    if not isinstance(joints_table, Mapping) or not joints_table:
        raise ConfigError(f"{source}: no joints: add one [joints.<name>] table per joint (address = 1, ...)")
    joints: list[JointConfig] = []
    seen: dict[int, str] = {}
    for name, table in joints_table.items():
        joint = _joint(name, table, source, default_step)
        if joint.address in seen:
            raise ConfigError(
                f"{source}: joints.{name}.address {joint.address} is already used by joint "
                f"{seen[joint.address]!r}: every joint needs its own address"
            )
        seen[joint.address] = name
        joints.append(joint)
    joints.sort(key=lambda j: j.address)
    return ArmConfig(
        source=source,
        port=port,
        baud=baud,
        control_rate_hz=rate,
        heartbeat_period=heartbeat,
        reply_timeout=reply_timeout,
        on_close=on_close,
        joints=tuple(joints),
    )


def _joint(name: str, table: object, source: str, default_step: float | None) -> JointConfig:
    where = f"joints.{name}."
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: joints.{name} must be a table ([joints.{name}])")
    _no_unknown(table, _JOINT_KEYS, source, where)
    address = table.get("address")
    if isinstance(address, bool) or not isinstance(address, int):
        raise ConfigError(f"{source}: {where}address is missing or not an integer: add address = <1..253>")
    if not Address.FIRST_JOINT <= address <= Address.LAST_JOINT:
        raise ConfigError(
            f"{source}: {where}address {address} is out of range: joints have addresses "
            f"{int(Address.FIRST_JOINT)}..{int(Address.LAST_JOINT)} (their position along the chain)"
        )
    offset = _quantity(table, "offset", Dimension.ANGLE, source, where, 0.0) or 0.0
    lo = _required(table, "min", Dimension.ANGLE, source, where)
    hi = _required(table, "max", Dimension.ANGLE, source, where)
    if not lo < hi:
        raise ConfigError(f"{source}: {where}min ({lo:g} rad) must be below {where}max ({hi:g} rad)")
    velocity = _positive(table, "max_velocity", Dimension.ANGULAR_VELOCITY, source, where)
    current = _positive(table, "max_current", Dimension.CURRENT, source, where)
    acceleration = _quantity(table, "max_acceleration", Dimension.ANGULAR_ACCELERATION, source, where, None)
    if acceleration is not None and acceleration <= 0:
        raise ConfigError(f"{source}: {where}max_acceleration must be positive, got {acceleration:g} rad/s^2")
    step = _quantity(table, "max_step", Dimension.ANGLE, source, where, default_step)
    if step is None:
        raise ConfigError(
            f"{source}: {where}max_step is missing: set it per joint or once under [bus] "
            '(e.g. max_step = "5deg")'
        )
    if step <= 0:
        raise ConfigError(f"{source}: {where}max_step must be positive, got {step:g} rad")
    return JointConfig(name, address, offset, lo, hi, velocity, current, step, acceleration)


def _no_unknown(table: Mapping[str, Any], allowed: set[str], source: str, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {where}{unknown[0]}: allowed keys here are {', '.join(sorted(allowed))}"
        )


def _number(table: Mapping[str, Any], key: str, source: str, where: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{source}: {where}{key} must be a number, got {value!r}")
    return float(value)


def _seconds(table: Mapping[str, Any], key: str, source: str, default: float) -> float:
    value = _number(table, key, source, "bus.", default)
    if value <= 0:
        raise ConfigError(f"{source}: bus.{key} must be a positive number of seconds, got {value:g}")
    return value


def _quantity(
    table: Mapping[str, Any], key: str, dim: Dimension, source: str, where: str, default: float | None
) -> float | None:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, str):  # a string carries its unit; a bare number is written without quotes
        try:
            return parse_quantity(value, dim)
        except UsageError as exc:
            raise ConfigError(f"{source}: {where}{key}: {exc} (a number in SI units is written without quotes)"
                              ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(
            f'{source}: {where}{key} must be a number in SI units or a string with a unit (e.g. "90deg"), '
            f"got {value!r}"
        )
    return float(value)


def _required(table: Mapping[str, Any], key: str, dim: Dimension, source: str, where: str) -> float:
    value = _quantity(table, key, dim, source, where, None)
    if value is None:
        raise ConfigError(f"{source}: {where}{key} is missing: add the joint's {dim.value} limit")
    return value


def _positive(table: Mapping[str, Any], key: str, dim: Dimension, source: str, where: str) -> float:
    value = _required(table, key, dim, source, where)
    if value <= 0:
        raise ConfigError(f"{source}: {where}{key} must be positive, got {value:g}")
    return value
