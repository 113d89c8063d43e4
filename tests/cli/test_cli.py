"""The armbus command: exit codes, --json output and one-line errors for bad arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from armbus.bus.errors import ExitCode
from armbus.tools.cli import main


def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARMBUS_PORT": "virtual"}
    return subprocess.run([sys.executable, "-m", "armbus.tools.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("armbus")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "sim", "ports", "scan", "baud", "info", "monitor", "move", "torque", "estop", "reg", "run",
                    "tap", "trace", "bench"):
        assert command in out
    assert "examples:" in out


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == ExitCode.USAGE


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["move", "1", "9x0deg"], "9x0deg"),
        (["move", "1", "90"], "90"),
        (["sim", "--baud", "fast"], "bad baud"),
        (["sim", "--adapter", "ftdi:latency=300ms"], "latency 300 ms is out of range"),
        (["sim", "--adapter", "ftdi:latency=16parsec"], "bad unit 'parsec'"),
        (["sim", "--adapter", "ch340"], "unknown model 'ch340'"),
        (["reg", "read", "1", "no_such_register"], "unknown register"),
        (["reg", "write", "1", "goal_position"], "needs a value"),
        (["bench", "nonsense"], "unknown benchmark"),
        (["trace", "decode", "/nonexistent/capture.pcapng"], "/nonexistent/capture.pcapng"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv: list[str], needle: str) -> None:
    proc = run(*argv)
    assert proc.returncode == ExitCode.USAGE, (proc.stdout, proc.stderr)
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_port_exit_3_with_hint() -> None:
    proc = run("info", "--port", "/dev/ttyNOPE-armbus")
    assert proc.returncode == ExitCode.PORT
    line = one_line_error(proc)
    assert "/dev/ttyNOPE-armbus" in line
    assert "armbus ports" in proc.stderr


def test_port_without_an_arm_exit_4(tmp_path: Path) -> None:
    # a pseudo-terminal nobody answers on: a port that is not an arm
    master, slave = os.openpty()
    try:
        proc = run("info", "--port", os.ttyname(slave), "--timeout", "0.2")
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == ExitCode.TIMEOUT
    assert "no arm answered" in one_line_error(proc)


def test_debug_shows_the_traceback() -> None:
    proc = run("--debug", "info", "--port", "/dev/ttyNOPE-armbus")
    assert proc.returncode == ExitCode.PORT
    assert "Traceback" in proc.stderr


@pytest.mark.realtime
def test_info_json_on_the_virtual_arm() -> None:
    proc = run("--json", "info")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [j["address"] for j in data["joints"]] == [1, 2, 3, 4, 5, 6]
    assert all(j["firmware"] == "1.0" for j in data["joints"])
    assert len(data["states"]) == 6


@pytest.mark.realtime
def test_reg_write_then_read_json() -> None:
    proc = run("--json", "reg", "write", "2", "watchdog_period", "250")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"joint": "joint2", "register": "watchdog_period", "value": 250, "unit": "ms",
                                       "text": "250 ms"}


@pytest.mark.realtime
def test_unknown_joint_is_named() -> None:
    proc = run("torque", "on", "elbow")
    assert proc.returncode == ExitCode.USAGE
    assert "unknown joint 'elbow'" in one_line_error(proc)


def test_reg_list_json() -> None:
    proc = run("--json", "reg", "list")
    assert proc.returncode == 0
    names = [r["name"] for r in json.loads(proc.stdout)]
    assert "present_position" in names and "watchdog_period" in names


def test_run_rejects_a_malformed_csv(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,joint1\n0,0\nnot-a-number,1\n")
    proc = run("run", str(bad))
    assert proc.returncode == ExitCode.USAGE
    assert "bad.csv" in one_line_error(proc)


@pytest.mark.parametrize("before", [True, False])
def test_connection_options_before_or_after_the_command(before: bool) -> None:
    opts = ["--port", "/dev/ttyNOPE-armbus", "--timeout", "0.2"]
    proc = run(*([*opts, "info"] if before else ["info", *opts]))
    assert proc.returncode == ExitCode.PORT
    assert "/dev/ttyNOPE-armbus" in one_line_error(proc)


def test_tap_without_a_port_names_what_is_missing() -> None:
    proc = run("tap", "--out", "x.pcapng")
    assert proc.returncode == ExitCode.USAGE
    assert "--port" in one_line_error(proc)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--port", "foo://bar", "info"], "foo://bar"),
        (["--baud", "12345678", "info"], "bad baud '12345678'"),
        (["--timeout", "soon", "info"], "bad timeout 'soon'"),
        (["reg", "write", "1", "goal_position", "12 parsec"], "unknown angle unit"),
    ],
)
def test_more_bad_arguments_give_one_line_and_exit_2(argv: list[str], needle: str) -> None:
    proc = run(*argv)
    assert proc.returncode == ExitCode.USAGE, (proc.stdout, proc.stderr)
    assert needle in one_line_error(proc)


def test_output_piped_into_a_reader_that_stops_is_not_an_error() -> None:
    env = {**os.environ, "ARMBUS_PORT": "virtual"}
    proc = subprocess.Popen([sys.executable, "-m", "armbus.tools.cli", "reg", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the command writes (as `armbus ... | head` after a line)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_without_a_port_the_virtual_arm_is_named() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARMBUS_PORT"}
    proc = subprocess.run([sys.executable, "-m", "armbus.tools.cli", "reg", "read", "1", "status"],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0 and "using an in-process virtual arm, not a real one" in proc.stderr


def test_run_checks_every_waypoint_before_anything_moves(tmp_path: Path) -> None:
    f = tmp_path / "far.csv"
    f.write_text("time_s,joint1,joint2\n0,0,0\n1,0.1,30\n")  # 30 rad: degrees typed as radians
    proc = run("run", str(f))
    assert proc.returncode == ExitCode.USAGE
    assert "joint2 is more than a full turn" in one_line_error(proc) and "30deg" in proc.stderr


def test_run_help_explains_the_csv_format() -> None:
    proc = run("run", "--help")
    assert proc.returncode == 0 and "time_s,shoulder_deg,elbow_deg" in proc.stdout and "bare numbers" in proc.stdout
