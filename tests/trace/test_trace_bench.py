"""The trace benchmark runs end to end on a tiny capture and prints every figure it promises."""

from __future__ import annotations

from pathlib import Path

import pytest
from trace_sessions import record_session

from armbus.tools.bench import trace as bench


@pytest.mark.parametrize("source", ["session", "synthetic"])
def test_bench_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str) -> None:
    record_session(tmp_path / "s.pcapng")
    args = ["--session", str(tmp_path / "s.pcapng")] if source == "session" else ["--synthetic"]
    bench.main(["--mb", "0.05", "--runs", "1", *args])
    out = capsys.readouterr().out
    for words in ("generated", "rows", "distinct", "read+decode+stats", "MB/s of capture", "CPU",
                  "reference decoder", "Deframer.feed", "x the baseline", "load average"):
        assert words in out, words
    if source == "session":
        assert "replicas" in out


def test_bench_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        bench.main(["--runs", "0"])
    with pytest.raises(SystemExit):
        bench.main(["--session", "x", "--synthetic"])
