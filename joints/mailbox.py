"""Bounded single-producer / single-consumer mailbox between the comm core and the control core.

Theory of operation
-------------------
On the dual-core joint controller the two cores share a ring buffer of fixed capacity (a power of two in C,
indices wrap with a mask). One core only puts, the other only gets, so no lock is needed in C as long as each
index is written by one side only; this model keeps the same shape (``head``/``tail`` counters, a fixed slot
array) so the port is line by line.

Full rule (never lose silently): :meth:`Mailbox.put` never overwrites and never blocks. When the ring is full it
returns ``False`` and counts the refusal in ``refused``; the producer must act on ``False``:

* comm core -> control core (commands): a unicast request is answered with ERROR BUSY (the host retries); a
  broadcast command (SYNC_WRITE slice, HEARTBEAT) is counted in the node's ``commands_refused`` and the node
  reports it upstream as an ERROR BUSY addressed to the host (see joints/node.py).
* control core -> comm core (fault events): the fault is also latched in the status flags and ``fault_code``
  register, so the host still sees it in the next SYNC_READ or STATE even if the event itself was refused.

Sizing: the control core drains the command ring completely every tick (1 ms by default). The smallest DATA
frame on the wire is 14 bytes (12 header/CRC + COBS + delimiter), 140 us at 1 Mbaud, so at most 8 commands can
arrive per tick per port; two ports give 16, the default capacity, so at 1 Mbaud the ring cannot fill unless the
control core stalls.

The consumer may test the mailbox's truth value (``if box:``, :meth:`Mailbox.__bool__`: ``head != tail``) before
calling :meth:`Mailbox.get` (the control tick and the comm core's event drain do, every millisecond): in C that is
the same two-index comparison ``get`` starts with. ``posted`` and ``taken`` are the two indices themselves.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from armbus.bus.errors import UsageError

T = TypeVar("T")

#: Default capacity: 16 slots (see "Sizing" above).
DEFAULT_CAPACITY = 16


class Mailbox(Generic[T]):
    """Fixed-capacity FIFO. ``put`` returns False when full (counted), ``get`` returns None when empty."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise UsageError(f"mailbox capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._slots: list[T | None] = [None] * capacity
        self._head = 0  # next slot to read (written by the consumer only)
        self._tail = 0  # next slot to write (written by the producer only)
        self.accepted = 0
        self.refused = 0
        self.high_water = 0

    def __len__(self) -> int:
        return self._tail - self._head

    def __bool__(self) -> bool:
        """Something to get: the consumer's test of the two ring indices (``head != tail``) before :meth:`get`."""
        return self._head != self._tail

    @property
    def posted(self) -> int:
        """Items put since the last :meth:`clear` (the producer's index: mark a post to know when it is taken)."""
        return self._tail

    @property
    def taken(self) -> int:
        """Items got since the last :meth:`clear` (the consumer's index): a post marked ``m`` is taken once
        ``taken >= m``."""
        return self._head

    def put(self, item: T) -> bool:
        """Append ``item``; False (and ``refused`` += 1) if the mailbox is full."""
        if self._tail - self._head >= self.capacity:
            self.refused += 1
            return False
        self._slots[self._tail % self.capacity] = item
        self._tail += 1
        self.accepted += 1
        depth = self._tail - self._head
        if depth > self.high_water:
            self.high_water = depth
        return True

    def get(self) -> T | None:
        """Remove and return the oldest item, or None if empty."""
        if self._head == self._tail:
            return None
        k = self._head % self.capacity
        item = self._slots[k]
        self._slots[k] = None
        self._head += 1
        return item

    def clear(self) -> None:
        """Drop everything (a reboot)."""
        self._slots = [None] * self.capacity
        self._head = self._tail = 0
