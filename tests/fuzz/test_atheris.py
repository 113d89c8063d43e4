"""The coverage-guided engine (``--engine atheris``): a short run when atheris is installed, the hint when not.

atheris is an optional extra (``pip install -e '.[fuzz]'``); ``make fuzz-atheris`` installs it and runs this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from armbus.tools.campaigns import fuzzing

ROOT = Path(__file__).resolve().parents[2]


def test_without_atheris_the_engine_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "atheris", None)  # import atheris now raises ImportError
    assert fuzzing.main(["--engine", "atheris", "--harness", "decode", "--inputs", "10"]) == 2
    assert "pip install -e '.[fuzz]'" in capsys.readouterr().err


def test_a_short_atheris_run_of_the_decode_target() -> None:
    pytest.importorskip("atheris", reason="atheris is not installed: pip install -e '.[fuzz]' (make fuzz-atheris)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-m", "armbus.tools.campaigns.fuzzing", "--engine", "atheris", "--harness",
                          "decode", "--inputs", "2000"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Done 2000 runs" in run.stderr, run.stderr
