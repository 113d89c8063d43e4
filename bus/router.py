"""Router: address-based forwarding between a node's up link and down link, sans-I/O.

Theory of operation
-------------------
The chain is a line: host (address 0) -> joint 1 -> joint 2 -> ... A node has at most two links, by role: ``UP``
(toward the host) and ``DOWN`` (away from it); the host has only a DOWN link. (The node maps roles to its port
numbers: a joint's UP=0 and DOWN=1, the host's port 0 is its DOWN link.) Routing a packet:

* ``dst`` is this node's address (or UNASSIGNED while this node is unassigned): deliver locally;
* BROADCAST: deliver locally and forward DOWN, unless its type is one the node forwards itself after editing it
  (ENUMERATE, SYNC_WRITE, SYNC_READ, CYCLE: :data:`SELF_FORWARDED`); a broadcast is never forwarded UP;
* a type the node gathers on its way up (CYCLE_REPLY: :data:`GATHERED`) coming from DOWN: deliver locally, whatever
  its ``dst``; the node appends its own part and sends it on up itself;
* HOST, or an address below ours: forward UP; an address above ours: forward DOWN.

Forwarding decrements ``ttl``; a packet that arrives with ``ttl == 0`` and must go on is dropped and reported.

Reports: when this node cannot pass a packet on (the next hop gave up: retries, reset, link down; ttl spent; no
link in that direction; the queue toward it full), it builds an UNDELIVERABLE
(:class:`armbus.bus.messages.Undeliverable`) for the host and routes it like any other packet (at the host: delivered
locally). UNDELIVERABLE packets are never reported about (no report storms). A report this node made is sent again when
the hop above reset while the report was in flight (it may have died with that hop's memory): reports are at-least-once,
and the host may see one twice. A broadcast that never left the queue because the link below is down is the end of the
chain, not a failure: not reported, unless the node knows the chain goes on below it
(:attr:`Router.chain_continues`, set by a joint that enumeration found not to be last): then it is a loss for every
joint below, and reported like any other, except the :data:`TURNED_AROUND` types (ENUMERATE, SYNC_READ, CYCLE): the
node answers those itself with the records gathered so far (for a CYCLE it starts the CYCLE_REPLY), and a failed
ENUMERATE is how the chain end is found. Nor is any of those a joint sent itself that the next hop gave up: the joint
answers it (or, after a link reset, sends the ENUMERATE again), and the answer tells the host more than a report
would. The host's own packets are not reported either: the host gets the link's
:class:`~armbus.bus.link.DeliveryFailed` directly.

Backpressure: the router installs an ``accept`` predicate on each link: a packet that must be forwarded is
acked only if the outgoing link's queue has room (room is reserved at that moment), so a full queue withholds the
ack and the previous hop retries instead of the packet being dropped here.

Urgency: safety-critical types (:data:`URGENT_TYPES`: ESTOP only) are sent and forwarded with
``send(..., urgent=True)``, ahead of everything queued on that link (bus/link.py, "Order and urgency"), and their
frames are always acked: neither the outgoing queue nor the node's ``local_accept`` can withhold them. They use the
link's urgent slots; if even those are full (several e-stops already waiting toward the same neighbour), the
forward is reported QUEUE_FULL like any other. TORQUE is not urgent, not even TORQUE off: its effect depends on its
order relative to other torque and register writes (a TORQUE 0 overtaking an earlier ``torque_enable = 1`` would
leave the joint powered), while an ESTOP latches and only a later explicit release undoes it.

``pump(now)`` drains both links' events, acts on them and returns what the node itself must handle: packets for
it (:class:`Delivered`) and link events about its own packets and its links (:class:`LinkNotice`). Call it after
every ``receive_data`` and ``handle_timer`` of the links.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from armbus.bus.codec import Packet
from armbus.bus.link import DeliveryFailed, LinkEndpoint, LinkEvent, PacketAcked, PacketReceived
from armbus.bus.linktable import LinkState
from armbus.bus.messages import Undeliverable, make_packet
from armbus.bus.wire import Address, MsgType, UndeliverableReason

#: A joint's two ports: UP toward the host, DOWN toward the next joint. A host's router has one port, 0, its link
#: down the chain. Every layer above names ports with these two.
UP, DOWN = 0, 1
#: Reports a node holds while its up queue is full: one per packet it can have in flight or queued on both links
#: (2 x (queue_limit + 1) = 18 at the default) with room to spare; beyond it the oldest is dropped and counted.
REPORT_BACKLOG = 32
#: Broadcast types each joint edits before passing on (contracts: ENUMERATE, SYNC_WRITE, SYNC_READ, CYCLE).
SELF_FORWARDED = frozenset({MsgType.ENUMERATE, MsgType.SYNC_WRITE, MsgType.SYNC_READ, MsgType.CYCLE})
#: Broadcasts a joint answers itself when it cannot pass them down (the reply carries the records so far).
TURNED_AROUND = frozenset({int(MsgType.ENUMERATE), int(MsgType.SYNC_READ), int(MsgType.CYCLE)})
#: Replies each joint takes in from below and sends on up with its own record appended (the cyclic exchange).
GATHERED = frozenset({int(MsgType.CYCLE_REPLY)})
#: Types that overtake queued traffic and are never refused for lack of room (see "Urgency" above).
URGENT_TYPES = frozenset({int(MsgType.ESTOP)})
_HOST, _BCAST, _UNASSIGNED = int(Address.HOST), int(Address.BROADCAST), int(Address.UNASSIGNED)
_REPORT = int(MsgType.UNDELIVERABLE)


@dataclass(frozen=True, slots=True)
class Delivered:
    """A packet for this node. ``role``: the link it came in on (UP/DOWN), or None if made here."""

    packet: Packet
    role: int | None


@dataclass(frozen=True, slots=True)
class LinkNotice:
    """A link event for the node: PacketAcked/DeliveryFailed of packets it sent itself, and every LinkReset,
    LinkDown and LineErrorSeen."""

    role: int
    event: LinkEvent


RouterEvent = Delivered | LinkNotice


@dataclass(slots=True)
class RouterCounters:
    delivered: int = 0
    forwarded: int = 0
    ttl_expired: int = 0
    no_route: int = 0
    queue_full: int = 0
    reports_sent: int = 0
    reports_resent: int = 0  # reports sent again after the hop above reset while holding them
    reports_dropped: int = 0  # reports dropped because the backlog overflowed
    reports_suppressed: int = 0  # failures of UNDELIVERABLE packets themselves, and end-of-chain broadcasts
    refused: int = 0  # acks withheld because the outgoing queue was full
    urgent: int = 0  # urgent packets (ESTOP) taken, whatever the queues held
    reserved: list[int] = field(default_factory=lambda: [0, 0])


class Router:
    """Forwarding for one node; see the module docstring."""

    def __init__(
        self,
        address: int,
        up: LinkEndpoint | None,
        down: LinkEndpoint | None,
        *,
        self_forwarded: frozenset[int] = SELF_FORWARDED,
        local_accept: Callable[[Packet], bool] | None = None,
    ) -> None:
        self.address = address
        #: The links by role (UP, DOWN), fixed for the router's life: it installs their ``accept`` and drains their
        #: event queues (:meth:`LinkEndpoint.event_queue`) in place.
        self.links: tuple[LinkEndpoint | None, LinkEndpoint | None] = (up, down)
        self.self_forwarded = frozenset(int(t) for t in self_forwarded)
        #: Optional predicate: can the node take this packet now? False withholds the ack.
        self.local_accept = local_accept
        self.counters = RouterCounters()
        #: The node knows there are nodes below it (see "Reports"): broadcasts failed toward DOWN are reported.
        self.chain_continues = False
        self._local: list[RouterEvent] = []
        #: Reports waiting for room in the up link's queue (a full queue must not lose a report).
        self.backlog: deque[Packet] = deque()  # made here (reports at the host, own broadcasts) until pump()
        for role, link in enumerate(self.links):
            if link is not None:
                link.accept = self._acceptor(role)
        #: (role, that link's live event queue) for each link: what pump() drains in place (the hot path)
        self._drains = tuple((role, link.event_queue()) for role, link in enumerate(self.links) if link is not None)

    # ------------------------------------------------------------------------------------------------ routing
    def route(self, packet: Packet, came_from: int | None) -> tuple[bool, int | None]:
        """(deliver locally?, role of the link to forward on or None)."""
        dst, me = packet.dst, self.address
        if came_from == DOWN and packet.type in GATHERED:
            return True, None
        if dst == _BCAST:
            fwd = came_from != DOWN and packet.type not in self.self_forwarded
            return True, DOWN if fwd else None
        if dst == me:
            return True, None
        if me == _UNASSIGNED:
            return False, UP if dst == _HOST else DOWN
        role = UP if dst == _HOST or dst < me else DOWN
        return False, (None if role == came_from else role)  # never send a packet back where it came from

    def send(self, packet: Packet, now: int) -> bool:
        """Originate ``packet`` here. False if the queue toward its next hop is full (nothing was sent)."""
        local, role = self.route(packet, None)
        if local:
            self._local.append(Delivered(packet, None))
        if role is None:
            return True
        link = self.links[role]
        if link is None:
            if packet.dst != _BCAST:
                self._report(packet, role, UndeliverableReason.NO_ROUTE, now)
            return True
        return link.send(packet, now, urgent=packet.type in URGENT_TYPES)

    def report(self, packet: Packet, role: int, reason: UndeliverableReason, now: int) -> None:
        """Report that this node could not pass ``packet`` on over the link ``role`` (UNDELIVERABLE to the host)."""
        self._report(packet, role, reason, now)

    def pump(self, now: int) -> list[RouterEvent]:
        """Drain both links' events, forward and report; return what the node must handle itself."""
        out, self._local = self._local, []
        me = self.address
        if self.backlog:
            self._flush(now)
        for role, events in self._drains:  # the hot path: drain in place, no call per event
            while events:
                ev = events.popleft()
                cls = ev.__class__
                if cls is PacketReceived:
                    self._received(ev.packet, role, now, out)  # type: ignore[union-attr]
                elif cls is PacketAcked:
                    if ev.packet.src == me:  # type: ignore[union-attr]
                        out.append(LinkNotice(role, ev))
                elif cls is DeliveryFailed:
                    self._failed(ev, role, now, out)  # type: ignore[arg-type]
                else:
                    out.append(LinkNotice(role, ev))
        return out

    # ---------------------------------------------------------------------------------------------- internals
    def _acceptor(self, role: int) -> Callable[[Packet], bool]:
        reserved = self.counters.reserved

        def accept(packet: Packet) -> bool:
            if packet.type in URGENT_TYPES:
                self.counters.urgent += 1
                return True  # never withheld: it overtakes the queues, and a full urgent queue is reported
            local, fwd = self.route(packet, role)
            if local and self.local_accept is not None and not self.local_accept(packet):
                self.counters.refused += 1
                return False
            if fwd is None:
                return True
            link = self.links[fwd]
            if link is None or link.state is LinkState.DOWN:
                return True  # nothing to wait for: it will be reported (or is the end of the chain)
            if link.queue_space - reserved[fwd] <= 0:
                self.counters.refused += 1
                return False
            reserved[fwd] += 1
            return True

        return accept

    def _received(self, packet: Packet, role: int, now: int, out: list[RouterEvent]) -> None:
        local, fwd = self.route(packet, role)
        if local:
            self.counters.delivered += 1
            out.append(Delivered(packet, role))
        if fwd is None:
            if not local:
                self.counters.no_route += 1
                self._report(packet, role, UndeliverableReason.NO_ROUTE, now)
            return
        urgent = packet.type in URGENT_TYPES
        reserved = self.counters.reserved
        if reserved[fwd] and not urgent:  # urgent packets reserve nothing (see _acceptor)
            reserved[fwd] -= 1
        link = self.links[fwd]
        if link is None:
            if packet.dst != _BCAST:
                self.counters.no_route += 1
                self._report(packet, fwd, UndeliverableReason.NO_ROUTE, now)
            return
        if packet.ttl == 0:
            self.counters.ttl_expired += 1
            self._report(packet, fwd, UndeliverableReason.TTL, now)
            return
        if link.send(packet._replace(ttl=packet.ttl - 1), now, urgent=urgent):
            self.counters.forwarded += 1
        else:
            self.counters.queue_full += 1
            self._report(packet, fwd, UndeliverableReason.QUEUE_FULL, now)

    def _failed(self, ev: DeliveryFailed, role: int, now: int, out: list[RouterEvent]) -> None:
        packet = ev.packet
        if packet.type == _REPORT and role == UP:
            if ev.maybe_delivered:  # lost with the hop above (it reset): a second copy is harmless, none is not
                self.counters.reports_resent += 1
                self.backlog.append(packet)
                self._flush(now)
            else:
                self.counters.reports_suppressed += 1  # the link toward the host is down
            return
        if packet.src == self.address:
            out.append(LinkNotice(role, ev))
            if self.address == _HOST or packet.type in TURNED_AROUND:
                return  # the host learns from the notice itself; a joint answers (or resends) these itself
        if packet.dst == _BCAST and not ev.maybe_delivered and (not self.chain_continues or role == UP
                                                                 or packet.type in TURNED_AROUND):
            self.counters.reports_suppressed += 1  # never sent: the link below is down (end of the chain)
            return
        self._report(packet, role, ev.reason, now)

    def _next_hop(self, role: int) -> int:
        me = self.address
        if me == _UNASSIGNED:
            return _HOST if role == UP else _UNASSIGNED
        return me - 1 if role == UP else me + 1

    def _report(self, packet: Packet, role: int, reason: UndeliverableReason, now: int) -> None:
        if packet.type == _REPORT:
            self.counters.reports_suppressed += 1
            return
        report = make_packet(
            Undeliverable(
                reporter=self.address & 0xFF,
                next_hop=self._next_hop(role) & 0xFF,
                orig_src=packet.src,
                orig_dst=packet.dst,
                orig_type=packet.type,
                orig_msg_id=packet.msg_id,
                reason=int(reason),
            ),
            src=self.address & 0xFF,
            dst=_HOST,
            msg_id=packet.msg_id,
        )
        self.counters.reports_sent += 1
        up = self.links[UP]
        if self.address == _HOST or up is None:
            self._local.append(Delivered(report, None))
            return
        backlog = self.backlog
        if len(backlog) >= REPORT_BACKLOG:
            backlog.popleft()
            self.counters.reports_dropped += 1
        backlog.append(report)
        self._flush(now)

    def _flush(self, now: int) -> None:
        """Move waiting reports into the up link's queue while it has room."""
        up = self.links[UP]
        backlog = self.backlog
        while backlog and up is not None and up.send(backlog[0], now):
            backlog.popleft()
