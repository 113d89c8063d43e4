"""Deterministic discrete-event simulation kernel: sans-I/O nodes joined by timed, fault-injected UART links.

Theory of operation
-------------------
Nodes follow the node-driving contract (docs: contracts; :class:`Node`): ``receive_data(port, data, now)``,
``data_to_send(port, now)``, ``next_deadline()``, ``handle_timer(now)``. :meth:`Kernel.connect` joins node A's
port to node B's port with a full-duplex link (:class:`armbus.hil.wire.WireLink`); each link direction has a fault
channel (:class:`armbus.hil.faults.FaultChannel`).

One event queue (``heapq``) holds deliveries, node timers and scheduled calls, ordered by ``(time, sequence)``:
the sequence number is a global counter, so events at the same time run in the order they were scheduled and a
run is exactly reproducible. The kernel jumps its :class:`armbus.hil.clock.SimClock` from event to event; there is no
busy stepping. After every call into a node (delivery, timer, :meth:`Kernel.wake`) it drains
``data_to_send`` on all the node's ports and re-reads ``next_deadline``; a timer event whose deadline is no
longer current is skipped.

Sending: the drained bytes go through the fault channel, then the wire model assigns each byte its arrival
time. There is no event per byte; arrivals are grouped by :class:`Granularity` (the kernel's, or one link direction's:
:meth:`Kernel.set_granularity`):

* ``FRAME`` (default): one delivery per frame, at the arrival of its 0x00 delimiter; bytes after the last
  delimiter form one more delivery at the arrival of their last byte. A node that acts on complete frames
  behaves exactly as if fed byte by byte; the approximation is that a frame's leading bytes reach it at the
  time of its last byte.
* ``CHUNK``: one delivery per drained chunk at the arrival of its last byte (fastest; frames behind another
  frame in the same chunk arrive late by up to that chunk's wire time).
* ``BYTE``: one delivery per byte at its exact arrival (slow; for checking the other two).

Freezing (:meth:`Kernel.freeze`): a frozen node models a hung processor. Its timer does not fire, bytes
arriving meanwhile are lost and counted, and it is not drained; when the freeze ends its deadline is re-read, so
an overdue timer fires at once. Real-time drivers (:mod:`armbus.hil.realtime`) use :meth:`Kernel.next_event_time` and
:meth:`Kernel.deliveries_pending` to decide how long to sleep and whether bytes are still in flight.

Line rates: each end of a link has its own rate (:mod:`armbus.hil.wire`). A node that sets its own UARTs (a
joint) exposes ``port_rates``: a list of its ports' rates indexed by port, one list for the node's whole life,
changed in place. The kernel compares it with the rates it last saw after every call into the node, like
``next_deadline`` (one list comparison, no call: the drain is the hot path), and re-times the node's sending
directions when it changed; a node whose driver sets the rate (the host's serial port) is re-timed with
:meth:`Kernel.set_port_baud`. Bytes that arrive while the two ends of their link disagree on the rate reach the
receiver as garbage: the same number of bytes, each replaced by a seeded random one (framing errors, which the
receiver's deframer counts as line noise), counted in :attr:`Kernel.bytes_garbled`.

Capture: every delivery is reported to the taps (:meth:`Kernel.add_tap`) as ``tap(link_name, direction, t_ns,
data)`` just before the receiving node gets it: what a logic analyser at the receiver would see, after faults
(and, between ends at different rates, the garbage the receiving UART reads), in global time order. A tap that
raises is removed and warned about; the simulation goes on.
"""

from __future__ import annotations

import enum
import heapq
import random
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from armbus.bus.errors import ArmbusError, UsageError
from armbus.hil.clock import SimClock
from armbus.hil.faults import FaultChannel, FaultInjector
from armbus.hil.wire import Burst, Direction, WireDirection, WireLink

Tap = Callable[[str, Direction, int, bytes], None]

#: A node whose timer fires this many times at one instant without time moving on is stuck (its
#: next_deadline() keeps returning a time not after now): far more than any correct node needs.
MAX_FIRES_PER_INSTANT = 10_000

_DELIVER, _TIMER, _CALL = 0, 1, 2


class SimulationError(ArmbusError):
    """A simulated node broke the driving contract (for example a timer that never lets time move on)."""


@runtime_checkable
class Node(Protocol):
    """The node-driving contract. Joints have ports UP=0 and DOWN=1; a host has port 0."""

    def receive_data(self, port: int, data: bytes, now: int) -> None: ...
    def data_to_send(self, port: int, now: int) -> bytes: ...
    def next_deadline(self) -> int | None: ...
    def handle_timer(self, now: int) -> None: ...


class Granularity(str, enum.Enum):
    """How arriving bytes are grouped into deliveries (see the module docstring)."""

    FRAME = "frame"
    CHUNK = "chunk"
    BYTE = "byte"


@dataclass(frozen=True)
class LinkInfo:
    """A link between ``a``'s port ``a_port`` and ``b``'s port ``b_port``."""

    name: str
    a: str
    a_port: int
    b: str
    b_port: int
    wire: WireLink

    def endpoints(self, direction: Direction) -> tuple[str, str]:
        """(sender, receiver) node names of a direction."""
        return (self.a, self.b) if direction == Direction.A_TO_B else (self.b, self.a)


class _Route:
    __slots__ = ("back", "channel", "direction", "dst", "dst_port", "granularity", "link", "wire")

    def __init__(
        self, link: str, direction: Direction, wire: WireDirection, channel: FaultChannel, dst: _Slot, port: int,
        back: WireDirection,
    ) -> None:
        self.link = link
        self.direction = direction
        self.wire = wire
        self.back = back  # the other direction: its sender is this route's receiver, at the receiver's rate
        self.channel = channel
        self.dst = dst
        self.dst_port = port
        self.granularity: Granularity | None = None  # None: the kernel's


class _Slot:
    __slots__ = ("deadline", "fire_count", "fire_time", "frozen_until", "name", "node", "out", "ports", "rates",
                 "rates_seen")

    def __init__(self, name: str, node: Node, ports: tuple[int, ...]) -> None:
        self.name = name
        self.node = node
        #: The node's own ``port_rates`` if it sets its UARTs' rates itself (a joint), else None.
        self.rates: list[int] | None = getattr(node, "port_rates", None)
        self.rates_seen: list[int] = []  # what the kernel last applied
        self.ports = ports
        self.out: dict[int, _Route] = {}
        self.deadline: int | None = None
        self.fire_time = -1
        self.fire_count = 0
        self.frozen_until = -1  # the node runs nothing (no timer, no delivery, no drain) before this time


class Kernel:
    """Runs nodes and links in simulated time. See the module docstring."""

    def __init__(
        self,
        *,
        clock: SimClock | None = None,
        faults: FaultInjector | None = None,
        seed: int = 0,
        granularity: Granularity | str = Granularity.FRAME,
    ) -> None:
        self.clock = clock if clock is not None else SimClock()
        self.faults = faults if faults is not None else FaultInjector(seed)
        try:
            self.granularity = Granularity(granularity)
        except ValueError:
            names = ", ".join(g.value for g in Granularity)
            raise UsageError(f"granularity must be one of {names}, got {granularity!r}") from None
        self.links: dict[str, LinkInfo] = {}
        self._slots: dict[str, _Slot] = {}
        self._heap: list[tuple[int, int, int, object, object]] = []
        self._seq = 0
        self._taps: list[Tap] = []
        #: Counters: events run, deliveries made, bytes delivered, bytes drained from unconnected ports.
        self.events = 0
        self.deliveries = 0
        self.bytes_delivered = 0
        self.bytes_discarded = 0
        #: Bytes that arrived at a frozen node (see :meth:`freeze`) and were lost.
        self.bytes_lost_frozen = 0
        #: Bytes that arrived while the two ends of their link ran at different rates (delivered as garbage).
        self.bytes_garbled = 0
        self._garble_rng = random.Random(f"garble:{seed}")

    # -- building -----------------------------------------------------------------------------------------
    @property
    def now(self) -> int:
        return self.clock.now()

    def add_node(self, name: str, node: Node, ports: Iterable[int] | None = None) -> None:
        """Add a node. ``ports`` defaults to ``node.ports`` if it has one, else the ports later connected.
        Declared ports that stay unconnected are drained too and their bytes discarded (counted)."""
        if not isinstance(name, str) or not name:
            raise UsageError(f"node name must be a non-empty string, got {name!r}")
        if name in self._slots:
            raise UsageError(f"a node named {name!r} already exists")
        missing = [m for m in ("receive_data", "data_to_send", "next_deadline", "handle_timer")
                   if not callable(getattr(node, m, None))]
        if missing:
            raise UsageError(f"node {name!r} lacks the node-driving method(s) {', '.join(missing)}")
        if ports is None:
            ports = getattr(node, "ports", ())
        self._slots[name] = _Slot(name, node, tuple(int(p) for p in ports))
        self._reschedule(self._slots[name], self.now)

    def node(self, name: str) -> Node:
        """The node object added under ``name``."""
        return self._slot(name).node

    @property
    def node_names(self) -> list[str]:
        return list(self._slots)

    def _slot(self, name: str) -> _Slot:
        try:
            return self._slots[name]
        except KeyError:
            raise UsageError(f"no node named {name!r}; nodes: {', '.join(self._slots) or 'none'}") from None

    def connect(
        self, a: str, a_port: int, b: str, b_port: int, *, baud: int, turnaround_ns: int = 0,
        name: str | None = None, b_baud: int | None = None,
    ) -> LinkInfo:
        """Join ``a``'s port ``a_port`` and ``b``'s port ``b_port`` with a UART link; returns its description.
        The link is named ``name`` or ``"a:a_port-b:b_port"``; direction A_TO_B is a -> b. ``baud`` is A's rate,
        ``b_baud`` B's (default: the same); a node with ``port_rates`` is re-read at once."""
        sa, sb = self._slot(a), self._slot(b)
        if sa is sb:
            raise UsageError(f"cannot connect node {a!r} to itself")
        for s, p in ((sa, a_port), (sb, b_port)):
            if p in s.out:
                raise UsageError(f"port {p} of node {s.name!r} is already connected")
        name = name if name is not None else f"{a}:{a_port}-{b}:{b_port}"
        if name in self.links:
            raise UsageError(f"a link named {name!r} already exists")
        wire = WireLink(baud, turnaround_ns, b_baud=b_baud)
        info = LinkInfo(name, a, a_port, b, b_port, wire)
        ab, ba = Direction.A_TO_B, Direction.B_TO_A
        sa.out[a_port] = _Route(name, ab, wire.a_to_b, self.faults.channel(name, ab), sb, b_port, wire.b_to_a)
        sb.out[b_port] = _Route(name, ba, wire.b_to_a, self.faults.channel(name, ba), sa, a_port, wire.a_to_b)
        for s, p in ((sa, a_port), (sb, b_port)):
            if p not in s.ports:
                s.ports = (*s.ports, p)
        self.links[name] = info
        for s in (sa, sb):
            if s.rates is not None:
                self._retime(s, self.now)
        return info

    def set_port_baud(self, name: str, port: int, baud: int) -> None:
        """Node ``name``'s UART on ``port`` runs at ``baud`` from now on (its driver reconfigured the port)."""
        route = self._slot(name).out.get(port)
        if route is None:
            raise UsageError(f"port {port} of node {name!r} is not connected")
        route.wire.set_baud(self.now, baud)

    def port_baud(self, name: str, port: int) -> int:
        """The rate node ``name`` sends at on ``port``."""
        route = self._slot(name).out.get(port)
        if route is None:
            raise UsageError(f"port {port} of node {name!r} is not connected")
        return route.wire.baud

    def set_granularity(self, link: str, direction: Direction, granularity: Granularity | str) -> None:
        """Group the arrivals of one link direction by ``granularity`` instead of the kernel's (a receiver that
        needs each byte's own arrival time, such as a USB adapter model, asks for ``BYTE``)."""
        if link not in self.links:
            raise UsageError(f"no link named {link!r}; links: {', '.join(self.links) or 'none'}")
        info = self.links[link]
        sender, _ = info.endpoints(Direction(direction))
        port = info.a_port if Direction(direction) == Direction.A_TO_B else info.b_port
        self._slot(sender).out[port].granularity = Granularity(granularity)

    def add_tap(self, tap: Tap) -> None:
        """Call ``tap(link_name, direction, t_ns, data)`` on every delivery, in time order."""
        self._taps.append(tap)

    def remove_tap(self, tap: Tap) -> None:
        self._taps.remove(tap)

    # -- outside code touching the simulation --------------------------------------------------------------
    def wake(self, name: str) -> None:
        """Drain a node and re-read its deadline now: call after code outside the kernel called into it
        (for example a host node asked to send a request)."""
        self._drain(self._slot(name), self.now)

    def call_at(self, t: int, fn: Callable[[int], None]) -> None:
        """Run ``fn(now)`` at simulated time ``t`` (not before now), in sequence with the other events; then
        drain every node, since ``fn`` may have called into any of them."""
        if not isinstance(t, int) or t < self.now:
            raise UsageError(f"call_at time must be an integer not before now ({self.now} ns), got {t!r}")
        self._push(t, _CALL, fn, None)

    def freeze(self, name: str, until: int) -> None:
        """Freeze node ``name`` from now until ``until`` (a hung processor): its timer does not fire, bytes that
        arrive meanwhile are lost (counted in :attr:`bytes_lost_frozen`) and it sends nothing. At ``until`` it
        resumes where it stopped: its overdue timer fires at once. Freezing again extends the freeze."""
        slot = self._slot(name)
        if not isinstance(until, int) or until < self.now:
            raise UsageError(f"freeze end must be an integer not before now ({self.now} ns), got {until!r}")
        if until <= slot.frozen_until:
            return
        slot.frozen_until = until
        self._push(until, _CALL, self._thaw_call(slot, until), None)

    def _thaw_call(self, slot: _Slot, until: int) -> Callable[[int], None]:
        def thaw(now: int) -> None:
            if slot.frozen_until == until:
                slot.deadline = None  # re-read its deadline: the timer was swallowed while frozen
                self._reschedule(slot, now)

        return thaw

    def frozen(self, name: str) -> bool:
        """True while node ``name`` is frozen."""
        return self._slot(name).frozen_until > self.now

    def next_event_time(self) -> int | None:
        """Time of the next pending event (a delivery, a timer or a scheduled call), or None."""
        return self._live_head()

    def deliveries_pending(self) -> bool:
        """True while bytes are on some wire (a delivery is scheduled)."""
        return any(entry[2] == _DELIVER for entry in self._heap)

    # -- running ------------------------------------------------------------------------------------------
    def step(self) -> int | None:
        """Run the next event; returns its time, or None if there is nothing left to do."""
        return self._run(None, 1, None)

    def run_until(self, t: int) -> None:
        """Run every event up to and including time ``t``, then move the clock to ``t``."""
        if t < self.now:
            raise UsageError(f"run_until({t}) is in the past (now {self.now} ns)")
        self._run(t, None, None)
        self.clock.jump_to(t)

    def run_for(self, dt: int) -> None:
        """Run for ``dt`` nanoseconds of simulated time."""
        self.run_until(self.now + dt)

    def run_until_idle(self, timeout_ns: int | None = None) -> bool:
        """Run until no event is left (True), or until ``timeout_ns`` of simulated time has passed (False)."""
        limit = None if timeout_ns is None else self.now + timeout_ns
        self._run(limit, None, None)
        if self._live_head() is None:
            return True
        if limit is not None:
            self.clock.jump_to(limit)
        return False

    def run_until_true(self, predicate: Callable[[], bool], timeout_ns: int) -> bool:
        """Run until ``predicate()`` is true (checked before and after each event) or ``timeout_ns`` passes."""
        limit = self.now + timeout_ns
        if predicate():
            return True
        if self._run(limit, None, predicate) is not None and predicate():
            return True
        if self.now < limit:
            self.clock.jump_to(limit)
        return bool(predicate())

    # -- internals ----------------------------------------------------------------------------------------
    def _push(self, t: int, kind: int, a: object, b: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, a, b))

    def _live_head(self) -> int | None:
        """Time of the next live event (dropping stale timer entries), or None."""
        heap = self._heap
        while heap:
            t, _, kind, a, b = heap[0]
            if kind == _TIMER and a.deadline != b:  # type: ignore[attr-defined]
                heapq.heappop(heap)
                continue
            return t
        return None

    def _run(self, limit: int | None, max_events: int | None, predicate: Callable[[], bool] | None) -> int | None:
        """Event loop. Returns the time of the last event run, None if none ran or the predicate stopped it
        before any event."""
        heap = self._heap
        pop = heapq.heappop
        clock = self.clock
        last: int | None = None
        ran = 0
        while heap:
            t, _, kind, a, b = heap[0]
            if limit is not None and t > limit:
                break
            pop(heap)
            if kind == _TIMER:
                slot: _Slot = a  # type: ignore[assignment]
                if slot.deadline != b:
                    continue  # stale
                clock.jump_to(t)
                if slot.frozen_until > t:
                    continue  # swallowed; the thaw call re-arms it
                self._fire(slot, t)
            elif kind == _DELIVER:
                clock.jump_to(t)
                route: _Route = a  # type: ignore[assignment]
                dst = route.dst
                if route.wire.baud != route.back.baud and dst.frozen_until <= t:
                    b = self._garble(b)  # type: ignore[arg-type]
                if dst.frozen_until > t:
                    self.bytes_lost_frozen += len(b)  # type: ignore[arg-type]
                elif self._taps:
                    self._deliver(route, t, b)  # type: ignore[arg-type]
                else:
                    self.deliveries += 1
                    self.bytes_delivered += len(b)  # type: ignore[arg-type]
                    dst.node.receive_data(route.dst_port, b, t)  # type: ignore[arg-type]
                    self._drain(dst, t)
            else:
                clock.jump_to(t)
                a(t)  # type: ignore[operator]
                for s in self._slots.values():  # the call may have touched any node (rare: scheduled faults)
                    if s.frozen_until <= t:
                        self._drain(s, t)
            self.events += 1
            last = t
            ran += 1
            if max_events is not None and ran >= max_events:
                break
            if predicate is not None and predicate():
                break
        return last

    def _fire(self, slot: _Slot, now: int) -> None:
        if slot.fire_time == now:
            slot.fire_count += 1
            if slot.fire_count > MAX_FIRES_PER_INSTANT:
                raise SimulationError(
                    f"node {slot.name!r} keeps asking for its timer at {now} ns without time moving on"
                )
        else:
            slot.fire_time, slot.fire_count = now, 1
        slot.deadline = None
        slot.node.handle_timer(now)
        self._drain(slot, now)

    def _deliver(self, route: _Route, now: int, data: bytes) -> None:
        self.deliveries += 1
        self.bytes_delivered += len(data)
        for tap in self._taps:
            try:
                tap(route.link, route.direction, now, data)
            except Exception as exc:  # a broken listener must not stop the simulation
                self._taps.remove(tap)
                warnings.warn(f"capture tap {tap!r} raised {exc!r} and was removed", RuntimeWarning, stacklevel=2)
        dst = route.dst
        dst.node.receive_data(route.dst_port, data, now)
        self._drain(dst, now)

    def _garble(self, data: bytes) -> bytes:
        """What a receiver at another rate than the sender reads: garbage with framing errors (seeded)."""
        self.bytes_garbled += len(data)
        return self._garble_rng.randbytes(len(data))

    def _retime(self, slot: _Slot, now: int) -> None:
        """Apply the rates of a node that sets its own UARTs."""
        rates = slot.rates
        assert rates is not None
        slot.rates_seen = list(rates)
        for port, route in slot.out.items():
            if port < len(rates) and rates[port] != route.wire.baud:
                route.wire.set_baud(now, rates[port])

    def _drain(self, slot: _Slot, now: int) -> None:
        rates = slot.rates
        if rates is not None and rates != slot.rates_seen:
            self._retime(slot, now)
        node = slot.node
        for port in slot.ports:
            data = node.data_to_send(port, now)
            if data:
                route = slot.out.get(port)
                if route is None:
                    self.bytes_discarded += len(data)
                else:
                    self._send(route, now, bytes(data))
        self._reschedule(slot, now)

    def _reschedule(self, slot: _Slot, now: int) -> None:
        d = slot.node.next_deadline()
        if d != slot.deadline:
            slot.deadline = d
            if d is not None:
                self._push(max(d, now), _TIMER, slot, d)

    def _send(self, route: _Route, now: int, data: bytes) -> None:
        channel = route.channel
        wire = route.wire
        for hold, seg in channel.transmit(now, data):
            burst = wire.send(now + hold, len(seg))
            slices = channel.cut_slices(now, burst)
            if slices is None:
                self._schedule(route, burst, seg, 0, len(seg))
            else:
                for i, j in slices:
                    self._schedule(route, burst, seg, i, j)

    def _schedule(self, route: _Route, burst: Burst, seg: bytes, i: int, j: int) -> None:
        # arrival of handed-over byte k: origin + ceil((first + k + 1) * num / baud), inlined (hot path)
        origin, first, _, num, baud = burst
        heap = self._heap
        push = heapq.heappush
        g = route.granularity or self.granularity
        if g is Granularity.FRAME:
            find = seg.find
            while i < j:
                k = find(0, i, j)
                end = j if k < 0 else k + 1
                self._seq += 1
                push(heap, (origin - (-(first + end) * num // baud), self._seq, _DELIVER, route, seg[i:end]))
                i = end
        elif g is Granularity.CHUNK:
            self._seq += 1
            push(heap, (origin - (-(first + j) * num // baud), self._seq, _DELIVER, route, seg[i:j]))
        else:
            for k in range(i, j):
                self._push(burst.arrival(k), _DELIVER, route, seg[k : k + 1])
