"""End to end: ``armbus demo`` discovers, streams a trajectory with the cyclic exchange, survives a fault, e-stops,
and writes a readable trace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from armbus.hil.trace.reader import read_trace
from armbus.tools.demo import RATE_HZ


def test_demo_summary_and_trace(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "armbus.tools.cli", "--json", "demo", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["joints"] == 6
    assert summary["trajectory_reached"] and summary["reboot_recovered"]
    assert summary["estopped"] == 6
    assert summary["retransmits"] > 0, "the noisy cable must have caused retransmissions"
    assert summary["acks"] > 1000 and summary["frames"] > summary["acks"]
    assert 0 < summary["hop_latency_p50_us"] <= summary["hop_latency_p99_us"]
    assert summary["max_tracking_error_deg"] < 30
    assert "discovered 6 joints" in proc.stdout and "6/6 joints report ESTOPPED" in proc.stdout
    # the cyclic exchange: every cycle out at its deadline, (nearly) every one answered, states a few ms old
    rate = RATE_HZ
    assert summary["cyclic_rate_hz"] == rate
    assert summary["cycles"] >= 5.0 * rate  # the 5 s plan, then the hold at its end
    assert summary["cycles_replied"] >= 0.95 * summary["cycles"]
    assert summary["cycles_replied"] + summary["cycles_missed"] == summary["cycles"]
    assert 6.0 <= summary["exchange_latency_p50_ms"] <= summary["exchange_latency_p99_ms"]  # floor 6.26 ms
    assert 0 < summary["state_age_p50_ms"] <= summary["state_age_p99_ms"] < 50
    # ... and the figures are shown: live (every second of the trajectory) and in the summary
    live = [line for line in proc.stdout.splitlines() if line.startswith("  t=") and " age p50 " in line]
    assert len(live) >= 4 and all(f"{rate:.0f} Hz" in line for line in live)
    assert any(line.endswith("noisy") for line in live)
    assert f"cycles at {rate:.0f} Hz (asked {rate:g})" in proc.stdout
    assert any(line.startswith("  cyclic exchange") and f"{summary['cycles']} cycles" in line
               for line in proc.stdout.splitlines())
    assert any(line.startswith("  state age") and "p50" in line and "p99" in line for line in proc.stdout.splitlines())
    trace = read_trace(summary["trace"])
    assert not trace.truncated
    assert trace.metadata.get("joints") in ("6", 6)
