"""The armbus command on a joint's state: registers with units and names, stops that say why, negative values.

These run against one real-time virtual arm behind a pseudo-terminal, so that state (an e-stop, a watchdog trip)
lasts from one command to the next as on a real arm."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from armbus.bus.errors import ExitCode
from armbus.bus.wire import DEFAULT_BAUD
from armbus.hil.ptyserver import PtyServer
from armbus.hil.realtime import realtime_link_config
from armbus.hil.virtual_arm import VirtualArm

pytestmark = pytest.mark.realtime


@pytest.fixture(scope="module")
def port() -> Iterator[str]:
    with PtyServer(VirtualArm(3, seed=2, link_config=realtime_link_config(DEFAULT_BAUD))) as server:
        yield server.port


def run(port: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ARMBUS_PORT"}
    return subprocess.run([sys.executable, "-m", "armbus.tools.cli", "--port", port, "--timeout", "0.5", *argv],
                          capture_output=True, text=True, timeout=120, check=False, env=env)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout


def test_registers_read_as_a_person_reads_them(port: str) -> None:
    assert "degC" in ok(run(port, "reg", "read", "1", "present_temperature"))
    assert ok(run(port, "reg", "read", "1", "fault_code")).strip().endswith("none (0)")
    ok(run(port, "reg", "write", "all", "watchdog_period", "200ms"))
    rows = json.loads(ok(run(port, "--json", "reg", "read", "all", "watchdog_period")))
    assert [r["value"] for r in rows] == [200, 200, 200] and rows[0]["text"] == "200 ms"
    ok(run(port, "reg", "write", "all", "watchdog_period", "0"))
    ok(run(port, "reg", "write", "2", "clear_flags", "REBOOTED"))
    assert "REBOOTED" not in ok(run(port, "reg", "read", "2", "status"))
    dump = ok(run(port, "reg", "dump", "3"))
    assert "position_max" in dump and "150.00 deg" in dump and "persistent" in dump
    bad = run(port, "reg", "write", "1", "clear_flags", "SOMETIMES")
    assert bad.returncode == ExitCode.USAGE and "clear_flags takes TORQUE_ON" in bad.stderr


def test_negative_positions_can_be_typed(port: str) -> None:
    out = ok(run(port, "move", "1", "-0.05rad", "--wait", "--tolerance", "0.5deg"))
    assert "goal -2.86 deg" in out
    ok(run(port, "torque", "off"))


def test_a_stopped_joint_says_why_at_once_and_the_release_does_not_power_it(port: str) -> None:
    ok(run(port, "estop"))
    proc = run(port, "move", "2", "5deg", "--wait")
    assert proc.returncode == ExitCode.FAILED, proc.stderr
    assert "joint2 is e-stopped: armbus estop --release, then armbus torque on" in proc.stderr
    ok(run(port, "estop", "--release"))
    status = json.loads(ok(run(port, "--json", "reg", "read", "all", "status")))
    assert all("ESTOPPED" not in r["text"] and "TORQUE_ON" not in r["text"] for r in status)
    ok(run(port, "clear", "all"))
    assert "goal 5.00 deg" in ok(run(port, "move", "2", "5deg", "--wait", "--tolerance", "0.5deg"))
    ok(run(port, "torque", "off"))


def test_a_zero_tolerance_is_refused(port: str) -> None:
    proc = run(port, "move", "1", "1deg", "--wait", "--tolerance", "0deg")
    assert proc.returncode == ExitCode.USAGE and "--tolerance" in proc.stderr


def test_a_second_program_on_the_port_is_told_it_is_busy_and_by_whom(port: str) -> None:
    from armbus.controller.arm import Arm

    with Arm.open(port):
        proc = run(port, "info")
    assert proc.returncode == ExitCode.PORT, proc.stderr
    assert f"{port} is busy: held by pid {os.getpid()}" in proc.stderr and "Traceback" not in proc.stderr
    assert ok(run(port, "reg", "read", "1", "status"))  # free again once the first program closed it


def test_monitor_waits_for_a_lost_port_to_come_back(tmp_path: Path) -> None:
    link = tmp_path / "ttyUSB-arm"
    varm = VirtualArm(2, seed=4, link_config=realtime_link_config(DEFAULT_BAUD))
    server = PtyServer(varm, link=link).start()
    env = {k: v for k, v in os.environ.items() if k != "ARMBUS_PORT"}
    proc = subprocess.Popen([sys.executable, "-m", "armbus.tools.cli", "--json", "--port", str(link), "--timeout",
                             "0.3", "monitor", "--rate", "10", "--duration", "6"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())[0]["address"] == 1  # watching
        server.close()  # unplugged
        time.sleep(1.0)
        server = PtyServer(varm, link=link).start()  # plugged back in
        out, err = proc.communicate(timeout=60)
    finally:
        server.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "waiting for the arm" in err and "Traceback" not in err
    assert out.strip().splitlines()  # rows again after the port came back
    assert json.loads(out.strip().splitlines()[-1])[1]["address"] == 2
