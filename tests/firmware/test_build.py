"""Building the C firmware: one clear error without a compiler (and the Python joints unaffected), a cache keyed
by the sources, the ``firmware`` option's checks, and the generated headers the firmware compiles with."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from armbus.bus.errors import ArmbusError, UsageError
from armbus.hil.firmware import build
from armbus.hil.firmware.choice import parse_firmware
from armbus.hil.virtual_arm import VirtualArm
from armbus.joints.node import JointNode
from armbus.tools.cli import main


def test_no_compiler_is_one_clear_error_and_python_joints_still_run(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-armbus")
    with pytest.raises(build.FirmwareUnavailable, match="Python joints still work") as info:
        build.library()
    assert isinstance(info.value, ArmbusError) and "\n" not in str(info.value)
    with pytest.raises(build.FirmwareUnavailable):
        VirtualArm(2, firmware="c")
    arm = VirtualArm(2)  # the default needs no compiler
    assert all(isinstance(j, JointNode) for j in arm.joints)
    assert build.available() is not None
    assert main(["sim", "--firmware", "c", "--joints", "1"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "C compiler" in err[0], err


def test_no_compiler_on_the_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(build.FirmwareUnavailable, match=r"no C compiler .* install one"):
        build.compiler()


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine")
def test_cache_is_keyed_by_the_sources(tmp_path: Path) -> None:
    tree = tmp_path / "firmware"
    shutil.copytree(build.FIRMWARE_DIR, tree, ignore=shutil.ignore_patterns("build*"))
    cache = tmp_path / "cache"
    first = build.library(tree, cache)
    assert first.exists() and build.library(tree, cache) == first
    stamp = first.stat().st_mtime_ns
    assert build.library(tree, cache).stat().st_mtime_ns == stamp  # reused, not rebuilt
    src = tree / "src" / "router.c"
    src.write_text(src.read_text() + "\n/* changed */\n")
    second = build.library(tree, cache)
    assert second != first and second.exists()
    src.write_text(src.read_text() + "\nthis is not C\n")
    with pytest.raises(build.FirmwareUnavailable, match="compiler failed"):
        build.library(tree, cache)


@pytest.mark.parametrize(("spec", "joints", "kinds"), [
    (None, 2, ["python", "python"]), ("c", 3, ["c", "c", "c"]), ("C, python", 2, ["c", "python"]),
    (["python", "c", "c"], 3, ["python", "c", "c"]),
])
def test_firmware_option(spec: object, joints: int, kinds: list[str]) -> None:
    assert parse_firmware(spec, joints) == kinds  # type: ignore[arg-type]


@pytest.mark.parametrize(("spec", "message"), [("rust", "use 'python', 'c'"), ("c,python", "names 2 joint"),
                                               ("", "use 'python'")])
def test_bad_firmware_option(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_firmware(spec, 3)


def test_generator_check_mode(tmp_path: Path) -> None:
    from armbus.tools.gen import firmware

    assert firmware.main(["--check"]) == 0
    assert firmware.main(["--check", "--root", str(tmp_path)]) == 1
    assert firmware.main(["--root", str(tmp_path)]) == 0 and firmware.main(["--check", "--root", str(tmp_path)]) == 0


@pytest.mark.skipif(build.available() is not None, reason=str(build.available()))
def test_armbus_sim_and_the_url_take_the_firmware() -> None:
    import argparse

    from armbus.hil.firmware.cjoint import CJoint
    from armbus.hil.ptyserver import build_arm
    from armbus.hil.urlhandler.protocol_armbus import parse_url

    arm, _ = build_arm(argparse.Namespace(joints=3, firmware="c,python,c"))
    assert [type(j) for j in arm.joints] == [CJoint, JointNode, CJoint]
    assert parse_url("armbus://?joints=2&firmware=c")["firmware"] == "c"


def test_firmware_spec_round_trips() -> None:
    from armbus.hil.firmware.choice import firmware_spec

    assert firmware_spec(["c", "c"]) == "c" and firmware_spec(["c", "python"]) == "c,python"
    assert parse_firmware(firmware_spec(["python", "c", "c"]), 3) == ["python", "c", "c"]
