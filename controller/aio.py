"""The asyncio arm API: the sans-I/O host node driven by an event loop over pyserial-asyncio-fast.

Theory of operation
-------------------
:class:`AsyncArm` has the semantics of :class:`armbus.controller.arm.Arm` (the same operations, the same
:class:`armbus.controller.armmodel.ArmModel` for names, calibration and goal clamping, the same errors) with ``await``
instead of blocking. The port is opened like ``serial.serial_for_url`` (any device path or pyserial URL whose
port has a file descriptor) through ``serial_asyncio_fast.create_serial_connection``, and the transport calls
:class:`_BusProtocol` from the loop: received bytes go into :class:`armbus.controller.host.HostNode` with
``now = time.monotonic_ns()``. After every call into the node (bytes in, a timer, an API call) :meth:`_kick`
writes what the node wants to send, dispatches its events, and re-arms one ``loop.call_at`` timer at the
node's next deadline. That timer is also the heartbeat task: with :meth:`set_heartbeat` the node schedules its
HEARTBEAT broadcasts itself, so the joints' watchdogs are fed for as long as the loop runs.

Waiting: ``send`` returns when the first joint acked the packet, ``request`` when the correlated reply came
(or raises :class:`~armbus.bus.errors.RemoteError`, :class:`~armbus.bus.errors.UndeliverableError`,
:class:`~armbus.bus.errors.ArmTimeoutError`); futures are keyed by msg_id in a
:class:`armbus.controller.fanout.Fanout`, which also holds the listeners. Every wait has a timeout.

Events: ``async for ev in arm.events()`` gives each subscriber every event after it subscribed, through a
bounded queue (:data:`EVENT_QUEUE_LIMIT`; on overflow the oldest is dropped and counted in
:attr:`AsyncArm.events_dropped`: a slow consumer must not grow memory without bound). Callbacks
(:meth:`add_listener`) run in the loop; one that raises, or returns an awaitable that fails, is logged and never
stops the protocol.

Port loss: when the transport reports ``connection_lost`` with an error (an unplugged adapter: reads fail with
EIO), the arm emits :class:`PortLost`, fails every waiter with :class:`~armbus.bus.errors.PortError`, and a reconnect
task reopens the same path every :data:`RECONNECT_S`; once open it resets the host link and emits
:class:`PortRestored`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import serial
import serial_asyncio_fast

from armbus.bus.errors import ArmTimeoutError, LeaseError, PortError, UsageError
from armbus.bus.link import LinkConfig
from armbus.bus.messages import Cycle, Enumerate, EStop, Message, Ping, PingReply, Reboot, Torque
from armbus.bus.wire import DEFAULT_BAUD, Address
from armbus.controller import ops
from armbus.controller.arm import (
    ENUMERATE_TIMEOUT_S,
    LEASE_POLL_NS,
    LINK_POLL_S,
    LINK_SETTLE_TIMEOUT_S,
    NS_PER_S,
    link_settled,
)
from armbus.controller.armmodel import ArmModel, JointGoals
from armbus.controller.backends import busy_message, process_name, resolve_port
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
from armbus.controller.events import (
    HostEvent,
    JointState,
    LeaseAnswered,
    PortLost,
    PortRestored,
    ReplyReceived,
    request_outcome,
    send_outcome,
)
from armbus.controller.fanout import Fanout, Listener
from armbus.controller.host import HostConfig, HostNode
from armbus.controller.ports import port_turnaround_ns
from armbus.controller.servelink import ServeLink, host_node, lease_refusal
from armbus.controller.serveproto import ACQUIRE, RELEASE

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Events a subscriber may fall behind by: 4096 is four seconds of 1 kHz telemetry from one joint.
EVENT_QUEUE_LIMIT = 4096
#: Interval between attempts to reopen a vanished port (USB re-enumeration takes a few hundred ms).
RECONNECT_S = 0.5
_CLOSED = object()  # end-of-stream marker for the event queues


class _BusProtocol(asyncio.Protocol):
    def __init__(self, arm: AsyncArm) -> None:
        self.arm = arm

    def data_received(self, data: bytes) -> None:
        self.arm._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.arm._on_lost(self, exc)


class AsyncArm:
    """A robot arm on one serial bus, for asyncio. ``async with await AsyncArm.open(url) as arm: ...``"""

    def __init__(self, url: str, baud: int, node: HostNode, config: ArmConfig | None, timeout: float,
                 on_close: str) -> None:
        self.url = url
        self.baud = baud
        self.node = node
        self.config = config
        self.timeout = timeout
        self.on_close = on_close
        self.model = ArmModel(config)
        self.events_dropped = 0
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._protocol: _BusProtocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        self._fanout: Fanout[asyncio.Future[HostEvent]] = Fanout(url, log)
        self._queues: list[deque[object]] = []
        self._wakeups: list[asyncio.Event] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconnect: asyncio.Task[None] | None = None
        self._closed = False
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
            await arm._connect()
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"cannot open {url}: {exc}") from None
        await arm.wait_link(settle_timeout)
        if heartbeat_period is not None:
            arm.set_heartbeat(heartbeat_period)
        return arm

    async def wait_link(self, timeout: float) -> bool:
        """Wait until the host link is open and its reset handshake has settled (see
        :func:`armbus.controller.arm.link_settled`); False if it did not within ``timeout`` s (the arm may be off)."""
        loop = self._loop
        end = loop.time() + timeout
        mark: list[int] = []
        while loop.time() < end:
            if link_settled(self.node, time.monotonic_ns(), mark):
                return True
            await asyncio.sleep(LINK_POLL_S)
        return False

    async def _connect(self) -> None:
        protocol = _BusProtocol(self)
        url = resolve_port(self.url)
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                self._loop, lambda: protocol, url, baudrate=self.baud, exclusive=url.startswith("/"))
        except (serial.SerialException, OSError) as exc:
            if "exclusively lock" in str(exc):
                raise PortError(busy_message(self.url, self.url)) from None
            raise
        self._transport, self._protocol = transport, protocol
        self._kick()

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._closed

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
        self._closed = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        if self._timer is not None:
            self._timer.cancel()
        self._fail_waiters(PortError(f"{self.url} closed"))
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
            await asyncio.sleep(0)  # let the transport schedule its close
        for q in self._queues:
            q.append(_CLOSED)
        for w in self._wakeups:
            w.set()
        for task in list(self._tasks):
            task.cancel()

    async def __aenter__(self) -> AsyncArm:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ events
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` in the loop for every event (it may return an awaitable); errors are logged."""
        self._fanout.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._fanout.remove_listener(listener)

    async def events(self) -> AsyncIterator[HostEvent]:
        """Every event from now on, until the arm closes (``async for ev in arm.events()``)."""
        queue: deque[object] = deque()
        wake = asyncio.Event()
        self._queues.append(queue)
        self._wakeups.append(wake)
        try:
            while True:
                while not queue:
                    if self._closed:
                        return
                    wake.clear()
                    await wake.wait()
                item = queue.popleft()
                if item is _CLOSED:
                    return
                assert isinstance(item, HostEvent)
                yield item
        finally:
            self._queues.remove(queue)
            self._wakeups.remove(wake)

    async def wait_for(self, predicate: Callable[[HostEvent], bool], timeout: float) -> HostEvent:
        """The first event from now on for which ``predicate`` is true; ArmTimeoutError after ``timeout`` s."""
        future: asyncio.Future[HostEvent] = self._loop.create_future()

        def check(event: HostEvent) -> None:
            if not future.done() and predicate(event):
                future.set_result(event)

        self._fanout.add_listener(check)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise ArmTimeoutError(f"{self.url}: no matching event within {timeout:g} s") from None
        finally:
            self._fanout.remove_listener(check)

    # ------------------------------------------------------------------ raw access
    def _call(self, fn: Callable[[HostNode, int], T]) -> T:
        if self._closed:
            raise UsageError(f"{self.url} is closed")
        result = fn(self.node, time.monotonic_ns())
        self._kick()
        return result

    async def _await(self, fn: Callable[[HostNode, int], int], timeout: float, what: str, *,
                     reply: bool) -> tuple[int, HostEvent]:
        if self._transport is None:
            raise PortError(f"{self.url} is not connected (waiting for it to come back)")
        future: asyncio.Future[HostEvent] = self._loop.create_future()
        msg_id = self._call(self._fanout.expecting(fn, future, reply=reply))
        try:
            return msg_id, await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise ArmTimeoutError(f"{self.url}: no {what} {msg_id} within {timeout:g} s") from None
        finally:
            self._fanout.forget(msg_id, reply=reply)

    async def send(self, message: Message, dst: int, timeout: float | None = None) -> int:
        """Send and return once the first joint acked the packet; returns the msg_id."""
        msg_id, event = await self._await(lambda h, now: h.send(message, dst, now), timeout or self.timeout,
                                          "ack of packet", reply=False)
        return send_outcome(self.url, msg_id, event)

    async def request(self, message: Message, dst: int, timeout: float | None = None) -> ReplyReceived:
        """Send a request and return its correlated reply (raises on ERROR, UNDELIVERABLE or timeout)."""
        t = timeout or self.timeout
        # the node's own deadline decides; the wait here is a backstop slightly longer than it
        msg_id, event = await self._await(lambda h, now: h.request(message, dst, now, int(t * NS_PER_S)),
                                          t * 1.5 + 0.05, "reply to request", reply=True)
        return request_outcome(self.url, msg_id, event)

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
        """UsageError when the arm is shared by armbus serve: the port's rate is the server's."""
        if self._serve_link() is not None:
            raise UsageError(f"cannot {what} through armbus serve (the server owns the port and its rate): stop "
                             "serve, switch on the port directly (armbus baud), then serve again with --baud")

    def _serve_link(self) -> ServeLink | None:
        link = self.node.link
        return link if isinstance(link, ServeLink) else None

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

    # ------------------------------------------------------------------ time and line rate (as Arm)
    def now(self) -> int:
        """The host clock (ns)."""
        return time.monotonic_ns()

    async def sleep_until(self, t_ns: int) -> None:
        """Wait until the host clock reads ``t_ns`` (the loop runs the protocol meanwhile)."""
        delay = t_ns - time.monotonic_ns()
        if delay > 0:
            await asyncio.sleep(delay / NS_PER_S)

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

    # ------------------------------------------------------------------ the protocol side
    def _on_data(self, data: bytes) -> None:
        self.node.receive_data(0, data, time.monotonic_ns())
        self._kick()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = time.monotonic_ns()
        deadline = self.node.next_deadline()
        if deadline is not None and deadline <= now:
            self.node.handle_timer(now)
        self._kick()

    def _kick(self) -> None:
        """Write what the node wants to send, dispatch its events, re-arm the timer."""
        node = self.node
        transport = self._transport
        if transport is not None:
            out = node.data_to_send(0, time.monotonic_ns())
            if out:
                transport.write(out)
        while (event := node.next_event()) is not None:
            self._dispatch(event)
        deadline = node.next_deadline()
        if deadline != self._timer_at and not self._closed:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = None
            if deadline is not None:
                delay = max(0, deadline - time.monotonic_ns()) / NS_PER_S
                self._timer = self._loop.call_later(delay, self._on_timer)

    def _dispatch(self, event: HostEvent) -> None:
        future = self._fanout.take(event)
        if future is not None and not future.done():
            future.set_result(event)
        for queue, wake in zip(self._queues, self._wakeups, strict=True):
            if len(queue) >= EVENT_QUEUE_LIMIT:
                queue.popleft()
                self.events_dropped += 1
            queue.append(event)
            wake.set()
        self._fanout.notify(event, on_result=self._schedule)  # a listener that raises is logged

    def _schedule(self, result: object) -> None:
        """Run the awaitable a listener returned as a task (its failure is logged by :meth:`_task_done`)."""
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: event listener task failed", self.url, exc_info=task.exception())

    def _fail_waiters(self, error: Exception) -> None:
        for future in self._fanout.take_all():
            if not future.done():
                future.set_exception(error)

    def _on_lost(self, protocol: _BusProtocol, exc: Exception | None) -> None:
        if self._closed or protocol is not self._protocol:
            return
        self._transport = self._protocol = None
        now = time.monotonic_ns()
        reason = str(exc) if exc is not None else "port closed"
        self._fail_waiters(PortError(f"{self.url}: port lost: {reason}"))
        self.node.port_lost(now)
        self._dispatch(PortLost(now, self.url, reason))
        self._kick()
        self._reconnect = self._loop.create_task(self._reconnect_loop())

    async def _reconnect_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(RECONNECT_S)
            try:
                await self._connect()
            except (serial.SerialException, OSError):
                continue
            self.node.port_restored(time.monotonic_ns())
            self._kick()
            self._dispatch(PortRestored(time.monotonic_ns(), self.url))
            return

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the port is open (again); ArmTimeoutError after ``timeout`` s."""
        end = self._loop.time() + timeout
        while self._transport is None and not self._closed and self._loop.time() < end:
            await asyncio.sleep(0.01)
        if self._transport is None:
            raise ArmTimeoutError(f"{self.url}: not connected within {timeout:g} s")
