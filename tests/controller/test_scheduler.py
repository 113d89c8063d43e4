"""Rate keeper: absolute deadlines (no drift), missed-deadline policies, statistics; simulated time only."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from armbus.bus.errors import UsageError
from armbus.bus.wire import NS_PER_S
from armbus.controller.scheduler import RateKeeper
from armbus.hil.clock import SimClock


def run(keeper: RateKeeper, clock: SimClock, cycles: int, rng: random.Random, oversleep_ns: int,
        work_ns: int) -> list[int]:
    """A simulated driver: sleep until due (oversleeping by a random amount), work, repeat."""
    served = []
    for _ in range(cycles):
        clock.jump_to(max(clock.now(), keeper.next_deadline()) + rng.randrange(oversleep_ns + 1))
        cycle = keeper.begin(clock.now())
        served.append(cycle.index)
        clock.advance(work_ns)
        keeper.end(clock.now())
    return served


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([200.0, 1000.0, 300.0, 333.3, 7.0]),
    seed=st.integers(0, 2**32),
    start=st.integers(0, 10**12),
)
def test_no_drift_under_jittery_wakeups(rate: float, seed: int, start: int) -> None:
    rng = random.Random(seed)
    clock = SimClock(start)
    keeper = RateKeeper(rate, start=start)
    period = NS_PER_S / rate
    n = 2000
    served = run(keeper, clock, n, rng, oversleep_ns=int(period * 0.4), work_ns=int(period * 0.3))
    assert served == list(range(n))  # every deadline served, none skipped
    assert keeper.missed == 0
    exact = start + Fraction(n * NS_PER_S) / Fraction(rate).limit_denominator(1000)
    assert abs(keeper.next_deadline() - exact) < 1  # integer floor of the exact rational time
    stats = keeper.stats()
    assert stats.achieved_hz == pytest.approx(rate, rel=0.01)


def test_relative_sleeping_drifts_but_keeper_does_not() -> None:
    """Baseline: adding the period to the wake-up time accumulates the oversleep; the keeper does not."""
    rng = random.Random(1)
    period = 5_000_000
    naive_t = 0
    for _ in range(1000):
        naive_t += period + rng.randrange(200_000)
    clock = SimClock(0)
    keeper = RateKeeper(200.0, start=0)
    run(keeper, clock, 1000, random.Random(1), oversleep_ns=200_000, work_ns=0)
    assert keeper.next_deadline() == 1000 * period
    assert naive_t - 1000 * period > 50 * period // 10  # the naive loop fell behind by tens of ms


def test_skip_policy_drops_stale_deadlines_and_stays_on_grid() -> None:
    clock = SimClock(0)
    keeper = RateKeeper(100.0, start=0)  # 10 ms period
    for _ in range(3):
        clock.jump_to(keeper.next_deadline())
        keeper.begin(clock.now())
    assert keeper.next_deadline() == 30_000_000
    clock.jump_to(75_000_000)  # stalled: deadlines 30..70 ms passed
    cycle = keeper.begin(clock.now())
    assert cycle.index == 7 and cycle.deadline == 70_000_000 and cycle.skipped == 4
    assert cycle.lateness == 5_000_000
    assert keeper.missed == 4
    assert keeper.next_deadline() == 80_000_000  # back on the original grid, in the future
    assert keeper.time_until_due(clock.now()) == 5_000_000


def test_catch_up_policy_serves_every_deadline() -> None:
    clock = SimClock(0)
    keeper = RateKeeper(100.0, start=0, policy="catch_up")
    keeper.begin(0)
    clock.jump_to(45_000_000)
    indices = []
    while keeper.next_deadline() <= clock.now():
        indices.append(keeper.begin(clock.now()).index)
    assert indices == [1, 2, 3, 4]
    assert keeper.missed == 3  # cycles 1..3 began after their successor's deadline; cycle 4 was only late
    assert keeper.next_deadline() == 50_000_000


def test_stats_percentiles_from_simulated_cycles() -> None:
    clock = SimClock(0)
    keeper = RateKeeper(1000.0, start=0)
    for k in range(100):
        clock.jump_to(keeper.next_deadline() + (50_000 if k % 10 == 9 else 0))
        keeper.begin(clock.now())
        clock.advance(200_000 if k == 99 else 100_000)
        keeper.end(clock.now())
    s = keeper.stats()
    assert s.cycles == 100 and s.missed == 0
    assert s.work_p50 == pytest.approx(100e-6) and s.work_p99 == pytest.approx(100e-6)
    assert s.lateness_p50 == 0.0 and s.lateness_p99 == pytest.approx(50e-6)
    assert s.interval_p50 == pytest.approx(1e-3)
    assert s.achieved_hz == pytest.approx(99 / 0.09905)


def test_bad_arguments() -> None:
    with pytest.raises(UsageError, match="rate"):
        RateKeeper(0.0, start=0)
    with pytest.raises(UsageError, match="policy"):
        RateKeeper(100.0, start=0, policy="burst")
    with pytest.raises(UsageError, match="without a matching begin"):
        RateKeeper(100.0, start=0).end(5)
