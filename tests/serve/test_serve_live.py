"""armbus serve on real unix sockets with an in-process virtual arm in real time (wall clock: short and few)."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from armbus.bus.errors import LeaseError, PortError, UsageError
from armbus.bus.wire import GoalMode, StatusFlag
from armbus.controller import serveproto as sp
from armbus.controller.aio import AsyncArm
from armbus.controller.arm import Arm
from armbus.controller.events import HostEvent, JointState, LeaseChanged
from armbus.controller.server import ServeInfo

from .rig import served

pytestmark = pytest.mark.realtime


def test_two_clients_reading_at_once_each_get_their_own_replies(sock_dir: Path) -> None:
    with served(sock_dir) as info, Arm.open(info.url) as a, Arm.open(info.url) as b:
        a.enumerate()
        b.enumerate()
        wrong: list[tuple[str, int]] = []

        def reader(arm: Arm, joint: str, address: int) -> None:
            for _ in range(40):
                value = arm.read(joint, "bus_address")
                if value != address:
                    wrong.append((joint, value))

        threads = [threading.Thread(target=reader, args=(a, "joint1", 1)),
                   threading.Thread(target=reader, args=(b, "joint3", 3))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert wrong == []
        assert info.counters.packets >= 80 + 4
        assert info.counters.to_clients >= 80


def test_lease_conflicts_name_the_holder_and_estop_is_free(sock_dir: Path) -> None:
    with served(sock_dir) as info, Arm.open(info.url) as a, Arm.open(info.url) as b:
        a.enumerate()
        b.enumerate()
        assert a.lease_holder is None
        a.acquire_lease("controller A")
        assert a.lease_holder == "controller A"
        deadline = time.monotonic() + 2
        while b.lease_holder != "controller A" and time.monotonic() < deadline:  # the news reaches B
            time.sleep(0.01)
        assert b.lease_holder == "controller A"
        with pytest.raises(LeaseError, match="held by controller A") as refused:
            b.torque(True)
        assert refused.value.holder == "controller A"
        with pytest.raises(LeaseError, match="controller A"):
            b.acquire_lease("B")
        with pytest.raises(LeaseError):
            b.set_goal("joint1", position=0.1)
        b.torque(False)  # stopping is free
        assert b.read("joint1", "bus_address") == 1  # reads are free
        a.torque(True)
        a.set_goal("joint2", position=0.2)
        b.estop()  # any client may stop the arm
        time.sleep(0.05)
        states = a.read_states()
        assert all(s.status & StatusFlag.ESTOPPED for s in states.values())
        with pytest.raises(UsageError, match="owns the port and its rate"):
            a.set_baud(3_000_000)
        threading.Timer(0.2, a.release_lease).start()
        t0 = time.monotonic()
        b.acquire_lease("B", timeout=3.0)  # waits for A's release
        assert 0.1 < time.monotonic() - t0 < 3.0
        assert b.lease_holder == "B"
        assert info.counters.refused_lease == 0  # every refusal happened in the client, before the socket


def test_a_raw_client_without_the_lease_is_refused_by_the_server(sock_dir: Path) -> None:
    from armbus.bus.messages import Torque, make_packet
    from armbus.bus.wire import Address

    with served(sock_dir) as info, Arm.open(info.url) as a:
        a.acquire_lease("A")
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(info.socket)
        packet = make_packet(Torque(1), Address.HOST, 1, 77)
        raw.sendall(sp.Hello(sp.VERSION, 0, "raw").encode() + sp.Send(packet, False).encode())
        reader = sp.FrameReader()
        got: list[sp.Message] = []
        raw.settimeout(5)
        while not any(isinstance(m, sp.Failed) for m in got):
            reader.feed(raw.recv(4096))
            got += list(reader.frames())
        raw.close()
        failed = next(m for m in got if isinstance(m, sp.Failed))
        assert failed.msg_id == 77 and not failed.maybe_delivered and "held by A" in failed.text
        assert info.counters.refused_lease == 1


def test_async_arm_works_on_a_serve_url_and_telemetry_fans_out(sock_dir: Path) -> None:
    async def body(url: str) -> None:
        a = await AsyncArm.open(url)
        b = await AsyncArm.open(url)
        async with a, b:
            await a.enumerate()
            await b.enumerate()
            seen: dict[str, set[int]] = {"a": set(), "b": set()}

            def on(key: str):  # type: ignore[no-untyped-def]
                def listener(ev: HostEvent) -> None:
                    if isinstance(ev, JointState):
                        seen[key].add(ev.address)
                return listener

            a.add_listener(on("a"))
            b.add_listener(on("b"))
            async with a.lease("async A"):
                assert a.lease_holder == "async A"
                await a.sync_write("state_period", {"joint1": 10, "joint2": 10, "joint3": 10})
                await asyncio.sleep(0.3)
            assert seen["a"] == seen["b"] == {1, 2, 3}
            changes: list[LeaseChanged] = []
            b.add_listener(lambda ev: changes.append(ev) if isinstance(ev, LeaseChanged) else None)
            await a.acquire_lease("again")
            await asyncio.sleep(0.05)
            assert changes and changes[-1].holder == "again" and not changes[-1].yours
            with pytest.raises(LeaseError):
                await b.torque(True)

    with served(sock_dir) as info:
        asyncio.run(asyncio.wait_for(body(info.url), 30))


def test_no_server_is_one_clear_error(sock_dir: Path) -> None:
    with pytest.raises(PortError, match=r"no armbus serve at .*armbus serve --port"):
        Arm.open(f"serve://{sock_dir}/nothing.sock")
    env = {k: v for k, v in os.environ.items() if k != "ARMBUS_PORT"}
    proc = subprocess.run([sys.executable, "-m", "armbus.tools.cli", "--port", f"serve://{sock_dir}/none.sock",
                           "monitor", "--duration", "1"], capture_output=True, text=True, timeout=60, env=env,
                          check=False)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no armbus serve at" in lines[0] and "armbus serve --port" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_stuck_client_cannot_stall_the_others(sock_dir: Path) -> None:
    """A client that never reads, asking for every packet and every line byte, while telemetry runs at 200 Hz per
    joint: the others' round trips stay short, and the stuck client's frames are dropped (memory bounded; the
    limits are small here so that a short run reaches them). The arm is ``armbus sim`` in a process of its own, so
    that the server's work for the stuck client cannot starve the simulation of the arm (as one process would)."""
    tty = sock_dir / "arm"
    sim = subprocess.Popen([sys.executable, "-m", "armbus.tools.cli", "sim", "--joints", "3", "--link", str(tty)],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert sim.stdout is not None and "virtual arm" in sim.stdout.readline()
        _stuck_client_run(sock_dir, str(tty))
    finally:
        sim.send_signal(signal.SIGINT)
        sim.wait(10)


def _stuck_client_run(sock_dir: Path, port: str) -> None:
    with served(sock_dir, port=port, limits=(8192, 1 << 20)) as info, Arm.open(info.url, timeout=0.5) as a:
        a.enumerate()
        stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(info.socket)
        stuck.sendall(sp.Hello(sp.VERSION, sp.WANT_PACKETS | sp.WANT_WIRE, "stuck").encode())
        with a.lease():
            a.sync_write("state_period", {"joint1": 5, "joint2": 5, "joint3": 5})
        worst = 0.0
        start = time.monotonic()
        while time.monotonic() < start + 1.0 or (info.counters.dropped == 0 and time.monotonic() < start + 10.0):
            t0 = time.perf_counter()
            assert a.read("joint2", "bus_address") == 2
            worst = max(worst, time.perf_counter() - t0)
        stuck.close()
        assert info.counters.dropped > 0  # the stuck client's buffers filled up: its frames were dropped
        assert worst < 0.45, f"a read took {worst * 1e3:.0f} ms while a client was stuck"


CONTROL = textwrap.dedent("""
    import sys, time
    from armbus import Arm
    arm = Arm.open(sys.argv[1])
    arm.enumerate()
    arm.acquire_lease("control script")
    arm.torque(True, "joint2")
    arm.set_goal("joint2", velocity=1.0)  # rad/s, on and on
    print("moving", flush=True)
    time.sleep(60)
""")


def test_killing_the_lease_holder_frees_the_lease_and_the_arm_holds(sock_dir: Path) -> None:
    script = sock_dir / "control.py"
    script.write_text(CONTROL)
    with served(sock_dir) as info, Arm.open(info.url) as watcher:
        watcher.enumerate()
        proc = subprocess.Popen([sys.executable, str(script), info.url], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "moving"
            time.sleep(0.2)
            moving = watcher.read_state("joint2")
            assert moving.velocity > 0.5 and watcher.lease_holder == "control script"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            proc.kill()
        deadline = time.monotonic() + 2
        while watcher.lease_holder is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watcher.lease_holder is None
        time.sleep(0.3)  # the hold: read, then SET_GOAL(POSITION, where it is)
        first = watcher.read_state("joint2")
        time.sleep(0.3)
        second = watcher.read_state("joint2")
        assert info.counters.holds == 1
        assert first.status & StatusFlag.TORQUE_ON, "the joint holds with torque on"
        assert watcher.read("joint2", "goal_mode") == GoalMode.POSITION
        assert abs(second.velocity) < 0.05
        assert abs(second.position - first.position) < math.radians(0.5)
        held_goal = watcher.read("joint2", "goal_position") / 1e6
        assert abs(held_goal - second.position) < math.radians(1.0)
        assert watcher.read_state("joint1").status & StatusFlag.TORQUE_ON == 0  # off stays off


def test_in_process_clients_start_once_serve_listens_and_attach_like_any_other(sock_dir: Path) -> None:
    """The hook ``armbus serve --mqtt`` uses: a coroutine started in serve's own loop, attached through the socket."""
    seen: list[object] = []

    async def bridge(info: ServeInfo) -> None:
        seen.append(info.url)
        async with await AsyncArm.open(info.url) as arm:
            await arm.enumerate()
            seen.append(sorted((await arm.read_states()).keys()))
            await arm.acquire_lease("bridge")
            await asyncio.sleep(3600)  # serves until serve stops (cancelled then)

    with served(sock_dir, clients=(bridge,)) as info, Arm.open(info.url) as other:
        deadline = time.monotonic() + 5
        while other.lease_holder != "bridge" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert other.lease_holder == "bridge"
        assert seen == [info.url, ["joint1", "joint2", "joint3"]]
        other.enumerate()
        with pytest.raises(LeaseError, match="held by bridge"):
            other.torque(True)
    assert info.counters.clients == 2


def test_cli_commands_that_move_take_the_lease_or_name_its_holder(sock_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARMBUS_PORT"}
    with served(sock_dir) as info, Arm.open(info.url) as holder:
        def cli(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "armbus.tools.cli", "--port", info.url, *argv],
                                  capture_output=True, text=True, timeout=60, env=env, check=False)

        holder.enumerate()
        moved = cli("move", "2", "10deg")  # no --wait: the command ends while the joint is still on its way
        assert moved.returncode == 0, moved.stderr  # nobody held it: the command took it, and gave it back
        assert holder.lease_holder is None
        deadline = time.monotonic() + 5
        while abs(holder.read_state("joint2").position - math.radians(10)) > math.radians(1):
            assert time.monotonic() < deadline, "the joint did not go on to its goal"
            time.sleep(0.05)
        assert info.counters.holds == 0  # a client that closes gives the lease back: its goals stand
        holder.acquire_lease("lab controller")
        refused = cli("torque", "on")
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
        assert "held by lab controller" in refused.stderr and "Traceback" not in refused.stderr
        assert cli("torque", "off").returncode == 0  # stopping is free
        assert cli("estop").returncode == 0


def test_the_cyclic_exchange_runs_through_serve(sock_dir: Path) -> None:
    with served(sock_dir) as info, Arm.open(info.url, timeout=0.5) as arm:
        arm.enumerate()
        states = arm.exchange(timeout=0.5)  # read-only: free
        assert sorted(states) == ["joint1", "joint2", "joint3"]
        with pytest.raises(LeaseError):
            arm.exchange({"joint1": 0.1}, timeout=0.5)
        with arm.lease():
            arm.torque(True)
            report = arm.cyclic(lambda view: {n: 0.05 for n in view.states}, 100).run(seconds=0.5)
        assert report.replied > 10, report.summary()
        assert report.goals_refused == 0, report


def test_a_client_outlives_a_restarted_serve_without_its_lease(sock_dir: Path) -> None:
    from armbus.controller.events import PortLost, PortRestored

    seen: list[str] = []
    with served(sock_dir) as info:
        arm = Arm.open(info.url, timeout=0.5)
        arm.add_listener(lambda ev: seen.append(type(ev).__name__) if isinstance(ev, (PortLost, PortRestored))
                         else None)
        arm.enumerate()
        arm.acquire_lease("x")
    try:
        time.sleep(0.2)
        with pytest.raises(PortError, match="lost"):
            arm.read("joint1", "bus_address")
        with served(sock_dir):
            deadline = time.monotonic() + 5
            while "PortRestored" not in seen and time.monotonic() < deadline:
                time.sleep(0.02)
            assert seen == ["PortLost", "PortRestored"]
            assert arm.lease_holder is None
            assert arm.wait_link(5)
            arm.enumerate()
            with pytest.raises(LeaseError):
                arm.torque(True)  # a new server: the lease must be taken again
            arm.acquire_lease("x")
            arm.torque(True)
    finally:
        arm.close()


def test_serve_outlives_its_port_and_the_clients_go_on(sock_dir: Path) -> None:
    """The arm's port vanishes (``armbus sim`` stops) and comes back (a new one on the same path): the clients are
    told the link went down and carry on once serve has reopened the port."""
    from armbus.controller.events import LinkEvent

    tty = sock_dir / "arm"

    def sim() -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "armbus.tools.cli", "sim", "--joints", "3", "--link", str(tty)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and "virtual arm" in proc.stdout.readline()
        return proc

    news: list[str] = []
    first = sim()
    second = None
    try:
        with served(sock_dir, port=str(tty)) as info, Arm.open(info.url, timeout=0.5) as arm:
            arm.add_listener(lambda ev: news.append(ev.what) if isinstance(ev, LinkEvent) else None)
            arm.enumerate()
            first.send_signal(signal.SIGINT)
            first.wait(10)
            second = sim()
            deadline = time.monotonic() + 10
            while "reset" not in news and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "down" in news and "reset" in news
            arm.enumerate()
            assert arm.read("joint2", "bus_address") == 2
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(10)


def test_armbus_record_runs_as_a_client_of_serve_while_another_client_moves_the_arm(sock_dir: Path) -> None:
    from mcap.reader import make_reader

    env = {k: v for k, v in os.environ.items() if k != "ARMBUS_PORT"}
    out = sock_dir / "run.mcap"
    with served(sock_dir) as info, Arm.open(info.url) as mover:
        mover.enumerate()
        with mover.lease("mover"):
            mover.torque(True, "joint2")
            mover.set_goal("joint2", position=math.radians(20))
            rec = subprocess.run([sys.executable, "-m", "armbus.tools.cli", "--port", info.url, "record", "--out",
                                  str(out), "--duration", "2", "--rate", "20"],
                                 capture_output=True, text=True, timeout=60, env=env, check=False)
        assert rec.returncode == 0, rec.stderr
        assert mover.lease_holder is None  # recording needed no lease and took none
    with out.open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        topics = {ch.topic: summary.statistics.channel_message_counts.get(cid, 0)
                  for cid, ch in summary.channels.items()}
    assert topics.get("/joint_states", 0) >= 10, topics  # 2 s at 20 Hz, some lost to a loaded machine at most
    assert "/armbus/goals" in topics
