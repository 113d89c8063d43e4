"""Faults around the host, in real time (short, tolerant): the port vanishes mid-motion and returns, the trace
recorder is SIGKILLed mid-capture, the host process is SIGKILLed while the joints move."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from armbus.bus.deframer import Deframer
from armbus.bus.errors import ArmbusError
from armbus.bus.link import LinkConfig
from armbus.bus.wire import StatusFlag
from armbus.controller.arm import Arm
from armbus.controller.events import HostEvent, PortLost, PortRestored
from armbus.hil.ptyserver import PtyServer
from armbus.hil.realtime import REALTIME_TURNAROUND_NS
from armbus.hil.trace.reader import read_trace
from armbus.hil.virtual_arm import VirtualArm

pytestmark = pytest.mark.realtime
ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


def _arm(joints: int, seed: int) -> VirtualArm:
    return VirtualArm(joints, seed=seed, link_config=LinkConfig(turnaround_ns=REALTIME_TURNAROUND_NS))


def test_port_vanishes_mid_motion_and_the_stream_resumes(tmp_path: Path) -> None:
    link = tmp_path / "ttyUSB-arm"
    varm = _arm(2, 6)
    server = PtyServer(varm, link=link).start()
    events: list[HostEvent] = []
    sent, failed = [0, 0], [0, 0]  # before / after the port came back
    phase = [0]
    stop = threading.Event()
    try:
        with Arm.open(str(link), timeout=0.2) as arm:
            arm.add_listener(events.append)
            arm.enumerate()
            names = sorted(arm.joints)

            def stream() -> None:  # 100 Hz goals, as a trajectory streamer would send them
                t0 = time.monotonic()
                while not stop.is_set():
                    t = time.monotonic() - t0
                    try:
                        arm.set_goals({n: 0.1 * math.sin(t + i) for i, n in enumerate(names)})
                        sent[phase[0]] += 1
                    except ArmbusError:
                        failed[phase[0]] += 1
                    time.sleep(0.01)

            streamer = threading.Thread(target=stream, daemon=True)
            streamer.start()
            time.sleep(0.3)
            server.close()  # unplugged mid-motion
            assert wait_for(lambda: any(isinstance(e, PortLost) for e in events))
            time.sleep(0.2)
            server = PtyServer(varm, link=link).start()
            assert wait_for(lambda: any(isinstance(e, PortRestored) for e in events))
            assert arm.wait_link(2.0)
            phase[0] = 1
            time.sleep(0.3)
            stop.set()
            streamer.join(2.0)
            assert not streamer.is_alive()
            assert [type(e) for e in events if isinstance(e, (PortLost, PortRestored))] == [PortLost, PortRestored]
            assert failed[0] > 0  # sends while unplugged fail at once, as errors, not hangs
            assert sent[1] > 10 and failed[1] == 0  # and the stream carries on after the port returns
    finally:
        stop.set()
        server.close()


RECORDER = textwrap.dedent("""
    import sys
    from armbus.bus.codec import Packet, encode_data
    from armbus.hil.trace.pcapng import TraceWriter
    w = TraceWriter(sys.argv[1], {"joints": 6})
    i = 0
    while True:
        frame = encode_data(i & 0xFF, 0, Packet(0, 1 + i % 6, 0x07, i & 0xFFFF, 32, bytes(5)))
        w.write("host-j1", "a>b", i * 1000, frame)
        i += 1
        if i == 200:
            print("ready", flush=True)
""")


@pytest.mark.parametrize("delay", [0.05, 0.13])
def test_recorder_killed_mid_capture_leaves_a_readable_trace(tmp_path: Path, delay: float) -> None:
    path = tmp_path / "capture.pcapng"
    proc = subprocess.Popen([sys.executable, "-c", RECORDER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    trace = read_trace(path)  # never raises for a cut file: truncation is reported
    assert len(trace) >= 200
    assert all(w.startswith("truncated last block") for w in trace.warnings)
    d = Deframer()
    for _, _, data in trace.chunks():
        d.feed(data)
    assert d.counters.frames == len(trace) and d.counters.error_total == 0  # every whole block is intact


HOST = textwrap.dedent("""
    import math, sys, time
    from armbus.controller.arm import Arm
    arm = Arm.open(sys.argv[1], timeout=0.3, heartbeat_period=0.02)
    arm.enumerate()
    for name in sorted(arm.joints):
        arm.write(name, "watchdog_period", 100)
        arm.torque(True, name)
    print("ready", flush=True)
    t0 = time.monotonic()
    while True:
        t = time.monotonic() - t0
        arm.set_goals({n: 0.3 * math.sin(3 * t) for n in sorted(arm.joints)})
        time.sleep(0.005)
""")


def test_host_process_killed_joints_reach_a_safe_stop_by_watchdog() -> None:
    varm = _arm(3, 8)
    with PtyServer(varm) as server:
        proc = subprocess.Popen([sys.executable, "-c", HOST, server.port], cwd=ROOT, stdout=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(0.3)  # moving, heartbeats flowing
            assert all(j.control.torque and not j.control.state.status & StatusFlag.WATCHDOG for j in varm.joints)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(5)
        t_kill = time.monotonic()
        assert wait_for(lambda: all(j.control.state.status & StatusFlag.WATCHDOG for j in varm.joints), 2.0)
        took = time.monotonic() - t_kill
        assert took < 0.1 + 0.5  # watchdog period, plus generous slack for a loaded machine
        assert wait_for(lambda: all(abs(j.control.velocity) < 0.02 for j in varm.joints), 2.0)
