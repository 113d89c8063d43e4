"""AsyncArm against a real-time virtual arm behind a pseudo-terminal (wall clock; short and tolerant)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from armbus.bus.errors import ArmTimeoutError, PortError, UndeliverableError, UsageError
from armbus.bus.link import LinkConfig
from armbus.bus.messages import Ping
from armbus.bus.wire import StatusFlag
from armbus.controller.aio import AsyncArm
from armbus.controller.cyclic import CycleView
from armbus.controller.events import HostEvent, JointState, PacketAcked, PortLost, PortRestored
from armbus.hil.ptyserver import PtyServer
from armbus.hil.realtime import REALTIME_TURNAROUND_NS
from armbus.hil.virtual_arm import VirtualArm

pytestmark = pytest.mark.realtime
JOINTS = 3


def virtual_arm(seed: int = 1) -> VirtualArm:
    return VirtualArm(JOINTS, seed=seed, link_config=LinkConfig(turnaround_ns=REALTIME_TURNAROUND_NS))


@pytest.fixture
def server() -> Iterator[PtyServer]:
    with PtyServer(virtual_arm()) as s:
        yield s


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


def test_discovery_registers_goals_and_sync_read(server: PtyServer) -> None:
    async def main() -> None:
        async with await AsyncArm.open(server.port, timeout=0.2) as arm:
            found = await arm.enumerate()
            assert [j.address for j in found] == list(range(1, JOINTS + 1))
            assert arm.joint_names == [f"joint{a}" for a in range(1, JOINTS + 1)]
            assert (await arm.ping("joint2")).serial == 0x1002
            await arm.write("joint1", "state_period", 0)
            assert await arm.read("joint1", "state_period") == 0
            # persistent registers are writable with torque off only (the joint answers ERROR otherwise)
            await arm.sync_write("velocity_limit", {"joint1": 3_000_000, "joint2": 2_000_000})
            limits = await arm.sync_read("velocity_limit")
            assert limits == {"joint1": 3_000_000, "joint2": 2_000_000, "joint3": 4_000_000}
            await arm.torque(True)
            assert await arm.sync_read("torque_enable") == {f"joint{a}": 1 for a in range(1, JOINTS + 1)}
            sent = await arm.set_goals({"joint1": 0.2, "joint2": -0.1, "joint3": 0.05})
            assert sent == {"joint1": 0.2, "joint2": -0.1, "joint3": 0.05}
            await arm.set_goal("joint3", position=0.1)
            await asyncio.sleep(0.5)
            states = await arm.read_states()
            assert states["joint1"].position == pytest.approx(0.2, abs=0.03)
            assert states["joint3"].position == pytest.approx(0.1, abs=0.03)
            assert (await arm.read_state("joint2")).position == pytest.approx(-0.1, abs=0.03)
            with pytest.raises(UsageError, match="no joint named 'elbow'"):
                await arm.read("elbow", "status")

    run(main())


def test_events_iterator_and_callbacks_survive_a_raising_listener(
    server: PtyServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with await AsyncArm.open(server.port, timeout=0.2) as arm:
            await arm.enumerate()
            called: list[HostEvent] = []

            def bad(event: HostEvent) -> None:
                raise RuntimeError("user bug")

            async def bad_async(event: HostEvent) -> None:
                raise RuntimeError("async user bug")

            arm.add_listener(bad)
            arm.add_listener(bad_async)
            arm.add_listener(called.append)
            states: list[JointState] = []

            async def collect() -> None:
                async for ev in arm.events():
                    if isinstance(ev, JointState):
                        states.append(ev)
                        if len(states) >= 6:
                            return

            consumer = asyncio.ensure_future(collect())
            await asyncio.sleep(0)
            await arm.write("joint2", "state_period", 20)  # STATE telemetry every 20 ms
            await asyncio.wait_for(consumer, 5)
            assert {s.address for s in states} == {2}
            assert any(isinstance(e, PacketAcked) for e in called)  # the reader went on after the raises
            await arm.write("joint2", "state_period", 0)

    with caplog.at_level(logging.ERROR):
        run(main())
    assert "user bug" in caplog.text and "async user bug" in caplog.text


def test_every_wait_has_a_timeout(server: PtyServer) -> None:
    async def main() -> None:
        async with await AsyncArm.open(server.port, timeout=0.05) as arm:
            await arm.enumerate()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            # no joint 9: the chain end reports it undeliverable, or nothing answers; either way in time
            with pytest.raises((ArmTimeoutError, UndeliverableError)):
                await arm.request(Ping(), 9)
            assert loop.time() - t0 < 1.0
            with pytest.raises(ArmTimeoutError):
                await arm.wait_for(lambda e: False, 0.05)

    run(main())


def test_heartbeat_feeds_the_watchdog(server: PtyServer) -> None:
    async def main() -> None:
        async with await AsyncArm.open(server.port, timeout=0.2, heartbeat_period=0.02) as arm:
            await arm.enumerate()
            await arm.torque(True)
            await arm.write("joint1", "watchdog_period", 100)
            await asyncio.sleep(0.4)
            assert not (await arm.read_state("joint1")).status & StatusFlag.WATCHDOG
            arm.set_heartbeat(None)
            await asyncio.sleep(0.4)
            assert (await arm.read_state("joint1")).status & StatusFlag.WATCHDOG

    run(main())


def test_estop_and_reboot(server: PtyServer) -> None:
    async def main() -> None:
        async with await AsyncArm.open(server.port, timeout=0.2) as arm:
            await arm.enumerate()
            await arm.torque(True)
            await arm.estop()
            await asyncio.sleep(0.05)
            assert (await arm.read_state("joint3")).status & StatusFlag.ESTOPPED
            await arm.reboot("joint3")

    run(main())


def test_port_lost_and_restored_behind_a_symlink(tmp_path: Path) -> None:
    link = tmp_path / "ttyARM0"
    varm = virtual_arm()
    first = PtyServer(varm, link=link).start()

    async def main() -> None:
        nonlocal first
        async with await AsyncArm.open(str(link), timeout=0.2) as arm:
            await arm.enumerate()
            seen: list[HostEvent] = []
            arm.add_listener(seen.append)
            first.close()  # the adapter is unplugged: the pty and the symlink disappear
            lost = await arm.wait_for(lambda e: isinstance(e, PortLost), 5)
            assert isinstance(lost, PortLost) and lost.port == str(link)
            with pytest.raises(PortError):
                await arm.ping("joint1")
            first = PtyServer(varm, link=link).start()  # plugged in again: a new tty behind the same path
            await arm.wait_for(lambda e: isinstance(e, PortRestored), 5)
            assert (await arm.ping("joint1")).address == 1  # the joints kept their addresses
            kinds = [type(e) for e in seen if isinstance(e, (PortLost, PortRestored))]
            assert kinds == [PortLost, PortRestored]

    try:
        run(main())
    finally:
        first.close()


def test_opening_a_missing_port_is_a_port_error(tmp_path: Path) -> None:
    async def main() -> None:
        with pytest.raises(PortError, match="cannot open"):
            await AsyncArm.open(str(tmp_path / "nothing"))

    run(main())


def test_cyclic_loop_on_the_event_loop_gets_states_with_ages(server: PtyServer) -> None:
    async def main() -> None:
        async with await AsyncArm.open(server.port, timeout=0.2) as arm:
            await arm.enumerate()
            await arm.torque(True)
            seen: list[int] = []

            def callback(view: CycleView) -> dict[str, float]:
                seen.append(len(view.states))
                assert all(s.age(view.now) >= 0 for s in view.states.values())
                return {name: 0.01 for name in arm.joint_names}

            report = await arm.cyclic(callback, 100.0, cycles=40)
            assert report.cycles == 40 and len(seen) == 40
            assert report.replied >= 30  # a loaded machine may lose a few to lateness, never most
            assert max(seen) == JOINTS  # every joint's record came back
            assert 0 < report.age_p50_ms < 100
            with pytest.raises(UsageError, match="seconds= or cycles="):
                await arm.cyclic(callback, 100.0)

    run(main())
