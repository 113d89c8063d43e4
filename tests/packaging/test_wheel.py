"""The built wheel installs one top-level import name, armbus, and works from a venv of its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import armbus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # Built from a copy (links kept as links, as a clone has them), so the build leaves nothing in the repository.
    src = tmp_path_factory.mktemp("src") / "armbus-src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".*", "build", "*.egg-info", "__pycache__", "out", "armbus-demo"))
    # Offline and quick: the build backend of the development venv (setuptools, wheel from the test extras).
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300, cwd=src)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (whl,) = out.glob("armbus-*.whl")
    return whl


def test_the_wheel_holds_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"armbus"}
    for module in ("armbus/__init__.py", "armbus/__main__.py", "armbus/py.typed", "armbus/bus/codec.py",
                   "armbus/joints/node.py", "armbus/controller/arm.py", "armbus/controller/backends.py",
                   "armbus/hil/urlhandler/protocol_armbus.py", "armbus/tools/cli.py"):
        assert module in names
    assert not any(n.startswith(("armbus/tests", "tests/")) for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "armbus = armbus.tools.cli:main" in text and "armbus = armbus.hil.pytest_plugin" in text


def test_the_wheel_installs_into_an_empty_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    installed = {p.name for p in site.iterdir()} - {"__pycache__"}
    assert {n for n in installed if not n.endswith((".dist-info", ".pth"))} == {"armbus"}
    # The dependencies (numpy, pyserial, construct ...) come from the development venv, appended after the new
    # venv's own site-packages, so the armbus imported below is the installed wheel.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    code = ("import armbus, sys; from armbus import Arm, AsyncArm, ArmbusError, load_config; "
            "print(armbus.__file__); print(armbus.__version__)")
    run = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    where, version = run.stdout.split()
    assert Path(where).is_relative_to(site) and version == armbus.__version__
    for cmd in ([str(venv / "bin" / "armbus"), "--help"], [str(python), "-m", "armbus", "--help"]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert out.returncode == 0 and "armbus demo" in out.stdout, out.stderr
