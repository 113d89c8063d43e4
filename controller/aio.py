"""The asyncio arm API: :class:`AsyncArm`, the operations of :class:`armbus.controller.arm.Arm` with ``await``.

Theory of operation
-------------------
:class:`AsyncArm` has the semantics of :class:`armbus.controller.arm.Arm` (the same operations, the same
:class:`armbus.controller.armmodel.ArmModel` for names, calibration and goal clamping, the same errors) with ``await``
instead of blocking. It is built on :class:`armbus.controller.aiodriver.AsyncDriver`, which runs the sans-I/O host
node on the event loop: the transport, the timer that is also the heartbeat task, ``send`` / ``request`` and their
timeouts, the bounded event streams and listeners, and the reconnect after a lost port (see that module).
This module adds what is the arm's: opening (the port's adapter turnaround, the settle wait), closing safely (the
``on_close`` policy, the lease given back), the cyclic exchange, the lease, the joint operations and the line rate.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import serial

from armbus.bus.errors import LeaseError, PortError
from armbus.bus.link import LinkConfig
from armbus.bus.messages import Cycle, Enumerate, EStop, Ping, PingReply, Reboot, Torque
from armbus.bus.wire import DEFAULT_BAUD, Address
from armbus.controller import ops
from armbus.controller.aiodriver import AsyncDriver
from armbus.controller.arm import (
    ENUMERATE_TIMEOUT_S,
    LEASE_POLL_NS,
    LINK_SETTLE_TIMEOUT_S,
    NS_PER_S,
)
from armbus.controller.armmodel import ArmModel, JointGoals
from armbus.controller.backends import process_name
from armbus.controller.baud import (
    DEFAULT_DELAY_MS,
    DEFAULT_TRIAL_MS,
    RateReport,
    RateSwitchFailed,
    check_rate,
    note_rates,
    retune_host,
    run_async,
    switch_plan,
)
from armbus.controller.config import ArmConfig, load_config
from armbus.controller.cyclic import CycleView, CyclicReport
from armbus.controller.events import JointState, LeaseAnswered
from armbus.controller.host import HostConfig, HostNode
from armbus.controller.ports import port_turnaround_ns
from armbus.controller.servelink import ServeLink, host_node, lease_refusal, refuse_if_served, served_link
from armbus.controller.serveproto import ACQUIRE, RELEASE

log = logging.getLogger(__name__)
T = TypeVar("T")


class AsyncArm(AsyncDriver):
    """A robot arm on one serial bus, for asyncio. ``async with await AsyncArm.open(url) as arm: ...``"""

    def __init__(self, url: str, baud: int, node: HostNode, config: ArmConfig | None, timeout: float,
                 on_close: str) -> None:
        super().__init__(url, baud, node, timeout)
        self.config = config
        self.on_close = on_close
        self.model = ArmModel(config)
        self._lease_name: str | None = None  # the lease on a directly opened arm (this program's own)

    # ------------------------------------------------------------------ opening and closing
    @classmethod
    async def open(
        cls,
        url: str,
        baud: int = DEFAULT_BAUD,
        *,
        config: ArmConfig | str | Path | None = None,
        timeout: float = 0.1,
        heartbeat_period: float | None = None,
        on_close: str = "hold",
        turnaround_ns: int | None = None,
        settle_timeout: float = LINK_SETTLE_TIMEOUT_S,
    ) -> AsyncArm:
        """Open ``url`` (a device path or a pyserial URL with a file descriptor) and wait up to
        ``settle_timeout`` s for the link to joint 1 to open (a silent arm is not an error here). ``config`` is an
        :class:`ArmConfig` or the path of its TOML file. ``turnaround_ns`` defaults to what the port's USB-serial
        adapter needs (:func:`armbus.controller.ports.port_turnaround_ns`)."""
        config = load_config(config) if isinstance(config, (str, Path)) else config
        if turnaround_ns is None:
            turnaround_ns = port_turnaround_ns(url)
        node = host_node(url, HostConfig(link=LinkConfig(baud=baud, turnaround_ns=turnaround_ns),
                                         reply_timeout_ns=int(timeout * NS_PER_S), seed=secrets.randbits(32)),
                         time.monotonic_ns(), process_name())
        arm = cls(url, baud, node, config, timeout, on_close)
        try:
            await arm.connect()
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"cannot open {url}: {exc}") from None
        await arm.wait_link(settle_timeout)
        if heartbeat_period is not None:
            arm.set_heartbeat(heartbeat_period)
        return arm

    async def close(self) -> None:
        """Stop heartbeats, optionally switch torque off, give the lease back (see :meth:`Arm.close`), close the
        port; idempotent."""
        if self._closed:
            return
        try:
            self.set_heartbeat(None)
            if self.on_close == "torque_off" and self.connected:
                for j in self.model.joints.values():
                    await self.send(Torque(0), j.address)
            link = self._serve_link()
            if link is not None and link.lease_mine and self.connected:
                self._call(lambda h, now: link.lease(RELEASE, "", now))  # written before the transport closes
        except Exception:  # closing must finish: report and go on
            log.exception("while making the joints safe on close")
        await self._shutdown()

    async def __aenter__(self) -> AsyncArm:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ cyclic exchange
    def cycle(self, message: Cycle, timeout_ns: int) -> int:
        """Send one CYCLE into the pipeline (no wait); its CycleReplied or CycleMissed follows as an event."""
        return self._call(lambda h, now: h.cycle(message, now, timeout_ns))

    def cycles_in_flight(self) -> int:
        return self.node.cycles.in_flight

    async def cyclic(self, callback: Callable[[CycleView], Mapping[str, float] | None], rate_hz: float,
                     **options: Any) -> CyclicReport:
        """Run a pipelined cyclic loop (``seconds=`` or ``cycles=``); see :mod:`armbus.controller.aiocyclic`."""
        from armbus.controller.aiocyclic import run_cyclic

        return await run_cyclic(self, callback, rate_hz, **options)

    def set_heartbeat(self, period: float | None) -> None:
        """Broadcast heartbeats every ``period`` seconds (None stops them), feeding the joints' watchdogs."""
        ns = None if period is None else int(period * NS_PER_S)
        self._call(lambda h, now: h.set_heartbeat(ns, now))

    # ------------------------------------------------------------------ the lease (as Arm)
    async def acquire_lease(self, holder: str = "", timeout: float = 0.0) -> None:
        """As :meth:`armbus.controller.arm.Arm.acquire_lease`."""
        link = self._serve_link()
        if link is None:
            self._lease_name = holder or process_name()
            return
        end = self.now() + int(timeout * NS_PER_S)
        while True:
            answer = await self._lease_call(link, ACQUIRE, holder)
            if answer.granted:
                return
            if self.now() >= end:
                raise LeaseError(lease_refusal(answer.holder), holder=answer.holder)
            await self.sleep_until(min(end, self.now() + LEASE_POLL_NS))

    async def release_lease(self) -> None:
        """As :meth:`armbus.controller.arm.Arm.release_lease`."""
        link = self._serve_link()
        if link is None:
            self._lease_name = None
        elif link.lease_mine and self.connected:
            await self._lease_call(link, RELEASE, "")

    @property
    def lease_holder(self) -> str | None:
        """Who holds the lease now, or None."""
        link = self._serve_link()
        return self._lease_name if link is None else link.lease_holder

    def _not_served(self, what: str) -> None:
        refuse_if_served(self.node, what)

    def _serve_link(self) -> ServeLink | None:
        return served_link(self.node)

    async def _lease_call(self, link: ServeLink, op: int, holder: str) -> LeaseAnswered:
        token = self._call(lambda h, now: link.lease(op, holder, now))
        event = await self.wait_for(lambda ev: isinstance(ev, LeaseAnswered) and ev.token == token,
                                    self.timeout * 1.5 + 1.0)
        assert isinstance(event, LeaseAnswered)
        return event

    @asynccontextmanager
    async def lease(self, holder: str = "", timeout: float = 0.0) -> AsyncIterator[AsyncArm]:
        """``async with arm.lease(): ...``: the lease for the block, given back at its end."""
        await self.acquire_lease(holder, timeout)
        try:
            yield self
        finally:
            await self.release_lease()

    # ------------------------------------------------------------------ operations (as Arm)
    async def enumerate(self, timeout: float = ENUMERATE_TIMEOUT_S) -> list[ops.DiscoveredJoint]:
        """As :meth:`armbus.controller.arm.Arm.enumerate`: REBOOTED is reported in the result and cleared."""
        found = ops.decode_enumeration((await self.request(Enumerate(), Address.BROADCAST, timeout)).message)
        status = (await self.request(ops.sync_read_register("status"), Address.BROADCAST, timeout)).message
        found, acknowledge = ops.acknowledge_reboots(found, ops.decode_sync_read_register("status", status))
        if acknowledge is not None:
            await self.send(acknowledge, Address.BROADCAST)
        self.model.discovered(found)
        return found

    @property
    def joint_names(self) -> list[str]:
        return list(self.model.joints)

    async def ping(self, name: str) -> PingReply:
        return ops.decode_ping((await self.request(Ping(), self.model.joint(name).address)).message)

    async def read(self, name: str, register: str) -> int:
        reply = await self.request(ops.read_request(register), self.model.joint(name).address)
        return ops.decode_read(register, reply.message)

    async def write(self, name: str, register: str, value: int) -> None:
        reply = await self.request(ops.write_request(register, value), self.model.joint(name).address)
        ops.check_write_reply(register, reply.message)

    async def torque(self, enable: bool, name: str | None = None) -> None:
        targets = [self.model.joint(name)] if name is not None else list(self.model.joints.values())
        for j in targets:
            await self.send(Torque(int(enable)), j.address)

    async def set_goal(self, name: str | int, *, position: object = None, velocity: object = None,
                       current: object = None) -> None:
        message, address = self.model.goal(name, position, velocity, current)
        await self.send(message, address)

    async def set_goals(self, positions: JointGoals) -> dict[str, float]:
        message, sent = self.model.sync_goals(positions)
        await self.send(message, Address.BROADCAST)
        return sent

    async def sync_write(self, register: str, values: Mapping[str, int]) -> None:
        by_address = {self.model.joint(n).address: v for n, v in values.items()}
        await self.send(ops.sync_write_register(register, by_address), Address.BROADCAST)

    async def sync_read(self, register: str, timeout: float | None = None) -> dict[str, int]:
        """One register from every joint in one SYNC_READ, by joint name (wire units)."""
        reply = await self.request(ops.sync_read_register(register), Address.BROADCAST, timeout)
        values = ops.decode_sync_read_register(register, reply.message)
        names = {j.address: n for n, j in self.model.joints.items()}
        return {names.get(a, f"joint{a}"): v for a, v in values.items()}

    async def read_state(self, name: str) -> JointState:
        j = self.model.joint(name)
        reply = await self.request(ops.state_read_request(), j.address)
        return self.model.calibrated(ops.decode_state_read(j.address, reply.message, reply.time))

    async def read_states(self, timeout: float | None = None) -> dict[str, JointState]:
        reply = await self.request(ops.sync_read_states(), Address.BROADCAST, timeout)
        return self.model.states_by_name(ops.decode_states(reply.message, reply.time))

    async def estop(self, reason: int = 0) -> None:
        await self.send(EStop(reason), Address.BROADCAST)

    async def reboot(self, name: str) -> None:
        await self.send(Reboot(), self.model.joint(name).address)
        self.model.forget(name)

    # ------------------------------------------------------------------ line rate (as Arm)
    def set_port_baud(self, baud: int) -> None:
        """Set the host's own port to ``baud`` (kept when the port is reopened); the joints do not follow."""
        self._not_served("set the port's rate")
        self.baud = check_rate(baud, "baud")
        self.node.link.config = retune_host(self.node.link.config, baud)
        transport = self._transport
        port = getattr(transport, "serial", None)
        if port is not None:
            port.baudrate = baud

    async def set_baud(self, rate: int, chain: int | None = None, *, delay_ms: int = DEFAULT_DELAY_MS,
                       trial_ms: int = DEFAULT_TRIAL_MS) -> RateReport:
        """Switch the running chain's rates with fallback; see :meth:`armbus.controller.arm.Arm.set_baud`."""
        check_rate(rate, "rate")
        self._not_served("switch the line rate")
        chain = rate if chain is None else check_rate(chain, "chain rate")
        joints = len(await self.enumerate())
        plan = switch_plan(joints, rate, chain, self.node.link.config.baud, self.now(),
                           delay_ms=delay_ms, trial_ms=trial_ms, timeout=self.timeout)
        try:
            report = await run_async(self, plan)
        except RateSwitchFailed as exc:
            note_rates(self.node, exc.report)
            raise
        note_rates(self.node, report)
        return report

