"""The firmware's time-critical paths on this machine (python -m armbus.tools.firmware.timing): every path is
measured on the count of calls it should have, and each one's 99th percentile is within its budget at 1 Mbaud."""

from __future__ import annotations

import pytest

from armbus.hil.firmware.build import available
from armbus.tools.firmware import timing

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


def test_each_path_is_within_its_budget() -> None:
    timings = {t.name: t for t in timing.measure()}
    assert set(timings) == set(timing.BUDGETS)
    assert timings["frame_end"].count == 20000 and timings["control_tick"].count == 20000
    assert timings["byte"].count > 10 * 20000  # a PING is 14 bytes on the wire, 13 before its delimiter
    for t in timings.values():
        assert 0 < t.median_ns <= t.p99_ns <= t.max_ns
        assert t.ok, f"{t.name}: p99 {t.p99_ns} ns > budget {t.budget_ns} ns"
    # the frame's handling (COBS, CRC, link, routing, handler) costs more than appending one byte
    assert timings["frame_end"].median_ns > timings["byte"].median_ns
