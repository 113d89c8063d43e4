"""The lease: which packets need it (one definition), the server's table, and the API on a directly opened arm."""

from __future__ import annotations

import asyncio

from armbus.bus.errors import ArmbusError, LeaseError
from armbus.bus.messages import Cycle, EStop, Heartbeat, Ping, Reboot, SetGoal, Torque, Write
from armbus.bus.wire import StatusFlag
from armbus.controller import ops
from armbus.controller.aio import AsyncArm
from armbus.controller.arm import Arm
from armbus.controller.lease import LeaseTable, needs_lease


def moves(message: object) -> bool:
    return needs_lease(int(message.TYPE), message.pack())  # type: ignore[attr-defined]


def test_stopping_and_observing_are_free() -> None:
    assert not moves(EStop(3))
    assert not moves(Torque(0))
    assert not moves(Ping())
    assert not moves(Heartbeat(1))
    assert not moves(ops.read_request("present_position"))
    assert not moves(ops.sync_read_states())
    assert not moves(ops.write_request("torque_enable", 0))
    assert not moves(ops.write_request("estop", 1))
    assert not moves(ops.write_request("state_period", 10))
    assert not moves(ops.write_request("clear_flags", int(StatusFlag.REBOOTED)))
    assert not moves(ops.sync_write_register("clear_flags", {1: int(StatusFlag.REBOOTED), 2: 0}))


def test_whatever_can_start_motion_needs_the_lease() -> None:
    assert moves(Torque(1))
    assert moves(ops.write_request("torque_enable", 1))
    assert moves(ops.write_request("estop", 0))  # release: re-arms the joint
    assert moves(ops.write_request("clear_flags", int(StatusFlag.ESTOPPED)))
    assert moves(ops.write_request("goal_position", 1000))
    assert moves(ops.write_request("pos_kp", 1000))
    assert moves(ops.sync_write_register("goal_position", {1: 0, 2: 5}))
    assert moves(ops.sync_write_register("torque_enable", {1: 0, 2: 1}))  # one joint switched on is motion
    assert moves(Reboot())
    assert moves(Write(37, b""))  # an empty write proves nothing: not free


def test_set_goal_and_cycles_with_goals_need_it() -> None:
    from armbus.bus.wire import GoalMode

    assert moves(SetGoal(int(GoalMode.POSITION), 0))
    assert moves(Cycle(56, 15, int(GoalMode.POSITION), 1, (0, 0)))
    assert not moves(Cycle(56, 15))  # read-only cycle


def test_table_is_exclusive_reentrant_and_freed_by_a_drop() -> None:
    t = LeaseTable()
    assert t.acquire("a", "alice") == (True, True)
    assert t.acquire("a", "again") == (True, False)
    assert t.name == "alice"
    assert t.acquire("b", "bob") == (False, False)
    assert not t.release("b")
    assert t.name == "alice"
    assert t.dropped("a")
    assert t.name is None
    assert t.acquire("b", "bob") == (True, True)


def test_lease_error_is_an_armbus_error_naming_the_holder() -> None:
    e = LeaseError("the lease is held by pid 7 (ctl)", holder="pid 7 (ctl)")
    assert isinstance(e, ArmbusError) and e.holder == "pid 7 (ctl)"


def test_direct_arm_lease_succeeds_at_once() -> None:
    with Arm.open("armbus://?joints=2&seed=1&unpaced=1") as arm:
        assert arm.lease_holder is None
        with arm.lease("ctl"):
            assert arm.lease_holder == "ctl"
            arm.acquire_lease("ctl")  # again: no-op
        assert arm.lease_holder is None
        arm.acquire_lease()
        assert arm.lease_holder is not None and arm.lease_holder.startswith("pid ")
        arm.release_lease()
        arm.release_lease()  # not held: no-op
        assert arm.lease_holder is None


def test_direct_async_arm_lease_succeeds_at_once() -> None:
    async def body() -> None:
        arm = await AsyncArm.open("armbus://?joints=2&seed=1&unpaced=1")
        async with arm:
            async with arm.lease("ctl"):
                assert arm.lease_holder == "ctl"
            assert arm.lease_holder is None

    asyncio.run(asyncio.wait_for(body(), 20))
