"""Clocks: the one place where the harness learns what time it is.

Theory of operation
-------------------
Protocol and firmware code never reads a clock; it is handed ``now`` (integer nanoseconds). The drivers at the
edges get ``now`` from a clock object that is passed in (trio's ``Clock``/``MockClock`` idea):

* :class:`SimClock` -- simulated time. It only moves when told to: ``advance(dt)`` or ``jump_to(t)``. The
  simulation kernel (:mod:`armbus.hil.kernel`) jumps it from one event to the next, so idle time costs nothing and a
  run is exactly reproducible.
* :class:`MonotonicClock` -- wall-clock time from ``time.monotonic_ns()`` for real-time drivers (serial ports,
  pseudo-terminals). It cannot be moved.

Both satisfy the :class:`Clock` protocol: a ``now()`` method returning integer nanoseconds. Time never goes
backwards; asking a :class:`SimClock` to do so is a :class:`~armbus.bus.errors.UsageError`.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

from armbus.bus.errors import UsageError


@runtime_checkable
class Clock(Protocol):
    """Anything that tells the current time in integer nanoseconds."""

    def now(self) -> int:
        """Current time in nanoseconds; never decreases."""
        ...


class MonotonicClock:
    """Wall-clock time for real-time drivers: ``time.monotonic_ns()``, optionally shifted to start at 0."""

    def __init__(self, start_at_zero: bool = False) -> None:
        self._offset = time.monotonic_ns() if start_at_zero else 0

    def now(self) -> int:
        return time.monotonic_ns() - self._offset

    def __repr__(self) -> str:
        return f"MonotonicClock(now={self.now()})"


class SimClock:
    """Simulated time in integer nanoseconds that moves only when told to."""

    __slots__ = ("_now",)

    def __init__(self, start: int = 0) -> None:
        if not isinstance(start, int) or start < 0:
            raise UsageError(f"SimClock start must be a non-negative integer of nanoseconds, got {start!r}")
        self._now = start

    def now(self) -> int:
        return self._now

    def advance(self, dt: int) -> int:
        """Move forward by ``dt`` nanoseconds (>= 0); returns the new time."""
        if not isinstance(dt, int) or dt < 0:
            raise UsageError(f"SimClock.advance needs a non-negative integer of nanoseconds, got {dt!r}")
        self._now += dt
        return self._now

    def jump_to(self, t: int) -> int:
        """Move to absolute time ``t`` (not before the current time); returns the new time."""
        if not isinstance(t, int):
            raise UsageError(f"SimClock.jump_to needs an integer of nanoseconds, got {t!r}")
        if t < self._now:
            raise UsageError(f"SimClock cannot go back in time: now={self._now} ns, asked for {t} ns")
        self._now = t
        return t

    def __repr__(self) -> str:
        return f"SimClock(now={self._now})"
