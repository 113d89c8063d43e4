"""The loop benchmark: its simulated-time runs give sane figures and its check fails a missed target."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest

from armbus.bus.cycle import REPLY_HEADER
from armbus.bus.link import CONTROL_WIRE_SIZE
from armbus.bus.wire import data_wire_size
from armbus.controller.cycles import CycleTiming
from armbus.tools.bench import loop
from armbus.tools.bench.looprun import LoopFigures, run_pty, run_sim
from armbus.tools.bench.loopskew import SkewMeter
from armbus.tools.bench.loopwire import cyclic_budget, wire_floor


def test_cyclic_run_in_simulated_time_meets_its_targets() -> None:
    fig = run_sim("cyclic", 6, 1_000_000, 500.0, 0.3)
    assert fig.cycles >= 140 and fig.achieved_hz == pytest.approx(500.0, rel=0.02)
    assert fig.missed_pct == 0.0
    floor_ms = cyclic_budget(6, 1_000_000, 10).floor_ns / 1e6
    assert floor_ms <= fig.age_p99_ms <= 1.3 * floor_ms
    assert fig.skew_cycles >= 100 and fig.skew_max_us < 1.0  # every joint latches at the same instant
    assert math.isnan(fig.cpu_core_pct) and math.isnan(fig.lag_p99_us)  # pty figures only
    assert all(t.met for t in loop.check([fig]))


def test_sync_run_is_bounded_by_its_wire_time_and_takes_goals_at_ticks() -> None:
    fig = run_sim("sync", 6, 1_000_000, 500.0, 0.3)
    floor_s = wire_floor(6, 1_000_000)["floor_s"]
    assert 0 < fig.achieved_hz < 2 / floor_s  # blocking: about one wire floor per cycle, far below 500 Hz
    assert fig.missed_pct > 50 and fig.failures == 0
    # the goal goes down the chain in store-and-forward steps (2.3 ms at 1 Mbaud) and each joint takes it at its
    # next 1 kHz tick (the simulated joints tick in phase): two or three whole ticks apart
    assert fig.skew_cycles > 10 and fig.skew_p50_us in (2000.0, 3000.0) and fig.skew_max_us <= 3000.0
    assert loop.check([fig]) == []  # no targets for the old loop


def test_an_impossible_rate_is_reported_missed_and_fails_the_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--only", "sim", "--loops", "cyclic", "--seconds", "0.1", "--config", "1000000:5000"]
    assert loop.main(args) == 1  # above the 877 Hz link bound of 1 Mbaud
    out = capsys.readouterr().out
    assert "[MISSED] 1 Mbaud 5000 Hz sim: >= 5000 Hz" in out and "link bound 877 Hz" in out
    assert loop.main([*args, "--no-check"]) == 0


def test_pty_targets_include_cpu_and_keeping_up() -> None:
    fig = LoopFigures("cyclic", "pty", 3_000_000, 1000.0, 1.0, cycles=1000, achieved_hz=1000.0, missed_pct=0.0,
                      age_p99_ms=2.3, cpu_core_pct=30.0, cpu_per_cycle_us=300.0, lag_p99_us=200.0, lag_max_us=900.0,
                      slipped_ms=0.0, arm_cpu_pct=60.0)
    met = {t.name.split(" ")[0]: t.met for t in loop.check([fig])}
    assert met == {">=": True, "state": True, "host": False, "pty": True}


def test_link_bound_is_hop_one_up_and_floor_is_the_host_timing() -> None:
    b = cyclic_budget(6, 1_000_000, 10)
    assert (b.busiest.hop, b.busiest.direction) == (1, "up")
    assert b.busiest.bytes == data_wire_size(REPLY_HEADER.size + 6 * 15) + CONTROL_WIRE_SIZE
    assert b.max_rate_hz == pytest.approx(100_000 / b.busiest.bytes)
    assert b.floor_ns == CycleTiming(1_000_000, 1_000_000).floor_ns(6, 10, 6)
    assert cyclic_budget(6, 3_000_000, 10).max_rate_hz == pytest.approx(3 * b.max_rate_hz)


def test_hop_one_stop_and_wait_is_reply_ack_cycle_and_turnaround() -> None:
    b = cyclic_budget(6, 1_000_000, 10)
    down, up = b.hops[0], b.hops[1]
    assert b.hop1_round_ns(0, worst=False) == (up.data_bytes + down.ack_bytes) * 10_000
    assert b.hop1_round_ns(400_000) == (up.data_bytes + down.ack_bytes + down.data_bytes) * 10_000 + 400_000
    assert b.hop1_rate_hz(400_000) < 550 < b.max_rate_hz  # why 500 Hz behind a pty has no slack at 1 Mbaud


def _core() -> SimpleNamespace:
    return SimpleNamespace(goal=0, latch_hooks=[], tick_hooks=[])


def test_skew_meter_spreads_latches_by_tag_and_matches_ticks_by_value() -> None:
    cores = [_core(), _core()]
    latch = SkewMeter(cores, "latch")
    for hook, t in ((cores[0].latch_hooks[0], 100), (cores[1].latch_hooks[0], 130)):
        hook(t, 7)
    assert latch.figures()["skew_max_us"] == pytest.approx(0.03)
    ticks = SkewMeter(cores, "tick")
    for i, t in ((0, 1_000_000), (1, 3_000_000)):
        cores[i].goal = 5
        cores[i].tick_hooks[0](t)
    assert ticks.figures()["skew_p50_us"] == 2000.0


@pytest.mark.realtime
def test_pty_run_reports_the_arms_figures_from_its_own_process() -> None:
    fig = run_pty("cyclic", 6, 1_000_000, 200.0, 0.5)
    assert fig.cycles > 0 and fig.clock == "pty"
    for name in ("cpu_core_pct", "lag_p50_us", "lag_p99_us", "arm_cpu_pct", "arm_cpu_per_sim_s", "sim_over_wall"):
        value = getattr(fig, name)
        assert math.isfinite(value) and value >= 0, name  # measured, whatever the machine's load
    assert fig.lag_p50_us <= fig.lag_p99_us <= fig.lag_max_us + 10  # quantiles are 10 us buckets' upper edges


def test_a_pty_miss_is_explained_by_what_ran_out() -> None:
    fig = LoopFigures("cyclic", "pty", 3_000_000, 1000.0, 1.0, cycles=1000, achieved_hz=900.0, missed_pct=40.0,
                      age_p99_ms=9.0, cpu_core_pct=28.0, cpu_per_cycle_us=280.0, lag_p50_us=900.0,
                      lag_p99_us=9000.0, lag_max_us=20000.0, slipped_ms=300.0, arm_cpu_pct=60.0,
                      arm_cpu_per_sim_s=0.7, sim_over_wall=0.9, superseded=400)
    text = "\n".join(loop.limits([fig]))
    assert "fell behind real time" in text and "400 of 1000 cycles superseded" in text and "spun" in text
    assert loop.limits([dataclasses.replace(fig, loop="sync")]) == []  # the old loop has no targets
