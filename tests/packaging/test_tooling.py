"""The development tooling sees the package as it is laid out: an editable install picks up a new module at once,
and coverage measures the real files in the layer folders."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import armbus

REPO = Path(__file__).resolve().parents[2]


def test_an_editable_install_sees_a_new_module_without_a_reinstall(tmp_path: Path) -> None:
    if Path(armbus.__file__).resolve().parent != REPO / "armbus":
        pytest.skip("armbus is not installed from this repository in editable mode")
    name = f"_probe_{os.getpid()}"
    module = REPO / "tools" / f"{name}.py"
    module.write_text("ANSWER = 42\n", encoding="utf-8")
    try:  # a fresh interpreter, outside the repository, so only the installed finder can find it
        run = subprocess.run([sys.executable, "-c", f"from armbus.tools.{name} import ANSWER; print(ANSWER)"],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
    finally:
        module.unlink()
    assert run.returncode == 0 and run.stdout.strip() == "42", run.stderr


def test_coverage_reports_every_module_by_its_real_path(tmp_path: Path) -> None:
    if importlib.util.find_spec("coverage") is None:
        pytest.skip("coverage is not installed (make venv installs it)")
    data = tmp_path / ".coverage"
    env = {**os.environ, "COVERAGE_FILE": str(data)}
    subprocess.run([sys.executable, "-m", "coverage", "run", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "tests/bus/test_codec_basic.py"], cwd=REPO, env=env, capture_output=True, timeout=300,
                   check=True)
    report = subprocess.run([sys.executable, "-m", "coverage", "report"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120, check=True).stdout
    files = {line.split()[0] for line in report.splitlines() if line.endswith("%") and "/" in line.split()[0]}
    assert {"bus/codec.py", "bus/link.py", "controller/arm.py", "hil/kernel.py", "tools/cli.py"} <= files
    assert not any(f.startswith(("armbus/bus", "armbus/controller")) for f in files)  # each file once, by its real path
