"""CJoint's surface: what the simulator, the measurements and fault injection use on a joint."""

from __future__ import annotations

import pytest

from armbus.bus.link import LinkCounters, LinkState
from armbus.hil.firmware.build import available
from armbus.hil.simarm import SimArm
from armbus.joints.node import NodeCounters

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))
MS = 1_000_000


def test_views_hooks_and_registers() -> None:
    arm = SimArm(joints=2, seed=4, firmware="c")
    joint = arm.virtual_arm.joint(1)
    latches: list[tuple[int, int]] = []
    ticks: list[int] = []
    starts: list[int] = []
    joint.control.latch_hooks.append(lambda at, tag: latches.append((at, tag)))
    joint.control.tick_hooks.append(ticks.append)
    joint.start_hooks.append(starts.append)
    arm.enumerate()
    assert joint.address == 1 and joint.is_last is False and arm.virtual_arm.joint(2).is_last is True
    arm.torque(True)
    names = list(arm.joints)
    for _ in range(5):
        arm.exchange({n: 0.05 for n in names})
    assert len(latches) == 5 and ticks and ticks == sorted(ticks)
    assert joint.control.torque and joint.control.state.status & 0x01 and joint.control.goal == 50_000
    assert joint.registers.get("torque_enable") == 1 and joint.registers.get("bus_address") == 1
    assert isinstance(joint.counters, NodeCounters) and joint.counters.cycle_goals == 5
    assert isinstance(joint.links[0].counters, LinkCounters) and joint.links[0].state is LinkState.OPEN
    assert joint.links[0].counters.data_delivered > 0 and joint.router.counters.forwarded > 0
    joint.registers.set("state_period", 0)  # the firmware's memory itself
    assert arm.read(names[0], "state_period") == 0
    joint.actuator.load_torque = 0.5  # fault injection reaches the actuator behind the HAL
    assert joint.actuator.load_torque == 0.5
    joint.reboot(arm.now())
    assert joint.booting
    arm.sleep_until(arm.now() + 40 * MS)
    assert not joint.booting and len(starts) == 1 and joint.rebooted == 1
    n = len(ticks)
    arm.sleep_until(arm.now() + 5 * MS)
    assert len(ticks) > n, "the hooks follow the new control core after a reboot"


def test_port_rates_follow_the_switch() -> None:
    arm = SimArm(joints=2, seed=2, firmware="c")
    arm.enumerate()
    arm.set_baud(2_000_000)
    assert [j.port_rates for j in arm.virtual_arm.joints] == [[2_000_000, 2_000_000]] * 2
    assert arm.virtual_arm.joint(1).port_baud(1) == 2_000_000
