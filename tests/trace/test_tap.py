"""The capture tap, in real time: a pty pair stands in for the real port (served by an echo or a real-time arm)."""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from armbus.bus.wire import FrameKind, MsgType
from armbus.controller.arm import Arm
from armbus.hil.ptyserver import PtyServer, build_arm
from armbus.hil.trace.decode import LINE_ERROR, decode_file
from armbus.hil.trace.reader import read_trace
from armbus.hil.trace.tap import TO_ARM, TO_HOST, Tap

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.realtime


@pytest.fixture
def echo_port() -> Iterator[str]:
    """A 'real port': the slave of a pty whose master echoes every byte back."""
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            if select.select([master], [], [], 0.02)[0]:
                try:
                    os.write(master, os.read(master, 4096))
                except OSError:
                    return

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    yield os.ttyname(slave)
    stop.set()
    thread.join(1)
    os.close(master)
    os.close(slave)


def _both_directions(path: Path) -> dict[str, bytes]:
    trace = read_trace(path)
    out = {TO_ARM: b"", TO_HOST: b""}
    for iface, _, data in trace.chunks():
        out[trace.interfaces[iface].direction] += data
    return out


def _read_exactly(port: serial.Serial, n: int, timeout: float = 5.0) -> bytes:
    got = b""
    end = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < end:
        got += port.read(n - len(got))
    return got


def test_bytes_pass_both_ways_unchanged_and_are_recorded(echo_port: str, tmp_path: Path) -> None:
    out = tmp_path / "echo.pcapng"
    messages = [bytes([i % 256 for i in range(k, k + 40)]) + b"\x00" for k in range(0, 2000, 40)]
    link = tmp_path / "armbus-tap"
    with Tap(echo_port, out, symlink=link) as tap, serial.Serial(str(link), timeout=0.2) as host:
        assert os.readlink(link) == tap.path
        t0 = time.monotonic()
        for m in messages:
            host.write(m)
            assert _read_exactly(host, len(m)) == m
        round_trip = (time.monotonic() - t0) / len(messages)
    assert not link.exists()
    sent = b"".join(messages)
    rec = _both_directions(out)
    assert rec[TO_ARM] == sent and rec[TO_HOST] == sent  # byte exact, both directions
    trace = read_trace(out)
    assert trace.metadata["capture"] == "tap" and {i.link for i in trace.interfaces} == {"host-j1"}
    for itf in trace.interfaces:
        t = trace.chunk_t_ns[trace.chunk_iface == itf.index]
        assert (t[1:] >= t[:-1]).all()
    assert tap.dropped == 0 and tap.errors == []
    assert round_trip < 0.05, round_trip  # two hops through the tap: well under a millisecond normally


def test_host_program_talks_to_a_real_time_arm_through_the_tap(tmp_path: Path) -> None:
    out = tmp_path / "arm.pcapng"
    args = argparse.Namespace(joints=2, baud=1_000_000, seed=0, faults=None, unpaced=False, capture=None,
                              link=None, json=False)
    arm, _ = build_arm(args)
    with PtyServer(arm) as server, Tap(server.port, out) as tap:
        with Arm.open(tap.path, timeout=0.5) as host:
            assert [j.address for j in host.enumerate()] == [1, 2]
        time.sleep(0.05)
    table = decode_file(str(out))
    names = {i.index: i.direction for i in table.trace.interfaces}
    to_arm = [names[int(i)] for i in table.iface[table.type == MsgType.ENUMERATE]]
    to_host = [names[int(i)] for i in table.iface[table.type == MsgType.ENUMERATE_REPLY]]
    assert set(to_arm) == {TO_ARM} and set(to_host) == {TO_HOST}  # a retransmission may repeat one
    assert to_arm and to_host
    assert (table.kind == FrameKind.ACK).sum() >= 2 and not (table.kind == LINE_ERROR).any()


def _start_tap_process(port: str, out: Path) -> tuple[subprocess.Popen[str], str]:
    code = "import sys; from armbus.hil.trace.tap import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "--port", port, "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "recording to" in line, line + proc.stderr.read() if proc.stderr else ""
    return proc, line.split("<-> ")[1].split(",")[0]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_ctrl_c_stops_cleanly_and_a_killed_tap_leaves_a_readable_file(echo_port: str, tmp_path: Path,
                                                                      sig: signal.Signals) -> None:
    out = tmp_path / "t.pcapng"
    proc, pty_path = _start_tap_process(echo_port, out)
    try:
        with serial.Serial(pty_path, timeout=0.2) as host:
            for k in range(20):
                msg = bytes([k + 1]) * 30 + b"\x00"
                host.write(msg)
                assert _read_exactly(host, len(msg)) == msg
        time.sleep(0.2)  # let the recorder thread write the last chunks
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    trace = read_trace(out)  # never raises: whole blocks up to the end
    rec = _both_directions(out)
    assert rec[TO_ARM] == rec[TO_HOST] == b"".join(bytes([k + 1]) * 30 + b"\x00" for k in range(20))
    if sig == signal.SIGINT:
        assert proc.returncode == 0, stderr
        assert "stopped" in stdout and "0 chunk(s) dropped" in stdout
        assert not trace.truncated
    else:
        assert proc.returncode == -signal.SIGKILL


def test_a_tap_capture_replays_against_a_virtual_arm(tmp_path: Path) -> None:
    from armbus.hil.trace.replay import replay_virtual

    out = tmp_path / "tapped.pcapng"
    args = argparse.Namespace(joints=3, baud=1_000_000, seed=0, faults=None, unpaced=False, capture=None,
                              link=None, json=False)
    arm, _ = build_arm(args)
    with PtyServer(arm) as server, Tap(server.port, out) as tap:
        for _ in range(2):  # two host programs, one after the other: two link sessions in one capture
            with Arm.open(tap.path, timeout=0.5) as host:
                host.enumerate()
                host.read("joint2", "status")
                host.write("joint3", "state_period", 0)
        time.sleep(0.05)
    result = replay_virtual(read_trace(str(out)))
    assert result.ok, result.comparison.differences
    assert result.comparison.matched >= 6  # two of each reply: ENUMERATE, READ, WRITE
    assert any("packets are compared" in n for n in result.notes)
    assert any("3, from its ENUMERATE_REPLY" in n for n in result.notes)
