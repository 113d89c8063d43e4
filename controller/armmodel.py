"""What the arm facades know about the joints: names, calibration, limits and the last goals; no I/O.

Theory of operation
-------------------
The synchronous :class:`armbus.controller.arm.Arm`, the asyncio :class:`armbus.controller.aio.AsyncArm` and the
simulated-time driver (:mod:`armbus.controller.stream`) differ only in how they wait. Everything they decide before a
message goes out, and after a reply came back, lives here, so the three behave the same by construction:

* joint names: from the :class:`armbus.controller.config.ArmConfig`, or ``joint<address>`` after an enumeration
  without a config (such joints have no offset and no limits);
* joints are named by name or by bus address (``arm["elbow"]``, ``arm[2]``, ``{2: 0.1}``);
* goals: a number is SI (rad, rad/s, A), a string carries its unit (``"10deg"``, ``"-0.5rad"``, ``"200mA"``).
  Preflight before anything is sent: a position goal outside the joint's configured limits is refused
  (:class:`~armbus.bus.errors.UsageError` naming the limits), and so is one beyond a full turn on a joint with no
  configured limits (:data:`UNLIMITED_GOAL_RAD`: almost always degrees typed as radians); velocity and current
  goals beyond the joint's maxima are refused too. A goal in range is limited to at most ``max_step`` from the
  previous goal (LeRobot's ``max_relative_target``), then made raw (``raw = position + offset``);
* states: positions coming back are calibrated (``position = raw - offset``); the first state read seeds the
  step clamp, so the first goal after connecting cannot jump further than ``max_step`` from where the joint is.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Mapping, Sequence

from armbus.bus.errors import UsageError
from armbus.bus.messages import Cycle, Message, SyncWrite
from armbus.bus.wire import GoalMode
from armbus.controller import ops
from armbus.controller.config import ArmConfig, JointConfig
from armbus.controller.events import JointState
from armbus.controller.units import Dimension, parse_quantity

log = logging.getLogger(__name__)
#: Goals as callers give them: by joint name or bus address; a number in SI units, or a string with a unit.
JointGoals = Mapping[str, object] | Mapping[int, object] | Mapping[str | int, object]
#: Largest position goal (rad) accepted for a joint without configured limits: one full turn. A bigger bare
#: number is almost always degrees typed as radians (``30`` meaning 30 deg); configure limits to go further.
UNLIMITED_GOAL_RAD = 2 * math.pi
#: Rounding slack of the limit check (rad, rad/s, A): a plan fitted to a limit may land a hair beyond it.
_SLACK = 1e-9
_DIMENSION = {GoalMode.POSITION: Dimension.ANGLE, GoalMode.VELOCITY: Dimension.ANGULAR_VELOCITY,
              GoalMode.CURRENT: Dimension.CURRENT}


def goal_value(name: str, value: object, mode: GoalMode = GoalMode.POSITION) -> float:
    """A goal as given by a caller (a number in SI units, or a string with a unit) as an SI float."""
    if isinstance(value, str):
        return parse_quantity(value, _DIMENSION[mode])
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"goal for {name} must be a number ({_UNIT[mode]}) or a string with a unit such as "
                         f"'10deg', got {value!r}")
    if not math.isfinite(value):
        raise UsageError(f"goal for {name} must be finite, got {value!r}")
    return float(value)


_UNIT = {GoalMode.POSITION: "rad", GoalMode.VELOCITY: "rad/s", GoalMode.CURRENT: "A"}


def unconfigured(address: int) -> JointConfig:
    """A joint found on the bus that the config does not describe: no offset, no limits."""
    return JointConfig(f"joint{address}", address, 0.0, -math.inf, math.inf, math.inf, math.inf, math.inf)


class ArmModel:
    """Joint bookkeeping shared by the arm facades (see the module docstring)."""

    def __init__(self, config: ArmConfig | None) -> None:
        self.config = config
        self.joints: dict[str, JointConfig] = {}
        self.last_goal: dict[str, float] = {}
        if config is not None:
            self.joints = {j.name: j for j in config.joints}

    # ------------------------------------------------------------------ names
    def joint(self, name: str | int) -> JointConfig:
        """A joint by name, or by bus address (an int)."""
        if isinstance(name, int) and not isinstance(name, bool):
            found = self.by_address(name)
            if found is not None:
                return found
            known = ", ".join(str(j.address) for j in self.joints.values()) or "none yet: enumerate() first"
            raise UsageError(f"no joint at address {name} (addresses: {known})")
        found = self.joints.get(name) if isinstance(name, str) else None
        if found is None:
            known = ", ".join(self.joints) or "none yet: enumerate() first"
            raise UsageError(f"no joint named {name!r} (joints: {known})")
        return found

    def by_address(self, address: int) -> JointConfig | None:
        for j in self.joints.values():
            if j.address == address:
                return j
        return None

    def discovered(self, found: Sequence[ops.DiscoveredJoint]) -> None:
        """Take an enumeration's result: check it against the config, or name the joints found. Joints on the bus
        that the config does not describe are not driven; that is said (a warning), since it is rarely meant."""
        if self.config is not None:
            ops.check_chain(found, [j.address for j in self.config.joints])
            extra = sorted({j.address for j in found} - {j.address for j in self.config.joints})
            if extra:
                log.warning("the bus has %d joints but the config describes %d: joint address(es) %s are not "
                            "in the config and will not be driven", len(found), len(self.config.joints),
                            ", ".join(map(str, extra)))
        else:
            self.joints = {f"joint{j.address}": unconfigured(j.address) for j in found}

    def forget(self, name: str) -> None:
        """The joint rebooted: its goal is unknown again."""
        self.last_goal.pop(name, None)

    # ------------------------------------------------------------------ goals
    def check_position(self, cfg: JointConfig, position: float) -> None:
        """Refuse a calibrated position goal outside the joint's limits (see "goals" above)."""
        if not math.isfinite(position):
            raise UsageError(f"goal for {cfg.name} must be a finite number of rad, got {position!r}")
        lo, hi = cfg.position_min, cfg.position_max
        if math.isinf(lo) and math.isinf(hi):
            if abs(position) > UNLIMITED_GOAL_RAD:
                raise UsageError(
                    f"goal {position:g} rad for {cfg.name} is more than a full turn and the joint has no configured "
                    f"limits: a bare number is radians (did you mean '{position:g}deg'?); configure position "
                    "limits to allow it")
        elif not lo - _SLACK <= position <= hi + _SLACK:
            hint = f" (did you mean '{position:g}deg'?)" if abs(math.radians(position)) <= max(abs(lo), abs(hi)) else ""
            raise UsageError(f"goal {position:.4g} rad for {cfg.name} is outside its limits {lo:.4g} .. {hi:.4g} rad"
                             f"{hint}")

    def check_limit(self, cfg: JointConfig, mode: GoalMode, value: float) -> float:
        """Refuse a velocity or current goal beyond the joint's maximum; returns it."""
        top, unit = (cfg.max_velocity, "rad/s") if mode is GoalMode.VELOCITY else (cfg.max_current, "A")
        if abs(value) > top + _SLACK:
            raise UsageError(f"{mode.name.lower()} goal {value:g} {unit} for {cfg.name} is beyond its maximum "
                             f"{top:g} {unit}")
        return value

    def limit(self, cfg: JointConfig, position: float) -> float:
        """Check a calibrated position goal against the limits, apply the step clamp; remember it."""
        self.check_position(cfg, position)
        goal = cfg.clamp(position)
        last = self.last_goal.get(cfg.name)
        if last is not None and math.isfinite(cfg.max_step):
            goal = max(last - cfg.max_step, min(last + cfg.max_step, goal))
        self.last_goal[cfg.name] = goal
        return goal

    def goal(self, name: str | int, position: object = None, velocity: object = None,
             current: object = None) -> tuple[Message, int]:
        """SET_GOAL for exactly one of position (rad), velocity (rad/s), current (A); and its address."""
        given = [(m, v) for m, v in ((GoalMode.POSITION, position), (GoalMode.VELOCITY, velocity),
                                     (GoalMode.CURRENT, current)) if v is not None]
        if len(given) != 1:
            raise UsageError("set_goal takes exactly one of position=, velocity=, current=")
        j = self.joint(name)
        mode, given_value = given[0]
        return ops.goal_message(mode, self._raw(j, mode, given_value)), j.address

    def _raw(self, j: JointConfig, mode: GoalMode, given: object) -> float:
        """A caller's goal for joint ``j``: parsed, checked (preflight), step-clamped and made raw."""
        value = goal_value(j.name, given, mode)
        if mode is GoalMode.POSITION:
            return j.to_raw(self.limit(j, value))
        return self.check_limit(j, mode, value)

    def sync_goals(self, positions: JointGoals) -> tuple[SyncWrite, dict[str, float]]:
        """One SYNC_WRITE for calibrated position goals by name or address, and the goals sent (after the step
        clamp), by name. Every goal is checked before any is taken."""
        given = [(self.joint(key), value) for key, value in positions.items()]
        checked = [(j, goal_value(j.name, value)) for j, value in given]
        for j, value in checked:
            self.check_position(j, value)
        sent = {j.name: self.limit(j, value) for j, value in checked}
        raw = {self.joints[n].address: self.joints[n].to_raw(p) for n, p in sent.items()}
        return ops.sync_write_goals(raw), sent

    def cycle_goals(self, goals: JointGoals, mode: GoalMode, reg: int, length: int) -> Cycle:
        """One CYCLE for goals by name or address (numbers in SI units, or strings with units), checked and
        clamped like :meth:`sync_goals`, reading ``length`` bytes at ``reg``."""
        given = [(self.joint(key), value) for key, value in goals.items()]
        checked = [(j, goal_value(j.name, value, mode)) for j, value in given]
        if mode is GoalMode.POSITION:
            for j, value in checked:
                self.check_position(j, value)
        raw = {j.address: self._raw(j, mode, value) for j, value in checked}
        return ops.cycle_goals(mode, raw, reg, length)

    # ------------------------------------------------------------------ states
    def calibrated(self, state: JointState) -> JointState:
        j = self.by_address(state.address)
        if j is None:
            return state
        return dataclasses.replace(state, position=j.from_raw(state.position))

    def states_by_name(self, states: Iterable[JointState]) -> dict[str, JointState]:
        """Calibrate a sync-read's records and key them by joint name; seeds the step clamp."""
        by_address = {j.address: name for name, j in self.joints.items()}
        out: dict[str, JointState] = {}
        for raw in states:
            s = self.calibrated(raw)
            name = by_address.get(s.address)
            if name is not None:
                self.last_goal.setdefault(name, s.position)
            out[name if name is not None else f"joint{s.address}"] = s
        return out
