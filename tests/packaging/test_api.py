"""``import armbus``: the everyday API by name, resolved on first use, and a light import of one layer."""

from __future__ import annotations

import subprocess
import sys

import pytest

import armbus


def test_all_names_exactly_the_exports() -> None:
    assert sorted(armbus.__all__) == sorted([*armbus._EXPORTS, "__version__"])
    for name in armbus.__all__:
        assert getattr(armbus, name) is not None
    assert armbus.Arm.__module__ == "armbus.controller.arm"
    assert issubclass(armbus.UsageError, armbus.ArmbusError)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Bus'"):
        armbus.Bus  # noqa: B018


def test_importing_one_layer_loads_no_port_event_loop_or_host() -> None:
    code = ("import sys, armbus.bus.codec, armbus.joints.node; "
            "print(sorted(m for m in ('serial', 'asyncio', 'numpy', 'armbus.controller', 'armbus.hil') "
            "if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert run.stdout.strip() == "[]"


def test_python_dash_m_armbus_is_the_command() -> None:
    run = subprocess.run([sys.executable, "-m", "armbus", "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "armbus demo" in run.stdout
    bad = subprocess.run([sys.executable, "-m", "armbus", "frobnicate"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
