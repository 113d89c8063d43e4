"""The host node: message ids, request/reply correlation, heartbeats and events over one hop link; sans-I/O.

Theory of operation
-------------------
The host is the node at address 0 with a single port (0) toward joint 1. It follows the node-driving contract
(``receive_data`` / ``data_to_send`` / ``next_deadline`` / ``handle_timer``, times in integer ns) and owns one
:class:`armbus.bus.link.LinkEndpoint`, which makes delivery to the first joint reliable; joints forward from there.

Sending: :meth:`HostNode.send` wraps a message in a packet with a fresh ``msg_id`` (:mod:`armbus.controller.correlator`)
and hands it to the link; when the first joint acks it the node reports :class:`PacketAcked` (or
:class:`SendFailed` if the link gives up). When the link's queue is full, packets wait in a host backlog of
:data:`BACKLOG_LIMIT` packets; beyond that a send fails at once (the bus cannot keep up; streaming callers
should lower their rate rather than queue stale goals).

E-stop: an ESTOP (:meth:`HostNode.estop`, or any :meth:`send` of one; the types are
:data:`armbus.bus.router.URGENT_TYPES`) goes ahead of the host backlog and of the link's queue (``send(...,
urgent=True)``, bus/link.py "Order and urgency"); it waits only for the frame in flight. It has a backlog of its
own (:data:`BACKLOG_LIMIT` as well) for when the link's urgent slots are full. With
``HostConfig.estop_drops_goals`` (the default) it also takes back every goal SYNC_WRITE (one that writes only
goal_position .. goal_current) still waiting in the backlog or the link queue: goals sent before a stop are stale
by definition, and an e-stopped joint would refuse them anyway (one ERROR per joint and goal). Each is reported
with :class:`SendFailed` ("superseded by an e-stop"), nothing vanishes. Other packets the ESTOP overtakes are
still delivered after it; the joints refuse an e-stop release older than the ESTOP (joints/node.py).

Requests: :meth:`HostNode.request` also registers the msg_id with a deadline; exactly one of
:class:`ReplyReceived`, :class:`RequestFailed` (ERROR reply, UNDELIVERABLE report, link failure) or
:class:`RequestTimedOut` follows.

Unsolicited traffic becomes events: STATE -> :class:`JointState`, FAULT -> :class:`FaultReported`,
UNDELIVERABLE -> :class:`UndeliverableReported` (also when it fails a request), link resets, line errors and
link-down -> :class:`LinkEvent`; an ERROR answering a command sent with :meth:`HostNode.send` ->
:class:`CommandRefused`; anything else nobody waits for -> :class:`StrayMessage`. A packet whose payload does
not decode is line noise at the message layer: counted, reported, never raised.

Cycles: :meth:`HostNode.cycle` sends one CYCLE of the cyclic exchange and follows it in a
:class:`~armbus.controller.cycles.CycleTracker` (bounded in flight, replies matched by msg_id, every state put on the
host's clock): exactly one ``CycleReplied`` or ``CycleMissed`` (:mod:`armbus.controller.events`) per cycle, and a
late reply after a miss is a ``CycleReplied`` with ``late``; the first joint's ack is not reported. A cycle still
waiting in the host's queues when the next is sent is taken back (its goals are stale) and reported missed; an
e-stop takes back every cycle with goals not yet sent, like goal SYNC_WRITEs. A CYCLE sent with :meth:`request`
instead is an ordinary request (one blocking exchange).

Heartbeats: with :meth:`set_heartbeat` the node broadcasts HEARTBEAT(host_time_ms) every period on an absolute
schedule (a late timer skips missed beats rather than bursting them), to feed the joints' watchdogs. Their acks
are internal and not reported.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from armbus.bus import link as hoplink
from armbus.bus.codec import Packet
from armbus.bus.errors import DecodeError, PeerError, UndeliverableError, UsageError
from armbus.bus.messages import (
    Cycle,
    CycleReply,
    Error,
    EStop,
    Fault,
    Heartbeat,
    Message,
    State,
    Undeliverable,
    decode_packet,
    make_packet,
)
from armbus.bus.router import URGENT_TYPES
from armbus.bus.wire import DEFAULT_TTL, NS_PER_MS, Address, MsgType, UndeliverableReason
from armbus.controller.correlator import Correlator
from armbus.controller.cycles import CycleTiming, CycleTracker
from armbus.controller.events import (
    CommandRefused,
    FaultReported,
    HostEvent,
    JointState,
    LinkEvent,
    PacketAcked,
    SendFailed,
    StrayMessage,
    UndeliverableReported,
)
from armbus.joints.registers import BY_NAME

#: Packets the host holds behind a full link queue: 64 packets is ~30 ms of traffic at 1 Mbaud, longer than
#: any sensible wait for a goal; beyond it a send fails immediately.
BACKLOG_LIMIT = 64
#: Default reply timeout: a round trip along 8 joints at 1 Mbaud takes a few ms; 100 ms covers retries.
DEFAULT_REPLY_TIMEOUT_NS = 100 * NS_PER_MS
_MSG_ID_TYPES = {MsgType.STATE, MsgType.FAULT, MsgType.UNDELIVERABLE}
_SYNC_WRITE = int(MsgType.SYNC_WRITE)
_CYCLE, _CYCLE_REPLY = int(MsgType.CYCLE), int(MsgType.CYCLE_REPLY)
#: Requests with no side effect at the joints: safe to send again when a link reset may have lost them.
_RESENDABLE = frozenset({int(MsgType.PING), int(MsgType.READ), int(MsgType.SYNC_READ)})
#: Register bytes a goal SYNC_WRITE may cover: goal_position, goal_velocity, goal_current (the joints' map).
_GOAL_BYTES = frozenset(a for name in ("goal_position", "goal_velocity", "goal_current")
                        for a in range(BY_NAME[name].address, BY_NAME[name].address + BY_NAME[name].size))
STALE_GOAL_REASON = "superseded by an e-stop (a goal queued before it is stale)"


@dataclass(frozen=True)
class HostConfig:
    link: hoplink.LinkConfig = field(default_factory=hoplink.LinkConfig)
    reply_timeout_ns: int = DEFAULT_REPLY_TIMEOUT_NS
    heartbeat_period_ns: int | None = None  # None: no heartbeats until set_heartbeat()
    first_msg_id: int = 1
    seed: int = 0  # the link's first nonce: Arm.open and AsyncArm.open draw it at random (docs/hoplink.md)
    estop_drops_goals: bool = True  # an ESTOP takes back goal SYNC_WRITEs not yet sent (see the module doc)


@dataclass
class HostCounters:
    sent: int = 0
    requests: int = 0
    replies: int = 0
    timeouts: int = 0
    failures: int = 0
    states: int = 0
    faults: int = 0
    undeliverable: int = 0
    refused: int = 0  # ERROR answers to sent commands (CommandRefused)
    resent: int = 0  # requests sent again after a link reset lost them in flight
    stray: int = 0
    undecodable: int = 0
    heartbeats: int = 0
    backlog_overflows: int = 0
    estops: int = 0
    goals_dropped: int = 0  # goal SYNC_WRITEs taken back by an ESTOP before they were sent


class HostNode:
    """Sans-I/O host: see the module docstring."""

    PORT = 0

    def __init__(self, config: HostConfig | None = None, now: int = 0, *, link: hoplink.LinkEndpoint | None = None,
                 guard: Callable[[int, bytes], None] | None = None) -> None:
        self.config = config or HostConfig()
        #: The link to the first hop: joint 1 over a hop link, or a :class:`armbus.controller.servelink.ServeLink`.
        self.link = link or hoplink.LinkEndpoint(self.config.link, seed=self.config.seed, name="host")
        #: ``guard(type, payload)`` may refuse a packet before anything is queued, by raising (the lease).
        self.guard = guard
        self.counters = HostCounters()
        self._correlator = Correlator(self.config.first_msg_id)
        self._events: deque[HostEvent] = deque()
        self._backlog: deque[Packet] = deque()
        self._resent: deque[int] = deque(maxlen=BACKLOG_LIMIT)  # msg_ids sent again after a link reset
        self._urgent_backlog: deque[Packet] = deque()  # ESTOPs waiting for the link's urgent slots
        self._internal: set[int] = set()  # msg ids whose ack is not reported (heartbeats)
        self._heartbeat_period: int | None = None
        self._next_heartbeat: int | None = None
        baud = self.config.link.baud
        self.cycles = CycleTracker(CycleTiming(baud, baud))
        if self.config.heartbeat_period_ns is not None:
            self.set_heartbeat(self.config.heartbeat_period_ns, now)

    # ------------------------------------------------------------------ API
    def send(self, message: Message, dst: int, now: int) -> int:
        """Send ``message`` to ``dst``; returns its msg_id. PacketAcked / SendFailed follows."""
        self._check(message)
        msg_id = self._correlator.allocate()
        self._queue(make_packet(message, Address.HOST, dst, msg_id, DEFAULT_TTL), now)
        self.counters.sent += 1
        return msg_id

    def estop(self, reason: int, now: int) -> int:
        """Broadcast ESTOP(reason) ahead of everything queued; returns its msg_id. PacketAcked / SendFailed
        follows (the ack is joint 1's; every joint stops itself, then forwards it, see joints/node.py)."""
        return self.send(EStop(reason), Address.BROADCAST, now)

    def request(self, message: Message, dst: int, now: int, timeout_ns: int | None = None) -> int:
        """Send a request and await its reply by events; returns the msg_id."""
        if message.TYPE | 0x80 not in MsgType._value2member_map_:
            raise UsageError(f"{message.TYPE.name} gets no reply; use send()")
        timeout = self.config.reply_timeout_ns if timeout_ns is None else timeout_ns
        if timeout <= 0:
            raise UsageError(f"request timeout must be positive, got {timeout} ns")
        self._check(message)
        msg_id = self._correlator.allocate()
        self._correlator.add(msg_id, dst, int(message.TYPE), now + timeout)  # before queueing: may fail at once
        self._queue(make_packet(message, Address.HOST, dst, msg_id, DEFAULT_TTL), now)
        self.counters.sent += 1
        self.counters.requests += 1
        return msg_id

    def cycle(self, message: Cycle, now: int, timeout_ns: int) -> int:
        """Send one CYCLE of the cyclic exchange, followed by the tracker (see "Cycles"); returns its msg_id.
        A cycle still queued here is taken back first."""
        if timeout_ns <= 0:
            raise UsageError(f"cycle timeout must be positive, got {timeout_ns} ns")
        self._check(message)
        for p in self._take_back(_is_cycle):
            self._internal.discard(p.msg_id)
            ev = self.cycles.withdrawn(p.msg_id, now, "superseded: still queued when the next cycle was sent",
                                       superseded=True)
            if ev is not None:
                self._events.append(ev)
        msg_id = self._correlator.allocate()
        self._internal.add(msg_id)  # its ack is not reported: the reply or the miss is the cycle's outcome
        self._events.extend(self.cycles.sent(msg_id, now, timeout_ns))
        self._queue(make_packet(message, Address.HOST, Address.BROADCAST, msg_id, DEFAULT_TTL), now)
        self.counters.sent += 1
        return msg_id

    def set_heartbeat(self, period_ns: int | None, now: int) -> None:
        """Broadcast HEARTBEAT every ``period_ns`` starting now; None stops."""
        if period_ns is not None and period_ns <= 0:
            raise UsageError(f"heartbeat period must be positive, got {period_ns} ns")
        self._heartbeat_period = period_ns
        self._next_heartbeat = now if period_ns is not None else None

    def next_event(self) -> HostEvent | None:
        return self._events.popleft() if self._events else None

    def report(self, event: HostEvent) -> None:
        """Queue ``event`` as the node's own (a link that knows more than packets reports through it)."""
        self._events.append(event)

    @property
    def pending_requests(self) -> int:
        return self._correlator.pending

    @property
    def backlogged(self) -> int:
        """Packets waiting in the host backlog for room in the link's queue (ESTOPs waiting for the link's urgent
        slots not counted); at most :data:`BACKLOG_LIMIT`."""
        return len(self._backlog)

    @property
    def heartbeats_unacked(self) -> int:
        """Heartbeats sent whose ack (internal, never reported) or failure has not come yet."""
        return len(self._internal)

    def port_lost(self, now: int) -> None:
        """The port vanished: fail every pending request and the backlog."""
        error = PeerError("serial port lost")
        self._events.extend(self._correlator.cancel_all(now, error))
        for backlog in (self._urgent_backlog, self._backlog):
            while backlog:
                self._send_failed(backlog.popleft(), "port lost", now)

    def port_restored(self, now: int) -> None:
        """The port is back: start a new link session."""
        self.link.reset(now)
        self._pump(now)

    # ------------------------------------------------------------------ node-driving contract
    def receive_data(self, port: int, data: bytes, now: int) -> None:
        self.link.receive_data(data, now)
        self._pump(now)

    def data_to_send(self, port: int, now: int) -> bytes:
        return self.link.data_to_send(now)

    def next_deadline(self) -> int | None:
        deadlines = [d for d in (self.link.next_deadline(), self._correlator.next_deadline(),
                                 self._next_heartbeat, self.cycles.next_deadline()) if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: int) -> None:
        self.link.handle_timer(now)
        if self._next_heartbeat is not None and now >= self._next_heartbeat:
            self._beat(now)
        expired = self._correlator.expire(now)
        self.counters.timeouts += len(expired)
        self._events.extend(expired)
        self._events.extend(self.cycles.expire(now))
        self._pump(now)

    # ------------------------------------------------------------------ internals
    def _check(self, message: Message) -> None:
        if self.guard is not None:
            self.guard(int(message.TYPE), message.pack())

    def _beat(self, now: int) -> None:
        period = self._heartbeat_period
        assert period is not None and self._next_heartbeat is not None
        msg_id = self._correlator.allocate()
        self._internal.add(msg_id)
        self._queue(make_packet(Heartbeat((now // NS_PER_MS) & 0xFFFFFFFF), Address.HOST, Address.BROADCAST,
                                msg_id), now)
        self.counters.heartbeats += 1
        missed = (now - self._next_heartbeat) // period
        self._next_heartbeat += (missed + 1) * period  # absolute schedule; skip beats a late timer missed

    def _queue(self, packet: Packet, now: int) -> None:
        if packet.type in URGENT_TYPES:
            self._queue_urgent(packet, now)
            return
        if self._backlog or not self.link.send(packet, now):
            if len(self._backlog) >= BACKLOG_LIMIT:
                self.counters.backlog_overflows += 1
                self._send_failed(packet, "host backlog full (the bus cannot keep up)", now)
                return
            self._backlog.append(packet)

    def _queue_urgent(self, packet: Packet, now: int) -> None:
        self.counters.estops += 1
        if self.config.estop_drops_goals:
            self._drop_stale_goals(now)
        if self._urgent_backlog or not self.link.send(packet, now, urgent=True):
            if len(self._urgent_backlog) >= BACKLOG_LIMIT:
                self.counters.backlog_overflows += 1
                self._send_failed(packet, "host e-stop backlog full", now)
                return
            self._urgent_backlog.append(packet)

    def _take_back(self, which: Callable[[Packet], bool]) -> list[Packet]:
        """Packets matching ``which`` not yet sent, taken out of the link's queue and then the backlog (oldest
        first)."""
        taken = self.link.withdraw(which)
        if any(which(p) for p in self._backlog):
            taken += [p for p in self._backlog if which(p)]
            self._backlog = deque(p for p in self._backlog if not which(p))
        return taken

    def _drop_stale_goals(self, now: int) -> None:
        """Take back goal SYNC_WRITEs and CYCLEs not yet sent (link queue first: they are older), report each."""
        stale = self._take_back(is_goal)
        self.counters.goals_dropped += len(stale)
        for packet in stale:
            self._send_failed(packet, STALE_GOAL_REASON, now)

    def _resend(self, ev: hoplink.DeliveryFailed) -> bool:
        """A request without side effects (PING, READ, SYNC_READ) lost in flight to a link resynchronisation
        (the port came back, or joint 1 restarted its session while the frame was on the wire) is sent again,
        once, with the same msg_id, ahead of the backlog: the caller waits for its reply, not for the reset."""
        packet = ev.packet
        if (ev.reason is not UndeliverableReason.LINK_RESET or packet.type not in _RESENDABLE
                or packet.msg_id in self._resent or not self._correlator.is_pending(packet.msg_id)):
            return False
        self._resent.append(packet.msg_id)
        self.counters.resent += 1
        self._backlog.appendleft(packet)
        return True

    def _send_failed(self, packet: Packet, reason: str, now: int) -> None:
        if packet.msg_id in self._internal:
            self._internal.discard(packet.msg_id)
            if packet.type == _CYCLE:  # a pipelined cycle's outcome is its CycleMissed
                missed = self.cycles.withdrawn(packet.msg_id, now, reason, superseded=reason == STALE_GOAL_REASON)
                if missed is not None:
                    self._events.append(missed)
            return
        self.counters.failures += 1
        self._events.append(SendFailed(now, packet.msg_id, reason))
        failed = self._correlator.fail(packet.msg_id, UndeliverableError(
            f"{MsgType(packet.type).name} to {packet.dst} not delivered to the first joint: {reason}"), now)
        if failed is not None:
            self._events.append(failed)

    def _pump(self, now: int) -> None:
        """Move backlog into the link and turn link events into host events."""
        while self._urgent_backlog and self.link.urgent_space > 0:
            if not self.link.send(self._urgent_backlog[0], now, urgent=True):
                break
            self._urgent_backlog.popleft()
        while self._backlog and self.link.queue_space > 0:
            if not self.link.send(self._backlog[0], now):
                break
            self._backlog.popleft()
        while (ev := self.link.next_event()) is not None:
            if isinstance(ev, hoplink.PacketReceived):
                self._received(ev.packet, now)
            elif isinstance(ev, hoplink.PacketAcked):
                if ev.packet.msg_id in self._internal:
                    self._internal.discard(ev.packet.msg_id)
                else:
                    self._events.append(PacketAcked(now, ev.packet.msg_id))
            elif isinstance(ev, hoplink.DeliveryFailed):
                if self._resend(ev):
                    continue
                self._send_failed(ev.packet, f"link gave up ({ev.reason.name})", now)
            elif isinstance(ev, hoplink.LinkReset):
                self._events.append(LinkEvent(now, "reset", "by peer" if ev.by_peer else "by host"))
            elif isinstance(ev, hoplink.LinkDown):
                self._events.append(LinkEvent(now, "down", "first joint does not answer"))
            elif isinstance(ev, hoplink.LineErrorSeen):
                self._events.append(LinkEvent(now, "line error", ev.kind))
        if (self._backlog and self.link.queue_space > 0) or (self._urgent_backlog and self.link.urgent_space > 0):
            self._pump(now)

    def _received(self, packet: Packet, now: int) -> None:
        try:
            message = decode_packet(packet)
        except DecodeError as exc:
            self.counters.undecodable += 1
            self._events.append(StrayMessage(now, packet.src, packet.msg_id, None, f"undecodable: {exc}"))
            return
        if packet.type == _CYCLE_REPLY and self.cycles.knows(packet.msg_id):
            assert isinstance(message, CycleReply)
            replied = self.cycles.replied(packet.msg_id, message, now)
            if replied is not None:
                self._events.append(replied)
            return
        outcome = self._correlator.match(packet, message, now)
        if isinstance(message, Undeliverable):
            self.counters.undeliverable += 1
            self._events.append(UndeliverableReported(now, message))
        if outcome is not None:
            if packet.type == MsgType.ERROR or isinstance(message, Undeliverable):
                self.counters.failures += 1
            else:
                self.counters.replies += 1
            self._events.append(outcome)
        elif isinstance(message, State):
            self.counters.states += 1
            self._events.append(JointState.from_wire(now, packet.src, message))
        elif isinstance(message, Fault):
            self.counters.faults += 1
            self._events.append(FaultReported.from_wire(now, packet.src, message))
        elif isinstance(message, Error):
            self.counters.refused += 1
            self._events.append(CommandRefused.from_wire(now, packet.src, packet.msg_id, message))
        elif not isinstance(message, Undeliverable):
            self.counters.stray += 1
            self._events.append(StrayMessage(now, packet.src, packet.msg_id, message, "no request waits for it"))


def _is_cycle(packet: Packet) -> bool:
    return packet.type == _CYCLE


def is_goal(packet: Packet) -> bool:
    """A SYNC_WRITE that writes goal registers only, or a CYCLE that carries goals (see
    ``HostConfig.estop_drops_goals``)."""
    if packet.type == _CYCLE:
        return len(packet.payload) > 3 and packet.payload[3] != 0
    if packet.type != _SYNC_WRITE or len(packet.payload) < 3:
        return False
    reg, size = packet.payload[0] | packet.payload[1] << 8, packet.payload[2]
    return size > 0 and all(a in _GOAL_BYTES for a in range(reg, reg + size))
