"""Where the host's events go: the listeners, and the waiters keyed by msg_id. Sans-I/O, shared by every driver.

Theory of operation
-------------------
Three drivers run the same :class:`armbus.controller.host.HostNode`: the threaded
:class:`armbus.controller.runner.NodeRunner`, the asyncio :class:`armbus.controller.aio.AsyncArm` and the simulated-time
:class:`armbus.hil.simarm.SimRunner`. Each drains the node's events and hands every one to a :class:`Fanout`, which
does what they have in common:

* **Waiters.** A caller that sent a packet waits for its send outcome, one that sent a request for its request
  outcome. The driver registers its waiter (a thread event, an asyncio future, a slot the simulation fills) under
  the msg_id with :meth:`Fanout.expect` (or wraps the function that queues the packet with
  :meth:`Fanout.expecting`, which registers it as soon as the msg_id is known, before any event is dispatched:
  a send may fail at once); :meth:`Fanout.take` pops the waiter an event resolves:
  :data:`ACK_OUTCOMES` (:class:`PacketAcked`, :class:`SendFailed`) resolve the ack waiters,
  :data:`REPLY_OUTCOMES` (:class:`ReplyReceived`, :class:`RequestFailed`, :class:`RequestTimedOut`) the reply
  waiters. The two tables are separate: a request's own :class:`PacketAcked` does not end the wait for its reply.
  Each waiter is resolved at most once: the first matching outcome pops it. A wait that gives up removes its
  waiter with :meth:`Fanout.forget`; when the port is lost :meth:`Fanout.take_all` hands every pending waiter
  back to the driver, which fails them in its own way.
* **Listeners.** :meth:`Fanout.notify` calls every listener with the event, in the order they were added, each
  inside its own ``try``: one that raises is logged (``"<name>: event listener ... raised on ..."``, on the
  driver's logger) and the others still get the event. ``on_result`` lets a driver look at what a listener
  returned (AsyncArm schedules an awaitable); it runs inside the same ``try``.

:class:`OutcomeWaits` gives a blocking driver its ``send`` and ``request`` from the one wait it implements.

What stays with each driver: the kind of waiter and how it is resolved or failed, the lock (NodeRunner takes a
snapshot of the listeners with :meth:`Fanout.listeners` and pops the waiter under its lock, then resolves and
notifies outside it), anything between the waiter and the listeners (AsyncArm's subscriber queues), and port
loss and reconnection. The fanout itself does no I/O and takes no lock.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from armbus.controller.events import (
    HostEvent,
    PacketAcked,
    ReplyReceived,
    RequestFailed,
    RequestTimedOut,
    SendFailed,
    request_outcome,
    send_outcome,
)

W = TypeVar("W")
N = TypeVar("N")
#: A callback for every event. The sync drivers ignore what it returns; AsyncArm schedules a returned awaitable.
Listener = Callable[[HostEvent], object]

#: The send outcomes (exactly one per packet sent): they resolve the waiters registered with ``reply=False``.
ACK_OUTCOMES = (PacketAcked, SendFailed)
#: The request outcomes (exactly one per request): they resolve the waiters registered with ``reply=True``.
REPLY_OUTCOMES = (ReplyReceived, RequestFailed, RequestTimedOut)


class Fanout(Generic[W]):
    """The listeners and the msg_id-keyed waiters (of type ``W``) of one driver named ``name``; failures of
    listeners are logged on ``log``. See the module docstring."""

    def __init__(self, name: str, log: logging.Logger) -> None:
        self.name = name
        self.log = log
        self._listeners: list[Listener] = []
        self._acks: dict[int, W] = {}
        self._replies: dict[int, W] = {}

    # ------------------------------------------------------------------ listeners
    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Remove ``listener`` (its first registration); ValueError if it is not registered."""
        self._listeners.remove(listener)

    def listeners(self) -> list[Listener]:
        """A snapshot of the listeners: adding or removing one while they are called does not disturb the call."""
        return list(self._listeners)

    def notify(self, event: HostEvent, listeners: Iterable[Listener] | None = None,
               on_result: Callable[[object], None] | None = None) -> None:
        """Call each listener (``listeners``, else a snapshot of the registered ones) with ``event``; a listener
        that raises, or whose ``on_result(result)`` raises, is logged and the next one is called."""
        for listener in self.listeners() if listeners is None else listeners:
            try:
                result = listener(event)
                if on_result is not None:
                    on_result(result)
            except Exception:  # a user callback must never stop the driver
                self.log.exception("%s: event listener %r raised on %r", self.name, listener, event)

    # ------------------------------------------------------------------ waiters
    def expect(self, msg_id: int, waiter: W, *, reply: bool) -> None:
        """Register ``waiter`` for the outcome of packet ``msg_id``: its reply if ``reply``, else its ack."""
        (self._replies if reply else self._acks)[msg_id] = waiter

    def expecting(self, fn: Callable[[N, int], int], waiter: W, *, reply: bool) -> Callable[[N, int], int]:
        """``fn(node, now)`` (which queues a packet and returns its msg_id), registering ``waiter`` for that msg_id's
        outcome before it returns, so before the driver dispatches any event."""

        def queue(node: N, now: int) -> int:
            msg_id = fn(node, now)
            self.expect(msg_id, waiter, reply=reply)
            return msg_id

        return queue

    def forget(self, msg_id: int, *, reply: bool) -> None:
        """Drop the waiter for ``msg_id`` (a wait that gave up or ended); nothing if there is none."""
        (self._replies if reply else self._acks).pop(msg_id, None)

    def take(self, event: HostEvent) -> W | None:
        """Pop and return the waiter ``event`` resolves, or None (not an outcome, or nobody waits for it)."""
        if isinstance(event, ACK_OUTCOMES):
            return self._acks.pop(event.msg_id, None)
        if isinstance(event, REPLY_OUTCOMES):
            return self._replies.pop(event.msg_id, None)
        return None

    def take_all(self) -> list[W]:
        """Pop every pending waiter (the ack waiters first, then the reply waiters, each in registration order)."""
        waiters = list(self._acks.values()) + list(self._replies.values())
        self._acks.clear()
        self._replies.clear()
        return waiters

    def pending(self) -> int:
        """How many waiters are registered."""
        return len(self._acks) + len(self._replies)


class OutcomeWaits(ABC, Generic[N]):
    """``send`` and ``request`` of a blocking driver (the threaded runner, the simulated-time runner), built on its
    :meth:`_await`: queue the packet with a waiter registered in its :class:`Fanout`, wait for the outcome."""

    name: str

    @abstractmethod
    def _await(self, fn: Callable[[N, int], int], timeout: float, what: str, *,
               reply: bool) -> tuple[int, HostEvent]:
        """Queue ``fn``'s packet (``fn`` returns its msg_id) and wait up to ``timeout`` s for its ack, or its reply
        if ``reply``; returns (msg_id, outcome) or raises ArmTimeoutError / PortError."""

    def send(self, fn: Callable[[N, int], int], timeout: float) -> int:
        """Queue a packet (``fn`` returns its msg_id) and wait until the first hop acked it."""
        msg_id, event = self._await(fn, timeout, "ack of packet", reply=False)
        return send_outcome(self.name, msg_id, event)

    def request(self, fn: Callable[[N, int], int], timeout: float) -> ReplyReceived:
        """Queue a request (``fn`` returns its msg_id) and wait for its reply; raises on failure."""
        msg_id, event = self._await(fn, timeout, "reply to request", reply=True)
        return request_outcome(self.name, msg_id, event)
