"""The asyncio side of an arm: a host node driven by an event loop over a pyserial-asyncio-fast transport.

Theory of operation
-------------------
:class:`AsyncDriver` is what :class:`armbus.controller.aio.AsyncArm` is built on, the part that knows the event loop
and the port but no operation of the arm. The port is opened like ``serial.serial_for_url`` (any device path or
pyserial URL whose port has a file descriptor) through ``serial_asyncio_fast.create_serial_connection``, and the
transport calls :class:`_BusProtocol` from the loop: received bytes go into
:class:`armbus.controller.host.HostNode` with ``now = time.monotonic_ns()``. After every call into the node (bytes
in, a timer, an API call) :meth:`AsyncDriver._kick` writes what the node wants to send, dispatches its events, and
re-arms one ``loop.call_at`` timer at the node's next deadline. That timer is also the heartbeat task: the node
schedules its HEARTBEAT broadcasts itself, so the joints' watchdogs are fed for as long as the loop runs.

Waiting: ``send`` returns when the first joint acked the packet, ``request`` when the correlated reply came
(or raises :class:`~armbus.bus.errors.RemoteError`, :class:`~armbus.bus.errors.UndeliverableError`,
:class:`~armbus.bus.errors.ArmTimeoutError`); futures are keyed by msg_id in a
:class:`armbus.controller.fanout.Fanout`, which also holds the listeners. Every wait has a timeout.

Events: ``async for ev in arm.events()`` gives each subscriber every event after it subscribed, through a
bounded queue (:data:`EVENT_QUEUE_LIMIT`; on overflow the oldest is dropped and counted in
``events_dropped``: a slow consumer must not grow memory without bound). Callbacks (``add_listener``) run in the
loop; one that raises, or returns an awaitable that fails, is logged and never stops the protocol.

Port loss: when the transport reports ``connection_lost`` with an error (an unplugged adapter: reads fail with
EIO), the driver emits :class:`PortLost`, fails every waiter with :class:`~armbus.bus.errors.PortError`, and a
reconnect task reopens the same path every :data:`RECONNECT_S`; once open it resets the host link and emits
:class:`PortRestored`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import serial
import serial_asyncio_fast

from armbus.bus.errors import ArmTimeoutError, PortError, UsageError
from armbus.bus.messages import Message
from armbus.controller.arm import LINK_POLL_S, NS_PER_S, link_settled
from armbus.controller.backends import busy_message, resolve_port
from armbus.controller.events import HostEvent, PortLost, PortRestored, ReplyReceived, request_outcome, send_outcome
from armbus.controller.fanout import Fanout, Listener
from armbus.controller.host import HostNode

log = logging.getLogger("armbus.controller.aio")
T = TypeVar("T")

#: Events a subscriber may fall behind by: 4096 is four seconds of 1 kHz telemetry from one joint.
EVENT_QUEUE_LIMIT = 4096
#: Interval between attempts to reopen a vanished port (USB re-enumeration takes a few hundred ms).
RECONNECT_S = 0.5
_CLOSED = object()  # end-of-stream marker for the event queues


class _BusProtocol(asyncio.Protocol):
    def __init__(self, arm: AsyncDriver) -> None:
        self.arm = arm

    def data_received(self, data: bytes) -> None:
        self.arm._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.arm._on_lost(self, exc)


class AsyncDriver:
    """A host node on an asyncio transport: bytes, timers, waits and events, no arm operation."""

    def __init__(self, url: str, baud: int, node: HostNode, timeout: float) -> None:
        self.url = url
        self.baud = baud
        self.node = node
        self.timeout = timeout
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

    # ------------------------------------------------------------------ the port
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

    async def connect(self) -> None:
        """Open the port (exclusively, for a device path) and start the protocol on it; raises what opening raised,
        :class:`~armbus.bus.errors.PortError` naming the holder when another program has the port."""
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

    async def _shutdown(self) -> None:
        """Close the port and end every wait, stream and task (the arm made its joints safe before)."""
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

    # ------------------------------------------------------------------ time
    def now(self) -> int:
        """The host clock (ns)."""
        return time.monotonic_ns()

    async def sleep_until(self, t_ns: int) -> None:
        """Wait until the host clock reads ``t_ns`` (the loop runs the protocol meanwhile)."""
        delay = t_ns - time.monotonic_ns()
        if delay > 0:
            await asyncio.sleep(delay / NS_PER_S)

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
                await self.connect()
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
