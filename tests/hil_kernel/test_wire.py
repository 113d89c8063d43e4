"""Wire model: byte timing, queueing, turnaround and the absence of rounding drift."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from armbus.bus.errors import UsageError
from armbus.bus.wire import wire_time_ns
from armbus.hil.wire import MAX_BAUD, WireDirection, WireLink, check_baud


def test_wire_time_is_ten_bits_per_byte() -> None:
    assert wire_time_ns(17, 1_000_000) == 170_000
    assert wire_time_ns(1, 115_200) == 86_806  # 86805.55 rounded up
    assert wire_time_ns(0, 9600) == 0


def test_idle_line_pays_turnaround_then_bytes_back_to_back() -> None:
    d = WireDirection(1_000_000, turnaround_ns=5_000)
    b = d.send(1_000, 17)
    assert b.start_ns == 6_000
    assert b.arrival(0) == 16_000
    assert b.end_ns == 1_000 + 5_000 + 170_000
    assert d.busy_until == b.end_ns


def test_bytes_queue_behind_a_busy_line_without_second_turnaround() -> None:
    d = WireDirection(1_000_000, turnaround_ns=5_000)
    first = d.send(0, 10)  # ends at 105 us
    second = d.send(50_000, 3)  # handed over mid-burst
    assert second.start_ns == first.end_ns
    assert second.end_ns == first.end_ns + 30_000
    third = d.send(second.end_ns + 1, 1)  # line idle again: new burst, new turnaround
    assert third.start_ns == second.end_ns + 1 + 5_000


def test_directions_are_independent() -> None:
    link = WireLink(1_000_000)
    a = link.direction(0).send(0, 100)
    b = link.direction(1).send(0, 1)
    assert a.end_ns == 1_000_000
    assert b.end_ns == 10_000


@given(
    baud=st.sampled_from([9600, 57_600, 115_200, 921_600, 1_000_000, 3_000_000]),
    chunks=st.lists(st.integers(1, 300), min_size=1, max_size=50),
)
def test_no_rounding_drift_however_a_burst_is_chunked(baud: int, chunks: list[int]) -> None:
    d = WireDirection(baud)
    last = None
    for n in chunks:
        last = d.send(0, n)  # all handed over at t=0: one continuous burst
    assert last is not None
    total = sum(chunks)
    exact_ns = total * 10 * 10**9 / baud
    assert last.end_ns == wire_time_ns(total, baud)
    assert 0 <= last.end_ns - exact_ns < 1


def test_long_burst_at_115200_keeps_exact_time() -> None:
    d = WireDirection(115_200)
    for _ in range(10_000):
        b = d.send(0, 270)
    # 2.7 million bytes: a per-byte rounding of 0.45 ns would have drifted by more than 1 ms
    assert b.end_ns == -(-2_700_000 * 10 * 10**9 // 115_200)


@pytest.mark.parametrize("bad", [0, 299, MAX_BAUD + 1, 1.5, True, "115200"])
def test_bad_baud_is_a_usage_error(bad: object) -> None:
    with pytest.raises(UsageError, match="baud"):
        check_baud(bad)


def test_negative_turnaround_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="turnaround_ns"):
        WireDirection(1_000_000, turnaround_ns=-1)
