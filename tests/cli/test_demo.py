"""End to end: ``armbus demo`` discovers, moves, survives a fault, e-stops, and writes a readable trace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from armbus.hil.trace.reader import read_trace


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
    trace = read_trace(summary["trace"])
    assert not trace.truncated
    assert trace.metadata.get("joints") in ("6", 6)
