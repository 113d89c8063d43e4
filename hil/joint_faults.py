"""Joint fault kinds for fault schedules: reboot, freeze, overheat, stall, cut cable, sensor noise.

Theory of operation
-------------------
Each kind is a :class:`armbus.hil.scheduled_fault.ScheduledFault` with a ``kind`` name, so it is scriptable from
Python (``FaultSchedule((Reboot(at_ns=..., joint=2),)).install(arm.kernel)``, or ``fault.apply(kernel, now)``
at once) and from fault files (``[[fault]] kind = "reboot"  at_ms = 500  joint = 2``): the table of
:mod:`armbus.hil.fault_kinds` lists every kind here (importing this module registers nothing). Joints are named by
their chain position 1..N (the kernel nodes ``j1``..``jN`` of :class:`armbus.hil.virtual_arm.VirtualArm`).

What each kind does to the simulated joint (:class:`armbus.joints.node.JointNode`, its
:class:`armbus.joints.actuator.Actuator` and the kernel):

* ``reboot``: ``JointNode.reboot(now)``: the MCU is off for its boot time, then starts with fresh links and
  volatile registers (the host must re-enumerate).
* ``freeze`` (``duration``): the MCU hangs (:meth:`armbus.hil.kernel.Kernel.freeze`): no timer, no answer, bytes
  arriving are lost; the motor keeps the last PWM output. It resumes where it stopped.
* ``overheat`` (``ambient_c``, ``winding_c``, optional ``duration``): the ambient temperature of the thermal
  model (``Actuator.ambient_temperature``) changes (slow: the winding follows with its 60 s time constant)
  and/or the winding temperature is set at once (trips the over-temperature protection at the next tick if
  above the limit). After ``duration`` the ambient temperature is restored.
* ``stall`` (``torque_nm`` and/or ``jam``, optional ``duration``): an external load torque on the output, or a
  locked output; the joint's stall detection trips after its 0.5 s.
* ``cut_cable`` (``after_joint`` k, optional ``duration``): the cable between joint k and k+1 (k = 0: host and
  joint 1) is cut in both directions; every byte arriving meanwhile is lost.
* ``sensor_noise`` (``current_a``, ``temperature_c``, ``voltage_v``, ``position_counts``: 1-sigma Gaussian
  noise, optional ``duration``): :meth:`Actuator.set_noise` on the analog sensors and the encoder count; after
  ``duration`` the previous levels come back.

Every application and every restore is written to the fault decision log. Without ``duration`` a fault lasts
until the end of the run. The noise comes from the actuator's own seeded noise stream; an actuator built
without one gets a stream seeded from the fault seed (derive_seed).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any, ClassVar

from armbus.bus.errors import UsageError
from armbus.hil.faults import derive_seed
from armbus.hil.scheduled_fault import FaultTarget, Fields, ScheduledFault
from armbus.joints.actuator import Actuator

#: A cut without a duration lasts until the end of the run.
FOREVER = sys.maxsize
#: Plausible ranges of fault-file values: temperatures a thermal model can hold (-40..250 degC), torques up to
#: 10x the default joint's 4.1 N m stall torque, noise up to the full scale of each sensor.
TEMP_RANGE = (-40.0, 250.0)
TORQUE_RANGE = (-50.0, 50.0)


def _joint_count(target: FaultTarget) -> int:
    names = getattr(target, "node_names", ())
    return sum(1 for n in names if n.startswith("j") and n[1:].isdigit())


def _node(target: FaultTarget, joint: int) -> Any:
    return target.node(f"j{joint}")


def _check_joint(target: FaultTarget, joint: int) -> None:
    count = _joint_count(target)
    if not 1 <= joint <= count:
        raise UsageError(f"no joint {joint}: the arm has joints 1..{count}")


def _later(target: FaultTarget, t: int, fn: Callable[[int], None]) -> None:
    target.call_at(max(t, target.now), fn)


def _end(now: int, duration_ns: int | None) -> int:
    return FOREVER if duration_ns is None else now + duration_ns


def _optional_duration(fields: Fields) -> int | None:
    d = fields.time("duration", default=-1)
    return None if d < 0 else d


@dataclasses.dataclass(frozen=True)
class JointFault(ScheduledFault):
    """Base of the kinds that act on one joint (chain position ``joint``, 1-based)."""

    joint: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.joint, bool) or not isinstance(self.joint, int) or self.joint < 1:
            raise UsageError(f"{type(self).__name__}.joint must be a joint position >= 1, got {self.joint!r}")

    def check(self, target: FaultTarget) -> None:
        _check_joint(target, self.joint)

    def record(self, target: FaultTarget, now: int, detail: str, op: str | None = None) -> None:
        target.faults.record(now, f"j{self.joint}", None, op or self.kind, detail)


@dataclasses.dataclass(frozen=True)
class Reboot(JointFault):
    """Power-cycle a joint's MCU."""

    kind: ClassVar[str] = "reboot"

    def apply(self, target: FaultTarget, now: int) -> None:
        _node(target, self.joint).reboot(now)
        self.record(target, now, "MCU reset")

    @classmethod
    def from_fields(cls, at_ns: int, fields: Fields) -> Reboot:
        return cls(at_ns, fields.integer("joint", 1, 253))


@dataclasses.dataclass(frozen=True)
class Freeze(JointFault):
    """A joint's MCU hangs for ``duration_ns``: no answers, no forwarding, bytes lost; then it resumes."""

    duration_ns: int = 0
    kind: ClassVar[str] = "freeze"

    def check(self, target: FaultTarget) -> None:
        super().check(target)
        if not callable(getattr(target, "freeze", None)):
            raise UsageError("this target cannot freeze nodes (needs armbus.hil.kernel.Kernel.freeze)")

    def apply(self, target: FaultTarget, now: int) -> None:
        target.freeze(f"j{self.joint}", now + self.duration_ns)  # type: ignore[attr-defined]
        self.record(target, now, f"frozen for {self.duration_ns} ns")

    @classmethod
    def from_fields(cls, at_ns: int, fields: Fields) -> Freeze:
        return cls(at_ns, fields.integer("joint", 1, 253), fields.time("duration"))


@dataclasses.dataclass(frozen=True)
class Overheat(JointFault):
    """Change the ambient temperature and/or set the winding temperature (degC)."""

    ambient_c: float | None = None
    winding_c: float | None = None
    duration_ns: int | None = None
    kind: ClassVar[str] = "overheat"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ambient_c is None and self.winding_c is None:
            raise UsageError("overheat needs ambient_c and/or winding_c")

    def apply(self, target: FaultTarget, now: int) -> None:
        act: Actuator = _node(target, self.joint).actuator
        act.advance(now)
        old = act.ambient_temperature
        if self.ambient_c is not None:
            act.ambient_temperature = self.ambient_c
        if self.winding_c is not None:
            act.temperature = self.winding_c
        self.record(target, now, f"ambient {act.ambient_temperature} degC, winding {act.temperature:.1f} degC")
        if self.duration_ns is not None and self.ambient_c is not None:
            def restore(t: int) -> None:
                act.advance(t)
                act.ambient_temperature = old
                self.record(target, t, f"ambient back to {old} degC", "overheat_end")

            _later(target, now + self.duration_ns, restore)

    @classmethod
    def from_fields(cls, at_ns: int, fields: Fields) -> Overheat:
        return cls(at_ns, fields.integer("joint", 1, 253), fields.number("ambient_c", *TEMP_RANGE),
                   fields.number("winding_c", *TEMP_RANGE), _optional_duration(fields))


@dataclasses.dataclass(frozen=True)
class Stall(JointFault):
    """An external load torque (N m, positive toward positive angles) and/or a jammed output."""

    torque_nm: float = 0.0
    jam: bool = False
    duration_ns: int | None = None
    kind: ClassVar[str] = "stall"

    def apply(self, target: FaultTarget, now: int) -> None:
        act: Actuator = _node(target, self.joint).actuator
        act.advance(now)
        act.load_torque, act.jammed = self.torque_nm, self.jam
        self.record(target, now, f"load torque {self.torque_nm} N m, jammed {self.jam}")
        if self.duration_ns is not None:
            def restore(t: int) -> None:
                act.advance(t)
                act.load_torque, act.jammed = 0.0, False
                self.record(target, t, "load removed", "stall_end")

            _later(target, now + self.duration_ns, restore)

    @classmethod
    def from_fields(cls, at_ns: int, fields: Fields) -> Stall:
        torque = fields.number("torque_nm", *TORQUE_RANGE)
        jam = fields.flag("jam", default=torque is None)
        return cls(at_ns, fields.integer("joint", 1, 253), torque or 0.0, jam, _optional_duration(fields))


@dataclasses.dataclass(frozen=True)
class CutCable(ScheduledFault):
    """Cut the cable after joint ``after_joint`` (0: between the host and joint 1), both directions."""

    after_joint: int = 0
    duration_ns: int | None = None
    kind: ClassVar[str] = "cut_cable"

    @property
    def link(self) -> str:
        return "host-j1" if self.after_joint == 0 else f"j{self.after_joint}-j{self.after_joint + 1}"

    def check(self, target: FaultTarget) -> None:
        count = _joint_count(target)
        if not 0 <= self.after_joint < count:
            raise UsageError(f"no cable after joint {self.after_joint}: cables follow the host (0) and joints "
                             f"1..{count - 1}")

    def apply(self, target: FaultTarget, now: int) -> None:
        end = _end(now, self.duration_ns)
        target.faults.cut(self.link, now, end)
        span = "until the end" if self.duration_ns is None else f"for {self.duration_ns} ns"
        target.faults.record(now, self.link, None, self.kind, f"cable cut {span}")

    @classmethod
    def from_fields(cls, at_ns: int, fields: Fields) -> CutCable:
        return cls(at_ns, fields.integer("after_joint", 0, 252), _optional_duration(fields))


@dataclasses.dataclass(frozen=True)
class SensorNoise(JointFault):
    """Gaussian sensor noise (1 sigma): current (A), temperature (degC), voltage (V), encoder (counts)."""

    current_a: float | None = None
    temperature_c: float | None = None
    voltage_v: float | None = None
    position_counts: float | None = None
    duration_ns: int | None = None
    kind: ClassVar[str] = "sensor_noise"

    def apply(self, target: FaultTarget, now: int) -> None:
        act: Actuator = _node(target, self.joint).actuator
        act.advance(now)
        old = (act.current_noise, act.temperature_noise, act.voltage_noise, act.encoder_noise)
        levels = (self.current_a, self.temperature_c, self.voltage_v, self.position_counts)
        # an actuator built without a noise seed gets one derived from the fault seed (see module doc)
        seed = None if act.noisy else derive_seed(target.faults.seed, f"j{self.joint}", "sensor_noise")
        act.set_noise(current=self.current_a, temperature=self.temperature_c, voltage=self.voltage_v,
                      encoder_counts=self.position_counts, seed=seed)
        named = ", ".join(f"{name} {value}" for name, value in zip(("current A", "temperature degC", "voltage V",
                                                                     "encoder counts"), levels, strict=True)
                          if value is not None)
        self.record(target, now, f"noise (1 sigma) {named or 'unchanged'}")
        if self.duration_ns is not None:
            def restore(t: int) -> None:
                act.advance(t)
                act.set_noise(current=old[0], temperature=old[1], voltage=old[2], encoder_counts=old[3])
                self.record(target, t, "noise back to normal", "sensor_noise_end")

            _later(target, now + self.duration_ns, restore)

    @classmethod
    def from_fields(cls, at_ns: int, fields: Fields) -> SensorNoise:
        return cls(at_ns, fields.integer("joint", 1, 253), fields.number("current_a", 0.0, 10.0),
                   fields.number("temperature_c", 0.0, 100.0), fields.number("voltage_v", 0.0, 30.0),
                   fields.number("position_counts", 0.0, 1e6), _optional_duration(fields))


__all__ = ["CutCable", "Freeze", "JointFault", "Overheat", "Reboot", "SensorNoise", "Stall"]
