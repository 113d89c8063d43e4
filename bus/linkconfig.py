"""Hop link configuration: line rate, queue sizes, retry budget, and the timeouts they give.

Theory of operation
-------------------
:class:`LinkConfig` is a frozen value: one per link, checked when it is built (a bad value is the caller's
:class:`~armbus.bus.errors.UsageError`, never a link that misbehaves later). The timing helpers turn byte counts into
integer nanoseconds at the configured baud (8N1: ten bit times per byte, rounded up) and give the retransmit
timeout of a frame: its own wire time, its ack's, the longest frame the peer may be sending when ours arrives
(the ack waits behind it), and the configured turnaround. :class:`armbus.bus.link.LinkEndpoint` takes its timers from
here; benchmarks and the wire-time floors of the safety figures use the same helpers.
"""

from __future__ import annotations

from dataclasses import dataclass

from armbus.bus.errors import UsageError
from armbus.bus.wire import DEFAULT_BAUD, MAX_ENCODED, NS_PER_S, wire_time_ns

#: ACK/RESET/RESET_ACK on the wire: 5 bytes, COBS adds 1, the delimiter 1.
CONTROL_WIRE_SIZE = 7


@dataclass(frozen=True)
class LinkConfig:
    """Timing and sizing of one link. All times are integer nanoseconds."""

    #: Line rate; the default is the bus's nominal rate (docs/protocol.md).
    baud: int = DEFAULT_BAUD
    #: Reaction time of both ends together, added to every timeout: firmware and UART latency, transceiver
    #: enable. 50 us covers a microcontroller answering from its receive interrupt; a host behind an FTDI
    #: adapter needs its latency timer here too (1 ms with latency_timer=1, 16 ms by default).
    turnaround_ns: int = 50_000
    #: Packets waiting behind the one in flight. 8 is a few milliseconds of traffic at 1 Mbaud and fits a
    #: joint's RAM (8 x 270 bytes); more only adds latency to ordinary traffic (e-stops overtake the queue).
    queue_limit: int = 8
    #: Urgent packets (ESTOP) waiting ahead of the ordinary queue, in slots of their own so that a full queue never
    #: refuses an e-stop. 2: an e-stop and one more (a second stop source) behind the frame in flight; an urgent
    #: packet waits at most for that frame (its retries included), so more only hold repeats of the same stop.
    urgent_limit: int = 2
    #: Retransmissions after the first send before giving up. With 10 % of attempts lost, 10 retries fail
    #: once in 10^11 frames; with the doubling below the give-up comes ~0.1 s after the first send at 1 Mbaud.
    max_retries: int = 10
    #: Upper bound of the doubled timeout: a dead neighbour is probed at least this often. At low baud, where one
    #: round trip takes longer than this, the bound is twice the frame's own timeout instead.
    backoff_cap_ns: int = 20_000_000
    #: Bytes of a frame the peer may be sending when ours arrives (its ack waits behind it): one largest frame.
    reverse_bytes: int = MAX_ENCODED
    #: Silence after boot before the first RESET, so that no frame of a previous life (the peer's answer to a
    #: RESET we sent just before rebooting) is still on the line: see docs/hoplink.md. 0 (the default) leaves
    #: it to the node: a joint's boot time (20 ms, joints/node.py) already drops everything that arrives, and a
    #: host process does not restart within milliseconds. None = the safe minimum, one largest-frame round
    #: trip, ``timeout_ns(MAX_ENCODED)`` (5.5 ms at 1 Mbaud), for nodes that come back instantly.
    boot_quiet_ns: int | None = 0

    def __post_init__(self) -> None:
        checks = (
            ("baud", self.baud, 1, 100_000_000),
            ("turnaround_ns", self.turnaround_ns, 0, 10 * NS_PER_S),
            ("queue_limit", self.queue_limit, 0, 1_000_000),
            ("urgent_limit", self.urgent_limit, 0, 1_000),
            ("max_retries", self.max_retries, 0, 1000),
            ("backoff_cap_ns", self.backoff_cap_ns, 1, 3600 * NS_PER_S),
            ("reverse_bytes", self.reverse_bytes, 0, 1_000_000),
        )
        for name, value, lo, hi in checks:
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise UsageError(f"LinkConfig.{name} must be an integer in {lo}..{hi}, got {value!r}")
        q = self.boot_quiet_ns
        if q is not None and (isinstance(q, bool) or not isinstance(q, int) or not 0 <= q <= 3600 * NS_PER_S):
            raise UsageError(f"LinkConfig.boot_quiet_ns must be None or an integer in 0..3600e9, got {q!r}")

    def wire_ns(self, nbytes: int) -> int:
        """Time ``nbytes`` take on the line, rounded up to whole nanoseconds."""
        return wire_time_ns(nbytes, self.baud)

    @property
    def quiet_ns(self) -> int:
        """The boot silence actually used (see ``boot_quiet_ns``)."""
        return self.boot_quiet_ns if self.boot_quiet_ns is not None else self.timeout_ns(MAX_ENCODED)

    def timeout_ns(self, frame_bytes: int) -> int:
        """First retransmit timeout for a frame of ``frame_bytes`` wire bytes (delimiter included)."""
        return self.wire_ns(frame_bytes + CONTROL_WIRE_SIZE + self.reverse_bytes) + self.turnaround_ns

    def fast_timeout_ns(self, frame_bytes: int) -> int:
        """Repeat interval while an e-stop waits: the frame and its ack, without the allowance for a reverse
        frame (an ack that arrives later than this only costs a duplicate, which the receiver re-acks)."""
        return self.wire_ns(frame_bytes + CONTROL_WIRE_SIZE) + self.turnaround_ns
