"""SimClock and MonotonicClock behaviour."""

from __future__ import annotations

import pytest

from armbus.bus.errors import UsageError
from armbus.hil.clock import Clock, MonotonicClock, SimClock


def test_armbus_clock_moves_only_when_told(armbus_clock: SimClock) -> None:
    assert armbus_clock.now() == 0
    assert armbus_clock.advance(1500) == 1500
    assert armbus_clock.jump_to(10_000) == 10_000
    assert armbus_clock.now() == 10_000
    armbus_clock.jump_to(10_000)  # staying put is allowed
    assert armbus_clock.now() == 10_000


@pytest.mark.parametrize("bad", [-1, 1.5, "3"])
def test_armbus_clock_rejects_bad_steps(bad: object) -> None:
    clock = SimClock(100)
    with pytest.raises(UsageError):
        clock.advance(bad)  # type: ignore[arg-type]
    assert clock.now() == 100


def test_armbus_clock_never_goes_back() -> None:
    clock = SimClock(5)
    with pytest.raises(UsageError, match="back in time"):
        clock.jump_to(4)
    assert clock.now() == 5


def test_both_clocks_satisfy_the_protocol() -> None:
    mono = MonotonicClock(start_at_zero=True)
    assert isinstance(mono, Clock)
    assert isinstance(SimClock(), Clock)
    a = mono.now()
    b = mono.now()
    assert 0 <= a <= b
