"""Fault injection into the virtual arm behind the contract suite's ``arm`` (skipped on a real arm)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from armbus.bus.errors import PeerError
from armbus.bus.wire import StatusFlag
from armbus.hil.joint_faults import Freeze, Reboot


def test_a_rebooted_joint_loses_its_address_until_re_enumerated(arm: Any, virtual_arm: Any) -> None:
    virtual_arm.call(lambda a: Reboot(0, joint=2).apply(a.kernel, a.kernel.now))
    time.sleep(0.1)  # boot time 20 ms
    with pytest.raises(PeerError):
        arm.ping("joint2")  # it is unassigned now: nobody answers to address 2
    found = arm.enumerate()
    assert [j.address for j in found] == list(range(1, len(found) + 1))
    assert [j.address for j in found if j.rebooted] == [2]  # reported by the enumeration, which acknowledges it
    time.sleep(0.05)  # the clear reaches the control core at its next tick
    assert not StatusFlag(arm.read("joint2", "status")) & StatusFlag.REBOOTED
    assert virtual_arm.call(lambda a: a.joint(2).counters.reboots) == 1


def test_a_frozen_joint_does_not_answer_then_recovers(arm: Any, virtual_arm: Any) -> None:
    virtual_arm.call(lambda a: Freeze(0, joint=1, duration_ns=300_000_000).apply(a.kernel, a.kernel.now))
    with pytest.raises(PeerError):
        arm.ping("joint1")
    deadline = time.monotonic() + 5
    while True:
        try:
            assert arm.ping("joint1").address == 1
            break
        except PeerError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert virtual_arm.call(lambda a: a.kernel.bytes_lost_frozen) > 0
