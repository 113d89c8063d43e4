"""Hop link events and counters: what a :class:`armbus.bus.link.LinkEndpoint` tells the layer above.

Theory of operation
-------------------
The endpoint queues one event per outcome and the layer above drains them with ``next_event()``/``events()``:
a packet received (exactly once, in order), a packet acked (the sender's transaction closed), a delivery failed
(with whether the peer may still have it), a new session (reset) and the link declared down. Line noise is data:
each corrupt or malformed chunk is a :class:`LineErrorSeen` event and a counter, never an exception.
:class:`LinkCounters` is plain integers the endpoint bumps in place (firmware keeps the same table in RAM).
"""

from __future__ import annotations

from dataclasses import dataclass

from armbus.bus.codec import Packet
from armbus.bus.wire import LineErrorKind, UndeliverableReason


@dataclass(frozen=True, slots=True)
class PacketReceived:
    """A packet from the peer, delivered exactly once and in order."""

    packet: Packet


@dataclass(frozen=True, slots=True)
class PacketAcked:
    """The peer acked this packet: the sender's transaction for it is closed."""

    packet: Packet


@dataclass(frozen=True, slots=True)
class DeliveryFailed:
    """This hop gave up on ``packet``. ``maybe_delivered``: the peer may still have got it (only the ack is
    missing); False when the packet never left the queue."""

    packet: Packet
    reason: UndeliverableReason
    maybe_delivered: bool


@dataclass(frozen=True, slots=True)
class LinkReset:
    """A new session began: sequence numbers restarted. ``by_peer``: the peer asked (e.g. it rebooted)."""

    by_peer: bool


@dataclass(frozen=True, slots=True)
class LinkDown:
    """The peer has not answered RESET within the retry limit; queued packets were failed. Probing goes on."""


@dataclass(frozen=True, slots=True)
class LineErrorSeen:
    """A corrupt or malformed chunk was dropped."""

    kind: LineErrorKind


LinkEvent = PacketReceived | PacketAcked | DeliveryFailed | LinkReset | LinkDown | LineErrorSeen


@dataclass(slots=True)
class LinkCounters:
    frames_sent: int = 0  # all kinds, retransmissions included
    frames_received: int = 0  # valid frames of all kinds
    data_sent: int = 0  # first transmissions of DATA frames
    urgent: int = 0  # packets taken by send(..., urgent=True)
    data_delivered: int = 0
    acked: int = 0
    retransmits: int = 0  # DATA and RESET retransmissions
    duplicates: int = 0  # DATA frames received again (acked, not delivered)
    refused: int = 0  # DATA frames not acked because the layer above was full
    out_of_window: int = 0
    stray_acks: int = 0
    dropped_syncing: int = 0  # DATA/ACK frames dropped while SYNCING or DOWN
    stale_reset_acks: int = 0
    crc_errors: int = 0
    framing_errors: int = 0  # every other LineErrorKind
    failures: int = 0  # DeliveryFailed events
    resets_sent: int = 0  # sessions we started
    resets_accepted: int = 0  # sessions the peer started
    reset_answers: int = 0  # RESET_ACK frames sent
    link_down: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
