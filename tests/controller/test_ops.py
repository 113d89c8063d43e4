"""Operation builders and decoders: what goes on the bus for each user-level call."""

from __future__ import annotations

import struct

import pytest

from armbus.bus.errors import PeerError, UsageError
from armbus.bus.messages import (
    EnumerateReply,
    JointRecord,
    Ping,
    ReadReply,
    SyncReadReply,
    SyncRecord,
    WriteReply,
    decode_payload,
)
from armbus.bus.wire import GoalMode, StatusFlag
from armbus.controller import ops
from armbus.joints.registers import BY_NAME, STATE_BLOCK


def test_register_read_write_round_trip_signed() -> None:
    req = ops.read_request("goal_position")
    assert (req.reg, req.length) == (BY_NAME["goal_position"].address, 4)
    assert ops.decode_read("goal_position", ReadReply(req.reg, struct.pack("<i", -5))) == -5
    w = ops.write_request("watchdog_period", 250)
    assert decode_payload(w.TYPE, w.pack()) == w and w.data == struct.pack("<H", 250)
    ops.check_write_reply("watchdog_period", WriteReply(w.reg, 2))
    with pytest.raises(PeerError):
        ops.check_write_reply("watchdog_period", WriteReply(w.reg, 1))
    with pytest.raises(PeerError):
        ops.decode_read("goal_position", ReadReply(req.reg, b"\x00"))


def test_register_errors_name_the_problem() -> None:
    with pytest.raises(UsageError, match="no register named 'goal_positon'"):
        ops.read_request("goal_positon")
    with pytest.raises(UsageError, match=r"watchdog_period = 70000 is outside its range 0\.\.60000 ms"):
        ops.write_request("watchdog_period", 70000)


def test_goal_message_converts_si() -> None:
    assert ops.goal_message(GoalMode.POSITION, 0.5).value == 500_000
    assert ops.goal_message(GoalMode.CURRENT, -0.25).value == -250


def test_sync_write_goals_slices_in_address_order() -> None:
    msg = ops.sync_write_goals({3: -0.1, 2: 0.2, 4: 1.0})
    assert msg.first == 2 and msg.slice_len == 4 and msg.reg == BY_NAME["goal_position"].address
    assert struct.unpack("<3i", msg.data) == (200_000, -100_000, 1_000_000)
    assert msg.slice_for(3) == struct.pack("<i", -100_000)
    with pytest.raises(UsageError, match=r"missing \[3\]"):
        ops.sync_write_goals({2: 0.0, 4: 0.0})


def test_decode_states_in_si() -> None:
    block = struct.pack("<iihhHB", 1_500_000, -250_000, 300, 412, 12_100, StatusFlag.TORQUE_ON)
    reply = SyncReadReply(*STATE_BLOCK, (SyncRecord(1, 1, block), SyncRecord(2, 0, block)))
    states = ops.decode_states(reply, now=7)
    assert [s.address for s in states] == [1, 2]
    s = states[0]
    assert (s.position, s.velocity, s.current, s.voltage) == (1.5, -0.25, 0.3, 12.1)
    assert s.temperature == pytest.approx(41.2) and s.status == StatusFlag.TORQUE_ON and s.time == 7
    assert ops.decode_state_read(3, ReadReply(STATE_BLOCK[0], block), 9).position == 1.5
    with pytest.raises(PeerError):
        ops.decode_states(Ping(), 0)


def test_enumeration_addresses_and_chain_check() -> None:
    found = ops.decode_enumeration(EnumerateReply((JointRecord(7, 100), JointRecord(7, 101))))
    assert [(j.address, j.serial) for j in found] == [(1, 100), (2, 101)]
    ops.check_chain(found, [1, 2])
    with pytest.raises(UsageError, match=r"address\(es\) \[3\] not found: the bus has 2 joint"):
        ops.check_chain(found, [1, 3])
