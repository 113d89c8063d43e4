"""A recorded virtual-arm session shared by the replay and plot tests."""

from __future__ import annotations

from pathlib import Path

from armbus.bus.link import LinkConfig
from armbus.controller.host import HostConfig, HostNode
from armbus.hil.simarm import SimArm
from armbus.hil.trace.pcapng import TraceWriter
from armbus.hil.virtual_arm import VirtualArm

JOINTS, SEED = 3, 7


def record_session(path: Path, joints: int = JOINTS, seed: int = SEED) -> None:
    """Enumerate, write a register, read registers, sync-read the states, through the kernel tap."""
    host = HostNode(HostConfig(link=LinkConfig(baud=1_000_000)))
    varm = VirtualArm(joints, host=host, seed=seed)
    with TraceWriter(path, {"baud": 1_000_000, "joints": joints, "seed": seed}) as writer:
        varm.kernel.add_tap(writer)
        arm = SimArm(varm)
        assert len(arm.enumerate()) == joints
        arm.write("joint2", "velocity_limit", 3_000_000)
        assert arm.read("joint2", "velocity_limit") == 3_000_000
        assert arm.read("joint3", "position_max") == 2_617_994
        arm.read_states()
        varm.run_for(1_000_000)
