"""The threaded edge: one serial port, one sans-I/O host node, one reader thread, one lock.

Theory of operation
-------------------
:class:`NodeRunner` drives a :class:`armbus.controller.host.HostNode` over a pyserial port (pyserial's
``serial.threaded`` pattern). The reader thread loops: read whatever bytes arrived (blocking at most
:data:`POLL_S`), then, holding the lock, feed them to the node, fire its timer if due, write what it wants to
send, and drain its events. API threads call :meth:`NodeRunner.call` to run a function on the node under the
same lock (so two threads never interleave frames), with the writes flushed before the lock is released.

Outcome events resolve waiters keyed by msg_id (a :class:`armbus.controller.fanout.Fanout` routes them):
:meth:`NodeRunner.send` blocks until the first hop acked a packet, :meth:`NodeRunner.request` until the correlated
reply, ERROR or timeout; every wait has a timeout. Every event then goes to the listeners, called from the thread
that drained it one at a time; a listener that raises is logged and the reader goes on.

Port loss: when a read or write raises ``SerialException``/``OSError`` the runner reports :class:`PortLost`,
fails every waiter, then tries to reopen the port every :data:`RECONNECT_S`; once it is back it resets the
node's link and reports :class:`PortRestored`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import serial

from armbus.bus.errors import ArmTimeoutError, PortError, UsageError
from armbus.bus.wire import NS_PER_S
from armbus.controller.backends import busy_message
from armbus.controller.baud import retune_host
from armbus.controller.events import HostEvent, PortLost, PortRestored
from armbus.controller.fanout import Fanout, OutcomeWaits
from armbus.controller.host import HostNode

log = logging.getLogger(__name__)

#: Read timeout of the reader thread: the resolution of the node's timers. 1 ms is the FTDI latency-timer
#: floor, so polling faster gains nothing on real adapters.
POLL_S = 0.001
#: How much of a wait :meth:`NodeRunner.sleep_until` spins instead of sleeping: a Linux sleep usually wakes
#: 50-100 us late (more on a loaded machine); 100 us of spinning per wait keeps a 1 kHz loop's deadlines to
#: microseconds for at most 10 % of a core.
SPIN_NS = 100_000
#: Interval between attempts to reopen a vanished port (USB re-enumeration takes a few hundred ms).
RECONNECT_S = 0.5
T = TypeVar("T")
Listener = Callable[[HostEvent], None]


def sleep_until(t_ns: int, clock: Callable[[], int] = time.monotonic_ns) -> None:
    """Wait until ``clock()`` reads ``t_ns``: a plain sleep to :data:`SPIN_NS` before it, then the rest spinning
    on the clock (a sleep alone wakes 50-500 us late on a loaded machine)."""
    delay = t_ns - clock()
    if delay > SPIN_NS:
        time.sleep((delay - SPIN_NS) / NS_PER_S)
    while clock() < t_ns:
        pass


class _Waiter:
    __slots__ = ("done", "event")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.event: HostEvent | None = None

    def resolve(self, event: HostEvent) -> None:
        self.event = event
        self.done.set()


class NodeRunner(OutcomeWaits[HostNode]):
    """Runs ``node`` over a serial port opened by ``open_port``; see the module docstring."""

    def __init__(self, node: HostNode, open_port: Callable[[], Any], clock: Callable[[], int], name: str) -> None:
        self.node = node
        self.name = name
        self._open_port = open_port
        self._clock = clock
        self._lock = threading.RLock()
        self._fanout: Fanout[_Waiter] = Fanout(name, log)  # guarded by _lock
        self._closed = threading.Event()
        self._connected = threading.Event()
        self._baud: int | None = None  # set_port_baud's rate, for a reopened port
        try:
            self._port: Any = open_port()
        except ValueError as exc:  # pyserial: an unknown URL scheme or a bad option in the URL
            raise UsageError(f"cannot open {name}: {exc} (a device path such as /dev/ttyUSB0, a pyserial URL, "
                             "or virtual)") from None
        except (serial.SerialException, OSError) as exc:
            if "exclusively lock" in str(exc):
                raise PortError(busy_message(name, name)) from None
            raise PortError(f"cannot open {name}: {exc}") from None
        self._port.timeout = POLL_S
        self._connected.set()
        self._thread = threading.Thread(target=self._run, name=f"armbus-reader {name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ API side
    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._fanout.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._fanout.remove_listener(listener)

    @property
    def port(self) -> Any:
        """The open pyserial port (for tools that look at its backend, such as a virtual arm's ``virtual_arm``)."""
        return self._port

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def now(self) -> int:
        return self._clock()

    def sleep_until(self, t_ns: int) -> None:
        """Sleep until the clock reads ``t_ns`` (the reader thread goes on meanwhile); see :func:`sleep_until`."""
        sleep_until(t_ns, self._clock)

    def set_port_baud(self, baud: int) -> None:
        """Set the port to ``baud`` (kept when the port is reopened) and the host link's timers with it."""
        with self._lock:
            self._baud = baud
            self.node.link.config = retune_host(self.node.link.config, baud)
            if self._connected.is_set():
                self._port.baudrate = baud

    def call(self, fn: Callable[[HostNode, int], T]) -> T:
        """Run ``fn(node, now)`` under the lock and flush what it queued."""
        if self._closed.is_set():
            raise UsageError(f"{self.name} is closed")
        with self._lock:
            result = fn(self.node, self._clock())
            self._flush_locked()
        self._dispatch(self._drain())
        return result

    def _check_connected(self) -> None:
        if not self._connected.is_set() and not self._closed.is_set():
            raise PortError(f"{self.name}: the port is lost; reopening it every {RECONNECT_S:g} s")

    def _await(self, fn: Callable[[HostNode, int], int], timeout: float, what: str, *,
               reply: bool) -> tuple[int, HostEvent]:
        """Queue ``fn``'s packet with a waiter for its ack (or ``reply``) and wait for that outcome."""
        self._check_connected()
        waiter = _Waiter()
        msg_id = self.call(self._fanout.expecting(fn, waiter, reply=reply))
        return msg_id, self._wait(waiter, timeout, f"{what} {msg_id}", msg_id, reply)

    def _wait(self, waiter: _Waiter, timeout: float, what: str, msg_id: int, reply: bool) -> HostEvent:
        if not waiter.done.wait(timeout):
            with self._lock:
                self._fanout.forget(msg_id, reply=reply)
            raise ArmTimeoutError(f"{self.name}: no {what} within {timeout:g} s")
        assert waiter.event is not None
        if isinstance(waiter.event, PortLost):
            raise PortError(f"{self.name}: port lost while waiting for the {what}: {waiter.event.reason}")
        return waiter.event

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2.0)
        with self._lock, contextlib.suppress(serial.SerialException, OSError):
            self._port.close()

    # ------------------------------------------------------------------ reader side
    def _run(self) -> None:
        while not self._closed.is_set():
            if not self._connected.is_set():
                self._reconnect()
                continue
            try:
                data = self._port.read(max(1, self._port.in_waiting))
                with self._lock:
                    now = self._clock()
                    if data:
                        self.node.receive_data(0, bytes(data), now)
                    deadline = self.node.next_deadline()
                    if deadline is not None and deadline <= now:
                        self.node.handle_timer(now)
                    self._flush_locked()
            except (serial.SerialException, OSError, TypeError) as exc:
                # pyserial raises TypeError from read() on some platforms when the device disappears
                self._lost(str(exc) or type(exc).__name__)
            self._dispatch(self._drain())

    def _flush_locked(self) -> None:
        if not self._connected.is_set():
            return
        out = self.node.data_to_send(0, self._clock())
        if out:
            self._port.write(out)

    def _drain(self) -> list[HostEvent]:
        with self._lock:
            events = []
            while (event := self.node.next_event()) is not None:
                events.append(event)
            return events

    def _dispatch(self, events: list[HostEvent]) -> None:
        for event in events:
            with self._lock:
                waiter = self._fanout.take(event)
                listeners = self._fanout.listeners()
            if waiter is not None:
                waiter.resolve(event)
            self._fanout.notify(event, listeners)  # a listener that raises is logged: the reader goes on

    def _lost(self, reason: str) -> None:
        now = self._clock()
        with self._lock:
            self._connected.clear()
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
            lost = PortLost(now, self.name, reason)
            waiters = self._fanout.take_all()
            self.node.port_lost(now)
        for w in waiters:
            w.resolve(lost)
        self._dispatch([lost])

    def _reconnect(self) -> None:
        if self._closed.wait(RECONNECT_S):
            return
        try:
            port = self._open_port()
        except (serial.SerialException, OSError):
            return
        port.timeout = POLL_S
        with self._lock:
            if self._baud is not None:
                port.baudrate = self._baud
            self._port = port
            self.node.port_restored(self._clock())
            self._connected.set()
            self._flush_locked()
        self._dispatch([PortRestored(self._clock(), self.name)])
