"""Joint-space trajectories: timed waypoints -> goals sampled at a fixed control rate.

Theory of operation
-------------------
A :class:`Trajectory` is N timed waypoints for J named joints (positions in rad, calibrated coordinates).
:meth:`Trajectory.plan` turns it into a :class:`Plan`, interpolating every segment between two waypoints with
one of two point-to-point profiles, each starting and ending at rest:

* ``min_jerk``: the quintic 10s^3 - 15s^4 + 6s^5 (Flash and Hogan's minimum-jerk move): zero velocity and
  acceleration at both ends; peak velocity 1.875 d/T, peak acceleration 10/sqrt(3) d/T^2.
* ``trapezoid``: constant acceleration, cruise, constant deceleration. With an acceleration limit ``a`` the
  ramps use ``a`` and the cruise speed is the smaller root of v^2 - aTv + a|d| = 0; without one, each ramp takes
  a third of the segment (cruise 1.5 d/T, acceleration 4.5 d/T^2).

Because every segment starts and ends at rest, each joint moves monotonically inside a segment, so checking the
waypoints against the position limits bounds the whole path.

Limits. Velocity and acceleration limits set a minimum duration per segment (the slowest joint decides, and
all joints stay synchronised). ``on_limit="stretch"`` (the default) lengthens any segment that is too short
and shifts the later waypoints; ``Plan.stretched`` says whether it happened. ``on_limit="reject"`` raises
:class:`TrajectoryError` naming the segment, the joint and the shortest feasible duration instead. Waypoints
outside the position limits are always rejected: moving the path would change where the arm goes.

Sampling: :meth:`Plan.sample` evaluates the plan at k / rate for k = 0.. up to the end, plus the end itself,
returning positions and velocities. :func:`clamp_step` limits how far one control cycle may move a goal from
the previous one (LeRobot's ``max_relative_target``); the streaming loop applies it against the last goal sent.

CSV (``armbus run TRAJECTORY.csv``): lines starting with ``#`` are comments; the header's first column is
``time``, ``time_s`` or ``time_ms``; every other column is a joint, named ``<joint>``, ``<joint>_rad``,
``<joint>_deg``, ``<joint>[rad]`` or ``<joint>[deg]``. Columns without a unit take ``unit`` from the caller
(radians unless told otherwise); a cell may also carry its own unit (``10deg``, ``-0.5rad``). Times must increase
strictly. A UTF-8 byte-order mark and CRLF line ends (a spreadsheet's export) are fine; a file is at most
:data:`MAX_CSV_BYTES` and lasts at most :data:`MAX_DURATION_S`, so any input costs bounded memory. :func:`save_csv`
writes ``time_s`` and ``<joint>_rad`` (or ``_deg``) columns, so a saved file loads back without options.
"""

from __future__ import annotations

import csv
import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from armbus.bus.errors import ConfigError, UsageError
from armbus.controller.units import parse_angle

if TYPE_CHECKING:
    from armbus.controller.config import ArmConfig

Array = npt.NDArray[np.float64]

#: Control-rate bounds: 200 Hz is the usual streaming rate for research arms; 1 kHz is the upper bound this
#: controller supports (a cycle shorter than 1 ms is below one bus round trip along a chain).
DEFAULT_RATE_HZ = 200.0
MAX_RATE_HZ = 1000.0
MIN_JERK_PEAK_VELOCITY = 1.875  # max of ds/dtau for s = 10t^3 - 15t^4 + 6t^5, at tau = 1/2
MIN_JERK_PEAK_ACCELERATION = 10.0 / math.sqrt(3.0)  # max |d2s/dtau2|, at tau = 1/2 -+ sqrt(3)/6


class Profile(str, enum.Enum):
    MIN_JERK = "min_jerk"
    TRAPEZOID = "trapezoid"


class TrajectoryError(UsageError):
    """A trajectory cannot be planned within the limits, or its data are malformed."""


@dataclass(frozen=True)
class JointLimits:
    """Per-joint limits as arrays of length J (SI units). ``inf`` means unlimited."""

    position_min: Array
    position_max: Array
    max_velocity: Array
    max_acceleration: Array

    @classmethod
    def from_config(cls, config: ArmConfig, names: Sequence[str]) -> JointLimits:
        joints = [config.joint(n) for n in names]
        return cls(
            np.array([j.position_min for j in joints]),
            np.array([j.position_max for j in joints]),
            np.array([j.max_velocity for j in joints]),
            np.array([math.inf if j.max_acceleration is None else j.max_acceleration for j in joints]),
        )


class Samples(NamedTuple):
    times: Array  # (K,) s
    positions: Array  # (K, J) rad
    velocities: Array  # (K, J) rad/s


class Trajectory:
    """Timed waypoints: ``times`` (N,) in s, strictly increasing; ``positions`` (N, J) in rad."""

    def __init__(self, names: Sequence[str], times: npt.ArrayLike, positions: npt.ArrayLike) -> None:
        self.names = tuple(names)
        self.times: Array = np.asarray(times, dtype=float)
        self.positions: Array = np.asarray(positions, dtype=float)
        if self.positions.ndim == 1:
            self.positions = self.positions.reshape(-1, 1)
        times, positions = self.times, self.positions
        if len(set(self.names)) != len(self.names) or not self.names:
            raise TrajectoryError(f"joint names must be unique and non-empty, got {list(self.names)}")
        if times.ndim != 1 or len(times) < 2:
            raise TrajectoryError("a trajectory needs at least two waypoints")
        if positions.shape != (len(times), len(self.names)):
            raise TrajectoryError(
                f"positions have shape {positions.shape}, expected ({len(times)}, {len(self.names)})"
            )
        if not (np.all(np.isfinite(times)) and np.all(np.isfinite(positions))):
            raise TrajectoryError("times and positions must be finite numbers")
        bad = np.nonzero(np.diff(times) <= 0)[0]
        if len(bad):
            i = int(bad[0])
            raise TrajectoryError(
                f"waypoint times must increase strictly: waypoint {i + 1} at {times[i + 1]:g} s "
                f"does not come after waypoint {i} at {times[i]:g} s"
            )

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0])

    def select(self, names: Sequence[str]) -> Trajectory:
        """The same waypoints with columns in the order of ``names`` (all must be present)."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise TrajectoryError(f"trajectory has no column for joint(s) {', '.join(missing)}")
        cols = [self.names.index(n) for n in names]
        return Trajectory(tuple(names), self.times, self.positions[:, cols])

    def plan(
        self,
        limits: JointLimits | None = None,
        profile: Profile | str = Profile.MIN_JERK,
        on_limit: str = "stretch",
    ) -> Plan:
        """Interpolate within ``limits``; see the module docstring for ``on_limit`` ("stretch" or "reject")."""
        profile = Profile(profile)
        if on_limit not in ("stretch", "reject"):
            raise UsageError(f"on_limit must be 'stretch' or 'reject', got {on_limit!r}")
        delta = np.diff(self.positions, axis=0)  # (N-1, J)
        durations = np.diff(self.times)
        if limits is not None:
            self._check_positions(limits)
            needed = _min_durations(np.abs(delta), limits, profile)  # (N-1, J)
            shortest = needed.max(axis=1)
            short = np.nonzero(shortest > durations * (1 + 1e-12))[0]
            if len(short) and on_limit == "reject":
                i = int(short[0])
                j = int(np.argmax(needed[i]))
                raise TrajectoryError(
                    f"segment {i} ({self.times[i]:g} s -> {self.times[i + 1]:g} s) is too fast for joint "
                    f"{self.names[j]!r}: it needs at least {shortest[i]:.4g} s within its velocity and "
                    f"acceleration limits; slow the waypoints down or plan with on_limit='stretch'"
                )
            durations = np.maximum(durations, shortest)
            stretched = bool(len(short))
            accel = limits.max_acceleration
        else:
            stretched = False
            accel = np.full(len(self.names), math.inf)
        times = self.times[0] + np.concatenate(([0.0], np.cumsum(durations)))
        return Plan(self.names, profile, times, self.positions, stretched, _ramps(delta, durations, accel, profile))

    def _check_positions(self, limits: JointLimits) -> None:
        low = self.positions < limits.position_min
        high = self.positions > limits.position_max
        for mask, word in ((low, "below"), (high, "above")):
            if mask.any():
                i, j = (int(v) for v in np.argwhere(mask)[0])
                bound = limits.position_min[j] if word == "below" else limits.position_max[j]
                raise TrajectoryError(
                    f"waypoint {i} ({self.times[i]:g} s) puts joint {self.names[j]!r} at "
                    f"{self.positions[i, j]:.4g} rad ({math.degrees(self.positions[i, j]):.2f} deg), {word} "
                    f"its limit {bound:.4g} rad ({math.degrees(bound):.2f} deg)"
                )


def _min_durations(dist: Array, limits: JointLimits, profile: Profile) -> Array:
    v = limits.max_velocity
    a = limits.max_acceleration
    with np.errstate(divide="ignore", invalid="ignore"):
        if profile is Profile.MIN_JERK:
            return np.maximum(MIN_JERK_PEAK_VELOCITY * dist / v, np.sqrt(MIN_JERK_PEAK_ACCELERATION * dist / a))
        # trapezoid with ramps at ``a``: cruise reached if d >= v^2/a, else a triangle.
        finite = np.isfinite(a)
        triangle = 2.0 * np.sqrt(dist / a)
        trapezoid = dist / v + v / a
        limited = np.where(dist >= v * v / a, trapezoid, triangle)
        return np.where(finite, limited, 1.5 * dist / v)


@dataclass(frozen=True)
class _Ramps:
    """Trapezoid parameters per segment and joint: ramp time and cruise speed (both >= 0)."""

    ramp: Array
    cruise: Array


def _ramps(delta: Array, durations: Array, accel: Array, profile: Profile) -> _Ramps | None:
    if profile is not Profile.TRAPEZOID:
        return None
    dist = np.abs(delta)
    T = durations[:, None]
    a = np.broadcast_to(accel, dist.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = np.maximum(a * a * T * T - 4.0 * a * dist, 0.0)
        v_limited = (a * T - np.sqrt(disc)) / 2.0
        v_third = 1.5 * dist / T
        cruise = np.where(np.isfinite(a), v_limited, v_third)
        ramp = np.where(np.isfinite(a), cruise / a, T / 3.0)
    ramp = np.where(dist > 0, ramp, T / 3.0)
    cruise = np.where(dist > 0, cruise, 0.0)
    return _Ramps(np.broadcast_to(ramp, dist.shape).copy(), cruise)


@dataclass(frozen=True)
class Plan:
    """A planned trajectory: waypoint ``times`` after any stretching, evaluable at any time."""

    names: tuple[str, ...]
    profile: Profile
    times: Array
    positions: Array
    stretched: bool
    _ramps: _Ramps | None = field(repr=False)

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0])

    def evaluate(self, at: npt.ArrayLike) -> tuple[Array, Array]:
        """Positions and velocities (K, J) at times ``at`` (K,); held at the ends outside the plan."""
        t: Array = np.clip(np.asarray(at, dtype=float), self.times[0], self.times[-1])
        seg = np.clip(np.searchsorted(self.times, t, side="right") - 1, 0, len(self.times) - 2)
        t0 = self.times[seg]
        T = (self.times[seg + 1] - t0)[:, None]
        u = (t - t0)[:, None]  # time into the segment
        q0 = self.positions[seg]
        d = self.positions[seg + 1] - q0
        if self._ramps is None:
            s = np.clip(u / T, 0.0, 1.0)
            pos = q0 + d * (10 * s**3 - 15 * s**4 + 6 * s**5)
            vel = d * (30 * s**2 - 60 * s**3 + 30 * s**4) / T
            return pos, vel
        ramp = self._ramps.ramp[seg]
        cruise = self._ramps.cruise[seg]
        sign = np.sign(d)
        with np.errstate(divide="ignore", invalid="ignore"):
            acc = np.where(ramp > 0, cruise / ramp, 0.0)
        rest = T - u
        dist_up = 0.5 * acc * u * u
        dist_cruise = 0.5 * cruise * ramp + cruise * (u - ramp)
        dist_down = np.abs(d) - 0.5 * acc * rest * rest
        travelled = np.where(u < ramp, dist_up, np.where(rest > ramp, dist_cruise, dist_down))
        speed = np.where(u < ramp, acc * u, np.where(rest > ramp, cruise, acc * rest))
        return q0 + sign * travelled, sign * speed

    def sample(self, rate_hz: float = DEFAULT_RATE_HZ) -> Samples:
        """Evaluate at ``times[0] + k / rate_hz`` up to the end, the end itself included."""
        check_rate(rate_hz)
        count = math.floor(self.duration * rate_hz + 1e-9) + 1
        t = self.times[0] + np.arange(count) / rate_hz
        if t[-1] < self.times[-1] - 1e-12:
            t = np.append(t, self.times[-1])
        pos, vel = self.evaluate(t)
        return Samples(t, pos, vel)


def check_rate(rate_hz: float) -> None:
    if not (math.isfinite(rate_hz) and 0 < rate_hz <= MAX_RATE_HZ):
        raise UsageError(f"control rate must be in (0, {MAX_RATE_HZ:g}] Hz, got {rate_hz!r}")


def clamp_step(goal: npt.ArrayLike, previous: npt.ArrayLike, max_step: npt.ArrayLike) -> Array:
    """Move no joint by more than ``max_step`` (rad, per joint or scalar) from ``previous`` in one cycle."""
    g = np.asarray(goal, dtype=float)
    p = np.asarray(previous, dtype=float)
    step = np.asarray(max_step, dtype=float)
    return np.asarray(p + np.clip(g - p, -step, step), dtype=float)


# ---------------------------------------------------------------- CSV

#: Bounds on what a trajectory file may ask for, whatever it holds: its size on disk and its duration (an hour
#: at 1 kHz is 3.6 million samples per joint, the most a stream is sized for; a time of 1e9 s is a typo).
MAX_CSV_BYTES = 16 * 1024 * 1024
MAX_DURATION_S = 3600.0
_TIME_SCALE = {"time": 1.0, "time_s": 1.0, "time[s]": 1.0, "time_ms": 1e-3, "time[ms]": 1e-3}
_UNIT_SCALE = {"rad": 1.0, "deg": math.pi / 180.0}
_COLUMN = re.compile(r"^(?P<name>.+?)(?:_(?P<suffix>rad|deg)|\s*\[(?P<bracket>rad|deg)\])?$")


def _cell(cell: str, column: int, scales: list[float]) -> float:
    """A cell as the number the array holds: joint cells may carry their unit (then in rad, later unscaled)."""
    try:
        return float(cell)
    except ValueError:
        if column == 0:
            raise
    return parse_angle(cell) / scales[column - 1]


def load_csv(path: str | Path, unit: str | None = None) -> Trajectory:
    """Read a trajectory CSV (format in the module docstring); ``unit`` ("rad"/"deg") for unit-less columns."""
    p = Path(path)
    if unit is not None and unit not in _UNIT_SCALE:
        raise UsageError(f"unit must be 'rad' or 'deg', got {unit!r}")
    try:
        size = p.stat().st_size
        if size > MAX_CSV_BYTES:
            raise ConfigError(f"{p}: {size} bytes: a trajectory file is at most {MAX_CSV_BYTES} bytes")
        lines = p.read_text(encoding="utf-8-sig").splitlines()  # a BOM (Excel's UTF-8) and CRLF lines are fine
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read trajectory: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a text CSV file (byte {exc.start} is not UTF-8)") from None
    rows = [(n, row) for n, row in enumerate(csv.reader(lines), start=1) if row and not row[0].startswith("#")]
    if not rows:
        raise ConfigError(f"{p}: empty trajectory file: expected a header such as 'time_s,shoulder_deg,...'")
    header_line, header = rows[0]
    header = [h.strip() for h in header]
    time_scale = _TIME_SCALE.get(header[0].lower())
    if time_scale is None:
        raise ConfigError(
            f"{p}:{header_line}: first column must be the time ({', '.join(_TIME_SCALE)}), got {header[0]!r}"
        )
    names: list[str] = []
    scales: list[float] = []
    for col in header[1:]:
        m = _COLUMN.match(col)
        col_unit = (m.group("suffix") or m.group("bracket")) if m else None
        if m is None or not m.group("name"):
            raise ConfigError(f"{p}:{header_line}: empty joint column name")
        if col_unit is None and unit is None:
            col_unit = "rad"
        names.append(m.group("name").strip())
        scales.append(_UNIT_SCALE[col_unit or unit or "rad"])
    if not names:
        raise ConfigError(f"{p}:{header_line}: no joint columns after {header[0]!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{p}:{header_line}: a joint appears in two columns: {', '.join(names)}")
    data = np.empty((len(rows) - 1, len(header)))
    for r, (line, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise ConfigError(f"{p}:{line}: {len(row)} values, expected {len(header)} (one per header column)")
        for c, cell in enumerate(row):
            try:
                data[r, c] = _cell(cell, c, scales)
            except (ValueError, UsageError):
                what = "a number of seconds" if c == 0 else "a number or an angle with its unit (10deg, -0.5rad)"
                raise ConfigError(f"{p}:{line}: column {header[c]!r}: {cell.strip()!r} is not {what}") from None
    if len(data) and np.nanmax(np.abs(data[:, 0])) * time_scale > MAX_DURATION_S:
        raise ConfigError(f"{p}: times reach {np.nanmax(np.abs(data[:, 0])) * time_scale:g} s: a trajectory lasts at "
                          f"most {MAX_DURATION_S:g} s")
    try:
        return Trajectory(tuple(names), data[:, 0] * time_scale, data[:, 1:] * np.array(scales))
    except TrajectoryError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def save_csv(trajectory: Trajectory | Samples, path: str | Path, names: Sequence[str] | None = None,
             unit: str = "rad") -> None:
    """Write waypoints (or samples, with ``names``) as ``time_s,<joint>_<unit>,...``."""
    if unit not in _UNIT_SCALE:
        raise UsageError(f"unit must be 'rad' or 'deg', got {unit!r}")
    if isinstance(trajectory, Trajectory):
        names, times, positions = trajectory.names, trajectory.times, trajectory.positions
    else:
        if names is None:
            raise UsageError("saving samples needs the joint names")
        times, positions = trajectory.times, trajectory.positions
    scale = _UNIT_SCALE[unit]
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["time_s", *(f"{n}_{unit}" for n in names)])
        for t, row in zip(times, positions, strict=True):
            writer.writerow([repr(float(t)), *(repr(float(v / scale)) for v in row)])
