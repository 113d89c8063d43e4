"""The virtual arm behind a pseudo-terminal, and the checks of ``armbus sim``'s arguments."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import serial

from armbus.bus.errors import ConfigError, UsageError
from armbus.bus.messages import Ping, PingReply
from armbus.bus.wire import NS_PER_MS, Address
from armbus.hil.probe import LinkProbe
from armbus.hil.ptyserver import PtyServer, build_arm
from armbus.hil.trace.reader import read_trace
from armbus.hil.virtual_arm import VirtualArm

ROOT = Path(__file__).resolve().parents[2]


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"joints": 2, "baud": 1_000_000, "seed": 0, "faults": None, "unpaced": False,
                               "capture": None, "link": None, "json": False}
    base.update(kw)
    return argparse.Namespace(**base)


@pytest.mark.realtime
def test_pyserial_opens_the_pty_and_the_arm_answers(tmp_path: Path) -> None:
    link = tmp_path / "armbus0"
    arm, _ = build_arm(_args())
    with PtyServer(arm, link=link) as server:
        assert server.port == str(link) and os.readlink(link) == server.path
        with serial.Serial(server.port, 1_000_000, timeout=0) as port:
            port.write(b"\xff\x13 not a frame \x00")  # garbage first: counted, not fatal
            probe = LinkProbe(port.fileno())
            probe.open(timeout=5)
            reply = probe.request(Ping(), int(Address.UNASSIGNED), timeout=5)
            assert isinstance(reply, PingReply) and reply.serial == 0x1001
        errors = server.driver.call(lambda a: a.joints[0].links[0].counters)
        assert errors.crc_errors + errors.framing_errors >= 1
    assert not link.exists() and not server.driver.running


def test_link_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    f = tmp_path / "precious"
    f.write_text("keep me")
    with pytest.raises(UsageError, match="not a symlink"):
        PtyServer(VirtualArm(1), link=f)
    assert f.read_text() == "keep me"


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"joints": 0}, UsageError, "--joints 0: a chain holds 1..253"),
        ({"joints": 300}, UsageError, "--joints 300: a chain holds 1..253"),
        ({"baud": 12_000_000}, UsageError, "faster than the real-time harness can pace"),
        ({"baud": 50}, UsageError, "baud 50 is outside"),
        ({"faults": "/nonexistent/faults.toml"}, ConfigError, "no such file"),
        ({"adapter": "ftdi:latency=300ms"}, UsageError, "latency 300 ms is out of range"),
        ({"adapter": "ftdi:latency=1h"}, UsageError, "bad unit 'h'"),
        ({"adapter": "pl2303"}, UsageError, "unknown model 'pl2303'"),
        ({"adapter": "ftdi", "baud": 4_000_000}, UsageError, "above the chip's 3000000 baud"),
    ],
)
def test_bad_sim_arguments_are_clear_errors(kw: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build_arm(_args(**kw))


def test_a_fault_file_for_a_bigger_arm_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no joint 3: the arm has joints 1\.\.2"):
        build_arm(_args(faults=str(ROOT / "docs" / "examples" / "faults.toml")))


@pytest.mark.realtime
def test_run_sim_prints_the_tty_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    code = ("import argparse, sys; from armbus.hil.ptyserver import run_sim; "
            "sys.exit(run_sim(argparse.Namespace(joints=2, baud=1000000, seed=1, faults=None, unpaced=False, "
            f"capture={str(tmp_path / 'c.pcapng')!r}, link=None, json=True)))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert '"tty": "/dev/pts/' in line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped:" in err
    assert (tmp_path / "c.pcapng").stat().st_size > 0


@pytest.mark.realtime
def test_run_sim_behind_an_adapter_captures_the_host_side_at_frame_starts(tmp_path: Path) -> None:
    capture = tmp_path / "a.pcapng"
    code = ("import argparse, sys; from armbus.hil.ptyserver import run_sim; "
            "sys.exit(run_sim(argparse.Namespace(joints=1, baud=1000000, seed=1, faults=None, unpaced=False, "
            f"capture={str(capture)!r}, link=None, json=True, adapter='cdc-acm')))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["adapter"] == "cdc-acm"
        with serial.Serial(info["tty"], 1_000_000, timeout=0) as port:
            probe = LinkProbe(port.fileno())
            probe.open(timeout=5)
            assert isinstance(probe.request(Ping(), int(Address.UNASSIGNED), timeout=5), PingReply)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "frames start at" in err  # the adapter's seeded decisions are printed with the fault log
    trace = read_trace(capture)
    assert trace.metadata["adapter"] == "cdc-acm"
    host_side = {i.index for i in trace.interfaces if i.link == "host-j1" and i.direction == "b>a"}
    times = [t for iface, t, _ in trace.chunks() if iface in host_side]
    assert len(times) >= 2 and len({t % NS_PER_MS for t in times}) == 1  # what the host saw, at frame starts
