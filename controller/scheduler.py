"""Fixed-rate cycle scheduling without drift: a sans-I/O rate keeper.

Theory of operation
-------------------
A :class:`RateKeeper` owns the deadlines of a periodic loop; a driver owns the clock and the sleeping::

    keeper = RateKeeper(200.0, start=clock.now())
    while running:
        clock.sleep_until(keeper.next_deadline())
        cycle = keeper.begin(clock.now())      # which deadline this cycle serves, how late it started
        ... send goals ...
        keeper.end(clock.now())                # work time, for the statistics

Deadlines are absolute: cycle k is due at ``start + k / rate`` computed exactly in integer nanoseconds from a
rational rate, never by adding a rounded period to the previous wake-up, so sleep overshoot and rounding do not
accumulate (no drift: after a million cycles at 300 Hz the deadline is still exact to the nanosecond).

Missed deadlines. A cycle that begins at or after the *following* deadline has missed at least one. The policy
decides what happens next:

* ``"skip"`` (default, for streaming goals): the deadlines already in the past are dropped and counted in
  ``missed``; the next cycle is due at the first deadline after ``now``. A goal stream should not burst stale
  goals to catch up; the trajectory is sampled by time anyway.
* ``"catch_up"`` (for work that must run once per period, e.g. logging): every deadline is served, back to back
  until the schedule is caught up; late cycles are counted in ``missed`` as well.

Statistics (:meth:`RateKeeper.stats`) cover a bounded window of recent cycles: achieved rate, p50/p99 of the
interval between cycle starts, of the work time (begin -> end) and of the start lateness.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from fractions import Fraction

from armbus.bus.errors import UsageError
from armbus.bus.wire import NS_PER_S

#: Recent cycles kept for the percentiles: 10 s at 1 kHz, enough for a stable p99 (about 100 samples above it).
DEFAULT_WINDOW = 10_000
#: Rates are made rational with this denominator bound, so 1/3 Hz or 333.3 Hz keep exact integer deadlines.
RATE_DENOMINATOR_LIMIT = 1000
POLICIES = ("skip", "catch_up")


@dataclass(frozen=True)
class Cycle:
    """One begun cycle: its index in the schedule, its deadline, how late it started, deadlines skipped."""

    index: int
    deadline: int  # ns
    lateness: int  # ns, now - deadline (>= 0 unless begun early)
    skipped: int  # deadlines dropped just before this cycle (skip policy)


@dataclass(frozen=True)
class RateStats:
    target_hz: float
    cycles: int
    missed: int
    achieved_hz: float  # over the window; nan with fewer than two cycles
    interval_p50: float  # s, between consecutive cycle starts
    interval_p99: float
    work_p50: float  # s, begin -> end; nan when end() is never called
    work_p99: float
    lateness_p50: float  # s, start after deadline
    lateness_p99: float


def _percentile(values: deque[int], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))  # nearest-rank percentile
    return ordered[rank] / NS_PER_S


class RateKeeper:
    """Absolute-deadline scheduler for a loop at ``rate_hz``; see the module docstring."""

    def __init__(self, rate_hz: float, start: int, policy: str = "skip", window: int = DEFAULT_WINDOW) -> None:
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise UsageError(f"rate must be a positive number of Hz, got {rate_hz!r}")
        if policy not in POLICIES:
            raise UsageError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.rate_hz = float(rate_hz)
        self.policy = policy
        self._rate = Fraction(rate_hz).limit_denominator(RATE_DENOMINATOR_LIMIT)
        self._start = int(start)
        self._index = 0  # the next cycle to serve
        self._cycles = 0
        self.missed = 0
        self._begun_at: int | None = None
        self._last_begin: int | None = None
        self._starts: deque[int] = deque(maxlen=window)
        self._intervals: deque[int] = deque(maxlen=window)
        self._work: deque[int] = deque(maxlen=window)
        self._lateness: deque[int] = deque(maxlen=window)

    @property
    def period_ns(self) -> float:
        return NS_PER_S / float(self._rate)

    def deadline(self, index: int) -> int:
        """Absolute time (ns) at which cycle ``index`` is due: start + index / rate, exact."""
        return self._start + (index * NS_PER_S * self._rate.denominator) // self._rate.numerator

    def next_deadline(self) -> int:
        """When the next cycle is due (may be in the past when the loop is behind)."""
        return self.deadline(self._index)

    def _index_at(self, now: int) -> int:
        """The latest cycle index whose deadline is <= now."""
        return ((now - self._start) * self._rate.numerator) // (NS_PER_S * self._rate.denominator)

    def begin(self, now: int) -> Cycle:
        """Start the cycle due next; call when ``now >= next_deadline()`` (earlier is allowed, not advised)."""
        skipped = 0
        index = self._index
        if now >= self.deadline(index + 1):  # the following deadline has passed too: missed
            latest = self._index_at(now)
            if self.policy == "skip":
                skipped = latest - index
                self.missed += skipped
                index = latest
            else:
                self.missed += 1
        deadline = self.deadline(index)
        self._index = index + 1
        self._cycles += 1
        self._lateness.append(max(0, now - deadline))
        self._starts.append(now)
        if self._last_begin is not None:
            self._intervals.append(now - self._last_begin)
        self._last_begin = now
        self._begun_at = now
        return Cycle(index, deadline, now - deadline, skipped)

    def end(self, now: int) -> None:
        """Mark the end of the cycle's work (for the work-time statistics)."""
        if self._begun_at is None:
            raise UsageError("RateKeeper.end() called without a matching begin()")
        self._work.append(now - self._begun_at)
        self._begun_at = None

    def time_until_due(self, now: int) -> int:
        """Nanoseconds to wait before the next cycle (0 when it is already due)."""
        return max(0, self.next_deadline() - now)

    def stats(self) -> RateStats:
        if len(self._starts) >= 2:
            span = self._starts[-1] - self._starts[0]
            achieved = (len(self._starts) - 1) * NS_PER_S / span if span > 0 else math.inf
        else:
            achieved = math.nan
        return RateStats(
            target_hz=self.rate_hz,
            cycles=self._cycles,
            missed=self.missed,
            achieved_hz=achieved,
            interval_p50=_percentile(self._intervals, 0.50),
            interval_p99=_percentile(self._intervals, 0.99),
            work_p50=_percentile(self._work, 0.50),
            work_p99=_percentile(self._work, 0.99),
            lateness_p50=_percentile(self._lateness, 0.50),
            lateness_p99=_percentile(self._lateness, 0.99),
        )
