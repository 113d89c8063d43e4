"""The synchronous arm API: open a port, discover the joints, read and command them in SI units.

Theory of operation
-------------------
:class:`Arm` is a thin blocking facade: the protocol runs in the sans-I/O :class:`controller.host.HostNode`,
the port and the reader thread in :class:`controller.runner.NodeRunner` (one lock, so two threads never
interleave frames), and every operation is a message built by :mod:`controller.ops`. Every wait has a timeout:
``send``-style commands (goals, torque, e-stop) return when the first joint acked the packet; requests (register
access, ping, sync-read) return the correlated reply or raise :class:`~bus.errors.RemoteError`,
:class:`~bus.errors.UndeliverableError` or :class:`~bus.errors.ArmTimeoutError`.

Names and calibration come from the :class:`controller.config.ArmConfig` (joints without a config are called
``joint<address>`` with no offset and no limits). Positions in and out of this API are calibrated:
``raw = position + offset``. :meth:`Arm.set_goals` clamps each goal into the joint's position limits and to at
most ``max_step`` from the previous goal (LeRobot's ``max_relative_target``), then sends all goals in one
SYNC_WRITE frame; :meth:`Arm.read_states` reads every joint's state in one SYNC_READ transaction.

Closing: heartbeats stop; with ``on_close="torque_off"`` every joint gets TORQUE 0 first, with ``"hold"``
(default) the joints keep holding their last goal (and their watchdog, if enabled, then does its safe stop).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import serial

from bus.errors import UsageError
from bus.link import LinkConfig
from bus.messages import Enumerate, EStop, Message, Ping, PingReply, Reboot, Torque
from bus.wire import Address, GoalMode
from controller import ops
from controller.config import ArmConfig, JointConfig, load_config
from controller.events import HostEvent, JointState, ReplyReceived
from controller.host import HostConfig, HostNode
from controller.runner import POLL_S, NodeRunner

log = logging.getLogger(__name__)

NS_PER_S = 1_000_000_000
#: Host-side turnaround for the link timers on a real port: the FTDI latency timer at 1 ms, twice (both
#: directions), plus scheduling slack. With the default 16 ms timer, raise it (see `armbus ports`).
PORT_TURNAROUND_NS = 3_000_000
#: Enumeration waits for the chain end to learn it is last (its forward toward the open connector must fail).
ENUMERATE_TIMEOUT_S = 3.0


class Joint:
    """A joint proxy: the same operations as :class:`Arm`, bound to one joint."""

    def __init__(self, arm: Arm, config: JointConfig) -> None:
        self.arm = arm
        self.config = config
        self.name = config.name
        self.address = config.address

    def read(self, register: str) -> int:
        return self.arm.read(self.name, register)

    def write(self, register: str, value: int) -> None:
        self.arm.write(self.name, register, value)

    def torque(self, enable: bool) -> None:
        self.arm.torque(enable, self.name)

    def set_mode(self, mode: GoalMode) -> None:
        self.arm.write(self.name, "goal_mode", int(mode))

    def set_goal(self, *, position: float | None = None, velocity: float | None = None,
                 current: float | None = None) -> None:
        self.arm.set_goal(self.name, position=position, velocity=velocity, current=current)

    def state(self) -> JointState:
        return self.arm.read_state(self.name)

    def ping(self) -> PingReply:
        return self.arm.ping(self.name)

    def reboot(self) -> None:
        self.arm.reboot(self.name)

    def __repr__(self) -> str:
        return f"Joint({self.name!r}, address={self.address})"


def _unconfigured(address: int) -> JointConfig:
    return JointConfig(f"joint{address}", address, 0.0, -math.inf, math.inf, math.inf, math.inf, math.inf)


class Arm:
    """A robot arm on one serial bus. Use :meth:`open` or :meth:`from_config`; close (or ``with``) when done."""

    def __init__(self, runner: NodeRunner, config: ArmConfig | None, timeout: float, on_close: str) -> None:
        self._runner = runner
        self.config = config
        self.timeout = timeout
        self.on_close = on_close
        self._joints: dict[str, Joint] = {}
        self._last_goal: dict[str, float] = {}
        if config is not None:
            self._joints = {j.name: Joint(self, j) for j in config.joints}

    # ------------------------------------------------------------------ opening and closing
    @classmethod
    def open(
        cls,
        port_or_url: str,
        baud: int = 1_000_000,
        *,
        config: ArmConfig | None = None,
        timeout: float = 0.1,
        heartbeat_period: float | None = None,
        on_close: str = "hold",
        turnaround_ns: int = PORT_TURNAROUND_NS,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> Arm:
        """Open ``port_or_url`` (a device or any pyserial URL, via ``serial.serial_for_url``)."""

        def open_port() -> Any:
            return serial.serial_for_url(port_or_url, baudrate=baud, timeout=POLL_S, write_timeout=1.0)

        host = HostNode(HostConfig(link=LinkConfig(baud=baud, turnaround_ns=turnaround_ns),
                                   reply_timeout_ns=int(timeout * NS_PER_S)), now=clock())
        runner = NodeRunner(host, open_port, clock, port_or_url)
        arm = cls(runner, config, timeout, on_close)
        if heartbeat_period is not None:
            arm.set_heartbeat(heartbeat_period)
        return arm

    @classmethod
    def from_config(cls, config: ArmConfig | str | Path, **kwargs: Any) -> Arm:
        cfg = config if isinstance(config, ArmConfig) else load_config(config)
        kwargs.setdefault("timeout", cfg.reply_timeout)
        kwargs.setdefault("heartbeat_period", cfg.heartbeat_period)
        kwargs.setdefault("on_close", cfg.on_close)
        return cls.open(cfg.port, cfg.baud, config=cfg, **kwargs)

    def close(self) -> None:
        try:
            self.set_heartbeat(None)
            if self.on_close == "torque_off" and self._runner.connected:
                for j in self._joints.values():
                    self.send(Torque(0), j.address)
        except Exception:  # closing must finish: report and go on
            log.exception("while making the joints safe on close")
        finally:
            self._runner.close()

    def __enter__(self) -> Arm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ events and raw access
    def add_listener(self, listener: Callable[[HostEvent], None]) -> None:
        """Call ``listener(event)`` from the reader thread for every event; exceptions are logged."""
        self._runner.add_listener(listener)

    def remove_listener(self, listener: Callable[[HostEvent], None]) -> None:
        self._runner.remove_listener(listener)

    def send(self, message: Message, dst: int, timeout: float | None = None) -> int:
        """Send and return once the first joint acked the packet; returns the msg_id."""
        return self._runner.send(lambda h, now: h.send(message, dst, now), timeout or self.timeout)

    def request(self, message: Message, dst: int, timeout: float | None = None) -> ReplyReceived:
        """Send a request and return its correlated reply (raises on ERROR, UNDELIVERABLE or timeout)."""
        t = timeout or self.timeout
        # the node's own deadline decides; the runner's wait is a backstop slightly longer than it
        return self._runner.request(lambda h, now: h.request(message, dst, now, int(t * NS_PER_S)), t * 1.5 + 0.05)

    def set_heartbeat(self, period: float | None) -> None:
        """Broadcast heartbeats every ``period`` seconds (None stops them)."""
        ns = None if period is None else int(period * NS_PER_S)
        self._runner.call(lambda h, now: h.set_heartbeat(ns, now))

    # ------------------------------------------------------------------ discovery
    @property
    def joints(self) -> dict[str, Joint]:
        return dict(self._joints)

    def __getitem__(self, name: str) -> Joint:
        return self._joint(name)

    def _joint(self, name: str) -> Joint:
        try:
            return self._joints[name]
        except KeyError:
            raise UsageError(f"no joint named {name!r} (joints: {', '.join(self._joints) or 'none yet'})") from None

    def enumerate(self, timeout: float = ENUMERATE_TIMEOUT_S) -> list[ops.DiscoveredJoint]:
        """Assign addresses along the chain and list the joints; checks them against the config."""
        found = ops.decode_enumeration(self.request(Enumerate(), Address.BROADCAST, timeout).message)
        if self.config is not None:
            ops.check_chain(found, [j.address for j in self.config.joints])
        else:
            self._joints = {f"joint{j.address}": Joint(self, _unconfigured(j.address)) for j in found}
        return found

    def ping(self, name: str) -> PingReply:
        return ops.decode_ping(self.request(Ping(), self._joint(name).address).message)

    # ------------------------------------------------------------------ registers, torque, goals
    def read(self, name: str, register: str) -> int:
        return ops.decode_read(register, self.request(ops.read_request(register), self._joint(name).address).message)

    def write(self, name: str, register: str, value: int) -> None:
        reply = self.request(ops.write_request(register, value), self._joint(name).address)
        ops.check_write_reply(register, reply.message)

    def torque(self, enable: bool, name: str | None = None) -> None:
        """Torque on/off for one joint, or every known joint when ``name`` is None."""
        targets = [self._joint(name)] if name is not None else list(self._joints.values())
        for j in targets:
            self.send(Torque(int(enable)), j.address)

    def set_goal(self, name: str, *, position: float | None = None, velocity: float | None = None,
                 current: float | None = None) -> None:
        """One goal in SI (rad, rad/s or A), sent as SET_GOAL; position is calibrated and clamped."""
        given = [(m, v) for m, v in ((GoalMode.POSITION, position), (GoalMode.VELOCITY, velocity),
                                     (GoalMode.CURRENT, current)) if v is not None]
        if len(given) != 1:
            raise UsageError("set_goal takes exactly one of position=, velocity=, current=")
        j = self._joint(name)
        mode, value = given[0]
        if mode is GoalMode.POSITION:
            value = j.config.to_raw(self._limit(j.config, value))
        elif mode is GoalMode.VELOCITY:
            value = max(-j.config.max_velocity, min(j.config.max_velocity, value))
        else:
            value = max(-j.config.max_current, min(j.config.max_current, value))
        self.send(ops.goal_message(mode, value), j.address)

    def set_goals(self, positions: Mapping[str, float]) -> dict[str, float]:
        """All position goals in one SYNC_WRITE; returns the goals actually sent (after clamping)."""
        sent = {name: self._limit(self._joint(name).config, p) for name, p in positions.items()}
        raw = {self._joint(n).address: self._joint(n).config.to_raw(p) for n, p in sent.items()}
        self.send(ops.sync_write_goals(raw), Address.BROADCAST)
        return sent

    def _limit(self, cfg: JointConfig, position: float) -> float:
        goal = cfg.clamp(position)
        last = self._last_goal.get(cfg.name)
        if last is not None and math.isfinite(cfg.max_step):
            goal = max(last - cfg.max_step, min(last + cfg.max_step, goal))
        self._last_goal[cfg.name] = goal
        return goal

    # ------------------------------------------------------------------ state
    def _calibrated(self, state: JointState) -> JointState:
        j = next((x for x in self._joints.values() if x.address == state.address), None)
        if j is None:
            return state
        return dataclasses.replace(state, position=j.config.from_raw(state.position))

    def read_state(self, name: str) -> JointState:
        j = self._joint(name)
        reply = self.request(ops.state_read_request(), j.address)
        return self._calibrated(ops.decode_state_read(j.address, reply.message, reply.time))

    def read_states(self) -> dict[str, JointState]:
        """Every joint's state in one SYNC_READ transaction, by joint name (calibrated positions)."""
        reply = self.request(ops.sync_read_states(), Address.BROADCAST)
        by_address = {j.address: name for name, j in self._joints.items()}
        states = [self._calibrated(s) for s in ops.decode_states(reply.message, reply.time)]
        for s in states:
            name = by_address.get(s.address)
            if name is not None:
                self._last_goal.setdefault(name, s.position)
        return {by_address.get(s.address, f"joint{s.address}"): s for s in states}

    def estop(self, reason: int = 0) -> None:
        """Broadcast an emergency stop (joints stop first, then forward it)."""
        self.send(EStop(reason), Address.BROADCAST)

    def reboot(self, name: str) -> None:
        self.send(Reboot(), self._joint(name).address)
        self._last_goal.pop(name, None)
