"""The contract suite's guard: a latched joint is named before a test, and the arm is left as it was found."""

from __future__ import annotations

import time
from typing import Any

import pytest

from armbus.bus.wire import StatusFlag
from armbus.hil import armguard

pytestmark = pytest.mark.realtime


def test_a_latched_joint_is_named_with_the_way_out(arm: Any) -> None:
    name = list(arm.model.joints)[1]
    assert armguard.preflight(arm) == []
    arm.estop()
    time.sleep(0.2)
    lines = armguard.preflight(arm)
    assert any(f"{name} is latched in ESTOPPED" in line and "armbus estop --release" in line for line in lines)
    arm.write(name, "estop", 0)  # the others are put back by the fixture


def test_restore_brings_moved_joints_back_and_resets_what_the_test_changed(arm: Any) -> None:
    name = next(iter(arm.model.joints))
    before = armguard.snapshot(arm)
    arm.torque(True, name)
    arm.set_goal(name, position=before[name].position + 0.1)
    arm.write(name, "watchdog_period", 200)
    time.sleep(1.0)
    assert abs(arm.read_state(name).position - before[name].position) > 0.05
    assert armguard.restore(arm, before) == []
    state = arm.read_state(name)
    assert abs(state.position - before[name].position) <= armguard.POSITION_TOLERANCE_RAD
    assert not state.status & StatusFlag.TORQUE_ON and arm.read(name, "watchdog_period") == 0
