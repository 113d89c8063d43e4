"""Hop link: reliable, in-order, exactly-once delivery of packets over one wire, sans-I/O; e-stops first.

Theory of operation
-------------------
A :class:`LinkEndpoint` is one side of one wire (a joint has two, the host one). The layer above calls
``send(packet, now)``; the endpoint frames it (DATA, 8-bit sequence number), puts it on the line, and keeps it
until the peer's ACK. The receiver acks a valid DATA frame at once and hands the packet up; that ack closes the
sender's transaction (:class:`PacketAcked`). Delivery further down the chain is the next hop's duty.

Stop-and-wait, per direction: at most one unacked DATA frame in flight each way. The receiver then only ever sees
the expected sequence number (deliver, ack) or the one before it (a retransmission whose ack was lost: ack again,
do not deliver), so in-order exactly-once delivery needs one counter on each side and one retransmit buffer,
which is what a small microcontroller can afford. The cost is throughput: the line idles for one ack round trip
per frame (at 1 Mbaud a 20-byte frame plus its 7-byte ack and turnaround use ~60 % of the line). A window of W
frames would pipeline W frames per round trip, at the price of W retransmit buffers, cumulative acks, a receive
window check and a reset handshake that must also flush W frames; the full-duplex line already gives the two
directions their own stop-and-wait, and a joint rarely has more than one packet queued toward one neighbour.

Timers (:mod:`armbus.bus.linkconfig`): the retransmit timeout covers the frame, its ack, the longest frame the peer may
be sending meanwhile, and a configured turnaround. It doubles per retry up to a cap. When the retries run out
the packet is reported (:class:`DeliveryFailed`) and the link resynchronises, because the peer's receive counter
is now unknown (it may have delivered the frame and lost only the ack).

Reset: see docs/hoplink.md for the argument. An endpoint boots in SYNCING, stays silent for ``boot_quiet_ns`` if
set (so that no frame of its previous life is still on the line) and then sends RESET(nonce); the peer zeroes
its sequence numbers, fails its in-flight frame (it cannot know whether the rebooted side delivered it) and answers
RESET_ACK(nonce). An endpoint that is itself SYNCING (or DOWN) when a new RESET arrives answers it and opens: the
peer's handshake has zeroed both sides, and its own RESET, withdrawn, must not reach the peer again after the peer
opened (it would reset the new session). Copies and retransmissions of a RESET already answered are recognised by
their nonce and answered again without touching state. The state machine is the table in
:mod:`armbus.bus.linktable`.

Order and urgency (docs/hoplink.md has the argument): the peer receives packets exactly once in the order they
leave the send queues. ``send(packet, now, urgent=True)`` (the router uses it for ESTOP) queues into a separate
urgent queue, with its own ``urgent_limit`` slots, served before the ordinary one: urgent packets overtake queued
ordinary ones but still wait for the frame in flight. Meanwhile that frame is repeated at the fast timeout
(``LinkConfig.fast_timeout_ns``), and after :data:`URGENT_WAIT_TIMEOUTS` ordinary timeouts it is given up
(DeliveryFailed RETRIES, ``maybe_delivered``; the link resyncs) so that a peer refusing it for lack of room
cannot hold an e-stop.

Contract with the layer above: every ``send`` that returns True produces exactly one :class:`PacketAcked` or
:class:`DeliveryFailed` for that packet, later, through ``next_event()`` (or ``events()``, or in place from
``event_queue()``, the hot path's way to drain them), unless the caller takes it back first
with :meth:`LinkEndpoint.withdraw` (queued, never sent: the caller then owns it and must report it). ``send``
returns False when the queue it needs (ordinary or urgent) is full (nothing queued; the caller withholds its own
ack or reports QUEUE_FULL). To refuse incoming packets (its own buffer is full), the layer above sets ``accept``
(a predicate on the packet) or ``accepting = False``: the frame is then not acked, and the sender retries later.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from armbus.bus.codec import Frame, LineError, Packet, encode_control, encode_data
from armbus.bus.deframer import Deframer
from armbus.bus.linkconfig import CONTROL_WIRE_SIZE, LinkConfig
from armbus.bus.linkevents import (
    DeliveryFailed,
    LineErrorSeen,
    LinkCounters,
    LinkDown,
    LinkEvent,
    LinkReset,
    PacketAcked,
    PacketReceived,
)
from armbus.bus.linktable import TABLE, Action, Input, LinkState
from armbus.bus.wire import FrameFlag, FrameKind, LineErrorKind, UndeliverableReason

__all__ = [
    "CONTROL_WIRE_SIZE", "URGENT_WAIT_TIMEOUTS", "DeliveryFailed", "LineErrorSeen", "LinkConfig",
    "LinkCounters", "LinkDown", "LinkEndpoint", "LinkEvent", "LinkReset", "LinkState", "PacketAcked",
    "PacketReceived",
]

#: Ordinary timeouts an urgent packet waits for the frame in flight before that frame is given up (RETRIES, the
#: link resyncs, the urgent packet goes first): two cover the loss of the frame or of its ack once; a frame
#: still unacked after that is being refused (the peer has no room), and an e-stop must not wait for room.
URGENT_WAIT_TIMEOUTS = 2


_ACK_WIRE = [encode_control(FrameKind.ACK, s) for s in range(256)]
_RESET_WIRE = [encode_control(FrameKind.RESET, s) for s in range(256)]
_RESET_RETX_WIRE = [encode_control(FrameKind.RESET, s, FrameFlag.RETRANSMIT) for s in range(256)]
_RESET_ACK_WIRE = [encode_control(FrameKind.RESET_ACK, s) for s in range(256)]
_DATA, _ACK, _RESET, _RESET_ACK = FrameKind.DATA, FrameKind.ACK, FrameKind.RESET, FrameKind.RESET_ACK
_RETX = int(FrameFlag.RETRANSMIT)
_OPEN = LinkState.OPEN
_CONTROL_BY_WIRE = {
    encode_control(kind, seq): Frame(int(kind), seq, 0, None)
    for kind in (FrameKind.ACK, FrameKind.RESET, FrameKind.RESET_ACK)
    for seq in range(256)
}
# receive_data inlines these two transitions (the hot path); the table must agree with it
assert TABLE[_OPEN][Input.DATA_NEW] == (_OPEN, Action.DELIVER)
assert TABLE[_OPEN][Input.ACK_MATCH] == (_OPEN, Action.ACKED)
_I = Input


class LinkEndpoint:
    """One side of one wire. All inputs take ``now`` (integer ns); nothing here reads a clock or a port."""

    def __init__(self, config: LinkConfig | None = None, *, seed: int = 0, name: str = "") -> None:
        self.config = config or LinkConfig()
        self.name = name
        self.counters = LinkCounters()
        #: Predicate: may this packet be delivered now? False withholds the ack (the sender retries).
        self.accept: Callable[[Packet], bool] | None = None
        self.accepting = True
        self._rng = random.Random(seed)  # boot nonce only: firmware uses its hardware RNG or a boot counter
        self._deframer = Deframer()
        self._state = LinkState.SYNCING
        self._queue: deque[Packet] = deque()
        self._urgent: deque[Packet] = deque()  # served before _queue (see "Order and urgency")
        self._events: deque[LinkEvent] = deque()
        self._out: list[bytes] = []
        self._tx_seq = 0  # seq of the frame in flight, or of the next one
        self._rx_expected = 0
        self._inflight: Packet | None = None
        self._inflight_urgent = False  # the frame in flight came from the urgent queue
        self._fast_timeout = 0  # repeat interval of the frame in flight while an e-stop waits (_urgent_mode)
        self._counted_at = 0  # when the last retry that counts toward max_retries went out
        self._urgent_since = 0  # when the urgent queue last became non-empty
        self._inflight_wire = b""
        self._attempts = 0  # retransmissions of the frame (or RESET) in flight
        self._deadline: int | None = None
        self._arm_on_drain = False  # (re)start the timer when the pending frame is drained
        self._timeout = 0  # base timeout of the frame in flight
        self._timeouts_of: LinkConfig | None = None  # the config _timeouts_by_size belongs to
        self._timeouts_by_size: dict[int, tuple[int, int]] = {}
        self._nonce = self._rng.randrange(256)
        self._peer_nonce: int | None = None
        self._heard_since_reset = False  # a DATA/ACK arrived since we answered _peer_nonce
        self._dispatch = {
            state: {inp: (nxt, getattr(self, "_do_" + act.name.lower())) for inp, (nxt, act) in row.items()}
            for state, row in TABLE.items()
        }
        self._nonce_live = False  # no RESET of ours is outstanding yet: every RESET_ACK is stale
        self._booting = self.config.quiet_ns > 0  # the boot silence starts at the first call with a `now`
        if not self._booting:
            self._begin_reset(0, count=True)

    # ------------------------------------------------------------------------------------------------ queries
    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def is_open(self) -> bool:
        return self._state is LinkState.OPEN

    @property
    def queue_space(self) -> int:
        """How many more ordinary packets ``send`` will take now."""
        return self.config.queue_limit - len(self._queue)

    @property
    def urgent_space(self) -> int:
        """How many more urgent packets ``send(..., urgent=True)`` will take now."""
        return self.config.urgent_limit - len(self._urgent)

    @property
    def queued(self) -> tuple[Packet, ...]:
        """Packets waiting to be sent (not the one in flight), in the order they will leave: urgent first."""
        return (*self._urgent, *self._queue)

    @property
    def inflight(self) -> Packet | None:
        """The packet in flight (sent, not yet acked), or None. It is not in :attr:`queued`."""
        return self._inflight

    @property
    def output_frames(self) -> int:
        """Frames waiting for :meth:`data_to_send` to drain them (a bound the fuzz campaign checks)."""
        return len(self._out)

    @property
    def deframer(self) -> Deframer:
        """The receive deframer: its ``buffered`` bytes (a partial frame) and its ``counters``. Read it; feed
        bytes through :meth:`receive_data` only."""
        return self._deframer

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing in flight, nothing waiting to be drained."""
        return self._inflight is None and not self._queue and not self._urgent and not self._out

    def next_deadline(self) -> int | None:
        """Earliest ``now`` at which :meth:`handle_timer` must be called, or None."""
        return self._deadline

    def next_event(self) -> LinkEvent | None:
        events = self._events
        return events.popleft() if events else None

    def events(self) -> Iterator[LinkEvent]:
        """Drain all pending events."""
        events = self._events
        while events:
            yield events.popleft()

    def event_queue(self) -> deque[LinkEvent]:
        """The pending events themselves, oldest first: the same deque for the endpoint's whole life, not a copy.
        A layer above that drains every event on every call (the router, a benchmark) takes them from the left
        (``popleft``, ``clear``) in place, without a call per event; it must not add to it."""
        return self._events

    # ------------------------------------------------------------------------------------------------ inputs
    def send(self, packet: Packet, now: int, urgent: bool = False) -> bool:
        """Queue ``packet``; ``urgent`` puts it ahead of every ordinary queued packet (it still waits for the frame
        in flight). False (and nothing queued) when that queue is full. Bad fields raise EncodeError."""
        if urgent:
            if len(self._urgent) >= self.config.urgent_limit:
                return False
        elif len(self._queue) >= self.config.queue_limit:
            return False
        if self._state is LinkState.OPEN and self._inflight is None:
            self._transmit(packet, now, urgent)  # encodes first: a bad packet raises before any state changes
        else:
            encode_data(0, 0, packet)  # validate now, not when it reaches the head of the queue
            nxt, action = self._dispatch[self._state][_I.SEND_URGENT if urgent else _I.SEND]
            self._state = nxt
            action(packet, now)
        if urgent:
            self.counters.urgent += 1
        return True

    def withdraw(self, which: Callable[[Packet], bool]) -> list[Packet]:
        """Take back the ordinary queued packets (never sent) for which ``which`` is true, in queue order. They get
        no event: the caller owns them again (and reports them). The frame in flight and urgent packets stay."""
        taken = [p for p in self._queue if which(p)]
        if taken:
            self._queue = deque(p for p in self._queue if not which(p))
        return taken

    def receive_data(self, data: bytes, now: int) -> None:
        """Bytes from the line, in any chunking. Never raises on line content."""
        if self._booting and self._deadline is None:
            self._boot(now)
        c = self.counters
        c.bytes_received += len(data)
        deframer = self._deframer
        items: Iterable[Frame | LineError]
        ctl = _CONTROL_BY_WIRE.get(data) if len(data) == CONTROL_WIRE_SIZE else None
        if ctl is not None and not deframer.buffered:  # one whole control frame: no need to parse it
            dc = deframer.counters
            dc.bytes += CONTROL_WIRE_SIZE
            dc.frames += 1
            items = (ctl,)
        else:
            items = deframer.feed(data)
        for item in items:
            if item.__class__ is not Frame:
                nxt, action = self._dispatch[self._state][_I.LINE_ERROR]
                self._state = nxt
                action(item, now)
                continue
            c.frames_received += 1
            kind, seq, _, packet = item
            state = self._state
            if kind == _DATA:
                self._heard_since_reset = True
                expected = self._rx_expected
                if seq == expected:
                    if state is not _OPEN:
                        inp = _I.DATA_NEW
                    else:
                        accept = self.accept
                        if self.accepting and (accept is None or accept(packet)):  # type: ignore[arg-type]
                            # inline TABLE[OPEN][DATA_NEW] == (OPEN, DELIVER): the hot path (checked below)
                            self._rx_expected = (seq + 1) & 0xFF
                            self._out.append(_ACK_WIRE[seq])
                            c.frames_sent += 1
                            c.data_delivered += 1
                            self._events.append(PacketReceived(packet))  # type: ignore[arg-type]
                            continue
                        inp = _I.DATA_REFUSED
                elif seq == (expected - 1) & 0xFF:
                    inp = _I.DATA_DUP
                else:
                    inp = _I.DATA_OUT_OF_WINDOW
            elif kind == _ACK:
                self._heard_since_reset = True
                if self._inflight is not None and seq == self._tx_seq:
                    if state is _OPEN:  # inline TABLE[OPEN][ACK_MATCH] == (OPEN, ACKED)
                        self._do_acked(item, now)
                        continue
                    inp = _I.ACK_MATCH
                else:
                    inp = _I.ACK_STRAY
            elif kind == _RESET:
                # during the boot silence a RESET is only answered (as a copy is): opening then could take up a
                # session the peer began with our previous life, before our own RESET has cleared the line
                dup = self._booting or (seq == self._peer_nonce and not self._heard_since_reset)
                inp = _I.RESET_DUP if dup else _I.RESET_NEW
            else:
                match = seq == self._nonce and self._nonce_live
                inp = _I.RESET_ACK_MATCH if match else _I.RESET_ACK_STALE
            nxt, action = self._dispatch[state][inp]
            self._state = nxt
            action(item, now)

    def handle_timer(self, now: int) -> None:
        """Call at (or after) :meth:`next_deadline`. Early calls do nothing."""
        deadline = self._deadline
        if self._booting:
            self._boot(now)
            return
        if deadline is None or now < deadline:
            return
        spent = self._attempts >= self.config.max_retries
        if not spent and self._urgent and self._inflight is not None and not self._inflight_urgent:
            # an e-stop waits behind an ordinary frame: see URGENT_WAIT_TIMEOUTS
            spent = now - self._urgent_since >= URGENT_WAIT_TIMEOUTS * self._timeout
        inp = _I.GIVE_UP if spent else _I.TIMEOUT
        nxt, action = self._dispatch[self._state][inp]
        self._state = nxt
        action(None, now)

    def data_to_send(self, now: int) -> bytes:
        """Everything to put on the line now (possibly b"")."""
        if self._booting and self._deadline is None:
            self._boot(now)
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self.counters.bytes_sent += len(data)
        if self._arm_on_drain:
            self._arm_on_drain = False
            self._deadline = now + self._current_timeout()
        return data

    def reset(self, now: int) -> None:
        """Start a new session (e.g. after reopening the port): fails the frame in flight, keeps the queue."""
        self._booting = False
        self._fail_inflight(UndeliverableReason.LINK_RESET)
        self._state = LinkState.SYNCING
        self._begin_reset(now, count=True)

    # ---------------------------------------------------------------------------------------------- helpers
    def _boot(self, now: int) -> None:
        """Boot silence: start it at the first `now`, and send the first RESET when it is over."""
        if self._deadline is None:
            self._deadline = now + self.config.quiet_ns
        elif now >= self._deadline:
            self._booting = False
            self._begin_reset(now, count=True)

    def _urgent_mode(self) -> bool:
        """An e-stop is in flight or waits behind the frame in flight: repeat it at the fast timeout."""
        return self._inflight is not None and (self._inflight_urgent or bool(self._urgent))

    def _timeouts(self, nbytes: int) -> tuple[int, int]:
        """``config.timeout_ns`` and ``config.fast_timeout_ns`` of an ``nbytes`` frame, remembered per size for
        the config in use (a frame's size takes a handful of values; the config may be replaced)."""
        config = self.config
        if config is not self._timeouts_of:
            self._timeouts_of, self._timeouts_by_size = config, {}
        pair = self._timeouts_by_size.get(nbytes)
        if pair is None:
            pair = self._timeouts_by_size[nbytes] = (config.timeout_ns(nbytes), config.fast_timeout_ns(nbytes))
        return pair

    def _current_timeout(self) -> int:
        if self._urgent_mode():
            return self._fast_timeout
        # The cap bounds the doubling, never the first timeout: at low baud one frame's own round trip can be
        # longer than the cap, and a timeout below it would retransmit before any ack could arrive.
        return min(self._timeout << self._attempts, max(self.config.backoff_cap_ns, 2 * self._timeout))

    def _emit(self, wire: bytes, timed: bool, now: int) -> None:
        self._out.append(wire)
        self.counters.frames_sent += 1
        if timed:
            self._arm_on_drain = True
            self._deadline = now + self._current_timeout()

    def _transmit(self, packet: Packet, now: int, urgent: bool = False) -> None:
        wire = encode_data(self._tx_seq, 0, packet)
        self._inflight = packet
        self._inflight_urgent = urgent
        self._inflight_wire = wire
        self._attempts = 0
        self._timeout, self._fast_timeout = self._timeouts(len(wire))
        self._counted_at = now
        c = self.counters
        c.data_sent += 1
        c.frames_sent += 1
        self._out.append(wire)
        self._arm_on_drain = True
        self._deadline = now + self._timeout

    def _start_next(self, now: int) -> None:
        if self._urgent:
            self._transmit(self._urgent.popleft(), now, True)
        elif self._queue:
            self._transmit(self._queue.popleft(), now)
        else:
            self._deadline = None
            self._arm_on_drain = False

    def _fail(self, packet: Packet, reason: UndeliverableReason, maybe: bool) -> None:
        self.counters.failures += 1
        self._events.append(DeliveryFailed(packet, reason, maybe))

    def _fail_inflight(self, reason: UndeliverableReason) -> None:
        if self._inflight is not None:
            self._fail(self._inflight, reason, True)
            self._inflight = None
            self._inflight_wire = b""

    def _begin_reset(self, now: int, count: bool) -> None:
        """Zero the sequence numbers and send RESET with a fresh nonce (never the previous one)."""
        self._tx_seq = 0
        self._rx_expected = 0
        self._nonce = (self._nonce + 1) & 0xFF
        self._attempts = 0
        self._timeout = self.config.timeout_ns(CONTROL_WIRE_SIZE)
        self._nonce_live = True
        if count:
            self.counters.resets_sent += 1
        self._emit(_RESET_WIRE[self._nonce], True, now)

    # ------------------------------------------------------------------- actions (one per linktable.Action)
    def _do_queue(self, packet: Packet, now: int) -> None:
        self._queue.append(packet)
        if self._state is LinkState.OPEN and self._inflight is None:
            self._start_next(now)

    def _do_queue_urgent(self, packet: Packet, now: int) -> None:
        backoff = self._current_timeout()  # the wait the frame in flight is in, before this packet counts
        if not self._urgent:
            self._urgent_since = now
        self._urgent.append(packet)
        if self._state is LinkState.OPEN and self._inflight is None:
            self._start_next(now)
        elif self._inflight is not None and self._deadline is not None and not self._arm_on_drain:
            # the frame in flight was last sent at deadline - backoff: repeat it one fast timeout after that
            self._deadline = max(now, self._deadline - backoff + self._fast_timeout)

    def _do_fail_now(self, packet: Packet, now: int) -> None:
        self._fail(packet, UndeliverableReason.LINK_DOWN, False)

    def _do_deliver(self, frame: Frame, now: int) -> None:
        seq = frame.seq
        self._rx_expected = (seq + 1) & 0xFF
        self._emit(_ACK_WIRE[seq], False, now)
        self.counters.data_delivered += 1
        self._events.append(PacketReceived(frame.packet))  # type: ignore[arg-type]

    def _do_reack(self, frame: Frame, now: int) -> None:
        self.counters.duplicates += 1
        self._emit(_ACK_WIRE[frame.seq], False, now)

    def _do_withhold(self, frame: Frame, now: int) -> None:
        self.counters.refused += 1

    def _do_drop(self, frame: Frame, now: int) -> None:
        c = self.counters
        kind = frame.kind
        if self._state is not LinkState.OPEN and kind in (_DATA, _ACK):
            c.dropped_syncing += 1
        elif kind == _ACK:
            c.stray_acks += 1
        elif kind == _RESET_ACK:
            c.stale_reset_acks += 1

    def _do_acked(self, frame: Frame, now: int) -> None:
        packet = self._inflight
        self._inflight = None
        self._inflight_wire = b""
        self._tx_seq = (self._tx_seq + 1) & 0xFF
        self.counters.acked += 1
        self._events.append(PacketAcked(packet))  # type: ignore[arg-type]
        self._start_next(now)

    def _do_resync(self, frame: Frame, now: int) -> None:
        self.counters.out_of_window += 1
        self._fail_inflight(UndeliverableReason.LINK_RESET)
        self._begin_reset(now, count=True)

    def _do_accept_reset(self, frame: Frame, now: int) -> None:
        # OPEN: the peer started a new session. SYNCING or DOWN: the peer's handshake completes ours too (both
        # sides zeroed); our own RESET is withdrawn, so that it is not sent again into the session just opened.
        self.counters.resets_accepted += 1
        self._fail_inflight(UndeliverableReason.LINK_RESET)
        self._tx_seq = 0
        self._rx_expected = 0
        self._nonce_live = False
        self._attempts = 0
        self._answer(frame.seq, now)
        self._events.append(LinkReset(by_peer=True))
        self._start_next(now)

    def _do_answer_reset(self, frame: Frame, now: int) -> None:
        self._answer(frame.seq, now)

    def _answer(self, nonce: int, now: int) -> None:
        self._peer_nonce = nonce
        self._heard_since_reset = False
        self.counters.reset_answers += 1
        self._emit(_RESET_ACK_WIRE[nonce], False, now)

    def _do_opened(self, frame: Frame, now: int) -> None:
        self._events.append(LinkReset(by_peer=False))
        self._start_next(now)

    def _do_retransmit(self, frame: None, now: int) -> None:
        self.counters.retransmits += 1
        # fast repeats (an e-stop waits) count as one retry per base timeout: the give-up comes no sooner
        counted = not self._urgent_mode() or now - self._counted_at >= self._timeout
        if counted and self._attempts < self.config.max_retries:
            self._attempts += 1
            self._counted_at = now
        if self._inflight is not None:
            wire = encode_data(self._tx_seq, _RETX, self._inflight)
        else:
            wire = _RESET_RETX_WIRE[self._nonce]
        self._emit(wire, True, now)

    def _do_give_up_data(self, frame: None, now: int) -> None:
        self._fail_inflight(UndeliverableReason.RETRIES)
        self._begin_reset(now, count=True)

    def _do_go_down(self, frame: None, now: int) -> None:
        self.counters.link_down += 1
        for queue in (self._urgent, self._queue):
            while queue:
                self._fail(queue.popleft(), UndeliverableReason.LINK_DOWN, False)
        self._events.append(LinkDown())
        self._do_retransmit(None, now)

    def _do_count_line(self, error: object, now: int) -> None:
        kind = error.kind  # type: ignore[attr-defined]
        if kind == LineErrorKind.CRC:
            self.counters.crc_errors += 1
        else:
            self.counters.framing_errors += 1
        self._events.append(LineErrorSeen(kind))
