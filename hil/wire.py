"""Wire model of a full-duplex UART link: when does each byte arrive?

Theory of operation
-------------------
A UART sends a byte as a start bit, 8 data bits and a stop bit (8N1): :data:`BITS_PER_BYTE` = 10 bit times,
so one byte takes ``10 / baud`` seconds. A full-duplex link has two independent directions
(:class:`WireLink` holds one :class:`WireDirection` each way); a direction sends one byte at a time, so
bytes handed over while it is busy queue behind the ones already on the line.

A direction that is idle when handed bytes at time ``t`` starts a *burst*: its first start bit begins at ``t
+ turnaround_ns`` (the sender's reaction time from deciding to send to driving the line: firmware, UART
FIFO, transceiver enable). Bytes handed over while the burst is still running are appended to it back to
back and pay no further turnaround. The arrival time (end of the stop bit) of byte ``k`` of a burst
(0-based, counted from the burst's start) is computed in one step, ``origin + ceil((k + 1) * bits * 1e9 /
baud)``, never by adding rounded per-byte times, so a burst of any length has no accumulated rounding drift
(at 115200 baud a byte is 86805.55 ns; adding 86806 ns per byte would drift by 0.45 ns a byte, 1 ms every
2.2 million bytes).

Per-end rates: each end of a link has its own UART, set to its own rate. A direction serialises at its
sender's rate (:attr:`WireDirection.baud`); :meth:`WireDirection.set_baud` changes it (the sender's UART was
reconfigured): bytes already handed over keep their timing, later ones follow at the new rate. A receiver set to
another rate than the sender samples the wrong bit times and reads garbage with framing errors; the kernel models
that by corrupting the bytes (:meth:`WireLink.matched` says whether both ends agree when bytes arrive).

There is no propagation delay (a few nanoseconds per metre of cable, far below one bit time at the supported
rates).
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from armbus.bus.errors import UsageError
from armbus.bus.wire import BITS_PER_BYTE, NS_PER_S

#: Slowest rate the harness models: the lowest standard UART rate still in use.
MIN_BAUD = 300
#: Fastest rate the harness models: 12 Mbaud, the top rate of high-speed USB-serial bridges (FTDI FT232H);
#: a byte still takes 833 ns there, far above the 1 ns resolution of the time base.
MAX_BAUD = 12_000_000


class Direction(enum.IntEnum):
    """One direction of a link between node A and node B (the order in which the link was connected)."""

    A_TO_B = 0
    B_TO_A = 1

    @property
    def label(self) -> str:
        return "a>b" if self is Direction.A_TO_B else "b>a"


def check_baud(baud: object) -> int:
    """Return ``baud`` if the harness can model it, else raise :class:`UsageError` saying why."""
    if isinstance(baud, bool) or not isinstance(baud, int):
        raise UsageError(f"baud must be an integer number of bits per second, got {baud!r}")
    if not MIN_BAUD <= baud <= MAX_BAUD:
        raise UsageError(f"baud {baud} is outside the range the harness models ({MIN_BAUD}..{MAX_BAUD})")
    return baud


class Burst(NamedTuple):
    """Timing of bytes handed to a :class:`WireDirection` in one call.

    Byte ``i`` of the handed-over data (0-based) arrives at :meth:`arrival` ``(i)``. ``start_ns`` is when the
    first of them begins (its start bit), ``end_ns`` when the last of them has arrived.
    """

    origin_ns: int  # start of the burst these bytes belong to
    first_index: int  # index of the first handed-over byte within that burst
    nbytes: int
    bit_ns_num: int  # bits_per_byte * 1e9: arrival of burst byte k = origin + ceil((k + 1) * num / baud)
    baud: int

    def arrival(self, i: int) -> int:
        """Arrival time (end of stop bit) of handed-over byte ``i``."""
        return self.origin_ns + -(-(self.first_index + i + 1) * self.bit_ns_num // self.baud)

    @property
    def start_ns(self) -> int:
        return self.origin_ns + -(-self.first_index * self.bit_ns_num // self.baud)

    @property
    def end_ns(self) -> int:
        return self.arrival(self.nbytes - 1)


class WireDirection:
    """One direction of a UART link: serialises bytes and tells when each arrives."""

    __slots__ = (
        "_num", "_origin", "_sent", "baud", "bits_per_byte", "busy_until", "bytes_sent", "turnaround_ns",
    )

    def __init__(self, baud: int, turnaround_ns: int = 0, bits_per_byte: int = BITS_PER_BYTE) -> None:
        self.baud = check_baud(baud)
        if not isinstance(turnaround_ns, int) or turnaround_ns < 0:
            raise UsageError(f"turnaround_ns must be a non-negative integer, got {turnaround_ns!r}")
        if not isinstance(bits_per_byte, int) or not 7 <= bits_per_byte <= 12:
            raise UsageError(f"bits_per_byte (start+data+parity+stop) must be 7..12: {bits_per_byte!r}")
        self.turnaround_ns = turnaround_ns
        self.bits_per_byte = bits_per_byte
        self._num = bits_per_byte * NS_PER_S
        self._origin = 0  # start of the current burst
        self._sent = 0  # bytes in the current burst
        #: Time the last queued byte has arrived; the direction is idle from then on.
        self.busy_until = -1
        #: Total bytes ever handed to this direction.
        self.bytes_sent = 0

    def send(self, now: int, nbytes: int) -> Burst:
        """Queue ``nbytes`` (>= 1) handed over at ``now``; returns their timing."""
        if now > self.busy_until:  # idle line: a new burst after the sender's turnaround
            self._origin = now + self.turnaround_ns
            self._sent = 0
        burst = Burst(self._origin, self._sent, nbytes, self._num, self.baud)
        self._sent += nbytes
        self.bytes_sent += nbytes
        self.busy_until = self._origin + -(-self._sent * self._num // self.baud)
        return burst

    def set_baud(self, now: int, baud: int) -> None:
        """The sender's UART now runs at ``baud``: bytes already queued keep their arrival times; bytes handed over
        later are serialised at the new rate, after those (no turnaround while the line is still busy)."""
        baud = check_baud(baud)
        if baud == self.baud:
            return
        if now < self.busy_until:  # start a fresh burst where the queued bytes end
            self._origin = self.busy_until
            self._sent = 0
        self.baud = baud

    def idle_at(self, now: int) -> bool:
        """True if nothing is on the line at ``now``."""
        return now >= self.busy_until


class WireLink:
    """A full-duplex link: ``a_to_b`` at end A's rate ``baud`` and ``b_to_a`` at end B's rate ``b_baud``
    (default: the same), with the same turnaround."""

    __slots__ = ("a_to_b", "b_to_a", "turnaround_ns")

    def __init__(self, baud: int, turnaround_ns: int = 0, bits_per_byte: int = BITS_PER_BYTE,
                 b_baud: int | None = None) -> None:
        self.turnaround_ns = turnaround_ns
        self.a_to_b = WireDirection(baud, turnaround_ns, bits_per_byte)
        self.b_to_a = WireDirection(baud if b_baud is None else b_baud, turnaround_ns, bits_per_byte)

    @property
    def baud(self) -> int:
        """End A's rate (the host side of a chain's link): the link's rate when both ends agree."""
        return self.a_to_b.baud

    @property
    def matched(self) -> bool:
        """True when both ends run at the same rate (only then do bytes arrive intact)."""
        return self.a_to_b.baud == self.b_to_a.baud

    def direction(self, index: int) -> WireDirection:
        """Direction 0 (:attr:`Direction.A_TO_B`) or 1 (:attr:`Direction.B_TO_A`)."""
        return self.b_to_a if index else self.a_to_b
