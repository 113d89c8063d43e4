"""The C firmware's receive path under libFuzzer (joints/firmware/fuzz/fuzz_receive.c): the regression inputs and
a 20-second run from the test-vector seeds, with AddressSanitizer and UBSan; any crash fails.

The long run (10 million inputs, docs/reliability.md) is ``python -m armbus.tools.campaigns.cfuzz --runs
10000000``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from armbus.bus.deframer import Deframer
from armbus.tools.campaigns import cfuzz

UNAVAILABLE = cfuzz.fuzzer_unavailable()
needs_fuzzer = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"libFuzzer unavailable: {UNAVAILABLE}")


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cfuzz.build(tmp_path_factory.mktemp("cfuzz"))


def test_every_vector_seeds_both_targets(tmp_path: Path) -> None:
    n = cfuzz.seed_corpus(tmp_path)
    vectors = json.loads(cfuzz.VECTORS.read_text())["vectors"]
    assert n == 3 * len(vectors)
    for v in vectors:
        assert (tmp_path / f"frame-{v['name']}").read_bytes() == b"\x00" + bytes.fromhex(v["wire"])
        joint = (tmp_path / f"joint-up-{v['name']}").read_bytes()
        assert joint[0] == 1 and len(joint) > 10
    # a joint seed opens the link with a RESET on UP: its first record carries a whole control frame
    first = (tmp_path / "joint-up-ping").read_bytes()
    op = first[1]
    assert op & 3 == 0 and Deframer().feed(first[2:2 + (op >> 3) + 1])


@needs_fuzzer
def test_the_regression_inputs_pass(binary: Path) -> None:
    inputs = sorted(str(p) for p in cfuzz.REGRESSIONS.iterdir() if p.is_file())
    assert inputs, "no regression inputs"
    run = subprocess.run([str(binary), *inputs], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]


@needs_fuzzer
def test_a_short_fuzz_run_finds_nothing(binary: Path, tmp_path: Path) -> None:
    result = cfuzz.run(runs=None, seconds=20, seed=1, binary=binary, work=tmp_path)
    print(result.line())
    assert not result.crashes, f"{result.crashes}\n{result.log_tail}"
    assert result.executions > 10_000
    assert result.cov > 500, "the seeds no longer reach the joint's handlers"
    assert result.regressions >= 1


def test_without_clang_the_command_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert cfuzz.main(["--seconds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "apt-get install clang" in err
