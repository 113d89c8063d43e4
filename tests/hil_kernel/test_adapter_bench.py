"""The adapter benchmark: one table of round trips per adapter model, and an exit code that follows its claims."""

from __future__ import annotations

import pytest

from armbus.bus.errors import ExitCode
from armbus.tools.bench import adapter as bench
from armbus.tools.bench.suite import BENCHMARKS


def test_quick_run_prints_every_model_and_its_claims_hold(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.run(["--quick", "--requests", "10"]) == ExitCode.OK
    out = capsys.readouterr().out
    for label, _, _ in bench.ROWS:
        assert f"\n{label} " in out
    assert "FAILED" not in out and out.count("[ok]") == 7 and "pty arm" not in out  # 2 of them: the cyclic age
    assert BENCHMARKS["adapter"][0] == "armbus.tools.bench.adapter"


def test_a_failing_claim_fails_the_run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real = bench.simulated

    def slow_usb(spec: bench.AdapterSpec, joints_wait: bool, requests: int, label: str = "",
                 cyclic_s: float = 0.3) -> bench.Figures:
        figures = real(spec, joints_wait, requests, label, 0.3)
        if label == "cdc-acm":
            figures.ping_p50 += 5.0  # as if the adapter held every reply five more frames
        return figures

    monkeypatch.setattr(bench, "simulated", slow_usb)
    assert bench.run(["--no-pty", "--requests", "5"]) == ExitCode.FAILED
    assert "[FAILED] cdc-acm: PING p50" in capsys.readouterr().out


def test_claims_bound_each_model_by_the_ideal_link() -> None:
    ideal = bench.Figures("ideal", 0.5, 0.5, 11.0, 11.0)
    ok = bench.Figures("ftdi:latency=1ms", 2.5, 2.5, 14.0, 14.0)
    late = bench.Figures("cdc-acm", 2.6, 2.6, 14.1, 14.1)
    locked = bench.Figures("ftdi:latency=16ms, joints wait", 15.9, 16.0, 29.0, 29.0)
    results = bench.claims({r.label: r for r in (ideal, ok, late, locked)})
    assert [holds for holds, _ in results] == [True, True, False, False, False]
    assert [holds for holds, _ in bench.claims({r.label: r for r in (ideal, late)}, 1_000_000, sync=False)] == [True]
    age, missed = bench.cyclic_loop_figure(bench.AdapterSpec(), seconds=0.3)
    assert 0 < age < 10 and missed == 0  # the ideal link carries 500 Hz
