"""End to end, real processes: ``armbus sim`` (a pty arm), ``armbus serve`` on it, and at once ``armbus monitor``,
a control script moving a joint under the lease, and ``armbus tap`` recording the line; each sees what it should."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.realtime
CLI = [sys.executable, "-m", "armbus.tools.cli"]

CONTROL = textwrap.dedent("""
    import math, sys, time
    from armbus import Arm, LeaseError
    with Arm.open(sys.argv[1]) as arm:
        arm.enumerate()
        try:
            arm.torque(True, "joint2")
        except LeaseError as exc:
            print("refused:", exc.holder is None, flush=True)
        with arm.lease("control script"):
            arm.torque(True, "joint2")
            arm.set_goal("joint2", position=math.radians(25))
            end = time.monotonic() + 15
            while abs(arm.read_state("joint2").position - math.radians(25)) > math.radians(1):
                assert time.monotonic() < end, "joint2 did not get there"
                time.sleep(0.02)
        print(f"reached {math.degrees(arm.read_state('joint2').position):.1f}", flush=True)
""")


@contextmanager
def process(argv: list[str], expect: str) -> Iterator[subprocess.Popen[str]]:
    """Start ``argv``; wait for a line of its stdout containing ``expect``; stop it (SIGINT) at the end."""
    env = {k: v for k, v in os.environ.items() if k != "ARMBUS_PORT"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert expect in line, f"{argv}: {line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_monitor_control_and_tap_share_one_served_arm(sock_dir: Path) -> None:
    tty, sock, capture = sock_dir / "arm", sock_dir / "arm.sock", sock_dir / "cap.pcapng"
    script = sock_dir / "control.py"
    script.write_text(CONTROL)
    url = f"serve://{sock}"
    with process([*CLI, "sim", "--joints", "3", "--link", str(tty)], "virtual arm"), \
            process([*CLI, "serve", "--port", str(tty), "--socket", str(sock)], "clients attach with") as serve:
        tap = subprocess.Popen([*CLI, "--port", url, "tap", "--out", str(capture), "--duration", "9"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        monitor = subprocess.Popen([*CLI, "--port", url, "monitor", "--duration", "8", "--rate", "4"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        control = subprocess.run([sys.executable, str(script), url], capture_output=True, text=True, timeout=60,
                                 check=False)
        mon_out, mon_err = monitor.communicate(timeout=60)
        tap_out, tap_err = tap.communicate(timeout=60)
        serve.send_signal(signal.SIGINT)
        serve_out, serve_err = serve.communicate(timeout=20)
    assert control.returncode == 0, control.stderr
    assert "refused: True" in control.stdout  # no lease yet: refused in the client, naming nobody
    assert "reached 2" in control.stdout  # 24.x or 25.x deg
    assert monitor.returncode == 0 and "Traceback" not in mon_err, mon_err
    assert "joint2" in mon_out and "TORQUE" in mon_out  # the monitor saw the joint the script switched on
    assert tap.returncode == 0, tap_err
    assert "0 chunk(s) dropped" in tap_out
    assert serve.returncode == 0 and "stopped; 3 client(s)" in serve_out, serve_err
    decoded = subprocess.run([*CLI, "trace", "decode", str(capture), "--type", "SET_GOAL"], capture_output=True,
                             text=True, timeout=60, check=False)
    assert decoded.returncode == 0 and "SET_GOAL" in decoded.stdout, decoded.stderr
    assert not sock.exists()  # serve removed its socket
