"""What the arm facades know about the joints: names, calibration, limits and the last goals; no I/O.

Theory of operation
-------------------
The synchronous :class:`armbus.controller.arm.Arm`, the asyncio :class:`armbus.controller.aio.AsyncArm` and the
simulated-time driver (:mod:`armbus.controller.stream`) differ only in how they wait. Everything they decide before a
message goes out, and after a reply came back, lives here, so the three behave the same by construction:

* joint names: from the :class:`armbus.controller.config.ArmConfig`, or ``joint<address>`` after an enumeration
  without a config (such joints have no offset and no limits);
* goals: a position goal is clamped into the joint's limits and to at most ``max_step`` from the previous goal
  (LeRobot's ``max_relative_target``), then made raw (``raw = position + offset``); velocity and current goals
  are clamped to the joint's maxima;
* states: positions coming back are calibrated (``position = raw - offset``); the first state read seeds the
  step clamp, so the first goal after connecting cannot jump further than ``max_step`` from where the joint is.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence

from armbus.bus.errors import UsageError
from armbus.bus.messages import Cycle, Message, SyncWrite
from armbus.bus.wire import GoalMode
from armbus.controller import ops
from armbus.controller.config import ArmConfig, JointConfig
from armbus.controller.events import JointState


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
    def joint(self, name: str) -> JointConfig:
        try:
            return self.joints[name]
        except KeyError:
            known = ", ".join(self.joints) or "none yet: enumerate() first"
            raise UsageError(f"no joint named {name!r} (joints: {known})") from None

    def by_address(self, address: int) -> JointConfig | None:
        for j in self.joints.values():
            if j.address == address:
                return j
        return None

    def discovered(self, found: Sequence[ops.DiscoveredJoint]) -> None:
        """Take an enumeration's result: check it against the config, or name the joints found."""
        if self.config is not None:
            ops.check_chain(found, [j.address for j in self.config.joints])
        else:
            self.joints = {f"joint{j.address}": unconfigured(j.address) for j in found}

    def forget(self, name: str) -> None:
        """The joint rebooted: its goal is unknown again."""
        self.last_goal.pop(name, None)

    # ------------------------------------------------------------------ goals
    def limit(self, cfg: JointConfig, position: float) -> float:
        """Clamp a calibrated position goal into the limits and the step clamp; remember it."""
        if not math.isfinite(position):
            raise UsageError(f"goal for {cfg.name} must be a finite number of rad, got {position!r}")
        goal = cfg.clamp(position)
        last = self.last_goal.get(cfg.name)
        if last is not None and math.isfinite(cfg.max_step):
            goal = max(last - cfg.max_step, min(last + cfg.max_step, goal))
        self.last_goal[cfg.name] = goal
        return goal

    def goal(self, name: str, position: float | None, velocity: float | None,
             current: float | None) -> tuple[Message, int]:
        """SET_GOAL for exactly one of position (rad), velocity (rad/s), current (A); and its address."""
        given = [(m, v) for m, v in ((GoalMode.POSITION, position), (GoalMode.VELOCITY, velocity),
                                     (GoalMode.CURRENT, current)) if v is not None]
        if len(given) != 1:
            raise UsageError("set_goal takes exactly one of position=, velocity=, current=")
        j = self.joint(name)
        mode, value = given[0]
        if mode is GoalMode.POSITION:
            value = j.to_raw(self.limit(j, value))
        elif mode is GoalMode.VELOCITY:
            value = max(-j.max_velocity, min(j.max_velocity, value))
        else:
            value = max(-j.max_current, min(j.max_current, value))
        return ops.goal_message(mode, value), j.address

    def sync_goals(self, positions: Mapping[str, float]) -> tuple[SyncWrite, dict[str, float]]:
        """One SYNC_WRITE for calibrated position goals by name, and the goals after clamping."""
        sent = {name: self.limit(self.joint(name), p) for name, p in positions.items()}
        raw = {self.joints[n].address: self.joints[n].to_raw(p) for n, p in sent.items()}
        return ops.sync_write_goals(raw), sent

    def cycle_goals(self, goals: Mapping[str, float], mode: GoalMode, reg: int, length: int) -> Cycle:
        """One CYCLE for goals by name in SI (rad, rad/s or A; positions calibrated and clamped like
        :meth:`sync_goals`, velocities and currents to the joint's limits), reading ``length`` bytes at ``reg``."""
        raw: dict[int, float] = {}
        for name, value in goals.items():
            j = self.joint(name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError(f"goal for {name} must be a finite number, got {value!r}")
            if mode is GoalMode.POSITION:
                raw[j.address] = j.to_raw(self.limit(j, value))
            elif mode is GoalMode.VELOCITY:
                raw[j.address] = max(-j.max_velocity, min(j.max_velocity, value))
            else:
                raw[j.address] = max(-j.max_current, min(j.max_current, value))
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
