"""The host's first hop when it is ``armbus serve``: a link that carries packets over the serve socket; sans-I/O.

Theory of operation
-------------------
A client of ``armbus serve`` runs the ordinary :class:`armbus.controller.host.HostNode` (its own msg_ids,
correlation, timeouts, cycles, heartbeats, e-stop priority), so :class:`armbus.controller.arm.Arm` and
:class:`armbus.controller.aio.AsyncArm` work unchanged on a ``serve://PATH`` URL. Only the node's link differs:
:class:`ServeLink` has the interface of :class:`armbus.bus.link.LinkEndpoint` and the same contract with the layer
above (exactly one ``PacketAcked`` or ``DeliveryFailed`` per packet sent; ``withdraw`` takes back what has not
left), but instead of framing packets for a wire it frames them for the serve protocol
(:mod:`armbus.controller.serveproto`), and the server's hop link to joint 1 does the acking: ``ACKED`` means joint
1 acked the packet, as on a direct port.

Flow: packets wait in the link's own queues (ordinary and urgent, the sizes of the hop link's) and leave for the
server while fewer than :data:`WINDOW` ordinary ones are unanswered there; urgent packets (ESTOP) leave at once.
So a client's goals that are still queued here can be taken back by the host node (superseded cycles, stale
goals behind an e-stop), and the server holds at most :data:`WINDOW` ordinary packets per client.

Connection: ``receive_data`` takes the server's frames (a partial frame waits for the rest); ``data_to_send``
gives the client's. The first frame is ``HELLO``; :meth:`ServeLink.reset` (the port came back: a new
connection) fails whatever was at the old server (``LINK_RESET``, maybe delivered) and says hello again. The
link is open while the server's link to joint 1 is.

The lease: :meth:`ServeLink.lease` asks for or gives back the lease; the answer comes as a
:class:`~armbus.controller.events.LeaseAnswered` host event, and every change of holder as
:class:`~armbus.controller.events.LeaseChanged` (through ``report``, the node's :meth:`HostNode.report`).
:meth:`ServeLink.guard` is the node's guard: a packet that needs the lease
(:func:`armbus.controller.lease.needs_lease`) while this client does not hold it raises
:class:`~armbus.bus.errors.LeaseError` naming the holder, before anything is queued.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from armbus.bus.codec import Packet
from armbus.bus.deframer import Deframer
from armbus.bus.errors import LeaseError, UsageError
from armbus.bus.link import DeliveryFailed, LinkConfig, LinkEndpoint, LinkEvent, LinkState
from armbus.bus.linkevents import LineErrorSeen, LinkCounters, LinkDown, LinkReset, PacketAcked, PacketReceived
from armbus.bus.wire import LineErrorKind, UndeliverableReason
from armbus.controller import serveproto as sp
from armbus.controller.events import HostEvent, LeaseAnswered, LeaseChanged
from armbus.controller.events import LinkEvent as HostLinkEvent
from armbus.controller.host import HostConfig, HostNode
from armbus.controller.lease import needs_lease

#: Ordinary packets a client may have unanswered at the server: two keep the line busy across the socket's
#: round trip (the next packet is at the server when joint 1 acks the previous one) while everything else stays
#: here, where the host node can take it back.
WINDOW = 2
SCHEME = "serve://"


def lease_refusal(holder: str | None) -> str:
    """Why motion was refused: the one message, naming the holder."""
    if holder:
        return (f"the arm's lease is held by {holder}: only it may move the arm (reads, monitoring and e-stop are "
                "free); wait until it releases the lease, or stop that program")
    return ("this client does not hold the arm's lease: take it first (arm.acquire_lease() or 'with arm.lease():'; "
            "armbus commands that move take it themselves)")


class ServeLink(LinkEndpoint):
    """A host node's link to ``armbus serve``; see the module docstring. ``name`` is the client's default holder
    name (the server shows it)."""

    def __init__(self, config: LinkConfig | None = None, *, name: str = "", flags: int = sp.WANT_PACKETS) -> None:
        # the hop link's machinery is not used: only its configuration, name and counters (the same interface)
        self.config = config or LinkConfig()
        self.name = name
        self.counters = LinkCounters()
        self.accept = None
        self.accepting = True
        self.flags = flags
        #: Where host events go (the node's ``report``); set by :func:`host_node`.
        self.report: Callable[[HostEvent], None] = lambda event: None
        self.lease_holder: str | None = None
        self.lease_mine = False
        self.server_baud: int | None = None
        self.dropped = 0  # frames the server dropped for this client (it read too slowly)
        self._reader = sp.FrameReader()
        self._deframer = Deframer()  # never fed: the socket carries frames of the serve protocol, not line bytes
        self._outbox = bytearray(sp.Hello(sp.VERSION, flags, name).encode())
        self._events: deque[LinkEvent] = deque()
        self._queue: deque[Packet] = deque()
        self._urgent: deque[Packet] = deque()
        self._away: dict[int, tuple[Packet, bool]] = {}  # msg_id -> (packet, urgent) at the server, unanswered
        self._away_ordinary = 0
        self._open = False
        self._token = 0

    # ------------------------------------------------------------------ LinkEndpoint's interface
    @property
    def state(self) -> LinkState:
        return LinkState.OPEN if self._open else LinkState.SYNCING

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def queue_space(self) -> int:
        return self.config.queue_limit - len(self._queue)

    @property
    def urgent_space(self) -> int:
        return self.config.urgent_limit - len(self._urgent)

    @property
    def queued(self) -> tuple[Packet, ...]:
        return (*self._urgent, *self._queue)

    @property
    def inflight(self) -> Packet | None:
        return next((p for p, _ in self._away.values()), None)

    @property
    def output_frames(self) -> int:
        return 1 if self._outbox else 0

    @property
    def idle(self) -> bool:
        return not self._away and not self._queue and not self._urgent and not self._outbox

    def next_deadline(self) -> int | None:
        return None  # the server times the line; the node times its requests

    def handle_timer(self, now: int) -> None:
        pass

    def next_event(self) -> LinkEvent | None:
        return self._events.popleft() if self._events else None

    def send(self, packet: Packet, now: int, urgent: bool = False) -> bool:
        if urgent:
            if len(self._urgent) >= self.config.urgent_limit:
                return False
            self._urgent.append(packet)
            self.counters.urgent += 1
        else:
            if len(self._queue) >= self.config.queue_limit:
                return False
            self._queue.append(packet)
        self._pump()
        return True

    def withdraw(self, which: Callable[[Packet], bool]) -> list[Packet]:
        taken = [p for p in self._queue if which(p)]
        if taken:
            self._queue = deque(p for p in self._queue if not which(p))
        return taken

    def data_to_send(self, now: int) -> bytes:
        out = bytes(self._outbox)
        self._outbox.clear()
        self.counters.bytes_sent += len(out)
        return out

    def receive_data(self, data: bytes, now: int) -> None:
        self.counters.bytes_received += len(data)
        self._reader.feed(data)
        try:
            for message in self._reader.frames():
                self._handle(message, now)
        except sp.ServeProtocolError as exc:
            self._reader = sp.FrameReader()
            self.counters.framing_errors += 1
            self.report(HostLinkEvent(now, "serve protocol error", str(exc)))
        self._pump()

    def reset(self, now: int) -> None:
        """A new connection to the server: what the old one had is failed (it may have reached the bus)."""
        self._reader = sp.FrameReader()
        self._outbox = bytearray(sp.Hello(sp.VERSION, self.flags, self.name).encode())
        for packet, _ in self._away.values():
            self._fail(packet, UndeliverableReason.LINK_RESET, True)
        self._away.clear()
        self._away_ordinary = 0
        self._open = False
        self.lease_mine, self.lease_holder = False, None  # a new server: nothing known until its WELCOME
        self.counters.resets_sent += 1
        self._events.append(LinkReset(by_peer=False))
        self._pump()

    # ------------------------------------------------------------------ the lease
    def lease(self, op: int, name: str, now: int) -> int:
        """Ask the server to grant (``serveproto.ACQUIRE``) or take back (``RELEASE``) the lease; returns the token
        its :class:`LeaseAnswered` will carry."""
        self._token = (self._token + 1) & 0xFFFF
        self._outbox += sp.Lease(self._token, op, name or self.name).encode()
        return self._token

    def guard(self, msg_type: int, payload: bytes) -> None:
        """The host node's guard: LeaseError for motion without the lease."""
        if not self.lease_mine and needs_lease(msg_type, payload):
            raise LeaseError(lease_refusal(self.lease_holder), holder=self.lease_holder)

    # ------------------------------------------------------------------ internals
    def _pump(self) -> None:
        while self._urgent:
            self._put(self._urgent.popleft(), True)
        while self._queue and self._away_ordinary < WINDOW:
            self._put(self._queue.popleft(), False)

    def _put(self, packet: Packet, urgent: bool) -> None:
        self._away[packet.msg_id] = (packet, urgent)
        self._away_ordinary += not urgent
        self._outbox += sp.Send(packet, urgent).encode()
        self.counters.data_sent += 1
        self.counters.frames_sent += 1

    def _answered(self, msg_id: int) -> Packet | None:
        away = self._away.pop(msg_id, None)
        if away is None:
            return None
        self._away_ordinary -= not away[1]
        return away[0]

    def _fail(self, packet: Packet, reason: UndeliverableReason, maybe: bool) -> None:
        self.counters.failures += 1
        self._events.append(DeliveryFailed(packet, reason, maybe))

    def _handle(self, m: sp.Message, now: int) -> None:
        self.counters.frames_received += 1
        if isinstance(m, sp.Received):
            self.counters.data_delivered += 1
            self._events.append(PacketReceived(m.packet))
        elif isinstance(m, sp.Acked):
            packet = self._answered(m.msg_id)
            if packet is not None:
                self.counters.acked += 1
                self._events.append(PacketAcked(packet))
        elif isinstance(m, sp.Failed):
            packet = self._answered(m.msg_id)
            if packet is not None:
                if m.text:
                    self.report(HostLinkEvent(now, "serve refused", m.text))
                self._fail(packet, _reason(m.reason), m.maybe_delivered)
        elif isinstance(m, sp.Link):
            self._link_news(m)
        elif isinstance(m, sp.LeaseHolder):
            self.lease_holder, self.lease_mine = m.holder or None, m.yours
            self.report(LeaseChanged(now, self.lease_holder, m.yours))
        elif isinstance(m, sp.LeaseAnswer):
            self.report(LeaseAnswered(now, m.token, m.granted, m.holder or None))
        elif isinstance(m, sp.Welcome):
            self.server_baud = m.baud
            self.lease_holder = m.holder or None
            if m.link_open and not self._open:
                self._open = True
                self.counters.resets_accepted += 1
        elif isinstance(m, sp.Dropped):
            self.dropped = m.count
            self.report(HostLinkEvent(now, "serve dropped", m.count))

    def _link_news(self, m: sp.Link) -> None:
        if m.news is sp.LinkNews.OPENED:
            self._open = True
            self.counters.resets_accepted += 1
        elif m.news in (sp.LinkNews.RESET_BY_PEER, sp.LinkNews.RESET_BY_HOST):
            self.counters.resets_accepted += 1
            self._events.append(LinkReset(by_peer=m.news is sp.LinkNews.RESET_BY_PEER))
        elif m.news is sp.LinkNews.DOWN:
            self._open = False
            self.counters.link_down += 1
            self._events.append(LinkDown())
        elif m.news is sp.LinkNews.LINE_ERROR:
            kind = m.detail if m.detail in LineErrorKind._value2member_map_ else int(LineErrorKind.CRC)
            self._events.append(LineErrorSeen(LineErrorKind(kind)))


def _reason(value: int) -> UndeliverableReason:
    return UndeliverableReason(value) if value in UndeliverableReason._value2member_map_ else \
        UndeliverableReason.RETRIES


def is_serve_url(url: str) -> bool:
    return url.startswith(SCHEME)


def host_node(url: str, config: HostConfig, now: int, name: str) -> HostNode:
    """The host node for ``url``: on a ``serve://`` URL one whose link is a :class:`ServeLink` (named ``name``)
    and whose guard is the lease, else the ordinary node over a hop link."""
    if not is_serve_url(url):
        return HostNode(config, now)
    link = ServeLink(config.link, name=name)
    node = HostNode(config, now, link=link, guard=link.guard)
    link.report = node.report
    return node


def served_link(node: HostNode) -> ServeLink | None:
    """The node's link when the arm is shared by ``armbus serve`` (a :class:`ServeLink`), else None."""
    link = node.link
    return link if isinstance(link, ServeLink) else None


def refuse_if_served(node: HostNode, what: str) -> None:
    """UsageError when the arm is shared by armbus serve: the port and its rate are the server's."""
    if served_link(node) is not None:
        raise UsageError(f"cannot {what} through armbus serve (the server owns the port and its rate): stop "
                         "serve, switch on the port directly (armbus baud), then serve again with --baud")
