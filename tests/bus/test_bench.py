"""The codec benchmark runs end to end on a tiny workload and prints every figure it promises."""

from __future__ import annotations

import pytest

from armbus.tools.bench import codec as bench


def test_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.run(["--size-mb", "0.02", "--reps", "1", "--baseline", "40"]) == 0
    out = capsys.readouterr().out
    for word in ("encode", "decode", "stream", "construct", "us/frame", "M frames/s", "retained", "ratio"):
        assert word in out


def test_workload_is_seeded_and_mixed() -> None:
    a, b = bench.Workload(20_000, 3), bench.Workload(20_000, 3)
    assert a.stream == b.stream and len(a.stream) >= 20_000
    types = {p.type for _, _, _, p in a.items if p is not None}
    assert len(types) >= 10 and any(p is None for _, _, _, p in a.items)


def test_bench_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        bench.run(["--reps", "0"])
