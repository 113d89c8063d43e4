"""The firmware benchmark (``armbus bench firmware``): its runs measure what they say, and its verdicts and exit
status follow the targets."""

from __future__ import annotations

from typing import Any

import pytest

from armbus.bus.errors import ExitCode
from armbus.hil.firmware.build import available
from armbus.tools.bench import firmware as bench
from armbus.tools.bench.suite import BENCHMARKS

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


def test_the_chain_run_keeps_joint_6_busy_with_either_firmware() -> None:
    for kind in bench.KINDS:
        sim, wall, requests, events = bench.chain_run(kind, 0.05)
        assert 0.05 <= sim < 0.06 and wall > 0
        assert requests >= 10  # a READ of joint 6 takes about 2.5 ms at 1 Mbaud
        assert events > 6 * 50  # at least the six control loops' ticks
    assert BENCHMARKS["firmware"][0] == "armbus.tools.bench.firmware"


def _result(c_vs_echo: float, chain: float, demo: float) -> dict[str, Any]:
    return {
        "round_trip": {"c_us": 60.0, "python_us": 300.0, "echo_us": 60.0 / c_vs_echo, "c_vs_echo": c_vs_echo,
                       "python_vs_echo": 9.0, "c_vs_python": 0.2, "target": 2.0, "blocks": 1, "per_block": 1},
        "chain": {"c_speed": chain, "python_speed": 2.0, "c_vs_python": chain / 2, "target": 20.0,
                  "c_requests_per_sim_s": 400, "python_requests_per_sim_s": 400, "events_per_sim_s": 15000,
                  "c_events_per_wall_s": 40000, "python_events_per_wall_s": 30000},
        "demo": {"c_speed": demo, "python_speed": 1.0, "c_vs_python": demo, "target": 20.0, "sim_s": 5.7},
        "targets_met": {"round_trip": c_vs_echo <= 2.0, "chain": chain >= 20, "demo": demo >= 20},
    }


@pytest.mark.parametrize(("figures", "code"), [((1.5, 25.0, 30.0), ExitCode.OK), ((1.5, 25.0, 3.0), ExitCode.FAILED),
                                                ((3.0, 25.0, 30.0), ExitCode.FAILED)])
def test_the_exit_status_follows_the_targets(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                             figures: tuple[float, float, float], code: ExitCode) -> None:
    monkeypatch.setattr(bench, "run", lambda quick, profile: _result(*figures))
    assert bench.main(["--quick"]) == code
    out = capsys.readouterr().out
    assert out.count("| met |") + out.count("| MISSED |") == 3
    assert ("MISSED" in out) == (code != ExitCode.OK)
