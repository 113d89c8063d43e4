"""``armbus record`` and ``armbus trace export --mcap`` from the command line: real files, one-line errors, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from armbus.bus.errors import ExitCode
from armbus.hil.trace.mcapfile import JOINT_STATES

SIM = "armbus://?joints=3&seed=1"


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "armbus.tools.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, check=False)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def joint_states(path: Path) -> list[tuple[int, object]]:
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_summary() is not None  # closed properly: the summary section is there
        return [(m.log_time, d) for _, _, m, d in reader.iter_decoded_messages(topics=[JOINT_STATES])]


def test_a_path_that_cannot_be_written_is_one_line_before_the_arm_opens(tmp_path: Path) -> None:
    proc = run("record", "--port", "/dev/ttyDOESNOTEXIST", "--out", str(tmp_path / "missing" / "run.mcap"))
    assert proc.returncode == ExitCode.USAGE
    line = one_line_error(proc)
    assert line.startswith("armbus: error: cannot create") and "No such file or directory" in line


@pytest.mark.parametrize(("option", "value", "says"), [("--rate", "0", "--rate 0"), ("--rate", "5000", "at most"),
                                                       ("--rate", "900", "--rate 900 Hz: choose more than 0 and at "
                                                        "most 355 Hz (the replies of 3 joints at 1000000 baud"),
                                                       ("--duration", "-1", "--duration -1")])
def test_bad_rate_or_duration_is_one_line(tmp_path: Path, option: str, value: str, says: str) -> None:
    proc = run("record", "--port", SIM, "--out", str(tmp_path / "r.mcap"), option, value)
    assert proc.returncode == ExitCode.USAGE
    assert says in one_line_error(proc)
    assert not (tmp_path / "r.mcap").exists()


def test_a_full_disk_is_one_line() -> None:
    proc = run("record", "--port", SIM, "--out", "/dev/full", "--duration", "0.3")
    assert proc.returncode == ExitCode.USAGE
    line = one_line_error(proc)
    assert "No space left on device" in line and "incomplete" in line


@pytest.mark.realtime
def test_record_on_a_simulated_arm_in_real_time(tmp_path: Path) -> None:
    out = tmp_path / "run.mcap"
    proc = run("record", "--port", SIM, "--out", str(out), "--duration", "1", "--rate", "50")
    assert proc.returncode == 0, proc.stderr
    said = re.search(r"recorded 1\.00 s at 50 Hz into .*: (\d+) joint states, .*; (\d+) cycles, (\d+) without a "
                     r"reply in time(?: \((\d+) came later\))?", proc.stdout)
    assert said, proc.stdout
    reported, cycles, missed, late = (int(g or 0) for g in said.groups())
    states = joint_states(out)
    # 1 s at 50 Hz; the in-process arm runs in real time beside the tests, and a loaded machine makes it late:
    # deadlines are skipped (not made up) and replies may come too late, but every cycle is accounted for
    assert 40 <= cycles <= 50 and missed <= cycles // 2, proc.stdout
    assert len(states) == reported == cycles - missed + late, proc.stdout
    times = [t for t, _ in states]
    assert times == sorted(times)
    assert abs(times[0] / 1e9 - time.time()) < 60  # the wall clock's epoch
    assert [list(m.name) for _, m in states[:1]] == [["joint1", "joint2", "joint3"]]  # type: ignore[attr-defined]


@pytest.mark.realtime
def test_ctrl_c_closes_the_recording_properly(tmp_path: Path) -> None:
    out = tmp_path / "run.mcap"
    proc = subprocess.Popen([sys.executable, "-m", "armbus.tools.cli", "record", "--port", SIM, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (out.exists() and out.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    assert "(interrupted)" in stdout and "Traceback" not in stderr
    assert len(joint_states(out)) > 20


def test_trace_export_from_the_command_line(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trace"))
    from trace_sessions import record_session

    cap = tmp_path / "cap.pcapng"
    record_session(cap)
    proc = run("trace", "export", "--mcap", str(cap), "--out", str(tmp_path / "cap.mcap"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"exported {cap} -> {tmp_path / 'cap.mcap'}: 1 joint states")
    assert len(joint_states(tmp_path / "cap.mcap")) == 1
    proc = run("trace", "export")
    assert proc.returncode == ExitCode.USAGE and one_line_error(proc).startswith("error: give one capture")
    proc = run("trace", "export", "--mcap", str(tmp_path / "nope.pcapng"))
    assert proc.returncode == ExitCode.USAGE and "no such file" in one_line_error(proc)
