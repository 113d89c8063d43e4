"""The core of ``armbus serve``: one hop link to joint 1 shared by many clients, the lease, the hold; sans-I/O.

Theory of operation
-------------------
:class:`ServeHub` owns the host's :class:`armbus.bus.link.LinkEndpoint` and speaks the serve protocol
(:mod:`armbus.controller.serveproto`) with every client. The driver (:mod:`armbus.controller.server`) feeds it
bytes and integer-ns times, and writes what it returns; the hub never reads a clock or a socket.

Packets: a client's ``SEND`` gets a fresh bus msg_id from the hub (clients choose their msg_ids independently,
so they would collide); :data:`Route` remembers (client, its msg_id, type) under the bus id until the id comes
round again (65536 packets later), so a late reply still finds its client. From the bus:

* a reply or ERROR whose msg_id routes to a client goes to that client only, with the client's msg_id back in
  it; an UNDELIVERABLE report about a client's packet likewise (its ``orig_msg_id`` put back);
* everything else (STATE, FAULT, reports about nobody's packet) goes to every client that asked for packets;
* the link's ack or failure of a packet goes to its client as ``ACKED`` / ``FAILED``; the link's news (reset,
  down, opened, line errors) to every client.

The hub keeps the host node's rules for the shared queue: an ESTOP goes to the link's urgent queue and takes
back every goal (goal SYNC_WRITE, CYCLE with goals) of every client not yet sent (``FAILED``: "superseded by an
e-stop"); a client's new CYCLE takes back its own older CYCLE not yet sent. A client has at most
:data:`CLIENT_PACKETS` ordinary packets at the hub (the client library keeps two); more are refused at once.

The lease (:mod:`armbus.controller.lease`): a ``SEND`` that needs it from a client that does not hold it is
refused with ``FAILED`` (reason QUEUE_FULL, never sent, the text naming the holder) before it reaches the link.
When the holder goes away without giving the lease back (its socket closed: the process was killed, crashed or
ended without closing its arm; a client that closes releases first) the lease is free at once, every client is
told, and the hub makes the arm hold: it reads every joint's state (one SYNC_READ) and sends each
joint whose torque is on SET_GOAL(POSITION, the position just read). A joint that was moving (in any goal mode)
stops where it is and holds that position with torque on; a joint with torque off stays off. The outcome is
counted (``holds``, ``hold_failures``).

Slow clients: each client's output is a buffer the driver drains when the socket can take more. Telemetry and
wire bytes (``RECEIVED`` of unsolicited packets, ``LINK`` line errors, ``WIRE``) are dropped for a client whose
buffer holds :data:`SOFT_LIMIT` bytes or more (``soft_limit``), counted, and the count is sent (``DROPPED``)
once it reads again; answers to its own packets and lease news are never dropped, but a client whose buffer
reaches :data:`HARD_LIMIT` (``hard_limit``) is disconnected (:meth:`ServeHub.closing`). So no client can make
the hub wait or grow without bound, and the arm's traffic never waits for a client.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from armbus.bus import link as hoplink
from armbus.bus.codec import Packet, encode_data
from armbus.bus.errors import DecodeError, EncodeError, PeerError
from armbus.bus.messages import Undeliverable, decode_packet, make_packet
from armbus.bus.router import URGENT_TYPES
from armbus.bus.wire import REPLY_BIT, Address, GoalMode, MsgType, StatusFlag, UndeliverableReason
from armbus.controller import ops
from armbus.controller import serveproto as sp
from armbus.controller.host import STALE_GOAL_REASON, is_goal
from armbus.controller.lease import LeaseTable, needs_lease
from armbus.controller.servelink import lease_refusal

#: Output a client may leave unread before its telemetry and wire bytes are dropped: 256 KiB is ~0.3 s of
#: everything a 1 Mbaud line carries, framed.
SOFT_LIMIT = 262_144
#: Output a client may leave unread before it is disconnected (answers to its own packets are never dropped).
HARD_LIMIT = 4 * 1_048_576
#: Ordinary packets of one client at the hub (queued or in flight) at most; the client library keeps 2.
CLIENT_PACKETS = 16
#: How long the hold's state read may take before it counts as failed.
HOLD_TIMEOUT_NS = 200_000_000
_CYCLE, _ERROR, _UNDELIVERABLE = int(MsgType.CYCLE), int(MsgType.ERROR), int(MsgType.UNDELIVERABLE)


@dataclass(frozen=True)
class Route:
    client: int
    msg_id: int  # the client's
    type: int
    urgent: bool


@dataclass
class Client:
    key: int
    name: str
    flags: int = 0
    greeted: bool = False
    out: bytearray = field(default_factory=bytearray)
    reader: sp.FrameReader = field(default_factory=sp.FrameReader)
    packets: int = 0  # ordinary packets at the hub
    dropped: int = 0
    dropped_told: int = 0


@dataclass
class HubCounters:
    clients: int = 0  # connections ever
    packets: int = 0  # client packets put on the bus
    refused_lease: int = 0
    refused_full: int = 0
    superseded: int = 0
    to_clients: int = 0  # packets routed to their client
    fanned_out: int = 0  # unsolicited packets x clients
    unrouted: int = 0  # answers whose client is gone
    dropped: int = 0  # frames dropped for slow clients
    disconnected_slow: int = 0
    protocol_errors: int = 0
    holds: int = 0
    hold_failures: int = 0


class ServeHub:
    """See the module docstring. ``link_config`` is the host link's (its baud rate is the port's)."""

    def __init__(self, link_config: hoplink.LinkConfig, *, seed: int = 0, soft_limit: int = SOFT_LIMIT,
                 hard_limit: int = HARD_LIMIT) -> None:
        self.soft_limit, self.hard_limit = soft_limit, hard_limit
        self.link = hoplink.LinkEndpoint(link_config, seed=seed, name="serve")
        self.lease = LeaseTable()
        self.clients: dict[int, Client] = {}
        self.counters = HubCounters()
        self._routes: dict[int, Route] = {}
        self._own: dict[int, int] = {}  # the hub's own requests: bus msg_id -> deadline
        self._next_id = 1
        self._backlog: deque[Packet] = deque()
        self._urgent_backlog: deque[Packet] = deque()
        self._closing: list[tuple[int, str]] = []
        self._was_open = False

    # ------------------------------------------------------------------ clients
    def connect(self, key: int, name: str) -> None:
        """A client connected (``name``: who it is, from the socket's peer credentials)."""
        self.clients[key] = Client(key, name)
        self.counters.clients += 1

    def disconnect(self, key: int, now: int) -> None:
        """Client ``key`` is gone: its queued packets are taken back; if it held the lease, the lease is free and
        the arm holds (see the module docstring)."""
        client = self.clients.pop(key, None)
        if client is None:
            return
        self._take_back(lambda p: self._owner(p) == key)
        if self.lease.dropped(key):
            self._tell_holder()
            self._hold(now)

    def client_data(self, key: int, data: bytes, now: int) -> None:
        """Bytes from client ``key``'s socket."""
        client = self.clients.get(key)
        if client is None:
            return
        client.reader.feed(data)
        try:
            for message in client.reader.frames():
                self._from_client(client, message, now)
        except sp.ServeProtocolError as exc:
            self.counters.protocol_errors += 1
            self._closing.append((key, f"protocol error: {exc}"))
        self._pump(now)

    def output(self, key: int) -> bytes:
        """What to write to client ``key`` now (the driver calls it when the socket can take more)."""
        client = self.clients.get(key)
        if client is None or not client.out:
            return b""
        out = bytes(client.out)
        client.out.clear()
        return out

    def pending_output(self, key: int) -> int:
        client = self.clients.get(key)
        return len(client.out) if client is not None else 0

    def closing(self) -> list[tuple[int, str]]:
        """Clients to disconnect, with the reason (taken: each is reported once)."""
        out, self._closing = self._closing, []
        return out

    # ------------------------------------------------------------------ the bus side (node-driving contract)
    def receive_data(self, data: bytes, now: int) -> None:
        self._wire(sp.TO_HOST, data, now)
        self.link.receive_data(data, now)
        self._pump(now)

    def data_to_send(self, now: int) -> bytes:
        out = self.link.data_to_send(now)
        if out:
            self._wire(sp.TO_ARM, out, now)
        return out

    def next_deadline(self) -> int | None:
        deadlines = [d for d in (self.link.next_deadline(), *self._own.values()) if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: int) -> None:
        self.link.handle_timer(now)
        for msg_id, deadline in list(self._own.items()):
            if deadline <= now:
                del self._own[msg_id]
                self.counters.hold_failures += 1
        self._pump(now)

    def port_lost(self) -> None:
        """The serial port vanished: tell every client the link is down (the driver reopens the port)."""
        self._broadcast(sp.Link(sp.LinkNews.DOWN).encode(), droppable=False)
        self._was_open = False

    def port_restored(self, now: int) -> None:
        self.link.reset(now)
        self._pump(now)

    # ------------------------------------------------------------------ from clients
    def _from_client(self, client: Client, m: sp.Message, now: int) -> None:
        if isinstance(m, sp.Hello):
            if client.greeted or m.version != sp.VERSION:
                why = "HELLO twice" if client.greeted else f"version {m.version} (this server speaks {sp.VERSION})"
                raise sp.ServeProtocolError(why)
            client.greeted, client.flags = True, m.flags
            if m.name:
                client.name = f"{m.name}" if m.name.startswith("pid ") else f"{m.name} ({client.name})"
            welcome = sp.Welcome(sp.VERSION, self.link.config.baud, self.link.is_open, self.lease.name or "")
            self._put(client, welcome.encode())
            self._put(client, sp.LeaseHolder(self.lease.held_by(client.key), self.lease.name or "").encode())
        elif not client.greeted:
            raise sp.ServeProtocolError(f"{type(m).__name__} before HELLO")
        elif isinstance(m, sp.Send):
            self._send(client, m.packet, m.urgent, now)
        elif isinstance(m, sp.Lease):
            self._lease(client, m)
        else:
            raise sp.ServeProtocolError(f"a client may not send {type(m).__name__}")

    def _lease(self, client: Client, m: sp.Lease) -> None:
        if m.op == sp.ACQUIRE:
            granted, changed = self.lease.acquire(client.key, m.name or client.name)
        elif m.op == sp.RELEASE:
            granted, changed = True, self.lease.release(client.key)
        else:
            raise sp.ServeProtocolError(f"unknown lease op {m.op}")
        self._put(client, sp.LeaseAnswer(m.token, granted, self.lease.name or "").encode())
        if changed:
            self._tell_holder()

    def _tell_holder(self) -> None:
        name = self.lease.name or ""
        for c in self.clients.values():
            if c.greeted:
                self._put(c, sp.LeaseHolder(self.lease.held_by(c.key), name).encode())

    def _send(self, client: Client, packet: Packet, urgent: bool, now: int) -> None:
        urgent = urgent or packet.type in URGENT_TYPES
        if needs_lease(packet.type, packet.payload) and not self.lease.held_by(client.key):
            self.counters.refused_lease += 1
            self._put(client, sp.Failed(packet.msg_id, UndeliverableReason.QUEUE_FULL, False,
                                        lease_refusal(self.lease.name)).encode())
            return
        if not urgent and client.packets >= CLIENT_PACKETS:
            self.counters.refused_full += 1
            self._put(client, sp.Failed(packet.msg_id, UndeliverableReason.QUEUE_FULL, False,
                                        f"more than {CLIENT_PACKETS} packets of this client at the server").encode())
            return
        msg_id = self._allocate()
        bus_packet = packet._replace(src=Address.HOST, msg_id=msg_id)
        try:
            encode_data(0, 0, bus_packet)  # a packet the line cannot carry is refused now, not when it leaves
        except EncodeError as exc:
            raise sp.ServeProtocolError(f"a packet the bus cannot carry: {exc}") from None
        self._routes[msg_id] = Route(client.key, packet.msg_id, packet.type, urgent)
        self.counters.packets += 1
        if urgent:
            self._failed_all(self._take_back(is_goal), STALE_GOAL_REASON)
            if self._urgent_backlog or not self.link.send(bus_packet, now, urgent=True):
                self._urgent_backlog.append(bus_packet)
            return
        client.packets += 1
        if packet.type == _CYCLE:
            key = client.key
            older = self._take_back(lambda p: p.type == _CYCLE and self._owner(p) == key)
            self.counters.superseded += len(older)
            self._failed_all(older, "superseded: still queued when the next cycle was sent")
        if self._backlog or not self.link.send(bus_packet, now):
            self._backlog.append(bus_packet)

    # ------------------------------------------------------------------ routing
    def _allocate(self) -> int:
        while True:
            msg_id = self._next_id
            self._next_id = (self._next_id + 1) & 0xFFFF
            if msg_id not in self._own:
                self._routes.pop(msg_id, None)
                return msg_id

    def _owner(self, packet: Packet) -> int | None:
        route = self._routes.get(packet.msg_id)
        return route.client if route is not None and packet.msg_id not in self._own else None

    def _take_back(self, which: Callable[[Packet], bool]) -> list[Packet]:
        """Packets matching ``which`` not yet sent, out of the link's queue and the backlog (oldest first)."""
        taken = self.link.withdraw(which)
        if any(which(p) for p in self._backlog):
            taken += [p for p in self._backlog if which(p)]
            self._backlog = deque(p for p in self._backlog if not which(p))
        for p in taken:
            self._settle(p)
        return taken

    def _settle(self, packet: Packet) -> tuple[Client, Route] | None:
        """The client and route of one of its packets that has its outcome now (its slot at the hub is free)."""
        route = self._routes.get(packet.msg_id)
        if route is None or packet.msg_id in self._own:
            return None
        client = self.clients.get(route.client)
        if client is None:
            return None
        if not route.urgent:
            client.packets -= 1
        return client, route

    def _failed_all(self, packets: list[Packet], text: str) -> None:
        for p in packets:
            route = self._routes.get(p.msg_id)
            client = self.clients.get(route.client) if route is not None else None
            if route is not None and client is not None:
                self._put(client, sp.Failed(route.msg_id, UndeliverableReason.QUEUE_FULL, False, text).encode())

    def _pump(self, now: int) -> None:
        link = self.link
        while self._urgent_backlog and link.urgent_space > 0 and link.send(self._urgent_backlog[0], now, True):
            self._urgent_backlog.popleft()
        while self._backlog and link.queue_space > 0 and link.send(self._backlog[0], now):
            self._backlog.popleft()
        while (ev := link.next_event()) is not None:
            if isinstance(ev, hoplink.PacketReceived):
                self._from_bus(ev.packet, now)
            elif isinstance(ev, hoplink.PacketAcked):
                settled = self._settle(ev.packet)
                if settled is not None:
                    self._put(settled[0], sp.Acked(settled[1].msg_id).encode())
            elif isinstance(ev, hoplink.DeliveryFailed):
                settled = self._settle(ev.packet)
                self._own.pop(ev.packet.msg_id, None)
                if settled is not None:
                    self._put(settled[0], sp.Failed(settled[1].msg_id, ev.reason, ev.maybe_delivered, "").encode())
            elif isinstance(ev, hoplink.LinkReset):
                news = sp.LinkNews.RESET_BY_PEER if ev.by_peer else sp.LinkNews.RESET_BY_HOST
                self._broadcast(sp.Link(news).encode(), droppable=False)
            elif isinstance(ev, hoplink.LinkDown):
                self._broadcast(sp.Link(sp.LinkNews.DOWN).encode(), droppable=False)
            elif isinstance(ev, hoplink.LineErrorSeen):
                self._broadcast(sp.Link(sp.LinkNews.LINE_ERROR, int(ev.kind)).encode(), droppable=True)
        if link.is_open and not self._was_open:
            self._broadcast(sp.Link(sp.LinkNews.OPENED).encode(), droppable=False)
        self._was_open = link.is_open
        if (self._backlog and link.queue_space > 0) or (self._urgent_backlog and link.urgent_space > 0):
            self._pump(now)

    def _from_bus(self, packet: Packet, now: int) -> None:
        if packet.msg_id in self._own and packet.type & REPLY_BIT:
            self._own_reply(packet, now)
            return
        if packet.type & REPLY_BIT:  # a reply or an ERROR: to the client that asked
            route = self._routes.get(packet.msg_id)
            if route is not None and packet.type in (route.type | REPLY_BIT, _ERROR):
                self._to_owner(route, packet._replace(msg_id=route.msg_id))
            else:
                self.counters.unrouted += 1
            return
        if packet.type == _UNDELIVERABLE:
            try:
                report = decode_packet(packet)
            except DecodeError:
                report = None
            if isinstance(report, Undeliverable) and report.orig_src == Address.HOST:
                route = self._routes.get(report.orig_msg_id)
                if route is not None:
                    fixed = Undeliverable(report.reporter, report.next_hop, report.orig_src, report.orig_dst,
                                          report.orig_type, route.msg_id, report.reason)
                    self._to_owner(route, packet._replace(payload=fixed.pack()))
                    return
        frame = sp.Received(packet).encode()
        for c in self.clients.values():
            if c.greeted and c.flags & sp.WANT_PACKETS:
                self.counters.fanned_out += 1
                self._put(c, frame, droppable=True)

    def _to_owner(self, route: Route, packet: Packet) -> None:
        client = self.clients.get(route.client)
        if client is None:
            self.counters.unrouted += 1
            return
        self.counters.to_clients += 1
        self._put(client, sp.Received(packet).encode())

    # ------------------------------------------------------------------ the hold
    def _hold(self, now: int) -> None:
        """The lease holder went away: read every joint's state; :meth:`_own_reply` makes them hold."""
        msg_id = self._allocate()
        self._own[msg_id] = now + HOLD_TIMEOUT_NS
        self._queue_own(make_packet(ops.sync_read_states(), Address.HOST, Address.BROADCAST, msg_id), now)

    def _own_reply(self, packet: Packet, now: int) -> None:
        del self._own[packet.msg_id]
        try:
            states = ops.decode_states(decode_packet(packet), now)
        except (DecodeError, PeerError):
            self.counters.hold_failures += 1
            return
        self.counters.holds += 1
        for s in states:
            if s.status & StatusFlag.TORQUE_ON:
                goal = ops.goal_message(GoalMode.POSITION, s.position)
                self._queue_own(make_packet(goal, Address.HOST, s.address, self._allocate()), now)

    def _queue_own(self, packet: Packet, now: int) -> None:
        self._routes.pop(packet.msg_id, None)
        if self._backlog or not self.link.send(packet, now):
            self._backlog.append(packet)
        self._pump(now)

    # ------------------------------------------------------------------ output
    def _put(self, client: Client, frame: bytes, droppable: bool = False) -> None:
        if droppable and len(client.out) >= self.soft_limit:
            client.dropped += 1
            self.counters.dropped += 1
            return
        if len(client.out) >= self.hard_limit:
            if not any(k == client.key for k, _ in self._closing):
                self.counters.disconnected_slow += 1
                self._closing.append((client.key, f"it read nothing while {self.hard_limit} bytes waited for it"))
            return
        if client.dropped != client.dropped_told:
            client.dropped_told = client.dropped
            client.out += sp.Dropped(client.dropped).encode()
        client.out += frame

    def _broadcast(self, frame: bytes, *, droppable: bool) -> None:
        for c in self.clients.values():
            if c.greeted:
                self._put(c, frame, droppable)

    def _wire(self, direction: int, data: bytes, now: int) -> None:
        for c in self.clients.values():
            if c.greeted and c.flags & sp.WANT_WIRE:
                for i in range(0, len(data), sp.WIRE_CHUNK):
                    self._put(c, sp.Wire(direction, now, data[i:i + sp.WIRE_CHUNK]).encode(), droppable=True)
