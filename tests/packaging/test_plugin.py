"""The pytest plugin, loaded into every pytest run of an environment with armbus, adds only its documented
``armbus_*`` fixtures and ``--armbus-*`` options, and registers no pyserial URL handler."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from armbus.controller.backends import BACKENDS
from armbus.hil.pytest_plugin import FIXTURES

PROBE = '''
import sys

import serial


def test_loading_the_plugin_registered_nothing_with_pyserial():
    assert {packages!r} not in serial.protocol_handler_packages
    assert "armbus.hil.urlhandler.protocol_armbus" not in sys.modules
    assert "armbus.controller.arm" not in sys.modules  # nor loaded the host


def test_the_fixtures_work(armbus_clock, armbus_seed):
    assert armbus_clock.now() == 0 and armbus_seed == 0
'''


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE.format(packages=BACKENDS["armbus"]), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_a_foreign_suite_sees_only_the_documented_fixtures(tmp_path: Path) -> None:
    out = _pytest(tmp_path, "--fixtures").stdout
    section = out.split("fixtures defined from armbus.hil.pytest_plugin", 1)[1].split("=====", 1)[0]
    names = set(re.findall(r"^(\w+)(?: \[[\w ]+\])? -- ", section, re.M))
    assert names == set(FIXTURES)
    assert all(name.startswith("armbus_") for name in names)


def test_loading_the_plugin_registers_no_url_handler_and_says_nothing(tmp_path: Path) -> None:
    run = _pytest(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    assert not [line for line in run.stdout.splitlines() if line.startswith("armbus:")]
    # It speaks up only when a run is pointed at a real arm, which will move.
    real = _pytest(tmp_path, "--armbus-port", "/dev/ttyUSB9", "-k", "registered")
    assert real.returncode == 0 and "armbus: REAL ARM on /dev/ttyUSB9" in real.stdout


def test_its_options_are_prefixed(tmp_path: Path) -> None:
    out = _pytest(tmp_path, "--help").stdout
    section = out.split("armbus:", 1)[1].split("\n\n", 1)[0]
    options = re.findall(r"^\s+(--[\w-]+)", section, re.M)
    assert options and all(o.startswith("--armbus-") for o in options)
