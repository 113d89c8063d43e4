"""Enumeration acknowledges REBOOTED: the joints that report it are named in the result and the flag is cleared,
so that a REBOOTED seen later means a reboot since (docs/protocol.md, "Start-up and reboots")."""

from __future__ import annotations

import asyncio
import time

from armbus.bus.link import LinkConfig
from armbus.bus.messages import Reboot
from armbus.bus.wire import StatusFlag
from armbus.controller.aio import AsyncArm
from armbus.controller.arm import Arm
from armbus.controller.ops import DiscoveredJoint, acknowledge_reboots
from armbus.hil.ptyserver import PtyServer
from armbus.hil.realtime import REALTIME_TURNAROUND_NS
from armbus.hil.virtual_arm import VirtualArm

REBOOTED = int(StatusFlag.REBOOTED)


def _arm() -> VirtualArm:
    return VirtualArm(3, seed=4, link_config=LinkConfig(turnaround_ns=REALTIME_TURNAROUND_NS))


def test_acknowledge_reboots_marks_the_joints_and_builds_one_clear() -> None:
    found = [DiscoveredJoint(a, 1, 100 + a) for a in (1, 2, 3)]
    marked, write = acknowledge_reboots(found, {1: REBOOTED | 1, 2: 1, 3: REBOOTED})
    assert [j.rebooted for j in marked] == [True, False, True]
    assert write is not None and (write.reg, write.data) == (54, bytes((REBOOTED,)))  # clear_flags
    assert acknowledge_reboots(found, {1: 0, 2: 0, 3: 0}) == (found, None)


def test_enumeration_reports_and_clears_rebooted_sync() -> None:
    with PtyServer(_arm()) as server, Arm.open(server.port, timeout=0.5) as arm:
        assert [j.rebooted for j in arm.enumerate()] == [True, True, True]  # power-on
        time.sleep(0.05)  # the clear reaches the control cores at their next tick
        assert all(not arm.read(name, "status") & REBOOTED for name in ("joint1", "joint2", "joint3"))
        assert [j.rebooted for j in arm.enumerate()] == [False, False, False]  # acknowledged: nothing new
        arm.send(Reboot(), 2)
        time.sleep(0.2)  # the joint's 20 ms boot and its links' handshakes
        assert [j.rebooted for j in arm.enumerate()] == [False, True, False]


def test_enumeration_reports_and_clears_rebooted_async() -> None:
    async def main() -> None:
        with PtyServer(_arm()) as server:
            async with await AsyncArm.open(server.port, timeout=0.5) as arm:
                assert [j.rebooted for j in await arm.enumerate()] == [True, True, True]
                await asyncio.sleep(0.05)
                assert all(not s & REBOOTED for s in (await arm.sync_read("status")).values())
                assert [j.rebooted for j in await arm.enumerate()] == [False, False, False]

    asyncio.run(asyncio.wait_for(main(), 30))
